#!/bin/sh
# In CTest as kernel/userchan (tests/kernel; BTSOCK_KERNEL_TESTS=ON): ctest --test-dir build/gcc -R kernel/userchan
# By hand: mkdir -p /tmp/vm && cp build/gcc/btsock scripts/kernel-vm/userchan-check.sh /tmp/vm &&
#   taskset -c 1 tests/kernel-vm/run-in-vm -d /tmp/vm "sh userchan-check.sh"
# btsock's userchan:hciN transport (Linux HCI user channel) against the kernel's own stack:
# `bt-up -l2 -s` makes two kernel controllers hci0, hci1 and btvirt's socket server in one
# btvirt; btsock takes hci1 away from the kernel and talks RFCOMM, L2CAP and SDP to hci0
# (rctest, l2test, bluetoothd) and to a second btsock on unix:/tmp/bt-server-bredr.
# Checks: 1. errors (no such adapter; a second process on the same adapter) and taking an
# adapter the kernel has UP (btsock brings it down itself, as include/btsock.h says: "takes hciN
# away from the kernel"); 2-5. RFCOMM and L2CAP both ways with rctest/l2test, data checked;
# 6. btsock <-> btsock (userchan / unix), byte-exact; 7. SDP both ways; 8. hci1 back to the kernel.
# Prints "== N. what", each step's rc, and an ok:/FAIL: line per check; exits 1 if any failed.
# Takes ~85 s under TCG. docs/KERNEL-CHECKS.md has the last run.
B=./btsock
U="-a userchan:hci1"
FAILS=0
pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
# wait_for FILE PATTERN: up to 10 s for a line (a listener's "listening on ...")
wait_for() {
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 100 ] && return 1; sleep 0.1
    done
}
# tx CMD...: run a sender, show its stderr without the progress bar (the VM console is a
# terminal) and its rc (also in TXRC)
tx() {
    "$@" 2> /tmp/tx.err; TXRC=$?
    tr '\r' '\n' < /tmp/tx.err | grep -v -e '^\[' -e '^ *$'
    echo "rc=$TXRC"
}
# same_file A B WHAT: byte-exact comparison
same_file() {
    if cmp -s "$1" "$2"; then pass "$3 ($(wc -c < "$2") bytes, identical)"
    else fail "$3: sent $(wc -c < "$1") bytes, received $(wc -c < "$2" 2>/dev/null || echo none)"; fi
}

bt-up -l2 -s > /tmp/addrs || { echo "FAIL: bt-up (btvirt controllers)"; exit 1; }
cat /tmp/addrs
K0=$(awk '$1=="hci0"{print $2}' /tmp/addrs)
K1=$(awk '$1=="hci1"{print $2}' /tmp/addrs)
uname -r
head -c 100000 /dev/urandom > /tmp/data.bin

echo "== 1. error cases"
echo "-- userchan:hci9 (no such adapter)"
$B -a userchan:hci9 info > /dev/null 2> /tmp/e.err; rc=$?; cat /tmp/e.err; echo "rc=$rc"
if [ $rc -eq 3 ] && grep -q "no adapter hci9" /tmp/e.err; then pass "hci9: exit 3, 'no adapter'"; else fail "hci9"; fi
echo "-- userchan:hci1 while the kernel has it UP: btsock takes it down itself (documented: 'takes hciN away from the kernel')"
hciconfig hci1 | grep -E "UP|DOWN"
$B $U info; rc=$?; echo "rc=$rc"
hciconfig hci1 | grep -E "UP|DOWN"
if [ $rc -eq 0 ]; then pass "info on userchan:hci1 (was UP)"; else fail "info on userchan:hci1 (was UP)"; fi
echo "-- userchan:hci1 already DOWN"
$B $U info > /tmp/info.out; rc=$?; cat /tmp/info.out; echo "rc=$rc"
if [ $rc -eq 0 ] && grep -q "address: *$K1" /tmp/info.out; then pass "info on userchan:hci1 (DOWN): address $K1"; else fail "info on userchan:hci1 (DOWN)"; fi
echo "-- a second btsock on userchan:hci1 while one holds it"
$B $U listen 5 -d > /dev/null 2> /tmp/l5.err &
P=$!
wait_for /tmp/l5.err "listening on"; cat /tmp/l5.err
$B $U info > /dev/null 2> /tmp/e.err; rc=$?; cat /tmp/e.err; echo "rc=$rc"
if [ $rc -eq 3 ] && grep -q "another process already holds" /tmp/e.err; then pass "second holder: exit 3, 'another process already holds'"; else fail "second holder"; fi
echo "-- hciconfig hci1 up while btsock holds it"
# (the kernel answers EALREADY, which hciconfig treats as success: hci1 is "up" for the user
# channel; what matters is that btsock keeps it)
hciconfig hci1 up 2>&1; echo "rc=$?"
sleep 0.5
if kill -0 $P 2>/dev/null; then pass "btsock still holds hci1 after hciconfig hci1 up"; else fail "btsock lost hci1 to hciconfig up"; fi
kill $P; wait $P 2>/dev/null

