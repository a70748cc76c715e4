/* acct_pld.c - privacy loss distributions (PLD) with a certified bracket.
 *
 * For one step of a mechanism with dominating pair (P, Q), the privacy loss
 * L = log(dP/dQ) is monotone in a scalar output for every mechanism here,
 * so the masses P(L > t) and Q(L > t) are available in closed form (normal
 * and Laplace CDFs).  On a lattice g_k = off + k dx we
 *
 *   1. bin the output by loss, bins (g_k, g_{k+1}]: exact masses (a_k, b_k)
 *      under P and Q.  Binning is post-processing, so the binned pair is
 *      dominated by (P, Q), and its hockey-stick divergence equals that of
 *      (P, Q) at every lattice point.
 *   2. pessimistic PMF (connect-the-dots, Doroshenko et al. 2022): split
 *      each bin onto its two end points keeping both masses.  This is a
 *      mean-preserving spread of dQ/dP, so every delta(eps) only grows, and
 *      domination is preserved under composition.  Mass above the top of
 *      the range goes to +infinity; mass below the bottom is moved up.
 *   3. optimistic PMF: merge the bins from the top down (a "flow"): a bin
 *      whose ratio a/b exceeds e^{g} is merged with just enough of the bins
 *      below it (ratio < e^{g}) to make the merged ratio exactly e^{g}.
 *      Merging is post-processing, so the result is dominated by (P, Q);
 *      what is left at the bottom keeps only e^{g} b of its P-mass (a
 *      sub-probability, which can only lower delta).  Every atom lands on
 *      the lattice with an exact ratio; the concentration costs O(dx^2) per
 *      step, like connect-the-dots, instead of the O(dx) bias of rounding
 *      losses down ("privacy buckets", ACCOUNTANT.md pitfall 8).
 *
 * Composition: T-fold self-composition and heterogeneous products by one
 * real FFT per event (FFTW3 on 2^k or 3 * 2^k points, 64-byte aligned
 * workspaces reused across the compositions of a query; GSL radix-2
 * without FFTW), the spectrum raised to the count in log-polar form after
 * centring each PMF at its mean (frequencies whose power underflows are
 * skipped).  The FFT length
 * covers a window [W_lo, W_hi] of the composed loss chosen by Chernoff
 * bounds from the per-step moment generating functions; the composed mass
 * outside the window (which the circular convolution folds in) is bounded
 * by the same Chernoff bounds and added to the upper delta / subtracted
 * from the lower one, together with a floating-point bound for the FFT.
 *
 * Both directions of add-remove neighbourhoods are composed (remove:
 * P = mixture, Q = base; add: the reverse), and the larger epsilon wins;
 * the add direction is first bounded on a 4x coarser lattice and only
 * recomputed on the query's lattice when that bound is not below the
 * remove direction's.  The first spacing comes from the composed variance
 * (coarser for small epsilons, whose bracket target is absolute), and each
 * refinement aims at the target assuming the width shrinks as dx^2.
 * The lattice spacing is refined until the bracket [eps_lo, eps_hi] is
 * narrow enough (options.pld_bracket_rtol) or the memory cap is reached.
 */
#include "config.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_fft_halfcomplex.h>
#include <gsl/gsl_fft_real.h>
#ifdef HAVE_FFTW3
#include <fftw3.h>
#endif

#include "acct_internal.h"
#include "internal.h"

#define MAX_REFINE 5        /* bracket refinements (halving dx) */
#define MAX_GRID 50000000.0 /* per-step lattice points, hard cap */
#define MIN_FFT 1024
#define N_LAMBDA 32 /* Chernoff lambda grid, 1e-3..1e4 */

__extension__ typedef __int128 i128;

/* ------------------------------------------------------------------ mechanisms */

enum mkind { M_GAUSS, M_SGM, M_LAP, M_PLAP, M_ATOMS };

/* One step of one event, in the remove direction; the add direction is its
 * reflection (L -> -L, P <-> Q). */
struct mech {
    enum mkind kind;
    double q, s;       /* SGM: rate and noise multiplier; LAP/PLAP: scale b */
    double mu;         /* GAUSS: mu = sensitivity / sigma (folded) */
    double lmin, lmax; /* support of the continuous part of L */
    int n_atoms;
    double al[2], ap[2], aq[2]; /* atoms: loss, P-mass, Q-mass */
    double pinf;                /* P-mass at +infinity (APPROX delta) */
    uint64_t count;
};

/* Upper and lower tails of the continuous part: P(L > t), Q(L > t),
 * P(L <= t), Q(L <= t). */
struct tails {
    double pu, qu, pl, ql;
};

static double
nq(double x)
{
    return asec_acct__normal_q(x);
}

/* P(Z > x) and P(Z <= x) with one erfc: the smaller one directly, the
 * other as its complement (no precision lost: it is at least 1/2). */
static void
nboth(double x, double *upper, double *lower)
{
    double t = nq(fabs(x));

    if (x >= 0.0) {
        *upper = t;
        *lower = 1.0 - t;
    } else {
        *lower = t;
        *upper = 1.0 - t;
    }
}

static void
tails_remove(const struct mech *m, double t, struct tails *o)
{
    switch (m->kind) {
    case M_GAUSS: {
        double h = 0.5 * m->mu * m->mu;

        nboth((t - h) / m->mu, &o->pu, &o->pl);
        nboth((t + h) / m->mu, &o->qu, &o->ql);
        return;
    }
    case M_SGM: {
        double q = m->q, s = m->s, z;

        if (t <= m->lmin) {
            o->pu = o->qu = 1.0;
            o->pl = o->ql = 0.0;
            return;
        }
        /* z(t) = s^2 log((e^t - (1-q))/q) + 1/2, with e^t - (1-q) =
         * (1-q) expm1(t - log(1-q)). */
        z = s * s * (m->lmin - log(q) + asec_acct__log_expm1(t - m->lmin)) + 0.5;
        {
            double u0, l0, u1, l1;

            nboth(z / s, &u0, &l0);
            nboth((z - 1.0) / s, &u1, &l1);
            o->pu = (1.0 - q) * u0 + q * u1;
            o->qu = u0;
            o->pl = (1.0 - q) * l0 + q * l1;
            o->ql = l0;
        }
        return;
    }
    case M_LAP:
    case M_PLAP: {
        double b = m->s, q = m->kind == M_LAP ? 1.0 : m->q, zt, u;
        double l0u, l1u, l0l, l1l; /* Lap(0,b) and Lap(1,b) masses of (zt,1), (0,zt] */

        if (t >= m->lmax) {
            zt = 1.0;
        } else if (t <= m->lmin) {
            zt = 0.0;
        } else {
            if (m->kind == M_LAP)
                u = t; /* L = (2z - 1)/b */
            else       /* L = log(1 - q + q e^u), u = (2z - 1)/b */
                u = log1p(-q) - log(q) + asec_acct__log_expm1(t - log1p(-q));
            zt = (b * u + 1.0) / 2.0;
            zt = fmin(1.0, fmax(0.0, zt));
        }
        l0u = 0.5 * (exp(-zt / b) - exp(-1.0 / b));
        l1u = -0.5 * expm1(-(1.0 - zt) / b);
        l0l = -0.5 * expm1(-zt / b);
        l1l = 0.5 * (exp(-(1.0 - zt) / b) - exp(-1.0 / b));
        if (m->kind == M_LAP) {
            o->pu = l1u;
            o->pl = l1l;
        } else {
            o->pu = (1.0 - q) * l0u + q * l1u;
            o->pl = (1.0 - q) * l0l + q * l1l;
        }
        o->qu = l0u;
        o->ql = l0l;
        return;
    }
    case M_ATOMS:
        o->pu = o->qu = o->pl = o->ql = 0.0;
        return;
    }
}

static void
tails_dir(const struct mech *m, int add, double t, struct tails *o)
{
    struct tails r;

    if (!add) {
        tails_remove(m, t, o);
        return;
    }
    tails_remove(m, -t, &r);
    o->pu = r.ql;
    o->qu = r.pl;
    o->pl = r.qu;
    o->ql = r.pu;
}

static void
dir_support(const struct mech *m, int add, double *lo, double *hi)
{
    *lo = add ? -m->lmax : m->lmin;
    *hi = add ? -m->lmin : m->lmax;
}

