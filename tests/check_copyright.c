/* check_copyright.c - the regression family, the copyright objective and
 * its Newton-type solvers (defenses/copyright.c).
 *
 * Oracles: MATH.md §9.1 T1, T4, T5, T6 (closed-form values computed
 * independently in IEEE double), §9.5 (the quadratic Newton trace and
 * x*), central finite differences for every gradient and Hessian, and the
 * exact Newton solution for the Woodbury, CG and sketched solvers.  The
 * engine's context features are checked against the engine's own logits
 * (head(h) must reproduce them) and LayerNorm statistics. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "testutil.h"

/* ---------------------------------------------------------------- T1 data */

static double t1_a[6] = {1, 0, 0, 1, 1, 1};
static double t1_b[3] = {0.2, 0.3, 0.5};
static double t1_x[2] = {0.1, -0.2};
static double t1_w[3] = {1, 1, 1};
static double t4_a1[4] = {1, 0, 1, 1};
static double t4_b1[2] = {0.4, 0.6};

static asec_copyright_problem
t1_problem(void)
{
    asec_copyright_problem p = ASEC_COPYRIGHT_PROBLEM_INIT;

    p.a = asec_mat_view(t1_a, 3, 2);
    p.b = t1_b;
    p.w = t1_w;
    return p;
}

/* ---------------------------------------------------------------- random */

static double
urand(asec_rng *r)
{
    return 2.0 * asec_rng_uniform(r) - 1.0;
}

/* A small random problem of family fam: n rows, d columns, the first n1
 * copyrighted; b a distribution for the softmax family.  Buffers are
 * static (one problem at a time). */
static double r_a[64 * 8], r_b[64], r_w[64], r_b1[64], r_b2[64];

static void
normalise(double *v, size_t n)
{
    double s = 0.0;

    for (size_t i = 0; i < n; i++)
        s += v[i];
    for (size_t i = 0; i < n; i++)
        v[i] /= s;
}

static asec_copyright_problem
random_problem(asec_copyright_family fam, size_t n, size_t d, size_t n1, double gamma,
               unsigned seed)
{
    asec_copyright_problem p = ASEC_COPYRIGHT_PROBLEM_INIT;
    asec_rng *r;

    ck_assert_int_eq(asec_rng_alloc_seeded(&r, seed, "check_copyright/problem"), ASEC_OK);
    for (size_t i = 0; i < n * d; i++)
        r_a[i] = 0.5 * urand(r);
    for (size_t i = 0; i < n; i++) {
        r_b[i] = 0.2 + asec_rng_uniform(r);
        r_w[i] = 1.0 + 0.5 * asec_rng_uniform(r);
    }
    if (fam == ASEC_COPYRIGHT_SOFTMAX)
        normalise(r_b, n);
    memcpy(r_b1, r_b, n1 * sizeof(double));
    memcpy(r_b2, r_b + n1, (n - n1) * sizeof(double));
    if (fam == ASEC_COPYRIGHT_SOFTMAX) {
        normalise(r_b1, n1);
        normalise(r_b2, n - n1);
    }
    p.family = fam;
    p.a = asec_mat_view(r_a, n, d);
    p.b = r_b;
    p.w = r_w;
    p.a1 = asec_mat_view(r_a, n1, d);
    p.b1 = r_b1;
    p.a2 = asec_mat_view(r_a + n1 * d, n - n1, d);
    p.b2 = r_b2;
    p.gamma = gamma;
    asec_rng_free(r);
    return p;
}

/* ---------------------------------------------------------------- reference */

START_TEST(test_t1_softmax)
{
    /* MATH.md §9.1 T1. */
    static const double grad_ref[2] = {0.007060324373, -0.3691008823};
    static const double h_ref[4] = {2.060681772, 0.9441534899, 0.9441534899, 2.100180271};
    static const double eig_ref[2] = {1.136071002, 3.02479104};
    static const double b_ref[9] = {
        0.100180271,    -0.05584651013, -0.04433376082, -0.05584651013, 0.06068177173,
        -0.004835261599, -0.04433376082, -0.004835261599, 0.04916902242};
    static const double f_ref[3] = {0.3906938333, 0.2894331104, 0.3198730563};
    asec_copyright_problem p = t1_problem();
    asec_copyright_losses l;
    double grad[2], hd[4], eig[2], bd[9], z[3], f[3];
    asec_mat h = asec_mat_view(hd, 2, 2), bm = asec_mat_view(bd, 3, 3);

    ck_assert_int_eq(asec_copyright_eval(&l, grad, &h, &p, t1_x), ASEC_OK);
    ck_assert(fabs(l.l_cpr - 0.06446075652) <= 1e-9 * 0.06446075652);
    asec_test_allclose(grad, grad_ref, 2, 1e-9, 1e-12, "T1 grad");
    asec_test_allclose(hd, h_ref, 4, 1e-9, 1e-12, "T1 Hessian");
    ck_assert_int_eq(asec_mat_eigh(eig, NULL, &h), ASEC_OK);
    asec_test_allclose(eig, eig_ref, 2, 1e-9, 1e-12, "T1 eig(H)");
    z[0] = 0.1;
    z[1] = -0.2;
    z[2] = -0.1;
    ck_assert_int_eq(asec_vec_softmax(f, z, 3), ASEC_OK);
    asec_test_allclose(f, f_ref, 3, 1e-9, 1e-12, "T1 f");
    ck_assert_int_eq(asec_copyright_curvature(&bm, ASEC_COPYRIGHT_SOFTMAX, z, t1_b, 3),
                     ASEC_OK);
    asec_test_allclose(bd, b_ref, 9, 1e-9, 1e-12, "T1 B(x)");
}
END_TEST

START_TEST(test_t6_curvature)
{
    /* T6: f = softmax(0, 0), b = [1, 0]: B = S(f)^2 = [[.125, -.125], [-.125, .125]]. */
    static const double ref[4] = {0.125, -0.125, -0.125, 0.125};
    double z[2] = {0, 0}, b[2] = {1, 0}, bd[4];
    asec_mat bm = asec_mat_view(bd, 2, 2);

    ck_assert_int_eq(asec_copyright_curvature(&bm, ASEC_COPYRIGHT_SOFTMAX, z, b, 2),
                     ASEC_OK);
    asec_test_allclose(bd, ref, 4, 1e-14, 1e-15, "T6 B");
}
END_TEST

START_TEST(test_t4_copyright)
{
    /* MATH.md §9.1 T4: copyright rows A1 = [[1,0],[1,1]], b1 = [0.4, 0.6],
     * gamma = 0.5, w = 1 on all of A. */
    static const double grad_ref[2] = {0.007060324373, 73.21316972};
    static const double h_ref[4] = {2.060681772, 0.9441534899, 0.9441534899, 374.0941701};
    static const double eig_ref[2] = {2.058285697, 374.0965661};
    asec_copyright_problem p = t1_problem();
    asec_copyright_losses l;
    double grad[2], hd[4], eig[2];
    asec_mat h = asec_mat_view(hd, 2, 2);

    p.a1 = asec_mat_view(t4_a1, 2, 2);
    p.b1 = t4_b1;
    p.gamma = 0.5;
    ck_assert_int_eq(asec_copyright_eval(&l, grad, &h, &p, t1_x), ASEC_OK);
    ck_assert(fabs(l.l1 - 0.02245022675) <= 1e-9 * 0.02245022675);
    ck_assert(fabs(l.l_cpr - 22.33595073) <= 1e-9 * 22.33595073);
    asec_test_allclose(grad, grad_ref, 2, 1e-9, 1e-12, "T4 grad");
    asec_test_allclose(hd, h_ref, 4, 1e-9, 1e-12, "T4 Hessian");
    ck_assert_int_eq(asec_mat_eigh(eig, NULL, &h), ASEC_OK);
    asec_test_allclose(eig, eig_ref, 2, 1e-9, 1e-12, "T4 eig(H)");
    ck_assert(isnan(l.tau)); /* no a2 given */
}
END_TEST

