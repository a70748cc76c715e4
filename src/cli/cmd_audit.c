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

#include "attnsec/attnsec.h"
#include "attnsec/dlg.h"
#include "attnsec/dpsgd.h"
#include "cli.h"
#include "commands.h"

#define MAX_RUNS 9
#define MAX_IMAGES 16
#define DELTA 1e-5

struct run {
    char name[32];     /* "non-private", "eps=8" */
    char dir[32];      /* runs/<dir> */
    double target_eps; /* 0: non-private */
    int ok;            /* training finished */
    char fail[256];    /* why a stage failed */
    double sigma, q, clip;
    double eps[4], eps_lo[4]; /* rdp, pld, basic(classic), advanced; NAN when absent */
    double test_acc, train_acc;
    /* DLG */
    size_t nimg;
    double mse[MAX_IMAGES], psnr[MAX_IMAGES], rel[MAX_IMAGES];
    int label_ok[MAX_IMAGES];
    double *recon; /* (nimg, 64) */
    double dlg_seconds;
    int dlg_ok;
    /* attention inversion */
    int ai_ok;
    double ai_orbit, ai_orbit_w, ai_naive, ai_ker;
    int ai_success;
};

static const char *const acct_names[4] = {"rdp", "pld", "basic", "advanced"};

struct audit {
    const char *out;
    int quick;
    uint64_t seed;
    size_t steps, batch, nimg, restarts;
    double lr, clip;
    double eps[MAX_RUNS];
    size_t neps;
    const char *plot;
    int json;
    asec_data *test;
    asec_report *rep; /* started when the audit starts (time, argv) */
    struct run runs[MAX_RUNS + 1];
    size_t nruns;
};

static int
usage(void)
{
    printf("Usage: attnsec audit [OPTION]...\n"
           "Attack versus defense on the shipped digits and the default vision\n"
           "transformer: train without privacy and with DP-SGD calibrated to each\n"
           "target epsilon, attack client gradients with DLG and released attention\n"
           "maps with attention inversion, and write one report with the privacy /\n"
           "utility / leakage table, plots and a picture of the reconstructions.\n\n"
           "  -o, --output=DIR       write the report into DIR (default: audit-report)\n"
           "      --quick            a small audit for demonstrations and tests\n"
           "                           (under a minute on 2 cores)\n"
           "      --data=NAME        digits (default); text is not available yet\n"
           "  -e, --epsilons=LIST    target epsilons, comma-separated (default 1,3,8)\n"
           "  -T, --steps=N          DP-SGD steps per run (default 300; quick 60)\n"
           "  -b, --batch-size=N     expected batch size (default 256)\n"
           "      --lr=RATE          Adam learning rate (default 0.01)\n"
           "  -C, --clip=C           per-example clipping norm (default 1)\n"
           "  -n, --images=N         held-out images attacked per run (default 4;\n"
           "                           quick 2)\n"
           "  -r, --restarts=N       DLG random starts per image (default 4; quick 2)\n"
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
           "DIR/images/recon_grid.png.\n"
           "Exit status: 0 on success, 64 usage error, 66 shipped data missing, 69\n"
           "unavailable, 73/74 output errors.  Full documentation: attnsec-audit(1).\n");
    return EXIT_OK;
}

/* ------------------------------------------------------------- helpers */

static char *pathf(const char *fmt, ...) ASEC_PRINTF(1, 2);

static char *
pathf(const char *fmt, ...)
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

