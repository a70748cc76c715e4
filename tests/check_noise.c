/* check_noise.c - exact lattice noise (attnsec/noise.h) and the fast
 * floating-point samplers of attnsec/rng.h.
 *
 * TCases:
 *   core     lattice arithmetic, sensitivity, accumulator, calibration,
 *            zCDP conversion against datasets/gen/zcdp_epsilon.py, release
 *   equal    fast path == GMP path, sample for sample and byte for byte of
 *            stream consumed, over many parameters
 *   stats    goodness of fit, seeded (deterministic), N = 1e6 per test:
 *              - Pearson chi-square against the exact pmf (computed here in
 *                long double) for the discrete Gaussian at sigma = 0.5, 3,
 *                100 and the discrete Laplace at scales 2/5 and 37/2; bins
 *                with expected count >= 100, tails merged into the end bins.
 *                These run on the GMP path, the reference (about 0.7 s per
 *                test on this machine); the fast path equals it sample for
 *                sample (TCase equal).
 *              - Wilson intervals for Bernoulli(exp(-gamma)), gamma = 1/3,
 *                1, 5/2, 10 (gamma = 0 must give all ones).
 *              - Kolmogorov-Smirnov for asec_rng_normal and asec_rng_laplace
 *                against their CDFs, and a binomial test of the ziggurat tail
 *                fraction P(|Z| > r).
 *              - The same chi-square on the fast path for its own branches:
 *                sigma^2 = 9900, a multiple of t = 100 (reduced acceptance
 *                test), and a discrete Laplace with t = 2^33 + 1 (64-bit
 *                uniforms).
 *            and the lattice (hole-freeness) check: every one of 1e7 released
 *            values is an exact multiple of g, and input bits below g change
 *            no output.
 *   errors   every status the functions document
 *   oom      asec_noise_release under the failing allocator
 *   long     only with ASEC_LONG_TESTS=1 (make check-long): the chi-square
 *            and KS tests with N = 1e8 and secure randomness.  The chi-square
 *            tests use the fast path there (about 5 M samples/s instead of
 *            1.5 M/s), which TCase equal proves equal to the GMP path.
 *
 * Significance: each statistical test rejects at alpha = 1e-6 (RELIABILITY.md
 * §4.2), and this file has 14 of them, so a correct implementation fails a
 * run with probability below 1.4e-5 even with fresh seeds; with the fixed
 * seeds used here the outcome is deterministic.  A failure is a bug until a
 * rerun with another seed says otherwise.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>

#include "attnsec/attnsec.h"
#include "testutil.h"

#define ALPHA 1e-6
#define Z_ALPHA 4.891638475698775 /* two-sided normal quantile at 1e-6 */
#define MIN_EXPECTED 100.0
#define ZIG_R 3.6541528853610088

static asec_rng *
seeded(uint64_t seed, const char *label)
{
    asec_rng *r;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, seed, label), ASEC_OK);
    return r;
}

static int
long_tests(void)
{
    const char *v = getenv("ASEC_LONG_TESTS");

    return v != NULL && strcmp(v, "1") == 0;
}

/* ------------------------------------------------------------ exact pmfs */

struct pmf {
    int gaussian;      /* 1: discrete Gaussian, 0: discrete Laplace */
    long double param; /* sigma^2, or the Laplace scale */
    long double norm;  /* normalising constant of the Gaussian */
};

static long double
pmf_unnorm(const struct pmf *p, long y)
{
    long double yy = (long double)y;

    if (p->gaussian)
        return expl(-yy * yy / (2.0L * p->param));
    return expl(-fabsl(yy) / p->param);
}

static struct pmf
pmf_make(int gaussian, long double param)
{
    struct pmf p = {gaussian, param, 1.0L};

    if (gaussian) {
        long L = (long)ceill(40.0L * sqrtl(param)) + 40;
        long double z = 0;

        for (long y = -L; y <= L; y++)
            z += pmf_unnorm(&p, y);
        p.norm = z;
    } else {
        p.norm = 1.0L / tanhl(1.0L / (2.0L * param));
    }
    return p;
}

static long double
pmf(const struct pmf *p, long y)
{
    return pmf_unnorm(p, y) / p->norm;
}

/* P(Y >= r) for r >= 0, summed outward (no cancellation). */
static long double
pmf_tail(const struct pmf *p, long r)
{
    long double s = 0, term;
    long y = r;

    do {
        term = pmf(p, y);
        s += term;
        y++;
    } while (term > 1e-30L * s || y < r + 10);
    return s;
}

/* ------------------------------------------------------------ chi-square */

/* Counts of y in [-R, R], y <= -R and y >= R folded into the end bins. */
struct hist {
    long R;
    double *count; /* 2R + 1 */
    size_t n;
};

static struct hist
hist_make(const struct pmf *p, double N)
{
    struct hist h = {0, NULL, 0};

    /* The largest R whose single bins all expect >= MIN_EXPECTED and whose
     * merged end bins do too (the pmfs are symmetric and unimodal). */
    while ((double)(N * pmf(p, h.R + 1)) >= MIN_EXPECTED)
        h.R++;
    while (h.R > 0 && (double)(N * pmf_tail(p, h.R)) < MIN_EXPECTED)
        h.R--;
    h.count = calloc((size_t)(2 * h.R + 1), sizeof *h.count);
    ck_assert_ptr_nonnull(h.count);
    return h;
}

static void
hist_add(struct hist *h, const int64_t *y, size_t m)
{
    for (size_t i = 0; i < m; i++) {
        int64_t v = y[i];

        if (v < -h->R)
            v = -h->R;
        if (v > h->R)
            v = h->R;
        h->count[v + h->R] += 1.0;
    }
    h->n += m;
}

/* The p-value of Pearson's statistic with 2R degrees of freedom. */
static double
hist_pvalue(const struct hist *h, const struct pmf *p, double *stat_out, int *df_out)
{
    double N = (double)h->n, stat = 0;

    for (long y = -h->R; y <= h->R; y++) {
        long double pr = y == -h->R || y == h->R ? pmf_tail(p, h->R) : pmf(p, y);
        double e = (double)((long double)N * pr), d = h->count[y + h->R] - e;

        stat += d * d / e;
    }
    *stat_out = stat;
    *df_out = (int)(2 * h->R);
    return gsl_cdf_chisq_Q(stat, 2.0 * (double)h->R);
}