/* Build the remove-direction mechanism of one canonical event, or return 0
 * when it needs no PLD (folded Gaussians are handled by the caller). */
static void
mech_of(const asec_acct_event *e, struct mech *m)
{
    memset(m, 0, sizeof *m);
    m->count = e->count;
    m->lmin = -INFINITY;
    m->lmax = INFINITY;
    switch (e->kind) {
    case ASEC_ACCT_EV_POISSON_GAUSSIAN:
        m->kind = M_SGM;
        m->q = e->q;
        m->s = e->sigma;
        m->lmin = log1p(-e->q);
        return;
    case ASEC_ACCT_EV_LAPLACE:
        m->kind = M_LAP;
        m->s = e->sigma;
        m->lmin = -1.0 / e->sigma;
        m->lmax = 1.0 / e->sigma;
        m->n_atoms = 2;
        m->al[0] = 1.0 / e->sigma; /* z >= 1 */
        m->ap[0] = 0.5;
        m->aq[0] = 0.5 * exp(-1.0 / e->sigma);
        m->al[1] = -1.0 / e->sigma; /* z <= 0 */
        m->ap[1] = 0.5 * exp(-1.0 / e->sigma);
        m->aq[1] = 0.5;
        return;
    case ASEC_ACCT_EV_POISSON_LAPLACE: {
        double q = e->q, b = e->sigma, em = exp(-1.0 / b);

        m->kind = M_PLAP;
        m->q = q;
        m->s = b;
        m->lmin = log1p(q * expm1(-1.0 / b));
        m->lmax = log1p(q * expm1(1.0 / b));
        m->n_atoms = 2;
        m->al[0] = m->lmax;
        m->ap[0] = 0.5 * ((1.0 - q) * em + q);
        m->aq[0] = 0.5 * em;
        m->al[1] = m->lmin;
        m->ap[1] = 0.5 * ((1.0 - q) + q * em);
        m->aq[1] = 0.5;
        return;
    }
    case ASEC_ACCT_EV_PURE:
    case ASEC_ACCT_EV_APPROX: {
        double eps = e->epsilon, d = e->kind == ASEC_ACCT_EV_APPROX ? e->delta : 0.0;
        double hi = 1.0 / (1.0 + exp(-eps)), lo = 1.0 / (1.0 + exp(eps));

        m->kind = M_ATOMS;
        m->lmin = m->lmax = 0.0;
        m->n_atoms = 2;
        m->al[0] = eps;
        m->ap[0] = (1.0 - d) * hi;
        m->aq[0] = (1.0 - d) * lo;
        m->al[1] = -eps;
        m->ap[1] = (1.0 - d) * lo;
        m->aq[1] = (1.0 - d) * hi;
        m->pinf = d;
        return;
    }
    default:
        /* GAUSSIAN is folded by the caller; others are rejected earlier. */
        m->kind = M_GAUSS;
        m->mu = 1.0 / e->sigma;
        return;
    }
}

/* Rough per-step standard deviation of L under P, to choose dx. */
static double
mech_scale(const struct mech *m)
{
    switch (m->kind) {
    case M_GAUSS:
        return m->mu;
    case M_SGM: {
        double v = m->q * m->q * expm1(fmin(1.0 / (m->s * m->s), 700.0));

        return sqrt(fmin(v, 1.0 / (m->s * m->s)) + 1e-300);
    }
    case M_LAP:
        return 1.0 / m->s;
    case M_PLAP:
        return fmax(m->q * expm1(fmin(1.0 / m->s, 700.0)), 1e-300);
    case M_ATOMS:
        return fmax(m->al[0], 1e-300);
    }
    return 1.0;
}

/* ------------------------------------------------------------------ one step on the
 * lattice */

/* A PMF on the lattice off + (k0 + i) dx, i < n, plus mass at +infinity. */
struct pmf {
    double off, dx;
    long k0;
    size_t n;
    double *p;
    double pinf;
    double *bmass; /* (n/64 + 1,) positive mass of each block of 64, or NULL */
};

static void
pmf_free(struct pmf *f)
{
    asec__free(f->p);
    asec__free(f->bmass);
    f->p = NULL;
    f->bmass = NULL;
}

static int
pmf_blocks(struct pmf *f)
{
    size_t nb = f->n / 64 + 1;

    f->bmass = asec__calloc(nb, sizeof *f->bmass);
    if (f->bmass == NULL)
        return ASEC_ENOMEM;
    for (size_t i = 0; i < f->n; i++)
        if (f->p[i] > 0.0)
            f->bmass[i / 64] += f->p[i];
    return ASEC_OK;
}

/* The lattice offset of a direction: the heaviest atom, or the end of
 * the support where the bulk of a subsampled mechanism sits, lies on the
 * lattice, so the optimistic PMF loses nothing to rounding there. */
static double
dir_offset(const struct mech *m, int add, double dx)
{
    double a = 0.0, o;

    if (m->n_atoms > 0) {
        int best = 0;

        for (int i = 1; i < m->n_atoms; i++)
            if ((add ? m->aq[i] : m->ap[i]) > (add ? m->aq[best] : m->ap[best]))
                best = i;
        a = add ? -m->al[best] : m->al[best];
    } else if (m->kind == M_SGM) {
        a = add ? -m->lmin : m->lmin;
    }
    o = fmod(a, dx);
    if (o < 0.0)
        o += dx;
    return o;
}

/* The mass of the continuous part in (t1, t2] under P (which = 0) or Q,
 * from whichever tails keep the most precision. */
static double
bin_mass(const struct tails *x1, const struct tails *x2, int which)
{
    double u1 = which ? x1->qu : x1->pu, u2 = which ? x2->qu : x2->pu;
    double l1 = which ? x1->ql : x1->pl, l2 = which ? x2->ql : x2->pl;
    double v = u1 < l2 ? u1 - u2 : l2 - l1;

    return v > 0.0 ? v : 0.0;
}

/* The optimistic merge, top down: a pending group aimed at the lower end
 * g of its first bin has ratio >= e^g; it absorbs bins below (ratio <=
 * e^g) until its ratio is exactly e^g, then is emitted at g.  The
 * leftover at the bottom keeps only e^g b of its P-mass.  Returns the mass
 * emitted; out (n,) is accumulated into. */
static double
flow_down(const double *a, const double *b, size_t n, double off, long k0, double dx,
          double *out)
{
    double pa = 0.0, pb = 0.0, eg = 0.0, total = 0.0;
    long jt = -1;

    for (long i = (long)n - 2; i >= 0; i--) {
        double ai = a[i], bi = b[i], excess, deficit;

        if (ai == 0.0 && bi == 0.0)
            continue;
        if (jt < 0) {
            jt = i;
            eg = exp(off + (double)(k0 + i) * dx);
            pa = ai;
            pb = bi;
            continue;
        }
        excess = pa - eg * pb;
        deficit = eg * bi - ai;
        if (!(excess > 0.0) || !(deficit > 0.0) || deficit <= excess) {
            if (!(excess > 0.0)) {
                /* At the target already: emit and restart with this bin. */
                double e = fmin(pa, eg * pb);

                out[jt] += e;
                total += e;
                jt = i;
                eg = exp(off + (double)(k0 + i) * dx);
                pa = ai;
                pb = bi;
            } else {
                pa += ai; /* absorb the whole bin */
                pb += bi;
            }
            continue;
        }
        {
            double f = excess / deficit, e;

            pa += f * ai;
            pb += f * bi;
            e = fmin(pa, eg * pb);
            out[jt] += e;
            total += e;
            jt = i;
            eg = exp(off + (double)(k0 + i) * dx);
            pa = (1.0 - f) * ai;
            pb = (1.0 - f) * bi;
        }
    }
    if (jt >= 0) {
        double e = fmin(pa, eg * pb);

        out[jt] += e;
        total += e;
    }
    return total;
}

/* The same merge bottom up: a pending group aimed at the upper end g of
 * its first bin has ratio <= e^g and absorbs bins above (ratio >= e^g).
 * The leftover at the top goes to the lower end of its first bin. */
