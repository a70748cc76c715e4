/* rng.c - secure and seeded random streams (see attnsec/rng.h for the
 * exact construction of every value from bytes). */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "attnsec/rng.h"
#include "internal.h"

#define KEY_BYTES 32
#define BUF_BYTES 4096 /* 64 ChaCha20 blocks, or one getrandom call, per refill */
#define BLOCK_BYTES 64
#define LABEL_MAX 255
#define BLOCKS_PER_EPOCH ((uint64_t)1 << 32) /* the IETF counter is 32 bits */

__extension__ typedef unsigned __int128 u128;

struct asec_rng {
    asec_rng_mode mode;
    uint64_t seed;
    unsigned char *key;       /* seeded: current stream key (sodium_malloc) */
    unsigned char *base_key;  /* seeded: epoch-0 key, parent of children */
    uint64_t block;           /* seeded: next block index of the whole stream */
    uint64_t consumed;        /* bytes handed out */
    size_t pos;               /* next unread byte in buf */
    size_t fill;              /* valid bytes in buf */
    unsigned long fork_gen;   /* secure: fork generation the buffer belongs to */
    unsigned char buf[BUF_BYTES];
    char label[2 * LABEL_MAX + 2];
};

/* Secure buffers must not be shared between a parent and a forked child:
 * the child handler bumps the generation, and a generator whose buffer is
 * from an older generation throws it away (RELIABILITY.md §4.1). */
static volatile unsigned long fork_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
on_fork_child(void)
{
    fork_generation++;
}

