/* check_dpsgd.c - DP-SGD training (asec_dpsgd(3)).
 *
 * TCases:
 *   core        per-example gradients of the default vit equal B
 *               single-example backward passes; a non-private full-batch
 *               SGD step equals theta - lr grad L; the cosine learning-rate
 *               schedule and version-2 options; training lowers the loss
 *   clip        verified clipping: norms <= C, direction kept, short
 *               vectors untouched, overflow-range vectors
 *   ledger      the handle's ledger equals an accountant fed the same
 *               schedule; target epsilon stops the run at the calibrated
 *               step count
 *   checkpoint  a seeded run split by a checkpoint ends bit-identical to an
 *               uninterrupted one (params, ledger), for every optimiser
 *   stats       the lattice noise has variance (sigma C_eff)^2 per
 *               coordinate (chi-square bound, alpha = 1e-6)
 *   exact       a release-grade SGD step equals, bit for bit, a reference
 *               built from the public pieces: per-example gradients,
 *               asec_dpsgd_clip, asec_noise_snap, int64 sums, the noise
 *               stream "dpsgd/noise" and asec_noise_unsnap; the parameter
 *               average follows its recurrence
 *   convergence asec_dpsgd_sgd_bound against its closed form (MATH.md 3.4),
 *               and the bound holding at every T on a noisy full-batch run
 *               of a small attention regression (the paper's setting)
 *   errors      every documented ASEC_E* of the module
 *   oom         allocation failures in alloc, iterate, checkpoint save/load
 */
#include "config.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "testutil.h"

static asec_data *train;

static void
load_digits(void)
{
    ck_assert_int_eq(asec_init(), ASEC_OK);
    if (train == NULL)
        ck_assert_msg(asec_data_load(&train, ASEC_TEST_DATADIR, "digits", "train") ==
                          ASEC_OK,
                      "%s", asec_errmsg());
}

/* The default vit, seeded init. */
static asec_model *
new_vit(uint64_t seed)
{
    asec_model_arch a;
    asec_model *m = NULL;
    asec_rng *r = NULL;

    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_VIT), ASEC_OK);
    ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, seed, "test/init"), ASEC_OK);
    asec_model_init_params(m, r);
    asec_rng_free(r);
    return m;
}

static asec_dpsgd_data
digits(size_t n)
{
    asec_dpsgd_data d = {n, 0, train->images, NULL, train->labels, NULL};

    return d;
}

static double
norm2(const double *v, size_t n)
{
    /* Another method than the library's max-scaled sum: hypot never
     * overflows for finite arguments (no long double either, which
     * valgrind evaluates in 64 bits). */
    double r = 0.0;

    for (size_t i = 0; i < n; i++)
        r = hypot(r, v[i]);
    return r;
}

/* ------------------------------------------------------------ core */

START_TEST(test_per_example_equals_single)
{
    const size_t B = 6;
    asec_model *m;
    size_t P;
    double *pe, *one, *mean, *acc;
    double losses[6];

    load_digits();
    m = new_vit(1);
    P = asec_model_param_count(m);
    pe = malloc(B * P * sizeof *pe);
    one = malloc(P * sizeof *one);
    mean = malloc(P * sizeof *mean);
    acc = calloc(P, sizeof *acc);
    ck_assert_ptr_nonnull(pe);
    ck_assert_ptr_nonnull(acc);
    {
        asec_model_batch b = {B, 0, train->images, NULL, train->labels, NULL};

        ck_assert_int_eq(asec_model_grad_per_example(m, losses, pe, &b), ASEC_OK);
    }
    for (size_t i = 0; i < B; i++) {
        asec_model_batch b1 = {1,   0, train->images + i * 64, NULL, train->labels + i,
                               NULL};
        asec_model_vec g = {one, NULL, NULL};
        double loss;

        ck_assert_int_eq(asec_model_grad(m, &loss, &g, &b1), ASEC_OK);
        ck_assert_msg(fabs(loss - losses[i]) <= 1e-12 * fabs(loss) + 1e-14,
                      "loss %zu: %.17g vs %.17g", i, loss, losses[i]);
        asec_test_allclose(pe + i * P, one, P, 1e-9, 1e-12, "per-example row");
        for (size_t p = 0; p < P; p++)
            acc[p] += one[p] / (double)B;
    }
    /* Their mean is the batch gradient. */
    {
        asec_model_batch b = {B, 0, train->images, NULL, train->labels, NULL};
        asec_model_vec g = {mean, NULL, NULL};

        ck_assert_int_eq(asec_model_grad(m, NULL, &g, &b), ASEC_OK);
        asec_test_allclose(acc, mean, P, 1e-9, 1e-12, "mean of rows");
    }
    free(pe);
    free(one);
    free(mean);
    free(acc);
    asec_model_free(m);
}
END_TEST

/* Non-private, shuffle with batch = n: one SGD step is theta - lr grad L
 * over the whole set. */
