/* cmd_batch.c - 'attnsec batch plan|run|status|merge': campaigns of
 * independent, idempotent tasks keyed by content hashes (RELIABILITY.md §8,
 * ECOSYSTEM.md §7, attnsec-batch(1)).
 *
 * A campaign directory DIR holds
 *   manifest.json        the manifest as given (provenance)
 *   plan.json            tool version, manifest hash, task count, tasks hash
 *   tasks.jsonl          one task per line, immutable once written
 *   results/ID.json      one result per finished task, with its own checksum
 *   failed/ID.json       the last failure of an unfinished task
 *   work/ID/             the task's -o directory, stdout.txt and stderr.txt
 *   ledger/ID.N.json     DP releases: written before the release (attempt N)
 *   locks/ID.lock        "HOST PID" of the process running the task
 * Tasks run in a forked child that calls the command function in process
 * (commands.h) with the task's argv; every file is written atomically.
 */
#include "config.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "attnsec/attnsec.h"
#include "batch_plan.h"
#include "batch_result.h"
#include "cli.h"
#include "commands.h"
#include "printable.h"
#include "slurp.h"

/* Caps on manifests and plans (RELIABILITY.md §5.5; the manifest's in
 * batch_plan.h). */
#define MANIFEST_MAX_BYTES BATCH_MANIFEST_MAX_BYTES
#define MAX_TASKS BATCH_MAX_TASKS
#define TASKS_MAX_BYTES BATCH_TASKS_MAX_BYTES
#define RESULT_MAX_BYTES BATCH_RESULT_MAX_BYTES
#define ID_BYTES BATCH_ID_BYTES

/* ------------------------------------------------------------- commands */

struct batch_group {
    const char *name;
    cli_fn fn;
    const struct cli_method *methods;
};

/* The commands a task may run (not 'batch' itself). */
static const struct batch_group batch_groups[] = {{"account", NULL, cmd_account_methods},
                                                  {"attack", NULL, cmd_attack_methods},
                                                  {"defend", NULL, cmd_defend_methods},
                                                  {"model", NULL, cmd_model_methods},
                                                  {"data", NULL, cmd_data_methods},
                                                  {"inspect", cmd_inspect, NULL},
                                                  {"release", cmd_release, NULL},
                                                  {"audit", cmd_audit, NULL},
                                                  {NULL, NULL, NULL}};

/* Find the command named by argv[0] (and argv[1] for groups with methods).
 * Sets *nwords to 1 or 2.  NULL when unknown. */
static cli_fn
find_command(size_t argc, char *const *argv, size_t *nwords)
{
    if (argc == 0)
        return NULL;
    for (const struct batch_group *g = batch_groups; g->name != NULL; g++) {
        if (strcmp(g->name, argv[0]) != 0)
            continue;
        if (g->methods == NULL) {
            *nwords = 1;
            return g->fn;
        }
        if (argc < 2)
            return NULL;
        for (const struct cli_method *m = g->methods; m->name != NULL; m++) {
            if (strcmp(m->name, argv[1]) == 0) {
                *nwords = 2;
                return m->fn;
            }
        }
        return NULL;
    }
    return NULL;
}

/* -------------------------------------------------------------- helpers */

/* BLAKE2b-256 of a regular file; 0 or -1 with errno (EINVAL: not a
 * regular file, which could block or never end: a FIFO, /dev/zero). */
static int
file_hash_hex(char out[65], const char *path, long long *bytes)
{
    crypto_generichash_state st;
    unsigned char h[32], buf[65536];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat sb;
    FILE *f;
    size_t n;
    long long total = 0;

    if (fd < 0)
        return -1;
    errno = 0;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno != 0 ? errno : EINVAL; // fstat's error, or not a regular file

        close(fd);
        errno = e;
        return -1;
    }
    if ((f = fdopen(fd, "rb")) == NULL) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        crypto_generichash_update(&st, buf, n);
        total += (long long)n;
    }
    if (ferror(f)) {
        fclose(f);
        errno = EIO;
        return -1;
    }
    fclose(f);
    crypto_generichash_final(&st, h, sizeof h);
    batch_to_hex(out, h, sizeof h);
    if (bytes != NULL)
        *bytes = total;
    return 0;
}

/* Write a JSON value atomically (pretty unless compact). */
static int
write_json(const char *path, const json_t *j, int compact)
{
    size_t flags = JSON_SORT_KEYS | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY;
    char *text = json_dumps(j, flags | (compact ? JSON_COMPACT : JSON_INDENT(2)));
    size_t n;
    char *buf;
    int rc;

    if (text == NULL) {
        cli_error("%s: out of memory", path);
        return EXIT_TEMPFAIL;
    }
    n = strlen(text);
    buf = realloc(text, n + 2);
    if (buf == NULL) {
        free(text);
        cli_error("%s: out of memory", path);
        return EXIT_TEMPFAIL;
    }
    buf[n] = '\n';
    rc = asec_afile_write_all(path, buf, n + 1);
    free(buf);
    return rc == ASEC_OK ? 0 : cli_fail(rc);
}

