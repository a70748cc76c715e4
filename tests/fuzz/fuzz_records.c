/* fuzz_records.c - libFuzzer harness for the files the program reads back
 * after writing them, linked in directly: the privacy ledger of 'attnsec
 * release' (src/cli/ledger.c), the result, report, output and lock files
 * of a batch campaign (src/cli/batch_result.c) and the curve.csv of
 * 'attnsec defend dpsgd --resume' (src/cli/curve.c).
 *
 * Input layout: byte 0 is a mode, the rest the file.  mode & 7 selects:
 *   0  ledger_parse + ledger_compose, the planned release gaussian
 *      (mode & 8) or laplace, at delta 1e-5 (mode & 16) or 0;
 *   1  curve_parse, resuming at step steps[mode >> 3];
 *   2  a curve.csv written here with CURVE_ROW_FORMAT, the rows made from
 *      the bytes (a step increment, a batch size and seven doubles bit for
 *      bit: NaN, inf and subnormals too), then curve_parse;
 *   3  batch_result_parse, for the task the file names (else a fixed one);
 *   4  batch_result_make from the bytes as work/ID/report.json;
 *   5  batch_result_make from the bytes as work/ID/stdout.txt;
 *   6  batch_lock_parse;
 *   7  ledger_parse, then one entry appended and the ledger dumped as
 *      cmd_release.c writes it, then ledger_parse again.
 * The result cap is lowered to 256 KiB so that it is reached; the program
 * uses the same code with 64 MiB.
 *
 * What must hold:
 *   - every status is 0, or 65 (75: out of memory) with exactly one line
 *     on stderr, "attnsec fuzz: PATH...", of printable text; a success
 *     prints nothing;
 *   - ledger: a composed epsilon is >= 0 and not NaN, exactly the sum of
 *     the epsilons when every release is a laplace one at delta 0, and
 *     infinite when a gaussian one is composed at delta 0; a ledger read
 *     and written back (one entry more) is read again;
 *   - curve: the rows kept are the rows of the file (header dropped) up to
 *     the resume step, byte for byte, printable, of nine fields that
 *     strtoull/strtod read whole, steps increasing; parsing them again
 *     keeps them all; a curve the command writes is kept whole;
 *   - results: a result made is at most the cap, ends with a newline and
 *     is accepted by batch_result_parse for its task, with its results
 *     the report's "results", or stdout (the JSON value, the text, or its
 *     base64) exactly; an accepted result has its task and a checksum;
 *   - lock: an accepted lock is exactly "HOST PID\n" as printf writes it,
 *     HOST printable without spaces, PID in [1, INT_MAX];
 *   - nothing leaks (libFuzzer's leak check; valgrind in make
 *     check-valgrind).
 * Seeds: tests/fuzz/corpus/fuzz_records (files made by the commands);
 * dictionary records.dict.
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "attnsec/attnsec.h"
#include "cli/batch_plan.h"
#include "cli/batch_result.h"
#include "cli/cli.h"
#include "cli/curve.h"
#include "cli/ledger.h"
#include "fuzz.h"

#define FUZZ_RESULT_CAP ((size_t)256 << 10)
#define LPATH "ledger.json"
#define CPATH "curve.csv"
#define WPATH "work/t"

static json_t *fixed_task;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup("fuzz_records");
    if (sodium_init() < 0)
        fuzz_bug("sodium_init failed");
    cli_set_command("fuzz", NULL);
    fixed_task = json_pack("{s:I, s:s, s:[s, s, s], s:I, s:{}, s:{s:f}}", "index",
                           (json_int_t)3, "id", "0123456789abcdef0123456789abcdef",
                           "argv", "model", "info", "{outdir}/m.safetensors", "seed",
                           (json_int_t)7, "inputs", "params", "lr", 0.25);
    if (fixed_task == NULL)
        fuzz_bug("out of memory");
    return 0;
}

/* stderr of the call, captured. */
struct capture {
    FILE *saved, *mem;
    char *out;
    size_t len;
};

