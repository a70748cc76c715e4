/* safetensors.c - the strict safetensors reader and the writer.
 *
 * Layout (huggingface/safetensors, "Format"):
 *
 *   N (u64 LE)  |  N bytes of UTF-8 JSON  |  data section
 *
 * The JSON object maps tensor names to
 *   {"dtype": "F64", "shape": [2, 3], "data_offsets": [begin, end]}
 * with offsets relative to the data section, plus an optional
 * "__metadata__" object of string values.  The rules (RELIABILITY.md 5.4,
 * attnsec-formats(5)) are stricter than the Rust reference: unknown fields
 * are rejected, duplicate keys are rejected, the offsets must tile the
 * data section exactly, and nesting depth is capped before jansson sees
 * the text.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "attnsec/afile.h"
#include "io_internal.h"

/* Depth of [ and { outside strings, checked before jansson parses (its
 * own limit is 2048); *end receives the offset just past the top-level
 * object, or n when it is not closed (jansson then names the error). */
static int
scan_json(const asec_io_file *f, const unsigned char *buf, size_t n, size_t *end)
{
    size_t depth = 0;
    int in_string = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = buf[i];

        if (in_string) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_string = 0;
            continue;
        }
        if (ch == '"') {
            in_string = 1;
        } else if (ch == '{' || ch == '[') {
            if (++depth > f->opts.max_json_depth)
                ASEC_FAIL(ASEC_ELIMIT,
                          "%s: JSON header nesting depth exceeds %zu "
                          "(max_json_depth)",
                          f->path, f->opts.max_json_depth);
        } else if (ch == '}' || ch == ']') {
            if (depth == 0 || --depth == 0) {
                *end = i + 1;
                return ASEC_OK;
            }
        }
    }
    *end = n;
    return ASEC_OK;
}

/* A JSON integer in 0 .. INT64_MAX, as size_t. */
static int
get_count(const json_t *v, size_t *out)
{
    json_int_t x;

    if (!json_is_integer(v))
        return -1;
    x = json_integer_value(v);
    if (x < 0 || (unsigned long long)x > (unsigned long long)SIZE_MAX)
        return -2;
    *out = (size_t)x;
    return 0;
}

typedef struct span {
    size_t begin, end, index;
} span;

static int
cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;

    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

/* Validate one tensor entry (name, value) and fill t (shape is left for
 * the second pass); *sp receives its offsets. */
