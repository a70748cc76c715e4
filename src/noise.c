/* noise.c - exact discrete Laplace and Gaussian noise on a lattice.
 *
 * The samplers are Canonne, Kamath and Steinke 2020, "The Discrete
 * Gaussian for Differential Privacy" (CKS20), Algorithms 1-3, written
 * twice: on GMP integers (the reference) and on 64/128-bit integers (the
 * fast path).  Both draw from the stream in exactly the same order, so
 * they return the same samples from the same stream; check_noise tests
 * that sample for sample.  Every random bit goes through src_bit() or
 * src_bits(), fed by src_word(), the single places where bytes become
 * numbers (the construction is in attnsec/noise.h).
 *
 * A Bernoulli(n/m) trial compares fair bits with the binary expansion of
 * n/m and stops at the first difference (bern64/bern_fast/bern_gmp): two
 * bits per trial on average instead of a whole uniform integer, with
 * exactly the same distribution.  The expansion depends on the value n/m
 * only, so unreduced pairs are fine.
 */
#include "config.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include <gmp.h>
#include <sodium.h>

#include "attnsec/noise.h"
#include "internal.h"

__extension__ typedef unsigned __int128 u128;

#define TWO_P52 4503599627370496.0 /* 2^52 */
#define TWO_P53 9007199254740992.0 /* 2^53 */
#define TWO_P62 4611686018427387904.0
#define ACC_LIMIT ((int64_t)1 << 62)
#define FAST_DGAUSS_LOG2_DEN 120 /* fast path: 2 a b t^2 <= 2^120 */
#define NOISE_CHUNK 512          /* noise samples drawn per call in release */
#define SIGMA2_BITS 41           /* Gaussian sigma^2 numerator in [2^40, 2^41) */
#define LAPLACE_BITS 61          /* Laplace scale numerator in [2^60, 2^61) */

/* ------------------------------------------------------------ the source */

/* Words fetched from the stream at once (asec_rng_bytes, little-endian
 * decoding: the same words as that many asec_rng_u64() calls). */
#define SRC_WORDS 8

/* The random source shared by both paths: the stream, a buffer of words
 * and a buffer of fair bits, and GMP temporaries created on first use.
 * Temporaries are named after their role; each function's comment says
 * which it clobbers. */
struct src {
    asec_rng *rng;
    uint64_t bits;  /* unused fair bits, the next one at the top */
    unsigned nbits; /* how many */
    unsigned widx;  /* next unused word of buf; SRC_WORDS: empty */
    uint64_t buf[SRC_WORDS];
    int gmp_ready;
    mpz_t tmp, u;     /* bern_gmp: scratch and remainder */
    mpz_t k, m;       /* bexp1_gmp: trial counter and d * k */
    mpz_t q, r, one;  /* bexp_gmp: floor(gamma), remainder; the constant 1 */
    mpz_t lu, lv, lx; /* dlap_gmp: U, V, X of CKS20 Alg. 2 */
    mpz_t ga, gb, gt, gn, gd, gy, gabs; /* dgauss_gmp, and callers of bexp_gmp */
    mpz_t fr, fd;                       /* fast-path fallback arguments */
};

static void
src_init(struct src *s, asec_rng *rng)
{
    memset(s, 0, sizeof *s);
    s->rng = rng;
    s->widx = SRC_WORDS;
}

static void exp1_check(struct src *s);

static void
src_gmp(struct src *s)
{
    if (s->gmp_ready)
        return;
    mpz_inits(s->tmp, s->u, s->k, s->m, s->q, s->r, s->one, s->lu, s->lv, s->lx, s->ga,
              s->gb, s->gt, s->gn, s->gd, s->gy, s->gabs, s->fr, s->fd, NULL);
    mpz_set_ui(s->one, 1);
    s->gmp_ready = 1;
    exp1_check(s);
}

static void
src_done(struct src *s)
{
    if (s->gmp_ready)
        mpz_clears(s->tmp, s->u, s->k, s->m, s->q, s->r, s->one, s->lu, s->lv, s->lx,
                   s->ga, s->gb, s->gt, s->gn, s->gd, s->gy, s->gabs, s->fr, s->fd, NULL);
    /* Unused random bits are secret: wipe them. */
    sodium_memzero(&s->bits, sizeof s->bits);
    sodium_memzero(s->buf, sizeof s->buf);
    s->nbits = 0;
    s->widx = SRC_WORDS;
    s->gmp_ready = 0;
}

/* The next 64-bit word of the stream. */
static uint64_t
src_word(struct src *s)
{
    if (s->widx == SRC_WORDS) {
        asec_rng_bytes(s->rng, s->buf, sizeof s->buf);
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
        for (unsigned i = 0; i < SRC_WORDS; i++) {
            const unsigned char *p = (const unsigned char *)&s->buf[i];
            uint64_t w = 0;

            for (int j = 7; j >= 0; j--)
                w = (w << 8) | p[j];
            s->buf[i] = w;
        }
#endif
        s->widx = 0;
    }
    return s->buf[s->widx++];
}

/* A fair bit: the next bit of the buffer, most significant first. */
static inline unsigned
src_bit(struct src *s)
{
    unsigned b;

    if (s->nbits == 0) {
        s->bits = src_word(s);
        s->nbits = 64;
    }
    b = (unsigned)(s->bits >> 63);
    s->bits <<= 1;
    s->nbits--;
    return b;
}

/* The next b fair bits (1 <= b <= 64) as an integer, the first bit drawn
 * the most significant. */
static uint64_t
src_bits(struct src *s, unsigned b)
{
    uint64_t v, w;
    unsigned h, l;

    if (b <= s->nbits) {
        v = s->bits >> (64 - b);
        s->bits = b == 64 ? 0 : s->bits << b;
        s->nbits -= b;
        return v;
    }
    /* The h < b buffered bits are the high part; l = b - h come from the
     * top of a fresh word. */
    h = s->nbits;
    l = b - h;
    w = src_word(s);
    v = h == 0 ? 0 : (s->bits >> (64 - h)) << l;
    v |= w >> (64 - l);
    s->bits = l == 64 ? 0 : w << l;
    s->nbits = 64 - l;
    return v;
}

/* ------------------------------------------------------------ GMP glue */

static void
mpz_set_u64(mpz_t z, uint64_t v)
{
#if ULONG_MAX >= UINT64_MAX
    mpz_set_ui(z, (unsigned long)v);
#else
    mpz_import(z, 1, -1, sizeof v, 0, 0, &v);
#endif
}

/* z must lie in [0, 2^64). */
static uint64_t
mpz_get_u64(const mpz_t z)
{
#if ULONG_MAX >= UINT64_MAX
    return (uint64_t)mpz_get_ui(z);
#else
    uint64_t v = 0;

    mpz_export(&v, NULL, -1, sizeof v, 0, 0, z);
    return v;
#endif
}

