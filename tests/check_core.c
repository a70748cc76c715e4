/* check_core.c - status codes, messages, init and the allocator hook. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "testutil.h"

START_TEST(test_strerror_every_code)
{
    /* Every status has its own non-empty text; unknown codes say so. */
    for (int s = ASEC_OK; s >= ASEC_EINTERNAL; s--) {
        const char *t = asec_strerror(s);

        ck_assert_ptr_nonnull(t);
        ck_assert_int_gt((int)strlen(t), 0);
        ck_assert_str_ne(t, "unknown error");
        for (int u = s - 1; u >= ASEC_EINTERNAL; u--)
            ck_assert_str_ne(t, asec_strerror(u));
    }
    ck_assert_str_eq(asec_strerror(-1000), "unknown error");
    ck_assert_str_eq(asec_strerror(5), "unknown error");
}
END_TEST

START_TEST(test_init_idempotent)
{
    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_str_eq(asec_version_string(), ASEC_VERSION_STRING);
}
END_TEST

START_TEST(test_errmsg_records_failure)
{
    char label[300];
    asec_rng *r;

    /* A failing call leaves a specific message behind. */
    memset(label, 'x', sizeof label - 1);
    label[sizeof label - 1] = '\0';
    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 1, label), ASEC_EINVAL);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "label"));
}
END_TEST

START_TEST(test_fail_alloc_hook)
{
    asec_rng *r = NULL;
    long n;
    int rc;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    /* Loop n = 0, 1, ... until the call succeeds (jansson's chaos loop). */
    for (n = 0;; n++) {
        asec_debug_fail_alloc(n);
        rc = asec_rng_alloc_seeded(&r, 7, "oom");
        if (rc == ASEC_OK)
            break;
        ck_assert_int_eq(rc, ASEC_ENOMEM);
        ck_assert_ptr_null(r);
        ck_assert_int_lt(n, 100);
    }
    asec_debug_fail_alloc(-1);
    ck_assert_int_ge(n, 1); /* at least one allocation was made and failed */
    asec_rng_free(r);
}
END_TEST

static Suite *
core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    TCase *te = tcase_create("errors");
    TCase *to = tcase_create("oom");

    tcase_add_test(tc, test_init_idempotent);
    tcase_add_test(te, test_strerror_every_code);
    tcase_add_test(te, test_errmsg_records_failure);
    tcase_add_test(to, test_fail_alloc_hook);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, te);
    suite_add_tcase(s, to);
    return s;
}

int
main(void)
{
    return asec_test_run(core_suite());
}
