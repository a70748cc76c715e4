#!/usr/bin/python3
"""make_digits.py - the UCI optical handwritten digits (8x8) for attnsec.

Source: Debian python3-sklearn (1.2.1), file
/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz: the 1797
test-set images of E. Alpaydin and C. Kaynak, "Optical Recognition of
Handwritten Digits", UCI Machine Learning Repository (1998),
https://doi.org/10.24432/C50P49, licence CC BY 4.0.  Each row holds 64
pixel counts in 0..16 (row-major 8x8) and the class 0..9.

Writes, with a fixed train/test split (a NumPy RandomState(20240705)
permutation; the first 1437 images train, the last 360 test):

    datasets/digits/train_images.npy  uint8 (1437, 8, 8), values 0..16
    datasets/digits/train_labels.npy  uint8 (1437,)
    datasets/digits/test_images.npy   uint8 (360, 8, 8)
    datasets/digits/test_labels.npy   uint8 (360,)

Usage: /usr/bin/python3 datasets/gen/make_digits.py [SRC.csv.gz] [OUTDIR]
"""
import gzip
import os
import sys

import numpy as np

SRC = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else SRC
    out = sys.argv[2] if len(sys.argv) > 2 else "datasets/digits"
    with gzip.open(src, "rt") as f:
        rows = np.loadtxt(f, delimiter=",")
    assert rows.shape == (1797, 65), rows.shape
    x = rows[:, :64].astype(np.uint8).reshape(-1, 8, 8)
    y = rows[:, 64].astype(np.uint8)
    assert (rows[:, :64] == x.reshape(-1, 64)).all() and x.max() == 16 and y.max() == 9
    perm = np.random.RandomState(20240705).permutation(len(y))
    tr, te = perm[:1437], perm[1437:]
    os.makedirs(out, exist_ok=True)
    for name, arr in (("train_images", x[tr]), ("train_labels", y[tr]),
                      ("test_images", x[te]), ("test_labels", y[te])):
        np.save(os.path.join(out, name + ".npy"), np.ascontiguousarray(arr))
    print("digits: %d train, %d test, classes %s" % (len(tr), len(te),
                                                     np.bincount(y[tr]).tolist()))


if __name__ == "__main__":
    main()
