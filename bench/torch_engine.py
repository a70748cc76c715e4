#!/usr/bin/python3
"""torch_engine.py - the PyTorch float64 side of bench/bench_engine.c.

Times, on one CPU thread, the same computations as the C benchmark and
prints one line per figure, "name seconds", for bench_engine to read:

    small_fwd_bwd   forward + backward of a pre-LN transformer classifier,
                    T = 16, C = 64, L = 2, NH = 4, MLP 256, K = 10, B = 1,
                    gradients w.r.t. parameters and the input embeddings
    small_second    grad_input <grad_theta L, v> (double backward)
    attn_fwd_bwd    multi-head attention forward + backward, B = 1,
                    T = 512, C = 256, NH = 4 (from packed qkv)

Times are process CPU time (time.process_time()), like bench_engine's:
both sides run one thread, and CPU time stays meaningful on a shared
machine.  Exits 3 when torch is missing (bench_engine then reports a skip).
"""
import math
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit(3)

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
torch.manual_seed(0)


def best_time(fn, min_total=0.5, reps=5):
    fn()
    best = float("inf")
    for _ in range(reps):
        n, t0 = 0, time.process_time()
        while True:
            fn()
            n += 1
            if time.process_time() - t0 >= min_total / reps:
                break
        best = min(best, (time.process_time() - t0) / n)
    return best


def mha(qkv, nh):
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // nh
    q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in qkv.split(C, dim=2))
    att = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(hs), dim=-1)
    return (att @ v).transpose(1, 2).reshape(B, T, C)


def small():
    T, C, L, NH, H, K, B = 16, 64, 2, 4, 256, 10, 1
    ps = []

    def p(*shape, std=0.02):
        t = (torch.randn(*shape) * std).requires_grad_(True)
        ps.append(t)
        return t

    pos = p(T, C)
    blocks = [dict(l1w=p(C, std=0) + 1, l1b=p(C, std=0), qw=p(3 * C, C), qb=p(3 * C, std=0),
                   pw=p(C, C), pb=p(C, std=0), l2w=p(C, std=0) + 1, l2b=p(C, std=0),
                   fw=p(H, C), fb=p(H, std=0), f2w=p(C, H), f2b=p(C, std=0))
              for _ in range(L)]
    lfw, lfb, hw, hb = p(C, std=0) + 1, p(C, std=0), p(K, C), p(K, std=0)
    leaves = [t for t in ps if t.is_leaf]
    x = torch.randn(B, T, C).requires_grad_(True)
    y = torch.randint(0, K, (B,))

    def loss(x):
        h = x + pos
        for b in blocks:
            a = F.layer_norm(h, (C,), b["l1w"], b["l1b"])
            h = h + mha(a @ b["qw"].T + b["qb"], NH) @ b["pw"].T + b["pb"]
            a = F.layer_norm(h, (C,), b["l2w"], b["l2b"])
            h = h + F.gelu(a @ b["fw"].T + b["fb"]) @ b["f2w"].T + b["f2b"]
        h = F.layer_norm(h, (C,), lfw, lfb).mean(dim=1)
        return F.cross_entropy(h @ hw.T + hb, y)

    v = [torch.randn_like(t) for t in leaves]

    def fwd_bwd():
        torch.autograd.grad(loss(x), leaves + [x])

    def second():
        g = torch.autograd.grad(loss(x), leaves, create_graph=True)
        torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, v)), x)

    print("small_fwd_bwd %.9g" % best_time(fwd_bwd))
    print("small_second %.9g" % best_time(second))


def big():
    B, T, C, NH = 1, 512, 256, 4
    qkv = torch.randn(B, T, 3 * C).requires_grad_(True)
    dout = torch.randn(B, T, C)

    def fwd_bwd():
        torch.autograd.grad(mha(qkv, NH), qkv, dout)

    print("attn_fwd_bwd %.9g" % best_time(fwd_bwd, min_total=1.0))


if __name__ == "__main__":
    small()
    big()
    sys.stdout.flush()
