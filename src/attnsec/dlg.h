/* attnsec/dlg.h - gradient leakage: recover a client's private batch
 * (inputs and labels) from the parameter gradient it shared.
 *
 * DLG (Zhu, Liu, Han 2019, arXiv 1906.08935), iDLG labels (Zhao et al.
 * 2020, arXiv 2001.02610) and the cosine loss of Inverting Gradients
 * (Geiping et al. 2020, arXiv 2003.14053), applied to the engine's models
 * (asec_model(3)): the attention regression of arXiv 2311.13624 (MATH.md
 * section 3.2), the attention-only block of ATTACKS.md section 7.1, the
 * vit and text transformers.
 *
 * Threat model: an honest-but-curious server knows the weights theta and
 * receives G = grad_theta L(theta; x, y) (P doubles, the layout of
 * asec_model_params()) for a batch of B examples of T tokens, possibly
 * defended (asec_dlg_defend_*()).  The attack finds (x', y') with
 * g' = grad_theta L(theta; x', y') matching G:
 *
 *   euclid   f = 0.5 ||g' - G||^2,             residual r = g' - G
 *   cos      f = 1 - <g', G> / (|g'| |G|),     residual r = g'/|g'| - G/|G|
 *
 * The exact gradient of f is grad_input <g', v> with v = df/dg'
 * (asec_model_grad_dot_dinput()); the residual's Jacobian-vector products
 * are asec_model_grad_jvp().  Each random start runs L-BFGS (liblbfgs) on
 * f with an optional norm prior annealed to zero (a warm start and every
 * fourth start, 1, 5, 9, ..., without it), then a Levenberg-Marquardt polish on r with
 * the exact Jacobian (one JVP per unknown) every 8 iterations and
 * Broyden rank-1 updates in between.  Starts in the span are scaled so
 * that tokens have the norms of full-space starts.  With a box, L-BFGS
 * matches the gradient of the projected input (plus a penalty on the
 * distance to the box) and LM holds the inputs at a bound that its
 * gradient pushes outwards; with alternate, some starts run on the other
 * loss before an LM polish on the requested one.
 *
 * Closed-form information used before optimising:
 *   labels   iDLG: with B = 1 and cross-entropy the head-bias gradient is
 *            p - onehot(y) (mean over rows), negative only at y.
 *   span     attn-block without positions: the first layer's query, key
 *            and value weight gradients (C, C) have rows in
 *            span{x_bt}; attn-regression: the columns of G_X, G_X^T and
 *            G_Y.  When B T < C the top B T right singular vectors of the
 *            stacked tensors are a basis U (C, r) of the token span
 *            (ATTACKS.md section 0.3), and the unknowns shrink from B T C
 *            to B T r (x_bt = U z_bt).
 *
 * Shapes follow asec_model(3): an example's input is (T, C) for
 * attn-regression, attn-block and text embeddings, (H, W) for vit.
 */
#ifndef ATTNSEC_DLG_H
#define ATTNSEC_DLG_H

#include <stddef.h>
#include <stdint.h>

#include <attnsec/common.h>
#include <attnsec/model.h>
#include <attnsec/rng.h>

ASEC_BEGIN_DECLS

typedef enum asec_dlg_loss {
    ASEC_DLG_EUCLID = 0, /* "euclid" */
    ASEC_DLG_COS = 1     /* "cos": one global cosine */
} asec_dlg_loss;

typedef enum asec_dlg_labels {
    ASEC_DLG_LABELS_AUTO = 0,  /* "auto": known if given, iDLG if B = 1 and
                                  the model is a classifier, else joint */
    ASEC_DLG_LABELS_IDLG = 1,  /* "idlg": argmin of the head-bias gradient */
    ASEC_DLG_LABELS_JOINT = 2, /* "joint": soft labels (or targets) optimised
                                  with the inputs */
    ASEC_DLG_LABELS_KNOWN = 3  /* "known": the problem's labels / targets */
} asec_dlg_labels;

/* Attack settings; start from asec_dlg_options_default(). */
typedef struct asec_dlg_options {
    asec_dlg_loss loss;
    asec_dlg_labels labels;
    int span;             /* 1: optimise inside the analytic token span when
                             the model leaks it and B T < C (default 1) */
    size_t restarts;      /* random starts, >= 1 (default 64); the attack stops
                             at the first start whose relative residual is
                             <= tol */
    size_t lbfgs_iters;   /* L-BFGS iterations per start (default 100) */
    size_t lbfgs_history; /* L-BFGS memory (default 20) */
    size_t lm_iters;      /* LM iterations per start (default 100; 0: none);
                             a start stalled far from a solution stops early */
    double init_std;      /* starts are N(0, init_std^2) per coordinate
                             (default 1) */
    double prior;         /* weight of the norm prior 0.5 prior ||x||^2 / N
                             (N unknowns, f scaled by 1/|G|^2 for euclid),
                             divided by 10 per L-BFGS stage for 3 stages,
                             then 0 (default 0.1) */
    double box_lo;        /* box for the inputs (images): steps are projected
                             onto [box_lo, box_hi]; box_lo >= box_hi: none */
    double box_hi;        /* (default 0, 0: no box) */
    double tol;           /* success threshold on ||r|| / ||r_0|| where r_0 is
                             the residual's target scale (|G| or 1 for cos)
                             (default 1e-9) */
    int diagnostics;      /* 1: the SVD of the Jacobian at the result
                             (sigma_min, cond, noise gain) (default 1) */
    int alternate;        /* 1: starts 1, 3, 4, 6, 9, 11, 12, ... ((s + s/4)
                             odd) run L-BFGS and LM on the other loss, then
                             an LM polish on the requested one; 0: never;
                             -1: auto, on for vit models, where the cosine
                             loss finds images the Euclidean one misses on
                             trained models (default -1) */
} asec_dlg_options;

