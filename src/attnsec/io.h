/* attnsec/io.h - strict readers and writers for .npy and safetensors files.
 *
 * Arrays, weights, gradients and recovered tensors travel as NumPy .npy
 * files (one array) or safetensors files (named tensors plus string
 * metadata).  Both come from untrusted sources, so the readers accept a
 * documented subset and reject everything else with a one-line message
 * that starts with the file name and names the broken rule, for example
 *
 *     "bad.npy: header_len 70000 exceeds file size 90".
 *
 * The rules and limits are listed in attnsec-formats(5); the security
 * reasoning is in RELIABILITY.md section 5.  In short:
 *
 *   - Every declared length is checked against its cap AND against the
 *     real file size before anything is read or allocated; every size
 *     product is overflow-checked.  A 100-byte file declaring a 1 TiB
 *     tensor is rejected without allocating it.
 *   - The data must cover the file exactly: .npy data bytes equal the file
 *     size minus the data offset; safetensors offsets are contiguous from
 *     0 to the end of the file.  Trailing bytes are an error.
 *   - Values are decoded explicitly from little-endian bytes, never by
 *     casting pointers into the file.
 *
 * Shapes are outermost-first (PyTorch order) and data is row-major (C
 * order).  A .npy file with fortran_order True is transposed on load, so
 * callers always see C order.
 *
 * Values are converted to double on load (ASEC_IO_LOAD_DOUBLE).  The
 * conversion is exact for every dtype except I64 and U64, whose values
 * beyond 2^53 may not be representable: such a value is reported
 * (ASEC_ELIMIT naming the element), never silently rounded.  Callers that
 * need those values load the raw bytes (ASEC_IO_LOAD_RAW) instead.
 *
 * Reading (one API for both formats):
 *
 *     asec_io_file *f;
 *     const asec_io_tensor *t;
 *
 *     if (asec_io_open(&f, "w.safetensors", ASEC_IO_LOAD_DOUBLE, NULL) != ASEC_OK)
 *         fail(asec_errmsg());
 *     t = asec_io_file_find(f, "attn.q.weight");   // NULL if absent
 *     ...  t->data[i * t->shape[1] + j]  ...
 *     asec_io_file_free(f);
 *
 * A .npy file reads as one tensor named "".  Opening with
 * ASEC_IO_LOAD_HEADER validates and describes the file without reading or
 * allocating any tensor data; asec_io_file_load() then loads tensors one
 * at a time.
 *
 * Writing goes through asec_afile(3): a reader never sees a partial file.
 *
 * Thread safety: a handle must not be used by two threads at once;
 * distinct handles are independent.
 */
#ifndef ATTNSEC_IO_H
#define ATTNSEC_IO_H

#include <stddef.h>
#include <stdint.h>

#include <attnsec/common.h>

ASEC_BEGIN_DECLS

/* Hard limits (not configurable). */
#define ASEC_IO_MAX_NDIM 64 /* NumPy 2's limit */
#define ASEC_IO_NPY_HEADER_HARD_MAX 65535
#define ASEC_IO_ST_HEADER_HARD_MAX 100000000 /* the Rust reference's cap */

/* Element types.  The safetensors spelling is asec_io_dtype_name(); the
 * .npy spelling asec_io_dtype_descr().
 *
 *   dtype  bytes  .npy descr  safetensors
 *   F64    8      <f8         F64
 *   F32    4      <f4         F32
 *   F16    2      <f2         F16
 *   BF16   2      (none)      BF16
 *   I64    8      <i8         I64
 *   I32    4      <i4         I32
 *   I16    2      <i2         I16
 *   I8     1      |i1         I8
 *   U8     1      |u1         U8
 *   U16    2      <u2         U16
 *   U32    4      <u4         U32
 *   U64    8      <u8         U64
 *   BOOL   1      |b1         BOOL  (each byte must be 0 or 1)
 */
typedef enum asec_io_dtype {
    ASEC_IO_F64 = 0,
    ASEC_IO_F32,
    ASEC_IO_F16,
    ASEC_IO_BF16,
    ASEC_IO_I64,
    ASEC_IO_I32,
    ASEC_IO_I16,
    ASEC_IO_I8,
    ASEC_IO_U8,
    ASEC_IO_U16,
    ASEC_IO_U32,
    ASEC_IO_U64,
    ASEC_IO_BOOL
} asec_io_dtype;

