/* attnsec/mat.h - dense row-major double matrices, BLAS and LAPACK wrappers.
 *
 * A matrix is a transparent view: element (i, j) of an m x n matrix is
 * data[i * ld + j] with ld >= cols ("leading dimension", counted in
 * elements, what CBLAS calls lda under CblasRowMajor).  A view never owns
 * its data; asec_mat_alloc() returns one whose data must be released with
 * asec_mat_free().
 *
 * Every wrapper checks shapes before calling CBLAS or LAPACKE and returns
 * ASEC_EBADLEN when they do not conform (with the shapes in asec_errmsg()).
 * Every int-returning function also returns ASEC_EINVAL for a transpose
 * flag other than ASEC_NOTRANS / ASEC_TRANS, a view with ld < cols or
 * with NULL data and entries, or (BLAS/LAPACK wrappers) a dimension or
 * ld above INT_MAX.  Outputs come first.
 * Unless a function says otherwise, an output must not alias an input.
 *
 * Shapes are written outermost-first, as in PyTorch: (rows, cols).
 */
#ifndef ATTNSEC_MAT_H
#define ATTNSEC_MAT_H

#include <stddef.h>

#include <attnsec/common.h>

ASEC_BEGIN_DECLS

typedef struct asec_mat {
    size_t rows;
    size_t cols;
    size_t ld;    /* >= cols; elements between starts of consecutive rows */
    double *data; /* rows * ld elements (the last row needs only cols) */
} asec_mat;

enum { ASEC_NOTRANS = 0, ASEC_TRANS = 1 };

/* A view of contiguous row-major storage; allocates nothing. */
static inline asec_mat
asec_mat_view(double *data, size_t rows, size_t cols)
{
    asec_mat m;
    m.rows = rows;
    m.cols = cols;
    m.ld = cols;
    m.data = data;
    return m;
}

/* The block of m starting at (r0, c0) with the given shape, sharing m's
 * storage.  The caller guarantees the block lies inside m. */
static inline asec_mat
asec_mat_block(const asec_mat *m, size_t r0, size_t c0, size_t rows, size_t cols)
{
    asec_mat b;
    b.rows = rows;
    b.cols = cols;
    b.ld = m->ld;
    b.data = m->data + r0 * m->ld + c0;
    return b;
}

/* Pointer to element (i, j); no bounds check. */
static inline double *
asec_mat_at(const asec_mat *m, size_t i, size_t j)
{
    return m->data + i * m->ld + j;
}

/* Allocate a zero-filled rows x cols matrix with ld = cols.  A 0 x n or
 * n x 0 matrix is valid.  On failure *out is zeroed and ASEC_ENOMEM
 * returned (also when rows * cols * sizeof(double) overflows). */
ASEC_API int asec_mat_alloc(asec_mat *out, size_t rows, size_t cols)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Release storage from asec_mat_alloc() and zero *m.  NULL, or a zeroed
 * matrix: no-op.  Never call it on a view. */
ASEC_API void asec_mat_free(asec_mat *m);

/* dst = src (same shape; ASEC_EBADLEN otherwise).  May not overlap. */
ASEC_API int asec_mat_copy(asec_mat *dst, const asec_mat *src)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Set every element to value.  Allocates nothing. */
ASEC_API void asec_mat_fill(asec_mat *m, double value) ASEC_NONNULL(1);

/* dst = src^T; dst must be (src->cols, src->rows).  May not overlap. */
ASEC_API int asec_mat_transpose(asec_mat *dst, const asec_mat *src)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Frobenius norm, and the largest absolute entry. */
ASEC_API double asec_mat_norm_fro(const asec_mat *m) ASEC_NONNULL(1);
ASEC_API double asec_mat_norm_max(const asec_mat *m) ASEC_NONNULL(1);

/* c = alpha op(a) op(b) + beta c, op(x) = x or x^T by ta, tb.
 * op(a) is (M, K), op(b) is (K, N), c is (M, N).  With beta == 0, c is
 * not read (NaN in c does not propagate).  Allocates nothing. */
ASEC_API int asec_mat_gemm(asec_mat *c, double alpha, const asec_mat *a, int ta,
                           const asec_mat *b, int tb, double beta)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 3, 5);

/* The same product in plain loops (the reference for tests, after llm.c's
 * matmul_forward_naive); identical contract. */
ASEC_API int asec_mat_gemm_ref(asec_mat *c, double alpha, const asec_mat *a, int ta,
                               const asec_mat *b, int tb, double beta)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 3, 5);