static void
mpz_set_u128(mpz_t z, u128 v)
{
    mpz_set_u64(z, (uint64_t)(v >> 64));
    mpz_mul_2exp(z, z, 64);
    if ((uint64_t)v != 0) {
        mpz_t lo;

        mpz_init(lo);
        mpz_set_u64(lo, (uint64_t)v);
        mpz_add(z, z, lo);
        mpz_clear(lo);
    }
}

/* ------------------------------------------------------------ uniform */

static int
bitlen128(u128 x)
{
    uint64_t hi = (uint64_t)(x >> 64), lo = (uint64_t)x;

    if (hi != 0)
        return 128 - __builtin_clzll(hi);
    return lo == 0 ? 0 : 64 - __builtin_clzll(lo);
}

/* Uniform on {0, ..., m - 1}, 1 <= m <= 2^64 - 1 (both paths): Lemire's
 * multiply-and-reject on L fair bits x (L = 32 when m < 2^32, else 64):
 * the high L bits of x m, rejected (and x drawn again) while the low L
 * bits are below 2^L mod m.  Rejection has probability below m / 2^L, so
 * the branch is predictable. */
static uint64_t
src_unif(struct src *s, uint64_t m)
{
    if (m <= 1)
        return 0;
    if (m <= UINT32_MAX) {
        /* The same on 32 fair bits (half the stream). */
        for (;;) {
            uint64_t p = src_bits(s, 32) * m;
            uint32_t lo = (uint32_t)p;

            if (lo >= m || lo >= ((uint32_t)0 - (uint32_t)m) % (uint32_t)m)
                return p >> 32;
        }
    }
    for (;;) {
        u128 p = (u128)src_bits(s, 64) * m;
        uint64_t lo = (uint64_t)p;

        if (lo >= m || lo >= ((uint64_t)0 - m) % m)
            return (uint64_t)(p >> 64);
    }
}

/* ------------------------------------------------------------ Bernoulli */

/* Bernoulli(n / m) for rationals, by lazy comparison: fair bits are the
 * binary digits U_1 U_2 ... of a uniform U in [0, 1), and the digits
 * p_1 p_2 ... of p = n / m come from long division (remainder r: p_i = 1
 * iff 2 r >= m, written r >= m - r so that nothing overflows).  At the
 * first i with U_i != p_i, U < p iff p_i = 1; so the result is p_i, and
 * P(result 1) = P(U < p) = p exactly.  Each digit agrees with probability
 * 1/2, so 2 bits are used on average, instead of a 64-bit word per trial.
 * Certain outcomes (n == 0, n >= m) draw nothing. */
/* Digits compared per block in bern64 (3 measured fastest on x86-64). */
#define BERN_BLOCK 3

static int
bern64(struct src *s, uint64_t n, uint64_t m)
{
    uint64_t r = n;

    for (;;) {
        uint64_t D = 0, x;
        unsigned i;

        if (s->nbits < BERN_BLOCK) {
            /* Fewer buffered bits than a block: one digit at a time. */
            uint64_t c = m - r;
            unsigned d = r >= c;

            r = d ? r - c : r + r; /* r < c: 2 r < m, no overflow */
            if (src_bit(s) != d)
                return (int)d;
            continue;
        }
        /* The next BERN_BLOCK digits of n/m without branches, compared
         * with as many buffered bits at once; only the bits up to the
         * first difference are used, exactly as digit by digit. */
        for (int k = 0; k < BERN_BLOCK; k++) {
            uint64_t c = m - r, d = r >= c;

            r = d ? r - c : r + r;
            D = (D << 1) | d;
        }
        x = (s->bits >> (64 - BERN_BLOCK)) ^ D;
        if (x != 0) {
            i = (unsigned)__builtin_clzll(x) - (64 - BERN_BLOCK); /* < BERN_BLOCK */
            s->bits <<= i + 1;
            s->nbits -= i + 1;
            return (int)((D >> (BERN_BLOCK - 1 - i)) & 1);
        }
        s->bits <<= BERN_BLOCK;
        s->nbits -= BERN_BLOCK;
    }
}

static int
bern_fast(struct src *s, u128 n, u128 m)
{
    u128 r = n;

    if (n == 0)
        return 0;
    if (n >= m)
        return 1;
    if (m <= UINT64_MAX)
        return bern64(s, (uint64_t)n, (uint64_t)m);
    for (;;) {
        u128 c = m - r;
        unsigned d = r >= c;

        r = d ? r - c : r + r;
        if (src_bit(s) != d)
            return (int)d;
    }
}

/* As bern_fast, on GMP integers.  n, m must not be s->u or s->tmp;
 * clobbers both. */
static int
bern_gmp(struct src *s, const mpz_t n, const mpz_t m)
{
    if (mpz_sgn(n) == 0)
        return 0;
    if (mpz_cmp(n, m) >= 0)
        return 1;
    mpz_set(s->u, n);
    for (;;) {
        unsigned d;

        mpz_sub(s->tmp, m, s->u);
        d = mpz_cmp(s->u, s->tmp) >= 0;
        if (d)
            mpz_sub(s->u, s->u, s->tmp);
        else
            mpz_mul_2exp(s->u, s->u, 1);
        if (src_bit(s) != d)
            return (int)d;
    }
}

/* ------------------------------------------------------------ Bernoulli(exp(-1)) */

/* The first EXP1_CACHED binary digits of exp(-1) = 0.0101111000101101...,
 * most significant first: floor(exp(-1) 2^256) in four words (computed
 * with exact rationals; src_gmp() checks them against exp1_floor()). */
#define EXP1_CACHED 256
static const uint64_t EXP1_DIGITS[4] = {
    UINT64_C(0x5e2d58d8b3bcdf1a), UINT64_C(0xbadec7829054f90d),
    UINT64_C(0xda9805aab56c7733), UINT64_C(0x3024b9d0a507daed)};

/* out = floor(exp(-1) 2^N), exactly.  With A = sum_{k<=M} (-1)^k M!/k!,
 * |exp(-1) - A/M!| < 1/(M+1)! < 1/M!, so floor((A-1) 2^N / M!) and
 * floor((A+1) 2^N / M!) bracket the answer; more terms are taken until
 * they agree (exp(-1) is irrational, so they do).  Uses its own GMP
 * integers. */
static void
exp1_floor(mpz_t out, unsigned long N)
{
    mpz_t a, p, lo, hi;
    unsigned long M = N / 4 + 16; /* log2(M!) > N already for every N */

    mpz_inits(a, p, lo, hi, NULL);
    for (;;) {
        mpz_set_ui(a, 0);
        mpz_set_ui(p, 1); /* M!/k! */
        for (unsigned long k = M;; k--) {
            if (k % 2 == 0)
                mpz_add(a, a, p);
            else
                mpz_sub(a, a, p);
            if (k == 0)
                break;
            mpz_mul_ui(p, p, k);
        }
        mpz_sub_ui(lo, a, 1);
        mpz_mul_2exp(lo, lo, N);
        mpz_fdiv_q(lo, lo, p);
        mpz_add_ui(hi, a, 1);
        mpz_mul_2exp(hi, hi, N);
        mpz_fdiv_q(hi, hi, p);
        if (mpz_cmp(lo, hi) == 0)
            break;
        M += 16;
    }
    mpz_set(out, lo);
    mpz_clears(a, p, lo, hi, NULL);
}

