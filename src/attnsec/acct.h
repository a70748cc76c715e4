/* attnsec/acct.h - the privacy accountant: (epsilon, delta) guarantees of
 * composed mechanisms, DP-SGD first.
 *
 * An accountant is a ledger of events (mechanism, parameters, how many
 * times it ran).  Queries compose the ledger on demand with one of several
 * methods and never change it:
 *
 *   ASEC_ACCT_RDP       Renyi DP on an order grid (default: dp_accounting's
 *                       156 orders 1.1..10.9 step 0.1, 11..63, 128, 256, 512,
 *                       1024).  log A_alpha of the subsampled Gaussian is
 *                       exact: a positive binomial sum for integer orders,
 *                       a quadrature with an explicit error bound for
 *                       fractional ones.  Conversion to (epsilon, delta):
 *                       Balle et al. 2020 Thm 21 / Canonne-Kamath-Steinke
 *                       2020 Prop. 12 (orders > 1.01) and the KL bound;
 *                       with options.legacy, Mironov 2017 Prop. 3
 *                       (epsilon = rdp - log(delta)/(alpha - 1)), which
 *                       reproduces the published DP-SGD numbers.
 *   ASEC_ACCT_PLD       privacy loss distributions on a grid of spacing dx:
 *                       a pessimistic discretization (connect-the-dots,
 *                       Doroshenko et al. 2022) and an optimistic one
 *                       (output binning with grid-valued likelihood
 *                       ratios), composed by FFT.  The answer is a
 *                       certified bracket [epsilon_lo, epsilon]: epsilon is
 *                       a valid upper bound, epsilon_lo a valid lower bound
 *                       of the tight value (up to floating-point rounding,
 *                       whose bound is included).  Both the add and the
 *                       remove direction are composed; the larger wins.
 *   ASEC_ACCT_EXACT     closed forms: analytic Gaussian (Balle-Wang 2018)
 *                       and mu-GDP composition (Dong-Roth-Su) for ledgers
 *                       made only of Gaussian (q = 1) events.
 *   ASEC_ACCT_GDP_CLT   the central-limit mu-GDP approximation of
 *                       Bu et al. 2020 (Opacus "gdp").  NOT a bound:
 *                       result.is_bound is 0.
 *   ASEC_ACCT_BASIC     classical composition, (sum epsilon_i, sum delta_i)
 *   ASEC_ACCT_ADVANCED  advanced composition (Dwork-Rothblum-Vadhan 2010),
 *                       the analysis of the noisy-gradient papers; for
 *                       comparison only, always looser.
 *   ASEC_ACCT_AUTO      the tightest certified method that applies: EXACT,
 *                       else PLD, else RDP (result.method tells which).
 *
 * Mechanisms (each with a repetition count):
 *   Gaussian (noise multiplier sigma = stddev / L2 sensitivity);
 *   Poisson-subsampled Gaussian, rate q (add-remove; PLD composes both the
 *   add and the remove direction); fixed-size sampling without replacement
 *   of q = m/n (replace-one only; Wang-Balle-Kasiviswanathan 2019 Thm 27;
 *   RDP only); Laplace (scale b = scale / L1 sensitivity) and
 *   Poisson-subsampled Laplace; pure epsilon-DP; (epsilon, delta)-DP; and
 *   rho-zCDP (RDP only).  The noise multiplier is always relative to the
 *   sensitivity under the accountant's neighbouring relation: for
 *   replace-one with clipped per-example gradients summed, that is 2C,
 *   not C (dp_accounting's convention; the library does not double it).
 *
 * Threading: an accountant may be read by one thread at a time (queries
 * fill internal caches); distinct accountants are independent.  Nothing
 * here prints, exits or reads the environment.
 */
#ifndef ATTNSEC_ACCT_H
#define ATTNSEC_ACCT_H

#include <stddef.h>
#include <stdint.h>

#include <attnsec/common.h>

ASEC_BEGIN_DECLS

typedef struct asec_acct asec_acct;

typedef enum asec_acct_relation {
    ASEC_ACCT_ADD_REMOVE = 0, /* add or remove one example (default) */
    ASEC_ACCT_REPLACE_ONE = 1 /* replace one example by another */
} asec_acct_relation;

typedef enum asec_acct_method {
    ASEC_ACCT_RDP = 0,
    ASEC_ACCT_PLD = 1,
    ASEC_ACCT_EXACT = 2,
    ASEC_ACCT_GDP_CLT = 3,
    ASEC_ACCT_BASIC = 4,
    ASEC_ACCT_ADVANCED = 5,
    ASEC_ACCT_AUTO = 6
} asec_acct_method;

