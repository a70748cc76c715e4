/* slurp.h - read back a whole file that the program once wrote but that
 * anybody may have replaced since (a privacy ledger, a batch result, a
 * training curve): only a regular file, of at most a cap of bytes checked
 * on the open file before anything is allocated, never blocking on a FIFO
 * and never reading more than the cap from a file that grows meanwhile.
 *
 * slurp_regular() prints nothing, since what a missing file means (an
 * empty ledger, an absent result, an error) differs from reader to
 * reader; slurp_exit() is the one message and exit status for the rest.
 */
#ifndef ATTNSEC_SLURP_H
#define ATTNSEC_SLURP_H

#include <stddef.h>

enum slurp_status {
    SLURP_OK = 0,
    SLURP_MISSING,  /* ENOENT (and ENOTDIR): no such file */
    SLURP_OPEN,     /* cannot open it (errno kept: EACCES, ELOOP, ...) */
    SLURP_NOT_FILE, /* a directory, FIFO, device or socket */
    SLURP_TOO_BIG,  /* more than cap bytes (*len: its size, or cap + 1) */
    SLURP_READ,     /* a read error (errno kept) */
    SLURP_CHANGED,  /* it grew while being read (retry) */
    SLURP_NOMEM     /* out of memory */
};

/* Read the file at path into *buf (free() it; NUL-terminated after its
 * len bytes, which may themselves hold NUL bytes) when it is a regular
 * file of at most cap bytes.  The one allocation is of size + 1 bytes.
 * Returns a slurp_status; *buf is NULL unless SLURP_OK; errno is kept for
 * SLURP_OPEN and SLURP_READ. */
int slurp_regular(const char *path, size_t cap, char **buf, size_t *len);

/* The exit status of slurp_regular()'s status st for path (len and cap as
 * it returned them), after one message naming path: 0 for SLURP_OK (no
 * message); 66 missing or cannot be opened; 65 not a regular file or over
 * cap bytes; 74 a read error; 75 changed while read or out of memory.
 * Call it right after slurp_regular(), which leaves errno for it. */
int slurp_exit(int st, const char *path, size_t len, size_t cap);

#endif /* ATTNSEC_SLURP_H */
