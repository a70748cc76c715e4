/* cmd_defend.c - 'attnsec defend METHOD': the defense command group
 * (attnsec-defend(1)).  The method table cmd_defend_methods[] is what the
 * dispatcher in attnsec.c lists; add a row per method.
 *
 *   copyright   copyright-avoiding softmax regression (arXiv 2308.12247)
 *               from .npy inputs A, b and a copyright row mask, with gamma
 *               and proportion sweeps (asec_copyright(3)); with --corpus the
 *               demonstration on the KJV corpus (cmd_defend_corpus.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "attnsec/copyright.h"
#include "attnsec/io.h"
#include "cli.h"
#include "cmd_defend_copyright.h"
#include "commands.h"

/* Longest sweep list accepted by --gamma and --proportion. */
#define MAX_SWEEP COPYRIGHT_MAX_GAMMA

const struct cli_method cmd_defend_methods[] = {
    {"copyright", cmd_defend_copyright,
     "fit copyright-avoiding softmax regression and report tau"},
    {"dp-attn", cmd_defend_dp_attn,
     "release attention with differential privacy and report its cost"},
    {"dpsgd", cmd_defend_dpsgd, "train with clipped, noisy SGD (DP-SGD)"},
    {NULL, NULL, NULL}};

/* ------------------------------------------------------------ copyright */

static void
copyright_help(void)
{
    printf(
        "Usage: attnsec defend copyright [OPTION]... -A FILE -b FILE -m FILE -o DIR\n"
        "  or:  attnsec defend copyright --corpus [OPTION]... -o DIR\n"
        "Fit the copyright regression L + gamma / L_1 + L_reg of arXiv 2308.12247 on\n"
        "the rows of A, with the rows selected by the mask as copyrighted data, and\n"
        "report the achieved tau = L_1/n1 - L_2/n2 for each gamma (and proportion).\n"
        "\n"
        "Input and output:\n"
        "  -A, --design=FILE       design matrix A, (n, d) .npy\n"
        "  -b, --target=FILE       targets b, (n) .npy\n"
        "  -m, --mask=FILE         copyright row mask, (n) .npy of 0/1 (bool or numbers)\n"
        "  -w, --weights=FILE      regulariser weights w, (n) .npy (default: all\n"
        "                            --weight)\n"
        "      --weight=X          constant regulariser weight (default: 1)\n"
        "  -o, --output=DIR        write report.json, sweep.csv, trace.csv, x.npy\n"
        "                            and tau_gamma.dat/.gp to DIR\n"
        "      --json              also print report.json on standard output\n"
        "Model and sweeps:\n"
        "      --family=NAME       softmax (default), exp, cosh, sinh, rescaled-exp,\n"
        "                            rescaled-cosh, rescaled-sinh\n"
        "  -g, --gamma=LIST        copyright weights >= 0, comma-separated\n"
        "                            (default: 0,0.1,0.2,0.3,0.4,0.5)\n"
        "      --proportion=LIST   instead of --mask: mark this fraction of the rows\n"
        "                            (random, seeded) copyrighted, one run per value\n"
        "      --beta-c=X          guard L_1 >= X along the path (default: 0)\n"
        "Solver:\n"
        "      --solver=NAME       newton (default), woodbury, cg or sketch\n"
        "      --sketch-eps=E      sketch target eps0 in (0, 1) (default: 0.05)\n"
        "      --sketch-c=C        sketch oversampling constant (default: 3)\n"
        "      --max-iter=N        Newton steps (default: 100)\n"
        "      --tol=X             stop at ||grad|| <= X (default: 1e-10)\n"
        "  -s, --seed=N            seed for the sketch and --proportion (default: 0)\n"
        "  -q, --quiet             no progress output\n"
        "  -v, --verbose           print every iterate on standard error\n"
        "  -h, --help              display this help and exit\n"
        "  -V, --version           output version information and exit\n"
        "Corpus demonstration (details: --corpus --help):\n"
        "      --corpus            next-token copyright regression on the KJV corpus\n"
        "                            over the features of a trained transformer, with\n"
        "                            --copyright-fraction, --context, --engine-steps\n"
        "\n"
        "For the softmax family the targets of the copyrighted rows (and of the other\n"
        "rows) are renormalised to sum to 1, since softmax is taken over each subset.\n"
        "Exit status: 0 on success, 64 usage error, 65 malformed or non-finite input\n"
        "or a numerical failure, 66 missing input, 73/74 output errors.\n"
        "Full documentation: attnsec-defend(1).\n");
}

