/* check_attn_invert.c - input recovery from attention weights (attacks/attn_invert.c).
 *
 * TCases: core (recovery at small sizes for every variant: tied, queries
 * given keys, keys given queries, both, the value path, several heads,
 * causal; LM, L-BFGS and the regularised Newton solver with its
 * lambda_min trace; the result struct is output only; symmetry and kernel
 * dimension), reference (MATH.md §9.1 T3 and the PyTorch autograd
 * fixtures of datasets/gen/make_attn_invert_fixtures.py: loss, gradient,
 * Jacobian, J^T v and Hessian-vector products of all eight cases),
 * gradcheck (central differences for the gradient, the Jacobian products
 * and the exact Hessian-vector product; the blockwise Gauss-Newton matrix
 * against J^T J from Jacobian columns; the exact Hessian against its HVP
 * columns), errors (every documented ASEC_E*), oom (fault-injection loops
 * over the plain and the variant paths). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "attnsec/attn_invert.h"
#include "attnsec/io.h"
#include "testutil.h"

#define MAXH 4

/* A random instance: X ~ N(0,1) (d, n), W_h ~ N(0,1)/d, B_h = F_h(X) or,
 * with noisy_b, the row softmax of unrelated logits. */
struct inst {
    size_t d, n, nh;
    asec_mat x, w[MAXH], b[MAXH];
};

static void
inst_make(struct inst *in, size_t d, size_t n, size_t nh, unsigned seed, int causal,
          int noisy_b)
{
    asec_rng *r;

    memset(in, 0, sizeof *in);
    in->d = d;
    in->n = n;
    in->nh = nh;
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, seed, "check_attn_invert"), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&in->x, d, n), ASEC_OK);
    asec_rng_normal_fill(r, in->x.data, d * n);
    for (size_t h = 0; h < nh; h++) {
        ck_assert_int_eq(asec_mat_alloc(&in->w[h], d, d), ASEC_OK);
        ck_assert_int_eq(asec_mat_alloc(&in->b[h], n, n), ASEC_OK);
        asec_rng_normal_fill(r, in->w[h].data, d * d);
        for (size_t i = 0; i < d * d; i++)
            in->w[h].data[i] /= (double)d;
        if (noisy_b) {
            asec_mat z;

            ck_assert_int_eq(asec_mat_alloc(&z, n, n), ASEC_OK);
            asec_rng_normal_fill(r, z.data, n * n);
            for (size_t j = 0; j < n; j++) {
                size_t len = causal ? j + 1 : n;

                ck_assert_int_eq(
                    asec_vec_softmax(in->b[h].data + j * n, z.data + j * n, len),
                    ASEC_OK);
            }
            asec_mat_free(&z);
        } else {
            ck_assert_int_eq(
                asec_attn_invert_attention(&in->b[h], &in->x, &in->w[h], 1.0, causal),
                ASEC_OK);
        }
    }
    asec_rng_free(r);
}

static void
inst_free(struct inst *in)
{
    asec_mat_free(&in->x);
    for (size_t h = 0; h < in->nh; h++) {
        asec_mat_free(&in->w[h]);
        asec_mat_free(&in->b[h]);
    }
}

/* ------------------------------------------------------------------ core */

START_TEST(test_recover_small)
{
    /* The acceptance instance family at 4x8 (W = N(0,1)/d, X = N(0,1)):
     * default settings recover X modulo the symmetry group. */
    for (unsigned seed = 0; seed < 3; seed++) {
        struct inst in;
        asec_attn_invert *ctx;
        asec_attn_invert_result res;
        asec_attn_invert_metrics m;
        asec_rng *r;
        asec_mat xh;
        double tl[400];
        asec_attn_invert_trace tr = {tl, NULL, 400};

        inst_make(&in, 4, 8, 1, seed, 0, 0);
        ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 4, 8, 1, in.w, in.b, NULL),
                         ASEC_OK);
        ck_assert_int_eq(asec_mat_alloc(&xh, 4, 8), ASEC_OK);
        ck_assert_int_eq(asec_rng_alloc_seeded(&r, seed, "attack"), ASEC_OK);
        memset(&res, 0xa5, sizeof res); // output only: garbage in is fine
        ck_assert_int_eq(asec_attn_invert_solve(ctx, &xh, r, &res, &tr), ASEC_OK);
        ck_assert_int_eq(res.converged, 1);
        ck_assert_uint_gt(res.trace_len, 0);
        ck_assert_double_le(tl[res.trace_len - 1], tl[0]);
        ck_assert_int_eq(asec_attn_invert_score(&m, ctx, &xh, &in.x), ASEC_OK);
        ck_assert_int_eq(m.success, 1);
        ck_assert_double_lt(m.orbit_err, 1e-6);
        ck_assert_double_lt(m.out_rel, 1e-10);
        ck_assert_uint_eq(m.ker_dim, 0);
        ck_assert_uint_eq(m.equations, 8 * 7);
        ck_assert_uint_eq(m.unknowns, 32);
        asec_rng_free(r);
        asec_mat_free(&xh);
        asec_attn_invert_free(ctx);
        inst_free(&in);
    }
}
END_TEST

START_TEST(test_recover_lbfgs_multihead_causal)
{
    /* L-BFGS, two heads, causal mask, continuation on: still recovers 4x8. */
    struct inst in;
    asec_attn_invert *ctx;
    asec_attn_invert_options o = ASEC_ATTN_INVERT_OPTIONS_INIT;
    asec_attn_invert_result res;
    asec_attn_invert_metrics m;
    asec_rng *r;
    asec_mat xh;

    inst_make(&in, 4, 8, 2, 11, 1, 0);
    o.causal = 1;
    o.solver = ASEC_ATTN_INVERT_LBFGS;
    o.tol = 1e-8;
    memset(&res, 0xa5, sizeof res); // output only; no traces
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 4, 8, 2, in.w, in.b, &o), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&xh, 4, 8), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 5, "attack"), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_solve(ctx, &xh, r, &res, NULL), ASEC_OK);
    ck_assert_int_eq(res.converged, 1);
    ck_assert_uint_eq(res.trace_len, 0);
    ck_assert_int_eq(asec_attn_invert_score(&m, ctx, &xh, &in.x), ASEC_OK);
    ck_assert_uint_eq(m.equations, 2 * 8 * 7 / 2);
    ck_assert_double_lt(m.orbit_err, 1e-4);
    asec_rng_free(r);
    asec_mat_free(&xh);
    asec_attn_invert_free(ctx);
    inst_free(&in);
}
END_TEST

/* Recover a simulated instance of a variant: X_q, X_k ~ N(0,1) (d, n)
 * (equal when tied), W_h ~ N(0,1)/d, B_h = rowsoftmax(X_q^T W_h X_k),
 * with values W_V ~ N(0,1)/d and O_h = F_h X_k^T W_V.  Returns success
 * (orbit error < 1e-6); *lmin_ok reports a finite lambda_min trace. */
