/* attnsec/attn_invert.h - recover a layer's input from its attention weights.
 *
 * Deng, Song, Xie, Yang, "Unmasking Transformers: A Theoretical Approach to
 * Data Recovery via Attention Weights", arXiv 2310.12462 (MATH.md §4).
 * Columns of X are tokens.  For every observed head h (h < H):
 *
 *   Z_h = s X_q^T W_h X_k                (n, n) logits, W_h = W_Q W_K^T (d, d)
 *   F_h = rowsoftmax(Z_h)                (n, n) with k > j masked when causal
 *   R_h = F_h X_k^T W_{V,h} - O_h        (n, dv) only with the value path
 *   L   = sum_h 0.5 ||F_h - B_h||_F^2 + 0.5 g sum_h ||R_h||_F^2
 *         + 0.5 lam ||X||_F^2
 *
 * The unknown X depends on opts.inputs: X_q = X_k = X (d, n) (TIED, the
 * paper's self-attention), X = X_q (d, n) with X_k given (QUERY), X = X_k
 * (d, n) with X_q given (KEY), or X = [X_q; X_k] (2 d, n), both unknown
 * (BOTH).  The given input is set with asec_attn_invert_set_known(); the
 * value path (weight g) with asec_attn_invert_set_values().  The ridge
 * term is the paper's regulariser 0.5 ||diag(w) vec(X)||_2^2 with every
 * w_i = sqrt(lam) (MATH.md §4.2); lam = 0 by default because any fixed
 * lam > 0 biases the minimiser (ATTACKS.md §8.6).
 *
 *   dL/dX_q = s sum_h A_h P_h^T,   dL/dX_k = s sum_h (C_h P_h + g W_V R_h^T F_h)
 *   A_h = W_h X_k, C_h = W_h^T X_q, rows (P_h)_j = S(f_j) (G_h)_j,
 *   G_h = F_h - B_h + g R_h V_h^T, V_h = X_k^T W_{V,h}, S(f) = diag(f) - f f^T,
 *
 * plus lam X (TIED sums both; BOTH stacks them).
 *
 * Vectorisation is row-major (MATH.md §1): vec(X)[a * n + m] = X[a, m].
 * The residual of head h, row j, is the row (f_j - b_j, sqrt(g) r_j) of
 * length n + dv; the Jacobian J of the stacked residual has shape
 * (H n (n + dv), rows(X) n).  The solvers never form it for the attention
 * part: the Gauss-Newton matrix J^T J is assembled from rank-structured
 * blocks in O(H n^2 d^2) operations plus BLAS-3 updates of O(H n^3 d^2)
 * flops; the value part's (H n dv) rows are formed and added by syrk.
 *
 * X is identifiable only modulo X -> M X with M^T W_h M = W_h for all h,
 * and shifts x_j -> x_j + v with v in the common kernel of the W_h^T
 * (MATH.md §4.3); with separate inputs, (X_q, X_k) -> (M X_q, N X_k) with
 * M^T W_h N = W_h and (without values) any common shift of the keys.
 * asec_attn_invert_score() measures error modulo these.
 *
 * Shapes (row-major asec_mat views, PyTorch order), r = rows(X) = d or 2 d:
 *   x, grad, e        (r, n)      w[h]  (d, d)       b[h], f  (n, n)
 *   known             (d, n)      wv[h] (d, dv)      o[h]     (n, dv)
 *   jvp out / vjp v   (H n, n + dv)                  gn / hessian (r n, r n)
 */
#ifndef ATTNSEC_ATTN_INVERT_H
#define ATTNSEC_ATTN_INVERT_H

#include <stddef.h>

#include <attnsec/common.h>
#include <attnsec/mat.h>
#include <attnsec/rng.h>

ASEC_BEGIN_DECLS

typedef enum asec_attn_invert_solver {
    ASEC_ATTN_INVERT_LM = 0,    /* Levenberg-Marquardt on J^T J (default) */
    ASEC_ATTN_INVERT_LBFGS = 1, /* liblbfgs, More-Thuente line search */
    ASEC_ATTN_INVERT_NEWTON = 2 /* regularised Newton on the exact Hessian */
} asec_attn_invert_solver;

typedef enum asec_attn_invert_inputs {
    ASEC_ATTN_INVERT_TIED = 0,  /* X_q = X_k = X (d, n) unknown (default) */
    ASEC_ATTN_INVERT_QUERY = 1, /* X = X_q unknown, X_k given */
    ASEC_ATTN_INVERT_KEY = 2,   /* X = X_k unknown, X_q given */
    ASEC_ATTN_INVERT_BOTH = 3   /* X = [X_q; X_k] (2 d, n) unknown */
} asec_attn_invert_inputs;

