/* attnsec/model.h - the transformer engine: models with exact gradients,
 * per-example gradients and second-order products, and model files.
 *
 * Four kinds of model (asec_model_kind), all trained with a mean loss
 * over the batch, L = (1/B) sum_b l_b:
 *
 *   attn-regression  the single-layer attention regression of
 *                    arXiv 2309.07418 / 2311.13624 (MATH.md section 2.6):
 *                    parameters X = Q K^T and Y = V, both (d, d).  An
 *                    example is a token matrix A (n, d) with target E
 *                    (n, d); l = 0.5 ||softmax_rows(s A X A^T) A Y - E||_F^2
 *                    (A1 = A2 = A3 = A; optional causal mask).
 *   attn-block       the attention-only block of the DLG baseline
 *                    (ATTACKS.md section 7.1): x (T, C) (+ fixed sinusoid
 *                    or learned positions), then L layers of multi-head
 *                    attention x <- MHA(x Wq^T, x Wk^T, x Wv^T) without
 *                    bias, LayerNorm, MLP or residual; pooled, then a
 *                    linear head and softmax cross-entropy.
 *   vit              a vision transformer: image (H, W) cut into P = p*p
 *                    patches (row-major over the grid, pixels row-major in
 *                    a patch), linear patch embedding P -> C, optional CLS
 *                    token, learned positions, L pre-LayerNorm blocks, a
 *                    final LayerNorm, pooling, linear head, cross-entropy.
 *   text             the same blocks on token embeddings (vocabulary V)
 *                    with learned positions; with pooling "none" and
 *                    causal attention it is a next-token model (K = V).
 *
 * A pre-LayerNorm block is (GPT-2 / ViT):
 *     x = x + proj(MHA(ln1(x) Wqkv^T + bqkv)),    x = x + mlp(ln2(x)),
 *     mlp(h) = gelu(h Wfc^T + bfc) Wproj^T + bproj  (exact erf GELU)
 * with scale 1/sqrt(HS) in every head, LayerNorm eps arch.ln_eps.
 *
 * Pooling: "mean" over tokens, "cls" (token 0: the learned CLS token of a
 * vit, the first token otherwise) or "none" (one prediction per token:
 * R = T rows per example).  The loss of an example is the mean of its R
 * rows' cross-entropies.  Labels are hard (int64 class ids, (B) or (B, T))
 * or soft (non-negative weights (B, K) or (B, T, K); torch.nn.functional.
 * cross_entropy with probability targets).
 *
 * Spaces and flat vectors.  Every parameter lives in one arena of
 * P = asec_model_param_count() doubles, tensors in the order of
 * asec_model_tensor_get() (names: attnsec-formats(5) and asec_model(3)).  Any
 * flat vector of P doubles (a gradient, a direction, a row of per-example
 * gradients) uses the same layout.  The "input" of an example is
 *     attn-regression, attn-block: x (T, C)
 *     vit:                         the image (H, W)
 *     text:                        the token-embedding sequence (T, C), before
 *                                  positions are added; token ids map to
 *                                  rows of tok_emb.weight
 * and the "soft" space is the soft labels (or the regression targets), so
 * the gradient-leakage attacks can optimise inputs and labels together.
 *
 * Second-order products.  asec_model_hvp() applies the Hessian of L with
 * respect to (theta, input, soft) to a direction (v, u, w) by
 * forward-over-reverse (the R-operator of every kernel, attnsec/attn.h):
 * about three times the cost of one forward and backward pass.  Its two
 * uses for gradient matching are named:
 *     asec_model_grad_dot_dinput():  grad_input <grad_theta L, v>
 *     asec_model_grad_jvp():         d(grad_theta L)/d(input) u
 *
 * Memory.  The handle owns its parameters, a gradient arena of P doubles,
 * and activation arenas sized for the largest batch seen so far:
 * O(L B T (C + NH T) + P) doubles (twice that after asec_model_hvp()).  A
 * call with a larger batch (re)allocates them; calls with the same or a
 * smaller batch allocate nothing.
 *
 * Threads: a handle must not be used by two threads at once (calls write
 * its activation arenas); give each thread an asec_model_clone().
 */
#ifndef ATTNSEC_MODEL_H
#define ATTNSEC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <attnsec/common.h>
#include <attnsec/rng.h>

ASEC_BEGIN_DECLS

typedef enum asec_model_kind {
    ASEC_MODEL_ATTN_REGRESSION = 0, /* "attn-regression" */
    ASEC_MODEL_ATTN_BLOCK = 1,      /* "attn-block" */
    ASEC_MODEL_VIT = 2,             /* "vit" */
    ASEC_MODEL_TEXT = 3             /* "text" */
} asec_model_kind;

