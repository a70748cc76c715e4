#!/usr/bin/python3
"""make_dlg_fixtures.py - PyTorch float64 references for the DLG matching
losses (attacks/dlg.c), read by tests/check_dlg.c.

Usage (Debian: apt-get install --no-install-recommends python3-torch
python3-numpy):

    /usr/bin/python3 datasets/gen/make_dlg_fixtures.py datasets/fixtures/dlg

The model is the engine's attention-only block, built in plain torch by
make_engine_fixtures.py (imported from this directory): C = 8, T = 3,
K = 3 classes, 2 heads, 1 layer, mean pooling, no positions.  For each
instance below, torch.manual_seed(SEED) draws the parameters
theta ~ N(0, 1/C), the client's private batch (x_true ~ N(0, 1), labels or
soft labels) and its gradient G = dL/dtheta (L the mean loss), then a
guess (x = x_true + 0.5 N(0, 1), other soft labels) at which the
matching losses of asec_dlg_objective() are evaluated:

    euclid   f = 0.5 ||g' - G||^2
    cos      f = 1 - <g', G> / (|g'| |G|),    g' = dL/dtheta at the guess

with their exact gradients by double backward.  Files NAME_KEY.npy:

    params (P)  G (P)  x (B, T, C)  labels (B) int64 | soft (B, K)
    loss_euclid (1)  dx_euclid (B, T, C)  [dsoft_euclid (B, K)]
    loss_cos (1)     dx_cos (B, T, C)     [dsoft_cos (B, K)]

Never run by make check.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_engine_fixtures import arch, example_losses, n_params  # noqa: E402

torch.set_default_dtype(torch.float64)

A = arch("attn-block", channels=8, seq_len=3, classes=3, heads=2, layers=1,
         pool="mean", pos="none")

# name, batch, hard labels, seed
INSTANCES = [("block_b1_hard", 1, True, 601), ("block_b2_soft", 2, False, 602)]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "datasets/fixtures/dlg"
    os.makedirs(out, exist_ok=True)
    C, T, K = A["channels"], A["seq_len"], A["classes"]
    for name, B, hard, seed in INSTANCES:
        torch.manual_seed(seed)
        theta = (torch.randn(n_params(A)) / C ** 0.5).requires_grad_(True)
        x_true = torch.randn(B, T, C)
        if hard:
            y_true = torch.randint(0, K, (B,))
            s_true = None
        else:
            y_true = None
            s_true = torch.softmax(torch.randn(B, K), dim=-1)
        L = example_losses(A, theta, x_true, y_true, s_true).mean()
        G = torch.autograd.grad(L, theta)[0].detach()
        x = (x_true + 0.5 * torch.randn(B, T, C)).requires_grad_(True)
        soft = None if hard else torch.softmax(torch.randn(B, K), dim=-1).requires_grad_(True)
        files = {"params": theta.detach(), "G": G, "x": x.detach()}
        if hard:
            files["labels"] = y_true
        else:
            files["soft"] = soft.detach()
        for kind in ("euclid", "cos"):
            L = example_losses(A, theta, x, y_true, soft).mean()
            g = torch.autograd.grad(L, theta, create_graph=True)[0]
            if kind == "euclid":
                f = 0.5 * ((g - G) ** 2).sum()
            else:
                f = 1.0 - (g * G).sum() / (g.norm() * G.norm())
            wrt = [x] if hard else [x, soft]
            d = torch.autograd.grad(f, wrt)
            files["loss_" + kind] = f.detach().reshape(1)
            files["dx_" + kind] = d[0]
            if not hard:
                files["dsoft_" + kind] = d[1]
        for key, t in files.items():
            arr = t.numpy()
            arr = arr.astype(np.int64) if key == "labels" else arr.astype(np.float64)
            path = os.path.join(out, "%s_%s.npy" % (name, key))
            np.save(path, arr)
        print("%s: P = %d, B = %d" % (name, n_params(A), B))


if __name__ == "__main__":
    main()
