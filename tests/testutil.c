/* testutil.c - helpers shared by the Check programs. */
#include "config.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

void
asec_test_allclose_at(const char *file, int line, const double *a, const double *b,
                      size_t n, double rtol, double atol, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double tol = atol + rtol * fabs(b[i]);

        if (!(fabs(a[i] - b[i]) <= tol))
            ck_abort_msg("%s:%d: %s: element %zu is %.17g, expected %.17g (tol %.3g)",
                         file, line, what, i, a[i], b[i], tol);
    }
}

double
asec_test_relerr(double x, double y, double floor)
{
    double m = fmax(fmax(fabs(x), fabs(y)), floor);

    return fabs(x - y) / m;
}

static const char *
join(const char *base, const char *relative)
{
    static char buf[4096];

    snprintf(buf, sizeof buf, "%s/%s", base, relative);
    return buf;
}

const char *
asec_test_datafile(const char *relative)
{
    return join(ASEC_TEST_DATADIR, relative);
}

const char *
asec_test_srcfile(const char *relative)
{
    return join(ASEC_TEST_SRCDIR, relative);
}

char *
asec_test_mkdtemp(void)
{
    const char *tmp = getenv("TMPDIR");
    char *path;

    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    path = malloc(strlen(tmp) + 32);
    ck_assert_ptr_nonnull(path);
    sprintf(path, "%s/asec-test.XXXXXX", tmp);
    ck_assert_ptr_nonnull(mkdtemp(path));
    return path;
}

static void
rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char sub[4096];
        struct stat st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            rmtree(sub);
        else
            unlink(sub);
    }
    closedir(d);
    rmdir(dir);
}

void
asec_test_rmtree(char *dir)
{
    if (dir == NULL)
        return;
    rmtree(dir);
    free(dir);
}

int
asec_test_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

char *
asec_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        size_t got;

        if (n + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = 2 * cap + 8192);

            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, 4096, f);
        n += got;
        if (got < 4096)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

int
asec_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int nfailed;

    srunner_run_all(sr, CK_ENV);
    nfailed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nfailed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
