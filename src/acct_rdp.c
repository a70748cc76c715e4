/* acct_rdp.c - Renyi differential privacy of the accountant's events, the
 * composed curve, and its conversion to (epsilon, delta).
 *
 * Poisson-subsampled Gaussian (Mironov-Talwar-Zhang 2019, "Renyi
 * Differential Privacy of the Sampled Gaussian Mechanism"):
 *   A_alpha = E_{z ~ N(0, s^2)} [ (1 - q + q exp((2z - 1) / (2 s^2)))^alpha ],
 *   RDP(alpha) = log A_alpha / (alpha - 1).
 * We evaluate A_alpha - 1, never A_alpha, so that log A_alpha = log1p(A - 1)
 * keeps full relative precision when it is tiny (q = 1e-6):
 *   - integer alpha: the positive binomial sum
 *     A - 1 = sum_{i=2}^{alpha} C(alpha,i) (1-q)^(alpha-i) q^i expm1(i(i-1)/(2 s^2)),
 *     summed in log space (every term positive, no cancellation);
 *   - fractional alpha: the trapezoid rule for
 *     A - 1 = int phi_s(z) [(1 + x)^alpha - 1 - alpha x] dz,
 *     x = q expm1((2z - 1)/(2 s^2)), whose integrand is positive (convexity)
 *     and analytic in the strip |Im z| < pi s^2.  The step h and the range
 *     [-11 s, alpha + 11 s] bound the discretization error by about
 *     exp(-50) and the truncation by exp(-60) relative to the integral
 *     (the classical error bound for the trapezoid rule on analytic,
 *     Gaussian-decaying integrands).  Bounded work: at most QUAD_MAX_POINTS
 *     points; beyond, the log-convexity of alpha -> log A_alpha gives the
 *     (valid, looser) chord between the neighbouring integer orders.
 * This replaces the two-sided signed series of MTZ19 Sec. 3.3 used by
 * Opacus and dp_accounting, which needs up to ~1e5 terms for small sigma
 * and large q (ACCOUNTANT.md pitfalls 1-3); the test suite checks both
 * paths against an independent MPFR evaluation of that series.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "acct_internal.h"
#include "internal.h"

#define QUAD_EXPONENT 50.0      /* target discretization error exp(-50) */
#define QUAD_TAIL 11.0          /* range in units of sigma beyond 0 and alpha */
#define QUAD_MAX_POINTS 1000000 /* hard cap on the trapezoid grid */
#define SERIES_X 0.05           /* |x| below this: power series of (1+x)^a - 1 - a x */
#define SERIES_TERMS 48
#define WOR_MAX_B_ORDER 256 /* dp_accounting: Thm 27 exactly up to alpha 256 */
#define WINDOW_GAIN 10.0    /* windows when the lattice has 10x their points */

static int
is_integer_order(double alpha)
{
    return alpha == floor(alpha) && alpha <= ACCT_MAX_ORDER;
}

/* ------------------------------------------------------------------ SGM, integer orders
 */

/* log A_n of the Poisson-subsampled Gaussian, integer n >= 2, 0 < q < 1. */
static double
sgm_log_a_int(double q, double s, unsigned n)
{
    long double lq = logl((long double)q), l1q = log1pl(-(long double)q);
    long double u = 1.0L / (2.0L * (long double)s * (long double)s);
    double m = -INFINITY, sum = 0.0, lam;

    /* Online log-sum-exp over i = 2..n of
     *   log C(n,i) + (n-i) log(1-q) + i log q + log expm1(i(i-1) u).
     * The linear part is formed in long double: its pieces reach 1e5 in
     * magnitude while the result matters to 1e-12. */
    for (unsigned i = 2; i <= n; i++) {
        long double x = (long double)i * (long double)(i - 1) * u;
        long double lt = asec_acct__log_binom_int(n, i) + (long double)(n - i) * l1q +
                         (long double)i * lq;
        double t;

        if (x > 36.0L)
            t = (double)(lt + x) + log1p(-exp(-(double)x));
        else
            t = (double)lt + log(expm1((double)x));
        if (t > m) {
            sum = sum * exp(m - t) + 1.0;
            m = t;
        } else {
            sum += exp(t - m);
        }
    }
    lam = m + log(sum); /* log(A - 1) */
    return lam < 0.0 ? log1p(exp(lam)) : lam + log1p(exp(-lam));
}

/* ------------------------------------------------------------------ SGM, fractional
 * orders */

/* The trapezoid grid z_j = z_lo + j h, shared by every fractional order of
 * one (q, s): log weights lw = log(h phi_s(z)), weights w = exp(lw),
 * x = q expm1((2z - 1)/(2 s^2)) and lx = log1p(x). */
struct sgm_grid {
    double q, s, z_lo, h; /* point j is z_lo + (j0 + j) h */
    size_t j0, n;
    double *buf; /* (4, n) */
    double *lw, *w, *x, *lx;
};

