/* attn.c - transformer kernels: linear, LayerNorm, GELU, scaled-dot-product
 * attention, softmax cross-entropy, each with its backward pass and the
 * forward-mode tangents of both (the R-operator), plus the attention
 * regression of MATH.md section 2.6.
 *
 * This file is the clean reference, after llm.c's train_gpt2.c: plain
 * loops for everything elementwise, BLAS (through asec_mat_gemm) for every
 * product, no intrinsics.  Each backward pass quotes the forward line it
 * differentiates.  Shapes are in (B, T, C) notation: see attnsec/attn.h.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "attnsec/attn.h"
#include "attnsec/mat.h"
#include "attnsec/vec.h"
#include "internal.h"
#include "model_internal.h"

/* The BLAS wrapper takes mutable views; inputs are only read. */
static double *
unconst(const double *p)
{
    return (double *)(uintptr_t)p;
}

/* A (rows, cols) view with leading dimension ld of read-only storage. */
static asec_mat
cview(const double *p, size_t rows, size_t cols, size_t ld)
{
    asec_mat m;

    m.rows = rows;
    m.cols = cols;
    m.ld = ld;
    m.data = unconst(p);
    return m;
}

/* c (M, N) = alpha op(a) op(b) + beta c on contiguous row-major storage,
 * op(a) (M, K), op(b) (K, N).  a is stored (M, K) or, with ta, (K, M). */
static int
gemm(double *c, double alpha, const double *a, int ta, const double *b, int tb,
     double beta, size_t M, size_t N, size_t K)
{
    asec_mat cm = asec_mat_view(c, M, N);
    asec_mat am = ta == ASEC_TRANS ? cview(a, K, M, M) : cview(a, M, K, K);
    asec_mat bm = tb == ASEC_TRANS ? cview(b, N, K, K) : cview(b, K, N, N);

    if (M == 0 || N == 0)
        return ASEC_OK;
    return asec_mat_gemm(&cm, alpha, &am, ta, &bm, tb, beta);
}

/* ------------------------------------------------------------ linear */

/* Adjacent (rows, cols) blocks: b starts right where a ends, so [a; b] is
 * one (2 * rows, cols) matrix.  (Compared as addresses: a and b may belong to
 * different allocations.) */
static int
stacked(const double *a, const double *b, size_t rows, size_t cols)
{
    return a != NULL && b != NULL &&
           (uintptr_t)b - (uintptr_t)a == rows * cols * sizeof(double);
}

static void
add_bias(double *out, const double *bias, size_t N, size_t OUT)
{
    for (size_t n = 0; n < N; n++)
        for (size_t o = 0; o < OUT; o++)
            out[n * OUT + o] += bias[o];
}

int
asec_attn_linear_forward(double *out, const double *inp, const double *weight,
                         const double *bias, size_t N, size_t IN, size_t OUT)
{
    // out = inp @ weight.T  (N, IN) x (IN, OUT)
    ASEC_TRY(gemm(out, 1.0, inp, ASEC_NOTRANS, weight, ASEC_TRANS, 0.0, N, OUT, IN));
    if (bias != NULL)
        add_bias(out, bias, N, OUT);
    return ASEC_OK;
}

static void
add_colsums(double *dbias, const double *dout, size_t N, size_t OUT)
{
    for (size_t n = 0; n < N; n++)
        for (size_t o = 0; o < OUT; o++)
            dbias[o] += dout[n * OUT + o];
}

int
asec_attn_linear_backward(double *dinp, double *dweight, double *dbias,
                          const double *dout, const double *inp, const double *weight,
                          size_t N, size_t IN, size_t OUT)
{
    // in the forward pass this was: out[n, o] = sum_i inp[n, i] w[o, i] + b[o]
    if (dinp != NULL) // dinp += dout @ w  (N, OUT) x (OUT, IN)
        ASEC_TRY(
            gemm(dinp, 1.0, dout, ASEC_NOTRANS, weight, ASEC_NOTRANS, 1.0, N, IN, OUT));
    if (dweight != NULL) // dw += dout^T @ inp  (OUT, N) x (N, IN)
        ASEC_TRY(
            gemm(dweight, 1.0, dout, ASEC_TRANS, inp, ASEC_NOTRANS, 1.0, OUT, IN, N));
    if (dbias != NULL)
        add_colsums(dbias, dout, N, OUT);
    return ASEC_OK;
}

int
asec_attn_linear_forward_tangent(double *tout, const double *inp, const double *tinp,
                                 const double *weight, const double *tweight,
                                 const double *tbias, size_t N, size_t IN, size_t OUT)
{
    double beta = 0.0;

    if (tinp != NULL) {
        ASEC_TRY(
            gemm(tout, 1.0, tinp, ASEC_NOTRANS, weight, ASEC_TRANS, 0.0, N, OUT, IN));
        beta = 1.0;
    }
    if (tweight != NULL) {
        ASEC_TRY(
            gemm(tout, 1.0, inp, ASEC_NOTRANS, tweight, ASEC_TRANS, beta, N, OUT, IN));
        beta = 1.0;
    }
    if (beta == 0.0)
        memset(tout, 0, N * OUT * sizeof *tout);
    if (tbias != NULL)
        add_bias(tout, tbias, N, OUT);
    return ASEC_OK;
}

int
asec_attn_linear_backward_tangent(double *tdinp, double *tdweight, double *tdbias,
                                  const double *dout, const double *tdout,
                                  const double *inp, const double *tinp,
                                  const double *weight, const double *tweight, size_t N,
                                  size_t IN, size_t OUT)
{
    // the backward pass was: dinp += dout @ w;  dw += dout^T @ inp;  db += sum dout
    if (tdinp != NULL) {
        if (tdout != NULL)
            ASEC_TRY(gemm(tdinp, 1.0, tdout, ASEC_NOTRANS, weight, ASEC_NOTRANS, 1.0, N,
                          IN, OUT));
        if (tweight != NULL)
            ASEC_TRY(gemm(tdinp, 1.0, dout, ASEC_NOTRANS, tweight, ASEC_NOTRANS, 1.0, N,
                          IN, OUT));
    }
    if (tdweight != NULL) {
        if (tdout != NULL)
            ASEC_TRY(gemm(tdweight, 1.0, tdout, ASEC_TRANS, inp, ASEC_NOTRANS, 1.0, OUT,
                          IN, N));
        if (tinp != NULL)
            ASEC_TRY(gemm(tdweight, 1.0, dout, ASEC_TRANS, tinp, ASEC_NOTRANS, 1.0, OUT,
                          IN, N));
    }
    if (tdbias != NULL && tdout != NULL)
        add_colsums(tdbias, tdout, N, OUT);
    return ASEC_OK;
}