static double
flow_up(const double *a, const double *b, size_t n, double off, long k0, double dx,
        double *out)
{
    double pa = 0.0, pb = 0.0, eg = 0.0, total = 0.0;
    long jt = -1, jfirst = -1;

    for (long i = 0; i + 1 < (long)n; i++) {
        double ai = a[i], bi = b[i], excess, deficit;

        if (ai == 0.0 && bi == 0.0)
            continue;
        if (jt < 0) {
            jt = i + 1;
            jfirst = i;
            eg = exp(off + (double)(k0 + jt) * dx);
            pa = ai;
            pb = bi;
            continue;
        }
        deficit = eg * pb - pa;
        excess = ai - eg * bi;
        if (!(deficit > 0.0) || !(excess > 0.0) || excess <= deficit) {
            if (!(deficit > 0.0)) {
                double e = fmin(pa, eg * pb);

                out[jt] += e;
                total += e;
                jt = i + 1;
                jfirst = i;
                eg = exp(off + (double)(k0 + jt) * dx);
                pa = ai;
                pb = bi;
            } else {
                pa += ai;
                pb += bi;
            }
            continue;
        }
        {
            double f = deficit / excess, e;

            pa += f * ai;
            pb += f * bi;
            e = fmin(pa, eg * pb);
            out[jt] += e;
            total += e;
            jt = i + 1;
            jfirst = i;
            eg = exp(off + (double)(k0 + jt) * dx);
            pa = (1.0 - f) * ai;
            pb = (1.0 - f) * bi;
        }
    }
    if (jt >= 0) {
        /* Ratio below e^g: only the lower end of the first bin is safe. */
        double gl = exp(off + (double)(k0 + jfirst) * dx), e = fmin(pa, gl * pb);

        if (!(eg * pb - pa > 0.0)) {
            e = fmin(pa, eg * pb);
            out[jt] += e;
        } else {
            out[jfirst] += e;
        }
        total += e;
    }
    return total;
}

/* Discretize one direction of one mechanism on [t_lo, t_hi] (lattice
 * points), giving the pessimistic and optimistic PMFs on the same index
 * range.  tau is the truncation mass allowed at each end. */
static int
discretize(const struct mech *m, int add, double dx, double tau, struct pmf *pess,
           struct pmf *opt)
{
    double slo, shi, off = dir_offset(m, add, dx), t_lo, t_hi, step;
    long k0, k1;
    size_t n, bytes;
    double *a = NULL, *b = NULL;
    struct tails x0, x1;
    int rc = ASEC_OK;

    memset(pess, 0, sizeof *pess);
    memset(opt, 0, sizeof *opt);
    dir_support(m, add, &slo, &shi);
    /* Range: the continuous support cut where each tail is below tau, and
     * every atom inside. */
    t_lo = slo;
    t_hi = shi;
    if (m->kind != M_ATOMS) {
        if (!isfinite(t_hi) || !isfinite(t_lo)) {
            double c = 0.0;

            /* The distribution of L spans at least the middle; expand
             * outwards by doubling until the tails are below tau. */
            tails_dir(m, add, c, &x0);
            if (!isfinite(t_hi)) {
                step = 1.0;
                t_hi = isfinite(t_lo) ? fmax(t_lo, 0.0) + step : step;
                for (int i = 0; i < 200; i++) {
                    tails_dir(m, add, t_hi, &x1);
                    if (x1.pu <= tau)
                        break;
                    t_hi += step;
                    step *= 2.0;
                }
            }
            if (!isfinite(t_lo)) {
                step = 1.0;
                t_lo = fmin(t_hi, 0.0) - step;
                for (int i = 0; i < 200; i++) {
                    tails_dir(m, add, t_lo, &x1);
                    if (x1.pl <= tau)
                        break;
                    t_lo -= step;
                    step *= 2.0;
                }
            }
            /* Tighten both ends by bisection on the tails (30 steps). */
            {
                double lo = isfinite(slo) ? slo : t_lo - 1.0, hi = t_hi;

                lo = fmax(lo, t_lo);
                for (int i = 0; i < 60 && hi - lo > dx; i++) {
                    double mid = 0.5 * (lo + hi);

                    tails_dir(m, add, mid, &x1);
                    if (x1.pu <= tau)
                        hi = mid;
                    else
                        lo = mid;
                }
                t_hi = hi;
                lo = t_lo;
                hi = isfinite(shi) ? fmin(shi, t_hi) : t_hi;
                for (int i = 0; i < 60 && hi - lo > dx && !isfinite(slo); i++) {
                    double mid = 0.5 * (lo + hi);

                    tails_dir(m, add, mid, &x1);
                    if (x1.pl <= tau)
                        lo = mid;
                    else
                        hi = mid;
                }
                if (!isfinite(slo))
                    t_lo = lo;
            }
        }
    }
    for (int i = 0; i < m->n_atoms; i++) {
        double l = add ? -m->al[i] : m->al[i];

        t_lo = fmin(t_lo, l);
        t_hi = fmax(t_hi, l);
    }
    /* One spare point below, so that mass at the bottom of the support
     * falls inside bin 0 rather than below the range. */
    k0 = (long)floor((t_lo - off) / dx + 1e-9) - 1;
    k1 = (long)ceil((t_hi - off) / dx - 1e-9);
    if (k1 <= k0)
        k1 = k0 + 1;
    if ((double)(k1 - k0) + 1.0 > MAX_GRID)
        ASEC_FAIL(ASEC_ELIMIT,
                  "pld: one step needs %.3g lattice points at dx %g "
                  "(cap %.0e); raise pld_dx",
                  (double)(k1 - k0) + 1.0, dx, MAX_GRID);
    n = (size_t)(k1 - k0) + 1;
    if (asec__mul_size(n, 4 * sizeof(double), &bytes) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "pld: lattice of %zu points overflows", n);
    a = asec__calloc(2 * n, sizeof *a); /* bin masses a (n-1), b (n-1) */
    pess->p = asec__calloc(n, sizeof *pess->p);
    opt->p = asec__calloc(n, sizeof *opt->p);
    if (a == NULL || pess->p == NULL || opt->p == NULL) {
        rc = ASEC_ENOMEM;
        goto fail;
    }
    b = a + n;
    pess->off = opt->off = off;
    pess->dx = opt->dx = dx;
    pess->k0 = opt->k0 = k0;
    pess->n = opt->n = n;

    /* 1. Exact bin masses of the continuous part: bin i = (g_{k0+i}, g_{k0+i+1}].
     *    Below g_{k0} and above g_{k1}: the truncated tails. */
    {
        double g = off + (double)k0 * dx, below_p, below_q, above_p;

        tails_dir(m, add, g, &x0);
        below_p = x0.pl;
        below_q = x0.ql;
        for (size_t i = 0; i + 1 < n; i++) {
            double g1 = off + (double)(k0 + (long)i + 1) * dx;

            tails_dir(m, add, g1, &x1);
            a[i] = bin_mass(&x0, &x1, 0);
            b[i] = bin_mass(&x0, &x1, 1);
            x0 = x1;
        }
        above_p = x0.pu;
        /* Atoms: on a lattice point they are exact in both PMFs; otherwise
         * inside the bin that contains them (upper-closed bins). */
        for (int i = 0; i < m->n_atoms; i++) {
            double l = add ? -m->al[i] : m->al[i];
            double pa = add ? m->aq[i] : m->ap[i], qa = add ? m->ap[i] : m->aq[i];
            double r = (l - off) / dx - (double)k0;
            long j = (long)ceil(r - 1e-9) - 1; /* bin index with g_j < l <= g_{j+1} */

            if (fabs(r - floor(r + 0.5)) <= 1e-9 && r > 0.5 && r < (double)n - 0.5) {
                size_t at = (size_t)floor(r + 0.5);

                pess->p[at] += pa;
                opt->p[at] += fmin(pa, qa * exp(off + (double)(k0 + (long)at) * dx));
                continue;
            }
            if (j < 0) {
                below_p += pa;
                below_q += qa;
                continue;
            }
            if ((size_t)j + 1 >= n) {
                above_p += pa; /* above the range: only when l > t_hi */
                continue;
            }
            a[j] += pa;
            b[j] += qa;
        }
        /* Pessimistic ends: the top tail to +infinity, the bottom moved up
         * to g_{k0} (its loss rounded up).  Optimistic ends: both dropped
         * (sub-probability), except the bottom when its ratio allows. */
        pess->pinf = above_p + m->pinf;
        pess->p[0] += below_p;
        opt->pinf = m->pinf;
        (void)below_q;
    }

