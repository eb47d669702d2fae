#!/bin/bash
# Build the kernel + initramfs that run-in-vm boots for the kernel test tier (tests/kernel).
# Adapted from the team's developer rig (../shared/tools/kernel-vm/build-initramfs.sh): the
# project carries its own copy because CI runs from a clean checkout without ../shared.
# Changes: the kernel is pinned (no "newest deb" guess), no rootfs/h4-connect extras, a stamp
# so run-in-vm rebuilds when these files change.
#
# Output in $KVM_CACHE (run-in-vm calls this when its stamp there is missing or stale; ~10 s):
#   vmlinuz          the Debian 6.1 kernel
#   initramfs.cpio   busybox + Bluetooth modules + BlueZ tools + vm/ helpers (uncompressed, ~30 MB)
#   kernel/          the extracted kernel package (modules), redone only when the .deb changes
#   stamp            written by run-in-vm after a build: kernel, rig files' checksum, BlueZ version
#
# Environment:
#   KVM_CACHE   output dir (default /var/cache/btsock/kernel-vm/build)
#   KVER        kernel ABI name (default 6.1.0-54-amd64: -55..-57 oops on a Page Timeout
#               followed by a close, which the checks provoke)
#   KVM_DEBS    where linux-image-$KVER_*.deb is looked for and, if missing, `apt-get download`ed
#               (default /var/cache/btsock; scripts/install-deps.sh downloads it there);
#               falls back to $KVM_CACHE when KVM_DEBS is not writable
#   EXTRA_BINS  extra host executables to copy in (with their libraries)
#   EXTRA_MODS  extra kernel module names (dependencies are added)
#   FORCE=1     re-extract the kernel too
# Host packages: busybox-static kmod bluez bluez-test-tools dbus (scripts/install-deps.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${KVM_CACHE:-/var/cache/btsock/kernel-vm/build}"
DEBS="${KVM_DEBS:-/var/cache/btsock}"
KVER="${KVER:-6.1.0-54-amd64}"
mkdir -p "$CACHE"

log() { echo "[build-initramfs] $*" >&2; }

need() { command -v "$1" >/dev/null 2>&1 || { log "missing $1 (apt-get install $2)"; exit 1; }; }
need busybox busybox-static
need depmod kmod
need btvirt bluez-test-tools
need rctest bluez
need dbus-daemon dbus

# busybox must be the static one
if ldd "$(command -v busybox)" >/dev/null 2>&1; then
    log "busybox is dynamically linked; install busybox-static"; exit 1
fi

# ---------------------------------------------------------------- kernel
find_deb() { ls -1 "$DEBS"/linux-image-"$KVER"_*.deb "$CACHE"/linux-image-"$KVER"_*.deb 2>/dev/null | tail -1 || true; }
KERNEL_DEB="$(find_deb)"
if [ -z "$KERNEL_DEB" ]; then
    dest="$DEBS"
    mkdir -p "$dest" 2>/dev/null && [ -w "$dest" ] || dest="$CACHE"
    log "apt-get download linux-image-$KVER into $dest"
    ( cd "$dest" && apt-get download "linux-image-$KVER" 2>&1 | grep -v '^W: Download is performed unsandboxed' ) || true
    KERNEL_DEB="$(find_deb)"
    [ -n "$KERNEL_DEB" ] || { log "could not get linux-image-$KVER (apt-get download failed)"; exit 1; }
fi
log "kernel deb: $KERNEL_DEB"

KDIR="$CACHE/kernel"
if [ "${FORCE:-0}" = 1 ] || [ ! -f "$KDIR/lib/modules/$KVER/modules.dep" ] \
   || [ "$(cat "$KDIR/.deb" 2>/dev/null)" != "$KERNEL_DEB" ]; then
    rm -rf "$KDIR"; mkdir -p "$KDIR"
    dpkg-deb -x "$KERNEL_DEB" "$KDIR"
    depmod -b "$KDIR" "$KVER"
    echo "$KERNEL_DEB" > "$KDIR/.deb"
fi
cp -f "$KDIR/boot/vmlinuz-$KVER" "$CACHE/vmlinuz"
MODDIR="$KDIR/lib/modules/$KVER"

# ---------------------------------------------------------------- rootfs
ROOT="$CACHE/initramfs-root"
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,sbin,etc,proc,sys,dev,tmp,run,var/lib/bluetooth,mnt/host,rig,root,usr/bin,usr/sbin,usr/local/bin,lib64,lib/modules/"$KVER"}
ln -s ../run "$ROOT/var/run"

cp "$(command -v busybox)" "$ROOT/bin/busybox"
for a in $(busybox --list); do
    [ -e "$ROOT/bin/$a" ] || ln -s busybox "$ROOT/bin/$a"
done
# sbin names the kernel / scripts expect
for a in modprobe insmod rmmod lsmod depmod poweroff reboot halt; do
    ln -sf ../bin/busybox "$ROOT/sbin/$a"
done

# Kernel modules: wanted set + dependencies from modules.dep
# (btvirt's emulated controllers need AF_ALG: af_alg algif_hash algif_skcipher
#  ecb cmac; the ecdh self-test needs a default RNG: drbg jitterentropy_rng)
WANT_MODS="bluetooth rfcomm hci_vhci bnep cmac ecdh_generic
           drbg jitterentropy_rng ecb af_alg algif_hash algif_skcipher
           9p 9pnet_virtio virtio_pci virtio_console virtio-rng ${EXTRA_MODS:-}"
