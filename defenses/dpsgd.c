/* dpsgd.c - noisy SGD / DP-SGD (attnsec/dpsgd.h, asec_dpsgd(3)).
 *
 * DP-SGD: Abadi et al. 2016, Alg. 1 (per-example clipping, Gaussian noise
 * on the sum, moments accountant); the noisy-gradient defense of
 * arXiv 2311.13624 (MATH.md section 3.3).  Release-grade arithmetic:
 * RELIABILITY.md section 3.2 (verified clipping, snapping to the lattice,
 * exact int64 sums, exact discrete Gaussian noise of CKS20).
 */
#include "config.h"

#include <float.h>
#include <stddef.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
#endif

#include "attnsec/dpsgd.h"
#include "attnsec/io.h"
#include "attnsec/noise.h"
#include "internal.h"

/* When opts->chunk is 0: as many per-example gradients per pass as fit
 * in CHUNK_BYTES (at least 1, at most MAX_CHUNK).  The rows are read
 * twice after the pass (verified norm, then snap-and-sum), so they should
 * stay in the L2 cache: on the default vit (P = 26474) 4 rows cost 1.13x
 * a plain step at B = 64 where 64 rows cost 1.41x (bench_dpsgd). */
#define CHUNK_BYTES ((size_t)1 << 20)
#define PI 3.14159265358979323846
#define MAX_CHUNK 64

/* Checkpoint metadata keys. */
#define KEY_CONTENT "attnsec.content"
#define KEY_OPTIONS "attnsec.dpsgd.options"
#define KEY_STATE "attnsec.dpsgd.state"
#define KEY_ACCT "attnsec.dpsgd.accountant"
#define CONTENT "dpsgd-checkpoint"

struct asec_dpsgd {
    asec_model *m;        /* borrowed */
    asec_dpsgd_data data; /* borrowed pointers */
    asec_dpsgd_options opts;
    size_t P;        /* parameters */
    size_t T;        /* data->T as given (0: the model's default) */
    size_t in_per;   /* doubles of x per example */
    size_t lab_per;  /* labels per example (R) */
    size_t soft_per; /* soft values per example */
    size_t tok_per;  /* tokens per example */
    size_t chunk;
    asec_rng *rs; /* "dpsgd/sample" */
    asec_rng *rn; /* "dpsgd/noise" */
    asec_acct *acct;
    asec_dpsgd_info info;
    int lattice;    /* release-grade noise in use */
    int snap_dbl;   /* lattice sums are exact in double (setup_noise) */
    double *opt_m;  /* (P) momentum / Adam first moment */
    double *opt_v;  /* (P) Adam second moment */
    double *ema;    /* (P) parameter average, or NULL (opts.ema == 0) */
    double *pe;     /* (chunk, P) per-example gradients */
    double *losses; /* (chunk) */
    double *sum;    /* (P) the noisy sum, then the update direction */
    int64_t *isum;  /* (P) exact lattice sum */
    int64_t *ibuf;  /* (P) snapped row, then noise */
    size_t *perm;   /* (n) shuffle permutation */
    size_t cursor;  /* next position in perm */
    size_t *idx;    /* (cap) sampled indices */
    double *bx;     /* (cap, in_per) */
    int64_t *blab;  /* (cap, lab_per) */
    double *bsoft;  /* (cap, soft_per) */
    int64_t *btok;  /* (cap, tok_per) */
    size_t cap;
    uint64_t step;
};

/* ------------------------------------------------------------ names */

static const char *const optim_names[] = {"sgd", "momentum", "adam"};
static const char *const sampling_names[] = {"poisson", "shuffle"};

const char *
asec_dpsgd_optim_name(asec_dpsgd_optim o)
{
    return (unsigned)o < 3 ? optim_names[o] : "?";
}

const char *
asec_dpsgd_sampling_name(asec_dpsgd_sampling s)
{
    return (unsigned)s < 2 ? sampling_names[s] : "?";
}

int
asec_dpsgd_optim_parse(asec_dpsgd_optim *out, const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, optim_names[i]) == 0) {
            *out = (asec_dpsgd_optim)i;
            return ASEC_OK;
        }
    ASEC_FAIL(ASEC_EINVAL, "unknown optimiser '%s' (sgd, momentum or adam)", name);
}

int
asec_dpsgd_sampling_parse(asec_dpsgd_sampling *out, const char *name)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(name, sampling_names[i]) == 0) {
            *out = (asec_dpsgd_sampling)i;
            return ASEC_OK;
        }
    ASEC_FAIL(ASEC_EINVAL, "unknown sampling '%s' (poisson or shuffle)", name);
}

/* ------------------------------------------------------------ clipping */

/* ||s v||^2 in double with four accumulators, each s v[i] rounded to
 * double first (the values that are used afterwards).  The computed value
 * differs from the exact sum of squares of those values by at most
 * gamma_{n+1} = (n+1) u / (1 - (n+1) u) times it (Higham, "Accuracy and
 * Stability of Numerical Algorithms", 2nd ed., eq. 3.5), for any
 * summation order. */
static double
scaled_norm2(const double *v, size_t n, double s)
{
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    size_t i = 0;

    for (; i + 4 <= n; i += 4) {
        double w0 = s * v[i], w1 = s * v[i + 1], w2 = s * v[i + 2], w3 = s * v[i + 3];

        a0 += w0 * w0;
        a1 += w1 * w1;
        a2 += w2 * w2;
        a3 += w3 * w3;
    }
    for (; i < n; i++) {
        double w = s * v[i];

        a0 += w * w;
    }
    return (a0 + a1) + (a2 + a3);
}

/* ||v|| for finite v whose squares overflow double: M sqrt(sum (v[i]/M)^2)
 * with M = max |v[i]|, so every term is at most 1 and nothing overflows.
 * Within a few ulps; it only seeds the scale that clip_scale then
 * verifies.  (Not long double: valgrind runs x87 arithmetic in 64 bits,
 * where these squares overflow again.) */
static double
max_scaled_norm(const double *v, size_t n)
{
    double M = 0.0, acc = 0.0;

    for (size_t i = 0; i < n; i++)
        M = fmax(M, fabs(v[i]));
    if (M == 0.0)
        return 0.0;
    for (size_t i = 0; i < n; i++) {
        double w = v[i] / M;

        acc += w * w;
    }
    return M * sqrt(acc);
}

/* The verified clipping factor of RELIABILITY.md 3.2 step 1 for v (n
 * doubles) without a second pass over v.  With n2 the computed sum of
 * squares, the true ||v||^2 is at most n2 (1 + gam) (scaled_norm2), and
 * every w[i] = fl(s v[i]) = s v[i] (1 + d), |d| <= u, so ||w||^2 <= s^2
 * n2 (1 + gam) (1 + u)^2.  The check below evaluates that bound with the
 * factor 1 + gam + 8u, which also covers the three roundings of the check
 * itself (each <= u), against C^2 rounded down; s is stepped down with
 * nextafter until the check holds.  So ||fl(s v)|| <= C is proved, not
 * estimated, and the result is deterministic.  *s_out = 1 when no
 * clipping is needed.  Returns 1 (clipped), 0, ASEC_EINVAL or
 * ASEC_ENUMERIC. */
