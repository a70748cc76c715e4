/* batch_result.c - results, task outputs and locks of a campaign
 * directory as batch run, status and merge read them (batch_result.h). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "batch_result.h"
#include "cli.h"
#include "slurp.h"

int
batch_result_parse(json_t **out, const char *buf, size_t len, const struct batch_task *t)
{
    json_t *r = NULL, *copy;
    const char *sum;
    char *text, hx[65];
    int ok;

    if (out != NULL)
        *out = NULL;
    if (batch_json_parse(&r, "result", buf, len, 1) != 0)
        return -1;
    if (json_unpack(r, "{s:{s:s}}", "checksum", "blake2b_256", &sum) != 0 ||
        !json_equal(json_object_get(r, "task"), t->obj)) {
        json_decref(r);
        return -1;
    }
    copy = json_copy(r);
    if (copy != NULL)
        json_object_del(copy, "checksum");
    text = copy != NULL ? batch_canonical(copy) : NULL;
    json_decref(copy);
    ok = text != NULL;
    if (ok) {
        batch_hash_hex(hx, text, strlen(text), 32);
        ok = strcmp(hx, sum) == 0;
    }
    free(text);
    if (!ok) {
        json_decref(r);
        return -1;
    }
    if (out != NULL)
        *out = r;
    else
        json_decref(r);
    return 1;
}

int
batch_result_check(const char *dir, const struct batch_task *t, size_t cap, json_t **out)
{
    char *p, *buf;
    size_t n = strlen(dir) + strlen(t->id) + 16, len;
    int st;

    if (out != NULL)
        *out = NULL;
    if ((p = malloc(n)) == NULL)
        return -1;
    snprintf(p, n, "%s/results/%s.json", dir, t->id);
    st = slurp_regular(p, cap, &buf, &len);
    free(p);
    if (st == SLURP_MISSING)
        return 0;
    if (st != SLURP_OK)
        return -1;
    st = batch_result_parse(out, buf, len, t);
    free(buf);
    return st;
}

/* The results of a task without report.json: its standard output. */
static json_t *
stdout_results(const char *out, size_t olen)
{
    json_t *res = NULL;
    char *b64;
    size_t n;

    if (batch_json_parse(&res, "stdout", out, olen, 1) == 0) {
        /* one level more in the result: it must still pass the check */
        if (batch_json_depth(res) < BATCH_RESULT_MAX_DEPTH)
            return res;
        json_decref(res);
    }
    if (memchr(out, '\0', olen) == NULL) {
        json_t *s = json_stringn(out, olen); // NULL when not UTF-8

        if (s != NULL) {
            res = json_object();
            if (res == NULL || json_object_set_new(res, "stdout", s) != 0) {
                json_decref(res);
                return NULL;
            }
            return res;
        }
    }
    n = sodium_base64_ENCODED_LEN(olen, sodium_base64_VARIANT_ORIGINAL);
    if ((b64 = malloc(n)) == NULL)
        return NULL;
    sodium_bin2base64(b64, n, (const unsigned char *)out, olen,
                      sodium_base64_VARIANT_ORIGINAL);
    res = json_pack("{s:s}", "stdout_base64", b64);
    free(b64);
    return res;
}

static int
oom(const char *work)
{
    cli_error("%s: out of memory building the task's result", work);
    return EXIT_TEMPFAIL;
}

