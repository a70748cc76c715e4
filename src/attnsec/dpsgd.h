/* attnsec/dpsgd.h - noisy SGD / DP-SGD training of the engine's models.
 *
 * DP-SGD (Abadi et al. 2016, Alg. 1; the defense of arXiv 2311.13624,
 * MATH.md section 3.3) on an asec_model (attnsec/model.h).  One step:
 *
 *   1. sample a batch: Poisson sampling, each of the n examples taken
 *      independently with probability q = batch / n (the default, and the
 *      assumption of the accountant), or shuffled fixed-size batches (a
 *      new random permutation each epoch; reported as such, see below);
 *   2. per-example gradients g_b = grad_theta l_b (B, P) in chunks
 *      (asec_model_grad_per_example), each clipped to L2 norm <= C with a
 *      verified norm (RELIABILITY.md section 3.2, step 1);
 *   3. release-grade noise (default): every clipped g_b is snapped to the
 *      lattice g Z (g a power of two fixed by sigma C alone), the snapped
 *      vectors are summed exactly in int64, and exact discrete Gaussian
 *      noise (CKS20, attnsec/noise.h) of standard deviation sigma C_eff is
 *      added in lattice units, where C_eff = C + g sqrt(P) / 2 is the
 *      sensitivity after snapping; the sum is converted back to double
 *      once.  With idealized = 1 the sum is a double sum and the noise
 *      N(0, sigma^2 C^2) comes from asec_rng_normal (fast, for research
 *      sweeps; reports say "idealized_numerics");
 *   4. the noisy sum is divided by the expected batch size q n (Poisson;
 *      the actual size is private) or the batch size (shuffle), and the
 *      optimiser (SGD, SGD with momentum, or Adam) updates theta;
 *   5. the accountant is charged one Poisson-subsampled Gaussian step
 *      (q, sigma) BEFORE the update becomes visible: a failure leaves
 *      theta and the ledger unchanged.
 *
 * Non-private training (sigma = 0, clip = 0) runs through the same loop
 * (same sampling, normalisation and optimiser) with the plain batch
 * gradient (asec_model_grad), so utility is compared on equal terms.
 *
 * Privacy statement.  Neighbouring datasets differ by adding or removing
 * one example; each step is a Poisson-subsampled Gaussian mechanism with
 * noise multiplier sigma relative to the charged sensitivity (C_eff in the
 * release-grade path, C when idealized).  The discrete Gaussian at the
 * lattice scale used here (sigma C / g > 2^(bits-1) >= 128 lattice units) is charged
 * as the continuous Gaussian of the same variance; CKS20 (Thm 14) bound
 * the multivariate difference by a term below exp(-2 pi^2 2^38), far
 * beneath double precision.  Shuffled batches are accounted as if they
 * were Poisson-sampled (the TF Privacy convention); that is NOT a formal
 * guarantee, and asec_dpsgd_info() says so.
 *
 * Randomness.  Two child streams of the caller's generator: "dpsgd/sample"
 * (batches) and "dpsgd/noise" (noise).  A seeded generator makes a run
 * reproducible bit for bit (same build, same BLAS thread count) and is
 * NOT a DP release; a secure one is.
 *
 * Checkpoints (asec_dpsgd_checkpoint_save/load) hold the parameters, the
 * optimiser state, the step, the shuffle state, the RNG stream positions
 * (seeded mode) and the accountant's ledger; a seeded run resumed from a
 * checkpoint produces exactly the bytes of an uninterrupted run.
 *
 * Shapes (row-major): data->x (n, input size) as asec_model_input_size(),
 * data->labels (n) or (n, T), data->soft (n, output size), data->tokens
 * (n, T); P = asec_model_param_count().
 *
 * Threads: a handle must not be used by two threads at once.
 */
#ifndef ATTNSEC_DPSGD_H
#define ATTNSEC_DPSGD_H

#include <stddef.h>
#include <stdint.h>

#include <attnsec/acct.h>
#include <attnsec/common.h>
#include <attnsec/model.h>
#include <attnsec/rng.h>

ASEC_BEGIN_DECLS

typedef enum asec_dpsgd_optim {
    ASEC_DPSGD_SGD = 0,      /* "sgd": theta -= lr g */
    ASEC_DPSGD_MOMENTUM = 1, /* "momentum": v = mu v + g; theta -= lr v (PyTorch) */
    ASEC_DPSGD_ADAM = 2      /* "adam": Kingma-Ba 2015 with bias correction */
} asec_dpsgd_optim;

typedef enum asec_dpsgd_schedule {
    ASEC_DPSGD_CONSTANT = 0, /* lr at every step */
    ASEC_DPSGD_COSINE = 1    /* lr_t = lr_final + (lr - lr_final) (1 + cos(pi (t - 1)
                                / (steps - 1))) / 2 for steps t = 1..steps */
} asec_dpsgd_schedule;

