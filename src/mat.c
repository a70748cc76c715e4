/* mat.c - dense row-major matrices: allocation, copies, the CBLAS and
 * LAPACKE wrappers, and the naive GEMM kept as their reference.
 *
 * This is the only file of the library that calls CBLAS or LAPACKE
 * (STYLE.md B6).  Every call is preceded by the same checks, in order:
 *   1. transpose flags are ASEC_NOTRANS or ASEC_TRANS     (ASEC_EINVAL)
 *   2. every view has ld >= cols and data for its entries  (ASEC_EINVAL)
 *   3. the shapes conform                                  (ASEC_EBADLEN)
 *   4. zero-size problems return before any BLAS call
 *   5. every size and ld handed to CBLAS/LAPACKE fits int  (ASEC_EINVAL)
 * so CBLAS's xerbla (which prints) is never reached.  CBLAS declarations
 * come from <gsl/gsl_cblas.h>; OpenBLAS's <cblas.h> must not be included
 * here (it redeclares the same enums). */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <lapacke.h>

#include "attnsec/mat.h"
#include "attnsec/vec.h"
#include "internal.h"

/* ---------------------------------------------------------------- checks */

/* ld >= cols, and storage present when the view has entries. */
static int
check_view(const char *fn, const char *name, const asec_mat *m)
{
    if (m->ld < m->cols)
        ASEC_FAIL(ASEC_EINVAL, "%s: %s has ld %zu < cols %zu", fn, name, m->ld, m->cols);
    if (m->data == NULL && m->rows > 0 && m->cols > 0)
        ASEC_FAIL(ASEC_EINVAL, "%s: %s is %zux%zu but its data is NULL", fn, name,
                  m->rows, m->cols);
    return ASEC_OK;
}

static int
check_trans(const char *fn, const char *name, int t)
{
    if (t != ASEC_NOTRANS && t != ASEC_TRANS)
        ASEC_FAIL(ASEC_EINVAL, "%s: %s is %d, not ASEC_NOTRANS or ASEC_TRANS", fn, name,
                  t);
    return ASEC_OK;
}

/* CBLAS and LAPACKE (LP64 build) take int sizes. */
static int
check_int(const char *fn, const char *name, size_t v)
{
    if (v > (size_t)INT_MAX)
        ASEC_FAIL(ASEC_EINVAL, "%s: %s = %zu exceeds INT_MAX, the BLAS size limit", fn,
                  name, v);
    return ASEC_OK;
}

/* Shape of op(m). */
static void
op_shape(const asec_mat *m, int t, size_t *rows, size_t *cols)
{
    *rows = t == ASEC_TRANS ? m->cols : m->rows;
    *cols = t == ASEC_TRANS ? m->rows : m->cols;
}

/* Every entry of m (or, with lower != 0, of its lower triangle) finite;
 * LAPACK routines may loop or return garbage on NaN or inf. */
static int
check_finite(const char *fn, const char *name, const asec_mat *m, int lower)
{
    if (m->rows == 0 || m->cols == 0)
        return ASEC_OK; // data may be NULL: no row pointer arithmetic on it
    for (size_t i = 0; i < m->rows; i++) {
        const double *row = m->data + i * m->ld;
        size_t end = lower && i + 1 < m->cols ? i + 1 : m->cols;

        for (size_t j = 0; j < end; j++)
            if (!isfinite(row[j]))
                ASEC_FAIL(ASEC_ENUMERIC, "%s: %s(%zu, %zu) is %g", fn, name, i, j,
                          row[j]);
    }
    return ASEC_OK;
}

/* A contiguous array of rows * cols doubles from the library allocator. */
static int
alloc_doubles(const char *fn, double **out, size_t rows, size_t cols)
{
    size_t n, bytes;

    *out = NULL;
    if (asec__mul_size(rows, cols, &n) != 0 ||
        asec__mul_size(n, sizeof(double), &bytes) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "%s: %zu x %zu doubles overflow size_t", fn, rows, cols);
    *out = asec__malloc(bytes);
    if (*out == NULL)
        return ASEC_ENOMEM; /* asec__malloc recorded the message */
    return ASEC_OK;
}

