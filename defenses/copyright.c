/* copyright.c - the regression family (exp/cosh/sinh, softmax, rescaled),
 * the copyright objective L + gamma / L_1 + L_reg of Chu, Song, Yang 2023
 * (arXiv 2308.12247) and its Newton-type solvers.
 *
 * Formulas: MATH.md §2.2 (exp/cosh/sinh), §2.3 (softmax: B(x), the
 * diagonal + rank-2 split, the O(n) Hessian-vector product), §2.4
 * (rescaled), §2.1 (approximate Newton with leverage-score sampling) and
 * §6.2 (the copyright loss and its derivatives).
 *
 * Per family, with z = A x, the loss pieces are: the value, g_z = dL/dz,
 * and the curvature C = diag(cd) + P M P^T (P (n, k), M (k, k), k <= 2)
 * such that Hess L = A^T C A. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "attnsec/copyright.h"
#include "attnsec/vec.h"
#include "internal.h"

/* Armijo sufficient-decrease constant (MATH.md §2.1, "Practical
 * replacement"). */
#define ARMIJO_C1 1e-4
/* Columns of the low-rank part of Hess L_cpr: P (2), P1 (2), g1 (1). */
#define MAX_LOWRANK 5

/* ------------------------------------------------------------ names */

static const char *const family_names[ASEC_COPYRIGHT_NFAMILIES] = {
    "softmax", "exp", "cosh", "sinh", "rescaled-exp", "rescaled-cosh", "rescaled-sinh"};

const char *
asec_copyright_family_name(asec_copyright_family family)
{
    if ((unsigned)family >= ASEC_COPYRIGHT_NFAMILIES)
        return "?";
    return family_names[family];
}

int
asec_copyright_family_parse(asec_copyright_family *out, const char *name)
{
    for (unsigned i = 0; i < ASEC_COPYRIGHT_NFAMILIES; i++) {
        if (strcmp(name, family_names[i]) == 0) {
            *out = (asec_copyright_family)i;
            return ASEC_OK;
        }
    }
    ASEC_FAIL(ASEC_EINVAL, "unknown regression family '%s'", name);
}

static const char *const method_names[] = {"newton", "woodbury", "cg", "sketch"};

const char *
asec_copyright_method_name(asec_copyright_method m)
{
    if ((unsigned)m > ASEC_COPYRIGHT_SKETCH)
        return "?";
    return method_names[m];
}

int
asec_copyright_method_parse(asec_copyright_method *out, const char *name)
{
    for (unsigned i = 0; i <= ASEC_COPYRIGHT_SKETCH; i++) {
        if (strcmp(name, method_names[i]) == 0) {
            *out = (asec_copyright_method)i;
            return ASEC_OK;
        }
    }
    ASEC_FAIL(ASEC_EINVAL, "unknown solver '%s'", name);
}

const char *
asec_copyright_status_name(asec_copyright_status s)
{
    switch (s) {
    case ASEC_COPYRIGHT_RUNNING:
        return "running";
    case ASEC_COPYRIGHT_CONVERGED_GRAD:
        return "converged-grad";
    case ASEC_COPYRIGHT_CONVERGED_LOSS:
        return "converged-loss";
    case ASEC_COPYRIGHT_MAX_ITER:
        return "max-iter";
    case ASEC_COPYRIGHT_STALLED:
        return "stalled";
    }
    return "?";
}

/* ------------------------------------------------------------ families */

/* u, u', u'' for u = exp (kind 0), cosh (1), sinh (2). */
static void
elem(int kind, double z, double *u, double *u1, double *u2)
{
    switch (kind) {
    case 0:
        *u = *u1 = *u2 = exp(z);
        break;
    case 1:
        *u = *u2 = cosh(z);
        *u1 = sinh(z);
        break;
    default:
        *u = *u2 = sinh(z);
        *u1 = cosh(z);
        break;
    }
}

/* The pieces of family fam at z (n) with targets b (n).
 *   loss   0.5 ||r||^2 (always written)
 *   gz     dL/dz (n) or NULL
 *   cd     diagonal of the curvature (n) or NULL; when not NULL, p (n, 2)
 *          row-major receives P, m (2, 2) row-major M, *k the rank
 *   f      scratch (n)
 * Returns ASEC_OK or ASEC_ENUMERIC (non-finite value). */
static int
fam_eval(asec_copyright_family fam, const double *z, const double *b, size_t n,
         double *loss, double *gz, double *cd, double *p, double *m, size_t *k,
         double *f)
{
    double l = 0.0;

    if (cd != NULL)
        *k = 0;
    if (fam == ASEC_COPYRIGHT_SOFTMAX) {
        double fc = 0.0, kappa = 0.0;
        int rc = asec_vec_softmax(f, z, n);

        if (rc != ASEC_OK)
            return rc;
        for (size_t i = 0; i < n; i++) {
            double c = f[i] - b[i];

            l += c * c;
            fc += f[i] * c;
            kappa += (3.0 * f[i] - 2.0 * b[i]) * f[i];
        }
        /* g_z = S(f) c = f o c - <f, c> f */
        if (gz != NULL)
            for (size_t i = 0; i < n; i++)
                gz[i] = f[i] * (f[i] - b[i]) - fc * f[i];
        /* B = diag(u - <f,c> f) + [f u] [[kappa, -1], [-1, 0]] [f u]^T,
         * u = (2f - b) o f (MATH.md §2.3). */
        if (cd != NULL) {
            for (size_t i = 0; i < n; i++) {
                double u = (2.0 * f[i] - b[i]) * f[i];

                cd[i] = u - fc * f[i];
                p[2 * i] = f[i];
                p[2 * i + 1] = u;
            }
            m[0] = kappa;
            m[1] = m[2] = -1.0;
            m[3] = 0.0;
            *k = 2;
        }
    } else if (fam <= ASEC_COPYRIGHT_SINH) {
        int kind = (int)fam - (int)ASEC_COPYRIGHT_EXP;

        /* L = 0.5 ||u(z) - b||^2; C = diag(u'^2 + (u - b) u'') (§2.2). */
        for (size_t i = 0; i < n; i++) {
            double u, u1, u2, r;

            elem(kind, z[i], &u, &u1, &u2);
            r = u - b[i];
            l += r * r;
            if (gz != NULL)
                gz[i] = r * u1;
            if (cd != NULL)
                cd[i] = u1 * u1 + r * u2;
        }
    } else {
        int kind = (int)fam - (int)ASEC_COPYRIGHT_RESCALED_EXP;
        double s = 0.0, beta = 0.0, bb = 0.0;

        /* c = u - <u, 1> b, beta = <b, c>; g_z = u' o (c - beta 1);
         * C = diag(u'^2 + u'' o (c - beta)) + [u', b o u'] [[|b|^2, -1],
         * [-1, 0]] [u', b o u']^T (§2.4 expanded). */
        for (size_t i = 0; i < n; i++) {
            double u1, u2;

            elem(kind, z[i], &f[i], &u1, &u2);
            s += f[i];
        }
        for (size_t i = 0; i < n; i++) {
            f[i] -= s * b[i]; /* f now holds c */
            l += f[i] * f[i];
            beta += b[i] * f[i];
            bb += b[i] * b[i];
        }
        for (size_t i = 0; i < n; i++) {
            double u, u1, u2;

            elem(kind, z[i], &u, &u1, &u2);
            if (gz != NULL)
                gz[i] = u1 * (f[i] - beta);
            if (cd != NULL) {
                cd[i] = u1 * u1 + u2 * (f[i] - beta);
                p[2 * i] = u1;
                p[2 * i + 1] = b[i] * u1;
            }
        }
        if (cd != NULL) {
            m[0] = bb;
            m[1] = m[2] = -1.0;
            m[3] = 0.0;
            *k = 2;
        }
    }
    *loss = 0.5 * l;
    if (!isfinite(*loss))
        ASEC_FAIL(ASEC_ENUMERIC, "%s regression loss is not finite (overflow of u(Ax))",
                  asec_copyright_family_name(fam));
    if (gz != NULL)
        for (size_t i = 0; i < n; i++)
            if (!isfinite(gz[i]))
                ASEC_FAIL(ASEC_ENUMERIC, "%s regression gradient is not finite at row %zu",
                          asec_copyright_family_name(fam), i);
    return ASEC_OK;
}