static double
sgm_step(double s)
{
    /* Analyticity strip pi s^2 (zeros of 1 - q + q e^w) and the Gaussian
     * factor: h <= 2 pi^2 s^2 / E and h <= pi s sqrt(2 / E). */
    double h1 = 2.0 * ACCT_PI * ACCT_PI * s * s / QUAD_EXPONENT;
    double h2 = ACCT_PI * s * sqrt(2.0 / QUAD_EXPONENT);

    return h1 < h2 ? h1 : h2;
}

/* Number of points needed to reach alpha; 0 when above the cap. */
static size_t
sgm_points(double s, double alpha)
{
    double span = alpha + 2.0 * QUAD_TAIL * s;
    double n = ceil(span / sgm_step(s)) + 1.0;

    return n > QUAD_MAX_POINTS ? 0 : (size_t)n;
}

/* The points j0 .. j0 + n - 1 of the lattice of (q, s). */
static int
sgm_grid_build_range(struct sgm_grid *g, double q, double s, size_t j0, size_t n)
{
    size_t bytes;
    double c = 0.5 * log(2.0 * ACCT_PI) + log(s);

    memset(g, 0, sizeof *g);
    ASEC_ASSERT(n > 0);
    if (asec__mul_size(n, 4 * sizeof(double), &bytes) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "quadrature grid of %zu points overflows", n);
    g->buf = asec__malloc(bytes);
    if (g->buf == NULL)
        return ASEC_ENOMEM;
    g->q = q;
    g->s = s;
    g->j0 = j0;
    g->n = n;
    g->h = sgm_step(s);
    g->z_lo = -QUAD_TAIL * s;
    g->lw = g->buf;
    g->w = g->buf + n;
    g->x = g->buf + 2 * n;
    g->lx = g->buf + 3 * n;
    for (size_t j = 0; j < n; j++) {
        double z = g->z_lo + (double)(j0 + j) * g->h;
        double wexp = (2.0 * z - 1.0) / (2.0 * s * s);

        g->lw[j] = log(g->h) - c - z * z / (2.0 * s * s);
        g->w[j] = exp(g->lw[j]);
        g->x[j] = q * expm1(wexp);
        /* log1p(x) = log(1 - q + q e^w); for large w use the log form to
         * keep x finite-free (x may overflow to inf). */
        if (wexp > 30.0)
            g->lx[j] = log(q) + wexp + log1p((1.0 - q) * exp(-wexp) / q);
        else
            g->lx[j] = log1p(g->x[j]);
        if (!isfinite(g->x[j]))
            g->x[j] = HUGE_VAL;
    }
    return ASEC_OK;
}

/* The whole lattice up to alpha_max (+ QUAD_TAIL s). */
static int
sgm_grid_build(struct sgm_grid *g, double q, double s, double alpha_max)
{
    return sgm_grid_build_range(g, q, s, 0, sgm_points(s, alpha_max));
}

static void
sgm_grid_free(struct sgm_grid *g)
{
    asec__free(g->buf);
    g->buf = NULL;
}

/* log of the trapezoid sum of A_alpha - 1 over the points of g up to
 * alpha + QUAD_TAIL s (-inf when it is not positive), fractional alpha. */
static double
sgm_log_sum(const struct sgm_grid *g, double alpha)
{
    double coef[SERIES_TERMS];
    double zmax = alpha + QUAD_TAIL * g->s;
    double cmax = 0.0, sum = 0.0;
    size_t nj = g->n;

    /* Coefficients C(alpha, k), k = 2.. of the series of (1+x)^a - 1 - a x. */
    coef[0] = 0.5 * alpha * (alpha - 1.0);
    for (int k = 1; k < SERIES_TERMS; k++)
        coef[k] = coef[k - 1] * (alpha - (double)(k + 1)) / (double)(k + 2);
    while (nj > 0 && g->z_lo + (double)(g->j0 + nj - 1) * g->h > zmax)
        nj--;
    /* Scale: an upper bound of the largest log term, so nothing overflows. */
    for (size_t j = 0; j < nj; j++) {
        double e = g->lw[j] + alpha * (g->lx[j] > 0.0 ? g->lx[j] : 0.0);

        if (e > cmax)
            cmax = e;
    }
    for (size_t j = 0; j < nj; j++) {
        double x = g->x[j], lx = g->lx[j], w, term, lwj = g->lw[j] - cmax;

        if (cmax != 0.0 && lwj < -745.0) {
            /* The weight underflows (exp() of it is slow and gives 0);
             * only the last form's first term can still count. */
            if (fabs(x) > SERIES_X && alpha * lx > 1.0 && lwj + alpha * lx >= -745.0)
                sum += exp(lwj + alpha * lx);
            continue;
        }
        w = cmax == 0.0 ? g->w[j] : exp(lwj);
        if (fabs(x) <= SERIES_X) {
            double p = x * x, s = 0.0;

            for (int k = 0; k < SERIES_TERMS; k++) {
                double t = coef[k] * p;

                s += t;
                if (fabs(t) <= 1e-18 * fabs(s))
                    break;
                p *= x;
            }
            term = w * s;
        } else if (alpha * lx <= 1.0) {
            term = w * (expm1(alpha * lx) - alpha * x);
        } else {
            term = exp(g->lw[j] - cmax + alpha * lx) - (1.0 + alpha * x) * w;
        }
        if (term > 0.0)
            sum += term;
    }
    return sum > 0.0 ? cmax + log(sum) : -INFINITY;
}

