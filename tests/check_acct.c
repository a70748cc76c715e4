/* check_acct.c - the privacy accountant (attnsec/acct.h).
 *
 * TCases:
 *   core       ledger (merging, per-step updates, schedules), queries leave
 *              the state unchanged, checkpoints round-trip, DpEvent trees,
 *              closed forms (MATH.md §9.3), composition theorems
 *   reference  RDP against an independent MPFR evaluation (the signed
 *              two-sided series of Mironov-Talwar-Zhang 2019 Sec. 3.3 for
 *              fractional orders, accelerated by repeated averaging of the
 *              alternating tail, and the exact binomial sum for integer
 *              orders, 128-bit): log A_alpha per order within 1e-10
 *              relative or 1e-15 absolute, and epsilon(delta) within 1e-9
 *              relative on a grid of (q, sigma, T, delta) that includes
 *              q = 1, q = 1e-6, sigma = 0.3 and sigma = 100.  Also the
 *              WBK19 Thm 27 bound against MPFR with exact forward
 *              differences; the anchor libraries' own test values
 *              (ACCOUNTANT.md §6); the published values in legacy mode
 *              (§7.1); the RDP calibrations (§7.3).  Without MPFR (configure
 *              did not find it) the MPFR comparisons are skipped and said so.
 *   pld        PLD brackets against the closed forms, the anchors, and RDP
 *   property   monotonicity in sigma, steps and q; delta(epsilon(delta))
 *              and calibration round trips; T = 1e6 completes
 *   errors     every status the header documents, malformed event files
 *   oom        every allocating entry point under the failing allocator
 *   long       only with ASEC_LONG_TESTS=1: 1e4 random property checks
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_MPFR
#include <mpfr.h>
#endif

#include "attnsec/attnsec.h"
#include "testutil.h"

static int
long_tests(void)
{
    const char *v = getenv("ASEC_LONG_TESTS");

    return v != NULL && strcmp(v, "1") == 0;
}

static asec_acct *
mk(const asec_acct_options *o)
{
    asec_acct *a = NULL;

    ck_assert_int_eq(asec_acct_alloc(&a, o), ASEC_OK);
    return a;
}

static asec_acct *
sgm(double q, double sigma, uint64_t T, asec_acct_grid grid, int legacy)
{
    asec_acct_options o = ASEC_ACCT_OPTIONS_INIT;
    asec_acct *a;

    o.grid = grid;
    o.legacy = legacy;
    a = mk(&o);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, q, sigma, T), ASEC_OK);
    return a;
}

static double
eps_of(const asec_acct *a, asec_acct_method m, double delta)
{
    asec_acct_result r;
    int rc = asec_acct_epsilon(a, m, delta, &r);

    ck_assert_msg(rc == ASEC_OK, "epsilon: %s", asec_errmsg());
    ck_assert(r.epsilon >= 0.0 && !isnan(r.epsilon));
    return r.epsilon;
}

static double
rdp_eps(double q, double sigma, uint64_t T, double delta, asec_acct_grid grid, int legacy)
{
    asec_acct *a = sgm(q, sigma, T, grid, legacy);
    double e = eps_of(a, ASEC_ACCT_RDP, delta);

    asec_acct_free(a);
    return e;
}

#define CLOSE(x, want, rtol, what)                                                       \
    ck_assert_msg(fabs((x) - (want)) <= (rtol)*fabs(want), "%s: got %.17g want %.17g",   \
                  (what), (x), (want))

static char *
slurp_fixture(const char *name, size_t *len)
{
    char rel[256];
    char *s;

    snprintf(rel, sizeof rel, "fixtures/acct/%s", name);
    s = asec_test_slurp(asec_test_datafile(rel), len);
    ck_assert_msg(s != NULL, "cannot read %s", rel);
    return s;
}

/* ------------------------------------------------------------ core */

START_TEST(test_ledger)
{
    asec_acct *a = mk(NULL);
    asec_acct_event ev;
    asec_acct_segment seg[3] = {{0.01, 1.0, 10}, {0.01, 1.0, 5}, {0.02, 0.9, 7}};

    ck_assert_uint_eq(asec_acct_num_events(a), 0);
    ck_assert_double_eq(eps_of(a, ASEC_ACCT_RDP, 1e-5), 0.0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(asec_acct_step(a, 0.01, 1.0), ASEC_OK);
    ck_assert_uint_eq(asec_acct_num_events(a), 1);
    ck_assert_int_eq(asec_acct_event_at(a, 0, &ev), ASEC_OK);
    ck_assert_int_eq(ev.kind, ASEC_ACCT_EV_POISSON_GAUSSIAN);
    ck_assert_uint_eq(ev.count, 100);
    /* Same as adding 100 at once. */
    {
        asec_acct *b = sgm(0.01, 1.0, 100, ASEC_ACCT_GRID_DP_ACCOUNTING, 0);

        ck_assert_double_eq(eps_of(a, ASEC_ACCT_RDP, 1e-5),
                            eps_of(b, ASEC_ACCT_RDP, 1e-5));
        asec_acct_free(b);
    }
    ck_assert_int_eq(asec_acct_add_schedule(a, seg, 3), ASEC_OK);
    ck_assert_uint_eq(asec_acct_num_events(a), 2); /* 10 + 5 merged into the first */
    ck_assert_int_eq(asec_acct_event_at(a, 0, &ev), ASEC_OK);
    ck_assert_uint_eq(ev.count, 115);
    /* q = 0 costs nothing; q = 1 is a plain Gaussian. */
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, 0.0, 1.0, 3), ASEC_OK);
    ck_assert_uint_eq(asec_acct_num_events(a), 2);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, 1.0, 3.0, 3), ASEC_OK);
    ck_assert_int_eq(asec_acct_event_at(a, 2, &ev), ASEC_OK);
    ck_assert_int_eq(ev.kind, ASEC_ACCT_EV_GAUSSIAN);
    asec_acct_free(a);
    asec_acct_free(NULL);
}
END_TEST

START_TEST(test_queries_do_not_change_state)
{
    asec_acct *a = sgm(0.01, 1.1, 1000, ASEC_ACCT_GRID_DP_ACCOUNTING, 0);
    char *j1, *j2;
    asec_acct_result r;

    ck_assert_int_eq(asec_acct_to_json(a, &j1), ASEC_OK);
    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_RDP, 1e-5, &r), ASEC_OK);
    ck_assert_int_eq(asec_acct_delta(a, ASEC_ACCT_RDP, 1.0, &r), ASEC_OK);
    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_GDP_CLT, 1e-5, &r), ASEC_OK);
    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_ADVANCED, 1e-5, &r), ASEC_OK);
    ck_assert_int_eq(asec_acct_to_json(a, &j2), ASEC_OK);
    ck_assert_str_eq(j1, j2);
    asec_acct_json_free(j1);
    asec_acct_json_free(j2);
    asec_acct_free(a);
}
END_TEST

START_TEST(test_checkpoint_roundtrip)
{
    asec_acct_options o = ASEC_ACCT_OPTIONS_INIT;
    double ords[] = {1.5, 2.0, 3.25, 64.0};
    asec_acct_event ev = {ASEC_ACCT_EV_APPROX, 1.0, 0.0, 0.3, 1e-7, 0.0, 0.0, 2};
    asec_acct_event z = {ASEC_ACCT_EV_ZCDP, 1.0, 0.0, 0.0, 0.0, 0.01, 0.001, 3};
    asec_acct *a, *b;
    char *j1, *j2;

    o.orders = ords;
    o.n_orders = 4;
    o.legacy = 1;
    a = mk(&o);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, 0.1 / 3.0, 0.7 + 1e-13, 12345),
                     ASEC_OK);
    ck_assert_int_eq(asec_acct_add(a, &ev), ASEC_OK);
    ck_assert_int_eq(asec_acct_add(a, &z), ASEC_OK);
    ck_assert_int_eq(asec_acct_add_gaussian(a, 5.0, (uint64_t)1 << 40), ASEC_OK);
    ck_assert_int_eq(asec_acct_to_json(a, &j1), ASEC_OK);
    ck_assert_int_eq(asec_acct_from_json(&b, j1, strlen(j1)), ASEC_OK);
    ck_assert_int_eq(asec_acct_to_json(b, &j2), ASEC_OK);
    ck_assert_str_eq(j1, j2);
    ck_assert_double_eq(eps_of(a, ASEC_ACCT_RDP, 1e-5), eps_of(b, ASEC_ACCT_RDP, 1e-5));
    asec_acct_json_free(j1);
    asec_acct_json_free(j2);
    asec_acct_free(a);
    asec_acct_free(b);
    /* Clone keeps ledger and caches. */
    a = sgm(0.02, 0.8, 300, ASEC_ACCT_GRID_OPACUS, 0);
    (void)eps_of(a, ASEC_ACCT_RDP, 1e-6);
    ck_assert_int_eq(asec_acct_clone(&b, a), ASEC_OK);
    ck_assert_double_eq(eps_of(a, ASEC_ACCT_RDP, 1e-6), eps_of(b, ASEC_ACCT_RDP, 1e-6));
    asec_acct_free(a);
    asec_acct_free(b);
}
END_TEST

START_TEST(test_events_json)
{
    asec_acct *a = mk(NULL), *b = mk(NULL);
    size_t len;
    char *s = slurp_fixture("dpsgd.json", &len);
    asec_acct_event ev;

    ck_assert_int_eq(asec_acct_add_events_json(a, s, len), ASEC_OK);
    free(s);
    ck_assert_uint_eq(asec_acct_num_events(a), 2);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(b, 0.01, 1.1, 1000), ASEC_OK);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(b, 0.02, 1.3, 500), ASEC_OK);
    ck_assert_double_eq(eps_of(a, ASEC_ACCT_RDP, 1e-5), eps_of(b, ASEC_ACCT_RDP, 1e-5));
    asec_acct_free(a);
    asec_acct_free(b);

    /* dp_accounting names; a sampled composition of Gaussians folds into one
     * noise multiplier: 1/s^2 = 1/4 + 3/4 -> s = 1. */
    a = mk(NULL);
    s = slurp_fixture("mixed.json", &len);
    ck_assert_int_eq(asec_acct_add_events_json(a, s, len), ASEC_OK);
    free(s);
    ck_assert_uint_eq(asec_acct_num_events(a), 4);
    ck_assert_int_eq(asec_acct_event_at(a, 3, &ev), ASEC_OK);
    ck_assert_int_eq(ev.kind, ASEC_ACCT_EV_POISSON_GAUSSIAN);
    CLOSE(ev.sigma, 1.0, 1e-15, "folded sigma");
    ck_assert_int_eq(asec_acct_event_at(a, 2, &ev), ASEC_OK);
    ck_assert_int_eq(ev.kind, ASEC_ACCT_EV_APPROX);
    asec_acct_free(a);
}
END_TEST