int
asec_copyright_curvature(asec_mat *out, asec_copyright_family family, const double *z,
                         const double *b, size_t n)
{
    double *buf = NULL, *cd, *p, *f, m[4], loss;
    size_t k, sz;
    int rc;

    if ((unsigned)family >= ASEC_COPYRIGHT_NFAMILIES)
        ASEC_FAIL(ASEC_EINVAL, "curvature: unknown family %d", (int)family);
    if (n == 0)
        ASEC_FAIL(ASEC_EINVAL, "curvature: n is 0");
    if (out->rows != n || out->cols != n || out->ld < n || out->data == NULL)
        ASEC_FAIL(ASEC_EBADLEN, "curvature: out is %zux%zu, expected %zux%zu", out->rows,
                  out->cols, n, n);
    if (asec__mul_size(n, 4 * sizeof(double), &sz) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "curvature: n = %zu overflows", n);
    buf = asec__malloc(sz);
    if (buf == NULL)
        return ASEC_ENOMEM;
    cd = buf;
    f = buf + n;
    p = buf + 2 * n;
    rc = fam_eval(family, z, b, n, &loss, NULL, cd, p, m, &k, f);
    if (rc == ASEC_OK) {
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < n; j++) {
                double v = i == j ? cd[i] : 0.0;

                for (size_t a = 0; a < k; a++)
                    for (size_t c = 0; c < k; c++)
                        v += p[2 * i + a] * m[2 * a + c] * p[2 * j + c];
                out->data[i * out->ld + j] = v;
            }
        }
    }
    asec__free(buf);
    return rc;
}

/* ------------------------------------------------------------ problem */

static int
check_finite_arr(const char *what, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            ASEC_FAIL(ASEC_ENUMERIC, "%s[%zu] is not finite (%g)", what, i, x[i]);
    return ASEC_OK;
}

static int
check_finite_mat(const char *what, const asec_mat *a)
{
    for (size_t i = 0; i < a->rows; i++)
        for (size_t j = 0; j < a->cols; j++)
            if (!isfinite(a->data[i * a->ld + j]))
                ASEC_FAIL(ASEC_ENUMERIC, "%s[%zu, %zu] is not finite (%g)", what, i, j,
                          a->data[i * a->ld + j]);
    return ASEC_OK;
}

static int
check_block(const char *name, const char *bname, const asec_mat *a, const double *b,
            size_t d)
{
    if (a->rows == 0)
        return ASEC_OK;
    if (a->cols != d)
        ASEC_FAIL(ASEC_EBADLEN, "%s is %zux%zu but a has %zu columns", name, a->rows,
                  a->cols, d);
    if (a->data == NULL || a->ld < a->cols)
        ASEC_FAIL(ASEC_EINVAL, "%s has no data or ld %zu < cols %zu", name, a->ld, a->cols);
    if (b == NULL)
        ASEC_FAIL(ASEC_EINVAL, "%s has %zu rows but %s is NULL", name, a->rows, bname);
    return ASEC_OK;
}

int
asec_copyright_problem_check(const asec_copyright_problem *p)
{
    size_t n = p->a.rows, d = p->a.cols;

    if (p->version != ASEC_COPYRIGHT_PROBLEM_VERSION)
        ASEC_FAIL(ASEC_EINVAL, "problem version %u, expected %u", p->version,
                  ASEC_COPYRIGHT_PROBLEM_VERSION);
    if ((unsigned)p->family >= ASEC_COPYRIGHT_NFAMILIES)
        ASEC_FAIL(ASEC_EINVAL, "unknown regression family %d", (int)p->family);
    if (n == 0 || d == 0)
        ASEC_FAIL(ASEC_EINVAL, "a is %zux%zu; need at least one row and one column", n, d);
    if (p->a.data == NULL || p->a.ld < d)
        ASEC_FAIL(ASEC_EINVAL, "a has no data or ld %zu < cols %zu", p->a.ld, d);
    if (p->b == NULL)
        ASEC_FAIL(ASEC_EINVAL, "b is NULL");
    ASEC_TRY(check_block("a1", "b1", &p->a1, p->b1, d));
    ASEC_TRY(check_block("a2", "b2", &p->a2, p->b2, d));
    if (!(p->gamma >= 0.0) || !isfinite(p->gamma))
        ASEC_FAIL(ASEC_EINVAL, "gamma = %g; must be finite and >= 0", p->gamma);
    if (!(p->beta_c >= 0.0) || !isfinite(p->beta_c))
        ASEC_FAIL(ASEC_EINVAL, "beta_c = %g; must be finite and >= 0", p->beta_c);
    if (p->gamma > 0.0 && p->a1.rows == 0)
        ASEC_FAIL(ASEC_EINVAL, "gamma = %g > 0 but there are no copyrighted rows",
                  p->gamma);
    ASEC_TRY(check_finite_mat("a", &p->a));
    ASEC_TRY(check_finite_arr("b", p->b, n));
    if (p->w != NULL)
        ASEC_TRY(check_finite_arr("w", p->w, n));
    ASEC_TRY(check_finite_mat("a1", &p->a1));
    if (p->a1.rows > 0)
        ASEC_TRY(check_finite_arr("b1", p->b1, p->a1.rows));
    ASEC_TRY(check_finite_mat("a2", &p->a2));
    if (p->a2.rows > 0)
        ASEC_TRY(check_finite_arr("b2", p->b2, p->a2.rows));
    return ASEC_OK;
}

/* ------------------------------------------------------------ workspace */