START_TEST(test_t5_rescaled)
{
    /* MATH.md §9.1 T5: rescaled exp regression on the T1 A, b, x (no w). */
    static const double grad_ref[2] = {0.4483682463, -0.2169004735};
    asec_copyright_problem p = t1_problem();
    asec_copyright_losses l;
    double grad[2];

    p.family = ASEC_COPYRIGHT_RESCALED_EXP;
    p.w = NULL;
    ck_assert_int_eq(asec_copyright_eval(&l, grad, NULL, &p, t1_x), ASEC_OK);
    ck_assert(fabs(l.l - 0.2757468697) <= 1e-9 * 0.2757468697);
    ck_assert(l.l_reg == 0.0);
    asec_test_allclose(grad, grad_ref, 2, 1e-9, 1e-12, "T5 grad");
}
END_TEST

START_TEST(test_newton_trace_95)
{
    /* MATH.md §9.5: exact Newton on T1 (w = 1) from 0 with full steps:
     * ||grad|| = 4.581e-2, 2.097e-5, 8.488e-12, ~1e-17 and x* below. */
    static const double xstar[2] = {-0.00544965113194369, 0.023750460618331342};
    static const double gref[3] = {4.581e-2, 2.097e-5, 8.488e-12};
    asec_copyright_problem p = t1_problem();
    asec_copyright_options o = ASEC_COPYRIGHT_OPTIONS_INIT;
    asec_copyright_solver *s;
    asec_copyright_iterate it;
    double x0[2] = {0, 0};

    o.armijo = 0;
    o.tol_grad = 0.0;
    o.tol_rel_loss = 0.0;
    o.max_iter = 3;
    ck_assert_int_eq(asec_copyright_solver_alloc(&s, &p, &o, x0, NULL), ASEC_OK);
    ck_assert_int_eq(asec_copyright_solver_run(s), ASEC_OK);
    ck_assert_int_eq(asec_copyright_solver_status(s), ASEC_COPYRIGHT_MAX_ITER);
    ck_assert_uint_eq(asec_copyright_solver_count(s), 4);
    for (size_t t = 0; t < 3; t++) {
        ck_assert_int_eq(asec_copyright_solver_record(s, t, &it), ASEC_OK);
        /* the reference is printed to 4 significant digits */
        ck_assert_msg(fabs(it.grad_norm - gref[t]) <= 5e-4 * gref[t], "t=%zu: %.6e", t,
                      it.grad_norm);
        ck_assert(it.step == 1.0);
        ck_assert(it.lambda_min > 1.0 && it.lambda_max < 4.0);
    }
    ck_assert_int_eq(asec_copyright_solver_record(s, 3, &it), ASEC_OK);
    ck_assert(it.grad_norm < 1e-15);
    asec_test_allclose(asec_copyright_solver_x(s), xstar, 2, 1e-9, 1e-12, "9.5 x*");
    asec_copyright_solver_free(s);
}
END_TEST

/* ---------------------------------------------------------------- gradcheck */

static void
gradcheck_problem(const asec_copyright_problem *p, const double *x0)
{
    size_t d = p->a.cols;
    double x[8], g[8], gp[8], gm[8], hd[64], hv[8], v[8], hvref[8];
    asec_mat h = asec_mat_view(hd, d, d);
    asec_copyright_losses l, lp, lm;

    memcpy(x, x0, d * sizeof(double));
    ck_assert_int_eq(asec_copyright_eval(&l, g, &h, p, x), ASEC_OK);
    for (size_t j = 0; j < d; j++) {
        double e = 1e-6 * fmax(1.0, fabs(x[j])), xj = x[j];

        x[j] = xj + e;
        ck_assert_int_eq(asec_copyright_eval(&lp, gp, NULL, p, x), ASEC_OK);
        x[j] = xj - e;
        ck_assert_int_eq(asec_copyright_eval(&lm, gm, NULL, p, x), ASEC_OK);
        x[j] = xj;
        /* gradient against central differences of the loss */
        ck_assert_msg(asec_test_relerr(g[j], (lp.l_cpr - lm.l_cpr) / (2 * e), 1e-8) < 1e-6,
                      "%s grad[%zu]: %.12g vs %.12g",
                      asec_copyright_family_name(p->family), j, g[j],
                      (lp.l_cpr - lm.l_cpr) / (2 * e));
        /* Hessian column against central differences of the gradient */
        for (size_t i = 0; i < d; i++)
            ck_assert_msg(asec_test_relerr(hd[i * d + j], (gp[i] - gm[i]) / (2 * e), 1e-6)
                              < 1e-6,
                          "%s H[%zu,%zu]: %.12g vs %.12g",
                          asec_copyright_family_name(p->family), i, j, hd[i * d + j],
                          (gp[i] - gm[i]) / (2 * e));
    }
    /* Hessian-vector product against the explicit Hessian */
    for (size_t j = 0; j < d; j++)
        v[j] = 0.3 * (double)j - 0.5;
    ck_assert_int_eq(asec_copyright_hvp(hv, p, x, v), ASEC_OK);
    for (size_t i = 0; i < d; i++) {
        hvref[i] = 0.0;
        for (size_t j = 0; j < d; j++)
            hvref[i] += hd[i * d + j] * v[j];
    }
    asec_test_allclose(hv, hvref, d, 1e-10, 1e-12, "hvp");
    /* symmetric */
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < i; j++)
            ck_assert(fabs(hd[i * d + j] - hd[j * d + i]) <= 1e-12 * (1 + fabs(hd[i * d + j])));
}

START_TEST(test_gradcheck_family)
{
    /* Every family, plain (gamma = 0) and with the copyright term. */
    double x[4] = {0.3, -0.2, 0.1, 0.25};

    for (int fam = 0; fam < ASEC_COPYRIGHT_NFAMILIES; fam++) {
        asec_copyright_problem p;

        p = random_problem((asec_copyright_family)fam, 7, 4, 3, 0.0, 11 + (unsigned)fam);
        gradcheck_problem(&p, x);
        p = random_problem((asec_copyright_family)fam, 7, 4, 3, 0.3, 21 + (unsigned)fam);
        gradcheck_problem(&p, x);
    }
}
END_TEST

