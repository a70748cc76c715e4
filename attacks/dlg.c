/* dlg.c - gradient leakage on the engine's models: DLG (Zhu et al. 2019,
 * arXiv 1906.08935) with iDLG labels (Zhao et al. 2020, arXiv 2001.02610),
 * the cosine loss of Inverting Gradients (Geiping et al. 2020), the
 * analytic token-span leak (ATTACKS.md section 0.3), L-BFGS and a
 * Levenberg-Marquardt polish with exact Jacobian-vector products.  See
 * attnsec/dlg.h for the contracts.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lbfgs.h>

#include "attnsec/dlg.h"
#include "attnsec/mat.h"
#include "attnsec/vec.h"
#include "internal.h"
#include "model_internal.h" /* asec_model__parse_name() */

/* LM damping: mu starts at LM_MU0 times the largest diagonal entry of
 * J^T J; a start's polish ends when mu exceeds LM_MU_MAX times it. */
#define LM_MU0 1e-4
#define LM_MU_MAX 1e12
/* A start is abandoned when its relative residual is above LM_STALL_FLOOR
 * and fell by less than a factor LM_STALL_GAIN over the last
 * LM_STALL_WINDOW LM iterations (a spurious minimum: converging starts
 * gain orders of magnitude per iteration). */
#define LM_STALL_WINDOW 10
#define LM_STALL_GAIN 1.25
#define LM_STALL_FLOOR 1e-7
/* Singular values below this fraction of the largest are treated as zero
 * in the diagnostics (cond and noise gain are then +inf). */
#define DIAG_RCOND 1e-13
/* Number of L-BFGS stages when the norm prior is annealed (prior, prior/10,
 * prior/100, 0). */
#define PRIOR_STAGES 4
/* Every PRIOR_FREE_EVERY-th start (starts 1, 5, 9, ...) runs without the
 * norm prior: the prior pulls the tokens towards small norms, and when the
 * attention part of the gradient is a tiny share of |G| (n = 2: the query
 * and key gradients have rank 1 and can be 1e-5 of |G|^2) the biased
 * stages settle in a low-norm spurious minimum that the unbiased loss
 * keeps. */
#define PRIOR_FREE_EVERY 4
/* LM recomputes the exact Jacobian (nz JVPs) at most every LM_EXACT_EVERY
 * iterations; in between it applies Broyden's rank-1 update
 * J += ((r' - r) - J s) s^T / |s|^2 after each accepted step s, and a
 * rejected step with an updated Jacobian triggers an exact one. */
#define LM_EXACT_EVERY 8
/* Weight of the squared distance to the box in the L-BFGS objective
 * (units of the scaled loss, which is 0.5 at x' with g' = 0). */
#define BOX_PENALTY 1.0
/* The token span is used only when its r-th singular value exceeds this
 * fraction of the largest (else the span estimate is unreliable). */
#define SPAN_RCOND 1e-6

static const char *const loss_names[] = {"euclid", "cos"};
static const char *const labels_names[] = {"auto", "idlg", "joint", "known"};
static const char *const noise_names[] = {"gauss", "laplace"};

void
asec_dlg_options_default(asec_dlg_options *o)
{
    memset(o, 0, sizeof *o);
    o->loss = ASEC_DLG_EUCLID;
    o->labels = ASEC_DLG_LABELS_AUTO;
    o->span = 1;
    o->restarts = 64;
    o->lbfgs_iters = 100;
    o->lbfgs_history = 20;
    o->lm_iters = 100;
    o->init_std = 1.0;
    o->prior = 0.1;
    o->box_lo = 0.0;
    o->box_hi = 0.0;
    o->tol = 1e-9;
    o->diagnostics = 1;
    o->alternate = -1;
}

const char *
asec_dlg_loss_name(asec_dlg_loss l)
{
    return (unsigned)l < 2 ? loss_names[l] : "?";
}

const char *
asec_dlg_labels_name(asec_dlg_labels l)
{
    return (unsigned)l < 4 ? labels_names[l] : "?";
}

int
asec_dlg_loss_parse(asec_dlg_loss *out, const char *name)
{
    int v = 0;

    ASEC_TRY(asec_model__parse_name(&v, name, loss_names, 2, "matching loss"));
    *out = (asec_dlg_loss)v;
    return ASEC_OK;
}

int
asec_dlg_labels_parse(asec_dlg_labels *out, const char *name)
{
    int v = 0;

    ASEC_TRY(asec_model__parse_name(&v, name, labels_names, 4, "label mode"));
    *out = (asec_dlg_labels)v;
    return ASEC_OK;
}

int
asec_dlg_noise_parse(asec_dlg_noise *out, const char *name)
{
    int v = 0;

    ASEC_TRY(asec_model__parse_name(&v, name, noise_names, 2, "noise distribution"));
    *out = (asec_dlg_noise)v;
    return ASEC_OK;
}

/* ------------------------------------------------------------ objective */

/* v = d f / d g for the loss at g (P), and f.  gn2 = |G|^2. */
static int
loss_and_dir(double *f, double *v, const double *g, const double *G, size_t P,
             asec_dlg_loss kind)
{
    if (kind == ASEC_DLG_EUCLID) {
        double s = 0.0;

        for (size_t i = 0; i < P; i++) {
            v[i] = g[i] - G[i];
            s += v[i] * v[i];
        }
        *f = 0.5 * s;
    } else {
        double gg = 0.0, GG = 0.0, gG = 0.0, ng, nG;

        for (size_t i = 0; i < P; i++) {
            gg += g[i] * g[i];
            GG += G[i] * G[i];
            gG += g[i] * G[i];
        }
        if (!(gg > 0.0) || !(GG > 0.0))
            ASEC_FAIL(ASEC_ENUMERIC, "the cosine loss needs non-zero gradients "
                                     "(|g'|^2 = %g, |G|^2 = %g)", gg, GG);
        ng = sqrt(gg);
        nG = sqrt(GG);
        // f = 1 - <g, G> / (|g| |G|);  df/dg = -G/(|g||G|) + <g,G> g / (|g|^3 |G|)
        *f = 1.0 - gG / (ng * nG);
        for (size_t i = 0; i < P; i++)
            v[i] = -G[i] / (ng * nG) + gG * g[i] / (gg * ng * nG);
    }
    return ASEC_OK;
}

int
asec_dlg_objective(double *loss, double *dx, double *dsoft, double *g, asec_model *m,
                   const asec_model_batch *batch, const double *grad, asec_dlg_loss kind)
{
    size_t P = asec_model_param_count(m);
    double *gb = NULL, *v = NULL;
    asec_model_vec gv;
    int rc;

    if ((unsigned)kind > 1)
        ASEC_FAIL(ASEC_EINVAL, "unknown matching loss %d", (int)kind);
    gb = g != NULL ? g : asec__malloc(P * sizeof(double));
    v = asec__malloc(P * sizeof(double));
    if (gb == NULL || v == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "no memory for %zu gradient entries", P);
    memset(&gv, 0, sizeof gv);
    gv.params = gb;
    rc = asec_model_grad(m, NULL, &gv, batch);
    if (rc != ASEC_OK)
        goto fail;
    rc = loss_and_dir(loss, v, gb, grad, P, kind);
    if (rc != ASEC_OK)
        goto fail;
    if (dx != NULL || dsoft != NULL) {
        rc = asec_model_grad_dot_dinput(m, dx, dsoft, v, batch);
        if (rc != ASEC_OK)
            goto fail;
    }
fail:
    if (g == NULL)
        asec__free(gb);
    asec__free(v);
    return rc;
}