START_TEST(test_nonprivate_step)
{
    const size_t n = 40;
    asec_model *m, *ref;
    asec_rng *rng;
    asec_dpsgd *d = NULL;
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    asec_dpsgd_data dd;
    asec_dpsgd_step st;
    size_t P;
    double *g, *want;

    load_digits();
    dd = digits(n);
    m = new_vit(2);
    ref = new_vit(2);
    P = asec_model_param_count(m);
    g = malloc(P * sizeof *g);
    want = malloc(P * sizeof *want);
    {
        asec_model_batch b = {n, 0, train->images, NULL, train->labels, NULL};
        asec_model_vec gv = {g, NULL, NULL};

        ck_assert_int_eq(asec_model_grad(ref, NULL, &gv, &b), ASEC_OK);
    }
    for (size_t p = 0; p < P; p++)
        want[p] = asec_model_params(ref)[p] - 0.1 * g[p];
    o.optim = ASEC_DPSGD_SGD;
    o.lr = 0.1;
    o.sampling = ASEC_DPSGD_SHUFFLE;
    o.batch = n;
    o.steps = 1;
    o.clip = 0.0;
    o.sigma = 0.0;
    o.chunk = 16; /* three chunks: exercises the chunked sums */
    ck_assert_int_eq(asec_rng_alloc_seeded(&rng, 3, "test"), ASEC_OK);
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &o, rng), ASEC_OK);
    ck_assert_int_eq(asec_dpsgd_iterate(d, &st), ASEC_OK);
    ck_assert_uint_eq(st.batch, n);
    ck_assert(isnan(st.mean_norm));
    asec_test_allclose(asec_model_params(m), want, P, 1e-10, 1e-13, "full-batch SGD");
    ck_assert_int_eq(asec_dpsgd_iterate(d, &st), ASEC_EBUDGET); /* steps done */
    {
        asec_dpsgd_info in;

        asec_dpsgd_get_info(d, &in);
        ck_assert_int_eq(in.private_run, 0);
        ck_assert_uint_eq(asec_acct_num_events(asec_dpsgd_get_acct(d)), 0);
    }
    asec_dpsgd_free(d);
    asec_rng_free(rng);
    asec_model_free(m);
    asec_model_free(ref);
    free(g);
    free(want);
}
END_TEST

/* A short private run (lattice noise, Adam) lowers the training loss. */
/* The cosine schedule: non-private full-batch SGD, 5 steps from lr = 0.2
 * to lr_final = 0.04; step t moves theta by lr_t grad L(theta_{t-1}) with
 * lr_t = 0.04 + 0.16 (1 + cos(pi (t - 1) / 4)) / 2.  Also: version-2
 * options (no schedule fields) are accepted and mean a constant rate. */
START_TEST(test_lr_schedule)
{
    const size_t n = 24;
    asec_model *m;
    asec_rng *rng;
    asec_dpsgd *d = NULL;
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    asec_dpsgd_data dd;
    size_t P;
    double *g, *want;
    asec_model_batch b;

    load_digits();
    dd = digits(n);
    b = (asec_model_batch){n, 0, train->images, NULL, train->labels, NULL};
    m = new_vit(4);
    P = asec_model_param_count(m);
    g = malloc(P * sizeof *g);
    want = malloc(P * sizeof *want);
    o.optim = ASEC_DPSGD_SGD;
    o.lr = 0.2;
    o.schedule = ASEC_DPSGD_COSINE;
    o.lr_final = 0.04;
    o.sampling = ASEC_DPSGD_SHUFFLE;
    o.batch = n;
    o.steps = 5;
    o.clip = 0.0;
    o.sigma = 0.0;
    o.chunk = n;
    ck_assert_int_eq(asec_rng_alloc_seeded(&rng, 3, "test"), ASEC_OK);
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &o, rng), ASEC_OK);
    for (int t = 1; t <= 5; t++) {
        asec_model_vec gv = {g, NULL, NULL};
        double lr = 0.04 + 0.16 * 0.5 * (1.0 + cos(3.14159265358979323846 * (t - 1) / 4.0));

        ck_assert_int_eq(asec_model_grad(m, NULL, &gv, &b), ASEC_OK);
        for (size_t p = 0; p < P; p++)
            want[p] = asec_model_params(m)[p] - lr * g[p];
        ck_assert_int_eq(asec_dpsgd_iterate(d, NULL), ASEC_OK);
        asec_test_allclose(asec_model_params(m), want, P, 1e-10, 1e-13, "cosine step");
    }
    asec_dpsgd_free(d);
    /* Version 2: the schedule fields are ignored (constant rate). */
    o.version = 2;
    o.schedule = (asec_dpsgd_schedule)7; /* would be invalid in version 3 */
    o.lr_final = -1.0;
    o.steps = 1;
    {
        asec_model_vec gv = {g, NULL, NULL};

        ck_assert_int_eq(asec_model_grad(m, NULL, &gv, &b), ASEC_OK);
    }
    for (size_t p = 0; p < P; p++)
        want[p] = asec_model_params(m)[p] - 0.2 * g[p];
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &o, rng), ASEC_OK);
    ck_assert_int_eq(asec_dpsgd_iterate(d, NULL), ASEC_OK);
    asec_test_allclose(asec_model_params(m), want, P, 1e-10, 1e-13, "version 2");
    asec_dpsgd_free(d);
    asec_rng_free(rng);
    asec_model_free(m);
    free(g);
    free(want);
}
END_TEST

START_TEST(test_training_progress)
{
    const size_t n = 256;
    asec_model *m;
    asec_rng *rng;
    asec_dpsgd *d = NULL;
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    asec_dpsgd_data dd;
    double l0, l1, acc;

    load_digits();
    dd = digits(n);
    m = new_vit(4);
    ck_assert_int_eq(asec_dpsgd_evaluate(m, &dd, 0, &l0, &acc), ASEC_OK);
    o.optim = ASEC_DPSGD_ADAM;
    o.lr = 1e-2;
    o.batch = 128;
    o.steps = 40;
    o.sigma = 0.1;
    o.clip = 1.0;
    ck_assert_int_eq(asec_rng_alloc_seeded(&rng, 5, "test"), ASEC_OK);
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &o, rng), ASEC_OK);
    for (size_t t = 0; t < o.steps; t++) {
        asec_dpsgd_step st;

        ck_assert_int_eq(asec_dpsgd_iterate(d, &st), ASEC_OK);
        ck_assert(st.clipped_frac >= 0.0 && st.clipped_frac <= 1.0);
        ck_assert(st.max_norm >= st.mean_norm);
    }
    ck_assert_int_eq(asec_dpsgd_evaluate(m, &dd, 100, &l1, &acc), ASEC_OK);
    ck_assert_msg(l1 < l0 - 0.1, "loss %g -> %g", l0, l1);
    ck_assert_msg(acc > 0.2, "train accuracy %g", acc);
    asec_dpsgd_free(d);
    asec_rng_free(rng);
    asec_model_free(m);
}
END_TEST

