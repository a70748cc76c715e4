/* model.c - the transformer engine: architectures, the parameter arena,
 * forward and backward passes for a batch, per-example gradients, and
 * Hessian-vector products by forward-over-reverse.
 *
 * Structure (after llm.c's train_gpt2.c): one parameter arena and one
 * gradient arena carved by pointer arithmetic into named tensors; one
 * activation arena per batch shape holding everything the backward pass
 * needs; a backward pass that walks the layers in reverse calling the
 * kernels of attn.c.  Three additions:
 *
 *   - Per-example gradients.  Every parameter-gradient accumulation goes
 *     through G(r, b, offset), which points into row b of a (B, P) matrix
 *     in per-example mode and into the one (P) vector otherwise; the
 *     weight-gradient products are then issued per example (T rows each)
 *     instead of once for the B*T rows.  Same flops, one pass.
 *   - Tangents.  With r->tan set, the forward pass also propagates the
 *     tangent of every activation along a direction (tp, tx, tsoft), and
 *     the backward pass computes the tangent of every gradient next to it
 *     (each kernel's _backward_tangent right after its _backward, while
 *     the upstream gradient is still at hand).  The tangent of the
 *     gradient is the Hessian-vector product.  Every tangent buffer is
 *     carved right after its primal buffer (take_pair()), so a linear
 *     layer's primal and tangent products with the same weight run as one
 *     GEMM of twice the rows: at B = 1 the products have only T rows, and
 *     OpenBLAS runs one 2T-row product faster than two T-row ones.
 *   - Four kinds (attnsec/model.h) sharing the pieces.
 *
 * Shapes: B batch, T tokens, C channels, NH heads, HS = C/NH, H MLP width,
 * K classes, R prediction rows per example (1 or T), Tp patches, PD patch
 * pixels (p*p), V vocabulary.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "attnsec/attn.h"
#include "attnsec/mat.h"
#include "attnsec/model.h"
#include "internal.h"
#include "model_internal.h"

#define NO_OFF SIZE_MAX
#define MAX_PARAMS ((size_t)1 << 40)

/* ---------------------------------------------------------------- names */

static const char *const kind_names[] = {"attn-regression", "attn-block", "vit", "text"};
static const char *const pool_names[] = {"mean", "cls", "none"};
static const char *const pos_names[] = {"learned", "none", "sin"};

const char *
asec_model_kind_name(asec_model_kind kind)
{
    return (unsigned)kind < 4 ? kind_names[kind] : "?";
}

const char *
asec_model_pool_name(asec_model_pool pool)
{
    return (unsigned)pool < 3 ? pool_names[pool] : "?";
}

const char *
asec_model_pos_name(asec_model_pos pos)
{
    return (unsigned)pos < 3 ? pos_names[pos] : "?";
}

int
asec_model__parse_name(int *out, const char *name, const char *const *names, int n,
                       const char *what)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = i;
            return ASEC_OK;
        }
    ASEC_FAIL(ASEC_EINVAL, "unknown %s '%s'", what, name);
}

int
asec_model_kind_parse(asec_model_kind *out, const char *name)
{
    int v = 0;

    ASEC_TRY(asec_model__parse_name(&v, name, kind_names, 4, "model kind"));
    *out = (asec_model_kind)v;
    return ASEC_OK;
}

int
asec_model_pool_parse(asec_model_pool *out, const char *name)
{
    int v = 0;

    ASEC_TRY(asec_model__parse_name(&v, name, pool_names, 3, "pooling"));
    *out = (asec_model_pool)v;
    return ASEC_OK;
}

int
asec_model_pos_parse(asec_model_pos *out, const char *name)
{
    int v = 0;

    ASEC_TRY(asec_model__parse_name(&v, name, pos_names, 3, "position encoding"));
    *out = (asec_model_pos)v;
    return ASEC_OK;
}

/* ---------------------------------------------------------------- architectures */

int
asec_model_arch_default(asec_model_arch *out, asec_model_kind kind)
{
    memset(out, 0, sizeof *out);
    out->version = ASEC_MODEL_ARCH_VERSION;
    out->kind = kind;
    out->layers = 1;
    out->heads = 1;
    out->ln_eps = 1e-5;
    out->scale = 1.0;
    out->pool = ASEC_MODEL_POOL_MEAN;
    out->pos = ASEC_MODEL_POS_NONE;
    switch (kind) {
    case ASEC_MODEL_ATTN_REGRESSION:
        out->channels = 8;
        out->seq_len = 8;
        out->scale = 1.0 / sqrt(8.0);
        out->pool = ASEC_MODEL_POOL_NONE;
        return ASEC_OK;
    case ASEC_MODEL_ATTN_BLOCK:
        out->channels = 16;
        out->seq_len = 8;
        out->classes = 4;
        return ASEC_OK;
    case ASEC_MODEL_VIT:
        out->image_h = out->image_w = 8;
        out->patch = 2;
        out->seq_len = 16;
        out->channels = 32;
        out->layers = 2;
        out->heads = 4;
        out->mlp_hidden = 128;
        out->classes = 10;
        out->pos = ASEC_MODEL_POS_LEARNED;
        return ASEC_OK;
    case ASEC_MODEL_TEXT:
        out->vocab = out->classes = 2049;
        out->seq_len = 32;
        out->channels = 64;
        out->layers = 2;
        out->heads = 4;
        out->mlp_hidden = 256;
        out->causal = 1;
        out->pool = ASEC_MODEL_POOL_NONE;
        out->pos = ASEC_MODEL_POS_LEARNED;
        return ASEC_OK;
    }
    ASEC_FAIL(ASEC_EINVAL, "unknown model kind %d", (int)kind);
}

static int
is_transformer(const asec_model_arch *a)
{
    return a->kind == ASEC_MODEL_VIT || a->kind == ASEC_MODEL_TEXT;
}

static size_t
n_cls(const asec_model_arch *a)
{
    return a->kind == ASEC_MODEL_VIT && a->pool == ASEC_MODEL_POOL_CLS ? 1 : 0;
}

static size_t
n_patches(const asec_model_arch *a)
{
    return (a->image_h / a->patch) * (a->image_w / a->patch);
}

/* Count parameters (checked); builds nothing. */
static int count_params(const asec_model_arch *a, size_t *out);

int
asec_model_arch_check(const asec_model_arch *a)
{
    size_t P;

    if (a->version != ASEC_MODEL_ARCH_VERSION)
        ASEC_FAIL(ASEC_EINVAL, "architecture version %u, expected %u", a->version,
                  ASEC_MODEL_ARCH_VERSION);
    if ((unsigned)a->kind > ASEC_MODEL_TEXT)
        ASEC_FAIL(ASEC_EINVAL, "unknown model kind %d", (int)a->kind);
    if ((unsigned)a->pool > ASEC_MODEL_POOL_NONE || (unsigned)a->pos > ASEC_MODEL_POS_SIN)
        ASEC_FAIL(ASEC_EINVAL, "bad pooling %d or positions %d", (int)a->pool,
                  (int)a->pos);
    if (a->channels == 0 || a->layers == 0 || a->heads == 0 || a->seq_len == 0)
        ASEC_FAIL(ASEC_EINVAL,
                  "channels %zu, layers %zu, heads %zu, seq_len %zu must be >= 1",
                  a->channels, a->layers, a->heads, a->seq_len);
    if (a->channels % a->heads != 0)
        ASEC_FAIL(ASEC_EINVAL, "heads %zu does not divide channels %zu", a->heads,
                  a->channels);
    if (a->causal != 0 && a->causal != 1)
        ASEC_FAIL(ASEC_EINVAL, "causal must be 0 or 1, not %d", a->causal);
    if (a->channels > 65536 || a->seq_len > 65536 || a->layers > 1024)
        ASEC_FAIL(ASEC_ELIMIT,
                  "channels %zu, seq_len %zu or layers %zu beyond 65536, "
                  "65536, 1024",
                  a->channels, a->seq_len, a->layers);
    switch (a->kind) {
    case ASEC_MODEL_ATTN_REGRESSION:
        if (a->layers != 1 || a->heads != 1)
            ASEC_FAIL(ASEC_EINVAL,
                      "attn-regression has one layer and one head, not %zu "
                      "and %zu",
                      a->layers, a->heads);
        if (a->pool != ASEC_MODEL_POOL_NONE || a->pos != ASEC_MODEL_POS_NONE)
            ASEC_FAIL(ASEC_EINVAL, "attn-regression takes pool 'none' and pos 'none'");
        if (!isfinite(a->scale))
            ASEC_FAIL(ASEC_EINVAL, "attn-regression scale %g is not finite", a->scale);
        break;
    case ASEC_MODEL_ATTN_BLOCK:
        if (a->classes == 0)
            ASEC_FAIL(ASEC_EINVAL, "classes must be >= 1");
        break;
    case ASEC_MODEL_VIT:
        if (a->image_h == 0 || a->image_w == 0 || a->patch == 0 ||
            a->image_h % a->patch != 0 || a->image_w % a->patch != 0)
            ASEC_FAIL(ASEC_EINVAL, "patch %zu does not divide the image (%zu, %zu)",
                      a->patch, a->image_h, a->image_w);
        if (a->pool == ASEC_MODEL_POOL_NONE)
            ASEC_FAIL(ASEC_EINVAL, "a vit pools with 'mean' or 'cls', not 'none'");
        if (a->seq_len != n_patches(a) + n_cls(a))
            ASEC_FAIL(ASEC_EINVAL,
                      "seq_len %zu, but a (%zu, %zu) image in %zux%zu patches "
                      "%s has %zu tokens",
                      a->seq_len, a->image_h, a->image_w, a->patch, a->patch,
                      n_cls(a) ? "plus CLS" : "", n_patches(a) + n_cls(a));
        /* fall through */
    case ASEC_MODEL_TEXT:
        if (a->kind == ASEC_MODEL_TEXT && a->vocab == 0)
            ASEC_FAIL(ASEC_EINVAL, "a text model needs vocab >= 1");
        if (a->classes == 0 || a->mlp_hidden == 0)
            ASEC_FAIL(ASEC_EINVAL, "classes %zu and mlp_hidden %zu must be >= 1",
                      a->classes, a->mlp_hidden);
        if (!(a->ln_eps > 0.0) || !isfinite(a->ln_eps))
            ASEC_FAIL(ASEC_EINVAL, "ln_eps %g must be positive and finite", a->ln_eps);
        break;
    }
    ASEC_TRY(count_params(a, &P));
    return ASEC_OK;
}

/* ---------------------------------------------------------------- the tensor table */

struct builder {
    asec_model *m; /* NULL when only counting */
    size_t P;
    size_t n;
    int overflow;
};

/* Append a tensor (rows x cols, or a vector when cols == 0) and return its
 * offset. */
