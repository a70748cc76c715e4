/* acct.c - the accountant object: options, the ledger of events, query
 * dispatch, the composition-theorem and closed-form methods, calibration,
 * checkpoints and the DpEvent-like JSON reader.  RDP lives in acct_rdp.c,
 * PLD in acct_pld.c, closed forms in acct_closed.c. */
#include "config.h"

#include <math.h>
#include <string.h>

#include <jansson.h>

#include "acct_internal.h"
#include "internal.h"

#define JSON_MAX_BYTES ((size_t)16 << 20)
#define JSON_MAX_DEPTH 64
#define JSON_MAX_NODES 100000
#define DEFAULT_MAX_BYTES ((size_t)256 << 20)
#define DEFAULT_PLD_RTOL 2e-4
#define CAL_SIGMA_MAX 1e6
#define CAL_SIGMA_MIN 1e-3

/* ------------------------------------------------------------------ order grids */

static size_t
grid_orders(asec_acct_grid g, double *out)
{
    size_t n = 0;

    switch (g) {
    case ASEC_ACCT_GRID_DP_ACCOUNTING:
        for (int x = 1; x < 100; x++)
            out[n++] = 1.0 + x / 10.0;
        for (int x = 11; x < 64; x++)
            out[n++] = x;
        out[n++] = 128;
        out[n++] = 256;
        out[n++] = 512;
        out[n++] = 1024;
        break;
    case ASEC_ACCT_GRID_OPACUS:
        for (int x = 1; x < 100; x++)
            out[n++] = 1.0 + x / 10.0;
        for (int x = 12; x < 64; x++)
            out[n++] = x;
        break;
    case ASEC_ACCT_GRID_TF_PRIVACY: {
        static const double lo[] = {1.25, 1.5, 1.75, 2., 2.25, 2.5, 3., 3.5, 4., 4.5};

        for (size_t i = 0; i < sizeof lo / sizeof lo[0]; i++)
            out[n++] = lo[i];
        for (int x = 5; x < 64; x++)
            out[n++] = x;
        out[n++] = 128;
        out[n++] = 256;
        out[n++] = 512;
        break;
    }
    }
    return n;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------ lifetime */

static int
check_options(const asec_acct_options *o)
{
    if (o->version != ASEC_ACCT_OPTIONS_VERSION)
        ASEC_FAIL(ASEC_EINVAL, "accountant options version %u is not %u", o->version,
                  (unsigned)ASEC_ACCT_OPTIONS_VERSION);
    if (o->relation != ASEC_ACCT_ADD_REMOVE && o->relation != ASEC_ACCT_REPLACE_ONE)
        ASEC_FAIL(ASEC_EINVAL, "unknown neighbouring relation %d", (int)o->relation);
    if (o->grid != ASEC_ACCT_GRID_DP_ACCOUNTING && o->grid != ASEC_ACCT_GRID_OPACUS &&
        o->grid != ASEC_ACCT_GRID_TF_PRIVACY)
        ASEC_FAIL(ASEC_EINVAL, "unknown order grid %d", (int)o->grid);
    if (o->orders != NULL) {
        if (o->n_orders < 1 || o->n_orders > ACCT_MAX_ORDERS)
            ASEC_FAIL(ASEC_EINVAL, "%zu orders: need 1..%d", o->n_orders,
                      ACCT_MAX_ORDERS);
        for (size_t i = 0; i < o->n_orders; i++)
            if (!(o->orders[i] > 1.0 && o->orders[i] <= ACCT_MAX_ORDER))
                ASEC_FAIL(ASEC_EINVAL, "order %g is outside (1, %g]", o->orders[i],
                          ACCT_MAX_ORDER);
    }
    if (!(o->pld_dx >= 0.0) || !isfinite(o->pld_dx) ||
        (o->pld_dx > 0.0 && o->pld_dx < 1e-9))
        ASEC_FAIL(ASEC_EINVAL, "pld_dx %g is negative, below 1e-9 or not finite",
                  o->pld_dx);
    if (!(o->pld_bracket_rtol >= 0.0 && o->pld_bracket_rtol <= 0.1))
        ASEC_FAIL(ASEC_EINVAL, "pld_bracket_rtol %g is outside [0, 0.1]",
                  o->pld_bracket_rtol);
    return ASEC_OK;
}

int
asec_acct_alloc(asec_acct **out, const asec_acct_options *opts)
{
    static const asec_acct_options defaults = ASEC_ACCT_OPTIONS_INIT;
    asec_acct *a;
    size_t n;

    *out = NULL;
    if (opts == NULL)
        opts = &defaults;
    ASEC_TRY(check_options(opts));
    a = asec__calloc(1, sizeof *a);
    if (a == NULL)
        return ASEC_ENOMEM;
    n = opts->orders != NULL ? opts->n_orders : 160;
    a->orders = asec__malloc(n * sizeof *a->orders);
    if (a->orders == NULL) {
        asec__free(a);
        return ASEC_ENOMEM;
    }
    if (opts->orders != NULL) {
        memcpy(a->orders, opts->orders, n * sizeof *a->orders);
        qsort(a->orders, n, sizeof *a->orders, cmp_double);
        /* Drop duplicates. */
        {
            size_t k = 0;

            for (size_t i = 0; i < n; i++)
                if (k == 0 || a->orders[i] != a->orders[k - 1])
                    a->orders[k++] = a->orders[i];
            n = k;
        }
        a->custom_orders = 1;
    } else {
        n = grid_orders(opts->grid, a->orders);
    }
    a->n_orders = n;
    a->relation = opts->relation;
    a->legacy = opts->legacy != 0;
    a->refine_order = opts->refine_order != 0;
    a->grid = opts->grid;
    a->pld_dx = opts->pld_dx;
    a->pld_rtol =
        opts->pld_bracket_rtol > 0.0 ? opts->pld_bracket_rtol : DEFAULT_PLD_RTOL;
    a->max_bytes = opts->max_bytes > 0 ? opts->max_bytes : DEFAULT_MAX_BYTES;
    *out = a;
    return ASEC_OK;
}

void
asec_acct_free(asec_acct *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n_ent; i++)
        asec__free(a->ent[i].rdp);
    asec__free(a->ent);
    asec__free(a->orders);
    asec__free(a);
}

int
asec_acct_clone(asec_acct **out, const asec_acct *a)
{
    asec_acct *c;

    *out = NULL;
    c = asec__calloc(1, sizeof *c);
    if (c == NULL)
        return ASEC_ENOMEM;
    *c = *a;
    c->ent = NULL;
    c->n_ent = c->cap_ent = 0;
    c->orders = asec__malloc(a->n_orders * sizeof *c->orders);
    if (c->orders == NULL)
        goto fail;
    memcpy(c->orders, a->orders, a->n_orders * sizeof *c->orders);
    if (a->n_ent > 0) {
        c->ent = asec__calloc(a->n_ent, sizeof *c->ent);
        if (c->ent == NULL)
            goto fail;
        c->cap_ent = a->n_ent;
        for (size_t i = 0; i < a->n_ent; i++) {
            c->ent[i].ev = a->ent[i].ev;
            c->n_ent = i + 1;
            if (a->ent[i].rdp != NULL) {
                c->ent[i].rdp = asec__malloc(a->n_orders * sizeof(double));
                if (c->ent[i].rdp == NULL)
                    goto fail;
                memcpy(c->ent[i].rdp, a->ent[i].rdp, a->n_orders * sizeof(double));
            }
        }
    }
    *out = c;
    return ASEC_OK;
fail:
    asec_acct_free(c);
    return ASEC_ENOMEM;
}

/* ------------------------------------------------------------------ the ledger */

static int
finite_pos(double x)
{
    return x > 0.0 && isfinite(x);
}

static int
finite_nonneg(double x)
{
    return x >= 0.0 && isfinite(x);
}

/* Validate ev against the relation and bring it to canonical form in *c.
 * *skip is set when the event costs nothing (q = 0, epsilon = 0, ...). */
static int
canonical(const asec_acct *a, const asec_acct_event *ev, asec_acct_event *c, int *skip)
{
    memset(c, 0, sizeof *c);
    *skip = 0;
    c->kind = ev->kind;
    c->count = ev->count;
    c->q = 1.0;
    if (ev->count == 0)
        ASEC_FAIL(ASEC_EINVAL, "event count must be at least 1");
    if (ev->count > ACCT_MAX_COUNT)
        ASEC_FAIL(ASEC_EINVAL, "event count %llu exceeds 2^62",
                  (unsigned long long)ev->count);
    switch (ev->kind) {
    case ASEC_ACCT_EV_POISSON_GAUSSIAN:
    case ASEC_ACCT_EV_WOR_GAUSSIAN:
    case ASEC_ACCT_EV_POISSON_LAPLACE:
        if (!(ev->q >= 0.0 && ev->q <= 1.0))
            ASEC_FAIL(ASEC_EINVAL, "sampling rate q = %g is outside [0, 1]", ev->q);
        if (ev->kind == ASEC_ACCT_EV_WOR_GAUSSIAN && a->relation != ASEC_ACCT_REPLACE_ONE)
            ASEC_FAIL(ASEC_EINVAL, "sampling without replacement (fixed-size batches) is "
                                   "analysed under replace-one only");
        if (ev->kind != ASEC_ACCT_EV_WOR_GAUSSIAN && a->relation != ASEC_ACCT_ADD_REMOVE)
            ASEC_FAIL(ASEC_EINVAL, "Poisson sampling is analysed under add-remove only");
        if (!finite_pos(ev->sigma))
            ASEC_FAIL(ASEC_EINVAL, "%s %g is not a positive finite number",
                      ev->kind == ASEC_ACCT_EV_POISSON_LAPLACE ? "Laplace scale"
                                                               : "noise multiplier",
                      ev->sigma);
        c->sigma = ev->sigma;
        c->q = ev->q;
        if (ev->q == 0.0)
            *skip = 1;
        else if (ev->q == 1.0)
            c->kind = ev->kind == ASEC_ACCT_EV_POISSON_LAPLACE ? ASEC_ACCT_EV_LAPLACE
                                                               : ASEC_ACCT_EV_GAUSSIAN;
        return ASEC_OK;
    case ASEC_ACCT_EV_GAUSSIAN:
    case ASEC_ACCT_EV_LAPLACE:
        if (!finite_pos(ev->sigma))
            ASEC_FAIL(ASEC_EINVAL, "%s %g is not a positive finite number",
                      ev->kind == ASEC_ACCT_EV_LAPLACE ? "Laplace scale"
                                                       : "noise multiplier",
                      ev->sigma);
        c->sigma = ev->sigma;
        return ASEC_OK;
    case ASEC_ACCT_EV_PURE:
    case ASEC_ACCT_EV_APPROX:
        if (!finite_nonneg(ev->epsilon))
            ASEC_FAIL(ASEC_EINVAL, "epsilon %g is negative or not finite", ev->epsilon);
        c->epsilon = ev->epsilon;
        if (ev->kind == ASEC_ACCT_EV_APPROX) {
            if (!(ev->delta >= 0.0 && ev->delta < 1.0))
                ASEC_FAIL(ASEC_EINVAL, "delta %g is outside [0, 1)", ev->delta);
            c->delta = ev->delta;
            if (ev->delta == 0.0)
                c->kind = ASEC_ACCT_EV_PURE;
        }
        if (c->epsilon == 0.0 && c->delta == 0.0)
            *skip = 1;
        return ASEC_OK;
    case ASEC_ACCT_EV_ZCDP:
        if (!finite_nonneg(ev->rho) || !finite_nonneg(ev->xi))
            ASEC_FAIL(ASEC_EINVAL, "zCDP rho %g or xi %g is negative or not finite",
                      ev->rho, ev->xi);
        c->rho = ev->rho;
        c->xi = ev->xi;
        if (ev->rho == 0.0 && ev->xi == 0.0)
            *skip = 1;
        return ASEC_OK;
    }
    ASEC_FAIL(ASEC_EINVAL, "unknown event kind %d", (int)ev->kind);
}

