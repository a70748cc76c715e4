/* cmd_model.c - 'attnsec model': make, describe, differentiate and evaluate
 * model files (attnsec-model(1), asec_model(3)).
 *
 *   init   a model of a given architecture with seeded random parameters
 *   info   the architecture, parameter count, tensors and input shapes
 *   grad   a client's shared gradient (or per-example gradients) on a batch
 *   eval   loss and accuracy on a shipped dataset or on .npy files
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "attnsec/attnsec.h"
#include "attnsec/data.h"
#include "attnsec/io.h"
#include "attnsec/model.h"
#include "cli.h"
#include "commands.h"

const struct cli_method cmd_model_methods[] = {
    {"init", cmd_model_init, "make a model file with random parameters"},
    {"info", cmd_model_info, "describe a model file"},
    {"grad", cmd_model_grad, "compute the gradient a client would share"},
    {"eval", cmd_model_eval, "loss and accuracy of a model on a dataset"},
    {NULL, NULL, NULL}};

/* The data directory: $ATTNSEC_DATADIR, else the installed one when it
 * exists, else (a build tree before 'make install', README's first
 * command) the source tree's datasets/. */
const char *
cli_datadir(void)
{
    const char *d = getenv("ATTNSEC_DATADIR");

    if (d != NULL && d[0] != '\0')
        return d;
#ifdef ASEC_SRCDIR_DATASETS
    if (access(ASEC_PKGDATADIR "/datasets", R_OK | X_OK) != 0 &&
        access(ASEC_SRCDIR_DATASETS, R_OK | X_OK) == 0)
        return ASEC_SRCDIR_DATASETS;
#endif
    return ASEC_PKGDATADIR "/datasets";
}

/* "(4, 8, 8)" */
static void
shape_str(char *buf, size_t cap, size_t ndim, const size_t *shape)
{
    size_t len = (size_t)snprintf(buf, cap, "(");

    for (size_t i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? ", %zu" : "%zu", shape[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, ndim == 1 ? ",)" : ")");
}

static int
print_json(json_t *j)
{
    int rc =
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));

    json_decref(j);
    if (rc != 0 || fputc('\n', stdout) == EOF) {
        cli_error("cannot write to standard output");
        return EXIT_IOERR;
    }
    return EXIT_OK;
}

/* The per-example input shape in words ("(T, C)" with numbers). */
static size_t
input_shape(const asec_model *m, size_t T, size_t *shape)
{
    const asec_model_arch *a = asec_model_get_arch(m);

    if (a->kind == ASEC_MODEL_VIT) {
        shape[0] = a->image_h, shape[1] = a->image_w;
        return 2;
    }
    shape[0] = asec_model_tokens(m, T), shape[1] = a->channels;
    return 2;
}

/* ------------------------------------------------------------ init */

static void
init_help(void)
{
    printf(
        "Usage: attnsec model init --arch=KIND [OPTION]... -o FILE\n"
        "Write a model file (safetensors, architecture in its metadata) with seeded\n"
        "random parameters.\n"
        "\n"
        "Architecture (defaults per kind in attnsec-model(1)):\n"
        "  -a, --arch=KIND         attn-regression, attn-block, vit or text\n"
        "  -C, --channels=N        model width C (attn-regression: d)\n"
        "  -L, --layers=N          blocks L\n"
        "  -H, --heads=N           attention heads (must divide C)\n"
        "  -T, --seq-len=N         tokens per example (text: the context)\n"
        "  -K, --classes=N         classes of the head\n"
        "      --vocab=N           text: vocabulary size\n"
        "      --image=HxW         vit: image size (default 8x8)\n"
        "      --patch=N           vit: patch side\n"
        "      --mlp=N             vit, text: MLP width\n"
        "      --pool=POOL         mean, cls or none\n"
        "      --pos=POS           learned, none or sin\n"
        "      --causal            causal attention mask\n"
        "      --no-causal         bidirectional attention\n"
        "      --scale=S           attn-regression: logit scale s\n"
        "Output:\n"
        "  -o, --output=FILE       the model file to write\n"
        "  -s, --seed=N            seed of the initialisation (default: drawn from the\n"
        "                            OS and printed)\n"
        "      --json              print the architecture as JSON on standard output\n"
        "  -q, --quiet             no messages on standard error\n"
        "  -h, --help              display this help and exit\n"
        "  -V, --version           output version information and exit\n"
        "\n"
        "Exit status: 0 on success, 64 usage error, 73 cannot create FILE, 74 I/O\n"
        "error.  Full documentation: attnsec-model(1).\n");
}