    /* 2. Pessimistic: split bin i onto g_i and g_{i+1} keeping both masses:
     *    y = (a - b e^{g_i}) / (1 - e^{-dx}), x = a - y. */
    {
        double denom = -expm1(-dx);

        for (size_t i = 0; i + 1 < n; i++) {
            double g = off + (double)(k0 + (long)i) * dx;
            double y, x;

            if (a[i] == 0.0)
                continue;
            y = (a[i] - b[i] * exp(g)) / denom; /* only for bins with mass */
            if (!(y > 0.0))
                y = 0.0;
            if (y > a[i])
                y = a[i];
            x = a[i] - y;
            pess->p[i] += x;
            pess->p[i + 1] += y;
        }
    }

    /* 3. Optimistic: merge bins into lattice-valued atoms (see the file
     *    comment), once from the top down and once from the bottom up; keep
     *    the flow that retains more mass (it runs from the bulk of the
     *    distribution towards its thin tail, where the leftover is small). */
    {
        double *alt = asec__calloc(n, sizeof *alt), m_down, m_up;

        if (alt == NULL) {
            rc = ASEC_ENOMEM;
            goto fail;
        }
        memcpy(alt, opt->p, n * sizeof *alt); /* the exact atoms */
        m_down = flow_down(a, b, n, off, k0, dx, opt->p);
        m_up = flow_up(a, b, n, off, k0, dx, alt);
        if (m_up > m_down)
            memcpy(opt->p, alt, n * sizeof *alt);
        asec__free(alt);
    }
    asec__free(a);
    return ASEC_OK;
fail:
    asec__free(a);
    pmf_free(pess);
    pmf_free(opt);
    return rc;
}

/* ------------------------------------------------------------------ FFT */

/* Real FFTs of length N (a power of two) with the spectrum as N/2 + 1
 * interleaved complex numbers.  FFTW3 when configured (about 10x faster
 * than GSL's radix-2 code on this machine: 2^19 points in 5 ms instead of
 * 63 ms), GSL otherwise. */
#ifdef HAVE_FFTW3
#define FFT_CACHE 4 /* plans hold O(N) twiddles: keep few */
static pthread_mutex_t fft_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    size_t n;
    fftw_plan fwd, inv;
} fft_cache[FFT_CACHE];

