/* attnsec/dp_attn.h - differentially private attention (arXiv 2305.04701).
 *
 * Two releases of attention (MATH.md sections 2.7 and 5):
 *
 * Mechanism 1, the paper's: the Gaussian-sampling covariance mechanism of
 * Alabi-Kothari-Tankala-Venkat-Zhang 2022 applied to the PSD attention
 * matrix of the symmetric case Q = K = X,
 *     A = exp(s X X^T)     (n, n), PSD by the Schur product theorem,
 * or to any PSD matrix given directly.  With a factor A = U U^T (U (n, k):
 * the degree-g Taylor feature map Phi(X) of section 2.7, or an exact
 * eigen-factor for small n), m samples g_i = U z_i, z_i ~ N(0, I_k), are
 * drawn and released as the factor F = Z U^T / sqrt(m) (m, n); the
 * estimate A^ = F^T F = (1/m) sum g_i g_i^T and its row normalisation
 * D^ = diag(A^ 1_n), Att^ = D^-1 A^ V are post-processing.  The
 * neighbouring relation is on matrices:
 *     ||A^-1/2 A' A^-1/2 - I||_F <= Delta_F,
 * with Delta_F supplied or derived from a token-level bound and an assumed
 * lambda_min(A) (asec_dp_attn_delta_f_token()).  Fewer samples give more
 * privacy: the privacy loss is approximately mu-GDP with
 * mu = Delta_F sqrt(m/2), so m <= m_max = floor(2 mu*^2 / Delta_F^2).
 * The exact privacy-loss distribution (section 5.3) is evaluated by
 * Monte Carlo.  The Gaussian samples are floating-point (asec_rng_normal,
 * idealized numerics).
 *
 * Mechanism 2, any Q and K: output perturbation.  With every value row
 * clipped to ||v_j|| <= R_v, a one-token change moves each row of
 * Att = softmax_rows(s Q K^T) V by at most 2 R_v, so the L2 sensitivity of
 * the (T, d_v) release is 2 sqrt(T) R_v (section 5.5).  The noise is the
 * exact lattice discrete Gaussian of attnsec/noise.h, accounted as zCDP.
 *
 * Shapes (row-major, attnsec/mat.h):
 *   x      (n, d)     tokens of the symmetric case (Q = K = X)
 *   q      (T, d)     queries;  k (S, d) keys;  v (S, d_v) values
 *   u      (n, k)     a factor of A = U U^T
 *   f      (m, n)     the released factor of mechanism 1
 *   att    (n, d_v) or (T, d_v)  attention outputs
 * The logit scale s is a parameter (the paper's 1/d; the engine's
 * 1/sqrt(head size)).
 *
 * Randomness comes from a borrowed asec_rng; a DP release needs a secure
 * one.  Nothing here prints or reads the environment.  Functions that
 * allocate say so; matrices they return are freed with asec_mat_free().
 */
#ifndef ATTNSEC_DP_ATTN_H
#define ATTNSEC_DP_ATTN_H

#include <stddef.h>

#include <attnsec/acct.h>
#include <attnsec/common.h>
#include <attnsec/mat.h>
#include <attnsec/noise.h>
#include <attnsec/rng.h>

ASEC_BEGIN_DECLS

/* Largest Taylor degree accepted. */
#define ASEC_DP_ATTN_MAX_DEGREE 32

/* ------------------------------------------------------------ fast attention */

/* Feature dimension of the degree-g Taylor map on d coordinates with
 * symmetric monomials: r = C(d + g, g).  Returns ASEC_OK, ASEC_EINVAL
 * (d == 0 or degree > ASEC_DP_ATTN_MAX_DEGREE) or ASEC_ELIMIT (r above
 * 2^31).  Allocates nothing. */
ASEC_API int asec_dp_attn_feature_dim(size_t *out, size_t d, unsigned int degree)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* out (n, r) = Phi(x) for x (n, d): for each monomial x^a with |a| <= g,
 * feature sqrt(s^|a| / a!) x^a (a! = prod a_i!), in graded order (degree
 * 0 first, then non-decreasing index tuples), so that
 *     <Phi(q), Phi(k)> = sum_{j <= g} (s q.k)^j / j!.
 * out must be (x->rows, r) with r from asec_dp_attn_feature_dim() and
 * must not alias x.  s >= 0.  Returns ASEC_OK, ASEC_EINVAL, ASEC_EBADLEN,
 * ASEC_ENUMERIC (x not finite) or ASEC_ENOMEM.  Allocates a monomial
 * table of r entries, freed before return. */
ASEC_API int asec_dp_attn_taylor_features(asec_mat *out, const asec_mat *x,
                                          unsigned int degree, double scale)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* The entrywise error bound of the degree-g Taylor approximation of
 * exp(t): e^|t| |t|^(g+1) / (g+1)!, for |t| <= s ||q|| ||k|| (MATH.md
 * section 2.7; B^2 = 1, g = 8 gives 7.49e-6).  NaN for a NaN t. */
ASEC_API double asec_dp_attn_taylor_bound(double t, unsigned int degree);

