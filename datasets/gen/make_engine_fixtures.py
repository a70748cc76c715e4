#!/usr/bin/python3
"""make_engine_fixtures.py - PyTorch float64 reference values for the
transformer engine (src/model.c), read by tests/check_model.c.

Usage (Debian: apt-get install --no-install-recommends python3-torch):

    /usr/bin/python3 datasets/gen/make_engine_fixtures.py datasets/fixtures/engine

For each configuration below it builds the model in plain torch operations
(mirroring attnsec/model.h: pre-LayerNorm blocks, packed QKV, exact GELU,
mean/cls/none pooling, cross-entropy with hard or probability targets, the
attention-only block, the attention regression), draws parameters, inputs
and labels from torch.manual_seed(CONFIG SEED), and writes one
safetensors file NAME.safetensors holding

    params       (P)      the flat parameter vector, attnsec arena order
    x | tokens            the inputs (embeddings e for token batches are
                          also given as "x_emb")
    labels | soft         hard labels (I64) or soft labels / targets
    loss         (1)      the mean loss L
    grad_params  (P)      dL/dtheta
    grad_input            dL/d input (image, x, or embeddings e)
    grad_soft             dL/d soft (soft labels or regression targets)
    losses       (B)      per-example losses l_b
    per_example  (B, P)   dl_b/dtheta, each from its own one-example graph
    v            (P)      a direction in parameter space
    gdd_input             d/d input <dL/dtheta, v> (double backward; with
                          tokens: the jvp of dL/de along v, e moving with theta)
    gdd_soft              d/d soft <dL/dtheta, v>
    u, w                  directions in input and soft space (not for tokens)
    jvp          (P)      d(dL/dtheta)/d(input) u + d(dL/dtheta)/d(soft) w
    hdir_params, hdir_input, hdir_soft   a direction in (theta, input, soft)
    hvp_params, hvp_input, hvp_soft      the Hessian of L applied to it

and metadata "attnsec.fixture" = "engine-v1" (the magic and version the C
test checks, as llm.c's test state) and "attnsec.arch" = the architecture
JSON of asec_model_arch_to_json().  Never run by make check.
"""

import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

FIXTURE_VERSION = "engine-v1"


# ---------------------------------------------------------------- architectures

def arch(kind, **kw):
    a = dict(format="attnsec-model", version=1, kind=kind, channels=8, layers=1,
             heads=1, seq_len=4, classes=3, vocab=0, image_h=0, image_w=0, patch=0,
             mlp_hidden=0, causal=False, pool="mean", pos="none", scale=1.0,
             ln_eps=1e-5)
    a.update(kw)
    return a


def tensor_list(a):
    """(name, shape) in arena order, as build() in src/model.c."""
    C, K, L, H = a["channels"], a["classes"], a["layers"], a["mlp_hidden"]
    out = []
    if a["kind"] == "attn-regression":
        return [("attn.x", (C, C)), ("attn.y", (C, C))]
    if a["kind"] == "text":
        out.append(("tok_emb.weight", (a["vocab"], C)))
    if a["kind"] == "vit":
        p = a["patch"]
        out.append(("patch_emb.weight", (C, p * p)))
        out.append(("patch_emb.bias", (C,)))
        if a["pool"] == "cls":
            out.append(("cls_token", (C,)))
    if a["pos"] == "learned":
        out.append(("pos_emb.weight", (a["seq_len"], C)))
    for l in range(L):
        b = "blocks.%d." % l
        if a["kind"] in ("vit", "text"):
            out += [(b + "ln1.weight", (C,)), (b + "ln1.bias", (C,)),
                    (b + "attn.qkv.weight", (3 * C, C)), (b + "attn.qkv.bias", (3 * C,)),
                    (b + "attn.proj.weight", (C, C)), (b + "attn.proj.bias", (C,)),
                    (b + "ln2.weight", (C,)), (b + "ln2.bias", (C,)),
                    (b + "mlp.fc.weight", (H, C)), (b + "mlp.fc.bias", (H,)),
                    (b + "mlp.proj.weight", (C, H)), (b + "mlp.proj.bias", (C,))]
        else:
            out += [(b + "attn.q.weight", (C, C)), (b + "attn.k.weight", (C, C)),
                    (b + "attn.v.weight", (C, C))]
    if a["kind"] in ("vit", "text"):
        out += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    out += [("head.weight", (K, C)), ("head.bias", (K,))]
    return out


