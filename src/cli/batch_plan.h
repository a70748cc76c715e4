/* batch_plan.h - the manifest side of 'attnsec batch plan' (batch_plan.c):
 * reading a JSON manifest strictly, validating it and expanding it into
 * the task list tasks.jsonl, with no file-system side effect, so that
 * cmd_batch.c creates the campaign directory only for a valid manifest
 * and the fuzz harness tests/fuzz/fuzz_batch.c can drive it directly.
 *
 * The campaign reader of batch run, status and merge (plan.json and
 * tasks.jsonl) is here too, for the same reason.
 *
 * Functions print their errors (cli_error, "PATH: ...", one line, untrusted
 * text escaped) and return an exit status (cli.h): 0, 65 malformed JSON,
 * 66 a missing input file, 75 out of memory, 78 invalid manifest.
 */
#ifndef ATTNSEC_BATCH_PLAN_H
#define ATTNSEC_BATCH_PLAN_H

#include <stddef.h>

#include <jansson.h>

#include "cli.h"

/* Caps on manifests and plans (RELIABILITY.md section 5.5). */
#define BATCH_MANIFEST_MAX_BYTES ((size_t)1 << 20)
#define BATCH_MANIFEST_MAX_DEPTH 16
#define BATCH_MAX_TASKS ((size_t)1000000)
#define BATCH_MAX_ARGS 256
#define BATCH_MAX_ARG_LEN 4096
#define BATCH_TASKS_MAX_BYTES ((size_t)1 << 30) /* tasks.jsonl, as batch run reads it */
#define BATCH_ID_BYTES 16                       /* task ids: BLAKE2b-128, 32 hex digits */
#define BATCH_SCHEMA_VERSION 1

/* What the expansion needs from its caller. */
struct batch_plan_env {
    /* The command named by argv[0] (and argv[1] for groups with methods),
     * *nwords set to 1 or 2; NULL when unknown or not allowed in a task. */
    cli_fn (*find)(size_t argc, char *const *argv, size_t *nwords);
    /* BLAKE2b-256 (hex) and size of an input file; 0, or -1 with errno
     * (EINVAL: not a regular file). */
    int (*hash_file)(char out[65], const char *path, long long *bytes);
    size_t max_tasks; /* BATCH_MAX_TASKS */
    size_t max_bytes; /* BATCH_TASKS_MAX_BYTES: the size of tasks.jsonl */
};

/* The expanded plan.  text is tasks.jsonl: one canonical JSON line per task
 * (index, id, argv, seed, inputs, params, experiment, dp_release). */
struct batch_plan {
    char *text;
    size_t len;
    size_t ntasks;
    char tasks_hash[65]; /* BLAKE2b-256 of text, hex */
    const char *name;    /* the manifest's "name", or NULL (borrowed) */
    json_t *plot;        /* the manifest's "plot", or NULL (borrowed) */
};

/* Lower-case hex of n bytes into out (2 n + 1 bytes). */
void batch_to_hex(char *out, const unsigned char *b, size_t n);
/* BLAKE2b of buf, outlen bytes, as hex into out (2 outlen + 1). */
void batch_hash_hex(char *out, const void *buf, size_t n, size_t outlen);
/* Canonical text of a JSON value: sorted keys, compact, 17 digits; free()
 * it.  NULL when out of memory. */
char *batch_canonical(const json_t *j);
/* Nesting depth of a JSON value (0 for a scalar). */
size_t batch_json_depth(json_t *j);

/* Read a whole file of at most cap bytes into *out (free() it; NUL-
 * terminated), *len its size: any readable file, a pipe included (the
 * manifest of 'batch plan'; a campaign's own files are read with
 * slurp_regular()).  0, or an exit status after a message (66
 * missing, 65 too large, 74 read error, 75 out of memory); quiet: no
 * message. */
int batch_slurp(const char *path, size_t cap, char **out, size_t *len, int quiet);
/* "a/b" or "a/b/c" (c may be NULL) in fresh memory (free() it), or NULL. */
char *batch_path_join(const char *a, const char *b, const char *c);

/* Parse len bytes of JSON read from path: duplicate keys rejected, nesting
 * capped at BATCH_MANIFEST_MAX_DEPTH.  0 and *out (json_decref it), or 65
 * with *out NULL (a message unless quiet). */
int batch_json_parse(json_t **out, const char *path, const char *buf, size_t len,
                     int quiet);

/* Validate manifest m (read from mpath) and expand it into *plan (release
 * with batch_plan_free; zeroed on failure).  Touches no file but the
 * experiments' inputs, which env->hash_file reads. */
int batch_plan_expand(struct batch_plan *plan, const char *mpath, json_t *m,
                      const struct batch_plan_env *env);
void batch_plan_free(struct batch_plan *plan);

/* A campaign directory as batch run, status and merge read it. */
struct batch_task {
    size_t index;
    const char *id; /* borrowed from obj */
    json_t *obj;    /* the tasks.jsonl line */
    int dp_release;
};

struct batch_campaign {
    const char *dir;
    json_t *plan;
    struct batch_task *tasks;
    size_t ntasks;
    char *tasks_text; /* tasks.jsonl */
};

/* Load DIR/plan.json and DIR/tasks.jsonl: the plan's fields and tool
 * version, the tasks' BLAKE2b against the plan, every task line (index in
 * order, a 32-hex-digit id, argv a non-empty array of strings).  0, or an
 * exit status after a message (65 malformed, 66 not a campaign, 78 planned
 * by another version, 74/75).  Free with batch_campaign_free() either way. */
int batch_campaign_load(struct batch_campaign *c, const char *dir);
void batch_campaign_free(struct batch_campaign *c);

#endif /* ATTNSEC_BATCH_PLAN_H */