typedef enum asec_model_pool {
    ASEC_MODEL_POOL_MEAN = 0, /* "mean" */
    ASEC_MODEL_POOL_CLS = 1,  /* "cls" */
    ASEC_MODEL_POOL_NONE = 2  /* "none": a prediction per token */
} asec_model_pool;

typedef enum asec_model_pos {
    ASEC_MODEL_POS_LEARNED = 0, /* "learned": pos_emb.weight (T, C) */
    ASEC_MODEL_POS_NONE = 1,    /* "none" */
    ASEC_MODEL_POS_SIN = 2      /* "sin": fixed, pe[t, 2i] = sin(t / 10000^(2i/C)),
                                   pe[t, 2i+1] = cos(same) */
} asec_model_pos;

/* An architecture: a plain value, written to model files as JSON
 * (asec_model_arch_to_json()).  Start from asec_model_arch_default(). */
typedef struct asec_model_arch {
    unsigned int version; /* ASEC_MODEL_ARCH_VERSION */
    asec_model_kind kind;
    size_t channels;   /* C, the model width (attn-regression: d) */
    size_t layers;     /* L (attn-regression: 1) */
    size_t heads;      /* NH; C must be a multiple (attn-regression: 1) */
    size_t seq_len;    /* T: tokens per example.  text: the context
                          (rows of pos_emb); attn-block and
                          attn-regression: the default length, any
                          length is accepted unless positions are
                          learned; vit: must equal the number of
                          patches (+ 1 with a CLS token) */
    size_t classes;    /* K (not used by attn-regression) */
    size_t vocab;      /* V (text only) */
    size_t image_h;    /* vit: image rows */
    size_t image_w;    /* vit: image columns */
    size_t patch;      /* vit: patch side p; must divide image_h, image_w */
    size_t mlp_hidden; /* vit, text: MLP width (usually 4C) */
    int causal;        /* 1: token t attends to tokens <= t */
    asec_model_pool pool;
    asec_model_pos pos;
    double scale;  /* attn-regression: logit scale s (1, 1/sqrt(d),
                      1/d, ...); must be finite */
    double ln_eps; /* vit, text: LayerNorm eps (> 0) */
} asec_model_arch;

#define ASEC_MODEL_ARCH_VERSION 1

/* The metadata key of a model file's architecture JSON. */
#define ASEC_MODEL_ARCH_KEY "attnsec.arch"

/* The documented defaults of each kind (attnsec-model(1)):
 *   attn-regression  d = 8, n = 8, s = 1/sqrt(d), not causal
 *   attn-block       C = 16, T = 8, NH = 1, L = 1, K = 4, mean pooling,
 *                    no positions (the DLG baseline's default instance)
 *   vit              8x8 images, p = 2 (T = 16), C = 32, L = 2, NH = 4,
 *                    MLP 128, K = 10, mean pooling (the shipped digits)
 *   text             V = 2049 (the shipped corpus), T = 32, C = 64, L = 2,
 *                    NH = 4, MLP 256, causal, pooling none, K = V (a
 *                    next-token model)
 * ASEC_EINVAL for an unknown kind. */
ASEC_API int asec_model_arch_default(asec_model_arch *out,
                                     asec_model_kind kind) ASEC_WARN_UNUSED
    ASEC_NONNULL(1);

/* ASEC_OK when arch describes a valid model, else ASEC_EINVAL with the
 * rule in asec_errmsg() ("heads 3 does not divide channels 16").  Also
 * ASEC_ELIMIT when the parameter count overflows or exceeds 2^40. */
ASEC_API int asec_model_arch_check(const asec_model_arch *arch) ASEC_WARN_UNUSED
    ASEC_NONNULL(1);

/* Write arch as a one-line JSON object into buf (cap bytes, NUL included),
 * e.g. {"format":"attnsec-model","version":1,"kind":"vit",...} (all keys
 * always present; see attnsec-formats(5)).  Returns ASEC_OK, ASEC_EINVAL
 * (invalid arch) or ASEC_ELIMIT (cap too small; 1024 always suffices). */
ASEC_API int asec_model_arch_to_json(char *buf, size_t cap,
                                     const asec_model_arch *arch) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 3);

/* Parse the JSON of asec_model_arch_to_json().  Strict: unknown or
 * duplicate keys, missing keys, wrong types, a format other than
 * "attnsec-model" or a newer version are ASEC_EFORMAT; an architecture
 * that fails asec_model_arch_check() is ASEC_EFORMAT too.  *out is
 * unspecified on failure. */