int
asec_attn__linear_forward_pair(double *out, double *tout, const double *inp,
                               const double *tinp, const double *weight,
                               const double *bias, const double *tweight,
                               const double *tbias, size_t N, size_t IN, size_t OUT)
{
    if (!stacked(out, tout, N, OUT) || !stacked(inp, tinp, N, IN)) {
        ASEC_TRY(asec_attn_linear_forward(out, inp, weight, bias, N, IN, OUT));
        return asec_attn_linear_forward_tangent(tout, inp, tinp, weight, tweight, tbias,
                                                N, IN, OUT);
    }
    // [out; tout] = [inp; tinp] @ weight.T  (2N, IN) x (IN, OUT): weight read once
    ASEC_TRY(gemm(out, 1.0, inp, ASEC_NOTRANS, weight, ASEC_TRANS, 0.0, 2 * N, OUT, IN));
    if (bias != NULL)
        add_bias(out, bias, N, OUT);
    // tout += inp @ tweight.T + tbias
    if (tweight != NULL)
        ASEC_TRY(
            gemm(tout, 1.0, inp, ASEC_NOTRANS, tweight, ASEC_TRANS, 1.0, N, OUT, IN));
    if (tbias != NULL)
        add_bias(tout, tbias, N, OUT);
    return ASEC_OK;
}

int
asec_attn__linear_backward_pair(double *dinp, double *tdinp, double *dweight,
                                double *dbias, double *tdweight, double *tdbias,
                                const double *dout, const double *tdout,
                                const double *inp, const double *tinp,
                                const double *weight, const double *tweight, size_t N,
                                size_t IN, size_t OUT)
{
    if (!stacked(dinp, tdinp, N, IN) || !stacked(dout, tdout, N, OUT)) {
        ASEC_TRY(asec_attn_linear_backward(dinp, dweight, dbias, dout, inp, weight, N, IN,
                                           OUT));
        return asec_attn_linear_backward_tangent(tdinp, tdweight, tdbias, dout, tdout,
                                                 inp, tinp, weight, tweight, N, IN, OUT);
    }
    // [dinp; tdinp] += [dout; tdout] @ w  (2N, OUT) x (OUT, IN): w read once
    ASEC_TRY(
        gemm(dinp, 1.0, dout, ASEC_NOTRANS, weight, ASEC_NOTRANS, 1.0, 2 * N, IN, OUT));
    // tdinp += dout @ tw;  the weight and bias gradients and their tangents
    ASEC_TRY(
        asec_attn_linear_backward(NULL, dweight, dbias, dout, inp, weight, N, IN, OUT));
    if (tweight != NULL)
        ASEC_TRY(
            gemm(tdinp, 1.0, dout, ASEC_NOTRANS, tweight, ASEC_NOTRANS, 1.0, N, IN, OUT));
    return asec_attn_linear_backward_tangent(NULL, tdweight, tdbias, dout, tdout, inp,
                                             tinp, weight, tweight, N, IN, OUT);
}

/* ------------------------------------------------------------ LayerNorm */