/* Scratch for one evaluation point.  One allocation, carved by pointer. */
typedef struct cws {
    size_t n, n1, n2, d;
    double *z, *gz, *cd, *dm, *p; /* (n) x4, p (n, 2) */
    double *z1, *gz1, *cd1, *p1;  /* (n1) x3, p1 (n1, 2) */
    double *z2;                   /* (n2) */
    double *f;                    /* (max(n, n1, n2)) */
    double *tn;                   /* (max(n, n1)) */
    double *g1;                   /* (d): grad L_1 */
    double *ad;                   /* (max(n, n1), d) or NULL: diag(.) A */
    double m[4], m1[4];
    size_t k, k1;
    double l1;                    /* L_1 at the evaluated point (or NaN) */
    void *mem;
} cws;

static size_t
maxz(size_t a, size_t b)
{
    return a > b ? a : b;
}

static int
cws_alloc(cws *w, const asec_copyright_problem *p, int want_ad)
{
    size_t n = p->a.rows, n1 = p->a1.rows, n2 = p->a2.rows, d = p->a.cols;
    size_t mx = maxz(maxz(n, n1), n2), m01 = maxz(n, n1), tot, t, nd = 0;

    memset(w, 0, sizeof *w);
    if (asec__mul_size(n, 6, &tot) != 0 || asec__mul_size(n1, 5, &t) != 0
        || asec__add_size(tot, t, &tot) != 0 || asec__add_size(tot, n2, &tot) != 0
        || asec__add_size(tot, mx, &tot) != 0 || asec__add_size(tot, m01, &tot) != 0
        || asec__add_size(tot, d, &tot) != 0
        || (want_ad && (asec__mul_size(m01, d, &nd) != 0
                        || asec__add_size(tot, nd, &tot) != 0))
        || asec__mul_size(tot, sizeof(double), &t) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "workspace for n = %zu, d = %zu overflows", n, d);
    w->mem = asec__malloc(t);
    if (w->mem == NULL)
        return ASEC_ENOMEM;
    w->n = n;
    w->n1 = n1;
    w->n2 = n2;
    w->d = d;
    w->z = w->mem;
    w->gz = w->z + n;
    w->cd = w->gz + n;
    w->dm = w->cd + n;
    w->p = w->dm + n;
    w->z1 = w->p + 2 * n;
    w->gz1 = w->z1 + n1;
    w->cd1 = w->gz1 + n1;
    w->p1 = w->cd1 + n1;
    w->z2 = w->p1 + 2 * n1;
    w->f = w->z2 + n2;
    w->tn = w->f + mx;
    w->g1 = w->tn + m01;
    w->ad = want_ad ? w->g1 + d : NULL;
    w->l1 = NAN;
    return ASEC_OK;
}

static void
cws_free(cws *w)
{
    asec__free(w->mem);
    w->mem = NULL;
}

/* Evaluate everything at x: losses, and with want_grad the gradient into
 * grad (d); with want_curv the curvature pieces (cd, dm = cd + w^2, P, M;
 * cd1, P1, M1, g1 when n1 > 0).  ws->gz is overwritten by g_z + w o w o z. */
static int
eval_point(cws *ws, const asec_copyright_problem *p, const double *x, int want_grad,
           int want_curv, asec_copyright_losses *out, double *grad)
{
    size_t n = ws->n, n1 = ws->n1, n2 = ws->n2, d = ws->d;
    int need_g1 = p->gamma > 0.0 && (want_grad || want_curv);
    double lreg = 0.0;

    /* z = A x (n) */
    ASEC_TRY(asec_mat_gemv(ws->z, 1.0, &p->a, ASEC_NOTRANS, x, 0.0));
    ASEC_TRY(fam_eval(p->family, ws->z, p->b, n, &out->l, (want_grad || want_curv) ? ws->gz
                                                                                : NULL,
                      want_curv ? ws->cd : NULL, ws->p, ws->m, &ws->k, ws->f));
    if (p->w != NULL)
        for (size_t i = 0; i < n; i++) {
            double wz = p->w[i] * ws->z[i];

            lreg += wz * wz;
        }
    out->l_reg = 0.5 * lreg;
    out->l1 = out->l2 = out->tau = NAN;
    if (n1 > 0) {
        ASEC_TRY(asec_mat_gemv(ws->z1, 1.0, &p->a1, ASEC_NOTRANS, x, 0.0));
        ASEC_TRY(fam_eval(p->family, ws->z1, p->b1, n1, &out->l1,
                          need_g1 ? ws->gz1 : NULL, want_curv ? ws->cd1 : NULL, ws->p1,
                          ws->m1, &ws->k1, ws->f));
    }
    if (n2 > 0) {
        ASEC_TRY(asec_mat_gemv(ws->z2, 1.0, &p->a2, ASEC_NOTRANS, x, 0.0));
        ASEC_TRY(fam_eval(p->family, ws->z2, p->b2, n2, &out->l2, NULL, NULL, NULL, NULL,
                          NULL, ws->f));
    }
    if (n1 > 0 && n2 > 0)
        out->tau = out->l1 / (double)n1 - out->l2 / (double)n2;
    ws->l1 = out->l1;
    out->l_cpr = out->l + out->l_reg;
    if (p->gamma > 0.0) {
        if (!(out->l1 > 0.0))
            ASEC_FAIL(ASEC_ENUMERIC,
                      "L_1 = %g on the copyrighted rows: gamma / L_1 is infinite",
                      out->l1);
        out->l_cpr += p->gamma / out->l1;
    }
    if (!isfinite(out->l_cpr))
        ASEC_FAIL(ASEC_ENUMERIC, "copyright loss is not finite");
    if (want_curv)
        for (size_t i = 0; i < n; i++)
            ws->dm[i] = ws->cd[i] + (p->w != NULL ? p->w[i] * p->w[i] : 0.0);
    if (need_g1) /* g1 = A1^T g_z1 (d) */
        ASEC_TRY(asec_mat_gemv(ws->g1, 1.0, &p->a1, ASEC_TRANS, ws->gz1, 0.0));
    if (want_grad) {
        /* grad = A^T (g_z + w o w o z) - gamma / L_1^2 g1 */
        if (p->w != NULL)
            for (size_t i = 0; i < n; i++)
                ws->gz[i] += p->w[i] * p->w[i] * ws->z[i];
        ASEC_TRY(asec_mat_gemv(grad, 1.0, &p->a, ASEC_TRANS, ws->gz, 0.0));
        if (p->gamma > 0.0)
            asec_vec_axpy(grad, -p->gamma / (out->l1 * out->l1), ws->g1, d);
        ASEC_TRY(check_finite_arr("gradient", grad, d));
    }
    return ASEC_OK;
}

/* out (d x d) = A^T diag(dmain) A - s A1^T diag(cd1) A1, s = gamma / L_1^2
 * (the diagonal part K of the Hessian; with dmain = ws->dm it is exact).
 * Uses ws->ad. */