int
batch_result_make(char **text, size_t *tlen, const struct batch_task *t, const char *work,
                  const char *report, size_t rlen, const char *out, size_t olen,
                  int exit_status, size_t cap)
{
    json_t *rep = NULL, *res = NULL, *rng = NULL, *r;
    char *canon, *dump, hx[65];
    size_t n, depth;

    *text = NULL;
    *tlen = 0;
    if (report != NULL) {
        if (batch_json_parse(&rep, "report.json", report, rlen, 1) != 0 ||
            !json_is_object(rep)) {
            json_decref(rep);
            cli_error("%s/report.json: not a JSON object nested at most %d deep", work,
                      BATCH_RESULT_MAX_DEPTH);
            return EXIT_DATAERR;
        }
        res = json_incref(json_object_get(rep, "results"));
        if (res == NULL)
            res = json_object();
        rng = json_incref(json_object_get(rep, "rng"));
        json_decref(rep);
    } else if (out != NULL) {
        res = stdout_results(out, olen);
    } else {
        res = json_object();
    }
    if (rng == NULL)
        rng = json_null();
    if (res == NULL || rng == NULL) {
        json_decref(res);
        json_decref(rng);
        return oom(work);
    }
    r = json_pack("{s:i, s:O, s:s, s:s, s:o, s:o, s:i}", "schema_version",
                  BATCH_SCHEMA_VERSION, "task", t->obj, "task_id", t->id, "tool_version",
                  PACKAGE_VERSION, "results", res, "rng", rng, "exit_status",
                  exit_status);
    if (r == NULL)
        return oom(work);
    if ((canon = batch_canonical(r)) == NULL) {
        json_decref(r);
        return oom(work);
    }
    batch_hash_hex(hx, canon, strlen(canon), 32);
    free(canon);
    if (json_object_set_new(r, "checksum", json_pack("{s:s}", "blake2b_256", hx)) != 0) {
        json_decref(r);
        return oom(work);
    }
    depth = batch_json_depth(r);
    dump = json_dumps(r, JSON_SORT_KEYS | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY |
                             JSON_INDENT(2));
    json_decref(r);
    if (dump == NULL)
        return oom(work);
    n = strlen(dump);
    if (depth > BATCH_RESULT_MAX_DEPTH || n + 1 > cap) {
        if (depth > BATCH_RESULT_MAX_DEPTH)
            cli_error("%s: the task's result would nest %zu deep, over the cap of %d",
                      work, depth, BATCH_RESULT_MAX_DEPTH);
        else
            cli_error("%s: the task's result would be %zu bytes, over the cap of %zu",
                      work, n + 1, cap);
        free(dump);
        return EXIT_DATAERR;
    }
    {
        char *p = realloc(dump, n + 2);

        if (p == NULL) {
            free(dump);
            return oom(work);
        }
        dump = p;
    }
    dump[n] = '\n';
    dump[n + 1] = '\0';
    *text = dump;
    *tlen = n + 1;
    return 0;
}

/* Read work/name into *buf (NULL when absent).  0, or 65/66/74/75 after a
 * message. */
static int
read_output(const char *work, const char *name, size_t cap, char **buf, size_t *len)
{
    size_t n = strlen(work) + strlen(name) + 2;
    char *p = malloc(n);
    int st = 0;

    *buf = NULL;
    *len = 0;
    if (p == NULL)
        return oom(work);
    snprintf(p, n, "%s/%s", work, name);
    st = slurp_regular(p, cap, buf, len);
    st = st == SLURP_MISSING ? 0 : slurp_exit(st, p, *len, cap);
    free(p);
    return st;
}

int
batch_result_build(char **text, size_t *tlen, const struct batch_task *t,
                   const char *work, int exit_status, size_t cap)
{
    char *rep = NULL, *out = NULL;
    size_t rlen = 0, olen = 0;
    int st;

    *text = NULL;
    *tlen = 0;
    st = read_output(work, "report.json", cap, &rep, &rlen);
    if (st == 0 && rep == NULL)
        st = read_output(work, "stdout.txt", cap, &out, &olen);
    if (st == 0)
        st = batch_result_make(text, tlen, t, work, rep, rlen, out, olen, exit_status,
                               cap);
    free(rep);
    free(out);
    return st;
}

int
batch_lock_parse(const char *buf, size_t len, char host[256], long *pid)
{
    size_t h = 0, i;
    long p = 0;

    while (h < len && h < 256 && buf[h] > ' ' && buf[h] < 0x7f)
        h++;
    if (h == 0 || h == 256 || h >= len || buf[h] != ' ')
        return 0;
    i = h + 1;
    if (i >= len || buf[i] < '1' || buf[i] > '9')
        return 0;
    for (; i < len && buf[i] >= '0' && buf[i] <= '9'; i++) {
        if (p > (INT_MAX - (buf[i] - '0')) / 10)
            return 0;
        p = 10 * p + (buf[i] - '0');
    }
    if (i + 1 != len || buf[i] != '\n')
        return 0;
    memcpy(host, buf, h);
    host[h] = '\0';
    *pid = p;
    return 1;
}
