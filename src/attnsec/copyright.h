/* attnsec/copyright.h - copyright-avoiding softmax regression and the
 * regression family it is built on (implemented in defenses/copyright.c).
 *
 * The regression family (MATH.md §2.2-§2.4), for A (n, d), b (n), x (d)
 * and z = A x:
 *
 *   ASEC_COPYRIGHT_SOFTMAX    L(x) = 0.5 ||softmax(z) - b||^2           §2.3
 *   ASEC_COPYRIGHT_EXP        L(x) = 0.5 ||exp(z) - b||^2               §2.2
 *   ASEC_COPYRIGHT_COSH       L(x) = 0.5 ||cosh(z) - b||^2              §2.2
 *   ASEC_COPYRIGHT_SINH       L(x) = 0.5 ||sinh(z) - b||^2              §2.2
 *   ASEC_COPYRIGHT_RESCALED_* L(x) = 0.5 ||u(z) - <u(z), 1_n> b||^2,
 *                             u = exp, cosh or sinh                     §2.4
 *
 * Every member has Hess L = A^T C(z) A with the n x n curvature
 * C = diag(c) + P M P^T, P (n, k), k <= 2 (the "diagonal + rank-2" split
 * of 2304.10411; k = 0 for exp/cosh/sinh).
 *
 * The copyright objective (Chu, Song, Yang 2023, arXiv 2308.12247;
 * MATH.md §6.2):
 *
 *   L_cpr(x) = L(A, b; x) + gamma / L_1(x) + 0.5 ||diag(w) A x||^2
 *
 * where L is the family loss on all n rows (copyrighted rows included),
 * L_1 = L(A1, b1; x) the same loss on the n1 copyrighted rows alone (for
 * the softmax families, softmax is taken over those n1 rows), and
 * L_2 = L(A2, b2; x) the loss on the other n2 rows.  gamma = 0 gives the
 * plain regularised regression of the family.  The achieved protection is
 * tau = L_1/n1 - L_2/n2 (the tau-copyright-protection margin of the
 * paper's definition), computed from the plain losses, never from a loss
 * that includes the gamma term (MATH.md §6.4, defect 5).
 *
 * Gradient and Hessian (s = gamma / L_1^2, g1 = grad L_1):
 *   grad L_cpr = A^T (dL/dz + w o w o z) - s g1
 *   Hess L_cpr = A^T (C + W^2) A - s A1^T C1 A1 + (2 gamma / L_1^3) g1 g1^T
 *
 * Solvers (asec_copyright_solver_*; MATH.md §2.1):
 *   NEWTON    exact Hessian, Cholesky solve
 *   WOODBURY  Cholesky of the diagonal part K, low-rank part by Woodbury
 *   CG        Newton-CG on O(nnz(A)) Hessian-vector products
 *   SKETCH    approximate Newton: the diagonal part A^T diag(c + w^2) A
 *             is replaced by a leverage-score sample A^T diag(c~) A
 *             (redrawn every iteration), the rest is kept exact; the
 *             achieved (1 +/- eps) factor is measured and recorded.
 * all followed by Armijo backtracking (c1 = 1e-4, halving) that also
 * enforces the guard L_1 >= beta_c along the path.
 *
 * Shapes are (rows, cols), row-major (attnsec/mat.h).  Nothing here
 * prints, exits or reads the environment.
 */
#ifndef ATTNSEC_COPYRIGHT_H
#define ATTNSEC_COPYRIGHT_H

#include <stddef.h>
#include <stdint.h>

#include <attnsec/common.h>
#include <attnsec/mat.h>
#include <attnsec/model.h>
#include <attnsec/rng.h>

ASEC_BEGIN_DECLS

