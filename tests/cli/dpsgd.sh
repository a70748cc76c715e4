#!/bin/sh
# 'attnsec defend dpsgd': usage and budget statuses, the output files, the
# ledger's epsilon against 'attnsec account epsilon' on the same schedule,
# and a seeded run killed with SIGKILL at a random step and resumed, which
# must end with a byte-identical model file and the same ledger; the
# paper's attention-regression mode (accounting side by side against
# 'attnsec account', the convergence bound) (asec_dpsgd(3),
# attnsec-defend(1)).
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

dp="$ATTNSEC defend dpsgd -q"
small="-b 32 -T 12 --eval-every=4 -s 7"

# Usage errors (64).
run 64 $dp --no-clip --sigma=1 -o "$scratch/u" && stderr_has "no-clip" "noise without clip"
run 64 $dp --granularity-bits=50 -o "$scratch/u"
run 64 $dp --optimizer=rmsprop -o "$scratch/u"
run 64 $dp --sampling=uniform -o "$scratch/u"
run 64 $dp -b 5000 -o "$scratch/u" && stderr_lines 2 "batch too large"
run 64 $dp $small
run 64 $dp --sigma=0 -e 1 -o "$scratch/u"
# Nothing to resume (66); a target no step meets (77).
run 66 $dp $small --resume -o "$scratch/none"
run 77 $dp $small -e 0.0001 --sigma=1 -o "$scratch/b" && stderr_lines 1 "budget"

# A small seeded private run: every file, the report's fields, and the
# ledger's epsilon equal to the accountant's on the same schedule.
if run 0 $dp $small --sigma=1.1 -o "$scratch/a"; then
    for f in model.safetensors report.json report.txt curve.csv curve.dat curve.gp; do
        [ -s "$scratch/a/$f" ] || fail "small run: $f missing"
    done
    [ ! -e "$scratch/a/checkpoint.safetensors" ] || fail "checkpoint left after completion"
    n=$(wc -l <"$scratch/a/curve.csv")
    [ "$n" -eq 4 ] || fail "curve.csv has $n lines, expected 4"
    r=$scratch/a/report.json
    grep -q '"command": "defend dpsgd"' "$r" || fail "report: no command"
    grep -q '"dp_release": false' "$r" || fail "report: a seeded run claims a DP release"
    grep -q '"sampling": "poisson"' "$r" || fail "report: no sampling"
    grep -q '"test_accuracy":' "$r" || fail "report: no accuracy"
    grep -q 'NOT a DP release' "$scratch/a/report.txt" || fail "report.txt: no seeded notice"
    q=$(sed -n 's/^ *"q": \(.*\),$/\1/p' "$r" | head -n 1)
    eps=$(sed -n '/"rdp": {/,/}/s/^ *"epsilon": \(.*\),$/\1/p' "$r" | head -n 1)
    if run 0 "$ATTNSEC" account epsilon -q "$q" -s 1.1 -T 12 --accountant=rdp --json; then
        want=$(sed -n 's/^  "epsilon": \(.*\),$/\1/p' "$scratch/out")
        [ -n "$eps" ] && [ "$eps" = "$want" ] ||
            fail "ledger epsilon '$eps' differs from attnsec account '$want' (q $q)"
    fi
fi

# Kill and resume: the uninterrupted run, then the same run killed with
# SIGKILL at a random point after its first checkpoint, resumed until done.
long="-b 32 -T 40 --eval-every=5 --checkpoint-every=3 -s 11 --sigma=1.0 --optimizer=adam"
if run 0 $dp $long -o "$scratch/full"; then
    kills=0
    $dp $long -o "$scratch/killed" >/dev/null 2>&1 &
    pid=$!
    i=0
    while [ ! -e "$scratch/killed/checkpoint.safetensors" ] && [ $i -lt 600 ] &&
        kill -0 $pid 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
    done
    # A random extra delay of 0..0.45 s.
    sleep "0.$(($(od -An -N1 -tu1 /dev/urandom) % 10 / 2))$(($(od -An -N1 -tu1 /dev/urandom) % 10))"
    if kill -9 $pid 2>/dev/null; then
        kills=1
    fi
    wait $pid 2>/dev/null
    if [ "$kills" -eq 1 ] && [ -e "$scratch/killed/checkpoint.safetensors" ]; then
        run 0 $dp $long --resume -o "$scratch/killed" || fail "resume failed"
    elif [ ! -s "$scratch/killed/model.safetensors" ]; then
        fail "killed run: neither a checkpoint nor a model"
    fi
    cmp -s "$scratch/full/model.safetensors" "$scratch/killed/model.safetensors" ||
        fail "resumed model differs from the uninterrupted run (killed: $kills)"
    cmp -s "$scratch/full/curve.csv" "$scratch/killed/curve.csv" ||
        fail "resumed curve differs from the uninterrupted run"
    l1=$(sed -n '/"ledger": {/,/}/p' "$scratch/full/report.json")
    l2=$(sed -n '/"ledger": {/,/}/p' "$scratch/killed/report.json")
    [ -n "$l1" ] && [ "$l1" = "$l2" ] || fail "resumed ledger differs"
