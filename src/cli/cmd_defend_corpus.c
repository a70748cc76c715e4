/* cmd_defend_corpus.c - 'attnsec defend copyright --corpus': the copyright
 * objective on real text (issue #10, "Demonstration on real text";
 * attnsec-defend(1)).
 *
 * The instance, all fixed by the options and the seed:
 *   tokens     the kjv training split (its first --max-tokens tokens) and
 *              the test split, with the vocabulary restricted to ids
 *              < --vocab (the shipped ids are frequency ranks, so this is
 *              "<unk> + the most frequent V'-1 words"; rarer words become
 *              <unk>, id 0).
 *   documents  consecutive passages of --doc-len tokens of the training
 *              stream (256, the chunk length of the paper's experiment);
 *              a seeded random --copyright-fraction of them is marked
 *              copyrighted.
 *   features   x_i = [1, E_1[t_{i-1}], E_2[c_2], ..., E_k[c_k]] for
 *              k = --context: E_j are fixed, seeded Gaussian tables
 *              N(0, 1/e) of width e = --embed-dim; E_1 is indexed by the
 *              previous token, E_j (j >= 2) by a hash c_j of the j previous
 *              tokens modulo 16384.  No trained network is involved: the
 *              model is a log-linear k-gram model with random context
 *              codes, small enough to fit exactly by L-BFGS in seconds.
 *   model      W (V', 1 + k e): the multinomial copyright regression
 *              asec_copyright_lm_fit() for each gamma, from W = 0.
 *   metrics    tau = L_1 - L_2 (mean training cross-entropy, copyrighted
 *              minus other positions, without the gamma term); held-out
 *              perplexity exp(mean test cross-entropy) over the V'
 *              classes; the verbatim regeneration rate: the share of
 *              8-grams (no <unk> inside) of the copyrighted passages that
 *              greedy decoding reproduces from their own first k tokens
 *              (asec_copyright_regen()), and the same for the other
 *              training passages and the test passages as controls.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attnsec/attnsec.h"
#include "attnsec/copyright.h"
#include "attnsec/data.h"
#include "cli.h"
#include "commands.h"

#define MAX_GAMMA 64
/* Hashed rows per context order >= 2. */
#define HASH_ROWS 16384

static void
corpus_help(void)
{
    printf(
        "Usage: attnsec defend copyright --corpus [OPTION]... -o DIR\n"
        "Fit a next-token softmax regression on the shipped KJV corpus with and\n"
        "without the copyright term gamma / L_1 and report tau, held-out perplexity\n"
        "and the verbatim 8-gram regeneration rate of the copyrighted passages.\n"
        "\n"
        "      --corpus               run the corpus demonstration (required here)\n"
        "  -o, --output=DIR           write report.json, corpus.csv, corpus.dat and\n"
        "                               corpus.gp to DIR\n"
        "      --json                 also print report.json on standard output\n"
        "  -g, --gamma=LIST           copyright weights >= 0 (default: 0,1,2,4)\n"
        "      --copyright-fraction=F share of passages marked copyrighted, in (0, 1)\n"
        "                               (default: 0.25)\n"
        "      --doc-len=N            tokens per passage (\"document\") (default: 256)\n"
        "      --max-tokens=N         training tokens used, 0 for all (default: 8192)\n"
        "      --vocab=N              classes: <unk> + the N-1 most frequent words\n"
        "                               (default: 256, at most 2049)\n"
        "      --context=K            previous tokens in the features (default: 3)\n"
        "      --embed-dim=E          width of each random context code (default: 64)\n"
        "      --ngram=N              n-gram length for regeneration (default: 8)\n"
        "      --lambda=X             L2 weight 0.5 X ||W||^2 (default: 1e-4)\n"
        "      --beta-c=X             keep L_1 >= X along the path (default: 0)\n"
        "      --max-iter=N           L-BFGS iterations per fit (default: 200)\n"
        "  -s, --seed=N               seed for the embedding and the passage choice\n"
        "                               (default: 0)\n"
        "  -q, --quiet                no progress output\n"
        "  -v, --verbose              print each fit on standard error\n"
        "  -h, --help                 display this help and exit\n"
        "  -V, --version              output version information and exit\n"
        "\n"
        "The corpus is read from ATTNSEC_DATADIR (attnsec-data(1)).\n"
        "Exit status: 0 on success, 64 usage error, 65 numerical failure, 66 missing\n"
        "corpus, 73/74 output errors.  Full documentation: attnsec-defend(1).\n");
}

