/* io.c - the format-independent half of the strict file readers: options,
 * opening and validating files, tensor lookup, loading tensor data with
 * explicit little-endian decoding, and the element codecs (including
 * binary16 and bfloat16).  The .npy and safetensors header rules live in
 * npy.c and safetensors.c; attnsec-formats(5) lists them all. */
#define _POSIX_C_SOURCE 200809L /* pread, O_CLOEXEC, strdup under -std=c11 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_internal.h"

/* Data is read and decoded in chunks of at most this many bytes, so
 * loading never needs a second tensor-sized buffer. */
#define READ_CHUNK ((size_t)1 << 20)

/* --------------------------------------------------------------- dtypes */

static const struct {
    const char *name;
    const char *descr;
    size_t size;
    int is_float;
} dtypes[ASEC_IO_NDTYPES] = {
    [ASEC_IO_F64] = {"F64", "<f8", 8, 1},   [ASEC_IO_F32] = {"F32", "<f4", 4, 1},
    [ASEC_IO_F16] = {"F16", "<f2", 2, 1},   [ASEC_IO_BF16] = {"BF16", NULL, 2, 1},
    [ASEC_IO_I64] = {"I64", "<i8", 8, 0},   [ASEC_IO_I32] = {"I32", "<i4", 4, 0},
    [ASEC_IO_I16] = {"I16", "<i2", 2, 0},   [ASEC_IO_I8] = {"I8", "|i1", 1, 0},
    [ASEC_IO_U8] = {"U8", "|u1", 1, 0},     [ASEC_IO_U16] = {"U16", "<u2", 2, 0},
    [ASEC_IO_U32] = {"U32", "<u4", 4, 0},   [ASEC_IO_U64] = {"U64", "<u8", 8, 0},
    [ASEC_IO_BOOL] = {"BOOL", "|b1", 1, 0},
};

static int
dtype_ok(asec_io_dtype dtype)
{
    return (int)dtype >= 0 && (int)dtype < ASEC_IO_NDTYPES;
}

const char *
asec_io_dtype_name(asec_io_dtype dtype)
{
    return dtype_ok(dtype) ? dtypes[dtype].name : "?";
}

const char *
asec_io_dtype_descr(asec_io_dtype dtype)
{
    return dtype_ok(dtype) ? dtypes[dtype].descr : NULL;
}

size_t
asec_io_dtype_size(asec_io_dtype dtype)
{
    return dtype_ok(dtype) ? dtypes[dtype].size : 0;
}

int
asec_io_dtype_is_float(asec_io_dtype dtype)
{
    return dtype_ok(dtype) ? dtypes[dtype].is_float : 0;
}

int
asec_io_dtype_parse(asec_io_dtype *out, const char *name)
{
    for (int i = 0; i < ASEC_IO_NDTYPES; i++) {
        if (strcmp(name, dtypes[i].name) == 0) {
            *out = (asec_io_dtype)i;
            return ASEC_OK;
        }
    }
    ASEC_FAIL(ASEC_EINVAL, "unknown dtype '%.32s'", name);
}

/* ------------------------------------------------------- byte order */

void
asec_io__put_le16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)(v >> 8);
}

void
asec_io__put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)((v >> (8 * i)) & 0xff);
}

void
asec_io__put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((v >> (8 * i)) & 0xff);
}

uint64_t
asec_io__get_le64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t
get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint16_t
get_le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static double
bits_to_double(uint64_t u)
{
    double d;

    memcpy(&d, &u, sizeof d);
    return d;
}

static uint64_t
double_to_bits(double d)
{
    uint64_t u;

    memcpy(&u, &d, sizeof u);
    return u;
}

/* --------------------------------------------------- small floats */

/* Decode a binary floating format with ebits exponent bits and mbits
 * fraction bits (binary16: 5/10, bfloat16: 8/7) by building the double's
 * bit pattern directly: exact, and NaN payloads survive. */
