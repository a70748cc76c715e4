#!/bin/sh
# attnsec audit --quick: the main job end to end on the shipped digits; the
# report files exist and hold the key fields; usage errors exit 64.
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

run 64 "$ATTNSEC" audit --bogus && stdout_empty "unknown option"
run 64 "$ATTNSEC" audit --epsilons=0 && stdout_empty "--epsilons=0"
run 64 "$ATTNSEC" audit --plot=gif
run 64 "$ATTNSEC" audit extra-argument
run 69 "$ATTNSEC" audit --data=text -o "$scratch/text"
run 0 "$ATTNSEC" audit --help && stdout_has '^Usage: attnsec audit' "--help"

out=$scratch/report
run 0 "$ATTNSEC" audit --quick --seed=7 -o "$out" || finish
stderr_has 'NOT a DP release' "seeded warning"
stderr_has '\[12/12\]' "progress lines"
for f in report.json report.txt tables/runs.csv tables/dlg.csv \
    plots/accuracy_vs_epsilon.dat plots/accuracy_vs_epsilon.gp \
    plots/leakage_vs_epsilon.dat plots/leakage_vs_epsilon.gp; do
    [ -s "$out/$f" ] || fail "missing or empty $f"
done
ls "$out"/images/recon_grid.p[gn][mg] >/dev/null 2>&1 || fail "no images/recon_grid.png or .pgm"
# report.txt: the privacy statement first, then the table with four runs
head -n 4 "$out/report.txt" | grep -q 'Privacy statement' || fail "report.txt does not open with the statement"
grep -q 'NOT a DP release' "$out/report.txt" || fail "report.txt lacks 'NOT a DP release'"
for r in non-private eps=8 eps=3 eps=1; do
    grep -q "^$r " "$out/report.txt" || fail "report.txt has no row '$r'"
done
# report.json: schema, command, seeded, and per run the key fields
j=$out/report.json
for k in '"schema_version": 1' '"command": "audit"' '"mode": "seeded"' '"dp_release": false' \
    '"test_accuracy"' '"psnr_db"' '"label_acc"' '"orbit_error"' '"rdp"' '"pld"' \
    '"bounds"' '"statement"' '"exit_status": 0'; do
    grep -q -- "$k" "$j" || fail "report.json lacks $k"
done
[ "$(grep -c '"target_epsilon"' "$j")" -eq 4 ] || fail "report.json does not hold 4 runs"
# the non-private run has an infinite epsilon, written as null + nonfinite
grep -q '"epsilon_nonfinite": "inf"' "$j" || fail "non-private epsilon not marked inf"
# CSV: header + 4 runs; DLG table: header + 4 runs x 2 images
[ "$(wc -l <"$out/tables/runs.csv")" -eq 5 ] || fail "runs.csv rows"
[ "$(wc -l <"$out/tables/dlg.csv")" -eq 9 ] || fail "dlg.csv rows"
head -n 1 "$out/tables/runs.csv" | grep -q '^run,target_epsilon,sigma,' || fail "runs.csv header"
# epsilon decreases with the target; PLD stays within its target
awk -F, 'NR > 2 && $7 != "n/a" { if ($7 > $2 * 1.0001) bad = 1 } END { exit bad }' \
    "$out/tables/runs.csv" || fail "a PLD epsilon exceeds its target"
# same seed, same numbers: the non-private and eps=8 runs again (run i
# uses seed + i, so they match the first two rows)
run 0 "$ATTNSEC" audit --quick --seed=7 --epsilons=8 --plot=none -q -o "$scratch/again" || finish
head -n 3 "$out/tables/runs.csv" >"$scratch/want"
cmp "$scratch/want" "$scratch/again/tables/runs.csv" || fail "same seed, different numbers"
finish
