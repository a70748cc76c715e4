/* cmd_attack_dlg.c - 'attnsec attack dlg': gradient leakage (attnsec-attack(1),
 * asec_dlg(3)).
 *
 * Two modes: attack an observed gradient file (from 'attnsec model grad'),
 * or --simulate seeded instances of the ATTACKS.md section 7.1 family and
 * attack them, optionally over a grid of defense noise levels (the
 * defense curve of ATTACKS.md section 8.4).  The defenses are applied to
 * the observed gradient here, in the CLI layer (the attack module never
 * sees the defense code).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, strtok_r under -std=c11 */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attnsec/attnsec.h"
#include "attnsec/data.h"
#include "attnsec/dlg.h"
#include "attnsec/image.h"
#include "attnsec/io.h"
#include "attnsec/model.h"
#include "cli.h"
#include "commands.h"

#define MAX_SIGMAS 32
/* Record a report field; the first failure is kept in rc. */
#define REP(expr)                                                                      \
    do {                                                                               \
        if (rc == ASEC_OK)                                                             \
            rc = (expr);                                                               \
    } while (0)

static void
dlg_help(void)
{
    printf(
        "Usage: attnsec attack dlg [OPTION]... --model=FILE --gradient=FILE -o DIR\n"
        "  or:  attnsec attack dlg [OPTION]... --simulate -o DIR\n"
        "Recover a client's private inputs and labels from the gradient it shared\n"
        "(DLG, iDLG labels, analytic token span, L-BFGS then Levenberg-Marquardt).\n\n"
        "Input and output:\n"
        "  -m, --model=FILE        the model the gradient was computed on\n"
        "  -g, --gradient=FILE     the observed gradient (attnsec model grad)\n"
        "      --batch=B           examples in the batch (default: 1)\n"
        "      --tokens=T          tokens per example (default: the model's; 8 with\n"
        "                            --simulate)\n"
        "      --labels=FILE       known labels (.npy, (B)): skip label recovery\n"
        "      --targets=FILE      known attn-regression targets E (.npy, (B, T, C))\n"
        "      --truth=FILE        the true inputs (.npy) to score the recovery\n"
        "      --truth-labels=FILE the true labels (.npy) to score label recovery\n"
        "      --vocab=FILE        vocabulary (V, C) .npy: decode tokens by cosine\n"
        "  -o, --output=DIR        write report.json, runs.csv, x_recovered.npy, and\n"
        "                            for images recon_grid.png (originals | recovered)\n"
        "      --json              also print the report on standard output\n"
        "Simulation (seeded instances of ATTACKS.md 7.1):\n"
        "      --simulate          generate the model, the private batch and its\n"
        "                            gradient from --seed, then attack\n"
        "      --kind=KIND         attn-block (default), attn-regression, or vit (the\n"
        "                            default ViT on shipped digits test images)\n"
        "      --channels=D        model width d (default: 16)\n"
        "      --classes=K         classes (default: 4)\n"
        "      --sim-vocab=V       tokens are rows of a random (V, d) vocabulary\n"
        "                            (default: 0, tokens N(0, 1))\n"
        "      --instances=N       instances with seeds seed..seed+N-1 (default: 5)\n"
        "      --warm=EPS          first start at truth + EPS N(0, 1) (the strongest\n"
        "                            attacker; default: random starts only)\n"
        "Defense (applied to the observed gradient):\n"
        "      --sigma=LIST        noise levels, comma-separated (default: 0)\n"
        "      --noise=DIST        gauss (default) or laplace\n"
        "      --noise-mode=MODE   rel (|noise| = sigma |g|, default) or abs\n"
        "      --prune=FRAC        zero the smallest FRAC of gradient entries\n"
        "      --clip=C            per-example clipping to norm C (--simulate)\n"
        "Attack:\n"
        "      --loss=LOSS         euclid (default), cos, or both\n"
        "      --label-mode=MODE   auto (default), idlg, joint or known\n"
        "  -r, --restarts=N        random starts (default: 64; attn-regression:\n"
        "                            1024 up to 64 unknowns, fewer beyond)\n"
        "      --lbfgs-iters=N     L-BFGS iterations per start (default: 100)\n"
        "      --lm-iters=N        Levenberg-Marquardt iterations (default: 100)\n"
        "      --prior=W           norm prior, annealed to 0 (default: 0.1)\n"
        "      --init-std=S        scale of the random starts (default: 1)\n"
        "      --no-span           do not use the analytic token span\n"
        "      --alternate=WHEN    auto (default: for vit), yes or no: every other\n"
        "                            start matches the other loss, then polishes\n"
        "                            on the requested one\n"
        "      --box=LO,HI         box constraint for the inputs (default for vit:\n"
        "                            0,1, the digits' range; 'none': no box)\n"
        "      --tol=T             residual that ends the restarts (default: 1e-9)\n"
        "      --success=E         a run succeeds when the matched relative error\n"
        "                            is <= E (default: 1e-10)\n"
        "Reproducibility and reporting:\n"
        "  -s, --seed=N            seed (default: drawn from the OS and recorded)\n"
        "  -q, --quiet             no progress output\n"
        "  -v, --verbose           one line per run on standard error\n"
        "  -h, --help              display this help and exit\n"
        "  -V, --version           output version information and exit\n\n"
        "Exit status: 0 ok, 64 usage, 65 bad data (a gradient tensor missing or\n"
        "misshaped), 66 no input, 73/74 output errors.\n"
        "Full documentation: attnsec-attack(1), asec_dlg(3).\n");
}

enum {
    O_BATCH = 256, O_TOKENS, O_LABELS, O_TARGETS, O_TRUTH, O_TRUTHL, O_VOCAB, O_JSON,
    O_SIM, O_KIND, O_CHAN, O_CLASSES, O_SIMV, O_INST, O_WARM, O_SIGMA, O_NOISE, O_NMODE,
    O_PRUNE, O_CLIP, O_LOSS, O_LMODE, O_LBI, O_LMI, O_PRIOR, O_INIT, O_NOSPAN, O_BOX,
    O_TOL, O_SUCCESS, O_ALT
};