START_TEST(test_curvature_matches_hessian)
{
    /* A^T C(z) A + A^T W^2 A is the Hessian when gamma = 0. */
    double x[3] = {0.2, -0.1, 0.4}, z[6], cd[36], hd[9], ref[9];
    asec_mat c = asec_mat_view(cd, 6, 6), h = asec_mat_view(hd, 3, 3);

    for (int fam = 0; fam < ASEC_COPYRIGHT_NFAMILIES; fam++) {
        asec_copyright_problem p = random_problem((asec_copyright_family)fam, 6, 3, 0, 0.0,
                                                  31 + (unsigned)fam);
        asec_copyright_losses l;

        ck_assert_int_eq(asec_mat_gemv(z, 1.0, &p.a, ASEC_NOTRANS, x, 0.0), ASEC_OK);
        ck_assert_int_eq(asec_copyright_curvature(&c, p.family, z, p.b, 6), ASEC_OK);
        for (size_t i = 0; i < 6; i++)
            cd[i * 6 + i] += p.w[i] * p.w[i];
        for (size_t i = 0; i < 3; i++)
            for (size_t j = 0; j < 3; j++) {
                ref[i * 3 + j] = 0.0;
                for (size_t r = 0; r < 6; r++)
                    for (size_t s = 0; s < 6; s++)
                        ref[i * 3 + j] += r_a[r * 3 + i] * cd[r * 6 + s] * r_a[s * 3 + j];
            }
        ck_assert_int_eq(asec_copyright_eval(&l, NULL, &h, &p, x), ASEC_OK);
        asec_test_allclose(hd, ref, 9, 1e-12, 1e-14, asec_copyright_family_name(p.family));
    }
}
END_TEST

/* ---------------------------------------------------------------- solvers */

static void
solve(const asec_copyright_problem *p, asec_copyright_method m, double *x, asec_rng *rng,
      asec_copyright_status *st)
{
    asec_copyright_options o = ASEC_COPYRIGHT_OPTIONS_INIT;
    asec_copyright_solver *s;
    double x0[8] = {0};

    o.method = m;
    o.tol_grad = 1e-12;
    ck_assert_int_eq(asec_copyright_solver_alloc(&s, p, &o, x0, rng), ASEC_OK);
    ck_assert_msg(asec_copyright_solver_run(s) == ASEC_OK, "%s: %s",
                  asec_copyright_method_name(m), asec_errmsg());
    memcpy(x, asec_copyright_solver_x(s), p->a.cols * sizeof(double));
    *st = asec_copyright_solver_status(s);
    asec_copyright_solver_free(s);
}

START_TEST(test_solvers_agree)
{
    /* Woodbury, CG and sketch reach the exact-Newton minimiser, on the
     * plain and on the copyright objective. */
    asec_rng *rng;

    ck_assert_int_eq(asec_rng_alloc_seeded(&rng, 5, "check_copyright/solvers"), ASEC_OK);
    for (int g = 0; g < 2; g++) {
        asec_copyright_problem p =
            random_problem(ASEC_COPYRIGHT_SOFTMAX, 40, 4, 8, g ? 0.002 : 0.0, 41);
        double xn[4], xm[4];
        asec_copyright_status st;

        solve(&p, ASEC_COPYRIGHT_NEWTON, xn, NULL, &st);
        ck_assert_int_ne(st, ASEC_COPYRIGHT_STALLED);
        for (int m = ASEC_COPYRIGHT_WOODBURY; m <= ASEC_COPYRIGHT_SKETCH; m++) {
            solve(&p, (asec_copyright_method)m, xm, rng, &st);
            ck_assert_int_ne(st, ASEC_COPYRIGHT_STALLED);
            asec_test_allclose(xm, xn, 4, 1e-8, 1e-10,
                               asec_copyright_method_name((asec_copyright_method)m));
        }
    }
    asec_rng_free(rng);
}
END_TEST

START_TEST(test_sketch_factor_and_rate)
{
    /* MATH.md §2.1 / §9.5: exp regression with n = 100000 >= 100 d, d = 5,
     * w_i^2 = b_i^2 / 8 + 0.1 (the PD condition of §2.2).  Start inside
     * the good region (||x0 - x*|| = 0.05); the sampled block must be a
     * (1 +/- 0.05) approximation (measured) and the error must contract by
     * <= 0.32 per step while it is above rounding level.  Fixed seeds:
     * deterministic. */
    enum { N = 100000, D = 5 };
    double *a = malloc(sizeof(double) * N * D), *b = malloc(sizeof(double) * N);
    double *w = malloc(sizeof(double) * N), xt[D], xs[D], x0[D], prev;
    asec_copyright_problem p = ASEC_COPYRIGHT_PROBLEM_INIT;
    asec_copyright_options o = ASEC_COPYRIGHT_OPTIONS_INIT;
    asec_copyright_solver *s;
    asec_copyright_iterate it;
    asec_copyright_status st;
    asec_rng *r, *rs;
    size_t steps = 0;

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 7, "check_copyright/sketch-data"), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&rs, 8, "check_copyright/sketch"), ASEC_OK);
    for (size_t j = 0; j < D; j++)
        xt[j] = 0.5 * asec_rng_normal(r);
    for (size_t i = 0; i < N; i++) {
        double z = 0.0;

        for (size_t j = 0; j < D; j++) {
            a[i * D + j] = asec_rng_normal(r) / sqrt((double)D);
            z += a[i * D + j] * xt[j];
        }
        b[i] = exp(z) * (1.0 + 0.1 * asec_rng_normal(r));
        w[i] = sqrt(b[i] * b[i] / 8.0 + 0.1);
    }
    p.family = ASEC_COPYRIGHT_EXP;
    p.a = asec_mat_view(a, N, D);
    p.b = b;
    p.w = w;
    solve(&p, ASEC_COPYRIGHT_NEWTON, xs, NULL, &st);
    ck_assert_int_ne(st, ASEC_COPYRIGHT_STALLED);
    for (size_t j = 0; j < D; j++)
        x0[j] = xs[j] + 0.05 / sqrt((double)D) * (j % 2 ? 1.0 : -1.0);
    o.method = ASEC_COPYRIGHT_SKETCH;
    o.tol_grad = 0.0;
    o.max_iter = 8;
    o.armijo = 0; /* the theory's full steps */
    ck_assert_int_eq(asec_copyright_solver_alloc(&s, &p, &o, x0, rs), ASEC_OK);
    prev = 0.05;
    for (;;) {
        double rt = 0.0;
        const double *x;

        ck_assert_int_eq(asec_copyright_solver_iterate(s), ASEC_OK);
        if (asec_copyright_solver_status(s) != ASEC_COPYRIGHT_RUNNING)
            break;
        ck_assert_int_eq(asec_copyright_solver_record(s, steps, &it), ASEC_OK);
        ck_assert_uint_lt(it.sketch_rows, N / 2); /* it really samples */
        ck_assert_uint_gt(it.sketch_rows, 0);
        ck_assert_msg(fmax(1.0 - it.sketch_lo, it.sketch_hi - 1.0) <= 0.05,
                      "step %zu: factor [%g, %g]", steps, it.sketch_lo, it.sketch_hi);
        x = asec_copyright_solver_x(s);
        for (size_t j = 0; j < D; j++)
            rt += (x[j] - xs[j]) * (x[j] - xs[j]);
        rt = sqrt(rt);
        if (prev > 1e-9)
            ck_assert_msg(rt <= 0.32 * prev, "step %zu: r %g -> %g (rate %g)", steps, prev,
                          rt, rt / prev);
        prev = rt;
        steps++;
    }
    ck_assert_uint_ge(steps, 3);
    asec_copyright_solver_free(s);
    asec_rng_free(r);
    asec_rng_free(rs);
    free(a);
    free(b);
    free(w);
}
END_TEST

