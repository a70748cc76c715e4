#!/bin/sh
# attnsec attack attn-invert: recovery on a fixture, report fields, and the
# exit statuses for bad input (65), missing input (66) and usage (64).
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

fx="$ASEC_SRCDIR/datasets/fixtures/attn_invert"
A="$ATTNSEC attack attn-invert"

# Simulated attention from the 3 x 5 fixture X and W, recovered and scored.
run 0 $A -q -s 7 -w "$fx/plain_w.npy" --simulate -x "$fx/plain_x.npy" -o "$scratch/o1" &&
    stderr_empty "quiet run"
[ -f "$scratch/o1/x_recovered.npy" ] || fail "no x_recovered.npy"
[ -f "$scratch/o1/report.json" ] || fail "no report.json"
grep -q '"success": true' "$scratch/o1/report.json" || fail "fixture not recovered"
grep -q '"seed": 7' "$scratch/o1/report.json" || fail "seed not recorded"
grep -q '"ker_dim": 0' "$scratch/o1/report.json" || fail "ker_dim missing"
# Same seed, same recovery (byte for byte).
run 0 $A -q -s 7 -w "$fx/plain_w.npy" --simulate -x "$fx/plain_x.npy" -o "$scratch/o2"
cmp -s "$scratch/o1/x_recovered.npy" "$scratch/o2/x_recovered.npy" || fail "not reproducible"
# An observed B (not realisable: the run completes, not converged) with --json.
run 0 $A -q -s 1 -r 2 -n 20 -w "$fx/plain_w.npy" -b "$fx/plain_b.npy" --json -o "$scratch/o3" &&
    stdout_has '"converged": false' "--json"

# The regularised Newton solver records lambda_min(H) per iteration.
run 0 $A -q -s 2 -w "$fx/plain_w.npy" --solver=newton --simulate -x "$fx/plain_x.npy" \
    -o "$scratch/nw" &&
    grep -q '"lambda_min": \[' "$scratch/nw/report.json" || fail "newton: no lambda_min trace"
grep -q '"success": true' "$scratch/nw/report.json" || fail "newton: not recovered"
# Separate inputs: the queries given the keys, the keys given the queries,
# both unknown ((2 d, n) stacked).
run 0 $A -q -s 2 -w "$fx/query_w.npy" --unknown=query --known="$fx/query_known.npy" \
    --simulate -x "$fx/query_x.npy" -o "$scratch/uq" &&
    grep -q '"success": true' "$scratch/uq/report.json" || fail "query: not recovered"
run 0 $A -q -s 2 -w "$fx/key_w.npy" --unknown=key --known="$fx/key_known.npy" \
    --simulate -x "$fx/key_x.npy" -o "$scratch/uk" &&
    grep -q '"success": true' "$scratch/uk/report.json" || fail "key: not recovered"
run 0 $A -q -s 2 -w "$fx/both_w.npy" --unknown=both --simulate -x "$fx/both_x.npy" \
    -o "$scratch/ub" &&
    grep -q '"unknown": "both"' "$scratch/ub/report.json" || fail "both: mode not recorded"
grep -q '"success": true' "$scratch/ub/report.json" || fail "both: not recovered"
# The value path (simulated outputs), two heads, causal mask.
run 0 $A -q -s 2 -w "$fx/values_w.npy" --causal --values="$fx/values_wv.npy" --simulate \
    -x "$fx/values_x.npy" -o "$scratch/uv" &&
    grep -q '"success": true' "$scratch/uv/report.json" || fail "values: not recovered"
grep -q '"dv": 2' "$scratch/uv/report.json" || fail "values: dv not recorded"
# W from a model file, when 'attnsec model init' is available.
if $ATTNSEC model init -q --arch=attn-block -C 4 -H 2 -T 8 -s 3 -o "$scratch/m.st" \
    >/dev/null 2>&1; then
    run 0 $A -q -s 1 -m "$scratch/m.st" --head=all --simulate -x "$fx/heads_x.npy" \
        -o "$scratch/um" &&
        grep -q '"success": true' "$scratch/um/report.json" || fail "model: not recovered"
    grep -q '"head": "all"' "$scratch/um/report.json" || fail "model: head not recorded"
    run 65 $A -m "$scratch/m.st" --layer=3 --simulate -x "$fx/heads_x.npy" -o "$scratch/e" &&
        stderr_has "layer 3" "layer range"
    run 64 $A -m "$scratch/m.st" --values="$fx/values_wv.npy" --simulate \
        -x "$fx/heads_x.npy" -o "$scratch/e"
    run 64 $A -m "$scratch/m.st" -w "$fx/plain_w.npy" --simulate -x "$fx/heads_x.npy" \
        -o "$scratch/e"
fi
run 64 $A -w "$fx/query_w.npy" --unknown=query --simulate -x "$fx/query_x.npy" -o "$scratch/e"
run 64 $A -w "$fx/query_w.npy" --unknown=sideways -b "$fx/plain_b.npy" -o "$scratch/e"
run 64 $A -w "$fx/plain_w.npy" -b "$fx/plain_b.npy" --outputs="$fx/plain_b.npy" -o "$scratch/e"
run 64 $A -w "$fx/plain_w.npy" -b "$fx/plain_b.npy" --values="$fx/values_wv.npy" -o "$scratch/e"
run 65 $A -w "$fx/values_w.npy" --values="$fx/plain_w.npy" --simulate -x "$fx/values_x.npy" \
    -o "$scratch/e" && stderr_lines 1 "W_V heads"
run 65 $A -w "$fx/query_w.npy" --unknown=both --simulate -x "$fx/query_x.npy" -o "$scratch/e"

# Bad data: B not row-stochastic; B of the wrong size; a 1-d W -> 65.
run 65 $A -w "$fx/plain_w.npy" -b "$fx/plain_grad.npy" -o "$scratch/e" && stderr_lines 1 "bad B"
run 65 $A -w "$fx/plain_w.npy" -b "$fx/plain_params.npy" -o "$scratch/e"
run 65 $A -w "$fx/heads_w.npy" -b "$fx/plain_b.npy" -o "$scratch/e" && stderr_has "heads" "head count"
run 65 $A -w "$fx/heads_w.npy" --simulate -x "$fx/plain_x.npy" -o "$scratch/e" && stderr_lines 1 "X shape"
run 65 $A -w "$fx/causal_w.npy" -b "$fx/plain_b.npy" --causal -o "$scratch/e" && stderr_has "causal" "causal"
# Missing input -> 66; usage errors -> 64 with nothing on stdout.
run 66 $A -w "$scratch/nope.npy" --simulate -x "$fx/plain_x.npy" -o "$scratch/e"
run 64 $A -w "$fx/plain_w.npy" -o "$scratch/e" && stdout_empty "no B"
run 64 $A -w "$fx/plain_w.npy" -b "$fx/plain_b.npy" --simulate -x "$fx/plain_x.npy" -o "$scratch/e"
run 64 $A -w "$fx/plain_w.npy" -b "$fx/plain_b.npy" --solver=gauss -o "$scratch/e"
run 64 $A -w "$fx/plain_w.npy" -b "$fx/plain_b.npy" --tol=abc -o "$scratch/e"
run 64 $A --bogus
finish
