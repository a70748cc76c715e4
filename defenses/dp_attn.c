/* dp_attn.c - differentially private attention (Gao, Song, Yang 2023,
 * arXiv 2305.04701): the Taylor feature map of fast attention, the
 * Gaussian-sampling covariance mechanism (Alabi et al. 2022) in factored
 * form, its privacy (GDP approximation and the exact privacy-loss
 * distribution by Monte Carlo), and output perturbation with exact
 * lattice noise.
 *
 * Formulas: MATH.md section 2.7 (feature map and its error bound),
 * section 5.3 (mechanism, privacy loss, GDP approximation, Wishart
 * bound), section 5.4 (factored sampling, clamped normalisation,
 * token-level Delta_F) and section 5.5 (output perturbation). */
#include "config.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "attnsec/dp_attn.h"
#include "attnsec/vec.h"
#include "internal.h"

/* Largest feature dimension accepted (the table and one row of features
 * must stay addressable by int for BLAS). */
#define MAX_FEATURES ((size_t)1 << 31)

static int
mat_finite(const asec_mat *m, const char *what)
{
    for (size_t i = 0; i < m->rows; i++)
        for (size_t j = 0; j < m->cols; j++)
            if (!isfinite(m->data[i * m->ld + j]))
                ASEC_FAIL(ASEC_ENUMERIC, "%s[%zu, %zu] is not finite", what, i, j);
    return ASEC_OK;
}

/* ------------------------------------------------------------ feature map */

int
asec_dp_attn_feature_dim(size_t *out, size_t d, unsigned int degree)
{
    /* r = C(d + g, g) = prod_{j=1..g} (d + j) / j, exact at every step */
    size_t r = 1;

    if (d == 0)
        ASEC_FAIL(ASEC_EINVAL, "the feature map needs d >= 1");
    if (degree > ASEC_DP_ATTN_MAX_DEGREE)
        ASEC_FAIL(ASEC_EINVAL, "Taylor degree %u exceeds %d", degree,
                  ASEC_DP_ATTN_MAX_DEGREE);
    for (unsigned int j = 1; j <= degree; j++) {
        size_t num;

        if (asec__mul_size(r, d + j, &num) != 0 || num / j > MAX_FEATURES)
            ASEC_FAIL(ASEC_ELIMIT, "C(%zu + %u, %u) features exceed 2^31", d, degree,
                      degree);
        r = num / j;
    }
    *out = r;
    return ASEC_OK;
}

/* One monomial of the graded table: value = parent's value * x[last],
 * coef = s^|a| / a!. */
struct monomial {
    size_t parent;
    size_t last;
    unsigned int mult; /* multiplicity of last in the index tuple */
    double coef;
};

int
asec_dp_attn_taylor_features(asec_mat *out, const asec_mat *x, unsigned int degree,
                             double scale)
{
    size_t n = x->rows, d = x->cols, r = 0, used = 1, lo = 0, hi = 1;
    struct monomial *tab = NULL;
    int rc = ASEC_OK;

    if (!(scale >= 0.0) || !isfinite(scale))
        ASEC_FAIL(ASEC_EINVAL, "scale %g is not finite and >= 0", scale);
    ASEC_TRY(asec_dp_attn_feature_dim(&r, d, degree));
    if (out->rows != n || out->cols != r)
        ASEC_FAIL(ASEC_EBADLEN, "features are (%zu, %zu), need (%zu, %zu)", out->rows,
                  out->cols, n, r);
    ASEC_TRY(mat_finite(x, "x"));
    tab = asec__malloc(r * sizeof *tab);
    if (tab == NULL)
        return ASEC_ENOMEM;
    // the table, degree by degree: children of a tuple i1 <= ... <= ij append i >= ij
    tab[0].parent = 0, tab[0].last = 0, tab[0].mult = 0, tab[0].coef = 1.0;
    for (unsigned int j = 1; j <= degree; j++) {
        for (size_t p = lo; p < hi; p++)
            for (size_t i = tab[p].last; i < d; i++) {
                struct monomial *c = &tab[used++];

                c->parent = p;
                c->last = i;
                c->mult = (i == tab[p].last && j > 1) ? tab[p].mult + 1 : 1;
                c->coef = tab[p].coef * scale / (double)c->mult;
            }
        lo = hi;
        hi = used;
    }
    ASEC_ASSERT(used == r);
    for (size_t t = 0; t < n; t++) {
        double *o = out->data + t * out->ld;
        const double *xr = x->data + t * x->ld;

        o[0] = 1.0;
        for (size_t m = 1; m < r; m++)
            o[m] = o[tab[m].parent] * xr[tab[m].last];
        for (size_t m = 0; m < r; m++)
            o[m] *= sqrt(tab[m].coef);
    }
    asec__free(tab);
    return rc;
}

