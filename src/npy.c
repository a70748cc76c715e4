/* npy.c - the strict .npy reader (format versions 1.0, 2.0, 3.0) and the
 * version 1.0 writer.
 *
 * Layout (NumPy's format.py, "Format Version 1.0"):
 *
 *   "\x93NUMPY"  major  minor  header_len  header ...  '\n'  data
 *    6 bytes     1      1      u16 LE (v1) / u32 LE (v2, v3)
 *
 * The header is a Python dict literal such as
 *
 *   {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }
 *
 * padded with spaces and ended by '\n'.  It is parsed here by a tokenizer
 * for exactly that grammar, never by a general evaluator (RELIABILITY.md
 * 5.2; NumPy itself moved to ast.literal_eval behind a size cap because
 * evaluation "is not actually safe for large inputs").
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "attnsec/afile.h"
#include "io_internal.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64         /* NumPy's ARRAY_ALIGN */
#define NPY_GROWTH_DIGITS 21 /* NumPy's GROWTH_AXIS_MAX_DIGITS */
#define NPY_MAX_DIGITS 19    /* a shape entry is at most 2^63 - 1 */
#define WRITE_CHUNK ASEC_IO_WRITE_CHUNK

/* "(2, 3)", or "(2, 3, ...)" when it does not fit buf. */
static const char *
shape_str(char *buf, size_t cap, size_t ndim, const size_t *shape)
{
    size_t len = 0;

    if (asec_io__shape_repr(buf, cap, &len, ndim, shape) != 0)
        snprintf(buf, cap, "(%zu, ... %zu dims)", ndim > 0 ? shape[0] : 0, ndim);
    return buf;
}

/* ------------------------------------------------------------- parser */

typedef struct cursor {
    const char *s;
    size_t n; /* bytes of header text before the final '\n' */
    size_t i;
    const char *path;
} cursor;

static void
skip_spaces(cursor *c)
{
    while (c->i < c->n && c->s[c->i] == ' ')
        c->i++;
}

static int
peek(const cursor *c)
{
    return c->i < c->n ? (unsigned char)c->s[c->i] : -1;
}

/* A quoted string without escapes: 'abc' or "abc".  *str points into the
 * header, *len is its length. */
static int
parse_string(cursor *c, const char **str, size_t *len, const char *what)
{
    int q = peek(c);
    size_t start;

    if (q != '\'' && q != '"')
        ASEC_FAIL(ASEC_EFORMAT, "%s: header: expected a quoted %s at byte %zu", c->path,
                  what, c->i);
    start = ++c->i;
    while (c->i < c->n && c->s[c->i] != q) {
        if (c->s[c->i] == '\\')
            ASEC_FAIL(ASEC_EFORMAT, "%s: header: escape sequence in %s at byte %zu",
                      c->path, what, c->i);
        c->i++;
    }
    if (c->i >= c->n)
        ASEC_FAIL(ASEC_EFORMAT, "%s: header: unterminated %s", c->path, what);
    *str = c->s + start;
    *len = c->i - start;
    c->i++;
    return ASEC_OK;
}

static int
is_ident(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_';
}