static int
form_k(asec_mat *out, cws *ws, const asec_copyright_problem *p, const double *dmain)
{
    size_t n = ws->n, n1 = ws->n1, d = ws->d;
    asec_mat ad = asec_mat_view(ws->ad, n, d);

    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            ws->ad[i * d + j] = dmain[i] * p->a.data[i * p->a.ld + j];
    ASEC_TRY(asec_mat_gemm(out, 1.0, &p->a, ASEC_TRANS, &ad, ASEC_NOTRANS, 0.0));
    if (p->gamma > 0.0) {
        double s = p->gamma / (ws->l1 * ws->l1);
        asec_mat ad1 = asec_mat_view(ws->ad, n1, d);

        for (size_t i = 0; i < n1; i++)
            for (size_t j = 0; j < d; j++)
                ws->ad[i * d + j] = -s * ws->cd1[i] * p->a1.data[i * p->a1.ld + j];
        ASEC_TRY(asec_mat_gemm(out, 1.0, &p->a1, ASEC_TRANS, &ad1, ASEC_NOTRANS, 1.0));
    }
    return ASEC_OK;
}

/* The low-rank part V M V^T of the Hessian: v (d, MAX_LOWRANK) row-major
 * with *kv used columns, m (kv, kv) row-major with leading dim MAX_LOWRANK:
 *   V = [A^T P | A1^T P1 | g1],  M = blockdiag(M, -s M1, 2 gamma / L_1^3). */
static int
form_lowrank(double *v, double *m, size_t *kv, cws *ws, const asec_copyright_problem *p)
{
    size_t d = ws->d, c = 0;

    memset(m, 0, MAX_LOWRANK * MAX_LOWRANK * sizeof(double));
    for (size_t a = 0; a < ws->k; a++) {
        for (size_t j = 0; j < d; j++) {
            double s = 0.0;

            for (size_t i = 0; i < ws->n; i++)
                s += p->a.data[i * p->a.ld + j] * ws->p[2 * i + a];
            v[j * MAX_LOWRANK + c + a] = s;
        }
        for (size_t b = 0; b < ws->k; b++)
            m[(c + a) * MAX_LOWRANK + c + b] = ws->m[2 * a + b];
    }
    c += ws->k;
    if (p->gamma > 0.0) {
        double l1 = ws->l1, s = p->gamma / (l1 * l1);

        for (size_t a = 0; a < ws->k1; a++) {
            for (size_t j = 0; j < d; j++) {
                double t = 0.0;

                for (size_t i = 0; i < ws->n1; i++)
                    t += p->a1.data[i * p->a1.ld + j] * ws->p1[2 * i + a];
                v[j * MAX_LOWRANK + c + a] = t;
            }
            for (size_t b = 0; b < ws->k1; b++)
                m[(c + a) * MAX_LOWRANK + c + b] = -s * ws->m1[2 * a + b];
        }
        c += ws->k1;
        for (size_t j = 0; j < d; j++)
            v[j * MAX_LOWRANK + c] = ws->g1[j];
        m[c * MAX_LOWRANK + c] = 2.0 * p->gamma / (l1 * l1 * l1);
        c++;
    }
    *kv = c;
    return ASEC_OK;
}

/* h += V M V^T. */
static void
add_lowrank(asec_mat *h, const double *v, const double *m, size_t kv)
{
    size_t d = h->rows;

    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            double s = 0.0;

            for (size_t a = 0; a < kv; a++)
                for (size_t b = 0; b < kv; b++)
                    s += v[i * MAX_LOWRANK + a] * m[a * MAX_LOWRANK + b]
                         * v[j * MAX_LOWRANK + b];
            h->data[i * h->ld + j] += s;
        }
}

/* The exact Hessian at the point last evaluated with want_curv. */
static int
form_hess(asec_mat *h, cws *ws, const asec_copyright_problem *p)
{
    double v[MAX_LOWRANK * MAX_LOWRANK], m[MAX_LOWRANK * MAX_LOWRANK];
    double *vd = NULL;
    size_t kv, sz;
    int rc;

    ASEC_TRY(form_k(h, ws, p, ws->dm));
    if (asec__mul_size(ws->d, MAX_LOWRANK * sizeof(double), &sz) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "d = %zu overflows", ws->d);
    vd = ws->d <= MAX_LOWRANK ? v : asec__malloc(sz);
    if (vd == NULL)
        return ASEC_ENOMEM;
    rc = form_lowrank(vd, m, &kv, ws, p);
    if (rc == ASEC_OK)
        add_lowrank(h, vd, m, kv);
    if (vd != v)
        asec__free(vd);
    return rc;
}

/* out = C y for the curvature diag(cd) + P M P^T of rank k (n rows). */
static void
curv_apply(double *out, const double *cd, const double *pm, const double *m, size_t k,
           const double *y, size_t n)
{
    double pty[2] = {0.0, 0.0}, mp[2] = {0.0, 0.0};

    for (size_t i = 0; i < n; i++) {
        out[i] = cd[i] * y[i];
        for (size_t a = 0; a < k; a++)
            pty[a] += pm[2 * i + a] * y[i];
    }
    for (size_t a = 0; a < k; a++)
        for (size_t b = 0; b < k; b++)
            mp[a] += m[2 * a + b] * pty[b];
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < k; a++)
            out[i] += pm[2 * i + a] * mp[a];
}

/* out (d) = H v at the point last evaluated with want_curv: O(nnz). */
static int
hvp_ws(double *out, cws *ws, const asec_copyright_problem *p, const double *v)
{
    size_t n = ws->n, n1 = ws->n1, d = ws->d;

    /* H v = A^T ((C + W^2) (A v)) - s A1^T C1 (A1 v) + (2 gamma/L_1^3) g1 <g1, v> */
    ASEC_TRY(asec_mat_gemv(ws->f, 1.0, &p->a, ASEC_NOTRANS, v, 0.0));
    curv_apply(ws->tn, ws->cd, ws->p, ws->m, ws->k, ws->f, n);
    if (p->w != NULL)
        for (size_t i = 0; i < n; i++)
            ws->tn[i] += p->w[i] * p->w[i] * ws->f[i];
    ASEC_TRY(asec_mat_gemv(out, 1.0, &p->a, ASEC_TRANS, ws->tn, 0.0));
    if (p->gamma > 0.0) {
        double l1 = ws->l1, s = p->gamma / (l1 * l1);

        ASEC_TRY(asec_mat_gemv(ws->f, 1.0, &p->a1, ASEC_NOTRANS, v, 0.0));
        curv_apply(ws->tn, ws->cd1, ws->p1, ws->m1, ws->k1, ws->f, n1);
        ASEC_TRY(asec_mat_gemv(out, -s, &p->a1, ASEC_TRANS, ws->tn, 1.0));
        asec_vec_axpy(out, 2.0 * p->gamma / (l1 * l1 * l1) * asec_vec_dot(ws->g1, v, d),
                      ws->g1, d);
    }
    return ASEC_OK;
}

