/* attn_invert.c - input recovery from attention weights (arXiv 2310.12462).
 *
 * Loss, gradient, Jacobian products, the exact Hessian-vector product and
 * the Gauss-Newton matrix of MATH.md §4.2 (with the separate query/key and
 * value-path variants); Levenberg-Marquardt, regularised Newton and L-BFGS
 * solvers with restarts and a ridge continuation; error modulo the
 * symmetry group (MATH.md §4.3).  See attnsec/attn_invert.h for the
 * contracts.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <lbfgs.h>

#include "attnsec/attn_invert.h"
#include "attnsec/vec.h"
#include "internal.h"

/* Default per-start iteration limits. */
#define LM_DEFAULT_ITER 300
#define LBFGS_DEFAULT_ITER 5000
/* LM damping: start at LM_MU0 * max diag(J^T J), give up on a start when
 * the damping exceeds LM_MU_MAX times that scale (no descent left). */
#define LM_MU0 1e-3
#define LM_MU_MAX 1e16
/* A rejected LM step is backtracked along its direction (halving, Armijo
 * constant LM_ARMIJO) down to LM_BT_MIN before the system is refactorised
 * with a larger damping: one Cholesky per iteration in the common case. */
#define LM_BT_MIN (1.0 / 64.0)
#define LM_ARMIJO 1e-4
/* A start is abandoned as a spurious minimum when the loss fell by less
 * than a factor (1 - STALL_FRAC) over STALL_WINDOW iterations. */
#define STALL_WINDOW 25
#define STALL_FRAC 1e-3
/* The continuation divides lam0 by 10 per stage down to 1e-6 lam0. */
#define CONT_STAGES 7
/* LM iterations after a start reached tol (each is quadratically convergent). */
#define LM_POLISH 4
/* Tile of the blocked transposes of (r n, r n) matrices. */
#define TILE 64

struct asec_attn_invert {
    size_t d, n, nh, dv;
    size_t xr; /* rows of the unknown: d, or 2 d for BOTH */
    asec_attn_invert_options opts;
    double *w;     /* (H, d, d) */
    double *b;     /* (H, n, n) */
    double bsq;    /* ||(B_0, ..., B_{H-1})||_F^2 */
    double *known; /* (d, n) the given X_k (QUERY) or X_q (KEY), or NULL */
    /* value path (dv > 0) */
    double *wv; /* (H, d, dv) */
    double *o;  /* (H, n, dv) */
    double vw;  /* g */
    double osq; /* ||(O_0, ...)||_F^2 */
    /* workspace, per head: the forward state at the last x */
    double *a;  /* (H, d, n) A_h = W_h X_k */
    double *c;  /* (H, d, n) C_h = W_h^T X_q */
    double *f;  /* (H, n, n) F_h */
    double *g;  /* (H, n, n) G_h = dL/dF_h */
    double *p;  /* (H, n, n) P_h */
    double *vv; /* (H, n, dv) V_h = X_k^T W_V */
    double *rr; /* (H, n, dv) R_h = F_h V_h - O_h */
    /* scratch for one head */
    double *da, *dc;      /* (d, n) */
    double *df, *dg, *dp; /* (n, n) */
    double *dvv, *dr;     /* (n, dv) */
    double *tvn;          /* (dv, n) */
};

/* Views of the query and key parts of an (r, n) matrix, and whether each
 * is unknown (part of x); a given part of x itself is ctx->known. */
struct parts {
    asec_mat q, k;
    int hq, hk;
};

static void
split(const asec_attn_invert *ctx, const asec_mat *x, struct parts *pt)
{
    size_t d = ctx->d, n = ctx->n;
    asec_mat kn = asec_mat_view(ctx->known, d, n);

    switch (ctx->opts.inputs) {
    case ASEC_ATTN_INVERT_QUERY:
        pt->q = *x;
        pt->k = kn;
        pt->hq = 1;
        pt->hk = 0;
        break;
    case ASEC_ATTN_INVERT_KEY:
        pt->q = kn;
        pt->k = *x;
        pt->hq = 0;
        pt->hk = 1;
        break;
    case ASEC_ATTN_INVERT_BOTH:
        pt->q = asec_mat_block(x, 0, 0, d, n);
        pt->k = asec_mat_block(x, d, 0, d, n);
        pt->hq = pt->hk = 1;
        break;
    default:
        pt->q = pt->k = *x;
        pt->hq = pt->hk = 1;
        break;
    }
}

static size_t
row_len(const asec_attn_invert *ctx, size_t j)
{
    return ctx->opts.causal ? j + 1 : ctx->n;
}

static double
obs_norm(const asec_attn_invert *ctx)
{
    return sqrt(ctx->bsq + ctx->vw * ctx->osq);
}

static int
check_x(const asec_attn_invert *ctx, const asec_mat *x, const char *what)
{
    if (x->rows != ctx->xr || x->cols != ctx->n)
        ASEC_FAIL(ASEC_EBADLEN, "%s is (%zu, %zu), expected (%zu, %zu)", what, x->rows,
                  x->cols, ctx->xr, ctx->n);
    return ASEC_OK;
}

static int
check_ready(const asec_attn_invert *ctx)
{
    asec_attn_invert_inputs in = ctx->opts.inputs;

    if ((in == ASEC_ATTN_INVERT_QUERY || in == ASEC_ATTN_INVERT_KEY) &&
        ctx->known == NULL)
        ASEC_FAIL(ASEC_EINVAL,
                  "the given %s input is not set (asec_attn_invert_set_known)",
                  in == ASEC_ATTN_INVERT_QUERY ? "key" : "query");
    return ASEC_OK;
}

static int
check_options(const asec_attn_invert_options *o)
{
    if (o->version != ASEC_ATTN_INVERT_OPTIONS_VERSION)
        ASEC_FAIL(ASEC_EINVAL, "attn_invert options version %u, expected %u", o->version,
                  ASEC_ATTN_INVERT_OPTIONS_VERSION);
    if (!(o->scale > 0) || !isfinite(o->scale))
        ASEC_FAIL(ASEC_EINVAL, "scale %g must be finite and > 0", o->scale);
    if (!(o->lam >= 0) || !isfinite(o->lam))
        ASEC_FAIL(ASEC_EINVAL, "lam %g must be finite and >= 0", o->lam);
    if (!(o->continuation >= 0) || !isfinite(o->continuation))
        ASEC_FAIL(ASEC_EINVAL, "continuation %g must be finite and >= 0",
                  o->continuation);
    if (o->solver != ASEC_ATTN_INVERT_LM && o->solver != ASEC_ATTN_INVERT_LBFGS &&
        o->solver != ASEC_ATTN_INVERT_NEWTON)
        ASEC_FAIL(ASEC_EINVAL, "unknown solver %d", (int)o->solver);
    if (o->inputs != ASEC_ATTN_INVERT_TIED && o->inputs != ASEC_ATTN_INVERT_QUERY &&
        o->inputs != ASEC_ATTN_INVERT_KEY && o->inputs != ASEC_ATTN_INVERT_BOTH)
        ASEC_FAIL(ASEC_EINVAL, "unknown inputs mode %d", (int)o->inputs);
    if (o->restarts < 1)
        ASEC_FAIL(ASEC_EINVAL, "restarts must be >= 1");
    if (!(o->init_std > 0) || !isfinite(o->init_std))
        ASEC_FAIL(ASEC_EINVAL, "init_std %g must be finite and > 0", o->init_std);
    if (!(o->tol > 0 && o->tol < 1))
        ASEC_FAIL(ASEC_EINVAL, "tol %g must be in (0, 1)", o->tol);
    if (!(o->stochastic_tol >= 0 && o->stochastic_tol < 1))
        ASEC_FAIL(ASEC_EINVAL, "stochastic_tol %g must be in [0, 1)", o->stochastic_tol);
    if (o->max_iter > (size_t)1 << 30)
        ASEC_FAIL(ASEC_EINVAL, "max_iter %zu exceeds 2^30", o->max_iter);
    return ASEC_OK;
}

static int
check_b(const asec_attn_invert_options *o, size_t h, const asec_mat *b, size_t n)
{
    double tol = o->stochastic_tol;

    for (size_t j = 0; j < n; j++) {
        double sum = 0.0;

        for (size_t k = 0; k < n; k++) {
            double v = *asec_mat_at(b, j, k);

            if (!isfinite(v))
                ASEC_FAIL(ASEC_ENUMERIC, "B[%zu] has a non-finite entry at (%zu, %zu)", h,
                          j, k);
            if (v < -tol)
                ASEC_FAIL(ASEC_EFORMAT, "B[%zu] has the negative entry %g at (%zu, %zu)",
                          h, v, j, k);
            if (o->causal && k > j && fabs(v) > tol)
                ASEC_FAIL(ASEC_EFORMAT,
                          "B[%zu] has %g at (%zu, %zu), above the diagonal of a causal "
                          "mask",
                          h, v, j, k);
            sum += v;
        }
        if (fabs(sum - 1.0) > tol)
            ASEC_FAIL(
                ASEC_EFORMAT,
                "B[%zu] is not row-stochastic: row %zu sums to %.17g (tolerance %g)", h,
                j, sum, tol);
    }
    return ASEC_OK;
}

static int
check_finite(const asec_mat *m, const char *what, size_t h)
{
    for (size_t i = 0; i < m->rows; i++)
        for (size_t j = 0; j < m->cols; j++)
            if (!isfinite(*asec_mat_at(m, i, j)))
                ASEC_FAIL(ASEC_ENUMERIC, "%s[%zu] has a non-finite entry at (%zu, %zu)",
                          what, h, i, j);
    return ASEC_OK;
}

/* Copy a view into contiguous storage. */
static void
copy_in(double *dst, const asec_mat *src)
{
    for (size_t i = 0; i < src->rows; i++)
        memcpy(dst + i * src->cols, asec_mat_at(src, i, 0), src->cols * sizeof(double));
}