/* Named RDP order grids. */
typedef enum asec_acct_grid {
    ASEC_ACCT_GRID_DP_ACCOUNTING = 0, /* 156 orders, up to 1024 (default) */
    ASEC_ACCT_GRID_OPACUS = 1,        /* 1.1..10.9 step 0.1, 12..63 (151) */
    ASEC_ACCT_GRID_TF_PRIVACY = 2     /* 1.25..4.5, 5..63, 128, 256, 512 (72) */
} asec_acct_grid;

typedef enum asec_acct_event_kind {
    ASEC_ACCT_EV_GAUSSIAN = 0,         /* sigma */
    ASEC_ACCT_EV_POISSON_GAUSSIAN = 1, /* q, sigma */
    ASEC_ACCT_EV_WOR_GAUSSIAN = 2,     /* q = m/n, sigma; replace-one only */
    ASEC_ACCT_EV_LAPLACE = 3,          /* sigma = Laplace scale b */
    ASEC_ACCT_EV_POISSON_LAPLACE = 4,  /* q, sigma = b */
    ASEC_ACCT_EV_PURE = 5,             /* epsilon */
    ASEC_ACCT_EV_APPROX = 6,           /* epsilon, delta */
    ASEC_ACCT_EV_ZCDP = 7              /* rho, xi */
} asec_acct_event_kind;

/* One ledger entry: a mechanism run count times.  Fields the kind does not
 * use are ignored on input and 0 on output. */
typedef struct asec_acct_event {
    asec_acct_event_kind kind;
    double q;       /* sampling rate, (0, 1]; 1 for unsampled kinds */
    double sigma;   /* noise multiplier (Gaussian) or scale (Laplace), > 0 */
    double epsilon; /* PURE, APPROX: >= 0 */
    double delta;   /* APPROX: [0, 1) */
    double rho;     /* ZCDP: >= 0 */
    double xi;      /* ZCDP: >= 0 */
    uint64_t count; /* >= 1 */
} asec_acct_event;

/* Options.  Start from ASEC_ACCT_OPTIONS_INIT; fields are only appended,
 * and version tells the library which layout the caller was built with. */
typedef struct asec_acct_options {
    unsigned int version;        /* ASEC_ACCT_OPTIONS_VERSION */
    asec_acct_relation relation; /* ASEC_ACCT_ADD_REMOVE */
    int legacy;                  /* 1: Mironov 2017 RDP conversion */
    int refine_order;            /* 1: also minimise over continuous alpha
                                    near the best grid order (RDP) */
    asec_acct_grid grid;         /* named order grid, unless orders != NULL */
    const double *orders;        /* custom orders (copied), each > 1, or NULL */
    size_t n_orders;             /* 1..4096 when orders != NULL */
    double pld_dx;               /* PLD grid spacing; 0: adaptive */
    double pld_bracket_rtol;     /* PLD: refine dx until the bracket is at most
                                    max(rtol * epsilon, 0.5 * rtol); 0: 2e-4 */
    size_t max_bytes;            /* PLD memory cap in bytes; 0: 256 MiB */
} asec_acct_options;

#define ASEC_ACCT_OPTIONS_VERSION 1
#define ASEC_ACCT_OPTIONS_INIT                                                           \
    {                                                                                    \
        ASEC_ACCT_OPTIONS_VERSION, ASEC_ACCT_ADD_REMOVE, 0, 0,                           \
            ASEC_ACCT_GRID_DP_ACCOUNTING, NULL, 0, 0.0, 0.0, 0                           \
    }

/* The answer of a query.  Unused fields are NAN (doubles) or 0. */
typedef struct asec_acct_result {
    asec_acct_method method; /* the method that produced the numbers */
    int is_bound;            /* 1: a guarantee; 0: an estimate (GDP_CLT) */
    double epsilon;          /* epsilon(delta) (upper end) or the epsilon asked */
    double epsilon_lo;       /* PLD: certified lower end; else == epsilon */
    double delta;            /* delta(epsilon) (upper end) or the delta asked */
    double delta_lo;         /* PLD: certified lower end; else == delta */
    double order;            /* RDP: optimal order */
    int order_at_edge;       /* RDP: optimum is the largest order of the grid
                                (widen the grid or use refine_order) */
    double mu;               /* EXACT, GDP_CLT: the mu of mu-GDP */
    double pld_dx;           /* PLD: grid spacing used */
    size_t pld_points;       /* PLD: FFT length used */
} asec_acct_result;