static int
check_entry(const asec_io_file *f, const char *name, json_t *val, size_t data_len,
            asec_io_tensor *t, span *sp)
{
    char q[80], sbuf[32];
    const char *key;
    json_t *field, *dtype = NULL, *shape = NULL, *offs = NULL;
    size_t nelem = 1, nbytes, begin, end, isz;

    asec__printable(q, sizeof q, name);
    if (name[0] == '\0')
        ASEC_FAIL(ASEC_EFORMAT, "%s: a tensor has an empty name", f->path);
    if (strlen(name) > f->opts.max_name_bytes)
        ASEC_FAIL(ASEC_ELIMIT,
                  "%s: tensor name '%s' is %zu bytes, over max_name_bytes %zu", f->path,
                  q, strlen(name), f->opts.max_name_bytes);
    if (!json_is_object(val))
        ASEC_FAIL(ASEC_EFORMAT, "%s: tensor '%s': entry is not an object", f->path, q);
    json_object_foreach(val, key, field)
    {
        if (strcmp(key, "dtype") == 0)
            dtype = field;
        else if (strcmp(key, "shape") == 0)
            shape = field;
        else if (strcmp(key, "data_offsets") == 0)
            offs = field;
        else
            ASEC_FAIL(ASEC_EFORMAT, "%s: tensor '%s': unknown field '%s'", f->path, q,
                      asec__printable(sbuf, sizeof sbuf, key));
    }
    if (dtype == NULL || shape == NULL || offs == NULL)
        ASEC_FAIL(ASEC_EFORMAT, "%s: tensor '%s': missing field '%s'", f->path, q,
                  dtype == NULL   ? "dtype"
                  : shape == NULL ? "shape"
                                  : "data_offsets");
    if (!json_is_string(dtype))
        ASEC_FAIL(ASEC_EFORMAT, "%s: tensor '%s': dtype is not a string", f->path, q);
    if (asec_io_dtype_parse(&t->dtype, json_string_value(dtype)) != ASEC_OK)
        ASEC_FAIL(ASEC_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", f->path, q,
                  asec__printable(sbuf, sizeof sbuf, json_string_value(dtype)));
    if (!json_is_array(shape))
        ASEC_FAIL(ASEC_EFORMAT, "%s: tensor '%s': shape is not an array", f->path, q);
    if (json_array_size(shape) > ASEC_IO_MAX_NDIM)
        ASEC_FAIL(ASEC_ELIMIT, "%s: tensor '%s': shape has %zu dimensions, more than %d",
                  f->path, q, json_array_size(shape), ASEC_IO_MAX_NDIM);
    t->ndim = json_array_size(shape);
    for (size_t k = 0; k < t->ndim; k++) {
        size_t dim;
        int bad = get_count(json_array_get(shape, k), &dim);

        if (bad == -1)
            ASEC_FAIL(ASEC_EFORMAT, "%s: tensor '%s': shape[%zu] is not an integer",
                      f->path, q, k);
        if (bad == -2)
            ASEC_FAIL(ASEC_EFORMAT, "%s: tensor '%s': shape[%zu] is negative", f->path, q,
                      k);
        if (asec__mul_size(nelem, dim, &nelem) != 0)
            ASEC_FAIL(ASEC_EFORMAT, "%s: tensor '%s': shape element count overflows",
                      f->path, q);
    }
    isz = asec_io_dtype_size(t->dtype);
    if (asec__mul_size(nelem, isz, &nbytes) != 0)
        ASEC_FAIL(ASEC_EFORMAT, "%s: tensor '%s': byte size overflows", f->path, q);
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) ||
        !json_is_integer(json_array_get(offs, 1)))
        ASEC_FAIL(ASEC_EFORMAT,
                  "%s: tensor '%s': data_offsets is not an array of two "
                  "integers",
                  f->path, q);
    if (get_count(json_array_get(offs, 0), &begin) != 0 ||
        get_count(json_array_get(offs, 1), &end) != 0)
        ASEC_FAIL(ASEC_EFORMAT, "%s: tensor '%s': data_offsets has a negative offset",
                  f->path, q);
    if (begin > end)
        ASEC_FAIL(ASEC_EFORMAT,
                  "%s: tensor '%s': data_offsets [%zu, %zu] begin after end", f->path, q,
                  begin, end);
    if (end > data_len)
        ASEC_FAIL(ASEC_EFORMAT,
                  "%s: tensor '%s': data_offsets end %zu is past the %zu "
                  "data bytes (out of bounds)",
                  f->path, q, end, data_len);
    if (end - begin != nbytes)
        ASEC_FAIL(ASEC_EFORMAT,
                  "%s: tensor '%s': data_offsets span %zu bytes but the "
                  "shape of %s needs %zu (size mismatch)",
                  f->path, q, end - begin, asec_io_dtype_name(t->dtype), nbytes);
    if (nbytes > f->opts.max_tensor_bytes)
        ASEC_FAIL(ASEC_ELIMIT,
                  "%s: tensor '%s' of %zu bytes exceeds max_tensor_bytes %zu", f->path, q,
                  nbytes, f->opts.max_tensor_bytes);
    t->nelem = nelem;
    t->nbytes = nbytes;
    sp->begin = begin;
    sp->end = end;
    return ASEC_OK;
}

