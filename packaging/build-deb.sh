#!/usr/bin/env bash
# build-deb.sh: builds mamori's .deb packages from the current work tree into OUTDIR.
# Usage: packaging/build-deb.sh OUTDIR [--install-deps]
# Needs (Debian 12): debhelper (13, with dh-sequence-installsysusers), dpkg-dev, and the build
# dependencies of packaging/debian/control; --install-deps installs them with apt-get.
set -euo pipefail

out=${1:?usage: build-deb.sh OUTDIR [--install-deps]}
top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ "${2:-}" = --install-deps ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends debhelper dpkg-dev lintian
  # Build-Depends of debian/control, read back by dpkg-checkbuilddeps.
  mapfile -t missing < <(cd "$top/packaging" && dpkg-checkbuilddeps -d "$(
    sed -n '/^Build-Depends:/,/^[A-Z]/p' debian/control | sed '$d; s/^Build-Depends://' | tr -d '\n')" \
    /dev/null 2>&1 | sed -n 's/.*Unmet build dependencies: //p' | tr ' ' '\n' |
    grep -v '^(' | grep -v ')$' | grep -v '^$' || true)
  [ ${#missing[@]} -eq 0 ] || apt-get install -y --no-install-recommends "${missing[@]}"
fi

# A clean copy of the work tree (tracked and untracked, not ignored, no build directories), with
# debian/ at its top as dpkg-buildpackage wants it.
work=$(mktemp -d "${TMPDIR:-/tmp}/mamori-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src="$work/mamori-0.1.0"
mkdir "$src"
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
  grep -zv '^build[^/]*/' | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf -) | tar -C "$src" -xf -
cp -r "$top/packaging/debian" "$src/debian"

(cd "$src" && dpkg-buildpackage -b -us -uc -j"$(nproc)")
cp "$work"/*.deb "$out"/
ls -1 "$out"/*.deb