typedef enum asec_copyright_family {
    ASEC_COPYRIGHT_SOFTMAX = 0,
    ASEC_COPYRIGHT_EXP = 1,
    ASEC_COPYRIGHT_COSH = 2,
    ASEC_COPYRIGHT_SINH = 3,
    ASEC_COPYRIGHT_RESCALED_EXP = 4,
    ASEC_COPYRIGHT_RESCALED_COSH = 5,
    ASEC_COPYRIGHT_RESCALED_SINH = 6
} asec_copyright_family;

#define ASEC_COPYRIGHT_NFAMILIES 7

/* "softmax", "exp", "cosh", "sinh", "rescaled-exp", "rescaled-cosh",
 * "rescaled-sinh"; "?" for a bad value. */
ASEC_API const char *asec_copyright_family_name(asec_copyright_family family);

/* Parse one of the names above.  ASEC_EINVAL if unknown. */
ASEC_API int asec_copyright_family_parse(asec_copyright_family *out, const char *name)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* The problem.  Every pointer and view is borrowed and read only; it must
 * stay valid while a solver uses the problem.
 *   a   (n, d), n >= 1, d >= 1     all rows
 *   b   (n)                        targets (for SOFTMAX a distribution)
 *   w   (n) or NULL                regulariser weights (NULL: no L_reg)
 *   a1  (n1, d), b1 (n1)           copyrighted rows; n1 >= 1 when gamma > 0
 *   a2  (n2, d), b2 (n2)           the other rows; used for tau only; n2 may
 *                                  be 0 (tau is then NaN)
 *   gamma >= 0, beta_c >= 0        the copyright weight and the L_1 guard
 * Every value must be finite. */
typedef struct asec_copyright_problem {
    unsigned int version; /* ASEC_COPYRIGHT_PROBLEM_VERSION */
    asec_copyright_family family;
    asec_mat a;
    const double *b;
    const double *w;
    asec_mat a1;
    const double *b1;
    asec_mat a2;
    const double *b2;
    double gamma;
    double beta_c;
} asec_copyright_problem;

#define ASEC_COPYRIGHT_PROBLEM_VERSION 1
#define ASEC_COPYRIGHT_PROBLEM_INIT                                                    \
    { ASEC_COPYRIGHT_PROBLEM_VERSION, ASEC_COPYRIGHT_SOFTMAX, {0, 0, 0, NULL}, NULL,    \
      NULL, {0, 0, 0, NULL}, NULL, {0, 0, 0, NULL}, NULL, 0.0, 0.0 }

/* Check a problem: version, shapes (ASEC_EBADLEN), gamma < 0, beta_c < 0,
 * n or d zero, gamma > 0 with n1 == 0, NULL vectors (ASEC_EINVAL), any
 * non-finite entry (ASEC_ENUMERIC, naming the array and index).
 * Allocates nothing. */
ASEC_API int asec_copyright_problem_check(const asec_copyright_problem *p)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* The loss terms at x (d). */
typedef struct asec_copyright_losses {
    double l;     /* L(A, b; x), all rows */
    double l1;    /* L(A1, b1; x); NaN when n1 == 0 */
    double l2;    /* L(A2, b2; x); NaN when n2 == 0 */
    double l_reg; /* 0.5 ||diag(w) A x||^2 (0 when w is NULL) */
    double l_cpr; /* L + gamma / L_1 + L_reg (L + L_reg when gamma == 0) */
    double tau;   /* L_1/n1 - L_2/n2; NaN unless n1 > 0 and n2 > 0 */
} asec_copyright_losses;

/* Evaluate the losses, and optionally grad L_cpr (d) and Hess L_cpr
 * (d x d, both triangles).  grad and hess may be NULL; they must not
 * alias x.  Returns ASEC_OK, the asec_copyright_problem_check() errors,
 * ASEC_EBADLEN (hess not d x d), ASEC_ENUMERIC (a loss or derivative is
 * not finite, e.g. exp overflow, or L_1 == 0 with gamma > 0) or
 * ASEC_ENOMEM.  Allocates O((n + n1 + n2) + n d) scratch, freed before
 * returning. */
