/* check_model.c - the transformer engine (attnsec/model.h).
 *
 *   core       per-example gradients against the batch gradient and
 *              single-example batches; HVP symmetry; shapes and tensors
 *   gradcheck  central finite differences of the loss for grad_theta,
 *              grad_input and grad_soft, and of the full gradient for every
 *              Hessian-vector product (along a unit direction), on all four
 *              kinds; relative error <= 1e-7.  The stencil is the 5-point
 *              one of check_attn.c, D(h), Richardson-extrapolated:
 *              (16 D(h/2) - D(h)) / 15, error O(h^6).  The small models
 *              here (C = 4, LayerNorm of 4 channels) curve on a scale of
 *              1e-2, where D(h) alone with h = 1e-3 errs by 1e-4.
 *   reference  PyTorch float64 autograd fixtures (datasets/fixtures/engine,
 *              written by datasets/gen/make_engine_fixtures.py), double
 *              backward included, to 1e-10 relative
 *   errors     every documented status
 *   oom        allocation failure at every allocation of alloc, a first
 *              pass, an HVP, save and load
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "attnsec/io.h"
#include "attnsec/model.h"
#include "testutil.h"

#define FD_TOL 1e-7

/* ---------------------------------------------------------------- helpers */

static double *
zeros(size_t n)
{
    double *x = calloc(n ? n : 1, sizeof *x);

    ck_assert_ptr_nonnull(x);
    return x;
}

static double *
randn(asec_rng *r, size_t n, double scale)
{
    double *x = zeros(n);

    for (size_t i = 0; i < n; i++)
        x[i] = scale * asec_rng_normal(r);
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

/* |a - b| / max(|a|, |b|, floor), floor = 1e-5 max(1e-3, max |b|): see
 * check_attn.c. */
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
        if (e > worst)
            worst = e, iw = i;
    }
    ck_assert_msg(worst <= FD_TOL,
                  "%s: relative error %.3g at %zu: analytic %.17g, fd %.17g", what, worst,
                  iw, n ? a[iw] : 0.0, n ? b[iw] : 0.0);
}

/* A test model plus a batch whose buffers the finite differences perturb. */
typedef struct fix {
    asec_model *m;
    asec_model_batch b;
    double *x, *soft;
    int64_t *labels, *tokens;
    size_t nx, nsoft, P;
} fix;

static void
fix_free(fix *f)
{
    asec_model_free(f->m);
    free(f->x), free(f->soft), free(f->labels), free(f->tokens);
}

/* Build a model from arch with parameters N(0, pscale^2) (LayerNorm
 * weights around 1) and a random batch of B examples. */
static void
fix_make(fix *f, const asec_model_arch *arch, size_t B, int hard, int tokens,
         double pscale, const char *label)
{
    asec_rng *r = NULL;
    const asec_model_arch *a;
    size_t T, R, K;

    memset(f, 0, sizeof *f);
    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 5, label), ASEC_OK);
    ck_assert_int_eq(asec_model_alloc(&f->m, arch), ASEC_OK);
    a = asec_model_get_arch(f->m);
    f->P = asec_model_param_count(f->m);
    for (size_t i = 0; i < asec_model_tensor_count(f->m); i++) {
        asec_model_tensor t;
        double *p = asec_model_params(f->m);

        ck_assert_int_eq(asec_model_tensor_get(f->m, i, &t), ASEC_OK);
        for (size_t j = 0; j < t.size; j++)
            p[t.offset + j] =
                (strstr(t.name, "ln") && strstr(t.name, "weight") ? 1.0 : 0.0) +
                pscale * asec_rng_normal(r);
    }
    T = asec_model_tokens(f->m, 0);
    R = asec_model_rows(f->m, 0);
    K = a->classes;
    f->b.B = B;
    f->nx = B * asec_model_input_size(f->m, 0);
    if (tokens) {
        f->tokens = calloc(B * T, sizeof *f->tokens);
        for (size_t i = 0; i < B * T; i++)
            f->tokens[i] = (int64_t)asec_rng_bounded(r, a->vocab);
        f->b.tokens = f->tokens;
    } else {
        f->x = randn(r, f->nx, 1.0);
        f->b.x = f->x;
    }
    if (a->kind == ASEC_MODEL_ATTN_REGRESSION) {
        f->nsoft = B * T * a->channels;
        f->soft = randn(r, f->nsoft, 1.0);
        f->b.soft = f->soft;
    } else if (hard) {
        f->labels = calloc(B * R, sizeof *f->labels);
        for (size_t i = 0; i < B * R; i++)
            f->labels[i] = (int64_t)asec_rng_bounded(r, K);
        f->b.labels = f->labels;
    } else {
        f->nsoft = B * R * K;
        f->soft = zeros(f->nsoft);
        for (size_t i = 0; i < f->nsoft; i++)
            f->soft[i] = fabs(asec_rng_normal(r));
        f->b.soft = f->soft;
    }
    asec_rng_free(r);
}

static double
fix_loss(fix *f)
{
    double l;

    ck_assert_int_eq(asec_model_forward(f->m, &l, NULL, NULL, &f->b), ASEC_OK);
    return l;
}

/* The extrapolated stencil from the values at the offsets
 * st = (h, -h, 2h, -2h, h/2, -h/2). */
static const double FD_H = 1e-3;
static const double FD_ST[6] = {1.0, -1.0, 2.0, -2.0, 0.5, -0.5};

static double
fd_combine(const double *v, double h)
{
    double d1 = (8.0 * (v[0] - v[1]) - (v[2] - v[3])) / (12.0 * h);
    double d2 = (8.0 * (v[4] - v[5]) - (v[0] - v[1])) / (6.0 * h);

    return (16.0 * d2 - d1) / 15.0;
}

