/* acct_closed.c - closed forms of the accountant (analytic Gaussian and
 * mu-GDP, the classical Gaussian calibration, advanced composition) and
 * the special functions the other accountant files share. */
#include "config.h"

#include <math.h>
#include <pthread.h>

#include "acct_internal.h"
#include "internal.h"

/* ------------------------------------------------------------------ special functions */

double
asec_acct__normal_q(double x)
{
    /* erfc is accurate in relative terms on the whole line (glibc), and
     * erfc(-y) = 2 - erfc(y) is evaluated without cancellation. */
    return 0.5 * erfc(x * ACCT_SQRT1_2);
}

double
asec_acct__log_normal_q(double x)
{
    /* Below x = 37 the tail is >= 1e-300 and erfc is still a normal
     * double; beyond, the asymptotic series of the Mills ratio,
     * Q(x) = phi(x)/x (1 - 1/x^2 + 3/x^4 - 15/x^6 + ...), truncated after
     * the x^-12 term: the first omitted term is 135135/x^14 < 1e-17. */
    if (x < 37.0)
        return log(0.5 * erfc(x * ACCT_SQRT1_2));
    if (isinf(x))
        return -INFINITY;
    {
        double r = 1.0 / (x * x), s = 1.0, t = 1.0;

        for (int k = 1; k <= 6; k++) {
            t *= -(2.0 * k - 1.0) * r;
            s += t;
        }
        return -0.5 * x * x - log(x) - 0.5 * log(2.0 * ACCT_PI) + log(s);
    }
}

double
asec_acct__log_add(double a, double b)
{
    double hi = a > b ? a : b, lo = a > b ? b : a;

    if (lo == -INFINITY)
        return hi;
    return hi + log1p(exp(lo - hi));
}

double
asec_acct__log_expm1(double x)
{
    if (x > 36.0)
        return x + log1p(-exp(-x));
    return log(expm1(x));
}

/* log k! for k = 0..ACCT_MAX_ORDER + 2, accumulated once in long double:
 * the absolute error stays below 1e-14 (64-bit mantissa, 4098 terms). */
#define LOGFACT_N ((unsigned)ACCT_MAX_ORDER + 3)
static long double logfact[LOGFACT_N];
static pthread_once_t logfact_once = PTHREAD_ONCE_INIT;

static void
logfact_init(void)
{
    logfact[0] = 0.0L;
    for (unsigned k = 1; k < LOGFACT_N; k++)
        logfact[k] = logfact[k - 1] + logl((long double)k);
}

long double
asec_acct__log_binom_int(unsigned n, unsigned k)
{
    pthread_once(&logfact_once, logfact_init);
    ASEC_ASSERT(k <= n && n < LOGFACT_N);
    return logfact[n] - logfact[k] - logfact[n - k];
}

/* ------------------------------------------------------------------ Gaussian / mu-GDP */

/* log delta(epsilon) of mu-GDP; -INFINITY when delta underflows to 0.
 * delta = Q(a) - e^eps Q(a + mu), a = eps/mu - mu/2 (Balle-Wang 2018,
 * Thm 8), evaluated as Q(a) (1 - exp(eps + log Q(a + mu) - log Q(a))) so
 * the difference keeps its relative precision. */
static double
gauss_log_delta(double mu, double eps)
{
    double a = eps / mu - 0.5 * mu;
    double l1 = asec_acct__log_normal_q(a);
    double l2 = eps + asec_acct__log_normal_q(a + mu);
    double d = l2 - l1;

    if (l1 == -INFINITY || !(d < 0.0))
        return -INFINITY;
    return l1 + log(-expm1(d));
}

int
asec_acct_gaussian_delta(double mu, double epsilon, double *out)
{
    if (!(mu > 0.0) || !isfinite(mu))
        ASEC_FAIL(ASEC_EINVAL, "mu %g is not a positive finite number", mu);
    if (!(epsilon >= 0.0) || isnan(epsilon))
        ASEC_FAIL(ASEC_EINVAL, "epsilon %g is negative or NaN", epsilon);
    if (isinf(epsilon)) {
        *out = 0.0;
        return ASEC_OK;
    }
    *out = exp(gauss_log_delta(mu, epsilon));
    return ASEC_OK;
}