/* Shortest decimal that reads back as v. */
static void
fmt_double(char *buf, size_t cap, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* ------------------------------------------------------------- campaign */

/* Result validity: the file parses, its checksum matches and its task is
 * this task (batch_result.c).  Returns 1 valid, 0 absent, -1 present but
 * invalid.  With out, the parsed result is returned (valid only). */
static int
result_check(const struct batch_campaign *c, const struct batch_task *t, json_t **out)
{
    return batch_result_check(c->dir, t, RESULT_MAX_BYTES, out);
}

/* ----------------------------------------------------------------- plan */

static int
plan_usage(int err)
{
    if (err)
        return cli_usage_error("missing manifest or -o DIR");
    printf("Usage: attnsec batch plan [OPTION]... MANIFEST -o DIR\n"
           "Expand a JSON manifest (commands, option grids, seeds) into the task list\n"
           "DIR/tasks.jsonl; each task id hashes its argv, inputs, seed and the tool\n"
           "version.\n\n"
           "  -o, --output=DIR      the campaign directory (created)\n"
           "  -q, --quiet           print nothing on success\n"
           "  -h, --help            display this help and exit\n"
           "  -V, --version         output version information and exit\n\n"
           "The manifest format is in attnsec-batch(1).  Exit status: 0 on success,\n"
           "64 usage error, 65 malformed manifest, 66 missing input, 73 DIR holds a\n"
           "different plan, 78 invalid manifest.  Full documentation: "
           "attnsec-batch(1).\n");
    return EXIT_OK;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* What manifest expansion needs from this file (batch_plan.h). */
static const struct batch_plan_env plan_env = {find_command, file_hash_hex, MAX_TASKS,
                                               TASKS_MAX_BYTES};

static int
cmd_batch_plan(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    const char *out = NULL, *mpath;
    json_t *m = NULL, *plan = NULL;
    struct batch_plan bp = {0};
    char *mtext = NULL, *p = NULL, mhx[65];
    size_t mlen = 0;
    int c, st = 0, quiet = 0;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            return plan_usage(0);
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (optind != argc - 1 || out == NULL)
        return plan_usage(1);
    mpath = argv[optind];
    /* Validate and expand in memory first: a bad manifest creates nothing. */
    if ((st = batch_slurp(mpath, MANIFEST_MAX_BYTES, &mtext, &mlen, 0)) != 0)
        return st;
    batch_hash_hex(mhx, mtext, mlen, 32); // the bytes parsed, not a second read
    if ((st = batch_json_parse(&m, mpath, mtext, mlen, 0)) != 0 ||
        (st = batch_plan_expand(&bp, mpath, m, &plan_env)) != 0)
        goto done;
    plan = json_pack("{s:i, s:{s:s, s:s}, s:s?, s:{s:s, s:s}, s:I, s:s, s:O?}",
                     "schema_version", BATCH_SCHEMA_VERSION, "tool", "name", "attnsec",
                     "version", PACKAGE_VERSION, "name", bp.name, "manifest", "path",
                     mpath, "blake2b_256", mhx, "ntasks", (json_int_t)bp.ntasks,
                     "tasks_blake2b_256", bp.tasks_hash, "plot", bp.plot);
    if (plan == NULL) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    /* An existing plan is kept if identical; a different one is refused. */
    if ((p = batch_path_join(out, "tasks.jsonl", NULL)) == NULL) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    if (access(p, F_OK) == 0) {
        char old[65], *pj = batch_path_join(out, "plan.json", NULL);
        int same = file_hash_hex(old, p, NULL) == 0 && strcmp(old, bp.tasks_hash) == 0;
        int complete = pj != NULL && access(pj, F_OK) == 0;

        free(pj);
        if (same && complete) {
            if (!quiet)
                printf("%s: already planned (%zu tasks)\n", out, bp.ntasks);
            goto done;
        }
        if (!same) {
            cli_error("%s already holds a different plan; tasks.jsonl is immutable, so "
                      "plan into a new directory",
                      out);
            st = EXIT_CANTCREAT;
            goto done;
        }
        /* The same tasks.jsonl without plan.json: a plan that was interrupted
         * before its last write.  Finish it (rewriting identical bytes). */
    }
    {
        static const char *const sub[] = {"results", "failed", "work", "ledger", "locks"};
        int rc = asec_afile_mkdirs(out);

        for (size_t s = 0; rc == ASEC_OK && s < 5; s++) {
            char *d = batch_path_join(out, sub[s], NULL);

            rc = d ? asec_afile_mkdirs(d) : ASEC_ENOMEM;
            free(d);
        }
        if (rc != ASEC_OK) {
            st = cli_fail(rc);
            goto done;
        }
    }
    free(p);
    p = batch_path_join(out, "manifest.json", NULL);
    if (p == NULL || (st = write_json(p, m, 0)) != 0)
        goto done;
    free(p);
    /* tasks.jsonl before plan.json: a directory with plan.json is complete. */
    p = batch_path_join(out, "tasks.jsonl", NULL);
    if (p == NULL) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    {
        int rc = asec_afile_write_all(p, bp.text, bp.len);

        if (rc != ASEC_OK) {
            st = cli_fail(rc);
            goto done;
        }
    }
    free(p);
    p = batch_path_join(out, "plan.json", NULL);
    if (p == NULL || (st = write_json(p, plan, 0)) != 0)
        goto done;
    if (!quiet && bp.ntasks == 0)
        printf("%s: 0 tasks (every experiment has an empty seed list)\n", out);
    else if (!quiet)
        printf("%s: %zu tasks (indices 0-%zu); run them with 'attnsec batch run %s'\n",
               out, bp.ntasks, bp.ntasks - 1, out);
done:
    free(p);
    free(mtext);
    batch_plan_free(&bp);
    json_decref(plan);
    json_decref(m);
    return st;
}

/* ------------------------------------------------------------------ run */

static int
run_usage(void)
{
    printf("Usage: attnsec batch run [OPTION]... DIR\n"
           "Run the tasks of campaign DIR that have no valid result yet; each result\n"
           "is written atomically to DIR/results/ID.json with its own checksum.\n\n"
           "Selection (default: every task):\n"
           "  -i, --task-index=LIST   tasks by index: 3, 0-9 or 1,4-6; 'auto' reads\n"
           "                            SLURM_ARRAY_TASK_ID\n"
           "      --shard=I/N         the tasks whose index is I modulo N\n"
           "Execution:\n"
           "  -j, --jobs=N            run up to N tasks at once (default 1)\n"
           "      --force             run again even when a valid result exists (a DP\n"
           "                            release then charges its budget again)\n"
           "  -q, --quiet             no progress output\n"
           "  -v, --verbose           one line per task\n"
           "  -h, --help              display this help and exit\n"
           "  -V, --version           output version information and exit\n\n"
           "Exit status: 0 when every selected task has a valid result, 75 when the\n"
           "only failures are retryable (signal, lock held, out of disk), else the\n"
           "failing task's status (65 bad data, 78 configuration, ...).\n"
           "Full documentation: attnsec-batch(1).\n");
    return EXIT_OK;
}

/* Parse "3", "0-9", "1,4-6" into a 0/1 mask over n tasks. */
static int
parse_index_list(const char *text, size_t n, unsigned char *mask)
{
    const char *s = text;

    while (*s != '\0') {
        char *end;
        unsigned long long a, b;

        if (*s < '0' || *s > '9')
            return cli_usage_error("--task-index: '%s' is not a list like 3,5-7", text);
        errno = 0;
        a = strtoull(s, &end, 10);
        b = a;
        if (*end == '-') {
            s = end + 1;
            if (*s < '0' || *s > '9')
                return cli_usage_error("--task-index: '%s' is not a list like 3,5-7",
                                       text);
            b = strtoull(s, &end, 10);
        }
        if (errno != 0 || b < a || (*end != ',' && *end != '\0'))
            return cli_usage_error("--task-index: '%s' is not a list like 3,5-7", text);
        if (b >= n)
            return cli_usage_error("--task-index: %llu is out of range (the campaign has "
                                   "%zu tasks, 0-%zu)",
                                   b, n, n ? n - 1 : 0);
        for (unsigned long long i = a; i <= b; i++)
            mask[i] = 1;
        s = *end == ',' ? end + 1 : end;
    }
    return 0;
}

/* The holder of a lock file, "HOST PID\n" (batch_result.c): 1 and host and
 * *pid, or 0 when it cannot be read or is not that. */
static int
read_lock(const char *path, char host[256], long *pid)
{
    char *buf;
    size_t len;
    int ok;

    if (slurp_regular(path, BATCH_LOCK_MAX_BYTES, &buf, &len) != SLURP_OK)
        return 0;
    ok = batch_lock_parse(buf, len, host, pid);
    free(buf);
    return ok;
}

/* Take DIR/locks/ID.lock for this process.  0 taken, 1 held by a live
 * process (holder in who), -1 error. */
static int
lock_take(const char *path, char *who, size_t cap)
{
    char host[256] = "", line[320];

    gethostname(host, sizeof host - 1);
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);

        if (fd >= 0) {
            int n = snprintf(line, sizeof line, "%s %ld\n", host, (long)getpid());
            ssize_t w = write(fd, line, (size_t)n);

            close(fd);
            return w == n ? 0 : -1;
        }
        if (errno != EEXIST)
            return -1;
        {
            char h[256];
            long pid;
            int got = read_lock(path, h, &pid);

            if (got && strcmp(h, host) == 0 && kill((pid_t)pid, 0) != 0 &&
                errno == ESRCH) {
                unlink(path); /* stale: its owner is gone */
                continue;
            }
            snprintf(who, cap, "%s", got ? h : "?");
            if (got)
                snprintf(who + strlen(who), cap - strlen(who), " pid %ld", pid);
            return 1;
        }
    }
    snprintf(who, cap, "another process");
    return 1;
}

