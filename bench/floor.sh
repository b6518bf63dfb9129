#!/bin/sh
# floor.sh: the ceiling one Redis core gives any batch script under W1 in
# this harness (the same client, pipeline and batching), next to the
# library's fixed window: checks/s of each, and with --callgrind Redis's
# instructions per check.
#
# Usage:
#   bench/floor.sh [--callgrind] [build-dir]
#
# build-dir is the library's own configured build directory, holding
# bench/rl-bench, as for run-w1.sh; it is only read.  Each bench/floor/*.lua
# is a floor script (its header says what it leaves out): for each, a copy
# of the source tree (without _build and .git) in a temporary directory
# gets it in place of lua/fixed_window.lua, is configured with the CFLAGS
# of build-dir's config.log (else -O2 -g) and builds bench/rl-bench only,
# so that rl-bench --algo fixed-window runs the floor script.  Then, on
# one redis-server of its own (a free 127.0.0.1 port, a temporary
# directory, no RDB and no AOF; stopped and removed on exit, however the
# script ends), or the one REDIS_URL names (used as it is, and flushed:
# give one nobody else uses), FLOOR_ROUNDS rounds, each running the
# library's rl-bench, then each floor's, on W1 closed loop (run-w1.sh's
# options), each on an empty database.  The rounds alternate so that a
# change in the machine's load falls on every variant alike.  Prints a
# line per run and the median per variant.
# With --callgrind, then, bench/redis-cpu.sh (RCPU_ALGOS=fixed-window) on
# each variant's build directory: Redis's instructions per check, the
# figure that noise hardly moves (its own server under valgrind; it
# ignores REDIS_URL).
#
# Knobs (environment): FLOOR_ROUNDS (3); W1_CHECKS (1000000), W1_KEYS
# (100000), W1_INFLIGHT (1024), W1_WARMUP (100000), as for run-w1.sh;
# RCPU_CHECKS and RCPU_KEYS, as for redis-cpu.sh; RCPU_KEEP, each
# variant's profile kept in a directory of its own below it.
#
# Needs redis-server, redis-cli, GNU tar and what building the library
# needs (autoreconf too when the tree has no configure); valgrind for
# --callgrind.  Takes a few minutes: about a minute of builds, then 3 to
# 7 s per run (3 rounds of each variant); --callgrind adds about a minute
# per variant.
set -eu
prog=floor.sh
bench_dir=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$bench_dir/lib.sh"

# ---- arguments and defaults ----

bench_flag=--callgrind
bench_args "$@"
callgrind=$flag

rounds=${FLOOR_ROUNDS:-3}
checks=${W1_CHECKS:-1000000}
keys=${W1_KEYS:-100000}
inflight=${W1_INFLIGHT:-1024}
warmup=${W1_WARMUP:-100000}
w1="--checks $checks --keys $keys --inflight $inflight --warmup $warmup"
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)