double
asec_dp_attn_taylor_bound(double t, unsigned int degree)
{
    /* e^|t| |t|^(g+1) / (g+1)!, accumulated as a product to avoid overflow */
    double a = fabs(t), v = exp(a);

    if (isnan(t))
        return NAN;
    for (unsigned int j = 1; j <= degree + 1; j++)
        v *= a / (double)j;
    return v;
}

int
asec_dp_attn_kernel(asec_mat *out, const asec_mat *q, const asec_mat *k, double scale)
{
    if (q->cols != k->cols)
        ASEC_FAIL(ASEC_EBADLEN, "q has %zu columns but k has %zu", q->cols, k->cols);
    if (out->rows != q->rows || out->cols != k->rows)
        ASEC_FAIL(ASEC_EBADLEN, "kernel is (%zu, %zu), need (%zu, %zu)", out->rows,
                  out->cols, q->rows, k->rows);
    if (!isfinite(scale))
        ASEC_FAIL(ASEC_EINVAL, "scale %g is not finite", scale);
    ASEC_TRY(mat_finite(q, "q"));
    ASEC_TRY(mat_finite(k, "k"));
    ASEC_TRY(asec_mat_gemm(out, scale, q, ASEC_NOTRANS, k, ASEC_TRANS, 0.0));
    for (size_t i = 0; i < out->rows; i++)
        for (size_t j = 0; j < out->cols; j++) {
            double *e = asec_mat_at(out, i, j);

            *e = exp(*e);
            if (!isfinite(*e))
                ASEC_FAIL(ASEC_ENUMERIC, "exp(s q k^T)[%zu, %zu] overflows", i, j);
        }
    return ASEC_OK;
}

/* ------------------------------------------------------------ privacy */

static int
check_delta_f(double delta_f)
{
    if (!(delta_f > 0.0) || !isfinite(delta_f))
        ASEC_FAIL(ASEC_EINVAL, "Delta_F %g is not finite and positive", delta_f);
    return ASEC_OK;
}

int
asec_dp_attn_gdp_mu(double *out, double delta_f, size_t m)
{
    ASEC_TRY(check_delta_f(delta_f));
    if (m == 0)
        ASEC_FAIL(ASEC_EINVAL, "the number of samples m must be positive");
    *out = delta_f * sqrt((double)m / 2.0);
    return ASEC_OK;
}

int
asec_dp_attn_gdp_delta(double *out, double delta_f, size_t m, double epsilon)
{
    double mu;

    ASEC_TRY(asec_dp_attn_gdp_mu(&mu, delta_f, m));
    if (!(epsilon >= 0.0) || !isfinite(epsilon))
        ASEC_FAIL(ASEC_EINVAL, "epsilon %g is not finite and >= 0", epsilon);
    return asec_acct_gaussian_delta(mu, epsilon, out);
}

int
asec_dp_attn_max_samples(size_t *out, double epsilon, double delta, double delta_f)
{
    double mu, m;

    if (!(epsilon > 0.0) || !isfinite(epsilon))
        ASEC_FAIL(ASEC_EINVAL, "epsilon %g is not finite and positive", epsilon);
    if (!(delta > 0.0 && delta < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "delta %g is not in (0, 1)", delta);
    ASEC_TRY(check_delta_f(delta_f));
    ASEC_TRY(asec_acct_gaussian_mu(epsilon, delta, &mu));
    m = floor(2.0 * mu * mu / (delta_f * delta_f));
    if (!(m < 0x1p63))
        ASEC_FAIL(ASEC_ELIMIT, "m_max %g does not fit a 64-bit count", m);
    *out = (size_t)m;
    return ASEC_OK;
}

/* Gamma(a, 1) variate, a >= 1/2: Marsaglia and Tsang 2000, with the
 * boost Gamma(a) = Gamma(a + 1) U^(1/a) below 1. */
static double
gamma_variate(asec_rng *rng, double a)
{
    double boost = 1.0, d, c;

    if (a < 1.0) {
        boost = pow(asec_rng_uniform_pos(rng), 1.0 / a);
        a += 1.0;
    }
    d = a - 1.0 / 3.0;
    c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = asec_rng_normal(rng), v = 1.0 + c * x, u;

        if (v <= 0.0)
            continue;
        v = v * v * v;
        u = asec_rng_uniform_pos(rng);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v))
            return boost * d * v;
    }
}