int
asec_attn_invert_alloc(asec_attn_invert **out, size_t d, size_t n, size_t nheads,
                       const asec_mat *w, const asec_mat *b,
                       const asec_attn_invert_options *opts)
{
    asec_attn_invert_options defaults = ASEC_ATTN_INVERT_OPTIONS_INIT;
    asec_attn_invert *ctx = NULL;
    size_t dd, nn, dn, hdd, hnn, hdn, xr;
    double bsq = 0.0;
    int rc;

    *out = NULL;
    if (opts == NULL)
        opts = &defaults;
    ASEC_TRY(check_options(opts));
    if (nheads == 0 || d == 0 || n < 2)
        ASEC_FAIL(ASEC_EINVAL, "need nheads >= 1, d >= 1 and n >= 2 (got %zu, %zu, %zu)",
                  nheads, d, n);
    xr = opts->inputs == ASEC_ATTN_INVERT_BOTH ? 2 * d : d;
    if (asec__mul_size(d, d, &dd) || asec__mul_size(n, n, &nn) ||
        asec__mul_size(d, n, &dn) || asec__mul_size(dd, nheads, &hdd) ||
        asec__mul_size(nn, nheads, &hnn) || asec__mul_size(dn, nheads, &hdn) ||
        asec__mul_size(hnn, 8, &hnn) || asec__mul_size(hdn, 4, &hdn) || xr < d)
        ASEC_FAIL(ASEC_ENOMEM, "attn_invert problem size overflows");
    hnn /= 8;
    hdn /= 4;
    for (size_t h = 0; h < nheads; h++) {
        if (w[h].rows != d || w[h].cols != d)
            ASEC_FAIL(ASEC_EBADLEN, "W[%zu] is (%zu, %zu), expected (%zu, %zu)", h,
                      w[h].rows, w[h].cols, d, d);
        if (b[h].rows != n || b[h].cols != n)
            ASEC_FAIL(ASEC_EBADLEN, "B[%zu] is (%zu, %zu), expected (%zu, %zu)", h,
                      b[h].rows, b[h].cols, n, n);
        ASEC_TRY(check_finite(&w[h], "W", h));
        ASEC_TRY(check_b(opts, h, &b[h], n));
    }

    ctx = asec__calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return ASEC_ENOMEM;
    ctx->d = d;
    ctx->n = n;
    ctx->nh = nheads;
    ctx->xr = xr;
    ctx->opts = *opts;
    ctx->w = asec__calloc(hdd, sizeof(double));
    ctx->b = asec__calloc(hnn, sizeof(double));
    ctx->a = asec__calloc(hdn, sizeof(double));
    ctx->c = asec__calloc(hdn, sizeof(double));
    ctx->f = asec__calloc(hnn, sizeof(double));
    ctx->g = asec__calloc(hnn, sizeof(double));
    ctx->p = asec__calloc(hnn, sizeof(double));
    ctx->da = asec__calloc(dn, sizeof(double));
    ctx->dc = asec__calloc(dn, sizeof(double));
    ctx->df = asec__calloc(nn, sizeof(double));
    ctx->dg = asec__calloc(nn, sizeof(double));
    ctx->dp = asec__calloc(nn, sizeof(double));
    if (!ctx->w || !ctx->b || !ctx->a || !ctx->c || !ctx->f || !ctx->g || !ctx->p ||
        !ctx->da || !ctx->dc || !ctx->df || !ctx->dg || !ctx->dp) {
        rc = ASEC_ENOMEM;
        goto fail;
    }
    for (size_t h = 0; h < nheads; h++) {
        copy_in(ctx->w + h * dd, &w[h]);
        for (size_t j = 0; j < n; j++) {
            double *row = ctx->b + h * nn + j * n;

            memcpy(row, asec_mat_at(&b[h], j, 0), n * sizeof(double));
            if (opts->causal) /* masked entries are exactly 0, as F's are */
                for (size_t k = j + 1; k < n; k++)
                    row[k] = 0.0;
            for (size_t k = 0; k < n; k++)
                bsq += row[k] * row[k];
        }
    }
    ctx->bsq = bsq;
    *out = ctx;
    return ASEC_OK;
fail:
    asec_attn_invert_free(ctx);
    return rc;
}

void
asec_attn_invert_free(asec_attn_invert *ctx)
{
    if (ctx == NULL)
        return;
    asec__free(ctx->w);
    asec__free(ctx->b);
    asec__free(ctx->known);
    asec__free(ctx->wv);
    asec__free(ctx->o);
    asec__free(ctx->a);
    asec__free(ctx->c);
    asec__free(ctx->f);
    asec__free(ctx->g);
    asec__free(ctx->p);
    asec__free(ctx->vv);
    asec__free(ctx->rr);
    asec__free(ctx->da);
    asec__free(ctx->dc);
    asec__free(ctx->df);
    asec__free(ctx->dg);
    asec__free(ctx->dp);
    asec__free(ctx->dvv);
    asec__free(ctx->dr);
    asec__free(ctx->tvn);
    asec__free(ctx);
}

void
asec_attn_invert_unknown_shape(const asec_attn_invert *ctx, size_t *rows, size_t *cols)
{
    *rows = ctx->xr;
    *cols = ctx->n;
}

int
asec_attn_invert_set_known(asec_attn_invert *ctx, const asec_mat *known)
{
    asec_attn_invert_inputs in = ctx->opts.inputs;

    if (in != ASEC_ATTN_INVERT_QUERY && in != ASEC_ATTN_INVERT_KEY)
        ASEC_FAIL(ASEC_EINVAL, "a given input needs inputs QUERY or KEY");
    if (known->rows != ctx->d || known->cols != ctx->n)
        ASEC_FAIL(ASEC_EBADLEN, "the given input is (%zu, %zu), expected (%zu, %zu)",
                  known->rows, known->cols, ctx->d, ctx->n);
    ASEC_TRY(check_finite(known, "the given input", 0));
    if (ctx->known == NULL) {
        ctx->known = asec__malloc(ctx->d * ctx->n * sizeof(double));
        if (ctx->known == NULL)
            return ASEC_ENOMEM;
    }
    copy_in(ctx->known, known);
    return ASEC_OK;
}

int
asec_attn_invert_set_values(asec_attn_invert *ctx, size_t dv, const asec_mat *wv,
                            const asec_mat *o, double weight)
{
    size_t d = ctx->d, n = ctx->n, nh = ctx->nh, hdv, hnv, nv;
    double osq = 0.0;

    if (ctx->wv != NULL)
        ASEC_FAIL(ASEC_EINVAL, "the value path is already set");
    if (dv == 0)
        ASEC_FAIL(ASEC_EINVAL, "the value dimension dv must be >= 1");
    if (!(weight > 0) || !isfinite(weight))
        ASEC_FAIL(ASEC_EINVAL, "value weight %g must be finite and > 0", weight);
    if (asec__mul_size(d, dv, &hdv) || asec__mul_size(hdv, nh, &hdv) ||
        asec__mul_size(n, dv, &nv) || asec__mul_size(nv, nh, &hnv))
        ASEC_FAIL(ASEC_ENOMEM, "value path size overflows");
    for (size_t h = 0; h < nh; h++) {
        if (wv[h].rows != d || wv[h].cols != dv)
            ASEC_FAIL(ASEC_EBADLEN, "W_V[%zu] is (%zu, %zu), expected (%zu, %zu)", h,
                      wv[h].rows, wv[h].cols, d, dv);
        if (o[h].rows != n || o[h].cols != dv)
            ASEC_FAIL(ASEC_EBADLEN, "O[%zu] is (%zu, %zu), expected (%zu, %zu)", h,
                      o[h].rows, o[h].cols, n, dv);
        ASEC_TRY(check_finite(&wv[h], "W_V", h));
        ASEC_TRY(check_finite(&o[h], "O", h));
    }
    ctx->wv = asec__malloc(hdv * sizeof(double));
    ctx->o = asec__malloc(hnv * sizeof(double));
    ctx->vv = asec__calloc(hnv, sizeof(double));
    ctx->rr = asec__calloc(hnv, sizeof(double));
    ctx->dvv = asec__calloc(nv, sizeof(double));
    ctx->dr = asec__calloc(nv, sizeof(double));
    ctx->tvn = asec__calloc(nv, sizeof(double));
    if (!ctx->wv || !ctx->o || !ctx->vv || !ctx->rr || !ctx->dvv || !ctx->dr ||
        !ctx->tvn) {
        /* Leave the problem without a value path. */
        asec__free(ctx->wv);
        asec__free(ctx->o);
        asec__free(ctx->vv);
        asec__free(ctx->rr);
        asec__free(ctx->dvv);
        asec__free(ctx->dr);
        asec__free(ctx->tvn);
        ctx->wv = ctx->o = ctx->vv = ctx->rr = ctx->dvv = ctx->dr = ctx->tvn = NULL;
        return ASEC_ENOMEM;
    }
    for (size_t h = 0; h < nh; h++) {
        copy_in(ctx->wv + h * d * dv, &wv[h]);
        copy_in(ctx->o + h * n * dv, &o[h]);
    }
    for (size_t i = 0; i < hnv; i++)
        osq += ctx->o[i] * ctx->o[i];
    ctx->dv = dv;
    ctx->vw = weight;
    ctx->osq = osq;
    return ASEC_OK;
}

/* ---------------------------------------------------------------- forward */

/* The forward pass for head h: A = W X_k, C = W^T X_q,
 * F = rowsoftmax(s X_q^T A), and with values V = X_k^T W_V, R = F V - O. */
static int
forward_head(asec_attn_invert *ctx, size_t h, const struct parts *pt)
{
    size_t d = ctx->d, n = ctx->n, dv = ctx->dv;
    asec_mat w = asec_mat_view(ctx->w + h * d * d, d, d);
    asec_mat a = asec_mat_view(ctx->a + h * d * n, d, n);
    asec_mat c = asec_mat_view(ctx->c + h * d * n, d, n);
    asec_mat f = asec_mat_view(ctx->f + h * n * n, n, n);

    ASEC_TRY(
        asec_mat_gemm(&a, 1.0, &w, ASEC_NOTRANS, &pt->k, ASEC_NOTRANS, 0.0));    // (d, n)
    ASEC_TRY(asec_mat_gemm(&c, 1.0, &w, ASEC_TRANS, &pt->q, ASEC_NOTRANS, 0.0)); // (d, n)
    // Z = s X_q^T A  (n, n), then the row softmax in place over the unmasked part
    ASEC_TRY(
        asec_mat_gemm(&f, ctx->opts.scale, &pt->q, ASEC_TRANS, &a, ASEC_NOTRANS, 0.0));
    for (size_t j = 0; j < n; j++) {
        double *row = f.data + j * n;
        size_t len = row_len(ctx, j);

        if (asec_vec_softmax(row, row, len) != ASEC_OK)
            ASEC_FAIL(ASEC_ENUMERIC, "non-finite attention logit in head %zu, row %zu", h,
                      j);
        for (size_t k = len; k < n; k++)
            row[k] = 0.0;
    }
    if (dv > 0) {
        asec_mat wv = asec_mat_view(ctx->wv + h * d * dv, d, dv);
        asec_mat v = asec_mat_view(ctx->vv + h * n * dv, n, dv);
        asec_mat r = asec_mat_view(ctx->rr + h * n * dv, n, dv);

        ASEC_TRY(asec_mat_gemm(&v, 1.0, &pt->k, ASEC_TRANS, &wv, ASEC_NOTRANS, 0.0));
        memcpy(r.data, ctx->o + h * n * dv, n * dv * sizeof(double));
        ASEC_TRY(asec_mat_gemm(&r, 1.0, &f, ASEC_NOTRANS, &v, ASEC_NOTRANS, -1.0));
    }
    return ASEC_OK;
}

