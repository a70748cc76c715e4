/* attnsec/report.h - report.json: results plus the reproducibility record.
 *
 * A report is a JSON object (attnsec-report(5)) with these top-level keys:
 *   schema_version  1
 *   tool            {name, version, git_describe?}
 *   build           {cflags, libraries{libsodium, jansson, gsl}}
 *   command         e.g. "account epsilon"
 *   argv            the argument vector as given
 *   config          resolved configuration (set by the command)
 *   inputs          [{path, bytes, blake2b_256}] (asec_report_add_input)
 *   rng             {mode: secure|seeded, seed?, label, algorithm, dp_release}
 *   blas            {config, core, threads}
 *   time            {start_utc, end_utc, wall_seconds, cpu_seconds}
 *   exit_status     set by asec_report_finish()
 *   warnings        [strings]
 *   results         whatever the command computed
 * Keys are written sorted (JSON_SORT_KEYS) with doubles in 17 significant
 * digits, which round-trips IEEE doubles, so the same seeded run gives the
 * same bytes apart from the time block.
 *
 * Paths name a value by dotted keys from the root: "results.recon.psnr_db".
 * Missing objects along the path are created; setting a key replaces it.
 * Keys themselves cannot contain '.'.
 *
 * Non-finite numbers: JSON has none.  asec_report_set_num() stores
 * null at the key and a sibling string "<key>_nonfinite" = "inf", "-inf"
 * or "nan" (for an infinite epsilon: "epsilon": null,
 * "epsilon_nonfinite": "inf").
 */
#ifndef ATTNSEC_REPORT_H
#define ATTNSEC_REPORT_H

#include <stdio.h>

#include <attnsec/common.h>
#include <attnsec/rng.h>

ASEC_BEGIN_DECLS

typedef struct asec_report asec_report;

#define ASEC_REPORT_SCHEMA_VERSION 1

/* Start a report for command (e.g. "attack dlg") run with argv (copied;
 * may be NULL when argc is 0).  Records the start time and the build and
 * BLAS information.  Free with asec_report_free(). */
ASEC_API int asec_report_alloc(asec_report **out, const char *command, int argc,
                               char *const *argv) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);
ASEC_API void asec_report_free(asec_report *r); /* NULL: no-op */

/* Set the value at path.  ASEC_EINVAL for an empty path, an empty key or
 * a path through a non-object; ASEC_ENOMEM. */
ASEC_API int asec_report_set_num(asec_report *r, const char *path, double v)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);
ASEC_API int asec_report_set_int(asec_report *r, const char *path, long long v)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);
ASEC_API int asec_report_set_str(asec_report *r, const char *path, const char *v)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3);
ASEC_API int asec_report_set_bool(asec_report *r, const char *path, int v)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);
/* Parse json (any JSON value, e.g. "[1, 2]" or "{\"a\": null}") and set
 * it at path.  ASEC_EINVAL when json does not parse. */
ASEC_API int asec_report_set_json(asec_report *r, const char *path, const char *json)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3);
/* Append a parsed JSON value to the array at path (created if missing). */
ASEC_API int asec_report_append_json(asec_report *r, const char *path, const char *json)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2, 3);
/* Append a number to the array at path (non-finite numbers: null). */
ASEC_API int asec_report_append_num(asec_report *r, const char *path, double v)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Record an input file: {path, bytes, blake2b_256 (hex)}.  Reads the
 * file once.  ASEC_ENOENT when it cannot be read. */
ASEC_API int asec_report_add_input(asec_report *r, const char *path)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Record the RNG: mode, seed (seeded only), label, algorithm, and
 * dp_release = false for seeded runs (with the statement "NOT a DP
 * release" in rng.note). */
ASEC_API int asec_report_set_rng(asec_report *r, const asec_rng *rng)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Append a warning string (printf format). */
ASEC_API int asec_report_warn(asec_report *r, const char *fmt, ...)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2) ASEC_PRINTF(2, 3);

/* Stamp the end time, wall and CPU seconds and the exit status. */
ASEC_API int asec_report_finish(asec_report *r, int exit_status)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Write the report to path atomically (asec_afile), sorted keys, two-space
 * indent, final newline.  ASEC_ECREATE, ASEC_ENOSPC, ASEC_EIO. */
ASEC_API int asec_report_write(const asec_report *r, const char *path)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Write the same text to an open stream (e.g. stdout for --json). */
ASEC_API int asec_report_print(const asec_report *r, FILE *stream)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* The string value at path, or NULL when absent or not a string; owned by
 * the report (valid until the key changes). */
ASEC_API const char *asec_report_get_str(const asec_report *r, const char *path)
    ASEC_NONNULL(1, 2);

ASEC_END_DECLS

#endif /* ATTNSEC_REPORT_H */