int
asec_copyright_eval(asec_copyright_losses *out, double *grad, asec_mat *hess,
                    const asec_copyright_problem *p, const double *x)
{
    cws ws;
    int rc;

    ASEC_TRY(asec_copyright_problem_check(p));
    if (hess != NULL
        && (hess->rows != p->a.cols || hess->cols != p->a.cols || hess->data == NULL))
        ASEC_FAIL(ASEC_EBADLEN, "hess is %zux%zu, expected %zux%zu", hess->rows,
                  hess->cols, p->a.cols, p->a.cols);
    ASEC_TRY(cws_alloc(&ws, p, hess != NULL));
    rc = eval_point(&ws, p, x, grad != NULL, hess != NULL, out, grad);
    if (rc == ASEC_OK && hess != NULL)
        rc = form_hess(hess, &ws, p);
    cws_free(&ws);
    return rc;
}

int
asec_copyright_hvp(double *out, const asec_copyright_problem *p, const double *x,
                   const double *v)
{
    asec_copyright_losses l;
    cws ws;
    int rc;

    ASEC_TRY(asec_copyright_problem_check(p));
    ASEC_TRY(cws_alloc(&ws, p, 0));
    rc = eval_point(&ws, p, x, 0, 1, &l, NULL);
    if (rc == ASEC_OK)
        rc = hvp_ws(out, &ws, p, v);
    cws_free(&ws);
    return rc;
}

/* ------------------------------------------------------------ solvers */

struct asec_copyright_solver {
    const asec_copyright_problem *p;
    asec_copyright_options o;
    asec_rng *rng;
    cws ws;
    size_t d;
    double *x, *xt, *g, *dir, *xprev; /* (d) each */
    asec_mat h, hprev, k, tmp;        /* (d, d) each */
    double *v;                        /* (d, MAX_LOWRANK) */
    double *y;                        /* (d, 1 + MAX_LOWRANK) */
    double *lev;                      /* SKETCH: (d, n) */
    double *dt;                       /* SKETCH: (n) sampled diagonal */
    double *cgr, *cgp, *cghp;         /* CG: (d) each */
    asec_copyright_iterate *rec;
    size_t nrec, caprec;
    asec_copyright_status status;
    int have_prev, loss_stalled;
    size_t steps;
    void *mem;
};

static int
check_options(const asec_copyright_options *o, const asec_rng *rng)
{
    if (o->version != ASEC_COPYRIGHT_OPTIONS_VERSION)
        ASEC_FAIL(ASEC_EINVAL, "options version %u, expected %u", o->version,
                  ASEC_COPYRIGHT_OPTIONS_VERSION);
    if ((unsigned)o->method > ASEC_COPYRIGHT_SKETCH)
        ASEC_FAIL(ASEC_EINVAL, "unknown solver %d", (int)o->method);
    if (!(o->tol_grad >= 0.0) || !(o->tol_rel_loss >= 0.0) || !(o->cg_rtol >= 0.0))
        ASEC_FAIL(ASEC_EINVAL, "tolerances must be >= 0 (tol_grad %g, tol_rel_loss %g, "
                               "cg_rtol %g)",
                  o->tol_grad, o->tol_rel_loss, o->cg_rtol);
    if (o->method == ASEC_COPYRIGHT_SKETCH) {
        if (!(o->sketch_eps > 0.0 && o->sketch_eps < 1.0))
            ASEC_FAIL(ASEC_EINVAL, "sketch eps = %g; must be in (0, 1)", o->sketch_eps);
        if (!(o->sketch_c > 0.0) || !isfinite(o->sketch_c))
            ASEC_FAIL(ASEC_EINVAL, "sketch c = %g; must be > 0", o->sketch_c);
        if (!(o->sketch_delta > 0.0 && o->sketch_delta < 1.0))
            ASEC_FAIL(ASEC_EINVAL, "sketch delta = %g; must be in (0, 1)",
                      o->sketch_delta);
        if (rng == NULL)
            ASEC_FAIL(ASEC_EINVAL, "the sketch solver needs a random stream (rng is NULL)");
    }
    return ASEC_OK;
}

void
asec_copyright_solver_free(asec_copyright_solver *s)
{
    if (s == NULL)
        return;
    cws_free(&s->ws);
    asec__free(s->mem);
    asec__free(s->rec);
    asec__free(s);
}

int
asec_copyright_solver_alloc(asec_copyright_solver **out, const asec_copyright_problem *p,
                            const asec_copyright_options *opts, const double *x0,
                            asec_rng *rng)
{
    static const asec_copyright_options defaults = ASEC_COPYRIGHT_OPTIONS_INIT;
    asec_copyright_solver *s = NULL;
    asec_copyright_losses l;
    size_t d, n, dd, tot, t;
    double *q;
    int rc;

    *out = NULL;
    if (opts == NULL)
        opts = &defaults;
    ASEC_TRY(asec_copyright_problem_check(p));
    ASEC_TRY(check_options(opts, rng));
    ASEC_TRY(check_finite_arr("x0", x0, p->a.cols));
    d = p->a.cols;
    n = p->a.rows;
    /* 5 d + 4 d^2 + 11 d (+ d n + n for SKETCH) + 3 d (CG) */
    if (asec__mul_size(d, d, &dd) != 0 || asec__mul_size(dd, 4, &tot) != 0
        || asec__add_size(tot, 19 * d, &tot) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "solver workspace for d = %zu overflows", d);
    if (opts->method == ASEC_COPYRIGHT_SKETCH
        && (asec__mul_size(d, n, &t) != 0 || asec__add_size(tot, t, &tot) != 0
            || asec__add_size(tot, n, &tot) != 0))
        ASEC_FAIL(ASEC_ENOMEM, "sketch workspace for n = %zu, d = %zu overflows", n, d);
    if (asec__mul_size(tot, sizeof(double), &t) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "solver workspace overflows");
    s = asec__calloc(1, sizeof *s);
    if (s == NULL)
        return ASEC_ENOMEM;
    s->p = p;
    s->o = *opts;
    s->rng = rng;
    s->d = d;
    s->mem = asec__malloc(t);
    if (s->mem == NULL) {
        rc = ASEC_ENOMEM;
        goto fail;
    }
    q = s->mem;
    s->x = q;
    s->xt = q + d;
    s->g = q + 2 * d;
    s->dir = q + 3 * d;
    s->xprev = q + 4 * d;
    q += 5 * d;
    s->h = asec_mat_view(q, d, d);
    s->hprev = asec_mat_view(q + dd, d, d);
    s->k = asec_mat_view(q + 2 * dd, d, d);
    s->tmp = asec_mat_view(q + 3 * dd, d, d);
    q += 4 * dd;
    s->v = q;
    s->y = q + MAX_LOWRANK * d;
    s->cgr = s->y + (1 + MAX_LOWRANK) * d;
    s->cgp = s->cgr + d;
    s->cghp = s->cgp + d;
    q = s->cghp + d;
    if (opts->method == ASEC_COPYRIGHT_SKETCH) {
        s->lev = q;
        s->dt = q + d * n;
    }
    rc = cws_alloc(&s->ws, p, 1);
    if (rc != ASEC_OK)
        goto fail;
    memcpy(s->x, x0, d * sizeof(double));
    rc = eval_point(&s->ws, p, s->x, 0, 0, &l, NULL);
    if (rc != ASEC_OK)
        goto fail;
    if (p->beta_c > 0.0 && p->a1.rows > 0 && !(l.l1 >= p->beta_c)) {
        rc = asec__fail(ASEC_ENUMERIC, "L_1(x0) = %g is below the guard beta_c = %g", l.l1,
                        p->beta_c);
        goto fail;
    }
    s->status = ASEC_COPYRIGHT_RUNNING;
    *out = s;
    return ASEC_OK;
fail:
    asec_copyright_solver_free(s);
    return rc;
}

