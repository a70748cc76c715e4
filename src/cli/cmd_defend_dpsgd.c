/* cmd_defend_dpsgd.c - 'attnsec defend dpsgd': DP-SGD / noisy SGD training
 * of a transformer on the shipped digits (attnsec-defend(1),
 * asec_dpsgd(3)).
 *
 * Outputs in DIR: model.safetensors, report.json, report.txt, curve.csv
 * (one row per evaluation), curve.dat + curve.gp (gnuplot: loss, accuracy
 * and epsilon against the step) and checkpoint.safetensors (every
 * --checkpoint-every steps; --resume continues from it).
 *
 * --attn-regression: the setting of arXiv 2311.13624 (MATH.md 3.3-3.4) on
 * a seeded attention-regression instance: report.json, report.txt,
 * model.safetensors, convergence.csv/.dat/.gp (the bound against the
 * measured mean squared gradient norm).
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
#include "curve.h"

/* The defaults of the digits demo (attnsec-defend(1)), tuned at epsilon 8
 * (issue 8): momentum 0.9 on clipped gradients at the constant rate DEF_LR,
 * and the released model the parameter average of decay DEF_EMA
 * (post-processing). */
#define DEF_BATCH 512
#define DEF_STEPS 150
#define DEF_LR 0.2
#define DEF_EMA 0.9
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
        "      --lr=RATE           learning rate (default: 0.2; try 0.002 with adam)\n"
        "      --momentum=MU       momentum / Adam beta1 (default: 0.9)\n"
        "      --lr-schedule=NAME  constant (default) or cosine (decay from --lr to\n"
        "                            --lr-final over the steps)\n"
        "      --lr-final=RATE     the last step's rate with cosine (default: 0)\n"
        "  -b, --batch-size=N      expected batch size; q = N / 1437 (default: 512)\n"
        "  -T, --steps=N           steps (default: 150)\n"
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
        "                            parameters (post-processing; default: 0.9;\n"
        "                            0: off, release the last iterate)\n"
        "      --resume            continue from DIR/checkpoint.safetensors\n"
        "The paper's setting (arXiv 2311.13624):\n"
        "      --attn-regression   noisy full-batch gradient descent on a seeded\n"
        "                            attention regression; epsilon under basic,\n"
        "                            advanced, GDP, RDP and PLD composition, and the\n"
        "                            SGD convergence bound against the measured\n"
        "                            gradients (defaults: 200 steps, lr 1, C = 10)\n"
        "      --examples=N        private examples (default 1024)\n"
        "      --dim=D             token width; X, Y are D x D (default 8)\n"
        "      --tokens=N          tokens per example (default 8)\n"
        "      --instance-seed=N   seed of the instance (default 1)\n"
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
        memcpy(asec_model_params(rel), a, asec_model_param_count(rel) * sizeof(double));
}

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

/* Write the finished reports: report.txt from txt, the memory stream
 * over *tb and *tl (read after closing it; *tb is freed here), then
 * report.json (also on standard output with json).  Returns 0 or the exit
 * status. */