void
asec_attn_layernorm_forward(double *out, double *mean, double *rstd, const double *inp,
                            const double *weight, const double *bias, size_t N, size_t C,
                            double eps)
{
    for (size_t n = 0; n < N; n++) {
        const double *x = inp + n * C;
        double *y = out + n * C;
        double m = 0.0, v = 0.0, s;

        for (size_t i = 0; i < C; i++)
            m += x[i];
        m /= (double)C;
        for (size_t i = 0; i < C; i++)
            v += (x[i] - m) * (x[i] - m);
        v /= (double)C; // biased, as torch
        s = 1.0 / sqrt(v + eps);
        for (size_t i = 0; i < C; i++)
            y[i] = (x[i] - m) * s * weight[i] + bias[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

/* norm = (x - mean) * rstd for one row. */
static double
norm_at(const double *x, size_t i, double m, double s)
{
    return (x[i] - m) * s;
}

void
asec_attn_layernorm_backward(double *dinp, double *dweight, double *dbias,
                             const double *dout, const double *inp, const double *weight,
                             const double *mean, const double *rstd, size_t N, size_t C)
{
    for (size_t n = 0; n < N; n++) {
        const double *x = inp + n * C, *dy = dout + n * C;
        double m = mean[n], s = rstd[n];
        double dn_mean = 0.0, dnn_mean = 0.0;

        // in the forward pass this was: y = norm * w + b, norm = (x - mean) * rstd
        for (size_t i = 0; i < C; i++) {
            double nrm = norm_at(x, i, m, s), dn = dy[i] * weight[i];

            dn_mean += dn;
            dnn_mean += dn * nrm;
            if (dweight != NULL)
                dweight[i] += dy[i] * nrm;
            if (dbias != NULL)
                dbias[i] += dy[i];
        }
        dn_mean /= (double)C;
        dnn_mean /= (double)C;
        if (dinp == NULL)
            continue;
        // dx = rstd (dn - mean(dn) - norm mean(dn o norm))
        for (size_t i = 0; i < C; i++) {
            double nrm = norm_at(x, i, m, s), dn = dy[i] * weight[i];

            dinp[n * C + i] += s * (dn - dn_mean - nrm * dnn_mean);
        }
    }
}

void
asec_attn_layernorm_forward_tangent(double *tout, const double *inp, const double *tinp,
                                    const double *weight, const double *tweight,
                                    const double *tbias, const double *mean,
                                    const double *rstd, size_t N, size_t C)
{
    for (size_t n = 0; n < N; n++) {
        const double *x = inp + n * C;
        const double *tx = tinp != NULL ? tinp + n * C : NULL;
        double m = mean[n], s = rstd[n];
        double tx_mean = 0.0, ntx_mean = 0.0;
        double *ty = tout + n * C;

        if (tx != NULL) {
            for (size_t i = 0; i < C; i++) {
                tx_mean += tx[i];
                ntx_mean += norm_at(x, i, m, s) * tx[i];
            }
            tx_mean /= (double)C;
            ntx_mean /= (double)C;
        }
        // tnorm = rstd (tx - mean(tx) - norm mean(norm o tx))  (the Jacobian is
        // symmetric) ty = tnorm o w + norm o tw + tb
        for (size_t i = 0; i < C; i++) {
            double nrm = norm_at(x, i, m, s);
            double tn = tx != NULL ? s * (tx[i] - tx_mean - nrm * ntx_mean) : 0.0;

            ty[i] = tn * weight[i];
            if (tweight != NULL)
                ty[i] += nrm * tweight[i];
            if (tbias != NULL)
                ty[i] += tbias[i];
        }
    }
}

void
asec_attn_layernorm_backward_tangent(double *tdinp, double *tdweight, double *tdbias,
                                     const double *dout, const double *tdout,
                                     const double *inp, const double *tinp,
                                     const double *weight, const double *tweight,
                                     const double *mean, const double *rstd, size_t N,
                                     size_t C)
{
    double fc = (double)C;

    for (size_t n = 0; n < N; n++) {
        const double *x = inp + n * C, *dy = dout + n * C;
        const double *tdy = tdout != NULL ? tdout + n * C : NULL;
        const double *tx = tinp != NULL ? tinp + n * C : NULL;
        double m = mean[n], s = rstd[n];
        double tx_mean = 0.0, ntx_mean = 0.0, ts;
        double dn_mean = 0.0, dnn_mean = 0.0, tdn_mean = 0.0, tdnn_mean = 0.0;

        if (tx != NULL) {
            for (size_t i = 0; i < C; i++) {
                tx_mean += tx[i];
                ntx_mean += norm_at(x, i, m, s) * tx[i];
            }
            tx_mean /= fc;
            ntx_mean /= fc;
        }
        // trstd = -rstd^2 mean(norm o tx);  tnorm = rstd (tx - mean(tx) - norm mean(norm
        // o tx))
        ts = -s * s * ntx_mean;
        for (size_t i = 0; i < C; i++) {
            double nrm = norm_at(x, i, m, s);
            double tn = tx != NULL ? s * (tx[i] - tx_mean - nrm * ntx_mean) : 0.0;
            double dn = dy[i] * weight[i];
            // tdn = tdy o w + dy o tw
            double tdn = (tdy != NULL ? tdy[i] * weight[i] : 0.0) +
                         (tweight != NULL ? dy[i] * tweight[i] : 0.0);

            dn_mean += dn;
            dnn_mean += dn * nrm;
            tdn_mean += tdn;
            // t(dn o norm) = tdn o norm + dn o tnorm
            tdnn_mean += tdn * nrm + dn * tn;
            // the backward pass was: dw += dy o norm;  db += dy
            if (tdweight != NULL)
                tdweight[i] += (tdy != NULL ? tdy[i] * nrm : 0.0) + dy[i] * tn;
            if (tdbias != NULL && tdy != NULL)
                tdbias[i] += tdy[i];
        }
        if (tdinp == NULL)
            continue;
        dn_mean /= fc;
        dnn_mean /= fc;
        tdn_mean /= fc;
        tdnn_mean /= fc;
        // dx = rstd (dn - mean(dn) - norm mean(dn o norm)), so
        // tdx = trstd (...) + rstd (tdn - mean(tdn) - tnorm mean(dn o norm)
        //                           - norm mean(t(dn o norm)))
        for (size_t i = 0; i < C; i++) {
            double nrm = norm_at(x, i, m, s);
            double tn = tx != NULL ? s * (tx[i] - tx_mean - nrm * ntx_mean) : 0.0;
            double dn = dy[i] * weight[i];
            double tdn = (tdy != NULL ? tdy[i] * weight[i] : 0.0) +
                         (tweight != NULL ? dy[i] * tweight[i] : 0.0);

            tdinp[n * C + i] += ts * (dn - dn_mean - nrm * dnn_mean) +
                                s * (tdn - tdn_mean - tn * dnn_mean - nrm * tdnn_mean);
        }
    }
}

/* ------------------------------------------------------------ GELU */

#define ASEC_INV_SQRT2 0.70710678118654752440
#define ASEC_INV_SQRT2PI 0.39894228040143267794

/* Phi(x) and phi(x), the standard normal CDF and density. */
static double
gelu_cdf(double x)
{
    return 0.5 * (1.0 + erf(x * ASEC_INV_SQRT2));
}

static double
gelu_pdf(double x)
{
    return ASEC_INV_SQRT2PI * exp(-0.5 * x * x);
}

/* The GELU kernels take optional caches of Phi(inp) (cdf) and phi(inp)
 * (pdf) from the forward pass; each missing one is recomputed.  The model
 * engine keeps both (asec_attn__gelu_forward()), so that the backward pass
 * and the two tangent passes of a Hessian-vector product evaluate no erf
 * and no exp; the values are bit-identical either way. */

void
asec_attn__gelu_forward(double *out, double *cdf, double *pdf, const double *inp,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double x = inp[i], c = gelu_cdf(x);

        if (cdf != NULL)
            cdf[i] = c;
        if (pdf != NULL)
            pdf[i] = gelu_pdf(x);
        out[i] = x * c;
    }
}

void
asec_attn_gelu_forward(double *out, double *cdf, const double *inp, size_t n)
{
    asec_attn__gelu_forward(out, cdf, NULL, inp, n);
}

/* gelu'(inp[i]) = Phi + x phi, and phi(inp[i]), from the caches when given. */
static double
gelu_grad_at(const double *inp, const double *cdf, const double *pdf, size_t i,
             double *phi)
{
    double x = inp[i], p = pdf != NULL ? pdf[i] : gelu_pdf(x);

    *phi = p;
    return (cdf != NULL ? cdf[i] : gelu_cdf(x)) + x * p;
}

void
asec_attn__gelu_backward(double *dinp, const double *inp, const double *cdf,
                         const double *pdf, const double *dout, size_t n)
{
    double p;

    // in the forward pass this was: out = x Phi(x), so gelu' = Phi + x phi
    if (cdf != NULL && pdf != NULL) {
        for (size_t i = 0; i < n; i++)
            dinp[i] += (cdf[i] + inp[i] * pdf[i]) * dout[i];
        return;
    }
    for (size_t i = 0; i < n; i++)
        dinp[i] += gelu_grad_at(inp, cdf, pdf, i, &p) * dout[i];
}

void
asec_attn_gelu_backward(double *dinp, const double *inp, const double *cdf,
                        const double *dout, size_t n)
{
    asec_attn__gelu_backward(dinp, inp, cdf, NULL, dout, n);
}

void
asec_attn__gelu_forward_tangent(double *tout, const double *inp, const double *cdf,
                                const double *pdf, const double *tinp, size_t n)
{
    double p;

    if (cdf != NULL && pdf != NULL) {
        for (size_t i = 0; i < n; i++)
            tout[i] = (cdf[i] + inp[i] * pdf[i]) * tinp[i];
        return;
    }
    for (size_t i = 0; i < n; i++)
        tout[i] = gelu_grad_at(inp, cdf, pdf, i, &p) * tinp[i];
}

void
asec_attn_gelu_forward_tangent(double *tout, const double *inp, const double *cdf,
                               const double *tinp, size_t n)
{
    asec_attn__gelu_forward_tangent(tout, inp, cdf, NULL, tinp, n);
}

void
asec_attn__gelu_backward_tangent(double *tdinp, const double *inp, const double *cdf,
                                 const double *pdf, const double *tinp,
                                 const double *dout, const double *tdout, size_t n)
{
    // the backward pass was: dinp += gelu'(x) dout;  gelu'' = phi (2 - x^2)
    if (cdf != NULL && pdf != NULL && tinp != NULL && tdout != NULL) {
        for (size_t i = 0; i < n; i++) {
            double x = inp[i], p = pdf[i], t = 0.0;

            t += (cdf[i] + x * p) * tdout[i];
            t += p * (2.0 - x * x) * tinp[i] * dout[i];
            tdinp[i] += t;
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double x = inp[i], p, t = 0.0, g = gelu_grad_at(inp, cdf, pdf, i, &p);

        if (tdout != NULL)
            t += g * tdout[i];
        if (tinp != NULL)
            t += p * (2.0 - x * x) * tinp[i] * dout[i];
        tdinp[i] += t;
    }
}

void
asec_attn_gelu_backward_tangent(double *tdinp, const double *inp, const double *cdf,
                                const double *tinp, const double *dout,
                                const double *tdout, size_t n)
{
    asec_attn__gelu_backward_tangent(tdinp, inp, cdf, NULL, tinp, dout, tdout, n);
}

/* ------------------------------------------------------------ attention, one head */

static int
same_shape(const asec_mat *a, size_t rows, size_t cols)
{
    return a->rows == rows && a->cols == cols;
}

int
asec_attn_sdpa_forward(asec_mat *out, asec_mat *att, const asec_mat *q, const asec_mat *k,
                       const asec_mat *v, double scale, int causal)
{
    size_t T = q->rows, S = k->rows;

    if (k->cols != q->cols || v->rows != S || !same_shape(att, T, S) ||
        !same_shape(out, T, v->cols))
        ASEC_FAIL(ASEC_EBADLEN,
                  "sdpa: q (%zu, %zu), k (%zu, %zu), v (%zu, %zu), att (%zu, %zu), "
                  "out (%zu, %zu) do not conform",
                  q->rows, q->cols, k->rows, k->cols, v->rows, v->cols, att->rows,
                  att->cols, out->rows, out->cols);
    if (causal && T != S)
        ASEC_FAIL(ASEC_EBADLEN, "sdpa: a causal mask needs T == S, got T %zu, S %zu", T,
                  S);
    if (T == 0)
        return ASEC_OK;
    if (S == 0)
        ASEC_FAIL(ASEC_EBADLEN, "sdpa: no keys (S = 0) for %zu queries", T);
    // preatt = scale q @ k^T  (T, S)
    ASEC_TRY(asec_mat_gemm(att, scale, q, ASEC_NOTRANS, k, ASEC_TRANS, 0.0));
    for (size_t i = 0; i < T; i++) {
        double *row = att->data + i * att->ld;
        size_t len = causal ? i + 1 : S;

        ASEC_TRY(asec_vec_softmax(row, row, len));
        for (size_t j = len; j < S; j++)
            row[j] = 0.0;
    }
    // out = att @ v  (T, S) x (S, DV)
    return asec_mat_gemm(out, 1.0, att, ASEC_NOTRANS, v, ASEC_NOTRANS, 0.0);
}

/* ds = att o (dp - rowsum(att o dp)) in place of dp (the softmax backward,
 * one row at a time). */
static void
softmax_rows_backward(asec_mat *dp, const asec_mat *att)
{
    for (size_t i = 0; i < att->rows; i++) {
        const double *p = att->data + i * att->ld;
        double *d = dp->data + i * dp->ld;
        double r = 0.0;

        for (size_t j = 0; j < att->cols; j++)
            r += p[j] * d[j];
        for (size_t j = 0; j < att->cols; j++)
            d[j] = p[j] * (d[j] - r);
    }
}

int
asec_attn_sdpa_backward(asec_mat *dq, asec_mat *dk, asec_mat *dv, asec_mat *work,
                        const asec_mat *dout, const asec_mat *q, const asec_mat *k,
                        const asec_mat *v, const asec_mat *att, double scale)
{
    size_t T = q->rows, S = k->rows;

    if (!same_shape(work, T, S) || !same_shape(att, T, S) ||
        !same_shape(dout, T, v->cols) || v->rows != S)
        ASEC_FAIL(ASEC_EBADLEN,
                  "sdpa_backward: work (%zu, %zu), att (%zu, %zu), dout (%zu, %zu) "
                  "do not conform with T %zu, S %zu, DV %zu",
                  work->rows, work->cols, att->rows, att->cols, dout->rows, dout->cols, T,
                  S, v->cols);
    if (T == 0 || S == 0)
        return ASEC_OK;
    // in the forward pass this was: out = att @ v, so
    if (dv != NULL) // dv += att^T @ dout
        ASEC_TRY(asec_mat_gemm(dv, 1.0, att, ASEC_TRANS, dout, ASEC_NOTRANS, 1.0));
    if (dq == NULL && dk == NULL)
        return ASEC_OK;
    // datt = dout @ v^T, then through the softmax: ds = att o (datt - r)
    ASEC_TRY(asec_mat_gemm(work, 1.0, dout, ASEC_NOTRANS, v, ASEC_TRANS, 0.0));
    softmax_rows_backward(work, att);
    // preatt = scale q @ k^T, so dq += scale ds @ k, dk += scale ds^T @ q
    if (dq != NULL)
        ASEC_TRY(asec_mat_gemm(dq, scale, work, ASEC_NOTRANS, k, ASEC_NOTRANS, 1.0));
    if (dk != NULL)
        ASEC_TRY(asec_mat_gemm(dk, scale, work, ASEC_TRANS, q, ASEC_NOTRANS, 1.0));
    return ASEC_OK;
}

int
asec_attn_sdpa_forward_tangent(asec_mat *tout, asec_mat *tatt, const asec_mat *q,
                               const asec_mat *k, const asec_mat *v, const asec_mat *att,
                               const asec_mat *tq, const asec_mat *tk, const asec_mat *tv,
                               double scale)
{
    size_t T = q->rows, S = k->rows;
    double beta = 0.0;

    if (!same_shape(tatt, T, S) || !same_shape(att, T, S) ||
        !same_shape(tout, T, v->cols) || v->rows != S ||
        (tq != NULL && !same_shape(tq, T, q->cols)) ||
        (tk != NULL && !same_shape(tk, S, k->cols)) ||
        (tv != NULL && !same_shape(tv, S, v->cols)))
        ASEC_FAIL(ASEC_EBADLEN,
                  "sdpa_forward_tangent: shapes do not conform "
                  "(T %zu, S %zu, D %zu, DV %zu)",
                  T, S, q->cols, v->cols);
    if (T == 0 || S == 0)
        return ASEC_OK;
    // ts = scale (tq @ k^T + q @ tk^T)
    if (tq != NULL) {
        ASEC_TRY(asec_mat_gemm(tatt, scale, tq, ASEC_NOTRANS, k, ASEC_TRANS, 0.0));
        beta = 1.0;
    }
    if (tk != NULL) {
        ASEC_TRY(asec_mat_gemm(tatt, scale, q, ASEC_NOTRANS, tk, ASEC_TRANS, beta));
        beta = 1.0;
    }
    if (beta == 0.0)
        asec_mat_fill(tatt, 0.0);
    // tatt = att o (ts - rowsum(att o ts)): the same map as the softmax backward
    softmax_rows_backward(tatt, att);
    // out = att @ v, so tout = tatt @ v + att @ tv
    ASEC_TRY(asec_mat_gemm(tout, 1.0, tatt, ASEC_NOTRANS, v, ASEC_NOTRANS, 0.0));
    if (tv != NULL)
        ASEC_TRY(asec_mat_gemm(tout, 1.0, att, ASEC_NOTRANS, tv, ASEC_NOTRANS, 1.0));
    return ASEC_OK;
}

int
asec_attn_sdpa_backward_tangent(asec_mat *tdq, asec_mat *tdk, asec_mat *tdv,
                                asec_mat *work1, asec_mat *work2, const asec_mat *dout,
                                const asec_mat *tdout, const asec_mat *q,
                                const asec_mat *k, const asec_mat *v, const asec_mat *att,
                                const asec_mat *tq, const asec_mat *tk,
                                const asec_mat *tv, const asec_mat *tatt, double scale)
{
    size_t T = q->rows, S = k->rows;
    double beta = 0.0;

    if (!same_shape(work1, T, S) || !same_shape(work2, T, S) || !same_shape(att, T, S) ||
        !same_shape(dout, T, v->cols) || v->rows != S ||
        (tdout != NULL && !same_shape(tdout, T, v->cols)) ||
        (tatt != NULL && !same_shape(tatt, T, S)))
        ASEC_FAIL(ASEC_EBADLEN,
                  "sdpa_backward_tangent: shapes do not conform "
                  "(T %zu, S %zu, D %zu, DV %zu)",
                  T, S, q->cols, v->cols);
    if (T == 0 || S == 0)
        return ASEC_OK;
    // the backward pass was: dv += att^T @ dout, so tdv += tatt^T @ dout + att^T @ tdout
    if (tdv != NULL) {
        if (tatt != NULL)
            ASEC_TRY(asec_mat_gemm(tdv, 1.0, tatt, ASEC_TRANS, dout, ASEC_NOTRANS, 1.0));
        if (tdout != NULL)
            ASEC_TRY(asec_mat_gemm(tdv, 1.0, att, ASEC_TRANS, tdout, ASEC_NOTRANS, 1.0));
    }
    if (tdq == NULL && tdk == NULL)
        return ASEC_OK;
    // datt = dout @ v^T  -> work1;  tdatt = tdout @ v^T + dout @ tv^T  -> work2
    ASEC_TRY(asec_mat_gemm(work1, 1.0, dout, ASEC_NOTRANS, v, ASEC_TRANS, 0.0));
    if (tdout != NULL) {
        ASEC_TRY(asec_mat_gemm(work2, 1.0, tdout, ASEC_NOTRANS, v, ASEC_TRANS, 0.0));
        beta = 1.0;
    }
    if (tv != NULL) {
        ASEC_TRY(asec_mat_gemm(work2, 1.0, dout, ASEC_NOTRANS, tv, ASEC_TRANS, beta));
        beta = 1.0;
    }
    if (beta == 0.0)
        asec_mat_fill(work2, 0.0);
    // ds = att o (datt - r), r = rowsum(att o datt), so
    // tds = tatt o (datt - r) + att o (tdatt - tr), tr = rowsum(tatt o datt + att o
    // tdatt)
    for (size_t i = 0; i < T; i++) {
        const double *p = att->data + i * att->ld;
        const double *tp = tatt != NULL ? tatt->data + i * tatt->ld : NULL;
        double *d = work1->data + i * work1->ld, *td = work2->data + i * work2->ld;
        double r = 0.0, tr = 0.0;

        for (size_t j = 0; j < S; j++) {
            r += p[j] * d[j];
            tr += p[j] * td[j] + (tp != NULL ? tp[j] * d[j] : 0.0);
        }
        for (size_t j = 0; j < S; j++) {
            td[j] = (tp != NULL ? tp[j] * (d[j] - r) : 0.0) + p[j] * (td[j] - tr);
            d[j] = p[j] * (d[j] - r);
        }
    }
    // dq += scale ds @ k, so tdq += scale (tds @ k + ds @ tk)
    if (tdq != NULL) {
        ASEC_TRY(asec_mat_gemm(tdq, scale, work2, ASEC_NOTRANS, k, ASEC_NOTRANS, 1.0));
        if (tk != NULL)
            ASEC_TRY(
                asec_mat_gemm(tdq, scale, work1, ASEC_NOTRANS, tk, ASEC_NOTRANS, 1.0));
    }
    // dk += scale ds^T @ q, so tdk += scale (tds^T @ q + ds^T @ tq)
    if (tdk != NULL) {
        ASEC_TRY(asec_mat_gemm(tdk, scale, work2, ASEC_TRANS, q, ASEC_NOTRANS, 1.0));
        if (tq != NULL)
            ASEC_TRY(asec_mat_gemm(tdk, scale, work1, ASEC_TRANS, tq, ASEC_NOTRANS, 1.0));
    }
    return ASEC_OK;
}

/* ------------------------------------------------------------ attention, multi-head */

static int
check_heads(const char *fn, size_t C, size_t NH)
{
    if (NH == 0 || C % NH != 0)
        ASEC_FAIL(ASEC_EINVAL, "%s: C = %zu is not a positive multiple of NH = %zu", fn,
                  C, NH);
    return ASEC_OK;
}

/* The view of head h of part (0 q, 1 k, 2 v) of packed qkv for example b:
 * (T, HS) with ld 3C.  qkv[b, t, part*C + h*HS + i] */
static asec_mat
qkv_head(const double *qkv, size_t b, size_t part, size_t h, size_t T, size_t C,
         size_t HS)
{
    return cview(qkv + b * T * 3 * C + part * C + h * HS, T, HS, 3 * C);
}

/* Head h of example b: the q, k, v views of a packed (B, T, 3C) buffer, the
 * (T, T) block of a (B, NH, T, T) attention buffer, and the (T, HS) view of
 * a (B, T, C) buffer of head outputs (or their gradients). */
struct head {
    asec_mat q, k, v, att, out;
};

static struct head
head_at(const double *qkv, const double *att, const double *out, size_t b, size_t h,
        size_t T, size_t C, size_t NH)
{
    size_t HS = C / NH;
    struct head x;

    x.q = qkv_head(qkv, b, 0, h, T, C, HS);
    x.k = qkv_head(qkv, b, 1, h, T, C, HS);
    x.v = qkv_head(qkv, b, 2, h, T, C, HS);
    x.att = cview(att != NULL ? att + (b * NH + h) * T * T : NULL, T, T, T);
    x.out = cview(out != NULL ? out + b * T * C + h * HS : NULL, T, HS, C);
    return x;
}

int
asec_attn_forward(double *out, double *att, const double *qkv, size_t B, size_t T,
                  size_t C, size_t NH, int causal)
{
    ASEC_TRY(check_heads("attn_forward", C, NH));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < NH; h++) {
            struct head x = head_at(qkv, att, out, b, h, T, C, NH);

            ASEC_TRY(asec_attn_sdpa_forward(&x.out, &x.att, &x.q, &x.k, &x.v,
                                            1.0 / sqrt((double)(C / NH)), causal));
        }
    return ASEC_OK;
}

int
asec_attn_backward(double *dqkv, double *work, const double *dout, const double *qkv,
                   const double *att, size_t B, size_t T, size_t C, size_t NH)
{
    asec_mat w = asec_mat_view(work, T, T);

    ASEC_TRY(check_heads("attn_backward", C, NH));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < NH; h++) {
            struct head x = head_at(qkv, att, dout, b, h, T, C, NH);
            struct head d = head_at(dqkv, NULL, NULL, b, h, T, C, NH);

            ASEC_TRY(asec_attn_sdpa_backward(&d.q, &d.k, &d.v, &w, &x.out, &x.q, &x.k,
                                             &x.v, &x.att, 1.0 / sqrt((double)(C / NH))));
        }
    return ASEC_OK;
}

int
asec_attn_forward_tangent(double *tout, double *tatt, const double *qkv,
                          const double *tqkv, const double *att, size_t B, size_t T,
                          size_t C, size_t NH)
{
    ASEC_TRY(check_heads("attn_forward_tangent", C, NH));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < NH; h++) {
            struct head x = head_at(qkv, att, NULL, b, h, T, C, NH);
            struct head t = head_at(tqkv, tatt, tout, b, h, T, C, NH);

            ASEC_TRY(asec_attn_sdpa_forward_tangent(&t.out, &t.att, &x.q, &x.k, &x.v,
                                                    &x.att, &t.q, &t.k, &t.v,
                                                    1.0 / sqrt((double)(C / NH))));
        }
    return ASEC_OK;
}