/* log A from lam = log(A - 1). */
static double
log_a_of(double lam)
{
    if (lam == -INFINITY)
        return 0.0;
    return lam < 0.0 ? log1p(exp(lam)) : lam + log1p(exp(-lam));
}

/* log A_alpha for fractional alpha on a grid built for some alpha_max >=
 * alpha. */
static double
sgm_log_a_frac(const struct sgm_grid *g, double alpha)
{
    return log_a_of(sgm_log_sum(g, alpha));
}

/* For small sigma the lattice has ~alpha / s^2 points, but the integrand
 * phi_s(z) [(1 + x)^alpha - 1 - alpha x] has its mass near z = 0 and near
 * z = alpha, each a Gaussian of width s.  Every term of the sum is at most
 *   2^alpha [h phi_s(z) + e^M h phi_s(z - alpha)],
 *   M = alpha (alpha - 1) / (2 s^2) + alpha log q
 * ((1 + x)^alpha <= 2^alpha max(1, q e^w)^alpha for x >= 0, completing the
 * square; at most alpha q < 2^alpha for x < 0).  So the lattice points
 * farther than K s from both centres add at most
 *   B = 2^alpha (1 + e^M) 2 (h phi_s(K s) + erfc(K / sqrt 2) / 2).
 * sgm_log_a_window() sums the lattice points within K s of 0 and of alpha
 * only, and accepts the result when B is below exp(-QUAD_EXPONENT) times
 * that partial sum: the omitted points then change A - 1 by less than the
 * discretization error already allowed.  Otherwise (*ok = 0) the caller
 * sums the whole lattice. */
static double
window_k(double alpha)
{
    return sqrt(2.0 * (QUAD_EXPONENT + 15.0 + alpha * log(2.0)));
}

/* Points of the two windows, and whether they are few enough to pay. */
static int
window_pays(double s, double alpha)
{
    size_t nfull = sgm_points(s, alpha);
    double nwin = 2.0 * (2.0 * window_k(alpha) * s / sgm_step(s) + 1.0);

    /* A window point costs about five transcendental functions, a point
     * of the shared lattice about one per order (three to build, once). */
    return nfull > 0 && (double)nfull > WINDOW_GAIN * nwin;
}

/* Window 0 as a grid: the lattice points up to k s. */
static int
sgm_window0(struct sgm_grid *g0, double q, double s, double k)
{
    double h = sgm_step(s), base = -QUAD_TAIL * s;

    return sgm_grid_build_range(g0, q, s, 0, (size_t)floor((k * s - base) / h) + 1);
}

/* g0: window 0 built by sgm_window0() with a k at least window_k(alpha)
 * (shared by the orders of one event), or NULL. */
static int
sgm_log_a_window(double q, double s, double alpha, const struct sgm_grid *g0, double *out,
                 int *ok)
{
    struct sgm_grid own, g1;
    double h = sgm_step(s), base = -QUAD_TAIL * s, k = window_k(alpha);
    double m = alpha * (alpha - 1.0) / (2.0 * s * s) + alpha * log(q);
    double lt, lb, l0, l1, lam;
    size_t nfull = sgm_points(s, alpha), a1;
    int rc;

    *ok = 0;
    ASEC_ASSERT(nfull > 0);
    a1 = (size_t)ceil((alpha - k * s - base) / h); /* first point of window alpha */
    if (g0 == NULL) {
        ASEC_TRY(sgm_window0(&own, q, s, k));
        g0 = &own;
    }
    ASEC_ASSERT(g0->z_lo + (double)(g0->n - 1) * h >= k * s - h);
    rc = ASEC_OK;
    if (g0->n < a1 && a1 < nfull) { /* else the windows meet: no saving */
        rc = sgm_grid_build_range(&g1, q, s, a1, nfull - a1);
        if (rc == ASEC_OK) {
            l0 = sgm_log_sum(g0, alpha);
            l1 = sgm_log_sum(&g1, alpha);
            sgm_grid_free(&g1);
            lam = l0 > l1 ? l0 + log1p(exp(l1 - l0)) : l1 + log1p(exp(l0 - l1));
            /* log B; log(h phi_s(K s)) = log h - log(sqrt(2 pi) s) - K^2 / 2 */
            lt = log(h) - 0.5 * log(2.0 * ACCT_PI) - log(s) - 0.5 * k * k;
            lt = log(2.0) + log(exp(lt) + 0.5 * erfc(k / sqrt(2.0)));
            lb = alpha * log(2.0) + (m > 0.0 ? m + log1p(exp(-m)) : log1p(exp(m))) + lt;
            if (isfinite(lam) && lb <= lam - QUAD_EXPONENT) {
                *out = log_a_of(lam);
                *ok = 1;
            }
        }
    }
    if (g0 == &own)
        sgm_grid_free(&own);
    return rc;
}

