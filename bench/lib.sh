# lib.sh: what the bench/*.sh scripts share, sourced by each: finding
# the build directory, a redis-server of their own (or the one REDIS_URL
# names), and small helpers around it.
#
# The caller sets $prog (its name, for messages) and $bench_dir (this
# directory) before sourcing, and runs under `set -eu`.  After
# bench_args "$@" and bench_server_start it has:
#   $build, $rlbench    the build directory and its bench/rl-bench;
#   $srcdir             the source tree (the parent of $bench_dir);
#   $tmp                a temporary directory, removed on exit;
#   $server             the options that name the server, for rl-bench and
#                       the peers alike: "--host 127.0.0.1 --port P", or
#                       "--url $REDIS_URL";
#   rcli ARGS...        redis-cli on that server;
#   bench_flush         empties the database between runs.
# A script that starts servers of its own (redis-cpu.sh, one under
# valgrind per algorithm) calls bench_tmp, then start_own_server with
# $server_wrap set, instead of bench_server_start.
# With REDIS_URL the server is the caller's: it is used as it is, never
# started or stopped, and bench_flush runs FLUSHDB on it.  Give a server
# nobody else uses: INFO's counts are the whole server's.
# The variables go both ways between this file and its caller:
# shellcheck shell=sh disable=SC2034,SC2154

# ---- the command line and the build directory ----

# -h or --help prints the script's header comment; the option that
# $bench_flag names, if any, sets $flag to yes; a word not starting with
# - is the build directory (bench_find_build).
bench_args() {
    flag=no
    build=
    for arg in "$@"; do
        case $arg in
        -h|--help) sed -n '2,/^set -eu/p' "$0" | sed 's/^# \{0,1\}//;$d'
                   exit 0 ;;
        -*) if [ "$arg" != "${bench_flag:-}" ]; then
                echo "$prog: unknown option $arg" >&2
                exit 2
            fi
            flag=yes ;;
        *) build=$arg ;;
        esac
    done
    bench_find_build "$build"
}

# $1: the build directory given, or empty: the current directory when it
# has bench/rl-bench, else the first _build/*/ of the source tree that
# does.  Sets $build and $rlbench, or exits 2.
bench_find_build() {
    build=$1
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
        echo "$prog: no bench/rl-bench in '${build:-.}'; build it first" \
             "and give the build directory" >&2
        exit 2
    fi
    build=$(cd "$build" && pwd)
    rlbench=$build/bench/rl-bench
}

# ---- the server ----

pid=
port=
tmp=

# On any exit: stop the server we started (by its pid) and remove $tmp.
# shellcheck disable=SC2317 # called by the trap
bench_cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    if [ -n "$tmp" ]; then
        rm -rf "$tmp"
    fi
}

rcli() {
    if [ -n "${REDIS_URL:-}" ]; then
        redis-cli -u "$REDIS_URL" "$@"
    else
        redis-cli -h 127.0.0.1 -p "$port" "$@"
    fi
}

bench_flush() {
    if [ -n "${REDIS_URL:-}" ]; then
        rcli flushdb >/dev/null
    else
        rcli flushall >/dev/null
    fi
}

# Whether the server on $port is ours (another one may hold the port
# while ours failed to bind).
server_is_ours() {
    rcli info server 2>/dev/null | tr -d '\r' |
        grep -qx "process_id:$pid"
}

# Starts redis-server on a random free port (tries a few) and sets
# $server to name it.  With
# $server_wrap set (a command and its options, such as valgrind's), the
# server runs under it, and is given 30 s rather than 5 to answer.
start_own_server() {
    tries=50
    if [ -n "${server_wrap:-}" ]; then
        tries=300
    fi
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
        # shellcheck disable=SC2086 # $server_wrap is a list of words
        ${server_wrap:-} redis-server --port "$port" --bind 127.0.0.1 \
            --dir "$tmp" --save "" --appendonly no \
            --logfile "$tmp/redis.log" &
        pid=$!
        i=0
        while [ $i -lt $tries ] && kill -0 "$pid" 2>/dev/null; do
            if server_is_ours; then
                server="--host 127.0.0.1 --port $port"
                return 0
            fi
            sleep 0.1
            i=$((i + 1))
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=
    done
    echo "$prog: could not start redis-server; its log:" >&2
    cat "$tmp/redis.log" >&2 || true
    return 1
}

# $1: a name for the temporary directory.  Makes $tmp and sets the exit
# traps that remove it (and stop our server).
bench_tmp() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM HUP PIPE
}

# $1: a name for the temporary directory.  bench_tmp, then starts our
# server (or checks REDIS_URL's) and sets $server.
bench_server_start() {
    bench_tmp "$1"
    if [ -n "${REDIS_URL:-}" ]; then
        if ! rcli ping >/dev/null; then
            echo "$prog: no answer from REDIS_URL's server" >&2
            return 1
        fi
        server="--url $REDIS_URL"
        return 0
    fi
    start_own_server
}

# One line on the server: version, address, and whose it is.
bench_server_line() {
    version=$(rcli info server | tr -d '\r' |
              sed -n 's/^redis_version://p')
    if [ -n "${REDIS_URL:-}" ]; then
        echo "redis-server $version at REDIS_URL (not ours: never" \
             "stopped); rl-bench from $build"
    else
        echo "redis-server $version on 127.0.0.1:$port (pid $pid);" \
             "rl-bench from $build"
    fi
}

# ---- callgrind ----

# rl-bench against the server under callgrind, collecting the measured
# phase only: $1 the profile to write, $2 the checks, then rl-bench's
# other options.  Prints the client's instructions per check (the
# library, hiredis, libevent, the syscalls' user side and ~110 of the
# bench's own), or fails with valgrind's and rl-bench's stderr in $1.err.
bench_callgrind() {
    cg_out=$1
    cg_n=$2
    shift 2
    bench_flush
    # Valgrind slows the client down some 50 times: a long deadline keeps
    # every answer from Redis rather than from the fallback.
    # shellcheck disable=SC2086 # $server is a list of options
    REDIS_COMMAND_TIMEOUT=60000 "$build/libtool" --mode=execute \
        valgrind --tool=callgrind --callgrind-out-file="$cg_out" \
        --toggle-collect='measured_phase*' "$rlbench" --backend redis \
        $server --checks "$cg_n" --quiet "$@" >"$cg_out.csv" \
        2>"$cg_out.err" || return 1
    sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$cg_out" | head -1 |
        awk -v n="$cg_n" '{ printf "%.0f\n", $1 / n }'
}

# ---- helpers ----

# The load average now: /proc/loadavg (1, 5, 15 min, runnable/total).
bench_load() {
    cat /proc/loadavg 2>/dev/null ||
        uptime | sed 's/.*load average: *//'
}

# Whether the peers can run: node and bench/peers/node_modules.
bench_have_peer() {
    command -v node >/dev/null 2>&1 &&
        [ -d "$bench_dir/peers/node_modules/rate-limiter-flexible" ]
}
