#!/bin/sh
# Run from a build: mkdir -p /tmp/vm && cp build/gcc/btsock scripts/kernel-vm/sdp-check.sh /tmp/vm &&
#   ../shared/tools/kernel-vm/run-in-vm -d /tmp/vm "sh sdp-check.sh"
# btsock's SDP client and server against bluetoothd's SDP server / sdptool (kernel L2CAP).
bt-up -l1 -s > /tmp/addrs || exit 1
cat /tmp/addrs
K=00:AA:01:00:00:00
export BTSOCK_ADAPTER=unix:/tmp/bt-server-bredr
start-bluetoothd || exit 1
sleep 1
sdptool add --channel=10 SP || exit 1
echo "== 1. btsock sdp browse $K (bluetoothd's records)"
./btsock sdp browse $K | grep -E "Service Name|Channel|PSM"; echo "rc=$?"
sleep 3
echo "== 2. btsock sdp search 1101 $K"
./btsock sdp search 1101 $K | grep -E "Service Name|Channel"; echo "rc=$?"
sleep 3
echo "== 3. btsock listen --advertise, sdptool browse/search from the kernel side"
./btsock -n "btsock box" listen --advertise Logger --uuid 94f39d29-7d6d-437d-973b-fba39e49d4ee -d > /tmp/l.out 2> /tmp/l.err &
LP=$!
sleep 1
cat /tmp/l.err
B=$(sed -n 's/.*listening on \([0-9A-F:]*\).*/\1/p' /tmp/l.err)
echo "-- sdptool browse $B"
sdptool -i hci0 browse $B; echo "rc=$?"
echo "-- sdptool search --bdaddr $B 0x1101"
sdptool -i hci0 search --bdaddr $B 0x1101; echo "rc=$?"
echo "-- sdptool records $B"
sdptool -i hci0 records $B | head -30
echo "-- hcitool name / scan"
hcitool -i hci0 name $B
hcitool -i hci0 scan --flush
echo "-- rfcomm data to the advertised channel: rctest -s (kernel) to btsock"
CH=$(sdptool -i hci0 search --bdaddr $B 0x1101 | sed -n 's/.*Channel: \([0-9]*\).*/\1/p' | head -1)
echo "channel from SDP: $CH"
rctest -s -i hci0 -P "$CH" -N 10 -b 100 $B > /tmp/rc.log 2>&1
echo "rctest rc=$?"; tail -2 /tmp/rc.log
sleep 1
kill $LP 2>/dev/null
wc -c /tmp/l.out
echo "== 4. btsock scan sees the kernel adapter and its name"
./btsock scan -t 2; echo "rc=$?"
echo "== 5. btsock connect --uuid to a kernel RFCOMM server found by SDP"
rctest -r -i hci0 -P 10 -b 1000 > /tmp/rx.log 2>&1 &
RX=$!
sleep 0.5
head -c 5000 /dev/zero > /tmp/z
./btsock connect $K --uuid 1101 --send /tmp/z; echo "rc=$?"
sleep 1
kill $RX; cat /tmp/rx.log | tail -3