START_TEST(test_tau_grows_with_gamma)
{
    /* The copyright term raises L_1 and so tau = L_1/n1 - L_2/n2; L_1 at the
     * minimiser also obeys L_1(x*) >= gamma / L_cpr(x_ref) (MATH.md §6.2). */
    static const double gammas[] = {0.0, 0.001, 0.002, 0.005, 0.01};
    double prev_tau = -INFINITY;

    for (size_t g = 0; g < sizeof gammas / sizeof gammas[0]; g++) {
        asec_copyright_problem p = random_problem(ASEC_COPYRIGHT_SOFTMAX, 40, 4, 8, 0.0, 51);
        asec_copyright_losses l, l0;
        asec_copyright_status st;
        double x[4], zero[4] = {0};

        p.gamma = gammas[g];
        solve(&p, ASEC_COPYRIGHT_NEWTON, x, NULL, &st);
        ck_assert_int_ne(st, ASEC_COPYRIGHT_STALLED);
        ck_assert_int_eq(asec_copyright_eval(&l, NULL, NULL, &p, x), ASEC_OK);
        ck_assert_msg(l.tau > prev_tau, "gamma %g: tau %g <= %g", gammas[g], l.tau,
                      prev_tau);
        if (p.gamma > 0) {
            ck_assert_int_eq(asec_copyright_eval(&l0, NULL, NULL, &p, zero), ASEC_OK);
            ck_assert(l.l1 >= p.gamma / l0.l_cpr);
        }
        prev_tau = l.tau;
    }
}
END_TEST

START_TEST(test_beta_guard)
{
    /* With a large gamma the guard holds along the whole path. */
    asec_copyright_problem p = random_problem(ASEC_COPYRIGHT_SOFTMAX, 40, 4, 8, 0.01, 61);
    asec_copyright_options o = ASEC_COPYRIGHT_OPTIONS_INIT;
    asec_copyright_solver *s;
    asec_copyright_iterate it;
    double x0[4] = {0};
    asec_copyright_losses l;

    ck_assert_int_eq(asec_copyright_eval(&l, NULL, NULL, &p, x0), ASEC_OK);
    p.beta_c = 0.5 * l.l1;
    ck_assert_int_eq(asec_copyright_solver_alloc(&s, &p, &o, x0, NULL), ASEC_OK);
    ck_assert_int_eq(asec_copyright_solver_run(s), ASEC_OK);
    for (size_t t = 0; t < asec_copyright_solver_count(s); t++) {
        ck_assert_int_eq(asec_copyright_solver_record(s, t, &it), ASEC_OK);
        ck_assert(it.losses.l1 >= p.beta_c);
    }
    asec_copyright_solver_free(s);
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(test_errors)
{
    asec_copyright_problem p = t1_problem(), q;
    asec_copyright_options o = ASEC_COPYRIGHT_OPTIONS_INIT;
    asec_copyright_solver *s = (asec_copyright_solver *)&p;
    asec_copyright_losses l;
    asec_copyright_family fam;
    asec_copyright_method m;
    asec_copyright_iterate it;
    double hd[9], bad_a[6], x[2] = {0, 0}, big[2] = {800, 0};
    asec_mat h = asec_mat_view(hd, 3, 3);

    /* gamma < 0, NaN gamma */
    q = p;
    q.gamma = -0.1;
    ck_assert_int_eq(asec_copyright_eval(&l, NULL, NULL, &q, x), ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "gamma"));
    q.gamma = NAN;
    ck_assert_int_eq(asec_copyright_problem_check(&q), ASEC_EINVAL);
    /* gamma > 0 with no copyrighted rows */
    q = p;
    q.gamma = 0.2;
    ck_assert_int_eq(asec_copyright_problem_check(&q), ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "copyrighted"));
    /* bad version, family, beta_c, empty a, NULL b */
    q = p;
    q.version = 99;
    ck_assert_int_eq(asec_copyright_problem_check(&q), ASEC_EINVAL);
    q = p;
    q.family = (asec_copyright_family)42;
    ck_assert_int_eq(asec_copyright_problem_check(&q), ASEC_EINVAL);
    q = p;
    q.beta_c = -1;
    ck_assert_int_eq(asec_copyright_problem_check(&q), ASEC_EINVAL);
    q = p;
    q.a.rows = 0;
    ck_assert_int_eq(asec_copyright_problem_check(&q), ASEC_EINVAL);
    q = p;
    q.b = NULL;
    ck_assert_int_eq(asec_copyright_problem_check(&q), ASEC_EINVAL);
    /* shapes: a1 with the wrong width; hess of the wrong size */
    q = p;
    q.a1 = asec_mat_view(t4_a1, 1, 4);
    q.b1 = t4_b1;
    ck_assert_int_eq(asec_copyright_problem_check(&q), ASEC_EBADLEN);
    ck_assert_int_eq(asec_copyright_eval(&l, NULL, &h, &p, x), ASEC_EBADLEN);
    /* non-finite data */
    memcpy(bad_a, t1_a, sizeof bad_a);
    bad_a[3] = NAN;
    q = p;
    q.a = asec_mat_view(bad_a, 3, 2);
    ck_assert_int_eq(asec_copyright_problem_check(&q), ASEC_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "a[1, 1]"));
    /* exp overflow */
    q = p;
    q.family = ASEC_COPYRIGHT_EXP;
    ck_assert_int_eq(asec_copyright_eval(&l, NULL, NULL, &q, big), ASEC_ENUMERIC);
    /* L_1 == 0 with gamma > 0: b1 = softmax(A1 x) exactly at x = 0 */
    {
        static double zero_a1[4] = {0, 0, 0, 0}, half[2] = {0.5, 0.5};

        q = p;
        q.a1 = asec_mat_view(zero_a1, 2, 2);
        q.b1 = half;
        q.gamma = 0.1;
        ck_assert_int_eq(asec_copyright_eval(&l, NULL, NULL, &q, x), ASEC_ENUMERIC);
        ck_assert_ptr_nonnull(strstr(asec_errmsg(), "L_1"));
    }
    /* names */
    ck_assert_int_eq(asec_copyright_family_parse(&fam, "tanh"), ASEC_EINVAL);
    ck_assert_int_eq(asec_copyright_family_parse(&fam, "rescaled-cosh"), ASEC_OK);
    ck_assert_int_eq(fam, ASEC_COPYRIGHT_RESCALED_COSH);
    ck_assert_int_eq(asec_copyright_method_parse(&m, "lbfgs"), ASEC_EINVAL);
    ck_assert_str_eq(asec_copyright_family_name((asec_copyright_family)99), "?");
    /* curvature: n == 0, bad family, wrong out shape */
    ck_assert_int_eq(asec_copyright_curvature(&h, ASEC_COPYRIGHT_SOFTMAX, x, x, 0),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_copyright_curvature(&h, (asec_copyright_family)9, x, x, 3),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_copyright_curvature(&h, ASEC_COPYRIGHT_SOFTMAX, x, x, 2),
                     ASEC_EBADLEN);
    /* solver options: sketch without rng, bad eps, bad version */
    o.method = ASEC_COPYRIGHT_SKETCH;
    ck_assert_int_eq(asec_copyright_solver_alloc(&s, &p, &o, x, NULL), ASEC_EINVAL);
    ck_assert_ptr_null(s);
    o.method = ASEC_COPYRIGHT_NEWTON;
    o.version = 0;
    ck_assert_int_eq(asec_copyright_solver_alloc(&s, &p, &o, x, NULL), ASEC_EINVAL);
    o.version = ASEC_COPYRIGHT_OPTIONS_VERSION;
    /* the guard violated at x0 */
    q = p;
    q.a1 = asec_mat_view(t4_a1, 2, 2);
    q.b1 = t4_b1;
    q.gamma = 0.1;
    q.beta_c = 10.0;
    ck_assert_int_eq(asec_copyright_solver_alloc(&s, &q, &o, x, NULL), ASEC_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "beta_c"));
    /* an indefinite Hessian: gamma / L_1^2 Hess L_1 dominates w */
    {
        double x4[4] = {0, 0, 0, 0};

        q = random_problem(ASEC_COPYRIGHT_SOFTMAX, 40, 4, 8, 0.05, 41);
        ck_assert_int_eq(asec_copyright_solver_alloc(&s, &q, &o, x4, NULL), ASEC_OK);
        ck_assert_int_eq(asec_copyright_solver_iterate(s), ASEC_ENUMERIC);
        ck_assert_ptr_nonnull(strstr(asec_errmsg(), "positive definite"));
        ck_assert_int_eq(asec_copyright_solver_record(s, 5, &it), ASEC_EINVAL);
        asec_copyright_solver_free(s);
    }
    asec_copyright_solver_free(NULL);
}
END_TEST