ASEC_API int asec_copyright_eval(asec_copyright_losses *out, double *grad, asec_mat *hess,
                                 const asec_copyright_problem *p, const double *x)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 4, 5);

/* out (d) = Hess L_cpr(x) v in O(nnz(A) + nnz(A1)) without forming the
 * Hessian (MATH.md §2.3, "Hessian-vector product").  out must not alias
 * x or v.  Errors as asec_copyright_eval().  Allocates O(n + n1)
 * scratch, freed before returning. */
ASEC_API int asec_copyright_hvp(double *out, const asec_copyright_problem *p,
                                const double *x, const double *v)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3, 4);

/* The curvature matrix C(z) (n x n) of family at z (n) with targets b (n),
 * so that Hess L = A^T C A (for SOFTMAX this is B(x) of MATH.md §2.3).
 * Returns ASEC_OK, ASEC_EINVAL (bad family, n == 0), ASEC_EBADLEN (out not
 * n x n), ASEC_ENUMERIC or ASEC_ENOMEM.  Allocates O(n) scratch. */
ASEC_API int asec_copyright_curvature(asec_mat *out, asec_copyright_family family,
                                      const double *z, const double *b, size_t n)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 3, 4);

/* ------------------------------------------------------------------ solvers */

typedef enum asec_copyright_method {
    ASEC_COPYRIGHT_NEWTON = 0,
    ASEC_COPYRIGHT_WOODBURY = 1,
    ASEC_COPYRIGHT_CG = 2,
    ASEC_COPYRIGHT_SKETCH = 3
} asec_copyright_method;

/* "newton", "woodbury", "cg", "sketch"; "?" for a bad value. */
ASEC_API const char *asec_copyright_method_name(asec_copyright_method m);
ASEC_API int asec_copyright_method_parse(asec_copyright_method *out, const char *name)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Solver options.  Start from ASEC_COPYRIGHT_OPTIONS_INIT. */
typedef struct asec_copyright_options {
    unsigned int version;         /* ASEC_COPYRIGHT_OPTIONS_VERSION */
    asec_copyright_method method; /* default NEWTON */
    size_t max_iter;              /* Newton steps; default 100 */
    double tol_grad;              /* stop when ||grad|| <= tol_grad; 1e-10 */
    double tol_rel_loss;          /* stop when the loss decrease of a step is
                                     <= tol_rel_loss |loss|; 1e-14 */
    int armijo;                   /* 1: Armijo backtracking (c1 = 1e-4,
                                     halving); 0: full steps, backtracking
                                     only for the beta_c guard */
    size_t max_backtrack;         /* halvings before the step is declared
                                     stalled; default 60 */
    double cg_rtol;               /* CG: stop at ||r|| <= cg_rtol ||g||; 1e-10 */
    size_t cg_max_iter;           /* CG iterations per step; 0: 10 d */
    double sketch_eps;            /* SKETCH: target eps0 in (0, 1); 0.05 */
    double sketch_c;              /* oversampling constant c > 0; 3 */
    double sketch_delta;          /* failure probability in (0, 1); 0.01 */
    int measure;                  /* 1: record lambda_min/max of the exact
                                     Hessian, the empirical Lipschitz
                                     constant and (SKETCH) the achieved
                                     factor at every iterate; costs
                                     O(n d^2 + d^3) per iterate */
} asec_copyright_options;

#define ASEC_COPYRIGHT_OPTIONS_VERSION 1
#define ASEC_COPYRIGHT_OPTIONS_INIT                                                    \
    { ASEC_COPYRIGHT_OPTIONS_VERSION, ASEC_COPYRIGHT_NEWTON, 100, 1e-10, 1e-14, 1, 60,  \
      1e-10, 0, 0.05, 3.0, 0.01, 1 }