static int
parse_descr(cursor *c, asec_io_dtype *out)
{
    const char *s;
    size_t len;
    char d[48];
    int rc;

    if (peek(c) == '[')
        ASEC_FAIL(ASEC_EFORMAT, "%s: structured dtype (descr is a list) is not supported",
                  c->path);
    rc = parse_string(c, &s, &len, "descr");
    if (rc != ASEC_OK)
        return rc;
    snprintf(d, sizeof d, "%.*s%s", (int)(len < 40 ? len : 40), s, len > 40 ? "..." : "");
    for (int k = 0; k < ASEC_IO_NDTYPES; k++) {
        const char *w = asec_io_dtype_descr((asec_io_dtype)k);

        if (w != NULL && strlen(w) == len && memcmp(w, s, len) == 0) {
            *out = (asec_io_dtype)k;
            return ASEC_OK;
        }
    }
    /* Name the rule that rejects it. */
    if (len >= 2 && strchr("<>|=", s[0]) != NULL) {
        char t = s[1];

        if (t == 'O')
            ASEC_FAIL(ASEC_EFORMAT,
                      "%s: object dtype '%s' is not supported (it needs "
                      "pickle)",
                      c->path, d);
        if (t == 'S' || t == 'U' || t == 'a')
            ASEC_FAIL(ASEC_EFORMAT, "%s: string dtype '%s' is not supported", c->path, d);
        if (t == 'V')
            ASEC_FAIL(ASEC_EFORMAT, "%s: void (structured) dtype '%s' is not supported",
                      c->path, d);
        if (t == 'M' || t == 'm')
            ASEC_FAIL(ASEC_EFORMAT, "%s: datetime dtype '%s' is not supported", c->path,
                      d);
        if (t == 'c')
            ASEC_FAIL(ASEC_EFORMAT, "%s: complex dtype '%s' is not supported", c->path,
                      d);
        if (s[0] == '>')
            ASEC_FAIL(ASEC_EFORMAT,
                      "%s: big-endian dtype '%s' is not supported (only "
                      "'<' or '|')",
                      c->path, d);
        if (s[0] == '=')
            ASEC_FAIL(ASEC_EFORMAT,
                      "%s: native-order dtype '%s' is not supported (only "
                      "'<' or '|')",
                      c->path, d);
    }
    if (len >= 1 && s[0] == 'O')
        ASEC_FAIL(ASEC_EFORMAT,
                  "%s: object dtype '%s' is not supported (it needs pickle)", c->path, d);
    ASEC_FAIL(ASEC_EFORMAT, "%s: dtype '%s' is not supported (see attnsec-formats(5))",
              c->path, d);
}

static int
parse_bool(cursor *c, int *out)
{
    if (c->n - c->i >= 4 && memcmp(c->s + c->i, "True", 4) == 0 &&
        !is_ident(c->i + 4 < c->n ? c->s[c->i + 4] : ' ')) {
        c->i += 4;
        *out = 1;
        return ASEC_OK;
    }
    if (c->n - c->i >= 5 && memcmp(c->s + c->i, "False", 5) == 0 &&
        !is_ident(c->i + 5 < c->n ? c->s[c->i + 5] : ' ')) {
        c->i += 5;
        *out = 0;
        return ASEC_OK;
    }
    ASEC_FAIL(ASEC_EFORMAT, "%s: fortran_order must be True or False (byte %zu)", c->path,
              c->i);
}

/* A tuple of non-negative decimal integers: (), (n,), (n, m), (n, m,). */
static int
parse_shape(cursor *c, size_t *shape, size_t *ndim)
{
    size_t nd = 0;
    int comma_after_last = 0;

    if (peek(c) != '(')
        ASEC_FAIL(ASEC_EFORMAT, "%s: shape is not a tuple (expected '(' at byte %zu)",
                  c->path, c->i);
    c->i++;
    skip_spaces(c);
    while (peek(c) != ')') {
        size_t digits = 0, start = c->i;
        uint64_t v = 0;

        if (peek(c) < '0' || peek(c) > '9') {
            if (peek(c) == '-')
                ASEC_FAIL(ASEC_EFORMAT, "%s: shape has a negative dimension", c->path);
            ASEC_FAIL(ASEC_EFORMAT,
                      "%s: shape entry %zu is not a non-negative decimal "
                      "integer (byte %zu)",
                      c->path, nd, c->i);
        }
        while (peek(c) >= '0' && peek(c) <= '9') {
            if (++digits > NPY_MAX_DIGITS)
                ASEC_FAIL(ASEC_EFORMAT, "%s: shape entry %zu has more than %d digits",
                          c->path, nd, NPY_MAX_DIGITS);
            v = v * 10 + (uint64_t)(c->s[c->i] - '0'); // < 10^19 < 2^64
            c->i++;
        }
        if (digits > 1 && c->s[start] == '0')
            ASEC_FAIL(ASEC_EFORMAT, "%s: shape entry %zu has a leading zero", c->path,
                      nd);
        if (is_ident(peek(c)))
            ASEC_FAIL(ASEC_EFORMAT,
                      "%s: shape entry %zu is not a non-negative decimal "
                      "integer (byte %zu)",
                      c->path, nd, c->i);
        if (v > (uint64_t)INT64_MAX || v > (uint64_t)SIZE_MAX)
            ASEC_FAIL(ASEC_EFORMAT, "%s: shape entry %zu is %llu, above 2^63 - 1",
                      c->path, nd, (unsigned long long)v);
        if (nd == ASEC_IO_MAX_NDIM)
            ASEC_FAIL(ASEC_ELIMIT, "%s: shape has more than %d dimensions (ndim limit)",
                      c->path, ASEC_IO_MAX_NDIM);
        shape[nd++] = (size_t)v;
        skip_spaces(c);
        comma_after_last = 0;
        if (peek(c) == ',') {
            c->i++;
            comma_after_last = 1;
            skip_spaces(c);
        } else if (peek(c) != ')') {
            ASEC_FAIL(ASEC_EFORMAT, "%s: shape: expected ',' or ')' at byte %zu", c->path,
                      c->i);
        }
    }
    if (nd == 1 && !comma_after_last)
        ASEC_FAIL(ASEC_EFORMAT, "%s: shape (%zu) is not a tuple (write (%zu,) for 1-d)",
                  c->path, shape[0], shape[0]);
    c->i++; // ')'
    *ndim = nd;
    return ASEC_OK;
}

