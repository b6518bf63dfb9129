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
# removed on exit, however the script ends):
#   1. rl-bench --backend redis, W1 closed loop, for every algorithm, each
#      on an empty database (FLUSHALL before every run);
#   2. the peer, bench/peers/rlf-w1.js (rate-limiter-flexible's
#      RateLimiterRedis on ioredis), the same W1 on the same server, when
#      node and bench/peers/node_modules are there (else it says how to
#      install them: npm install --prefix bench/peers);
#   3. rl-bench fixed-window in open loop at W1_OPEN_RATE checks/s;
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
# --callgrind.
set -eu

# ---- arguments and defaults ----

callgrind=no
build=
for arg in "$@"; do
    case $arg in
    --callgrind) callgrind=yes ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed 's/^# \{0,1\}//;$d'
               exit 0 ;;
    -*) echo "run-w1.sh: unknown option $arg" >&2; exit 2 ;;
    *) build=$arg ;;
    esac
done

bench_dir=$(cd "$(dirname "$0")" && pwd)
srcdir=$(dirname "$bench_dir")
if [ -z "$build" ]; then
    if [ -e ./bench/rl-bench ]; then
        build=.
    else
        for d in "$srcdir"/_build/*/; do
            if [ -e "$d/bench/rl-bench" ]; then
                build=$d
                break
            fi
        done
    fi
fi
if [ -z "$build" ] || [ ! -e "$build/bench/rl-bench" ]; then
    echo "run-w1.sh: no bench/rl-bench in '${build:-.}'; build it first" \
         "and give the build directory" >&2
    exit 2
fi
build=$(cd "$build" && pwd)
rlbench=$build/bench/rl-bench

checks=${W1_CHECKS:-1000000}
keys=${W1_KEYS:-100000}
inflight=${W1_INFLIGHT:-1024}
warmup=${W1_WARMUP:-100000}
open_rate=${W1_OPEN_RATE:-100000}
open_duration=${W1_OPEN_DURATION:-5}
cg_checks=${CG_CHECKS:-100000}
w1="--checks $checks --keys $keys --inflight $inflight --warmup $warmup"

# ---- our own redis-server ----

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rl-w1.XXXXXX")
pid=
port=

# On any exit: stop the server we started (by its pid) and remove tmp.
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rcli() {
    redis-cli -h 127.0.0.1 -p "$port" "$@"
}

# Whether the server on $port is ours (another one may hold the port
# while ours failed to bind).
server_is_ours() {
    rcli info server 2>/dev/null | tr -d '\r' |
        grep -qx "process_id:$pid"
}

# Starts redis-server on a random free port; tries a few ports.
start_server() {
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
        redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" \
            --save "" --appendonly no --logfile "$tmp/redis.log" &
        pid=$!
        i=0
        while [ $i -lt 50 ] && kill -0 "$pid" 2>/dev/null; do
            if server_is_ours; then
                return 0
            fi
            sleep 0.1
            i=$((i + 1))
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=
    done
    echo "run-w1.sh: could not start redis-server; its log:" >&2
    cat "$tmp/redis.log" >&2 || true
    return 1
}

start_server
results=$tmp/results.csv
: >"$results"
failed=0

echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')" \
     "on 127.0.0.1:$port (pid $pid); rl-bench from $build"
echo "load before: $(uptime | sed 's/.*load average/load average/')"
echo "W1: $checks checks over $keys keys, $inflight in flight, warmup" \
     "$warmup, limit 100 per 60000 ms"
echo

# ---- 1. ours, every algorithm ----

# One rl-bench run; its CSV line goes to $results, its stderr shown.
ours() {
    rcli flushall >/dev/null
    if ! "$rlbench" --backend redis --host 127.0.0.1 --port "$port" \
            --quiet "$@" >>"$results"; then
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
if command -v node >/dev/null 2>&1 &&
   [ -d "$bench_dir/peers/node_modules/rate-limiter-flexible" ]; then
    echo "rlf-w1.js (rate-limiter-flexible) ..."
    rcli flushall >/dev/null
    # shellcheck disable=SC2086
    if node "$bench_dir/peers/rlf-w1.js" --host 127.0.0.1 --port "$port" \
            --quiet $w1 >>"$results"; then
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

echo "rl-bench --open-loop $open_rate ..."
ours --algo fixed-window --open-loop "$open_rate" \
     --duration "$open_duration" --keys "$keys" --warmup "$warmup" \
     --inflight "$inflight"

# ---- 4. callgrind ----

ipc=
if [ $callgrind = yes ]; then
    echo "rl-bench under callgrind ($cg_checks checks) ..."
    rcli flushall >/dev/null
    cg=$tmp/w1-callgrind.out
    # Valgrind slows the client down some 50 times: a long deadline keeps
    # every answer from Redis rather than from the fallback.
    if REDIS_COMMAND_TIMEOUT=60000 "$build/libtool" --mode=execute \
            valgrind --tool=callgrind --callgrind-out-file="$cg" \
            --toggle-collect='measured_phase*' "$rlbench" --backend redis \
            --host 127.0.0.1 --port "$port" --algo fixed-window \
            --checks "$cg_checks" --keys "$keys" --inflight "$inflight" \
            --warmup "$keys" --quiet >"$tmp/cg.csv" 2>"$tmp/cg.err"; then
        total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$cg" | head -1)
        ipc=$(awk -v t="$total" -v n="$cg_checks" \
                  'BEGIN { printf "%.0f", t / n }')
    else
        echo "run-w1.sh: callgrind run failed:" >&2
        cat "$tmp/cg.err" >&2
        failed=1
    fi
fi

echo "load after: $(uptime | sed 's/.*load average/load average/')"
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
    printf "%-32s %9s %8s %8s %8s %6s %8s %8s %7s %8s %7s\n", "run",
        "checks/s", "p50 ms", "p99 ms", "p999 ms", "fallbk", "cli us/c",
        "EVALSHA/c", "cmds/c", "in-Redis", "srv us/c"
}
{
    name = ($1 == "rlf" ? "peer rlf " : "ours ") $2
    if ($17 == "open")
        name = name " open " $18 "/s"
    printf "%-32s %9.0f %8.3f %8.3f %8.3f %6d %8.3f %8.4f %7.4f %8.3f " \
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
    printf "open loop fixed-window at %d/s offered: %.0f/s achieved, " \
        "p99 %.3f ms, p999 %.3f ms, max %.3f ms, %d by the fallback\n",
        $18, $9, $11 / 1000, $12 / 1000, $19 / 1000, $15
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