/* ------------------------------------- shared with cmd_defend_corpus.c */

int
copyright_parse_list(const char *opt, const char *text, double lo, double hi,
                     double *out, size_t *n)
{
    char buf[1024], *save = NULL, *tok;

    if (strlen(text) >= sizeof buf)
        return cli_usage_error("%s: list too long", opt);
    strcpy(buf, text);
    *n = 0;
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (*n == MAX_SWEEP)
            return cli_usage_error("%s: more than %d values", opt, MAX_SWEEP);
        if (cli_parse_double(opt, tok, lo, hi, &out[*n]) != 0)
            return EXIT_USAGE;
        (*n)++;
    }
    if (*n == 0)
        return cli_usage_error("%s: empty list", opt);
    return 0;
}

int
copyright_common_option(struct copyright_common *o, int c, const char *arg, int *status)
{
    *status = EXIT_USAGE;
    switch (c) {
    case 'o':
        o->outdir = arg;
        return 1;
    case COPYRIGHT_OPT_JSON:
        o->json = 1;
        return 1;
    case 'g':
        return copyright_parse_list("--gamma", arg, 0.0, HUGE_VAL, o->gammas, &o->ngamma)
                   ? -1 : 1;
    case COPYRIGHT_OPT_BETA:
        return cli_parse_double("--beta-c", arg, 0.0, HUGE_VAL, &o->beta_c) ? -1 : 1;
    case COPYRIGHT_OPT_MAXIT:
        return cli_parse_size("--max-iter", arg, 1, 100000, &o->max_iter) ? -1 : 1;
    case 's':
        return cli_parse_u64("--seed", arg, &o->seed) ? -1 : 1;
    case 'q':
        cli_verbosity = 0;
        return 1;
    case 'v':
        cli_verbosity = 2;
        return 1;
    case 'h':
        o->help();
        *status = EXIT_OK;
        return -1;
    case 'V':
        *status = cli_print_version();
        return -1;
    default:
        return 0;
    }
}


int
copyright_common_finish(const struct copyright_common *o, int argc, char **argv)
{
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (o->outdir == NULL)
        return cli_usage_error("--output is required");
    return 0;
}

int
copyright_report_begin(asec_report **rep, const struct copyright_common *o,
                       const asec_rng *rng, int argc, char **argv)
{
    int rc;

    if ((rc = asec_afile_mkdirs(o->outdir)) != ASEC_OK ||
        (rc = asec_report_alloc(rep, "defend copyright", argc, argv)) != ASEC_OK ||
        (rc = asec_report_set_rng(*rep, rng)) != ASEC_OK ||
        (rc = asec_report_set_num(*rep, "config.beta_c", o->beta_c)) != ASEC_OK ||
        (rc = asec_report_set_int(*rep, "config.max_iter", (long long)o->max_iter)) !=
            ASEC_OK)
        return cli_fail(rc);
    for (size_t g = 0; g < o->ngamma; g++)
        if ((rc = asec_report_append_num(*rep, "config.gamma", o->gammas[g])) != ASEC_OK)
            return cli_fail(rc);
    return 0;
}

/* ---------------------------------------------------- copyright on .npy */

/* Load a .npy file as doubles and check its rank; *out is owned by the
 * caller (asec_io_file_free).  Returns an exit status. */
static int
load_npy(asec_io_file **out, const asec_io_tensor **t, const char *path, size_t ndim)
{
    int rc = asec_io_open(out, path, ASEC_IO_AUTO, ASEC_IO_LOAD_DOUBLE, NULL);

    if (rc != ASEC_OK)
        return cli_fail(rc);
    *t = asec_io_file_tensor(*out, 0);
    if ((*t)->ndim != ndim) {
        cli_error("%s: expected a %zu-dimensional array, got %zu dimensions", path, ndim,
                  (*t)->ndim);
        return EXIT_DATAERR;
    }
    return EXIT_OK;
}

/* The rows of a selected by sel (== want), and b likewise (renormalised
 * for softmax).  Returns the row count. */