/* ------------------------------------------------------------ clip */

START_TEST(test_clip)
{
    const size_t n = 1000;
    double *v = malloc(n * sizeof *v), *w = malloc(n * sizeof *w), nrm;
    asec_rng *r;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 7, "clip"), ASEC_OK);
    for (int trial = 0; trial < 200; trial++) {
        double C = exp(10.0 * (asec_rng_uniform(r) - 0.5)),
               scale = exp(20.0 * (asec_rng_uniform(r) - 0.5));
        int rc;

        for (size_t i = 0; i < n; i++)
            w[i] = v[i] = scale * asec_rng_normal(r);
        rc = asec_dpsgd_clip(v, n, C, &nrm);
        ck_assert_int_ge(rc, 0);
        ck_assert_msg(fabs(nrm - norm2(w, n)) <= 1e-12 * nrm, "norm");
        ck_assert_msg(norm2(v, n) <= C, "trial %d: clipped norm %.17g > C %.17g", trial,
                      norm2(v, n), C);
        if (rc == 0) {
            ck_assert(memcmp(v, w, n * sizeof *v) == 0);
            ck_assert(nrm <= C);
        } else {
            double s = v[0] / w[0];

            ck_assert(nrm > C * (1.0 - 1e-12));
            /* Same direction (one common factor, up to the rounding of each
             * product and of s itself), and tight: within 1e-10. */
            for (size_t i = 0; i < n; i++)
                ck_assert(fabs(v[i] - s * w[i]) <= 4.0 * DBL_EPSILON * fabs(v[i]));
            ck_assert_msg(norm2(v, n) >= C * (1.0 - 1e-10), "clip too loose");
        }
    }
    /* Squares overflow double: max-scaled norm, then the verified scale. */
    for (size_t i = 0; i < n; i++)
        v[i] = (i % 2 ? -1.0 : 1.0) * 1e300;
    ck_assert_int_eq(asec_dpsgd_clip(v, n, 2.0, &nrm), 1);
    ck_assert(isfinite(nrm) && nrm > 1e301);
    ck_assert(norm2(v, n) <= 2.0 && norm2(v, n) > 1.99);
    /* Exactly at C: untouched. */
    v[0] = 3.0;
    v[1] = 4.0;
    ck_assert_int_eq(asec_dpsgd_clip(v, 2, 10.0, NULL), 0);
    ck_assert(v[0] == 3.0 && v[1] == 4.0);
    ck_assert_int_eq(asec_dpsgd_clip(v, 2, 5.0, NULL), 1); /* within the error bound */
    ck_assert(norm2(v, 2) <= 5.0);
    asec_rng_free(r);
    free(v);
    free(w);
}
END_TEST

/* ------------------------------------------------------------ ledger */

static asec_dpsgd *
small_run(asec_model **m, asec_rng **rng, asec_dpsgd_options *o, size_t n, uint64_t seed)
{
    asec_dpsgd *d = NULL;
    asec_dpsgd_data dd = digits(n);

    *m = new_vit(seed);
    ck_assert_int_eq(asec_rng_alloc_seeded(rng, seed, "test/run"), ASEC_OK);
    ck_assert_msg(asec_dpsgd_alloc(&d, *m, &dd, o, *rng) == ASEC_OK, "%s", asec_errmsg());
    return d;
}

START_TEST(test_ledger_matches_accountant)
{
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    asec_model *m;
    asec_rng *rng;
    asec_dpsgd *d;
    asec_acct *ref;
    asec_acct_result a, b;
    asec_dpsgd_info in;

    load_digits();
    o.batch = 16;
    o.steps = 12;
    o.sigma = 1.3;
    o.clip = 0.7;
    d = small_run(&m, &rng, &o, 100, 11);
    for (size_t t = 0; t < o.steps; t++)
        ck_assert_int_eq(asec_dpsgd_iterate(d, NULL), ASEC_OK);
    asec_dpsgd_get_info(d, &in);
    ck_assert(in.q == 0.16);
    ck_assert(in.sigma == 1.3);
    ck_assert(in.sensitivity > 0.7 && in.sensitivity < 0.7 * (1 + 1e-3));
    ck_assert(in.noise_std >= 1.3 * in.sensitivity);
    ck_assert_int_eq(asec_acct_alloc(&ref, NULL), ASEC_OK);
    ck_assert_int_eq(asec_acct_add_poisson_gaussian(ref, 0.16, 1.3, 12), ASEC_OK);
    ck_assert_int_eq(asec_acct_epsilon(asec_dpsgd_get_acct(d), ASEC_ACCT_RDP, 1e-5, &a),
                     ASEC_OK);
    ck_assert_int_eq(asec_acct_epsilon(ref, ASEC_ACCT_RDP, 1e-5, &b), ASEC_OK);
    ck_assert_msg(a.epsilon == b.epsilon, "%.17g vs %.17g", a.epsilon, b.epsilon);
    ck_assert_uint_eq(asec_acct_num_events(asec_dpsgd_get_acct(d)), 1);
    asec_acct_free(ref);
    asec_dpsgd_free(d);
    asec_rng_free(rng);
    asec_model_free(m);
}
END_TEST