/* Map a negative LAPACKE status.  Our checks make illegal arguments
 * impossible, so anything but a workspace allocation failure is a bug. */
static int
lapack_failed(const char *fn, const char *routine, lapack_int info)
{
    if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR)
        return asec__fail(ASEC_ENOMEM, "%s: LAPACKE_%s could not allocate its workspace",
                          fn, routine);
    return asec__fail(ASEC_EINTERNAL, "%s: LAPACKE_%s rejected argument %d", fn, routine,
                      (int)-info);
}

/* c = beta c over the whole of c (lower != 0: its lower triangle only),
 * with beta == 0 writing zeros without reading c. */
static void
scale_in_place(asec_mat *c, double beta, int lower)
{
    if (beta == 1.0)
        return;
    for (size_t i = 0; i < c->rows; i++) {
        double *row = c->data + i * c->ld;
        size_t end = lower && i + 1 < c->cols ? i + 1 : c->cols;

        for (size_t j = 0; j < end; j++)
            row[j] = beta == 0.0 ? 0.0 : beta * row[j];
    }
}

/* dst (rows x cols, ld dld) = src (ld sld), row by row. */
static void
copy_rows(double *dst, size_t dld, const double *src, size_t sld, size_t rows,
          size_t cols)
{
    if (cols == 0)
        return;
    for (size_t i = 0; i < rows; i++)
        memcpy(dst + i * dld, src + i * sld, cols * sizeof(double));
}

/* ---------------------------------------------------------------- basics */

int
asec_mat_alloc(asec_mat *out, size_t rows, size_t cols)
{
    double *data;

    memset(out, 0, sizeof *out);
    ASEC_TRY(alloc_doubles("mat_alloc", &data, rows, cols));
    if (rows > 0 && cols > 0)
        memset(data, 0, rows * cols * sizeof(double)); /* overflow checked above */
    out->rows = rows;
    out->cols = cols;
    out->ld = cols;
    out->data = data;
    return ASEC_OK;
}

void
asec_mat_free(asec_mat *m)
{
    if (m == NULL)
        return;
    asec__free(m->data);
    memset(m, 0, sizeof *m);
}

int
asec_mat_copy(asec_mat *dst, const asec_mat *src)
{
    ASEC_TRY(check_view("mat_copy", "dst", dst));
    ASEC_TRY(check_view("mat_copy", "src", src));
    if (dst->rows != src->rows || dst->cols != src->cols)
        ASEC_FAIL(ASEC_EBADLEN, "mat_copy: dst is %zux%zu but src is %zux%zu", dst->rows,
                  dst->cols, src->rows, src->cols);
    copy_rows(dst->data, dst->ld, src->data, src->ld, src->rows, src->cols);
    return ASEC_OK;
}

void
asec_mat_fill(asec_mat *m, double value)
{
    for (size_t i = 0; i < m->rows; i++) {
        double *row = m->data + i * m->ld;

        for (size_t j = 0; j < m->cols; j++)
            row[j] = value;
    }
}

int
asec_mat_transpose(asec_mat *dst, const asec_mat *src)
{
    ASEC_TRY(check_view("mat_transpose", "dst", dst));
    ASEC_TRY(check_view("mat_transpose", "src", src));
    if (dst->rows != src->cols || dst->cols != src->rows)
        ASEC_FAIL(ASEC_EBADLEN, "mat_transpose: dst is %zux%zu but src^T is %zux%zu",
                  dst->rows, dst->cols, src->cols, src->rows);
    for (size_t i = 0; i < src->rows; i++)
        for (size_t j = 0; j < src->cols; j++)
            dst->data[j * dst->ld + i] = src->data[i * src->ld + j];
    return ASEC_OK;
}