/* Draw N samples in chunks and test them against the exact pmf. */
static void
chisq_run(asec_rng *rng, int gaussian, uint64_t num, uint64_t den, double N,
          asec_noise_path path, const char *what)
{
    enum { CHUNK = 1 << 16 };
    struct pmf p = pmf_make(gaussian, (long double)num / (long double)den);
    struct hist h = hist_make(&p, N);
    int64_t *buf = malloc(CHUNK * sizeof *buf);
    double stat, pv;
    int df;

    ck_assert_ptr_nonnull(buf);
    ck_assert_int_gt(h.R, 0);
    for (double done = 0; done < N; done += CHUNK) {
        size_t m = N - done < CHUNK ? (size_t)(N - done) : CHUNK;
        int rc = gaussian ? asec_noise_dgauss(buf, m, rng, num, den, path)
                          : asec_noise_dlaplace(buf, m, rng, num, den, path);

        ck_assert_int_eq(rc, ASEC_OK);
        hist_add(&h, buf, m);
    }
    pv = hist_pvalue(&h, &p, &stat, &df);
    ck_assert_msg(pv > ALPHA, "%s: chi-square %.2f with %d df, p = %.3g < %g", what, stat,
                  df, pv, ALPHA);
    free(buf);
    free(h.count);
}

/* ------------------------------------------------------------ KS, binned */

/* Kolmogorov-Smirnov against a continuous CDF F, streaming: u = F(x) is
 * counted in M equal bins and D is evaluated at the bin edges, so
 * D_edges <= D <= D_edges + 1/M (M = 2^20 makes the gap 1e-6, far below
 * the critical values).  Critical value: the asymptotic Kolmogorov
 * quantile sqrt(log(2/alpha)/2)/sqrt(N) (RELIABILITY.md §4.2: 0.00269 at
 * N = 1e6). */
static void
ks_run(asec_rng *rng, double (*draw)(asec_rng *), double (*cdf)(double), double N,
       const char *what)
{
    enum { M = 1 << 20 };
    uint32_t *bin = calloc(M, sizeof *bin);
    double cum = 0, d = 0, crit = sqrt(log(2.0 / ALPHA) / 2.0) / sqrt(N);

    ck_assert_ptr_nonnull(bin);
    for (double i = 0; i < N; i++) {
        double u = cdf(draw(rng));
        size_t k = (size_t)(u * M);

        bin[k < M ? k : M - 1]++;
    }
    for (size_t k = 0; k < M; k++) {
        double gap;

        cum += bin[k];
        gap = fabs(cum / N - (double)(k + 1) / M);
        if (gap > d)
            d = gap;
    }
    ck_assert_msg(d < crit, "%s: KS D = %.3g >= %.3g (alpha %g, N %.0f)", what, d, crit,
                  ALPHA, N);
    free(bin);
}