/* Why a solver stopped (asec_copyright_solver_status). */
typedef enum asec_copyright_status {
    ASEC_COPYRIGHT_RUNNING = 0,
    ASEC_COPYRIGHT_CONVERGED_GRAD = 1, /* ||grad|| <= tol_grad */
    ASEC_COPYRIGHT_CONVERGED_LOSS = 2, /* relative decrease <= tol_rel_loss */
    ASEC_COPYRIGHT_MAX_ITER = 3,       /* max_iter steps taken */
    ASEC_COPYRIGHT_STALLED = 4         /* no acceptable step within
                                          max_backtrack halvings */
} asec_copyright_status;

/* "running", "converged-grad", "converged-loss", "max-iter", "stalled". */
ASEC_API const char *asec_copyright_status_name(asec_copyright_status s);

/* What the solver recorded at iterate x_t (and the step taken from it). */
typedef struct asec_copyright_iterate {
    size_t iter;          /* t */
    asec_copyright_losses losses;
    double grad_norm;     /* ||grad L_cpr(x_t)||_2 */
    double lambda_min;    /* extreme eigenvalues of the exact Hessian at */
    double lambda_max;    /*   x_t; NaN unless options.measure */
    double lipschitz;     /* ||H(x_t) - H(x_{t-1})|| / ||x_t - x_{t-1}||;
                             NaN at t = 0 or unless options.measure */
    double step;          /* accepted step length alpha; 0 if no step */
    double step_norm;     /* ||x_{t+1} - x_t||; 0 if no step */
    size_t backtracks;    /* halvings before acceptance */
    size_t cg_iters;      /* CG: iterations of this step; else 0 */
    size_t sketch_rows;   /* SKETCH: rows kept by the sampler; else 0 */
    double sketch_lo;     /* SKETCH with measure: extreme generalised */
    double sketch_hi;     /*   eigenvalues of (A^T D~ A, A^T D A), the
                             sampled block against its exact value;
                             the achieved factor is max(1 - lo, hi - 1) */
    double hess_lo;       /* the same for (H~, H), the whole approximate */
    double hess_hi;       /*   Hessian against the exact one */
} asec_copyright_iterate;

typedef struct asec_copyright_solver asec_copyright_solver;

/* Start a solver at x0 (d).  p, opts and rng are borrowed and must
 * outlive the solver; rng (a seeded or secure stream) is needed by SKETCH
 * only and may be NULL otherwise.  opts NULL means the defaults.
 * *out is owned by the caller and freed with asec_copyright_solver_free().
 * Returns ASEC_OK, the asec_copyright_problem_check() errors, ASEC_EINVAL
 * (options out of range or of another version, SKETCH without rng),
 * ASEC_ENUMERIC (L_1(x0) < beta_c, or the loss at x0 is not finite) or
 * ASEC_ENOMEM.  Allocates O(n d + d^2) workspace. */
ASEC_API int asec_copyright_solver_alloc(asec_copyright_solver **out,
                                         const asec_copyright_problem *p,
                                         const asec_copyright_options *opts,
                                         const double *x0, asec_rng *rng)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 4);

ASEC_API void asec_copyright_solver_free(asec_copyright_solver *s); /* NULL: no-op */

/* One Newton step: evaluate and record x_t, test convergence, compute the
 * direction, line-search, move.  When the solver has stopped (status not
 * RUNNING) this only returns ASEC_OK.  "Not converged" and "stalled" are
 * statuses, not errors.  Returns ASEC_OK, ASEC_ENUMERIC (the Hessian or
 * K (WOODBURY) or H~ (SKETCH) is not positive definite, the sampler's
 * diagonal has a negative entry, a non-finite value; the message names
 * the iterate) or ASEC_ENOMEM.  After an error the solver keeps its last
 * accepted iterate and may only be freed or queried. */
ASEC_API int asec_copyright_solver_iterate(asec_copyright_solver *s)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Iterate until the status is not RUNNING; errors as above. */
ASEC_API int asec_copyright_solver_run(asec_copyright_solver *s)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

