/* cmd_attack.c - the 'attack' command group: attnsec-attack(1).
 *
 * The methods live in cmd_attack_methods[] below; add a method by adding
 * a row there and its function here (or in its own cmd_attack_*.c). */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "attnsec/attn_invert.h"
#include "attnsec/io.h"
#include "attnsec/model.h"
#include "cli.h"
#include "commands.h"

const struct cli_method cmd_attack_methods[] = {
    {"attn-invert", cmd_attack_attn_invert,
     "reconstruct a layer's inputs from released attention weights"},
    {"dlg", cmd_attack_dlg, "recover private inputs and labels from a shared gradient"},
    {NULL, NULL, NULL}};

/* ------------------------------------------------------------ attn-invert */

static void
attn_invert_help(void)
{
    printf(
        "Usage: attnsec attack attn-invert [OPTION]... (--weights=FILE | --model=FILE)\n"
        "         (--attention=FILE | --simulate --inputs=FILE) -o DIR\n"
        "Recover a layer's input X (d, n) from W = W_Q W_K^T and the released\n"
        "attention probabilities B = rowsoftmax(s X_q^T W X_k) (arXiv 2310.12462), and\n"
        "score the recovery modulo the symmetries the attention cannot see.\n\n"
        "Input and output:\n"
        "  -w, --weights=FILE      W as a .npy array (d, d), or (H, d, d) for H heads\n"
        "  -m, --model=FILE        take W (and W_V) from a model file instead\n"
        "      --layer=L           the model layer (default: 0)\n"
        "      --head=H|all        the model head, or every head (default: 0)\n"
        "  -b, --attention=FILE    observed B as a .npy array (n, n) or (H, n, n)\n"
        "      --simulate          compute B (and O) from --inputs instead\n"
        "  -x, --inputs=FILE       true X .npy, (d, n) or (2 d, n) for --unknown=both:\n"
        "                            the private input with --simulate, otherwise\n"
        "                            used only to score\n"
        "      --unknown=WHICH     tied (X_q = X_k, default), query (X_k given),\n"
        "                            key (X_q given) or both ([X_q; X_k] unknown)\n"
        "      --known=FILE        the given X_k (query) or X_q (key), (d, n)\n"
        "      --values=FILE       W_V (d, dv) or (H, d, dv): add the value path\n"
        "      --value-path        add the value path with the model's W_V\n"
        "      --outputs=FILE      observed O = F X_k^T W_V, (n, dv) or (H, n, dv)\n"
        "      --value-weight=G    weight of the output residual (default: 1)\n"
        "  -o, --output=DIR        write report.json and x_recovered.npy to DIR\n"
        "      --json              also print the report on standard output\n"
        "Model:\n"
        "      --scale=S           logit scale s (default: 1)\n"
        "      --causal            mask the logits above the diagonal\n"
        "Attack:\n"
        "      --solver=NAME       lm (default), newton or lbfgs\n"
        "  -r, --restarts=N        random starts, stop at the first success\n"
        "                            (default: 64)\n"
        "  -n, --iterations=N      iterations per start (default: lm and newton 300,\n"
        "                            lbfgs 5000)\n"
        "      --lam=L             ridge weight of 0.5 L ||X||^2 (default: 0)\n"
        "      --continuation=L0   solve each start with ridge L0, L0/10, ...,\n"
        "                            1e-6 L0 before the final solve (default: off)\n"
        "      --init-std=S        starts are N(0, S^2) entrywise (default: 1)\n"
        "      --tol=T             success when the relative residual <= T\n"
        "                            (default: 1e-10)\n"
        "      --lambda-min        record lambda_min(J^T J + lam I) per LM iteration\n"
        "                            (newton always records lambda_min(H))\n"
        "      --stochastic-tol=T  tolerance of the row-sum check on B (default: 1e-6)\n"
        "Reproducibility and reporting:\n"
        "  -s, --seed=N            seed for the random starts (default: drawn from\n"
        "                            the OS and recorded in the report)\n"
        "  -q, --quiet             no progress output\n"
        "  -v, --verbose           more detail on standard error\n"
        "  -h, --help              display this help and exit\n"
        "  -V, --version           output version information and exit\n\n"
        "Results go to DIR; diagnostics go to standard error.\n"
        "Exit status: 0 on success (a failed recovery is a result), 64 usage error,\n"
        "65 malformed or inconsistent input, 66 missing input, 73/74 output error.\n"
        "Full documentation: attnsec-attack(1).\n");
}

#define MAX_HEADS 256

