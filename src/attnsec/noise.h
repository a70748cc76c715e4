/* attnsec/noise.h - exact differential-privacy noise on a lattice.
 *
 * The noise of every DP release is an integer: a sample of the discrete
 * Laplace or discrete Gaussian distribution, drawn exactly (no floating
 * point anywhere in the sampler) with the algorithms of Canonne, Kamath
 * and Steinke 2020, "The Discrete Gaussian for Differential Privacy"
 * (CKS20, Algorithms 1-3).  A real-valued query x is released as
 *
 *     out = (round(x / g) + Z) * g
 *
 * where g, the granularity of the lattice g*Z, is a power of two chosen
 * from the noise scale alone (never from the data), round() rounds half
 * away from zero, and Z is the integer noise in lattice units.  The
 * product is exact in double, so the set of possible outputs has no
 * holes that depend on x (Mironov 2012).  Snapping costs sensitivity; the
 * functions below compute the effective sensitivity (RELIABILITY.md §3).
 *
 * Distributions (lattice units, y any integer):
 *   discrete Laplace, scale b   P(y) = tanh(1/(2b)) exp(-|y|/b)
 *   discrete Gaussian, sigma^2  P(y) = exp(-y^2/(2 sigma^2)) / sum_z exp(-z^2/(2
 * sigma^2)) Bernoulli(exp(-gamma))      P(1) = exp(-gamma) Parameters are rationals
 * num/den of unsigned 64-bit integers, so they are exact; asec_noise_release() derives
 * them from doubles, rounding every noise parameter up (more noise is always safe).
 *
 * Two implementations of each sampler, which consume the random stream
 * identically and therefore return the same samples from the same stream:
 *   GMP path   arbitrary-precision rationals (GMP); the reference.
 *   fast path  64/128-bit integers.  It handles every Bernoulli and
 *              discrete-Laplace parameter, and a discrete Gaussian when
 *              2 a b t^2 <= 2^120 for sigma^2 = a/b and t = floor(sigma)+1
 *              (roughly sigma^2 <= 2^59 in lattice units; with the default
 *              granularity sigma is about 2^20 lattice units).  A candidate
 *              whose intermediate values overflow 128 bits (probability
 *              below 1e-8 per draw even at the bound) is finished on GMP
 *              integers, so the output never differs from the GMP path.
 * Randomness (both paths, so they agree sample for sample): words are
 * fetched from asec_rng eight at a time (asec_rng_bytes, little-endian:
 * the words asec_rng_u64 would return) and used as fair bits, most
 * significant bit first; bits left at the end of a call are wiped and
 * discarded.  A Bernoulli(p) trial for a rational p = n/m compares fair
 * bits with the binary digits of p (long division) and stops at the
 * first difference: the result is p's digit there, 1 with probability
 * exactly p, after 2 bits on average.  Bernoulli(exp(-1)), the trial
 * CKS20 repeats most, compares the bits with the digits of exp(-1) in
 * the same way (a 256-digit table, checked against an exact rational
 * bound on the GMP path; further digits from GMP).  Uniform integers on
 * {0, ..., m-1} (the U of CKS20 Alg. 2, m < 2^64) use Lemire's
 * multiply-and-reject on 32 fair bits when m < 2^32, else on 64.
 *
 * Randomness must be secure (asec_rng_alloc_secure) for a DP release;
 * a seeded stream gives reproducible tests and experiments only.
 *
 * Threat model.  Defended: the floating-point attacks on textbook noise
 * (Mironov 2012; Jin et al. 2022): outputs lie on a fixed lattice and the
 * noise distribution is exact; summation order and rounding cannot
 * change sensitivity, because sums are int64 (asec_noise_acc_add).  NOT
 * defended: timing, cache and power side channels of the machine that
 * runs the sampler (the number of loop iterations in CKS20 depends on the
 * noise drawn, so the running time leaks about its magnitude, as Jin et
 * al. showed), an attacker who controls the host, the kernel RNG or the
 * process memory (GMP's temporaries are freed without being wiped).
 *
 * Memory: nothing here allocates through the library's allocator except
 * asec_noise_release().  The GMP path and the rare fast-path fallback
 * allocate GMP integers internally; GMP aborts the process if that fails.
 */
#ifndef ATTNSEC_NOISE_H
#define ATTNSEC_NOISE_H

#include <stddef.h>
#include <stdint.h>

#include <attnsec/common.h>
#include <attnsec/rng.h>

ASEC_BEGIN_DECLS

