/* data.c - loading the shipped datasets (attnsec/data.h) with the strict
 * .npy reader, checking that every file holds what the catalogue says. */
#define _POSIX_C_SOURCE 200809L /* fileno under -std=c11 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "attnsec/data.h"
#include "attnsec/io.h"
#include "internal.h"

/* The vocabulary file is small (about 14 KiB); refuse anything absurd. */
#define VOCAB_MAX_BYTES ((size_t)1 << 20)
#define VOCAB_MAX_WORDS 65536

static const char *const digits_files[] = {
    "digits/train_images.npy", "digits/train_labels.npy", "digits/test_images.npy",
    "digits/test_labels.npy", NULL};
static const char *const kjv_files[] = {"text/train_tokens.npy", "text/test_tokens.npy",
                                        "text/vocab.txt", "text/kjv.txt", NULL};

static const struct {
    const char *name;
    const char *summary;
    const char *const *files;
} catalogue[] = {
    {"digits", "UCI optical handwritten digits, 8x8, 10 classes (1437 train, 360 test)",
     digits_files},
    {"kjv", "King James Version, word-level tokens, vocabulary 2049 (Gen-Ex-Mt / Mk-Jn)",
     kjv_files},
};

#define NCAT (sizeof catalogue / sizeof catalogue[0])

size_t
asec_data_count(void)
{
    return NCAT;
}

int
asec_data_info(size_t i, const char **name, const char **summary,
               const char *const **files)
{
    if (i >= NCAT)
        ASEC_FAIL(ASEC_EINVAL, "dataset index %zu out of range (%zu datasets)", i,
                  (size_t)NCAT);
    *name = catalogue[i].name;
    *summary = catalogue[i].summary;
    *files = catalogue[i].files;
    return ASEC_OK;
}

void
asec_data_free(asec_data *d)
{
    if (d == NULL)
        return;
    asec__free(d->images);
    asec__free(d->labels);
    asec__free(d->tokens);
    if (d->vocab != NULL)
        for (size_t i = 0; i < d->classes; i++)
            asec__free(d->vocab[i]);
    asec__free(d->vocab);
    asec__free(d);
}

static int
join(char *buf, size_t cap, const char *dir, const char *split, const char *stem)
{
    int n = snprintf(buf, cap, "%s/%s%s", dir, split, stem);

    if (n < 0 || (size_t)n >= cap)
        ASEC_FAIL(ASEC_EINVAL, "data directory path too long: %s", dir);
    return ASEC_OK;
}

/* Open a .npy and check its rank; the caller frees *f. */
static int
open_npy(asec_io_file **f, const char *path, size_t ndim, const asec_io_tensor **t)
{
    ASEC_TRY(asec_io_open(f, path, ASEC_IO_NPY, ASEC_IO_LOAD_DOUBLE, NULL));
    *t = asec_io_file_tensor(*f, 0);
    if ((*t)->ndim != ndim) {
        size_t nd = (*t)->ndim;

        asec_io_file_free(*f);
        *f = NULL;
        ASEC_FAIL(ASEC_EFORMAT, "%s: %zu dimensions, expected %zu", path, nd, ndim);
    }
    return ASEC_OK;
}

/* Copy integral values in [0, hi) into a fresh int64 array. */
static int
to_ids(int64_t **out, const asec_io_tensor *t, size_t hi, const char *path)
{
    *out = asec__calloc(t->nelem ? t->nelem : 1, sizeof **out);
    if (*out == NULL)
        return ASEC_ENOMEM;
    for (size_t i = 0; i < t->nelem; i++) {
        double v = t->data[i];

        if (!(v >= 0.0 && v < (double)hi) || v != floor(v))
            ASEC_FAIL(ASEC_EFORMAT, "%s: element %zu is %g, outside [0, %zu)", path, i, v,
                      hi);
        (*out)[i] = (int64_t)v;
    }
    return ASEC_OK;
}