static void
capture_begin(struct capture *c)
{
    c->out = NULL;
    c->len = 0;
    c->mem = open_memstream(&c->out, &c->len);
    if (c->mem == NULL)
        fuzz_bug("open_memstream failed");
    c->saved = stderr;
    stderr = c->mem;
}

static void
capture_end(struct capture *c)
{
    stderr = c->saved;
    if (fclose(c->mem) != 0)
        fuzz_bug("fclose of the message stream failed");
}

/* Status st of a reader of path: 0 and silence, or 65/75 and one
 * printable line "attnsec fuzz: PATH...". */
static void
check_status(int st, const struct capture *c, const char *path, const char *what)
{
    char prefix[200];
    size_t pl;
    const char *nl;

    if (st == 0) {
        if (c->len != 0)
            fuzz_bug("%s: success with a message: %.*s", what, (int)c->len, c->out);
        return;
    }
    if (st != EXIT_DATAERR && st != EXIT_TEMPFAIL)
        fuzz_bug("%s: unexpected status %d", what, st);
    pl = (size_t)snprintf(prefix, sizeof prefix, "attnsec fuzz: %s", path);
    nl = c->len ? memchr(c->out, '\n', c->len) : NULL;
    if (nl == NULL || (size_t)(nl - c->out) + 1 != c->len)
        fuzz_bug("%s: status %d: not exactly one line on stderr", what, st);
    if (c->len < pl || memcmp(c->out, prefix, pl) != 0)
        fuzz_bug("%s: status %d: the message does not start with '%s'", what, st, prefix);
    for (const char *q = c->out; q < nl; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            fuzz_bug("%s: status %d: the message holds control byte 0x%02x", what, st,
                     (unsigned char)*q);
}

/* ------------------------------------------------------------- ledger */

static void
run_ledger(unsigned mode, const char *buf, size_t len)
{
    struct ledger l = {NULL, NULL, -1};
    struct ledger_composed comp;
    struct capture c;
    int st, parsed, gaussian = (mode & 8) != 0, all_pure = !gaussian;
    double delta = mode & 16 ? 1e-5 : 0, sum = 0;

    capture_begin(&c);
    st = ledger_parse(&l, LPATH, buf, len);
    parsed = st == 0;
    if (parsed)
        st = ledger_compose(&l, LPATH, gaussian, 0.5, delta, &comp);
    capture_end(&c);
    check_status(st, &c, LPATH, "ledger");
    if (st == 0) {
        size_t n = json_array_size(l.entries), i;
        json_t *e;

        FUZZ_CHECK(comp.entries == n + 1);
        FUZZ_CHECK(!isnan(comp.epsilon) && comp.epsilon >= 0);
        json_array_foreach(l.entries, i, e)
        {
            const char *m = json_string_value(json_object_get(e, "mechanism"));

            FUZZ_CHECK(m != NULL);
            if (strcmp(m, "laplace") == 0)
                sum += json_number_value(json_object_get(e, "epsilon"));
            else
                all_pure = 0;
        }
        sum += 0.5; // the planned release comes last, as in ledger_compose
        if (all_pure && delta == 0)
            FUZZ_CHECK(comp.epsilon == sum);
        if (!all_pure && delta == 0)
            FUZZ_CHECK(isinf(comp.epsilon));
    } else {
        FUZZ_CHECK(parsed == (l.root != NULL));
    }
    ledger_free(&l);
    free(c.out);
}

static void
run_ledger_rewrite(const char *buf, size_t len)
{
    struct ledger l = {NULL, NULL, -1}, l2 = {NULL, NULL, -1};
    struct capture c;
    char *text = NULL;
    size_t n;
    int st;

    capture_begin(&c);
    st = ledger_parse(&l, LPATH, buf, len);
    capture_end(&c);
    check_status(st, &c, LPATH, "ledger");
    free(c.out);
    if (st != 0)
        return;
    n = json_array_size(l.entries);
    if (json_array_append_new(l.entries,
                              json_pack("{s:s, s:s, s:f, s:f, s:b}", "command", "release",
                                        "mechanism", "laplace", "epsilon", 0.5, "delta",
                                        0.0, "dp_release", 1)) != 0 ||
        (text = json_dumps(l.root, LEDGER_DUMP_FLAGS)) == NULL)
        fuzz_bug("out of memory");
    capture_begin(&c);
    st = ledger_parse(&l2, LPATH, text, strlen(text));
    capture_end(&c);
    if (n + 1 < LEDGER_MAX_ENTRIES && st != 0)
        fuzz_bug("a ledger written back is refused: %.*s", (int)c.len, c.out);
    if (st == 0)
        FUZZ_CHECK(json_array_size(l2.entries) == n + 1 && json_equal(l.root, l2.root));
    free(c.out);
    free(text);
    ledger_free(&l);
    ledger_free(&l2);
}

/* -------------------------------------------------------------- curve */

static const uint64_t resume_steps[32] = {0,
                                          1,
                                          2,
                                          3,
                                          5,
                                          7,
                                          10,
                                          20,
                                          50,
                                          99,
                                          100,
                                          101,
                                          200,
                                          500,
                                          999,
                                          1000,
                                          1001,
                                          4096,
                                          10000,
                                          100000,
                                          1000000,
                                          10000000,
                                          100000000,
                                          1000000000,
                                          UINT64_C(1000000000000),
                                          UINT64_C(1000000000000000),
                                          UINT64_C(1000000000000000000),
                                          INT64_MAX,
                                          (uint64_t)INT64_MAX + 1,
                                          UINT64_MAX - 1,
                                          UINT64_MAX,
                                          42};

/* The steps of the rows of text t[0 .. n-1] (no header), checked one by
 * one: nine fields read whole, printable bytes, increasing steps <= max. */
static void
check_rows(const char *t, size_t n, uint64_t max)
{
    uint64_t last = 0;

    while (n > 0) {
        const char *nl = memchr(t, '\n', n);
        char row[CURVE_MAX_LINE + 1], *p, *end;
        size_t rl;

        FUZZ_CHECK(nl != NULL);
        rl = (size_t)(nl - t);
        FUZZ_CHECK(rl < CURVE_MAX_LINE);
        memcpy(row, t, rl);
        row[rl] = '\0';
        for (size_t i = 0; i < rl; i++)
            FUZZ_CHECK(row[i] >= 0x20 && row[i] < 0x7f);
        p = row;
        for (int f = 0; f < CURVE_COLUMNS; f++) {
            if (f < 2) {
                unsigned long long v;

                FUZZ_CHECK(*p >= '0' && *p <= '9');
                v = strtoull(p, &end, 10);
                if (f == 0) {
                    FUZZ_CHECK(v > last && v <= max);
                    last = v;
                }
            } else {
                FUZZ_CHECK(*p == '-' || (*p >= '0' && *p <= '9') || *p == 'n' ||
                           *p == 'i');
                (void)strtod(p, &end);
            }
            FUZZ_CHECK(end > p && *end == (f + 1 < CURVE_COLUMNS ? ',' : '\0'));
            p = end + 1;
        }
        t = nl + 1;
        n -= rl + 1;
    }
}

/* curve_parse of text (len bytes, which it rewrites) resuming at step:
 * returns the status; *kept rows at the start of text. */
static int
parse_curve(char *text, size_t len, uint64_t step, size_t *kept)
{
    struct capture c;
    int st;

    capture_begin(&c);
    st = curve_parse(text, len, CPATH, step, kept);
    capture_end(&c);
    check_status(st, &c, CPATH, "curve");
    free(c.out);
    return st;
}

static void
check_curve(const char *buf, size_t len, uint64_t step)
{
    const size_t hlen = sizeof CURVE_HEADER - 1;
    char *text = malloc(len + 1), *again;
    size_t kept, kept2;

    if (text == NULL)
        fuzz_bug("out of memory");
    memcpy(text, buf, len);
    if (parse_curve(text, len, step, &kept) == 0) {
        FUZZ_CHECK(len >= hlen && kept <= len - hlen);
        /* the rows up to the step: a prefix of the body, steps increasing */
        FUZZ_CHECK(memcmp(text, buf + hlen, kept) == 0);
        check_rows(text, kept, step);
        if (len - hlen > kept) // the next row is past the step
            FUZZ_CHECK(strtoull(buf + hlen + kept, NULL, 10) > step);
        again = malloc(hlen + kept + 1);
        if (again == NULL)
            fuzz_bug("out of memory");
        memcpy(again, CURVE_HEADER, hlen);
        memcpy(again + hlen, text, kept);
        FUZZ_CHECK(parse_curve(again, hlen + kept, step, &kept2) == 0 && kept2 == kept &&
                   memcmp(again, text, kept) == 0);
        free(again);
    }
    free(text);
}

/* A curve.csv as the command writes it, from the bytes: each row takes a
 * step increment (1 byte, + 1), a batch size (2 bytes) and seven doubles
 * (8 bytes each); the resume step is the first byte's share of the last
 * step. */
static void
run_curve_made(const uint8_t *d, size_t n)
{
    const size_t per = 1 + 2 + 7 * 8;
    size_t rows = n / per, len = 0, cap, kept, want = 0;
    uint64_t step = 0, resume;
    char *text, line[CURVE_MAX_LINE];

    if (rows > 2000)
        rows = 2000;
    cap = sizeof CURVE_HEADER + rows * CURVE_MAX_LINE;
    if ((text = malloc(cap)) == NULL)
        fuzz_bug("out of memory");
    memcpy(text, CURVE_HEADER, sizeof CURVE_HEADER - 1);
    len = sizeof CURVE_HEADER - 1;
    resume = n > 0 ? (uint64_t)d[0] * (rows + 1) * 128 / 255 : 0;
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *p = d + r * per;
        double v[7];
        size_t batch = (size_t)p[1] | (size_t)p[2] << 8;
        int k;

        step += (uint64_t)p[0] + 1;
        memcpy(v, p + 3, sizeof v);
        k = snprintf(line, sizeof line, CURVE_ROW_FORMAT, step, batch, v[0], v[1], v[2],
                     v[3], v[4], v[5], v[6]);
        FUZZ_CHECK(k > 0 && (size_t)k < CURVE_MAX_LINE);
        memcpy(text + len, line, (size_t)k);
        len += (size_t)k;
        if (step <= resume)
            want = len - (sizeof CURVE_HEADER - 1);
    }
    if (parse_curve(text, len, resume, &kept) != 0)
        fuzz_bug("a curve.csv as the command writes it is refused");
    FUZZ_CHECK(kept == want);
    free(text);
}

