#!/bin/sh
# attnsec batch plan|run|status|merge: manifests, exit statuses, task
# selection, idempotence, partial merges, the DP ledger.
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"
B="$ATTNSEC batch"
m=$scratch/m.json
cat >"$m" <<'JSON'
{"schema_version": 1, "name": "t",
 "experiments": [
   {"command": "account epsilon", "args": ["--json", "--accountant=rdp", "--steps=100"],
    "grid": {"--sigma": [1.0, 2.0], "--sampling-rate": [0.01, 0.1]}},
   {"command": "account epsilon", "args": ["--json", "--accountant=rdp", "--steps=10", "--sigma=1"],
    "grid": {"--sampling-rate": [0.5]}, "dp_release": true}],
 "plot": {"x": "--sigma", "y": "epsilon"}}
JSON

# usage and manifest errors
run 64 $B plan "$m" && stdout_empty "plan without -o"
run 64 $B run && stdout_empty "run without DIR"
run 64 $B bogus
run 66 $B plan "$scratch/none.json" -o "$scratch/x"
printf '{"experiments": [' >"$scratch/bad.json"
run 65 $B plan "$scratch/bad.json" -o "$scratch/x" && stderr_lines 1 "malformed JSON"
printf '{"experiments": [], "experiments": []}' >"$scratch/dup.json"
run 65 $B plan "$scratch/dup.json" -o "$scratch/x"
python_deep=$(awk 'BEGIN { for (i = 0; i < 40; i++) printf "["; for (i = 0; i < 40; i++) printf "]" }')
printf '{"experiments": %s}' "$python_deep" >"$scratch/deep.json"
run 65 $B plan "$scratch/deep.json" -o "$scratch/x" && stderr_has 'nesting' "depth cap"
printf '{"experiments": [{"command": "account epsilon", "grdi": {}}]}' >"$scratch/key.json"
run 78 $B plan "$scratch/key.json" -o "$scratch/x" && stderr_has "unknown key 'grdi'" "unknown key"
printf '{"experiments": [{"command": "batch run"}]}' >"$scratch/cmd.json"
run 78 $B plan "$scratch/cmd.json" -o "$scratch/x"
printf '{"experiments": [{"command": "account epsilon", "grid": {"--sigma": 1}}]}' >"$scratch/type.json"
run 78 $B plan "$scratch/type.json" -o "$scratch/x"
printf '{"experiments": [{"command": "account epsilon", "inputs": ["%s/nope"]}]}' "$scratch" >"$scratch/in.json"
run 66 $B plan "$scratch/in.json" -o "$scratch/x"
[ ! -e "$scratch/x" ] || fail "a failed plan created its directory"

# plan: 5 tasks; planning again is a no-op; a different plan is refused
d=$scratch/c
run 0 $B plan "$m" -o "$d" && stdout_has '5 tasks' "plan"
[ "$(wc -l <"$d/tasks.jsonl")" -eq 5 ] || fail "tasks.jsonl has $(wc -l <"$d/tasks.jsonl") lines"
run 0 $B plan "$m" -o "$d" && stdout_has 'already planned' "plan again"
sed 's/2.0/3.0/' "$m" >"$scratch/m2.json"
run 73 $B plan "$scratch/m2.json" -o "$d"

# status before running: 1, everything missing
run 1 $B status "$d" && stdout_has '^missing:  5$' "status"
run 1 $B status --array "$d" && stdout_has '^0-4$' "status --array"
run 75 $B merge -q "$d"
[ ! -e "$d/merged/results.json" ] || fail "merge wrote partial output without --allow-partial"

# selection: --shard, --task-index lists, auto from SLURM_ARRAY_TASK_ID
run 0 $B run -q --shard=1/2 "$d"
run 1 $B status --list=done "$d"
[ "$(tr '\n' ' ' <"$scratch/out")" = "1 3 " ] || fail "--shard=1/2 ran '$(tr '\n' ' ' <"$scratch/out")'"
run 64 $B run -i auto "$d"
SLURM_ARRAY_TASK_ID=0 run 0 $B run -q --task-index=auto "$d"
run 64 $B run -i 9 "$d"
run 64 $B run -i 1-x "$d"
run 64 $B run --shard=2/2 "$d"
run 1 $B merge -q --allow-partial --plot=none "$d"
grep -q '"partial": true' "$d/merged/results.json" || fail "partial merge not marked partial"
run 0 $B run -q -j 3 "$d"
run 0 $B status "$d" && stdout_has '^done:     5$' "status complete"
# idempotent: nothing runs again (results untouched)
before=$(ls -l --time-style=+%s.%N "$d/results" | md5sum)
run 0 $B run -q "$d"
[ "$before" = "$(ls -l --time-style=+%s.%N "$d/results" | md5sum)" ] || fail "run rewrote results"