/* Which implementation a sampler uses. */
typedef enum asec_noise_path {
    ASEC_NOISE_PATH_AUTO = 0, /* fast path when the parameters allow it, else GMP */
    ASEC_NOISE_PATH_GMP = 1,  /* always the GMP reference */
    ASEC_NOISE_PATH_FAST = 2  /* fast path; ASEC_EINVAL outside its bounds */
} asec_noise_path;

/* Largest discrete-Laplace scale accepted, in lattice units (2^52): the
 * samples then fit int64 with overwhelming probability. */
#define ASEC_NOISE_MAX_LAPLACE_SCALE 4503599627370496.0

/* n independent Bernoulli(exp(-gamma)) bits, gamma = gamma_num/gamma_den,
 * into out[0..n-1] (0 or 1).  CKS20 Alg. 1 for gamma <= 1; for gamma > 1,
 * floor(gamma) Bernoulli(exp(-1)) trials (by comparison with the digits
 * of exp(-1), see above) and one Bernoulli(exp(-(gamma - floor(gamma)))),
 * all of which must succeed.  Returns ASEC_OK or
 * ASEC_EINVAL (gamma_den == 0, or a bad path).  Allocates nothing through
 * the library allocator (see the file comment). */
ASEC_API int asec_noise_bernoulli_exp(int *out, size_t n, asec_rng *rng,
                                      uint64_t gamma_num, uint64_t gamma_den,
                                      asec_noise_path path) ASEC_WARN_UNUSED
    ASEC_NONNULL(3);

/* n discrete-Laplace samples of scale b = scale_num/scale_den into out
 * (CKS20 Alg. 2 with t = scale_num, s = scale_den).  Returns ASEC_OK,
 * ASEC_EINVAL (a zero parameter, b > ASEC_NOISE_MAX_LAPLACE_SCALE, bad
 * path) or ASEC_ENUMERIC (a sample beyond int64; probability < 2^-2000).
 * The fast path accepts every valid parameter.  On failure out is
 * unspecified.  Allocates as asec_noise_bernoulli_exp. */
ASEC_API int asec_noise_dlaplace(int64_t *out, size_t n, asec_rng *rng,
                                 uint64_t scale_num, uint64_t scale_den,
                                 asec_noise_path path) ASEC_WARN_UNUSED ASEC_NONNULL(3);

/* n discrete-Gaussian samples with sigma^2 = sigma2_num/sigma2_den into
 * out (CKS20 Alg. 3).  Returns ASEC_OK, ASEC_EINVAL (a zero parameter, a
 * bad path, or ASEC_NOISE_PATH_FAST outside the fast-path bound) or
 * ASEC_ENUMERIC (a sample beyond int64; unreachable for 64-bit
 * parameters in practice).  On failure out is unspecified.  Allocates as
 * asec_noise_bernoulli_exp. */
ASEC_API int asec_noise_dgauss(int64_t *out, size_t n, asec_rng *rng, uint64_t sigma2_num,
                               uint64_t sigma2_den, asec_noise_path path) ASEC_WARN_UNUSED
    ASEC_NONNULL(3);

/* 1 when asec_noise_dgauss() can take the fast path for these
 * parameters, 0 otherwise (including invalid ones). */
ASEC_API int asec_noise_dgauss_fast_ok(uint64_t sigma2_num, uint64_t sigma2_den);

/* ------------------------------------------------------------ lattice */

/* The granularity for a noise scale (sigma of a Gaussian, b of a
 * Laplace, in data units): *out = 2^(ceil(log2(scale)) - bits), so that
 * scale / g lies in (2^(bits-1), 2^bits].  bits in [1, 50].  Returns
 * ASEC_OK or ASEC_EINVAL (scale not finite and positive, bits out of
 * range, or g not a normal double with g * 2^53 finite). */
ASEC_API int asec_noise_granularity(double *out, double scale, int bits) ASEC_WARN_UNUSED
    ASEC_NONNULL(1);

/* out[i] = round(x[i] / g), half away from zero, for a power of two g.
 * Returns ASEC_OK, ASEC_EINVAL (g not a positive power of two),
 * ASEC_ENUMERIC (x[i] not finite) or ASEC_ELIMIT (|x[i] / g| > 2^52,
 * beyond the exactly representable lattice range); the message names the
 * first bad index.  out is written only on success.  out and x must not
 * alias.  Allocates nothing. */
ASEC_API int asec_noise_snap(int64_t *out, const double *x, size_t n,
                             double g) ASEC_WARN_UNUSED;