ASEC_API int asec_model_arch_from_json(asec_model_arch *out, const char *json,
                                       size_t len) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Names of kinds, poolings, positions ("vit", "mean", "sin"); "?" for a bad
 * value.  The parsers return ASEC_EINVAL for an unknown name. */
ASEC_API const char *asec_model_kind_name(asec_model_kind kind);
ASEC_API const char *asec_model_pool_name(asec_model_pool pool);
ASEC_API const char *asec_model_pos_name(asec_model_pos pos);
ASEC_API int asec_model_kind_parse(asec_model_kind *out,
                                   const char *name) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);
ASEC_API int asec_model_pool_parse(asec_model_pool *out,
                                   const char *name) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);
ASEC_API int asec_model_pos_parse(asec_model_pos *out, const char *name) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* ------------------------------------------------------------ handles */

typedef struct asec_model asec_model;

/* A model with all parameters zero.  *out is owned by the caller and freed
 * with asec_model_free().  Returns ASEC_OK, ASEC_EINVAL / ASEC_ELIMIT (as
 * asec_model_arch_check()) or ASEC_ENOMEM.  Allocates the parameter and
 * gradient arenas (2 P doubles) and the tensor table. */
ASEC_API int asec_model_alloc(asec_model **out,
                              const asec_model_arch *arch) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* A copy with the same parameters (activation arenas are not copied). */
ASEC_API int asec_model_clone(asec_model **out, const asec_model *m) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* Free everything; NULL is a no-op. */
ASEC_API void asec_model_free(asec_model *m);

/* Random initialisation from rng (borrowed):
 *   vit              weights N(0, 1/fan_in) (a linear map's input width;
 *                    LeCun), positions and the CLS token N(0, 1/(p p)) (the
 *                    patch embedding's fan-in), biases 0, LayerNorm weight 1
 *                    and bias 0
 *   text             weights N(0, 0.02^2), the two residual projections
 *                    of each block N(0, 0.02^2 / (2L)) (GPT-2), biases 0,
 *                    LayerNorm weight 1 and bias 0, embeddings N(0, 0.02^2)
 *   attn-block       Wq, Wk, Wv, head weight N(0, 1/C), head bias
 *                    N(0, 0.01), learned positions N(0, 0.02^2)
 *                    (ATTACKS.md section 7.1)
 *   attn-regression  X and Y N(0, 1/d)
 * Draws in tensor order.  Allocates nothing; cannot fail. */
ASEC_API void asec_model_init_params(asec_model *m, asec_rng *rng) ASEC_NONNULL(1, 2);

/* The architecture (owned by m). */
ASEC_API const asec_model_arch *asec_model_get_arch(const asec_model *m) ASEC_NONNULL(1);

/* P, and the parameter and gradient arenas (P doubles each, owned by m,
 * valid until asec_model_free(); callers may read and write them). */
ASEC_API size_t asec_model_param_count(const asec_model *m) ASEC_NONNULL(1);
ASEC_API double *asec_model_params(asec_model *m) ASEC_NONNULL(1);
ASEC_API double *asec_model_grads(asec_model *m) ASEC_NONNULL(1);

/* A named parameter tensor: a view into any flat P-vector at offset. */
typedef struct asec_model_tensor {
    const char *name; /* e.g. "blocks.0.attn.qkv.weight"; owned by m */
    size_t ndim;      /* 1 or 2 */
    size_t shape[2];  /* PyTorch order: weights are (out, in) */
    size_t offset;    /* first element in the flat vector */
    size_t size;      /* shape[0] (* shape[1]) */
} asec_model_tensor;

ASEC_API size_t asec_model_tensor_count(const asec_model *m) ASEC_NONNULL(1);
/* Tensor i in arena order, or ASEC_EINVAL when i is out of range. */
ASEC_API int asec_model_tensor_get(const asec_model *m, size_t i,
                                   asec_model_tensor *out) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 3);
/* The tensor called name, or ASEC_EINVAL ("no tensor 'x' in a vit model"). */
ASEC_API int asec_model_tensor_find(const asec_model *m, const char *name,
                                    asec_model_tensor *out) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3);

/* ------------------------------------------------------------ batches */