static double
small_to_double(uint32_t bits, int ebits, int mbits)
{
    uint64_t sign = (uint64_t)(bits >> (ebits + mbits)) & 1u;
    uint32_t emask = (1u << ebits) - 1u;
    uint32_t e = (bits >> mbits) & emask;
    uint64_t m = bits & ((1u << mbits) - 1u);
    int bias = (1 << (ebits - 1)) - 1;
    uint64_t out;

    if (e == emask) { // Inf or NaN
        out = sign << 63 | (uint64_t)0x7ff << 52 | m << (52 - mbits);
    } else if (e == 0) {
        if (m == 0) {
            out = sign << 63; // signed zero
        } else {
            /* Subnormal: m * 2^(1 - bias - mbits).  Normalise m so its top
             * set bit becomes the implicit bit of the double. */
            int shift = 0;

            while ((m & ((uint64_t)1 << mbits)) == 0) {
                m <<= 1;
                shift++;
            }
            m &= ((uint64_t)1 << mbits) - 1u;
            out = sign << 63 | (uint64_t)(1 - bias - shift + 1023) << 52 |
                  m << (52 - mbits);
        }
    } else {
        out = sign << 63 | (uint64_t)((int)e - bias + 1023) << 52 | m << (52 - mbits);
    }
    return bits_to_double(out);
}

double
asec_io_f16_to_double(uint16_t bits)
{
    return small_to_double(bits, 5, 10);
}

double
asec_io_bf16_to_double(uint16_t bits)
{
    return small_to_double(bits, 8, 7);
}

/* Round a double to the binary format (ebits, mbits), to nearest with
 * ties to even, working on the integer significand so the result does
 * not depend on the FPU rounding mode. */
static uint32_t
double_to_small(double x, int ebits, int mbits)
{
    uint64_t u = double_to_bits(x);
    uint32_t sign = (uint32_t)(u >> 63) << (ebits + mbits);
    int ed = (int)((u >> 52) & 0x7ff);
    uint64_t frac = u & (((uint64_t)1 << 52) - 1u);
    uint32_t emax_field = (1u << ebits) - 1u;
    int bias = (1 << (ebits - 1)) - 1;
    int emin = 1 - bias;
    uint64_t sig, mant, rem, half;
    int e, shift;
    uint32_t field;

    if (ed == 0x7ff) {
        if (frac == 0)
            return sign | emax_field << mbits;                 // +-Inf
        return sign | emax_field << mbits | 1u << (mbits - 1); // quiet NaN
    }
    if (ed == 0)                    // zero or double subnormal: far below
        return sign;                // half the smallest subnormal -> +-0
    sig = frac | (uint64_t)1 << 52; // value = sig * 2^(e - 52)
    e = ed - 1023;
    if (e > bias)
        return sign | emax_field << mbits;
    if (e >= emin) {
        shift = 52 - mbits;
        field = (uint32_t)(e + bias);
    } else {
        shift = 52 - mbits + (emin - e);
        field = 0;
        if (shift > 63)
            return sign;
    }
    mant = sig >> shift;
    rem = sig & (((uint64_t)1 << shift) - 1u);
    half = (uint64_t)1 << (shift - 1);
    if (field != 0)
        mant &= ((uint64_t)1 << mbits) - 1u; // drop the implicit bit
    /* The encoding is monotone, so a carry out of the fraction correctly
     * bumps the exponent, and out of the top exponent gives Inf. */
    uint32_t enc = (field << mbits) + (uint32_t)mant;
    if (rem > half || (rem == half && (mant & 1u) != 0))
        enc++;
    return sign | enc;
}

uint16_t
asec_io_double_to_f16(double x)
{
    return (uint16_t)double_to_small(x, 5, 10);
}

uint16_t
asec_io_double_to_bf16(double x)
{
    return (uint16_t)double_to_small(x, 8, 7);
}

/* ------------------------------------------------- element codecs */

/* |v| as a double is exact iff its significant bits fit in 53. */
static int
u64_exact(uint64_t v)
{
    if (v == 0)
        return 1;
    while ((v & 1u) == 0)
        v >>= 1;
    return v < ((uint64_t)1 << 53);
}

