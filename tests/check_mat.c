/* check_mat.c - the linear-algebra layer: asec_mat_* (views, BLAS and
 * LAPACK wrappers, row softmax) and asec_vec_* (log-sum-exp, softmax, the
 * softmax Jacobian product, dot, norm, axpy).
 *
 * TCases:
 *   core       BLAS-backed kernels against the naive reference
 *              asec_mat_gemm_ref on seeded random inputs, views with
 *              ld > cols (padding must stay untouched), zero sizes,
 *              beta = 0 with NaN in the output, properties of S(f).
 *   reference  closed forms computed by hand (cited per test), and
 *              MATH.md §9.1 T1 and T6.
 *   errors     every ASEC_E* the headers document, provoked on purpose.
 *   oom        asec_debug_fail_alloc(n) for n = 0, 1, 2, ... over every
 *              allocating function until it succeeds.
 *
 * Tolerances are |got - want| <= atol + rtol |want| (STYLE.md B6).  BLAS
 * against the reference loop: rtol = atol = 1e-12 (the task's choice; the
 * entries are sums of at most 40 products of O(1) numbers, so reordering
 * and FMA change them by at most ~40 * 2^-53 * 40 ~ 2e-13 absolutely). */
#include "config.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "testutil.h"

#define RTOL 1e-12
#define ATOL 1e-12
#define SENTINEL 123456.75 /* written around views; must survive */

/* ------------------------------------------------------------ helpers */

static asec_rng *
seeded(const char *label)
{
    asec_rng *r;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 20240601, label), ASEC_OK);
    return r;
}

/* "High entropy" entries: normal draws times 2^u, u uniform in [-4, 4],
 * so magnitudes spread over ~5 decades and no pattern is shared. */
static void
fill_random(asec_rng *r, asec_mat *m)
{
    for (size_t i = 0; i < m->rows; i++)
        for (size_t j = 0; j < m->cols; j++)
            *asec_mat_at(m, i, j) =
                ldexp(asec_rng_normal(r), (int)asec_rng_bounded(r, 9) - 4);
}

/* A rows x cols view inside a malloc'ed buffer with `pad` sentinel
 * columns on both sides and one sentinel row above and below, so that
 * ld = cols + 2 pad > cols.  Free *buf with free(). */
static asec_mat
padded(double **buf, size_t rows, size_t cols, size_t pad)
{
    size_t ld = cols + 2 * pad, n = (rows + 2) * ld;
    asec_mat m;

    *buf = malloc((n > 0 ? n : 1) * sizeof(double));
    ck_assert_ptr_nonnull(*buf);
    for (size_t i = 0; i < n; i++)
        (*buf)[i] = SENTINEL;
    m.rows = rows;
    m.cols = cols;
    m.ld = ld;
    m.data = *buf + ld + pad;
    return m;
}

/* Every buffer entry outside the view still holds the sentinel. */
static void
check_padding(const double *buf, const asec_mat *m, size_t pad)
{
    size_t ld = m->ld, n = (m->rows + 2) * ld;

    for (size_t p = 0; p < n; p++) {
        size_t i = p / ld, j = p % ld;
        int inside = i >= 1 && i <= m->rows && j >= pad && j < pad + m->cols;

        if (!inside)
            ck_assert_msg(buf[p] == SENTINEL, "padding at row %zu col %zu overwritten", i,
                          j);
    }
}

/* allclose over two views of the same shape, row by row. */
static void
mat_allclose(const asec_mat *got, const asec_mat *want, double rtol, double atol,
             const char *what)
{
    ck_assert_uint_eq(got->rows, want->rows);
    ck_assert_uint_eq(got->cols, want->cols);
    for (size_t i = 0; i < got->rows; i++)
        asec_test_allclose(got->data + i * got->ld, want->data + i * want->ld, got->cols,
                           rtol, atol, what);
}

static asec_mat
alloc_or_fail(size_t rows, size_t cols)
{
    asec_mat m;

    ck_assert_int_eq(asec_mat_alloc(&m, rows, cols), ASEC_OK);
    return m;
}

/* ------------------------------------------------------------ core */

START_TEST(test_alloc_free)
{
    asec_mat m, z;

    memset(&m, 0xab, sizeof m);
    ck_assert_int_eq(asec_mat_alloc(&m, 3, 4), ASEC_OK);
    ck_assert_uint_eq(m.rows, 3);
    ck_assert_uint_eq(m.cols, 4);
    ck_assert_uint_eq(m.ld, 4);
    for (size_t i = 0; i < 12; i++)
        ck_assert(m.data[i] == 0.0);
    asec_mat_free(&m);
    ck_assert_ptr_null(m.data);
    ck_assert_uint_eq(m.rows + m.cols + m.ld, 0);
    asec_mat_free(&m); /* zeroed: no-op */
    asec_mat_free(NULL);

    /* Empty shapes are valid. */
    ck_assert_int_eq(asec_mat_alloc(&z, 0, 5), ASEC_OK);
    ck_assert_uint_eq(z.cols, 5);
    asec_mat_free(&z);
    ck_assert_int_eq(asec_mat_alloc(&z, 5, 0), ASEC_OK);
    ck_assert_uint_eq(z.rows, 5);
    asec_mat_free(&z);
}
END_TEST

START_TEST(test_copy_fill_transpose)
{
    double *bs, *bd, *bt;
    asec_mat s = padded(&bs, 3, 4, 2), d = padded(&bd, 3, 4, 1), t = padded(&bt, 4, 3, 3);

    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 4; j++)
            *asec_mat_at(&s, i, j) = 10.0 * (double)i + (double)j;
    ck_assert_int_eq(asec_mat_copy(&d, &s), ASEC_OK);
    mat_allclose(&d, &s, 0, 0, "copy");
    ck_assert_int_eq(asec_mat_transpose(&t, &s), ASEC_OK);
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 4; j++)
            ck_assert(*asec_mat_at(&t, j, i) == *asec_mat_at(&s, i, j));
    check_padding(bd, &d, 1);
    check_padding(bt, &t, 3);
    asec_mat_fill(&d, -2.5);
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 4; j++)
            ck_assert(*asec_mat_at(&d, i, j) == -2.5);
    check_padding(bd, &d, 1);
    /* A block (rows 1-2, columns 1-3 of s) copied out and back in. */
    {
        double small[6];
        asec_mat blk = asec_mat_block(&s, 1, 1, 2, 3), sv = asec_mat_view(small, 2, 3);

        ck_assert_int_eq(asec_mat_copy(&sv, &blk), ASEC_OK);
        ck_assert(small[0] == 11.0 && small[2] == 13.0 && small[5] == 23.0);
        small[4] = -1.0;
        ck_assert_int_eq(asec_mat_copy(&blk, &sv), ASEC_OK);
        ck_assert(*asec_mat_at(&s, 2, 2) == -1.0 && *asec_mat_at(&s, 2, 0) == 20.0);
        check_padding(bs, &s, 2);
    }
    free(bs);
    free(bd);
    free(bt);
}
END_TEST

START_TEST(test_norms)
{
    double v[4] = {3.0, 4.0, 0.0, 0.0}, w;
    double *buf;
    asec_mat m = padded(&buf, 2, 2, 1);

    /* Overflow and underflow safety: 5 = |(3, 4)| at every scale. */
    ck_assert(asec_vec_norm2(v, 2) == 5.0);
    v[0] = 3e300;
    v[1] = 4e300;
    w = 5e300;
    asec_test_allclose(&(double){asec_vec_norm2(v, 2)}, &w, 1, 1e-15, 0, "norm 1e300");
    v[0] = 3e-310; /* subnormal */
    v[1] = 4e-310;
    w = 5e-310;
    asec_test_allclose(&(double){asec_vec_norm2(v, 2)}, &w, 1, 1e-12, 0, "norm 1e-310");
    v[0] = 3e-160;
    v[1] = 4e-160; /* squares underflow to 0 without scaling */
    w = 5e-160;
    asec_test_allclose(&(double){asec_vec_norm2(v, 2)}, &w, 1, 1e-15, 0, "norm 1e-160");
    v[0] = DBL_MAX;
    v[1] = 0.0;
    ck_assert(asec_vec_norm2(v, 2) == DBL_MAX);
    ck_assert(asec_vec_norm2(v, 0) == 0.0);
    v[0] = -INFINITY;
    ck_assert(asec_vec_norm2(v, 2) == INFINITY);
    v[1] = NAN;
    ck_assert(isnan(asec_vec_norm2(v, 2)));

    /* Matrix norms on a view with ld > cols: [[1, -2], [2, 4]]. */
    *asec_mat_at(&m, 0, 0) = 1.0;
    *asec_mat_at(&m, 0, 1) = -2.0;
    *asec_mat_at(&m, 1, 0) = 2.0;
    *asec_mat_at(&m, 1, 1) = 4.0;
    w = 5.0;
    asec_test_allclose(&(double){asec_mat_norm_fro(&m)}, &w, 1, 1e-15, 0, "fro");
    ck_assert(asec_mat_norm_max(&m) == 4.0);
    *asec_mat_at(&m, 0, 0) = 3e300;
    *asec_mat_at(&m, 0, 1) = 0.0;
    *asec_mat_at(&m, 1, 0) = 0.0;
    *asec_mat_at(&m, 1, 1) = 4e300;
    w = 5e300;
    asec_test_allclose(&(double){asec_mat_norm_fro(&m)}, &w, 1, 1e-15, 0, "fro 1e300");
    *asec_mat_at(&m, 1, 0) = NAN;
    ck_assert(isnan(asec_mat_norm_fro(&m)));
    ck_assert(isnan(asec_mat_norm_max(&m)));
    m.rows = 0;
    ck_assert(asec_mat_norm_fro(&m) == 0.0);
    ck_assert(asec_mat_norm_max(&m) == 0.0);
    free(buf);
}
END_TEST

