#!/bin/sh
# In CTest as kernel/pairing (tests/kernel; BTSOCK_KERNEL_TESTS=ON): ctest --test-dir build/gcc -R kernel/pairing
# By hand: mkdir -p /tmp/vm && cp build/gcc/btsock scripts/kernel-vm/pairing-check.sh /tmp/vm &&
#   taskset -c 1 tests/kernel-vm/run-in-vm -d /tmp/vm "sh pairing-check.sh"
# Pairing with the kernel and bluetoothd (which bonds, and refuses a Just Works re-pairing from
# an address it holds a key for): four rounds, each a fresh btsock process on the same
# address, of kernel -> btsock (rctest -s) then btsock -> kernel (Secure Simple Pairing when
# the kernel answers "security block"). With BTSOCK_KEYS every round must pass; the key file
# must be mode 0600. Exits 1 on any failure.
bt-up -l1 -s > /tmp/addrs || { echo "FAIL: bt-up (btvirt controllers)"; exit 1; }
K=00:AA:01:00:00:00
export BTSOCK_ADAPTER=unix:/tmp/bt-server-bredr
export BTSOCK_KEYS=/tmp/btsock-keys
start-bluetoothd || { echo "FAIL: start-bluetoothd"; exit 1; }
sleep 1
rctest -r -i hci0 -P 10 > /tmp/rx.log 2>&1 &
head -c 5000 /dev/zero > /tmp/z
fail=0
check() { if [ "$1" = 0 ]; then echo "ok: $2"; else echo "FAIL: $2"; fail=1; fi; }
# listen_addr FILE: btsock listen's address from its "listening on ADDR" line, waiting up to
# 10 s (under TCG on a loaded host the first start takes seconds; see rfcomm-check.sh)
listen_addr() {
	i=0
	while ! grep -q "listening on" "$1" 2>/dev/null && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.2; done
	sed -n 's/.*listening on \([0-9A-F:]*\).*/\1/p' "$1"
}
for i in 1 2 3 4; do
	./btsock listen -d 11 > /tmp/l.out 2> /tmp/l.err &
	LP=$!
	sleep 1.5
	B=$(listen_addr /tmp/l.err)
	rctest -s -i hci0 -P 11 -N 5 -b 100 "$B" > /tmp/rc.log 2>&1
	check $? "round $i: kernel -> btsock $B (rctest -s)"
	sleep 0.5
	kill $LP 2>/dev/null
	wait $LP 2>/dev/null
	./btsock connect $K 10 --send /tmp/z -q
	check $? "round $i: btsock -> kernel, a new process with the stored key"
	sleep 1
done
echo "-- the key file"
cat /tmp/btsock-keys
[ "$(stat -c %a /tmp/btsock-keys)" = 600 ]; check $? "key file mode 0600"
exit $fail
