/* cmd_release.c - 'attnsec release': release a .npy array with exact
 * lattice noise, optionally charging a privacy ledger first
 * (attnsec-release(1)).
 *
 * Order of effects, so that a crash can only over-count the budget:
 *   1. parse and check everything that does not need randomness: options,
 *      the input, the noise plan (asec_noise_plan), the ledger;
 *   2. with --ledger: under an exclusive lock on LEDGER.lock, compose the
 *      recorded releases plus this one through the accountant; refuse
 *      with 77 (writing nothing) if that exceeds --budget, else write the
 *      ledger with the new entry (atomically);
 *   3. draw the noise and write the output (atomically);
 *   4. write report.json (atomically).
 */
#define _POSIX_C_SOURCE 200809L /* fcntl locks, strdup under -std=c11 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "attnsec/acct.h"
#include "attnsec/attnsec.h"
#include "cli.h"
#include "commands.h"
#include "ledger.h"
#include "printable.h"

enum {
    OPT_SENSITIVITY = 256,
    OPT_NORM,
    OPT_DELTA,
    OPT_SIGMA,
    OPT_LEDGER,
    OPT_BUDGET,
    OPT_BITS,
    OPT_REPORT,
    OPT_JSON,
    OPT_SEED,
    OPT_INSECURE_SEED
};

static void
print_help(void)
{
    printf(
        "Usage: attnsec release [OPTION]... -i IN.npy -o OUT.npy -m MECH "
        "--sensitivity=D\n"
        "         (--epsilon=E [--delta=d] | --sigma=S)\n"
        "Release an array with exact differentially private noise: each value is\n"
        "rounded to a power-of-two lattice and discrete Gaussian or discrete Laplace\n"
        "noise is added in integers, from the operating system's secure generator.\n"
        "\n"
        "Input and output:\n"
        "  -i, --input=FILE          array to release (.npy, any numeric dtype)\n"
        "  -o, --output=FILE         noisy array (.npy, float64, same shape)\n"
        "      --report=FILE         report (default: OUT with .npy replaced by\n"
        "                              .report.json)\n"
        "      --json                also print the report on standard output\n"
        "Mechanism:\n"
        "  -m, --mechanism=MECH      gaussian (zCDP; (epsilon, delta)-DP) or laplace\n"
        "                              (pure epsilon-DP)\n"
        "      --sensitivity=D       largest change of the array between neighbouring\n"
        "                              datasets, in data units\n"
        "      --norm=l1|l2          norm of the sensitivity (default: l2 for gaussian,\n"
        "                              l1 for laplace, which needs l1)\n"
        "  -e, --epsilon=E           calibrate the noise to this epsilon\n"
        "      --delta=d             gaussian: the delta of epsilon (needed with\n"
        "                              --epsilon; with --sigma, epsilon is reported at "
        "d)\n"
        "      --sigma=S             noise scale instead of --epsilon: the gaussian's\n"
        "                              standard deviation or the laplace's scale b\n"
        "      --granularity-bits=K  lattice g = 2^(ceil(log2 scale) - K) (default 20;\n"
        "                              gaussian at most 30, laplace at most 50)\n"
        "Privacy ledger:\n"
        "      --ledger=FILE         record this release in FILE before releasing\n"
        "      --budget=E,d          refuse (exit 77, nothing written) when all of\n"
        "                              FILE's releases plus this one exceed (E, d)\n"
        "Testing only:\n"
        "      --seed=N              seeded noise; refused unless --insecure-seed\n"
        "      --insecure-seed       accept --seed: the output is NOT a DP release\n"
        "  -q, --quiet               no messages except errors\n"
        "  -v, --verbose             print the plan on standard error\n"
        "  -h, --help                display this help and exit\n"
        "  -V, --version             output version information and exit\n"
        "\n"
        "Exit status: 0 on success, 64 usage error, 65 malformed input or ledger,\n"
        "66 missing input, 73 cannot create output, 74 I/O error, 75 retryable,\n"
        "77 privacy budget exceeded.  Full documentation: attnsec-release(1).\n");
}