START_TEST(test_dot_axpy)
{
    double x[7] = {1, 2, 3, 4, 5, 6, 7}, y[7] = {7, 6, 5, 4, 3, 2, 1};
    double want[7] = {3.5, 5, 6.5, 8, 9.5, 11, 12.5};

    /* 7 + 12 + 15 + 16 + 15 + 12 + 7 = 84; the tail loop is exercised. */
    ck_assert(asec_vec_dot(x, y, 7) == 84.0);
    ck_assert(asec_vec_dot(x, y, 3) == 34.0);
    ck_assert(asec_vec_dot(x, y, 0) == 0.0);
    asec_vec_axpy(y, 0.5, x, 7);
    for (size_t i = 0; i < 7; i++)
        want[i] = (double)(7 - i) + 0.5 * (double)(i + 1);
    asec_test_allclose(y, want, 7, 0, 0, "axpy");
}
END_TEST

/* gemm and gemm_ref agree for every transpose pair on padded views. */
static void
gemm_vs_ref(asec_rng *r, size_t m, size_t n, size_t k, int ta, int tb, double alpha,
            double beta)
{
    double *ba, *bb, *bc, *bref;
    asec_mat a = ta ? padded(&ba, k, m, 2) : padded(&ba, m, k, 2);
    asec_mat b = tb ? padded(&bb, n, k, 1) : padded(&bb, k, n, 1);
    asec_mat c = padded(&bc, m, n, 3), ref = padded(&bref, m, n, 0);

    fill_random(r, &a);
    fill_random(r, &b);
    fill_random(r, &c);
    ck_assert_int_eq(asec_mat_copy(&ref, &c), ASEC_OK);
    ck_assert_int_eq(asec_mat_gemm(&c, alpha, &a, ta, &b, tb, beta), ASEC_OK);
    ck_assert_int_eq(asec_mat_gemm_ref(&ref, alpha, &a, ta, &b, tb, beta), ASEC_OK);
    mat_allclose(&c, &ref, RTOL, ATOL, "gemm vs gemm_ref");
    check_padding(bc, &c, 3);
    check_padding(bref, &ref, 0);
    free(ba);
    free(bb);
    free(bc);
    free(bref);
}

START_TEST(test_gemm_random)
{
    asec_rng *r = seeded("check_mat/gemm");

    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++) {
            gemm_vs_ref(r, 7, 9, 5, ta, tb, 0.7, -1.3);
            gemm_vs_ref(r, 33, 29, 17, ta, tb, -1.25, 0.0);
            gemm_vs_ref(r, 1, 40, 40, ta, tb, 1.0, 1.0);
            gemm_vs_ref(r, 40, 1, 3, ta, tb, 2.0, 0.5);
        }
    asec_rng_free(r);
}
END_TEST

START_TEST(test_gemm_zero_sizes)
{
    double cbuf[6], nan6[6] = {0};
    asec_mat a0 = {3, 0, 0, NULL}, b0 = {0, 2, 2, NULL}, c = asec_mat_view(cbuf, 3, 2);
    asec_mat e = {0, 2, 2, NULL}, a = asec_mat_view(nan6, 0, 3);

    /* K == 0: c = beta c. */
    for (int i = 0; i < 6; i++)
        cbuf[i] = i + 1.0;
    ck_assert_int_eq(asec_mat_gemm(&c, 5.0, &a0, ASEC_NOTRANS, &b0, ASEC_NOTRANS, 2.0),
                     ASEC_OK);
    for (int i = 0; i < 6; i++)
        ck_assert(cbuf[i] == 2.0 * (i + 1.0));
    ck_assert_int_eq(
        asec_mat_gemm_ref(&c, 5.0, &a0, ASEC_NOTRANS, &b0, ASEC_NOTRANS, 0.5), ASEC_OK);
    for (int i = 0; i < 6; i++)
        ck_assert(cbuf[i] == i + 1.0);
    /* K == 0, beta == 0: zeros, even over NaN. */
    for (int i = 0; i < 6; i++)
        cbuf[i] = NAN;
    ck_assert_int_eq(asec_mat_gemm(&c, 1.0, &a0, ASEC_NOTRANS, &b0, ASEC_NOTRANS, 0.0),
                     ASEC_OK);
    for (int i = 0; i < 6; i++)
        ck_assert(cbuf[i] == 0.0);
    /* M == 0 (a is 0x3, b 3x2 given as its transpose 2x3): c is 0x2. */
    {
        double bb[6] = {1, 2, 3, 4, 5, 6};
        asec_mat bt = asec_mat_view(bb, 2, 3);

        ck_assert_int_eq(asec_mat_gemm(&e, 1.0, &a, ASEC_NOTRANS, &bt, ASEC_TRANS, 0.0),
                         ASEC_OK);
        ck_assert_int_eq(
            asec_mat_gemm_ref(&e, 1.0, &a, ASEC_NOTRANS, &bt, ASEC_TRANS, 0.0), ASEC_OK);
    }
    /* N == 0. */
    {
        double aa[6] = {1, 2, 3, 4, 5, 6};
        asec_mat a23 = asec_mat_view(aa, 2, 3), b30 = {3, 0, 0, NULL},
                 c20 = {2, 0, 0, NULL};

        ck_assert_int_eq(
            asec_mat_gemm(&c20, 1.0, &a23, ASEC_NOTRANS, &b30, ASEC_NOTRANS, 1.0),
            ASEC_OK);
        ck_assert_int_eq(asec_mat_gemm_batched(4, &c20, 0, 1.0, &a23, 6, ASEC_NOTRANS,
                                               &b30, 0, ASEC_NOTRANS, 0.0),
                         ASEC_OK);
    }
}
END_TEST

START_TEST(test_gemm_beta_zero_nan)
{
    asec_rng *r = seeded("check_mat/beta0");
    asec_mat a = alloc_or_fail(6, 4), b = alloc_or_fail(4, 5);
    asec_mat c = alloc_or_fail(6, 5), ref = alloc_or_fail(6, 5);

    /* beta == 0: c is not read, so NaN (and inf) in c never propagate. */
    fill_random(r, &a);
    fill_random(r, &b);
    asec_mat_fill(&c, NAN);
    asec_mat_fill(&ref, INFINITY);
    ck_assert_int_eq(asec_mat_gemm(&c, 1.5, &a, ASEC_NOTRANS, &b, ASEC_NOTRANS, 0.0),
                     ASEC_OK);
    ck_assert_int_eq(
        asec_mat_gemm_ref(&ref, 1.5, &a, ASEC_NOTRANS, &b, ASEC_NOTRANS, 0.0), ASEC_OK);
    mat_allclose(&c, &ref, RTOL, ATOL, "beta 0 over NaN");
    /* alpha == 0 and beta == 0: zeros without reading anything. */
    asec_mat_fill(&c, NAN);
    asec_mat_fill(&a, NAN);
    ck_assert_int_eq(asec_mat_gemm(&c, 0.0, &a, ASEC_NOTRANS, &b, ASEC_NOTRANS, 0.0),
                     ASEC_OK);
    ck_assert(asec_mat_norm_max(&c) == 0.0);
    asec_mat_fill(&ref, NAN);
    ck_assert_int_eq(
        asec_mat_gemm_ref(&ref, 0.0, &a, ASEC_NOTRANS, &b, ASEC_NOTRANS, 0.0), ASEC_OK);
    ck_assert(asec_mat_norm_max(&ref) == 0.0);
    asec_mat_free(&a);
    asec_mat_free(&b);
    asec_mat_free(&c);
    asec_mat_free(&ref);
    asec_rng_free(r);
}
END_TEST

