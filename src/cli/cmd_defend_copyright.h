/* cmd_defend_copyright.h - what the two modes of 'attnsec defend
 * copyright' share: the regression on .npy inputs (cmd_defend.c) and the
 * corpus demonstration (--corpus, cmd_defend_corpus.c).  Implemented in
 * cmd_defend.c.
 *
 * Both modes take the same output, sweep, guard, seed and verbosity
 * options; a mode lists COPYRIGHT_COMMON_LONGOPTS in its option table,
 * COPYRIGHT_COMMON_SHORTOPTS in its short-option string, and passes every
 * option it does not know itself to copyright_common_option(). */
#ifndef ATTNSEC_CMD_DEFEND_COPYRIGHT_H
#define ATTNSEC_CMD_DEFEND_COPYRIGHT_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "attnsec/report.h"
#include "attnsec/rng.h"

/* Longest --gamma list. */
#define COPYRIGHT_MAX_GAMMA 64

/* Option values >= COPYRIGHT_OPT_BASE are the shared long-only options;
 * a mode numbers its own long-only options from 256. */
#define COPYRIGHT_OPT_BASE 1024
enum { COPYRIGHT_OPT_JSON = COPYRIGHT_OPT_BASE, COPYRIGHT_OPT_BETA, COPYRIGHT_OPT_MAXIT };

#define COPYRIGHT_COMMON_SHORTOPTS "o:g:s:qvhV"
#define COPYRIGHT_COMMON_LONGOPTS                                                      \
    {"output", required_argument, NULL, 'o'},                                          \
    {"json", no_argument, NULL, COPYRIGHT_OPT_JSON},                                   \
    {"gamma", required_argument, NULL, 'g'},                                           \
    {"beta-c", required_argument, NULL, COPYRIGHT_OPT_BETA},                           \
    {"max-iter", required_argument, NULL, COPYRIGHT_OPT_MAXIT},                        \
    {"seed", required_argument, NULL, 's'},                                            \
    {"quiet", no_argument, NULL, 'q'},                                                 \
    {"verbose", no_argument, NULL, 'v'},                                               \
    {"help", no_argument, NULL, 'h'},                                                  \
    {"version", no_argument, NULL, 'V'}

/* The shared option values; a mode sets its defaults before parsing. */
struct copyright_common {
    const char *outdir;                  /* -o (required) */
    int json;                            /* --json */
    double gammas[COPYRIGHT_MAX_GAMMA];  /* -g LIST */
    size_t ngamma;
    double beta_c;                       /* --beta-c */
    size_t max_iter;                     /* --max-iter */
    uint64_t seed;                       /* -s */
    void (*help)(void);                  /* the mode's --help text */
};

/* Parse a comma-separated list of at most COPYRIGHT_MAX_GAMMA doubles in
 * [lo, hi] into out.  0, or 64 after a usage error. */
int copyright_parse_list(const char *opt, const char *text, double lo, double hi,
                         double *out, size_t *n);

/* Handle option c (value arg) of getopt_long() when it is a shared one.
 * Returns 1 when it was handled and parsing goes on, 0 when c is not a
 * shared option (an unknown option included), or -1 when the command must
 * return *status now (a usage error: 64; --help, --version: 0). */
int copyright_common_option(struct copyright_common *o, int c, const char *arg,
                            int *status);

/* After parsing: no operand left, --output given.  0 or 64. */
int copyright_common_finish(const struct copyright_common *o, int argc, char **argv);

/* Create the output directory and the report, record the rng and the
 * shared configuration (config.gamma, config.beta_c, config.max_iter).
 * 0 or an exit status (after printing the error). */
int copyright_report_begin(asec_report **rep, const struct copyright_common *o,
                           const asec_rng *rng, int argc, char **argv);

#endif /* ATTNSEC_CMD_DEFEND_COPYRIGHT_H */
