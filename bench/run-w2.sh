#!/bin/sh
# run-w2.sh: workload W2 (one hot key, the decision cache's) against
# Redis, ours with the cache and the peer with its in-memory block, in one
# run; and W1 with the cache on and off, to show what the cache costs
# when it does not help.
#
# Usage:
#   bench/run-w2.sh [build-dir]
#
# build-dir is the (autotools, out-of-tree) build directory that holds
# bench/rl-bench: by default the current directory when it has one, else
# the first _build/*/ of the source tree that does.
#
# What it does, in order, against one redis-server of its own (a free
# 127.0.0.1 port, a temporary directory, no RDB and no AOF; stopped and
# removed on exit, however the script ends), or the one REDIS_URL names
# (used as it is, and flushed: give one nobody else uses), each run on an
# empty database:
#   1. rl-bench --workload w2 --cache: W2_CHECKS checks on one key, 100 per
#      1,000 ms, W2_INFLIGHT in flight, fixed window, closed loop;
#   2. the peer, bench/peers/rlf-w2.js (rate-limiter-flexible's
#      RateLimiterRedis with inMemoryBlockOnConsumed and
#      inMemoryBlockDuration, no insurance limiter), the same W2 on the
#      same server, when node and bench/peers/node_modules are there (else
#      it says how to install them: npm install --prefix bench/peers);
#   3. rl-bench --workload w2 without the cache: what the cache buys;
#   4. rl-bench W1 (run-w1.sh's: random keys, fixed window, warmup) without
#      and then with --cache;
#   5. a table, the ratios ours / peer on W2 and cache on / off on W1, W2's
#      targets met or not, and the load average before and after (the
#      machine may be shared: prefer the per-check command and CPU
#      figures, which noise moves less).
# "in-Redis/c" is every call INFO commandstats counted on the server
# during the measured phase, script calls included and INFO left out,
# per check: the "Redis commands per check" of W2's target.  "EVALSHA/c"
# counts the scripts alone.  With W2_OUT=DIR the CSV lines (rl-bench's
# columns, header: rl-bench --csv) are also kept in DIR/w2-results.csv.
#
# Knobs (environment): W2_CHECKS (1000000), W2_INFLIGHT (1024),
# W1_CHECKS (1000000), W1_KEYS (100000), W1_WARMUP (100000).  W2's
# targets: at least 2,000,000 checks/s and at most 0.001 Redis commands
# per check.
#
# Needs redis-server and redis-cli; node for the peer.  The shell it
# shares with run-w1.sh is in bench/lib.sh.
set -eu
prog=run-w2.sh
bench_dir=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"

# ---- arguments and defaults ----

bench_args "$@"

w2_checks=${W2_CHECKS:-1000000}
inflight=${W2_INFLIGHT:-1024}
w1_checks=${W1_CHECKS:-1000000}
w1_keys=${W1_KEYS:-100000}
w1_warmup=${W1_WARMUP:-100000}
w2="--workload w2 --checks $w2_checks --inflight $inflight"
w1="--checks $w1_checks --keys $w1_keys --inflight $inflight"
w1="$w1 --warmup $w1_warmup"

bench_server_start rl-w2
results=$tmp/results.csv
: >"$results"
failed=0

bench_server_line
echo "load before: $(bench_load)"
echo "W2: $w2_checks checks on one key, $inflight in flight, limit 100" \
     "per 1000 ms; W1: $w1_checks checks over $w1_keys keys, warmup" \
     "$w1_warmup, limit 100 per 60000 ms"
echo

# ---- the runs ----

# One rl-bench run, fixed window; its CSV line goes to $results.
ours() {
    bench_flush
    # shellcheck disable=SC2086 # $server is a list of options
    if ! "$rlbench" --backend redis $server --algo fixed-window --quiet \
            "$@" >>"$results"; then
        echo "run-w2.sh: rl-bench $* failed (see above)" >&2
        failed=1
    fi
}

echo "rl-bench W2 --cache ..."
# shellcheck disable=SC2086 # $w2 and $w1 are lists of options
ours $w2 --cache

peer=no
if bench_have_peer; then
    echo "rlf-w2.js (rate-limiter-flexible, in-memory block) ..."
    bench_flush
    # shellcheck disable=SC2086
    if node "$bench_dir/peers/rlf-w2.js" $server --quiet \
            --checks "$w2_checks" --inflight "$inflight" >>"$results"; then
        peer=yes
    else
        echo "run-w2.sh: the peer failed (see above)" >&2
        failed=1
    fi
else
    echo "peer skipped: it needs node and its packages:" \
         "npm install --prefix bench/peers"