/* E_P[(1 - e^(eps - L))_+] for one ordering; inv selects 1/lambda. */
static void
pld_mc_one(double *mean, double *se, const double *lambda, size_t k, size_t m,
           double epsilon, size_t draws, asec_rng *rng, int inv)
{
    double half_m = 0.5 * (double)m, s = 0.0, s2 = 0.0, base = 0.0;

    for (size_t i = 0; i < k; i++)
        base += 0.5 * (double)m * log(inv ? 1.0 / lambda[i] : lambda[i]);
    for (size_t t = 0; t < draws; t++) {
        double L = base, y;

        for (size_t i = 0; i < k; i++) {
            double li = inv ? 1.0 / lambda[i] : lambda[i];

            // chi2_m = 2 Gamma(m/2);  0.5 (1/lambda - 1) chi2 = (1/lambda - 1) Gamma
            L += (1.0 / li - 1.0) * gamma_variate(rng, half_m);
        }
        y = L > epsilon ? -expm1(epsilon - L) : 0.0;
        s += y;
        s2 += y * y;
    }
    *mean = s / (double)draws;
    *se = draws > 1 ? sqrt(fmax(s2 / (double)draws - *mean * *mean, 0.0)
                           / (double)(draws - 1))
                    : INFINITY;
}

int
asec_dp_attn_pld_delta_mc(double *out, double *se, const double *lambda, size_t k,
                          size_t m, double epsilon, size_t draws, asec_rng *rng)
{
    double d1, s1, d2, s2;

    if (k == 0 || draws == 0 || m == 0)
        ASEC_FAIL(ASEC_EINVAL, "need k, m and draws >= 1 (got %zu, %zu, %zu)", k, m,
                  draws);
    if (!(epsilon >= 0.0) || !isfinite(epsilon))
        ASEC_FAIL(ASEC_EINVAL, "epsilon %g is not finite and >= 0", epsilon);
    for (size_t i = 0; i < k; i++)
        if (!(lambda[i] > 0.0) || !isfinite(lambda[i]))
            ASEC_FAIL(ASEC_EINVAL, "lambda[%zu] = %g is not finite and positive", i,
                      lambda[i]);
    pld_mc_one(&d1, &s1, lambda, k, m, epsilon, draws, rng, 0);
    pld_mc_one(&d2, &s2, lambda, k, m, epsilon, draws, rng, 1);
    *out = d1 >= d2 ? d1 : d2;
    if (se != NULL)
        *se = d1 >= d2 ? s1 : s2;
    return ASEC_OK;
}

int
asec_dp_attn_delta_f_token(double *out, size_t n, double scale, double radius,
                           double lambda_min)
{
    double dA;

    if (n == 0)
        ASEC_FAIL(ASEC_EINVAL, "n must be positive");
    if (!(scale > 0.0) || !isfinite(scale) || !(radius > 0.0) || !isfinite(radius))
        ASEC_FAIL(ASEC_EINVAL, "scale %g and radius %g must be finite and positive",
                  scale, radius);
    if (!(lambda_min > 0.0) || !isfinite(lambda_min))
        ASEC_FAIL(ASEC_EINVAL,
                  "lambda_min %g must be positive: without A >= lambda_min I the "
                  "token-level guarantee is vacuous",
                  lambda_min);
    // ||A' - A||_F <= sqrt(2n - 1) * (e^(s R^2) - e^(-s R^2))
    dA = sqrt(2.0 * (double)n - 1.0) * 2.0 * sinh(scale * radius * radius);
    *out = dA / lambda_min;
    if (!isfinite(*out))
        ASEC_FAIL(ASEC_EINVAL, "Delta_F overflows (s R^2 = %g)", scale * radius * radius);
    return ASEC_OK;
}

