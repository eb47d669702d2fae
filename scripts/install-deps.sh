#!/bin/sh
# Installs what btsock needs to build and test on Debian 12, from Debian's packages only.
# Safe to run again: apt-get skips what is already there. Run as root.
set -eu
pkgs="cmake make gcc clang libclang-rt-14-dev pkg-config libcmocka-dev valgrind
      bluez bluez-test-tools util-linux"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "install-deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