/* Strided batch of count products: for i < count,
 *   C_i = alpha op(A_i) op(B_i) + beta C_i,
 * where X_i is the view x with data advanced by i * stride_x elements.
 * Shapes are those of the first item (views a, b, c).  A stride of 0
 * reuses the same operand for every item (C_i must not overlap;
 * stride_c == 0 with count > 1 is ASEC_EINVAL). */
ASEC_API int asec_mat_gemm_batched(size_t count, asec_mat *c, size_t stride_c,
                                   double alpha, const asec_mat *a, size_t stride_a,
                                   int ta, const asec_mat *b, size_t stride_b, int tb,
                                   double beta)
    ASEC_WARN_UNUSED ASEC_NONNULL(2, 5, 8);

/* y = alpha op(a) x + beta y; x has op(a)->cols entries, y op(a)->rows
 * (the lengths come from a, so only a's shape is checked).  With
 * beta == 0, y is not read. */
ASEC_API int asec_mat_gemv(double *y, double alpha, const asec_mat *a, int ta,
                           const double *x, double beta)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 3, 5);

/* c = alpha op(a) op(a)^T + beta c with op(a) = a (ta = ASEC_NOTRANS,
 * c is rows x rows) or a^T (c is cols x cols).  Both triangles of c are
 * written (the result is symmetric); with beta != 0 only c's lower
 * triangle is read (c is taken to be symmetric).  Allocates nothing. */
ASEC_API int asec_mat_syrk(asec_mat *c, double alpha, const asec_mat *a, int ta,
                           double beta) ASEC_WARN_UNUSED ASEC_NONNULL(1, 3);

/* Solve a x = b for symmetric positive definite a (n x n) by Cholesky.
 * b (n x k) is overwritten with x.  a is not modified (a copy is
 * factored: allocates n x n doubles, freed before return).  Only a's
 * lower triangle is read.  Returns ASEC_ENUMERIC when a is not positive
 * definite or a (lower triangle) or b has a NaN or inf entry. */
ASEC_API int asec_mat_cholesky_solve(asec_mat *b, const asec_mat *a)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Symmetric eigendecomposition a = V diag(w) V^T.  w has n entries in
 * ascending order; vecs (n x n, may be NULL for eigenvalues only) gets the
 * eigenvectors as columns.  Only a's lower triangle is read; a is not
 * modified.  Allocates an n x n copy (freed before return).  Returns
 * ASEC_ENUMERIC when LAPACK does not converge or a has a NaN or inf. */
ASEC_API int asec_mat_eigh(double *w, asec_mat *vecs, const asec_mat *a)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 3);

/* Thin SVD a = U diag(s) Vt, a (m x n), r = min(m, n): s has r entries in
 * descending order; u (m x r) and vt (r x n) may be NULL for singular
 * values only.  a is not modified.  Allocates a copy and workspace (freed
 * before return).  ASEC_ENUMERIC when LAPACK does not converge or a has
 * a NaN or inf. */
ASEC_API int asec_mat_svd(double *s, asec_mat *u, asec_mat *vt, const asec_mat *a)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 4);

/* Minimum-norm least-squares solution x (n x k) of a x ~ b, a (m x n),
 * b (m x k), by SVD (LAPACK dgelsd) with singular values below
 * rcond * s_max treated as zero (rcond < 0: machine precision).  If rank
 * is not NULL it receives the effective rank.  a and b are not modified.
 * Allocates copies and workspace (freed before return).  m == 0 or
 * n == 0 gives x = 0 and rank 0.  ASEC_EINVAL when rcond is NaN or +inf;
 * ASEC_ENUMERIC when LAPACK does not converge or a or b has a NaN or inf. */
ASEC_API int asec_mat_lstsq(asec_mat *x, size_t *rank, const asec_mat *a,
                            const asec_mat *b, double rcond)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 3, 4);

/* Numerically stable softmax of every row: out[i, :] = softmax(in[i, :]),
 * computed as exp(z - max z) / sum.  out may alias in (same view).  A row
 * of -inf entries only is ASEC_ENUMERIC; +inf or NaN entries are
 * ASEC_ENUMERIC (the message names the row).  A matrix with no columns
 * is left alone.  Allocates nothing. */
ASEC_API int asec_mat_softmax_rows(asec_mat *out, const asec_mat *in)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

ASEC_END_DECLS

#endif /* ATTNSEC_MAT_H */