/* Greedy decoder context. */
struct lm_ctx {
    const double *w;   /* (V, d) */
    const double *emb; /* (V, e) */
    size_t V, k, e, d;
    double *x; /* (d) */
};

/* Row of table j (order j + 1) for the context ending at hist[-1]: the
 * previous token itself for order 1, else a hash of the j + 1 previous
 * tokens modulo HASH_ROWS. */
static size_t
ctx_row(const int64_t *hist, size_t j, size_t V)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)j;

    if (j == 0)
        return (size_t)hist[-1];
    for (size_t i = 0; i <= j; i++) {
        h ^= (uint64_t)hist[-1 - (ptrdiff_t)i] + 0x9e3779b97f4a7c15ULL;
        h *= 1099511628211ULL;
        h ^= h >> 29;
    }
    return V + (size_t)(h % HASH_ROWS);
}

static void
features(double *x, const double *emb, const int64_t *hist, size_t k, size_t e, size_t V)
{
    size_t rows = V + HASH_ROWS;

    x[0] = 1.0;
    for (size_t j = 0; j < k; j++)
        memcpy(x + 1 + j * e, emb + (j * rows + ctx_row(hist, j, V)) * e,
               e * sizeof(double));
}

static int
lm_next(void *vctx, const int64_t *history, size_t len, int64_t *next)
{
    struct lm_ctx *c = vctx;
    size_t best = 0;
    double bz = -INFINITY;

    if (len < c->k)
        return ASEC_EINVAL;
    features(c->x, c->emb, history + len, c->k, c->e, c->V);
    for (size_t v = 0; v < c->V; v++) {
        const double *wv = c->w + v * c->d;
        double z = 0.0;

        for (size_t j = 0; j < c->d; j++)
            z += wv[j] * c->x[j];
        if (z > bz) {
            bz = z;
            best = v;
        }
    }
    *next = (int64_t)best;
    return ASEC_OK;
}

/* Features and labels of positions k .. n-1 of toks. */
static void
build(double *x, int64_t *y, const int64_t *toks, size_t n, const double *emb, size_t k,
      size_t e, size_t V)
{
    size_t d = 1 + k * e;

    for (size_t i = k; i < n; i++) {
        features(x + (i - k) * d, emb, toks + i, k, e, V);
        y[i - k] = toks[i];
    }
}

