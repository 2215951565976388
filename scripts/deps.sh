#!/bin/sh
# Installs the Debian packages of one purpose that are missing (the
# Makefile's deps-* targets), saying which and why, with apt's own output.
#   scripts/deps.sh "what they are for" PACKAGE...
# PACKAGE=COMMAND counts as present when COMMAND is on the PATH even if the
# package is not installed: a kubectl from another source (Google's
# package) owns /usr/bin/kubectl, and Debian's kubernetes-client could not
# be installed beside it.
set -eu
why=$1
shift
missing=
for spec in "$@"; do
    pkg=${spec%%=*}
    cmd=${spec#*=}
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
        continue
    fi
    if [ "$cmd" != "$spec" ] && command -v "$cmd" >/dev/null 2>&1; then
        continue
    fi
    missing="$missing $pkg"
done
[ -n "$missing" ] || exit 0
echo "installing$missing ($why)"
if [ "$(id -u)" != 0 ]; then
    echo "need root to install:$missing (run the same make as root, or apt-get install them)" >&2
    exit 1
fi
apt-get update
# shellcheck disable=SC2086  # one word per package
DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