static json_t *
load_report(const char *path)
{
    json_error_t err;

    return json_load_file(path, JSON_REJECT_DUPLICATES, &err);
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

/* ------------------------------------------------------------- training */

static int
train(struct audit *a, struct run *r, uint64_t seed)
{
    cli_fn fn = method_fn(cmd_defend_methods, "dpsgd");
    char *dir = pathf("%s/runs/%s", a->out, r->dir);
    char *log = pathf("%s/runs/%s/log.txt", a->out, r->dir);
    char *rp = pathf("%s/runs/%s/report.json", a->out, r->dir);
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
    args_add(&av, "--steps=%zu", a->steps);
    args_add(&av, "--batch-size=%zu", a->batch);
    args_add(&av, "--lr=%.17g", a->lr);
    args_add(&av, "--seed=%llu", (unsigned long long)seed);
    args_add(&av, "--checkpoint-every=0");
    args_add(&av, "--eval-every=%zu", a->steps); /* one evaluation, at the end */
    args_add(&av, "--delta=1e-5");
    if (r->target_eps > 0) {
        args_add(&av, "--target-epsilon=%.17g", r->target_eps);
        args_add(&av, "--clip=%.17g", a->clip);
    } else {
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

static int
attack_dlg(struct audit *a, struct run *r, asec_model *m, uint64_t seed)
{
    size_t P = asec_model_param_count(m), HW = a->test->image_h * a->test->image_w;
    double *g = malloc(P * sizeof *g);
    asec_rng *rng = NULL, *noise = NULL;
    char label[64];
    int rc = ASEC_OK;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    r->recon = calloc(a->nimg * HW, sizeof *r->recon);
    if (g == NULL || r->recon == NULL) {
        rc = ASEC_ENOMEM;
        goto done;
    }
    snprintf(label, sizeof label, "audit/dlg/%s", r->dir);
    if ((rc = asec_rng_alloc_seeded(&rng, seed, label)) != ASEC_OK)
        goto done;
    snprintf(label, sizeof label, "audit/client-noise/%s", r->dir);
    if ((rc = asec_rng_alloc_seeded(&noise, seed, label)) != ASEC_OK)
        goto done;
    for (size_t k = 0; k < a->nimg; k++) {
        /* held-out images spread over the test split */
        size_t idx = k * (a->test->n / a->nimg);
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
        if (r->target_eps > 0) {
            /* one DP-SGD step of a client holding this example: clip, then
             * Gaussian noise of standard deviation sigma C */
            rc = asec_dpsgd_clip(g, P, r->clip, NULL);
            if (rc < 0)
                goto done;
            for (size_t i = 0; i < P; i++)
                g[i] += r->sigma * r->clip * asec_rng_normal(noise);
            rc = ASEC_OK;
        }
        asec_dlg_options_default(&o);
        o.restarts = a->restarts;
        o.lbfgs_iters = a->quick ? 60 : 100;
        o.lm_iters = a->quick ? 20 : 50;
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
            r->recon[k * HW + i] = res->x[i];
        }
        r->mse[k] = se / (double)HW;
        r->rel[k] = sqrt(se / nx);
        r->psnr[k] = asec_dlg_psnr(res->x, x, HW, 1.0);
        r->label_ok[k] = res->labels != NULL && res->labels[0] == y;
        asec_dlg_result_free(res);
        r->nimg = k + 1;
    }
    r->dlg_ok = 1;
done:
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->dlg_seconds =
        (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (rc != ASEC_OK)
        snprintf(r->fail, sizeof r->fail, "DLG: %s", asec_errmsg());
    asec_rng_free(rng);
    asec_rng_free(noise);
    free(g);
    return rc;
}

/* ---------------------------------------------------- attention inversion */

/* The layer-0 input of held-out image idx as the attention sees it before
 * LayerNorm: x_t = W_pe p_t + b_pe (+ pos_t), written as X (C, T). */
static int
patch_embeddings(const char *path, asec_model *m, const asec_data *d, size_t idx)
{
    const asec_model_arch *ar = asec_model_get_arch(m);
    asec_model_tensor w, bias, pos;
    const double *th = asec_model_params(m);
    size_t C = ar->channels, p = ar->patch, gw = ar->image_w / p, gh = ar->image_h / p;
    size_t T = gh * gw, shape[2] = {C, T};
    int have_pos, rc;
    double *X;
    const double *img = d->images + idx * d->image_h * d->image_w;

    if ((rc = asec_model_tensor_find(m, "patch_emb.weight", &w)) != ASEC_OK ||
        (rc = asec_model_tensor_find(m, "patch_emb.bias", &bias)) != ASEC_OK)
        return rc;
    have_pos = asec_model_tensor_find(m, "pos_emb.weight", &pos) == ASEC_OK;
    X = calloc(C * T, sizeof *X);
    if (X == NULL)
        return ASEC_ENOMEM;
    for (size_t t = 0; t < T; t++) {
        size_t pr = t / gw, pc = t % gw;

        for (size_t c = 0; c < C; c++) {
            double s = th[bias.offset + c];

            for (size_t i = 0; i < p; i++)
                for (size_t j = 0; j < p; j++)
                    s += th[w.offset + c * p * p + i * p + j] *
                         img[(pr * p + i) * d->image_w + pc * p + j];
            /* a CLS token would shift positions by one; the default vit
             * has none (mean pooling) */
            if (have_pos && pos.shape[0] == T)
                s += th[pos.offset + t * C + c];
            X[c * T + t] = s;
        }
    }
    rc = asec_io_npy_write(path, X, 2, shape, ASEC_IO_F64);
    free(X);
    return rc;
}

static int
attack_attention(struct audit *a, struct run *r, asec_model *m, uint64_t seed)
{
    cli_fn fn = method_fn(cmd_attack_methods, "attn-invert");
    char *dir = pathf("%s/runs/%s/attn-invert", a->out, r->dir);
    char *xp = pathf("%s/runs/%s/attn-invert/x_true.npy", a->out, r->dir);
    char *mp = pathf("%s/runs/%s/model.safetensors", a->out, r->dir);
    char *rp = pathf("%s/runs/%s/attn-invert/report.json", a->out, r->dir);
    char *log = pathf("%s/runs/%s/attn-invert/log.txt", a->out, r->dir);
    struct args av = {{NULL}, 0, 0};
    int st = 0, rc;
    json_t *rep = NULL;

    if (dir == NULL || xp == NULL || mp == NULL || rp == NULL || log == NULL ||
        fn == NULL) {
        st = EXIT_SOFTWARE;
        goto done;
    }
    if ((rc = asec_afile_mkdirs(dir)) != ASEC_OK ||
        (rc = patch_embeddings(xp, m, a->test, 0)) != ASEC_OK) {
        snprintf(r->fail, sizeof r->fail, "attention inversion: %s", asec_errmsg());
        st = cli_exit_status(rc);
        goto done;
    }
    args_add(&av, "attn-invert");
    args_add(&av, "--model=%s", mp);
    args_add(&av, "--layer=0");
    args_add(&av, "--head=0");
    args_add(&av, "--simulate");
    args_add(&av, "--inputs=%s", xp);
    args_add(&av, "--restarts=%d", a->quick ? 4 : 16);
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
    r->ai_success =
        json_is_true(json_object_get(json_object_get(rep, "results"), "success"));
    r->ai_ok = 1;
done:
    json_decref(rep);
    free(dir);
    free(xp);
    free(mp);
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

static double
label_acc(const struct run *r)
{
    size_t c = 0;

    for (size_t i = 0; i < r->nimg; i++)
        c += (size_t)r->label_ok[i];
    return r->nimg ? (double)c / (double)r->nimg : NAN;
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

/* Text with asec_afile: built in memory, written atomically. */
static int
write_text(const char *path, const char *buf, size_t len)
{
    int rc = asec_afile_write_all(path, buf, len);

    return rc == ASEC_OK ? 0 : cli_fail(rc);
}

static int
write_csv(const struct audit *a)
{
    char *buf = NULL, *p;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int st;

    if (f == NULL)
        return EXIT_TEMPFAIL;
    fprintf(
        f, "run,target_epsilon,sigma,q,steps,epsilon_rdp,epsilon_pld_lo,epsilon_pld,"
           "epsilon_basic,epsilon_advanced,test_accuracy,dlg_images,dlg_mse,dlg_psnr_db,"
           "dlg_rel_error,dlg_label_acc,attn_invert_orbit_error,attn_invert_success\r\n");
    for (size_t i = 0; i < a->nruns; i++) {
        const struct run *r = &a->runs[i];
        char v[16][40];

        fmt_num(v[0], 40, r->target_eps > 0 ? r->target_eps : INFINITY, 'g', 17);
        fmt_num(v[1], 40, r->ok ? r->sigma : NAN, 'g', 17);
        fmt_num(v[2], 40, r->ok ? r->q : NAN, 'g', 17);
        fmt_num(v[3], 40, r->ok ? r->eps[0] : NAN, 'g', 17);
        fmt_num(v[4], 40, r->ok ? r->eps_lo[1] : NAN, 'g', 17);
        fmt_num(v[5], 40, r->ok ? r->eps[1] : NAN, 'g', 17);
        fmt_num(v[6], 40, r->ok ? r->eps[2] : NAN, 'g', 17);
        fmt_num(v[7], 40, r->ok ? r->eps[3] : NAN, 'g', 17);
        fmt_num(v[8], 40, r->ok ? r->test_acc : NAN, 'g', 17);
        fmt_num(v[9], 40, r->dlg_ok ? mean_of(r->mse, r->nimg) : NAN, 'g', 17);
        fmt_num(v[10], 40, r->dlg_ok ? mean_of(r->psnr, r->nimg) : NAN, 'g', 17);
        fmt_num(v[11], 40, r->dlg_ok ? mean_of(r->rel, r->nimg) : NAN, 'g', 17);
        fmt_num(v[12], 40, r->dlg_ok ? label_acc(r) : NAN, 'g', 17);
        fmt_num(v[13], 40, r->ai_ok ? r->ai_orbit : NAN, 'g', 17);
        fprintf(f, "%s,%s,%s,%s,%zu,%s,%s,%s,%s,%s,%s,%zu,%s,%s,%s,%s,%s,%s\r\n", r->name,
                v[0], v[1], v[2], a->steps, v[3], v[4], v[5], v[6], v[7], v[8], r->nimg,
                v[9], v[10], v[11], v[12], v[13],
                r->ai_ok ? (r->ai_success ? "true" : "false") : "n/a");
    }
    fclose(f);
    p = pathf("%s/tables/runs.csv", a->out);
    st = p ? write_text(p, buf, len) : EXIT_TEMPFAIL;
    free(p);
    free(buf);
    if (st != 0)
        return st;
    /* one row per attacked image */
    buf = NULL;
    len = 0;
    if ((f = open_memstream(&buf, &len)) == NULL)
        return EXIT_TEMPFAIL;
    fprintf(f, "run,image,test_index,mse,psnr_db,rel_error,label_correct\r\n");
    for (size_t i = 0; i < a->nruns; i++) {
        const struct run *r = &a->runs[i];

        for (size_t k = 0; k < r->nimg; k++)
            fprintf(f, "%s,%zu,%zu,%.17g,%.17g,%.17g,%s\r\n", r->name, k,
                    k * (a->test->n / a->nimg), r->mse[k], r->psnr[k], r->rel[k],
                    r->label_ok[k] ? "true" : "false");
    }
    fclose(f);
    p = pathf("%s/tables/dlg.csv", a->out);
    st = p ? write_text(p, buf, len) : EXIT_TEMPFAIL;
    free(p);
    free(buf);
    return st;
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

    *rendered = 0;
    for (size_t k = 0; k < 2; k++) {
        char *buf = NULL, *p = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        double base = NAN;

        if (f == NULL)
            return EXIT_TEMPFAIL;
        fprintf(f, "# epsilon(pld, delta=1e-5)  test_accuracy  dlg_psnr_db  "
                   "dlg_label_acc  dlg_rel_error\n");
        for (size_t i = 0; i < a->nruns; i++) {
            const struct run *r = &a->runs[i];
            double acc = r->ok ? r->test_acc : NAN;
            double ps = r->dlg_ok ? mean_of(r->psnr, r->nimg) : NAN;

            if (r->target_eps <= 0) {
                base = k == 0 ? acc : ps;
                continue;
            }
            if (!r->ok)
                continue;
            fprintf(f, "%.17g %.17g %.17g %.17g %.17g\n", best_eps(r), acc, ps,
                    r->dlg_ok ? label_acc(r) : NAN,
                    r->dlg_ok ? mean_of(r->rel, r->nimg) : NAN);
        }
        fclose(f);
        p = pathf("%s/plots/%s.dat", a->out, plots[k].name);
        st = p ? write_text(p, buf, len) : EXIT_TEMPFAIL;
        free(p);
        free(buf);
        if (st != 0)
            return st;
        buf = NULL;
        len = 0;
        if ((f = open_memstream(&buf, &len)) == NULL)
            return EXIT_TEMPFAIL;
        fprintf(f,
                "# gnuplot script written by attnsec audit; run: gnuplot %s.gp\n"
                "if (!exists(\"term\")) term = \"pngcairo\"\n"
                "set terminal term size 800,500\n"
                "set output \"%s.\" . (term eq \"svg\" ? \"svg\" : \"png\")\n"
                "set title \"%s\"\n"
                "set xlabel \"epsilon (delta = 1e-5, PLD accountant)\"\n"
                "set ylabel \"%s\"\nset logscale x\nset grid\nset key bottom right\n"
                "%s",
                plots[k].name, plots[k].name, plots[k].title, plots[k].ylabel,
                k == 0 ? "set yrange [0:1]\n" : "set yrange [0:*]\n");
        if (isfinite(base))
            fprintf(f,
                    "plot \"%s.dat\" using 1:%d with linespoints pt 7 title \"DP-SGD\", "
                    "%.17g with lines dt 2 title \"non-private\"\n",
                    plots[k].name, plots[k].col, base);
        else
            fprintf(f,
                    "plot \"%s.dat\" using 1:%d with linespoints pt 7 title \"DP-SGD\"\n",
                    plots[k].name, plots[k].col);
        fclose(f);
        p = pathf("%s/plots/%s.gp", a->out, plots[k].name);
        st = p ? write_text(p, buf, len) : EXIT_TEMPFAIL;
        free(p);
        free(buf);
        if (st != 0)
            return st;
        if (strcmp(a->plot, "none") != 0) {
            char *pd = pathf("%s/plots", a->out), *gp = pathf("%s.gp", plots[k].name);
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
    size_t cols = a->nruns + 1, rows = a->nimg;
    size_t W = cols * (w * ZOOM + GAP) + GAP, H = rows * (h * ZOOM + GAP) + GAP;
    unsigned char *px = malloc(W * H);
    char *path;
    int st = 0;

    if (px == NULL)
        return EXIT_TEMPFAIL;
    memset(px, 255, W * H);
    for (size_t rr = 0; rr < rows; rr++) {
        for (size_t cc = 0; cc < cols; cc++) {
            const double *src;

            if (cc == 0)
                src = a->test->images + rr * (a->test->n / a->nimg) * HW;
            else if (a->runs[cc - 1].dlg_ok && rr < a->runs[cc - 1].nimg)
                src = a->runs[cc - 1].recon + rr * HW;
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
    path = pathf("%s/images/%s", a->out, name);
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
        fclose(f);
        st = write_text(path, buf, len);
        free(buf);
    }
#else
    snprintf(name, cap, "recon_grid.pgm");
    path = pathf("%s/images/%s", a->out, name);
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

static const char *
statement(void)
{
    return "Each DP-SGD run trains on the 1437 shipped training digits with Poisson\n"
           "sampling, per-example clipping and Gaussian noise; epsilon is for\n"
           "add/remove-one-example neighbours at delta = 1e-5, computed by every\n"
           "accountant (certified lower and upper bounds where the accountant has\n"
           "them).  This audit ran in seeded mode: it measures the mechanisms and is\n"
           "NOT a DP release.  DLG attacks the gradient one client with one held-out\n"
           "image shares in a single DP-SGD step (clipped to C, Gaussian noise of\n"
           "standard deviation sigma C).  Attention inversion attacks the attention\n"
           "probabilities the trained model releases at inference for a held-out\n"
           "image: DP-SGD protects the training data, not inference inputs, so that\n"
           "column is not expected to improve with epsilon.\n";
}

static int
write_txt(const struct audit *a, const char *grid, int rendered)
{
    char *buf = NULL, *p;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int st;

    if (f == NULL)
        return EXIT_TEMPFAIL;
    fprintf(f,
            "attnsec audit: privacy / utility / leakage of a vision transformer on the "
            "shipped digits\n\nPrivacy statement\n-----------------\n%s\n",
            statement());
    fprintf(f,
            "Seed %llu; %zu DP-SGD steps of expected batch %zu (q = %.4g), Adam lr %g,"
            " clip C = %g.\n\n",
            (unsigned long long)a->seed, a->steps, a->batch,
            a->nruns > 1 && a->runs[1].ok ? a->runs[1].q : NAN, a->lr, a->clip);
    fprintf(f, "Privacy / utility / leakage\n---------------------------\n");
    fprintf(f, "%-12s %7s %-22s %8s %9s %8s %8s %9s %12s\n", "run", "sigma",
            "epsilon [lo, hi] (PLD)", "eps RDP", "test acc", "DLG PSNR", "DLG rel",
            "DLG label", "AI orbit ok");
    for (size_t i = 0; i < a->nruns; i++) {
        const struct run *r = &a->runs[i];
        char s[7][40], e[48];

        fmt_num(s[0], 40, r->ok ? r->sigma : NAN, 'f', 3);
        if (!r->ok)
            snprintf(e, sizeof e, "n/a");
        else if (r->target_eps <= 0)
            snprintf(e, sizeof e, "inf (no privacy)");
        else
            snprintf(e, sizeof e, "[%.3f, %.3f]", r->eps_lo[1], r->eps[1]);
        fmt_num(s[1], 40, r->ok ? r->eps[0] : NAN, 'f', 3);
        fmt_num(s[2], 40, r->ok ? r->test_acc : NAN, 'f', 3);
        fmt_num(s[3], 40, r->dlg_ok ? mean_of(r->psnr, r->nimg) : NAN, 'f', 1);
        fmt_num(s[4], 40, r->dlg_ok ? mean_of(r->rel, r->nimg) : NAN, 'f', 3);
        fmt_num(s[5], 40, r->dlg_ok ? label_acc(r) : NAN, 'f', 2);
        fmt_num(s[6], 40, r->ai_ok ? r->ai_orbit : NAN, 'e', 1);
        if (r->ai_ok)
            strcat(s[6], r->ai_success ? " yes" : " no");
        fprintf(f, "%-12s %7s %-22s %8s %9s %8s %8s %9s %12s\n", r->name, s[0], e, s[1],
                s[2], s[3], s[4], s[5], s[6]);
    }
    fprintf(
        f,
        "\nColumns: epsilon from the PLD accountant as [certified lower bound, upper\n"
        "bound], and RDP; test accuracy on the 360 test digits; DLG on %zu held-out\n"
        "images per run (mean PSNR in dB against the original in [0, 1], mean\n"
        "relative L2 error, fraction of labels recovered); AI orbit: relative\n"
        "error of the attention-inversion recovery of the layer-0 input, up to\n"
        "the symmetries attention cannot see (below 1e-6 is exact recovery).\n"
        "n/a: the stage failed (see below).  Every accountant with its bounds is\n"
        "in report.json and tables/runs.csv.\n",
        a->nimg);
    for (size_t i = 0; i < a->nruns; i++)
        if (a->runs[i].fail[0] != '\0')
            fprintf(f, "\nUnavailable in run %s: %s\n", a->runs[i].name, a->runs[i].fail);
    fprintf(f,
            "\nFiles: report.json (attnsec-report(5)), tables/runs.csv, tables/dlg.csv,\n"
            "plots/accuracy_vs_epsilon.{dat,gp}, plots/leakage_vs_epsilon.{dat,gp}%s,\n"
            "images/%s (rows: held-out images; columns: original, then what DLG\n"
            "recovered in each run, in the order of the table), runs/*/ (each\n"
            "training run's own report, model and curve).\n",
            rendered ? " (+ rendered images)" : "", grid);
    if (!rendered && strcmp(a->plot, "none") != 0)
        fprintf(f,
                "The plots were not rendered: install gnuplot (Debian: gnuplot-nox) and "
                "run 'gnuplot NAME.gp' in plots/.\n");
    fclose(f);
    p = pathf("%s/report.txt", a->out);
    st = p ? write_text(p, buf, len) : EXIT_TEMPFAIL;
    free(p);
    free(buf);
    return st;
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
    char *p = NULL;
    int rc;

#define TRY(x)                                                                           \
    do {                                                                                 \
        if ((rc = (x)) != ASEC_OK)                                                       \
            goto fail;                                                                   \
    } while (0)
    TRY(asec_report_set_str(rep, "config.data", "digits"));
    TRY(asec_report_set_str(rep, "config.model", "default vit"));
    TRY(asec_report_set_bool(rep, "config.quick", a->quick));
    TRY(asec_report_set_int(rep, "config.seed", (long long)a->seed));
    TRY(asec_report_set_int(rep, "config.steps", (long long)a->steps));
    TRY(asec_report_set_int(rep, "config.batch_size", (long long)a->batch));
    TRY(asec_report_set_num(rep, "config.lr", a->lr));
    TRY(asec_report_set_num(rep, "config.clip", a->clip));
    TRY(asec_report_set_num(rep, "config.delta", DELTA));
    TRY(asec_report_set_int(rep, "config.images", (long long)a->nimg));
    TRY(asec_report_set_int(rep, "config.dlg_restarts", (long long)a->restarts));
    for (size_t i = 0; i < a->neps; i++)
        TRY(asec_report_append_num(rep, "config.epsilons", a->eps[i]));
    TRY(asec_report_set_str(rep, "rng.mode", "seeded"));
    TRY(asec_report_set_int(rep, "rng.seed", (long long)a->seed));
    TRY(asec_report_set_bool(rep, "rng.dp_release", 0));
    TRY(asec_report_set_str(rep, "rng.note", "NOT a DP release"));
    TRY(asec_report_set_str(rep, "results.statement", statement()));
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
            json_object_set_new(o, "steps", json_integer((json_int_t)a->steps));
            if (isfinite(r->test_acc))
                json_object_set_new(o, "test_accuracy", json_real(r->test_acc));
            if (isfinite(r->train_acc))
                json_object_set_new(o, "train_accuracy", json_real(r->train_acc));
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
        if (r->dlg_ok) {
            for (size_t k = 0; k < r->nimg; k++) {
                json_t *e = json_pack("{s:I, s:b}", "test_index",
                                      (json_int_t)(k * (a->test->n / a->nimg)),
                                      "label_correct", r->label_ok[k]);

                jset(e, "mse", r->mse[k]);
                jset(e, "psnr_db", r->psnr[k]);
                jset(e, "rel_error", r->rel[k]);
                json_array_append_new(per, e);
            }
            dlg =
                json_pack("{s:I, s:o}", "images", (json_int_t)r->nimg, "per_image", per);
            jset(dlg, "mse", mean_of(r->mse, r->nimg));
            jset(dlg, "psnr_db", mean_of(r->psnr, r->nimg));
            jset(dlg, "rel_error", mean_of(r->rel, r->nimg));
            jset(dlg, "label_acc", label_acc(r));
            jset(dlg, "seconds", r->dlg_seconds);
            json_object_set_new(o, "recon", dlg);
        } else
            json_decref(per);
        if (r->ai_ok) {
            json_t *e =
                json_pack("{s:b, s:s}", "success", r->ai_success, "layer_head", "0/0");

            jset(e, "orbit_error", r->ai_orbit);
            jset(e, "naive_error", r->ai_naive);
            jset(e, "orbit_w_error", r->ai_orbit_w);
            jset(e, "ker_dim", r->ai_ker);
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
    p = pathf("%s/report.json", a->out);
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
 * with the elapsed time; silent with -q. */
static void
stage(const struct audit *a, size_t k, const struct run *r, const char *what)
{
    static struct timespec t0;
    struct timespec t;

    if (k == 1)
        clock_gettime(CLOCK_MONOTONIC, &t0);
    if (cli_verbosity == 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &t);
    fprintf(stderr, "%s: [%zu/%zu] %5.0f s  %s: %s\n", cli_command(), k, 3 * a->nruns,
            (double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec),
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
    enum { OPT_QUICK = 256, OPT_DATA, OPT_LR, OPT_PLOT, OPT_JSON };
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"quick", no_argument, NULL, OPT_QUICK},
                                             {"data", required_argument, NULL, OPT_DATA},
                                             {"epsilons", required_argument, NULL, 'e'},
                                             {"steps", required_argument, NULL, 'T'},
                                             {"batch-size", required_argument, NULL, 'b'},
                                             {"lr", required_argument, NULL, OPT_LR},
                                             {"clip", required_argument, NULL, 'C'},
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
    size_t steps = 0, nimg = 0, restarts = 0;
    int c, st = 0, seeded = 0, rendered = 0, rc;
    char grid[64] = "";
    asec_model *m = NULL;

    memset(&a, 0, sizeof a);
    a.out = "audit-report";
    a.batch = 256;
    a.lr = 0.01;
    a.clip = 1.0;
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
            st = cli_parse_size("--batch-size", optarg, 1, 1437, &a.batch);
            break;
        case OPT_LR:
            st = cli_parse_double("--lr", optarg, 1e-9, 10, &a.lr);
            break;
        case 'C':
            st = cli_parse_double("--clip", optarg, 1e-9, 1e9, &a.clip);
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
            if (optopt != 0 && optopt != '?' && strchr("oeTbCnrs", optopt) != NULL)
                return cli_usage_error("option '-%c' requires an argument", optopt);
            return cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
        if (st != 0)
            return st;
    }
    if (optind != argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (strcmp(data, "text") == 0) {
        cli_error("--data=text: the text audit is not available yet in this version; "
                  "run the digits audit (the default)");
        return EXIT_UNAVAILABLE;
    }
    if (strcmp(data, "digits") != 0)
        return cli_usage_error("--data: '%s' is not digits or text", data);
    if ((st = parse_eps_list(&a, eps_text ? eps_text : "1,3,8")) != 0)
        return st;
    qsort(a.eps, a.neps, sizeof a.eps[0], cmp_desc);
    a.steps = steps ? steps : a.quick ? 60 : 300;
    a.nimg = nimg ? nimg : a.quick ? 2 : 4;
    a.restarts = restarts ? restarts : a.quick ? 2 : 4;
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
        a.runs[i].test_acc = a.runs[i].train_acc = NAN;
    }
    {
        char *d[4] = {pathf("%s/tables", a.out), pathf("%s/plots", a.out),
                      pathf("%s/images", a.out), pathf("%s/runs", a.out)};

        rc = ASEC_OK;
        for (int k = 0; k < 4; k++) {
            if (rc == ASEC_OK)
                rc = d[k] ? asec_afile_mkdirs(d[k]) : ASEC_ENOMEM;
            free(d[k]);
        }
        if (rc != ASEC_OK)
            return cli_fail(rc);
    }
#ifdef ASEC_SRCDIR_DATASETS
    /* Run from a build tree before 'make install' (README's first command):
     * fall back to the source tree's datasets for this audit and the
     * commands it calls. */
    if (getenv("ATTNSEC_DATADIR") == NULL) {
        char *inst = pathf("%s/digits/test_images.npy", cli_datadir());

        if (inst != NULL && access(inst, R_OK) != 0 &&
            access(ASEC_SRCDIR_DATASETS "/digits/test_images.npy", R_OK) == 0)
            setenv("ATTNSEC_DATADIR", ASEC_SRCDIR_DATASETS, 1);
        free(inst);
    }
#endif
    if ((rc = asec_data_load(&a.test, cli_datadir(), "digits", "test")) != ASEC_OK)
        return cli_fail(rc);
    if ((rc = asec_report_alloc(&a.rep, "audit", argc, argv)) != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    {
        static const char *const files[] = {"train_images", "train_labels", "test_images",
                                            "test_labels"};

        for (int k = 0; k < 4; k++) {
            char *fp = pathf("%s/digits/%s.npy", cli_datadir(), files[k]);

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
        st = train(&a, r, a.seed + i);
        if (st == EXIT_CANTCREAT || st == EXIT_IOERR || st == EXIT_TEMPFAIL)
            goto done; /* output problems end the audit */
        if (!r->ok) {
            st = 0;
            continue;
        }
        mp = pathf("%s/runs/%s/model.safetensors", a.out, r->dir);
        rc = mp ? asec_model_load(&m, mp) : ASEC_ENOMEM;
        free(mp);
        if (rc != ASEC_OK) {
            snprintf(r->fail, sizeof r->fail, "cannot load the trained model: %s",
                     asec_errmsg());
            continue;
        }
        stage(&a, 3 * i + 2, r, "DLG on client gradients");
        rc = attack_dlg(&a, r, m, a.seed + 100 + i);
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
    if ((st = write_csv(&a)) != 0 || (st = write_plots(&a, &rendered)) != 0 ||
        (st = write_grid(&a, grid, sizeof grid)) != 0 ||
        (st = write_txt(&a, grid, rendered)) != 0 ||
        (st = write_json_report(&a, grid)) != 0)
        goto done;
    if (cli_verbosity > 0) {
        fprintf(stderr,
                "%s: report written to %s/report.txt (and report.json, tables/, "
                "plots/, images/%s)\n",
                cli_command(), a.out, grid);
        if (!rendered && strcmp(a.plot, "none") != 0)
            fprintf(stderr,
                    "%s: hint: install gnuplot (Debian: gnuplot-nox) to render the "
                    "plots; the .dat and .gp files are in %s/plots\n",
                    cli_command(), a.out);
    }
done:
    asec_model_free(m);
    for (size_t i = 0; i < a.nruns; i++)
        free(a.runs[i].recon);
    asec_data_free(a.test);
    asec_report_free(a.rep);
    return st;
}
