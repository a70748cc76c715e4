/* bench_mat.c - GEMM throughput of asec_mat_gemm (OpenBLAS) against the
 * naive reference asec_mat_gemm_ref, measured in the same run on the same
 * machine, printed as GFLOP/s and as their ratio; plus row softmax
 * throughput.  Run by 'make bench' with OPENBLAS_NUM_THREADS=1.
 *
 * Not a test: nothing here asserts on time.  Exit status 1 only when a
 * call fails or the two products disagree. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "attnsec/attnsec.h"

#define MIN_SECONDS 0.25 /* time each kernel for at least this long */

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void
fill(asec_rng *r, asec_mat *m)
{
    for (size_t i = 0; i < m->rows; i++)
        for (size_t j = 0; j < m->cols; j++)
            *asec_mat_at(m, i, j) = asec_rng_normal(r);
}

typedef int (*gemm_fn)(asec_mat *, double, const asec_mat *, int, const asec_mat *, int,
                       double);

/* GFLOP/s of c = a b^T (the attention-score shape: K^T operand), 2 n^3
 * flops per call; repeated until MIN_SECONDS have passed. */
static double
gflops(gemm_fn fn, asec_mat *c, const asec_mat *a, const asec_mat *b, size_t n)
{
    double t0 = now(), t;
    long reps = 0;

    do {
        if (fn(c, 1.0, a, ASEC_NOTRANS, b, ASEC_TRANS, 0.0) != ASEC_OK) {
            fprintf(stderr, "bench_mat: gemm failed: %s\n", asec_errmsg());
            exit(1);
        }
        reps++;
        t = now() - t0;
    } while (t < MIN_SECONDS);
    return 2.0 * (double)n * (double)n * (double)n * (double)reps / t * 1e-9;
}

int
main(void)
{
    static const size_t sizes[] = {32, 64, 128, 256, 512};
    asec_rng *r;

    if (asec_init() != ASEC_OK || asec_rng_alloc_seeded(&r, 1, "bench_mat") != ASEC_OK) {
        fprintf(stderr, "bench_mat: %s\n", asec_errmsg());
        return 1;
    }
    printf("gemm c = a b^T, n x n, double (OPENBLAS_NUM_THREADS=%s)\n",
           getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS") : "unset");
    printf("%6s %14s %14s %10s\n", "n", "blas GFLOP/s", "naive GFLOP/s", "ratio");
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        asec_mat a, b, c, cr;
        double fast, slow, diff;

        if (asec_mat_alloc(&a, n, n) != ASEC_OK || asec_mat_alloc(&b, n, n) != ASEC_OK ||
            asec_mat_alloc(&c, n, n) != ASEC_OK || asec_mat_alloc(&cr, n, n) != ASEC_OK) {
            fprintf(stderr, "bench_mat: %s\n", asec_errmsg());
            return 1;
        }
        fill(r, &a);
        fill(r, &b);
        fast = gflops(asec_mat_gemm, &c, &a, &b, n);
        slow = gflops(asec_mat_gemm_ref, &cr, &a, &b, n);
        /* The two must agree (sums of n products of N(0,1) entries). */
        diff = 0.0;
        for (size_t i = 0; i < n * n; i++)
            diff = fmax(diff, fabs(c.data[i] - cr.data[i]));
        if (!(diff <= 1e-10 * (double)n)) {
            fprintf(stderr, "bench_mat: n = %zu: gemm and gemm_ref differ by %g\n", n,
                    diff);
            return 1;
        }
        printf("%6zu %14.2f %14.2f %9.1fx\n", n, fast, slow, fast / slow);
        asec_mat_free(&a);
        asec_mat_free(&b);
        asec_mat_free(&c);
        asec_mat_free(&cr);
    }

    /* Row softmax of a (T, S) score matrix, in place. */
    {
        size_t t_rows = 512, s_cols = 512;
        asec_mat p;
        double t0, t;
        long reps = 0;

        if (asec_mat_alloc(&p, t_rows, s_cols) != ASEC_OK) {
            fprintf(stderr, "bench_mat: %s\n", asec_errmsg());
            return 1;
        }
        fill(r, &p);
        t0 = now();
        do {
            if (asec_mat_softmax_rows(&p, &p) != ASEC_OK) {
                fprintf(stderr, "bench_mat: %s\n", asec_errmsg());
                return 1;
            }
            reps++;
            t = now() - t0;
        } while (t < MIN_SECONDS);
        printf("softmax_rows %zux%zu: %.1f Mentries/s\n", t_rows, s_cols,
               (double)(t_rows * s_cols) * (double)reps / t * 1e-6);
        asec_mat_free(&p);
    }
    asec_rng_free(r);
    return 0;
}
