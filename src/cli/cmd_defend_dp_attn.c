/* cmd_defend_dp_attn.c - 'attnsec defend dp-attn': differentially private
 * attention (arXiv 2305.04701; asec_dp_attn(3), attnsec-defend(1)).
 *
 * Three ways to run:
 *   .npy inputs   -x X (Q = K = X) or -Q/-K, values -v, or --matrix A (a
 *                 PSD matrix for the covariance mechanism); one release per
 *                 epsilon of --epsilon (a list gives a utility table)
 *   model layer   --model FILE --layer L --head H --index I: the q, k, v
 *                 of one head for digits test image I
 *   --curve       downstream accuracy of a ViT on the digits test split
 *                 with one layer's attention output replaced by the
 *                 output-perturbation release, for each epsilon; without
 *                 --model a default ViT is first trained (plain Adam)
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "attnsec/dp_attn.h"
#include "attnsec/io.h"
#include "cli.h"
#include "commands.h"

#define MAX_EPS 32

enum mech { MECH_COV = 0, MECH_OUTPUT = 1 };

struct args {
    const char *x, *q, *k, *v, *matrix, *model, *outdir;
    enum mech mech;
    double eps[MAX_EPS];
    size_t neps;
    double delta, delta_f, radius, lambda_min, scale, clamp_rel, gamma, rv, lr;
    size_t samples, draws, layer, head, index, steps, batch, eval_n;
    unsigned int degree;
    int have_seed, insecure_seed, json, curve, have_delta_f, have_radius, have_lmin;
    uint64_t seed;
};

static void
dp_attn_help(void)
{
    printf(
        "Usage: attnsec defend dp-attn [OPTION]... (-x FILE | -Q FILE -K FILE |\n"
        "         --matrix FILE | --model FILE) [--values=FILE] -o DIR\n"
        "       attnsec defend dp-attn --curve [OPTION]... -o DIR\n"
        "Release attention with (epsilon, delta)-differential privacy (arXiv\n"
        "2305.04701) and report its privacy and utility: the covariance (Gaussian\n"
        "sampling) mechanism for the symmetric case Q = K, or output perturbation\n"
        "with exact lattice noise for any Q and K.\n"
        "\n"
        "Input and output:\n"
        "  -x, --tokens=FILE       tokens X, (n, d) .npy; Q = K = X\n"
        "  -Q, --queries=FILE      queries, (T, d) .npy\n"
        "  -K, --keys=FILE         keys, (S, d) .npy\n"
        "      --values=FILE       values, (S, d_v) .npy (the attention output is\n"
        "                            released or scored only with values)\n"
        "      --matrix=FILE       a PSD matrix A, (n, n) .npy, for --mechanism=cov\n"
        "      --model=FILE        a vit model (.safetensors): take q, k, v of one\n"
        "                            head for a digits test image\n"
        "      --layer=L           the model layer (default: 0)\n"
        "      --head=H            the head (default: 0)\n"
        "      --index=I           the digits test image (default: 0)\n"
        "  -o, --output=DIR        write report.json, the release (.npy) and\n"
        "                            utility.csv (or curve.csv, .dat, .gp) to DIR\n"
        "      --json              also print report.json on standard output\n"
        "Mechanism and privacy:\n"
        "  -M, --mechanism=NAME    cov (default; needs Q = K) or output\n"
        "  -e, --epsilon=LIST      target epsilons, comma-separated, 'inf' for no\n"
        "                            noise (default: 1; --curve: 0.5,1,2,4,8,inf)\n"
        "  -d, --delta=X           target delta (default: 1e-5)\n"
        "      --delta-f=X         cov: matrix sensitivity Delta_F\n"
        "      --radius=R          cov: token norm bound; Delta_F is derived with\n"
        "      --lambda-min=L        the ASSUMPTION lambda_min(A) >= L\n"
        "  -m, --samples=M         cov: Gaussian samples (default: m_max for the\n"
        "                            target; more than m_max exits 77)\n"
        "      --mc-draws=N        Monte Carlo draws for the exact privacy loss\n"
        "                            (default: 100000)\n"
        "      --value-bound=R     output: clip value rows to norm R (default: 1)\n"
        "Attention:\n"
        "  -g, --degree=G          Taylor feature map of degree G; 0 = exact kernel\n"
        "                            (default: 0)\n"
        "      --scale=S           logit scale s in exp(s q k^T) (default: 1/d;\n"
        "                            model layers: 1/sqrt(head size))\n"
        "      --clamp-rel=X       raise normalisers below X times the largest to\n"
        "                            that value, and count them (default: 1e-6)\n"
        "      --gamma=X           failure probability of the Wishart bound\n"
        "                            (default: 1e-3)\n"
        "Downstream accuracy:\n"
        "      --curve             accuracy on the digits test split with --layer's\n"
        "                            attention released by output perturbation\n"
        "      --train-steps=N     train a default ViT (plain Adam, not private)\n"
        "                            first when no --model is given (default: 1500)\n"
        "      --lr=X              Adam step size (default: 0.003)\n"
        "      --batch=B           training batch size (default: 64)\n"
        "      --eval=N            test images scored (default: all 360)\n"
        "Reproducibility and reporting:\n"
        "  -s, --seed=N            seeded noise; refused unless --insecure-seed\n"
        "      --insecure-seed     accept --seed: the output is NOT a DP release\n"
        "  -q, --quiet             no progress output\n"
        "  -v, --verbose           print each release on standard error\n"
        "  -h, --help              display this help and exit\n"
        "  -V, --version           output version information and exit\n"
        "\n"
        "The covariance mechanism's neighbours are matrices with\n"
        "||A^-1/2 A' A^-1/2 - I||_F <= Delta_F; output perturbation protects one\n"
        "token given ||v_j|| <= R.\n"
        "Exit status: 0 on success, 64 usage error (also Q != K for cov), 65\n"
        "malformed, non-finite or non-PSD input, 66 missing input, 73/74 output\n"
        "errors, 77 more samples than the privacy budget allows.\n"
        "Full documentation: attnsec-defend(1).\n");
}

/* "0.5,1,inf" -> eps[]; returns 0 or 64. */
static int
parse_eps_list(const char *text, double *out, size_t *n)
{
    char buf[512], *save = NULL, *tok;

    if (strlen(text) >= sizeof buf)
        return cli_usage_error("--epsilon: list too long");
    strcpy(buf, text);
    *n = 0;
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (*n >= MAX_EPS)
            return cli_usage_error("--epsilon: at most %d values", MAX_EPS);
        if (strcmp(tok, "inf") == 0)
            out[(*n)++] = INFINITY;
        else if (cli_parse_double("--epsilon", tok, 1e-6, 1e6, &out[(*n)++]) != 0)
            return EXIT_USAGE;
    }
    if (*n == 0)
        return cli_usage_error("--epsilon: empty list");
    return 0;
}