/* r (P) = the residual of kind at gradient g. */
static int
residual_of(double *r, const double *g, const double *G, size_t P, asec_dlg_loss kind)
{
    if (kind == ASEC_DLG_EUCLID) {
        for (size_t i = 0; i < P; i++)
            r[i] = g[i] - G[i];
    } else {
        double ng = asec_vec_norm2(g, P), nG = asec_vec_norm2(G, P);

        if (!(ng > 0.0) || !(nG > 0.0))
            ASEC_FAIL(ASEC_ENUMERIC, "the cosine residual needs non-zero gradients "
                                     "(|g'| = %g, |G| = %g)", ng, nG);
        for (size_t i = 0; i < P; i++)
            r[i] = g[i] / ng - G[i] / nG;
    }
    return ASEC_OK;
}

int
asec_dlg_residual(double *r, asec_model *m, const asec_model_batch *batch,
                  const double *grad, asec_dlg_loss kind)
{
    size_t P = asec_model_param_count(m);
    double *g = asec__malloc(P * sizeof(double));
    asec_model_vec gv;
    int rc;

    if ((unsigned)kind > 1) {
        asec__free(g);
        ASEC_FAIL(ASEC_EINVAL, "unknown matching loss %d", (int)kind);
    }
    if (g == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "no memory for %zu gradient entries", P);
    memset(&gv, 0, sizeof gv);
    gv.params = g;
    rc = asec_model_grad(m, NULL, &gv, batch);
    if (rc == ASEC_OK)
        rc = residual_of(r, g, grad, P, kind);
    asec__free(g);
    return rc;
}

/* ------------------------------------------------------------ closed forms */

static int
is_classifier(const asec_model_arch *a)
{
    return a->kind != ASEC_MODEL_ATTN_REGRESSION;
}

int
asec_dlg_idlg_labels(int64_t *labels, size_t B, const asec_model *m, const double *grad)
{
    const asec_model_arch *a = asec_model_get_arch(m);
    asec_model_tensor t;
    size_t K, order[64], nneg = 0, *ord = order;
    const double *gb;

    if (!is_classifier(a) || a->pool == ASEC_MODEL_POOL_NONE)
        ASEC_FAIL(ASEC_EINVAL, "iDLG labels need a classifier with pooled outputs "
                               "(a %s model with pooling %s)",
                  asec_model_kind_name(a->kind), asec_model_pool_name(a->pool));
    if (B == 0)
        ASEC_FAIL(ASEC_EINVAL, "iDLG labels of an empty batch");
    ASEC_TRY(asec_model_tensor_find(m, "head.bias", &t));
    K = t.size;
    gb = grad + t.offset;
    if (K > 64) {
        ord = asec__malloc(K * sizeof(size_t));
        if (ord == NULL)
            ASEC_FAIL(ASEC_ENOMEM, "no memory for %zu classes", K);
    }
    // insertion sort of the classes by bias gradient, ascending
    for (size_t k = 0; k < K; k++) {
        size_t j = k;

        while (j > 0 && gb[ord[j - 1]] > gb[k]) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = k;
        if (gb[k] < 0.0)
            nneg++;
    }
    if (nneg == 0)
        nneg = K;
    for (size_t b = 0; b < B; b++)
        labels[b] = (int64_t)ord[b % nneg];
    if (ord != order)
        asec__free(ord);
    return ASEC_OK;
}

/* The tensors whose rows lie in the token span, as (rows, C) views of grad
 * (transposed ones are copied into buf).  Returns the number of rows or
 * a negative status. */
static int
span_stack(asec_mat *S, const asec_model *m, const double *grad)
{
    const asec_model_arch *a = asec_model_get_arch(m);
    size_t C = a->channels;
    asec_model_tensor t;
    const char *names[3];
    size_t nt = 0;

    if (a->kind == ASEC_MODEL_ATTN_BLOCK && a->pos == ASEC_MODEL_POS_NONE) {
        names[0] = "blocks.0.attn.q.weight";
        names[1] = "blocks.0.attn.k.weight";
        names[2] = "blocks.0.attn.v.weight";
        nt = 3;
        ASEC_TRY(asec_mat_alloc(S, 3 * C, C));
        for (size_t i = 0; i < nt; i++) {
            int rc = asec_model_tensor_find(m, names[i], &t);

            if (rc != ASEC_OK) {
                asec_mat_free(S);
                return rc;
            }
            memcpy(S->data + i * C * C, grad + t.offset, C * C * sizeof(double));
        }
        return ASEC_OK;
    }
    if (a->kind == ASEC_MODEL_ATTN_REGRESSION) {
        asec_model_tensor tx, ty;

        ASEC_TRY(asec_model_tensor_find(m, "attn.x", &tx));
        ASEC_TRY(asec_model_tensor_find(m, "attn.y", &ty));
        ASEC_TRY(asec_mat_alloc(S, 3 * C, C));
        // rows of G_X, of G_X^T and of G_Y^T (G_X = s A^T M A, G_Y = A^T F^T C)
        for (size_t i = 0; i < C; i++) {
            for (size_t j = 0; j < C; j++) {
                S->data[i * C + j] = grad[tx.offset + i * C + j];
                S->data[(C + i) * C + j] = grad[tx.offset + j * C + i];
                S->data[(2 * C + i) * C + j] = grad[ty.offset + j * C + i];
            }
        }
        return ASEC_OK;
    }
    ASEC_FAIL(ASEC_ENOTSUP, "a %s model%s does not leak its token span",
              asec_model_kind_name(a->kind),
              a->kind == ASEC_MODEL_ATTN_BLOCK ? " with positions" : "");
}

int
asec_dlg_span(double *basis, double *sv, size_t r, const asec_model *m, const double *grad)
{
    size_t C = asec_model_get_arch(m)->channels;
    asec_mat S = {0}, vt = {0};
    double *s = NULL;
    int rc;

    if (r == 0 || r > C)
        ASEC_FAIL(ASEC_EINVAL, "span rank %zu is not in [1, %zu]", r, C);
    ASEC_TRY(span_stack(&S, m, grad));
    s = asec__malloc(C * sizeof(double));
    if (s == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "no memory for %zu singular values", C);
    rc = asec_mat_alloc(&vt, C, C);
    if (rc != ASEC_OK)
        goto fail;
    rc = asec_mat_svd(s, NULL, &vt, &S);
    if (rc != ASEC_OK)
        goto fail;
    for (size_t c = 0; c < C; c++)
        for (size_t j = 0; j < r; j++)
            basis[c * r + j] = vt.data[j * C + c];
    if (sv != NULL)
        memcpy(sv, s, C * sizeof(double));
fail:
    asec_mat_free(&S);
    asec_mat_free(&vt);
    asec__free(s);
    return rc;
}

