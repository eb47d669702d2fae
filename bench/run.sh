#!/bin/sh
# Every RFCOMM benchmark of `btsock bench` next to the btvirt ceiling and the targets of the
# RFCOMM issue, all pinned to CPU 0 (cross-CPU wake-ups on these VMs cost ~10x). Run as root
# after a build in build/gcc. Usage: bench/run.sh [MiB] [connects] [baseline-btsock]
# With a baseline binary (e.g. from bench/build-baseline.sh, an older commit with today's
# bench), both run in the same btvirt, one after the other (baseline, this build, baseline,
# this build: drift on a shared machine hits both), and a table puts them side by side;
# figures an older bench does not print (e.g. the first-connect medians) stay empty there.
# BTSOCK_BIN overrides this build's binary (default build/gcc/btsock).
set -eu
cd "$(dirname "$0")/.."
mib=${1:-20}
count=${2:-200}
base=${3:-}
bin=${BTSOCK_BIN:-build/gcc/btsock}
[ -x "$bin" ] || { echo "build first: cmake -S . -B build/gcc && cmake --build build/gcc" >&2; exit 1; }
[ -z "$base" ] || [ -x "$base" ] || { echo "baseline $base: not an executable" >&2; exit 1; }
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
cc -O2 -pthread -o "$work/handoff" bench/handoff.c
taskset -c 0 "$work/handoff" | tee -a "$work/raw"
ceiling
if [ -n "$base" ]; then
	for round in 1 2; do
		echo "--- baseline $base (round $round)"
		taskset -c 0 "$base" bench --mib "$mib" --count "$count" | tee -a "$work/base"
		ceiling
		echo "--- this build $bin (round $round)"
		taskset -c 0 "$bin" bench --mib "$mib" --count "$count" | tee -a "$work/out"
	done
else
	taskset -c 0 "$bin" bench --mib "$mib" --count "$count" | tee "$work/out"
fi
ceiling
if $have_ceiling; then
	ceiling_kbs=$(sort -n "$work/ceilings" | sed -n "$(( ($(wc -l < "$work/ceilings") + 1) / 2 ))p")
	echo "ceiling (median of $(wc -l < "$work/ceilings")): $ceiling_kbs kB/s"
fi
echo "--- against the targets"
awk -v c="$ceiling_kbs" '
/^oneway:/ { v=$2; r = c ? sprintf("%.0f %% of the ceiling", v*1e6/(c*1000)*100) : "no ceiling";
	printf "one-way    %6.2f MB/s   %s (target >= 80 %%)\n", v, r }
/^duplex:/ { v=$2; r = c ? sprintf("%.0f %% of the ceiling", v*1e6/(c*1000)*100) : "no ceiling";
	printf "duplex     %6.2f MB/s   %s (target >= 80 %%, both directions summed)\n", v, r }
/^connect:/ { printf "connect    %6.3f ms median (target <= 0.4 ms)\n", $3 }
/^first-nossp:/ { printf "first      %6.3f ms median, no security (issue 12: half of 1.6-2.1 ms)\n", $3 }
/^first-ssp:/ { printf "first      %6.3f ms median, SSP Just Works + encryption\n", $3 }
/^raw echo \(two/ { floor = $6 }
/^hand-off:/ { hop = $2 }
/^echo:/ { printf "echo       %6.1f us median (target <= 30 us; btvirt alone, no host stack: %s us; with the 4 thread hand-offs of a socket that is a real fd: %.1f us)\n", $6, floor, floor + 4 * hop }
/^memory:/ { for (i = 1; i <= NF; i++) if ($i == "KiB" && $(i+1) == "per") v = $(i-1);
	printf "memory     %6.1f KiB per channel end (target <= 16 KiB)\n", v }
' "$work/raw" "$work/out"
[ -n "$base" ] || exit 0
# Side by side: every figure of both builds, each round (baseline first).
echo "--- side by side (same btvirt, same run; rounds in the order they ran)"
fig() { # file -> one line per round: oneway duplex connect first-nossp first-ssp echo memory and counts
	awk '
	/^oneway:/ { o=$2 } /^duplex:/ { d=$2 } /^connect:/ { c=$3; first1=$0; sub(/.*link set-up: /, "", first1); sub(/ ms.*/, "", first1);
		pk=$0; sub(/.*; /, "", pk); sub(/ HCI.*/, "", pk) }
	/^first-nossp:/ { fn=$3; fnp=$6; split($0, a, "per first connect "); fnc=a[2] }
	/^first-ssp:/ { fs=$3; fsp=$6; split($0, a, "per first connect "); fsc=a[2] }
	/^echo:/ { e=$6 }
	/^memory:/ { for (i = 1; i <= NF; i++) if ($i == "KiB" && $(i+1) == "per") m=$(i-1);
		printf "%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n", o, d, c, first1, pk, fn, fnp, fnc, fs, fsp, fsc, e, m, "" }
	' "$1"
}
fig "$work/base" > "$work/base.t"
fig "$work/out" > "$work/out.t"
paste -d'\n' "$work/base.t" "$work/out.t" | awk -F'|' -v nb="$base" -v nn="$bin" '
BEGIN { split("one-way MB/s|duplex MB/s|connect median ms (link up)|first connect, one sample ms|HCI packets per connect+close|first, no SSP, median ms|first, no SSP, p99 ms|first, no SSP, per connect|first, SSP, median ms|first, SSP, p99 ms|first, SSP, per connect|echo median us|memory KiB/channel end", name, "|") }
{ for (i = 1; i <= 13; i++) v[NR, i] = $i; rows = NR }
END {
	printf "%-32s", "figure"
	for (r = 1; r <= rows; r++) printf " | %-22s", (r % 2 ? "baseline" : "this build") " r" int((r + 1) / 2)
	printf "\n"
	for (i = 1; i <= 13; i++) {
		printf "%-32s", name[i]
		for (r = 1; r <= rows; r++) printf " | %-22s", v[r, i]
		printf "\n"
	}
	printf "baseline: %s\nthis build: %s\n", nb, nn
}'
