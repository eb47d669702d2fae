#!/bin/sh
# Builds `btsock` from an older commit with today's bench (tools/btsock/cmd_bench.c of the
# working tree), so that bench/run.sh can show both builds side by side with the same
# measurements: bench/build-baseline.sh COMMIT DIR, then bench/run.sh MiB COUNT DIR/build/btsock.
# The library, the runtime and every other tool source are the commit's own.
set -eu
cd "$(dirname "$0")/.."
commit=${1:?usage: bench/build-baseline.sh COMMIT DIR}
dir=${2:?usage: bench/build-baseline.sh COMMIT DIR}
mkdir -p "$dir/src"
git archive "$commit" | tar -x -C "$dir/src"
cp tools/btsock/cmd_bench.c "$dir/src/tools/btsock/cmd_bench.c"
cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
nice cmake --build "$dir/build" -j1 --target btsock_tool >/dev/null
echo "$dir/build/btsock"
