/* attnsec/afile.h - atomic output files ("nothing lost", RELIABILITY.md §8).
 *
 * Every file attnsec writes goes through this module.  asec_afile_open()
 * creates a temporary file ".NAME.tmp.HOST.PID.RANDOM" in the directory
 * of the final path; asec_afile_commit() flushes it, fsyncs it, closes it,
 * renames it over the final path and fsyncs the directory.  A reader sees
 * either the old file (or none) or the complete new one, never a partial
 * file.  asec_afile_abort() (or a failure anywhere) removes the temporary.
 *
 * The temporaries open at any moment are registered, so a signal handler
 * can remove them with asec_afile_abort_all(), which is async-signal-safe.
 */
#ifndef ATTNSEC_AFILE_H
#define ATTNSEC_AFILE_H

#include <stddef.h>

#include <attnsec/common.h>

ASEC_BEGIN_DECLS

typedef struct asec_afile asec_afile;

/* Start writing path.  The directory must exist.  *out is owned by the
 * caller until asec_afile_commit() or asec_afile_abort() frees it.
 * Returns ASEC_OK, ASEC_ECREATE (directory missing or not writable; the
 * message names the path and the reason), ASEC_ENOSPC or ASEC_ENOMEM. */
ASEC_API int asec_afile_open(asec_afile **out, const char *path)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

/* Append n bytes.  ASEC_ENOSPC (disk full, quota, file too large) or
 * ASEC_EIO.  After a failure the only valid call is asec_afile_abort(). */
ASEC_API int asec_afile_write(asec_afile *f, const void *buf, size_t n)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Append formatted text (printf format). */
ASEC_API int asec_afile_printf(asec_afile *f, const char *fmt, ...)
    ASEC_WARN_UNUSED ASEC_NONNULL(1, 2) ASEC_PRINTF(2, 3);

/* Publish the file: flush, fsync, close, rename, fsync the directory.
 * Frees f whatever the outcome; on failure the temporary is removed and
 * the final path is untouched.  ASEC_ENOSPC, ASEC_EIO or ASEC_ECREATE. */
ASEC_API int asec_afile_commit(asec_afile *f) ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Remove the temporary and free f.  NULL is a no-op. */
ASEC_API void asec_afile_abort(asec_afile *f);

/* Remove every registered temporary file; async-signal-safe (unlink only).
 * The handles stay allocated; the process is expected to exit. */
ASEC_API void asec_afile_abort_all(void);

/* Write n bytes to path atomically (open, write, commit). */
ASEC_API int asec_afile_write_all(const char *path, const void *buf, size_t n)
    ASEC_WARN_UNUSED ASEC_NONNULL(1);

/* Create directory path and its missing parents (mode 0777 & ~umask).
 * Existing directories are fine.  ASEC_ECREATE with the reason. */
ASEC_API int asec_afile_mkdirs(const char *path) ASEC_WARN_UNUSED ASEC_NONNULL(1);

ASEC_END_DECLS

#endif /* ATTNSEC_AFILE_H */
