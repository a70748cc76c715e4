#!/bin/sh
# attnsec release: exact lattice noise, the privacy ledger and its budget,
# the secure/seeded split and strict input (attnsec-release(1)).
# Statuses are captured and compared, never returned (77 means SKIP to the
# test driver but "budget exceeded" to attnsec).
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

# npy FILE SHAPE DATA: a .npy v1.0 file of little-endian float64 values,
# DATA given as printf octal escapes (8 bytes per value), laid out as
# np.save writes it (header padded with spaces to a multiple of 64).
npy() {
    h="{'descr': '<f8', 'fortran_order': False, 'shape': $2, }"
    pad=$(( (64 - (10 + ${#h} + 1) % 64) % 64 ))
    hl=$(( ${#h} + pad + 1 ))
    {
        printf '\223NUMPY\001\000'
        # shellcheck disable=SC2059
        printf "\\$(printf %03o $((hl % 256)))\\$(printf %03o $((hl / 256)))"
        printf '%s' "$h"
        printf "%${pad}s\n" ""
        # shellcheck disable=SC2059
        printf "$3"
    } >"$1"
}
z='\000\000\000\000\000\000'
# 1.0, 2.0, 3.0, 4.0 as float64
npy "$scratch/in.npy" '(2, 2)' "$z\360\077$z\000\100$z\010\100$z\020\100"
in=$scratch/in.npy
R="$ATTNSEC release"

# -- a Gaussian release: output, report with the fields the issue asks for
# shellcheck disable=SC2086
if run 0 $R -i "$in" -o "$scratch/g.npy" -m gaussian --sensitivity 1 --epsilon 1 \
    --delta 1e-5; then
    [ -s "$scratch/g.npy" ] || fail "gaussian: no output"
    rep=$scratch/g.report.json
    [ -s "$rep" ] || fail "gaussian: no report at OUT.report.json"
    for key in '"mechanism": "discrete_gaussian"' '"granularity":' \
        '"sensitivity_effective":' '"epsilon":' '"delta":' '"rho":' \
        '"mode": "secure"' '"dp_release": true' '"idealized_numerics": false'; do
        grep -q -- "$key" "$rep" || fail "gaussian report lacks $key"
    done
    stdout_empty "gaussian release"
fi
"$ATTNSEC" inspect "$scratch/g.npy" >"$scratch/insp" 2>&1 || fail "output is not a valid .npy"
grep -q '(2, 2)' "$scratch/insp" || fail "output shape is not (2, 2): $(cat "$scratch/insp")"

# -- a Laplace release with --sigma (the scale b), report to a chosen path
# shellcheck disable=SC2086
if run 0 $R -i "$in" -o "$scratch/l.npy" -m laplace --sensitivity 2 --sigma 4 \
    --report "$scratch/l.json" --json; then
    grep -q '"mechanism": "discrete_laplace"' "$scratch/l.json" ||
        fail "laplace report at --report lacks the mechanism"
    stdout_has '"discrete_laplace"' "laplace --json"
fi

# -- secure mode refuses --seed; --insecure-seed marks NOT a DP release
# shellcheck disable=SC2086
run 64 $R -i "$in" -o "$scratch/s.npy" -m gaussian --sensitivity 1 --sigma 2 --seed 7 &&
    stderr_has "refusing --seed" "seed refusal"
[ ! -e "$scratch/s.npy" ] || fail "seed refusal wrote an output"
# shellcheck disable=SC2086
run 0 $R -i "$in" -o "$scratch/s1.npy" -m gaussian --sensitivity 1 --sigma 2 --seed 7 \
    --insecure-seed && stderr_has "NOT a DP release" "insecure seed warning"
grep -q '"dp_release": false' "$scratch/s1.report.json" ||
    fail "seeded report does not say dp_release false"
# shellcheck disable=SC2086
run 0 $R -q -i "$in" -o "$scratch/s2.npy" -m gaussian --sensitivity 1 --sigma 2 \
    --seed 7 --insecure-seed
cmp -s "$scratch/s1.npy" "$scratch/s2.npy" || fail "same seed gave different bytes"
# shellcheck disable=SC2086
run 64 $R -i "$in" -o "$scratch/s3.npy" -m gaussian --sensitivity 1 --sigma 2 \
    --insecure-seed

# -- the ledger: two releases of epsilon 0.4 fit (1, 0), the third is
# refused with 77 and writes nothing (no output, ledger unchanged)
led=$scratch/ledger.json
for i in 1 2; do
    # shellcheck disable=SC2086
    run 0 $R -i "$in" -o "$scratch/p$i.npy" -m laplace --sensitivity 1 --epsilon 0.4 \
        --ledger "$led" --budget 1,0
done
[ "$(grep -c '"mechanism": "laplace"' "$led")" -eq 2 ] || fail "ledger does not hold 2 entries"
cp "$led" "$scratch/ledger.before"
# shellcheck disable=SC2086
run 77 $R -i "$in" -o "$scratch/p3.npy" -m laplace --sensitivity 1 --epsilon 0.4 \
    --ledger "$led" --budget 1,0 && stderr_has "refused" "budget refusal"
[ ! -e "$scratch/p3.npy" ] || fail "refused release wrote its output"
[ ! -e "$scratch/p3.report.json" ] || fail "refused release wrote a report"
cmp -s "$led" "$scratch/ledger.before" || fail "refused release changed the ledger"
# A Gaussian needs a delta budget: with delta 0 it is refused too.
# shellcheck disable=SC2086
run 77 $R -i "$in" -o "$scratch/p4.npy" -m gaussian --sensitivity 1 --sigma 50 \
    --ledger "$led" --budget 100,0
# Gaussians compose through the accountant: (2, 1e-6) holds a few sigma = 5.
gl=$scratch/gledger.json
n=0
while [ $n -lt 20 ]; do
    # shellcheck disable=SC2086
    $R -q -i "$in" -o "$scratch/gg.npy" -m gaussian --sensitivity 1 --sigma 5 \
        --ledger "$gl" --budget 2,1e-6 2>/dev/null
    st=$?
    [ $st -eq 0 ] || break
    n=$((n + 1))
done
[ "$st" -eq 77 ] || fail "gaussian ledger: exit $st after $n releases, expected 77"
if [ "$n" -lt 1 ] || [ "$n" -ge 20 ]; then
    fail "gaussian ledger allowed $n releases"
fi

# -- malformed input, ledger and options
printf 'garbage' >"$scratch/bad.npy"
# shellcheck disable=SC2086
run 65 $R -i "$scratch/bad.npy" -o "$scratch/x.npy" -m gaussian --sensitivity 1 --sigma 2
[ ! -e "$scratch/x.npy" ] || fail "malformed input wrote an output"
npy "$scratch/trunc.npy" '(4,)' "$z\360\077"  # declares 4 values, holds 1
# shellcheck disable=SC2086
run 65 $R -i "$scratch/trunc.npy" -o "$scratch/x.npy" -m gaussian --sensitivity 1 --sigma 2
# shellcheck disable=SC2086
run 66 $R -i "$scratch/missing.npy" -o "$scratch/x.npy" -m gaussian --sensitivity 1 --sigma 2
printf '{"format": "attnsec-ledger", "version": 1, "entries": [{"mechanism": "x"}]}' \
    >"$scratch/badledger.json"
# shellcheck disable=SC2086
run 65 $R -i "$in" -o "$scratch/x.npy" -m laplace --sensitivity 1 --epsilon 0.1 \
    --ledger "$scratch/badledger.json" --budget 1,0
[ ! -e "$scratch/x.npy" ] || fail "malformed ledger: output written"

# Ledgers that are not as release writes them: wrong type, truncated, a
# huge line, a NUL byte, too deep, /dev/zero, a FIFO, a directory, over the
# 64 MiB cap, numbers out of range.  Each exits 65 with one line naming the
# ledger, without blocking, and writes nothing: no output, no report, the
# ledger unchanged.
bad_ledger() { # DESCRIPTION: release against $scratch/bl
    bl=$scratch/bl
    if [ -f "$bl" ] && [ ! -L "$bl" ]; then cp "$bl" "$scratch/bl.before"; fi
    # shellcheck disable=SC2086
    if run 65 timeout 20 $R -i "$in" -o "$scratch/x.npy" -m laplace --sensitivity 1 \
        --epsilon 0.1 --ledger "$bl" --budget 100,0; then
        stderr_lines 1 "$1"
        stderr_has "$bl" "$1"
    fi
    [ ! -e "$scratch/x.npy" ] && [ ! -e "$scratch/x.report.json" ] ||
        fail "$1: an output was written"
    if [ -f "$scratch/bl.before" ]; then
        cmp -s "$bl" "$scratch/bl.before" || fail "$1: the ledger changed"
    fi
    rm -rf "$bl" "$scratch/bl.before" "$scratch/x.npy" "$scratch/x.report.json"
}
printf '[{"mechanism": "laplace", "epsilon": 0.1}]\n' >"$scratch/bl"
bad_ledger "ledger of the wrong type"
head -c 200 "$led" >"$scratch/bl"
bad_ledger "truncated ledger"
awk 'BEGIN { printf "{\"format\": \"attnsec-ledger\", \"version\": 1, \"entries\": [], \"x\": \"";
    for (i = 0; i < 200000; i++) printf "\033[31m"; print "\"}" }' >"$scratch/bl"
bad_ledger "a 1 MB line of escape bytes"
if LC_ALL=C grep -q "$(printf '\033')" "$scratch/err"; then
    fail "ledger: an escape byte reached stderr"
fi
printf '{"format": "attnsec-ledger", "version": 1,\000 "entries": []}' >"$scratch/bl"
bad_ledger "a NUL byte"
awk 'BEGIN { printf "{\"format\": \"attnsec-ledger\", \"version\": 1, \"entries\": [], \"x\": ";
    for (i = 0; i < 17; i++) printf "["; for (i = 0; i < 17; i++) printf "]"; print "}" }' >"$scratch/bl"
bad_ledger "nesting deeper than 16"
stderr_has "nesting deeper" "ledger depth cap"
ln -s /dev/zero "$scratch/bl"
bad_ledger "/dev/zero"
mkfifo "$scratch/bl"
bad_ledger "a FIFO"
mkdir "$scratch/bl"
bad_ledger "a directory"
cp "$led" "$scratch/bl" && truncate -s 65M "$scratch/bl"
bad_ledger "over the cap"
printf '{"format": "attnsec-ledger", "version": 1, "entries": [{"mechanism": "laplace", "epsilon": -1}]}' >"$scratch/bl"
bad_ledger "a negative epsilon"
stderr_has "entries\[0\]: epsilon" "negative epsilon"
printf '{"format": "attnsec-ledger", "version": 1, "entries": [{"mechanism": "gaussian", "rho": 1e999}]}' >"$scratch/bl"
bad_ledger "rho out of range"

# shellcheck disable=SC2086
{
    run 64 $R -i "$in" -o "$scratch/x.npy" -m gaussian --sigma 2
    run 64 $R -i "$in" -o "$scratch/x.npy" -m gaussian --sensitivity 1
    run 64 $R -i "$in" -o "$scratch/x.npy" -m gaussian --sensitivity 1 --sigma 2 --epsilon 1
    run 64 $R -i "$in" -o "$scratch/x.npy" -m gaussian --sensitivity 1 --epsilon 1
    run 64 $R -i "$in" -o "$scratch/x.npy" -m laplace --sensitivity 1 --epsilon 1 --norm l2
    run 64 $R -i "$in" -o "$scratch/x.npy" -m laplace --sensitivity 1 --epsilon 1 --delta 1e-5
    run 64 $R -i "$in" -o "$scratch/x.npy" -m uniform --sensitivity 1 --epsilon 1
    run 64 $R -i "$in" -o "$scratch/x.npy" -m laplace --sensitivity -1 --epsilon 1
    run 64 $R -i "$in" -o "$scratch/x.npy" -m laplace --sensitivity 1 --epsilon 1 --ledger "$led"
    run 64 $R -i "$in" -o "$scratch/x.npy" -m laplace --sensitivity 1 --epsilon 1 \
        --ledger "$led" --budget 1
    run 64 $R -o "$scratch/x.npy" -m laplace --sensitivity 1 --epsilon 1
    run 64 $R -i "$in" -o "$scratch/x.npy" -m gaussian --sensitivity 1 --sigma 2 \
        --granularity-bits 31
}
[ ! -e "$scratch/x.npy" ] || fail "a usage error wrote an output"
finish