static int
same_mechanism(const asec_acct_event *x, const asec_acct_event *y)
{
    return x->kind == y->kind && x->q == y->q && x->sigma == y->sigma &&
           x->epsilon == y->epsilon && x->delta == y->delta && x->rho == y->rho &&
           x->xi == y->xi;
}

static int
reserve(asec_acct *a, size_t extra)
{
    size_t need, cap;
    struct acct_entry *p;

    if (asec__add_size(a->n_ent, extra, &need) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "ledger size overflows");
    if (need <= a->cap_ent)
        return ASEC_OK;
    cap = a->cap_ent < 8 ? 8 : a->cap_ent;
    while (cap < need) {
        if (asec__mul_size(cap, 2, &cap) != 0)
            ASEC_FAIL(ASEC_ENOMEM, "ledger size overflows");
    }
    if (asec__mul_size(cap, sizeof *p, &need) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "ledger size overflows");
    p = asec__realloc(a->ent, need);
    if (p == NULL)
        return ASEC_ENOMEM;
    a->ent = p;
    a->cap_ent = cap;
    return ASEC_OK;
}

/* Append a canonical event; capacity for one more entry must be reserved.
 * Never fails. */
static void
append(asec_acct *a, const asec_acct_event *c)
{
    if (a->n_ent > 0) {
        struct acct_entry *last = &a->ent[a->n_ent - 1];

        if (same_mechanism(&last->ev, c) && last->ev.count <= ACCT_MAX_COUNT - c->count) {
            last->ev.count += c->count;
            return;
        }
    }
    a->ent[a->n_ent].ev = *c;
    a->ent[a->n_ent].rdp = NULL;
    a->n_ent++;
}

int
asec_acct_add(asec_acct *a, const asec_acct_event *ev)
{
    asec_acct_event c;
    int skip;

    ASEC_TRY(canonical(a, ev, &c, &skip));
    if (skip)
        return ASEC_OK;
    ASEC_TRY(reserve(a, 1));
    append(a, &c);
    return ASEC_OK;
}

int
asec_acct_add_gaussian(asec_acct *a, double sigma, uint64_t count)
{
    asec_acct_event ev = {ASEC_ACCT_EV_GAUSSIAN, 1.0, sigma, 0.0, 0.0, 0.0, 0.0, count};

    return asec_acct_add(a, &ev);
}

int
asec_acct_add_poisson_gaussian(asec_acct *a, double q, double sigma, uint64_t count)
{
    asec_acct_event ev = {
        ASEC_ACCT_EV_POISSON_GAUSSIAN, q, sigma, 0.0, 0.0, 0.0, 0.0, count};

    return asec_acct_add(a, &ev);
}

int
asec_acct_step(asec_acct *a, double q, double sigma)
{
    if (a->n_ent > 0) {
        struct acct_entry *last = &a->ent[a->n_ent - 1];
        asec_acct_event_kind k =
            q == 1.0 ? ASEC_ACCT_EV_GAUSSIAN : ASEC_ACCT_EV_POISSON_GAUSSIAN;

        /* The fast path: same mechanism as the last step. */
        if (last->ev.kind == k && last->ev.sigma == sigma && last->ev.q == q &&
            last->ev.count < ACCT_MAX_COUNT && a->relation == ASEC_ACCT_ADD_REMOVE) {
            last->ev.count++;
            return ASEC_OK;
        }
    }
    return asec_acct_add_poisson_gaussian(a, q, sigma, 1);
}

int
asec_acct_add_schedule(asec_acct *a, const asec_acct_segment *seg, size_t n)
{
    asec_acct_event *cs;
    int rc = ASEC_OK;
    size_t m = 0;

    if (n == 0)
        return ASEC_OK;
    if (seg == NULL)
        ASEC_FAIL(ASEC_EINVAL, "schedule is NULL with %zu segments", n);
    cs = asec__calloc(n, sizeof *cs);
    if (cs == NULL)
        return ASEC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        asec_acct_event ev = {ASEC_ACCT_EV_POISSON_GAUSSIAN,
                              seg[i].q,
                              seg[i].sigma,
                              0.0,
                              0.0,
                              0.0,
                              0.0,
                              seg[i].count};
        int skip;

        rc = canonical(a, &ev, &cs[m], &skip);
        if (rc != ASEC_OK) {
            rc = asec__fail(rc, "schedule segment %zu: %s", i + 1, asec_errmsg());
            goto done;
        }
        if (!skip)
            m++;
    }
    rc = reserve(a, m);
    if (rc != ASEC_OK)
        goto done;
    for (size_t i = 0; i < m; i++)
        append(a, &cs[i]);
done:
    asec__free(cs);
    return rc;
}

size_t
asec_acct_num_events(const asec_acct *a)
{
    return a->n_ent;
}

int
asec_acct_event_at(const asec_acct *a, size_t i, asec_acct_event *out)
{
    if (i >= a->n_ent)
        ASEC_FAIL(ASEC_EINVAL, "event index %zu is out of range (%zu events)", i,
                  a->n_ent);
    *out = a->ent[i].ev;
    return ASEC_OK;
}

int
asec_acct_rdp(const asec_acct *a, double *orders, double *rdp, size_t cap, size_t *n)
{
    double *total, extra;
    int rc;

    *n = a->n_orders;
    total = asec__malloc(a->n_orders * sizeof *total);
    if (total == NULL)
        return ASEC_ENOMEM;
    rc = asec_acct__rdp_total(a, total, &extra);
    if (rc == ASEC_OK) {
        size_t k = cap < a->n_orders ? cap : a->n_orders;

        if (orders != NULL)
            memcpy(orders, a->orders, k * sizeof *orders);
        if (rdp != NULL)
            memcpy(rdp, total, k * sizeof *rdp);
    }
    asec__free(total);
    return rc;
}

/* ------------------------------------------------------------------ simple methods */

static void
result_init(asec_acct_result *out, asec_acct_method m)
{
    out->method = m;
    out->is_bound = m != ASEC_ACCT_GDP_CLT;
    out->epsilon = out->epsilon_lo = NAN;
    out->delta = out->delta_lo = NAN;
    out->order = NAN;
    out->order_at_edge = 0;
    out->mu = NAN;
    out->pld_dx = NAN;
    out->pld_points = 0;
}

/* mu of the ledger for EXACT (every event a Gaussian) or GDP_CLT (Gaussians
 * and Poisson-subsampled Gaussians, Bu et al. 2020: mu_step^2 =
 * q^2 (e^{1/sigma^2} - 1)).  ASEC_ENOTSUP names the offending event. */
static int
ledger_mu(const asec_acct *a, int clt, double *mu)
{
    double m2 = 0.0;

    for (size_t i = 0; i < a->n_ent; i++) {
        const asec_acct_event *e = &a->ent[i].ev;
        double c = (double)e->count, s2 = e->sigma * e->sigma;

        if (e->kind == ASEC_ACCT_EV_GAUSSIAN)
            m2 += c / s2;
        else if (clt && e->kind == ASEC_ACCT_EV_POISSON_GAUSSIAN)
            m2 += c * e->q * e->q * expm1(1.0 / s2);
        else
            ASEC_FAIL(ASEC_ENOTSUP, "the %s method covers only %s; event %zu is not one",
                      clt ? "gdp-clt" : "exact",
                      clt ? "Gaussian and Poisson-subsampled Gaussian events"
                          : "unsampled Gaussian events",
                      i + 1);
    }
    *mu = sqrt(m2);
    return ASEC_OK;
}

/* Per-step (eps, delta) of one event for the composition theorems, given
 * the per-step delta budget d (after amplification). */