/* Create an empty accountant.  opts may be NULL (defaults).  On success
 * *out owns the accountant; free it with asec_acct_free().  Returns
 * ASEC_OK, ASEC_EINVAL (options out of range: unknown version, relation or
 * grid, an order <= 1 or non-finite, n_orders outside 1..4096, pld_dx < 0,
 * pld_bracket_rtol outside [0, 0.1]) or ASEC_ENOMEM.  Allocates the
 * accountant and a copy of the order grid. */
ASEC_API int asec_acct_alloc(asec_acct **out,
                             const asec_acct_options *opts) ASEC_WARN_UNUSED
    ASEC_NONNULL(1);
ASEC_API void asec_acct_free(asec_acct *a); /* NULL: no-op */

/* A deep copy of a (ledger, options, caches).  ASEC_ENOMEM. */
ASEC_API int asec_acct_clone(asec_acct **out, const asec_acct *a) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* Append an event to the ledger.  Consecutive identical events are merged
 * (counts add), so per-step updates keep the ledger short.  Returns
 * ASEC_OK, ASEC_EINVAL (a parameter out of the range documented in
 * asec_acct_event, a non-finite value, count 0, WOR sampling under
 * add-remove, Poisson sampling under replace-one, or a total count that
 * would exceed 2^62) or ASEC_ENOMEM.  On failure the ledger is unchanged.
 * A Poisson event with q = 1 is recorded as its unsampled kind. */
ASEC_API int asec_acct_add(asec_acct *a, const asec_acct_event *ev) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* Shorthands for asec_acct_add(). */
ASEC_API int asec_acct_add_gaussian(asec_acct *a, double sigma,
                                    uint64_t count) ASEC_WARN_UNUSED ASEC_NONNULL(1);
ASEC_API int asec_acct_add_poisson_gaussian(asec_acct *a, double q, double sigma,
                                            uint64_t count) ASEC_WARN_UNUSED
    ASEC_NONNULL(1);

/* One DP-SGD step: a Poisson-subsampled Gaussian with rate q and noise
 * multiplier sigma, counted once.  When the last event has the same
 * parameters this is O(1) and allocates nothing (cached RDP curves stay
 * valid); otherwise as asec_acct_add(). */
ASEC_API int asec_acct_step(asec_acct *a, double q, double sigma) ASEC_WARN_UNUSED
    ASEC_NONNULL(1);

/* A schedule of segments (q_t, sigma_t, count_t): heterogeneous DP-SGD
 * with batch warm-up or noise decay.  All segments are validated first;
 * on failure nothing is added. */
typedef struct asec_acct_segment {
    double q;
    double sigma;
    uint64_t count;
} asec_acct_segment;

ASEC_API int asec_acct_add_schedule(asec_acct *a, const asec_acct_segment *seg,
                                    size_t n) ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Compose a DpEvent-like JSON tree (the schema is in attnsec-account(1)):
 *   {"type": "gaussian", "noise_multiplier": S}
 *   {"type": "laplace", "noise_multiplier": B}
 *   {"type": "epsilon_delta", "epsilon": E, "delta": D}
 *   {"type": "zcdp", "rho": R, "xi": X}
 *   {"type": "no_op"}
 *   {"type": "poisson_sampled", "sampling_probability": Q, "event": EV}
 *   {"type": "sampled_without_replacement", "source_dataset_size": N,
 *    "sample_size": M, "event": EV}
 *   {"type": "self_composed", "count": K, "event": EV}
 *   {"type": "composed", "events": [EV, ...]}
 * dp_accounting's class names ("GaussianDpEvent", ...) are accepted as
 * types.  Sampled events must wrap Gaussians (possibly composed: their
 * noise multipliers fold into one, 1/s^2 = sum 1/s_i^2) or a Laplace.
 * The text is untrusted: at most 16 MiB, depth 64, 100000 nodes; every
 * field is type- and range-checked; unknown keys and duplicate keys are
 * errors.  Returns ASEC_OK, ASEC_EFORMAT (malformed: the message names the
 * JSON path, e.g. "events[2].count: expected a positive integer"),
 * ASEC_ELIMIT (a cap exceeded), ASEC_EINVAL (a well-formed event the
 * ledger refuses as asec_acct_add() does: sampling without replacement
 * under add-remove, Poisson sampling under replace-one, or noise
 * multipliers that compose to one out of range) or ASEC_ENOMEM.  On
 * failure the ledger is unchanged. */