/* ------------------------------------------------------------ the attack */

struct ctx {
    asec_model *m;
    const asec_dlg_options *o;
    asec_dlg_loss kind;   // the loss of the current stage (o->loss or the other)
    asec_model_batch batch;
    size_t P, B, T, C, N; // N = B T tokens
    size_t insz, nin;     // doubles per example, B insz
    size_t r;             // span rank (0: none)
    const double *U;      // (C, r)
    size_t nzin;          // unknowns of the inputs
    size_t rows, K;       // soft rows (B R) of K entries
    size_t nsoft;         // rows K when soft is free, else 0
    int soft_softmax;     // soft = softmax(z) per row (classifiers)
    size_t nz;
    const double *G;
    double Gn;            // |G|
    double lam;           // current prior weight
    double fscale;        // L-BFGS objective scale
    double *x, *soft, *g, *v, *dx, *dsoft, *jt, *ux, *us, *z2, *r2;
    size_t evals, jvps, lm_iters;
    int status;
};

/* z -> (x, soft). */
static void
unpack(struct ctx *c, const double *z)
{
    if (c->r > 0) {
        for (size_t i = 0; i < c->N; i++)
            for (size_t k = 0; k < c->C; k++) {
                double s = 0.0;

                for (size_t j = 0; j < c->r; j++)
                    s += c->U[k * c->r + j] * z[i * c->r + j];
                c->x[i * c->C + k] = s;
            }
    } else {
        memcpy(c->x, z, c->nin * sizeof(double));
    }
    if (c->nsoft > 0) {
        const double *zs = z + c->nzin;

        if (c->soft_softmax) {
            for (size_t i = 0; i < c->rows; i++) {
                // stable softmax of a finite row (L-BFGS rejects non-finite z)
                const double *zi = zs + i * c->K;
                double *pi = c->soft + i * c->K, mx = zi[0], sum = 0.0;

                for (size_t k = 1; k < c->K; k++)
                    mx = fmax(mx, zi[k]);
                for (size_t k = 0; k < c->K; k++) {
                    pi[k] = exp(zi[k] - mx);
                    sum += pi[k];
                }
                for (size_t k = 0; k < c->K; k++)
                    pi[k] /= sum;
            }
        } else {
            memcpy(c->soft, zs, c->nsoft * sizeof(double));
        }
    }
}

/* (dx, dsoft) -> dz (chain rule through unpack). */
static void
pullback(struct ctx *c, double *dz, const double *dx, const double *dsoft)
{
    if (c->r > 0) {
        for (size_t i = 0; i < c->N; i++)
            for (size_t j = 0; j < c->r; j++) {
                double s = 0.0;

                for (size_t k = 0; k < c->C; k++)
                    s += c->U[k * c->r + j] * dx[i * c->C + k];
                dz[i * c->r + j] = s;
            }
    } else {
        memcpy(dz, dx, c->nin * sizeof(double));
    }
    if (c->nsoft > 0 && dsoft != NULL) {
        double *dzs = dz + c->nzin;

        if (c->soft_softmax) {
            for (size_t i = 0; i < c->rows; i++)
                asec_vec_softmax_jvp(dzs + i * c->K, c->soft + i * c->K,
                                     dsoft + i * c->K, c->K);
        } else {
            memcpy(dzs, dsoft, c->nsoft * sizeof(double));
        }
    }
}

static int
has_box(const struct ctx *c)
{
    return c->o->box_lo < c->o->box_hi && c->r == 0;
}

/* The L-BFGS objective: (f + prior) * fscale and its gradient.  With a box,
 * f is evaluated at the projection P(z) onto the box and the distance is
 * penalised: f(P(z)) + 0.5 BOX_PENALTY |z - P(z)|^2 (scaled units).  The
 * objective is continuous, equals f on the box, and L-BFGS never sees the
 * loss of an image outside it (an unconstrained L-BFGS run wanders there,
 * and the final projection then multiplies its residual by up to 7 on
 * trained models). */
static int
eval_f(struct ctx *c, double *f, double *dz, const double *z)
{
    double fl, pz = 0.0, pen = 0.0;
    const double *zp = z;
    double *zb = c->z2; // the projection (LM's workspace, unused here)

    if (has_box(c)) {
        memcpy(zb, z, c->nz * sizeof(double));
        for (size_t i = 0; i < c->nzin; i++)
            zb[i] = fmin(fmax(z[i], c->o->box_lo), c->o->box_hi);
        zp = zb;
    }
    unpack(c, zp);
    ASEC_TRY(asec_dlg_objective(&fl, c->dx, c->nsoft ? c->dsoft : NULL, c->g, c->m,
                                &c->batch, c->G, c->kind));
    c->evals++;
    pullback(c, dz, c->dx, c->dsoft);
    for (size_t i = 0; i < c->nzin; i++)
        pz += z[i] * z[i];
    *f = (fl + 0.5 * c->lam * pz / (double)c->nzin) * c->fscale;
    for (size_t i = 0; i < c->nz; i++) {
        if (i < c->nzin)
            dz[i] += c->lam * z[i] / (double)c->nzin;
        dz[i] *= c->fscale;
        if (zp != z && i < c->nzin && zp[i] != z[i]) {
            // outside the box f(P(z)) is flat in z_i: only the penalty acts
            double d = z[i] - zp[i];

            pen += d * d;
            dz[i] = BOX_PENALTY * d;
        }
    }
    *f += 0.5 * BOX_PENALTY * pen;
    return ASEC_OK;
}

static lbfgsfloatval_t
lbfgs_eval(void *inst, const lbfgsfloatval_t *x, lbfgsfloatval_t *g, const int n,
           const lbfgsfloatval_t step)
{
    struct ctx *c = inst;
    double f;
    int rc;

    (void)n;
    (void)step;
    rc = eval_f(c, &f, g, x);
    if (rc != ASEC_OK) {
        if (rc != ASEC_ENUMERIC && c->status == ASEC_OK)
            c->status = rc;
        return INFINITY; // the line search backs off
    }
    return f;
}

static int
lbfgs_progress(void *inst, const lbfgsfloatval_t *x, const lbfgsfloatval_t *g,
               const lbfgsfloatval_t fx, const lbfgsfloatval_t xnorm,
               const lbfgsfloatval_t gnorm, const lbfgsfloatval_t step, int n, int k,
               int ls)
{
    struct ctx *c = inst;

    (void)x, (void)g, (void)fx, (void)xnorm, (void)gnorm, (void)step, (void)n, (void)k;
    (void)ls;
    return c->status != ASEC_OK;
}