int
asec_dp_attn_wishart_eta(double *out, size_t r, size_t m, double gamma)
{
    double a;

    if (r == 0 || m == 0)
        ASEC_FAIL(ASEC_EINVAL, "rank and samples must be positive (got %zu, %zu)", r, m);
    if (!(gamma > 0.0 && gamma < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "gamma %g is not in (0, 1)", gamma);
    a = sqrt((double)r / (double)m) + sqrt(2.0 * log(2.0 / gamma) / (double)m);
    *out = 2.0 * a + a * a;
    return ASEC_OK;
}

/* ------------------------------------------------------------ mechanism 1 */

int
asec_dp_attn_psd_factor(asec_mat *out, double *lambda_min, const asec_mat *a)
{
    size_t n = a->rows, k = 0;
    double *w = NULL, wmax = 0.0, tol;
    asec_mat vecs = {0, 0, 0, NULL};
    int rc = ASEC_OK;

    memset(out, 0, sizeof *out);
    if (a->cols != n || n == 0)
        ASEC_FAIL(ASEC_EBADLEN, "matrix is (%zu, %zu), need a non-empty square one",
                  a->rows, a->cols);
    ASEC_TRY(mat_finite(a, "A"));
    w = asec__malloc(n * sizeof *w);
    if (w == NULL)
        return ASEC_ENOMEM;
    if ((rc = asec_mat_alloc(&vecs, n, n)) != ASEC_OK)
        goto fail;
    if ((rc = asec_mat_eigh(w, &vecs, a)) != ASEC_OK)
        goto fail;
    for (size_t i = 0; i < n; i++)
        wmax = fmax(wmax, fabs(w[i]));
    tol = (double)n * DBL_EPSILON * wmax;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (fabs(*asec_mat_at(a, i, j) - *asec_mat_at(a, j, i)) > tol)
                ASEC_FAIL_GOTO(fail, rc, ASEC_ENUMERIC,
                               "A is not symmetric: A[%zu, %zu] - A[%zu, %zu] = %g", i, j,
                               j, i, *asec_mat_at(a, i, j) - *asec_mat_at(a, j, i));
    if (w[0] < -tol)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENUMERIC,
                       "A is not positive semidefinite: eigenvalue %g < -%g", w[0], tol);
    for (size_t i = 0; i < n; i++)
        k += w[i] > tol;
    if (k == 0 || wmax == 0.0)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENUMERIC, "A has rank 0");
    if ((rc = asec_mat_alloc(out, n, k)) != ASEC_OK)
        goto fail;
    // out[:, c] = sqrt(w_i) V[:, i] over the kept (largest) eigenvalues
    for (size_t c = 0; c < k; c++) {
        size_t i = n - k + c;
        double s = sqrt(w[i]);

        for (size_t t = 0; t < n; t++)
            *asec_mat_at(out, t, c) = s * *asec_mat_at(&vecs, t, i);
    }
    if (lambda_min != NULL)
        *lambda_min = w[0];
    asec_mat_free(&vecs);
    asec__free(w);
    return ASEC_OK;
fail:
    asec_mat_free(&vecs);
    asec__free(w);
    asec_mat_free(out);
    return rc;
}

int
asec_dp_attn_factor_reduce(asec_mat *out, const asec_mat *u, double rtol)
{
    size_t n = u->rows, r = u->cols, p = n < r ? n : r, k = 0;
    double *s = NULL;
    asec_mat uu = {0, 0, 0, NULL};
    int rc = ASEC_OK;

    memset(out, 0, sizeof *out);
    if (p == 0)
        ASEC_FAIL(ASEC_EBADLEN, "factor is (%zu, %zu)", n, r);
    if (!isfinite(rtol))
        ASEC_FAIL(ASEC_EINVAL, "rtol %g is not finite", rtol);
    ASEC_TRY(mat_finite(u, "U"));
    if (rtol < 0.0)
        rtol = (double)n * (double)r * DBL_EPSILON;
    s = asec__malloc(p * sizeof *s);
    if (s == NULL)
        return ASEC_ENOMEM;
    if ((rc = asec_mat_alloc(&uu, n, p)) != ASEC_OK)
        goto fail;
    if ((rc = asec_mat_svd(s, &uu, NULL, u)) != ASEC_OK)
        goto fail;
    if (!(s[0] > 0.0))
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENUMERIC, "the factor is zero");
    for (size_t i = 0; i < p; i++)
        k += s[i] > rtol * s[0];
    if ((rc = asec_mat_alloc(out, n, k)) != ASEC_OK)
        goto fail;
    for (size_t t = 0; t < n; t++)
        for (size_t c = 0; c < k; c++)
            *asec_mat_at(out, t, c) = s[c] * *asec_mat_at(&uu, t, c);
    asec_mat_free(&uu);
    asec__free(s);
    return ASEC_OK;