static size_t
add_tensor(struct builder *bl, const char *name, size_t rows, size_t cols)
{
    size_t size, off = bl->P;

    if (asec__mul_size(rows, cols ? cols : 1, &size) != 0 ||
        asec__add_size(bl->P, size, &bl->P) != 0) {
        bl->overflow = 1;
        return 0;
    }
    if (bl->m != NULL) {
        struct asec_model_tensor_rec *t = &bl->m->tensors[bl->n];

        snprintf(t->name, sizeof t->name, "%s", name);
        t->ndim = cols ? 2 : 1;
        t->shape[0] = rows;
        t->shape[1] = cols;
        t->offset = off;
        t->size = size;
    }
    bl->n++;
    return off;
}

static size_t
add_block_tensor(struct builder *bl, size_t l, const char *suffix, size_t rows,
                 size_t cols)
{
    char name[ASEC_MODEL_NAME_MAX];

    snprintf(name, sizeof name, "blocks.%zu.%s", l, suffix);
    return add_tensor(bl, name, rows, cols);
}

/* The single description of every kind's parameters, in arena order. */
static void
build(struct builder *bl, const asec_model_arch *a)
{
    size_t C = a->channels, K = a->classes, L = a->layers, H = a->mlp_hidden;
    struct asec_model_offsets o;

    memset(&o, 0xff, sizeof o); /* NO_OFF everywhere */
    o.blk = NULL;
    if (a->kind == ASEC_MODEL_ATTN_REGRESSION) {
        o.rx = add_tensor(bl, "attn.x", C, C);
        o.ry = add_tensor(bl, "attn.y", C, C);
    } else {
        if (a->kind == ASEC_MODEL_TEXT)
            o.wte = add_tensor(bl, "tok_emb.weight", a->vocab, C);
        if (a->kind == ASEC_MODEL_VIT) {
            o.patchw = add_tensor(bl, "patch_emb.weight", C, a->patch * a->patch);
            o.patchb = add_tensor(bl, "patch_emb.bias", C, 0);
            if (n_cls(a))
                o.cls = add_tensor(bl, "cls_token", C, 0);
        }
        if (a->pos == ASEC_MODEL_POS_LEARNED)
            o.wpe = add_tensor(bl, "pos_emb.weight", a->seq_len, C);
        for (size_t l = 0; l < L; l++) {
            struct asec_model_block_off b;

            memset(&b, 0xff, sizeof b);
            if (is_transformer(a)) {
                b.ln1w = add_block_tensor(bl, l, "ln1.weight", C, 0);
                b.ln1b = add_block_tensor(bl, l, "ln1.bias", C, 0);
                b.qkvw = add_block_tensor(bl, l, "attn.qkv.weight", 3 * C, C);
                b.qkvb = add_block_tensor(bl, l, "attn.qkv.bias", 3 * C, 0);
                b.projw = add_block_tensor(bl, l, "attn.proj.weight", C, C);
                b.projb = add_block_tensor(bl, l, "attn.proj.bias", C, 0);
                b.ln2w = add_block_tensor(bl, l, "ln2.weight", C, 0);
                b.ln2b = add_block_tensor(bl, l, "ln2.bias", C, 0);
                b.fcw = add_block_tensor(bl, l, "mlp.fc.weight", H, C);
                b.fcb = add_block_tensor(bl, l, "mlp.fc.bias", H, 0);
                b.fpw = add_block_tensor(bl, l, "mlp.proj.weight", C, H);
                b.fpb = add_block_tensor(bl, l, "mlp.proj.bias", C, 0);
            } else {
                /* q, k, v adjacent: together the (3C, C) packed weight. */
                b.qkvw = add_block_tensor(bl, l, "attn.q.weight", C, C);
                (void)add_block_tensor(bl, l, "attn.k.weight", C, C);
                (void)add_block_tensor(bl, l, "attn.v.weight", C, C);
            }
            if (bl->m != NULL)
                bl->m->off.blk[l] = b;
        }
        if (is_transformer(a)) {
            o.lnfw = add_tensor(bl, "ln_f.weight", C, 0);
            o.lnfb = add_tensor(bl, "ln_f.bias", C, 0);
        }
        o.headw = add_tensor(bl, "head.weight", K, C);
        o.headb = add_tensor(bl, "head.bias", K, 0);
    }
    if (bl->m != NULL) {
        o.blk = bl->m->off.blk;
        bl->m->off = o;
    }
}

static int
count_params(const asec_model_arch *a, size_t *out)
{
    struct builder bl = {NULL, 0, 0, 0};

    build(&bl, a);
    if (bl.overflow || bl.P > MAX_PARAMS)
        ASEC_FAIL(ASEC_ELIMIT, "the architecture has more than 2^40 parameters");
    *out = bl.P;
    return ASEC_OK;
}

int
asec__model_tensor_table(const asec_model_arch *a, struct asec_model_tensor_rec **out,
                         size_t *n)
{
    struct builder bl = {NULL, 0, 0, 0};
    asec_model m;

    *out = NULL;
    *n = 0;
    ASEC_TRY(asec_model_arch_check(a));
    build(&bl, a); /* counts tensors */
    memset(&m, 0, sizeof m);
    m.tensors = asec__calloc(bl.n, sizeof *m.tensors);
    m.off.blk = asec__calloc(a->layers, sizeof *m.off.blk);
    if (m.tensors == NULL || m.off.blk == NULL) {
        asec__free(m.tensors);
        asec__free(m.off.blk);
        return ASEC_ENOMEM;
    }
    bl.m = &m;
    bl.P = bl.n = 0;
    build(&bl, a);
    asec__free(m.off.blk);
    *out = m.tensors;
    *n = bl.n;
    return ASEC_OK;
}

/* ---------------------------------------------------------------- handles */

int
asec_model_alloc(asec_model **out, const asec_model_arch *arch)
{
    asec_model *m = NULL;
    struct builder bl = {NULL, 0, 0, 0};
    size_t L;

    *out = NULL;
    ASEC_TRY(asec_model_arch_check(arch));
    build(&bl, arch); /* counts tensors */
    L = arch->layers;
    m = asec__calloc(1, sizeof *m);
    if (m == NULL)
        return ASEC_ENOMEM;
    m->arch = *arch;
    m->P = bl.P;
    m->ntensors = bl.n;
    m->tensors = asec__calloc(bl.n, sizeof *m->tensors);
    m->off.blk = asec__calloc(L, sizeof *m->off.blk);
    m->la = asec__calloc(L, sizeof *m->la);
    m->tla = asec__calloc(L, sizeof *m->tla);
    m->params = asec__calloc(m->P, sizeof(double));
    m->grads = asec__calloc(m->P, sizeof(double));
    if (m->tensors == NULL || m->off.blk == NULL || m->la == NULL || m->tla == NULL ||
        m->params == NULL || m->grads == NULL) {
        asec_model_free(m);
        return ASEC_ENOMEM;
    }
    bl.m = m;
    bl.P = bl.n = 0;
    build(&bl, arch);
    ASEC_ASSERT(bl.P == m->P && bl.n == m->ntensors);
    *out = m;
    return ASEC_OK;
}

int
asec_model_clone(asec_model **out, const asec_model *m)
{
    ASEC_TRY(asec_model_alloc(out, &m->arch));
    memcpy((*out)->params, m->params, m->P * sizeof(double));
    return ASEC_OK;
}

void
asec_model_free(asec_model *m)
{
    if (m == NULL)
        return;
    asec__free(m->tensors);
    asec__free(m->off.blk);
    asec__free(m->la);
    asec__free(m->tla);
    asec__free(m->params);
    asec__free(m->grads);
    asec__free(m->act);
    asec__free(m->work);
    asec__free(m);
}

const asec_model_arch *
asec_model_get_arch(const asec_model *m)
{
    return &m->arch;
}

size_t
asec_model_param_count(const asec_model *m)
{
    return m->P;
}

double *
asec_model_params(asec_model *m)
{
    return m->params;
}

double *
asec_model_grads(asec_model *m)
{
    return m->grads;
}

size_t
asec_model_tensor_count(const asec_model *m)
{
    return m->ntensors;
}

static void
tensor_out(const struct asec_model_tensor_rec *t, asec_model_tensor *out)
{
    out->name = t->name;
    out->ndim = t->ndim;
    out->shape[0] = t->shape[0];
    out->shape[1] = t->ndim == 2 ? t->shape[1] : 0;
    out->offset = t->offset;
    out->size = t->size;
}

int
asec_model_tensor_get(const asec_model *m, size_t i, asec_model_tensor *out)
{
    if (i >= m->ntensors)
        ASEC_FAIL(ASEC_EINVAL, "tensor index %zu out of range (the model has %zu)", i,
                  m->ntensors);
    tensor_out(&m->tensors[i], out);
    return ASEC_OK;
}

int
asec_model_tensor_find(const asec_model *m, const char *name, asec_model_tensor *out)
{
    for (size_t i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) {
            tensor_out(&m->tensors[i], out);
            return ASEC_OK;
        }
    ASEC_FAIL(ASEC_EINVAL, "no tensor '%s' in a %s model", name,
              asec_model_kind_name(m->arch.kind));
}

static void
fill_normal(asec_rng *rng, double *x, size_t n, double sd)
{
    for (size_t i = 0; i < n; i++)
        x[i] = sd * asec_rng_normal(rng);
}

void
asec_model_init_params(asec_model *m, asec_rng *rng)
{
    const asec_model_arch *a = &m->arch;
    double C = (double)a->channels;

    memset(m->params, 0, m->P * sizeof(double));
    for (size_t i = 0; i < m->ntensors; i++) {
        const struct asec_model_tensor_rec *t = &m->tensors[i];
        double *x = m->params + t->offset;
        const char *nm = t->name;
        size_t len = strlen(nm);
        int is_bias = len >= 5 && strcmp(nm + len - 5, ".bias") == 0;
        int is_ln = strstr(nm, "ln") != NULL &&
                    (strstr(nm, ".ln1.") != NULL || strstr(nm, ".ln2.") != NULL ||
                     strncmp(nm, "ln_f.", 5) == 0);

        if (a->kind == ASEC_MODEL_ATTN_REGRESSION) {
            fill_normal(rng, x, t->size, 1.0 / sqrt(C));
        } else if (a->kind == ASEC_MODEL_ATTN_BLOCK) {
            if (strcmp(nm, "head.bias") == 0)
                fill_normal(rng, x, t->size, 0.1);
            else if (strcmp(nm, "pos_emb.weight") == 0)
                fill_normal(rng, x, t->size, 0.02);
            else
                fill_normal(rng, x, t->size, 1.0 / sqrt(C));
        } else if (is_ln) {
            if (!is_bias)
                for (size_t j = 0; j < t->size; j++)
                    x[j] = 1.0;
        } else if (is_bias) {
            continue;
        } else if (a->kind == ASEC_MODEL_VIT) {
            /* Fan-in scale: every linear map keeps its input's scale, and the
             * positions and CLS token enter at the scale of a patch's
             * embedding, so the first LayerNorm does not amplify the
             * gradients 1/0.02-fold and training starts at once (with
             * 0.02 a digits vit sits at chance loss for tens of steps). */
            double fan_in = t->ndim == 2 && strcmp(nm, "pos_emb.weight") != 0
                                ? (double)t->shape[1]
                                : (double)(a->patch * a->patch);
            fill_normal(rng, x, t->size, 1.0 / sqrt(fan_in));
        } else {
            double sd = 0.02;

            if (strstr(nm, "attn.proj.weight") != NULL ||
                strstr(nm, "mlp.proj.weight") != NULL)
                sd = 0.02 / sqrt(2.0 * (double)a->layers);
            fill_normal(rng, x, t->size, sd);
        }
    }
}

