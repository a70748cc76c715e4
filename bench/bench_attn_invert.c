/* bench_attn_invert.c - cost of the attention-inversion attack at 32x64
 * (ATTACKS.md §9 G4): one loss+gradient evaluation (the L-BFGS unit; goal
 * < 0.1 ms, PyTorch 2.9 ms) and one Levenberg-Marquardt iteration (goal
 * <= 0.2 s, PyTorch 1.3 s), plus the success rate at the acceptance sizes.
 * Also: the parts of an LM iteration, how a second observed head changes
 * single-start success and identifiability, and the cost of a Newton
 * iteration.  The PyTorch figures are the ones recorded in ATTACKS.md
 * §8.6 on this machine's kind (2 shared cores), not re-measured here. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attnsec/attnsec.h"
#include "attnsec/attn_invert.h"

static double
now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int
die(const char *what)
{
    fprintf(stderr, "bench_attn_invert: %s: %s\n", what, asec_errmsg());
    return EXIT_FAILURE;
}

/* Instance: X ~ N(0,1) (d, n), W ~ N(0,1)/d, B = F(X). */
static int
make(asec_mat *x, asec_mat *w, asec_mat *b, size_t d, size_t n, unsigned seed)
{
    asec_rng *r;

    if (asec_rng_alloc_seeded(&r, seed, "bench") != ASEC_OK ||
        asec_mat_alloc(x, d, n) != ASEC_OK || asec_mat_alloc(w, d, d) != ASEC_OK ||
        asec_mat_alloc(b, n, n) != ASEC_OK)
        return -1;
    asec_rng_normal_fill(r, x->data, d * n);
    asec_rng_normal_fill(r, w->data, d * d);
    for (size_t i = 0; i < d * d; i++)
        w->data[i] /= (double)d;
    asec_rng_free(r);
    return asec_attn_invert_attention(b, x, w, 1.0, 0);
}