static int
fftw_plans(size_t n, fftw_plan *fwd, fftw_plan *inv)
{
    int rc = ASEC_OK;

    /* Planning is not thread-safe in FFTW; executing a plan on new arrays
     * is (FFTW manual, "Thread safety"). */
    pthread_mutex_lock(&fft_lock);
    for (int i = 0; i < FFT_CACHE; i++) {
        if (fft_cache[i].n == n) {
            *fwd = fft_cache[i].fwd;
            *inv = fft_cache[i].inv;
            goto out;
        }
    }
    {
        double *x = fftw_malloc(n * sizeof *x);
        fftw_complex *z = fftw_malloc((n / 2 + 1) * sizeof *z);
        int slot = -1;

        if (x == NULL || z == NULL) {
            fftw_free(x);
            fftw_free(z);
            rc = asec__fail(ASEC_ENOMEM, "pld: cannot plan an FFT of %zu points", n);
            goto out;
        }
        /* Plans for SIMD-aligned arrays (fftw_malloc here, 64-byte
         * aligned workspaces when executed). */
        *fwd = fftw_plan_dft_r2c_1d((int)n, x, z, FFTW_ESTIMATE);
        *inv = fftw_plan_dft_c2r_1d((int)n, z, x, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
        fftw_free(x);
        fftw_free(z);
        if (*fwd == NULL || *inv == NULL) {
            rc = asec__fail(ASEC_EINTERNAL, "pld: FFTW could not plan %zu points", n);
            goto out;
        }
        for (int i = 0; i < FFT_CACHE && slot < 0; i++)
            if (fft_cache[i].n == 0)
                slot = i;
        if (slot < 0) {
            slot = FFT_CACHE - 1; /* replace the last entry */
            fftw_destroy_plan(fft_cache[slot].fwd);
            fftw_destroy_plan(fft_cache[slot].inv);
        }
        fft_cache[slot].n = n;
        fft_cache[slot].fwd = *fwd;
        fft_cache[slot].inv = *inv;
    }
out:
    pthread_mutex_unlock(&fft_lock);
    return rc;
}
#endif

/* x (n,) -> z (n/2 + 1 complex); x is destroyed. */
static int
fft_forward(double *x, double *z, size_t n)
{
#ifdef HAVE_FFTW3
    fftw_plan f, b;

    if ((((uintptr_t)x | (uintptr_t)z) & 63) != 0)
        ASEC_FAIL(ASEC_EINTERNAL, "pld: FFT arrays are not 64-byte aligned");
    ASEC_TRY(fftw_plans(n, &f, &b));
    fftw_execute_dft_r2c(f, x, (fftw_complex *)z);
    return ASEC_OK;
#else
    if (gsl_fft_real_radix2_transform(x, 1, n) != GSL_SUCCESS)
        ASEC_FAIL(ASEC_EINTERNAL, "pld: FFT of %zu points failed", n);
    /* GSL half-complex order: x[k] = Re X_k (k <= n/2), x[n-k] = Im X_k. */
    for (size_t k = 0; k <= n / 2; k++) {
        z[2 * k] = x[k];
        z[2 * k + 1] = (k == 0 || k == n / 2) ? 0.0 : x[n - k];
    }
    return ASEC_OK;
#endif
}

/* z (n/2 + 1 complex) -> x (n,), normalized (1/n); z is destroyed. */
static int
fft_inverse(double *z, double *x, size_t n)
{
#ifdef HAVE_FFTW3
    fftw_plan f, b;

    if ((((uintptr_t)x | (uintptr_t)z) & 63) != 0)
        ASEC_FAIL(ASEC_EINTERNAL, "pld: FFT arrays are not 64-byte aligned");
    ASEC_TRY(fftw_plans(n, &f, &b));
    fftw_execute_dft_c2r(b, (fftw_complex *)z, x);
    for (size_t i = 0; i < n; i++)
        x[i] /= (double)n;
    return ASEC_OK;
#else
    for (size_t k = 0; k <= n / 2; k++) {
        x[k] = z[2 * k];
        if (k != 0 && k != n / 2)
            x[n - k] = z[2 * k + 1];
    }
    if (gsl_fft_halfcomplex_radix2_inverse(x, 1, n) != GSL_SUCCESS)
        ASEC_FAIL(ASEC_EINTERNAL, "pld: inverse FFT of %zu points failed", n);
    return ASEC_OK;
#endif
}

/* ------------------------------------------------------------------ composition */

/* One event of a direction after discretization. */
struct term {
    struct pmf f;
    uint64_t count;
};

/* log of the moment generating function sum_j p_j e^{lam l_j} of the
 * finite part (negative round-off masses skipped).  Blocks of 64 points:
 * the block's first term by exp(), the rest by the factor e^{lam dx}. */
static double
log_mgf(const struct pmf *f, double lam)
{
    double m = -INFINITY, s = 0.0, r = exp(lam * f->dx);

    if (!isfinite(r) || r == 0.0 || fabs(lam * f->dx) * 64.0 > 600.0)
        r = 0.0; /* block recurrence would overflow: exp() per point */
    for (size_t i = 0; i < f->n; i += 64) {
        size_t e = i + 64 < f->n ? i + 64 : f->n;
        double l0 = f->off + (double)(f->k0 + (long)i) * f->dx, acc = 0.0, w = 1.0;
        double mass = f->bmass != NULL ? f->bmass[i / 64] : 1.0;

        if (mass < 1e-9) {
            /* A light block: bounded by its mass at its extreme loss
             * (looser by at most e^{|lam| 64 dx} on a negligible share). */
            if (mass > 0.0) {
                double t =
                    log(mass) + lam * (lam > 0.0 ? l0 + (double)(e - i - 1) * f->dx : l0);

                if (t > m) {
                    s = s * exp(m - t) + 1.0;
                    m = t;
                } else {
                    s += exp(t - m);
                }
            }
            continue;
        }
        for (size_t j = i; j < e; j++) {
            double wj = r != 0.0 ? w : exp(lam * (double)(j - i) * f->dx);

            if (f->p[j] > 0.0)
                acc += f->p[j] * wj;
            w *= r;
        }
        if (acc > 0.0) {
            double t = log(acc) + lam * l0;

            if (t > m) {
                s = s * exp(m - t) + 1.0;
                m = t;
            } else {
                s += exp(t - m);
            }
        }
    }
    return m + log(s);
}

static double
lambda_at(int k)
{
    return pow(10.0, -3.0 + 7.0 * k / (N_LAMBDA - 1));
}

/* The composed log-MGF on the lambda grid: up[k] = sum count * log M(lam_k),
 * dn[k] = sum count * log M(-lam_k). */
static void
composed_lmgf(const struct term *t, size_t nt, double *up, double *dn)
{
    for (int k = 0; k < N_LAMBDA; k++) {
        double lam = lambda_at(k);

        up[k] = 0.0;
        if (dn != NULL)
            dn[k] = 0.0;
        for (size_t i = 0; i < nt; i++) {
            up[k] += (double)t[i].count * log_mgf(&t[i].f, lam);
            if (dn != NULL) /* NULL: the upper tail only */
                dn[k] += (double)t[i].count * log_mgf(&t[i].f, -lam);
        }
    }
}

/* Chernoff window of the composed finite part: P(S > W_hi) <= tau and
 * P(S < W_lo) <= tau. */
static void
chernoff_window(const double *up, const double *dn, double tau, double *wlo, double *whi)
{
    double best_hi = INFINITY, best_lo = -INFINITY, lt = log(tau);

    for (int k = 0; k < N_LAMBDA; k++) {
        double lam = lambda_at(k);

        if (isfinite(up[k]))
            best_hi = fmin(best_hi, (up[k] - lt) / lam);
        if (isfinite(dn[k]))
            best_lo = fmax(best_lo, (lt - dn[k]) / lam);
    }
    *whi = best_hi;
    *wlo = best_lo;
}

/* Chernoff bound on log P(S >= s) (upper = 1) or log P(S <= s). */
static double
chernoff_tail(const double *up, const double *dn, double s, int upper)
{
    double best = 0.0;

    for (int k = 0; k < N_LAMBDA; k++) {
        double lam = lambda_at(k);
        double v = upper ? up[k] - lam * s : dn[k] + lam * s;

        if (v < best)
            best = v;
    }
    return best;
}

/* The composed distribution of one direction and bound. */
/* The composed distribution of one direction and bound, exponentially
 * tilted: y (n,) is the composition of the tilted per-step PMFs
 * p_i e^{lam l_i} / M(lam), so the true mass at l_j is
 * y_j e^{Lam - lam l_j}, Lam = sum count log M(lam).  Tilting towards the
 * epsilon of interest keeps the tail that makes delta at full relative
 * precision in the FFT (ACCOUNTANT.md pitfall 10). */
struct composed {
    double off, dx;
    long kbase; /* lattice index of y[0] */
    size_t n;
    double *y;
    double lam, Lam;
    double pinf;   /* mass at +infinity */
    double e_near; /* |delta computed - delta| <= e_near e^{Lam - lam eps} + e_far */
    double e_far;
};

/* The composed untilted log-MGF table, to pick the tilt. */
static double
pick_lambda(const struct term *t, size_t nt, double eps, double delta,
            double *eps_chernoff)
{
    double up[N_LAMBDA], best = INFINITY, lam = lambda_at(0);
    double ebest = INFINITY;

    composed_lmgf(t, nt, up, NULL);
    for (int k = 0; k < N_LAMBDA; k++) {
        double l = lambda_at(k);

        if (!isfinite(up[k]))
            continue;
        if (isfinite(eps)) {
            /* delta query: the Chernoff exponent at eps */
            double v = up[k] - l * eps;

            if (v < best) {
                best = v;
                lam = l;
            }
        } else {
            /* epsilon query: the Chernoff epsilon at delta, and its lambda */
            double e = (up[k] - log(delta)) / l;

            if (e < ebest) {
                ebest = e;
                lam = l;
            }
        }
    }
    if (eps_chernoff != NULL)
        *eps_chernoff = ebest;
    return lam;
}

/* FFT buffers kept across the compositions of one query: fresh pages of
 * tens of MiB cost more to fault in than the FFT takes. */
struct fftws {
    double *acc, *spec, *x; /* (cap + 2,) each, 64-byte aligned (SIMD FFTs) */
    void *raw;              /* the one allocation behind them */
    size_t cap;
};

static void
fftws_free(struct fftws *w)
{
    asec__free(w->raw);
    memset(w, 0, sizeof *w);
}

static int
fftws_reserve(struct fftws *w, size_t n)
{
    size_t each = (n + 2 + 8) * sizeof(double), bytes; /* + 64 B: alignment */
    uintptr_t p;

    if (w->cap >= n)
        return ASEC_OK;
    fftws_free(w);
    if (asec__mul_size(each, 3, &bytes) != 0)
        return ASEC_ENOMEM;
    w->raw = asec__malloc(bytes);
    if (w->raw == NULL)
        return ASEC_ENOMEM;
    p = ((uintptr_t)w->raw + 63) & ~(uintptr_t)63;
    w->acc = (double *)p;
    w->spec = (double *)(p + each / 64 * 64);
    w->x = (double *)(p + 2 * (each / 64 * 64));
    w->cap = n;
    return ASEC_OK;
}

/* Compose the terms tilted by lam into out; out->y lives in ws (valid
 * until the next compose with ws or fftws_free). */
static int
compose(const struct term *t, size_t nt, double lam, size_t max_bytes, struct fftws *ws,
        struct composed *out)
{
    /* Tilted tail mass allowed outside the window: it enters delta as
     * tau e^{Lam - lam eps}, and e^{Lam - lam eps} is delta times the
     * (modest) looseness of the Chernoff bound at the tilt. */
    const double tau = 1e-10;
    double wlo, whi, offs = 0.0, lpinf = 0.0, up[N_LAMBDA], dn[N_LAMBDA], Lam = 0.0;
    double csum = 0.0;
    long shift_total = 0, extra = 0;
    size_t N = MIN_FFT, bytes, nt_done = 0;
    double *acc = NULL, *x = NULL, *spec = NULL;
    struct term *tt = NULL;
    int rc = ASEC_OK;

    memset(out, 0, sizeof *out);
    /* The tilted per-step PMFs, each normalized to total mass 1. */
    tt = asec__calloc(nt, sizeof *tt);
    if (tt == NULL)
        return ASEC_ENOMEM;
    for (size_t e = 0; e < nt; e++) {
        const struct pmf *f = &t[e].f;
        double m = -INFINITY, z = 0.0;

        tt[e] = t[e];
        tt[e].f.bmass = NULL;
        tt[e].f.p = asec__malloc(f->n * sizeof(double));
        if (tt[e].f.p == NULL) {
            rc = ASEC_ENOMEM;
            goto done;
        }
        nt_done = e + 1;
        if (f->bmass != NULL) {
            /* m >= max_i log p_i + lam l_i from the block masses (looser
             * by at most 64 e^{|lam| 64 dx}); then the weights
             * e^{lam l_i - m} by recurrence within each block.  A block
             * of mass >= 1e-290 has weights <= 1/mass: no overflow;
             * lighter blocks take exp() per point. */
            double r = exp(lam * f->dx);

            for (size_t i = 0; i < f->n; i += 64) {
                size_t last = (i + 64 < f->n ? i + 64 : f->n) - 1;
                double mass = f->bmass[i / 64];
                double lmx =
                    f->off + (double)(f->k0 + (long)(lam > 0.0 ? last : i)) * f->dx;

                if (mass > 0.0 && log(mass) + lam * lmx > m)
                    m = log(mass) + lam * lmx;
            }
            for (size_t i = 0; i < f->n; i += 64) {
                size_t end = i + 64 < f->n ? i + 64 : f->n;
                double mass = f->bmass[i / 64];
                double w = exp(lam * (f->off + (double)(f->k0 + (long)i) * f->dx) - m);

                for (size_t j = i; j < end; j++) {
                    double v = 0.0;

                    if (f->p[j] > 0.0)
                        v = mass >= 1e-290 && isfinite(r) && r > 0.0
                                ? f->p[j] * w
                                : exp(log(f->p[j]) +
                                      lam * (f->off + (double)(f->k0 + (long)j) * f->dx) -
                                      m);
                    tt[e].f.p[j] = v;
                    z += v;
                    w *= r;
                }
            }
        } else {
            for (size_t i = 0; i < f->n; i++)
                if (f->p[i] > 0.0) {
                    double w =
                        log(f->p[i]) + lam * (f->off + (double)(f->k0 + (long)i) * f->dx);

                    if (w > m)
                        m = w;
                }
            for (size_t i = 0; i < f->n; i++) {
                double v = 0.0;

                if (f->p[i] > 0.0)
                    v = exp(log(f->p[i]) +
                            lam * (f->off + (double)(f->k0 + (long)i) * f->dx) - m);
                tt[e].f.p[i] = v;
                z += v;
            }
        }
        if (!(z > 0.0)) {
            rc = asec__fail(ASEC_ENUMERIC, "pld: a per-step distribution has no mass");
            goto done;
        }
        for (size_t i = 0; i < f->n; i++)
            tt[e].f.p[i] /= z;
        Lam += (double)t[e].count * (m + log(z));
        if ((rc = pmf_blocks(&tt[e].f)) != ASEC_OK)
            goto done;
    }
    composed_lmgf(tt, nt, up, dn);
    chernoff_window(up, dn, tau, &wlo, &whi);
    if (!isfinite(wlo) || !isfinite(whi) || !(whi >= wlo)) {
        rc =
            asec__fail(ASEC_ENUMERIC,
                       "pld: cannot bound the composed loss (window [%g, %g])", wlo, whi);
        goto done;
    }
    {
        double need = (whi - wlo) / t[0].f.dx + 2.0;

        while ((double)N < need) {
            if (N > ((size_t)1 << 40))
                break;
            N *= 2;
        }
#ifdef HAVE_FFTW3
        /* FFTW is as fast per point on 3 * 2^k: up to 25% fewer points. */
        if (N >= 2 * MIN_FFT && (double)(N / 4 * 3) >= need)
            N = N / 4 * 3;
#endif
        if ((double)N < need || asec__mul_size(N, 4 * sizeof(double), &bytes) != 0 ||
            bytes > max_bytes) {
            rc = asec__fail(ASEC_ELIMIT,
                            "pld: the composition needs an FFT of %.3g points "
                            "(%.3g MiB) at dx %g, above the %zu MiB cap",
                            need, need * 32.0 / 1048576.0, t[0].f.dx, max_bytes >> 20);
            goto done;
        }
    }
    rc = fftws_reserve(ws, N);
    if (rc != ASEC_OK)
        goto done;
    acc = ws->acc; /* N/2 + 1 complex */
    spec = ws->spec;
    x = ws->x;
    /* The spectrum of a unit mass at 0. */
    for (size_t k = 0; k <= N / 2; k++) {
        acc[2 * k] = 1.0;
        acc[2 * k + 1] = 0.0;
    }
    for (size_t e = 0; e < nt; e++) {
        const struct pmf *f = &tt[e].f;
        double c = (double)t[e].count, mean = 0.0;
        long ctr;

        for (size_t i = 0; i < f->n; i++)
            mean += f->p[i] * (double)i;
        /* Centre the PMF at its mean so the phases raised to the count
         * stay small. */
        ctr = (long)floor(mean + 0.5);
        /* Lattice offsets add up: c * off = whole steps + remainder. */
        {
            double co = c * f->off / f->dx, wh = floor(co);

            extra += (long)wh;
            offs += (co - wh) * f->dx;
        }
        {
            /* count * (k0 + ctr) mod N, without overflow. */
            i128 v = (i128)(t[e].count % N) * (i128)(f->k0 + ctr);
            long rr = (long)(v % (i128)N);

            shift_total = (shift_total + rr) % (long)N;
        }
        memset(x, 0, N * sizeof *x);
        for (size_t i = 0; i < f->n; i++) {
            long idx = ((long)i - ctr) % (long)N;

            if (idx < 0)
                idx += (long)N;
            x[idx] += f->p[i];
        }
        rc = fft_forward(x, spec, N);
        if (rc != ASEC_OK)
            goto done;
        /* acc *= spec^c, frequency by frequency (log-polar power).  se
         * accumulates sum_f |X_f|^{2(c-1)} over the full spectrum, which by
         * Parseval is N ||x^{*(c-1)}||_2^2: the gain of this event's FFT
         * error when raised to the count (see the error terms below). */
        double se = 0.0;
        /* |X|^c underflows below |X|^2 = e^{-1490/c}: those frequencies
         * need neither the logarithm nor the phase. */
        double thr2 = c > 1.0 ? exp(-1490.0 / c) : 0.0;

        for (size_t k = 0; k <= N / 2; k++) {
            double re = spec[2 * k], im = spec[2 * k + 1];
            double are = acc[2 * k], aim = acc[2 * k + 1], pr, pi, wk;

            wk = (k == 0 || k == N / 2) ? 1.0 : 2.0;
            if (c == 1.0) {
                pr = re;
                pi = im;
                se += wk;
            } else if (re * re + im * im < thr2) {
                /* |X|^c and |X|^{2(c-1)} (c >= 2, |X| < 1) underflow;
                 * a NaN goes on below and shows in the answer. */
                pr = pi = 0.0;
            } else {
                double mag = hypot(re, im);
                double lmag = mag > 0.0 ? log(mag) : -INFINITY, lm = c * lmag;

                if (!(lm >= -745.0)) {
                    /* |X|^c underflows, and so does |X|^{2(c-1)} (c >= 2,
                     * |X| < 1): no phase needed. */
                    pr = pi = 0.0;
                } else {
                    double ph = c * atan2(im, re), r = exp(lm);
                    double lg2 = 2.0 * (c - 1.0) * lmag, q;

                    pr = r * cos(ph);
                    pi = r * sin(ph);
                    /* |X|^{2(c-1)} = (r/|X|)^2 unless r is subnormal. */
                    q = r > 1e-290 ? r / mag : 0.0;
                    se += lg2 < -745.0 ? 0.0 : wk * (q > 0.0 ? q * q : exp(lg2));
                }
            }
            acc[2 * k] = are * pr - aim * pi;
            acc[2 * k + 1] = are * pi + aim * pr;
        }
        csum += c * sqrt(fmin(se / (double)N, 1.0));
        if (f->pinf > 0.0)
            lpinf += c * log1p(-f->pinf);
    }
    rc = fft_inverse(acc, spec, N); /* spec: the composed PMF, circularly */
    if (rc != ASEC_OK)
        goto done;
    /* Place the window: composed lattice index K of y[j] is the one with
     * K = j + shift_total (mod N) inside [Klo, Klo + N). */
    {
        double whole = floor(offs / t[0].f.dx);

        extra += (long)whole;
        offs -= whole * t[0].f.dx;
    }
    out->off = offs;
    out->dx = t[0].f.dx;
    {
        long base = (shift_total + extra % (long)N) % (long)N;
        /* The slack of the power of two is shared by both ends of the
         * window, so that both tail bounds shrink. */
        long span = (long)ceil((whi - wlo) / out->dx) + 2;
        long klo = (long)floor((wlo - offs) / out->dx) - 1 -
                   (span < (long)N ? ((long)N - span) / 2 : 0);
        long j0 = (klo - base) % (long)N;

        if (j0 < 0)
            j0 += (long)N;
        /* Rotate so that y[0] is lattice index klo. */
        for (size_t i = 0; i < N; i++)
            x[i] = spec[((size_t)j0 + i) % N];
        out->kbase = klo;
    }
    out->n = N;
    out->y = x;
    out->lam = lam;
    out->Lam = Lam;
    out->pinf = -expm1(lpinf);
    /* Error terms, in tilted units (multiplied by e^{Lam - lam eps} when
     * used):
     *   - tilted mass outside the window (Chernoff), folded in by the
     *     circular convolution at loss >= eps, or truly beyond the top;
     *   - the FFT round-off.  Each coefficient of a radix-2 FFT of a unit
     *     mass is off by at most 2 eps log2(N); raising a spectrum to the
     *     count c turns an error dX_f into c X_f^{c-1} dX_f, whose l2 norm
     *     over the N frequencies is at most 2 eps log2(N) c sqrt(N)
     *     ||x^{*(c-1)}||_2 (Parseval, the sums se above; other factors have
     *     modulus <= 1); the inverse transform divides by sqrt(N) and adds
     *     2 eps log2(N) ||y||_2.  So ||y' - y||_2 <= 2 eps (log2 N + 2)
     *     (sum c ||x^{*(c-1)}||_2 + 1).  Summed over the tail with the
     *     untilting weights e^{-lam (l - eps)}, Cauchy-Schwarz gives the
     *     factor 1/sqrt(1 - e^{-2 lam dx}). */
    {
        double top = out->off + (double)(out->kbase + (long)N) * out->dx;
        double bot = out->off + (double)out->kbase * out->dx;
        double tu = exp(chernoff_tail(up, dn, top, 1));
        double tl = exp(chernoff_tail(up, dn, bot, 0));
        /* (a radix-3 stage counts as two radix-2 ones: ceil, plus one) */
        double lg = log2((double)N) + ((N & (N - 1)) != 0 ? 1.0 : 0.0), coef, geo;

        coef = 2.0 * DBL_EPSILON * (lg + 2.0) * (1.0 + csum);
        geo =
            2.0 * lam * out->dx > 1e-300 ? 1.0 / -expm1(-2.0 * lam * out->dx) : (double)N;
        geo = sqrt(fmin(geo, (double)N));
        out->e_near = coef * geo + tl + tu;
        out->e_far = tu * exp(Lam - lam * top);
    }
done:
    for (size_t e = 0; e < nt_done; e++)
        pmf_free(&tt[e].f);
    asec__free(tt);
    return rc;
}

/* The error bound of a composed distribution at eps. */
static double
composed_err(const struct composed *c, double eps)
{
    return c->e_near * exp(fmin(c->Lam - c->lam * eps, 700.0)) + c->e_far;
}

/* delta(eps) of a composed PMF (without error terms). */
static double
composed_delta(const struct composed *c, double eps)
{
    long double s = 0.0L, w = 0.0L, r = expl((long double)c->lam * c->dx);
    long double re = expl(-(long double)c->dx), v = 0.0L;

    /* Untilting weights e^{Lam - lam l} and the factors e^{eps - l} by
     * recurrence down the lattice, re-anchored every 64 points. */
    for (size_t j = c->n, i = 0; j-- > 0; i++) {
        double l = c->off + (double)(c->kbase + (long)j) * c->dx;

        if (l <= eps)
            break;
        if (i % 64 == 0) {
            w = expl((long double)c->Lam - (long double)c->lam * l);
            v = expl((long double)(eps - l));
        } else {
            w *= r;
            v /= re;
        }
        s += (long double)c->y[j] * w * (1.0L - v);
    }
    return (double)s + c->pinf;
}

/* The smallest eps >= 0 with delta(eps) + sign * err(eps) <= delta, where
 * delta(eps) = pinf + sum_{l_j > eps} m_j (1 - e^{eps - l_j}) and m_j the
 * untilted masses; INFINITY when even the top of the window does not get
 * there.  *rel gets err / delta at the answer (accuracy of the tilt). */
static double
composed_epsilon(const struct composed *c, double delta, double sign, double *rel)
{
    /* Scan down from the top.  For eps in [l_{j-1}, l_j]:
     *   F(eps) = A_j - e^{eps - l_j} S_j,  A_j = sum_{i>=j} m_i,
     *   S_j = sum_{i>=j} m_i e^{l_j - l_i} = m_j + e^{-dx} S_{j+1},
     * with the error taken at l_{j-1}, its largest value on the interval. */
    long double A = 0.0L, S = 0.0L, edx = expl(-(long double)c->dx);
    double top = c->off + (double)(c->kbase + (long)c->n) * c->dx;

    *rel = 0.0;
    if (!(delta - c->pinf - sign * composed_err(c, top) > 0.0))
        return sign > 0.0 ? INFINITY : top;
    long double w = 0.0L, r = expl((long double)c->lam * c->dx);

    for (size_t j = c->n, i = 0; j-- > 0; i++) {
        double lj = c->off + (double)(c->kbase + (long)j) * c->dx, below = lj - c->dx;
        long double mj, f_below;
        double err, target;

        /* The untilting weight e^{Lam - lam l_j} by recurrence, re-anchored
         * every 64 points; the error bound at l_{j-1} uses the next one. */
        if (i % 64 == 0)
            w = expl((long double)c->Lam - (long double)c->lam * lj);
        else
            w *= r;
        mj = (long double)c->y[j] * w;
        {
            long double wr = w * r;

            err = c->e_near * (double)(wr < 1e304L ? wr : 1e304L) + c->e_far;
        }
        target = delta - c->pinf - sign * err;

        S = mj + edx * S;
        A += mj;
        f_below = A - edx * S; /* F(l_{j-1}) */
        if ((double)f_below > target || j == 0 || !(target > 0.0)) {
            double v;

            *rel = err / delta;
            if (!(target > 0.0))
                v = lj;
            else if (!((double)A > target))
                v = below; /* F <= target on the whole interval */
            else if (S > 0.0L && A - (long double)target > 0.0L)
                v = lj + (double)logl((A - (long double)target) / S);
            else
                v = lj;
            if (!(v >= below) && j > 0)
                v = below;
            if (v > lj)
                v = lj;
            return v > 0.0 ? v : 0.0;
        }
        if (below <= 0.0) {
            *rel = err / delta;
            return 0.0;
        }
    }
    return 0.0;
}

/* ------------------------------------------------------------------ driver */

struct plan {
    struct mech *m; /* remove-direction mechanisms (folded) */
    size_t nm;
    double steps; /* sum of counts of FFT-composed events */
    double var;   /* rough composed variance of L */
};

static int
make_plan(const asec_acct *a, struct plan *p)
{
    double mu2 = 0.0;

    memset(p, 0, sizeof *p);
    p->m = asec__calloc(a->n_ent + 1, sizeof *p->m);
    if (p->m == NULL)
        return ASEC_ENOMEM;
    for (size_t i = 0; i < a->n_ent; i++) {
        const asec_acct_event *e = &a->ent[i].ev;

        if (e->kind == ASEC_ACCT_EV_GAUSSIAN) {
            /* Gaussians compose exactly: one Gaussian of
             * mu^2 = sum count / sigma^2 (Dong-Roth-Su). */
            mu2 += (double)e->count / (e->sigma * e->sigma);
            continue;
        }
        mech_of(e, &p->m[p->nm]);
        {
            double sc = mech_scale(&p->m[p->nm]);

            p->var += (double)e->count * sc * sc;
        }
        p->steps += (double)e->count;
        p->nm++;
    }
    if (mu2 > 0.0) {
        struct mech *g = &p->m[p->nm++];

        memset(g, 0, sizeof *g);
        g->kind = M_GAUSS;
        g->mu = sqrt(mu2);
        g->count = 1;
        g->lmin = -INFINITY;
        g->lmax = INFINITY;
        p->var += mu2;
        p->steps += 1.0;
    }
    return ASEC_OK;
}

static void
composed_free(struct composed *c)
{
    c->y = NULL; /* owned by the workspace */
}

/* The answer of one composed distribution: epsilon(delta) (want_eps) or
 * delta(epsilon), with the error bound added (sign +1, upper end) or
 * subtracted (sign -1, lower end).  *rel: error / delta at the answer. */
static double
answer(const struct composed *c, int want_eps, double x, double sign, double *rel)
{
    if (want_eps)
        return composed_epsilon(c, x, sign, rel);
    {
        double d = composed_delta(c, x), e = composed_err(c, x);

        *rel = d > 0.0 ? e / d : INFINITY;
        return sign > 0.0 ? fmin(1.0, d + e) : fmax(0.0, d - e);
    }
}

/* One direction on one lattice: the upper end *hi and, when want_opt, the
 * lower end *lo of the answer.  The tilt is the Chernoff-optimal lambda at
 * the epsilon of interest; an epsilon query starts from the Chernoff
 * epsilon and re-tilts once at the answer if the error bound there is not
 * small. */
static int
run_direction(const struct plan *p, int add, double dx, double tau_step, size_t max_bytes,
              int want_eps, double x, int want_opt, struct fftws *wsp, double *hi,
              double *lo, size_t *npts)
{
    struct term *tp = NULL, *to = NULL;
    struct composed c;
    size_t nt = 0;
    double lam, rel = 0.0, at;
    int rc = ASEC_OK;

    memset(&c, 0, sizeof c);
    tp = asec__calloc(p->nm, sizeof *tp);
    to = asec__calloc(p->nm, sizeof *to);
    if (tp == NULL || to == NULL) {
        rc = ASEC_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < p->nm; i++) {
        rc = discretize(&p->m[i], add, dx, tau_step, &tp[i].f, &to[i].f);
        if (rc != ASEC_OK)
            goto done;
        tp[i].count = to[i].count = p->m[i].count;
        nt = i + 1;
        if ((rc = pmf_blocks(&tp[i].f)) != ASEC_OK ||
            (rc = pmf_blocks(&to[i].f)) != ASEC_OK)
            goto done;
    }
    lam = want_eps ? pick_lambda(tp, nt, INFINITY, x, NULL)
                   : pick_lambda(tp, nt, x, 0.0, NULL);
    for (int pass = 0; pass < 2; pass++) {
        double h;

        rc = compose(tp, nt, lam, max_bytes, wsp, &c);
        if (rc != ASEC_OK)
            goto done;
        h = answer(&c, want_eps, x, 1.0, &rel);
        composed_free(&c);
        /* Every pass is a valid upper bound: keep the smaller (a re-tilt
         * whose window misses the answer gives INFINITY, not a worse
         * bound). */
        if (pass == 0 || h < *hi) {
            *hi = h;
            *npts = c.n;
        }
        if (!want_eps || !(rel > 1e-4) || !isfinite(*hi))
            break;
        {
            double l2 = pick_lambda(tp, nt, *hi, 0.0, NULL); /* re-tilt at the answer */

            if (l2 == lam)
                break; /* the same tilt: the same answer */
            lam = l2;
        }
    }
    if (want_opt) {
        at = want_eps ? *hi : x;
        lam = isfinite(at) ? pick_lambda(to, nt, at, 0.0, NULL) : lam;
        rc = compose(to, nt, lam, max_bytes, wsp, &c);
        if (rc != ASEC_OK)
            goto done;
        *lo = answer(&c, want_eps, x, -1.0, &rel);
        composed_free(&c);
    }
done:
    for (size_t i = 0; i < nt; i++) {
        pmf_free(&tp[i].f);
        pmf_free(&to[i].f);
    }
    asec__free(tp);
    asec__free(to);
    composed_free(&c);
    return rc;
}

static void
result_init(asec_acct_result *out)
{
    out->method = ASEC_ACCT_PLD;
    out->is_bound = 1;
    out->epsilon = out->epsilon_lo = NAN;
    out->delta = out->delta_lo = NAN;
    out->order = NAN;
    out->order_at_edge = 0;
    out->mu = NAN;
    out->pld_dx = NAN;
    out->pld_points = 0;
}

/* Which directions a plan needs: symmetric mechanisms have identical
 * directions. */
static int
needs_add(const struct plan *p)
{
    for (size_t i = 0; i < p->nm; i++)
        if (p->m[i].kind == M_SGM || p->m[i].kind == M_PLAP)
            return 1;
    return 0;
}

static double
initial_dx(const asec_acct *a, const struct plan *p, int want_eps, double delta)
{
    double dx;

    if (a->pld_dx > 0.0)
        return a->pld_dx;
    /* Connect-the-dots adds at most dx^2/4 of variance per step; keep that
     * a small fraction of the composed variance. */
    dx = sqrt(4.0 * 0.5 * a->pld_rtol * p->var / fmax(p->steps, 1.0));
    if (want_eps) {
        /* The bracket's target is absolute (0.5 rtol) below epsilon 0.5,
         * so small epsilons allow a coarser lattice: scale by the root of
         * the ratio, with the Gaussian epsilon of the composed scale as
         * the estimate.  A wrong guess only costs a refinement. */
        double est = sqrt(p->var) * sqrt(2.0 * -log(delta));

        if (est > 0.0 && est < 0.5)
            dx *= sqrt(fmin(0.5 / est, 16.0));
    }
    dx = fmin(dx, 1e-2);
    dx = fmax(dx, 1e-7);
    return dx;
}

static int
pld_query(const asec_acct *a, int want_eps, double x, asec_acct_result *out)
{
    struct plan p;
    struct fftws ws = {NULL, NULL, NULL, NULL, 0};
    double dx, tau_step, best_w = INFINITY;
    int rc, dirs, have = 0;

    result_init(out);
    if (want_eps)
        out->delta = out->delta_lo = x;
    else
        out->epsilon = out->epsilon_lo = x;
    if (a->n_ent == 0) {
        if (want_eps)
            out->epsilon = out->epsilon_lo = 0.0;
        else
            out->delta = out->delta_lo = 0.0;
        return ASEC_OK;
    }
    ASEC_TRY(make_plan(a, &p));
    dirs = needs_add(&p) ? 2 : 1;
    dx = initial_dx(a, &p, want_eps, x);
    /* Per-step truncation: the mass cut at the top of each step goes to
     * +infinity in the upper bound; keep its total a tiny part of delta. */
    tau_step = (want_eps ? 1e-6 * x : 1e-18) / (p.steps + 1.0);
    rc = ASEC_OK;
    for (int it = 0; it <= MAX_REFINE; it++) {
        double hi = 0.0, lo = 0.0, w, target, rtol;
        int step_rc = ASEC_OK;
        size_t npts = 0;

        for (int add = 0; add < dirs && step_rc == ASEC_OK; add++) {
            double h = 0.0, l = 0.0;
            size_t n = 0;

            /* The add direction's lower end matters only when its upper
             * end beats the remove direction's; its upper end is a valid
             * bound on any lattice, so it is first taken on a 4x coarser
             * one (usually far below the remove direction's, e.g. 0.67
             * vs 2.06), and on dx only when it comes out on top. */
            step_rc =
                run_direction(&p, add, add ? 4.0 * dx : dx, tau_step, a->max_bytes,
                              want_eps, x, !add && !a->pld_upper_only, &ws, &h, &l, &n);
            if (step_rc == ASEC_ELIMIT && add) {
                h = INFINITY; /* decide on dx below */
                step_rc = ASEC_OK;
            }
            if (step_rc == ASEC_OK && add && !(h <= hi))
                step_rc = run_direction(&p, add, dx, tau_step, a->max_bytes, want_eps, x,
                                        !a->pld_upper_only, &ws, &h, &l, &n);
            if (step_rc != ASEC_OK)
                break;
            hi = fmax(hi, h);
            lo = fmax(lo, l);
            npts = n > npts ? n : npts;
        }
        if (step_rc != ASEC_OK) {
            if (have && (step_rc == ASEC_ELIMIT || step_rc == ASEC_ENOMEM))
                break; /* keep the last, valid, wider bracket */
            rc = step_rc;
            goto done;
        }
        if (isnan(hi) || isnan(lo)) {
            rc = asec__fail(ASEC_ENUMERIC, "pld: the bracket is not a number at dx %g",
                            dx);
            goto done;
        }
        if (lo > hi || a->pld_upper_only)
            lo = hi; /* rounding only; the upper end is the guarantee */
        have = 1;
        out->pld_points = npts;
        out->pld_dx = dx;
        /* A single (folded) Gaussian costs one discretization and no
         * composition: hold it to the closed form's precision. */
        rtol = p.nm == 1 && p.m[0].kind == M_GAUSS ? 1e-7 : a->pld_rtol;
        if (want_eps) {
            out->epsilon = hi;
            out->epsilon_lo = lo;
            w = hi - lo;
            target = fmax(rtol * hi, 0.5 * rtol);
        } else {
            out->delta = hi;
            out->delta_lo = lo;
            w = hi - lo;
            target = fmax(rtol * hi, 1e-300);
        }
        if (!(w > target) || isinf(w) || a->pld_dx > 0.0)
            break;
        if (w >= best_w * 0.9 && it >= 1)
            break; /* refinement no longer helps (floating-point floor) */
        best_w = w;
        /* The bracket narrows about as dx^2 (connect-the-dots errors are
         * second order): aim just below the target, refining by a factor
         * between 1.4 and 3 (2 after the first refinement). */
        dx *= fmin(fmax(0.9 * sqrt(target / w), it == 0 ? 0.35 : 0.5), 0.7);
    }
done:
    fftws_free(&ws);
    asec__free(p.m);
    return rc;
}

int
asec_acct__pld_epsilon(const asec_acct *a, double delta, asec_acct_result *out)
{
    return pld_query(a, 1, delta, out);
}

int
asec_acct__pld_delta(const asec_acct *a, double epsilon, asec_acct_result *out)
{
    return pld_query(a, 0, epsilon, out);
}
