/* cmd_audit.c - 'attnsec audit': the main job.  Attack versus defense on
 * the shipped digits and the default vision transformer (DESIGN.md, "The
 * main job"; attnsec-audit(1), attnsec-report(5)).
 *
 * For a non-private run and DP-SGD runs calibrated to each target epsilon
 * (delta 1e-5), the audit
 *   1. trains the model with 'defend dpsgd' (called in process) and takes
 *      epsilon under every accountant and the test accuracy from its
 *      report;
 *   2. attacks the gradient a client with one held-out image would share
 *      (B = 1) with DLG (asec_dlg(3)); under DP-SGD the client's gradient
 *      is clipped to C and Gaussian noise of standard deviation sigma C is
 *      added, as one DP-SGD step releases it;
 *   3. inverts the attention probabilities the trained model releases at
 *      layer 0, head 0 for a held-out image ('attack attn-invert' on the
 *      model's W = W_Q^T W_K and the image's patch embeddings);
 * then writes report.json, report.txt, CSV tables, gnuplot data and
 * scripts (rendered when gnuplot is installed) and a picture of the
 * originals beside the reconstructions.  Attacks and defenses are composed
 * here, in the CLI layer, through the public API only (STYLE.md B1).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#ifdef HAVE_PNG
#include <png.h>
#endif

#include "attnsec/attn_invert.h"
#include "attnsec/attnsec.h"
#include "attnsec/dlg.h"
#include "attnsec/dpsgd.h"
#include "audit.h"
#include "cli.h"
#include "commands.h"
#include "slurp.h"

#define MAX_RUNS AUDIT_MAX_RUNS
#define MAX_IMAGES AUDIT_MAX_IMAGES
#define DELTA AUDIT_DELTA
/* Training lengths (CPU time on one core is about 0.25 ms per example
 * gradient; see attnsec-audit(1) for the accuracies these give). */
#define DEFAULT_STEPS 150
#define DEFAULT_NP_STEPS 300
#define QUICK_STEPS 100
#define QUICK_NP_STEPS 150
#define QUICK_EPS "8"
#define AUDIT_EMA 0.9 /* digits DP-SGD runs */
#define AUDIT_REPORT_MAX_BYTES ((size_t)64 << 20) /* a stage's report.json */
#define TEXT_STEPS 100
#define TEXT_QUICK_STEPS 50

const char *const audit_acct_names[4] = {"rdp", "pld", "basic", "advanced"};
#define acct_names audit_acct_names

static int
usage(void)
{
    printf(
        "Usage: attnsec audit [OPTION]...\n"
        "Attack versus defense on the shipped digits and the default vision\n"
        "transformer: train without privacy and with DP-SGD calibrated to each\n"
        "target epsilon, attack client gradients with DLG and released attention\n"
        "maps with attention inversion, and write one report with the privacy /\n"
        "utility / leakage table, plots and a picture of the reconstructions.\n\n"
        "  -o, --output=DIR       write the report into DIR (default: audit-report)\n"
        "      --quick            a small audit for demonstrations and tests\n"
        "                           (under a minute on 2 cores)\n"
        "      --data=NAME        digits (default) or text (the shipped corpus and\n"
        "                           a small token transformer)\n"
        "  -e, --epsilons=LIST    target epsilons, comma-separated (default 1,3,8;\n"
        "                           quick 8)\n"
        "  -T, --steps=N          DP-SGD steps per private run (default 150; quick 100;\n"
        "                           text 100, quick 50)\n"
        "  -b, --batch-size=N     expected DP-SGD batch size (default 512)\n"
        "      --lr=RATE          DP-SGD learning rate, SGD with momentum 0.9\n"
        "                           (default 0.2; text 0.5)\n"
        "  -C, --clip=C           per-example clipping norm (default 1)\n"
        "      --np-steps=N       Adam steps of the non-private run (default 300;\n"
        "                           quick 150)\n"
        "      --np-batch-size=N  its expected batch size (default 256)\n"
        "      --np-lr=RATE       its Adam learning rate (default 0.003)\n"
        "  -n, --images=N         held-out images (text: windows) attacked per run\n"
        "                           (default 4; quick 2)\n"
        "  -r, --restarts=N       DLG random starts per image and loss (default 8;\n"
        "                           quick 4; text 2; a quarter of them, at least\n"
        "                           one, on noisy gradients)\n"
        "      --plot=FORMAT      png (default), svg or none: render the plots with\n"
        "                           gnuplot when it is installed\n"
        "  -s, --seed=N           seed of every stream (default: drawn from the OS\n"
        "                           and recorded); an audit is NOT a DP release\n"
        "      --json             also print report.json on standard output\n"
        "  -q, --quiet            no progress output\n"
        "  -v, --verbose          more detail on standard error\n"
        "  -h, --help             display this help and exit\n"
        "  -V, --version          output version information and exit\n\n"
        "The report is DIR/report.txt (read this first), DIR/report.json\n"
        "(attnsec-report(5)), DIR/tables/*.csv, DIR/plots/ and\n"
        "DIR/images/recon_grid.png (digits).\n"
        "Exit status: 0 on success, 64 usage error, 66 shipped data missing,\n"
        "73/74 output errors, 75 out of memory.  Full documentation:\n"
        "attnsec-audit(1).\n");
    return EXIT_OK;
}

/* ------------------------------------------------------------- helpers */