/* d L / d x_i for every i of x (n). */
static void
fd_loss_grad(double *g, fix *f, double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double save = x[i], h = FD_H * fmax(1.0, fabs(save)), v[6];

        for (int s = 0; s < 6; s++) {
            x[i] = save + FD_ST[s] * h;
            v[s] = fix_loss(f);
        }
        x[i] = save;
        g[i] = fd_combine(v, h);
    }
}

/* The full gradient (params | input | soft) at the current point.  For
 * token batches the input gradient is w.r.t. embeddings, not perturbable
 * here; pass with_input = 0. */
static void
full_grad(fix *f, double *g, int with_input)
{
    asec_model_vec v = {g, with_input ? g + f->P : NULL,
                        f->nsoft ? g + f->P + f->nx : NULL};

    ck_assert_int_eq(asec_model_grad(f->m, NULL, &v, &f->b), ASEC_OK);
}

static void
check_first_order(fix *f, const char *what)
{
    size_t n = f->P + f->nx + f->nsoft;
    double *g = zeros(n), *fd = zeros(n);
    char msg[128];
    int with_input = f->x != NULL;

    full_grad(f, g, with_input);
    fd_loss_grad(fd, f, asec_model_params(f->m), f->P);
    snprintf(msg, sizeof msg, "%s: grad_theta", what);
    fd_compare(g, fd, f->P, msg);
    if (with_input) {
        fd_loss_grad(fd, f, f->x, f->nx);
        snprintf(msg, sizeof msg, "%s: grad_input", what);
        fd_compare(g + f->P, fd, f->nx, msg);
    }
    if (f->nsoft) {
        fd_loss_grad(fd, f, f->soft, f->nsoft);
        snprintf(msg, sizeof msg, "%s: grad_soft", what);
        fd_compare(g + f->P + f->nx, fd, f->nsoft, msg);
    }
    free(g), free(fd);
}

/* HVP along (v, u, w) against the 5-point derivative of the full gradient
 * along the same direction. */
static void
check_hvp(fix *f, const char *what)
{
    asec_rng *r = NULL;
    int with_input = f->x != NULL;
    size_t n = f->P + f->nx + f->nsoft;
    double *dir = zeros(n), *hv = zeros(n), *fd = zeros(n), *g[6], *save = zeros(n);
    double *p = asec_model_params(f->m), h = FD_H, norm;
    char msg[128];

    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 9, what), ASEC_OK);
    for (size_t i = 0; i < n; i++)
        dir[i] = asec_rng_normal(r);
    if (!with_input)
        memset(dir + f->P, 0, f->nx * sizeof *dir);
    norm = sqrt(dot(dir, dir, n));
    for (size_t i = 0; i < n; i++)
        dir[i] /= norm;
    {
        asec_model_vec out = {hv, with_input ? hv + f->P : NULL,
                              f->nsoft ? hv + f->P + f->nx : NULL};
        asec_model_cvec d = {dir, with_input ? dir + f->P : NULL,
                             f->nsoft ? dir + f->P + f->nx : NULL};

        ck_assert_int_eq(asec_model_hvp(f->m, &out, NULL, &d, &f->b), ASEC_OK);
    }
    memcpy(save, p, f->P * sizeof *p);
    if (with_input)
        memcpy(save + f->P, f->x, f->nx * sizeof *f->x);
    if (f->nsoft)
        memcpy(save + f->P + f->nx, f->soft, f->nsoft * sizeof *f->soft);
    for (int s = 0; s < 6; s++) {
        double st = FD_ST[s] * h;

        g[s] = zeros(n);
        for (size_t i = 0; i < f->P; i++)
            p[i] = save[i] + st * dir[i];
        for (size_t i = 0; with_input && i < f->nx; i++)
            f->x[i] = save[f->P + i] + st * dir[f->P + i];
        for (size_t i = 0; i < f->nsoft; i++)
            f->soft[i] = save[f->P + f->nx + i] + st * dir[f->P + f->nx + i];
        full_grad(f, g[s], with_input);
    }
    memcpy(p, save, f->P * sizeof *p);
    if (with_input)
        memcpy(f->x, save + f->P, f->nx * sizeof *f->x);
    if (f->nsoft)
        memcpy(f->soft, save + f->P + f->nx, f->nsoft * sizeof *f->soft);
    for (size_t i = 0; i < n; i++) {
        double v[6];

        for (int s = 0; s < 6; s++)
            v[s] = g[s][i];
        fd[i] = fd_combine(v, h);
    }
    snprintf(msg, sizeof msg, "%s: hvp theta", what);
    fd_compare(hv, fd, f->P, msg);
    if (with_input) {
        snprintf(msg, sizeof msg, "%s: hvp input", what);
        fd_compare(hv + f->P, fd + f->P, f->nx, msg);
    }
    if (f->nsoft) {
        snprintf(msg, sizeof msg, "%s: hvp soft", what);
        fd_compare(hv + f->P + f->nx, fd + f->P + f->nx, f->nsoft, msg);
    }
    for (int s = 0; s < 6; s++)
        free(g[s]);
    free(dir), free(hv), free(fd), free(save);
    asec_rng_free(r);
}

/* Row b of the per-example gradients equals the gradient of the batch
 * made of example b alone, and their mean is the batch gradient. */