/* Chord of log A over [floor(alpha), ceil(alpha)] (log A_1 = 0): an upper
 * bound by log-convexity. */
static double
sgm_log_a_chord(double q, double s, double alpha)
{
    double fl = floor(alpha), t = alpha - fl;
    double a0 = fl < 2.0 ? 0.0 : sgm_log_a_int(q, s, (unsigned)fl);
    double a1 = sgm_log_a_int(q, s, (unsigned)fl + 1);

    return (1.0 - t) * a0 + t * a1;
}

int
asec_acct__log_a_sgm(double q, double sigma, double alpha, double *out)
{
    struct sgm_grid g;

    if (!(q > 0.0 && q < 1.0) || !(sigma > 0.0) ||
        !(alpha > 1.0 && alpha <= ACCT_MAX_ORDER))
        ASEC_FAIL(ASEC_EINVAL, "log A: q %g, sigma %g or alpha %g out of range", q, sigma,
                  alpha);
    if (is_integer_order(alpha)) {
        *out = sgm_log_a_int(q, sigma, (unsigned)alpha);
        return ASEC_OK;
    }
    if (sgm_points(sigma, alpha) == 0) {
        *out = sgm_log_a_chord(q, sigma, alpha);
        return ASEC_OK;
    }
    if (window_pays(sigma, alpha)) {
        int ok;

        ASEC_TRY(sgm_log_a_window(q, sigma, alpha, NULL, out, &ok));
        if (ok)
            return ASEC_OK;
    }
    ASEC_TRY(sgm_grid_build(&g, q, sigma, alpha));
    *out = sgm_log_a_frac(&g, alpha);
    sgm_grid_free(&g);
    return ASEC_OK;
}

/* ------------------------------------------------------------------ WOR Gaussian */

/* log B(l) = log E[(Y - 1)^l], Y = exp(Z/s - 1/(2 s^2)), Z ~ N(0, 1), l even:
 * the l-th forward difference at 0 of k -> exp(k(k-1)/(2 s^2)) that
 * Wang-Balle-Kasiviswanathan 2019 Thm 27 needs, computed without the
 * catastrophic cancellation of the alternating binomial sum. */
static double
wor_log_b(double s, unsigned l)
{
    double u = 1.0 / (2.0 * s * s);
    double lead = (double)l * (double)(l - 1) * u;

    /* When the top term dominates (ratio of neighbours l e^{-2(l-1)u}
     * below 1e-3), sum the alternating series from the top: it converges
     * faster than geometrically. */
    if (log((double)l) - 2.0 * (double)(l - 1) * u < log(1e-3)) {
        double sum = 1.0, t;

        for (unsigned k = 1; k <= l; k++) {
            unsigned j = l - k; /* term for index j relative to index l */
            double lr = (double)(asec_acct__log_binom_int(l, j)) +
                        ((double)j * (double)(j - 1) - (double)l * (double)(l - 1)) * u;

            t = exp(lr);
            sum += (k % 2 == 1) ? -t : t;
        }
        return lead + log(sum);
    }
    /* Otherwise the trapezoid rule for int |expm1(Z/s - u)|^l phi(Z) dZ:
     * the integrand is entire (l even) with Gaussian decay; the step makes
     * the first aliasing term exp(-w^2/2) (2w)^l, w = 2 pi / h, negligible
     * against the integral, which is at least of the order of
     * (l-1)!! s^-l. */
    {
        double w = 8.0, need = 0.5 * (double)l * (log((double)l) - 1.0) + 40.0, h, lo, hi;
        double m = -INFINITY, sum = 0.0;
        size_t n;

        while (0.5 * w * w - (double)l * log(2.0 * w) < need)
            w += 1.0;
        h = fmin(2.0 * ACCT_PI / w, 0.25);
        lo = -(12.0 + 2.0 * sqrt((double)l));
        hi = (double)l / s + 12.0 + 2.0 * sqrt((double)l);
        n = (size_t)ceil((hi - lo) / h) + 1;
        for (size_t j = 0; j < n; j++) {
            double z = lo + (double)j * h;
            double e = expm1(z / s - u);
            double t;

            if (e == 0.0)
                continue;
            t = (double)l * log(fabs(e)) - 0.5 * z * z;
            if (t > m) {
                sum = sum * exp(m - t) + 1.0;
                m = t;
            } else {
                sum += exp(t - m);
            }
        }
        return m + log(sum) + log(h) - 0.5 * log(2.0 * ACCT_PI);
    }
}

/* log A_n (n >= 2 integer) of Thm 27 of WBK19 for sampling without
 * replacement of q = m/N under replace-one:
 *   A = 1 + q^2 C(n,2) min(4 (e^{1/s^2} - 1), 2 e^{1/s^2})
 *         + sum_{j=3}^{n} q^j C(n,j) min(4 sqrt(B(2 floor(j/2)) B(2 ceil(j/2))),
 *                                        2 e^{(j-1) j / (2 s^2)}),
 * the first branch of the min only for n <= 256, as in dp_accounting.
 * logb[l/2] caches log B(l) for even l. */
