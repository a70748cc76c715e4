/* fuzz_data.c - libFuzzer harness for the dataset loader's kjv path
 * (src/data.c: the vocabulary reader and the token-id check), reached
 * through asec_data_load(datadir, "kjv", split) on a scratch data
 * directory holding text/vocab.txt and text/SPLIT_tokens.npy.
 *
 * Input layout: byte 0 is a mode, the rest is the vocabulary file.
 *   mode & 1   the vocabulary ends at the first NUL and the bytes after it
 *              are the token file, verbatim (no NUL: no token file); else
 *              the token file is made here: a .npy of the ids
 *              0, 1, ..., 7 modulo the number of lines of the vocabulary,
 *   mode & 2   plus one id equal to that number (out of range),
 *   mode & 4   as '<f8' instead of '<i8',
 *   mode & 8   plus one element 0.5 ('<f8' only: not an integer);
 *   mode & 16  the "test" split instead of "train".
 *
 * What must hold: the vocabulary is accepted exactly when an independent
 * reading says it is valid (1 .. 2^20 bytes, newline-terminated, no NUL,
 * no empty line, at most 65536 lines); on success the asec_data is
 * consistent: V = classes = the number of lines, vocab[i] is line i
 * NUL-terminated, every token id is in [0, V), and a made token file loads
 * with exactly the ids written; a failure has an allowed status and a
 * one-line message that starts with the name of the file at fault; a made
 * token file fails exactly when it holds a bad id.  Nothing leaks
 * (LeakSanitizer; valgrind under make check-valgrind).
 * Seeds: tests/fuzz/corpus/fuzz_data; dictionary data.dict.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attnsec/attnsec.h"
#include "fuzz.h"

#define VOCAB_MAX_BYTES ((size_t)1 << 20) /* src/data.c */
#define VOCAB_MAX_WORDS 65536
#define MADE_IDS 8

#define LOAD_FAILS                                                                       \
    (fuzz_bit(ASEC_EFORMAT) | fuzz_bit(ASEC_ELIMIT) | fuzz_bit(ASEC_ENUMERIC) |          \
     fuzz_bit(ASEC_ENOENT))

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup("fuzz_data");
    return 0;
}

/* A .npy v1.0 of a 1-d array: '<i8' ids, or '<f8' values. */
static size_t
make_npy(unsigned char *out, const double *v, size_t n, int f8)
{
    char hdr[128];
    int len = snprintf(hdr, sizeof hdr,
                       "{'descr': '%s', 'fortran_order': False, 'shape': (%zu,), }",
                       f8 ? "<f8" : "<i8", n);
    size_t total = 10 + (size_t)len + 1, pad = (64 - total % 64) % 64, pos;

    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (unsigned char)((total + pad - 10) & 0xff);
    out[9] = (unsigned char)((total + pad - 10) >> 8);
    memcpy(out + 10, hdr, (size_t)len);
    pos = 10 + (size_t)len;
    memset(out + pos, ' ', pad);
    pos += pad;
    out[pos++] = '\n';
    for (size_t i = 0; i < n; i++) {
        uint64_t u;

        if (f8) {
            memcpy(&u, &v[i], sizeof u);
        } else {
            int64_t s = (int64_t)v[i];

            memcpy(&u, &s, sizeof u);
        }
        for (int b = 0; b < 8; b++)
            out[pos++] = (unsigned char)(u >> (8 * b));
    }
    return pos;
}

/* The independent reading of the vocabulary: its number of lines when
 * valid, else 0. */
static size_t
vocab_lines(const uint8_t *v, size_t n)
{
    size_t lines = 0;

    if (n == 0 || n > VOCAB_MAX_BYTES || v[n - 1] != '\n')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == 0)
            return 0;
        if (v[i] == '\n') {
            if (i == 0 || v[i - 1] == '\n')
                return 0; // an empty line
            lines++;
        }
    }
    return lines <= VOCAB_MAX_WORDS ? lines : 0;
}

/* A failure: allowed status, one line, naming vocab or tokens. */
static void
check_failure(int rc, const char *vpath, const char *tpath)
{
    const char *msg = asec_errmsg();
    size_t lv = strlen(vpath), lt = strlen(tpath);

    if (rc >= 0 || (LOAD_FAILS & fuzz_bit(rc)) == 0)
        fuzz_bug("asec_data_load: unexpected status %d (%s)", rc, asec_strerror(rc));
    if (msg[0] == '\0' || !fuzz_one_line(msg, "asec_data_load"))
        fuzz_bug("asec_data_load: the message is empty or not one printable line");
    if (!(strncmp(msg, vpath, lv) == 0 && msg[lv] == ':') &&
        !(strncmp(msg, tpath, lt) == 0 && msg[lt] == ':'))
        fuzz_bug("asec_data_load: the message does not start with a file name");
}