int
main(void)
{
    size_t d = 32, n = 64, reps = 2000;
    asec_mat x, w, b, g, xh;
    asec_attn_invert *ctx;
    asec_attn_invert_options o = ASEC_ATTN_INVERT_OPTIONS_INIT;
    asec_attn_invert_result res;
    asec_rng *r;
    double loss, t0, t_eval, t_lm;

    if (asec_init() != ASEC_OK || make(&x, &w, &b, d, n, 0) != ASEC_OK)
        return die("setup");
    if (asec_attn_invert_alloc(&ctx, d, n, 1, &w, &b, NULL) != ASEC_OK ||
        asec_mat_alloc(&g, d, n) != ASEC_OK || asec_mat_alloc(&xh, d, n) != ASEC_OK)
        return die("alloc");
    for (size_t i = 0; i < d * n; i++)
        xh.data[i] = 0.5 * x.data[i];
    t0 = now();
    for (size_t i = 0; i < reps; i++)
        if (asec_attn_invert_eval(ctx, &loss, &g, &xh) != ASEC_OK)
            return die("eval");
    t_eval = (now() - t0) / (double)reps;
    printf("attn-invert 32x64: loss+gradient evaluation %.4f ms (goal < 0.1 ms; "
           "PyTorch 2.9 ms: %.0fx)\n",
           1e3 * t_eval, 2.9e-3 / t_eval);
    asec_attn_invert_free(ctx);

    /* The parts of one LM iteration: the Gauss-Newton matrix (assembled
     * blockwise; the public function also mirrors the triangle) and one
     * Cholesky solve of J^T J + mu I. */
    {
        asec_mat h, rhs;
        size_t dm = d * n, nrep = 5;
        double t_gn, t_chol;

        if (asec_attn_invert_alloc(&ctx, d, n, 1, &w, &b, NULL) != ASEC_OK ||
            asec_mat_alloc(&h, dm, dm) != ASEC_OK ||
            asec_mat_alloc(&rhs, dm, 1) != ASEC_OK)
            return die("alloc");
        t0 = now();
        for (size_t i = 0; i < nrep; i++)
            if (asec_attn_invert_gauss_newton(ctx, &h, &xh) != ASEC_OK)
                return die("gauss_newton");
        t_gn = (now() - t0) / (double)nrep;
        for (size_t i = 0; i < dm; i++)
            h.data[i * dm + i] += 1e-3;
        t0 = now();
        for (size_t i = 0; i < nrep; i++) {
            for (size_t k = 0; k < dm; k++)
                rhs.data[k] = g.data[k];
            if (asec_mat_cholesky_solve(&rhs, &h) != ASEC_OK)
                return die("cholesky");
        }
        t_chol = (now() - t0) / (double)nrep;
        printf("attn-invert 32x64: J^T J assembly %.3f s, Cholesky solve (2048) %.3f s\n",
               t_gn, t_chol);
        asec_mat_free(&h);
        asec_mat_free(&rhs);
        asec_attn_invert_free(ctx);
    }

    /* LM: 30 iterations of one start from a random point, timed per
     * iteration (the stall exit needs 25 iterations without progress). */
    o.restarts = 1;
    o.max_iter = 30;
    if (asec_attn_invert_alloc(&ctx, d, n, 1, &w, &b, &o) != ASEC_OK ||
        asec_rng_alloc_seeded(&r, 1, "bench/lm") != ASEC_OK)
        return die("alloc");
    t0 = now();
    if (asec_attn_invert_solve(ctx, &xh, r, &res, NULL) != ASEC_OK)
        return die("solve");
    t_lm = (now() - t0) / (double)(res.iterations ? res.iterations : 1);
    printf("attn-invert 32x64: LM iteration %.3f s over %zu iterations, %zu Cholesky, "
           "%zu evaluations (goal <= 0.2 s; PyTorch 1.3 s: %.1fx)\n",
           t_lm, res.iterations, res.factorizations, res.evaluations, 1.3 / t_lm);
    asec_attn_invert_free(ctx);
    asec_rng_free(r);
    asec_mat_free(&x);
    asec_mat_free(&w);
    asec_mat_free(&b);

    /* Success at the acceptance sizes, default settings, three seeds. */
    {
        static const size_t sizes[3][2] = {{4, 8}, {8, 16}, {16, 32}};

        for (size_t k = 0; k < 3; k++) {
            size_t ok = 0, starts = 0, its = 0, facts = 0;

            t0 = now();
            for (unsigned seed = 0; seed < 3; seed++) {
                asec_attn_invert_metrics m;
                asec_mat xs;

                d = sizes[k][0];
                n = sizes[k][1];
                if (make(&x, &w, &b, d, n, seed) != ASEC_OK ||
                    asec_attn_invert_alloc(&ctx, d, n, 1, &w, &b, NULL) != ASEC_OK ||
                    asec_mat_alloc(&xs, d, n) != ASEC_OK ||
                    asec_rng_alloc_seeded(&r, seed, "bench/accept") != ASEC_OK)
                    return die("acceptance setup");
                if (asec_attn_invert_solve(ctx, &xs, r, &res, NULL) != ASEC_OK ||
                    asec_attn_invert_score(&m, ctx, &xs, &x) != ASEC_OK)
                    return die("acceptance");
                ok += m.success != 0;
                starts += res.starts;
                its += res.iterations;
                facts += res.factorizations;
                asec_attn_invert_free(ctx);
                asec_rng_free(r);
                asec_mat_free(&xs);
                asec_mat_free(&x);
                asec_mat_free(&w);
                asec_mat_free(&b);
            }
            printf("attn-invert %zux%zu: success %zu/3 (orbit error < 1e-6), %zu starts "
                   "in all, %zu LM iterations, %zu Cholesky, %.2f s (PyTorch LM, 5 "
                   "restarts: %s)\n",
                   d, n, ok, starts, its, facts, now() - t0,
                   k == 0   ? "3/3"
                   : k == 1 ? "3/3"
                            : "0/3");
        }
    }

    /* Several heads observed: single-start success (no restarts) and the
     * naive error (is the symmetry group gone?) with H = 1 and H = 2, five
     * seeds per size; the second head is drawn after the first, so the
     * H = 1 instance is the first head of the H = 2 one. */
    {
        static const size_t sizes[2][2] = {{8, 16}, {16, 32}};

        for (size_t k = 0; k < 2; k++)
            for (size_t nh = 1; nh <= 2; nh++) {
                size_t ok = 0, sym = 0, iters = 0;

                d = sizes[k][0];
                n = sizes[k][1];
                t0 = now();
                for (unsigned seed = 0; seed < 5; seed++) {
                    asec_attn_invert_metrics m;
                    asec_mat xs, wh[2], bh[2];
                    asec_rng *ri;

                    if (asec_rng_alloc_seeded(&ri, seed, "bench/heads") != ASEC_OK ||
                        asec_mat_alloc(&x, d, n) != ASEC_OK)
                        return die("heads setup");
                    asec_rng_normal_fill(ri, x.data, d * n);
                    for (size_t h = 0; h < nh; h++) {
                        if (asec_mat_alloc(&wh[h], d, d) != ASEC_OK ||
                            asec_mat_alloc(&bh[h], n, n) != ASEC_OK)
                            return die("heads setup");
                        asec_rng_normal_fill(ri, wh[h].data, d * d);
                        for (size_t i = 0; i < d * d; i++)
                            wh[h].data[i] /= (double)d;
                        if (asec_attn_invert_attention(&bh[h], &x, &wh[h], 1.0, 0) !=
                            ASEC_OK)
                            return die("heads setup");
                    }
                    o = (asec_attn_invert_options)ASEC_ATTN_INVERT_OPTIONS_INIT;
                    o.restarts = 1;
                    if (asec_attn_invert_alloc(&ctx, d, n, nh, wh, bh, &o) != ASEC_OK ||
                        asec_mat_alloc(&xs, d, n) != ASEC_OK ||
                        asec_rng_alloc_seeded(&r, seed, "bench/heads/start") != ASEC_OK)
                        return die("heads setup");
                    if (asec_attn_invert_solve(ctx, &xs, r, &res, NULL) != ASEC_OK ||
                        asec_attn_invert_score(&m, ctx, &xs, &x) != ASEC_OK)
                        return die("heads");
                    ok += m.success != 0;
                    sym += m.success && m.naive_err < 1e-6;
                    iters += res.iterations;
                    asec_attn_invert_free(ctx);
                    asec_rng_free(r);
                    asec_rng_free(ri);
                    asec_mat_free(&xs);
                    asec_mat_free(&x);
                    for (size_t h = 0; h < nh; h++) {
                        asec_mat_free(&wh[h]);
                        asec_mat_free(&bh[h]);
                    }
                }
                printf("attn-invert %zux%zu, %zu head(s), one start: success %zu/5, of "
                       "which recovered exactly (naive error < 1e-6) %zu; %zu LM "
                       "iterations, %.2f s\n",
                       d, n, nh, ok, sym, iters, now() - t0);
            }
    }

    /* The regularised Newton solver: iterations at 16x32 (512 unknowns),
     * each an exact Hessian (512 HVPs) and an eigendecomposition. */
    {
        asec_mat xs;
        asec_rng *ri;

        d = 16;
        n = 32;
        if (make(&x, &w, &b, d, n, 0) != ASEC_OK)
            return die("newton setup");
        o = (asec_attn_invert_options)ASEC_ATTN_INVERT_OPTIONS_INIT;
        o.restarts = 1;
        o.max_iter = 10;
        o.solver = ASEC_ATTN_INVERT_NEWTON;
        if (asec_attn_invert_alloc(&ctx, d, n, 1, &w, &b, &o) != ASEC_OK ||
            asec_mat_alloc(&xs, d, n) != ASEC_OK ||
            asec_rng_alloc_seeded(&ri, 0, "bench/newton") != ASEC_OK)
            return die("newton setup");
        t0 = now();
        if (asec_attn_invert_solve(ctx, &xs, ri, &res, NULL) != ASEC_OK)
            return die("newton");
        printf("attn-invert 16x32: Newton iteration %.3f s over %zu iterations "
               "(exact Hessian + eigendecomposition)\n",
               (now() - t0) / (double)(res.iterations ? res.iterations : 1),
               res.iterations);
        asec_attn_invert_free(ctx);
        asec_rng_free(ri);
        asec_mat_free(&xs);
        asec_mat_free(&x);
        asec_mat_free(&w);
        asec_mat_free(&b);
    }
    asec_mat_free(&g);
    asec_mat_free(&xh);
    return EXIT_SUCCESS;
}
