/* cmd_defend_dpsgd.c - 'attnsec defend dpsgd': DP-SGD / noisy SGD training
 * of a transformer on the shipped digits (attnsec-defend(1),
 * asec_dpsgd(3)).
 *
 * Outputs in DIR: model.safetensors, report.json, report.txt, curve.csv
 * (one row per evaluation), curve.dat + curve.gp (gnuplot: loss, accuracy
 * and epsilon against the step) and checkpoint.safetensors (every
 * --checkpoint-every steps; --resume continues from it).
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attnsec/attnsec.h"
#include "cli.h"
#include "commands.h"

/* The defaults of the digits demo (attnsec-defend(1)). */
#define DEF_BATCH 512
#define DEF_STEPS 100
#define DEF_LR 0.5
#define DEF_CLIP 1.0
#define DEF_SIGMA 1.0
#define DEF_DELTA 1e-5

static void
dpsgd_help(void)
{
    printf(
        "Usage: attnsec defend dpsgd [OPTION]... -o DIR\n"
        "Train a vision transformer on the shipped digits with DP-SGD: Poisson\n"
        "sampling, per-example clipping and exact discrete Gaussian noise summed on\n"
        "an integer lattice, with the privacy ledger updated at every step.\n"
        "\n"
        "Input and output:\n"
        "  -m, --model=FILE        initial model (.safetensors, a vit for 8x8 images\n"
        "                            and 10 classes; default: the default vit,\n"
        "                            freshly initialised)\n"
        "  -o, --output=DIR        write model.safetensors, report.json, report.txt,\n"
        "                            curve.csv, curve.dat/.gp, checkpoint.safetensors\n"
        "      --json              also print report.json on standard output\n"
        "Training:\n"
        "      --optimizer=NAME    sgd, momentum (default) or adam\n"
        "      --lr=RATE           learning rate (default: 0.5; try 0.002 with adam)\n"
        "      --momentum=MU       momentum / Adam beta1 (default: 0.9)\n"
        "  -b, --batch-size=N      expected batch size; q = N / 1437 (default: 512)\n"
        "  -T, --steps=N           steps (default: 100)\n"
        "      --epochs=E          instead of --steps: ceil(E * 1437 / N) steps\n"
        "      --sampling=NAME     poisson (default) or shuffle (fixed-size batches;\n"
        "                            accounted as Poisson, which is not a formal\n"
        "                            guarantee)\n"
        "Privacy:\n"
        "  -C, --clip=C            per-example L2 clipping norm (default: 1)\n"
        "      --no-clip           no clipping (only with --sigma=0: non-private)\n"
        "      --sigma=S           noise multiplier: noise stddev / C (default: 1)\n"
        "  -e, --target-epsilon=E  calibrate sigma for the planned steps (without\n"
        "                            --sigma), or stop before epsilon exceeds E\n"
        "  -d, --delta=D           delta (default: 1e-5)\n"
        "      --idealized         floating-point Gaussian noise and double sums (fast;\n"
        "                            research only, marked in the report)\n"
        "      --granularity-bits=K  lattice g = 2^(ceil(log2(sigma C)) - K)\n"
        "                            in [8, 30] (default: 20)\n"
        "Run control:\n"
        "      --eval-every=N      evaluate on the test split every N steps\n"
        "                            (default: steps / 20)\n"
        "      --checkpoint-every=N  write a checkpoint every N steps (default: 50;\n"
        "                            0: never)\n"
        "      --ema=DECAY         release an exponential moving average of the\n"
        "                            parameters (post-processing; default: 0, off)\n"
        "      --resume            continue from DIR/checkpoint.safetensors\n"
        "  -s, --seed=N            seeded randomness: reproducible, NOT a DP release\n"
        "                            (default: secure randomness)\n"
        "  -q, --quiet             no progress output\n"
        "  -v, --verbose           print every evaluation on standard error\n"
        "  -h, --help              display this help and exit\n"
        "  -V, --version           output version information and exit\n"
        "\n"
        "Exit status: 0 on success (also when --target-epsilon stops the run early),\n"
        "64 usage error, 65 bad data, 66 missing input, 73/74 output errors,\n"
        "77 the target epsilon does not allow a single step.\n"
        "Full documentation: attnsec-defend(1).\n");
}

/* A growing text buffer for curve.csv (kept whole so that a resumed run
 * rewrites it completely). */
struct text {
    char *p;
    size_t len, cap;
};

