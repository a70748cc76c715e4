/* attnsec/attn.h - the transformer kernels: scaled-dot-product attention,
 * LayerNorm, GELU, linear layers, softmax cross-entropy, and the
 * single-layer attention regression of MATH.md section 2.6.
 *
 * This is the reference CPU implementation the model engine (asec_model(3))
 * is built from, in the manner of llm.c's train_gpt2.c: every layer is a
 * set of free functions with outputs first, then inputs, then sizes:
 *
 *   _forward            y = f(x; w)
 *   _backward           dx += (df/dx)^T dy,  dw += (df/dw)^T dy
 *   _forward_tangent    ty = (df/dx) tx + (df/dw) tw         (forward mode)
 *   _backward_tangent   the tangent of the _backward outputs along
 *                       (tx, tw, tdy): t(dx) += ..., t(dw) += ...
 *
 * The last two are the R-operator (Pearlmutter 1994) of the first two; run
 * after a forward and backward pass they give Hessian-vector products of a
 * whole network at the cost of about two more passes (forward-over-reverse).
 *
 * Conventions:
 *   - double, row-major, shapes outermost-first as in PyTorch.  Letters:
 *     N rows (= B*T flattened), T queries, S keys, C channels, NH heads,
 *     HS = C / NH head size, K classes, IN/OUT linear widths.
 *   - Weights follow torch.nn.Linear: weight is (OUT, IN), y = x W^T + b.
 *   - Every _backward and _backward_tangent ACCUMULATES (+=) into its
 *     outputs (llm.c); zero them first.  Any gradient output may be NULL
 *     to skip it.  Any tangent input may be NULL, meaning zero.
 *   - Outputs must not alias inputs unless a function says so.
 *   - Nothing here allocates, except asec_attn_regression().
 *
 * Packed QKV layout (per token, as llm.c and nn.MultiheadAttention's
 * in_proj_weight):
 *
 *     qkv[t] = [ q(0..C) | k(C..2C) | v(2C..3C) ],  head h of q is
 *              q[h*HS .. (h+1)*HS]
 */
#ifndef ATTNSEC_ATTN_H
#define ATTNSEC_ATTN_H

#include <stddef.h>
#include <stdint.h>

#include <attnsec/common.h>
#include <attnsec/mat.h>

ASEC_BEGIN_DECLS

/* ------------------------------------------------------------ linear */

/* out (N, OUT) = inp (N, IN) weight^T + bias, weight (OUT, IN), bias (OUT)
 * or NULL.  Returns ASEC_OK (ASEC_EBADLEN only on a broken invariant of
 * the BLAS wrapper).  Allocates nothing. */
ASEC_API int asec_attn_linear_forward(double *out, const double *inp,
                                      const double *weight, const double *bias, size_t N,
                                      size_t IN, size_t OUT) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3);

/* dinp (N, IN) += dout weight;  dweight (OUT, IN) += dout^T inp;
 * dbias (OUT) += column sums of dout.  Each output may be NULL. */
ASEC_API int asec_attn_linear_backward(double *dinp, double *dweight, double *dbias,
                                       const double *dout, const double *inp,
                                       const double *weight, size_t N, size_t IN,
                                       size_t OUT) ASEC_WARN_UNUSED ASEC_NONNULL(4, 5, 6);

/* tout (N, OUT) = tinp weight^T + inp tweight^T + tbias (overwritten).
 * tinp, tweight, tbias may be NULL (zero). */
ASEC_API int asec_attn_linear_forward_tangent(double *tout, const double *inp,
                                              const double *tinp, const double *weight,
                                              const double *tweight, const double *tbias,
                                              size_t N, size_t IN,
                                              size_t OUT) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 4);

/* The tangent of asec_attn_linear_backward() along (tinp, tweight, tdout):
 *   tdinp    += tdout weight + dout tweight
 *   tdweight += tdout^T inp + dout^T tinp
 *   tdbias   += column sums of tdout
 * Outputs may be NULL; tdout, tinp, tweight may be NULL (zero). */
ASEC_API int asec_attn_linear_backward_tangent(double *tdinp, double *tdweight,
                                               double *tdbias, const double *dout,
                                               const double *tdout, const double *inp,
                                               const double *tinp, const double *weight,
                                               const double *tweight, size_t N, size_t IN,
                                               size_t OUT) ASEC_WARN_UNUSED
    ASEC_NONNULL(4, 6, 8);