/* Extreme eigenvalues of the pencil (x, y), y SPD: eig(y^{-1/2} x y^{-1/2}).
 * NaN when y is not positive definite.  Allocates 3 d x d + d. */
static int
pencil_extremes(const asec_mat *x, const asec_mat *y, double *lo, double *hi)
{
    size_t d = x->rows;
    asec_mat vec = {0, 0, 0, NULL}, sq = {0, 0, 0, NULL}, t = {0, 0, 0, NULL};
    double *w = NULL;
    int rc;

    *lo = *hi = NAN;
    w = asec__calloc(d, sizeof(double));
    if (w == NULL)
        return ASEC_ENOMEM;
    if ((rc = asec_mat_alloc(&vec, d, d)) != ASEC_OK || (rc = asec_mat_alloc(&sq, d, d))
        || (rc = asec_mat_alloc(&t, d, d)))
        goto done;
    if ((rc = asec_mat_eigh(w, &vec, y)) != ASEC_OK)
        goto done;
    if (!(w[0] > 0.0))
        goto done;
    /* sq = V diag(w^-1/2) V^T */
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            double s = 0.0;

            for (size_t a = 0; a < d; a++)
                s += vec.data[i * d + a] * vec.data[j * d + a] / sqrt(w[a]);
            sq.data[i * d + j] = s;
        }
    if ((rc = asec_mat_gemm(&t, 1.0, &sq, ASEC_NOTRANS, x, ASEC_NOTRANS, 0.0)) != ASEC_OK
        || (rc = asec_mat_gemm(&vec, 1.0, &t, ASEC_NOTRANS, &sq, ASEC_NOTRANS, 0.0)))
        goto done;
    if ((rc = asec_mat_eigh(w, NULL, &vec)) != ASEC_OK)
        goto done;
    *lo = w[0];
    *hi = w[d - 1];
done:
    asec_mat_free(&vec);
    asec_mat_free(&sq);
    asec_mat_free(&t);
    asec__free(w);
    return rc;
}

/* Solve a x = b in place for a small dense (k, k) system with leading
 * dimension MAX_LOWRANK by Gaussian elimination with partial pivoting.
 * Returns -1 when a pivot is zero. */
static int
small_solve(double *a, double *b, size_t k)
{
    for (size_t c = 0; c < k; c++) {
        size_t piv = c;

        for (size_t r = c + 1; r < k; r++)
            if (fabs(a[r * MAX_LOWRANK + c]) > fabs(a[piv * MAX_LOWRANK + c]))
                piv = r;
        if (a[piv * MAX_LOWRANK + c] == 0.0)
            return -1;
        if (piv != c) {
            for (size_t j = 0; j < k; j++) {
                double t = a[c * MAX_LOWRANK + j];

                a[c * MAX_LOWRANK + j] = a[piv * MAX_LOWRANK + j];
                a[piv * MAX_LOWRANK + j] = t;
            }
            double t = b[c];
            b[c] = b[piv];
            b[piv] = t;
        }
        for (size_t r = c + 1; r < k; r++) {
            double f = a[r * MAX_LOWRANK + c] / a[c * MAX_LOWRANK + c];

            for (size_t j = c; j < k; j++)
                a[r * MAX_LOWRANK + j] -= f * a[c * MAX_LOWRANK + j];
            b[r] -= f * b[c];
        }
    }
    for (size_t c = k; c-- > 0;) {
        double s = b[c];

        for (size_t j = c + 1; j < k; j++)
            s -= a[c * MAX_LOWRANK + j] * b[j];
        b[c] = s / a[c * MAX_LOWRANK + c];
    }
    return 0;
}

/* dir = -H^{-1} g with H = K + V M V^T by Woodbury:
 *   H^{-1} g = K^{-1} g - K^{-1} V (I + M V^T K^{-1} V)^{-1} M V^T K^{-1} g
 * (valid for singular M too). */
static int
dir_woodbury(asec_copyright_solver *s, size_t t)
{
    cws *ws = &s->ws;
    size_t d = s->d, kv, cols;
    double m[MAX_LOWRANK * MAX_LOWRANK], sm[MAX_LOWRANK * MAX_LOWRANK];
    double g[MAX_LOWRANK], r[MAX_LOWRANK], tv[MAX_LOWRANK];
    asec_mat y;
    int rc;

    ASEC_TRY(form_k(&s->k, ws, s->p, ws->dm));
    ASEC_TRY(form_lowrank(s->v, m, &kv, ws, s->p));
    cols = 1 + kv;
    y = asec_mat_view(s->y, d, cols);
    for (size_t i = 0; i < d; i++) {
        s->y[i * cols] = s->g[i];
        for (size_t a = 0; a < kv; a++)
            s->y[i * cols + 1 + a] = s->v[i * MAX_LOWRANK + a];
    }
    rc = asec_mat_cholesky_solve(&y, &s->k);
    if (rc == ASEC_ENUMERIC)
        ASEC_FAIL(ASEC_ENUMERIC, "woodbury: the diagonal part K = A^T (B_diag + W^2) A "
                                 "is not positive definite at iterate %zu; increase w or "
                                 "use --solver=newton",
                  t);
    if (rc != ASEC_OK)
        return rc;
    /* G = V^T K^{-1} V (kv, kv), r = V^T K^{-1} g, S = I + M G, rhs = M r */
    for (size_t a = 0; a < kv; a++) {
        r[a] = 0.0;
        for (size_t i = 0; i < d; i++)
            r[a] += s->v[i * MAX_LOWRANK + a] * s->y[i * cols];
        for (size_t b = 0; b < kv; b++) {
            double gab = 0.0;

            for (size_t i = 0; i < d; i++)
                gab += s->v[i * MAX_LOWRANK + a] * s->y[i * cols + 1 + b];
            sm[a * MAX_LOWRANK + b] = gab; /* G for now */
        }
    }
    for (size_t a = 0; a < kv; a++) {
        tv[a] = 0.0;
        for (size_t b = 0; b < kv; b++) {
            double msum = 0.0;

            tv[a] += m[a * MAX_LOWRANK + b] * r[b];
            for (size_t c = 0; c < kv; c++)
                msum += m[a * MAX_LOWRANK + c] * sm[c * MAX_LOWRANK + b];
            g[b] = msum;
        }
        for (size_t b = 0; b < kv; b++)
            m[a * MAX_LOWRANK + b] = g[b] + (a == b ? 1.0 : 0.0); /* row a of S */
    }
    /* m now holds S row by row (row a was written after its last use). */
    if (kv > 0 && small_solve(m, tv, kv) != 0)
        ASEC_FAIL(ASEC_ENUMERIC, "woodbury: the capacitance matrix is singular at "
                                 "iterate %zu",
                  t);
    for (size_t i = 0; i < d; i++) {
        double v = s->y[i * cols];

        for (size_t a = 0; a < kv; a++)
            v -= s->y[i * cols + 1 + a] * tv[a];
        s->dir[i] = -v;
    }
    return ASEC_OK;
}