/* out (T, S) = exp(s q k^T), exactly (the small-n path).  Returns
 * ASEC_OK, ASEC_EBADLEN, ASEC_ENUMERIC (non-finite input or an entry that
 * overflows).  Allocates nothing. */
ASEC_API int asec_dp_attn_kernel(asec_mat *out, const asec_mat *q, const asec_mat *k,
                                 double scale) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3);

/* ------------------------------------------------------------ privacy of mechanism 1 */

/* mu = Delta_F sqrt(m / 2), the GDP approximation of m samples.
 * ASEC_EINVAL for Delta_F not finite and positive or m == 0. */
ASEC_API int asec_dp_attn_gdp_mu(double *out, double delta_f, size_t m)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* delta(epsilon) of mu-GDP with mu = Delta_F sqrt(m/2):
 * Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2).  An approximation of
 * the mechanism's exact delta, not a bound.  ASEC_EINVAL. */
ASEC_API int asec_dp_attn_gdp_delta(double *out, double delta_f, size_t m, double epsilon)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* m_max = floor(2 mu*^2 / Delta_F^2), mu* the largest mu-GDP meeting
 * (epsilon, delta) (asec_acct_gaussian_mu()); 0 when not even one sample
 * fits.  ASEC_EINVAL for epsilon not positive and finite, delta outside
 * (0, 1), Delta_F not positive and finite; ASEC_ELIMIT when m_max does
 * not fit size_t. */
ASEC_API int asec_dp_attn_max_samples(size_t *out, double epsilon, double delta,
                                      double delta_f) ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Exact delta(epsilon) of m samples from N(0, A) against N(0, A'), by
 * Monte Carlo.  lambda (k) are the eigenvalues of A^-1/2 A' A^-1/2 (all
 * finite and positive; equal to 1 for the unchanged directions, which
 * may be left out).  The privacy loss under P = N(0, A)^m is
 *     L = 0.5 sum_i [m log lambda_i + (1/lambda_i - 1) chi2_{m,i}]
 * and delta = E_P[(1 - e^(epsilon - L))_+]; the reversed pair uses
 * 1/lambda; *out is the larger of the two, *se (may be NULL) its
 * standard error (the estimate is within 4 se with probability > 0.9999).
 * draws samples per ordering; chi-square variates are 2 Gamma(m/2)
 * (Marsaglia-Tsang 2000) from rng.  Returns ASEC_OK or ASEC_EINVAL (k or
 * draws 0, m 0, epsilon negative or not finite, lambda not positive).
 * Allocates nothing. */
ASEC_API int asec_dp_attn_pld_delta_mc(double *out, double *se, const double *lambda,
                                       size_t k, size_t m, double epsilon, size_t draws,
                                       asec_rng *rng) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 3, 8);

/* Delta_F from a token-level bound: if every token has ||x_i|| <= R, one
 * changed token changes one row and one column of A = exp(s X X^T), each
 * entry by at most 2 sinh(s R^2), so ||A' - A||_F <= sqrt(2n - 1) 2
 * sinh(s R^2), and Delta_F <= ||A^-1|| ||A' - A||_F, which needs the
 * ASSUMPTION lambda_min(A) >= lambda_min > 0 (MATH.md section 5.4).
 * ASEC_EINVAL for n == 0 or a non-positive or non-finite argument. */
ASEC_API int asec_dp_attn_delta_f_token(double *out, size_t n, double scale,
                                        double radius, double lambda_min)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Wishart relative-error bound: with probability >= 1 - gamma,
 * (1 - eta) A <= A^ <= (1 + eta) A with eta = 2a + a^2,
 * a = sqrt(r/m) + sqrt(2 log(2/gamma) / m) (Davidson-Szarek).
 * ASEC_EINVAL for r or m 0 or gamma outside (0, 1). */
ASEC_API int asec_dp_attn_wishart_eta(double *out, size_t r, size_t m, double gamma)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* ------------------------------------------------------------ mechanism 1 */

/* A factor of a PSD matrix a (n, n): *out is allocated (n, k) with
 * a = out out^T, out = V_k diag(sqrt(w_k)) over the eigenvalues
 * w > tol = n * 2^-52 * max(|w|) (k = their count).  a must be
 * symmetric (|a_ij - a_ji| <= tol) and PSD (min w >= -tol).  lambda_min
 * (may be NULL) receives min w.  Returns ASEC_OK, ASEC_EBADLEN (not
 * square), ASEC_ENUMERIC (non-finite entry, not symmetric, not PSD, or
 * rank 0; the message gives the eigenvalue) or ASEC_ENOMEM.  On failure
 * *out is zeroed. */
ASEC_API int asec_dp_attn_psd_factor(asec_mat *out, double *lambda_min, const asec_mat *a)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 3);

/* Reduce a factor u (n, r) to full column rank: *out is allocated
 * (n, k) = U_k diag(s_k) from the thin SVD, keeping singular values
 * s > rtol * s_max (rtol < 0: n r 2^-52), so out out^T = u u^T up to the
 * dropped part.  Sampling out z with z ~ N(0, I_k) has the same law as
 * u z with z ~ N(0, I_r).  ASEC_ENUMERIC (non-finite, zero matrix),
 * ASEC_ENOMEM.  On failure *out is zeroed. */