static int
recover_variant(asec_attn_invert_inputs inputs, size_t d, size_t n, size_t nh, size_t dv,
                asec_attn_invert_solver solver, unsigned seed, int *lmin_ok)
{
    asec_attn_invert_options o = ASEC_ATTN_INVERT_OPTIONS_INIT;
    asec_mat w[MAXH], b[MAXH], wv[MAXH], om[MAXH], xq, xk, xt, xh;
    asec_attn_invert *ctx;
    asec_attn_invert_result res;
    asec_attn_invert_metrics m;
    asec_rng *r;
    double tl[300], tm[300];
    asec_attn_invert_trace tr = {tl, tm, 300};
    size_t xr = inputs == ASEC_ATTN_INVERT_BOTH ? 2 * d : d;
    int ok;

    ck_assert_int_eq(asec_rng_alloc_seeded(&r, seed, "check_attn_invert/variant"),
                     ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&xq, d, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&xk, d, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&xt, xr, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&xh, xr, n), ASEC_OK);
    asec_rng_normal_fill(r, xq.data, d * n);
    if (inputs == ASEC_ATTN_INVERT_TIED)
        ck_assert_int_eq(asec_mat_copy(&xk, &xq), ASEC_OK);
    else
        asec_rng_normal_fill(r, xk.data, d * n);
    for (size_t h = 0; h < nh; h++) {
        ck_assert_int_eq(asec_mat_alloc(&w[h], d, d), ASEC_OK);
        ck_assert_int_eq(asec_mat_alloc(&b[h], n, n), ASEC_OK);
        asec_rng_normal_fill(r, w[h].data, d * d);
        for (size_t i = 0; i < d * d; i++)
            w[h].data[i] /= (double)d;
        ck_assert_int_eq(asec_attn_invert_attention_qk(&b[h], &xq, &xk, &w[h], 1.0, 0),
                         ASEC_OK);
        if (dv > 0) {
            asec_mat v;

            ck_assert_int_eq(asec_mat_alloc(&wv[h], d, dv), ASEC_OK);
            ck_assert_int_eq(asec_mat_alloc(&om[h], n, dv), ASEC_OK);
            ck_assert_int_eq(asec_mat_alloc(&v, n, dv), ASEC_OK);
            asec_rng_normal_fill(r, wv[h].data, d * dv);
            for (size_t i = 0; i < d * dv; i++)
                wv[h].data[i] /= (double)d;
            ck_assert_int_eq(
                asec_mat_gemm(&v, 1.0, &xk, ASEC_TRANS, &wv[h], ASEC_NOTRANS, 0.0),
                ASEC_OK);
            ck_assert_int_eq(
                asec_mat_gemm(&om[h], 1.0, &b[h], ASEC_NOTRANS, &v, ASEC_NOTRANS, 0.0),
                ASEC_OK);
            asec_mat_free(&v);
        }
    }
    o.inputs = inputs;
    o.solver = solver;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, d, n, nh, w, b, &o), ASEC_OK);
    if (inputs == ASEC_ATTN_INVERT_QUERY)
        ck_assert_int_eq(asec_attn_invert_set_known(ctx, &xk), ASEC_OK);
    if (inputs == ASEC_ATTN_INVERT_KEY)
        ck_assert_int_eq(asec_attn_invert_set_known(ctx, &xq), ASEC_OK);
    if (dv > 0)
        ck_assert_int_eq(asec_attn_invert_set_values(ctx, dv, wv, om, 1.0), ASEC_OK);
    for (size_t i = 0; i < d; i++) {
        const asec_mat *top = inputs == ASEC_ATTN_INVERT_KEY ? &xk : &xq;

        memcpy(asec_mat_at(&xt, i, 0), asec_mat_at(top, i, 0), n * sizeof(double));
        if (inputs == ASEC_ATTN_INVERT_BOTH)
            memcpy(asec_mat_at(&xt, d + i, 0), asec_mat_at(&xk, i, 0),
                   n * sizeof(double));
    }
    ck_assert_int_eq(asec_attn_invert_solve(ctx, &xh, r, &res, &tr), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_score(&m, ctx, &xh, &xt), ASEC_OK);
    ok = m.success;
    if (lmin_ok != NULL) {
        *lmin_ok = res.trace_len > 0;
        for (size_t i = 0; i < res.trace_len; i++)
            *lmin_ok = *lmin_ok && isfinite(tm[i]);
    }
    if (getenv("ATTN_INVERT_VERBOSE"))
        fprintf(stderr,
                "inputs %d d %zu n %zu H %zu dv %zu solver %d seed %u: starts %zu "
                "iters %zu out_rel %.2e orbit %.2e w %.2e naive %.2e -> %d\n",
                (int)inputs, d, n, nh, dv, (int)solver, seed, res.starts, res.iterations,
                m.out_rel, m.orbit_err, m.orbit_w_err, m.naive_err, ok);
    asec_attn_invert_free(ctx);
    for (size_t h = 0; h < nh; h++) {
        asec_mat_free(&w[h]);
        asec_mat_free(&b[h]);
        if (dv > 0) {
            asec_mat_free(&wv[h]);
            asec_mat_free(&om[h]);
        }
    }
    asec_mat_free(&xq);
    asec_mat_free(&xk);
    asec_mat_free(&xt);
    asec_mat_free(&xh);
    asec_rng_free(r);
    return ok;
}

START_TEST(test_recover_variants)
{
    /* Separate inputs (query given the keys, keys given the queries, both
     * with two heads) and the value path, at 4x8, three seeds each. */
    static const struct {
        asec_attn_invert_inputs inputs;
        size_t nh, dv;
    } v[] = {{ASEC_ATTN_INVERT_QUERY, 1, 0},
             {ASEC_ATTN_INVERT_KEY, 1, 0},
             {ASEC_ATTN_INVERT_BOTH, 2, 0},
             {ASEC_ATTN_INVERT_TIED, 1, 4},
             {ASEC_ATTN_INVERT_BOTH, 1, 4}};

    for (unsigned seed = 0; seed < 3; seed++)
        ck_assert_int_eq(recover_variant(v[_i].inputs, 4, 8, v[_i].nh, v[_i].dv,
                                         ASEC_ATTN_INVERT_LM, seed, NULL),
                         1);
}
END_TEST

START_TEST(test_recover_newton)
{
    /* The regularised Newton solver on the exact Hessian recovers 4x8
     * and records lambda_min(H) at every iteration. */
    for (unsigned seed = 0; seed < 3; seed++) {
        int lmin_ok = 0;

        ck_assert_int_eq(recover_variant(ASEC_ATTN_INVERT_TIED, 4, 8, 1, 0,
                                         ASEC_ATTN_INVERT_NEWTON, seed, &lmin_ok),
                         1);
        ck_assert_int_eq(lmin_ok, 1);
    }
}
END_TEST

