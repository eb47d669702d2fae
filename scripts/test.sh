#!/bin/sh
# The whole test suite, as CI runs it (.ci/run): installs its Debian packages, then
#  1. gcc build, -Werror, every unit and integration test (each integration test starts its
#     own btvirt in a private mount namespace, so tests run in parallel); then the kernel tier
#     (label kernel, tests/kernel): check scripts against the Linux kernel's Bluetooth stack in
#     qemu (TCG), one at a time on one CPU, ~4-5 min; the first run on a machine builds the
#     kernel + initramfs into build/gcc/kernel-vm (~40 s). Skipped, with one line, where qemu
#     cannot run;
#  2. clang build with AddressSanitizer + UBSan, the same tests, plus every libFuzzer target
#     for a few seconds from its seed corpus;
#  3. clang build with ThreadSanitizer: the tests of the public API's threads (many threads on
#     several adapters, adapters closed under blocked calls; tests/tsan.supp says what is
#     suppressed and why). it_controller_faults counts the process's fds, which TSan's own
#     symbolizer pipes upset: it runs under ASan and Valgrind-free gcc only;
#  4. Valgrind (memcheck, leaks are errors) over the unit tests and the core integration test.
# Run as root on Debian 12. Takes about 15 minutes on 2 cores.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=2

echo "== gcc build and tests"
cmake -S . -B build/gcc -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DBTSOCK_KERNEL_TESTS=ON >/dev/null
cmake --build build/gcc -j"$jobs"
ctest --test-dir build/gcc --output-on-failure -j"$jobs" -LE kernel

echo "== kernel tier (qemu, tests/kernel)"
kernel_rc=0
ctest --test-dir build/gcc --output-on-failure -L kernel || kernel_rc=$?
# each check script's summary ("N passed, M failed"), or once the reason the tier was skipped
grep -h -e '^== [^ ]*: [0-9]* passed, [0-9]* failed' -e '^SKIP: ' build/gcc/Testing/Temporary/LastTest.log |
	awk '/^SKIP: / { if (skip++) next } { print }' || true
[ "$kernel_rc" -eq 0 ]

echo "== clang build with ASan/UBSan, tests and fuzz targets"
cmake -S . -B build/asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	-DBTSOCK_SANITIZE=ON -DBTSOCK_FUZZ=ON >/dev/null
cmake --build build/asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build/asan --output-on-failure -j"$jobs"

echo "== clang build with ThreadSanitizer, the API tests"
cmake -S . -B build/tsan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DBTSOCK_TSAN=ON >/dev/null
tsan_tests="it_api_threads it_api_runtime it_api_rfcomm it_api_l2cap it_api_linkloss it_api_security it_transport_packets"
cmake --build build/tsan -j"$jobs" # the tests run the CLI and the examples as processes too
TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$PWD/tests/tsan.supp" \
	ctest --test-dir build/tsan --output-on-failure -j"$jobs" -R "integration/($(echo $tsan_tests | tr ' ' '|'))\$"

echo "== valgrind"
vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"
failed=0
for t in build/gcc/tests/test_* build/gcc/tests/it_core_l2cap; do
	[ -x "$t" ] || continue
	if ! $vg "$t" >"$t.valgrind.log" 2>&1; then
		echo "valgrind: $t failed:"
		tail -40 "$t.valgrind.log"
		failed=$((failed + 1))
	fi
done
count=$(ls build/gcc/tests/test_* build/gcc/tests/it_core_l2cap 2>/dev/null | grep -vc '\.log$' || true)
echo "valgrind: $((count - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