typedef enum asec_dpsgd_sampling {
    ASEC_DPSGD_POISSON = 0, /* "poisson": each example with probability q */
    ASEC_DPSGD_SHUFFLE = 1  /* "shuffle": fixed-size batches of a permutation */
} asec_dpsgd_sampling;

/* Options.  Start from ASEC_DPSGD_OPTIONS_INIT; fields are only appended. */
typedef struct asec_dpsgd_options {
    unsigned int version; /* ASEC_DPSGD_OPTIONS_VERSION */
    asec_dpsgd_optim optim;
    double lr;       /* > 0 */
    double momentum; /* [0, 1), MOMENTUM */
    double beta1;    /* [0, 1), ADAM */
    double beta2;    /* [0, 1), ADAM */
    double adam_eps; /* > 0, ADAM */
    asec_dpsgd_sampling sampling;
    size_t batch;          /* expected (Poisson: q = batch / n) or exact batch
                              size, 1..n */
    size_t steps;          /* steps to run, >= 1 */
    double clip;           /* C > 0; 0: no clipping (then sigma must be 0) */
    double sigma;          /* noise multiplier >= 0 (noise std sigma C) */
    int idealized;         /* 1: double sums and floating Gaussian noise */
    int granularity_bits;  /* lattice: g = 2^(ceil(log2(sigma C)) - bits),
                              bits in [8, 30] (the discrete Gaussian's
                              range); 0: ASEC_NOISE_DEFAULT_BITS */
    size_t chunk;          /* examples per per-example pass (memory: chunk P
                              doubles); 0: as many as fit in 1 MiB, 1..64
                              (4 on the default vit) */
    double target_epsilon; /* > 0: refuse steps that would take epsilon
                              (RDP, at delta) above it; 0: no limit */
    double delta;          /* (0, 1): the delta of target_epsilon */
    double ema;            /* [0, 1): decay of an exponential moving average
                              of the parameters after each step (0: none);
                              see asec_dpsgd_ema() */
    /* Version 3: */
    asec_dpsgd_schedule schedule; /* learning-rate schedule (CONSTANT) */
    double lr_final;              /* COSINE: the last step's rate, [0, lr] */
} asec_dpsgd_options;

/* Version 2 (without schedule and lr_final: a constant rate) is still
 * accepted. */
#define ASEC_DPSGD_OPTIONS_VERSION 3
#define ASEC_DPSGD_OPTIONS_INIT                                                          \
    {                                                                                    \
        ASEC_DPSGD_OPTIONS_VERSION, ASEC_DPSGD_ADAM, 1e-3, 0.9, 0.9, 0.999, 1e-8,        \
            ASEC_DPSGD_POISSON, 64, 100, 1.0, 1.0, 0, 0, 0, 0.0, 1e-5, 0.0,              \
            ASEC_DPSGD_CONSTANT, 0.0                                                     \
    }

/* A training set of n examples.  Borrowed: it must outlive the handle.
 * Give what the model kind needs (see asec_model_batch): x or tokens, and
 * labels or soft. */
typedef struct asec_dpsgd_data {
    size_t n;
    size_t T;              /* tokens per example; 0: the model's default */
    const double *x;       /* (n, input size) or NULL */
    const int64_t *tokens; /* (n, T) or NULL */
    const int64_t *labels; /* (n) or (n, T), or NULL */
    const double *soft;    /* (n, output size) or NULL */
} asec_dpsgd_data;

/* What a step did.  Norms are L2 norms of flat P-vectors. */
typedef struct asec_dpsgd_step {
    uint64_t step;       /* 1-based index of the step just taken */
    size_t batch;        /* examples sampled (may be 0 under Poisson) */
    double loss;         /* mean loss of the sampled batch before the update
                            (NaN for an empty batch); a diagnostic that is
                            not part of the DP release */
    double grad_norm;    /* norm of the noisy update direction (before the
                            optimiser) */
    double mean_norm;    /* mean per-example gradient norm before clipping
                            (NaN without per-example gradients) */
    double max_norm;     /* largest of those */
    double clipped_frac; /* fraction of the batch that was clipped */
} asec_dpsgd_step;

/* The privacy parameters of a run, for reports. */
typedef struct asec_dpsgd_info {
    double q;               /* sampling rate charged per step */
    double sigma;           /* noise multiplier charged per step */
    double clip;            /* C (0: none) */
    double sensitivity;     /* charged sensitivity: C_eff (release-grade) or C */
    double noise_std;       /* standard deviation of the noise in gradient
                               units: sigma * sensitivity, rounded up */
    double granularity;     /* g (0 when idealized or sigma == 0) */
    uint64_t noise_var_num; /* lattice-unit variance num/den of the discrete */
    uint64_t noise_var_den; /*   Gaussian (0/0 when not used) */
    size_t params;          /* P */
    int idealized;          /* as the options */
    int private_run;        /* 1 when sigma > 0 and clip > 0 */
    int sampling_formal;    /* 1 Poisson; 0 shuffle (accounted as Poisson) */
    uint64_t budget_steps;  /* the largest step count target_epsilon allows
                               (UINT64_MAX without a target) */
} asec_dpsgd_info;