static int
step_eps(const asec_acct_event *e, double d, double *eps, double *dused)
{
    double q = e->q, e0;

    *dused = 0.0;
    switch (e->kind) {
    case ASEC_ACCT_EV_GAUSSIAN:
    case ASEC_ACCT_EV_POISSON_GAUSSIAN:
    case ASEC_ACCT_EV_WOR_GAUSSIAN: {
        /* Amplification by subsampling (Balle-Barthe-Gaboardi 2018):
         * (eps0, d/q) becomes (log(1 + q (e^eps0 - 1)), d). */
        double d0 = fmin(d / q, 0.5);

        ASEC_TRY(asec_acct_gaussian_epsilon(1.0 / e->sigma, d0, &e0));
        *eps = log1p(q * expm1(e0));
        *dused = q * d0;
        return ASEC_OK;
    }
    case ASEC_ACCT_EV_LAPLACE:
    case ASEC_ACCT_EV_POISSON_LAPLACE:
        *eps = log1p(q * expm1(1.0 / e->sigma));
        return ASEC_OK;
    case ASEC_ACCT_EV_PURE:
        *eps = e->epsilon;
        return ASEC_OK;
    case ASEC_ACCT_EV_APPROX:
        *eps = e->epsilon;
        *dused = e->delta;
        return ASEC_OK;
    case ASEC_ACCT_EV_ZCDP:
        /* Bun-Steinke 2016 Prop. 1.3: rho-zCDP gives
         * (xi + rho + 2 sqrt(rho log(1/d)), d). */
        *eps = e->xi + e->rho + 2.0 * sqrt(e->rho * log(1.0 / d));
        *dused = d;
        return ASEC_OK;
    }
    ASEC_FAIL(ASEC_EINTERNAL, "unknown event kind %d", (int)e->kind);
}

/* Classical (advanced = 0) or advanced composition at total delta. */
static int
composition_eps(const asec_acct *a, int advanced, double delta, double *eps)
{
    double fixed = 0.0, n_flex = 0.0, budget, dstep, sum = 0.0, sum2 = 0.0, sumx = 0.0;

    for (size_t i = 0; i < a->n_ent; i++) {
        const asec_acct_event *e = &a->ent[i].ev;

        if (e->kind == ASEC_ACCT_EV_APPROX)
            fixed += (double)e->count * e->delta;
        else if (e->kind != ASEC_ACCT_EV_PURE && e->kind != ASEC_ACCT_EV_LAPLACE &&
                 e->kind != ASEC_ACCT_EV_POISSON_LAPLACE)
            n_flex += (double)e->count;
    }
    budget = (advanced ? 0.5 * delta : delta) - fixed;
    if (!(budget > 0.0) && (n_flex > 0.0 || budget < 0.0)) {
        *eps = INFINITY;
        return ASEC_OK;
    }
    dstep = n_flex > 0.0 ? budget / n_flex : 0.0;
    for (size_t i = 0; i < a->n_ent; i++) {
        const asec_acct_event *e = &a->ent[i].ev;
        double c = (double)e->count, es = 0.0, du;

        ASEC_TRY(step_eps(e, dstep > 0.0 ? dstep : 0.5, &es, &du));
        sum += c * es;
        sum2 += c * es * es;
        sumx += c * es * expm1(es);
    }
    if (!advanced) {
        *eps = sum;
        return ASEC_OK;
    }
    /* Heterogeneous advanced composition (Dwork-Roth Thm 3.20 / Kairouz et
     * al. 2015): sqrt(2 log(1/slack) sum eps_i^2) + sum eps_i (e^eps_i - 1),
     * slack = delta / 2.  Both theorems hold, so the smaller is reported
     * (the classical sum wins for few, large steps). */
    {
        double basic;

        ASEC_TRY(composition_eps(a, 0, delta, &basic));
        *eps = fmin(basic, sqrt(2.0 * log(2.0 / delta) * sum2) + sumx);
    }
    return ASEC_OK;
}

static int
composition_delta(const asec_acct *a, int advanced, double epsilon, double *delta)
{
    double lo = -700.0, hi = 0.0, e;

    /* epsilon(delta) decreases in delta: bisect log delta (bounded). */
    ASEC_TRY(composition_eps(a, advanced, exp(hi) * (1.0 - 1e-15), &e));
    if (e > epsilon) {
        *delta = 1.0;
        return ASEC_OK;
    }
    ASEC_TRY(composition_eps(a, advanced, exp(lo), &e));
    if (e <= epsilon) {
        *delta = exp(lo);
        return ASEC_OK;
    }
    for (int it = 0; it < 100 && hi - lo > 1e-13; it++) {
        double mid = 0.5 * (lo + hi);

        ASEC_TRY(composition_eps(a, advanced, exp(mid), &e));
        if (e <= epsilon)
            hi = mid;
        else
            lo = mid;
    }
    *delta = exp(hi);
    return ASEC_OK;
}

static int
ledger_has(const asec_acct *a, asec_acct_event_kind k)
{
    for (size_t i = 0; i < a->n_ent; i++)
        if (a->ent[i].ev.kind == k)
            return 1;
    return 0;
}

static int
all_gaussian(const asec_acct *a)
{
    for (size_t i = 0; i < a->n_ent; i++)
        if (a->ent[i].ev.kind != ASEC_ACCT_EV_GAUSSIAN)
            return 0;
    return 1;
}

static int
pld_supported(const asec_acct *a)
{
    return !ledger_has(a, ASEC_ACCT_EV_ZCDP) && !ledger_has(a, ASEC_ACCT_EV_WOR_GAUSSIAN);
}

static int
query(const asec_acct *a, asec_acct_method method, int want_eps, double x,
      asec_acct_result *out)
{
    double mu = 0.0, v;
    int rc;

    switch (method) {
    case ASEC_ACCT_RDP:
        return want_eps ? asec_acct__rdp_epsilon(a, x, out)
                        : asec_acct__rdp_delta(a, x, out);
    case ASEC_ACCT_PLD:
        if (!pld_supported(a))
            ASEC_FAIL(ASEC_ENOTSUP, "the pld method does not handle zCDP or fixed-size "
                                    "(without replacement) events; use rdp");
        return want_eps ? asec_acct__pld_epsilon(a, x, out)
                        : asec_acct__pld_delta(a, x, out);
    case ASEC_ACCT_EXACT:
    case ASEC_ACCT_GDP_CLT:
        result_init(out, method);
        ASEC_TRY(ledger_mu(a, method == ASEC_ACCT_GDP_CLT, &mu));
        out->mu = mu;
        if (want_eps) {
            out->delta = out->delta_lo = x;
            if (mu == 0.0)
                v = 0.0;
            else
                ASEC_TRY(asec_acct_gaussian_epsilon(mu, x, &v));
            out->epsilon = out->epsilon_lo = v;
        } else {
            out->epsilon = out->epsilon_lo = x;
            if (mu == 0.0)
                v = 0.0;
            else
                ASEC_TRY(asec_acct_gaussian_delta(mu, x, &v));
            out->delta = out->delta_lo = v;
        }
        return ASEC_OK;
    case ASEC_ACCT_BASIC:
    case ASEC_ACCT_ADVANCED:
        result_init(out, method);
        if (want_eps) {
            out->delta = out->delta_lo = x;
            ASEC_TRY(composition_eps(a, method == ASEC_ACCT_ADVANCED, x, &v));
            out->epsilon = out->epsilon_lo = v;
        } else {
            out->epsilon = out->epsilon_lo = x;
            ASEC_TRY(composition_delta(a, method == ASEC_ACCT_ADVANCED, x, &v));
            out->delta = out->delta_lo = v;
        }
        return ASEC_OK;
    case ASEC_ACCT_AUTO:
        if (all_gaussian(a))
            return query(a, ASEC_ACCT_EXACT, want_eps, x, out);
        if (pld_supported(a)) {
            rc = query(a, ASEC_ACCT_PLD, want_eps, x, out);
            if (rc != ASEC_ELIMIT && rc != ASEC_ENUMERIC)
                return rc;
        }
        return query(a, ASEC_ACCT_RDP, want_eps, x, out);
    }
    ASEC_FAIL(ASEC_EINVAL, "unknown accounting method %d", (int)method);
}