static int
run_lbfgs(struct ctx *c, double *z, size_t iters)
{
    lbfgs_parameter_t prm;
    lbfgsfloatval_t fx;

    if (iters == 0)
        return ASEC_OK;
    lbfgs_parameter_init(&prm);
    prm.m = (int)c->o->lbfgs_history;
    prm.max_iterations = (int)iters;
    prm.epsilon = 1e-15;
    prm.past = 20;
    prm.delta = 1e-12;
    prm.max_linesearch = 40;
    prm.linesearch = LBFGS_LINESEARCH_BACKTRACKING_STRONG_WOLFE;
    (void)lbfgs((int)c->nz, z, &fx, lbfgs_eval, lbfgs_progress, c, &prm);
    return c->status;
}

/* The success measure ||r|| / scale at z; also leaves g at z. */
static int
eval_res(struct ctx *c, double *res, double *r, const double *z)
{
    asec_model_vec gv;

    unpack(c, z);
    memset(&gv, 0, sizeof gv);
    gv.params = c->g;
    ASEC_TRY(asec_model_grad(c->m, NULL, &gv, &c->batch));
    c->evals++;
    ASEC_TRY(residual_of(r, c->g, c->G, c->P, c->kind));
    *res = asec_vec_norm2(r, c->P) / (c->kind == ASEC_DLG_EUCLID ? c->Gn : 1.0);
    return ASEC_OK;
}

/* jt (nz, P): row j = d r / d z_j at the point last unpacked (c->g holds
 * the gradient there).  kind: the residual whose Jacobian is built. */
static int
jacobian(struct ctx *c, asec_dlg_loss kind)
{
    double ng = asec_vec_norm2(c->g, c->P);

    for (size_t j = 0; j < c->nz; j++) {
        double *row = c->jt + j * c->P;
        const double *w = NULL;

        memset(c->ux, 0, c->nin * sizeof(double));
        if (j < c->nzin) {
            if (c->r > 0) {
                size_t i = j / c->r, jj = j % c->r;

                for (size_t k = 0; k < c->C; k++)
                    c->ux[i * c->C + k] = c->U[k * c->r + jj];
            } else {
                c->ux[j] = 1.0;
            }
        } else {
            size_t js = j - c->nzin, i = js / c->K;

            memset(c->us, 0, c->nsoft * sizeof(double));
            if (c->soft_softmax) {
                // d softmax(z_i) / d z_ij = p_ij (e_j - p_i)
                const double *p = c->soft + i * c->K;

                for (size_t k = 0; k < c->K; k++)
                    c->us[i * c->K + k] = p[js % c->K] * ((k == js % c->K) - p[k]);
            } else {
                c->us[js] = 1.0;
            }
            w = c->us;
        }
        ASEC_TRY(asec_model_grad_jvp(c->m, row, c->ux, w, &c->batch));
        c->jvps++;
        if (kind == ASEC_DLG_COS) {
            // d(g/|g|) = (dg - ghat <ghat, dg>) / |g|
            double d = asec_vec_dot(c->g, row, c->P) / (ng * ng);

            for (size_t p = 0; p < c->P; p++)
                row[p] = (row[p] - c->g[p] * d) / ng;
        }
    }
    return ASEC_OK;
}

static void
project_box(struct ctx *c, double *z)
{
    const asec_dlg_options *o = c->o;

    if (has_box(c))
        for (size_t i = 0; i < c->nzin; i++)
            z[i] = fmin(fmax(z[i], o->box_lo), o->box_hi);
}

/* Active-set LM with a box: an input at a bound whose descent direction
 * b_i = -(J^T r)_i points out of the box is held (row and column i of the
 * normal matrix A cleared but the diagonal, b_i = 0), so the step moves the
 * free inputs only instead of being clipped afterwards. */
static void
hold_active(const struct ctx *c, asec_mat *A, double *b, const double *z)
{
    const asec_dlg_options *o = c->o;
    size_t n = c->nz;

    if (!has_box(c))
        return;
    for (size_t i = 0; i < c->nzin; i++) {
        if (!((z[i] <= o->box_lo && b[i] < 0.0) || (z[i] >= o->box_hi && b[i] > 0.0)))
            continue;
        for (size_t j = 0; j < n; j++)
            if (j != i) {
                A->data[i * n + j] = 0.0;
                A->data[j * n + i] = 0.0;
            }
        b[i] = 0.0;
    }
}

/* Broyden's update of jt (nz, P) = J^T for the accepted step z -> z2 with
 * residuals r -> r2: J += (r2 - r - J s) s^T / |s|^2, s = z2 - z.  s and js
 * are workspaces of nz and P doubles. */
static int
broyden(struct ctx *c, asec_mat *jt, double *js, double *s, const double *z,
        const double *z2, const double *r, const double *r2)
{
    double ss = 0.0;

    for (size_t i = 0; i < c->nz; i++) {
        s[i] = z2[i] - z[i];
        ss += s[i] * s[i];
    }
    if (!(ss > 0.0))
        return ASEC_OK;
    ASEC_TRY(asec_mat_gemv(js, 1.0, jt, ASEC_TRANS, s, 0.0));
    for (size_t p = 0; p < c->P; p++)
        js[p] = (r2[p] - r[p] - js[p]) / ss;
    for (size_t j = 0; j < c->nz; j++) {
        double *row = jt->data + j * c->P;

        for (size_t p = 0; p < c->P; p++)
            row[p] += s[j] * js[p];
    }
    return ASEC_OK;
}

/* Levenberg-Marquardt on the residual: (J^T J + mu D) dz = -J^T r,
 * D = diag(J^T J).  res receives the final success measure. */
