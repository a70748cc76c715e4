#!/bin/sh
# The 50-task campaign of kill-resume.sh under GNU parallel, through the
# installed template run-parallel.sh (--joblog, --resume-failed): its
# merged output is byte-identical to a local pool run (-j 2).  A second
# invocation resumes from the job log and runs nothing.  Skipped (77) when
# GNU parallel is not installed (Debian package: parallel).
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

if ! command -v parallel >/dev/null 2>&1 || ! parallel --version 2>/dev/null | grep -q 'GNU parallel'; then
    echo "GNU parallel is not installed (Debian: parallel); skipping"
    exit 77
fi
sed "s|@DATADIR@|$ATTNSEC_DATADIR|g" "$ASEC_SRCDIR/tests/batch/campaign50.json" \
    >"$scratch/m.json" || exit 99
run 0 "$ATTNSEC" batch plan -q "$scratch/m.json" -o "$scratch/local" || finish
run 0 "$ATTNSEC" batch run -q -j 2 "$scratch/local" || finish
run 0 "$ATTNSEC" batch merge -q --plot=none "$scratch/local" || finish

run 0 "$ATTNSEC" batch plan -q "$scratch/m.json" -o "$scratch/par" || finish
# run-parallel.sh merges with the default --plot; keep the test silent
# about gnuplot by comparing only CSV and JSON.
HOME=$scratch ATTNSEC=$ATTNSEC run 0 sh "$ASEC_SRCDIR/tests/batch/run-parallel.sh" "$scratch/par" 2
n=$(grep -c . "$scratch/par/parallel.joblog")
[ "$n" -eq 51 ] || fail "job log has $n lines, expected 51 (header + 50 jobs)"
for f in results.csv results.json; do
    cmp "$scratch/local/merged/$f" "$scratch/par/merged/$f" ||
        fail "GNU parallel: merged/$f differs from the local pool run"
done
# Resume: nothing left to do, the job log is unchanged.
HOME=$scratch ATTNSEC=$ATTNSEC run 0 sh "$ASEC_SRCDIR/tests/batch/run-parallel.sh" "$scratch/par" 2
n2=$(grep -c . "$scratch/par/parallel.joblog")
[ "$n2" -eq 51 ] || fail "resume ran $((n2 - 51)) job(s) again"
# A lost result is re-run by 'batch run' after --resume-failed is done.
rm -f "$scratch/par/results/"$(sed -n 's/.*"id":"\([0-9a-f]*\)","index":7,.*/\1/p' "$scratch/par/tasks.jsonl")".json"
run 1 "$ATTNSEC" batch status "$scratch/par"
run 1 "$ATTNSEC" batch status --array "$scratch/par"
[ "$(cat "$scratch/out")" = 7 ] || fail "status --array printed '$(cat "$scratch/out")', expected 7"
run 0 "$ATTNSEC" batch run -q --task-index="$(cat "$scratch/out")" "$scratch/par"
run 0 "$ATTNSEC" batch merge -q --plot=none "$scratch/par"
cmp "$scratch/local/merged/results.json" "$scratch/par/merged/results.json" ||
    fail "after re-running task 7, merged/results.json differs"
finish