/* P = S(f_j) applied to each row of gm (n, n) into pm, masked entries 0. */
static void
softmax_rows_jvp(const asec_attn_invert *ctx, double *pm, const double *f,
                 const double *gm)
{
    size_t n = ctx->n;

    for (size_t j = 0; j < n; j++) {
        size_t len = row_len(ctx, j);

        asec_vec_softmax_jvp(pm + j * n, f + j * n, gm + j * n, len);
        for (size_t k = len; k < n; k++)
            pm[j * n + k] = 0.0;
    }
}

/* The pullback of head h through Z = s X_q^T W X_k and V = X_k^T W_V:
 *   out_q += s A P^T,   out_k += s C P + coef W_V rv^T F
 * (the forward lines Z = s X_q^T A and R = F V - O); rv may be NULL. */
static int
pullback_head(asec_attn_invert *ctx, size_t h, struct parts *out, const asec_mat *p,
              const asec_mat *rv, double coef)
{
    size_t d = ctx->d, n = ctx->n, dv = ctx->dv;
    asec_mat a = asec_mat_view(ctx->a + h * d * n, d, n);
    asec_mat c = asec_mat_view(ctx->c + h * d * n, d, n);
    double s = ctx->opts.scale;

    if (out->hq)
        ASEC_TRY(asec_mat_gemm(&out->q, s, &a, ASEC_NOTRANS, p, ASEC_TRANS, 1.0));
    if (out->hk) {
        ASEC_TRY(asec_mat_gemm(&out->k, s, &c, ASEC_NOTRANS, p, ASEC_NOTRANS, 1.0));
        if (dv > 0 && rv != NULL) {
            asec_mat f = asec_mat_view(ctx->f + h * n * n, n, n);
            asec_mat wv = asec_mat_view(ctx->wv + h * d * dv, d, dv);
            asec_mat t = asec_mat_view(ctx->tvn, dv, n);

            ASEC_TRY(asec_mat_gemm(&t, 1.0, rv, ASEC_TRANS, &f, ASEC_NOTRANS, 0.0));
            ASEC_TRY(
                asec_mat_gemm(&out->k, coef, &wv, ASEC_NOTRANS, &t, ASEC_NOTRANS, 1.0));
        }
    }
    return ASEC_OK;
}

/* Loss and gradient with ridge weight lam; *rsq receives the squared norm
 * of the stacked residual.  Always leaves F, G, P (and V, R) of every
 * head at x in the workspace. */
static int
eval_lam(asec_attn_invert *ctx, double *loss, double *rsq, asec_mat *grad,
         const asec_mat *x, double lam)
{
    size_t n = ctx->n, nn = n * n, dv = ctx->dv;
    double r2 = 0.0, x2 = 0.0;
    struct parts pt, gp;

    split(ctx, x, &pt);
    if (grad != NULL) {
        asec_mat_fill(grad, 0.0);
        split(ctx, grad, &gp);
    }
    for (size_t h = 0; h < ctx->nh; h++) {
        const double *b = ctx->b + h * nn;
        double *f = ctx->f + h * nn, *g = ctx->g + h * nn;
        asec_mat gm = asec_mat_view(g, n, n), pm = asec_mat_view(ctx->p + h * nn, n, n);
        asec_mat rm = asec_mat_view(dv > 0 ? ctx->rr + h * n * dv : NULL, n, dv);

        ASEC_TRY(forward_head(ctx, h, &pt));
        // G = dL/dF = (F - B) + g R V^T
        for (size_t i = 0; i < nn; i++) {
            g[i] = f[i] - b[i];
            r2 += g[i] * g[i];
        }
        if (dv > 0) {
            asec_mat vm = asec_mat_view(ctx->vv + h * n * dv, n, dv);

            for (size_t i = 0; i < n * dv; i++)
                r2 += ctx->vw * rm.data[i] * rm.data[i];
            ASEC_TRY(
                asec_mat_gemm(&gm, ctx->vw, &rm, ASEC_NOTRANS, &vm, ASEC_TRANS, 1.0));
        }
        // P_j = S(f_j) G_j
        softmax_rows_jvp(ctx, pm.data, f, g);
        if (grad != NULL)
            ASEC_TRY(pullback_head(ctx, h, &gp, &pm, dv > 0 ? &rm : NULL, ctx->vw));
    }
    for (size_t i = 0; i < x->rows; i++) {
        const double *xi = asec_mat_at(x, i, 0);

        x2 += asec_vec_dot(xi, xi, n);
        if (grad != NULL && lam > 0)
            asec_vec_axpy(asec_mat_at(grad, i, 0), lam, xi, n);
    }
    if (rsq != NULL)
        *rsq = r2;
    *loss = 0.5 * r2 + 0.5 * lam * x2;
    if (!isfinite(*loss))
        ASEC_FAIL(ASEC_ENUMERIC, "attn_invert loss is not finite");
    return ASEC_OK;
}

int
asec_attn_invert_eval(asec_attn_invert *ctx, double *loss, asec_mat *grad,
                      const asec_mat *x)
{
    ASEC_TRY(check_ready(ctx));
    ASEC_TRY(check_x(ctx, x, "x"));
    if (grad != NULL)
        ASEC_TRY(check_x(ctx, grad, "grad"));
    return eval_lam(ctx, loss, NULL, grad, x, ctx->opts.lam);
}

/* J e for head h at the forward state: dZ = s (E_q^T A + C^T E_k),
 * dF_j = S(f_j) dZ_j into df (n, n); with values
 * dR = dF V + F (E_k^T W_V) into dr (n, dv). */
static int
jvp_head(asec_attn_invert *ctx, size_t h, asec_mat *df, asec_mat *dr,
         const struct parts *ep)
{
    size_t d = ctx->d, n = ctx->n, dv = ctx->dv;
    asec_mat a = asec_mat_view(ctx->a + h * d * n, d, n);
    asec_mat c = asec_mat_view(ctx->c + h * d * n, d, n);
    const double *f = ctx->f + h * n * n;
    double s = ctx->opts.scale, beta = 0.0;

    if (ep->hq) {
        ASEC_TRY(asec_mat_gemm(df, s, &ep->q, ASEC_TRANS, &a, ASEC_NOTRANS, 0.0));
        beta = 1.0;
    }
    if (ep->hk)
        ASEC_TRY(asec_mat_gemm(df, s, &c, ASEC_TRANS, &ep->k, ASEC_NOTRANS, beta));
    for (size_t j = 0; j < n; j++) {
        double *row = asec_mat_at(df, j, 0);
        size_t len = row_len(ctx, j);

        asec_vec_softmax_jvp(row, f + j * n, row, len);
        for (size_t k = len; k < n; k++)
            row[k] = 0.0;
    }
    if (dv > 0 && dr != NULL) {
        asec_mat fm = asec_mat_view(ctx->f + h * n * n, n, n);
        asec_mat vm = asec_mat_view(ctx->vv + h * n * dv, n, dv);

        ASEC_TRY(asec_mat_gemm(dr, 1.0, df, ASEC_NOTRANS, &vm, ASEC_NOTRANS, 0.0));
        if (ep->hk) {
            asec_mat wv = asec_mat_view(ctx->wv + h * d * dv, d, dv);
            asec_mat dvm = asec_mat_view(ctx->dvv, n, dv);

            ASEC_TRY(
                asec_mat_gemm(&dvm, 1.0, &ep->k, ASEC_TRANS, &wv, ASEC_NOTRANS, 0.0));
            ASEC_TRY(asec_mat_gemm(dr, 1.0, &fm, ASEC_NOTRANS, &dvm, ASEC_NOTRANS, 1.0));
        }
    }
    return ASEC_OK;
}

static int
check_resid(const asec_attn_invert *ctx, const asec_mat *m, const char *what)
{
    if (m->rows != ctx->nh * ctx->n || m->cols != ctx->n + ctx->dv)
        ASEC_FAIL(ASEC_EBADLEN, "%s is (%zu, %zu), expected (%zu, %zu)", what, m->rows,
                  m->cols, ctx->nh * ctx->n, ctx->n + ctx->dv);
    return ASEC_OK;
}

/* out = J e at the forward state (out (H n, n + dv)). */
static int
jvp_core(asec_attn_invert *ctx, asec_mat *out, const asec_mat *e)
{
    size_t n = ctx->n, dv = ctx->dv;
    double sg = sqrt(ctx->vw);
    struct parts ep;

    split(ctx, e, &ep);
    for (size_t h = 0; h < ctx->nh; h++) {
        asec_mat df = asec_mat_block(out, h * n, 0, n, n);
        asec_mat dr = asec_mat_block(out, h * n, n, n, dv);

        ASEC_TRY(jvp_head(ctx, h, &df, dv > 0 ? &dr : NULL, &ep));
        for (size_t j = 0; j < n && dv > 0; j++)
            for (size_t k = 0; k < dv; k++)
                *asec_mat_at(&dr, j, k) *= sg;
    }
    return ASEC_OK;
}

int
asec_attn_invert_jvp(asec_attn_invert *ctx, asec_mat *out, const asec_mat *x,
                     const asec_mat *e)
{
    struct parts pt;

    ASEC_TRY(check_ready(ctx));
    ASEC_TRY(check_x(ctx, x, "x"));
    ASEC_TRY(check_x(ctx, e, "e"));
    ASEC_TRY(check_resid(ctx, out, "jvp output"));
    split(ctx, x, &pt);
    for (size_t h = 0; h < ctx->nh; h++)
        ASEC_TRY(forward_head(ctx, h, &pt));
    return jvp_core(ctx, out, e);
}