double
asec_mat_norm_fro(const asec_mat *m)
{
    double acc = 0.0;
    int nan = 0;

    if (m->rows == 0 || m->cols == 0)
        return 0.0;
    if (m->rows == 1 || m->ld == m->cols)
        return asec_vec_norm2(m->data, m->rows * m->cols); /* contiguous in memory */
    /* Combine the (overflow-safe) row norms with hypot, which neither
     * overflows nor underflows in between. */
    for (size_t i = 0; i < m->rows; i++) {
        double r = asec_vec_norm2(m->data + i * m->ld, m->cols);

        if (isnan(r))
            nan = 1;
        else
            acc = hypot(acc, r);
    }
    return nan ? NAN : acc;
}

double
asec_mat_norm_max(const asec_mat *m)
{
    double best = 0.0;

    for (size_t i = 0; i < m->rows; i++) {
        const double *row = m->data + i * m->ld;

        for (size_t j = 0; j < m->cols; j++) {
            double a = fabs(row[j]);

            if (isnan(a))
                return NAN;
            if (a > best)
                best = a;
        }
    }
    return best;
}

/* ---------------------------------------------------------------- GEMM */

/* Checks 1-3 for c = alpha op(a) op(b) + beta c; *pm, *pn, *pk receive M,
 * N, K. */
static int
gemm_check(const char *fn, const asec_mat *c, const asec_mat *a, int ta,
           const asec_mat *b, int tb, size_t *pm, size_t *pn, size_t *pk)
{
    size_t m, k, kb, n;

    ASEC_TRY(check_trans(fn, "ta", ta));
    ASEC_TRY(check_trans(fn, "tb", tb));
    ASEC_TRY(check_view(fn, "a", a));
    ASEC_TRY(check_view(fn, "b", b));
    ASEC_TRY(check_view(fn, "c", c));
    op_shape(a, ta, &m, &k);
    op_shape(b, tb, &kb, &n);
    if (k != kb)
        ASEC_FAIL(ASEC_EBADLEN, "%s: op(a) is %zux%zu but op(b) is %zux%zu", fn, m, k, kb,
                  n);
    if (c->rows != m || c->cols != n)
        ASEC_FAIL(ASEC_EBADLEN, "%s: c is %zux%zu but op(a) op(b) is %zux%zu", fn,
                  c->rows, c->cols, m, n);
    *pm = m;
    *pn = n;
    *pk = k;
    return ASEC_OK;
}

/* Check 5 for a GEMM whose checks 1-4 passed. */
static int
gemm_check_int(const char *fn, const asec_mat *c, const asec_mat *a, const asec_mat *b,
               size_t m, size_t n, size_t k)
{
    ASEC_TRY(check_int(fn, "M", m));
    ASEC_TRY(check_int(fn, "N", n));
    ASEC_TRY(check_int(fn, "K", k));
    ASEC_TRY(check_int(fn, "a->ld", a->ld));
    ASEC_TRY(check_int(fn, "b->ld", b->ld));
    ASEC_TRY(check_int(fn, "c->ld", c->ld));
    return ASEC_OK;
}

/* The CBLAS call itself, after every check.  Row-major: the ld of each
 * operand is that of its stored (not transposed) shape, which is what
 * asec_mat carries. */
static void
dgemm_rm(asec_mat *c, size_t m, size_t n, size_t k, double alpha, const asec_mat *a,
         int ta, const asec_mat *b, int tb, double beta)
{
    cblas_dgemm(CblasRowMajor, ta == ASEC_TRANS ? CblasTrans : CblasNoTrans,
                tb == ASEC_TRANS ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
                alpha, a->data, (int)a->ld, b->data, (int)b->ld, beta, c->data,
                (int)c->ld);
}

int
asec_mat_gemm(asec_mat *c, double alpha, const asec_mat *a, int ta, const asec_mat *b,
              int tb, double beta)
{
    size_t m, n, k;

    ASEC_TRY(gemm_check("gemm", c, a, ta, b, tb, &m, &n, &k));
    if (m == 0 || n == 0)
        return ASEC_OK;
    if (k == 0 || alpha == 0.0) {
        /* Nothing to add (reference BLAS does not read a, b either). */
        scale_in_place(c, beta, 0);
        return ASEC_OK;
    }
    ASEC_TRY(gemm_check_int("gemm", c, a, b, m, n, k));
    /* OpenBLAS's dgemm writes zeros for beta == 0 without reading c
     * (tested: NaN in c does not propagate). */
    dgemm_rm(c, m, n, k, alpha, a, ta, b, tb, beta);
    return ASEC_OK;
}