START_TEST(test_target_epsilon_stops)
{
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    asec_model *m;
    asec_rng *rng;
    asec_dpsgd *d;
    asec_dpsgd_info in;
    asec_acct_result r;
    uint64_t t = 0;

    load_digits();
    o.batch = 10;
    o.steps = 1000;
    o.sigma = 2.0;
    o.idealized = 1;
    o.target_epsilon = 2.0;
    d = small_run(&m, &rng, &o, 50, 12);
    asec_dpsgd_get_info(d, &in);
    ck_assert(in.budget_steps > 0 && in.budget_steps < 1000);
    while (asec_dpsgd_iterate(d, NULL) == ASEC_OK)
        t++;
    ck_assert_uint_eq(t, in.budget_steps);
    ck_assert_int_eq(asec_acct_epsilon(asec_dpsgd_get_acct(d), ASEC_ACCT_RDP, 1e-5, &r),
                     ASEC_OK);
    ck_assert_msg(r.epsilon <= 2.0, "epsilon %g", r.epsilon);
    /* One more step would exceed the target. */
    {
        asec_acct *c = NULL;

        ck_assert_int_eq(asec_acct_clone(&c, asec_dpsgd_get_acct(d)), ASEC_OK);
        ck_assert_int_eq(asec_acct_step(c, in.q, in.sigma), ASEC_OK);
        ck_assert_int_eq(asec_acct_epsilon(c, ASEC_ACCT_RDP, 1e-5, &r), ASEC_OK);
        ck_assert_msg(r.epsilon > 2.0, "epsilon after one more step %g", r.epsilon);
        asec_acct_free(c);
    }
    asec_dpsgd_free(d);
    asec_rng_free(rng);
    asec_model_free(m);
}
END_TEST

/* ------------------------------------------------------------ checkpoint */

START_TEST(test_checkpoint_resume_identical)
{
    static const asec_dpsgd_optim optims[] = {ASEC_DPSGD_SGD, ASEC_DPSGD_MOMENTUM,
                                              ASEC_DPSGD_ADAM};
    asec_dpsgd_optim optim = optims[_i % 3];
    asec_dpsgd_sampling samp = _i / 3 ? ASEC_DPSGD_SHUFFLE : ASEC_DPSGD_POISSON;
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    asec_model *m1, *m2;
    asec_rng *r1, *r2;
    asec_dpsgd *d1, *d2;
    char *dir, path[4096], *j1, *j2;

    load_digits();
    o.optim = optim;
    o.sampling = samp;
    o.lr = optim == ASEC_DPSGD_ADAM ? 1e-3 : 0.05;
    o.batch = 12;
    o.steps = 9;
    o.sigma = 1.0;
    o.chunk = 5;
    dir = asec_test_mkdtemp();
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    /* Uninterrupted. */
    d1 = small_run(&m1, &r1, &o, 60, 21);
    for (size_t t = 0; t < o.steps; t++)
        ck_assert_int_eq(asec_dpsgd_iterate(d1, NULL), ASEC_OK);
    /* Interrupted after 4 steps: a checkpoint, a fresh process (new handles,
     * a model initialised differently), load, the remaining steps. */
    d2 = small_run(&m2, &r2, &o, 60, 21);
    for (size_t t = 0; t < 4; t++)
        ck_assert_int_eq(asec_dpsgd_iterate(d2, NULL), ASEC_OK);
    ck_assert_msg(asec_dpsgd_checkpoint_save(d2, path) == ASEC_OK, "%s", asec_errmsg());
    asec_dpsgd_free(d2);
    asec_model_free(m2);
    asec_rng_free(r2);
    {
        asec_model_arch a;
        asec_dpsgd_data dd = digits(60);

        ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_VIT), ASEC_OK);
        ck_assert_int_eq(asec_model_alloc(&m2, &a), ASEC_OK); /* all zero */
        ck_assert_int_eq(asec_rng_alloc_seeded(&r2, 21, "test/run"), ASEC_OK);
        ck_assert_int_eq(asec_dpsgd_alloc(&d2, m2, &dd, &o, r2), ASEC_OK);
    }
    ck_assert_msg(asec_dpsgd_checkpoint_load(d2, path) == ASEC_OK, "%s", asec_errmsg());
    ck_assert_uint_eq(asec_dpsgd_steps_done(d2), 4);
    while (asec_dpsgd_iterate(d2, NULL) == ASEC_OK)
        ;
    ck_assert_uint_eq(asec_dpsgd_steps_done(d2), o.steps);
    ck_assert_msg(memcmp(asec_model_params(m1), asec_model_params(m2),
                         asec_model_param_count(m1) * sizeof(double)) == 0,
                  "%s/%s: resumed parameters differ", asec_dpsgd_optim_name(optim),
                  asec_dpsgd_sampling_name(samp));
    ck_assert_int_eq(asec_acct_to_json(asec_dpsgd_get_acct(d1), &j1), ASEC_OK);
    ck_assert_int_eq(asec_acct_to_json(asec_dpsgd_get_acct(d2), &j2), ASEC_OK);
    ck_assert_str_eq(j1, j2);
    asec_acct_json_free(j1);
    asec_acct_json_free(j2);
    asec_dpsgd_free(d1);
    asec_dpsgd_free(d2);
    asec_model_free(m1);
    asec_model_free(m2);
    asec_rng_free(r1);
    asec_rng_free(r2);
    asec_test_rmtree(dir);
}
END_TEST

/* ------------------------------------------------------------ stats */

/* With SGD and lr = 1, theta_1 - theta_0 = -(sum of clipped + noise) / B.
 * With sigma = 1000 the clipped sum (norm <= B C) is negligible beside the
 * noise (norm ~ sigma C sqrt(P)), so B (theta_0 - theta_1) / C_eff is
 * sigma N(0, 1) per coordinate up to a relative 1/(sigma sqrt(P)).  The
 * sample variance of P = 26474 coordinates has relative sd sqrt(2/P) =
 * 0.0087; the bound 6 sd = 5.2% has two-sided alpha < 1e-8 (normal
 * approximation of the chi-square). */