static double
wor_log_a_int(double q, double s, unsigned n, const double *logb)
{
    double lq = log(q), inv = 1.0 / (s * s);
    double m, sum = 1.0;

    m = 2.0 * lq + (double)asec_acct__log_binom_int(n, 2) +
        fmin(log(4.0) + asec_acct__log_expm1(inv), log(2.0) + inv);
    for (unsigned j = 3; j <= n; j++) {
        double c = log(2.0) + (double)(j - 1) * (double)j * 0.5 * inv;
        double t;

        if (n <= WOR_MAX_B_ORDER) {
            unsigned lo = 2 * (j / 2), hi = 2 * ((j + 1) / 2);

            c = fmin(c, log(4.0) + 0.5 * (logb[lo / 2] + logb[hi / 2]));
        }
        t = (double)j * lq + (double)asec_acct__log_binom_int(n, j) + c;
        if (t > m) {
            sum = sum * exp(m - t) + 1.0;
            m = t;
        } else {
            sum += exp(t - m);
        }
    }
    m += log(sum); /* log(A - 1) */
    return m < 0.0 ? log1p(exp(m)) : m + log1p(exp(-m));
}

/* log B(l) for even l = 0, 2, ..., 2 * (nb - 1) into logb[0..nb). */
static void
wor_fill_b(double s, double *logb, size_t nb)
{
    logb[0] = 0.0;
    for (size_t i = 1; i < nb; i++)
        logb[i] = wor_log_b(s, (unsigned)(2 * i));
}

/* RDP of the WOR Gaussian at alpha (interpolating the CGF between integer
 * orders for fractional alpha, WBK19 Cor. 10).  logb has at least
 * WOR_MAX_B_ORDER/2 + 1 entries. */
static double
wor_rdp(double q, double s, double alpha, const double *logb)
{
    double fl = floor(alpha), t = alpha - fl, a0, a1;

    if (t == 0.0)
        return wor_log_a_int(q, s, (unsigned)fl, logb) / (alpha - 1.0);
    a0 = fl < 2.0 ? 0.0 : wor_log_a_int(q, s, (unsigned)fl, logb);
    a1 = wor_log_a_int(q, s, (unsigned)fl + 1, logb);
    return ((1.0 - t) * a0 + t * a1) / (alpha - 1.0);
}

/* ------------------------------------------------------------------ Laplace */

/* RDP of the Laplace mechanism with eps = 1/b (Mironov 2017 Prop. 6):
 * eps + log1p((a-1) expm1((1-2a) eps) / (2a-1)) / (a-1). */
static double
laplace_rdp(double eps, double a)
{
    return eps +
           log1p((a - 1.0) * expm1((1.0 - 2.0 * a) * eps) / (2.0 * a - 1.0)) / (a - 1.0);
}

/* 8-point Gauss-Legendre nodes and weights on [-1, 1]. */
static const double gl8_x[4] = {0.1834346424956498, 0.5255324099163290,
                                0.7966664774136267, 0.9602898564975363};
static const double gl8_w[4] = {0.3626837833783620, 0.3137066458778873,
                                0.2223810344533745, 0.1012285362903763};

/* log E_Q[r^e] for the Poisson-subsampled Laplace pair, Q = Lap(0, b),
 * r(z) = 1 - q + q exp((|z| - |z-1|)/b).  Exact on z <= 0 and z >= 1,
 * composite Gauss-Legendre on (0, 1) with enough panels that the log of
 * the integrand changes by at most 2 per panel. */
static double
plap_log_moment(double q, double b, double e)
{
    double rlo = log1p(q * expm1(-1.0 / b)), rhi = log1p(q * expm1(1.0 / b));
    double l0 = -log(2.0) + e * rlo, l1 = -1.0 / b - log(2.0) + e * rhi;
    double slope = (2.0 * fabs(e) + 1.0) / b;
    double panels = ceil(slope / 2.0);
    double li;

    if (panels > 100000.0) {
        /* Too steep to integrate cheaply: bound r^e by its largest value
         * on (0, 1) (valid, looser). */
        double top = e >= 0.0 ? e * rhi : e * rlo;

        li = top + log(-expm1(-1.0 / b)) - log(2.0);
    } else {
        size_t np = panels < 1.0 ? 1 : (size_t)panels;
        double hw = 0.5 / (double)np, m = -INFINITY, sum = 0.0;

        for (size_t p = 0; p < np; p++) {
            double c = (2.0 * (double)p + 1.0) * hw;

            for (int k = 0; k < 8; k++) {
                double z = c + (k < 4 ? -gl8_x[k] : gl8_x[k - 4]) * hw;
                double lr = log1p(q * expm1((2.0 * z - 1.0) / b));
                double t = log(gl8_w[k % 4] * hw) - z / b - log(2.0 * b) + e * lr;

                if (t > m) {
                    sum = sum * exp(m - t) + 1.0;
                    m = t;
                } else {
                    sum += exp(t - m);
                }
            }
        }
        li = m + log(sum);
    }
    return asec_acct__log_add(asec_acct__log_add(l0, l1), li);
}

