/* cmd_account.c - 'attnsec account epsilon|delta|sigma|events': privacy
 * accounting of DP-SGD and of DpEvent-like event trees
 * (attnsec-account(1)).  Every accountant runs side by side; the text
 * output is a privacy statement in the style of TF Privacy's
 * compute_dp_sgd_privacy, --json prints one JSON document instead. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "attnsec/attnsec.h"
#include "cli.h"
#include "commands.h"

#define EVENTS_MAX_BYTES ((size_t)16 << 20)

enum query { Q_EPSILON, Q_DELTA, Q_SIGMA, Q_EVENTS };

/* Which accountants run: bit per method. */
#define ACC_RDP (1u << ASEC_ACCT_RDP)
#define ACC_PLD (1u << ASEC_ACCT_PLD)
#define ACC_EXACT (1u << ASEC_ACCT_EXACT)
#define ACC_GDP (1u << ASEC_ACCT_GDP_CLT)
#define ACC_BASIC (1u << ASEC_ACCT_BASIC)
#define ACC_ADV (1u << ASEC_ACCT_ADVANCED)
#define ACC_ALL (ACC_RDP | ACC_PLD | ACC_EXACT | ACC_GDP | ACC_BASIC | ACC_ADV)

struct args {
    enum query query;
    double q, sigma, epochs, delta, epsilon, target, pld_dx, fail_above;
    uint64_t steps, dataset, batch;
    int have_q, have_sigma, have_steps, have_epochs, have_delta, have_epsilon,
        have_target;
    int have_dataset, have_batch, have_fail;
    unsigned accountants;
    int relation_set;
    asec_acct_relation relation;
    int sampling_set;
    asec_acct_sampling sampling;
    int legacy, refine, json;
    asec_acct_grid grid;
    double *orders;
    size_t n_orders;
    size_t max_bytes;
    asec_acct_param solve;
    asec_acct_segment *seg;
    size_t n_seg;
    const char *file;
    int argc;
    char **argv;
};

static const char *const method_title[] = {"rdp",     "pld",   "exact",
                                           "gdp-clt", "basic", "advanced"};

/* ------------------------------------------------------------------ help */

static void
print_help(enum query qy)
{
    static const char *const usage[] = {
        "Usage: attnsec account epsilon [OPTION]... -q Q -s SIGMA --steps T\n"
        "  or:  attnsec account epsilon [OPTION]... --dataset-size N --batch-size B "
        "-s SIGMA --epochs E\n"
        "Compute epsilon at --delta for DP-SGD: every accountant side by side, the\n"
        "tightest certified one first.\n",
        "Usage: attnsec account delta [OPTION]... -q Q -s SIGMA --steps T --epsilon E\n"
        "Compute delta at --epsilon for DP-SGD with every accountant.\n",
        "Usage: attnsec account sigma [OPTION]... -q Q --steps T --target-epsilon E\n"
        "Find the smallest noise multiplier (or, with --solve, the largest number of\n"
        "steps or sampling rate) that meets (--target-epsilon, --delta); the answer\n"
        "provably meets the target under the accountant that produced it.\n",
        "Usage: attnsec account events [OPTION]... FILE\n"
        "Compose the DpEvent-like JSON tree in FILE (schema in attnsec-account(1))\n"
        "and report epsilon at --delta (or delta at --epsilon).\n",
    };

    fputs(usage[qy], stdout);
    printf(
        "\nMechanism (aliases in brackets):\n"
        "  -q, --sampling-rate=Q      Poisson sampling rate in [0, 1]\n"
        "                               [-p, --sampling-probability, --sample-rate]\n"
        "  -s, --noise-multiplier=S   noise stddev / L2 sensitivity, > 0\n"
        "                               [--sigma, --noise_multiplier]\n"
        "  -T, --steps=T              number of steps, >= 1 [--num-compositions, -i]\n"
        "      --epochs=E             epochs; with --dataset-size and --batch-size\n"
        "                               gives q = B/N and T = ceil(E N / B)\n"
        "      --dataset-size=N       [--N]\n"
        "      --batch-size=B         [--batch_size]\n"
        "      --schedule=Q:S:T,...   heterogeneous steps (warm-up, noise decay)\n"
        "Query:\n"
        "  -d, --delta=D              target delta in (0, 1) (default 1e-5)\n"
        "  -e, --epsilon=E            epsilon for the delta query\n"
        "      --target-epsilon=E     target for 'sigma' [--target_epsilon]\n"
        "      --solve=sigma|steps|q  what 'sigma' solves for (default sigma)\n"
        "Accounting:\n"
        "      --accountant=LIST      rdp, pld, exact, gdp, basic, advanced or all\n"
        "                               (default all) [--accountant_type]\n"
        "      --relation=R           add-remove (default) or replace-one\n"
        "      --sampling=S           poisson (default) or shuffle (fixed-size\n"
        "                               batches without replacement; replace-one)\n"
        "      --legacy               RDP with Mironov 2017's conversion (old papers)\n"
        "      --orders=GRID          dp_accounting (default), opacus, tf_privacy, or\n"
        "                               a comma-separated list of orders > 1\n"
        "      --refine-order         also minimise RDP over continuous orders\n"
        "      --pld-dx=DX            PLD grid spacing (default: adaptive)\n"
        "      --max-memory=MIB       PLD memory cap in MiB (default 256)\n"
        "Output:\n"
        "      --json                 one JSON document on standard output\n"
        "      --fail-if-epsilon-above=X  exit 1 when the reported epsilon exceeds X\n"
        "  -h, --help                 display this help and exit\n"
        "  -V, --version              output version information and exit\n"
        "\n"
        "Exit status: 0 on success, 1 when --fail-if-epsilon-above trips, 64 usage\n"
        "error, 65 malformed events file or result out of limits, 66 missing events\n"
        "file, 75 out of memory.  Full documentation: attnsec-account(1).\n");
}

