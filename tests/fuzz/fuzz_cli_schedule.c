/* fuzz_cli_schedule.c - libFuzzer harness for the --schedule parser of
 * 'attnsec account' (cli_parse_schedule in src/cli/cli.c), linked in
 * directly, and for the accountant that receives what it accepts.
 *
 * Input: the option text, up to the first NUL (at most 64 KiB).
 *
 * What must hold:
 *   - the status is 0, 64 (EX_USAGE) or 75 (out of memory);
 *   - accepted: 1 <= n <= CLI_SCHEDULE_MAX_SEGMENTS, nothing printed, and
 *     the segments are those of an independent reading of the text (split
 *     at ',' and ':' skipping empty pieces, strtod/strtoull): q in [0, 1],
 *     sigma finite and > 0, steps >= 1; asec_acct_add_schedule() then
 *     accepts them, or refuses with ASEC_EINVAL and a one-line message
 *     exactly when some segment has more than 2^62 steps;
 *   - refused: *seg NULL and n 0; stderr got exactly one message line
 *     "attnsec fuzz: --schedule: ..." of printable text (the option text
 *     is quoted escaped) followed, for usage errors, by the "Try ... --help"
 *     line.
 * Seeds: tests/fuzz/corpus/fuzz_cli_schedule; dictionary cli_schedule.dict.
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream, strtok_r */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "cli/cli.h"
#include "fuzz.h"

#define MAX_TEXT 65536
#define MAX_COUNT ((uint64_t)1 << 62) /* the accountant's cap */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup("fuzz_cli_schedule");
    cli_set_command("fuzz", NULL);
    return 0;
}

/* The independent reading of an accepted schedule: every non-empty
 * comma-separated piece has exactly three non-empty ':' fields whose
 * values are the segment's. */
static void
check_accepted(const char *text, const asec_acct_segment *seg, size_t n)
{
    char *copy = strdup(text), *piece, *save = NULL;
    size_t k = 0;

    if (copy == NULL)
        fuzz_bug("out of memory");
    for (piece = strtok_r(copy, ",", &save); piece != NULL;
         piece = strtok_r(NULL, ",", &save), k++) {
        char *f[4], *s2 = NULL, *t;
        int nf = 0;

        FUZZ_CHECK(k < n);
        for (t = strtok_r(piece, ":", &s2); t != NULL && nf < 4;
             t = strtok_r(NULL, ":", &s2))
            f[nf++] = t;
        FUZZ_CHECK(nf == 3);
        if (!fuzz_same_double(strtod(f[0], NULL), seg[k].q) ||
            !fuzz_same_double(strtod(f[1], NULL), seg[k].sigma) ||
            strtoull(f[2], NULL, 10) != seg[k].count)
            fuzz_bug("segment %zu '%s:%s:%s' read as %.17g:%.17g:%llu", k + 1, f[0], f[1],
                     f[2], seg[k].q, seg[k].sigma, (unsigned long long)seg[k].count);
        FUZZ_CHECK(seg[k].q >= 0.0 && seg[k].q <= 1.0);
        FUZZ_CHECK(seg[k].sigma > 0.0 && isfinite(seg[k].sigma));
        FUZZ_CHECK(seg[k].count >= 1);
    }
    FUZZ_CHECK(k == n);
    free(copy);
}

/* The accountant takes what the parser accepted, bar step counts over its
 * cap. */
static void
check_accountant(const asec_acct_segment *seg, size_t n)
{
    asec_acct *a = NULL;
    int over = 0, rc;

    for (size_t i = 0; i < n; i++)
        over |= seg[i].count > MAX_COUNT;
    if (asec_acct_alloc(&a, NULL) != ASEC_OK)
        fuzz_bug("asec_acct_alloc failed");
    rc = asec_acct_add_schedule(a, seg, n);
    asec_acct_free(a);
    if (rc == ASEC_OK && !over)
        return;
    if (rc == ASEC_EINVAL && over) {
        FUZZ_CHECK(fuzz_one_line(asec_errmsg(), "asec_acct_add_schedule"));
        return;
    }
    fuzz_bug("asec_acct_add_schedule: status %d (%s), steps over 2^62: %s", rc,
             asec_strerror(rc), over ? "yes" : "no");
}

/* What a refusal printed: one message line, then the hint of a usage
 * error. */
static void
check_refusal(int rc, const char *out, size_t len)
{
    static const char prefix[] = "attnsec fuzz: ";
    static const char hint[] = "Try 'attnsec fuzz --help' for more information.\n";
    const char *nl = memchr(out, '\n', len);
    size_t first;

    FUZZ_CHECK(nl != NULL);
    first = (size_t)(nl - out) + 1;
    FUZZ_CHECK(strncmp(out, prefix, sizeof prefix - 1) == 0);
    for (size_t i = 0; i + 1 < first; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            fuzz_bug("the message quotes control byte 0x%02x", (unsigned char)out[i]);
    if (rc == EXIT_USAGE) {
        FUZZ_CHECK(strncmp(out + sizeof prefix - 1, "--schedule: ", 12) == 0);
        FUZZ_CHECK(len - first == sizeof hint - 1);
        FUZZ_CHECK(memcmp(out + first, hint, sizeof hint - 1) == 0);
    } else {
        FUZZ_CHECK(first == len);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text, *out = NULL;
    size_t n = 0, len = 0, nseg = 4242;
    asec_acct_segment *seg = (asec_acct_segment *)&nseg; // must become NULL
    FILE *saved = stderr, *mem;
    int rc;

    while (n < size && n < MAX_TEXT && data[n] != 0)
        n++;
    text = malloc(n + 1);
    if (text == NULL)
        fuzz_bug("out of memory");
    memcpy(text, data, n);
    text[n] = '\0';

    mem = open_memstream(&out, &len);
    if (mem == NULL)
        fuzz_bug("open_memstream failed");
    stderr = mem;
    rc = cli_parse_schedule(text, &seg, &nseg);
    stderr = saved;
    if (fclose(mem) != 0)
        fuzz_bug("fclose of the message stream failed");

    FUZZ_CHECK(rc == 0 || rc == EXIT_USAGE || rc == EXIT_TEMPFAIL);
    if (rc == 0) {
        FUZZ_CHECK(len == 0);
        FUZZ_CHECK(seg != NULL && nseg >= 1 && nseg <= CLI_SCHEDULE_MAX_SEGMENTS);
        check_accepted(text, seg, nseg);
        check_accountant(seg, nseg);
        free(seg);
    } else {
        FUZZ_CHECK(seg == NULL && nseg == 0);
        check_refusal(rc, out, len);
    }
    free(out);
    free(text);
    return 0;
}