double
asec_io__decode(const unsigned char *p, asec_io_dtype dtype, int *inexact)
{
    uint64_t u;
    float fl;
    uint32_t u32;

    switch (dtype) {
    case ASEC_IO_F64:
        return bits_to_double(asec_io__get_le64(p));
    case ASEC_IO_F32:
        u32 = get_le32(p);
        memcpy(&fl, &u32, sizeof fl);
        return (double)fl;
    case ASEC_IO_F16:
        return asec_io_f16_to_double(get_le16(p));
    case ASEC_IO_BF16:
        return asec_io_bf16_to_double(get_le16(p));
    case ASEC_IO_I64:
        u = asec_io__get_le64(p);
        if ((u >> 63) != 0) {
            uint64_t mag = ~u + 1u; // |v|, also right for INT64_MIN
            if (!u64_exact(mag))
                *inexact = 1;
            return -(double)mag;
        }
        if (!u64_exact(u))
            *inexact = 1;
        return (double)u;
    case ASEC_IO_U64:
        u = asec_io__get_le64(p);
        if (!u64_exact(u))
            *inexact = 1;
        return (double)u;
    case ASEC_IO_I32:
        return (double)(int32_t)get_le32(p);
    case ASEC_IO_U32:
        return (double)get_le32(p);
    case ASEC_IO_I16:
        return (double)(int16_t)get_le16(p);
    case ASEC_IO_U16:
        return (double)get_le16(p);
    case ASEC_IO_I8:
        return (double)(int8_t)p[0];
    case ASEC_IO_U8:
    case ASEC_IO_BOOL:
        return (double)p[0];
    }
    ASEC_ASSERT(0 && "bad dtype");
    return 0.0;
}

int
asec_io_encode(unsigned char *out, asec_io_dtype dtype, double x)
{
    /* Integer ranges as doubles: [lo, hi) with both bounds exact. */
    static const double two63 = 9223372036854775808.0, two64 = 18446744073709551616.0;
    double lo = 0.0, hi = 0.0;
    float fl;
    uint32_t u32;

    switch (dtype) {
    case ASEC_IO_F64:
        asec_io__put_le64(out, double_to_bits(x));
        return ASEC_OK;
    case ASEC_IO_F32:
        fl = (float)x; // round to nearest even; overflow gives +-Inf
        memcpy(&u32, &fl, sizeof u32);
        asec_io__put_le32(out, u32);
        return ASEC_OK;
    case ASEC_IO_F16:
        asec_io__put_le16(out, asec_io_double_to_f16(x));
        return ASEC_OK;
    case ASEC_IO_BF16:
        asec_io__put_le16(out, asec_io_double_to_bf16(x));
        return ASEC_OK;
    case ASEC_IO_I64:
        lo = -two63;
        hi = two63;
        break;
    case ASEC_IO_I32:
        lo = -2147483648.0;
        hi = 2147483648.0;
        break;
    case ASEC_IO_I16:
        lo = -32768.0;
        hi = 32768.0;
        break;
    case ASEC_IO_I8:
        lo = -128.0;
        hi = 128.0;
        break;
    case ASEC_IO_U8:
        hi = 256.0;
        break;
    case ASEC_IO_U16:
        hi = 65536.0;
        break;
    case ASEC_IO_U32:
        hi = 4294967296.0;
        break;
    case ASEC_IO_U64:
        hi = two64;
        break;
    case ASEC_IO_BOOL:
        hi = 2.0;
        break;
    default:
        ASEC_FAIL(ASEC_EINVAL, "unknown dtype %d", (int)dtype);
    }
    if (!(x >= lo && x < hi) || x != floor(x))
        ASEC_FAIL(ASEC_EINVAL, "value %.17g is not representable as %s", x,
                  dtypes[dtype].name);
    if (dtype == ASEC_IO_U64) {
        asec_io__put_le64(out, (uint64_t)x);
    } else {
        int64_t v = (int64_t)x; // in range: checked above
        uint64_t uv = (uint64_t)v;

        for (size_t i = 0; i < dtypes[dtype].size; i++)
            out[i] = (unsigned char)((uv >> (8 * i)) & 0xff);
    }
    return ASEC_OK;
}

/* ---------------------------------------------------------- options */