/* Fill the defaults documented above.  Cannot fail. */
ASEC_API void asec_dlg_options_default(asec_dlg_options *o) ASEC_NONNULL(1);

/* The observed data.  All pointers are borrowed. */
typedef struct asec_dlg_problem {
    size_t B;            /* examples in the batch (>= 1) */
    size_t T;            /* tokens per example (0: the model's seq_len) */
    const double *grad;  /* the observed gradient G (P) */
    const int64_t *labels; /* known hard labels (B) (or (B, T) with pooling
                              none), or NULL */
    const double *soft;  /* known soft labels, or the targets E (B, T, C)
                            of attn-regression, or NULL */
    const double *init;  /* inputs (B, input) for the first start (a warm
                            start; projected onto the span), or NULL */
} asec_dlg_problem;

/* What the attack found.  Owned by the caller; free with
 * asec_dlg_result_free(). */
typedef struct asec_dlg_result {
    size_t B, T;
    size_t input_size;   /* doubles per example */
    double *x;           /* recovered inputs (B, input_size) */
    size_t soft_size;    /* doubles per example of soft (0: none) */
    double *soft;        /* recovered soft labels / targets, or NULL */
    int64_t *labels;     /* recovered hard labels (B), or NULL */
    asec_dlg_labels label_mode; /* the mode used (AUTO resolved) */
    double loss;         /* final matching loss f */
    double residual;     /* final ||r|| / scale (the success measure) */
    int converged;       /* residual <= tol */
    size_t evals;        /* objective evaluations (forward, backward and
                            mixed second-order product) */
    size_t jvps;         /* Jacobian-vector products (LM) */
    size_t lm_iters;     /* LM iterations, all starts */
    size_t starts;       /* random starts run */
    size_t best_start;   /* the start the result comes from */
    size_t unknowns;     /* optimised coordinates */
    size_t equations;    /* P */
    size_t span_rank;    /* r of the token span, 0 when not used */
    double sigma_min;    /* of the residual Jacobian at the result (NAN
                            without diagnostics) */
    double cond;         /* sigma_max / sigma_min */
    double noise_gain;   /* tr((J^T J)^-1): E||dx||^2 ~ s^2 noise_gain for
                            N(0, s^2) noise on every gradient entry */
} asec_dlg_result;

ASEC_API void asec_dlg_result_free(asec_dlg_result *r);

/* Run the attack on model m (its parameters are the known weights; its
 * activation arenas are used).  rng (borrowed) draws the starts.
 * Returns ASEC_OK (also when no start converged: see res->converged),
 * ASEC_EINVAL (B = 0, a missing gradient, labels given for a model without
 * labels, joint labels for pooling none, options out of range, vit with a
 * token span, ...), ASEC_EBADLEN (batch shape does not fit the model),
 * ASEC_ENUMERIC (non-finite observed gradient) or ASEC_ENOMEM.
 * Allocates the result and O(P (unknowns + 4)) doubles of workspace. */
ASEC_API int asec_dlg_attack(asec_dlg_result **res, asec_model *m,
                             const asec_dlg_problem *pb, const asec_dlg_options *o,
                             asec_rng *rng) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3, 4, 5);

/* The number of random starts (asec_dlg_options.restarts) that makes a
 * noiseless recovery reliable on model m for B examples of T tokens (0:
 * the model's seq_len).  64 (the default) for the classifiers; for
 * attn-regression, where a start succeeds with probability about 1/300 at
 * B T = 8 tokens (asec_dlg(3), RESULTS), 1024 up to 64 unknowns and
 * max(64, 65536 / unknowns) beyond, with unknowns = B T min(B T, C) (the
 * token-span coordinates).  The attack stops at the first converged start,
 * so the count bounds the time of the failures only.  Cannot fail. */
ASEC_API size_t asec_dlg_suggest_restarts(const asec_model *m, size_t B, size_t T)
    ASEC_NONNULL(1);

/* The matching loss at (x, soft) and its exact gradient: dx (B, input)
 * and dsoft (soft shape), each may be NULL.  batch gives x, labels or
 * soft as asec_model(3).  g (P) receives grad_theta L at the point (may
 * be NULL).  ASEC_ENUMERIC when |g'| or |G| is 0 with the cosine loss;
 * else the errors of asec_model_grad(). */