fi

echo "rl-bench W2, no cache ..."
# shellcheck disable=SC2086
ours $w2
echo "rl-bench W1, no cache ..."
# shellcheck disable=SC2086
ours $w1
echo "rl-bench W1 --cache ..."
# shellcheck disable=SC2086
ours $w1 --cache

echo "load after: $(bench_load)"
echo

# ---- summary ----

if [ -n "${W2_OUT:-}" ]; then
    mkdir -p "$W2_OUT"
    cp "$results" "$W2_OUT/w2-results.csv"
fi
echo "CSV (rl-bench's columns, header: rl-bench --csv):"
cat "$results"
echo

# Columns: 1 backend 9 checks/s 10-11 p50/p99 us 15 fallback 16 client
# us/check 20 EVALSHA/check 22 Redis calls/check 23 Redis us/check
# 25 workload 26 cache 27-29 sources backend/cache/fallback 30 hit rate.
awk -F, '
BEGIN {
    printf "%-24s %9s %7s %7s %8s %10s %10s %8s %8s  %s\n", "run",
        "checks/s", "p50 ms", "p99 ms", "cli us/c", "EVALSHA/c",
        "in-Redis/c", "srv us/c", "hit rate", "backend/cache/fallback"
}
{
    name = ($1 == "rlf" ? "peer rlf " : "ours ") toupper($25) \
        " cache " $26
    printf "%-24s %9.0f %7.3f %7.3f %8.3f %10.6f %10.6f %8.3f %8s  " \
        "%d/%d/%d\n", name, $9, $10 / 1000, $11 / 1000, $16, $20, $22,
        $23, ($30 == "" ? "-" : $30), $27, $28, $29
}' "$results"
echo

# The ratios and the targets; a figure the run lacks is left out.
# shellcheck disable=SC2016 # awk's $ fields
awk -F, -v peer=$peer '
$1 == "redis" && $25 == "w2" && $26 == "on" { o_rate = $9; o_calls = $22
    o_evalsha = $20; o_cache = per($28, $3); o_cpu = $16; ours = 1 }
$1 == "redis" && $25 == "w2" && $26 == "off" { n_rate = $9; n_calls = $22 }
$1 == "rlf" && $25 == "w2" { p_rate = $9; p_calls = $22; p_evalsha = $20
    p_cpu = $16; p_cache = per($28, $3) }
$1 == "redis" && $25 == "w1" && $26 == "off" { w1_off = $9; w1_off_cpu = $16
    w1_off_srv = $23 }
$1 == "redis" && $25 == "w1" && $26 == "on" { w1_on = $9; w1_on_cpu = $16
    w1_on_srv = $23; w1_hit = $30 }
function per(a, b) { return b > 0 ? a / b : 0 }
END {
    if (ours && peer == "yes") {
        printf "W2 ours (cache) / peer (in-memory block): %.2fx checks/s " \
            "(%.0f vs %.0f)\n", per(o_rate, p_rate), o_rate, p_rate
        printf "  Redis calls per check: %.6f vs %.6f; EVALSHA per " \
            "check: %.6f vs %.6f\n", o_calls, p_calls, o_evalsha, p_evalsha
        printf "  client CPU per check: %.3f vs %.3f us; answered " \
            "without Redis: %.6f vs %.6f of the checks\n", o_cpu, p_cpu,
            o_cache, p_cache
    }
    if (ours) {
        printf "W2 target >= 2000000 checks/s: %.0f, %s\n", o_rate,
            (o_rate >= 2000000 ? "met" : "NOT met")
        printf "W2 target <= 0.001 Redis commands per check (INFO " \
            "commandstats, every call): %.6f, %s\n", o_calls,
            (o_calls <= 0.001 ? "met" : "NOT met")
    }
    if (ours && n_rate > 0)
        printf "W2 cache on / off: %.2fx checks/s (%.0f vs %.0f), " \
            "Redis calls per check %.6f vs %.6f\n", per(o_rate, n_rate),
            o_rate, n_rate, o_calls, n_calls
    if (w1_on > 0 && w1_off > 0)
        printf "W1 cache on / off: %.2fx checks/s (%.0f vs %.0f), " \
            "client CPU %.3f vs %.3f us/check, Redis CPU %.3f vs %.3f " \
            "us/check, hit rate %s\n", per(w1_on, w1_off), w1_on, w1_off,
            w1_on_cpu, w1_off_cpu, w1_on_srv, w1_off_srv,
            (w1_hit == "" ? "-" : w1_hit)
}' "$results"
exit $failed