static int
clip_scale(const double *v, size_t n, double clip, double *norm, double *s_out)
{
    /* gamma_{n+1} with u = DBL_EPSILON / 2, bounded above by (n + 2) u for
     * every n that fits in memory; as a relative factor 1 + gam. */
    double gam = ((double)n + 2.0) * DBL_EPSILON, lim, n2, s, f;

    *s_out = 1.0;
    if (!(isfinite(clip) && clip > 0.0))
        ASEC_FAIL(ASEC_EINVAL, "clip norm %g is not finite and positive", clip);
    n2 = scaled_norm2(v, n, 1.0);
    lim = clip * clip * (1.0 - DBL_EPSILON);
    f = 1.0 + gam + 4.0 * DBL_EPSILON;
    if (!isfinite(n2)) {
        double nv;

        for (size_t i = 0; i < n; i++)
            if (!isfinite(v[i]))
                ASEC_FAIL(ASEC_ENUMERIC, "gradient entry %zu is %g", i, v[i]);
        /* Finite entries whose squares overflow double: the norm by
         * max-scaling, then the bound checked on the scaled vector (more
         * passes; this never happens in training). */
        nv = max_scaled_norm(v, n);
        if (norm != NULL)
            *norm = nv;
        s = clip / nv * (1.0 - 2.0 * gam);
        while (s > 0.0 && scaled_norm2(v, n, s) * (1.0 + gam) > lim)
            s = nextafter(s * (1.0 - 2.0 * gam), 0.0);
        *s_out = s;
        return 1;
    }
    if (norm != NULL)
        *norm = sqrt(n2);
    if (n2 * f <= lim)
        return 0;
    s = fmin(1.0, clip / sqrt(n2)) * (1.0 - gam - 8.0 * DBL_EPSILON);
    while (s > 0.0 && s * s * n2 * f > lim)
        s = nextafter(s * (1.0 - gam), 0.0);
    *s_out = s;
    return 1;
}

int
asec_dpsgd_clip(double *v, size_t n, double clip, double *norm)
{
    double s;
    int c = clip_scale(v, n, clip, norm, &s);

    if (c == 1)
        for (size_t i = 0; i < n; i++)
            v[i] = s * v[i];
    return c;
}

/* ------------------------------------------------------------ setup */