static int
finish_reports(asec_report *rep, FILE *txt, char *const *tb, const size_t *tl,
               const char *outdir, int json)
{
    char path[4096];
    int rc;

    if (cli_memstream_close(txt) != 0) {
        free(*tb);
        return EXIT_TEMPFAIL;
    }
    snprintf(path, sizeof path, "%s/report.txt", outdir);
    rc = asec_afile_write_all(path, *tb, *tl);
    free(*tb);
    if (rc != ASEC_OK)
        return cli_fail(rc);
    snprintf(path, sizeof path, "%s/report.json", outdir);
    if ((rc = asec_report_finish(rep, EXIT_OK)) != ASEC_OK ||
        (rc = asec_report_write(rep, path)) != ASEC_OK ||
        (json && (rc = asec_report_print(rep, stdout)) != ASEC_OK))
        return cli_fail(rc);
    return 0;
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

/* ------------------------------------------------------------ the paper's setting */

/* --attn-regression: noisy full-batch gradient descent on a seeded
 * attention-regression instance (arXiv 2311.13624; MATH.md 3.3-3.4). */
struct areg {
    size_t dim;             /* d: X, Y are (d, d) */
    size_t tokens;          /* n: rows of each token matrix A */
    size_t examples;        /* N private examples */
    uint64_t instance_seed; /* the instance (teacher, data, initial point) */
    int lr_given, steps_given, clip_given;
};

#define AREG_DEF_STEPS 200
#define AREG_DEF_LR 1.0
#define AREG_DEF_CLIP 10.0
#define AREG_POWER_ITERS 50

/* The largest |eigenvalue| of the Hessian of the mean loss at the model's
 * parameters, by power iteration with exact Hessian-vector products
 * (asec_model_hvp), started from a fixed direction. */
static int
hessian_norm(double *out, asec_model *m, const asec_model_batch *b, double *v, double *hv)
{
    size_t P = asec_model_param_count(m);
    double lam = 0.0;
    int rc;

    for (size_t i = 0; i < P; i++)
        v[i] = 1.0 / sqrt((double)P) * ((i % 2) ? 1.0 : -1.0);
    for (int it = 0; it < AREG_POWER_ITERS; it++) {
        asec_model_vec o = {hv, NULL, NULL};
        asec_model_cvec dir = {v, NULL, NULL};
        double nn = 0.0;

        if ((rc = asec_model_hvp(m, &o, NULL, &dir, b)) != ASEC_OK)
            return rc;
        for (size_t i = 0; i < P; i++)
            nn += hv[i] * hv[i];
        nn = sqrt(nn);
        lam = nn; /* ||H v|| with ||v|| = 1 */
        if (!(nn > 0.0))
            break;
        for (size_t i = 0; i < P; i++)
            v[i] = hv[i] / nn;
    }
    *out = lam;
    return ASEC_OK;
}

static double
dist2(const double *a, const double *b, size_t n)
{
    double s = 0.0;

    for (size_t i = 0; i < n; i++)
        s += (a[i] - b[i]) * (a[i] - b[i]);
    return s;
}

static int
run_areg(int argc, char **argv, const struct areg *cf, asec_dpsgd_options o,
         const char *outdir, int seeded, uint64_t seed, double target, double delta,
         int sigma_given, int json)
{
    static const asec_acct_method methods[] = {ASEC_ACCT_BASIC, ASEC_ACCT_ADVANCED,
                                               ASEC_ACCT_EXACT, ASEC_ACCT_RDP,
                                               ASEC_ACCT_PLD};
    asec_model_arch a;
    asec_model *m = NULL, *teacher = NULL;
    asec_rng *rng = NULL, *inst = NULL, *r2 = NULL;
    asec_dpsgd *d = NULL;
    asec_report *rep = NULL;
    asec_dpsgd_info info;
    asec_dpsgd_step st;
    double *A = NULL, *E = NULL, *gprev = NULL, *g = NULL, *thprev = NULL, *v = NULL,
           *hv = NULL, *loss = NULL, *gn2 = NULL, *beta_sec = NULL;
    double calib_sigma = NAN, hess0 = NAN, hessT = NAN, beta = 0.0, max_clip = 0.0,
           lossT = NAN, gn2T = NAN;
    size_t P, nin, T;
    int status = EXIT_OK, rc, bound_ok = 0, holds_all = 1;
    char path[4096], buf[256], key[128];
    asec_dpsgd_bound bnd = {NAN, NAN, NAN};

    if (!cf->steps_given)
        o.steps = AREG_DEF_STEPS;
    if (!cf->lr_given)
        o.lr = AREG_DEF_LR;
    if (!cf->clip_given && o.clip > 0.0)
        o.clip = AREG_DEF_CLIP;
    o.optim = ASEC_DPSGD_SGD; /* the paper's update theta -= eta (g + xi) */
    o.sampling = ASEC_DPSGD_POISSON;
    o.batch = cf->examples; /* q = 1: every example in every step */
    o.ema = 0.0;
    o.schedule = ASEC_DPSGD_CONSTANT; /* the bound assumes a constant eta */
    T = o.steps;

    if ((rc = asec_model_arch_default(&a, ASEC_MODEL_ATTN_REGRESSION)) != ASEC_OK)
        return cli_fail(rc);
    a.channels = cf->dim;
    a.seq_len = cf->tokens;
    a.scale = 1.0 / sqrt((double)cf->dim);
    if ((rc = asec_model_alloc(&m, &a)) != ASEC_OK ||
        (rc = asec_model_alloc(&teacher, &a)) != ASEC_OK ||
        (rc = asec_rng_alloc_seeded(&inst, cf->instance_seed, "dpsgd/attn-regression")) !=
            ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    P = asec_model_param_count(m);
    nin = cf->examples * asec_model_input_size(m, cf->tokens);
    A = calloc(nin, sizeof *A);
    E = calloc(nin, sizeof *E);
    gprev = calloc(P, sizeof *gprev);
    g = calloc(P, sizeof *g);
    thprev = calloc(P, sizeof *thprev);
    v = calloc(P, sizeof *v);
    hv = calloc(P, sizeof *hv);
    loss = calloc(T + 1, sizeof *loss);
    gn2 = calloc(T + 1, sizeof *gn2);
    beta_sec = calloc(T + 1, sizeof *beta_sec);
    if (!A || !E || !gprev || !g || !thprev || !v || !hv || !loss || !gn2 || !beta_sec) {
        status = cli_fail(ASEC_ENOMEM);
        goto done;
    }
    /* The instance (MATH.md 3.2): token matrices with N(0, 1) entries, a
     * teacher (X*, Y*) and targets E = softmax(s A X* A^T) A Y*; the
     * student starts from its own initial point.  All from the instance
     * seed, so every run (secure or seeded) sees the same data. */
    asec_model_init_params(teacher, inst);
    asec_rng_normal_fill(inst, A, nin);
    /* Unit token rows (uniform on the sphere): the paper's norm bound
     * ||A|| <= R, which keeps per-example gradients bounded. */
    for (size_t r = 0; r < nin / cf->dim; r++) {
        double *row = A + r * cf->dim, nn = 0.0;

        for (size_t j = 0; j < cf->dim; j++)
            nn += row[j] * row[j];
        nn = sqrt(nn);
        for (size_t j = 0; j < cf->dim && nn > 0.0; j++)
            row[j] /= nn;
    }
    {
        asec_model_batch tb = {cf->examples, cf->tokens, A, NULL, NULL, E};

        /* The targets are the teacher's outputs: E is written as "out". */
        tb.soft = NULL;
        if ((rc = asec_model_forward(teacher, NULL, NULL, E, &tb)) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
    }
    asec_model_init_params(m, inst);

    rc = seeded ? asec_rng_alloc_seeded(&rng, seed, "defend/dpsgd")
                : asec_rng_alloc_secure(&rng);
    if (rc != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    if (seeded && cli_verbosity >= 1)
        cli_warn("seeded run (seed %" PRIu64 "): NOT a DP release", seed);
    if (target > 0.0) {
        o.target_epsilon = target;
        if (!sigma_given) {
            rc = cli_calibrate_sigma(&calib_sigma, 1.0, o.steps, target, delta);
            if (rc != ASEC_OK) {
                status = cli_fail(rc);
                goto done;
            }
            o.sigma = calib_sigma;
        }
    }
    {
        asec_dpsgd_data dd = {cf->examples, cf->tokens, A, NULL, NULL, E};

        if ((rc = asec_dpsgd_alloc(&d, m, &dd, &o, rng)) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
    }
    asec_dpsgd_get_info(d, &info);

    /* Training: before each step the exact full gradient grad L(theta_t)
     * (not released: the measured side of the bound), and the secant
     * smoothness ||grad L(theta_{t+1}) - grad L(theta_t)|| /
     * ||theta_{t+1} - theta_t|| between consecutive iterates. */
    {
        asec_model_batch fb = {cf->examples, cf->tokens, A, NULL, NULL, E};

        if ((rc = hessian_norm(&hess0, m, &fb, v, hv)) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
        cli_progress_begin("dpsgd", T);
        for (size_t t = 0; t <= T; t++) {
            asec_model_vec gv = {g, NULL, NULL};
            double *th = asec_model_params(m);

            if ((rc = asec_model_grad(m, &loss[t], &gv, &fb)) != ASEC_OK) {
                status = cli_fail(rc);
                goto done;
            }
            gn2[t] = 0.0;
            for (size_t i = 0; i < P; i++)
                gn2[t] += g[i] * g[i];
            beta_sec[t] = NAN;
            if (t > 0) {
                double dth = dist2(th, thprev, P);

                if (dth > 0.0) {
                    beta_sec[t] = sqrt(dist2(g, gprev, P) / dth);
                    if (beta_sec[t] > beta)
                        beta = beta_sec[t];
                }
            }
            if (t == T)
                break;
            memcpy(gprev, g, P * sizeof *g);
            memcpy(thprev, th, P * sizeof *th);
            if ((rc = asec_dpsgd_iterate(d, &st)) != ASEC_OK) {
                status = cli_fail(rc);
                goto done;
            }
            if (st.clipped_frac > max_clip)
                max_clip = st.clipped_frac;
            cli_progress_update(t + 1);
        }
        cli_progress_end();
        lossT = loss[T];
        gn2T = gn2[T];
        if ((rc = hessian_norm(&hessT, m, &fb, v, hv)) != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
    }
    /* beta: the largest of the secant estimates along the path and the
     * Hessian's spectral norm at theta_0 and theta_T (MATH.md 3.4). */
    beta = fmax(beta, fmax(hess0, hessT));

    /* The bound at every t (MATH.md 3.4): full batches, so var_s = 0; the
     * noise on the update direction has per-coordinate variance
     * (noise_std / N)^2 (the discrete Gaussian's variance is at most
     * sigma^2, CKS20); L* = 0 for a squared loss. */
    {
        asec_dpsgd_bound_params bp;
        struct text rows = {NULL, 0, 0};
        double run = 0.0, nv = info.noise_std / (double)cf->examples;

        bp.loss0 = loss[0];
        bp.loss_min = 0.0;
        bp.beta = beta;
        bp.eta = o.lr;
        bp.var_s = 0.0;
        bp.noise_var = info.private_run ? nv * nv : 0.0;
        bp.params = P;
        bound_ok = 1;
        for (size_t t = 1; t <= T; t++) {
            asec_dpsgd_bound b;

            run += gn2[t - 1];
            bp.steps = t;
            if (asec_dpsgd_sgd_bound(&b, &bp) != ASEC_OK) {
                bound_ok = 0;
                b.total = b.optimization = b.noise = NAN;
            } else if (run / (double)t > b.total) {
                holds_all = 0;
            }
            if (t == T)
                bnd = b;
            if (text_add(&rows, "%zu,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g\n", t,
                         loss[t - 1], gn2[t - 1], run / (double)t, b.total,
                         b.optimization, b.noise, beta_sec[t]) != 0) {
                free(rows.p);
                status = cli_fail(ASEC_ENOMEM);
                goto done;
            }
        }
        if (!bound_ok)
            holds_all = 0;
        if ((rc = asec_afile_mkdirs(outdir)) != ASEC_OK) {
            free(rows.p);
            status = cli_fail(rc);
            goto done;
        }
        {
            static const char hdr[] = "step,loss,grad_norm2,mean_grad_norm2,bound,"
                                      "bound_optimization,bound_noise,beta_secant\n";
            static const char gp[] =
                "# gnuplot script: the SGD convergence bound of MATH.md 3.4 against the\n"
                "# measured (1/t) sum_{s<t} ||grad L(theta_s)||^2 (attnsec defend dpsgd\n"
                "# --attn-regression).  Columns of convergence.dat: step loss\n"
                "# grad_norm2 mean_grad_norm2 bound bound_optimization bound_noise\n"
                "# beta_secant\n"
                "set terminal pngcairo size 800,600\n"
                "set output 'convergence.png'\n"
                "set datafile missingvalue 'nan'\n"
                "set logscale y\n"
                "set xlabel 'step t'\n"
                "set ylabel '(1/t) sum ||grad L||^2'\n"
                "plot 'convergence.dat' using 1:4 with lines lw 2 title 'measured', \\\n"
                "     'convergence.dat' using 1:5 with lines lw 2 title 'bound', \\\n"
                "     'convergence.dat' using 1:7 with lines dt 2 title 'bound: noise "
                "floor'\n";
            asec_afile *f = NULL;

            snprintf(path, sizeof path, "%s/convergence.csv", outdir);
            if ((rc = asec_afile_open(&f, path)) == ASEC_OK) {
                if ((rc = asec_afile_printf(f, "%s", hdr)) != ASEC_OK ||
                    (rows.len && (rc = asec_afile_write(f, rows.p, rows.len)) != ASEC_OK))
                    asec_afile_abort(f);
                else
                    rc = asec_afile_commit(f);
            }
            if (rc == ASEC_OK) {
                snprintf(path, sizeof path, "%s/convergence.dat", outdir);
                if ((rc = asec_afile_open(&f, path)) == ASEC_OK) {
                    rc = asec_afile_printf(f, "# %s", hdr);
                    for (size_t i = 0; rc == ASEC_OK && i < rows.len; i++) {
                        char c = rows.p[i] == ',' ? ' ' : rows.p[i];

                        rc = asec_afile_write(f, &c, 1);
                    }
                    if (rc != ASEC_OK)
                        asec_afile_abort(f);
                    else
                        rc = asec_afile_commit(f);
                }
            }
            if (rc == ASEC_OK) {
                snprintf(path, sizeof path, "%s/convergence.gp", outdir);
                rc = asec_afile_write_all(path, gp, sizeof gp - 1);
            }
            free(rows.p);
            if (rc != ASEC_OK) {
                status = cli_fail(rc);
                goto done;
            }
        }
    }
    snprintf(path, sizeof path, "%s/model.safetensors", outdir);
    if ((rc = asec_model_save(m, path)) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }

    /* report.json and report.txt */
    if ((rc = asec_report_alloc(&rep, "defend dpsgd", argc, argv)) != ASEC_OK) {
        status = cli_fail(rc);
        goto done;
    }
    {
        const asec_acct *acct = asec_dpsgd_get_acct(d);
        int dp_release = !seeded && info.private_run && !o.idealized;
        double mean_gn2 = 0.0;
        char *tb = NULL;
        size_t tl = 0;
        FILE *txt;

        for (size_t t = 0; t < T; t++)
            mean_gn2 += gn2[t];
        mean_gn2 /= (double)T;
#define R(call)                                                                          \
    do {                                                                                 \
        if (rc == ASEC_OK)                                                               \
            rc = (call);                                                                 \
    } while (0)
        rc = ASEC_OK;
        R(asec_report_set_rng(rep, rng));
        R(asec_report_set_str(rep, "config.mode", "attn-regression"));
        R(asec_report_set_str(rep, "config.paper", "arXiv 2311.13624"));
        R(asec_report_set_int(rep, "config.dim", (long long)cf->dim));
        R(asec_report_set_int(rep, "config.tokens", (long long)cf->tokens));
        R(asec_report_set_int(rep, "config.examples", (long long)cf->examples));
        R(asec_report_set_int(rep, "config.instance_seed", (long long)cf->instance_seed));
        R(asec_report_set_num(rep, "config.lr", o.lr));
        R(asec_report_set_int(rep, "config.steps", (long long)T));
        R(asec_report_set_num(rep, "config.clip", o.clip));
        R(asec_report_set_num(rep, "config.sigma", o.sigma));
        R(asec_report_set_num(rep, "config.delta", delta));
        R(asec_report_set_num(rep, "config.target_epsilon", target > 0 ? target : NAN));
        R(asec_report_set_bool(rep, "config.idealized", o.idealized));
        R(asec_report_set_int(rep, "results.training.params", (long long)P));
        R(asec_report_set_num(rep, "results.training.loss_initial", loss[0]));
        R(asec_report_set_num(rep, "results.training.loss_final", lossT));
        R(asec_report_set_num(rep, "results.training.grad_norm2_final", gn2T));
        R(asec_report_set_num(rep, "results.training.max_clipped_frac", max_clip));
        R(asec_report_set_bool(rep, "results.privacy.private", info.private_run));
        R(asec_report_set_bool(rep, "results.privacy.dp_release", dp_release));
        R(asec_report_set_bool(rep, "results.privacy.idealized_numerics", o.idealized));
        R(asec_report_set_str(rep, "results.privacy.relation", "add-remove"));
        R(asec_report_set_str(rep, "results.privacy.mechanism",
                              "Gaussian on the sum of clipped per-example gradients, "
                              "every step (full batch, q = 1)"));
        R(asec_report_set_num(rep, "results.privacy.q", 1.0));
        R(asec_report_set_num(rep, "results.privacy.noise_multiplier", info.sigma));
        R(asec_report_set_num(rep, "results.privacy.calibrated_sigma", calib_sigma));
        R(asec_report_set_num(rep, "results.privacy.sensitivity", info.sensitivity));
        R(asec_report_set_num(rep, "results.privacy.noise_std", info.noise_std));
        R(asec_report_set_num(rep, "results.privacy.granularity", info.granularity));
        for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
            const char *name = asec_acct_method_name(methods[i]);
            asec_acct_result r;

            snprintf(key, sizeof key, "results.privacy.accountants.%s.epsilon", name);
            if (!info.private_run) {
                R(asec_report_set_num(rep, key, INFINITY));
                continue;
            }
            if (epsilon_of(acct, methods[i], delta, &r) != ASEC_OK) {
                snprintf(key, sizeof key, "results.privacy.accountants.%s.error", name);
                R(asec_report_set_str(rep, key, asec_errmsg()));
                continue;
            }
            R(asec_report_set_num(rep, key, r.epsilon));
            if (methods[i] == ASEC_ACCT_EXACT) {
                snprintf(key, sizeof key, "results.privacy.accountants.%s.mu", name);
                R(asec_report_set_num(rep, key, r.mu));
            }
        }
        R(asec_report_set_str(rep, "results.convergence.statement",
                              "(1/T) sum_{t<T} E||grad L(theta_t)||^2 <= 2 (L(theta_0) - "
                              "L*) / (eta T) + beta eta (var_s + p noise_var)"));
        R(asec_report_set_num(rep, "results.convergence.loss_min", 0.0));
        R(asec_report_set_num(rep, "results.convergence.beta", beta));
        R(asec_report_set_num(rep, "results.convergence.beta_hessian_initial", hess0));
        R(asec_report_set_num(rep, "results.convergence.beta_hessian_final", hessT));
        R(asec_report_set_str(rep, "results.convergence.beta_method",
                              "max of the secant ratios ||grad L(theta_{t+1}) - grad "
                              "L(theta_t)|| / ||theta_{t+1} - theta_t|| over the path "
                              "and the Hessian spectral norm (power iteration, exact "
                              "Hessian-vector products) at theta_0 and theta_T"));
        R(asec_report_set_num(rep, "results.convergence.eta", o.lr));
        R(asec_report_set_bool(rep, "results.convergence.eta_within_1_over_beta",
                               o.lr * beta <= 1.0));
        R(asec_report_set_num(rep, "results.convergence.noise_var_per_coordinate",
                              info.private_run ? pow(info.noise_std / cf->examples, 2)
                                               : 0.0));
        R(asec_report_set_num(rep, "results.convergence.measured_mean_grad_norm2",
                              mean_gn2));
        R(asec_report_set_num(rep, "results.convergence.bound", bnd.total));
        R(asec_report_set_num(rep, "results.convergence.bound_optimization",
                              bnd.optimization));
        R(asec_report_set_num(rep, "results.convergence.bound_noise", bnd.noise));
        R(asec_report_set_bool(rep, "results.convergence.bound_applies",
                               bound_ok && max_clip == 0.0));
        R(asec_report_set_bool(rep, "results.convergence.bound_holds",
                               bound_ok && mean_gn2 <= bnd.total));
        R(asec_report_set_bool(rep, "results.convergence.bound_holds_every_step",
                               holds_all));
        R(asec_report_set_str(rep, "results.convergence.table", "convergence.csv"));
        if (rc == ASEC_OK && max_clip > 0.0)
            rc = asec_report_warn(rep,
                                  "clipping was active (up to %.3g of the examples in a "
                                  "step): the update is biased and the bound, which "
                                  "assumes unbiased gradients, does not apply; raise "
                                  "--clip",
                                  max_clip);
        if (rc == ASEC_OK && o.lr * beta > 1.0)
            rc = asec_report_warn(rep,
                                  "eta = %g exceeds 1/beta = %g: the bound does not "
                                  "apply; lower --lr",
                                  o.lr, 1.0 / beta);
        if (rc != ASEC_OK) {
            status = cli_fail(rc);
            goto done;
        }
        txt = open_memstream(&tb, &tl);
        if (txt == NULL) {
            status = cli_fail(ASEC_ENOMEM);
            goto done;
        }
        fprintf(txt,
                "Noisy gradient descent on attention regression (arXiv 2311.13624)\n\n");
        fprintf(txt,
                "Instance:  seed %" PRIu64
                ": %zu examples A (%zu, %zu) with unit rows, targets "
                "E = softmax(A X* A^T / sqrt(d)) A Y*;\n"
                "           parameters X, Y (%zu, %zu): p = %zu\n",
                cf->instance_seed, cf->examples, cf->tokens, cf->dim, cf->dim, cf->dim,
                P);
        fprintf(txt,
                "Training:  %zu full-batch steps theta -= eta (g + xi), eta = %g; loss "
                "%.6g -> %.6g\n",
                T, o.lr, loss[0], lossT);
        if (info.private_run) {
            fprintf(txt,
                    "Release:   every step releases the sum of per-example gradients "
                    "clipped to %g\n"
                    "           plus %s noise of multiplier %.6g (std %.6g):\n"
                    "           a Gaussian mechanism with L2 sensitivity %.9g "
                    "(add-or-remove-one).\n",
                    o.clip,
                    o.idealized ? "floating-point Gaussian"
                                : "exact discrete "
                                  "Gaussian",
                    info.sigma, info.noise_std, info.sensitivity);
            fprintf(txt, "\n  composition  epsilon at delta = %g over %zu steps\n", delta,
                    T);
            for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
                asec_acct_result r;
                static const char *const label[] = {
                    "classical (basic) composition", "advanced composition (DRV 2010)",
                    "GDP, exact for full batches (Dong-Roth-Su)", "RDP (Mironov 2017)",
                    "PLD (numerical, certified)"};

                if (epsilon_of(acct, methods[i], delta, &r) != ASEC_OK)
                    fprintf(txt, "  %-9s  not applicable (%s)\n",
                            asec_acct_method_name(methods[i]), asec_errmsg());
                else
                    fprintf(txt, "  %-9s  %-12.6g %s\n",
                            asec_acct_method_name(methods[i]), r.epsilon, label[i]);
            }
        } else {
            fprintf(txt, "Release:   none (sigma = 0): epsilon is infinite.\n");
        }
        fprintf(txt, "\nConvergence (MATH.md 3.4): (1/T) sum ||grad L||^2 <= 2 (L0 - L*) "
                     "/ (eta T) + beta eta p noise_var\n");
        fprintf(txt,
                "  beta       %.6g (secant max along the path; Hessian norm %.6g at "
                "theta_0, %.6g at theta_T)\n",
                beta, hess0, hessT);
        fprintf(txt, "  measured   %.6g\n", mean_gn2);
        if (bound_ok)
            fprintf(txt, "  bound      %.6g = %.6g (optimization) + %.6g (noise)%s\n",
                    bnd.total, bnd.optimization, bnd.noise,
                    mean_gn2 <= bnd.total ? "" : "  VIOLATED");
        else
            fprintf(txt, "  bound      not applicable (eta > 1/beta)\n");
        if (max_clip > 0.0)
            fprintf(txt, "  note       clipping was active: the bound assumes unbiased "
                         "gradients\n");
        fprintf(txt, "  table      convergence.csv (plot: gnuplot convergence.gp)\n");
        fprintf(txt, "\n%s\n",
                seeded       ? "Randomness: seeded -- NOT a DP release."
                : dp_release ? "Randomness: secure (OS CSPRNG): a DP release."
                             : "Randomness: secure, but not a DP release.");
        if ((status = finish_reports(rep, txt, &tb, &tl, outdir, json)) != 0)
            goto done;
#undef R
    }
    if (cli_verbosity >= 1)
        fprintf(stderr,
                "attnsec defend dpsgd: attn-regression, %zu steps, loss %.4g -> %.4g, "
                "bound %.4g (%s)\n",
                T, loss[0], lossT, bnd.total, bound_ok ? "holds" : "does not apply");
    (void)buf;
done:
    asec_report_free(rep);
    asec_dpsgd_free(d);
    asec_model_free(m);
    asec_model_free(teacher);
    asec_rng_free(rng);
    asec_rng_free(inst);
    asec_rng_free(r2);
    free(A);
    free(E);
    free(gprev);
    free(g);
    free(thprev);
    free(v);
    free(hv);
    free(loss);
    free(gn2);
    free(beta_sec);
    return status;
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
        OPT_EMA,
        OPT_AREG,
        OPT_EXAMPLES,
        OPT_DIM,
        OPT_TOKENS,
        OPT_INST,
        OPT_SCHED,
        OPT_LRFINAL
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
        {"lr-schedule", required_argument, NULL, OPT_SCHED},
        {"lr-final", required_argument, NULL, OPT_LRFINAL},
        {"attn-regression", no_argument, NULL, OPT_AREG},
        {"examples", required_argument, NULL, OPT_EXAMPLES},
        {"dim", required_argument, NULL, OPT_DIM},
        {"tokens", required_argument, NULL, OPT_TOKENS},
        {"instance-seed", required_argument, NULL, OPT_INST},
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
    struct areg areg = {8, 8, 1024, 1, 0, 0, 0};
    int areg_on = 0, lr_final_given = 0;
    const char *not_areg = NULL; /* an option the attn-regression mode refuses */
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
    o.schedule = ASEC_DPSGD_CONSTANT;
    o.lr_final = 0.0;
    o.ema = DEF_EMA;
    o.batch = DEF_BATCH;
    o.steps = DEF_STEPS;
    o.clip = DEF_CLIP;
    o.sigma = DEF_SIGMA;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+m:o:b:T:C:e:d:s:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model_path = optarg;
            not_areg = "--model";
            break;
        case 'o':
            outdir = optarg;
            break;
        case OPT_JSON:
            json = 1;
            break;
        case OPT_OPTIM:
            not_areg = "--optimizer";
            if (asec_dpsgd_optim_parse(&o.optim, optarg) != ASEC_OK)
                return cli_usage_error("--optimizer: unknown optimizer '%s'", optarg);
            break;
        case OPT_LR:
            if (cli_parse_double("--lr", optarg, 1e-12, 1e6, &o.lr) != 0)
                return EXIT_USAGE;
            areg.lr_given = 1;
            break;
        case OPT_MOM:
            if (cli_parse_double("--momentum", optarg, 0.0, 0.999999, &o.momentum) != 0)
                return EXIT_USAGE;
            o.beta1 = o.momentum;
            break;
        case 'b':
            not_areg = "--batch-size";
            if (cli_parse_size("--batch-size", optarg, 1, 1u << 30, &o.batch) != 0)
                return EXIT_USAGE;
            break;
        case 'T':
            if (cli_parse_size("--steps", optarg, 1, 100000000, &o.steps) != 0)
                return EXIT_USAGE;
            areg.steps_given = 1;
            break;
        case OPT_EPOCHS:
            not_areg = "--epochs";
            if (cli_parse_double("--epochs", optarg, 1e-6, 1e6, &epochs) != 0)
                return EXIT_USAGE;
            break;
        case OPT_SAMPLING:
            not_areg = "--sampling";
            if (asec_dpsgd_sampling_parse(&o.sampling, optarg) != ASEC_OK)
                return cli_usage_error("--sampling: unknown sampling '%s'", optarg);
            break;
        case 'C':
            if (cli_parse_double("--clip", optarg, 1e-300, 1e300, &o.clip) != 0)
                return EXIT_USAGE;
            areg.clip_given = 1;
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
            not_areg = "--resume";
            break;
        case OPT_EMA:
            if (cli_parse_double("--ema", optarg, 0.0, 0.999999, &o.ema) != 0)
                return EXIT_USAGE;
            not_areg = "--ema";
            break;
        case OPT_SCHED:
            not_areg = "--lr-schedule";
            if (strcmp(optarg, "constant") == 0)
                o.schedule = ASEC_DPSGD_CONSTANT;
            else if (strcmp(optarg, "cosine") == 0)
                o.schedule = ASEC_DPSGD_COSINE;
            else
                return cli_usage_error("--lr-schedule: expected constant or cosine, not "
                                       "'%s'",
                                       optarg);
            break;
        case OPT_LRFINAL:
            if (cli_parse_double("--lr-final", optarg, 0.0, 1e6, &o.lr_final) != 0)
                return EXIT_USAGE;
            lr_final_given = 1;
            break;
        case OPT_AREG:
            areg_on = 1;
            break;
        case OPT_EXAMPLES:
            if (cli_parse_size("--examples", optarg, 1, 100000, &areg.examples) != 0)
                return EXIT_USAGE;
            break;
        case OPT_DIM:
            if (cli_parse_size("--dim", optarg, 1, 256, &areg.dim) != 0)
                return EXIT_USAGE;
            break;
        case OPT_TOKENS:
            if (cli_parse_size("--tokens", optarg, 1, 4096, &areg.tokens) != 0)
                return EXIT_USAGE;
            break;
        case OPT_INST:
            if (cli_parse_u64("--instance-seed", optarg, &areg.instance_seed) != 0)
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
            return cli_option_error(argv, longopts, NULL);
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
    if (o.schedule == ASEC_DPSGD_COSINE && !lr_final_given)
        o.lr_final = 0.0;
    if (o.schedule == ASEC_DPSGD_COSINE && o.lr_final > o.lr)
        return cli_usage_error("--lr-final %g exceeds --lr %g", o.lr_final, o.lr);
    if (areg_on) {
        if (not_areg != NULL)
            return cli_usage_error("%s does not apply to --attn-regression", not_areg);
        return run_areg(argc, argv, &areg, o, outdir, seeded, seed, target, delta,
                        sigma_given, json);
    }

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
            rc = cli_calibrate_sigma(&calib_sigma, (double)o.batch / (double)train->n,
                                     o.steps, target, delta);
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
        /* Only the rows of a well-formed curve.csv are carried over. */
        if ((status = curve_load(path, start_step, &curve.p, &curve.len, &curve.cap)) !=
            0)
            goto done;
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
            if (text_add(&curve, CURVE_ROW_FORMAT, k, st.batch, st.loss, st.grad_norm,
                         st.mean_norm, st.clipped_frac, eps, tl, ta) != 0) {
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
            /* The curve first: a kill between the two leaves rows past the
             * checkpoint, which --resume drops, rather than a row lost. */
            if ((rc = write_curve(outdir, &curve)) != ASEC_OK ||
                (rc = asec_dpsgd_checkpoint_save(d, ckpt)) != ASEC_OK) {
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
        R(asec_report_set_str(rep, "config.lr_schedule",
                              o.schedule == ASEC_DPSGD_COSINE ? "cosine" : "constant"));
        if (o.schedule == ASEC_DPSGD_COSINE)
            R(asec_report_set_num(rep, "config.lr_final", o.lr_final));
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
        {
            char *tb = NULL, sched[64];
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
            if (o.schedule == ASEC_DPSGD_COSINE)
                snprintf(sched, sizeof sched, " on a cosine to %g", o.lr_final);
            else
                snprintf(sched, sizeof sched, " constant");
            fprintf(txt,
                    "Training:  %" PRIu64 " of %zu steps, %s, lr %g%s,\n"
                    "           expected batch %zu (q = %.6g), %s sampling\n",
                    done_steps, o.steps, asec_dpsgd_optim_name(o.optim), o.lr, sched,
                    o.batch, info.q, asec_dpsgd_sampling_name(o.sampling));
            if (o.ema > 0.0)
                fprintf(txt, "Released:  the parameter average (EMA, decay %g; "
                             "post-processing)\n", o.ema);
            else
                fprintf(txt, "Released:  the last iterate\n");
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
            if ((status = finish_reports(rep, txt, &tb, &tl, outdir, json)) != 0)
                goto done;
        }
        if (cli_verbosity >= 1)
            fprintf(stderr,
                    "attnsec defend dpsgd: %" PRIu64 " steps, test accuracy %.4f, "
                    "epsilon %.4g (rdp, delta %g)%s\n",
                    done_steps, test_acc, info.private_run ? rdp.epsilon : INFINITY,
                    delta, budget_stop ? "; stopped at the budget" : "");
#undef R
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