/* ---------------------------------------------------------------- batch shapes */

size_t
asec_model_tokens(const asec_model *m, size_t T)
{
    if (m->arch.kind == ASEC_MODEL_VIT)
        return m->arch.seq_len;
    return T == 0 ? m->arch.seq_len : T;
}

size_t
asec_model_input_size(const asec_model *m, size_t T)
{
    if (m->arch.kind == ASEC_MODEL_VIT)
        return m->arch.image_h * m->arch.image_w;
    return asec_model_tokens(m, T) * m->arch.channels;
}

size_t
asec_model_rows(const asec_model *m, size_t T)
{
    return m->arch.pool == ASEC_MODEL_POOL_NONE ? asec_model_tokens(m, T) : 1;
}

size_t
asec_model_output_size(const asec_model *m, size_t T)
{
    if (m->arch.kind == ASEC_MODEL_ATTN_REGRESSION)
        return asec_model_tokens(m, T) * m->arch.channels;
    return asec_model_rows(m, T) * m->arch.classes;
}

/* ---------------------------------------------------------------- arenas */

/* A cursor that carves sizes off a base pointer, or only counts (base
 * NULL), with overflow detection. */
struct carver {
    double *base;
    size_t used;
    int overflow;
};

static double *
take(struct carver *cv, size_t a, size_t b, size_t c)
{
    size_t n, off = cv->used;

    if (asec__mul_size(a, b, &n) != 0 || asec__mul_size(n, c, &n) != 0 ||
        asec__add_size(cv->used, n, &cv->used) != 0) {
        cv->overflow = 1;
        return NULL;
    }
    return cv->base != NULL ? cv->base + off : NULL;
}

/* take() for a primal buffer and, when tan is not NULL, its tangent right
 * after it: [x; tx] is then one matrix of twice the rows, which lets the
 * primal and tangent products with one weight run as a single GEMM
 * (asec_attn__linear_forward_pair()). */
static double *
take_pair(struct carver *cv, double **tan, size_t a, size_t b, size_t c)
{
    double *p = take(cv, a, b, c);

    if (tan != NULL)
        *tan = take(cv, a, b, c);
    return p;
}

/* x->f = a new buffer, and t->f (when t is not NULL) its tangent. */
#define PAIR(x, t, f, a, b, c) ((x)->f = take_pair(cv, (t) ? &(t)->f : NULL, a, b, c))

/* Carve the activation layout for (B, T) from cv into a and la[L], and
 * when ta is not NULL the tangents into ta and tla[L], each right after
 * its primal buffer. */
static void
carve_acts(const asec_model *m, size_t B, size_t T, struct carver *cv,
           struct asec_model_acts *a, struct asec_model_layer_acts *la,
           struct asec_model_acts *ta, struct asec_model_layer_acts *tla)
{
    const asec_model_arch *A = &m->arch;
    size_t C = A->channels, H = A->mlp_hidden, NH = A->heads, K = A->classes;
    size_t R = A->pool == ASEC_MODEL_POOL_NONE ? T : 1, BT;

    if (asec__mul_size(B, T, &BT) != 0)
        cv->overflow = 1;
    memset(a, 0, sizeof *a);
    if (ta != NULL)
        memset(ta, 0, sizeof *ta);
    PAIR(a, ta, x0, BT, C, 1);
    if (A->kind == ASEC_MODEL_VIT)
        PAIR(a, ta, patches, B, n_patches(A), A->patch * A->patch);
    for (size_t l = 0; l < A->layers; l++) {
        struct asec_model_layer_acts *x = &la[l];
        struct asec_model_layer_acts *t = tla != NULL ? &tla[l] : NULL;

        memset(x, 0, sizeof *x);
        if (t != NULL)
            memset(t, 0, sizeof *t);
        if (A->kind == ASEC_MODEL_ATTN_REGRESSION) {
            PAIR(x, t, qkv, BT, 2 * C, 1); // [q | v] per token
            PAIR(x, t, att, B, T, T);
            PAIR(x, t, atty, BT, C, 1);
            continue;
        }
        if (is_transformer(A)) {
            PAIR(x, t, ln1, BT, C, 1);
            PAIR(x, t, ln1_mean, BT, 1, 1);
            PAIR(x, t, ln1_rstd, BT, 1, 1);
        }
        PAIR(x, t, qkv, BT, 3 * C, 1);
        PAIR(x, t, att, B * NH, T, T);
        PAIR(x, t, atty, BT, C, 1);
        if (is_transformer(A)) {
            PAIR(x, t, res2, BT, C, 1);
            PAIR(x, t, ln2, BT, C, 1);
            PAIR(x, t, ln2_mean, BT, 1, 1);
            PAIR(x, t, ln2_rstd, BT, 1, 1);
            PAIR(x, t, fch, BT, H, 1);
            PAIR(x, t, fchg, BT, H, 1);
            PAIR(x, t, fcphi, BT, H, 1);
            PAIR(x, t, fcpdf, BT, H, 1);
            PAIR(x, t, res3, BT, C, 1);
        }
    }
    if (A->kind == ASEC_MODEL_ATTN_REGRESSION)
        return;
    if (is_transformer(A)) {
        PAIR(a, ta, lnf, BT, C, 1);
        PAIR(a, ta, lnf_mean, BT, 1, 1);
        PAIR(a, ta, lnf_rstd, BT, 1, 1);
    }
    PAIR(a, ta, pooled, B, R, C);
    PAIR(a, ta, logits, B, R, K);
    PAIR(a, ta, probs, B, R, K);
    PAIR(a, ta, losses, B, R, 1);
}

static void
carve_work(const asec_model *m, size_t B, size_t T, struct carver *cv,
           struct asec_model_work *w, struct asec_model_work *tw)
{
    const asec_model_arch *A = &m->arch;
    size_t C = A->channels, H = A->mlp_hidden, K = A->classes;
    size_t R = A->pool == ASEC_MODEL_POOL_NONE ? T : 1, BT;

    if (asec__mul_size(B, T, &BT) != 0)
        cv->overflow = 1;
    memset(w, 0, sizeof *w);
    if (tw != NULL)
        memset(tw, 0, sizeof *tw);
    PAIR(w, tw, dres, BT, C, 1);
    PAIR(w, tw, dtmp, BT, C, 1);
    PAIR(w, tw, dx0, BT, C, 1);
    PAIR(w, tw, dqkv, BT, 3 * C, 1);
    PAIR(w, tw, datt, 2, T, T);
    if (is_transformer(A)) {
        PAIR(w, tw, dh1, BT, H, 1);
        PAIR(w, tw, dh2, BT, H, 1);
    }
    if (A->kind == ASEC_MODEL_VIT)
        PAIR(w, tw, dpatch, B, n_patches(A), A->patch * A->patch);
    if (A->kind != ASEC_MODEL_ATTN_REGRESSION) {
        PAIR(w, tw, dpool, B, R, C);
        PAIR(w, tw, dlogits, B, R, K);
        PAIR(w, tw, wrow, B, R, 1);
    }
    PAIR(w, tw, lossb, B, 1, 1);
}

#undef PAIR

/* Make sure *arena holds need doubles (growing it, contents lost). */
static int
reserve(double **arena, size_t *cap, size_t need)
{
    double *p;

    if (need <= *cap && *arena != NULL)
        return ASEC_OK;
    if (need > SIZE_MAX / sizeof(double))
        ASEC_FAIL(ASEC_ENOMEM, "activation arena of %zu doubles overflows", need);
    p = asec__malloc(need * sizeof(double));
    if (p == NULL)
        return ASEC_ENOMEM;
    asec__free(*arena);
    *arena = p;
    *cap = need;
    return ASEC_OK;
}

/* Carve the arenas for (B, T): the tangents (tan) share the arenas, each
 * buffer right after its primal. */
static int
prepare(asec_model *m, size_t B, size_t T, int tan, struct asec_model_run *r)
{
    struct carver cv = {NULL, 0, 0}, cw = {NULL, 0, 0};
    struct asec_model_acts *ta = tan ? &r->ta : NULL;
    struct asec_model_layer_acts *tla = tan ? m->tla : NULL;
    struct asec_model_work *tw = tan ? &r->tw : NULL;

    carve_acts(m, B, T, &cv, &r->a, m->la, ta, tla);
    carve_work(m, B, T, &cw, &r->w, tw);
    if (cv.overflow || cw.overflow)
        ASEC_FAIL(ASEC_ENOMEM, "activations for B = %zu, T = %zu overflow size_t", B, T);
    ASEC_TRY(reserve(&m->act, &m->cap_act, cv.used));
    ASEC_TRY(reserve(&m->work, &m->cap_work, cw.used));
    cv.base = m->act, cv.used = 0;
    carve_acts(m, B, T, &cv, &r->a, m->la, ta, tla);
    cw.base = m->work, cw.used = 0;
    carve_work(m, B, T, &cw, &r->w, tw);
    r->ta_l = tla;
    return ASEC_OK;
}

/* ---------------------------------------------------------------- validation */

