/* check_report.c - atomic files (asec_afile) and report.json (asec_report). */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "attnsec/attnsec.h"
#include "testutil.h"

static char path[4096];

static const char *
in_dir(const char *dir, const char *name)
{
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

START_TEST(test_afile_commit)
{
    char *dir = asec_test_mkdtemp();
    asec_afile *f;
    size_t len;
    char *text;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_afile_open(&f, in_dir(dir, "out.txt")), ASEC_OK);
    ck_assert_int_eq(asec_afile_printf(f, "%s=%d\n", "answer", 42), ASEC_OK);
    /* Before the commit only the temporary exists, under another name. */
    ck_assert_int_eq(access(in_dir(dir, "out.txt"), F_OK), -1);
    ck_assert_int_eq(asec_test_count_entries(dir), 1);
    ck_assert_int_eq(asec_afile_commit(f), ASEC_OK);
    ck_assert_int_eq(asec_test_count_entries(dir), 1);
    text = asec_test_slurp(in_dir(dir, "out.txt"), &len);
    ck_assert_str_eq(text, "answer=42\n");
    free(text);
    /* Overwrite atomically: the new content replaces the old one whole. */
    ck_assert_int_eq(asec_afile_write_all(in_dir(dir, "out.txt"), "new", 3), ASEC_OK);
    text = asec_test_slurp(in_dir(dir, "out.txt"), &len);
    ck_assert_str_eq(text, "new");
    free(text);
    asec_test_rmtree(dir);
}
END_TEST

START_TEST(test_afile_abort_leaves_nothing)
{
    char *dir = asec_test_mkdtemp();
    asec_afile *f, *g;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_afile_open(&f, in_dir(dir, "a.bin")), ASEC_OK);
    ck_assert_int_eq(asec_afile_write(f, "partial", 7), ASEC_OK);
    asec_afile_abort(f);
    ck_assert_int_eq(asec_test_count_entries(dir), 0);
    asec_afile_abort(NULL);
    /* abort_all removes the temporaries of live handles (signal path). */
    ck_assert_int_eq(asec_afile_open(&g, in_dir(dir, "b.bin")), ASEC_OK);
    ck_assert_int_eq(asec_test_count_entries(dir), 1);
    asec_afile_abort_all();
    ck_assert_int_eq(asec_test_count_entries(dir), 0);
    asec_afile_abort(g);
    asec_test_rmtree(dir);
}
END_TEST

START_TEST(test_afile_errors)
{
    asec_afile *f;
    char *dir = asec_test_mkdtemp();

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_afile_open(&f, "/nonexistent-dir-asec/x.json"), ASEC_ECREATE);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "/nonexistent-dir-asec/x.json"));
    ck_assert_int_eq(asec_afile_open(&f, in_dir(dir, "")), ASEC_ECREATE);
    /* mkdirs makes parents, accepts existing ones, refuses files. */
    ck_assert_int_eq(asec_afile_mkdirs(in_dir(dir, "p/q/r")), ASEC_OK);
    ck_assert_int_eq(asec_afile_mkdirs(in_dir(dir, "p/q/r")), ASEC_OK);
    ck_assert_int_eq(asec_afile_write_all(in_dir(dir, "p/file"), "x", 1), ASEC_OK);
    ck_assert_int_eq(asec_afile_mkdirs(in_dir(dir, "p/file")), ASEC_ECREATE);
    ck_assert_int_eq(asec_afile_mkdirs(in_dir(dir, "p/file/sub")), ASEC_ECREATE);
    asec_test_rmtree(dir);
}
END_TEST

