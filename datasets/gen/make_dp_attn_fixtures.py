#!/usr/bin/python3
"""Fixtures of tests/cli/dp_attn.sh (attnsec defend dp-attn).

Run from the top of the source tree with Debian's python3-numpy:
    /usr/bin/python3 datasets/gen/make_dp_attn_fixtures.py
Writes datasets/fixtures/dp_attn/:
    x.npy       (12, 4) tokens, rows of unit norm (Q = K = X)
    k.npy       (12, 4) other keys (Q != K)
    v.npy       (12, 3) values
    x_nan.npy   x with one NaN
    notpsd.npy  (2, 2) symmetric, eigenvalues 3 and -1
"""
import os

import numpy as np

out = os.path.join("datasets", "fixtures", "dp_attn")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20240509)
x = rng.normal(size=(12, 4))
x /= np.linalg.norm(x, axis=1, keepdims=True)
np.save(os.path.join(out, "x.npy"), x)
np.save(os.path.join(out, "k.npy"), rng.normal(size=(12, 4)))
np.save(os.path.join(out, "v.npy"), rng.normal(size=(12, 3)))
xn = x.copy()
xn[1, 1] = np.nan
np.save(os.path.join(out, "x_nan.npy"), xn)
np.save(os.path.join(out, "notpsd.npy"), np.array([[1.0, 2.0], [2.0, 1.0]]))
