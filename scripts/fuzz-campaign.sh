#!/bin/sh
# fuzz-campaign.sh - runs every libFuzzer target (tests/fuzz/fuzz_*.c) for a fixed time each,
# several at once, and reports per target: runs, exec/s, coverage (cov/ft), corpus size and
# any crash file. Exits 1 if any target found something (crash, leak, timeout, OOM).
#
#   scripts/fuzz-campaign.sh [-t SECONDS | -c CPUSECONDS] [-j PARALLEL] [-w WORKDIR] [-b BUILDDIR] [-m] [TARGET...]
#
#   -t  seconds per target, wall clock (default 1800: 30 minutes)
#   -c  CPU seconds per target instead: each fuzzer runs until it has used that much CPU time
#       (on a shared machine wall time overstates the work done; -c 1800 = 30 CPU-minutes)
#   -j  targets run at the same time, one core each (default: the number of cores)
#   -w  work directory: corpus/<name>/ grows across campaigns, logs/ and crashes/ are per run
#       (default build/fuzz-campaign)
#   -b  the fuzz build directory, configured and built here if needed (default build/fz)
#   -m  afterwards merge what the campaign found into tests/fuzz/corpus/<name>/ (libFuzzer
#       -merge=1: only inputs that add coverage, minimised set)
#   TARGET  names like fuzz_l2cap_chan (default: all)
#
# Each target starts from its seed corpus tests/fuzz/corpus/<name without fuzz_>/ and the work
# corpus. Findings are copied to WORKDIR/crashes/<target>/ with the log next to them.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
secs=1800
par=$(nproc 2>/dev/null || echo 2)
work=$src/build/fuzz-campaign
build=$src/build/fz
merge=0
cpu=0
while getopts t:c:j:w:b:m opt; do
	case $opt in
	t) secs=$OPTARG ;;
	c) cpu=$OPTARG ;;
	j) par=$OPTARG ;;
	w) work=$OPTARG ;;
	b) build=$OPTARG ;;
	m) merge=1 ;;
	*) sed -n '2,22p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

if [ $# -gt 0 ]; then
	targets=$*
else
	targets=$(for f in "$src"/tests/fuzz/fuzz_*.c; do basename "$f" .c; done)
fi

# ---- build (clang, ASan + UBSan + libFuzzer, as CI)
if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DBTSOCK_SANITIZE=ON -DBTSOCK_FUZZ=ON >/dev/null
fi
for t in $targets; do
	nice -n 10 cmake --build "$build" -j"$par" --target "$t" >/dev/null
done

mkdir -p "$work/logs" "$work/crashes"
stamp=$(date -u +%Y%m%dT%H%M%SZ)

# ---- one target: runs in the background, writes its log and a result line
run_one() {
	t=$1
	name=${t#fuzz_}
	corpus=$work/corpus/$name
	out=$work/crashes/$t
	log=$work/logs/$t-$stamp.log
	mkdir -p "$corpus" "$out"
	seeds=$src/tests/fuzz/corpus/$name
	[ -d "$seeds" ] || seeds=
	# -fork is not used: one process per target, $par targets side by side.
	limit=$secs
	[ "$cpu" -gt 0 ] && limit=$((cpu * 20)) # the CPU budget below stops it first
	nice -n 10 "$build/tests/$t" -max_total_time="$limit" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$out/" "$corpus" $seeds >"$log" 2>&1 &
	fpid=$!
	watch_cpu "$fpid" "$log.cpu"
	wait "$fpid" || true
}

# CPU seconds (user + system) a process has used so far, from /proc/PID/stat (proc(5): fields
# 14 and 15, in clock ticks; the command name in field 2 has no spaces here).
cpu_seconds() {
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%d\n", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null
}

# Records the fuzzer's CPU time every 5 s into FILE; with -c, interrupts it (SIGINT: libFuzzer
# prints its final stats) once it has used the budget.
watch_cpu() {
	while kill -0 "$1" 2>/dev/null; do
		used=$(cpu_seconds "$1")
		[ -n "$used" ] && echo "$used" >"$2"
		if [ "$cpu" -gt 0 ] && [ "${used:-0}" -ge "$cpu" ]; then
			kill -INT "$1" 2>/dev/null
			break
		fi
		sleep 5
	done
}

# Runs the targets $par at a time.
running=0
pids=
for t in $targets; do
	run_one "$t" &
	pids="$pids $!"
	running=$((running + 1))
	if [ "$running" -ge "$par" ]; then
		wait $(echo "$pids" | awk '{print $1}')
		pids=$(echo "$pids" | awk '{$1=""; print}')
		running=$((running - 1))
	fi
done
wait

# ---- report
found=0
printf '%-22s %7s %10s %8s %7s %7s %7s  %s\n' target cpu-s runs exec/s cov ft corpus finding
for t in $targets; do
	log=$work/logs/$t-$stamp.log
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
	cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(ls "$work/corpus/${t#fuzz_}" | wc -l)
	cpus=$(cat "$log.cpu" 2>/dev/null || echo '?')
	crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
	if [ -n "$crash" ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehavior|libFuzzer)' "$log"; then
		found=1
		[ -n "$crash" ] || crash="see $log"
	fi
	printf '%-22s %7s %10s %8s %7s %7s %7s  %s\n' "$t" "$cpus" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" \
		"$corp" "${crash:-none}"
done
echo "logs: $work/logs/*-$stamp.log"

if [ "$merge" = 1 ]; then
	for t in $targets; do
		name=${t#fuzz_}
		mkdir -p "$src/tests/fuzz/corpus/$name"
		before=$(ls "$src/tests/fuzz/corpus/$name" | wc -l)
		nice -n 10 "$build/tests/$t" -merge=1 -timeout=10 "$src/tests/fuzz/corpus/$name" \
			"$work/corpus/$name" >"$work/logs/$t-$stamp-merge.log" 2>&1 || true
		after=$(ls "$src/tests/fuzz/corpus/$name" | wc -l)
		echo "merged $t: $before -> $after seeds in tests/fuzz/corpus/$name"
	done
fi
exit "$found"
