#!/bin/sh
# run-w2.sh: workload W2 (one hot key, the decision cache's) against
# Redis, ours with the cache and the peer with its in-memory block, in one
# run; and W1 with the cache on and off, to show what the cache costs
# when it does not help.
#
# Usage:
#   bench/run-w2.sh [--callgrind] [build-dir]
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
#   3. rl-bench W2 --cache again with W2_LONG_CHECKS checks: when ours
#      answers 1,000,000 checks within one window it never has to learn
#      the block again, while the slower peer crosses several window ends;
#      this run crosses some too (the "allowed" column: 100 per window);
#   4. rl-bench --workload w2 without the cache: what the cache buys;
#   5. rl-bench W1 (run-w1.sh's: random keys, fixed window, warmup) without
#      and then with --cache;
#   6. with --callgrind: the client's instructions per check (measured
#      phase only, CG_CHECKS checks) for W1 without and with the cache, the
#      figure that machine noise does not move, and for W2 with it;
#   7. a table, the ratios ours / peer on W2 and cache on / off, W2's
#      targets met or not, and the load average before and after (the
#      machine may be shared: prefer the per-check command and CPU
#      figures, which noise moves less).
# "in-Redis/c" is every call INFO commandstats counted on the server
# during the measured phase, script calls included and INFO left out,
# per check: the "Redis commands per check" of W2's target.  "EVALSHA/c"
# counts the scripts alone.  With W2_OUT=DIR the CSV lines (rl-bench's
# columns, header: rl-bench --csv) are also kept in DIR/w2-results.csv,
# and the callgrind profiles in DIR/w2-*.callgrind.out.
#
# Knobs (environment): W2_CHECKS (1000000), W2_LONG_CHECKS (20000000; 0
# leaves run 3 out), W2_INFLIGHT (1024), W1_CHECKS (1000000), W1_KEYS
# (100000), W1_WARMUP (100000), CG_CHECKS (100000).  W2's targets: at
# least 2,000,000 checks/s and at most 0.001 Redis commands per check.
#
# Needs redis-server and redis-cli; node for the peer; valgrind for
# --callgrind.  The shell it shares with run-w1.sh is in bench/lib.sh.
set -eu
prog=run-w2.sh
bench_dir=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"

# ---- arguments and defaults ----

bench_flag=--callgrind
bench_args "$@"
callgrind=$flag

w2_checks=${W2_CHECKS:-1000000}
w2_long=${W2_LONG_CHECKS:-20000000}
inflight=${W2_INFLIGHT:-1024}
w1_checks=${W1_CHECKS:-1000000}
w1_keys=${W1_KEYS:-100000}
w1_warmup=${W1_WARMUP:-100000}
cg_checks=${CG_CHECKS:-100000}
w2="--workload w2 --inflight $inflight"
w1="--keys $w1_keys --inflight $inflight"

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
    echo "rl-bench $* ..."
    bench_flush
    # shellcheck disable=SC2086 # $server is a list of options
    if ! "$rlbench" --backend redis $server --algo fixed-window --quiet \
            "$@" >>"$results"; then
        echo "run-w2.sh: rl-bench $* failed (see above)" >&2
        failed=1
    fi
}

# shellcheck disable=SC2086 # $w2 and $w1 are lists of options
ours $w2 --checks "$w2_checks" --cache

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

if [ "$w2_long" -gt 0 ]; then
    # shellcheck disable=SC2086
    ours $w2 --checks "$w2_long" --cache
fi
# shellcheck disable=SC2086
ours $w2 --checks "$w2_checks"
# shellcheck disable=SC2086
ours $w1 --checks "$w1_checks" --warmup "$w1_warmup"
# shellcheck disable=SC2086
ours $w1 --checks "$w1_checks" --warmup "$w1_warmup" --cache

# ---- callgrind ----

cg_w1_off=
cg_w1_on=
cg_w2_on=
# $1: the variable to set; $2: the profile's name; the rest: options.
cg_run() {
    cg_var=$1
    cg_name=$2
    shift 2
    echo "rl-bench under callgrind, $cg_name ($cg_checks checks) ..."
    # shellcheck disable=SC2034 # read by the eval
    if cg_ipc=$(bench_callgrind "$tmp/$cg_name.out" "$cg_checks" "$@"); then
        eval "$cg_var=\$cg_ipc"
    else
        echo "run-w2.sh: callgrind run failed:" >&2
        cat "$tmp/$cg_name.out.err" >&2
        failed=1
    fi
}
if [ "$callgrind" = yes ]; then
    # shellcheck disable=SC2086
    cg_run cg_w1_off w1-cache-off --algo fixed-window $w1 \
        --warmup "$w1_keys"
    # shellcheck disable=SC2086
    cg_run cg_w1_on w1-cache-on --algo fixed-window $w1 \
        --warmup "$w1_keys" --cache
    # shellcheck disable=SC2086
    cg_run cg_w2_on w2-cache-on --algo fixed-window $w2 --cache
