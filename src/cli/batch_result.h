/* batch_result.h - the files of a campaign directory that 'attnsec batch
 * run|status|merge' read back after writing them (batch_result.c), apart
 * from the commands so that the fuzz harness tests/fuzz/fuzz_records.c
 * links them directly:
 *   results/ID.json    a finished task's result, with its own checksum;
 *   work/ID/report.json, work/ID/stdout.txt
 *                      what the task left, from which its result is made;
 *   locks/ID.lock      "HOST PID\n" of the process running the task.
 * attnsec-batch(1) describes them, attnsec-formats(5) their caps.
 *
 * A result that batch run writes is one that the checks accept (the
 * harness verifies it): the maker refuses, with a message, what would
 * exceed the caps of the reader.
 */
#ifndef ATTNSEC_BATCH_RESULT_H
#define ATTNSEC_BATCH_RESULT_H

#include <stddef.h>

#include <jansson.h>

#include "batch_plan.h"

#define BATCH_RESULT_MAX_BYTES ((size_t)64 << 20) /* results/ID.json, report, stdout */
#define BATCH_RESULT_MAX_DEPTH BATCH_MANIFEST_MAX_DEPTH
#define BATCH_LOCK_MAX_BYTES 512

/* Check the text buf[0 .. len-1] of a result file: strict JSON (duplicate
 * keys refused, nesting at most BATCH_RESULT_MAX_DEPTH), an object whose
 * "task" is t's line of tasks.jsonl and whose checksum.blake2b_256 is the
 * BLAKE2b-256 of its canonical text without "checksum".  1 valid (*out,
 * when not NULL, the parsed result: json_decref it), -1 invalid (*out
 * NULL).  Quiet: an invalid result is a task to run again. */
int batch_result_parse(json_t **out, const char *buf, size_t len,
                       const struct batch_task *t);

/* DIR/results/ID.json of task t: 1 valid (as above), 0 absent, -1 present
 * but invalid (not a regular file of at most cap bytes, unreadable, or
 * refused by batch_result_parse). */
int batch_result_check(const char *dir, const struct batch_task *t, size_t cap,
                       json_t **out);

/* Make the result file of task t, which exited with exit_status, from what
 * it left: report (the bytes of work/ID/report.json, NULL when there is
 * none) or else out (the bytes of work/ID/stdout.txt; NULL: none).  The
 * results are the report's "results" (and its "rng"); without a report,
 * stdout when it is a JSON object or array nested at most
 * BATCH_RESULT_MAX_DEPTH - 1 deep, else {"stdout": TEXT} when it is UTF-8
 * without NUL, else {"stdout_base64": BASE64}.  work names the directory
 * in messages.  0 and *text (free() it; *tlen bytes: pretty JSON and a
 * newline, at most cap bytes), or after one message: 65 a report that is
 * not a JSON object, a result over cap bytes or too deep; 75 out of
 * memory. */
int batch_result_make(char **text, size_t *tlen, const struct batch_task *t,
                      const char *work, const char *report, size_t rlen, const char *out,
                      size_t olen, int exit_status, size_t cap);

/* Read work/report.json and work/stdout.txt (each at most cap bytes, a
 * regular file or absent) and batch_result_make() from them.  The same
 * statuses, and 74 for a read error. */
int batch_result_build(char **text, size_t *tlen, const struct batch_task *t,
                       const char *work, int exit_status, size_t cap);

/* A lock file's text "HOST PID\n": HOST 1 to 255 printable ASCII bytes
 * other than space, PID a decimal in [1, INT_MAX] without sign or leading
 * zero.  1 and host (NUL-terminated, 256 bytes) and *pid, or 0 when it
 * is not that. */
int batch_lock_parse(const char *buf, size_t len, char host[256], long *pid);

#endif /* ATTNSEC_BATCH_RESULT_H */