/* The reference path checks the fast path's table of exp(-1) against
 * exp1_floor() whenever it starts.  Clobbers s->tmp and s->u. */
static void
exp1_check(struct src *s)
{
    exp1_floor(s->tmp, EXP1_CACHED);
    for (int w = 3; w >= 0; w--) {
        mpz_fdiv_r_2exp(s->u, s->tmp, 64);
        ASEC_ASSERT(mpz_get_u64(s->u) == EXP1_DIGITS[w]);
        mpz_fdiv_q_2exp(s->tmp, s->tmp, 64);
    }
    ASEC_ASSERT(mpz_sgn(s->tmp) == 0);
}

/* Digits pos+1 .. pos+64 of exp(-1), the first the most significant. */
static uint64_t
exp1_window(uint64_t pos)
{
    mpz_t z;
    uint64_t v;

    if (pos + 64 <= EXP1_CACHED) {
        unsigned w = (unsigned)(pos / 64), o = (unsigned)(pos % 64);

        return o == 0 ? EXP1_DIGITS[w]
                      : (EXP1_DIGITS[w] << o) | (EXP1_DIGITS[w + 1] >> (64 - o));
    }
    /* Past the table: reached with probability 2^-192 or less. */
    mpz_init(z);
    exp1_floor(z, (unsigned long)(pos + 64));
    mpz_fdiv_r_2exp(z, z, 64);
    v = mpz_get_u64(z);
    mpz_clear(z);
    return v;
}

/* Bernoulli(exp(-1)) by lazy comparison of fair bits with the digits of
 * exp(-1) (as bern64, with the digits known in advance): the buffered
 * bits are compared with the matching digits in one XOR, and only the
 * bits up to the first difference are used (2 on average).  Replaces
 * CKS20 Alg. 1 at gamma = 1 (e trials of Bernoulli(1/K) on average) in
 * the geometric loop of Alg. 2 and for the integer part of gamma; the
 * distribution is the same. */
static int
bexp_one(struct src *s)
{
    uint64_t pos = 0;

    for (;;) {
        uint64_t c, x;
        unsigned nb, i;

        if (s->nbits == 0) {
            s->bits = src_word(s);
            s->nbits = 64;
        }
        nb = s->nbits;
        c = exp1_window(pos);
        x = s->bits ^ c;
        if (nb < 64)
            x &= ~(UINT64_MAX >> nb); /* only the nb buffered bits */
        if (x != 0) {
            i = (unsigned)__builtin_clzll(x); /* first difference, i < nb */
            s->bits = i == 63 ? 0 : s->bits << (i + 1);
            s->nbits = nb - (i + 1);
            return (int)((c >> (63 - i)) & 1);
        }
        pos += nb;
        s->bits = 0;
        s->nbits = 0;
    }
}

/* CKS20 Alg. 1: Bernoulli(exp(-r/d)) for 0 <= r <= d, d >= 1: count the
 * trials K = k0, k0+1, ... while Bernoulli(r/(d K)) succeeds; return 1 when
 * the first failure has an odd K.  k0 > 1 continues a loop the fast path
 * handed over.  r, d must not be s->k, s->m, s->u or s->tmp. */
static int
bexp1_gmp(struct src *s, const mpz_t r, const mpz_t d, u128 k0)
{
    mpz_set_u128(s->k, k0);
    for (;;) {
        mpz_mul(s->m, d, s->k);
        if (!bern_gmp(s, r, s->m))
            break;
        mpz_add_ui(s->k, s->k, 1);
    }
    return mpz_odd_p(s->k) ? 1 : 0;
}

static int
bexp1_fast(struct src *s, u128 r, u128 d)
{
    u128 k = 1, m = d; /* m = d K, kept by addition */

    if (d <= UINT64_MAX) {
        /* The common case (the first step of CKS20 Alg. 2): d K fits 64
         * bits for every K that occurs in practice. */
        uint64_t k64 = 1, m64 = (uint64_t)d;

        for (;;) {
            if (r == 0 || (r < m64 && !bern64(s, (uint64_t)r, m64)))
                return (int)(k64 & 1);
            k64++;
            if (__builtin_add_overflow(m64, (uint64_t)d, &m64))
                break;
        }
        k = k64;
        m = (u128)k64 * d; /* < 2^128: k64 < 2^64 and d < 2^64 */
    }
    for (;;) {
        if (!bern_fast(s, r, m))
            break;
        k++;
        if (__builtin_add_overflow(m, d, &m)) {
            /* d K no longer fits 128 bits: finish on GMP integers. */
            src_gmp(s);
            mpz_set_u128(s->fr, r);
            mpz_set_u128(s->fd, d);
            return bexp1_gmp(s, s->fr, s->fd, k);
        }
    }
    return (int)(k & 1);
}

/* Bernoulli(exp(-n/d)), n >= 0, d >= 1: floor(n/d) Bernoulli(exp(-1))
 * trials, then Bernoulli(exp(-(n mod d)/d)); all must succeed (CKS20,
 * remark after Alg. 1).  n, d must not be s->q, s->r or a temporary of
 * bexp1_gmp. */
static int
bexp_gmp(struct src *s, const mpz_t n, const mpz_t d)
{
    mpz_fdiv_qr(s->q, s->r, n, d);
    while (mpz_sgn(s->q) > 0) {
        if (!bexp_one(s))
            return 0;
        mpz_sub_ui(s->q, s->q, 1);
    }
    return bexp1_gmp(s, s->r, d, 1);
}

static int
bexp_fast(struct src *s, u128 n, u128 d)
{
    u128 q = 0, r = n;

    if (n >= d) { /* gamma >= 1: rare for the discrete Gaussian */
        q = n / d;
        r = n % d;
    }
    for (u128 i = 0; i < q; i++)
        if (!bexp_one(s))
            return 0;
    return bexp1_fast(s, r, d);
}

/* ------------------------------------------------------------ Laplace */

/* CKS20 Alg. 2: one discrete Laplace sample of scale t/sd into *out.
 * ASEC_ENUMERIC when it does not fit int64. */
static int
dlap_fast(struct src *s, uint64_t t, uint64_t sd, int64_t *out)
{
    for (;;) {
        u128 u = src_unif(s, t), v = 0, x, y;
        unsigned b;

        if (!bexp1_fast(s, u, t))
            continue;
        while (bexp_one(s))
            v++;
        /* X = U + t V: geometric with P(X = x) ~ exp(-x / t). */
        if (__builtin_mul_overflow((u128)t, v, &x) || __builtin_add_overflow(x, u, &x))
            ASEC_FAIL(ASEC_ENUMERIC, "discrete Laplace sample overflows 128 bits");
        y = sd == 1 ? x : x / sd; /* sd == 1 for the discrete Gaussian */
        b = src_bit(s);
        if (b == 1 && y == 0)
            continue; /* -0 would count zero twice */
        if (y > (u128)INT64_MAX)
            ASEC_FAIL(ASEC_ENUMERIC, "discrete Laplace sample does not fit int64");
        *out = b ? -(int64_t)y : (int64_t)y;
        return ASEC_OK;
    }
}

