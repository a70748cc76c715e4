/* attnsec/rng.h - the library's only source of randomness.
 *
 * Two modes (DESIGN.md, "Randomness"):
 *
 *   secure   bytes from the OS CSPRNG through libsodium's randombytes_buf()
 *            (getrandom on Linux).  The only mode for DP releases.
 *   seeded   a reproducible ChaCha20 stream.  For a user seed N and a
 *            stream label L (any string, e.g. "dlg/init"):
 *              k0  = BLAKE2b-256(message = "attnsec-seed-v1" || le64(N))
 *              key = BLAKE2b-256(key = k0, message = L)
 *            and the stream is ChaCha20-IETF(key, nonce = "LibsodiumDRG")
 *            keystream from block counter 0 upward: byte for byte what
 *            randombytes_buf_deterministic(buf, n, key) returns, extended
 *            past its first call by continuing the block counter.  After
 *            2^32 blocks (256 GiB) the stream re-keys with
 *            key_e = BLAKE2b-256(key = key, message = "epoch" || le64(e)).
 *            asec_rng_derive() gives a child stream keyed
 *            BLAKE2b-256(key = parent key, message = label), so streams
 *            with different labels are never correlated.
 *
 * How values are built from the byte stream (both modes):
 *   u64        8 bytes, little-endian.
 *   uniform    (u64 >> 11) * 2^-53: every multiple of 2^-53 in [0, 1).
 *   uniform_pos ((u64 >> 11) + 0.5) * 2^-53: in (0, 1), never 0 or 1.
 *   bounded(n) Lemire's multiply-and-reject on u64 draws: exactly uniform
 *              on {0, ..., n-1}.
 *   normal     ziggurat (Marsaglia and Tsang 2000) with 256 layers: one
 *              u64 per draw in the common case (8 bits pick the layer,
 *              1 bit the sign, 53 bits the abscissa); the tail beyond
 *              r = 3.6541528853610088 by Marsaglia's exponential method.
 *              IDEALIZED: floating point, not for DP releases (reports
 *              label it idealized_numerics); exact DP noise is in noise.h.
 *   laplace    -sign * log(uniform_pos), one u64 for the magnitude and the
 *              sign; IDEALIZED likewise.
 *
 * A handle is not thread-safe; give each thread its own (asec_rng_derive).
 * Key material lives in libsodium guarded memory and is wiped on free.
 */
#ifndef ATTNSEC_RNG_H
#define ATTNSEC_RNG_H

#include <stddef.h>
#include <stdint.h>

#include <attnsec/common.h>

ASEC_BEGIN_DECLS

typedef struct asec_rng asec_rng;

typedef enum asec_rng_mode {
    ASEC_RNG_SECURE = 0,
    ASEC_RNG_SEEDED = 1
} asec_rng_mode;

/* A secure-mode generator.  *out is owned by the caller and freed with
 * asec_rng_free().  Returns ASEC_OK, ASEC_ENOINIT or ASEC_ENOMEM. */
ASEC_API int asec_rng_alloc_secure(asec_rng **out) ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* A seeded generator for seed and stream label (see above; label is
 * copied, at most 255 bytes).  Returns ASEC_OK, ASEC_EINVAL (label too
 * long), ASEC_ENOINIT or ASEC_ENOMEM. */
ASEC_API int asec_rng_alloc_seeded(asec_rng **out, uint64_t seed, const char *label)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 3);

/* A child stream.  Seeded parent: keyed from the parent's key and label,
 * independent of how much the parent has been used.  Secure parent: a
 * fresh secure generator.  label as above. */
ASEC_API int asec_rng_derive(asec_rng **out, const asec_rng *parent, const char *label)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3);

/* Wipe and free; NULL is a no-op. */
ASEC_API void asec_rng_free(asec_rng *rng);

ASEC_API asec_rng_mode asec_rng_get_mode(const asec_rng *rng) ASEC_NONNULL(1);
/* The user seed of a seeded generator (0 for secure ones). */
ASEC_API uint64_t asec_rng_get_seed(const asec_rng *rng) ASEC_NONNULL(1);
/* The full stream label, parents first joined by '/' ("" for secure). */
ASEC_API const char *asec_rng_get_label(const asec_rng *rng) ASEC_NONNULL(1);
/* A static description for reports, e.g. "ChaCha20-IETF via
 * randombytes_buf_deterministic, BLAKE2b-keyed streams". */
ASEC_API const char *asec_rng_algorithm(const asec_rng *rng) ASEC_NONNULL(1);

/* Bytes consumed so far; for a seeded stream, asec_rng_seek() to this
 * value on a fresh generator with the same seed and label continues the
 * stream exactly (checkpoints).  ASEC_EINVAL for secure generators. */
ASEC_API uint64_t asec_rng_tell(const asec_rng *rng) ASEC_NONNULL(1);
ASEC_API int asec_rng_seek(asec_rng *rng, uint64_t position)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Fill buf with n random bytes.  Cannot fail (libsodium aborts the
 * process rather than return weak OS randomness). */
ASEC_API void asec_rng_bytes(asec_rng *rng, void *buf, size_t n) ASEC_NONNULL(1);

ASEC_API uint64_t asec_rng_u64(asec_rng *rng) ASEC_NONNULL(1);
ASEC_API double asec_rng_uniform(asec_rng *rng) ASEC_NONNULL(1);
ASEC_API double asec_rng_uniform_pos(asec_rng *rng) ASEC_NONNULL(1);
/* Uniform on {0, ..., n-1}; n == 0 returns 0. */
ASEC_API uint64_t asec_rng_bounded(asec_rng *rng, uint64_t n) ASEC_NONNULL(1);

/* Idealized (floating-point) standard normal and standard Laplace
 * (density exp(-|x|)/2) variates; see the file comment. */
ASEC_API double asec_rng_normal(asec_rng *rng) ASEC_NONNULL(1);
ASEC_API void asec_rng_normal_fill(asec_rng *rng, double *out, size_t n)
    ASEC_NONNULL(1);
ASEC_API double asec_rng_laplace(asec_rng *rng) ASEC_NONNULL(1);

ASEC_END_DECLS

#endif /* ATTNSEC_RNG_H */