int
asec_io__options(asec_io_options *out, const asec_io_options *opts)
{
    static const asec_io_options defaults = ASEC_IO_OPTIONS_INIT;

    if (opts == NULL) {
        *out = defaults;
        return ASEC_OK;
    }
    if (opts->version != ASEC_IO_OPTIONS_VERSION)
        ASEC_FAIL(ASEC_EINVAL, "asec_io_options version %u, expected %u", opts->version,
                  ASEC_IO_OPTIONS_VERSION);
    if (opts->max_npy_header < 1 || opts->max_npy_header > ASEC_IO_NPY_HEADER_HARD_MAX)
        ASEC_FAIL(ASEC_EINVAL, "max_npy_header %zu is outside 1..%d",
                  opts->max_npy_header, ASEC_IO_NPY_HEADER_HARD_MAX);
    if (opts->max_st_header < 2 || opts->max_st_header > ASEC_IO_ST_HEADER_HARD_MAX)
        ASEC_FAIL(ASEC_EINVAL, "max_st_header %zu is outside 2..%d", opts->max_st_header,
                  ASEC_IO_ST_HEADER_HARD_MAX);
    if (opts->max_json_depth < 2 || opts->max_json_depth > 1024)
        ASEC_FAIL(ASEC_EINVAL, "max_json_depth %zu is outside 2..1024",
                  opts->max_json_depth);
    if (opts->max_tensors < 1)
        ASEC_FAIL(ASEC_EINVAL, "max_tensors must be at least 1");
    if (opts->max_name_bytes < 1)
        ASEC_FAIL(ASEC_EINVAL, "max_name_bytes must be at least 1");
    *out = *opts;
    return ASEC_OK;
}

/* ------------------------------------------------------------ reading */

int
asec_io__pread(const asec_io_file *f, size_t off, void *buf, size_t n)
{
    unsigned char *p = buf;

    while (n > 0) {
        size_t want = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
        ssize_t got = pread(f->fd, p, want, (off_t)off);

        if (got < 0) {
            if (errno == EINTR)
                continue;
            ASEC_FAIL(ASEC_EIO, "%s: read failed at offset %zu: %s", f->path, off,
                      strerror(errno));
        }
        if (got == 0)
            ASEC_FAIL(ASEC_EIO,
                      "%s: unexpected end of file at offset %zu "
                      "(file changed while reading?)",
                      f->path, off);
        p += got;
        off += (size_t)got;
        n -= (size_t)got;
    }
    return ASEC_OK;
}

int
asec_io__shape_repr(char *buf, size_t cap, size_t *len, size_t ndim, const size_t *shape)
{
    size_t at = *len;
    int w;

    w = snprintf(buf + at, cap > at ? cap - at : 0, "(");
    if (w < 0 || (size_t)w >= cap - at)
        return -1;
    at += (size_t)w;
    for (size_t k = 0; k < ndim; k++) {
        w = snprintf(buf + at, cap - at,
                     k + 1 < ndim ? "%zu, " : (ndim == 1 ? "%zu," : "%zu"), shape[k]);
        if (w < 0 || (size_t)w >= cap - at)
            return -1;
        at += (size_t)w;
    }
    w = snprintf(buf + at, cap - at, ")");
    if (w < 0 || (size_t)w >= cap - at)
        return -1;
    *len = at + (size_t)w;
    return 0;
}

int
asec_io__index_names(asec_io_file *f)
{
    size_t n = f->info.ntensors;
    size_t *tmp;

    f->by_name = asec__calloc(n, sizeof *f->by_name);
    tmp = asec__calloc(n, sizeof *tmp);
    if (f->by_name == NULL || tmp == NULL) {
        asec__free(tmp);
        return ASEC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        f->by_name[i] = i;
    /* Bottom-up merge sort by name (qsort has no context argument, and a
     * static one would not be thread-safe).  Names are unique: duplicate
     * JSON keys are rejected. */
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = n - lo > w ? lo + w : n;
            size_t hi = n - mid > w ? mid + w : n;
            size_t i = lo, j = mid, k = lo;

            while (i < mid && j < hi) {
                if (strcmp(f->tensors[f->by_name[j]].name,
                           f->tensors[f->by_name[i]].name) < 0)
                    tmp[k++] = f->by_name[j++];
                else
                    tmp[k++] = f->by_name[i++];
            }
            while (i < mid)
                tmp[k++] = f->by_name[i++];
            while (j < hi)
                tmp[k++] = f->by_name[j++];
        }
        memcpy(f->by_name, tmp, n * sizeof *tmp);
    }
    asec__free(tmp);
    return ASEC_OK;
}

