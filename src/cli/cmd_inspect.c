/* cmd_inspect.c - 'attnsec inspect': describe and validate .npy and
 * safetensors files (attnsec-inspect(1)).  Reads headers only unless
 * --verify is given; never writes a file. */
#define _POSIX_C_SOURCE 200809L /* pread, O_CLOEXEC, strdup under -std=c11 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "attnsec/attnsec.h"
#include "attnsec/io.h"
#include "cli.h"
#include "commands.h"

/* Metadata values longer than this are cut in the text output. */
#define META_SHOW_BYTES 72

static void
print_help(void)
{
    printf(
        "Usage: attnsec inspect [OPTION]... FILE...\n"
        "Print the format, tensors (dtype, shape, bytes) and metadata of .npy and\n"
        "safetensors files, validating every header rule of attnsec-formats(5).\n"
        "Only headers are read unless --verify is given.\n"
        "\n"
        "Options:\n"
        "      --verify        also read all tensor data: check every BOOL byte and\n"
        "                        count NaN and infinite values\n"
        "      --json          print one JSON document on standard output\n"
        "  -h, --help          display this help and exit\n"
        "  -V, --version       output version information and exit\n"
        "\n"
        "Each malformed file gives one line on standard error naming the broken\n"
        "rule; all files are processed and the worst status is returned.\n"
        "Exit status: 0 on success, 64 usage error, 65 malformed file, 66 missing\n"
        "or unreadable file, 74 I/O error.  Full documentation: attnsec-inspect(1).\n");
}

/* Text for a terminal: control bytes, backslash and the quote escaped;
 * at most max bytes of s (cut at a UTF-8 boundary, then "..."). */
static void
print_escaped(const char *s, size_t max, int quote)
{
    size_t n = strlen(s), shown = n;

    if (n > max) {
        shown = max;
        while (shown > 0 && ((unsigned char)s[shown] & 0xc0) == 0x80)
            shown--; // do not split a UTF-8 sequence
    }
    for (size_t i = 0; i < shown; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch < 0x20 || ch == 0x7f)
            printf("\\x%02x", ch);
        else if (ch == '\\' || (quote && ch == '"'))
            printf("\\%c", ch);
        else
            putchar(ch);
    }
    if (shown < n)
        printf("...");
}

static void
print_shape(const asec_io_tensor *t)
{
    putchar('(');
    for (size_t k = 0; k < t->ndim; k++)
        printf(k + 1 < t->ndim ? "%zu, " : (t->ndim == 1 ? "%zu," : "%zu"), t->shape[k]);
    putchar(')');
}

/* A JSON string for s; s need not be valid UTF-8 (a path), in which case
 * bytes >= 0x80 are replaced by '?'. */
