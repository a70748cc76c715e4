/* fuzz_io.c - the checks fuzz_npy and fuzz_safetensors run on one input.
 *
 * The library's answer is compared with what the input bytes say,
 * recomputed here independently of src/io.c:
 *
 *   - a failure has an allowed status and a one-line message naming the
 *     file, and every load mode fails the same way when the header does;
 *   - an accepted file is described consistently: element counts and byte
 *     sizes match the shapes, the tensors cover the data section exactly
 *     and contiguously, names are unique and found by asec_io_file_find(),
 *     metadata keys are unique and found by asec_io_file_meta_get();
 *   - each tensor loads (RAW and DOUBLE) with exactly the status its bytes
 *     call for (a BOOL byte above 1, an I64/U64 value a double cannot hold,
 *     NaN/Inf under the default policy) and, when it loads, with the values
 *     decoded here from the file bytes, .npy Fortran order transposed;
 *   - opening with ASEC_IO_AUTO picks the format by the magic.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "fuzz.h"
#include "fuzz_io.h"

#define HEADER_FAILS (fuzz_bit(ASEC_EFORMAT) | fuzz_bit(ASEC_ELIMIT))
#define LOAD_FAILS                                                                       \
    (fuzz_bit(ASEC_EFORMAT) | fuzz_bit(ASEC_ELIMIT) | fuzz_bit(ASEC_ENUMERIC))

static uint64_t
le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Is the integer held by the element at p exactly a double? */
static int
int64_exact(const unsigned char *p, asec_io_dtype dtype)
{
    uint64_t u = le64(p);

    if (dtype == ASEC_IO_U64) {
        double d = (double)u;

        return d < 18446744073709551616.0 && (uint64_t)d == u;
    } else {
        int64_t v = (int64_t)u;
        double d = (double)v;

        return d < 9223372036854775808.0 && (int64_t)d == v;
    }
}

/* The file position (in elements) of the tensor's C-order element c: the
 * identity, except for a .npy file in Fortran order, where the first index
 * moves fastest in the file. */
static size_t
file_index(const asec_io_tensor *t, int fortran, size_t c)
{
    size_t pos = 0, stride = 1, idx[ASEC_IO_MAX_NDIM];

    if (!fortran || t->ndim < 2)
        return c;
    for (size_t k = t->ndim; k-- > 0;) {
        idx[k] = c % t->shape[k];
        c /= t->shape[k];
    }
    for (size_t k = 0; k < t->ndim; k++) {
        pos += idx[k] * stride;
        stride *= t->shape[k];
    }
    return pos;
}

/* The status a load of t must give, from its bytes: EFORMAT for a BOOL
 * byte other than 0/1, ELIMIT (DOUBLE only) for an I64/U64 value a double
 * cannot hold, ENUMERIC for NaN/Inf unless allowed, else OK. */
static int
expected_load(const uint8_t *data, const asec_io_tensor *t, asec_io_load load,
              int allow_nonfinite)
{
    size_t isz = asec_io_dtype_size(t->dtype);
    int nonfinite = 0;

    for (size_t s = 0; s < t->nelem; s++) {
        const unsigned char *p = data + t->offset + s * isz;

        if (t->dtype == ASEC_IO_BOOL && p[0] > 1)
            return ASEC_EFORMAT;
        if (load == ASEC_IO_LOAD_DOUBLE &&
            (t->dtype == ASEC_IO_I64 || t->dtype == ASEC_IO_U64) &&
            !int64_exact(p, t->dtype))
            return ASEC_ELIMIT;
        if (asec_io_dtype_is_float(t->dtype) && !isfinite(fuzz_decode(p, t->dtype)))
            nonfinite = 1;
    }
    return nonfinite && !allow_nonfinite ? ASEC_ENUMERIC : ASEC_OK;
}

/* Compare a loaded tensor with the file bytes. */
static void
check_loaded(const uint8_t *data, const asec_io_tensor *t, int fortran, asec_io_load load)
{
    size_t isz = asec_io_dtype_size(t->dtype), nan = 0, inf = 0;

    if (load == ASEC_IO_LOAD_DOUBLE) {
        FUZZ_CHECK(t->raw == NULL);
        FUZZ_CHECK(t->nelem == 0 || t->data != NULL);
    } else {
        FUZZ_CHECK(t->data == NULL);
        FUZZ_CHECK(t->nbytes == 0 || t->raw != NULL);
    }
    for (size_t c = 0; c < t->nelem; c++) {
        const unsigned char *p = data + t->offset + file_index(t, fortran, c) * isz;
        double want = fuzz_decode(p, t->dtype);

        if (isnan(want))
            nan++;
        else if (isinf(want))
            inf++;
        if (load == ASEC_IO_LOAD_DOUBLE) {
            if (!fuzz_same_double(t->data[c], want))
                fuzz_bug("tensor '%s' element %zu: loaded %.17g, file holds %.17g",
                         t->name, c, t->data[c], want);
        } else if (memcmp(t->raw + c * isz, p, isz) != 0) {
            fuzz_bug("tensor '%s' element %zu: raw bytes differ from the file", t->name,
                     c);
        }
    }
    if (t->n_nan != nan || t->n_inf != inf)
        fuzz_bug("tensor '%s': counted %zu NaN %zu Inf, library says %zu %zu", t->name,
                 nan, inf, t->n_nan, t->n_inf);
}

