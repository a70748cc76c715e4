/* fuzz_npy_roundtrip.c - differential harness for the .npy and safetensors
 * writers: structured input -> write -> read back -> compare.
 *
 * Input layout (all fields optional: missing bytes read as 0):
 *
 *   byte 0      bits 0-3: dtype (mod 13); bit 4: 0 .npy, 1 safetensors;
 *               bits 5-7: ndim (0..7)
 *   ndim bytes  each dimension, mod 5 (so at most 4^7 elements)
 *   safetensors only:
 *     2 bytes   tensor name length (LE, mod 1100), then the name bytes
 *     1 byte    bit 0: write one metadata entry; then
 *     2 bytes   key length (LE, mod 1100), key bytes,
 *     2 bytes   value length (LE, mod 1100), value bytes
 *   the rest    element bytes, used cyclically, item-size bytes per element
 *
 * Element values: the item's little-endian bytes decoded as the dtype, with
 * I64 and U64 kept within +-2^52 and BOOL reduced to its low bit, so that
 * every value is representable.  Names and metadata stop at a NUL byte.
 *
 * What must hold: the writer refuses exactly the inputs its contract
 * refuses (BF16 in .npy; an empty, over-long, reserved or non-UTF-8 name;
 * a non-UTF-8 or over-long metadata key, or a non-UTF-8 value) and then
 * leaves no file behind; what it accepts reads back (asec_io_open, strict
 * and allow_nonfinite) with the same dtype, shape, name, metadata, values
 * (bit for bit; NaN as NaN) and raw bytes.
 */
#include "config.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attnsec/attnsec.h"
#include "fuzz.h"

#define MAX_TEXT 1100

static const char *dir;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup("fuzz_npy_roundtrip");
    return 0;
}

/* A cursor over the input; reading past the end gives zeros. */
struct cur {
    const uint8_t *p;
    size_t n, at;
};

static unsigned
byte(struct cur *c)
{
    return c->at < c->n ? c->p[c->at++] : 0u;
}

/* A length-prefixed field as a NUL-terminated string in buf (at most
 * MAX_TEXT bytes; the string stops at the first NUL byte of the field). */
static void
text(struct cur *c, char *buf)
{
    size_t lo = byte(c), hi = byte(c), len = (lo | hi << 8) % MAX_TEXT, k = 0;
    int stop = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned b = byte(c);

        stop |= b == 0;
        if (!stop)
            buf[k++] = (char)b;
    }
    buf[k] = '\0';
}

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above
 * U+10FFFF. */
static int
valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        unsigned c = *p, need, min;
        unsigned long cp;

        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1, min = 0x80, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2, min = 0x800, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return 0;
        }
        for (unsigned i = 1; i <= need; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += need + 1;
    }
    return 1;
}

/* The value of one element from its input bytes (see the top comment),
 * and its expected little-endian encoding in the file. */
static double
element(const unsigned char *in, asec_io_dtype dtype, unsigned char *enc)
{
    size_t isz = asec_io_dtype_size(dtype);
    uint64_t u = 0;
    double v;

    for (size_t i = isz; i-- > 0;)
        u = (u << 8) | in[i];
    if (dtype == ASEC_IO_I64) {
        int64_t s = (int64_t)(u << 11) / 2048; // sign-extend 53 bits: |s| <= 2^52
        u = (uint64_t)s;
        v = (double)s;
    } else if (dtype == ASEC_IO_U64) {
        u &= ((uint64_t)1 << 52) - 1;
        v = (double)u;
    } else if (dtype == ASEC_IO_BOOL) {
        u &= 1;
        v = (double)u;
    } else {
        v = fuzz_decode(in, dtype);
    }
    for (size_t i = 0; i < isz; i++)
        enc[i] = (unsigned char)(u >> (8 * i));
    return v;
}

static void
check_no_files(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    FUZZ_CHECK(d != NULL);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            fuzz_bug("a refused write left '%s' behind", e->d_name);
    closedir(d);
}