START_TEST(test_noise_variance)
{
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    asec_model *m;
    asec_rng *rng;
    asec_dpsgd *d;
    asec_dpsgd_info in;
    double *t0, s2 = 0.0, mean = 0.0;
    size_t P;

    load_digits();
    o.optim = ASEC_DPSGD_SGD;
    o.lr = 1.0;
    o.batch = 8;
    o.steps = 1;
    o.sigma = 1000.0;
    o.clip = 0.5;
    o.idealized = _i;
    d = small_run(&m, &rng, &o, 32, 31);
    P = asec_model_param_count(m);
    t0 = malloc(P * sizeof *t0);
    memcpy(t0, asec_model_params(m), P * sizeof *t0);
    ck_assert_int_eq(asec_dpsgd_iterate(d, NULL), ASEC_OK);
    asec_dpsgd_get_info(d, &in);
    for (size_t p = 0; p < P; p++) {
        double z = (t0[p] - asec_model_params(m)[p]) * (double)o.batch / in.noise_std;

        mean += z;
        s2 += z * z;
    }
    mean /= (double)P;
    s2 /= (double)P;
    ck_assert_msg(fabs(s2 - 1.0) < 6.0 * sqrt(2.0 / (double)P), "variance ratio %g", s2);
    ck_assert_msg(fabs(mean) < 6.0 / sqrt((double)P), "mean %g", mean);
    if (!_i) {
        ck_assert(in.granularity > 0.0);
        ck_assert(in.noise_var_den == 1 && in.noise_var_num > 0);
        ck_assert(in.noise_std >= in.sigma * in.sensitivity);
        /* The variance is rounded up to a multiple of t = floor(sqrt(var))
         * + 1 (the sampler's Laplace scale): the std grows by at most
         * 1 / (2 sqrt(var)) relative, below 2^-18 with 20 lattice bits. */
        ck_assert(in.noise_std <= in.sigma * in.sensitivity * (1 + ldexp(1.0, -18)));
        {
            uint64_t v = in.noise_var_num, t = (uint64_t)sqrt((double)v);

            while (t * t > v)
                t--;
            while ((t + 1) * (t + 1) <= v)
                t++;
            ck_assert_uint_eq(v % (t + 1), 0);
        }
    } else {
        ck_assert(in.granularity == 0.0 && in.sensitivity == 0.5);
    }
    free(t0);
    asec_dpsgd_free(d);
    asec_rng_free(rng);
    asec_model_free(m);
}
END_TEST

/* ------------------------------------------------------------ exact */

/* Full batch (shuffle, batch = n: the sum does not depend on the order),
 * SGD with lr 1: theta_1 = theta_0 - unsnap(sum_b snap(clip(g_b)) + noise) / n,
 * where the noise is drawn from the child stream "dpsgd/noise" exactly as
 * the handle draws it. */
START_TEST(test_exact_lattice_step)
{
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    const size_t n = 24;
    asec_model *m, *ref;
    asec_rng *rng, *rn;
    asec_dpsgd *d;
    asec_dpsgd_info in;
    asec_dpsgd_data dd;
    asec_model_batch b;
    double *pe, *losses, *upd, *t0, *ema, bt;
    int64_t *acc, *row, *nz;
    size_t P;

    load_digits();
    o.optim = ASEC_DPSGD_SGD;
    o.lr = 1.0;
    o.sampling = ASEC_DPSGD_SHUFFLE;
    o.batch = n;
    o.steps = 2;
    o.sigma = 0.8;
    o.clip = 0.05; /* most examples are clipped */
    o.ema = 0.9;
    d = small_run(&m, &rng, &o, n, 41);
    ck_assert_int_eq(asec_model_clone(&ref, m), ASEC_OK);
    P = asec_model_param_count(m);
    pe = malloc(n * P * sizeof *pe);
    losses = malloc(n * sizeof *losses);
    upd = malloc(P * sizeof *upd);
    t0 = malloc(P * sizeof *t0);
    ema = malloc(P * sizeof *ema);
    acc = calloc(P, sizeof *acc);
    row = malloc(P * sizeof *row);
    nz = malloc(P * sizeof *nz);
    memcpy(t0, asec_model_params(m), P * sizeof *t0);
    ck_assert(asec_dpsgd_ema(d) != NULL);
    ck_assert_int_eq(asec_dpsgd_iterate(d, NULL), ASEC_OK);
    asec_dpsgd_get_info(d, &in);
    ck_assert(in.granularity > 0.0);

    dd = digits(n);
    b = (asec_model_batch){n, 0, dd.x, NULL, dd.labels, NULL};
    ck_assert_int_eq(asec_model_grad_per_example(ref, losses, pe, &b), ASEC_OK);
    for (size_t e = 0; e < n; e++) {
        ck_assert_int_ge(asec_dpsgd_clip(pe + e * P, P, o.clip, NULL), 0);
        ck_assert_int_eq(asec_noise_snap(row, pe + e * P, P, in.granularity), ASEC_OK);
        ck_assert_int_eq(asec_noise_acc_add(acc, row, P), ASEC_OK);
    }
    ck_assert_int_eq(asec_rng_derive(&rn, rng, "dpsgd/noise"), ASEC_OK);
    ck_assert_int_eq(asec_noise_dgauss(nz, P, rn, in.noise_var_num, in.noise_var_den,
                                       ASEC_NOISE_PATH_AUTO),
                     ASEC_OK);
    ck_assert_int_eq(asec_noise_acc_add(acc, nz, P), ASEC_OK);
    ck_assert_int_eq(asec_noise_unsnap(upd, acc, P, in.granularity), ASEC_OK);
    for (size_t p = 0; p < P; p++) {
        double want = t0[p] - o.lr * (upd[p] / (double)n);

        ck_assert_msg(asec_model_params(m)[p] == want, "param %zu: %.17g vs %.17g", p,
                      asec_model_params(m)[p], want);
    }
    /* The average: a_0 = theta_0, b_1 = min(0.9, 2 / 11). */
    bt = fmin(0.9, 2.0 / 11.0);
    for (size_t p = 0; p < P; p++)
        ema[p] = bt * t0[p] + (1.0 - bt) * asec_model_params(m)[p];
    ck_assert_int_eq(asec_dpsgd_iterate(d, NULL), ASEC_OK);
    bt = fmin(0.9, 3.0 / 12.0);
    for (size_t p = 0; p < P; p++) {
        double want = bt * ema[p] + (1.0 - bt) * asec_model_params(m)[p];

        ck_assert_msg(asec_dpsgd_ema(d)[p] == want, "ema %zu", p);
    }
    free(pe);
    free(losses);
    free(upd);
    free(t0);
    free(ema);
    free(acc);
    free(row);
    free(nz);
    asec_rng_free(rn);
    asec_dpsgd_free(d);
    asec_rng_free(rng);
    asec_model_free(ref);
    asec_model_free(m);
}
END_TEST