static int
read_metadata(asec_io_file *f, json_t *meta)
{
    const char *key;
    json_t *val;
    size_t i = 0, n;
    char q[80];

    if (!json_is_object(meta))
        ASEC_FAIL(ASEC_EFORMAT, "%s: __metadata__ is not an object", f->path);
    n = json_object_size(meta);
    json_object_foreach(meta, key, val)
    {
        if (!json_is_string(val))
            ASEC_FAIL(ASEC_EFORMAT, "%s: __metadata__ value of '%s' is not a string",
                      f->path, asec__printable(q, sizeof q, key));
        if (strlen(key) > f->opts.max_name_bytes)
            ASEC_FAIL(ASEC_ELIMIT,
                      "%s: __metadata__ key '%s' is %zu bytes, over "
                      "max_name_bytes %zu",
                      f->path, asec__printable(q, sizeof q, key), strlen(key),
                      f->opts.max_name_bytes);
    }
    f->meta_keys = asec__calloc(n, sizeof *f->meta_keys);
    f->meta_values = asec__calloc(n, sizeof *f->meta_values);
    if (f->meta_keys == NULL || f->meta_values == NULL)
        return ASEC_ENOMEM;
    f->info.nmeta = n;
    json_object_foreach(meta, key, val)
    {
        f->meta_keys[i] = asec__strdup(key);
        f->meta_values[i] = asec__strdup(json_string_value(val));
        if (f->meta_keys[i] == NULL || f->meta_values[i] == NULL)
            return ASEC_ENOMEM;
        i++;
    }
    return ASEC_OK;
}