struct dlg_cfg {
    const char *model, *gradient, *labels, *targets, *truth, *truthl, *vocab, *out;
    int json, simulate, nospan, relative, verbose, seeded, losses[2], nloss, boxset;
    int rset; // --restarts given (else asec_dlg_suggest_restarts())
    asec_model_kind kind;
    size_t B, T, D, K, V, inst;
    double warm, sigma[MAX_SIGMAS], prune, clip, success;
    size_t nsigma;
    asec_dlg_noise noise;
    asec_dlg_options o;
    uint64_t seed;
    asec_data *digits; // --simulate --kind=vit: the shipped digits test split
};

/* One simulated or loaded instance. */
struct dlg_inst {
    asec_model *m;
    size_t P, nin, B, T;
    double *g, *x, *e, *vocab; // x, e, vocab may be NULL
    int64_t *y, *tok;           // may be NULL
    size_t V;
};

static void
inst_free(struct dlg_inst *in)
{
    asec_model_free(in->m);
    free(in->g);
    free(in->x);
    free(in->e);
    free(in->vocab);
    free(in->y);
    free(in->tok);
    memset(in, 0, sizeof *in);
}

static double
now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int
parse_list(const char *opt, const char *text, double *out, size_t cap, size_t *n)
{
    char buf[1024], *save = NULL, *tok;

    if (strlen(text) >= sizeof buf)
        return cli_usage_error("%s: list too long", opt);
    strcpy(buf, text);
    *n = 0;
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == cap)
            return cli_usage_error("%s: at most %zu values", opt, cap);
        if (cli_parse_double(opt, tok, 0.0, 1e6, &out[(*n)++]) != 0)
            return EXIT_USAGE;
    }
    if (*n == 0)
        return cli_usage_error("%s: empty list", opt);
    return EXIT_OK;
}

/* Read a .npy file as doubles; want elements (0: any; *count receives). */
static int
read_npy(const char *path, const char *what, size_t want, double **out, size_t *count)
{
    asec_io_file *f = NULL;
    const asec_io_tensor *t;
    int rc = asec_io_open(&f, path, ASEC_IO_NPY, ASEC_IO_LOAD_DOUBLE, NULL);

    if (rc != ASEC_OK)
        return cli_fail(rc);
    t = asec_io_file_tensor(f, 0);
    if (t == NULL || (want != 0 && t->nelem != want)) {
        cli_error("%s: %s has %zu elements, expected %zu", path, what,
                  t ? t->nelem : 0, want);
        asec_io_file_free(f);
        return EXIT_DATAERR;
    }
    *out = malloc((t->nelem ? t->nelem : 1) * sizeof(double));
    if (*out == NULL) {
        asec_io_file_free(f);
        return cli_fail(ASEC_ENOMEM);
    }
    memcpy(*out, t->data, t->nelem * sizeof(double));
    if (count)
        *count = t->nelem;
    asec_io_file_free(f);
    return EXIT_OK;
}

/* A seeded instance of the ATTACKS.md 7.1 family (or the attention
 * regression with known targets). */
static int
simulate(struct dlg_inst *in, const struct dlg_cfg *cf, uint64_t seed)
{
    asec_model_arch a;
    asec_rng *r = NULL;
    asec_model_batch b;
    asec_model_vec gv = {NULL, NULL, NULL};
    size_t n;
    int rc;

    memset(in, 0, sizeof *in);
    if ((rc = asec_model_arch_default(&a, cf->kind)) != ASEC_OK)
        return cli_fail(rc);
    if (cf->kind != ASEC_MODEL_VIT) {
        a.channels = cf->D;
        a.seq_len = cf->T;
    }
    if (cf->kind == ASEC_MODEL_ATTN_BLOCK)
        a.classes = cf->K;
    if ((rc = asec_model_alloc(&in->m, &a)) != ASEC_OK)
        return cli_fail(rc);
    if ((rc = asec_rng_alloc_seeded(&r, seed, "dlg-instance")) != ASEC_OK) {
        inst_free(in);
        return cli_fail(rc);
    }
    asec_model_init_params(in->m, r);
    in->B = cf->B;
    in->T = asec_model_tokens(in->m, cf->kind == ASEC_MODEL_VIT ? 0 : cf->T);
    in->P = asec_model_param_count(in->m);
    n = in->B * asec_model_input_size(in->m, cf->kind == ASEC_MODEL_VIT ? 0 : cf->T);
    in->nin = n;
    in->x = malloc(n * sizeof(double));
    in->e = malloc(n * sizeof(double));
    in->y = calloc(in->B, sizeof(int64_t));
    in->g = malloc(in->P * in->B * sizeof(double));
    if (!in->x || !in->e || !in->y || !in->g) {
        asec_rng_free(r);
        inst_free(in);
        return cli_fail(ASEC_ENOMEM);
    }
    if (cf->V > 0) {
        in->V = cf->V;
        in->vocab = malloc(cf->V * cf->D * sizeof(double));
        in->tok = malloc(in->B * in->T * sizeof(int64_t));
        if (!in->vocab || !in->tok) {
            asec_rng_free(r);
            inst_free(in);
            return cli_fail(ASEC_ENOMEM);
        }
        asec_rng_normal_fill(r, in->vocab, cf->V * cf->D);
        for (size_t i = 0; i < in->B * in->T; i++) {
            in->tok[i] = (int64_t)asec_rng_bounded(r, cf->V);
            memcpy(in->x + i * cf->D, in->vocab + (size_t)in->tok[i] * cf->D,
                   cf->D * sizeof(double));
        }
    } else if (cf->kind == ASEC_MODEL_VIT) {
        // B consecutive test images from a seeded position
        const asec_data *d = cf->digits;
        size_t HW = d->image_h * d->image_w, first = (size_t)(seed % d->n);

        for (size_t i = 0; i < in->B; i++) {
            memcpy(in->x + i * HW, d->images + ((first + i) % d->n) * HW,
                   HW * sizeof(double));
            in->y[i] = d->labels[(first + i) % d->n];
        }
    } else {
        asec_rng_normal_fill(r, in->x, n);
    }
    asec_rng_normal_fill(r, in->e, n);
    if (cf->kind != ASEC_MODEL_VIT)
        for (size_t i = 0; i < in->B; i++)
            in->y[i] = (int64_t)asec_rng_bounded(r, cf->K);
    asec_rng_free(r);
    memset(&b, 0, sizeof b);
    b.B = in->B;
    b.T = in->T;
    b.x = in->x;
    if (cf->kind == ASEC_MODEL_ATTN_REGRESSION)
        b.soft = in->e;
    else
        b.labels = in->y;
    if (cf->clip > 0.0) {
        rc = asec_model_grad_per_example(in->m, NULL, in->g, &b);
        if (rc == ASEC_OK) {
            double *mean = malloc(in->P * sizeof(double));

            rc = mean ? asec_dlg_defend_clip(mean, in->g, in->B, in->P, cf->clip)
                      : ASEC_ENOMEM;
            if (rc == ASEC_OK)
                memcpy(in->g, mean, in->P * sizeof(double));
            free(mean);
        }
    } else {
        gv.params = in->g;
        rc = asec_model_grad(in->m, NULL, &gv, &b);
    }
    if (rc != ASEC_OK) {
        inst_free(in);
        return cli_fail(rc);
    }
    if (cf->kind == ASEC_MODEL_ATTN_REGRESSION) {
        free(in->y);
        in->y = NULL;
    }
    return EXIT_OK;
}