ASEC_API int asec_acct_add_events_json(asec_acct *a, const char *json,
                                       size_t len) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* The ledger: number of (merged) events and a copy of one of them.
 * asec_acct_event_at returns ASEC_EINVAL for i out of range. */
ASEC_API size_t asec_acct_num_events(const asec_acct *a) ASEC_NONNULL(1);
ASEC_API int asec_acct_event_at(const asec_acct *a, size_t i,
                                asec_acct_event *out) ASEC_WARN_UNUSED ASEC_NONNULL(1, 3);

/* epsilon(delta): the smallest epsilon the method certifies for the whole
 * ledger at delta in (0, 1).  An empty ledger gives 0.  Infinite epsilon
 * (e.g. delta below the sum of the APPROX deltas) is returned as INFINITY
 * with ASEC_OK; NaN and negative values are never returned.  Returns
 * ASEC_OK, ASEC_EINVAL (delta out of range, unknown method), ASEC_ENOTSUP
 * (the method cannot handle an event of the ledger, e.g. PLD with a zCDP
 * or WOR event, EXACT with a sampled event), ASEC_ELIMIT (PLD would need
 * more than options.max_bytes), ASEC_ENUMERIC (the error bound of a
 * computation exceeded its tolerance) or ASEC_ENOMEM.  Allocates only
 * temporaries (PLD: the FFT arrays) and caches. */
ASEC_API int asec_acct_epsilon(const asec_acct *a, asec_acct_method method, double delta,
                               asec_acct_result *out) ASEC_WARN_UNUSED ASEC_NONNULL(1, 4);

/* delta(epsilon) for epsilon >= 0; same errors as asec_acct_epsilon(). */
ASEC_API int asec_acct_delta(const asec_acct *a, asec_acct_method method, double epsilon,
                             asec_acct_result *out) ASEC_WARN_UNUSED ASEC_NONNULL(1, 4);

/* The RDP curve of the ledger: up to cap (order, rdp) pairs into orders[]
 * and rdp[] (either may be NULL to skip it), *n = the grid size.  rdp may
 * be INFINITY (e.g. an APPROX event's delta part is not in it). */
ASEC_API int asec_acct_rdp(const asec_acct *a, double *orders, double *rdp, size_t cap,
                           size_t *n) ASEC_WARN_UNUSED ASEC_NONNULL(1, 5);

/* ---------------------------------------------------------------- calibration */

typedef enum asec_acct_param {
    ASEC_ACCT_PARAM_SIGMA = 0, /* the smallest noise multiplier that meets the target */
    ASEC_ACCT_PARAM_STEPS = 1, /* the largest number of steps that meets it */
    ASEC_ACCT_PARAM_Q = 2      /* the largest sampling rate that meets it */
} asec_acct_param;

typedef enum asec_acct_sampling {
    ASEC_ACCT_POISSON = 0, /* Poisson sampling, add-remove */
    ASEC_ACCT_WOR = 1      /* fixed-size sampling without replacement, replace-one */
} asec_acct_sampling;

/* A calibration problem: new DP-SGD steps (q, sigma, steps) appended to
 * whatever the base accountant already holds must satisfy
 * (target_epsilon, delta)-DP.  One of q, sigma, steps is solved for; the
 * other two are given. */
typedef struct asec_acct_calib {
    unsigned int version; /* ASEC_ACCT_CALIB_VERSION */
    asec_acct_param solve;
    asec_acct_sampling sampling;
    double q;              /* (0, 1] unless solved for */
    double sigma;          /* > 0 unless solved for */
    uint64_t steps;        /* >= 1 unless solved for */
    double target_epsilon; /* > 0 */
    double delta;          /* (0, 1) */
    double rtol;           /* sigma and q: relative tolerance; 0: 1e-6 */
} asec_acct_calib;

#define ASEC_ACCT_CALIB_VERSION 1
#define ASEC_ACCT_CALIB_INIT                                                             \
    {                                                                                    \
        ASEC_ACCT_CALIB_VERSION, ASEC_ACCT_PARAM_SIGMA, ASEC_ACCT_POISSON, 0.0, 0.0, 0,  \
            0.0, 0.0, 0.0                                                                \
    }

