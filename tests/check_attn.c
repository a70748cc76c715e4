/* check_attn.c - the transformer kernels of attn.h: forward passes against
 * naive loops, every _backward against central finite differences of its
 * _forward, every _forward_tangent against finite differences of the
 * forward outputs, every _backward_tangent against finite differences of
 * the _backward outputs, and the attention regression against MATH.md
 * section 9.1 (T2, T2').
 *
 * Finite differences: the 5-point central stencil
 *   f'(x) ~ (8 (f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / (12 h),
 * h = 1e-3 max(1, |x|), whose truncation error is O(h^4) ~ 1e-13 here.
 * The comparison metric is |a - b| / max(|a|, |b|, floor) with
 * floor = 1e-5 * max(1e-3, max_j |b_j|) (entries that are exactly zero,
 * such as masked attention, compare against the scale of the vector);
 * the tolerance is 1e-7 (issue #5). */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attn.h"
#include "attnsec/attnsec.h"
#include "testutil.h"

#define FD_TOL 1e-7

/* ---------------------------------------------------------------- helpers */

static asec_rng *
make_rng(const char *label)
{
    asec_rng *r = NULL;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 20250705, label), ASEC_OK);
    return r;
}

static double *
randn(asec_rng *r, size_t n, double scale)
{
    double *x = calloc(n ? n : 1, sizeof *x);

    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * asec_rng_normal(r);
    return x;
}

static double *
zeros(size_t n)
{
    double *x = calloc(n ? n : 1, sizeof *x);

    ck_assert_ptr_nonnull(x);
    return x;
}