static int
load_inst(struct dlg_inst *in, const struct dlg_cfg *cf, int64_t **known)
{
    int rc, st;
    size_t cnt;

    memset(in, 0, sizeof *in);
    *known = NULL;
    if ((rc = asec_model_load(&in->m, cf->model)) != ASEC_OK)
        return cli_fail(rc);
    in->P = asec_model_param_count(in->m);
    in->B = cf->B;
    in->T = asec_model_tokens(in->m, cf->T);
    in->nin = in->B * asec_model_input_size(in->m, cf->T);
    in->g = malloc(in->P * sizeof(double));
    if (in->g == NULL) {
        inst_free(in);
        return cli_fail(ASEC_ENOMEM);
    }
    if ((rc = asec_model_read_vector(in->m, cf->gradient, in->g)) != ASEC_OK) {
        inst_free(in);
        return cli_fail(rc == ASEC_EBADLEN || rc == ASEC_EINVAL ? ASEC_EFORMAT : rc);
    }
    if (cf->truth && (st = read_npy(cf->truth, "--truth", in->nin, &in->x, NULL)) != 0)
        goto fail;
    if (cf->targets &&
        (st = read_npy(cf->targets, "--targets", in->nin, &in->e, NULL)) != 0)
        goto fail;
    if (cf->vocab) {
        size_t C = asec_model_get_arch(in->m)->channels;

        if ((st = read_npy(cf->vocab, "--vocab", 0, &in->vocab, &cnt)) != 0)
            goto fail;
        if (cnt == 0 || cnt % C != 0) {
            cli_error("%s: a vocabulary must be (V, %zu)", cf->vocab, C);
            st = EXIT_DATAERR;
            goto fail;
        }
        in->V = cnt / C;
    }
    for (int k = 0; k < 2; k++) {
        const char *p = k ? cf->truthl : cf->labels;
        double *d = NULL;
        int64_t *l;

        if (p == NULL)
            continue;
        if ((st = read_npy(p, k ? "--truth-labels" : "--labels", in->B, &d, NULL)) != 0)
            goto fail;
        l = malloc(in->B * sizeof(int64_t));
        if (l == NULL) {
            free(d);
            st = cli_fail(ASEC_ENOMEM);
            goto fail;
        }
        for (size_t i = 0; i < in->B; i++)
            l[i] = (int64_t)d[i];
        free(d);
        if (k)
            in->y = l;
        else
            *known = l;
    }
    return EXIT_OK;
fail:
    free(*known);
    *known = NULL;
    inst_free(in);
    return st;
}

/* Metrics of one run. */
struct run {
    double sigma, raw, matched, tok_acc, label_acc, psnr, seconds, predicted;
    int loss, success;
    size_t index;
    uint64_t seed;
};

static int
score(struct run *ru, const struct dlg_inst *in, const asec_dlg_result *res, size_t C,
      int images)
{
    ru->raw = ru->matched = ru->tok_acc = ru->label_acc = ru->psnr = NAN;
    if (in->x != NULL) {
        int rc = images ? asec_dlg_rel_error(&ru->raw, NULL, NULL, res->x, in->x, 1,
                                             in->nin, 1)
                        : asec_dlg_rel_error(&ru->raw, &ru->matched, NULL, res->x, in->x,
                                             in->B, in->T, C);
        if (rc != ASEC_OK)
            return rc;
        if (images) {
            ru->matched = ru->raw;
            ru->psnr = asec_dlg_psnr(res->x, in->x, in->nin, 1.0);
        }
    }
    if (in->vocab != NULL && !images) {
        size_t N = in->B * in->T, ok = 0;
        int64_t *ids = malloc(2 * N * sizeof(int64_t));

        if (ids == NULL)
            return ASEC_ENOMEM;
        if (asec_dlg_decode(ids, res->x, N, C, in->vocab, in->V) == ASEC_OK) {
            const int64_t *truth = in->tok;

            if (truth == NULL && in->x != NULL &&
                asec_dlg_decode(ids + N, in->x, N, C, in->vocab, in->V) == ASEC_OK)
                truth = ids + N;
            if (truth != NULL) {
                // position-free: count multiset overlap per sequence
                for (size_t b = 0; b < in->B; b++) {
                    size_t T = in->T;

                    for (size_t i = 0; i < T; i++)
                        for (size_t j = 0; j < T; j++)
                            if (truth[b * T + j] >= 0 && ids[b * T + i] == truth[b * T + j]) {
                                ok++;
                                ids[b * T + i] = -1;
                                break;
                            }
                }
                ru->tok_acc = (double)ok / (double)N;
            }
        }
        free(ids);
    }
    if (in->y != NULL && res->labels != NULL) {
        size_t ok = 0;

        for (size_t b = 0; b < in->B; b++)
            ok += res->labels[b] == in->y[b];
        ru->label_acc = (double)ok / (double)in->B;
    }
    return ASEC_OK;
}

