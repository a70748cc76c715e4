#!/bin/sh
# 'attnsec defend copyright': exit statuses on bad input, the report and
# tables on the fixture of datasets/gen/make_copyright_fixtures.py, and
# tau growing with gamma (arXiv 2308.12247; MATH.md §6).
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

F=$ASEC_SRCDIR/datasets/fixtures/copyright
cp="$ATTNSEC defend copyright -q"

# Usage errors (64): negative gamma, unknown solver, missing inputs, both
# or neither of --mask and --proportion.
run 64 $cp -A "$F/A.npy" -b "$F/b.npy" -m "$F/mask.npy" --gamma=-0.1 -o "$scratch/u" &&
    stdout_empty "negative gamma" && stderr_has "gamma" "negative gamma"
run 64 $cp -A "$F/A.npy" -b "$F/b.npy" -m "$F/mask.npy" --solver=bfgs -o "$scratch/u"
run 64 $cp -b "$F/b.npy" -m "$F/mask.npy" -o "$scratch/u"
run 64 $cp -A "$F/A.npy" -b "$F/b.npy" -o "$scratch/u"
run 64 $cp -A "$F/A.npy" -b "$F/b.npy" -m "$F/mask.npy" --proportion=0.1 -o "$scratch/u"

# Bad data (65): a mask selecting no rows, a mask entry that is not 0/1,
# a NaN in A; each with a one-line message.
run 65 $cp -A "$F/A.npy" -b "$F/b.npy" -m "$F/mask_empty.npy" -o "$scratch/u" &&
    stderr_lines 1 "empty mask" && stderr_has "no rows" "empty mask"
run 65 $cp -A "$F/A.npy" -b "$F/b.npy" -m "$F/mask_bad.npy" -o "$scratch/u" &&
    stderr_lines 1 "bad mask"
run 65 $cp -A "$F/A_nan.npy" -b "$F/b.npy" -m "$F/mask.npy" -o "$scratch/u" &&
    stderr_lines 1 "NaN in A"
# Shape mismatch: the mask as targets of the wrong length is fine, A as b is not.
run 65 $cp -A "$F/A.npy" -b "$F/A.npy" -m "$F/mask.npy" -o "$scratch/u"
# Missing input (66).
run 66 $cp -A "$F/nope.npy" -b "$F/b.npy" -m "$F/mask.npy" -o "$scratch/u"

# A gamma sweep: every file written, tau strictly increasing in gamma.
if run 0 $cp -A "$F/A.npy" -b "$F/b.npy" -m "$F/mask.npy" --weight=3 \
    -g 0,0.001,0.003,0.01 -o "$scratch/d-sweep"; then
    for f in report.json sweep.csv trace.csv x.npy tau_gamma.dat tau_gamma.gp; do
        [ -s "$scratch/d-sweep/$f" ] || fail "sweep: $f missing"
    done
    n=$(wc -l <"$scratch/d-sweep/sweep.csv")
    [ "$n" -eq 5 ] || fail "sweep.csv has $n lines, expected 5"
    awk -F, 'NR > 1 { if (NR > 2 && !($8 > prev)) bad = 1; prev = $8;
                      if ($12 != "converged-grad") bad = 1 }
             END { exit bad }' "$scratch/d-sweep/sweep.csv" ||
        fail "tau does not increase with gamma, or a run did not converge"
    grep -q '"command": "defend copyright"' "$scratch/d-sweep/report.json" ||
        fail "report.json: no command"
    grep -q '"tau":' "$scratch/d-sweep/report.json" || fail "report.json: no tau"
    grep -q '"lambda_min_path":' "$scratch/d-sweep/report.json" ||
        fail "report.json: no lambda_min_path"
fi

# Every solver reaches the same tau (to 8 digits) on the same problem.
for s in newton woodbury cg sketch; do
    run 0 $cp -A "$F/A.npy" -b "$F/b.npy" -m "$F/mask.npy" --weight=3 -g 0.003 \
        --solver=$s -s 1 -o "$scratch/s-$s" || continue
    awk -F, 'NR == 2 { printf "%.8g\n", $8 }' "$scratch/s-$s/sweep.csv" >"$scratch/tau-$s"
