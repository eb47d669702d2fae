#!/bin/sh
# In CTest as kernel/sdp (tests/kernel; BTSOCK_KERNEL_TESTS=ON): ctest --test-dir build/gcc -R kernel/sdp
# By hand: mkdir -p /tmp/vm && cp build/gcc/btsock scripts/kernel-vm/sdp-check.sh /tmp/vm &&
#   taskset -c 1 tests/kernel-vm/run-in-vm -d /tmp/vm "sh sdp-check.sh"
# btsock's SDP client and server against bluetoothd's SDP server / sdptool (kernel L2CAP).
# Prints every output; exits 1 if any step failed (a FAIL line says which).
bt-up -l1 -s > /tmp/addrs || { echo "FAIL: bt-up (btvirt controllers)"; exit 1; }
cat /tmp/addrs
K=00:AA:01:00:00:00
fail=0
check() { if [ "$1" = 0 ]; then echo "ok: $2"; else echo "FAIL: $2"; fail=1; fi; }
export BTSOCK_ADAPTER=unix:/tmp/bt-server-bredr
# listen_addr FILE: btsock listen's address from its "listening on ADDR" line, waiting up to
# 10 s (under TCG on a loaded host the first start takes seconds; see rfcomm-check.sh)
listen_addr() {
	i=0
	while ! grep -q "listening on" "$1" 2>/dev/null && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.2; done
	sed -n 's/.*listening on \([0-9A-F:]*\).*/\1/p' "$1"
}
start-bluetoothd || { echo "FAIL: start-bluetoothd"; exit 1; }
sleep 1
sdptool add --channel=10 SP || { echo "FAIL: sdptool add"; exit 1; }
echo "== 1. btsock sdp browse $K (bluetoothd's records)"
./btsock sdp browse $K > /tmp/browse.txt; check $? "sdp browse"
grep -E "Service Name|Channel|PSM" /tmp/browse.txt
grep -q "Serial Port" /tmp/browse.txt; check $? "browse lists bluetoothd's Serial Port record"
sleep 3
echo "== 2. btsock sdp search 1101 $K"
./btsock sdp search 1101 $K > /tmp/search.txt; check $? "sdp search 1101"
grep -E "Service Name|Channel" /tmp/search.txt
grep -q "Channel: 10" /tmp/search.txt; check $? "search finds channel 10"
sleep 3
echo "== 3. btsock listen --advertise, sdptool browse/search from the kernel side"
./btsock -n "btsock box" listen --advertise Logger --uuid 94f39d29-7d6d-437d-973b-fba39e49d4ee -d > /tmp/l.out 2> /tmp/l.err &
LP=$!
B=$(listen_addr /tmp/l.err)
cat /tmp/l.err
[ -n "$B" ]; check $? "btsock listen --advertise started (address $B)"
echo "-- sdptool browse $B"
sdptool -i hci0 browse $B > /tmp/sb.txt; check $? "sdptool browse"
cat /tmp/sb.txt
grep -q "Logger" /tmp/sb.txt; check $? "sdptool browse sees btsock's Logger record"
echo "-- sdptool search --bdaddr $B 0x1101"
sdptool -i hci0 search --bdaddr $B 0x1101; check $? "sdptool search 0x1101"
echo "-- sdptool records $B"
sdptool -i hci0 records $B | head -30
echo "-- hcitool name / scan"
hcitool -i hci0 name $B
hcitool -i hci0 scan --flush
echo "-- rfcomm data to the advertised channel: rctest -s (kernel) to btsock"
CH=$(sdptool -i hci0 search --bdaddr $B 0x1101 | sed -n 's/.*Channel: \([0-9]*\).*/\1/p' | head -1)
echo "channel from SDP: $CH"
rctest -s -i hci0 -P "$CH" -N 10 -b 100 $B > /tmp/rc.log 2>&1
check $? "rctest -s to the channel found by SDP"; tail -2 /tmp/rc.log
sleep 1
kill $LP 2>/dev/null
[ "$(wc -c < /tmp/l.out)" = 1000 ]; check $? "btsock received 1000 bytes ($(wc -c < /tmp/l.out))"
echo "== 4. btsock scan sees the kernel adapter and its name"
./btsock scan -t 2 > /tmp/scan.txt; check $? "btsock scan"
cat /tmp/scan.txt
grep -q "$K" /tmp/scan.txt; check $? "scan sees $K"
echo "== 5. btsock connect --uuid to a kernel RFCOMM server found by SDP"
rctest -r -i hci0 -P 10 -b 1000 > /tmp/rx.log 2>&1 &
RX=$!
sleep 0.5
head -c 5000 /dev/zero > /tmp/z
./btsock connect $K --uuid 1101 --send /tmp/z -q; check $? "connect --uuid 1101 and send 5000 bytes"
sleep 1
kill $RX; cat /tmp/rx.log | tail -3
exit $fail