/* Options.  Start from ASEC_ATTN_INVERT_OPTIONS_INIT and change fields. */
typedef struct asec_attn_invert_options {
    unsigned int version; /* ASEC_ATTN_INVERT_OPTIONS_VERSION */
    double scale;         /* s > 0 (default 1; 1/sqrt(HS) for a model head) */
    int causal;           /* 1: logits with k > j are masked (-inf) */
    double lam;           /* ridge weight >= 0 (default 0) */
    asec_attn_invert_solver solver;
    size_t restarts;                /* random starts, >= 1 (default 64); the solver
                                       stops at the first start that reaches tol */
    size_t max_iter;                /* per start; 0 = default (LM and Newton 300,
                                       L-BFGS 5000) */
    double init_std;                /* start X0 ~ N(0, init_std^2) entrywise, > 0
                                       (default 1) */
    double tol;                     /* a start succeeds when the relative residual
                                       (result out_rel) <= tol, in (0, 1)
                                       (default 1e-10) */
    double continuation;            /* lam0 >= 0: each start first solves with ridge
                                       lam0, lam0/10, ..., 1e-6 lam0, then with lam
                                       (default 0: off) */
    int lambda_min;                 /* 1: record lambda_min(J^T J + lam I) at each LM
                                       iteration of the best start (an eigensolve of
                                       a (r n, r n) matrix per iteration); Newton
                                       always records lambda_min of its Hessian */
    double stochastic_tol;          /* B validation: |row sum - 1| and negative
                                       entries allowed up to this (default 1e-6) */
    asec_attn_invert_inputs inputs; /* which inputs are unknown (default TIED) */
} asec_attn_invert_options;

#define ASEC_ATTN_INVERT_OPTIONS_VERSION 2
#define ASEC_ATTN_INVERT_OPTIONS_INIT                                                    \
    {                                                                                    \
        ASEC_ATTN_INVERT_OPTIONS_VERSION, 1.0, 0, 0.0, ASEC_ATTN_INVERT_LM, 64, 0, 1.0,  \
            1e-10, 0.0, 0, 1e-6, ASEC_ATTN_INVERT_TIED                                   \
    }

/* Largest r n for the LM and Newton solvers, asec_attn_invert_gauss_newton()
 * and asec_attn_invert_hessian(): the (r n, r n) matrix then takes 128 MiB
 * (twice that while solving). */
#define ASEC_ATTN_INVERT_LM_MAX_UNKNOWNS 4096

/* Optional per-iteration traces for asec_attn_invert_solve(): caller
 * buffers of cap entries each (either pointer may be NULL).  They receive,
 * for the best start, the loss per iteration and lambda_min (NaN unless
 * measured: LM with opts.lambda_min, or Newton).  Read-only input. */
typedef struct asec_attn_invert_trace {
    double *loss;
    double *lambda_min;
    size_t cap;
} asec_attn_invert_trace;

/* What asec_attn_invert_solve() did.  Output only: solve overwrites every
 * field (zeroes them first, also when it fails), so it need not be
 * initialised. */
typedef struct asec_attn_invert_result {
    double loss;            /* final loss of the best start (without ridge) */
    double out_rel;         /* ||r(X)||_2 / ||(B, sqrt(g) O)||_2, the stacked
                               residual relative to the observations */
    int converged;          /* out_rel <= opts->tol */
    size_t starts;          /* starts run */
    size_t best_start;      /* index of the returned start */
    size_t iterations;      /* solver iterations, all starts */
    size_t evaluations;     /* loss/gradient evaluations, all starts */
    size_t factorizations;  /* LM Cholesky / Newton eigen factorizations */
    size_t best_iterations; /* iterations of the best start */
    size_t trace_len;       /* trace entries written (<= trace cap) */
} asec_attn_invert_result;

/* Scores of a recovery against the truth (ATTACKS.md §3). */
typedef struct asec_attn_invert_metrics {
    double out_rel;     /* as in asec_attn_invert_result */
    double orbit_err;   /* least-squares M (and v when shifts are invisible)
                           with M xhat + v 1^T ~ x, per input block:
                           ||M xhat + v 1^T - x||_F / ||x||_F */
    double orbit_w_err; /* max_h ||M_q^T W_h M_k - W_h||_F / ||W_h||_F (M_q =
                           M_k = M when tied; the identity for a given side) */
    double naive_err;   /* min over the sign of ||xhat -+ x||_F / ||x||_F */
    size_t ker_dim;     /* dim of the common kernel of the W_h^T */
    size_t equations;   /* independent equations: H n (n - 1) (causal
                           H n (n - 1) / 2), plus H n dv with values */
    size_t unknowns;    /* r n */
    int success;        /* orbit_err < 1e-6 and orbit_w_err < 1e-6 */
} asec_attn_invert_metrics;