static void
check_success(const asec_data *d, const uint8_t *v, size_t vlen, size_t lines,
              const char *split)
{
    const uint8_t *p = v;

    FUZZ_CHECK(strcmp(d->name, "kjv") == 0 && strcmp(d->split, split) == 0);
    FUZZ_CHECK(d->classes == lines && lines >= 1);
    FUZZ_CHECK(d->images == NULL && d->labels == NULL && d->image_h == 0);
    FUZZ_CHECK(d->vocab != NULL && d->tokens != NULL);
    for (size_t i = 0; i < lines; i++) {
        const uint8_t *nl = memchr(p, '\n', vlen - (size_t)(p - v));
        size_t len = (size_t)(nl - p);

        FUZZ_CHECK(d->vocab[i] != NULL && strlen(d->vocab[i]) == len);
        FUZZ_CHECK(memcmp(d->vocab[i], p, len) == 0);
        p = nl + 1;
    }
    for (size_t i = 0; i < d->n; i++)
        FUZZ_CHECK(d->tokens[i] >= 0 && (uint64_t)d->tokens[i] < lines);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned mode = size > 0 ? data[0] : 0;
    const uint8_t *vocab = size > 0 ? data + 1 : data, *tok = NULL;
    size_t vlen = size > 0 ? size - 1 : 0, tlen = 0, lines, nmade = 0;
    const char *split = mode & 16 ? "test" : "train";
    char dir[512], vpath[600], tpath[600];
    unsigned char made[256 + 8 * (MADE_IDS + 2)];
    double ids[MADE_IDS + 2];
    int bad_made = 0, rc;
    asec_data *d = NULL;

    if (mode & 1) {
        const uint8_t *nul = memchr(vocab, 0, vlen);

        if (nul != NULL) {
            tok = nul + 1;
            tlen = vlen - (size_t)(tok - vocab);
            vlen = (size_t)(nul - vocab);
        }
    }
    lines = vocab_lines(vocab, vlen);
    snprintf(dir, sizeof dir, "%s/text", fuzz_scratch());
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        fuzz_bug("mkdir %s: %s", dir, strerror(errno));
    snprintf(vpath, sizeof vpath, "%s/vocab.txt", dir);
    snprintf(tpath, sizeof tpath, "%s/%s_tokens.npy", dir, split);
    fuzz_write_file(vpath, vocab, vlen);
    if (!(mode & 1)) {
        size_t v = lines > 0 ? lines : 1;

        for (size_t i = 0; i < MADE_IDS; i++)
            ids[nmade++] = (double)(i % v);
        if (mode & 2) {
            ids[nmade++] = (double)lines;
            bad_made = 1;
        }
        if ((mode & 4) && (mode & 8)) {
            ids[nmade++] = 0.5;
            bad_made = 1;
        }
        fuzz_write_file(tpath, made, make_npy(made, ids, nmade, (mode & 4) != 0));
    } else if (tok != NULL) {
        fuzz_write_file(tpath, tok, tlen);
    }

    rc = asec_data_load(&d, fuzz_scratch(), "kjv", split);
    if (rc == ASEC_OK) {
        FUZZ_CHECK(d != NULL);
        if (lines == 0)
            fuzz_bug("a vocabulary the independent reading refuses was accepted");
        check_success(d, vocab, vlen, lines, split);
        if (!(mode & 1)) {
            FUZZ_CHECK(!bad_made && d->n == nmade);
            for (size_t i = 0; i < nmade; i++)
                FUZZ_CHECK((double)d->tokens[i] == ids[i]);
        }
        asec_data_free(d);
    } else {
        FUZZ_CHECK(d == NULL);
        check_failure(rc, vpath, tpath);
        if (lines > 0 && !(mode & 1) && !bad_made)
            fuzz_bug("a valid vocabulary and token file were refused: %s", asec_errmsg());
        if (lines == 0) {
            size_t lv = strlen(vpath);

            if (strncmp(asec_errmsg(), vpath, lv) != 0 && rc != ASEC_ENOMEM)
                fuzz_bug("a bad vocabulary was not the reason given: %s", asec_errmsg());
        }
    }
    fuzz_scratch_remove(); // nothing left behind if libFuzzer ends with _Exit
    return 0;
}
