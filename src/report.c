/* report.c - report.json on jansson: results plus the reproducibility
 * record of ECOSYSTEM.md §2.4 (see attnsec/report.h for the schema). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gsl/gsl_version.h>
#include <jansson.h>
#include <sodium.h>

#include "attnsec/afile.h"
#include "attnsec/report.h"
#include "attnsec/version.h"
#include "internal.h"

/* OpenBLAS's own introspection (declared here: OpenBLAS's cblas.h must not
 * meet GSL's CBLAS declarations, STYLE.md B6). */
extern char *openblas_get_config(void);
extern char *openblas_get_corename(void);
extern int openblas_get_num_threads(void);

#define JSON_FLAGS (JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(17))

struct asec_report {
    json_t *root;
    struct timespec wall0;
    struct timespec cpu0;
};

static double
elapsed(const struct timespec *t0, clockid_t clock)
{
    struct timespec t;

    clock_gettime(clock, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void
utc_now(char *buf, size_t n)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Set obj[key] = value, taking the reference; ASEC_ENOMEM on failure. */
static int
put(json_t *obj, const char *key, json_t *value)
{
    if (value == NULL || json_object_set_new(obj, key, value) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "report: cannot store '%s'", key);
    return ASEC_OK;
}

/* Find (creating objects) the parent of the last key of path; *key points
 * into the caller's copy buffer. */
static int
walk(json_t *root, char *pathbuf, json_t **parent, const char **key)
{
    json_t *cur = root;
    char *seg = pathbuf, *dot;

    if (pathbuf[0] == '\0')
        ASEC_FAIL(ASEC_EINVAL, "report: empty path");
    while ((dot = strchr(seg, '.')) != NULL) {
        json_t *next;

        *dot = '\0';
        if (seg[0] == '\0')
            ASEC_FAIL(ASEC_EINVAL, "report: empty key in path");
        next = json_object_get(cur, seg);
        if (next == NULL) {
            next = json_object();
            if (next == NULL || json_object_set_new(cur, seg, next) != 0)
                ASEC_FAIL(ASEC_ENOMEM, "report: cannot create '%s'", seg);
        } else if (!json_is_object(next)) {
            ASEC_FAIL(ASEC_EINVAL, "report: '%s' is not an object", seg);
        }
        cur = next;
        seg = dot + 1;
    }
    if (seg[0] == '\0')
        ASEC_FAIL(ASEC_EINVAL, "report: empty key in path");
    *parent = cur;
    *key = seg;
    return ASEC_OK;
}

/* Store value (reference stolen, may be NULL = allocation failed) at path. */
static int
set_path(asec_report *r, const char *path, json_t *value)
{
    char buf[256];
    json_t *parent;
    const char *key;
    int rc;

    if (value == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "report: cannot allocate a value for '%s'", path);
    if (strlen(path) >= sizeof buf) {
        json_decref(value);
        ASEC_FAIL(ASEC_EINVAL, "report: path too long");
    }
    strcpy(buf, path);
    rc = walk(r->root, buf, &parent, &key);
    if (rc != ASEC_OK) {
        json_decref(value);
        return rc;
    }
    return put(parent, key, value);
}

static json_t *
number(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

int
asec_report_set_num(asec_report *r, const char *path, double v)
{
    char key[300];

    ASEC_TRY(set_path(r, path, number(v)));
    if (strlen(path) + 11 >= sizeof key)
        ASEC_FAIL(ASEC_EINVAL, "report: path too long");
    snprintf(key, sizeof key, "%s_nonfinite", path);
    if (isfinite(v)) {
        /* Replacing a non-finite value: drop the stale marker. */
        char buf[300];
        json_t *parent;
        const char *k;

        strcpy(buf, key);
        if (walk(r->root, buf, &parent, &k) == ASEC_OK)
            json_object_del(parent, k);
        return ASEC_OK;
    }
    return set_path(r, key, json_string(isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"));
}

int
asec_report_set_int(asec_report *r, const char *path, long long v)
{
    return set_path(r, path, json_integer((json_int_t)v));
}

int
asec_report_set_str(asec_report *r, const char *path, const char *v)
{
    json_t *s = json_string(v);

    if (s == NULL)
        ASEC_FAIL(ASEC_EINVAL, "report: value for '%s' is not valid UTF-8", path);
    return set_path(r, path, s);
}

int
asec_report_set_bool(asec_report *r, const char *path, int v)
{
    return set_path(r, path, json_boolean(v));
}

static int
parse_value(const char *json, json_t **out)
{
    json_error_t err;

    *out = json_loads(json, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (*out == NULL)
        ASEC_FAIL(ASEC_EINVAL, "report: invalid JSON value: %s", err.text);
    return ASEC_OK;
}

int
asec_report_set_json(asec_report *r, const char *path, const char *json)
{
    json_t *v;

    ASEC_TRY(parse_value(json, &v));
    return set_path(r, path, v);
}

static int
append(asec_report *r, const char *path, json_t *v)
{
    char buf[256];
    json_t *parent, *arr;
    const char *key;
    int rc;

    if (v == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "report: cannot allocate a value for '%s'", path);
    if (strlen(path) >= sizeof buf) {
        json_decref(v);
        ASEC_FAIL(ASEC_EINVAL, "report: path too long");
    }
    strcpy(buf, path);
    rc = walk(r->root, buf, &parent, &key);
    if (rc != ASEC_OK) {
        json_decref(v);
        return rc;
    }
    arr = json_object_get(parent, key);
    if (arr == NULL) {
        arr = json_array();
        if (arr == NULL || json_object_set_new(parent, key, arr) != 0) {
            json_decref(v);
            ASEC_FAIL(ASEC_ENOMEM, "report: cannot create array '%s'", path);
        }
    } else if (!json_is_array(arr)) {
        json_decref(v);
        ASEC_FAIL(ASEC_EINVAL, "report: '%s' is not an array", path);
    }
    if (json_array_append_new(arr, v) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "report: cannot append to '%s'", path);
    return ASEC_OK;
}

int
asec_report_append_json(asec_report *r, const char *path, const char *json)
{
    json_t *v;

    ASEC_TRY(parse_value(json, &v));
    return append(r, path, v);
}

int
asec_report_append_num(asec_report *r, const char *path, double v)
{
    return append(r, path, number(v));
}

static int
fill_provenance(asec_report *r, const char *command, int argc, char *const *argv)
{
    json_t *tool, *build, *libs, *args, *blas, *t;
    char when[32];
    char *cfg = openblas_get_config();
    char *core = openblas_get_corename();

    tool = json_pack("{s:s, s:s, s:s}", "name", "attnsec", "version",
                     ASEC_VERSION_STRING, "git_describe", ASEC_GIT_DESCRIBE);
    libs = json_pack("{s:s, s:s, s:s}", "libsodium", sodium_version_string(), "jansson",
                     jansson_version_str(), "gsl", gsl_version);
    build = json_pack("{s:s, s:o*}", "cflags", ASEC_BUILD_CFLAGS, "libraries", libs);
    blas = json_pack("{s:s, s:s, s:i}", "config", cfg ? cfg : "unknown", "core",
                     core ? core : "unknown", "threads", openblas_get_num_threads());
    utc_now(when, sizeof when);
    t = json_pack("{s:s}", "start_utc", when);
    args = json_array();
    if (args != NULL)
        for (int i = 0; i < argc; i++)
            if (json_array_append_new(args, json_string(argv[i])) != 0)
                break;
    ASEC_TRY(put(r->root, "schema_version", json_integer(ASEC_REPORT_SCHEMA_VERSION)));
    ASEC_TRY(put(r->root, "tool", tool));
    ASEC_TRY(put(r->root, "build", build));
    ASEC_TRY(put(r->root, "command", json_string(command)));
    ASEC_TRY(put(r->root, "argv", args));
    ASEC_TRY(put(r->root, "config", json_object()));
    ASEC_TRY(put(r->root, "inputs", json_array()));
    ASEC_TRY(put(r->root, "warnings", json_array()));
    ASEC_TRY(put(r->root, "results", json_object()));
    ASEC_TRY(put(r->root, "blas", blas));
    ASEC_TRY(put(r->root, "time", t));
    if ((size_t)argc != json_array_size(args))
        ASEC_FAIL(ASEC_EINVAL, "report: argv is not valid UTF-8");
    return ASEC_OK;
}

int
asec_report_alloc(asec_report **out, const char *command, int argc, char *const *argv)
{
    asec_report *r;
    int rc;

    *out = NULL;
    ASEC_TRY(asec__ensure_init());
    r = asec__calloc(1, sizeof *r);
    if (r == NULL)
        return ASEC_ENOMEM;
    clock_gettime(CLOCK_MONOTONIC, &r->wall0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &r->cpu0);
    r->root = json_object();
    if (r->root == NULL) {
        asec__free(r);
        ASEC_FAIL(ASEC_ENOMEM, "report: cannot allocate");
    }
    rc = fill_provenance(r, command, argc, argv);
    if (rc != ASEC_OK) {
        asec_report_free(r);
        return rc;
    }
    *out = r;
    return ASEC_OK;
}

void
asec_report_free(asec_report *r)
{
    if (r == NULL)
        return;
    json_decref(r->root);
    asec__free(r);
}

int
asec_report_add_input(asec_report *r, const char *path)
{
    unsigned char h[crypto_generichash_BYTES];
    char hex[2 * crypto_generichash_BYTES + 1];
    unsigned char buf[65536];
    crypto_generichash_state st;
    unsigned long long total = 0;
    json_t *entry;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        ASEC_FAIL(ASEC_ENOENT, "%s: cannot open: %s", path, strerror(errno));
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;

            close(fd);
            ASEC_FAIL(ASEC_EIO, "%s: read failed: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        crypto_generichash_update(&st, buf, (unsigned long long)n);
        total += (unsigned long long)n;
    }
    close(fd);
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    entry = json_pack("{s:s, s:I, s:s}", "path", path, "bytes", (json_int_t)total,
                      "blake2b_256", hex);
    if (entry == NULL)
        ASEC_FAIL(ASEC_EINVAL, "report: input path '%s' is not valid UTF-8", path);
    if (json_array_append_new(json_object_get(r->root, "inputs"), entry) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "report: cannot record input");
    return ASEC_OK;
}

int
asec_report_set_rng(asec_report *r, const asec_rng *rng)
{
    json_t *o;

    if (asec_rng_get_mode(rng) == ASEC_RNG_SECURE) {
        o = json_pack("{s:s, s:s, s:b}", "mode", "secure", "algorithm",
                      asec_rng_algorithm(rng), "dp_release", 1);
    } else {
        o = json_pack("{s:s, s:I, s:s, s:s, s:b, s:s}", "mode", "seeded", "seed",
                      (json_int_t)asec_rng_get_seed(rng), "label", asec_rng_get_label(rng),
                      "algorithm", asec_rng_algorithm(rng), "dp_release", 0, "note",
                      "seeded randomness: NOT a DP release");
    }
    return put(r->root, "rng", o);
}

int
asec_report_warn(asec_report *r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (json_array_append_new(json_object_get(r->root, "warnings"), json_string(msg)) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "report: cannot record a warning");
    return ASEC_OK;
}

int
asec_report_finish(asec_report *r, int exit_status)
{
    json_t *t = json_object_get(r->root, "time");
    char when[32];

    utc_now(when, sizeof when);
    ASEC_TRY(put(t, "end_utc", json_string(when)));
    ASEC_TRY(put(t, "wall_seconds", json_real(elapsed(&r->wall0, CLOCK_MONOTONIC))));
    ASEC_TRY(put(t, "cpu_seconds",
                 json_real(elapsed(&r->cpu0, CLOCK_PROCESS_CPUTIME_ID))));
    return put(r->root, "exit_status", json_integer(exit_status));
}

int
asec_report_write(const asec_report *r, const char *path)
{
    char *text = json_dumps(r->root, JSON_FLAGS);
    int rc;

    if (text == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "report: cannot serialise");
    {
        size_t n = strlen(text);
        asec_afile *f;

        rc = asec_afile_open(&f, path);
        if (rc == ASEC_OK) {
            rc = asec_afile_write(f, text, n);
            if (rc == ASEC_OK)
                rc = asec_afile_write(f, "\n", 1);
            if (rc == ASEC_OK)
                rc = asec_afile_commit(f);
            else
                asec_afile_abort(f);
        }
    }
    free(text); /* allocated by jansson */
    return rc;
}

int
asec_report_print(const asec_report *r, FILE *stream)
{
    if (json_dumpf(r->root, stream, JSON_FLAGS) != 0 || fputc('\n', stream) == EOF)
        ASEC_FAIL(ASEC_EIO, "report: write to stream failed");
    return ASEC_OK;
}

const char *
asec_report_get_str(const asec_report *r, const char *path)
{
    char buf[256];
    const char *seg = buf;
    json_t *cur = r->root;
    char *dot;

    if (strlen(path) >= sizeof buf)
        return NULL;
    strcpy(buf, path);
    while ((dot = strchr(seg, '.')) != NULL) {
        *dot = '\0';
        cur = json_object_get(cur, seg);
        if (!json_is_object(cur))
            return NULL;
        seg = dot + 1;
    }
    cur = json_object_get(cur, seg);
    return json_is_string(cur) ? json_string_value(cur) : NULL;
}