/* ------------------------------------------------------------------ parsing */

static int
parse_orders(const char *text, struct args *a)
{
    if (strcmp(text, "dp_accounting") == 0 || strcmp(text, "dp-accounting") == 0) {
        a->grid = ASEC_ACCT_GRID_DP_ACCOUNTING;
        return 0;
    }
    if (strcmp(text, "opacus") == 0) {
        a->grid = ASEC_ACCT_GRID_OPACUS;
        return 0;
    }
    if (strcmp(text, "tf_privacy") == 0 || strcmp(text, "tf-privacy") == 0) {
        a->grid = ASEC_ACCT_GRID_TF_PRIVACY;
        return 0;
    }
    {
        size_t n = 1;
        char *copy, *tok, *save = NULL;

        for (const char *p = text; *p; p++)
            n += *p == ',';
        if (n > 4096)
            return cli_usage_error("--orders: more than 4096 orders");
        free(a->orders);
        a->orders = calloc(n, sizeof *a->orders);
        copy = strdup(text);
        if (a->orders == NULL || copy == NULL) {
            free(copy);
            cli_error("out of memory");
            return EXIT_TEMPFAIL;
        }
        a->n_orders = 0;
        for (tok = strtok_r(copy, ",", &save); tok != NULL;
             tok = strtok_r(NULL, ",", &save)) {
            int rc = cli_parse_double("--orders", tok, 1.0 + 1e-12, 4096.0,
                                      &a->orders[a->n_orders]);

            if (rc != 0) {
                free(copy);
                return rc;
            }
            a->n_orders++;
        }
        free(copy);
        if (a->n_orders == 0)
            return cli_usage_error("--orders: empty list");
    }
    return 0;
}