# the DP-release task wrote its ledger entry (attempt 1) before its result
id4=$(sed -n '5s/.*"id":"\([0-9a-f]*\)".*/\1/p' "$d/tasks.jsonl")
[ -f "$d/ledger/$id4.1.json" ] || fail "no ledger entry for the DP release task"
[ ! "$d/ledger/$id4.1.json" -nt "$d/results/$id4.json" ] || fail "ledger entry written after the result"
ls "$d/ledger" | grep -qv "$id4" && fail "ledger entries for non-release tasks"
run 0 $B run -q --force -i 4 "$d"
[ -f "$d/ledger/$id4.2.json" ] || fail "--force did not charge a second ledger entry"

run 0 $B merge --plot=none "$d"
grep -q '"partial": false' "$d/merged/results.json" || fail "complete merge marked partial"
head -n 1 "$d/merged/results.csv" | grep -q '^task_index,task_id,task_command,task_seed,sampling-rate,sigma,' ||
    fail "CSV header: $(head -n 1 "$d/merged/results.csv")"
[ "$(wc -l <"$d/merged/results.csv")" -eq 6 ] || fail "CSV rows"
[ -f "$d/merged/plots/merged.dat" ] && [ -f "$d/merged/plots/merged.gp" ] || fail "no plot data/script"
run 0 $B status --json "$d" && stdout_has '"complete": true' "status --json"

# a corrupted result is detected (checksum) and re-run
id2=$(sed -n '3s/.*"id":"\([0-9a-f]*\)".*/\1/p' "$d/tasks.jsonl")
sed -i 's/"exit_status": 0/"exit_status": 1/' "$d/results/$id2.json"
run 1 $B status "$d" && stdout_has '^failed:   1$' "corrupt result"
run 0 $B run -q "$d"
run 0 $B status "$d"

# results/ID.json that is not a result batch run wrote (wrong type,
# truncated, a huge line, a NUL byte, /dev/zero, a FIFO, over the 64 MiB
# cap): status counts it failed without reading past the cap or blocking,
# and run makes the task again, replacing it with a valid result
rf=$d/results/$id2.json
cp "$rf" "$scratch/good-result.json"
bad_result() {
    run 1 timeout 20 $B status "$d" && stdout_has '^failed:   1$' "$1: status" &&
        stderr_empty "$1: status"
    run 0 timeout 60 $B run -q "$d" || return
    [ -f "$rf" ] && [ ! -L "$rf" ] && cmp -s "$rf" "$scratch/good-result.json" ||
        fail "$1: the result was not made again"
    run 0 $B status "$d"
}
printf '[1, 2, 3]\n' >"$rf"
bad_result "wrong type"
head -c 100 "$scratch/good-result.json" >"$rf"
bad_result "truncated"
awk 'BEGIN { printf "{\"x\": \""; for (i = 0; i < 200000; i++) printf "aaaaaaaaaa"; print "\"}" }' >"$rf"
bad_result "a 2 MB line"
{ head -c 50 "$scratch/good-result.json"; printf '\000'; tail -c +51 "$scratch/good-result.json"; } >"$rf"
bad_result "a NUL byte"
rm -f "$rf" && ln -s /dev/zero "$rf"
bad_result "/dev/zero"
rm -f "$rf" && mkfifo "$rf"
bad_result "a FIFO"
rm -f "$rf" && cp "$scratch/good-result.json" "$rf" && truncate -s 65M "$rf"
bad_result "over the cap"

# a lock file of another host, with an escape sequence: the task is not
# taken over (75) and the one-line message quotes no control byte
lk=$d/locks/$id2.lock
mkdir -p "$d/locks" && printf '\033[31mhost\033[0m 1\n' >"$lk"
run 75 $B run -q --force -i 2 "$d" && stderr_has 'lock held by ?' "hostile lock"
if LC_ALL=C grep -q "$(printf '\033')" "$scratch/err"; then
    fail "hostile lock: an escape byte reached stderr"
fi
printf 'host-b 123\n' >"$lk"
run 75 $B run -q --force -i 2 "$d" && stderr_has 'lock held by host-b pid 123' "lock of host-b"
rm -f "$lk"

# a failing task: its status is the run's status; failed/ records it
printf '{"experiments": [{"command": "inspect", "args": ["%s/missing.npy"]}]}' "$scratch" >"$scratch/f.json"
run 0 $B plan -q "$scratch/f.json" -o "$scratch/f"
run 66 $B run -q "$scratch/f"
run 1 $B status "$scratch/f" && stdout_has '^failed:   1$' "failed task"
# a modified task list is refused
printf '\n' >>"$d/tasks.jsonl"
run 65 $B status "$d"
finish