static int
load_digits(asec_data *d, const char *dir, const char *split)
{
    char pi[4096], pl[4096];
    asec_io_file *fi = NULL, *fl = NULL;
    const asec_io_tensor *ti, *tl;
    int rc;

    ASEC_TRY(join(pi, sizeof pi, dir, "digits/", split));
    strncat(pi, "_images.npy", sizeof pi - strlen(pi) - 1);
    ASEC_TRY(join(pl, sizeof pl, dir, "digits/", split));
    strncat(pl, "_labels.npy", sizeof pl - strlen(pl) - 1);
    if ((rc = open_npy(&fi, pi, 3, &ti)) != ASEC_OK)
        return rc;
    if ((rc = open_npy(&fl, pl, 1, &tl)) != ASEC_OK)
        goto done;
    if (ti->shape[1] != 8 || ti->shape[2] != 8 || tl->shape[0] != ti->shape[0]) {
        rc = asec__fail(ASEC_EFORMAT,
                        "%s: images (%zu, %zu, %zu) and labels (%zu,) do not "
                        "match the digits layout (n, 8, 8), (n,)",
                        dir, ti->shape[0], ti->shape[1], ti->shape[2], tl->shape[0]);
        goto done;
    }
    d->n = ti->shape[0];
    d->classes = 10;
    d->image_h = d->image_w = 8;
    d->images = asec__calloc(ti->nelem ? ti->nelem : 1, sizeof *d->images);
    if (d->images == NULL) {
        rc = ASEC_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < ti->nelem; i++) {
        double v = ti->data[i];

        if (!(v >= 0.0 && v <= 16.0)) {
            rc = asec__fail(ASEC_EFORMAT, "%s: pixel %zu is %g, outside [0, 16]", pi, i,
                            v);
            goto done;
        }
        d->images[i] = v / 16.0;
    }
    rc = to_ids(&d->labels, tl, 10, pl);
done:
    asec_io_file_free(fi);
    asec_io_file_free(fl);
    return rc;
}

static int
load_vocab(asec_data *d, const char *path)
{
    FILE *fp = fopen(path, "rb");
    struct stat st;
    char *buf = NULL, *p;
    size_t len = 0, nw = 0, want = VOCAB_MAX_BYTES + 1;
    int rc = ASEC_OK;

    if (fp == NULL)
        ASEC_FAIL(ASEC_ENOENT, "%s: %s", path, strerror(errno));
    /* A regular file's size, checked against the cap, sizes the buffer (plus
     * one byte, which shows a file that grew); other files get the cap. */
    if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode)) {
        if ((uintmax_t)st.st_size > VOCAB_MAX_BYTES) {
            rc = asec__fail(ASEC_ELIMIT, "%s: larger than %zu bytes", path,
                            VOCAB_MAX_BYTES);
            goto done;
        }
        want = (size_t)st.st_size + 1;
    }
    buf = asec__malloc(want + 1);
    if (buf == NULL) {
        rc = ASEC_ENOMEM;
        goto done;
    }
    len = fread(buf, 1, want, fp);
    if (len == want && want < VOCAB_MAX_BYTES + 1 && !ferror(fp)) {
        /* It grew (or is a special file that reports size 0): read on to
         * the cap as for any other file. */
        char *nb = asec__realloc(buf, VOCAB_MAX_BYTES + 2);

        if (nb == NULL) {
            rc = ASEC_ENOMEM;
            goto done;
        }
        buf = nb;
        len += fread(buf + len, 1, VOCAB_MAX_BYTES + 1 - len, fp);
    }
    if (ferror(fp)) {
        rc = asec__fail(ASEC_EIO, "%s: read failed", path);
        goto done;
    }
    if (len > VOCAB_MAX_BYTES) {
        rc = asec__fail(ASEC_ELIMIT, "%s: larger than %zu bytes", path, VOCAB_MAX_BYTES);
        goto done;
    }
    buf[len] = '\0';
    if (len == 0 || buf[len - 1] != '\n' || memchr(buf, '\0', len) != NULL) {
        rc = asec__fail(ASEC_EFORMAT, "%s: not newline-terminated text", path);
        goto done;
    }
    for (size_t i = 0; i < len; i++)
        nw += buf[i] == '\n';
    if (nw > VOCAB_MAX_WORDS) {
        rc = asec__fail(ASEC_ELIMIT, "%s: %zu words, at most %d", path, nw,
                        VOCAB_MAX_WORDS);
        goto done;
    }
    d->vocab = asec__calloc(nw, sizeof *d->vocab);
    if (d->vocab == NULL) {
        rc = ASEC_ENOMEM;
        goto done;
    }
    d->classes = 0;
    p = buf;
    for (size_t i = 0; i < nw; i++) {
        char *nl = strchr(p, '\n');

        *nl = '\0';
        if (*p == '\0') {
            rc = asec__fail(ASEC_EFORMAT, "%s: line %zu is empty", path, i + 1);
            goto done;
        }
        d->vocab[i] = asec__strdup(p);
        if (d->vocab[i] == NULL) {
            rc = ASEC_ENOMEM;
            goto done;
        }
        d->classes = i + 1;
        p = nl + 1;
    }
