/* cli.c - messages, exit statuses, number parsing and progress for the
 * attnsec program. */
#define _POSIX_C_SOURCE 200809L /* strdup, strtok_r under -std=c11 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gsl/gsl_version.h>
#include <jansson.h>
#include <sodium.h>

#include "attnsec/attnsec.h"
#include "cli.h"
#include "printable.h"

int cli_verbosity = 1;
static char command_name[128] = "attnsec";

void
cli_set_command(const char *group, const char *method)
{
    if (group == NULL)
        snprintf(command_name, sizeof command_name, "attnsec");
    else if (method == NULL)
        snprintf(command_name, sizeof command_name, "attnsec %s", group);
    else
        snprintf(command_name, sizeof command_name, "attnsec %s %s", group, method);
}

const char *
cli_command(void)
{
    return command_name;
}

static void vmessage(const char *kind, const char *fmt, va_list ap) ASEC_PRINTF(2, 0);

static void
vmessage(const char *kind, const char *fmt, va_list ap)
{
    fflush(stdout);
    fprintf(stderr, "%s: %s", command_name, kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void
cli_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmessage("", fmt, ap);
    va_end(ap);
}

void
cli_warn(const char *fmt, ...)
{
    va_list ap;

    if (cli_verbosity == 0)
        return;
    va_start(ap, fmt);
    vmessage("warning: ", fmt, ap);
    va_end(ap);
}

int
cli_usage_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmessage("", fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", command_name);
    return EXIT_USAGE;
}

int
cli_option_error(char *const argv[], const struct option *longopts, const char *note)
{
    const char *arg = argv[optind - 1];
    char shown[64], opt[4] = {'-', (char)optopt, '\0', '\0'};

    /* a short option in a cluster (-qZ): name the letter, not the word */
    if (optopt > 0 && optopt < 128 && strncmp(arg, "--", 2) != 0)
        arg = opt;
    asec__printable(shown, sizeof shown, arg);
    for (const struct option *o = longopts; optopt != 0 && o->name != NULL; o++) {
        if (o->flag != NULL || o->val != optopt)
            continue;
        if (o->has_arg == required_argument)
            return cli_usage_error("option '%s' requires an argument", shown);
        if (o->has_arg == no_argument && strchr(arg, '=') != NULL)
            return cli_usage_error("option '--%s' takes no argument", o->name);
    }
    return cli_usage_error("unknown option '%s'%s", shown, note ? note : "");
}

int
cli_exit_status(int status)
{
    switch (status) {
    case ASEC_OK:
        return EXIT_OK;
    case ASEC_EINVAL:
    case ASEC_EBADLEN:
        return EXIT_USAGE;
    case ASEC_EFORMAT:
    case ASEC_ELIMIT:
    case ASEC_ENUMERIC:
        return EXIT_DATAERR;
    case ASEC_ENOENT:
        return EXIT_NOINPUT;
    case ASEC_ENOTSUP:
        return EXIT_UNAVAILABLE;
    case ASEC_ECREATE:
        return EXIT_CANTCREAT;
    case ASEC_EIO:
        return EXIT_IOERR;
    case ASEC_ENOMEM:
    case ASEC_ENOSPC:
        return EXIT_TEMPFAIL;
    case ASEC_EBUDGET:
        return EXIT_NOPERM;
    default:
        return EXIT_SOFTWARE;
    }
}

int
cli_fail(int status)
{
    const char *msg = asec_errmsg();

    if (msg[0] == '\0')
        msg = asec_strerror(status);
    cli_error("%s", msg);
    if (cli_exit_status(status) == EXIT_SOFTWARE)
        fprintf(stderr, "%s: this is a bug; please report it to <%s>\n", command_name,
                PACKAGE_BUGREPORT);
    return cli_exit_status(status);
}

int
cli_memstream_close(FILE *f)
{
    int bad = ferror(f);

    if (fclose(f) != 0 || bad) {
        cli_error("out of memory");
        return -1;
    }
    return 0;
}

int
cli_print_version(void)
{
    printf("attnsec %s\n", PACKAGE_VERSION);
    printf("libattnsec %s\n", asec_version_string());
    printf("libsodium %s\n", sodium_version_string());
    printf("jansson %s\n", jansson_version_str());
    printf("GSL %s\n", gsl_version);
    printf("Copyright (C) 2026 the attnsec authors.\n");
    printf("License: MIT <https://opensource.org/licenses/MIT>.\n");
    printf("This is free software: you are free to change and redistribute it.\n");
    printf("There is NO WARRANTY, to the extent permitted by law.\n");
    return EXIT_OK;
}

/* The option text as quoted in a message: one printable line (the text
 * may come from a batch manifest, not only from a terminal). */
#define QUOTE(buf, text) asec__printable((buf), sizeof(buf), (text))

int
cli_parse_double(const char *opt, const char *text, double lo, double hi, double *out)
{
    char *end, q[256];
    double v;

    errno = 0;
    v = strtod(text, &end);
    if (end == text || *end != '\0')
        return cli_usage_error("%s: '%s' is not a number", opt, QUOTE(q, text));
    if (errno == ERANGE || !isfinite(v))
        return cli_usage_error("%s: '%s' is out of range", opt, QUOTE(q, text));
    if (v < lo || v > hi)
        return cli_usage_error("%s: %s is outside [%g, %g]", opt, QUOTE(q, text), lo, hi);
    *out = v;
    return 0;
}

int
cli_parse_u64(const char *opt, const char *text, uint64_t *out)
{
    char *end, q[256];
    unsigned long long v;

    if (text[0] < '0' || text[0] > '9')
        return cli_usage_error("%s: '%s' is not a non-negative integer", opt,
                               QUOTE(q, text));
    errno = 0;
    v = strtoull(text, &end, 10);
    if (*end != '\0')
        return cli_usage_error("%s: '%s' is not a non-negative integer", opt,
                               QUOTE(q, text));
    if (errno == ERANGE || v > UINT64_MAX)
        return cli_usage_error("%s: '%s' is out of range", opt, QUOTE(q, text));
    *out = (uint64_t)v;
    return 0;
}

int
cli_parse_size(const char *opt, const char *text, size_t lo, size_t hi, size_t *out)
{
    char q[256];
    uint64_t v;
    int rc = cli_parse_u64(opt, text, &v);

    if (rc != 0)
        return rc;
    if (v < lo || v > hi)
        return cli_usage_error("%s: %s is outside [%zu, %zu]", opt, QUOTE(q, text), lo,
                               hi);
    *out = (size_t)v;
    return 0;
}

int
cli_parse_long(const char *opt, const char *text, long lo, long hi, long *out)
{
    char *end, q[256];
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (end == text || *end != '\0')
        return cli_usage_error("%s: '%s' is not an integer", opt, QUOTE(q, text));
    if (errno == ERANGE)
        return cli_usage_error("%s: '%s' is out of range", opt, QUOTE(q, text));
    if (v < lo || v > hi)
        return cli_usage_error("%s: %s is outside [%ld, %ld]", opt, QUOTE(q, text), lo,
                               hi);
    *out = v;
    return 0;
}

/* One segment "Q:SIGMA:STEPS" (seg is modified); number is 1-based. */
static int
parse_segment(char *text, size_t number, asec_acct_segment *s)
{
    char *f[3], *save = NULL;
    int k = 0, rc;

    for (char *t = strtok_r(text, ":", &save); t != NULL && k < 4;
         t = strtok_r(NULL, ":", &save))
        f[k < 3 ? k : 2] = t, k++;
    if (k != 3)
        return cli_usage_error("--schedule: segment %zu is not Q:SIGMA:STEPS", number);
    if ((rc = cli_parse_double("--schedule", f[0], 0.0, 1.0, &s->q)) != 0 ||
        (rc = cli_parse_double("--schedule", f[1], 0.0, HUGE_VAL, &s->sigma)) != 0 ||
        (rc = cli_parse_u64("--schedule", f[2], &s->count)) != 0)
        return rc;
    if (!(s->sigma > 0.0))
        return cli_usage_error("--schedule: segment %zu: sigma must be > 0", number);
    if (s->count < 1)
        return cli_usage_error("--schedule: segment %zu: steps must be >= 1", number);
    return 0;
}

int
cli_parse_schedule(const char *text, asec_acct_segment **seg, size_t *n)
{
    size_t cap = 1, k = 0;
    asec_acct_segment *s;
    char *copy, *tok, *save = NULL;
    int rc = 0;

    *seg = NULL;
    *n = 0;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    if (cap > CLI_SCHEDULE_MAX_SEGMENTS)
        return cli_usage_error("--schedule: more than %d segments",
                               CLI_SCHEDULE_MAX_SEGMENTS);
    s = calloc(cap, sizeof *s);
    copy = strdup(text);
    if (s == NULL || copy == NULL) {
        free(s);
        free(copy);
        cli_error("out of memory");
        return EXIT_TEMPFAIL;
    }
    for (tok = strtok_r(copy, ",", &save); rc == 0 && tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        rc = parse_segment(tok, k + 1, &s[k]);
        k += rc == 0;
    }
    free(copy);
    if (rc == 0 && k == 0)
        rc = cli_usage_error("--schedule: no segments");
    if (rc != 0) {
        free(s);
        return rc;
    }
    *seg = s;
    *n = k;
    return 0;
}

/* ---------------------------------------------------------------- progress */

static struct {
    char stage[64];
    size_t total;
    int tty;
    int active;
    double start;
    double last;
    double interval;
} prog;

static double
now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void
cli_progress_begin(const char *stage, size_t total)
{
    const char *iv = getenv("ATTNSEC_PROGRESS_INTERVAL");
    char *end;

    snprintf(prog.stage, sizeof prog.stage, "%s", stage);
    prog.total = total;
    prog.tty = isatty(STDERR_FILENO);
    prog.active = cli_verbosity > 0;
    prog.start = prog.last = now_seconds();
    prog.interval = 30.0;
    if (iv != NULL) {
        double v = strtod(iv, &end);

        if (end != iv && *end == '\0' && v >= 0)
            prog.interval = v;
    }
    if (prog.active && !prog.tty)
        fprintf(stderr, "%s: %s: started (%zu steps)\n", command_name, prog.stage, total);
}

void
cli_progress_update(size_t done)
{
    double t;

    if (!prog.active)
        return;
    t = now_seconds();
    if (prog.tty) {
        enum { WIDTH = 30 };
        size_t fill = prog.total ? done * WIDTH / prog.total : WIDTH;
        char bar[WIDTH + 1];
        int color = getenv("NO_COLOR") == NULL || getenv("NO_COLOR")[0] == '\0';

        if (fill > WIDTH)
            fill = WIDTH;
        memset(bar, '#', fill);
        memset(bar + fill, '.', WIDTH - fill);
        bar[WIDTH] = '\0';
        fprintf(stderr, "\r%s%-24s%s [%s] %zu/%zu %.0fs", color ? "\033[1m" : "",
                prog.stage, color ? "\033[0m" : "", bar, done, prog.total,
                t - prog.start);
        fflush(stderr);
    } else if (t - prog.last >= prog.interval) {
        fprintf(stderr, "%s: %s: %zu/%zu (%.0f s)\n", command_name, prog.stage, done,
                prog.total, t - prog.start);
        prog.last = t;
    }
}

void
cli_progress_end(void)
{
    if (!prog.active)
        return;
    if (prog.tty)
        fputc('\n', stderr);
    else
        fprintf(stderr, "%s: %s: done (%.1f s)\n", command_name, prog.stage,
                now_seconds() - prog.start);
    prog.active = 0;
}

int
cli_calibrate_sigma(double *sigma, double q, size_t steps, double target_eps,
                    double delta)
{
    asec_acct *empty = NULL;
    asec_acct_calib cal = ASEC_ACCT_CALIB_INIT;
    int rc;

    cal.solve = ASEC_ACCT_PARAM_SIGMA;
    cal.sampling = ASEC_ACCT_POISSON;
    cal.q = q;
    cal.steps = steps;
    cal.target_epsilon = target_eps;
    cal.delta = delta;
    if ((rc = asec_acct_alloc(&empty, NULL)) == ASEC_OK)
        rc = asec_acct_calibrate(empty, ASEC_ACCT_RDP, &cal, sigma, NULL);
    asec_acct_free(empty);
    return rc;
}