fi

# --resume reads curve.csv back strictly.  A run killed after a few
# checkpoints, then curve.csv replaced by files that are not as the command
# writes them (wrong type, truncated, a huge line, a NUL byte, a field that
# is not a number, steps out of order, /dev/zero, a FIFO, over the 256 MiB
# cap): each resume exits 65 with one line naming curve.csv and the line,
# without blocking, and changes nothing.  The good file resumes, a row past
# the checkpoint is dropped, and the curve equals an uninterrupted run's.
cv="-b 32 -T 120 --eval-every=2 --checkpoint-every=2 -s 13 --sigma=1.0"
c=$scratch/cv
if run 0 $dp $cv -o "$scratch/cvfull"; then
    $dp $cv -o "$c" >/dev/null 2>&1 &
    pid=$!
    i=0
    while { [ ! -e "$c/checkpoint.safetensors" ] || [ ! -e "$c/curve.csv" ] ||
        [ "$(wc -l <"$c/curve.csv")" -lt 4 ]; } && [ $i -lt 1200 ] &&
        kill -0 $pid 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
    done
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
fi
if [ -e "$c/checkpoint.safetensors" ] && [ ! -e "$c/model.safetensors" ]; then
    cp "$c/curve.csv" "$scratch/good.csv"
    cp "$c/checkpoint.safetensors" "$scratch/ckpt"
    bad_curve() { # DESCRIPTION: resume with the curve.csv in place
        if [ -f "$c/curve.csv" ] && [ ! -L "$c/curve.csv" ]; then
            cp "$c/curve.csv" "$scratch/curve.before"
        fi
        # shellcheck disable=SC2086
        if run 65 timeout 60 $dp $cv --resume -o "$c"; then
            stderr_lines 1 "$1"
            stderr_has "$c/curve.csv" "$1"
        fi
        [ ! -e "$c/model.safetensors" ] && [ ! -e "$c/report.json" ] ||
            fail "$1: an output was written"
        cmp -s "$c/checkpoint.safetensors" "$scratch/ckpt" || fail "$1: checkpoint changed"
        if [ -f "$scratch/curve.before" ]; then
            cmp -s "$c/curve.csv" "$scratch/curve.before" || fail "$1: curve.csv changed"
        fi
        rm -rf "$c/curve.csv" "$scratch/curve.before"
    }
    h=$(head -n 1 "$scratch/good.csv")
    r1=$(sed -n 2p "$scratch/good.csv")
    r2=$(sed -n 3p "$scratch/good.csv")
    printf '{"step": 1}\n' >"$c/curve.csv"
    bad_curve "curve.csv of the wrong type"
    head -c -1 "$scratch/good.csv" >"$c/curve.csv"
    bad_curve "truncated curve.csv"
    stderr_has "no newline" "truncated curve.csv"
    { echo "$h"; awk 'BEGIN { printf "2,3,"; for (i = 0; i < 5000; i++) printf "1"; print "" }'; } >"$c/curve.csv"
    bad_curve "a 5000-byte line"
    stderr_has "curve.csv:2: longer than 511 bytes" "huge line"
    { echo "$h"; printf '2,32,0.5\000,1,1,1,1,1,1\n'; } >"$c/curve.csv"
    bad_curve "a NUL byte"
    { echo "$h"; echo "$r1" | sed 's/^\([0-9]*\),\([0-9]*\),[^,]*,/\1,\2,abc,/'; } >"$c/curve.csv"
    bad_curve "a field that is not a number"
    stderr_has "field 3 (train_loss)" "non-numeric field"
    printf '%s\n%s\n%s\n' "$h" "$r2" "$r1" >"$c/curve.csv"
    bad_curve "steps out of order"
    stderr_has "curve.csv:3: step" "steps out of order"
    ln -s /dev/zero "$c/curve.csv"
    bad_curve "/dev/zero"
    mkfifo "$c/curve.csv"
    bad_curve "a FIFO"
    cp "$scratch/good.csv" "$c/curve.csv" && truncate -s 257M "$c/curve.csv"
    bad_curve "over the cap"
    { cat "$scratch/good.csv"; echo "1000000,1,1,1,1,1,1,1,1"; } >"$c/curve.csv"
    # shellcheck disable=SC2086
    run 0 $dp $cv --resume -o "$c" || fail "resume with a good curve.csv failed"
    cmp -s "$c/curve.csv" "$scratch/cvfull/curve.csv" ||
        fail "the resumed curve differs from the uninterrupted run's"
