/* mamorid --check-config: the configuration and the files it names, checked without starting. */
#pragma once

/* Reads path and its drop-ins like mamorid does, then loads TrustAnchors= and SignerKey=. Every
 * problem is one "file:line: error|warning: …" line on stderr. Returns the exit status: 0 when
 * there was nothing to report, 1 otherwise (like sshd -t). */
int mamorid_check_config(const char *path);