int
asec_acct_epsilon(const asec_acct *a, asec_acct_method method, double delta,
                  asec_acct_result *out)
{
    if (!(delta > 0.0 && delta < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "delta %g is outside (0, 1)", delta);
    return query(a, method, 1, delta, out);
}

int
asec_acct_delta(const asec_acct *a, asec_acct_method method, double epsilon,
                asec_acct_result *out)
{
    if (!(epsilon >= 0.0) || !isfinite(epsilon))
        ASEC_FAIL(ASEC_EINVAL, "epsilon %g is negative or not finite", epsilon);
    return query(a, method, 0, epsilon, out);
}

/* ------------------------------------------------------------------ calibration */

struct cal {
    const asec_acct *base;
    asec_acct_method method;
    const asec_acct_calib *c;
    double *base_rdp; /* RDP fast path: composed curve of base, or NULL */
    double base_extra;
    double *ev_rdp; /* (n_orders,) scratch */
    double *tot;    /* (n_orders,) scratch */
    asec_acct_result last;
    int evals;
    double pld_dx;  /* PLD search: fixed lattice spacing (0: adaptive) */
    int upper_only; /* PLD search: upper end only */
    double slope;   /* d log(eps) / d log(x) over the last solved bracket, or NAN */
};

static asec_acct_event
cal_event(const struct cal *k, double q, double sigma, uint64_t steps)
{
    asec_acct_event ev;

    memset(&ev, 0, sizeof ev);
    ev.kind = k->c->sampling == ASEC_ACCT_WOR ? ASEC_ACCT_EV_WOR_GAUSSIAN
                                              : ASEC_ACCT_EV_POISSON_GAUSSIAN;
    ev.q = q;
    ev.sigma = sigma;
    ev.count = steps;
    if (q == 1.0)
        ev.kind = ASEC_ACCT_EV_GAUSSIAN;
    return ev;
}

/* epsilon (upper end) at target delta for base + the event. */
static int
cal_eps(struct cal *k, double q, double sigma, uint64_t steps, double *eps)
{
    asec_acct_event ev = cal_event(k, q, sigma, steps);
    asec_acct *t = NULL;
    int rc;

    k->evals++;
    if (k->base_rdp != NULL) {
        /* RDP: base curve + steps x per-step curve, no copy of the ledger. */
        const asec_acct *b = k->base;
        double eff, order;
        size_t bi;

        ASEC_TRY(asec_acct__rdp_event(b, &ev, k->ev_rdp));
        for (size_t i = 0; i < b->n_orders; i++)
            k->tot[i] = k->base_rdp[i] + (double)steps * k->ev_rdp[i];
        eff = -expm1(log1p(-k->c->delta) - log1p(-k->base_extra));
        result_init(&k->last, ASEC_ACCT_RDP);
        k->last.delta = k->last.delta_lo = k->c->delta;
        if (!(eff > 0.0)) {
            *eps = INFINITY;
        } else {
            asec_acct__rdp_to_epsilon(b->orders, k->tot, b->n_orders, eff, b->legacy, eps,
                                      &order, &bi);
            k->last.order = order;
            k->last.order_at_edge = bi == b->n_orders - 1 && *eps > 0.0;
        }
        k->last.epsilon = k->last.epsilon_lo = *eps;
        return ASEC_OK;
    }
    ASEC_TRY(asec_acct_clone(&t, k->base));
    if (k->method == ASEC_ACCT_PLD) {
        /* The search's lattice (0: adaptive); the final check keeps it
         * (with both ends of the bracket), so the upper end it certifies
         * is the one the search saw. */
        if (k->pld_dx > 0.0)
            t->pld_dx = k->pld_dx;
        t->pld_upper_only = k->upper_only;
    }
    rc = asec_acct_add(t, &ev);
    for (int j = 0; rc == ASEC_OK && j < 6; j++) {
        rc = asec_acct_epsilon(t, k->method, k->c->delta, &k->last);
        if (rc != ASEC_ELIMIT || !k->upper_only || !(t->pld_dx > 0.0))
            break;
        /* Beyond the memory cap at the search's spacing: a coarser lattice
         * still gives a valid (looser) upper end. */
        t->pld_dx *= 2.0;
        rc = ASEC_OK;
    }
    if (rc == ASEC_OK)
        *eps = k->last.epsilon;
    if (rc == ASEC_ELIMIT && k->upper_only) {
        *eps = INFINITY; /* not certified: the same as missing the target */
        rc = ASEC_OK;
    }
    asec_acct_free(t);
    return rc;
}

/* Find the threshold of a monotone predicate ok(x) on x in [lo, hi]
 * (log scale), ok(good) true: returns the good end with
 * |good/bad - 1| <= rtol.  increasing: ok for large x (sigma). */
static int
cal_solve_real(struct cal *k, int for_sigma, double good, double bad, double eg0,
               double eb0, double rtol, double *out)
{
    const asec_acct_calib *c = k->c;
    double lg = log(good), lb = log(bad), eg, eb;

    /* Regula falsi (Illinois) on f(log x) = eps - target, safeguarded
     * like Brent's method: a new point stays at least 0.45 tol inside the
     * bracket, so once the estimate has converged the next evaluation
     * just across it closes the bracket to <= tol; bisection whenever the
     * bracket has not halved in three steps; bounded iterations. */
    eb = eb0;
    eg = eg0;
    if (isnan(eb))
        ASEC_TRY(cal_eps(k, for_sigma ? c->q : exp(lb), for_sigma ? exp(lb) : c->sigma,
                         c->steps, &eb));
    if (isnan(eg))
        ASEC_TRY(cal_eps(k, for_sigma ? c->q : exp(lg), for_sigma ? exp(lg) : c->sigma,
                         c->steps, &eg));
    {
        /* f = log(eps / target): about linear in log x over wide ranges
         * (small epsilons fall steeply with sigma); -inf at eps = 0 and
         * +inf at eps = inf make the step a bisection. */
        double fg = log(eg / c->target_epsilon), fb = log(eb / c->target_epsilon);
        double tol = log1p(rtol), width0 = fabs(lg - lb), rg = fg, rb = fb;
        int side = 0, since = 0;

        for (int it = 0; it < 200 && fabs(lg - lb) > tol; it++) {
            double lm, fm, em, w = fabs(lg - lb), d = 0.45 * tol, dir = lb > lg ? 1 : -1;

            if (isfinite(fb) && isfinite(fg) && fb != fg && since < 3 && it < 60)
                lm = lg - fg * (lg - lb) / (fg - fb);
            else
                lm = 0.5 * (lg + lb);
            if (!(fabs(lm - lg) < w && fabs(lm - lb) < w))
                lm = 0.5 * (lg + lb);
            if (w > 2.0 * d) {
                if (fabs(lm - lg) < d)
                    lm = lg + dir * d;
                else if (fabs(lm - lb) < d)
                    lm = lb - dir * d;
            } else {
                lm = 0.5 * (lg + lb);
            }
            ASEC_TRY(cal_eps(k, for_sigma ? c->q : exp(lm),
                             for_sigma ? exp(lm) : c->sigma, c->steps, &em));
            fm = log(em / c->target_epsilon);
            if (em <= c->target_epsilon) {
                lg = lm;
                fg = rg = fm;
                if (side == 1)
                    fb *= 0.5;
                side = 1;
            } else {
                lb = lm;
                fb = rb = fm;
                if (side == -1)
                    fg *= 0.5;
                side = -1;
            }
            /* Progress check: the bracket must halve every three steps. */
            if (fabs(lg - lb) <= 0.5 * width0) {
                width0 = fabs(lg - lb);
                since = 0;
            } else {
                since++;
            }
        }
        k->slope = lg != lb ? (rb - rg) / (lb - lg) : NAN;
        if (!isfinite(k->slope) || k->slope == 0.0)
            k->slope = NAN;
    }
    *out = exp(lg);
    return ASEC_OK;
}

/* The PLD search from the RDP answer vr (which meets the target with the
 * PLD as well): widen towards the PLD side by factors of 0.85 until the
 * target is missed, then the same regula falsi / bisection as for RDP. */
static int
cal_pld_search(struct cal *k, double vr, double e0, double first, double fac, double rtol,
               double *out)
{
    const asec_acct_calib *c = k->c;
    double e;

    if (c->solve == ASEC_ACCT_PARAM_STEPS) {
        uint64_t good = (uint64_t)vr, bad = good + good / 8 + 1;

        for (int i = 0; i < 60; i++) {
            ASEC_TRY(cal_eps(k, c->q, c->sigma, bad, &e));
            if (e > c->target_epsilon)
                break;
            good = bad;
            if (bad > ACCT_MAX_COUNT / 2) {
                *out = (double)good;
                return ASEC_OK;
            }
            bad += bad / 4 + 1;
        }
        while (bad - good > 1) {
            uint64_t mid = good + (bad - good) / 2;

            ASEC_TRY(cal_eps(k, c->q, c->sigma, mid, &e));
            if (e <= c->target_epsilon)
                good = mid;
            else
                bad = mid;
        }
        *out = (double)good;
        return ASEC_OK;
    }
    {
        int sig = c->solve == ASEC_ACCT_PARAM_SIGMA;
        /* vr meets the target (epsilon e0); the first candidate on the
         * other side is vr * first (sigma) or vr / first (q), then steps
         * of fac. */
        double good = vr, bad = sig ? vr * first : fmin(1.0, vr / first);
        double eg = e0; /* epsilon at good, at the search's lattice */

        for (int i = 0; i < 60; i++) {
            if (!sig && good >= 1.0) {
                *out = 1.0;
                return ASEC_OK;
            }
            ASEC_TRY(cal_eps(k, sig ? c->q : bad, sig ? bad : c->sigma, c->steps, &e));
            if (e > c->target_epsilon)
                break;
            good = bad;
            eg = e;
            bad = sig ? bad * fac : fmin(1.0, bad / fac);
            if (sig && bad < CAL_SIGMA_MIN) {
                *out = good;
                return ASEC_OK;
            }
        }
        return cal_solve_real(k, sig, good, bad, eg, e, rtol, out);
    }
}

int
asec_acct_calibrate(const asec_acct *base, asec_acct_method method,
                    const asec_acct_calib *c, double *out, asec_acct_result *res)
{
    struct cal k;
    double rtol, e;
    int rc = ASEC_OK;

    if (c->version != ASEC_ACCT_CALIB_VERSION)
        ASEC_FAIL(ASEC_EINVAL, "calibration version %u is not %u", c->version,
                  (unsigned)ASEC_ACCT_CALIB_VERSION);
    if (method == ASEC_ACCT_GDP_CLT)
        ASEC_FAIL(ASEC_EINVAL,
                  "refusing to calibrate on the gdp-clt estimate: it is not a "
                  "bound");
    if ((int)method < 0 || method > ASEC_ACCT_AUTO)
        ASEC_FAIL(ASEC_EINVAL, "unknown accounting method %d", (int)method);
    if (c->solve != ASEC_ACCT_PARAM_SIGMA && c->solve != ASEC_ACCT_PARAM_STEPS &&
        c->solve != ASEC_ACCT_PARAM_Q)
        ASEC_FAIL(ASEC_EINVAL, "unknown calibration parameter %d", (int)c->solve);
    if (c->sampling != ASEC_ACCT_POISSON && c->sampling != ASEC_ACCT_WOR)
        ASEC_FAIL(ASEC_EINVAL, "unknown sampling scheme %d", (int)c->sampling);
    if (!finite_pos(c->target_epsilon))
        ASEC_FAIL(ASEC_EINVAL, "target epsilon %g is not a positive finite number",
                  c->target_epsilon);
    if (!(c->delta > 0.0 && c->delta < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "delta %g is outside (0, 1)", c->delta);
    if (c->solve != ASEC_ACCT_PARAM_Q && !(c->q > 0.0 && c->q <= 1.0))
        ASEC_FAIL(ASEC_EINVAL, "sampling rate q = %g is outside (0, 1]", c->q);
    if (c->solve != ASEC_ACCT_PARAM_SIGMA && !finite_pos(c->sigma))
        ASEC_FAIL(ASEC_EINVAL, "noise multiplier %g is not a positive finite number",
                  c->sigma);
    if (c->solve != ASEC_ACCT_PARAM_STEPS && (c->steps < 1 || c->steps > ACCT_MAX_COUNT))
        ASEC_FAIL(ASEC_EINVAL, "steps %llu is outside 1..2^62",
                  (unsigned long long)c->steps);
    if (!(c->rtol >= 0.0 && c->rtol < 0.1))
        ASEC_FAIL(ASEC_EINVAL, "rtol %g is outside [0, 0.1)", c->rtol);
    if ((c->sampling == ASEC_ACCT_WOR) != (base->relation == ASEC_ACCT_REPLACE_ONE))
        ASEC_FAIL(ASEC_EINVAL, "%s",
                  c->sampling == ASEC_ACCT_WOR
                      ? "fixed-size sampling needs a replace-one accountant"
                      : "Poisson sampling needs an add-remove accountant");
    rtol = c->rtol > 0.0 ? c->rtol : 1e-6;

    memset(&k, 0, sizeof k);
    k.slope = NAN;
    k.base = base;
    k.method = method;
    k.c = c;
    if (method == ASEC_ACCT_RDP) {
        size_t n = base->n_orders;

        k.base_rdp = asec__malloc(3 * n * sizeof(double));
        if (k.base_rdp == NULL)
            return ASEC_ENOMEM;
        k.ev_rdp = k.base_rdp + n;
        k.tot = k.base_rdp + 2 * n;
        rc = asec_acct__rdp_total(base, k.base_rdp, &k.base_extra);
        if (rc != ASEC_OK)
            goto done;
    }

    if (method == ASEC_ACCT_PLD) {
        /* PLD is tighter than RDP, so start from the RDP answer vr, which
         * meets the target under PLD too.  Coarse to fine (sigma, q):
         *   1. the upper end at vr on the first adaptive lattice (dx0);
         *   2. the search (regula falsi on log eps vs log x) on the upper
         *      end alone at 4 dx0: cheap, and the upper end hardly moves
         *      with dx; its answer vc meets the target on that lattice;
         *   3. small targets: the full bracket at vc on that lattice; if it
         *      is as narrow as the accountant asks for, vc is the answer;
         *   4. the full PLD at vc on its adaptive lattice (dx1): if it
         *      meets the target, the search resumes at dx1 from vc, its
         *      first step predicted from the slope of step 2 (usually two
         *      evaluations); if not (the upper end on a longer FFT carries
         *      a larger round-off bound), vc is certified at 4 dx0;
         *   5. the final check below with the full bracket on the lattice
         *      of the last search.
         * The upper end is a valid bound on any lattice, so every point a
         * search calls good provably meets the target.  Steps: one search
         * on dx0. */
        double vr, e0, e1, vc;
        asec_acct_result r0;
        int sig = c->solve == ASEC_ACCT_PARAM_SIGMA;

        rc = asec_acct_calibrate(base, ASEC_ACCT_RDP, c, &vr, NULL);
        if (rc == ASEC_OK) {
            k.upper_only = 1;
            k.pld_dx = 0.0;
            rc = sig ? cal_eps(&k, c->q, vr, c->steps, &e0)
                 : c->solve == ASEC_ACCT_PARAM_Q
                     ? cal_eps(&k, vr, c->sigma, c->steps, &e0)
                     : cal_eps(&k, c->q, c->sigma, (uint64_t)vr, &e0);
            r0 = k.last;
            if (rc != ASEC_OK)
                goto done;
            if (e0 <= c->target_epsilon && isfinite(r0.pld_dx) &&
                c->solve != ASEC_ACCT_PARAM_STEPS) {
                /* epsilon is about proportional to q / sigma: the first
                 * candidate just past the predicted root. */
                double ratio =
                    e0 > 0.0 ? fmin(fmax(e0 / c->target_epsilon, 0.5), 1.0) : 0.85;

                k.pld_dx = 4.0 * r0.pld_dx;
                rc = cal_eps(&k, sig ? c->q : vr, sig ? vr : c->sigma, c->steps, &e1);
                if (rc != ASEC_OK)
                    goto done;
                vc = vr;
                if (e1 <= c->target_epsilon) {
                    rc = cal_pld_search(&k, vr, e1, ratio * 0.97, 0.85, rtol, &vc);
                    if (rc != ASEC_OK)
                        goto done;
                }
                k.upper_only = 0;
                if (vc != vr && c->target_epsilon < 1.0) {
                    /* The full bracket on the search's lattice: when it is
                     * already as narrow as the accountant asks for, vc is
                     * the answer (its upper end is the search's).  Worth a
                     * try for small epsilons, whose bracket target is
                     * absolute (0.5 pld_bracket_rtol) and so loose. */
                    double rt = base->pld_rtol, w;

                    rc = cal_eps(&k, sig ? c->q : vc, sig ? vc : c->sigma, c->steps, &e1);
                    if (rc != ASEC_OK)
                        goto done;
                    w = k.last.epsilon - k.last.epsilon_lo;
                    if (e1 <= c->target_epsilon && w <= fmax(rt * e1, 0.5 * rt)) {
                        *out = vc;
                        e = e1;
                        goto checked;
                    }
                }
                k.pld_dx = 0.0;
                rc = cal_eps(&k, sig ? c->q : vc, sig ? vc : c->sigma, c->steps, &e1);
                if (rc != ASEC_OK)
                    goto done;
                if (e1 <= c->target_epsilon && isfinite(k.last.pld_dx)) {
                    /* vc meets the target with the full bracket (this is
                     * the final check); on the fine lattice the threshold
                     * may lie a little below vc: one step of rtol tells. */
                    asec_acct_result r1 = k.last;
                    double first = 1.0 / (1.0 + 0.999 * rtol);

                    k.upper_only = 1;
                    k.pld_dx = r1.pld_dx;

                    /* With the slope of the coarse search, the first
                     * candidate is just past the predicted fine root. */
                    if (isfinite(k.slope) && vc != vr && e1 > 0.0) {
                        /* log-distance to the root: down in sigma, up in q */
                        double sh = log(c->target_epsilon / e1) / k.slope;

                        sh = sig ? -sh : sh;
                        if (sh > 0.0 && sh < 0.05)
                            first = fmin(first, exp(-sh) * (1.0 - 0.5 * rtol));
                    }
                    rc = cal_pld_search(&k, vc, e1, first, 1.0 - 4.0 * rtol, rtol, out);
                    if (rc != ASEC_OK)
                        goto done;
                    if (*out == vc) {
                        e = e1;
                        k.last = r1;
                        goto checked;
                    }
                    goto check;
                }
                if (e1 > c->target_epsilon && vc < vr) {
                    /* The finer lattice's upper end came out above the
                     * coarse one's (its floating-point error bound grows
                     * with the FFT length): certify vc on the search's
                     * lattice, where its upper end is known to meet the
                     * target. */
                    k.pld_dx = 4.0 * r0.pld_dx;
                    *out = vc;
                    goto check;
                }
                k.upper_only = 1;
                k.pld_dx = r0.pld_dx;
                e0 = NAN;
            }
            if (!(e0 > c->target_epsilon)) {
                /* Steps, or the fallback: search on the first lattice. */
                if (isnan(e0)) {
                    rc = cal_eps(&k, sig ? c->q : vr, sig ? vr : c->sigma, c->steps, &e0);
                    if (rc != ASEC_OK)
                        goto done;
                }
                k.pld_dx = r0.pld_dx;
                if (e0 <= c->target_epsilon && isfinite(r0.pld_dx)) {
                    double ratio =
                        e0 > 0.0 ? fmin(fmax(e0 / c->target_epsilon, 0.5), 1.0) : 0.85;

                    rc = cal_pld_search(&k, vr, e0, ratio * 0.97, 0.85, rtol, out);
                    if (rc != ASEC_OK)
                        goto done;
                    goto check;
                }
            }
            k.upper_only = 0;
            k.pld_dx = 0.0;
        } else if (rc != ASEC_EBUDGET) {
            goto done;
        }
        rc = ASEC_OK; /* the generic search below */
    }
    if (c->solve == ASEC_ACCT_PARAM_SIGMA) {
        double good = 1.0, bad;

        /* Bracket: eps decreases in sigma. */
        rc = cal_eps(&k, c->q, good, c->steps, &e);
        if (rc != ASEC_OK)
            goto done;
        if (e <= c->target_epsilon) {
            bad = good;
            do {
                good = bad;
                bad = good * 0.5;
                rc = cal_eps(&k, c->q, bad, c->steps, &e);
                if (rc != ASEC_OK)
                    goto done;
            } while (e <= c->target_epsilon && bad > CAL_SIGMA_MIN);
            if (e <= c->target_epsilon) {
                *out = bad; /* meets the target even at the smallest sigma tried */
                goto check;
            }
        } else {
            do {
                bad = good;
                good = bad * 2.0;
                rc = cal_eps(&k, c->q, good, c->steps, &e);
                if (rc != ASEC_OK)
                    goto done;
            } while (e > c->target_epsilon && good < CAL_SIGMA_MAX);
            if (e > c->target_epsilon) {
                rc = asec__fail(
                    ASEC_EBUDGET,
                    "no noise multiplier up to %g meets epsilon %g at delta %g",
                    CAL_SIGMA_MAX, c->target_epsilon, c->delta);
                goto done;
            }
        }
        rc = cal_solve_real(&k, 1, good, bad, NAN, NAN, rtol, out);
        if (rc != ASEC_OK)
            goto done;
    } else if (c->solve == ASEC_ACCT_PARAM_Q) {
        double good, bad = 1.0;

        rc = cal_eps(&k, 1.0, c->sigma, c->steps, &e);
        if (rc != ASEC_OK)
            goto done;
        if (e <= c->target_epsilon) {
            *out = 1.0;
            goto check;
        }
        good = 0.5;
        for (;;) {
            rc = cal_eps(&k, good, c->sigma, c->steps, &e);
            if (rc != ASEC_OK)
                goto done;
            if (e <= c->target_epsilon)
                break;
            bad = good;
            good *= 0.5;
            if (good < 1e-12) {
                rc = asec__fail(
                    ASEC_EBUDGET,
                    "no sampling rate down to 1e-12 meets epsilon %g at delta %g",
                    c->target_epsilon, c->delta);
                goto done;
            }
        }
        rc = cal_solve_real(&k, 0, good, bad, NAN, NAN, rtol, out);
        if (rc != ASEC_OK)
            goto done;
    } else {
        /* Steps: the largest integer T with eps(T) <= target; eps grows
         * with T.  Exponential search, then bisection (exact). */
        uint64_t good = 0, bad = 1;

        for (;;) {
            rc = cal_eps(&k, c->q, c->sigma, bad, &e);
            if (rc != ASEC_OK)
                goto done;
            if (e > c->target_epsilon)
                break;
            good = bad;
            if (bad >= ACCT_MAX_COUNT / 2) {
                bad = 0;
                break;
            }
            bad *= 2;
        }
        if (good == 0) {
            rc = asec__fail(ASEC_EBUDGET, "even one step exceeds epsilon %g at delta %g",
                            c->target_epsilon, c->delta);
            goto done;
        }
        if (bad == 0) {
            *out = (double)good; /* unbounded in practice: the cap */
            goto check;
        }
        while (bad - good > 1) {
            uint64_t mid = good + (bad - good) / 2;

            rc = cal_eps(&k, c->q, c->sigma, mid, &e);
            if (rc != ASEC_OK)
                goto done;
            if (e <= c->target_epsilon)
                good = mid;
            else
                bad = mid;
        }
        *out = (double)good;
    }
check:
    /* The final, independent check that the answer meets the target, with
     * the method's full settings; a PLD search at a fixed spacing may need
     * a nudge (bounded) towards the safe side. */
    k.upper_only = 0;
    for (int nudge = 0;; nudge++) {
        if (c->solve == ASEC_ACCT_PARAM_SIGMA)
            rc = cal_eps(&k, c->q, *out, c->steps, &e);
        else if (c->solve == ASEC_ACCT_PARAM_Q)
            rc = cal_eps(&k, *out, c->sigma, c->steps, &e);
        else
            rc = cal_eps(&k, c->q, c->sigma, (uint64_t)*out, &e);
        if (rc != ASEC_OK)
            goto done;
        if (e <= c->target_epsilon || method != ASEC_ACCT_PLD || nudge >= 20)
            break;
        if (c->solve == ASEC_ACCT_PARAM_SIGMA)
            *out *= 1.0 + rtol;
        else if (c->solve == ASEC_ACCT_PARAM_Q)
            *out *= 1.0 - rtol;
        else if (*out > 1.0)
            *out -= 1.0;
        else
            break;
    }
checked:
    if (!(e <= c->target_epsilon)) {
        rc = asec__fail(ASEC_EINTERNAL,
                        "calibrated value %.17g gives epsilon %.17g above the "
                        "target %g",
                        *out, e, c->target_epsilon);
        goto done;
    }
    if (res != NULL)
        *res = k.last;
done:
    asec__free(k.base_rdp);
    return rc;
}

/* ------------------------------------------------------------------ JSON: shared */

struct jctx {
    char path[256]; /* JSON path of the current node, for messages */
    size_t nodes;
};

static int
jfail(const struct jctx *j, int status, const char *what)
{
    char path[sizeof j->path * 4], msg[400];

    /* Untrusted text (JSON keys and type names, jansson's excerpts):
     * escaped, so a control byte can neither break the line nor reach a
     * terminal. */
    return asec__fail(status, "%s: %s",
                      asec__printable(path, sizeof path, j->path[0] ? j->path : "(top)"),
                      asec__printable(msg, sizeof msg, what));
}

static int
j_number(struct jctx *j, json_t *o, const char *key, int required, double dflt,
         double *out)
{
    json_t *v = json_object_get(o, key);
    size_t len = strlen(j->path);
    int rc = ASEC_OK;

    if (v == NULL) {
        if (required) {
            snprintf(j->path + len, sizeof j->path - len, "%s%s", len ? "." : "", key);
            rc = jfail(j, ASEC_EFORMAT, "missing");
            j->path[len] = '\0';
            return rc;
        }
        *out = dflt;
        return ASEC_OK;
    }
    if (!json_is_number(v)) {
        snprintf(j->path + len, sizeof j->path - len, "%s%s", len ? "." : "", key);
        rc = jfail(j, ASEC_EFORMAT, "expected a number");
        j->path[len] = '\0';
        return rc;
    }
    *out = json_number_value(v);
    return ASEC_OK;
}

static int
j_count(struct jctx *j, json_t *o, const char *key, int allow_zero, uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    size_t len = strlen(j->path);
    int rc;

    snprintf(j->path + len, sizeof j->path - len, "%s%s", len ? "." : "", key);
    if (v == NULL)
        rc = jfail(j, ASEC_EFORMAT, "missing");
    else if (!json_is_integer(v) || json_integer_value(v) < (allow_zero ? 0 : 1))
        rc = jfail(j, ASEC_EFORMAT,
                   allow_zero ? "expected a non-negative integer"
                              : "expected a positive integer");
    else if ((uint64_t)json_integer_value(v) > ACCT_MAX_COUNT)
        rc = jfail(j, ASEC_ELIMIT, "count exceeds 2^62");
    else {
        *out = (uint64_t)json_integer_value(v);
        rc = ASEC_OK;
    }
    j->path[len] = '\0';
    return rc;
}

/* Every key of o must be in the NULL-terminated list. */
static int
j_keys(struct jctx *j, json_t *o, const char *const *allowed)
{
    const char *key;
    json_t *v;

    json_object_foreach(o, key, v)
    {
        int ok = 0;

        (void)v;
        for (const char *const *p = allowed; *p != NULL; p++)
            if (strcmp(key, *p) == 0)
                ok = 1;
        if (!ok) {
            size_t len = strlen(j->path);
            int rc;

            snprintf(j->path + len, sizeof j->path - len, "%s%.40s", len ? "." : "", key);
            rc = jfail(j, ASEC_EFORMAT, "unknown key");
            j->path[len] = '\0';
            return rc;
        }
    }
    return ASEC_OK;
}

/* ------------------------------------------------------------------ JSON: DpEvent trees
 */

struct evlist {
    asec_acct_event *v;
    size_t n, cap;
};

static int
evlist_push(struct evlist *l, const asec_acct_event *e)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16, bytes;
        asec_acct_event *p;

        if (asec__mul_size(cap, sizeof *p, &bytes) != 0)
            ASEC_FAIL(ASEC_ENOMEM, "event list overflows");
        p = asec__realloc(l->v, bytes);
        if (p == NULL)
            return ASEC_ENOMEM;
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = *e;
    return ASEC_OK;
}

enum node_type {
    N_GAUSSIAN,
    N_LAPLACE,
    N_EPSDELTA,
    N_ZCDP,
    N_NOOP,
    N_POISSON,
    N_WOR,
    N_SELF,
    N_COMPOSED,
    N_UNKNOWN
};

static enum node_type
node_type(const char *t)
{
    static const struct {
        const char *a, *b;
        enum node_type n;
    } names[] = {
        {"gaussian", "GaussianDpEvent", N_GAUSSIAN},
        {"laplace", "LaplaceDpEvent", N_LAPLACE},
        {"epsilon_delta", "EpsilonDeltaDpEvent", N_EPSDELTA},
        {"zcdp", "ZCDpEvent", N_ZCDP},
        {"no_op", "NoOpDpEvent", N_NOOP},
        {"poisson_sampled", "PoissonSampledDpEvent", N_POISSON},
        {"sampled_without_replacement", "SampledWithoutReplacementDpEvent", N_WOR},
        {"self_composed", "SelfComposedDpEvent", N_SELF},
        {"composed", "ComposedDpEvent", N_COMPOSED},
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(t, names[i].a) == 0 || strcmp(t, names[i].b) == 0)
            return names[i].n;
    return N_UNKNOWN;
}

static int parse_event(struct jctx *j, json_t *o, int depth, uint64_t mult,
                       struct evlist *out);

/* Sum of 1/sigma^2 of a Gaussian-only subtree (the subevent of a sampled
 * event); *lap gets a Laplace scale when the subtree is one Laplace. */
static int
fold_sampled(struct jctx *j, json_t *o, int depth, double *inv_s2, double *lap)
{
    const char *t;
    json_t *type;
    size_t len = strlen(j->path);
    int rc = ASEC_OK;

    if (depth > JSON_MAX_DEPTH)
        return jfail(j, ASEC_ELIMIT, "nesting deeper than 64");
    if (++j->nodes > JSON_MAX_NODES)
        return jfail(j, ASEC_ELIMIT, "more than 100000 events");
    if (!json_is_object(o))
        return jfail(j, ASEC_EFORMAT, "expected an event object");
    type = json_object_get(o, "type");
    if (!json_is_string(type))
        return jfail(j, ASEC_EFORMAT, "missing string 'type'");
    t = json_string_value(type);
    switch (node_type(t)) {
    case N_GAUSSIAN: {
        static const char *const k[] = {"type", "noise_multiplier", NULL};
        double s;

        ASEC_TRY(j_keys(j, o, k));
        ASEC_TRY(j_number(j, o, "noise_multiplier", 1, 0.0, &s));
        if (!finite_pos(s))
            return jfail(j, ASEC_EFORMAT, "noise_multiplier must be positive and finite");
        *inv_s2 += 1.0 / (s * s);
        return ASEC_OK;
    }
    case N_LAPLACE: {
        static const char *const k[] = {"type", "noise_multiplier", NULL};
        double b;

        ASEC_TRY(j_keys(j, o, k));
        ASEC_TRY(j_number(j, o, "noise_multiplier", 1, 0.0, &b));
        if (!finite_pos(b))
            return jfail(j, ASEC_EFORMAT, "noise_multiplier must be positive and finite");
        if (*lap != 0.0 || *inv_s2 != 0.0)
            return jfail(j, ASEC_EFORMAT,
                         "a sampled event may wrap one Laplace, or Gaussians");
        *lap = b;
        return ASEC_OK;
    }
    case N_SELF: {
        static const char *const k[] = {"type", "count", "event", NULL};
        double before = *inv_s2;
        uint64_t cnt;

        ASEC_TRY(j_keys(j, o, k));
        ASEC_TRY(j_count(j, o, "count", 1, &cnt));
        snprintf(j->path + len, sizeof j->path - len, "%sevent", len ? "." : "");
        *inv_s2 = 0.0;
        rc = fold_sampled(j, json_object_get(o, "event"), depth + 1, inv_s2, lap);
        j->path[len] = '\0';
        if (rc != ASEC_OK)
            return rc;
        if (*lap != 0.0 && cnt != 1)
            return jfail(j, ASEC_EFORMAT,
                         "a sampled Laplace cannot be self-composed inside "
                         "the sampling");
        *inv_s2 = before + (double)cnt * *inv_s2;
        return ASEC_OK;
    }
    case N_COMPOSED: {
        static const char *const k[] = {"type", "events", NULL};
        json_t *arr = json_object_get(o, "events");

        ASEC_TRY(j_keys(j, o, k));
        if (!json_is_array(arr))
            return jfail(j, ASEC_EFORMAT, "'events' must be an array");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(j->path + len, sizeof j->path - len, "%sevents[%zu]", len ? "." : "",
                     i);
            rc = fold_sampled(j, json_array_get(arr, i), depth + 1, inv_s2, lap);
            j->path[len] = '\0';
            if (rc != ASEC_OK)
                return rc;
        }
        return ASEC_OK;
    }
    default:
        return jfail(j, ASEC_EFORMAT,
                     "a sampled event must wrap Gaussian events (possibly "
                     "composed) or one Laplace event");
    }
}

