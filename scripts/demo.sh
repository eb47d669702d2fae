#!/bin/sh
# The main job: the seed's RFCOMM server and client (examples/rfcomm-server.c and
# examples/rfcomm-client.c, Example 3-2 and 3-3 of the PyBluez text in C) talking through two
# emulated controllers of BlueZ's btvirt. Installs its Debian packages, builds, starts a private
# btvirt, runs the server, then the client against the server's address, shows what each printed,
# and stops btvirt again. Run as root on Debian 12.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBTSOCK_TESTS=OFF >/dev/null
cmake --build build/demo -j2 --target rfcomm-server rfcomm-client >/dev/null

# btvirt serves the fixed path /tmp/bt-server-bredr: give it a private /tmp so a btvirt that is
# already running elsewhere is not disturbed, and reach its socket through /proc/PID/root.
unshare -m sh -c 'mount --make-rprivate / && mount -t tmpfs btvirt /tmp && exec btvirt -s' >/dev/null 2>&1 &
btvirt_pid=$!
work=$(mktemp -d)
cleanup() {
	kill "$btvirt_pid" 2>/dev/null || true
	wait "$btvirt_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
sock=/proc/$btvirt_pid/root/tmp/bt-server-bredr
i=0
until [ -S "$sock" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "demo: btvirt did not start" >&2; exit 1; }
	sleep 0.05
done
export BTSOCK_ADAPTER="unix:$sock"

build/demo/rfcomm-server >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
i=0
until grep -q "listening on" "$work/server.err" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -ge 100 ] || ! kill -0 "$server_pid" 2>/dev/null; then
		echo "demo: the server did not start:" >&2
		cat "$work/server.err" >&2
		exit 1
	fi
	sleep 0.05
done
server_addr=$(sed -n 's/.*listening on \([0-9A-F:]*\) channel.*/\1/p' "$work/server.err")

echo "\$ rfcomm-server            # BTSOCK_ADAPTER=unix:.../bt-server-bredr"
echo "\$ rfcomm-client $server_addr"
build/demo/rfcomm-client "$server_addr"
wait "$server_pid"
echo "--- rfcomm-server printed:"
cat "$work/server.out"
grep -q "^Accepted connection from " "$work/server.out" && grep -q "^received \[hello!!\]$" "$work/server.out"
