/* fuzz_common.c - helpers shared by the fuzz harnesses (see fuzz.h). */
#define _GNU_SOURCE 1 /* memfd_create */
#include "config.h"

#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attnsec/attnsec.h"
#include "fuzz.h"

static char scratch[256];
static char harness_name[64] = "fuzz";
static int mem_fd = -1;
static char mem_path[320];

void
fuzz_bug(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("fuzz: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nfuzz: last library message: %s\n", asec_errmsg());
    fuzz_scratch_remove();
    abort();
}

/* nftw callback: remove one entry, children before their directory. */
static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* Remove the scratch directory and everything in it (fuzz_data makes a
 * text/ subdirectory). */
void
fuzz_scratch_remove(void)
{
    if (scratch[0] == '\0')
        return;
    nftw(scratch, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    scratch[0] = '\0';
}

void
fuzz_setup(const char *harness)
{
    if (asec_init() != ASEC_OK)
        fuzz_bug("asec_init failed");
    snprintf(harness_name, sizeof harness_name, "%s", harness);
}

const char *
fuzz_scratch(void)
{
    static int registered;
    const char *base = getenv("TMPDIR");

    if (scratch[0] != '\0')
        return scratch;
    /* The writers fsync every file; on tmpfs that costs nothing. */
    if (base == NULL || base[0] == '\0')
        base = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(scratch, sizeof scratch, "%s/attnsec-%s-XXXXXX", base, harness_name);
    if (mkdtemp(scratch) == NULL) {
        snprintf(scratch, sizeof scratch, "/tmp/attnsec-%s-XXXXXX", harness_name);
        if (mkdtemp(scratch) == NULL)
            fuzz_bug("cannot make a scratch directory: %s", strerror(errno));
    }
    if (!registered) {
        atexit(fuzz_scratch_remove);
        registered = 1;
    }
    return scratch;
}

void
fuzz_write_file(const char *path, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0)
        fuzz_bug("cannot create %s: %s", path, strerror(errno));
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w <= 0)
            fuzz_bug("cannot write %s: %s", path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    close(fd);
}

const char *
fuzz_put_file(const uint8_t *data, size_t size)
{
    size_t done = 0;

    if (mem_fd < 0) {
#ifdef MFD_CLOEXEC
        mem_fd = memfd_create("attnsec-fuzz", MFD_CLOEXEC);
#endif
        if (mem_fd >= 0) {
            snprintf(mem_path, sizeof mem_path, "/proc/self/fd/%d", mem_fd);
            if (access(mem_path, R_OK) != 0) { // no /proc: use a real file
                close(mem_fd);
                mem_fd = -1;
            }
        }
        if (mem_fd < 0) {
            snprintf(mem_path, sizeof mem_path, "%s/input", fuzz_scratch());
            mem_fd = open(mem_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (mem_fd < 0)
                fuzz_bug("cannot create %s: %s", mem_path, strerror(errno));
        }
    }
    if (ftruncate(mem_fd, 0) != 0)
        fuzz_bug("ftruncate: %s", strerror(errno));
    while (done < size) {
        ssize_t n = pwrite(mem_fd, data + done, size - done, (off_t)done);

        if (n <= 0)
            fuzz_bug("pwrite: %s", strerror(errno));
        done += (size_t)n;
    }
    return mem_path;
}

void
fuzz_check_failure(int status, unsigned allowed, const char *path, const char *what)
{
    const char *msg = asec_errmsg();
    size_t plen = strlen(path);

    if (status >= 0 || status < ASEC_EINTERNAL)
        fuzz_bug("%s: status %d is not a failure code", what, status);
    if ((allowed & fuzz_bit(status)) == 0)
        fuzz_bug("%s: unexpected status %d (%s)", what, status, asec_strerror(status));
    if (msg[0] == '\0')
        fuzz_bug("%s: status %d without a message", what, status);
    if (!fuzz_one_line(msg, what))
        fuzz_bug("%s: message is not one line of printable text", what);
    if (status == ASEC_ENOMEM)
        return;
    if (strncmp(msg, path, plen) != 0 || msg[plen] != ':' || msg[plen + 1] != ' ')
        fuzz_bug("%s: message does not start with the file name", what);
}

int
fuzz_one_line(const char *msg, const char *what)
{
    const char *lax = getenv("ASEC_FUZZ_LAX_MESSAGES");

    if (lax != NULL && lax[0] != '\0' && strcmp(lax, "0") != 0) {
        if (strcmp(lax, "1") == 0 || strcmp(lax, "all") == 0)
            return 1;
        for (const char *p = lax; *p != '\0';) {
            size_t n = strcspn(p, ",");

            if (n > 0 && strncmp(what, p, n) == 0)
                return 1;
            p += n + (p[n] == ',');
        }
    }
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

static uint64_t
get_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

double
fuzz_decode(const unsigned char *p, int dtype)
{
    uint64_t u;

    switch ((asec_io_dtype)dtype) {
    case ASEC_IO_F64: {
        double d;

        u = get_le(p, 8);
        memcpy(&d, &u, sizeof d);
        return d;
    }
    case ASEC_IO_F32: {
        uint32_t w = (uint32_t)get_le(p, 4);
        float f;

        memcpy(&f, &w, sizeof f);
        return (double)f;
    }
    case ASEC_IO_F16:
        return asec_io_f16_to_double((uint16_t)get_le(p, 2));
    case ASEC_IO_BF16:
        return asec_io_bf16_to_double((uint16_t)get_le(p, 2));
    case ASEC_IO_I64:
        return (double)(int64_t)get_le(p, 8);
    case ASEC_IO_I32:
        return (double)(int32_t)(uint32_t)get_le(p, 4);
    case ASEC_IO_I16:
        return (double)(int16_t)(uint16_t)get_le(p, 2);
    case ASEC_IO_I8:
        return (double)(int8_t)p[0];
    case ASEC_IO_U8:
    case ASEC_IO_BOOL:
        return (double)p[0];
    case ASEC_IO_U16:
        return (double)get_le(p, 2);
    case ASEC_IO_U32:
        return (double)get_le(p, 4);
    case ASEC_IO_U64:
        return (double)get_le(p, 8);
    }
    fuzz_bug("fuzz_decode: dtype %d", dtype);
}

int
fuzz_same_double(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}
