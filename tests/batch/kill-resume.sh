#!/bin/sh
# Acceptance test of 'attnsec batch' (RELIABILITY.md §8): a 50-task seeded
# campaign run with a local pool (-j 4), with KILLS (default 10) task
# processes killed by SIGKILL at seeded random moments and then resumed,
# merges to output byte-identical to an uninterrupted run.  Also checks
# that every result's checksum is valid (batch status) and that no
# temporary file is left behind.
#   KILL_SEED=N   seed of the kill schedule (default 11)
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

KILLS=${KILLS:-10}
KILL_SEED=${KILL_SEED:-11}
sed "s|@DATADIR@|$ATTNSEC_DATADIR|g" "$ASEC_SRCDIR/tests/batch/campaign50.json" \
    >"$scratch/m.json" || exit 99

# The uninterrupted reference run.
run 0 "$ATTNSEC" batch plan -q "$scratch/m.json" -o "$scratch/clean" || finish
run 0 "$ATTNSEC" batch run -q -j 4 "$scratch/clean" || finish
run 0 "$ATTNSEC" batch merge -q --plot=none "$scratch/clean" || finish

# The interrupted run: the kill schedule is a seeded list of delays.
run 0 "$ATTNSEC" batch plan -q "$scratch/m.json" -o "$scratch/killed" || finish
awk -v s="$KILL_SEED" -v n="$KILLS" 'BEGIN { srand(s); for (i = 0; i < 4 * n; i++) printf "%.3f\n", 0.005 + 0.05 * rand() }' \
    >"$scratch/delays"
kills=0
rounds=0
exec 3<"$scratch/delays"
while [ "$kills" -lt "$KILLS" ] && [ "$rounds" -lt 20 ]; do
    rounds=$((rounds + 1))
    "$ATTNSEC" batch run -q -j 4 "$scratch/killed" >/dev/null 2>>"$scratch/runs.err" &
    runner=$!
    while [ "$kills" -lt "$KILLS" ] && kill -0 "$runner" 2>/dev/null; do
        read -r d <&3 || d=0.2
        sleep "$d"
        # a random running task: the children of the runner
        kids=$(ps -o pid= --ppid "$runner" 2>/dev/null | tr -s ' \n' ' ')
        [ -n "$kids" ] || continue
        set -- $kids
        pick=$(awk -v s="$KILL_SEED$kills" -v n=$# 'BEGIN { srand(s); print 1 + int(n * rand()) }')
        eval victim=\${$pick}
        if kill -KILL "$victim" 2>/dev/null; then
            kills=$((kills + 1))
        fi
    done
    wait "$runner"
done
exec 3<&-
echo "kill-resume: $kills task processes killed by SIGKILL in $rounds run(s)"
[ "$kills" -ge "$KILLS" ] || fail "only $kills of $KILLS kills landed"

"$ATTNSEC" batch status "$scratch/killed" >"$scratch/status.before"
echo "kill-resume: before resuming: $(tr '\n' ' ' <"$scratch/status.before")"
# Merging now must be refused (75) unless some luck finished everything.
if ! grep -q '^missing:  0$' "$scratch/status.before" || ! grep -q '^failed:   0$' "$scratch/status.before"; then
    run 75 "$ATTNSEC" batch merge -q --plot=none -o "$scratch/refused" "$scratch/killed"
    [ ! -e "$scratch/refused/results.json" ] || fail "merge wrote output from partial input"
fi

# Resume until complete.
tries=0
until "$ATTNSEC" batch status "$scratch/killed" >/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -le 5 ] || { fail "campaign not complete after 5 resumes"; break; }
    "$ATTNSEC" batch run -q -j 4 "$scratch/killed" 2>>"$scratch/runs.err"
done
echo "kill-resume: complete after $tries resume run(s)"
run 0 "$ATTNSEC" batch merge -q --plot=none "$scratch/killed"
for f in results.csv results.json; do
    if cmp "$scratch/clean/merged/$f" "$scratch/killed/merged/$f"; then
        echo "kill-resume: merged/$f byte-identical ($(wc -c <"$scratch/clean/merged/$f") bytes)"
    else
        fail "merged/$f differs from the uninterrupted run"
    fi
done
left=$(find "$scratch/killed" -name '.*.tmp.*' | wc -l)
[ "$left" -eq 0 ] || fail "$left temporary file(s) left behind"
locks=$(find "$scratch/killed/locks" -type f | wc -l)
[ "$locks" -eq 0 ] || fail "$locks lock file(s) left behind"
finish