START_TEST(test_symmetry_and_kernel)
{
    /* F(-X) = F(X); with W = Q K^T of rank 2 in d = 4, dim ker W^T = 2 and
     * x_j -> x_j + v (v in ker W^T) leaves F unchanged; the score sees
     * -X + v 1^T as a perfect recovery. */
    size_t d = 4, n = 6;
    struct inst in;
    asec_mat q, k, f1, f2, xs;
    asec_attn_invert *ctx;
    asec_attn_invert_metrics m;
    asec_rng *r;
    double v[4];

    inst_make(&in, d, n, 1, 3, 0, 0);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 9, "kernel"), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&q, d, 2), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&k, d, 2), ASEC_OK);
    asec_rng_normal_fill(r, q.data, 2 * d);
    asec_rng_normal_fill(r, k.data, 2 * d);
    ck_assert_int_eq(asec_mat_gemm(&in.w[0], 0.5, &q, ASEC_NOTRANS, &k, ASEC_TRANS, 0.0),
                     ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_attention(&in.b[0], &in.x, &in.w[0], 1.0, 0),
                     ASEC_OK);
    // v in ker W^T = ker (K Q^T): any v orthogonal to the columns of K... W^T v
    // = K Q^T v = 0 when Q^T v = 0; take v = the cross-product-like
    // projection of a random vector off span(Q)
    {
        double a[4] = {0.3, -1.0, 0.7, 0.2}, g[4], qq[4];
        asec_mat am = asec_mat_view(a, 4, 1), gm = asec_mat_view(g, 2, 1);
        asec_mat qm = asec_mat_view(qq, 2, 2), coef = asec_mat_view(v, 2, 1);

        ck_assert_int_eq(asec_mat_gemm(&gm, 1.0, &q, ASEC_TRANS, &am, ASEC_NOTRANS, 0.0),
                         ASEC_OK);
        ck_assert_int_eq(asec_mat_gemm(&qm, 1.0, &q, ASEC_TRANS, &q, ASEC_NOTRANS, 0.0),
                         ASEC_OK);
        ck_assert_int_eq(asec_mat_cholesky_solve(&gm, &qm), ASEC_OK);
        memcpy(v, a, sizeof a);
        coef = asec_mat_view(v, 4, 1);
        ck_assert_int_eq(
            asec_mat_gemm(&coef, -1.0, &q, ASEC_NOTRANS, &gm, ASEC_NOTRANS, 1.0),
            ASEC_OK);
    }
    ck_assert_int_eq(asec_mat_alloc(&xs, d, n), ASEC_OK);
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < n; j++)
            *asec_mat_at(&xs, i, j) = -*asec_mat_at(&in.x, i, j) + v[i];
    ck_assert_int_eq(asec_mat_alloc(&f1, n, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&f2, n, n), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_attention(&f1, &in.x, &in.w[0], 1.0, 0), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_attention(&f2, &xs, &in.w[0], 1.0, 0), ASEC_OK);
    asec_test_allclose(f2.data, f1.data, n * n, 1e-12, 1e-15, "F(-X + v 1^T)");
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, d, n, 1, in.w, in.b, NULL), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_score(&m, ctx, &xs, &in.x), ASEC_OK);
    ck_assert_uint_eq(m.ker_dim, 2);
    ck_assert_double_lt(m.orbit_err, 1e-12);
    ck_assert_double_lt(m.orbit_w_err, 1e-12);
    ck_assert_int_eq(m.success, 1);
    ck_assert_double_gt(m.naive_err, 1e-3);
    asec_attn_invert_free(ctx);
    asec_mat_free(&xs);
    asec_mat_free(&f1);
    asec_mat_free(&f2);
    asec_mat_free(&q);
    asec_mat_free(&k);
    asec_rng_free(r);
    inst_free(&in);
}
END_TEST

/* ------------------------------------------------------------- reference */

START_TEST(test_t3)
{
    /* MATH.md §9.1 T3: W = [[1,0.5],[0,1]], X = [[0.1,0.2,0.3],[0.4,-0.1,0]],
     * B = all 1/3, s = 1, no regulariser. */
    double w[4] = {1, 0.5, 0, 1}, x[6] = {0.1, 0.2, 0.3, 0.4, -0.1, 0.0}, b[9], g[6];
    const double want_g[6] = {0.003044912241, -0.001976431593, 0.0009223220414,
                              0.01399716495,  -0.00585061639,  -0.001044972287};
    asec_mat wm = asec_mat_view(w, 2, 2), bm = asec_mat_view(b, 3, 3);
    asec_mat xm = asec_mat_view(x, 2, 3), gm = asec_mat_view(g, 2, 3);
    asec_attn_invert *ctx;
    double loss;

    for (size_t i = 0; i < 9; i++)
        b[i] = 1.0 / 3.0;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 2, 3, 1, &wm, &bm, NULL), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_eval(ctx, &loss, &gm, &xm), ASEC_OK);
    /* T3 is printed to 10 significant digits: rtol 1e-9. */
    asec_test_allclose(&loss, (const double[]){0.00156524621}, 1, 1e-9, 0, "T3 loss");
    asec_test_allclose(g, want_g, 6, 1e-9, 0, "T3 grad");
    asec_attn_invert_free(ctx);
}
END_TEST

/* Load datasets/fixtures/attn_invert/<case>_<key>.npy; *f owns the data. */
static const asec_io_tensor *
load_fixture(asec_io_file **f, const char *name, const char *key)
{
    char rel[128];

    snprintf(rel, sizeof rel, "fixtures/attn_invert/%s_%s.npy", name, key);
    if (asec_io_open(f, asec_test_datafile(rel), ASEC_IO_NPY, ASEC_IO_LOAD_DOUBLE,
                     NULL) != ASEC_OK)
        ck_abort_msg("%s", asec_errmsg());
    return asec_io_file_tensor(*f, 0);
}

/* One PyTorch case of datasets/gen/make_attn_invert_fixtures.py: loss,
 * gradient, the Jacobian of the stacked residual (by unit JVPs), J^T v
 * and a Hessian-vector product, all to 1e-10 relative. */