static int
parse_accountants(const char *text, unsigned *out)
{
    char *copy = strdup(text), *tok, *save = NULL;
    int rc = 0;

    if (copy == NULL) {
        cli_error("out of memory");
        return EXIT_TEMPFAIL;
    }
    *out = 0;
    for (tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        for (char *p = tok; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a'); /* TF Privacy spells RDP, PLD */
        if (strcmp(tok, "all") == 0)
            *out |= ACC_ALL;
        else if (strcmp(tok, "rdp") == 0)
            *out |= ACC_RDP;
        else if (strcmp(tok, "pld") == 0 || strcmp(tok, "prv") == 0)
            *out |= ACC_PLD;
        else if (strcmp(tok, "exact") == 0)
            *out |= ACC_EXACT;
        else if (strcmp(tok, "gdp") == 0 || strcmp(tok, "gdp-clt") == 0)
            *out |= ACC_GDP;
        else if (strcmp(tok, "basic") == 0)
            *out |= ACC_BASIC;
        else if (strcmp(tok, "advanced") == 0)
            *out |= ACC_ADV;
        else {
            rc =
                cli_usage_error("--accountant: unknown accountant '%s' (rdp, pld, exact, "
                                "gdp, basic, advanced, all)",
                                tok);
            break;
        }
    }
    free(copy);
    if (rc == 0 && *out == 0)
        rc = cli_usage_error("--accountant: empty list");
    return rc;
}

enum {
    OPT_EPOCHS = 256,
    OPT_DATASET,
    OPT_BATCH,
    OPT_SCHEDULE,
    OPT_TARGET,
    OPT_SOLVE,
    OPT_ACCOUNTANT,
    OPT_RELATION,
    OPT_SAMPLING,
    OPT_LEGACY,
    OPT_ORDERS,
    OPT_REFINE,
    OPT_PLD_DX,
    OPT_MAXMEM,
    OPT_JSON,
    OPT_FAIL
};

static int
parse_args(int argc, char **argv, enum query qy, struct args *a)
{
    static const struct option longopts[] = {
        {"sampling-rate", required_argument, NULL, 'q'},
        {"sampling-probability", required_argument, NULL, 'q'},
        {"sample-rate", required_argument, NULL, 'q'},
        {"noise-multiplier", required_argument, NULL, 's'},
        {"noise_multiplier", required_argument, NULL, 's'},
        {"sigma", required_argument, NULL, 's'},
        {"steps", required_argument, NULL, 'T'},
        {"num-compositions", required_argument, NULL, 'T'},
        {"epochs", required_argument, NULL, OPT_EPOCHS},
        {"dataset-size", required_argument, NULL, OPT_DATASET},
        {"N", required_argument, NULL, OPT_DATASET},
        {"batch-size", required_argument, NULL, OPT_BATCH},
        {"batch_size", required_argument, NULL, OPT_BATCH},
        {"schedule", required_argument, NULL, OPT_SCHEDULE},
        {"delta", required_argument, NULL, 'd'},
        {"epsilon", required_argument, NULL, 'e'},
        {"target-epsilon", required_argument, NULL, OPT_TARGET},
        {"target_epsilon", required_argument, NULL, OPT_TARGET},
        {"solve", required_argument, NULL, OPT_SOLVE},
        {"accountant", required_argument, NULL, OPT_ACCOUNTANT},
        {"accountant_type", required_argument, NULL, OPT_ACCOUNTANT},
        {"relation", required_argument, NULL, OPT_RELATION},
        {"sampling", required_argument, NULL, OPT_SAMPLING},
        {"legacy", no_argument, NULL, OPT_LEGACY},
        {"orders", required_argument, NULL, OPT_ORDERS},
        {"refine-order", no_argument, NULL, OPT_REFINE},
        {"pld-dx", required_argument, NULL, OPT_PLD_DX},
        {"max-memory", required_argument, NULL, OPT_MAXMEM},
        {"json", no_argument, NULL, OPT_JSON},
        {"fail-if-epsilon-above", required_argument, NULL, OPT_FAIL},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int c, rc;

    memset(a, 0, sizeof *a);
    a->query = qy;
    a->delta = 1e-5;
    a->accountants = ACC_ALL;
    a->relation = ASEC_ACCT_ADD_REMOVE;
    a->sampling = ASEC_ACCT_POISSON;
    a->grid = ASEC_ACCT_GRID_DP_ACCOUNTING;
    a->solve = ASEC_ACCT_PARAM_SIGMA;
    a->argc = argc;
    a->argv = argv;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "q:p:s:T:i:d:e:hV", longopts, NULL)) != -1) {
        rc = 0;
        switch (c) {
        case 'q':
        case 'p': /* prv_accountant's -p */
            rc = cli_parse_double("--sampling-rate", optarg, 0.0, 1.0, &a->q);
            a->have_q = 1;
            break;
        case 's':
            rc = cli_parse_double("--noise-multiplier", optarg, 0.0, HUGE_VAL, &a->sigma);
            if (rc == 0 && !(a->sigma > 0.0))
                rc = cli_usage_error("--noise-multiplier: must be > 0");
            a->have_sigma = 1;
            break;
        case 'T':
        case 'i':
            rc = cli_parse_u64("--steps", optarg, &a->steps);
            if (rc == 0 && a->steps < 1)
                rc = cli_usage_error("--steps: must be >= 1");
            a->have_steps = 1;
            break;
        case OPT_EPOCHS:
            rc = cli_parse_double("--epochs", optarg, 0.0, 1e12, &a->epochs);
            if (rc == 0 && !(a->epochs > 0.0))
                rc = cli_usage_error("--epochs: must be > 0");
            a->have_epochs = 1;
            break;
        case OPT_DATASET:
            rc = cli_parse_u64("--dataset-size", optarg, &a->dataset);
            if (rc == 0 && a->dataset < 1)
                rc = cli_usage_error("--dataset-size: must be >= 1");
            a->have_dataset = 1;
            break;
        case OPT_BATCH:
            rc = cli_parse_u64("--batch-size", optarg, &a->batch);
            if (rc == 0 && a->batch < 1)
                rc = cli_usage_error("--batch-size: must be >= 1");
            a->have_batch = 1;
            break;
        case OPT_SCHEDULE:
            free(a->seg);
            rc = cli_parse_schedule(optarg, &a->seg, &a->n_seg);
            break;
        case 'd':
            rc = cli_parse_double("--delta", optarg, 0.0, 1.0, &a->delta);
            if (rc == 0 && !(a->delta > 0.0 && a->delta < 1.0))
                rc = cli_usage_error("--delta: %s is outside (0, 1)", optarg);
            a->have_delta = 1;
            break;
        case 'e':
            rc = cli_parse_double("--epsilon", optarg, 0.0, 1e6, &a->epsilon);
            a->have_epsilon = 1;
            break;
        case OPT_TARGET:
            rc = cli_parse_double("--target-epsilon", optarg, 0.0, 1e6, &a->target);
            if (rc == 0 && !(a->target > 0.0))
                rc = cli_usage_error("--target-epsilon: must be > 0");
            a->have_target = 1;
            break;
        case OPT_SOLVE:
            if (strcmp(optarg, "sigma") == 0)
                a->solve = ASEC_ACCT_PARAM_SIGMA;
            else if (strcmp(optarg, "steps") == 0)
                a->solve = ASEC_ACCT_PARAM_STEPS;
            else if (strcmp(optarg, "q") == 0 || strcmp(optarg, "sampling-rate") == 0)
                a->solve = ASEC_ACCT_PARAM_Q;
            else
                rc = cli_usage_error("--solve: '%s' is not sigma, steps or q", optarg);
            break;
        case OPT_ACCOUNTANT:
            rc = parse_accountants(optarg, &a->accountants);
            break;
        case OPT_RELATION:
            if (strcmp(optarg, "add-remove") == 0 ||
                strcmp(optarg, "add-or-remove-one") == 0)
                a->relation = ASEC_ACCT_ADD_REMOVE;
            else if (strcmp(optarg, "replace-one") == 0)
                a->relation = ASEC_ACCT_REPLACE_ONE;
            else
                rc = cli_usage_error("--relation: '%s' is not add-remove or replace-one",
                                     optarg);
            a->relation_set = 1;
            break;
        case OPT_SAMPLING:
            if (strcmp(optarg, "poisson") == 0)
                a->sampling = ASEC_ACCT_POISSON;
            else if (strcmp(optarg, "shuffle") == 0 || strcmp(optarg, "fixed") == 0)
                a->sampling = ASEC_ACCT_WOR;
            else
                rc =
                    cli_usage_error("--sampling: '%s' is not poisson or shuffle", optarg);
            a->sampling_set = 1;
            break;
        case OPT_LEGACY:
            a->legacy = 1;
            break;
        case OPT_ORDERS:
            rc = parse_orders(optarg, a);
            break;
        case OPT_REFINE:
            a->refine = 1;
            break;
        case OPT_PLD_DX:
            rc = cli_parse_double("--pld-dx", optarg, 1e-9, 1.0, &a->pld_dx);
            break;
        case OPT_MAXMEM: {
            size_t mib;

            rc = cli_parse_size("--max-memory", optarg, 1, (size_t)1 << 30, &mib);
            a->max_bytes = mib << 20;
            break;
        }
        case OPT_JSON:
            a->json = 1;
            break;
        case OPT_FAIL:
            rc = cli_parse_double("--fail-if-epsilon-above", optarg, 0.0, HUGE_VAL,
                                  &a->fail_above);
            a->have_fail = 1;
            break;
        case 'h':
            print_help(qy);
            return -1;
        case 'V':
            cli_print_version();
            return -1;
        default:
            return cli_option_error(argv, longopts, NULL);
        }
        if (rc != 0)
            return rc;
    }

    /* Positional arguments: only 'events' takes one. */
    if (qy == Q_EVENTS) {
        if (optind >= argc)
            return cli_usage_error("missing events FILE");
        a->file = argv[optind++];
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);

    /* Relation and sampling must agree (ACCOUNTANT.md pitfall 17). */
    if (a->sampling == ASEC_ACCT_WOR) {
        if (a->relation_set && a->relation != ASEC_ACCT_REPLACE_ONE)
            return cli_usage_error(
                "--sampling shuffle (fixed-size batches) is analysed under "
                "--relation replace-one only");
        a->relation = ASEC_ACCT_REPLACE_ONE;
    } else if (a->relation == ASEC_ACCT_REPLACE_ONE && qy != Q_EVENTS) {
        if (a->sampling_set)
            return cli_usage_error(
                "--sampling poisson is analysed under --relation "
                "add-remove only; use --sampling shuffle for replace-one");
        a->sampling = ASEC_ACCT_WOR;
    }
    if (a->sampling == ASEC_ACCT_WOR && a->n_seg > 0)
        return cli_usage_error("--schedule describes Poisson-sampled steps; it cannot be "
                               "combined with --sampling shuffle");

    /* Epochs, dataset size and batch size. */
    if (a->have_epochs || a->have_dataset || a->have_batch) {
        if (!(a->have_dataset && a->have_batch))
            return cli_usage_error("--epochs needs --dataset-size and --batch-size");
        if (a->batch > a->dataset)
            return cli_usage_error("--batch-size %llu exceeds --dataset-size %llu",
                                   (unsigned long long)a->batch,
                                   (unsigned long long)a->dataset);
        if (a->have_q)
            return cli_usage_error("give either --sampling-rate or --dataset-size and "
                                   "--batch-size, not both");
        a->q = (double)a->batch / (double)a->dataset;
        a->have_q = 1;
        if (a->have_epochs) {
            if (a->have_steps)
                return cli_usage_error("give either --steps or --epochs, not both");
            {
                double t = ceil(a->epochs * (double)a->dataset / (double)a->batch);

                /* Integral epochs: exact integer arithmetic (TF Privacy's
                 * ceil(epochs N / B)). */
                if (a->epochs == floor(a->epochs) && a->epochs < 1e6)
                    t = (double)(((uint64_t)a->epochs * a->dataset + a->batch - 1) /
                                 a->batch);
                if (!(t >= 1.0 && t <= 4.6e18))
                    return cli_usage_error("--epochs gives %g steps", t);
                a->steps = (uint64_t)t;
            }
            a->have_steps = 1;
        }
    }
    if (qy == Q_EVENTS) {
        if (a->have_q || a->have_sigma || a->have_steps || a->n_seg > 0)
            return cli_usage_error(
                "'events' takes the mechanism from FILE; drop "
                "--sampling-rate, --noise-multiplier, --steps, --schedule");
        return 0;
    }
    if (a->n_seg > 0) {
        if (a->have_q || a->have_sigma || a->have_steps)
            return cli_usage_error(
                "--schedule replaces --sampling-rate, --noise-multiplier "
                "and --steps");
        if (qy == Q_SIGMA)
            return cli_usage_error("'sigma' calibrates one segment; --schedule is for "
                                   "'epsilon' and 'delta'");
        return 0;
    }
    if (qy == Q_SIGMA) {
        if (!a->have_target)
            return cli_usage_error("missing --target-epsilon");
        if (a->solve != ASEC_ACCT_PARAM_Q && !a->have_q)
            return cli_usage_error("missing --sampling-rate (or --dataset-size and "
                                   "--batch-size)");
        if (a->solve != ASEC_ACCT_PARAM_SIGMA && !a->have_sigma)
            return cli_usage_error("missing --noise-multiplier");
        if (a->solve != ASEC_ACCT_PARAM_STEPS && !a->have_steps)
            return cli_usage_error("missing --steps (or --epochs)");
        if (a->have_q && !(a->q > 0.0) && a->solve != ASEC_ACCT_PARAM_Q)
            return cli_usage_error("--sampling-rate: must be > 0 to calibrate");
        return 0;
    }
    if (!a->have_q)
        return cli_usage_error(
            "missing --sampling-rate (or --dataset-size and --batch-size)");
    if (!a->have_sigma)
        return cli_usage_error("missing --noise-multiplier");
    if (!a->have_steps)
        return cli_usage_error("missing --steps (or --epochs)");
    if (qy == Q_DELTA && !a->have_epsilon)
        return cli_usage_error("missing --epsilon");
    return 0;
}

