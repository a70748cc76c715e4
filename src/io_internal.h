/* io_internal.h - NOT installed.  What io.c, npy.c and safetensors.c share:
 * the file handle's layout, the checked reader and the element codecs. */
#ifndef ATTNSEC_IO_INTERNAL_H
#define ATTNSEC_IO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "attnsec/io.h"
#include "internal.h"

struct asec_io_file {
    char *path; /* as given; prefixes every message */
    int fd;     /* open for asec_io_file_load(); -1 when closed */
    asec_io_options opts;
    asec_io_info info;
    asec_io_tensor *tensors; /* (ntensors) in file order */
    size_t *by_name;         /* (ntensors) indices sorted by name (strcmp) */
    size_t *shapes;          /* pool the tensors' shape pointers point into */
    char **names;            /* (ntensors) owned names; NULL for .npy */
    char **meta_keys;        /* (nmeta) */
    char **meta_values;      /* (nmeta) */
};

/* Read exactly n bytes at offset off of f's file into buf.  A short read
 * (the file shrank) is ASEC_EIO naming the offset. */
int asec_io__pread(const asec_io_file *f, size_t off, void *buf, size_t n);

/* Parse the format-specific header of f (f->fd open, f->info.file_bytes
 * set); fills info, tensors, names, shapes and metadata, reading and
 * allocating nothing tensor-sized. */
int asec_io__npy_parse(asec_io_file *f);
int asec_io__st_parse(asec_io_file *f);

/* Decode one little-endian element; exact for all but I64/U64 beyond 2^53,
 * which set *inexact (the caller reports them). */
double asec_io__decode(const unsigned char *p, asec_io_dtype dtype, int *inexact);

/* Little-endian stores. */
void asec_io__put_le16(unsigned char *p, uint16_t v);
void asec_io__put_le32(unsigned char *p, uint32_t v);
void asec_io__put_le64(unsigned char *p, uint64_t v);
uint64_t asec_io__get_le64(const unsigned char *p);

/* Append the shape as "(2, 3)" / "(3,)" / "()" (Python tuple repr) to buf
 * of size cap at *len; returns -1 if it does not fit. */
int asec_io__shape_repr(char *buf, size_t cap, size_t *len, size_t ndim,
                        const size_t *shape);

/* Validate an options struct (NULL -> defaults) into *out. */
int asec_io__options(asec_io_options *out, const asec_io_options *opts);

/* Writers: check a tensor to write (dtype known, ndim <= 64, shape not
 * NULL, element count and bytes without overflow, data not NULL when
 * needed, every value representable) before any file is created; who is
 * "" or "tensor 'x': ".  Then encode the values through buf (64 KiB). */
int asec_io__check_write_shape(const char *path, const char *who, size_t ndim,
                               const size_t *shape, const double *data,
                               asec_io_dtype dtype, size_t *nelem_out);
struct asec_afile;
int asec_io__write_values(struct asec_afile *af, unsigned char *buf, const double *data,
                          size_t nelem, asec_io_dtype dtype);
#define ASEC_IO_WRITE_CHUNK ((size_t)1 << 16)

/* Sort helpers: the name index of f (after tensors are set). */
int asec_io__index_names(asec_io_file *f);

#endif /* ATTNSEC_IO_INTERNAL_H */