/* Remove the lock if it names pid on this host. */
static void
lock_release(const char *path, pid_t pid)
{
    char host[256] = "", h[256];
    long p;
    int mine;

    gethostname(host, sizeof host - 1);
    mine = read_lock(path, h, &p) && strcmp(h, host) == 0 && p == (long)pid;
    if (mine)
        unlink(path);
}

/* Remove the temporary files (".NAME.tmp.HOST.PID.RANDOM", asec_afile(3))
 * in directory d whose writer, a process on this host, is gone: what a
 * SIGKILL during a write leaves behind.  Returns the number removed. */
static size_t
clean_dir(const char *d, const char *host)
{
    DIR *dp = opendir(d);
    struct dirent *e;
    size_t n = 0;

    if (dp == NULL)
        return 0;
    while ((e = readdir(dp)) != NULL) {
        const char *tmp = strstr(e->d_name, ".tmp."), *h, *dot1, *dot2;
        char pidtext[32], *end;
        long pid;
        size_t hl = strlen(host);

        if (e->d_name[0] != '.' || tmp == NULL)
            continue;
        h = tmp + 5;
        if (strncmp(h, host, hl) != 0 || h[hl] != '.')
            continue; /* another host's: its owner cannot be checked here */
        dot1 = h + hl + 1;
        dot2 = strchr(dot1, '.');
        if (dot2 == NULL || (size_t)(dot2 - dot1) >= sizeof pidtext)
            continue;
        memcpy(pidtext, dot1, (size_t)(dot2 - dot1));
        pidtext[dot2 - dot1] = '\0';
        errno = 0;
        pid = strtol(pidtext, &end, 10);
        if (*end != '\0' || errno != 0 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char *p = batch_path_join(d, e->d_name, NULL);

            if (p != NULL && unlink(p) == 0)
                n++;
            free(p);
        }
    }
    closedir(dp);
    return n;
}

static size_t
clean_campaign(const struct batch_campaign *c)
{
    static const char *const sub[] = {"results", "failed", "ledger", "merged"};
    char host[256] = "";
    size_t n = 0;

    gethostname(host, sizeof host - 1);
    for (size_t i = 0; i < 4; i++) {
        char *d = batch_path_join(c->dir, sub[i], NULL);

        if (d != NULL)
            n += clean_dir(d, host);
        free(d);
    }
    for (size_t i = 0; i < c->ntasks; i++) {
        char *d = batch_path_join(c->dir, "work", c->tasks[i].id);

        if (d != NULL)
            n += clean_dir(d, host);
        free(d);
    }
    return n;
}

/* The child: run task t in process, write its result.  Returns the exit
 * status of the child. */