/* Heads of a (r, c) / (H, r, c) tensor as views; square: r == c. */
static int
tensor_heads(const asec_io_tensor *t, const char *path, asec_mat *views, size_t *nh,
             int square)
{
    size_t h, r, c;

    if (t->ndim == 2) {
        h = 1;
        r = t->shape[0];
        c = t->shape[1];
    } else if (t->ndim == 3) {
        h = t->shape[0];
        r = t->shape[1];
        c = t->shape[2];
    } else {
        cli_error("%s: expected 2 or 3 dimensions, got %zu", path, t->ndim);
        return EXIT_DATAERR;
    }
    if ((square && r != c) || r == 0 || c == 0 || h == 0) {
        cli_error("%s: expected %s matrices, got (%zu, %zu) x %zu", path,
                  square ? "square" : "non-empty", r, c, h);
        return EXIT_DATAERR;
    }
    if (h > MAX_HEADS) {
        cli_error("%s: %zu heads exceed the limit %d", path, h, MAX_HEADS);
        return EXIT_DATAERR;
    }
    for (size_t i = 0; i < h; i++)
        views[i] = asec_mat_view(t->data + i * r * c, r, c);
    *nh = h;
    return EXIT_OK;
}

static int
open_npy(asec_io_file **f, const char *path)
{
    int rc = asec_io_open(f, path, ASEC_IO_NPY, ASEC_IO_LOAD_DOUBLE, NULL);

    return rc == ASEC_OK ? EXIT_OK : cli_fail(rc);
}

/* W (and W_V) of a model layer's heads.  For attn-block, vit and text
 * models, head h uses rows h HS .. (h + 1) HS - 1 of the query, key and
 * value weights (out, in) = (C, C): q_h = Wq_h x, so the logit of tokens
 * (i, j) is x_i^T Wq_h^T Wk_h x_j / sqrt(HS), W = Wq_h^T Wk_h / sqrt(HS)
 * (C, C), and V = X^T Wv_h^T, W_V = Wv_h^T (C, HS).  An attn-regression
 * model has W = attn.x, W_V = attn.y and logit scale arch.scale.
 * Owned storage: *wbuf (H, C, C) and *vbuf (H, C, dv), freed by the
 * caller. */
struct model_w {
    size_t nh, d, dv;
    double scale;
    int causal, bias;
    double *wbuf, *vbuf;
};