START_TEST(test_afile_file_too_large)
{
    char *dir = asec_test_mkdtemp();
    char buf[4096] = {0};
    struct rlimit old, small;
    asec_afile *f;
    int rc;

    /* A file-size limit makes write() fail with EFBIG (SIGXFSZ ignored):
     * the same path as a full disk.  The failed file must vanish. */
    ck_assert_int_eq(asec_init(), ASEC_OK);
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 1000;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    ck_assert_int_eq(asec_afile_open(&f, in_dir(dir, "big.bin")), ASEC_OK);
    rc = asec_afile_write(f, buf, sizeof buf);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    ck_assert_int_eq(rc, ASEC_ENOSPC);
    ck_assert_int_eq(asec_afile_write(f, buf, 1), ASEC_EIO);
    ck_assert_int_eq(asec_afile_commit(f), ASEC_EIO);
    ck_assert_int_eq(asec_test_count_entries(dir), 0);
    asec_test_rmtree(dir);
}
END_TEST

static json_t *
load(const char *p)
{
    json_error_t err;
    json_t *j = json_load_file(p, JSON_REJECT_DUPLICATES, &err);

    ck_assert_msg(j != NULL, "report does not parse: %s", err.text);
    return j;
}

START_TEST(test_report_schema_and_values)
{
    char *dir = asec_test_mkdtemp();
    char *argv[] = {"attnsec", "account", "epsilon", "--sigma", "1.1"};
    asec_report *r;
    asec_rng *rng;
    json_t *j, *v;
    char *text;
    size_t len;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_report_alloc(&r, "account epsilon", 5, argv), ASEC_OK);
    ck_assert_int_eq(asec_report_set_num(r, "config.sigma", 1.1), ASEC_OK);
    ck_assert_int_eq(asec_report_set_num(r, "results.epsilon", INFINITY), ASEC_OK);
    ck_assert_int_eq(asec_report_set_num(r, "results.nan", NAN), ASEC_OK);
    ck_assert_int_eq(asec_report_set_num(r, "results.x", 0.1), ASEC_OK);
    ck_assert_int_eq(asec_report_set_int(r, "results.steps", 1000000007LL), ASEC_OK);
    ck_assert_int_eq(asec_report_set_str(r, "results.accountant", "rdp"), ASEC_OK);
    ck_assert_int_eq(asec_report_set_bool(r, "results.flag", 1), ASEC_OK);
    ck_assert_int_eq(asec_report_set_json(r, "results.bracket", "[1.5, 2.5]"), ASEC_OK);
    ck_assert_int_eq(asec_report_append_num(r, "results.curve", 1.0 / 3.0), ASEC_OK);
    ck_assert_int_eq(asec_report_append_json(r, "results.curve", "{\"k\": 2}"), ASEC_OK);
    ck_assert_int_eq(asec_report_warn(r, "clamped %d entries", 3), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&rng, 99, "report"), ASEC_OK);
    ck_assert_int_eq(asec_report_set_rng(r, rng), ASEC_OK);
    ck_assert_str_eq(asec_report_get_str(r, "results.accountant"), "rdp");
    ck_assert_ptr_null(asec_report_get_str(r, "results.steps"));
    ck_assert_ptr_null(asec_report_get_str(r, "no.such.key"));
    ck_assert_int_eq(asec_report_finish(r, 0), ASEC_OK);
    ck_assert_int_eq(asec_report_write(r, in_dir(dir, "report.json")), ASEC_OK);

    j = load(path);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "schema_version")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(j, "command")), "account epsilon");
    ck_assert_int_eq(json_array_size(json_object_get(j, "argv")), 5);
    v = json_object_get(j, "results");
    ck_assert(json_is_null(json_object_get(v, "epsilon")));
    ck_assert_str_eq(json_string_value(json_object_get(v, "epsilon_nonfinite")), "inf");
    ck_assert_str_eq(json_string_value(json_object_get(v, "nan_nonfinite")), "nan");
    /* 17 significant digits round-trip every double exactly. */
    ck_assert(json_real_value(json_object_get(v, "x")) == 0.1);
    ck_assert(json_real_value(json_array_get(json_object_get(v, "curve"), 0)) == 1.0 / 3.0);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "steps")), 1000000007LL);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "rng"), "mode")),
                     "seeded");
    ck_assert(json_is_false(json_object_get(json_object_get(j, "rng"), "dp_release")));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "rng"), "seed")),
                     99);
    ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "blas"), "threads"));
    ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "time"), "wall_seconds"));
    ck_assert_int_eq(json_array_size(json_object_get(j, "warnings")), 1);
    json_decref(j);

    /* Sorted keys: "argv" comes before "blas" before "build" in the text. */
    text = asec_test_slurp(path, &len);
    ck_assert_ptr_nonnull(strstr(text, "\"argv\""));
    ck_assert(strstr(text, "\"argv\"") < strstr(text, "\"blas\""));
    ck_assert(strstr(text, "\"blas\"") < strstr(text, "\"build\""));
    ck_assert_int_eq(text[len - 1], '\n');
    free(text);

    /* A finite value replaces a non-finite one and drops the marker. */
    ck_assert_int_eq(asec_report_set_num(r, "results.epsilon", 2.0), ASEC_OK);
    ck_assert_int_eq(asec_report_write(r, in_dir(dir, "report.json")), ASEC_OK);
    j = load(path);
    ck_assert_ptr_null(json_object_get(json_object_get(j, "results"), "epsilon_nonfinite"));
    json_decref(j);
    asec_rng_free(rng);
    asec_report_free(r);
    asec_test_rmtree(dir);
}
END_TEST