static double
normal_cdf(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

static double
laplace_cdf(double x)
{
    return x < 0 ? 0.5 * exp(x) : 1.0 - 0.5 * exp(-x);
}

/* ------------------------------------------------------------ core */

START_TEST(test_granularity)
{
    double g;

    ck_assert_int_eq(asec_noise_granularity(&g, 3.0, 20), ASEC_OK);
    ck_assert_double_eq(g, ldexp(1.0, 2 - 20)); /* ceil(log2 3) = 2 */
    ck_assert_int_eq(asec_noise_granularity(&g, 4.0, 20), ASEC_OK);
    ck_assert_double_eq(g, ldexp(1.0, 2 - 20)); /* exact powers stay */
    ck_assert_int_eq(asec_noise_granularity(&g, 4.000000001, 20), ASEC_OK);
    ck_assert_double_eq(g, ldexp(1.0, 3 - 20));
    ck_assert_int_eq(asec_noise_granularity(&g, 0.1, 10), ASEC_OK);
    ck_assert_double_eq(g, ldexp(1.0, -3 - 10));
    /* scale / g in (2^(bits-1), 2^bits] for a sweep of scales */
    for (double s = 1e-6; s < 1e6; s *= 1.37) {
        ck_assert_int_eq(asec_noise_granularity(&g, s, 20), ASEC_OK);
        ck_assert(s / g > 0x1p19 && s / g <= 0x1p20);
    }
}
END_TEST

START_TEST(test_snap_unsnap)
{
    const double g = 0.25;
    double x[] = {0.125, -0.125, 0.375, 1.0, -7.3, 0.0, 1e6 + 0.1};
    int64_t want[] = {1, -1, 2, 4, -29, 0, 4000000}; /* ties away from zero */
    int64_t v[7];
    double back[7];

    ck_assert_int_eq(asec_noise_snap(v, x, 7, g), ASEC_OK);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(v[i], want[i]);
    ck_assert_int_eq(asec_noise_unsnap(back, v, 7, g), ASEC_OK);
    for (int i = 0; i < 7; i++)
        ck_assert_double_eq(back[i], (double)want[i] * g);
    /* The extremes of the range are exact. */
    {
        int64_t big[2] = {(int64_t)1 << 53, -((int64_t)1 << 53)};
        double o[2];

        ck_assert_int_eq(asec_noise_unsnap(o, big, 2, 0x1p-20), ASEC_OK);
        ck_assert_double_eq(o[0], 0x1p33);
        ck_assert_double_eq(o[1], -0x1p33);
    }
}
END_TEST

START_TEST(test_lattice_sensitivity)
{
    double s;

    /* One coordinate: sens + g (RELIABILITY.md §3.1). */
    ck_assert_int_eq(asec_noise_lattice_sensitivity(&s, 1.0, ASEC_NOISE_L2, 1, 0x1p-10,
                                                    ASEC_NOISE_SNAP_QUERY),
                     ASEC_OK);
    ck_assert_double_eq(s, 1.0 + 0x1p-10);
    /* d = 100: sens + sqrt(d) g and, per example, sens + sqrt(d) g / 2. */
    ck_assert_int_eq(asec_noise_lattice_sensitivity(&s, 2.0, ASEC_NOISE_L2, 100, 0x1p-8,
                                                    ASEC_NOISE_SNAP_QUERY),
                     ASEC_OK);
    ck_assert_double_eq(s, 2.0 + 10 * 0x1p-8);
    ck_assert_int_eq(asec_noise_lattice_sensitivity(&s, 2.0, ASEC_NOISE_L2, 100, 0x1p-8,
                                                    ASEC_NOISE_SNAP_EXAMPLE),
                     ASEC_OK);
    ck_assert_double_eq(s, 2.0 + 5 * 0x1p-8);
    ck_assert_int_eq(asec_noise_lattice_sensitivity(&s, 2.0, ASEC_NOISE_L1, 100, 0x1p-8,
                                                    ASEC_NOISE_SNAP_QUERY),
                     ASEC_OK);
    ck_assert_double_eq(s, 2.0 + 100 * 0x1p-8);
    /* Rounded up, never down: sqrt(2) and 0.1 + g are inexact. */
    ck_assert_int_eq(asec_noise_lattice_sensitivity(&s, 0.1, ASEC_NOISE_L2, 2, 0x1p-30,
                                                    ASEC_NOISE_SNAP_QUERY),
                     ASEC_OK);
    ck_assert((long double)s >= 0.1L + sqrtl(2.0L) * 0x1p-30L);
    ck_assert(s <= 0.1 + 1.5 * 0x1p-30);
}
END_TEST

START_TEST(test_accumulator)
{
    int64_t acc[3] = {1, -2, 3}, v[3] = {10, 20, -30};
    const int64_t lim = (int64_t)1 << 62;

    ck_assert_int_eq(asec_noise_acc_add(acc, v, 3), ASEC_OK);
    ck_assert_int_eq(acc[0], 11);
    ck_assert_int_eq(acc[1], 18);
    ck_assert_int_eq(acc[2], -27);
    /* Exactly at the bound is fine; the sum is exact and order-free. */
    {
        int64_t a[1] = {lim - 5}, b[1] = {5};

        ck_assert_int_eq(asec_noise_acc_add(a, b, 1), ASEC_OK);
        ck_assert_int_eq(a[0], lim);
    }
    ck_assert_int_eq(asec_noise_acc_check(1000, 1.0, 0x1p-20), ASEC_OK);
}
END_TEST

/* Reference values printed by datasets/gen/zcdp_epsilon.py (mpmath, 50
 * digits, and scipy's bounded Brent search). */
static const double ZCDP_REF[][3] = {
    {0.5, 1e-05, 4.7283869849433139},  {0.01, 1e-06, 0.6216926545596025},
    {2.0, 1e-09, 14.150147553874597},  {0.0001, 1e-05, 0.045047462087777229},
    {12.5, 0.001, 29.469360869847667},
};

START_TEST(test_zcdp_epsilon)
{
    double e, prev = 0;

    for (size_t i = 0; i < sizeof ZCDP_REF / sizeof ZCDP_REF[0]; i++) {
        double rho = ZCDP_REF[i][0], delta = ZCDP_REF[i][1], want = ZCDP_REF[i][2];

        ck_assert_int_eq(asec_noise_zcdp_epsilon(&e, rho, delta), ASEC_OK);
        /* An upper bound, and tight: within 1e-9 relative above. */
        ck_assert_msg(e >= want && e <= want * (1 + 1e-9),
                      "rho %g delta %g: %.17g vs %.17g", rho, delta, e, want);
        ck_assert(e <= rho + 2 * sqrt(rho * log(1 / delta)) * (1 + 1e-15));
    }
    ck_assert_int_eq(asec_noise_zcdp_epsilon(&e, 0.0, 1e-5), ASEC_OK);
    ck_assert_double_eq(e, 0.0);
    /* Monotone in rho. */
    for (double rho = 1e-6; rho < 1e3; rho *= 1.5) {
        ck_assert_int_eq(asec_noise_zcdp_epsilon(&e, rho, 1e-6), ASEC_OK);
        ck_assert(e > prev);
        prev = e;
    }
}
END_TEST

static int
is_lattice(double v, double g)
{
    double q = v / g;

    return q == nearbyint(q) && fabs(q) <= 0x1p53;
}

START_TEST(test_release_gaussian)
{
    asec_noise_options o = ASEC_NOISE_OPTIONS_INIT;
    asec_noise_result res;
    asec_rng *rng = seeded(11, "release");
    double x[100], out[100], g, e;

    for (int i = 0; i < 100; i++)
        x[i] = sin(i) * 3.0;
    o.sensitivity = 1.0;
    o.epsilon = 1.0;
    o.delta = 1e-5;
    ck_assert_int_eq(asec_noise_release(out, x, 100, &o, rng, &res), ASEC_OK);
    /* The guarantee: at most the target, and tight. */
    ck_assert(res.epsilon <= 1.0 * (1 + 1e-12) && res.epsilon > 0.999);
    ck_assert_int_eq(asec_noise_zcdp_epsilon(&e, res.rho, 1e-5), ASEC_OK);
    ck_assert_double_eq(e, res.epsilon);
    ck_assert(res.rho * 2 * res.scale * res.scale >=
              res.sensitivity_eff * res.sensitivity_eff * (1 - 1e-12));
    /* The lattice comes from the nominal sigma (with sens 1), 20 bits. */
    ck_assert_int_eq(res.granularity_bits, 20);
    ck_assert(res.scale / res.granularity > 0x1p19 &&
              res.scale / res.granularity < 0x1p21);
    ck_assert_double_ge(res.sensitivity_eff, 1.0 + 10 * res.granularity);
    ck_assert_double_le(res.sensitivity_eff, 1.0 + 11 * res.granularity);
    ck_assert_int_eq(res.path, ASEC_NOISE_PATH_FAST);
    ck_assert_double_eq(res.delta, 1e-5);
    ck_assert_double_eq(res.sensitivity, 1.0);
    g = res.granularity;
    for (int i = 0; i < 100; i++)
        ck_assert(is_lattice(out[i], g));
    /* In place, and a given sigma with no delta: rho only. */
    o.scale = 2.5;
    o.delta = 0;
    ck_assert_int_eq(asec_noise_release(x, x, 100, &o, rng, &res), ASEC_OK);
    ck_assert(isinf(res.epsilon));
    ck_assert(res.scale >= 2.5 && res.scale < 2.5 * (1 + 1e-11));
    ck_assert(res.rho > 0);
    for (int i = 0; i < 100; i++)
        ck_assert(is_lattice(x[i], res.granularity));
    asec_rng_free(rng);
}
END_TEST

START_TEST(test_release_laplace)
{
    asec_noise_options o = ASEC_NOISE_OPTIONS_INIT;
    asec_noise_result res;
    asec_rng *rng = seeded(12, "release");
    double x[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, out[10];

    o.mech = ASEC_NOISE_LAPLACE;
    o.norm = ASEC_NOISE_L1;
    o.sensitivity = 2.0;
    o.epsilon = 0.5;
    o.delta = 0;
    o.path = ASEC_NOISE_PATH_GMP;
    ck_assert_int_eq(asec_noise_release(out, x, 10, &o, rng, &res), ASEC_OK);
    ck_assert(res.epsilon <= 0.5 && res.epsilon > 0.5 * (1 - 1e-12));
    ck_assert_double_eq(res.rho, 0.5 * res.epsilon * res.epsilon);
    ck_assert_double_eq(res.delta, 0);
    ck_assert_int_eq(res.path, ASEC_NOISE_PATH_GMP);
    /* b = sens_eff / eps, sens_eff = 2 + 10 g (L1, 10 coordinates). */
    ck_assert_double_eq(res.sensitivity_eff, 2.0 + 10 * res.granularity);
    ck_assert(res.scale >= res.sensitivity_eff / 0.5);
    ck_assert(res.scale <= res.sensitivity_eff / 0.5 * (1 + 1e-15));
    ck_assert_double_eq(res.scale,
                        (double)res.scale_num / (double)res.scale_den * res.granularity);
    for (int i = 0; i < 10; i++)
        ck_assert(is_lattice(out[i], res.granularity));
    asec_rng_free(rng);
}
END_TEST

/* The plan is what the release then uses, for both mechanisms. */
START_TEST(test_plan_matches_release)
{
    asec_noise_options o = ASEC_NOISE_OPTIONS_INIT;
    asec_noise_result plan, res;
    asec_rng *rng = seeded(14, "plan");
    double x[37], out[37];

    for (int i = 0; i < 37; i++)
        x[i] = i * 0.5;
    for (int mech = 0; mech < 2; mech++) {
        if (mech == 1) {
            o.mech = ASEC_NOISE_LAPLACE;
            o.norm = ASEC_NOISE_L1;
            o.delta = 0;
            o.epsilon = 0.3;
        }
        ck_assert_int_eq(asec_noise_plan(&plan, &o, 37), ASEC_OK);
        ck_assert_int_eq(asec_rng_tell(rng), 0); /* no noise drawn */
        ck_assert_int_eq(asec_noise_release(out, x, 37, &o, rng, &res), ASEC_OK);
        ck_assert_double_eq(plan.granularity, res.granularity);
        ck_assert_int_eq(plan.granularity_bits, res.granularity_bits);
        ck_assert_double_eq(plan.sensitivity_eff, res.sensitivity_eff);
        ck_assert_double_eq(plan.scale, res.scale);
        ck_assert_int_eq(plan.scale_num, res.scale_num);
        ck_assert_int_eq(plan.scale_den, res.scale_den);
        ck_assert_double_eq(plan.epsilon, res.epsilon);
        ck_assert_double_eq(plan.rho, res.rho);
        ck_assert_int_eq(plan.path, res.path);
        asec_rng_free(rng);
        rng = seeded(14, "plan");
    }
    o.version = 0;
    ck_assert_int_eq(asec_noise_plan(&plan, &o, 37), ASEC_EINVAL);
    asec_rng_free(rng);
}
END_TEST

/* Beyond the fast path's bound the automatic path falls back to GMP. */
START_TEST(test_auto_falls_back)
{
    const uint64_t a = (uint64_t)1 << 62;
    int64_t y1[200], y2[200];
    asec_rng *r1 = seeded(13, "big"), *r2 = seeded(13, "big");

    ck_assert_int_eq(asec_noise_dgauss_fast_ok(a, 1), 0);
    ck_assert_int_eq(asec_noise_dgauss_fast_ok((uint64_t)1 << 40, 1), 1);
    ck_assert_int_eq(asec_noise_dgauss_fast_ok(0, 1), 0);
    ck_assert_int_eq(asec_noise_dgauss(y1, 200, r1, a, 1, ASEC_NOISE_PATH_AUTO), ASEC_OK);
    ck_assert_int_eq(asec_noise_dgauss(y2, 200, r2, a, 1, ASEC_NOISE_PATH_GMP), ASEC_OK);
    ck_assert_mem_eq(y1, y2, sizeof y1);
    asec_rng_free(r1);
    asec_rng_free(r2);
}
END_TEST

/* ------------------------------------------------------------ equal */

enum { EQ_N = 20000 };

static void
assert_same_stream(asec_rng *a, asec_rng *b, const char *what)
{
    ck_assert_msg(asec_rng_tell(a) == asec_rng_tell(b),
                  "%s: fast path used %llu bytes, "
                  "GMP path %llu",
                  what, (unsigned long long)asec_rng_tell(a),
                  (unsigned long long)asec_rng_tell(b));
}

START_TEST(test_equal_bernoulli)
{
    static const uint64_t g[][2] = {{0, 1},
                                    {1, 3},
                                    {1, 1},
                                    {5, 2},
                                    {10, 1},
                                    {7, 1000000007},
                                    {UINT64_MAX, UINT64_MAX - 1},
                                    {UINT64_MAX / 3, UINT64_MAX},
                                    {123456789, 1ULL << 63}};
    static int a[EQ_N], b[EQ_N];

    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        asec_rng *r1 = seeded(100 + i, "eq"), *r2 = seeded(100 + i, "eq");

        ck_assert_int_eq(
            asec_noise_bernoulli_exp(a, EQ_N, r1, g[i][0], g[i][1], ASEC_NOISE_PATH_FAST),
            ASEC_OK);
        ck_assert_int_eq(
            asec_noise_bernoulli_exp(b, EQ_N, r2, g[i][0], g[i][1], ASEC_NOISE_PATH_GMP),
            ASEC_OK);
        ck_assert_mem_eq(a, b, sizeof a);
        assert_same_stream(r1, r2, "bernoulli_exp");
        asec_rng_free(r1);
        asec_rng_free(r2);
    }
}
END_TEST

START_TEST(test_equal_dlaplace)
{
    static const uint64_t s[][2] = {{1, 1},
                                    {2, 5},
                                    {37, 2},
                                    {3, 1},
                                    {1, 7},
                                    {1ULL << 60, 1ULL << 40},
                                    {UINT64_MAX, 1ULL << 20},
                                    {1000000007, 999999937}};
    static int64_t a[EQ_N], b[EQ_N];

    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        asec_rng *r1 = seeded(200 + i, "eq"), *r2 = seeded(200 + i, "eq");

        ck_assert_int_eq(
            asec_noise_dlaplace(a, EQ_N, r1, s[i][0], s[i][1], ASEC_NOISE_PATH_FAST),
            ASEC_OK);
        ck_assert_int_eq(
            asec_noise_dlaplace(b, EQ_N, r2, s[i][0], s[i][1], ASEC_NOISE_PATH_GMP),
            ASEC_OK);
        ck_assert_mem_eq(a, b, sizeof a);
        assert_same_stream(r1, r2, "dlaplace");
        asec_rng_free(r1);
        asec_rng_free(r2);
    }
}
END_TEST