/* The structure of an accepted file. */
static void
check_structure(const asec_io_file *f, const uint8_t *data, size_t size,
                asec_io_format format)
{
    asec_io_info info;
    size_t at;

    asec_io_file_info(f, &info);
    FUZZ_CHECK(info.format == format);
    FUZZ_CHECK(info.file_bytes == size);
    FUZZ_CHECK(info.data_offset <= size);
    if (format == ASEC_IO_NPY) {
        size_t prefix = info.version_major == 1 ? 10 : 12;

        FUZZ_CHECK(size >= 10 && memcmp(data, "\x93NUMPY", 6) == 0);
        FUZZ_CHECK(info.version_major >= 1 && info.version_major <= 3);
        FUZZ_CHECK(info.version_minor == 0);
        FUZZ_CHECK(data[6] == info.version_major && data[7] == 0);
        FUZZ_CHECK(info.header_bytes >= 1 && info.header_bytes <= 10000);
        FUZZ_CHECK(info.data_offset == prefix + info.header_bytes);
        FUZZ_CHECK(data[info.data_offset - 1] == '\n');
        FUZZ_CHECK(info.ntensors == 1 && info.nmeta == 0);
    } else {
        FUZZ_CHECK(size >= 8);
        FUZZ_CHECK(le64(data) == info.header_bytes);
        FUZZ_CHECK(info.header_bytes >= 2 && info.header_bytes <= ((size_t)16 << 20));
        FUZZ_CHECK(info.data_offset == 8 + info.header_bytes);
        FUZZ_CHECK(data[8] == '{');
        FUZZ_CHECK(info.fortran_order == 0);
        FUZZ_CHECK(info.ntensors <= 100000);
    }

    /* Tensors: consistent sizes, contiguous offsets covering the data. */
    at = info.data_offset;
    for (size_t i = 0; i < info.ntensors; i++) {
        const asec_io_tensor *t = asec_io_file_tensor(f, i), *u;
        size_t nelem = 1, nbytes, idx = (size_t)-1;

        FUZZ_CHECK(t != NULL && t->name != NULL);
        FUZZ_CHECK(t->ndim == 0 || t->shape != NULL);
        FUZZ_CHECK((unsigned)t->dtype < ASEC_IO_NDTYPES);
        FUZZ_CHECK(t->ndim <= ASEC_IO_MAX_NDIM);
        for (size_t k = 0; k < t->ndim; k++)
            FUZZ_CHECK(!__builtin_mul_overflow(nelem, t->shape[k], &nelem));
        FUZZ_CHECK(t->nelem == nelem);
        FUZZ_CHECK(!__builtin_mul_overflow(nelem, asec_io_dtype_size(t->dtype), &nbytes));
        FUZZ_CHECK(t->nbytes == nbytes);
        if (t->offset != at)
            fuzz_bug("tensor %zu starts at %zu, previous data ends at %zu", i, t->offset,
                     at);
        at += t->nbytes;
        FUZZ_CHECK(at <= size);
        FUZZ_CHECK(t->data == NULL && t->raw == NULL);
        if (format == ASEC_IO_NPY) {
            FUZZ_CHECK(t->name[0] == '\0');
            FUZZ_CHECK(t->dtype != ASEC_IO_BF16);
        } else {
            FUZZ_CHECK(t->name[0] != '\0' && strlen(t->name) <= 1024);
            FUZZ_CHECK(strcmp(t->name, "__metadata__") != 0);
        }
        u = asec_io_file_find(f, t->name, &idx);
        if (u != t || idx != i)
            fuzz_bug("asec_io_file_find('%s') gives index %zu, the tensor is %zu",
                     t->name, idx, i);
    }
    if (at != size)
        fuzz_bug("tensors end at %zu, the file at %zu", at, size);
    FUZZ_CHECK(asec_io_file_tensor(f, info.ntensors) == NULL);

    /* Metadata: unique keys, found by meta_get. */
    for (size_t j = 0; j < info.nmeta; j++) {
        const char *key = NULL, *value = NULL;

        FUZZ_CHECK(asec_io_file_meta(f, j, &key, &value) == ASEC_OK);
        FUZZ_CHECK(key != NULL && value != NULL);
        if (asec_io_file_meta_get(f, key) != value)
            fuzz_bug("metadata key %zu is not unique or not found", j);
    }
    {
        const char *key, *value;

        FUZZ_CHECK(asec_io_file_meta(f, info.nmeta, &key, &value) == ASEC_EINVAL);
    }
}