#define ASEC_IO_NDTYPES 13

typedef enum asec_io_format {
    ASEC_IO_AUTO = 0, /* asec_io_open(): decide from the name and magic */
    ASEC_IO_NPY = 1,
    ASEC_IO_SAFETENSORS = 2
} asec_io_format;

/* What to read when a file is opened or a tensor loaded. */
typedef enum asec_io_load {
    ASEC_IO_LOAD_HEADER = 0, /* validate and describe; read no tensor data */
    ASEC_IO_LOAD_DOUBLE = 1, /* t->data: nelem doubles, exact (see above) */
    ASEC_IO_LOAD_RAW = 2     /* t->raw: nbytes little-endian bytes, C order */
} asec_io_load;

/* Reader options.  Start from ASEC_IO_OPTIONS_INIT and change fields; a
 * NULL options pointer means the defaults.  Every cap is checked before
 * the memory it guards is allocated. */
typedef struct asec_io_options {
    unsigned int version;    /* ASEC_IO_OPTIONS_VERSION */
    size_t max_npy_header;   /* .npy header_len cap; default 10000 (NumPy's
                                own); 1..ASEC_IO_NPY_HEADER_HARD_MAX */
    size_t max_st_header;    /* safetensors header cap; default 16 MiB;
                                2..ASEC_IO_ST_HEADER_HARD_MAX */
    size_t max_tensor_bytes; /* per tensor, both its bytes in the file and
                                its double copy in memory; default 8 GiB */
    size_t max_tensors;      /* safetensors entries; default 100000 */
    size_t max_json_depth;   /* safetensors header nesting; default 64,
                                at most 1024 */
    size_t max_name_bytes;   /* tensor names and metadata keys; default 1024 */
    int allow_nonfinite;     /* 0 (default): a NaN or Inf in a loaded
                                floating tensor is ASEC_ENUMERIC */
} asec_io_options;

#define ASEC_IO_OPTIONS_VERSION 1
#define ASEC_IO_OPTIONS_INIT                                                             \
    {                                                                                    \
        ASEC_IO_OPTIONS_VERSION, 10000, (size_t)16 << 20,                                \
            (SIZE_MAX > 0xFFFFFFFFu ? (size_t)0x200000000ull : SIZE_MAX), 100000, 64,    \
            1024, 0                                                                      \
    }

/* A tensor of an open file.  Owned by the file handle: valid until
 * asec_io_file_free(); data and raw until asec_io_file_unload() of the
 * tensor.  Callers may modify data[] in place, nothing else. */
typedef struct asec_io_tensor {
    const char *name;         /* safetensors name (UTF-8); "" for .npy */
    asec_io_dtype dtype;      /* element type in the file */
    size_t ndim;              /* 0 (scalar) .. ASEC_IO_MAX_NDIM */
    const size_t *shape;      /* (ndim), PyTorch order; a 0 dim is allowed */
    size_t nelem;             /* product of shape; 1 for a scalar */
    size_t nbytes;            /* nelem * item size: bytes in the file */
    size_t offset;            /* absolute file offset of its first byte */
    double *data;             /* (nelem) row-major; NULL unless loaded DOUBLE */
    const unsigned char *raw; /* (nbytes) C order; NULL unless loaded RAW */
    size_t n_nan;             /* NaN and +-Inf counts, set when loaded; */
    size_t n_inf;             /*   always 0 for integer dtypes */
} asec_io_tensor;

/* File-level facts, for asec_io_file_info(). */
typedef struct asec_io_info {
    asec_io_format format; /* ASEC_IO_NPY or ASEC_IO_SAFETENSORS */
    int version_major;     /* .npy format version (1, 2 or 3); 0 */
    int version_minor;     /*   for safetensors */
    int fortran_order;     /* .npy: 1 if stored column-major */
    size_t file_bytes;     /* file size when opened */
    size_t header_bytes;   /* .npy header_len / safetensors N */
    size_t data_offset;    /* absolute offset of the data section */
    size_t ntensors;       /* 1 for .npy */
    size_t nmeta;          /* safetensors __metadata__ entries */
} asec_io_info;

typedef struct asec_io_file asec_io_file;