typedef struct asec_dpsgd asec_dpsgd;

/* Prepare training of m (borrowed; updated in place by every step) on data
 * (borrowed) with opts.  rng (borrowed) is the parent of the sampling and
 * noise streams; its mode decides whether the run is a DP release.  The
 * handle owns a fresh accountant (ASEC_ACCT_OPTIONS_INIT, add-remove).
 * With target_epsilon > 0 the step limit is computed once here
 * (asec_acct_calibrate with ASEC_ACCT_PARAM_STEPS under RDP).
 *
 * Returns ASEC_OK, ASEC_EINVAL (an option out of range: the message names
 * it; sigma > 0 without clipping; a data member the model kind does not
 * take; n == 0 or batch > n), ASEC_EBADLEN (data shapes do not fit the
 * model), ASEC_EBUDGET (target_epsilon does not allow a single step), the
 * accountant's errors, or ASEC_ENOMEM.  Allocates the handle, the optimiser
 * state (up to 2 P doubles), a chunk of per-example gradients (chunk P
 * doubles), P int64s, batch buffers and two child streams. */
ASEC_API int asec_dpsgd_alloc(asec_dpsgd **out, asec_model *m,
                              const asec_dpsgd_data *data, const asec_dpsgd_options *opts,
                              const asec_rng *rng) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3, 4, 5);

/* Free the handle (not the model); NULL is a no-op. */
ASEC_API void asec_dpsgd_free(asec_dpsgd *d);

/* Take one step.  st (may be NULL) receives what it did.  Returns ASEC_OK;
 * ASEC_EBUDGET when the planned steps are done or the next step would
 * exceed target_epsilon (nothing is drawn, nothing changes); the model's
 * errors (ASEC_ENUMERIC for a non-finite loss, ...); ASEC_ELIMIT when the
 * int64 sum or the lattice range would overflow; ASEC_ENOMEM.  On failure
 * theta, the optimiser and the ledger are unchanged (the streams may have
 * advanced).  Allocates only when a Poisson batch is larger than any
 * before (the batch buffers grow). */
ASEC_API int asec_dpsgd_iterate(asec_dpsgd *d, asec_dpsgd_step *st) ASEC_WARN_UNUSED
    ASEC_NONNULL(1);

/* Steps taken so far (including those before a checkpoint). */
ASEC_API uint64_t asec_dpsgd_steps_done(const asec_dpsgd *d) ASEC_NONNULL(1);

/* The privacy parameters (see asec_dpsgd_info).  Allocates nothing. */
ASEC_API void asec_dpsgd_get_info(const asec_dpsgd *d, asec_dpsgd_info *out)
    ASEC_NONNULL(1, 2);

/* The handle's accountant (owned by d, valid until the next checkpoint
 * load or asec_dpsgd_free()): query it with asec_acct_epsilon(). */
ASEC_API const asec_acct *asec_dpsgd_get_acct(const asec_dpsgd *d) ASEC_NONNULL(1);

/* The exponential moving average of the parameters (P doubles, owned by d)
 * when opts.ema > 0, else NULL.  After step t it is
 *   a_t = b_t a_{t-1} + (1 - b_t) theta_t,  b_t = min(ema, (1 + t) / (10 + t)),
 * a_0 = theta_0 (the warm-up b_t keeps the initial parameters from
 * dominating short runs).  A function of the released iterates only, so
 * it costs no privacy (post-processing).  Valid until the next iterate,
 * checkpoint load or free. */
ASEC_API const double *asec_dpsgd_ema(const asec_dpsgd *d) ASEC_NONNULL(1);

/* Save a checkpoint to path (a safetensors file, atomic): tensors
 * "params", "opt.m", "opt.v" (P, F64; the optimiser's state, zero when
 * unused), "ema" (P, F64: the parameter average, zero when unused) and
 * "perm" (n, F64: the shuffle permutation), metadata
 * "attnsec.content" = "dpsgd-checkpoint", the architecture JSON, the
 * options (attnsec.dpsgd.options), the step and stream state
 * (attnsec.dpsgd.state) and the accountant (attnsec.dpsgd.accountant,
 * asec_acct_to_json).  Returns ASEC_OK, ASEC_ENOMEM or the errors of
 * asec_io_st_write(). */
