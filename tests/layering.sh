#!/bin/sh
# Layering (STYLE.md B1): src/ core never uses attack or defense modules;
# attacks and defenses never use each other; library code never prints,
# exits or reads the environment (only src/cli/ does).
: "${ASEC_SRCDIR:?}"
cd "$ASEC_SRCDIR" || exit 99
failures=0

modules_of() {
    for f in "$1"/*.c; do
        [ -f "$f" ] && basename "$f" .c
    done
}
attack_mods=$(modules_of attacks)
defense_mods=$(modules_of defenses)

check_no_include() { # FILES... -- MODULES...
    files=$1
    mods=$2
    what=$3
    for m in $mods; do
        for f in $files; do
            [ -f "$f" ] || continue
            if grep -n -E "#[[:space:]]*include[[:space:]]*[<\"](attnsec/)?$m\\.h[>\"]|#[[:space:]]*include.*(attacks|defenses)/" "$f"; then
                echo "FAIL: $f includes $m.h ($what)" >&2
                failures=$((failures + 1))
            fi
        done
    done
}

# Library sources (public headers are excluded: their comments hold
# example programs that print).
core_files=$(ls src/*.c src/*.h 2>/dev/null)
# A core header may declare an attack/defense API (its own header); it must
# not include another one.
check_no_include "$(ls src/*.c src/internal.h 2>/dev/null)" "$attack_mods $defense_mods" "core uses an attack or defense"
check_no_include "$(ls attacks/*.c 2>/dev/null)" "$defense_mods" "attack uses a defense"
check_no_include "$(ls defenses/*.c 2>/dev/null)" "$attack_mods" "defense uses an attack"

# Library code: no printf/puts/exit/getenv/abort (core.c's assertion
# handler is the one place allowed to print and abort).
for f in $core_files attacks/*.c defenses/*.c; do
    [ -f "$f" ] || continue
    case $f in src/core.c) continue ;; esac
    # Drop comments and string literals before matching.
    if perl -0777 -pe 's{/\*.*?\*/}{}gs; s{//[^\n]*}{}g; s{"(?:\\.|[^"\\])*"}{""}g' "$f" |
        grep -n -E '(^|[^a-z_.>])(printf|puts|putchar|exit|_Exit|abort|getenv|secure_getenv|system)[[:space:]]*\(' |
        grep -v -E 'snprintf|vsnprintf|asec_afile_printf|fprintf\(stream'; then
        echo "FAIL: $f: library code must not print, exit or read the environment" >&2
        failures=$((failures + 1))
    fi
    if grep -n -E 'fprintf[[:space:]]*\((stdout|stderr)' "$f"; then
        echo "FAIL: $f writes to stdout/stderr" >&2
        failures=$((failures + 1))
    fi
    if grep -n -E 'gsl_ran_|#[[:space:]]*include[[:space:]]*<cblas\.h>' "$f"; then
        echo "FAIL: $f uses GSL samplers or OpenBLAS's cblas.h" >&2
        failures=$((failures + 1))
    fi
done
[ "$failures" -eq 0 ] || exit 1
exit 0