/* Open and validate path.  format ASEC_IO_AUTO picks .npy for names
 * ending in ".npy", safetensors for ".safetensors", and otherwise decides
 * by the .npy magic; ASEC_IO_NPY / ASEC_IO_SAFETENSORS force a format.
 * load says which tensor data to read now (ASEC_IO_LOAD_HEADER: none).
 * opts may be NULL (defaults).
 *
 * *out is owned by the caller and freed with asec_io_file_free(); the
 * handle keeps the file open for later asec_io_file_load() calls.  On
 * failure *out is NULL and nothing stays allocated or open.
 *
 * Returns ASEC_OK, or
 *   ASEC_EINVAL  opts out of range or of another version, bad load/format
 *   ASEC_ENOENT  path missing, unreadable, a directory or not a regular file
 *   ASEC_EIO     a read failed, or the file changed while being read
 *   ASEC_EFORMAT the file breaks a rule of attnsec-formats(5)
 *   ASEC_ELIMIT  a cap of opts is exceeded, or an I64/U64 value is not
 *                exactly representable as a double (LOAD_DOUBLE)
 *   ASEC_ENUMERIC a loaded floating tensor holds NaN/Inf and
 *                opts->allow_nonfinite is 0
 *   ASEC_ENOMEM
 * Allocates: the handle, the header (bounded by the header cap), names,
 * shapes, and for LOAD_DOUBLE/RAW the tensor data (bounded by
 * max_tensor_bytes each). */
ASEC_API int asec_io_open(asec_io_file **out, const char *path, asec_io_format format,
                          asec_io_load load, const asec_io_options *opts) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* Close the file and free everything, including tensor data.  NULL is a
 * no-op. */
ASEC_API void asec_io_file_free(asec_io_file *f);

/* Fill *out with the file-level facts.  Allocates nothing. */
ASEC_API void asec_io_file_info(const asec_io_file *f, asec_io_info *out)
    ASEC_NONNULL(1, 2);

/* Tensor i in file order (.npy: i = 0; safetensors: ascending data
 * offset, ties in header order), or NULL when i >= ntensors. */
ASEC_API const asec_io_tensor *asec_io_file_tensor(const asec_io_file *f, size_t i)
    ASEC_NONNULL(1);

/* The tensor called name (exact byte comparison; O(log n)), or NULL.
 * When index is not NULL it receives the tensor's file-order index. */
ASEC_API const asec_io_tensor *asec_io_file_find(const asec_io_file *f, const char *name,
                                                 size_t *index) ASEC_NONNULL(1, 2);

/* Metadata entry i of a safetensors file (header order): *key and *value
 * point into the handle.  ASEC_EINVAL when i >= nmeta. */
ASEC_API int asec_io_file_meta(const asec_io_file *f, size_t i, const char **key,
                               const char **value) ASEC_NONNULL(1, 3, 4);

/* The metadata value for key, or NULL. */
ASEC_API const char *asec_io_file_meta_get(const asec_io_file *f, const char *key)
    ASEC_NONNULL(1, 2);

/* Read tensor i as load (DOUBLE or RAW), replacing any data loaded
 * before.  Re-checks that the file size is unchanged.  On failure the
 * tensor is left unloaded.  Returns ASEC_OK, ASEC_EINVAL (bad i or load),
 * ASEC_EIO, ASEC_EFORMAT (a BOOL byte other than 0 or 1), ASEC_ELIMIT,
 * ASEC_ENUMERIC or ASEC_ENOMEM as for asec_io_open().  Allocates the
 * tensor's data (nelem doubles or nbytes bytes) and a read buffer of at
 * most 1 MiB, freed before returning. */
ASEC_API int asec_io_file_load(asec_io_file *f, size_t i,
                               asec_io_load load) ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Free tensor i's data and raw bytes (no-op if not loaded or i is out of
 * range). */
ASEC_API void asec_io_file_unload(asec_io_file *f, size_t i) ASEC_NONNULL(1);

/* Write a .npy file (format version 1.0, little-endian) holding the
 * (shape) row-major array data, stored as dtype.  The header is laid out
 * byte for byte as NumPy 1.24's np.save writes it, so the data starts at
 * a multiple of 64.  data may be NULL only when the shape has a 0 dim.
 * Values are converted as by asec_io_encode(); every value is checked
 * before the file is created.  Written atomically through asec_afile.
 * Returns ASEC_OK, ASEC_EINVAL (ndim > 64, BF16 (no .npy code), a value
 * not representable in dtype, data NULL with nelem > 0, more than the
 * default max_tensor_bytes as bytes or as doubles), ASEC_ENOMEM
 * (size overflow), or the asec_afile_* errors (ASEC_ECREATE, ASEC_ENOSPC,
 * ASEC_EIO).  Allocates a 64 KiB buffer, freed before returning. */