void
fuzz_io_check(const uint8_t *data, size_t size, asec_io_format format)
{
    const char *path = fuzz_put_file(data, size);
    asec_io_options lax = ASEC_IO_OPTIONS_INIT;
    asec_io_file *f = NULL, *g = NULL;
    asec_io_info info;
    char msg[512];
    int rc, rc2, want_all = ASEC_OK, fortran;

    lax.allow_nonfinite = 1;
    rc = asec_io_open(&f, path, format, ASEC_IO_LOAD_HEADER, &lax);

    /* ASEC_IO_AUTO: a file without a known extension goes by the magic. */
    {
        asec_io_format by_magic = size >= 6 && memcmp(data, "\x93NUMPY", 6) == 0
                                      ? ASEC_IO_NPY
                                      : ASEC_IO_SAFETENSORS;

        if (by_magic == format) {
            snprintf(msg, sizeof msg, "%s", asec_errmsg());
            rc2 = asec_io_open(&g, path, ASEC_IO_AUTO, ASEC_IO_LOAD_HEADER, &lax);
            if (rc2 != rc || (rc != ASEC_OK && strcmp(msg, asec_errmsg()) != 0))
                fuzz_bug("ASEC_IO_AUTO gives %d, the format by magic %d", rc2, rc);
            asec_io_file_free(g);
            g = NULL;
        }
    }

    if (rc != ASEC_OK) {
        FUZZ_CHECK(f == NULL);
        fuzz_check_failure(rc, HEADER_FAILS, path, "open (header)");
        snprintf(msg, sizeof msg, "%s", asec_errmsg());
        /* A broken header fails every load mode in the same way. */
        for (int load = ASEC_IO_LOAD_DOUBLE; load <= ASEC_IO_LOAD_RAW; load++) {
            rc2 = asec_io_open(&g, path, format, (asec_io_load)load, NULL);
            if (rc2 != rc || g != NULL || strcmp(msg, asec_errmsg()) != 0)
                fuzz_bug("load %d: status %d '%s', header-only open gave %d '%s'", load,
                         rc2, asec_errmsg(), rc, msg);
        }
        return;
    }

    check_structure(f, data, size, format);
    asec_io_file_info(f, &info);
    fortran = format == ASEC_IO_NPY && info.fortran_order;

    /* Each tensor, both modes, through asec_io_file_load(). */
    for (size_t i = 0; i < info.ntensors; i++) {
        const asec_io_tensor *t = asec_io_file_tensor(f, i);

        for (int load = ASEC_IO_LOAD_DOUBLE; load <= ASEC_IO_LOAD_RAW; load++) {
            int want = expected_load(data, t, (asec_io_load)load, 1);

            rc = asec_io_file_load(f, i, (asec_io_load)load);
            if (rc != want)
                fuzz_bug("tensor %zu load %d: status %d (%s), the bytes call for %d", i,
                         load, rc, asec_errmsg(), want);
            if (rc == ASEC_OK)
                check_loaded(data, t, fortran, (asec_io_load)load);
            else {
                fuzz_check_failure(rc, LOAD_FAILS, path, "load");
                FUZZ_CHECK(t->data == NULL && t->raw == NULL);
            }
            asec_io_file_unload(f, i);
            FUZZ_CHECK(t->data == NULL && t->raw == NULL);
        }
        if (want_all == ASEC_OK)
            want_all = expected_load(data, t, ASEC_IO_LOAD_DOUBLE, 0);
    }
    asec_io_file_free(f);

    /* The whole file at once under the default (strict) options: the
     * first tensor in file order that fails decides. */
    rc = asec_io_open(&g, path, format, ASEC_IO_LOAD_DOUBLE, NULL);
    if (rc != want_all)
        fuzz_bug("open (double, defaults): status %d (%s), the bytes call for %d", rc,
                 asec_errmsg(), want_all);
    if (rc == ASEC_OK) {
        for (size_t i = 0; i < info.ntensors; i++)
            check_loaded(data, asec_io_file_tensor(g, i), fortran, ASEC_IO_LOAD_DOUBLE);
    } else {
        FUZZ_CHECK(g == NULL);
        fuzz_check_failure(rc, LOAD_FAILS, path, "open (double)");
    }
    asec_io_file_free(g);
}