START_TEST(test_closed_forms)
{
    double mu, s, e, d, ea, da;
    asec_acct *a;
    asec_acct_result r;

    /* MATH.md §9.3. */
    ck_assert_int_eq(asec_acct_gaussian_mu(1.0, 1e-5, &mu), ASEC_OK);
    CLOSE(mu, 0.268051, 2e-6, "mu*(1, 1e-5)");
    CLOSE(1.0 / mu, 3.7306, 2e-5, "analytic sigma(1, 1e-5)");
    ck_assert_int_eq(asec_acct_gaussian_mu(0.5, 1e-5, &mu), ASEC_OK);
    CLOSE(1.0 / mu, 7.0318, 2e-5, "analytic sigma(0.5, 1e-5)");
    CLOSE(mu, 0.142211, 4e-6, "mu*(0.5)");
    ck_assert_int_eq(asec_acct_gaussian_mu(8.0, 1e-5, &mu), ASEC_OK);
    CLOSE(1.0 / mu, 0.6002, 1e-4, "analytic sigma(8, 1e-5)");
    ck_assert_int_eq(asec_acct_gaussian_mu(2.0, 1e-5, &mu), ASEC_OK);
    CLOSE(mu, 0.501552, 2e-6, "mu*(2)");
    /* The answer is conservative: delta(eps; mu) <= delta. */
    ck_assert_int_eq(asec_acct_gaussian_delta(mu, 2.0, &d), ASEC_OK);
    ck_assert(d <= 1e-5);
    ck_assert_int_eq(asec_acct_classic_sigma(1.0, 1e-5, &s), ASEC_OK);
    CLOSE(s, 4.844805263, 1e-9, "classical sigma(1, 1e-5)");
    ck_assert_int_eq(asec_acct_classic_sigma(0.5, 1e-5, &s), ASEC_OK);
    CLOSE(s, 9.689610525, 1e-9, "classical sigma(0.5, 1e-5)");
    ck_assert_int_eq(asec_acct_gaussian_delta(1.0 / 4.8448, 1.0, &d), ASEC_OK);
    CLOSE(d, 4.11e-8, 3e-3, "exact delta at the classical sigma");
    ck_assert_int_eq(asec_acct_gaussian_epsilon(10.0 / 4.0, 1e-5, &e), ASEC_OK);
    CLOSE(e, 13.2067, 1e-5, "GDP T=100 sigma=4");
    ck_assert_int_eq(asec_acct_gaussian_epsilon(sqrt(1000.0) / 10.0, 1e-5, &e), ASEC_OK);
    CLOSE(e, 17.8566, 1e-5, "GDP T=1000 sigma=10");
    /* epsilon and delta are inverse to 1e-12. */
    ck_assert_int_eq(asec_acct_gaussian_delta(sqrt(1000.0) / 10.0, e, &d), ASEC_OK);
    CLOSE(d, 1e-5, 1e-11, "delta(epsilon(delta))");
    ck_assert_int_eq(asec_acct_advanced(0.1, 0.0, 100, 1e-5, &ea, &da), ASEC_OK);
    CLOSE(ea, 5.8502, 2e-5, "advanced composition");
    CLOSE(da, 1e-5, 1e-12, "advanced composition delta");
    /* dp_accounting's PLD test: Gaussian sigma = sqrt(3), 3 steps,
     * delta(1) = 0.126936 (exact 0.1269367). */
    a = mk(NULL);
    ck_assert_int_eq(asec_acct_add_gaussian(a, sqrt(3.0), 3), ASEC_OK);
    ck_assert_int_eq(asec_acct_delta(a, ASEC_ACCT_EXACT, 1.0, &r), ASEC_OK);
    CLOSE(r.delta, 0.1269367, 1e-6, "exact delta(1)");
    ck_assert_int_eq(asec_acct_delta(a, ASEC_ACCT_AUTO, 1.0, &r), ASEC_OK);
    ck_assert_int_eq(r.method, ASEC_ACCT_EXACT);
    asec_acct_free(a);
    /* Opacus GDP test: 6.59 < epsilon < 6.60, flagged as an estimate. */
    a = sgm(0.04, 1.5, 2249, ASEC_ACCT_GRID_DP_ACCOUNTING, 0);
    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_GDP_CLT, 1e-5, &r), ASEC_OK);
    ck_assert(r.epsilon > 6.59 && r.epsilon < 6.60);
    ck_assert_int_eq(r.is_bound, 0);
    /* The composition theorems are valid and looser than RDP. */
    ck_assert(eps_of(a, ASEC_ACCT_BASIC, 1e-5) > eps_of(a, ASEC_ACCT_RDP, 1e-5));
    ck_assert(eps_of(a, ASEC_ACCT_ADVANCED, 1e-5) > eps_of(a, ASEC_ACCT_RDP, 1e-5));
    ck_assert(eps_of(a, ASEC_ACCT_ADVANCED, 1e-5) <= eps_of(a, ASEC_ACCT_BASIC, 1e-5));
    asec_acct_free(a);
    ck_assert_str_eq(asec_acct_method_name(ASEC_ACCT_PLD), "pld");
    ck_assert_str_eq(asec_acct_relation_name(ASEC_ACCT_REPLACE_ONE), "replace-one");
}
END_TEST

START_TEST(test_other_events)
{
    asec_acct *a = mk(NULL);
    asec_acct_event pure = {ASEC_ACCT_EV_PURE, 1.0, 0.0, 0.5, 0.0, 0.0, 0.0, 4};
    asec_acct_event lap = {ASEC_ACCT_EV_LAPLACE, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1};
    asec_acct_event plap = {
        ASEC_ACCT_EV_POISSON_LAPLACE, 0.2, 0.5, 0.0, 0.0, 0.0, 0.0, 3};
    asec_acct_event ed = {ASEC_ACCT_EV_APPROX, 1.0, 0.0, 1.0, 1e-3, 0.0, 0.0, 1};
    asec_acct_event zc = {ASEC_ACCT_EV_ZCDP, 1.0, 0.0, 0.0, 0.0, 0.125, 0.0, 1};
    asec_acct_result r;
    double e;

    /* Pure DP: the RDP curve never exceeds the pure epsilon, so the RDP
     * epsilon is at most the sum plus the conversion's cost at the largest
     * order, (log(1/delta) + log 1024) / 1023. */
    ck_assert_int_eq(asec_acct_add(a, &pure), ASEC_OK);
    ck_assert(eps_of(a, ASEC_ACCT_RDP, 1e-9) <= 2.0 + (log(1e9) + log(1024.0)) / 1023.0);
    ck_assert_double_eq(eps_of(a, ASEC_ACCT_BASIC, 1e-9), 2.0);
    asec_acct_free(a);
    /* Laplace b = 2 is 0.5-DP. */
    a = mk(NULL);
    ck_assert_int_eq(asec_acct_add(a, &lap), ASEC_OK);
    ck_assert(eps_of(a, ASEC_ACCT_RDP, 1e-9) <= 0.5 + (log(1e9) + log(1024.0)) / 1023.0);
    asec_acct_free(a);
    /* Subsampled Laplace: below the amplified pure bound log(1 + q(e^2 - 1)). */
    a = mk(NULL);
    ck_assert_int_eq(asec_acct_add(a, &plap), ASEC_OK);
    e = eps_of(a, ASEC_ACCT_RDP, 1e-9);
    ck_assert(e > 0.0 &&
              e <= 3.0 * log1p(0.2 * expm1(2.0)) + (log(1e9) + log(1024.0)) / 1023.0);
    asec_acct_free(a);
    /* (eps, delta): delta below the event's delta is infinite epsilon. */
    a = mk(NULL);
    ck_assert_int_eq(asec_acct_add(a, &ed), ASEC_OK);
    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_RDP, 1e-4, &r), ASEC_OK);
    ck_assert(isinf(r.epsilon));
    ck_assert(eps_of(a, ASEC_ACCT_RDP, 2e-3) <= 1.0 + 1e-12);
    asec_acct_free(a);
    /* rho-zCDP equals the Gaussian of sigma = 1/sqrt(2 rho) = 2 under RDP. */
    a = mk(NULL);
    ck_assert_int_eq(asec_acct_add(a, &zc), ASEC_OK);
    {
        asec_acct *g = mk(NULL);

        ck_assert_int_eq(asec_acct_add_gaussian(g, 2.0, 1), ASEC_OK);
        CLOSE(eps_of(a, ASEC_ACCT_RDP, 1e-6), eps_of(g, ASEC_ACCT_RDP, 1e-6), 1e-14,
              "zCDP = Gaussian");
        asec_acct_free(g);
    }
    asec_acct_free(a);
}
END_TEST

/* ------------------------------------------------------------ reference */

#ifdef HAVE_MPFR
#define MPB 128

/* log A_alpha of the Poisson-subsampled Gaussian in MPFR; *err gets the
 * relative change of the last averaging level (fractional orders). */