/* ---------------------------------------------------------------- oom */

START_TEST(test_oom)
{
    asec_copyright_problem p = t1_problem();
    asec_rng *rng;
    long n;

    p.a1 = asec_mat_view(t4_a1, 2, 2);
    p.b1 = t4_b1;
    p.gamma = 1e-4; /* small enough for K (Woodbury) to stay PD */
    ck_assert_int_eq(asec_rng_alloc_seeded(&rng, 3, "check_copyright/oom"), ASEC_OK);
    for (int m = ASEC_COPYRIGHT_NEWTON; m <= ASEC_COPYRIGHT_SKETCH; m++) {
        asec_copyright_options o = ASEC_COPYRIGHT_OPTIONS_INIT;

        o.method = (asec_copyright_method)m;
        for (n = 0;; n++) {
            asec_copyright_solver *s = NULL;
            double x0[2] = {0, 0}, hd[4], g[2];
            asec_mat h = asec_mat_view(hd, 2, 2);
            asec_copyright_losses l;
            int rc;

            asec_debug_fail_alloc(n);
            rc = asec_copyright_eval(&l, g, &h, &p, x0);
            if (rc == ASEC_OK)
                rc = asec_copyright_hvp(g, &p, x0, x0);
            if (rc == ASEC_OK)
                rc = asec_copyright_solver_alloc(&s, &p, &o, x0, rng);
            if (rc == ASEC_OK)
                rc = asec_copyright_solver_run(s);
            asec_debug_fail_alloc(-1);
            asec_copyright_solver_free(s);
            if (rc == ASEC_OK)
                break;
            ck_assert_msg(rc == ASEC_ENOMEM, "n=%ld: %d %s", n, rc, asec_errmsg());
            ck_assert_int_lt(n, 10000);
        }
        ck_assert_int_ge(n, 3);
    }
    asec_rng_free(rng);
}
END_TEST

/* ------------------------------------------ next-token (multinomial) model */

/* A small deterministic instance: N rows, d features, V classes; rows
 * i < N / 3 (13 of 40) copyrighted. */
#define LM_N 40
#define LM_D 5
#define LM_V 4
static double lm_x[LM_N * LM_D];
static int64_t lm_y[LM_N];
static unsigned char lm_cp[LM_N];

static asec_copyright_lm
lm_instance(double gamma)
{
    asec_copyright_lm p = ASEC_COPYRIGHT_LM_INIT;

    for (size_t i = 0; i < LM_N; i++) {
        for (size_t j = 0; j < LM_D; j++)
            lm_x[i * LM_D + j] = j == 0 ? 1.0 : sin(1.3 * (double)(i + 1) * (double)j);
        lm_y[i] = (int64_t)((i * 7 + i / 5) % LM_V);
        lm_cp[i] = i < LM_N / 3;
    }
    p.x = asec_mat_view(lm_x, LM_N, LM_D);
    p.y = lm_y;
    p.cp = lm_cp;
    p.classes = LM_V;
    p.gamma = gamma;
    p.lambda = 0.01;
    return p;
}

START_TEST(test_lm_gradcheck)
{
    asec_copyright_lm p = lm_instance(0.7);
    double w[LM_V * LM_D], g[LM_V * LM_D], wp[LM_V * LM_D], wn = 0;
    asec_copyright_losses lo, lp, lm;

    for (size_t k = 0; k < LM_V * LM_D; k++) {
        w[k] = 0.3 * cos(0.7 * (double)k);
        wn += w[k] * w[k];
    }
    ck_assert_int_eq(asec_copyright_lm_eval(&lo, g, &p, w), ASEC_OK);
    /* The pieces: L_cpr = L + gamma / L_1 + 0.5 lambda ||W||^2, tau = L_1 - L_2,
     * L the row-weighted mean of L_1 (13 rows) and L_2 (27 rows). */
    ck_assert(fabs(lo.l_cpr - (lo.l + 0.7 / lo.l1 + 0.005 * wn)) < 1e-13);
    ck_assert(fabs(lo.tau - (lo.l1 - lo.l2)) < 1e-15);
    ck_assert(fabs(lo.l - (lo.l1 * 13 + lo.l2 * 27) / 40) < 1e-13);
    for (size_t k = 0; k < LM_V * LM_D; k++) {
        double h = 1e-5, fd;

        memcpy(wp, w, sizeof w);
        wp[k] = w[k] + h;
        ck_assert_int_eq(asec_copyright_lm_eval(&lp, NULL, &p, wp), ASEC_OK);
        wp[k] = w[k] - h;
        ck_assert_int_eq(asec_copyright_lm_eval(&lm, NULL, &p, wp), ASEC_OK);
        fd = (lp.l_cpr - lm.l_cpr) / (2 * h);
        ck_assert_msg(fabs(fd - g[k]) < 1e-8 * (1 + fabs(g[k])), "k %zu: %g vs %g", k, fd,
                      g[k]);
    }
}
END_TEST

START_TEST(test_lm_fit_tau_grows)
{
    static const double gammas[] = {0.0, 0.1, 0.3, 1.0};
    double prev = -INFINITY, w[LM_V * LM_D], beta;
    asec_copyright_lm p;
    asec_copyright_lm_result r, r0;

    for (size_t t = 0; t < 4; t++) {
        p = lm_instance(gammas[t]);
        memset(w, 0, sizeof w);
        ck_assert_int_eq(asec_copyright_lm_fit(w, &r, &p, NULL), ASEC_OK);
        ck_assert_msg(r.status == ASEC_COPYRIGHT_CONVERGED_GRAD
                          || r.status == ASEC_COPYRIGHT_CONVERGED_LOSS,
                      "gamma %g: %s", gammas[t], asec_copyright_status_name(r.status));
        ck_assert_msg(r.losses.tau > prev, "gamma %g: tau %g <= %g", gammas[t],
                      r.losses.tau, prev);
        prev = r.losses.tau;
    }
    /* The guard: beta_c above L_1 at the start is refused. */
    p = lm_instance(0.5);
    p.beta_c = 100.0;
    memset(w, 0, sizeof w);
    ck_assert_int_eq(asec_copyright_lm_fit(w, &r, &p, NULL), ASEC_ENUMERIC);
    /* A binding guard: L_1 never drops below it along the path. */
    p = lm_instance(1e-9);
    ck_assert_int_eq(asec_copyright_lm_fit(w, &r0, &p, NULL), ASEC_OK);
    beta = 0.5 * (log(4.0) + r0.losses.l1);
    ck_assert(r0.losses.l1 < beta);
    memset(w, 0, sizeof w);
    p.beta_c = beta;
    ck_assert_int_eq(asec_copyright_lm_fit(w, &r, &p, NULL), ASEC_OK);
    ck_assert(r.min_l1 >= beta);
    ck_assert(r.losses.l1 >= beta);
}
END_TEST