/* ------------------------------------------------------------ errors */

/* ------------------------------------------------------------ convergence */

/* The MATH.md 3.4 bound against its closed form. */
START_TEST(test_sgd_bound_values)
{
    asec_dpsgd_bound_params bp = {3.0, 1.0, 2.0, 0.25, 0.5, 0.01, 100, 40};
    asec_dpsgd_bound b;

    ck_assert_int_eq(asec_dpsgd_sgd_bound(&b, &bp), ASEC_OK);
    /* 2 (3 - 1) / (0.25 40) = 0.4; 2 0.25 (0.5 + 100 0.01) = 0.75 */
    ck_assert_double_eq_tol(b.optimization, 0.4, 1e-15);
    ck_assert_double_eq_tol(b.noise, 0.75, 1e-15);
    ck_assert_double_eq_tol(b.total, 1.15, 1e-15);
    bp.eta = 0.5; /* eta = 1/beta exactly: still applies */
    ck_assert_int_eq(asec_dpsgd_sgd_bound(&b, &bp), ASEC_OK);
    ck_assert_double_eq_tol(b.total, 0.2 + 1.5, 1e-15);
}
END_TEST

/* A noisy full-batch run on a small attention regression (the paper's
 * setting): with no clipping and eta <= 1/beta, the measured mean of
 * ||grad L(theta_t)||^2 stays below the bound at every T, with beta the
 * largest secant ratio along the path (times a margin of 2 for the
 * curvature between iterates). */
START_TEST(test_sgd_bound_holds)
{
    enum { N = 48, D = 4, NT = 4, T = 40 };
    asec_model_arch a;
    asec_model *m = NULL, *teacher = NULL;
    asec_rng *r = NULL;
    asec_dpsgd *d = NULL;
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    asec_dpsgd_info in;
    asec_dpsgd_step st;
    static double A[N * NT * D], E[N * NT * D], g[T + 1][2 * D * D], th[T + 1][2 * D * D];
    double loss[T + 1], beta = 0.0, run = 0.0;
    size_t P;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_ATTN_REGRESSION), ASEC_OK);
    a.channels = D;
    a.seq_len = NT;
    a.scale = 0.5;
    ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_OK);
    ck_assert_int_eq(asec_model_alloc(&teacher, &a), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 17, "bound"), ASEC_OK);
    P = asec_model_param_count(m);
    ck_assert_uint_eq(P, 2 * D * D);
    asec_model_init_params(teacher, r);
    asec_model_init_params(m, r);
    for (size_t i = 0; i < N * NT; i++) { /* unit token rows */
        double nn = 0.0;

        for (size_t j = 0; j < D; j++) {
            A[i * D + j] = asec_rng_normal(r);
            nn += A[i * D + j] * A[i * D + j];
        }
        for (size_t j = 0; j < D; j++)
            A[i * D + j] /= sqrt(nn);
    }
    {
        asec_model_batch b = {N, NT, A, NULL, NULL, NULL};

        ck_assert_int_eq(asec_model_forward(teacher, NULL, NULL, E, &b), ASEC_OK);
    }
    o.optim = ASEC_DPSGD_SGD;
    o.lr = 0.5;
    o.batch = N; /* q = 1 */
    o.steps = T;
    o.clip = 50.0;
    o.sigma = 2.0;
    o.idealized = 1;
    {
        asec_dpsgd_data dd = {N, NT, A, NULL, NULL, E};

        ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &o, r), ASEC_OK);
    }
    asec_dpsgd_get_info(d, &in);
    ck_assert_double_eq(in.q, 1.0);
    for (size_t t = 0; t <= T; t++) {
        asec_model_batch b = {N, NT, A, NULL, NULL, E};
        asec_model_vec gv = {g[t], NULL, NULL};

        memcpy(th[t], asec_model_params(m), P * sizeof(double));
        ck_assert_int_eq(asec_model_grad(m, &loss[t], &gv, &b), ASEC_OK);
        if (t > 0) {
            double dg = 0.0, dt = 0.0;

            for (size_t i = 0; i < P; i++) {
                dg += (g[t][i] - g[t - 1][i]) * (g[t][i] - g[t - 1][i]);
                dt += (th[t][i] - th[t - 1][i]) * (th[t][i] - th[t - 1][i]);
            }
            beta = fmax(beta, sqrt(dg / dt));
        }
        if (t < T) {
            ck_assert_int_eq(asec_dpsgd_iterate(d, &st), ASEC_OK);
            ck_assert_double_eq(st.clipped_frac, 0.0);
            ck_assert_uint_eq(st.batch, N);
        }
    }
    beta *= 2.0;
    ck_assert_msg(o.lr * beta <= 1.0, "eta beta = %g", o.lr * beta);
    for (size_t t = 1; t <= T; t++) {
        asec_dpsgd_bound_params bp;
        asec_dpsgd_bound bd;
        double gn = 0.0, nv = in.noise_std / N;

        for (size_t i = 0; i < P; i++)
            gn += g[t - 1][i] * g[t - 1][i];
        run += gn;
        bp = (asec_dpsgd_bound_params){loss[0], 0.0, beta, o.lr, 0.0, nv * nv, P, t};
        ck_assert_int_eq(asec_dpsgd_sgd_bound(&bd, &bp), ASEC_OK);
        ck_assert_msg(run / (double)t <= bd.total, "T = %zu: measured %g > bound %g", t,
                      run / (double)t, bd.total);
    }
    asec_dpsgd_free(d);
    asec_model_free(m);
    asec_model_free(teacher);
    asec_rng_free(r);
}
END_TEST