static double
plap_rdp(double q, double b, double a)
{
    double up = plap_log_moment(q, b, a), down = plap_log_moment(q, b, 1.0 - a);

    return fmax(fmax(up, down), 0.0) / (a - 1.0);
}

/* RDP of eps-randomized response, the worst case of pure eps-DP:
 * (eps a + log1p(e^{eps(1-2a)}) - log(1 + e^eps)) / (a - 1). */
static double
rr_rdp(double eps, double a)
{
    double l1 = eps * (1.0 - 2.0 * a), t3 = eps + log1p(exp(-eps));

    if (eps == 0.0)
        return 0.0;
    return fmin(eps, (eps * a + log1p(exp(l1)) - t3) / (a - 1.0));
}

/* ------------------------------------------------------------------ one event */

int
asec_acct__rdp_event_order(const asec_acct_event *ev, double alpha, double *out)
{
    double s = ev->sigma, q = ev->q;

    switch (ev->kind) {
    case ASEC_ACCT_EV_GAUSSIAN:
        *out = alpha / (2.0 * s * s);
        return ASEC_OK;
    case ASEC_ACCT_EV_POISSON_GAUSSIAN: {
        double la;

        ASEC_TRY(asec_acct__log_a_sgm(q, s, alpha, &la));
        *out = fmax(la, 0.0) / (alpha - 1.0);
        return ASEC_OK;
    }
    case ASEC_ACCT_EV_WOR_GAUSSIAN: {
        double logb[WOR_MAX_B_ORDER / 2 + 1];

        if (alpha <= WOR_MAX_B_ORDER + 1)
            wor_fill_b(s, logb, WOR_MAX_B_ORDER / 2 + 1);
        *out = wor_rdp(q, s, alpha, logb);
        return ASEC_OK;
    }
    case ASEC_ACCT_EV_LAPLACE:
        *out = laplace_rdp(1.0 / s, alpha);
        return ASEC_OK;
    case ASEC_ACCT_EV_POISSON_LAPLACE:
        *out = plap_rdp(q, s, alpha);
        return ASEC_OK;
    case ASEC_ACCT_EV_PURE:
    case ASEC_ACCT_EV_APPROX:
        *out = rr_rdp(ev->epsilon, alpha);
        return ASEC_OK;
    case ASEC_ACCT_EV_ZCDP:
        *out = ev->xi + ev->rho * alpha;
        return ASEC_OK;
    }
    ASEC_FAIL(ASEC_EINTERNAL, "unknown event kind %d", (int)ev->kind);
}

/* The RDP curve of one Poisson-subsampled Gaussian at orders ord[0..n-1].
 * Fractional orders: two windows where they pay (small sigma; window 0
 * shared), else one lattice shared up to the largest order that needs it,
 * else (beyond QUAD_MAX_POINTS) the chord. */
static int
sgm_curve(double q, double s, const double *ord, size_t n, double *rdp)
{
    struct sgm_grid g, g0;
    double fmax_alpha = 0.0, kmax = 0.0;
    int have_grid = 0, have_g0 = 0, rc = ASEC_OK;

    for (size_t i = 0; i < n; i++) {
        if (is_integer_order(ord[i]) || sgm_points(s, ord[i]) == 0)
            continue;
        if (window_pays(s, ord[i]))
            kmax = fmax(kmax, window_k(ord[i]));
        else
            fmax_alpha = fmax(fmax_alpha, ord[i]);
    }
    if (fmax_alpha > 0.0) {
        ASEC_TRY(sgm_grid_build(&g, q, s, fmax_alpha));
        have_grid = 1;
    }
    if (kmax > 0.0) {
        if ((rc = sgm_window0(&g0, q, s, kmax)) != ASEC_OK)
            goto done;
        have_g0 = 1;
    }
    for (size_t i = 0; i < n; i++) {
        double al = ord[i], la = 0.0;
        int ok = 0;

        if (is_integer_order(al)) {
            la = sgm_log_a_int(q, s, (unsigned)al);
        } else if (have_grid && al <= fmax_alpha) {
            la = sgm_log_a_frac(&g, al);
        } else if (sgm_points(s, al) == 0) {
            la = sgm_log_a_chord(q, s, al);
        } else {
            if ((rc = sgm_log_a_window(q, s, al, have_g0 ? &g0 : NULL, &la, &ok)) !=
                ASEC_OK)
                goto done;
            if (!ok && (rc = asec_acct__log_a_sgm(q, s, al, &la)) != ASEC_OK)
                goto done;
        }
        rdp[i] = fmax(la, 0.0) / (al - 1.0);
    }
done:
    if (have_grid)
        sgm_grid_free(&g);
    if (have_g0)
        sgm_grid_free(&g0);
    return rc;
}

