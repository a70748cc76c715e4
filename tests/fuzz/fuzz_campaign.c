/* fuzz_campaign.c - libFuzzer harness for the campaign reader of 'attnsec
 * batch run|status|merge' (batch_campaign_load in src/cli/batch_plan.c:
 * DIR/plan.json and DIR/tasks.jsonl), linked in directly, on a scratch
 * campaign directory.
 *
 * Input layout: byte 0 is a mode, the rest is tasks.jsonl.
 *   mode & 1   tasks.jsonl ends at the first NUL; the bytes after it are
 *              plan.json, verbatim;
 *   otherwise  plan.json is made here from tasks.jsonl as 'batch plan'
 *              writes it (this version, ntasks = the non-empty lines, the
 *              BLAKE2b-256 of the bytes), with
 *   mode & 2   one task too many in ntasks,
 *   mode & 4   another tool version,
 *   mode & 8   a hash with one digit changed.
 *
 * What must hold: the status is 0, or 65, 66, 74, 75 or 78 with exactly
 * one printable line on stderr naming the directory (66: a second one,
 * "DIR: not a campaign directory"); on success the tasks
 * are the non-empty lines in order, each with index = its position, an id
 * of 32 lower-case hex digits (ids name files: nothing may lead outside
 * the directory) and argv a non-empty array of strings, and a made plan
 * was accepted only when nothing was altered.  Nothing leaks.
 * Seeds: tests/fuzz/corpus/fuzz_campaign; dictionary batch.dict.
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "attnsec/attnsec.h"
#include "cli/batch_plan.h"
#include "cli/cli.h"
#include "fuzz.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup("fuzz_campaign");
    if (sodium_init() < 0)
        fuzz_bug("sodium_init failed");
    cli_set_command("fuzz", NULL);
    return 0;
}

static void
put(const char *dir, const char *name, const void *buf, size_t n)
{
    char path[600];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    fuzz_write_file(path, buf, n);
}

/* The non-empty lines of t (what strtok_r at '\n' yields). */
static size_t
count_lines(const uint8_t *t, size_t n)
{
    size_t lines = 0;

    for (size_t i = 0; i < n; i++)
        if (t[i] != '\n' && (i + 1 == n || t[i + 1] == '\n'))
            lines++;
    return lines;
}

static void
check_message(int st, const char *dir, const char *out, size_t len)
{
    char prefix[600];
    size_t pl;

    if (st != EXIT_DATAERR && st != EXIT_NOINPUT && st != EXIT_IOERR &&
        st != EXIT_TEMPFAIL && st != EXIT_CONFIG)
        fuzz_bug("unexpected status %d", st);
    pl = (size_t)snprintf(prefix, sizeof prefix, "attnsec fuzz: %s", dir);
    /* One line; a missing plan.json adds "DIR: not a campaign directory". */
    for (size_t pos = 0, n = 0; pos < len || n == 0; n++) {
        const char *nl = memchr(out + pos, '\n', len - pos);

        if (nl == NULL || n == (st == EXIT_NOINPUT ? 2u : 1u))
            fuzz_bug("status %d: not %s on stderr", st,
                     st == EXIT_NOINPUT ? "one or two lines" : "exactly one line");
        if ((size_t)(nl - (out + pos)) < pl || memcmp(out + pos, prefix, pl) != 0)
            fuzz_bug("status %d: a message does not start with '%s'", st, prefix);
        for (const char *q = out + pos; q < nl; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                fuzz_bug("status %d: the message holds control byte 0x%02x", st,
                         (unsigned char)*q);
        pos = (size_t)(nl - out) + 1;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned mode = size > 0 ? data[0] : 0;
    const uint8_t *tasks = size > 0 ? data + 1 : data, *plan = NULL;
    size_t tlen = size > 0 ? size - 1 : 0, plen = 0, lines;
    const char *dir = fuzz_scratch();
    struct batch_campaign c;
    char *out = NULL, *made = NULL;
    size_t len = 0;
    FILE *saved = stderr, *mem;
    int st, altered = 0;

    if (mode & 1) {
        const uint8_t *nul = memchr(tasks, 0, tlen);

        if (nul != NULL) {
            plan = nul + 1;
            plen = tlen - (size_t)(plan - tasks);
            tlen = (size_t)(nul - tasks);
        }
    }
    lines = count_lines(tasks, tlen);
    put(dir, "tasks.jsonl", tasks, tlen);
    if (!(mode & 1)) {
        char hx[65];
        json_t *j;

        batch_hash_hex(hx, tasks, tlen, 32);
        if (mode & 8) {
            hx[0] = hx[0] == '0' ? '1' : '0';
            altered = 1;
        }
        altered |= (mode & 6) != 0;
        j = json_pack("{s:i, s:{s:s, s:s}, s:I, s:s}", "schema_version", 1, "tool",
                      "name", "attnsec", "version",
                      mode & 4 ? "0.0.0-other" : PACKAGE_VERSION, "ntasks",
                      (json_int_t)(lines + ((mode & 2) != 0)), "tasks_blake2b_256", hx);
        made = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (made == NULL)
            fuzz_bug("out of memory");
        put(dir, "plan.json", made, strlen(made));
    } else if (plan != NULL) {
        put(dir, "plan.json", plan, plen);
    }

    mem = open_memstream(&out, &len);
    if (mem == NULL)
        fuzz_bug("open_memstream failed");
    stderr = mem;
    st = batch_campaign_load(&c, dir);
    stderr = saved;
    if (fclose(mem) != 0)
        fuzz_bug("fclose of the message stream failed");
    if (st == 0) {
        FUZZ_CHECK(len == 0);
        FUZZ_CHECK(!altered);
        FUZZ_CHECK(c.ntasks == lines);
        for (size_t i = 0; i < c.ntasks; i++) {
            const struct batch_task *t = &c.tasks[i];
            json_t *argv = json_object_get(t->obj, "argv"), *a;
            size_t k;

            FUZZ_CHECK(t->index == i && t->obj != NULL && t->id != NULL);
            FUZZ_CHECK(strlen(t->id) == 32 && strspn(t->id, "0123456789abcdef") == 32);
            FUZZ_CHECK(json_is_array(argv) && json_array_size(argv) > 0);
            json_array_foreach(argv, k, a)
            {
                FUZZ_CHECK(json_is_string(a));
            }
        }
    } else {
        if (!(mode & 1) && !altered && st == EXIT_CONFIG)
            fuzz_bug("a plan made for this version was refused as another version's");
        check_message(st, dir, out, len);
    }
    batch_campaign_free(&c);
    free(made);
    free(out);
    fuzz_scratch_remove(); // nothing left behind if libFuzzer ends with _Exit
    return 0;
}