static void
check_per_example(fix *f, const char *what)
{
    size_t B = f->b.B, P = f->P, T = asec_model_tokens(f->m, f->b.T);
    size_t R = asec_model_rows(f->m, f->b.T), K = asec_model_get_arch(f->m)->classes;
    size_t nin = asec_model_input_size(f->m, f->b.T);
    size_t ns = f->nsoft / B;
    double *pe = zeros(B * P), *g = zeros(P), *mean = zeros(P), *l = zeros(B), L;
    asec_model_vec v = {g, NULL, NULL};
    char msg[128];

    ck_assert_int_eq(asec_model_grad_per_example(f->m, l, pe, &f->b), ASEC_OK);
    ck_assert_int_eq(asec_model_grad(f->m, &L, &v, &f->b), ASEC_OK);
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < P; i++)
            mean[i] += pe[b * P + i] / (double)B;
    snprintf(msg, sizeof msg, "%s: mean of per-example gradients", what);
    asec_test_allclose(mean, g, P, 1e-12, 1e-14, msg);
    for (size_t b = 0; b < B; b++) {
        asec_model_batch one = f->b;
        double l1;

        one.B = 1;
        one.x = f->x ? f->x + b * nin : NULL;
        one.tokens = f->tokens ? f->tokens + b * T : NULL;
        one.labels = f->labels ? f->labels + b * R : NULL;
        one.soft = f->soft ? f->soft + b * ns : NULL;
        ck_assert_int_eq(asec_model_grad(f->m, &l1, &v, &one), ASEC_OK);
        snprintf(msg, sizeof msg, "%s: per-example row %zu", what, b);
        asec_test_allclose(pe + b * P, g, P, 1e-12, 1e-14, msg);
        ck_assert_double_eq_tol(l[b], l1, 1e-13 * fmax(1.0, fabs(l1)));
    }
    (void)K;
    free(pe), free(g), free(mean), free(l);
}

/* The two named products agree with the HVP and with each other:
 * <u, grad_dot_dinput(v)> = <v, grad_jvp(u)> (symmetry of mixed partials). */
static void
check_mixed(fix *f, const char *what)
{
    asec_rng *r = NULL;
    double *v, *u, *a = zeros(f->nx), *bvec = zeros(f->P);
    double lhs, rhs;

    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 11, what), ASEC_OK);
    v = randn(r, f->P, 1.0);
    u = randn(r, f->nx, 1.0);
    ck_assert_int_eq(asec_model_grad_dot_dinput(f->m, a, NULL, v, &f->b), ASEC_OK);
    ck_assert_int_eq(asec_model_grad_jvp(f->m, bvec, u, NULL, &f->b), ASEC_OK);
    lhs = dot(u, a, f->nx);
    rhs = dot(v, bvec, f->P);
    ck_assert_msg(fabs(lhs - rhs) <= 1e-11 * fmax(1.0, fabs(lhs)),
                  "%s: <u, d<g,v>/dx> = %.17g but <v, J u> = %.17g", what, lhs, rhs);
    free(v), free(u), free(a), free(bvec);
    asec_rng_free(r);
}

/* ---------------------------------------------------------------- architectures */

static asec_model_arch
arch_regression(int causal)
{
    asec_model_arch a;

    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_ATTN_REGRESSION), ASEC_OK);
    a.channels = 3;
    a.seq_len = 4;
    a.scale = 0.7;
    a.causal = causal;
    return a;
}

static asec_model_arch
arch_block(int causal, asec_model_pool pool, asec_model_pos pos, size_t L)
{
    asec_model_arch a;

    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_ATTN_BLOCK), ASEC_OK);
    a.channels = 4;
    a.heads = 2;
    a.seq_len = 3;
    a.classes = 3;
    a.layers = L;
    a.causal = causal;
    a.pool = pool;
    a.pos = pos;
    return a;
}

static asec_model_arch
arch_vit(asec_model_pool pool)
{
    asec_model_arch a;

    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_VIT), ASEC_OK);
    a.image_h = 4;
    a.image_w = 6;
    a.patch = 2;
    a.pool = pool;
    a.seq_len = 6 + (pool == ASEC_MODEL_POOL_CLS);
    a.channels = 4;
    a.heads = 2;
    a.layers = 2;
    a.mlp_hidden = 6;
    a.classes = 3;
    return a;
}

static asec_model_arch
arch_text(asec_model_pool pool, int causal)
{
    asec_model_arch a;

    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_TEXT), ASEC_OK);
    a.vocab = 7;
    a.classes = pool == ASEC_MODEL_POOL_NONE ? 7 : 3;
    a.seq_len = 4;
    a.channels = 4;
    a.heads = 2;
    a.layers = 1;
    a.mlp_hidden = 6;
    a.pool = pool;
    a.causal = causal;
    return a;
}

static void
check_all(const asec_model_arch *a, size_t B, int hard, int tokens, double pscale,
          const char *what)
{
    fix f;

    fix_make(&f, a, B, hard, tokens, pscale, what);
    check_first_order(&f, what);
    check_hvp(&f, what);
    fix_free(&f);
}

/* ---------------------------------------------------------------- gradcheck */

START_TEST(test_grad_regression)
{
    asec_model_arch a = arch_regression(0), c = arch_regression(1);

    check_all(&a, 2, 0, 0, 0.8, "regression");
    check_all(&c, 2, 0, 0, 0.8, "regression causal");
}
END_TEST

START_TEST(test_grad_attn_block)
{
    asec_model_arch a = arch_block(0, ASEC_MODEL_POOL_MEAN, ASEC_MODEL_POS_SIN, 1);
    asec_model_arch c = arch_block(1, ASEC_MODEL_POOL_CLS, ASEC_MODEL_POS_LEARNED, 2);
    asec_model_arch n = arch_block(1, ASEC_MODEL_POOL_NONE, ASEC_MODEL_POS_NONE, 2);

    check_all(&a, 2, 1, 0, 0.7, "attn-block hard");
    check_all(&a, 3, 0, 0, 0.7, "attn-block soft");
    check_all(&c, 2, 0, 0, 0.7, "attn-block causal cls 2 layers");
    check_all(&n, 2, 1, 0, 0.7, "attn-block per-token");
}
END_TEST