int
asec_mat_gemm_ref(asec_mat *c, double alpha, const asec_mat *a, int ta, const asec_mat *b,
                  int tb, double beta)
{
    size_t m, n, k;
    /* Element steps of op(a) along its rows (i) and columns (p), and of
     * op(b) along p and j. */
    size_t a_si, a_sp, b_sp, b_sj;

    ASEC_TRY(gemm_check("gemm_ref", c, a, ta, b, tb, &m, &n, &k));
    if (m == 0 || n == 0)
        return ASEC_OK;
    if (k == 0 || alpha == 0.0) {
        scale_in_place(c, beta, 0);
        return ASEC_OK;
    }
    a_si = ta == ASEC_TRANS ? 1 : a->ld;
    a_sp = ta == ASEC_TRANS ? a->ld : 1;
    b_sp = tb == ASEC_TRANS ? 1 : b->ld;
    b_sj = tb == ASEC_TRANS ? b->ld : 1;
    /* After llm.c's matmul_forward_naive: one dot product per entry,
     * accumulated in order p = 0, 1, ..., K-1. */
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            double s = 0.0;
            double *cij = c->data + i * c->ld + j;

            for (size_t p = 0; p < k; p++)
                s += a->data[i * a_si + p * a_sp] * b->data[p * b_sp + j * b_sj];
            *cij = beta == 0.0 ? alpha * s : alpha * s + beta * *cij;
        }
    }
    return ASEC_OK;
}

int
asec_mat_gemm_batched(size_t count, asec_mat *c, size_t stride_c, double alpha,
                      const asec_mat *a, size_t stride_a, int ta, const asec_mat *b,
                      size_t stride_b, int tb, double beta)
{
    static const char fn[] = "gemm_batched";
    size_t m, n, k, last, off, stacked;

    ASEC_TRY(gemm_check(fn, c, a, ta, b, tb, &m, &n, &k));
    if (count == 0)
        return ASEC_OK;
    if (stride_c == 0 && count > 1 && m > 0 && n > 0)
        ASEC_FAIL(ASEC_EINVAL, "%s: stride_c is 0 with count %zu: the C_i would overlap",
                  fn, count);
    last = count - 1;
    if (asec__mul_size(last, stride_a, &off) != 0 ||
        asec__mul_size(last, stride_b, &off) != 0 ||
        asec__mul_size(last, stride_c, &off) != 0)
        ASEC_FAIL(ASEC_EINVAL, "%s: (count - 1) * stride overflows size_t (count %zu)",
                  fn, count);
    if (m == 0 || n == 0)
        return ASEC_OK;
    if (k == 0 || alpha == 0.0) {
        for (size_t i = 0; i < count; i++) {
            asec_mat ci = *c;

            ci.data += i * stride_c;
            scale_in_place(&ci, beta, 0);
        }
        return ASEC_OK;
    }
    ASEC_TRY(gemm_check_int(fn, c, a, b, m, n, k));

    /* One shared B and stacked A_i, C_i: the batch is the single product
     * [A_0; A_1; ...] op(B) = [C_0; C_1; ...] of (count M) x K by K x N,
     * when each A_i (and C_i) starts right after the M rows of the one
     * before it. */
    if (stride_b == 0 && ta == ASEC_NOTRANS && stride_a == m * a->ld &&
        stride_c == m * c->ld && asec__mul_size(count, m, &stacked) == 0 &&
        stacked <= (size_t)INT_MAX) {
        asec_mat as = *a, cs = *c;

        as.rows = stacked;
        cs.rows = stacked;
        dgemm_rm(&cs, stacked, n, k, alpha, &as, ta, b, tb, beta);
        return ASEC_OK;
    }
    /* OpenBLAS 0.3.21 has no batched GEMM: one call per item. */
    for (size_t i = 0; i < count; i++) {
        asec_mat ai = *a, bi = *b, ci = *c;

        ai.data += i * stride_a;
        bi.data += i * stride_b;
        ci.data += i * stride_c;
        dgemm_rm(&ci, m, n, k, alpha, &ai, ta, &bi, tb, beta);
    }
    return ASEC_OK;
}