/* ------------------------------------------------------------ LayerNorm */

/* Per row of inp (N, C): mean, rstd = 1/sqrt(var + eps) (biased variance,
 * as torch.nn.LayerNorm), out = (inp - mean) * rstd * weight + bias.
 * mean and rstd (N) are cached for the backward pass.  Allocates nothing;
 * cannot fail. */
ASEC_API void asec_attn_layernorm_forward(double *out, double *mean, double *rstd,
                                          const double *inp, const double *weight,
                                          const double *bias, size_t N, size_t C,
                                          double eps) ASEC_NONNULL(1, 2, 3, 4, 5, 6);

/* dinp (N, C), dweight (C), dbias (C) += ...; each may be NULL. */
ASEC_API void asec_attn_layernorm_backward(double *dinp, double *dweight, double *dbias,
                                           const double *dout, const double *inp,
                                           const double *weight, const double *mean,
                                           const double *rstd, size_t N, size_t C)
    ASEC_NONNULL(4, 5, 6, 7, 8);

/* tout (N, C) = tangent of out along (tinp, tweight, tbias), overwritten.
 * tinp, tweight, tbias may be NULL. */
ASEC_API void asec_attn_layernorm_forward_tangent(
    double *tout, const double *inp, const double *tinp, const double *weight,
    const double *tweight, const double *tbias, const double *mean, const double *rstd,
    size_t N, size_t C) ASEC_NONNULL(1, 2, 4, 7, 8);

/* Tangent of asec_attn_layernorm_backward() along (tinp, tweight, tdout);
 * accumulates into tdinp, tdweight, tdbias (each may be NULL). */
ASEC_API void asec_attn_layernorm_backward_tangent(
    double *tdinp, double *tdweight, double *tdbias, const double *dout,
    const double *tdout, const double *inp, const double *tinp, const double *weight,
    const double *tweight, const double *mean, const double *rstd, size_t N, size_t C)
    ASEC_NONNULL(4, 6, 8, 10, 11);

/* ------------------------------------------------------------ GELU */

/* The exact GELU of torch.nn.GELU(): gelu(x) = x Phi(x) = 0.5 x (1 +
 * erf(x / sqrt 2)), elementwise over n values.  Derivatives:
 * gelu' = Phi + x phi, gelu'' = phi (2 - x^2).  _forward may also store
 * Phi(inp) in cdf (n, may be NULL); the other functions take that cache
 * as cdf to skip the erf (NULL: recompute).  out may alias inp in
 * _forward only. */
ASEC_API void asec_attn_gelu_forward(double *out, double *cdf, const double *inp,
                                     size_t n) ASEC_NONNULL(1, 3);
/* dinp += gelu'(inp) dout. */
ASEC_API void asec_attn_gelu_backward(double *dinp, const double *inp, const double *cdf,
                                      const double *dout, size_t n) ASEC_NONNULL(1, 2, 4);
/* tout = gelu'(inp) tinp (overwritten). */
ASEC_API void asec_attn_gelu_forward_tangent(double *tout, const double *inp,
                                             const double *cdf, const double *tinp,
                                             size_t n) ASEC_NONNULL(1, 2, 4);
/* tdinp += gelu'(inp) tdout + gelu''(inp) tinp dout; tdout, tinp may be
 * NULL. */
ASEC_API void asec_attn_gelu_backward_tangent(double *tdinp, const double *inp,
                                              const double *cdf, const double *tinp,
                                              const double *dout, const double *tdout,
                                              size_t n) ASEC_NONNULL(1, 2, 5);

/* ------------------------------------------------------------ attention, one head */

/* Scaled dot-product attention of one head on strided views:
 *   att (T, S) = softmax(scale q k^T) row by row, with entries j > i set
 *                to 0 when causal (then T must equal S)
 *   out (T, DV) = att v
 * q (T, D), k (S, D), v (S, DV).  The softmax subtracts the row maximum.
 * Returns ASEC_OK, ASEC_EBADLEN (shapes; causal with T != S) or
 * ASEC_ENUMERIC (a NaN or infinite logit; out and att unspecified).
 * Allocates nothing. */
