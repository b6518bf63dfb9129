#!/bin/sh
# check.sh: runs every test the way CI does: installs what is missing,
# builds out of tree with AddressSanitizer, UndefinedBehaviorSanitizer and
# -Werror, runs `make check` (the suites start their own redis-server on
# private loopback ports), then `make distcheck`, and prints each Check
# summary and one closing "N passed, N failed" line.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
"$top/build-aux/deps.sh"
cd "$top"
[ -x configure ] || autoreconf -fi

build="$top/_build/check"
mkdir -p "$build"
cd "$build"
[ -f Makefile ] || "$top/configure" --enable-sanitizers --enable-werror -q
status=0
make -j2 -s
make -j2 -s check || status=$?

passed=0
failed=0
for log in tests/*.log; do
    [ -f "$log" ] || continue
    line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -n 1)
    echo "$(basename "$log" .log): ${line:-no Check summary}"
    checks=$(echo "$line" | sed -n 's/.*Checks: \([0-9]*\).*/\1/p')
    fails=$(echo "$line" | sed -n 's/.*Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2/p')
    [ -n "$checks" ] || { failed=$((failed + 1)); continue; }
    set -- $fails
    failed=$((failed + $1 + $2))
    passed=$((passed + checks - $1 - $2))
done
if [ "$status" -ne 0 ]; then
    for log in tests/*.log; do
        grep -q '^FAIL\|^ERROR' "${log%.log}.trs" 2>/dev/null &&
            { echo "==== $log"; tail -n 60 "$log"; }
    done
fi
if [ "$status" -eq 0 ] && [ "${RL_SKIP_DISTCHECK:-0}" != 1 ]; then
    make -s distcheck DISTCHECK_CONFIGURE_FLAGS="--enable-werror" \
        >distcheck.log 2>&1 || { tail -n 40 distcheck.log; status=1; }
    [ "$status" -eq 0 ] && echo "distcheck: ok"
fi
echo "$passed passed, $failed failed"
exit "$status"