static int
model_weights(struct model_w *mw, const char *path, size_t layer, long head)
{
    asec_model *m = NULL;
    const asec_model_arch *a;
    asec_model_tensor tq, tk, tv, tb;
    const double *prm;
    size_t C, NH, HS, h0, h1;
    char name[96];
    int rc, st = EXIT_OK, fused;

    memset(mw, 0, sizeof *mw);
    if ((rc = asec_model_load(&m, path)) != ASEC_OK)
        return cli_fail(rc);
    a = asec_model_get_arch(m);
    prm = asec_model_params(m);
    C = a->channels;
    mw->causal = a->causal;
    if (a->kind == ASEC_MODEL_ATTN_REGRESSION) {
        NH = 1;
        HS = C;
    } else {
        NH = a->heads;
        HS = C / NH;
    }
    if (layer >= a->layers) {
        cli_error("%s: layer %zu out of range (the model has %zu)", path, layer,
                  a->layers);
        st = EXIT_DATAERR;
        goto done;
    }
    if (head >= (long)NH) {
        cli_error("%s: head %ld out of range (the layer has %zu)", path, head, NH);
        st = EXIT_DATAERR;
        goto done;
    }
    h0 = head < 0 ? 0 : (size_t)head;
    h1 = head < 0 ? NH : h0 + 1;
    mw->nh = h1 - h0;
    mw->d = C;
    mw->dv = HS;
    mw->wbuf = calloc(mw->nh * C * C, sizeof(double));
    mw->vbuf = calloc(mw->nh * C * HS, sizeof(double));
    if (mw->wbuf == NULL || mw->vbuf == NULL) {
        cli_error("out of memory");
        st = EXIT_TEMPFAIL;
        goto done;
    }
    if (a->kind == ASEC_MODEL_ATTN_REGRESSION) {
        mw->scale = a->scale;
        rc = asec_model_tensor_find(m, "attn.x", &tq);
        if (rc == ASEC_OK)
            rc = asec_model_tensor_find(m, "attn.y", &tv);
        if (rc != ASEC_OK) {
            st = cli_fail(rc);
            goto done;
        }
        memcpy(mw->wbuf, prm + tq.offset, C * C * sizeof(double));
        memcpy(mw->vbuf, prm + tv.offset, C * C * sizeof(double));
        goto done;
    }
    mw->scale = 1.0;
    fused = a->kind == ASEC_MODEL_VIT || a->kind == ASEC_MODEL_TEXT;
    if (fused) {
        snprintf(name, sizeof name, "blocks.%zu.attn.qkv.weight", layer);
        rc = asec_model_tensor_find(m, name, &tq);
        tk = tv = tq;
        tk.offset += C * C; // rows C .. 2C - 1 of (3C, C)
        tv.offset += 2 * C * C;
        if (rc == ASEC_OK) {
            snprintf(name, sizeof name, "blocks.%zu.attn.qkv.bias", layer);
            rc = asec_model_tensor_find(m, name, &tb);
        }
        for (size_t i = 0; rc == ASEC_OK && i < 2 * C; i++)
            mw->bias |= prm[tb.offset + i] != 0.0;
    } else {
        snprintf(name, sizeof name, "blocks.%zu.attn.q.weight", layer);
        rc = asec_model_tensor_find(m, name, &tq);
        snprintf(name, sizeof name, "blocks.%zu.attn.k.weight", layer);
        if (rc == ASEC_OK)
            rc = asec_model_tensor_find(m, name, &tk);
        snprintf(name, sizeof name, "blocks.%zu.attn.v.weight", layer);
        if (rc == ASEC_OK)
            rc = asec_model_tensor_find(m, name, &tv);
    }
    if (rc != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    for (size_t h = h0; h < h1; h++) {
        // Wq_h, Wk_h, Wv_h: rows h HS .. of the (C, C) weights (ld C)
        const double *wq = prm + tq.offset + h * HS * C,
                     *wk = prm + tk.offset + h * HS * C;
        const double *wvh = prm + tv.offset + h * HS * C;
        double *w = mw->wbuf + (h - h0) * C * C, *v = mw->vbuf + (h - h0) * C * HS;
        double sc = 1.0 / sqrt((double)HS);

        for (size_t i = 0; i < C; i++)
            for (size_t j = 0; j < C; j++) {
                double acc = 0.0;

                for (size_t t = 0; t < HS; t++)
                    acc += wq[t * C + i] * wk[t * C + j];
                w[i * C + j] = sc * acc;
            }
        for (size_t i = 0; i < C; i++)
            for (size_t t = 0; t < HS; t++)
                v[i * HS + t] = wvh[t * C + i];
    }
done:
    asec_model_free(m);
    return st;
}

/* X_q and X_k of a true unknown x for the inputs mode. */
static void
true_sides(asec_mat *xq, asec_mat *xk, const asec_mat *x, const asec_mat *known,
           asec_attn_invert_inputs in, size_t d)
{
    switch (in) {
    case ASEC_ATTN_INVERT_QUERY:
        *xq = *x;
        *xk = *known;
        break;
    case ASEC_ATTN_INVERT_KEY:
        *xq = *known;
        *xk = *x;
        break;
    case ASEC_ATTN_INVERT_BOTH:
        *xq = asec_mat_block(x, 0, 0, d, x->cols);
        *xk = asec_mat_block(x, d, 0, d, x->cols);
        break;
    default:
        *xq = *xk = *x;
        break;
    }
}

static const char *const inputs_names[] = {"tied", "query", "key", "both"};
static const char *const solver_names[] = {"lm", "lbfgs", "newton"};

int
cmd_attack_attn_invert(int argc, char **argv)
{
    enum {
        OPT_SIMULATE = 256,
        OPT_JSON,
        OPT_SCALE,
        OPT_CAUSAL,
        OPT_SOLVER,
        OPT_LAM,
        OPT_CONT,
        OPT_INIT,
        OPT_TOL,
        OPT_LMIN,
        OPT_STOCH,
        OPT_LAYER,
        OPT_HEAD,
        OPT_UNKNOWN,
        OPT_KNOWN,
        OPT_VALUES,
        OPT_VPATH,
        OPT_OUTPUTS,
        OPT_VWEIGHT
    };
    static const struct option longopts[] = {
        {"weights", required_argument, NULL, 'w'},
        {"model", required_argument, NULL, 'm'},
        {"layer", required_argument, NULL, OPT_LAYER},
        {"head", required_argument, NULL, OPT_HEAD},
        {"attention", required_argument, NULL, 'b'},
        {"simulate", no_argument, NULL, OPT_SIMULATE},
        {"inputs", required_argument, NULL, 'x'},
        {"unknown", required_argument, NULL, OPT_UNKNOWN},
        {"known", required_argument, NULL, OPT_KNOWN},
        {"values", required_argument, NULL, OPT_VALUES},
        {"value-path", no_argument, NULL, OPT_VPATH},
        {"outputs", required_argument, NULL, OPT_OUTPUTS},
        {"value-weight", required_argument, NULL, OPT_VWEIGHT},
        {"output", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, OPT_JSON},
        {"scale", required_argument, NULL, OPT_SCALE},
        {"causal", no_argument, NULL, OPT_CAUSAL},
        {"solver", required_argument, NULL, OPT_SOLVER},
        {"restarts", required_argument, NULL, 'r'},
        {"iterations", required_argument, NULL, 'n'},
        {"lam", required_argument, NULL, OPT_LAM},
        {"continuation", required_argument, NULL, OPT_CONT},
        {"init-std", required_argument, NULL, OPT_INIT},
        {"tol", required_argument, NULL, OPT_TOL},
        {"lambda-min", no_argument, NULL, OPT_LMIN},
        {"stochastic-tol", required_argument, NULL, OPT_STOCH},
        {"seed", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    asec_attn_invert_options o = ASEC_ATTN_INVERT_OPTIONS_INIT;
    const char *wpath = NULL, *bpath = NULL, *xpath = NULL, *outdir = NULL;
    const char *mpath = NULL, *kpath = NULL, *vpath = NULL, *opath = NULL;
    int simulate = 0, json = 0, have_seed = 0, have_scale = 0, vpath_model = 0, c;
    int st = EXIT_OK, rc;
    uint64_t seed = 0;
    size_t layer = 0, xr;
    long head = 0;
    double vweight = 1.0;
    asec_io_file *fw = NULL, *fb = NULL, *fx = NULL, *fk = NULL, *fv = NULL, *fo = NULL;
    asec_mat w[MAX_HEADS], b[MAX_HEADS], wv[MAX_HEADS], om[MAX_HEADS];
    asec_mat bsim[MAX_HEADS], osim[MAX_HEADS];
    asec_mat xtrue = {0, 0, 0, NULL}, xh = {0, 0, 0, NULL}, known = {0, 0, 0, NULL};
    size_t nh = 0, nhb = 0, nhv = 0, nho = 0, d, n = 0, dv = 0, nsim = 0, nosim = 0;
    struct model_w mw;
    asec_attn_invert *ctx = NULL;
    asec_attn_invert_result res;
    asec_attn_invert_trace tr = {NULL, NULL, 0};
    asec_attn_invert_metrics m;
    asec_rng *rng = NULL;
    asec_report *rep = NULL;
    double *tl = NULL, *tm = NULL;
    int have_lmin = 0;
    char path[4096];

    memset(&res, 0, sizeof res);
    memset(&m, 0, sizeof m);
    memset(&mw, 0, sizeof mw);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+w:m:b:x:o:r:n:s:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'w':
            wpath = optarg;
            break;
        case 'm':
            mpath = optarg;
            break;
        case 'b':
            bpath = optarg;
            break;
        case 'x':
            xpath = optarg;
            break;
        case 'o':
            outdir = optarg;
            break;
        case OPT_KNOWN:
            kpath = optarg;
            break;
        case OPT_VALUES:
            vpath = optarg;
            break;
        case OPT_OUTPUTS:
            opath = optarg;
            break;
        case OPT_VPATH:
            vpath_model = 1;
            break;
        case OPT_SIMULATE:
            simulate = 1;
            break;
        case OPT_JSON:
            json = 1;
            break;
        case OPT_CAUSAL:
            o.causal = 1;
            break;
        case OPT_LMIN:
            o.lambda_min = 1;
            break;
        case OPT_LAYER:
            if (cli_parse_size("--layer", optarg, 0, 1 << 20, &layer))
                return EXIT_USAGE;
            break;
        case OPT_HEAD:
            if (strcmp(optarg, "all") == 0)
                head = -1;
            else if (cli_parse_long("--head", optarg, 0, 1 << 20, &head))
                return EXIT_USAGE;
            break;
        case OPT_UNKNOWN: {
            size_t i;

            for (i = 0; i < 4 && strcmp(optarg, inputs_names[i]) != 0; i++)
                ;
            if (i == 4)
                return cli_usage_error("--unknown: '%s' is not tied, query, key or both",
                                       optarg);
            o.inputs = (asec_attn_invert_inputs)i;
            break;
        }
        case OPT_VWEIGHT:
            if (cli_parse_double("--value-weight", optarg, 1e-300, 1e300, &vweight))
                return EXIT_USAGE;
            break;
        case OPT_SCALE:
            if (cli_parse_double("--scale", optarg, 1e-300, 1e300, &o.scale))
                return EXIT_USAGE;
            have_scale = 1;
            break;
        case OPT_LAM:
            if (cli_parse_double("--lam", optarg, 0, 1e300, &o.lam))
                return EXIT_USAGE;
            break;
        case OPT_CONT:
            if (cli_parse_double("--continuation", optarg, 0, 1e300, &o.continuation))
                return EXIT_USAGE;
            break;
        case OPT_INIT:
            if (cli_parse_double("--init-std", optarg, 1e-300, 1e300, &o.init_std))
                return EXIT_USAGE;
            break;
        case OPT_TOL:
            if (cli_parse_double("--tol", optarg, 1e-300, 0.5, &o.tol))
                return EXIT_USAGE;
            break;
        case OPT_STOCH:
            if (cli_parse_double("--stochastic-tol", optarg, 0, 0.5, &o.stochastic_tol))
                return EXIT_USAGE;
            break;
        case OPT_SOLVER:
            if (strcmp(optarg, "lm") == 0)
                o.solver = ASEC_ATTN_INVERT_LM;
            else if (strcmp(optarg, "lbfgs") == 0)
                o.solver = ASEC_ATTN_INVERT_LBFGS;
            else if (strcmp(optarg, "newton") == 0)
                o.solver = ASEC_ATTN_INVERT_NEWTON;
            else
                return cli_usage_error("--solver: '%s' is not lm, newton or lbfgs",
                                       optarg);
            break;
        case 'r':
            if (cli_parse_size("--restarts", optarg, 1, 1000000, &o.restarts))
                return EXIT_USAGE;
            break;
        case 'n':
            if (cli_parse_size("--iterations", optarg, 1, (size_t)1 << 30, &o.max_iter))
                return EXIT_USAGE;
            break;
        case 's':
            if (cli_parse_u64("--seed", optarg, &seed))
                return EXIT_USAGE;
            have_seed = 1;
            break;
        case 'q':
            cli_verbosity = 0;
            break;
        case 'v':
            cli_verbosity = 2;
            break;
        case 'h':
            attn_invert_help();
            return EXIT_OK;
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if ((wpath == NULL) == (mpath == NULL))
        return cli_usage_error("give exactly one of --weights and --model");
    if (outdir == NULL)
        return cli_usage_error("-o/--output is required");
    if (simulate && xpath == NULL)
        return cli_usage_error("--simulate needs --inputs");
    if (simulate == (bpath != NULL))
        return cli_usage_error("give exactly one of --attention and --simulate");
    if ((o.inputs == ASEC_ATTN_INVERT_QUERY || o.inputs == ASEC_ATTN_INVERT_KEY) !=
        (kpath != NULL))
        return cli_usage_error("--known is needed with, and only with, --unknown=query "
                               "or --unknown=key");
    if (vpath_model && mpath == NULL)
        return cli_usage_error("--value-path takes W_V from --model; use --values");
    if (vpath != NULL && mpath != NULL)
        return cli_usage_error("--values conflicts with --model (use --value-path)");
    if ((vpath != NULL || vpath_model) && !simulate && opath == NULL)
        return cli_usage_error("the value path needs --outputs (or --simulate)");
    if (opath != NULL && (simulate || (vpath == NULL && !vpath_model)))
        return cli_usage_error("--outputs needs --values or --value-path, "
                               "and not --simulate");

    /* W (and W_V): a model layer or .npy files. */
    if (mpath != NULL) {
        if ((st = model_weights(&mw, mpath, layer, head)) != EXIT_OK)
            goto done;
        nh = mw.nh;
        d = mw.d;
        for (size_t h = 0; h < nh; h++) {
            w[h] = asec_mat_view(mw.wbuf + h * d * d, d, d);
            wv[h] = asec_mat_view(mw.vbuf + h * d * mw.dv, d, mw.dv);
        }
        if (vpath_model) {
            dv = mw.dv;
            nhv = nh;
        }
        if (!have_scale)
            o.scale = mw.scale;
        o.causal |= mw.causal;
        if (mw.bias && cli_verbosity > 0)
            cli_warn(
                "%s: layer %zu has query/key biases, which the attack does not model",
                mpath, layer);
    } else {
        if ((st = open_npy(&fw, wpath)) != EXIT_OK)
            goto done;
        if ((st = tensor_heads(asec_io_file_tensor(fw, 0), wpath, w, &nh, 1)))
            goto done;
        d = w[0].rows;
        if (vpath != NULL) {
            if ((st = open_npy(&fv, vpath)) != EXIT_OK)
                goto done;
            if ((st = tensor_heads(asec_io_file_tensor(fv, 0), vpath, wv, &nhv, 0)))
                goto done;
            dv = wv[0].cols;
            if (nhv != nh || wv[0].rows != d) {
                cli_error("%s: W_V is (%zu, %zu) x %zu, expected (%zu, dv) x %zu", vpath,
                          wv[0].rows, dv, nhv, d, nh);
                st = EXIT_DATAERR;
                goto done;
            }
        }
    }
    xr = o.inputs == ASEC_ATTN_INVERT_BOTH ? 2 * d : d;
    if (kpath != NULL) {
        const asec_io_tensor *t;

        if ((st = open_npy(&fk, kpath)) != EXIT_OK)
            goto done;
        t = asec_io_file_tensor(fk, 0);
        if (t->ndim != 2 || t->shape[0] != d || t->shape[1] < 2) {
            cli_error("%s: expected the given input of shape (%zu, n) with n >= 2", kpath,
                      d);
            st = EXIT_DATAERR;
            goto done;
        }
        known = asec_mat_view(t->data, d, t->shape[1]);
        n = known.cols;
    }
    if (xpath != NULL) {
        const asec_io_tensor *t;

        if ((st = open_npy(&fx, xpath)) != EXIT_OK)
            goto done;
        t = asec_io_file_tensor(fx, 0);
        if (t->ndim != 2 || t->shape[0] != xr || t->shape[1] < 2 ||
            (n != 0 && t->shape[1] != n)) {
            cli_error("%s: expected X of shape (%zu, n) with n >= 2 to match W%s", xpath,
                      xr, kpath ? " and --known" : "");
            st = EXIT_DATAERR;
            goto done;
        }
        xtrue = asec_mat_view(t->data, xr, t->shape[1]);
    }
    if (simulate) {
        asec_mat xq, xk;

        n = xtrue.cols;
        true_sides(&xq, &xk, &xtrue, &known, o.inputs, d);
        for (nsim = 0; nsim < nh; nsim++) {
            if ((rc = asec_mat_alloc(&bsim[nsim], n, n)) != ASEC_OK ||
                (rc = asec_attn_invert_attention_qk(&bsim[nsim], &xq, &xk, &w[nsim],
                                                    o.scale, o.causal)) != ASEC_OK) {
                nsim += rc == ASEC_OK;
                st = cli_fail(rc);
                goto done;
            }
            b[nsim] = bsim[nsim];
        }
        nhb = nh;
        // O_h = F_h X_k^T W_V,h
        for (nosim = 0; dv > 0 && nosim < nh; nosim++) {
            asec_mat v = {0, 0, 0, NULL};

            rc = asec_mat_alloc(&osim[nosim], n, dv);
            if (rc == ASEC_OK)
                rc = asec_mat_alloc(&v, n, dv);
            if (rc == ASEC_OK)
                rc = asec_mat_gemm(&v, 1.0, &xk, ASEC_TRANS, &wv[nosim], ASEC_NOTRANS,
                                   0.0);
            if (rc == ASEC_OK)
                rc = asec_mat_gemm(&osim[nosim], 1.0, &b[nosim], ASEC_NOTRANS, &v,
                                   ASEC_NOTRANS, 0.0);
            asec_mat_free(&v);
            if (rc != ASEC_OK) {
                nosim++;
                st = cli_fail(rc);
                goto done;
            }
            om[nosim] = osim[nosim];
        }
        nho = nosim;
    } else {
        if ((st = open_npy(&fb, bpath)) != EXIT_OK)
            goto done;
        if ((st = tensor_heads(asec_io_file_tensor(fb, 0), bpath, b, &nhb, 1)))
            goto done;
        if (nhb != nh) {
            cli_error("%s: %zu heads, but the weights have %zu", bpath, nhb, nh);
            st = EXIT_DATAERR;
            goto done;
        }
        if (n != 0 && b[0].rows != n) {
            cli_error("%s: B is (%zu, %zu), but the inputs have %zu tokens", bpath,
                      b[0].rows, b[0].rows, n);
            st = EXIT_DATAERR;
            goto done;
        }
        n = b[0].rows;
        if (xpath != NULL && xtrue.cols != n) {
            cli_error("%s: X has %zu tokens, but B is (%zu, %zu)", xpath, xtrue.cols, n,
                      n);
            st = EXIT_DATAERR;
            goto done;
        }
        if (n < 2) {
            cli_error("%s: B must be at least (2, 2)", bpath);
            st = EXIT_DATAERR;
            goto done;
        }
        if (opath != NULL) {
            if ((st = open_npy(&fo, opath)) != EXIT_OK)
                goto done;
            if ((st = tensor_heads(asec_io_file_tensor(fo, 0), opath, om, &nho, 0)))
                goto done;
            if (nho != nh || om[0].rows != n || om[0].cols != dv) {
                cli_error("%s: O is (%zu, %zu) x %zu, expected (%zu, %zu) x %zu", opath,
                          om[0].rows, om[0].cols, nho, n, dv, nh);
                st = EXIT_DATAERR;
                goto done;
            }
        }
    }
    rc = asec_attn_invert_alloc(&ctx, d, n, nh, w, b, &o);
    if (rc == ASEC_OK && known.data != NULL)
        rc = asec_attn_invert_set_known(ctx, &known);
    if (rc == ASEC_OK && dv > 0)
        rc = asec_attn_invert_set_values(ctx, dv, wv, om, vweight);
    if (rc != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    if (o.solver != ASEC_ATTN_INVERT_LBFGS && xr * n > ASEC_ATTN_INVERT_LM_MAX_UNKNOWNS) {
        cli_error("%zu unknowns exceed the %s limit %d; use --solver=lbfgs", xr * n,
                  solver_names[o.solver], ASEC_ATTN_INVERT_LM_MAX_UNKNOWNS);
        st = EXIT_DATAERR;
        goto done;
    }
    if (!have_seed) {
        asec_rng *sec;

        if ((rc = asec_rng_alloc_secure(&sec)) != ASEC_OK) {
            st = cli_fail(rc);
            goto done;
        }
        seed = asec_rng_u64(sec);
        asec_rng_free(sec);
    }
    if ((rc = asec_rng_alloc_seeded(&rng, seed, "attack/attn-invert/init")) != ASEC_OK ||
        (rc = asec_mat_alloc(&xh, xr, n)) != ASEC_OK ||
        (rc = asec_afile_mkdirs(outdir)) != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    tr.cap = o.max_iter ? o.max_iter : 5000;
    tl = calloc(tr.cap, sizeof(double));
    tm = calloc(tr.cap, sizeof(double));
    if (tl == NULL || tm == NULL) {
        cli_error("out of memory");
        st = EXIT_TEMPFAIL;
        goto done;
    }
    tr.loss = tl;
    tr.lambda_min = tm;
    if (cli_verbosity > 0)
        fprintf(stderr,
                "%s: seeded run (seed %llu): NOT a DP release; d=%zu n=%zu heads=%zu "
                "unknown=%s dv=%zu\n",
                cli_command(), (unsigned long long)seed, d, n, nh, inputs_names[o.inputs],
                dv);
    rc = asec_attn_invert_solve(ctx, &xh, rng, &res, &tr);
    if (rc != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    have_lmin = o.solver == ASEC_ATTN_INVERT_NEWTON ||
                (o.lambda_min && o.solver == ASEC_ATTN_INVERT_LM);

    /* The report. */
    if ((rc = asec_report_alloc(&rep, "attack attn-invert", argc, argv)) != ASEC_OK)
        goto report_fail;
    rc = asec_report_add_input(rep, wpath != NULL ? wpath : mpath);
    if (rc == ASEC_OK && bpath)
        rc = asec_report_add_input(rep, bpath);
    if (rc == ASEC_OK && xpath)
        rc = asec_report_add_input(rep, xpath);
    if (rc == ASEC_OK && kpath)
        rc = asec_report_add_input(rep, kpath);
    if (rc == ASEC_OK && vpath)
        rc = asec_report_add_input(rep, vpath);
    if (rc == ASEC_OK && opath)
        rc = asec_report_add_input(rep, opath);
    if (rc == ASEC_OK)
        rc = asec_report_set_rng(rep, rng);
#define SETN(k, v) (rc == ASEC_OK ? (rc = asec_report_set_num(rep, k, v)) : rc)
#define SETI(k, v)                                                                       \
    (rc == ASEC_OK ? (rc = asec_report_set_int(rep, k, (long long)(v))) : rc)
#define SETS(k, v) (rc == ASEC_OK ? (rc = asec_report_set_str(rep, k, v)) : rc)
#define SETB(k, v) (rc == ASEC_OK ? (rc = asec_report_set_bool(rep, k, v)) : rc)
    SETS("config.method", "attn-invert");
    SETS("config.objective",
         dv > 0 ? "0.5 sum_h ||rowsoftmax(s X_q^T W_h X_k) - B_h||_F^2 + 0.5 g sum_h "
                  "||F_h X_k^T W_V,h - O_h||_F^2 + 0.5 lam ||X||_F^2 (arXiv 2310.12462)"
                : "0.5 sum_h ||rowsoftmax(s X_q^T W_h X_k) - B_h||_F^2 "
                  "+ 0.5 lam ||X||_F^2 (arXiv 2310.12462)");
    SETS("config.solver", solver_names[o.solver]);
    SETS("config.unknown", inputs_names[o.inputs]);
    SETN("config.scale", o.scale);
    SETB("config.causal", o.causal);
    SETN("config.lam", o.lam);
    SETN("config.continuation", o.continuation);
    SETI("config.restarts", o.restarts);
    SETI("config.iterations", o.max_iter);
    SETN("config.init_std", o.init_std);
    SETN("config.tol", o.tol);
    SETB("config.simulate", simulate);
    SETB("config.value_path", dv > 0);
    if (dv > 0)
        SETN("config.value_weight", vweight);
    if (mpath != NULL) {
        SETS("config.model", mpath);
        SETI("config.layer", layer);
        if (head < 0)
            SETS("config.head", "all");
        else
            SETI("config.head", head);
        SETB("config.model_qk_bias_ignored", mw.bias);
    }
    SETI("results.d", d);
    SETI("results.n", n);
    SETI("results.heads", nh);
    SETI("results.dv", dv);
    SETN("results.loss", res.loss);
    SETN("results.output_residual_rel", res.out_rel);
    SETB("results.converged", res.converged);
    SETI("results.starts", res.starts);
    SETI("results.best_start", res.best_start);
    SETI("results.iterations", res.iterations);
    SETI("results.evaluations", res.evaluations);
    SETI("results.factorizations", res.factorizations);
    SETI("results.unknowns", xr * n);
    SETI("results.equations",
         (o.causal ? nh * n * (n - 1) / 2 : nh * n * (n - 1)) + nh * n * dv);
    for (size_t i = 0; i < res.trace_len && rc == ASEC_OK; i++) {
        rc = asec_report_append_num(rep, "results.trace.loss", tl[i]);
        if (rc == ASEC_OK && have_lmin)
            rc = asec_report_append_num(rep, "results.trace.lambda_min", tm[i]);
    }
    if (rc == ASEC_OK && xpath != NULL) {
        rc = asec_attn_invert_score(&m, ctx, &xh, &xtrue);
        SETN("results.orbit_error", m.orbit_err);
        SETN("results.orbit_w_error", m.orbit_w_err);
        SETN("results.naive_error", m.naive_err);
        SETI("results.ker_dim", m.ker_dim);
        SETB("results.success", m.success);
        SETI("results.successes", m.success ? 1 : 0);
        SETN("results.success_rate", (double)(m.success ? 1 : 0) / (double)res.starts);
    }
#undef SETN
#undef SETI
#undef SETS
#undef SETB
    if (rc != ASEC_OK)
        goto report_fail;
    snprintf(path, sizeof path, "%s/x_recovered.npy", outdir);
    {
        size_t shape[2] = {xr, n};

        if ((rc = asec_io_npy_write(path, xh.data, 2, shape, ASEC_IO_F64)) != ASEC_OK)
            goto report_fail;
    }
    if ((rc = asec_report_finish(rep, EXIT_OK)) != ASEC_OK)
        goto report_fail;
    snprintf(path, sizeof path, "%s/report.json", outdir);
    if ((rc = asec_report_write(rep, path)) != ASEC_OK)
        goto report_fail;
    if (json && (rc = asec_report_print(rep, stdout)) != ASEC_OK)
        goto report_fail;
    if (cli_verbosity > 0) {
        fprintf(stderr, "%s: %s after %zu start(s): relative residual %.3g",
                cli_command(), res.converged ? "converged" : "NOT converged", res.starts,
                res.out_rel);
        if (xpath != NULL)
            fprintf(stderr, ", orbit error %.3g (%s)", m.orbit_err,
                    m.success ? "recovered" : "not recovered");
        fprintf(stderr, "\n");
    }
    goto done;
report_fail:
    st = cli_fail(rc);
done:
    free(tl);
    free(tm);
    free(mw.wbuf);
    free(mw.vbuf);
    for (size_t i = 0; i < nsim; i++)
        asec_mat_free(&bsim[i]);
    for (size_t i = 0; i < nosim; i++)
        asec_mat_free(&osim[i]);
    asec_mat_free(&xh);
    asec_report_free(rep);
    asec_rng_free(rng);
    asec_attn_invert_free(ctx);
    asec_io_file_free(fw);
    asec_io_file_free(fb);
    asec_io_file_free(fx);
    asec_io_file_free(fk);
    asec_io_file_free(fv);
    asec_io_file_free(fo);
    return st;
}