struct args {
    const char *input, *output, *report, *ledger;
    asec_noise_options opts;
    int have_mech, have_sens, have_eps, have_delta, have_sigma, have_norm;
    int have_budget, have_seed, insecure_seed, json;
    double budget_eps, budget_delta;
    uint64_t seed;
};

/* "E,d" with E > 0 and d in [0, 1). */
static int
parse_budget(const char *text, double *eps, double *delta)
{
    const char *comma = strchr(text, ',');
    char head[64];

    if (comma == NULL || (size_t)(comma - text) >= sizeof head)
        return cli_usage_error("--budget: '%s' is not EPSILON,DELTA", text);
    memcpy(head, text, (size_t)(comma - text));
    head[comma - text] = '\0';
    if (cli_parse_double("--budget epsilon", head, 0.0, INFINITY, eps) != 0 ||
        cli_parse_double("--budget delta", comma + 1, 0.0, 1.0, delta) != 0)
        return EXIT_USAGE;
    if (!(*eps > 0) || !(*delta < 1))
        return cli_usage_error("--budget: need epsilon > 0 and delta in [0, 1), not '%s'",
                               text);
    return 0;
}

static int
parse_args(struct args *a, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"input", required_argument, NULL, 'i'},
        {"output", required_argument, NULL, 'o'},
        {"report", required_argument, NULL, OPT_REPORT},
        {"json", no_argument, NULL, OPT_JSON},
        {"mechanism", required_argument, NULL, 'm'},
        {"sensitivity", required_argument, NULL, OPT_SENSITIVITY},
        {"norm", required_argument, NULL, OPT_NORM},
        {"epsilon", required_argument, NULL, 'e'},
        {"delta", required_argument, NULL, OPT_DELTA},
        {"sigma", required_argument, NULL, OPT_SIGMA},
        {"granularity-bits", required_argument, NULL, OPT_BITS},
        {"ledger", required_argument, NULL, OPT_LEDGER},
        {"budget", required_argument, NULL, OPT_BUDGET},
        {"seed", required_argument, NULL, OPT_SEED},
        {"insecure-seed", no_argument, NULL, OPT_INSECURE_SEED},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    asec_noise_options init = ASEC_NOISE_OPTIONS_INIT;
    int c;
    long bits;

    memset(a, 0, sizeof *a);
    a->opts = init;
    a->opts.delta = 0;
    a->opts.epsilon = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":i:o:m:e:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'i':
            a->input = optarg;
            break;
        case 'o':
            a->output = optarg;
            break;
        case OPT_REPORT:
            a->report = optarg;
            break;
        case OPT_JSON:
            a->json = 1;
            break;
        case 'm':
            if (strcmp(optarg, "gaussian") == 0)
                a->opts.mech = ASEC_NOISE_GAUSSIAN;
            else if (strcmp(optarg, "laplace") == 0)
                a->opts.mech = ASEC_NOISE_LAPLACE;
            else
                return cli_usage_error("--mechanism: '%s' is not gaussian or laplace",
                                       optarg);
            a->have_mech = 1;
            break;
        case OPT_SENSITIVITY:
            if (cli_parse_double("--sensitivity", optarg, 0.0, INFINITY,
                                 &a->opts.sensitivity) != 0)
                return EXIT_USAGE;
            if (!(a->opts.sensitivity > 0))
                return cli_usage_error("--sensitivity: must be positive");
            a->have_sens = 1;
            break;
        case OPT_NORM:
            if (strcmp(optarg, "l1") == 0)
                a->opts.norm = ASEC_NOISE_L1;
            else if (strcmp(optarg, "l2") == 0)
                a->opts.norm = ASEC_NOISE_L2;
            else
                return cli_usage_error("--norm: '%s' is not l1 or l2", optarg);
            a->have_norm = 1;
            break;
        case 'e':
            if (cli_parse_double("--epsilon", optarg, 0.0, INFINITY, &a->opts.epsilon) !=
                0)
                return EXIT_USAGE;
            if (!(a->opts.epsilon > 0))
                return cli_usage_error("--epsilon: must be positive");
            a->have_eps = 1;
            break;
        case OPT_DELTA:
            if (cli_parse_double("--delta", optarg, 0.0, 1.0, &a->opts.delta) != 0)
                return EXIT_USAGE;
            if (!(a->opts.delta > 0 && a->opts.delta < 1))
                return cli_usage_error("--delta: must lie in (0, 1)");
            a->have_delta = 1;
            break;
        case OPT_SIGMA:
            if (cli_parse_double("--sigma", optarg, 0.0, INFINITY, &a->opts.scale) != 0)
                return EXIT_USAGE;
            if (!(a->opts.scale > 0))
                return cli_usage_error("--sigma: must be positive");
            a->have_sigma = 1;
            break;
        case OPT_BITS:
            if (cli_parse_long("--granularity-bits", optarg, 1, 50, &bits) != 0)
                return EXIT_USAGE;
            a->opts.granularity_bits = (int)bits;
            break;
        case OPT_LEDGER:
            a->ledger = optarg;
            break;
        case OPT_BUDGET:
            if (parse_budget(optarg, &a->budget_eps, &a->budget_delta) != 0)
                return EXIT_USAGE;
            a->have_budget = 1;
            break;
        case OPT_SEED:
            if (cli_parse_u64("--seed", optarg, &a->seed) != 0)
                return EXIT_USAGE;
            a->have_seed = 1;
            break;
        case OPT_INSECURE_SEED:
            a->insecure_seed = 1;
            break;
        case 'q':
            cli_verbosity = 0;
            break;
        case 'v':
            cli_verbosity = 2;
            break;
        case 'h':
            print_help();
            return -1;
        case 'V':
            cli_print_version();
            return -1;
        default: /* ':' too: a missing argument */
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (a->input == NULL || a->output == NULL)
        return cli_usage_error("missing %s", a->input == NULL ? "--input" : "--output");
    if (!a->have_mech)
        return cli_usage_error("missing --mechanism (gaussian or laplace)");
    if (!a->have_sens)
        return cli_usage_error("missing --sensitivity");
    if (a->have_eps == a->have_sigma)
        return cli_usage_error("give exactly one of --epsilon and --sigma");
    if (a->opts.mech == ASEC_NOISE_LAPLACE) {
        if (a->have_delta)
            return cli_usage_error("--delta: the Laplace mechanism is pure epsilon-DP");
        if (a->have_norm && a->opts.norm != ASEC_NOISE_L1)
            return cli_usage_error(
                "--norm: the Laplace mechanism needs an l1 sensitivity");
        a->opts.norm = ASEC_NOISE_L1;
        if (a->opts.granularity_bits > 50)
            return cli_usage_error("--granularity-bits: at most 50");
    } else {
        if (a->have_eps && !a->have_delta)
            return cli_usage_error("--epsilon with the Gaussian mechanism needs --delta");
        if (a->opts.granularity_bits > 30)
            return cli_usage_error("--granularity-bits: at most 30 for gaussian");
    }
    if ((a->ledger == NULL) != (a->have_budget == 0))
        return cli_usage_error("--ledger and --budget go together");
    if (a->have_seed && !a->insecure_seed)
        return cli_usage_error("refusing --seed: a DP release uses secure randomness "
                               "(add --insecure-seed for a test run that is NOT a DP "
                               "release)");
    if (a->insecure_seed && !a->have_seed)
        return cli_usage_error("--insecure-seed needs --seed");
    return 0;
}