/* out[i] = v[i] * g, exact.  Returns ASEC_OK, ASEC_EINVAL (g not a
 * positive power of two) or ASEC_ELIMIT (|v[i]| > 2^53, or the product
 * overflows); out is written only on success.  Allocates nothing. */
ASEC_API int asec_noise_unsnap(double *out, const int64_t *v, size_t n,
                               double g) ASEC_WARN_UNUSED;

/* Which norm a sensitivity is measured in. */
typedef enum asec_noise_norm { ASEC_NOISE_L2 = 0, ASEC_NOISE_L1 = 1 } asec_noise_norm;

/* How the values were snapped. */
typedef enum asec_noise_snapping {
    /* The query result itself (d coordinates) is snapped, and neighbours
     * differ by at most sens before snapping: each side moves by up to
     * g/2 per coordinate, so sens_g = sens + g * d^(1/p). */
    ASEC_NOISE_SNAP_QUERY = 0,
    /* Each example's vector is clipped to norm sens, snapped, and the
     * snapped vectors are summed exactly (add/remove neighbours, DP-SGD):
     * sens_g = sens + g * d^(1/p) / 2. */
    ASEC_NOISE_SNAP_EXAMPLE = 1
} asec_noise_snapping;

/* The sensitivity after snapping d coordinates to the lattice of
 * granularity g (RELIABILITY.md §3.1-3.2), rounded up: p = 2 for
 * ASEC_NOISE_L2 and p = 1 for ASEC_NOISE_L1 (see asec_noise_snapping).
 * Returns ASEC_OK or ASEC_EINVAL (sens or g not finite and positive,
 * d == 0, or an unknown enum value). */
ASEC_API int asec_noise_lattice_sensitivity(double *out, double sens,
                                            asec_noise_norm norm, size_t d, double g,
                                            asec_noise_snapping how) ASEC_WARN_UNUSED
    ASEC_NONNULL(1);

/* acc[i] += v[i] for i < n, in int64, exactly.  Returns ASEC_OK or
 * ASEC_ELIMIT when some sum would leave [-2^62, 2^62] (the message names
 * the index); acc is then untouched.  Checking the bound first keeps the
 * accumulator usable: noise can still be added without overflow.
 * acc and v may not alias.  Allocates nothing. */
ASEC_API int asec_noise_acc_add(int64_t *acc, const int64_t *v,
                                size_t n) ASEC_WARN_UNUSED;

/* Whether batch snapped vectors, each of L2 (or L1) norm at most clip
 * before snapping, can be summed without leaving the accumulator's range:
 * ASEC_OK when batch * (clip / g + 1) < 2^62 (RELIABILITY.md §3.2 step 3),
 * ASEC_ELIMIT otherwise, ASEC_EINVAL for a non-positive clip or g. */
ASEC_API int asec_noise_acc_check(size_t batch, double clip, double g) ASEC_WARN_UNUSED;

/* ------------------------------------------------------------ privacy */

/* The epsilon at which a rho-zCDP mechanism is (epsilon, delta)-DP: the
 * smaller of rho + 2 sqrt(rho log(1/delta)) (Bun and Steinke 2016,
 * Prop. 1.3) and inf over alpha > 1 of
 *   alpha rho + log(1 - 1/alpha) + (log(1/delta) - log(alpha)) / (alpha - 1)
 * (CKS20 Cor. 13), minimised numerically; every alpha gives a valid
 * bound, so an inexact minimum is still an upper bound.  rho >= 0,
 * delta in (0, 1).  Returns ASEC_OK or ASEC_EINVAL. */
ASEC_API int asec_noise_zcdp_epsilon(double *out, double rho,
                                     double delta) ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* ------------------------------------------------------------ release */

typedef enum asec_noise_mech {
    ASEC_NOISE_GAUSSIAN = 0, /* discrete Gaussian: rho-zCDP, (epsilon, delta)-DP */
    ASEC_NOISE_LAPLACE = 1   /* discrete Laplace: pure epsilon-DP */
} asec_noise_mech;

/* Default lattice bits: g = 2^(ceil(log2(scale)) - 20). */
#define ASEC_NOISE_DEFAULT_BITS 20

/* Options of asec_noise_release().  Start from ASEC_NOISE_OPTIONS_INIT;
 * fields are only ever appended. */