ASEC_API int asec_dpsgd_checkpoint_save(const asec_dpsgd *d,
                                        const char *path) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* Restore a checkpoint written by asec_dpsgd_checkpoint_save() into d,
 * which must have been allocated with the same architecture, data size
 * and options (else ASEC_EINVAL naming the mismatch).  The model's
 * parameters, the optimiser, the step, the streams and the accountant are
 * replaced.  A seeded handle needs a checkpoint from a seeded run with the
 * same seed (ASEC_EINVAL otherwise); a secure handle continues with fresh
 * secure randomness.  Returns ASEC_OK, ASEC_EINVAL, the asec_io_open()
 * errors (ASEC_ENOENT, ASEC_EFORMAT, ...), ASEC_EFORMAT for a file that is
 * not a checkpoint or is inconsistent, the accountant's errors, or
 * ASEC_ENOMEM.  On failure d is unchanged. */
ASEC_API int asec_dpsgd_checkpoint_load(asec_dpsgd *d, const char *path) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* Clip v (n doubles) in place to L2 norm <= clip (> 0) with a verified
 * norm: s = min(1, clip / ||v||), and s is stepped down with nextafter
 * until ||s v||, computed in long double, is <= clip (RELIABILITY.md
 * section 3.2, step 1).  norm (may be NULL) receives ||v|| before
 * clipping.  Returns 1 when v was scaled, 0 when it was not, or
 * ASEC_EINVAL (clip not finite and positive) or ASEC_ENUMERIC (v not
 * finite; v unchanged).  Allocates nothing. */
ASEC_API int asec_dpsgd_clip(double *v, size_t n, double clip,
                             double *norm) ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Evaluate m on data in batches of at most batch (0: 256) examples: the
 * mean loss into *loss and, for classifiers with hard labels, the
 * fraction of correct argmax predictions (over all prediction rows) into
 * *accuracy (NaN otherwise).  Either output may be NULL.  Returns ASEC_OK
 * or the errors of asec_model_forward(); ASEC_ENOMEM.  Allocates the
 * logits of one batch. */
ASEC_API int asec_dpsgd_evaluate(asec_model *m, const asec_dpsgd_data *data, size_t batch,
                                 double *loss, double *accuracy) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* The convergence bound of SGD with perturbed gradients (MATH.md section
 * 3.4, the form of the theorem of arXiv 2311.13624).  For a loss L that
 * is beta-smooth and bounded below by loss_min, and updates
 *     theta_{t+1} = theta_t - eta (g_t + xi_t),   eta <= 1 / beta,
 * with g_t an unbiased estimate of grad L(theta_t) of variance <= var_s
 * and xi_t noise of mean 0 and variance <= noise_var per coordinate
 * (p = params coordinates), after T = steps steps:
 *     (1/T) sum_{t<T} E ||grad L(theta_t)||^2
 *         <= 2 (loss0 - loss_min) / (eta T) + beta eta (var_s + p noise_var)
 * (descent lemma, summed; the first term is "optimization", the second
 * "noise", which does not decay with T). */
typedef struct asec_dpsgd_bound_params {
    double loss0;     /* L(theta_0) */
    double loss_min;  /* a lower bound L* of L (0 for a squared loss) */
    double beta;      /* smoothness, > 0 */
    double eta;       /* step size, in (0, 1 / beta] */
    double var_s;     /* sampling variance, >= 0 (0 for full batches) */
    double noise_var; /* per-coordinate noise variance, >= 0 */
    size_t params;    /* p >= 1 */
    uint64_t steps;   /* T >= 1 */
} asec_dpsgd_bound_params;

typedef struct asec_dpsgd_bound {
    double total;        /* the bound */
    double optimization; /* 2 (loss0 - loss_min) / (eta T) */
    double noise;        /* beta eta (var_s + p noise_var) */
} asec_dpsgd_bound;

/* Evaluate the bound above into *out.  Returns ASEC_OK or ASEC_EINVAL (a
 * value not finite or out of its range, loss0 < loss_min, or eta >
 * 1 / beta, where the theorem does not apply; the message says which).
 * Allocates nothing. */
ASEC_API int asec_dpsgd_sgd_bound(asec_dpsgd_bound *out,
                                  const asec_dpsgd_bound_params *b) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* Names ("sgd", "momentum", "adam"; "poisson", "shuffle"; "?" for a bad
 * value) and their parsers (ASEC_EINVAL for an unknown name). */
ASEC_API const char *asec_dpsgd_optim_name(asec_dpsgd_optim o);
ASEC_API const char *asec_dpsgd_sampling_name(asec_dpsgd_sampling s);
ASEC_API int asec_dpsgd_optim_parse(asec_dpsgd_optim *out,
                                    const char *name) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);
ASEC_API int asec_dpsgd_sampling_parse(asec_dpsgd_sampling *out,
                                       const char *name) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

ASEC_END_DECLS

#endif /* ATTNSEC_DPSGD_H */