static int text_add(struct text *t, const char *fmt, ...) ASEC_PRINTF(2, 3);

static int
text_add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if (t->p != NULL && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return 0;
        }
        {
            size_t cap = t->cap ? 2 * t->cap : 4096;
            char *p;

            while (cap < t->len + (size_t)n + 1)
                cap *= 2;
            if ((p = realloc(t->p, cap)) == NULL)
                return -1;
            t->p = p;
            t->cap = cap;
        }
    }
}

/* Copy the parameter average into the released model (--ema). */
static void
sync_released(asec_model *rel, const asec_dpsgd *d)
{
    const double *a = asec_dpsgd_ema(d);

    if (a != NULL)
        memcpy(asec_model_params(rel), a,
               asec_model_param_count(rel) * sizeof(double));
}

/* Keep the curve rows of steps <= step from an earlier curve.csv (resume). */
static int
load_curve(struct text *t, const char *path, uint64_t step)
{
    FILE *f = fopen(path, "r");
    char line[1024];

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long long s;

        if (strncmp(line, "step,", 5) == 0)
            continue;
        if (sscanf(line, "%llu,", &s) != 1 || s > step)
            continue;
        if (text_add(t, "%s", line) != 0) {
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

#define CURVE_HEADER                                                                     \
    "step,batch,train_loss,grad_norm,mean_norm,clipped_frac,epsilon,test_loss,"          \
    "test_accuracy\n"

/* Write curve.csv and curve.dat from the rows. */
static int
write_curve(const char *outdir, const struct text *rows)
{
    char path[4096];
    asec_afile *f = NULL;
    int rc;

    snprintf(path, sizeof path, "%s/curve.csv", outdir);
    if ((rc = asec_afile_open(&f, path)) != ASEC_OK)
        return rc;
    if ((rc = asec_afile_printf(f, CURVE_HEADER)) != ASEC_OK ||
        (rows->len && (rc = asec_afile_write(f, rows->p, rows->len)) != ASEC_OK)) {
        asec_afile_abort(f);
        return rc;
    }
    if ((rc = asec_afile_commit(f)) != ASEC_OK)
        return rc;
    snprintf(path, sizeof path, "%s/curve.dat", outdir);
    if ((rc = asec_afile_open(&f, path)) != ASEC_OK)
        return rc;
    rc = asec_afile_printf(f, "# %s", CURVE_HEADER);
    for (size_t i = 0; rc == ASEC_OK && i < rows->len; i++) {
        char c = rows->p[i] == ',' ? ' ' : rows->p[i];

        rc = asec_afile_write(f, &c, 1);
    }
    if (rc != ASEC_OK) {
        asec_afile_abort(f);
        return rc;
    }
    return asec_afile_commit(f);
}

static int
write_gnuplot(const char *outdir)
{
    static const char gp[] =
        "# gnuplot script: DP-SGD training curve (attnsec defend dpsgd)\n"
        "# columns of curve.dat: step batch train_loss grad_norm mean_norm\n"
        "#   clipped_frac epsilon test_loss test_accuracy\n"
        "set terminal pngcairo size 800,900\n"
        "set output 'curve.png'\n"
        "set datafile missingvalue 'nan'\n"
        "set multiplot layout 3,1\n"
        "set xlabel 'step'\n"
        "set ylabel 'loss'\n"
        "plot 'curve.dat' using 1:3 with lines title 'train (batch)', \\\n"
        "     'curve.dat' using 1:8 with linespoints title 'test'\n"
        "set ylabel 'test accuracy'\n"
        "set yrange [0:1]\n"
        "plot 'curve.dat' using 1:9 with linespoints title 'accuracy'\n"
        "set autoscale y\n"
        "set ylabel 'epsilon (RDP)'\n"
        "plot 'curve.dat' using 1:7 with lines title 'epsilon'\n"
        "unset multiplot\n";
    char path[4096];

    snprintf(path, sizeof path, "%s/curve.gp", outdir);
    return asec_afile_write_all(path, gp, sizeof gp - 1);
}

/* epsilon under method at delta; NAN with the reason in why when the
 * method does not apply. */
static int
epsilon_of(const asec_acct *a, asec_acct_method method, double delta,
           asec_acct_result *res)
{
    int rc = asec_acct_epsilon(a, method, delta, res);

    if (rc != ASEC_OK) {
        res->epsilon = res->epsilon_lo = NAN;
        return rc;
    }
    return ASEC_OK;
}

int
cmd_defend_dpsgd(int argc, char **argv)
{
    enum {
        OPT_JSON = 256,
        OPT_OPTIM,
        OPT_LR,
        OPT_MOM,
        OPT_EPOCHS,
        OPT_SAMPLING,
        OPT_NOCLIP,
        OPT_SIGMA,
        OPT_IDEAL,
        OPT_BITS,
        OPT_EVAL,
        OPT_CKPT,
        OPT_RESUME,
        OPT_EMA
    };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, OPT_JSON},
        {"optimizer", required_argument, NULL, OPT_OPTIM},
        {"lr", required_argument, NULL, OPT_LR},
        {"momentum", required_argument, NULL, OPT_MOM},
        {"batch-size", required_argument, NULL, 'b'},
        {"steps", required_argument, NULL, 'T'},
        {"epochs", required_argument, NULL, OPT_EPOCHS},
        {"sampling", required_argument, NULL, OPT_SAMPLING},
        {"clip", required_argument, NULL, 'C'},
        {"no-clip", no_argument, NULL, OPT_NOCLIP},
        {"sigma", required_argument, NULL, OPT_SIGMA},
        {"target-epsilon", required_argument, NULL, 'e'},
        {"delta", required_argument, NULL, 'd'},
        {"idealized", no_argument, NULL, OPT_IDEAL},
        {"granularity-bits", required_argument, NULL, OPT_BITS},
        {"eval-every", required_argument, NULL, OPT_EVAL},
        {"checkpoint-every", required_argument, NULL, OPT_CKPT},
        {"resume", no_argument, NULL, OPT_RESUME},
        {"ema", required_argument, NULL, OPT_EMA},
        {"seed", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    const char *model_path = NULL, *outdir = NULL;
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    int json = 0, sigma_given = 0, seeded = 0, resume = 0, no_clip = 0, c, rc;
    int status = EXIT_OK, budget_stop = 0;
    double epochs = 0.0, target = 0.0, delta = DEF_DELTA, calib_sigma = NAN;
    size_t eval_every = 0, ckpt_every = 50, bits = 0;
    uint64_t seed = 0, start_step = 0;
    asec_data *train = NULL, *test = NULL;
    asec_model *m = NULL, *me = NULL, *rel;
    asec_rng *rng = NULL;
    asec_dpsgd *d = NULL;
    asec_report *rep = NULL;
    asec_dpsgd_info info;
    asec_dpsgd_step st;
    struct text curve = {NULL, 0, 0};
    char path[4096], ckpt[4096], buf[512];
    double test_loss = NAN, test_acc = NAN, train_loss = NAN, train_acc = NAN;

    o.optim = ASEC_DPSGD_MOMENTUM;
    o.lr = DEF_LR;
    o.batch = DEF_BATCH;
    o.steps = DEF_STEPS;
    o.clip = DEF_CLIP;
    o.sigma = DEF_SIGMA;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+m:o:b:T:C:e:d:s:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_path = optarg;
            break;
        case 'o':
            outdir = optarg;
            break;
        case OPT_JSON:
            json = 1;
            break;
        case OPT_OPTIM:
            if (asec_dpsgd_optim_parse(&o.optim, optarg) != ASEC_OK)
                return cli_usage_error("--optimizer: unknown optimizer '%s'", optarg);
            break;
        case OPT_LR:
            if (cli_parse_double("--lr", optarg, 1e-12, 1e6, &o.lr) != 0)
                return EXIT_USAGE;
            break;
        case OPT_MOM:
            if (cli_parse_double("--momentum", optarg, 0.0, 0.999999, &o.momentum) != 0)
                return EXIT_USAGE;
            o.beta1 = o.momentum;
            break;
        case 'b':
            if (cli_parse_size("--batch-size", optarg, 1, 1u << 30, &o.batch) != 0)
                return EXIT_USAGE;
            break;
        case 'T':
            if (cli_parse_size("--steps", optarg, 1, 100000000, &o.steps) != 0)
                return EXIT_USAGE;
            break;
        case OPT_EPOCHS:
            if (cli_parse_double("--epochs", optarg, 1e-6, 1e6, &epochs) != 0)
                return EXIT_USAGE;
            break;
        case OPT_SAMPLING:
            if (asec_dpsgd_sampling_parse(&o.sampling, optarg) != ASEC_OK)
                return cli_usage_error("--sampling: unknown sampling '%s'", optarg);
            break;
        case 'C':
            if (cli_parse_double("--clip", optarg, 1e-300, 1e300, &o.clip) != 0)
                return EXIT_USAGE;
            break;
        case OPT_NOCLIP:
            no_clip = 1;
            break;
        case OPT_SIGMA:
            if (cli_parse_double("--sigma", optarg, 0.0, 1e6, &o.sigma) != 0)
                return EXIT_USAGE;
            sigma_given = 1;
            break;
        case 'e':
            if (cli_parse_double("--target-epsilon", optarg, 1e-6, 1e6, &target) != 0)
                return EXIT_USAGE;
            break;
        case 'd':
            if (cli_parse_double("--delta", optarg, 1e-300, 0.5, &delta) != 0)
                return EXIT_USAGE;
            break;
        case OPT_IDEAL:
            o.idealized = 1;
            break;
        case OPT_BITS:
            if (cli_parse_size("--granularity-bits", optarg, 8, 30, &bits) != 0)
                return EXIT_USAGE;
            o.granularity_bits = (int)bits;
            break;
        case OPT_EVAL:
            if (cli_parse_size("--eval-every", optarg, 1, 100000000, &eval_every) != 0)
                return EXIT_USAGE;
            break;
        case OPT_CKPT:
            if (cli_parse_size("--checkpoint-every", optarg, 0, 100000000, &ckpt_every) !=
                0)
                return EXIT_USAGE;
            break;
        case OPT_RESUME:
            resume = 1;
            break;
        case OPT_EMA:
            if (cli_parse_double("--ema", optarg, 0.0, 0.999999, &o.ema) != 0)
                return EXIT_USAGE;
            break;
        case 's':
            if (cli_parse_u64("--seed", optarg, &seed) != 0)
                return EXIT_USAGE;
            seeded = 1;
            break;
        case 'q':
            cli_verbosity = 0;
            break;
        case 'v':
            cli_verbosity = 2;
            break;
        case 'h':
            dpsgd_help();
            return EXIT_OK;
        case 'V':
            return cli_print_version();
        default:
            if (optopt != 0 && optopt < 256)
                return cli_usage_error("unknown option '-%c'", optopt);
            return cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (outdir == NULL)
        return cli_usage_error("--output is required");
    if (no_clip) {
        if (sigma_given && o.sigma > 0.0)
            return cli_usage_error("--no-clip needs --sigma=0: without clipping the "
                                   "sensitivity is unbounded");
        o.clip = 0.0;
        o.sigma = 0.0;
        sigma_given = 1;
    }
    if (target > 0.0 && o.sigma == 0.0 && sigma_given)
        return cli_usage_error(
            "--target-epsilon cannot be met without noise (--sigma=0)");
    o.delta = delta;

    /* Data, model, randomness. */
    if ((rc = asec_data_load(&train, cli_datadir(), "digits", "train")) != ASEC_OK ||
        (rc = asec_data_load(&test, cli_datadir(), "digits", "test")) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    if (epochs > 0.0)
        o.steps = (size_t)ceil(epochs * (double)train->n / (double)o.batch);
    if (o.batch > train->n) {
        status = cli_usage_error("--batch-size %zu exceeds the %zu training images",
                                 o.batch, train->n);
        goto done;
    }
    if (eval_every == 0)
        eval_every = o.steps >= 20 ? o.steps / 20 : 1;
    rc = seeded ? asec_rng_alloc_seeded(&rng, seed, "defend/dpsgd")
                : asec_rng_alloc_secure(&rng);
    if (rc != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    if (seeded && cli_verbosity >= 1)
        cli_warn("seeded run (seed %" PRIu64 "): NOT a DP release.  Secure RNG turned "
                 "off: fine for experiments; train again without --seed for a release",
                 seed);
    if (model_path != NULL) {
        const asec_model_arch *a;

        if ((rc = asec_model_load(&m, model_path)) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
        a = asec_model_get_arch(m);
        if (a->kind != ASEC_MODEL_VIT || a->image_h != train->image_h ||
            a->image_w != train->image_w || a->classes != train->classes) {
            cli_error("%s: a %s model; the digits need a vit for (%zu, %zu) images in "
                      "%zu classes",
                      model_path, asec_model_kind_name(a->kind), train->image_h,
                      train->image_w, train->classes);
            status = EXIT_DATAERR;
            goto done;
        }
    } else {
        asec_model_arch a;
        asec_rng *init = NULL;

        if ((rc = asec_model_arch_default(&a, ASEC_MODEL_VIT)) != ASEC_OK ||
            (rc = asec_model_alloc(&m, &a)) != ASEC_OK ||
            (rc = asec_rng_derive(&init, rng, "model/init")) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
        asec_model_init_params(m, init);
        asec_rng_free(init);
    }

    /* --target-epsilon without --sigma: calibrate sigma for the planned
     * steps under RDP (the answer provably meets the target); the run also
     * stops at the budget, as a second guard. */
    if (target > 0.0) {
        o.target_epsilon = target;
        if (!sigma_given) {
            asec_acct *empty = NULL;
            asec_acct_calib cal = ASEC_ACCT_CALIB_INIT;

            cal.solve = ASEC_ACCT_PARAM_SIGMA;
            cal.sampling = ASEC_ACCT_POISSON;
            cal.q = (double)o.batch / (double)train->n;
            cal.steps = o.steps;
            cal.target_epsilon = target;
            cal.delta = delta;
            if ((rc = asec_acct_alloc(&empty, NULL)) == ASEC_OK)
                rc = asec_acct_calibrate(empty, ASEC_ACCT_RDP, &cal, &calib_sigma, NULL);
            asec_acct_free(empty);
            if (rc != ASEC_OK) {
                status = cli_fail(rc);
                goto done;
            }
            o.sigma = calib_sigma;
        }
    }

    {
        asec_dpsgd_data dd = {train->n, 0, train->images, NULL, train->labels, NULL};

        if ((rc = asec_dpsgd_alloc(&d, m, &dd, &o, rng)) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
    }
    asec_dpsgd_get_info(d, &info);
    /* The released model: the parameter average when --ema is on (a copy
     * refreshed before every evaluation), else the iterate itself. */
    rel = m;
    if (o.ema > 0.0) {
        if ((rc = asec_model_clone(&me, m)) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
        rel = me;
    }
    if ((rc = asec_afile_mkdirs(outdir)) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", outdir);
    if (resume) {
        struct stat sb;

        if (stat(ckpt, &sb) != 0) {
            cli_error("%s: no checkpoint to resume from", ckpt);
            status = EXIT_NOINPUT;
            goto done;
        }
        if ((rc = asec_dpsgd_checkpoint_load(d, ckpt)) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
        start_step = asec_dpsgd_steps_done(d);
        snprintf(path, sizeof path, "%s/curve.csv", outdir);
        if (load_curve(&curve, path, start_step) != 0) {
            cli_error("out of memory reading %s", path);
            status = EXIT_TEMPFAIL;
            goto done;
        }
        if (cli_verbosity >= 1)
            fprintf(stderr, "attnsec defend dpsgd: resuming at step %" PRIu64 " of %zu\n",
                    start_step, o.steps);
    }

    /* Training. */
    cli_progress_begin("dpsgd", o.steps);
    while (asec_dpsgd_steps_done(d) < o.steps) {
        uint64_t k;
        double eps = NAN, tl = NAN, ta = NAN;

        rc = asec_dpsgd_iterate(d, &st);
        if (rc == ASEC_EBUDGET) {
            budget_stop = 1;
            break;
        }
        if (rc != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
        k = st.step;
        if (k % eval_every == 0 || k == o.steps) {
            asec_acct_result r;
            asec_dpsgd_data td = {test->n, 0, test->images, NULL, test->labels, NULL};

            if (info.private_run &&
                epsilon_of(asec_dpsgd_get_acct(d), ASEC_ACCT_RDP, delta, &r) == ASEC_OK)
                eps = r.epsilon;
            else if (!info.private_run)
                eps = INFINITY;
            sync_released(rel, d);
            if ((rc = asec_dpsgd_evaluate(rel, &td, 0, &tl, &ta)) != ASEC_OK) {
                status = cli_fail(rc);
                goto done;
            }
            if (text_add(&curve, "%" PRIu64 ",%zu,%.9g,%.9g,%.9g,%.6g,%.9g,%.9g,%.6g\n",
                         k, st.batch, st.loss, st.grad_norm, st.mean_norm,
                         st.clipped_frac, eps, tl, ta) != 0) {
                cli_error("out of memory for the training curve");
                status = EXIT_TEMPFAIL;
                goto done;
            }
            if (cli_verbosity >= 2)
                fprintf(stderr,
                        "attnsec defend dpsgd: step %" PRIu64 " batch %zu loss %.4f "
                        "test loss %.4f accuracy %.4f epsilon %.4g\n",
                        k, st.batch, st.loss, tl, ta, eps);
        }
        if (ckpt_every > 0 && k % ckpt_every == 0 && k < o.steps) {
            if ((rc = asec_dpsgd_checkpoint_save(d, ckpt)) != ASEC_OK ||
                (rc = write_curve(outdir, &curve)) != ASEC_OK) {
                status = cli_fail(rc);
                goto done;
            }
        }
        cli_progress_update((size_t)k);
    }
    cli_progress_end();

    /* Final evaluation and outputs. */
    {
        asec_dpsgd_data td = {test->n, 0, test->images, NULL, test->labels, NULL};
        asec_dpsgd_data trd = {train->n, 0, train->images, NULL, train->labels, NULL};

        sync_released(rel, d);
        if ((rc = asec_dpsgd_evaluate(rel, &td, 0, &test_loss, &test_acc)) != ASEC_OK ||
            (rc = asec_dpsgd_evaluate(rel, &trd, 0, &train_loss, &train_acc)) !=
                ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
    }
    snprintf(path, sizeof path, "%s/model.safetensors", outdir);
    if ((rc = asec_model_save(rel, path)) != ASEC_OK ||
        (rc = write_curve(outdir, &curve)) || (rc = write_gnuplot(outdir))) {
        status = cli_fail(rc);
        goto done;
    }
    if (ckpt_every > 0)
        remove(ckpt); /* the run is complete: model.safetensors supersedes it */

    /* report.json */
    if ((rc = asec_report_alloc(&rep, "defend dpsgd", argc, argv)) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    {
        const asec_acct *acct = asec_dpsgd_get_acct(d);
        static const asec_acct_method methods[] = {ASEC_ACCT_RDP, ASEC_ACCT_PLD,
                                                   ASEC_ACCT_BASIC, ASEC_ACCT_ADVANCED};
        uint64_t done_steps = asec_dpsgd_steps_done(d);
        int dp_release = !seeded && info.private_run && !o.idealized;
        asec_acct_result rdp;
        char key[128];
        FILE *txt;

        rdp.epsilon = NAN;
#define R(call)                                                                          \
    do {                                                                                 \
        if (rc == ASEC_OK)                                                               \
            rc = (call);                                                                 \
    } while (0)
        rc = ASEC_OK;
        if (model_path != NULL)
            R(asec_report_add_input(rep, model_path));
        R(asec_report_set_rng(rep, rng));
        R(asec_report_set_str(rep, "config.data", "digits"));
        R(asec_report_set_str(rep, "config.model",
                              model_path ? model_path : "default vit"));
        R(asec_report_set_str(rep, "config.optimizer", asec_dpsgd_optim_name(o.optim)));
        R(asec_report_set_num(rep, "config.lr", o.lr));
        R(asec_report_set_num(rep, "config.momentum", o.momentum));
        R(asec_report_set_int(rep, "config.batch_size", (long long)o.batch));
        R(asec_report_set_int(rep, "config.steps", (long long)o.steps));
        R(asec_report_set_str(rep, "config.sampling",
                              asec_dpsgd_sampling_name(o.sampling)));
        R(asec_report_set_num(rep, "config.clip", o.clip));
        R(asec_report_set_num(rep, "config.sigma", o.sigma));
        R(asec_report_set_num(rep, "config.delta", delta));
        R(asec_report_set_num(rep, "config.target_epsilon", target > 0 ? target : NAN));
        R(asec_report_set_bool(rep, "config.idealized", o.idealized));
        R(asec_report_set_int(rep, "config.granularity_bits",
                              o.granularity_bits ? o.granularity_bits
                                                 : ASEC_NOISE_DEFAULT_BITS));
        R(asec_report_set_int(rep, "results.training.steps_done", (long long)done_steps));
        R(asec_report_set_int(rep, "results.training.resumed_at", (long long)start_step));
        R(asec_report_set_bool(rep, "results.training.stopped_by_budget", budget_stop));
        R(asec_report_set_int(rep, "results.training.train_size", (long long)train->n));
        R(asec_report_set_int(rep, "results.training.params", (long long)info.params));
        R(asec_report_set_num(rep, "results.utility.test_accuracy", test_acc));
        R(asec_report_set_num(rep, "results.utility.test_loss", test_loss));
        R(asec_report_set_num(rep, "results.utility.train_accuracy", train_acc));
        R(asec_report_set_num(rep, "results.utility.train_loss", train_loss));
        R(asec_report_set_str(rep, "results.curve", "curve.csv"));
        R(asec_report_set_bool(rep, "results.privacy.private", info.private_run));
        R(asec_report_set_bool(rep, "results.privacy.dp_release", dp_release));
        R(asec_report_set_bool(rep, "results.privacy.idealized_numerics", o.idealized));
        R(asec_report_set_str(rep, "results.privacy.relation", "add-remove"));
        R(asec_report_set_str(rep, "results.privacy.sampling",
                              asec_dpsgd_sampling_name(o.sampling)));
        R(asec_report_set_str(rep, "results.privacy.sampling_assumption",
                              o.sampling == ASEC_DPSGD_POISSON
                                  ? "poisson"
                                  : "accounted as poisson; not a formal guarantee for "
                                    "shuffled batches"));
        R(asec_report_set_num(rep, "results.privacy.q", info.q));
        R(asec_report_set_num(rep, "results.privacy.noise_multiplier", info.sigma));
        R(asec_report_set_num(rep, "results.privacy.calibrated_sigma", calib_sigma));
        R(asec_report_set_num(rep, "results.privacy.clip", info.clip));
        R(asec_report_set_num(rep, "results.privacy.sensitivity", info.sensitivity));
        R(asec_report_set_num(rep, "results.privacy.noise_std", info.noise_std));
        R(asec_report_set_num(rep, "results.privacy.granularity", info.granularity));
        R(asec_report_set_num(rep, "results.privacy.delta", delta));
        R(asec_report_set_str(rep, "results.privacy.noise",
                              !info.private_run ? "none"
                              : o.idealized     ? "floating-point Gaussian (idealized)"
                                                : "exact discrete Gaussian on a lattice, "
                                                  "int64 sums (CKS20)"));
        for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
            const char *name = asec_acct_method_name(methods[i]);
            asec_acct_result r;

            if (!info.private_run) {
                snprintf(key, sizeof key, "results.privacy.accountants.%s.epsilon", name);
                R(asec_report_set_num(rep, key, INFINITY));
                continue;
            }
            if (epsilon_of(acct, methods[i], delta, &r) != ASEC_OK) {
                snprintf(key, sizeof key, "results.privacy.accountants.%s.error", name);
                R(asec_report_set_str(rep, key, asec_errmsg()));
                continue;
            }
            if (methods[i] == ASEC_ACCT_RDP)
                rdp = r;
            snprintf(key, sizeof key, "results.privacy.accountants.%s.epsilon", name);
            R(asec_report_set_num(rep, key, r.epsilon));
            snprintf(key, sizeof key, "results.privacy.accountants.%s.bounds", name);
            snprintf(buf, sizeof buf, "[%.17g, %.17g]", r.epsilon_lo, r.epsilon);
            if (isfinite(r.epsilon) && isfinite(r.epsilon_lo))
                R(asec_report_set_json(rep, key, buf));
            if (methods[i] == ASEC_ACCT_RDP) {
                snprintf(key, sizeof key, "results.privacy.accountants.%s.order", name);
                R(asec_report_set_num(rep, key, r.order));
            }
        }
        if (rc == ASEC_OK) {
            char *lj = NULL;

            rc = asec_acct_to_json(acct, &lj);
            if (rc == ASEC_OK)
                rc = asec_report_set_json(rep, "results.privacy.ledger", lj);
            asec_acct_json_free(lj);
        }
        if (rc == ASEC_OK && budget_stop)
            rc = asec_report_warn(rep,
                                  "stopped after %" PRIu64 " of %zu steps: the next "
                                  "step would exceed epsilon %g",
                                  done_steps, o.steps, target);
        if (rc == ASEC_OK && o.sampling == ASEC_DPSGD_SHUFFLE && info.private_run)
            rc = asec_report_warn(rep, "shuffled batches are accounted as Poisson "
                                       "sampling; the guarantee is not formal");
        if (rc != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }

        /* report.txt: the privacy statement (TF Privacy style). */
        snprintf(path, sizeof path, "%s/report.txt", outdir);
        {
            char *tb = NULL;
            size_t tl = 0;

            txt = open_memstream(&tb, &tl);
            if (txt == NULL) {
                cli_error("out of memory for report.txt");
                status = EXIT_TEMPFAIL;
                goto done;
            }
            fprintf(txt, "DP-SGD training (attnsec defend dpsgd)\n\n");
            fprintf(txt,
                    "Model:     default vit on digits, %zu parameters; %zu training "
                    "images\n",
                    info.params, train->n);
            fprintf(txt,
                    "Training:  %" PRIu64 " of %zu steps, %s, lr %g, expected batch "
                    "%zu (q = %.6g), %s sampling\n",
                    done_steps, o.steps, asec_dpsgd_optim_name(o.optim), o.lr, o.batch,
                    info.q, asec_dpsgd_sampling_name(o.sampling));
            fprintf(txt,
                    "Utility:   test accuracy %.4f (loss %.4f); train accuracy %.4f "
                    "(loss %.4f)\n\n",
                    test_acc, test_loss, train_acc, train_loss);
            if (!info.private_run) {
                fprintf(txt, "Privacy:   none (%s): epsilon is infinite.\n",
                        o.clip > 0.0 ? "clipping without noise"
                                     : "no clipping, no noise");
            } else {
                fprintf(txt,
                        "Privacy:   each step clips every example's gradient to L2 norm "
                        "%g and adds\n"
                        "           Gaussian noise of multiplier %.6g (std %.6g) to the "
                        "sum.\n",
                        o.clip, info.sigma, info.noise_std);
                fprintf(txt, "Noise:     %s\n",
                        o.idealized ? "floating-point Gaussian: idealized numerics, for "
                                      "research only"
                                    : "exact discrete Gaussian on the lattice of "
                                      "granularity g, with int64 sums");
                if (!o.idealized)
                    fprintf(txt,
                            "           g = %.6g; sensitivity after snapping "
                            "%.9g\n",
                            info.granularity, info.sensitivity);
                fprintf(txt, "Relation:  add-or-remove-one example (example-level DP)\n");
                fprintf(txt, "Sampling:  %s\n",
                        o.sampling == ASEC_DPSGD_POISSON
                            ? "Poisson: every example joins each step independently "
                              "with probability q"
                            : "shuffled fixed-size batches, ACCOUNTED AS IF Poisson: "
                              "not a formal guarantee");
                fprintf(txt, "The guarantee covers every intermediate model (all "
                             "checkpoints), not only the final one.\n\n");
                fprintf(txt, "  accountant  epsilon at delta = %g\n", delta);
                for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
                    asec_acct_result r;

                    if (epsilon_of(acct, methods[i], delta, &r) != ASEC_OK)
                        fprintf(txt, "  %-10s  not applicable (%s)\n",
                                asec_acct_method_name(methods[i]), asec_errmsg());
                    else if (r.epsilon_lo < r.epsilon)
                        fprintf(txt, "  %-10s  %.6g  (bracket [%.6g, %.6g])\n",
                                asec_acct_method_name(methods[i]), r.epsilon,
                                r.epsilon_lo, r.epsilon);
                    else
                        fprintf(txt, "  %-10s  %.6g\n", asec_acct_method_name(methods[i]),
                                r.epsilon);
                }
            }
            fprintf(txt, "\n%s\n",
                    seeded       ? "Randomness: seeded -- NOT a DP release."
                    : dp_release ? "Randomness: secure (OS CSPRNG): a DP release."
                                 : "Randomness: secure, but not a DP release (see "
                                   "above).");
            fclose(txt);
            rc = asec_afile_write_all(path, tb, tl);
            free(tb);
            if (rc != ASEC_OK) {
                status = cli_fail(rc);
                goto done;
            }
        }
        if (cli_verbosity >= 1)
            fprintf(stderr,
                    "attnsec defend dpsgd: %" PRIu64 " steps, test accuracy %.4f, "
                    "epsilon %.4g (rdp, delta %g)%s\n",
                    done_steps, test_acc, info.private_run ? rdp.epsilon : INFINITY,
                    delta, budget_stop ? "; stopped at the budget" : "");
#undef R
    }
    snprintf(path, sizeof path, "%s/report.json", outdir);
    if ((rc = asec_report_finish(rep, EXIT_OK)) != ASEC_OK ||
        (rc = asec_report_write(rep, path)) != ASEC_OK ||
        (json && (rc = asec_report_print(rep, stdout)) != ASEC_OK)) {
        status = cli_fail(rc);
        goto done;
    }
done:
    free(curve.p);
    asec_report_free(rep);
    asec_dpsgd_free(d);
    asec_model_free(me);
    asec_model_free(m);
    asec_rng_free(rng);
    asec_data_free(train);
    asec_data_free(test);
    return status;
}