static double
mp_log_a(double qd, double sd, double alpha, double *err)
{
    mpfr_t q, s, a, z0, t, u, v, c, sum, term, lq, l1q, r2s, s2;
    double res;

    mpfr_inits2(MPB, q, s, a, z0, t, u, v, c, sum, term, lq, l1q, r2s, s2, (mpfr_ptr)0);
    mpfr_set_d(q, qd, MPFR_RNDN);
    mpfr_set_d(s, sd, MPFR_RNDN);
    mpfr_set_d(a, alpha, MPFR_RNDN);
    mpfr_sqr(s2, s, MPFR_RNDN);
    mpfr_mul_2ui(s2, s2, 1, MPFR_RNDN); /* 2 s^2 */
    *err = 0.0;
    if (qd == 1.0) {
        /* log A = alpha (alpha - 1) / (2 s^2) */
        mpfr_sub_ui(t, a, 1, MPFR_RNDN);
        mpfr_mul(t, t, a, MPFR_RNDN);
        mpfr_div(sum, t, s2, MPFR_RNDN);
        res = mpfr_get_d(sum, MPFR_RNDN);
        goto out;
    }
    mpfr_log(lq, q, MPFR_RNDN);
    mpfr_ui_sub(t, 1, q, MPFR_RNDN);
    mpfr_log(l1q, t, MPFR_RNDN);
    mpfr_set_zero(sum, 1);
    if (alpha == floor(alpha)) {
        long n = (long)alpha;

        mpfr_set_ui(c, 1, MPFR_RNDN);
        for (long i = 0; i <= n; i++) {
            if (i > 0) {
                mpfr_mul_si(c, c, n - i + 1, MPFR_RNDN);
                mpfr_div_si(c, c, i, MPFR_RNDN);
            }
            mpfr_mul_si(t, lq, i, MPFR_RNDN);
            mpfr_mul_si(u, l1q, n - i, MPFR_RNDN);
            mpfr_add(t, t, u, MPFR_RNDN);
            mpfr_set_si(v, i * i - i, MPFR_RNDN);
            mpfr_div(v, v, s2, MPFR_RNDN);
            mpfr_add(t, t, v, MPFR_RNDN);
            mpfr_exp(t, t, MPFR_RNDN);
            mpfr_mul(t, t, c, MPFR_RNDN);
            mpfr_add(sum, sum, t, MPFR_RNDN);
        }
    } else {
        enum { K = 14, NMAX = 6000 };
        mpfr_t ps[K + 1];
        int np = 0;

        for (int k = 0; k <= K; k++)
            mpfr_init2(ps[k], MPB);
        /* z0 = s^2 log(1/q - 1) + 1/2 */
        mpfr_ui_div(t, 1, q, MPFR_RNDN);
        mpfr_sub_ui(t, t, 1, MPFR_RNDN);
        mpfr_log(t, t, MPFR_RNDN);
        mpfr_sqr(u, s, MPFR_RNDN);
        mpfr_mul(z0, t, u, MPFR_RNDN);
        mpfr_set_d(t, 0.5, MPFR_RNDN);
        mpfr_add(z0, z0, t, MPFR_RNDN);
        mpfr_sqrt_ui(r2s, 2, MPFR_RNDN);
        mpfr_mul(r2s, r2s, s, MPFR_RNDN);
        mpfr_set_ui(c, 1, MPFR_RNDN); /* C(alpha, i), signed */
        for (long i = 0; i < NMAX; i++) {
            if (i > 0) {
                mpfr_sub_si(t, a, i - 1, MPFR_RNDN);
                mpfr_mul(c, c, t, MPFR_RNDN);
                mpfr_div_si(c, c, i, MPFR_RNDN);
            }
            /* q^i (1-q)^(a-i) e^{(i^2-i)/(2s^2)} erfc((i - z0)/(sqrt2 s)) / 2 */
            mpfr_mul_si(t, lq, i, MPFR_RNDN);
            mpfr_sub_si(u, a, i, MPFR_RNDN);
            mpfr_mul(u, l1q, u, MPFR_RNDN);
            mpfr_add(t, t, u, MPFR_RNDN);
            mpfr_set_si(v, i * i - i, MPFR_RNDN);
            mpfr_div(v, v, s2, MPFR_RNDN);
            mpfr_add(t, t, v, MPFR_RNDN);
            mpfr_exp(t, t, MPFR_RNDN);
            mpfr_set_si(v, i, MPFR_RNDN);
            mpfr_sub(v, v, z0, MPFR_RNDN);
            mpfr_div(v, v, r2s, MPFR_RNDN);
            mpfr_erfc(v, v, MPFR_RNDN);
            mpfr_mul(t, t, v, MPFR_RNDN);
            mpfr_div_2ui(term, t, 1, MPFR_RNDN);
            /* q^(a-i) (1-q)^i e^{((a-i)^2-(a-i))/(2s^2)} erfc((z0-(a-i))/(sqrt2 s)) / 2
             */
            mpfr_sub_si(v, a, i, MPFR_RNDN); /* j = a - i */
            mpfr_mul(t, lq, v, MPFR_RNDN);
            mpfr_mul_si(u, l1q, i, MPFR_RNDN);
            mpfr_add(t, t, u, MPFR_RNDN);
            mpfr_sqr(u, v, MPFR_RNDN);
            mpfr_sub(u, u, v, MPFR_RNDN);
            mpfr_div(u, u, s2, MPFR_RNDN);
            mpfr_add(t, t, u, MPFR_RNDN);
            mpfr_exp(t, t, MPFR_RNDN);
            mpfr_sub(u, z0, v, MPFR_RNDN);
            mpfr_div(u, u, r2s, MPFR_RNDN);
            mpfr_erfc(u, u, MPFR_RNDN);
            mpfr_mul(t, t, u, MPFR_RNDN);
            mpfr_div_2ui(t, t, 1, MPFR_RNDN);
            mpfr_add(term, term, t, MPFR_RNDN);
            mpfr_mul(term, term, c, MPFR_RNDN);
            mpfr_add(sum, sum, term, MPFR_RNDN);
            if (np <= K) {
                mpfr_set(ps[np++], sum, MPFR_RNDN);
            } else {
                for (int k = 0; k < K; k++)
                    mpfr_swap(ps[k], ps[k + 1]);
                mpfr_set(ps[K], sum, MPFR_RNDN);
            }
            if (i > alpha + 30 && i > 60) {
                mpfr_abs(t, term, MPFR_RNDN);
                mpfr_abs(u, sum, MPFR_RNDN);
                mpfr_mul_2si(u, u, -120, MPFR_RNDN);
                if (mpfr_cmp(t, u) < 0 || i > 400)
                    break; /* converged, or leave the rest to averaging */
            }
        }
        /* Repeated averaging of the last K+1 partial sums: the tail
         * alternates with smooth magnitudes, so each level gains a power of
         * 1/i (Euler-van Wijngaarden). */
        mpfr_set_zero(t, 1);
        for (int lvl = 0; lvl < K; lvl++) {
            if (lvl == K - 1)
                mpfr_sub(t, ps[1], ps[0], MPFR_RNDN);
            for (int k = 0; k < K - lvl; k++) {
                mpfr_add(ps[k], ps[k], ps[k + 1], MPFR_RNDN);
                mpfr_div_2ui(ps[k], ps[k], 1, MPFR_RNDN);
            }
        }
        mpfr_set(sum, ps[0], MPFR_RNDN);
        mpfr_div(t, t, sum, MPFR_RNDN);
        *err = fabs(mpfr_get_d(t, MPFR_RNDN));
        for (int k = 0; k <= K; k++)
            mpfr_clear(ps[k]);
    }
    mpfr_log(sum, sum, MPFR_RNDN);
    res = mpfr_get_d(sum, MPFR_RNDN);
out:
    mpfr_clears(q, s, a, z0, t, u, v, c, sum, term, lq, l1q, r2s, s2, (mpfr_ptr)0);
    return res;
}

/* The improved conversion in long double, from an MPFR curve. */
static double
mp_epsilon(double q, double sigma, double T, double delta, const double *orders, size_t n)
{
    long double best = INFINITY;

    for (size_t i = 0; i < n; i++) {
        double err;
        long double a = orders[i];
        long double r = (long double)T * mp_log_a(q, sigma, orders[i], &err) / (a - 1.0L);
        long double e;

        ck_assert_msg(err < 1e-14, "MPFR series did not settle: q %g s %g a %g", q, sigma,
                      orders[i]);
        if (r <= 0.0L || (long double)delta * delta + expm1l(-r) > 0.0L)
            e = 0.0L;
        else if (a > 1.01L)
            e = r + log1pl(-1.0L / a) - (logl(delta) + logl(a)) / (a - 1.0L);
        else
            e = INFINITY;
        if (e < best)
            best = e;
    }
    return best < 0.0L ? 0.0 : (double)best;
}
#endif /* HAVE_MPFR */

START_TEST(test_mpfr_log_a)
{
#ifdef HAVE_MPFR
    static const double qs[] = {0.9, 0.5, 0.1, 1e-2, 1e-3, 1e-6};
    static const double ss[] = {0.3, 1.1, 4.0, 100.0};
    static const double as[] = {1.1, 1.7, 2.5, 4.3, 10.9, 2.0, 13.0, 256.0};

    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
        for (size_t j = 0; j < sizeof ss / sizeof ss[0]; j++)
            for (size_t k = 0; k < sizeof as / sizeof as[0]; k++) {
                asec_acct_options o = ASEC_ACCT_OPTIONS_INIT;
                asec_acct *a;
                double err, ref = mp_log_a(qs[i], ss[j], as[k], &err), r;
                size_t n;

                o.orders = &as[k];
                o.n_orders = 1;
                a = mk(&o);
                ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, qs[i], ss[j], 1),
                                 ASEC_OK);
                ck_assert_int_eq(asec_acct_rdp(a, NULL, &r, 1, &n), ASEC_OK);
                r *= as[k] - 1.0; /* log A */
                ck_assert_msg(fabs(r - ref) <= fmax(1e-10 * fabs(ref), 1e-15),
                              "log A q %g s %g a %g: %.17g vs MPFR %.17g", qs[i], ss[j],
                              as[k], r, ref);
                asec_acct_free(a);
            }
#else
    fprintf(stderr, "check_acct: MPFR not available, skipping the MPFR reference\n");
#endif
}
END_TEST

/* Small sigma and large fractional orders: the accountant sums only the
 * two windows of the lattice around z = 0 and z = alpha (acct_rdp.c,
 * window_pays: the whole lattice has more than 10x their points for each
 * case here).  The MPFR series does not use the lattice at all.  The
 * orders of one event share window 0, built for the largest of them, so
 * the last case asks for two windowed orders at once. */
START_TEST(test_mpfr_log_a_windowed)
{
#ifdef HAVE_MPFR
    static const struct {
        double q, s, a[2];
    } cases[] = {
        {0.01, 0.1, {100.5, 0}},   {0.5, 0.15, {150.5, 0}},     {1e-3, 0.2, {250.5, 0}},
        {0.1, 0.25, {350.25, 0}},  {0.9, 0.3, {350.5, 0}},      {1e-6, 0.1, {120.75, 0}},
        {0.05, 0.15, {110.5, 330.5}},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        asec_acct_options o = ASEC_ACCT_OPTIONS_INIT;
        asec_acct *a;
        double r[2];
        size_t n;

        o.orders = cases[i].a;
        o.n_orders = cases[i].a[1] > 0.0 ? 2 : 1;
        a = mk(&o);
        ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, cases[i].q, cases[i].s, 1),
                         ASEC_OK);
        ck_assert_int_eq(asec_acct_rdp(a, NULL, r, o.n_orders, &n), ASEC_OK);
        for (size_t k = 0; k < n; k++) {
            double err, ref = mp_log_a(cases[i].q, cases[i].s, cases[i].a[k], &err);
            double got = r[k] * (cases[i].a[k] - 1.0); /* log A */

            ck_assert_msg(err < 1e-14, "MPFR series did not settle: case %zu", i);
            ck_assert_msg(fabs(got - ref) <= 1e-10 * fabs(ref),
                          "log A q %g s %g a %g: %.17g vs MPFR %.17g", cases[i].q,
                          cases[i].s, cases[i].a[k], got, ref);
        }
        asec_acct_free(a);
    }
#else
    fprintf(stderr, "check_acct: MPFR not available, skipping the MPFR reference\n");
#endif
}
END_TEST

START_TEST(test_mpfr_epsilon)
{
#ifdef HAVE_MPFR
    static const struct {
        double q, s, T, d;
    } cases[] = {
        {0.01, 1.1, 1000, 1e-5}, {1.0, 0.3, 10, 1e-5},
        {1e-6, 1.0, 1e6, 1e-6},  {0.5, 0.3, 3, 1e-5},
        {0.1, 100.0, 1e5, 1e-9}, {256.0 / 60000, 1.1, 14063, 1e-5},
        {1e-3, 0.7, 1e5, 1e-9},  {0.04, 1.5, 2250, 1e-5},
        {1.0, 100.0, 1, 1e-5},
    };
    double orders[160];
    size_t n;
    asec_acct *a = mk(NULL);

    ck_assert_int_eq(asec_acct_rdp(a, orders, NULL, 160, &n), ASEC_OK);
    ck_assert_uint_eq(n, 156);
    asec_acct_free(a);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double ref =
            mp_epsilon(cases[i].q, cases[i].s, cases[i].T, cases[i].d, orders, n);
        double got = rdp_eps(cases[i].q, cases[i].s, (uint64_t)cases[i].T, cases[i].d,
                             ASEC_ACCT_GRID_DP_ACCOUNTING, 0);

        ck_assert_msg(fabs(got - ref) <= 1e-9 * fmax(1.0, ref),
                      "case %zu: epsilon %.17g vs MPFR %.17g", i, got, ref);
    }