int
asec_attn_backward_tangent(double *tdqkv, double *work, const double *dout,
                           const double *tdout, const double *qkv, const double *tqkv,
                           const double *att, const double *tatt, size_t B, size_t T,
                           size_t C, size_t NH)
{
    asec_mat w1 = asec_mat_view(work, T, T), w2 = asec_mat_view(work + T * T, T, T);

    ASEC_TRY(check_heads("attn_backward_tangent", C, NH));
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < NH; h++) {
            struct head x = head_at(qkv, att, dout, b, h, T, C, NH);
            struct head t = head_at(tqkv, tatt, tdout, b, h, T, C, NH);
            struct head td = head_at(tdqkv, NULL, NULL, b, h, T, C, NH);

            ASEC_TRY(asec_attn_sdpa_backward_tangent(
                &td.q, &td.k, &td.v, &w1, &w2, &x.out, tdout != NULL ? &t.out : NULL,
                &x.q, &x.k, &x.v, &x.att, &t.q, &t.k, &t.v, &t.att,
                1.0 / sqrt((double)(C / NH))));
        }
    return ASEC_OK;
}

/* ------------------------------------------------------------ softmax cross-entropy */

int
asec_attn_xent_forward(double *losses, double *probs, const double *logits,
                       const int64_t *labels, const double *soft, size_t N, size_t K)
{
    if ((labels == NULL) == (soft == NULL))
        ASEC_FAIL(ASEC_EINVAL, "xent: give exactly one of hard labels and soft targets");
    if (K == 0 && N > 0)
        ASEC_FAIL(ASEC_EINVAL, "xent: no classes (K = 0)");
    for (size_t n = 0; n < N; n++) {
        const double *z = logits + n * K;
        double *p = probs + n * K;
        double lse, loss = 0.0;

        if (labels != NULL && (labels[n] < 0 || (uint64_t)labels[n] >= K))
            ASEC_FAIL(ASEC_EINVAL, "xent: label %lld of row %zu is outside [0, %zu)",
                      (long long)labels[n], n, K);
        for (size_t k = 0; k < K; k++)
            if (!isfinite(z[k]))
                ASEC_FAIL(ASEC_ENUMERIC, "xent: logit %zu of row %zu is %g", k, n, z[k]);
        lse = asec_vec_logsumexp(z, K);
        for (size_t k = 0; k < K; k++)
            p[k] = exp(z[k] - lse);
        // loss = -sum_k t_k (z_k - lse)
        if (labels != NULL)
            loss = lse - z[labels[n]];
        else
            for (size_t k = 0; k < K; k++)
                loss -= soft[n * K + k] * (z[k] - lse);
        if (losses != NULL)
            losses[n] = loss;
    }
    return ASEC_OK;
}

