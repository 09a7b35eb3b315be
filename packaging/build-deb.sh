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

if [ "${2:-}" = --install-deps ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends debhelper dpkg-dev
  apt-get build-dep -y "$src" # the Build-Depends of debian/control
fi

(cd "$src" && dpkg-buildpackage -b -us -uc -j"$(nproc)")
cp "$work"/*.deb "$out"/
ls -1 "$out"/*.deb