int
asec_mat_gemv(double *y, double alpha, const asec_mat *a, int ta, const double *x,
              double beta)
{
    static const char fn[] = "gemv";
    size_t m, n;

    ASEC_TRY(check_trans(fn, "ta", ta));
    ASEC_TRY(check_view(fn, "a", a));
    op_shape(a, ta, &m, &n);
    if (m == 0)
        return ASEC_OK;
    if (n == 0 || alpha == 0.0) {
        for (size_t i = 0; i < m; i++)
            y[i] = beta == 0.0 ? 0.0 : beta * y[i];
        return ASEC_OK;
    }
    ASEC_TRY(check_int(fn, "a->rows", a->rows));
    ASEC_TRY(check_int(fn, "a->cols", a->cols));
    ASEC_TRY(check_int(fn, "a->ld", a->ld));
    if (beta == 0.0)
        memset(y, 0, m * sizeof(double)); /* some OpenBLAS versions scale y by 0 */
    cblas_dgemv(CblasRowMajor, ta == ASEC_TRANS ? CblasTrans : CblasNoTrans, (int)a->rows,
                (int)a->cols, alpha, a->data, (int)a->ld, x, 1, beta, y, 1);
    return ASEC_OK;
}

int
asec_mat_syrk(asec_mat *c, double alpha, const asec_mat *a, int ta, double beta)
{
    static const char fn[] = "syrk";
    size_t n, k;

    ASEC_TRY(check_trans(fn, "ta", ta));
    ASEC_TRY(check_view(fn, "a", a));
    ASEC_TRY(check_view(fn, "c", c));
    op_shape(a, ta, &n, &k);
    if (c->rows != n || c->cols != n)
        ASEC_FAIL(ASEC_EBADLEN, "%s: c is %zux%zu but op(a) op(a)^T is %zux%zu", fn,
                  c->rows, c->cols, n, n);
    if (n == 0)
        return ASEC_OK;
    if (k == 0 || alpha == 0.0) {
        scale_in_place(c, beta, 1);
    } else {
        ASEC_TRY(check_int(fn, "N", n));
        ASEC_TRY(check_int(fn, "K", k));
        ASEC_TRY(check_int(fn, "a->ld", a->ld));
        ASEC_TRY(check_int(fn, "c->ld", c->ld));
        if (beta == 0.0)
            scale_in_place(c, 0.0, 1); /* c is not read: no NaN from it */
        /* Row-major lower triangle of c; the stored a is n x k (NOTRANS)
         * or k x n (TRANS), and its ld is what CBLAS calls lda. */
        cblas_dsyrk(CblasRowMajor, CblasLower,
                    ta == ASEC_TRANS ? CblasTrans : CblasNoTrans, (int)n, (int)k, alpha,
                    a->data, (int)a->ld, beta, c->data, (int)c->ld);
    }
    /* Mirror the lower triangle into the upper one. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            c->data[j * c->ld + i] = c->data[i * c->ld + j];
    return ASEC_OK;
}

/* ---------------------------------------------------------------- LAPACK */

int
asec_mat_cholesky_solve(asec_mat *b, const asec_mat *a)
{
    static const char fn[] = "cholesky_solve";
    size_t n, k;
    double *fac = NULL; // (n, n), lower triangle of a
    lapack_int info;
    int rc = ASEC_OK;

    ASEC_TRY(check_view(fn, "a", a));
    ASEC_TRY(check_view(fn, "b", b));
    if (a->rows != a->cols)
        ASEC_FAIL(ASEC_EBADLEN, "%s: a is %zux%zu, not square", fn, a->rows, a->cols);
    n = a->rows;
    k = b->cols;
    if (b->rows != n)
        ASEC_FAIL(ASEC_EBADLEN, "%s: a is %zux%zu but b has %zu rows", fn, n, n, b->rows);
    if (n == 0 || k == 0)
        return ASEC_OK;
    ASEC_TRY(check_int(fn, "n", n));
    ASEC_TRY(check_int(fn, "k", k));
    ASEC_TRY(check_int(fn, "b->ld", b->ld));
    ASEC_TRY(check_finite(fn, "a", a, 1));
    ASEC_TRY(check_finite(fn, "b", b, 0));
    ASEC_TRY(alloc_doubles(fn, &fac, n, n));
    for (size_t i = 0; i < n; i++) {
        memcpy(fac + i * n, a->data + i * a->ld, (i + 1) * sizeof(double));
        memset(fac + i * n + i + 1, 0, (n - i - 1) * sizeof(double));
    }
    /* dposv = dpotrf (a = L L^T) then dpotrs; b becomes x. */
    info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, (lapack_int)k, fac,
                         (lapack_int)n, b->data, (lapack_int)b->ld);
    if (info > 0)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENUMERIC,
                       "%s: matrix is not positive definite (leading minor %d)", fn,
                       (int)info);
    if (info < 0) {
        rc = lapack_failed(fn, "dposv", info);
        goto fail;
    }