fail:
    asec_mat_free(&uu);
    asec__free(s);
    asec_mat_free(out);
    return rc;
}

int
asec_dp_attn_cov_sample(asec_mat *f, double *eta, const asec_mat *u, size_t m,
                        asec_rng *rng)
{
    size_t n = u->rows, k = u->cols, mk;
    asec_mat z = {0, 0, 0, NULL}, wm = {0, 0, 0, NULL};
    double *w = NULL;
    int rc = ASEC_OK;

    memset(f, 0, sizeof *f);
    if (m == 0)
        ASEC_FAIL(ASEC_EINVAL, "the number of samples m must be positive");
    if (n == 0 || k == 0)
        ASEC_FAIL(ASEC_EBADLEN, "factor is (%zu, %zu)", n, k);
    if (asec__mul_size(m, k, &mk) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "%zu samples of dimension %zu overflow size_t", m, k);
    ASEC_TRY(mat_finite(u, "U"));
    if ((rc = asec_mat_alloc(&z, m, k)) != ASEC_OK)
        goto fail;
    if ((rc = asec_mat_alloc(f, m, n)) != ASEC_OK)
        goto fail;
    // Z (m, k) iid N(0, 1);  F = Z U^T / sqrt(m)  (m, n): row i is g_i^T / sqrt(m)
    asec_rng_normal_fill(rng, z.data, mk);
    if ((rc = asec_mat_gemm(f, 1.0 / sqrt((double)m), &z, ASEC_NOTRANS, u, ASEC_TRANS,
                            0.0))
        != ASEC_OK)
        goto fail;
    if (eta != NULL) {
        // W = Z^T Z / m  (k, k);  eta = max |eig(W) - 1|
        double e = 0.0;

        w = asec__malloc(k * sizeof *w);
        if (w == NULL) {
            rc = ASEC_ENOMEM;
            goto fail;
        }
        if ((rc = asec_mat_alloc(&wm, k, k)) != ASEC_OK)
            goto fail;
        if ((rc = asec_mat_syrk(&wm, 1.0 / (double)m, &z, ASEC_TRANS, 0.0)) != ASEC_OK)
            goto fail;
        if ((rc = asec_mat_eigh(w, NULL, &wm)) != ASEC_OK)
            goto fail;
        for (size_t i = 0; i < k; i++)
            e = fmax(e, fabs(w[i] - 1.0));
        *eta = e;
    }
    asec_mat_free(&z);
    asec_mat_free(&wm);
    asec__free(w);
    return ASEC_OK;
fail:
    asec_mat_free(&z);
    asec_mat_free(&wm);
    asec__free(w);
    asec_mat_free(f);
    return rc;
}

static int
check_floor(double floor)
{
    if (!(floor > 0.0) || !isfinite(floor))
        ASEC_FAIL(ASEC_EINVAL, "clamp floor %g is not finite and positive", floor);
    return ASEC_OK;
}