static int
validate(const asec_model *m, const asec_model_batch *b, int need_targets, size_t *T_out)
{
    const asec_model_arch *A = &m->arch;
    size_t T = asec_model_tokens(m, b->T), R, K = A->classes, n;

    if (b->B == 0)
        ASEC_FAIL(ASEC_EBADLEN, "empty batch (B = 0)");
    if (T == 0)
        ASEC_FAIL(ASEC_EBADLEN, "no tokens (T = 0)");
    if (A->kind == ASEC_MODEL_VIT && b->T != 0 && b->T != A->seq_len)
        ASEC_FAIL(ASEC_EBADLEN, "batch has T = %zu tokens, the vit has %zu", b->T,
                  A->seq_len);
    if (A->pos == ASEC_MODEL_POS_LEARNED && T > A->seq_len)
        ASEC_FAIL(ASEC_EBADLEN,
                  "batch has T = %zu tokens, the model's positions allow at "
                  "most %zu",
                  T, A->seq_len);
    if (T > 65536)
        ASEC_FAIL(ASEC_ELIMIT, "T = %zu tokens exceeds 65536", T);
    if (A->kind == ASEC_MODEL_TEXT) {
        if ((b->x == NULL) == (b->tokens == NULL))
            ASEC_FAIL(ASEC_EINVAL,
                      "a text batch needs exactly one of tokens and embeddings");
        if (b->tokens != NULL) {
            if (asec__mul_size(b->B, T, &n) != 0)
                ASEC_FAIL(ASEC_ENOMEM, "B * T overflows");
            for (size_t i = 0; i < n; i++)
                if (b->tokens[i] < 0 || (uint64_t)b->tokens[i] >= A->vocab)
                    ASEC_FAIL(ASEC_EINVAL, "token %lld at (%zu, %zu) is outside [0, %zu)",
                              (long long)b->tokens[i], i / T, i % T, A->vocab);
        }
    } else {
        if (b->x == NULL)
            ASEC_FAIL(ASEC_EINVAL, "the batch has no inputs (x is NULL)");
        if (b->tokens != NULL)
            ASEC_FAIL(ASEC_EINVAL, "token ids are for text models, not %s",
                      asec_model_kind_name(A->kind));
    }
    if (A->kind == ASEC_MODEL_ATTN_REGRESSION) {
        if (b->labels != NULL)
            ASEC_FAIL(ASEC_EINVAL,
                      "attn-regression takes targets (soft), not hard labels");
        if (need_targets && b->soft == NULL)
            ASEC_FAIL(ASEC_EINVAL, "attn-regression needs targets E (soft)");
    } else {
        if (b->labels != NULL && b->soft != NULL)
            ASEC_FAIL(ASEC_EINVAL, "give hard labels or soft labels, not both");
        if (need_targets && b->labels == NULL && b->soft == NULL)
            ASEC_FAIL(ASEC_EINVAL, "the batch has no labels");
        R = A->pool == ASEC_MODEL_POOL_NONE ? T : 1;
        if (asec__mul_size(b->B, R, &n) != 0)
            ASEC_FAIL(ASEC_ENOMEM, "B * R overflows");
        if (b->labels != NULL)
            for (size_t i = 0; i < n; i++)
                if (b->labels[i] < 0 || (uint64_t)b->labels[i] >= K)
                    ASEC_FAIL(ASEC_EINVAL, "label %lld of row %zu is outside [0, %zu)",
                              (long long)b->labels[i], i, K);
        if (b->soft != NULL) {
            if (asec__mul_size(n, K, &n) != 0)
                ASEC_FAIL(ASEC_ENOMEM, "B * R * K overflows");
            for (size_t i = 0; i < n; i++)
                if (!isfinite(b->soft[i]))
                    ASEC_FAIL(ASEC_ENUMERIC, "soft label %zu is %g", i, b->soft[i]);
        }
    }
    *T_out = T;
    return ASEC_OK;
}

/* ---------------------------------------------------------------- helpers */

#define PRM(r, off) ((r)->m->params + (off))
/* The tangent of a parameter tensor, or NULL without a parameter direction. */
#define TPRM(r, off) ((r)->tp != NULL && (off) != NO_OFF ? (r)->tp + (off) : NULL)

/* Where example b accumulates the gradient of the tensor at off. */
static double *
G(const struct asec_model_run *r, size_t b, size_t off)
{
    if (r->dp == NULL || off == NO_OFF)
        return NULL;
    return r->dp + (r->per_ex ? b * r->m->P : 0) + off;
}

static double *
TG(const struct asec_model_run *r, size_t off)
{
    return r->tdp != NULL && off != NO_OFF ? r->tdp + off : NULL;
}

static void
zero(double *x, size_t n)
{
    if (x != NULL)
        memset(x, 0, n * sizeof *x);
}

/* Linear backward over B examples of rows rows each; in per-example mode
 * one call per example so that each accumulates into its own row. */
static int
lin_bwd(const struct asec_model_run *r, double *dinp, size_t woff, size_t boff,
        const double *dout, const double *inp, size_t rows, size_t IN, size_t OUT)
{
    const double *W = PRM(r, woff);

    if (!r->per_ex)
        return asec_attn_linear_backward(dinp, G(r, 0, woff), G(r, 0, boff), dout, inp, W,
                                         r->B * rows, IN, OUT);
    /* The input gradient is row-wise: one GEMM over all B * rows rows (the
     * small per-example GEMMs cost more than the arithmetic).  Only the
     * parameter gradients are per example. */
    if (dinp != NULL)
        ASEC_TRY(asec_attn_linear_backward(dinp, NULL, NULL, dout, inp, W, r->B * rows,
                                           IN, OUT));
    for (size_t b = 0; b < r->B; b++)
        ASEC_TRY(asec_attn_linear_backward(NULL, G(r, b, woff), G(r, b, boff),
                                           dout + b * rows * OUT, inp + b * rows * IN, W,
                                           rows, IN, OUT));
    return ASEC_OK;
}

/* lin_bwd() and, with tangents, the tangent of every output along
 * (tinp, tW, tdout) into tdinp and the parameter-gradient tangents: the two
 * products with W in one GEMM when tdinp and tdout follow dinp and dout
 * (take_pair()).  Tangents never run per example. */
static int
lin_bwd_tan(const struct asec_model_run *r, double *dinp, double *tdinp, size_t woff,
            size_t boff, const double *dout, const double *tdout, const double *inp,
            const double *tinp, size_t rows, size_t IN, size_t OUT)
{
    if (!r->tan)
        return lin_bwd(r, dinp, woff, boff, dout, inp, rows, IN, OUT);
    ASEC_ASSERT(!r->per_ex);
    return asec_attn__linear_backward_pair(
        dinp, tdinp, G(r, 0, woff), G(r, 0, boff), TG(r, woff), TG(r, boff), dout, tdout,
        inp, tinp, PRM(r, woff), TPRM(r, woff), r->B * rows, IN, OUT);
}

static void
ln_bwd(const struct asec_model_run *r, double *dinp, size_t woff, size_t boff,
       const double *dout, const double *inp, const double *mean, const double *rstd)
{
    size_t T = r->T, C = r->m->arch.channels;

    if (!r->per_ex) {
        asec_attn_layernorm_backward(dinp, G(r, 0, woff), G(r, 0, boff), dout, inp,
                                     PRM(r, woff), mean, rstd, r->B * T, C);
        return;
    }
    for (size_t b = 0; b < r->B; b++)
        asec_attn_layernorm_backward(dinp + b * T * C, G(r, b, woff), G(r, b, boff),
                                     dout + b * T * C, inp + b * T * C, PRM(r, woff),
                                     mean + b * T, rstd + b * T, T, C);
}

/* The fixed sinusoid of position t, channel i. */
static double
sinusoid(size_t t, size_t i, size_t C)
{
    double freq = pow(10000.0, -(double)(i - i % 2) / (double)C);

    return i % 2 == 0 ? sin((double)t * freq) : cos((double)t * freq);
}

static double
pos_value(const struct asec_model_run *r, size_t t, size_t i)
{
    const asec_model_arch *A = &r->m->arch;

    if (A->pos == ASEC_MODEL_POS_LEARNED)
        return PRM(r, r->m->off.wpe)[t * A->channels + i];
    if (A->pos == ASEC_MODEL_POS_SIN)
        return sinusoid(t, i, A->channels);
    return 0.0;
}

/* vit: pixel index of element j of patch i in an (H, W) image. */
static size_t
patch_pixel(const asec_model_arch *A, size_t i, size_t j)
{
    size_t p = A->patch, gw = A->image_w / p;
    size_t gy = i / gw, gx = i % gw, py = j / p, px = j % p;

    return (gy * p + py) * A->image_w + gx * p + px;
}

static void
gather_patches(const asec_model_arch *A, double *patches, const double *images, size_t B)
{
    size_t Tp = n_patches(A), PD = A->patch * A->patch, HW = A->image_h * A->image_w;

    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < Tp; i++)
            for (size_t j = 0; j < PD; j++)
                patches[(b * Tp + i) * PD + j] = images[b * HW + patch_pixel(A, i, j)];
}

static void
scatter_patches(const asec_model_arch *A, double *images, const double *patches, size_t B)
{
    size_t Tp = n_patches(A), PD = A->patch * A->patch, HW = A->image_h * A->image_w;

    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i < Tp; i++)
            for (size_t j = 0; j < PD; j++)
                images[b * HW + patch_pixel(A, i, j)] = patches[(b * Tp + i) * PD + j];
}

/* ---------------------------------------------------------------- forward */

static int
fwd_embed(struct asec_model_run *r)
{
    const asec_model *m = r->m;
    const asec_model_arch *A = &m->arch;
    const asec_model_batch *bt = r->batch;
    size_t B = r->B, T = r->T, C = A->channels;
    double *x0 = r->a.x0, *tx0 = r->tan ? r->ta.x0 : NULL;
    const double *twpe = A->pos == ASEC_MODEL_POS_LEARNED ? TPRM(r, m->off.wpe) : NULL;
    const double *twte = A->kind == ASEC_MODEL_TEXT ? TPRM(r, m->off.wte) : NULL;

    if (A->kind == ASEC_MODEL_VIT) {
        size_t Tp = n_patches(A), PD = A->patch * A->patch, nc = n_cls(A);

        // patches = image.unfold(p, p) -> (B, Tp, PD);  x0[:, nc:] = patches @ W^T + b
        gather_patches(A, r->a.patches, bt->x, B);
        for (size_t b = 0; b < B; b++) {
            ASEC_TRY(asec_attn_linear_forward(
                x0 + (b * T + nc) * C, r->a.patches + b * Tp * PD, PRM(r, m->off.patchw),
                PRM(r, m->off.patchb), Tp, PD, C));
            if (nc)
                memcpy(x0 + b * T * C, PRM(r, m->off.cls), C * sizeof *x0);
        }
        if (r->tan) {
            if (r->tx != NULL)
                gather_patches(A, r->ta.patches, r->tx, B);
            for (size_t b = 0; b < B; b++) {
                ASEC_TRY(asec_attn_linear_forward_tangent(
                    tx0 + (b * T + nc) * C, r->a.patches + b * Tp * PD,
                    r->tx != NULL ? r->ta.patches + b * Tp * PD : NULL,
                    PRM(r, m->off.patchw), TPRM(r, m->off.patchw), TPRM(r, m->off.patchb),
                    Tp, PD, C));
                if (nc) {
                    const double *tcls = TPRM(r, m->off.cls);

                    for (size_t i = 0; i < C; i++)
                        tx0[b * T * C + i] = tcls != NULL ? tcls[i] : 0.0;
                }
            }
        }
        for (size_t b = 0; b < B; b++)
            for (size_t t = 0; t < T; t++)
                for (size_t i = 0; i < C; i++) {
                    x0[(b * T + t) * C + i] += pos_value(r, t, i);
                    if (twpe != NULL)
                        tx0[(b * T + t) * C + i] += twpe[t * C + i];
                }
        return ASEC_OK;
    }
    // text: x0 = tok_emb[tokens] (or the given embeddings) + pos;  attn-block: x + pos
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            size_t row = (b * T + t) * C;
            const double *e = bt->tokens != NULL
                                  ? PRM(r, m->off.wte) + (size_t)bt->tokens[b * T + t] * C
                                  : bt->x + row;
            const double *te = NULL;

            if (r->tan && bt->tokens != NULL)
                te = twte != NULL ? twte + (size_t)bt->tokens[b * T + t] * C : NULL;
            else if (r->tan)
                te = r->tx != NULL ? r->tx + row : NULL;
            for (size_t i = 0; i < C; i++) {
                x0[row + i] = e[i] + pos_value(r, t, i);
                if (r->tan)
                    tx0[row + i] = (te != NULL ? te[i] : 0.0) +
                                   (twpe != NULL ? twpe[t * C + i] : 0.0);
            }
        }
    return ASEC_OK;
}