fail:
    asec__free(fac);
    return rc;
}

int
asec_mat_eigh(double *w, asec_mat *vecs, const asec_mat *a)
{
    static const char fn[] = "eigh";
    size_t n;
    double *v = NULL; // (n, n): a, then the eigenvectors as columns
    lapack_int info;
    int rc = ASEC_OK;

    ASEC_TRY(check_view(fn, "a", a));
    if (vecs != NULL)
        ASEC_TRY(check_view(fn, "vecs", vecs));
    if (a->rows != a->cols)
        ASEC_FAIL(ASEC_EBADLEN, "%s: a is %zux%zu, not square", fn, a->rows, a->cols);
    n = a->rows;
    if (vecs != NULL && (vecs->rows != n || vecs->cols != n))
        ASEC_FAIL(ASEC_EBADLEN, "%s: vecs is %zux%zu but a is %zux%zu", fn, vecs->rows,
                  vecs->cols, n, n);
    if (n == 0)
        return ASEC_OK;
    ASEC_TRY(check_int(fn, "n", n));
    ASEC_TRY(check_finite(fn, "a", a, 1));
    ASEC_TRY(alloc_doubles(fn, &v, n, n));
    /* The full symmetric matrix from a's lower triangle. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j <= i; j++)
            v[i * n + j] = v[j * n + i] = a->data[i * a->ld + j];
    /* Divide and conquer; eigenvalues ascending. */
    info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, vecs != NULL ? 'V' : 'N', 'L', (lapack_int)n,
                          v, (lapack_int)n, w);
    if (info > 0)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENUMERIC,
                       "%s: LAPACK dsyevd did not converge (info %d)", fn, (int)info);
    if (info < 0) {
        rc = lapack_failed(fn, "dsyevd", info);
        goto fail;
    }
    if (vecs != NULL)
        copy_rows(vecs->data, vecs->ld, v, n, n, n);
fail:
    asec__free(v);
    return rc;
}

