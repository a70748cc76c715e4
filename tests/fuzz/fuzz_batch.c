/* fuzz_batch.c - libFuzzer harness for batch manifests: the reading,
 * validation and expansion behind 'attnsec batch plan'
 * (src/cli/batch_plan.c: batch_json_parse, batch_plan_expand), linked in
 * directly.
 *
 * The input is the manifest.  The command table is a stand-in with the
 * program's command names (the real one would link every command), and
 * the input files are not read: an input path whose length is a multiple
 * of 4 "exists" (its hash is BLAKE2b of the path, its size the path's
 * length), one of odd length is missing, the others are not regular
 * files.  The caps are lowered to 512 tasks and 1 MiB of
 * tasks.jsonl so that every input runs in milliseconds; the program uses
 * the same code with 10^6 tasks and 1 GiB.
 *
 * What must hold:
 *   - the status is 0, or 65 (bad JSON), 66 (missing input), 75 (out of
 *     memory) or 78 (invalid manifest) with exactly one line on stderr,
 *     "attnsec fuzz: fuzz.json...", of printable text (manifest keys and
 *     strings are quoted escaped);
 *   - an accepted manifest prints nothing and gives at most 512 tasks and
 *     1 MiB of text: one canonical JSON line per task, index = line number,
 *     argv an array of strings, a 32-hex-digit id equal to BLAKE2b-128 of
 *     the canonical {argv, seed, inputs, tool_version}, ids unique, and
 *     tasks_hash = BLAKE2b-256 of the text.
 * No file is written: batch_plan_expand has no output directory, which is
 * why a failed 'batch plan' leaves none (tests/cli/batch.sh checks the
 * program).  Seeds: tests/fuzz/corpus/fuzz_batch and the manifests in
 * tests/batch; dictionary batch.dict.
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "attnsec/attnsec.h"
#include "cli/batch_plan.h"
#include "cli/cli.h"
#include "fuzz.h"

#define FUZZ_MAX_TASKS 512
#define FUZZ_MAX_BYTES ((size_t)1 << 20)
#define MPATH "fuzz.json"

static int
dummy_command(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* The groups and methods of src/cli/attnsec.c that a task may run. */
static cli_fn
find_stand_in(size_t argc, char *const *argv, size_t *nwords)
{
    static const char *const table[][6] = {
        {"account", "epsilon", "delta", "sigma", "events", NULL},
        {"attack", "dlg", "attn-invert", NULL},
        {"defend", "dpsgd", "dp-attn", "copyright", NULL},
        {"model", "init", "info", "grad", "eval", NULL},
        {"data", "list", "export", NULL},
        {"inspect", NULL},
        {"release", NULL},
        {"audit", NULL},
    };

    if (argc == 0)
        return NULL;
    for (size_t g = 0; g < sizeof table / sizeof table[0]; g++) {
        if (strcmp(table[g][0], argv[0]) != 0)
            continue;
        if (table[g][1] == NULL) {
            *nwords = 1;
            return dummy_command;
        }
        if (argc < 2)
            return NULL;
        for (size_t m = 1; m < 6 && table[g][m] != NULL; m++)
            if (strcmp(table[g][m], argv[1]) == 0) {
                *nwords = 2;
                return dummy_command;
            }
        return NULL;
    }
    return NULL;
}

static int
hash_stand_in(char out[65], const char *path, long long *bytes)
{
    size_t n = strlen(path);

    if (n % 2 != 0 || n % 4 == 2) {
        errno = n % 2 != 0 ? ENOENT : EINVAL; // missing, or not a regular file
        return -1;
    }
    batch_hash_hex(out, path, n, 32);
    *bytes = (long long)n;
    return 0;
}

static const struct batch_plan_env env = {find_stand_in, hash_stand_in, FUZZ_MAX_TASKS,
                                          FUZZ_MAX_BYTES};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup("fuzz_batch");
    if (sodium_init() < 0)
        fuzz_bug("sodium_init failed");
    cli_set_command("fuzz", NULL);
    return 0;
}