/* ------------------------------------------------------------------ building */

static int
make_acct(const struct args *a, asec_acct **out)
{
    asec_acct_options o = ASEC_ACCT_OPTIONS_INIT;

    o.relation = a->relation;
    o.legacy = a->legacy;
    o.refine_order = a->refine;
    o.grid = a->grid;
    o.orders = a->orders;
    o.n_orders = a->n_orders;
    o.pld_dx = a->pld_dx;
    o.max_bytes = a->max_bytes;
    return asec_acct_alloc(out, &o);
}

static int
add_mechanism(const struct args *a, asec_acct *acct, double q, double sigma,
              uint64_t steps)
{
    asec_acct_event ev;

    memset(&ev, 0, sizeof ev);
    ev.kind = a->sampling == ASEC_ACCT_WOR ? ASEC_ACCT_EV_WOR_GAUSSIAN
                                           : ASEC_ACCT_EV_POISSON_GAUSSIAN;
    ev.q = q;
    ev.sigma = sigma;
    ev.count = steps;
    return asec_acct_add(acct, &ev);
}

/* Read FILE into memory: 66 when it cannot be opened, 65 when over the cap. */
static int
read_events_file(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 65536, n = 0;
    char *buf;

    *text = NULL;
    if (f == NULL) {
        cli_error("%s: %s", path, strerror(errno));
        return errno == ENOENT || errno == EACCES ? EXIT_NOINPUT : EXIT_IOERR;
    }
    buf = malloc(cap);
    if (buf == NULL) {
        fclose(f);
        cli_error("out of memory");
        return EXIT_TEMPFAIL;
    }
    for (;;) {
        size_t got;

        if (n == cap) {
            char *nb;

            if (cap > EVENTS_MAX_BYTES) {
                free(buf);
                fclose(f);
                cli_error("%s: larger than the 16 MiB cap for event files", path);
                return EXIT_DATAERR;
            }
            nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                cli_error("out of memory");
                return EXIT_TEMPFAIL;
            }
            buf = nb;
            cap *= 2;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        cli_error("%s: read error", path);
        return EXIT_IOERR;
    }
    fclose(f);
    if (n > EVENTS_MAX_BYTES) {
        free(buf);
        cli_error("%s: larger than the 16 MiB cap for event files", path);
        return EXIT_DATAERR;
    }
    *text = buf;
    *len = n;
    return 0;
}