/* sum_k t_k of row n. */
static double
target_mass(const int64_t *labels, const double *soft, size_t n, size_t K)
{
    double s = 0.0;

    if (labels != NULL)
        return 1.0;
    for (size_t k = 0; k < K; k++)
        s += soft[n * K + k];
    return s;
}

void
asec_attn_xent_backward(double *dlogits, double *dsoft, const double *dloss,
                        const double *logits, const double *probs, const int64_t *labels,
                        const double *soft, size_t N, size_t K)
{
    for (size_t n = 0; n < N; n++) {
        const double *p = probs + n * K, *z = logits + n * K;
        double w = dloss[n], mass = target_mass(labels, soft, n, K);

        // in the forward pass this was: loss = sum_k t_k lse(z) - sum_k t_k z_k
        if (dlogits != NULL) {
            for (size_t k = 0; k < K; k++)
                dlogits[n * K + k] += w * mass * p[k];
            if (labels != NULL)
                dlogits[n * K + labels[n]] -= w;
            else
                for (size_t k = 0; k < K; k++)
                    dlogits[n * K + k] -= w * soft[n * K + k];
        }
        if (dsoft != NULL && soft != NULL) {
            double lse = asec_vec_logsumexp(z, K);

            for (size_t k = 0; k < K; k++)
                dsoft[n * K + k] -= w * (z[k] - lse);
        }
    }
}

