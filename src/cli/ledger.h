/* ledger.h - the privacy ledger of 'attnsec release --ledger' as it is read
 * back and composed (ledger.c), apart from the command so that the fuzz
 * harness tests/fuzz/fuzz_records.c links it directly.  Locking and
 * writing stay in cmd_release.c.
 *
 * LEDGER is a JSON object {"format": "attnsec-ledger", "version": 1,
 * "entries": [...]}; each entry records one release (attnsec-release(1),
 * FILES; attnsec-formats(5) for the caps).  Composition uses, per entry,
 * "mechanism" and either "rho" (gaussian: a rho-zCDP event) or "epsilon"
 * (laplace: a pure event).
 *
 * Functions print their errors (cli_error, "LEDGER: ...", one line,
 * untrusted text escaped) and return an exit status (cli.h).
 */
#ifndef ATTNSEC_LEDGER_H
#define ATTNSEC_LEDGER_H

#include <stddef.h>

#include <jansson.h>

#define LEDGER_FORMAT "attnsec-ledger"
#define LEDGER_VERSION 1
#define LEDGER_MAX_BYTES ((size_t)64 << 20) /* checked before the file is read */
#define LEDGER_MAX_ENTRIES 1000000          /* a ledger holds at most this - 1 */
#define LEDGER_MAX_DEPTH 16                 /* JSON nesting (entries are 2 deep) */
/* json_dumps flags of the ledger as cmd_release.c writes it */
#define LEDGER_DUMP_FLAGS (JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(17))

struct ledger {
    json_t *root;    /* owned */
    json_t *entries; /* borrowed from root */
    int lock_fd;     /* -1 when unlocked (cmd_release.c) */
};

/* The composed guarantee of the ledger's entries plus the planned one. */
struct ledger_composed {
    double epsilon; /* at delta; INFINITY when no bound fits delta */
    double delta;
    const char *method;
    size_t entries;
};

/* Parse the ledger text buf[0 .. len-1] read from path into l->root and
 * l->entries (release with ledger_free; NULL on failure): a JSON object
 * with this format and version and an entries array of fewer than
 * LEDGER_MAX_ENTRIES, nested at most LEDGER_MAX_DEPTH deep.  0, or 65
 * (75 out of memory) after a message. */
int ledger_parse(struct ledger *l, const char *path, const char *buf, size_t len);

/* Read and parse the ledger at path; a missing file is an empty ledger.
 * 0, or after a message: 65 malformed, not a regular file or over
 * LEDGER_MAX_BYTES (checked before reading), 66 unreadable, 74 read error,
 * 75 out of memory or changed while read. */
int ledger_read(struct ledger *l, const char *path);

/* Compose the entries of l (read from path) plus a planned release, a
 * gaussian one of rho = value or a laplace one of epsilon = value, at
 * delta.  0 and *out, or 65 after "PATH: entries[I]: ..." for an entry
 * that is not {"mechanism": "gaussian"|"laplace", "rho"|"epsilon": a
 * finite number >= 0} or that the accountant refuses, 75 out of memory. */
int ledger_compose(const struct ledger *l, const char *path, int gaussian, double value,
                   double delta, struct ledger_composed *out);

/* Release l->root (the lock is cmd_release.c's). */
void ledger_free(struct ledger *l);

#endif /* ATTNSEC_LEDGER_H */