/* Success threshold of asec_attn_invert_metrics (ATTACKS.md §3). */
#define ASEC_ATTN_INVERT_ORBIT_TOL 1e-6

typedef struct asec_attn_invert asec_attn_invert;

/* f = rowsoftmax(scale x^T w x) with k > j masked when causal; x (d, n),
 * w (d, d), f (n, n), f must not alias x or w.  Returns ASEC_OK,
 * ASEC_EINVAL (scale <= 0 or not finite, d or n zero), ASEC_EBADLEN,
 * ASEC_ENUMERIC (a non-finite logit) or ASEC_ENOMEM.  Allocates a (d, n)
 * temporary, freed before return. */
ASEC_API int asec_attn_invert_attention(asec_mat *f, const asec_mat *x, const asec_mat *w,
                                        double scale, int causal) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3);

/* f = rowsoftmax(scale xq^T w xk): separate query and key inputs, both
 * (d, n); otherwise as asec_attn_invert_attention(). */
ASEC_API int asec_attn_invert_attention_qk(asec_mat *f, const asec_mat *xq,
                                           const asec_mat *xk, const asec_mat *w,
                                           double scale, int causal) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3, 4);

/* A problem: nheads pairs (w[h], b[h]), each w (d, d) and b (n, n),
 * copied (the caller keeps its own).  opts NULL means the defaults.
 * Each b must be finite, entries >= -stochastic_tol, rows summing to 1
 * within stochastic_tol, and masked entries (k > j, causal) within
 * stochastic_tol of 0.  *out is owned by the caller, freed with
 * asec_attn_invert_free().  Returns ASEC_OK, ASEC_EINVAL (nheads, d or n
 * zero, n < 2, an option out of range or another version), ASEC_EBADLEN
 * (a w not (d, d) or a b not (n, n)), ASEC_ENUMERIC (NaN or Inf in w or
 * b), ASEC_EFORMAT (b not row-stochastic; the message names the head, row
 * and value) or ASEC_ENOMEM.  Allocates the copies and a workspace of
 * O(H (d n + n^2)) doubles. */
ASEC_API int asec_attn_invert_alloc(asec_attn_invert **out, size_t d, size_t n,
                                    size_t nheads, const asec_mat *w, const asec_mat *b,
                                    const asec_attn_invert_options *opts) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 5, 6);

ASEC_API void asec_attn_invert_free(asec_attn_invert *ctx); /* NULL: no-op */

/* The shape (rows, n) of the unknown X: rows = d, or 2 d for BOTH. */
ASEC_API void asec_attn_invert_unknown_shape(const asec_attn_invert *ctx, size_t *rows,
                                             size_t *cols) ASEC_NONNULL(1, 2, 3);

/* The given input of a QUERY (known = X_k) or KEY (known = X_q) problem,
 * (d, n), copied.  Required before eval, jvp, vjp, hvp, gauss_newton,
 * hessian, solve and score of such a problem.  Returns ASEC_OK,
 * ASEC_EINVAL (the problem is TIED or BOTH), ASEC_EBADLEN, ASEC_ENUMERIC
 * (non-finite entry) or ASEC_ENOMEM.  Allocates d n doubles (once). */
ASEC_API int asec_attn_invert_set_known(asec_attn_invert *ctx,
                                        const asec_mat *known) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* The value path: nheads pairs wv[h] (d, dv) and observed outputs o[h]
 * (n, dv) = F_h X_k^T wv[h], copied, with weight g > 0 on their squared
 * residual.  May be called once, before the other functions' first use.
 * Returns ASEC_OK, ASEC_EINVAL (dv zero, weight not finite and > 0, values
 * already set), ASEC_EBADLEN (shapes), ASEC_ENUMERIC (non-finite entry) or
 * ASEC_ENOMEM.  Allocates O(H (d + n) dv) doubles. */
ASEC_API int asec_attn_invert_set_values(asec_attn_invert *ctx, size_t dv,
                                         const asec_mat *wv, const asec_mat *o,
                                         double weight) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 3, 4);

/* *loss = L(x) (with the options' lam) and, when grad is not NULL, grad =
 * grad_X L (r, n); grad must not alias x.  Returns ASEC_OK, ASEC_EBADLEN,
 * ASEC_EINVAL (the given input is not set) or ASEC_ENUMERIC (a non-finite
 * logit).  Allocates nothing. */
ASEC_API int asec_attn_invert_eval(asec_attn_invert *ctx, double *loss, asec_mat *grad,
                                   const asec_mat *x) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 4);