/* ------------------------------------------------------------ the ledger
 *
 * Reading and composing: ledger.c.  Here: the lock and the write. */

/* Exclusive lock on LEDGER.lock (never renamed, so every writer locks the
 * same inode; the ledger itself is replaced by rename). */
static int
ledger_lock(struct ledger *l, const char *path)
{
    struct flock fl;
    size_t n = strlen(path);
    char *lock = malloc(n + 6);

    if (lock == NULL) {
        cli_error("out of memory");
        return EXIT_TEMPFAIL;
    }
    memcpy(lock, path, n);
    memcpy(lock + n, ".lock", 6);
    l->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (l->lock_fd < 0) {
        cli_error("%s: cannot create the lock file: %s", lock, strerror(errno));
        free(lock);
        return EXIT_CANTCREAT;
    }
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    while (fcntl(l->lock_fd, F_SETLKW, &fl) != 0) {
        if (errno == EINTR)
            continue;
        cli_error("%s: cannot lock: %s", lock, strerror(errno));
        free(lock);
        return EXIT_TEMPFAIL;
    }
    free(lock);
    return 0;
}

static void
ledger_close(struct ledger *l)
{
    if (l->lock_fd >= 0)
        close(l->lock_fd); /* releases the lock */
    l->lock_fd = -1;
    ledger_free(l);
}

