/* acct_internal.h - NOT installed.  The accountant's state and the
 * functions shared by acct.c (ledger, queries, calibration, JSON),
 * acct_rdp.c (Renyi DP), acct_pld.c (privacy loss distributions) and
 * acct_closed.c (closed forms and special functions). */
#ifndef ATTNSEC_ACCT_INTERNAL_H
#define ATTNSEC_ACCT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "attnsec/acct.h"

/* Orders are restricted to (1, ACCT_MAX_ORDER]: the integer-order sums
 * use a table of log k! up to this bound. */
#define ACCT_MAX_ORDER 4096.0
#define ACCT_MAX_ORDERS 4096
/* Counts are capped so that sums of counts and count * 2^k stay exact in
 * a uint64_t and in a double's 53-bit mantissa where it matters. */
#define ACCT_MAX_COUNT ((uint64_t)1 << 62)

/* M_PI is not ISO C. */
#define ACCT_PI 3.14159265358979323846
#define ACCT_SQRT1_2 0.70710678118654752440

/* One ledger entry with its cached per-step RDP curve (NULL until used). */
struct acct_entry {
    asec_acct_event ev;
    double *rdp; /* (n_orders,) per step, or NULL */
};

struct asec_acct {
    asec_acct_relation relation;
    int legacy;
    int refine_order;
    asec_acct_grid grid;
    int custom_orders; /* orders came from options.orders */
    double *orders;    /* (n_orders,), ascending, distinct */
    size_t n_orders;
    double pld_dx;
    double pld_rtol;
    size_t max_bytes;
    int pld_upper_only;     /* internal (calibration): PLD upper end only, fixed dx */
    struct acct_entry *ent; /* (n_ent,) */
    size_t n_ent;
    size_t cap_ent;
};

/* ------------------------------------------------------------------ RDP */

/* Per-step RDP of one event at every order of a: rdp[i] = D_{orders[i]}.
 * rdp (n_orders,) is written.  ASEC_ENOMEM or ASEC_ENUMERIC. */
int asec_acct__rdp_event(const asec_acct *a, const asec_acct_event *ev, double *rdp);

/* Per-step RDP of one event at one order alpha in (1, ACCT_MAX_ORDER]. */
int asec_acct__rdp_event_order(const asec_acct_event *ev, double alpha, double *out);

/* log A_alpha - 1 style helpers exposed for the tests of the quadrature:
 * log A_alpha of the Poisson-subsampled Gaussian, 0 < q < 1, sigma > 0. */
int asec_acct__log_a_sgm(double q, double sigma, double alpha, double *out);

/* The composed RDP curve of the ledger (count * per-step curve, summed)
 * into total (n_orders,), and the extra delta of APPROX events. */
int asec_acct__rdp_total(const asec_acct *a, double *total, double *extra_delta);

/* Conversions on a curve (orders ascending).  eps_out/delta_out are >= 0,
 * possibly INFINITY; order_out is the optimal order. */
void asec_acct__rdp_to_epsilon(const double *orders, const double *rdp, size_t n,
                               double delta, int legacy, double *eps_out,
                               double *order_out, size_t *index_out);
void asec_acct__rdp_to_delta(const double *orders, const double *rdp, size_t n,
                             double epsilon, int legacy, double *delta_out,
                             double *order_out, size_t *index_out);
/* The epsilon one order gives (the conversion of the curve at one point). */
double asec_acct__rdp_eps_at(double alpha, double rdp, double delta, int legacy);

/* epsilon(delta) / delta(epsilon) with the RDP method (refinement
 * included when the accountant asks for it). */
int asec_acct__rdp_epsilon(const asec_acct *a, double delta, asec_acct_result *out);
int asec_acct__rdp_delta(const asec_acct *a, double epsilon, asec_acct_result *out);

/* ------------------------------------------------------------------ PLD */

int asec_acct__pld_epsilon(const asec_acct *a, double delta, asec_acct_result *out);
int asec_acct__pld_delta(const asec_acct *a, double epsilon, asec_acct_result *out);

/* ------------------------------------------------------------------ special functions */

/* Upper tail of the standard normal, Phi(-x) = P(Z > x), accurate in
 * relative terms for every x (underflows to 0 beyond x ~ 38). */
double asec_acct__normal_q(double x);
/* log P(Z > x), accurate for every finite x (asymptotic series far out). */
double asec_acct__log_normal_q(double x);
/* log(exp(a) + exp(b)), with -INFINITY as the log of 0. */
double asec_acct__log_add(double a, double b);
/* log(expm1(x)) for x > 0, accurate for tiny and huge x. */
double asec_acct__log_expm1(double x);
/* log C(n, k) for integers 0 <= k <= n <= ACCT_MAX_ORDER, long double. */
long double asec_acct__log_binom_int(unsigned n, unsigned k);

#endif /* ATTNSEC_ACCT_INTERNAL_H */