static int
all_finite(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

int
asec_mat_svd(double *s, asec_mat *u, asec_mat *vt, const asec_mat *a)
{
    static const char fn[] = "svd";
    size_t m, n, r;
    int want = u != NULL || vt != NULL;
    double *ac = NULL;    // (m, n) copy of a, destroyed by LAPACK
    double *ubuf = NULL;  // (m, r) when u == NULL but vt is wanted
    double *vtbuf = NULL; // (r, n) when vt == NULL but u is wanted
    double *superb = NULL;
    double dummy[1];
    double *up, *vtp;
    size_t ldu, ldvt;
    lapack_int info;
    int rc = ASEC_OK;

    ASEC_TRY(check_view(fn, "a", a));
    m = a->rows;
    n = a->cols;
    r = m < n ? m : n;
    if (u != NULL) {
        ASEC_TRY(check_view(fn, "u", u));
        if (u->rows != m || u->cols != r)
            ASEC_FAIL(ASEC_EBADLEN, "%s: u is %zux%zu but a (%zux%zu) needs %zux%zu", fn,
                      u->rows, u->cols, m, n, m, r);
    }
    if (vt != NULL) {
        ASEC_TRY(check_view(fn, "vt", vt));
        if (vt->rows != r || vt->cols != n)
            ASEC_FAIL(ASEC_EBADLEN, "%s: vt is %zux%zu but a (%zux%zu) needs %zux%zu", fn,
                      vt->rows, vt->cols, m, n, r, n);
    }
    if (r == 0)
        return ASEC_OK;
    ASEC_TRY(check_int(fn, "m", m));
    ASEC_TRY(check_int(fn, "n", n));
    if (u != NULL)
        ASEC_TRY(check_int(fn, "u->ld", u->ld));
    if (vt != NULL)
        ASEC_TRY(check_int(fn, "vt->ld", vt->ld));
    ASEC_TRY(check_finite(fn, "a", a, 0));

    ASEC_TRY(alloc_doubles(fn, &ac, m, n));
    if (want && u == NULL && (rc = alloc_doubles(fn, &ubuf, m, r)) != ASEC_OK)
        goto fail;
    if (want && vt == NULL && (rc = alloc_doubles(fn, &vtbuf, r, n)) != ASEC_OK)
        goto fail;
    if (!want) {
        /* jobz 'N' references neither; LAPACKE still checks ldvt >= n. */
        up = vtp = dummy;
        ldu = 1;
        ldvt = n;
    } else {
        up = u != NULL ? u->data : ubuf;
        ldu = u != NULL ? u->ld : r;
        vtp = vt != NULL ? vt->data : vtbuf;
        ldvt = vt != NULL ? vt->ld : n;
    }

    /* Divide and conquer first ('S': thin factors straight into u, vt). */
    copy_rows(ac, n, a->data, a->ld, m, n);
    info =
        LAPACKE_dgesdd(LAPACK_ROW_MAJOR, want ? 'S' : 'N', (lapack_int)m, (lapack_int)n,
                       ac, (lapack_int)n, s, up, (lapack_int)ldu, vtp, (lapack_int)ldvt);
    if (info < 0) {
        rc = lapack_failed(fn, "dgesdd", info);
        goto fail;
    }
    if (info == 0 && all_finite(s, r))
        goto fail; /* success: only the cleanup is left */

    /* dgesdd did not converge (or returned non-finite values, which some
     * LAPACK builds do instead): QR iteration is slower but sturdier. */
    if ((rc = alloc_doubles(fn, &superb, r, 1)) != ASEC_OK)
        goto fail;
    copy_rows(ac, n, a->data, a->ld, m, n);
    info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, want ? 'S' : 'N', want ? 'S' : 'N',
                          (lapack_int)m, (lapack_int)n, ac, (lapack_int)n, s, up,
                          (lapack_int)ldu, vtp, (lapack_int)ldvt, superb);
    if (info < 0) {
        rc = lapack_failed(fn, "dgesvd", info);
        goto fail;
    }
    if (info > 0 || !all_finite(s, r))
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENUMERIC,
                       "%s: LAPACK dgesdd and dgesvd did not converge (info %d)", fn,
                       (int)info);
fail:
    asec__free(superb);
    asec__free(vtbuf);
    asec__free(ubuf);
    asec__free(ac);
    return rc;
}