static int
parse_event(struct jctx *j, json_t *o, int depth, uint64_t mult, struct evlist *out)
{
    asec_acct_event ev;
    const char *t;
    json_t *type;
    size_t len = strlen(j->path);
    int rc = ASEC_OK;

    if (depth > JSON_MAX_DEPTH)
        return jfail(j, ASEC_ELIMIT, "nesting deeper than 64");
    if (++j->nodes > JSON_MAX_NODES)
        return jfail(j, ASEC_ELIMIT, "more than 100000 events");
    if (!json_is_object(o))
        return jfail(j, ASEC_EFORMAT, "expected an event object");
    type = json_object_get(o, "type");
    if (!json_is_string(type))
        return jfail(j, ASEC_EFORMAT, "missing string 'type'");
    t = json_string_value(type);
    memset(&ev, 0, sizeof ev);
    ev.q = 1.0;
    ev.count = mult;
    switch (node_type(t)) {
    case N_GAUSSIAN:
    case N_LAPLACE: {
        static const char *const k[] = {"type", "noise_multiplier", NULL};

        ASEC_TRY(j_keys(j, o, k));
        ASEC_TRY(j_number(j, o, "noise_multiplier", 1, 0.0, &ev.sigma));
        if (!finite_pos(ev.sigma))
            return jfail(j, ASEC_EFORMAT, "noise_multiplier must be positive and finite");
        ev.kind =
            node_type(t) == N_GAUSSIAN ? ASEC_ACCT_EV_GAUSSIAN : ASEC_ACCT_EV_LAPLACE;
        return evlist_push(out, &ev);
    }
    case N_EPSDELTA: {
        static const char *const k[] = {"type", "epsilon", "delta", NULL};

        ASEC_TRY(j_keys(j, o, k));
        ASEC_TRY(j_number(j, o, "epsilon", 1, 0.0, &ev.epsilon));
        ASEC_TRY(j_number(j, o, "delta", 0, 0.0, &ev.delta));
        if (!finite_nonneg(ev.epsilon))
            return jfail(j, ASEC_EFORMAT, "epsilon must be non-negative and finite");
        if (!(ev.delta >= 0.0 && ev.delta < 1.0))
            return jfail(j, ASEC_EFORMAT, "delta must be in [0, 1)");
        ev.kind = ASEC_ACCT_EV_APPROX;
        return evlist_push(out, &ev);
    }
    case N_ZCDP: {
        static const char *const k[] = {"type", "rho", "xi", NULL};

        ASEC_TRY(j_keys(j, o, k));
        ASEC_TRY(j_number(j, o, "rho", 1, 0.0, &ev.rho));
        ASEC_TRY(j_number(j, o, "xi", 0, 0.0, &ev.xi));
        if (!finite_nonneg(ev.rho) || !finite_nonneg(ev.xi))
            return jfail(j, ASEC_EFORMAT, "rho and xi must be non-negative and finite");
        ev.kind = ASEC_ACCT_EV_ZCDP;
        return evlist_push(out, &ev);
    }
    case N_NOOP: {
        static const char *const k[] = {"type", NULL};

        return j_keys(j, o, k);
    }
    case N_POISSON:
    case N_WOR: {
        static const char *const kp[] = {"type", "sampling_probability", "event", NULL};
        static const char *const kw[] = {"type", "source_dataset_size", "sample_size",
                                         "event", NULL};
        double inv = 0.0, lap = 0.0;

        if (node_type(t) == N_POISSON) {
            ASEC_TRY(j_keys(j, o, kp));
            ASEC_TRY(j_number(j, o, "sampling_probability", 1, 0.0, &ev.q));
            if (!(ev.q >= 0.0 && ev.q <= 1.0))
                return jfail(j, ASEC_EFORMAT, "sampling_probability must be in [0, 1]");
        } else {
            uint64_t n, m;

            ASEC_TRY(j_keys(j, o, kw));
            ASEC_TRY(j_count(j, o, "source_dataset_size", 0, &n));
            ASEC_TRY(j_count(j, o, "sample_size", 1, &m));
            if (m > n)
                return jfail(j, ASEC_EFORMAT, "sample_size exceeds source_dataset_size");
            ev.q = (double)m / (double)n;
        }
        snprintf(j->path + len, sizeof j->path - len, "%sevent", len ? "." : "");
        rc = fold_sampled(j, json_object_get(o, "event"), depth + 1, &inv, &lap);
        j->path[len] = '\0';
        if (rc != ASEC_OK)
            return rc;
        if (lap != 0.0) {
            if (node_type(t) == N_WOR)
                return jfail(j, ASEC_EFORMAT,
                             "sampling without replacement supports "
                             "Gaussian events only");
            ev.kind = ASEC_ACCT_EV_POISSON_LAPLACE;
            ev.sigma = lap;
        } else {
            if (!(inv > 0.0) || !isfinite(inv))
                return jfail(j, ASEC_EFORMAT, "sampled Gaussian noise is degenerate");
            ev.kind = node_type(t) == N_POISSON ? ASEC_ACCT_EV_POISSON_GAUSSIAN
                                                : ASEC_ACCT_EV_WOR_GAUSSIAN;
            ev.sigma = 1.0 / sqrt(inv);
        }
        if (ev.q == 0.0)
            return ASEC_OK;
        return evlist_push(out, &ev);
    }
    case N_SELF: {
        static const char *const k[] = {"type", "count", "event", NULL};
        uint64_t cnt;

        ASEC_TRY(j_keys(j, o, k));
        ASEC_TRY(j_count(j, o, "count", 1, &cnt));
        if (cnt == 0)
            return ASEC_OK;
        if (mult > ACCT_MAX_COUNT / cnt)
            return jfail(j, ASEC_ELIMIT, "total count exceeds 2^62");
        snprintf(j->path + len, sizeof j->path - len, "%sevent", len ? "." : "");
        rc = parse_event(j, json_object_get(o, "event"), depth + 1, mult * cnt, out);
        j->path[len] = '\0';
        return rc;
    }
    case N_COMPOSED: {
        static const char *const k[] = {"type", "events", NULL};
        json_t *arr = json_object_get(o, "events");

        ASEC_TRY(j_keys(j, o, k));
        if (!json_is_array(arr))
            return jfail(j, ASEC_EFORMAT, "'events' must be an array");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(j->path + len, sizeof j->path - len, "%sevents[%zu]", len ? "." : "",
                     i);
            rc = parse_event(j, json_array_get(arr, i), depth + 1, mult, out);
            j->path[len] = '\0';
            if (rc != ASEC_OK)
                return rc;
        }
        return ASEC_OK;
    }
    case N_UNKNOWN:
        break;
    }
    {
        char msg[96];

        snprintf(msg, sizeof msg, "unknown event type '%.40s'", t);
        return jfail(j, ASEC_EFORMAT, msg);
    }
}