int
asec_acct__rdp_event(const asec_acct *a, const asec_acct_event *ev, double *rdp)
{
    const double *ord = a->orders;
    size_t n = a->n_orders;

    if (ev->kind == ASEC_ACCT_EV_POISSON_GAUSSIAN)
        return sgm_curve(ev->q, ev->sigma, ord, n, rdp);
    if (ev->kind == ASEC_ACCT_EV_WOR_GAUSSIAN) {
        double logb[WOR_MAX_B_ORDER / 2 + 1];

        wor_fill_b(ev->sigma, logb, WOR_MAX_B_ORDER / 2 + 1);
        for (size_t i = 0; i < n; i++)
            rdp[i] = wor_rdp(ev->q, ev->sigma, ord[i], logb);
        return ASEC_OK;
    }
    for (size_t i = 0; i < n; i++)
        ASEC_TRY(asec_acct__rdp_event_order(ev, ord[i], &rdp[i]));
    return ASEC_OK;
}

/* ------------------------------------------------------------------ the ledger */

static double
extra_delta_of(const asec_acct *a)
{
    double l = 0.0;

    for (size_t k = 0; k < a->n_ent; k++) {
        const asec_acct_event *ev = &a->ent[k].ev;

        if (ev->kind == ASEC_ACCT_EV_APPROX && ev->delta > 0.0)
            l += (double)ev->count * log1p(-ev->delta);
    }
    return -expm1(l);
}

int
asec_acct__rdp_total(const asec_acct *a, double *total, double *extra_delta)
{
    size_t n = a->n_orders;

    for (size_t i = 0; i < n; i++)
        total[i] = 0.0;
    for (size_t k = 0; k < a->n_ent; k++) {
        /* The per-step curve is a cache of an immutable entry; filling it
         * does not change what the accountant reports. */
        struct acct_entry *e = (struct acct_entry *)&a->ent[k];
        double c = (double)e->ev.count;

        if (e->rdp == NULL) {
            double *r = asec__malloc(n * sizeof *r);
            int rc;

            if (r == NULL)
                return ASEC_ENOMEM;
            rc = asec_acct__rdp_event(a, &e->ev, r);
            if (rc != ASEC_OK) {
                asec__free(r);
                return rc;
            }
            e->rdp = r;
        }
        for (size_t i = 0; i < n; i++)
            total[i] += c * e->rdp[i];
    }
    *extra_delta = extra_delta_of(a);
    return ASEC_OK;
}

/* RDP of the whole ledger at one order (refinement). */
static int
rdp_total_at(const asec_acct *a, double alpha, double *out)
{
    double t = 0.0;

    for (size_t k = 0; k < a->n_ent; k++) {
        double r;

        ASEC_TRY(asec_acct__rdp_event_order(&a->ent[k].ev, alpha, &r));
        t += (double)a->ent[k].ev.count * r;
    }
    *out = t;
    return ASEC_OK;
}

/* ------------------------------------------------------------------ conversions */

double
asec_acct__rdp_eps_at(double alpha, double r, double delta, int legacy)
{
    if (isinf(r))
        return INFINITY;
    if (legacy)
        return fmax(0.0, r - log(delta) / (alpha - 1.0));
    /* KL bound delta <= sqrt(1 - e^{-KL}) with KL <= RDP(alpha). */
    if (r <= 0.0 || delta * delta + expm1(-r) > 0.0)
        return 0.0;
    if (alpha > 1.01) /* Balle et al. 2020 Thm 21 = CKS20 Prop. 12 */
        return fmax(0.0,
                    r + log1p(-1.0 / alpha) - (log(delta) + log(alpha)) / (alpha - 1.0));
    return INFINITY;
}

void
asec_acct__rdp_to_epsilon(const double *orders, const double *rdp, size_t n, double delta,
                          int legacy, double *eps_out, double *order_out,
                          size_t *index_out)
{
    double best = INFINITY;
    size_t bi = 0;

    for (size_t i = 0; i < n; i++) {
        double e = asec_acct__rdp_eps_at(orders[i], rdp[i], delta, legacy);

        if (e < best) {
            best = e;
            bi = i;
        }
    }
    *eps_out = best;
    *order_out = orders[bi];
    if (index_out != NULL)
        *index_out = bi;
}

static double
rdp_log_delta_at(double alpha, double r, double eps, int legacy)
{
    double ld;

    if (isinf(r))
        return 0.0;
    if (legacy)
        return fmin(0.0, (alpha - 1.0) * (r - eps));
    ld = r <= 0.0 ? -INFINITY : 0.5 * log1p(-exp(-r));
    if (alpha > 1.01)
        ld = fmin(ld, (alpha - 1.0) * (r - eps + log1p(-1.0 / alpha)) - log(alpha));
    return fmin(ld, 0.0);
}

void
asec_acct__rdp_to_delta(const double *orders, const double *rdp, size_t n, double epsilon,
                        int legacy, double *delta_out, double *order_out,
                        size_t *index_out)
{
    double best = INFINITY;
    size_t bi = 0;

    for (size_t i = 0; i < n; i++) {
        double ld = rdp_log_delta_at(orders[i], rdp[i], epsilon, legacy);

        if (ld < best) {
            best = ld;
            bi = i;
        }
    }
    *delta_out = fmin(1.0, exp(best));
    *order_out = orders[bi];
    if (index_out != NULL)
        *index_out = bi;
}