/* Parse the header text hdr[0 .. hlen-1] (hlen >= 1, '\n' checked). */
static int
parse_header(const asec_io_file *f, const char *hdr, size_t hlen, asec_io_dtype *dtype,
             int *fortran, size_t *shape, size_t *ndim)
{
    cursor c = {hdr, hlen - 1, 0, f->path};
    int have_descr = 0, have_fortran = 0, have_shape = 0, rc;

    skip_spaces(&c);
    if (peek(&c) != '{')
        ASEC_FAIL(ASEC_EFORMAT, "%s: header is not a dict literal (expected '{')",
                  f->path);
    c.i++;
    for (;;) {
        const char *key;
        size_t klen;

        skip_spaces(&c);
        if (peek(&c) == '}')
            break;
        rc = parse_string(&c, &key, &klen, "key");
        if (rc != ASEC_OK)
            return rc;
        skip_spaces(&c);
        if (peek(&c) != ':')
            ASEC_FAIL(ASEC_EFORMAT, "%s: header: expected ':' after key at byte %zu",
                      f->path, c.i);
        c.i++;
        skip_spaces(&c);
        if (klen == 5 && memcmp(key, "descr", 5) == 0) {
            if (have_descr++)
                ASEC_FAIL(ASEC_EFORMAT, "%s: duplicate key 'descr' in header", f->path);
            rc = parse_descr(&c, dtype);
        } else if (klen == 13 && memcmp(key, "fortran_order", 13) == 0) {
            if (have_fortran++)
                ASEC_FAIL(ASEC_EFORMAT, "%s: duplicate key 'fortran_order' in header",
                          f->path);
            rc = parse_bool(&c, fortran);
        } else if (klen == 5 && memcmp(key, "shape", 5) == 0) {
            if (have_shape++)
                ASEC_FAIL(ASEC_EFORMAT, "%s: duplicate key 'shape' in header", f->path);
            rc = parse_shape(&c, shape, ndim);
        } else {
            ASEC_FAIL(ASEC_EFORMAT,
                      "%s: unknown key '%.*s' in header (only descr, "
                      "fortran_order, shape)",
                      f->path, (int)(klen < 40 ? klen : 40), key);
        }
        if (rc != ASEC_OK)
            return rc;
        skip_spaces(&c);
        if (peek(&c) == ',') {
            c.i++;
            continue;
        }
        if (peek(&c) != '}')
            ASEC_FAIL(ASEC_EFORMAT, "%s: header: expected ',' or '}' at byte %zu",
                      f->path, c.i);
    }
    c.i++; // '}'
    skip_spaces(&c);
    if (c.i != c.n)
        ASEC_FAIL(ASEC_EFORMAT, "%s: header: unexpected text after the dict at byte %zu",
                  f->path, c.i);
    if (!have_descr)
        ASEC_FAIL(ASEC_EFORMAT, "%s: header has no 'descr' key", f->path);
    if (!have_fortran)
        ASEC_FAIL(ASEC_EFORMAT, "%s: header has no 'fortran_order' key", f->path);
    if (!have_shape)
        ASEC_FAIL(ASEC_EFORMAT, "%s: header has no 'shape' key", f->path);
    return ASEC_OK;
}