#else
    fprintf(stderr, "check_acct: MPFR not available, skipping the MPFR reference\n");
#endif
}
END_TEST

#ifdef HAVE_MPFR
/* WBK19 Thm 27 in MPFR with the forward differences as exact alternating
 * sums at 4096 bits (the cancellation costs up to ~1200 bits here). */
static double
mp_wor_log_a(double qd, double sd, long n)
{
    mpfr_t q, s2, acc, t, u, c, b[2], best, two;
    long maxl = n + 1;
    mpfr_t *B;
    double res;

    mpfr_inits2(4096, q, s2, acc, t, u, c, b[0], b[1], best, two, (mpfr_ptr)0);
    B = malloc((size_t)(maxl + 2) * sizeof *B);
    mpfr_set_d(q, qd, MPFR_RNDN);
    mpfr_set_d(s2, sd, MPFR_RNDN);
    mpfr_sqr(s2, s2, MPFR_RNDN);
    mpfr_mul_2ui(s2, s2, 1, MPFR_RNDN); /* 2 s^2 */
    for (long l = 0; l <= maxl + 1; l++) {
        mpfr_init2(B[l], 4096);
        mpfr_set_zero(B[l], 1);
        if (l % 2)
            continue;
        mpfr_set_ui(c, 1, MPFR_RNDN);
        for (long k = 0; k <= l; k++) {
            if (k > 0) {
                mpfr_mul_si(c, c, l - k + 1, MPFR_RNDN);
                mpfr_div_si(c, c, k, MPFR_RNDN);
            }
            mpfr_set_si(t, k * k - k, MPFR_RNDN);
            mpfr_div(t, t, s2, MPFR_RNDN);
            mpfr_exp(t, t, MPFR_RNDN);
            mpfr_mul(t, t, c, MPFR_RNDN);
            if ((l - k) % 2)
                mpfr_sub(B[l], B[l], t, MPFR_RNDN);
            else
                mpfr_add(B[l], B[l], t, MPFR_RNDN);
        }
    }
    mpfr_set_ui(acc, 1, MPFR_RNDN);
    mpfr_set_ui(c, 1, MPFR_RNDN); /* C(n, j) */
    for (long j = 1; j <= n; j++) {
        mpfr_mul_si(c, c, n - j + 1, MPFR_RNDN);
        mpfr_div_si(c, c, j, MPFR_RNDN);
        if (j < 2)
            continue;
        /* 2 e^{(j-1) j / (2 s^2)} */
        mpfr_set_si(t, (j - 1) * j, MPFR_RNDN);
        mpfr_div(t, t, s2, MPFR_RNDN);
        mpfr_exp(t, t, MPFR_RNDN);
        mpfr_mul_2ui(best, t, 1, MPFR_RNDN);
        if (j == 2) {
            mpfr_sub_ui(u, t, 1, MPFR_RNDN);
            mpfr_mul_2ui(u, u, 2, MPFR_RNDN);
        } else {
            mpfr_mul(u, B[2 * (j / 2)], B[2 * ((j + 1) / 2)], MPFR_RNDN);
            mpfr_sqrt(u, u, MPFR_RNDN);
            mpfr_mul_2ui(u, u, 2, MPFR_RNDN);
        }
        if (n <= 256 && mpfr_cmp(u, best) < 0)
            mpfr_set(best, u, MPFR_RNDN);
        mpfr_pow_si(t, q, j, MPFR_RNDN);
        mpfr_mul(t, t, c, MPFR_RNDN);
        mpfr_mul(t, t, best, MPFR_RNDN);
        mpfr_add(acc, acc, t, MPFR_RNDN);
    }
    mpfr_log(acc, acc, MPFR_RNDN);
    res = mpfr_get_d(acc, MPFR_RNDN);
    for (long l = 0; l <= maxl + 1; l++)
        mpfr_clear(B[l]);
    free(B);
    mpfr_clears(q, s2, acc, t, u, c, b[0], b[1], best, two, (mpfr_ptr)0);
    return res;
}
#endif

START_TEST(test_wor)
{
    asec_acct_options o = ASEC_ACCT_OPTIONS_INIT;
    asec_acct *a;
    double e;

    /* ACCOUNTANT.md pitfall 17: WBK19 gives 5.24 for the TF tutorial. */
    o.relation = ASEC_ACCT_REPLACE_ONE;
    a = mk(&o);
    {
        asec_acct_event ev = {
            ASEC_ACCT_EV_WOR_GAUSSIAN, 256.0 / 60000, 1.1, 0, 0, 0, 0, 14063};

        ck_assert_int_eq(asec_acct_add(a, &ev), ASEC_OK);
    }
    e = eps_of(a, ASEC_ACCT_RDP, 1e-5);
    ck_assert_msg(fabs(e - 5.24) < 0.01, "WOR TF tutorial %g", e);
    asec_acct_free(a);
#ifdef HAVE_MPFR
    {
        static const struct {
            double q, s;
            long n;
        } c[] = {{0.01, 1.0, 2},  {0.01, 1.0, 7},  {0.1, 4.0, 32},   {0.05, 100.0, 64},
                 {0.3, 2.0, 200}, {0.01, 0.5, 12}, {0.02, 10.0, 256}};

        for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
            double ord = (double)c[i].n, r, ref = mp_wor_log_a(c[i].q, c[i].s, c[i].n);
            size_t n;

            o.orders = &ord;
            o.n_orders = 1;
            a = mk(&o);
            {
                asec_acct_event ev = {
                    ASEC_ACCT_EV_WOR_GAUSSIAN, c[i].q, c[i].s, 0, 0, 0, 0, 1};

                ck_assert_int_eq(asec_acct_add(a, &ev), ASEC_OK);
            }
            ck_assert_int_eq(asec_acct_rdp(a, NULL, &r, 1, &n), ASEC_OK);
            r *= ord - 1.0;
            ck_assert_msg(fabs(r - ref) <= 1e-9 * fabs(ref) + 1e-15,
                          "WOR log A q %g s %g n %ld: %.17g vs MPFR %.17g", c[i].q,
                          c[i].s, c[i].n, r, ref);
            asec_acct_free(a);
        }
    }
#endif
}
END_TEST

START_TEST(test_anchor_values)
{
    asec_acct_options o = ASEC_ACCT_OPTIONS_INIT;
    double ords[] = {1.5, 2.5, 5.0, 50.0, 100.0}, r[5];
    size_t n;
    asec_acct *a;
    asec_acct_result res;

    /* ACCOUNTANT.md §6: Opacus accountants_test.py (its own grid). */
    CLOSE(rdp_eps(0.04, 1.5, 2250, 1e-5, ASEC_ACCT_GRID_OPACUS, 0), 7.32911117143, 1e-10,
          "Opacus RDP");
    /* TF Privacy compute_dp_sgd_privacy_test (TF's grid). */
    CLOSE(rdp_eps(150.0 / 60000, 1.3, 6000, 1e-5, ASEC_ACCT_GRID_TF_PRIVACY, 0),
          0.7242234026109595, 1e-10, "TF 60000/150/1.3/15");
    CLOSE(rdp_eps(100.0 / 1e5, 1.0, 30000, 1e-7, ASEC_ACCT_GRID_TF_PRIVACY, 0),
          1.4154988495444842, 1e-10, "TF 1e5/100/1.0/30");
    CLOSE(rdp_eps(1024.0 / 1e8, 0.1, 976563, 1e-7, ASEC_ACCT_GRID_TF_PRIVACY, 0),
          5907982.3113984, 1e-10, "TF stress");
    CLOSE(rdp_eps(1024.0 / 1e8, 0.1, 976563, 1e-7, ASEC_ACCT_GRID_DP_ACCOUNTING, 0),
          7801.06, 1e-5, "TF stress, orders to 1024");
    /* TF example-level values come from dp_accounting, whose fractional
     * series sums absolute values (ACCOUNTANT.md pitfall 1): the exact
     * value is at most theirs and within their 1.23e-3 excess. */
    {
        double e1 = rdp_eps(0.01, 0.7, 120, 1e-5, ASEC_ACCT_GRID_DP_ACCOUNTING, 0);
        double e2 = rdp_eps(0.01, 0.35, 120, 1e-5, ASEC_ACCT_GRID_DP_ACCOUNTING, 0);

        ck_assert(e1 <= 3.2392676 && e1 >= 3.2392676 * (1 - 1.3e-3));
        ck_assert(e2 <= 22.6248601 && e2 >= 22.6248601 * (1 - 1.3e-3));
    }
    CLOSE(rdp_eps(1.0, 0.7, 2, 1e-5, ASEC_ACCT_GRID_DP_ACCOUNTING, 0), 10.8602036, 1e-7,
          "TF no sampling");
    CLOSE(rdp_eps(1.0, 0.35, 2, 1e-5, ASEC_ACCT_GRID_DP_ACCOUNTING, 0), 26.2880374, 1e-7,
          "TF no sampling, microbatches");
    /* dp_accounting's curve test (integer orders are exact; at fractional
     * orders their unsigned series is an over-estimate). */
    o.orders = ords;
    o.n_orders = 5;
    a = mk(&o);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, 0.01, 2.5, 50), ASEC_OK);
    ck_assert_int_eq(asec_acct_rdp(a, NULL, r, 5, &n), ASEC_OK);
    ck_assert(r[0] <= 6.70579741e-04 && r[0] > 0.9 * 6.70579741e-04);
    ck_assert(r[1] <= 1.08548710e-03 && r[1] > 0.999 * 1.08548710e-03);
    CLOSE(r[2], 2.18075656e-03, 1e-8, "curve at 5");
    CLOSE(r[3], 2.38460375e-02, 1e-8, "curve at 50");
    CLOSE(r[4], 1.67416308e02, 1e-8, "curve at 100");
    asec_acct_free(a);
    /* dp_accounting: sigma = 4.530877117 gives (1, 1e-6) on a dense grid. */
    o = (asec_acct_options)ASEC_ACCT_OPTIONS_INIT;
    o.refine_order = 1;
    a = mk(&o);
    ck_assert_int_eq(asec_acct_add_gaussian(a, 4.530877117, 1), ASEC_OK);
    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_RDP, 1e-6, &res), ASEC_OK);
    CLOSE(res.epsilon, 1.0, 1e-5, "dense-grid Gaussian");
    asec_acct_free(a);
}
END_TEST

