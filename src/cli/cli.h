/* cli.h - shared helpers of the attnsec program: command tables, error
 * messages in GNU style, exit statuses, checked number parsing, progress.
 *
 * Only src/cli/ touches stdout, stderr, the environment and exit codes;
 * the library never does (STYLE.md B1, rule 3). */
#ifndef ATTNSEC_CLI_H
#define ATTNSEC_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "attnsec/common.h"
#include "attnsec/acct.h"

/* Exit statuses (sysexits; the EXIT STATUS table of attnsec(1)). */
enum {
    EXIT_OK = 0,
    EXIT_CHECK_FAILED = 1, /* a requested check failed (--fail-if-...) */
    EXIT_USAGE = 64,
    EXIT_DATAERR = 65,
    EXIT_NOINPUT = 66,
    EXIT_UNAVAILABLE = 69,
    EXIT_SOFTWARE = 70,
    EXIT_OSERR = 71,
    EXIT_CANTCREAT = 73,
    EXIT_IOERR = 74,
    EXIT_TEMPFAIL = 75,
    EXIT_NOPERM = 77,
    EXIT_CONFIG = 78
};

/* A command: receives argv with argv[0] the method word and returns an
 * exit status. */
typedef int (*cli_fn)(int argc, char **argv);

struct cli_method {
    const char *name;
    cli_fn fn;
    const char *summary;
};

struct cli_group {
    const char *name;
    cli_fn fn;                        /* a group that is itself a command, or NULL */
    const struct cli_method *methods; /* NULL-terminated, or NULL */
    const char *summary;
};

/* Verbosity from -q (0), default (1), -v (2). */
extern int cli_verbosity;

/* The full command name used as the prefix of every message, e.g.
 * "attnsec inspect".  Set by the dispatcher before a command runs. */
void cli_set_command(const char *group, const char *method);
const char *cli_command(void);

/* "attnsec inspect: MESSAGE" on stderr (no final period). */
void cli_error(const char *fmt, ...) ASEC_PRINTF(1, 2);
void cli_warn(const char *fmt, ...) ASEC_PRINTF(1, 2);
/* Print the message, then "Try 'attnsec inspect --help' ..."; returns 64. */
int cli_usage_error(const char *fmt, ...) ASEC_PRINTF(1, 2);
/* The usage error for getopt_long's '?' (opterr = 0), from optopt and
 * argv[optind - 1]: "option '--seed' requires an argument", "option
 * '--json' takes no argument", or "unknown option '--x'" followed by note
 * (NULL or text such as " (with --corpus)").  Every short option must have
 * a long form with the same val in longopts.  Returns 64. */
int cli_option_error(char *const argv[], const struct option *longopts, const char *note);
/* Print asec_errmsg() (or asec_strerror) as an error; return the exit
 * status for the library status. */
int cli_fail(int status);
/* The exit status that an ASEC_E* status maps to. */
int cli_exit_status(int status);

/* --version text (GCS 4.8.1) on stdout; returns 0. */
int cli_print_version(void);

/* Close a text built with open_memstream(3): 0 when every write reached
 * the buffer; else -1 after "out of memory" (the text is incomplete and
 * must not be written out). */
int cli_memstream_close(FILE *f);

/* Checked parsers for option values: on error they print a usage error
 * naming the option ("--sigma: 'abc' is not a number") and return 64;
 * on success 0.  Ranges are inclusive. */
int cli_parse_double(const char *opt, const char *text, double lo, double hi,
                     double *out);
int cli_parse_size(const char *opt, const char *text, size_t lo, size_t hi, size_t *out);
int cli_parse_u64(const char *opt, const char *text, uint64_t *out);
int cli_parse_long(const char *opt, const char *text, long lo, long hi, long *out);

/* The --schedule value of 'attnsec account': "Q:SIGMA:STEPS,..." with at
 * most CLI_SCHEDULE_MAX_SEGMENTS comma-separated segments (empty ones are
 * skipped), each q in [0, 1], sigma finite and > 0, steps >= 1 (the
 * accountant refuses more than 2^62 later).  On success 0, *seg a fresh
 * array of *n >= 1 segments (release it with free()); otherwise a usage
 * error naming --schedule is printed and 64 returned (75 out of memory),
 * with *seg NULL and *n 0. */
#define CLI_SCHEDULE_MAX_SEGMENTS 100000
int cli_parse_schedule(const char *text, asec_acct_segment **seg, size_t *n);

/* The Gaussian noise multiplier that makes the RDP epsilon of `steps`
 * Poisson-sampled steps at rate q equal target_eps at delta (the answer
 * provably meets the target; 'defend dpsgd --target-epsilon' and the
 * audit).  Returns an ASEC_* status; *sigma is set on success. */
int cli_calibrate_sigma(double *sigma, double q, size_t steps, double target_eps,
                        double delta);

/* Progress on stderr: a bar when stderr is a terminal (no colour when
 * NO_COLOR is set), otherwise a plain line at most every interval
 * seconds (ATTNSEC_PROGRESS_INTERVAL, default 30).  Silent with -q. */
void cli_progress_begin(const char *stage, size_t total);
void cli_progress_update(size_t done);
void cli_progress_end(void);

#endif /* ATTNSEC_CLI_H */
