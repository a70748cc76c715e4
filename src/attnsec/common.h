/* attnsec/common.h - export macros, status codes, attributes and library init.
 *
 * Every other public header includes this one.  Nothing here depends on
 * GSL, OpenBLAS, jansson or libsodium: those stay private to the library.
 *
 * Error convention (libattnsec(3)): every function that can fail returns
 * int, ASEC_OK (0) on success or one of the negative ASEC_E* codes below.
 * The library never prints, never exits, and never reads the environment.
 * A one-line detail of the most recent failure in the calling thread is
 * available from asec_errmsg().
 */
#ifndef ATTNSEC_COMMON_H
#define ATTNSEC_COMMON_H

#include <stddef.h>

#ifdef __cplusplus
#define ASEC_BEGIN_DECLS extern "C" {
#define ASEC_END_DECLS }
#else
#define ASEC_BEGIN_DECLS
#define ASEC_END_DECLS
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ASEC_API __attribute__((visibility("default")))
#define ASEC_WARN_UNUSED __attribute__((warn_unused_result))
#define ASEC_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#define ASEC_MALLOC __attribute__((malloc))
#define ASEC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ASEC_API
#define ASEC_WARN_UNUSED
#define ASEC_NONNULL(...)
#define ASEC_MALLOC
#define ASEC_PRINTF(f, a)
#endif

ASEC_BEGIN_DECLS

/* Status codes.  The CLI maps each to a sysexits status (attnsec(1)). */
enum {
    ASEC_OK = 0,
    ASEC_EINVAL = -1,    /* argument out of its documented range         (64) */
    ASEC_EBADLEN = -2,   /* matrix/vector shapes do not conform          (64) */
    ASEC_ENOMEM = -3,    /* allocation failed or size arithmetic overflow (75) */
    ASEC_EIO = -4,       /* read or write failed; see the message         (74) */
    ASEC_EFORMAT = -5,   /* input file is malformed                       (65) */
    ASEC_EBUDGET = -6,   /* privacy budget would be exceeded              (77) */
    ASEC_ENOINIT = -7,   /* asec_init() has not succeeded                 (70) */
    ASEC_ENOENT = -8,    /* input file missing or unreadable              (66) */
    ASEC_ELIMIT = -9,    /* input exceeds a documented cap                (65) */
    ASEC_ENOTSUP = -10,  /* feature not compiled in or not supported      (69) */
    ASEC_ECREATE = -11,  /* cannot create an output file                  (73) */
    ASEC_ENOSPC = -12,   /* out of disk space (retryable)                 (75) */
    ASEC_ENUMERIC = -13, /* numerical failure: non-finite, singular, no
                            convergence within the documented limits      (65) */
    ASEC_EINTERNAL = -14 /* broken internal invariant (a bug)             (70) */
};

/* Static English text for a status code ("malformed input" for
 * ASEC_EFORMAT); never NULL, never freed.  Unknown codes give
 * "unknown error". */
ASEC_API const char *asec_strerror(int status);

/* Detail of the most recent failure in the calling thread, for example
 * "bad.npy: header_len 70000 exceeds file size 90".  Owned by the
 * library; valid until the next failing call in the same thread.  Never
 * NULL: "" when nothing has failed yet. */
ASEC_API const char *asec_errmsg(void);

/* Initialise the library (libsodium, the secure RNG).  Call once before
 * anything else; safe to call again and from several threads.  Returns
 * ASEC_OK or ASEC_ENOINIT. */
ASEC_API int asec_init(void) ASEC_WARN_UNUSED;

/* The library's version string, e.g. "0.1.0"; static, never NULL. */
ASEC_API const char *asec_version_string(void);

/* Fault injection for tests.  After asec_debug_fail_alloc(n) with n >= 0,
 * the n-th following internal allocation (counting from 0) fails with
 * ASEC_ENOMEM, and so does every one after it; n < 0 turns injection off.
 * Returns the number of allocations made since the previous call, so a
 * test can loop n = 0, 1, 2, ... until a call succeeds.  Not thread-safe;
 * for the test suite only. */
ASEC_API long asec_debug_fail_alloc(long n);

ASEC_END_DECLS

#endif /* ATTNSEC_COMMON_H */
