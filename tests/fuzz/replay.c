/* replay.c - main() for a fuzz harness built without libFuzzer.
 *
 *     replay_npy FILE|DIR...
 *
 * Runs every regular file named on the command line, and every regular
 * file directly inside a named directory, through LLVMFuzzerTestOneInput()
 * once, in a buffer of exactly the file's size (so ASan and valgrind see
 * any read past the end).  Prints "replayed N inputs" and exits 0; a
 * harness that finds a bug aborts.  Exits 99 (a hard error for the
 * Automake test driver) when an argument cannot be read.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static size_t replayed;

static int
replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;

    if (fp == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t got;

        if (n == cap) {
            unsigned char *nb;

            cap = cap ? 2 * cap : 65536;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                fprintf(stderr, "replay: %s: out of memory\n", path);
                free(buf);
                fclose(fp);
                return -1;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(fp)) {
        fprintf(stderr, "replay: %s: read error\n", path);
        free(buf);
        fclose(fp);
        return -1;
    }
    fclose(fp);
    {
        /* An exact-size copy: a read one byte past the input is caught. */
        unsigned char *exact = malloc(n ? n : 1);

        if (exact == NULL) {
            free(buf);
            return -1;
        }
        if (n > 0)
            memcpy(exact, buf, n);
        free(buf);
        if (getenv("ASEC_REPLAY_VERBOSE") != NULL)
            fprintf(stderr, "replay: %s\n", path);
        LLVMFuzzerTestOneInput(exact, n);
        free(exact);
    }
    replayed++;
    return 0;
}

static int
replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;

    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc = replay_file(path);
    }
    closedir(d);
    return rc;
}

int
main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        int rc;

        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 99;
        }
        rc = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]);
        if (rc != 0)
            return 99;
    }
    printf("replayed %zu inputs\n", replayed);
    return 0;
}