fi

echo "load after: $(bench_load)"
echo

# ---- summary ----

if [ -n "${W2_OUT:-}" ]; then
    mkdir -p "$W2_OUT"
    cp "$results" "$W2_OUT/w2-results.csv"
    for f in "$tmp"/*.out; do
        if [ -e "$f" ]; then
            cp "$f" "$W2_OUT/w2-$(basename "$f" .out).callgrind.out"
        fi
    done
fi
echo "CSV (rl-bench's columns, header: rl-bench --csv):"
cat "$results"
echo

# Columns: 1 backend 3 checks 9 checks/s 10-11 p50/p99 us 13 allowed
# 15 fallback 16 client us/check 20 EVALSHA/check 22 Redis calls/check
# 23 Redis us/check 25 workload 26 cache 27-29 sources backend/cache/
# fallback 30 hit rate.
awk -F, '
BEGIN {
    printf "%-23s %8s %9s %7s %7s %7s %8s %10s %10s %8s %8s  %s\n",
        "run", "checks", "checks/s", "p50 ms", "p99 ms", "allowed",
        "cli us/c", "EVALSHA/c", "in-Redis/c", "srv us/c", "hit rate",
        "backend/cache/fallback"
}
{
    name = ($1 == "rlf" ? "peer rlf " : "ours ") toupper($25) \
        " cache " $26
    printf "%-23s %8s %9.0f %7.3f %7.3f %7d %8.3f %10.6f %10.6f %8.3f " \
        "%8s  %d/%d/%d\n", name, ($3 % 1000000 ? $3 : $3 / 1000000 "M"),
        $9, $10 / 1000, $11 / 1000, $13, $16, $20, $22, $23,
        ($30 == "" ? "-" : $30), $27, $28, $29
}' "$results"
echo

# The ratios and the targets; a figure the run lacks is left out.
awk -F, -v peer=$peer -v n="$w2_checks" -v long="$w2_long" '
function per(a, b) { return b > 0 ? a / b : 0 }
$1 == "redis" && $25 == "w2" && $26 == "on" && $3 == n { o_rate = $9
    o_calls = $22; o_evalsha = $20; o_cache = per($28, $3); o_cpu = $16
    o_windows = $13 / 100; ours = 1 }
$1 == "redis" && $25 == "w2" && $26 == "on" && $3 == long { l_rate = $9
    l_calls = $22; l_windows = $13 / 100 }
$1 == "redis" && $25 == "w2" && $26 == "off" { n_rate = $9; n_calls = $22 }
$1 == "rlf" && $25 == "w2" { p_rate = $9; p_calls = $22; p_evalsha = $20
    p_cpu = $16; p_cache = per($28, $3); p_windows = $13 / 100 }
$1 == "redis" && $25 == "w1" && $26 == "off" { w1_off = $9; w1_off_cpu = $16
    w1_off_srv = $23 }
$1 == "redis" && $25 == "w1" && $26 == "on" { w1_on = $9; w1_on_cpu = $16
    w1_on_srv = $23; w1_hit = $30 }
END {
    if (ours && peer == "yes") {
        printf "W2 ours (cache) / peer (in-memory block): %.2fx checks/s " \
            "(%.0f vs %.0f)\n", per(o_rate, p_rate), o_rate, p_rate
        printf "  Redis calls per check: %.6f vs %.6f; EVALSHA per " \
            "check: %.6f vs %.6f\n", o_calls, p_calls, o_evalsha, p_evalsha
        printf "  client CPU per check: %.3f vs %.3f us; answered " \
            "without Redis: %.6f vs %.6f of the checks\n", o_cpu, p_cpu,
            o_cache, p_cache
        printf "  windows touched (allowed / 100): %.0f vs %.0f\n",
            o_windows, p_windows
    }
    if (ours) {
        printf "W2 target >= 2000000 checks/s: %.0f, %s\n", o_rate,
            (o_rate >= 2000000 ? "met" : "NOT met")
        printf "W2 target <= 0.001 Redis commands per check (INFO " \
            "commandstats, every call): %.6f, %s\n", o_calls,
            (o_calls <= 0.001 ? "met" : "NOT met")
    }
    if (l_rate > 0)
        printf "W2 long (%d checks, about %.0f windows): %.0f checks/s, " \
            "%.6f Redis calls per check\n", long, l_windows, l_rate,
            l_calls
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
if [ -n "$cg_w1_off" ] && [ -n "$cg_w1_on" ]; then
    echo "callgrind, client instructions per check ($cg_checks checks," \
         "measured phase): W1 $cg_w1_off without the cache, $cg_w1_on" \
         "with it (a difference of $((cg_w1_on - cg_w1_off)))"
fi
if [ -n "$cg_w2_on" ]; then
    echo "callgrind: W2 with the cache, $cg_w2_on instructions per check"
fi
exit $failed