static char *
utc_now(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, n, "unknown");
    return buf;
}

/* A JSON number, or null for a non-finite one. */
static json_t *
jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Append this release to the ledger and write it atomically. */
static int
ledger_write(struct ledger *l, const char *path, const struct args *a,
             const asec_noise_result *plan, const asec_rng *rng)
{
    char when[32];
    json_t *e;
    char *text;
    int rc;

    e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}",
                  "time_utc", utc_now(when, sizeof when), "command", "release",
                  "mechanism",
                  a->opts.mech == ASEC_NOISE_GAUSSIAN ? "gaussian" : "laplace", "input",
                  a->input, "output", a->output, "epsilon", jnum(plan->epsilon), "delta",
                  json_real(plan->delta), "rho", jnum(plan->rho), "sensitivity",
                  json_real(plan->sensitivity), "sensitivity_effective",
                  json_real(plan->sensitivity_eff), "scale", json_real(plan->scale),
                  "granularity", json_real(plan->granularity), "dp_release",
                  asec_rng_get_mode(rng) == ASEC_RNG_SECURE);
    if (e == NULL || json_array_append_new(l->entries, e) != 0) {
        cli_error("%s: cannot build the ledger entry (a path that is not UTF-8?)", path);
        return EXIT_DATAERR;
    }
    text = json_dumps(l->root, LEDGER_DUMP_FLAGS);
    if (text == NULL) {
        cli_error("out of memory");
        return EXIT_TEMPFAIL;
    }
    if (strlen(text) > LEDGER_MAX_BYTES) {
        /* it could not be read back: refuse before releasing anything */
        cli_error("%s: with this release the ledger would exceed %zu bytes, the most "
                  "that is read back; nothing was written",
                  path, LEDGER_MAX_BYTES);
        free(text);
        return EXIT_DATAERR;
    }
    rc = asec_afile_write_all(path, text, strlen(text));
    free(text);
    return rc == ASEC_OK ? 0 : cli_fail(rc);
}

/* ------------------------------------------------------------ the report */

static char *
default_report_path(const char *output)
{
    size_t n = strlen(output);
    const char *suffix = ".report.json";
    char *p;

    if (n >= 4 && strcmp(output + n - 4, ".npy") == 0)
        n -= 4;
    p = malloc(n + strlen(suffix) + 1);
    if (p != NULL) {
        memcpy(p, output, n);
        strcpy(p + n, suffix);
    }
    return p;
}