START_TEST(test_report_input_hash)
{
    char *dir = asec_test_mkdtemp();
    unsigned char h[32];
    char hex[65];
    asec_report *r;
    json_t *j, *in;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_afile_write_all(in_dir(dir, "data.bin"), "abc", 3), ASEC_OK);
    ck_assert_int_eq(asec_report_alloc(&r, "inspect", 0, NULL), ASEC_OK);
    ck_assert_int_eq(asec_report_add_input(r, path), ASEC_OK);
    ck_assert_int_eq(asec_report_add_input(r, in_dir(dir, "missing")), ASEC_ENOENT);
    ck_assert_int_eq(asec_report_write(r, in_dir(dir, "r.json")), ASEC_OK);
    j = load(path);
    in = json_array_get(json_object_get(j, "inputs"), 0);
    crypto_generichash(h, sizeof h, (const unsigned char *)"abc", 3, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    ck_assert_str_eq(json_string_value(json_object_get(in, "blake2b_256")), hex);
    ck_assert_int_eq(json_integer_value(json_object_get(in, "bytes")), 3);
    ck_assert_int_eq(json_array_size(json_object_get(j, "inputs")), 1);
    json_decref(j);
    asec_report_free(r);
    asec_test_rmtree(dir);
}
END_TEST

START_TEST(test_report_errors)
{
    asec_report *r;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_report_alloc(&r, "x", 0, NULL), ASEC_OK);
    ck_assert_int_eq(asec_report_set_num(r, "", 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_report_set_num(r, "a..b", 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_report_set_num(r, "a.", 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_report_set_str(r, "results.s", "ok"), ASEC_OK);
    ck_assert_int_eq(asec_report_set_num(r, "results.s.t", 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_report_append_num(r, "results.s", 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_report_set_json(r, "results.j", "{bad"), ASEC_EINVAL);
    ck_assert_int_eq(asec_report_set_json(r, "results.j", "{\"a\":1,\"a\":2}"),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_report_set_str(r, "results.u", "\xff\xfe"), ASEC_EINVAL);
    ck_assert_int_eq(asec_report_write(r, "/nonexistent-dir-asec/r.json"), ASEC_ECREATE);
    asec_report_free(r);
    asec_report_free(NULL);
}
END_TEST

static Suite *
report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("core");
    TCase *te = tcase_create("errors");

    tcase_add_test(tc, test_afile_commit);
    tcase_add_test(tc, test_afile_abort_leaves_nothing);
    tcase_add_test(tc, test_report_schema_and_values);
    tcase_add_test(tc, test_report_input_hash);
    tcase_add_test(te, test_afile_errors);
    tcase_add_test(te, test_afile_file_too_large);
    tcase_add_test(te, test_report_errors);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, te);
    return s;
}

int
main(void)
{
    return asec_test_run(report_suite());
}
