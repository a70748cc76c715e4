/* model_io.c - model files: the architecture as JSON, and parameters (or any
 * flat parameter-shaped vector, such as a shared gradient) as safetensors.
 *
 * A model file is a safetensors file (attnsec-formats(5)) with
 *   __metadata__  "attnsec.arch":    the architecture, one JSON object
 *                 "attnsec.content": "model"
 *   tensors       every parameter, F64, named as asec_model_tensor_get()
 *                 lists them ("blocks.0.attn.qkv.weight", ...), in arena
 *                 order.
 * Gradient files have the same names (content "gradient"); stacked
 * per-example gradients carry a leading (B) dimension.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "attnsec/io.h"
#include "attnsec/model.h"
#include "internal.h"
#include "model_internal.h"

#define CONTENT_KEY "attnsec.content"

/* ---------------------------------------------------------------- JSON */

/* The shortest "%.{15,16,17}g" text that reads back as exactly x. */
static void
format_double(char *buf, size_t cap, double x)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            return;
    }
}

static int check_caps(const asec_model_arch *a, int status);

int
asec_model_arch_to_json(char *buf, size_t cap, const asec_model_arch *a)
{
    char scale[32], eps[32];
    int n;

    ASEC_TRY(asec_model_arch_check(a));
    ASEC_TRY(check_caps(a, ASEC_EINVAL));
    format_double(scale, sizeof scale, a->scale);
    format_double(eps, sizeof eps, a->ln_eps);
    n = snprintf(buf, cap,
                 "{\"format\":\"attnsec-model\",\"version\":%u,\"kind\":\"%s\","
                 "\"channels\":%zu,\"layers\":%zu,\"heads\":%zu,\"seq_len\":%zu,"
                 "\"classes\":%zu,\"vocab\":%zu,\"image_h\":%zu,\"image_w\":%zu,"
                 "\"patch\":%zu,\"mlp_hidden\":%zu,\"causal\":%s,\"pool\":\"%s\","
                 "\"pos\":\"%s\",\"scale\":%s,\"ln_eps\":%s}",
                 a->version, asec_model_kind_name(a->kind), a->channels, a->layers,
                 a->heads, a->seq_len, a->classes, a->vocab, a->image_h, a->image_w,
                 a->patch, a->mlp_hidden, a->causal ? "true" : "false",
                 asec_model_pool_name(a->pool), asec_model_pos_name(a->pos), scale, eps);
    if (n < 0 || (size_t)n >= cap)
        ASEC_FAIL(ASEC_ELIMIT, "architecture JSON needs %d bytes, the buffer has %zu",
                  n + 1, cap);
    return ASEC_OK;
}

/* The keys of the architecture object, in the order written. */
enum {
    K_FORMAT,
    K_VERSION,
    K_KIND,
    K_CHANNELS,
    K_LAYERS,
    K_HEADS,
    K_SEQ_LEN,
    K_CLASSES,
    K_VOCAB,
    K_IMAGE_H,
    K_IMAGE_W,
    K_PATCH,
    K_MLP_HIDDEN,
    K_CAUSAL,
    K_POOL,
    K_POS,
    K_SCALE,
    K_LN_EPS,
    K_COUNT
};

static const char *const arch_keys[K_COUNT] = {
    "format",     "version", "kind",  "channels", "layers",  "heads",
    "seq_len",    "classes", "vocab", "image_h",  "image_w", "patch",
    "mlp_hidden", "causal",  "pool",  "pos",      "scale",   "ln_eps"};

/* Caps on the size fields of a model file's architecture (attnsec-formats(5),
 * "Model files"), on top of asec_model_arch_check()'s: checked when the
 * JSON is read and when it is written, so no file is written that does
 * not load.  (The tensors present in the file bound the memory a load
 * allocates; these bound everything computed from the architecture.) */
static const struct {
    int key;
    size_t max;
} arch_caps[] = {{K_CHANNELS, 65536},   {K_LAYERS, 1024},     {K_HEADS, 65536},
                 {K_SEQ_LEN, 65536},    {K_CLASSES, 1048576}, {K_VOCAB, 1048576},
                 {K_IMAGE_H, 65536},    {K_IMAGE_W, 65536},   {K_PATCH, 65536},
                 {K_MLP_HIDDEN, 262144}};

static size_t
arch_size(const asec_model_arch *a, int k)
{
    switch (k) {
    case K_CHANNELS:
        return a->channels;
    case K_LAYERS:
        return a->layers;
    case K_HEADS:
        return a->heads;
    case K_SEQ_LEN:
        return a->seq_len;
    case K_CLASSES:
        return a->classes;
    case K_VOCAB:
        return a->vocab;
    case K_IMAGE_H:
        return a->image_h;
    case K_IMAGE_W:
        return a->image_w;
    case K_PATCH:
        return a->patch;
    default:
        return a->mlp_hidden;
    }
}