int
asec_io__st_parse(asec_io_file *f)
{
    unsigned char pre[8];
    unsigned char *hdr = NULL;
    const char *path = f->path, *key;
    size_t size = f->info.file_bytes, hlen, end = 0, data_len, count = 0, ndims = 0, i,
           at;
    uint64_t n64;
    json_t *root = NULL, *val, *meta;
    json_error_t jerr;
    asec_io_tensor *hdr_order = NULL;
    char **hdr_names = NULL;
    span *spans = NULL;
    int rc = ASEC_OK;

    if (size < 8)
        ASEC_FAIL(ASEC_EFORMAT,
                  "%s: file size %zu is shorter than the 8-byte header "
                  "length (truncated)",
                  path, size);
    ASEC_TRY(asec_io__pread(f, 0, pre, 8));
    n64 = asec_io__get_le64(pre);
    /* The declared length is checked against the file and the cap before
     * anything is allocated (ollama #16190). */
    if (n64 < 2)
        ASEC_FAIL(ASEC_EFORMAT, "%s: header length %llu is below the minimum 2", path,
                  (unsigned long long)n64);
    if (n64 > (uint64_t)(size - 8))
        ASEC_FAIL(ASEC_EFORMAT, "%s: header length %llu exceeds file size %zu", path,
                  (unsigned long long)n64, size);
    hlen = (size_t)n64;
    if (hlen > f->opts.max_st_header)
        ASEC_FAIL(ASEC_ELIMIT,
                  "%s: header length %zu exceeds the cap of %zu bytes "
                  "(max_st_header)",
                  path, hlen, f->opts.max_st_header);
    data_len = size - 8 - hlen;
    hdr = asec__malloc(hlen);
    if (hdr == NULL)
        return ASEC_ENOMEM;
    rc = asec_io__pread(f, 8, hdr, hlen);
    if (rc != ASEC_OK)
        goto fail;
    if (hdr[0] != '{')
        ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT,
                       "%s: header does not start with '{' (not "
                       "a JSON object)",
                       path);
    rc = scan_json(f, hdr, hlen, &end);
    if (rc != ASEC_OK)
        goto fail;
    root = json_loadb((const char *)hdr, end, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        char why[200];

        /* jansson quotes the offending input, which may hold control
         * bytes: escape them so the message stays on one line. */
        ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT, "%s: invalid JSON header: %s (byte %d)",
                       path, asec__printable(why, sizeof why, jerr.text), jerr.position);
    }
    for (size_t k = end; k < hlen; k++) {
        unsigned char ch = hdr[k];

        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
            continue;
        if (ch == 0)
            ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT,
                           "%s: NUL byte after the JSON header "
                           "at byte %zu (padding must be spaces)",
                           path, 8 + k);
        ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT,
                       "%s: trailing garbage after the JSON "
                       "header at byte %zu",
                       path, 8 + k);
    }
    asec__free(hdr);
    hdr = NULL;
    if (!json_is_object(root))
        ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT, "%s: header is not a JSON object", path);

    meta = json_object_get(root, "__metadata__");
    count = json_object_size(root) - (meta != NULL);
    if (count > f->opts.max_tensors)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ELIMIT, "%s: %zu tensors exceed max_tensors %zu",
                       path, count, f->opts.max_tensors);
    if (meta != NULL) {
        rc = read_metadata(f, meta);
        if (rc != ASEC_OK)
            goto fail;
    }

    /* Pass 1: validate every entry, in header order. */
    hdr_order = asec__calloc(count, sizeof *hdr_order);
    hdr_names = asec__calloc(count, sizeof *hdr_names);
    spans = asec__calloc(count, sizeof *spans);
    if (hdr_order == NULL || hdr_names == NULL || spans == NULL) {
        rc = ASEC_ENOMEM;
        goto fail;
    }
    i = 0;
    json_object_foreach(root, key, val)
    {
        if (val == meta)
            continue;
        rc = check_entry(f, key, val, data_len, &hdr_order[i], &spans[i]);
        if (rc != ASEC_OK)
            goto fail;
        spans[i].index = i;
        hdr_names[i] = asec__strdup(key);
        if (hdr_names[i] == NULL) {
            rc = ASEC_ENOMEM;
            goto fail;
        }
        ndims += hdr_order[i].ndim; // <= 64 per tensor: no overflow
        i++;
    }

    /* The offsets must tile [0, data_len) exactly: no gap, no overlap, no
     * trailing bytes (safetensors Metadata::validate; no polyglots). */
    qsort(spans, count, sizeof *spans, cmp_span);
    at = 0;
    for (size_t k = 0; k < count; k++) {
        char q[80], q2[80];

        if (spans[k].begin < at)
            ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT,
                           "%s: tensor '%s' overlaps tensor '%s' "
                           "(begins at %zu, before %zu)",
                           path, asec__printable(q, sizeof q, hdr_names[spans[k].index]),
                           asec__printable(q2, sizeof q2, hdr_names[spans[k - 1].index]),
                           spans[k].begin, at);
        if (spans[k].begin > at)
            ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT,
                           "%s: gap of %zu bytes before tensor "
                           "'%s' (begins at %zu, expected %zu)",
                           path, spans[k].begin - at,
                           asec__printable(q, sizeof q, hdr_names[spans[k].index]),
                           spans[k].begin, at);
        at = spans[k].end;
    }
    if (at != data_len)
        ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT,
                       "%s: tensors end at data offset %zu but "
                       "the data section has %zu bytes (trailing bytes)",
                       path, at, data_len);

    /* Pass 2: tensors in file order, shapes into one pool. */
    f->tensors = asec__calloc(count, sizeof *f->tensors);
    f->names = asec__calloc(count, sizeof *f->names);
    f->shapes = asec__calloc(ndims, sizeof *f->shapes);
    if (f->tensors == NULL || f->names == NULL || f->shapes == NULL) {
        rc = ASEC_ENOMEM;
        goto fail;
    }
    f->info.ntensors = count;
    at = 0;
    for (size_t k = 0; k < count; k++) {
        size_t h = spans[k].index;
        asec_io_tensor *t = &f->tensors[k];
        json_t *shape = json_object_get(json_object_get(root, hdr_names[h]), "shape");

        *t = hdr_order[h];
        f->names[k] = hdr_names[h];
        hdr_names[h] = NULL;
        t->name = f->names[k];
        t->offset = 8 + hlen + spans[k].begin;
        for (size_t d = 0; d < t->ndim; d++)
            f->shapes[at + d] = (size_t)json_integer_value(json_array_get(shape, d));
        t->shape = f->shapes + at;
        at += t->ndim;
    }
    f->info.header_bytes = hlen;
    f->info.data_offset = 8 + hlen;

