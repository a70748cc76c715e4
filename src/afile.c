/* afile.c - atomic output files: temporary in the target directory, fsync,
 * rename, fsync of the directory (RELIABILITY.md §8, "Write protocol"). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <sodium.h>

#include "attnsec/afile.h"
#include "internal.h"

/* Temporaries open at once that asec_afile_abort_all() can remove. */
#define MAX_OPEN 64

struct asec_afile {
    int fd;
    int failed;
    int slot;       /* index in open_tmp[], or -1 */
    char *path;     /* final path */
    char *tmp;      /* temporary path */
    char *dir;      /* directory to fsync after rename */
};

/* Read by the signal handler: a fixed array of pointers to the temp path
 * strings of live handles (NULL when free). */
static char *volatile open_tmp[MAX_OPEN];

static int
errno_status(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return ASEC_ENOSPC;
    case ENOMEM:
        return ASEC_ENOMEM;
    default:
        return ASEC_EIO;
    }
}

static void
register_tmp(asec_afile *f)
{
    f->slot = -1;
    for (int i = 0; i < MAX_OPEN; i++) {
        if (open_tmp[i] == NULL) {
            open_tmp[i] = f->tmp;
            f->slot = i;
            return;
        }
    }
}

static void
unregister_tmp(asec_afile *f)
{
    if (f->slot >= 0)
        open_tmp[f->slot] = NULL;
    f->slot = -1;
}

static void
afile_release(asec_afile *f)
{
    unregister_tmp(f);
    asec__free(f->path);
    asec__free(f->tmp);
    asec__free(f->dir);
    asec__free(f);
}

int
asec_afile_open(asec_afile **out, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    char host[64] = "host";
    asec_afile *f;
    size_t n;
    int rc = ASEC_OK;

    *out = NULL;
    ASEC_TRY(asec__ensure_init()); /* temporary names use randombytes_random() */
    if (base[0] == '\0')
        ASEC_FAIL(ASEC_ECREATE, "%s: not a file name", path);
    f = asec__calloc(1, sizeof *f);
    if (f == NULL)
        return ASEC_ENOMEM;
    f->fd = -1;
    f->slot = -1;
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    for (char *h = host; *h; h++)
        if (*h == '/' || *h == '.')
            *h = '_';

    f->path = asec__strdup(path);
    /* dir + "/." + base + ".tmp." + host + "." + pid + "." + 16 hex */
    n = strlen(path) + strlen(host) + 64;
    f->tmp = asec__malloc(n);
    f->dir = asec__malloc(dirlen + 2);
    if (f->path == NULL || f->tmp == NULL || f->dir == NULL) {
        afile_release(f);
        return ASEC_ENOMEM;
    }
    if (slash == NULL) {
        strcpy(f->dir, ".");
    } else if (dirlen == 0) {
        strcpy(f->dir, "/");
    } else {
        memcpy(f->dir, path, dirlen);
        f->dir[dirlen] = '\0';
    }
    snprintf(f->tmp, n, "%.*s.%s.tmp.%s.%ld.%08lx%08lx", (int)(base - path), path, base,
             host, (long)getpid(), (unsigned long)randombytes_random(),
             (unsigned long)randombytes_random());
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f->fd < 0) {
        int e = errno;

        rc = e == ENOSPC || e == EDQUOT ? ASEC_ENOSPC : ASEC_ECREATE;
        asec__fail(rc, "%s: cannot create file: %s", path, strerror(e));
        afile_release(f);
        return rc;
    }
    register_tmp(f);
    *out = f;
    return ASEC_OK;
}

int
asec_afile_write(asec_afile *f, const void *buf, size_t n)
{
    const unsigned char *p = buf;

    if (f->failed)
        ASEC_FAIL(ASEC_EIO, "%s: write after a failed write", f->path);
    while (n > 0) {
        ssize_t w = write(f->fd, p, n);

        if (w < 0) {
            int e = errno;

            if (e == EINTR)
                continue;
            f->failed = 1;
            ASEC_FAIL(errno_status(e), "%s: write failed: %s", f->path, strerror(e));
        }
        p += w;
        n -= (size_t)w;
    }
    return ASEC_OK;
}