else
    echo "note: the curve.csv resume checks did not run (the run ended first)" >&2
fi

# The paper's setting (--attn-regression, arXiv 2311.13624): noisy
# full-batch gradient descent on a seeded attention-regression instance.
# Every composition's epsilon equals 'attnsec account' on the same
# schedule (q = 1, sigma 3, 40 steps), and the convergence bound of
# MATH.md 3.4 applies (no clipping, eta <= 1/beta) and holds on the run.
run 64 $dp --attn-regression -b 16 -o "$scratch/u" && stderr_has "batch-size" "areg -b"
run 64 $dp --attn-regression --resume -o "$scratch/u"
if run 0 $dp --attn-regression --examples=64 -T 40 -s 5 --sigma=3 -o "$scratch/ar"; then
    for f in model.safetensors report.json report.txt convergence.csv convergence.dat \
        convergence.gp; do
        [ -s "$scratch/ar/$f" ] || fail "attn-regression: $f missing"
    done
    n=$(wc -l <"$scratch/ar/convergence.csv")
    [ "$n" -eq 41 ] || fail "convergence.csv has $n lines, expected 41"
    r=$scratch/ar/report.json
    grep -q '"mode": "attn-regression"' "$r" || fail "attn-regression: no mode"
    grep -q '"bound_applies": true' "$r" || fail "attn-regression: the bound does not apply"
    grep -q '"bound_holds": true' "$r" || fail "attn-regression: the bound does not hold"
    grep -q '"bound_holds_every_step": true' "$r" ||
        fail "attn-regression: the bound fails at some step"
    for acc in basic advanced exact rdp; do
        mine=$(awk -v k="\"$acc\": {" '/"accountants": {/ { a = 1 }
            a && index($0, k) { b = 1 }
            b && /"epsilon":/ { sub(/^ *"epsilon": /, ""); sub(/,$/, ""); print; exit }' "$r")
        if run 0 "$ATTNSEC" account epsilon -q 1 -s 3 -T 40 --accountant=$acc --json; then
            want=$(sed -n 's/^  "epsilon": \(.*\),$/\1/p' "$scratch/out")
            [ -n "$mine" ] && [ "$mine" = "$want" ] ||
                fail "attn-regression: $acc epsilon '$mine' differs from attnsec account '$want'"
        fi
    done
fi

# Non-private baseline through the same loop: epsilon is infinite.
if run 0 $dp -b 32 -T 5 -s 3 --sigma=0 --no-clip --optimizer=adam --lr=0.002 \
    -o "$scratch/np"; then
    grep -q '"private": false' "$scratch/np/report.json" || fail "non-private: private flag"
    grep -q '"epsilon_nonfinite": "inf"' "$scratch/np/report.json" ||
        fail "non-private: epsilon not infinite"
fi

# Issue 8's utility targets on the digits with the default vit, only with
# ASEC_LONG_TESTS=1 (about 3 minutes of CPU): release-grade DP-SGD at
# epsilon 8 with the defaults reaches test accuracy >= 0.80 for each of
# seeds 1-5 (measured 0.84-0.89), and the non-private baseline of
# attnsec-defend(1) >= 0.95 (measured 0.96).
accuracy() {
    sed -n 's/^ *"test_accuracy": \([0-9.e+-]*\),*$/\1/p' "$1/report.json" | tail -n 1
}
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
if [ "${ASEC_LONG_TESTS:-0}" = 1 ]; then
    for s in 1 2 3 4 5; do
        run 0 $dp -e 8 -s $s --checkpoint-every=0 -o "$scratch/e8-$s" || continue
        acc=$(accuracy "$scratch/e8-$s")
        at_least "$acc" 0.80 || fail "epsilon 8, seed $s: test accuracy '$acc' < 0.80"
    done
    if run 0 $dp --sigma=0 --no-clip --optimizer=adam --lr=0.002 --ema=0 -b 256 -T 800 \
        -s 1 --checkpoint-every=0 -o "$scratch/plain"; then
        acc=$(accuracy "$scratch/plain")
        at_least "$acc" 0.95 || fail "non-private: test accuracy '$acc' < 0.95"
    fi
fi
finish