START_TEST(test_gemv)
{
    asec_rng *r = seeded("check_mat/gemv");
    double *ba;
    asec_mat a = padded(&ba, 5, 3, 2);
    double x5[5], x3[3], y[5], want[5];
    asec_mat y5 = asec_mat_view(want, 5, 1), y3 = asec_mat_view(want, 3, 1);
    asec_mat xv5 = asec_mat_view(x5, 5, 1), xv3 = asec_mat_view(x3, 3, 1);

    fill_random(r, &a);
    for (int i = 0; i < 5; i++)
        x5[i] = asec_rng_normal(r);
    for (int i = 0; i < 3; i++)
        x3[i] = asec_rng_normal(r);

    /* y = 2 a x3 - 0.5 y (a is 5x3), against gemm_ref with x as a column. */
    for (int i = 0; i < 5; i++)
        y[i] = want[i] = asec_rng_normal(r);
    ck_assert_int_eq(asec_mat_gemv(y, 2.0, &a, ASEC_NOTRANS, x3, -0.5), ASEC_OK);
    ck_assert_int_eq(
        asec_mat_gemm_ref(&y5, 2.0, &a, ASEC_NOTRANS, &xv3, ASEC_NOTRANS, -0.5), ASEC_OK);
    asec_test_allclose(y, want, 5, RTOL, ATOL, "gemv notrans");

    /* y = a^T x5 with y full of NaN and beta 0. */
    for (int i = 0; i < 3; i++)
        y[i] = NAN;
    ck_assert_int_eq(asec_mat_gemv(y, 1.0, &a, ASEC_TRANS, x5, 0.0), ASEC_OK);
    ck_assert_int_eq(asec_mat_gemm_ref(&y3, 1.0, &a, ASEC_TRANS, &xv5, ASEC_NOTRANS, 0.0),
                     ASEC_OK);
    asec_test_allclose(y, want, 3, RTOL, ATOL, "gemv trans");
    check_padding(ba, &a, 2);

    /* Hand-computed: [[1, 2], [3, 4]] (1, 1) = (3, 7). */
    {
        double m[4] = {1, 2, 3, 4}, one[2] = {1, 1}, out[2] = {NAN, NAN};
        asec_mat mv = asec_mat_view(m, 2, 2);

        ck_assert_int_eq(asec_mat_gemv(out, 1.0, &mv, ASEC_NOTRANS, one, 0.0), ASEC_OK);
        ck_assert(out[0] == 3.0 && out[1] == 7.0);
        ck_assert_int_eq(asec_mat_gemv(out, 1.0, &mv, ASEC_TRANS, one, 1.0), ASEC_OK);
        ck_assert(out[0] == 7.0 && out[1] == 13.0);
        /* n == 0: y = beta y. */
        mv.cols = 0;
        ck_assert_int_eq(asec_mat_gemv(out, 1.0, &mv, ASEC_NOTRANS, one, 2.0), ASEC_OK);
        ck_assert(out[0] == 14.0 && out[1] == 26.0);
    }
    free(ba);
    asec_rng_free(r);
}
END_TEST

START_TEST(test_syrk)
{
    asec_rng *r = seeded("check_mat/syrk");

    for (int ta = 0; ta <= 1; ta++) {
        for (int bz = 0; bz <= 1; bz++) {
            size_t n = 6, k = 4;
            double beta = bz ? 0.0 : 0.75, *ba, *bc;
            asec_mat a = ta ? padded(&ba, k, n, 1) : padded(&ba, n, k, 1);
            asec_mat c = padded(&bc, n, n, 2), ref = alloc_or_fail(n, n);

            fill_random(r, &a);
            /* A symmetric c for beta != 0 (syrk reads its lower half). */
            fill_random(r, &ref);
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++)
                    *asec_mat_at(&c, i, j) =
                        bz ? NAN : *asec_mat_at(&ref, i > j ? i : j, i > j ? j : i);
            ck_assert_int_eq(asec_mat_copy(&ref, &c), ASEC_OK);
            ck_assert_int_eq(asec_mat_syrk(&c, -1.5, &a, ta, beta), ASEC_OK);
            ck_assert_int_eq(asec_mat_gemm_ref(&ref, -1.5, &a, ta, &a, !ta, beta),
                             ASEC_OK);
            mat_allclose(&c, &ref, RTOL, ATOL, "syrk vs gemm_ref");
            for (size_t i = 0; i < n; i++) /* exactly symmetric */
                for (size_t j = 0; j < n; j++)
                    ck_assert(*asec_mat_at(&c, i, j) == *asec_mat_at(&c, j, i));
            check_padding(bc, &c, 2);
            asec_mat_free(&ref);
            free(ba);
            free(bc);
        }
    }
    asec_rng_free(r);
}
END_TEST

/* Batched against item-by-item gemm_ref on the same storage. */
static void
batched_vs_ref(asec_rng *r, size_t count, size_t m, size_t n, size_t k, int ta, int tb,
               size_t sa, size_t sb, size_t sc, size_t lda, size_t ldb, size_t ldc)
{
    size_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    size_t na = (count - 1) * sa + ar * lda, nb = (count - 1) * sb + br * ldb,
           nc = (count - 1) * sc + m * ldc;
    double *da = malloc(na * sizeof(double)), *db = malloc(nb * sizeof(double));
    double *dc = malloc(nc * sizeof(double)), *dr = malloc(nc * sizeof(double));
    asec_mat a = {ar, ac, lda, da}, b = {br, bc, ldb, db}, c = {m, n, ldc, dc};

    for (size_t i = 0; i < na; i++)
        da[i] = asec_rng_normal(r);
    for (size_t i = 0; i < nb; i++)
        db[i] = asec_rng_normal(r);
    for (size_t i = 0; i < nc; i++)
        dc[i] = dr[i] = asec_rng_normal(r);
    ck_assert_int_eq(
        asec_mat_gemm_batched(count, &c, sc, 0.5, &a, sa, ta, &b, sb, tb, -2.0), ASEC_OK);
    for (size_t i = 0; i < count; i++) {
        asec_mat ai = a, bi = b, ci = c;

        ai.data += i * sa;
        bi.data += i * sb;
        ci.data = dr + i * sc;
        ck_assert_int_eq(asec_mat_gemm_ref(&ci, 0.5, &ai, ta, &bi, tb, -2.0), ASEC_OK);
    }
    /* Entries outside every C_i are untouched too, since both buffers
     * started equal. */
    asec_test_allclose(dc, dr, nc, RTOL, ATOL, "gemm_batched vs gemm_ref");
    free(da);
    free(db);
    free(dc);
    free(dr);
}

START_TEST(test_gemm_batched)
{
    asec_rng *r = seeded("check_mat/batched");

    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++) {
            size_t ar = ta ? 4 : 3, ac = ta ? 3 : 4, br = tb ? 5 : 4, bc = tb ? 4 : 5;

            /* General strides with gaps between items and ld > cols. */
            batched_vs_ref(r, 3, 3, 5, 4, ta, tb, ar * (ac + 2) + 7, br * (bc + 1) + 3,
                           3 * 6 + 1, ac + 2, bc + 1, 6);
            /* Shared B (stride 0): the single-GEMM path when ta == NOTRANS
             * and the A_i, C_i are stacked. */
            batched_vs_ref(r, 4, 3, 5, 4, ta, tb, ar * (ac + 1), 0, 3 * 5, ac + 1, bc, 5);
            /* Shared A. */
            batched_vs_ref(r, 4, 3, 5, 4, ta, tb, 0, br * bc, 3 * 7, ac, bc, 7);
        }
    /* Heads side by side: C_i is columns [5 i, 5 i + 5) of a (3, 20)
     * matrix, as when per-head outputs are concatenated. */
    batched_vs_ref(r, 4, 3, 5, 4, ASEC_NOTRANS, ASEC_TRANS, 3 * 4, 5 * 4, 5, 4, 4, 20);
    /* count == 1 and count == 0. */
    batched_vs_ref(r, 1, 2, 2, 2, ASEC_NOTRANS, ASEC_NOTRANS, 0, 0, 0, 2, 2, 2);
    {
        double x[4] = {1, 2, 3, 4};
        asec_mat v = asec_mat_view(x, 2, 2), c = asec_mat_view(x, 2, 2);

        ck_assert_int_eq(asec_mat_gemm_batched(0, &c, 0, 1.0, &v, 0, ASEC_NOTRANS, &v, 0,
                                               ASEC_NOTRANS, 0.0),
                         ASEC_OK);
        ck_assert(x[0] == 1 && x[3] == 4);
    }
    asec_rng_free(r);
}
END_TEST

START_TEST(test_softmax_rows_alias)
{
    double *buf;
    asec_mat z = padded(&buf, 3, 4, 1);
    double want[4];

    /* Row 1 = row 0 + 700: shift invariance; row 2 has -inf entries. */
    for (size_t j = 0; j < 4; j++) {
        *asec_mat_at(&z, 0, j) = 0.25 * (double)j;
        *asec_mat_at(&z, 1, j) = 700.0 + 0.25 * (double)j;
        *asec_mat_at(&z, 2, j) = j % 2 ? -INFINITY : 1.0;
    }
    ck_assert_int_eq(asec_vec_softmax(want, z.data, 4), ASEC_OK);
    ck_assert_int_eq(asec_mat_softmax_rows(&z, &z), ASEC_OK); /* in place */
    asec_test_allclose(asec_mat_at(&z, 0, 0), want, 4, 0, 0, "row 0");
    asec_test_allclose(asec_mat_at(&z, 1, 0), want, 4, 1e-15, 0, "row 1 (shifted)");
    ck_assert(*asec_mat_at(&z, 2, 0) == 0.5 && *asec_mat_at(&z, 2, 1) == 0.0);
    ck_assert(*asec_mat_at(&z, 2, 2) == 0.5 && *asec_mat_at(&z, 2, 3) == 0.0);
    check_padding(buf, &z, 1);
    /* Zero rows and zero columns are valid. */
    z.rows = 0;
    ck_assert_int_eq(asec_mat_softmax_rows(&z, &z), ASEC_OK);
    z.rows = 2;
    z.cols = 0;
    ck_assert_int_eq(asec_mat_softmax_rows(&z, &z), ASEC_OK);
    free(buf);
}
END_TEST

