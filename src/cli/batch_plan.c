/* batch_plan.c - manifest validation and expansion for 'attnsec batch plan'
 * (batch_plan.h; the manifest format is in attnsec-batch(1)).
 *
 * The task list is built one task at a time: each task object becomes its
 * canonical line at once and is released, so memory is bounded by the
 * size of tasks.jsonl (capped) plus one id per task; repeated ids are
 * found by sorting the ids, not by comparing every pair.  The campaign
 * reader (plan.json and tasks.jsonl, for batch run, status and merge) is
 * here too. */
#define _POSIX_C_SOURCE 200809L /* strdup, strtok_r under -std=c11 */
#include "config.h"

#include <errno.h>
#include <unistd.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "batch_plan.h"
#include "cli.h"
#include "printable.h"
#include "slurp.h"

/* Untrusted text (JSON keys, strings) quoted in a message. */
#define PR(buf, s) asec__printable((buf), sizeof(buf), (s))

void
batch_to_hex(char *out, const unsigned char *b, size_t n)
{
    static const char hx[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void
batch_hash_hex(char *out, const void *buf, size_t n, size_t outlen)
{
    unsigned char h[crypto_generichash_BYTES_MAX];

    crypto_generichash(h, outlen, buf, n, NULL, 0);
    batch_to_hex(out, h, outlen);
}

char *
batch_canonical(const json_t *j)
{
    return json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17) |
                             JSON_ENCODE_ANY);
}

size_t
batch_json_depth(json_t *j)
{
    size_t d = 0;

    if (json_is_object(j)) {
        const char *k;
        json_t *v;

        json_object_foreach(j, k, v)
        {
            size_t e = batch_json_depth(v);
            if (e > d)
                d = e;
        }
        return d + 1;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;

        json_array_foreach(j, i, v)
        {
            size_t e = batch_json_depth(v);
            if (e > d)
                d = e;
        }
        return d + 1;
    }
    return 0;
}

int
batch_json_parse(json_t **out, const char *path, const char *buf, size_t len, int quiet)
{
    json_error_t err;

    *out = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    if (*out == NULL) {
        char text[4 * sizeof err.text]; // jansson quotes the manifest's bytes

        if (!quiet)
            cli_error("%s:%d:%d: %s", path, err.line, err.column,
                      asec__printable(text, sizeof text, err.text));
        return EXIT_DATAERR;
    }
    if (batch_json_depth(*out) > BATCH_MANIFEST_MAX_DEPTH) {
        if (!quiet)
            cli_error("%s: nesting deeper than %d levels", path,
                      BATCH_MANIFEST_MAX_DEPTH);
        json_decref(*out);
        *out = NULL;
        return EXIT_DATAERR;
    }
    return 0;
}

/* Read a whole file of at most cap bytes.  Returns 0, or an exit status
 * after printing a message (66 missing, 65 too large, 74 read error).
 * With quiet, prints nothing. */
int
batch_slurp(const char *path, size_t cap, char **out, size_t *len, int quiet)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, alloc = 0;

    *out = NULL;
    if (f == NULL) {
        int e = errno; // before printing, which may change it

        if (!quiet)
            cli_error("%s: %s", path, strerror(e));
        return e == ENOENT || e == EACCES ? EXIT_NOINPUT : EXIT_IOERR;
    }
    for (;;) {
        size_t r;

        if (n == alloc) {
            char *nb;

            if (alloc > cap) {
                if (!quiet)
                    cli_error("%s: larger than the cap of %zu bytes", path, cap);
                free(buf);
                fclose(f);
                return EXIT_DATAERR;
            }
            alloc = alloc ? 2 * alloc : 4096;
            nb = realloc(buf, alloc + 1);
            if (nb == NULL) {
                if (!quiet)
                    cli_error("%s: out of memory", path);
                free(buf);
                fclose(f);
                return EXIT_TEMPFAIL;
            }
            buf = nb;
        }
        r = fread(buf + n, 1, alloc - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f)) {
        if (!quiet)
            cli_error("%s: read error", path);
        free(buf);
        fclose(f);
        return EXIT_IOERR;
    }
    fclose(f);
    if (n > cap) {
        if (!quiet)
            cli_error("%s: %zu bytes exceed the cap of %zu", path, n, cap);
        free(buf);
        return EXIT_DATAERR;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

char *
batch_path_join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + (c ? strlen(c) : 0) + 3;
    char *p = malloc(n);

    if (p != NULL)
        snprintf(p, n, "%s/%s%s%s", a, b, c ? "/" : "", c ? c : "");
    return p;
}