START_TEST(test_grad_vit)
{
    asec_model_arch a = arch_vit(ASEC_MODEL_POOL_MEAN), c = arch_vit(ASEC_MODEL_POOL_CLS);

    check_all(&a, 2, 1, 0, 0.5, "vit mean hard");
    check_all(&c, 2, 0, 0, 0.5, "vit cls soft");
}
END_TEST

START_TEST(test_grad_text)
{
    asec_model_arch lm = arch_text(ASEC_MODEL_POOL_NONE, 1);
    asec_model_arch cl = arch_text(ASEC_MODEL_POOL_MEAN, 0);

    check_all(&lm, 2, 1, 1, 0.5, "text lm tokens");
    check_all(&lm, 2, 0, 0, 0.5, "text lm embeddings soft");
    check_all(&cl, 3, 1, 0, 0.5, "text classifier");
}
END_TEST

/* ---------------------------------------------------------------- core */

START_TEST(test_per_example)
{
    asec_model_arch archs[5] = {
        arch_regression(0),
        arch_block(1, ASEC_MODEL_POOL_MEAN, ASEC_MODEL_POS_LEARNED, 2),
        arch_vit(ASEC_MODEL_POOL_CLS), arch_text(ASEC_MODEL_POOL_NONE, 1),
        arch_text(ASEC_MODEL_POOL_CLS, 0)};
    const char *names[5] = {"regression", "attn-block", "vit", "text lm", "text cls"};

    for (int i = 0; i < 5; i++) {
        fix f;

        fix_make(&f, &archs[i], 4, i % 2, i == 3, 0.5, names[i]);
        check_per_example(&f, names[i]);
        fix_free(&f);
    }
}
END_TEST

START_TEST(test_mixed_products)
{
    asec_model_arch archs[4] = {
        arch_regression(1), arch_block(0, ASEC_MODEL_POOL_MEAN, ASEC_MODEL_POS_SIN, 1),
        arch_vit(ASEC_MODEL_POOL_MEAN), arch_text(ASEC_MODEL_POOL_NONE, 1)};
    const char *names[4] = {"regression", "attn-block", "vit", "text"};

    for (int i = 0; i < 4; i++) {
        fix f;

        fix_make(&f, &archs[i], 2, 1, 0, 0.5, names[i]);
        check_mixed(&f, names[i]);
        fix_free(&f);
    }
}
END_TEST

START_TEST(test_regression_matches_kernel)
{
    /* The attn-regression model on MATH.md T2 (n = 3 = 3 tokens, d = 2) is
     * not square, so use the kernel on A1 = A2 = A3 = A with a model batch
     * of one: loss, grad_X, grad_Y agree with asec_attn_regression(). */
    asec_model_arch a = arch_regression(0);
    asec_model *m;
    double A[6] = {1, 0, 0, 1, 1, -1}, E[6] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
    double X[4] = {0.2, 0.1, -0.1, 0.3}, Y[4] = {1, 0, 0, 1}, g[8], gx[4], gy[4], l, lk;
    asec_model_batch b = {1, 3, A, NULL, NULL, E};
    asec_model_vec v = {g, NULL, NULL};
    asec_mat Xm = asec_mat_view(X, 2, 2), Ym = asec_mat_view(Y, 2, 2);
    asec_mat Am = asec_mat_view(A, 3, 2), Em = asec_mat_view(E, 3, 2);
    asec_mat gxm = asec_mat_view(gx, 2, 2), gym = asec_mat_view(gy, 2, 2);

    a.channels = 2;
    a.seq_len = 3;
    a.scale = 1.0;
    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_OK);
    memcpy(asec_model_params(m), X, sizeof X);
    memcpy(asec_model_params(m) + 4, Y, sizeof Y);
    ck_assert_int_eq(asec_model_grad(m, &l, &v, &b), ASEC_OK);
    ck_assert_int_eq(
        asec_attn_regression(&lk, &gxm, &gym, &Xm, &Ym, &Am, &Am, &Am, &Em, 1.0, NULL),
        ASEC_OK);
    ck_assert_double_eq_tol(l, lk, 1e-14);
    asec_test_allclose(g, gx, 4, 1e-12, 1e-14, "model grad_X vs kernel");
    asec_test_allclose(g + 4, gy, 4, 1e-12, 1e-14, "model grad_Y vs kernel");
    asec_model_free(m);
}
END_TEST

START_TEST(test_tensors_and_defaults)
{
    static const asec_model_kind kinds[4] = {ASEC_MODEL_ATTN_REGRESSION,
                                             ASEC_MODEL_ATTN_BLOCK, ASEC_MODEL_VIT,
                                             ASEC_MODEL_TEXT};
    /* Parameter counts of the documented defaults. */
    static const size_t counts[4] = {128, 3 * 256 + 4 * 16 + 4,
                                     32 * 4 + 32 + 16 * 32 + 2 * 12704 + 64 + 330,
                                     2049 * 64 + 32 * 64 + 2 * 49984 + 128 + 2049 * 65};

    ck_assert_int_eq(asec_init(), ASEC_OK);
    for (int i = 0; i < 4; i++) {
        asec_model_arch a;
        asec_model *m;
        asec_model_tensor t;
        size_t sum = 0;

        ck_assert_int_eq(asec_model_arch_default(&a, kinds[i]), ASEC_OK);
        ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_OK);
        ck_assert_uint_eq(asec_model_param_count(m), counts[i]);
        for (size_t j = 0; j < asec_model_tensor_count(m); j++) {
            ck_assert_int_eq(asec_model_tensor_get(m, j, &t), ASEC_OK);
            ck_assert_uint_eq(t.offset, sum);
            sum += t.size;
        }
        ck_assert_uint_eq(sum, counts[i]);
        ck_assert_int_eq(asec_model_tensor_find(m, "head.weight", &t),
                         i == 0 ? ASEC_EINVAL : ASEC_OK);
        asec_model_free(m);
    }
}
END_TEST