static int
run_one(struct run *ru, asec_dlg_result **resp, struct dlg_inst *in,
        const struct dlg_cfg *cf, const int64_t *known, double sigma, int loss,
        asec_rng *rng, asec_report *rep)
{
    asec_dlg_options o = cf->o;
    asec_dlg_problem pb;
    double *g = malloc(in->P * sizeof(double)), *init = NULL, t0;
    const asec_model_arch *a = asec_model_get_arch(in->m);
    char js[32];
    int rc;

    if (g == NULL)
        return ASEC_ENOMEM;
    memcpy(g, in->g, in->P * sizeof(double));
    rc = asec_dlg_defend_noise(g, in->P, sigma, cf->relative, cf->noise, rng);
    if (rc == ASEC_OK && cf->prune > 0.0)
        rc = asec_dlg_defend_prune(g, in->P, cf->prune);
    if (rc == ASEC_OK && cf->warm > 0.0 && in->x != NULL) {
        init = malloc(in->nin * sizeof(double));
        if (init == NULL)
            rc = ASEC_ENOMEM;
        else
            for (size_t i = 0; i < in->nin; i++)
                init[i] = in->x[i] + cf->warm * asec_rng_normal(rng);
    }
    if (rc != ASEC_OK) {
        free(g);
        free(init);
        return rc;
    }
    o.loss = (asec_dlg_loss)loss;
    if (a->kind == ASEC_MODEL_VIT && !cf->boxset) {
        o.box_lo = 0.0; // images: the shipped digits' range
        o.box_hi = 1.0;
    }
    pb.B = in->B;
    pb.T = in->T;
    pb.grad = g;
    pb.labels = known;
    pb.soft = in->e != NULL && a->kind == ASEC_MODEL_ATTN_REGRESSION ? in->e : NULL;
    pb.init = init;
    t0 = now_seconds();
    rc = asec_dlg_attack(resp, in->m, &pb, &o, rng);
    ru->seconds = now_seconds() - t0;
    free(g);
    free(init);
    if (rc != ASEC_OK)
        return rc;
    ru->sigma = sigma;
    ru->loss = loss;
    rc = score(ru, in, *resp, a->channels, a->kind == ASEC_MODEL_VIT);
    if (rc != ASEC_OK)
        return rc;
    ru->success = isfinite(ru->matched) && ru->matched <= cf->success;
    // linearised prediction sqrt(s^2 tr((J^T J)^-1)) / |x| of the error,
    // s the per-entry noise standard deviation (MATH.md section 3.2)
    ru->predicted = NAN;
    if (in->x != NULL) {
        double s = cf->relative ? sigma * asec_vec_norm2(in->g, in->P) / sqrt((double)in->P)
                                : sigma;

        ru->predicted = sqrt(s * s * (*resp)->noise_gain) / asec_vec_norm2(in->x, in->nin);
    }
    snprintf(js, sizeof js, "r%04zu", ru->index);
    {
        const asec_dlg_result *R = *resp;
        const struct {
            const char *k;
            double v;
        } nums[] = {{"sigma", sigma}, {"rel_err", ru->raw}, {"rel_err_matched", ru->matched},
                    {"tok_acc", ru->tok_acc}, {"label_acc", ru->label_acc},
                    {"psnr_db", ru->psnr}, {"residual", R->residual},
                    {"matching_loss", R->loss}, {"sigma_min", R->sigma_min},
                    {"cond", R->cond}, {"noise_gain", R->noise_gain},
                    {"predicted_rel_err", ru->predicted}, {"wall_seconds", ru->seconds}};
        const struct {
            const char *k;
            size_t v;
        } ints[] = {{"seed", (size_t)ru->seed}, {"evals", R->evals}, {"jvps", R->jvps},
                    {"lm_iterations", R->lm_iters}, {"starts", R->starts},
                    {"unknowns", R->unknowns}, {"equations", R->equations},
                    {"span_rank", R->span_rank}};
        char key[160];

        for (size_t i = 0; rc == ASEC_OK && i < sizeof nums / sizeof nums[0]; i++) {
            snprintf(key, sizeof key, "results.runs.%s.%s", js, nums[i].k);
            rc = asec_report_set_num(rep, key, nums[i].v);
        }
        for (size_t i = 0; rc == ASEC_OK && i < sizeof ints / sizeof ints[0]; i++) {
            snprintf(key, sizeof key, "results.runs.%s.%s", js, ints[i].k);
            rc = asec_report_set_int(rep, key, (long long)ints[i].v);
        }
        snprintf(key, sizeof key, "results.runs.%s.loss", js);
        if (rc == ASEC_OK)
            rc = asec_report_set_str(rep, key, asec_dlg_loss_name(o.loss));
        snprintf(key, sizeof key, "results.runs.%s.label_mode", js);
        if (rc == ASEC_OK)
            rc = asec_report_set_str(rep, key, asec_dlg_labels_name(R->label_mode));
        snprintf(key, sizeof key, "results.runs.%s.success", js);
        if (rc == ASEC_OK)
            rc = asec_report_set_bool(rep, key, ru->success);
        snprintf(key, sizeof key, "results.runs.%s.converged", js);
        if (rc == ASEC_OK)
            rc = asec_report_set_bool(rep, key, R->converged);
        if (rc != ASEC_OK)
            return rc;
    }
    return ASEC_OK;
}

static int
cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double
median(double *v, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]))
            v[k++] = v[i];
    if (k == 0)
        return NAN;
    qsort(v, k, sizeof(double), cmp_dbl);
    return k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
}