floors=
for f in "$bench_dir"/floor/*.lua; do
    if [ -e "$f" ]; then
        floors="$floors $(basename "$f" .lua)"
    fi
done
if [ -z "$floors" ]; then
    echo "$prog: no floor scripts in $bench_dir/floor" >&2
    exit 2
fi

# The library's client is built from the tree as it was when build-dir was
# built, the floors' from the tree as it is now: a change in between
# (the pipeline, the batching) would be measured as the scripts'.
newer=$(find "$srcdir/src" "$srcdir/include" "$srcdir/lua" \
             "$srcdir/bench" \( -name '*.c' -o -name '*.h' -o \
             -name '*.lua' \) ! -path '*/bench/floor/*' \
             -newer "$rlbench" 2>/dev/null | head -3)
if [ -n "$newer" ]; then
    echo "$prog: warning: sources newer than $rlbench (rebuild it to" \
         "compare like with like):" >&2
    echo "$newer" | sed 's/^/  /' >&2
fi

# ---- the server ----

# Started first, for its temporary directory (which holds the builds too)
# and the traps that remove it; it idles while they build.
bench_server_start rl-floor
runs=$tmp/runs.txt
: >"$runs"
failed=0

# ---- the floor builds ----

# The CFLAGS the given build was configured with, from the output
# variables config.log lists.
cflags=-O2\ -g
if [ -r "$build/config.log" ] &&
        grep -q "^CFLAGS='" "$build/config.log"; then
    cflags=$(sed -n "s/^CFLAGS='\(.*\)'\$/\1/p" "$build/config.log" |
             head -1)
fi

# One snapshot of the tree for every floor, so they differ in the script
# alone.
tar -C "$srcdir" --exclude=./_build --exclude=./.git -cf "$tmp/tree.tar" .

# $1: the floor's name.  Builds $tmp/$1/bench/rl-bench in a copy of the
# tree, in the copy itself: a source tree configured in place (its
# config.status copied along) refuses a build elsewhere.
build_floor() {
    dir=$tmp/$1
    log=$tmp/$1.build.log
    mkdir "$dir"
    tar -C "$dir" -xf "$tmp/tree.tar"
    cp "$bench_dir/floor/$1.lua" "$dir/lua/fixed_window.lua"
    echo "building floor $1 (CFLAGS=$cflags) ..."
    if ! (cd "$dir" &&
          if [ ! -x configure ]; then autoreconf -fi; fi &&
          ./configure CFLAGS="$cflags" &&
          make -j"$jobs" bench/rl-bench) >"$log" 2>&1; then
        echo "$prog: the build of floor $1 failed; the end of its log:" >&2
        tail -n 25 "$log" >&2
        return 1
    fi
}

for name in $floors; do
    build_floor "$name"
done
rm -f "$tmp/tree.tar"
echo

# ---- the runs ----

bench_server_line
echo "load before: $(bench_load)"
echo "W1: $checks checks over $keys keys, $inflight in flight, warmup" \
     "$warmup, limit 100 per 60000 ms; $rounds rounds"
echo

# $1: the variant's name, $2: its rl-bench.  One W1 run on an empty
# database; a line to the terminal, and "name checks/s srv-us fallback"
# to $runs.  Columns of rl-bench's CSV line: 9 checks_per_s, 15 fallback,
# 23 redis_cpu_us_per_check.
run() {
    bench_flush
    # shellcheck disable=SC2086 # $server and $w1 are lists of options
    if ! line=$("$2" --backend redis $server --algo fixed-window $w1 \
                    --quiet); then
        echo "$prog: rl-bench of $1 failed (see above)" >&2
        failed=1
        return 0
    fi
    echo "$line" | awk -F, -v name="$1" -v r="$round" -v f="$runs" '{
        printf "round %d  %-18s %9.0f checks/s  %7.3f srv us/check  " \
            "%d fallback\n", r, name, $9, $23, $15
        printf "%s %s %s %s\n", name, $9, $23, $15 >>f
    }'
}

round=1
while [ "$round" -le "$rounds" ]; do
    run fixed-window "$rlbench"
    for name in $floors; do
        run "floor-$name" "$tmp/$name/bench/rl-bench"
    done
    round=$((round + 1))
done
echo "load after: $(bench_load)"
echo

# The median of the numbers on stdin, one a line (the mean of the middle
# two for an even count), or nothing for none.
median() {
    sort -n | awk '{ v[NR] = $1 }
        END {
            m = int((NR + 1) / 2)
            k = int(NR / 2) + 1
            if (NR > 0)
                printf "%.3f\n", (v[m] + v[k]) / 2
        }'
}

# Each variant's medians, checks/s and Redis's CPU per check apart; the
# fallback answers summed: any means some checks never reached the
# script, and that variant's figures are not its script's alone.
variants=fixed-window
for name in $floors; do
    variants="$variants floor-$name"
done
echo "median over $rounds rounds:"
printf '  %-18s %9s %12s %9s\n' variant checks/s "srv us/c" fallback
for name in $variants; do
    cps=$(awk -v n="$name" '$1 == n { print $2 }' "$runs" | median)
    srv=$(awk -v n="$name" '$1 == n { print $3 }' "$runs" | median)
    fb=$(awk -v n="$name" '$1 == n { s += $4 } END { print s + 0 }' "$runs")
    if [ -n "$cps" ]; then
        printf '  %-18s %9.0f %12.3f %9d\n' "$name" "$cps" "$srv" "$fb"
    else
        printf '  %-18s %9s\n' "$name" "no run"
    fi
done

# ---- callgrind ----

# redis-cpu.sh on each variant's build directory; the last line it prints
# is the algorithm's: name, instructions, per check, fallback.  It runs
# its own server under valgrind, and refuses REDIS_URL: unset for it
# alone.  The table comes after all of them, the progress lines apart.
if [ "$callgrind" = yes ]; then
    echo
    : >"$tmp/rcpu.txt"
    for name in $variants; do
        dir=$tmp/${name#floor-}
        if [ "$name" = fixed-window ]; then
            dir=$build
        fi
        echo "redis-cpu.sh on $name (about a minute under callgrind) ..."
        # Each variant's profile in a directory of its own, if kept.
        if ! (unset REDIS_URL
              if [ -n "${RCPU_KEEP:-}" ]; then
                  RCPU_KEEP=$RCPU_KEEP/$name
                  export RCPU_KEEP
              fi
              RCPU_ALGOS=fixed-window sh "$bench_dir/redis-cpu.sh" "$dir") \
                >"$tmp/$name.rcpu" 2>&1; then
            echo "$prog: redis-cpu.sh on $name failed:" >&2
            cat "$tmp/$name.rcpu" >&2
            failed=1
            continue
        fi
        tail -n 1 "$tmp/$name.rcpu" |
            awk -v n="$name" '{ print n, $3, $4 }' >>"$tmp/rcpu.txt"
    done
    echo
    echo "Redis instructions per check (bench/redis-cpu.sh, fixed-window," \
         "${RCPU_CHECKS:-100000} checks over ${RCPU_KEYS:-20000} keys):"
    printf '  %-18s %12s %9s\n' variant "instr/check" fallback
    awk '{ printf "  %-18s %12s %9s\n", $1, $2, $3 }' "$tmp/rcpu.txt"
fi
exit $failed