START_TEST(test_logsumexp)
{
    double z[3] = {1000.0, 1000.0, 0}, got, want;

    got = asec_vec_logsumexp(z, 2);
    want = 1000.0 + log(2.0);
    asec_test_allclose(&got, &want, 1, 1e-15, 0, "logsumexp(1000, 1000)");
    z[0] = -1000.0;
    z[1] = -1000.0;
    got = asec_vec_logsumexp(z, 2);
    want = -1000.0 + log(2.0);
    asec_test_allclose(&got, &want, 1, 1e-15, 0, "logsumexp(-1000, -1000)");
    /* Tiny addends keep their digits: log(1 + e^-40) = e^-40 (1 - ...). */
    z[0] = 0.0;
    z[1] = -40.0;
    got = asec_vec_logsumexp(z, 2);
    want = log1p(exp(-40.0));
    ck_assert(got == want && got > 0.0);
    /* Documented special cases. */
    ck_assert(asec_vec_logsumexp(z, 0) == -INFINITY);
    z[0] = z[1] = -INFINITY;
    ck_assert(asec_vec_logsumexp(z, 2) == -INFINITY);
    z[1] = 3.0;
    ck_assert(asec_vec_logsumexp(z, 2) == 3.0);
    z[0] = INFINITY;
    ck_assert(asec_vec_logsumexp(z, 2) == INFINITY);
    z[1] = NAN;
    ck_assert(isnan(asec_vec_logsumexp(z, 2)));
}
END_TEST

START_TEST(test_softmax_jvp)
{
    asec_rng *r = seeded("check_mat/jvp");
    enum { N = 7 };
    double z[N], f[N], v[N], out[N], want[N], ones[N], zeros[N] = {0};
    double s[N * N], w[N];
    asec_mat sm = asec_mat_view(s, N, N);

    for (int trial = 0; trial < 20; trial++) {
        /* Logits from flat to sharply peaked as trial grows. */
        for (int i = 0; i < N; i++) {
            z[i] = (1.0 + trial) * asec_rng_normal(r);
            v[i] = asec_rng_normal(r);
            ones[i] = 1.0;
        }
        ck_assert_int_eq(asec_vec_softmax(f, z, N), ASEC_OK);
        /* The explicit S(f) = diag(f) - f f^T (MATH.md §1). */
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++)
                s[i * N + j] = (i == j ? f[i] : 0.0) - f[i] * f[j];
        asec_vec_softmax_jvp(out, f, v, N);
        ck_assert_int_eq(asec_mat_gemv(want, 1.0, &sm, ASEC_NOTRANS, v, 0.0), ASEC_OK);
        asec_test_allclose(out, want, N, 1e-12, 1e-15, "S(f) v vs explicit");
        /* out may alias v. */
        asec_vec_softmax_jvp(v, f, v, N);
        asec_test_allclose(v, out, N, 0, 0, "aliased jvp");
        /* S(f) 1 = 0: f_i (1 - sum f) with sum f = 1 to N ulps. */
        asec_vec_softmax_jvp(out, f, ones, N);
        asec_test_allclose(out, zeros, N, 0, 8 * DBL_EPSILON, "S(f) 1");
        /* S(f) is PSD with ||S(f)|| <= 1/2 (MATH.md §1). */
        ck_assert_int_eq(asec_mat_eigh(w, NULL, &sm), ASEC_OK);
        ck_assert_msg(w[0] >= -1e-15, "lambda_min %g", w[0]);
        ck_assert_msg(w[N - 1] <= 0.5 + 1e-15, "lambda_max %g", w[N - 1]);
    }
    asec_rng_free(r);
}
END_TEST

START_TEST(test_lapack_zero_sizes)
{
    double w[1] = {SENTINEL}, s[1] = {SENTINEL}, y[2] = {NAN, NAN};
    asec_mat e00 = {0, 0, 0, NULL}, e30 = {3, 0, 0, NULL}, e02 = {0, 2, 2, NULL};
    asec_mat e03 = {0, 3, 3, NULL}, e33 = {0, 0, 0, NULL};
    size_t rank = 7;

    /* Empty problems succeed without touching anything. */
    ck_assert_int_eq(asec_mat_cholesky_solve(&e02, &e00), ASEC_OK);
    ck_assert_int_eq(asec_mat_eigh(w, &e00, &e00), ASEC_OK);
    ck_assert_int_eq(asec_mat_svd(s, &e30, &e00, &e30), ASEC_OK);
    ck_assert_int_eq(asec_mat_svd(s, NULL, &e03, &e03), ASEC_OK);
    ck_assert(w[0] == SENTINEL && s[0] == SENTINEL);
    ck_assert_int_eq(asec_mat_lstsq(&e00, &rank, &e30, &e30, -1.0), ASEC_OK);
    ck_assert_uint_eq(rank, 0);
    ck_assert_int_eq(asec_mat_syrk(&e33, 1.0, &e02, ASEC_NOTRANS, 0.0), ASEC_OK);
    /* syrk with K == 0: c (2x2) = beta c, mirrored from the lower part. */
    {
        double c[4] = {1, 99, 2, 3};
        asec_mat cv = asec_mat_view(c, 2, 2);

        ck_assert_int_eq(asec_mat_syrk(&cv, 1.0, &e02, ASEC_TRANS, 2.0), ASEC_OK);
        ck_assert(c[0] == 2 && c[1] == 4 && c[2] == 4 && c[3] == 6);
        ck_assert_int_eq(asec_mat_syrk(&cv, 1.0, &e02, ASEC_TRANS, 0.0), ASEC_OK);
        ck_assert(c[0] == 0 && c[1] == 0 && c[2] == 0 && c[3] == 0);
    }
    /* gemv with a 2x0 matrix and beta 0 over NaN. */
    {
        asec_mat a20 = {2, 0, 0, NULL};

        ck_assert_int_eq(asec_mat_gemv(y, 1.0, &a20, ASEC_NOTRANS, w, 0.0), ASEC_OK);
        ck_assert(y[0] == 0.0 && y[1] == 0.0);
    }
}
END_TEST

/* ------------------------------------------------------------ reference */

START_TEST(test_gemm_hand)
{
    /* a = [[1,2,3],[4,5,6]], b = [[7,8],[9,10],[11,12]]:
     * a b = [[58, 64], [139, 154]] (by hand: 1*7 + 2*9 + 3*11 = 58, ...);
     * c = 2 a b - c0 with c0 = [[1, 1], [1, 1]] = [[115, 127], [277, 307]].
     * Every transpose pair, with the operands stored accordingly. */
    double a[6] = {1, 2, 3, 4, 5, 6}, at[6] = {1, 4, 2, 5, 3, 6};
    double b[6] = {7, 8, 9, 10, 11, 12}, bt[6] = {7, 9, 11, 8, 10, 12};
    double want[4] = {115, 127, 277, 307};

    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++) {
            double c[4] = {1, 1, 1, 1}, cr[4] = {1, 1, 1, 1};
            asec_mat av = ta ? asec_mat_view(at, 3, 2) : asec_mat_view(a, 2, 3);
            asec_mat bv = tb ? asec_mat_view(bt, 2, 3) : asec_mat_view(b, 3, 2);
            asec_mat cv = asec_mat_view(c, 2, 2), crv = asec_mat_view(cr, 2, 2);

            ck_assert_int_eq(asec_mat_gemm(&cv, 2.0, &av, ta, &bv, tb, -1.0), ASEC_OK);
            ck_assert_int_eq(asec_mat_gemm_ref(&crv, 2.0, &av, ta, &bv, tb, -1.0),
                             ASEC_OK);
            asec_test_allclose(c, want, 4, 0, 0, "gemm by hand");
            asec_test_allclose(cr, want, 4, 0, 0, "gemm_ref by hand");
        }
}
END_TEST