fail:
    if (hdr_names != NULL)
        for (size_t k = 0; k < count; k++)
            asec__free(hdr_names[k]);
    asec__free(hdr_names);
    asec__free(hdr_order);
    asec__free(spans);
    asec__free(hdr);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------- writer */

/* The writer refuses what the reader would refuse with its default
 * options (ASEC_IO_OPTIONS_INIT): a file it writes always reads back. */
static const asec_io_options reader_defaults = ASEC_IO_OPTIONS_INIT;

static int
utf8_string(json_t **out, const char *path, const char *s, const char *what)
{
    *out = json_string(s);
    if (*out == NULL)
        ASEC_FAIL(ASEC_EINVAL, "%s: %s is not valid UTF-8 (or out of memory)", path,
                  what);
    return ASEC_OK;
}

static int
build_header(json_t **out, const char *path, const asec_io_st_entry *tensors, size_t n,
             const char *const *meta_keys, const char *const *meta_values, size_t nmeta,
             size_t *data_bytes)
{
    json_t *root = json_object(), *meta = NULL, *s = NULL;
    size_t off = 0;
    char q[80], who[120];
    int rc = ASEC_OK;

    if (root == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "%s: out of memory building the header", path);
    if (nmeta > 0) {
        if (meta_keys == NULL || meta_values == NULL)
            ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL, "%s: metadata keys or values are NULL",
                           path);
        meta = json_object();
        if (meta == NULL || json_object_set_new(root, "__metadata__", meta) != 0)
            ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "%s: out of memory", path);
        for (size_t i = 0; i < nmeta; i++) {
            if (meta_keys[i] == NULL || meta_values[i] == NULL)
                ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL, "%s: metadata entry %zu is NULL",
                               path, i);
            if (strlen(meta_keys[i]) > reader_defaults.max_name_bytes)
                ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL,
                               "%s: metadata key '%s' is %zu bytes, over %zu", path,
                               asec__printable(q, sizeof q, meta_keys[i]),
                               strlen(meta_keys[i]), reader_defaults.max_name_bytes);
            if (json_object_get(meta, meta_keys[i]) != NULL)
                ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL, "%s: duplicate metadata key '%s'",
                               path, asec__printable(q, sizeof q, meta_keys[i]));
            rc = utf8_string(&s, path, meta_values[i], "a metadata value");
            if (rc != ASEC_OK)
                goto fail;
            if (json_object_set_new(meta, meta_keys[i], s) != 0)
                ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL,
                               "%s: metadata key '%s' is not "
                               "valid UTF-8",
                               path, asec__printable(q, sizeof q, meta_keys[i]));
        }
    }
    if (n > 0 && tensors == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL, "%s: tensors is NULL", path);
    if (n > reader_defaults.max_tensors)
        ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL, "%s: %zu tensors, more than %zu", path, n,
                       reader_defaults.max_tensors);
    for (size_t i = 0; i < n; i++) {
        const asec_io_st_entry *e = &tensors[i];
        json_t *obj, *shape, *offs;
        size_t nelem, nbytes;

        if (e->name == NULL || e->name[0] == '\0')
            ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL, "%s: tensor %zu has no name", path, i);
        asec__printable(q, sizeof q, e->name);
        if (strlen(e->name) > reader_defaults.max_name_bytes)
            ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL,
                           "%s: tensor name '%s' is %zu bytes, over %zu", path, q,
                           strlen(e->name), reader_defaults.max_name_bytes);
        if (strcmp(e->name, "__metadata__") == 0)
            ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL,
                           "%s: a tensor cannot be called "
                           "__metadata__",
                           path);
        if (json_object_get(root, e->name) != NULL)
            ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL, "%s: duplicate tensor name '%s'", path,
                           q);
        snprintf(who, sizeof who, "tensor '%s': ", q);
        rc = asec_io__check_write_shape(path, who, e->ndim, e->shape, e->data, e->dtype,
                                        &nelem);
        if (rc != ASEC_OK)
            goto fail;
        nbytes = nelem * asec_io_dtype_size(e->dtype); // checked above
        obj = json_object();
        shape = json_array();
        offs = json_array();
        if (obj == NULL || shape == NULL || offs == NULL) {
            json_decref(obj);
            json_decref(shape);
            json_decref(offs);
            ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "%s: out of memory", path);
        }
        json_object_set_new(obj, "dtype", json_string(asec_io_dtype_name(e->dtype)));
        json_object_set_new(obj, "shape", shape);
        json_object_set_new(obj, "data_offsets", offs);
        for (size_t d = 0; d < e->ndim; d++)
            json_array_append_new(shape, json_integer((json_int_t)e->shape[d]));
        json_array_append_new(offs, json_integer((json_int_t)off));
        if (asec__add_size(off, nbytes, &off) != 0 || off > (size_t)INT64_MAX) {
            json_decref(obj);
            ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "%s: total data size overflows", path);
        }
        json_array_append_new(offs, json_integer((json_int_t)off));
        if (json_object_size(obj) != 3 || json_array_size(shape) != e->ndim ||
            json_array_size(offs) != 2) {
            json_decref(obj);
            ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "%s: out of memory", path);
        }
        if (json_object_set_new(root, e->name, obj) != 0)
            ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL,
                           "%s: tensor name '%s' is not valid "
                           "UTF-8",
                           path, q);
    }
    *out = root;
    *data_bytes = off;
    return ASEC_OK;