int
asec_io__npy_parse(asec_io_file *f)
{
    unsigned char pre[12];
    const char *path = f->path;
    size_t size = f->info.file_bytes, plen, hlen, nelem = 1, nbytes, avail, ndim = 0;
    size_t shape[ASEC_IO_MAX_NDIM];
    char *hdr = NULL, sbuf[96];
    asec_io_dtype dtype = ASEC_IO_F64;
    int major, minor, fortran = 0, rc;

    if (size < 10)
        ASEC_FAIL(ASEC_EFORMAT,
                  "%s: file size %zu is shorter than the 10-byte .npy "
                  "prefix (truncated)",
                  path, size);
    ASEC_TRY(asec_io__pread(f, 0, pre, 10));
    if (memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        ASEC_FAIL(ASEC_EFORMAT, "%s: bad magic (not a .npy file: expected \\x93NUMPY)",
                  path);
    major = pre[6];
    minor = pre[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        ASEC_FAIL(ASEC_EFORMAT,
                  "%s: unsupported .npy version %d.%d (1.0, 2.0 and 3.0 "
                  "are read)",
                  path, major, minor);
    if (major == 1) {
        plen = 10;
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else {
        plen = 12;
        if (size < plen)
            ASEC_FAIL(ASEC_EFORMAT,
                      "%s: file size %zu is shorter than the 12-byte .npy "
                      "v%d.0 prefix (truncated)",
                      path, size, major);
        ASEC_TRY(asec_io__pread(f, 10, pre + 10, 2));
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
               (size_t)pre[11] << 24;
    }
    /* Validate the declared length against the file and the caps before
     * reading or allocating anything (mlx #3365, libnpy #44). */
    if (hlen > size - plen)
        ASEC_FAIL(ASEC_EFORMAT, "%s: header_len %zu exceeds file size %zu", path, hlen,
                  size);
    if (hlen > ASEC_IO_NPY_HEADER_HARD_MAX)
        ASEC_FAIL(ASEC_ELIMIT, "%s: header_len %zu exceeds the hard maximum %d", path,
                  hlen, ASEC_IO_NPY_HEADER_HARD_MAX);
    if (hlen > f->opts.max_npy_header)
        ASEC_FAIL(ASEC_ELIMIT,
                  "%s: header_len %zu exceeds the cap of %zu bytes "
                  "(max_npy_header)",
                  path, hlen, f->opts.max_npy_header);
    if (hlen == 0)
        ASEC_FAIL(ASEC_EFORMAT, "%s: header_len is 0 (empty header)", path);
    hdr = asec__malloc(hlen);
    if (hdr == NULL)
        return ASEC_ENOMEM;
    rc = asec_io__pread(f, plen, hdr, hlen);
    if (rc != ASEC_OK)
        goto fail;
    if (hdr[hlen - 1] != '\n')
        ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT, "%s: header does not end with a newline",
                       path);
    for (size_t k = 0; k + 1 < hlen; k++) {
        unsigned char ch = (unsigned char)hdr[k];

        if (ch < 0x20 || ch > 0x7e)
            ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT,
                           "%s: header byte %zu is 0x%02x (only "
                           "printable ASCII is accepted)",
                           path, k, ch);
    }
    rc = parse_header(f, hdr, hlen, &dtype, &fortran, shape, &ndim);
    asec__free(hdr);
    hdr = NULL;
    if (rc != ASEC_OK)
        return rc;

    /* Checked sizes; the data must fill the rest of the file exactly. */
    for (size_t k = 0; k < ndim; k++)
        if (asec__mul_size(nelem, shape[k], &nelem) != 0)
            ASEC_FAIL(ASEC_EFORMAT, "%s: shape %s: element count overflows", path,
                      shape_str(sbuf, sizeof sbuf, ndim, shape));
    if (asec__mul_size(nelem, asec_io_dtype_size(dtype), &nbytes) != 0)
        ASEC_FAIL(ASEC_EFORMAT, "%s: shape %s of %s: byte size overflows", path,
                  shape_str(sbuf, sizeof sbuf, ndim, shape), asec_io_dtype_descr(dtype));
    avail = size - plen - hlen;
    if (nbytes > avail)
        ASEC_FAIL(ASEC_EFORMAT,
                  "%s: data is %zu bytes but shape %s of %s needs %zu "
                  "(data short)",
                  path, avail, shape_str(sbuf, sizeof sbuf, ndim, shape),
                  asec_io_dtype_descr(dtype), nbytes);
    if (nbytes < avail)
        ASEC_FAIL(ASEC_EFORMAT,
                  "%s: %zu trailing bytes after the data (shape %s of %s "
                  "needs %zu)",
                  path, avail - nbytes, shape_str(sbuf, sizeof sbuf, ndim, shape),
                  asec_io_dtype_descr(dtype), nbytes);
    if (nbytes > f->opts.max_tensor_bytes)
        ASEC_FAIL(ASEC_ELIMIT, "%s: tensor of %zu bytes exceeds max_tensor_bytes %zu",
                  path, nbytes, f->opts.max_tensor_bytes);

    f->tensors = asec__calloc(1, sizeof *f->tensors);
    if (f->tensors == NULL)
        return ASEC_ENOMEM;
    f->shapes = asec__calloc(ndim, sizeof *f->shapes);
    if (f->shapes == NULL)
        return ASEC_ENOMEM; // f->tensors is freed with f
    memcpy(f->shapes, shape, ndim * sizeof *shape);
    f->info.ntensors = 1;
    f->info.version_major = major;
    f->info.version_minor = minor;
    f->info.fortran_order = fortran;
    f->info.header_bytes = hlen;
    f->info.data_offset = plen + hlen;
    f->tensors[0].name = "";
    f->tensors[0].dtype = dtype;
    f->tensors[0].ndim = ndim;
    f->tensors[0].shape = f->shapes;
    f->tensors[0].nelem = nelem;
    f->tensors[0].nbytes = nbytes;
    f->tensors[0].offset = plen + hlen;
    return ASEC_OK;

fail:
    asec__free(hdr);
    return rc;
}

/* ------------------------------------------------------------- writer */

/* Check that every value is representable before a file is created. */
static int
check_values(const char *path, const char *who, const double *data, size_t nelem,
             asec_io_dtype dtype)
{
    unsigned char scratch[8];

    if (asec_io_dtype_is_float(dtype))
        return ASEC_OK; // every double rounds to some value
    for (size_t i = 0; i < nelem; i++) {
        if (asec_io_encode(scratch, dtype, data[i]) != ASEC_OK) {
            char why[160];

            snprintf(why, sizeof why, "%s", asec_errmsg());
            ASEC_FAIL(ASEC_EINVAL, "%s: %selement %zu: %s", path, who, i, why);
        }
    }
    return ASEC_OK;
}

int
asec_io__write_values(asec_afile *af, unsigned char *buf, const double *data,
                      size_t nelem, asec_io_dtype dtype)
{
    size_t isz = asec_io_dtype_size(dtype), per = WRITE_CHUNK / isz;

    for (size_t done = 0; done < nelem;) {
        size_t n = nelem - done < per ? nelem - done : per;

        for (size_t k = 0; k < n; k++)
            if (asec_io_encode(buf + k * isz, dtype, data[done + k]) != ASEC_OK)
                return ASEC_EINVAL; // excluded by check_values()
        ASEC_TRY(asec_afile_write(af, buf, n * isz));
        done += n;
    }
    return ASEC_OK;
}

int
asec_io__check_write_shape(const char *path, const char *who, size_t ndim,
                           const size_t *shape, const double *data, asec_io_dtype dtype,
                           size_t *nelem_out)
{
    static const asec_io_options defaults = ASEC_IO_OPTIONS_INIT;
    size_t nelem = 1, nbytes;

    if (asec_io_dtype_size(dtype) == 0)
        ASEC_FAIL(ASEC_EINVAL, "%s: %sunknown dtype %d", path, who, (int)dtype);
    if (ndim > ASEC_IO_MAX_NDIM)
        ASEC_FAIL(ASEC_EINVAL, "%s: %sndim %zu exceeds %d", path, who, ndim,
                  ASEC_IO_MAX_NDIM);
    if (ndim > 0 && shape == NULL)
        ASEC_FAIL(ASEC_EINVAL, "%s: %sshape is NULL with ndim %zu", path, who, ndim);
    for (size_t k = 0; k < ndim; k++) {
        if (shape[k] > (size_t)INT64_MAX)
            ASEC_FAIL(ASEC_EINVAL, "%s: %sdimension %zu is above 2^63 - 1", path, who, k);
        if (asec__mul_size(nelem, shape[k], &nelem) != 0)
            ASEC_FAIL(ASEC_ENOMEM, "%s: %selement count overflows size_t", path, who);
    }
    if (asec__mul_size(nelem, asec_io_dtype_size(dtype), &nbytes) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "%s: %sbyte size overflows size_t", path, who);
    /* Write nothing the reader refuses with its defaults: max_tensor_bytes
     * bounds both the bytes in the file and the doubles they load into. */
    if (nbytes > defaults.max_tensor_bytes || nelem > defaults.max_tensor_bytes / 8)
        ASEC_FAIL(ASEC_EINVAL, "%s: %s%zu elements of %s exceed max_tensor_bytes %zu",
                  path, who, nelem, asec_io_dtype_name(dtype), defaults.max_tensor_bytes);
    if (nelem > 0 && data == NULL)
        ASEC_FAIL(ASEC_EINVAL, "%s: %sdata is NULL for %zu elements", path, who, nelem);
    *nelem_out = nelem;
    return check_values(path, who, data, nelem, dtype);
}

int
asec_io_npy_write(const char *path, const double *data, size_t ndim, const size_t *shape,
                  asec_io_dtype dtype)
{
    char hdr[2048];
    unsigned char pre[10];
    unsigned char *buf = NULL;
    asec_afile *af = NULL;
    size_t nelem, len = 0, hlen, pad;
    const char *descr = asec_io_dtype_descr(dtype);
    int rc;

    if (asec_io_dtype_size(dtype) != 0 && descr == NULL)
        ASEC_FAIL(ASEC_EINVAL, "%s: %s has no .npy dtype code", path,
                  asec_io_dtype_name(dtype));
    ASEC_TRY(asec_io__check_write_shape(path, "", ndim, shape, data, dtype, &nelem));

    /* The header exactly as NumPy 1.24 writes it: sorted keys, the shape's
     * repr, spare spaces for growing axis 0, then spaces and '\n' so the
     * data starts at a multiple of 64. */
    len = (size_t)snprintf(hdr, sizeof hdr,
                           "{'descr': '%s', 'fortran_order': False, "
                           "'shape': ",
                           descr);
    if (asec_io__shape_repr(hdr, sizeof hdr, &len, ndim, shape) != 0)
        ASEC_FAIL(ASEC_EINTERNAL, "%s: header does not fit", path);
    len += (size_t)snprintf(hdr + len, sizeof hdr - len, ", }");
    if (ndim > 0) {
        char d0[24];
        size_t w = (size_t)snprintf(d0, sizeof d0, "%zu", shape[0]);

        for (size_t k = w; k < NPY_GROWTH_DIGITS; k++)
            hdr[len++] = ' ';
    }
    hlen = len + 1;
    pad = NPY_ALIGN - (NPY_MAGIC_LEN + 4 + hlen) % NPY_ALIGN;
    ASEC_ASSERT(len + pad + 1 <= sizeof hdr);
    memset(hdr + len, ' ', pad);
    len += pad;
    hdr[len++] = '\n';
    memcpy(pre, NPY_MAGIC, NPY_MAGIC_LEN);
    pre[6] = 1;
    pre[7] = 0;
    asec_io__put_le16(pre + 8, (uint16_t)len);

    buf = asec__malloc(WRITE_CHUNK);
    if (buf == NULL)
        return ASEC_ENOMEM;
    rc = asec_afile_open(&af, path);
    if (rc != ASEC_OK)
        goto fail;
    rc = asec_afile_write(af, pre, sizeof pre);
    if (rc == ASEC_OK)
        rc = asec_afile_write(af, hdr, len);
    if (rc == ASEC_OK)
        rc = asec_io__write_values(af, buf, data, nelem, dtype);
    if (rc != ASEC_OK)
        goto fail;
    rc = asec_afile_commit(af);
    af = NULL;
    asec__free(buf);
    return rc;

fail:
    asec_afile_abort(af);
    asec__free(buf);
    return rc;
}