int
asec_attn_invert_vjp(asec_attn_invert *ctx, asec_mat *out, const asec_mat *x,
                     const asec_mat *v)
{
    size_t n = ctx->n, dv = ctx->dv;
    double sg = sqrt(ctx->vw);
    struct parts pt, op;

    ASEC_TRY(check_ready(ctx));
    ASEC_TRY(check_x(ctx, x, "x"));
    ASEC_TRY(check_x(ctx, out, "vjp output"));
    ASEC_TRY(check_resid(ctx, v, "vjp input"));
    split(ctx, x, &pt);
    split(ctx, out, &op);
    asec_mat_fill(out, 0.0);
    for (size_t h = 0; h < ctx->nh; h++) {
        asec_mat gm = asec_mat_view(ctx->dg, n, n), pm = asec_mat_view(ctx->dp, n, n);
        asec_mat vo = asec_mat_block(v, h * n, n, n, dv);

        ASEC_TRY(forward_head(ctx, h, &pt));
        // G' = v_F + sqrt(g) v_O V^T; P'_j = S(f_j) G'_j
        for (size_t j = 0; j < n; j++)
            memcpy(gm.data + j * n, asec_mat_at(v, h * n + j, 0), n * sizeof(double));
        if (dv > 0) {
            asec_mat vm = asec_mat_view(ctx->vv + h * n * dv, n, dv);

            ASEC_TRY(asec_mat_gemm(&gm, sg, &vo, ASEC_NOTRANS, &vm, ASEC_TRANS, 1.0));
        }
        softmax_rows_jvp(ctx, pm.data, ctx->f + h * n * n, gm.data);
        ASEC_TRY(pullback_head(ctx, h, &op, &pm, dv > 0 ? &vo : NULL, sg));
    }
    return ASEC_OK;
}

/* ------------------------------------------------------------------- HVP */

/* out = (d^2 L) e + lam e at the state left by eval_lam (F, G, P, V, R of
 * every head at x).  Forward-over-reverse: differentiate
 *   grad_q = s A P^T,   grad_k = s C P + g W_V R^T F
 * along e, with
 *   dA = W E_k, dC = W^T E_q, dF_j = S(f_j) dZ_j,
 *   dV = E_k^T W_V, dR = dF V + F dV, dG = dF + g (dR V^T + R dV^T),
 *   dP_j = dS(f_j)[G_j] + S(f_j) dG_j,
 *   dS(f)[u] = df o u - <f, u> df - <df, u> f. */
static int
hvp_core(asec_attn_invert *ctx, asec_mat *out, const asec_mat *e, double lam)
{
    size_t d = ctx->d, n = ctx->n, nn = n * n, dv = ctx->dv;
    double s = ctx->opts.scale, gw = ctx->vw;
    struct parts ep, op;

    split(ctx, e, &ep);
    split(ctx, out, &op);
    asec_mat_fill(out, 0.0);
    for (size_t h = 0; h < ctx->nh; h++) {
        asec_mat w = asec_mat_view(ctx->w + h * d * d, d, d);
        asec_mat a = asec_mat_view(ctx->a + h * d * n, d, n);
        asec_mat c = asec_mat_view(ctx->c + h * d * n, d, n);
        asec_mat pm = asec_mat_view(ctx->p + h * nn, n, n);
        asec_mat da = asec_mat_view(ctx->da, d, n), dc = asec_mat_view(ctx->dc, d, n);
        asec_mat df = asec_mat_view(ctx->df, n, n), dg = asec_mat_view(ctx->dg, n, n);
        asec_mat dp = asec_mat_view(ctx->dp, n, n), dr = asec_mat_view(ctx->dr, n, dv);
        const double *f = ctx->f + h * nn, *g = ctx->g + h * nn;

        ASEC_TRY(jvp_head(ctx, h, &df, dv > 0 ? &dr : NULL, &ep)); // dF, dR (dV in dvv)
        memcpy(dg.data, df.data, nn * sizeof(double));
        if (dv > 0) {
            asec_mat vm = asec_mat_view(ctx->vv + h * n * dv, n, dv);
            asec_mat rm = asec_mat_view(ctx->rr + h * n * dv, n, dv);
            asec_mat dvm = asec_mat_view(ctx->dvv, n, dv);

            ASEC_TRY(asec_mat_gemm(&dg, gw, &dr, ASEC_NOTRANS, &vm, ASEC_TRANS, 1.0));
            if (ep.hk)
                ASEC_TRY(
                    asec_mat_gemm(&dg, gw, &rm, ASEC_NOTRANS, &dvm, ASEC_TRANS, 1.0));
        }
        for (size_t j = 0; j < n; j++) {
            const double *fj = f + j * n, *gj = g + j * n, *dfj = df.data + j * n;
            double *dpj = dp.data + j * n;
            size_t len = row_len(ctx, j);
            double fg = asec_vec_dot(fj, gj, len), dfg = asec_vec_dot(dfj, gj, len);

            asec_vec_softmax_jvp(dpj, fj, dg.data + j * n, len);
            for (size_t k = 0; k < len; k++)
                dpj[k] += dfj[k] * gj[k] - fg * dfj[k] - dfg * fj[k];
            for (size_t k = len; k < n; k++)
                dpj[k] = 0.0;
        }
        // d grad_q = s (dA P^T + A dP^T), dA = W E_k
        if (op.hq) {
            if (ep.hk) {
                ASEC_TRY(
                    asec_mat_gemm(&da, 1.0, &w, ASEC_NOTRANS, &ep.k, ASEC_NOTRANS, 0.0));
                ASEC_TRY(
                    asec_mat_gemm(&op.q, s, &da, ASEC_NOTRANS, &pm, ASEC_TRANS, 1.0));
            }
            ASEC_TRY(asec_mat_gemm(&op.q, s, &a, ASEC_NOTRANS, &dp, ASEC_TRANS, 1.0));
        }
        // d grad_k = s (dC P + C dP) + g W_V (dR^T F + R^T dF), dC = W^T E_q
        if (op.hk) {
            if (ep.hq) {
                ASEC_TRY(
                    asec_mat_gemm(&dc, 1.0, &w, ASEC_TRANS, &ep.q, ASEC_NOTRANS, 0.0));
                ASEC_TRY(
                    asec_mat_gemm(&op.k, s, &dc, ASEC_NOTRANS, &pm, ASEC_NOTRANS, 1.0));
            }
            ASEC_TRY(asec_mat_gemm(&op.k, s, &c, ASEC_NOTRANS, &dp, ASEC_NOTRANS, 1.0));
            if (dv > 0) {
                asec_mat fm = asec_mat_view(ctx->f + h * nn, n, n);
                asec_mat rm = asec_mat_view(ctx->rr + h * n * dv, n, dv);
                asec_mat wv = asec_mat_view(ctx->wv + h * d * dv, d, dv);
                asec_mat t = asec_mat_view(ctx->tvn, dv, n);

                ASEC_TRY(asec_mat_gemm(&t, 1.0, &dr, ASEC_TRANS, &fm, ASEC_NOTRANS, 0.0));
                ASEC_TRY(asec_mat_gemm(&t, 1.0, &rm, ASEC_TRANS, &df, ASEC_NOTRANS, 1.0));
                ASEC_TRY(
                    asec_mat_gemm(&op.k, gw, &wv, ASEC_NOTRANS, &t, ASEC_NOTRANS, 1.0));
            }
        }
    }
    if (lam > 0)
        for (size_t i = 0; i < e->rows; i++)
            asec_vec_axpy(asec_mat_at(out, i, 0), lam, asec_mat_at(e, i, 0), n);
    return ASEC_OK;
}

int
asec_attn_invert_hvp(asec_attn_invert *ctx, asec_mat *out, const asec_mat *x,
                     const asec_mat *e)
{
    double loss;

    ASEC_TRY(check_ready(ctx));
    ASEC_TRY(check_x(ctx, x, "x"));
    ASEC_TRY(check_x(ctx, e, "e"));
    ASEC_TRY(check_x(ctx, out, "hvp output"));
    ASEC_TRY(eval_lam(ctx, &loss, NULL, NULL, x, ctx->opts.lam));
    return hvp_core(ctx, out, e, ctx->opts.lam);
}

/* ------------------------------------------------------- Gauss-Newton */

/* In-place symmetric helpers on an (N, N) matrix, tiled for the cache. */
static void
sym_add_transpose_lower(asec_mat *h) // lower := H + H^T (the upper is stale)
{
    size_t N = h->rows, ld = h->ld;
    double *H = h->data;

    for (size_t ib = 0; ib < N; ib += TILE)
        for (size_t jb = 0; jb <= ib; jb += TILE)
            for (size_t i = ib; i < ib + TILE && i < N; i++)
                for (size_t j = jb; j < jb + TILE && j < i; j++)
                    H[i * ld + j] += H[j * ld + i];
    for (size_t i = 0; i < N; i++)
        H[i * ld + i] *= 2.0;
}

static void
sym_mirror_lower(asec_mat *h) // upper := lower^T
{
    size_t N = h->rows, ld = h->ld;
    double *H = h->data;

    for (size_t ib = 0; ib < N; ib += TILE)
        for (size_t jb = 0; jb <= ib; jb += TILE)
            for (size_t i = ib; i < ib + TILE && i < N; i++)
                for (size_t j = jb; j < jb + TILE && j < i; j++)
                    H[j * ld + i] = H[i * ld + j];
}

/* Scratch of gn_build. */
struct gn_scratch {
    double *as, *as2, *af, *blk, *cf, *q, *y1, *y3; /* attention part */
    double *jo, *e, *col;                           /* value part */
};

static void
gn_scratch_free(struct gn_scratch *s)
{
    asec__free(s->as);
    asec__free(s->as2);
    asec__free(s->af);
    asec__free(s->blk);
    asec__free(s->cf);
    asec__free(s->q);
    asec__free(s->y1);
    asec__free(s->y3);
    asec__free(s->jo);
    asec__free(s->e);
    asec__free(s->col);
    memset(s, 0, sizeof *s);
}

