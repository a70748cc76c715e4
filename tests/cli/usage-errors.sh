#!/bin/sh
# Usage errors: exit 64, nothing on stdout, a message naming the problem and
# a hint on stderr.  Checked for the program and for every command.
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

run 64 "$ATTNSEC" && stdout_empty "no command" && stderr_has "missing command" "no command"
run 64 "$ATTNSEC" --bogus && stdout_empty "--bogus" && stderr_has "unknown option" "--bogus"
run 64 "$ATTNSEC" -Z && stdout_empty "-Z"
run 64 "$ATTNSEC" no-such-command && stdout_empty "unknown command" &&
    stderr_has "unknown command 'no-such-command'" "unknown command" &&
    stderr_has "Try 'attnsec --help'" "unknown command"

list_commands | while read -r group method; do
    [ -n "$group" ] || continue
    # shellcheck disable=SC2086
    "$ATTNSEC" $group $method --no-such-option >"$scratch/o" 2>"$scratch/e"
    st=$?
    if [ "$st" -ne 64 ]; then
        echo "FAIL: '$group $method --no-such-option' exited $st, expected 64" >&2
        echo x >>"$scratch/failed"
    fi
    if [ -s "$scratch/o" ]; then
        echo "FAIL: '$group $method --no-such-option' wrote to stdout" >&2
        echo x >>"$scratch/failed"
    fi
    grep -q "^attnsec $group" "$scratch/e" || {
        echo "FAIL: '$group $method' usage error does not start with 'attnsec $group': $(cat "$scratch/e")" >&2
        echo x >>"$scratch/failed"
    }
    grep -q "unknown option '--no-such-option'" "$scratch/e" || {
        echo "FAIL: '$group $method --no-such-option': $(head -n 1 "$scratch/e")" >&2
        echo x >>"$scratch/failed"
    }
    # shellcheck disable=SC2086
    "$ATTNSEC" $group $method --help=x >/dev/null 2>"$scratch/e"
    grep -q "option '--help' takes no argument" "$scratch/e" || {
        echo "FAIL: '$group $method --help=x': $(head -n 1 "$scratch/e")" >&2
        echo x >>"$scratch/failed"
    }
done
# A known option without its argument is named as such, not as unknown.
for cmd in "model init --arch=vit --seed" "defend dpsgd -T" "audit --steps" \
    "account epsilon -q" "release -i" "defend dp-attn -e" "batch run -j"; do
    # shellcheck disable=SC2086
    run 64 "$ATTNSEC" $cmd && stderr_has "option '${cmd##* }' requires an argument" "$cmd"
done
# Every group with methods rejects an unknown method.
for group in $(list_commands | awk 'NF == 2 { print $1 }' | sort -u); do
    "$ATTNSEC" "$group" no-such-method >"$scratch/o" 2>"$scratch/e"
    st=$?
    [ "$st" -eq 64 ] || { echo "FAIL: '$group no-such-method' exited $st" >&2; echo x >>"$scratch/failed"; }
done
[ ! -f "$scratch/failed" ] || failures=$((failures + $(wc -l <"$scratch/failed")))
finish
