#!/bin/sh
# Installs what btsock needs to build and test on Debian 12, from Debian's packages only.
# Safe to run again: apt-get skips what is already there. Run as root.
# libsystemd-dev: sd-bus, with which the kernel backend (hciN) publishes SDP records through
# bluetoothd (org.bluez.ProfileManager1).
# The kernel test tier (tests/kernel, tests/kernel-vm) needs qemu-system-x86, busybox-static,
# kmod, dbus (bluetoothd's system bus) and the pinned Debian kernel linux-image-$KVER: that one is
# only downloaded (`apt-get download`, not installed) into /var/cache/btsock, where
# tests/kernel-vm/build-initramfs.sh finds it.
set -eu
pkgs="cmake make gcc clang libclang-rt-14-dev pkg-config libcmocka-dev valgrind libsystemd-dev
      bluez bluez-test-tools util-linux
      qemu-system-x86 busybox-static kmod dbus"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
updated=0
if [ -n "$missing" ]; then
	echo "install-deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	updated=1
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The kernel the test VM boots (pinned: -55..-57 oops on a Page Timeout followed by a close).
KVER="${KVER:-6.1.0-54-amd64}"
debs=/var/cache/btsock
if ! ls "$debs"/linux-image-"$KVER"_*.deb >/dev/null 2>&1; then
	echo "install-deps: downloading linux-image-$KVER into $debs"
	mkdir -p "$debs"
	[ "$updated" = 1 ] || apt-get update -qq
	# (apt-get download as root warns that it cannot drop privileges; nothing else to see)
	(cd "$debs" && apt-get download -qq "linux-image-$KVER" 2>&1 |
		grep -v 'Download is performed unsandboxed' || true)
	ls "$debs"/linux-image-"$KVER"_*.deb >/dev/null 2>&1 ||
		echo "install-deps: WARNING: could not download linux-image-$KVER; the kernel tests will try again"
fi
