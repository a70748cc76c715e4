/* internal.h - NOT installed.  Error raising, invariants, checked sizes and
 * the library's allocator.  Included by every library source file, first
 * after config.h. */
#ifndef ATTNSEC_INTERNAL_H
#define ATTNSEC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "attnsec/common.h"

/* Record a failure: format the message into the thread-local buffer read
 * by asec_errmsg() and return status.  Set a breakpoint here to catch
 * every error.  Never prints. */
int asec__fail(int status, const char *fmt, ...) ASEC_PRINTF(2, 3);

/* asec__printable(): untrusted text escaped for a one-line message. */
#include "printable.h"

/* Return from the current function with status, recording the message. */
#define ASEC_FAIL(status, ...) return asec__fail((status), __VA_ARGS__)

/* Record status and jump to a cleanup label; for functions with a single
 * 'goto fail' exit path that free what they allocated. */
#define ASEC_FAIL_GOTO(label, rc, status, ...)                                         \
    do {                                                                               \
        (rc) = asec__fail((status), __VA_ARGS__);                                      \
        goto label;                                                                    \
    } while (0)

/* Propagate a failure status from a callee (its message is kept). */
#define ASEC_TRY(expr)                                                                 \
    do {                                                                               \
        int asec_try_rc_ = (expr);                                                     \
        if (asec_try_rc_ != ASEC_OK)                                                   \
            return asec_try_rc_;                                                       \
    } while (0)

/* Broken internal invariant: print file:line and abort, in every build.
 * Never used for caller input (that is ASEC_EINVAL). */
void asec__assert_fail(const char *expr, const char *file, int line);
#define ASEC_ASSERT(cond)                                                              \
    ((cond) ? (void)0 : asec__assert_fail(#cond, __FILE__, __LINE__))

/* Checked size arithmetic: return 0 and store the result, or return -1 on
 * overflow (the output is then unspecified). */
static inline int
asec__mul_size(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

static inline int
asec__add_size(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

/* The library's allocator.  Every allocation goes through these, so the
 * test hook asec_debug_fail_alloc() reaches them all.  asec__malloc(0)
 * returns a unique non-NULL pointer.  They record ASEC_ENOMEM in
 * asec_errmsg() when they return NULL. */
void *asec__malloc(size_t n);
void *asec__calloc(size_t count, size_t size);
void *asec__realloc(void *p, size_t n);
void asec__free(void *p);
char *asec__strdup(const char *s);

/* The one-time libsodium initialisation; ASEC_OK or ASEC_ENOINIT. */
int asec__ensure_init(void);

#endif /* ATTNSEC_INTERNAL_H */