static int
gn_scratch_alloc(struct gn_scratch *s, const asec_attn_invert *ctx)
{
    size_t d = ctx->d, n = ctx->n, dv = ctx->dv, dm = ctx->xr * n;

    memset(s, 0, sizeof *s);
    /* Sizes are bounded by ASEC_ATTN_INVERT_LM_MAX_UNKNOWNS (checked by
     * the callers), so these products cannot overflow. */
    s->as = asec__malloc(d * n * sizeof(double));
    s->as2 = asec__malloc(d * n * sizeof(double));
    s->af = asec__malloc(2 * d * sizeof(double));
    s->blk = asec__malloc(d * d * sizeof(double));
    s->cf = asec__malloc(d * n * sizeof(double));
    s->q = asec__malloc(n * sizeof(double));
    s->y1 = asec__malloc(n * d * n * sizeof(double));
    s->y3 = asec__malloc(n * d * n * sizeof(double));
    if (!s->as || !s->as2 || !s->af || !s->blk || !s->cf || !s->q || !s->y1 || !s->y3)
        goto fail;
    if (dv > 0) {
        s->jo = asec__malloc(ctx->nh * n * dv * dm * sizeof(double));
        s->e = asec__malloc(dm * sizeof(double));
        s->col = asec__malloc(ctx->nh * n * (n + dv) * sizeof(double));
        if (!s->jo || !s->e || !s->col)
            goto fail;
    }
    return ASEC_OK;
fail:
    gn_scratch_free(s);
    return ASEC_ENOMEM;
}

static int
check_lm_size(const asec_attn_invert *ctx)
{
    if (ctx->xr * ctx->n > ASEC_ATTN_INVERT_LM_MAX_UNKNOWNS)
        ASEC_FAIL(ASEC_ELIMIT,
                  "%zu unknowns exceed the Gauss-Newton/Newton limit %d; use L-BFGS",
                  ctx->xr * ctx->n, ASEC_ATTN_INVERT_LM_MAX_UNKNOWNS);
    return ASEC_OK;
}

/* as = A S(f) = A diag(f) - (A f) f^T (d, n); af: d scratch. */
static void
times_softmax_jac(double *as, const double *a, const double *f, size_t d, size_t n,
                  double *af)
{
    for (size_t x = 0; x < d; x++) {
        const double *ax = a + x * n;

        af[x] = asec_vec_dot(ax, f, n);
        for (size_t m = 0; m < n; m++)
            as[x * n + m] = (ax[m] - af[x]) * f[m];
    }
}

/* The lower triangle of hm = J^T J at the forward state of every head
 * (the upper triangle is left stale).  With dZ_j = s (A^T e_j + E^T c_j)
 * (e_j, c_j: column j of E_q and C) and S_j = S(f_j), the quadratic form
 * sum_j |S_j dZ_j|^2 splits into (row-major vec index a n + m)
 *   QQ block (j, j):  s^2 (A S_j)(A S_j)^T                         (d, d)
 *   QK block (j, k):  s^2 (A S_j^2)[:, k] c_j^T, and its transpose
 *   KK block (k, l):  s^2 sum_j S_j^2[k, l] c_j c_j^T               (d, d)
 * With S_j^2 = diag(f o f) - (f o f) f^T - f (f o f)^T + q_j f f^T,
 * q_j = |f_j|^2, the KK part is the block diagonal sum_j f_jk^2 c_j c_j^T
 * plus Y1^T Y1 - Y3^T Y3 with the (n, d n) matrices
 *   Y1[j, a n + k] = c_j[a] sqrt(q_j) (f_jk - f_jk^2 / q_j),
 *   Y3[j, a n + k] = c_j[a] f_jk^2 / sqrt(q_j),
 * i.e. two rank-n BLAS-3 updates instead of an (n, n, n) contraction.
 * The value part's rows (H n dv, r n) are formed by JVPs and added by
 * syrk. */
static int
gn_build(asec_attn_invert *ctx, asec_mat *hm, struct gn_scratch *sc)
{
    size_t d = ctx->d, n = ctx->n, nn = n * n, dn = d * n, dv = ctx->dv;
    size_t dm = ctx->xr * n, ld = hm->ld;
    size_t q0 = 0, k0 = ctx->opts.inputs == ASEC_ATTN_INVERT_BOTH ? d : 0;
    int hq = ctx->opts.inputs != ASEC_ATTN_INVERT_KEY;
    int hk = ctx->opts.inputs != ASEC_ATTN_INVERT_QUERY;
    double s2 = ctx->opts.scale * ctx->opts.scale;
    double *H = hm->data;

    asec_mat_fill(hm, 0.0);
    // the cross blocks, one orientation, then lower := H + H^T
    if (hq && hk) {
        for (size_t h = 0; h < ctx->nh; h++) {
            const double *a = ctx->a + h * dn, *c = ctx->c + h * dn, *f = ctx->f + h * nn;

            for (size_t j = 0; j < n; j++) {
                const double *fj = f + j * n;

                times_softmax_jac(sc->as, a, fj, d, n, sc->af);
                times_softmax_jac(sc->as2, sc->as, fj, d, n, sc->af + d);
                for (size_t x1 = 0; x1 < d; x1++) {
                    double *row = H + ((q0 + x1) * n + j) * ld;

                    for (size_t x2 = 0; x2 < d; x2++)
                        asec_vec_axpy(row + (k0 + x2) * n, s2 * c[x2 * n + j],
                                      sc->as2 + x1 * n, n);
                }
            }
        }
        sym_add_transpose_lower(hm);
    }
    for (size_t h = 0; h < ctx->nh; h++) {
        const double *a = ctx->a + h * dn, *c = ctx->c + h * dn, *f = ctx->f + h * nn;

        if (hq) { // QQ diagonal blocks
            for (size_t j = 0; j < n; j++) {
                times_softmax_jac(sc->as, a, f + j * n, d, n, sc->af);
                cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, (int)d, (int)n, s2,
                            sc->as, (int)n, 0.0, sc->blk, (int)d);
                for (size_t x1 = 0; x1 < d; x1++)
                    for (size_t x2 = 0; x2 <= x1; x2++)
                        H[((q0 + x1) * n + j) * ld + (q0 + x2) * n + j] +=
                            sc->blk[x1 * d + x2];
            }
        }
        if (hk) { // KK: block diagonal, then Y1^T Y1 - Y3^T Y3
            for (size_t m = 0; m < n; m++) {
                for (size_t x = 0; x < d; x++)
                    for (size_t j = 0; j < n; j++)
                        sc->cf[x * n + j] = c[x * n + j] * f[j * n + m];
                cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, (int)d, (int)n, s2,
                            sc->cf, (int)n, 0.0, sc->blk, (int)d);
                for (size_t x1 = 0; x1 < d; x1++)
                    for (size_t x2 = 0; x2 <= x1; x2++)
                        H[((k0 + x1) * n + m) * ld + (k0 + x2) * n + m] +=
                            sc->blk[x1 * d + x2];
            }
            for (size_t j = 0; j < n; j++) {
                const double *fj = f + j * n;
                double q = asec_vec_dot(fj, fj, n), sq = sqrt(q);

                for (size_t x = 0; x < d; x++) {
                    double cj = c[x * n + j];
                    double *y1 = sc->y1 + j * dn + x * n, *y3 = sc->y3 + j * dn + x * n;

                    for (size_t k = 0; k < n; k++) {
                        y1[k] = cj * sq * (fj[k] - fj[k] * fj[k] / q);
                        y3[k] = cj * fj[k] * fj[k] / sq;
                    }
                }
            }
            cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)dn, (int)n, s2,
                        sc->y1, (int)dn, 1.0, H + k0 * n * ld + k0 * n, (int)ld);
            cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)dn, (int)n, -s2,
                        sc->y3, (int)dn, 1.0, H + k0 * n * ld + k0 * n, (int)ld);
        }
    }
    if (dv > 0) { // J_O (H n dv, r n) by unit-direction JVPs, then syrk
        asec_mat em = asec_mat_view(sc->e, ctx->xr, n);
        asec_mat col = asec_mat_view(sc->col, ctx->nh * n, n + dv);
        size_t ro = ctx->nh * n * dv;

        memset(sc->e, 0, dm * sizeof(double));
        for (size_t i = 0; i < dm; i++) {
            sc->e[i] = 1.0;
            ASEC_TRY(jvp_core(ctx, &col, &em));
            sc->e[i] = 0.0;
            for (size_t hh = 0; hh < ctx->nh; hh++)
                for (size_t j = 0; j < n; j++)
                    for (size_t v = 0; v < dv; v++)
                        sc->jo[((hh * n + j) * dv + v) * dm + i] =
                            col.data[(hh * n + j) * (n + dv) + n + v];
        }
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)dm, (int)ro, 1.0, sc->jo,
                    (int)dm, 1.0, H, (int)ld);
    }
    return ASEC_OK;
}

static int
check_square(const asec_attn_invert *ctx, const asec_mat *h)
{
    size_t dm = ctx->xr * ctx->n;

    if (h->rows != dm || h->cols != dm)
        ASEC_FAIL(ASEC_EBADLEN, "the (%zu, %zu) matrix should be (%zu, %zu)", h->rows,
                  h->cols, dm, dm);
    return ASEC_OK;
}

int
asec_attn_invert_gauss_newton(asec_attn_invert *ctx, asec_mat *h, const asec_mat *x)
{
    struct gn_scratch s;
    struct parts pt;
    int rc = ASEC_OK;

    ASEC_TRY(check_ready(ctx));
    ASEC_TRY(check_x(ctx, x, "x"));
    ASEC_TRY(check_lm_size(ctx));
    ASEC_TRY(check_square(ctx, h));
    ASEC_TRY(gn_scratch_alloc(&s, ctx));
    split(ctx, x, &pt);
    for (size_t hd = 0; hd < ctx->nh && rc == ASEC_OK; hd++)
        rc = forward_head(ctx, hd, &pt);
    if (rc == ASEC_OK)
        rc = gn_build(ctx, h, &s);
    if (rc == ASEC_OK)
        sym_mirror_lower(h);
    gn_scratch_free(&s);
    return rc;
}

/* The exact Hessian at the state left by eval_lam: row i = H e_i (H is
 * symmetric), then symmetrised against rounding.  e: r n scratch. */