ASEC_API int asec_dp_attn_factor_reduce(asec_mat *out, const asec_mat *u, double rtol)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* The covariance mechanism: draw Z (m, k) with iid N(0, 1) entries from
 * rng and allocate *f = Z u^T / sqrt(m) (m, n), the release.  eta (may be
 * NULL) receives the achieved spectral error max |eig(Z^T Z / m) - 1|,
 * which equals max |eig(A^-1/2 A^ A^-1/2) - 1| on range(A) when u has
 * full column rank.  ASEC_EINVAL (m == 0), ASEC_ENUMERIC (non-finite u),
 * ASEC_ENOMEM.  Allocates Z and a (k, k) work matrix, freed before
 * return.  On failure *f is zeroed. */
ASEC_API int asec_dp_attn_cov_sample(asec_mat *f, double *eta, const asec_mat *u, size_t m,
                                     asec_rng *rng) ASEC_WARN_UNUSED ASEC_NONNULL(1, 3, 5);

/* Post-processing of a release f (m, n): att (n, d_v) = D^-1 F^T (F v)
 * with D = diag(F^T (F 1_n)), where every D_i < floor is raised to floor
 * (clamped, and counted into *clamped, may be NULL); floor > 0.  v is
 * (n, d_v).  Returns ASEC_OK, ASEC_EBADLEN, ASEC_EINVAL (floor not
 * positive and finite), ASEC_ENUMERIC, ASEC_ENOMEM (allocates (m, d_v + 1)
 * doubles, freed before return). */
ASEC_API int asec_dp_attn_normalize(asec_mat *att, size_t *clamped, const asec_mat *f,
                                    const asec_mat *v, double floor)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 3, 4);

/* ------------------------------------------------------------ mechanism 2 */

/* What an output-perturbation release used and guarantees. */
typedef struct asec_dp_attn_out_result {
    double sensitivity; /* 2 sqrt(T) R_v, before snapping */
    size_t clipped;     /* value rows that were longer than R_v */
    asec_noise_result noise; /* lattice, effective sensitivity, sigma, rho, epsilon */
} asec_dp_attn_out_result;

/* att (T, d_v) = Att + noise, Att = softmax_rows(s q k^T) vc, where vc is
 * v with every row longer than rv scaled to length rv.  The noise is
 * asec_noise_release() with nopts (copied; its sensitivity field is
 * replaced by 2 sqrt(T) rv, its norm by ASEC_NOISE_L2, its mechanism by
 * ASEC_NOISE_GAUSSIAN).  When acct is not NULL the release is written
 * to the ledger as a zCDP event (rho of asec_noise_plan()) BEFORE noise is
 * drawn, so a failure later over-counts, never under-counts.
 * clean (may be NULL, (T, d_v)) receives the noiseless Att.  res may be
 * NULL.  Returns ASEC_OK, ASEC_EBADLEN, ASEC_EINVAL (rv or scale not
 * positive and finite, noise options out of range), ASEC_ENUMERIC
 * (non-finite input), ASEC_ELIMIT, ASEC_ENOMEM, or an error of
 * asec_acct_add().  Allocates (T, S) doubles and the noise buffer, freed
 * before return.  att must be contiguous (ld == cols) and must not alias
 * q, k or v. */
ASEC_API int asec_dp_attn_output_release(asec_mat *att, asec_mat *clean,
                                         asec_dp_attn_out_result *res, const asec_mat *q,
                                         const asec_mat *k, const asec_mat *v, double scale,
                                         double rv, const asec_noise_options *nopts,
                                         asec_rng *rng, asec_acct *acct)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 4, 5, 6, 9, 10);

/* ------------------------------------------------------------ utility */

/* Attention output from an unnormalised attention matrix a (T, S) and
 * values v (S, d_v): att = D^-1 a v with D = diag(a 1), rows with
 * D_i < floor raised to floor and counted into *clamped (may be NULL).
 * Returns ASEC_OK, ASEC_EBADLEN, ASEC_EINVAL (floor), ASEC_ENUMERIC.
 * Allocates nothing. */
ASEC_API int asec_dp_attn_output(asec_mat *att, size_t *clamped, const asec_mat *a,
                                 const asec_mat *v, double floor)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 3, 4);

/* Relative errors of an estimate x^ of x (same shape):
 * max |x^ - x| / max |x| into *rel_max and ||x^ - x||_F / ||x||_F into
 * *rel_fro (either may be NULL).  ASEC_EBADLEN; ASEC_ENUMERIC when x is
 * zero.  Allocates nothing. */
ASEC_API int asec_dp_attn_rel_error(double *rel_max, double *rel_fro, const asec_mat *est,
                                    const asec_mat *x) ASEC_WARN_UNUSED
    ASEC_NONNULL(3, 4);

ASEC_END_DECLS

#endif /* ATTNSEC_DP_ATTN_H */