/* As dlap_fast on GMP integers; the sample goes to s->gy.  t, sd must
 * not be temporaries of this function or its callees. */
static void
dlap_gmp(struct src *s, const mpz_t t, const mpz_t sd)
{
    for (;;) {
        unsigned b;

        /* t < 2^64: the Laplace scale's numerator, or floor(sigma) + 1. */
        mpz_set_u64(s->lu, src_unif(s, mpz_get_u64(t)));
        if (!bexp1_gmp(s, s->lu, t, 1))
            continue;
        mpz_set_ui(s->lv, 0);
        while (bexp_one(s))
            mpz_add_ui(s->lv, s->lv, 1);
        mpz_mul(s->lx, t, s->lv);
        mpz_add(s->lx, s->lx, s->lu);
        mpz_fdiv_q(s->gy, s->lx, sd);
        b = src_bit(s);
        if (b == 1 && mpz_sgn(s->gy) == 0)
            continue;
        if (b == 1)
            mpz_neg(s->gy, s->gy);
        return;
    }
}

/* *out = z, or ASEC_ENUMERIC when z does not fit int64 (|z| <= 2^63-1). */
static int
mpz_to_i64(const mpz_t z, int64_t *out, const char *what)
{
    uint64_t mag;

    if (mpz_sizeinbase(z, 2) > 63)
        ASEC_FAIL(ASEC_ENUMERIC, "%s sample does not fit int64", what);
    if (mpz_sgn(z) < 0) {
        mpz_t a;

        mpz_init(a);
        mpz_abs(a, z);
        mag = mpz_get_u64(a);
        mpz_clear(a);
        *out = -(int64_t)mag;
    } else {
        *out = (int64_t)mpz_get_u64(z);
    }
    return ASEC_OK;
}

/* ------------------------------------------------------------ Gaussian */

/* floor(sqrt(x)) for a 64-bit x. */
static uint64_t
isqrt64(uint64_t x)
{
    uint64_t r = (uint64_t)sqrt((double)x);

    while ((u128)r * r > x)
        r--;
    while ((u128)(r + 1) * (r + 1) <= x)
        r++;
    return r;
}

/* The CKS20 Alg. 3 constants for sigma^2 = a/b: t = floor(sigma) + 1 and
 * the denominator 2 a b t^2 of gamma.  Returns 1 when the denominator
 * fits the fast path's bound. */
static int
dgauss_fast_params(uint64_t a, uint64_t b, uint64_t *t, u128 *den)
{
    u128 d;

    /* floor(sqrt(a/b)) = floor(sqrt(floor(a/b))). */
    *t = isqrt64(a / b) + 1;
    if (__builtin_mul_overflow((u128)a * b, (u128)2, &d) ||
        __builtin_mul_overflow(d, (u128)*t, &d) ||
        __builtin_mul_overflow(d, (u128)*t, &d))
        return 0;
    *den = d;
    return bitlen128(d) <= FAST_DGAUSS_LOG2_DEN || d == (u128)1 << FAST_DGAUSS_LOG2_DEN;
}

int
asec_noise_dgauss_fast_ok(uint64_t sigma2_num, uint64_t sigma2_den)
{
    uint64_t t;
    u128 d;

    if (sigma2_num == 0 || sigma2_den == 0)
        return 0;
    return dgauss_fast_params(sigma2_num, sigma2_den, &t, &d);
}

/* s->gn = (|s->gy| b t - a)^2, the numerator of gamma (CKS20 Alg. 3:
 * gamma = (|Y| - sigma^2/t)^2 / (2 sigma^2) = (|Y| b t - a)^2 / (2 a b t^2)). */
static void
dgauss_numer_gmp(struct src *s, const mpz_t a, const mpz_t b, const mpz_t t)
{
    mpz_abs(s->gabs, s->gy);
    mpz_mul(s->gn, s->gabs, b);
    mpz_mul(s->gn, s->gn, t);
    mpz_sub(s->gn, s->gn, a);
    mpz_mul(s->gn, s->gn, s->gn);
}

/* gamma of CKS20 Alg. 3 in lowest terms up to a constant factor: with
 * h = gcd(a, b t), gamma = (|Y| b t - a)^2 / (2 a b t^2)
 *                        = (|Y| bt_h - a_h)^2 / (2 a_h bt_h t),
 * a_h = a / h, bt_h = b t / h.  The same rational, so the same digits in
 * the lazy comparisons and the same samples; but when the caller makes
 * sigma^2 a multiple of t (asec_dpsgd does), the denominator 2 a t is
 * about 2^41 instead of 2^81 and every trial runs on 64-bit integers. */
struct dgauss_red {
    uint64_t a_h;
    u128 bt_h;
    u128 den_h; /* 2 a_h bt_h t <= 2 a b t^2 */
};

static uint64_t
gcd64(uint64_t x, uint64_t y)
{
    while (y != 0) {
        uint64_t r = x % y;

        x = y;
        y = r;
    }
    return x;
}

static struct dgauss_red
dgauss_reduce(uint64_t a, uint64_t b, uint64_t t)
{
    struct dgauss_red r;
    u128 bt = (u128)b * t; /* b < 2^64, t <= 2^32 + 1 */
    uint64_t h = gcd64(a, (uint64_t)(bt % a));

    r.a_h = a / h;
    r.bt_h = bt / h;
    r.den_h = 2 * (u128)r.a_h * r.bt_h * t; /* divides 2 a b t^2 <= 2^120 */
    return r;
}

static int
dgauss_fast(struct src *s, uint64_t a, uint64_t b, uint64_t t, u128 den,
            const struct dgauss_red *red, int64_t *out)
{
    for (;;) {
        int64_t y;
        uint64_t ay;
        u128 p, diff;
        int accept;

        ASEC_TRY(dlap_fast(s, t, 1, &y));
        ay = y < 0 ? (uint64_t)0 - (uint64_t)y : (uint64_t)y;
        diff = (u128)UINT64_MAX + 1; /* "does not fit" */
        if (red->bt_h <= UINT64_MAX) /* the product fits 128 bits */
            p = (u128)ay * (uint64_t)red->bt_h;
        else if (__builtin_mul_overflow((u128)ay, red->bt_h, &p))
            p = (u128)0 - 1; /* "does not fit" below */
        if (p != (u128)0 - 1)
            diff = p >= red->a_h ? p - red->a_h : red->a_h - p;
        if (diff <= UINT64_MAX) {
            accept = bexp_fast(s, diff * diff, red->den_h);
        } else {
            /* |Y| far in the tail (beyond ~2^64 / (b t)): gamma's
             * numerator needs more than 128 bits.  Same draws on GMP. */
            src_gmp(s);
            mpz_set_u64(s->ga, a);
            mpz_set_u64(s->gb, b);
            mpz_set_u64(s->gt, t);
            mpz_set_u128(s->gd, den);
            mpz_set_u64(s->gy, ay);
            dgauss_numer_gmp(s, s->ga, s->gb, s->gt);
            accept = bexp_gmp(s, s->gn, s->gd);
        }
        if (accept) {
            *out = y;
            return ASEC_OK;
        }
    }
}