/* ------------------------------------------------------------------ output */

struct row {
    asec_acct_method m;
    int rc;        /* ASEC_OK or the failure */
    char err[200]; /* the failure's message */
    asec_acct_result r;
    double value; /* sigma query: the calibrated value */
};

static json_t *
jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static void
jset_num(json_t *o, const char *key, double v)
{
    json_object_set_new(o, key, jnum(v));
    if (!isfinite(v) && !isnan(v)) {
        char k[64];

        snprintf(k, sizeof k, "%s_nonfinite", key);
        json_object_set_new(o, k, json_string(v > 0 ? "inf" : "-inf"));
    }
}

static json_t *
ledger_json(const asec_acct *acct)
{
    static const char *const kinds[] = {
        "gaussian", "poisson_gaussian", "wor_gaussian", "laplace", "poisson_laplace",
        "pure",     "approx",           "zcdp"};
    json_t *arr = json_array();

    for (size_t i = 0; i < asec_acct_num_events(acct); i++) {
        asec_acct_event ev;
        json_t *o = json_object();

        if (asec_acct_event_at(acct, i, &ev) != ASEC_OK || o == NULL)
            break;
        json_object_set_new(o, "kind", json_string(kinds[ev.kind]));
        json_object_set_new(o, "count", json_integer((json_int_t)ev.count));
        if (ev.kind == ASEC_ACCT_EV_POISSON_GAUSSIAN ||
            ev.kind == ASEC_ACCT_EV_WOR_GAUSSIAN ||
            ev.kind == ASEC_ACCT_EV_POISSON_LAPLACE)
            json_object_set_new(o, "q", json_real(ev.q));
        if (ev.kind <= ASEC_ACCT_EV_POISSON_LAPLACE)
            json_object_set_new(o, "sigma", json_real(ev.sigma));
        if (ev.kind == ASEC_ACCT_EV_PURE || ev.kind == ASEC_ACCT_EV_APPROX)
            json_object_set_new(o, "epsilon", json_real(ev.epsilon));
        if (ev.kind == ASEC_ACCT_EV_APPROX)
            json_object_set_new(o, "delta", json_real(ev.delta));
        if (ev.kind == ASEC_ACCT_EV_ZCDP) {
            json_object_set_new(o, "rho", json_real(ev.rho));
            json_object_set_new(o, "xi", json_real(ev.xi));
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *
row_json(const struct row *w, enum query qy)
{
    json_t *o = json_object();

    if (w->rc != ASEC_OK) {
        json_object_set_new(o, "error", json_string(w->err));
        json_object_set_new(o, "status", json_string(asec_strerror(w->rc)));
        return o;
    }
    json_object_set_new(o, "is_bound", json_boolean(w->r.is_bound));
    if (qy == Q_SIGMA) {
        jset_num(o, "value", w->value);
        jset_num(o, "epsilon", w->r.epsilon);
    } else if (qy == Q_DELTA) {
        jset_num(o, "delta", w->r.delta);
        if (w->m == ASEC_ACCT_PLD) {
            json_t *b = json_array();

            json_array_append_new(b, jnum(w->r.delta_lo));
            json_array_append_new(b, jnum(w->r.delta));
            json_object_set_new(o, "bounds", b);
        }
    } else {
        jset_num(o, "epsilon", w->r.epsilon);
        if (w->m == ASEC_ACCT_PLD) {
            json_t *b = json_array();

            json_array_append_new(b, jnum(w->r.epsilon_lo));
            json_array_append_new(b, jnum(w->r.epsilon));
            json_object_set_new(o, "bounds", b);
        }
    }
    if (w->m == ASEC_ACCT_RDP) {
        jset_num(o, "order", w->r.order);
        json_object_set_new(o, "order_at_edge", json_boolean(w->r.order_at_edge));
    }
    if (w->m == ASEC_ACCT_PLD && w->r.pld_points > 0) {
        jset_num(o, "dx", w->r.pld_dx);
        json_object_set_new(o, "points", json_integer((json_int_t)w->r.pld_points));
    }
    if (w->m == ASEC_ACCT_EXACT || w->m == ASEC_ACCT_GDP_CLT)
        jset_num(o, "mu", w->r.mu);
    return o;
}

static const char *
g17(char *buf, size_t n, double v)
{
    if (isinf(v))
        snprintf(buf, n, "inf");
    else
        snprintf(buf, n, "%.6g", v);
    return buf;
}

static void
print_mechanism_text(const struct args *a, const asec_acct *acct)
{
    size_t n = asec_acct_num_events(acct);

    if (a->query == Q_EVENTS) {
        printf("  Events:    %s (%zu ledger entr%s after folding)\n", a->file, n,
               n == 1 ? "y" : "ies");
        return;
    }
    if (a->n_seg > 0) {
        printf("  Mechanism: Poisson-subsampled Gaussian schedule of %zu segment%s:\n",
               a->n_seg, a->n_seg == 1 ? "" : "s");
        for (size_t i = 0; i < a->n_seg && i < 20; i++)
            printf("               q = %g, noise multiplier %g, %llu steps\n",
                   a->seg[i].q, a->seg[i].sigma, (unsigned long long)a->seg[i].count);
        if (a->n_seg > 20)
            printf("               ... (%zu more)\n", a->n_seg - 20);
        return;
    }
    printf("  Mechanism: %s Gaussian\n             sampling rate q = %.6g",
           a->sampling == ASEC_ACCT_WOR ? "fixed-size-batch (without replacement)"
                                        : "Poisson-subsampled",
           a->q);
    if (a->have_dataset)
        printf(" (%llu/%llu)", (unsigned long long)a->batch,
               (unsigned long long)a->dataset);
    if (a->query == Q_SIGMA && a->solve == ASEC_ACCT_PARAM_SIGMA)
        printf(",\n             %llu steps", (unsigned long long)a->steps);
    else if (a->query == Q_SIGMA && a->solve == ASEC_ACCT_PARAM_STEPS)
        printf(", noise multiplier %g", a->sigma);
    else
        printf(", noise multiplier %g,\n             %llu steps", a->sigma,
               (unsigned long long)a->steps);
    if (a->have_epochs && !(a->query == Q_SIGMA && a->solve == ASEC_ACCT_PARAM_STEPS))
        printf(" (%g epochs)", a->epochs);
    printf("\n");
}

static void
print_text(const struct args *a, const asec_acct *acct, const struct row *rows, size_t nr,
           int head, const struct row *once)
{
    char b1[32], b2[32], b3[32];
    static const char *const qname[] = {"epsilon", "delta", "sigma", "events"};

    printf("Privacy statement (attnsec account %s)\n\n", qname[a->query]);
    print_mechanism_text(a, acct);
    printf("  Relation:  %s (example-level DP); noise\n"
           "             multipliers are relative to the L2 sensitivity under it\n",
           a->relation == ASEC_ACCT_REPLACE_ONE ? "replace-one example"
                                                : "add-or-remove-one example");
    if (a->query != Q_EVENTS) {
        if (a->sampling == ASEC_ACCT_WOR)
            printf("  Sampling:  fixed-size batches drawn without replacement "
                   "(shuffling)\n");
        else
            printf(
                "  Sampling:  Poisson: every example joins each step independently with\n"
                "             probability q.  Shuffled fixed-size batches are NOT "
                "Poisson;\n"
                "             for those use --sampling shuffle (replace-one).\n");
    }
    if (a->query == Q_DELTA)
        printf("  Epsilon:   %g\n", a->epsilon);
    else if (a->query == Q_SIGMA)
        printf("  Target:    epsilon %g at delta %g\n", a->target, a->delta);
    else
        printf("  Delta:     %g\n", a->delta);
    printf("  The guarantee covers every intermediate release (all checkpoints), not\n"
           "  only the final model.\n\n");
    if (a->query == Q_SIGMA)
        printf("  %-10s %-13s %-24s %s\n", "accountant",
               a->solve == ASEC_ACCT_PARAM_SIGMA   ? "sigma"
               : a->solve == ASEC_ACCT_PARAM_STEPS ? "steps"
                                                   : "q",
               "epsilon at that value", "detail");
    else
        printf("  %-10s %-13s %-24s %s\n", "accountant",
               a->query == Q_DELTA ? "delta" : "epsilon", "certified bracket", "detail");
    for (size_t i = 0; i < nr; i++) {
        const struct row *w = &rows[i];
        char det[96] = "";

        if (w->rc != ASEC_OK) {
            printf("  %-10s %-13s %s\n", method_title[w->m], "-", w->err);
            continue;
        }
        if (w->m == ASEC_ACCT_RDP)
            snprintf(det, sizeof det, "order %g%s (%s)", w->r.order,
                     w->r.order_at_edge ? ", AT THE GRID EDGE" : "",
                     a->legacy ? "Mironov 2017 conversion"
                               : "Balle et al. 2020 conversion");
        else if (w->m == ASEC_ACCT_PLD)
            snprintf(det, sizeof det, "dx %.3g, %zu points", w->r.pld_dx,
                     w->r.pld_points);
        else if (w->m == ASEC_ACCT_EXACT)
            snprintf(det, sizeof det, "analytic Gaussian, mu %.6g", w->r.mu);
        else if (w->m == ASEC_ACCT_GDP_CLT)
            snprintf(det, sizeof det, "CLT mu %.4g: estimate, NOT a bound", w->r.mu);
        else
            snprintf(det, sizeof det, "composition theorem, for comparison");
        if (a->query == Q_SIGMA) {
            printf("  %-10s %-13s %-24s %s\n", method_title[w->m],
                   g17(b1, sizeof b1, w->value), g17(b2, sizeof b2, w->r.epsilon), det);
        } else {
            double v = a->query == Q_DELTA ? w->r.delta : w->r.epsilon;
            double lo = a->query == Q_DELTA ? w->r.delta_lo : w->r.epsilon_lo;
            char br[80];

            if (w->m == ASEC_ACCT_PLD)
                snprintf(br, sizeof br, "[%s, %s]", g17(b2, sizeof b2, lo),
                         g17(b3, sizeof b3, v));
            else
                snprintf(br, sizeof br, "%s",
                         w->r.is_bound ? "upper bound" : "estimate only");
            printf("  %-10s %-13s %-24s %s\n", method_title[w->m], g17(b1, sizeof b1, v),
                   br, det);
        }
    }
    if (once != NULL && once->rc == ASEC_OK)
        printf("  %-10s %-13s %-24s %s\n", "no-ampl.",
               g17(b1, sizeof b1, once->r.epsilon), "upper bound",
               "each example once per epoch, no amplification");
    printf("\n");
    if (head < 0) {
        printf("  No accountant could answer; see the lines above.\n");
        return;
    }
    if (a->query == Q_SIGMA)
        printf("  Answer: %s %s (%s) meets epsilon %g at delta %g.\n",
               a->solve == ASEC_ACCT_PARAM_SIGMA   ? "noise multiplier"
               : a->solve == ASEC_ACCT_PARAM_STEPS ? "steps"
                                                   : "sampling rate",
               g17(b1, sizeof b1, rows[head].value), method_title[rows[head].m],
               a->target, a->delta);
    else if (a->query == Q_DELTA)
        printf("  Delta: %s (%s%s) at epsilon %g.\n",
               g17(b1, sizeof b1, rows[head].r.delta), method_title[rows[head].m],
               rows[head].m == ASEC_ACCT_PLD ? " upper bound" : "", a->epsilon);
    else
        printf("  Epsilon: %s (%s%s) at delta %g.\n",
               g17(b1, sizeof b1, rows[head].r.epsilon), method_title[rows[head].m],
               rows[head].m == ASEC_ACCT_PLD ? " upper bound" : "", a->delta);
}

/* ------------------------------------------------------------------ running */

/* The order in which accountants are tried and shown: the tightest
 * certified ones first. */
static const asec_acct_method run_order[] = {ASEC_ACCT_EXACT,    ASEC_ACCT_PLD,
                                             ASEC_ACCT_RDP,      ASEC_ACCT_GDP_CLT,
                                             ASEC_ACCT_ADVANCED, ASEC_ACCT_BASIC};

static int
applies(asec_acct_method m, const asec_acct *acct, const struct args *a)
{
    enum query qy = a->query;
    asec_acct_result r;

    if (m == ASEC_ACCT_EXACT && qy == Q_SIGMA)
        return a->solve != ASEC_ACCT_PARAM_Q && a->q == 1.0;
    if (m == ASEC_ACCT_EXACT) {
        /* Only when every event is a plain Gaussian; not worth a row otherwise. */
        for (size_t i = 0; i < asec_acct_num_events(acct); i++) {
            asec_acct_event ev;

            if (asec_acct_event_at(acct, i, &ev) != ASEC_OK ||
                ev.kind != ASEC_ACCT_EV_GAUSSIAN)
                return 0;
        }
        return 1;
    }
    if (m == ASEC_ACCT_GDP_CLT) {
        if (qy == Q_SIGMA)
            return 0; /* never calibrate on an estimate */
        return asec_acct_epsilon(acct, m, 0.5, &r) != ASEC_ENOTSUP;
    }
    if ((m == ASEC_ACCT_BASIC || m == ASEC_ACCT_ADVANCED) && qy == Q_SIGMA)
        return 0;
    return 1;
}

static int
run(const struct args *a, asec_acct *acct)
{
    struct row rows[6], once;
    size_t nr = 0;
    int head = -1, have_once = 0, status = EXIT_OK;

    memset(rows, 0, sizeof rows);
    memset(&once, 0, sizeof once);
    for (size_t i = 0; i < sizeof run_order / sizeof run_order[0]; i++) {
        asec_acct_method m = run_order[i];
        struct row *w = &rows[nr];

        if (!(a->accountants & (1u << m)) || !applies(m, acct, a))
            continue;
        w->m = m;
        if (a->query == Q_SIGMA) {
            asec_acct_calib c = ASEC_ACCT_CALIB_INIT;

            c.solve = a->solve;
            c.sampling = a->sampling;
            c.q = a->q;
            c.sigma = a->sigma;
            c.steps = a->steps;
            c.target_epsilon = a->target;
            c.delta = a->delta;
            w->rc = asec_acct_calibrate(acct, m, &c, &w->value, &w->r);
        } else if (a->query == Q_DELTA) {
            w->rc = asec_acct_delta(acct, m, a->epsilon, &w->r);
        } else {
            w->rc = asec_acct_epsilon(acct, m, a->delta, &w->r);
        }
        if (w->rc != ASEC_OK) {
            snprintf(w->err, sizeof w->err, "%s", asec_errmsg());
            if (w->rc == ASEC_EINVAL || w->rc == ASEC_EINTERNAL) {
                cli_error("%s: %s", method_title[m], w->err);
                return cli_exit_status(w->rc);
            }
            if (w->rc == ASEC_EBUDGET)
                status = EXIT_NOPERM;
        } else if (head < 0 && w->r.is_bound) {
            head = (int)nr;
        }
        nr++;
    }
    /* TF Privacy's second line: each example once per epoch, no
     * amplification (a Gaussian per epoch). */
    if (a->query == Q_EPSILON && a->have_epochs && a->sampling == ASEC_ACCT_POISSON &&
        a->n_seg == 0) {
        asec_acct *g = NULL;

        have_once = 1;
        once.m = ASEC_ACCT_EXACT;
        once.rc = make_acct(a, &g);
        if (once.rc == ASEC_OK)
            once.rc = asec_acct_add_gaussian(g, a->sigma, (uint64_t)ceil(a->epochs));
        if (once.rc == ASEC_OK)
            once.rc = asec_acct_epsilon(g, ASEC_ACCT_EXACT, a->delta, &once.r);
        asec_acct_free(g);
    }
    if (head < 0) {
        /* Nothing certified: report the first failure's status. */
        for (size_t i = 0; i < nr; i++)
            if (rows[i].rc != ASEC_OK) {
                status = cli_exit_status(rows[i].rc);
                break;
            }
        if (status == EXIT_OK)
            status = EXIT_SOFTWARE;
    }
    if (a->json) {
        json_t *root = json_object(), *accs = json_object();
        static const char *const qname[] = {"epsilon", "delta", "sigma", "events"};
        char *text;

        json_object_set_new(root, "schema_version", json_integer(1));
        json_object_set_new(root, "command", json_string("account"));
        json_object_set_new(root, "query", json_string(qname[a->query]));
        json_object_set_new(root, "relation",
                            json_string(asec_acct_relation_name(a->relation)));
        if (a->query != Q_EVENTS)
            json_object_set_new(
                root, "sampling",
                json_string(a->sampling == ASEC_ACCT_WOR ? "shuffle" : "poisson"));
        json_object_set_new(root, "conversion",
                            json_string(a->legacy ? "mironov2017" : "balle2020"));
        if (a->query == Q_DELTA)
            jset_num(root, "epsilon", a->epsilon);
        else
            jset_num(root, "delta", a->delta);
        if (a->query == Q_SIGMA) {
            jset_num(root, "target_epsilon", a->target);
            json_object_set_new(root, "solve",
                                json_string(a->solve == ASEC_ACCT_PARAM_SIGMA   ? "sigma"
                                            : a->solve == ASEC_ACCT_PARAM_STEPS ? "steps"
                                                                                : "q"));
        }
        if (a->file != NULL)
            json_object_set_new(root, "file", json_string(a->file));
        json_object_set_new(root, "events", ledger_json(acct));
        for (size_t i = 0; i < nr; i++)
            json_object_set_new(accs, method_title[rows[i].m],
                                row_json(&rows[i], a->query));
        if (have_once && once.rc == ASEC_OK) {
            json_t *o = json_object();

            jset_num(o, "epsilon", once.r.epsilon);
            json_object_set_new(o, "is_bound", json_true());
            json_object_set_new(o, "note",
                                json_string("each example once per epoch, no "
                                            "amplification"));
            json_object_set_new(accs, "no_amplification", o);
        }
        json_object_set_new(root, "accountants", accs);
        if (head >= 0) {
            json_object_set_new(root, "method", json_string(method_title[rows[head].m]));
            if (a->query == Q_SIGMA)
                jset_num(root, "value", rows[head].value);
            else if (a->query == Q_DELTA)
                jset_num(root, "delta", rows[head].r.delta);
            else
                jset_num(root, "epsilon", rows[head].r.epsilon);
        }
        text =
            json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        json_decref(root);
        if (text == NULL) {
            cli_error("out of memory");
            return EXIT_TEMPFAIL;
        }
        puts(text);
        free(text);
    } else {
        print_text(a, acct, rows, nr, head, have_once ? &once : NULL);
    }
    if (head >= 0) {
        for (size_t i = 0; i < nr; i++)
            if (rows[i].rc != ASEC_OK)
                cli_warn("%s: %s", method_title[rows[i].m], rows[i].err);
        if (rows[head].m == ASEC_ACCT_RDP && rows[head].r.order_at_edge)
            cli_warn("the optimal RDP order is the largest of the grid; widen it with "
                     "--orders or use --refine-order");
        if (a->have_fail && a->query != Q_SIGMA && a->query != Q_DELTA &&
            rows[head].r.epsilon > a->fail_above) {
            cli_error("epsilon %g exceeds --fail-if-epsilon-above %g",
                      rows[head].r.epsilon, a->fail_above);
            status = EXIT_CHECK_FAILED;
        }
    }
    return status;
}

static int
account(int argc, char **argv, enum query qy)
{
    struct args a;
    asec_acct *acct = NULL;
    int rc;

    rc = parse_args(argc, argv, qy, &a);
    if (rc != 0) {
        free(a.orders);
        free(a.seg);
        return rc < 0 ? EXIT_OK : rc;
    }
    rc = make_acct(&a, &acct);
    if (rc != ASEC_OK) {
        rc = rc == ASEC_EINVAL ? cli_usage_error("%s", asec_errmsg()) : cli_fail(rc);
        goto out;
    }
    if (qy == Q_EVENTS) {
        char *text;
        size_t len;

        rc = read_events_file(a.file, &text, &len);
        if (rc != 0)
            goto out;
        rc = asec_acct_add_events_json(acct, text, len);
        free(text);
        if (rc != ASEC_OK) {
            cli_error("%s: %s", a.file, asec_errmsg());
            rc = rc == ASEC_EINVAL ? EXIT_USAGE : cli_exit_status(rc);
            goto out;
        }
        if (a.have_epsilon)
            a.query = Q_DELTA;
    } else if (qy != Q_SIGMA) {
        if (a.n_seg > 0)
            rc = asec_acct_add_schedule(acct, a.seg, a.n_seg);
        else
            rc = add_mechanism(&a, acct, a.q, a.sigma, a.steps);
        if (rc != ASEC_OK) {
            rc = rc == ASEC_EINVAL ? cli_usage_error("%s", asec_errmsg()) : cli_fail(rc);
            goto out;
        }
    }
    rc = run(&a, acct);
out:
    asec_acct_free(acct);
    free(a.orders);
    free(a.seg);
    return rc;
}

static int
cmd_account_epsilon(int argc, char **argv)
{
    return account(argc, argv, Q_EPSILON);
}

static int
cmd_account_delta(int argc, char **argv)
{
    return account(argc, argv, Q_DELTA);
}

static int
cmd_account_sigma(int argc, char **argv)
{
    return account(argc, argv, Q_SIGMA);
}

static int
cmd_account_events(int argc, char **argv)
{
    return account(argc, argv, Q_EVENTS);
}

const struct cli_method cmd_account_methods[] = {
    {"epsilon", cmd_account_epsilon, "epsilon at delta for DP-SGD, every accountant"},
    {"delta", cmd_account_delta, "delta at epsilon for DP-SGD, every accountant"},
    {"sigma", cmd_account_sigma, "the noise (or steps, or q) for a target epsilon"},
    {"events", cmd_account_events, "compose a DpEvent-like JSON tree of events"},
    {NULL, NULL, NULL}};
