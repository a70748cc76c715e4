#!/bin/sh
# attnsec audit --quick: the main job end to end on the shipped digits and
# on the shipped text; the report files exist and hold the key fields;
# every key of report.json is documented in attnsec-report(5); usage
# errors exit 64.
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

run 64 "$ATTNSEC" audit --bogus && stdout_empty "unknown option"
run 64 "$ATTNSEC" audit --epsilons=0 && stdout_empty "--epsilons=0"
run 64 "$ATTNSEC" audit --plot=gif
run 64 "$ATTNSEC" audit extra-argument
run 64 "$ATTNSEC" audit --data=pictures
run 64 "$ATTNSEC" audit --batch-size=5000 -o "$scratch/big" &&
    stderr_has '1437 training images' "batch size checked against the loaded data"
run 0 "$ATTNSEC" audit --help && stdout_has '^Usage: attnsec audit' "--help"

out=$scratch/report
run 0 "$ATTNSEC" audit --quick --seed=7 -o "$out" || finish
stderr_has 'NOT a DP release' "seeded warning"
stderr_has '\[6/6\]' "progress lines"
for f in report.json report.txt tables/runs.csv tables/dlg.csv \
    plots/accuracy_vs_epsilon.dat plots/accuracy_vs_epsilon.gp \
    plots/leakage_vs_epsilon.dat plots/leakage_vs_epsilon.gp; do
    [ -s "$out/$f" ] || fail "missing or empty $f"
done
ls "$out"/images/recon_grid.p[gn][mg] >/dev/null 2>&1 || fail "no images/recon_grid.png or .pgm"
# report.txt: the privacy statement first, then the table with the
# non-private run and the quick grid's eps=8
head -n 4 "$out/report.txt" | grep -q 'Privacy statement' || fail "report.txt does not open with the statement"
grep -q 'NOT a DP release' "$out/report.txt" || fail "report.txt lacks 'NOT a DP release'"
for r in non-private eps=8; do
    grep -q "^$r " "$out/report.txt" || fail "report.txt has no row '$r'"
done
# report.json: schema, command, seeded, and per run the key fields
j=$out/report.json
for k in '"schema_version": 1' '"command": "audit"' '"mode": "seeded"' '"dp_release": false' \
    '"test_accuracy"' '"psnr_db"' '"label_acc"' '"orbit_error"' '"rdp"' '"pld"' \
    '"bounds"' '"statement"' '"exit_status": 0'; do
    grep -q -- "$k" "$j" || fail "report.json lacks $k"
done
[ "$(grep -c '"target_epsilon"' "$j")" -eq 2 ] || fail "report.json does not hold 2 runs"
# the non-private run has an infinite epsilon, written as null + nonfinite
grep -q '"epsilon_nonfinite": "inf"' "$j" || fail "non-private epsilon not marked inf"
# CSV: header + 2 runs; DLG table: header + 2 runs x 2 images
[ "$(wc -l <"$out/tables/runs.csv")" -eq 3 ] || fail "runs.csv rows"
[ "$(wc -l <"$out/tables/dlg.csv")" -eq 5 ] || fail "dlg.csv rows"
# utility: the non-private model is useful (seed 1 and 7 give about 0.8;
# chance is 0.1)
awk -F, '$1 == "non-private" { ok = $11 > 0.5 } END { exit !ok }' \
    "$out/tables/runs.csv" || fail "non-private test accuracy not above 0.5"
# leakage: DLG recovers held-out images from noiseless gradients (the raw
# non-private one or the clipped one; recovered images are at ~300 dB,
# failures at ~5-10 dB).  The first start from the class mean recovers
# both images of seed 7; the test asks for one recovery.
{ awk -F, '$1 == "non-private" && $5 > 40 { ok = 1 } END { exit !ok }' \
    "$out/tables/dlg.csv" ||
    awk -F, '{ sub(/\r$/, "") } $1 == "eps=8" && $19 + 0 > 40 { ok = 1 } END { exit !ok }' \
        "$out/tables/runs.csv"; } || fail "DLG recovered nothing from a noiseless gradient"
# ... and from the clipped gradient without noise, but not through the noise
grep -q '"recon_clip_only"' "$j" || fail "report.json lacks the clip-only DLG"
awk -F, '$1 == "eps=8" && $5 > 40 { bad = 1 } END { exit bad }' \
    "$out/tables/dlg.csv" || fail "DLG recovered an image through sigma = 3 noise"