/* ------------------------------------------------------------ results */

/* The result text of the maker: its own parse accepts it. */
static json_t *
accepted_result(const char *text, size_t tlen, const struct batch_task *t)
{
    json_t *r;

    FUZZ_CHECK(tlen > 0 && tlen <= FUZZ_RESULT_CAP && text[tlen - 1] == '\n' &&
               strlen(text) == tlen);
    if (batch_result_parse(&r, text, tlen, t) != 1)
        fuzz_bug("a result made by batch run is refused by its check");
    return r;
}

static void
run_result_parse(const char *buf, size_t len)
{
    struct batch_task t = {3, NULL, fixed_task, 0};
    json_t *pre = json_loadb(buf, len, 0, NULL), *task = json_object_get(pre, "task"), *r;

    if (json_is_object(task))
        t.obj = task;
    t.id = json_string_value(json_object_get(t.obj, "id"));
    if (t.id == NULL)
        t.id = "0123456789abcdef0123456789abcdef";
    if (batch_result_parse(&r, buf, len, &t) == 1) {
        FUZZ_CHECK(json_is_object(r) && json_equal(json_object_get(r, "task"), t.obj));
        FUZZ_CHECK(json_is_string(
            json_object_get(json_object_get(r, "checksum"), "blake2b_256")));
        json_decref(r);
    } else {
        FUZZ_CHECK(r == NULL);
    }
    json_decref(pre);
}