/* ---------------------------------------------------------------- reference */

static const char *const FIXTURES[] = {"vit_l1_h1_b1_hard",
                                       "vit_l2_h4_b4_soft_cls",
                                       "text_l1_h4_causal_b4_hard_tokens",
                                       "text_l2_h1_b1_soft_emb",
                                       "text_l2_h4_causal_b4_soft_tokens",
                                       "attnblock_l1_h1_b4_hard_sin",
                                       "attnblock_l2_h4_causal_b1_soft_cls",
                                       "regression_b1",
                                       "regression_causal_b4"};

/* A fixture tensor (NULL when absent); its element count in *n. */
static const double *
fx(const asec_io_file *f, const char *name, size_t *n)
{
    const asec_io_tensor *t = asec_io_file_find(f, name, NULL);

    if (n != NULL)
        *n = t != NULL ? t->nelem : 0;
    return t != NULL ? t->data : NULL;
}

static void
fx_compare(const double *got, const asec_io_file *f, const char *name, size_t n,
           const char *fixture)
{
    size_t nref;
    const double *ref = fx(f, name, &nref);
    char what[160];

    ck_assert_msg(ref != NULL, "%s: fixture lacks '%s'", fixture, name);
    ck_assert_uint_eq(nref, n);
    snprintf(what, sizeof what, "%s: %s", fixture, name);
    /* STYLE.md B6 defaults for double-vs-double-fixture comparisons. */
    asec_test_allclose(got, ref, n, 1e-10, 1e-12, what);
}

static int64_t *
to_int64(const double *x, size_t n)
{
    int64_t *y = calloc(n ? n : 1, sizeof *y);

    ck_assert_ptr_nonnull(y);
    for (size_t i = 0; i < n; i++)
        y[i] = (int64_t)x[i];
    return y;
}

static void
check_fixture(const char *name)
{
    char rel[256];
    asec_io_file *f = NULL;
    asec_model_arch arch;
    asec_model *m = NULL;
    const char *meta;
    size_t P, n, nx, ns, nl, B;
    const double *params, *x, *soft, *lab, *tok;
    int64_t *labels = NULL, *tokens = NULL;
    asec_model_batch b;
    double loss, *g, *gx, *gs, *pe, *losses;

    snprintf(rel, sizeof rel, "fixtures/engine/%s.safetensors", name);
    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_msg(asec_io_open(&f, asec_test_datafile(rel), ASEC_IO_SAFETENSORS,
                               ASEC_IO_LOAD_DOUBLE, NULL) == ASEC_OK,
                  "%s: %s", rel, asec_errmsg());
    /* the magic and version, as llm.c's test state file */
    meta = asec_io_file_meta_get(f, "attnsec.fixture");
    ck_assert_msg(meta != NULL && strcmp(meta, "engine-v1") == 0,
                  "%s: stale fixture; re-run datasets/gen/make_engine_fixtures.py", rel);
    meta = asec_io_file_meta_get(f, ASEC_MODEL_ARCH_KEY);
    ck_assert_ptr_nonnull(meta);
    ck_assert_msg(asec_model_arch_from_json(&arch, meta, strlen(meta)) == ASEC_OK, "%s",
                  asec_errmsg());
    ck_assert_int_eq(asec_model_alloc(&m, &arch), ASEC_OK);
    P = asec_model_param_count(m);
    params = fx(f, "params", &n);
    ck_assert_uint_eq(n, P);
    memcpy(asec_model_params(m), params, P * sizeof *params);
    fx(f, "losses", &B);
    x = fx(f, "x", &nx);
    tok = fx(f, "tokens", &n);
    if (tok != NULL) {
        tokens = to_int64(tok, n);
        fx(f, "x_emb", &nx);
    }
    soft = fx(f, "soft", &ns);
    lab = fx(f, "labels", &nl);
    if (lab != NULL)
        labels = to_int64(lab, nl);
    memset(&b, 0, sizeof b);
    b.B = B;
    b.x = x;
    b.tokens = tokens;
    b.labels = labels;
    b.soft = soft;
    g = zeros(P), gx = zeros(nx), gs = zeros(ns), pe = zeros(B * P), losses = zeros(B);

    /* first order */
    {
        asec_model_vec v = {g, gx, soft ? gs : NULL};

        ck_assert_msg(asec_model_grad(m, &loss, &v, &b) == ASEC_OK, "%s", asec_errmsg());
        fx_compare(&loss, f, "loss", 1, name);
        fx_compare(g, f, "grad_params", P, name);
        fx_compare(gx, f, "grad_input", nx, name);
        if (soft)
            fx_compare(gs, f, "grad_soft", ns, name);
    }
    /* per-example */
    ck_assert_int_eq(asec_model_grad_per_example(m, losses, pe, &b), ASEC_OK);
    fx_compare(losses, f, "losses", B, name);
    fx_compare(pe, f, "per_example", B * P, name);
    /* grad_input <grad_theta L, v> (double backward in torch) */
    ck_assert_int_eq(
        asec_model_grad_dot_dinput(m, gx, soft ? gs : NULL, fx(f, "v", NULL), &b),
        ASEC_OK);
    fx_compare(gx, f, "gdd_input", nx, name);
    if (soft)
        fx_compare(gs, f, "gdd_soft", ns, name);
    /* J u (forward mode in torch) */
    if (tokens == NULL) {
        ck_assert_int_eq(
            asec_model_grad_jvp(m, g, fx(f, "u", NULL), fx(f, "w", NULL), &b), ASEC_OK);
        fx_compare(g, f, "jvp", P, name);
    }
    /* the full Hessian-vector product */
    {
        asec_model_vec out = {g, gx, soft ? gs : NULL};
        asec_model_cvec dir = {fx(f, "hdir_params", NULL), fx(f, "hdir_input", NULL),
                               fx(f, "hdir_soft", NULL)};

        ck_assert_int_eq(asec_model_hvp(m, &out, NULL, &dir, &b), ASEC_OK);
        fx_compare(g, f, "hvp_params", P, name);
        fx_compare(gx, f, "hvp_input", nx, name);
        if (soft)
            fx_compare(gs, f, "hvp_soft", ns, name);
    }
    free(g), free(gx), free(gs), free(pe), free(losses), free(labels), free(tokens);
    asec_model_free(m);
    asec_io_file_free(f);
}