static int
hessian_build(asec_attn_invert *ctx, asec_mat *hm, double *e, double lam)
{
    size_t dm = ctx->xr * ctx->n, ld = hm->ld;
    asec_mat em = asec_mat_view(e, ctx->xr, ctx->n);

    memset(e, 0, dm * sizeof(double));
    for (size_t i = 0; i < dm; i++) {
        asec_mat row = asec_mat_view(hm->data + i * ld, ctx->xr, ctx->n);

        e[i] = 1.0;
        ASEC_TRY(hvp_core(ctx, &row, &em, lam));
        e[i] = 0.0;
    }
    for (size_t i = 0; i < dm; i++)
        for (size_t j = 0; j < i; j++) {
            double v = 0.5 * (hm->data[i * ld + j] + hm->data[j * ld + i]);

            hm->data[i * ld + j] = hm->data[j * ld + i] = v;
        }
    return ASEC_OK;
}

int
asec_attn_invert_hessian(asec_attn_invert *ctx, asec_mat *h, const asec_mat *x)
{
    double loss, *e;
    int rc;

    ASEC_TRY(check_ready(ctx));
    ASEC_TRY(check_x(ctx, x, "x"));
    ASEC_TRY(check_lm_size(ctx));
    ASEC_TRY(check_square(ctx, h));
    e = asec__malloc(ctx->xr * ctx->n * sizeof(double));
    if (e == NULL)
        return ASEC_ENOMEM;
    rc = eval_lam(ctx, &loss, NULL, NULL, x, ctx->opts.lam);
    if (rc == ASEC_OK)
        rc = hessian_build(ctx, h, e, ctx->opts.lam);
    asec__free(e);
    return rc;
}

int
asec_attn_invert_attention_qk(asec_mat *f, const asec_mat *xq, const asec_mat *xk,
                              const asec_mat *w, double scale, int causal)
{
    asec_mat a = {0, 0, 0, NULL};
    size_t d = xq->rows, n = xq->cols;
    int rc;

    if (!(scale > 0) || !isfinite(scale))
        ASEC_FAIL(ASEC_EINVAL, "scale %g must be finite and > 0", scale);
    if (d == 0 || n == 0)
        ASEC_FAIL(ASEC_EINVAL, "x is empty (%zu, %zu)", d, n);
    if (xk->rows != d || xk->cols != n || w->rows != d || w->cols != d || f->rows != n ||
        f->cols != n)
        ASEC_FAIL(
            ASEC_EBADLEN,
            "xq (%zu, %zu), xk (%zu, %zu), w (%zu, %zu), f (%zu, %zu) do not conform", d,
            n, xk->rows, xk->cols, w->rows, w->cols, f->rows, f->cols);
    ASEC_TRY(asec_mat_alloc(&a, d, n));
    rc = asec_mat_gemm(&a, 1.0, w, ASEC_NOTRANS, xk, ASEC_NOTRANS, 0.0);
    if (rc == ASEC_OK)
        rc = asec_mat_gemm(f, scale, xq, ASEC_TRANS, &a, ASEC_NOTRANS, 0.0);
    for (size_t j = 0; j < n && rc == ASEC_OK; j++) {
        double *row = asec_mat_at(f, j, 0);
        size_t len = causal ? j + 1 : n;

        if (asec_vec_softmax(row, row, len) != ASEC_OK)
            rc = asec__fail(ASEC_ENUMERIC, "non-finite attention logit in row %zu", j);
        for (size_t k = len; k < n; k++)
            row[k] = 0.0;
    }
    asec_mat_free(&a);
    return rc;
}

int
asec_attn_invert_attention(asec_mat *f, const asec_mat *x, const asec_mat *w,
                           double scale, int causal)
{
    return asec_attn_invert_attention_qk(f, x, x, w, scale, causal);
}

/* ---------------------------------------------------------------- solvers */

/* One start's bookkeeping, shared by the solvers. */
struct run {
    asec_attn_invert *ctx;
    double lam;
    size_t iters, evals, facts;
    double *trace_loss, *trace_lmin; /* (cap) or NULL */
    size_t cap, len;
    int status; /* first error inside a callback */
};

static void
trace_push(struct run *r, double loss, double lmin)
{
    if (r->len < r->cap) {
        if (r->trace_loss)
            r->trace_loss[r->len] = loss;
        if (r->trace_lmin)
            r->trace_lmin[r->len] = lmin;
    }
    r->len++;
}

/* Buffers of the second-order solvers; dm = r n. */
struct so_state {
    struct gn_scratch gs;
    asec_mat hm;                                 /* (dm, dm) J^T J or the Hessian */
    asec_mat hv;                                 /* (dm, dm) Newton's eigenvectors */
    double *xnew, *grad, *step, *diag, *ev, *gt; /* (dm) each */
};

static void
so_free(struct so_state *s)
{
    gn_scratch_free(&s->gs);
    asec_mat_free(&s->hm);
    asec_mat_free(&s->hv);
    asec__free(s->xnew);
    asec__free(s->grad);
    asec__free(s->step);
    asec__free(s->diag);
    asec__free(s->ev);
    asec__free(s->gt);
    memset(s, 0, sizeof *s);
}

static int
so_alloc(struct so_state *s, const asec_attn_invert *ctx, int newton)
{
    size_t dm = ctx->xr * ctx->n;
    int rc;

    memset(s, 0, sizeof *s);
    s->xnew = asec__malloc(dm * sizeof(double));
    s->grad = asec__malloc(dm * sizeof(double));
    s->step = asec__malloc(dm * sizeof(double));
    s->diag = asec__malloc(dm * sizeof(double));
    s->ev = asec__malloc(dm * sizeof(double));
    s->gt = asec__malloc(dm * sizeof(double));
    if (!s->xnew || !s->grad || !s->step || !s->diag || !s->ev || !s->gt) {
        so_free(s);
        return ASEC_ENOMEM;
    }
    if ((rc = asec_mat_alloc(&s->hm, dm, dm)) != ASEC_OK ||
        (newton && (rc = asec_mat_alloc(&s->hv, dm, dm)) != ASEC_OK) ||
        (!newton && (rc = gn_scratch_alloc(&s->gs, ctx)) != ASEC_OK)) {
        so_free(s);
        return rc;
    }
    return ASEC_OK;
}

/* Stop rules shared by LM and Newton; returns 1 to end the start. */
static int
so_stop(double loss, double rsq, double tol_abs, double lam, size_t it, double *hist,
        size_t *polish)
{
    // once at tol, a few more (quadratically convergent) steps polish X
    if (sqrt(rsq) <= tol_abs && lam == 0 && ++*polish > LM_POLISH)
        return 1;
    hist[it % STALL_WINDOW] = loss;
    return it >= STALL_WINDOW &&
           loss > (1 - STALL_FRAC) * hist[(it + 1) % STALL_WINDOW] &&
           sqrt(rsq) > 1e3 * tol_abs; // stalled in a spurious minimum
}

/* Levenberg-Marquardt on the normal equations (J^T J + lam I + mu I) dx = -g,
 * solved by Cholesky, with Nielsen's damping update (Madsen, Nielsen,
 * Tingleff 2004, "Methods for non-linear least squares problems", §3.2).
 * A rejected step is backtracked (Armijo) along its direction before
 * paying for another factorisation; the damping then grows as after a
 * rejection, so the next iteration is more cautious. */
static int
lm_run(struct run *r, asec_mat *x, size_t max_iter, double tol, int want_lmin,
       struct so_state *st)
{
    asec_attn_invert *ctx = r->ctx;
    size_t dm = ctx->xr * ctx->n;
    asec_mat xm = asec_mat_view(st->xnew, ctx->xr, ctx->n);
    asec_mat gm = asec_mat_view(st->grad, ctx->xr, ctx->n);
    asec_mat step = asec_mat_view(st->step, dm, 1);
    asec_mat *hm = &st->hm;
    double *grad = st->grad, *xnew = st->xnew;
    double loss, lnew, rsq, mu = -1.0, nu = 2.0, hist[STALL_WINDOW];
    double tol_abs = tol * obs_norm(ctx);
    size_t polish = 0, ld = hm->ld;
    int rc;

    ASEC_TRY(eval_lam(ctx, &loss, &rsq, &gm, x, r->lam));
    r->evals++;
    for (size_t it = 0; it < max_iter; it++) {
        double scale = 0.0, lmin = NAN, gdot = 0.0, snorm = 0.0, xnorm, pred;
        int accepted = 0;

        if (so_stop(loss, rsq, tol_abs, r->lam, it, hist, &polish))
            break;
        // forward passes at x are current (eval_lam ran last at x)
        ASEC_TRY(gn_build(ctx, hm, &st->gs));
        for (size_t i = 0; i < dm; i++) {
            hm->data[i * ld + i] += r->lam;
            st->diag[i] = hm->data[i * ld + i];
            scale = fmax(scale, st->diag[i]);
        }
        if (!(scale > 0))
            scale = 1.0;
        if (want_lmin) {
            ASEC_TRY(asec_mat_eigh(st->ev, NULL, hm)); // reads the lower triangle
            lmin = st->ev[0];
        }
        if (mu < 0)
            mu = LM_MU0 * scale;
        xnorm = asec_vec_dot(x->data, x->data, dm);
        while (!accepted) {
            if (mu > LM_MU_MAX * scale)
                goto done;
            for (size_t i = 0; i < dm; i++) {
                hm->data[i * ld + i] = st->diag[i] + mu;
                st->step[i] = -grad[i];
            }
            rc = asec_mat_cholesky_solve(&step, hm); // reads the lower triangle
            r->facts++;
            for (size_t i = 0; i < dm; i++)
                hm->data[i * ld + i] = st->diag[i];
            if (rc == ASEC_ENUMERIC) {
                mu *= nu;
                nu *= 2;
                continue;
            }
            if (rc != ASEC_OK)
                return rc;
            gdot = asec_vec_dot(grad, st->step, dm);
            snorm = asec_vec_dot(st->step, st->step, dm);
            if (sqrt(snorm) <= 1e-15 * (sqrt(xnorm) + 1e-15))
                goto done; // no progress possible in double precision
            for (size_t i = 0; i < dm; i++)
                xnew[i] = x->data[i] + st->step[i];
            // the gradient buffer is still needed for gdot; evaluate without it
            rc = eval_lam(ctx, &lnew, &rsq, NULL, &xm, r->lam);
            r->evals++;
            pred = 0.5 * (mu * snorm - gdot);
            if (rc == ASEC_OK && lnew < loss && pred > 0) {
                double rho = (loss - lnew) / pred;

                mu *= fmax(1.0 / 3.0, 1.0 - pow(2.0 * rho - 1.0, 3));
                nu = 2.0;
                accepted = 1;
            } else {
                if (rc != ASEC_OK && rc != ASEC_ENUMERIC)
                    return rc;
                // backtrack along the step before refactorising
                for (double al = 0.5; al >= LM_BT_MIN && !accepted; al *= 0.5) {
                    for (size_t i = 0; i < dm; i++)
                        xnew[i] = x->data[i] + al * st->step[i];
                    rc = eval_lam(ctx, &lnew, &rsq, NULL, &xm, r->lam);
                    r->evals++;
                    if (rc != ASEC_OK && rc != ASEC_ENUMERIC)
                        return rc;
                    accepted = rc == ASEC_OK && lnew <= loss + LM_ARMIJO * al * gdot;
                }
                mu *= nu;
                nu *= 2;
            }
        }
        memcpy(x->data, xnew, dm * sizeof(double));
        ASEC_TRY(eval_lam(ctx, &loss, &rsq, &gm, x, r->lam));
        r->evals++;
        r->iters++;
        trace_push(r, loss, lmin);
    }
done:
    return eval_lam(ctx, &loss, &rsq, &gm, x, r->lam); // leave forward state at x
}