/* Jacobian-vector product out = J e of the stacked residual: row h n + j
 * of out (H n, n + dv) is head h's (df_j, sqrt(g) dr_j); e is an (r, n)
 * direction.  ASEC_OK, ASEC_EBADLEN, ASEC_EINVAL, ASEC_ENUMERIC.
 * Allocates nothing. */
ASEC_API int asec_attn_invert_jvp(asec_attn_invert *ctx, asec_mat *out, const asec_mat *x,
                                  const asec_mat *e) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3, 4);

/* Vector-Jacobian product out = J^T v, v (H n, n + dv) as above, out
 * (r, n).  ASEC_OK, ASEC_EBADLEN, ASEC_EINVAL, ASEC_ENUMERIC.  Allocates
 * nothing. */
ASEC_API int asec_attn_invert_vjp(asec_attn_invert *ctx, asec_mat *out, const asec_mat *x,
                                  const asec_mat *v) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3, 4);

/* Exact Hessian-vector product out = (d^2 L / dX^2) e (r, n), including
 * the ridge, by forward-over-reverse differentiation of the gradient
 * (the curvature of the softmax and value terms included, so the result
 * is indefinite in general).  out must not alias x or e.  ASEC_OK,
 * ASEC_EBADLEN, ASEC_EINVAL, ASEC_ENUMERIC.  Allocates nothing. */
ASEC_API int asec_attn_invert_hvp(asec_attn_invert *ctx, asec_mat *out, const asec_mat *x,
                                  const asec_mat *e) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3, 4);

/* The Gauss-Newton matrix h = J^T J (r n, r n), row-major vec order,
 * without the ridge, assembled without forming the attention part of J.
 * Returns ASEC_OK, ASEC_EBADLEN, ASEC_EINVAL, ASEC_ELIMIT (r n >
 * ASEC_ATTN_INVERT_LM_MAX_UNKNOWNS), ASEC_ENUMERIC or ASEC_ENOMEM.
 * Allocates O(n^2 d + n r d) doubles (plus H n dv r n with values), freed
 * before return. */
ASEC_API int asec_attn_invert_gauss_newton(asec_attn_invert *ctx, asec_mat *h,
                                           const asec_mat *x) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3);

/* The exact Hessian h (r n, r n) of L at x, ridge included, one
 * asec_attn_invert_hvp() per column, symmetrised.  Returns as
 * asec_attn_invert_gauss_newton(); allocates O(r n) doubles. */
ASEC_API int asec_attn_invert_hessian(asec_attn_invert *ctx, asec_mat *h,
                                      const asec_mat *x) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3);

/* Run the attack: up to opts->restarts random starts drawn from rng
 * (borrowed), each solved by the chosen solver (with the continuation
 * when enabled), keeping the start with the smallest loss and stopping
 * at the first that reaches opts->tol.  x (r, n) receives the best
 * recovery.  res (may be NULL) is output only and always overwritten;
 * trace (may be NULL) names caller buffers for the per-iteration traces
 * of the best start.  Not converging is a result (res->converged = 0),
 * not an error.  Levenberg-Marquardt factorises J^T J + (lam + mu) I once
 * per iteration by Cholesky; a rejected step is first backtracked along
 * its direction and only refactorised with a larger mu when that fails.
 * Newton eigendecomposes the exact Hessian H once per iteration and
 * retries damping in O((r n)^2).  Returns ASEC_OK, ASEC_EBADLEN,
 * ASEC_EINVAL (the given input is not set), ASEC_ELIMIT (LM or Newton
 * with r n above ASEC_ATTN_INVERT_LM_MAX_UNKNOWNS), ASEC_ENUMERIC (LAPACK
 * failure or every start diverged) or ASEC_ENOMEM.  Allocates the solver
 * state (LM one, Newton two (r n, r n) matrices), freed before return. */
ASEC_API int asec_attn_invert_solve(asec_attn_invert *ctx, asec_mat *x, asec_rng *rng,
                                    asec_attn_invert_result *res,
                                    const asec_attn_invert_trace *trace) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3);

/* Score xhat against the true x (both (r, n)); see asec_attn_invert_metrics.
 * Returns ASEC_OK, ASEC_EBADLEN, ASEC_EINVAL (x is zero, the given input
 * is not set), ASEC_ENUMERIC (SVD failure) or ASEC_ENOMEM.  Allocates
 * O(n d + H d^2) doubles, freed before return. */
ASEC_API int asec_attn_invert_score(asec_attn_invert_metrics *out, asec_attn_invert *ctx,
                                    const asec_mat *xhat,
                                    const asec_mat *x) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3, 4);

ASEC_END_DECLS

#endif /* ATTNSEC_ATTN_INVERT_H */