START_TEST(test_torch_fixture)
{
    check_fixture(FIXTURES[_i]);
}
END_TEST

/* ---------------------------------------------------------------- files */

START_TEST(test_save_load_roundtrip)
{
    static const asec_model_kind kinds[4] = {ASEC_MODEL_ATTN_REGRESSION,
                                             ASEC_MODEL_ATTN_BLOCK, ASEC_MODEL_VIT,
                                             ASEC_MODEL_TEXT};
    char *dir = asec_test_mkdtemp(), path[512], j1[1024], j2[1024];
    asec_rng *r = NULL;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 3, "save"), ASEC_OK);
    for (int i = 0; i < 4; i++) {
        asec_model_arch a;
        asec_model *m, *m2;
        size_t P;
        double *stack, *back;

        ck_assert_int_eq(asec_model_arch_default(&a, kinds[i]), ASEC_OK);
        if (kinds[i] == ASEC_MODEL_TEXT) /* keep the file small */
            a.vocab = a.classes = 50;
        ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_OK);
        asec_model_init_params(m, r);
        snprintf(path, sizeof path, "%s/m%d.safetensors", dir, i);
        ck_assert_msg(asec_model_save(m, path) == ASEC_OK, "%s", asec_errmsg());
        ck_assert_msg(asec_model_load(&m2, path) == ASEC_OK, "%s", asec_errmsg());
        P = asec_model_param_count(m);
        ck_assert_uint_eq(asec_model_param_count(m2), P);
        ck_assert_mem_eq(asec_model_params(m), asec_model_params(m2), P * sizeof(double));
        ck_assert_int_eq(asec_model_arch_to_json(j1, sizeof j1, asec_model_get_arch(m)),
                         ASEC_OK);
        ck_assert_int_eq(asec_model_arch_to_json(j2, sizeof j2, asec_model_get_arch(m2)),
                         ASEC_OK);
        ck_assert_str_eq(j1, j2);
        /* stacked vectors and a single vector read back by name */
        stack = randn(r, 3 * P, 1.0);
        back = zeros(P);
        snprintf(path, sizeof path, "%s/g%d.safetensors", dir, i);
        ck_assert_int_eq(asec_model_save_vectors(m, path, stack + P, 0, "gradient"),
                         ASEC_OK);
        ck_assert_int_eq(asec_model_read_vector(m, path, back), ASEC_OK);
        ck_assert_mem_eq(back, stack + P, P * sizeof(double));
        snprintf(path, sizeof path, "%s/pe%d.safetensors", dir, i);
        ck_assert_int_eq(
            asec_model_save_vectors(m, path, stack, 3, "per_example_gradient"), ASEC_OK);
        {
            asec_io_file *f;
            asec_model_tensor t;
            const asec_io_tensor *ft;

            ck_assert_int_eq(
                asec_io_open(&f, path, ASEC_IO_AUTO, ASEC_IO_LOAD_DOUBLE, NULL), ASEC_OK);
            ck_assert_int_eq(asec_model_tensor_get(m, asec_model_tensor_count(m) - 1, &t),
                             ASEC_OK);
            ft = asec_io_file_find(f, t.name, NULL);
            ck_assert_ptr_nonnull(ft);
            ck_assert_uint_eq(ft->ndim, t.ndim + 1);
            ck_assert_uint_eq(ft->shape[0], 3);
            for (size_t s = 0; s < 3; s++)
                ck_assert_mem_eq(ft->data + s * t.size, stack + s * P + t.offset,
                                 t.size * sizeof(double));
            /* a stacked file is not a single vector */
            ck_assert_int_eq(asec_model_read_vector(m, path, back), ASEC_EFORMAT);
            asec_io_file_free(f);
        }
        free(stack), free(back);
        asec_model_free(m);
        asec_model_free(m2);
    }
    asec_rng_free(r);
    asec_test_rmtree(dir);
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(test_arch_errors)
{
    asec_model_arch a;
    asec_model *m = (asec_model *)1;
    char j[1024];
    asec_model_kind k;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_model_arch_default(&a, (asec_model_kind)9), ASEC_EINVAL);
    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_VIT), ASEC_OK);
    a.heads = 3;
    ck_assert_int_eq(asec_model_arch_check(&a), ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "heads 3 does not divide channels 32"));
    ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_EINVAL);
    ck_assert_ptr_null(m);
    a.heads = 4;
    a.seq_len = 17; /* 16 patches, no CLS */
    ck_assert_int_eq(asec_model_arch_check(&a), ASEC_EINVAL);
    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_TEXT), ASEC_OK);
    a.vocab = (size_t)1 << 30;
    a.channels = 4096;
    a.heads = 1;
    ck_assert_int_eq(asec_model_arch_check(&a), ASEC_ELIMIT);
    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_TEXT), ASEC_OK);
    ck_assert_int_eq(asec_model_arch_to_json(j, 20, &a), ASEC_ELIMIT);
    ck_assert_int_eq(asec_model_arch_to_json(j, sizeof j, &a), ASEC_OK);
    ck_assert_int_eq(asec_model_arch_from_json(&a, j, strlen(j)), ASEC_OK);
    {
        static const char *bad[] = {
            "[1]",
            "{\"format\":\"attnsec-model\"}",
            "not json",
            "{\"format\":\"other\",\"version\":1}",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
            ck_assert_int_eq(asec_model_arch_from_json(&a, bad[i], strlen(bad[i])),
                             ASEC_EFORMAT);
    }
    {
        /* an unknown key, a duplicate key, a newer version, a wrong type */
        char t[1100];
        const char *tail = j + 1;

        snprintf(t, sizeof t, "{\"extra\":1,%s", tail);
        ck_assert_int_eq(asec_model_arch_from_json(&a, t, strlen(t)), ASEC_EFORMAT);
        ck_assert_ptr_nonnull(strstr(asec_errmsg(), "unknown key 'extra'"));
        snprintf(t, sizeof t, "{\"layers\":1,%s", tail);
        ck_assert_int_eq(asec_model_arch_from_json(&a, t, strlen(t)), ASEC_EFORMAT);
        snprintf(t, sizeof t, "%s", j);
        memcpy(strstr(t, "\"version\":1"), "\"version\":2", 11);
        ck_assert_int_eq(asec_model_arch_from_json(&a, t, strlen(t)), ASEC_EFORMAT);
        snprintf(t, sizeof t, "%s", j);
        memcpy(strstr(t, "\"causal\":true"), "\"causal\":1234", 13);
        ck_assert_int_eq(asec_model_arch_from_json(&a, t, strlen(t)), ASEC_EFORMAT);
        snprintf(t, sizeof t, "%s", j);
        memcpy(strstr(t, "\"heads\":4"), "\"heads\":3", 9);
        ck_assert_int_eq(asec_model_arch_from_json(&a, t, strlen(t)), ASEC_EFORMAT);
    }
    ck_assert_int_eq(asec_model_kind_parse(&k, "transformer"), ASEC_EINVAL);
    ck_assert_str_eq(asec_model_kind_name((asec_model_kind)7), "?");
}
END_TEST