/* Regularised Newton (the paper's approximate-Newton template, MATH.md
 * §2.1 and §4.4, with the exact Hessian): H = d^2 L (ridge included) is
 * eigendecomposed once per iteration, H = V diag(ev) V^T, lambda_min(H) is
 * recorded, and the step is -V (ev + shift)^{-1} V^T g with
 * shift = mu + max(0, -lambda_min) so the regularised Hessian is >= mu I.
 * mu follows Nielsen's rule on the ratio of actual to predicted decrease
 * under the exact quadratic model; a rejection costs O((r n)^2). */
static int
newton_run(struct run *r, asec_mat *x, size_t max_iter, double tol, struct so_state *st)
{
    asec_attn_invert *ctx = r->ctx;
    size_t dm = ctx->xr * ctx->n;
    asec_mat xm = asec_mat_view(st->xnew, ctx->xr, ctx->n);
    asec_mat gm = asec_mat_view(st->grad, ctx->xr, ctx->n);
    double loss, lnew, rsq, mu = -1.0, nu = 2.0, hist[STALL_WINDOW];
    double tol_abs = tol * obs_norm(ctx);
    size_t polish = 0;
    int rc;

    ASEC_TRY(eval_lam(ctx, &loss, &rsq, &gm, x, r->lam));
    r->evals++;
    for (size_t it = 0; it < max_iter; it++) {
        double scale = 0.0, lmin, xnorm;
        int accepted = 0;

        if (so_stop(loss, rsq, tol_abs, r->lam, it, hist, &polish))
            break;
        ASEC_TRY(hessian_build(ctx, &st->hm, st->diag, r->lam)); // diag: scratch
        ASEC_TRY(asec_mat_eigh(st->ev, &st->hv, &st->hm));
        r->facts++;
        lmin = st->ev[0];
        scale = fmax(fabs(st->ev[0]), fabs(st->ev[dm - 1]));
        if (!(scale > 0))
            scale = 1.0;
        ASEC_TRY(asec_mat_gemv(st->gt, 1.0, &st->hv, ASEC_TRANS, st->grad, 0.0));
        if (mu < 0)
            mu = LM_MU0 * scale;
        xnorm = asec_vec_dot(x->data, x->data, dm);
        while (!accepted) {
            double shift = mu + fmax(0.0, -lmin), pred = 0.0, snorm;

            if (mu > LM_MU_MAX * scale)
                goto done;
            for (size_t i = 0; i < dm; i++) {
                double pt = -st->gt[i] / (st->ev[i] + shift);

                st->diag[i] = pt;
                pred -= st->gt[i] * pt + 0.5 * st->ev[i] * pt * pt;
            }
            ASEC_TRY(asec_mat_gemv(st->step, 1.0, &st->hv, ASEC_NOTRANS, st->diag, 0.0));
            snorm = asec_vec_dot(st->step, st->step, dm);
            if (sqrt(snorm) <= 1e-15 * (sqrt(xnorm) + 1e-15))
                goto done;
            for (size_t i = 0; i < dm; i++)
                st->xnew[i] = x->data[i] + st->step[i];
            rc = eval_lam(ctx, &lnew, &rsq, NULL, &xm, r->lam);
            r->evals++;
            if (rc == ASEC_OK && lnew < loss && pred > 0) {
                double rho = (loss - lnew) / pred;

                mu *= fmax(1.0 / 3.0, 1.0 - pow(2.0 * rho - 1.0, 3));
                nu = 2.0;
                accepted = 1;
            } else {
                if (rc != ASEC_OK && rc != ASEC_ENUMERIC)
                    return rc;
                mu *= nu;
                nu *= 2;
            }
        }
        memcpy(x->data, st->xnew, dm * sizeof(double));
        ASEC_TRY(eval_lam(ctx, &loss, &rsq, &gm, x, r->lam));
        r->evals++;
        r->iters++;
        trace_push(r, loss, lmin);
    }
done:
    return eval_lam(ctx, &loss, &rsq, &gm, x, r->lam);
}

static lbfgsfloatval_t
lbfgs_eval(void *instance, const lbfgsfloatval_t *x, lbfgsfloatval_t *g, const int n,
           const lbfgsfloatval_t step)
{
    struct run *r = instance;
    asec_attn_invert *ctx = r->ctx;
    asec_mat xm, gm = asec_mat_view(g, ctx->xr, ctx->n);
    double *xd, loss;
    int rc;

    /* asec_mat holds a non-const pointer; x is only read through it. */
    memcpy(&xd, &x, sizeof xd);
    xm = asec_mat_view(xd, ctx->xr, ctx->n);

    (void)n;
    (void)step;
    r->evals++;
    rc = eval_lam(ctx, &loss, NULL, &gm, &xm, r->lam);
    if (rc != ASEC_OK) {
        if (rc != ASEC_ENUMERIC && r->status == ASEC_OK)
            r->status = rc;
        return INFINITY; // the line search backs off
    }
    return loss;
}

static int
lbfgs_progress(void *instance, const lbfgsfloatval_t *x, const lbfgsfloatval_t *g,
               const lbfgsfloatval_t fx, const lbfgsfloatval_t xnorm,
               const lbfgsfloatval_t gnorm, const lbfgsfloatval_t step, int n, int k,
               int ls)
{
    struct run *r = instance;

    (void)x, (void)g, (void)xnorm, (void)gnorm, (void)step, (void)n, (void)k, (void)ls;
    r->iters++;
    trace_push(r, fx, NAN);
    return r->status != ASEC_OK;
}

static int
lbfgs_run(struct run *r, asec_mat *x, size_t max_iter, double tol)
{
    lbfgs_parameter_t param;
    lbfgsfloatval_t fx;
    size_t dm = r->ctx->xr * r->ctx->n;
    double on = obs_norm(r->ctx), target = 0.5 * tol * tol * on * on;

    if (dm > (size_t)1 << 30)
        ASEC_FAIL(ASEC_ELIMIT, "%zu unknowns exceed liblbfgs's int range", dm);
    lbfgs_parameter_init(&param);
    param.m = 20;
    param.max_iterations = (int)max_iter;
    // relative tests only: ||g|| <= eps max(1, ||x||), or the loss fell by
    // less than delta (relative) over 'past' iterations
    param.epsilon = 1e-14;
    param.past = 50;
    param.delta = r->lam > 0 ? 1e-10 : fmin(1e-6, target);
    param.max_linesearch = 40;
    (void)lbfgs((int)dm, x->data, &fx, lbfgs_eval, lbfgs_progress, r, &param);
    if (r->status != ASEC_OK)
        return r->status;
    /* liblbfgs reports stalls (rounding errors, line-search failures) as
     * negative codes; x holds the best point found either way. */
    return ASEC_OK;
}

/* Solve one start from x with the continuation and then ridge opts.lam. */
static int
run_start(struct run *r, asec_mat *x, size_t max_iter, struct so_state *st)
{
    asec_attn_invert *ctx = r->ctx;
    const asec_attn_invert_options *o = &ctx->opts;
    size_t stages = o->continuation > 0 ? CONT_STAGES : 0;

    for (size_t k = 0; k <= stages; k++) {
        size_t keep = r->len;

        r->lam = k < stages ? o->continuation * pow(0.1, (double)k) + o->lam : o->lam;
        if (o->solver == ASEC_ATTN_INVERT_LM)
            ASEC_TRY(lm_run(r, x, max_iter, o->tol, o->lambda_min && k == stages, st));
        else if (o->solver == ASEC_ATTN_INVERT_NEWTON)
            ASEC_TRY(newton_run(r, x, max_iter, o->tol, st));
        else
            ASEC_TRY(lbfgs_run(r, x, max_iter, o->tol));
        if (k < stages)
            r->len = keep; // trace the final stage only
    }
    return ASEC_OK;
}