static void
check_fixture(const char *name)
{
    enum { NF = 13 };
    asec_io_file *fs[NF] = {NULL};
    const asec_io_tensor *tp = load_fixture(&fs[0], name, "params");
    const asec_io_tensor *tx = load_fixture(&fs[1], name, "x");
    const asec_io_tensor *tw = load_fixture(&fs[2], name, "w");
    const asec_io_tensor *tb = load_fixture(&fs[3], name, "b");
    const asec_io_tensor *tl = load_fixture(&fs[4], name, "loss");
    const asec_io_tensor *tg = load_fixture(&fs[5], name, "grad");
    const asec_io_tensor *tj = load_fixture(&fs[6], name, "jac");
    const asec_io_tensor *te = load_fixture(&fs[7], name, "dir");
    const asec_io_tensor *th = load_fixture(&fs[8], name, "hvp");
    size_t nh = tw->shape[0], d = tw->shape[1], n = tb->shape[1];
    size_t xr = tx->shape[0], dm = xr * n, dv, nres;
    asec_attn_invert_options o = ASEC_ATTN_INVERT_OPTIONS_INIT;
    asec_mat w[MAXH], b[MAXH], x = asec_mat_view(tx->data, xr, n), g, e, col, v, jtv, ref;
    asec_mat ev = asec_mat_view(te->data, xr, n);
    asec_attn_invert *ctx;
    double loss, *jac;

    ck_assert_uint_eq(tp->shape[0], 6);
    ck_assert_uint_le(nh, MAXH);
    o.scale = tp->data[0];
    o.causal = tp->data[1] != 0;
    o.lam = tp->data[2];
    o.inputs = (asec_attn_invert_inputs)tp->data[3];
    dv = (size_t)tp->data[5];
    nres = nh * n * (n + dv);
    for (size_t h = 0; h < nh; h++) {
        w[h] = asec_mat_view(tw->data + h * d * d, d, d);
        b[h] = asec_mat_view(tb->data + h * n * n, n, n);
    }
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, d, n, nh, w, b, &o), ASEC_OK);
    if (o.inputs == ASEC_ATTN_INVERT_QUERY || o.inputs == ASEC_ATTN_INVERT_KEY) {
        const asec_io_tensor *tk = load_fixture(&fs[9], name, "known");
        asec_mat km = asec_mat_view(tk->data, d, n);

        ck_assert_int_eq(asec_attn_invert_set_known(ctx, &km), ASEC_OK);
    }
    if (dv > 0) {
        const asec_io_tensor *tv = load_fixture(&fs[10], name, "wv");
        const asec_io_tensor *to = load_fixture(&fs[11], name, "o");
        asec_mat wv[MAXH], om[MAXH];

        for (size_t h = 0; h < nh; h++) {
            wv[h] = asec_mat_view(tv->data + h * d * dv, d, dv);
            om[h] = asec_mat_view(to->data + h * n * dv, n, dv);
        }
        ck_assert_int_eq(asec_attn_invert_set_values(ctx, dv, wv, om, tp->data[4]),
                         ASEC_OK);
    }
    ck_assert_int_eq(asec_mat_alloc(&g, xr, n), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_eval(ctx, &loss, &g, &x), ASEC_OK);
    asec_test_allclose(&loss, tl->data, 1, 1e-10, 1e-12, "fixture loss");
    asec_test_allclose(g.data, tg->data, dm, 1e-10, 1e-12, "fixture gradient");

    /* The Jacobian, column by column from unit-direction JVPs. */
    jac = malloc(nres * dm * sizeof(double));
    ck_assert_ptr_nonnull(jac);
    ck_assert_int_eq(asec_mat_alloc(&e, xr, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&col, nh * n, n + dv), ASEC_OK);
    for (size_t c = 0; c < dm; c++) {
        asec_mat_fill(&e, 0.0);
        e.data[c] = 1.0;
        ck_assert_int_eq(asec_attn_invert_jvp(ctx, &col, &x, &e), ASEC_OK);
        for (size_t r = 0; r < nres; r++)
            jac[r * dm + c] = col.data[r];
    }
    asec_test_allclose(jac, tj->data, nres * dm, 1e-10, 1e-12, "fixture Jacobian");

    /* VJP = J^T v with the fixture's J. */
    ck_assert_int_eq(asec_mat_alloc(&v, nh * n, n + dv), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&jtv, xr, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&ref, xr, n), ASEC_OK);
    for (size_t i = 0; i < nres; i++)
        v.data[i] = sin(1.0 + (double)i);
    {
        asec_mat jm = asec_mat_view(tj->data, nres, dm);
        asec_mat rv = asec_mat_view(ref.data, dm, 1), vv = asec_mat_view(v.data, nres, 1);

        ck_assert_int_eq(asec_mat_gemm(&rv, 1.0, &jm, ASEC_TRANS, &vv, ASEC_NOTRANS, 0.0),
                         ASEC_OK);
    }
    ck_assert_int_eq(asec_attn_invert_vjp(ctx, &jtv, &x, &v), ASEC_OK);
    asec_test_allclose(jtv.data, ref.data, dm, 1e-10, 1e-12, "fixture J^T v");

    /* The exact Hessian-vector product against autograd's double backward. */
    ck_assert_int_eq(asec_attn_invert_hvp(ctx, &jtv, &x, &ev), ASEC_OK);
    asec_test_allclose(jtv.data, th->data, dm, 1e-10, 1e-12, "fixture Hessian e");

    free(jac);
    asec_mat_free(&g);
    asec_mat_free(&e);
    asec_mat_free(&col);
    asec_mat_free(&v);
    asec_mat_free(&jtv);
    asec_mat_free(&ref);
    asec_attn_invert_free(ctx);
    for (size_t i = 0; i < NF; i++)
        asec_io_file_free(fs[i]);
}

START_TEST(test_fixture)
{
    static const char *const cases[] = {"plain", "causal", "heads",  "query",
                                        "key",   "both",   "values", "both_values"};

    check_fixture(cases[_i]);
}
END_TEST

/* ------------------------------------------------------------- gradcheck */

