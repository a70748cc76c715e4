# common.sh - sourced by the CLI tests (exit-status protocol: 0 pass,
# 77 skip, 99 hard error).  The tool's own statuses include 77, so a test
# captures and compares them, never exits with them.

: "${ATTNSEC:?ATTNSEC must name the attnsec binary (make check sets it)}"
: "${ASEC_SRCDIR:?ASEC_SRCDIR must name the source tree (make check sets it)}"
ATTNSEC_DATADIR=${ATTNSEC_DATADIR:-$ASEC_SRCDIR/datasets}
export ATTNSEC_DATADIR
LC_ALL=C
export LC_ALL

failures=0
scratch=$(mktemp -d "${TMPDIR:-/tmp}/asec-cli.XXXXXX") || exit 99
trap 'rm -rf "$scratch"' EXIT

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# run EXPECTED_STATUS CMD...: run the tool, keep stdout/stderr in
# $scratch/out and $scratch/err, and check the status.
run() {
    want=$1
    shift
    "$@" >"$scratch/out" 2>"$scratch/err"
    got=$?
    if [ "$got" -ne "$want" ]; then
        fail "'$*' exited $got, expected $want; stderr: $(head -c 300 "$scratch/err")"
        return 1
    fi
    return 0
}

stdout_empty() { [ ! -s "$scratch/out" ] || fail "$1: stdout not empty"; }
stderr_empty() { [ ! -s "$scratch/err" ] || fail "$1: stderr not empty"; }
stderr_lines() {
    n=$(wc -l <"$scratch/err")
    [ "$n" -eq "$1" ] || fail "$2: $n lines on stderr, expected $1: $(head -c 300 "$scratch/err")"
}
stderr_has() { grep -q -- "$1" "$scratch/err" || fail "$2: stderr lacks '$1': $(head -c 300 "$scratch/err")"; }
stdout_has() { grep -q -- "$1" "$scratch/out" || fail "$2: stdout lacks '$1'"; }

# The commands, as "group" or "group method", from 'attnsec --help'.
list_commands() {
    "$ATTNSEC" --help | sed -n '/^Commands:/,/^$/p' | sed -n 's/^  \([a-z][a-z-]*\)\( [a-z][a-z-]*\)\{0,1\} .*/\1\2/p'
}

finish() {
    if [ "$failures" -ne 0 ]; then
        echo "$failures check(s) failed" >&2
        exit 1
    fi
    exit 0
}
