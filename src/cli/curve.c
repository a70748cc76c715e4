/* curve.c - read back curve.csv for 'attnsec defend dpsgd --resume'
 * (curve.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "curve.h"
#include "slurp.h"

static const char *const curve_columns[CURVE_COLUMNS] = {
    "step",         "batch",   "train_loss", "grad_norm",    "mean_norm",
    "clipped_frac", "epsilon", "test_loss",  "test_accuracy"};

/* s[0 .. n-1] is an unsigned decimal without sign or leading zero (zero
 * itself only when allow_zero) of at most max: *v set. */
static int
parse_count(const char *s, size_t n, uint64_t max, int allow_zero, uint64_t *v)
{
    uint64_t x = 0;

    if (n == 0 || (s[0] == '0' && (n > 1 || !allow_zero)))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');

        if (s[i] < '0' || s[i] > '9' || x > (max - d) / 10)
            return 0;
        x = 10 * x + d;
    }
    *v = x;
    return 1;
}

static size_t
digits(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* s[0 .. n-1] is a number as printf("%g") writes one. */
static int
is_g_number(const char *s, size_t n)
{
    size_t i = 0, d;

    if (i < n && s[i] == '-')
        i++;
    if (n - i == 3 && (memcmp(s + i, "nan", 3) == 0 || memcmp(s + i, "inf", 3) == 0))
        return 1;
    if ((d = digits(s + i, n - i)) == 0)
        return 0;
    i += d;
    if (i < n && s[i] == '.') {
        if ((d = digits(s + i + 1, n - i - 1)) == 0)
            return 0;
        i += 1 + d;
    }
    if (i < n && s[i] == 'e') {
        if (i + 1 >= n || (s[i + 1] != '+' && s[i + 1] != '-'))
            return 0;
        if ((d = digits(s + i + 2, n - i - 2)) < 2)
            return 0;
        i += 2 + d;
    }
    return i == n;
}

static int
curve_bad(const char *path, size_t line, const char *what)
{
    cli_error("%s:%zu: %s (not a curve.csv as attnsec writes it; remove it to resume "
              "without the earlier curve)",
              path, line, what);
    return EXIT_DATAERR;
}

int
curve_parse(char *buf, size_t len, const char *path, uint64_t step, size_t *kept)
{
    const size_t hlen = sizeof CURVE_HEADER - 1;
    uint64_t last = 0;
    size_t pos, out = 0, line = 1;
    char what[160];

    *kept = 0;
    if (len < hlen || memcmp(buf, CURVE_HEADER, hlen) != 0)
        return curve_bad(path, 1, "the first line is not the header step,batch,...");
    for (pos = hlen; pos < len; pos++) {
        const char *row = buf + pos, *nl, *f = row;
        size_t n = len - pos, rowlen;
        uint64_t s, b;

        line++;
        nl = memchr(row, '\n', n < CURVE_MAX_LINE ? n : CURVE_MAX_LINE);
        if (nl == NULL) {
            if (n >= CURVE_MAX_LINE) {
                snprintf(what, sizeof what, "longer than %d bytes", CURVE_MAX_LINE - 1);
                return curve_bad(path, line, what);
            }
            return curve_bad(path, line, "no newline at the end (a truncated file?)");
        }
        rowlen = (size_t)(nl - row);
        if (memchr(row, '\0', rowlen) != NULL)
            return curve_bad(path, line, "a NUL byte");
        for (size_t c = 0; c < CURVE_COLUMNS; c++) {
            const char *end =
                c + 1 < CURVE_COLUMNS ? memchr(f, ',', (size_t)(nl - f)) : nl;
            size_t flen;
            int ok;

            if (end == NULL) {
                snprintf(what, sizeof what, "%zu field(s), expected %d", c + 1,
                         CURVE_COLUMNS);
                return curve_bad(path, line, what);
            }
            flen = (size_t)(end - f);
            if (c == 0)
                ok = parse_count(f, flen, UINT64_MAX, 0, &s);
            else if (c == 1)
                ok = parse_count(f, flen, SIZE_MAX, 1, &b);
            else
                ok = is_g_number(f, flen);
            if (!ok) {
                if (c + 1 == CURVE_COLUMNS && memchr(f, ',', flen) != NULL)
                    snprintf(what, sizeof what, "more than %d fields", CURVE_COLUMNS);
                else
                    snprintf(what, sizeof what, "field %zu (%s) is not %s", c + 1,
                             curve_columns[c],
                             c == 0   ? "a step >= 1"
                             : c == 1 ? "a count"
                                      : "a number");
                return curve_bad(path, line, what);
            }
            f = end + 1;
        }
        if (s <= last) {
            snprintf(what, sizeof what,
                     "step %" PRIu64 " after step %" PRIu64 " (steps must increase)", s,
                     last);
            return curve_bad(path, line, what);
        }
        last = s;
        if (s <= step) {
            memmove(buf + out, row, rowlen + 1);
            out += rowlen + 1;
        }
        pos += rowlen;
    }
    *kept = out;
    return 0;
}

int
curve_load(const char *path, uint64_t step, char **rows, size_t *len, size_t *cap)
{
    char *buf;
    size_t n, kept;
    int st;

    *rows = NULL;
    *len = *cap = 0;
    st = slurp_regular(path, CURVE_MAX_BYTES, &buf, &n);
    if (st == SLURP_MISSING)
        return 0;
    if ((st = slurp_exit(st, path, n, CURVE_MAX_BYTES)) != 0)
        return st;
    st = curve_parse(buf, n, path, step, &kept);
    if (st != 0) {
        free(buf);
        return st;
    }
    *rows = buf;
    *len = kept;
    *cap = n + 2;
    return 0;
}