/* One discrete Gaussian sample for sigma^2 = s->ga / s->gb, with s->gt = t
 * and s->gd = 2 a b t^2 set by the caller; the sample goes to s->gy. */
static void
dgauss_gmp(struct src *s)
{
    for (;;) {
        dlap_gmp(s, s->gt, s->one);
        dgauss_numer_gmp(s, s->ga, s->gb, s->gt);
        if (bexp_gmp(s, s->gn, s->gd))
            return;
    }
}

/* ------------------------------------------------------------ public samplers */

static int
check_path(asec_noise_path path)
{
    if (path != ASEC_NOISE_PATH_AUTO && path != ASEC_NOISE_PATH_GMP &&
        path != ASEC_NOISE_PATH_FAST)
        ASEC_FAIL(ASEC_EINVAL, "unknown noise path %d", (int)path);
    return ASEC_OK;
}

int
asec_noise_bernoulli_exp(int *out, size_t n, asec_rng *rng, uint64_t gamma_num,
                         uint64_t gamma_den, asec_noise_path path)
{
    struct src s;

    ASEC_TRY(check_path(path));
    if (gamma_den == 0)
        ASEC_FAIL(ASEC_EINVAL, "Bernoulli(exp(-gamma)): gamma denominator is 0");
    if (n > 0 && out == NULL)
        ASEC_FAIL(ASEC_EINVAL, "Bernoulli(exp(-gamma)): out is NULL");
    src_init(&s, rng);
    if (path == ASEC_NOISE_PATH_GMP) {
        src_gmp(&s);
        mpz_set_u64(s.gn, gamma_num);
        mpz_set_u64(s.gd, gamma_den);
        for (size_t i = 0; i < n; i++)
            out[i] = bexp_gmp(&s, s.gn, s.gd);
    } else {
        for (size_t i = 0; i < n; i++)
            out[i] = bexp_fast(&s, gamma_num, gamma_den);
    }
    src_done(&s);
    return ASEC_OK;
}

int
asec_noise_dlaplace(int64_t *out, size_t n, asec_rng *rng, uint64_t scale_num,
                    uint64_t scale_den, asec_noise_path path)
{
    struct src s;
    int rc = ASEC_OK;

    ASEC_TRY(check_path(path));
    if (scale_num == 0 || scale_den == 0)
        ASEC_FAIL(ASEC_EINVAL, "discrete Laplace scale %llu/%llu is not positive",
                  (unsigned long long)scale_num, (unsigned long long)scale_den);
    if ((u128)scale_num > (u128)scale_den * ((u128)1 << 52))
        ASEC_FAIL(ASEC_EINVAL, "discrete Laplace scale %llu/%llu exceeds 2^52",
                  (unsigned long long)scale_num, (unsigned long long)scale_den);
    if (n > 0 && out == NULL)
        ASEC_FAIL(ASEC_EINVAL, "discrete Laplace: out is NULL");
    src_init(&s, rng);
    if (path == ASEC_NOISE_PATH_GMP) {
        src_gmp(&s);
        mpz_set_u64(s.gt, scale_num);
        mpz_set_u64(s.gb, scale_den);
        for (size_t i = 0; i < n && rc == ASEC_OK; i++) {
            dlap_gmp(&s, s.gt, s.gb);
            rc = mpz_to_i64(s.gy, &out[i], "discrete Laplace");
        }
    } else {
        for (size_t i = 0; i < n && rc == ASEC_OK; i++)
            rc = dlap_fast(&s, scale_num, scale_den, &out[i]);
    }
    src_done(&s);
    return rc;
}

int
asec_noise_dgauss(int64_t *out, size_t n, asec_rng *rng, uint64_t sigma2_num,
                  uint64_t sigma2_den, asec_noise_path path)
{
    struct src s;
    uint64_t t;
    u128 den = 0;
    int fast, rc = ASEC_OK;

    ASEC_TRY(check_path(path));
    if (sigma2_num == 0 || sigma2_den == 0)
        ASEC_FAIL(ASEC_EINVAL, "discrete Gaussian sigma^2 = %llu/%llu is not positive",
                  (unsigned long long)sigma2_num, (unsigned long long)sigma2_den);
    if (n > 0 && out == NULL)
        ASEC_FAIL(ASEC_EINVAL, "discrete Gaussian: out is NULL");
    fast = dgauss_fast_params(sigma2_num, sigma2_den, &t, &den);
    if (path == ASEC_NOISE_PATH_FAST && !fast)
        ASEC_FAIL(ASEC_EINVAL,
                  "discrete Gaussian sigma^2 = %llu/%llu is outside the fast path's "
                  "bound 2 a b t^2 <= 2^%d",
                  (unsigned long long)sigma2_num, (unsigned long long)sigma2_den,
                  FAST_DGAUSS_LOG2_DEN);
    src_init(&s, rng);
    if (path == ASEC_NOISE_PATH_GMP || !fast) {
        src_gmp(&s);
        mpz_set_u64(s.ga, sigma2_num);
        mpz_set_u64(s.gb, sigma2_den);
        /* t = floor(sqrt(a/b)) + 1 and d = 2 a b t^2, independently of the
         * 64-bit computation above. */
        mpz_fdiv_q(s.gt, s.ga, s.gb);
        mpz_sqrt(s.gt, s.gt);
        mpz_add_ui(s.gt, s.gt, 1);
        mpz_mul(s.gd, s.ga, s.gb);
        mpz_mul_2exp(s.gd, s.gd, 1);
        mpz_mul(s.gd, s.gd, s.gt);
        mpz_mul(s.gd, s.gd, s.gt);
        for (size_t i = 0; i < n && rc == ASEC_OK; i++) {
            dgauss_gmp(&s);
            rc = mpz_to_i64(s.gy, &out[i], "discrete Gaussian");
        }
    } else {
        struct dgauss_red red = dgauss_reduce(sigma2_num, sigma2_den, t);

        for (size_t i = 0; i < n && rc == ASEC_OK; i++)
            rc = dgauss_fast(&s, sigma2_num, sigma2_den, t, den, &red, &out[i]);
    }
    src_done(&s);
    return rc;
}

/* ------------------------------------------------------------ directed rounding
 * Round-to-nearest results nudged up one ulp when the exact value lies
 * above them (the error terms are exact: TwoSum and fma residuals), so
 * every privacy-relevant quantity is an upper bound. */