int
cmd_model_init(int argc, char **argv)
{
    enum {
        O_VOCAB = 256,
        O_IMAGE,
        O_PATCH,
        O_MLP,
        O_POOL,
        O_POS,
        O_CAUSAL,
        O_NOCAUSAL,
        O_SCALE,
        O_JSON
    };
    static const struct option longopts[] = {{"arch", required_argument, NULL, 'a'},
                                             {"channels", required_argument, NULL, 'C'},
                                             {"layers", required_argument, NULL, 'L'},
                                             {"heads", required_argument, NULL, 'H'},
                                             {"seq-len", required_argument, NULL, 'T'},
                                             {"classes", required_argument, NULL, 'K'},
                                             {"vocab", required_argument, NULL, O_VOCAB},
                                             {"image", required_argument, NULL, O_IMAGE},
                                             {"patch", required_argument, NULL, O_PATCH},
                                             {"mlp", required_argument, NULL, O_MLP},
                                             {"pool", required_argument, NULL, O_POOL},
                                             {"pos", required_argument, NULL, O_POS},
                                             {"causal", no_argument, NULL, O_CAUSAL},
                                             {"no-causal", no_argument, NULL, O_NOCAUSAL},
                                             {"scale", required_argument, NULL, O_SCALE},
                                             {"output", required_argument, NULL, 'o'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"json", no_argument, NULL, O_JSON},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    const char *arch_name = NULL, *out = NULL;
    /* Options are applied after the defaults of the kind are known. */
    size_t C = 0, L = 0, NH = 0, T = 0, K = 0, V = 0, IH = 0, IW = 0, PS = 0, H = 0;
    const char *pool = NULL, *pos = NULL;
    int causal = -1, json = 0, have_seed = 0, c, rc;
    double scale = NAN;
    uint64_t seed = 0;
    asec_model_arch a;
    asec_model *m = NULL;
    asec_rng *rng = NULL;
    char js[1024];

    opterr = 0;
    while ((c = getopt_long(argc, argv, "a:C:L:H:T:K:o:s:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            arch_name = optarg;
            break;
        case 'C':
            if (cli_parse_size("--channels", optarg, 1, 65536, &C))
                return EXIT_USAGE;
            break;
        case 'L':
            if (cli_parse_size("--layers", optarg, 1, 1024, &L))
                return EXIT_USAGE;
            break;
        case 'H':
            if (cli_parse_size("--heads", optarg, 1, 65536, &NH))
                return EXIT_USAGE;
            break;
        case 'T':
            if (cli_parse_size("--seq-len", optarg, 1, 65536, &T))
                return EXIT_USAGE;
            break;
        case 'K':
            if (cli_parse_size("--classes", optarg, 1, (size_t)1 << 24, &K))
                return EXIT_USAGE;
            break;
        case O_VOCAB:
            if (cli_parse_size("--vocab", optarg, 1, (size_t)1 << 24, &V))
                return EXIT_USAGE;
            break;
        case O_IMAGE: {
            char *x = strchr(optarg, 'x'), hb[32];

            if (x == NULL || (size_t)(x - optarg) >= sizeof hb)
                return cli_usage_error("--image: '%s' is not HxW", optarg);
            memcpy(hb, optarg, (size_t)(x - optarg));
            hb[x - optarg] = '\0';
            if (cli_parse_size("--image", hb, 1, 4096, &IH) ||
                cli_parse_size("--image", x + 1, 1, 4096, &IW))
                return EXIT_USAGE;
            break;
        }
        case O_PATCH:
            if (cli_parse_size("--patch", optarg, 1, 4096, &PS))
                return EXIT_USAGE;
            break;
        case O_MLP:
            if (cli_parse_size("--mlp", optarg, 1, (size_t)1 << 20, &H))
                return EXIT_USAGE;
            break;
        case O_POOL:
            pool = optarg;
            break;
        case O_POS:
            pos = optarg;
            break;
        case O_CAUSAL:
            causal = 1;
            break;
        case O_NOCAUSAL:
            causal = 0;
            break;
        case O_SCALE:
            if (cli_parse_double("--scale", optarg, -1e6, 1e6, &scale))
                return EXIT_USAGE;
            break;
        case 'o':
            out = optarg;
            break;
        case 's':
            if (cli_parse_u64("--seed", optarg, &seed))
                return EXIT_USAGE;
            have_seed = 1;
            break;
        case O_JSON:
            json = 1;
            break;
        case 'q':
            cli_verbosity = 0;
            break;
        case 'h':
            init_help();
            return EXIT_OK;
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (arch_name == NULL)
        return cli_usage_error(
            "missing --arch (attn-regression, attn-block, vit or text)");
    if (out == NULL)
        return cli_usage_error("missing -o FILE");
    {
        asec_model_kind kind;

        if (asec_model_kind_parse(&kind, arch_name) != ASEC_OK)
            return cli_usage_error("--arch: unknown kind '%s'", arch_name);
        if (asec_model_arch_default(&a, kind) != ASEC_OK)
            return cli_fail(ASEC_EINVAL);
    }
    if (C)
        a.channels = C;
    if (L)
        a.layers = L;
    if (NH)
        a.heads = NH;
    if (K)
        a.classes = K;
    if (V) {
        a.vocab = V;
        if (!K && a.pool == ASEC_MODEL_POOL_NONE)
            a.classes = V; /* a next-token model predicts the vocabulary */
    }
    if (IH)
        a.image_h = IH, a.image_w = IW;
    if (PS)
        a.patch = PS;
    if (H)
        a.mlp_hidden = H;
    else if (C && (a.kind == ASEC_MODEL_VIT || a.kind == ASEC_MODEL_TEXT))
        a.mlp_hidden = 4 * C;
    if (pool != NULL && asec_model_pool_parse(&a.pool, pool) != ASEC_OK)
        return cli_usage_error("--pool: '%s' is not mean, cls or none", pool);
    if (pos != NULL && asec_model_pos_parse(&a.pos, pos) != ASEC_OK)
        return cli_usage_error("--pos: '%s' is not learned, none or sin", pos);
    if (causal >= 0)
        a.causal = causal;
    if (!isnan(scale))
        a.scale = scale;
    else if (C && a.kind == ASEC_MODEL_ATTN_REGRESSION)
        a.scale = 1.0 / sqrt((double)C);
    if (T)
        a.seq_len = T;
    else if (a.kind == ASEC_MODEL_VIT && a.patch && a.image_h % a.patch == 0 &&
             a.image_w % a.patch == 0)
        a.seq_len = (a.image_h / a.patch) * (a.image_w / a.patch) +
                    (a.pool == ASEC_MODEL_POOL_CLS);
    if (asec_model_arch_check(&a) != ASEC_OK)
        return cli_usage_error("%s", asec_errmsg());
    if (!have_seed) {
        asec_rng *os;

        if ((rc = asec_rng_alloc_secure(&os)) != ASEC_OK)
            return cli_fail(rc);
        seed = asec_rng_u64(os);
        asec_rng_free(os);
    }
    if ((rc = asec_rng_alloc_seeded(&rng, seed, "model/init")) != ASEC_OK)
        return cli_fail(rc);
    if ((rc = asec_model_alloc(&m, &a)) != ASEC_OK) {
        asec_rng_free(rng);
        return cli_fail(rc);
    }
    asec_model_init_params(m, rng);
    asec_rng_free(rng);
    rc = asec_model_save(m, out);
    if (rc != ASEC_OK) {
        asec_model_free(m);
        return cli_fail(rc);
    }
    if (cli_verbosity > 0)
        fprintf(stderr, "%s: wrote %s: %s, %zu parameters, seed %llu\n", cli_command(),
                out, asec_model_kind_name(a.kind), asec_model_param_count(m),
                (unsigned long long)seed);
    asec_model_free(m);
    if (json) {
        json_t *j;

        if (asec_model_arch_to_json(js, sizeof js, &a) != ASEC_OK ||
            (j = json_loads(js, 0, NULL)) == NULL)
            return cli_fail(ASEC_EINTERNAL);
        json_object_set_new(j, "seed", json_integer((json_int_t)seed));
        json_object_set_new(j, "output", json_string(out));
        return print_json(j);
    }
    return EXIT_OK;
}

/* ------------------------------------------------------------ info */

static void
info_help(void)
{
    printf("Usage: attnsec model info [OPTION]... FILE\n"
           "Describe a model file: architecture, parameter count, tensors, and the\n"
           "shapes 'attnsec model grad' expects.\n"
           "\n"
           "      --json              print one JSON document on standard output\n"
           "  -h, --help              display this help and exit\n"
           "  -V, --version           output version information and exit\n"
           "\n"
           "Exit status: 0 on success, 64 usage error, 65 malformed file, 66 missing\n"
           "file.  Full documentation: attnsec-model(1).\n");
}

static int
load_model(asec_model **m, const char *path)
{
    int rc = asec_model_load(m, path);

    return rc == ASEC_OK ? EXIT_OK : cli_fail(rc);
}

int
cmd_model_info(int argc, char **argv)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    int c, json = 0, st;
    asec_model *m;
    const asec_model_arch *a;
    char js[1024], sh[64];
    size_t shape[2], nd;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = 1;
            break;
        case 'h':
            info_help();
            return EXIT_OK;
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("expected one model FILE");
    if ((st = load_model(&m, argv[optind])) != EXIT_OK)
        return st;
    a = asec_model_get_arch(m);
    nd = input_shape(m, 0, shape);
    shape_str(sh, sizeof sh, nd, shape);
    if (asec_model_arch_to_json(js, sizeof js, a) != ASEC_OK) {
        asec_model_free(m);
        return cli_fail(ASEC_EINTERNAL);
    }
    if (json) {
        json_t *j = json_object(), *tensors = json_array(),
               *arch = json_loads(js, 0, NULL);

        json_object_set_new(j, "file", json_string(argv[optind]));
        json_object_set_new(j, "arch", arch);
        json_object_set_new(j, "params",
                            json_integer((json_int_t)asec_model_param_count(m)));
        for (size_t i = 0; i < asec_model_tensor_count(m); i++) {
            asec_model_tensor t;
            json_t *o = json_object(), *s = json_array();

            if (asec_model_tensor_get(m, i, &t) != ASEC_OK)
                continue;
            for (size_t k = 0; k < t.ndim; k++)
                json_array_append_new(s, json_integer((json_int_t)t.shape[k]));
            json_object_set_new(o, "name", json_string(t.name));
            json_object_set_new(o, "shape", s);
            json_object_set_new(o, "offset", json_integer((json_int_t)t.offset));
            json_array_append_new(tensors, o);
        }
        json_object_set_new(j, "tensors", tensors);
        json_object_set_new(j, "input_shape", json_string(sh));
        asec_model_free(m);
        return print_json(j);
    }
    printf("file: %s\nkind: %s\narch: %s\nparameters: %zu\n", argv[optind],
           asec_model_kind_name(a->kind), js, asec_model_param_count(m));
    printf("input per example: %s%s\n", sh,
           a->kind == ASEC_MODEL_TEXT ? " embeddings, or (T,) token ids" : "");
    if (a->kind == ASEC_MODEL_ATTN_REGRESSION)
        printf("targets per example: %s\n", sh);
    else
        printf("labels per example: %s class ids or %s soft labels\n",
               a->pool == ASEC_MODEL_POOL_NONE ? "(T,)" : "()",
               a->pool == ASEC_MODEL_POOL_NONE ? "(T, K)" : "(K,)");
    printf("tensors:\n");
    for (size_t i = 0; i < asec_model_tensor_count(m); i++) {
        asec_model_tensor t;

        if (asec_model_tensor_get(m, i, &t) != ASEC_OK)
            continue;
        shape_str(sh, sizeof sh, t.ndim, t.shape);
        printf("  %-28s %-12s offset %zu\n", t.name, sh, t.offset);
    }
    asec_model_free(m);
    return EXIT_OK;
}

/* ------------------------------------------------------------ batches from files */

/* A batch read from .npy files, checked against the model. */
struct fbatch {
    asec_io_file *fx, *fy;
    asec_model_batch b;
    int64_t *tokens, *labels;
    size_t nsoft;
};

static void
fbatch_free(struct fbatch *fb)
{
    asec_io_file_free(fb->fx);
    asec_io_file_free(fb->fy);
    free(fb->tokens);
    free(fb->labels);
}

static int64_t *
ids_of(const asec_io_tensor *t)
{
    int64_t *y = malloc((t->nelem ? t->nelem : 1) * sizeof *y);

    if (y != NULL)
        for (size_t i = 0; i < t->nelem; i++)
            y[i] = (int64_t)t->data[i];
    return y;
}

static int
shape_mismatch(const char *path, const asec_io_tensor *t, const char *what, size_t nd,
               const size_t *want)
{
    char have[96], need[96];

    shape_str(have, sizeof have, t->ndim, t->shape);
    shape_str(need, sizeof need, nd, want);
    cli_error("%s: %s of shape %s, but the model expects %s", path, what, have, need);
    return EXIT_DATAERR;
}

/* Read inputs (and labels, may be NULL) and check every shape against the
 * model; on a mismatch print both shapes and return 65. */
static int
fbatch_load(struct fbatch *fb, const asec_model *m, const char *xpath, const char *ypath,
            int need_labels)
{
    const asec_model_arch *a = asec_model_get_arch(m);
    const asec_io_tensor *tx, *ty;
    size_t want[4], B, T, C = a->channels, K = a->classes;
    int rc;

    memset(fb, 0, sizeof *fb);
    if ((rc = asec_io_open(&fb->fx, xpath, ASEC_IO_NPY, ASEC_IO_LOAD_DOUBLE, NULL)) !=
        ASEC_OK)
        return cli_fail(rc);
    tx = asec_io_file_tensor(fb->fx, 0);
    B = tx->ndim > 0 ? tx->shape[0] : 0;
    if (B == 0)
        return shape_mismatch(xpath, tx, "inputs", 1, (size_t[]){1});
    if (a->kind == ASEC_MODEL_VIT) {
        want[0] = B, want[1] = a->image_h, want[2] = a->image_w;
        if (tx->ndim != 3 || tx->shape[1] != a->image_h || tx->shape[2] != a->image_w)
            return shape_mismatch(xpath, tx, "inputs", 3, want);
        T = a->seq_len;
        fb->b.x = tx->data;
    } else if (a->kind == ASEC_MODEL_TEXT && !asec_io_dtype_is_float(tx->dtype)) {
        /* token ids (B, T) */
        T = tx->ndim == 2 ? tx->shape[1] : 0;
        want[0] = B, want[1] = T ? T : a->seq_len;
        if (tx->ndim != 2 || T == 0 ||
            (a->pos == ASEC_MODEL_POS_LEARNED && T > a->seq_len)) {
            want[1] = a->seq_len;
            return shape_mismatch(xpath, tx, "token ids", 2, want);
        }
        for (size_t i = 0; i < tx->nelem; i++)
            if (tx->data[i] < 0 || tx->data[i] >= (double)a->vocab) {
                cli_error("%s: token %.0f at index %zu is outside [0, %zu)", xpath,
                          tx->data[i], i, a->vocab);
                return EXIT_DATAERR;
            }
        if ((fb->tokens = ids_of(tx)) == NULL)
            return cli_fail(ASEC_ENOMEM);
        fb->b.tokens = fb->tokens;
    } else {
        T = tx->ndim == 3 ? tx->shape[1] : 0;
        want[0] = B, want[1] = T ? T : a->seq_len, want[2] = C;
        if (tx->ndim != 3 || T == 0 || tx->shape[2] != C ||
            (a->pos == ASEC_MODEL_POS_LEARNED && T > a->seq_len)) {
            want[1] = a->seq_len;
            return shape_mismatch(xpath, tx, "inputs", 3, want);
        }
        fb->b.x = tx->data;
    }
    fb->b.B = B;
    fb->b.T = a->kind == ASEC_MODEL_VIT ? 0 : T;
    if (ypath == NULL) {
        if (need_labels)
            return cli_usage_error("missing --labels FILE");
        return EXIT_OK;
    }
    if ((rc = asec_io_open(&fb->fy, ypath, ASEC_IO_NPY, ASEC_IO_LOAD_DOUBLE, NULL)) !=
        ASEC_OK)
        return cli_fail(rc);
    ty = asec_io_file_tensor(fb->fy, 0);
    if (a->kind == ASEC_MODEL_ATTN_REGRESSION) {
        want[0] = B, want[1] = T, want[2] = C;
        if (ty->ndim != 3 || ty->shape[0] != B || ty->shape[1] != T || ty->shape[2] != C)
            return shape_mismatch(ypath, ty, "targets", 3, want);
        fb->b.soft = ty->data;
        fb->nsoft = ty->nelem;
        return EXIT_OK;
    }
    {
        int per_token = a->pool == ASEC_MODEL_POOL_NONE;
        size_t nd = per_token ? 2 : 1;

        want[0] = B, want[1] = T, want[nd] = K;
        if (asec_io_dtype_is_float(ty->dtype)) {
            int ok = ty->ndim == nd + 1 && ty->shape[0] == B && ty->shape[nd] == K &&
                     (!per_token || ty->shape[1] == T);

            if (!ok)
                return shape_mismatch(ypath, ty, "soft labels", nd + 1, want);
            fb->b.soft = ty->data;
            fb->nsoft = ty->nelem;
        } else {
            int ok =
                ty->ndim == nd && ty->shape[0] == B && (!per_token || ty->shape[1] == T);

            if (!ok)
                return shape_mismatch(ypath, ty, "labels", nd, want);
            for (size_t i = 0; i < ty->nelem; i++)
                if (ty->data[i] < 0 || ty->data[i] >= (double)K) {
                    cli_error("%s: label %.0f at index %zu is outside [0, %zu)", ypath,
                              ty->data[i], i, K);
                    return EXIT_DATAERR;
                }
            if ((fb->labels = ids_of(ty)) == NULL)
                return cli_fail(ASEC_ENOMEM);
            fb->b.labels = fb->labels;
        }
    }
    return EXIT_OK;
}

/* ------------------------------------------------------------ grad */

static void
grad_help(void)
{
    printf(
        "Usage: attnsec model grad --model=FILE --inputs=X.npy [--labels=Y.npy]\n"
        "                          [OPTION]... -o GRADS.safetensors\n"
        "Compute the gradient of the mean loss on one batch with respect to every\n"
        "parameter: what a federated-learning client shares.  Tensor names are the\n"
        "parameter names of the model (attnsec-formats(5)).\n"
        "\n"
        "  -m, --model=FILE        model file (attnsec model init)\n"
        "  -x, --inputs=FILE       inputs .npy: (B, H, W) images for vit, (B, T) token\n"
        "                            ids or (B, T, C) embeddings for text, (B, T, C)\n"
        "                            otherwise\n"
        "  -y, --labels=FILE       labels .npy: integer class ids (B) or (B, T), or\n"
        "                            float soft labels (B, K) or (B, T, K); for\n"
        "                            attn-regression the targets (B, T, C)\n"
        "      --per-example       write per-example gradients, each tensor (B, ...)\n"
        "  -o, --output=FILE       the gradient file to write\n"
        "      --json              print loss and sizes as JSON on standard output\n"
        "  -q, --quiet             no messages on standard error\n"
        "  -h, --help              display this help and exit\n"
        "  -V, --version           output version information and exit\n"
        "\n"
        "Exit status: 0 on success, 64 usage error, 65 malformed input or shapes\n"
        "that do not fit the model, 66 missing input, 73 cannot create FILE.\n"
        "Full documentation: attnsec-model(1).\n");
}

int
cmd_model_grad(int argc, char **argv)
{
    enum { O_PER = 256, O_JSON };
    static const struct option longopts[] = {{"model", required_argument, NULL, 'm'},
                                             {"inputs", required_argument, NULL, 'x'},
                                             {"labels", required_argument, NULL, 'y'},
                                             {"per-example", no_argument, NULL, O_PER},
                                             {"output", required_argument, NULL, 'o'},
                                             {"json", no_argument, NULL, O_JSON},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    const char *mpath = NULL, *xpath = NULL, *ypath = NULL, *out = NULL;
    int c, per = 0, json = 0, st, rc;
    asec_model *m = NULL;
    struct fbatch fb;
    double loss = 0.0, *g = NULL, *losses = NULL;
    size_t P;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:x:y:o:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            mpath = optarg;
            break;
        case 'x':
            xpath = optarg;
            break;
        case 'y':
            ypath = optarg;
            break;
        case O_PER:
            per = 1;
            break;
        case 'o':
            out = optarg;
            break;
        case O_JSON:
            json = 1;
            break;
        case 'q':
            cli_verbosity = 0;
            break;
        case 'h':
            grad_help();
            return EXIT_OK;
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (mpath == NULL || xpath == NULL || out == NULL)
        return cli_usage_error("--model, --inputs and -o are required");
    if ((st = load_model(&m, mpath)) != EXIT_OK)
        return st;
    if ((st = fbatch_load(&fb, m, xpath, ypath, 1)) != EXIT_OK)
        goto done;
    P = asec_model_param_count(m);
    g = calloc(per ? fb.b.B * P : P, sizeof *g);
    losses = calloc(fb.b.B, sizeof *losses);
    if (g == NULL || losses == NULL) {
        st = cli_fail(ASEC_ENOMEM);
        goto done;
    }
    if (per) {
        rc = asec_model_grad_per_example(m, losses, g, &fb.b);
        for (size_t b = 0; b < fb.b.B; b++)
            loss += losses[b] / (double)fb.b.B;
    } else {
        asec_model_vec v = {g, NULL, NULL};

        rc = asec_model_grad(m, &loss, &v, &fb.b);
    }
    if (rc == ASEC_OK)
        rc = asec_model_save_vectors(m, out, g, per ? fb.b.B : 0,
                                     per ? "per_example_gradient" : "gradient");
    if (rc != ASEC_OK) {
        st = cli_fail(rc == ASEC_EBADLEN ? ASEC_EFORMAT : rc);
        goto done;
    }
    if (json) {
        json_t *j = json_object();

        json_object_set_new(j, "loss", json_real(loss));
        json_object_set_new(j, "batch", json_integer((json_int_t)fb.b.B));
        json_object_set_new(j, "params", json_integer((json_int_t)P));
        json_object_set_new(j, "per_example", json_boolean(per));
        json_object_set_new(j, "output", json_string(out));
        st = print_json(j);
    } else {
        printf("loss %.17g\n", loss);
        if (cli_verbosity > 0)
            fprintf(stderr, "%s: wrote %s: %s%zu parameters, batch %zu\n", cli_command(),
                    out, per ? "per-example gradients of " : "", P, fb.b.B);
        st = EXIT_OK;
    }
done:
    fbatch_free(&fb);
    free(g);
    free(losses);
    asec_model_free(m);
    return st;
}

/* ------------------------------------------------------------ eval */

static void
eval_help(void)
{
    printf("Usage: attnsec model eval --model=FILE --data=NAME[:SPLIT]|X.npy,Y.npy\n"
           "                          [OPTION]...\n"
           "Mean loss and accuracy of a model on a shipped dataset (attnsec data list)\n"
           "or on an inputs file and a labels file.\n"
           "\n"
           "  -m, --model=FILE        model file\n"
           "  -d, --data=DATA         'digits' or 'kjv' with an optional ':train' or\n"
           "                            ':test' (default test), or X.npy,Y.npy\n"
           "  -b, --batch=N           examples per forward pass (default 64)\n"
           "  -n, --limit=N           evaluate at most N examples (kjv: windows)\n"
           "      --json              print one JSON document on standard output\n"
           "  -q, --quiet             no progress on standard error\n"
           "  -h, --help              display this help and exit\n"
           "  -V, --version           output version information and exit\n"
           "\n"
           "Shipped data are read from ATTNSEC_DATADIR (attnsec-data(1)).\n"
           "Exit status: 0 on success, 64 usage error, 65 data that do not fit the\n"
           "model, 66 missing input.  Full documentation: attnsec-model(1).\n");
}

/* argmax of each row, compared with the labels (or the argmax of soft). */
static size_t
count_correct(const double *logits, const asec_model_batch *b, size_t rows, size_t K)
{
    size_t ok = 0;

    for (size_t r = 0; r < rows; r++) {
        size_t best = 0, want = 0;

        for (size_t k = 1; k < K; k++)
            if (logits[r * K + k] > logits[r * K + best])
                best = k;
        if (b->labels != NULL) {
            want = (size_t)b->labels[r];
        } else {
            for (size_t k = 1; k < K; k++)
                if (b->soft[r * K + k] > b->soft[r * K + want])
                    want = k;
        }
        ok += best == want;
    }
    return ok;
}

/* Evaluate m over n examples given in chunks by next(); returns an exit
 * status and fills loss, acc. */
int
cmd_model_eval(int argc, char **argv)
{
    enum { O_JSON = 256 };
    static const struct option longopts[] = {{"model", required_argument, NULL, 'm'},
                                             {"data", required_argument, NULL, 'd'},
                                             {"batch", required_argument, NULL, 'b'},
                                             {"limit", required_argument, NULL, 'n'},
                                             {"json", no_argument, NULL, O_JSON},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    const char *mpath = NULL, *data = NULL;
    size_t batch = 64, limit = SIZE_MAX, n = 0, rows_per = 1, correct = 0, rows = 0;
    int c, json = 0, st = EXIT_OK, rc;
    asec_model *m = NULL;
    const asec_model_arch *a;
    asec_data *d = NULL;
    struct fbatch fb;
    double sum = 0.0, *logits = NULL, *losses = NULL;
    int64_t *in_ids = NULL, *lab_ids = NULL;
    char name[64], split[16] = "test";

    memset(&fb, 0, sizeof fb);
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:d:b:n:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            mpath = optarg;
            break;
        case 'd':
            data = optarg;
            break;
        case 'b':
            if (cli_parse_size("--batch", optarg, 1, 1 << 20, &batch))
                return EXIT_USAGE;
            break;
        case 'n':
            if (cli_parse_size("--limit", optarg, 1, SIZE_MAX, &limit))
                return EXIT_USAGE;
            break;
        case O_JSON:
            json = 1;
            break;
        case 'q':
            cli_verbosity = 0;
            break;
        case 'h':
            eval_help();
            return EXIT_OK;
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (mpath == NULL || data == NULL)
        return cli_usage_error("--model and --data are required");
    if ((st = load_model(&m, mpath)) != EXIT_OK)
        return st;
    a = asec_model_get_arch(m);
    if (strchr(data, ',') != NULL) {
        /* X.npy,Y.npy: one batch from files, evaluated in one pass */
        char *xs = strdup(data), *ys;

        if (xs == NULL) {
            st = cli_fail(ASEC_ENOMEM);
            goto done;
        }
        ys = strchr(xs, ',');
        *ys++ = '\0';
        st = fbatch_load(&fb, m, xs, ys, 1);
        free(xs);
        if (st != EXIT_OK)
            goto done;
        n = fb.b.B < limit ? fb.b.B : limit;
        fb.b.B = n;
        rows_per = asec_model_rows(m, fb.b.T);
        logits = malloc(n * asec_model_output_size(m, fb.b.T) * sizeof *logits);
        losses = malloc(n * sizeof *losses);
        if (logits == NULL || losses == NULL) {
            st = cli_fail(ASEC_ENOMEM);
            goto done;
        }
        if ((rc = asec_model_forward(m, NULL, losses, logits, &fb.b)) != ASEC_OK) {
            st = cli_fail(rc == ASEC_EBADLEN ? ASEC_EFORMAT : rc);
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            sum += losses[i];
        if (a->kind != ASEC_MODEL_ATTN_REGRESSION) {
            rows = n * rows_per;
            correct = count_correct(logits, &fb.b, rows, a->classes);
        }
        snprintf(name, sizeof name, "files");
    } else {
        const char *colon = strchr(data, ':');
        size_t len = colon ? (size_t)(colon - data) : strlen(data);
        size_t total, T = a->seq_len;

        if (len >= sizeof name)
            len = sizeof name - 1;
        memcpy(name, data, len);
        name[len] = '\0';
        if (colon != NULL)
            snprintf(split, sizeof split, "%s", colon + 1);
        if ((rc = asec_data_load(&d, cli_datadir(), name, split)) != ASEC_OK) {
            st = rc == ASEC_EINVAL ? cli_usage_error("--data: %s", asec_errmsg())
                                   : cli_fail(rc);
            goto done;
        }
        if (d->images != NULL) {
            if (a->kind != ASEC_MODEL_VIT || a->image_h != d->image_h ||
                a->image_w != d->image_w || a->classes < d->classes) {
                cli_error(
                    "%s: the dataset has (%zu, %zu) images in %zu classes, the model "
                    "is a %s for (%zu, %zu) images in %zu classes",
                    name, d->image_h, d->image_w, d->classes,
                    asec_model_kind_name(a->kind), a->image_h, a->image_w, a->classes);
                st = EXIT_DATAERR;
                goto done;
            }
            total = d->n;
        } else {
            if (a->kind != ASEC_MODEL_TEXT || a->pool != ASEC_MODEL_POOL_NONE ||
                a->vocab != d->classes || a->classes != d->classes) {
                cli_error(
                    "%s: next-token windows over a vocabulary of %zu need a text "
                    "model with pool 'none' and vocab = classes = %zu, not a %s with "
                    "vocab %zu, classes %zu, pool '%s'",
                    name, d->classes, d->classes, asec_model_kind_name(a->kind), a->vocab,
                    a->classes, asec_model_pool_name(a->pool));
                st = EXIT_DATAERR;
                goto done;
            }
            total = (d->n - 1) / T;
            rows_per = T;
        }
        n = total < limit ? total : limit;
        logits = malloc(batch * rows_per * a->classes * sizeof *logits);
        losses = malloc(batch * sizeof *losses);
        in_ids = malloc(batch * rows_per * sizeof *in_ids);
        lab_ids = malloc(batch * rows_per * sizeof *lab_ids);
        if (logits == NULL || losses == NULL || in_ids == NULL || lab_ids == NULL) {
            st = cli_fail(ASEC_ENOMEM);
            goto done;
        }
        cli_progress_begin("evaluating", n);
        for (size_t s = 0; s < n; s += batch) {
            size_t cnt = n - s < batch ? n - s : batch;
            asec_model_batch b;

            memset(&b, 0, sizeof b);
            b.B = cnt;
            if (d->images != NULL) {
                b.x = d->images + s * d->image_h * d->image_w;
                b.labels = d->labels + s;
            } else {
                if ((rc = asec_data_windows(in_ids, lab_ids, d, T, s, cnt)) != ASEC_OK) {
                    st = cli_fail(rc);
                    goto done;
                }
                b.T = T;
                b.tokens = in_ids;
                b.labels = lab_ids;
            }
            if ((rc = asec_model_forward(m, NULL, losses, logits, &b)) != ASEC_OK) {
                st = cli_fail(rc);
                goto done;
            }
            for (size_t i = 0; i < cnt; i++)
                sum += losses[i];
            correct += count_correct(logits, &b, cnt * rows_per, a->classes);
            rows += cnt * rows_per;
            cli_progress_update(s + cnt);
        }
        cli_progress_end();
    }
    if (json) {
        json_t *j = json_object();

        json_object_set_new(j, "model", json_string(mpath));
        json_object_set_new(j, "data", json_string(name));
        if (d != NULL)
            json_object_set_new(j, "split", json_string(split));
        json_object_set_new(j, "examples", json_integer((json_int_t)n));
        json_object_set_new(j, "loss", json_real(n ? sum / (double)n : 0.0));
        if (rows > 0)
            json_object_set_new(j, "accuracy", json_real((double)correct / (double)rows));
        st = print_json(j);
    } else {
        printf("examples %zu\nloss %.17g\n", n, n ? sum / (double)n : 0.0);
        if (rows > 0)
            printf("accuracy %.17g\n", (double)correct / (double)rows);
    }
done:
    fbatch_free(&fb);
    asec_data_free(d);
    free(logits);
    free(losses);
    free(in_ids);
    free(lab_ids);
    asec_model_free(m);
    return st;
}