START_TEST(test_equal_dgauss)
{
    /* Includes sigma < 1, non-integer sigma^2, the lattice sizes a release
     * uses (sigma ~ 2^20, sigma^2 = a / 2^m), and the fast path's edge. */
    static const uint64_t s[][2] = {{1, 4},
                                    {9, 1},
                                    {10000, 1},
                                    {37, 10},
                                    {1, 1000},
                                    {1ULL << 40, 1},
                                    {(1ULL << 41) - 1, 2},
                                    {(1ULL << 41) + 12345, 1ULL << 20},
                                    {(1ULL << 50) + 3, 1ULL << 45},
                                    {1ULL << 59, 1},
                                    /* multiples of t = floor(sigma) + 1: the
                                     * reduced acceptance test (noise.c) */
                                    {9900, 1},
                                    {19800, 2},
                                    {1099512676352ULL, 1}};
    static int64_t a[EQ_N], b[EQ_N];

    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        asec_rng *r1 = seeded(300 + i, "eq"), *r2 = seeded(300 + i, "eq");

        ck_assert_msg(asec_noise_dgauss_fast_ok(s[i][0], s[i][1]), "case %zu not fast",
                      i);
        ck_assert_int_eq(
            asec_noise_dgauss(a, EQ_N, r1, s[i][0], s[i][1], ASEC_NOISE_PATH_FAST),
            ASEC_OK);
        ck_assert_int_eq(
            asec_noise_dgauss(b, EQ_N, r2, s[i][0], s[i][1], ASEC_NOISE_PATH_GMP),
            ASEC_OK);
        ck_assert_mem_eq(a, b, sizeof a);
        assert_same_stream(r1, r2, "dgauss");
        asec_rng_free(r1);
        asec_rng_free(r2);
    }
}
END_TEST