static int
run_lm(struct ctx *c, double *z, size_t iters, double *res)
{
    asec_mat jt = asec_mat_view(c->jt, c->nz, c->P), A = {0}, M = {0}, rhs;
    double *r = c->v, *r2 = c->r2, *z2 = c->z2, *b = NULL, *js = NULL, mu = -1.0;
    double cur, f, prev, hist[LM_STALL_WINDOW], scale = 0.0;
    size_t since = LM_EXACT_EVERY; // iterations since the last exact Jacobian
    int rc;

    ASEC_TRY(eval_res(c, &cur, r, z));
    if (iters == 0 || cur <= 1e-16) {
        *res = cur;
        return ASEC_OK;
    }
    rc = asec_mat_alloc(&A, c->nz, c->nz);
    if (rc == ASEC_OK)
        rc = asec_mat_alloc(&M, c->nz, c->nz);
    b = asec__malloc(c->nz * sizeof(double));
    js = asec__malloc(c->P * sizeof(double));
    if (rc != ASEC_OK || b == NULL || js == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "no memory for the %zu x %zu LM system",
                       c->nz, c->nz);
    f = 0.5 * cur * cur;
    prev = cur;
    for (size_t it = 0; it < iters; it++) {
        int accepted = 0, exact = since >= LM_EXACT_EVERY;

        if (exact) {
            rc = jacobian(c, c->kind);
            if (rc != ASEC_OK)
                goto fail;
            since = 0;
        }
        since++;
        c->lm_iters++;
        rc = asec_mat_syrk(&A, 1.0, &jt, ASEC_NOTRANS, 0.0);
        if (rc == ASEC_OK)
            rc = asec_mat_gemv(b, -1.0, &jt, ASEC_NOTRANS, r, 0.0);
        if (rc != ASEC_OK)
            goto fail;
        hold_active(c, &A, b, z);
        if (mu < 0.0) {
            for (size_t i = 0; i < c->nz; i++)
                scale = fmax(scale, A.data[i * c->nz + i]);
            if (!(scale > 0.0))
                break;
            mu = LM_MU0;
        }
        while (!accepted && mu <= LM_MU_MAX) {
            double cur2;

            memcpy(M.data, A.data, c->nz * c->nz * sizeof(double));
            for (size_t i = 0; i < c->nz; i++)
                M.data[i * c->nz + i] += mu * fmax(A.data[i * c->nz + i], 1e-12 * scale);
            memcpy(z2, b, c->nz * sizeof(double));
            rhs = asec_mat_view(z2, c->nz, 1);
            if (asec_mat_cholesky_solve(&rhs, &M) != ASEC_OK) {
                mu *= 4.0;
                continue;
            }
            for (size_t i = 0; i < c->nz; i++)
                z2[i] += z[i];
            project_box(c, z2);
            rc = eval_res(c, &cur2, r2, z2);
            if (rc != ASEC_OK && rc != ASEC_ENUMERIC)
                goto fail;
            if (rc == ASEC_OK && 0.5 * cur2 * cur2 < f) {
                rc = broyden(c, &jt, js, b, z, z2, r, r2);
                if (rc != ASEC_OK)
                    goto fail;
                memcpy(z, z2, c->nz * sizeof(double));
                memcpy(r, r2, c->P * sizeof(double));
                f = 0.5 * cur2 * cur2;
                cur = cur2;
                mu = fmax(mu / 3.0, 1e-15);
                accepted = 1;
            } else if (!exact) {
                break; // an updated Jacobian misled the step: recompute it
            } else {
                mu *= 4.0;
            }
        }
        rc = ASEC_OK;
        if (!accepted && !exact) {
            since = LM_EXACT_EVERY;
            c->lm_iters--;
            it--; // the iteration is redone with the exact Jacobian
            continue;
        }
        // past tol, polish while each step still gains a factor 2
        if (!accepted || (cur <= c->o->tol && cur > 0.5 * prev) || cur <= 1e-16)
            break;
        prev = cur;
        // a spurious minimum: less than a factor LM_STALL_GAIN gained over
        // LM_STALL_WINDOW iterations, far from a solution
        hist[it % LM_STALL_WINDOW] = cur;
        if (it >= LM_STALL_WINDOW && cur > LM_STALL_FLOOR &&
            cur > hist[(it + 1) % LM_STALL_WINDOW] / LM_STALL_GAIN)
            break;
    }
    // leave the model's state (c->g, x) at z
    rc = eval_res(c, &cur, r, z);
fail:
    asec_mat_free(&A);
    asec_mat_free(&M);
    asec__free(b);
    asec__free(js);
    *res = cur;
    return rc;
}

/* sigma_min, cond and tr((J^T J)^-1) of the Euclidean Jacobian at z. */
static int
diagnose(struct ctx *c, asec_dlg_result *R, const double *z)
{
    asec_mat jt = asec_mat_view(c->jt, c->nz, c->P);
    double *s = asec__malloc(c->nz * sizeof(double)), res, tr = 0.0;
    int rc;

    if (s == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "no memory for %zu singular values", c->nz);
    rc = eval_res(c, &res, c->r2, z);
    if (rc == ASEC_OK)
        rc = jacobian(c, ASEC_DLG_EUCLID);
    if (rc == ASEC_OK)
        rc = asec_mat_svd(s, NULL, NULL, &jt);
    if (rc == ASEC_OK) {
        size_t k = c->nz < c->P ? c->nz : c->P;

        R->sigma_min = c->nz <= c->P ? s[k - 1] : 0.0;
        R->cond = R->sigma_min > DIAG_RCOND * s[0] ? s[0] / R->sigma_min : INFINITY;
        for (size_t i = 0; i < k; i++)
            tr += s[i] > DIAG_RCOND * s[0] ? 1.0 / (s[i] * s[i]) : INFINITY;
        R->noise_gain = c->nz <= c->P ? tr : INFINITY;
    }
    asec__free(s);
    return rc;
}

void
asec_dlg_result_free(asec_dlg_result *r)
{
    if (r == NULL)
        return;
    asec__free(r->x);
    asec__free(r->soft);
    asec__free(r->labels);
    asec__free(r);
}

size_t
asec_dlg_suggest_restarts(const asec_model *m, size_t B, size_t T)
{
    const asec_model_arch *a = asec_model_get_arch(m);
    size_t N, r, u;

    if (a->kind != ASEC_MODEL_ATTN_REGRESSION)
        return 64;
    // unknowns of a start: B T tokens in the span (r = B T < C) or in R^C
    if (asec__mul_size(B, asec_model_tokens(m, T), &N) != 0)
        return 64;
    r = N < a->channels ? N : a->channels;
    if (asec__mul_size(N, r, &u) != 0 || u > 1024)
        return 64;
    return u <= 64 ? 1024 : 65536 / u;
}

static int
check_options(const asec_dlg_options *o)
{
    if ((unsigned)o->loss > 1)
        ASEC_FAIL(ASEC_EINVAL, "unknown matching loss %d", (int)o->loss);
    if ((unsigned)o->labels > 3)
        ASEC_FAIL(ASEC_EINVAL, "unknown label mode %d", (int)o->labels);
    if (o->restarts == 0)
        ASEC_FAIL(ASEC_EINVAL, "restarts must be at least 1");
    if (o->alternate < -1 || o->alternate > 1)
        ASEC_FAIL(ASEC_EINVAL, "alternate %d is not -1 (auto), 0 or 1", o->alternate);
    if (o->lbfgs_history == 0 || o->lbfgs_history > 1000)
        ASEC_FAIL(ASEC_EINVAL, "L-BFGS history %zu is not in [1, 1000]", o->lbfgs_history);
    if (o->lbfgs_iters > 10000000 || o->lm_iters > 10000000)
        ASEC_FAIL(ASEC_EINVAL, "iteration limits must be at most 1e7");
    if (!(o->init_std > 0.0) || !isfinite(o->init_std))
        ASEC_FAIL(ASEC_EINVAL, "init_std %g must be positive and finite", o->init_std);
    if (!(o->prior >= 0.0) || !isfinite(o->prior))
        ASEC_FAIL(ASEC_EINVAL, "prior %g must be >= 0 and finite", o->prior);
    if (!(o->tol >= 0.0) || !isfinite(o->tol))
        ASEC_FAIL(ASEC_EINVAL, "tol %g must be >= 0 and finite", o->tol);
    if (!isfinite(o->box_lo) || !isfinite(o->box_hi))
        ASEC_FAIL(ASEC_EINVAL, "the box [%g, %g] must be finite", o->box_lo, o->box_hi);
    return ASEC_OK;
}

