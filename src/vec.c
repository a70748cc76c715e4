/* vec.c - small dense vector kernels: stable log-sum-exp and softmax, the
 * softmax Jacobian product S(f) v, dot product, overflow-safe 2-norm, axpy.
 *
 * Plain loops, no BLAS: results do not depend on the BLAS thread count,
 * so the same inputs give the same bytes on the same build. */
#include "config.h"

#include <math.h>

#include "attnsec/vec.h"
#include "internal.h"

double
asec_vec_logsumexp(const double *z, size_t n)
{
    double m = -INFINITY, rest = 0.0;
    size_t imax = 0;
    int has_inf = 0;

    for (size_t i = 0; i < n; i++) {
        if (isnan(z[i]))
            return NAN;
        if (z[i] == INFINITY)
            has_inf = 1;
        else if (z[i] > m) {
            m = z[i];
            imax = i;
        }
    }
    if (has_inf)
        return INFINITY;
    if (m == -INFINITY)
        return -INFINITY; /* n == 0, or every entry -inf */
    /* log sum exp(z) = m + log(1 + sum_{i != imax} exp(z_i - m)); the max
     * term is exactly 1, so log1p keeps the small remainder's digits. */
    for (size_t i = 0; i < n; i++)
        if (i != imax)
            rest += exp(z[i] - m);
    return m + log1p(rest);
}

int
asec_vec_softmax(double *out, const double *z, size_t n)
{
    double m = -INFINITY, sum = 0.0;

    if (n == 0)
        ASEC_FAIL(ASEC_EINVAL, "softmax: the vector is empty (n = 0)");
    for (size_t i = 0; i < n; i++) {
        if (isnan(z[i]) || z[i] == INFINITY)
            ASEC_FAIL(ASEC_ENUMERIC, "softmax: entry %zu is %g", i, z[i]);
        if (z[i] > m)
            m = z[i];
    }
    if (m == -INFINITY)
        ASEC_FAIL(ASEC_ENUMERIC, "softmax: all %zu entries are -inf", n);
    /* exp(z - max z) is in [0, 1] with at least one 1: no overflow, and
     * sum >= 1.  out may alias z: entry i is read before it is written. */
    for (size_t i = 0; i < n; i++) {
        out[i] = exp(z[i] - m);
        sum += out[i];
    }
    for (size_t i = 0; i < n; i++)
        out[i] /= sum;
    return ASEC_OK;
}

void
asec_vec_softmax_jvp(double *out, const double *f, const double *v, size_t n)
{
    /* S(f) v = f o v - <f, v> f = f o (v - <f, v> 1): one product per
     * entry.  out may alias v because <f, v> is taken first. */
    double fv = asec_vec_dot(f, v, n);

    for (size_t i = 0; i < n; i++)
        out[i] = f[i] * (v[i] - fv);
}

double
asec_vec_dot(const double *x, const double *y, size_t n)
{
    /* Four interleaved partial sums, combined in a fixed order: the
     * result is deterministic, and the loop pipelines. */
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t i = 0;

    for (; i + 4 <= n; i += 4) {
        s0 += x[i] * y[i];
        s1 += x[i + 1] * y[i + 1];
        s2 += x[i + 2] * y[i + 2];
        s3 += x[i + 3] * y[i + 3];
    }
    for (; i < n; i++)
        s0 += x[i] * y[i];
    return (s0 + s1) + (s2 + s3);
}

double
asec_vec_norm2(const double *x, size_t n)
{
    double amax = 0.0, sum = 0.0, s;
    int e, nan = 0;

    for (size_t i = 0; i < n; i++) {
        double a = fabs(x[i]);

        if (a > amax)
            amax = a;
        else if (isnan(a))
            nan = 1;
    }
    if (nan)
        return NAN;
    if (amax == 0.0 || isinf(amax))
        return amax;
    /* amax = f 2^e with f in [0.5, 1).  Scaling by the power of two 2^-e
     * is exact, puts every term in [0, 1), and so the sum of squares can
     * neither overflow nor flush the largest entries to zero; the norm is
     * sqrt(sum) 2^e. */
    (void)frexp(amax, &e);
    if (e >= -1023) {
        s = ldexp(1.0, -e);
        for (size_t i = 0; i < n; i++) {
            double t = x[i] * s;

            sum += t * t;
        }
    } else {
        /* Subnormal amax: 2^-e itself would overflow; scale in two exact
         * steps. */
        s = ldexp(1.0, -e - 600);
        for (size_t i = 0; i < n; i++) {
            double t = x[i] * 0x1p600 * s;

            sum += t * t;
        }
    }
    return ldexp(sqrt(sum), e);
}

void
asec_vec_axpy(double *y, double alpha, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}
