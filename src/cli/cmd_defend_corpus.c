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
 *   engine     a causal text transformer (asec_model(3); vocabulary V',
 *              --channels, --layers, --heads, MLP 4C, T = --context
 *              tokens, learned positions) trained for next-token
 *              prediction on the whole training stream (copyrighted
 *              passages included) by --engine-steps Adam steps on the
 *              engine's exact gradients (asec_copyright_engine_train()),
 *              then frozen.
 *   features   the context feature row of position i is [1, h_i], h_i the
 *              engine's final hidden state (after the final LayerNorm,
 *              before its head) for the T tokens before i
 *              (asec_copyright_engine_features()).
 *   model      W (V', C + 1): the head refitted as the multinomial
 *              copyright regression asec_copyright_lm_fit() for each
 *              gamma, from W = 0.
 *   metrics    tau = L_1 - L_2 (mean training cross-entropy, copyrighted
 *              minus other positions, without the gamma term); held-out
 *              perplexity exp(mean test cross-entropy) over the V'
 *              classes; the verbatim regeneration rate: the share of
 *              8-grams (no <unk> inside) of the copyrighted passages that
 *              greedy decoding reproduces from their own first T tokens
 *              (asec_copyright_regen()), and the same for the other
 *              training passages and the test passages as controls.
 *
 * Greedy decoding only ever continues a history that equals the true text
 * (it stops at the first wrong token), so every context it asks about is
 * a window of the training or test stream: the decoder finds its feature
 * row in a hash table of the stream windows, and computes the features
 * with the engine only for a context that is not there (none in practice).
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
#include "attnsec/model.h"
#include "cli.h"
#include "cmd_defend_copyright.h"
#include "commands.h"

static void
corpus_help(void)
{
    printf(
        "Usage: attnsec defend copyright --corpus [OPTION]... -o DIR\n"
        "Train a small causal transformer (the engine) on the shipped KJV corpus,\n"
        "freeze it, and refit its next-token head as a softmax regression on the\n"
        "engine's final hidden states, with and without the copyright term\n"
        "gamma / L_1; report tau, held-out perplexity and the verbatim 8-gram\n"
        "regeneration rate of the copyrighted passages.\n"
        "\n"
        "      --corpus               run the corpus demonstration (required here)\n"
        "  -o, --output=DIR           write report.json, report.txt, corpus.csv,\n"
        "                               corpus.dat, corpus.gp, engine.csv and\n"
        "                               engine.safetensors to DIR\n"
        "      --json                 also print report.json on standard output\n"
        "  -g, --gamma=LIST           copyright weights >= 0 (default: 0,0.5,1,2,4)\n"
        "      --copyright-fraction=F share of passages marked copyrighted, in (0, 1)\n"
        "                               (default: 0.25)\n"
        "      --doc-len=N            tokens per passage (\"document\") (default: 256)\n"
        "      --max-tokens=N         training tokens used, 0 for all (default: 8192)\n"
        "      --vocab=N              classes: <unk> + the N-1 most frequent words\n"
        "                               (default: 256, at most 2049)\n"
        "      --context=T            tokens the engine sees, and the decoding prefix\n"
        "                               (default: 5)\n"
        "      --ngram=N              n-gram length for regeneration (default: 8)\n"
        "Engine:\n"
        "      --channels=C           model width (default: 64)\n"
        "      --layers=L             transformer blocks (default: 2)\n"
        "      --heads=H              attention heads, must divide C (default: 4)\n"
        "      --engine-steps=N       Adam steps (default: 1000)\n"
        "      --engine-batch=B       windows of T + 1 tokens per step (default: 32)\n"
        "      --engine-lr=X          Adam step size (default: 0.003)\n"
        "Head fit:\n"
        "      --lambda=X             L2 weight 0.5 X ||W||^2 (default: 0.001)\n"
        "      --beta-c=X             keep L_1 >= X along the path (default: 0)\n"
        "      --max-iter=N           L-BFGS iterations per fit (default: 200)\n"
        "  -s, --seed=N               seed for the passage choice and the engine\n"
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

/* The windows of both streams, by content: an open-addressing table of
 * (stream, row) pairs; row r of a stream is the window tokens[r .. r+T)
 * and its feature row.  Slot value 0 is empty, else 1 + global index. */
struct win_table {
    size_t *slot;
    size_t mask;
    size_t T;
    const int64_t *tok[2]; /* the streams */
    const double *x[2];    /* their feature rows (rows[s], d) */
    size_t rows[2];
};

static uint64_t
win_hash(const int64_t *w, size_t T)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < T; i++) {
        h ^= (uint64_t)w[i] + 0x9e3779b97f4a7c15ULL;
        h *= 1099511628211ULL;
        h ^= h >> 29;
    }
    return h;
}

static const int64_t *
win_tokens(const struct win_table *t, size_t g)
{
    return g < t->rows[0] ? t->tok[0] + g : t->tok[1] + (g - t->rows[0]);
}

static int
win_build(struct win_table *t)
{
    size_t n = t->rows[0] + t->rows[1], cap = 16;

    while (cap < 2 * n)
        cap *= 2;
    t->slot = calloc(cap, sizeof *t->slot);
    if (t->slot == NULL)
        return -1;
    t->mask = cap - 1;
    for (size_t g = 0; g < n; g++) {
        const int64_t *w = win_tokens(t, g);
        size_t h = (size_t)win_hash(w, t->T) & t->mask;

        for (;; h = (h + 1) & t->mask) {
            if (t->slot[h] == 0) {
                t->slot[h] = g + 1;
                break;
            }
            if (memcmp(win_tokens(t, t->slot[h] - 1), w, t->T * sizeof *w) == 0)
                break; /* the same window: keep the first */
        }
    }
    return 0;
}

/* The feature row of window w, or NULL. */
static const double *
win_find(const struct win_table *t, const int64_t *w, size_t d)
{
    for (size_t h = (size_t)win_hash(w, t->T) & t->mask; t->slot[h] != 0;
         h = (h + 1) & t->mask) {
        size_t g = t->slot[h] - 1;

        if (memcmp(win_tokens(t, g), w, t->T * sizeof *w) == 0)
            return g < t->rows[0] ? t->x[0] + g * d : t->x[1] + (g - t->rows[0]) * d;
    }
    return NULL;
}

/* Greedy decoder context. */
struct lm_ctx {
    const double *w; /* head (V, d) */
    size_t V, T, d;
    const struct win_table *tab;
    asec_model *engine;
    double *x;     /* (d) scratch for a context not in the table */
    size_t misses; /* contexts computed by the engine */
};

static int
lm_next(void *vctx, const int64_t *history, size_t len, int64_t *next)
{
    struct lm_ctx *c = vctx;
    const int64_t *ctx = history + len - c->T;
    const double *x;
    size_t best = 0;
    double bz = -INFINITY;

    if (len < c->T)
        return ASEC_EINVAL;
    x = win_find(c->tab, ctx, c->d);
    if (x == NULL) {
        int rc = asec_copyright_engine_features(c->x, c->engine, ctx, c->T);

        if (rc != ASEC_OK)
            return rc;
        x = c->x;
        c->misses++;
    }
    for (size_t v = 0; v < c->V; v++) {
        const double *wv = c->w + v * c->d;
        double z = 0.0;

        for (size_t j = 0; j < c->d; j++)
            z += wv[j] * x[j];
        if (z > bz) {
            bz = z;
            best = v;
        }
    }
    *next = (int64_t)best;
    return ASEC_OK;
}

static double
now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One fit's numbers, kept for report.txt. */
struct corpus_run {
    double gamma, tau, l1, l2, test_ce, ppl, regen[3];
    size_t hits[3], total[3];
    asec_copyright_status status;
};

/* What the held-out and regeneration measures need. */
struct corpus_eval {
    asec_copyright_lm test; /* the test rows, gamma 0 */
    const int64_t *tok[2];  /* training and test streams */
    size_t ntok[2];
    const size_t *bounds[2]; /* passages of each stream */
    size_t ndocs[2];
    const unsigned char *sel[2]; /* copyrighted, other training passages */
    size_t ngram, T, V, d;
    const struct win_table *tab;
    asec_model *engine;
    double *xs; /* (d) scratch */
};

/* Test cross-entropy and perplexity, and the three regeneration rates
 * (copyrighted, other training, test passages) of head w (V, d). */
static int
corpus_measure(struct corpus_run *ru, size_t *misses, const struct corpus_eval *e,
               const double *w)
{
    struct lm_ctx ctx = {w, e->V, e->T, e->d, e->tab, e->engine, e->xs, 0};
    asec_copyright_losses tl;
    int rc = asec_copyright_lm_eval(&tl, NULL, &e->test, w);

    for (size_t i = 0; i < 3 && rc == ASEC_OK; i++) {
        size_t st = i == 2;

        rc = asec_copyright_regen(&ru->hits[i], &ru->total[i], e->tok[st], e->ntok[st],
                                  e->bounds[st], e->ndocs[st], st ? NULL : e->sel[i],
                                  e->ngram, e->T, 0, lm_next, &ctx);
        ru->regen[i] = ru->total[i] ? (double)ru->hits[i] / (double)ru->total[i] : NAN;
    }
    if (rc != ASEC_OK)
        return rc;
    ru->test_ce = tl.l;
    ru->ppl = exp(tl.l);
    *misses = ctx.misses;
    return ASEC_OK;
}

/* Write report.txt: the engine, the instance and the with/without table. */
static int
write_text(const char *path, const struct corpus_run *r, size_t nr,
           const struct corpus_run *eng, const char *arch,
           const asec_copyright_engine_result *er,
           const asec_copyright_engine_options *eo, size_t P, size_t ntr, size_t ndocs,
           size_t ncp, size_t n1, size_t N, size_t nte, size_t ngram, size_t T,
           double secs_engine)
{
    asec_afile *f = NULL;
    int rc = asec_afile_open(&f, path);

    if (rc != ASEC_OK)
        return rc;
#define P_(...)                                                                          \
    do {                                                                                 \
        if (rc == ASEC_OK)                                                               \
            rc = asec_afile_printf(f, __VA_ARGS__);                                      \
    } while (0)
    P_("Copyright-avoiding next-token regression on the KJV corpus\n"
       "(attnsec defend copyright --corpus; arXiv 2308.12247)\n\n");
    P_("Features:  engine: final hidden states of a causal text transformer\n"
       "           %s\n"
       "           %zu parameters; %zu Adam steps, batch %zu, lr %g (%.1f s CPU)\n"
       "           train loss (mean next-token cross-entropy) %.4f -> %.4f\n",
       arch, P, er->steps, eo->batch, eo->lr, secs_engine, er->loss_first, er->loss_last);
    P_("Data:      %zu training tokens in %zu passages, %zu copyrighted (%zu of %zu\n"
       "           positions); %zu test tokens\n",
       ntr, ndocs, ncp, n1, N, nte);
    P_("Metrics:   tau = mean CE(copyrighted) - mean CE(other), training positions,\n"
       "           without the gamma term; regen = share of %zu-grams reproduced by\n"
       "           greedy decoding from their first %zu tokens\n\n",
       ngram, T);
    P_("%8s %9s %9s %9s %9s %10s %10s %10s  %s\n", "gamma", "tau", "L1", "L2", "test_ppl",
       "regen_cp", "regen_oth", "regen_test", "status");
    P_("%8s %9.4f %9.4f %9.4f %9.3f %9.2f%% %9.2f%% %9.2f%%  %s\n", "engine", eng->tau,
       eng->l1, eng->l2, eng->ppl, 100 * eng->regen[0], 100 * eng->regen[1],
       100 * eng->regen[2], "(its own head)");
    for (size_t i = 0; i < nr; i++)
        P_("%8g %9.4f %9.4f %9.4f %9.3f %9.2f%% %9.2f%% %9.2f%%  %s\n", r[i].gamma,
           r[i].tau, r[i].l1, r[i].l2, r[i].ppl, 100 * r[i].regen[0], 100 * r[i].regen[1],
           100 * r[i].regen[2], asec_copyright_status_name(r[i].status));
    /* With and without: every gamma > 0 against gamma = 0. */
    size_t i0 = nr;
    for (size_t i = 0; i < nr && i0 == nr; i++)
        if (r[i].gamma == 0.0)
            i0 = i;
    if (i0 < nr) {
        P_("\nWith the copyright term against without (gamma 0), copyrighted %zu-grams "
           "regenerated\nand held-out perplexity:\n",
           ngram);
        for (size_t i = 0; i < nr; i++)
            if (r[i].gamma > 0.0)
                P_("  gamma %-6g regeneration %.2f%% -> %.2f%% (%zu -> %zu of %zu), "
                   "perplexity %.3f -> %.3f (%+.1f%%)\n",
                   r[i].gamma, 100 * r[i0].regen[0], 100 * r[i].regen[0], r[i0].hits[0],
                   r[i].hits[0], r[i0].total[0], r[i0].ppl, r[i].ppl,
                   100 * (r[i].ppl / r[i0].ppl - 1));
    }
#undef P_
    if (rc != ASEC_OK) {
        asec_afile_abort(f);
        return rc;
    }
    return asec_afile_commit(f);
}

int
cmd_defend_copyright_corpus(int argc, char **argv)
{
    enum {
        OPT_CORPUS = 256,
        OPT_FRAC,
        OPT_DOCLEN,
        OPT_MAXTOK,
        OPT_VOCAB,
        OPT_CTX,
        OPT_NGRAM,
        OPT_LAMBDA,
        OPT_CHANNELS,
        OPT_LAYERS,
        OPT_HEADS,
        OPT_ESTEPS,
        OPT_EBATCH,
        OPT_ELR
    };
    static const struct option longopts[] = {
        {"corpus", no_argument, NULL, OPT_CORPUS},
        {"copyright-fraction", required_argument, NULL, OPT_FRAC},
        {"doc-len", required_argument, NULL, OPT_DOCLEN},
        {"max-tokens", required_argument, NULL, OPT_MAXTOK},
        {"vocab", required_argument, NULL, OPT_VOCAB},
        {"context", required_argument, NULL, OPT_CTX},
        {"ngram", required_argument, NULL, OPT_NGRAM},
        {"lambda", required_argument, NULL, OPT_LAMBDA},
        {"channels", required_argument, NULL, OPT_CHANNELS},
        {"layers", required_argument, NULL, OPT_LAYERS},
        {"heads", required_argument, NULL, OPT_HEADS},
        {"engine-steps", required_argument, NULL, OPT_ESTEPS},
        {"engine-batch", required_argument, NULL, OPT_EBATCH},
        {"engine-lr", required_argument, NULL, OPT_ELR},
        COPYRIGHT_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0}};
    struct copyright_common co = {
        .gammas = {0, 0.5, 1, 2, 4}, .ngamma = 5, .max_iter = 200, .help = corpus_help};
    const char *datadir = cli_datadir();
    size_t doclen = 256, maxtok = 8192, V = 256, k = 5, ngram = 8;
    size_t C = 64, L = 2, NH = 4;
    double frac = 0.25, lambda = 1e-3;
    asec_copyright_lm_options lo = ASEC_COPYRIGHT_LM_OPTIONS_INIT;
    asec_copyright_engine_options eo = ASEC_COPYRIGHT_ENGINE_OPTIONS_INIT;
    asec_copyright_engine_result er;
    asec_model_arch arch;
    int status = EXIT_OK, rc, c;
    asec_data *dtrain = NULL, *dtest = NULL;
    asec_rng *rng = NULL;
    asec_report *rep = NULL;
    asec_model *engine = NULL;
    asec_afile *csv = NULL, *dat = NULL, *ecsv = NULL;
    int64_t *tr = NULL, *te = NULL;
    double *xtr = NULL, *xte = NULL, *w = NULL, *curve = NULL, *xs = NULL;
    size_t *bounds = NULL, *tbounds = NULL, *perm = NULL;
    unsigned char *sel = NULL, *other = NULL, *cptr = NULL, *cpte = NULL;
    struct win_table tab = {NULL, 0, 0, {NULL, NULL}, {NULL, NULL}, {0, 0}};
    struct corpus_run runs[COPYRIGHT_MAX_GAMMA];
    char path[4096], archjs[1024], archtxt[256];

    eo.steps = 1000;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+" COPYRIGHT_COMMON_SHORTOPTS, longopts,
                            NULL)) != -1) {
        switch (c) {
        case OPT_CORPUS:
            break;
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
            if (cli_parse_size("--context", optarg, 1, 64, &k) != 0)
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
        case OPT_CHANNELS:
            if (cli_parse_size("--channels", optarg, 1, 1024, &C) != 0)
                return EXIT_USAGE;
            break;
        case OPT_LAYERS:
            if (cli_parse_size("--layers", optarg, 1, 16, &L) != 0)
                return EXIT_USAGE;
            break;
        case OPT_HEADS:
            if (cli_parse_size("--heads", optarg, 1, 64, &NH) != 0)
                return EXIT_USAGE;
            break;
        case OPT_ESTEPS:
            if (cli_parse_size("--engine-steps", optarg, 0, 1000000, &eo.steps) != 0)
                return EXIT_USAGE;
            break;
        case OPT_EBATCH:
            if (cli_parse_size("--engine-batch", optarg, 1, 65536, &eo.batch) != 0)
                return EXIT_USAGE;
            break;
        case OPT_ELR:
            if (cli_parse_double("--engine-lr", optarg, 1e-12, 10.0, &eo.lr) != 0)
                return EXIT_USAGE;
            break;
        default:
            switch (copyright_common_option(&co, c, optarg, &status)) {
            case 1:
                break;
            case 0:
                return cli_option_error(argv, longopts, " (with --corpus)");
            default:
                return status;
            }
        }
    }
    if ((status = copyright_common_finish(&co, argc, argv)) != 0)
        return status;
    if (k >= ngram)
        return cli_usage_error("--context %zu must be smaller than --ngram %zu", k,
                               ngram);
    if (C % NH != 0)
        return cli_usage_error("--heads %zu does not divide --channels %zu", NH, C);
    lo.max_iter = co.max_iter;

    if ((rc = asec_data_load(&dtrain, datadir, "kjv", "train")) != ASEC_OK ||
        (rc = asec_data_load(&dtest, datadir, "kjv", "test")) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    if (V > dtrain->classes)
        V = dtrain->classes;
    size_t ntr = maxtok && maxtok < dtrain->n ? maxtok : dtrain->n, nte = dtest->n;
    size_t d = C + 1, ndocs = ntr / doclen, ntdocs = nte / doclen;
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
    /* Rows: row r is the context tokens[r .. r+k) and predicts tokens[r+k];
     * the features have one more row (the final context, no label). */
    size_t Ntr = ntr - k, Nte = nte - k;
    tr = malloc(ntr * sizeof *tr);
    te = malloc(nte * sizeof *te);
    xtr = malloc((Ntr + 1) * d * sizeof *xtr);
    xte = malloc((Nte + 1) * d * sizeof *xte);
    w = malloc(V * d * sizeof *w);
    xs = malloc(d * sizeof *xs);
    curve = malloc((eo.steps ? eo.steps : 1) * sizeof *curve);
    bounds = malloc((ndocs + 1) * sizeof *bounds);
    tbounds = malloc((ntdocs + 1) * sizeof *tbounds);
    perm = malloc(ndocs * sizeof *perm);
    sel = calloc(ndocs, 1);
    other = malloc(ndocs);
    cptr = malloc(Ntr);
    cpte = calloc(Nte, 1);
    if (!tr || !te || !xtr || !xte || !w || !xs || !curve || !bounds || !tbounds ||
        !perm || !sel || !other || !cptr || !cpte) {
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

    /* One seeded stream: the passage choice, the engine's initialisation,
     * its training batches, in that order. */
    if ((rc = asec_rng_alloc_seeded(&rng, co.seed, "defend/copyright/corpus")) !=
        ASEC_OK) {
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
    for (size_t j = 0; j < ndocs; j++)
        other[j] = !sel[j];
    size_t n1 = 0;
    for (size_t r = 0; r < Ntr; r++) {
        cptr[r] = sel[(r + k) / doclen];
        n1 += cptr[r];
    }

    /* The engine. */
    if ((rc = asec_model_arch_default(&arch, ASEC_MODEL_TEXT)) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    arch.vocab = arch.classes = V;
    arch.channels = C;
    arch.layers = L;
    arch.heads = NH;
    arch.mlp_hidden = 4 * C;
    arch.seq_len = k;
    arch.causal = 1;
    arch.pool = ASEC_MODEL_POOL_NONE;
    arch.pos = ASEC_MODEL_POS_LEARNED;
    if ((rc = asec_model_arch_to_json(archjs, sizeof archjs, &arch)) != ASEC_OK ||
        (rc = asec_model_alloc(&engine, &arch)) != ASEC_OK) {
        status = rc == ASEC_EINVAL ? (cli_error("%s", asec_errmsg()), EXIT_USAGE)
                                   : cli_fail(rc);
        goto done;
    }
    snprintf(archtxt, sizeof archtxt,
             "text, V %zu, C %zu, %zu layers, %zu heads, MLP %zu, T %zu, causal, "
             "learned positions",
             V, C, L, NH, 4 * C, k);
    asec_model_init_params(engine, rng);
    cli_progress_begin("engine", 1);
    double c0 = (double)clock() / CLOCKS_PER_SEC;
    if ((rc = asec_copyright_engine_train(engine, &er, curve, tr, ntr, &eo, rng)) !=
            ASEC_OK ||
        (rc = asec_copyright_engine_features(xtr, engine, tr, ntr)) != ASEC_OK ||
        (rc = asec_copyright_engine_features(xte, engine, te, nte)) != ASEC_OK) {
        cli_progress_end();
        status = cli_fail(rc);
        goto done;
    }
    double secs_engine = (double)clock() / CLOCKS_PER_SEC - c0;
    cli_progress_update(1);
    cli_progress_end();
    if (cli_verbosity >= 2)
        fprintf(stderr,
                "attnsec defend copyright: engine %zu parameters, %zu steps, loss %.4f "
                "-> %.4f, %.1fs CPU (with features)\n",
                asec_model_param_count(engine), er.steps, er.loss_first, er.loss_last,
                secs_engine);
    tab.T = k;
    tab.tok[0] = tr;
    tab.tok[1] = te;
    tab.x[0] = xtr;
    tab.x[1] = xte;
    tab.rows[0] = Ntr + 1;
    tab.rows[1] = Nte + 1;
    if (win_build(&tab) != 0) {
        cli_error("out of memory for the window table");
        status = EXIT_TEMPFAIL;
        goto done;
    }

    if ((status = copyright_report_begin(&rep, &co, rng, argc, argv)) != EXIT_OK)
        goto done;
    snprintf(path, sizeof path, "%s/text/train_tokens.npy", datadir);
    rc = asec_report_add_input(rep, path);
    snprintf(path, sizeof path, "%s/text/test_tokens.npy", datadir);
    if (rc == ASEC_OK)
        rc = asec_report_add_input(rep, path);
    if (rc || (rc = asec_report_set_str(rep, "config.mode", "corpus")) ||
        (rc = asec_report_set_str(rep, "config.corpus", "kjv")) ||
        (rc = asec_report_set_str(rep, "config.features", "engine")) ||
        (rc = asec_report_set_str(rep, "config.model",
                                  "multinomial logistic regression W (V', C + 1) on "
                                  "[1, h], h the frozen engine's final hidden state "
                                  "(after ln_f, before its head) for the T previous "
                                  "tokens; loss: mean token cross-entropy")) ||
        (rc = asec_report_set_json(rep, "config.engine.arch", archjs)) ||
        (rc = asec_report_set_int(rep, "config.engine.params",
                                  (long long)asec_model_param_count(engine))) ||
        (rc = asec_report_set_int(rep, "config.engine.steps", (long long)eo.steps)) ||
        (rc = asec_report_set_int(rep, "config.engine.batch", (long long)eo.batch)) ||
        (rc = asec_report_set_num(rep, "config.engine.lr", eo.lr)) ||
        (rc = asec_report_set_str(rep, "config.engine.optimizer",
                                  "Adam (beta1 0.9, beta2 0.999, eps 1e-8), exact "
                                  "gradients, uniform random windows of T + 1 tokens "
                                  "of the whole training stream")) ||
        (rc = asec_report_set_str(rep, "config.document",
                                  "consecutive passages of doc_len training tokens")) ||
        (rc = asec_report_set_int(rep, "config.vocab", (long long)V)) ||
        (rc = asec_report_set_int(rep, "config.context", (long long)k)) ||
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
        (rc = asec_report_set_str(rep, "config.tau_note",
                                  "tau = mean CE on copyrighted training positions "
                                  "minus mean CE on the other training positions, "
                                  "without the gamma term")) ||
        (rc = asec_report_set_str(rep, "config.regen_note",
                                  "share of n-grams (no <unk>) reproduced by greedy "
                                  "decoding from their own first T tokens")) ||
        (rc = asec_report_set_int(rep, "results.engine.steps", (long long)er.steps)) ||
        (rc = asec_report_set_num(rep, "results.engine.train_loss_first",
                                  er.loss_first)) ||
        (rc = asec_report_set_num(rep, "results.engine.train_loss_last", er.loss_last)) ||
        (rc = asec_report_set_num(rep, "results.engine.cpu_seconds", secs_engine))) {
        status = cli_fail(rc);
        goto done;
    }
    for (size_t j = 0; j < ndocs; j++)
        if (sel[j] && (rc = asec_report_append_num(rep, "config.copyrighted_passages",
                                                   (double)j)) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
    snprintf(path, sizeof path, "%s/engine.safetensors", co.outdir);
    if ((rc = asec_model_save(engine, path)) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    snprintf(path, sizeof path, "%s/engine.csv", co.outdir);
    if ((rc = asec_afile_open(&ecsv, path)) != ASEC_OK ||
        (rc = asec_afile_printf(ecsv, "step,train_loss\n")) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    for (size_t s = 0; s < er.steps && rc == ASEC_OK; s++)
        rc = asec_afile_printf(ecsv, "%zu,%.17g\n", s, curve[s]);
    if (rc == ASEC_OK) {
        rc = asec_afile_commit(ecsv);
        ecsv = NULL;
    }
    if (rc != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    snprintf(path, sizeof path, "%s/corpus.csv", co.outdir);
    if ((rc = asec_afile_open(&csv, path)) != ASEC_OK ||
        (rc = asec_afile_printf(csv, "gamma,tau,L,L1,L2,test_ppl,regen_cp,regen_other,"
                                     "regen_test,ngrams_cp,ngrams_other,ngrams_test,"
                                     "iterations,status,grad_norm,min_L1_path,"
                                     "seconds\n")) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    snprintf(path, sizeof path, "%s/corpus.dat", co.outdir);
    if ((rc = asec_afile_open(&dat, path)) != ASEC_OK ||
        (rc = asec_afile_printf(dat, "# gamma tau test_ppl regen_cp regen_other "
                                     "regen_test\n")) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }

    /* The measures, first for the engine's own head: W = [bias, weight]
     * in the regression's parametrisation, since x = [1, h]. */
    struct corpus_eval ev = {.tok = {tr, te},
                             .ntok = {ntr, nte},
                             .bounds = {bounds, tbounds},
                             .ndocs = {ndocs, ntdocs},
                             .sel = {sel, other},
                             .ngram = ngram,
                             .T = k,
                             .V = V,
                             .d = d,
                             .tab = &tab,
                             .engine = engine,
                             .xs = xs};
    struct corpus_run eng;
    size_t misses = 0;

    ev.test = (asec_copyright_lm)ASEC_COPYRIGHT_LM_INIT;
    ev.test.x = asec_mat_view(xte, Nte, d);
    ev.test.y = te + k;
    ev.test.cp = cpte;
    ev.test.classes = V;
    ev.test.lambda = lambda;
    {
        asec_model_tensor hw, hb;
        const double *th = asec_model_params(engine);
        asec_copyright_lm p = ev.test;
        asec_copyright_losses el;

        if ((rc = asec_model_tensor_find(engine, "head.weight", &hw)) != ASEC_OK ||
            (rc = asec_model_tensor_find(engine, "head.bias", &hb)) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
        for (size_t v = 0; v < V; v++) {
            w[v * d] = th[hb.offset + v];
            memcpy(w + v * d + 1, th + hw.offset + v * C, C * sizeof *w);
        }
        p.x = asec_mat_view(xtr, Ntr, d);
        p.y = tr + k;
        p.cp = cptr;
        memset(&eng, 0, sizeof eng);
        if ((rc = asec_copyright_lm_eval(&el, NULL, &p, w)) != ASEC_OK ||
            (rc = corpus_measure(&eng, &misses, &ev, w)) != ASEC_OK) {
            cli_error("the engine's head: %s", asec_errmsg());
            status = cli_exit_status(rc);
            goto done;
        }
        eng.gamma = NAN;
        eng.tau = el.tau;
        eng.l1 = el.l1;
        eng.l2 = el.l2;
        if ((rc = asec_report_set_num(rep, "results.engine.tau", el.tau)) ||
            (rc = asec_report_set_num(rep, "results.engine.L", el.l)) ||
            (rc = asec_report_set_num(rep, "results.engine.L1", el.l1)) ||
            (rc = asec_report_set_num(rep, "results.engine.L2", el.l2)) ||
            (rc = asec_report_set_num(rep, "results.engine.test_ce", eng.test_ce)) ||
            (rc = asec_report_set_num(rep, "results.engine.test_perplexity", eng.ppl)) ||
            (rc = asec_report_set_num(rep, "results.engine.regen_copyrighted",
                                      eng.regen[0])) ||
            (rc = asec_report_set_num(rep, "results.engine.regen_other_train",
                                      eng.regen[1])) ||
            (rc = asec_report_set_num(rep, "results.engine.regen_test", eng.regen[2]))) {
            status = cli_fail(rc);
            goto done;
        }
    }

    cli_progress_begin("copyright corpus", co.ngamma);
    for (size_t g = 0; g < co.ngamma; g++) {
        asec_copyright_lm p = ASEC_COPYRIGHT_LM_INIT;
        asec_copyright_lm_result res;
        struct corpus_run *ru = &runs[g];
        double t0 = now_seconds();
        char js[1400];

        p.x = asec_mat_view(xtr, Ntr, d);
        p.y = tr + k;
        p.cp = cptr;
        p.classes = V;
        p.gamma = co.gammas[g];
        p.lambda = lambda;
        p.beta_c = co.beta_c;
        memset(w, 0, V * d * sizeof *w);
        rc = asec_copyright_lm_fit(w, &res, &p, &lo);
        if (rc == ASEC_OK)
            rc = corpus_measure(ru, &misses, &ev, w);
        if (rc != ASEC_OK) {
            cli_progress_end();
            cli_error("gamma %g: %s", co.gammas[g], asec_errmsg());
            status = cli_exit_status(rc);
            goto done;
        }
        double secs = now_seconds() - t0;

        ru->gamma = co.gammas[g];
        ru->tau = res.losses.tau;
        ru->l1 = res.losses.l1;
        ru->l2 = res.losses.l2;
        ru->status = res.status;
        const char *st = asec_copyright_status_name(res.status);
        {
            char nb[14][32];
            const double v[14] = {ru->gamma,     res.losses.tau,
                                  res.losses.l,  res.losses.l1,
                                  res.losses.l2, res.losses.l_cpr,
                                  ru->test_ce,   ru->ppl,
                                  ru->regen[0],  ru->regen[1],
                                  ru->regen[2],  res.grad_norm,
                                  res.min_l1,    secs};

            for (size_t i = 0; i < 14; i++) /* JSON has no NaN: null */
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
                     "\"grad_norm\": %s, \"min_L1_path\": %s, \"engine_misses\": %zu, "
                     "\"seconds\": %s}",
                     nb[0], nb[1], nb[2], nb[3], nb[4], nb[5], nb[6], nb[7], nb[8], nb[9],
                     nb[10], ru->total[0], ru->total[1], ru->total[2], ru->hits[0],
                     ru->hits[1], ru->hits[2], res.iterations, res.evaluations, st,
                     nb[11], nb[12], misses, nb[13]);
        }
        rc = asec_report_append_json(rep, "results.runs", js);
        if (rc == ASEC_OK)
            rc = asec_afile_printf(csv,
                                   "%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,"
                                   "%.17g,%zu,%zu,%zu,%zu,%s,%.17g,%.17g,%.6g\n",
                                   ru->gamma, res.losses.tau, res.losses.l, res.losses.l1,
                                   res.losses.l2, ru->ppl, ru->regen[0], ru->regen[1],
                                   ru->regen[2], ru->total[0], ru->total[1], ru->total[2],
                                   res.iterations, st, res.grad_norm, res.min_l1, secs);
        if (rc == ASEC_OK)
            rc = asec_afile_printf(dat, "%.17g %.17g %.17g %.17g %.17g %.17g\n",
                                   ru->gamma, res.losses.tau, ru->ppl, ru->regen[0],
                                   ru->regen[1], ru->regen[2]);
        if (rc == ASEC_OK && res.status == ASEC_COPYRIGHT_STALLED)
            rc = asec_report_warn(rep, "gamma %g: the line search stalled", ru->gamma);
        if (rc == ASEC_OK && res.status == ASEC_COPYRIGHT_MAX_ITER)
            rc = asec_report_warn(rep, "gamma %g: stopped at --max-iter (|grad| %.3g)",
                                  ru->gamma, res.grad_norm);
        if (rc != ASEC_OK) {
            cli_progress_end();
            status = cli_fail(rc);
            goto done;
        }
        if (cli_verbosity >= 2)
            fprintf(stderr,
                    "attnsec defend copyright: gamma %-5g tau %.4f test ppl %.3f regen "
                    "cp %.4f (%zu/%zu) other %.4f test %.4f  %zu it %s %.1fs\n",
                    ru->gamma, res.losses.tau, ru->ppl, ru->regen[0], ru->hits[0],
                    ru->total[0], ru->regen[1], ru->regen[2], res.iterations, st, secs);
        cli_progress_update(g + 1);
    }
    cli_progress_end();

    snprintf(path, sizeof path, "%s/corpus.gp", co.outdir);
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
    snprintf(path, sizeof path, "%s/report.txt", co.outdir);
    if ((rc = write_text(path, runs, co.ngamma, &eng, archtxt, &er, &eo,
                         asec_model_param_count(engine), ntr, ndocs, ncp, n1, Ntr, nte,
                         ngram, k, secs_engine)) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    rc = asec_afile_commit(csv);
    csv = NULL;
    if (rc == ASEC_OK) {
        rc = asec_afile_commit(dat);
        dat = NULL;
    }
    snprintf(path, sizeof path, "%s/report.json", co.outdir);
    if (rc != ASEC_OK || (rc = asec_report_finish(rep, EXIT_OK)) != ASEC_OK ||
        (rc = asec_report_write(rep, path)) != ASEC_OK ||
        (co.json && (rc = asec_report_print(rep, stdout)) != ASEC_OK)) {
        status = cli_fail(rc);
        goto done;
    }
done:
    asec_afile_abort(csv);
    asec_afile_abort(dat);
    asec_afile_abort(ecsv);
    asec_report_free(rep);
    asec_rng_free(rng);
    asec_model_free(engine);
    asec_data_free(dtrain);
    asec_data_free(dtest);
    free(tab.slot);
    free(tr);
    free(te);
    free(xtr);
    free(xte);
    free(w);
    free(xs);
    free(curve);
    free(bounds);
    free(tbounds);
    free(perm);
    free(sel);
    free(other);
    free(cptr);
    free(cpte);
    return status;
}
