#!/bin/sh
# check.sh: runs every test the way CI does: installs what is missing,
# builds out of tree with AddressSanitizer, UndefinedBehaviorSanitizer and
# -Werror, runs `make check` (the suites start their own redis-server on
# private loopback ports), then `make distcheck`, and prints each Check
# summary and one closing "N passed, N failed" line.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
"$top/build-aux/deps.sh"
src=$top
build="$top/_build/check"
# The README's first command configures the tree in place, and configure
# refuses to build out of a tree configured so: then the checks run on a
# copy of the sources (the files git tracks, and the new ones it does not
# ignore), and the build in place stays as it is.
if [ -f "$top/config.status" ]; then
    if ! git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
        echo "check.sh: $top is configured in place and is no git" \
             "checkout; run 'make distclean' there first" >&2
        exit 2
    fi
    src="$top/_build/check-src"
    build="$top/_build/check-copy"
    rm -rf "$src" "$build"
    mkdir -p "$src"
    git -C "$top" ls-files -z --cached --others --exclude-standard |
        tar -C "$top" --null --ignore-failed-read -T - -cf - |
        tar -C "$src" -xf -
fi
cd "$src"
[ -x configure ] || autoreconf -fi

mkdir -p "$build"
cd "$build"
[ -f Makefile ] || "$src/configure" --enable-sanitizers --enable-werror -q
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