/* One sample per call equals the batch: no hidden state between calls
 * except the stream (fair bits are discarded per call, so compare calls
 * of the same size). */
START_TEST(test_equal_release_paths)
{
    asec_noise_options o = ASEC_NOISE_OPTIONS_INIT;
    asec_noise_result r1, r2;
    enum { N = 3000 };
    static double x[N], a[N], b[N];
    asec_rng *s1 = seeded(400, "eq"), *s2 = seeded(400, "eq");

    for (int i = 0; i < N; i++)
        x[i] = cos(i) * 50;
    o.scale = 0.7;
    o.delta = 0;
    o.path = ASEC_NOISE_PATH_FAST;
    ck_assert_int_eq(asec_noise_release(a, x, N, &o, s1, &r1), ASEC_OK);
    o.path = ASEC_NOISE_PATH_GMP;
    ck_assert_int_eq(asec_noise_release(b, x, N, &o, s2, &r2), ASEC_OK);
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_int_eq(r1.path, ASEC_NOISE_PATH_FAST);
    ck_assert_int_eq(r2.path, ASEC_NOISE_PATH_GMP);
    asec_rng_free(s1);
    asec_rng_free(s2);
}
END_TEST

/* ------------------------------------------------------------ stats */

START_TEST(test_chisq_dgauss)
{
    static const uint64_t s2[][2] = {{1, 4}, {9, 1}, {10000, 1}}; /* sigma 0.5, 3, 100 */
    asec_rng *r = seeded(500 + (uint64_t)_i, "chisq");
    char what[64];

    snprintf(what, sizeof what, "discrete Gaussian sigma^2 = %llu/%llu",
             (unsigned long long)s2[_i][0], (unsigned long long)s2[_i][1]);
    chisq_run(r, 1, s2[_i][0], s2[_i][1], 1e6, ASEC_NOISE_PATH_GMP, what);
    asec_rng_free(r);
}
END_TEST

START_TEST(test_chisq_dlaplace)
{
    static const uint64_t b[][2] = {{2, 5}, {37, 2}}; /* scale 0.4 and 18.5 */
    asec_rng *r = seeded(510 + (uint64_t)_i, "chisq");
    char what[64];

    snprintf(what, sizeof what, "discrete Laplace scale %llu/%llu",
             (unsigned long long)b[_i][0], (unsigned long long)b[_i][1]);
    chisq_run(r, 0, b[_i][0], b[_i][1], 1e6, ASEC_NOISE_PATH_GMP, what);
    asec_rng_free(r);
}
END_TEST

/* The fast path's own branches, against the exact pmf: a discrete
 * Gaussian whose sigma^2 = 9900 is a multiple of t = 100 (the acceptance
 * test then runs on the reduced 64-bit rational, as in DP-SGD), and a
 * discrete Laplace with t = 2^33 + 1 > 2^32 (64-bit uniform draws; scale
 * about 8). */
START_TEST(test_chisq_fast)
{
    asec_rng *r = seeded(530 + (uint64_t)_i, "chisq-fast");

    if (_i == 0)
        chisq_run(r, 1, 9900, 1, 1e6, ASEC_NOISE_PATH_FAST,
                  "fast discrete Gaussian sigma^2 = 9900");
    else
        chisq_run(r, 0, (1ULL << 33) + 1, 1ULL << 30, 1e6, ASEC_NOISE_PATH_FAST,
                  "fast discrete Laplace scale (2^33 + 1)/2^30");
    asec_rng_free(r);
}
END_TEST

