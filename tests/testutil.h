/* testutil.h - helpers shared by the Check programs. */
#ifndef ATTNSEC_TESTUTIL_H
#define ATTNSEC_TESTUTIL_H

#include <stddef.h>

#include <check.h>

/* |a[i] - b[i]| <= atol + rtol |b[i]| for every i (numpy allclose, with b
 * the reference).  On failure, fails the test naming what, the first bad
 * index and both values.  NaN never matches. */
#define asec_test_allclose(a, b, n, rtol, atol, what)                                  \
    asec_test_allclose_at(__FILE__, __LINE__, (a), (b), (n), (rtol), (atol), (what))
void asec_test_allclose_at(const char *file, int line, const double *a, const double *b,
                           size_t n, double rtol, double atol, const char *what);

/* The scale-free relative error used by the gradient checks (STYLE.md
 * B10): |x - y| / max(|x|, |y|, floor). */
double asec_test_relerr(double x, double y, double floor);

/* Path of a file under datasets/ (ASEC_TEST_DATADIR) or tests/
 * (ASEC_TEST_SRCDIR), in a static buffer overwritten by the next call. */
const char *asec_test_datafile(const char *relative);
const char *asec_test_srcfile(const char *relative);

/* A fresh empty directory under $TMPDIR (or /tmp); the path is returned in
 * a buffer owned by the caller (free with asec_test_rmtree). */
char *asec_test_mkdtemp(void);
/* Remove a directory made by asec_test_mkdtemp and everything in it, and
 * free the path. */
void asec_test_rmtree(char *dir);
/* Number of entries (other than . and ..) in a directory; -1 on error. */
int asec_test_count_entries(const char *dir);

/* Read a whole file into a malloc'ed buffer (free with free()); NULL on
 * error. *len receives the byte count. */
char *asec_test_slurp(const char *path, size_t *len);

/* Run a suite with CK_ENV verbosity; return EXIT_SUCCESS when nothing
 * failed. */
int asec_test_run(Suite *s);

#endif /* ATTNSEC_TESTUTIL_H */