/* Resolve the label mode and set up the batch's labels / soft and the
 * soft unknowns.  lab receives iDLG labels when used. */
static int
setup_labels(struct ctx *c, asec_dlg_result *R, const asec_dlg_problem *pb,
             int64_t *lab)
{
    const asec_model_arch *a = asec_model_get_arch(c->m);
    asec_dlg_labels mode = c->o->labels;
    size_t Rw = asec_model_rows(c->m, pb->T);
    int known = pb->labels != NULL || pb->soft != NULL;

    if (pb->labels != NULL && !is_classifier(a))
        ASEC_FAIL(ASEC_EINVAL, "hard labels given for an attn-regression model "
                               "(it takes targets)");
    if (mode == ASEC_DLG_LABELS_AUTO) {
        if (known)
            mode = ASEC_DLG_LABELS_KNOWN;
        else if (is_classifier(a) && a->pool != ASEC_MODEL_POOL_NONE && c->B == 1)
            mode = ASEC_DLG_LABELS_IDLG;
        else
            mode = ASEC_DLG_LABELS_JOINT;
    }
    if (mode == ASEC_DLG_LABELS_KNOWN && !known)
        ASEC_FAIL(ASEC_EINVAL, "label mode 'known' without labels or targets");
    if (mode == ASEC_DLG_LABELS_JOINT && is_classifier(a) && a->pool == ASEC_MODEL_POOL_NONE)
        ASEC_FAIL(ASEC_EINVAL, "joint labels are not supported with pooling none "
                               "(give the labels)");
    R->label_mode = mode;
    c->rows = c->B * Rw;
    c->K = is_classifier(a) ? a->classes : c->T * c->C;
    if (!is_classifier(a))
        c->rows = c->B;
    switch (mode) {
    case ASEC_DLG_LABELS_KNOWN:
        c->batch.labels = pb->labels;
        c->batch.soft = pb->labels != NULL ? NULL : pb->soft;
        break;
    case ASEC_DLG_LABELS_IDLG:
        ASEC_TRY(asec_dlg_idlg_labels(lab, c->B, c->m, c->G));
        c->batch.labels = lab;
        break;
    default:
        c->nsoft = c->rows * c->K;
        c->soft_softmax = is_classifier(a);
        c->batch.soft = c->soft;
        break;
    }
    return ASEC_OK;
}