typedef struct asec_noise_options {
    unsigned int version; /* ASEC_NOISE_OPTIONS_VERSION */
    asec_noise_mech mech;
    asec_noise_norm norm; /* norm of sensitivity; the Laplace needs L1. A
                             Gaussian takes either (an L1 bound is an L2 bound) */
    double sensitivity;   /* > 0: max distance between neighbours' x, data units */
    double scale;         /* > 0: the noise scale (Gaussian sigma, Laplace b) in
                             data units; 0: calibrate from epsilon (and delta) */
    double epsilon;       /* calibration target when scale == 0 (> 0) */
    double delta;         /* Gaussian: in (0, 1), the delta of the reported epsilon,
                             required when calibrating; 0: report rho only.
                             Laplace: must be 0 */
    int granularity_bits; /* in [1, 50] (Gaussian: [1, 30]); 0 = default */
    asec_noise_path path;
} asec_noise_options;

#define ASEC_NOISE_OPTIONS_VERSION 1
#define ASEC_NOISE_OPTIONS_INIT                                                          \
    {                                                                                    \
        ASEC_NOISE_OPTIONS_VERSION, ASEC_NOISE_GAUSSIAN, ASEC_NOISE_L2, 1.0, 0.0, 1.0,   \
            1e-5, 0, ASEC_NOISE_PATH_AUTO                                                \
    }

/* What a release used and what it guarantees; everything a report needs. */
typedef struct asec_noise_result {
    double granularity;     /* g, a power of two */
    int granularity_bits;   /* the bits g was derived with */
    double sensitivity;     /* as given */
    double sensitivity_eff; /* after snapping (L2 for the Gaussian, L1 for the
                               Laplace), data units, rounded up */
    double scale;           /* noise scale actually used, data units: Gaussian
                               sigma = sqrt(scale_num/scale_den) * g, Laplace
                               b = (scale_num/scale_den) * g */
    uint64_t scale_num;     /* lattice units: Gaussian sigma^2 = num/den, */
    uint64_t scale_den;     /*   Laplace b = num/den */
    double epsilon;         /* Laplace: epsilon.  Gaussian: at delta, or +inf
                               when delta == 0 */
    double delta;           /* as requested; 0 for the Laplace */
    double rho;             /* zCDP: Gaussian sens_eff^2/(2 sigma^2); Laplace
                               epsilon^2/2 */
    asec_noise_path path;   /* ASEC_NOISE_PATH_FAST or ASEC_NOISE_PATH_GMP */
} asec_noise_result;

/* What asec_noise_release() would use and guarantee for opts and n
 * values, computed without drawing noise or looking at data (so a budget
 * can be checked first): *out as described for asec_noise_result.
 * Returns ASEC_OK or ASEC_EINVAL (as asec_noise_release()).  Allocates
 * nothing. */
ASEC_API int asec_noise_plan(asec_noise_result *out, const asec_noise_options *opts,
                             size_t n) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Release x (n values, any shape flattened) with exact lattice noise:
 * out[i] = (round(x[i]/g) + Z_i) * g, Z_i independent discrete Gaussian
 * or discrete Laplace samples.
 *
 * Calibration: with opts->scale > 0 that scale is used; otherwise a
 * Gaussian's sigma is the smallest one whose rho gives opts->epsilon at
 * opts->delta through asec_noise_zcdp_epsilon(), and a Laplace's b is
 * sens_eff / epsilon.  g comes from the nominal scale (computed with the
 * given sensitivity), sens_eff from g and n with ASEC_NOISE_SNAP_QUERY,
 * and the final scale from sens_eff; every step rounds up.
 *
 *   out   n values; may alias x.  Written only on success
 *   rng   borrowed; must be secure for a DP release
 *   res   filled on success, may be NULL
 *
 * The plan is asec_noise_plan(opts, n): the same inputs give the same
 * lattice and guarantee.
 *
 * Returns ASEC_OK, ASEC_EINVAL (options out of range: the message names
 * the field), ASEC_ENUMERIC (x not finite), ASEC_ELIMIT (|x[i]| > 2^52 g,
 * checked before any noise is drawn; or a noisy value beyond 2^53 g) or
 * ASEC_ENOMEM.  Allocates and frees an n-element int64 buffer. */
ASEC_API int asec_noise_release(double *out, const double *x, size_t n,
                                const asec_noise_options *opts, asec_rng *rng,
                                asec_noise_result *res) ASEC_WARN_UNUSED
    ASEC_NONNULL(4, 5);

ASEC_END_DECLS

#endif /* ATTNSEC_NOISE_H */