static size_t
take_rows(double *ao, double *bo, const double *a, const double *b,
          const unsigned char *sel, int want, size_t n, size_t d, int renorm)
{
    size_t k = 0;
    double s = 0.0;

    for (size_t i = 0; i < n; i++) {
        if ((sel[i] != 0) != (want != 0))
            continue;
        memcpy(ao + k * d, a + i * d, d * sizeof(double));
        bo[k] = b[i];
        s += b[i];
        k++;
    }
    if (renorm && s > 0.0)
        for (size_t i = 0; i < k; i++)
            bo[i] /= s;
    return k;
}

static int
report_fail(int rc)
{
    return cli_fail(rc);
}

int
cmd_defend_copyright(int argc, char **argv)
{
    enum {
        OPT_WEIGHT = 256, OPT_FAMILY, OPT_PROPORTION, OPT_SOLVER, OPT_SKEPS, OPT_SKC,
        OPT_TOL
    };
    static const struct option longopts[] = {
        {"design", required_argument, NULL, 'A'},
        {"target", required_argument, NULL, 'b'},
        {"mask", required_argument, NULL, 'm'},
        {"weights", required_argument, NULL, 'w'},
        {"weight", required_argument, NULL, OPT_WEIGHT},
        {"family", required_argument, NULL, OPT_FAMILY},
        {"proportion", required_argument, NULL, OPT_PROPORTION},
        {"solver", required_argument, NULL, OPT_SOLVER},
        {"sketch-eps", required_argument, NULL, OPT_SKEPS},
        {"sketch-c", required_argument, NULL, OPT_SKC},
        {"tol", required_argument, NULL, OPT_TOL},
        COPYRIGHT_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0}};
    struct copyright_common co = {
        NULL, 0, {0, 0.1, 0.2, 0.3, 0.4, 0.5}, 6, 0.0, 100, 0, copyright_help};
    const char *path_a = NULL, *path_b = NULL, *path_m = NULL, *path_w = NULL;
    const char *outdir;
    double *gammas = co.gammas, props[MAX_SWEEP];
    size_t ngamma, nprop = 0, n, d, nruns, maxrec = 0;
    double weight = 1.0, beta_c;
    int json, status = EXIT_OK, rc, c;
    asec_copyright_family family = ASEC_COPYRIGHT_SOFTMAX;
    asec_copyright_options opts = ASEC_COPYRIGHT_OPTIONS_INIT;
    asec_io_file *fa = NULL, *fb = NULL, *fm = NULL, *fw = NULL;
    const asec_io_tensor *ta, *tb, *tm = NULL, *tw = NULL;
    double *w = NULL, *a1 = NULL, *b1 = NULL, *a2 = NULL, *b2 = NULL, *xs = NULL;
    unsigned char *sel = NULL;
    size_t *perm = NULL;
    asec_rng *rng = NULL;
    asec_report *rep = NULL;
    asec_afile *csv = NULL, *trace = NULL, *dat = NULL;
    char path[4096];

    /* The corpus demonstration has its own options (cmd_defend_corpus.c). */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--corpus") == 0)
            return cmd_defend_copyright_corpus(argc, argv);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+A:b:m:w:" COPYRIGHT_COMMON_SHORTOPTS, longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'A':
            path_a = optarg;
            break;
        case 'b':
            path_b = optarg;
            break;
        case 'm':
            path_m = optarg;
            break;
        case 'w':
            path_w = optarg;
            break;
        case OPT_WEIGHT:
            if (cli_parse_double("--weight", optarg, 0.0, HUGE_VAL, &weight) != 0)
                return EXIT_USAGE;
            break;
        case OPT_FAMILY:
            if (asec_copyright_family_parse(&family, optarg) != ASEC_OK)
                return cli_usage_error("--family: unknown family '%s'", optarg);
            break;
        case OPT_PROPORTION:
            if (copyright_parse_list("--proportion", optarg, 0.0, 1.0, props, &nprop))
                return EXIT_USAGE;
            for (size_t i = 0; i < nprop; i++)
                if (!(props[i] > 0.0 && props[i] < 1.0))
                    return cli_usage_error("--proportion: %g is not in (0, 1)", props[i]);
            break;
        case OPT_SOLVER:
            if (asec_copyright_method_parse(&opts.method, optarg) != ASEC_OK)
                return cli_usage_error("--solver: unknown solver '%s'", optarg);
            break;
        case OPT_SKEPS:
            if (cli_parse_double("--sketch-eps", optarg, 1e-6, 0.999999, &opts.sketch_eps)
                != 0)
                return EXIT_USAGE;
            break;
        case OPT_SKC:
            if (cli_parse_double("--sketch-c", optarg, 1e-6, 1e6, &opts.sketch_c) != 0)
                return EXIT_USAGE;
            break;
        case OPT_TOL:
            if (cli_parse_double("--tol", optarg, 0.0, HUGE_VAL, &opts.tol_grad) != 0)
                return EXIT_USAGE;
            break;
        default:
            switch (copyright_common_option(&co, c, optarg, &status)) {
            case 1:
                break;
            case 0:
                return cli_option_error(argv, longopts, NULL);
            default:
                return status;
            }
        }
    }
    if ((status = copyright_common_finish(&co, argc, argv)) != 0)
        return status;
    if (path_a == NULL || path_b == NULL)
        return cli_usage_error("--design and --target are required");
    if ((path_m == NULL) == (nprop == 0))
        return cli_usage_error("give exactly one of --mask and --proportion");
    outdir = co.outdir;
    json = co.json;
    ngamma = co.ngamma;
    beta_c = co.beta_c;
    opts.max_iter = co.max_iter;

    /* Inputs. */
    if ((status = load_npy(&fa, &ta, path_a, 2)) != EXIT_OK)
        goto done;
    n = ta->shape[0];
    d = ta->shape[1];
    if (n == 0 || d == 0) {
        cli_error("%s: A is %zux%zu; need at least one row and one column", path_a, n, d);
        status = EXIT_DATAERR;
        goto done;
    }
    if ((status = load_npy(&fb, &tb, path_b, 1)) != EXIT_OK)
        goto done;
    if (tb->shape[0] != n) {
        cli_error("%s: b has %zu entries but A has %zu rows", path_b, tb->shape[0], n);
        status = EXIT_DATAERR;
        goto done;
    }
    if (path_m != NULL) {
        if ((status = load_npy(&fm, &tm, path_m, 1)) != EXIT_OK)
            goto done;
        if (tm->shape[0] != n) {
            cli_error("%s: the mask has %zu entries but A has %zu rows", path_m,
                      tm->shape[0], n);
            status = EXIT_DATAERR;
            goto done;
        }
    }
    if (path_w != NULL) {
        if ((status = load_npy(&fw, &tw, path_w, 1)) != EXIT_OK)
            goto done;
        if (tw->shape[0] != n) {
            cli_error("%s: w has %zu entries but A has %zu rows", path_w, tw->shape[0], n);
            status = EXIT_DATAERR;
            goto done;
        }
    }
    nruns = ngamma * (nprop ? nprop : 1);
    w = malloc(n * sizeof *w);
    a1 = malloc(n * d * sizeof *a1);
    a2 = malloc(n * d * sizeof *a2);
    b1 = malloc(n * sizeof *b1);
    b2 = malloc(n * sizeof *b2);
    sel = malloc(n);
    perm = malloc(n * sizeof *perm);
    xs = malloc(nruns * d * sizeof *xs);
    if (!w || !a1 || !a2 || !b1 || !b2 || !sel || !perm || !xs) {
        cli_error("out of memory for n = %zu, d = %zu", n, d);
        status = EXIT_TEMPFAIL;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        w[i] = tw != NULL ? tw->data[i] : weight;
    if (tm != NULL) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
            if (tm->data[i] != 0.0 && tm->data[i] != 1.0) {
                cli_error("%s: mask entry %zu is %g; only 0 and 1 are allowed", path_m, i,
                          tm->data[i]);
                status = EXIT_DATAERR;
                goto done;
            }
            sel[i] = tm->data[i] != 0.0; /* a boolean mask, not indices (§6.4, 1) */
            k += sel[i];
        }
        if (k == 0) {
            cli_error("%s: the copyright mask selects no rows", path_m);
            status = EXIT_DATAERR;
            goto done;
        }
    }
    if ((rc = asec_rng_alloc_seeded(&rng, co.seed, "defend/copyright")) != ASEC_OK) {
        status = report_fail(rc);
        goto done;
    }
    if ((status = copyright_report_begin(&rep, &co, rng, argc, argv)) != EXIT_OK)
        goto done;
    /* Provenance and configuration. */
    if ((rc = asec_report_add_input(rep, path_a)) || (rc = asec_report_add_input(rep, path_b))
        || (path_m && (rc = asec_report_add_input(rep, path_m)))
        || (path_w && (rc = asec_report_add_input(rep, path_w)))
        || (rc = asec_report_set_str(rep, "config.family", asec_copyright_family_name(family)))
        || (rc = asec_report_set_str(rep, "config.solver",
                                     asec_copyright_method_name(opts.method)))
        || (rc = asec_report_set_int(rep, "config.n", (long long)n))
        || (rc = asec_report_set_int(rep, "config.d", (long long)d))
        || (rc = asec_report_set_num(rep, "config.tol_grad", opts.tol_grad))
        || (rc = asec_report_set_num(rep, "config.sketch_eps", opts.sketch_eps))
        || (rc = asec_report_set_num(rep, "config.sketch_c", opts.sketch_c))
        || (rc = asec_report_set_str(rep, "config.regulariser",
                                     path_w ? "weights file" : "constant --weight"))
        || (rc = asec_report_set_num(rep, "config.weight", path_w ? NAN : weight))
        || (rc = asec_report_set_str(rep, "config.tau_note",
                                     "tau = L_1/n1 - L_2/n2 from the plain regression "
                                     "losses (no gamma term) on the training rows: a "
                                     "memorisation gap, not a held-out measure"))) {
        status = report_fail(rc);
        goto done;
    }
    for (size_t q = 0; q < nprop; q++)
        if ((rc = asec_report_append_num(rep, "config.proportion", props[q])) != ASEC_OK) {
            status = report_fail(rc);
            goto done;
        }
    snprintf(path, sizeof path, "%s/sweep.csv", outdir);
    if ((rc = asec_afile_open(&csv, path)) != ASEC_OK
        || (rc = asec_afile_printf(csv, "gamma,proportion,n1,n2,L,L1_per_row,L2_per_row,"
                                        "tau,L_cpr,grad_norm,iterations,status,"
                                        "lambda_min_final,lambda_min_path,min_L1_path,"
                                        "max_sketch_factor\n"))) {
        status = report_fail(rc);
        goto done;
    }
    snprintf(path, sizeof path, "%s/trace.csv", outdir);
    if ((rc = asec_afile_open(&trace, path)) != ASEC_OK
        || (rc = asec_afile_printf(trace, "run,iter,L_cpr,L,L1,grad_norm,lambda_min,"
                                          "lambda_max,lipschitz,step,backtracks,"
                                          "cg_iters,sketch_rows,sketch_lo,sketch_hi\n"))) {
        status = report_fail(rc);
        goto done;
    }
    snprintf(path, sizeof path, "%s/tau_gamma.dat", outdir);
    if ((rc = asec_afile_open(&dat, path)) != ASEC_OK
        || (rc = asec_afile_printf(dat, "# proportion gamma tau L1/n1 L2/n2\n"))) {
        status = report_fail(rc);
        goto done;
    }

    cli_progress_begin("copyright", nruns);
    for (size_t run = 0; run < nruns; run++) {
        size_t gi = run % ngamma, pi = run / ngamma, n1, n2, cnt;
        double prop = nprop ? props[pi] : NAN;
        asec_copyright_problem p = ASEC_COPYRIGHT_PROBLEM_INIT;
        asec_copyright_solver *s = NULL;
        asec_copyright_iterate it;
        double lam_path = INFINITY, minl1 = INFINITY, maxfac = 0.0;
        double *x0 = xs + run * d;
        char key[128], js[256];

        if (nprop && gi == 0) {
            /* A seeded random permutation: the first ceil(prop n) rows. */
            size_t k = (size_t)ceil(prop * (double)n);

            for (size_t i = 0; i < n; i++)
                perm[i] = i;
            for (size_t i = n; i > 1; i--) {
                size_t j = (size_t)asec_rng_bounded(rng, i), t = perm[i - 1];

                perm[i - 1] = perm[j];
                perm[j] = t;
            }
            memset(sel, 0, n);
            for (size_t i = 0; i < k && i < n; i++)
                sel[perm[i]] = 1;
        }
        n1 = take_rows(a1, b1, ta->data, tb->data, sel, 1, n, d,
                       family == ASEC_COPYRIGHT_SOFTMAX);
        n2 = take_rows(a2, b2, ta->data, tb->data, sel, 0, n, d,
                       family == ASEC_COPYRIGHT_SOFTMAX);
        p.family = family;
        p.a = asec_mat_view(ta->data, n, d);
        p.b = tb->data;
        p.w = w;
        p.a1 = asec_mat_view(a1, n1, d);
        p.b1 = b1;
        p.a2 = asec_mat_view(a2, n2, d);
        p.b2 = b2;
        p.gamma = gammas[gi];
        p.beta_c = beta_c;
        memset(x0, 0, d * sizeof(double));
        rc = asec_copyright_solver_alloc(&s, &p, &opts, x0, rng);
        if (rc == ASEC_OK)
            rc = asec_copyright_solver_run(s);
        if (rc != ASEC_OK) {
            cli_error("gamma %g: %s", p.gamma, asec_errmsg());
            asec_copyright_solver_free(s);
            status = cli_exit_status(rc);
            goto done;
        }
        cnt = asec_copyright_solver_count(s);
        for (size_t t = 0; t < cnt; t++) {
            if (asec_copyright_solver_record(s, t, &it) != ASEC_OK)
                continue;
            if (it.lambda_min < lam_path)
                lam_path = it.lambda_min;
            if (it.losses.l1 < minl1)
                minl1 = it.losses.l1;
            if (opts.method == ASEC_COPYRIGHT_SKETCH && t + 1 < cnt)
                maxfac = fmax(maxfac, fmax(1.0 - it.sketch_lo, it.sketch_hi - 1.0));
            if (cli_verbosity >= 2)
                fprintf(stderr,
                        "attnsec defend copyright: gamma %g iter %zu loss %.12g "
                        "|grad| %.3e lambda_min %.4g L_1 %.6g\n",
                        p.gamma, t, it.losses.l_cpr, it.grad_norm, it.lambda_min,
                        it.losses.l1);
            if ((rc = asec_afile_printf(
                     trace, "%zu,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%zu,"
                            "%zu,%zu,%.17g,%.17g\n",
                     run, t, it.losses.l_cpr, it.losses.l, it.losses.l1, it.grad_norm,
                     it.lambda_min, it.lambda_max, it.lipschitz, it.step, it.backtracks,
                     it.cg_iters, it.sketch_rows, it.sketch_lo, it.sketch_hi))) {
                asec_copyright_solver_free(s);
                status = report_fail(rc);
                goto done;
            }
        }
        if (cnt > maxrec)
            maxrec = cnt;
        if (asec_copyright_solver_record(s, cnt - 1, &it) != ASEC_OK) {
            asec_copyright_solver_free(s);
            status = cli_fail(ASEC_EINTERNAL);
            goto done;
        }
        memcpy(x0, asec_copyright_solver_x(s), d * sizeof(double));
        snprintf(js, sizeof js,
                 "{\"gamma\": %.17g, \"n1\": %zu, \"n2\": %zu, \"iterations\": %zu, "
                 "\"status\": \"%s\"}",
                 p.gamma, n1, n2, cnt - 1,
                 asec_copyright_status_name(asec_copyright_solver_status(s)));
        snprintf(key, sizeof key, "results.runs");
        rc = asec_report_append_json(rep, key, js);
        if (rc == ASEC_OK) {
            char base[48];

            snprintf(base, sizeof base, "results.run_%zu", run % 1000000);
#define SETN(k, v) (rc == ASEC_OK && (snprintf(key, sizeof key, "%s.%s", base, k), \
                                      rc = asec_report_set_num(rep, key, (v))) == ASEC_OK)
            (void)(SETN("gamma", p.gamma) && SETN("proportion", prop)
                   && SETN("L", it.losses.l) && SETN("L1_per_row", it.losses.l1 / n1)
                   && SETN("L2_per_row", n2 ? it.losses.l2 / n2 : NAN)
                   && SETN("tau", it.losses.tau) && SETN("L_cpr", it.losses.l_cpr)
                   && SETN("L_reg", it.losses.l_reg) && SETN("grad_norm", it.grad_norm)
                   && SETN("lambda_min_final", it.lambda_min)
                   && SETN("lambda_min_path", lam_path) && SETN("min_L1_path", minl1)
                   && SETN("max_sketch_factor",
                           opts.method == ASEC_COPYRIGHT_SKETCH ? maxfac : NAN));