static int
load_json(json_t **root, const char *json, size_t len)
{
    json_error_t err;

    if (len > JSON_MAX_BYTES)
        ASEC_FAIL(ASEC_ELIMIT, "JSON text of %zu bytes exceeds the 16 MiB cap", len);
    *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (*root == NULL) {
        char text[4 * JSON_ERROR_TEXT_LENGTH];

        ASEC_FAIL(ASEC_EFORMAT, "line %d column %d: %s", err.line, err.column,
                  asec__printable(text, sizeof text, err.text));
    }
    return ASEC_OK;
}

/* Validate every event, then add all of them or none. */
static int
add_all(asec_acct *a, const asec_acct_event *v, size_t n)
{
    asec_acct_event *cs;
    size_t m = 0;
    int rc = ASEC_OK;

    if (n == 0)
        return ASEC_OK;
    cs = asec__calloc(n, sizeof *cs);
    if (cs == NULL)
        return ASEC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int skip;

        rc = canonical(a, &v[i], &cs[m], &skip);
        if (rc != ASEC_OK)
            goto done;
        if (!skip)
            m++;
    }
    rc = reserve(a, m);
    if (rc == ASEC_OK)
        for (size_t i = 0; i < m; i++)
            append(a, &cs[i]);
done:
    asec__free(cs);
    return rc;
}