START_TEST(test_cholesky_solve)
{
    /* [[4, 2], [2, 3]] x = [[2, 1], [1, 2]]: det 8, so x = [[0.5, -0.125],
     * [0, 0.75]] by Cramer's rule.  b is a view with ld 3 > cols 2. */
    double a[4] = {4, 2, 2, 3}, a0[4] = {4, 2, 2, 3};
    double b[6] = {2, 1, SENTINEL, 1, 2, SENTINEL};
    double want[6] = {0.5, -0.125, SENTINEL, 0.0, 0.75, SENTINEL};
    asec_mat av = asec_mat_view(a, 2, 2), bv = {2, 2, 3, b};

    ck_assert_int_eq(asec_mat_cholesky_solve(&bv, &av), ASEC_OK);
    asec_test_allclose(b, want, 6, RTOL, ATOL, "2x2 solve");
    asec_test_allclose(a, a0, 4, 0, 0, "a not modified");

    /* The textbook 3x3 A = L L^T with L = [[2,0,0],[6,1,0],[-8,5,3]];
     * b = A (1, 2, 3)^T = (-20, -43, 192). */
    {
        double a3[9] = {4, 12, -16, 12, 37, -43, -16, -43, 98};
        double b3[3] = {-20, -43, 192}, x3[3] = {1, 2, 3};
        asec_mat a3v = asec_mat_view(a3, 3, 3), b3v = asec_mat_view(b3, 3, 1);

        ck_assert_int_eq(asec_mat_cholesky_solve(&b3v, &a3v), ASEC_OK);
        asec_test_allclose(b3, x3, 3, 1e-12, 1e-12, "3x3 solve");
        /* Only the lower triangle is read. */
        a3[1] = a3[2] = a3[5] = NAN;
        b3[0] = -20;
        b3[1] = -43;
        b3[2] = 192;
        ck_assert_int_eq(asec_mat_cholesky_solve(&b3v, &a3v), ASEC_OK);
        asec_test_allclose(b3, x3, 3, 1e-12, 1e-12, "3x3 solve, lower only");
    }
}
END_TEST

START_TEST(test_eigh_known)
{
    /* [[2,1,0],[1,2,1],[0,1,2]] = 2 I + tridiag(1, 0, 1) has eigenvalues
     * 2 + 2 cos(k pi / 4), k = 1, 2, 3: 2 + sqrt 2, 2, 2 - sqrt 2.  The
     * upper triangle holds NaN: only the lower one may be read. */
    double a[9] = {2, NAN, NAN, 1, 2, NAN, 0, 1, 2};
    double full[9] = {2, 1, 0, 1, 2, 1, 0, 1, 2};
    double want[3] = {2 - sqrt(2.0), 2, 2 + sqrt(2.0)}, w[3], w2[3], rec[9], vtv[9];
    double *bv;
    asec_mat av = asec_mat_view(a, 3, 3), v = padded(&bv, 3, 3, 2);
    asec_mat recv = asec_mat_view(rec, 3, 3), vtvv = asec_mat_view(vtv, 3, 3);
    asec_mat vw;
    double vwd[9], eye[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};

    ck_assert_int_eq(asec_mat_eigh(w, &v, &av), ASEC_OK);
    asec_test_allclose(w, want, 3, 1e-14, 1e-15, "eigenvalues");
    ck_assert(isnan(a[1])); /* a not modified */
    /* V diag(w) V^T = A and V^T V = I. */
    vw = asec_mat_view(vwd, 3, 3);
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++)
            vwd[i * 3 + j] = *asec_mat_at(&v, i, j) * w[j];
    ck_assert_int_eq(asec_mat_gemm(&recv, 1.0, &vw, ASEC_NOTRANS, &v, ASEC_TRANS, 0.0),
                     ASEC_OK);
    asec_test_allclose(rec, full, 9, 1e-14, 1e-14, "V diag(w) V^T");
    ck_assert_int_eq(asec_mat_gemm(&vtvv, 1.0, &v, ASEC_TRANS, &v, ASEC_NOTRANS, 0.0),
                     ASEC_OK);
    asec_test_allclose(vtv, eye, 9, 1e-14, 1e-14, "V^T V");
    check_padding(bv, &v, 2);
    /* Eigenvalues only. */
    ck_assert_int_eq(asec_mat_eigh(w2, NULL, &av), ASEC_OK);
    asec_test_allclose(w2, want, 3, 1e-14, 1e-15, "eigenvalues only");
    free(bv);
}
END_TEST

/* u diag(s) vt == a, u^T u = I, vt vt^T = I, s descending. */
static void
check_svd(const asec_mat *a)
{
    size_t m = a->rows, n = a->cols, r = m < n ? m : n;
    asec_mat u = alloc_or_fail(m, r), vt = alloc_or_fail(r, n), us = alloc_or_fail(m, r);
    asec_mat rec = alloc_or_fail(m, n), g = alloc_or_fail(r, r),
             eye = alloc_or_fail(r, r);
    asec_mat u2 = alloc_or_fail(m, r), vt2 = alloc_or_fail(r, n);
    double *s = malloc(r * sizeof(double)), *s2 = malloc(r * sizeof(double));
    double scale = asec_mat_norm_fro(a);

    ck_assert_int_eq(asec_mat_svd(s, &u, &vt, a), ASEC_OK);
    for (size_t i = 0; i + 1 < r; i++)
        ck_assert(s[i] >= s[i + 1]);
    ck_assert(s[r - 1] >= 0.0);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < r; j++)
            *asec_mat_at(&us, i, j) = *asec_mat_at(&u, i, j) * s[j];
    ck_assert_int_eq(asec_mat_gemm(&rec, 1.0, &us, ASEC_NOTRANS, &vt, ASEC_NOTRANS, 0.0),
                     ASEC_OK);
    mat_allclose(&rec, a, 1e-13, 1e-14 * scale, "U diag(s) Vt");
    for (size_t i = 0; i < r; i++)
        *asec_mat_at(&eye, i, i) = 1.0;
    ck_assert_int_eq(asec_mat_syrk(&g, 1.0, &u, ASEC_TRANS, 0.0), ASEC_OK);
    mat_allclose(&g, &eye, 0, 1e-14, "U^T U");
    ck_assert_int_eq(asec_mat_syrk(&g, 1.0, &vt, ASEC_NOTRANS, 0.0), ASEC_OK);
    mat_allclose(&g, &eye, 0, 1e-14, "Vt Vt^T");
    /* Values only, and one factor only, give the same s (and factor). */
    ck_assert_int_eq(asec_mat_svd(s2, NULL, NULL, a), ASEC_OK);
    asec_test_allclose(s2, s, r, 1e-13, 1e-14 * scale, "s without vectors");
    ck_assert_int_eq(asec_mat_svd(s2, &u2, NULL, a), ASEC_OK);
    asec_test_allclose(s2, s, r, 0, 0, "s with u only");
    mat_allclose(&u2, &u, 0, 0, "u only");
    ck_assert_int_eq(asec_mat_svd(s2, NULL, &vt2, a), ASEC_OK);
    mat_allclose(&vt2, &vt, 0, 0, "vt only");
    free(s);
    free(s2);
    asec_mat_free(&u);
    asec_mat_free(&vt);
    asec_mat_free(&us);
    asec_mat_free(&rec);
    asec_mat_free(&g);
    asec_mat_free(&eye);
    asec_mat_free(&u2);
    asec_mat_free(&vt2);
}

START_TEST(test_svd_known)
{
    /* [[3, 0], [4, 5]]: a^T a = [[25, 20], [20, 25]] has eigenvalues 45 and
     * 5, so s = (3 sqrt 5, sqrt 5). */
    double a[4] = {3, 0, 4, 5}, s[2], want[2] = {3 * sqrt(5.0), sqrt(5.0)};
    asec_mat av = asec_mat_view(a, 2, 2);
    asec_rng *r = seeded("check_mat/svd");
    double *buf;
    asec_mat wide = padded(&buf, 3, 5, 2), tall = alloc_or_fail(6, 4);

    ck_assert_int_eq(asec_mat_svd(s, NULL, NULL, &av), ASEC_OK);
    asec_test_allclose(s, want, 2, 1e-14, 0, "singular values");
    check_svd(&av);
    fill_random(r, &wide);
    check_svd(&wide);
    fill_random(r, &tall);
    check_svd(&tall);
    check_padding(buf, &wide, 2);
    /* A rank-1 matrix: one zero singular value. */
    {
        double r1[6] = {1, 2, 3, 2, 4, 6}, s1[2];
        asec_mat r1v = asec_mat_view(r1, 2, 3);

        ck_assert_int_eq(asec_mat_svd(s1, NULL, NULL, &r1v), ASEC_OK);
        /* ||(1,2)|| ||(1,2,3)|| = sqrt(5 * 14) = sqrt 70. */
        ck_assert_msg(fabs(s1[0] - sqrt(70.0)) <= 1e-14 * sqrt(70.0), "s1 %g", s1[0]);
        ck_assert_msg(fabs(s1[1]) <= 1e-14, "s2 %g", s1[1]);
    }
    free(buf);
    asec_mat_free(&tall);
    asec_rng_free(r);
}
END_TEST