static int
fill_report(asec_report *r, const struct args *a, const asec_io_tensor *t,
            const asec_noise_result *res, const struct ledger_composed *comp,
            const asec_rng *rng)
{
    const int gaussian = a->opts.mech == ASEC_NOISE_GAUSSIAN;
    char shape[64 * 24] = "[", *p = shape + 1;
    int rc = ASEC_OK;

    for (size_t k = 0; k < t->ndim; k++)
        p += snprintf(p, sizeof shape - (size_t)(p - shape), "%s%zu", k ? ", " : "",
                      t->shape[k]);
    snprintf(p, sizeof shape - (size_t)(p - shape), "]");

#define TRY(call)                                                                        \
    do {                                                                                 \
        if (rc == ASEC_OK)                                                               \
            rc = (call);                                                                 \
    } while (0)
    TRY(asec_report_add_input(r, a->input));
    TRY(asec_report_set_rng(r, rng));
    TRY(asec_report_set_str(r, "config.mechanism", gaussian ? "gaussian" : "laplace"));
    TRY(asec_report_set_num(r, "config.sensitivity", a->opts.sensitivity));
    TRY(asec_report_set_str(r, "config.norm",
                            a->opts.norm == ASEC_NOISE_L1 ? "l1" : "l2"));
    if (a->have_eps)
        TRY(asec_report_set_num(r, "config.epsilon", a->opts.epsilon));
    if (a->have_delta)
        TRY(asec_report_set_num(r, "config.delta", a->opts.delta));
    if (a->have_sigma)
        TRY(asec_report_set_num(r, "config.sigma", a->opts.scale));
    TRY(asec_report_set_int(r, "config.granularity_bits", res->granularity_bits));
    TRY(asec_report_set_str(r, "config.output", a->output));

    TRY(asec_report_set_str(r, "results.mechanism",
                            gaussian ? "discrete_gaussian" : "discrete_laplace"));
    TRY(asec_report_set_str(r, "results.sampler",
                            "Canonne-Kamath-Steinke 2020, exact integer arithmetic"));
    TRY(asec_report_set_str(r, "results.sampler_path",
                            res->path == ASEC_NOISE_PATH_GMP ? "gmp" : "fast"));
    TRY(asec_report_set_bool(r, "results.idealized_numerics", 0));
    TRY(asec_report_set_bool(r, "results.dp_release",
                             asec_rng_get_mode(rng) == ASEC_RNG_SECURE));
    TRY(asec_report_set_json(r, "results.shape", shape));
    TRY(asec_report_set_int(r, "results.values", (long long)t->nelem));
    TRY(asec_report_set_num(r, "results.lattice.granularity", res->granularity));
    TRY(asec_report_set_int(r, "results.lattice.granularity_bits",
                            res->granularity_bits));
    TRY(asec_report_set_num(r, "results.sensitivity", res->sensitivity));
    TRY(asec_report_set_str(r, "results.sensitivity_norm", gaussian ? "l2" : "l1"));
    TRY(asec_report_set_num(r, "results.sensitivity_effective", res->sensitivity_eff));
    TRY(asec_report_set_num(r, gaussian ? "results.sigma" : "results.scale", res->scale));
    TRY(asec_report_set_int(r, "results.lattice.scale_num", (long long)res->scale_num));
    TRY(asec_report_set_int(r, "results.lattice.scale_den", (long long)res->scale_den));
    TRY(asec_report_set_str(r, "results.lattice.scale_meaning",
                            gaussian ? "sigma^2 = scale_num / scale_den lattice units"
                                     : "b = scale_num / scale_den lattice units"));
    TRY(asec_report_set_num(r, "results.epsilon", res->epsilon));
    TRY(asec_report_set_num(r, "results.delta", res->delta));
    TRY(asec_report_set_num(r, "results.rho", res->rho));
    if (comp != NULL) {
        TRY(asec_report_set_str(r, "results.ledger.path", a->ledger));
        TRY(asec_report_set_int(r, "results.ledger.entries", (long long)comp->entries));
        TRY(asec_report_set_num(r, "results.ledger.epsilon", comp->epsilon));
        TRY(asec_report_set_num(r, "results.ledger.delta", comp->delta));
        TRY(asec_report_set_str(r, "results.ledger.method", comp->method));
        TRY(asec_report_set_num(r, "results.ledger.budget_epsilon", a->budget_eps));
        TRY(asec_report_set_num(r, "results.ledger.budget_delta", a->budget_delta));
    }
#undef TRY
    return rc;
}

/* ------------------------------------------------------------ the command */