done:
    asec__free(buf);
    fclose(fp);
    return rc;
}

static int
load_kjv(asec_data *d, const char *dir, const char *split)
{
    char pv[4096], pt[4096];
    asec_io_file *ft = NULL;
    const asec_io_tensor *t;
    int rc;

    ASEC_TRY(join(pv, sizeof pv, dir, "text/", "vocab.txt"));
    ASEC_TRY(join(pt, sizeof pt, dir, "text/", split));
    strncat(pt, "_tokens.npy", sizeof pt - strlen(pt) - 1);
    ASEC_TRY(load_vocab(d, pv));
    ASEC_TRY(open_npy(&ft, pt, 1, &t));
    d->n = t->shape[0];
    rc = to_ids(&d->tokens, t, d->classes, pt);
    asec_io_file_free(ft);
    return rc;
}

int
asec_data_load(asec_data **out, const char *datadir, const char *name, const char *split)
{
    asec_data *d;
    int rc;

    *out = NULL;
    if (strcmp(split, "train") != 0 && strcmp(split, "test") != 0)
        ASEC_FAIL(ASEC_EINVAL, "unknown split '%s' (train or test)", split);
    if (strcmp(name, "digits") != 0 && strcmp(name, "kjv") != 0)
        ASEC_FAIL(ASEC_EINVAL, "unknown dataset '%s' (digits or kjv)", name);
    d = asec__calloc(1, sizeof *d);
    if (d == NULL)
        return ASEC_ENOMEM;
    d->name = strcmp(name, "digits") == 0 ? "digits" : "kjv";
    d->split = strcmp(split, "train") == 0 ? "train" : "test";
    rc = d->name[0] == 'd' ? load_digits(d, datadir, d->split)
                           : load_kjv(d, datadir, d->split);
    if (rc != ASEC_OK) {
        asec_data_free(d);
        return rc;
    }
    *out = d;
    return ASEC_OK;
}

int
asec_data_windows(int64_t *inputs, int64_t *labels, const asec_data *d, size_t T,
                  size_t first, size_t count)
{
    size_t nwin, end;

    if (d->tokens == NULL || T == 0)
        ASEC_FAIL(ASEC_EINVAL, "windows need a token dataset and T >= 1");
    nwin = d->n > 0 ? (d->n - 1) / T : 0;
    if (asec__add_size(first, count, &end) != 0 || end > nwin)
        ASEC_FAIL(ASEC_EINVAL, "windows %zu..%zu of length %zu: the split has %zu", first,
                  end, T, nwin);
    for (size_t w = 0; w < count; w++)
        for (size_t t = 0; t < T; t++) {
            inputs[w * T + t] = d->tokens[(first + w) * T + t];
            labels[w * T + t] = d->tokens[(first + w) * T + t + 1];
        }
    return ASEC_OK;
}