START_TEST(test_math_values)
{
    /* MATH.md §9.3: integer orders 2..128. */
    double ords[127];
    asec_acct_options o = ASEC_ACCT_OPTIONS_INIT;
    asec_acct *a;

    for (int i = 0; i < 127; i++)
        ords[i] = i + 2;
    o.orders = ords;
    o.n_orders = 127;
    for (int legacy = 0; legacy < 2; legacy++) {
        o.legacy = legacy;
        a = mk(&o);
        ck_assert_int_eq(asec_acct_add_gaussian(a, 4.0, 100), ASEC_OK);
        CLOSE(eps_of(a, ASEC_ACCT_RDP, 1e-5), legacy ? 15.1315 : 14.1767, 1e-5,
              "T100 s4");
        asec_acct_free(a);
        a = mk(&o);
        ck_assert_int_eq(asec_acct_add_gaussian(a, 10.0, 1000), ASEC_OK);
        CLOSE(eps_of(a, ASEC_ACCT_RDP, 1e-5), legacy ? 20.7565 : 19.8017, 1e-5,
              "T1000 s10");
        asec_acct_free(a);
        a = mk(&o);
        ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, 0.01, 4.0, 10000), ASEC_OK);
        CLOSE(eps_of(a, ASEC_ACCT_RDP, 1e-5), legacy ? 1.2586 : 1.0355, 1e-4, "Abadi");
        asec_acct_free(a);
        a = mk(&o);
        ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, 256.0 / 60000, 1.1, 14062),
                         ASEC_OK);
        CLOSE(eps_of(a, ASEC_ACCT_RDP, 1e-5), legacy ? 3.0091 : 2.5970, 1e-4,
              "TF tutorial");
        asec_acct_free(a);
    }
}
END_TEST

START_TEST(test_legacy_published)
{
    /* ACCOUNTANT.md §7.1 (delta = 1e-5): published, the oracle's legacy
     * column, today's RDP.  Every published value is reproduced to 0.01
     * except Abadi's 400-epoch 2.55, which the oracle's own legacy
     * conversion gives as 2.574 (the paper's number is not reproducible
     * with the exact curve); there we pin the legacy column. */
    static const struct {
        double q, s;
        uint64_t T;
        double pub, legacy, today;
    } c[] = {
        {0.01, 4.0, 10000, 1.26, 1.259, 1.0355},
        {0.01, 4.0, 40000, 2.55, 2.574, 2.2097},
        {256.0 / 60000, 1.1, 14063, 3.01, 3.008, 2.5967},
        {256.0 / 60000, 1.3, 3516, 1.19, 1.192, 0.9546},
        {256.0 / 60000, 0.7, 10547, 7.10, 7.101, 6.3184},
        {240.0 / 60000, 1.3, 3750, 1.16, 1.160, 0.9220},
        {240.0 / 60000, 1.1, 15000, 2.91, 2.905, 2.5029},
        {240.0 / 60000, 0.7, 11250, 6.86, 6.859, 6.0925},
    };

    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        double l = rdp_eps(c[i].q, c[i].s, c[i].T, 1e-5, ASEC_ACCT_GRID_DP_ACCOUNTING, 1);
        double t = rdp_eps(c[i].q, c[i].s, c[i].T, 1e-5, ASEC_ACCT_GRID_DP_ACCOUNTING, 0);

        ck_assert_msg(fabs(l - c[i].legacy) <= 1.5e-3, "legacy %zu: %g vs %g", i, l,
                      c[i].legacy);
        if (i != 1)
            ck_assert_msg(fabs(l - c[i].pub) <= 0.01, "published %zu: %g vs %g", i, l,
                          c[i].pub);
        ck_assert_msg(fabs(t - c[i].today) <= 1e-4, "today %zu: %g vs %g", i, t,
                      c[i].today);
    }
}
END_TEST

START_TEST(test_calibration_rdp)
{
    /* ACCOUNTANT.md §7.3, dp_accounting RDP column: ours is the exact
     * threshold of the same curve, at most theirs (their fractional orders
     * are over-estimated) and within 2e-4. */
    static const struct {
        double q;
        uint64_t T;
        double eps, delta, want;
    } c[] = {
        {0.04, 2250, 8, 1e-5, 1.41587},    {256.0 / 60000, 14063, 3, 1e-5, 1.01402},
        {0.001, 100000, 8, 1e-6, 0.59504}, {1.0, 1000, 3, 1e-5, 47.2194},
        {1e-4, 10000, 0.5, 1e-9, 1.36173}, {0.04, 2000, 8, 1e-5, 1.3562},
    };
    asec_acct *base = mk(NULL);

    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        asec_acct_calib k = ASEC_ACCT_CALIB_INIT;
        asec_acct_result r;
        double s;

        k.q = c[i].q;
        k.steps = c[i].T;
        k.target_epsilon = c[i].eps;
        k.delta = c[i].delta;
        ck_assert_int_eq(asec_acct_calibrate(base, ASEC_ACCT_RDP, &k, &s, &r), ASEC_OK);
        ck_assert_msg(s <= c[i].want * (1 + 1e-5) && s >= c[i].want * (1 - 2e-4),
                      "calibration %zu: %.6f vs %.5f", i, s, c[i].want);
        ck_assert(r.epsilon <= c[i].eps);
        /* Conservative and tight: 1e-6 less noise misses the target. */
        CLOSE(rdp_eps(c[i].q, s * (1 - 2e-6), c[i].T, c[i].delta,
                      ASEC_ACCT_GRID_DP_ACCOUNTING, 0) > c[i].eps
                  ? 1.0
                  : 0.0,
              1.0, 0.0, "tight calibration");
    }
    asec_acct_free(base);
}
END_TEST

/* ------------------------------------------------------------ pld */

static asec_acct_result
pld_eps(asec_acct *a, double delta)
{
    asec_acct_result r;
    int rc = asec_acct_epsilon(a, ASEC_ACCT_PLD, delta, &r);

    ck_assert_msg(rc == ASEC_OK, "pld epsilon: %s", asec_errmsg());
    ck_assert(r.epsilon_lo >= 0.0 && r.epsilon_lo <= r.epsilon && !isnan(r.epsilon));
    /* The certified bracket is narrow at default settings. */
    ck_assert_msg(r.epsilon - r.epsilon_lo <= fmax(1e-3 * r.epsilon, 2e-4),
                  "bracket [%.9g, %.9g] too wide", r.epsilon_lo, r.epsilon);
    return r;
}

START_TEST(test_pld_closed_form)
{
    /* q = 1: the PLD path against the analytic Gaussian (mu-GDP). */
    static const struct {
        double s;
        uint64_t T;
        double d;
    } c[] = {{2.0, 1, 1e-5}, {4.0, 100, 1e-5}, {20.0, 100000, 1e-9}, {0.7, 2, 1e-5}};

    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        asec_acct *a = mk(NULL);
        asec_acct_result r;
        double exact;

        ck_assert_int_eq(asec_acct_add_gaussian(a, c[i].s, c[i].T), ASEC_OK);
        r = pld_eps(a, c[i].d);
        ck_assert_int_eq(
            asec_acct_gaussian_epsilon(sqrt((double)c[i].T) / c[i].s, c[i].d, &exact),
            ASEC_OK);
        ck_assert_msg(r.epsilon_lo <= exact && exact <= r.epsilon,
                      "case %zu: exact %.12g outside [%.12g, %.12g]", i, exact,
                      r.epsilon_lo, r.epsilon);
        ck_assert_msg(r.epsilon - exact <= 2e-6 * exact, "case %zu: %.12g vs exact %.12g",
                      i, r.epsilon, exact);
        asec_acct_free(a);
    }
    /* TF Privacy's "no sampling" PLD values (ACCOUNTANT.md §6). */
    {
        asec_acct *a = mk(NULL);

        ck_assert_int_eq(asec_acct_add_gaussian(a, 0.35, 2), ASEC_OK);
        CLOSE(pld_eps(a, 1e-5).epsilon, 24.7160779, 1e-6, "TF no sampling, microbatches");
        asec_acct_free(a);
    }
}
END_TEST

/* The exact delta of T-fold eps0-randomized response (the worst case of
 * pure eps0-DP): sum_k C(T,k) p^{T-k} (1-p)^k (1 - e^{eps - (T-2k) eps0})_+,
 * p = e^eps0 / (1 + e^eps0), in long double. */
static double
rr_delta(double eps0, int T, double eps)
{
    long double p = 1.0L / (1.0L + expl(-(long double)eps0)), s = 0.0L;

    for (int k = 0; k <= T; k++) {
        long double l = (long double)(T - 2 * k) * eps0;
        long double lb = lgammal(T + 1.0L) - lgammal(k + 1.0L) - lgammal(T - k + 1.0L);

        if (l > eps)
            s += expl(lb + (T - k) * logl(p) + k * log1pl(-p)) *
                 -expm1l((long double)eps - l);
    }
    return (double)s;
}

START_TEST(test_pld_fft_composition)
{
    /* 100-fold pure 0.1-DP through the FFT path against the exact binomial
     * sum: the bracket must contain it. */
    asec_acct *a = mk(NULL);
    asec_acct_event ev = {ASEC_ACCT_EV_PURE, 1.0, 0.0, 0.1, 0.0, 0.0, 0.0, 100};
    asec_acct_result r;

    ck_assert_int_eq(asec_acct_add(a, &ev), ASEC_OK);
    for (double e = 0.5; e <= 3.0; e += 0.5) {
        double exact = rr_delta(0.1, 100, e);

        ck_assert_int_eq(asec_acct_delta(a, ASEC_ACCT_PLD, e, &r), ASEC_OK);
        ck_assert_msg(r.delta_lo <= exact * (1 + 1e-12) && exact <= r.delta * (1 + 1e-12),
                      "eps %g: exact %.12g outside [%.12g, %.12g]", e, exact, r.delta_lo,
                      r.delta);
    }
    asec_acct_free(a);
}
END_TEST