ASEC_API asec_copyright_status asec_copyright_solver_status(const asec_copyright_solver *s)
    ASEC_NONNULL(1);

/* The current iterate (d doubles, owned by the solver; valid until the
 * next iterate call or free). */
ASEC_API const double *asec_copyright_solver_x(const asec_copyright_solver *s)
    ASEC_NONNULL(1);

/* Number of records (iterates evaluated so far), and record t.  Minimum
 * L_1 along the path is the smallest losses.l1 of the records.
 * asec_copyright_solver_record returns ASEC_EINVAL for t >= count. */
ASEC_API size_t asec_copyright_solver_count(const asec_copyright_solver *s)
    ASEC_NONNULL(1);
ASEC_API int asec_copyright_solver_record(const asec_copyright_solver *s, size_t t,
                                          asec_copyright_iterate *out)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 3);

/* ------------------------------------------- next-token (multinomial) model */

/* The language-model instance of the copyright objective, as the paper's
 * experiment trains it (MATH.md §6.2-§6.3: "loss += gamma / CE_cp" on the
 * token cross-entropy): a multinomial logistic regression W (V, d),
 * row-major, over N examples with features x_i (d), labels y_i in [0, V)
 * and a copyright mark cp_i.  With p_i = softmax(W x_i) and
 * CE_i = -log p_i[y_i]:
 *
 *   L     = mean of CE_i over all N rows (copyrighted rows included)
 *   L_1   = mean over the n1 rows with cp_i != 0, L_2 = mean over the rest
 *   L_reg = 0.5 lambda ||W||_F^2
 *   L_cpr = L + gamma / L_1 + L_reg,   tau = L_1 - L_2
 *
 * tau is the paper's L(A1)/n1 - L(A2)/n2 with L the summed cross-entropy,
 * always from the plain losses (never one that includes gamma / L_1).
 * Every pointer is borrowed and read only. */
typedef struct asec_copyright_lm {
    unsigned int version;    /* ASEC_COPYRIGHT_LM_VERSION */
    asec_mat x;              /* (N, d) features, N >= 1, d >= 1 */
    const int64_t *y;        /* (N) labels in [0, classes) */
    const unsigned char *cp; /* (N) nonzero: copyrighted row */
    size_t classes;          /* V >= 2 */
    double gamma;            /* >= 0; > 0 needs n1 >= 1 */
    double lambda;           /* >= 0 */
    double beta_c;           /* >= 0: the fit keeps L_1 >= beta_c */
} asec_copyright_lm;

#define ASEC_COPYRIGHT_LM_VERSION 1
#define ASEC_COPYRIGHT_LM_INIT                                                         \
    { ASEC_COPYRIGHT_LM_VERSION, {0, 0, 0, NULL}, NULL, NULL, 0, 0.0, 0.0, 0.0 }

/* Check: version, N, d or V zero, NULL arrays, gamma/lambda/beta_c
 * negative or non-finite, gamma > 0 with no copyrighted row (ASEC_EINVAL),
 * a label out of range (ASEC_EINVAL, naming the row), a non-finite
 * feature (ASEC_ENUMERIC).  Allocates nothing. */
ASEC_API int asec_copyright_lm_check(const asec_copyright_lm *p)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Losses at w (V x d, row-major) into *out (l, l1, l2, l_reg, l_cpr, tau
 * as above; l1/l2/tau NaN when their row set is empty) and optionally
 * grad L_cpr (V x d; may be NULL; must not alias w).  Returns ASEC_OK, the
 * asec_copyright_lm_check() errors, ASEC_ENUMERIC (a non-finite loss, or
 * L_1 == 0 with gamma > 0) or ASEC_ENOMEM.  Works in row blocks;
 * allocates O(V (d + 1024)) scratch, freed before returning. */