int
asec_dlg_attack(asec_dlg_result **res, asec_model *m, const asec_dlg_problem *pb,
                const asec_dlg_options *o, asec_rng *rng)
{
    const asec_model_arch *a = asec_model_get_arch(m);
    asec_dlg_result *R = NULL;
    struct ctx c;
    double *U = NULL, *z = NULL, *best = NULL, *ws = NULL, bestres = INFINITY;
    size_t nws, soft_size;
    int rc, alt;

    *res = NULL;
    ASEC_TRY(check_options(o));
    if (pb->B == 0)
        ASEC_FAIL(ASEC_EINVAL, "the batch is empty (B = 0)");
    if (pb->grad == NULL)
        ASEC_FAIL(ASEC_EINVAL, "no observed gradient");
    memset(&c, 0, sizeof c);
    c.m = m;
    c.o = o;
    c.kind = o->loss;
    c.P = asec_model_param_count(m);
    c.B = pb->B;
    c.T = asec_model_tokens(m, pb->T);
    c.C = a->channels;
    c.G = pb->grad;
    for (size_t i = 0; i < c.P; i++)
        if (!isfinite(pb->grad[i]))
            ASEC_FAIL(ASEC_ENUMERIC, "observed gradient entry %zu is not finite", i);
    c.Gn = asec_vec_norm2(pb->grad, c.P);
    if (!(c.Gn > 0.0))
        ASEC_FAIL(ASEC_EINVAL, "the observed gradient is zero");
    c.insz = asec_model_input_size(m, pb->T);
    if (asec__mul_size(c.B, c.insz, &c.nin) != 0 || asec__mul_size(c.B, c.T, &c.N) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "batch size overflows");
    c.batch.B = c.B;
    c.batch.T = pb->T;

    R = asec__calloc(1, sizeof *R);
    if (R == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "no memory for the result");
    R->B = c.B;
    R->T = c.T;
    R->input_size = c.insz;
    R->sigma_min = R->cond = R->noise_gain = NAN;
    R->equations = c.P;
    R->labels = is_classifier(a) ? asec__calloc(c.B, sizeof(int64_t)) : NULL;
    if (is_classifier(a) && R->labels == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "no memory for %zu labels", c.B);

    // the token span (ATTACKS.md section 0.3)
    if (o->span && c.N < c.C && a->kind != ASEC_MODEL_VIT && a->kind != ASEC_MODEL_TEXT &&
        !(a->kind == ASEC_MODEL_ATTN_BLOCK && a->pos != ASEC_MODEL_POS_NONE)) {
        U = asec__malloc(c.C * c.N * sizeof(double));
        if (U == NULL)
            ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "no memory for the span basis");
        double sv[4096];

        rc = c.C <= 4096 ? asec_dlg_span(U, sv, c.N, m, pb->grad) : ASEC_ENOTSUP;
        if (rc != ASEC_OK && rc != ASEC_ENOTSUP)
            goto fail;
        // a weak direction (sigma_r <= SPAN_RCOND sigma_1) is not trusted: the
        // attack then runs in the full input space
        if (rc == ASEC_OK && sv[c.N - 1] > SPAN_RCOND * sv[0]) {
            c.r = c.N;
            c.U = U;
        }
        rc = ASEC_OK;
    }
    c.nzin = c.r > 0 ? c.N * c.r : c.nin;
    R->span_rank = c.r;

    // workspace: x, soft, g, v, dx, dsoft, ux, us, r2 and z2
    c.rows = c.B;
    c.K = is_classifier(a) ? a->classes : c.T * c.C;
    soft_size = asec_model_rows(m, pb->T) * c.K;
    if (!is_classifier(a))
        soft_size = c.T * c.C;
    nws = 3 * c.nin + 3 * c.B * soft_size + 3 * c.P + c.nzin;
    ws = asec__malloc(nws * sizeof(double));
    if (ws == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "no memory for the attack workspace");
    c.x = ws;
    c.dx = c.x + c.nin;
    c.soft = c.dx + c.nin;
    c.dsoft = c.soft + c.B * soft_size;
    c.g = c.dsoft + c.B * soft_size;
    c.v = c.g + c.P;
    c.r2 = c.v + c.P;
    c.ux = c.r2 + c.P;     // nin (shares no storage with z2)
    c.us = c.soft;         // replaced below
    c.z2 = c.ux + c.nin;   // nzin + soft
    c.batch.x = c.x;
    rc = setup_labels(&c, R, pb, R->labels);
    if (rc != ASEC_OK)
        goto fail;
    c.nz = c.nzin + c.nsoft;
    R->unknowns = c.nz;
    {
        size_t njt;

        if (asec__mul_size(c.nz, c.P, &njt) != 0)
            ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "the Jacobian size overflows");
        c.jt = asec__malloc((njt + c.nsoft) * sizeof(double));
        z = asec__malloc(2 * c.nz * sizeof(double));
        if (c.jt == NULL || z == NULL)
            ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "no memory for the %zu x %zu Jacobian",
                           c.nz, c.P);
        c.us = c.jt + njt;
        best = z + c.nz;
    }
    alt = o->alternate > 0 || (o->alternate < 0 && a->kind == ASEC_MODEL_VIT);

    for (size_t s = 0; s < o->restarts; s++) {
        double cur = INFINITY;
        // the prior is for random starts: a warm start runs without it
        int warm = s == 0 && pb->init != NULL;
        // alternating losses: starts 1, 3, 4, 6, 9, 11, 12, ... run on the other
        // loss (so that the prior-free starts 1, 5, 9, ... use both)
        int other = alt && !warm && (s + s / 4) % 2 == 1;
        size_t stages = o->prior > 0.0 && s % PRIOR_FREE_EVERY != 1 && !warm ? PRIOR_STAGES
                                                                             : 1;
        // a token x = U z of a start has the norm of a full-space start
        // (|x|^2 ~ C init_std^2): z ~ N(0, (C / r) init_std^2)
        double zs = c.r > 0 ? sqrt((double)c.C / (double)c.r) : 1.0;

        c.status = ASEC_OK;
        c.kind = other ? (asec_dlg_loss)(1 - (int)o->loss) : o->loss;
        c.fscale = c.kind == ASEC_DLG_EUCLID ? 1.0 / (c.Gn * c.Gn) : 1.0;
        for (size_t i = 0; i < c.nz; i++)
            z[i] = (i < c.nzin ? zs : 1.0) * o->init_std * asec_rng_normal(rng);
        if (o->box_lo < o->box_hi && c.r == 0)
            for (size_t i = 0; i < c.nzin; i++)
                z[i] = o->box_lo + (o->box_hi - o->box_lo) * asec_rng_uniform(rng);
        if (s == 0 && pb->init != NULL) {
            // the warm start, in span coordinates z_i = U^T x_i
            if (c.r > 0)
                pullback(&c, z, pb->init, NULL);
            else
                memcpy(z, pb->init, c.nin * sizeof(double));
        }
        for (size_t k = 0; k < stages; k++) {
            c.lam = k + 1 < stages ? o->prior * pow(0.1, (double)k) : 0.0;
            rc = run_lbfgs(&c, z, o->lbfgs_iters / stages);
            if (rc != ASEC_OK)
                goto fail;
        }
        project_box(&c, z);
        c.status = ASEC_OK;
        rc = run_lm(&c, z, o->lm_iters, &cur);
        if (other && rc == ASEC_OK) {
            // the result is judged by the requested loss: polish on it
            c.kind = o->loss;
            rc = run_lm(&c, z, o->lm_iters, &cur);
        }
        c.kind = o->loss;
        if (rc == ASEC_ENUMERIC) {
            rc = ASEC_OK; // a diverged start
            cur = INFINITY;
        }
        if (rc != ASEC_OK)
            goto fail;
        R->starts++;
        if (cur < bestres || s == 0) {
            bestres = cur;
            memcpy(best, z, c.nz * sizeof(double));
            R->best_start = s;
        }
        if (bestres <= o->tol)
            break;
    }

    // the result at the best start
    unpack(&c, best);
    R->x = asec__malloc(c.nin * sizeof(double));
    if (R->x == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "no memory for the recovered inputs");
    memcpy(R->x, c.x, c.nin * sizeof(double));
    if (c.nsoft > 0) {
        R->soft_size = c.nsoft / c.B;
        R->soft = asec__malloc(c.nsoft * sizeof(double));
        if (R->soft == NULL)
            ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "no memory for the recovered labels");
        memcpy(R->soft, c.soft, c.nsoft * sizeof(double));
        if (is_classifier(a) && a->pool != ASEC_MODEL_POOL_NONE)
            for (size_t b = 0; b < c.B; b++) {
                size_t am = 0;

                for (size_t k = 1; k < c.K; k++)
                    if (c.soft[b * c.K + k] > c.soft[b * c.K + am])
                        am = k;
                R->labels[b] = (int64_t)am;
            }
    } else if (R->labels != NULL && pb->labels != NULL && c.batch.labels == pb->labels) {
        size_t nl = a->pool == ASEC_MODEL_POOL_NONE ? c.N : c.B;
        int64_t *l2 = asec__realloc(R->labels, nl * sizeof(int64_t));

        if (l2 == NULL)
            ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "no memory for %zu labels", nl);
        R->labels = l2;
        memcpy(R->labels, pb->labels, nl * sizeof(int64_t));
    }
    {
        double fl;

        rc = asec_dlg_objective(&fl, NULL, NULL, c.g, m, &c.batch, c.G, o->loss);
        if (rc != ASEC_OK && rc != ASEC_ENUMERIC)
            goto fail;
        R->loss = rc == ASEC_OK ? fl : INFINITY;
        rc = ASEC_OK;
    }
    R->residual = bestres;
    R->converged = bestres <= o->tol;
    if (o->diagnostics) {
        rc = diagnose(&c, R, best);
        if (rc == ASEC_ENUMERIC)
            rc = ASEC_OK; // diagnostics stay NaN
        if (rc != ASEC_OK)
            goto fail;
    }
    R->evals = c.evals;
    R->jvps = c.jvps;
    R->lm_iters = c.lm_iters;
    *res = R;
    R = NULL;
    rc = ASEC_OK;
fail:
    asec_dlg_result_free(R);
    asec__free(U);
    asec__free(z);
    asec__free(ws);
    asec__free(c.jt);
    return rc;
}

/* ------------------------------------------------------------ metrics */

