#!/bin/sh
# Every RFCOMM benchmark of `btsock bench` next to the btvirt ceiling and the targets of the
# RFCOMM issue, all pinned to CPU 0 (cross-CPU wake-ups on these VMs cost ~10x). Run as root
# after a build in build/gcc. Usage: bench/run.sh [MiB] [connects]
set -eu
cd "$(dirname "$0")/.."
mib=${1:-20}
count=${2:-200}
bin=build/gcc/btsock
[ -x "$bin" ] || { echo "build first: cmake -S . -B build/gcc && cmake --build build/gcc" >&2; exit 1; }
command -v btvirt >/dev/null || { echo "btvirt missing: apt-get install bluez-test-tools" >&2; exit 1; }
trap "" PIPE # btvirt dies of SIGPIPE when a client it writes to has exited; ignored stays ignored across exec
taskset -c 0 unshare -m sh -c 'mount --make-rprivate / && mount -t tmpfs none /tmp && exec btvirt -s' >/dev/null 2>&1 &
bv=$!
work=$(mktemp -d)
trap 'kill $bv 2>/dev/null; rm -rf "$work"' EXIT
sock=/proc/$bv/root/tmp/bt-server-bredr
for i in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "btvirt did not come up" >&2; exit 1; }
export BTSOCK_ADAPTER="unix:$sock"
# The ceiling moves by +-10 % from one 3 s sample to the next on these VMs: it is measured
# before and after btsock's runs (and once between), and the ratios use the median of the three.
ceiling_kbs=""
have_ceiling=false
[ -f ../shared/tools/btvirt-ceiling.c ] && cc -O2 -o "$work/ceiling" ../shared/tools/btvirt-ceiling.c && have_ceiling=true
ceiling() {
	$have_ceiling || return 0
	line=$(taskset -c 0 "$work/ceiling" 3 "$sock" | tail -1)
	echo "ceiling: $line"
	echo "$line" | sed -n 's/.*=> \([0-9]*\) kB\/s.*/\1/p' >> "$work/ceilings"
}
$have_ceiling || echo "ceiling: ../shared/tools/btvirt-ceiling.c not found, ratios not computed"
ceiling
cc -O2 -o "$work/raw-bin" bench/btvirt-raw.c
taskset -c 0 "$work/raw-bin" 2000 "$sock" | tee "$work/raw"
ceiling
taskset -c 0 "$bin" bench --mib "$mib" --count "$count" | tee "$work/out"
ceiling
if $have_ceiling; then
	ceiling_kbs=$(sort -n "$work/ceilings" | sed -n 2p)
	echo "ceiling (median of 3): $ceiling_kbs kB/s"
fi
echo "--- against the targets"
awk -v c="$ceiling_kbs" '
/^oneway:/ { v=$2; r = c ? sprintf("%.0f %% of the ceiling", v*1e6/(c*1000)*100) : "no ceiling";
	printf "one-way    %6.2f MB/s   %s (target >= 80 %%)\n", v, r }
/^duplex:/ { v=$2; r = c ? sprintf("%.0f %% of the ceiling", v*1e6/(c*1000)*100) : "no ceiling";
	printf "duplex     %6.2f MB/s   %s (target >= 80 %%, both directions summed)\n", v, r }
/^connect:/ { printf "connect    %6.3f ms median (target <= 0.4 ms)\n", $3 }
/^raw echo \(two/ { floor = $6 }
/^echo:/ { printf "echo       %6.1f us median (target <= 30 us; btvirt alone, no host stack: %s us)\n", $6, floor }
/^memory:/ { for (i = 1; i <= NF; i++) if ($i == "KiB" && $(i+1) == "per") v = $(i-1);
	printf "memory     %6.1f KiB per channel end (target <= 16 KiB)\n", v }
' "$work/raw" "$work/out"