static void
gradcheck_case(int causal, size_t nh, double scale, double lam)
{
    size_t d = 3, n = 5, dn = d * n;
    struct inst in;
    asec_attn_invert_options o = ASEC_ATTN_INVERT_OPTIONS_INIT;
    asec_attn_invert *ctx;
    asec_mat g, xp, h, e, col;
    double loss, lp, lm, *jac;

    inst_make(&in, d, n, nh, 21 + (unsigned)nh, causal, 1);
    o.causal = causal;
    o.scale = scale;
    o.lam = lam;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, d, n, nh, in.w, in.b, &o), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&g, d, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&xp, d, n), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_eval(ctx, &loss, &g, &in.x), ASEC_OK);
    /* Central differences, eps = 1e-6 max(1, |x|) (STYLE.md B10). */
    for (size_t i = 0; i < dn; i++) {
        double eps = 1e-6 * fmax(1.0, fabs(in.x.data[i]));

        ck_assert_int_eq(asec_mat_copy(&xp, &in.x), ASEC_OK);
        xp.data[i] += eps;
        ck_assert_int_eq(asec_attn_invert_eval(ctx, &lp, NULL, &xp), ASEC_OK);
        xp.data[i] -= 2 * eps;
        ck_assert_int_eq(asec_attn_invert_eval(ctx, &lm, NULL, &xp), ASEC_OK);
        ck_assert_double_lt(asec_test_relerr(g.data[i], (lp - lm) / (2 * eps), 1e-8),
                            1e-6);
    }
    /* J by JVP columns: against central differences of F, and J^T J
     * against the assembled Gauss-Newton matrix. */
    jac = malloc(nh * n * n * dn * sizeof(double));
    ck_assert_ptr_nonnull(jac);
    ck_assert_int_eq(asec_mat_alloc(&e, d, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&col, nh * n, n), ASEC_OK);
    for (size_t c = 0; c < dn; c++) {
        double eps = 1e-6;

        asec_mat_fill(&e, 0.0);
        e.data[c] = 1.0;
        ck_assert_int_eq(asec_attn_invert_jvp(ctx, &col, &in.x, &e), ASEC_OK);
        for (size_t r = 0; r < nh * n * n; r++)
            jac[r * dn + c] = col.data[r];
        for (size_t hh = 0; hh < nh; hh++) {
            asec_mat fp, fm;

            ck_assert_int_eq(asec_mat_alloc(&fp, n, n), ASEC_OK);
            ck_assert_int_eq(asec_mat_alloc(&fm, n, n), ASEC_OK);
            ck_assert_int_eq(asec_mat_copy(&xp, &in.x), ASEC_OK);
            xp.data[c] += eps;
            ck_assert_int_eq(
                asec_attn_invert_attention(&fp, &xp, &in.w[hh], scale, causal), ASEC_OK);
            xp.data[c] -= 2 * eps;
            ck_assert_int_eq(
                asec_attn_invert_attention(&fm, &xp, &in.w[hh], scale, causal), ASEC_OK);
            for (size_t r = 0; r < n * n; r++)
                ck_assert_double_lt(fabs(jac[(hh * n * n + r) * dn + c] -
                                         (fp.data[r] - fm.data[r]) / (2 * eps)),
                                    1e-8);
            asec_mat_free(&fp);
            asec_mat_free(&fm);
        }
    }
    ck_assert_int_eq(asec_mat_alloc(&h, dn, dn), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_gauss_newton(ctx, &h, &in.x), ASEC_OK);
    {
        asec_mat jm = asec_mat_view(jac, nh * n * n, dn), ref;

        ck_assert_int_eq(asec_mat_alloc(&ref, dn, dn), ASEC_OK);
        ck_assert_int_eq(
            asec_mat_gemm_ref(&ref, 1.0, &jm, ASEC_TRANS, &jm, ASEC_NOTRANS, 0.0),
            ASEC_OK);
        asec_test_allclose(h.data, ref.data, dn * dn, 1e-10, 1e-14, "J^T J");
        asec_mat_free(&ref);
    }
    free(jac);
    asec_mat_free(&h);
    asec_mat_free(&e);
    asec_mat_free(&col);
    asec_mat_free(&g);
    asec_mat_free(&xp);
    asec_attn_invert_free(ctx);
    inst_free(&in);
}

/* A random problem of any variant at an arbitrary point x (r, n): W_h ~
 * N(0,1)/d, B_h a row softmax of unrelated logits, the given input and
 * the value path (W_V ~ N(0,1)/d, O ~ N(0,1)) when asked for. */
static asec_attn_invert *
variant_make(asec_mat *x, size_t d, size_t n, size_t nh, int causal,
             asec_attn_invert_inputs inputs, size_t dv, double lam, unsigned seed)
{
    struct inst in;
    asec_attn_invert_options o = ASEC_ATTN_INVERT_OPTIONS_INIT;
    asec_attn_invert *ctx;
    asec_rng *r;
    size_t xr = inputs == ASEC_ATTN_INVERT_BOTH ? 2 * d : d;

    inst_make(&in, d, n, nh, seed, causal, 1);
    o.causal = causal;
    o.inputs = inputs;
    o.lam = lam;
    o.scale = 0.9;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, d, n, nh, in.w, in.b, &o), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, seed, "variant"), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(x, xr, n), ASEC_OK);
    asec_rng_normal_fill(r, x->data, xr * n);
    if (inputs == ASEC_ATTN_INVERT_QUERY || inputs == ASEC_ATTN_INVERT_KEY)
        ck_assert_int_eq(asec_attn_invert_set_known(ctx, &in.x), ASEC_OK);
    if (dv > 0) {
        asec_mat wv[MAXH], om[MAXH];

        for (size_t h = 0; h < nh; h++) {
            ck_assert_int_eq(asec_mat_alloc(&wv[h], d, dv), ASEC_OK);
            ck_assert_int_eq(asec_mat_alloc(&om[h], n, dv), ASEC_OK);
            asec_rng_normal_fill(r, wv[h].data, d * dv);
            asec_rng_normal_fill(r, om[h].data, n * dv);
            for (size_t i = 0; i < d * dv; i++)
                wv[h].data[i] /= (double)d;
        }
        ck_assert_int_eq(asec_attn_invert_set_values(ctx, dv, wv, om, 0.8), ASEC_OK);
        for (size_t h = 0; h < nh; h++) {
            asec_mat_free(&wv[h]);
            asec_mat_free(&om[h]);
        }
    }
    asec_rng_free(r);
    inst_free(&in);
    return ctx;
}

/* Gradient and exact Hessian-vector products against central differences
 * (eps = 1e-6 max(1, |x|), STYLE.md B10); the assembled Gauss-Newton
 * matrix against J^T J from JVP columns; the exact Hessian against its
 * HVP columns and symmetry. */
