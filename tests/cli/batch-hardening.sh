#!/bin/sh
# attnsec batch: regressions of the bugs fuzzing found (issue #12): task ids
# that name paths outside the campaign, inputs and campaign files that are
# not regular files, the quadratic duplicate check, control bytes in
# messages, an interrupted plan, and the --schedule and number parsers
# quoting their input.
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"
B="$ATTNSEC batch"

# An id of 32 characters that is not 32 hex digits is refused: before, an
# id such as "../../" + 26 characters made 'batch run' create DIR/work/ID,
# that is a directory beside DIR (and "../../../../../../../../tmp/x"
# one under /tmp).
m=$scratch/m.json
printf '{"experiments": [{"command": "account epsilon", "args": ["--json", "--steps=10", "--sigma=1", "--sampling-rate=0.1"]}]}' >"$m"
d=$scratch/c
run 0 $B plan -q "$m" -o "$d"
bad=../../zzzzzzzzzzzzzzzzzzzzzzzzzz
sed "s|\"id\":\"[0-9a-f]*\"|\"id\":\"$bad\"|" "$d/tasks.jsonl" >"$scratch/t"
mv "$scratch/t" "$d/tasks.jsonl"
sum=$(b2sum -l 256 "$d/tasks.jsonl" 2>/dev/null | cut -d' ' -f1)
if [ -n "$sum" ]; then
    sed "s|\"tasks_blake2b_256\": \"[0-9a-f]*\"|\"tasks_blake2b_256\": \"$sum\"|" \
        "$d/plan.json" >"$scratch/p" && mv "$scratch/p" "$d/plan.json"
    run 65 $B run -q -i 0 "$d" && stderr_has 'malformed task line' "path-like task id"
    [ ! -e "$scratch/zzzzzzzzzzzzzzzzzzzzzzzzzz" ] || fail "a task id named a path"
fi

# Inputs must be regular files: /dev/zero and a FIFO made 'batch plan' hang.
printf '{"experiments": [{"command": "inspect", "inputs": ["/dev/zero"]}]}' >"$scratch/z.json"
run 66 $B plan "$scratch/z.json" -o "$scratch/z" &&
    stderr_has 'not a regular file' "/dev/zero input" && stderr_lines 1 "/dev/zero input"
[ ! -e "$scratch/z" ] || fail "a failed plan created its directory"

# 20000 tasks plan in well under a second of work (the duplicate check was
# quadratic: about a minute); a repeated task is still found.
printf '{"experiments": [{"command": "inspect", "seeds": {"from": 0, "count": 20000}}]}' \
    >"$scratch/big.json"
run 0 $B plan -q "$scratch/big.json" -o "$scratch/big"
[ "$(wc -l <"$scratch/big/tasks.jsonl")" -eq 20000 ] || fail "20000 tasks expected"
printf '{"experiments": [{"command": "inspect", "seeds": [1, 2, 3, 2]}]}' >"$scratch/dup.json"
run 78 $B plan "$scratch/dup.json" -o "$scratch/dup" &&
    stderr_has 'task 3 repeats task 1' "duplicate task"

# Manifest keys are quoted escaped: one line, no control bytes.
printf '{"experiments": [{"command": "inspect", "x\\u001b[2J\\ny": 1}]}' >"$scratch/k.json"
run 78 $B plan "$scratch/k.json" -o "$scratch/k" && stderr_lines 1 "escaped key" &&
    stderr_has 'x\\x1b\[2J\\x0ay' "escaped key"

# An interrupted plan (tasks.jsonl written, plan.json not) is finished.
rm "$scratch/big/plan.json"
run 0 $B plan "$scratch/big.json" -o "$scratch/big" && stdout_has '20000 tasks' "resume plan"
[ -f "$scratch/big/plan.json" ] || fail "plan.json not written on the second plan"
run 0 $B plan "$scratch/big.json" -o "$scratch/big" && stdout_has 'already planned' "planned"

# A campaign's own files must be regular: a FIFO tasks.jsonl made 'batch
# status' wait for a writer forever, and /dev/zero was read to the 1 GiB
# cap (2.1 GB of memory) before it was refused.
run 0 $B plan -q "$m" -o "$scratch/f"
mv "$scratch/f/tasks.jsonl" "$scratch/tasks.saved"
for kind in fifo zero; do
    rm -f "$scratch/f/tasks.jsonl"
    if [ $kind = fifo ]; then mkfifo "$scratch/f/tasks.jsonl" || continue
    else ln -s /dev/zero "$scratch/f/tasks.jsonl"; fi
    run 65 timeout 60 $B status "$scratch/f" &&
        stderr_has 'tasks.jsonl: not a regular file' "$kind tasks.jsonl" &&
        stderr_lines 1 "$kind tasks.jsonl"
done
rm -f "$scratch/f/tasks.jsonl"
mv "$scratch/tasks.saved" "$scratch/f/tasks.jsonl"
run 1 $B status "$scratch/f" && stdout_has 'missing:  1' "restored tasks.jsonl"

# Option values are quoted escaped too.
run 64 "$ATTNSEC" account epsilon --schedule "$(printf '0.1:1:\033[2J')" &&
    stderr_has '\\x1b\[2J' "--schedule escaped" && stderr_lines 2 "--schedule message"
run 64 "$ATTNSEC" account epsilon --schedule '0.1:0:5' && stderr_has 'sigma must be > 0' "sigma"
finish