/* One batch of B examples.  All pointers are borrowed; give exactly what
 * the kind needs:
 *   x       continuous inputs (B, input shape): attn-regression and
 *           attn-block (B, T, C); vit (B, H, W); text (B, T, C) token
 *           embeddings.  NULL for text given tokens.
 *   tokens  text: (B, T) ids in [0, V) instead of x
 *   labels  hard labels: (B) with pooling mean/cls, (B, T) with none
 *   soft    soft labels (B, K) or (B, T, K) instead of labels; for
 *           attn-regression the targets E (B, T, C) (required)
 * labels and soft may both be NULL for asec_model_forward() without a
 * loss.  T = 0 means arch.seq_len (vit: always the patch count). */
typedef struct asec_model_batch {
    size_t B;
    size_t T;
    const double *x;
    const int64_t *tokens;
    const int64_t *labels;
    const double *soft;
} asec_model_batch;

/* A point or direction in (params, input, soft) space: params (P), input
 * (B, input shape), soft (same shape as the batch's soft).  As an output,
 * NULL members are not computed; as a direction, NULL members are zero. */
typedef struct asec_model_vec {
    double *params;
    double *input;
    double *soft;
} asec_model_vec;

typedef struct asec_model_cvec {
    const double *params;
    const double *input;
    const double *soft;
} asec_model_cvec;

/* Doubles per example of the input (T C, or H W for vit), rows of
 * predictions per example R (1, or T with pooling none), and the
 * effective T of a batch (T = 0 -> seq_len; the patch count for vit). */
ASEC_API size_t asec_model_input_size(const asec_model *m, size_t T) ASEC_NONNULL(1);
ASEC_API size_t asec_model_rows(const asec_model *m, size_t T) ASEC_NONNULL(1);
ASEC_API size_t asec_model_tokens(const asec_model *m, size_t T) ASEC_NONNULL(1);
/* Outputs per example: R K (classifiers) or T C (attn-regression). */
ASEC_API size_t asec_model_output_size(const asec_model *m, size_t T) ASEC_NONNULL(1);

/* Every call below validates the batch first and returns ASEC_EBADLEN
 * with both shapes in the message when it does not fit the model ("batch
 * has T = 40 tokens, the model's positions allow at most 32"), ASEC_EINVAL
 * for a missing or extra member, a token or label out of range, or a
 * negative soft label, ASEC_ENUMERIC when a non-finite value reaches a
 * softmax, and ASEC_ENOMEM when an arena cannot grow.  On failure the
 * outputs are unspecified. */

/* Forward pass.  loss: the mean loss (needs labels, soft or targets);
 * losses (B): per-example losses; out (B, output size): logits (or the
 * regression outputs).  Each may be NULL. */
ASEC_API int asec_model_forward(asec_model *m, double *loss, double *losses, double *out,
                                const asec_model_batch *b) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 5);

/* An attention hook: called by asec_model_forward_hook() for every layer
 * right after the layer's multi-head attention, with
 *   out    (B, T, C) the heads' outputs softmax(q k^T / sqrt(HS)) v,
 *          concatenated; what the rest of the pass uses (may be replaced)
 *   att    (B, NH, T, T) the attention probabilities (may be replaced;
 *          the pass itself does not read them again)
 *   qkv    (B, T, 3C) [q | k | v] per token, head h in columns
 *          h HS .. (h + 1) HS of each part (HS = C / NH); read only
 * A hook returns ASEC_OK, or an ASEC_E* status that aborts the pass and
 * is returned (asec_errmsg() keeps the message of the failing library
 * call the hook made, if any). */
typedef int (*asec_model_attn_hook)(void *ctx, size_t layer, double *out, double *att,
                                    const double *qkv, size_t B, size_t T, size_t C,
                                    size_t NH);

/* asec_model_forward() with hook (may be NULL: plain forward) called after
 * each layer's attention, so a layer can be replaced by, for example, a
 * differentially private release (asec_dp_attn(3)).  ctx is passed
 * through.  attn-regression models take no hook (ASEC_EINVAL).  After a
 * hooked pass the cached activations belong to the modified pass; the
 * next call recomputes them.  Errors as asec_model_forward(), plus the
 * hook's status. */
ASEC_API int asec_model_forward_hook(asec_model *m, double *loss, double *losses,
                                     double *out, const asec_model_batch *b,
                                     asec_model_attn_hook hook,
                                     void *ctx) ASEC_WARN_UNUSED ASEC_NONNULL(1, 5);

/* Forward and backward: loss (may be NULL) and the gradient of the mean
 * loss L with respect to the parameters (grad->params, P), the inputs
 * (grad->input) and the soft labels or targets (grad->soft), each
 * overwritten; NULL members are skipped (and cost nothing). */
ASEC_API int asec_model_grad(asec_model *m, double *loss, const asec_model_vec *grad,
                             const asec_model_batch *b) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 3, 4);