static int
parse_args(struct args *a, int argc, char **argv)
{
    enum {
        OPT_MATRIX = 256, OPT_MODEL, OPT_LAYER, OPT_HEAD, OPT_INDEX, OPT_JSON, OPT_DF,
        OPT_RADIUS, OPT_LMIN, OPT_DRAWS, OPT_RV, OPT_SCALE, OPT_CLAMP, OPT_GAMMA,
        OPT_CURVE, OPT_STEPS, OPT_LR, OPT_BATCH, OPT_EVAL, OPT_INSECURE, OPT_VALUES
    };
    static const struct option longopts[] = {
        {"tokens", required_argument, NULL, 'x'},
        {"queries", required_argument, NULL, 'Q'},
        {"keys", required_argument, NULL, 'K'},
        {"values", required_argument, NULL, OPT_VALUES},
        {"matrix", required_argument, NULL, OPT_MATRIX},
        {"model", required_argument, NULL, OPT_MODEL},
        {"layer", required_argument, NULL, OPT_LAYER},
        {"head", required_argument, NULL, OPT_HEAD},
        {"index", required_argument, NULL, OPT_INDEX},
        {"output", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, OPT_JSON},
        {"mechanism", required_argument, NULL, 'M'},
        {"epsilon", required_argument, NULL, 'e'},
        {"delta", required_argument, NULL, 'd'},
        {"delta-f", required_argument, NULL, OPT_DF},
        {"radius", required_argument, NULL, OPT_RADIUS},
        {"lambda-min", required_argument, NULL, OPT_LMIN},
        {"samples", required_argument, NULL, 'm'},
        {"mc-draws", required_argument, NULL, OPT_DRAWS},
        {"value-bound", required_argument, NULL, OPT_RV},
        {"degree", required_argument, NULL, 'g'},
        {"scale", required_argument, NULL, OPT_SCALE},
        {"clamp-rel", required_argument, NULL, OPT_CLAMP},
        {"gamma", required_argument, NULL, OPT_GAMMA},
        {"curve", no_argument, NULL, OPT_CURVE},
        {"train-steps", required_argument, NULL, OPT_STEPS},
        {"lr", required_argument, NULL, OPT_LR},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"eval", required_argument, NULL, OPT_EVAL},
        {"seed", required_argument, NULL, 's'},
        {"insecure-seed", no_argument, NULL, OPT_INSECURE},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int c, have_eps = 0;
    size_t deg = 0;

    memset(a, 0, sizeof *a);
    a->eps[0] = 1.0;
    a->neps = 1;
    a->delta = 1e-5;
    a->clamp_rel = 1e-6;
    a->gamma = 1e-3;
    a->rv = 1.0;
    a->lr = 0.003;
    a->draws = 100000;
    a->steps = 1500;
    a->batch = 64;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":x:Q:K:o:M:e:d:m:g:s:qvhV", longopts, NULL))
           != -1) {
        switch (c) {
        case 'x': a->x = optarg; break;
        case 'Q': a->q = optarg; break;
        case 'K': a->k = optarg; break;
        case OPT_VALUES: a->v = optarg; break;
        case 'o': a->outdir = optarg; break;
        case OPT_MATRIX: a->matrix = optarg; break;
        case OPT_MODEL: a->model = optarg; break;
        case OPT_JSON: a->json = 1; break;
        case OPT_CURVE: a->curve = 1; break;
        case OPT_INSECURE: a->insecure_seed = 1; break;
        case 'M':
            if (strcmp(optarg, "cov") == 0)
                a->mech = MECH_COV;
            else if (strcmp(optarg, "output") == 0)
                a->mech = MECH_OUTPUT;
            else
                return cli_usage_error("--mechanism: '%s' is not cov or output", optarg);
            break;
        case 'e':
            if (parse_eps_list(optarg, a->eps, &a->neps) != 0)
                return EXIT_USAGE;
            have_eps = 1;
            break;
        case 'd':
            if (cli_parse_double("--delta", optarg, 1e-300, 0.5, &a->delta) != 0)
                return EXIT_USAGE;
            break;
        case OPT_DF:
            if (cli_parse_double("--delta-f", optarg, 1e-300, 1e300, &a->delta_f) != 0)
                return EXIT_USAGE;
            a->have_delta_f = 1;
            break;
        case OPT_RADIUS:
            if (cli_parse_double("--radius", optarg, 1e-300, 1e300, &a->radius) != 0)
                return EXIT_USAGE;
            a->have_radius = 1;
            break;
        case OPT_LMIN:
            if (cli_parse_double("--lambda-min", optarg, 1e-300, 1e300, &a->lambda_min)
                != 0)
                return EXIT_USAGE;
            a->have_lmin = 1;
            break;
        case 'm':
            if (cli_parse_size("--samples", optarg, 1, (size_t)1 << 40, &a->samples) != 0)
                return EXIT_USAGE;
            break;
        case OPT_DRAWS:
            if (cli_parse_size("--mc-draws", optarg, 1, (size_t)1 << 32, &a->draws) != 0)
                return EXIT_USAGE;
            break;
        case OPT_RV:
            if (cli_parse_double("--value-bound", optarg, 1e-300, 1e300, &a->rv) != 0)
                return EXIT_USAGE;
            break;
        case 'g':
            if (cli_parse_size("--degree", optarg, 0, ASEC_DP_ATTN_MAX_DEGREE, &deg) != 0)
                return EXIT_USAGE;
            a->degree = (unsigned int)deg;
            break;
        case OPT_SCALE:
            if (cli_parse_double("--scale", optarg, 1e-300, 1e300, &a->scale) != 0)
                return EXIT_USAGE;
            break;
        case OPT_CLAMP:
            if (cli_parse_double("--clamp-rel", optarg, 1e-300, 1.0, &a->clamp_rel) != 0)
                return EXIT_USAGE;
            break;
        case OPT_GAMMA:
            if (cli_parse_double("--gamma", optarg, 1e-300, 0.999999, &a->gamma) != 0)
                return EXIT_USAGE;
            break;
        case OPT_LAYER:
            if (cli_parse_size("--layer", optarg, 0, 1 << 20, &a->layer) != 0)
                return EXIT_USAGE;
            break;
        case OPT_HEAD:
            if (cli_parse_size("--head", optarg, 0, 1 << 20, &a->head) != 0)
                return EXIT_USAGE;
            break;
        case OPT_INDEX:
            if (cli_parse_size("--index", optarg, 0, (size_t)1 << 40, &a->index) != 0)
                return EXIT_USAGE;
            break;
        case OPT_STEPS:
            if (cli_parse_size("--train-steps", optarg, 0, 1000000, &a->steps) != 0)
                return EXIT_USAGE;
            break;
        case OPT_LR:
            if (cli_parse_double("--lr", optarg, 1e-12, 1e6, &a->lr) != 0)
                return EXIT_USAGE;
            break;
        case OPT_BATCH:
            if (cli_parse_size("--batch", optarg, 1, 100000, &a->batch) != 0)
                return EXIT_USAGE;
            break;
        case OPT_EVAL:
            if (cli_parse_size("--eval", optarg, 1, 1000000, &a->eval_n) != 0)
                return EXIT_USAGE;
            break;
        case 's':
            if (cli_parse_u64("--seed", optarg, &a->seed) != 0)
                return EXIT_USAGE;
            a->have_seed = 1;
            break;
        case 'q': cli_verbosity = 0; break;
        case 'v': cli_verbosity = 2; break;
        case 'h': dp_attn_help(); return -1;
        case 'V': cli_print_version(); return -1;
        default: return cli_option_error(argv, longopts, NULL); /* also ':' */
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (a->outdir == NULL)
        return cli_usage_error("missing -o DIR");
    if (a->have_seed && !a->insecure_seed)
        return cli_usage_error("refusing --seed: a DP release uses secure randomness "
                               "(add --insecure-seed for a test run that is NOT a DP "
                               "release)");
    if (a->insecure_seed && !a->have_seed)
        return cli_usage_error("--insecure-seed needs --seed");
    if (a->curve) {
        if (!have_eps) {
            static const double def[] = {0.5, 1, 2, 4, 8, INFINITY};

            memcpy(a->eps, def, sizeof def);
            a->neps = 6;
        }
        if (a->x || a->q || a->k || a->v || a->matrix)
            return cli_usage_error("--curve takes no .npy inputs");
        return 0;
    }
    if (a->x != NULL && (a->q != NULL || a->k != NULL))
        return cli_usage_error("give either -x or -Q and -K");
    if ((a->q != NULL) != (a->k != NULL))
        return cli_usage_error("-Q and -K go together");
    if ((a->x || a->q) + (a->matrix != NULL) + (a->model != NULL) != 1)
        return cli_usage_error("give one input: -x, -Q/-K, --matrix or --model");
    if (a->mech == MECH_OUTPUT && a->matrix != NULL)
        return cli_usage_error("--matrix is an input of --mechanism=cov only");
    if (a->mech == MECH_OUTPUT && a->v == NULL && a->model == NULL)
        return cli_usage_error("--mechanism=output releases Att and needs --values");
    if (a->mech == MECH_COV) {
        if (a->have_delta_f && a->have_radius)
            return cli_usage_error("give --delta-f or --radius, not both");
        if (!a->have_delta_f && !a->have_radius)
            return cli_usage_error("--mechanism=cov needs --delta-f or --radius with "
                                   "--lambda-min");
        if (a->have_radius && !a->have_lmin)
            return cli_usage_error("--radius needs --lambda-min: without the assumption "
                                   "lambda_min(A) >= L the token-level guarantee is "
                                   "vacuous");
        for (size_t i = 0; i < a->neps; i++)
            if (isinf(a->eps[i]))
                return cli_usage_error("--mechanism=cov needs finite epsilons");
    }
    return 0;
}

/* ------------------------------------------------------------ inputs */

struct tensor {
    asec_io_file *f;
    asec_mat m;
};

static int
load_mat(struct tensor *t, const char *path, asec_report *rep)
{
    const asec_io_tensor *it;
    int rc = asec_io_open(&t->f, path, ASEC_IO_AUTO, ASEC_IO_LOAD_DOUBLE, NULL);

    if (rc != ASEC_OK)
        return cli_fail(rc);
    it = asec_io_file_tensor(t->f, 0);
    if (it->ndim != 2) {
        cli_error("%s: expected a 2-dimensional array, got %zu dimensions", path,
                  it->ndim);
        return EXIT_DATAERR;
    }
    if (it->shape[0] == 0 || it->shape[1] == 0) {
        cli_error("%s: empty array (%zu, %zu)", path, it->shape[0], it->shape[1]);
        return EXIT_DATAERR;
    }
    t->m = asec_mat_view(it->data, it->shape[0], it->shape[1]);
    if ((rc = asec_report_add_input(rep, path)) != ASEC_OK)
        return cli_fail(rc);
    return EXIT_OK;
}

/* q, k, v of one head of a model layer for a digits test image. */
struct capture {
    size_t layer, head;
    double *q, *k, *v; /* (T, HS) each */
    size_t T, HS;
};

static int
capture_hook(void *ctx, size_t layer, double *out, double *att, const double *qkv,
             size_t B, size_t T, size_t C, size_t NH)
{
    struct capture *cp = ctx;
    size_t HS = C / NH;

    (void)out;
    (void)att;
    (void)B;
    if (layer != cp->layer)
        return ASEC_OK;
    cp->T = T;
    cp->HS = HS;
    for (size_t t = 0; t < T; t++)
        for (size_t j = 0; j < HS; j++) {
            const double *row = qkv + t * 3 * C + cp->head * HS + j;

            cp->q[t * HS + j] = row[0];
            cp->k[t * HS + j] = row[C];
            cp->v[t * HS + j] = row[2 * C];
        }
    return ASEC_OK;
}

/* ------------------------------------------------------------ release runs */

static double
max_row_sum_ratio_floor(const asec_mat *f, double rel)
{
    // D^ = F^T (F 1): the largest normaliser of the release (post-processing)
    double dmax = 0.0;
    size_t m = f->rows, n = f->cols;
    double *s = calloc(m, sizeof *s);

    if (s == NULL)
        return rel;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            s[i] += f->data[i * f->ld + j];
    for (size_t j = 0; j < n; j++) {
        double d = 0.0;

        for (size_t i = 0; i < m; i++)
            d += f->data[i * f->ld + j] * s[i];
        dmax = fmax(dmax, d);
    }
    free(s);
    return dmax > 0.0 ? rel * dmax : rel;
}

static int
report_num(asec_report *r, const char *prefix, const char *key, double v)
{
    char path[256];

    snprintf(path, sizeof path, "%s.%s", prefix, key);
    return asec_report_set_num(r, path, v);
}

#define TRYR(expr)                                                                     \
    do {                                                                               \
        int trc_ = (expr);                                                             \
        if (trc_ != ASEC_OK) {                                                         \
            status = cli_fail(trc_);                                                   \
            goto done;                                                                 \
        }                                                                              \
    } while (0)

/* One covariance-mechanism release at epsilon.  u is the (reduced) factor
 * of the matrix a_exact (may be NULL: then A^ is compared with u u^T). */
static int
run_cov(const struct args *a, double eps, size_t run, const asec_mat *u,
        const asec_mat *aref, const asec_mat *v, const asec_mat *attref, double delta_f,
        asec_rng *rng, asec_rng *mcrng, asec_report *rep, asec_afile *csv)
{
    char prefix[64], path[4096];
    size_t m_max = 0, m, n = u->rows, clamped = 0;
    double mu, dgdp, dmc, se, eta = NAN, eta_b, rel_max = NAN, rel_fro = NAN;
    double att_max = NAN, att_fro = NAN, lam[2];
    asec_mat f = {0, 0, 0, NULL}, ahat = {0, 0, 0, NULL}, att = {0, 0, 0, NULL};
    int status = EXIT_OK;

    snprintf(prefix, sizeof prefix, "results.runs.%zu", run);
    TRYR(asec_dp_attn_max_samples(&m_max, eps, a->delta, delta_f));
    m = a->samples != 0 ? a->samples : m_max;
    if (m > m_max || m == 0) {
        cli_error("epsilon %g: %zu samples exceed m_max = %zu for delta %g and Delta_F "
                  "%g (privacy budget)",
                  eps, m, m_max, a->delta, delta_f);
        return EXIT_NOPERM;
    }
    TRYR(asec_dp_attn_gdp_mu(&mu, delta_f, m));
    TRYR(asec_dp_attn_gdp_delta(&dgdp, delta_f, m, eps));
    // exact PLD at the rank-one neighbours lambda = 1 +- Delta_F (1 - Delta_F > 0)
    lam[0] = 1.0 + delta_f;
    TRYR(asec_dp_attn_pld_delta_mc(&dmc, &se, lam, 1, m, eps, a->draws, mcrng));
    if (delta_f < 1.0) {
        double d2, s2;

        lam[1] = 1.0 - delta_f;
        TRYR(asec_dp_attn_pld_delta_mc(&d2, &s2, lam + 1, 1, m, eps, a->draws, mcrng));
        if (d2 > dmc)
            dmc = d2, se = s2;
    }
    TRYR(asec_dp_attn_wishart_eta(&eta_b, u->cols, m, a->gamma));
    TRYR(asec_dp_attn_cov_sample(&f, &eta, u, m, rng));
    TRYR(asec_mat_alloc(&ahat, n, n));
    TRYR(asec_mat_gemm(&ahat, 1.0, &f, ASEC_TRANS, &f, ASEC_NOTRANS, 0.0));
    TRYR(asec_dp_attn_rel_error(&rel_max, &rel_fro, &ahat, aref));
    if (v != NULL) {
        TRYR(asec_mat_alloc(&att, n, v->cols));
        TRYR(asec_dp_attn_normalize(&att, &clamped, &f, v,
                                    max_row_sum_ratio_floor(&f, a->clamp_rel)));
        TRYR(asec_dp_attn_rel_error(&att_max, &att_fro, &att, attref));
    }
    TRYR(report_num(rep, prefix, "epsilon", eps));
    TRYR(report_num(rep, prefix, "samples", (double)m));
    TRYR(report_num(rep, prefix, "m_max", (double)m_max));
    TRYR(report_num(rep, prefix, "mu", mu));
    TRYR(report_num(rep, prefix, "delta_gdp_approx", dgdp));
    TRYR(report_num(rep, prefix, "delta_exact_mc", dmc));
    TRYR(report_num(rep, prefix, "delta_exact_mc_se", se));
    TRYR(report_num(rep, prefix, "eta", eta));
    TRYR(report_num(rep, prefix, "eta_bound", eta_b));
    TRYR(report_num(rep, prefix, "rel_err_max", rel_max));
    TRYR(report_num(rep, prefix, "rel_err_fro", rel_fro));
    if (v != NULL) {
        TRYR(report_num(rep, prefix, "att_rel_err_max", att_max));
        TRYR(report_num(rep, prefix, "att_rel_err_fro", att_fro));
        TRYR(report_num(rep, prefix, "clamped", (double)clamped));
    }
    TRYR(asec_afile_printf(csv, "%.17g,%zu,%zu,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,"
                                "%.17g,%.17g,%zu\n",
                           eps, m, m_max, mu, dgdp, dmc, eta, eta_b, rel_max, rel_fro,
                           att_max, att_fro, clamped));
    if (run == 0) {
        size_t shape[2] = {f.rows, f.cols};

        snprintf(path, sizeof path, "%s/factor.npy", a->outdir);
        TRYR(asec_io_npy_write(path, f.data, 2, shape, ASEC_IO_F64));
        if (v != NULL) {
            size_t s2[2] = {att.rows, att.cols};

            snprintf(path, sizeof path, "%s/att.npy", a->outdir);
            TRYR(asec_io_npy_write(path, att.data, 2, s2, ASEC_IO_F64));
        }
    }
    if (cli_verbosity > 0)
        fprintf(stderr,
                "%s: eps %g: m = %zu (m_max %zu), mu %.4g, delta GDP %.3g, exact %.3g "
                "+- %.1g, eta %.3g (bound %.3g), |A^-A|max/|A|max %.3g\n",
                cli_command(), eps, m, m_max, mu, dgdp, dmc, se, eta, eta_b, rel_max);
done:
    asec_mat_free(&f);
    asec_mat_free(&ahat);
    asec_mat_free(&att);
    return status;
}

static int
run_output(const struct args *a, double eps, size_t run, const asec_mat *q,
           const asec_mat *k, const asec_mat *v, double scale, asec_rng *rng,
           asec_report *rep, asec_afile *csv)
{
    char prefix[64], path[4096];
    size_t T = q->rows, dv = v->cols;
    asec_mat att = {0, 0, 0, NULL}, clean = {0, 0, 0, NULL};
    asec_noise_options no = ASEC_NOISE_OPTIONS_INIT;
    asec_dp_attn_out_result res;
    asec_acct *acct = NULL;
    asec_acct_result ar;
    double rmax = 0.0, rfro = 0.0, acct_eps = NAN;
    int status = EXIT_OK;

    memset(&res, 0, sizeof res);
    snprintf(prefix, sizeof prefix, "results.runs.%zu", run);
    TRYR(asec_mat_alloc(&att, T, dv));
    TRYR(asec_mat_alloc(&clean, T, dv));
    no.epsilon = isinf(eps) ? 1.0 : eps;
    no.delta = a->delta;
    TRYR(asec_acct_alloc(&acct, NULL));
    if (isinf(eps)) {
        // no noise: the clipped attention itself (utility reference)
        TRYR(asec_dp_attn_output_release(&att, &clean, &res, q, k, v, scale, a->rv, &no,
                                         rng, NULL));
        TRYR(asec_mat_copy(&att, &clean));
    } else {
        TRYR(asec_dp_attn_output_release(&att, &clean, &res, q, k, v, scale, a->rv, &no,
                                         rng, acct));
        TRYR(asec_acct_epsilon(acct, ASEC_ACCT_RDP, a->delta, &ar));
        acct_eps = ar.epsilon;
    }
    TRYR(asec_dp_attn_rel_error(&rmax, &rfro, &att, &clean));
    TRYR(report_num(rep, prefix, "epsilon", eps));
    TRYR(report_num(rep, prefix, "sensitivity", res.sensitivity));
    TRYR(report_num(rep, prefix, "clipped_values", (double)res.clipped));
    if (!isinf(eps)) {
        TRYR(report_num(rep, prefix, "noise.sigma", res.noise.scale));
        TRYR(report_num(rep, prefix, "noise.granularity", res.noise.granularity));
        TRYR(report_num(rep, prefix, "noise.sensitivity_eff", res.noise.sensitivity_eff));
        TRYR(report_num(rep, prefix, "noise.rho", res.noise.rho));
        TRYR(report_num(rep, prefix, "noise.epsilon", res.noise.epsilon));
        TRYR(report_num(rep, prefix, "accountant_epsilon_rdp", acct_eps));
    }
    TRYR(report_num(rep, prefix, "att_rel_err_max", rmax));
    TRYR(report_num(rep, prefix, "att_rel_err_fro", rfro));
    TRYR(asec_afile_printf(csv, "%.17g,%.17g,%.17g,%zu,%.17g,%.17g\n", eps,
                           res.sensitivity, isinf(eps) ? 0.0 : res.noise.scale,
                           res.clipped, rmax, rfro));
    if (run == 0) {
        size_t shape[2] = {T, dv};

        snprintf(path, sizeof path, "%s/att.npy", a->outdir);
        TRYR(asec_io_npy_write(path, att.data, 2, shape, ASEC_IO_F64));
    }
    if (cli_verbosity > 0)
        fprintf(stderr, "%s: eps %g: sigma %.4g, |Att^-Att|_F/|Att|_F %.3g\n",
                cli_command(), eps, isinf(eps) ? 0.0 : res.noise.scale, rfro);
done:
    asec_acct_free(acct);
    asec_mat_free(&att);
    asec_mat_free(&clean);
    return status;
}

/* ------------------------------------------------------------ downstream curve */

struct dp_hook {
    size_t layer;
    double eps, delta, rv, eps_head;
    asec_rng *rng;
    double *buf; /* 5 (T, HS): release, clean, q, k, v */
    size_t clipped, releases;
    asec_noise_result last;
};

/* Replace layer's attention output by the per-head output-perturbation
 * release; each head gets eps_head so that the NH heads of one example
 * compose (zCDP) to (eps, delta). */
static int
dp_hook_fn(void *ctx, size_t layer, double *out, double *att, const double *qkv,
           size_t B, size_t T, size_t C, size_t NH)
{
    struct dp_hook *h = ctx;
    size_t HS = C / NH;
    asec_noise_options no = ASEC_NOISE_OPTIONS_INIT;

    (void)att;
    if (layer != h->layer)
        return ASEC_OK;
    no.epsilon = h->eps_head;
    no.delta = h->delta;
    for (size_t b = 0; b < B; b++)
        for (size_t hd = 0; hd < NH; hd++) {
            const double *base = qkv + b * T * 3 * C + hd * HS;
            asec_mat o = asec_mat_view(h->buf, T, HS);
            asec_mat cl = asec_mat_view(h->buf + T * HS, T, HS);
            asec_mat q = asec_mat_view(h->buf + 2 * T * HS, T, HS);
            asec_mat k = asec_mat_view(h->buf + 3 * T * HS, T, HS);
            asec_mat v = asec_mat_view(h->buf + 4 * T * HS, T, HS);
            asec_dp_attn_out_result res;
            int rc;

            // this head's q, k, v (T, HS) out of [q | k | v] (T, 3C)
            for (size_t t = 0; t < T; t++) {
                memcpy(q.data + t * HS, base + t * 3 * C, HS * sizeof(double));
                memcpy(k.data + t * HS, base + t * 3 * C + C, HS * sizeof(double));
                memcpy(v.data + t * HS, base + t * 3 * C + 2 * C, HS * sizeof(double));
            }
            rc = asec_dp_attn_output_release(&o, &cl, &res, &q, &k, &v,
                                             1.0 / sqrt((double)HS), h->rv, &no, h->rng,
                                             NULL);
            if (rc != ASEC_OK)
                return rc;
            h->clipped += res.clipped;
            h->releases++;
            h->last = res.noise;
            for (size_t t = 0; t < T; t++)
                memcpy(out + (b * T + t) * C + hd * HS,
                       (isinf(h->eps) ? cl.data : o.data) + t * HS, HS * sizeof(double));
        }
    return ASEC_OK;
}

/* The per-head epsilon whose NH-fold zCDP composition gives eps at delta. */
static int
head_epsilon(double *out, double eps, double delta, size_t NH, size_t n, double sens)
{
    double lo = 0.0, hi = eps;
    asec_noise_options no = ASEC_NOISE_OPTIONS_INIT;
    asec_noise_result pr;

    no.sensitivity = sens;
    no.delta = delta;
    for (int it = 0; it < 60; it++) {
        double mid = 0.5 * (lo + hi), e;

        no.epsilon = mid;
        int rc = asec_noise_plan(&pr, &no, n);

        if (rc == ASEC_OK)
            rc = asec_noise_zcdp_epsilon(&e, (double)NH * pr.rho, delta);
        if (rc != ASEC_OK)
            return rc;
        if (e <= eps)
            lo = mid;
        else
            hi = mid;
    }
    *out = lo;
    return lo > 0.0 ? ASEC_OK : ASEC_EINVAL;
}

static double
accuracy(asec_model *m, const asec_data *d, size_t count, asec_model_attn_hook hook,
         void *ctx, int *rc_out)
{
    const asec_model_arch *A = asec_model_get_arch(m);
    size_t K = A->classes, per = d->image_h * d->image_w, chunk = 60, right = 0;
    double *logits = malloc(chunk * K * sizeof *logits);

    *rc_out = logits == NULL ? ASEC_ENOMEM : ASEC_OK;
    for (size_t s = 0; s < count && *rc_out == ASEC_OK; s += chunk) {
        size_t nb = count - s < chunk ? count - s : chunk;
        asec_model_batch b = {nb, 0, d->images + s * per, NULL, NULL, NULL};

        *rc_out = asec_model_forward_hook(m, NULL, NULL, logits, &b, hook, ctx);
        for (size_t i = 0; *rc_out == ASEC_OK && i < nb; i++) {
            size_t best = 0;

            for (size_t c = 1; c < K; c++)
                if (logits[i * K + c] > logits[i * K + best])
                    best = c;
            right += (int64_t)best == d->labels[s + i];
        }
    }
    free(logits);
    return (double)right / (double)count;
}

/* Plain (non-private) training on the digits training split: minibatch
 * Adam (Kingma and Ba 2015, beta1 0.9, beta2 0.999, eps 1e-8). */
static int
train_plain(asec_model *m, const asec_data *d, const struct args *a, asec_rng *rng)
{
    size_t P = asec_model_param_count(m), per = d->image_h * d->image_w, B = a->batch;
    double *x = malloc(B * per * sizeof *x), *theta = asec_model_params(m), loss = 0.0;
    double *mom = calloc(P, sizeof *mom), *vel = calloc(P, sizeof *vel);
    double b1t = 1.0, b2t = 1.0;
    int64_t *y = malloc(B * sizeof *y);
    double *g = asec_model_grads(m);
    asec_model_vec gv = {g, NULL, NULL};
    int rc = ASEC_OK;

    if (x == NULL || y == NULL || mom == NULL || vel == NULL)
        rc = ASEC_ENOMEM;
    cli_progress_begin("training", a->steps);
    for (size_t s = 0; rc == ASEC_OK && s < a->steps; s++) {
        asec_model_batch b = {B, 0, x, NULL, y, NULL};

        for (size_t i = 0; i < B; i++) {
            size_t j = (size_t)asec_rng_bounded(rng, d->n);

            memcpy(x + i * per, d->images + j * per, per * sizeof *x);
            y[i] = d->labels[j];
        }
        rc = asec_model_grad(m, &loss, &gv, &b);
        b1t *= 0.9;
        b2t *= 0.999;
        for (size_t p = 0; rc == ASEC_OK && p < P; p++) {
            mom[p] = 0.9 * mom[p] + 0.1 * g[p];
            vel[p] = 0.999 * vel[p] + 0.001 * g[p] * g[p];
            theta[p] -= a->lr * (mom[p] / (1.0 - b1t)) / (sqrt(vel[p] / (1.0 - b2t)) + 1e-8);
        }
        cli_progress_update(s + 1);
    }
    cli_progress_end();
    free(x);
    free(y);
    free(mom);
    free(vel);
    return rc;
}

static int
run_curve(const struct args *a, asec_rng *rng, asec_report *rep)
{
    asec_model *m = NULL;
    asec_data *train = NULL, *test = NULL;
    asec_rng *trng = NULL;
    asec_afile *csv = NULL, *dat = NULL;
    struct dp_hook h;
    const asec_model_arch *A;
    char path[4096];
    double base_acc;
    size_t count;
    int status = EXIT_OK, rc;

    memset(&h, 0, sizeof h);
    TRYR(asec_data_load(&test, cli_datadir(), "digits", "test"));
    if (a->model != NULL) {
        TRYR(asec_model_load(&m, a->model));
        TRYR(asec_report_add_input(rep, a->model));
    } else {
        asec_model_arch arch;

        TRYR(asec_model_arch_default(&arch, ASEC_MODEL_VIT));
        TRYR(asec_model_alloc(&m, &arch));
        TRYR(asec_rng_alloc_seeded(&trng, 1, "dp-attn/train"));
        asec_model_init_params(m, trng);
        TRYR(asec_data_load(&train, cli_datadir(), "digits", "train"));
        TRYR(train_plain(m, train, a, trng));
        snprintf(path, sizeof path, "%s/model.safetensors", a->outdir);
        TRYR(asec_model_save(m, path));
        TRYR(asec_report_set_str(rep, "results.model.trained", "plain Adam (not private), seed 1"));
        TRYR(asec_report_set_int(rep, "results.model.train_steps", (long long)a->steps));
        TRYR(asec_report_set_num(rep, "results.model.lr", a->lr));
    }
    A = asec_model_get_arch(m);
    if (A->kind != ASEC_MODEL_VIT || A->image_h != test->image_h
        || A->image_w != test->image_w) {
        cli_error("--curve needs a vit model for 8x8 digits");
        status = EXIT_DATAERR;
        goto done;
    }
    if (A->causal) {
        cli_error("--curve needs non-causal attention");
        status = EXIT_DATAERR;
        goto done;
    }
    if (a->layer >= A->layers) {
        status = cli_usage_error("--layer %zu: the model has %zu layers", a->layer,
                                 A->layers);
        goto done;
    }
    count = a->eval_n != 0 && a->eval_n < test->n ? a->eval_n : test->n;
    base_acc = accuracy(m, test, count, NULL, NULL, &rc);
    TRYR(rc);
    TRYR(asec_report_set_num(rep, "results.baseline_accuracy", base_acc));
    TRYR(asec_report_set_int(rep, "results.eval_images", (long long)count));
    TRYR(asec_report_set_int(rep, "results.layer", (long long)a->layer));
    TRYR(asec_report_set_num(rep, "results.value_bound", a->rv));
    TRYR(asec_report_set_str(rep, "results.privacy_unit",
                             "one token (patch) of one image's input to the layer; each "
                             "image's release of all heads is (epsilon, delta)-DP"));
    h.buf = malloc(5 * asec_model_tokens(m, 0) * (A->channels / A->heads) * sizeof(double));
    if (h.buf == NULL) {
        status = cli_fail(ASEC_ENOMEM);
        goto done;
    }
    h.layer = a->layer;
    h.delta = a->delta;
    h.rv = a->rv;
    h.rng = rng;
    snprintf(path, sizeof path, "%s/curve.csv", a->outdir);
    TRYR(asec_afile_open(&csv, path));
    TRYR(asec_afile_printf(csv, "epsilon,epsilon_per_head,sigma,accuracy,"
                                "baseline_accuracy,clipped_fraction\n"));
    snprintf(path, sizeof path, "%s/curve.dat", a->outdir);
    TRYR(asec_afile_open(&dat, path));
    TRYR(asec_afile_printf(dat, "# epsilon accuracy (inf written as 1e3)\n"));
    for (size_t i = 0; i < a->neps; i++) {
        size_t T = asec_model_tokens(m, 0), HS = A->channels / A->heads;
        double acc, cf;

        h.eps = a->eps[i];
        h.clipped = h.releases = 0;
        memset(&h.last, 0, sizeof h.last);
        if (isinf(h.eps))
            h.eps_head = 1.0; // noise is drawn but not used: clipping only
        else
            TRYR(head_epsilon(&h.eps_head, h.eps, a->delta, A->heads, T * HS,
                              2.0 * sqrt((double)T) * a->rv));
        acc = accuracy(m, test, count, dp_hook_fn, &h, &rc);
        TRYR(rc);
        cf = (double)h.clipped / ((double)h.releases * (double)T);
        {
            char p2[128];

            snprintf(p2, sizeof p2, "results.curve_points.%zu", i);
            TRYR(report_num(rep, p2, "epsilon", h.eps));
            TRYR(report_num(rep, p2, "epsilon_per_head", isinf(h.eps) ? INFINITY
                                                                      : h.eps_head));
            TRYR(report_num(rep, p2, "sigma", isinf(h.eps) ? 0.0 : h.last.scale));
            TRYR(report_num(rep, p2, "accuracy", acc));
            TRYR(report_num(rep, p2, "clipped_fraction", cf));
        }
        TRYR(asec_afile_printf(csv, "%.17g,%.17g,%.17g,%.17g,%.17g,%.17g\n", h.eps,
                               isinf(h.eps) ? INFINITY : h.eps_head,
                               isinf(h.eps) ? 0.0 : h.last.scale, acc, base_acc, cf));
        TRYR(asec_afile_printf(dat, "%.17g %.17g\n", isinf(h.eps) ? 1e3 : h.eps, acc));
        if (cli_verbosity > 0)
            fprintf(stderr, "%s: eps %g: accuracy %.4f (baseline %.4f), sigma %.4g\n",
                    cli_command(), h.eps, acc, base_acc, isinf(h.eps) ? 0.0 : h.last.scale);
    }
    TRYR(asec_afile_commit(csv));
    csv = NULL;
    TRYR(asec_afile_commit(dat));
    dat = NULL;
    {
        static const char gp[] =
            "# gnuplot script: accuracy against epsilon (curve.dat)\n"
            "set terminal pngcairo size 640,480\n"
            "set output 'curve.png'\n"
            "set logscale x\n"
            "set xlabel 'epsilon (1000 = no noise)'\n"
            "set ylabel 'test accuracy'\n"
            "set yrange [0:1]\n"
            "plot 'curve.dat' using 1:2 with linespoints title 'DP attention layer'\n";

        snprintf(path, sizeof path, "%s/curve.gp", a->outdir);
        TRYR(asec_afile_write_all(path, gp, sizeof gp - 1));
    }
done:
    asec_afile_abort(csv);
    asec_afile_abort(dat);
    free(h.buf);
    asec_model_free(m);
    asec_data_free(train);
    asec_data_free(test);
    asec_rng_free(trng);
    return status;
}

/* ------------------------------------------------------------ main */

static int
same_matrix(const asec_mat *a, const asec_mat *b)
{
    if (a->rows != b->rows || a->cols != b->cols)
        return 0;
    for (size_t i = 0; i < a->rows; i++)
        if (memcmp(asec_mat_at(a, i, 0), asec_mat_at(b, i, 0), a->cols * sizeof(double)))
            return 0;
    return 1;
}

int
cmd_defend_dp_attn(int argc, char **argv)
{
    struct args a;
    struct tensor tx = {0}, tq = {0}, tk = {0}, tv = {0}, ta = {0};
    asec_report *rep = NULL;
    asec_rng *rng = NULL, *mcrng = NULL;
    asec_afile *csv = NULL;
    asec_mat q, k, v = {0, 0, 0, NULL}, *vp = NULL;
    asec_mat kern = {0, 0, 0, NULL}, u0 = {0, 0, 0, NULL}, u = {0, 0, 0, NULL};
    asec_mat attref = {0, 0, 0, NULL}, phi = {0, 0, 0, NULL};
    double *cap = NULL, scale, delta_f = 0.0, lmin = NAN;
    char path[4096];
    int status, rc;

    status = parse_args(&a, argc, argv);
    if (status != 0)
        return status < 0 ? EXIT_OK : status;
    if ((rc = asec_report_alloc(&rep, "defend dp-attn", argc, argv)) != ASEC_OK)
        return cli_fail(rc);
    status = EXIT_OK;
    TRYR(a.have_seed ? asec_rng_alloc_seeded(&rng, a.seed, "dp-attn")
                     : asec_rng_alloc_secure(&rng));
    if (a.have_seed)
        cli_warn("seeded noise (--insecure-seed): the output is NOT a DP release");
    TRYR(asec_report_set_rng(rep, rng));
    TRYR(asec_afile_mkdirs(a.outdir));
    if (a.curve) {
        TRYR(asec_report_set_str(rep, "results.mechanism", "output"));
        status = run_curve(&a, rng, rep);
        goto finish;
    }
    // the inputs: q, k (and v) views
    if (a.x != NULL) {
        if ((status = load_mat(&tx, a.x, rep)) != EXIT_OK)
            goto done;
        q = k = tx.m;
    } else if (a.q != NULL) {
        if ((status = load_mat(&tq, a.q, rep)) != EXIT_OK
            || (status = load_mat(&tk, a.k, rep)) != EXIT_OK)
            goto done;
        q = tq.m;
        k = tk.m;
    } else if (a.matrix != NULL) {
        if ((status = load_mat(&ta, a.matrix, rep)) != EXIT_OK)
            goto done;
        q = k = ta.m;
    } else {
        asec_model *m = NULL;
        asec_data *test = NULL;
        const asec_model_arch *A;
        struct capture cp;
        asec_model_batch b;
        size_t T, HS;

        memset(&cp, 0, sizeof cp);
        TRYR(asec_model_load(&m, a.model));
        A = asec_model_get_arch(m);
        rc = asec_report_add_input(rep, a.model);
        if (rc == ASEC_OK && (A->kind != ASEC_MODEL_VIT || a.layer >= A->layers
                              || a.head >= A->heads)) {
            asec_model_free(m);
            status = cli_usage_error("--model: need a vit with layer %zu and head %zu",
                                     a.layer, a.head);
            goto done;
        }
        if (rc == ASEC_OK)
            rc = asec_data_load(&test, cli_datadir(), "digits", "test");
        if (rc == ASEC_OK && a.index >= test->n)
            rc = ASEC_EINVAL;
        T = asec_model_tokens(m, 0);
        HS = A->channels / A->heads;
        cap = calloc(3 * T * HS, sizeof *cap);
        if (rc == ASEC_OK && cap == NULL)
            rc = ASEC_ENOMEM;
        if (rc == ASEC_OK) {
            cp.layer = a.layer, cp.head = a.head;
            cp.q = cap, cp.k = cap + T * HS, cp.v = cap + 2 * T * HS;
            b.B = 1, b.T = 0, b.x = test->images + a.index * 64, b.tokens = NULL;
            b.labels = NULL, b.soft = NULL;
            rc = asec_model_forward_hook(m, NULL, NULL, NULL, &b, capture_hook, &cp);
        }
        asec_model_free(m);
        asec_data_free(test);
        if (rc == ASEC_EINVAL && cap != NULL && cp.T == 0) {
            status = cli_usage_error("--index %zu: the digits test split is smaller",
                                     a.index);
            goto done;
        }
        TRYR(rc);
        q = asec_mat_view(cp.q, T, HS);
        k = asec_mat_view(cp.k, T, HS);
        v = asec_mat_view(cp.v, T, HS);
        vp = &v;
        if (a.scale == 0.0)
            a.scale = 1.0 / sqrt((double)HS);
    }
    if (a.v != NULL) {
        if ((status = load_mat(&tv, a.v, rep)) != EXIT_OK)
            goto done;
        v = tv.m;
        vp = &v;
        if (v.rows != k.rows) {
            cli_error("values have %zu rows but there are %zu keys", v.rows, k.rows);
            status = EXIT_DATAERR;
            goto done;
        }
    }
    if (q.cols != k.cols) {
        cli_error("queries have %zu columns but keys have %zu", q.cols, k.cols);
        status = EXIT_DATAERR;
        goto done;
    }
    scale = a.scale != 0.0 ? a.scale : 1.0 / (double)q.cols;
    TRYR(asec_report_set_str(rep, "results.mechanism",
                             a.mech == MECH_COV ? "covariance" : "output"));
    TRYR(asec_report_set_num(rep, "results.scale", scale));
    TRYR(asec_report_set_num(rep, "config.delta", a.delta));
    snprintf(path, sizeof path, "%s/utility.csv", a.outdir);
    TRYR(asec_afile_open(&csv, path));
    if (a.mech == MECH_OUTPUT) {
        TRYR(asec_report_set_str(rep, "results.neighbours",
                                 "one token changed; value rows clipped to --value-bound; "
                                 "Delta = 2 sqrt(T) R_v (L2)"));
        TRYR(asec_report_set_str(rep, "results.noise",
                                 "exact discrete Gaussian on a power-of-two lattice"));
        TRYR(asec_afile_printf(csv, "epsilon,sensitivity,sigma,clipped_values,"
                                    "att_rel_err_max,att_rel_err_fro\n"));
        for (size_t i = 0; i < a.neps; i++)
            if ((status = run_output(&a, a.eps[i], i, &q, &k, vp, scale, rng, rep, csv))
                != EXIT_OK)
                goto done;
        goto commit;
    }
    // mechanism 1: Q = K is required (exp(s Q K^T) is PSD only then)
    if (a.matrix == NULL && !same_matrix(&q, &k)) {
        status = cli_usage_error("--mechanism=cov requires Q = K (the symmetric case, in "
                                 "which exp(s Q K^T) is PSD); use --mechanism=output for "
                                 "general Q and K");
        goto done;
    }
    if (vp != NULL && vp->rows != q.rows) {
        cli_error("values have %zu rows, the matrix is %zu x %zu", vp->rows, q.rows,
                  q.rows);
        status = EXIT_DATAERR;
        goto done;
    }
    TRYR(asec_mat_alloc(&kern, q.rows, q.rows));
    if (a.matrix != NULL) {
        TRYR(asec_mat_copy(&kern, &q));
        TRYR(asec_dp_attn_psd_factor(&u, &lmin, &kern));
    } else {
        double r2 = 0.0;

        TRYR(asec_dp_attn_kernel(&kern, &q, &q, scale));
        for (size_t i = 0; i < q.rows; i++)
            r2 = fmax(r2, asec_vec_dot(asec_mat_at(&q, i, 0), asec_mat_at(&q, i, 0),
                                       q.cols));
        if (a.degree == 0) {
            TRYR(asec_dp_attn_psd_factor(&u, &lmin, &kern));
            TRYR(asec_report_set_str(rep, "results.attention", "exact kernel"));
        } else {
            size_t r = 0;
            double amax, emax = 0.0;

            TRYR(asec_dp_attn_feature_dim(&r, q.cols, a.degree));
            TRYR(asec_mat_alloc(&phi, q.rows, r));
            TRYR(asec_dp_attn_taylor_features(&phi, &q, a.degree, scale));
            TRYR(asec_dp_attn_factor_reduce(&u, &phi, -1.0));
            TRYR(asec_mat_alloc(&u0, q.rows, q.rows));
            TRYR(asec_mat_gemm(&u0, 1.0, &phi, ASEC_NOTRANS, &phi, ASEC_TRANS, 0.0));
            amax = asec_mat_norm_max(&kern);
            for (size_t i = 0; i < q.rows * q.rows; i++)
                emax = fmax(emax, fabs(u0.data[i] - kern.data[i]));
            TRYR(asec_report_set_str(rep, "results.attention", "Taylor feature map"));
            TRYR(asec_report_set_int(rep, "results.degree", (long long)a.degree));
            TRYR(asec_report_set_int(rep, "results.feature_dim", (long long)r));
            TRYR(asec_report_set_num(rep, "results.taylor_bound",
                                     asec_dp_attn_taylor_bound(scale * r2, a.degree)));
            TRYR(asec_report_set_num(rep, "results.taylor_error_max", emax));
            TRYR(asec_report_set_num(rep, "results.taylor_error_rel", emax / amax));
            TRYR(asec_report_set_int(rep, "results.positivity_even_degree",
                                     a.degree % 2 == 0));
            TRYR(asec_report_set_num(rep, "results.max_token_norm_sq", r2));
            // the release estimates Phi Phi^T; utility is scored against exp(s X X^T)
        }
    }
    TRYR(asec_report_set_int(rep, "results.n", (long long)q.rows));
    TRYR(asec_report_set_int(rep, "results.rank", (long long)u.cols));
    if (!isnan(lmin))
        TRYR(asec_report_set_num(rep, "results.lambda_min_A", lmin));
    if (a.have_delta_f) {
        delta_f = a.delta_f;
        TRYR(asec_report_set_str(rep, "results.delta_f_source", "supplied"));
    } else {
        TRYR(asec_dp_attn_delta_f_token(&delta_f, q.rows, scale, a.radius, a.lambda_min));
        TRYR(asec_report_set_str(rep, "results.delta_f_source", "token-level bound"));
        TRYR(asec_report_set_num(rep, "results.assumption.lambda_min", a.lambda_min));
        TRYR(asec_report_set_num(rep, "results.assumption.radius", a.radius));
        if (cli_verbosity > 0)
            fprintf(stderr,
                    "%s: ASSUMPTION lambda_min(A) >= %g and ||x_i|| <= %g for every "
                    "token: Delta_F = %g\n",
                    cli_command(), a.lambda_min, a.radius, delta_f);
        if (!isnan(lmin) && lmin < a.lambda_min)
            TRYR(asec_report_warn(rep, "the assumption lambda_min >= %g does not hold for "
                                       "this input (lambda_min(A) = %g)",
                                  a.lambda_min, lmin));
    }
    TRYR(asec_report_set_num(rep, "results.delta_f", delta_f));
    TRYR(asec_report_set_str(rep, "results.neighbours",
                             "matrices with ||A^-1/2 A' A^-1/2 - I||_F <= Delta_F"));
    TRYR(asec_report_set_str(rep, "results.privacy_accounting",
                             "delta_gdp_approx: mu-GDP approximation mu = Delta_F "
                             "sqrt(m/2) (used for m_max; an approximation); "
                             "delta_exact_mc: exact privacy loss by Monte Carlo at the "
                             "rank-one neighbours lambda = 1 +- Delta_F"));
    TRYR(asec_report_set_int(rep, "results.mc_draws", (long long)a.draws));
    TRYR(asec_report_set_int(rep, "results.idealized_numerics", 1));
    if (vp != NULL) {
        TRYR(asec_mat_alloc(&attref, q.rows, vp->cols));
        TRYR(asec_dp_attn_output(&attref, NULL, &kern, vp, 1e-300));
    }
    TRYR(asec_rng_alloc_seeded(&mcrng, a.have_seed ? a.seed : 0, "dp-attn/pld-mc"));
    TRYR(asec_afile_printf(csv, "epsilon,samples,m_max,mu,delta_gdp_approx,"
                                "delta_exact_mc,eta,eta_bound,rel_err_max,rel_err_fro,"
                                "att_rel_err_max,att_rel_err_fro,clamped\n"));
    for (size_t i = 0; i < a.neps; i++)
        if ((status = run_cov(&a, a.eps[i], i, &u, &kern, vp, &attref, delta_f, rng, mcrng,
                              rep, csv))
            != EXIT_OK)
            goto done;
commit:
    TRYR(asec_afile_commit(csv));
    csv = NULL;
finish:
    if (status != EXIT_OK)
        goto done;
done:
    if (rep != NULL && (rc = asec_report_finish(rep, status)) == ASEC_OK) {
        snprintf(path, sizeof path, "%s/report.json", a.outdir);
        if (status == EXIT_OK || status == EXIT_NOPERM) {
            rc = asec_report_write(rep, path);
            if (rc != ASEC_OK && status == EXIT_OK)
                status = cli_fail(rc);
            if (status == EXIT_OK && a.json && asec_report_print(rep, stdout) != ASEC_OK)
                status = EXIT_IOERR;
        }
    }
    asec_afile_abort(csv);
    asec_mat_free(&kern);
    asec_mat_free(&u0);
    asec_mat_free(&u);
    asec_mat_free(&attref);
    asec_mat_free(&phi);
    asec_io_file_free(tx.f);
    asec_io_file_free(tq.f);
    asec_io_file_free(tk.f);
    asec_io_file_free(tv.f);
    asec_io_file_free(ta.f);
    free(cap);
    asec_rng_free(rng);
    asec_rng_free(mcrng);
    asec_report_free(rep);
    return status;
}