ASEC_API int asec_io_npy_write(const char *path, const double *data, size_t ndim,
                               const size_t *shape, asec_io_dtype dtype) ASEC_WARN_UNUSED
    ASEC_NONNULL(1);

/* One tensor to write to a safetensors file.  All pointers are borrowed. */
typedef struct asec_io_st_entry {
    const char *name;    /* non-empty UTF-8, at most 1024 bytes, unique,
                            not "__metadata__" */
    asec_io_dtype dtype; /* any dtype; ASEC_IO_F64 keeps doubles exact */
    size_t ndim;         /* <= ASEC_IO_MAX_NDIM */
    const size_t *shape; /* (ndim); may be NULL when ndim == 0 */
    const double *data;  /* (nelem) row-major; NULL allowed if nelem == 0 */
} asec_io_st_entry;

/* Write a safetensors file with n tensors, data in the given order and
 * contiguous from offset 0, and nmeta string metadata pairs under
 * "__metadata__" (omitted when nmeta == 0; keys unique).  A model file
 * stores its architecture as a JSON string under one metadata key (see
 * attnsec-formats(5), "Model files").  The header is compact JSON padded
 * with spaces to a multiple of 8 bytes.  Every name and value is checked
 * before the file is created; written atomically through asec_afile.
 * Returns ASEC_OK, ASEC_EINVAL (bad or duplicate name, invalid UTF-8, a
 * value not representable in its dtype, ndim > 64, or anything the reader
 * refuses with ASEC_IO_OPTIONS_INIT: a name or metadata key over 1024
 * bytes, more than 100000 tensors, a header over 16 MiB, a tensor over
 * max_tensor_bytes as bytes or as doubles), ASEC_ENOMEM, or the
 * asec_afile_* errors.  Allocates the JSON header and a 64 KiB buffer,
 * freed before returning. */
ASEC_API int asec_io_st_write(const char *path, const asec_io_st_entry *tensors, size_t n,
                              const char *const *meta_keys,
                              const char *const *meta_values,
                              size_t nmeta) ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* "F64", "BF16", ... (the safetensors spelling); "?" for a bad value. */
ASEC_API const char *asec_io_dtype_name(asec_io_dtype dtype);

/* The .npy descr ("<f8", "|b1", ...), or NULL for BF16 or a bad value. */
ASEC_API const char *asec_io_dtype_descr(asec_io_dtype dtype);

/* Bytes per element; 0 for a bad value. */
ASEC_API size_t asec_io_dtype_size(asec_io_dtype dtype);

/* 1 for F64, F32, F16 and BF16, else 0. */
ASEC_API int asec_io_dtype_is_float(asec_io_dtype dtype);

/* Parse a safetensors dtype name ("F64", ...).  ASEC_EINVAL if unknown. */
ASEC_API int asec_io_dtype_parse(asec_io_dtype *out, const char *name) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2);

/* IEEE binary16 and bfloat16 bit patterns to double: exact for every
 * input, including subnormals, signed zeros and infinities; NaNs keep
 * their sign and payload. */
ASEC_API double asec_io_f16_to_double(uint16_t bits);
ASEC_API double asec_io_bf16_to_double(uint16_t bits);

/* double to binary16 / bfloat16, rounding to nearest with ties to even
 * (IEEE 754 default); values beyond the largest finite become +-Inf, a
 * NaN becomes a quiet NaN of the same sign. */
ASEC_API uint16_t asec_io_double_to_f16(double x);
ASEC_API uint16_t asec_io_double_to_bf16(double x);

/* Encode x as one element of dtype into out[0 .. size-1], little-endian.
 * Floating dtypes round to nearest even (F32 and smaller).  Integer and
 * BOOL dtypes need an integral x in range (BOOL: 0 or 1).  Returns
 * ASEC_OK or ASEC_EINVAL (not representable; out unchanged).  Allocates
 * nothing. */
ASEC_API int asec_io_encode(unsigned char *out, asec_io_dtype dtype,
                            double x) ASEC_WARN_UNUSED ASEC_NONNULL(1);

ASEC_END_DECLS

#endif /* ATTNSEC_IO_H */