static void
add_into(double *y, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* out = inp @ W^T + b for the tensors at woff and boff (NO_OFF: no bias)
 * over N rows, and when tout is not NULL its tangent along (tinp, tW, tb):
 * both in one product when tout and tinp follow out and inp (take_pair()). */
static int
lin_fwd(const struct asec_model_run *r, double *out, double *tout, const double *inp,
        const double *tinp, size_t woff, size_t boff, size_t N, size_t IN, size_t OUT)
{
    const double *bias = boff != NO_OFF ? PRM(r, boff) : NULL;

    if (tout == NULL)
        return asec_attn_linear_forward(out, inp, PRM(r, woff), bias, N, IN, OUT);
    return asec_attn__linear_forward_pair(out, tout, inp, tinp, PRM(r, woff), bias,
                                          TPRM(r, woff), TPRM(r, boff), N, IN, OUT);
}

/* A pre-LayerNorm block; with tangents (r->tan) each line is followed by
 * its derivative along the direction, so that the linear layers can issue
 * the primal and tangent products together. */
static int
fwd_transformer_block(struct asec_model_run *r, size_t l, const double *xin,
                      const double *txin)
{
    const asec_model_arch *A = &r->m->arch;
    const struct asec_model_block_off *o = &r->m->off.blk[l];
    struct asec_model_layer_acts *x = &r->m->la[l];
    struct asec_model_layer_acts *t = r->tan ? &r->ta_l[l] : NULL;
    size_t B = r->B, T = r->T, N = B * T, C = A->channels, H = A->mlp_hidden;
    size_t NH = A->heads;
    double eps = A->ln_eps;
    double *pdf = r->backward ? x->fcpdf : NULL;

    // ln1 = layernorm(x);  qkv = ln1 @ Wqkv^T + bqkv  (N, 3C)
    asec_attn_layernorm_forward(x->ln1, x->ln1_mean, x->ln1_rstd, xin, PRM(r, o->ln1w),
                                PRM(r, o->ln1b), N, C, eps);
    if (t != NULL)
        asec_attn_layernorm_forward_tangent(t->ln1, xin, txin, PRM(r, o->ln1w),
                                            TPRM(r, o->ln1w), TPRM(r, o->ln1b),
                                            x->ln1_mean, x->ln1_rstd, N, C);
    ASEC_TRY(lin_fwd(r, x->qkv, t ? t->qkv : NULL, x->ln1, t ? t->ln1 : NULL, o->qkvw,
                     o->qkvb, N, C, 3 * C));
    // atty (B, T, C) = heads of softmax(q k^T / sqrt(HS)) v, concatenated
    ASEC_TRY(asec_attn_forward(x->atty, x->att, x->qkv, B, T, C, NH, A->causal));
    if (r->hook != NULL)
        ASEC_TRY(r->hook(r->hook_ctx, l, x->atty, x->att, x->qkv, B, T, C, NH));
    if (t != NULL)
        ASEC_TRY(asec_attn_forward_tangent(t->atty, t->att, x->qkv, t->qkv, x->att, B, T,
                                           C, NH));
    // res2 = x + atty @ Wproj^T + bproj
    ASEC_TRY(lin_fwd(r, x->res2, t ? t->res2 : NULL, x->atty, t ? t->atty : NULL,
                     o->projw, o->projb, N, C, C));
    add_into(x->res2, xin, N * C);
    if (t != NULL)
        add_into(t->res2, txin, N * C);
    // ln2 = layernorm(res2);  fch = ln2 @ Wfc^T + bfc  (N, H);  fchg = gelu(fch)
    asec_attn_layernorm_forward(x->ln2, x->ln2_mean, x->ln2_rstd, x->res2,
                                PRM(r, o->ln2w), PRM(r, o->ln2b), N, C, eps);
    if (t != NULL)
        asec_attn_layernorm_forward_tangent(t->ln2, x->res2, t->res2, PRM(r, o->ln2w),
                                            TPRM(r, o->ln2w), TPRM(r, o->ln2b),
                                            x->ln2_mean, x->ln2_rstd, N, C);
    ASEC_TRY(lin_fwd(r, x->fch, t ? t->fch : NULL, x->ln2, t ? t->ln2 : NULL, o->fcw,
                     o->fcb, N, C, H));
    asec_attn__gelu_forward(x->fchg, x->fcphi, pdf, x->fch, N * H);
    if (t != NULL)
        asec_attn__gelu_forward_tangent(t->fchg, x->fch, x->fcphi, pdf, t->fch, N * H);
    // res3 = res2 + fchg @ Wproj2^T + bproj2
    ASEC_TRY(lin_fwd(r, x->res3, t ? t->res3 : NULL, x->fchg, t ? t->fchg : NULL, o->fpw,
                     o->fpb, N, H, C));
    add_into(x->res3, x->res2, N * C);
    if (t != NULL)
        add_into(t->res3, t->res2, N * C);
    return ASEC_OK;
}

static int
fwd_attn_block(struct asec_model_run *r, size_t l, const double *xin, const double *txin)
{
    const asec_model_arch *A = &r->m->arch;
    const struct asec_model_block_off *o = &r->m->off.blk[l];
    struct asec_model_layer_acts *x = &r->m->la[l];
    struct asec_model_layer_acts *t = r->tan ? &r->ta_l[l] : NULL;
    size_t B = r->B, T = r->T, C = A->channels;

    // [q | k | v] = x @ [Wq; Wk; Wv]^T  (no bias);  out = MHA(q, k, v)
    ASEC_TRY(lin_fwd(r, x->qkv, t ? t->qkv : NULL, xin, txin, o->qkvw, NO_OFF, B * T, C,
                     3 * C));
    ASEC_TRY(asec_attn_forward(x->atty, x->att, x->qkv, B, T, C, A->heads, A->causal));
    if (r->hook != NULL)
        ASEC_TRY(r->hook(r->hook_ctx, l, x->atty, x->att, x->qkv, B, T, C, A->heads));
    if (t == NULL)
        return ASEC_OK;
    return asec_attn_forward_tangent(t->atty, t->att, x->qkv, t->qkv, x->att, B, T, C,
                                     A->heads);
}

/* attn-regression, example by example:
 *   q = A X, k = A, v = A Y;  out = softmax(s q k^T) v  (T, d) */
static int
fwd_regression(struct asec_model_run *r)
{
    const asec_model_arch *A = &r->m->arch;
    struct asec_model_layer_acts *x = &r->m->la[0];
    struct asec_model_layer_acts *t = r->tan ? &r->ta_l[0] : NULL;
    size_t T = r->T, d = A->channels;
    asec_mat X = asec_mat_view(PRM(r, r->m->off.rx), d, d);
    asec_mat Y = asec_mat_view(PRM(r, r->m->off.ry), d, d);

    for (size_t b = 0; b < r->B; b++) {
        asec_mat a = asec_mat_view((double *)(uintptr_t)(r->batch->x + b * T * d), T, d);
        double *qv = x->qkv + b * T * 2 * d;
        asec_mat q = {T, d, 2 * d, qv}, v = {T, d, 2 * d, qv + d};
        asec_mat att = asec_mat_view(x->att + b * T * T, T, T);
        asec_mat out = asec_mat_view(x->atty + b * T * d, T, d);

        ASEC_TRY(asec_mat_gemm(&q, 1.0, &a, ASEC_NOTRANS, &X, ASEC_NOTRANS, 0.0));
        ASEC_TRY(asec_mat_gemm(&v, 1.0, &a, ASEC_NOTRANS, &Y, ASEC_NOTRANS, 0.0));
        ASEC_TRY(asec_attn_sdpa_forward(&out, &att, &q, &a, &v, A->scale, A->causal));
        if (t == NULL)
            continue;
        {
            // tq = tA X + A tX;  tv = tA Y + A tY;  tk = tA
            double *tqv = t->qkv + b * T * 2 * d;
            asec_mat tq = {T, d, 2 * d, tqv}, tv = {T, d, 2 * d, tqv + d};
            asec_mat ta = asec_mat_view(
                r->tx ? (double *)(uintptr_t)(r->tx + b * T * d) : NULL, T, d);
            asec_mat tatt = asec_mat_view(t->att + b * T * T, T, T);
            asec_mat tout = asec_mat_view(t->atty + b * T * d, T, d);
            const double *tpx = TPRM(r, r->m->off.rx), *tpy = TPRM(r, r->m->off.ry);
            double beta = 0.0;

            asec_mat_fill(&tq, 0.0);
            asec_mat_fill(&tv, 0.0);
            if (r->tx != NULL) {
                ASEC_TRY(
                    asec_mat_gemm(&tq, 1.0, &ta, ASEC_NOTRANS, &X, ASEC_NOTRANS, 0.0));
                ASEC_TRY(
                    asec_mat_gemm(&tv, 1.0, &ta, ASEC_NOTRANS, &Y, ASEC_NOTRANS, 0.0));
                beta = 1.0;
            }
            if (tpx != NULL) {
                asec_mat tX = asec_mat_view((double *)(uintptr_t)tpx, d, d);
                asec_mat tY = asec_mat_view((double *)(uintptr_t)tpy, d, d);

                ASEC_TRY(
                    asec_mat_gemm(&tq, 1.0, &a, ASEC_NOTRANS, &tX, ASEC_NOTRANS, beta));
                ASEC_TRY(
                    asec_mat_gemm(&tv, 1.0, &a, ASEC_NOTRANS, &tY, ASEC_NOTRANS, beta));
            }
            ASEC_TRY(asec_attn_sdpa_forward_tangent(&tout, &tatt, &q, &a, &v, &att, &tq,
                                                    r->tx ? &ta : NULL, &tv, A->scale));
        }
    }
    return ASEC_OK;
}

/* The stream entering the head: after ln_f for transformers, the last
 * layer's output for the attention-only block. */
static double *
final_stream(const struct asec_model_run *r, int tangent)
{
    const asec_model_arch *A = &r->m->arch;
    const struct asec_model_acts *a = tangent ? &r->ta : &r->a;
    struct asec_model_layer_acts *la = tangent ? r->ta_l : r->m->la;

    if (is_transformer(A))
        return a->lnf;
    return la[A->layers - 1].atty;
}

/* The stream entering layer l (or ln_f when l == L). */
static double *
layer_input(const struct asec_model_run *r, size_t l, int tangent)
{
    const asec_model_arch *A = &r->m->arch;
    const struct asec_model_acts *a = tangent ? &r->ta : &r->a;
    struct asec_model_layer_acts *la = tangent ? r->ta_l : r->m->la;

    if (l == 0)
        return a->x0;
    return is_transformer(A) ? la[l - 1].res3 : la[l - 1].atty;
}

static void
pool_forward(const struct asec_model_run *r, double *pooled, const double *h)
{
    const asec_model_arch *A = &r->m->arch;
    size_t T = r->T, C = A->channels;

    for (size_t b = 0; b < r->B; b++) {
        if (A->pool == ASEC_MODEL_POOL_NONE) {
            memcpy(pooled + b * T * C, h + b * T * C, T * C * sizeof *pooled);
        } else if (A->pool == ASEC_MODEL_POOL_CLS) {
            memcpy(pooled + b * C, h + b * T * C, C * sizeof *pooled);
        } else {
            for (size_t i = 0; i < C; i++) {
                double s = 0.0;

                for (size_t t = 0; t < T; t++)
                    s += h[(b * T + t) * C + i];
                pooled[b * C + i] = s / (double)T;
            }
        }
    }
}

/* dh (B, T, C) = the pooling's backward of dpooled (overwrites dh). */
static void
pool_backward(const struct asec_model_run *r, double *dh, const double *dpooled)
{
    const asec_model_arch *A = &r->m->arch;
    size_t T = r->T, C = A->channels;

    if (A->pool == ASEC_MODEL_POOL_NONE) {
        memcpy(dh, dpooled, r->B * T * C * sizeof *dh);
        return;
    }
    zero(dh, r->B * T * C);
    for (size_t b = 0; b < r->B; b++) {
        if (A->pool == ASEC_MODEL_POOL_CLS) {
            memcpy(dh + b * T * C, dpooled + b * C, C * sizeof *dh);
            continue;
        }
        // pooled = mean_t h[t], so dh[t] = dpooled / T
        for (size_t t = 0; t < T; t++)
            for (size_t i = 0; i < C; i++)
                dh[(b * T + t) * C + i] = dpooled[b * C + i] / (double)T;
    }
}

static int
forward(struct asec_model_run *r)
{
    const asec_model *m = r->m;
    const asec_model_arch *A = &m->arch;
    const asec_model_batch *bt = r->batch;
    size_t B = r->B, T = r->T, C = A->channels, K = A->classes, R = r->R;

    if (A->kind == ASEC_MODEL_ATTN_REGRESSION) {
        ASEC_TRY(fwd_regression(r));
        if (bt->soft != NULL)
            for (size_t b = 0; b < B; b++) {
                const double *o = m->la[0].atty + b * T * C, *e = bt->soft + b * T * C;
                double s = 0.0;

                for (size_t i = 0; i < T * C; i++)
                    s += (o[i] - e[i]) * (o[i] - e[i]);
                r->losses[b] = 0.5 * s;
            }
        return ASEC_OK;
    }
    ASEC_TRY(fwd_embed(r));
    for (size_t l = 0; l < A->layers; l++) {
        const double *xin = layer_input(r, l, 0);
        const double *txin = r->tan ? layer_input(r, l, 1) : NULL;

        if (is_transformer(A))
            ASEC_TRY(fwd_transformer_block(r, l, xin, txin));
        else
            ASEC_TRY(fwd_attn_block(r, l, xin, txin));
    }
    if (is_transformer(A)) {
        const double *xl = layer_input(r, A->layers, 0);

        asec_attn_layernorm_forward(r->a.lnf, r->a.lnf_mean, r->a.lnf_rstd, xl,
                                    PRM(r, m->off.lnfw), PRM(r, m->off.lnfb), B * T, C,
                                    A->ln_eps);
        if (r->tan)
            asec_attn_layernorm_forward_tangent(
                r->ta.lnf, xl, layer_input(r, A->layers, 1), PRM(r, m->off.lnfw),
                TPRM(r, m->off.lnfw), TPRM(r, m->off.lnfb), r->a.lnf_mean, r->a.lnf_rstd,
                B * T, C);
    }
    // pooled (B, R, C);  logits = pooled @ Whead^T + bhead  (B*R, K)
    pool_forward(r, r->a.pooled, final_stream(r, 0));
    if (r->tan)
        pool_forward(r, r->ta.pooled, final_stream(r, 1));
    ASEC_TRY(lin_fwd(r, r->a.logits, r->tan ? r->ta.logits : NULL, r->a.pooled,
                     r->tan ? r->ta.pooled : NULL, m->off.headw, m->off.headb, B * R, C,
                     K));
    if (bt->labels != NULL || bt->soft != NULL) {
        ASEC_TRY(asec_attn_xent_forward(r->a.losses, r->a.probs, r->a.logits, bt->labels,
                                        bt->soft, B * R, K));
        // l_b = mean of the example's R rows
        for (size_t b = 0; b < B; b++) {
            double s = 0.0;

            for (size_t i = 0; i < R; i++)
                s += r->a.losses[b * R + i];
            r->losses[b] = s / (double)R;
        }
    }
    return ASEC_OK;
}

/* ---------------------------------------------------------------- backward */

/* Transformer block l, in reverse.  On entry dres holds d(res3) (and tdres
 * its tangent); on exit d(xin). */
static int
bwd_transformer_block(struct asec_model_run *r, size_t l, double *dres, double *tdres)
{
    const asec_model_arch *A = &r->m->arch;
    const struct asec_model_block_off *o = &r->m->off.blk[l];
    const struct asec_model_layer_acts *x = &r->m->la[l];
    const struct asec_model_layer_acts *t = r->tan ? &r->ta_l[l] : NULL;
    struct asec_model_work *w = &r->w, *tw = &r->tw;
    size_t B = r->B, T = r->T, N = B * T, C = A->channels, H = A->mlp_hidden,
           NH = A->heads;
    const double *xin = layer_input(r, l, 0);
    const double *txin = r->tan ? layer_input(r, l, 1) : NULL;

    // in the forward pass this was: res3 = res2 + fchg @ Wproj2^T + bproj2
    zero(w->dh1, N * H);
    zero(t ? tw->dh1 : NULL, N * H);
    ASEC_TRY(lin_bwd_tan(r, w->dh1, tw->dh1, o->fpw, o->fpb, dres, tdres, x->fchg,
                         t ? t->fchg : NULL, T, H, C));
    // fchg = gelu(fch)
    zero(w->dh2, N * H);
    asec_attn__gelu_backward(w->dh2, x->fch, x->fcphi, x->fcpdf, w->dh1, N * H);
    if (t != NULL) {
        zero(tw->dh2, N * H);
        asec_attn__gelu_backward_tangent(tw->dh2, x->fch, x->fcphi, x->fcpdf, t->fch,
                                         w->dh1, tw->dh1, N * H);
    }
    // fch = ln2 @ Wfc^T + bfc
    zero(w->dtmp, N * C);
    zero(t ? tw->dtmp : NULL, N * C);
    ASEC_TRY(lin_bwd_tan(r, w->dtmp, tw->dtmp, o->fcw, o->fcb, w->dh2, tw->dh2, x->ln2,
                         t ? t->ln2 : NULL, T, C, H));
    // ln2 = layernorm(res2): dres (= d res3, the residual path) += ...
    ln_bwd(r, dres, o->ln2w, o->ln2b, w->dtmp, x->res2, x->ln2_mean, x->ln2_rstd);
    if (t != NULL)
        asec_attn_layernorm_backward_tangent(
            tdres, TG(r, o->ln2w), TG(r, o->ln2b), w->dtmp, tw->dtmp, x->res2, t->res2,
            PRM(r, o->ln2w), TPRM(r, o->ln2w), x->ln2_mean, x->ln2_rstd, N, C);
    // res2 = xin + atty @ Wproj^T + bproj
    zero(w->dtmp, N * C);
    zero(t ? tw->dtmp : NULL, N * C);
    ASEC_TRY(lin_bwd_tan(r, w->dtmp, tw->dtmp, o->projw, o->projb, dres, tdres, x->atty,
                         t ? t->atty : NULL, T, C, C));
    // atty = MHA(qkv)
    zero(w->dqkv, N * 3 * C);
    ASEC_TRY(asec_attn_backward(w->dqkv, w->datt, w->dtmp, x->qkv, x->att, B, T, C, NH));
    if (t != NULL) {
        zero(tw->dqkv, N * 3 * C);
        ASEC_TRY(asec_attn_backward_tangent(tw->dqkv, tw->datt, w->dtmp, tw->dtmp, x->qkv,
                                            t->qkv, x->att, t->att, B, T, C, NH));
    }
    // qkv = ln1 @ Wqkv^T + bqkv
    zero(w->dtmp, N * C);
    zero(t ? tw->dtmp : NULL, N * C);
    ASEC_TRY(lin_bwd_tan(r, w->dtmp, tw->dtmp, o->qkvw, o->qkvb, w->dqkv, tw->dqkv,
                         x->ln1, t ? t->ln1 : NULL, T, C, 3 * C));
    // ln1 = layernorm(xin): dres (= d res2, the residual path to xin) += ...
    ln_bwd(r, dres, o->ln1w, o->ln1b, w->dtmp, xin, x->ln1_mean, x->ln1_rstd);
    if (t != NULL)
        asec_attn_layernorm_backward_tangent(
            tdres, TG(r, o->ln1w), TG(r, o->ln1b), w->dtmp, tw->dtmp, xin, txin,
            PRM(r, o->ln1w), TPRM(r, o->ln1w), x->ln1_mean, x->ln1_rstd, N, C);
    return ASEC_OK;
}

/* Attention-only layer l: dout is d(out); writes d(xin) into dinp. */
static int
bwd_attn_block(struct asec_model_run *r, size_t l, double *dinp, const double *dout,
               double *tdinp, const double *tdout)
{
    const asec_model_arch *A = &r->m->arch;
    const struct asec_model_block_off *o = &r->m->off.blk[l];
    const struct asec_model_layer_acts *x = &r->m->la[l];
    const struct asec_model_layer_acts *t = r->tan ? &r->ta_l[l] : NULL;
    size_t B = r->B, T = r->T, N = B * T, C = A->channels;
    const double *xin = layer_input(r, l, 0);

    // in the forward pass this was: out = MHA(qkv), qkv = xin @ [Wq; Wk; Wv]^T
    zero(r->w.dqkv, N * 3 * C);
    ASEC_TRY(asec_attn_backward(r->w.dqkv, r->w.datt, dout, x->qkv, x->att, B, T, C,
                                A->heads));
    if (t != NULL) {
        zero(r->tw.dqkv, N * 3 * C);
        ASEC_TRY(asec_attn_backward_tangent(r->tw.dqkv, r->tw.datt, dout, tdout, x->qkv,
                                            t->qkv, x->att, t->att, B, T, C, A->heads));
    }
    zero(dinp, N * C);
    zero(t ? tdinp : NULL, N * C);
    return lin_bwd_tan(r, dinp, tdinp, o->qkvw, NO_OFF, r->w.dqkv, r->tw.dqkv, xin,
                       t ? layer_input(r, l, 1) : NULL, T, C, 3 * C);
}

/* Embedding backward: dres is d(x0). */
static int
bwd_embed(struct asec_model_run *r, const double *dres, const double *tdres)
{
    const asec_model *m = r->m;
    const asec_model_arch *A = &m->arch;
    const asec_model_batch *bt = r->batch;
    size_t B = r->B, T = r->T, C = A->channels;
    int learned = A->pos == ASEC_MODEL_POS_LEARNED;

    // x0[b, t] = e[b, t] + wpe[t], e = tok_emb[token] | x | patch embedding
    for (size_t b = 0; b < B; b++) {
        double *gpe = learned ? G(r, b, m->off.wpe) : NULL;
        double *tgpe = learned ? TG(r, m->off.wpe) : NULL;

        if (gpe != NULL)
            add_into(gpe, dres + b * T * C, T * C);
        if (tgpe != NULL)
            add_into(tgpe, tdres + b * T * C, T * C);
    }
    if (A->kind == ASEC_MODEL_VIT) {
        size_t Tp = n_patches(A), PD = A->patch * A->patch, nc = n_cls(A);
        double *dpatch = r->dx != NULL ? r->w.dpatch : NULL;
        double *tdpatch = r->tdx != NULL ? r->tw.dpatch : NULL;

        zero(dpatch, B * Tp * PD);
        zero(tdpatch, B * Tp * PD);
        for (size_t b = 0; b < B; b++) {
            const double *drow = dres + (b * T + nc) * C;

            if (nc && G(r, b, m->off.cls) != NULL)
                add_into(G(r, b, m->off.cls), dres + b * T * C, C);
            if (nc && r->tan && TG(r, m->off.cls) != NULL)
                add_into(TG(r, m->off.cls), tdres + b * T * C, C);
            // x0[b, nc:] = patches @ W^T + bias
            ASEC_TRY(asec_attn_linear_backward(
                dpatch ? dpatch + b * Tp * PD : NULL, G(r, b, m->off.patchw),
                G(r, b, m->off.patchb), drow, r->a.patches + b * Tp * PD,
                PRM(r, m->off.patchw), Tp, PD, C));
            if (r->tan)
                ASEC_TRY(asec_attn_linear_backward_tangent(
                    tdpatch ? tdpatch + b * Tp * PD : NULL, TG(r, m->off.patchw),
                    TG(r, m->off.patchb), drow, tdres + (b * T + nc) * C,
                    r->a.patches + b * Tp * PD,
                    r->tx ? r->ta.patches + b * Tp * PD : NULL, PRM(r, m->off.patchw),
                    TPRM(r, m->off.patchw), Tp, PD, C));
        }
        if (dpatch != NULL)
            scatter_patches(A, r->dx, dpatch, B);
        if (tdpatch != NULL)
            scatter_patches(A, r->tdx, tdpatch, B);
        return ASEC_OK;
    }
    // the input gradient is d(e) = d(x0): token embeddings or x
    if (r->dx != NULL)
        memcpy(r->dx, dres, B * T * C * sizeof *r->dx);
    if (r->tdx != NULL)
        memcpy(r->tdx, tdres, B * T * C * sizeof *r->tdx);
    if (bt->tokens != NULL)
        for (size_t b = 0; b < B; b++)
            for (size_t t = 0; t < T; t++) {
                size_t tok = (size_t)bt->tokens[b * T + t];
                double *g = G(r, b, m->off.wte), *tg = TG(r, m->off.wte);

                if (g != NULL)
                    add_into(g + tok * C, dres + (b * T + t) * C, C);
                if (tg != NULL)
                    add_into(tg + tok * C, tdres + (b * T + t) * C, C);
            }
    return ASEC_OK;
}

/* attn-regression backward, example by example (per-example aware). */
static int
bwd_regression(struct asec_model_run *r)
{
    const asec_model_arch *A = &r->m->arch;
    const asec_model_batch *bt = r->batch;
    const struct asec_model_layer_acts *x = &r->m->la[0];
    const struct asec_model_layer_acts *t = r->tan ? &r->ta_l[0] : NULL;
    size_t T = r->T, d = A->channels, B = r->B;
    double wgt = r->per_ex ? 1.0 : 1.0 / (double)B, s = A->scale;
    asec_mat X = asec_mat_view(PRM(r, r->m->off.rx), d, d);
    asec_mat Y = asec_mat_view(PRM(r, r->m->off.ry), d, d);
    const double *tpx = TPRM(r, r->m->off.rx), *tpy = TPRM(r, r->m->off.ry);
    asec_mat tX = asec_mat_view((double *)(uintptr_t)tpx, d, d);
    asec_mat tY = asec_mat_view((double *)(uintptr_t)tpy, d, d);

    for (size_t b = 0; b < B; b++) {
        const double *e = bt->soft + b * T * d, *o = x->atty + b * T * d;
        asec_mat a = asec_mat_view((double *)(uintptr_t)(bt->x + b * T * d), T, d);
        double *qv = x->qkv + b * T * 2 * d;
        asec_mat q = {T, d, 2 * d, qv}, v = {T, d, 2 * d, qv + d};
        asec_mat att = asec_mat_view(x->att + b * T * T, T, T);
        asec_mat dout = asec_mat_view(r->w.dtmp, T, d);
        double *dq_v = r->w.dqkv;
        asec_mat dq = {T, d, 2 * d, dq_v}, dv = {T, d, 2 * d, dq_v + d};
        asec_mat da = asec_mat_view(r->dx != NULL ? r->dx + b * T * d : r->w.dx0, T, d);
        asec_mat wk = asec_mat_view(r->w.datt, T, T);
        double *gx = G(r, b, r->m->off.rx), *gy = G(r, b, r->m->off.ry);

        // in the forward pass this was: l = 0.5 ||out - E||^2 (weighted by wgt)
        for (size_t i = 0; i < T * d; i++)
            dout.data[i] = wgt * (o[i] - e[i]);
        if (r->dsoft != NULL)
            for (size_t i = 0; i < T * d; i++)
                r->dsoft[b * T * d + i] = -dout.data[i];
        zero(dq_v, T * 2 * d);
        asec_mat_fill(&da, 0.0);
        ASEC_TRY(asec_attn_sdpa_backward(&dq, &da, &dv, &wk, &dout, &q, &a, &v, &att, s));
        // q = A X, v = A Y: dX += A^T dq, dY += A^T dv, dA += dq X^T + dv Y^T (+ dk
        // above)
        if (gx != NULL) {
            asec_mat gxm = asec_mat_view(gx, d, d), gym = asec_mat_view(gy, d, d);

            ASEC_TRY(asec_mat_gemm(&gxm, 1.0, &a, ASEC_TRANS, &dq, ASEC_NOTRANS, 1.0));
            ASEC_TRY(asec_mat_gemm(&gym, 1.0, &a, ASEC_TRANS, &dv, ASEC_NOTRANS, 1.0));
        }
        ASEC_TRY(asec_mat_gemm(&da, 1.0, &dq, ASEC_NOTRANS, &X, ASEC_TRANS, 1.0));
        ASEC_TRY(asec_mat_gemm(&da, 1.0, &dv, ASEC_NOTRANS, &Y, ASEC_TRANS, 1.0));
        if (t == NULL)
            continue;
        {
            const double *to = t->atty + b * T * d;
            const double *te = r->tsoft != NULL ? r->tsoft + b * T * d : NULL;
            double *tqv = t->qkv + b * T * 2 * d;
            asec_mat tq = {T, d, 2 * d, tqv}, tv = {T, d, 2 * d, tqv + d};
            asec_mat ta = asec_mat_view(
                r->tx ? (double *)(uintptr_t)(r->tx + b * T * d) : NULL, T, d);
            asec_mat tatt = asec_mat_view(t->att + b * T * T, T, T);
            asec_mat tdout = asec_mat_view(r->tw.dtmp, T, d);
            double *tdq_v = r->tw.dqkv;
            asec_mat tdq = {T, d, 2 * d, tdq_v}, tdv = {T, d, 2 * d, tdq_v + d};
            asec_mat tda =
                asec_mat_view(r->tdx != NULL ? r->tdx + b * T * d : r->tw.dx0, T, d);
            asec_mat w1 = asec_mat_view(r->tw.datt, T, T);
            asec_mat w2 = asec_mat_view(r->tw.datt + T * T, T, T);
            double *tgx = TG(r, r->m->off.rx), *tgy = TG(r, r->m->off.ry);

            // dout = wgt (out - E), so tdout = wgt (tout - tE)
            for (size_t i = 0; i < T * d; i++)
                tdout.data[i] = wgt * (to[i] - (te != NULL ? te[i] : 0.0));
            if (r->tdsoft != NULL)
                for (size_t i = 0; i < T * d; i++)
                    r->tdsoft[b * T * d + i] = -tdout.data[i];
            zero(tdq_v, T * 2 * d);
            asec_mat_fill(&tda, 0.0);
            ASEC_TRY(asec_attn_sdpa_backward_tangent(&tdq, &tda, &tdv, &w1, &w2, &dout,
                                                     &tdout, &q, &a, &v, &att, &tq,
                                                     r->tx ? &ta : NULL, &tv, &tatt, s));
            // dX += A^T dq, so tdX += tA^T dq + A^T tdq (the same for Y)
            if (tgx != NULL) {
                asec_mat gxm = asec_mat_view(tgx, d, d), gym = asec_mat_view(tgy, d, d);

                ASEC_TRY(
                    asec_mat_gemm(&gxm, 1.0, &a, ASEC_TRANS, &tdq, ASEC_NOTRANS, 1.0));
                ASEC_TRY(
                    asec_mat_gemm(&gym, 1.0, &a, ASEC_TRANS, &tdv, ASEC_NOTRANS, 1.0));
                if (r->tx != NULL) {
                    ASEC_TRY(asec_mat_gemm(&gxm, 1.0, &ta, ASEC_TRANS, &dq, ASEC_NOTRANS,
                                           1.0));
                    ASEC_TRY(asec_mat_gemm(&gym, 1.0, &ta, ASEC_TRANS, &dv, ASEC_NOTRANS,
                                           1.0));
                }
            }
            // dA += dq X^T + dv Y^T, so tdA += tdq X^T + dq tX^T + tdv Y^T + dv tY^T
            ASEC_TRY(asec_mat_gemm(&tda, 1.0, &tdq, ASEC_NOTRANS, &X, ASEC_TRANS, 1.0));
            ASEC_TRY(asec_mat_gemm(&tda, 1.0, &tdv, ASEC_NOTRANS, &Y, ASEC_TRANS, 1.0));
            if (tpx != NULL) {
                ASEC_TRY(
                    asec_mat_gemm(&tda, 1.0, &dq, ASEC_NOTRANS, &tX, ASEC_TRANS, 1.0));
                ASEC_TRY(
                    asec_mat_gemm(&tda, 1.0, &dv, ASEC_NOTRANS, &tY, ASEC_TRANS, 1.0));
            }
        }
    }
    return ASEC_OK;
}

static int
backward(struct asec_model_run *r)
{
    const asec_model *m = r->m;
    const asec_model_arch *A = &m->arch;
    const asec_model_batch *bt = r->batch;
    size_t B = r->B, T = r->T, C = A->channels, K = A->classes, R = r->R, BR = B * R;
    double *dres = r->w.dres, *dalt = r->w.dx0;
    double *tdres = r->tan ? r->tw.dres : NULL, *tdalt = r->tan ? r->tw.dx0 : NULL;
    double wrow = r->per_ex ? 1.0 / (double)R : 1.0 / (double)BR;

    if (A->kind == ASEC_MODEL_ATTN_REGRESSION)
        return bwd_regression(r);
    // in the forward pass this was: L = sum over rows of wrow * xent(logits, t)
    for (size_t i = 0; i < BR; i++)
        r->w.wrow[i] = wrow;
    zero(r->w.dlogits, BR * K);
    zero(r->dsoft, BR * K);
    asec_attn_xent_backward(r->w.dlogits, r->dsoft, r->w.wrow, r->a.logits, r->a.probs,
                            bt->labels, bt->soft, BR, K);
    if (r->tan) {
        zero(r->tw.dlogits, BR * K);
        zero(r->tdsoft, BR * K);
        asec_attn_xent_tangent(NULL, r->tw.dlogits, r->tdsoft, r->w.wrow, r->a.probs,
                               r->ta.logits, bt->labels, bt->soft, r->tsoft, BR, K);
    }
    // logits = pooled @ Whead^T + bhead
    zero(r->w.dpool, BR * C);
    zero(r->tan ? r->tw.dpool : NULL, BR * C);
    ASEC_TRY(lin_bwd_tan(r, r->w.dpool, r->tw.dpool, m->off.headw, m->off.headb,
                         r->w.dlogits, r->tw.dlogits, r->a.pooled, r->ta.pooled, R, C,
                         K));
    // pooled = pool(h)
    pool_backward(r, r->w.dtmp, r->w.dpool);
    if (r->tan)
        pool_backward(r, r->tw.dtmp, r->tw.dpool);
    if (is_transformer(A)) {
        // h = layernorm_f(x_L)
        const double *xl = layer_input(r, A->layers, 0);

        zero(dres, B * T * C);
        ln_bwd(r, dres, m->off.lnfw, m->off.lnfb, r->w.dtmp, xl, r->a.lnf_mean,
               r->a.lnf_rstd);
        if (r->tan) {
            zero(tdres, B * T * C);
            asec_attn_layernorm_backward_tangent(
                tdres, TG(r, m->off.lnfw), TG(r, m->off.lnfb), r->w.dtmp, r->tw.dtmp, xl,
                layer_input(r, A->layers, 1), PRM(r, m->off.lnfw), TPRM(r, m->off.lnfw),
                r->a.lnf_mean, r->a.lnf_rstd, B * T, C);
        }
        for (size_t l = A->layers; l-- > 0;)
            ASEC_TRY(bwd_transformer_block(r, l, dres, tdres));
    } else {
        memcpy(dres, r->w.dtmp, B * T * C * sizeof *dres);
        if (r->tan)
            memcpy(tdres, r->tw.dtmp, B * T * C * sizeof *tdres);
        for (size_t l = A->layers; l-- > 0;) {
            double *sw;

            ASEC_TRY(bwd_attn_block(r, l, dalt, dres, tdalt, tdres));
            sw = dres, dres = dalt, dalt = sw;
            sw = tdres, tdres = tdalt, tdalt = sw;
        }
    }
    return bwd_embed(r, dres, tdres);
}

/* ---------------------------------------------------------------- public passes */

static int
run_init(asec_model *m, const asec_model_batch *b, int need_targets, int tan,
         struct asec_model_run *r)
{
    size_t T = 0;

    memset(r, 0, sizeof *r);
    ASEC_TRY(validate(m, b, need_targets, &T));
    r->m = m;
    r->batch = b;
    r->B = b->B;
    r->T = T;
    r->R = m->arch.pool == ASEC_MODEL_POOL_NONE ? T : 1;
    r->tan = tan;
    ASEC_TRY(prepare(m, r->B, T, tan, r));
    r->losses = r->w.lossb;
    return ASEC_OK;
}

static double
mean_loss(const struct asec_model_run *r)
{
    double s = 0.0;

    for (size_t b = 0; b < r->B; b++)
        s += r->losses[b];
    return s / (double)r->B;
}

int
asec_model_forward(asec_model *m, double *loss, double *losses, double *out,
                   const asec_model_batch *b)
{
    return asec_model_forward_hook(m, loss, losses, out, b, NULL, NULL);
}

int
asec_model_forward_hook(asec_model *m, double *loss, double *losses, double *out,
                        const asec_model_batch *b, asec_model_attn_hook hook, void *ctx)
{
    struct asec_model_run r;
    int targets = b->labels != NULL || b->soft != NULL;

    if ((loss != NULL || losses != NULL) && !targets)
        ASEC_FAIL(ASEC_EINVAL, "a loss needs labels (or targets)");
    if (hook != NULL && m->arch.kind == ASEC_MODEL_ATTN_REGRESSION)
        ASEC_FAIL(ASEC_EINVAL, "attention hooks need an attn-block, vit or text model");
    ASEC_TRY(run_init(m, b, 0, 0, &r));
    r.hook = hook;
    r.hook_ctx = ctx;
    ASEC_TRY(forward(&r));
    if (targets) {
        if (loss != NULL)
            *loss = mean_loss(&r);
        if (losses != NULL)
            memcpy(losses, r.losses, r.B * sizeof *losses);
    }
    if (out != NULL) {
        size_t n = r.B * asec_model_output_size(m, r.T);

        memcpy(out,
               m->arch.kind == ASEC_MODEL_ATTN_REGRESSION ? m->la[0].atty : r.a.logits,
               n * sizeof *out);
    }
    return ASEC_OK;
}

/* Forward then backward with r's outputs set. */
static int
forward_backward(struct asec_model_run *r, double *loss, double *losses_out)
{
    r->backward = 1;
    ASEC_TRY(forward(r));
    ASEC_TRY(backward(r));
    if (loss != NULL)
        *loss = mean_loss(r);
    if (losses_out != NULL)
        memcpy(losses_out, r->losses, r->B * sizeof *losses_out);
    return ASEC_OK;
}

int
asec_model_grad(asec_model *m, double *loss, const asec_model_vec *grad,
                const asec_model_batch *b)
{
    struct asec_model_run r;

    ASEC_TRY(run_init(m, b, 1, 0, &r));
    if (grad->soft != NULL && b->soft == NULL)
        ASEC_FAIL(ASEC_EINVAL, "a soft-label gradient needs soft labels in the batch");
    r.dp = grad->params;
    r.dx = grad->input;
    r.dsoft = grad->soft;
    zero(r.dp, m->P);
    return forward_backward(&r, loss, NULL);
}

int
asec_model_grad_per_example(asec_model *m, double *losses, double *grads,
                            const asec_model_batch *b)
{
    struct asec_model_run r;
    size_t n;

    ASEC_TRY(run_init(m, b, 1, 0, &r));
    if (asec__mul_size(r.B, m->P, &n) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "B * P overflows");
    r.dp = grads;
    r.per_ex = 1;
    zero(grads, n);
    return forward_backward(&r, NULL, losses);
}

int
asec_model_hvp(asec_model *m, const asec_model_vec *out, const asec_model_vec *grad,
               const asec_model_cvec *dir, const asec_model_batch *b)
{
    struct asec_model_run r;

    ASEC_TRY(run_init(m, b, 1, 1, &r));
    if (dir->input != NULL && b->tokens != NULL)
        ASEC_FAIL(ASEC_EINVAL, "an input direction needs continuous inputs: give the "
                               "embeddings tok_emb[tokens] as x instead of token ids");
    if ((out->soft != NULL || dir->soft != NULL || (grad && grad->soft)) &&
        b->soft == NULL)
        ASEC_FAIL(ASEC_EINVAL,
                  "a soft-label direction or output needs soft labels in the "
                  "batch");
    r.tp = dir->params;
    r.tx = dir->input;
    r.tsoft = dir->soft;
    r.tdp = out->params;
    r.tdx = out->input;
    r.tdsoft = out->soft;
    if (grad != NULL) {
        r.dp = grad->params;
        r.dx = grad->input;
        r.dsoft = grad->soft;
    }
    zero(r.dp, m->P);
    zero(r.tdp, m->P);
    return forward_backward(&r, NULL, NULL);
}

int
asec_model_grad_dot_dinput(asec_model *m, double *dinput, double *dsoft, const double *v,
                           const asec_model_batch *b)
{
    asec_model_vec out = {NULL, dinput, dsoft};
    asec_model_cvec dir = {v, NULL, NULL};

    return asec_model_hvp(m, &out, NULL, &dir, b);
}

int
asec_model_grad_jvp(asec_model *m, double *out, const double *u, const double *w,
                    const asec_model_batch *b)
{
    asec_model_vec o = {out, NULL, NULL};
    asec_model_cvec dir = {NULL, u, w};

    return asec_model_hvp(m, &o, NULL, &dir, b);
}
