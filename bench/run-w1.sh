#!/bin/sh
# run-w1.sh: workload W1 against Redis, ours and the peer, in one run.
#
# Usage:
#   bench/run-w1.sh [--callgrind] [build-dir]
#
# build-dir is the (autotools, out-of-tree) build directory that holds
# bench/rl-bench: by default the current directory when it has one, else
# the first _build/*/ of the source tree that does.  Build it first
# (cd _build/dev && make -j2).
#
# What it does, in order, against one redis-server of its own (a free
# 127.0.0.1 port, a temporary directory, no RDB and no AOF; stopped and
# removed on exit, however the script ends), or the one REDIS_URL names
# (used as it is, and flushed: give one nobody else uses):
#   1. rl-bench --backend redis, W1 closed loop, for every algorithm, each
#      on an empty database (flushed before every run);
#   2. the peer, bench/peers/rlf-w1.js (rate-limiter-flexible's
#      RateLimiterRedis on ioredis), the same W1 on the same server, when
#      node and bench/peers/node_modules are there (else it says how to
#      install them: npm install --prefix bench/peers);
#   3. rl-bench fixed-window in open loop at W1_OPEN_RATE checks/s, in
#      rl-bench's 1 ms ticks, then in 100 us ticks with
#      REDIS_PIPELINE_DEPTH=1 (labelled "tick 100 us depth 1");
#   4. with --callgrind: rl-bench fixed-window under callgrind, collecting
#      the measured phase only, and the client's instructions per check;
#   5. a summary table, the ratio ours (fixed-window) / peer, and the load
#      average before and after (the machine may be shared: prefer the
#      per-check CPU and command figures, which noise moves less).
# With W1_OUT=DIR, the CSV lines (rl-bench's columns) are also kept in
# DIR/w1-results.csv and the callgrind profile in DIR/w1-callgrind.out.
#
# Knobs (environment): W1_CHECKS (1000000), W1_KEYS (100000),
# W1_INFLIGHT (1024), W1_WARMUP (100000: every key touched once first),
# W1_OPEN_RATE (100000), W1_OPEN_DURATION (5 s), CG_CHECKS (100000).
#
# Needs redis-server and redis-cli; node for the peer; valgrind for
# --callgrind.  The shell it shares with run-w2.sh is in bench/lib.sh.
set -eu
prog=run-w1.sh
bench_dir=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"

# ---- arguments and defaults ----

bench_flag=--callgrind
bench_args "$@"
callgrind=$flag

checks=${W1_CHECKS:-1000000}
keys=${W1_KEYS:-100000}
inflight=${W1_INFLIGHT:-1024}
warmup=${W1_WARMUP:-100000}
open_rate=${W1_OPEN_RATE:-100000}
open_duration=${W1_OPEN_DURATION:-5}
cg_checks=${CG_CHECKS:-100000}
w1="--checks $checks --keys $keys --inflight $inflight --warmup $warmup"

# ---- the server ----

bench_server_start rl-w1
results=$tmp/results.csv
: >"$results"
failed=0

bench_server_line
echo "load before: $(bench_load)"
echo "W1: $checks checks over $keys keys, $inflight in flight, warmup" \
     "$warmup, limit 100 per 60000 ms"
echo

# ---- 1. ours, every algorithm ----

# One rl-bench run; its CSV line goes to $results, its stderr shown.
# $ours_env: NAME=VALUE words for that run's environment only (via env).
ours_env=
ours() {
    bench_flush
    # shellcheck disable=SC2086 # $ours_env and $server are lists of words
    if ! env $ours_env "$rlbench" --backend redis $server --quiet "$@" \
            >>"$results"; then
        echo "run-w1.sh: rl-bench $* failed (see above)" >&2
        failed=1
    fi
}

for algo in fixed-window sliding-window token-bucket sliding-log gcra; do
    echo "rl-bench --algo $algo ..."
    # shellcheck disable=SC2086 # $w1 is a list of options
    ours --algo "$algo" $w1
done

# ---- 2. the peer ----

peer=no
if bench_have_peer; then
    echo "rlf-w1.js (rate-limiter-flexible) ..."
    bench_flush
    # shellcheck disable=SC2086
    if node "$bench_dir/peers/rlf-w1.js" $server --quiet $w1 \
            >>"$results"; then
        peer=yes
    else
        echo "run-w1.sh: the peer failed (see above)" >&2
        failed=1
    fi
else
    echo "peer skipped: it needs node and its packages:" \
         "npm install --prefix bench/peers"
fi

# ---- 3. open loop ----

open="--algo fixed-window --open-loop $open_rate --duration $open_duration"
open="$open --keys $keys --warmup $warmup --inflight $inflight"
echo "rl-bench --open-loop $open_rate ..."
# shellcheck disable=SC2086 # $open is a list of options
ours $open
# The same offered rate in ticks of 100 us (as a server submits a few
# checks per loop iteration), with REDIS_PIPELINE_DEPTH=1 for that run
# only: partial batches wait for the reply in flight.  Its CSV line, if
# it wrote one, gets a label, field 31.
echo "rl-bench --open-loop $open_rate --tick-us 100," \
     "REDIS_PIPELINE_DEPTH=1 ..."