START_TEST(test_bernoulli_wilson)
{
    static const uint64_t g[][2] = {{0, 1}, {1, 3}, {1, 1}, {5, 2}, {10, 1}};
    enum { N = 1000000 };
    static int out[N];
    asec_rng *r = seeded(520, "bernoulli");

    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        double p = exp(-(double)g[i][0] / (double)g[i][1]), k = 0, ph, z2, c, h;

        ck_assert_int_eq(
            asec_noise_bernoulli_exp(out, N, r, g[i][0], g[i][1], ASEC_NOISE_PATH_GMP),
            ASEC_OK);
        for (int j = 0; j < N; j++)
            k += out[j];
        if (g[i][0] == 0) {
            ck_assert_double_eq(k, N);
            continue;
        }
        /* Wilson score interval at z = 4.8916 (alpha = 1e-6, two-sided). */
        ph = k / N;
        z2 = Z_ALPHA * Z_ALPHA;
        c = (ph + z2 / (2.0 * N)) / (1 + z2 / N);
        h = Z_ALPHA / (1 + z2 / N) * sqrt(ph * (1 - ph) / N + z2 / (4.0 * N * N));
        ck_assert_msg(fabs(p - c) <= h,
                      "gamma %llu/%llu: %.0f of %d, p = %.6g outside "
                      "[%.6g, %.6g]",
                      (unsigned long long)g[i][0], (unsigned long long)g[i][1], k, N, p,
                      c - h, c + h);
    }
    asec_rng_free(r);
}
END_TEST

START_TEST(test_ks_normal)
{
    asec_rng *r = seeded(530, "ks");
    double p = erfc(ZIG_R / sqrt(2.0)), k = 0, N = 1e6, z;

    ks_run(r, asec_rng_normal, normal_cdf, N, "asec_rng_normal");
    /* The ziggurat's tail beyond r, where KS has little power. */
    for (double i = 0; i < N; i++)
        if (fabs(asec_rng_normal(r)) > ZIG_R)
            k++;
    z = (k - N * p) / sqrt(N * p * (1 - p));
    ck_assert_msg(fabs(z) < Z_ALPHA,
                  "normal tail beyond %g: %.0f draws, expected %.1f "
                  "(z = %.2f)",
                  ZIG_R, k, N * p, z);
    asec_rng_free(r);
}
END_TEST

START_TEST(test_ks_laplace)
{
    asec_rng *r = seeded(531, "ks");

    ks_run(r, asec_rng_laplace, laplace_cdf, 1e6, "asec_rng_laplace");
    asec_rng_free(r);
}
END_TEST

/* Hole-freeness (RELIABILITY.md §0.1 #9): 1e7 released values, each an
 * exact integer multiple of g; and input bits below g change no output. */
START_TEST(test_lattice_holes)
{
    enum { N = 1000000, ROUNDS = 10 };
    asec_noise_options o = ASEC_NOISE_OPTIONS_INIT;
    asec_noise_result res;
    double *x = malloc(N * sizeof *x), *out = malloc(N * sizeof *out);
    asec_rng *data = seeded(540, "data"), *noise = seeded(541, "noise");
    size_t bad = 0;

    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(out);
    o.scale = 3.7;
    o.delta = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < N; i++)
            x[i] = (asec_rng_uniform(data) - 0.5) * 2000.0;
        ck_assert_int_eq(asec_noise_release(out, x, N, &o, noise, &res), ASEC_OK);
        for (size_t i = 0; i < N; i++)
            bad += !is_lattice(out[i], res.granularity);
    }
    ck_assert_msg(bad == 0, "%zu of %d outputs are off the lattice", bad, N * ROUNDS);
    ck_assert_double_eq(res.granularity, 0x1p-18); /* ceil(log2 3.7) - 20 */

    /* Same noise stream, inputs moved within their lattice cell: same
     * output bytes. */
    {
        asec_rng *n1 = seeded(542, "noise"), *n2 = seeded(542, "noise");
        double *y = malloc(N * sizeof *y), *out2 = malloc(N * sizeof *out2);
        double g = res.granularity;

        ck_assert_ptr_nonnull(y);
        ck_assert_ptr_nonnull(out2);
        for (size_t i = 0; i < N; i++)
            y[i] = round(x[i] / g) * g + (asec_rng_uniform(data) - 0.5) * 0.99 * g;
        ck_assert_int_eq(asec_noise_release(out, x, N, &o, n1, &res), ASEC_OK);
        ck_assert_int_eq(asec_noise_release(out2, y, N, &o, n2, &res), ASEC_OK);
        ck_assert_mem_eq(out, out2, N * sizeof *out);
        free(y);
        free(out2);
        asec_rng_free(n1);
        asec_rng_free(n2);
    }
    free(x);
    free(out);
    asec_rng_free(data);
    asec_rng_free(noise);
}
END_TEST

/* ------------------------------------------------------------ errors */

START_TEST(test_errors_samplers)
{
    asec_rng *r = seeded(600, "errors");
    int64_t y[4];
    int b[4];

    ck_assert_int_eq(asec_noise_bernoulli_exp(b, 4, r, 1, 0, ASEC_NOISE_PATH_AUTO),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_bernoulli_exp(b, 4, r, 1, 1, (asec_noise_path)7),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_bernoulli_exp(NULL, 4, r, 1, 1, ASEC_NOISE_PATH_AUTO),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_dlaplace(y, 4, r, 0, 1, ASEC_NOISE_PATH_AUTO),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_dlaplace(y, 4, r, 1, 0, ASEC_NOISE_PATH_AUTO),
                     ASEC_EINVAL);
    ck_assert_int_eq(
        asec_noise_dlaplace(y, 4, r, (1ULL << 52) + 1, 1, ASEC_NOISE_PATH_AUTO),
        ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_dgauss(y, 4, r, 0, 1, ASEC_NOISE_PATH_AUTO), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_dgauss(y, 4, r, 1, 0, ASEC_NOISE_PATH_AUTO), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_dgauss(y, 4, r, 1ULL << 62, 1, ASEC_NOISE_PATH_FAST),
                     ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "fast path"));
    /* n == 0 draws nothing. */
    ck_assert_int_eq(asec_noise_dgauss(NULL, 0, r, 1, 1, ASEC_NOISE_PATH_AUTO), ASEC_OK);
    ck_assert_int_eq(asec_rng_tell(r), 0);
    asec_rng_free(r);
    /* ASEC_ENUMERIC (a sample beyond int64) needs an event of probability
     * below 2^-2000 and cannot be provoked; both paths check it. */
}
END_TEST