/* ------------------------------------------------------------ validation */

/* experiments[e].key of x, when present: an array of strings (what: "strings"
 * or "paths"), each at most maxlen bytes (0: any length).  Returns 0 or 78. */
static int
check_string_array(const char *mpath, size_t e, json_t *x, const char *key,
                   const char *what, size_t maxlen)
{
    json_t *v = json_object_get(x, key), *a;
    size_t i;

    if (v == NULL)
        return 0;
    if (!json_is_array(v)) {
        cli_error("%s: experiments[%zu].%s must be an array of %s", mpath, e, key, what);
        return EXIT_CONFIG;
    }
    json_array_foreach(v, i, a)
    {
        if (!json_is_string(a) || (maxlen > 0 && strlen(json_string_value(a)) > maxlen)) {
            if (maxlen > 0)
                cli_error("%s: experiments[%zu].%s[%zu] must be a string of at most %zu "
                          "bytes",
                          mpath, e, key, i, maxlen);
            else
                cli_error("%s: experiments[%zu].%s[%zu] must be a path", mpath, e, key, i);
            return EXIT_CONFIG;
        }
    }
    return 0;
}

/* One experiment of the manifest: check its fields.  Returns 0 or 78. */
static int
check_experiment(const char *mpath, size_t e, json_t *x, size_t max_tasks)
{
    static const char *const known[] = {"command", "args",       "grid", "seeds",
                                        "inputs",  "dp_release", NULL};
    const char *k;
    json_t *v;
    char q[256];
    int st;

    if (!json_is_object(x)) {
        cli_error("%s: experiments[%zu] is not an object", mpath, e);
        return EXIT_CONFIG;
    }
    json_object_foreach(x, k, v)
    {
        int ok = 0;

        for (size_t i = 0; known[i] != NULL; i++)
            ok |= strcmp(k, known[i]) == 0;
        if (!ok) {
            cli_error("%s: experiments[%zu]: unknown key '%s'", mpath, e, PR(q, k));
            return EXIT_CONFIG;
        }
    }
    if (!json_is_string(json_object_get(x, "command"))) {
        cli_error("%s: experiments[%zu].command must be a string such as "
                  "\"account epsilon\"",
                  mpath, e);
        return EXIT_CONFIG;
    }
    if ((st = check_string_array(mpath, e, x, "args", "strings", BATCH_MAX_ARG_LEN)) != 0)
        return st;
    v = json_object_get(x, "grid");
    if (v != NULL) {
        json_t *vals;

        if (!json_is_object(v)) {
            cli_error("%s: experiments[%zu].grid must be an object", mpath, e);
            return EXIT_CONFIG;
        }
        json_object_foreach(v, k, vals)
        {
            size_t i;
            json_t *a;

            if (strncmp(k, "--", 2) != 0 || strlen(k) < 3 || strchr(k, '=') != NULL) {
                cli_error("%s: experiments[%zu].grid: key '%s' is not a long option "
                          "such as \"--sigma\"",
                          mpath, e, PR(q, k));
                return EXIT_CONFIG;
            }
            if (!json_is_array(vals) || json_array_size(vals) == 0) {
                cli_error("%s: experiments[%zu].grid.%s must be a non-empty array", mpath,
                          e, PR(q, k));
                return EXIT_CONFIG;
            }
            json_array_foreach(vals, i, a)
            {
                if (!json_is_number(a) && !json_is_string(a)) {
                    cli_error("%s: experiments[%zu].grid.%s[%zu] must be a number or "
                              "a string",
                              mpath, e, PR(q, k), i);
                    return EXIT_CONFIG;
                }
                if (json_is_real(a) && !isfinite(json_real_value(a))) {
                    cli_error("%s: experiments[%zu].grid.%s[%zu] is not finite", mpath, e,
                              PR(q, k), i);
                    return EXIT_CONFIG;
                }
            }
        }
    }
    v = json_object_get(x, "seeds");
    if (v != NULL) {
        size_t i;
        json_t *a;
        json_int_t from, count;

        if (json_is_array(v)) {
            json_array_foreach(v, i, a)
            {
                if (!json_is_integer(a) || json_integer_value(a) < 0) {
                    cli_error("%s: experiments[%zu].seeds[%zu] must be an integer >= 0",
                              mpath, e, i);
                    return EXIT_CONFIG;
                }
            }
        } else if (json_unpack(v, "{s:I, s:I !}", "from", &from, "count", &count) != 0 ||
                   from < 0 || count < 1 || (uintmax_t)count > max_tasks) {
            cli_error("%s: experiments[%zu].seeds must be an array of integers or "
                      "{\"from\": N, \"count\": K}",
                      mpath, e);
            return EXIT_CONFIG;
        }
    }
    if ((st = check_string_array(mpath, e, x, "inputs", "paths", 0)) != 0)
        return st;
    v = json_object_get(x, "dp_release");
    if (v != NULL && !json_is_boolean(v)) {
        cli_error("%s: experiments[%zu].dp_release must be true or false", mpath, e);
        return EXIT_CONFIG;
    }
    return 0;
}