static void
gradcheck_variant(asec_attn_invert_inputs inputs, size_t nh, int causal, size_t dv,
                  double lam)
{
    size_t d = 3, n = 5, nres = nh * n * (n + dv), xr, dm;
    asec_attn_invert *ctx;
    asec_mat x, g, gp, gm, xp, hv, e, col, h, ref, hs;
    double loss, lp, lm, *jac;

    ctx = variant_make(&x, d, n, nh, causal, inputs, dv, lam, 40 + (unsigned)inputs);
    xr = x.rows;
    dm = xr * n;
    ck_assert_int_eq(asec_mat_alloc(&g, xr, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&gp, xr, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&gm, xr, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&xp, xr, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&hv, xr, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&e, xr, n), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&col, nh * n, n + dv), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&h, dm, dm), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&ref, dm, dm), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&hs, dm, dm), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_eval(ctx, &loss, &g, &x), ASEC_OK);
    jac = malloc(nres * dm * sizeof(double));
    ck_assert_ptr_nonnull(jac);
    ck_assert_int_eq(asec_attn_invert_hessian(ctx, &hs, &x), ASEC_OK);
    for (size_t i = 0; i < dm; i++) {
        double eps = 1e-6 * fmax(1.0, fabs(x.data[i]));

        ck_assert_int_eq(asec_mat_copy(&xp, &x), ASEC_OK);
        xp.data[i] += eps;
        ck_assert_int_eq(asec_attn_invert_eval(ctx, &lp, &gp, &xp), ASEC_OK);
        xp.data[i] -= 2 * eps;
        ck_assert_int_eq(asec_attn_invert_eval(ctx, &lm, &gm, &xp), ASEC_OK);
        ck_assert_double_lt(asec_test_relerr(g.data[i], (lp - lm) / (2 * eps), 1e-8),
                            1e-6);
        // column i of the Hessian = d grad / dx_i
        asec_mat_fill(&e, 0.0);
        e.data[i] = 1.0;
        ck_assert_int_eq(asec_attn_invert_hvp(ctx, &hv, &x, &e), ASEC_OK);
        for (size_t k = 0; k < dm; k++) {
            ck_assert_double_lt(
                asec_test_relerr(hv.data[k], (gp.data[k] - gm.data[k]) / (2 * eps), 1e-7),
                1e-5);
            ck_assert_double_lt(fabs(hs.data[k * dm + i] - hv.data[k]),
                                1e-12 * (1.0 + fabs(hv.data[k])));
        }
        ck_assert_int_eq(asec_attn_invert_jvp(ctx, &col, &x, &e), ASEC_OK);
        for (size_t r = 0; r < nres; r++)
            jac[r * dm + i] = col.data[r];
    }
    for (size_t i = 0; i < dm; i++)
        for (size_t k = 0; k < dm; k++)
            ck_assert_double_eq(hs.data[i * dm + k], hs.data[k * dm + i]);
    ck_assert_int_eq(asec_attn_invert_gauss_newton(ctx, &h, &x), ASEC_OK);
    {
        asec_mat jm = asec_mat_view(jac, nres, dm);

        ck_assert_int_eq(
            asec_mat_gemm_ref(&ref, 1.0, &jm, ASEC_TRANS, &jm, ASEC_NOTRANS, 0.0),
            ASEC_OK);
        asec_test_allclose(h.data, ref.data, dm * dm, 1e-10, 1e-14, "variant J^T J");
    }
    free(jac);
    asec_mat_free(&x);
    asec_mat_free(&g);
    asec_mat_free(&gp);
    asec_mat_free(&gm);
    asec_mat_free(&xp);
    asec_mat_free(&hv);
    asec_mat_free(&e);
    asec_mat_free(&col);
    asec_mat_free(&h);
    asec_mat_free(&ref);
    asec_mat_free(&hs);
    asec_attn_invert_free(ctx);
}

START_TEST(test_gradcheck_variants)
{
    /* _i: 0 tied, 1 query, 2 key, 3 both (no values); 4..7 the same with
     * a value path, two heads and the causal mask. */
    size_t k = (size_t)_i;

    gradcheck_variant((asec_attn_invert_inputs)(k % 4), k < 4 ? 1 : 2, k >= 4,
                      k < 4 ? 0 : 2, k == 3 ? 0.05 : 0.0);
}
END_TEST

START_TEST(test_gradcheck_plain)
{
    gradcheck_case(0, 1, 1.0, 0.0);
}
END_TEST

START_TEST(test_gradcheck_causal_heads_ridge)
{
    gradcheck_case(1, 3, 0.7, 0.05);
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(test_errors)
{
    struct inst in;
    asec_attn_invert *ctx = (asec_attn_invert *)&in;
    asec_attn_invert_options o = ASEC_ATTN_INVERT_OPTIONS_INIT;
    asec_mat bad, xh, big_w, big_b;
    asec_attn_invert_metrics m;
    asec_rng *r;
    double loss;

    inst_make(&in, 3, 5, 1, 1, 0, 0);
    /* ASEC_EINVAL: n < 2, options out of range or of another version. */
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 1, 1, in.w, in.b, NULL),
                     ASEC_EINVAL);
    ck_assert_ptr_null(ctx);
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 0, in.w, in.b, NULL),
                     ASEC_EINVAL);
    o.scale = -1;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, in.b, &o), ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "scale"));
    o.scale = 1;
    o.version = 99;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, in.b, &o), ASEC_EINVAL);
    o.version = ASEC_ATTN_INVERT_OPTIONS_VERSION;
    o.restarts = 0;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, in.b, &o), ASEC_EINVAL);
    o.restarts = 1;
    o.tol = 0;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, in.b, &o), ASEC_EINVAL);
    o.tol = 1e-10;
    /* ASEC_EBADLEN: W or B of the wrong shape, x of the wrong shape. */
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 4, 5, 1, in.w, in.b, NULL),
                     ASEC_EBADLEN);
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 6, 1, in.w, in.b, NULL),
                     ASEC_EBADLEN);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "B[0]"));
    /* ASEC_ENUMERIC: NaN in B or W. */
    ck_assert_int_eq(asec_mat_alloc(&bad, 5, 5), ASEC_OK);
    ck_assert_int_eq(asec_mat_copy(&bad, &in.b[0]), ASEC_OK);
    bad.data[7] = NAN;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, &bad, NULL),
                     ASEC_ENUMERIC);
    {
        asec_mat wbad;

        ck_assert_int_eq(asec_mat_alloc(&wbad, 3, 3), ASEC_OK);
        wbad.data[4] = INFINITY;
        ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, &wbad, in.b, NULL),
                         ASEC_ENUMERIC);
        asec_mat_free(&wbad);
    }
    /* ASEC_EFORMAT: a row not summing to 1; a negative entry; mass above
     * the diagonal under a causal mask. */
    ck_assert_int_eq(asec_mat_copy(&bad, &in.b[0]), ASEC_OK);
    bad.data[7] += 1e-3;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, &bad, NULL),
                     ASEC_EFORMAT);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "row 1"));
    ck_assert_int_eq(asec_mat_copy(&bad, &in.b[0]), ASEC_OK);
    bad.data[0] = -0.1;
    bad.data[1] += 0.1 + in.b[0].data[0];
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, &bad, NULL),
                     ASEC_EFORMAT);
    o.causal = 1;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, in.b, &o), ASEC_EFORMAT);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "causal"));
    o.causal = 0;
    /* ASEC_EBADLEN on eval / jvp / score with a wrong x. */
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, in.b, NULL), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_eval(ctx, &loss, NULL, &bad), ASEC_EBADLEN);
    ck_assert_int_eq(asec_attn_invert_score(&m, ctx, &bad, &in.x), ASEC_EBADLEN);
    ck_assert_int_eq(asec_attn_invert_jvp(ctx, &bad, &in.x, &in.x), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_vjp(ctx, &in.x, &in.x, &in.x), ASEC_EBADLEN);
    /* ASEC_EINVAL: scoring against a zero truth. */
    ck_assert_int_eq(asec_mat_alloc(&xh, 3, 5), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_score(&m, ctx, &in.x, &xh), ASEC_EINVAL);
    /* ASEC_ENUMERIC: a non-finite logit. */
    xh.data[0] = INFINITY;
    ck_assert_int_eq(asec_attn_invert_eval(ctx, &loss, NULL, &xh), ASEC_ENUMERIC);
    ck_assert_int_eq(asec_attn_invert_attention(&bad, &xh, &in.w[0], 1.0, 0),
                     ASEC_ENUMERIC);
    ck_assert_int_eq(asec_attn_invert_attention(&bad, &xh, &in.w[0], 0.0, 0),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_attn_invert_attention(&bad, &xh, &xh, 1.0, 0), ASEC_EBADLEN);
    asec_attn_invert_free(ctx);
    /* ASEC_ELIMIT: the Gauss-Newton matrix beyond the unknowns cap. */
    ck_assert_int_eq(asec_mat_alloc(&big_w, 64, 64), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&big_b, 65, 65), ASEC_OK);
    for (size_t j = 0; j < 65; j++)
        *asec_mat_at(&big_b, j, 0) = 1.0;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 64, 65, 1, &big_w, &big_b, NULL),
                     ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 1, "x"), ASEC_OK);
    {
        asec_mat xb;

        ck_assert_int_eq(asec_mat_alloc(&xb, 64, 65), ASEC_OK);
        asec_attn_invert_result res;

        memset(&res, 0xa5, sizeof res);
        ck_assert_int_eq(asec_attn_invert_solve(ctx, &xb, r, &res, NULL), ASEC_ELIMIT);
        ck_assert_uint_eq(res.starts, 0); // zeroed also on failure
        ck_assert_uint_eq(res.trace_len, 0);
        ck_assert_int_eq(res.converged, 0);
        ck_assert_int_eq(asec_attn_invert_hessian(ctx, &big_w, &xb), ASEC_ELIMIT);
        ck_assert_int_eq(asec_attn_invert_gauss_newton(ctx, &big_w, &xb), ASEC_ELIMIT);
        asec_mat_free(&xb);
    }
    asec_rng_free(r);
    asec_attn_invert_free(ctx);
    asec_attn_invert_free(NULL);
    asec_mat_free(&big_w);
    asec_mat_free(&big_b);
    asec_mat_free(&bad);
    asec_mat_free(&xh);
    inst_free(&in);
}
END_TEST