START_TEST(test_batch_errors)
{
    asec_model_arch a = arch_text(ASEC_MODEL_POOL_NONE, 1);
    fix f, g;
    double loss, *gr, nanx[12];
    asec_model_batch b;
    asec_model_vec v;
    asec_model_tensor t;

    fix_make(&f, &a, 2, 1, 1, 0.5, "errors");
    gr = zeros(f.P + 64);
    v = (asec_model_vec){gr, NULL, NULL};
    b = f.b;
    b.B = 0;
    ck_assert_int_eq(asec_model_grad(f.m, &loss, &v, &b), ASEC_EBADLEN);
    b = f.b;
    b.T = 5; /* learned positions allow 4 */
    ck_assert_int_eq(asec_model_grad(f.m, &loss, &v, &b), ASEC_EBADLEN);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "T = 5"));
    b = f.b;
    f.tokens[3] = 7; /* vocab 7 */
    ck_assert_int_eq(asec_model_grad(f.m, &loss, &v, &b), ASEC_EINVAL);
    f.tokens[3] = 0;
    f.labels[1] = -1;
    ck_assert_int_eq(asec_model_grad(f.m, &loss, &v, &b), ASEC_EINVAL);
    f.labels[1] = 0;
    b.labels = NULL;
    ck_assert_int_eq(asec_model_grad(f.m, &loss, &v, &b), ASEC_EINVAL);
    ck_assert_int_eq(asec_model_forward(f.m, &loss, NULL, NULL, &b), ASEC_EINVAL);
    ck_assert_int_eq(asec_model_forward(f.m, NULL, NULL, gr, &b), ASEC_OK);
    b = f.b;
    b.x = nanx; /* both tokens and x */
    ck_assert_int_eq(asec_model_grad(f.m, &loss, &v, &b), ASEC_EINVAL);
    {
        double u[64] = {0};
        asec_model_vec out = {gr, NULL, NULL};
        asec_model_cvec dir = {NULL, u, NULL};

        ck_assert_int_eq(asec_model_hvp(f.m, &out, NULL, &dir, &f.b), ASEC_EINVAL);
        ck_assert_ptr_nonnull(strstr(asec_errmsg(), "continuous"));
    }
    ck_assert_int_eq(asec_model_tensor_get(f.m, 1000, &t), ASEC_EINVAL);
    ck_assert_int_eq(asec_model_tensor_find(f.m, "attn.x", &t), ASEC_EINVAL);
    fix_free(&f);

    /* ENUMERIC: a NaN input reaches the attention softmax */
    a = arch_block(0, ASEC_MODEL_POOL_MEAN, ASEC_MODEL_POS_NONE, 1);
    fix_make(&g, &a, 1, 1, 0, 0.5, "nan");
    for (size_t i = 0; i < 12; i++)
        nanx[i] = i == 5 ? NAN : 0.5;
    b = g.b;
    b.x = nanx;
    ck_assert_int_eq(asec_model_grad(g.m, &loss, &v, &b), ASEC_ENUMERIC);
    b = g.b;
    b.tokens = g.labels; /* token ids for a non-text model */
    ck_assert_int_eq(asec_model_forward(g.m, NULL, NULL, gr, &b), ASEC_EINVAL);
    fix_free(&g);
    free(gr);
}
END_TEST