echo "== 2. RFCOMM btsock connect (userchan:hci1) -> rctest -d (kernel hci0)"
# rctest -d logs "Received N bytes" per read (it cannot save the data; its -O does nothing
# here), so this checks the byte count; section 6 checks RFCOMM content byte for byte.
rctest -d -i hci0 -P 10 -b 10000 > /tmp/rc10.log 2>&1 &
RX=$!
sleep 0.5
tx $B $U connect "$K0" 10 --send /tmp/data.bin
sleep 1
kill $RX 2>/dev/null; grep -v "Received" /tmp/rc10.log
got=$(awk '/Received [0-9]+ bytes/ {for (i = 1; i < NF; i++) if ($i == "Received") s += $(i+1)} END {print s+0}' /tmp/rc10.log)
if [ $TXRC -eq 0 ] && [ "$got" -eq 100000 ]; then pass "RFCOMM userchan -> kernel (rctest received $got bytes)"; else fail "RFCOMM userchan -> kernel: btsock rc=$TXRC, rctest received $got of 100000 bytes"; fi

echo "== 3. RFCOMM rctest -s (kernel hci0) -> btsock listen (userchan:hci1)"
$B $U listen 11 -d > /tmp/l11.out 2> /tmp/l11.err &
P=$!
wait_for /tmp/l11.err "listening on"; cat /tmp/l11.err
rctest -s -i hci0 -P 11 -N 100 -b 1000 "$K1" > /tmp/rc11.log 2>&1; echo "rctest rc=$?"
wait $P; echo "btsock listen rc=$?"
cat /tmp/l11.err
# rctest's frames: 4-byte sequence, 2-byte length, then 0x7f bytes; seq < 100 and length
# 1000 (0x03e8) hold no 0x7f, so 100 frames leave exactly 600 other bytes.
n=$(wc -c < /tmp/l11.out); o=$(tr -d '\177' < /tmp/l11.out | wc -c)
if [ "$n" -eq 100000 ] && [ "$o" -eq 600 ]; then pass "RFCOMM kernel -> userchan (100000 bytes, rctest pattern)"
else fail "RFCOMM kernel -> userchan: $n bytes, $o non-0x7f (want 100000, 600)"; fi

echo "== 4. L2CAP btsock l2cap connect (userchan:hci1) -> l2test -r (kernel hci0)"
# 100 messages of 672 bytes (the kernel's MTU) in l2test's format: 4-byte sequence from 0,
# 2-byte length, 0x7f bytes; btsock sends one message per read of --send. Checked twice:
# btmon on hci0 must see all 100 PDUs arrive whole, and l2test -r (which verifies sequence,
# length and content and counts only good messages) must report no mismatch. l2test's count
# itself is only printed: here it misses some of the last messages even between two kernel
# stacks (`l2test -s -i hci1` -> `l2test -r -i hci0` delivered 79-100 of 100 on 2026-12-04,
# btmon showing all of them on hci0), so a short count is not btsock's doing.
head -c 666 /dev/zero | tr '\0' '\177' > /tmp/fill
i=0; : > /tmp/l2frames
while [ $i -lt 100 ]; do
    printf "\\$(printf %o $i)\\000\\000\\000\\240\\002" >> /tmp/l2frames; cat /tmp/fill >> /tmp/l2frames
    i=$((i + 1))
done
btmon -i hci0 -w /tmp/hci0.snoop > /dev/null 2>&1 &
BM=$!
l2test -r -i hci0 -P 4097 -b 672 > /tmp/l2r.log 2>&1 &
RX=$!
sleep 0.5
tx $B $U l2cap connect "$K0" 0x1001 --send /tmp/l2frames
sleep 1
kill $RX 2>/dev/null; kill -INT $BM; wait $BM
grep -v -e "bytes in" -e "^ " /tmp/l2r.log  # (^ : its PHY list)
pdus=$(btmon -r /tmp/hci0.snoop 2>/dev/null | grep -c "len 672 \[PSM 4097")
got=$(grep -c "672 bytes in" /tmp/l2r.log)
bad=$(grep -c mismatch /tmp/l2r.log)
echo "hci0 received $pdus whole 672-byte PDUs; l2test counted $got good messages, $bad mismatches"
if [ $TXRC -eq 0 ] && [ "$pdus" -eq 100 ] && [ "$got" -gt 0 ] && [ "$bad" -eq 0 ]; then pass "L2CAP userchan -> kernel (100 PDUs at hci0, l2test: $got in order and intact)"
else fail "L2CAP userchan -> kernel: btsock rc=$TXRC, $pdus PDUs at hci0, l2test $got good, $bad mismatches"; fi