void
asec_attn_xent_tangent(double *tprobs, double *tdlogits, double *tdsoft,
                       const double *dloss, const double *probs, const double *tlogits,
                       const int64_t *labels, const double *soft, const double *tsoft,
                       size_t N, size_t K)
{
    for (size_t n = 0; n < N; n++) {
        const double *p = probs + n * K;
        const double *tz = tlogits != NULL ? tlogits + n * K : NULL;
        double w = dloss[n], mass = target_mass(labels, soft, n, K), tmass = 0.0;
        double pz = 0.0;

        if (tz != NULL)
            for (size_t k = 0; k < K; k++)
                pz += p[k] * tz[k];
        if (tsoft != NULL && soft != NULL)
            for (size_t k = 0; k < K; k++)
                tmass += tsoft[n * K + k];
        for (size_t k = 0; k < K; k++) {
            // tp = p o (tz - <p, tz>)
            double tp = tz != NULL ? p[k] * (tz[k] - pz) : 0.0;

            if (tprobs != NULL)
                tprobs[n * K + k] = tp;
            // the backward pass was: dz += w ((sum t) p - t)
            if (tdlogits != NULL) {
                double t = mass * tp + tmass * p[k];

                if (tsoft != NULL && soft != NULL)
                    t -= tsoft[n * K + k];
                tdlogits[n * K + k] += w * t;
            }
            // dsoft += -w (z - lse), so tdsoft += -w (tz - <p, tz>)
            if (tdsoft != NULL && soft != NULL && tz != NULL)
                tdsoft[n * K + k] -= w * (tz[k] - pz);
        }
    }
}