ASEC_API int asec_attn_sdpa_forward(asec_mat *out, asec_mat *att, const asec_mat *q,
                                    const asec_mat *k, const asec_mat *v, double scale,
                                    int causal) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3, 4, 5);

/* Backward of asec_attn_sdpa_forward() given the cached att:
 *   datt = dout v^T;  ds = att o (datt - rowsum(att o datt))
 *   dq += scale ds k;  dk += scale ds^T q;  dv += att^T dout
 * Masked entries have att = 0, so the mask needs no flag here.  work is a
 * (T, S) scratch view.  dq, dk, dv may be NULL. */
ASEC_API int asec_attn_sdpa_backward(asec_mat *dq, asec_mat *dk, asec_mat *dv,
                                     asec_mat *work, const asec_mat *dout,
                                     const asec_mat *q, const asec_mat *k,
                                     const asec_mat *v, const asec_mat *att,
                                     double scale) ASEC_WARN_UNUSED
    ASEC_NONNULL(4, 5, 6, 7, 8, 9);

/* Tangent of the forward pass along (tq, tk, tv) (each may be NULL):
 *   ts = scale (tq k^T + q tk^T);  tatt = att o (ts - rowsum(att o ts))
 *   tout = tatt v + att tv
 * tatt (T, S) and tout (T, DV) are overwritten. */
ASEC_API int asec_attn_sdpa_forward_tangent(
    asec_mat *tout, asec_mat *tatt, const asec_mat *q, const asec_mat *k,
    const asec_mat *v, const asec_mat *att, const asec_mat *tq, const asec_mat *tk,
    const asec_mat *tv, double scale) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3, 4, 5, 6);

/* Tangent of asec_attn_sdpa_backward() along (tq, tk, tv, tatt, tdout);
 * tatt must come from asec_attn_sdpa_forward_tangent() with the same
 * (tq, tk, tv) (NULL when all three are NULL).  work1 and work2 are
 * (T, S) scratch views.  Accumulates into tdq, tdk, tdv (each may be
 * NULL). */
ASEC_API int asec_attn_sdpa_backward_tangent(
    asec_mat *tdq, asec_mat *tdk, asec_mat *tdv, asec_mat *work1, asec_mat *work2,
    const asec_mat *dout, const asec_mat *tdout, const asec_mat *q, const asec_mat *k,
    const asec_mat *v, const asec_mat *att, const asec_mat *tq, const asec_mat *tk,
    const asec_mat *tv, const asec_mat *tatt, double scale) ASEC_WARN_UNUSED
    ASEC_NONNULL(4, 5, 6, 8, 9, 10, 11);

/* ------------------------------------------------------------ attention, multi-head */

/* Multi-head causal or bidirectional self-attention on packed qkv
 * (B, T, 3C) (layout above), NH heads of size HS = C / NH, scale
 * 1/sqrt(HS):
 *   att (B, NH, T, T)  probabilities, cached for the backward pass
 *   out (B, T, C)      heads concatenated: out[b, t, h*HS + i]
 * Returns ASEC_OK, ASEC_EINVAL (NH == 0 or C not a multiple of NH) or
 * ASEC_ENUMERIC (non-finite logits).  Allocates nothing. */
ASEC_API int asec_attn_forward(double *out, double *att, const double *qkv, size_t B,
                               size_t T, size_t C, size_t NH, int causal) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3);

/* dqkv (B, T, 3C) += the gradient; work holds T*T doubles. */
ASEC_API int asec_attn_backward(double *dqkv, double *work, const double *dout,
                                const double *qkv, const double *att, size_t B, size_t T,
                                size_t C, size_t NH) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3, 4, 5);

/* tout (B, T, C) and tatt (B, NH, T, T) overwritten with the tangents
 * along tqkv (B, T, 3C). */
ASEC_API int asec_attn_forward_tangent(double *tout, double *tatt, const double *qkv,
                                       const double *tqkv, const double *att, size_t B,
                                       size_t T, size_t C, size_t NH) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3, 4, 5);

/* tdqkv (B, T, 3C) += the tangent of the gradient along (tqkv, tatt,
 * tdout); tdout may be NULL; work holds 2*T*T doubles. */
ASEC_API int asec_attn_backward_tangent(double *tdqkv, double *work, const double *dout,
                                        const double *tdout, const double *qkv,
                                        const double *tqkv, const double *att,
                                        const double *tatt, size_t B, size_t T, size_t C,
                                        size_t NH) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3, 5, 6, 7, 8);