int
asec_mat_lstsq(asec_mat *x, size_t *rank, const asec_mat *a, const asec_mat *b,
               double rcond)
{
    static const char fn[] = "lstsq";
    size_t m, n, k, kk, mx, r;
    double *ac = NULL; // (m, n) copy of a
    double *bc = NULL; // (max(m, n), kk): b, zero-padded; then x in its first n rows
    double *sv = NULL; // (min(m, n),) singular values
    lapack_int info, rank_i = 0;
    int rc = ASEC_OK;

    ASEC_TRY(check_view(fn, "x", x));
    ASEC_TRY(check_view(fn, "a", a));
    ASEC_TRY(check_view(fn, "b", b));
    m = a->rows;
    n = a->cols;
    k = b->cols;
    if (b->rows != m)
        ASEC_FAIL(ASEC_EBADLEN, "%s: a is %zux%zu but b has %zu rows", fn, m, n, b->rows);
    if (x->rows != n || x->cols != k)
        ASEC_FAIL(ASEC_EBADLEN,
                  "%s: x is %zux%zu but a (%zux%zu), b (%zux%zu) need %zux%zu", fn,
                  x->rows, x->cols, m, n, m, k, n, k);
    if (isnan(rcond) || rcond == INFINITY)
        ASEC_FAIL(ASEC_EINVAL, "%s: rcond is %g", fn, rcond);
    if (n == 0 || m == 0) {
        /* No equations or no unknowns: the minimum-norm solution is 0. */
        scale_in_place(x, 0.0, 0);
        if (rank != NULL)
            *rank = 0;
        return ASEC_OK;
    }
    mx = m > n ? m : n;
    r = m < n ? m : n;
    kk = k > 0 ? k : 1; /* k == 0 still yields the rank */
    ASEC_TRY(check_int(fn, "max(m, n)", mx));
    ASEC_TRY(check_int(fn, "k", kk));
    ASEC_TRY(check_finite(fn, "a", a, 0));
    ASEC_TRY(check_finite(fn, "b", b, 0));
    if ((rc = alloc_doubles(fn, &ac, m, n)) != ASEC_OK ||
        (rc = alloc_doubles(fn, &bc, mx, kk)) != ASEC_OK ||
        (rc = alloc_doubles(fn, &sv, r, 1)) != ASEC_OK)
        goto fail;
    copy_rows(ac, n, a->data, a->ld, m, n);
    memset(bc, 0, mx * kk * sizeof(double));
    copy_rows(bc, kk, b->data, b->ld, m, k);
    info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, (lapack_int)m, (lapack_int)n, (lapack_int)kk,
                          ac, (lapack_int)n, bc, (lapack_int)kk, sv, rcond, &rank_i);
    if (info > 0)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENUMERIC,
                       "%s: LAPACK dgelsd did not converge (info %d)", fn, (int)info);
    if (info < 0) {
        rc = lapack_failed(fn, "dgelsd", info);
        goto fail;
    }
    copy_rows(x->data, x->ld, bc, kk, n, k);
    if (rank != NULL)
        *rank = (size_t)rank_i;
fail:
    asec__free(sv);
    asec__free(bc);
    asec__free(ac);
    return rc;
}

/* ---------------------------------------------------------------- softmax */

int
asec_mat_softmax_rows(asec_mat *out, const asec_mat *in)
{
    static const char fn[] = "softmax_rows";

    ASEC_TRY(check_view(fn, "out", out));
    ASEC_TRY(check_view(fn, "in", in));
    if (out->rows != in->rows || out->cols != in->cols)
        ASEC_FAIL(ASEC_EBADLEN, "%s: out is %zux%zu but in is %zux%zu", fn, out->rows,
                  out->cols, in->rows, in->cols);
    if (in->cols == 0)
        return ASEC_OK; /* rows of no entries: nothing to write */
    for (size_t i = 0; i < in->rows; i++) {
        const double *z = in->data + i * in->ld;
        double *f = out->data + i * out->ld;

        if (asec_vec_softmax(f, z, in->cols) != ASEC_OK) {
            char why[256];

            /* Prefix the row: copy first, the message buffer is reused. */
            snprintf(why, sizeof why, "%s", asec_errmsg());
            ASEC_FAIL(ASEC_ENUMERIC, "%s: row %zu: %s", fn, i, why);
        }
    }
    return ASEC_OK;
}
