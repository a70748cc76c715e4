#!/bin/sh
# attnsec account: the statement and --json on the TF Privacy tutorial, the
# published legacy number, calibration, event files (valid, malformed: 65
# with one line naming the file, missing: 66), and the usage errors the
# issue lists (64 with one line plus the hint): q outside [0, 1], sigma <= 0,
# delta outside (0, 1), steps < 1, unknown accountant, bad schedule,
# contradictory sampling and relation.
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

fx=$ASEC_SRCDIR/datasets/fixtures/acct

run 0 "$ATTNSEC" account --help && stdout_has '^Usage: attnsec account' "group --help"
for m in epsilon delta sigma events; do
    run 0 "$ATTNSEC" account $m --help && stdout_has "^Usage: attnsec account $m" "$m --help"
done

# The TF Privacy tutorial: PLD headline about 2.3818, RDP 2.5967.
run 0 "$ATTNSEC" account epsilon --dataset-size 60000 --batch-size 256 \
    --noise-multiplier 1.1 --epochs 60 --delta 1e-5 &&
    stdout_has '^  pld        2\.38' "tutorial pld" &&
    stdout_has '^  rdp        2\.596' "tutorial rdp" &&
    stdout_has 'add-or-remove-one' "tutorial relation" &&
    stdout_has 'Poisson' "tutorial sampling" &&
    stdout_has 'NOT a bound' "tutorial gdp label" &&
    stdout_has '^  Epsilon: 2\.38.*pld upper bound' "tutorial headline" &&
    stderr_empty "tutorial"

# --json: sorted keys, the bracket, the headline.
run 0 "$ATTNSEC" account epsilon -q 0.01 -s 1.1 --steps 1000 --json --accountant rdp,pld &&
    stdout_has '"bounds": \[' "json bounds" &&
    stdout_has '"method": "pld"' "json method" &&
    stdout_has '"query": "epsilon"' "json query" &&
    stdout_has '"order": ' "json rdp order"

# Abadi et al. 2016 in legacy mode: 1.26 published.
run 0 "$ATTNSEC" account epsilon -q 0.01 -s 4 --steps 10000 --legacy --accountant rdp &&
    stdout_has '^  rdp        1\.25[89]' "legacy Abadi"

# Calibration, every answer meets the target; steps and q.
run 0 "$ATTNSEC" account sigma -q 0.04 --steps 2250 --target-epsilon 8 --accountant rdp &&
    stdout_has '^  rdp        1\.4157' "sigma rdp"
run 0 "$ATTNSEC" account sigma -q 0.01 -s 1.0 --target-epsilon 1 --solve steps \
    --accountant rdp
run 0 "$ATTNSEC" account delta -q 0.01 -s 1.0 --steps 100 --epsilon 1 --accountant rdp,exact

# --fail-if-epsilon-above.
run 1 "$ATTNSEC" account epsilon -q 0.01 -s 1 --steps 1000 --accountant rdp \
    --fail-if-epsilon-above 0.1

# Event files.
run 0 "$ATTNSEC" account events "$fx/dpsgd.json" --accountant rdp,pld &&
    stdout_has '^  pld ' "events pld"
run 0 "$ATTNSEC" account events "$fx/mixed.json" --epsilon 2 --json && stdout_has '"delta"' "events delta"
for f in bad-syntax bad-type bad-field bad-count bad-duplicate bad-key bad-sampled bad-q \
    bad-sigma bad-top bad-deep bad-overflow; do
    if run 65 "$ATTNSEC" account events "$fx/$f.json"; then
        stdout_empty "$f" && stderr_lines 1 "$f" && stderr_has "$f.json: " "$f"
    fi
done
run 66 "$ATTNSEC" account events "$scratch/missing.json" && stderr_has 'missing.json' "missing"

# Usage errors: 64, nothing on stdout, the message and the hint.
usage() {
    if run 64 "$ATTNSEC" account "$@"; then
        stdout_empty "$*" && stderr_lines 2 "$*"
    fi
}
usage epsilon -q 1.5 -s 1 --steps 10
usage epsilon -q -0.1 -s 1 --steps 10
usage epsilon -q 0.1 -s 0 --steps 10
usage epsilon -q 0.1 -s -1 --steps 10
usage epsilon -q 0.1 -s 1 --steps 0
usage epsilon -q 0.1 -s 1 --steps 10 --delta 1
usage epsilon -q 0.1 -s 1 --steps 10 --delta 0
usage epsilon -q 0.1 -s 1 --steps 10 --accountant bogus
usage epsilon -q 0.1 -s 1
usage epsilon --schedule 0.1:1
usage epsilon --schedule 0.1:0:5
usage epsilon -q 0.1 -s 1 --steps 10 --sampling poisson --relation replace-one
usage epsilon -q 0.1 -s 1 --steps 10 --sampling shuffle --relation add-remove
usage delta -q 0.1 -s 1 --steps 10
usage sigma -q 0.1 --steps 10
usage events
usage epsilon --bogus
finish