int
asec_dp_attn_normalize(asec_mat *att, size_t *clamped, const asec_mat *f,
                       const asec_mat *v, double floor)
{
    size_t m = f->rows, n = f->cols, dv = v->cols, nc = 0;
    asec_mat fv = {0, 0, 0, NULL}, vx = {0, 0, 0, NULL}, ax = {0, 0, 0, NULL};
    int rc = ASEC_OK;

    if (v->rows != n || att->rows != n || att->cols != dv)
        ASEC_FAIL(ASEC_EBADLEN, "release is (%zu, %zu), v (%zu, %zu), att (%zu, %zu)",
                  m, n, v->rows, dv, att->rows, att->cols);
    ASEC_TRY(check_floor(floor));
    ASEC_TRY(mat_finite(f, "F"));
    ASEC_TRY(mat_finite(v, "v"));
    // vx = [v | 1]  (n, dv + 1);  fv = F vx  (m, dv + 1);  ax = F^T fv  (n, dv + 1)
    if ((rc = asec_mat_alloc(&vx, n, dv + 1)) != ASEC_OK
        || (rc = asec_mat_alloc(&fv, m, dv + 1)) != ASEC_OK
        || (rc = asec_mat_alloc(&ax, n, dv + 1)) != ASEC_OK)
        goto done;
    for (size_t i = 0; i < n; i++) {
        memcpy(vx.data + i * vx.ld, v->data + i * v->ld, dv * sizeof(double));
        vx.data[i * vx.ld + dv] = 1.0;
    }
    if ((rc = asec_mat_gemm(&fv, 1.0, f, ASEC_NOTRANS, &vx, ASEC_NOTRANS, 0.0)) != ASEC_OK
        || (rc = asec_mat_gemm(&ax, 1.0, f, ASEC_TRANS, &fv, ASEC_NOTRANS, 0.0))
               != ASEC_OK)
        goto done;
    for (size_t i = 0; i < n; i++) {
        double D = ax.data[i * ax.ld + dv];

        if (!(D >= floor)) {
            D = floor;
            nc++;
        }
        for (size_t j = 0; j < dv; j++)
            *asec_mat_at(att, i, j) = ax.data[i * ax.ld + j] / D;
    }
    if (clamped != NULL)
        *clamped = nc;
done:
    asec_mat_free(&vx);
    asec_mat_free(&fv);
    asec_mat_free(&ax);
    return rc;
}

/* ------------------------------------------------------------ utility */

int
asec_dp_attn_output(asec_mat *att, size_t *clamped, const asec_mat *a, const asec_mat *v,
                    double floor)
{
    size_t T = a->rows, S = a->cols, dv = v->cols, nc = 0;

    if (v->rows != S || att->rows != T || att->cols != dv)
        ASEC_FAIL(ASEC_EBADLEN, "a is (%zu, %zu), v (%zu, %zu), att (%zu, %zu)", T, S,
                  v->rows, dv, att->rows, att->cols);
    ASEC_TRY(check_floor(floor));
    ASEC_TRY(mat_finite(a, "a"));
    ASEC_TRY(mat_finite(v, "v"));
    ASEC_TRY(asec_mat_gemm(att, 1.0, a, ASEC_NOTRANS, v, ASEC_NOTRANS, 0.0));
    for (size_t i = 0; i < T; i++) {
        double D = 0.0;

        for (size_t j = 0; j < S; j++)
            D += *asec_mat_at(a, i, j);
        if (!(D >= floor)) {
            D = floor;
            nc++;
        }
        for (size_t j = 0; j < dv; j++)
            *asec_mat_at(att, i, j) /= D;
    }
    if (clamped != NULL)
        *clamped = nc;
    return ASEC_OK;
}

int
asec_dp_attn_rel_error(double *rel_max, double *rel_fro, const asec_mat *est,
                       const asec_mat *x)
{
    double dmax = 0.0, xmax = 0.0, d2 = 0.0, x2 = 0.0;

    if (est->rows != x->rows || est->cols != x->cols)
        ASEC_FAIL(ASEC_EBADLEN, "estimate is (%zu, %zu), reference (%zu, %zu)",
                  est->rows, est->cols, x->rows, x->cols);
    for (size_t i = 0; i < x->rows; i++)
        for (size_t j = 0; j < x->cols; j++) {
            double a = *asec_mat_at(x, i, j), e = *asec_mat_at(est, i, j) - a;

            dmax = fmax(dmax, fabs(e));
            xmax = fmax(xmax, fabs(a));
            d2 += e * e;
            x2 += a * a;
        }
    if (!(xmax > 0.0) || !isfinite(xmax) || !isfinite(d2))
        ASEC_FAIL(ASEC_ENUMERIC, "reference is zero or not finite");
    if (rel_max != NULL)
        *rel_max = dmax / xmax;
    if (rel_fro != NULL)
        *rel_fro = sqrt(d2) / sqrt(x2);
    return ASEC_OK;
}

/* ------------------------------------------------------------ mechanism 2 */