START_TEST(test_errors_lattice)
{
    double g, s, x[3] = {1.0, NAN, 2.0}, out[3] = {7, 7, 7};
    int64_t v[3] = {5, 5, 5};

    ck_assert_int_eq(asec_noise_granularity(&g, 0.0, 20), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_granularity(&g, -1.0, 20), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_granularity(&g, NAN, 20), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_granularity(&g, INFINITY, 20), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_granularity(&g, 1.0, 0), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_granularity(&g, 1.0, 51), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_granularity(&g, 1e-300, 50), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_granularity(&g, 1e300, 1), ASEC_EINVAL);

    ck_assert_int_eq(asec_noise_snap(v, x, 3, 3.0), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_snap(v, x, 3, 0.0), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_snap(v, x, 3, 0.5), ASEC_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "x[1]"));
    x[1] = 0x1p52 * 0.5 + 1.0;
    ck_assert_int_eq(asec_noise_snap(v, x, 3, 0.5), ASEC_ELIMIT);
    ck_assert_int_eq(v[0], 5); /* untouched on failure */
    ck_assert_int_eq(asec_noise_snap(NULL, x, 3, 0.5), ASEC_EINVAL);

    v[1] = ((int64_t)1 << 53) + 1;
    ck_assert_int_eq(asec_noise_unsnap(out, v, 3, 0.5), ASEC_ELIMIT);
    ck_assert_double_eq(out[0], 7); /* untouched on failure */
    ck_assert_int_eq(asec_noise_unsnap(out, v, 3, 0.3), ASEC_EINVAL);
    v[1] = (int64_t)1 << 53;
    ck_assert_int_eq(asec_noise_unsnap(out, v, 3, 0x1p1000), ASEC_ELIMIT);

    ck_assert_int_eq(asec_noise_lattice_sensitivity(&s, 1, ASEC_NOISE_L2, 0, 0.5,
                                                    ASEC_NOISE_SNAP_QUERY),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_lattice_sensitivity(&s, 0, ASEC_NOISE_L2, 1, 0.5,
                                                    ASEC_NOISE_SNAP_QUERY),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_lattice_sensitivity(&s, 1, ASEC_NOISE_L2, 1, -0.5,
                                                    ASEC_NOISE_SNAP_QUERY),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_lattice_sensitivity(&s, 1, (asec_noise_norm)5, 1, 0.5,
                                                    ASEC_NOISE_SNAP_QUERY),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_lattice_sensitivity(&s, 1, ASEC_NOISE_L1, 1, 0.5,
                                                    (asec_noise_snapping)9),
                     ASEC_EINVAL);
    {
        const int64_t lim = (int64_t)1 << 62;
        int64_t acc[2] = {1, lim}, add[2] = {1, 1};
        int64_t acc2[1] = {INT64_MAX}, add2[1] = {INT64_MAX};

        ck_assert_int_eq(asec_noise_acc_add(acc, add, 2), ASEC_ELIMIT);
        ck_assert_ptr_nonnull(strstr(asec_errmsg(), "[1]"));
        ck_assert_int_eq(acc[0], 1); /* untouched on failure */
        ck_assert_int_eq(asec_noise_acc_add(acc2, add2, 1), ASEC_ELIMIT);
        acc[1] = -lim;
        add[1] = -1;
        ck_assert_int_eq(asec_noise_acc_add(acc, add, 2), ASEC_ELIMIT);
        ck_assert_int_eq(asec_noise_acc_add(NULL, add, 2), ASEC_EINVAL);
    }
    ck_assert_int_eq(asec_noise_acc_check(1 << 20, 1.0, 0x1p-45), ASEC_ELIMIT);
    ck_assert_int_eq(asec_noise_acc_check(10, 0.0, 0x1p-45), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_acc_check(10, 1.0, NAN), ASEC_EINVAL);

    ck_assert_int_eq(asec_noise_zcdp_epsilon(&s, -1.0, 1e-5), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_zcdp_epsilon(&s, NAN, 1e-5), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_zcdp_epsilon(&s, 1.0, 0.0), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_zcdp_epsilon(&s, 1.0, 1.0), ASEC_EINVAL);
}
END_TEST