ASEC_API int asec_copyright_lm_eval(asec_copyright_losses *out, double *grad,
                                    const asec_copyright_lm *p, const double *w)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 3, 4);

typedef struct asec_copyright_lm_options {
    unsigned int version;  /* ASEC_COPYRIGHT_LM_OPTIONS_VERSION */
    size_t max_iter;       /* L-BFGS iterations; default 200 */
    size_t memory;         /* L-BFGS pairs kept, >= 1; default 8 */
    double tol_grad;       /* stop when max |grad| <= tol_grad; 1e-6 */
    double tol_rel_loss;   /* stop when a step decreases L_cpr by
                              <= tol_rel_loss |L_cpr|; 1e-10 */
    size_t max_backtrack;  /* halvings before STALLED; default 40 */
} asec_copyright_lm_options;

#define ASEC_COPYRIGHT_LM_OPTIONS_VERSION 1
#define ASEC_COPYRIGHT_LM_OPTIONS_INIT                                                 \
    { ASEC_COPYRIGHT_LM_OPTIONS_VERSION, 200, 8, 1e-6, 1e-10, 40 }

typedef struct asec_copyright_lm_result {
    asec_copyright_status status; /* CONVERGED_GRAD, CONVERGED_LOSS,
                                     MAX_ITER or STALLED */
    size_t iterations;            /* accepted steps */
    size_t evaluations;           /* loss + gradient evaluations */
    double grad_norm;             /* max |grad L_cpr| at the result */
    double min_l1;                /* smallest L_1 over accepted iterates */
    asec_copyright_losses losses; /* at the result */
} asec_copyright_lm_result;

/* Minimise L_cpr by L-BFGS (two-loop recursion) with Armijo backtracking
 * (c1 = 1e-4, halving) that also rejects any trial point with
 * L_1 < beta_c (when gamma > 0) or a non-finite loss.  w (V x d) holds the
 * start on entry and the result on return (also after a STALLED stop: the
 * last accepted iterate).  opts NULL means the defaults.  Returns ASEC_OK,
 * the check errors, ASEC_EINVAL (bad options), ASEC_ENUMERIC (L_1(w0) <
 * beta_c with gamma > 0, or a non-finite loss at w0) or ASEC_ENOMEM.
 * Allocates (2 memory + 5) V d doubles and O(1024 V) scratch. */
ASEC_API int asec_copyright_lm_fit(double *w, asec_copyright_lm_result *res,
                                   const asec_copyright_lm *p,
                                   const asec_copyright_lm_options *opts)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3);

/* Greedy next-token predictor for asec_copyright_regen(): store in *next
 * the most likely token after history[0 .. len).  Returns ASEC_OK or a
 * negative ASEC_E* that aborts the count. */
typedef int (*asec_copyright_next_fn)(void *ctx, const int64_t *history, size_t len,
                                      int64_t *next);

/* Verbatim regeneration count.  Documents are the token ranges
 * [bounds[j], bounds[j+1]) of tokens (ntok), j < ndocs (bounds
 * non-decreasing, bounds[ndocs] <= ntok); selected (ndocs, NULL: all)
 * picks the documents counted.  Every start s with the n-gram
 * tokens[s .. s+n) inside one selected document and none of its tokens
 * equal to skip (pass a negative skip for none) is one n-gram occurrence
 * (*total); it is reproduced (*hits) when greedy decoding from its own
 * prefix tokens[s .. s+prefix), calling next() with the prefix followed
 * by the tokens generated so far, yields exactly tokens[s+prefix .. s+n).
 * Decoding stops at the first wrong token.  Requires 1 <= prefix < n.
 * Returns ASEC_OK, ASEC_EINVAL (bad n/prefix, bounds out of order or past
 * ntok), next()'s error, or ASEC_ENOMEM.  Allocates n int64s. */