done
for s in woodbury cg sketch; do
    cmp -s "$scratch/tau-newton" "$scratch/tau-$s" ||
        fail "solver $s: tau $(cat "$scratch/tau-$s") differs from newton $(cat "$scratch/tau-newton")"
done

# The proportion sweep: one run per (proportion, gamma).
if run 0 $cp -A "$F/A.npy" -b "$F/b.npy" --proportion=0.1,0.4 -g 0,0.001 --weight=3 \
    -s 7 -o "$scratch/p"; then
    n=$(wc -l <"$scratch/p/sweep.csv")
    [ "$n" -eq 5 ] || fail "proportion sweep.csv has $n lines, expected 5"
fi

# The corpus demonstration (--corpus) on a small, fast instance of the KJV
# corpus (a 1-block engine, C 16, trained 150 steps on 2048 tokens): usage
# errors, a missing corpus, tau increasing with gamma and the regeneration
# of the copyrighted 8-grams no higher with the term than without.
cc="$ATTNSEC defend copyright -q --corpus --max-tokens=2048 --vocab=256 --context=3
    --channels=16 --layers=1 --heads=2 --engine-steps=150 --max-iter=80"
run 64 $cc --copyright-fraction=1.5 -o "$scratch/u"
run 64 $cc --gamma=-1 -o "$scratch/u" && stderr_has "gamma" "corpus negative gamma"
run 64 $cc --context=8 --ngram=8 -o "$scratch/u"
run 64 $cc --heads=3 -o "$scratch/u" && stderr_has "divide" "corpus heads"
run 64 $cc --embed-dim=8 -o "$scratch/u"
run 64 $cc --design=x.npy -o "$scratch/u"
run 64 $cc
ATTNSEC_DATADIR=$scratch/empty run 66 $cc -o "$scratch/u"
# corpus.csv columns: 1 gamma, 2 tau, 7 regen_cp, 10 ngrams_cp.
corpus_ok() { # DIR ROWS: every file, ROWS runs, tau increasing, regen(last) <= regen(0)
    for f in report.json report.txt corpus.csv corpus.dat corpus.gp engine.csv \
        engine.safetensors; do
        [ -s "$1/$f" ] || fail "corpus: $f missing"
    done
    n=$(wc -l <"$1/corpus.csv")
    [ "$n" -eq $(($2 + 1)) ] || fail "corpus.csv has $n lines, expected $(($2 + 1))"
    awk -F, 'NR > 1 { if (NR > 2 && !($2 > prev)) bad = 1; prev = $2;
                      if ($7 < 0 || $7 > 1 || $10 < 1) bad = 1;
                      if (NR == 2) r0 = $7; last = $7 }
             END { if (!(last <= r0)) bad = 1; exit bad }' "$1/corpus.csv" ||
        fail "corpus $1: tau does not increase with gamma, a bad regeneration rate," \
            "or more regeneration with the copyright term than without"
    for k in '"regen_copyrighted":' '"test_perplexity":' '"features": "engine"' \
        '"train_loss_last":' '"kind": "text"'; do
        grep -q "$k" "$1/report.json" || fail "corpus report.json: no $k"
    done
    grep -q 'With the copyright term' "$1/report.txt" ||
        fail "corpus report.txt: no with/without summary"
    "$ATTNSEC" inspect "$1/engine.safetensors" >/dev/null 2>&1 ||
        fail "corpus: engine.safetensors does not validate"
}
if run 0 $cc -g 0,1,4 -o "$scratch/corpus"; then
    corpus_ok "$scratch/corpus" 3
    # Deterministic: the same seed gives the same table (timings aside).
    run 0 $cc -g 0,1,4 -o "$scratch/corpus2" &&
        { cut -d, -f1-16 "$scratch/corpus/corpus.csv" >"$scratch/c1"
          cut -d, -f1-16 "$scratch/corpus2/corpus.csv" >"$scratch/c2"
          cmp -s "$scratch/c1" "$scratch/c2" || fail "corpus: not deterministic"; }
fi
# The default demonstration (about 30 s of CPU): only with ASEC_LONG_TESTS=1.
if [ "${ASEC_LONG_TESTS:-0}" = 1 ] &&
    run 0 $ATTNSEC defend copyright -q --corpus -o "$scratch/corpus-default"; then
    corpus_ok "$scratch/corpus-default" 5
fi

[ "$failures" -eq 0 ] || exit 1
exit 0