/* The top-level keys.  Returns 0 or 78. */
static int
check_manifest(const char *mpath, json_t *m, struct batch_plan *plan)
{
    const char *k;
    json_t *v, *exps;
    char q[256];

    if (!json_is_object(m)) {
        cli_error("%s: the manifest must be a JSON object", mpath);
        return EXIT_CONFIG;
    }
    json_object_foreach(m, k, v)
    {
        if (strcmp(k, "schema_version") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) != BATCH_SCHEMA_VERSION) {
                cli_error("%s: schema_version must be %d", mpath, BATCH_SCHEMA_VERSION);
                return EXIT_CONFIG;
            }
        } else if (strcmp(k, "name") == 0) {
            if (!json_is_string(v)) {
                cli_error("%s: name must be a string", mpath);
                return EXIT_CONFIG;
            }
            plan->name = json_string_value(v);
        } else if (strcmp(k, "plot") == 0) {
            const char *px, *py;

            if (json_unpack(v, "{s:s, s:s !}", "x", &px, "y", &py) != 0) {
                cli_error("%s: plot must be {\"x\": \"--option\", \"y\": "
                          "\"dotted.result.key\"}",
                          mpath);
                return EXIT_CONFIG;
            }
            plan->plot = v;
        } else if (strcmp(k, "experiments") != 0) {
            cli_error("%s: unknown key '%s' (expected schema_version, name, experiments, "
                      "plot)",
                      mpath, PR(q, k));
            return EXIT_CONFIG;
        }
    }
    exps = json_object_get(m, "experiments");
    if (!json_is_array(exps) || json_array_size(exps) == 0) {
        cli_error("%s: 'experiments' must be a non-empty array", mpath);
        return EXIT_CONFIG;
    }
    return 0;
}

/* ------------------------------------------------------------- expansion */

struct task_id {
    char id[2 * BATCH_ID_BYTES + 1];
    size_t index;
};

struct expansion {
    const char *mpath;
    const struct batch_plan_env *env;
    struct batch_plan *plan;
    size_t cap; /* of plan->text */
    struct task_id *ids;
    size_t ids_cap;
};