static double
now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int
cmd_defend_copyright_corpus(int argc, char **argv)
{
    enum {
        OPT_CORPUS = 256,
        OPT_JSON,
        OPT_FRAC,
        OPT_DOCLEN,
        OPT_MAXTOK,
        OPT_VOCAB,
        OPT_CTX,
        OPT_EMB,
        OPT_NGRAM,
        OPT_LAMBDA,
        OPT_BETA,
        OPT_MAXIT
    };
    static const struct option longopts[] = {
        {"corpus", no_argument, NULL, OPT_CORPUS},
        {"output", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, OPT_JSON},
        {"gamma", required_argument, NULL, 'g'},
        {"copyright-fraction", required_argument, NULL, OPT_FRAC},
        {"doc-len", required_argument, NULL, OPT_DOCLEN},
        {"max-tokens", required_argument, NULL, OPT_MAXTOK},
        {"vocab", required_argument, NULL, OPT_VOCAB},
        {"context", required_argument, NULL, OPT_CTX},
        {"embed-dim", required_argument, NULL, OPT_EMB},
        {"ngram", required_argument, NULL, OPT_NGRAM},
        {"lambda", required_argument, NULL, OPT_LAMBDA},
        {"beta-c", required_argument, NULL, OPT_BETA},
        {"max-iter", required_argument, NULL, OPT_MAXIT},
        {"seed", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    const char *outdir = NULL, *datadir = cli_datadir();
    double gammas[MAX_GAMMA] = {0, 1, 2, 4};
    size_t ngamma = 4, doclen = 256, maxtok = 8192, V = 256, k = 3, e = 64, ngram = 8;
    double frac = 0.25, lambda = 1e-4, beta_c = 0.0;
    asec_copyright_lm_options lo = ASEC_COPYRIGHT_LM_OPTIONS_INIT;
    uint64_t seed = 0;
    int json = 0, status = EXIT_OK, rc, c;
    asec_data *dtrain = NULL, *dtest = NULL;
    asec_rng *rng = NULL;
    asec_report *rep = NULL;
    asec_afile *csv = NULL, *dat = NULL;
    int64_t *tr = NULL, *te = NULL, *ytr = NULL, *yte = NULL;
    double *emb = NULL, *xtr = NULL, *xte = NULL, *w = NULL;
    size_t *bounds = NULL, *tbounds = NULL, *perm = NULL;
    unsigned char *sel = NULL, *cptr = NULL, *cpte = NULL;
    char path[4096];

    lo.max_iter = 200;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+o:g:s:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_CORPUS:
            break;
        case 'o':
            outdir = optarg;
            break;
        case OPT_JSON:
            json = 1;
            break;
        case 'g': {
            char buf[1024], *save = NULL, *tok;

            if (strlen(optarg) >= sizeof buf)
                return cli_usage_error("--gamma: list too long");
            strcpy(buf, optarg);
            ngamma = 0;
            for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (ngamma == MAX_GAMMA)
                    return cli_usage_error("--gamma: more than %d values", MAX_GAMMA);
                if (cli_parse_double("--gamma", tok, 0.0, HUGE_VAL, &gammas[ngamma]) != 0)
                    return EXIT_USAGE;
                ngamma++;
            }
            if (ngamma == 0)
                return cli_usage_error("--gamma: empty list");
            break;
        }
        case OPT_FRAC:
            if (cli_parse_double("--copyright-fraction", optarg, 0.0, 1.0, &frac) != 0)
                return EXIT_USAGE;
            if (!(frac > 0.0 && frac < 1.0))
                return cli_usage_error("--copyright-fraction: %g is not in (0, 1)", frac);
            break;
        case OPT_DOCLEN:
            if (cli_parse_size("--doc-len", optarg, 16, 1000000, &doclen) != 0)
                return EXIT_USAGE;
            break;
        case OPT_MAXTOK:
            if (cli_parse_size("--max-tokens", optarg, 0, 100000000, &maxtok) != 0)
                return EXIT_USAGE;
            break;
        case OPT_VOCAB:
            if (cli_parse_size("--vocab", optarg, 2, 1000000, &V) != 0)
                return EXIT_USAGE;
            break;
        case OPT_CTX:
            if (cli_parse_size("--context", optarg, 1, 16, &k) != 0)
                return EXIT_USAGE;
            break;
        case OPT_EMB:
            if (cli_parse_size("--embed-dim", optarg, 1, 4096, &e) != 0)
                return EXIT_USAGE;
            break;
        case OPT_NGRAM:
            if (cli_parse_size("--ngram", optarg, 2, 64, &ngram) != 0)
                return EXIT_USAGE;
            break;
        case OPT_LAMBDA:
            if (cli_parse_double("--lambda", optarg, 0.0, HUGE_VAL, &lambda) != 0)
                return EXIT_USAGE;
            break;
        case OPT_BETA:
            if (cli_parse_double("--beta-c", optarg, 0.0, HUGE_VAL, &beta_c) != 0)
                return EXIT_USAGE;
            break;
        case OPT_MAXIT:
            if (cli_parse_size("--max-iter", optarg, 1, 100000, &lo.max_iter) != 0)
                return EXIT_USAGE;
            break;
        case 's':
            if (cli_parse_u64("--seed", optarg, &seed) != 0)
                return EXIT_USAGE;
            break;
        case 'q':
            cli_verbosity = 0;
            break;
        case 'v':
            cli_verbosity = 2;
            break;
        case 'h':
            corpus_help();
            return EXIT_OK;
        case 'V':
            return cli_print_version();
        default:
            if (optopt != 0 && optopt < 256)
                return cli_usage_error("unknown option '-%c'", optopt);
            return cli_usage_error("unknown option '%s' (with --corpus)",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (outdir == NULL)
        return cli_usage_error("--output is required");
    if (k >= ngram)
        return cli_usage_error("--context %zu must be smaller than --ngram %zu", k,
                               ngram);

    if ((rc = asec_data_load(&dtrain, datadir, "kjv", "train")) != ASEC_OK ||
        (rc = asec_data_load(&dtest, datadir, "kjv", "test")) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    if (V > dtrain->classes)
        V = dtrain->classes;
    size_t ntr = maxtok && maxtok < dtrain->n ? maxtok : dtrain->n, nte = dtest->n;
    size_t d = 1 + k * e, ndocs = ntr / doclen, ntdocs = nte / doclen;
    if (ndocs < 2 || ntdocs < 1) {
        cli_error("%zu training tokens make %zu passages of %zu; need at least 2", ntr,
                  ndocs, doclen);
        status = EXIT_USAGE;
        goto done;
    }
    ntr = ndocs * doclen; /* whole passages only */
    size_t ncp = (size_t)ceil(frac * (double)ndocs);
    if (ncp >= ndocs)
        ncp = ndocs - 1;
    size_t Ntr = ntr - k, Nte = nte - k;
    tr = malloc(ntr * sizeof *tr);
    te = malloc(nte * sizeof *te);
    ytr = malloc(Ntr * sizeof *ytr);
    yte = malloc(Nte * sizeof *yte);
    emb = malloc(k * (V + HASH_ROWS) * e * sizeof *emb);
    xtr = malloc(Ntr * d * sizeof *xtr);
    xte = malloc(Nte * d * sizeof *xte);
    w = malloc(V * d * sizeof *w);
    bounds = malloc((ndocs + 1) * sizeof *bounds);
    tbounds = malloc((ntdocs + 1) * sizeof *tbounds);
    perm = malloc(ndocs * sizeof *perm);
    sel = calloc(ndocs, 1);
    cptr = malloc(Ntr);
    cpte = calloc(Nte, 1);
    if (!tr || !te || !ytr || !yte || !emb || !xtr || !xte || !w || !bounds || !tbounds ||
        !perm || !sel || !cptr || !cpte) {
        cli_error("out of memory for %zu tokens with d = %zu", ntr, d);
        status = EXIT_TEMPFAIL;
        goto done;
    }
    for (size_t i = 0; i < ntr; i++)
        tr[i] = dtrain->tokens[i] < (int64_t)V ? dtrain->tokens[i] : 0;
    for (size_t i = 0; i < nte; i++)
        te[i] = dtest->tokens[i] < (int64_t)V ? dtest->tokens[i] : 0;
    for (size_t j = 0; j <= ndocs; j++)
        bounds[j] = j * doclen;
    for (size_t j = 0; j <= ntdocs; j++)
        tbounds[j] = j * doclen;

    if ((rc = asec_rng_alloc_seeded(&rng, seed, "defend/copyright/corpus")) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    for (size_t j = 0; j < ndocs; j++)
        perm[j] = j;
    for (size_t j = ndocs; j > 1; j--) {
        size_t r = (size_t)asec_rng_bounded(rng, j), t = perm[j - 1];

        perm[j - 1] = perm[r];
        perm[r] = t;
    }
    for (size_t j = 0; j < ncp; j++)
        sel[perm[j]] = 1;
    asec_rng_normal_fill(rng, emb, k * (V + HASH_ROWS) * e);
    for (size_t i = 0; i < k * (V + HASH_ROWS) * e; i++)
        emb[i] /= sqrt((double)e);
    build(xtr, ytr, tr, ntr, emb, k, e, V);
    build(xte, yte, te, nte, emb, k, e, V);
    size_t n1 = 0;
    for (size_t i = k; i < ntr; i++) {
        cptr[i - k] = sel[i / doclen];
        n1 += cptr[i - k];
    }

    if ((rc = asec_afile_mkdirs(outdir)) != ASEC_OK ||
        (rc = asec_report_alloc(&rep, "defend copyright", argc, argv)) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    snprintf(path, sizeof path, "%s/text/train_tokens.npy", datadir);
    rc = asec_report_add_input(rep, path);
    snprintf(path, sizeof path, "%s/text/test_tokens.npy", datadir);
    if (rc == ASEC_OK)
        rc = asec_report_add_input(rep, path);
    if (rc || (rc = asec_report_set_rng(rep, rng)) ||
        (rc = asec_report_set_str(rep, "config.mode", "corpus")) ||
        (rc = asec_report_set_str(rep, "config.corpus", "kjv")) ||
        (rc = asec_report_set_str(rep, "config.model",
                                  "multinomial logistic regression W (V', 1 + k e) on "
                                  "[1, E_1[t-1], E_2[hash(t-1,t-2)], ...], seeded "
                                  "N(0, 1/e) context codes; loss: mean token "
                                  "cross-entropy")) ||
        (rc = asec_report_set_str(rep, "config.document",
                                  "consecutive passages of doc_len training tokens")) ||
        (rc = asec_report_set_int(rep, "config.vocab", (long long)V)) ||
        (rc = asec_report_set_int(rep, "config.context", (long long)k)) ||
        (rc = asec_report_set_int(rep, "config.embed_dim", (long long)e)) ||
        (rc = asec_report_set_int(rep, "config.d", (long long)d)) ||
        (rc = asec_report_set_int(rep, "config.doc_len", (long long)doclen)) ||
        (rc = asec_report_set_int(rep, "config.train_tokens", (long long)ntr)) ||
        (rc = asec_report_set_int(rep, "config.test_tokens", (long long)nte)) ||
        (rc = asec_report_set_int(rep, "config.documents", (long long)ndocs)) ||
        (rc = asec_report_set_int(rep, "config.copyrighted_documents", (long long)ncp)) ||
        (rc = asec_report_set_num(rep, "config.copyright_fraction", frac)) ||
        (rc = asec_report_set_int(rep, "config.n1", (long long)n1)) ||
        (rc = asec_report_set_int(rep, "config.n2", (long long)(Ntr - n1))) ||
        (rc = asec_report_set_int(rep, "config.ngram", (long long)ngram)) ||
        (rc = asec_report_set_int(rep, "config.prefix", (long long)k)) ||
        (rc = asec_report_set_num(rep, "config.lambda", lambda)) ||
        (rc = asec_report_set_num(rep, "config.beta_c", beta_c)) ||
        (rc = asec_report_set_int(rep, "config.max_iter", (long long)lo.max_iter)) ||
        (rc = asec_report_set_str(rep, "config.tau_note",
                                  "tau = mean CE on copyrighted training positions "
                                  "minus mean CE on the other training positions, "
                                  "without the gamma term")) ||
        (rc = asec_report_set_str(rep, "config.regen_note",
                                  "share of n-grams (no <unk>) reproduced by greedy "
                                  "decoding from their own first k tokens"))) {
        status = cli_fail(rc);
        goto done;
    }
    for (size_t g = 0; g < ngamma; g++)
        if ((rc = asec_report_append_num(rep, "config.gamma", gammas[g])) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
    for (size_t j = 0; j < ndocs; j++)
        if (sel[j] && (rc = asec_report_append_num(rep, "config.copyrighted_passages",
                                                   (double)j)) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
    snprintf(path, sizeof path, "%s/corpus.csv", outdir);
    if ((rc = asec_afile_open(&csv, path)) != ASEC_OK ||
        (rc = asec_afile_printf(csv, "gamma,tau,L,L1,L2,test_ppl,regen_cp,regen_other,"
                                     "regen_test,ngrams_cp,ngrams_other,ngrams_test,"
                                     "iterations,status,grad_norm,min_L1_path,"
                                     "seconds\n")) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    snprintf(path, sizeof path, "%s/corpus.dat", outdir);
    if ((rc = asec_afile_open(&dat, path)) != ASEC_OK ||
        (rc = asec_afile_printf(dat, "# gamma tau test_ppl regen_cp regen_other "
                                     "regen_test\n")) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }

    unsigned char *other = malloc(ndocs);
    if (other == NULL) {
        status = EXIT_TEMPFAIL;
        goto done;
    }
    for (size_t j = 0; j < ndocs; j++)
        other[j] = !sel[j];
    cli_progress_begin("copyright corpus", ngamma);
    for (size_t g = 0; g < ngamma; g++) {
        asec_copyright_lm p = ASEC_COPYRIGHT_LM_INIT, pt = ASEC_COPYRIGHT_LM_INIT;
        asec_copyright_lm_result res;
        asec_copyright_losses tl;
        size_t h[3], t[3];
        double t0 = now_seconds();
        struct lm_ctx ctx = {w, emb, V, k, e, d, NULL};
        char js[1024];

        p.x = asec_mat_view(xtr, Ntr, d);
        p.y = ytr;
        p.cp = cptr;
        p.classes = V;
        p.gamma = gammas[g];
        p.lambda = lambda;
        p.beta_c = beta_c;
        memset(w, 0, V * d * sizeof *w);
        rc = asec_copyright_lm_fit(w, &res, &p, &lo);
        pt = p;
        pt.x = asec_mat_view(xte, Nte, d);
        pt.y = yte;
        pt.cp = cpte;
        pt.gamma = 0.0;
        if (rc == ASEC_OK)
            rc = asec_copyright_lm_eval(&tl, NULL, &pt, w);
        ctx.x = malloc(d * sizeof(double));
        if (ctx.x == NULL)
            rc = ASEC_ENOMEM;
        if (rc == ASEC_OK)
            rc = asec_copyright_regen(&h[0], &t[0], tr, ntr, bounds, ndocs, sel, ngram, k,
                                      0, lm_next, &ctx);
        if (rc == ASEC_OK)
            rc = asec_copyright_regen(&h[1], &t[1], tr, ntr, bounds, ndocs, other, ngram,
                                      k, 0, lm_next, &ctx);
        if (rc == ASEC_OK)
            rc = asec_copyright_regen(&h[2], &t[2], te, nte, tbounds, ntdocs, NULL, ngram,
                                      k, 0, lm_next, &ctx);
        free(ctx.x);
        if (rc != ASEC_OK) {
            cli_error("gamma %g: %s", gammas[g], asec_errmsg());
            free(other);
            status = cli_exit_status(rc);
            goto done;
        }
        double secs = now_seconds() - t0, ppl = exp(tl.l);
        double r0 = t[0] ? (double)h[0] / (double)t[0] : NAN;
        double r1 = t[1] ? (double)h[1] / (double)t[1] : NAN;
        double r2 = t[2] ? (double)h[2] / (double)t[2] : NAN;
        const char *st = asec_copyright_status_name(res.status);

        {
            char nb[15][32];
            const double v[15] = {gammas[g],
                                  res.losses.tau,
                                  res.losses.l,
                                  res.losses.l1,
                                  res.losses.l2,
                                  res.losses.l_cpr,
                                  tl.l,
                                  ppl,
                                  r0,
                                  r1,
                                  r2,
                                  res.grad_norm,
                                  res.min_l1,
                                  secs,
                                  NAN};

            for (size_t i = 0; i < 15; i++) /* JSON has no NaN: null */
                snprintf(nb[i], sizeof nb[i], isfinite(v[i]) ? "%.17g" : "null", v[i]);
            snprintf(js, sizeof js,
                     "{\"gamma\": %s, \"tau\": %s, \"L\": %s, \"L1\": %s, "
                     "\"L2\": %s, \"L_cpr\": %s, \"test_ce\": %s, "
                     "\"test_perplexity\": %s, \"regen_copyrighted\": %s, "
                     "\"regen_other_train\": %s, \"regen_test\": %s, "
                     "\"ngrams_copyrighted\": %zu, \"ngrams_other_train\": %zu, "
                     "\"ngrams_test\": %zu, \"hits_copyrighted\": %zu, "
                     "\"hits_other_train\": %zu, \"hits_test\": %zu, "
                     "\"iterations\": %zu, \"evaluations\": %zu, \"status\": \"%s\", "
                     "\"grad_norm\": %s, \"min_L1_path\": %s, \"seconds\": %s}",
                     nb[0], nb[1], nb[2], nb[3], nb[4], nb[5], nb[6], nb[7], nb[8], nb[9],
                     nb[10], t[0], t[1], t[2], h[0], h[1], h[2], res.iterations,
                     res.evaluations, st, nb[11], nb[12], nb[13]);
        }
        rc = asec_report_append_json(rep, "results.runs", js);
        if (rc == ASEC_OK)
            rc = asec_afile_printf(csv,
                                   "%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,"
                                   "%.17g,%zu,%zu,%zu,%zu,%s,%.17g,%.17g,%.6g\n",
                                   gammas[g], res.losses.tau, res.losses.l, res.losses.l1,
                                   res.losses.l2, ppl, r0, r1, r2, t[0], t[1], t[2],
                                   res.iterations, st, res.grad_norm, res.min_l1, secs);
        if (rc == ASEC_OK)
            rc = asec_afile_printf(dat, "%.17g %.17g %.17g %.17g %.17g %.17g\n",
                                   gammas[g], res.losses.tau, ppl, r0, r1, r2);
        if (rc == ASEC_OK && res.status == ASEC_COPYRIGHT_STALLED)
            rc = asec_report_warn(rep, "gamma %g: the line search stalled", gammas[g]);
        if (rc == ASEC_OK && res.status == ASEC_COPYRIGHT_MAX_ITER)
            rc = asec_report_warn(rep, "gamma %g: stopped at --max-iter (|grad| %.3g)",
                                  gammas[g], res.grad_norm);
        if (rc != ASEC_OK) {
            free(other);
            status = cli_fail(rc);
            goto done;
        }
        if (cli_verbosity >= 2)
            fprintf(stderr,
                    "attnsec defend copyright: gamma %-5g tau %.4f test ppl %.3f regen "
                    "cp %.4f (%zu/%zu) other %.4f test %.4f  %zu it %s %.1fs\n",
                    gammas[g], res.losses.tau, ppl, r0, h[0], t[0], r1, r2,
                    res.iterations, st, secs);
        cli_progress_update(g + 1);
    }
    cli_progress_end();
    free(other);

    snprintf(path, sizeof path, "%s/corpus.gp", outdir);
    {
        static const char gp[] =
            "# gnuplot script: attnsec defend copyright --corpus\n"
            "set terminal pngcairo size 1000,420\n"
            "set output 'corpus.png'\n"
            "set multiplot layout 1,2\n"
            "set xlabel 'gamma'\n"
            "set ylabel 'verbatim 8-gram regeneration rate'\n"
            "set key left bottom\n"
            "plot 'corpus.dat' using 1:4 with linespoints title 'copyrighted', \\\n"
            "     '' using 1:5 with linespoints title 'other training', \\\n"
            "     '' using 1:6 with linespoints title 'test'\n"
            "set ylabel 'tau / test perplexity'\n"
            "set ytics nomirror\n"
            "set y2tics\n"
            "set y2label 'test perplexity'\n"
            "set ylabel 'tau'\n"
            "set key left top\n"
            "plot 'corpus.dat' using 1:2 with linespoints title 'tau', \\\n"
            "     '' using 1:3 axes x1y2 with linespoints title 'test perplexity'\n"
            "unset multiplot\n";

        if ((rc = asec_afile_write_all(path, gp, sizeof gp - 1)) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
    }
    rc = asec_afile_commit(csv);
    csv = NULL;
    if (rc == ASEC_OK) {
        rc = asec_afile_commit(dat);
        dat = NULL;
    }
    snprintf(path, sizeof path, "%s/report.json", outdir);
    if (rc != ASEC_OK || (rc = asec_report_finish(rep, EXIT_OK)) != ASEC_OK ||
        (rc = asec_report_write(rep, path)) != ASEC_OK ||
        (json && (rc = asec_report_print(rep, stdout)) != ASEC_OK)) {
        status = cli_fail(rc);
        goto done;
    }
done:
    asec_afile_abort(csv);
    asec_afile_abort(dat);
    asec_report_free(rep);
    asec_rng_free(rng);
    asec_data_free(dtrain);
    asec_data_free(dtest);
    free(tr);
    free(te);
    free(ytr);
    free(yte);
    free(emb);
    free(xtr);
    free(xte);
    free(w);
    free(bounds);
    free(tbounds);
    free(perm);
    free(sel);
    free(cptr);
    free(cpte);
    return status;
}