/* Newton-CG: solve H dir = -g with conjugate gradients on exact
 * Hessian-vector products.  On negative curvature, stop with the current
 * iterate (steepest descent if it is the first). */
static int
dir_cg(asec_copyright_solver *s, size_t *iters)
{
    size_t d = s->d, maxit = s->o.cg_max_iter ? s->o.cg_max_iter : 10 * d;
    double gn = asec_vec_norm2(s->g, d), rr, tol = s->o.cg_rtol * gn;

    memset(s->dir, 0, d * sizeof(double));
    for (size_t i = 0; i < d; i++)
        s->cgr[i] = s->cgp[i] = -s->g[i];
    rr = asec_vec_dot(s->cgr, s->cgr, d);
    *iters = 0;
    while (sqrt(rr) > tol && *iters < maxit) {
        double php, alpha, rr2;

        ASEC_TRY(hvp_ws(s->cghp, &s->ws, s->p, s->cgp));
        php = asec_vec_dot(s->cgp, s->cghp, d);
        if (!(php > 0.0)) {
            if (*iters == 0)
                for (size_t i = 0; i < d; i++)
                    s->dir[i] = -s->g[i];
            break;
        }
        alpha = rr / php;
        asec_vec_axpy(s->dir, alpha, s->cgp, d);
        asec_vec_axpy(s->cgr, -alpha, s->cghp, d);
        rr2 = asec_vec_dot(s->cgr, s->cgr, d);
        for (size_t i = 0; i < d; i++)
            s->cgp[i] = s->cgr[i] + rr2 / rr * s->cgp[i];
        rr = rr2;
        (*iters)++;
    }
    return ASEC_OK;
}

/* Approximate Newton of MATH.md §2.1: sample the diagonal block
 * A^T diag(dm) A by leverage scores, keep everything else exact, solve
 * H~ dir = -g.  Records the sample size and (with measure) the factors. */
static int
dir_sketch(asec_copyright_solver *s, size_t t, asec_copyright_iterate *rec)
{
    cws *ws = &s->ws;
    const asec_copyright_problem *p = s->p;
    size_t n = ws->n, d = s->d, kept = 0, kv;
    double m[MAX_LOWRANK * MAX_LOWRANK];
    double scale = s->o.sketch_c * log((double)d / s->o.sketch_delta)
                   / (s->o.sketch_eps * s->o.sketch_eps);
    asec_mat lev = asec_mat_view(s->lev, d, n), dirm = asec_mat_view(s->dir, d, 1);
    asec_mat kd = {0, 0, 0, NULL};
    int rc;

    for (size_t i = 0; i < n; i++)
        if (!(ws->dm[i] >= 0.0))
            ASEC_FAIL(ASEC_ENUMERIC, "sketch: the diagonal c + w^2 is %g < 0 at row %zu, "
                                     "iterate %zu; the sampler needs D >= 0 (increase w)",
                      ws->dm[i], i, t);
    /* Exact leverage scores tau_i = D_i a_i^T (A^T D A)^{-1} a_i. */
    ASEC_TRY(asec_mat_alloc(&kd, d, d));
    {
        asec_copyright_problem q = *p;

        q.gamma = 0.0; /* the main block alone */
        rc = form_k(&kd, ws, &q, ws->dm);
    }
    if (rc != ASEC_OK)
        goto done;
    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < n; i++)
            s->lev[j * n + i] = p->a.data[i * p->a.ld + j];
    rc = asec_mat_cholesky_solve(&lev, &kd);
    if (rc == ASEC_ENUMERIC) {
        rc = asec__fail(ASEC_ENUMERIC, "sketch: A^T D A is singular at iterate %zu", t);
        goto done;
    }
    if (rc != ASEC_OK)
        goto done;
    for (size_t i = 0; i < n; i++) {
        double tau = 0.0, pi;

        for (size_t j = 0; j < d; j++)
            tau += p->a.data[i * p->a.ld + j] * s->lev[j * n + i];
        tau *= ws->dm[i];
        /* p_i = min(1, c tau_i log(d / delta) / eps0^2); keep with p_i,
         * reweight by 1 / p_i (unbiased). */
        pi = fmin(1.0, scale * tau);
        if (pi > 0.0 && (pi >= 1.0 || asec_rng_uniform(s->rng) < pi)) {
            s->dt[i] = ws->dm[i] / pi;
            kept++;
        } else {
            s->dt[i] = 0.0;
        }
    }
    rec->sketch_rows = kept;
    /* H~ = K~ + V M V^T into s->k */
    if ((rc = form_k(&s->k, ws, p, s->dt)) != ASEC_OK)
        goto done;
    if ((rc = form_lowrank(s->v, m, &kv, ws, p)) != ASEC_OK)
        goto done;
    add_lowrank(&s->k, s->v, m, kv);
    if (s->o.measure) {
        asec_copyright_problem q = *p;

        /* sampled block against exact block; H~ against H */
        q.gamma = 0.0;
        if ((rc = form_k(&s->tmp, ws, &q, s->dt)) != ASEC_OK)
            goto done;
        if ((rc = pencil_extremes(&s->tmp, &kd, &rec->sketch_lo, &rec->sketch_hi)))
            goto done;
        if ((rc = pencil_extremes(&s->k, &s->h, &rec->hess_lo, &rec->hess_hi)))
            goto done;
    }
    for (size_t i = 0; i < d; i++)
        s->dir[i] = -s->g[i];
    rc = asec_mat_cholesky_solve(&dirm, &s->k);
    if (rc == ASEC_ENUMERIC)
        rc = asec__fail(ASEC_ENUMERIC,
                        "sketch: the approximate Hessian is not positive definite at "
                        "iterate %zu",
                        t);
done:
    asec_mat_free(&kd);
    return rc;
}