/* Append task o (consumed) as the next line of tasks.jsonl. */
static int
emit_task(struct expansion *x, json_t *o)
{
    struct batch_plan *p = x->plan;
    const char *id = json_string_value(json_object_get(o, "id"));
    char *line;
    size_t n;

    if (p->ntasks >= x->env->max_tasks) {
        json_decref(o);
        cli_error("%s: more than %zu tasks", x->mpath, x->env->max_tasks);
        return EXIT_CONFIG;
    }
    if (id == NULL ||
        json_object_set_new(o, "index", json_integer((json_int_t)p->ntasks)) != 0 ||
        (line = batch_canonical(o)) == NULL) {
        json_decref(o);
        cli_error("%s: out of memory", x->mpath);
        return EXIT_TEMPFAIL;
    }
    n = strlen(line);
    if (n + 1 > x->env->max_bytes - p->len) { // p->len <= max_bytes
        free(line);
        json_decref(o);
        cli_error("%s: the task list exceeds %zu bytes", x->mpath, x->env->max_bytes);
        return EXIT_CONFIG;
    }
    if (p->len + n + 2 > x->cap) {
        size_t cap = 2 * (p->len + n + 2) + 4096;
        char *nt;

        if (cap > x->env->max_bytes + 2)
            cap = x->env->max_bytes + 2;
        if ((nt = realloc(p->text, cap)) == NULL) {
            free(line);
            json_decref(o);
            cli_error("%s: out of memory", x->mpath);
            return EXIT_TEMPFAIL;
        }
        p->text = nt;
        x->cap = cap;
    }
    if (p->ntasks == x->ids_cap) {
        size_t cap = x->ids_cap ? 2 * x->ids_cap : 64;
        struct task_id *ni = realloc(x->ids, cap * sizeof *ni);

        if (ni == NULL) {
            free(line);
            json_decref(o);
            cli_error("%s: out of memory", x->mpath);
            return EXIT_TEMPFAIL;
        }
        x->ids = ni;
        x->ids_cap = cap;
    }
    snprintf(x->ids[p->ntasks].id, sizeof x->ids[p->ntasks].id, "%s", id);
    x->ids[p->ntasks].index = p->ntasks;
    memcpy(p->text + p->len, line, n);
    p->len += n;
    p->text[p->len++] = '\n';
    p->text[p->len] = '\0';
    p->ntasks++;
    free(line);
    json_decref(o);
    return 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Build one task of experiment e: argv = words, args, grid values at the
 * odometer position, --seed; its id hashes argv, seed, inputs and the tool
 * version. */
static int
one_task(struct expansion *ex, size_t e, json_t *x, json_t *words, json_t *inputs,
         const char **keys, const size_t *odo, size_t nkeys, json_t *seedv, int dp)
{
    json_t *grid = json_object_get(x, "grid"), *args = json_object_get(x, "args");
    json_t *argv = json_copy(words), *params = json_object(), *o, *a;
    char hx[2 * BATCH_ID_BYTES + 1], *text;
    size_t i;

    if (argv == NULL || params == NULL)
        goto nomem;
    if (args != NULL)
        json_array_foreach(args, i, a)
        {
            if (json_array_append(argv, a) != 0)
                goto nomem;
        }
    for (size_t k = 0; k < nkeys; k++) {
        json_t *val = json_array_get(json_object_get(grid, keys[k]), odo[k]);
        char num[64], *arg;
        const char *vt;
        size_t n;

        if (json_is_string(val))
            vt = json_string_value(val);
        else if (json_is_integer(val)) {
            snprintf(num, sizeof num, "%lld", (long long)json_integer_value(val));
            vt = num;
        } else {
            /* Shortest decimal that reads back as the value. */
            double v = json_real_value(val);

            for (int prec = 15; prec <= 17; prec++) {
                snprintf(num, sizeof num, "%.*g", prec, v);
                if (strtod(num, NULL) == v)
                    break;
            }
            vt = num;
        }
        n = strlen(keys[k]) + strlen(vt) + 2;
        if ((arg = malloc(n)) == NULL)
            goto nomem;
        snprintf(arg, n, "%s=%s", keys[k], vt);
        if (json_array_append_new(argv, json_string(arg)) != 0) {
            free(arg);
            goto nomem;
        }
        free(arg);
        if (json_object_set(params, keys[k], val) != 0)
            goto nomem;
    }
    if (!json_is_null(seedv)) {
        char arg[48];

        snprintf(arg, sizeof arg, "--seed=%lld", (long long)json_integer_value(seedv));
        if (json_array_append_new(argv, json_string(arg)) != 0)
            goto nomem;
    }
    o = json_pack("{s:o, s:O, s:O, s:s}", "argv", argv, "seed", seedv, "inputs", inputs,
                  "tool_version", PACKAGE_VERSION);
    argv = NULL; // stolen by "o", even on failure
    if (o == NULL)
        goto nomem;
    if ((text = batch_canonical(o)) == NULL) {
        json_decref(o);
        goto nomem;
    }
    batch_hash_hex(hx, text, strlen(text), BATCH_ID_BYTES);
    free(text);
    json_object_del(o, "tool_version");
    json_object_set_new(o, "id", json_string(hx));
    json_object_set_new(o, "experiment", json_integer((json_int_t)e));
    json_object_set_new(o, "params", params);
    json_object_set_new(o, "dp_release", json_boolean(dp));
    return emit_task(ex, o);
nomem:
    json_decref(argv);
    json_decref(params);
    cli_error("%s: out of memory", ex->mpath);
    return EXIT_TEMPFAIL;
}

/* Append the tasks of experiment e. */
static int
expand_experiment(struct expansion *ex, size_t e, json_t *x)
{
    const char *mpath = ex->mpath;
    json_t *grid = json_object_get(x, "grid"), *seeds = json_object_get(x, "seeds");
    json_t *inputs = json_array(), *words = json_array();
    const char *cmd = json_string_value(json_object_get(x, "command"));
    const char **keys = NULL;
    size_t nkeys = grid ? json_object_size(grid) : 0, *odo = NULL, nseeds = 1;
    long long seed_from = 0;
    int st = 0, dp = json_is_true(json_object_get(x, "dp_release"));
    char *cmdcopy = strdup(cmd), *tok, *save = NULL, q[256];
    char *wv[2];
    size_t nw = 0, nwords = 0;

    if (inputs == NULL || words == NULL || cmdcopy == NULL) {
        cli_error("%s: out of memory", mpath);
        st = EXIT_TEMPFAIL;
        goto done;
    }
    for (tok = strtok_r(cmdcopy, " \t", &save); tok != NULL;
         tok = strtok_r(NULL, " \t", &save)) {
        if (nw == 2) {
            nw = 3;
            break;
        }
        wv[nw++] = tok;
    }
    if (nw == 0 || nw > 2 || ex->env->find(nw, wv, &nwords) == NULL || nwords != nw) {
        cli_error("%s: experiments[%zu].command: '%s' is not an attnsec command "
                  "(e.g. \"account epsilon\"; 'batch' cannot run itself)",
                  mpath, e, PR(q, cmd));
        st = EXIT_CONFIG;
        goto done;
    }
    for (size_t i = 0; i < nw; i++)
        json_array_append_new(words, json_string(wv[i]));
    if (json_array_size(json_object_get(x, "args")) + nw + nkeys + 1 > BATCH_MAX_ARGS) {
        cli_error("%s: experiments[%zu]: more than %d arguments", mpath, e,
                  BATCH_MAX_ARGS);
        st = EXIT_CONFIG;
        goto done;
    }
    /* Inputs are hashed into every task id: a changed input gives new ids. */
    if (json_object_get(x, "inputs") != NULL) {
        size_t i;
        json_t *a;

        json_array_foreach(json_object_get(x, "inputs"), i, a)
        {
            char hx[65];
            long long bytes;
            const char *ip = json_string_value(a);

            if (ex->env->hash_file(hx, ip, &bytes) != 0) {
                cli_error("%s: experiments[%zu].inputs[%zu]: %s: %s", mpath, e, i,
                          PR(q, ip),
                          errno == EINVAL ? "not a regular file" : strerror(errno));
                st = EXIT_NOINPUT;
                goto done;
            }
            json_array_append_new(inputs,
                                  json_pack("{s:s, s:I, s:s}", "path", ip, "bytes",
                                            (json_int_t)bytes, "blake2b_256", hx));
        }
    }
    if (json_is_array(seeds))
        nseeds = json_array_size(seeds);
    else if (seeds != NULL) {
        seed_from = (long long)json_integer_value(json_object_get(seeds, "from"));
        nseeds = (size_t)json_integer_value(json_object_get(seeds, "count"));
    }
    if (nkeys > 0) {
        const char *k;
        json_t *v;
        size_t i = 0;

        keys = calloc(nkeys, sizeof *keys);
        odo = calloc(nkeys, sizeof *odo);
        if (keys == NULL || odo == NULL) {
            cli_error("%s: out of memory", mpath);
            st = EXIT_TEMPFAIL;
            goto done;
        }
        json_object_foreach(grid, k, v) keys[i++] = k;
        qsort(keys, nkeys, sizeof *keys, cmp_str);
    }
    /* Odometer over the grid, last key fastest; seeds innermost. */
    for (;;) {
        for (size_t s = 0; s < (seeds ? nseeds : 1); s++) {
            json_t *seedv = json_null();

            if (seeds != NULL) {
                long long sv =
                    json_is_array(seeds)
                        ? (long long)json_integer_value(json_array_get(seeds, s))
                        : seed_from + (long long)s;

                seedv = json_integer((json_int_t)sv);
            }
            st = seedv == NULL
                     ? EXIT_TEMPFAIL
                     : one_task(ex, e, x, words, inputs, keys, odo, nkeys, seedv, dp);
            json_decref(seedv);
            if (st != 0)
                goto done;
        }
        /* advance the odometer */
        {
            size_t k = nkeys;

            while (k > 0) {
                k--;
                if (++odo[k] < json_array_size(json_object_get(grid, keys[k])))
                    break;
                odo[k] = 0;
                if (k == 0) {
                    k = SIZE_MAX;
                    break;
                }
            }
            if (nkeys == 0 || k == SIZE_MAX)
                break;
        }
    }
done:
    free(keys);
    free(odo);
    free(cmdcopy);
    json_decref(inputs);
    json_decref(words);
    return st;
}

static int
cmp_id(const void *a, const void *b)
{
    const struct task_id *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

/* Ids must be unique: report the first task that repeats an earlier one,
 * and the first task it repeats. */
static int
check_unique(struct expansion *ex)
{
    size_t n = ex->plan->ntasks, rep = SIZE_MAX, orig = 0;

    if (n < 2)
        return 0;
    qsort(ex->ids, n, sizeof *ex->ids, cmp_id);
    for (size_t i = 1; i < n; i++) {
        /* the second of a group of equal ids; its first is the group's head */
        if (strcmp(ex->ids[i].id, ex->ids[i - 1].id) == 0 &&
            (i < 2 || strcmp(ex->ids[i - 1].id, ex->ids[i - 2].id) != 0) &&
            ex->ids[i].index < rep) {
            rep = ex->ids[i].index;
            orig = ex->ids[i - 1].index;
        }
    }
    if (rep == SIZE_MAX)
        return 0;
    cli_error("%s: task %zu repeats task %zu (same argv, inputs and seed)", ex->mpath,
              rep, orig);
    return EXIT_CONFIG;
}

void
batch_plan_free(struct batch_plan *plan)
{
    free(plan->text);
    memset(plan, 0, sizeof *plan);
}

int
batch_plan_expand(struct batch_plan *plan, const char *mpath, json_t *m,
                  const struct batch_plan_env *env)
{
    struct expansion ex = {mpath, env, plan, 0, NULL, 0};
    size_t i;
    json_t *v;
    int st;

    memset(plan, 0, sizeof *plan);
    if ((st = check_manifest(mpath, m, plan)) != 0)
        goto done;
    json_array_foreach(json_object_get(m, "experiments"), i, v)
    {
        if ((st = check_experiment(mpath, i, v, env->max_tasks)) != 0 ||
            (st = expand_experiment(&ex, i, v)) != 0)
            goto done;
    }
    if ((st = check_unique(&ex)) != 0)
        goto done;
    if (plan->text == NULL && (plan->text = calloc(1, 1)) == NULL) { // no tasks
        cli_error("%s: out of memory", mpath);
        st = EXIT_TEMPFAIL;
        goto done;
    }
    batch_hash_hex(plan->tasks_hash, plan->text, plan->len, 32);
done:
    free(ex.ids);
    if (st != 0)
        batch_plan_free(plan);
    return st;
}

/* ------------------------------------------------------------- campaign */

/* A task id names files (results/ID.json, work/ID/, locks/ID.lock): exactly
 * 2 BATCH_ID_BYTES lower-case hex digits, so that no id can lead outside
 * the campaign directory. */
static int
task_id_ok(const char *id)
{
    return strlen(id) == 2 * BATCH_ID_BYTES &&
           strspn(id, "0123456789abcdef") == 2 * BATCH_ID_BYTES;
}

/* A task's argv: a non-empty array of strings. */
static int
argv_ok(json_t *argv)
{
    size_t i;
    json_t *a;

    if (!json_is_array(argv) || json_array_size(argv) == 0)
        return 0;
    json_array_foreach(argv, i, a)
    {
        if (!json_is_string(a))
            return 0;
    }
    return 1;
}

void
batch_campaign_free(struct batch_campaign *c)
{
    for (size_t i = 0; i < c->ntasks; i++)
        json_decref(c->tasks[i].obj);
    free(c->tasks);
    free(c->tasks_text);
    json_decref(c->plan);
    memset(c, 0, sizeof *c);
}

/* Load DIR/plan.json and DIR/tasks.jsonl, checking the tasks' hash. */
int
batch_campaign_load(struct batch_campaign *c, const char *dir)
{
    char *p = NULL, hx[65], *line, *save = NULL, *text;
    size_t len;
    json_int_t ntasks;
    const char *want, *ver;
    int st;
    char q[256]; // plan.json strings quoted in messages

    memset(c, 0, sizeof *c);
    c->dir = dir;
    /* Both files are what 'batch plan' wrote: regular files only (a FIFO
     * must not block, /dev/zero must not be read to the cap). */
    if ((p = batch_path_join(dir, "plan.json", NULL)) == NULL)
        return EXIT_TEMPFAIL;
    st = slurp_regular(p, BATCH_MANIFEST_MAX_BYTES, &text, &len);
    if ((st = slurp_exit(st, p, len, BATCH_MANIFEST_MAX_BYTES)) == 0) {
        st = batch_json_parse(&c->plan, p, text, len, 0);
        free(text);
    }
    free(p);
    if (st != 0) {
        if (st == EXIT_NOINPUT)
            cli_error("%s: not a campaign directory (run 'attnsec batch plan' first)",
                      dir);
        return st;
    }
    if (json_unpack(c->plan, "{s:I, s:s, s:{s:s}}", "ntasks", &ntasks,
                    "tasks_blake2b_256", &want, "tool", "version", &ver) != 0 ||
        ntasks < 0 || (size_t)ntasks > BATCH_MAX_TASKS) {
        cli_error("%s/plan.json: missing or malformed ntasks, tasks_blake2b_256 or "
                  "tool.version",
                  dir);
        return EXIT_DATAERR;
    }
    if (strcmp(ver, PACKAGE_VERSION) != 0) {
        cli_error("%s: planned with attnsec %s, this is attnsec %s; task ids hash the "
                  "tool version, so plan again into a new directory",
                  dir, PR(q, ver), PACKAGE_VERSION);
        return EXIT_CONFIG;
    }
    if ((p = batch_path_join(dir, "tasks.jsonl", NULL)) == NULL)
        return EXIT_TEMPFAIL;
    st = slurp_regular(p, BATCH_TASKS_MAX_BYTES, &c->tasks_text, &len);
    st = slurp_exit(st, p, len, BATCH_TASKS_MAX_BYTES);
    free(p);
    if (st != 0)
        return st;
    batch_hash_hex(hx, c->tasks_text, len, 32);
    if (strcmp(hx, want) != 0) {
        cli_error("%s/tasks.jsonl: BLAKE2b %s does not match plan.json (%s); the task "
                  "list was modified",
                  dir, hx, PR(q, want));
        return EXIT_DATAERR;
    }
    c->tasks = calloc((size_t)ntasks ? (size_t)ntasks : 1, sizeof *c->tasks);
    if (c->tasks == NULL)
        return EXIT_TEMPFAIL;
    for (line = strtok_r(c->tasks_text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &err);
        json_int_t idx;
        const char *id;
        int dp = 0;
        struct batch_task *t;

        if (o == NULL || c->ntasks >= (size_t)ntasks ||
            json_unpack(o, "{s:I, s:s, s?b}", "index", &idx, "id", &id, "dp_release",
                        &dp) != 0 ||
            idx != (json_int_t)c->ntasks || !task_id_ok(id) ||
            !argv_ok(json_object_get(o, "argv"))) {
            cli_error("%s/tasks.jsonl:%zu: malformed task line", dir, c->ntasks + 1);
            json_decref(o);
            return EXIT_DATAERR;
        }
        t = &c->tasks[c->ntasks++];
        t->index = (size_t)idx;
        t->id = id;
        t->obj = o;
        t->dp_release = dp;
    }
    if (c->ntasks != (size_t)ntasks) {
        cli_error("%s/tasks.jsonl: %zu tasks, plan.json says %lld", dir, c->ntasks,
                  (long long)ntasks);
        return EXIT_DATAERR;
    }
    return 0;
}