/* The label that starts a message about tensor t: "x.npy" or
 * "x.safetensors: tensor 'name'", the name escaped by asec__printable()
 * so a message stays on one line. */
static void
tensor_label(char *buf, size_t cap, const asec_io_file *f, const asec_io_tensor *t)
{
    char q[96];

    if (f->info.format == ASEC_IO_NPY)
        snprintf(buf, cap, "%s", f->path);
    else
        snprintf(buf, cap, "%s: tensor '%s'", f->path,
                 asec__printable(q, sizeof q, t->name));
}

void
asec_io_file_unload(asec_io_file *f, size_t i)
{
    asec_io_tensor *t;

    if (i >= f->info.ntensors)
        return;
    t = &f->tensors[i];
    asec__free(t->data);
    asec__free((void *)(uintptr_t)t->raw);
    t->data = NULL;
    t->raw = NULL;
    t->n_nan = 0;
    t->n_inf = 0;
}

int
asec_io_file_load(asec_io_file *f, size_t i, asec_io_load load)
{
    char who[160];
    asec_io_tensor *t;
    size_t isz, dbytes, chunk_elems, done, nan = 0, inf = 0;
    size_t stride[ASEC_IO_MAX_NDIM], count[ASEC_IO_MAX_NDIM], d = 0;
    unsigned char *buf = NULL, *raw = NULL;
    double *data = NULL;
    int fortran, rc = ASEC_OK;
    struct stat st;

    if (i >= f->info.ntensors)
        ASEC_FAIL(ASEC_EINVAL, "%s: tensor index %zu out of range (%zu tensors)", f->path,
                  i, f->info.ntensors);
    if (load != ASEC_IO_LOAD_DOUBLE && load != ASEC_IO_LOAD_RAW)
        ASEC_FAIL(ASEC_EINVAL, "%s: load mode %d is not DOUBLE or RAW", f->path,
                  (int)load);
    if (f->fd < 0)
        ASEC_FAIL(ASEC_EINVAL, "%s: file is closed", f->path);
    asec_io_file_unload(f, i);
    t = &f->tensors[i];
    tensor_label(who, sizeof who, f, t);
    if (fstat(f->fd, &st) != 0)
        ASEC_FAIL(ASEC_EIO, "%s: fstat failed: %s", f->path, strerror(errno));
    if ((uintmax_t)st.st_size != (uintmax_t)f->info.file_bytes)
        ASEC_FAIL(ASEC_EIO,
                  "%s: file size changed from %zu to %jd bytes since it was "
                  "opened",
                  f->path, f->info.file_bytes, (intmax_t)st.st_size);
    isz = asec_io_dtype_size(t->dtype);
    if (load == ASEC_IO_LOAD_DOUBLE) {
        if (asec__mul_size(t->nelem, sizeof(double), &dbytes) != 0 ||
            dbytes > f->opts.max_tensor_bytes)
            ASEC_FAIL(ASEC_ELIMIT,
                      "%s: %zu elements as doubles exceed max_tensor_bytes "
                      "%zu",
                      who, t->nelem, f->opts.max_tensor_bytes);
        data = asec__malloc(dbytes);
        if (data == NULL)
            return ASEC_ENOMEM;
    } else {
        raw = asec__malloc(t->nbytes);
        if (raw == NULL)
            return ASEC_ENOMEM;
    }
    chunk_elems = READ_CHUNK / isz;
    if (chunk_elems > t->nelem)
        chunk_elems = t->nelem;
    buf = asec__malloc(chunk_elems * isz);
    if (buf == NULL) {
        rc = ASEC_ENOMEM;
        goto fail;
    }

    /* Fortran order: source element s walks the index (i0, ..., i_{n-1})
     * with i0 fastest; d is its C-order position, sum_k i_k stride[k]. */
    fortran = f->info.format == ASEC_IO_NPY && f->info.fortran_order && t->ndim > 1;
    if (fortran) {
        size_t s = 1;

        for (size_t k = t->ndim; k-- > 0;) {
            stride[k] = s;
            count[k] = 0;
            s *= t->shape[k]; // <= nelem: cannot overflow
        }
    }
    for (done = 0; done < t->nelem;) {
        size_t n = t->nelem - done < chunk_elems ? t->nelem - done : chunk_elems;

        rc = asec_io__pread(f, t->offset + done * isz, buf, n * isz);
        if (rc != ASEC_OK)
            goto fail;
        for (size_t k = 0; k < n; k++) {
            const unsigned char *p = buf + k * isz;
            size_t s = done + k, at = fortran ? d : s;
            int inexact = 0;
            double v;

            if (t->dtype == ASEC_IO_BOOL && p[0] > 1)
                ASEC_FAIL_GOTO(fail, rc, ASEC_EFORMAT,
                               "%s: BOOL element %zu has byte "
                               "value %u (must be 0 or 1)",
                               who, s, p[0]);
            if (data != NULL || dtypes[t->dtype].is_float) {
                v = asec_io__decode(p, t->dtype, &inexact);
                if (isnan(v))
                    nan++;
                else if (isinf(v))
                    inf++;
                if (data != NULL) {
                    if (inexact)
                        ASEC_FAIL_GOTO(fail, rc, ASEC_ELIMIT,
                                       "%s: %s element %zu is "
                                       "beyond 2^53 and not exactly representable as a "
                                       "double (load it raw)",
                                       who, dtypes[t->dtype].name, s);
                    data[at] = v;
                }
            }
            if (raw != NULL)
                memcpy(raw + at * isz, p, isz);
            if (fortran) {
                /* Advance the odometer: i0 fastest. */
                for (size_t m = 0; m < t->ndim; m++) {
                    d += stride[m];
                    if (++count[m] < t->shape[m])
                        break;
                    d -= stride[m] * t->shape[m];
                    count[m] = 0;
                }
            }
        }
        done += n;
    }
    if ((nan != 0 || inf != 0) && !f->opts.allow_nonfinite)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENUMERIC,
                       "%s: %zu NaN and %zu infinite values "
                       "(non-finite values are not allowed)",
                       who, nan, inf);
    asec__free(buf);
    t->data = data;
    t->raw = raw;
    t->n_nan = nan;
    t->n_inf = inf;
    return ASEC_OK;

