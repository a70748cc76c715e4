#!/usr/bin/python3
"""Make the small inputs of the 'attnsec defend copyright' CLI tests.

Run from the source tree with Debian's numpy:
    /usr/bin/python3 datasets/gen/make_copyright_fixtures.py

Writes datasets/fixtures/copyright/:
  A.npy           (60, 4) float64, entries U(-0.5, 0.5)
  b.npy           (60,)   float64, softmax(A x_true) + noise, renormalised
  mask.npy        (60,)   bool, the first 12 rows copyrighted
  mask_empty.npy  (60,)   bool, no row copyrighted      (must exit 65)
  mask_bad.npy    (60,)   float64 with a 2 in it        (must exit 65)
  A_nan.npy       (60, 4) float64 with one NaN          (must exit 65)
Fixed seed; float64 little-endian .npy v1.0.
"""
import os
import numpy as np

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "copyright")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20230823)
n, d, n1 = 60, 4, 12
A = rng.uniform(-0.5, 0.5, size=(n, d))
x_true = rng.normal(size=d)
z = A @ x_true
f = np.exp(z - z.max())
f /= f.sum()
b = np.abs(f * (1.0 + 0.2 * rng.normal(size=n)))
b /= b.sum()
mask = np.zeros(n, dtype=bool)
mask[:n1] = True
np.save(os.path.join(out, "A.npy"), A)
np.save(os.path.join(out, "b.npy"), b)
np.save(os.path.join(out, "mask.npy"), mask)
np.save(os.path.join(out, "mask_empty.npy"), np.zeros(n, dtype=bool))
bad = mask.astype(np.float64)
bad[5] = 2.0
np.save(os.path.join(out, "mask_bad.npy"), bad)
An = A.copy()
An[3, 1] = np.nan
np.save(os.path.join(out, "A_nan.npy"), An)