# attention inversion: exact recovery modulo the symmetries
awk -F, '$1 == "non-private" { ok = $18 == "true" } END { exit !ok }' \
    "$out/tables/runs.csv" || fail "attention inversion did not succeed"
head -n 1 "$out/tables/runs.csv" | grep -q '^run,target_epsilon,sigma,' || fail "runs.csv header"
# epsilon decreases with the target; PLD stays within its target
awk -F, 'NR > 2 && $7 != "n/a" { if ($7 > $2 * 1.0001) bad = 1 } END { exit bad }' \
    "$out/tables/runs.csv" || fail "a PLD epsilon exceeds its target"
# every key path of report.json is documented in attnsec-report(5): each
# component name appears in the page as a word (jq walks the JSON; without
# it the check is skipped with a note)
man5=$ASEC_SRCDIR/man/attnsec-report.5
check_keys() {
    if ! command -v jq >/dev/null 2>&1; then
        echo "NOTE: jq not installed: report.json key check skipped" >&2
        return 0
    fi
    keys=$(jq -r 'paths | map(select(type == "string")) | .[]' "$1" | sort -u) ||
        { fail "jq cannot read $1"; return 0; }
    [ -n "$keys" ] || fail "no keys in $1"
    for k in $keys; do
        grep -qw -- "$k" "$man5" || fail "report.json key '$k' is not in attnsec-report(5)"
    done
}
check_keys "$j"

# same seed, same numbers (a tiny audit twice)
for d in tiny1 tiny2; do
    run 0 "$ATTNSEC" audit --quick --seed=7 -T 3 --np-steps=3 -n 1 -r 1 --plot=none -q \
        -o "$scratch/$d" || finish
done
cmp "$scratch/tiny1/tables/runs.csv" "$scratch/tiny2/tables/runs.csv" ||
    fail "same seed, different numbers"

# --data=text: the corpus, a token transformer, token accuracy
out=$scratch/text
run 0 "$ATTNSEC" audit --quick --data=text --seed=7 -o "$out" || finish
stderr_has '\[6/6\]' "text: progress lines"
for f in report.json report.txt tables/runs.csv tables/dlg.csv \
    plots/accuracy_vs_epsilon.dat plots/leakage_vs_epsilon.dat; do
    [ -s "$out/$f" ] || fail "text: missing or empty $f"
done
[ ! -e "$out/images" ] || fail "text: an images/ directory"
j=$out/report.json
for k in '"data": "text"' '"window_tokens": 8' '"token_acc"' '"emb_rows_token_acc"' \
    '"bag_token_acc"' \
    '"label_acc"' '"per_window"' '"original"' '"recovered"' '"test_perplexity"' \
    '"orbit_error"' '"recon_clip_only"' '"exit_status": 0'; do
    grep -q -- "$k" "$j" || fail "text report.json lacks $k"
done
# token accuracy: a number in [0, 1] for every run (never null)
grep -q '"token_acc": null' "$j" && fail "text: a null token accuracy"
awk -F, 'NR > 1 { if ($14 == "n/a" || $14 < 0 || $14 > 1) bad = 1; n++ }
    END { exit bad || n != 2 }' "$out/tables/runs.csv" ||
    fail "text: dlg_token_acc not in [0, 1] for both runs"
head -n 1 "$out/tables/runs.csv" | grep -q ',dlg_token_acc,' || fail "text: runs.csv header"
# report.txt: the statement, the table and the recovered text
head -n 4 "$out/report.txt" | grep -q 'Privacy statement' ||
    fail "text: report.txt does not open with the statement"
grep -q '13738 windows' "$out/report.txt" || fail "text: training size not from the data"
grep -q '^Recovered text' "$out/report.txt" || fail "text: no recovered text"
grep -q '^  original ' "$out/report.txt" || fail "text: no original text"
# the bag of words: the embedding table's gradient names every token of
# the raw non-private gradient; the noise of eps=8 hides them
awk -F, '$1 == "non-private" { ok = $20 == 1 } END { exit !ok }' \
    "$out/tables/runs.csv" || fail "text: embedding rows did not leak the tokens"
check_keys "$j"
finish
