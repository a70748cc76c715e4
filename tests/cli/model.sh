#!/bin/sh
# attnsec model and attnsec data: init/info/grad/eval on the shipped data
# (the numbers themselves are checked by check_model; here: files, tensor
# names and shapes, statuses), shape mismatches exit 65 with one line
# naming both shapes, usage errors 64, missing input 66, uncreatable output
# 73; data list/export copy the files byte for byte.
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

D=$ATTNSEC_DATADIR
cd "$scratch" || exit 99

for m in init info grad eval; do
    run 0 "$ATTNSEC" model "$m" --help && stdout_has "^Usage: attnsec model $m" "model $m --help"
done
for m in list export; do
    run 0 "$ATTNSEC" data "$m" --help && stdout_has "^Usage: attnsec data $m" "data $m --help"
done

# init: every kind, reproducible from the seed
for k in attn-regression attn-block vit text; do
    run 0 "$ATTNSEC" model init --arch "$k" --seed 7 -q -o "$k.safetensors" &&
        stderr_empty "init $k -q"
done
run 0 "$ATTNSEC" model init --arch vit --seed 7 -q -o again.safetensors
cmp -s vit.safetensors again.safetensors || fail "init --seed 7 twice differs"
run 0 "$ATTNSEC" model init --arch vit --seed 8 -q -o other.safetensors
cmp -s vit.safetensors other.safetensors && fail "seeds 7 and 8 give the same model"
run 0 "$ATTNSEC" model init --arch vit --channels 16 --heads 2 --pool cls --seed 1 --json \
    -o cls.safetensors && stdout_has '"seq_len": 17' "vit with CLS has 17 tokens" &&
    stdout_has '"seed": 1' "--json records the seed"
run 64 "$ATTNSEC" model init --arch vit --heads 5 -o bad.safetensors &&
    stderr_has "heads 5 does not divide channels 32" "heads"
run 64 "$ATTNSEC" model init --arch nope -o bad.safetensors
run 64 "$ATTNSEC" model init --arch vit
run 64 "$ATTNSEC" model init --arch vit --bogus -o bad.safetensors && stdout_empty "--bogus"
run 73 "$ATTNSEC" model init --arch vit -o "$scratch/no/such/dir/m.safetensors"
[ -e bad.safetensors ] && fail "a failed init left a file"

# info
run 0 "$ATTNSEC" model info vit.safetensors && stdout_has "^parameters: 26474" "vit params" &&
    stdout_has "blocks.1.mlp.proj.weight" "tensor list"
run 0 "$ATTNSEC" model info --json text.safetensors && stdout_has '"params": 366465' "text"
run 66 "$ATTNSEC" model info missing.safetensors
run 65 "$ATTNSEC" model info "$D/digits/test_labels.npy" && stderr_lines 1 "info on .npy"

# grad: a shared gradient with the parameter names, and per-example rows
run 0 "$ATTNSEC" model grad -q --model vit.safetensors --inputs "$D/digits/test_images.npy" \
    --labels "$D/digits/test_labels.npy" -o g.safetensors && stdout_has "^loss 2\.[2-6]" "loss"
run 0 "$ATTNSEC" inspect g.safetensors && stdout_has "head.weight: F64 shape (10, 32)" \
    "gradient tensor names and shapes" && stdout_has 'attnsec.content = "gradient"' "content"
run 65 "$ATTNSEC" model grad --model text.safetensors --inputs "$D/digits/test_images.npy" \
    --labels "$D/digits/test_labels.npy" -o x.safetensors &&
    stderr_lines 1 "mismatch" && stderr_has "(360, 8, 8), but the model expects (360, 32)" \
    "both shapes named"
run 65 "$ATTNSEC" model grad --model vit.safetensors --inputs "$D/digits/test_images.npy" \
    --labels "$D/digits/train_labels.npy" -o x.safetensors &&
    stderr_has "labels of shape (1437,), but the model expects (360,)" "label shapes"
run 65 "$ATTNSEC" model grad --model attn-block.safetensors \
    --inputs "$D/digits/test_images.npy" --labels "$D/digits/test_labels.npy" \
    -o x.safetensors && stderr_has "expects (360, 8, 16)" "attn-block input shape"
[ -e x.safetensors ] && fail "a failed grad left a file"
run 66 "$ATTNSEC" model grad --model vit.safetensors --inputs missing.npy \
    --labels "$D/digits/test_labels.npy" -o x.safetensors
run 64 "$ATTNSEC" model grad --model vit.safetensors --inputs "$D/digits/test_images.npy" \
    -o x.safetensors && stderr_has "labels" "missing --labels"
run 0 "$ATTNSEC" model grad --model vit.safetensors --per-example --json \
    --inputs "$D/digits/test_images.npy" --labels "$D/digits/test_labels.npy" \
    -o pe.safetensors && stdout_has '"per_example": true' "--per-example"
run 0 "$ATTNSEC" inspect pe.safetensors && stdout_has "head.bias: F64 shape (360, 10)" \
    "per-example tensors are (B, ...)"

# eval on the shipped data (an untrained model: loss near ln 10 = 2.30, a
# little above it for a vit, whose fan-in head gives logits of scale 1)
run 0 "$ATTNSEC" model eval -q --model vit.safetensors --data digits &&
    stdout_has "^examples 360" "digits test split" && stdout_has "^loss 2\.[2-6]" "digits loss"
run 0 "$ATTNSEC" model eval -q --json --model text.safetensors --data kjv:train -n 20 &&
    stdout_has '"examples": 20' "kjv windows" && stdout_has '"loss": 7\.6' "kjv loss"
run 65 "$ATTNSEC" model eval -q --model vit.safetensors --data kjv && stderr_lines 1 "eval mismatch"
run 64 "$ATTNSEC" model eval --model vit.safetensors --data nosuch
run 64 "$ATTNSEC" model eval --model vit.safetensors --data digits:valid
run 0 "$ATTNSEC" model eval -q --model vit.safetensors \
    --data "$D/digits/test_images.npy,$D/digits/test_labels.npy" &&
    stdout_has "^examples 360" "eval on files"

# data
run 0 "$ATTNSEC" data list && stdout_has "^digits" "list digits" && stdout_has "^kjv" "list kjv"
run 0 "$ATTNSEC" data list --json && stdout_has '"present": true' "list --json"
run 0 "$ATTNSEC" data export -q kjv -o exp && stderr_empty "export -q"
for f in text/train_tokens.npy text/test_tokens.npy text/vocab.txt text/kjv.txt; do
    cmp -s "$D/$f" "exp/$f" || fail "export: $f differs"
done
run 64 "$ATTNSEC" data export nothing -o exp
run 64 "$ATTNSEC" data export digits
ATTNSEC_DATADIR=$scratch/empty run 66 "$ATTNSEC" data export digits -o exp2

finish