static void
run_result_make(const char *buf, size_t len, int from_report)
{
    struct batch_task t = {3, "0123456789abcdef0123456789abcdef", fixed_task, 0};
    struct capture c;
    char *text;
    size_t tlen;
    int st;

    capture_begin(&c);
    st = batch_result_make(&text, &tlen, &t, WPATH, from_report ? buf : NULL, len,
                           from_report ? NULL : buf, len, 0, FUZZ_RESULT_CAP);
    capture_end(&c);
    check_status(st, &c, WPATH,
                 from_report ? "result from report" : "result from stdout");
    free(c.out);
    if (st == 0) {
        json_t *r = accepted_result(text, tlen, &t), *res = json_object_get(r, "results"),
               *in = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);

        if (from_report) {
            json_t *want = json_object_get(in, "results");

            FUZZ_CHECK(json_is_object(in));
            FUZZ_CHECK(want ? json_equal(res, want)
                            : json_is_object(res) && json_object_size(res) == 0);
        } else if (in != NULL && batch_json_depth(in) < BATCH_RESULT_MAX_DEPTH) {
            FUZZ_CHECK(json_equal(res, in));
        } else {
            json_t *s = json_object_get(res, "stdout"),
                   *b = json_object_get(res, "stdout_base64");

            FUZZ_CHECK(json_object_size(res) == 1 && (s != NULL) != (b != NULL));
            if (s != NULL) {
                FUZZ_CHECK(json_string_length(s) == len &&
                           memcmp(json_string_value(s), buf, len) == 0);
            } else {
                const char *b64 = json_string_value(b);
                unsigned char *dec = malloc(len + 1);
                size_t dl;

                if (dec == NULL)
                    fuzz_bug("out of memory");
                FUZZ_CHECK(b64 != NULL);
                FUZZ_CHECK(sodium_base642bin(dec, len + 1, b64, strlen(b64), NULL, &dl,
                                             NULL, sodium_base64_VARIANT_ORIGINAL) == 0);
                FUZZ_CHECK(dl == len && memcmp(dec, buf, len) == 0);
                free(dec);
            }
        }
        json_decref(in);
        json_decref(r);
        free(text);
    } else {
        FUZZ_CHECK(text == NULL);
    }
}