int
asec_dlg_hungarian(size_t *assign, const double *cost, size_t n)
{
    // Shortest augmenting paths with row and column potentials (Kuhn-Munkres,
    // O(n^3)); 1-based work arrays, column 0 is the virtual start.
    double *u = NULL, *v = NULL, *minv = NULL;
    size_t *p = NULL, *way = NULL;
    unsigned char *used = NULL;
    int rc = ASEC_OK;

    if (n == 0)
        return ASEC_OK;
    for (size_t i = 0; i < n * n; i++)
        if (!isfinite(cost[i]))
            ASEC_FAIL(ASEC_EINVAL, "assignment cost %zu is not finite", i);
    u = asec__calloc(n + 1, sizeof(double));
    v = asec__calloc(n + 1, sizeof(double));
    minv = asec__calloc(n + 1, sizeof(double));
    p = asec__calloc(n + 1, sizeof(size_t));
    way = asec__calloc(n + 1, sizeof(size_t));
    used = asec__calloc(n + 1, 1);
    if (!u || !v || !minv || !p || !way || !used)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "no memory for a %zu x %zu assignment", n, n);
    for (size_t i = 1; i <= n; i++) {
        size_t j0 = 0;

        p[0] = i;
        for (size_t j = 0; j <= n; j++) {
            minv[j] = INFINITY;
            used[j] = 0;
        }
        do {
            size_t i0 = p[j0], j1 = 0;
            double delta = INFINITY;

            used[j0] = 1;
            for (size_t j = 1; j <= n; j++) {
                if (used[j])
                    continue;
                double cur = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];

                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if (minv[j] < delta) {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for (size_t j = 0; j <= n; j++) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        do {
            size_t j1 = way[j0];

            p[j0] = p[j1];
            j0 = j1;
        } while (j0 != 0);
    }
    for (size_t j = 1; j <= n; j++)
        assign[p[j] - 1] = j - 1;
fail:
    asec__free(u);
    asec__free(v);
    asec__free(minv);
    asec__free(p);
    asec__free(way);
    asec__free(used);
    return rc;
}

int
asec_dlg_rel_error(double *raw, double *matched, size_t *perm, const double *xhat,
                   const double *x, size_t B, size_t T, size_t C)
{
    double num = 0.0, den = 0.0, numm = 0.0;
    double *cost = NULL;
    size_t *as = NULL, n, tt;
    int rc = ASEC_OK;

    if (asec__mul_size(B, T, &n) != 0 || asec__mul_size(n, C, &n) != 0 ||
        asec__mul_size(T, T, &tt) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "sizes overflow");
    for (size_t i = 0; i < n; i++) {
        num += (xhat[i] - x[i]) * (xhat[i] - x[i]);
        den += x[i] * x[i];
    }
    *raw = den > 0.0 ? sqrt(num / den) : sqrt(num);
    if (matched == NULL && perm == NULL)
        return ASEC_OK;
    cost = asec__malloc(tt * sizeof(double));
    as = asec__malloc(T * sizeof(size_t));
    if (cost == NULL || as == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "no memory for a %zu-token matching", T);
    for (size_t b = 0; b < B; b++) {
        const double *xh = xhat + b * T * C, *xt = x + b * T * C;

        for (size_t i = 0; i < T; i++)
            for (size_t j = 0; j < T; j++) {
                double s = 0.0;

                for (size_t k = 0; k < C; k++)
                    s += (xh[i * C + k] - xt[j * C + k]) * (xh[i * C + k] - xt[j * C + k]);
                cost[i * T + j] = s;
            }
        rc = asec_dlg_hungarian(as, cost, T);
        if (rc != ASEC_OK)
            goto fail;
        for (size_t i = 0; i < T; i++) {
            numm += cost[i * T + as[i]];
            if (perm != NULL)
                perm[b * T + i] = as[i];
        }
    }
    if (matched != NULL)
        *matched = den > 0.0 ? sqrt(numm / den) : sqrt(numm);
fail:
    asec__free(cost);
    asec__free(as);
    return rc;
}

int
asec_dlg_decode(int64_t *ids, const double *x, size_t N, size_t C, const double *vocab,
                size_t V)
{
    if (V == 0)
        ASEC_FAIL(ASEC_EINVAL, "an empty vocabulary");
    for (size_t i = 0; i < N; i++) {
        const double *xi = x + i * C;
        double nx = asec_vec_norm2(xi, C), bestc = -INFINITY;
        size_t bv = 0;

        for (size_t w = 0; w < V; w++) {
            double nv = asec_vec_norm2(vocab + w * C, C);
            double cs = asec_vec_dot(xi, vocab + w * C, C) / (nx * nv > 0 ? nx * nv : 1.0);

            if (cs > bestc) {
                bestc = cs;
                bv = w;
            }
        }
        ids[i] = (int64_t)bv;
    }
    return ASEC_OK;
}

double
asec_dlg_psnr(const double *a, const double *b, size_t n, double range)
{
    double mse = 0.0;

    for (size_t i = 0; i < n; i++)
        mse += (a[i] - b[i]) * (a[i] - b[i]);
    if (n > 0)
        mse /= (double)n;
    return mse > 0.0 ? 10.0 * log10(range * range / mse) : INFINITY;
}

/* ------------------------------------------------------------ defenses */

int
asec_dlg_defend_noise(double *g, size_t P, double sigma, int relative, asec_dlg_noise dist,
                      asec_rng *rng)
{
    double s;

    if (!(sigma >= 0.0) || !isfinite(sigma))
        ASEC_FAIL(ASEC_EINVAL, "noise sigma %g must be >= 0 and finite", sigma);
    if ((unsigned)dist > 1)
        ASEC_FAIL(ASEC_EINVAL, "unknown noise distribution %d", (int)dist);
    if (P == 0 || sigma == 0.0)
        return ASEC_OK;
    s = relative ? sigma * asec_vec_norm2(g, P) / sqrt((double)P) : sigma;
    for (size_t i = 0; i < P; i++)
        g[i] += dist == ASEC_DLG_NOISE_GAUSS ? s * asec_rng_normal(rng)
                                             : s * 0.70710678118654752440 * asec_rng_laplace(rng);
    return ASEC_OK;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

int
asec_dlg_defend_prune(double *g, size_t P, double frac)
{
    double *mag, thr;
    size_t k, zeroed = 0;

    if (!(frac >= 0.0 && frac <= 1.0))
        ASEC_FAIL(ASEC_EINVAL, "pruning fraction %g is not in [0, 1]", frac);
    k = (size_t)floor(frac * (double)P);
    if (k == 0)
        return ASEC_OK;
    mag = asec__malloc(P * sizeof(double));
    if (mag == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "no memory for %zu magnitudes", P);
    for (size_t i = 0; i < P; i++)
        mag[i] = fabs(g[i]);
    qsort(mag, P, sizeof(double), cmp_double);
    thr = mag[k - 1];
    // strictly below the threshold first, then ties until k are zeroed
    for (size_t i = 0; i < P; i++)
        if (fabs(g[i]) < thr) {
            g[i] = 0.0;
            zeroed++;
        }
    for (size_t i = 0; i < P && zeroed < k; i++)
        if (fabs(g[i]) == thr && g[i] != 0.0) {
            g[i] = 0.0;
            zeroed++;
        } else if (g[i] == 0.0 && thr == 0.0) {
            zeroed++;
        }
    asec__free(mag);
    return ASEC_OK;
}

int
asec_dlg_defend_clip(double *out, const double *grads, size_t B, size_t P, double c)
{
    if (B == 0)
        ASEC_FAIL(ASEC_EINVAL, "clipping an empty batch");
    if (!(c > 0.0) || !isfinite(c))
        ASEC_FAIL(ASEC_EINVAL, "clipping norm %g must be positive and finite", c);
    memset(out, 0, P * sizeof(double));
    for (size_t b = 0; b < B; b++) {
        const double *row = grads + b * P;
        double nr = asec_vec_norm2(row, P), f = nr > c ? c / nr : 1.0;

        for (size_t i = 0; i < P; i++)
            out[i] += f * row[i] / (double)B;
    }
    return ASEC_OK;
}