ASEC_API int asec_copyright_regen(size_t *hits, size_t *total, const int64_t *tokens,
                                  size_t ntok, const size_t *bounds, size_t ndocs,
                                  const unsigned char *selected, size_t n, size_t prefix,
                                  int64_t skip, asec_copyright_next_fn next, void *ctx)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3, 5, 11);

/* --------------------------------------- context features from the engine */

/* The demonstration's context features (issue #10): a causal text
 * transformer m (asec_model(3): kind text, causal, pooling none, vocabulary
 * V and K = V classes, T = arch.seq_len tokens of context) trained briefly
 * for next-token prediction on a token stream, then frozen; the feature
 * row of a context of T tokens is [1, h] (d = C + 1), h the final hidden
 * state at its last token: after the final LayerNorm, before the head. */

typedef struct asec_copyright_engine_options {
    unsigned int version; /* ASEC_COPYRIGHT_ENGINE_OPTIONS_VERSION */
    size_t steps;         /* Adam steps (0: leave m as it is); default 300 */
    size_t batch;         /* windows of T + 1 tokens per step, >= 1; 32 */
    double lr;            /* Adam step size > 0; 3e-3 */
    double beta1, beta2;  /* moment decays in [0, 1); 0.9, 0.999 */
    double eps;           /* > 0; 1e-8 */
} asec_copyright_engine_options;

#define ASEC_COPYRIGHT_ENGINE_OPTIONS_VERSION 1
#define ASEC_COPYRIGHT_ENGINE_OPTIONS_INIT                                             \
    { ASEC_COPYRIGHT_ENGINE_OPTIONS_VERSION, 300, 32, 3e-3, 0.9, 0.999, 1e-8 }

typedef struct asec_copyright_engine_result {
    size_t steps;      /* steps taken */
    double loss_first; /* mean next-token cross-entropy of the first batch,
                          before any update (NaN when steps == 0) */
    double loss_last;  /* mean of the batch losses of the last
                          max(1, steps / 10) steps (NaN when steps == 0) */
} asec_copyright_engine_result;

/* Train m in place from its current parameters (initialise them first,
 * asec_model_init_params()) by Adam with bias correction on the exact
 * gradient of the mean token cross-entropy (asec_model_grad()).  Each step
 * draws batch windows at uniform starts s in [0, ntok - T) from rng
 * (borrowed; seeded or secure): inputs tokens[s .. s+T), labels
 * tokens[s+1 .. s+T+1).  curve (steps doubles, may be NULL) receives each
 * step's batch loss.  Returns ASEC_OK, ASEC_EINVAL (bad options, m not a
 * causal text model with pooling none, ntok < T + 1, a token outside
 * [0, V)), ASEC_ENUMERIC (a non-finite loss; m keeps the parameters of
 * the step before) or ASEC_ENOMEM.  Allocates 2 P doubles of Adam state
 * and 2 batch T int64s, plus the model's activation arenas. */
ASEC_API int asec_copyright_engine_train(asec_model *m, asec_copyright_engine_result *res,
                                         double *curve, const int64_t *tokens,
                                         size_t ntok,
                                         const asec_copyright_engine_options *opts,
                                         asec_rng *rng)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 4, 7);

/* Features of every context of T consecutive tokens of tokens (ntok >= T):
 * row s of x ((ntok - T + 1) x (C + 1), row-major) is [1, h] for the
 * context tokens[s .. s+T), so row s predicts tokens[s + T].  m is read,
 * not changed.  Returns ASEC_OK, ASEC_EINVAL (m not a causal text model
 * with pooling none, ntok < T, a token outside [0, V)) or ASEC_ENOMEM.
 * Allocates a copy of m with a C x C identity head and activations for
 * 256 windows at a time. */
ASEC_API int asec_copyright_engine_features(double *x, asec_model *m,
                                            const int64_t *tokens, size_t ntok)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3);

ASEC_END_DECLS

#endif /* ATTNSEC_COPYRIGHT_H */
