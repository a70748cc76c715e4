/* slurp.c - read a regular file of bounded size (slurp.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "slurp.h"

int
slurp_regular(const char *path, size_t cap, char **buf, size_t *len)
{
    struct stat st;
    size_t want, n = 0;
    char *p;
    int fd, e;

    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? SLURP_MISSING : SLURP_OPEN;
    if (fstat(fd, &st) != 0) {
        e = errno;
        close(fd);
        errno = e;
        return SLURP_READ;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return SLURP_NOT_FILE;
    }
    if (st.st_size < 0 || (unsigned long long)st.st_size > cap) {
        *len = st.st_size < 0 ? cap + 1 : (size_t)st.st_size;
        close(fd);
        return SLURP_TOO_BIG;
    }
    want = (size_t)st.st_size;
    /* One byte more than the size: a file that grew is noticed. */
    p = malloc(want + 2);
    if (p == NULL) {
        close(fd);
        return SLURP_NOMEM;
    }
    while (n < want + 1) {
        ssize_t r = read(fd, p + n, want + 1 - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            e = errno;
            free(p);
            close(fd);
            errno = e;
            return SLURP_READ;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > want) {
        /* It grew while read: not what an atomic writer leaves. */
        free(p);
        return SLURP_CHANGED;
    }
    p[n] = '\0';
    *buf = p;
    *len = n;
    return SLURP_OK;
}

int
slurp_exit(int st, const char *path, size_t len, size_t cap)
{
    switch (st) {
    case SLURP_OK:
        return 0;
    case SLURP_MISSING:
    case SLURP_OPEN:
        cli_error("%s: %s", path, strerror(st == SLURP_MISSING ? ENOENT : errno));
        return EXIT_NOINPUT;
    case SLURP_NOT_FILE:
        cli_error("%s: not a regular file", path);
        return EXIT_DATAERR;
    case SLURP_TOO_BIG:
        cli_error("%s: %zu bytes exceed the cap of %zu", path, len, cap);
        return EXIT_DATAERR;
    case SLURP_READ:
        cli_error("%s: %s", path, strerror(errno));
        return EXIT_IOERR;
    case SLURP_CHANGED:
        cli_error("%s: changed while being read", path);
        return EXIT_TEMPFAIL;
    default:
        cli_error("%s: out of memory", path);
        return EXIT_TEMPFAIL;
    }
}