declare -A MODS=()
resolve() {  # module name -> relative path(s) with deps
    local name="$1" line path deps
    name="${name//-/_}"
    line="$(grep -E "/${name}\.ko(\.[a-z]+)?:|/${name//_/-}\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep" | head -1 || true)"
    if [ -z "$line" ]; then
        if grep -qE "/${name}\.ko" "$MODDIR/modules.builtin" 2>/dev/null; then return; fi
        log "WARNING: module $name not found"; return
    fi
    path="${line%%:*}"; deps="${line#*:}"
    MODS["$path"]=1
    for d in $deps; do MODS["$d"]=1; done
}
for m in $WANT_MODS; do resolve "$m"; done
# all generic crypto modules: the kernel request_module()s algorithms at
# run time (e.g. jitterentropy_rng needs sha3_generic, drbg needs it for
# seeding, ecdh's self-test needs drbg), which modules.dep does not show
for f in "$MODDIR"/kernel/crypto/*.ko* "$MODDIR"/kernel/lib/crypto/*.ko*; do
    n="$(basename "$f")"; resolve "${n%%.ko*}"
done
for p in "${!MODS[@]}"; do
    mkdir -p "$ROOT/lib/modules/$KVER/$(dirname "$p")"
    cp "$MODDIR/$p" "$ROOT/lib/modules/$KVER/$p"
done
cp "$MODDIR"/modules.{order,builtin,builtin.modinfo} "$ROOT/lib/modules/$KVER/"
depmod -b "$ROOT" "$KVER"
log "modules: ${#MODS[@]} files"

# Executables + shared libraries (ldd closure)
copy_bin() {  # copy host executable $1 to same path in $ROOT, plus its libs
    local src="$1" lib
    [ -e "$src" ] || { log "WARNING: $src missing"; return; }
    mkdir -p "$ROOT/$(dirname "$src")"
    cp -L "$src" "$ROOT/$src"
    ldd "$src" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
        [ -n "$lib" ] && [ -e "$lib" ] || continue
        mkdir -p "$ROOT/$(dirname "$lib")"
        [ -e "$ROOT/$lib" ] || cp -L "$lib" "$ROOT/$lib"
    done
}
# Debian 12 is usr-merged: /lib -> usr/lib; make the same layout
rm -rf "$ROOT/lib64"
mkdir -p "$ROOT/usr/lib/x86_64-linux-gnu" "$ROOT/usr/lib64"
mv "$ROOT/lib/modules" "$ROOT/usr/lib/modules"; rmdir "$ROOT/lib"
ln -s usr/lib "$ROOT/lib"; ln -s usr/lib64 "$ROOT/lib64"

# the BlueZ tools the checks use (libm etc. come along with them; btsock itself needs only libc)
BINS="/usr/bin/btvirt /usr/bin/rctest /usr/bin/l2test /usr/bin/sdptool /usr/bin/btmon
      /usr/bin/btmgmt /usr/bin/hcitool /usr/bin/l2ping /usr/bin/rfcomm /usr/bin/bluetoothctl
      /usr/bin/rfcomm-tester /usr/bin/l2cap-tester /usr/bin/bnep-tester
      /bin/hciconfig /usr/libexec/bluetooth/bluetoothd /usr/bin/dbus-daemon ${EXTRA_BINS:-}"
for b in $BINS; do
    [ -e "$b" ] || { [ -e "/usr$b" ] && b="/usr$b"; }
    if [ -e "$b" ]; then copy_bin "$b"; else log "skip $b (not on host)"; fi
done
# nss/ld config so glibc programs behave
cp /etc/ld.so.conf "$ROOT/etc/" 2>/dev/null || true
# minimal dbus system bus config (needed only by bluetoothd, which refuses to start without
# its policy file)
if [ -f /usr/share/dbus-1/system.conf ]; then
    mkdir -p "$ROOT/usr/share/dbus-1/system.d" "$ROOT/etc/dbus-1/system.d"
    cp /usr/share/dbus-1/system.conf "$ROOT/usr/share/dbus-1/"
    cp /etc/dbus-1/system.d/bluetooth.conf "$ROOT/etc/dbus-1/system.d/" 2>/dev/null \
        || cp /usr/share/dbus-1/system.d/bluetooth.conf "$ROOT/usr/share/dbus-1/system.d/" 2>/dev/null || true
else
    log "WARNING: no /usr/share/dbus-1/system.conf (apt-get install dbus): bluetoothd will not start"
fi
mkdir -p "$ROOT/etc/bluetooth"
printf 'root:x:0:0:root:/root:/bin/sh\nmessagebus:x:100:101::/run/dbus:/bin/false\n' > "$ROOT/etc/passwd"
printf 'root:x:0:\nmessagebus:x:101:\nbluetooth:x:102:\n' > "$ROOT/etc/group"
printf 'hosts: files\npasswd: files\ngroup: files\n' > "$ROOT/etc/nsswitch.conf"
echo "127.0.0.1 localhost" > "$ROOT/etc/hosts"

# rig scripts
install -m 755 "$HERE/vm/init" "$ROOT/init"
for s in bt-up bt-modules bt-down start-bluetoothd; do
    install -m 755 "$HERE/vm/$s" "$ROOT/usr/local/bin/$s"
done

# ---------------------------------------------------------------- pack
# uncompressed: boots ~0.5 s faster under TCG than gzip (no inflate)
( cd "$ROOT" && find . -print0 | busybox cpio -0 -o -H newc -R 0:0 2>/dev/null ) > "$CACHE/initramfs.cpio.tmp"
mv "$CACHE/initramfs.cpio.tmp" "$CACHE/initramfs.cpio"
log "done: $CACHE/vmlinuz $CACHE/initramfs.cpio ($(du -h "$CACHE/initramfs.cpio" | cut -f1))"
