/* attnsec/vec.h - small dense vector kernels used throughout: stable
 * softmax and log-sum-exp, the softmax Jacobian product, norms.
 *
 * Vectors are plain double arrays of length n (shape (n,)).  Allocates
 * nothing.  Outputs may alias inputs only where a function says so.
 * Notation (MATH.md §1): f = softmax(z), S(f) = diag(f) - f f^T.
 */
#ifndef ATTNSEC_VEC_H
#define ATTNSEC_VEC_H

#include <stddef.h>

#include <attnsec/common.h>

ASEC_BEGIN_DECLS

/* log(sum_i exp(z_i)), computed as m + log(sum exp(z_i - m)) with
 * m = max z, so it is exact to rounding at |z| of 1e3 and beyond.
 * n == 0 gives -inf; all entries -inf give -inf; any +inf gives +inf;
 * any NaN gives NaN. */
ASEC_API double asec_vec_logsumexp(const double *z, size_t n) ASEC_NONNULL(1);

/* out = softmax(z) = exp(z - max z) / sum.  out may alias z.  Returns
 * ASEC_ENUMERIC (out unspecified) when z has a NaN or +inf entry or all
 * entries are -inf, ASEC_EINVAL when n == 0. */
ASEC_API int asec_vec_softmax(double *out, const double *z, size_t n)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* out = S(f) v = f o v - <f, v> f, the product of the softmax Jacobian at
 * f with v (MATH.md §1).  out may alias v but not f. */
ASEC_API void asec_vec_softmax_jvp(double *out, const double *f, const double *v,
                                   size_t n) ASEC_NONNULL(1, 2, 3);

/* <x, y>, ||x||_2 (overflow-safe scaling), and y += alpha x. */
ASEC_API double asec_vec_dot(const double *x, const double *y, size_t n)
    ASEC_NONNULL(1, 2);
ASEC_API double asec_vec_norm2(const double *x, size_t n) ASEC_NONNULL(1);
ASEC_API void asec_vec_axpy(double *y, double alpha, const double *x, size_t n)
    ASEC_NONNULL(1, 3);

ASEC_END_DECLS

#endif /* ATTNSEC_VEC_H */