def unflatten(a, theta):
    ps, off = {}, 0
    for name, shape in tensor_list(a):
        n = math.prod(shape)
        ps[name] = theta[off:off + n].view(shape)
        off += n
    assert off == theta.numel()
    return ps


def n_params(a):
    return sum(math.prod(s) for _, s in tensor_list(a))


def tokens_of(a):
    if a["kind"] == "vit":
        return (a["image_h"] // a["patch"]) * (a["image_w"] // a["patch"]) + (
            1 if a["pool"] == "cls" else 0)
    return a["seq_len"]


def rows_of(a):
    return tokens_of(a) if a["pool"] == "none" else 1


# ---------------------------------------------------------------- the model in torch

def mha(q, k, v, nh, causal, scale=None):
    B, T, C = q.shape
    hs = C // nh
    q = q.view(B, T, nh, hs).transpose(1, 2)
    k = k.view(B, T, nh, hs).transpose(1, 2)
    v = v.view(B, T, nh, hs).transpose(1, 2)
    s = (q @ k.transpose(-2, -1)) * (scale if scale is not None else 1.0 / math.sqrt(hs))
    if causal:
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        s = s.masked_fill(~mask, float("-inf"))
    att = torch.softmax(s, dim=-1)
    return (att @ v).transpose(1, 2).reshape(B, T, C)


def sinusoid(T, C):
    pe = torch.zeros(T, C)
    for t in range(T):
        for i in range(C):
            f = 10000.0 ** (-(i - i % 2) / C)
            pe[t, i] = math.sin(t * f) if i % 2 == 0 else math.cos(t * f)
    return pe