static void
fill_result(asec_acct_result *out)
{
    out->method = ASEC_ACCT_RDP;
    out->is_bound = 1;
    out->epsilon = out->epsilon_lo = NAN;
    out->delta = out->delta_lo = NAN;
    out->order = NAN;
    out->order_at_edge = 0;
    out->mu = NAN;
    out->pld_dx = NAN;
    out->pld_points = 0;
}

/* Golden-section search of the conversion over continuous alpha in
 * [lo, hi] (bounded: 60 iterations); improves *eps and *order only. */
static int
refine(const asec_acct *a, double lo, double hi, double delta, double *eps, double *order)
{
    const double gr = 0.5 * (sqrt(5.0) - 1.0);
    double x1, x2, f1, f2, r;

    if (!a->legacy && lo < 1.01)
        lo = 1.01;
    if (hi > ACCT_MAX_ORDER)
        hi = ACCT_MAX_ORDER;
    if (!(hi > lo))
        return ASEC_OK;
    x1 = hi - gr * (hi - lo);
    x2 = lo + gr * (hi - lo);
    ASEC_TRY(rdp_total_at(a, x1, &r));
    f1 = asec_acct__rdp_eps_at(x1, r, delta, a->legacy);
    ASEC_TRY(rdp_total_at(a, x2, &r));
    f2 = asec_acct__rdp_eps_at(x2, r, delta, a->legacy);
    for (int it = 0; it < 60 && hi - lo > 1e-9 * hi; it++) {
        if (f1 <= f2) {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - gr * (hi - lo);
            ASEC_TRY(rdp_total_at(a, x1, &r));
            f1 = asec_acct__rdp_eps_at(x1, r, delta, a->legacy);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + gr * (hi - lo);
            ASEC_TRY(rdp_total_at(a, x2, &r));
            f2 = asec_acct__rdp_eps_at(x2, r, delta, a->legacy);
        }
    }
    if (f1 < *eps) {
        *eps = f1;
        *order = x1;
    }
    if (f2 < *eps) {
        *eps = f2;
        *order = x2;
    }
    return ASEC_OK;
}

int
asec_acct__rdp_epsilon(const asec_acct *a, double delta, asec_acct_result *out)
{
    size_t n = a->n_orders, bi;
    double *total, extra, eff, eps, order;
    int rc;

    fill_result(out);
    total = asec__malloc(n * sizeof *total);
    if (total == NULL)
        return ASEC_ENOMEM;
    rc = asec_acct__rdp_total(a, total, &extra);
    if (rc != ASEC_OK)
        goto done;
    /* 1 - delta = (1 - delta_rdp)(1 - extra): the APPROX events' deltas
     * compose with the rest as in dp_accounting. */
    eff = -expm1(log1p(-delta) - log1p(-extra));
    out->delta = out->delta_lo = delta;
    if (!(eff > 0.0)) {
        out->epsilon = out->epsilon_lo = INFINITY;
        goto done;
    }
    asec_acct__rdp_to_epsilon(a->orders, total, n, eff, a->legacy, &eps, &order, &bi);
    out->order_at_edge = n > 1 && bi == n - 1 && isfinite(eps) && eps > 0.0;
    if (a->refine_order && isfinite(eps) && eps > 0.0 && a->n_ent > 0) {
        double lo = bi > 0 ? a->orders[bi - 1] : 1.0 + 0.5 * (a->orders[0] - 1.0);
        double hi = bi + 1 < n ? a->orders[bi + 1] : 2.0 * a->orders[bi];

        rc = refine(a, lo, hi, eff, &eps, &order);
        if (rc != ASEC_OK)
            goto done;
        if (order < ACCT_MAX_ORDER && order > a->orders[n - 1])
            out->order_at_edge = 0;
    }
    out->epsilon = out->epsilon_lo = eps;
    out->order = order;
done:
    asec__free(total);
    return rc;
}

int
asec_acct__rdp_delta(const asec_acct *a, double epsilon, asec_acct_result *out)
{
    size_t n = a->n_orders, bi;
    double *total, extra, d, order;
    int rc;

    fill_result(out);
    total = asec__malloc(n * sizeof *total);
    if (total == NULL)
        return ASEC_ENOMEM;
    rc = asec_acct__rdp_total(a, total, &extra);
    if (rc == ASEC_OK) {
        asec_acct__rdp_to_delta(a->orders, total, n, epsilon, a->legacy, &d, &order, &bi);
        d = d + extra - d * extra;
        out->epsilon = out->epsilon_lo = epsilon;
        out->delta = out->delta_lo = fmin(1.0, d);
        out->order = order;
        out->order_at_edge = n > 1 && bi == n - 1 && d > 0.0;
    }
    asec__free(total);
    return rc;
}