START_TEST(test_lstsq_known)
{
    size_t rank = 99;

    /* Overdetermined, full rank: a = [[1,0],[0,1],[1,1]], b = (1, 2, 4).
     * Normal equations [[2,1],[1,2]] x = (5, 6): x = (4/3, 7/3). */
    {
        double a[6] = {1, 0, 0, 1, 1, 1}, b[3] = {1, 2, 4}, x[2];
        double want[2] = {4.0 / 3.0, 7.0 / 3.0};
        asec_mat av = asec_mat_view(a, 3, 2), bv = asec_mat_view(b, 3, 1);
        asec_mat xv = asec_mat_view(x, 2, 1);

        ck_assert_int_eq(asec_mat_lstsq(&xv, &rank, &av, &bv, -1.0), ASEC_OK);
        ck_assert_uint_eq(rank, 2);
        asec_test_allclose(x, want, 2, 1e-13, 1e-14, "overdetermined");
        ck_assert(b[2] == 4.0 && a[4] == 1.0); /* inputs not modified */
    }
    /* Rank deficient: a = u v^T with u = (1, 2), v = (1, 2), so
     * pinv(a) = a^T / (|u|^2 |v|^2) = a^T / 25 and, for b = (1, 0) and
     * (0, 1), x = pinv(a) b = (1, 2)/25 and (2, 4)/25 (minimum norm). */
    {
        double a[4] = {1, 2, 2, 4}, b[4] = {1, 0, 0, 1}, x[4];
        double want[4] = {0.04, 0.08, 0.08, 0.16};
        asec_mat av = asec_mat_view(a, 2, 2), bv = asec_mat_view(b, 2, 2);
        asec_mat xv = asec_mat_view(x, 2, 2);

        ck_assert_int_eq(asec_mat_lstsq(&xv, &rank, &av, &bv, 1e-10), ASEC_OK);
        ck_assert_uint_eq(rank, 1);
        asec_test_allclose(x, want, 4, 1e-12, 1e-14, "rank deficient");
    }
    /* Rank deficient and overdetermined: a = 1_3 1_2^T, pinv(a) = a^T / 6,
     * b = (1, 2, 3): x = (1, 1). */
    {
        double a[6] = {1, 1, 1, 1, 1, 1}, b[3] = {1, 2, 3}, x[2];
        double want[2] = {1, 1};
        asec_mat av = asec_mat_view(a, 3, 2), bv = asec_mat_view(b, 3, 1);
        asec_mat xv = asec_mat_view(x, 2, 1);

        ck_assert_int_eq(asec_mat_lstsq(&xv, &rank, &av, &bv, 1e-12), ASEC_OK);
        ck_assert_uint_eq(rank, 1);
        asec_test_allclose(x, want, 2, 1e-12, 1e-14, "rank 1, 3x2");
    }
    /* Underdetermined: x1 + x2 = 2 has minimum-norm solution (1, 1); x is a
     * view with ld > cols, b too. */
    {
        double a[2] = {1, 1}, b[3] = {2, SENTINEL, SENTINEL};
        double x[4] = {SENTINEL, SENTINEL, SENTINEL, SENTINEL};
        asec_mat av = asec_mat_view(a, 1, 2), bv = {1, 1, 3, b}, xv = {2, 1, 2, x};

        ck_assert_int_eq(asec_mat_lstsq(&xv, NULL, &av, &bv, -1.0), ASEC_OK);
        ck_assert(fabs(x[0] - 1.0) <= 1e-14 && fabs(x[2] - 1.0) <= 1e-14);
        ck_assert(x[1] == SENTINEL && x[3] == SENTINEL);
    }
    /* k == 0 still reports the rank; m == 0 gives x = 0, rank 0. */
    {
        double a[4] = {1, 2, 2, 4}, x[2] = {5, 5};
        asec_mat av = asec_mat_view(a, 2, 2), b0 = {2, 0, 0, NULL}, x0 = {2, 0, 0, NULL};
        asec_mat a0 = {0, 2, 2, NULL}, b00 = {0, 1, 1, NULL}, xv = asec_mat_view(x, 2, 1);

        ck_assert_int_eq(asec_mat_lstsq(&x0, &rank, &av, &b0, 1e-12), ASEC_OK);
        ck_assert_uint_eq(rank, 1);
        ck_assert_int_eq(asec_mat_lstsq(&xv, &rank, &a0, &b00, -1.0), ASEC_OK);
        ck_assert_uint_eq(rank, 0);
        ck_assert(x[0] == 0.0 && x[1] == 0.0);
    }
}
END_TEST

START_TEST(test_softmax_stable)
{
    /* Max subtraction makes the three rows identical computations:
     * [1000, 1001, 999] - 1001 = [0, 1, -1] - 1, bit for bit. */
    double z[9] = {1000, 1001, 999, 0, 1, -1, -1000, -999, -1001}, f[9];
    double m[9];
    double e = exp(1.0), den = 1.0 + e + 1.0 / e;
    double want[3] = {1.0 / den, e / den, 1.0 / e / den};
    asec_mat zv = asec_mat_view(z, 3, 3), fv = asec_mat_view(m, 3, 3);

    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(asec_vec_softmax(f + 3 * i, z + 3 * i, 3), ASEC_OK);
    asec_test_allclose(f, f + 3, 3, 0, 0, "softmax(1000 + [0, 1, -1])");
    asec_test_allclose(f + 6, f + 3, 3, 0, 0, "softmax(-1000 + [0, 1, -1])");
    asec_test_allclose(f + 3, want, 3, 1e-15, 0, "softmax([0, 1, -1]) by hand");
    ck_assert_int_eq(asec_mat_softmax_rows(&fv, &zv), ASEC_OK);
    asec_test_allclose(m, f, 9, 0, 0, "softmax_rows == softmax per row");
    /* The task's [-1000, -1001, -999] is the shift of [0, -1, 1]. */
    {
        double zn[3] = {-1000, -1001, -999}, zp[3] = {0, -1, 1}, fn[3], fp[3];

        ck_assert_int_eq(asec_vec_softmax(fn, zn, 3), ASEC_OK);
        ck_assert_int_eq(asec_vec_softmax(fp, zp, 3), ASEC_OK);
        asec_test_allclose(fn, fp, 3, 0, 0, "softmax(-1000 + [0, -1, 1])");
    }
}
END_TEST

START_TEST(test_math_t1_t6)
{
    /* MATH.md §9.1 T1: f = softmax(A x), A = [[1,0],[0,1],[1,1]],
     * x = (0.1, -0.2); quoted to 10 significant digits, so rtol 1e-9. */
    double a[6] = {1, 0, 0, 1, 1, 1}, x[2] = {0.1, -0.2}, z[3], f[3];
    double want[3] = {0.3906938333, 0.2894331104, 0.3198730563};
    asec_mat av = asec_mat_view(a, 3, 2);

    ck_assert_int_eq(asec_mat_gemv(z, 1.0, &av, ASEC_NOTRANS, x, 0.0), ASEC_OK);
    ck_assert_int_eq(asec_vec_softmax(f, z, 3), ASEC_OK);
    asec_test_allclose(f, want, 3, 1e-9, 0, "T1 f");

    /* T6: f = softmax(0, 0) = (1/2, 1/2); B = S(f)^2 = [[0.125, -0.125],
     * [-0.125, 0.125]], built column by column as S(f) (S(f) e_j). */
    {
        double z0[2] = {0, 0}, f0[2], col[2], b[4];
        double b_want[4] = {0.125, -0.125, -0.125, 0.125};

        ck_assert_int_eq(asec_vec_softmax(f0, z0, 2), ASEC_OK);
        for (int j = 0; j < 2; j++) {
            double ej[2] = {j == 0, j == 1};

            asec_vec_softmax_jvp(col, f0, ej, 2);
            asec_vec_softmax_jvp(col, f0, col, 2);
            b[0 * 2 + j] = col[0];
            b[1 * 2 + j] = col[1];
        }
        asec_test_allclose(b, b_want, 4, 0, 0, "T6 B = S(f)^2");
    }
}
END_TEST

/* ------------------------------------------------------------ errors */

#define EXPECT(call, status)                                                             \
    do {                                                                                 \
        int rc_ = (call);                                                                \
        ck_assert_msg(rc_ == (status), "%s returned %d, expected %d (%s)", #call, rc_,   \
                      (status), asec_errmsg());                                          \
    } while (0)

START_TEST(test_errors_alloc_shapes)
{
    asec_mat m, d;
    double buf[12];
    asec_mat v34 = asec_mat_view(buf, 3, 4), v43 = asec_mat_view(buf, 4, 3);

    /* rows * cols * sizeof(double) overflows: ENOMEM and *out zeroed. */
    memset(&m, 0x5a, sizeof m);
    EXPECT(asec_mat_alloc(&m, SIZE_MAX / 2, 3), ASEC_ENOMEM);
    ck_assert_ptr_null(m.data);
    ck_assert_uint_eq(m.rows + m.cols + m.ld, 0);
    memset(&m, 0x5a, sizeof m);
    EXPECT(asec_mat_alloc(&m, SIZE_MAX / 8 + 1, 1), ASEC_ENOMEM);
    ck_assert_ptr_null(m.data);

    d = v43;
    EXPECT(asec_mat_copy(&d, &v34), ASEC_EBADLEN);
    ck_assert_str_eq(asec_errmsg(), "mat_copy: dst is 4x3 but src is 3x4");
    EXPECT(asec_mat_transpose(&d, &v43), ASEC_EBADLEN);
    d = v34;
    d.ld = 2;
    EXPECT(asec_mat_copy(&d, &v34), ASEC_EINVAL);
    EXPECT(asec_mat_transpose(&v43, &d), ASEC_EINVAL);
}
END_TEST