START_TEST(test_errors_variants)
{
    struct inst in;
    asec_attn_invert_options o = ASEC_ATTN_INVERT_OPTIONS_INIT;
    asec_attn_invert *ctx;
    asec_mat wv, om, bad, x2, h, out;
    asec_rng *r;
    double loss;

    inst_make(&in, 3, 5, 1, 2, 0, 0);
    ck_assert_int_eq(asec_mat_alloc(&wv, 3, 2), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&om, 5, 2), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&bad, 4, 5), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&x2, 6, 5), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&h, 15, 15), ASEC_OK);
    ck_assert_int_eq(asec_mat_alloc(&out, 5, 5), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 1, "x"), ASEC_OK);
    /* ASEC_EINVAL: an unknown inputs mode or solver. */
    o.inputs = (asec_attn_invert_inputs)7;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, in.b, &o), ASEC_EINVAL);
    o.inputs = ASEC_ATTN_INVERT_TIED;
    o.solver = (asec_attn_invert_solver)9;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, in.b, &o), ASEC_EINVAL);
    o.solver = ASEC_ATTN_INVERT_NEWTON;
    /* ASEC_EINVAL: a given input for a tied problem. */
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, in.b, &o), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_set_known(ctx, &in.x), ASEC_EINVAL);
    /* Value path: ASEC_EINVAL for dv 0, a bad weight, a second call;
     * ASEC_EBADLEN for shapes; ASEC_ENUMERIC for NaN. */
    ck_assert_int_eq(asec_attn_invert_set_values(ctx, 0, &wv, &om, 1.0), ASEC_EINVAL);
    ck_assert_int_eq(asec_attn_invert_set_values(ctx, 2, &wv, &om, 0.0), ASEC_EINVAL);
    ck_assert_int_eq(asec_attn_invert_set_values(ctx, 2, &wv, &om, NAN), ASEC_EINVAL);
    ck_assert_int_eq(asec_attn_invert_set_values(ctx, 3, &wv, &om, 1.0), ASEC_EBADLEN);
    ck_assert_int_eq(asec_attn_invert_set_values(ctx, 2, &wv, &bad, 1.0), ASEC_EBADLEN);
    om.data[3] = INFINITY;
    ck_assert_int_eq(asec_attn_invert_set_values(ctx, 2, &wv, &om, 1.0), ASEC_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "O[0]"));
    om.data[3] = 0.0;
    ck_assert_int_eq(asec_attn_invert_set_values(ctx, 2, &wv, &om, 1.0), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_set_values(ctx, 2, &wv, &om, 1.0), ASEC_EINVAL);
    /* ASEC_EBADLEN: residual-shaped arguments without the value columns,
     * hvp/hessian outputs of the wrong shape. */
    ck_assert_int_eq(asec_attn_invert_jvp(ctx, &out, &in.x, &in.x), ASEC_EBADLEN);
    ck_assert_int_eq(asec_attn_invert_vjp(ctx, &in.x, &in.x, &out), ASEC_EBADLEN);
    ck_assert_int_eq(asec_attn_invert_hvp(ctx, &out, &in.x, &in.x), ASEC_EBADLEN);
    ck_assert_int_eq(asec_attn_invert_hessian(ctx, &out, &in.x), ASEC_EBADLEN);
    ck_assert_int_eq(asec_attn_invert_hessian(ctx, &h, &out), ASEC_EBADLEN);
    asec_attn_invert_free(ctx);
    /* Separate inputs: ASEC_EINVAL until the given input is set, then
     * ASEC_EBADLEN / ASEC_ENUMERIC for a bad one; BOTH wants (2 d, n). */
    o.inputs = ASEC_ATTN_INVERT_QUERY;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, in.b, &o), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_eval(ctx, &loss, NULL, &in.x), ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "key input"));
    ck_assert_int_eq(asec_attn_invert_solve(ctx, &in.x, r, NULL, NULL), ASEC_EINVAL);
    ck_assert_int_eq(asec_attn_invert_gauss_newton(ctx, &h, &in.x), ASEC_EINVAL);
    ck_assert_int_eq(asec_attn_invert_set_known(ctx, &bad), ASEC_EBADLEN);
    ck_assert_int_eq(asec_mat_copy(&out, &in.b[0]), ASEC_OK);
    {
        asec_mat kn;

        ck_assert_int_eq(asec_mat_alloc(&kn, 3, 5), ASEC_OK);
        kn.data[2] = NAN;
        ck_assert_int_eq(asec_attn_invert_set_known(ctx, &kn), ASEC_ENUMERIC);
        asec_mat_free(&kn);
    }
    ck_assert_int_eq(asec_attn_invert_set_known(ctx, &in.x), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_eval(ctx, &loss, NULL, &in.x), ASEC_OK);
    asec_attn_invert_free(ctx);
    o.inputs = ASEC_ATTN_INVERT_BOTH;
    ck_assert_int_eq(asec_attn_invert_alloc(&ctx, 3, 5, 1, in.w, in.b, &o), ASEC_OK);
    {
        size_t rows, cols;

        asec_attn_invert_unknown_shape(ctx, &rows, &cols);
        ck_assert_uint_eq(rows, 6);
        ck_assert_uint_eq(cols, 5);
    }
    ck_assert_int_eq(asec_attn_invert_eval(ctx, &loss, NULL, &in.x), ASEC_EBADLEN);
    ck_assert_int_eq(asec_attn_invert_eval(ctx, &loss, NULL, &x2), ASEC_OK);
    ck_assert_int_eq(asec_attn_invert_hessian(ctx, &h, &x2), ASEC_EBADLEN); // (30, 30)
    asec_attn_invert_free(ctx);
    /* asec_attn_invert_attention_qk: shapes. */
    ck_assert_int_eq(asec_attn_invert_attention_qk(&out, &in.x, &bad, &in.w[0], 1.0, 0),
                     ASEC_EBADLEN);
    asec_rng_free(r);
    asec_mat_free(&wv);
    asec_mat_free(&om);
    asec_mat_free(&bad);
    asec_mat_free(&x2);
    asec_mat_free(&h);
    asec_mat_free(&out);
    inst_free(&in);
}
END_TEST