/* --------------------------------------------------------------- lock */

static void
run_lock(const char *buf, size_t len)
{
    char host[256], again[300];
    long pid = 0;
    int n;

    if (!batch_lock_parse(buf, len, host, &pid))
        return;
    FUZZ_CHECK(pid >= 1 && pid <= INT_MAX);
    FUZZ_CHECK(host[0] != '\0' && strlen(host) < 256);
    for (const char *p = host; *p; p++)
        FUZZ_CHECK(*p > ' ' && *p < 0x7f);
    n = snprintf(again, sizeof again, "%s %ld\n", host, pid);
    FUZZ_CHECK(n > 0 && (size_t)n == len && memcmp(again, buf, len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned mode = size > 0 ? data[0] : 0;
    const char *buf = size > 0 ? (const char *)data + 1 : "";
    size_t len = size > 0 ? size - 1 : 0;

    switch (mode & 7) {
    case 0:
        run_ledger(mode, buf, len);
        break;
    case 1:
        check_curve(buf, len, resume_steps[mode >> 3]);
        break;
    case 2:
        run_curve_made((const uint8_t *)buf, len);
        break;
    case 3:
        run_result_parse(buf, len);
        break;
    case 4:
        run_result_make(buf, len, 1);
        break;
    case 5:
        run_result_make(buf, len, 0);
        break;
    case 6:
        run_lock(buf, len);
        break;
    default:
        run_ledger_rewrite(buf, len);
        break;
    }
    return 0;
}
