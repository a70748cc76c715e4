#!/bin/sh
# attnsec attack dlg: a simulated instance recovered, the attention
# regression with its suggested restart count, a gradient file from
# 'attnsec model grad' attacked and scored, the defense grid, and the exit
# statuses for a gradient with a missing or misshaped tensor (65), a
# missing file (66) and usage errors (64).
. "${ASEC_SRCDIR:?}/tests/cli/common.sh"

D="$ATTNSEC attack dlg"

# Simulated n = 4 instances, both losses: recovered, reported, reproducible.
run 0 $D -q -s 1 --simulate --tokens=4 --instances=2 --loss=both -o "$scratch/s1" &&
    stdout_has '^0  *euclid 2/2' "simulate euclid" && stdout_has '^0  *cos  *2/2' "simulate cos"
[ -f "$scratch/s1/report.json" ] || fail "no report.json"
[ -f "$scratch/s1/runs.csv" ] || fail "no runs.csv"
grep -q '"success": true' "$scratch/s1/report.json" || fail "no success recorded"
grep -q '"span_rank": 4' "$scratch/s1/report.json" || fail "span not used"
grep -q '"alternate": "auto"' "$scratch/s1/report.json" || fail "alternate not reported"
grep -q '"restarts": 64' "$scratch/s1/report.json" || fail "attn-block restarts not 64"
run 0 $D -q -s 1 --simulate --tokens=4 --instances=2 --loss=both -o "$scratch/s2"
cmp -s "$scratch/s1/runs.csv" "$scratch/s2/runs.csv" ||
    { cut -d, -f1-9 "$scratch/s1/runs.csv" >"$scratch/a"; cut -d, -f1-9 "$scratch/s2/runs.csv" >"$scratch/b";
      cmp -s "$scratch/a" "$scratch/b" || fail "not reproducible"; }

# A defense grid with a vocabulary and a warm start (the curve's command).
run 0 $D -q -s 0 --simulate --tokens=4 --instances=1 --sim-vocab=32 --warm=0.01 -r 1 \
    --prior=0 --sigma=0,0.01 --noise=laplace --prune=0.1 -o "$scratch/c" &&
    stdout_has '^0.01 ' "sigma grid"
grep -q '"tok_acc"' "$scratch/c/report.json" || fail "no tok_acc"

# A gradient file from 'attnsec model grad' on a model file.
run 0 "$ATTNSEC" model init --arch=attn-block -s 3 -o "$scratch/m.safetensors"
/usr/bin/python3 - "$scratch" <<'PY' || exit 77
import sys, struct
d = sys.argv[1]
def npy(path, shape, vals, descr):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else ""))
    pad = 64 - (10 + len(hdr) + 1) % 64
    hdr = hdr + " " * pad + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
        f.write(struct.pack("<%d%s" % (len(vals), "d" if descr == "<f8" else "q"), *vals))
import math
x = [math.sin(1.7 * i + 0.3) * 1.3 for i in range(2 * 16)]
npy(d + "/x.npy", (1, 2, 16), x, "<f8")
npy(d + "/y.npy", (1,), [2], "<i8")
PY
run 0 "$ATTNSEC" model grad -m "$scratch/m.safetensors" -x "$scratch/x.npy" -y "$scratch/y.npy" \
    -o "$scratch/g.safetensors"
run 0 $D -q -s 2 -m "$scratch/m.safetensors" -g "$scratch/g.safetensors" --tokens=2 \
    --truth="$scratch/x.npy" --truth-labels="$scratch/y.npy" -o "$scratch/o"
[ -f "$scratch/o/x_recovered.npy" ] || fail "no x_recovered.npy"
grep -q '"label_acc": 1' "$scratch/o/report.json" || fail "label not recovered"

# Attention regression at n = d = 4 (E known): the suggested 1024 starts
# are reported, and both instances are recovered.
run 0 $D -q -s 0 --simulate --kind=attn-regression --channels=4 --tokens=4 --instances=2 \
    -o "$scratch/ar" && stdout_has '^0  *euclid 2/2' "attn-regression n = d = 4"
grep -q '"restarts": 1024' "$scratch/ar/report.json" || fail "attn-regression restarts"

# The default ViT on a shipped digit (B = 1, box [0, 1]): exact recovery,
# the label, the PSNR and the picture originals | recovered.
run 0 $D -q -s 7 --simulate --kind=vit --instances=1 -r 2 -o "$scratch/v" &&
    stdout_has '^0  *euclid 1/1 ' "vit recovered"
ext=png; [ -f "$scratch/v/recon_grid.png" ] || ext=pgm
[ -f "$scratch/v/recon_grid.$ext" ] || fail "no recon_grid"
grep -q '"label_acc": 1' "$scratch/v/report.json" || fail "vit label not recovered"
grep -q "\"image_grid\": \"recon_grid.$ext\"" "$scratch/v/report.json" || fail "grid not reported"
if [ "$ext" = png ]; then
    head -c 8 "$scratch/v/recon_grid.png" | od -An -tx1 | grep -q '89 50 4e 47 0d 0a 1a 0a' ||
        fail "not a PNG"
fi
run 64 $D -q --simulate --kind=vit --sim-vocab=8 -o "$scratch/bad"
run 64 $D -q --simulate --kind=vit --box=1,0 -o "$scratch/bad"

# Bad input: a model file is not a gradient of another architecture (65,
# naming the tensor); a missing gradient (66); usage errors (64).
run 0 "$ATTNSEC" model init --arch=attn-regression -s 3 -o "$scratch/r.safetensors"
run 65 $D -q -m "$scratch/m.safetensors" -g "$scratch/r.safetensors" -o "$scratch/bad" &&
    stderr_has "tensor" "wrong gradient"
run 66 $D -q -m "$scratch/m.safetensors" -g "$scratch/none.safetensors" -o "$scratch/bad"
run 64 $D -q -o "$scratch/bad"
run 64 $D --loss=l1 --simulate -o "$scratch/bad"
run 64 $D --simulate
run 64 $D --simulate --sigma=abc -o "$scratch/bad"
run 64 $D --simulate --alternate=maybe -o "$scratch/bad"
finish
