#!/bin/sh
# 'attnsec defend dp-attn' (arXiv 2305.04701; MATH.md §5): exit statuses on
# bad input, the report and the release on the fixtures of
# datasets/gen/make_dp_attn_fixtures.py, m_max from the privacy budget, and a
# model layer as input.  The downstream-accuracy curve trains a model and
# takes about a minute, so it is exercised only with ASEC_LONG_TESTS=1.
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

F=$ASEC_SRCDIR/datasets/fixtures/dp_attn
dp="$ATTNSEC defend dp-attn -q --mc-draws=2000"

# Usage errors (64): Q != K for the covariance mechanism (the message names
# the requirement), no sensitivity, --radius without the lambda_min
# assumption, a seed without --insecure-seed, no output, infinite epsilon.
run 64 $dp -Q "$F/x.npy" -K "$F/k.npy" --delta-f=0.01 -o "$scratch/u" &&
    stdout_empty "Q != K" && stderr_has "requires Q = K" "Q != K"
run 64 $dp -x "$F/x.npy" -o "$scratch/u" && stderr_has "delta-f" "no Delta_F"
run 64 $dp -x "$F/x.npy" --radius=1 -o "$scratch/u" && stderr_has "lambda-min" "radius"
run 64 $dp -x "$F/x.npy" --delta-f=0.01 -s 1 -o "$scratch/u" && stderr_has "seed" "seed"
run 64 $dp -x "$F/x.npy" --delta-f=0.01
run 64 $dp -x "$F/x.npy" --delta-f=0.01 -e inf -o "$scratch/u"
run 64 $dp -M output -x "$F/x.npy" -o "$scratch/u" && stderr_has "values" "output without v"
run 64 $dp -x "$F/x.npy" --delta-f=0.01 --bogus -o "$scratch/u" && stdout_empty "bogus"
# Bad data (65): a NaN, a matrix that is not PSD; missing input (66).
run 65 $dp -x "$F/x_nan.npy" --delta-f=0.01 -o "$scratch/u" && stderr_lines 1 "NaN"
run 65 $dp --matrix="$F/notpsd.npy" --delta-f=0.01 -o "$scratch/u" &&
    stderr_has "positive semidefinite" "not PSD"
run 66 $dp -x "$F/nope.npy" --delta-f=0.01 -o "$scratch/u"
# More samples than m_max(eps = 1, delta = 1e-5, Delta_F = 0.01) = 1437: 77.
run 77 $dp -x "$F/x.npy" --delta-f=0.01 -m 1438 -o "$scratch/u" &&
    stderr_has "1437" "m_max"

# Covariance mechanism, exact kernel and Taylor features, with values.
for g in 0 8; do
    d=$scratch/cov$g
    if run 0 $dp -x "$F/x.npy" --values="$F/v.npy" --delta-f=0.01 -e 0.5,1,2 -g $g \
        --insecure-seed -s 3 -o "$d"; then
        for f in report.json utility.csv factor.npy att.npy; do
            [ -s "$d/$f" ] || fail "cov g=$g: $f missing"
        done
        grep -q '"m_max": 404' "$d/report.json" || fail "cov g=$g: m_max(0.5) != 404"
        grep -q '"m_max": 5031' "$d/report.json" || fail "cov g=$g: m_max(2) != 5031"
        grep -q '"dp_release": false' "$d/report.json" || fail "cov g=$g: seeded not marked"
        n=$(wc -l <"$d/utility.csv")
        [ "$n" -eq 4 ] || fail "cov g=$g: utility.csv has $n lines"
        "$ATTNSEC" inspect "$d/factor.npy" 2>/dev/null | grep -q "404, 12" ||
            fail "cov g=$g: factor.npy is not (404, 12)"
    fi
done
grep -q '"feature_dim": 495' "$scratch/cov8/report.json" || fail "Taylor: r != C(12, 8)"
# Token-level Delta_F with the stated assumption.
run 0 $dp -x "$F/x.npy" --radius=0.01 --lambda-min=0.5 -e 8 -o "$scratch/tok" &&
    grep -q '"delta_f_source": "token-level bound"' "$scratch/tok/report.json" ||
    fail "token-level Delta_F not reported"

# Output perturbation for general Q and K (secure randomness).
d=$scratch/outp
if run 0 $dp -M output -Q "$F/x.npy" -K "$F/k.npy" --values="$F/v.npy" -e 1,inf -o "$d"
then
    for f in report.json utility.csv att.npy; do
        [ -s "$d/$f" ] || fail "output: $f missing"
    done
    grep -q '"noise.sigma"\|"sigma"' "$d/report.json" || fail "output: no sigma"
fi

# A model layer as input (q, k, v of one head for a digits test image).
if run 0 "$ATTNSEC" model init --arch vit --seed 7 -q -o "$scratch/vit.safetensors"; then
    run 0 $dp -M output --model="$scratch/vit.safetensors" --layer=1 --head=2 --index=5 \
        -e 2 -o "$scratch/model"
    run 64 $dp --model="$scratch/vit.safetensors" --delta-f=0.01 -o "$scratch/u" &&
        stderr_has "requires Q = K" "model cov"
fi

if [ "${ASEC_LONG_TESTS:-0}" = 1 ]; then
    d=$scratch/curve
    if run 0 "$ATTNSEC" defend dp-attn -q --curve -o "$d"; then
        for f in report.json curve.csv curve.dat curve.gp model.safetensors; do
            [ -s "$d/$f" ] || fail "curve: $f missing"
        done
        n=$(wc -l <"$d/curve.csv")
        [ "$n" -eq 7 ] || fail "curve.csv has $n lines, expected 7"
    fi
fi
finish