static int
push_record(asec_copyright_solver *s, const asec_copyright_iterate *r)
{
    if (s->nrec == s->caprec) {
        size_t cap = s->caprec ? 2 * s->caprec : 16, bytes;
        asec_copyright_iterate *nr;

        if (asec__mul_size(cap, sizeof *nr, &bytes) != 0)
            ASEC_FAIL(ASEC_ENOMEM, "iterate log overflows");
        nr = asec__realloc(s->rec, bytes);
        if (nr == NULL)
            return ASEC_ENOMEM;
        s->rec = nr;
        s->caprec = cap;
    }
    s->rec[s->nrec++] = *r;
    return ASEC_OK;
}

int
asec_copyright_solver_iterate(asec_copyright_solver *s)
{
    const asec_copyright_problem *p = s->p;
    asec_copyright_iterate r;
    asec_mat dirm = asec_mat_view(s->dir, s->d, 1);
    size_t d = s->d, t = s->nrec;
    double gp, alpha = 1.0, f0, dn;
    int accepted = 0;

    if (s->status != ASEC_COPYRIGHT_RUNNING)
        return ASEC_OK;
    memset(&r, 0, sizeof r);
    r.iter = t;
    r.lambda_min = r.lambda_max = r.lipschitz = NAN;
    r.sketch_lo = r.sketch_hi = r.hess_lo = r.hess_hi = NAN;
    ASEC_TRY(eval_point(&s->ws, p, s->x, 1, 1, &r.losses, s->g));
    r.grad_norm = asec_vec_norm2(s->g, d);
    f0 = r.losses.l_cpr;
    if (s->o.measure || s->o.method == ASEC_COPYRIGHT_NEWTON)
        ASEC_TRY(form_hess(&s->h, &s->ws, p));
    if (s->o.measure) {
        double *w = s->cgr; /* d doubles of scratch */

        ASEC_TRY(asec_mat_eigh(w, NULL, &s->h));
        r.lambda_min = w[0];
        r.lambda_max = w[d - 1];
        if (s->have_prev) {
            double dx = 0.0, nm;

            for (size_t i = 0; i < d; i++) {
                dx += (s->x[i] - s->xprev[i]) * (s->x[i] - s->xprev[i]);
                for (size_t j = 0; j < d; j++)
                    s->tmp.data[i * d + j] = s->h.data[i * d + j] - s->hprev.data[i * d + j];
            }
            ASEC_TRY(asec_mat_eigh(w, NULL, &s->tmp));
            nm = fmax(fabs(w[0]), fabs(w[d - 1]));
            r.lipschitz = dx > 0.0 ? nm / sqrt(dx) : NAN;
        }
        memcpy(s->hprev.data, s->h.data, d * d * sizeof(double));
        memcpy(s->xprev, s->x, d * sizeof(double));
        s->have_prev = 1;
    }
    /* Convergence tests on x_t. */
    if (r.grad_norm <= s->o.tol_grad)
        s->status = ASEC_COPYRIGHT_CONVERGED_GRAD;
    else if (s->loss_stalled)
        s->status = ASEC_COPYRIGHT_CONVERGED_LOSS;
    else if (s->steps >= s->o.max_iter)
        s->status = ASEC_COPYRIGHT_MAX_ITER;
    if (s->status != ASEC_COPYRIGHT_RUNNING)
        return push_record(s, &r);

    /* The direction. */
    switch (s->o.method) {
    case ASEC_COPYRIGHT_NEWTON: {
        int rc;

        for (size_t i = 0; i < d; i++)
            s->dir[i] = -s->g[i];
        rc = asec_mat_cholesky_solve(&dirm, &s->h);
        if (rc == ASEC_ENUMERIC)
            ASEC_FAIL(ASEC_ENUMERIC,
                      "newton: the Hessian is not positive definite at iterate %zu "
                      "(lambda_min %g); increase the regulariser w",
                      t, r.lambda_min);
        if (rc != ASEC_OK)
            return rc;
        break;
    }
    case ASEC_COPYRIGHT_WOODBURY:
        ASEC_TRY(dir_woodbury(s, t));
        break;
    case ASEC_COPYRIGHT_CG:
        ASEC_TRY(dir_cg(s, &r.cg_iters));
        break;
    case ASEC_COPYRIGHT_SKETCH:
        ASEC_TRY(dir_sketch(s, t, &r));
        break;
    }
    gp = asec_vec_dot(s->g, s->dir, d);
    if (!(gp < 0.0))
        ASEC_FAIL(ASEC_ENUMERIC, "%s: the step at iterate %zu is not a descent direction "
                                 "(g.p = %g)",
                  asec_copyright_method_name(s->o.method), t, gp);
    /* Backtracking: Armijo (optional) and the guard L_1 >= beta_c. */
    for (r.backtracks = 0; r.backtracks <= s->o.max_backtrack; r.backtracks++) {
        asec_copyright_losses lt;
        int rc;

        for (size_t i = 0; i < d; i++)
            s->xt[i] = s->x[i] + alpha * s->dir[i];
        rc = eval_point(&s->ws, p, s->xt, 0, 0, &lt, NULL);
        if (rc == ASEC_ENOMEM)
            return rc;
        if (rc == ASEC_OK
            && !(p->beta_c > 0.0 && p->a1.rows > 0 && !(lt.l1 >= p->beta_c))
            && (!s->o.armijo || lt.l_cpr <= f0 + ARMIJO_C1 * alpha * gp)) {
            accepted = 1;
            if (fabs(f0 - lt.l_cpr) <= s->o.tol_rel_loss * fabs(f0))
                s->loss_stalled = 1;
            break;
        }
        alpha *= 0.5;
    }
    if (!accepted) {
        s->status = ASEC_COPYRIGHT_STALLED;
        r.backtracks = s->o.max_backtrack;
        return push_record(s, &r);
    }
    dn = asec_vec_norm2(s->dir, d);
    r.step = alpha;
    r.step_norm = alpha * dn;
    ASEC_TRY(push_record(s, &r));
    memcpy(s->x, s->xt, d * sizeof(double));
    s->steps++;
    return ASEC_OK;
}

int
asec_copyright_solver_run(asec_copyright_solver *s)
{
    while (s->status == ASEC_COPYRIGHT_RUNNING)
        ASEC_TRY(asec_copyright_solver_iterate(s));
    return ASEC_OK;
}

asec_copyright_status
asec_copyright_solver_status(const asec_copyright_solver *s)
{
    return s->status;
}

const double *
asec_copyright_solver_x(const asec_copyright_solver *s)
{
    return s->x;
}

size_t
asec_copyright_solver_count(const asec_copyright_solver *s)
{
    return s->nrec;
}

int
asec_copyright_solver_record(const asec_copyright_solver *s, size_t t,
                             asec_copyright_iterate *out)
{
    if (t >= s->nrec)
        ASEC_FAIL(ASEC_EINVAL, "record %zu requested; the solver has %zu", t, s->nrec);
    *out = s->rec[t];
    return ASEC_OK;
}
