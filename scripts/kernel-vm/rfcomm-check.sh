#!/bin/sh
# In CTest as kernel/rfcomm (tests/kernel; BTSOCK_KERNEL_TESTS=ON): ctest --test-dir build/gcc -R kernel/rfcomm
# By hand: mkdir -p /tmp/vm && cp build/gcc/btsock scripts/kernel-vm/rfcomm-check.sh /tmp/vm &&
#   taskset -c 1 tests/kernel-vm/run-in-vm -d /tmp/vm "sh rfcomm-check.sh"
# btsock's RFCOMM (on btvirt's socket) against the Linux kernel's RFCOMM (rctest on hci0):
# data both ways (rctest counts what it reads; btsock's output is counted), and repeated
# connects. Exits non-zero on any failure.
bt-up -l1 -s > /tmp/addrs || { echo "FAIL: bt-up (btvirt controllers)"; exit 1; }
cat /tmp/addrs
K=00:AA:01:00:00:00
export BTSOCK_ADAPTER=unix:/tmp/bt-server-bredr
fail=0
check() { if [ "$1" = 0 ]; then echo "ok: $2"; else echo "FAIL: $2"; fail=1; fi; }

# rctest -d logs "Received N bytes" for each read: the sum is what the kernel delivered.
received() { sed -n 's/.*Received \([0-9]*\) bytes.*/\1/p' "$1" | awk '{ n += $1 } END { print n + 0 }'; }

echo "== 1. btsock connect --send (300 kB) -> kernel rctest -d"
head -c 300000 /dev/urandom > /tmp/tx
rctest -d -i hci0 -P 10 > /tmp/rctest1.log 2>&1 &
RX=$!
sleep 0.5
./btsock connect $K 10 --send /tmp/tx; rc=$?
sleep 1
kill $RX 2>/dev/null
check $rc "btsock connect exit status"
n=$(received /tmp/rctest1.log)
[ "$n" = 300000 ]; check $? "the kernel received 300000 bytes (got $n)"

echo "== 2. kernel rctest -s (200 x 1000 bytes) -> btsock listen"
./btsock listen -d 11 > /tmp/got 2> /tmp/listen.err &
LP=$!
# Wait for "listening on ADDR" (up to 10 s: under TCG the first start can take seconds).
B=
for i in $(seq 50); do
	B=$(sed -n 's/.*listening on \([0-9A-F:]*\).*/\1/p' /tmp/listen.err)
	[ -n "$B" ] && break
	sleep 0.2
done
echo "btsock listens on $B"
rctest -s -i hci0 -P 11 -b 1000 -N 200 "$B" > /tmp/rctest2.log 2>&1; rc=$?
[ $rc = 0 ] || tail -3 /tmp/rctest2.log
check $rc "rctest -s exit status"
sleep 1
kill $LP 2>/dev/null
wait $LP 2>/dev/null
n=$(wc -c < /tmp/got)
[ "$n" = 200000 ]; check $? "btsock received 200000 bytes (got $n)"

echo "== 3. ten connects in a row to a kernel listener, 1000 bytes each"
head -c 1000 /dev/urandom > /tmp/small
ok=0
for i in 1 2 3 4 5 6 7 8 9 10; do
	rctest -d -i hci0 -P 12 > /tmp/rx$i.log 2>&1 &
	RX=$!
	sleep 0.3
	./btsock connect $K 12 --send /tmp/small 2> /tmp/c$i.err && sleep 0.3 && [ "$(received /tmp/rx$i.log)" = 1000 ] &&
		ok=$((ok + 1))
	kill $RX 2>/dev/null
	wait $RX 2>/dev/null
	[ -s /tmp/c$i.err ] && grep -v "^\[" /tmp/c$i.err | tail -1
done
[ "$ok" = 10 ]; check $? "$ok of 10 connects delivered their data"
exit $fail