static int
cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/* One accepted task line, checked against an independent derivation. */
static void
check_line(const char *line, size_t len, size_t index, char *id_out)
{
    json_error_t err;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err), *argv, *a, *idobj;
    const char *id;
    char *canon, hx[33];
    size_t i;

    if (o == NULL)
        fuzz_bug("task line %zu is not JSON: %s", index, err.text);
    FUZZ_CHECK(json_is_object(o));
    FUZZ_CHECK(json_integer_value(json_object_get(o, "index")) == (json_int_t)index);
    FUZZ_CHECK(json_is_integer(json_object_get(o, "experiment")));
    FUZZ_CHECK(json_is_boolean(json_object_get(o, "dp_release")));
    FUZZ_CHECK(json_is_object(json_object_get(o, "params")));
    FUZZ_CHECK(json_is_array(json_object_get(o, "inputs")));
    a = json_object_get(o, "seed");
    FUZZ_CHECK(json_is_null(a) || (json_is_integer(a) && json_integer_value(a) >= 0));
    argv = json_object_get(o, "argv");
    FUZZ_CHECK(json_is_array(argv) && json_array_size(argv) >= 1);
    json_array_foreach(argv, i, a)
    {
        FUZZ_CHECK(json_is_string(a));
    }
    FUZZ_CHECK(json_object_size(o) == 8);
    id = json_string_value(json_object_get(o, "id"));
    FUZZ_CHECK(id != NULL && strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32);
    memcpy(id_out, id, 32);
    /* the line is in canonical form */
    canon = batch_canonical(o);
    FUZZ_CHECK(canon != NULL && strlen(canon) == len && memcmp(canon, line, len) == 0);
    free(canon);
    /* the id hashes argv, seed, inputs and the tool version */
    idobj = json_pack("{s:O, s:O, s:O, s:s}", "argv", argv, "seed",
                      json_object_get(o, "seed"), "inputs", json_object_get(o, "inputs"),
                      "tool_version", PACKAGE_VERSION);
    FUZZ_CHECK(idobj != NULL);
    canon = json_dumps(idobj, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17) |
                                  JSON_ENCODE_ANY);
    FUZZ_CHECK(canon != NULL);
    {
        unsigned char h[16];

        crypto_generichash(h, sizeof h, (const unsigned char *)canon, strlen(canon), NULL,
                           0);
        for (size_t k = 0; k < 16; k++)
            snprintf(hx + 2 * k, 3, "%02x", h[k]);
    }
    if (strcmp(hx, id) != 0)
        fuzz_bug("task %zu: id %s, but its argv, seed and inputs hash to %s", index, id,
                 hx);
    free(canon);
    json_decref(idobj);
    json_decref(o);
}

static void
check_plan(const struct batch_plan *p)
{
    char hx[65], *ids;
    size_t pos = 0;

    FUZZ_CHECK(p->text != NULL && p->ntasks <= FUZZ_MAX_TASKS &&
               p->len <= FUZZ_MAX_BYTES);
    FUZZ_CHECK(strlen(p->text) == p->len);
    batch_hash_hex(hx, p->text, p->len, 32);
    FUZZ_CHECK(strcmp(hx, p->tasks_hash) == 0);
    ids = malloc(32 * (p->ntasks ? p->ntasks : 1));
    FUZZ_CHECK(ids != NULL);
    for (size_t i = 0; i < p->ntasks; i++) {
        const char *nl = memchr(p->text + pos, '\n', p->len - pos);

        FUZZ_CHECK(nl != NULL);
        check_line(p->text + pos, (size_t)(nl - (p->text + pos)), i, ids + 32 * i);
        pos = (size_t)(nl - p->text) + 1;
    }
    FUZZ_CHECK(pos == p->len);
    if (p->ntasks > 1)
        qsort(ids, p->ntasks, 32, cmp_id);
    for (size_t i = 1; i < p->ntasks; i++)
        FUZZ_CHECK(memcmp(ids + 32 * (i - 1), ids + 32 * i, 32) != 0);
    free(ids);
}

static void
check_message(int st, const char *out, size_t len)
{
    static const char prefix[] = "attnsec fuzz: " MPATH;

    if (st != EXIT_DATAERR && st != EXIT_NOINPUT && st != EXIT_TEMPFAIL &&
        st != EXIT_CONFIG)
        fuzz_bug("unexpected status %d", st);
    if (len < sizeof prefix || memcmp(out, prefix, sizeof prefix - 1) != 0 ||
        (out[sizeof prefix - 1] != ':'))
        fuzz_bug("status %d: the message does not start with '%s:'", st, prefix);
    if (memchr(out, '\n', len) != out + len - 1)
        fuzz_bug("status %d: not exactly one line on stderr", st);
    for (size_t i = 0; i + 1 < len; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            fuzz_bug("status %d: the message holds control byte 0x%02x", st,
                     (unsigned char)out[i]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct batch_plan plan;
    json_t *m = NULL;
    char *out = NULL;
    size_t len = 0;
    FILE *saved = stderr, *mem = open_memstream(&out, &len);
    int st;

    if (mem == NULL)
        fuzz_bug("open_memstream failed");
    memset(&plan, 0xa5, sizeof plan); // must be set, even on failure
    stderr = mem;
    st = batch_json_parse(&m, MPATH, (const char *)data, size, 0);
    if (st == 0)
        st = batch_plan_expand(&plan, MPATH, m, &env);
    stderr = saved;
    if (fclose(mem) != 0)
        fuzz_bug("fclose of the message stream failed");
    if (st == 0) {
        FUZZ_CHECK(len == 0);
        check_plan(&plan);
        batch_plan_free(&plan);
    } else {
        FUZZ_CHECK(m != NULL || st == EXIT_DATAERR);
        if (m != NULL)
            FUZZ_CHECK(plan.text == NULL && plan.len == 0 && plan.ntasks == 0);
        check_message(st, out, len);
    }
    json_decref(m);
    free(out);
    return 0;
}
