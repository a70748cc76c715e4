/* curve.h - the training curve curve.csv of 'attnsec defend dpsgd' as
 * --resume reads it back (curve.c): kept only when every row is one the
 * program writes, so that nothing hostile or truncated is carried into
 * the new curve, and linked directly by the fuzz harness
 * tests/fuzz/fuzz_records.c.
 *
 * curve.csv is CURVE_HEADER, then one row per evaluation:
 *   STEP,BATCH,train_loss,grad_norm,mean_norm,clipped_frac,epsilon,
 *   test_loss,test_accuracy
 * STEP (>= 1, strictly increasing) and BATCH are decimal integers without
 * sign or leading zero, the others numbers as printf's %g prints them
 * (-?DIGITS[.DIGITS][e(+|-)DD...], nan, -nan, inf, -inf), every row ends
 * with a newline.  attnsec-formats(5) documents the format and its caps.
 */
#ifndef ATTNSEC_CURVE_H
#define ATTNSEC_CURVE_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>

#define CURVE_HEADER                                                                     \
    "step,batch,train_loss,grad_norm,mean_norm,clipped_frac,epsilon,test_loss,"          \
    "test_accuracy\n"
/* One row, as the command writes it: step (uint64_t), batch (size_t) and
 * the seven doubles of CURVE_HEADER. */
#define CURVE_ROW_FORMAT "%" PRIu64 ",%zu,%.9g,%.9g,%.9g,%.6g,%.9g,%.9g,%.6g\n"
#define CURVE_COLUMNS 9
#define CURVE_MAX_LINE 512                  /* bytes of a line, its newline included */
#define CURVE_MAX_BYTES ((size_t)256 << 20) /* the file, which bounds the rows */

/* Check the curve.csv text buf[0 .. len-1] read from path (named in
 * messages) and keep the rows of steps <= step: they are moved to the
 * start of buf, *kept bytes, each row with its newline (the header is
 * dropped).  Any malformed line is an error: the file is left to the user
 * rather than silently cut.  0, or 65 after one message "PATH:LINE: ...".
 * Allocates nothing. */
int curve_parse(char *buf, size_t len, const char *path, uint64_t step, size_t *kept);

/* Read the curve.csv at path and curve_parse() it.  0 with *rows (free()
 * it; *cap bytes allocated, *len used), or NULL and 0 when there is no
 * such file; or, after one message naming path: 65 malformed, not a
 * regular file or over CURVE_MAX_BYTES (checked before reading), 66
 * unreadable, 74 read error, 75 out of memory or changed while read. */
int curve_load(const char *path, uint64_t step, char **rows, size_t *len, size_t *cap);

#endif /* ATTNSEC_CURVE_H */