#undef SETN
        }
        if (rc == ASEC_OK)
            rc = asec_afile_printf(csv, "%.17g,%.17g,%zu,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,"
                                        "%.17g,%zu,%s,%.17g,%.17g,%.17g,%.17g\n",
                                   p.gamma, prop, n1, n2, it.losses.l, it.losses.l1 / n1,
                                   n2 ? it.losses.l2 / n2 : NAN, it.losses.tau,
                                   it.losses.l_cpr, it.grad_norm, cnt - 1,
                                   asec_copyright_status_name(
                                       asec_copyright_solver_status(s)),
                                   it.lambda_min, lam_path, minl1,
                                   opts.method == ASEC_COPYRIGHT_SKETCH ? maxfac : NAN);
        if (rc == ASEC_OK)
            rc = asec_afile_printf(dat, "%.17g %.17g %.17g %.17g %.17g\n",
                                   nprop ? prop : 0.0, p.gamma, it.losses.tau,
                                   it.losses.l1 / n1, n2 ? it.losses.l2 / n2 : NAN);
        if (rc == ASEC_OK && asec_copyright_solver_status(s) == ASEC_COPYRIGHT_STALLED)
            rc = asec_report_warn(rep, "run %zu (gamma %g): the line search stalled", run,
                                  p.gamma);
        if (cli_verbosity >= 1 && rc == ASEC_OK)
            fprintf(stderr,
                    "attnsec defend copyright: gamma %-6g n1 %-5zu tau %-12.6g "
                    "L1/n1 %-12.6g L2/n2 %-12.6g %s after %zu steps\n",
                    p.gamma, n1, it.losses.tau, it.losses.l1 / n1,
                    n2 ? it.losses.l2 / n2 : NAN,
                    asec_copyright_status_name(asec_copyright_solver_status(s)), cnt - 1);
        asec_copyright_solver_free(s);
        if (rc != ASEC_OK) {
            status = report_fail(rc);
            goto done;
        }
        cli_progress_update(run + 1);
    }
    cli_progress_end();
    (void)maxrec;

    /* x.npy: (runs, d), the minimisers in run order. */
    {
        size_t shape[2] = {nruns, d};

        snprintf(path, sizeof path, "%s/x.npy", outdir);
        if ((rc = asec_io_npy_write(path, xs, 2, shape, ASEC_IO_F64)) != ASEC_OK) {
            status = report_fail(rc);
            goto done;
        }
    }
    snprintf(path, sizeof path, "%s/tau_gamma.gp", outdir);
    {
        static const char gp[] =
            "# gnuplot script: tau against gamma (attnsec defend copyright)\n"
            "set terminal pngcairo size 800,500\n"
            "set output 'tau_gamma.png'\n"
            "set xlabel 'gamma'\n"
            "set ylabel 'tau = L_1/n_1 - L_2/n_2'\n"
            "set key left top\n"
            "plot 'tau_gamma.dat' using 2:3 with linespoints title 'tau'\n";

        if ((rc = asec_afile_write_all(path, gp, sizeof gp - 1)) != ASEC_OK) {
            status = report_fail(rc);
            goto done;
        }
    }
    rc = asec_afile_commit(csv);
    csv = NULL;
    if (rc == ASEC_OK) {
        rc = asec_afile_commit(trace);
        trace = NULL;
    }
    if (rc == ASEC_OK) {
        rc = asec_afile_commit(dat);
        dat = NULL;
    }
    if (rc != ASEC_OK) {
        status = report_fail(rc);
        goto done;
    }
    snprintf(path, sizeof path, "%s/report.json", outdir);
    if ((rc = asec_report_finish(rep, EXIT_OK)) != ASEC_OK
        || (rc = asec_report_write(rep, path)) != ASEC_OK
        || (json && (rc = asec_report_print(rep, stdout)) != ASEC_OK)) {
        status = report_fail(rc);
        goto done;
    }
done:
    asec_afile_abort(csv);
    asec_afile_abort(trace);
    asec_afile_abort(dat);
    asec_report_free(rep);
    asec_rng_free(rng);
    asec_io_file_free(fa);
    asec_io_file_free(fb);
    asec_io_file_free(fm);
    asec_io_file_free(fw);
    free(w);
    free(a1);
    free(a2);
    free(b1);
    free(b2);
    free(sel);
    free(perm);
    free(xs);
    return status;
}