static int
check_options(const asec_dpsgd_options *o, size_t n)
{
    if (o->version != ASEC_DPSGD_OPTIONS_VERSION)
        ASEC_FAIL(ASEC_EINVAL, "options version %u, this library has 2 and %u",
                  o->version, (unsigned)ASEC_DPSGD_OPTIONS_VERSION);
    if ((unsigned)o->schedule > ASEC_DPSGD_COSINE)
        ASEC_FAIL(ASEC_EINVAL, "unknown learning-rate schedule %d", (int)o->schedule);
    if (o->schedule == ASEC_DPSGD_COSINE &&
        !(isfinite(o->lr_final) && o->lr_final >= 0.0 && o->lr_final <= o->lr))
        ASEC_FAIL(ASEC_EINVAL, "final learning rate %g is not in [0, lr = %g]",
                  o->lr_final, o->lr);
    if ((unsigned)o->optim > ASEC_DPSGD_ADAM)
        ASEC_FAIL(ASEC_EINVAL, "unknown optimiser %d", (int)o->optim);
    if (!(isfinite(o->lr) && o->lr > 0.0))
        ASEC_FAIL(ASEC_EINVAL, "learning rate %g is not finite and positive", o->lr);
    if (!(o->momentum >= 0.0 && o->momentum < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "momentum %g is not in [0, 1)", o->momentum);
    if (!(o->beta1 >= 0.0 && o->beta1 < 1.0) || !(o->beta2 >= 0.0 && o->beta2 < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "Adam betas (%g, %g) are not in [0, 1)", o->beta1,
                  o->beta2);
    if (!(isfinite(o->adam_eps) && o->adam_eps > 0.0))
        ASEC_FAIL(ASEC_EINVAL, "Adam eps %g is not finite and positive", o->adam_eps);
    if ((unsigned)o->sampling > ASEC_DPSGD_SHUFFLE)
        ASEC_FAIL(ASEC_EINVAL, "unknown sampling %d", (int)o->sampling);
    if (n == 0)
        ASEC_FAIL(ASEC_EINVAL, "the training set is empty");
    if (o->batch == 0 || o->batch > n)
        ASEC_FAIL(ASEC_EINVAL, "batch size %zu is not in 1..%zu (the training set)",
                  o->batch, n);
    if (o->steps == 0)
        ASEC_FAIL(ASEC_EINVAL, "steps must be at least 1");
    if (!(isfinite(o->clip) && o->clip >= 0.0))
        ASEC_FAIL(ASEC_EINVAL, "clip norm %g is not finite and >= 0", o->clip);
    if (!(isfinite(o->sigma) && o->sigma >= 0.0))
        ASEC_FAIL(ASEC_EINVAL, "noise multiplier %g is not finite and >= 0", o->sigma);
    if (o->sigma > 0.0 && o->clip == 0.0)
        ASEC_FAIL(ASEC_EINVAL,
                  "noise multiplier %g without clipping: the sensitivity "
                  "is unbounded",
                  o->sigma);
    if (o->granularity_bits != 0 && (o->granularity_bits < 8 || o->granularity_bits > 30))
        ASEC_FAIL(ASEC_EINVAL, "granularity bits %d is not in [8, 30]",
                  o->granularity_bits);
    if (!(isfinite(o->target_epsilon) && o->target_epsilon >= 0.0))
        ASEC_FAIL(ASEC_EINVAL, "target epsilon %g is not finite and >= 0",
                  o->target_epsilon);
    if (o->target_epsilon > 0.0 && !(o->delta > 0.0 && o->delta < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "delta %g is not in (0, 1)", o->delta);
    if (!(o->ema >= 0.0 && o->ema < 1.0))
        ASEC_FAIL(ASEC_EINVAL, "EMA decay %g is not in [0, 1)", o->ema);
    return ASEC_OK;
}

/* Check the data members against the model kind. */
static int
check_data(const asec_dpsgd *d)
{
    const asec_model_arch *a = asec_model_get_arch(d->m);
    const asec_dpsgd_data *x = &d->data;

    if (a->kind == ASEC_MODEL_TEXT) {
        if ((x->x == NULL) == (x->tokens == NULL))
            ASEC_FAIL(ASEC_EINVAL, "a text model needs exactly one of x and tokens");
    } else {
        if (x->x == NULL)
            ASEC_FAIL(ASEC_EINVAL, "a %s model needs inputs x",
                      asec_model_kind_name(a->kind));
        if (x->tokens != NULL)
            ASEC_FAIL(ASEC_EINVAL, "tokens are only for text models");
    }
    if (a->kind == ASEC_MODEL_ATTN_REGRESSION) {
        if (x->soft == NULL || x->labels != NULL)
            ASEC_FAIL(ASEC_EINVAL, "an attn-regression model needs targets (soft) and "
                                   "no labels");
    } else if ((x->labels == NULL) == (x->soft == NULL)) {
        ASEC_FAIL(ASEC_EINVAL, "give exactly one of labels and soft labels");
    }
    return ASEC_OK;
}

/* Grow the batch buffers to hold need examples. */
static int
grow_batch(asec_dpsgd *d, size_t need)
{
    size_t cap = d->cap ? d->cap : 16, bytes;

    if (need <= d->cap)
        return ASEC_OK;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : 2 * cap;
    {
        size_t *idx;

        if (asec__mul_size(cap, sizeof *idx, &bytes) != 0)
            ASEC_FAIL(ASEC_ENOMEM, "batch of %zu examples overflows", cap);
        if ((idx = asec__realloc(d->idx, bytes)) == NULL)
            return ASEC_ENOMEM;
        d->idx = idx;
    }
    if (d->data.x != NULL) {
        double *p;

        if (asec__mul_size(cap, d->in_per, &bytes) != 0 ||
            asec__mul_size(bytes, sizeof(double), &bytes) != 0)
            ASEC_FAIL(ASEC_ENOMEM, "batch inputs overflow");
        if ((p = asec__realloc(d->bx, bytes)) == NULL)
            return ASEC_ENOMEM;
        d->bx = p;
    }
    if (d->data.labels != NULL) {
        int64_t *p;

        if (asec__mul_size(cap, d->lab_per, &bytes) != 0 ||
            asec__mul_size(bytes, sizeof(int64_t), &bytes) != 0)
            ASEC_FAIL(ASEC_ENOMEM, "batch labels overflow");
        if ((p = asec__realloc(d->blab, bytes)) == NULL)
            return ASEC_ENOMEM;
        d->blab = p;
    }
    if (d->data.soft != NULL) {
        double *p;

        if (asec__mul_size(cap, d->soft_per, &bytes) != 0 ||
            asec__mul_size(bytes, sizeof(double), &bytes) != 0)
            ASEC_FAIL(ASEC_ENOMEM, "batch targets overflow");
        if ((p = asec__realloc(d->bsoft, bytes)) == NULL)
            return ASEC_ENOMEM;
        d->bsoft = p;
    }
    if (d->data.tokens != NULL) {
        int64_t *p;

        if (asec__mul_size(cap, d->tok_per, &bytes) != 0 ||
            asec__mul_size(bytes, sizeof(int64_t), &bytes) != 0)
            ASEC_FAIL(ASEC_ENOMEM, "batch tokens overflow");
        if ((p = asec__realloc(d->btok, bytes)) == NULL)
            return ASEC_ENOMEM;
        d->btok = p;
    }
    d->cap = cap;
    return ASEC_OK;
}

/* Allocate a P-array of doubles (zeroed) or int64s. */
static double *
alloc_doubles(size_t n)
{
    return asec__calloc(n ? n : 1, sizeof(double));
}

/* floor(sqrt(x)). */
static uint64_t
isqrt_u64(uint64_t x)
{
    uint64_t r = (uint64_t)sqrt((double)x);

    while (r > 0 && r > x / r)
        r--;
    while ((r + 1) <= x / (r + 1))
        r++;
    return r;
}

/* The smallest multiple of t = floor(sqrt(v)) + 1 that is >= v (and keeps
 * that t), for v <= 2^62.  t is the Laplace scale of the discrete Gaussian
 * sampler (CKS20 Alg. 3), whose acceptance test then reduces to a 64-bit
 * rational (noise.c, dgauss_reduce): about 5% faster noise.  Rounding up
 * only adds noise (relatively at most 2^-19 for the default lattice), so
 * the charged multiplier stays a lower bound. */
static uint64_t
round_var(uint64_t v)
{
    for (int i = 0; i < 16; i++) {
        uint64_t t = isqrt_u64(v) + 1, w = (v + t - 1) / t * t;

        if (w == v)
            break;
        v = w;
    }
    return v;
}

/* The lattice, sensitivity and noise variance of the release-grade path. */
static int
setup_noise(asec_dpsgd *d)
{
    asec_dpsgd_info *in = &d->info;
    const asec_dpsgd_options *o = &d->opts;
    int bits = o->granularity_bits ? o->granularity_bits : ASEC_NOISE_DEFAULT_BITS;
    double sl, var;

    in->sensitivity = o->clip;
    in->noise_std = o->sigma * o->clip;
    in->granularity = 0.0;
    in->noise_var_num = in->noise_var_den = 0;
    if (!in->private_run || o->idealized)
        return ASEC_OK;
    ASEC_TRY(asec_noise_granularity(&in->granularity, o->sigma * o->clip, bits));
    ASEC_TRY(asec_noise_lattice_sensitivity(&in->sensitivity, o->clip, ASEC_NOISE_L2,
                                            d->P, in->granularity,
                                            ASEC_NOISE_SNAP_EXAMPLE));
    /* The largest possible batch (all n examples) must fit the int64 sum,
     * and a clipped coordinate must lie in the exact lattice range. */
    ASEC_TRY(asec_noise_acc_check(d->data.n, o->clip, in->granularity));
    if (!(o->clip / in->granularity <= 4503599627370496.0))
        ASEC_FAIL(ASEC_ELIMIT,
                  "clip / granularity = %g exceeds 2^52; use fewer "
                  "granularity bits",
                  o->clip / in->granularity);
    /* Noise std sigma C_eff, in lattice units; the variance is rounded up
     * (a relative margin of 8 ulp covers the rounding of sl and var) to an
     * integer, so the charged multiplier is at least sigma. */
    sl = o->sigma * in->sensitivity / in->granularity;
    var = ceil(sl * sl * (1.0 + 8.0 * DBL_EPSILON));
    if (!(var >= 1.0 && var <= 4611686018427387904.0)) /* 2^62 */
        ASEC_FAIL(ASEC_EINVAL,
                  "lattice noise variance %g is out of range; change "
                  "the granularity bits",
                  var);
    in->noise_var_num = round_var((uint64_t)var);
    in->noise_var_den = 1;
    var = (double)in->noise_var_num;
    if ((uint64_t)var < in->noise_var_num) /* var < 2^62 + 2^32: no overflow */
        var = nextafter(var, INFINITY);
    in->noise_std = sqrt(var) * in->granularity;
    d->lattice = 1;
    /* Snapped coordinates are integers of magnitude <= C / g + 1/2; while
     * C / g <= 2^51 and every partial sum of n of them stays within 2^53,
     * a double accumulator holds them exactly (and is faster than int64
     * on machines without vector conversions).  Else snap_add(). */
    d->snap_dbl = o->clip / in->granularity <= 2251799813685248.0 && /* 2^51 */
                  (double)d->data.n * (o->clip / in->granularity + 1.0) <=
                      9007199254740992.0; /* 2^53 */
    return ASEC_OK;
}

int
asec_dpsgd_alloc(asec_dpsgd **out, asec_model *m, const asec_dpsgd_data *data,
                 const asec_dpsgd_options *opts, const asec_rng *rng)
{
    asec_dpsgd *d = NULL;
    size_t bytes;
    int rc;

    asec_dpsgd_options o;

    *out = NULL;
    if (opts->version == 2) {
        /* The version-2 layout ends before schedule: a constant rate. */
        memset(&o, 0, sizeof o);
        memcpy(&o, opts, offsetof(asec_dpsgd_options, schedule));
        o.version = ASEC_DPSGD_OPTIONS_VERSION;
        o.schedule = ASEC_DPSGD_CONSTANT;
        o.lr_final = 0.0;
    } else {
        o = *opts;
    }
    opts = &o;
    ASEC_TRY(check_options(opts, data->n));
    if ((d = asec__calloc(1, sizeof *d)) == NULL)
        return ASEC_ENOMEM;
    d->m = m;
    d->data = *data;
    d->opts = *opts;
    d->P = asec_model_param_count(m);
    d->T = data->T;
    d->in_per = asec_model_input_size(m, data->T);
    d->lab_per = asec_model_rows(m, data->T);
    d->soft_per = asec_model_output_size(m, data->T);
    d->tok_per = data->T ? data->T : asec_model_get_arch(m)->seq_len;
    d->chunk = opts->chunk;
    if (d->chunk == 0) {
        size_t row = d->P * sizeof(double);

        d->chunk = row == 0 || row >= CHUNK_BYTES ? 1 : CHUNK_BYTES / row;
        if (d->chunk > MAX_CHUNK)
            d->chunk = MAX_CHUNK;
    }
    if ((rc = check_data(d)) != ASEC_OK)
        goto fail;

    d->info.q = (double)opts->batch / (double)data->n;
    d->info.sigma = opts->sigma;
    d->info.clip = opts->clip;
    d->info.params = d->P;
    d->info.idealized = opts->idealized;
    d->info.private_run = opts->sigma > 0.0 && opts->clip > 0.0;
    d->info.sampling_formal = opts->sampling == ASEC_DPSGD_POISSON;
    d->info.budget_steps = UINT64_MAX;
    if ((rc = setup_noise(d)) != ASEC_OK)
        goto fail;

    if ((rc = asec_rng_derive(&d->rs, rng, "dpsgd/sample")) != ASEC_OK ||
        (rc = asec_rng_derive(&d->rn, rng, "dpsgd/noise")) != ASEC_OK ||
        (rc = asec_acct_alloc(&d->acct, NULL)) != ASEC_OK)
        goto fail;

    rc = ASEC_ENOMEM;
    if (asec__mul_size(d->chunk, d->P, &bytes) != 0) {
        rc = asec__fail(ASEC_ENOMEM, "chunk %zu x %zu parameters overflows", d->chunk,
                        d->P);
        goto fail;
    }
    if ((d->opt_m = alloc_doubles(d->P)) == NULL ||
        (d->opt_v = alloc_doubles(d->P)) == NULL ||
        (d->pe = alloc_doubles(bytes)) == NULL ||
        (d->losses = alloc_doubles(d->chunk)) == NULL ||
        (d->sum = alloc_doubles(d->P)) == NULL ||
        (d->isum = asec__calloc(d->P, sizeof(int64_t))) == NULL ||
        (d->ibuf = asec__calloc(d->P, sizeof(int64_t))) == NULL ||
        (d->perm = asec__calloc(data->n, sizeof(size_t))) == NULL ||
        (opts->ema > 0.0 && (d->ema = alloc_doubles(d->P)) == NULL))
        goto fail;
    if (d->ema != NULL)
        memcpy(d->ema, asec_model_params(m), d->P * sizeof(double));
    for (size_t i = 0; i < data->n; i++)
        d->perm[i] = i;
    d->cursor = data->n; /* a new permutation before the first shuffled batch */
    if ((rc = grow_batch(d, opts->batch)) != ASEC_OK)
        goto fail;

    /* Validate the data on the first example (shapes, label range). */
    {
        asec_model_batch b = {1, d->T, NULL, NULL, NULL, NULL};
        double loss;

        b.x = data->x;
        b.tokens = data->tokens;
        b.labels = data->labels;
        b.soft = data->soft;
        if ((rc = asec_model_forward(m, &loss, NULL, NULL, &b)) != ASEC_OK)
            goto fail;
    }

    if (opts->target_epsilon > 0.0) {
        asec_acct_calib c = ASEC_ACCT_CALIB_INIT;
        double steps;

        if (!d->info.private_run) {
            rc = asec__fail(ASEC_EBUDGET,
                            "a run without noise and clipping has "
                            "infinite epsilon; target %g cannot be met",
                            opts->target_epsilon);
            goto fail;
        }
        c.solve = ASEC_ACCT_PARAM_STEPS;
        c.sampling = ASEC_ACCT_POISSON;
        c.q = d->info.q;
        c.sigma = opts->sigma;
        c.target_epsilon = opts->target_epsilon;
        c.delta = opts->delta;
        if ((rc = asec_acct_calibrate(d->acct, ASEC_ACCT_RDP, &c, &steps, NULL)) !=
            ASEC_OK)
            goto fail;
        d->info.budget_steps =
            steps >= 18446744073709549568.0 ? UINT64_MAX : (uint64_t)steps;
    }
    *out = d;
    return ASEC_OK;
fail:
    asec_dpsgd_free(d);
    return rc;
}

void
asec_dpsgd_free(asec_dpsgd *d)
{
    if (d == NULL)
        return;
    asec_rng_free(d->rs);
    asec_rng_free(d->rn);
    asec_acct_free(d->acct);
    asec__free(d->opt_m);
    asec__free(d->opt_v);
    asec__free(d->ema);
    asec__free(d->pe);
    asec__free(d->losses);
    asec__free(d->sum);
    asec__free(d->isum);
    asec__free(d->ibuf);
    asec__free(d->perm);
    asec__free(d->idx);
    asec__free(d->bx);
    asec__free(d->blab);
    asec__free(d->bsoft);
    asec__free(d->btok);
    asec__free(d);
}

uint64_t
asec_dpsgd_steps_done(const asec_dpsgd *d)
{
    return d->step;
}

void
asec_dpsgd_get_info(const asec_dpsgd *d, asec_dpsgd_info *out)
{
    *out = d->info;
}

const double *
asec_dpsgd_ema(const asec_dpsgd *d)
{
    return d->ema;
}

const asec_acct *
asec_dpsgd_get_acct(const asec_dpsgd *d)
{
    return d->acct;
}

/* ------------------------------------------------------------ a step */

/* Draw the batch indices into d->idx; returns the batch size. */
static int
sample_batch(asec_dpsgd *d, size_t *B)
{
    size_t n = d->data.n;

    *B = 0;
    if (d->opts.sampling == ASEC_DPSGD_POISSON) {
        double q = d->info.q;

        for (size_t i = 0; i < n; i++) {
            if (!(asec_rng_uniform(d->rs) < q))
                continue;
            if (*B == d->cap)
                ASEC_TRY(grow_batch(d, *B + 1));
            d->idx[(*B)++] = i;
        }
        return ASEC_OK;
    }
    /* Shuffle: a fresh Fisher-Yates permutation when the current one has
     * fewer than batch examples left (the remainder is dropped). */
    if (d->cursor + d->opts.batch > n) {
        for (size_t i = 0; i < n; i++)
            d->perm[i] = i;
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)asec_rng_bounded(d->rs, i), t = d->perm[i - 1];

            d->perm[i - 1] = d->perm[j];
            d->perm[j] = t;
        }
        d->cursor = 0;
    }
    memcpy(d->idx, d->perm + d->cursor, d->opts.batch * sizeof(size_t));
    d->cursor += d->opts.batch;
    *B = d->opts.batch;
    return ASEC_OK;
}

/* Copy the sampled examples into the batch buffers. */
static void
gather(asec_dpsgd *d, size_t B)
{
    const asec_dpsgd_data *x = &d->data;

    for (size_t b = 0; b < B; b++) {
        size_t i = d->idx[b];

        if (x->x != NULL)
            memcpy(d->bx + b * d->in_per, x->x + i * d->in_per,
                   d->in_per * sizeof(double));
        if (x->labels != NULL)
            memcpy(d->blab + b * d->lab_per, x->labels + i * d->lab_per,
                   d->lab_per * sizeof(int64_t));
        if (x->soft != NULL)
            memcpy(d->bsoft + b * d->soft_per, x->soft + i * d->soft_per,
                   d->soft_per * sizeof(double));
        if (x->tokens != NULL)
            memcpy(d->btok + b * d->tok_per, x->tokens + i * d->tok_per,
                   d->tok_per * sizeof(int64_t));
    }
}

/* The batch view of examples [s, s + B) of the gathered buffers. */
static asec_model_batch
chunk_view(const asec_dpsgd *d, size_t s, size_t B)
{
    asec_model_batch b = {B, d->T, NULL, NULL, NULL, NULL};

    if (d->data.x != NULL)
        b.x = d->bx + s * d->in_per;
    if (d->data.tokens != NULL)
        b.tokens = d->btok + s * d->tok_per;
    if (d->data.labels != NULL)
        b.labels = d->blab + s * d->lab_per;
    if (d->data.soft != NULL)
        b.soft = d->bsoft + s * d->soft_per;
    return b;
}

/* acc[i] += round(v[i] / g), half away from zero: asec_noise_snap() and
 * asec_noise_acc_add() in one pass.  Exact: v[i] / g is exact for a power
 * of two g; |v[i]| <= C and C / g <= 2^52 (setup_noise), so the
 * truncation to int64 and the fraction are exact; and every partial sum
 * stays below n (C / g + 1) < 2^62 in magnitude (asec_noise_acc_check() in
 * setup_noise), so no addition overflows. */
static void
snap_add(int64_t *acc, const double *v, size_t n, double g)
{
    double inv = 1.0 / g; /* exact: g is a power of two */

    for (size_t i = 0; i < n; i++) {
        double q = v[i] * inv, f;
        int64_t t = (int64_t)q;

        f = q - (double)t;
        t += (f >= 0.5) - (f <= -0.5);
        acc[i] += t;
    }
}

/* acc[i] += round(fl(s v[i]) / g), half away from zero, in double: the
 * same integers as snap_add() on the scaled vector.  q = fl(s v[i]) / g
 * is exact (g a power of two) with |q| <= C / g <= 2^51, so adding and
 * subtracting 1.5 * 2^52 rounds q to the nearest integer, ties to even,
 * exactly (IEEE double, no contraction: -std=c11); the tie test on the
 * exact difference q - r turns that into ties away from zero.  acc stays
 * an integer below 2^53 in magnitude (setup_noise), so every addition is
 * exact. */
static double
snap_one(double x, double s, double inv)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double q = (s * x) * inv, r, e;

    r = (q + magic) - magic; /* not folded: no -ffast-math (STYLE B6) */
    e = q - r;
    return r + ((double)((e == 0.5) & (q > 0.0)) - (double)((e == -0.5) & (q < 0.0)));
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define HAVE_SNAP_AVX2 1
/* snap_add_dbl() on four lanes (AVX2, chosen at run time): the same IEEE
 * operations on every element, so bit-identical results on any x86-64.
 * No FMA: the target does not include it, and -ffp-contract=off. */
__attribute__((target("avx2"))) static size_t
snap_add_avx2(double *acc, const double *v, size_t n, double s, double inv)
{
    const __m256d vs = _mm256_set1_pd(s), vi = _mm256_set1_pd(inv);
    const __m256d vm = _mm256_set1_pd(6755399441055744.0), h = _mm256_set1_pd(0.5);
    const __m256d mh = _mm256_set1_pd(-0.5), z = _mm256_setzero_pd();
    const __m256d one = _mm256_set1_pd(1.0);
    size_t i = 0;

    for (; i + 4 <= n; i += 4) {
        __m256d q = _mm256_mul_pd(_mm256_mul_pd(vs, _mm256_loadu_pd(v + i)), vi);
        __m256d r = _mm256_sub_pd(_mm256_add_pd(q, vm), vm);
        __m256d e = _mm256_sub_pd(q, r);
        __m256d up = _mm256_and_pd(_mm256_and_pd(_mm256_cmp_pd(e, h, _CMP_EQ_OQ),
                                                 _mm256_cmp_pd(q, z, _CMP_GT_OQ)),
                                   one);
        __m256d dn = _mm256_and_pd(_mm256_and_pd(_mm256_cmp_pd(e, mh, _CMP_EQ_OQ),
                                                 _mm256_cmp_pd(q, z, _CMP_LT_OQ)),
                                   one);

        r = _mm256_add_pd(r, _mm256_sub_pd(up, dn));
        _mm256_storeu_pd(acc + i, _mm256_add_pd(_mm256_loadu_pd(acc + i), r));
    }
    return i;
}
#endif

static void
snap_add_dbl(double *acc, const double *v, size_t n, double s, double g)
{
    const double inv = 1.0 / g; /* exact: g is a power of two */
    size_t i = 0;

#ifdef HAVE_SNAP_AVX2
    if (__builtin_cpu_supports("avx2")) {
        i = snap_add_avx2(acc, v, n, s, inv);
        for (; i < n; i++)
            acc[i] += snap_one(v[i], s, inv);
        return;
    }
#endif

#ifdef __SSE2__
    /* The same IEEE operations on two lanes at once (SSE2 is part of
     * x86-64): bit-identical to snap_one(). */
    const __m128d vs = _mm_set1_pd(s), vi = _mm_set1_pd(inv);
    const __m128d vm = _mm_set1_pd(6755399441055744.0), h = _mm_set1_pd(0.5);
    const __m128d mh = _mm_set1_pd(-0.5), z = _mm_setzero_pd(), one = _mm_set1_pd(1.0);

    for (; i + 2 <= n; i += 2) {
        __m128d q = _mm_mul_pd(_mm_mul_pd(vs, _mm_loadu_pd(v + i)), vi);
        __m128d r = _mm_sub_pd(_mm_add_pd(q, vm), vm);
        __m128d e = _mm_sub_pd(q, r);
        __m128d up = _mm_and_pd(_mm_and_pd(_mm_cmpeq_pd(e, h), _mm_cmpgt_pd(q, z)), one);
        __m128d dn = _mm_and_pd(_mm_and_pd(_mm_cmpeq_pd(e, mh), _mm_cmplt_pd(q, z)), one);

        r = _mm_add_pd(r, _mm_sub_pd(up, dn));
        _mm_storeu_pd(acc + i, _mm_add_pd(_mm_loadu_pd(acc + i), r));
    }
#endif
    for (; i < n; i++)
        acc[i] += snap_one(v[i], s, inv);
}

/* The sum over the batch of the (clipped) per-example gradients: into
 * d->isum (lattice) or d->sum (double).  Fills the norm statistics. */
static int
sum_gradients(asec_dpsgd *d, size_t B, asec_dpsgd_step *st, double *loss_sum)
{
    const size_t P = d->P;
    const double C = d->opts.clip;
    size_t nclip = 0;
    double nsum = 0.0, nmax = 0.0;

    memset(d->sum, 0, P * sizeof(double));
    memset(d->isum, 0, P * sizeof(int64_t));
    *loss_sum = 0.0;
    for (size_t s = 0; s < B; s += d->chunk) {
        size_t nb = B - s < d->chunk ? B - s : d->chunk;
        asec_model_batch b = chunk_view(d, s, nb);

        if (C == 0.0) {
            /* Non-private: the plain batch gradient (mean over the chunk). */
            asec_model_vec g = {d->pe, NULL, NULL};
            double loss;

            ASEC_TRY(asec_model_grad(d->m, &loss, &g, &b));
            for (size_t p = 0; p < P; p++)
                d->sum[p] += (double)nb * d->pe[p];
            *loss_sum += loss * (double)nb;
            continue;
        }
        ASEC_TRY(asec_model_grad_per_example(d->m, d->losses, d->pe, &b));
        for (size_t r = 0; r < nb; r++) {
            double *row = d->pe + r * P, norm, sc;
            int c = clip_scale(row, P, C, &norm, &sc);

            if (c < 0)
                return c;
            nclip += (size_t)c;
            nsum += norm;
            nmax = fmax(nmax, norm);
            *loss_sum += d->losses[r];
            /* One pass: scale (the values whose norm clip_scale proved),
             * snap and accumulate. */
            if (d->lattice && d->snap_dbl) {
                snap_add_dbl(d->sum, row, P, sc, d->info.granularity);
            } else if (d->lattice) {
                if (c == 1)
                    for (size_t p = 0; p < P; p++)
                        row[p] = sc * row[p];
                snap_add(d->isum, row, P, d->info.granularity);
            } else {
                for (size_t p = 0; p < P; p++)
                    d->sum[p] += sc * row[p];
            }
        }
    }
    if (d->lattice && d->snap_dbl && C > 0.0)
        for (size_t p = 0; p < P; p++)
            d->isum[p] = (int64_t)d->sum[p]; /* integers below 2^53: exact */
    if (C > 0.0 && B > 0) {
        st->mean_norm = nsum / (double)B;
        st->max_norm = nmax;
        st->clipped_frac = (double)nclip / (double)B;
    }
    return ASEC_OK;
}

/* Add the noise to the sum; the result is d->sum in gradient units. */
static int
add_noise(asec_dpsgd *d)
{
    const size_t P = d->P;

    if (!d->info.private_run)
        return ASEC_OK;
    if (d->lattice) {
        ASEC_TRY(asec_noise_dgauss(d->ibuf, P, d->rn, d->info.noise_var_num,
                                   d->info.noise_var_den, ASEC_NOISE_PATH_AUTO));
        ASEC_TRY(asec_noise_acc_add(d->isum, d->ibuf, P));
        /* RELIABILITY.md 3.2 step 4: one exact conversion of sum + noise. */
        ASEC_TRY(asec_noise_unsnap(d->sum, d->isum, P, d->info.granularity));
        return ASEC_OK;
    }
    for (size_t p = 0; p < P; p++)
        d->sum[p] += d->info.noise_std * asec_rng_normal(d->rn);
    return ASEC_OK;
}

/* The learning rate of step t (1-based) under the schedule. */
static double
step_lr(const asec_dpsgd_options *o, uint64_t t)
{
    double c;

    if (o->schedule != ASEC_DPSGD_COSINE || o->steps < 2)
        return o->lr;
    c = cos(PI * (double)(t - 1) / (double)(o->steps - 1));
    return o->lr_final + (o->lr - o->lr_final) * 0.5 * (1.0 + c);
}

/* The optimiser update with direction g = d->sum (cannot fail). */
static void
apply_update(asec_dpsgd *d)
{
    const asec_dpsgd_options *o = &d->opts;
    double *theta = asec_model_params(d->m), *g = d->sum;
    const size_t P = d->P;
    double lr = step_lr(o, d->step);

    switch (o->optim) {
    case ASEC_DPSGD_SGD:
        for (size_t p = 0; p < P; p++)
            theta[p] -= lr * g[p];
        break;
    case ASEC_DPSGD_MOMENTUM:
        /* PyTorch SGD: v = mu v + g (v = g at the first step); theta -= lr v. */
        for (size_t p = 0; p < P; p++) {
            d->opt_m[p] = d->step == 1 ? g[p] : o->momentum * d->opt_m[p] + g[p];
            theta[p] -= lr * d->opt_m[p];
        }
        break;
    case ASEC_DPSGD_ADAM: {
        /* Kingma-Ba 2015, Alg. 1 (t = the step just counted). */
        double c1 = 1.0 - pow(o->beta1, (double)d->step);
        double c2 = 1.0 - pow(o->beta2, (double)d->step);

        for (size_t p = 0; p < P; p++) {
            d->opt_m[p] = o->beta1 * d->opt_m[p] + (1.0 - o->beta1) * g[p];
            d->opt_v[p] = o->beta2 * d->opt_v[p] + (1.0 - o->beta2) * g[p] * g[p];
            theta[p] -=
                lr * (d->opt_m[p] / c1) / (sqrt(d->opt_v[p] / c2) + o->adam_eps);
        }
        break;
    }
    }
}

int
asec_dpsgd_iterate(asec_dpsgd *d, asec_dpsgd_step *st)
{
    asec_dpsgd_step tmp;
    size_t B;
    double loss_sum, denom, gn = 0.0;
    const size_t P = d->P;

    if (st == NULL)
        st = &tmp;
    if (d->step >= d->opts.steps)
        ASEC_FAIL(ASEC_EBUDGET, "all %zu planned steps are done", d->opts.steps);
    if (d->step >= d->info.budget_steps)
        ASEC_FAIL(ASEC_EBUDGET,
                  "step %" PRIu64 " would take epsilon above the target %g "
                  "(delta %g)",
                  d->step + 1, d->opts.target_epsilon, d->opts.delta);
    memset(st, 0, sizeof *st);
    st->mean_norm = st->max_norm = NAN;
    ASEC_TRY(sample_batch(d, &B));
    gather(d, B);
    st->batch = B;
    ASEC_TRY(sum_gradients(d, B, st, &loss_sum));
    st->loss = B > 0 ? loss_sum / (double)B : NAN;
    ASEC_TRY(add_noise(d));
    /* Divide by the expected batch size q n = batch under Poisson sampling
     * (the actual size is not private; Opacus does the same), by the batch
     * size under shuffling: both equal opts.batch. */
    denom = (double)d->opts.batch;
    for (size_t p = 0; p < P; p++) {
        d->sum[p] /= denom;
        gn += d->sum[p] * d->sum[p];
        if (!isfinite(d->sum[p]))
            ASEC_FAIL(ASEC_ENUMERIC, "gradient entry %zu is not finite at step %" PRIu64,
                      p, d->step + 1);
    }
    st->grad_norm = sqrt(gn);
    /* Charge the ledger before the update is visible (DESIGN.md: the budget
     * is over-counted, never under-counted). */
    if (d->info.private_run)
        ASEC_TRY(asec_acct_step(d->acct, d->info.q, d->info.sigma));
    d->step++;
    st->step = d->step;
    apply_update(d);
    if (d->ema != NULL) {
        /* Post-processing of the released iterate theta_t (dpsgd.h). */
        double t = (double)d->step, b = fmin(d->opts.ema, (1.0 + t) / (10.0 + t));
        const double *theta = asec_model_params(d->m);

        for (size_t p = 0; p < P; p++)
            d->ema[p] = b * d->ema[p] + (1.0 - b) * theta[p];
    }
    return ASEC_OK;
}

/* ------------------------------------------------------------ convergence */

int
asec_dpsgd_sgd_bound(asec_dpsgd_bound *out, const asec_dpsgd_bound_params *b)
{
    double T = (double)b->steps;

    if (!(isfinite(b->loss0) && isfinite(b->loss_min) && b->loss0 >= b->loss_min))
        ASEC_FAIL(ASEC_EINVAL, "loss0 %g must be finite and >= loss_min %g", b->loss0,
                  b->loss_min);
    if (!(isfinite(b->beta) && b->beta > 0.0))
        ASEC_FAIL(ASEC_EINVAL, "smoothness beta %g is not finite and positive", b->beta);
    if (!(isfinite(b->eta) && b->eta > 0.0))
        ASEC_FAIL(ASEC_EINVAL, "step size eta %g is not finite and positive", b->eta);
    if (b->eta * b->beta > 1.0)
        ASEC_FAIL(ASEC_EINVAL,
                  "step size eta %g exceeds 1/beta = %g: the bound does not apply",
                  b->eta, 1.0 / b->beta);
    if (!(isfinite(b->var_s) && b->var_s >= 0.0) ||
        !(isfinite(b->noise_var) && b->noise_var >= 0.0))
        ASEC_FAIL(ASEC_EINVAL, "variances %g and %g must be finite and >= 0", b->var_s,
                  b->noise_var);
    if (b->params == 0 || b->steps == 0)
        ASEC_FAIL(ASEC_EINVAL, "params %zu and steps %" PRIu64 " must be >= 1", b->params,
                  b->steps);
    /* MATH.md 3.4: E L(t+1) <= L(t) - (eta/2) ||grad||^2 + (beta/2) eta^2
     * (var_s + p noise_var) when eta <= 1/beta; summed over t < T. */
    out->optimization = 2.0 * (b->loss0 - b->loss_min) / (b->eta * T);
    out->noise = b->beta * b->eta * (b->var_s + (double)b->params * b->noise_var);
    out->total = out->optimization + out->noise;
    return ASEC_OK;
}

/* ------------------------------------------------------------ evaluation */

int
asec_dpsgd_evaluate(asec_model *m, const asec_dpsgd_data *data, size_t batch,
                    double *loss, double *accuracy)
{
    const asec_model_arch *a = asec_model_get_arch(m);
    size_t T = data->T, in_per = asec_model_input_size(m, T), R = asec_model_rows(m, T);
    size_t outsz = asec_model_output_size(m, T), soft_per = outsz;
    size_t tok_per = T ? T : a->seq_len, K = a->classes, correct = 0, bytes;
    double *logits = NULL, total = 0.0;
    int rc = ASEC_OK, classify;

    if (batch == 0)
        batch = 256;
    if (data->n == 0)
        ASEC_FAIL(ASEC_EINVAL, "the evaluation set is empty");
    if (data->labels == NULL && data->soft == NULL)
        ASEC_FAIL(ASEC_EINVAL, "evaluation needs labels or targets");
    classify = a->kind != ASEC_MODEL_ATTN_REGRESSION && data->labels != NULL;
    if (asec__mul_size(batch, outsz, &bytes) != 0 ||
        asec__mul_size(bytes, sizeof(double), &bytes) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "evaluation batch overflows");
    if ((logits = asec__malloc(bytes)) == NULL)
        return ASEC_ENOMEM;
    for (size_t s = 0; s < data->n; s += batch) {
        size_t nb = data->n - s < batch ? data->n - s : batch;
        asec_model_batch b = {nb, T, NULL, NULL, NULL, NULL};
        double l;

        if (data->x != NULL)
            b.x = data->x + s * in_per;
        if (data->tokens != NULL)
            b.tokens = data->tokens + s * tok_per;
        if (data->labels != NULL)
            b.labels = data->labels + s * R;
        if (data->soft != NULL)
            b.soft = data->soft + s * soft_per;
        if ((rc = asec_model_forward(m, &l, NULL, logits, &b)) != ASEC_OK)
            goto done;
        total += l * (double)nb;
        if (!classify)
            continue;
        for (size_t r = 0; r < nb * R; r++) {
            const double *z = logits + r * K;
            size_t best = 0;

            for (size_t k = 1; k < K; k++)
                if (z[k] > z[best])
                    best = k;
            correct += (int64_t)best == b.labels[r];
        }
    }
    if (loss != NULL)
        *loss = total / (double)data->n;
    if (accuracy != NULL)
        *accuracy = classify ? (double)correct / ((double)data->n * (double)R) : NAN;
done:
    asec__free(logits);
    return rc;
}

/* ------------------------------------------------------------ checkpoints */

/* The options as text: a checkpoint only resumes the same run. */
static void
options_text(char *buf, size_t cap, const asec_dpsgd *d)
{
    const asec_dpsgd_options *o = &d->opts;

    snprintf(buf, cap,
             "{\"optim\":\"%s\",\"lr\":%.17g,\"momentum\":%.17g,\"beta1\":%.17g,"
             "\"beta2\":%.17g,\"adam_eps\":%.17g,\"sampling\":\"%s\",\"batch\":%zu,"
             "\"steps\":%zu,\"clip\":%.17g,\"sigma\":%.17g,\"idealized\":%d,"
             "\"granularity_bits\":%d,\"chunk\":%zu,\"target_epsilon\":%.17g,"
             "\"delta\":%.17g,\"ema\":%.17g,\"schedule\":%d,\"lr_final\":%.17g,"
             "\"n\":%zu,\"T\":%zu}",
             asec_dpsgd_optim_name(o->optim), o->lr, o->momentum, o->beta1, o->beta2,
             o->adam_eps, asec_dpsgd_sampling_name(o->sampling), o->batch, o->steps,
             o->clip, o->sigma, o->idealized, o->granularity_bits, d->chunk,
             o->target_epsilon, o->delta, o->ema, (int)o->schedule, o->lr_final, d->data.n,
             d->T);
}

static void
state_text(char *buf, size_t cap, const asec_dpsgd *d)
{
    int seeded = asec_rng_get_mode(d->rs) == ASEC_RNG_SEEDED;

    snprintf(buf, cap,
             "{\"step\":%" PRIu64 ",\"cursor\":%zu,\"rng\":\"%s\",\"seed\":%" PRIu64
             ",\"sample_pos\":%" PRIu64 ",\"noise_pos\":%" PRIu64 "}",
             d->step, d->cursor, seeded ? "seeded" : "secure",
             seeded ? asec_rng_get_seed(d->rs) : 0, seeded ? asec_rng_tell(d->rs) : 0,
             seeded ? asec_rng_tell(d->rn) : 0);
}

int
asec_dpsgd_checkpoint_save(const asec_dpsgd *d, const char *path)
{
    char arch[1024], opts[1024], state[512], *acct = NULL;
    double *perm = NULL, *ema = NULL;
    size_t shp[1] = {d->P}, shn[1] = {d->data.n};
    asec_io_st_entry t[5];
    const char *keys[5] = {KEY_CONTENT, ASEC_MODEL_ARCH_KEY, KEY_OPTIONS, KEY_STATE,
                           KEY_ACCT};
    const char *vals[5];
    int rc;

    ASEC_TRY(asec_model_arch_to_json(arch, sizeof arch, asec_model_get_arch(d->m)));
    options_text(opts, sizeof opts, d);
    state_text(state, sizeof state, d);
    ASEC_TRY(asec_acct_to_json(d->acct, &acct));
    if ((perm = asec__calloc(d->data.n, sizeof(double))) == NULL ||
        (d->ema == NULL && (ema = alloc_doubles(d->P)) == NULL)) {
        asec__free(perm);
        asec_acct_json_free(acct);
        return ASEC_ENOMEM;
    }
    for (size_t i = 0; i < d->data.n; i++)
        perm[i] = (double)d->perm[i];
    t[0] = (asec_io_st_entry){"params", ASEC_IO_F64, 1, shp, asec_model_params(d->m)};
    t[1] = (asec_io_st_entry){"opt.m", ASEC_IO_F64, 1, shp, d->opt_m};
    t[2] = (asec_io_st_entry){"opt.v", ASEC_IO_F64, 1, shp, d->opt_v};
    t[3] = (asec_io_st_entry){"perm", ASEC_IO_F64, 1, shn, perm};
    t[4] = (asec_io_st_entry){"ema", ASEC_IO_F64, 1, shp, d->ema ? d->ema : ema};
    vals[0] = CONTENT;
    vals[1] = arch;
    vals[2] = opts;
    vals[3] = state;
    vals[4] = acct;
    rc = asec_io_st_write(path, t, 5, keys, vals, 5);
    asec__free(perm);
    asec__free(ema);
    asec_acct_json_free(acct);
    return rc;
}

/* A P- or n-vector tensor of the checkpoint. */
static int
ckpt_tensor(const asec_io_tensor **out, const asec_io_file *f, const char *path,
            const char *name, size_t len)
{
    const asec_io_tensor *t = asec_io_file_find(f, name, NULL);

    if (t == NULL)
        ASEC_FAIL(ASEC_EFORMAT, "%s: checkpoint has no tensor '%s'", path, name);
    if (t->ndim != 1 || t->shape[0] != len || t->data == NULL)
        ASEC_FAIL(ASEC_EFORMAT, "%s: checkpoint tensor '%s' is not a vector of %zu", path,
                  name, len);
    *out = t;
    return ASEC_OK;
}

int
asec_dpsgd_checkpoint_load(asec_dpsgd *d, const char *path)
{
    asec_io_file *f = NULL;
    asec_acct *acct = NULL;
    const asec_io_tensor *tp, *tm, *tv, *tperm, *te;
    const char *v;
    char want[1024];
    unsigned long long step, seed, spos, npos;
    size_t cursor, n = d->data.n;
    char mode[16], shown[256]; /* untrusted metadata quoted in a message */
    int used = 0, rc, seeded = asec_rng_get_mode(d->rs) == ASEC_RNG_SEEDED;
    unsigned char *seen = NULL;

    ASEC_TRY(asec_io_open(&f, path, ASEC_IO_SAFETENSORS, ASEC_IO_LOAD_DOUBLE, NULL));
    v = asec_io_file_meta_get(f, KEY_CONTENT);
    if (v == NULL || strcmp(v, CONTENT) != 0)
        ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT, "%s: not a DP-SGD checkpoint", path);
    if ((rc = asec_model_arch_to_json(want, sizeof want, asec_model_get_arch(d->m))) !=
        ASEC_OK)
        goto fail;
    v = asec_io_file_meta_get(f, ASEC_MODEL_ARCH_KEY);
    if (v == NULL || strcmp(v, want) != 0)
        ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL,
                       "%s: the checkpoint's architecture differs from the model's",
                       path);
    options_text(want, sizeof want, d);
    v = asec_io_file_meta_get(f, KEY_OPTIONS);
    if (v == NULL || strcmp(v, want) != 0)
        ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL,
                       "%s: the checkpoint was written with other options: %s", path,
                       asec__printable(shown, sizeof shown, v ? v : "(none)"));
    v = asec_io_file_meta_get(f, KEY_STATE);
    if (v == NULL ||
        sscanf(v,
               "{\"step\":%llu,\"cursor\":%zu,\"rng\":\"%15[a-z]\",\"seed\":%llu,"
               "\"sample_pos\":%llu,\"noise_pos\":%llu}%n",
               &step, &cursor, mode, &seed, &spos, &npos, &used) != 6 ||
        used == 0 || v[used] != '\0' || cursor > n || step > d->opts.steps)
        ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT, "%s: bad checkpoint state '%s'", path,
                       asec__printable(shown, sizeof shown, v ? v : "(none)"));
    if (seeded) {
        if (strcmp(mode, "seeded") != 0 || seed != asec_rng_get_seed(d->rs))
            ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL,
                           "%s: the checkpoint is from a %s run%s; this run is seeded "
                           "with %" PRIu64,
                           path, mode,
                           strcmp(mode, "seeded") == 0 ? " with another seed" : "",
                           asec_rng_get_seed(d->rs));
    } else if (strcmp(mode, "secure") != 0) {
        ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL,
                       "%s: the checkpoint is from a seeded run; this run is secure",
                       path);
    }
    if ((rc = ckpt_tensor(&tp, f, path, "params", d->P)) != ASEC_OK ||
        (rc = ckpt_tensor(&tm, f, path, "opt.m", d->P)) != ASEC_OK ||
        (rc = ckpt_tensor(&tv, f, path, "opt.v", d->P)) != ASEC_OK ||
        (rc = ckpt_tensor(&tperm, f, path, "perm", n)) != ASEC_OK ||
        (rc = ckpt_tensor(&te, f, path, "ema", d->P)) != ASEC_OK)
        goto fail;
    if ((seen = asec__calloc(n ? n : 1, 1)) == NULL) {
        rc = ASEC_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        double x = tperm->data[i];

        if (!(x >= 0.0 && x < (double)n && x == floor(x)) || seen[(size_t)x])
            ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT,
                           "%s: 'perm' is not a permutation of 0..%zu", path, n - 1);
        seen[(size_t)x] = 1;
    }
    v = asec_io_file_meta_get(f, KEY_ACCT);
    if (v == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT, "%s: checkpoint has no accountant", path);
    if ((rc = asec_acct_from_json(&acct, v, strlen(v))) != ASEC_OK)
        goto fail;
    if (seeded && ((rc = asec_rng_seek(d->rs, spos)) != ASEC_OK ||
                   (rc = asec_rng_seek(d->rn, npos)) != ASEC_OK))
        goto fail;

    /* Everything checked: commit. */
    memcpy(asec_model_params(d->m), tp->data, d->P * sizeof(double));
    memcpy(d->opt_m, tm->data, d->P * sizeof(double));
    memcpy(d->opt_v, tv->data, d->P * sizeof(double));
    if (d->ema != NULL)
        memcpy(d->ema, te->data, d->P * sizeof(double));
    for (size_t i = 0; i < n; i++)
        d->perm[i] = (size_t)tperm->data[i];
    d->cursor = cursor;
    d->step = step;
    asec_acct_free(d->acct);
    d->acct = acct;
    acct = NULL;
    rc = ASEC_OK;
fail:
    asec__free(seen);
    asec_acct_free(acct);
    asec_io_file_free(f);
    return rc;
}
