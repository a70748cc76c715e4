#!/bin/sh
# --help and --version: stdout, exit 0 (GNU Coding Standards 4.8); every
# long option that --help prints is documented in the command's man page.
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

run 0 "$ATTNSEC" --help && stdout_has '^Usage: attnsec' "--help" && stderr_empty "--help"
run 0 "$ATTNSEC" -h && stdout_has '^Usage: attnsec' "-h"
run 0 "$ATTNSEC" --version && stderr_empty "--version"
first=$(head -n 1 "$scratch/out")
case $first in
"attnsec "[0-9]*) ;;
*) fail "--version first line is '$first'" ;;
esac
run 0 "$ATTNSEC" -V

commands=$(list_commands)
[ -n "$commands" ] || fail "'attnsec --help' lists no command"
echo "$commands" | while read -r group method; do
    [ -n "$group" ] || continue
    # shellcheck disable=SC2086
    if ! "$ATTNSEC" $group $method --help >"$scratch/h" 2>"$scratch/herr"; then
        echo "FAIL: attnsec $group $method --help did not exit 0" >&2
        echo x >>"$scratch/failed"
        continue
    fi
    grep -q '^Usage: attnsec' "$scratch/h" || { echo "FAIL: $group $method --help has no Usage line" >&2; echo x >>"$scratch/failed"; }
    [ ! -s "$scratch/herr" ] || { echo "FAIL: $group $method --help wrote to stderr" >&2; echo x >>"$scratch/failed"; }
    page="$ASEC_SRCDIR/man/attnsec-$group.1"
    if [ ! -f "$page" ]; then
        echo "FAIL: no man page $page for '$group'" >&2
        echo x >>"$scratch/failed"
        continue
    fi
    for opt in $(grep -o -- '--[a-z][a-z0-9-]*' "$scratch/h" | sort -u); do
        name=${opt#--}
        if ! grep -q -E -- "(\\\\-|-)$name([^a-z0-9-]|\$)" "$page"; then
            echo "FAIL: $opt of '$group $method' is not documented in $page" >&2
            echo x >>"$scratch/failed"
        fi
    done
done
[ ! -f "$scratch/failed" ] || failures=$((failures + $(wc -l <"$scratch/failed")))
finish