START_TEST(test_errors_gemm)
{
    double buf[64] = {0}, y[8];
    asec_mat a34 = asec_mat_view(buf, 3, 4), b52 = asec_mat_view(buf, 5, 2);
    asec_mat b42 = asec_mat_view(buf, 4, 2), c32 = asec_mat_view(buf + 32, 3, 2);
    asec_mat c33 = asec_mat_view(buf + 32, 3, 3), bad = a34, nul = {3, 4, 4, NULL};

    /* Inner dimensions: the message names both shapes. */
    EXPECT(asec_mat_gemm(&c32, 1, &a34, ASEC_NOTRANS, &b52, ASEC_NOTRANS, 0),
           ASEC_EBADLEN);
    ck_assert_str_eq(asec_errmsg(), "gemm: op(a) is 3x4 but op(b) is 5x2");
    EXPECT(asec_mat_gemm_ref(&c32, 1, &a34, ASEC_NOTRANS, &b52, ASEC_NOTRANS, 0),
           ASEC_EBADLEN);
    EXPECT(asec_mat_gemm(&c32, 1, &a34, ASEC_TRANS, &b42, ASEC_NOTRANS, 0), ASEC_EBADLEN);
    /* Output shape. */
    EXPECT(asec_mat_gemm(&c33, 1, &a34, ASEC_NOTRANS, &b42, ASEC_NOTRANS, 0),
           ASEC_EBADLEN);
    ck_assert_str_eq(asec_errmsg(), "gemm: c is 3x3 but op(a) op(b) is 3x2");
    EXPECT(asec_mat_gemm_ref(&c33, 1, &a34, ASEC_NOTRANS, &b42, ASEC_NOTRANS, 0),
           ASEC_EBADLEN);
    /* Flags, ld < cols, missing data. */
    EXPECT(asec_mat_gemm(&c32, 1, &a34, 2, &b42, ASEC_NOTRANS, 0), ASEC_EINVAL);
    EXPECT(asec_mat_gemm(&c32, 1, &a34, ASEC_NOTRANS, &b42, -1, 0), ASEC_EINVAL);
    EXPECT(asec_mat_gemm_ref(&c32, 1, &a34, 7, &b42, ASEC_NOTRANS, 0), ASEC_EINVAL);
    bad.ld = 3;
    EXPECT(asec_mat_gemm(&c32, 1, &bad, ASEC_NOTRANS, &b42, ASEC_NOTRANS, 0),
           ASEC_EINVAL);
    ck_assert_str_eq(asec_errmsg(), "gemm: a has ld 3 < cols 4");
    EXPECT(asec_mat_gemm(&c32, 1, &nul, ASEC_NOTRANS, &b42, ASEC_NOTRANS, 0),
           ASEC_EINVAL);
    /* Sizes beyond int (the views are never dereferenced: the checks come
     * first). */
    {
        size_t big = (size_t)INT_MAX + 1;
        asec_mat wide = {1, big, big, buf}, tall = {big, 1, 1, buf};
        asec_mat c11 = asec_mat_view(buf + 40, 1, 1), ldbig = {1, 1, big, buf};

        EXPECT(asec_mat_gemm(&c11, 1, &wide, ASEC_NOTRANS, &tall, ASEC_NOTRANS, 0),
               ASEC_EINVAL);
        EXPECT(asec_mat_gemm(&c11, 1, &ldbig, ASEC_NOTRANS, &ldbig, ASEC_NOTRANS, 0),
               ASEC_EINVAL);
        EXPECT(asec_mat_gemv(y, 1, &wide, ASEC_NOTRANS, buf, 0), ASEC_EINVAL);
        EXPECT(asec_mat_syrk(&c11, 1, &wide, ASEC_NOTRANS, 0), ASEC_EINVAL);
        EXPECT(asec_mat_gemm_batched(2, &c11, 1, 1, &wide, 0, ASEC_NOTRANS, &tall, 0,
                                     ASEC_NOTRANS, 0),
               ASEC_EINVAL);
    }
    /* gemv: flag, ld. */
    EXPECT(asec_mat_gemv(y, 1, &a34, 3, buf, 0), ASEC_EINVAL);
    EXPECT(asec_mat_gemv(y, 1, &bad, ASEC_NOTRANS, buf, 0), ASEC_EINVAL);
    /* syrk: c shape, flag, ld. */
    EXPECT(asec_mat_syrk(&c32, 1, &a34, ASEC_NOTRANS, 0), ASEC_EBADLEN);
    EXPECT(asec_mat_syrk(&c33, 1, &a34, ASEC_TRANS, 0), ASEC_EBADLEN);
    EXPECT(asec_mat_syrk(&c33, 1, &a34, 5, 0), ASEC_EINVAL);
    EXPECT(asec_mat_syrk(&c33, 1, &bad, ASEC_NOTRANS, 0), ASEC_EINVAL);
    /* gemm_batched: shapes, overlapping outputs, stride overflow. */
    EXPECT(asec_mat_gemm_batched(2, &c32, 6, 1, &a34, 12, ASEC_NOTRANS, &b52, 0,
                                 ASEC_NOTRANS, 0),
           ASEC_EBADLEN);
    EXPECT(asec_mat_gemm_batched(2, &c32, 0, 1, &a34, 12, ASEC_NOTRANS, &b42, 0,
                                 ASEC_NOTRANS, 0),
           ASEC_EINVAL);
    EXPECT(asec_mat_gemm_batched(3, &c32, 6, 1, &a34, SIZE_MAX / 2 + 1, ASEC_NOTRANS,
                                 &b42, 0, ASEC_NOTRANS, 0),
           ASEC_EINVAL);
    EXPECT(asec_mat_gemm_batched(2, &c32, 6, 1, &a34, 12, 9, &b42, 0, ASEC_NOTRANS, 0),
           ASEC_EINVAL);
}
END_TEST

START_TEST(test_errors_lapack)
{
    double buf[32] = {0}, w[8];
    double spd[4] = {2, 1, 1, 2}, notpd[4] = {1, 2, 2, 1};
    asec_mat a23 = asec_mat_view(buf, 2, 3), a22 = asec_mat_view(spd, 2, 2);
    asec_mat b31 = asec_mat_view(buf + 8, 3, 1), b21 = asec_mat_view(buf + 12, 2, 1);
    asec_mat np = asec_mat_view(notpd, 2, 2), bad = a22;

    /* cholesky_solve */
    EXPECT(asec_mat_cholesky_solve(&b21, &a23), ASEC_EBADLEN);
    EXPECT(asec_mat_cholesky_solve(&b31, &a22), ASEC_EBADLEN);
    ck_assert_str_eq(asec_errmsg(), "cholesky_solve: a is 2x2 but b has 3 rows");
    EXPECT(asec_mat_cholesky_solve(&b21, &np), ASEC_ENUMERIC);
    ck_assert_str_eq(asec_errmsg(),
                     "cholesky_solve: matrix is not positive definite (leading minor 2)");
    bad.ld = 1;
    EXPECT(asec_mat_cholesky_solve(&b21, &bad), ASEC_EINVAL);
    spd[2] = NAN;
    EXPECT(asec_mat_cholesky_solve(&b21, &a22), ASEC_ENUMERIC);
    spd[2] = 1;
    buf[12] = INFINITY;
    EXPECT(asec_mat_cholesky_solve(&b21, &a22), ASEC_ENUMERIC);
    buf[12] = 0;

    /* eigh */
    EXPECT(asec_mat_eigh(w, NULL, &a23), ASEC_EBADLEN);
    EXPECT(asec_mat_eigh(w, &a23, &a22), ASEC_EBADLEN);
    EXPECT(asec_mat_eigh(w, NULL, &bad), ASEC_EINVAL);
    spd[3] = NAN;
    EXPECT(asec_mat_eigh(w, NULL, &a22), ASEC_ENUMERIC);
    ck_assert_str_eq(asec_errmsg(), "eigh: a(1, 1) is nan");
    spd[3] = 2;

    /* svd: a is 2x3, so u must be 2x2 and vt 2x3. */
    {
        double ub[9], vb[9];
        asec_mat u23 = asec_mat_view(ub, 2, 3), u22 = asec_mat_view(ub, 2, 2);
        asec_mat vt33 = asec_mat_view(vb, 3, 3), vt23 = asec_mat_view(vb, 2, 3);

        EXPECT(asec_mat_svd(w, &u23, NULL, &a23), ASEC_EBADLEN);
        EXPECT(asec_mat_svd(w, NULL, &vt33, &a23), ASEC_EBADLEN);
        EXPECT(asec_mat_svd(w, &u22, &vt23, &a23), ASEC_OK);
        buf[4] = NAN;
        EXPECT(asec_mat_svd(w, &u22, &vt23, &a23), ASEC_ENUMERIC);
        EXPECT(asec_mat_svd(w, NULL, NULL, &a23), ASEC_ENUMERIC);
        buf[4] = 0;
        u22.ld = 1;
        EXPECT(asec_mat_svd(w, &u22, &vt23, &a23), ASEC_EINVAL);
    }

    /* lstsq: a is 2x3, b must have 2 rows, x is 3 x k. */
    {
        double xb[9], bb[4] = {1, 2, 3, 4};
        asec_mat x31 = asec_mat_view(xb, 3, 1), x21 = asec_mat_view(xb, 2, 1);
        asec_mat b2 = asec_mat_view(bb, 2, 1), b3 = asec_mat_view(bb, 3, 1);

        EXPECT(asec_mat_lstsq(&x31, NULL, &a23, &b3, -1), ASEC_EBADLEN);
        EXPECT(asec_mat_lstsq(&x21, NULL, &a23, &b2, -1), ASEC_EBADLEN);
        EXPECT(asec_mat_lstsq(&x31, NULL, &a23, &b2, NAN), ASEC_EINVAL);
        EXPECT(asec_mat_lstsq(&x31, NULL, &a23, &b2, INFINITY), ASEC_EINVAL);
        bb[1] = NAN;
        EXPECT(asec_mat_lstsq(&x31, NULL, &a23, &b2, -1), ASEC_ENUMERIC);
        bb[1] = 2;
        buf[0] = -INFINITY;
        EXPECT(asec_mat_lstsq(&x31, NULL, &a23, &b2, -1), ASEC_ENUMERIC);
        buf[0] = 0;
        x31.ld = 0;
        EXPECT(asec_mat_lstsq(&x31, NULL, &a23, &b2, -1), ASEC_EINVAL);
    }
}
END_TEST