static int
child_run(const struct batch_campaign *c, const struct batch_task *t, int force)
{
    char *lock = NULL, *work = NULL, *outp = NULL, *errp = NULL, *resp = NULL;
    char **av = NULL, who[300], *rtext = NULL;
    json_t *argv = json_object_get(t->obj, "argv"), *a;
    size_t ac = json_array_size(argv), i, nw = 0, rlen;
    int st = 0, fd_out = -1, fd_err = -1, save_out = -1, save_err = -1, lk;
    cli_fn fn;

    lock = batch_path_join(c->dir, "locks", t->id);
    work = batch_path_join(c->dir, "work", t->id);
    resp = batch_path_join(c->dir, "results", t->id);
    if (lock == NULL || work == NULL || resp == NULL)
        return EXIT_TEMPFAIL;
    {
        char *l2 = malloc(strlen(lock) + 6), *r2 = malloc(strlen(resp) + 6);

        if (l2 == NULL || r2 == NULL)
            return EXIT_TEMPFAIL;
        sprintf(l2, "%s.lock", lock);
        sprintf(r2, "%s.json", resp);
        free(lock);
        free(resp);
        lock = l2;
        resp = r2;
    }
    lk = lock_take(lock, who, sizeof who);
    if (lk == 1) {
        cli_error("task %zu (%s): lock held by %s", t->index, t->id, who);
        return EXIT_TEMPFAIL;
    }
    if (lk < 0) {
        cli_error("%s: %s", lock, strerror(errno));
        return errno == ENOSPC || errno == EDQUOT ? EXIT_TEMPFAIL : EXIT_CANTCREAT;
    }
    /* Another runner may have finished it meanwhile. */
    if (!force && result_check(c, t, NULL) == 1)
        goto done;
    {
        int rc = asec_afile_mkdirs(work);

        if (rc != ASEC_OK) {
            st = cli_fail(rc);
            goto done;
        }
    }
    /* The ledger entry comes before the release (RELIABILITY.md §8). */
    if (t->dp_release) {
        for (unsigned n = 1; n < 100000; n++) {
            char *lp = malloc(strlen(c->dir) + strlen(t->id) + 32);
            json_t *le;

            if (lp == NULL) {
                st = EXIT_TEMPFAIL;
                goto done;
            }
            sprintf(lp, "%s/ledger/%s.%u.json", c->dir, t->id, n);
            if (access(lp, F_OK) == 0) {
                free(lp);
                continue;
            }
            le = json_pack("{s:s, s:I, s:I, s:O, s:s}", "task_id", t->id, "index",
                           (json_int_t)t->index, "attempt", (json_int_t)n, "argv", argv,
                           "note",
                           "written before the release: this attempt is charged whether "
                           "or not its result was published");
            st = le ? write_json(lp, le, 0) : EXIT_TEMPFAIL;
            json_decref(le);
            free(lp);
            if (st != 0)
                goto done;
            break;
        }
    }
    av = calloc(ac + 1, sizeof *av);
    if (av == NULL) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    json_array_foreach(argv, i, a)
    {
        const char *s = json_string_value(a);
        const char *ph = s ? strstr(s, "{outdir}") : NULL;

        if (s == NULL) {
            cli_error("task %zu: argv[%zu] is not a string", t->index, i);
            st = EXIT_DATAERR;
            goto done;
        }
        if (ph != NULL) {
            size_t n = strlen(s) + strlen(work) + 1;

            av[i] = malloc(n);
            if (av[i] != NULL)
                snprintf(av[i], n, "%.*s%s%s", (int)(ph - s), s, work, ph + 8);
        } else
            av[i] = strdup(s);
        if (av[i] == NULL) {
            st = EXIT_TEMPFAIL;
            goto done;
        }
    }
    fn = find_command(ac, av, &nw);
    if (fn == NULL) {
        cli_error("task %zu: '%s' is not an attnsec command", t->index, ac ? av[0] : "");
        st = EXIT_DATAERR;
        goto done;
    }
    outp = batch_path_join(work, "stdout.txt", NULL);
    errp = batch_path_join(work, "stderr.txt", NULL);
    if (outp == NULL || errp == NULL) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    fflush(stdout);
    fflush(stderr);
    fd_out = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    fd_err = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    save_out = dup(STDOUT_FILENO);
    save_err = dup(STDERR_FILENO);
    if (fd_out < 0 || fd_err < 0 || save_out < 0 || save_err < 0) {
        cli_error("%s: %s", work, strerror(errno));
        st = errno == ENOSPC ? EXIT_TEMPFAIL : EXIT_CANTCREAT;
        goto done;
    }
    dup2(fd_out, STDOUT_FILENO);
    dup2(fd_err, STDERR_FILENO);
    cli_set_command(av[0], nw == 2 ? av[1] : NULL);
    optind = 0;
    st = fn((int)(ac - (nw - 1)), av + (nw - 1));
    fflush(stdout);
    fflush(stderr);
    if (fsync(STDOUT_FILENO) != 0 && errno != EINVAL) {
        /* stdout.txt is part of the result when there is no report.json */
        st = st ? st : EXIT_IOERR;
    }
    dup2(save_out, STDOUT_FILENO);
    dup2(save_err, STDERR_FILENO);
    cli_set_command("batch", "run");
    if (st != 0) {
        cli_error("task %zu (%s) exited with status %d; see %s", t->index, t->id, st,
                  errp);
        goto done;
    }
    st = batch_result_build(&rtext, &rlen, t, work, st, RESULT_MAX_BYTES);
    if (st != 0)
        goto done;
    {
        int rc = asec_afile_write_all(resp, rtext, rlen);

        st = rc == ASEC_OK ? 0 : cli_fail(rc);
    }
done:
    if (fd_out >= 0)
        close(fd_out);
    if (fd_err >= 0)
        close(fd_err);
    if (save_out >= 0)
        close(save_out);
    if (save_err >= 0)
        close(save_err);
    if (lk == 0)
        lock_release(lock, getpid());
    if (av != NULL)
        for (i = 0; i < ac; i++)
            free(av[i]);
    free(av);
    free(rtext);
    free(lock);
    free(work);
    free(outp);
    free(errp);
    free(resp);
    return st;
}

/* Record a failure in DIR/failed/ID.json (or clear it on success). */
static void
record_outcome(const struct batch_campaign *c, const struct batch_task *t, int wstatus)
{
    char *p = batch_path_join(c->dir, "failed", t->id), *q;
    json_t *f;

    if (p == NULL)
        return;
    q = malloc(strlen(p) + 6);
    if (q == NULL) {
        free(p);
        return;
    }
    sprintf(q, "%s.json", p);
    free(p);
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
        unlink(q);
        free(q);
        return;
    }
    if (WIFSIGNALED(wstatus))
        f = json_pack("{s:s, s:I, s:i, s:b}", "task_id", t->id, "index",
                      (json_int_t)t->index, "signal", WTERMSIG(wstatus), "retryable", 1);
    else
        f = json_pack("{s:s, s:I, s:i, s:b}", "task_id", t->id, "index",
                      (json_int_t)t->index, "exit_status", WEXITSTATUS(wstatus),
                      "retryable", WEXITSTATUS(wstatus) == EXIT_TEMPFAIL);
    if (f != NULL && write_json(q, f, 0) != 0)
        cli_warn("could not record the failure of task %zu", t->index);
    json_decref(f);
    free(q);
}

struct slot {
    pid_t pid;
    size_t task;
};