static void
register_atfork(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

static const unsigned char drg_nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {
    'L', 'i', 'b', 's', 'o', 'd', 'i', 'u', 'm', 'D', 'R', 'G'};

static int
rng_new(asec_rng **out, asec_rng_mode mode)
{
    asec_rng *r;

    *out = NULL;
    ASEC_TRY(asec__ensure_init());
    r = asec__calloc(1, sizeof *r);
    if (r == NULL)
        return ASEC_ENOMEM;
    r->mode = mode;
    pthread_once(&atfork_once, register_atfork);
    if (mode == ASEC_RNG_SEEDED) {
        /* Key material in guarded memory, wiped by sodium_free(). */
        r->key = sodium_malloc(KEY_BYTES);
        r->base_key = sodium_malloc(KEY_BYTES);
        if (r->key == NULL || r->base_key == NULL) {
            sodium_free(r->key);
            sodium_free(r->base_key);
            asec__free(r);
            ASEC_FAIL(ASEC_ENOMEM, "cannot allocate guarded memory for an RNG key");
        }
    }
    *out = r;
    return ASEC_OK;
}

/* key_out = BLAKE2b-256(key = parent, message = msg). */
static void
keyed_hash(unsigned char *key_out, const unsigned char *parent, const void *msg,
           size_t len)
{
    crypto_generichash(key_out, KEY_BYTES, msg, len, parent, KEY_BYTES);
}

static int
check_label(const char *label)
{
    if (strlen(label) > LABEL_MAX)
        ASEC_FAIL(ASEC_EINVAL, "RNG stream label longer than %d bytes", LABEL_MAX);
    return ASEC_OK;
}

int
asec_rng_alloc_secure(asec_rng **out)
{
    return rng_new(out, ASEC_RNG_SECURE);
}

int
asec_rng_alloc_seeded(asec_rng **out, uint64_t seed, const char *label)
{
    static const char domain[] = "attnsec-seed-v1";
    unsigned char msg[sizeof domain - 1 + 8];
    unsigned char k0[KEY_BYTES];
    asec_rng *r;

    *out = NULL;
    ASEC_TRY(check_label(label));
    ASEC_TRY(rng_new(&r, ASEC_RNG_SEEDED));
    memcpy(msg, domain, sizeof domain - 1);
    for (int i = 0; i < 8; i++)
        msg[sizeof domain - 1 + (size_t)i] = (unsigned char)(seed >> (8 * i));
    crypto_generichash(k0, KEY_BYTES, msg, sizeof msg, NULL, 0);
    keyed_hash(r->base_key, k0, label, strlen(label));
    memcpy(r->key, r->base_key, KEY_BYTES);
    sodium_memzero(k0, sizeof k0);
    r->seed = seed;
    memcpy(r->label, label, strlen(label) + 1);
    *out = r;
    return ASEC_OK;
}

int
asec_rng_derive(asec_rng **out, const asec_rng *parent, const char *label)
{
    asec_rng *r;
    size_t plen = strlen(parent->label), llen = strlen(label);

    *out = NULL;
    ASEC_TRY(check_label(label));
    if (parent->mode == ASEC_RNG_SECURE)
        return asec_rng_alloc_secure(out);
    if (plen + 1 + llen >= sizeof r->label)
        ASEC_FAIL(ASEC_EINVAL, "RNG stream label '%s/%s' too long", parent->label, label);
    ASEC_TRY(rng_new(&r, ASEC_RNG_SEEDED));
    keyed_hash(r->base_key, parent->base_key, label, llen);
    memcpy(r->key, r->base_key, KEY_BYTES);
    r->seed = parent->seed;
    memcpy(r->label, parent->label, plen);
    r->label[plen] = '/';
    memcpy(r->label + plen + 1, label, llen + 1);
    *out = r;
    return ASEC_OK;
}

void
asec_rng_free(asec_rng *rng)
{
    if (rng == NULL)
        return;
    sodium_free(rng->key);
    sodium_free(rng->base_key);
    sodium_memzero(rng->buf, sizeof rng->buf);
    asec__free(rng);
}

asec_rng_mode
asec_rng_get_mode(const asec_rng *rng)
{
    return rng->mode;
}

uint64_t
asec_rng_get_seed(const asec_rng *rng)
{
    return rng->mode == ASEC_RNG_SEEDED ? rng->seed : 0;
}

const char *
asec_rng_get_label(const asec_rng *rng)
{
    return rng->label;
}

const char *
asec_rng_algorithm(const asec_rng *rng)
{
    if (rng->mode == ASEC_RNG_SECURE)
        return "OS CSPRNG via libsodium randombytes_buf";
    return "ChaCha20-IETF via randombytes_buf_deterministic, BLAKE2b-keyed streams";
}

/* Set the stream key for the epoch holding block r->block. */
static void
set_epoch_key(asec_rng *r)
{
    uint64_t epoch = r->block / BLOCKS_PER_EPOCH;
    unsigned char msg[5 + 8] = {'e', 'p', 'o', 'c', 'h'};

    if (epoch == 0) {
        memcpy(r->key, r->base_key, KEY_BYTES);
        return;
    }
    for (int i = 0; i < 8; i++)
        msg[5 + i] = (unsigned char)(epoch >> (8 * i));
    keyed_hash(r->key, r->base_key, msg, sizeof msg);
}

static void
refill(asec_rng *r)
{
    if (r->mode == ASEC_RNG_SECURE) {
        randombytes_buf(r->buf, BUF_BYTES);
        r->fork_gen = fork_generation;
    } else {
        /* Stay inside one epoch per call: the counter must not wrap. */
        uint64_t in_epoch = r->block % BLOCKS_PER_EPOCH;
        uint64_t left = BLOCKS_PER_EPOCH - in_epoch;
        size_t nblocks = BUF_BYTES / BLOCK_BYTES;

        if (left < nblocks)
            nblocks = (size_t)left;
        if (in_epoch == 0)
            set_epoch_key(r);
        memset(r->buf, 0, nblocks * BLOCK_BYTES);
        crypto_stream_chacha20_ietf_xor_ic(r->buf, r->buf, nblocks * BLOCK_BYTES,
                                           drg_nonce, (uint32_t)in_epoch, r->key);
        r->block += nblocks;
        r->fill = nblocks * BLOCK_BYTES;
        r->pos = 0;
        return;
    }
    r->fill = BUF_BYTES;
    r->pos = 0;
}

/* Drop secure bytes buffered before a fork. */
static void
check_fork(asec_rng *r)
{
    if (r->mode == ASEC_RNG_SECURE && r->fork_gen != fork_generation) {
        sodium_memzero(r->buf, sizeof r->buf);
        r->pos = r->fill = 0;
        r->fork_gen = fork_generation;
    }
}

void
asec_rng_bytes(asec_rng *rng, void *buf, size_t n)
{
    unsigned char *out = buf;

    check_fork(rng);
    while (n > 0) {
        size_t take;

        if (rng->pos == rng->fill)
            refill(rng);
        take = rng->fill - rng->pos;
        if (take > n)
            take = n;
        memcpy(out, rng->buf + rng->pos, take);
        /* Bytes handed out are not kept in the buffer. */
        sodium_memzero(rng->buf + rng->pos, take);
        rng->pos += take;
        rng->consumed += take;
        out += take;
        n -= take;
    }
}

uint64_t
asec_rng_tell(const asec_rng *rng)
{
    return rng->consumed;
}

int
asec_rng_seek(asec_rng *rng, uint64_t position)
{
    if (rng->mode != ASEC_RNG_SEEDED)
        ASEC_FAIL(ASEC_EINVAL, "only a seeded RNG stream can seek");
    rng->block = position / BLOCK_BYTES;
    rng->pos = rng->fill = 0;
    rng->consumed = rng->block * BLOCK_BYTES;
    if (rng->block % BLOCKS_PER_EPOCH != 0)
        set_epoch_key(rng);
    if (position % BLOCK_BYTES != 0) {
        unsigned char skip[BLOCK_BYTES];

        asec_rng_bytes(rng, skip, (size_t)(position % BLOCK_BYTES));
    }
    return ASEC_OK;
}

uint64_t
asec_rng_u64(asec_rng *rng)
{
    unsigned char b[8];
    uint64_t v = 0;

    check_fork(rng);
    if (rng->fill - rng->pos >= 8) {
        memcpy(b, rng->buf + rng->pos, 8);
        memset(rng->buf + rng->pos, 0, 8);
        rng->pos += 8;
        rng->consumed += 8;
    } else {
        asec_rng_bytes(rng, b, 8);
    }
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

double
asec_rng_uniform(asec_rng *rng)
{
    return (double)(asec_rng_u64(rng) >> 11) * 0x1.0p-53;
}

double
asec_rng_uniform_pos(asec_rng *rng)
{
    return ((double)(asec_rng_u64(rng) >> 11) + 0.5) * 0x1.0p-53;
}

uint64_t
asec_rng_bounded(asec_rng *rng, uint64_t n)
{
    /* Lemire 2019, "Fast random integer generation in an interval":
     * m = x * n as a 128-bit product; reject when the low half falls in
     * the 2^64 mod n short interval. */
    u128 m;
    uint64_t lo;

    if (n == 0)
        return 0;
    m = (u128)asec_rng_u64(rng) * n;
    lo = (uint64_t)m;
    if (lo < n) {
        uint64_t threshold = (0 - n) % n;

        while (lo < threshold) {
            m = (u128)asec_rng_u64(rng) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

/* ------------------------------------------------------------ ziggurat
 * Marsaglia and Tsang 2000, "The Ziggurat Method for Generating Random
 * Variables", with 256 layers of area v each under f(x) = exp(-x^2 / 2).
 * Layer 0 is the base strip: the rectangle [0, r] x [0, f(r)] plus the
 * tail beyond r, drawn as a rectangle of virtual width zx[0] = v / f(r).
 * Layer i >= 1 spans [0, zx[i]] horizontally, heights f(zx[i])..f(zx[i+1]). */
#define ZIG_LAYERS 256
#define ZIG_R 3.6541528853610088
#define ZIG_V 0.00492867323399

static double zx[ZIG_LAYERS + 1];    /* layer widths, decreasing; zx[256] = 0 */
static double zratio[ZIG_LAYERS];    /* zx[i + 1] / zx[i]: fast acceptance */
static double zf[ZIG_LAYERS + 1];    /* f(zx[i]) */
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static void
zig_init(void)
{
    double f_r = exp(-0.5 * ZIG_R * ZIG_R);

    zx[0] = ZIG_V / f_r;
    zx[1] = ZIG_R;
    for (int i = 1; i < ZIG_LAYERS - 1; i++) {
        double y = exp(-0.5 * zx[i] * zx[i]) + ZIG_V / zx[i];

        zx[i + 1] = sqrt(-2.0 * log(y));
    }
    zx[ZIG_LAYERS] = 0.0;
    for (int i = 0; i <= ZIG_LAYERS; i++)
        zf[i] = exp(-0.5 * zx[i] * zx[i]);
    zf[0] = f_r; /* the base strip's top is f(r), not f(zx[0]) */
    for (int i = 0; i < ZIG_LAYERS; i++)
        zratio[i] = zx[i + 1] / zx[i];
    zratio[0] = ZIG_R / zx[0];
}

static double
zig_tail(asec_rng *rng)
{
    /* Marsaglia 1964: x = -log(u1) / r, y = -log(u2), accept 2y > x^2. */
    for (;;) {
        double x = -log(asec_rng_uniform_pos(rng)) / ZIG_R;
        double y = -log(asec_rng_uniform_pos(rng));

        if (2.0 * y > x * x)
            return ZIG_R + x;
    }
}

double
asec_rng_normal(asec_rng *rng)
{
    pthread_once(&zig_once, zig_init);
    for (;;) {
        uint64_t bits = asec_rng_u64(rng);
        unsigned layer = (unsigned)(bits & 0xff);
        double sign = (bits & 0x100) ? -1.0 : 1.0;
        double u = (double)(bits >> 11) * 0x1.0p-53; /* [0, 1) */
        double z = u * zx[layer];

        if (u < zratio[layer])
            return sign * z;
        if (layer == 0)
            return sign * zig_tail(rng);
        /* Wedge: accept when a uniform height under the layer falls below f(z). */
        if (zf[layer] + asec_rng_uniform(rng) * (zf[layer + 1] - zf[layer]) <
            exp(-0.5 * z * z))
            return sign * z;
    }
}

void
asec_rng_normal_fill(asec_rng *rng, double *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = asec_rng_normal(rng);
}

double
asec_rng_laplace(asec_rng *rng)
{
    uint64_t bits = asec_rng_u64(rng);
    double u = ((double)(bits >> 11) + 0.5) * 0x1.0p-53;

    return (bits & 1) ? log(u) : -log(u);
}