int
asec_acct_add_events_json(asec_acct *a, const char *json, size_t len)
{
    struct jctx j;
    struct evlist l = {NULL, 0, 0};
    json_t *root;
    int rc;

    memset(&j, 0, sizeof j);
    ASEC_TRY(load_json(&root, json, len));
    rc = parse_event(&j, root, 1, 1, &l);
    json_decref(root);
    if (rc == ASEC_OK)
        rc = add_all(a, l.v, l.n);
    asec__free(l.v);
    return rc;
}

/* ------------------------------------------------------------------ checkpoints */

static const char *const kind_names[] = {
    "gaussian", "poisson_gaussian", "wor_gaussian", "laplace", "poisson_laplace",
    "pure",     "approx",           "zcdp"};
static const char *const grid_names[] = {"dp_accounting", "opacus", "tf_privacy"};

static int
jset(json_t *o, const char *key, json_t *v)
{
    if (v == NULL || json_object_set_new(o, key, v) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "cannot build the accountant JSON ('%s')", key);
    return ASEC_OK;
}

static int
build_json(const asec_acct *a, json_t *root)
{
    json_t *evs;

    ASEC_TRY(jset(root, "format", json_string("attnsec-accountant")));
    ASEC_TRY(jset(root, "version", json_integer(1)));
    ASEC_TRY(jset(root, "relation", json_string(asec_acct_relation_name(a->relation))));
    ASEC_TRY(jset(root, "legacy", json_boolean(a->legacy)));
    ASEC_TRY(jset(root, "refine_order", json_boolean(a->refine_order)));
    ASEC_TRY(jset(root, "pld_dx", json_real(a->pld_dx)));
    ASEC_TRY(jset(root, "pld_bracket_rtol", json_real(a->pld_rtol)));
    ASEC_TRY(jset(root, "max_bytes", json_integer((json_int_t)a->max_bytes)));
    if (a->custom_orders) {
        json_t *ord = json_array();

        ASEC_TRY(jset(root, "orders", ord));
        for (size_t i = 0; i < a->n_orders; i++)
            if (json_array_append_new(ord, json_real(a->orders[i])) != 0)
                ASEC_FAIL(ASEC_ENOMEM, "cannot build the accountant JSON (orders)");
    } else {
        ASEC_TRY(jset(root, "grid", json_string(grid_names[a->grid])));
    }
    evs = json_array();
    ASEC_TRY(jset(root, "events", evs));
    for (size_t i = 0; i < a->n_ent; i++) {
        const asec_acct_event *e = &a->ent[i].ev;
        json_t *o = json_object();

        if (o == NULL || json_array_append_new(evs, o) != 0)
            ASEC_FAIL(ASEC_ENOMEM, "cannot build the accountant JSON (events)");
        ASEC_TRY(jset(o, "kind", json_string(kind_names[e->kind])));
        ASEC_TRY(jset(o, "count", json_integer((json_int_t)e->count)));
        switch (e->kind) {
        case ASEC_ACCT_EV_POISSON_GAUSSIAN:
        case ASEC_ACCT_EV_WOR_GAUSSIAN:
        case ASEC_ACCT_EV_POISSON_LAPLACE:
            ASEC_TRY(jset(o, "q", json_real(e->q)));
            /* fall through */
        case ASEC_ACCT_EV_GAUSSIAN:
        case ASEC_ACCT_EV_LAPLACE:
            ASEC_TRY(jset(o, "sigma", json_real(e->sigma)));
            break;
        case ASEC_ACCT_EV_APPROX:
            ASEC_TRY(jset(o, "delta", json_real(e->delta)));
            /* fall through */
        case ASEC_ACCT_EV_PURE:
            ASEC_TRY(jset(o, "epsilon", json_real(e->epsilon)));
            break;
        case ASEC_ACCT_EV_ZCDP:
            ASEC_TRY(jset(o, "rho", json_real(e->rho)));
            ASEC_TRY(jset(o, "xi", json_real(e->xi)));
            break;
        }
    }
    return ASEC_OK;
}