static json_t *
jstr(const char *s)
{
    json_t *j = json_string(s);
    char *copy;

    if (j != NULL)
        return j;
    copy = strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

static json_t *
jsize(size_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *
tensor_json(const asec_io_tensor *t, const asec_io_info *info, const size_t *counts,
            size_t i)
{
    json_t *o = json_object(), *shape = json_array();

    if (o == NULL || shape == NULL) {
        json_decref(o);
        json_decref(shape);
        return NULL;
    }
    for (size_t k = 0; k < t->ndim; k++)
        json_array_append_new(shape, jsize(t->shape[k]));
    json_object_set_new(o, "shape", shape);
    json_object_set_new(o, "dtype", json_string(asec_io_dtype_name(t->dtype)));
    if (info->format == ASEC_IO_NPY)
        json_object_set_new(o, "descr", json_string(asec_io_dtype_descr(t->dtype)));
    else
        json_object_set_new(o, "name", json_string(t->name));
    json_object_set_new(o, "nbytes", jsize(t->nbytes));
    json_object_set_new(o, "nelem", jsize(t->nelem));
    json_object_set_new(o, "offset", jsize(t->offset));
    if (counts != NULL) {
        json_object_set_new(o, "nan", jsize(counts[2 * i]));
        json_object_set_new(o, "inf", jsize(counts[2 * i + 1]));
    }
    return o;
}

/* Inspect one file; returns its exit status.  In JSON mode the file's
 * object is appended to files. */
static int
inspect_one(const char *path, int verify, json_t *files)
{
    asec_io_options opts = ASEC_IO_OPTIONS_INIT;
    asec_io_file *f = NULL;
    asec_io_info info;
    json_t *jf = NULL, *jt = NULL, *jm = NULL;
    size_t nan = 0, inf = 0, *counts = NULL; /* (ntensors, 2): NaN, Inf */
    int rc, st;

    opts.allow_nonfinite = 1; // --verify counts them; that is not an error here
    rc = asec_io_open(&f, path, ASEC_IO_AUTO, ASEC_IO_LOAD_HEADER, &opts);
    if (rc == ASEC_OK && verify) {
        asec_io_file_info(f, &info);
        counts = calloc(2 * info.ntensors + 1, sizeof *counts);
        if (counts == NULL) {
            asec_io_file_free(f);
            cli_error("out of memory");
            return EXIT_TEMPFAIL;
        }
        for (size_t i = 0; rc == ASEC_OK && i < info.ntensors; i++) {
            /* Raw bytes: every value is checked and counted, and a large
             * integer tensor is not an error as it would be as doubles. */
            rc = asec_io_file_load(f, i, ASEC_IO_LOAD_RAW);
            if (rc == ASEC_OK) {
                counts[2 * i] = asec_io_file_tensor(f, i)->n_nan;
                counts[2 * i + 1] = asec_io_file_tensor(f, i)->n_inf;
                nan += counts[2 * i];
                inf += counts[2 * i + 1];
                asec_io_file_unload(f, i);
            }
        }
    }
    if (rc != ASEC_OK) {
        st = cli_fail(rc);
        asec_io_file_free(f);
        free(counts);
        if (files != NULL) {
            jf = json_object();
            json_object_set_new(jf, "path", jstr(path));
            json_object_set_new(jf, "status", json_string("error"));
            json_object_set_new(jf, "exit", json_integer(st));
            json_object_set_new(jf, "error", jstr(asec_errmsg()));
            json_array_append_new(files, jf);
        }
        return st;
    }
    asec_io_file_info(f, &info);

    if (files != NULL) {
        jf = json_object();
        jt = json_array();
        if (jf == NULL || jt == NULL) {
            json_decref(jf);
            json_decref(jt);
            asec_io_file_free(f);
            free(counts);
            cli_error("out of memory");
            return EXIT_TEMPFAIL;
        }
        json_object_set_new(jf, "path", jstr(path));
        json_object_set_new(jf, "status", json_string("ok"));
        json_object_set_new(
            jf, "format",
            json_string(info.format == ASEC_IO_NPY ? "npy" : "safetensors"));
        json_object_set_new(jf, "file_bytes", jsize(info.file_bytes));
        json_object_set_new(jf, "header_bytes", jsize(info.header_bytes));
        json_object_set_new(jf, "data_offset", jsize(info.data_offset));
        json_object_set_new(jf, "verified", json_boolean(verify));
        if (info.format == ASEC_IO_NPY) {
            char v[16];

            snprintf(v, sizeof v, "%d.%d", info.version_major, info.version_minor);
            json_object_set_new(jf, "version", json_string(v));
            json_object_set_new(jf, "fortran_order", json_boolean(info.fortran_order));
        } else {
            jm = json_object();
            for (size_t i = 0; jm != NULL && i < info.nmeta; i++) {
                const char *k, *val;

                if (asec_io_file_meta(f, i, &k, &val) == ASEC_OK)
                    json_object_set_new(jm, k, json_string(val));
            }
            json_object_set_new(jf, "metadata", jm);
        }
        if (verify) {
            json_object_set_new(jf, "nan", jsize(nan));
            json_object_set_new(jf, "inf", jsize(inf));
        }
        json_object_set_new(jf, "tensors", jt);
    } else if (info.format == ASEC_IO_NPY) {
        printf("%s: npy v%d.%d, %zu bytes (header %zu, data %zu at offset %zu)\n", path,
               info.version_major, info.version_minor, info.file_bytes, info.header_bytes,
               info.file_bytes - info.data_offset, info.data_offset);
    } else {
        printf(
            "%s: safetensors, %zu tensor%s, %zu metadata key%s, %zu bytes (header %zu, "
            "data %zu at offset %zu)\n",
            path, info.ntensors, info.ntensors == 1 ? "" : "s", info.nmeta,
            info.nmeta == 1 ? "" : "s", info.file_bytes, info.header_bytes,
            info.file_bytes - info.data_offset, info.data_offset);
        for (size_t i = 0; i < info.nmeta; i++) {
            const char *k, *val;

            if (asec_io_file_meta(f, i, &k, &val) != ASEC_OK)
                continue;
            printf("  metadata ");
            print_escaped(k, META_SHOW_BYTES, 0);
            printf(" = \"");
            print_escaped(val, META_SHOW_BYTES, 1);
            printf("\"\n");
        }
    }

    for (size_t i = 0; i < info.ntensors; i++) {
        const asec_io_tensor *t = asec_io_file_tensor(f, i);

        if (files != NULL) {
            json_array_append_new(jt, tensor_json(t, &info, counts, i));
            continue;
        }
        if (info.format == ASEC_IO_NPY) {
            printf("  array: %s (%s) shape ", asec_io_dtype_descr(t->dtype),
                   asec_io_dtype_name(t->dtype));
            print_shape(t);
            printf(", %zu bytes%s", t->nbytes,
                   info.fortran_order ? ", fortran_order (transposed on load)" : "");
        } else {
            printf("  tensor ");
            print_escaped(t->name, 256, 0);
            printf(": %s shape ", asec_io_dtype_name(t->dtype));
            print_shape(t);
            printf(", %zu bytes at %zu", t->nbytes, t->offset - info.data_offset);
        }
        if (counts != NULL)
            printf(", %zu NaN, %zu Inf", counts[2 * i], counts[2 * i + 1]);
        putchar('\n');
    }
    if (files == NULL && verify)
        printf("  verified: all %zu data bytes read; %zu NaN, %zu Inf\n",
               info.file_bytes - info.data_offset, nan, inf);
    if (files != NULL)
        json_array_append_new(files, jf);
    asec_io_file_free(f);
    free(counts);
    return EXIT_OK;
}

int
cmd_inspect(int argc, char **argv)
{
    enum { OPT_VERIFY = 256, OPT_JSON };
    static const struct option longopts[] = {{"verify", no_argument, NULL, OPT_VERIFY},
                                             {"json", no_argument, NULL, OPT_JSON},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    int c, verify = 0, json = 0, worst = EXIT_OK;
    json_t *doc = NULL, *files = NULL;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_VERIFY:
            verify = 1;
            break;
        case OPT_JSON:
            json = 1;
            break;
        case 'h':
            print_help();
            return EXIT_OK;
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (optind >= argc)
        return cli_usage_error("missing FILE operand");
    if (json) {
        doc = json_object();
        files = json_array();
        if (doc == NULL || files == NULL ||
            json_object_set_new(doc, "files", files) != 0) {
            json_decref(doc);
            cli_error("out of memory");
            return EXIT_TEMPFAIL;
        }
    }
    for (int i = optind; i < argc; i++) {
        int st = inspect_one(argv[i], verify, files);

        if (st > worst)
            worst = st;
    }
    if (json) {
        json_object_set_new(doc, "exit", json_integer(worst));
        if (json_dumpf(doc, stdout, JSON_SORT_KEYS | JSON_INDENT(2)) != 0 ||
            putchar('\n') == EOF)
            worst = EXIT_IOERR;
        json_decref(doc);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("write error on standard output");
        if (worst < EXIT_IOERR)
            worst = EXIT_IOERR;
    }
    return worst;
}