START_TEST(test_errors_softmax)
{
    double z[6] = {0, 1, 2, -INFINITY, -INFINITY, -INFINITY}, out[6];
    asec_mat zv = asec_mat_view(z, 2, 3), ov = asec_mat_view(out, 2, 3);
    asec_mat o32 = asec_mat_view(out, 3, 2), bad = zv;

    EXPECT(asec_vec_softmax(out, z, 0), ASEC_EINVAL);
    EXPECT(asec_vec_softmax(out, z + 3, 3), ASEC_ENUMERIC);
    ck_assert_str_eq(asec_errmsg(), "softmax: all 3 entries are -inf");
    EXPECT(asec_mat_softmax_rows(&ov, &zv), ASEC_ENUMERIC);
    ck_assert_str_eq(asec_errmsg(),
                     "softmax_rows: row 1: softmax: all 3 entries are -inf");
    z[4] = 0;
    z[1] = NAN;
    EXPECT(asec_vec_softmax(out, z, 3), ASEC_ENUMERIC);
    EXPECT(asec_mat_softmax_rows(&ov, &zv), ASEC_ENUMERIC);
    ck_assert_str_eq(asec_errmsg(), "softmax_rows: row 0: softmax: entry 1 is nan");
    z[1] = INFINITY;
    EXPECT(asec_vec_softmax(out, z, 3), ASEC_ENUMERIC);
    EXPECT(asec_mat_softmax_rows(&ov, &zv), ASEC_ENUMERIC);
    z[1] = 1;
    EXPECT(asec_mat_softmax_rows(&o32, &zv), ASEC_EBADLEN);
    bad.ld = 2;
    EXPECT(asec_mat_softmax_rows(&ov, &bad), ASEC_EINVAL);
    EXPECT(asec_mat_softmax_rows(&ov, &zv), ASEC_OK);
}
END_TEST

/* ------------------------------------------------------------ oom */

/* Run op under asec_debug_fail_alloc(n) for n = 0, 1, ... until it
 * succeeds; every failure must be ASEC_ENOMEM.  Returns how many
 * injected failures were seen. */
#define OOM_LOOP(setup, op)                                                              \
    do {                                                                                 \
        int rc_ = ASEC_ENOMEM;                                                           \
        long n_;                                                                         \
        for (n_ = 0; n_ < 1000 && rc_ != ASEC_OK; n_++) {                                \
            setup;                                                                       \
            asec_debug_fail_alloc(n_);                                                   \
            rc_ = (op);                                                                  \
            asec_debug_fail_alloc(-1);                                                   \
            ck_assert_msg(rc_ == ASEC_OK || rc_ == ASEC_ENOMEM,                          \
                          "%s under failure %ld returned %d (%s)", #op, n_, rc_,         \
                          asec_errmsg());                                                \
        }                                                                                \
        ck_assert_int_eq(rc_, ASEC_OK);                                                  \
        ck_assert_msg(n_ > 1, "%s never allocated", #op);                                \
    } while (0)

START_TEST(test_oom)
{
    asec_rng *r = seeded("check_mat/oom");
    asec_mat a = alloc_or_fail(5, 3), sq = alloc_or_fail(3, 3), b = alloc_or_fail(3, 2);
    asec_mat b0 = alloc_or_fail(3, 2), x = alloc_or_fail(3, 2), bl = alloc_or_fail(5, 2);
    asec_mat u = alloc_or_fail(5, 3), vt = alloc_or_fail(3, 3), v = alloc_or_fail(3, 3);
    asec_mat m;
    double w[3], s[3];
    size_t rank;

    fill_random(r, &a);
    fill_random(r, &b0);
    fill_random(r, &bl);
    /* An SPD matrix: a^T a + I. */
    ck_assert_int_eq(asec_mat_syrk(&sq, 1.0, &a, ASEC_TRANS, 0.0), ASEC_OK);
    for (size_t i = 0; i < 3; i++)
        *asec_mat_at(&sq, i, i) += 1.0;

    OOM_LOOP((void)0, asec_mat_alloc(&m, 4, 4));
    asec_mat_free(&m);
    OOM_LOOP(ck_assert_int_eq(asec_mat_copy(&b, &b0), ASEC_OK),
             asec_mat_cholesky_solve(&b, &sq));
    OOM_LOOP((void)0, asec_mat_eigh(w, &v, &sq));
    OOM_LOOP((void)0, asec_mat_eigh(w, NULL, &sq));
    OOM_LOOP((void)0, asec_mat_svd(s, &u, &vt, &a));
    OOM_LOOP((void)0, asec_mat_svd(s, &u, NULL, &a));
    OOM_LOOP((void)0, asec_mat_svd(s, NULL, &vt, &a));
    OOM_LOOP((void)0, asec_mat_svd(s, NULL, NULL, &a));
    OOM_LOOP((void)0, asec_mat_lstsq(&x, &rank, &a, &bl, -1.0));
    ck_assert_uint_eq(rank, 3);

    asec_mat_free(&a);
    asec_mat_free(&sq);
    asec_mat_free(&b);
    asec_mat_free(&b0);
    asec_mat_free(&x);
    asec_mat_free(&bl);
    asec_mat_free(&u);
    asec_mat_free(&vt);
    asec_mat_free(&v);
    asec_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------ main */

static Suite *
mat_suite(void)
{
    Suite *s = suite_create("mat");
    TCase *tc = tcase_create("core");
    TCase *tr = tcase_create("reference");
    TCase *te = tcase_create("errors");
    TCase *to = tcase_create("oom");

    tcase_add_test(tc, test_alloc_free);
    tcase_add_test(tc, test_copy_fill_transpose);
    tcase_add_test(tc, test_norms);
    tcase_add_test(tc, test_dot_axpy);
    tcase_add_test(tc, test_gemm_random);
    tcase_add_test(tc, test_gemm_zero_sizes);
    tcase_add_test(tc, test_gemm_beta_zero_nan);
    tcase_add_test(tc, test_gemv);
    tcase_add_test(tc, test_syrk);
    tcase_add_test(tc, test_gemm_batched);
    tcase_add_test(tc, test_softmax_rows_alias);
    tcase_add_test(tc, test_logsumexp);
    tcase_add_test(tc, test_softmax_jvp);
    tcase_add_test(tc, test_lapack_zero_sizes);
    tcase_add_test(tr, test_gemm_hand);
    tcase_add_test(tr, test_cholesky_solve);
    tcase_add_test(tr, test_eigh_known);
    tcase_add_test(tr, test_svd_known);
    tcase_add_test(tr, test_lstsq_known);
    tcase_add_test(tr, test_softmax_stable);
    tcase_add_test(tr, test_math_t1_t6);
    tcase_add_test(te, test_errors_alloc_shapes);
    tcase_add_test(te, test_errors_gemm);
    tcase_add_test(te, test_errors_lapack);
    tcase_add_test(te, test_errors_softmax);
    tcase_add_test(to, test_oom);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tr);
    suite_add_tcase(s, te);
    suite_add_tcase(s, to);
    return s;
}

int
main(void)
{
    return asec_test_run(mat_suite());
}