fail:
    asec__free(buf);
    asec__free(data);
    asec__free(raw);
    return rc;
}

/* ------------------------------------------------------- open / close */

static int
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int
asec_io_open(asec_io_file **out, const char *path, asec_io_format format,
             asec_io_load load, const asec_io_options *opts)
{
    asec_io_file *f = NULL;
    struct stat st;
    int rc;

    *out = NULL;
    if (format != ASEC_IO_AUTO && format != ASEC_IO_NPY && format != ASEC_IO_SAFETENSORS)
        ASEC_FAIL(ASEC_EINVAL, "%s: unknown format %d", path, (int)format);
    if (load != ASEC_IO_LOAD_HEADER && load != ASEC_IO_LOAD_DOUBLE &&
        load != ASEC_IO_LOAD_RAW)
        ASEC_FAIL(ASEC_EINVAL, "%s: unknown load mode %d", path, (int)load);
    f = asec__calloc(1, sizeof *f);
    if (f == NULL)
        return ASEC_ENOMEM;
    f->fd = -1;
    rc = asec_io__options(&f->opts, opts);
    if (rc != ASEC_OK)
        goto fail;
    f->path = asec__strdup(path);
    if (f->path == NULL) {
        rc = ASEC_ENOMEM;
        goto fail;
    }
    f->fd =
        open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK); // a FIFO must not block
    if (f->fd < 0) {
        int e = errno;

        if (e == ENOENT || e == EACCES || e == ENOTDIR || e == ELOOP ||
            e == ENAMETOOLONG || e == EPERM)
            ASEC_FAIL_GOTO(fail, rc, ASEC_ENOENT, "%s: %s", path, strerror(e));
        ASEC_FAIL_GOTO(fail, rc, ASEC_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    if (fstat(f->fd, &st) != 0)
        ASEC_FAIL_GOTO(fail, rc, ASEC_EIO, "%s: fstat failed: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOENT, "%s: is a directory", path);
    if (!S_ISREG(st.st_mode))
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOENT, "%s: not a regular file", path);
    if (st.st_size < 0 || (uintmax_t)st.st_size > (uintmax_t)SIZE_MAX / 2)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ELIMIT, "%s: file size %jd is too large", path,
                       (intmax_t)st.st_size);
    f->info.file_bytes = (size_t)st.st_size;

    if (format == ASEC_IO_AUTO) {
        if (ends_with(path, ".npy"))
            format = ASEC_IO_NPY;
        else if (ends_with(path, ".safetensors"))
            format = ASEC_IO_SAFETENSORS;
        else {
            unsigned char magic[6];

            format = ASEC_IO_SAFETENSORS;
            if (f->info.file_bytes >= sizeof magic) {
                rc = asec_io__pread(f, 0, magic, sizeof magic);
                if (rc != ASEC_OK)
                    goto fail;
                if (memcmp(magic, "\x93NUMPY", sizeof magic) == 0)
                    format = ASEC_IO_NPY;
            }
        }
    }
    f->info.format = format;
    rc = format == ASEC_IO_NPY ? asec_io__npy_parse(f) : asec_io__st_parse(f);
    if (rc != ASEC_OK)
        goto fail;
    if (f->by_name == NULL) {
        rc = asec_io__index_names(f);
        if (rc != ASEC_OK)
            goto fail;
    }
    if (load != ASEC_IO_LOAD_HEADER) {
        for (size_t i = 0; i < f->info.ntensors; i++) {
            rc = asec_io_file_load(f, i, load);
            if (rc != ASEC_OK)
                goto fail;
        }
    }
    *out = f;
    return ASEC_OK;

fail:
    asec_io_file_free(f);
    return rc;
}