/* ------------------------------------------------------------------- oom */

START_TEST(test_oom)
{
    /* ASEC_ENOMEM: every allocation of alloc, solve (LM) and score fails
     * in turn (liblbfgs's own allocations are outside the hook). */
    struct inst in;
    long n;

    inst_make(&in, 3, 6, 1, 4, 0, 0);
    for (n = 0;; n++) {
        asec_attn_invert_options o = ASEC_ATTN_INVERT_OPTIONS_INIT;
        asec_attn_invert *ctx = NULL;
        asec_attn_invert_metrics m;
        asec_attn_invert_result res;
        double tl[8], tm[8];
        asec_attn_invert_trace tr = {tl, tm, 8};
        asec_mat xh = {0, 0, 0, NULL};
        asec_rng *r;
        int rc;

        ck_assert_int_eq(asec_rng_alloc_seeded(&r, 3, "oom"), ASEC_OK);
        o.restarts = 2;
        o.max_iter = 5;
        o.lambda_min = 1;
        asec_debug_fail_alloc(n);
        rc = asec_attn_invert_alloc(&ctx, 3, 6, 1, in.w, in.b, &o);
        if (rc == ASEC_OK)
            rc = asec_mat_alloc(&xh, 3, 6);
        if (rc == ASEC_OK)
            rc = asec_attn_invert_solve(ctx, &xh, r, &res, &tr);
        if (rc == ASEC_OK)
            rc = asec_attn_invert_score(&m, ctx, &xh, &in.x);
        asec_debug_fail_alloc(-1);
        asec_mat_free(&xh);
        asec_attn_invert_free(ctx);
        asec_rng_free(r);
        if (rc == ASEC_OK)
            break;
        ck_assert_int_eq(rc, ASEC_ENOMEM);
        ck_assert_int_lt(n, 10000);
    }
    ck_assert_int_gt(n, 10);
    inst_free(&in);
}
END_TEST

START_TEST(test_oom_variants)
{
    /* ASEC_ENOMEM: set_known, set_values, the Newton solver (two (r n,
     * r n) matrices and an eigendecomposition), gauss_newton with values
     * and hessian fail cleanly at every allocation in turn. */
    struct inst in;
    long n;

    inst_make(&in, 3, 6, 1, 4, 0, 0);
    for (n = 0;; n++) {
        asec_attn_invert_options o = ASEC_ATTN_INVERT_OPTIONS_INIT;
        asec_attn_invert *ctx = NULL;
        asec_attn_invert_result res;
        asec_mat xh = {0, 0, 0, NULL}, wv = {0, 0, 0, NULL}, om = {0, 0, 0, NULL};
        asec_mat h = {0, 0, 0, NULL};
        asec_rng *r;
        int rc;

        ck_assert_int_eq(asec_rng_alloc_seeded(&r, 3, "oom"), ASEC_OK);
        o.restarts = 2;
        o.max_iter = 3;
        o.solver = ASEC_ATTN_INVERT_NEWTON;
        o.inputs = ASEC_ATTN_INVERT_KEY;
        asec_debug_fail_alloc(n);
        rc = asec_attn_invert_alloc(&ctx, 3, 6, 1, in.w, in.b, &o);
        if (rc == ASEC_OK)
            rc = asec_attn_invert_set_known(ctx, &in.x);
        if (rc == ASEC_OK)
            rc = asec_mat_alloc(&wv, 3, 2);
        if (rc == ASEC_OK)
            rc = asec_mat_alloc(&om, 6, 2);
        if (rc == ASEC_OK)
            rc = asec_attn_invert_set_values(ctx, 2, &wv, &om, 1.0);
        if (rc == ASEC_OK)
            rc = asec_mat_alloc(&xh, 3, 6);
        if (rc == ASEC_OK)
            rc = asec_attn_invert_solve(ctx, &xh, r, &res, NULL);
        if (rc == ASEC_OK)
            rc = asec_mat_alloc(&h, 18, 18);
        if (rc == ASEC_OK)
            rc = asec_attn_invert_gauss_newton(ctx, &h, &xh);
        if (rc == ASEC_OK)
            rc = asec_attn_invert_hessian(ctx, &h, &xh);
        asec_debug_fail_alloc(-1);
        asec_mat_free(&xh);
        asec_mat_free(&wv);
        asec_mat_free(&om);
        asec_mat_free(&h);
        asec_attn_invert_free(ctx);
        asec_rng_free(r);
        if (rc == ASEC_OK)
            break;
        ck_assert_int_eq(rc, ASEC_ENOMEM);
        ck_assert_int_lt(n, 10000);
    }
    ck_assert_int_gt(n, 10);
    inst_free(&in);
}
END_TEST

static Suite *
attn_invert_suite(void)
{
    Suite *s = suite_create("attn_invert");
    TCase *tc;

    tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_recover_small);
    tcase_add_test(tc, test_recover_lbfgs_multihead_causal);
    tcase_add_test(tc, test_symmetry_and_kernel);
    tcase_add_loop_test(tc, test_recover_variants, 0, 5);
    tcase_add_test(tc, test_recover_newton);
    suite_add_tcase(s, tc);

    tc = tcase_create("reference");
    tcase_add_test(tc, test_t3);
    tcase_add_loop_test(tc, test_fixture, 0, 8);
    suite_add_tcase(s, tc);

    tc = tcase_create("gradcheck");
    tcase_add_test(tc, test_gradcheck_plain);
    tcase_add_test(tc, test_gradcheck_causal_heads_ridge);
    tcase_add_loop_test(tc, test_gradcheck_variants, 0, 8);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_errors_variants);
    suite_add_tcase(s, tc);

    tc = tcase_create("oom");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_oom);
    tcase_add_test(tc, test_oom_variants);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    if (asec_init() != ASEC_OK)
        return EXIT_FAILURE;
    return asec_test_run(attn_invert_suite());
}