/* ASEC_OK, or status naming the first field over its cap. */
static int
check_caps(const asec_model_arch *a, int status)
{
    for (size_t i = 0; i < sizeof arch_caps / sizeof arch_caps[0]; i++) {
        size_t v = arch_size(a, arch_caps[i].key);

        if (v > arch_caps[i].max)
            ASEC_FAIL(status, "architecture: '%s' = %zu exceeds the cap %zu",
                      arch_keys[arch_caps[i].key], v, arch_caps[i].max);
    }
    return ASEC_OK;
}

static int
get_size(size_t *out, json_t *v, const char *key)
{
    json_int_t i;

    if (!json_is_integer(v))
        ASEC_FAIL(ASEC_EFORMAT, "architecture: '%s' is not an integer", key);
    i = json_integer_value(v);
    if (i < 0 || (unsigned long long)i > (unsigned long long)SIZE_MAX)
        ASEC_FAIL(ASEC_EFORMAT, "architecture: '%s' = %lld is out of range", key,
                  (long long)i);
    *out = (size_t)i;
    return ASEC_OK;
}

static int
get_string(const char **out, json_t *v, const char *key)
{
    if (!json_is_string(v))
        ASEC_FAIL(ASEC_EFORMAT, "architecture: '%s' is not a string", key);
    *out = json_string_value(v);
    return ASEC_OK;
}

static int
parse_value(asec_model_arch *a, int k, json_t *v)
{
    char q[128];
    const char *s = "";
    size_t z = 0;

    switch (k) {
    case K_FORMAT:
        ASEC_TRY(get_string(&s, v, "format"));
        if (strcmp(s, "attnsec-model") != 0)
            ASEC_FAIL(ASEC_EFORMAT, "architecture: format '%s' is not 'attnsec-model'",
                      asec__printable(q, sizeof q, s));
        return ASEC_OK;
    case K_VERSION:
        ASEC_TRY(get_size(&z, v, "version"));
        if (z != ASEC_MODEL_ARCH_VERSION)
            ASEC_FAIL(ASEC_EFORMAT,
                      "architecture: version %zu is not supported (only %d)", z,
                      ASEC_MODEL_ARCH_VERSION);
        a->version = (unsigned)z;
        return ASEC_OK;
    case K_KIND:
        ASEC_TRY(get_string(&s, v, "kind"));
        if (asec_model_kind_parse(&a->kind, s) != ASEC_OK)
            ASEC_FAIL(ASEC_EFORMAT, "architecture: unknown kind '%s'",
                      asec__printable(q, sizeof q, s));
        return ASEC_OK;
    case K_POOL:
        ASEC_TRY(get_string(&s, v, "pool"));
        if (asec_model_pool_parse(&a->pool, s) != ASEC_OK)
            ASEC_FAIL(ASEC_EFORMAT, "architecture: unknown pool '%s'",
                      asec__printable(q, sizeof q, s));
        return ASEC_OK;
    case K_POS:
        ASEC_TRY(get_string(&s, v, "pos"));
        if (asec_model_pos_parse(&a->pos, s) != ASEC_OK)
            ASEC_FAIL(ASEC_EFORMAT, "architecture: unknown pos '%s'",
                      asec__printable(q, sizeof q, s));
        return ASEC_OK;
    case K_CAUSAL:
        if (!json_is_boolean(v))
            ASEC_FAIL(ASEC_EFORMAT, "architecture: 'causal' is not true or false");
        a->causal = json_is_true(v);
        return ASEC_OK;
    case K_SCALE:
    case K_LN_EPS:
        if (!json_is_number(v))
            ASEC_FAIL(ASEC_EFORMAT, "architecture: '%s' is not a number", arch_keys[k]);
        /* + 0.0 turns -0 into 0: the sign of a zero means nothing here, and
         * the text "-0" would read back as the integer 0 */
        *(k == K_SCALE ? &a->scale : &a->ln_eps) = json_number_value(v) + 0.0;
        return ASEC_OK;
    default: {
        size_t *dst[] = {[K_CHANNELS] = &a->channels, [K_LAYERS] = &a->layers,
                         [K_HEADS] = &a->heads,       [K_SEQ_LEN] = &a->seq_len,
                         [K_CLASSES] = &a->classes,   [K_VOCAB] = &a->vocab,
                         [K_IMAGE_H] = &a->image_h,   [K_IMAGE_W] = &a->image_w,
                         [K_PATCH] = &a->patch,       [K_MLP_HIDDEN] = &a->mlp_hidden};

        return get_size(dst[k], v, arch_keys[k]);
    }
    }
}