/* Toy decoder: the next token is (last + 1) mod 5. */
static int
next_succ(void *ctx, const int64_t *h, size_t len, int64_t *out)
{
    (void)ctx;
    *out = (h[len - 1] + 1) % 5;
    return ASEC_OK;
}

static int
next_fail(void *ctx, const int64_t *h, size_t len, int64_t *out)
{
    (void)ctx;
    (void)h;
    (void)len;
    (void)out;
    return ASEC_EIO;
}

START_TEST(test_regen_known)
{
    /* Doc 0 = 0 1 2 3 4 0 1 2: all six 3-grams follow the rule.
     * Doc 1 = 1 2 9 3 4 0: from one-token prefixes only 3 4 0 is
     * reproduced (1 of 4).  Doc 2 = 2 3 is shorter than n. */
    static const int64_t tok[] = {0, 1, 2, 3, 4, 0, 1, 2, 1, 2, 9, 3, 4, 0, 2, 3};
    static const size_t bounds[] = {0, 8, 14, 16}, bad[] = {0, 8, 17, 18};
    static const unsigned char sel[] = {0, 1, 1};
    size_t h, t;

    ck_assert_int_eq(asec_copyright_regen(&h, &t, tok, 16, bounds, 3, NULL, 3, 1, -1,
                                          next_succ, NULL),
                     ASEC_OK);
    ck_assert_uint_eq(t, 10);
    ck_assert_uint_eq(h, 7);
    ck_assert_int_eq(asec_copyright_regen(&h, &t, tok, 16, bounds, 3, sel, 3, 1, -1,
                                          next_succ, NULL),
                     ASEC_OK);
    ck_assert_uint_eq(t, 4);
    ck_assert_uint_eq(h, 1);
    /* skip = 0: n-grams holding a 0 are not counted: doc 0 keeps 1 2 3 and
     * 2 3 4 (both hits), doc 1 keeps 1 2 9, 2 9 3, 9 3 4 (no hit). */
    ck_assert_int_eq(asec_copyright_regen(&h, &t, tok, 16, bounds, 3, NULL, 3, 1, 0,
                                          next_succ, NULL),
                     ASEC_OK);
    ck_assert_uint_eq(t, 5);
    ck_assert_uint_eq(h, 2);
    /* Two-token prefixes in doc 1: 1 2 |9 and 2 9 |3 fail, 9 3 |4 and
     * 3 4 |0 are reproduced. */
    ck_assert_int_eq(asec_copyright_regen(&h, &t, tok, 16, bounds, 3, sel, 3, 2, -1,
                                          next_succ, NULL),
                     ASEC_OK);
    ck_assert_uint_eq(t, 4);
    ck_assert_uint_eq(h, 2);
    /* Errors: prefix >= n, prefix 0, bounds past the tokens, the
     * predictor's own error. */
    ck_assert_int_eq(asec_copyright_regen(&h, &t, tok, 16, bounds, 3, NULL, 3, 3, -1,
                                          next_succ, NULL),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_copyright_regen(&h, &t, tok, 16, bounds, 3, NULL, 3, 0, -1,
                                          next_succ, NULL),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_copyright_regen(&h, &t, tok, 16, bad, 3, NULL, 3, 1, -1,
                                          next_succ, NULL),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_copyright_regen(&h, &t, tok, 16, bounds, 3, NULL, 3, 1, -1,
                                          next_fail, NULL),
                     ASEC_EIO);
}
END_TEST

START_TEST(test_lm_errors)
{
    asec_copyright_lm p = lm_instance(0.5);
    asec_copyright_losses lo;
    double w[LM_V * LM_D] = {0};
    asec_copyright_lm_result r;
    asec_copyright_lm_options o = ASEC_COPYRIGHT_LM_OPTIONS_INIT;

    ck_assert_int_eq(asec_copyright_lm_check(&p), ASEC_OK);
    p.gamma = -1;
    ck_assert_int_eq(asec_copyright_lm_eval(&lo, NULL, &p, w), ASEC_EINVAL);
    p = lm_instance(0.5);
    p.version = 99;
    ck_assert_int_eq(asec_copyright_lm_check(&p), ASEC_EINVAL);
    p = lm_instance(0.5);
    p.classes = 1;
    ck_assert_int_eq(asec_copyright_lm_check(&p), ASEC_EINVAL);
    p = lm_instance(0.5);
    lm_y[3] = LM_V;
    ck_assert_int_eq(asec_copyright_lm_check(&p), ASEC_EINVAL);
    p = lm_instance(0.5);
    memset(lm_cp, 0, sizeof lm_cp);
    ck_assert_int_eq(asec_copyright_lm_check(&p), ASEC_EINVAL);
    p.gamma = 0; /* no copyrighted row is fine without the term: L_1 NaN */
    ck_assert_int_eq(asec_copyright_lm_eval(&lo, NULL, &p, w), ASEC_OK);
    ck_assert(isnan(lo.l1) && isnan(lo.tau));
    p = lm_instance(0.5);
    lm_x[7] = NAN;
    ck_assert_int_eq(asec_copyright_lm_check(&p), ASEC_ENUMERIC);
    p = lm_instance(0.5);
    o.memory = 0;
    ck_assert_int_eq(asec_copyright_lm_fit(w, &r, &p, &o), ASEC_EINVAL);
    o.memory = 8;
    o.version = 7;
    ck_assert_int_eq(asec_copyright_lm_fit(w, &r, &p, &o), ASEC_EINVAL);
}
END_TEST

START_TEST(test_lm_oom)
{
    asec_copyright_lm p = lm_instance(0.5);
    long n;

    for (n = 0;; n++) {
        double w[LM_V * LM_D] = {0}, g[LM_V * LM_D];
        asec_copyright_lm_result r;
        asec_copyright_losses lo;
        int rc;

        asec_debug_fail_alloc(n);
        rc = asec_copyright_lm_eval(&lo, g, &p, w);
        if (rc == ASEC_OK)
            rc = asec_copyright_lm_fit(w, &r, &p, NULL);
        asec_debug_fail_alloc(-1);
        if (rc == ASEC_OK)
            break;
        ck_assert_msg(rc == ASEC_ENOMEM, "n=%ld: %d %s", n, rc, asec_errmsg());
        ck_assert_int_lt(n, 1000);
    }
    ck_assert_int_ge(n, 3);
}
END_TEST

/* ------------------------------------------ context features from the engine */

/* A small causal text model: V 12, C 8, one block, 2 heads, T 3. */
static asec_model *
engine_model(unsigned seed, int causal)
{
    asec_model_arch a;
    asec_model *m = NULL;
    asec_rng *r;

    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_TEXT), ASEC_OK);
    a.vocab = a.classes = 12;
    a.channels = 8;
    a.layers = 1;
    a.heads = 2;
    a.mlp_hidden = 16;
    a.seq_len = 3;
    a.causal = causal;
    ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, seed, "check_copyright/engine"), ASEC_OK);
    asec_model_init_params(m, r);
    asec_rng_free(r);
    return m;
}

/* A periodic stream of period 5 over ids 1..10 (with period-7 noise). */
static void
engine_stream(int64_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        t[i] = (int64_t)(1 + (i * 3) % 5 + (i % 7 == 6 ? 5 : 0));
}