static double
up(double x)
{
    return nextafter(x, INFINITY);
}

static double
down(double x)
{
    return nextafter(x, -INFINITY);
}

static double
add_up(double a, double b)
{
    double s = a + b, bp = s - a, ap = s - bp;
    double err = (a - ap) + (b - bp); /* Knuth TwoSum: a + b = s + err exactly */

    return err > 0 ? up(s) : s;
}

static double
mul_up(double a, double b)
{
    double p = a * b;

    return fma(a, b, -p) > 0 ? up(p) : p;
}

/* a / b for b > 0. */
static double
div_up(double a, double b)
{
    double q = a / b;

    return fma(-q, b, a) > 0 ? up(q) : q;
}

static double
sqrt_up(double x)
{
    double r = sqrt(x);

    return fma(r, r, -x) < 0 ? up(r) : r;
}

static double
sqrt_down(double x)
{
    double r = sqrt(x);

    return fma(r, r, -x) > 0 ? down(r) : r;
}

/* x > 0 as num/den with den = 2^m, num >= x * den, and num in
 * [2^(bits-1), 2^bits) when that needs 0 <= m <= 63.  Exact whenever x *
 * 2^m is an integer, which holds for bits >= 53 or x with few mantissa
 * bits. */
static int
dyadic_up(double x, int bits, uint64_t *num, uint64_t *den)
{
    int m = bits - 1 - ilogb(x);
    double v;

    if (m < 0)
        m = 0;
    if (m > 63)
        m = 63;
    v = ceil(ldexp(x, m));
    if (!(v >= 1.0) || v >= 0x1p63)
        ASEC_FAIL(ASEC_EINVAL, "noise parameter %.17g does not fit a 63-bit rational", x);
    *num = (uint64_t)v;
    *den = (uint64_t)1 << m;
    return ASEC_OK;
}

/* ------------------------------------------------------------ lattice */

static int
is_pow2(double g)
{
    int e;

    return isfinite(g) && g >= DBL_MIN && frexp(g, &e) == 0.5;
}

int
asec_noise_granularity(double *out, double scale, int bits)
{
    int e, c;
    double m;

    if (!isfinite(scale) || !(scale > 0))
        ASEC_FAIL(ASEC_EINVAL, "noise scale %g is not finite and positive", scale);
    if (bits < 1 || bits > 50)
        ASEC_FAIL(ASEC_EINVAL, "granularity bits %d outside [1, 50]", bits);
    m = frexp(scale, &e);       /* scale = m 2^e, m in [0.5, 1) */
    c = (m == 0.5) ? e - 1 : e; /* ceil(log2(scale)) */
    if (c - bits < DBL_MIN_EXP - 1 || c - bits + 53 > DBL_MAX_EXP - 1)
        ASEC_FAIL(ASEC_EINVAL,
                  "noise scale %g gives a granularity 2^%d outside the "
                  "double range",
                  scale, c - bits);
    *out = ldexp(1.0, c - bits);
    return ASEC_OK;
}

int
asec_noise_snap(int64_t *out, const double *x, size_t n, double g)
{
    if (!is_pow2(g))
        ASEC_FAIL(ASEC_EINVAL, "granularity %g is not a positive power of two", g);
    if (n > 0 && (out == NULL || x == NULL))
        ASEC_FAIL(ASEC_EINVAL, "snap: NULL array");
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            ASEC_FAIL(ASEC_ENUMERIC, "x[%zu] is not finite", i);
        if (fabs(x[i] / g) > TWO_P52)
            ASEC_FAIL(ASEC_ELIMIT, "x[%zu] = %g exceeds the lattice range 2^52 g = %g", i,
                      x[i], TWO_P52 * g);
    }
    /* x / g is exact (a power of two), and round() rounds half away from
     * zero, as RELIABILITY.md §3.2 asks. */
    for (size_t i = 0; i < n; i++)
        out[i] = (int64_t)round(x[i] / g);
    return ASEC_OK;
}