int
asec_acct_to_json(const asec_acct *a, char **out)
{
    json_t *root = json_object();
    char *text, *copy;
    int rc;

    *out = NULL;
    if (root == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "cannot build the accountant JSON");
    rc = build_json(a, root);
    if (rc != ASEC_OK) {
        json_decref(root);
        return rc;
    }
    text = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (text == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "cannot serialize the accountant");
    copy = asec__strdup(text);
    free(text); /* jansson's allocator */
    if (copy == NULL)
        return ASEC_ENOMEM;
    *out = copy;
    return ASEC_OK;
}

void
asec_acct_json_free(char *s)
{
    asec__free(s);
}

static int
name_index(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

static int
j_bool(struct jctx *j, json_t *o, const char *key, int *out)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL) {
        *out = 0;
        return ASEC_OK;
    }
    if (!json_is_boolean(v)) {
        snprintf(j->path, sizeof j->path, "%s", key);
        return jfail(j, ASEC_EFORMAT, "expected true or false");
    }
    *out = json_is_true(v);
    return ASEC_OK;
}

static int
restore(json_t *root, asec_acct **out)
{
    static const char *const top[] = {
        "format",           "version",   "relation", "legacy", "refine_order", "pld_dx",
        "pld_bracket_rtol", "max_bytes", "orders",   "grid",   "events",       NULL};
    static const char *const evk[] = {"kind",  "count", "q",  "sigma", "epsilon",
                                      "delta", "rho",   "xi", NULL};
    asec_acct_options o = ASEC_ACCT_OPTIONS_INIT;
    struct jctx j;
    struct evlist l = {NULL, 0, 0};
    double *orders = NULL;
    json_t *x, *evs;
    asec_acct *a = NULL;
    int rc;

    memset(&j, 0, sizeof j);
    if (!json_is_object(root))
        return jfail(&j, ASEC_EFORMAT, "expected an accountant object");
    ASEC_TRY(j_keys(&j, root, top));
    x = json_object_get(root, "format");
    if (!json_is_string(x) || strcmp(json_string_value(x), "attnsec-accountant") != 0)
        return jfail(&j, ASEC_EFORMAT, "'format' is not \"attnsec-accountant\"");
    x = json_object_get(root, "version");
    if (!json_is_integer(x) || json_integer_value(x) != 1)
        return jfail(&j, ASEC_EFORMAT, "'version' is not 1");
    x = json_object_get(root, "relation");
    if (!json_is_string(x))
        return jfail(&j, ASEC_EFORMAT, "'relation' must be a string");
    if (strcmp(json_string_value(x), "add-remove") == 0)
        o.relation = ASEC_ACCT_ADD_REMOVE;
    else if (strcmp(json_string_value(x), "replace-one") == 0)
        o.relation = ASEC_ACCT_REPLACE_ONE;
    else
        return jfail(&j, ASEC_EFORMAT, "unknown 'relation'");
    ASEC_TRY(j_bool(&j, root, "legacy", &o.legacy));
    ASEC_TRY(j_bool(&j, root, "refine_order", &o.refine_order));
    ASEC_TRY(j_number(&j, root, "pld_dx", 0, 0.0, &o.pld_dx));
    ASEC_TRY(j_number(&j, root, "pld_bracket_rtol", 0, 0.0, &o.pld_bracket_rtol));
    x = json_object_get(root, "max_bytes");
    if (x != NULL) {
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return jfail(&j, ASEC_EFORMAT, "'max_bytes' must be a non-negative integer");
        o.max_bytes = (size_t)json_integer_value(x);
    }
    x = json_object_get(root, "grid");
    if (x != NULL) {
        int g = json_is_string(x) ? name_index(json_string_value(x), grid_names, 3) : -1;

        if (g < 0)
            return jfail(&j, ASEC_EFORMAT, "unknown 'grid'");
        o.grid = (asec_acct_grid)g;
    }
    x = json_object_get(root, "orders");
    if (x != NULL) {
        size_t n = json_array_size(x);

        if (!json_is_array(x) || n < 1 || n > ACCT_MAX_ORDERS)
            return jfail(&j, ASEC_EFORMAT,
                         "'orders' must be an array of 1..4096 numbers");
        orders = asec__malloc(n * sizeof *orders);
        if (orders == NULL)
            return ASEC_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(x, i);

            if (!json_is_number(e)) {
                asec__free(orders);
                return jfail(&j, ASEC_EFORMAT, "'orders' must hold numbers only");
            }
            orders[i] = json_number_value(e);
        }
        o.orders = orders;
        o.n_orders = n;
    }
    rc = asec_acct_alloc(&a, &o);
    asec__free(orders);
    if (rc != ASEC_OK)
        return asec__fail(rc == ASEC_EINVAL ? ASEC_EFORMAT : rc, "accountant options: %s",
                          asec_errmsg());
    evs = json_object_get(root, "events");
    if (!json_is_array(evs)) {
        rc = jfail(&j, ASEC_EFORMAT, "'events' must be an array");
        goto fail;
    }
    if (json_array_size(evs) > JSON_MAX_NODES) {
        rc = jfail(&j, ASEC_ELIMIT, "more than 100000 events");
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(evs); i++) {
        json_t *e = json_array_get(evs, i);
        asec_acct_event ev;
        int kind;

        memset(&ev, 0, sizeof ev);
        snprintf(j.path, sizeof j.path, "events[%zu]", i);
        if (!json_is_object(e)) {
            rc = jfail(&j, ASEC_EFORMAT, "expected an object");
            goto fail;
        }
        if ((rc = j_keys(&j, e, evk)) != ASEC_OK)
            goto fail;
        x = json_object_get(e, "kind");
        kind = json_is_string(x) ? name_index(json_string_value(x), kind_names, 8) : -1;
        if (kind < 0) {
            rc = jfail(&j, ASEC_EFORMAT, "unknown 'kind'");
            goto fail;
        }
        ev.kind = (asec_acct_event_kind)kind;
        if ((rc = j_count(&j, e, "count", 0, &ev.count)) != ASEC_OK ||
            (rc = j_number(&j, e, "q", 0, 1.0, &ev.q)) != ASEC_OK ||
            (rc = j_number(&j, e, "sigma", 0, 0.0, &ev.sigma)) != ASEC_OK ||
            (rc = j_number(&j, e, "epsilon", 0, 0.0, &ev.epsilon)) != ASEC_OK ||
            (rc = j_number(&j, e, "delta", 0, 0.0, &ev.delta)) != ASEC_OK ||
            (rc = j_number(&j, e, "rho", 0, 0.0, &ev.rho)) != ASEC_OK ||
            (rc = j_number(&j, e, "xi", 0, 0.0, &ev.xi)) != ASEC_OK)
            goto fail;
        if ((rc = evlist_push(&l, &ev)) != ASEC_OK)
            goto fail;
    }
    rc = add_all(a, l.v, l.n);
    if (rc != ASEC_OK) {
        rc = asec__fail(rc == ASEC_EINVAL ? ASEC_EFORMAT : rc, "%s", asec_errmsg());
        goto fail;
    }
    asec__free(l.v);
    *out = a;
    return ASEC_OK;
fail:
    asec__free(l.v);
    asec_acct_free(a);
    return rc;
}

int
asec_acct_from_json(asec_acct **out, const char *json, size_t len)
{
    json_t *root;
    int rc;

    *out = NULL;
    ASEC_TRY(load_json(&root, json, len));
    rc = restore(root, out);
    json_decref(root);
    return rc;
}