def embed(a, ps, inp):
    """inp: images (B, H, W), x (B, T, C) or embeddings e (B, T, C)."""
    C = a["channels"]
    if a["kind"] == "vit":
        p, H, W = a["patch"], a["image_h"], a["image_w"]
        B = inp.shape[0]
        patches = inp.view(B, H // p, p, W // p, p).permute(0, 1, 3, 2, 4)
        patches = patches.reshape(B, (H // p) * (W // p), p * p)
        x = patches @ ps["patch_emb.weight"].T + ps["patch_emb.bias"]
        if a["pool"] == "cls":
            x = torch.cat([ps["cls_token"].view(1, 1, C).expand(B, 1, C), x], dim=1)
    else:
        x = inp
    T = x.shape[1]
    if a["pos"] == "learned":
        x = x + ps["pos_emb.weight"][:T]
    elif a["pos"] == "sin":
        x = x + sinusoid(T, C)
    return x


def logits_of(a, ps, inp):
    C, nh = a["channels"], a["heads"]
    x = embed(a, ps, inp)
    for l in range(a["layers"]):
        b = "blocks.%d." % l
        if a["kind"] in ("vit", "text"):
            h = F.layer_norm(x, (C,), ps[b + "ln1.weight"], ps[b + "ln1.bias"], a["ln_eps"])
            qkv = h @ ps[b + "attn.qkv.weight"].T + ps[b + "attn.qkv.bias"]
            y = mha(qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:], nh, a["causal"])
            x = x + y @ ps[b + "attn.proj.weight"].T + ps[b + "attn.proj.bias"]
            h = F.layer_norm(x, (C,), ps[b + "ln2.weight"], ps[b + "ln2.bias"], a["ln_eps"])
            h = F.gelu(h @ ps[b + "mlp.fc.weight"].T + ps[b + "mlp.fc.bias"])
            x = x + h @ ps[b + "mlp.proj.weight"].T + ps[b + "mlp.proj.bias"]
        else:
            q = x @ ps[b + "attn.q.weight"].T
            k = x @ ps[b + "attn.k.weight"].T
            v = x @ ps[b + "attn.v.weight"].T
            x = mha(q, k, v, nh, a["causal"])
    if a["kind"] in ("vit", "text"):
        x = F.layer_norm(x, (C,), ps["ln_f.weight"], ps["ln_f.bias"], a["ln_eps"])
    if a["pool"] == "mean":
        x = x.mean(dim=1, keepdim=True)
    elif a["pool"] == "cls":
        x = x[:, :1]
    return x @ ps["head.weight"].T + ps["head.bias"]  # (B, R, K)


def example_losses(a, theta, inp, labels, soft):
    """(B) per-example losses: the mean over each example's R rows."""
    ps = unflatten(a, theta)
    if a["kind"] == "attn-regression":
        X, Y = ps["attn.x"], ps["attn.y"]
        q, v = inp @ X, inp @ Y
        s = (q @ inp.transpose(-2, -1)) * a["scale"]
        if a["causal"]:
            T = inp.shape[1]
            s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        out = torch.softmax(s, dim=-1) @ v
        return 0.5 * ((out - soft) ** 2).sum(dim=(1, 2))
    z = logits_of(a, ps, inp)
    B, R, K = z.shape
    if labels is not None:
        rows = F.cross_entropy(z.reshape(B * R, K), labels.reshape(B * R), reduction="none")
    else:
        rows = F.cross_entropy(z.reshape(B * R, K), soft.reshape(B * R, K), reduction="none")
    return rows.view(B, R).mean(dim=1)


# ---------------------------------------------------------------- configurations

CONFIGS = [
    # name, arch, batch, hard labels, token ids, seed
    ("vit_l1_h1_b1_hard",
     arch("vit", image_h=4, image_w=4, patch=2, seq_len=4, channels=8, mlp_hidden=16,
          pos="learned"), 1, True, False, 101),
    ("vit_l2_h4_b4_soft_cls",
     arch("vit", image_h=4, image_w=6, patch=2, seq_len=7, channels=8, layers=2, heads=4,
          mlp_hidden=16, pool="cls", pos="learned"), 4, False, False, 102),
    ("text_l1_h4_causal_b4_hard_tokens",
     arch("text", vocab=9, classes=9, seq_len=5, channels=8, heads=4, mlp_hidden=16,
          causal=True, pool="none", pos="learned"), 4, True, True, 103),
    ("text_l2_h1_b1_soft_emb",
     arch("text", vocab=9, classes=3, seq_len=5, channels=8, layers=2, mlp_hidden=16,
          pool="mean", pos="learned"), 1, False, False, 104),
    ("text_l2_h4_causal_b4_soft_tokens",
     arch("text", vocab=7, classes=7, seq_len=4, channels=8, layers=2, heads=4,
          mlp_hidden=12, causal=True, pool="none", pos="learned"), 4, False, True, 105),
    ("attnblock_l1_h1_b4_hard_sin",
     arch("attn-block", channels=8, seq_len=4, classes=3, pos="sin"), 4, True, False, 106),
    ("attnblock_l2_h4_causal_b1_soft_cls",
     arch("attn-block", channels=8, seq_len=4, classes=3, layers=2, heads=4, causal=True,
          pool="cls", pos="learned"), 1, False, False, 107),
    ("regression_b1",
     arch("attn-regression", channels=4, seq_len=5, classes=0, pool="none", scale=0.5),
     1, False, False, 108),
    ("regression_causal_b4",
     arch("attn-regression", channels=4, seq_len=5, classes=0, pool="none", scale=0.25,
          causal=True), 4, False, False, 109),
]


def make(name, a, B, hard, use_tokens, seed):
    torch.manual_seed(seed)
    P = n_params(a)
    T, R, C, K = tokens_of(a), rows_of(a), a["channels"], a["classes"]
    theta = 0.5 * torch.randn(P)
    ps0 = unflatten(a, theta)  # views: LayerNorm weights near 1
    for tname in ps0:
        if ("ln1.weight" in tname or "ln2.weight" in tname or tname == "ln_f.weight"):
            ps0[tname].add_(1.0)
    out = {"params": theta.clone()}
    tokens = None
    if a["kind"] == "vit":
        inp = torch.randn(B, a["image_h"], a["image_w"])
    elif use_tokens:
        tokens = torch.randint(0, a["vocab"], (B, T))
        inp = None
    else:
        inp = torch.randn(B, T, C)
    labels = soft = None
    if a["kind"] == "attn-regression":
        soft = torch.randn(B, T, C)
    elif hard:
        labels = torch.randint(0, K, (B, R) if R > 1 else (B,))
    else:
        soft = torch.rand(B, R, K) if R > 1 else torch.rand(B, K)

    def input_of(th, x):
        """the model input: embeddings from tokens (moving with theta) or x."""
        if tokens is not None:
            return unflatten(a, th)["tok_emb.weight"][tokens]
        return x

    def L_of(th, x, sf):
        return example_losses(a, th, input_of(th, x), labels, sf).mean()

    # first order
    th = theta.clone().requires_grad_(True)
    if tokens is not None:
        e = unflatten(a, th)["tok_emb.weight"][tokens]
        e.retain_grad()
        x_in = None
        lb = example_losses(a, th, e, labels, soft)
    else:
        x_in = inp.clone().requires_grad_(True)
        e = x_in
        lb = example_losses(a, th, x_in, labels, soft)
    sf = None
    if soft is not None:
        sf = soft.clone().requires_grad_(True)
        lb = example_losses(a, th, e if tokens is not None else x_in, labels, sf)
    L = lb.mean()
    L.backward()
    out["loss"] = L.detach().view(1)
    out["losses"] = lb.detach()
    out["grad_params"] = th.grad.detach()
    out["grad_input"] = e.grad.detach()
    if sf is not None:
        out["grad_soft"] = sf.grad.detach()
        out["soft"] = soft
    if labels is not None:
        out["labels"] = labels
    if tokens is not None:
        out["tokens"] = tokens
        out["x_emb"] = unflatten(a, theta)["tok_emb.weight"][tokens].detach()
    else:
        out["x"] = inp

    # per-example gradients, each from its own graph
    pe = torch.zeros(B, P)
    for b in range(B):
        thb = theta.clone().requires_grad_(True)
        xb = input_of(thb, None if inp is None else inp[b:b + 1])
        if tokens is not None:
            xb = unflatten(a, thb)["tok_emb.weight"][tokens[b:b + 1]]
        lab_b = None if labels is None else labels[b:b + 1]
        soft_b = None if soft is None else soft[b:b + 1]
        example_losses(a, thb, xb, lab_b, soft_b).sum().backward()
        pe[b] = thb.grad
    out["per_example"] = pe

    # second order: d/dinput <dL/dtheta, v>, by double backward
    v = torch.randn(P)
    out["v"] = v
    if tokens is None:
        th = theta.clone().requires_grad_(True)
        x_in = inp.clone().requires_grad_(True)
        sf = None if soft is None else soft.clone().requires_grad_(True)
        g = torch.autograd.grad(L_of(th, x_in, sf), th, create_graph=True)[0]
        wrt = [x_in] + ([sf] if sf is not None else [])
        dd = torch.autograd.grad((g * v).sum(), wrt)
        out["gdd_input"] = dd[0]
        if sf is not None:
            out["gdd_soft"] = dd[1]
    else:
        # e moves with theta: the forward-mode derivative of dL/de along v
        def grad_e(th_):
            th_ = th_.requires_grad_(True) if not th_.requires_grad else th_
            e_ = unflatten(a, th_)["tok_emb.weight"][tokens]
            return torch.autograd.grad(
                example_losses(a, th_, e_, labels, soft).mean(), e_, create_graph=True)[0]

        _, jv = torch.autograd.functional.jvp(grad_e, theta.clone(), v)
        out["gdd_input"] = jv
        if soft is not None:
            th = theta.clone().requires_grad_(True)
            sf = soft.clone().requires_grad_(True)
            g = torch.autograd.grad(L_of(th, None, sf), th, create_graph=True)[0]
            out["gdd_soft"] = torch.autograd.grad((g * v).sum(), sf)[0]

    # J u = d(dL/dtheta)/d(input) u + d(dL/dtheta)/d(soft) w (forward mode)
    if tokens is None:
        u = torch.randn_like(inp)
        out["u"] = u
        if soft is not None:
            w = torch.randn_like(soft)
            out["w"] = w

            def gth(x_, s_):
                th_ = theta.clone().requires_grad_(True)
                return torch.autograd.grad(L_of(th_, x_, s_), th_, create_graph=True)[0]

            _, jv = torch.autograd.functional.jvp(gth, (inp.clone(), soft.clone()), (u, w))
        else:
            def gth1(x_):
                th_ = theta.clone().requires_grad_(True)
                return torch.autograd.grad(L_of(th_, x_, None), th_, create_graph=True)[0]

            _, jv = torch.autograd.functional.jvp(gth1, inp.clone(), u)
        out["jvp"] = jv

    # the full Hessian of L over (theta, input, soft) times a direction
    hd_p = torch.randn(P)
    hd_x = None if tokens is not None else torch.randn_like(inp)
    hd_s = None if soft is None else torch.randn_like(soft)
    out["hdir_params"] = hd_p
    if hd_x is not None:
        out["hdir_input"] = hd_x
    if hd_s is not None:
        out["hdir_soft"] = hd_s
    th = theta.clone().requires_grad_(True)
    x_in = None if tokens is not None else inp.clone().requires_grad_(True)
    sf = None if soft is None else soft.clone().requires_grad_(True)
    if tokens is not None:
        e = unflatten(a, th)["tok_emb.weight"][tokens]
        Lh = example_losses(a, th, e, labels, sf).mean()
        grads = torch.autograd.grad(Lh, [th, e] + ([sf] if sf is not None else []),
                                    create_graph=True)
        dot = (grads[0] * hd_p).sum()
        if sf is not None:
            dot = dot + (grads[2] * hd_s).sum()
        wrt = [th] + ([sf] if sf is not None else [])
        hv = torch.autograd.grad(dot, wrt, allow_unused=True)
        out["hvp_params"] = hv[0]
        if sf is not None:
            out["hvp_soft"] = hv[1]
        # the tangent of dL/de along the direction, e moving with theta
        def grad_e2(th_, s_):
            e_ = unflatten(a, th_)["tok_emb.weight"][tokens]
            return torch.autograd.grad(
                example_losses(a, th_, e_, labels, s_).mean(), e_, create_graph=True)[0]

        if sf is not None:
            _, te = torch.autograd.functional.jvp(grad_e2, (theta.clone(), soft.clone()),
                                                  (hd_p, hd_s))
        else:
            _, te = torch.autograd.functional.jvp(lambda t_: grad_e2(t_, None),
                                                  theta.clone(), hd_p)
        out["hvp_input"] = te
    else:
        wrt = [th, x_in] + ([sf] if sf is not None else [])
        grads = torch.autograd.grad(example_losses(a, th, x_in, labels, sf).mean(), wrt,
                                    create_graph=True)
        dot = (grads[0] * hd_p).sum() + (grads[1] * hd_x).sum()
        if sf is not None:
            dot = dot + (grads[2] * hd_s).sum()
        hv = torch.autograd.grad(dot, wrt)
        out["hvp_params"] = hv[0]
        out["hvp_input"] = hv[1]
        if sf is not None:
            out["hvp_soft"] = hv[2]
    return out


# ---------------------------------------------------------------- safetensors writer

def save_safetensors(path, tensors, meta):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        if t.dtype == torch.int64:
            dtype, raw = "I64", struct.pack("<%dq" % t.numel(), *t.flatten().tolist())
        else:
            dtype, raw = "F64", struct.pack("<%dd" % t.numel(), *t.flatten().tolist())
        header[name] = {"dtype": dtype, "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)
    os.replace(path + ".tmp", path)


def arch_json(a):
    def num(x):
        for prec in (15, 16, 17):
            s = "%.*g" % (prec, x)
            if float(s) == x:
                return s
    keys = ["format", "version", "kind", "channels", "layers", "heads", "seq_len",
            "classes", "vocab", "image_h", "image_w", "patch", "mlp_hidden", "causal",
            "pool", "pos", "scale", "ln_eps"]
    parts = []
    for k in keys:
        v = a[k]
        if isinstance(v, bool):
            s = "true" if v else "false"
        elif isinstance(v, str):
            s = json.dumps(v)
        elif isinstance(v, float):
            s = num(v)
        else:
            s = str(v)
        parts.append('"%s":%s' % (k, s))
    return "{" + ",".join(parts) + "}"


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "datasets/fixtures/engine"
    os.makedirs(outdir, exist_ok=True)
    for name, a, B, hard, toks, seed in CONFIGS:
        t = make(name, a, B, hard, toks, seed)
        path = os.path.join(outdir, name + ".safetensors")
        save_safetensors(path, t, {"attnsec.fixture": FIXTURE_VERSION,
                                   "attnsec.arch": arch_json(a),
                                   "attnsec.batch": str(B)})
        print("%s: P = %d, %d bytes" % (path, n_params(a), os.path.getsize(path)))


if __name__ == "__main__":
    main()
