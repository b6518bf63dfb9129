#!/bin/sh
# redis-cpu.sh: Redis's instructions per check, every command's work
# counted (reading and parsing it, the script, its calls, the reply), for
# each algorithm.
#
# Usage:
#   bench/redis-cpu.sh [build-dir]
#
# build-dir holds bench/rl-bench, as for run-w1.sh.  For each algorithm,
# on a fresh redis-server of its own run under valgrind's callgrind (a
# free 127.0.0.1 port, a temporary directory, stopped and removed on
# exit): a warm-up run, then the counters are zeroed and rl-bench runs a
# W1-like stream (every key touched once, then RCPU_CHECKS checks over
# RCPU_KEYS keys, max 100 per 60 s, Redis TIME); the server's
# instructions inside readQueryFromClient over that run, divided by the
# checks it carried (warm-up touch included), are printed.  What runs
# outside it (serverCron, the write of replies) grows with the wall time
# valgrind takes, not with the checks, so it is left out.  Instruction
# counts hardly move with the machine's load (about 2% between runs), so
# this is the figure to compare two versions of the scripts or of the
# call by (docs/redis.md, section 6).
#
# Knobs (environment): RCPU_CHECKS (100000), RCPU_KEYS (20000),
# RCPU_ALGOS (all five), RCPU_KEEP (a directory: each algorithm's
# callgrind output is copied there, <algo>.cg.out, for callgrind_annotate
# --inclusive=yes).  Needs valgrind (callgrind_control and
# callgrind_annotate), redis-server, redis-cli and bc.  Takes about a minute
# per algorithm.
set -eu
prog=redis-cpu.sh
bench_dir=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"

bench_flag=
bench_args "$@"
checks=${RCPU_CHECKS:-100000}
keys=${RCPU_KEYS:-20000}
algos=${RCPU_ALGOS:-fixed-window sliding-window token-bucket sliding-log gcra}
for tool in valgrind callgrind_control callgrind_annotate; do
    if ! command -v "$tool" >/dev/null; then
        echo "$prog: $tool is needed (apt-get install valgrind)" >&2
        exit 2
    fi
done
if [ -n "${REDIS_URL:-}" ]; then
    echo "$prog: runs its own server under valgrind; unset REDIS_URL" >&2
    exit 2
fi

# Valgrind slows Redis down some 50 times: a long deadline and no breaker
# keep every answer Redis's, and fewer checks in flight keep each wait
# short.
run() {
    # shellcheck disable=SC2086 # $server is a list of options
    REDIS_COMMAND_TIMEOUT=600000 CIRCUIT_BREAKER_ENABLED=false \
        "$rlbench" --backend redis $server --algo "$1" --checks "$2" \
        --keys "$keys" --warmup "$keys" --inflight 256 --quiet
}

echo "redis-server under callgrind; rl-bench from $build;" \
     "$checks checks over $keys keys (+ $keys warm-up) per algorithm"
printf '%-16s %14s %12s %10s\n' algorithm instructions "per check" fallback
bench_tmp rl-rcpu
for algo in $algos; do
    server_wrap="valgrind --tool=callgrind --log-file=$tmp/$algo.vg.log"
    server_wrap="$server_wrap --toggle-collect=readQueryFromClient"
    server_wrap="$server_wrap --callgrind-out-file=$tmp/$algo.cg.out"
    start_own_server
    run "$algo" "$keys" >/dev/null
    bench_flush
    callgrind_control -z "$pid" >/dev/null 2>&1
    run "$algo" "$checks" >"$tmp/$algo.run.csv"
    rcli shutdown nosave >/dev/null 2>&1 || true
    wait "$pid" 2>/dev/null || true
    pid=
    if [ -n "${RCPU_KEEP:-}" ]; then
        mkdir -p "$RCPU_KEEP"
        cp "$tmp/$algo.cg.out" "$RCPU_KEEP/$algo.cg.out"
    fi
    ir=$(callgrind_annotate "$tmp/$algo.cg.out" 2>/dev/null |
         sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
    # rl-bench's CSV line: column 15 counts the answers not Redis's.
    fb=$(cut -d, -f15 "$tmp/$algo.run.csv")
    printf '%-16s %14s %12s %10s\n' "$algo" "$ir" \
        "$(echo "$ir / ($checks + $keys)" | bc)" "${fb:-?}"
done