START_TEST(test_pld_anchors)
{
    /* ACCOUNTANT.md §6 and §7.1: dp_accounting's PLD (pessimistic at dx =
     * 1e-4) is at most 2e-4 relative above ours, ours is not far below. */
    static const struct {
        double q, s;
        uint64_t T;
        double d, want;
    } c[] = {
        {0.01, 4.0, 10000, 1e-5, 0.9470},
        {256.0 / 60000, 1.1, 14063, 1e-5, 2.3818},
        {256.0 / 60000, 1.3, 3516, 1e-5, 0.8646},
        {256.0 / 60000, 0.7, 10547, 1e-5, 5.6397},
        {240.0 / 60000, 1.3, 3750, 1e-5, 0.8336},
        {240.0 / 60000, 1.1, 15000, 1e-5, 2.2955},
        {240.0 / 60000, 0.7, 11250, 1e-5, 5.4312},
        {0.01, 0.7, 120, 1e-5, 2.4612381},
        {0.01, 0.35, 120, 1e-5, 18.6977407},
        {0.001, 1.5, 50000, 1e-6, 0.6942},
        {0.05, 2.0, 20000, 1e-6, 24.41097},
    };

    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        asec_acct *a = sgm(c[i].q, c[i].s, c[i].T, 0, 0);
        asec_acct_result r = pld_eps(a, c[i].d);

        ck_assert_msg(r.epsilon <= c[i].want * (1 + 2e-4) + 1e-4 &&
                          r.epsilon >= c[i].want * (1 - 1e-3),
                      "case %zu: [%.9g, %.9g] vs anchor %.9g", i, r.epsilon_lo, r.epsilon,
                      c[i].want);
        /* PLD is tighter than RDP. */
        ck_assert(r.epsilon <= eps_of(a, ASEC_ACCT_RDP, c[i].d));
        asec_acct_free(a);
    }
    /* Opacus's PRV test value is the PRV upper bound (estimate + 0.01);
     * the tight value is about 6.767. */
    {
        asec_acct *a = sgm(0.04, 1.5, 2249, 0, 0);
        asec_acct_result r = pld_eps(a, 1e-5);

        ck_assert(r.epsilon <= 6.777395712150674 && r.epsilon >= 6.76);
        asec_acct_free(a);
    }
    /* dp_accounting PLD tests: delta(1) of q = 0.2, sigma = 0.5, 3 steps is
     * 0.155933; Laplace(1) x3 + Laplace(2) x2 is pure 4-DP; subsampled
     * Laplace q = 0.2, b = 0.5, 3 steps: epsilon(1e-14) = 2.46964. */
    {
        asec_acct *a = sgm(0.2, 0.5, 3, 0, 0);
        asec_acct_event l1 = {ASEC_ACCT_EV_LAPLACE, 1.0, 1.0, 0, 0, 0, 0, 3};
        asec_acct_event l2 = {ASEC_ACCT_EV_LAPLACE, 1.0, 2.0, 0, 0, 0, 0, 2};
        asec_acct_event pl = {ASEC_ACCT_EV_POISSON_LAPLACE, 0.2, 0.5, 0, 0, 0, 0, 3};
        asec_acct_result r;

        ck_assert_int_eq(asec_acct_delta(a, ASEC_ACCT_PLD, 1.0, &r), ASEC_OK);
        ck_assert(r.delta_lo <= 0.155933 + 1e-6 && r.delta >= 0.155933 - 1e-6 &&
                  r.delta <= 0.15594 + 1e-5);
        asec_acct_free(a);
        a = mk(NULL);
        ck_assert_int_eq(asec_acct_add(a, &l1), ASEC_OK);
        ck_assert_int_eq(asec_acct_add(a, &l2), ASEC_OK);
        ck_assert_int_eq(asec_acct_delta(a, ASEC_ACCT_PLD, 4.0, &r), ASEC_OK);
        ck_assert(r.delta <= 1e-11);
        asec_acct_free(a);
        a = mk(NULL);
        ck_assert_int_eq(asec_acct_add(a, &pl), ASEC_OK);
        ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_PLD, 1e-14, &r), ASEC_OK);
        ck_assert(r.epsilon_lo <= 2.46964 && r.epsilon >= 2.46964 - 1e-4 &&
                  r.epsilon <= 2.46964 * 1.002);
        asec_acct_free(a);
    }
}
END_TEST

START_TEST(test_pld_small_epsilon)
{
    /* ACCOUNTANT.md pitfall 9: 0.0697 (dp_accounting's default grid gives
     * 0.0726). */
    asec_acct *a = sgm(1e-4, 1.0, 10000, 0, 0);
    asec_acct_result r = pld_eps(a, 1e-9);

    ck_assert_msg(fabs(r.epsilon - 0.0697) <= 1e-3 && r.epsilon_lo <= 0.06972,
                  "[%.9g, %.9g]", r.epsilon_lo, r.epsilon);
    asec_acct_free(a);
}
END_TEST

START_TEST(test_pld_stress_and_mixed)
{
    /* TF Privacy's stress case (T = 976563, sigma = 0.1): RDP says 7801,
     * dp_accounting's PLD 1199.9 in 19.7 s; must complete, below both. */
    asec_acct *a = sgm(1024.0 / 1e8, 0.1, 976563, 0, 0);
    asec_acct_result r = pld_eps(a, 1e-7);

    ck_assert(r.epsilon <= 1199.9 && r.epsilon > 1150.0);
    asec_acct_free(a);
    /* A heterogeneous schedule equals the sum of its parts' events, and
     * an (eps, delta) event shifts delta. */
    {
        asec_acct_segment seg[3] = {
            {0.01, 2.0, 1000}, {0.004, 1.1, 5000}, {0.02, 0.9, 2000}};
        asec_acct_event ed = {ASEC_ACCT_EV_APPROX, 1.0, 0.0, 0.1, 1e-6, 0, 0, 1};
        asec_acct_result r2;

        a = mk(NULL);
        ck_assert_int_eq(asec_acct_add_schedule(a, seg, 3), ASEC_OK);
        r = pld_eps(a, 1e-5);
        ck_assert(r.epsilon < eps_of(a, ASEC_ACCT_RDP, 1e-5));
        ck_assert_int_eq(asec_acct_add(a, &ed), ASEC_OK);
        ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_PLD, 1e-5, &r2), ASEC_OK);
        ck_assert(r2.epsilon > r.epsilon);
        ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_PLD, 5e-7, &r2), ASEC_OK);
        ck_assert(isinf(r2.epsilon)); /* delta below the event's own delta */
        asec_acct_free(a);
    }
}
END_TEST

START_TEST(test_pld_calibration)
{
    /* §7.3, dp_accounting PLD column: conservative and at most 1e-4 noisier. */
    static const struct {
        double q;
        uint64_t T;
        double eps, delta, want;
    } c[] = {{0.04, 2250, 8, 1e-5, 1.34590}, {1.0, 1000, 3, 1e-5, 43.9745}};
    asec_acct *base = mk(NULL);

    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        asec_acct_calib k = ASEC_ACCT_CALIB_INIT;
        asec_acct_result r;
        double s;

        k.q = c[i].q;
        k.steps = c[i].T;
        k.target_epsilon = c[i].eps;
        k.delta = c[i].delta;
        ck_assert_int_eq(asec_acct_calibrate(base, ASEC_ACCT_PLD, &k, &s, &r), ASEC_OK);
        ck_assert(r.epsilon <= c[i].eps);
        ck_assert_msg(s <= c[i].want * (1 + 1e-4) && s >= c[i].want * (1 - 2e-3),
                      "PLD calibration %zu: %.6f vs %.5f", i, s, c[i].want);
    }
    asec_acct_free(base);
}
END_TEST

/* ------------------------------------------------------------ property */

START_TEST(test_monotone)
{
    double prev = INFINITY;

    for (double s = 0.5; s <= 3.0; s += 0.25) {
        double e = rdp_eps(0.01, s, 1000, 1e-5, ASEC_ACCT_GRID_DP_ACCOUNTING, 0);

        ck_assert_msg(e <= prev, "epsilon increased with sigma at %g", s);
        prev = e;
    }
    prev = 0.0;
    for (uint64_t T = 1; T <= 1000000; T *= 4) {
        double e = rdp_eps(0.001, 0.9, T, 1e-6, ASEC_ACCT_GRID_DP_ACCOUNTING, 0);

        ck_assert_msg(e >= prev, "epsilon decreased with steps at %llu",
                      (unsigned long long)T);
        prev = e;
    }
    prev = 0.0;
    for (double q = 1e-6; q <= 1.0; q *= 3.0) {
        double e = rdp_eps(q, 1.0, 100, 1e-5, ASEC_ACCT_GRID_DP_ACCOUNTING, 0);

        ck_assert_msg(e >= prev, "epsilon decreased with q at %g", q);
        prev = e;
    }
}
END_TEST

START_TEST(test_pld_properties)
{
    double prev = INFINITY;
    asec_acct *a;
    asec_acct_result r, r2;

    for (double s = 0.8; s <= 1.6; s += 0.4) {
        double e;

        a = sgm(0.01, s, 1000, 0, 0);
        e = pld_eps(a, 1e-5).epsilon;
        ck_assert(e <= prev);
        prev = e;
        asec_acct_free(a);
    }
    a = sgm(0.01, 1.0, 1000, 0, 0);
    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_PLD, 1e-6, &r), ASEC_OK);
    ck_assert_int_eq(asec_acct_delta(a, ASEC_ACCT_PLD, r.epsilon, &r2), ASEC_OK);
    ck_assert_msg(r2.delta <= 1e-6 * (1 + 1e-9), "delta(eps_hi(1e-6)) = %g", r2.delta);
    ck_assert_int_eq(asec_acct_delta(a, ASEC_ACCT_PLD, r.epsilon_lo, &r2), ASEC_OK);
    /* eps_lo is below the true epsilon, so delta there is at least 1e-6. */
    ck_assert(r2.delta >= 1e-6 * (1 - 1e-9));
    asec_acct_free(a);
    /* A million steps completes, and never NaN or negative. */
    a = sgm(1e-3, 1.0, 1000000, 0, 0);
    r = pld_eps(a, 1e-6);
    ck_assert(r.epsilon > 0.0 && isfinite(r.epsilon));
    asec_acct_free(a);
}
END_TEST

START_TEST(test_roundtrip)
{
    asec_acct *a = sgm(0.004, 1.1, 5000, ASEC_ACCT_GRID_DP_ACCOUNTING, 0);
    asec_acct_result r, r2;

    for (double d = 1e-12; d < 0.5; d *= 10.0) {
        ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_RDP, d, &r), ASEC_OK);
        ck_assert_int_eq(asec_acct_delta(a, ASEC_ACCT_RDP, r.epsilon, &r2), ASEC_OK);
        ck_assert_msg(r2.delta <= d * (1 + 1e-9) && r2.delta >= d * (1 - 1e-6),
                      "delta(epsilon(%g)) = %g", d, r2.delta);
    }
    asec_acct_free(a);
}
END_TEST

START_TEST(test_calibrate_steps_q)
{
    asec_acct *base = mk(NULL);
    asec_acct_calib k = ASEC_ACCT_CALIB_INIT;
    double T, q;

    k.solve = ASEC_ACCT_PARAM_STEPS;
    k.q = 256.0 / 60000;
    k.sigma = 1.1;
    k.target_epsilon = 3.0;
    k.delta = 1e-5;
    ck_assert_int_eq(asec_acct_calibrate(base, ASEC_ACCT_RDP, &k, &T, NULL), ASEC_OK);
    ck_assert(rdp_eps(k.q, 1.1, (uint64_t)T, 1e-5, 0, 0) <= 3.0);
    ck_assert(rdp_eps(k.q, 1.1, (uint64_t)T + 1, 1e-5, 0, 0) > 3.0);
    k.solve = ASEC_ACCT_PARAM_Q;
    k.steps = 14063;
    ck_assert_int_eq(asec_acct_calibrate(base, ASEC_ACCT_RDP, &k, &q, NULL), ASEC_OK);
    ck_assert(rdp_eps(q, 1.1, 14063, 1e-5, 0, 0) <= 3.0);
    ck_assert(rdp_eps(q * (1 + 2e-6), 1.1, 14063, 1e-5, 0, 0) > 3.0);
    /* A prior spend in the base counts. */
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(base, 0.01, 1.0, 500), ASEC_OK);
    k.solve = ASEC_ACCT_PARAM_STEPS;
    {
        double T2;

        ck_assert_int_eq(asec_acct_calibrate(base, ASEC_ACCT_RDP, &k, &T2, NULL),
                         ASEC_OK);
        ck_assert(T2 < T);
    }
    asec_acct_free(base);
}
END_TEST

