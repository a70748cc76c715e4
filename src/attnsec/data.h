/* attnsec/data.h - the datasets shipped with attnsec.
 *
 *   digits  the UCI optical handwritten digits: 8x8 grey images with
 *           pixel counts 0..16, 10 classes; 1437 train, 360 test images
 *           (a fixed split).  Loaded as images (n, 8, 8) = count / 16 in
 *           [0, 1] and labels (n).
 *   kjv     a word-level English corpus: Genesis, Exodus, Matthew (train)
 *           and Mark, John (test) of the King James Version; vocabulary of
 *           2049 tokens (id 0 "<unk>", then the 2048 most frequent words
 *           and punctuation marks of the training text).  Loaded as the
 *           token stream (n) and the vocabulary.
 *
 * Files live under a data directory, normally $(pkgdatadir)/datasets; the
 * library never looks for it: the caller passes it (the attnsec program
 * takes it from ATTNSEC_DATADIR, attnsec-data(1)).  Provenance, licences
 * and checksums: datasets/README.md.
 */
#ifndef ATTNSEC_DATA_H
#define ATTNSEC_DATA_H

#include <stddef.h>
#include <stdint.h>

#include <attnsec/common.h>

ASEC_BEGIN_DECLS

/* A loaded split.  A plain value: every pointer is owned by the struct and
 * released by asec_data_free(); callers read the fields. */
typedef struct asec_data {
    const char *name;  /* "digits" or "kjv" (static) */
    const char *split; /* "train" or "test" (static) */
    size_t n;          /* images (digits) or tokens (kjv) */
    size_t classes;    /* digits: 10; kjv: the vocabulary size V */
    size_t image_h;    /* digits: 8 (0 for kjv) */
    size_t image_w;    /* digits: 8 */
    double *images;    /* digits: (n, image_h, image_w) in [0, 1] */
    int64_t *labels;   /* digits: (n) in [0, 10) */
    int64_t *tokens;   /* kjv: (n) ids in [0, V) */
    char **vocab;      /* kjv: (V) NUL-terminated tokens */
} asec_data;

/* The catalogue: the number of datasets, and for i < count the name, a
 * one-line summary and the NULL-terminated list of its files relative to
 * the data directory ("digits/train_images.npy", ...).  ASEC_EINVAL when
 * i >= count. */
ASEC_API size_t asec_data_count(void);
ASEC_API int asec_data_info(size_t i, const char **name, const char **summary,
                            const char *const **files) ASEC_WARN_UNUSED
    ASEC_NONNULL(2, 3, 4);

/* Load split ("train" or "test") of dataset name from datadir.  *out is
 * owned by the caller and freed with asec_data_free().  Returns ASEC_OK,
 * ASEC_EINVAL (unknown name or split), the asec_io_open() errors
 * (ASEC_ENOENT when a file is missing, ...), or ASEC_EFORMAT when a file
 * does not hold what the catalogue says (shape, dtype, range).  Allocates
 * the arrays (digits: 9 n doubles and int64s; kjv: n int64s and the
 * vocabulary). */
ASEC_API int asec_data_load(asec_data **out, const char *datadir, const char *name,
                            const char *split) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3, 4);

/* Free a loaded split; NULL is a no-op. */
ASEC_API void asec_data_free(asec_data *d);

/* Next-token windows of a kjv split: window w (first <= w < first + count)
 * covers tokens [w T, w T + T) as inputs and [w T + 1, w T + T + 1) as
 * labels; inputs and labels are (count, T).  There are (n - 1) / T
 * windows.  ASEC_EINVAL when d has no tokens, T is 0 or a window lies past
 * the end.  Allocates nothing. */
ASEC_API int asec_data_windows(int64_t *inputs, int64_t *labels, const asec_data *d,
                               size_t T, size_t first, size_t count) ASEC_WARN_UNUSED
    ASEC_NONNULL(1, 2, 3);

ASEC_END_DECLS

#endif /* ATTNSEC_DATA_H */