/* Read path back and compare with what was written. */
static void
check_read(const char *path, asec_io_format format, asec_io_dtype dtype, size_t ndim,
           const size_t *shape, size_t nelem, const double *vals,
           const unsigned char *enc, const char *name, const char *key, const char *value)
{
    asec_io_options lax = ASEC_IO_OPTIONS_INIT;
    size_t isz = asec_io_dtype_size(dtype), nonfinite = 0;
    int rc;

    lax.allow_nonfinite = 1;
    for (size_t i = 0; i < nelem; i++)
        nonfinite += !isfinite(vals[i]);
    for (int pass = 0; pass < 3; pass++) {
        asec_io_load load = pass == 2 ? ASEC_IO_LOAD_RAW : ASEC_IO_LOAD_DOUBLE;
        const asec_io_options *opts = pass == 0 ? NULL : &lax;
        const asec_io_tensor *t;
        asec_io_file *f = NULL;
        asec_io_info info;

        rc = asec_io_open(&f, path, ASEC_IO_AUTO, load, opts);
        if (pass == 0 && nonfinite > 0) {
            if (rc != ASEC_ENUMERIC)
                fuzz_bug("%zu non-finite values written, strict read gives %d (%s)",
                         nonfinite, rc, asec_errmsg());
            continue;
        }
        if (rc != ASEC_OK)
            fuzz_bug("reading back what was written: %d (%s)", rc, asec_errmsg());
        asec_io_file_info(f, &info);
        FUZZ_CHECK(info.format == format);
        FUZZ_CHECK(info.ntensors == 1);
        if (format == ASEC_IO_NPY) {
            FUZZ_CHECK(info.version_major == 1 && !info.fortran_order);
            FUZZ_CHECK(info.data_offset % 64 == 0);
        }
        t = asec_io_file_tensor(f, 0);
        FUZZ_CHECK(t->dtype == dtype && t->ndim == ndim && t->nelem == nelem);
        for (size_t k = 0; k < ndim; k++)
            FUZZ_CHECK(t->shape[k] == shape[k]);
        if (format == ASEC_IO_SAFETENSORS) {
            FUZZ_CHECK(strcmp(t->name, name) == 0);
            if (key != NULL) {
                const char *got = asec_io_file_meta_get(f, key);

                FUZZ_CHECK(info.nmeta == 1);
                if (got == NULL || strcmp(got, value) != 0)
                    fuzz_bug("metadata value does not read back");
            } else {
                FUZZ_CHECK(info.nmeta == 0);
            }
        }
        for (size_t i = 0; i < nelem; i++) {
            if (load == ASEC_IO_LOAD_DOUBLE) {
                if (!fuzz_same_double(t->data[i], vals[i]))
                    fuzz_bug("element %zu: wrote %.17g, read %.17g", i, vals[i],
                             t->data[i]);
            } else if (!isnan(vals[i]) && memcmp(t->raw + i * isz, enc + i * isz, isz)) {
                fuzz_bug("element %zu: raw bytes differ", i);
            }
        }
        asec_io_file_free(f);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cur c = {data, size, 0};
    unsigned head = byte(&c);
    asec_io_dtype dtype = (asec_io_dtype)((head & 15u) % ASEC_IO_NDTYPES);
    asec_io_format format = (head & 16u) ? ASEC_IO_SAFETENSORS : ASEC_IO_NPY;
    size_t ndim = head >> 5, shape[8], nelem = 1, isz = asec_io_dtype_size(dtype);
    char name[MAX_TEXT + 1], key[MAX_TEXT + 1], value[MAX_TEXT + 1], path[512];
    const char *keys[1], *values[1];
    int meta = 0, want_ok, rc;
    const uint8_t *pool;
    size_t npool;
    unsigned char *enc;
    double *vals;

    for (size_t k = 0; k < ndim; k++) {
        shape[k] = byte(&c) % 5;
        nelem *= shape[k];
    }
    name[0] = key[0] = value[0] = '\0';
    if (format == ASEC_IO_SAFETENSORS) {
        text(&c, name);
        meta = byte(&c) & 1;
        if (meta) {
            text(&c, key);
            text(&c, value);
        }
    }
    pool = data + c.at;
    npool = size - (c.at < size ? c.at : size);

    vals = malloc(nelem ? nelem * sizeof *vals : 1);
    enc = malloc(nelem ? nelem * isz : 1);
    FUZZ_CHECK(vals != NULL && enc != NULL);
    for (size_t i = 0; i < nelem; i++) {
        unsigned char in[8] = {0};

        for (size_t b = 0; b < isz && npool > 0; b++)
            in[b] = pool[(i * isz + b) % npool];
        vals[i] = element(in, dtype, enc + i * isz);
    }

    dir = fuzz_scratch();
    snprintf(path, sizeof path, "%s/rt.%s", dir,
             format == ASEC_IO_NPY ? "npy" : "safetensors");
    keys[0] = key;
    values[0] = value;
    if (format == ASEC_IO_NPY) {
        want_ok = dtype != ASEC_IO_BF16;
        rc = asec_io_npy_write(path, vals, ndim, shape, dtype);
    } else {
        asec_io_st_entry e;

        e.name = name;
        e.dtype = dtype;
        e.ndim = ndim;
        e.shape = shape;
        e.data = vals;
        want_ok =
            name[0] != '\0' && strlen(name) <= 1024 &&
            strcmp(name, "__metadata__") != 0 && valid_utf8(name) &&
            (!meta || (valid_utf8(key) && valid_utf8(value) && strlen(key) <= 1024));
        rc = asec_io_st_write(path, &e, 1, keys, values, meta ? 1u : 0u);
    }
    if (want_ok && rc != ASEC_OK)
        fuzz_bug("a valid write failed: %d (%s)", rc, asec_errmsg());
    if (!want_ok) {
        if (rc != ASEC_EINVAL)
            fuzz_bug("an invalid write gave %d (%s), not ASEC_EINVAL", rc, asec_errmsg());
        check_no_files();
    } else {
        check_read(path, format, dtype, ndim, shape, nelem, vals, enc, name,
                   meta ? key : NULL, value);
        FUZZ_CHECK(unlink(path) == 0);
        check_no_files();
    }
    free(vals);
    free(enc);
    fuzz_scratch_remove();
    return 0;
}