static int
parse_args(struct dlg_cfg *cf, int argc, char **argv)
{
    static const struct option lo[] = {
        {"model", required_argument, NULL, 'm'},
        {"gradient", required_argument, NULL, 'g'},
        {"batch", required_argument, NULL, O_BATCH},
        {"tokens", required_argument, NULL, O_TOKENS},
        {"labels", required_argument, NULL, O_LABELS},
        {"targets", required_argument, NULL, O_TARGETS},
        {"truth", required_argument, NULL, O_TRUTH},
        {"truth-labels", required_argument, NULL, O_TRUTHL},
        {"vocab", required_argument, NULL, O_VOCAB},
        {"output", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, O_JSON},
        {"simulate", no_argument, NULL, O_SIM},
        {"kind", required_argument, NULL, O_KIND},
        {"channels", required_argument, NULL, O_CHAN},
        {"classes", required_argument, NULL, O_CLASSES},
        {"sim-vocab", required_argument, NULL, O_SIMV},
        {"instances", required_argument, NULL, O_INST},
        {"warm", required_argument, NULL, O_WARM},
        {"sigma", required_argument, NULL, O_SIGMA},
        {"noise", required_argument, NULL, O_NOISE},
        {"noise-mode", required_argument, NULL, O_NMODE},
        {"prune", required_argument, NULL, O_PRUNE},
        {"clip", required_argument, NULL, O_CLIP},
        {"loss", required_argument, NULL, O_LOSS},
        {"label-mode", required_argument, NULL, O_LMODE},
        {"restarts", required_argument, NULL, 'r'},
        {"lbfgs-iters", required_argument, NULL, O_LBI},
        {"lm-iters", required_argument, NULL, O_LMI},
        {"prior", required_argument, NULL, O_PRIOR},
        {"init-std", required_argument, NULL, O_INIT},
        {"no-span", no_argument, NULL, O_NOSPAN},
        {"alternate", required_argument, NULL, O_ALT},
        {"box", required_argument, NULL, O_BOX},
        {"tol", required_argument, NULL, O_TOL},
        {"success", required_argument, NULL, O_SUCCESS},
        {"seed", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int c, rc;

    memset(cf, 0, sizeof *cf);
    asec_dlg_options_default(&cf->o);
    cf->kind = ASEC_MODEL_ATTN_BLOCK;
    cf->B = 1;
    cf->D = 16;
    cf->K = 4;
    cf->inst = 5;
    cf->relative = 1;
    cf->nsigma = 1;
    cf->success = 1e-10;
    cf->losses[0] = ASEC_DLG_EUCLID;
    cf->nloss = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:g:o:r:s:qvhV", lo, NULL)) != -1) {
        rc = 0;
        switch (c) {
        case 'm': cf->model = optarg; break;
        case 'g': cf->gradient = optarg; break;
        case 'o': cf->out = optarg; break;
        case O_LABELS: cf->labels = optarg; break;
        case O_TARGETS: cf->targets = optarg; break;
        case O_TRUTH: cf->truth = optarg; break;
        case O_TRUTHL: cf->truthl = optarg; break;
        case O_VOCAB: cf->vocab = optarg; break;
        case O_JSON: cf->json = 1; break;
        case O_SIM: cf->simulate = 1; break;
        case O_NOSPAN: cf->o.span = 0; break;
        case O_ALT:
            if (strcmp(optarg, "auto") == 0)
                cf->o.alternate = -1;
            else if (strcmp(optarg, "yes") == 0)
                cf->o.alternate = 1;
            else if (strcmp(optarg, "no") == 0)
                cf->o.alternate = 0;
            else
                return cli_usage_error("--alternate: expected auto, yes or no, got '%s'",
                                       optarg);
            break;
        case 'q': cli_verbosity = 0; break;
        case 'v': cli_verbosity = 2; break;
        case O_BATCH: rc = cli_parse_size("--batch", optarg, 1, 4096, &cf->B); break;
        case O_TOKENS: rc = cli_parse_size("--tokens", optarg, 1, 1 << 20, &cf->T); break;
        case O_CHAN: rc = cli_parse_size("--channels", optarg, 1, 4096, &cf->D); break;
        case O_CLASSES: rc = cli_parse_size("--classes", optarg, 2, 1 << 20, &cf->K); break;
        case O_SIMV: rc = cli_parse_size("--sim-vocab", optarg, 0, 1 << 24, &cf->V); break;
        case O_INST: rc = cli_parse_size("--instances", optarg, 1, 100000, &cf->inst); break;
        case O_WARM: rc = cli_parse_double("--warm", optarg, 0.0, 1e3, &cf->warm); break;
        case O_SIGMA:
            rc = parse_list("--sigma", optarg, cf->sigma, MAX_SIGMAS, &cf->nsigma);
            break;
        case O_PRUNE: rc = cli_parse_double("--prune", optarg, 0.0, 1.0, &cf->prune); break;
        case O_CLIP: rc = cli_parse_double("--clip", optarg, 1e-300, 1e300, &cf->clip); break;
        case 'r':
            rc = cli_parse_size("--restarts", optarg, 1, 1000000, &cf->o.restarts);
            cf->rset = 1;
            break;
        case O_LBI:
            rc = cli_parse_size("--lbfgs-iters", optarg, 0, 10000000, &cf->o.lbfgs_iters);
            break;
        case O_LMI: rc = cli_parse_size("--lm-iters", optarg, 0, 10000000, &cf->o.lm_iters); break;
        case O_PRIOR: rc = cli_parse_double("--prior", optarg, 0.0, 1e6, &cf->o.prior); break;
        case O_INIT:
            rc = cli_parse_double("--init-std", optarg, 1e-300, 1e6, &cf->o.init_std);
            break;
        case O_TOL: rc = cli_parse_double("--tol", optarg, 0.0, 1e6, &cf->o.tol); break;
        case O_SUCCESS: rc = cli_parse_double("--success", optarg, 0.0, 1e300, &cf->success); break;
        case 's':
            rc = cli_parse_u64("--seed", optarg, &cf->seed);
            cf->seeded = 1;
            break;
        case O_BOX:
            cf->boxset = 1;
            if (strcmp(optarg, "none") == 0) {
                cf->o.box_lo = cf->o.box_hi = 0.0;
                break;
            }
            if (sscanf(optarg, "%lf,%lf", &cf->o.box_lo, &cf->o.box_hi) != 2 ||
                !(cf->o.box_lo < cf->o.box_hi) || !isfinite(cf->o.box_lo) ||
                !isfinite(cf->o.box_hi))
                return cli_usage_error("--box: expected LO,HI with LO < HI or none, got "
                                       "'%s'", optarg);
            break;
        case O_KIND:
            if (strcmp(optarg, "attn-block") == 0)
                cf->kind = ASEC_MODEL_ATTN_BLOCK;
            else if (strcmp(optarg, "attn-regression") == 0)
                cf->kind = ASEC_MODEL_ATTN_REGRESSION;
            else if (strcmp(optarg, "vit") == 0)
                cf->kind = ASEC_MODEL_VIT;
            else
                return cli_usage_error("--kind: expected attn-block, attn-regression or "
                                       "vit, got '%s'", optarg);
            break;
        case O_NOISE:
            if (asec_dlg_noise_parse(&cf->noise, optarg) != ASEC_OK)
                return cli_usage_error("--noise: expected gauss or laplace, got '%s'",
                                       optarg);
            break;
        case O_NMODE:
            if (strcmp(optarg, "rel") != 0 && strcmp(optarg, "abs") != 0)
                return cli_usage_error("--noise-mode: expected rel or abs, got '%s'", optarg);
            cf->relative = strcmp(optarg, "rel") == 0;
            break;
        case O_LOSS:
            if (strcmp(optarg, "both") == 0) {
                cf->losses[0] = ASEC_DLG_EUCLID;
                cf->losses[1] = ASEC_DLG_COS;
                cf->nloss = 2;
            } else {
                asec_dlg_loss l;

                if (asec_dlg_loss_parse(&l, optarg) != ASEC_OK)
                    return cli_usage_error("--loss: expected euclid, cos or both, got '%s'",
                                           optarg);
                cf->losses[0] = (int)l;
                cf->nloss = 1;
            }
            break;
        case O_LMODE:
            if (asec_dlg_labels_parse(&cf->o.labels, optarg) != ASEC_OK)
                return cli_usage_error("--label-mode: expected auto, idlg, joint or known, "
                                       "got '%s'", optarg);
            break;
        case 'h':
            dlg_help();
            return -1;
        case 'V':
            return cli_print_version() == 0 ? -1 : EXIT_SOFTWARE;
        default:
            return cli_option_error(argv, lo, NULL);
        }
        if (rc != 0)
            return EXIT_USAGE;
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (cf->out == NULL)
        return cli_usage_error("-o DIR is required");
    if (cf->simulate) {
        if (cf->model || cf->gradient || cf->truth || cf->labels || cf->targets)
            return cli_usage_error("--simulate makes its own model, gradient and truth");
        if (cf->T == 0)
            cf->T = 8;
        if (cf->kind == ASEC_MODEL_VIT && cf->V > 0)
            return cli_usage_error("--sim-vocab applies to token models, not vit");
    } else {
        if (cf->model == NULL || cf->gradient == NULL)
            return cli_usage_error("--model and --gradient are required (or --simulate)");
        if (cf->clip > 0.0)
            return cli_usage_error("--clip needs per-example gradients: use --simulate");
        if (cf->warm > 0.0 && cf->truth == NULL)
            return cli_usage_error("--warm needs --truth");
    }
    return EXIT_OK;
}

static int
write_outputs(const struct dlg_cfg *cf, const struct dlg_inst *in,
              const asec_dlg_result *res)
{
    char path[4096];
    const asec_model_arch *a = asec_model_get_arch(in->m);
    size_t shape[3] = {in->B, in->T, a->channels};
    int rc;

    if (a->kind == ASEC_MODEL_VIT) {
        shape[1] = a->image_h;
        shape[2] = a->image_w;
    }
    snprintf(path, sizeof path, "%s/x_recovered.npy", cf->out);
    rc = asec_io_npy_write(path, res->x, 3, shape, ASEC_IO_F64);
    if (rc == ASEC_OK && res->soft != NULL) {
        size_t s2[2] = {in->B, res->soft_size};

        snprintf(path, sizeof path, "%s/soft_recovered.npy", cf->out);
        rc = asec_io_npy_write(path, res->soft, 2, s2, ASEC_IO_F64);
    }
    if (rc == ASEC_OK && in->vocab != NULL) {
        size_t N = in->B * in->T, s2[2] = {in->B, in->T};
        int64_t *ids = malloc(N * sizeof(int64_t));
        double *d = malloc(N * sizeof(double));

        rc = ids && d ? asec_dlg_decode(ids, res->x, N, a->channels, in->vocab, in->V)
                      : ASEC_ENOMEM;
        for (size_t i = 0; rc == ASEC_OK && i < N; i++)
            d[i] = (double)ids[i];
        snprintf(path, sizeof path, "%s/tokens_recovered.npy", cf->out);
        if (rc == ASEC_OK)
            rc = asec_io_npy_write(path, d, 2, s2, ASEC_IO_I64);
        free(ids);
        free(d);
    }
    return rc;
}

/* Append the image tiles of a run to the grid: original | recovered per
 * image (recovered only without the truth).  Token models add nothing.
 * The grid holds at most cap runs of B images. */
static int
grid_add(double **grid, size_t *ngrid, size_t *gh, size_t *gw, size_t *gcols,
         const struct dlg_inst *in, const asec_dlg_result *res, size_t cap)
{
    const asec_model_arch *a = asec_model_get_arch(in->m);
    size_t HW = a->image_h * a->image_w, per = in->x != NULL ? 2 : 1;

    if (a->kind != ASEC_MODEL_VIT)
        return ASEC_OK;
    if (*grid == NULL) {
        *grid = malloc(cap * in->B * per * HW * sizeof(double));
        if (*grid == NULL)
            return ASEC_ENOMEM;
        *gh = a->image_h;
        *gw = a->image_w;
        *gcols = per;
    }
    for (size_t b = 0; b < in->B; b++) {
        if (in->x != NULL) {
            memcpy(*grid + (*ngrid)++ * HW, in->x + b * HW, HW * sizeof(double));
        }
        memcpy(*grid + (*ngrid)++ * HW, res->x + b * HW, HW * sizeof(double));
    }
    return ASEC_OK;
}

int
cmd_attack_dlg(int argc, char **argv)
{
    struct dlg_cfg cf;
    asec_report *rep = NULL;
    asec_rng *rng = NULL;
    struct run *runs = NULL;
    size_t nrun = 0, cap, ninst;
    int st, rc;
    char path[4096], key[128];
    FILE *csv = NULL;
    double t0 = now_seconds(), *grid = NULL;
    size_t ngrid = 0, gh = 0, gw = 0, gcols = 1;

    st = parse_args(&cf, argc, argv);
    if (st != EXIT_OK)
        return st < 0 ? EXIT_OK : st;
    if ((rc = asec_afile_mkdirs(cf.out)) != ASEC_OK)
        return cli_fail(rc);
    if ((rc = asec_report_alloc(&rep, "attack dlg", argc, argv)) != ASEC_OK)
        return cli_fail(rc);
    rc = cf.seeded ? asec_rng_alloc_seeded(&rng, cf.seed, "attack-dlg")
                   : asec_rng_alloc_secure(&rng);
    if (rc == ASEC_OK && !cf.seeded) {
        // attacks are experiments: draw a seed from the OS and record it
        uint64_t s = asec_rng_u64(rng);

        asec_rng_free(rng);
        cf.seed = s;
        rc = asec_rng_alloc_seeded(&rng, s, "attack-dlg");
    }
    if (rc == ASEC_OK)
        rc = asec_report_set_rng(rep, rng);
    if (rc != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    if (!cf.simulate) {
        if ((rc = asec_report_add_input(rep, cf.model)) != ASEC_OK ||
            (rc = asec_report_add_input(rep, cf.gradient)) != ASEC_OK) {
            st = cli_fail(rc);
            goto done;
        }
    }
    ninst = cf.simulate ? cf.inst : 1;
    cap = ninst * cf.nsigma * (size_t)cf.nloss;
    runs = calloc(cap, sizeof *runs);
    if (runs == NULL) {
        st = cli_fail(ASEC_ENOMEM);
        goto done;
    }
    if (cf.simulate && cf.kind == ASEC_MODEL_VIT &&
        (rc = asec_data_load(&cf.digits, cli_datadir(), "digits", "test")) != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    REP(asec_report_set_str(rep, "config.mode", cf.simulate ? "simulate" : "gradient"));
    REP(asec_report_set_int(rep, "config.restarts", (long long)cf.o.restarts));
    REP(asec_report_set_int(rep, "config.lbfgs_iters", (long long)cf.o.lbfgs_iters));
    REP(asec_report_set_int(rep, "config.lm_iters", (long long)cf.o.lm_iters));
    REP(asec_report_set_num(rep, "config.prior", cf.o.prior));
    REP(asec_report_set_num(rep, "config.tol", cf.o.tol));
    REP(asec_report_set_num(rep, "config.success", cf.success));
    REP(asec_report_set_bool(rep, "config.span", cf.o.span));
    REP(asec_report_set_str(rep, "config.alternate",
                            cf.o.alternate < 0 ? "auto" : cf.o.alternate ? "yes" : "no"));
    REP(asec_report_set_str(rep, "config.noise", cf.noise ? "laplace" : "gauss"));
    REP(asec_report_set_str(rep, "config.noise_mode", cf.relative ? "rel" : "abs"));
    REP(asec_report_set_num(rep, "config.prune", cf.prune));
    REP(asec_report_set_num(rep, "config.clip", cf.clip));
    REP(asec_report_set_num(rep, "config.warm", cf.warm));
    if (cf.simulate) {
        REP(asec_report_set_str(rep, "config.kind", asec_model_kind_name(cf.kind)));
        REP(asec_report_set_int(rep, "config.channels", (long long)cf.D));
        REP(asec_report_set_int(rep, "config.tokens", (long long)cf.T));
        REP(asec_report_set_int(rep, "config.batch", (long long)cf.B));
        REP(asec_report_set_int(rep, "config.classes", (long long)cf.K));
        REP(asec_report_set_int(rep, "config.sim_vocab", (long long)cf.V));
        REP(asec_report_set_int(rep, "config.instances", (long long)cf.inst));
    }
    for (size_t i = 0; i < cf.nsigma; i++)
        REP(asec_report_append_num(rep, "config.sigma", cf.sigma[i]));
    if (rc != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }

    if (cli_verbosity > 0)
        cli_progress_begin("attack dlg", cap);
    for (size_t k = 0; k < ninst; k++) {
        struct dlg_inst in;
        int64_t *known = NULL;
        uint64_t iseed = cf.seed + k;

        st = cf.simulate ? simulate(&in, &cf, iseed) : load_inst(&in, &cf, &known);
        if (st != EXIT_OK)
            goto done;
        if (cf.simulate && cf.kind == ASEC_MODEL_ATTN_REGRESSION)
            known = NULL; // the targets E are passed as known soft values
        if (k == 0 && !cf.rset) {
            // attn-regression needs many more starts than the classifiers
            cf.o.restarts = asec_dlg_suggest_restarts(in.m, in.B, in.T);
            REP(asec_report_set_int(rep, "config.restarts", (long long)cf.o.restarts));
            if (rc != ASEC_OK) {
                free(known);
                inst_free(&in);
                st = cli_fail(rc);
                goto done;
            }
        }
        for (size_t si = 0; si < cf.nsigma; si++)
            for (int li = 0; li < cf.nloss; li++) {
                asec_dlg_result *res = NULL;
                struct run *ru = &runs[nrun];

                ru->seed = iseed;
                ru->index = nrun;
                rc = run_one(ru, &res, &in, &cf, known, cf.sigma[si], cf.losses[li], rng,
                             rep);
                if (rc == ASEC_OK && !cf.simulate)
                    rc = write_outputs(&cf, &in, res);
                if (rc == ASEC_OK)
                    rc = grid_add(&grid, &ngrid, &gh, &gw, &gcols, &in, res, cap);
                if (rc != ASEC_OK) {
                    asec_dlg_result_free(res);
                    free(known);
                    inst_free(&in);
                    st = cli_fail(rc == ASEC_EBADLEN ? ASEC_EFORMAT : rc);
                    goto done;
                }
                if (cli_verbosity > 1)
                    fprintf(stderr,
                            "%s: seed %llu sigma %g %s: rel_err %.3g matched %.3g tok_acc "
                            "%.3g labels %.3g residual %.3g starts %zu evals %zu "
                            "%.3f s\n",
                            cli_command(), (unsigned long long)iseed, cf.sigma[si],
                            asec_dlg_loss_name((asec_dlg_loss)cf.losses[li]), ru->raw,
                            ru->matched, ru->tok_acc, ru->label_acc, res->residual,
                            res->starts, res->evals, ru->seconds);
                asec_dlg_result_free(res);
                nrun++;
                if (cli_verbosity > 0)
                    cli_progress_update(nrun);
            }
        free(known);
        inst_free(&in);
    }
    if (cli_verbosity > 0)
        cli_progress_end();
    if (ngrid > 0) {
        // originals | recovered, one row per attacked image, 8x enlarged
        char gname[64];

        snprintf(gname, sizeof gname, "recon_grid.%s", asec_image_ext());
        snprintf(path, sizeof path, "%s/%s", cf.out, gname);
        rc = asec_image_write_grid(path, grid, ngrid, gh, gw, 0.0, 1.0, ngrid / gcols,
                                   gcols, 8);
        REP(asec_report_set_str(rep, "results.image_grid", gname));
        if (rc != ASEC_OK) {
            st = cli_fail(rc);
            goto done;
        }
    }
    snprintf(path, sizeof path, "%s/runs.csv", cf.out);

    // the summary: one row per (sigma, loss)
    {
        struct asec_afile *af = NULL;

        rc = asec_afile_open(&af, path);
        if (rc == ASEC_OK)
            rc = asec_afile_printf(af, "seed,sigma,loss,rel_err,rel_err_matched,tok_acc,"
                                       "label_acc,psnr_db,success,wall_seconds\n");
        for (size_t i = 0; rc == ASEC_OK && i < nrun; i++)
            rc = asec_afile_printf(af, "%llu,%.6g,%s,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%.6f\n",
                                   (unsigned long long)runs[i].seed, runs[i].sigma,
                                   asec_dlg_loss_name((asec_dlg_loss)runs[i].loss),
                                   runs[i].raw, runs[i].matched, runs[i].tok_acc,
                                   runs[i].label_acc, runs[i].psnr, runs[i].success,
                                   runs[i].seconds);
        if (rc == ASEC_OK)
            rc = asec_afile_commit(af);
        else if (af != NULL)
            asec_afile_abort(af);
        if (rc != ASEC_OK) {
            st = cli_fail(rc);
            goto done;
        }
    }
    if (cli_verbosity > 0 || cf.json == 0)
        printf("%-8s %-6s %-8s %-12s %-8s %-8s %-8s %s\n", "sigma", "loss", "success",
               "med_rel_err", "tok_acc", "labels", "psnr_db", "seconds");
    for (size_t si = 0; si < cf.nsigma; si++)
        for (int li = 0; li < cf.nloss; li++) {
            double *v = malloc(4 * ninst * sizeof(double)), secs = 0.0;
            size_t ok = 0, m = 0;
            double me, mt, ml, mp;

            if (v == NULL) {
                st = cli_fail(ASEC_ENOMEM);
                goto done;
            }
            for (size_t i = 0; i < nrun; i++)
                if (runs[i].sigma == cf.sigma[si] && runs[i].loss == cf.losses[li]) {
                    v[m] = runs[i].matched;
                    v[ninst + m] = runs[i].tok_acc;
                    v[2 * ninst + m] = runs[i].label_acc;
                    v[3 * ninst + m] = runs[i].psnr;
                    ok += (size_t)runs[i].success;
                    secs += runs[i].seconds;
                    m++;
                }
            me = median(v, m);
            mt = median(v + ninst, m);
            ml = median(v + 2 * ninst, m);
            mp = median(v + 3 * ninst, m);
            free(v);
            snprintf(key, sizeof key, "{\"sigma\":%.17g,\"loss\":\"%s\",\"runs\":%zu,"
                                      "\"successes\":%zu,\"wall_seconds\":%.6f}",
                     cf.sigma[si], asec_dlg_loss_name((asec_dlg_loss)cf.losses[li]), m, ok,
                     secs);
            REP(asec_report_append_json(rep, "results.summary", key));
            snprintf(key, sizeof key, "results.median_rel_err_matched.%s_%zu",
                     asec_dlg_loss_name((asec_dlg_loss)cf.losses[li]), si);
            REP(asec_report_set_num(rep, key, me));
            snprintf(key, sizeof key, "results.median_tok_acc.%s_%zu",
                     asec_dlg_loss_name((asec_dlg_loss)cf.losses[li]), si);
            REP(asec_report_set_num(rep, key, mt));
            snprintf(key, sizeof key, "results.median_psnr_db.%s_%zu",
                     asec_dlg_loss_name((asec_dlg_loss)cf.losses[li]), si);
            REP(asec_report_set_num(rep, key, mp));
            printf("%-8.3g %-6s %zu/%-6zu %-12.3g %-8.3g %-8.3g %-8.4g %.2f\n",
                   cf.sigma[si], asec_dlg_loss_name((asec_dlg_loss)cf.losses[li]), ok, m,
                   me, mt, ml, mp, secs);
        }
    REP(asec_report_set_num(rep, "results.total_wall_seconds", now_seconds() - t0));
    st = rc == ASEC_OK ? EXIT_OK : cli_fail(rc);
done:
    if (rep != NULL) {
        if (st == EXIT_OK) {
            snprintf(path, sizeof path, "%s/report.json", cf.out);
            rc = asec_report_finish(rep, st);
            if (rc == ASEC_OK)
                rc = asec_report_write(rep, path);
            if (rc == ASEC_OK && cf.json)
                rc = asec_report_print(rep, stdout);
            if (rc != ASEC_OK)
                st = cli_fail(rc);
        }
        asec_report_free(rep);
    }
    if (csv != NULL)
        fclose(csv);
    free(runs);
    free(grid);
    asec_data_free(cf.digits);
    asec_rng_free(rng);
    return st;
}