static int
cmd_batch_run(int argc, char **argv)
{
    enum { OPT_SHARD = 256, OPT_FORCE };
    static const struct option longopts[] = {
        {"task-index", required_argument, NULL, 'i'},
        {"shard", required_argument, NULL, OPT_SHARD},
        {"jobs", required_argument, NULL, 'j'},
        {"force", no_argument, NULL, OPT_FORCE},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    const char *index_text = NULL, *shard_text = NULL;
    struct batch_campaign cp;
    unsigned char *mask = NULL;
    struct slot *slots = NULL;
    size_t jobs = 1, shard_i = 0, shard_n = 1, todo = 0, done_n = 0, skipped = 0;
    size_t next = 0, running = 0, failed = 0, retryable = 0;
    int c, st, force = 0, first_fatal = 0;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "i:j:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'i':
            index_text = optarg;
            break;
        case OPT_SHARD:
            shard_text = optarg;
            break;
        case 'j':
            if ((st = cli_parse_size("--jobs", optarg, 1, 1024, &jobs)) != 0)
                return st;
            break;
        case OPT_FORCE:
            force = 1;
            break;
        case 'q':
            cli_verbosity = 0;
            break;
        case 'v':
            cli_verbosity = 2;
            break;
        case 'h':
            return run_usage();
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("expected one campaign directory");
    if (index_text != NULL && shard_text != NULL)
        return cli_usage_error("--task-index and --shard exclude each other");
    if (shard_text != NULL) {
        char a[32], b[32];
        const char *slash = strchr(shard_text, '/');

        if (slash == NULL || (size_t)(slash - shard_text) >= sizeof a ||
            strlen(slash + 1) >= sizeof b)
            return cli_usage_error("--shard: '%s' is not I/N", shard_text);
        memcpy(a, shard_text, (size_t)(slash - shard_text));
        a[slash - shard_text] = '\0';
        strcpy(b, slash + 1);
        if ((st = cli_parse_size("--shard", b, 1, MAX_TASKS, &shard_n)) != 0 ||
            (st = cli_parse_size("--shard", a, 0, shard_n - 1, &shard_i)) != 0)
            return st;
    }
    if (index_text != NULL && strcmp(index_text, "auto") == 0) {
        index_text = getenv("SLURM_ARRAY_TASK_ID");
        if (index_text == NULL || index_text[0] == '\0')
            return cli_usage_error("--task-index=auto: SLURM_ARRAY_TASK_ID is not set "
                                   "(not inside a Slurm job array)");
    }
    if ((st = batch_campaign_load(&cp, argv[optind])) != 0) {
        batch_campaign_free(&cp);
        return st;
    }
    mask = calloc(cp.ntasks ? cp.ntasks : 1, 1);
    slots = calloc(jobs, sizeof *slots);
    if (mask == NULL || slots == NULL) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    if (index_text != NULL) {
        if ((st = parse_index_list(index_text, cp.ntasks, mask)) != 0)
            goto done;
    } else {
        for (size_t i = 0; i < cp.ntasks; i++)
            mask[i] = i % shard_n == shard_i;
    }
    {
        size_t n = clean_campaign(&cp);

        if (n > 0 && cli_verbosity > 1)
            fprintf(stderr, "%s: removed %zu temporary file(s) of killed writers\n",
                    cli_command(), n);
    }
    /* Skip the tasks that are done (idempotence). */
    for (size_t i = 0; i < cp.ntasks; i++) {
        if (!mask[i])
            continue;
        if (!force && result_check(&cp, &cp.tasks[i], NULL) == 1) {
            mask[i] = 0;
            skipped++;
            continue;
        }
        todo++;
    }
    if (cli_verbosity > 1)
        fprintf(stderr, "%s: %zu task(s) to run, %zu already done\n", cli_command(), todo,
                skipped);
    cli_progress_begin("tasks", todo);
    while (next < cp.ntasks || running > 0) {
        while (running < jobs && next < cp.ntasks) {
            pid_t pid;
            size_t k;

            if (!mask[next]) {
                next++;
                continue;
            }
            fflush(stdout);
            fflush(stderr);
            pid = fork();
            if (pid < 0) {
                cli_error("fork: %s", strerror(errno));
                first_fatal = first_fatal ? first_fatal : EXIT_TEMPFAIL;
                failed++;
                retryable++;
                next = cp.ntasks;
                break;
            }
            if (pid == 0) {
                int cst = child_run(&cp, &cp.tasks[next], force);

                fflush(stdout);
                fflush(stderr);
                free(mask);
                free(slots);
                batch_campaign_free(&cp);
                _exit(cst);
            }
            for (k = 0; k < jobs && slots[k].pid != 0; k++)
                ;
            slots[k].pid = pid;
            slots[k].task = next;
            running++;
            next++;
        }
        if (running == 0)
            break;
        {
            int ws;
            pid_t pid = waitpid(-1, &ws, 0);
            size_t k;

            if (pid < 0) {
                if (errno == EINTR)
                    continue;
                cli_error("waitpid: %s", strerror(errno));
                st = EXIT_SOFTWARE;
                goto done;
            }
            for (k = 0; k < jobs && slots[k].pid != pid; k++)
                ;
            if (k == jobs)
                continue;
            {
                const struct batch_task *t = &cp.tasks[slots[k].task];
                char *lock = batch_path_join(cp.dir, "locks", t->id);

                record_outcome(&cp, t, ws);
                if (WIFSIGNALED(ws)) {
                    cli_error("task %zu (%s) killed by signal %d", t->index, t->id,
                              WTERMSIG(ws));
                    if (lock != NULL) {
                        char *l2 = malloc(strlen(lock) + 6);

                        if (l2 != NULL) {
                            sprintf(l2, "%s.lock", lock);
                            lock_release(l2, pid);
                        }
                        free(l2);
                    }
                    failed++;
                    retryable++;
                } else if (WEXITSTATUS(ws) != 0) {
                    failed++;
                    if (WEXITSTATUS(ws) == EXIT_TEMPFAIL)
                        retryable++;
                    else if (first_fatal == 0)
                        first_fatal = WEXITSTATUS(ws);
                } else {
                    done_n++;
                    if (cli_verbosity > 1)
                        fprintf(stderr, "%s: task %zu (%s) done\n", cli_command(),
                                t->index, t->id);
                }
                free(lock);
            }
            slots[k].pid = 0;
            running--;
            cli_progress_update(done_n + failed);
        }
    }
    cli_progress_end();
    if (failed == 0)
        st = EXIT_OK;
    else {
        cli_error("%zu of %zu task(s) failed (%zu retryable); run again to retry, "
                  "'attnsec batch status %s' lists them",
                  failed, todo, retryable, cp.dir);
        st = first_fatal != 0 ? first_fatal : EXIT_TEMPFAIL;
    }
done:
    free(mask);
    free(slots);
    batch_campaign_free(&cp);
    return st;
}

/* --------------------------------------------------------------- status */

static int
status_usage(void)
{
    printf("Usage: attnsec batch status [OPTION]... DIR\n"
           "Count the tasks of campaign DIR that are done, failed and missing.\n\n"
           "  -l, --list=WHAT    print the indices of the tasks that are done, failed,\n"
           "                       missing, todo (failed and missing) or all, one per\n"
           "                       line (feeds GNU parallel)\n"
           "      --array        print the todo indices as one range list such as\n"
           "                       3,5-7 (feeds sbatch --array= and batch run -i)\n"
           "      --json         print the counts and lists as one JSON document\n"
           "  -h, --help         display this help and exit\n"
           "  -V, --version      output version information and exit\n\n"
           "Exit status: 0 when every task is done, 1 when some are not, 65 malformed\n"
           "campaign, 66 no campaign.  Full documentation: attnsec-batch(1).\n");
    return EXIT_OK;
}

/* Print the indices where state[i] == want (or want < 0: != 0) as ranges. */
static void
print_ranges(FILE *f, const signed char *state, size_t n, int want)
{
    int first = 1;

    for (size_t i = 0; i < n;) {
        size_t j;

        if (!(want < 0 ? state[i] != 0 : state[i] == want)) {
            i++;
            continue;
        }
        for (j = i; j + 1 < n && (want < 0 ? state[j + 1] != 0 : state[j + 1] == want);
             j++)
            ;
        fprintf(f, "%s%zu", first ? "" : ",", i);
        if (j > i)
            fprintf(f, "-%zu", j);
        first = 0;
        i = j + 1;
    }
    fputc('\n', f);
}

/* state: 0 done, 1 failed, 2 missing */
static int
campaign_state(const struct batch_campaign *c, signed char *state, size_t count[3])
{
    count[0] = count[1] = count[2] = 0;
    for (size_t i = 0; i < c->ntasks; i++) {
        int v = result_check(c, &c->tasks[i], NULL);

        if (v == 1)
            state[i] = 0;
        else if (v < 0)
            state[i] = 1;
        else {
            char *p = batch_path_join(c->dir, "failed", c->tasks[i].id);
            char *q = p ? malloc(strlen(p) + 6) : NULL;

            if (q == NULL) {
                free(p);
                return EXIT_TEMPFAIL;
            }
            sprintf(q, "%s.json", p);
            state[i] = access(q, F_OK) == 0 ? 1 : 2;
            free(p);
            free(q);
        }
        count[state[i]]++;
    }
    return 0;
}

static int
cmd_batch_status(int argc, char **argv)
{
    enum { OPT_ARRAY = 256, OPT_JSON };
    static const struct option longopts[] = {
        {"list", required_argument, NULL, 'l'}, {"array", no_argument, NULL, OPT_ARRAY},
        {"json", no_argument, NULL, OPT_JSON},  {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},    {NULL, 0, NULL, 0}};
    static const char *const names[] = {"done", "failed", "missing", "todo", "all"};
    struct batch_campaign cp;
    signed char *state = NULL;
    size_t count[3];
    int c, st, list = -1, array = 0, js = 0;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "l:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            list = -1;
            for (int k = 0; k < 5; k++)
                if (strcmp(optarg, names[k]) == 0)
                    list = k;
            if (list < 0)
                return cli_usage_error(
                    "--list: '%s' is not done, failed, missing, todo or "
                    "all",
                    optarg);
            break;
        case OPT_ARRAY:
            array = 1;
            break;
        case OPT_JSON:
            js = 1;
            break;
        case 'h':
            return status_usage();
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("expected one campaign directory");
    if ((st = batch_campaign_load(&cp, argv[optind])) != 0) {
        batch_campaign_free(&cp);
        return st;
    }
    state = calloc(cp.ntasks ? cp.ntasks : 1, 1);
    if (state == NULL || (st = campaign_state(&cp, state, count)) != 0) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    if (list >= 0) {
        for (size_t i = 0; i < cp.ntasks; i++)
            if (list == 4 || (list == 3 ? state[i] != 0 : state[i] == list))
                printf("%zu\n", i);
    } else if (array) {
        print_ranges(stdout, state, cp.ntasks, -1);
    } else if (js) {
        json_t *o =
            json_pack("{s:I, s:I, s:I, s:I, s:b, s:[], s:[]}", "tasks",
                      (json_int_t)cp.ntasks, "done", (json_int_t)count[0], "failed",
                      (json_int_t)count[1], "missing", (json_int_t)count[2], "complete",
                      count[0] == cp.ntasks, "failed_ids", "missing_ids");

        for (size_t i = 0; o != NULL && i < cp.ntasks; i++)
            if (state[i] != 0)
                json_array_append_new(
                    json_object_get(o, state[i] == 1 ? "failed_ids" : "missing_ids"),
                    json_pack("{s:I, s:s}", "index", (json_int_t)i, "id",
                              cp.tasks[i].id));
        if (o == NULL || json_dumpf(o, stdout, JSON_SORT_KEYS | JSON_INDENT(2)) != 0) {
            json_decref(o);
            st = EXIT_TEMPFAIL;
            goto done;
        }
        putchar('\n');
        json_decref(o);
    } else {
        const char *name = json_string_value(json_object_get(cp.plan, "name"));

        printf("campaign: %s%s%s%s\n", cp.dir, name ? " (" : "", name ? name : "",
               name ? ")" : "");
        printf("tasks:    %zu\ndone:     %zu\nfailed:   %zu\nmissing:  %zu\n", cp.ntasks,
               count[0], count[1], count[2]);
        if (count[0] != cp.ntasks) {
            printf("todo:     ");
            print_ranges(stdout, state, cp.ntasks, -1);
            printf("rerun with: attnsec batch run %s  (or sbatch --array=<todo>, or "
                   "'attnsec batch status --list=todo %s | parallel ...')\n",
                   cp.dir, cp.dir);
        }
    }
    st = count[0] == cp.ntasks ? EXIT_OK : EXIT_CHECK_FAILED;
done:
    free(state);
    batch_campaign_free(&cp);
    return st;
}

/* ---------------------------------------------------------------- merge */

static int
merge_usage(void)
{
    printf("Usage: attnsec batch merge [OPTION]... DIR\n"
           "Aggregate the results of campaign DIR into results.csv, results.json and\n"
           "plots, each written atomically.\n\n"
           "  -o, --output=OUT     write into OUT (default: DIR/merged)\n"
           "      --allow-partial  merge what is done, mark the output partial and exit\n"
           "                         1 when tasks are missing\n"
           "      --plot=FORMAT    png, svg or none: render the manifest's plot with\n"
           "                         gnuplot when it is installed (default png)\n"
           "  -q, --quiet          print nothing on success\n"
           "  -h, --help           display this help and exit\n"
           "  -V, --version        output version information and exit\n\n"
           "Exit status: 0 on success, 1 partial output written (--allow-partial), 65\n"
           "malformed campaign, 75 tasks missing (nothing written).\n"
           "Full documentation: attnsec-batch(1).\n");
    return EXIT_OK;
}

/* Flatten the scalar leaves of j under prefix into flat (key -> value). */
static void
flatten(json_t *flat, const char *prefix, json_t *j)
{
    if (json_is_object(j)) {
        const char *k;
        json_t *v;

        json_object_foreach(j, k, v)
        {
            size_t n = strlen(prefix) + strlen(k) + 2;
            char *p = malloc(n);

            if (p == NULL)
                return;
            snprintf(p, n, "%s%s%s", prefix, prefix[0] ? "." : "", k);
            flatten(flat, p, v);
            free(p);
        }
    } else if (!json_is_array(j) && prefix[0] != '\0') {
        json_object_set(flat, prefix, j);
    }
}

static void
csv_field(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void
csv_value(FILE *f, json_t *v)
{
    char num[64];

    if (v == NULL || json_is_null(v))
        return;
    if (json_is_string(v))
        csv_field(f, json_string_value(v));
    else if (json_is_integer(v))
        fprintf(f, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) {
        fmt_double(num, sizeof num, json_real_value(v));
        fputs(num, f);
    } else if (json_is_boolean(v))
        fputs(json_is_true(v) ? "true" : "false", f);
}

/* Collect the sorted union of keys of the objects in arr[*].field. */
static const char **
union_keys(json_t *rows, const char *field, size_t *n)
{
    json_t *set = json_object();
    const char **keys, *k;
    json_t *v, *row;
    size_t i, m = 0;

    json_array_foreach(rows, i, row)
    {
        json_object_foreach(json_object_get(row, field), k, v)
            json_object_set_new(set, k, json_true());
    }
    keys = calloc(json_object_size(set) + 1, sizeof *keys);
    if (keys != NULL) {
        json_object_foreach(set, k, v)
        {
            json_t *row0;
            size_t j;

            /* keys must outlive set: point into some row's key storage */
            json_array_foreach(rows, j, row0)
            {
                json_t *o = json_object_get(row0, field);
                void *it = json_object_iter_at(o, k);

                if (it != NULL) {
                    keys[m++] = json_object_iter_key(it);
                    break;
                }
            }
        }
        qsort(keys, m, sizeof *keys, cmp_str);
    }
    json_decref(set);
    *n = m;
    return keys;
}

static int
write_csv(const char *path, json_t *rows)
{
    const char **pk = NULL, **rk = NULL;
    size_t npk = 0, nrk = 0, i;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    json_t *row;
    int rc;

    if (f == NULL)
        return EXIT_TEMPFAIL;
    pk = union_keys(rows, "params", &npk);
    rk = union_keys(rows, "flat", &nrk);
    fputs("task_index,task_id,task_command,task_seed", f);
    for (i = 0; i < npk; i++) {
        fputc(',', f);
        csv_field(f, pk[i] + 2);
    }
    for (i = 0; i < nrk; i++) {
        fputc(',', f);
        csv_field(f, rk[i]);
    }
    fputs("\r\n", f);
    json_array_foreach(rows, i, row)
    {
        json_t *argv = json_object_get(json_object_get(row, "task"), "argv");
        char cmd[128];

        fprintf(f, "%lld,%s,",
                (long long)json_integer_value(json_object_get(row, "index")),
                json_string_value(json_object_get(row, "id")));
        snprintf(cmd, sizeof cmd, "%s%s%s", json_string_value(json_array_get(argv, 0)),
                 json_is_string(json_array_get(argv, 1)) &&
                         json_string_value(json_array_get(argv, 1))[0] != '-'
                     ? " "
                     : "",
                 json_is_string(json_array_get(argv, 1)) &&
                         json_string_value(json_array_get(argv, 1))[0] != '-'
                     ? json_string_value(json_array_get(argv, 1))
                     : "");
        csv_field(f, cmd);
        fputc(',', f);
        csv_value(f, json_object_get(json_object_get(row, "task"), "seed"));
        for (size_t k = 0; k < npk; k++) {
            fputc(',', f);
            csv_value(f, json_object_get(json_object_get(row, "params"), pk[k]));
        }
        for (size_t k = 0; k < nrk; k++) {
            fputc(',', f);
            csv_value(f, json_object_get(json_object_get(row, "flat"), rk[k]));
        }
        fputs("\r\n", f);
    }
    free(pk);
    free(rk);
    if (cli_memstream_close(f) != 0) {
        free(buf);
        return EXIT_TEMPFAIL;
    }
    rc = asec_afile_write_all(path, buf, len);
    free(buf);
    return rc == ASEC_OK ? 0 : cli_fail(rc);
}

/* plots/NAME.dat + NAME.gp for the manifest's plot (x option, y result). */
static int
write_plot(const char *out, json_t *rows, json_t *plot, const char *fmt, int quiet)
{
    const char *x = json_string_value(json_object_get(plot, "x"));
    const char *y = json_string_value(json_object_get(plot, "y"));
    char *pd = batch_path_join(out, "plots", NULL), *dat = NULL, *gp = NULL, *buf = NULL;
    size_t len = 0, i;
    FILE *f;
    json_t *row;
    int rc, st = 0;

    if (pd == NULL || (rc = asec_afile_mkdirs(pd)) != ASEC_OK) {
        st = pd ? cli_fail(rc) : EXIT_TEMPFAIL;
        goto done;
    }
    dat = batch_path_join(pd, "merged.dat", NULL);
    gp = batch_path_join(pd, "merged.gp", NULL);
    f = open_memstream(&buf, &len);
    if (dat == NULL || gp == NULL || f == NULL) {
        if (f != NULL)
            fclose(f);
        st = EXIT_TEMPFAIL;
        goto done;
    }
    fprintf(f, "# %s  %s  index\n", x, y);
    json_array_foreach(rows, i, row)
    {
        json_t *xv = json_object_get(json_object_get(row, "params"), x);
        json_t *yv = json_object_get(json_object_get(row, "flat"), y);

        if (!json_is_number(xv) || !json_is_number(yv))
            continue;
        fprintf(f, "%.17g %.17g %lld\n", json_number_value(xv), json_number_value(yv),
                (long long)json_integer_value(json_object_get(row, "index")));
    }
    if (cli_memstream_close(f) != 0) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    if ((rc = asec_afile_write_all(dat, buf, len)) != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    free(buf);
    buf = NULL;
    f = open_memstream(&buf, &len);
    if (f == NULL) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    fprintf(f,
            "# gnuplot script written by attnsec batch merge; run: gnuplot merged.gp\n"
            "if (!exists(\"term\")) term = \"pngcairo\"\n"
            "set terminal term size 800,500\n"
            "set output \"merged.\" . (term eq \"svg\" ? \"svg\" : \"png\")\n"
            "set xlabel \"%s\"\nset ylabel \"%s\"\nset grid\nset key off\n"
            "plot \"merged.dat\" using 1:2 with linespoints pt 7\n",
            x, y);
    if (cli_memstream_close(f) != 0) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    if ((rc = asec_afile_write_all(gp, buf, len)) != ASEC_OK) {
        st = cli_fail(rc);
        goto done;
    }
    if (strcmp(fmt, "none") != 0) {
        pid_t pid = fork();
        int ws;

        if (pid == 0) {
            int dn = open("/dev/null", O_WRONLY);

            if (chdir(pd) != 0)
                _exit(127);
            if (dn >= 0) {
                dup2(dn, STDOUT_FILENO);
                dup2(dn, STDERR_FILENO);
            }
            execlp("gnuplot", "gnuplot", "-e",
                   strcmp(fmt, "svg") == 0 ? "term='svg'" : "term='pngcairo'",
                   "merged.gp", (char *)NULL);
            _exit(127);
        }
        if (pid < 0 || waitpid(pid, &ws, 0) < 0 || !WIFEXITED(ws) ||
            WEXITSTATUS(ws) != 0) {
            if (!quiet)
                fprintf(stderr,
                        "%s: hint: install gnuplot (Debian: gnuplot-nox) and run "
                        "'gnuplot merged.gp' in %s to render the plot\n",
                        cli_command(), pd);
        }
    }
done:
    free(buf);
    free(pd);
    free(dat);
    free(gp);
    return st;
}

static int
cmd_batch_merge(int argc, char **argv)
{
    enum { OPT_PARTIAL = 256, OPT_PLOT };
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"allow-partial", no_argument, NULL, OPT_PARTIAL},
        {"plot", required_argument, NULL, OPT_PLOT},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    const char *out = NULL, *fmt = "png";
    char *outdef = NULL, *p = NULL;
    struct batch_campaign cp;
    signed char *state = NULL;
    size_t count[3];
    json_t *rows = NULL, *merged = NULL, *missing = NULL;
    int c, st, partial_ok = 0, quiet = 0;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case OPT_PARTIAL:
            partial_ok = 1;
            break;
        case OPT_PLOT:
            if (strcmp(optarg, "png") != 0 && strcmp(optarg, "svg") != 0 &&
                strcmp(optarg, "none") != 0)
                return cli_usage_error("--plot: '%s' is not png, svg or none", optarg);
            fmt = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            return merge_usage();
        case 'V':
            return cli_print_version();
        default:
            return cli_option_error(argv, longopts, NULL);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("expected one campaign directory");
    if ((st = batch_campaign_load(&cp, argv[optind])) != 0) {
        batch_campaign_free(&cp);
        return st;
    }
    if (out == NULL) {
        out = outdef = batch_path_join(cp.dir, "merged", NULL);
        if (out == NULL) {
            st = EXIT_TEMPFAIL;
            goto done;
        }
    }
    state = calloc(cp.ntasks ? cp.ntasks : 1, 1);
    if (state == NULL || campaign_state(&cp, state, count) != 0) {
        st = EXIT_TEMPFAIL;
        goto done;
    }
    if (count[0] != cp.ntasks && !partial_ok) {
        cli_error("%zu of %zu task(s) have no valid result (%zu failed, %zu missing): ",
                  count[1] + count[2], cp.ntasks, count[1], count[2]);
        fprintf(stderr, "%s: todo: ", cli_command());
        print_ranges(stderr, state, cp.ntasks, -1);
        fprintf(stderr, "%s: run them, or merge with --allow-partial\n", cli_command());
        st = EXIT_TEMPFAIL;
        goto done;
    }
    rows = json_array();
    missing = json_array();
    for (size_t i = 0; i < cp.ntasks; i++) {
        json_t *r = NULL, *row, *flat;

        if (state[i] != 0) {
            json_array_append_new(missing, json_integer((json_int_t)i));
            continue;
        }
        if (result_check(&cp, &cp.tasks[i], &r) != 1) {
            cli_error("task %zu: its result changed while merging", i);
            st = EXIT_TEMPFAIL;
            goto done;
        }
        flat = json_object();
        flatten(flat, "", json_object_get(r, "results"));
        row = json_pack("{s:I, s:s, s:O, s:O, s:O, s:o}", "index", (json_int_t)i, "id",
                        cp.tasks[i].id, "task", cp.tasks[i].obj, "params",
                        json_object_get(cp.tasks[i].obj, "params"), "results",
                        json_object_get(r, "results"), "flat", flat);
        json_decref(r);
        if (row == NULL) {
            st = EXIT_TEMPFAIL;
            goto done;
        }
        json_array_append_new(rows, row);
    }
    {
        int rc = asec_afile_mkdirs(out);

        if (rc != ASEC_OK) {
            st = cli_fail(rc);
            goto done;
        }
    }
    p = batch_path_join(out, "results.csv", NULL);
    if (p == NULL || (st = write_csv(p, rows)) != 0)
        goto done;
    free(p);
    p = NULL;
    {
        json_t *tasks = json_array(), *row;
        size_t i;

        json_array_foreach(rows, i, row)
        {
            json_array_append_new(
                tasks,
                json_pack("{s:O, s:O, s:O, s:O, s:O}", "index",
                          json_object_get(row, "index"), "id", json_object_get(row, "id"),
                          "argv", json_object_get(json_object_get(row, "task"), "argv"),
                          "params", json_object_get(row, "params"), "results",
                          json_object_get(row, "results")));
        }
        merged = json_pack(
            "{s:i, s:s, s:O?, s:s, s:O, s:I, s:I, s:b, s:O, s:o}", "schema_version",
            BATCH_SCHEMA_VERSION, "tool_version", PACKAGE_VERSION, "name",
            json_object_get(cp.plan, "name"), "tasks_blake2b_256",
            json_string_value(json_object_get(cp.plan, "tasks_blake2b_256")), "manifest",
            json_object_get(cp.plan, "manifest"), "ntasks", (json_int_t)cp.ntasks,
            "nmerged", (json_int_t)json_array_size(rows), "partial",
            count[0] != cp.ntasks, "missing", missing, "tasks", tasks);
    }
    p = batch_path_join(out, "results.json", NULL);
    if (merged == NULL || p == NULL || (st = write_json(p, merged, 0)) != 0) {
        st = st ? st : EXIT_TEMPFAIL;
        goto done;
    }
    if (json_is_object(json_object_get(cp.plan, "plot")) &&
        (st = write_plot(out, rows, json_object_get(cp.plan, "plot"), fmt, quiet)) != 0)
        goto done;
    if (!quiet)
        printf("%s: merged %zu of %zu task(s)%s into %s/results.csv and results.json\n",
               cp.dir, json_array_size(rows), cp.ntasks,
               count[0] != cp.ntasks ? " (PARTIAL)" : "", out);
    st = count[0] == cp.ntasks ? EXIT_OK : EXIT_CHECK_FAILED;
done:
    free(p);
    free(outdef);
    free(state);
    json_decref(rows);
    json_decref(merged);
    json_decref(missing);
    batch_campaign_free(&cp);
    return st;
}

const struct cli_method cmd_batch_methods[] = {
    {"plan", cmd_batch_plan, "expand a manifest into the task list of a campaign"},
    {"run", cmd_batch_run, "run the tasks that have no valid result yet"},
    {"status", cmd_batch_status, "count done, failed and missing tasks"},
    {"merge", cmd_batch_merge, "aggregate the results into CSV, JSON and plots"},
    {NULL, NULL, NULL}};