START_TEST(test_file_errors)
{
    char *dir = asec_test_mkdtemp(), path[512], other[512];
    asec_model_arch a = arch_block(0, ASEC_MODEL_POOL_MEAN, ASEC_MODEL_POS_NONE, 1), a2;
    asec_model *m, *m2 = NULL, *m3;
    double *v;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_OK);
    v = zeros(asec_model_param_count(m));
    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    ck_assert_int_eq(asec_model_load(&m2, path), ASEC_ENOENT);
    ck_assert_ptr_null(m2);
    /* a gradient file is not a model without its architecture: write
     * tensors without metadata via the io module */
    {
        asec_io_st_entry e = {"head.bias", ASEC_IO_F64, 1, (size_t[]){4}, v};

        snprintf(path, sizeof path, "%s/noarch.safetensors", dir);
        ck_assert_int_eq(asec_io_st_write(path, &e, 1, NULL, NULL, 0), ASEC_OK);
        ck_assert_int_eq(asec_model_load(&m2, path), ASEC_EFORMAT);
        ck_assert_ptr_nonnull(strstr(asec_errmsg(), "attnsec.arch"));
        ck_assert_int_eq(asec_model_read_vector(m, path, v), ASEC_EFORMAT);
        ck_assert_ptr_nonnull(strstr(asec_errmsg(), "missing"));
    }
    /* a model of another shape: misshaped tensors, named with both shapes */
    a2 = a;
    a2.classes = 5;
    ck_assert_int_eq(asec_model_alloc(&m3, &a2), ASEC_OK);
    snprintf(other, sizeof other, "%s/other.safetensors", dir);
    ck_assert_int_eq(asec_model_save(m3, other), ASEC_OK);
    ck_assert_int_eq(asec_model_read_vector(m, other, v), ASEC_EFORMAT);
    ck_assert_msg(
        strstr(asec_errmsg(), "has shape (5, 4), the architecture needs (3, 4)") != NULL,
        "%s", asec_errmsg());
    /* extra tensors: a vit file read as an attn-block vector */
    asec_model_free(m3);
    ck_assert_int_eq(asec_model_arch_default(&a2, ASEC_MODEL_ATTN_REGRESSION), ASEC_OK);
    a2.channels = 16;
    ck_assert_int_eq(asec_model_alloc(&m3, &a2), ASEC_OK);
    ck_assert_int_eq(asec_model_save(m, other), ASEC_OK);
    ck_assert_int_eq(asec_model_read_vector(m3, other, v), ASEC_EFORMAT);
    asec_model_free(m3);
    /* the output directory does not exist */
    snprintf(path, sizeof path, "%s/no/such/dir/m.safetensors", dir);
    ck_assert_int_eq(asec_model_save(m, path), ASEC_ECREATE);
    free(v);
    asec_model_free(m);
    asec_test_rmtree(dir);
}
END_TEST

/* ---------------------------------------------------------------- oom */

START_TEST(test_oom)
{
    asec_model_arch a = arch_vit(ASEC_MODEL_POOL_CLS);
    char *dir = asec_test_mkdtemp(), path[512];
    fix f;
    int rc = ASEC_ENOMEM;
    long n;

    fix_make(&f, &a, 2, 0, 0, 0.5, "oom");
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    /* allocation, a first gradient (the arenas grow), an HVP, save, load */
    for (int stage = 0; stage < 5; stage++) {
        for (n = 0; n < 1000; n++) {
            asec_model *m = NULL, *fresh = NULL;
            double *g = zeros(f.P + f.nx + f.nsoft);
            asec_model_vec v = {g, g + f.P, g + f.P + f.nx};
            asec_model_cvec d = {g, NULL, NULL};

            if (stage == 1 || stage == 2)
                ck_assert_int_eq(asec_model_clone(&fresh, f.m), ASEC_OK);
            if (stage == 4)
                ck_assert_int_eq(asec_model_save(f.m, path), ASEC_OK);
            asec_debug_fail_alloc(n);
            if (stage == 0)
                rc = asec_model_alloc(&m, asec_model_get_arch(f.m));
            else if (stage == 1)
                rc = asec_model_grad(fresh, NULL, &v, &f.b);
            else if (stage == 2)
                rc = asec_model_hvp(fresh, &v, NULL, &d, &f.b);
            else if (stage == 3)
                rc = asec_model_save(f.m, path);
            else
                rc = asec_model_load(&m, path);
            asec_debug_fail_alloc(-1);
            asec_model_free(m);
            asec_model_free(fresh);
            free(g);
            if (rc == ASEC_OK)
                break;
            ck_assert_msg(rc == ASEC_ENOMEM, "stage %d, allocation %ld: %s (%s)", stage,
                          n, asec_strerror(rc), asec_errmsg());
        }
        ck_assert_int_eq(rc, ASEC_OK);
    }
    fix_free(&f);
    asec_test_rmtree(dir);
}
END_TEST

static Suite *
model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc;

    tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tensors_and_defaults);
    tcase_add_test(tc, test_per_example);
    tcase_add_test(tc, test_mixed_products);
    tcase_add_test(tc, test_regression_matches_kernel);

    tcase_add_test(tc, test_save_load_roundtrip);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_arch_errors);
    tcase_add_test(tc, test_batch_errors);
    tcase_add_test(tc, test_file_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("oom");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_oom);
    suite_add_tcase(s, tc);

    tc = tcase_create("reference");
    tcase_add_loop_test(tc, test_torch_fixture, 0,
                        (int)(sizeof FIXTURES / sizeof FIXTURES[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("gradcheck");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_grad_regression);
    tcase_add_test(tc, test_grad_attn_block);
    tcase_add_test(tc, test_grad_vit);
    tcase_add_test(tc, test_grad_text);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return asec_test_run(model_suite());
}