/* Solve a calibration problem with method (not GDP_CLT: calibrating on an
 * estimate is refused).  The answer is conservative: the returned value
 * provably meets the target under the method (checked after the search:
 * epsilon(value) <= target_epsilon, where for PLD epsilon is the upper end
 * of the bracket), and for sigma and q it is within rtol of the exact
 * threshold of that method.  *out gets sigma, steps (as a double holding
 * an integer) or q; res (may be NULL) the result of the final check.
 * Returns ASEC_OK, ASEC_EINVAL (problem out of range), ASEC_EBUDGET (no
 * value meets the target: even sigma = 1e6, one step, or the base ledger
 * alone already exceeds it), ASEC_ENOTSUP, ASEC_ELIMIT, ASEC_ENUMERIC or
 * ASEC_ENOMEM.  base is not modified. */
ASEC_API int asec_acct_calibrate(const asec_acct *base, asec_acct_method method,
                                 const asec_acct_calib *c, double *out,
                                 asec_acct_result *res) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 3, 4);

/* ---------------------------------------------------------------- checkpoints */

/* Serialize the accountant (options and ledger, not caches) as a JSON
 * object: {"format": "attnsec-accountant", "version": 1, "relation": ...,
 * "legacy": ..., "orders": [...], "events": [...]}.  *out is a
 * NUL-terminated string owned by the caller, freed with
 * asec_acct_json_free().  Counts are exact; doubles round-trip.
 * ASEC_ENOMEM. */
ASEC_API int asec_acct_to_json(const asec_acct *a, char **out) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);
ASEC_API void asec_acct_json_free(char *s); /* NULL: no-op */

/* Restore an accountant written by asec_acct_to_json().  Strict: the same
 * caps and checks as asec_acct_add_events_json().  ASEC_EFORMAT,
 * ASEC_ELIMIT, ASEC_ENOMEM. */
ASEC_API int asec_acct_from_json(asec_acct **out, const char *json,
                                 size_t len) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* ---------------------------------------------------------------- closed forms */

/* mu-GDP (equivalently the Gaussian mechanism with sensitivity/sigma = mu):
 * delta(epsilon) = Phi(-epsilon/mu + mu/2) - e^epsilon Phi(-epsilon/mu - mu/2)
 * (Balle-Wang 2018 Thm 8; Dong-Roth-Su 2019).  mu > 0, epsilon >= 0.
 * T Gaussian releases with noise multipliers s_t compose to
 * mu = sqrt(sum 1/s_t^2).  ASEC_EINVAL. */
ASEC_API int asec_acct_gaussian_delta(double mu, double epsilon,
                                      double *out) ASEC_WARN_UNUSED ASEC_NONNULL(3);
/* The epsilon >= 0 with delta(epsilon) = delta, delta in (0, 1); 0 when
 * delta(0) <= delta.  Relative accuracy 1e-12.  ASEC_EINVAL. */
ASEC_API int asec_acct_gaussian_epsilon(double mu, double delta,
                                        double *out) ASEC_WARN_UNUSED ASEC_NONNULL(3);
/* The largest mu with delta(epsilon) <= delta (epsilon > 0, delta in
 * (0, 1)); the analytic Gaussian noise multiplier is 1/mu.  ASEC_EINVAL. */
ASEC_API int asec_acct_gaussian_mu(double epsilon, double delta,
                                   double *out) ASEC_WARN_UNUSED ASEC_NONNULL(3);
/* The classical calibration sigma = sqrt(2 log(1.25/delta)) / epsilon
 * (Dwork-Roth Thm A.1; valid for epsilon < 1, returned for any epsilon >
 * 0 with the caveat stated in asec_acct(3)).  ASEC_EINVAL. */
ASEC_API int asec_acct_classic_sigma(double epsilon, double delta,
                                     double *out) ASEC_WARN_UNUSED ASEC_NONNULL(3);
/* Advanced composition of k mechanisms, each (eps0, delta0)-DP:
 * epsilon = sqrt(2 k log(1/slack)) eps0 + k eps0 (e^eps0 - 1),
 * delta = k delta0 + slack (Dwork-Rothblum-Vadhan 2010, Dwork-Roth Thm
 * 3.20).  ASEC_EINVAL. */
ASEC_API int asec_acct_advanced(double eps0, double delta0, uint64_t k, double slack,
                                double *eps_out, double *delta_out) ASEC_WARN_UNUSED
    ASEC_NONNULL(5, 6);

/* Names for reports: "rdp", "pld", "exact", "gdp-clt", "basic", "advanced",
 * "auto"; "add-remove", "replace-one".  Static strings. */
ASEC_API const char *asec_acct_method_name(asec_acct_method m);
ASEC_API const char *asec_acct_relation_name(asec_acct_relation r);

ASEC_END_DECLS

#endif /* ATTNSEC_ACCT_H */