ASEC_API int asec_dlg_objective(double *loss, double *dx, double *dsoft, double *g,
                                asec_model *m, const asec_model_batch *batch,
                                const double *grad, asec_dlg_loss kind)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 5, 6, 7);

/* The residual r (P) of the loss (see above) at batch. */
ASEC_API int asec_dlg_residual(double *r, asec_model *m, const asec_model_batch *batch,
                               const double *grad, asec_dlg_loss kind)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3, 4);

/* iDLG: labels[0] = argmin_k of the head-bias gradient (exact for B = 1
 * with cross-entropy).  For B > 1, the B classes with the most negative
 * bias gradient entries, repeated in order when B > K (a heuristic).
 * ASEC_EINVAL for attn-regression or pooling none. */
ASEC_API int asec_dlg_idlg_labels(int64_t *labels, size_t B, const asec_model *m,
                                  const double *grad) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 3, 4);

/* The analytic token span: basis (C, r) row-major with orthonormal
 * columns, the top r right singular vectors of the span-revealing
 * gradient tensors; sv (min(rows, C)) the singular values (may be NULL).
 * ASEC_ENOTSUP when the model does not leak a span (vit, text, learned or
 * sinusoidal positions); ASEC_EINVAL when r is 0 or > C. */
ASEC_API int asec_dlg_span(double *basis, double *sv, size_t r, const asec_model *m,
                           const double *grad) ASEC_WARN_UNUSED ASEC_NONNULL(1, 4, 5);

/* ------------------------------------------------------------ metrics */

/* Optimal assignment (Hungarian, O(n^3)): assign[i] = column of row i
 * minimising sum cost[i, assign[i]], cost (n, n).  ASEC_ENOMEM or
 * ASEC_EINVAL (a non-finite cost). */
ASEC_API int asec_dlg_hungarian(size_t *assign, const double *cost, size_t n)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Relative error ||x' - x||_F / ||x||_F of B sequences of T tokens of
 * width C: raw, and after the best token permutation of each sequence
 * (matched; may be NULL).  perm (B, T) receives the matching (may be
 * NULL): token t of x' corresponds to token perm[t] of x. */
ASEC_API int asec_dlg_rel_error(double *raw, double *matched, size_t *perm,
                                const double *xhat, const double *x, size_t B,
                                size_t T, size_t C) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 4, 5);

/* ids (N) = argmax_v cos(x_i, vocab_v) for N rows of width C against the
 * vocabulary (V, C).  ASEC_EINVAL when V = 0. */
ASEC_API int asec_dlg_decode(int64_t *ids, const double *x, size_t N, size_t C,
                             const double *vocab, size_t V) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 5);

/* PSNR 10 log10(range^2 / MSE) of n values; +inf when equal. */
ASEC_API double asec_dlg_psnr(const double *a, const double *b, size_t n, double range)
    ASEC_NONNULL(1, 2);

/* ------------------------------------------------------------ defenses */

typedef enum asec_dlg_noise {
    ASEC_DLG_NOISE_GAUSS = 0,  /* "gauss" */
    ASEC_DLG_NOISE_LAPLACE = 1 /* "laplace" */
} asec_dlg_noise;

/* g (P) += noise with per-entry standard deviation sigma (relative = 0)
 * or sigma |g| / sqrt(P) (relative = 1, so |noise| ~ sigma |g|); Laplace
 * noise has the same standard deviation.  Floating-point samplers:
 * for experiments, not a DP release.  ASEC_EINVAL for sigma < 0 or NaN. */
ASEC_API int asec_dlg_defend_noise(double *g, size_t P, double sigma, int relative,
                                   asec_dlg_noise dist, asec_rng *rng)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 6);

/* Magnitude pruning: zero the floor(frac P) entries of g with the smallest
 * |g| (DLG's defense).  ASEC_EINVAL unless 0 <= frac <= 1; ASEC_ENOMEM. */
ASEC_API int asec_dlg_defend_prune(double *g, size_t P, double frac) ASEC_WARN_UNUSED
    ASEC_NONNULL(1);

/* Per-example clipping: out (P) = mean_b clip(grads[b], c) where clip
 * scales a row to norm <= c.  grads (B, P).  ASEC_EINVAL for c <= 0 or
 * B = 0. */
ASEC_API int asec_dlg_defend_clip(double *out, const double *grads, size_t B, size_t P,
                                  double c) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Names and parsers of the enums ("euclid", "cos"; "auto", "idlg",
 * "joint", "known"; "gauss", "laplace"). */
ASEC_API const char *asec_dlg_loss_name(asec_dlg_loss l);
ASEC_API const char *asec_dlg_labels_name(asec_dlg_labels l);
ASEC_API int asec_dlg_loss_parse(asec_dlg_loss *out, const char *name) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);
ASEC_API int asec_dlg_labels_parse(asec_dlg_labels *out, const char *name)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);
ASEC_API int asec_dlg_noise_parse(asec_dlg_noise *out, const char *name)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

ASEC_END_DECLS

#endif /* ATTNSEC_DLG_H */
