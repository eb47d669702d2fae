#!/bin/sh
# One-way RFCOMM throughput between two btsock processes through btvirt, next to the raw H4
# ceiling of the same btvirt (../shared/tools/btvirt-ceiling.c when present), everything pinned
# to CPU 0 (cross-CPU wake-ups on these VMs cost ~10x). Run as root after a build in build/gcc.
# Usage: bench/rfcomm-vs-ceiling.sh [MiB]
set -eu
cd "$(dirname "$0")/.."
mib=${1:-20}
bin=build/gcc/btsock
[ -x "$bin" ] || { echo "build first: cmake -S . -B build/gcc && cmake --build build/gcc" >&2; exit 1; }
taskset -c 0 unshare -m sh -c 'mount --make-rprivate / && mount -t tmpfs none /tmp && exec btvirt -s' >/dev/null 2>&1 &
bv=$!
trap 'kill $bv 2>/dev/null; rm -rf "$work"' EXIT
work=$(mktemp -d)
sock=/proc/$bv/root/tmp/bt-server-bredr
while [ ! -S "$sock" ]; do sleep 0.05; done
export BTSOCK_ADAPTER="unix:$sock"
ceiling=""
if [ -f ../shared/tools/btvirt-ceiling.c ]; then
	cc -O2 -o "$work/ceiling" ../shared/tools/btvirt-ceiling.c
	ceiling=$(taskset -c 0 "$work/ceiling" 3 "$sock" | tail -1)
	echo "ceiling: $ceiling"
fi
head -c $((mib * 1024 * 1024)) /dev/zero > "$work/data"
taskset -c 0 "$bin" listen 1 -d > /dev/null 2> "$work/l.err" &
lp=$!
while ! grep -q "listening on" "$work/l.err"; do sleep 0.05; done
addr=$(sed -n 's/.*listening on \([0-9A-F:]*\).*/\1/p' "$work/l.err")
t0=$(date +%s.%N)
taskset -c 0 "$bin" connect "$addr" 1 --send "$work/data" --quiet
t1=$(date +%s.%N)
wait $lp || true
awk -v b=$((mib * 1024 * 1024)) -v t0="$t0" -v t1="$t1" \
	'BEGIN { printf "rfcomm one-way: %d MiB in %.2f s = %.2f MB/s payload\n", b/1048576, t1-t0, b/(t1-t0)/1e6 }'