START_TEST(test_errors)
{
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT, bad;
    asec_dpsgd_data dd;
    asec_model *m;
    asec_rng *rng;
    asec_dpsgd *d = NULL;
    double v[2] = {1.0, NAN};
    char *dir, path[4096];
    asec_dpsgd_optim op;
    asec_dpsgd_sampling sp;

    load_digits();
    dd = digits(50);
    m = new_vit(41);
    ck_assert_int_eq(asec_rng_alloc_seeded(&rng, 41, "test"), ASEC_OK);
    o.batch = 10;
    o.steps = 3;
#define BAD(field, value, code)                                                          \
    do {                                                                                 \
        bad = o;                                                                         \
        bad.field = value;                                                               \
        ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &bad, rng), code);                 \
        ck_assert_ptr_null(d);                                                           \
    } while (0)
    BAD(version, 99, ASEC_EINVAL);
    BAD(version, 1, ASEC_EINVAL);
    BAD(schedule, (asec_dpsgd_schedule)2, ASEC_EINVAL);
    bad = o;
    bad.schedule = ASEC_DPSGD_COSINE;
    bad.lr_final = 2.0 * bad.lr; /* above lr */
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &bad, rng), ASEC_EINVAL);
    bad.lr_final = NAN;
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &bad, rng), ASEC_EINVAL);
    ck_assert_ptr_null(d);
    BAD(lr, 0.0, ASEC_EINVAL);
    BAD(ema, 1.0, ASEC_EINVAL);
    BAD(lr, NAN, ASEC_EINVAL);
    BAD(momentum, 1.0, ASEC_EINVAL);
    BAD(beta2, -0.1, ASEC_EINVAL);
    BAD(adam_eps, 0.0, ASEC_EINVAL);
    BAD(batch, 0, ASEC_EINVAL);
    BAD(batch, 51, ASEC_EINVAL);
    BAD(steps, 0, ASEC_EINVAL);
    BAD(clip, -1.0, ASEC_EINVAL);
    BAD(clip, 0.0, ASEC_EINVAL); /* sigma 1 without clipping */
    BAD(sigma, INFINITY, ASEC_EINVAL);
    BAD(granularity_bits, 4, ASEC_EINVAL);
    BAD(granularity_bits, 31, ASEC_EINVAL);
    BAD(optim, (asec_dpsgd_optim)7, ASEC_EINVAL);
    BAD(sampling, (asec_dpsgd_sampling)7, ASEC_EINVAL);
    bad = o;
    bad.target_epsilon = 1.0;
    bad.delta = 0.0;
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &bad, rng), ASEC_EINVAL);
    /* A target that no step meets; and a non-private run with a target. */
    bad = o;
    bad.target_epsilon = 1e-4;
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &bad, rng), ASEC_EBUDGET);
    bad.clip = 0.0;
    bad.sigma = 0.0;
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &bad, rng), ASEC_EBUDGET);
    /* Data that does not fit the model. */
    {
        asec_dpsgd_data e = dd;

        e.labels = NULL;
        ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &e, &o, rng), ASEC_EINVAL);
        e = dd;
        e.n = 0;
        ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &e, &o, rng), ASEC_EINVAL);
        e = dd;
        e.T = 5; /* a vit has exactly 16 patches */
        ck_assert_int_ne(asec_dpsgd_alloc(&d, m, &e, &o, rng), ASEC_OK);
    }
    /* Lattice range: with sigma 1e-8 and 30 bits, C / g ~ 2^56 leaves the
     * int64 sum's and the lattice's exact range. */
    bad = o;
    bad.sigma = 1e-8;
    bad.granularity_bits = 30;
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &bad, rng), ASEC_ELIMIT);
    /* clip */
    ck_assert_int_eq(asec_dpsgd_clip(v, 2, 1.0, NULL), ASEC_ENUMERIC);
    ck_assert(v[0] == 1.0);
    ck_assert_int_eq(asec_dpsgd_clip(v, 1, 0.0, NULL), ASEC_EINVAL);
    ck_assert_int_eq(asec_dpsgd_clip(v, 1, INFINITY, NULL), ASEC_EINVAL);
    /* names */
    ck_assert_int_eq(asec_dpsgd_optim_parse(&op, "rmsprop"), ASEC_EINVAL);
    ck_assert_int_eq(asec_dpsgd_optim_parse(&op, "momentum"), ASEC_OK);
    ck_assert_int_eq(op, ASEC_DPSGD_MOMENTUM);
    ck_assert_int_eq(asec_dpsgd_sampling_parse(&sp, "uniform"), ASEC_EINVAL);
    ck_assert_int_eq(asec_dpsgd_sampling_parse(&sp, "shuffle"), ASEC_OK);
    ck_assert_str_eq(asec_dpsgd_optim_name((asec_dpsgd_optim)9), "?");
    ck_assert_str_eq(asec_dpsgd_sampling_name(ASEC_DPSGD_POISSON), "poisson");

    /* Checkpoints: missing file, not a checkpoint, other options. */
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &o, rng), ASEC_OK);
    ck_assert_int_eq(asec_dpsgd_iterate(d, NULL), ASEC_OK);
    dir = asec_test_mkdtemp();
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    ck_assert_int_eq(asec_dpsgd_checkpoint_load(d, path), ASEC_ENOENT);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_int_eq(asec_model_save(m, path), ASEC_OK);
    ck_assert_int_eq(asec_dpsgd_checkpoint_load(d, path), ASEC_EFORMAT);
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    ck_assert_int_eq(asec_dpsgd_checkpoint_save(d, path), ASEC_OK);
    asec_dpsgd_free(d);
    bad = o;
    bad.lr = 0.5;
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &bad, rng), ASEC_OK);
    ck_assert_int_eq(asec_dpsgd_checkpoint_load(d, path), ASEC_EINVAL);
    ck_assert_uint_eq(asec_dpsgd_steps_done(d), 0); /* unchanged */
    asec_dpsgd_free(d);
    /* Another seed. */
    {
        asec_rng *r2;

        ck_assert_int_eq(asec_rng_alloc_seeded(&r2, 42, "test"), ASEC_OK);
        ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &o, r2), ASEC_OK);
        ck_assert_int_eq(asec_dpsgd_checkpoint_load(d, path), ASEC_EINVAL);
        asec_dpsgd_free(d);
        asec_rng_free(r2);
    }
    /* Non-finite parameters reach the softmax: ASEC_ENUMERIC, no charge. */
    ck_assert_int_eq(asec_dpsgd_alloc(&d, m, &dd, &o, rng), ASEC_OK);
    for (size_t p = 0; p < asec_model_param_count(m); p++)
        asec_model_params(m)[p] = NAN;
    ck_assert_int_ne(asec_dpsgd_iterate(d, NULL), ASEC_OK);
    ck_assert_uint_eq(asec_acct_num_events(asec_dpsgd_get_acct(d)), 0);
    ck_assert_uint_eq(asec_dpsgd_steps_done(d), 0);
    asec_dpsgd_free(d);
    asec_dpsgd_free(NULL);
    asec_test_rmtree(dir);
    asec_rng_free(rng);
    asec_model_free(m);