int
asec_attn_invert_solve(asec_attn_invert *ctx, asec_mat *x, asec_rng *rng,
                       asec_attn_invert_result *res, const asec_attn_invert_trace *trace)
{
    const asec_attn_invert_options *o = &ctx->opts;
    size_t xr = ctx->xr, n = ctx->n, dm = xr * n;
    size_t max_iter = o->max_iter;
    struct so_state st;
    double *cur = NULL, *tl = NULL, *tm = NULL;
    double best = INFINITY;
    asec_attn_invert_result out;
    int second = o->solver != ASEC_ATTN_INVERT_LBFGS;
    size_t cap = trace != NULL ? trace->cap : 0;
    int rc = ASEC_OK;

    memset(&st, 0, sizeof st);
    memset(&out, 0, sizeof out);
    if (res != NULL)
        memset(res, 0, sizeof *res);
    ASEC_TRY(check_ready(ctx));
    ASEC_TRY(check_x(ctx, x, "x"));
    if (second)
        ASEC_TRY(check_lm_size(ctx));
    if (max_iter == 0)
        max_iter = second ? LM_DEFAULT_ITER : LBFGS_DEFAULT_ITER;
    cur = asec__malloc(dm * sizeof(double));
    if (cur == NULL)
        return ASEC_ENOMEM;
    if (cap > 0) {
        tl = asec__malloc(cap * sizeof(double));
        tm = asec__malloc(cap * sizeof(double));
        if (tl == NULL || tm == NULL)
            ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "out of memory for the traces");
    }
    if (second &&
        (rc = so_alloc(&st, ctx, o->solver == ASEC_ATTN_INVERT_NEWTON)) != ASEC_OK)
        goto fail;
    for (size_t k = 0; k < o->restarts; k++) {
        asec_mat cm = asec_mat_view(cur, xr, n);
        struct run r;
        double loss, rsq;

        memset(&r, 0, sizeof r);
        r.ctx = ctx;
        r.trace_loss = tl;
        r.trace_lmin = tm;
        r.cap = cap;
        asec_rng_normal_fill(rng, cur, dm);
        for (size_t i = 0; i < dm; i++)
            cur[i] *= o->init_std;
        rc = run_start(&r, &cm, max_iter, &st);
        if (rc != ASEC_OK)
            goto fail;
        out.starts++;
        out.iterations += r.iters;
        out.evaluations += r.evals + 1;
        out.factorizations += r.facts;
        rc = eval_lam(ctx, &loss, &rsq, NULL, &cm, 0.0);
        if (rc != ASEC_OK && rc != ASEC_ENUMERIC)
            goto fail;
        if (rc == ASEC_OK && loss < best) {
            best = loss;
            for (size_t i = 0; i < xr; i++)
                memcpy(asec_mat_at(x, i, 0), cur + i * n, n * sizeof(double));
            out.loss = loss;
            out.out_rel = sqrt(rsq) / obs_norm(ctx);
            out.best_start = k;
            out.best_iterations = r.iters;
            out.trace_len = r.len < cap ? r.len : cap;
            if (cap > 0) {
                if (trace->loss)
                    memcpy(trace->loss, tl, out.trace_len * sizeof(double));
                if (trace->lambda_min)
                    memcpy(trace->lambda_min, tm, out.trace_len * sizeof(double));
            }
        }
        rc = ASEC_OK;
        if (out.out_rel <= o->tol && isfinite(best))
            break;
    }
    if (!isfinite(best))
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENUMERIC, "every start diverged");
    out.converged = out.out_rel <= o->tol;
    if (res != NULL)
        *res = out;
fail:
    asec__free(cur);
    asec__free(tl);
    asec__free(tm);
    so_free(&st);
    return rc;
}

/* ---------------------------------------------------------------- metrics */

/* out = ||Mq^T W Mk - W||_F / ||W||_F, NULL meaning the identity. */
static int
fro_rel_w(double *out, const asec_mat *mq, const asec_mat *mk, double *w, size_t d,
          double *tmp, double *tmp2)
{
    asec_mat wm = asec_mat_view(w, d, d);
    asec_mat t = asec_mat_view(tmp, d, d), t2 = asec_mat_view(tmp2, d, d);
    double num = 0.0, den = 0.0;

    if (mk != NULL)
        ASEC_TRY(asec_mat_gemm(&t, 1.0, &wm, ASEC_NOTRANS, mk, ASEC_NOTRANS, 0.0));
    else
        memcpy(tmp, w, d * d * sizeof(double));
    if (mq != NULL)
        ASEC_TRY(asec_mat_gemm(&t2, 1.0, mq, ASEC_TRANS, &t, ASEC_NOTRANS, 0.0));
    else
        memcpy(tmp2, tmp, d * d * sizeof(double));
    for (size_t i = 0; i < d * d; i++) {
        num += (tmp2[i] - w[i]) * (tmp2[i] - w[i]);
        den += w[i] * w[i];
    }
    *out = den > 0 ? sqrt(num / den) : sqrt(num);
    return ASEC_OK;
}

/* Least squares [xhat^T, 1] [M^T; v^T] ~ x^T for one (d, n) block (the
 * column of ones only with shift); m (d, d) gets M, *res2 the squared
 * residual. */
static int
fit_block(asec_mat *m, double *res2, const asec_mat *xhat, const asec_mat *x, int shift)
{
    size_t d = x->rows, n = x->cols, kd = shift ? d + 1 : d;
    asec_mat aa = {0, 0, 0, NULL}, bb = {0, 0, 0, NULL}, sol = {0, 0, 0, NULL};
    double num = 0.0;
    int rc;

    if ((rc = asec_mat_alloc(&aa, n, kd)) != ASEC_OK ||
        (rc = asec_mat_alloc(&bb, n, d)) != ASEC_OK ||
        (rc = asec_mat_alloc(&sol, kd, d)) != ASEC_OK)
        goto fail;
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < d; i++) {
            *asec_mat_at(&aa, j, i) = *asec_mat_at(xhat, i, j);
            *asec_mat_at(&bb, j, i) = *asec_mat_at(x, i, j);
        }
        if (shift)
            *asec_mat_at(&aa, j, d) = 1.0;
    }
    if ((rc = asec_mat_lstsq(&sol, NULL, &aa, &bb, -1.0)) != ASEC_OK)
        goto fail;
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
            *asec_mat_at(m, i, j) = *asec_mat_at(&sol, j, i); // M = sol[0:d]^T
    // residual aa sol - bb
    if ((rc = asec_mat_gemm(&bb, 1.0, &aa, ASEC_NOTRANS, &sol, ASEC_NOTRANS, -1.0)) !=
        ASEC_OK)
        goto fail;
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < d; i++)
            num += *asec_mat_at(&bb, j, i) * *asec_mat_at(&bb, j, i);
    *res2 = num;
fail:
    asec_mat_free(&aa);
    asec_mat_free(&bb);
    asec_mat_free(&sol);
    return rc;
}

int
asec_attn_invert_score(asec_attn_invert_metrics *out, asec_attn_invert *ctx,
                       const asec_mat *xhat, const asec_mat *x)
{
    size_t d = ctx->d, n = ctx->n, nh = ctx->nh;
    asec_attn_invert_inputs in = ctx->opts.inputs;
    asec_mat wt = {0, 0, 0, NULL}, mq = {0, 0, 0, NULL}, mk = {0, 0, 0, NULL};
    double *sv = NULL, *tmp = NULL, *tmp2 = NULL;
    double xn = 0.0, ep = 0.0, em = 0.0, loss, rsq, r2 = 0.0, r2k = 0.0;
    struct parts ph, px;
    size_t rank = 0;
    int rc, kshift;

    memset(out, 0, sizeof *out);
    ASEC_TRY(check_ready(ctx));
    ASEC_TRY(check_x(ctx, xhat, "xhat"));
    ASEC_TRY(check_x(ctx, x, "x"));
    for (size_t i = 0; i < ctx->xr; i++)
        for (size_t j = 0; j < n; j++) {
            double u = *asec_mat_at(xhat, i, j), v = *asec_mat_at(x, i, j);

            xn += v * v;
            ep += (u - v) * (u - v);
            em += (u + v) * (u + v);
        }
    if (!(xn > 0))
        ASEC_FAIL(ASEC_EINVAL, "the true x is zero");
    ASEC_TRY(eval_lam(ctx, &loss, &rsq, NULL, xhat, 0.0));
    out->out_rel = sqrt(rsq) / obs_norm(ctx);
    out->naive_err = sqrt(fmin(ep, em) / xn);
    out->unknowns = ctx->xr * n;
    out->equations =
        (ctx->opts.causal ? nh * n * (n - 1) / 2 : nh * n * (n - 1)) + nh * n * ctx->dv;

    // dim of the common kernel of the W_h^T = d - rank of the stacked
    // (H d, d) matrix [W_0^T; W_1^T; ...]
    rc = asec_mat_alloc(&wt, nh * d, d);
    if (rc != ASEC_OK)
        return rc;
    sv = asec__malloc(d * sizeof(double));
    tmp = asec__malloc(d * d * sizeof(double));
    tmp2 = asec__malloc(d * d * sizeof(double));
    if (sv == NULL || tmp == NULL || tmp2 == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "out of memory scoring the recovery");
    for (size_t h = 0; h < nh; h++)
        for (size_t i = 0; i < d; i++)
            for (size_t j = 0; j < d; j++)
                *asec_mat_at(&wt, h * d + i, j) = ctx->w[h * d * d + j * d + i];
    if ((rc = asec_mat_svd(sv, NULL, NULL, &wt)) != ASEC_OK)
        goto fail;
    for (size_t i = 0; i < d; i++)
        if (sv[i] > (double)(nh * d) * 2.220446049250313e-16 * sv[0])
            rank++;
    out->ker_dim = d - rank;

    // Orbit fit per unknown block.  Query-side shifts are invisible along
    // the kernel of the W^T; with separate inputs and no value path, any
    // common shift of the keys is (it adds a row constant to Z).
    kshift = ctx->dv == 0;
    split(ctx, xhat, &ph);
    split(ctx, x, &px);
    if ((rc = asec_mat_alloc(&mq, d, d)) != ASEC_OK ||
        (rc = asec_mat_alloc(&mk, d, d)) != ASEC_OK)
        goto fail;
    if (in == ASEC_ATTN_INVERT_KEY) {
        if ((rc = fit_block(&mk, &r2, &ph.k, &px.k, kshift)) != ASEC_OK)
            goto fail;
    } else {
        if ((rc = fit_block(&mq, &r2, &ph.q, &px.q, out->ker_dim > 0)) != ASEC_OK)
            goto fail;
        if (in == ASEC_ATTN_INVERT_BOTH &&
            (rc = fit_block(&mk, &r2k, &ph.k, &px.k, kshift)) != ASEC_OK)
            goto fail;
    }
    out->orbit_err = sqrt((r2 + r2k) / xn);
    out->orbit_w_err = 0.0;
    for (size_t h = 0; h < nh; h++) {
        double e;
        const asec_mat *a = in == ASEC_ATTN_INVERT_KEY ? NULL : &mq;
        const asec_mat *b = in == ASEC_ATTN_INVERT_QUERY  ? NULL
                            : in == ASEC_ATTN_INVERT_TIED ? &mq
                                                          : &mk;

        if ((rc = fro_rel_w(&e, a, b, ctx->w + h * d * d, d, tmp, tmp2)) != ASEC_OK)
            goto fail;
        out->orbit_w_err = fmax(out->orbit_w_err, e);
    }
    out->success = out->orbit_err < ASEC_ATTN_INVERT_ORBIT_TOL &&
                   out->orbit_w_err < ASEC_ATTN_INVERT_ORBIT_TOL;
    rc = ASEC_OK;
fail:
    asec_mat_free(&wt);
    asec_mat_free(&mq);
    asec_mat_free(&mk);
    asec__free(sv);
    asec__free(tmp);
    asec__free(tmp2);
    return rc;
}