/* ------------------------------------------------------------ attention regression */

int
asec_attn_regression(double *loss, asec_mat *grad_x, asec_mat *grad_y, const asec_mat *x,
                     const asec_mat *y, const asec_mat *a1, const asec_mat *a2,
                     const asec_mat *a3, const asec_mat *e, double s, const asec_mat *w)
{
    size_t n = a1->rows, m = a2->rows, dv = y->cols;
    size_t nm, ndv, mdv, nd2, total;
    double *buf = NULL;
    asec_mat r, z, qm, h, c, t1;
    int rc = ASEC_OK;

    if (a1->cols != x->rows || a2->cols != x->cols || a3->rows != m ||
        a3->cols != y->rows || e->rows != n || e->cols != dv ||
        (w != NULL && !same_shape(w, n, m)) ||
        (grad_x != NULL && !same_shape(grad_x, x->rows, x->cols)) ||
        (grad_y != NULL && !same_shape(grad_y, y->rows, y->cols)))
        ASEC_FAIL(ASEC_EBADLEN,
                  "attn_regression: x (%zu, %zu), y (%zu, %zu), a1 (%zu, %zu), "
                  "a2 (%zu, %zu), a3 (%zu, %zu), e (%zu, %zu) do not conform",
                  x->rows, x->cols, y->rows, y->cols, a1->rows, a1->cols, a2->rows,
                  a2->cols, a3->rows, a3->cols, e->rows, e->cols);
    if (n > 0 && m == 0)
        ASEC_FAIL(ASEC_EBADLEN, "attn_regression: a2 has no rows (m = 0)");
    if (asec__mul_size(n, m, &nm) != 0 || asec__mul_size(n, dv, &ndv) != 0 ||
        asec__mul_size(m, dv, &mdv) != 0 || asec__mul_size(n, x->cols, &nd2) != 0 ||
        asec__mul_size(nm, 3, &total) != 0 || asec__add_size(total, ndv, &total) != 0 ||
        asec__add_size(total, mdv, &total) != 0 ||
        asec__add_size(total, nd2, &total) != 0 ||
        asec__mul_size(total, sizeof(double), &total) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "attn_regression: n = %zu, m = %zu, dv = %zu overflow", n,
                  m, dv);
    buf = asec__malloc(total);
    if (buf == NULL)
        return ASEC_ENOMEM;
    r = asec_mat_view(buf, n, m);           // a1 x a2^T, then the regulariser weights
    z = asec_mat_view(buf + nm, n, m);      // s r, then F = softmax rows
    qm = asec_mat_view(buf + 2 * nm, n, m); // q = c h^T, then P
    h = asec_mat_view(buf + 3 * nm, m, dv);
    c = asec_mat_view(buf + 3 * nm + mdv, n, dv);
    t1 = asec_mat_view(buf + 3 * nm + mdv + ndv, n, x->cols); // a1 x, (n, d2)

    // r = (a1 x) a2^T  (n, m)
    if ((rc = asec_mat_gemm(&t1, 1.0, a1, ASEC_NOTRANS, x, ASEC_NOTRANS, 0.0)) !=
            ASEC_OK ||
        (rc = asec_mat_gemm(&r, 1.0, &t1, ASEC_NOTRANS, a2, ASEC_TRANS, 0.0)) != ASEC_OK)
        goto done;
    for (size_t i = 0; i < nm; i++)
        z.data[i] = s * r.data[i];
    if ((rc = asec_mat_softmax_rows(&z, &z)) != ASEC_OK)
        goto done;
    // h = a3 y (m, dv);  c = F h - e (n, dv)
    if ((rc = asec_mat_gemm(&h, 1.0, a3, ASEC_NOTRANS, y, ASEC_NOTRANS, 0.0)) !=
            ASEC_OK ||
        (rc = asec_mat_gemm(&c, 1.0, &z, ASEC_NOTRANS, &h, ASEC_NOTRANS, 0.0)) != ASEC_OK)
        goto done;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dv; j++)
            c.data[i * dv + j] -= *asec_mat_at(e, i, j);
    if (loss != NULL) {
        double l = 0.0;

        for (size_t i = 0; i < ndv; i++)
            l += c.data[i] * c.data[i];
        l *= 0.5;
        if (w != NULL)
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < m; j++) {
                    double wr = *asec_mat_at(w, i, j) * r.data[i * m + j];

                    l += 0.5 * wr * wr;
                }
        *loss = l;
    }
    // grad_y = a3^T F^T c = a3^T (F^T c);  F^T c is (m, dv): reuse h
    if (grad_y != NULL) {
        if ((rc = asec_mat_gemm(&h, 1.0, &z, ASEC_TRANS, &c, ASEC_NOTRANS, 0.0)) !=
                ASEC_OK ||
            (rc = asec_mat_gemm(grad_y, 1.0, a3, ASEC_TRANS, &h, ASEC_NOTRANS, 0.0)) !=
                ASEC_OK)
            goto done;
        // restore h = a3 y for grad_x
        if ((rc = asec_mat_gemm(&h, 1.0, a3, ASEC_NOTRANS, y, ASEC_NOTRANS, 0.0)) !=
            ASEC_OK)
            goto done;
    }
    if (grad_x != NULL) {
        // q = c h^T (n, m);  P_j = S(f_j) q_j = f o q - <f, q> f;  then scale by s
        if ((rc = asec_mat_gemm(&qm, 1.0, &c, ASEC_NOTRANS, &h, ASEC_TRANS, 0.0)) !=
            ASEC_OK)
            goto done;
        for (size_t i = 0; i < n; i++)
            asec_vec_softmax_jvp(qm.data + i * m, z.data + i * m, qm.data + i * m, m);
        for (size_t i = 0; i < nm; i++)
            qm.data[i] *= s;
        // the regulariser adds w o w o r
        if (w != NULL)
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < m; j++) {
                    double wij = *asec_mat_at(w, i, j);

                    qm.data[i * m + j] += wij * wij * r.data[i * m + j];
                }
        // grad_x = a1^T (qm a2): qm a2 is (n, d2), into t1
        if ((rc = asec_mat_gemm(&t1, 1.0, &qm, ASEC_NOTRANS, a2, ASEC_NOTRANS, 0.0)) !=
                ASEC_OK ||
            (rc = asec_mat_gemm(grad_x, 1.0, a1, ASEC_TRANS, &t1, ASEC_NOTRANS, 0.0)) !=
                ASEC_OK)
            goto done;
    }
done:
    asec__free(buf);
    return rc;
}