echo "== 5. L2CAP l2test -s (kernel hci0) -> btsock l2cap listen (userchan:hci1)"
$B $U l2cap listen 0x1003 -d > /tmp/l2l.out 2> /tmp/l2l.err &
P=$!
wait_for /tmp/l2l.err "listening on"; cat /tmp/l2l.err
l2test -s -i hci0 -P 4099 -N 100 -b 600 "$K1" > /tmp/l2s.log 2>&1; echo "l2test rc=$?"
wait $P; echo "btsock l2cap listen rc=$?"
n=$(wc -c < /tmp/l2l.out); o=$(tr -d '\177' < /tmp/l2l.out | wc -c)
if [ "$n" -eq 60000 ] && [ "$o" -eq 600 ]; then pass "L2CAP kernel -> userchan (60000 bytes, l2test pattern)"
else fail "L2CAP kernel -> userchan: $n bytes, $o non-0x7f (want 60000, 600)"; fi

echo "== 6. btsock (unix:/tmp/bt-server-bredr) <-> btsock (userchan:hci1), RFCOMM both ways"
$B -a unix:/tmp/bt-server-bredr info > /tmp/uinfo.out; echo "rc=$?"
S=$(awk '/^address:/ {print $2}' /tmp/uinfo.out); echo "unix stack: $S"
$B -a unix:/tmp/bt-server-bredr listen 12 -d > /tmp/l12.out 2> /tmp/l12.err &
P=$!
wait_for /tmp/l12.err "listening on"; cat /tmp/l12.err
tx $B $U connect "$S" 12 --send /tmp/data.bin
wait $P; echo "listen rc=$?"
[ $TXRC -eq 0 ] || fail "btsock connect on userchan:hci1 exited $TXRC"
same_file /tmp/data.bin /tmp/l12.out "RFCOMM userchan -> unix"
$B $U listen 13 -d > /tmp/l13.out 2> /tmp/l13.err &
P=$!
wait_for /tmp/l13.err "listening on"; cat /tmp/l13.err
tx $B -a unix:/tmp/bt-server-bredr connect "$K1" 13 --send /tmp/data.bin
wait $P; echo "listen rc=$?"
[ $TXRC -eq 0 ] || fail "btsock connect on unix: exited $TXRC"
same_file /tmp/data.bin /tmp/l13.out "RFCOMM unix -> userchan"

echo "== 7. SDP: btsock sdp browse (userchan:hci1) of bluetoothd on hci0"
start-bluetoothd || fail "start-bluetoothd"
sleep 1
sdptool add --channel=10 SP; echo "sdptool add rc=$?"
$B $U sdp browse "$K0" > /tmp/sdp.out; rc=$?
grep -E "Service Name|Channel|PSM" /tmp/sdp.out; echo "rc=$rc"
if [ $rc -eq 0 ] && grep -q "Serial Port" /tmp/sdp.out; then pass "sdp browse via userchan finds bluetoothd's Serial Port record"; else fail "sdp browse via userchan"; fi
echo "-- and the kernel side browses btsock's SDP server on userchan:hci1"
$B $U listen --advertise Logger -d > /dev/null 2> /tmp/la.err &
P=$!
wait_for /tmp/la.err "advertising"; cat /tmp/la.err
sdptool -i hci0 search --bdaddr "$K1" 0x1101 > /tmp/sdps.out 2>&1; rc=$?; cat /tmp/sdps.out; echo "rc=$rc"
kill $P; wait $P 2>/dev/null
if grep -q "Logger" /tmp/sdps.out; then pass "sdptool finds btsock's record on userchan:hci1"; else fail "sdptool search on userchan:hci1"; fi

echo "== 8. after btsock exits, the kernel can have hci1 back"
hciconfig hci1 up; rc=$?; hciconfig hci1 | grep -E "UP|DOWN"; echo "rc=$rc"
if [ $rc -eq 0 ]; then pass "hciconfig hci1 up after btsock"; else fail "hciconfig hci1 up after btsock"; fi

echo "== summary: $FAILS failed"
bt-down
[ $FAILS -eq 0 ]
