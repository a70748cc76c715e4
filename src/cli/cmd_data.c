/* cmd_data.c - 'attnsec data': the shipped datasets (attnsec-data(1),
 * attnsec/data.h).
 *
 *   list     name, summary and files of every dataset, and whether they are
 *            present in the data directory
 *   export   copy a dataset's files into a directory (atomically)
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "attnsec/afile.h"
#include "attnsec/attnsec.h"
#include "attnsec/data.h"
#include "cli.h"
#include "commands.h"

const struct cli_method cmd_data_methods[] = {
    {"list", cmd_data_list, "list the shipped datasets"},
    {"export", cmd_data_export, "copy a shipped dataset into a directory"},
    {NULL, NULL, NULL}};

static void
list_help(void)
{
    printf("Usage: attnsec data list [OPTION]...\n"
           "List the datasets shipped with attnsec, their files, and whether each file\n"
           "is present in the data directory (ATTNSEC_DATADIR, else the installed one).\n"
           "\n"
           "      --json              print one JSON document on standard output\n"
           "  -h, --help              display this help and exit\n"
           "  -V, --version           output version information and exit\n"
           "\n"
           "Exit status: 0 on success, 64 usage error.  Full documentation:\n"
           "attnsec-data(1).\n");
}

static int
file_present(const char *dir, const char *rel, long long *bytes)
{
    char path[4096];
    struct stat st;

    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    *bytes = (long long)st.st_size;
    return 1;
}

int
cmd_data_list(int argc, char **argv)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    const char *dir = cli_datadir();
    json_t *root = NULL, *arr = NULL;
    int c, json = 0;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = 1;
            break;
        case 'h':
            list_help();
            return EXIT_OK;
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (json) {
        root = json_object();
        arr = json_array();
        json_object_set_new(root, "datadir", json_string(dir));
        json_object_set(root, "datasets", arr);
        json_decref(arr);
    } else {
        printf("data directory: %s\n", dir);
    }
    for (size_t i = 0; i < asec_data_count(); i++) {
        const char *name, *summary;
        const char *const *files;
        json_t *o = NULL, *fa = NULL;

        if (asec_data_info(i, &name, &summary, &files) != ASEC_OK)
            return cli_fail(ASEC_EINTERNAL);
        if (json) {
            o = json_object();
            fa = json_array();
            json_object_set_new(o, "name", json_string(name));
            json_object_set_new(o, "summary", json_string(summary));
            json_object_set_new(o, "files", fa);
            json_array_append_new(arr, o);
        } else {
            printf("%-8s %s\n", name, summary);
        }
        for (const char *const *f = files; *f != NULL; f++) {
            long long bytes = 0;
            int have = file_present(dir, *f, &bytes);

            if (json) {
                json_t *fo = json_object();

                json_object_set_new(fo, "path", json_string(*f));
                json_object_set_new(fo, "present", json_boolean(have));
                if (have)
                    json_object_set_new(fo, "bytes", json_integer(bytes));
                json_array_append_new(fa, fo);
            } else if (have) {
                printf("         %-26s %lld bytes\n", *f, bytes);
            } else {
                printf("         %-26s missing\n", *f);
            }
        }
    }
    if (json) {
        int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);

        json_decref(root);
        if (rc != 0 || fputc('\n', stdout) == EOF)
            return cli_fail(ASEC_EIO);
    }
    return EXIT_OK;
}

static void
export_help(void)
{
    printf("Usage: attnsec data export NAME -o DIR\n"
           "Copy the files of a shipped dataset (attnsec data list) into DIR, keeping\n"
           "their relative paths (DIR/digits/train_images.npy, ...).  DIR and its\n"
           "subdirectories are created; each file is written atomically.\n"
           "\n"
           "  -o, --output=DIR        destination directory\n"
           "  -q, --quiet             no messages on standard error\n"
           "  -h, --help              display this help and exit\n"
           "  -V, --version           output version information and exit\n"
           "\n"
           "Exit status: 0 on success, 64 usage error (unknown NAME), 66 a dataset\n"
           "file is missing, 73 cannot create DIR, 74 I/O error.  Full documentation:\n"
           "attnsec-data(1).\n");
}

/* Read a whole (small) file into a malloc'ed buffer. */
static int
slurp(const char *path, unsigned char **buf, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    long n;

    *buf = NULL;
    if (fp == NULL) {
        cli_error("%s: %s", path, strerror(errno));
        return EXIT_NOINPUT;
    }
    if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
        fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        cli_error("%s: cannot determine the size", path);
        return EXIT_IOERR;
    }
    *buf = malloc((size_t)n + 1);
    if (*buf == NULL) {
        fclose(fp);
        return cli_fail(ASEC_ENOMEM);
    }
    *len = fread(*buf, 1, (size_t)n, fp);
    if (*len != (size_t)n || ferror(fp)) {
        fclose(fp);
        free(*buf);
        *buf = NULL;
        cli_error("%s: read failed", path);
        return EXIT_IOERR;
    }
    fclose(fp);
    return EXIT_OK;
}

int
cmd_data_export(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    const char *out = NULL, *dir = cli_datadir();
    const char *const *files = NULL;
    int c, rc, st;
    size_t count = 0;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'q':
            cli_verbosity = 0;
            break;
        case 'h':
            export_help();
            return EXIT_OK;
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("expected one dataset NAME (see 'attnsec data list')");
    if (out == NULL)
        return cli_usage_error("missing -o DIR");
    for (size_t i = 0; i < asec_data_count(); i++) {
        const char *name, *summary;
        const char *const *fl;

        if (asec_data_info(i, &name, &summary, &fl) == ASEC_OK &&
            strcmp(name, argv[optind]) == 0)
            files = fl;
    }
    if (files == NULL)
        return cli_usage_error("unknown dataset '%s' (see 'attnsec data list')",
                               argv[optind]);
    for (const char *const *f = files; *f != NULL; f++) {
        char src[4096], dst[4096], sub[4096];
        unsigned char *buf = NULL;
        size_t len = 0;
        char *slash;

        snprintf(src, sizeof src, "%s/%s", dir, *f);
        snprintf(dst, sizeof dst, "%s/%s", out, *f);
        snprintf(sub, sizeof sub, "%s", dst);
        slash = strrchr(sub, '/');
        if (slash != NULL)
            *slash = '\0';
        if ((rc = asec_afile_mkdirs(sub)) != ASEC_OK)
            return cli_fail(rc);
        if ((st = slurp(src, &buf, &len)) != EXIT_OK)
            return st;
        rc = asec_afile_write_all(dst, buf, len);
        free(buf);
        if (rc != ASEC_OK)
            return cli_fail(rc);
        count++;
    }
    if (cli_verbosity > 0)
        fprintf(stderr, "%s: copied %zu files of %s to %s\n", cli_command(), count,
                argv[optind], out);
    return EXIT_OK;
}