START_TEST(test_engine_features_are_hidden_states)
{
    /* Oracle: the model's own logits.  For every window, the logits of the
     * last token must be head.weight h + head.bias with h the feature row
     * (after x[0] = 1); with fresh LayerNorm parameters (weight 1, bias
     * 0) h is also standardised: mean 0, mean square var / (var + eps). */
    enum { N = 20, T = 3, C = 8, V = 12 };
    asec_model *m = engine_model(3, 1);
    int64_t tok[N], win[(N - T + 1) * T];
    double x[(N - T + 1) * (C + 1)], logits[(N - T + 1) * T * V], z[V];
    asec_model_tensor hw, hb;
    const double *th;

    engine_stream(tok, N);
    tok[4] = 0;
    tok[11] = 11;
    ck_assert_int_eq(asec_copyright_engine_features(x, m, tok, N), ASEC_OK);
    for (size_t s = 0; s + T <= N; s++)
        memcpy(win + s * T, tok + s, T * sizeof(int64_t));
    asec_model_batch b = {N - T + 1, T, NULL, win, NULL, NULL};
    ck_assert_int_eq(asec_model_forward(m, NULL, NULL, logits, &b), ASEC_OK);
    ck_assert_int_eq(asec_model_tensor_find(m, "head.weight", &hw), ASEC_OK);
    ck_assert_int_eq(asec_model_tensor_find(m, "head.bias", &hb), ASEC_OK);
    th = asec_model_params(m);
    for (size_t s = 0; s + T <= N; s++) {
        const double *h = x + s * (C + 1) + 1;
        double mean = 0, ms = 0;

        ck_assert(x[s * (C + 1)] == 1.0);
        for (size_t v = 0; v < V; v++) {
            z[v] = th[hb.offset + v];
            for (size_t j = 0; j < C; j++)
                z[v] += th[hw.offset + v * C + j] * h[j];
        }
        asec_test_allclose(z, logits + (s * T + T - 1) * V, V, 1e-12, 1e-14,
                           "head(h) vs logits");
        for (size_t j = 0; j < C; j++) {
            mean += h[j] / C;
            ms += h[j] * h[j] / C;
        }
        ck_assert(fabs(mean) < 1e-12);
        ck_assert(ms > 0.9 && ms <= 1.0 + 1e-12);
    }
    /* One context alone gives the same row as inside the stream. */
    double one[C + 1];
    ck_assert_int_eq(asec_copyright_engine_features(one, m, tok + 5, T), ASEC_OK);
    asec_test_allclose(one, x + 5 * (C + 1), C + 1, 1e-12, 1e-14, "single context");
    asec_model_free(m);
}
END_TEST

START_TEST(test_engine_train)
{
    /* Adam on the exact gradients learns the periodic stream: the last
     * tenth of the batch losses is below half the first; the same seed
     * gives the same parameters bit for bit. */
    enum { N = 400 };
    int64_t tok[N];
    double curve[150];
    asec_model *m1 = engine_model(5, 1), *m2 = engine_model(5, 1);
    asec_copyright_engine_options o = ASEC_COPYRIGHT_ENGINE_OPTIONS_INIT;
    asec_copyright_engine_result r1, r2;
    asec_rng *g1, *g2;

    engine_stream(tok, N);
    o.steps = 150;
    o.batch = 8;
    o.lr = 1e-2;
    ck_assert_int_eq(asec_rng_alloc_seeded(&g1, 9, "check_copyright/train"), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&g2, 9, "check_copyright/train"), ASEC_OK);
    ck_assert_int_eq(asec_copyright_engine_train(m1, &r1, curve, tok, N, &o, g1),
                     ASEC_OK);
    ck_assert_int_eq(asec_copyright_engine_train(m2, &r2, NULL, tok, N, &o, g2), ASEC_OK);
    ck_assert_uint_eq(r1.steps, 150);
    ck_assert(r1.loss_first == curve[0]);
    ck_assert(fabs(r1.loss_first - log(12.0)) < 0.1); /* near uniform at the start */
    ck_assert_msg(r1.loss_last < 0.5 * r1.loss_first, "loss %g -> %g", r1.loss_first,
                  r1.loss_last);
    ck_assert(memcmp(asec_model_params(m1), asec_model_params(m2),
                     asec_model_param_count(m1) * sizeof(double)) == 0);
    /* Zero steps leave the model alone. */
    o.steps = 0;
    ck_assert_int_eq(asec_copyright_engine_train(m2, &r2, NULL, tok, N, &o, g2), ASEC_OK);
    ck_assert_uint_eq(r2.steps, 0);
    ck_assert(isnan(r2.loss_first) && isnan(r2.loss_last));
    asec_rng_free(g1);
    asec_rng_free(g2);
    asec_model_free(m1);
    asec_model_free(m2);
}
END_TEST

START_TEST(test_engine_corpus_tau_grows)
{
    /* The corpus instance, small: 2048 KJV training tokens over <unk> + 63
     * words, a 1-block engine (C 16, T 3) trained 150 steps, the head
     * refitted on its features with a quarter of the rows copyrighted
     * (passages 1 and 5 of 8); tau strictly increases with gamma and the
     * loss on the other rows changes much less than L_1. */
    enum { NTOK = 2048, T = 3, C = 16, V = 64, N = NTOK - T };
    static const double gammas[] = {0.0, 0.5, 2.0};
    asec_data *dt = NULL;
    asec_model_arch a;
    asec_model *m = NULL;
    asec_rng *r;
    asec_copyright_engine_options o = ASEC_COPYRIGHT_ENGINE_OPTIONS_INIT;
    asec_copyright_engine_result er;
    asec_copyright_lm_options lo = ASEC_COPYRIGHT_LM_OPTIONS_INIT;
    static int64_t tok[NTOK];
    static double x[(N + 1) * (C + 1)], w[V * (C + 1)];
    static unsigned char cp[N];
    double prev = -INFINITY, l1[3], l2[3];

    ck_assert_int_eq(asec_data_load(&dt, ASEC_TEST_DATADIR, "kjv", "train"), ASEC_OK);
    for (size_t i = 0; i < NTOK; i++)
        tok[i] = dt->tokens[i] < V ? dt->tokens[i] : 0;
    asec_data_free(dt);
    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_TEXT), ASEC_OK);
    a.vocab = a.classes = V;
    a.channels = C;
    a.layers = 1;
    a.heads = 2;
    a.mlp_hidden = 4 * C;
    a.seq_len = T;
    ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 1, "check_copyright/corpus"), ASEC_OK);
    asec_model_init_params(m, r);
    o.steps = 150;
    ck_assert_int_eq(asec_copyright_engine_train(m, &er, NULL, tok, NTOK, &o, r),
                     ASEC_OK);
    ck_assert(er.loss_last < er.loss_first - 1.0);
    ck_assert_int_eq(asec_copyright_engine_features(x, m, tok, NTOK), ASEC_OK);
    for (size_t i = 0; i < N; i++) {
        size_t doc = (i + T) / 256;
        cp[i] = doc == 1 || doc == 5;
    }
    lo.max_iter = 60;
    for (size_t g = 0; g < 3; g++) {
        asec_copyright_lm p = ASEC_COPYRIGHT_LM_INIT;
        asec_copyright_lm_result res;

        p.x = asec_mat_view(x, N, C + 1);
        p.y = tok + T;
        p.cp = cp;
        p.classes = V;
        p.gamma = gammas[g];
        p.lambda = 1e-4;
        memset(w, 0, sizeof w);
        ck_assert_int_eq(asec_copyright_lm_fit(w, &res, &p, &lo), ASEC_OK);
        ck_assert_msg(res.losses.tau > prev, "gamma %g: tau %g <= %g", gammas[g],
                      res.losses.tau, prev);
        prev = res.losses.tau;
        l1[g] = res.losses.l1;
        l2[g] = res.losses.l2;
    }
    ck_assert_msg(fabs(l2[2] - l2[0]) < 0.5 * (l1[2] - l1[0]), "L1 %g -> %g, L2 %g -> %g",
                  l1[0], l1[2], l2[0], l2[2]);
    asec_rng_free(r);
    asec_model_free(m);
}
END_TEST