START_TEST(test_errors_release)
{
    asec_noise_options o = ASEC_NOISE_OPTIONS_INIT, bad;
    asec_rng *r = seeded(601, "errors");
    double x[4] = {1, 2, 3, 4}, out[4] = {9, 9, 9, 9};

#define EXPECT(field_change, status)                                                     \
    do {                                                                                 \
        bad = o;                                                                         \
        field_change;                                                                    \
        ck_assert_int_eq(asec_noise_release(out, x, 4, &bad, r, NULL), (status));        \
        ck_assert_double_eq(out[0], 9);                                                  \
    } while (0)

    EXPECT(bad.version = 99, ASEC_EINVAL);
    EXPECT(bad.mech = (asec_noise_mech)4, ASEC_EINVAL);
    EXPECT(bad.norm = (asec_noise_norm)4, ASEC_EINVAL);
    EXPECT(bad.path = (asec_noise_path)4, ASEC_EINVAL);
    EXPECT(bad.sensitivity = 0, ASEC_EINVAL);
    EXPECT(bad.sensitivity = INFINITY, ASEC_EINVAL);
    EXPECT(bad.scale = -1, ASEC_EINVAL);
    EXPECT(bad.epsilon = 0, ASEC_EINVAL);
    EXPECT(bad.delta = 0, ASEC_EINVAL); /* Gaussian calibration needs delta */
    EXPECT(bad.delta = 1, ASEC_EINVAL);
    EXPECT(bad.granularity_bits = 31, ASEC_EINVAL);
    EXPECT(bad.granularity_bits = -2, ASEC_EINVAL);
    /* sigma just below 4 with 30 bits: sigma^2 ~ 2^60 lattice units, beyond
     * the fast path's 2 a b t^2 <= 2^120. */
    EXPECT((bad.scale = 3.99, bad.granularity_bits = 30, bad.path = ASEC_NOISE_PATH_FAST),
           ASEC_EINVAL);
    EXPECT((bad.mech = ASEC_NOISE_LAPLACE, bad.norm = ASEC_NOISE_L1), ASEC_EINVAL);
    EXPECT((bad.mech = ASEC_NOISE_LAPLACE, bad.delta = 0), ASEC_EINVAL); /* L2 norm */
    EXPECT((bad.mech = ASEC_NOISE_LAPLACE, bad.delta = 0, bad.norm = ASEC_NOISE_L1,
            bad.granularity_bits = 51),
           ASEC_EINVAL);
    x[2] = NAN;
    EXPECT((void)0, ASEC_ENUMERIC);
    x[2] = 1e30; /* beyond 2^52 g */
    EXPECT((void)0, ASEC_ELIMIT);
    x[2] = 3;
    ck_assert_int_eq(asec_noise_release(out, x, 0, &o, r, NULL), ASEC_EINVAL);
    ck_assert_int_eq(asec_noise_release(NULL, x, 4, &o, r, NULL), ASEC_EINVAL);
    /* No noise was drawn by any refused call. */
    ck_assert_int_eq(asec_rng_tell(r), 0);
    /* The GMP path takes what the fast path refuses. */
    bad = o;
    bad.scale = 3.99;
    bad.granularity_bits = 30;
    {
        asec_noise_result res;

        ck_assert_int_eq(asec_noise_release(out, x, 4, &bad, r, &res), ASEC_OK);
        ck_assert_int_eq(res.path, ASEC_NOISE_PATH_GMP);
    }
#undef EXPECT
    asec_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------ oom */

START_TEST(test_oom_release)
{
    asec_noise_options o = ASEC_NOISE_OPTIONS_INIT;
    asec_rng *r = seeded(700, "oom");
    double x[64], out[64];
    long n;
    int rc = ASEC_ENOMEM;

    for (int i = 0; i < 64; i++)
        x[i] = i;
    for (n = 0; n < 100; n++) {
        asec_debug_fail_alloc(n);
        rc = asec_noise_release(out, x, 64, &o, r, NULL);
        asec_debug_fail_alloc(-1);
        if (rc == ASEC_OK)
            break;
        ck_assert_int_eq(rc, ASEC_ENOMEM);
    }
    ck_assert_int_eq(rc, ASEC_OK);
    ck_assert_int_ge(n, 1); /* at least one allocation was exercised */
    asec_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------ long */

static asec_rng *
secure(void)
{
    asec_rng *r;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_secure(&r), ASEC_OK);
    return r;
}

START_TEST(test_long_chisq)
{
    /* _i: 0-2 discrete Gaussian, 3-4 discrete Laplace, as in the stats case */
    static const uint64_t p[][3] = {
        {1, 1, 4}, {1, 9, 1}, {1, 10000, 1}, {0, 2, 5}, {0, 37, 2}};
    asec_rng *r = secure();
    char what[80];

    snprintf(what, sizeof what, "long %s %llu/%llu, secure",
             p[_i][0] ? "discrete Gaussian" : "discrete Laplace",
             (unsigned long long)p[_i][1], (unsigned long long)p[_i][2]);
    chisq_run(r, (int)p[_i][0], p[_i][1], p[_i][2], 1e8, ASEC_NOISE_PATH_FAST, what);
    asec_rng_free(r);
}
END_TEST

START_TEST(test_long_ks)
{
    asec_rng *r = secure();

    ks_run(r, asec_rng_normal, normal_cdf, 1e8, "long asec_rng_normal, secure");
    ks_run(r, asec_rng_laplace, laplace_cdf, 1e8, "long asec_rng_laplace, secure");
    asec_rng_free(r);
}
END_TEST

static Suite *
noise_suite(void)
{
    Suite *s = suite_create("noise");
    TCase *core = tcase_create("core");
    TCase *equal = tcase_create("equal");
    TCase *stats = tcase_create("stats");
    TCase *errors = tcase_create("errors");
    TCase *oom = tcase_create("oom");

    tcase_add_test(core, test_granularity);
    tcase_add_test(core, test_snap_unsnap);
    tcase_add_test(core, test_lattice_sensitivity);
    tcase_add_test(core, test_accumulator);
    tcase_add_test(core, test_zcdp_epsilon);
    tcase_add_test(core, test_release_gaussian);
    tcase_add_test(core, test_release_laplace);
    tcase_add_test(core, test_plan_matches_release);
    tcase_add_test(core, test_auto_falls_back);
    suite_add_tcase(s, core);

    tcase_add_test(equal, test_equal_bernoulli);
    tcase_add_test(equal, test_equal_dlaplace);
    tcase_add_test(equal, test_equal_dgauss);
    tcase_add_test(equal, test_equal_release_paths);
    tcase_set_timeout(equal, 60);
    suite_add_tcase(s, equal);

    /* Timeouts only stop a hung test; nothing asserts on time. */
    tcase_add_loop_test(stats, test_chisq_dgauss, 0, 3);
    tcase_add_loop_test(stats, test_chisq_dlaplace, 0, 2);
    tcase_add_loop_test(stats, test_chisq_fast, 0, 2);
    tcase_add_test(stats, test_bernoulli_wilson);
    tcase_add_test(stats, test_ks_normal);
    tcase_add_test(stats, test_ks_laplace);
    tcase_add_test(stats, test_lattice_holes);
    tcase_set_timeout(stats, 120);
    suite_add_tcase(s, stats);

    tcase_add_test(errors, test_errors_samplers);
    tcase_add_test(errors, test_errors_lattice);
    tcase_add_test(errors, test_errors_release);
    suite_add_tcase(s, errors);

    tcase_add_test(oom, test_oom_release);
    suite_add_tcase(s, oom);

    if (long_tests()) {
        TCase *lng = tcase_create("long");

        tcase_add_loop_test(lng, test_long_chisq, 0, 5);
        tcase_add_test(lng, test_long_ks);
        tcase_set_timeout(lng, 1200);
        suite_add_tcase(s, lng);
    }
    return s;
}

int
main(void)
{
    return asec_test_run(noise_suite());
}