int
asec_dp_attn_output_release(asec_mat *att, asec_mat *clean, asec_dp_attn_out_result *res,
                            const asec_mat *q, const asec_mat *k, const asec_mat *v,
                            double scale, double rv, const asec_noise_options *nopts,
                            asec_rng *rng, asec_acct *acct)
{
    size_t T = q->rows, S = k->rows, dv = v->cols, nclip = 0, Tdv;
    asec_mat logits = {0, 0, 0, NULL}, vc = {0, 0, 0, NULL};
    asec_noise_options no = *nopts;
    asec_noise_result plan;
    int rc = ASEC_OK;

    if (q->cols != k->cols || v->rows != S || att->rows != T || att->cols != dv
        || (clean != NULL && (clean->rows != T || clean->cols != dv)))
        ASEC_FAIL(ASEC_EBADLEN,
                  "q (%zu, %zu), k (%zu, %zu), v (%zu, %zu) and att (%zu, %zu) do not "
                  "conform",
                  T, q->cols, S, k->cols, v->rows, dv, att->rows, att->cols);
    if (T == 0 || S == 0 || dv == 0)
        ASEC_FAIL(ASEC_EBADLEN, "empty attention (T = %zu, S = %zu, d_v = %zu)", T, S, dv);
    if (att->ld != dv)
        ASEC_FAIL(ASEC_EINVAL, "att must be contiguous (ld %zu != cols %zu)", att->ld, dv);
    if (!(rv > 0.0) || !isfinite(rv))
        ASEC_FAIL(ASEC_EINVAL, "value bound R_v %g is not finite and positive", rv);
    if (!(scale > 0.0) || !isfinite(scale))
        ASEC_FAIL(ASEC_EINVAL, "scale %g is not finite and positive", scale);
    if (asec__mul_size(T, dv, &Tdv) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "T d_v overflows size_t");
    ASEC_TRY(mat_finite(q, "q"));
    ASEC_TRY(mat_finite(k, "k"));
    ASEC_TRY(mat_finite(v, "v"));
    // Delta = 2 sqrt(T) R_v in L2 over the whole (T, d_v) release (MATH.md 5.5)
    no.mech = ASEC_NOISE_GAUSSIAN;
    no.norm = ASEC_NOISE_L2;
    no.sensitivity = 2.0 * sqrt((double)T) * rv;
    ASEC_TRY(asec_noise_plan(&plan, &no, Tdv));
    if ((rc = asec_mat_alloc(&logits, T, S)) != ASEC_OK
        || (rc = asec_mat_alloc(&vc, S, dv)) != ASEC_OK)
        goto done;
    // vc = v with rows clipped to norm R_v;  logits = s q k^T -> softmax rows
    for (size_t j = 0; j < S; j++) {
        double nr = asec_vec_norm2(v->data + j * v->ld, dv), c = 1.0;

        if (nr > rv) {
            c = rv / nr;
            nclip++;
        }
        for (size_t i = 0; i < dv; i++)
            vc.data[j * dv + i] = c * v->data[j * v->ld + i];
    }
    if ((rc = asec_mat_gemm(&logits, scale, q, ASEC_NOTRANS, k, ASEC_TRANS, 0.0))
            != ASEC_OK
        || (rc = asec_mat_softmax_rows(&logits, &logits)) != ASEC_OK
        || (rc = asec_mat_gemm(att, 1.0, &logits, ASEC_NOTRANS, &vc, ASEC_NOTRANS, 0.0))
               != ASEC_OK)
        goto done;
    if (clean != NULL)
        for (size_t i = 0; i < T; i++)
            memcpy(clean->data + i * clean->ld, att->data + i * att->ld,
                   dv * sizeof(double));
    // the ledger first: a failure after this over-counts, never under-counts
    if (acct != NULL) {
        asec_acct_event ev;

        memset(&ev, 0, sizeof ev);
        ev.kind = ASEC_ACCT_EV_ZCDP;
        ev.q = 1.0;
        ev.rho = plan.rho;
        ev.xi = 0.0;
        ev.count = 1;
        if ((rc = asec_acct_add(acct, &ev)) != ASEC_OK)
            goto done;
    }
    if ((rc = asec_noise_release(att->data, att->data, Tdv, &no, rng,
                                 res != NULL ? &res->noise : NULL))
        != ASEC_OK)
        goto done;
    if (res != NULL) {
        res->sensitivity = no.sensitivity;
        res->clipped = nclip;
    }
done:
    asec_mat_free(&logits);
    asec_mat_free(&vc);
    return rc;
}