#undef BAD
    /* asec_dpsgd_sgd_bound: every out-of-range input is ASEC_EINVAL. */
    {
        const asec_dpsgd_bound_params ok = {3.0, 1.0, 2.0, 0.25, 0.5, 0.01, 100, 40};
        asec_dpsgd_bound_params bp;
        asec_dpsgd_bound b;

#define BOUND_BAD(field, value)                                                          \
    do {                                                                                 \
        bp = ok;                                                                         \
        bp.field = value;                                                                \
        ck_assert_int_eq(asec_dpsgd_sgd_bound(&b, &bp), ASEC_EINVAL);                    \
    } while (0)
        BOUND_BAD(loss0, 0.5); /* below loss_min */
        BOUND_BAD(loss0, NAN);
        BOUND_BAD(beta, 0.0);
        BOUND_BAD(eta, 0.0);
        BOUND_BAD(eta, 0.5000001); /* eta > 1/beta */
        BOUND_BAD(var_s, -1.0);
        BOUND_BAD(noise_var, INFINITY);
        BOUND_BAD(params, 0);
        BOUND_BAD(steps, 0);
        ck_assert(strstr(asec_errmsg(), "steps") != NULL);
#undef BOUND_BAD
    }
}
END_TEST

/* ------------------------------------------------------------ oom */

START_TEST(test_oom)
{
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    asec_dpsgd_data dd;
    asec_model *m;
    asec_rng *rng;
    char *dir, path[4096];
    int rc = ASEC_ENOMEM;

    load_digits();
    dd = digits(30);
    m = new_vit(51);
    ck_assert_int_eq(asec_rng_alloc_seeded(&rng, 51, "test"), ASEC_OK);
    o.batch = 6;
    o.steps = 2;
    o.target_epsilon = 50.0;
    dir = asec_test_mkdtemp();
    snprintf(path, sizeof path, "%s/ck.safetensors", dir);
    for (int n = 0; rc != ASEC_OK; n++) {
        asec_dpsgd *d = NULL;

        ck_assert_msg(n < 100000, "no success after %d allocations", n);
        asec_debug_fail_alloc(n);
        rc = asec_dpsgd_alloc(&d, m, &dd, &o, rng);
        if (rc == ASEC_OK)
            rc = asec_dpsgd_iterate(d, NULL);
        if (rc == ASEC_OK)
            rc = asec_dpsgd_checkpoint_save(d, path);
        if (rc == ASEC_OK)
            rc = asec_dpsgd_checkpoint_load(d, path);
        if (rc == ASEC_OK)
            rc = asec_dpsgd_iterate(d, NULL);
        asec_debug_fail_alloc(-1);
        ck_assert_msg(rc == ASEC_OK || rc == ASEC_ENOMEM, "n = %d: %d %s", n, rc,
                      asec_errmsg());
        asec_dpsgd_free(d);
    }
    asec_test_rmtree(dir);
    asec_rng_free(rng);
    asec_model_free(m);
}
END_TEST

static Suite *
dpsgd_suite(void)
{
    Suite *s = suite_create("dpsgd");
    TCase *tc;

    tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_per_example_equals_single);
    tcase_add_test(tc, test_nonprivate_step);
    tcase_add_test(tc, test_lr_schedule);
    tcase_add_test(tc, test_training_progress);
    suite_add_tcase(s, tc);

    tc = tcase_create("clip");
    tcase_add_test(tc, test_clip);
    suite_add_tcase(s, tc);

    tc = tcase_create("ledger");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ledger_matches_accountant);
    tcase_add_test(tc, test_target_epsilon_stops);
    suite_add_tcase(s, tc);

    tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_checkpoint_resume_identical, 0, 6);
    suite_add_tcase(s, tc);

    tc = tcase_create("stats");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_noise_variance, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("exact");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_exact_lattice_step);
    suite_add_tcase(s, tc);

    tc = tcase_create("convergence");
    tcase_add_test(tc, test_sgd_bound_values);
    tcase_add_test(tc, test_sgd_bound_holds);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("oom");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_oom);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return asec_test_run(dpsgd_suite());
}