int
asec_model_arch_from_json(asec_model_arch *out, const char *json, size_t len)
{
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    int seen[K_COUNT] = {0}, rc = ASEC_OK;
    const char *key;
    json_t *v;

    if (root == NULL) {
        char text[sizeof err.text * 4];

        ASEC_FAIL(ASEC_EFORMAT, "architecture JSON: %s (column %d)",
                  asec__printable(text, sizeof text, err.text), err.column);
    }
    memset(out, 0, sizeof *out);
    if (!json_is_object(root)) {
        json_decref(root);
        ASEC_FAIL(ASEC_EFORMAT, "architecture JSON is not an object");
    }
    json_object_foreach(root, key, v)
    {
        int k = -1;

        for (int i = 0; i < K_COUNT; i++)
            if (strcmp(key, arch_keys[i]) == 0)
                k = i;
        if (k < 0) {
            char q[128];

            rc = asec__fail(ASEC_EFORMAT, "architecture: unknown key '%s'",
                            asec__printable(q, sizeof q, key));
            goto done;
        }
        seen[k] = 1;
        if ((rc = parse_value(out, k, v)) != ASEC_OK)
            goto done;
    }
    for (int i = 0; i < K_COUNT; i++)
        if (!seen[i]) {
            rc = asec__fail(ASEC_EFORMAT, "architecture: missing key '%s'", arch_keys[i]);
            goto done;
        }
    if ((rc = check_caps(out, ASEC_EFORMAT)) != ASEC_OK)
        goto done;
    if (asec_model_arch_check(out) != ASEC_OK) {
        char why[200];

        snprintf(why, sizeof why, "%s", asec_errmsg());
        rc = asec__fail(ASEC_EFORMAT, "architecture: %s", why);
    }
done:
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------- files */

static int
write_file(const asec_model *m, const char *path, const double *data, size_t nstack,
           const char *content)
{
    size_t n = m->ntensors, P = m->P;
    asec_io_st_entry *e = NULL;
    size_t *shapes = NULL;
    double *copy = NULL;
    char arch[1024];
    const char *keys[2] = {ASEC_MODEL_ARCH_KEY, CONTENT_KEY};
    const char *vals[2] = {arch, content};
    int rc;

    ASEC_TRY(asec_model_arch_to_json(arch, sizeof arch, &m->arch));
    e = asec__calloc(n, sizeof *e);
    shapes = asec__calloc(n, 3 * sizeof *shapes);
    if (e == NULL || shapes == NULL) {
        rc = ASEC_ENOMEM;
        goto done;
    }
    if (nstack > 0) {
        size_t total;

        /* (nstack, P) rows -> one contiguous (nstack, shape) block per tensor */
        if (asec__mul_size(nstack, P, &total) != 0 ||
            asec__mul_size(total, sizeof *copy, &total) != 0) {
            rc =
                asec__fail(ASEC_ENOMEM, "%zu stacked vectors of %zu overflow", nstack, P);
            goto done;
        }
        copy = asec__malloc(total);
        if (copy == NULL) {
            rc = ASEC_ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            const struct asec_model_tensor_rec *t = &m->tensors[i];
            double *dst = copy + nstack * t->offset;

            for (size_t s = 0; s < nstack; s++)
                memcpy(dst + s * t->size, data + s * P + t->offset,
                       t->size * sizeof *dst);
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct asec_model_tensor_rec *t = &m->tensors[i];
        size_t *sh = shapes + 3 * i, nd = 0;

        if (nstack > 0)
            sh[nd++] = nstack;
        sh[nd++] = t->shape[0];
        if (t->ndim == 2)
            sh[nd++] = t->shape[1];
        e[i].name = t->name;
        e[i].dtype = ASEC_IO_F64;
        e[i].ndim = nd;
        e[i].shape = sh;
        e[i].data = nstack > 0 ? copy + nstack * t->offset : data + t->offset;
    }
    rc = asec_io_st_write(path, e, n, keys, vals, 2);
done:
    asec__free(e);
    asec__free(shapes);
    asec__free(copy);
    return rc;
}

int
asec_model_save(const asec_model *m, const char *path)
{
    return write_file(m, path, m->params, 0, "model");
}

int
asec_model_save_vectors(const asec_model *m, const char *path, const double *data,
                        size_t nstack, const char *content)
{
    return write_file(m, path, data, nstack, content);
}

static void
shape_text(char *buf, size_t cap, size_t ndim, const size_t *shape)
{
    size_t len = 0;

    buf[0] = '\0';
    len += (size_t)snprintf(buf + len, cap - len, "(");
    for (size_t i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? ", %zu" : "%zu", shape[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, "%s", ndim == 1 ? ",)" : ")");
}

/* Check the open file f against the parameter tensors t[0..n-1] of a
 * kind model: every one present with its shape, nothing else.  Allocates
 * one byte per file tensor, freed before returning.  Called before the
 * model is allocated, so a small file cannot make a load allocate what
 * its architecture claims without holding those tensors. */
static int
check_tensors(const struct asec_model_tensor_rec *t, size_t n, const asec_io_file *f,
              const char *path, asec_model_kind kind)
{
    asec_io_info info;
    unsigned char *seen;
    int rc = ASEC_OK;

    asec_io_file_info(f, &info);
    seen = asec__calloc(info.ntensors ? info.ntensors : 1, 1);
    if (seen == NULL)
        return ASEC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t at;
        const asec_io_tensor *ft = asec_io_file_find(f, t[i].name, &at);
        char have[96], want[96];

        if (ft == NULL)
            ASEC_FAIL_GOTO(done, rc, ASEC_EFORMAT,
                           "%s: tensor '%s' is missing (the architecture needs "
                           "%zu tensors, the file has %zu)",
                           path, t[i].name, n, info.ntensors);
        if (ft->ndim != t[i].ndim || ft->shape[0] != t[i].shape[0] ||
            (t[i].ndim == 2 && ft->shape[1] != t[i].shape[1])) {
            shape_text(have, sizeof have, ft->ndim, ft->shape);
            shape_text(want, sizeof want, t[i].ndim, t[i].shape);
            ASEC_FAIL_GOTO(done, rc, ASEC_EFORMAT,
                           "%s: tensor '%s' has shape %s, the architecture needs %s",
                           path, t[i].name, have, want);
        }
        seen[at] = 1;
    }
    for (size_t i = 0; i < info.ntensors; i++)
        if (!seen[i]) {
            char q[128];

            ASEC_FAIL_GOTO(done, rc, ASEC_EFORMAT,
                           "%s: unexpected tensor '%s' for a %s model", path,
                           asec__printable(q, sizeof q, asec_io_file_tensor(f, i)->name),
                           asec_model_kind_name(kind));
        }
done:
    asec__free(seen);
    return rc;
}

/* Copy every parameter tensor of m from the open file f into out (P). */
static int
read_tensors(const asec_model *m, const asec_io_file *f, const char *path, double *out)
{
    ASEC_TRY(check_tensors(m->tensors, m->ntensors, f, path, m->arch.kind));
    for (size_t i = 0; i < m->ntensors; i++) {
        const struct asec_model_tensor_rec *t = &m->tensors[i];
        const asec_io_tensor *ft = asec_io_file_find(f, t->name, NULL);

        memcpy(out + t->offset, ft->data, t->size * sizeof *out);
    }
    return ASEC_OK;
}

int
asec_model_load(asec_model **out, const char *path)
{
    struct asec_model_tensor_rec *table = NULL;
    asec_io_file *f = NULL;
    asec_model_arch arch;
    const char *json;
    size_t n;
    int rc;

    *out = NULL;
    ASEC_TRY(asec_io_open(&f, path, ASEC_IO_SAFETENSORS, ASEC_IO_LOAD_DOUBLE, NULL));
    json = asec_io_file_meta_get(f, ASEC_MODEL_ARCH_KEY);
    if (json == NULL) {
        rc = asec__fail(ASEC_EFORMAT, "%s: no '%s' metadata: not an attnsec model file",
                        path, ASEC_MODEL_ARCH_KEY);
        goto done;
    }
    if ((rc = asec_model_arch_from_json(&arch, json, strlen(json))) != ASEC_OK) {
        char why[200];

        snprintf(why, sizeof why, "%s", asec_errmsg());
        rc = asec__fail(rc, "%s: %s", path, why);
        goto done;
    }
    /* The architecture against the tensors actually present, before the
     * parameters (P doubles, twice) are allocated. */
    if ((rc = asec__model_tensor_table(&arch, &table, &n)) != ASEC_OK ||
        (rc = check_tensors(table, n, f, path, arch.kind)) != ASEC_OK)
        goto done;
    if ((rc = asec_model_alloc(out, &arch)) != ASEC_OK)
        goto done;
    if ((rc = read_tensors(*out, f, path, (*out)->params)) != ASEC_OK) {
        asec_model_free(*out);
        *out = NULL;
    }
done:
    asec__free(table);
    asec_io_file_free(f);
    return rc;
}

int
asec_model_read_vector(const asec_model *m, const char *path, double *out)
{
    asec_io_file *f = NULL;
    int rc;

    ASEC_TRY(asec_io_open(&f, path, ASEC_IO_SAFETENSORS, ASEC_IO_LOAD_DOUBLE, NULL));
    rc = read_tensors(m, f, path, out);
    asec_io_file_free(f);
    return rc;
}