before=$(wc -l <"$results")
ours_env=REDIS_PIPELINE_DEPTH=1
# shellcheck disable=SC2086 # $open is a list of options
ours $open --tick-us 100
ours_env=
after=$(wc -l <"$results")
if [ $((after)) -eq $((before + 1)) ]; then
    sed -i '$ s/$/,tick 100 us depth 1/' "$results"
fi

# ---- 4. callgrind ----

ipc=
if [ $callgrind = yes ]; then
    echo "rl-bench under callgrind ($cg_checks checks) ..."
    cg=$tmp/w1-callgrind.out
    if ! ipc=$(bench_callgrind "$cg" "$cg_checks" --algo fixed-window \
                   --keys "$keys" --inflight "$inflight" --warmup "$keys")
    then
        echo "run-w1.sh: callgrind run failed:" >&2
        cat "$cg.err" >&2
        failed=1
    fi
fi

echo "load after: $(bench_load)"
echo

# ---- 5. summary ----

if [ -n "${W1_OUT:-}" ]; then
    mkdir -p "$W1_OUT"
    cp "$results" "$W1_OUT/w1-results.csv"
    if [ -n "$ipc" ]; then
        cp "$cg" "$W1_OUT/w1-callgrind.out"
    fi
fi
echo "CSV (rl-bench's columns, header: rl-bench --csv):"
cat "$results"
echo

# Columns: 1 backend 2 algorithm 3 checks 9 checks_per_s 10-12 p50/p99/
# p999 us 15 fallback 16 cpu_us 17 mode 18 offered 19 max_us
# 20 evalsha/check 21 client cmds/check 22 redis calls/check
# 23 redis cpu us/check 24 checks/batch.
awk -F, '
BEGIN {
    printf "%-52s %9s %8s %8s %8s %6s %8s %8s %7s %8s %7s\n", "run",
        "checks/s", "p50 ms", "p99 ms", "p999 ms", "fallbk", "cli us/c",
        "EVALSHA/c", "cmds/c", "in-Redis", "srv us/c"
}
{
    name = ($1 == "rlf" ? "peer rlf " : "ours ") $2
    if ($17 == "open")
        name = name " open " $18 "/s" ($31 != "" ? ", " $31 : "")
    printf "%-52s %9.0f %8.3f %8.3f %8.3f %6d %8.3f %8.4f %7.4f %8.3f " \
        "%7.3f\n", name, $9, $10 / 1000, $11 / 1000, $12 / 1000, $15,
        $16, $20, $21, $22, $23
}' "$results"
echo

ours_fw=$(awk -F, '$1 == "redis" && $2 == "fixed-window" &&
                   $17 == "closed" { print $9, $16, $23 }' "$results")
if [ $peer = yes ] && [ -n "$ours_fw" ]; then
    peer_fw=$(awk -F, '$1 == "rlf" { print $9, $16, $23 }' "$results")
    echo "$ours_fw $peer_fw" | awk '{
        printf "ratio ours fixed-window / peer: %.2fx checks/s " \
            "(%.0f vs %.0f)\n", $1 / $4, $1, $4
        printf "  client CPU per check: %.2fx less (%.3f vs %.3f us)\n",
            $5 / $2, $2, $5
        printf "  server CPU per check: %.2fx less (%.3f vs %.3f us)\n",
            $6 / $3, $3, $6
    }'
fi
awk -F, '$17 == "open" {
    printf "open loop fixed-window at %d/s offered%s: %.0f/s achieved, " \
        "p99 %.3f ms, p999 %.3f ms, max %.3f ms, %d by the fallback\n",
        $18, ($31 != "" ? " (" $31 ")" : ""), $9, $11 / 1000, $12 / 1000,
        $19 / 1000, $15
}' "$results"
if [ -n "$ipc" ]; then
    echo "callgrind: $ipc instructions per check in the client" \
         "(fixed-window, measured phase, $cg_checks checks); hot spots:"
    # The 15 costliest functions, as instructions per check.
    callgrind_annotate "$cg" 2>/dev/null |
        awk -v n="$cg_checks" '/^ *[0-9,]+ +\([ 0-9.]+%\) +[^ ]/ &&
                                !/PROGRAM TOTALS/ {
            v = $1; gsub(/,/, "", v)
            f = $0; sub(/^ *[0-9,]+ +\([ 0-9.]+%\) +/, "", f)
            lib = f; sub(/^[^[]*\[/, "", lib); sub(/\].*/, "", lib)
            sub(/.*\//, "", lib); sub(/ \[.*/, "", f); sub(/.*:/, "", f)
            if (++k <= 15) printf "  %7.0f  %s (%s)\n", v / n, f, lib
        }'
fi
exit $failed