int
cmd_release(int argc, char **argv)
{
    struct args a;
    struct ledger led = {NULL, NULL, -1};
    struct ledger_composed comp;
    asec_noise_result plan, res;
    asec_io_file *in = NULL;
    const asec_io_tensor *t = NULL;
    asec_report *rep = NULL;
    asec_rng *rng = NULL;
    double *out = NULL;
    char *report_path = NULL;
    int st, rc;

    st = parse_args(&a, argc, argv);
    if (st != 0)
        return st < 0 ? EXIT_OK : st;

    /* 1. Everything that needs no randomness. */
    rc = asec_report_alloc(&rep, "release", argc, argv);
    if (rc != ASEC_OK)
        return cli_fail(rc);
    rc = asec_io_open(&in, a.input, ASEC_IO_NPY, ASEC_IO_LOAD_DOUBLE, NULL);
    if (rc != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    t = asec_io_file_tensor(in, 0);
    if (t->nelem == 0) {
        cli_error("%s: the array is empty; nothing to release", a.input);
        st = EXIT_DATAERR;
        goto done;
    }
    rc = asec_noise_plan(&plan, &a.opts, t->nelem);
    if (rc != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    report_path = a.report != NULL ? strdup(a.report) : default_report_path(a.output);
    out = malloc(t->nelem * sizeof *out);
    if (report_path == NULL || out == NULL) {
        cli_error("out of memory");
        st = EXIT_TEMPFAIL;
        goto done;
    }
    rc = a.have_seed ? asec_rng_alloc_seeded(&rng, a.seed, "release")
                     : asec_rng_alloc_secure(&rng);
    if (rc != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    if (asec_rng_get_mode(rng) == ASEC_RNG_SEEDED)
        cli_warn("seeded noise (--insecure-seed): the output is NOT a DP release");
    if (cli_verbosity >= 2)
        fprintf(stderr,
                "%s: %s noise, g = %.17g, sensitivity %.17g -> %.17g, scale %.17g, "
                "epsilon %.17g, delta %g, rho %.17g, %s path\n",
                cli_command(),
                a.opts.mech == ASEC_NOISE_GAUSSIAN ? "discrete Gaussian"
                                                   : "discrete Laplace",
                plan.granularity, plan.sensitivity, plan.sensitivity_eff, plan.scale,
                plan.epsilon, plan.delta, plan.rho,
                plan.path == ASEC_NOISE_PATH_GMP ? "GMP" : "fast");

    /* 2. The ledger: compose, refuse or record, all under the lock. */
    if (a.ledger != NULL) {
        st = ledger_lock(&led, a.ledger);
        if (st == 0)
            st = ledger_read(&led, a.ledger);
        if (st == 0)
            st = ledger_compose(&led, a.ledger, a.opts.mech == ASEC_NOISE_GAUSSIAN,
                                a.opts.mech == ASEC_NOISE_GAUSSIAN ? plan.rho
                                                                   : plan.epsilon,
                                a.budget_delta, &comp);
        if (st != 0)
            goto done;
        if (!(comp.epsilon <= a.budget_eps)) {
            cli_error("%s: refused: %zu releases would compose to epsilon %.6g at delta "
                      "%g (%s), over the budget (%g, %g); nothing was written",
                      a.ledger, comp.entries, comp.epsilon, comp.delta, comp.method,
                      a.budget_eps, a.budget_delta);
            st = EXIT_NOPERM;
            goto done;
        }
        st = ledger_write(&led, a.ledger, &a, &plan, rng);
        ledger_close(&led);
        if (st != 0)
            goto done;
    }

    /* 3. Noise, then the output.  A crash from here on over-counts. */
    rc = asec_noise_release(out, t->data, t->nelem, &a.opts, rng, &res);
    if (rc == ASEC_OK)
        rc = asec_io_npy_write(a.output, out, t->ndim, t->shape, ASEC_IO_F64);
    if (rc != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }

    /* 4. The report. */
    rc = fill_report(rep, &a, t, &res, a.ledger != NULL ? &comp : NULL, rng);
    if (rc == ASEC_OK)
        rc = asec_report_finish(rep, EXIT_OK);
    if (rc == ASEC_OK)
        rc = asec_report_write(rep, report_path);
    if (rc == ASEC_OK && a.json)
        rc = asec_report_print(rep, stdout);
    st = rc == ASEC_OK ? EXIT_OK : cli_fail(rc);

done:
    ledger_close(&led);
    free(out);
    free(report_path);
    asec_rng_free(rng);
    asec_io_file_free(in);
    asec_report_free(rep);
    return st;
}