int
asec_afile_printf(asec_afile *f, const char *fmt, ...)
{
    char small[512];
    char *buf = small;
    va_list ap;
    int len, rc;

    va_start(ap, fmt);
    len = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (len < 0)
        ASEC_FAIL(ASEC_EINVAL, "%s: bad format string", f->path);
    if ((size_t)len >= sizeof small) {
        buf = asec__malloc((size_t)len + 1);
        if (buf == NULL)
            return ASEC_ENOMEM;
        va_start(ap, fmt);
        vsnprintf(buf, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    rc = asec_afile_write(f, buf, (size_t)len);
    if (buf != small)
        asec__free(buf);
    return rc;
}

int
asec_afile_commit(asec_afile *f)
{
    int rc = ASEC_OK, e, dfd;

    if (f->failed) {
        asec_afile_abort(f);
        ASEC_FAIL(ASEC_EIO, "commit after a failed write");
    }
    if (fsync(f->fd) != 0) {
        e = errno;
        rc = asec__fail(errno_status(e), "%s: fsync failed: %s", f->path, strerror(e));
        goto fail;
    }
    e = close(f->fd) != 0 ? errno : 0;
    f->fd = -1;
    if (e != 0) {
        rc = asec__fail(errno_status(e), "%s: close failed: %s", f->path, strerror(e));
        goto fail;
    }
    if (rename(f->tmp, f->path) != 0) {
        e = errno;
        rc = asec__fail(ASEC_ECREATE, "%s: cannot rename into place: %s", f->path,
                        strerror(e));
        goto fail;
    }
    unregister_tmp(f);
    /* Make the rename itself durable.  Some file systems refuse fsync on a
     * directory (EINVAL); the rename has happened, so that is not an error. */
    dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != EROFS) {
            e = errno;
            rc = asec__fail(ASEC_EIO, "%s: fsync of directory failed: %s", f->dir,
                            strerror(e));
        }
        close(dfd);
    }
    afile_release(f);
    return rc;

fail:
    asec_afile_abort(f);
    return rc;
}

void
asec_afile_abort(asec_afile *f)
{
    if (f == NULL)
        return;
    if (f->fd >= 0)
        close(f->fd);
    if (f->slot >= 0)
        unlink(f->tmp);
    afile_release(f);
}

void
asec_afile_abort_all(void)
{
    for (int i = 0; i < MAX_OPEN; i++) {
        char *p = open_tmp[i];

        if (p != NULL)
            unlink(p);
    }
}

int
asec_afile_write_all(const char *path, const void *buf, size_t n)
{
    asec_afile *f;
    int rc = asec_afile_open(&f, path);

    if (rc != ASEC_OK)
        return rc;
    rc = asec_afile_write(f, buf, n);
    if (rc != ASEC_OK) {
        asec_afile_abort(f);
        return rc;
    }
    return asec_afile_commit(f);
}

int
asec_afile_mkdirs(const char *path)
{
    char *p;
    size_t n = strlen(path);
    struct stat st;

    if (n == 0)
        ASEC_FAIL(ASEC_ECREATE, "empty directory name");
    p = asec__strdup(path);
    if (p == NULL)
        return ASEC_ENOMEM;
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        p[i] = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;

            asec__fail(ASEC_ECREATE, "%s: cannot create directory: %s", p, strerror(e));
            asec__free(p);
            return ASEC_ECREATE;
        }
        if (i < n)
            p[i] = '/';
    }
    asec__free(p);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        ASEC_FAIL(ASEC_ECREATE, "%s: exists and is not a directory", path);
    return ASEC_OK;
}