fail:
    json_decref(root);
    return rc;
}

int
asec_io_st_write(const char *path, const asec_io_st_entry *tensors, size_t n,
                 const char *const *meta_keys, const char *const *meta_values,
                 size_t nmeta)
{
    json_t *root = NULL;
    char *hdr = NULL;
    unsigned char pre[8], *buf = NULL;
    asec_afile *af = NULL;
    size_t len, padded, data_bytes;
    int rc;

    ASEC_TRY(build_header(&root, path, tensors, n, meta_keys, meta_values, nmeta,
                          &data_bytes));
    len = json_dumpb(root, NULL, 0, JSON_COMPACT);
    if (len == 0)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "%s: cannot serialise the header", path);
    padded = (len + 7) / 8 * 8; // the data section starts 8-byte aligned
    if (padded > reader_defaults.max_st_header)
        ASEC_FAIL_GOTO(fail, rc, ASEC_EINVAL, "%s: header of %zu bytes exceeds %zu", path,
                       padded, reader_defaults.max_st_header);
    hdr = asec__malloc(padded);
    buf = asec__malloc(ASEC_IO_WRITE_CHUNK);
    if (hdr == NULL || buf == NULL) {
        rc = ASEC_ENOMEM;
        goto fail;
    }
    if (json_dumpb(root, hdr, len, JSON_COMPACT) != len)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "%s: cannot serialise the header", path);
    memset(hdr + len, ' ', padded - len);
    asec_io__put_le64(pre, (uint64_t)padded);

    rc = asec_afile_open(&af, path);
    if (rc != ASEC_OK)
        goto fail;
    rc = asec_afile_write(af, pre, sizeof pre);
    if (rc == ASEC_OK)
        rc = asec_afile_write(af, hdr, padded);
    for (size_t i = 0; rc == ASEC_OK && i < n; i++) {
        size_t nelem = 1;

        for (size_t d = 0; d < tensors[i].ndim; d++)
            nelem *= tensors[i].shape[d]; // checked in build_header()
        rc = asec_io__write_values(af, buf, tensors[i].data, nelem, tensors[i].dtype);
    }
    if (rc != ASEC_OK)
        goto fail;
    rc = asec_afile_commit(af);
    af = NULL;
    if (rc != ASEC_OK)
        goto fail;
    asec__free(hdr);
    asec__free(buf);
    json_decref(root);
    return ASEC_OK;

fail:
    asec_afile_abort(af);
    asec__free(hdr);
    asec__free(buf);
    json_decref(root);
    return rc;
}