char *
audit_pathf(const char *fmt, ...)
{
    va_list ap;
    char *p;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (p = malloc((size_t)n + 1)) == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* An argument vector built from formatted strings (all owned). */
struct args {
    char *v[32];
    int n;
    int oom;
};

static void args_add(struct args *a, const char *fmt, ...) ASEC_PRINTF(2, 3);

static void
args_add(struct args *a, const char *fmt, ...)
{
    va_list ap;
    char *p;
    int n;

    if (a->n >= 31) {
        a->oom = 1;
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (p = malloc((size_t)n + 1)) == NULL) {
        a->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    a->v[a->n++] = p;
    a->v[a->n] = NULL;
}

static void
args_free(struct args *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    a->n = 0;
}

/* Call a command in process with its own argv; stdout goes to log (the
 * command's --json or messages), stderr too unless verbose. */
static int
call_command(const char *group, const char *method, cli_fn fn, int argc, char **argv,
             const char *log)
{
    int save_out = -1, save_err = -1, fd = -1, st, verbosity = cli_verbosity;

    fflush(stdout);
    fflush(stderr);
    if (log != NULL) {
        fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        save_out = dup(STDOUT_FILENO);
        save_err = dup(STDERR_FILENO);
        if (fd >= 0 && save_out >= 0 && save_err >= 0) {
            dup2(fd, STDOUT_FILENO);
            if (cli_verbosity < 2)
                dup2(fd, STDERR_FILENO);
        }
    }
    cli_set_command(group, method);
    optind = 0;
    st = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    if (save_out >= 0) {
        dup2(save_out, STDOUT_FILENO);
        close(save_out);
    }
    if (save_err >= 0) {
        dup2(save_err, STDERR_FILENO);
        close(save_err);
    }
    if (fd >= 0)
        close(fd);
    cli_set_command("audit", NULL);
    cli_verbosity = verbosity; /* the command may have changed it (-q) */
    return st;
}

static cli_fn
method_fn(const struct cli_method *tab, const char *name)
{
    for (; tab->name != NULL; tab++)
        if (strcmp(tab->name, name) == 0)
            return tab->fn;
    return NULL;
}

/* A report.json that a stage of this audit has just written, read back
 * as any other such file (slurp.h: a regular file of capped size); NULL
 * when it is not one or is not JSON. */
static json_t *
load_report(const char *path)
{
    char *buf;
    size_t len;
    json_t *j = NULL;
    json_error_t err;

    if (slurp_regular(path, AUDIT_REPORT_MAX_BYTES, &buf, &len) == SLURP_OK) {
        j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
        free(buf);
    }
    return j;
}

static double
jget_num(json_t *root, const char *dotted)
{
    char buf[256], *tok, *save = NULL;
    json_t *j = root;

    snprintf(buf, sizeof buf, "%s", dotted);
    for (tok = strtok_r(buf, ".", &save); tok != NULL && j != NULL;
         tok = strtok_r(NULL, ".", &save))
        j = json_object_get(j, tok);
    return json_is_number(j) ? json_number_value(j) : NAN;
}

size_t
audit_test_index(const struct audit *a, size_t k)
{
    /* held-out examples spread over the test split */
    return k * ((a->text ? a->ntest : a->test->n) / a->nimg);
}

/* ------------------------------------------------------------- training */

static int
train(struct audit *a, struct run *r, uint64_t seed)
{
    cli_fn fn = method_fn(cmd_defend_methods, "dpsgd");
    char *dir = audit_pathf("%s/runs/%s", a->out, r->dir);
    char *log = audit_pathf("%s/runs/%s/log.txt", a->out, r->dir);
    char *rp = audit_pathf("%s/runs/%s/report.json", a->out, r->dir);
    struct args av = {{NULL}, 0, 0};
    int st = 0, rc;
    json_t *rep = NULL;

    if (dir == NULL || log == NULL || rp == NULL || fn == NULL) {
        st = EXIT_SOFTWARE;
        goto done;
    }
    if ((rc = asec_afile_mkdirs(dir)) != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    args_add(&av, "dpsgd");
    args_add(&av, "-q");
    args_add(&av, "--output=%s", dir);
    args_add(&av, "--seed=%llu", (unsigned long long)seed);
    args_add(&av, "--checkpoint-every=0");
    args_add(&av, "--delta=1e-5");
    /* every option explicit: the audit does not follow the defaults of
     * 'defend dpsgd' */
    args_add(&av, "--sampling=poisson");
    args_add(&av, "--lr-schedule=constant");
    if (r->target_eps > 0) {
        /* the private runs release the parameter average, as 'defend
         * dpsgd' does: at epsilon 8 / 3 / 1 (seed 1) test accuracy 0.86 /
         * 0.79 / 0.29 with EMA 0.9, batch 512 and lr 0.2, against 0.88 /
         * 0.66 / 0.31 for the last iterate at batch 718 and lr 0.3 */
        args_add(&av, "--ema=%.17g", AUDIT_EMA);
        args_add(&av, "--optimizer=momentum");
        args_add(&av, "--momentum=0.9");
        args_add(&av, "--steps=%zu", a->steps);
        args_add(&av, "--batch-size=%zu", a->batch);
        args_add(&av, "--lr=%.17g", a->lr);
        args_add(&av, "--eval-every=%zu", a->steps); /* one evaluation, at the end */
        args_add(&av, "--target-epsilon=%.17g", r->target_eps);
        args_add(&av, "--clip=%.17g", a->clip);
    } else {
        args_add(&av, "--ema=0");
        args_add(&av, "--optimizer=adam");
        args_add(&av, "--momentum=0.9");
        args_add(&av, "--steps=%zu", a->np_steps);
        args_add(&av, "--batch-size=%zu", a->np_batch);
        args_add(&av, "--lr=%.17g", a->np_lr);
        args_add(&av, "--eval-every=%zu", a->np_steps);
        args_add(&av, "--sigma=0");
        args_add(&av, "--no-clip");
    }
    if (av.oom) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    st = call_command("defend", "dpsgd", fn, av.n, av.v, log);
    if (st != 0) {
        snprintf(r->fail, sizeof r->fail, "training exited with status %d (see %s)", st,
                 log);
        goto done;
    }
    rep = load_report(rp);
    if (rep == NULL) {
        snprintf(r->fail, sizeof r->fail, "training wrote no readable %s", rp);
        st = EXIT_SOFTWARE;
        goto done;
    }
    r->sigma = jget_num(rep, "results.privacy.noise_multiplier");
    r->q = jget_num(rep, "results.privacy.q");
    r->clip = jget_num(rep, "results.privacy.clip");
    r->test_acc = jget_num(rep, "results.utility.test_accuracy");
    r->train_acc = jget_num(rep, "results.utility.train_accuracy");
    for (int k = 0; k < 4; k++) {
        char key[96];
        json_t *b;

        snprintf(key, sizeof key, "results.privacy.accountants.%s.epsilon",
                 acct_names[k]);
        r->eps[k] = jget_num(rep, key);
        b = json_object_get(
            json_object_get(
                json_object_get(
                    json_object_get(json_object_get(rep, "results"), "privacy"),
                    "accountants"),
                acct_names[k]),
            "bounds");
        r->eps_lo[k] = json_is_array(b) ? json_number_value(json_array_get(b, 0)) : NAN;
    }
    if (r->target_eps <= 0)
        for (int k = 0; k < 4; k++)
            r->eps[k] = r->eps_lo[k] = INFINITY;
    r->ok = 1;
done:
    args_free(&av);
    json_decref(rep);
    free(dir);
    free(log);
    free(rp);
    return st;
}

/* ------------------------------------------------------------------ DLG */

/* The mean training image of each class: (classes, H W) into *out. */
static int
class_means(double **out, const asec_data *tr)
{
    size_t HW = tr->image_h * tr->image_w, K = tr->classes;
    double *mu = calloc(K * HW, sizeof *mu);
    size_t *cnt = calloc(K, sizeof *cnt);

    if (mu == NULL || cnt == NULL) {
        free(mu);
        free(cnt);
        return ASEC_ENOMEM;
    }
    for (size_t i = 0; i < tr->n; i++) {
        size_t y = (size_t)tr->labels[i];

        cnt[y]++;
        for (size_t j = 0; j < HW; j++)
            mu[y * HW + j] += tr->images[i * HW + j];
    }
    for (size_t y = 0; y < K; y++)
        for (size_t j = 0; j < HW && cnt[y] > 0; j++)
            mu[y * HW + j] /= (double)cnt[y];
    free(cnt);
    *out = mu;
    return ASEC_OK;
}

/* DLG on the gradient a client holding one held-out image shares (B = 1).
 * noise = 0 with a private run: the clipped gradient alone (what clipping
 * by itself hides); noise = 1: what one DP-SGD step releases, clipped to C
 * plus Gaussian noise of standard deviation sigma C per entry (floating
 * point noise: a measurement, not a release).  The attack uses the
 * cosine matching loss (Geiping et al. 2020): a clipped gradient is a
 * scaled gradient and the cosine ignores the scale.  (The Euclidean
 * loss, retried on noiseless gradients until issue #11, recovered none of
 * the images the cosine missed, at the cost of as many starts again.) */
static int
attack_dlg(struct audit *a, struct run *r, struct dlg_out *out, int noise_on,
           asec_model *m, uint64_t seed)
{
    size_t P = asec_model_param_count(m), HW = a->test->image_h * a->test->image_w;
    double *g = malloc(P * sizeof *g);
    asec_rng *rng = NULL, *noise = NULL;
    char label[64];
    int rc = ASEC_OK, priv = r->target_eps > 0;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    out->loss = ASEC_DLG_COS;
    out->recon = calloc(a->nimg * HW, sizeof *out->recon);
    if (g == NULL || out->recon == NULL) {
        rc = ASEC_ENOMEM;
        goto done;
    }
    snprintf(label, sizeof label, "audit/dlg/%s/%d", r->dir, noise_on);
    if ((rc = asec_rng_alloc_seeded(&rng, seed, label)) != ASEC_OK)
        goto done;
    snprintf(label, sizeof label, "audit/client-noise/%s", r->dir);
    if ((rc = asec_rng_alloc_seeded(&noise, seed, label)) != ASEC_OK)
        goto done;
    for (size_t k = 0; k < a->nimg; k++) {
        /* held-out images spread over the test split */
        size_t idx = audit_test_index(a, k);
        const double *x = a->test->images + idx * HW;
        int64_t y = a->test->labels[idx];
        asec_model_batch b = {1, 0, x, NULL, &y, NULL};
        asec_model_vec gv = {g, NULL, NULL};
        asec_dlg_options o;
        asec_dlg_problem pb = {1, 0, g, NULL, NULL, NULL};
        asec_dlg_result *res = NULL;
        double loss, se = 0, nx = 0;

        if ((rc = asec_model_grad(m, &loss, &gv, &b)) != ASEC_OK)
            goto done;
        if (priv) {
            rc = asec_dpsgd_clip(g, P, r->clip, NULL);
            if (rc < 0)
                goto done;
            if (noise_on)
                for (size_t i = 0; i < P; i++)
                    g[i] += r->sigma * r->clip * asec_rng_normal(noise);
            rc = ASEC_OK;
        }
        /* a noiseless gradient: the first start is the mean training image
         * of the label iDLG reads off the gradient (a public-data prior;
         * the label is exact for B = 1).  On a trained model the matching
         * landscape of a confidently classified image has local minima
         * that random starts rarely escape; from the class mean they
         * converge at once.  Noisy gradients keep random starts, so that
         * their scores measure the attack, not the prior. */
        if (!(noise_on && priv) && a->prior != NULL) {
            int64_t yl;

            if ((rc = asec_dlg_idlg_labels(&yl, 1, m, g)) != ASEC_OK)
                goto done;
            pb.init = a->prior + (size_t)yl * HW;
        }
        asec_dlg_options_default(&o);
        o.loss = out->loss;
        /* the settings of 'attack dlg --kind=vit' (exact recovery of the
         * digits in a few starts); a start that converges ends the attack,
         * so only noisy gradients pay for every start */
        o.restarts = noise_on && priv ? a->noisy_restarts : a->restarts;
        o.lbfgs_iters = 100;
        o.lm_iters = noise_on && priv ? 20 : 100;
        o.box_lo = 0.0;
        o.box_hi = 1.0;
        o.diagnostics = 0;
        o.labels = ASEC_DLG_LABELS_AUTO;
        if ((rc = asec_dlg_attack(&res, m, &pb, &o, rng)) != ASEC_OK)
            goto done;
        for (size_t i = 0; i < HW; i++) {
            double d = res->x[i] - x[i];

            se += d * d;
            nx += x[i] * x[i];
            out->recon[k * HW + i] = res->x[i];
        }
        out->mse[k] = se / (double)HW;
        out->rel[k] = sqrt(se / nx);
        out->psnr[k] = asec_dlg_psnr(res->x, x, HW, 1.0);
        out->label_ok[k] = res->labels != NULL && res->labels[0] == y;
        out->converged[k] = res->converged;
        asec_dlg_result_free(res);
        out->nimg = k + 1;
    }
    out->ok = 1;
done:
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out->seconds =
        (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (rc != ASEC_OK)
        snprintf(r->fail, sizeof r->fail, "DLG: %s", asec_errmsg());
    asec_rng_free(rng);
    asec_rng_free(noise);
    free(g);
    return rc;
}

/* ---------------------------------------------------- attention inversion */

/* What layer 0 of the model computes for one held-out image, captured by
 * an attention hook (asec_model_forward_hook): the released attention
 * probabilities of head 0 and the query/key projections of every token. */
struct attn_capture {
    size_t T, C, NH;
    double *att; /* (T, T), head 0 */
    double *qkv; /* (T, 3C) */
};

static int
capture_hook(void *ctx, size_t layer, double *out, double *att, const double *qkv,
             size_t B, size_t T, size_t C, size_t NH)
{
    struct attn_capture *cp = ctx;

    (void)out;
    if (layer != 0 || B != 1)
        return ASEC_OK;
    cp->T = T;
    cp->C = C;
    cp->NH = NH;
    cp->att = malloc(T * T * sizeof *cp->att);
    cp->qkv = malloc(T * 3 * C * sizeof *cp->qkv);
    if (cp->att == NULL || cp->qkv == NULL)
        return ASEC_ENOMEM;
    memcpy(cp->att, att, T * T * sizeof *att); /* head 0 comes first */
    memcpy(cp->qkv, qkv, T * 3 * C * sizeof *qkv);
    return ASEC_OK;
}

/* The exact instance of attention inversion the model's layer 0, head 0
 * poses for held-out image idx.  The attention sees u_t = ln1(x_t), x_t =
 * W_pe p_t + b_pe + pos_t, through q_t = W_q u_t + b_q and k_t = W_k u_t +
 * b_k (head 0's rows of blocks.0.attn.qkv), so with the constant row
 * appended, X = [u_1 .. u_T; 1 .. 1] (C + 1, T), and A_q = [W_q | b_q],
 * A_k = [W_k | b_k] (HS, C + 1):
 *
 *   B = rowsoftmax(X^T W X / sqrt(HS)),   W = A_q^T A_k   (C + 1, C + 1).
 *
 * Writes W, X and the model's own released B (from the forward pass, not
 * recomputed) as .npy files; *qk_err receives the largest difference
 * between the q and k recomputed from X and those of the forward pass (a
 * check that X is what the model computes).  *scale = 1 / sqrt(HS). */
static int
attn_instance(const char *wpath, const char *xpath, const char *bpath, asec_model *m,
              const struct audit *a, size_t idx, double *scale, double *qk_err)
{
    const asec_model_arch *ar = asec_model_get_arch(m);
    const double *th = asec_model_params(m);
    const asec_data *d = a->test;
    int text = ar->kind == ASEC_MODEL_TEXT;
    size_t C = ar->channels, p = text ? 1 : ar->patch, gw = text ? 1 : ar->image_w / p;
    size_t HS = C / ar->heads, D = C + 1;
    size_t T = text ? AUDIT_TEXT_T : (ar->image_h / p) * gw;
    const double *img = text ? NULL : d->images + idx * d->image_h * d->image_w;
    const int64_t *tok = text ? a->win_test + idx * AUDIT_TEXT_T : NULL;
    asec_model_tensor w, bias = {NULL, 0, {0, 0}, 0, 0}, pos, lw, lb, qw, qb;
    struct attn_capture cp = {0, 0, 0, NULL, NULL};
    int64_t y = text ? a->y_test[idx] : d->labels[idx];
    asec_model_batch b = {1, text ? T : 0, img, tok, &y, NULL};
    double *X = NULL, *W = NULL, *Aq = NULL, *Ak = NULL, *u = NULL;
    int have_pos, rc;

    /* text: x_t = tok_emb[token_t] + pos_t (no bias tensor) */
    if ((rc = asec_model_tensor_find(m, text ? "tok_emb.weight" : "patch_emb.weight",
                                     &w)) != ASEC_OK ||
        (!text && (rc = asec_model_tensor_find(m, "patch_emb.bias", &bias)) != ASEC_OK) ||
        (rc = asec_model_tensor_find(m, "blocks.0.ln1.weight", &lw)) != ASEC_OK ||
        (rc = asec_model_tensor_find(m, "blocks.0.ln1.bias", &lb)) != ASEC_OK ||
        (rc = asec_model_tensor_find(m, "blocks.0.attn.qkv.weight", &qw)) != ASEC_OK ||
        (rc = asec_model_tensor_find(m, "blocks.0.attn.qkv.bias", &qb)) != ASEC_OK)
        return rc;
    have_pos = asec_model_tensor_find(m, "pos_emb.weight", &pos) == ASEC_OK;
    if ((rc = asec_model_forward_hook(m, NULL, NULL, NULL, &b, capture_hook, &cp)) !=
        ASEC_OK)
        goto done;
    if (cp.att == NULL || cp.T != T || cp.C != C) {
        rc = ASEC_EINVAL; /* not the default vit layout */
        goto done;
    }
    X = calloc(D * T, sizeof *X);
    W = calloc(D * D, sizeof *W);
    Aq = calloc(HS * D, sizeof *Aq);
    Ak = calloc(HS * D, sizeof *Ak);
    u = calloc(C, sizeof *u);
    if (X == NULL || W == NULL || Aq == NULL || Ak == NULL || u == NULL) {
        rc = ASEC_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < HS; i++) {
        for (size_t c = 0; c < C; c++) {
            Aq[i * D + c] = th[qw.offset + i * C + c];
            Ak[i * D + c] = th[qw.offset + (C + i) * C + c];
        }
        Aq[i * D + C] = th[qb.offset + i];
        Ak[i * D + C] = th[qb.offset + C + i];
    }
    for (size_t r = 0; r < D; r++)
        for (size_t c = 0; c < D; c++) {
            double s = 0;

            for (size_t i = 0; i < HS; i++)
                s += Aq[i * D + r] * Ak[i * D + c];
            W[r * D + c] = s;
        }
    *qk_err = 0;
    for (size_t t = 0; t < T; t++) {
        size_t pr = t / gw, pc = t % gw;
        double mu = 0, var = 0;

        for (size_t c = 0; c < C; c++) {
            double s;

            if (text)
                s = th[w.offset + (size_t)tok[t] * C + c];
            else {
                s = th[bias.offset + c];
                for (size_t i = 0; i < p; i++)
                    for (size_t j = 0; j < p; j++)
                        s += th[w.offset + c * p * p + i * p + j] *
                             img[(pr * p + i) * d->image_w + pc * p + j];
            }
            if (have_pos && pos.shape[0] == T)
                s += th[pos.offset + t * C + c];
            u[c] = s;
            mu += s;
        }
        mu /= (double)C;
        for (size_t c = 0; c < C; c++)
            var += (u[c] - mu) * (u[c] - mu);
        var /= (double)C;
        for (size_t c = 0; c < C; c++)
            X[c * T + t] = (u[c] - mu) / sqrt(var + ar->ln_eps) * th[lw.offset + c] +
                           th[lb.offset + c];
        X[C * T + t] = 1.0;
        for (size_t i = 0; i < HS; i++) {
            double q = 0, k = 0;

            for (size_t c = 0; c < D; c++) {
                q += Aq[i * D + c] * X[c * T + t];
                k += Ak[i * D + c] * X[c * T + t];
            }
            q = fabs(q - cp.qkv[t * 3 * C + i]);
            k = fabs(k - cp.qkv[t * 3 * C + C + i]);
            *qk_err = fmax(*qk_err, fmax(q, k));
        }
    }
    *scale = 1.0 / sqrt((double)HS);
    {
        size_t sw[2] = {D, D}, sx[2] = {D, T}, sb[2] = {T, T};

        if ((rc = asec_io_npy_write(wpath, W, 2, sw, ASEC_IO_F64)) != ASEC_OK ||
            (rc = asec_io_npy_write(xpath, X, 2, sx, ASEC_IO_F64)) != ASEC_OK ||
            (rc = asec_io_npy_write(bpath, cp.att, 2, sb, ASEC_IO_F64)) != ASEC_OK)
            goto done;
    }
done:
    free(cp.att);
    free(cp.qkv);
    free(X);
    free(W);
    free(Aq);
    free(Ak);
    free(u);
    return rc;
}

static int
attack_attention(struct audit *a, struct run *r, asec_model *m, uint64_t seed)
{
    cli_fn fn = method_fn(cmd_attack_methods, "attn-invert");
    char *dir = audit_pathf("%s/runs/%s/attn-invert", a->out, r->dir);
    char *xp = audit_pathf("%s/runs/%s/attn-invert/x_true.npy", a->out, r->dir);
    char *wp = audit_pathf("%s/runs/%s/attn-invert/w.npy", a->out, r->dir);
    char *bp = audit_pathf("%s/runs/%s/attn-invert/attention.npy", a->out, r->dir);
    char *rp = audit_pathf("%s/runs/%s/attn-invert/report.json", a->out, r->dir);
    char *log = audit_pathf("%s/runs/%s/attn-invert/log.txt", a->out, r->dir);
    struct args av = {{NULL}, 0, 0};
    int st = 0, rc;
    double scale = 1;
    json_t *rep = NULL;

    if (dir == NULL || xp == NULL || wp == NULL || bp == NULL || rp == NULL ||
        log == NULL || fn == NULL) {
        st = EXIT_SOFTWARE;
        goto done;
    }
    if ((rc = asec_afile_mkdirs(dir)) != ASEC_OK ||
        (rc = attn_instance(wp, xp, bp, m, a, 0, &scale, &r->ai_qk_err)) != ASEC_OK) {
        snprintf(r->fail, sizeof r->fail, "attention inversion: %s", asec_errmsg());
        st = cli_exit_status(rc);
        goto done;
    }
    args_add(&av, "attn-invert");
    args_add(&av, "--weights=%s", wp);
    args_add(&av, "--attention=%s", bp);
    args_add(&av, "--inputs=%s", xp);
    args_add(&av, "--scale=%.17g", scale);
    args_add(&av, "--restarts=%d", a->quick ? 4 : 8);
    args_add(&av, "--seed=%llu", (unsigned long long)seed);
    args_add(&av, "-q");
    args_add(&av, "--output=%s", dir);
    if (av.oom) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    st = call_command("attack", "attn-invert", fn, av.n, av.v, log);
    if (st != 0) {
        snprintf(r->fail, sizeof r->fail,
                 "attention inversion exited with status %d (see %s)", st, log);
        goto done;
    }
    if ((rep = load_report(rp)) == NULL) {
        st = EXIT_SOFTWARE;
        goto done;
    }
    r->ai_orbit = jget_num(rep, "results.orbit_error");
    r->ai_naive = jget_num(rep, "results.naive_error");
    r->ai_orbit_w = jget_num(rep, "results.orbit_w_error");
    r->ai_ker = jget_num(rep, "results.ker_dim");
    r->ai_rel = jget_num(rep, "results.output_residual_rel");
    /* the definition of success: the input recovered up to the
     * symmetries the attention cannot see (ASEC_ATTN_INVERT_ORBIT_TOL) */
    r->ai_success = r->ai_orbit < ASEC_ATTN_INVERT_ORBIT_TOL;
    r->ai_ok = 1;
done:
    json_decref(rep);
    free(dir);
    free(xp);
    free(wp);
    free(bp);
    free(rp);
    free(log);
    args_free(&av);
    return st;
}

/* ------------------------------------------------------------- outputs */

static double
mean_of(const double *v, size_t n)
{
    double s = 0;

    for (size_t i = 0; i < n; i++)
        s += v[i];
    return n ? s / (double)n : NAN;
}

/* "mean PSNR (recovered/attacked)", recovered meaning PSNR >= 40 dB */
static void
fmt_psnr(char *buf, size_t cap, const struct dlg_out *d)
{
    size_t k = 0;

    if (!d->ok) {
        snprintf(buf, cap, "n/a");
        return;
    }
    for (size_t i = 0; i < d->nimg; i++)
        k += d->psnr[i] >= 40.0;
    snprintf(buf, cap, "%.1f %zu/%zu", mean_of(d->psnr, d->nimg), k, d->nimg);
}

static double
label_acc(const struct run *r)
{
    size_t c = 0;

    for (size_t i = 0; i < r->dlg.nimg; i++)
        c += (size_t)r->dlg.label_ok[i];
    return r->dlg.nimg ? (double)c / (double)r->dlg.nimg : NAN;
}

/* The tightest certified epsilon: PLD upper bound, else RDP. */
static double
best_eps(const struct run *r)
{
    return isfinite(r->eps[1]) || isinf(r->eps[1]) ? r->eps[1] : r->eps[0];
}

/* v as "%.17g" (style 'g'), "%.Nf" ('f') or "%.1e" ('e'); n/a and inf. */
static void
fmt_num(char *buf, size_t cap, double v, char style, int digits)
{
    if (isnan(v))
        snprintf(buf, cap, "n/a");
    else if (isinf(v))
        snprintf(buf, cap, "inf");
    else if (style == 'f')
        snprintf(buf, cap, "%.*f", digits, v);
    else if (style == 'e')
        snprintf(buf, cap, "%.1e", v);
    else
        snprintf(buf, cap, "%.17g", v);
}

/* Text built in memory (open_memstream: f, *buf, *len), written to path
 * atomically, and only when complete.  Closes f and frees path and *buf
 * (NULL: out of memory).  0, or an exit status after a message. */
static int
commit_text(FILE *f, char **buf, size_t *len, char *path)
{
    int rc, st = cli_memstream_close(f) != 0 ? EXIT_TEMPFAIL : 0;

    if (st == 0 && path == NULL) {
        cli_error("out of memory");
        st = EXIT_TEMPFAIL;
    }
    if (st == 0 && (rc = asec_afile_write_all(path, *buf, *len)) != ASEC_OK)
        st = cli_fail(rc);
    free(path);
    free(*buf);
    *buf = NULL;
    *len = 0;
    return st;
}

/* The leakage number of a DLG result: mean PSNR (digits) or mean
 * positional token accuracy (text); NAN when the stage failed. */
static double
leak_of(const struct audit *a, const struct dlg_out *d)
{
    if (!d->ok)
        return NAN;
    return a->text ? mean_of(d->tok_acc, d->nimg) : mean_of(d->psnr, d->nimg);
}

/* s as an RFC 4180 field: quoted, inner quotes doubled. */
static void
csv_quote(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int
write_csv(const struct audit *a)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int st;

    if (f == NULL)
        return EXIT_TEMPFAIL;
    /* text: the same columns with token accuracy for PSNR, and two more */
    fprintf(f,
            "run,target_epsilon,sigma,q,steps,epsilon_rdp,epsilon_pld_lo,epsilon_pld,"
            "epsilon_basic,epsilon_advanced,test_accuracy,%s,dlg_mse,%s,"
            "dlg_rel_error,dlg_label_acc,attn_invert_orbit_error,attn_invert_success,"
            "%s\r\n",
            a->text ? "dlg_windows" : "dlg_images",
            a->text ? "dlg_token_acc" : "dlg_psnr_db",
            a->text ? "dlg_clip_only_token_acc,emb_rows_token_acc,test_perplexity,"
                      "dlg_bag_token_acc"
                    : "dlg_clip_only_psnr_db");
    for (size_t i = 0; i < a->nruns; i++) {
        const struct run *r = &a->runs[i];
        char v[17][40];

        fmt_num(v[0], 40, r->target_eps > 0 ? r->target_eps : INFINITY, 'g', 17);
        fmt_num(v[1], 40, r->ok ? r->sigma : NAN, 'g', 17);
        fmt_num(v[2], 40, r->ok ? r->q : NAN, 'g', 17);
        fmt_num(v[3], 40, r->ok ? r->eps[0] : NAN, 'g', 17);
        fmt_num(v[4], 40, r->ok ? r->eps_lo[1] : NAN, 'g', 17);
        fmt_num(v[5], 40, r->ok ? r->eps[1] : NAN, 'g', 17);
        fmt_num(v[6], 40, r->ok ? r->eps[2] : NAN, 'g', 17);
        fmt_num(v[7], 40, r->ok ? r->eps[3] : NAN, 'g', 17);
        fmt_num(v[8], 40, r->ok ? r->test_acc : NAN, 'g', 17);
        fmt_num(v[9], 40, r->dlg.ok ? mean_of(r->dlg.mse, r->dlg.nimg) : NAN, 'g', 17);
        fmt_num(v[10], 40, leak_of(a, &r->dlg), 'g', 17);
        fmt_num(v[11], 40, r->dlg.ok ? mean_of(r->dlg.rel, r->dlg.nimg) : NAN, 'g', 17);
        fmt_num(v[12], 40, r->dlg.ok ? label_acc(r) : NAN, 'g', 17);
        fmt_num(v[13], 40, r->ai_ok ? r->ai_orbit : NAN, 'g', 17);
        fmt_num(v[14], 40, leak_of(a, &r->clip_only), 'g', 17);
        fmt_num(v[15], 40, r->dlg.ok ? mean_of(r->dlg.rows_acc, r->dlg.nimg) : NAN, 'g',
                17);
        fmt_num(v[16], 40, r->ok ? exp(r->test_loss) : NAN, 'g', 17);
        fprintf(f, "%s,%s,%s,%s,%zu,%s,%s,%s,%s,%s,%s,%zu,%s,%s,%s,%s,%s,%s,%s", r->name,
                v[0], v[1], v[2], r->target_eps > 0 ? a->steps : a->np_steps, v[3], v[4],
                v[5], v[6], v[7], v[8], r->dlg.nimg, v[9], v[10], v[11], v[12], v[13],
                r->ai_ok ? (r->ai_success ? "true" : "false") : "n/a", v[14]);
        if (a->text) {
            char vb[40];

            fmt_num(vb, 40, r->dlg.ok ? mean_of(r->dlg.bag_acc, r->dlg.nimg) : NAN, 'g',
                    17);
            fprintf(f, ",%s,%s,%s", v[15], v[16], vb);
        }
        fprintf(f, "\r\n");
    }
    st = commit_text(f, &buf, &len, audit_pathf("%s/tables/runs.csv", a->out));
    if (st != 0)
        return st;
    /* one row per attacked image */
    buf = NULL;
    len = 0;
    if ((f = open_memstream(&buf, &len)) == NULL)
        return EXIT_TEMPFAIL;
    if (a->text)
        fprintf(f, "run,window,test_index,mse,token_acc,rel_error,label_correct,"
                   "emb_rows_token_acc,bag_token_acc,original,recovered\r\n");
    else
        fprintf(f, "run,image,test_index,mse,psnr_db,rel_error,label_correct\r\n");
    for (size_t i = 0; i < a->nruns; i++) {
        const struct run *r = &a->runs[i];

        for (size_t k = 0; k < r->dlg.nimg; k++) {
            fprintf(f, "%s,%zu,%zu,%.17g,%.17g,%.17g,%s", r->name, k,
                    audit_test_index(a, k), r->dlg.mse[k],
                    a->text ? r->dlg.tok_acc[k] : r->dlg.psnr[k], r->dlg.rel[k],
                    r->dlg.label_ok[k] ? "true" : "false");
            if (a->text) {
                char w[2][512];

                audit_text_words(a, a->win_test + audit_test_index(a, k) * AUDIT_TEXT_T,
                                 w[0], sizeof w[0]);
                audit_text_words(a, r->dlg.ids + k * AUDIT_TEXT_T, w[1], sizeof w[1]);
                fprintf(f, ",%.17g,%.17g,", r->dlg.rows_acc[k], r->dlg.bag_acc[k]);
                csv_quote(f, w[0]);
                fputc(',', f);
                csv_quote(f, w[1]);
            }
            fprintf(f, "\r\n");
        }
    }
    return commit_text(f, &buf, &len, audit_pathf("%s/tables/dlg.csv", a->out));
}

/* plots/NAME.dat and NAME.gp; the non-private run is drawn as a line. */
static int
write_plots(const struct audit *a, int *rendered)
{
    static const struct {
        const char *name, *ylabel, *title;
        int col;
    } plots[] = {
        {"accuracy_vs_epsilon", "test accuracy", "Utility: test accuracy vs epsilon", 2},
        {"leakage_vs_epsilon", "DLG reconstruction PSNR (dB)",
         "Leakage: DLG reconstruction quality vs epsilon", 3}};
    int st = 0;
    const char *ylabel;

    *rendered = 0;
    for (size_t k = 0; k < 2; k++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        double base = NAN;

        if (f == NULL)
            return EXIT_TEMPFAIL;
        fprintf(f,
                "# epsilon(pld, delta=1e-5)  test_accuracy  %s  "
                "dlg_label_acc  dlg_rel_error\n",
                a->text ? "dlg_token_acc" : "dlg_psnr_db");
        for (size_t i = 0; i < a->nruns; i++) {
            const struct run *r = &a->runs[i];
            double acc = r->ok ? r->test_acc : NAN;
            double ps = leak_of(a, &r->dlg);

            if (r->target_eps <= 0) {
                base = k == 0 ? acc : ps;
                continue;
            }
            if (!r->ok)
                continue;
            fprintf(f, "%.17g %.17g %.17g %.17g %.17g\n", best_eps(r), acc, ps,
                    r->dlg.ok ? label_acc(r) : NAN,
                    r->dlg.ok ? mean_of(r->dlg.rel, r->dlg.nimg) : NAN);
        }
        st = commit_text(f, &buf, &len, audit_pathf("%s/plots/%s.dat", a->out,
                                                     plots[k].name));
        if (st != 0)
            return st;
        if ((f = open_memstream(&buf, &len)) == NULL)
            return EXIT_TEMPFAIL;
        ylabel = k == 0 && a->text   ? "next-token accuracy on held-out windows"
                 : k == 1 && a->text ? "DLG token accuracy"
                                     : plots[k].ylabel;
        fprintf(f,
                "# gnuplot script written by attnsec audit; run: gnuplot %s.gp\n"
                "if (!exists(\"term\")) term = \"pngcairo\"\n"
                "set terminal term size 800,500\n"
                "set output \"%s.\" . (term eq \"svg\" ? \"svg\" : \"png\")\n"
                "set title \"%s\"\n"
                "set xlabel \"epsilon (delta = 1e-5, PLD accountant)\"\n"
                "set ylabel \"%s\"\nset logscale x\nset grid\nset key bottom right\n"
                "%s",
                plots[k].name, plots[k].name, plots[k].title, ylabel,
                k == 0 || a->text ? "set yrange [0:1]\n" : "set yrange [0:*]\n");
        if (isfinite(base))
            fprintf(f,
                    "plot \"%s.dat\" using 1:%d with linespoints pt 7 title \"DP-SGD\", "
                    "%.17g with lines dt 2 title \"non-private\"\n",
                    plots[k].name, plots[k].col, base);
        else
            fprintf(f,
                    "plot \"%s.dat\" using 1:%d with linespoints pt 7 title \"DP-SGD\"\n",
                    plots[k].name, plots[k].col);
        st = commit_text(f, &buf, &len, audit_pathf("%s/plots/%s.gp", a->out,
                                                     plots[k].name));
        if (st != 0)
            return st;
        if (strcmp(a->plot, "none") != 0) {
            char *pd = audit_pathf("%s/plots", a->out),
                 *gp = audit_pathf("%s.gp", plots[k].name);
            pid_t pid = fork();
            int ws;

            if (pid == 0) {
                int dn = open("/dev/null", O_WRONLY);

                if (pd == NULL || gp == NULL || chdir(pd) != 0)
                    _exit(127);
                if (dn >= 0) {
                    dup2(dn, STDOUT_FILENO);
                    dup2(dn, STDERR_FILENO);
                }
                execlp("gnuplot", "gnuplot", "-e",
                       strcmp(a->plot, "svg") == 0 ? "term='svg'" : "term='pngcairo'", gp,
                       (char *)NULL);
                _exit(127);
            }
            if (pid > 0 && waitpid(pid, &ws, 0) == pid && WIFEXITED(ws) &&
                WEXITSTATUS(ws) == 0)
                (*rendered)++;
            free(pd);
            free(gp);
        }
    }
    return 0;
}

/* The picture: one row per image; columns: original, then each run's
 * reconstruction; each 8x8 image scaled by ZOOM with a GAP-pixel border. */
enum { ZOOM = 6, GAP = 2 };

static int
write_grid(const struct audit *a, char *name, size_t cap)
{
    size_t h = a->test->image_h, w = a->test->image_w, HW = h * w;
    size_t cols = 1, rows = a->nimg, W, H;
    const struct dlg_out *col[2 * MAX_RUNS + 3];
    unsigned char *px;
    char *path;
    int st = 0;

    /* columns: the original, then per run what DLG recovered (private
     * runs: from the clipped gradient, then from the released one) */
    col[0] = NULL;
    for (size_t i = 0; i < a->nruns; i++) {
        if (a->runs[i].target_eps > 0)
            col[cols++] = &a->runs[i].clip_only;
        col[cols++] = &a->runs[i].dlg;
    }
    W = cols * (w * ZOOM + GAP) + GAP;
    H = rows * (h * ZOOM + GAP) + GAP;
    if ((px = malloc(W * H)) == NULL)
        return EXIT_TEMPFAIL;
    memset(px, 255, W * H);
    for (size_t rr = 0; rr < rows; rr++) {
        for (size_t cc = 0; cc < cols; cc++) {
            const double *src;

            if (cc == 0)
                src = a->test->images + audit_test_index(a, rr) * HW;
            else if (col[cc]->ok && rr < col[cc]->nimg)
                src = col[cc]->recon + rr * HW;
            else
                src = NULL; /* unavailable: a grey tile */
            for (size_t i = 0; i < h * ZOOM; i++)
                for (size_t j = 0; j < w * ZOOM; j++) {
                    double v = src ? src[(i / ZOOM) * w + j / ZOOM] : 0.5;

                    v = v < 0 ? 0 : v > 1 ? 1 : v;
                    /* digits are ink on paper: 1 is black */
                    px[(GAP + rr * (h * ZOOM + GAP) + i) * W + GAP +
                       cc * (w * ZOOM + GAP) + j] =
                        (unsigned char)lround(255.0 * (1.0 - v));
                }
        }
    }
#ifdef HAVE_PNG
    snprintf(name, cap, "recon_grid.png");
    path = audit_pathf("%s/images/%s", a->out, name);
    {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        png_structp png =
            png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
        png_infop info = png ? png_create_info_struct(png) : NULL;

        if (f == NULL || png == NULL || info == NULL || path == NULL ||
            setjmp(png_jmpbuf(png))) {
            png_destroy_write_struct(&png, &info);
            if (f != NULL)
                fclose(f);
            free(buf);
            free(px);
            free(path);
            cli_error("cannot encode the PNG picture");
            return EXIT_SOFTWARE;
        }
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, PNG_COLOR_TYPE_GRAY,
                     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                     PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (size_t i = 0; i < H; i++)
            png_write_row(png, px + i * W);
        png_write_end(png, NULL);
        png_destroy_write_struct(&png, &info);
        st = commit_text(f, &buf, &len, path);
        path = NULL; /* freed by commit_text */
    }
#else
    snprintf(name, cap, "recon_grid.pgm");
    path = audit_pathf("%s/images/%s", a->out, name);
    {
        char hdr[64];
        int n = snprintf(hdr, sizeof hdr, "P5\n%zu %zu\n255\n", W, H);
        asec_afile *f = NULL;
        int rc = path ? asec_afile_open(&f, path) : ASEC_ENOMEM;

        if (rc == ASEC_OK && (rc = asec_afile_write(f, hdr, (size_t)n)) == ASEC_OK &&
            (rc = asec_afile_write(f, px, W * H)) == ASEC_OK)
            rc = asec_afile_commit(f);
        else
            asec_afile_abort(f);
        st = rc == ASEC_OK ? 0 : cli_fail(rc);
    }
#endif
    free(path);
    free(px);
    return st;
}

/* The privacy statement (report.txt and results.statement). */
static void
statement(const struct audit *a, char *buf, size_t cap)
{
    if (a->text)
        snprintf(
            buf, cap,
            "Each DP-SGD run trains on the %zu windows of %d tokens of the shipped\n"
            "corpus with Poisson sampling, per-example clipping and Gaussian noise;\n"
            "epsilon is for add/remove-one-window neighbours at delta = 1e-5,\n"
            "computed by every accountant (certified lower and upper bounds where\n"
            "the accountant has them).  A window is one example: a person whose\n"
            "text spans several windows has a larger epsilon (group privacy).  This\n"
            "audit ran in seeded mode: it measures the mechanisms and is NOT a DP\n"
            "release.  DLG attacks the gradient one client with one held-out window\n"
            "shares in a single DP-SGD step (clipped to C, Gaussian noise of\n"
            "standard deviation sigma C).  Attention inversion attacks the attention\n"
            "probabilities the trained model releases at inference for a held-out\n"
            "window: DP-SGD protects the training data, not inference inputs, so\n"
            "that column is not expected to improve with epsilon.\n",
            a->ntrain, AUDIT_TEXT_T);
    else
        snprintf(
            buf, cap,
            "Each DP-SGD run trains on the %zu shipped training digits with Poisson\n"
            "sampling, per-example clipping and Gaussian noise; epsilon is for\n"
            "add/remove-one-example neighbours at delta = 1e-5, computed by every\n"
            "accountant (certified lower and upper bounds where the accountant has\n"
            "them).  This audit ran in seeded mode: it measures the mechanisms and is\n"
            "NOT a DP release.  DLG attacks the gradient one client with one held-out\n"
            "image shares in a single DP-SGD step (clipped to C, Gaussian noise of\n"
            "standard deviation sigma C).  Attention inversion attacks the attention\n"
            "probabilities the trained model releases at inference for a held-out\n"
            "image: DP-SGD protects the training data, not inference inputs, so that\n"
            "column is not expected to improve with epsilon.\n",
            a->ntrain);
}

/* The first cells of a row of either table: sigma, RDP epsilon and test
 * accuracy (40 bytes each), and the PLD bracket in e (cap bytes). */
static void
privacy_cells(const struct run *r, char *sigma, char *eps_rdp, char *acc, char *e,
              size_t cap)
{
    fmt_num(sigma, 40, r->ok ? r->sigma : NAN, 'f', 3);
    if (!r->ok)
        snprintf(e, cap, "n/a");
    else if (r->target_eps <= 0)
        snprintf(e, cap, "inf (no privacy)");
    else
        snprintf(e, cap, "%.3f-%.3f", r->eps_lo[1], r->eps[1]);
    fmt_num(eps_rdp, 40, r->ok ? r->eps[0] : NAN, 'f', 3);
    fmt_num(acc, 40, r->ok ? r->test_acc : NAN, 'f', 3);
}

/* report.txt of the text audit: the table, and the recovered text. */
static void
write_txt_text(const struct audit *a, FILE *f)
{
    static const char fmt[] =
        "%-11s %6s %-18s %7s %7s %6s | %7s %8s %5s %5s %5s | %10s\n";

    fprintf(f, fmt, "", "", "", "", "next", "", "DLG tok", "DLG tok", "+rows", "rows",
            "DLG", "attention");
    fprintf(f, fmt, "run", "sigma", "epsilon PLD lo-hi", "eps RDP", "tok acc", "ppl",
            "clip", "released", "tok", "tok", "label", "orbit err");
    for (size_t i = 0; i < a->nruns; i++) {
        const struct run *r = &a->runs[i];
        char s[10][40], e[48];

        privacy_cells(r, s[0], s[1], s[2], e, sizeof e);
        fmt_num(s[3], 40, r->ok ? exp(r->test_loss) : NAN, 'f', 1);
        fmt_num(s[9], 40, r->dlg.ok ? mean_of(r->dlg.bag_acc, r->dlg.nimg) : NAN, 'f', 2);
        if (r->target_eps > 0)
            fmt_num(s[4], 40, leak_of(a, &r->clip_only), 'f', 2);
        else
            snprintf(s[4], 40, "-");
        fmt_num(s[5], 40, leak_of(a, &r->dlg), 'f', 2);
        fmt_num(s[6], 40, r->dlg.ok ? mean_of(r->dlg.rows_acc, r->dlg.nimg) : NAN, 'f',
                2);
        fmt_num(s[7], 40, r->dlg.ok ? label_acc(r) : NAN, 'f', 2);
        fmt_num(s[8], 40, r->ai_ok ? r->ai_orbit : NAN, 'e', 1);
        if (r->ai_ok)
            strcat(s[8], r->ai_success ? " ok" : " no");
        fprintf(f, fmt, r->name, s[0], e, s[1], s[2], s[3], s[4], s[5], s[9], s[6], s[7],
                s[8]);
    }
    fprintf(f,
            "\nColumns.  epsilon: the PLD accountant's certified lower bound - upper\n"
            "bound, and the RDP bound (delta = 1e-5; every accountant is in\n"
            "report.json and tables/runs.csv).  next tok acc: how often the model's\n"
            "top prediction is the token that follows a held-out window (%zu test\n"
            "windows; the most frequent token alone scores about 0.08), ppl: its\n"
            "perplexity.\n"
            "DLG tok: the attack on the gradient of one client holding one held-out\n"
            "window (B = 1, %d tokens): it optimises the window's token embeddings,\n"
            "decodes each to the nearest row of the embedding table by cosine and\n"
            "scores the fraction right at their position, mean over %zu windows;\n"
            "'clip': the gradient clipped to C without noise; 'released': what one\n"
            "DP-SGD step releases, clipped plus Gaussian noise of standard deviation\n"
            "sigma C per entry (the raw gradient for the non-private run).  The attack\n"
            "matches the gradient of every parameter but the embedding table with\n"
            "the cosine loss, L-BFGS from %zu random starts (%zu with noise).\n"
            "rows tok: the embedding table's gradient itself, whose nonzero rows are\n"
            "the window's tokens: the fraction of its distinct tokens among the rows\n"
            "of largest norm (released gradient).  +rows tok: both together (as TAG\n"
            "and LAMP use the embedding gradient): DLG's embeddings decoded among the\n"
            "%d rows of largest norm only.  label: the next token recovered\n"
            "(iDLG) from the released gradient.  The noise has a norm of about\n"
            "sigma C sqrt(P) (P = %zu parameters) against a clipped signal of norm C.\n"
            "attention: attention inversion (arXiv 2310.12462) of the probabilities\n"
            "the trained model releases at layer 0, head 0 for a held-out window; the\n"
            "unknown is the layer's input X = [ln1(x); 1] (%zu x %zu), W has a kernel\n"
            "of dimension %s; orbit err is the relative error modulo the maps that\n"
            "preserve W, 'ok' when below 1e-6 (largest q/k mismatch of X against the\n"
            "forward pass: %s).  n/a: the stage failed (see below).\n",
            a->ntest, AUDIT_TEXT_T, a->nimg, a->restarts, a->noisy_restarts, AUDIT_TEXT_T,
            a->params, a->width + 1, a->tokens, a->ker_text, a->qk_text);
    fprintf(f, "\nRecovered text (DLG on the released gradient)\n"
               "---------------------------------------------\n");
    for (size_t k = 0; k < a->nimg; k++) {
        char w[512];

        audit_text_words(a, a->win_test + audit_test_index(a, k) * AUDIT_TEXT_T, w,
                         sizeof w);
        fprintf(f, "window %zu (test window %zu)\n  %-12s %s\n", k,
                audit_test_index(a, k), "original", w);
        for (size_t i = 0; i < a->nruns; i++) {
            const struct dlg_out *d = &a->runs[i].dlg;

            if (d->ok && k < d->nimg) {
                audit_text_words(a, d->ids + k * AUDIT_TEXT_T, w, sizeof w);
                fprintf(f, "  %-12s %s  (%.0f/%d)\n", a->runs[i].name, w,
                        d->tok_acc[k] * AUDIT_TEXT_T, AUDIT_TEXT_T);
            } else
                fprintf(f, "  %-12s n/a\n", a->runs[i].name);
        }
    }
}

static int
write_txt(const struct audit *a, const char *grid, int rendered)
{
    char *buf = NULL, stmt[1536], ema[80] = "";
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (f == NULL)
        return EXIT_TEMPFAIL;
    statement(a, stmt, sizeof stmt);
    if (!a->text)
        snprintf(ema, sizeof ema,
                 "\nThe DP-SGD runs release the parameter average (EMA, decay %g).",
                 AUDIT_EMA);
    fprintf(f,
            "attnsec audit: privacy / utility / leakage of a %s\n\n"
            "Privacy statement\n-----------------\n%s\n",
            a->text ? "token transformer on the shipped corpus"
                    : "vision transformer on the shipped digits",
            stmt);
    fprintf(f,
            "Training (seed %llu): the non-private run takes %zu Adam steps of\n"
            "expected batch %zu (lr %g); each DP-SGD run takes %zu steps of SGD with\n"
            "momentum 0.9 at expected batch %zu (q = %.4g), lr %g, clip C = %g, with\n"
            "sigma calibrated so that the RDP epsilon after the last step is the\n"
            "target.  Both sample with Poisson sampling.%s\n\n",
            (unsigned long long)a->seed, a->np_steps, a->np_batch, a->np_lr, a->steps,
            a->batch, (double)a->batch / (double)a->ntrain, a->lr, a->clip,
            ema);
    fprintf(f, "Privacy / utility / leakage\n---------------------------\n");
    if (a->text) {
        write_txt_text(a, f);
        goto tail;
    }
    fprintf(f, "%-11s %6s %-18s %7s %8s | %11s %11s %7s %5s | %11s\n", "", "", "", "", "",
            "DLG PSNR", "DLG PSNR", "DLG", "DLG", "attention");
    fprintf(f, "%-11s %6s %-18s %7s %8s | %11s %11s %7s %5s | %11s\n", "run", "sigma",
            "epsilon PLD lo-hi", "eps RDP", "test acc", "clip only", "released",
            "rel err", "label", "orbit err");
    for (size_t i = 0; i < a->nruns; i++) {
        const struct run *r = &a->runs[i];
        char s[8][40], e[48];

        privacy_cells(r, s[0], s[1], s[2], e, sizeof e);
        if (r->target_eps > 0)
            fmt_psnr(s[7], 40, &r->clip_only);
        else
            snprintf(s[7], 40, "-");
        fmt_psnr(s[3], 40, &r->dlg);
        fmt_num(s[4], 40, r->dlg.ok ? mean_of(r->dlg.rel, r->dlg.nimg) : NAN, 'f', 3);
        fmt_num(s[5], 40, r->dlg.ok ? label_acc(r) : NAN, 'f', 2);
        fmt_num(s[6], 40, r->ai_ok ? r->ai_orbit : NAN, 'e', 1);
        if (r->ai_ok)
            strcat(s[6], r->ai_success ? " ok" : " no");
        fprintf(f, "%-11s %6s %-18s %7s %8s | %11s %11s %7s %5s | %11s\n", r->name, s[0],
                e, s[1], s[2], s[7], s[3], s[4], s[5], s[6]);
    }
    fprintf(f,
            "\nColumns.  epsilon: the PLD accountant's certified lower bound - upper\n"
            "bound, and the RDP bound (delta = 1e-5; every accountant is in\n"
            "report.json and tables/runs.csv).  test acc: accuracy on the 360 test\n"
            "digits (chance is 0.1).\n"
            "DLG: the attack on the gradient of one client holding one held-out image\n"
            "(B = 1), mean over %zu images of the PSNR in dB against the original in\n"
            "[0, 1] and how many were recovered (PSNR >= 40 dB; ~5 dB is noise).\n"
            "'clip only':\n"
            "the gradient clipped to C without noise; 'released': what one DP-SGD step\n"
            "releases, clipped plus Gaussian noise of standard deviation sigma C per\n"
            "entry (the raw gradient for the non-private run).  rel err: relative L2\n"
            "error and label: fraction of labels recovered (iDLG), both on the released\n"
            "gradient.  The attack uses the cosine matching loss, which ignores the\n"
            "scale clipping changes: %zu starts on noiseless gradients, the first\n"
            "from the mean training image of the label read off the gradient; %zu\n"
            "random starts with noise.  The noise has a norm of about sigma C\n"
            "sqrt(P) (P = %zu parameters) against a clipped signal of norm C: it,\n"
            "not clipping, is what defeats the attack.\n"
            "attention: attention inversion (arXiv 2310.12462) of the probabilities\n"
            "the trained model releases at layer 0, head 0 for a held-out image;\n"
            "the unknown is the layer's input X = [ln1(x); 1] (%zu x %zu, the constant\n"
            "row carries the query/key biases), W = [W_q b_q]^T [W_k b_k] has a kernel\n"
            "of dimension %s, so X is identifiable only up to the maps that preserve\n"
            "W; orbit err is the relative error modulo them, 'ok' when below 1e-6\n"
            "(exact recovery; largest q/k mismatch of X against the forward pass:\n"
            "%s).  n/a: the stage failed (see below).\n",
            a->nimg, a->restarts, a->noisy_restarts, a->params, a->width + 1, a->tokens,
            a->ker_text, a->qk_text);
tail:
    for (size_t i = 0; i < a->nruns; i++)
        if (a->runs[i].fail[0] != '\0')
            fprintf(f, "\nUnavailable in run %s: %s\n", a->runs[i].name, a->runs[i].fail);
    if (a->text)
        fprintf(
            f,
            "\nFiles: report.json (attnsec-report(5)), tables/runs.csv, tables/dlg.csv\n"
            "(with the original and recovered text), plots/accuracy_vs_epsilon.{dat,gp}\n"
            "and plots/leakage_vs_epsilon.{dat,gp}%s, runs/*/ (each run's model\n"
            "and the attention-inversion report).\n",
            rendered ? " (+ rendered images)" : "");
    else
        fprintf(
            f,
            "\nFiles: report.json (attnsec-report(5)), tables/runs.csv, tables/dlg.csv,\n"
            "plots/accuracy_vs_epsilon.{dat,gp}, plots/leakage_vs_epsilon.{dat,gp},\n"
            "images/%s (rows: held-out images; columns: original, then what DLG\n"
            "recovered in each run, in the order of the table, a private run with\n"
            "two columns: clip only, then released), runs/*/ (each training run's\n"
            "own report, model and curve).\n%s",
            grid, rendered ? "The plots are rendered beside their scripts.\n" : "");
    if (!rendered && strcmp(a->plot, "none") != 0)
        fprintf(f,
                "The plots were not rendered: install gnuplot (Debian: gnuplot-nox) and "
                "run 'gnuplot NAME.gp' in plots/.\n");
    return commit_text(f, &buf, &len, audit_pathf("%s/report.txt", a->out));
}

/* o[key] = v, or null with key_nonfinite for inf/nan (attnsec-report(5)). */
static void
jset(json_t *o, const char *key, double v)
{
    if (o == NULL)
        return;
    if (isfinite(v)) {
        json_object_set_new(o, key, json_real(v));
    } else {
        char k2[96];

        snprintf(k2, sizeof k2, "%s_nonfinite", key);
        json_object_set_new(o, key, json_null());
        json_object_set_new(o, k2,
                            json_string(isnan(v) ? "nan"
                                        : v > 0  ? "inf"
                                                 : "-inf"));
    }
}

static int
write_json_report(const struct audit *a, const char *grid)
{
    asec_report *rep = a->rep;
    char *p = NULL, stmt[1536];
    int rc;

#define TRY(x)                                                                           \
    do {                                                                                 \
        if ((rc = (x)) != ASEC_OK)                                                       \
            goto fail;                                                                   \
    } while (0)
    TRY(asec_report_set_str(rep, "config.data", a->text ? "text" : "digits"));
    TRY(asec_report_set_str(rep, "config.model",
                            a->text ? "text transformer (C 32, 1 block, 2 heads, "
                                      "bidirectional, mean pooling, K = V)"
                                    : "default vit"));
    if (a->text)
        TRY(asec_report_set_int(rep, "config.window_tokens", AUDIT_TEXT_T));
    TRY(asec_report_set_bool(rep, "config.quick", a->quick));
    TRY(asec_report_set_int(rep, "config.seed", (long long)a->seed));
    TRY(asec_report_set_int(rep, "config.steps", (long long)a->steps));
    TRY(asec_report_set_int(rep, "config.batch_size", (long long)a->batch));
    TRY(asec_report_set_num(rep, "config.lr", a->lr));
    TRY(asec_report_set_num(rep, "config.clip", a->clip));
    TRY(asec_report_set_str(rep, "config.optimizer", "momentum"));
    TRY(asec_report_set_int(rep, "config.np_steps", (long long)a->np_steps));
    TRY(asec_report_set_int(rep, "config.np_batch_size", (long long)a->np_batch));
    TRY(asec_report_set_num(rep, "config.np_lr", a->np_lr));
    TRY(asec_report_set_str(rep, "config.np_optimizer", "adam"));
    TRY(asec_report_set_num(rep, "config.delta", DELTA));
    TRY(asec_report_set_int(rep, "config.images", (long long)a->nimg));
    TRY(asec_report_set_int(rep, "config.dlg_restarts", (long long)a->restarts));
    for (size_t i = 0; i < a->neps; i++)
        TRY(asec_report_append_num(rep, "config.epsilons", a->eps[i]));
    TRY(asec_report_set_str(rep, "rng.mode", "seeded"));
    TRY(asec_report_set_int(rep, "rng.seed", (long long)a->seed));
    TRY(asec_report_set_bool(rep, "rng.dp_release", 0));
    TRY(asec_report_set_str(rep, "rng.note", "NOT a DP release"));
    statement(a, stmt, sizeof stmt);
    TRY(asec_report_set_str(rep, "results.statement", stmt));
    if (!a->text)
        TRY(asec_report_set_str(rep, "results.image_grid", grid));
    for (size_t i = 0; i < a->nruns; i++) {
        const struct run *r = &a->runs[i];
        char *js;
        json_t *o = json_object(), *acc = json_object(), *dlg, *per = json_array();

        json_object_set_new(o, "name", json_string(r->name));
        json_object_set_new(o, "dir", json_string(r->dir));
        json_object_set_new(o, "private", json_boolean(r->target_eps > 0));
        json_object_set_new(o, "target_epsilon",
                            r->target_eps > 0 ? json_real(r->target_eps) : json_null());
        json_object_set_new(o, "trained", json_boolean(r->ok));
        if (r->fail[0] != '\0')
            json_object_set_new(o, "unavailable", json_string(r->fail));
        if (r->ok) {
            jset(o, "sigma", r->sigma);
            jset(o, "q", r->q);
            json_object_set_new(
                o, "steps",
                json_integer((json_int_t)(r->target_eps > 0 ? a->steps : a->np_steps)));
            if (isfinite(r->test_acc))
                json_object_set_new(o, "test_accuracy", json_real(r->test_acc));
            if (isfinite(r->train_acc))
                json_object_set_new(o, "train_accuracy", json_real(r->train_acc));
            if (a->text && isfinite(r->test_loss)) {
                json_object_set_new(o, "test_loss", json_real(r->test_loss));
                jset(o, "test_perplexity", exp(r->test_loss));
            }
            for (int k = 0; k < 4; k++) {
                json_t *e = json_object();

                if (isfinite(r->eps[k])) {
                    json_object_set_new(e, "epsilon", json_real(r->eps[k]));
                    if (isfinite(r->eps_lo[k]))
                        json_object_set_new(e, "bounds",
                                            json_pack("[f, f]", r->eps_lo[k], r->eps[k]));
                } else {
                    json_object_set_new(e, "epsilon", json_null());
                    json_object_set_new(e, "epsilon_nonfinite",
                                        json_string(isinf(r->eps[k]) ? "inf" : "nan"));
                }
                json_object_set_new(acc, acct_names[k], e);
            }
            json_object_set_new(o, "accountant",
                                json_pack("{s:o, s:f, s:s, s:s}", "epsilon", acc, "delta",
                                          DELTA, "sampling", "poisson", "relation",
                                          "add-remove"));
            acc = NULL;
        }
        json_decref(acc);
        if (r->dlg.ok) {
            for (size_t k = 0; k < r->dlg.nimg; k++) {
                json_t *e = json_pack("{s:I, s:b}", "test_index",
                                      (json_int_t)audit_test_index(a, k), "label_correct",
                                      r->dlg.label_ok[k]);

                jset(e, "mse", r->dlg.mse[k]);
                jset(e, "rel_error", r->dlg.rel[k]);
                if (a->text) {
                    char w[512];

                    jset(e, "token_acc", r->dlg.tok_acc[k]);
                    jset(e, "emb_rows_token_acc", r->dlg.rows_acc[k]);
                    jset(e, "bag_token_acc", r->dlg.bag_acc[k]);
                    audit_text_words(a,
                                     a->win_test + audit_test_index(a, k) * AUDIT_TEXT_T,
                                     w, sizeof w);
                    json_object_set_new(e, "original", json_string(w));
                    audit_text_words(a, r->dlg.ids + k * AUDIT_TEXT_T, w, sizeof w);
                    json_object_set_new(e, "recovered", json_string(w));
                } else
                    jset(e, "psnr_db", r->dlg.psnr[k]);
                json_array_append_new(per, e);
            }
            dlg = json_pack("{s:I, s:o}", a->text ? "windows" : "images",
                            (json_int_t)r->dlg.nimg, a->text ? "per_window" : "per_image",
                            per);
            jset(dlg, "mse", mean_of(r->dlg.mse, r->dlg.nimg));
            if (a->text) {
                jset(dlg, "token_acc", leak_of(a, &r->dlg));
                jset(dlg, "emb_rows_token_acc", mean_of(r->dlg.rows_acc, r->dlg.nimg));
                jset(dlg, "bag_token_acc", mean_of(r->dlg.bag_acc, r->dlg.nimg));
            } else
                jset(dlg, "psnr_db", mean_of(r->dlg.psnr, r->dlg.nimg));
            jset(dlg, "rel_error", mean_of(r->dlg.rel, r->dlg.nimg));
            jset(dlg, "label_acc", label_acc(r));
            jset(dlg, "seconds", r->dlg.seconds);
            json_object_set_new(dlg, "loss", json_string("cos"));
            json_object_set_new(dlg, "gradient",
                                json_string(r->target_eps > 0 ? "clipped+noise" : "raw"));
            json_object_set_new(o, "recon", dlg);
        } else
            json_decref(per);
        if (r->clip_only.ok) {
            dlg = json_pack("{s:I, s:s, s:s}", a->text ? "windows" : "images",
                            (json_int_t)r->clip_only.nimg, "gradient", "clipped", "loss",
                            "cos");
            jset(dlg, a->text ? "token_acc" : "psnr_db", leak_of(a, &r->clip_only));
            jset(dlg, "rel_error", mean_of(r->clip_only.rel, r->clip_only.nimg));
            jset(dlg, "mse", mean_of(r->clip_only.mse, r->clip_only.nimg));
            json_object_set_new(o, "recon_clip_only", dlg);
        }
        if (r->ai_ok) {
            json_t *e =
                json_pack("{s:b, s:s, s:f}", "success", r->ai_success, "layer_head",
                          "0/0", "success_tol", ASEC_ATTN_INVERT_ORBIT_TOL);

            jset(e, "orbit_error", r->ai_orbit);
            jset(e, "naive_error", r->ai_naive);
            jset(e, "orbit_w_error", r->ai_orbit_w);
            jset(e, "ker_dim", r->ai_ker);
            jset(e, "output_residual_rel", r->ai_rel);
            jset(e, "qk_check_error", r->ai_qk_err);
            json_object_set_new(e, "unknown", json_string("[ln1(x); 1] at layer 0"));
            json_object_set_new(o, "attn_invert", e);
        }
        js = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
        json_decref(o);
        if (js == NULL) {
            rc = ASEC_ENOMEM;
            goto fail;
        }
        rc = asec_report_append_json(rep, "results.runs", js);
        free(js);
        if (rc != ASEC_OK)
            goto fail;
        if (r->fail[0] != '\0')
            TRY(asec_report_warn(rep, "run %s: %s", r->name, r->fail));
    }
    TRY(asec_report_finish(rep, 0));
    p = audit_pathf("%s/report.json", a->out);
    if (p == NULL) {
        rc = ASEC_ENOMEM;
        goto fail;
    }
    TRY(asec_report_write(rep, p));
    if (a->json)
        TRY(asec_report_print(rep, stdout));
    free(p);
    return 0;
#undef TRY
fail:
    free(p);
    return cli_fail(rc);
}

/* ----------------------------------------------------------------- main */

/* Progress: one line per stage on standard error ("[4/12] eps=8: ..."),
 * with the elapsed wall and CPU time (the machine may be shared, and the
 * CPU time says where the work goes); silent with -q. */
static void
stage(const struct audit *a, size_t k, const struct run *r, const char *what)
{
    static struct timespec t0, c0;
    struct timespec t, c;

    if (k == 1) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    }
    if (cli_verbosity == 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &t);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c);
    fprintf(stderr, "%s: [%zu/%zu] %5.0f s (CPU %.0f s)  %s: %s\n", cli_command(), k,
            3 * a->nruns,
            (double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec),
            (double)(c.tv_sec - c0.tv_sec) + 1e-9 * (double)(c.tv_nsec - c0.tv_nsec),
            r->name, what);
}

static int
parse_eps_list(struct audit *a, const char *text)
{
    char *copy = strdup(text), *tok, *save = NULL;
    int st = 0;

    if (copy == NULL)
        return EXIT_TEMPFAIL;
    a->neps = 0;
    for (tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (a->neps == MAX_RUNS) {
            st = cli_usage_error("--epsilons: at most %d values", MAX_RUNS);
            break;
        }
        if ((st = cli_parse_double("--epsilons", tok, 1e-3, 1e3, &a->eps[a->neps])) != 0)
            break;
        a->neps++;
    }
    free(copy);
    if (st == 0 && a->neps == 0)
        st = cli_usage_error("--epsilons: empty list");
    return st;
}

static int
cmp_desc(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;

    return (a < b) - (a > b);
}

int
cmd_audit(int argc, char **argv)
{
    enum {
        OPT_QUICK = 256,
        OPT_DATA,
        OPT_LR,
        OPT_PLOT,
        OPT_JSON,
        OPT_NP_STEPS,
        OPT_NP_BATCH,
        OPT_NP_LR
    };
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"quick", no_argument, NULL, OPT_QUICK},
        {"data", required_argument, NULL, OPT_DATA},
        {"epsilons", required_argument, NULL, 'e'},
        {"steps", required_argument, NULL, 'T'},
        {"batch-size", required_argument, NULL, 'b'},
        {"lr", required_argument, NULL, OPT_LR},
        {"clip", required_argument, NULL, 'C'},
        {"np-steps", required_argument, NULL, OPT_NP_STEPS},
        {"np-batch-size", required_argument, NULL, OPT_NP_BATCH},
        {"np-lr", required_argument, NULL, OPT_NP_LR},
        {"images", required_argument, NULL, 'n'},
        {"restarts", required_argument, NULL, 'r'},
        {"plot", required_argument, NULL, OPT_PLOT},
        {"seed", required_argument, NULL, 's'},
        {"json", no_argument, NULL, OPT_JSON},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    struct audit a;
    const char *eps_text = NULL, *data = "digits";
    size_t steps = 0, nimg = 0, restarts = 0, np_steps = 0, batch = 0, np_batch = 0;
    double lr = 0;
    int c, st = 0, seeded = 0, rendered = 0, rc;
    char grid[64] = "";
    asec_model *m = NULL;

    memset(&a, 0, sizeof a);
    a.out = "audit-report";
    a.clip = 1.0;
    a.np_lr = 0.003;
    a.plot = "png";
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:e:T:b:C:n:r:s:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            a.out = optarg;
            break;
        case OPT_QUICK:
            a.quick = 1;
            break;
        case OPT_DATA:
            data = optarg;
            break;
        case 'e':
            eps_text = optarg;
            break;
        case 'T':
            st = cli_parse_size("--steps", optarg, 1, 1000000, &steps);
            break;
        case 'b':
            st = cli_parse_size("--batch-size", optarg, 1, 1000000, &batch);
            break;
        case OPT_LR:
            st = cli_parse_double("--lr", optarg, 1e-9, 10, &lr);
            break;
        case 'C':
            st = cli_parse_double("--clip", optarg, 1e-9, 1e9, &a.clip);
            break;
        case OPT_NP_STEPS:
            st = cli_parse_size("--np-steps", optarg, 1, 1000000, &np_steps);
            break;
        case OPT_NP_BATCH:
            st = cli_parse_size("--np-batch-size", optarg, 1, 1000000, &np_batch);
            break;
        case OPT_NP_LR:
            st = cli_parse_double("--np-lr", optarg, 1e-9, 10, &a.np_lr);
            break;
        case 'n':
            st = cli_parse_size("--images", optarg, 1, MAX_IMAGES, &nimg);
            break;
        case 'r':
            st = cli_parse_size("--restarts", optarg, 1, 1000, &restarts);
            break;
        case OPT_PLOT:
            if (strcmp(optarg, "png") != 0 && strcmp(optarg, "svg") != 0 &&
                strcmp(optarg, "none") != 0)
                return cli_usage_error("--plot: '%s' is not png, svg or none", optarg);
            a.plot = optarg;
            break;
        case 's':
            st = cli_parse_u64("--seed", optarg, &a.seed);
            seeded = 1;
            break;
        case OPT_JSON:
            a.json = 1;
            break;
        case 'q':
            cli_verbosity = 0;
            break;
        case 'v':
            cli_verbosity = 2;
            break;
        case 'h':
            return usage();
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
        if (st != 0)
            return st;
    }
    if (optind != argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (strcmp(data, "text") == 0)
        a.text = 1;
    else if (strcmp(data, "digits") != 0)
        return cli_usage_error("--data: '%s' is not digits or text", data);
    if ((st = parse_eps_list(&a, eps_text  ? eps_text
                                 : a.quick ? QUICK_EPS
                                           : "1,3,8")) != 0)
        return st;
    qsort(a.eps, a.neps, sizeof a.eps[0], cmp_desc);
    if (a.text) {
        a.steps = steps ? steps : a.quick ? TEXT_QUICK_STEPS : TEXT_STEPS;
        a.np_steps = np_steps ? np_steps : a.quick ? QUICK_NP_STEPS : DEFAULT_NP_STEPS;
        a.restarts = restarts ? restarts : 2;
        a.batch = batch ? batch : 512;
        a.lr = lr > 0 ? lr : 0.5;
    } else {
        a.steps = steps ? steps : a.quick ? QUICK_STEPS : DEFAULT_STEPS;
        a.np_steps = np_steps ? np_steps : a.quick ? QUICK_NP_STEPS : DEFAULT_NP_STEPS;
        a.restarts = restarts ? restarts : a.quick ? 4 : 8;
        a.batch = batch ? batch : 512;
        a.lr = lr > 0 ? lr : 0.2;
    }
    a.np_batch = np_batch ? np_batch : 256;
    a.nimg = nimg ? nimg : a.quick ? 2 : 4;
    a.noisy_restarts = a.restarts / 4 ? a.restarts / 4 : 1;
    /* the one way to find the shipped data (also for the commands the
     * audit calls): $ATTNSEC_DATADIR, installed, source tree */
    if (a.text)
        rc = audit_text_load(&a);
    else if ((rc = asec_data_load(&a.test, cli_datadir(), "digits", "test")) == ASEC_OK) {
        asec_data *tr = NULL;

        rc = asec_data_load(&tr, cli_datadir(), "digits", "train");
        a.ntrain = tr != NULL ? tr->n : 0;
        if (rc == ASEC_OK)
            rc = class_means(&a.prior, tr);
        asec_data_free(tr);
    }
    if (rc != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    if (a.batch > a.ntrain || a.np_batch > a.ntrain) {
        st = cli_usage_error("--%sbatch-size %zu exceeds the %zu training %s",
                             a.batch > a.ntrain ? "" : "np-",
                             a.batch > a.ntrain ? a.batch : a.np_batch, a.ntrain,
                             a.text ? "windows" : "images");
        goto done;
    }
    if (!seeded)
        randombytes_buf(&a.seed, sizeof a.seed);
    a.seed &= (UINT64_C(1) << 53) - 1; /* exact in JSON */
    if (cli_verbosity > 0)
        fprintf(stderr, "%s: seeded run (seed %llu): NOT a DP release\n", cli_command(),
                (unsigned long long)a.seed);

    /* runs: non-private first, then decreasing epsilon */
    snprintf(a.runs[0].name, sizeof a.runs[0].name, "non-private");
    snprintf(a.runs[0].dir, sizeof a.runs[0].dir, "nonprivate");
    a.nruns = 1;
    for (size_t i = 0; i < a.neps; i++, a.nruns++) {
        struct run *r = &a.runs[a.nruns];

        r->target_eps = a.eps[i];
        snprintf(r->name, sizeof r->name, "eps=%g", a.eps[i]);
        snprintf(r->dir, sizeof r->dir, "eps%g", a.eps[i]);
    }
    for (size_t i = 0; i < a.nruns; i++) {
        a.runs[i].eps[0] = a.runs[i].eps[1] = a.runs[i].eps[2] = a.runs[i].eps[3] = NAN;
        a.runs[i].eps_lo[0] = a.runs[i].eps_lo[1] = NAN;
        a.runs[i].eps_lo[2] = a.runs[i].eps_lo[3] = NAN;
        a.runs[i].test_acc = a.runs[i].train_acc = a.runs[i].test_loss = NAN;
    }
    {
        char *d[4] = {audit_pathf("%s/tables", a.out), audit_pathf("%s/plots", a.out),
                      audit_pathf("%s/runs", a.out),
                      a.text ? NULL : audit_pathf("%s/images", a.out)};

        rc = ASEC_OK;
        for (int k = 0; k < (a.text ? 3 : 4); k++) {
            if (rc == ASEC_OK)
                rc = d[k] ? asec_afile_mkdirs(d[k]) : ASEC_ENOMEM;
            free(d[k]);
        }
        if (rc != ASEC_OK) {
            st = cli_fail(rc);
            goto done;
        }
    }
    if ((rc = asec_report_alloc(&a.rep, "audit", argc, argv)) != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    {
        static const char *const files[] = {"digits/train_images", "digits/train_labels",
                                            "digits/test_images", "digits/test_labels"};
        static const char *const tfiles[] = {"text/train_tokens", "text/test_tokens",
                                             "text/vocab"};

        for (size_t k = 0; k < (a.text ? 3u : 4u); k++) {
            char *fp =
                audit_pathf("%s/%s.%s", cli_datadir(), a.text ? tfiles[k] : files[k],
                            a.text && k == 2 ? "txt" : "npy");

            rc = fp ? asec_report_add_input(a.rep, fp) : ASEC_ENOMEM;
            free(fp);
            if (rc != ASEC_OK) {
                st = cli_fail(rc);
                goto done;
            }
        }
    }

    for (size_t i = 0; i < a.nruns; i++) {
        struct run *r = &a.runs[i];
        char *mp;

        stage(&a, 3 * i + 1, r, "training with DP-SGD");
        st = a.text ? audit_text_train(&a, r, a.seed + i, &m) : train(&a, r, a.seed + i);
        if (st == EXIT_CANTCREAT || st == EXIT_IOERR || st == EXIT_TEMPFAIL)
            goto done; /* output problems end the audit */
        if (!r->ok) {
            st = 0;
            continue;
        }
        rc = ASEC_OK;
        if (m == NULL) {
            mp = audit_pathf("%s/runs/%s/model.safetensors", a.out, r->dir);
            rc = mp ? asec_model_load(&m, mp) : ASEC_ENOMEM;
            free(mp);
        }
        if (rc != ASEC_OK) {
            snprintf(r->fail, sizeof r->fail, "cannot load the trained model: %s",
                     asec_errmsg());
            continue;
        }
        a.params = asec_model_param_count(m);
        a.width = asec_model_get_arch(m)->channels;
        a.tokens = asec_model_tokens(m, 0);
        stage(&a, 3 * i + 2, r, "DLG on client gradients");
        rc = (a.text ? audit_text_dlg : attack_dlg)(&a, r, &r->dlg, 1, m,
                                                    a.seed + 100 + i);
        if (rc == ASEC_OK && r->target_eps > 0)
            rc = (a.text ? audit_text_dlg : attack_dlg)(&a, r, &r->clip_only, 0, m,
                                                        a.seed + 100 + i);
        if (rc == ASEC_ENOMEM) {
            st = cli_fail(rc);
            goto done;
        }
        stage(&a, 3 * i + 3, r, "attention inversion");
        st = attack_attention(&a, r, m, a.seed + 200 + i);
        if (st == EXIT_CANTCREAT || st == EXIT_IOERR || st == EXIT_TEMPFAIL)
            goto done;
        st = 0;
        asec_model_free(m);
        m = NULL;
    }
    {
        double ker = NAN, qk = 0;

        for (size_t i = 0; i < a.nruns; i++)
            if (a.runs[i].ai_ok) {
                ker = isnan(ker) || a.runs[i].ai_ker == ker ? a.runs[i].ai_ker : -1;
                qk = fmax(qk, a.runs[i].ai_qk_err);
            }
        if (isnan(ker))
            snprintf(a.ker_text, sizeof a.ker_text, "n/a");
        else if (ker < 0)
            snprintf(a.ker_text, sizeof a.ker_text, "(varies by run)");
        else
            snprintf(a.ker_text, sizeof a.ker_text, "%.0f", ker);
        snprintf(a.qk_text, sizeof a.qk_text, "%.1e", qk);
    }
    if ((st = write_csv(&a)) != 0 || (st = write_plots(&a, &rendered)) != 0 ||
        (!a.text && (st = write_grid(&a, grid, sizeof grid)) != 0) ||
        (st = write_txt(&a, grid, rendered)) != 0 ||
        (st = write_json_report(&a, grid)) != 0)
        goto done;
    if (cli_verbosity > 0) {
        fprintf(stderr,
                "%s: report written to %s/report.txt (and report.json, tables/, "
                "plots/%s%s)\n",
                cli_command(), a.out, a.text ? "" : ", images/", grid);
        if (!rendered && strcmp(a.plot, "none") != 0)
            fprintf(stderr,
                    "%s: hint: install gnuplot (Debian: gnuplot-nox) to render the "
                    "plots; the .dat and .gp files are in %s/plots\n",
                    cli_command(), a.out);
    }
done:
    asec_model_free(m);
    for (size_t i = 0; i < a.nruns; i++) {
        free(a.runs[i].dlg.recon);
        free(a.runs[i].clip_only.recon);
        free(a.runs[i].dlg.ids);
        free(a.runs[i].clip_only.ids);
    }
    audit_text_free(&a);
    free(a.prior);
    asec_data_free(a.test);
    asec_report_free(a.rep);
    return st;
}