int
asec_acct_gaussian_epsilon(double mu, double delta, double *out)
{
    double lo = 0.0, hi = 1.0, ld = log(delta);

    if (!(mu > 0.0) || !isfinite(mu))
        ASEC_FAIL(ASEC_EINVAL, "mu %g is not a positive finite number", mu);
    if (!(delta > 0.0 && delta < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "delta %g is outside (0, 1)", delta);
    if (gauss_log_delta(mu, 0.0) <= ld) {
        *out = 0.0;
        return ASEC_OK;
    }
    /* delta(eps) decreases; bracket the root by doubling (bounded: delta
     * falls below any double by eps ~ mu^2/2 + 40 mu + 1e3). */
    for (int i = 0; i < 80 && gauss_log_delta(mu, hi) > ld; i++) {
        lo = hi;
        hi *= 2.0;
    }
    if (gauss_log_delta(mu, hi) > ld)
        ASEC_FAIL(ASEC_ENUMERIC, "cannot bracket epsilon for mu %g, delta %g", mu, delta);
    /* Safeguarded Newton on f(eps) = log delta(eps) - log delta_target,
     * f'(eps) = -e^eps Q(eps/mu + mu/2) / delta(eps). */
    {
        double x = 0.5 * (lo + hi);

        for (int it = 0; it < 200; it++) {
            double f = gauss_log_delta(mu, x) - ld;
            double step, xn;

            if (f > 0.0)
                lo = x;
            else
                hi = x;
            if (hi - lo <= 1e-15 * hi)
                break;
            step = f / -exp(x + asec_acct__log_normal_q(x / mu + 0.5 * mu) -
                            gauss_log_delta(mu, x));
            xn = x - step;
            if (!(xn > lo && xn < hi) || !isfinite(xn))
                xn = 0.5 * (lo + hi);
            if (fabs(xn - x) <= 1e-16 * fabs(x)) {
                x = xn;
                break;
            }
            x = xn;
        }
        /* Return the end that certainly satisfies delta(eps) <= delta
         * when the bracket is resolved, otherwise the Newton point. */
        *out = gauss_log_delta(mu, x) <= ld ? x : hi;
    }
    return ASEC_OK;
}

int
asec_acct_gaussian_mu(double epsilon, double delta, double *out)
{
    double lo, hi, ld;

    if (!(epsilon > 0.0) || !isfinite(epsilon))
        ASEC_FAIL(ASEC_EINVAL, "epsilon %g is not a positive finite number", epsilon);
    if (!(delta > 0.0 && delta < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "delta %g is outside (0, 1)", delta);
    ld = log(delta);
    /* delta(eps; mu) increases with mu.  Bracket [lo, hi] with
     * delta(lo) <= target < delta(hi), then bisect in log mu to 1e-15. */
    lo = 1.0;
    hi = 1.0;
    for (int i = 0; i < 1100 && gauss_log_delta(lo, epsilon) > ld; i++)
        lo *= 0.5;
    for (int i = 0; i < 1100 && gauss_log_delta(hi, epsilon) <= ld; i++)
        hi *= 2.0;
    if (gauss_log_delta(lo, epsilon) > ld || gauss_log_delta(hi, epsilon) <= ld)
        ASEC_FAIL(ASEC_ENUMERIC, "cannot bracket mu for epsilon %g, delta %g", epsilon,
                  delta);
    if (lo == hi)
        lo = hi * 0.5;
    for (int it = 0; it < 200 && hi - lo > 1e-15 * hi; it++) {
        double mid = sqrt(lo * hi);

        if (!(mid > lo && mid < hi))
            mid = 0.5 * (lo + hi);
        if (!(mid > lo && mid < hi))
            break;
        if (gauss_log_delta(mid, epsilon) <= ld)
            lo = mid;
        else
            hi = mid;
    }
    *out = lo;
    return ASEC_OK;
}

int
asec_acct_classic_sigma(double epsilon, double delta, double *out)
{
    if (!(epsilon > 0.0) || !isfinite(epsilon))
        ASEC_FAIL(ASEC_EINVAL, "epsilon %g is not a positive finite number", epsilon);
    if (!(delta > 0.0 && delta < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "delta %g is outside (0, 1)", delta);
    *out = sqrt(2.0 * log(1.25 / delta)) / epsilon;
    return ASEC_OK;
}

int
asec_acct_advanced(double eps0, double delta0, uint64_t k, double slack, double *eps_out,
                   double *delta_out)
{
    double kd = (double)k;

    if (!(eps0 >= 0.0) || !isfinite(eps0))
        ASEC_FAIL(ASEC_EINVAL, "eps0 %g is negative or not finite", eps0);
    if (!(delta0 >= 0.0 && delta0 < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "delta0 %g is outside [0, 1)", delta0);
    if (k == 0)
        ASEC_FAIL(ASEC_EINVAL, "k must be at least 1");
    if (!(slack > 0.0 && slack < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "slack %g is outside (0, 1)", slack);
    *eps_out = sqrt(2.0 * kd * log(1.0 / slack)) * eps0 + kd * eps0 * expm1(eps0);
    *delta_out = fmin(1.0, kd * delta0 + slack);
    return ASEC_OK;
}

const char *
asec_acct_method_name(asec_acct_method m)
{
    switch (m) {
    case ASEC_ACCT_RDP:
        return "rdp";
    case ASEC_ACCT_PLD:
        return "pld";
    case ASEC_ACCT_EXACT:
        return "exact";
    case ASEC_ACCT_GDP_CLT:
        return "gdp-clt";
    case ASEC_ACCT_BASIC:
        return "basic";
    case ASEC_ACCT_ADVANCED:
        return "advanced";
    case ASEC_ACCT_AUTO:
        return "auto";
    }
    return "unknown";
}

const char *
asec_acct_relation_name(asec_acct_relation r)
{
    switch (r) {
    case ASEC_ACCT_ADD_REMOVE:
        return "add-remove";
    case ASEC_ACCT_REPLACE_ONE:
        return "replace-one";
    }
    return "unknown";
}
