#!/usr/bin/python3
"""Reference values for tests/check_attn_invert.c (arXiv 2310.12462 objective).

Run with Debian's python3-torch, from the top of the source tree:

    /usr/bin/python3 datasets/gen/make_attn_invert_fixtures.py

For each case it writes datasets/fixtures/attn_invert/CASE_*.npy, float64:
  params  (6,)        [scale, causal, lam, inputs, g, dv]; inputs 0 tied
                      (X_q = X_k = x), 1 query (x = X_q, X_k = known),
                      2 key (x = X_k, X_q = known), 3 both (x = [X_q; X_k])
  x       (r, n)      point of evaluation (columns are tokens), r = d or 2 d
  known   (d, n)      the given input (query and key cases only)
  w       (H, d, d)   W_h
  b       (H, n, n)   observed row-stochastic matrices (masked when causal)
  wv      (H, d, dv)  value weights (cases with dv > 0 only)
  o       (H, n, dv)  observed outputs (cases with dv > 0 only)
  loss    (1,)        sum_h 0.5 ||F_h - B_h||_F^2 + 0.5 g ||F_h X_k^T W_V - O_h||_F^2
                      + 0.5 lam ||x||_F^2,  F_h = rowsoftmax(s X_q^T W_h X_k)
  grad    (r, n)      autograd gradient of loss
  jac     (H n (n + dv), r n) autograd Jacobian of the stacked residual, row
                      h n + j of head h being (F_h - B_h, sqrt(g) R_h)[j]
  dir     (r, n)      a direction e
  hvp     (r, n)      autograd Hessian-vector product (double backward)
The loss, Jacobian and Hessian products are computed by torch autograd from
the forward definition only; nothing here shares code with the C
implementation.
"""
import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                   "attn_invert")

CASES = [
    # name, d, n, heads, scale, causal, lam, inputs, g, dv, seed
    ("plain", 3, 5, 1, 1.0, 0, 0.0, 0, 0.0, 0, 1),
    ("causal", 3, 5, 1, 1.0, 1, 0.0, 0, 0.0, 0, 2),
    ("heads", 4, 6, 2, 0.5, 0, 0.01, 0, 0.0, 0, 3),
    ("query", 3, 5, 1, 1.0, 0, 0.0, 1, 0.0, 0, 4),
    ("key", 3, 5, 2, 0.8, 1, 0.0, 2, 0.0, 0, 5),
    ("both", 3, 4, 2, 1.0, 0, 0.02, 3, 0.0, 0, 6),
    ("values", 3, 5, 2, 0.7, 1, 0.0, 0, 0.6, 2, 7),
    ("both_values", 2, 4, 1, 1.0, 0, 0.0, 3, 1.5, 3, 8),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, d, n, heads, scale, causal, lam, inputs, gw, dv, seed in CASES:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(d, n, generator=g)
        w = torch.randn(heads, d, d, generator=g) / d
        # B: a row softmax of unrelated logits, so the residual is not zero
        z = torch.randn(heads, n, n, generator=g)
        b = torch.stack([attention_rows(z[h], causal) for h in range(heads)])
        known = torch.randn(d, n, generator=g)
        x2 = torch.randn(d, n, generator=g)
        wv = torch.randn(heads, d, dv, generator=g) / d
        o = torch.randn(heads, n, dv, generator=g)
        if inputs == 3:
            x = torch.cat([x, x2], dim=0)  # (2 d, n) = [X_q; X_k]
        e = torch.randn(*x.shape, generator=g)

        def sides(xv):
            if inputs == 1:
                return xv, known
            if inputs == 2:
                return known, xv
            if inputs == 3:
                return xv[:d], xv[d:]
            return xv, xv

        def residual(xv):
            xq, xk = sides(xv)
            rows = []
            for h in range(heads):
                f = attention_qk(xq, xk, w[h], scale, causal)
                r = [f - b[h]]
                if dv > 0:
                    r.append(gw ** 0.5 * (f @ xk.T @ wv[h] - o[h]))
                rows.append(torch.cat(r, dim=1))
            return torch.cat(rows, dim=0)  # (H n, n + dv)

        def loss_fn(xv):
            return 0.5 * (residual(xv) ** 2).sum() + 0.5 * lam * (xv ** 2).sum()

        xr = x.clone().requires_grad_(True)
        loss = loss_fn(xr)
        (grad,) = torch.autograd.grad(loss, xr, create_graph=True)
        (hvp,) = torch.autograd.grad((grad * e).sum(), xr)
        jac = torch.autograd.functional.jacobian(residual, x)  # (H n, n + dv, r, n)
        arrays = {
            "params": np.array([scale, float(causal), lam, float(inputs), gw, float(dv)]),
            "x": x.numpy(),
            "w": w.numpy(),
            "b": b.numpy(),
            "loss": np.array([loss.item()]),
            "grad": grad.detach().numpy(),
            "jac": jac.reshape(heads * n * (n + dv), x.numel()).numpy(),
            "dir": e.numpy(),
            "hvp": hvp.numpy(),
        }
        if inputs in (1, 2):
            arrays["known"] = known.numpy()
        if dv > 0:
            arrays["wv"] = wv.numpy()
            arrays["o"] = o.numpy()
        for key, value in arrays.items():
            np.save(os.path.join(OUT, "%s_%s.npy" % (name, key)),
                    np.ascontiguousarray(value, dtype="<f8"))
        print(name, "loss", loss.item())


def attention_qk(xq, xk, w, scale, causal):
    s = scale * xq.T @ w @ xk
    if causal:
        n = s.shape[0]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=1)


def attention_rows(z, causal):
    if causal:
        n = z.shape[0]
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
        z = z.masked_fill(mask, float("-inf"))
    return torch.softmax(z, dim=1)


if __name__ == "__main__":
    main()