static double
dot(const double *a, const double *b, size_t n)
{
    double s = 0.0;

    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Compare analytic a with finite-difference reference b (see the file
 * comment). */
static void
fd_compare(const double *a, const double *b, size_t n, const char *what)
{
    double bmax = 0.0, floor, worst = 0.0;
    size_t iw = 0;

    for (size_t i = 0; i < n; i++)
        bmax = fmax(bmax, fabs(b[i]));
    floor = 1e-5 * fmax(1e-3, bmax);
    for (size_t i = 0; i < n; i++) {
        double e = asec_test_relerr(a[i], b[i], floor);

        ck_assert_msg(isfinite(a[i]), "%s: entry %zu is %g", what, i, a[i]);
        if (e > worst) {
            worst = e;
            iw = i;
        }
    }
    ck_assert_msg(worst <= FD_TOL,
                  "%s: relative error %.3g at %zu: analytic %.17g, fd %.17g", what, worst,
                  iw, n ? a[iw] : 0.0, n ? b[iw] : 0.0);
}

/* A function under test: computes out (nout) from the current contents of
 * its argument buffers. */
typedef void (*fd_fn)(void *ctx, double *out);

/* One argument buffer x (n) and its tangent direction t (may be NULL: the
 * argument is held fixed). */
typedef struct fd_arg {
    double *x;
    const double *t;
    size_t n;
} fd_arg;

/* d/dx_i <R, f(x)> for every i of arg, by the 5-point stencil. */
static void
fd_gradient(double *g, fd_fn f, void *ctx, size_t nout, const double *R, double *x,
            size_t n)
{
    double *o = zeros(nout);

    for (size_t i = 0; i < n; i++) {
        double save = x[i], h = 1e-3 * fmax(1.0, fabs(save)), v[4];
        const double steps[4] = {h, -h, 2 * h, -2 * h};

        for (int s = 0; s < 4; s++) {
            x[i] = save + steps[s];
            f(ctx, o);
            v[s] = dot(R, o, nout);
        }
        x[i] = save;
        g[i] = (8.0 * (v[0] - v[1]) - (v[2] - v[3])) / (12.0 * h);
    }
    free(o);
}

/* The directional derivative of f along all args' tangents at once. */
static void
fd_directional(double *d, fd_fn f, void *ctx, size_t nout, fd_arg *args, size_t nargs)
{
    double *o[4], *save[8];
    const double h = 1e-3, steps[4] = {h, -h, 2 * h, -2 * h};

    ck_assert_uint_le(nargs, 8);
    for (size_t a = 0; a < nargs; a++) {
        save[a] = zeros(args[a].n);
        memcpy(save[a], args[a].x, args[a].n * sizeof(double));
    }
    for (int s = 0; s < 4; s++) {
        o[s] = zeros(nout);
        for (size_t a = 0; a < nargs; a++)
            for (size_t i = 0; i < args[a].n; i++)
                args[a].x[i] = save[a][i] + (args[a].t ? steps[s] * args[a].t[i] : 0.0);
        f(ctx, o[s]);
    }
    for (size_t a = 0; a < nargs; a++) {
        memcpy(args[a].x, save[a], args[a].n * sizeof(double));
        free(save[a]);
    }
    for (size_t i = 0; i < nout; i++)
        d[i] = (8.0 * (o[0][i] - o[1][i]) - (o[2][i] - o[3][i])) / (12.0 * h);
    for (int s = 0; s < 4; s++)
        free(o[s]);
}

/* ---------------------------------------------------------------- linear */

typedef struct lin_ctx {
    size_t N, IN, OUT;
    double *inp, *w, *b, *dout;
    int with_bias;
} lin_ctx;

static void
lin_fwd(void *p, double *out)
{
    lin_ctx *c = p;

    ck_assert_int_eq(asec_attn_linear_forward(out, c->inp, c->w,
                                              c->with_bias ? c->b : NULL, c->N, c->IN,
                                              c->OUT),
                     ASEC_OK);
}

/* The backward outputs (dinp | dw | db) as a function of (inp, w, dout). */
static void
lin_bwd(void *p, double *out)
{
    lin_ctx *c = p;
    size_t ni = c->N * c->IN, nw = c->OUT * c->IN;

    memset(out, 0, (ni + nw + c->OUT) * sizeof *out);
    ck_assert_int_eq(asec_attn_linear_backward(out, out + ni, out + ni + nw, c->dout,
                                               c->inp, c->w, c->N, c->IN, c->OUT),
                     ASEC_OK);
}

START_TEST(test_linear_forward_reference)
{
    asec_rng *r = make_rng("linear-ref");
    size_t N = 7, IN = 5, OUT = 3;
    double *x = randn(r, N * IN, 1), *w = randn(r, OUT * IN, 1), *b = randn(r, OUT, 1);
    double *y = zeros(N * OUT), *ref = zeros(N * OUT);

    ck_assert_int_eq(asec_attn_linear_forward(y, x, w, b, N, IN, OUT), ASEC_OK);
    for (size_t n = 0; n < N; n++)
        for (size_t o = 0; o < OUT; o++) {
            double s = b[o];

            for (size_t i = 0; i < IN; i++)
                s += x[n * IN + i] * w[o * IN + i];
            ref[n * OUT + o] = s;
        }
    asec_test_allclose(y, ref, N * OUT, 1e-14, 1e-14, "linear forward");
    free(x), free(w), free(b), free(y), free(ref);
    asec_rng_free(r);
}
END_TEST

START_TEST(test_linear_gradcheck)
{
    asec_rng *r = make_rng("linear-grad");
    lin_ctx c = {4, 3, 5, NULL, NULL, NULL, NULL, 1};
    size_t ni = c.N * c.IN, nw = c.OUT * c.IN, no = c.N * c.OUT;
    double *R = randn(r, no, 1), *g = zeros(ni + nw + c.OUT), *fd = zeros(nw);
    double *ti = randn(r, ni, 1), *tw = randn(r, nw, 1), *tb = randn(r, c.OUT, 1);
    double *tdo = randn(r, no, 1), *tout = zeros(no), *dir = zeros(ni + nw + c.OUT);
    double *tg = zeros(ni + nw + c.OUT);

    c.inp = randn(r, ni, 1), c.w = randn(r, nw, 1), c.b = randn(r, c.OUT, 1);
    c.dout = R;
    ck_assert_int_eq(asec_attn_linear_backward(g, g + ni, g + ni + nw, R, c.inp, c.w, c.N,
                                               c.IN, c.OUT),
                     ASEC_OK);
    fd_gradient(fd, lin_fwd, &c, no, R, c.inp, ni);
    fd_compare(g, fd, ni, "linear dinp");
    fd_gradient(fd, lin_fwd, &c, no, R, c.w, nw);
    fd_compare(g + ni, fd, nw, "linear dweight");
    fd_gradient(fd, lin_fwd, &c, no, R, c.b, c.OUT);
    fd_compare(g + ni + nw, fd, c.OUT, "linear dbias");

    /* forward tangent */
    {
        fd_arg a[3] = {{c.inp, ti, ni}, {c.w, tw, nw}, {c.b, tb, c.OUT}};

        ck_assert_int_eq(asec_attn_linear_forward_tangent(tout, c.inp, ti, c.w, tw, tb,
                                                          c.N, c.IN, c.OUT),
                         ASEC_OK);
        fd_directional(dir, lin_fwd, &c, no, a, 3);
        fd_compare(tout, dir, no, "linear forward tangent");
    }
    /* backward tangent, along (inp, w, dout) */
    {
        fd_arg a[3] = {{c.inp, ti, ni}, {c.w, tw, nw}, {c.dout, tdo, no}};

        ck_assert_int_eq(asec_attn_linear_backward_tangent(tg, tg + ni, tg + ni + nw,
                                                           c.dout, tdo, c.inp, ti, c.w,
                                                           tw, c.N, c.IN, c.OUT),
                         ASEC_OK);
        fd_directional(dir, lin_bwd, &c, ni + nw + c.OUT, a, 3);
        fd_compare(tg, dir, ni + nw + c.OUT, "linear backward tangent");
    }
    free(R), free(g), free(fd), free(ti), free(tw), free(tb), free(tdo), free(tout);
    free(dir), free(tg), free(c.inp), free(c.w), free(c.b);
    asec_rng_free(r);
}
END_TEST

/* ---------------------------------------------------------------- LayerNorm */

typedef struct ln_ctx {
    size_t N, C;
    double *inp, *w, *b, *dout, *mean, *rstd;
} ln_ctx;

static void
ln_fwd(void *p, double *out)
{
    ln_ctx *c = p;

    asec_attn_layernorm_forward(out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C,
                                1e-5);
}

static void
ln_bwd(void *p, double *out)
{
    ln_ctx *c = p;
    size_t ni = c->N * c->C;
    double *y = zeros(ni);

    asec_attn_layernorm_forward(y, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C,
                                1e-5);
    memset(out, 0, (ni + 2 * c->C) * sizeof *out);
    asec_attn_layernorm_backward(out, out + ni, out + ni + c->C, c->dout, c->inp, c->w,
                                 c->mean, c->rstd, c->N, c->C);
    free(y);
}

START_TEST(test_layernorm_forward_reference)
{
    asec_rng *r = make_rng("ln-ref");
    size_t N = 3, C = 6;
    double *x = randn(r, N * C, 2), *w = randn(r, C, 1), *b = randn(r, C, 1);
    double *y = zeros(N * C), *m = zeros(N), *s = zeros(N);

    asec_attn_layernorm_forward(y, m, s, x, w, b, N, C, 1e-5);
    for (size_t n = 0; n < N; n++) {
        /* (y - b) / w is standardised: mean 0, variance var / (var + eps). */
        double mu = 0.0, var = 0.0, v2 = 0.0;

        for (size_t i = 0; i < C; i++)
            mu += x[n * C + i] / (double)C;
        for (size_t i = 0; i < C; i++)
            var += (x[n * C + i] - mu) * (x[n * C + i] - mu) / (double)C;
        ck_assert_double_eq_tol(m[n], mu, 1e-14);
        ck_assert_double_eq_tol(s[n], 1.0 / sqrt(var + 1e-5), 1e-12);
        for (size_t i = 0; i < C; i++) {
            double z = (y[n * C + i] - b[i]) / w[i];

            v2 += z * z / (double)C;
        }
        ck_assert_double_eq_tol(v2, var / (var + 1e-5), 1e-12);
    }
    free(x), free(w), free(b), free(y), free(m), free(s);
    asec_rng_free(r);
}
END_TEST

START_TEST(test_layernorm_gradcheck)
{
    asec_rng *r = make_rng("ln-grad");
    ln_ctx c = {3, 5, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t ni = c.N * c.C, nb = ni + 2 * c.C;
    double *R = randn(r, ni, 1), *g = zeros(nb), *fd = zeros(ni);
    double *ti = randn(r, ni, 1), *tw = randn(r, c.C, 1), *tb = randn(r, c.C, 1);
    double *tdo = randn(r, ni, 1), *tout = zeros(ni), *dir = zeros(nb), *tg = zeros(nb);

    c.inp = randn(r, ni, 1.5), c.w = randn(r, c.C, 1), c.b = randn(r, c.C, 1);
    c.mean = zeros(c.N), c.rstd = zeros(c.N), c.dout = R;
    ln_fwd(&c, tout);
    asec_attn_layernorm_backward(g, g + ni, g + ni + c.C, R, c.inp, c.w, c.mean, c.rstd,
                                 c.N, c.C);
    fd_gradient(fd, ln_fwd, &c, ni, R, c.inp, ni);
    fd_compare(g, fd, ni, "layernorm dinp");
    fd_gradient(fd, ln_fwd, &c, ni, R, c.w, c.C);
    fd_compare(g + ni, fd, c.C, "layernorm dweight");
    fd_gradient(fd, ln_fwd, &c, ni, R, c.b, c.C);
    fd_compare(g + ni + c.C, fd, c.C, "layernorm dbias");
    {
        fd_arg a[3] = {{c.inp, ti, ni}, {c.w, tw, c.C}, {c.b, tb, c.C}};

        ln_fwd(&c, dir); /* restore mean/rstd at the base point */
        asec_attn_layernorm_forward_tangent(tout, c.inp, ti, c.w, tw, tb, c.mean, c.rstd,
                                            c.N, c.C);
        fd_directional(dir, ln_fwd, &c, ni, a, 3);
        fd_compare(tout, dir, ni, "layernorm forward tangent");
    }
    {
        fd_arg a[3] = {{c.inp, ti, ni}, {c.w, tw, c.C}, {c.dout, tdo, ni}};

        ln_fwd(&c, tout);
        asec_attn_layernorm_backward_tangent(tg, tg + ni, tg + ni + c.C, c.dout, tdo,
                                             c.inp, ti, c.w, tw, c.mean, c.rstd, c.N,
                                             c.C);
        fd_directional(dir, ln_bwd, &c, nb, a, 3);
        fd_compare(tg, dir, nb, "layernorm backward tangent");
    }
    free(R), free(g), free(fd), free(ti), free(tw), free(tb), free(tdo), free(tout);
    free(dir), free(tg), free(c.inp), free(c.w), free(c.b), free(c.mean), free(c.rstd);
    asec_rng_free(r);
}
END_TEST

/* ---------------------------------------------------------------- GELU */

typedef struct gelu_ctx {
    size_t n;
    double *inp, *dout;
} gelu_ctx;

static void
gelu_fwd(void *p, double *out)
{
    gelu_ctx *c = p;

    asec_attn_gelu_forward(out, NULL, c->inp, c->n);
}

static void
gelu_bwd(void *p, double *out)
{
    gelu_ctx *c = p;

    memset(out, 0, c->n * sizeof *out);
    asec_attn_gelu_backward(out, c->inp, NULL, c->dout, c->n);
}

START_TEST(test_gelu)
{
    asec_rng *r = make_rng("gelu");
    gelu_ctx c = {9, NULL, NULL};
    double *R = randn(r, c.n, 1), *g = zeros(c.n), *fd = zeros(c.n),
           *ti = randn(r, c.n, 1);
    double *tdo = randn(r, c.n, 1), *t = zeros(c.n), *y = zeros(c.n);

    c.inp = randn(r, c.n, 2), c.dout = R;
    /* torch.nn.functional.gelu(torch.tensor([-1., 0.5, 2.], dtype=float64)) */
    {
        double x[3] = {-1.0, 0.5, 2.0},
               ref[3] = {-0.15865525393145707, 0.34573123063700656, 1.9544997361036416};

        asec_attn_gelu_forward(y, NULL, x, 3);
        asec_test_allclose(y, ref, 3, 1e-15, 1e-16, "gelu values");
    }
    asec_attn_gelu_backward(g, c.inp, NULL, R, c.n);
    /* the forward pass's Phi cache gives bit-identical results */
    {
        double *cdf = zeros(c.n), *y2 = zeros(c.n), *g2 = zeros(c.n), *t1 = zeros(c.n);
        double *t2 = zeros(c.n);

        asec_attn_gelu_forward(y2, cdf, c.inp, c.n);
        asec_attn_gelu_backward(g2, c.inp, cdf, R, c.n);
        ck_assert_mem_eq(g, g2, c.n * sizeof *g);
        asec_attn_gelu_backward_tangent(t1, c.inp, NULL, ti, R, tdo, c.n);
        asec_attn_gelu_backward_tangent(t2, c.inp, cdf, ti, R, tdo, c.n);
        ck_assert_mem_eq(t1, t2, c.n * sizeof *t1);
        asec_attn_gelu_forward_tangent(t1, c.inp, NULL, ti, c.n);
        asec_attn_gelu_forward_tangent(t2, c.inp, cdf, ti, c.n);
        ck_assert_mem_eq(t1, t2, c.n * sizeof *t1);
        free(cdf), free(y2), free(g2), free(t1), free(t2);
    }
    fd_gradient(fd, gelu_fwd, &c, c.n, R, c.inp, c.n);
    fd_compare(g, fd, c.n, "gelu dinp");
    {
        fd_arg a[1] = {{c.inp, ti, c.n}};

        asec_attn_gelu_forward_tangent(t, c.inp, NULL, ti, c.n);
        fd_directional(fd, gelu_fwd, &c, c.n, a, 1);
        fd_compare(t, fd, c.n, "gelu forward tangent");
    }
    {
        fd_arg a[2] = {{c.inp, ti, c.n}, {c.dout, tdo, c.n}};

        memset(t, 0, c.n * sizeof *t);
        asec_attn_gelu_backward_tangent(t, c.inp, NULL, ti, c.dout, tdo, c.n);
        fd_directional(fd, gelu_bwd, &c, c.n, a, 2);
        fd_compare(t, fd, c.n, "gelu backward tangent");
    }
    free(R), free(g), free(fd), free(ti), free(tdo), free(t), free(y), free(c.inp);
    asec_rng_free(r);
}
END_TEST

/* ---------------------------------------------------------------- attention */

typedef struct sdpa_ctx {
    size_t T, S, D, DV;
    int causal;
    double scale;
    double *q, *k, *v, *dout, *att;
} sdpa_ctx;

static void
sdpa_fwd(void *p, double *out)
{
    sdpa_ctx *c = p;
    asec_mat o = asec_mat_view(out, c->T, c->DV), a = asec_mat_view(c->att, c->T, c->S);
    asec_mat q = asec_mat_view(c->q, c->T, c->D), k = asec_mat_view(c->k, c->S, c->D);
    asec_mat v = asec_mat_view(c->v, c->S, c->DV);

    ck_assert_int_eq(asec_attn_sdpa_forward(&o, &a, &q, &k, &v, c->scale, c->causal),
                     ASEC_OK);
}

/* (dq | dk | dv) as a function of (q, k, v, dout). */
static void
sdpa_bwd(void *p, double *out)
{
    sdpa_ctx *c = p;
    size_t nq = c->T * c->D, nk = c->S * c->D, nv = c->S * c->DV;
    double *o = zeros(c->T * c->DV), *w = zeros(c->T * c->S);
    asec_mat dq = asec_mat_view(out, c->T, c->D),
             dk = asec_mat_view(out + nq, c->S, c->D);
    asec_mat dv = asec_mat_view(out + nq + nk, c->S, c->DV);
    asec_mat wm = asec_mat_view(w, c->T, c->S), a = asec_mat_view(c->att, c->T, c->S);
    asec_mat q = asec_mat_view(c->q, c->T, c->D), k = asec_mat_view(c->k, c->S, c->D);
    asec_mat v = asec_mat_view(c->v, c->S, c->DV);
    asec_mat d = asec_mat_view(c->dout, c->T, c->DV);

    sdpa_fwd(c, o);
    memset(out, 0, (nq + nk + nv) * sizeof *out);
    ck_assert_int_eq(
        asec_attn_sdpa_backward(&dq, &dk, &dv, &wm, &d, &q, &k, &v, &a, c->scale),
        ASEC_OK);
    free(o), free(w);
}

static void
sdpa_reference(double *out, const sdpa_ctx *c)
{
    /* Plain loops: softmax with an explicit max shift, masked by j <= i. */
    for (size_t i = 0; i < c->T; i++) {
        double z[16], m = -INFINITY, s = 0.0;
        size_t len = c->causal ? i + 1 : c->S;

        for (size_t j = 0; j < len; j++) {
            z[j] = 0.0;
            for (size_t d = 0; d < c->D; d++)
                z[j] += c->q[i * c->D + d] * c->k[j * c->D + d];
            z[j] *= c->scale;
            m = fmax(m, z[j]);
        }
        for (size_t j = 0; j < len; j++)
            s += (z[j] = exp(z[j] - m));
        for (size_t e = 0; e < c->DV; e++) {
            double acc = 0.0;

            for (size_t j = 0; j < len; j++)
                acc += z[j] / s * c->v[j * c->DV + e];
            out[i * c->DV + e] = acc;
        }
    }
}

static void
sdpa_check(int causal)
{
    asec_rng *r = make_rng(causal ? "sdpa-causal" : "sdpa");
    sdpa_ctx c = {4, causal ? 4 : 5, 3, 2, causal, 0.7, NULL, NULL, NULL, NULL, NULL};
    size_t nq = c.T * c.D, nk = c.S * c.D, nv = c.S * c.DV, no = c.T * c.DV;
    size_t ns = c.T * c.S, nall = nq + nk + nv;
    double *R = randn(r, no, 1), *g = zeros(nall), *fd = zeros(nall), *o = zeros(no);
    double *ref = zeros(no), *w1 = zeros(ns), *w2 = zeros(ns), *tatt = zeros(ns);
    double *tq = randn(r, nq, 1), *tk = randn(r, nk, 1), *tv = randn(r, nv, 1);
    double *tdo = randn(r, no, 1), *tout = zeros(no), *tg = zeros(nall);
    asec_mat dq, dk, dv, q, k, v, a, d, wm1, wm2, tqm, tkm, tvm, tam, tom, tdm;

    c.q = randn(r, nq, 1), c.k = randn(r, nk, 1), c.v = randn(r, nv, 1);
    c.att = zeros(ns), c.dout = R;
    sdpa_fwd(&c, o);
    sdpa_reference(ref, &c);
    asec_test_allclose(o, ref, no, 1e-13, 1e-14, "sdpa forward vs loops");
    for (size_t i = 0; i < c.T; i++) {
        double s = 0.0;

        for (size_t j = 0; j < c.S; j++) {
            s += c.att[i * c.S + j];
            if (causal && j > i)
                ck_assert(c.att[i * c.S + j] == 0.0);
        }
        ck_assert_double_eq_tol(s, 1.0, 1e-15);
    }
    dq = asec_mat_view(g, c.T, c.D), dk = asec_mat_view(g + nq, c.S, c.D);
    dv = asec_mat_view(g + nq + nk, c.S, c.DV);
    q = asec_mat_view(c.q, c.T, c.D), k = asec_mat_view(c.k, c.S, c.D);
    v = asec_mat_view(c.v, c.S, c.DV), a = asec_mat_view(c.att, c.T, c.S);
    d = asec_mat_view(R, c.T, c.DV), wm1 = asec_mat_view(w1, c.T, c.S);
    wm2 = asec_mat_view(w2, c.T, c.S);
    ck_assert_int_eq(
        asec_attn_sdpa_backward(&dq, &dk, &dv, &wm1, &d, &q, &k, &v, &a, c.scale),
        ASEC_OK);
    fd_gradient(fd, sdpa_fwd, &c, no, R, c.q, nq);
    fd_compare(g, fd, nq, "sdpa dq");
    fd_gradient(fd, sdpa_fwd, &c, no, R, c.k, nk);
    fd_compare(g + nq, fd, nk, "sdpa dk");
    fd_gradient(fd, sdpa_fwd, &c, no, R, c.v, nv);
    fd_compare(g + nq + nk, fd, nv, "sdpa dv");

    /* forward tangent: out and att */
    sdpa_fwd(&c, o);
    tqm = asec_mat_view(tq, c.T, c.D), tkm = asec_mat_view(tk, c.S, c.D);
    tvm = asec_mat_view(tv, c.S, c.DV), tam = asec_mat_view(tatt, c.T, c.S);
    tom = asec_mat_view(tout, c.T, c.DV), tdm = asec_mat_view(tdo, c.T, c.DV);
    ck_assert_int_eq(asec_attn_sdpa_forward_tangent(&tom, &tam, &q, &k, &v, &a, &tqm,
                                                    &tkm, &tvm, c.scale),
                     ASEC_OK);
    {
        fd_arg args[3] = {{c.q, tq, nq}, {c.k, tk, nk}, {c.v, tv, nv}};

        fd_directional(fd, sdpa_fwd, &c, no, args, 3);
        fd_compare(tout, fd, no, "sdpa forward tangent");
    }
    /* backward tangent along (q, k, v, dout) */
    {
        fd_arg args[4] = {{c.q, tq, nq}, {c.k, tk, nk}, {c.v, tv, nv}, {c.dout, tdo, no}};
        asec_mat tdq = asec_mat_view(tg, c.T, c.D),
                 tdk = asec_mat_view(tg + nq, c.S, c.D);
        asec_mat tdv = asec_mat_view(tg + nq + nk, c.S, c.DV);

        sdpa_fwd(&c, o);
        ck_assert_int_eq(asec_attn_sdpa_backward_tangent(&tdq, &tdk, &tdv, &wm1, &wm2, &d,
                                                         &tdm, &q, &k, &v, &a, &tqm, &tkm,
                                                         &tvm, &tam, c.scale),
                         ASEC_OK);
        fd_directional(fd, sdpa_bwd, &c, nall, args, 4);
        fd_compare(tg, fd, nall, "sdpa backward tangent");
    }
    free(R), free(g), free(fd), free(o), free(ref), free(w1), free(w2), free(tatt);
    free(tq), free(tk), free(tv), free(tdo), free(tout), free(tg);
    free(c.q), free(c.k), free(c.v), free(c.att);
    asec_rng_free(r);
}

START_TEST(test_sdpa_gradcheck)
{
    sdpa_check(0);
}
END_TEST

START_TEST(test_sdpa_causal_gradcheck)
{
    sdpa_check(1);
}
END_TEST

/* The packed multi-head kernels (strided head views, ld = 3C). */
typedef struct mha_ctx {
    size_t B, T, C, NH;
    int causal;
    double *qkv, *dout, *att;
} mha_ctx;

static void
mha_fwd(void *p, double *out)
{
    mha_ctx *c = p;

    ck_assert_int_eq(
        asec_attn_forward(out, c->att, c->qkv, c->B, c->T, c->C, c->NH, c->causal),
        ASEC_OK);
}

static void
mha_bwd(void *p, double *out)
{
    mha_ctx *c = p;
    double *o = zeros(c->B * c->T * c->C), *w = zeros(c->T * c->T);

    mha_fwd(c, o);
    memset(out, 0, c->B * c->T * 3 * c->C * sizeof *out);
    ck_assert_int_eq(
        asec_attn_backward(out, w, c->dout, c->qkv, c->att, c->B, c->T, c->C, c->NH),
        ASEC_OK);
    free(o), free(w);
}

static void
mha_check(int causal)
{
    asec_rng *r = make_rng(causal ? "mha-causal" : "mha");
    mha_ctx c = {2, 3, 4, 2, causal, NULL, NULL, NULL};
    size_t nqkv = c.B * c.T * 3 * c.C, no = c.B * c.T * c.C;
    size_t na = c.B * c.NH * c.T * c.T;
    double *R = randn(r, no, 1), *g = zeros(nqkv), *fd = zeros(nqkv), *o = zeros(no);
    double *w = zeros(2 * c.T * c.T), *t = randn(r, nqkv, 1), *tdo = randn(r, no, 1);
    double *tout = zeros(no), *tatt = zeros(na), *tg = zeros(nqkv);

    c.qkv = randn(r, nqkv, 1), c.att = zeros(na), c.dout = R;
    mha_fwd(&c, o);
    ck_assert_int_eq(asec_attn_backward(g, w, R, c.qkv, c.att, c.B, c.T, c.C, c.NH),
                     ASEC_OK);
    fd_gradient(fd, mha_fwd, &c, no, R, c.qkv, nqkv);
    fd_compare(g, fd, nqkv, "multi-head dqkv");
    {
        fd_arg a[1] = {{c.qkv, t, nqkv}};

        mha_fwd(&c, o);
        ck_assert_int_eq(
            asec_attn_forward_tangent(tout, tatt, c.qkv, t, c.att, c.B, c.T, c.C, c.NH),
            ASEC_OK);
        fd_directional(fd, mha_fwd, &c, no, a, 1);
        fd_compare(tout, fd, no, "multi-head forward tangent");
    }
    {
        fd_arg a[2] = {{c.qkv, t, nqkv}, {c.dout, tdo, no}};

        mha_fwd(&c, o);
        ck_assert_int_eq(asec_attn_backward_tangent(tg, w, c.dout, tdo, c.qkv, t, c.att,
                                                    tatt, c.B, c.T, c.C, c.NH),
                         ASEC_OK);
        fd_directional(fd, mha_bwd, &c, nqkv, a, 2);
        fd_compare(tg, fd, nqkv, "multi-head backward tangent");
    }
    free(R), free(g), free(fd), free(o), free(w), free(t), free(tdo), free(tout);
    free(tatt), free(tg), free(c.qkv), free(c.att);
    asec_rng_free(r);
}

START_TEST(test_mha_gradcheck)
{
    mha_check(0);
    mha_check(1);
}
END_TEST

START_TEST(test_mha_matches_single_heads)
{
    /* Head h of the packed kernel equals sdpa on the copied head. */
    asec_rng *r = make_rng("mha-heads");
    size_t B = 2, T = 5, C = 6, NH = 3, HS = 2;
    double *qkv = randn(r, B * T * 3 * C, 1), *out = zeros(B * T * C);
    double *att = zeros(B * NH * T * T);

    ck_assert_int_eq(asec_attn_forward(out, att, qkv, B, T, C, NH, 1), ASEC_OK);
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < NH; h++) {
            sdpa_ctx c = {T,    T,    HS,   HS,   1,   1.0 / sqrt((double)HS),
                          NULL, NULL, NULL, NULL, NULL};
            double q[10], k[10], v[10], o[10], ref[10];

            for (size_t t = 0; t < T; t++)
                for (size_t i = 0; i < HS; i++) {
                    q[t * HS + i] = qkv[(b * T + t) * 3 * C + h * HS + i];
                    k[t * HS + i] = qkv[(b * T + t) * 3 * C + C + h * HS + i];
                    v[t * HS + i] = qkv[(b * T + t) * 3 * C + 2 * C + h * HS + i];
                    o[t * HS + i] = out[(b * T + t) * C + h * HS + i];
                }
            c.q = q, c.k = k, c.v = v;
            sdpa_reference(ref, &c);
            asec_test_allclose(o, ref, T * HS, 1e-13, 1e-14, "head vs reference");
        }
    free(qkv), free(out), free(att);
    asec_rng_free(r);
}
END_TEST

/* ---------------------------------------------------------------- cross-entropy */

typedef struct xent_ctx {
    size_t N, K;
    const int64_t *labels;
    double *logits, *soft, *dloss;
} xent_ctx;

static void
xent_fwd(void *p, double *out)
{
    xent_ctx *c = p;
    double *probs = zeros(c->N * c->K);

    ck_assert_int_eq(asec_attn_xent_forward(out, probs, c->logits, c->labels,
                                            c->labels ? NULL : c->soft, c->N, c->K),
                     ASEC_OK);
    free(probs);
}

/* Also outputs probs, for the tangent of the probabilities. */
static void
xent_probs(void *p, double *out)
{
    xent_ctx *c = p;

    ck_assert_int_eq(asec_attn_xent_forward(NULL, out, c->logits, c->labels,
                                            c->labels ? NULL : c->soft, c->N, c->K),
                     ASEC_OK);
}

static void
xent_bwd(void *p, double *out)
{
    xent_ctx *c = p;
    size_t nz = c->N * c->K;
    double *probs = zeros(nz);

    xent_probs(c, probs);
    memset(out, 0, (c->labels ? 1 : 2) * nz * sizeof *out);
    asec_attn_xent_backward(out, c->labels ? NULL : out + nz, c->dloss, c->logits, probs,
                            c->labels, c->labels ? NULL : c->soft, c->N, c->K);
    free(probs);
}

static void
xent_check(int hard)
{
    asec_rng *r = make_rng(hard ? "xent-hard" : "xent-soft");
    const int64_t labels[3] = {2, 0, 3};
    xent_ctx c = {3, 4, hard ? labels : NULL, NULL, NULL, NULL};
    size_t nz = c.N * c.K;
    double *R = randn(r, c.N, 1), *g = zeros(2 * nz), *fd = zeros(2 * nz);
    double *probs = zeros(nz), *tz = randn(r, nz, 1), *ts = randn(r, nz, 1);
    double *tp = zeros(nz), *tg = zeros(2 * nz), *losses = zeros(c.N);

    c.logits = randn(r, nz, 2), c.soft = zeros(nz), c.dloss = R;
    for (size_t i = 0; i < nz; i++)
        c.soft[i] = fabs(asec_rng_normal(r));
    xent_fwd(&c, losses);
    xent_probs(&c, probs);
    asec_attn_xent_backward(g, hard ? NULL : g + nz, R, c.logits, probs, c.labels,
                            hard ? NULL : c.soft, c.N, c.K);
    fd_gradient(fd, xent_fwd, &c, c.N, R, c.logits, nz);
    fd_compare(g, fd, nz, "xent dlogits");
    if (!hard) {
        fd_gradient(fd, xent_fwd, &c, c.N, R, c.soft, nz);
        fd_compare(g + nz, fd, nz, "xent dsoft");
    }
    /* tangents along (logits, soft) */
    {
        fd_arg a[2] = {{c.logits, tz, nz}, {c.soft, hard ? NULL : ts, nz}};

        asec_attn_xent_tangent(tp, tg, hard ? NULL : tg + nz, R, probs, tz, c.labels,
                               hard ? NULL : c.soft, hard ? NULL : ts, c.N, c.K);
        fd_directional(fd, xent_probs, &c, nz, a, 2);
        fd_compare(tp, fd, nz, "xent probs tangent");
        fd_directional(fd, xent_bwd, &c, hard ? nz : 2 * nz, a, 2);
        fd_compare(tg, fd, hard ? nz : 2 * nz, "xent backward tangent");
    }
    free(R), free(g), free(fd), free(probs), free(tz), free(ts), free(tp), free(tg);
    free(losses), free(c.logits), free(c.soft);
    asec_rng_free(r);
}

START_TEST(test_xent_gradcheck)
{
    xent_check(1);
    xent_check(0);
}
END_TEST

START_TEST(test_xent_values)
{
    /* torch.nn.functional.cross_entropy(torch.tensor([[1., 2., 3.]]),
     * torch.tensor([0]), reduction='none') = 2.4076059644443806; extreme
     * logits stay finite. */
    double z[6] = {1.0, 2.0, 3.0, 1000.0, -1000.0, 0.0}, p[6], l[2];
    int64_t y[2] = {0, 0};

    ck_assert_int_eq(asec_attn_xent_forward(l, p, z, y, NULL, 2, 3), ASEC_OK);
    ck_assert_double_eq_tol(l[0], 2.4076059644443806, 1e-15);
    ck_assert_double_eq_tol(l[1], 0.0, 1e-300);
    ck_assert(p[3] == 1.0);
}
END_TEST

/* ---------------------------------------------------------------- regression */

static const double T2_A1[6] = {1, 0, 0, 1, 1, -1}, T2_A2[6] = {0.5, -0.5, 1, 0, 0, 2};
static const double T2_A3[6] = {1, 1, 0, 1, 2, 0},
                    T2_E[6] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
static const double T2_X[4] = {0.2, 0.1, -0.1, 0.3}, T2_Y[4] = {1, 0, 0, 1};

static void
regression_t2(double s, double lref, const double *gx_ref, const double *gy_ref)
{
    asec_mat x = asec_mat_view((double *)(uintptr_t)T2_X, 2, 2);
    asec_mat y = asec_mat_view((double *)(uintptr_t)T2_Y, 2, 2);
    asec_mat a1 = asec_mat_view((double *)(uintptr_t)T2_A1, 3, 2);
    asec_mat a2 = asec_mat_view((double *)(uintptr_t)T2_A2, 3, 2);
    asec_mat a3 = asec_mat_view((double *)(uintptr_t)T2_A3, 3, 2);
    asec_mat e = asec_mat_view((double *)(uintptr_t)T2_E, 3, 2);
    double gx[4], gy[4], l;
    asec_mat gxm = asec_mat_view(gx, 2, 2), gym = asec_mat_view(gy, 2, 2);

    ck_assert_int_eq(
        asec_attn_regression(&l, &gxm, &gym, &x, &y, &a1, &a2, &a3, &e, s, NULL),
        ASEC_OK);
    /* MATH.md section 9.1 prints 10 significant digits. */
    ck_assert_msg(fabs(l - lref) <= 1e-9 * fabs(lref), "T2 loss %.12g, expected %.12g", l,
                  lref);
    asec_test_allclose(gx, gx_ref, 4, 1e-9, 1e-12, "T2 grad_x");
    asec_test_allclose(gy, gy_ref, 4, 1e-9, 1e-12, "T2 grad_y");
}

START_TEST(test_regression_t2)
{
    const double gx1[4] = {-0.2955260429, 0.4613938398, -0.2605361974, 0.6502484405};
    const double gy1[4] = {2.340530613, 0.7154034114, 1.286049462, 0.491974175};
    const double gx2[4] = {-0.1653574573, 0.2719409002, -0.07743764453, 0.1821831299};
    const double gy2[4] = {2.173696661, 0.781593667, 1.357158694, 0.5064758324};

    regression_t2(1.0, 1.032458066, gx1, gy1);
    regression_t2(0.5, 0.951232095, gx2, gy2);
}
END_TEST

START_TEST(test_regression_t2_flat_direction)
{
    /* T2': n = d, A1 = I, A2 = [[0.5,-0.5],[1,0]] (A2 v = 1 for v = [1,-1]):
     * grad_X has equal columns. */
    double a1d[4] = {1, 0, 0, 1}, a2d[4] = {0.5, -0.5, 1, 0}, gx[4];
    const double ref[4] = {-0.04506729015, -0.04506729015, -0.02182299859,
                           -0.02182299859};
    asec_mat x = asec_mat_view((double *)(uintptr_t)T2_X, 2, 2);
    asec_mat y = asec_mat_view((double *)(uintptr_t)T2_Y, 2, 2);
    asec_mat a1 = asec_mat_view(a1d, 2, 2), a2 = asec_mat_view(a2d, 2, 2);
    asec_mat a3 = asec_mat_view((double *)(uintptr_t)T2_A3, 2, 2);
    asec_mat e = asec_mat_view((double *)(uintptr_t)T2_E, 2, 2),
             g = asec_mat_view(gx, 2, 2);

    ck_assert_int_eq(
        asec_attn_regression(NULL, &g, NULL, &x, &y, &a1, &a2, &a3, &e, 1.0, NULL),
        ASEC_OK);
    asec_test_allclose(gx, ref, 4, 1e-9, 1e-12, "T2' grad_x");
    ck_assert_double_eq_tol(gx[0] - gx[1], 0.0, 1e-15);
    ck_assert_double_eq_tol(gx[2] - gx[3], 0.0, 1e-15);
}
END_TEST

typedef struct reg_ctx {
    size_t n, m, d1, d2, d3, dv;
    double s;
    double *x, *y, *a1, *a2, *a3, *e, *w;
} reg_ctx;

static void
reg_loss(void *p, double *out)
{
    reg_ctx *c = p;
    asec_mat x = asec_mat_view(c->x, c->d1, c->d2), y = asec_mat_view(c->y, c->d3, c->dv);
    asec_mat a1 = asec_mat_view(c->a1, c->n, c->d1),
             a2 = asec_mat_view(c->a2, c->m, c->d2);
    asec_mat a3 = asec_mat_view(c->a3, c->m, c->d3), e = asec_mat_view(c->e, c->n, c->dv);
    asec_mat w = asec_mat_view(c->w, c->n, c->m);

    ck_assert_int_eq(asec_attn_regression(out, NULL, NULL, &x, &y, &a1, &a2, &a3, &e,
                                          c->s, c->w ? &w : NULL),
                     ASEC_OK);
}

START_TEST(test_regression_gradcheck)
{
    asec_rng *r = make_rng("regression");
    reg_ctx c = {4, 5, 3, 2, 3, 2, 0.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    double one = 1.0, gx[6], gy[6], fd[6];
    asec_mat gxm = asec_mat_view(gx, c.d1, c.d2), gym = asec_mat_view(gy, c.d3, c.dv);

    c.x = randn(r, c.d1 * c.d2, 1), c.y = randn(r, c.d3 * c.dv, 1);
    c.a1 = randn(r, c.n * c.d1, 1), c.a2 = randn(r, c.m * c.d2, 1);
    c.a3 = randn(r, c.m * c.d3, 1), c.e = randn(r, c.n * c.dv, 1);
    for (int withw = 0; withw < 2; withw++) {
        asec_mat x = asec_mat_view(c.x, c.d1, c.d2), y = asec_mat_view(c.y, c.d3, c.dv);
        asec_mat a1 = asec_mat_view(c.a1, c.n, c.d1), a2 = asec_mat_view(c.a2, c.m, c.d2);
        asec_mat a3 = asec_mat_view(c.a3, c.m, c.d3), e = asec_mat_view(c.e, c.n, c.dv);
        asec_mat w;

        if (withw)
            c.w = randn(r, c.n * c.m, 1);
        w = asec_mat_view(c.w, c.n, c.m);
        ck_assert_int_eq(asec_attn_regression(NULL, &gxm, &gym, &x, &y, &a1, &a2, &a3, &e,
                                              c.s, c.w ? &w : NULL),
                         ASEC_OK);
        fd_gradient(fd, reg_loss, &c, 1, &one, c.x, c.d1 * c.d2);
        fd_compare(gx, fd, c.d1 * c.d2, "regression grad_x");
        fd_gradient(fd, reg_loss, &c, 1, &one, c.y, c.d3 * c.dv);
        fd_compare(gy, fd, c.d3 * c.dv, "regression grad_y");
    }
    free(c.x), free(c.y), free(c.a1), free(c.a2), free(c.a3), free(c.e), free(c.w);
    asec_rng_free(r);
}
END_TEST

/* ---------------------------------------------------------------- errors and oom */

START_TEST(test_errors)
{
    double buf[64] = {0}, nanbuf[4] = {NAN, 0, 0, 0};
    asec_mat q = asec_mat_view(buf, 2, 2), k = asec_mat_view(buf + 4, 3, 2);
    asec_mat v = asec_mat_view(buf + 10, 3, 2), a = asec_mat_view(buf + 16, 2, 3);
    asec_mat o = asec_mat_view(buf + 22, 2, 2), bad = asec_mat_view(buf + 26, 2, 2);
    asec_mat qn = asec_mat_view(nanbuf, 2, 2);
    int64_t lab[2] = {0, 5};

    ck_assert_int_eq(asec_init(), ASEC_OK);
    /* EBADLEN: att of the wrong shape; causal with T != S; no keys */
    ck_assert_int_eq(asec_attn_sdpa_forward(&o, &bad, &q, &k, &v, 1.0, 0), ASEC_EBADLEN);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "att (2, 2)"));
    ck_assert_int_eq(asec_attn_sdpa_forward(&o, &a, &q, &k, &v, 1.0, 1), ASEC_EBADLEN);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "causal"));
    ck_assert_int_eq(
        asec_attn_sdpa_backward(NULL, NULL, NULL, &bad, &o, &q, &k, &v, &a, 1.0),
        ASEC_EBADLEN);
    ck_assert_int_eq(
        asec_attn_sdpa_forward_tangent(&o, &bad, &q, &k, &v, &a, NULL, NULL, NULL, 1.0),
        ASEC_EBADLEN);
    ck_assert_int_eq(asec_attn_sdpa_backward_tangent(NULL, NULL, NULL, &bad, &a, &o, NULL,
                                                     &q, &k, &v, &a, NULL, NULL, NULL,
                                                     NULL, 1.0),
                     ASEC_EBADLEN);
    /* ENUMERIC: a NaN query makes NaN logits */
    ck_assert_int_eq(asec_attn_sdpa_forward(&o, &a, &qn, &k, &v, 1.0, 0), ASEC_ENUMERIC);
    /* EINVAL: heads that do not divide C */
    ck_assert_int_eq(asec_attn_forward(buf, buf, buf, 1, 1, 5, 2, 0), ASEC_EINVAL);
    ck_assert_int_eq(asec_attn_backward(buf, buf, buf, buf, buf, 1, 1, 4, 0),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_attn_forward_tangent(buf, buf, buf, buf, buf, 1, 1, 3, 2),
                     ASEC_EINVAL);
    ck_assert_int_eq(
        asec_attn_backward_tangent(buf, buf, buf, NULL, buf, buf, buf, buf, 1, 1, 3, 2),
        ASEC_EINVAL);
    /* xent: both or neither targets; a label out of range; a NaN logit */
    ck_assert_int_eq(asec_attn_xent_forward(NULL, buf, buf, lab, buf, 2, 3), ASEC_EINVAL);
    ck_assert_int_eq(asec_attn_xent_forward(NULL, buf, buf, NULL, NULL, 2, 3),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_attn_xent_forward(NULL, buf + 8, buf, lab, NULL, 2, 3),
                     ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "label 5 of row 1"));
    ck_assert_int_eq(asec_attn_xent_forward(NULL, buf + 8, nanbuf, lab, NULL, 1, 3),
                     ASEC_ENUMERIC);
    /* regression: shapes */
    ck_assert_int_eq(
        asec_attn_regression(NULL, NULL, NULL, &q, &q, &k, &k, &k, &q, 1.0, NULL),
        ASEC_EBADLEN);
}
END_TEST