void
asec_io_file_free(asec_io_file *f)
{
    if (f == NULL)
        return;
    if (f->fd >= 0)
        close(f->fd);
    for (size_t i = 0; f->tensors != NULL && i < f->info.ntensors; i++)
        asec_io_file_unload(f, i);
    if (f->names != NULL) {
        for (size_t i = 0; i < f->info.ntensors; i++)
            asec__free(f->names[i]);
        asec__free(f->names);
    }
    if (f->meta_keys != NULL) {
        for (size_t i = 0; i < f->info.nmeta; i++)
            asec__free(f->meta_keys[i]);
        asec__free(f->meta_keys);
    }
    if (f->meta_values != NULL) {
        for (size_t i = 0; i < f->info.nmeta; i++)
            asec__free(f->meta_values[i]);
        asec__free(f->meta_values);
    }
    asec__free(f->tensors);
    asec__free(f->by_name);
    asec__free(f->shapes);
    asec__free(f->path);
    asec__free(f);
}

/* ---------------------------------------------------------- accessors */

void
asec_io_file_info(const asec_io_file *f, asec_io_info *out)
{
    *out = f->info;
}

const asec_io_tensor *
asec_io_file_tensor(const asec_io_file *f, size_t i)
{
    return i < f->info.ntensors ? &f->tensors[i] : NULL;
}

const asec_io_tensor *
asec_io_file_find(const asec_io_file *f, const char *name, size_t *index)
{
    size_t lo = 0, hi = f->info.ntensors;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        size_t i = f->by_name[mid];
        int c = strcmp(name, f->tensors[i].name);

        if (c == 0) {
            if (index != NULL)
                *index = i;
            return &f->tensors[i];
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int
asec_io_file_meta(const asec_io_file *f, size_t i, const char **key, const char **value)
{
    if (i >= f->info.nmeta)
        ASEC_FAIL(ASEC_EINVAL, "%s: metadata index %zu out of range (%zu entries)",
                  f->path, i, f->info.nmeta);
    *key = f->meta_keys[i];
    *value = f->meta_values[i];
    return ASEC_OK;
}

const char *
asec_io_file_meta_get(const asec_io_file *f, const char *key)
{
    for (size_t i = 0; i < f->info.nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    return NULL;
}
