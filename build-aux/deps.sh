#!/bin/sh
# deps.sh: installs the Debian 12 packages that building, testing and
# benchmarking libratelimit need.  Idempotent: installs only what is
# missing, and asks for sudo only when not root.
set -eu

PKGS="build-essential autoconf automake libtool pkg-config libevent-dev
libhiredis-dev libssl-dev check redis-server redis-tools curl wrk
python3 python3-prometheus-client valgrind"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "deps.sh: installing:$missing"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