/* ------------------------------------------------------------ softmax cross-entropy */

/* Per row i of logits (N, K): probs[i] = softmax(logits[i]) and
 *   losses[i] = -sum_k t_ik log probs[i, k]
 * with t the one-hot rows of labels (N) when labels is not NULL, else the
 * soft targets soft (N, K) (any non-negative weights; torch's
 * cross_entropy with probability targets).  Exactly one of labels and
 * soft must be given.  log probs is computed as z - logsumexp(z).
 * losses may be NULL.  Returns ASEC_OK, ASEC_EINVAL (both or neither of
 * labels/soft; a label outside [0, K)) or ASEC_ENUMERIC (a non-finite
 * logit). */
ASEC_API int asec_attn_xent_forward(double *losses, double *probs, const double *logits,
                                    const int64_t *labels, const double *soft, size_t N,
                                    size_t K) ASEC_WARN_UNUSED ASEC_NONNULL(2, 3);

/* Backward with per-row upstream weights dloss (N) (e.g. 1/N for a mean):
 *   dlogits[i] += dloss[i] (sum_k t_ik probs[i] - t_i)
 *   dsoft[i]   += dloss[i] (-log probs[i])        (soft targets only)
 * dlogits, dsoft may be NULL. */
ASEC_API void asec_attn_xent_backward(double *dlogits, double *dsoft, const double *dloss,
                                      const double *logits, const double *probs,
                                      const int64_t *labels, const double *soft, size_t N,
                                      size_t K) ASEC_NONNULL(3, 4, 5);

/* Tangent along (tlogits, tsoft) (either may be NULL) with dloss held
 * constant:
 *   tprobs = probs o (tz - <probs, tz>)          (overwritten; may be NULL)
 *   tdlogits += dloss ((sum t) tprobs + (sum tt) probs - tt)
 *   tdsoft   += dloss (-(tz - <probs, tz>))      (soft targets only)
 * Allocates nothing. */
ASEC_API void asec_attn_xent_tangent(double *tprobs, double *tdlogits, double *tdsoft,
                                     const double *dloss, const double *probs,
                                     const double *tlogits, const int64_t *labels,
                                     const double *soft, const double *tsoft, size_t N,
                                     size_t K) ASEC_NONNULL(4, 5);

/* ------------------------------------------------------------ attention regression */

/* The single-layer attention regression of Gao, Song, Wang, Yin
 * (arXiv 2309.07418) in the implementation form of MATH.md section 2.6:
 *
 *   Z = s a1 x a2^T (n, m),  F = softmax of each row of Z,  h = a3 y,
 *   c = F h - e (n, dv),     loss = 0.5 ||c||_F^2 + 0.5 ||w o (a1 x a2^T)||_F^2
 *   grad_x = s a1^T P a2 + a1^T (w o w o (a1 x a2^T)) a2,
 *            P_j = S(f_j) q_j,  q = c h^T,  S(f) = diag(f) - f f^T
 *   grad_y = a3^T F^T c
 *
 * Shapes: x (d1, d2), y (d3, dv), a1 (n, d1), a2 (m, d2), a3 (m, d3),
 * e (n, dv), w (n, m) or NULL (no regulariser).  loss, grad_x, grad_y may
 * each be NULL; the gradients are overwritten.  The loss carries the 0.5
 * factor (MATH.md T2: L = 1.032458066 at s = 1).  In the paper's model
 * a1 = a2 = a3 = A and x = Q K^T, y = V.
 * Returns ASEC_OK, ASEC_EBADLEN, ASEC_ENUMERIC (non-finite logits) or
 * ASEC_ENOMEM.  Allocates 3 n*m + n*dv + m*dv + n*d2 doubles, freed
 * before returning. */
ASEC_API int asec_attn_regression(double *loss, asec_mat *grad_x, asec_mat *grad_y,
                                  const asec_mat *x, const asec_mat *y,
                                  const asec_mat *a1, const asec_mat *a2,
                                  const asec_mat *a3, const asec_mat *e, double s,
                                  const asec_mat *w) ASEC_WARN_UNUSED
    ASEC_NONNULL(4, 5, 6, 7, 8, 9);

ASEC_END_DECLS

#endif /* ATTNSEC_ATTN_H */
