/* core.c - library initialisation, the allocator with its fault-injection
 * hook, and the assertion handler. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "attnsec/version.h"
#include "internal.h"

int
asec__ensure_init(void)
{
    /* sodium_init() is idempotent and thread-safe; it returns 1 when it
     * had already succeeded and -1 on failure. */
    if (sodium_init() < 0)
        ASEC_FAIL(ASEC_ENOINIT, "libsodium failed to initialise");
    return ASEC_OK;
}

int
asec_init(void)
{
    return asec__ensure_init();
}

const char *
asec_version_string(void)
{
    return ASEC_VERSION_STRING;
}

/* Fault injection: fail_after < 0 means off.  alloc_count counts every
 * allocation attempt since the last asec_debug_fail_alloc() call. */
static long fail_after = -1;
static long alloc_count = 0;

long
asec_debug_fail_alloc(long n)
{
    long made = alloc_count;

    fail_after = n;
    alloc_count = 0;
    return made;
}

static int
injected_failure(void)
{
    long k = alloc_count++;

    return fail_after >= 0 && k >= fail_after;
}

void *
asec__malloc(size_t n)
{
    void *p;

    if (injected_failure()) {
        asec__fail(ASEC_ENOMEM, "allocation of %zu bytes failed (injected)", n);
        return NULL;
    }
    p = malloc(n == 0 ? 1 : n);
    if (p == NULL)
        asec__fail(ASEC_ENOMEM, "allocation of %zu bytes failed", n);
    return p;
}

void *
asec__calloc(size_t count, size_t size)
{
    size_t total;
    void *p;

    if (asec__mul_size(count, size, &total) != 0) {
        asec__fail(ASEC_ENOMEM, "allocation of %zu x %zu bytes overflows size_t", count,
                   size);
        return NULL;
    }
    if (injected_failure()) {
        asec__fail(ASEC_ENOMEM, "allocation of %zu bytes failed (injected)", total);
        return NULL;
    }
    p = calloc(total == 0 ? 1 : total, 1);
    if (p == NULL)
        asec__fail(ASEC_ENOMEM, "allocation of %zu bytes failed", total);
    return p;
}

void *
asec__realloc(void *p, size_t n)
{
    void *q;

    if (injected_failure()) {
        asec__fail(ASEC_ENOMEM, "allocation of %zu bytes failed (injected)", n);
        return NULL;
    }
    q = realloc(p, n == 0 ? 1 : n);
    if (q == NULL)
        asec__fail(ASEC_ENOMEM, "allocation of %zu bytes failed", n);
    return q;
}

void
asec__free(void *p)
{
    free(p);
}

char *
asec__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = asec__malloc(n);

    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

void
asec__assert_fail(const char *expr, const char *file, int line)
{
    /* The one place library code writes to stderr: a broken invariant is
     * a bug, and the message asks for a report. */
    fprintf(stderr, "%s:%d: assertion failed: %s (please report this bug)\n", file, line,
            expr);
    abort();
}
