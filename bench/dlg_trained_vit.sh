#!/bin/sh
# dlg_trained_vit.sh - the trained-digits-ViT table of asec_dlg(3): train
# the default vit (init seed 1) without privacy, then attack the gradient of
# each of the held-out test images 0-9 (B = 1) with 'attnsec attack dlg'
# and print its PSNR and CPU time.  A measurement, not a test; about a
# minute of CPU.  Needs jq and python3-numpy (to cut single images).
#
#   ATTNSEC=./src/cli/attnsec ATTNSEC_DATADIR=datasets bench/dlg_trained_vit.sh [DIR]
set -eu
A=${ATTNSEC:-attnsec}
D=${ATTNSEC_DATADIR:?set ATTNSEC_DATADIR to the datasets directory}
out=${1:-dlg-trained-vit}
export ATTNSEC_DATADIR OPENBLAS_NUM_THREADS=1
mkdir -p "$out"
cd "$out"
$A model init --arch=vit -s 1 -q -o init.safetensors
$A defend dpsgd -m init.safetensors --sigma=0 --no-clip --idealized --optimizer=adam \
    --lr=0.002 -b 64 -T 300 -s 1 -q --checkpoint-every=0 -o train
echo "test accuracy $(jq '.results.utility.test_accuracy' train/report.json)"
echo "image  psnr_db  cpu_s"
for i in 0 1 2 3 4 5 6 7 8 9; do
    /usr/bin/python3 -c "
import numpy as np
x = np.load('$D/digits/test_images.npy'); y = np.load('$D/digits/test_labels.npy')
np.save('x$i.npy', x[$i:$i + 1].astype(np.float64) / 16.0)
np.save('y$i.npy', y[$i:$i + 1].astype(np.int64))"
    $A model grad -q -m train/model.safetensors -x "x$i.npy" -y "y$i.npy" \
        -o "g$i.safetensors" >/dev/null
    /usr/bin/time -f %U -o "t$i" $A attack dlg -q -m train/model.safetensors \
        -g "g$i.safetensors" --truth "x$i.npy" -s 1 -o "a$i" >/dev/null
    printf '%5s  %7s  %5s\n' "$i" "$(awk -F, 'NR == 2 { print $8 }' "a$i/runs.csv")" \
        "$(cat "t$i")"
done