/* Per-example gradients: row b of grads (B, P) is grad_theta l_b, the
 * gradient of example b's own loss (NOT divided by B: their mean is the
 * batch gradient), for DP-SGD clipping.  losses (B) may be NULL.  Cost:
 * one batched forward pass and one backward pass whose weight-gradient
 * products are split per example, about the flops of asec_model_grad();
 * no B separate passes. */
ASEC_API int asec_model_grad_per_example(asec_model *m, double *losses, double *grads,
                                         const asec_model_batch *b) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 3, 4);

/* Hessian-vector product of the mean loss L over z = (theta, input, soft):
 * out = (d^2 L / dz^2) dir, i.e. the directional derivative of
 * (grad_theta L, grad_input L, grad_soft L) along dir.  NULL members of
 * dir are zero directions; NULL members of out are not computed.  The
 * first-order gradient is computed too: grad (may be NULL) receives it.
 * Exact (R-operator), about 3x the cost of asec_model_grad().
 *
 * With token ids (text), the input space is still the embeddings
 * e = tok_emb[tokens], which move with theta: out->input is the tangent of
 * dL/de including that path, and an input direction is ASEC_EINVAL (pass
 * the embeddings as x to differentiate with respect to free inputs). */
ASEC_API int asec_model_hvp(asec_model *m, const asec_model_vec *out,
                            const asec_model_vec *grad, const asec_model_cvec *dir,
                            const asec_model_batch *b) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 4, 5);

/* grad_input <grad_theta L, v> (and grad_soft of the same into dsoft, may
 * be NULL), for a direction v (P) in parameter space: the gradient of the
 * DLG objective 0.5 ||grad_theta L - G||^2 is this with v = grad_theta L -
 * G.  dinput is (B, input shape). */
ASEC_API int asec_model_grad_dot_dinput(asec_model *m, double *dinput, double *dsoft,
                                        const double *v,
                                        const asec_model_batch *b) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 4, 5);

/* d(grad_theta L)/d(input) u + d(grad_theta L)/d(soft) w into out (P), for
 * directions u (input shape) and w (soft shape, may be NULL): the
 * Jacobian-vector product Levenberg-Marquardt / Gauss-Newton needs. */
ASEC_API int asec_model_grad_jvp(asec_model *m, double *out, const double *u,
                                 const double *w,
                                 const asec_model_batch *b) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 5);

/* ------------------------------------------------------------ files */

/* Write m as a safetensors file: every parameter tensor as F64 under its
 * name, in arena order, and the architecture JSON under metadata key
 * ASEC_MODEL_ARCH_KEY (plus "attnsec.content" = "model").  Atomic
 * (asec_afile(3)).  Returns ASEC_OK or the errors of asec_io_st_write(). */
ASEC_API int asec_model_save(const asec_model *m, const char *path) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* Load a model file: the architecture from the metadata, then every
 * tensor, which must all be present with the architecture's shapes, with
 * no extra tensors; any dtype is converted to double.  Returns ASEC_OK,
 * the errors of asec_io_open() (ASEC_ENOENT, ASEC_EFORMAT, ...), or
 * ASEC_EFORMAT for a missing or bad architecture, a missing, extra or
 * misshaped tensor ("tensor 'head.weight' has shape (4, 16), the
 * architecture needs (10, 16)"). */
ASEC_API int asec_model_load(asec_model **out, const char *path) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* Write flat P-vectors with the parameter names: nstack == 0 writes one
 * vector (data, P doubles) with the parameters' shapes (a shared
 * gradient); nstack >= 1 writes nstack stacked vectors (data (nstack, P))
 * as tensors of shape (nstack, shape...) (per-example gradients).  content
 * goes to metadata "attnsec.content" (e.g. "gradient"), with the
 * architecture.  Allocates one tensor's worth of doubles at a time. */
ASEC_API int asec_model_save_vectors(const asec_model *m, const char *path,
                                     const double *data, size_t nstack,
                                     const char *content) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3, 5);

/* Read a file written by asec_model_save() or asec_model_save_vectors()
 * with nstack == 0 (e.g. an observed gradient) into out (P) by tensor
 * name.  Every parameter must be present with its shape; extra tensors
 * are ASEC_EFORMAT.  The file's architecture, if any, is not compared:
 * only names and shapes matter. */
ASEC_API int asec_model_read_vector(const asec_model *m, const char *path,
                                    double *out) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3);

ASEC_END_DECLS

#endif /* ATTNSEC_MODEL_H */