/* ------------------------------------------------------------ errors */

START_TEST(test_errors_options)
{
    asec_acct_options o = ASEC_ACCT_OPTIONS_INIT;
    asec_acct *a = (asec_acct *)&o;
    double bad[] = {2.0, 1.0};

    o.version = 99;
    ck_assert_int_eq(asec_acct_alloc(&a, &o), ASEC_EINVAL);
    ck_assert_ptr_null(a);
    o = (asec_acct_options)ASEC_ACCT_OPTIONS_INIT;
    o.relation = (asec_acct_relation)7;
    ck_assert_int_eq(asec_acct_alloc(&a, &o), ASEC_EINVAL);
    o = (asec_acct_options)ASEC_ACCT_OPTIONS_INIT;
    o.grid = (asec_acct_grid)9;
    ck_assert_int_eq(asec_acct_alloc(&a, &o), ASEC_EINVAL);
    o = (asec_acct_options)ASEC_ACCT_OPTIONS_INIT;
    o.orders = bad;
    o.n_orders = 2;
    ck_assert_int_eq(asec_acct_alloc(&a, &o), ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "order 1"));
    o.n_orders = 0;
    ck_assert_int_eq(asec_acct_alloc(&a, &o), ASEC_EINVAL);
    o = (asec_acct_options)ASEC_ACCT_OPTIONS_INIT;
    o.pld_dx = -1.0;
    ck_assert_int_eq(asec_acct_alloc(&a, &o), ASEC_EINVAL);
    o = (asec_acct_options)ASEC_ACCT_OPTIONS_INIT;
    o.pld_bracket_rtol = 0.5;
    ck_assert_int_eq(asec_acct_alloc(&a, &o), ASEC_EINVAL);
}
END_TEST

START_TEST(test_errors_events)
{
    asec_acct *a = mk(NULL), *r1;
    asec_acct_options o = ASEC_ACCT_OPTIONS_INIT;
    asec_acct_event ev = {ASEC_ACCT_EV_WOR_GAUSSIAN, 0.1, 1.0, 0, 0, 0, 0, 1};
    asec_acct_segment seg[2] = {{0.1, 1.0, 5}, {0.1, -1.0, 5}};

    ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, 1.5, 1.0, 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, -0.1, 1.0, 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, NAN, 1.0, 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, 0.1, 0.0, 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, 0.1, INFINITY, 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(a, 0.1, 1.0, 0), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_add_gaussian(a, 1.0, ((uint64_t)1 << 62) + 1),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_add(a, &ev), ASEC_EINVAL); /* WOR under add-remove */
    ev.kind = ASEC_ACCT_EV_APPROX;
    ev.epsilon = 1.0;
    ev.delta = 1.0;
    ck_assert_int_eq(asec_acct_add(a, &ev), ASEC_EINVAL);
    ev.kind = ASEC_ACCT_EV_ZCDP;
    ev.rho = -1.0;
    ck_assert_int_eq(asec_acct_add(a, &ev), ASEC_EINVAL);
    ev.kind = (asec_acct_event_kind)42;
    ck_assert_int_eq(asec_acct_add(a, &ev), ASEC_EINVAL);
    /* A bad segment adds nothing. */
    ck_assert_int_eq(asec_acct_add_schedule(a, seg, 2), ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "segment 2"));
    ck_assert_uint_eq(asec_acct_num_events(a), 0);
    {
        asec_acct_event out;

        ck_assert_int_eq(asec_acct_event_at(a, 0, &out), ASEC_EINVAL);
    }
    asec_acct_free(a);
    /* Poisson sampling under replace-one. */
    o.relation = ASEC_ACCT_REPLACE_ONE;
    r1 = mk(&o);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(r1, 0.1, 1.0, 1), ASEC_EINVAL);
    asec_acct_free(r1);
}
END_TEST

START_TEST(test_errors_queries)
{
    asec_acct *a = sgm(0.01, 1.0, 10, 0, 0);
    asec_acct_event z = {ASEC_ACCT_EV_ZCDP, 1.0, 0.0, 0.0, 0.0, 0.1, 0.0, 1};
    asec_acct_result r;
    asec_acct_calib k = ASEC_ACCT_CALIB_INIT;
    double v;

    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_RDP, 0.0, &r), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_RDP, 1.0, &r), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_RDP, NAN, &r), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_delta(a, ASEC_ACCT_RDP, -1.0, &r), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_epsilon(a, (asec_acct_method)77, 1e-5, &r), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_EXACT, 1e-5, &r), ASEC_ENOTSUP);
    ck_assert_int_eq(asec_acct_add(a, &z), ASEC_OK);
    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_PLD, 1e-5, &r), ASEC_ENOTSUP);
    ck_assert_int_eq(asec_acct_epsilon(a, ASEC_ACCT_GDP_CLT, 1e-5, &r), ASEC_ENOTSUP);
    /* The PLD memory cap fails cleanly instead of allocating. */
    {
        asec_acct_options o = ASEC_ACCT_OPTIONS_INIT;
        asec_acct *p;

        o.max_bytes = (size_t)1 << 16;
        p = mk(&o);
        ck_assert_int_eq(asec_acct_add_poisson_gaussian(p, 1e-3, 0.6, 100000), ASEC_OK);
        ck_assert_int_eq(asec_acct_epsilon(p, ASEC_ACCT_PLD, 1e-9, &r), ASEC_ELIMIT);
        ck_assert_ptr_nonnull(strstr(asec_errmsg(), "cap"));
        /* AUTO falls back to RDP. */
        ck_assert_int_eq(asec_acct_epsilon(p, ASEC_ACCT_AUTO, 1e-9, &r), ASEC_OK);
        ck_assert_int_eq(r.method, ASEC_ACCT_RDP);
        asec_acct_free(p);
    }
    /* Calibration. */
    k.q = 0.01;
    k.steps = 1000;
    k.target_epsilon = 1.0;
    k.delta = 1e-5;
    ck_assert_int_eq(asec_acct_calibrate(a, ASEC_ACCT_GDP_CLT, &k, &v, NULL),
                     ASEC_EINVAL);
    k.version = 3;
    ck_assert_int_eq(asec_acct_calibrate(a, ASEC_ACCT_RDP, &k, &v, NULL), ASEC_EINVAL);
    k.version = ASEC_ACCT_CALIB_VERSION;
    k.delta = 2.0;
    ck_assert_int_eq(asec_acct_calibrate(a, ASEC_ACCT_RDP, &k, &v, NULL), ASEC_EINVAL);
    k.delta = 1e-5;
    k.target_epsilon = -1.0;
    ck_assert_int_eq(asec_acct_calibrate(a, ASEC_ACCT_RDP, &k, &v, NULL), ASEC_EINVAL);
    k.target_epsilon = 1.0;
    k.sampling = ASEC_ACCT_WOR;
    ck_assert_int_eq(asec_acct_calibrate(a, ASEC_ACCT_RDP, &k, &v, NULL), ASEC_EINVAL);
    k.sampling = ASEC_ACCT_POISSON;
    /* The base ledger alone (zCDP rho = 0.1, eps(1e-5) ~ 2.2) exceeds 1.0. */
    ck_assert_int_eq(asec_acct_calibrate(a, ASEC_ACCT_RDP, &k, &v, NULL), ASEC_EBUDGET);
    k.solve = ASEC_ACCT_PARAM_STEPS;
    k.sigma = 1.0;
    ck_assert_int_eq(asec_acct_calibrate(a, ASEC_ACCT_RDP, &k, &v, NULL), ASEC_EBUDGET);
    asec_acct_free(a);
    /* Closed forms. */
    ck_assert_int_eq(asec_acct_gaussian_delta(0.0, 1.0, &v), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_gaussian_delta(1.0, -1.0, &v), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_gaussian_epsilon(1.0, 0.0, &v), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_gaussian_mu(0.0, 1e-5, &v), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_classic_sigma(1.0, 1.0, &v), ASEC_EINVAL);
    ck_assert_int_eq(asec_acct_advanced(0.1, 0.0, 0, 1e-5, &v, &v), ASEC_EINVAL);
}
END_TEST