int
asec_noise_unsnap(double *out, const int64_t *v, size_t n, double g)
{
    if (!is_pow2(g))
        ASEC_FAIL(ASEC_EINVAL, "granularity %g is not a positive power of two", g);
    if (n > 0 && (out == NULL || v == NULL))
        ASEC_FAIL(ASEC_EINVAL, "unsnap: NULL array");
    for (size_t i = 0; i < n; i++) {
        const int64_t lim = (int64_t)1 << 53;
        double d = (double)v[i];

        /* Compare as integers: (double)(2^53 + 1) rounds to 2^53. */
        if (v[i] > lim || v[i] < -lim)
            ASEC_FAIL(ASEC_ELIMIT, "lattice value %lld at [%zu] exceeds 2^53",
                      (long long)v[i], i);
        if (!isfinite(d * g))
            ASEC_FAIL(ASEC_ELIMIT, "lattice value %lld at [%zu] times %g overflows",
                      (long long)v[i], i, g);
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (double)v[i] * g;
    return ASEC_OK;
}

int
asec_noise_lattice_sensitivity(double *out, double sens, asec_noise_norm norm, size_t d,
                               double g, asec_noise_snapping how)
{
    double dd, root, term;

    if (!isfinite(sens) || !(sens > 0))
        ASEC_FAIL(ASEC_EINVAL, "sensitivity %g is not finite and positive", sens);
    if (!isfinite(g) || !(g > 0))
        ASEC_FAIL(ASEC_EINVAL, "granularity %g is not finite and positive", g);
    if (d == 0)
        ASEC_FAIL(ASEC_EINVAL, "dimension is 0");
    if (norm != ASEC_NOISE_L1 && norm != ASEC_NOISE_L2)
        ASEC_FAIL(ASEC_EINVAL, "unknown norm %d", (int)norm);
    if (how != ASEC_NOISE_SNAP_QUERY && how != ASEC_NOISE_SNAP_EXAMPLE)
        ASEC_FAIL(ASEC_EINVAL, "unknown snapping %d", (int)how);
    dd = (double)d;
    if (dd >= TWO_P53)
        dd = up(dd); /* (double)d may have rounded down */
    root = norm == ASEC_NOISE_L2 ? sqrt_up(dd) : dd;
    /* Each coordinate moves by at most g/2 when snapped: d^(1/p) g / 2
     * per side; a query's two neighbours both move (QUERY), an example
     * enters the exact sum once (EXAMPLE). */
    term = mul_up(root, g);
    if (how == ASEC_NOISE_SNAP_EXAMPLE)
        term *= 0.5;
    *out = add_up(sens, term);
    if (!isfinite(*out))
        ASEC_FAIL(ASEC_EINVAL, "effective sensitivity overflows");
    return ASEC_OK;
}

int
asec_noise_acc_add(int64_t *acc, const int64_t *v, size_t n)
{
    if (n > 0 && (acc == NULL || v == NULL))
        ASEC_FAIL(ASEC_EINVAL, "accumulate: NULL array");
    for (size_t i = 0; i < n; i++) {
        int64_t s;

        if (__builtin_add_overflow(acc[i], v[i], &s) || s > ACC_LIMIT || s < -ACC_LIMIT)
            ASEC_FAIL(ASEC_ELIMIT,
                      "accumulator overflow at [%zu]: %lld + %lld leaves [-2^62, 2^62]",
                      i, (long long)acc[i], (long long)v[i]);
    }
    for (size_t i = 0; i < n; i++)
        acc[i] += v[i];
    return ASEC_OK;
}

int
asec_noise_acc_check(size_t batch, double clip, double g)
{
    double per, total;

    if (!isfinite(clip) || !(clip > 0) || !isfinite(g) || !(g > 0))
        ASEC_FAIL(ASEC_EINVAL, "clip %g and granularity %g must be finite and positive",
                  clip, g);
    per = add_up(div_up(clip, g), 1.0);
    total = mul_up((double)batch, per);
    if (!(total < TWO_P62))
        ASEC_FAIL(ASEC_ELIMIT,
                  "batch %zu of vectors clipped to %g at granularity %g may reach %.3g "
                  "lattice units, beyond the accumulator's 2^62",
                  batch, clip, g, total);
    return ASEC_OK;
}

/* ------------------------------------------------------------ privacy */

/* CKS20 Cor. 13 at order alpha > 1; ld = log(1/delta). */
static double
cks_epsilon(double rho, double ld, double alpha)
{
    return alpha * rho + log1p(-1.0 / alpha) + (ld - log(alpha)) / (alpha - 1.0);
}

int
asec_noise_zcdp_epsilon(double *out, double rho, double delta)
{
    const double golden = 0.6180339887498949;
    double ld, best, bu = 0.0, bv = INFINITY, lo, hi;

    if (!isfinite(rho) || rho < 0)
        ASEC_FAIL(ASEC_EINVAL, "rho %g is not finite and non-negative", rho);
    if (!(delta > 0 && delta < 1))
        ASEC_FAIL(ASEC_EINVAL, "delta %g outside (0, 1)", delta);
    if (rho == 0) {
        *out = 0.0;
        return ASEC_OK;
    }
    ld = -log(delta);
    best = rho + 2.0 * sqrt(rho * ld);
    /* alpha = 1 + e^u: a grid over u, then golden-section search around
     * the best grid point.  Any alpha is a valid bound. */
    for (int i = 0; i <= 400; i++) {
        double u = -20.0 + 50.0 * i / 400.0;
        double v = cks_epsilon(rho, ld, 1.0 + exp(u));

        if (v < bv) {
            bv = v;
            bu = u;
        }
    }
    lo = bu - 0.125;
    hi = bu + 0.125;
    for (int i = 0; i < 80; i++) {
        double u1 = hi - golden * (hi - lo), u2 = lo + golden * (hi - lo);
        double v1 = cks_epsilon(rho, ld, 1.0 + exp(u1));
        double v2 = cks_epsilon(rho, ld, 1.0 + exp(u2));

        if (v1 < bv)
            bv = v1;
        if (v2 < bv)
            bv = v2;
        if (v1 < v2)
            hi = u2;
        else
            lo = u1;
    }
    if (bv < best)
        best = bv;
    /* Cover the rounding of the few operations above. */
    best *= 1.0 + 8.0 * DBL_EPSILON;
    *out = best > 0 ? best : 0.0;
    return ASEC_OK;
}

/* The largest rho (within 1e-12 relative) whose epsilon at delta is at
 * most eps. */
static int
rho_for_epsilon(double *out, double eps, double delta)
{
    double lo, hi, e;
    int i;

    hi = eps;
    for (i = 0; i < 2000; i++) {
        ASEC_TRY(asec_noise_zcdp_epsilon(&e, hi, delta));
        if (e > eps)
            break;
        hi *= 2.0;
    }
    lo = hi;
    for (i = 0; i < 2000; i++) {
        ASEC_TRY(asec_noise_zcdp_epsilon(&e, lo, delta));
        if (e <= eps)
            break;
        lo *= 0.5;
        if (!(lo > 1e-300))
            ASEC_FAIL(ASEC_ENUMERIC, "no rho reaches epsilon %g at delta %g", eps, delta);
    }
    if (i == 2000 || !(hi > lo) || !isfinite(hi))
        ASEC_FAIL(ASEC_ENUMERIC, "cannot bracket rho for epsilon %g at delta %g", eps,
                  delta);
    for (i = 0; i < 200 && hi - lo > 1e-12 * lo; i++) {
        double mid = sqrt(lo * hi);

        if (!(mid > lo && mid < hi))
            mid = lo + 0.5 * (hi - lo);
        ASEC_TRY(asec_noise_zcdp_epsilon(&e, mid, delta));
        if (e <= eps)
            lo = mid;
        else
            hi = mid;
    }
    *out = lo;
    return ASEC_OK;
}

/* ------------------------------------------------------------ release */

int
asec_noise_plan(asec_noise_result *r, const asec_noise_options *o, size_t n)
{
    int bits = o->granularity_bits == 0 ? ASEC_NOISE_DEFAULT_BITS : o->granularity_bits;
    int gaussian = o->mech == ASEC_NOISE_GAUSSIAN;
    double nominal, g, sens_eff, lat;

    if (o->version != ASEC_NOISE_OPTIONS_VERSION)
        ASEC_FAIL(ASEC_EINVAL, "noise options version %u, expected %u", o->version,
                  ASEC_NOISE_OPTIONS_VERSION);
    if (o->mech != ASEC_NOISE_GAUSSIAN && o->mech != ASEC_NOISE_LAPLACE)
        ASEC_FAIL(ASEC_EINVAL, "unknown mechanism %d", (int)o->mech);
    if (o->norm != ASEC_NOISE_L1 && o->norm != ASEC_NOISE_L2)
        ASEC_FAIL(ASEC_EINVAL, "unknown norm %d", (int)o->norm);
    ASEC_TRY(check_path(o->path));
    if (n == 0)
        ASEC_FAIL(ASEC_EINVAL, "nothing to release: the array is empty");
    if (!isfinite(o->sensitivity) || !(o->sensitivity > 0))
        ASEC_FAIL(ASEC_EINVAL, "sensitivity %g is not finite and positive",
                  o->sensitivity);
    if (!isfinite(o->scale) || o->scale < 0)
        ASEC_FAIL(ASEC_EINVAL, "noise scale %g is not finite and non-negative", o->scale);
    if (o->scale == 0 && (!isfinite(o->epsilon) || !(o->epsilon > 0)))
        ASEC_FAIL(ASEC_EINVAL, "epsilon %g is not finite and positive", o->epsilon);
    if (bits < 1 || bits > (gaussian ? 30 : 50))
        ASEC_FAIL(ASEC_EINVAL, "granularity bits %d outside [1, %d]", bits,
                  gaussian ? 30 : 50);
    memset(r, 0, sizeof *r);
    r->granularity_bits = bits;
    r->sensitivity = o->sensitivity;
    r->delta = o->delta;

    if (gaussian) {
        double rho_target = 0, s2, sigma;

        if (!(o->delta == 0 || (o->delta > 0 && o->delta < 1)))
            ASEC_FAIL(ASEC_EINVAL, "delta %g outside [0, 1)", o->delta);
        if (o->scale == 0) {
            if (o->delta == 0)
                ASEC_FAIL(ASEC_EINVAL, "the Gaussian mechanism needs delta in (0, 1) to "
                                       "calibrate sigma from epsilon");
            ASEC_TRY(rho_for_epsilon(&rho_target, o->epsilon, o->delta));
            nominal = div_up(o->sensitivity, sqrt_down(2.0 * rho_target));
        } else {
            nominal = o->scale;
        }
        ASEC_TRY(asec_noise_granularity(&g, nominal, bits));
        /* An L1 bound is also an L2 bound; snapping moves each side by
         * sqrt(d) g / 2 in L2. */
        ASEC_TRY(asec_noise_lattice_sensitivity(&sens_eff, o->sensitivity, ASEC_NOISE_L2,
                                                n, g, ASEC_NOISE_SNAP_QUERY));
        sigma = o->scale > 0 ? o->scale : div_up(sens_eff, sqrt_down(2.0 * rho_target));
        lat = sigma / g; /* exact: g is a power of two */
        s2 = mul_up(lat, lat);
        if (!isfinite(s2))
            ASEC_FAIL(ASEC_EINVAL, "sigma %g too large", sigma);
        ASEC_TRY(dyadic_up(s2, SIGMA2_BITS, &r->scale_num, &r->scale_den));
        /* sigma^2 = num/den: num < 2^63 and den a power of two, so the
         * quotient is exact when num < 2^53 (always, for these bits). */
        s2 = (double)r->scale_num / (double)r->scale_den;
        r->scale = sqrt(s2) * g;
        lat = sens_eff / g;
        r->rho = div_up(mul_up(lat, lat), 2.0 * s2);
        if (o->delta > 0)
            ASEC_TRY(asec_noise_zcdp_epsilon(&r->epsilon, r->rho, o->delta));
        else
            r->epsilon = INFINITY;
        if (o->path == ASEC_NOISE_PATH_GMP)
            r->path = ASEC_NOISE_PATH_GMP;
        else if (asec_noise_dgauss_fast_ok(r->scale_num, r->scale_den))
            r->path = ASEC_NOISE_PATH_FAST;
        else if (o->path == ASEC_NOISE_PATH_FAST)
            ASEC_FAIL(ASEC_EINVAL,
                      "sigma^2 = %llu/%llu lattice units is outside the fast "
                      "path's bound",
                      (unsigned long long)r->scale_num, (unsigned long long)r->scale_den);
        else
            r->path = ASEC_NOISE_PATH_GMP;
    } else {
        double b, eps;

        if (o->delta != 0)
            ASEC_FAIL(ASEC_EINVAL,
                      "the Laplace mechanism is pure epsilon-DP: delta must "
                      "be 0, not %g",
                      o->delta);
        if (o->norm != ASEC_NOISE_L1)
            ASEC_FAIL(ASEC_EINVAL, "the Laplace mechanism needs an L1 sensitivity");
        nominal = o->scale > 0 ? o->scale : div_up(o->sensitivity, o->epsilon);
        ASEC_TRY(asec_noise_granularity(&g, nominal, bits));
        ASEC_TRY(asec_noise_lattice_sensitivity(&sens_eff, o->sensitivity, ASEC_NOISE_L1,
                                                n, g, ASEC_NOISE_SNAP_QUERY));
        b = o->scale > 0 ? o->scale : div_up(sens_eff, o->epsilon);
        lat = b / g;
        if (!(lat <= ASEC_NOISE_MAX_LAPLACE_SCALE))
            ASEC_FAIL(ASEC_EINVAL,
                      "Laplace scale %g is %g lattice units, beyond 2^52 "
                      "(use fewer granularity bits)",
                      b, lat);
        ASEC_TRY(dyadic_up(lat, LAPLACE_BITS, &r->scale_num, &r->scale_den));
        /* num came from a double and den is a power of two: exact. */
        lat = (double)r->scale_num / (double)r->scale_den;
        r->scale = lat * g;
        eps = div_up(sens_eff / g, lat);
        if (o->scale == 0 && eps > o->epsilon)
            eps = o->epsilon; /* b >= sens_eff / epsilon held before rounding */
        r->epsilon = eps;
        r->rho = mul_up(0.5 * eps, eps);
        r->path =
            o->path == ASEC_NOISE_PATH_GMP ? ASEC_NOISE_PATH_GMP : ASEC_NOISE_PATH_FAST;
    }
    r->granularity = g;
    r->sensitivity_eff = sens_eff;
    return ASEC_OK;
}

int
asec_noise_release(double *out, const double *x, size_t n, const asec_noise_options *opts,
                   asec_rng *rng, asec_noise_result *res)
{
    asec_noise_result plan;
    int64_t *v = NULL, z[NOISE_CHUNK];
    size_t bytes;
    int rc;

    ASEC_TRY(asec_noise_plan(&plan, opts, n));
    if (out == NULL || x == NULL)
        ASEC_FAIL(ASEC_EINVAL, "release: NULL array");
    if (asec__mul_size(n, sizeof *v, &bytes) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "release of %zu values: size overflows", n);
    v = asec__malloc(bytes);
    if (v == NULL)
        return ASEC_ENOMEM;
    /* Every data-dependent check happens here, before any noise exists. */
    rc = asec_noise_snap(v, x, n, plan.granularity);
    if (rc != ASEC_OK)
        goto done;
    for (size_t i = 0; i < n; i += NOISE_CHUNK) {
        size_t m = n - i < NOISE_CHUNK ? n - i : NOISE_CHUNK;

        if (opts->mech == ASEC_NOISE_GAUSSIAN)
            rc = asec_noise_dgauss(z, m, rng, plan.scale_num, plan.scale_den, plan.path);
        else
            rc =
                asec_noise_dlaplace(z, m, rng, plan.scale_num, plan.scale_den, plan.path);
        if (rc != ASEC_OK)
            goto done;
        for (size_t j = 0; j < m; j++) {
            /* |v| <= 2^52 and |z| <= 2^52 keep the sum exact in double. */
            if (z[j] > (int64_t)1 << 52 || z[j] < -((int64_t)1 << 52)) {
                rc = asec__fail(ASEC_ELIMIT, "noise sample beyond 2^52 lattice units");
                goto done;
            }
            v[i + j] += z[j];
        }
    }
    rc = asec_noise_unsnap(out, v, n, plan.granularity);
    if (rc == ASEC_OK && res != NULL)
        *res = plan;
done:
    sodium_memzero(z, sizeof z);
    sodium_memzero(v, bytes);
    asec__free(v);
    return rc;
}