START_TEST(test_engine_errors)
{
    enum { N = 40 };
    int64_t tok[N];
    double x[(N - 2) * 9];
    asec_model *m = engine_model(1, 1), *nc = engine_model(1, 0), *vit = NULL;
    asec_model_arch a;
    asec_copyright_engine_options o = ASEC_COPYRIGHT_ENGINE_OPTIONS_INIT;
    asec_copyright_engine_result r;
    asec_rng *g;

    engine_stream(tok, N);
    o.steps = 2;
    ck_assert_int_eq(asec_rng_alloc_seeded(&g, 1, "check_copyright/errors"), ASEC_OK);
    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_VIT), ASEC_OK);
    ck_assert_int_eq(asec_model_alloc(&vit, &a), ASEC_OK);
    ck_assert_int_eq(asec_copyright_engine_train(m, &r, NULL, tok, N, &o, g), ASEC_OK);
    /* Options: version, batch 0, lr <= 0, beta out of [0, 1), eps <= 0. */
    o.version = 2;
    ck_assert_int_eq(asec_copyright_engine_train(m, &r, NULL, tok, N, &o, g),
                     ASEC_EINVAL);
    o.version = ASEC_COPYRIGHT_ENGINE_OPTIONS_VERSION;
    o.batch = 0;
    ck_assert_int_eq(asec_copyright_engine_train(m, &r, NULL, tok, N, &o, g),
                     ASEC_EINVAL);
    o.batch = 4;
    o.lr = 0;
    ck_assert_int_eq(asec_copyright_engine_train(m, &r, NULL, tok, N, &o, g),
                     ASEC_EINVAL);
    o.lr = 1e-3;
    o.beta2 = 1.0;
    ck_assert_int_eq(asec_copyright_engine_train(m, &r, NULL, tok, N, &o, g),
                     ASEC_EINVAL);
    o.beta2 = 0.999;
    o.eps = 0;
    ck_assert_int_eq(asec_copyright_engine_train(m, &r, NULL, tok, N, &o, g),
                     ASEC_EINVAL);
    o.eps = 1e-8;
    /* Models: not causal, not text. */
    ck_assert_int_eq(asec_copyright_engine_train(nc, &r, NULL, tok, N, &o, g),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_copyright_engine_train(vit, &r, NULL, tok, N, &o, g),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_copyright_engine_features(x, nc, tok, N), ASEC_EINVAL);
    ck_assert_int_eq(asec_copyright_engine_features(x, vit, tok, N), ASEC_EINVAL);
    /* Too few tokens (T + 1 to train, T for features), a token >= V. */
    ck_assert_int_eq(asec_copyright_engine_train(m, &r, NULL, tok, 3, &o, g),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_copyright_engine_features(x, m, tok, 2), ASEC_EINVAL);
    tok[2] = 12;
    ck_assert_int_eq(asec_copyright_engine_features(x, m, tok, N), ASEC_EINVAL);
    o.batch = 64; /* every start drawn: the bad token is met */
    ck_assert_int_eq(asec_copyright_engine_train(m, &r, NULL, tok, N, &o, g),
                     ASEC_EINVAL);
    /* A step size that throws the parameters to 1e300: the loss is not
     * finite and training stops with ASEC_ENUMERIC. */
    engine_stream(tok, N);
    o.batch = 4;
    o.steps = 5;
    o.lr = 1e300;
    ck_assert_int_eq(asec_copyright_engine_train(m, &r, NULL, tok, N, &o, g),
                     ASEC_ENUMERIC);
    asec_rng_free(g);
    asec_model_free(m);
    asec_model_free(nc);
    asec_model_free(vit);
}
END_TEST

START_TEST(test_engine_oom)
{
    enum { N = 60 };
    int64_t tok[N];
    double x[(N - 2) * 9];
    long n;

    engine_stream(tok, N);
    for (n = 0;; n++) {
        asec_model *m = engine_model(2, 1);
        asec_copyright_engine_options o = ASEC_COPYRIGHT_ENGINE_OPTIONS_INIT;
        asec_copyright_engine_result r;
        asec_rng *g;
        int rc;

        ck_assert_int_eq(asec_rng_alloc_seeded(&g, 1, "check_copyright/oom"), ASEC_OK);
        o.steps = 2;
        o.batch = 4;
        asec_debug_fail_alloc(n);
        rc = asec_copyright_engine_train(m, &r, NULL, tok, N, &o, g);
        if (rc == ASEC_OK)
            rc = asec_copyright_engine_features(x, m, tok, N);
        asec_debug_fail_alloc(-1);
        asec_rng_free(g);
        asec_model_free(m);
        if (rc == ASEC_OK)
            break;
        ck_assert_msg(rc == ASEC_ENOMEM, "n=%ld: %d %s", n, rc, asec_errmsg());
        ck_assert_int_lt(n, 1000);
    }
    ck_assert_int_ge(n, 4);
}
END_TEST

static Suite *
copyright_suite(void)
{
    Suite *s = suite_create("copyright");
    TCase *tr = tcase_create("reference");
    TCase *tg = tcase_create("gradcheck");
    TCase *tc = tcase_create("core");
    TCase *te = tcase_create("errors");
    TCase *to = tcase_create("oom");

    tcase_add_test(tr, test_t1_softmax);
    tcase_add_test(tr, test_t6_curvature);
    tcase_add_test(tr, test_t4_copyright);
    tcase_add_test(tr, test_t5_rescaled);
    tcase_add_test(tr, test_newton_trace_95);
    tcase_add_test(tg, test_gradcheck_family);
    tcase_add_test(tg, test_curvature_matches_hessian);
    tcase_add_test(tc, test_solvers_agree);
    tcase_add_test(tc, test_sketch_factor_and_rate);
    tcase_add_test(tc, test_tau_grows_with_gamma);
    tcase_add_test(tc, test_beta_guard);
    tcase_add_test(tg, test_lm_gradcheck);
    tcase_add_test(tc, test_lm_fit_tau_grows);
    tcase_add_test(tc, test_regen_known);
    tcase_add_test(tr, test_engine_features_are_hidden_states);
    tcase_add_test(tc, test_engine_train);
    tcase_add_test(tc, test_engine_corpus_tau_grows);
    tcase_set_timeout(tc, 60);
    tcase_add_test(te, test_errors);
    tcase_add_test(te, test_lm_errors);
    tcase_add_test(te, test_engine_errors);
    tcase_add_test(to, test_oom);
    tcase_add_test(to, test_lm_oom);
    tcase_add_test(to, test_engine_oom);
    tcase_set_timeout(to, 60);
    suite_add_tcase(s, tr);
    suite_add_tcase(s, tg);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, te);
    suite_add_tcase(s, to);
    return s;
}

int
main(void)
{
    if (asec_init() != ASEC_OK)
        return EXIT_FAILURE;
    return asec_test_run(copyright_suite());
}