START_TEST(test_regression_oom)
{
    asec_mat x = asec_mat_view((double *)(uintptr_t)T2_X, 2, 2);
    asec_mat y = asec_mat_view((double *)(uintptr_t)T2_Y, 2, 2);
    asec_mat a1 = asec_mat_view((double *)(uintptr_t)T2_A1, 3, 2);
    asec_mat a2 = asec_mat_view((double *)(uintptr_t)T2_A2, 3, 2);
    asec_mat a3 = asec_mat_view((double *)(uintptr_t)T2_A3, 3, 2);
    asec_mat e = asec_mat_view((double *)(uintptr_t)T2_E, 3, 2);
    double gx[4], l;
    asec_mat gxm = asec_mat_view(gx, 2, 2);
    int rc;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    for (long n = 0;; n++) {
        asec_debug_fail_alloc(n);
        rc = asec_attn_regression(&l, &gxm, NULL, &x, &y, &a1, &a2, &a3, &e, 1.0, NULL);
        asec_debug_fail_alloc(-1);
        if (rc == ASEC_OK)
            break;
        ck_assert_int_eq(rc, ASEC_ENOMEM);
        ck_assert_int_lt(n, 100);
    }
}
END_TEST

static Suite *
attn_suite(void)
{
    Suite *s = suite_create("attn");
    TCase *tc;

    tc = tcase_create("core");
    tcase_add_test(tc, test_linear_forward_reference);
    tcase_add_test(tc, test_layernorm_forward_reference);
    tcase_add_test(tc, test_mha_matches_single_heads);
    tcase_add_test(tc, test_xent_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("reference");
    tcase_add_test(tc, test_regression_t2);
    tcase_add_test(tc, test_regression_t2_flat_direction);
    suite_add_tcase(s, tc);

    tc = tcase_create("gradcheck");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_linear_gradcheck);
    tcase_add_test(tc, test_layernorm_gradcheck);
    tcase_add_test(tc, test_gelu);
    tcase_add_test(tc, test_sdpa_gradcheck);
    tcase_add_test(tc, test_sdpa_causal_gradcheck);
    tcase_add_test(tc, test_mha_gradcheck);
    tcase_add_test(tc, test_xent_gradcheck);
    tcase_add_test(tc, test_regression_gradcheck);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("oom");
    tcase_add_test(tc, test_regression_oom);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return asec_test_run(attn_suite());
}
