/* fuzz_cli_numbers.c - libFuzzer harness for the CLI's checked number
 * parsers (src/cli/cli.c: cli_parse_double, cli_parse_size, cli_parse_u64,
 * cli_parse_long), linked in directly.
 *
 * Input layout: byte 0 picks the parser (mod 4); bytes 1-16 are the two
 * range bounds (lo, hi: little-endian doubles for cli_parse_double,
 * integers for the others; missing bytes are 0, and a NaN bound becomes
 * the full range); the rest, up to the first NUL, is the option text.
 *
 * What must hold: the parser returns 0 or 64 (EX_USAGE) and leaves *out
 * alone when it refuses; an accepted value is in [lo, hi] (and finite);
 * cli_parse_u64 and cli_parse_size accept exactly the non-empty strings of
 * ASCII digits whose value fits (checked by an independent digit loop)
 * with the same value; cli_parse_long accepts an optional sign and digits
 * whose value fits in long with the same value (leading white space, which
 * strtol skips, is not judged here); cli_parse_double agrees with strtod
 * on the value.  The parsers' messages go to a /dev/null stream.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "fuzz.h"

#define MAX_TEXT 4096

static FILE *devnull;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup("fuzz_cli_numbers");
    devnull = fopen("/dev/null", "w");
    if (devnull == NULL)
        fuzz_bug("cannot open /dev/null");
    cli_set_command("fuzz", NULL);
    return 0;
}

static uint64_t
le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Digits only, non-empty, value <= UINT64_MAX: 1 and *v; else 0. */
static int
ref_u64(const char *s, uint64_t *v)
{
    uint64_t x = 0;

    if (*s == '\0')
        return 0;
    for (; *s; s++) {
        unsigned d;

        if (*s < '0' || *s > '9')
            return 0;
        d = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - d) / 10)
            return 0;
        x = x * 10 + d;
    }
    *v = x;
    return 1;
}

/* [+-]digits with the value in long: 1 and *v; else 0. */
static int
ref_long(const char *s, long *v)
{
    int neg = 0;
    unsigned long mag = 0, lim;

    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (*s == '\0')
        return 0;
    lim = neg ? (unsigned long)LONG_MAX + 1u : (unsigned long)LONG_MAX;
    for (; *s; s++) {
        unsigned d;

        if (*s < '0' || *s > '9')
            return 0;
        d = (unsigned)(*s - '0');
        if (mag > (lim - d) / 10)
            return 0;
        mag = mag * 10 + d;
    }
    *v = neg ? (mag == (unsigned long)LONG_MAX + 1u ? LONG_MIN : -(long)mag) : (long)mag;
    return 1;
}

static int
is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t head[17] = {0};
    char text[MAX_TEXT + 1];
    size_t n = 0;
    FILE *saved = stderr;
    int rc;

    memcpy(head, data, size < sizeof head ? size : sizeof head);
    for (size_t i = sizeof head; i < size && n < MAX_TEXT && data[i] != 0; i++)
        text[n++] = (char)data[i];
    text[n] = '\0';

    stderr = devnull; // the parsers print usage errors; keep the log readable
    switch (head[0] % 4) {
    case 0: {
        uint64_t a = le64(head + 1), b = le64(head + 9);
        double lo, hi, out = -42.0, ref;

        memcpy(&lo, &a, sizeof lo);
        memcpy(&hi, &b, sizeof hi);
        if (isnan(lo))
            lo = -HUGE_VAL;
        if (isnan(hi))
            hi = HUGE_VAL;
        rc = cli_parse_double("--x", text, lo, hi, &out);
        stderr = saved;
        FUZZ_CHECK(rc == 0 || rc == EXIT_USAGE);
        if (rc != 0) {
            FUZZ_CHECK(fuzz_same_double(out, -42.0));
            break;
        }
        FUZZ_CHECK(isfinite(out) && out >= lo && out <= hi);
        FUZZ_CHECK(n > 0);
        ref = strtod(text, NULL);
        if (!fuzz_same_double(out, ref))
            fuzz_bug("cli_parse_double('%s') = %.17g, strtod says %.17g", text, out, ref);
        break;
    }
    case 1:
    case 2: {
        uint64_t lo = le64(head + 1), hi = le64(head + 9), out = 4242, ref = 0;
        int ok = ref_u64(text, &ref);

        if (head[0] % 4 == 1) {
            rc = cli_parse_u64("--x", text, &out);
            lo = 0;
            hi = UINT64_MAX;
        } else {
            size_t s = 4242;

            if (sizeof(size_t) < sizeof(uint64_t)) {
                lo = (size_t)lo;
                hi = (size_t)hi;
            }
            rc = cli_parse_size("--x", text, (size_t)lo, (size_t)hi, &s);
            out = s;
            ok = ok && ref <= SIZE_MAX;
        }
        stderr = saved;
        FUZZ_CHECK(rc == 0 || rc == EXIT_USAGE);
        ok = ok && ref >= lo && ref <= hi;
        if (ok != (rc == 0))
            fuzz_bug("parse of '%s' in [%llu, %llu]: status %d, reference %s", text,
                     (unsigned long long)lo, (unsigned long long)hi, rc,
                     ok ? "accepts" : "refuses");
        if (rc == 0 && out != ref)
            fuzz_bug("'%s' parsed as %llu, reference %llu", text, (unsigned long long)out,
                     (unsigned long long)ref);
        if (rc != 0)
            FUZZ_CHECK(out == 4242);
        break;
    }
    default: {
        long lo = (long)le64(head + 1), hi = (long)le64(head + 9), out = -4242, ref = 0;
        int ok;

        rc = cli_parse_long("--x", text, lo, hi, &out);
        stderr = saved;
        FUZZ_CHECK(rc == 0 || rc == EXIT_USAGE);
        if (rc != 0) {
            FUZZ_CHECK(out == -4242);
        } else {
            FUZZ_CHECK(out >= lo && out <= hi);
        }
        if (n > 0 && is_space(text[0]))
            break; // strtol skips leading white space; not judged here
        ok = ref_long(text, &ref) && ref >= lo && ref <= hi;
        if (ok != (rc == 0))
            fuzz_bug("cli_parse_long('%s') in [%ld, %ld]: status %d, reference %s", text,
                     lo, hi, rc, ok ? "accepts" : "refuses");
        if (rc == 0 && out != ref)
            fuzz_bug("'%s' parsed as %ld, reference %ld", text, out, ref);
        break;
    }
    }
    return 0;
}