START_TEST(test_errors_json)
{
    static const struct {
        const char *file;
        int status;
        const char *msg;
    } bad[] = {
        {"bad-syntax.json", ASEC_EFORMAT, "line 1"},
        {"bad-type.json", ASEC_EFORMAT, "unknown event type 'gaussain'"},
        {"bad-field.json", ASEC_EFORMAT, "noise_multiplier: expected a number"},
        {"bad-count.json", ASEC_EFORMAT, "count: expected a non-negative integer"},
        {"bad-duplicate.json", ASEC_EFORMAT, "duplicate"},
        {"bad-key.json", ASEC_EFORMAT, "sigma: unknown key"},
        {"bad-sampled.json", ASEC_EFORMAT, "event: a sampled event must wrap"},
        {"bad-q.json", ASEC_EFORMAT, "sampling_probability must be in [0, 1]"},
        {"bad-sigma.json", ASEC_EFORMAT, "positive"},
        {"bad-top.json", ASEC_EFORMAT, "expected an event object"},
        {"bad-deep.json", ASEC_ELIMIT, "nesting deeper than 64"},
        {"bad-overflow.json", ASEC_ELIMIT, "exceeds 2^62"},
    };
    asec_acct *a = mk(NULL), *b;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len;
        char *s = slurp_fixture(bad[i].file, &len);
        int rc = asec_acct_add_events_json(a, s, len);

        ck_assert_msg(rc == bad[i].status, "%s: status %d (%s)", bad[i].file, rc,
                      asec_errmsg());
        ck_assert_msg(strstr(asec_errmsg(), bad[i].msg) != NULL, "%s: message '%s'",
                      bad[i].file, asec_errmsg());
        ck_assert_uint_eq(asec_acct_num_events(a), 0);
        free(s);
    }
    /* WOR needs replace-one. */
    {
        const char *w =
            "{\"type\": \"sampled_without_replacement\", \"source_dataset_size\": "
            "100, \"sample_size\": 10, \"event\": {\"type\": \"gaussian\", "
            "\"noise_multiplier\": 1}}";

        ck_assert_int_eq(asec_acct_add_events_json(a, w, strlen(w)), ASEC_EINVAL);
    }
    /* Untrusted bytes never reach the message raw: a control byte in the
     * syntax (jansson's "near" excerpt), in a key or in a type name comes
     * out as \xNN (fuzz corpus: acct-control-byte-in-message.json). */
    {
        static const char *const ctl[] = {
            "{\"type\": \"self_composed\", \x02"
            "count\": -3}",
            "{\"type\": \"gaussian\", \"noise_multiplier\": 1, \"a\\u0007b\": 1}",
            "{\"type\": \"gauss\\u001bian\"}",
        };

        for (size_t i = 0; i < sizeof ctl / sizeof ctl[0]; i++) {
            const char *m;

            ck_assert_int_eq(asec_acct_add_events_json(a, ctl[i], strlen(ctl[i])),
                             ASEC_EFORMAT);
            m = asec_errmsg();
            for (const unsigned char *p = (const unsigned char *)m; *p != '\0'; p++)
                ck_assert_msg(*p >= 0x20 && *p < 0x7f, "control byte in '%s'", m);
            ck_assert_msg(strstr(m, "\\x0") != NULL || strstr(m, "\\x1") != NULL,
                          "message '%s'", m);
        }
    }
    /* The size cap. */
    ck_assert_int_eq(asec_acct_add_events_json(a, "{}", ((size_t)16 << 20) + 1),
                     ASEC_ELIMIT);
    /* Checkpoints are strict too. */
    {
        const char *c1 =
            "{\"format\": \"attnsec-accountant\", \"version\": 2, \"relation\": "
            "\"add-remove\", \"events\": []}";
        const char *c2 =
            "{\"format\": \"attnsec-accountant\", \"version\": 1, \"relation\": "
            "\"add-remove\", \"events\": [{\"kind\": \"gaussian\", \"count\": 1, "
            "\"sigma\": -1}]}";
        const char *c3 =
            "{\"format\": \"attnsec-accountant\", \"version\": 1, \"relation\": "
            "\"add-remove\", \"events\": [], \"extra\": 1}";

        ck_assert_int_eq(asec_acct_from_json(&b, c1, strlen(c1)), ASEC_EFORMAT);
        ck_assert_ptr_null(b);
        ck_assert_int_eq(asec_acct_from_json(&b, c2, strlen(c2)), ASEC_EFORMAT);
        ck_assert_int_eq(asec_acct_from_json(&b, c3, strlen(c3)), ASEC_EFORMAT);
        ck_assert_int_eq(asec_acct_from_json(&b, "[", 1), ASEC_EFORMAT);
    }
    asec_acct_free(a);
}
END_TEST

/* ------------------------------------------------------------ oom */

/* Run f until it succeeds with allocation n failing for n = 0, 1, ...;
 * every failure must be ASEC_ENOMEM. */
#define OOM_LOOP(call)                                                                   \
    do {                                                                                 \
        long n_;                                                                         \
        int rc_ = ASEC_ENOMEM;                                                           \
        for (n_ = 0; n_ < 100000; n_++) {                                                \
            asec_debug_fail_alloc(n_);                                                   \
            rc_ = (call);                                                                \
            asec_debug_fail_alloc(-1);                                                   \
            if (rc_ == ASEC_OK)                                                          \
                break;                                                                   \
            ck_assert_msg(rc_ == ASEC_ENOMEM, "%s: status %d at %ld (%s)", #call, rc_,   \
                          n_, asec_errmsg());                                            \
        }                                                                                \
        ck_assert_int_eq(rc_, ASEC_OK);                                                  \
    } while (0)

static int
oom_rdp(void)
{
    asec_acct *a = NULL, *b = NULL;
    asec_acct_result r;
    char *j = NULL;
    int rc;

    rc = asec_acct_alloc(&a, NULL);
    if (rc != ASEC_OK)
        return rc;
    if ((rc = asec_acct_add_poisson_gaussian(a, 0.01, 1.0, 100)) != ASEC_OK ||
        (rc = asec_acct_add_gaussian(a, 3.0, 2)) != ASEC_OK ||
        (rc = asec_acct_epsilon(a, ASEC_ACCT_RDP, 1e-5, &r)) != ASEC_OK ||
        (rc = asec_acct_clone(&b, a)) != ASEC_OK ||
        (rc = asec_acct_to_json(a, &j)) != ASEC_OK)
        goto out;
    asec_acct_free(b);
    b = NULL;
    rc = asec_acct_from_json(&b, j, strlen(j));
out:
    asec_acct_json_free(j);
    asec_acct_free(a);
    asec_acct_free(b);
    return rc;
}

static int
oom_events(void)
{
    static const char *ev =
        "{\"type\": \"composed\", \"events\": [{\"type\": \"self_composed\", "
        "\"count\": 10, \"event\": {\"type\": \"poisson_sampled\", "
        "\"sampling_probability\": 0.1, \"event\": {\"type\": \"gaussian\", "
        "\"noise_multiplier\": 2}}}, {\"type\": \"laplace\", "
        "\"noise_multiplier\": 3}]}";
    asec_acct *a = NULL;
    int rc = asec_acct_alloc(&a, NULL);

    if (rc == ASEC_OK)
        rc = asec_acct_add_events_json(a, ev, strlen(ev));
    asec_acct_free(a);
    return rc;
}

static int
oom_calibrate(void)
{
    asec_acct *a = NULL;
    asec_acct_calib k = ASEC_ACCT_CALIB_INIT;
    double s;
    int rc = asec_acct_alloc(&a, NULL);

    k.q = 0.01;
    k.steps = 1000;
    k.target_epsilon = 2.0;
    k.delta = 1e-5;
    if (rc == ASEC_OK)
        rc = asec_acct_calibrate(a, ASEC_ACCT_RDP, &k, &s, NULL);
    asec_acct_free(a);
    return rc;
}

static int
oom_pld(void)
{
    asec_acct *a = NULL;
    asec_acct_result r;
    int rc = asec_acct_alloc(&a, NULL);

    if (rc == ASEC_OK)
        rc = asec_acct_add_poisson_gaussian(a, 0.05, 1.0, 50);
    if (rc == ASEC_OK)
        rc = asec_acct_epsilon(a, ASEC_ACCT_PLD, 1e-5, &r);
    asec_acct_free(a);
    return rc;
}

START_TEST(test_oom)
{
    OOM_LOOP(oom_pld());
    OOM_LOOP(oom_rdp());
    OOM_LOOP(oom_events());
    OOM_LOOP(oom_calibrate());
}
END_TEST

/* ------------------------------------------------------------ long */

/* 1e4 random property checks (RELIABILITY.md §0 row 10): monotone in
 * sigma, steps and q, never NaN or negative, calibration never overshoots.
 * Seeded with a fixed LCG: deterministic. */
START_TEST(test_long_properties)
{
    uint64_t st = 0x9e3779b97f4a7c15ULL;
    int checks = 0;

#define U01()                                                                            \
    ((st = st * 6364136223846793005ULL + 1442695040888963407ULL),                        \
     (double)(st >> 11) * 0x1.0p-53)
    while (checks < 10000) {
        double q = exp(log(1e-5) * U01()), s = 0.4 + 4.0 * U01();
        uint64_t T = (uint64_t)exp(log(1e5) * U01()) + 1;
        double d = exp(log(1e-10) + log(1e5) * U01());
        double e0 = rdp_eps(q, s, T, d, 0, 0), e1 = rdp_eps(q, s * 1.01, T, d, 0, 0);
        double e2 = rdp_eps(q, s, T + 10, d, 0, 0),
               e3 = rdp_eps(fmin(1.0, q * 1.1), s, T, d, 0, 0);

        ck_assert(e0 >= 0.0 && isfinite(e0));
        ck_assert_msg(e1 <= e0 && e2 >= e0 && e3 >= e0, "q %g s %g T %llu d %g", q, s,
                      (unsigned long long)T, d);
        checks += 3;
        if (checks % 30 == 0) {
            asec_acct *base = mk(NULL);
            asec_acct_calib k = ASEC_ACCT_CALIB_INIT;
            double sig;

            k.q = q;
            k.steps = T;
            k.target_epsilon = 0.1 + 10.0 * U01();
            k.delta = d;
            ck_assert_int_eq(asec_acct_calibrate(base, ASEC_ACCT_RDP, &k, &sig, NULL),
                             ASEC_OK);
            ck_assert(rdp_eps(q, sig, T, d, 0, 0) <= k.target_epsilon);
            asec_acct_free(base);
            checks++;
        }
    }
#undef U01
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *
acct_suite(void)
{
    Suite *s = suite_create("acct");
    TCase *core = tcase_create("core");
    TCase *ref = tcase_create("reference");
    TCase *prop = tcase_create("property");
    TCase *pld = tcase_create("pld");
    TCase *errors = tcase_create("errors");
    TCase *oom = tcase_create("oom");

    tcase_add_test(core, test_ledger);
    tcase_add_test(core, test_queries_do_not_change_state);
    tcase_add_test(core, test_checkpoint_roundtrip);
    tcase_add_test(core, test_events_json);
    tcase_add_test(core, test_closed_forms);
    tcase_add_test(core, test_other_events);
    suite_add_tcase(s, core);

    tcase_add_test(ref, test_mpfr_log_a);
    tcase_add_test(ref, test_mpfr_log_a_windowed);
    tcase_add_test(ref, test_mpfr_epsilon);
    tcase_add_test(ref, test_wor);
    tcase_add_test(ref, test_anchor_values);
    tcase_add_test(ref, test_math_values);
    tcase_add_test(ref, test_legacy_published);
    tcase_add_test(ref, test_calibration_rdp);
    tcase_set_timeout(ref, 60);
    suite_add_tcase(s, ref);

    tcase_add_test(pld, test_pld_closed_form);
    tcase_add_test(pld, test_pld_fft_composition);
    tcase_add_test(pld, test_pld_anchors);
    tcase_add_test(pld, test_pld_small_epsilon);
    tcase_add_test(pld, test_pld_stress_and_mixed);
    tcase_add_test(pld, test_pld_calibration);
    tcase_set_timeout(pld, 120);
    suite_add_tcase(s, pld);

    tcase_add_test(prop, test_monotone);
    tcase_add_test(prop, test_pld_properties);
    tcase_add_test(prop, test_roundtrip);
    tcase_add_test(prop, test_calibrate_steps_q);
    tcase_set_timeout(prop, 30);
    suite_add_tcase(s, prop);

    tcase_add_test(errors, test_errors_options);
    tcase_add_test(errors, test_errors_events);
    tcase_add_test(errors, test_errors_queries);
    tcase_add_test(errors, test_errors_json);
    suite_add_tcase(s, errors);

    tcase_add_test(oom, test_oom);
    tcase_set_timeout(oom, 30);
    suite_add_tcase(s, oom);

    if (long_tests()) {
        TCase *lng = tcase_create("long");

        tcase_add_test(lng, test_long_properties);
        tcase_set_timeout(lng, 3600);
        suite_add_tcase(s, lng);
    }
    return s;
}

int
main(void)
{
    return asec_test_run(acct_suite());
}
