/* bench_acct.c - speed of the privacy accountant (make bench).
 *
 * Times the operations of issue #3 on the cases of ACCOUNTANT.md §8 and
 * prints each median (several repetitions, CLOCK_MONOTONIC, plus the CPU
 * time of the process, since the machine is shared) next to the issue's
 * target and the anchor timing measured for dp_accounting / Opacus on the
 * same kind of machine, with the speed-up (anchor / ours).  Each RDP
 * repetition uses a fresh accountant (its curve cache would otherwise make
 * the repetition free).  The peak memory of the T = 1e5 PLD case is
 * measured in a child process.  Not part of make check.
 */
#define _DEFAULT_SOURCE /* wait4 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attnsec/attnsec.h"

#define MAXREP 64

static double
now(clockid_t c)
{
    struct timespec t;

    clock_gettime(c, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int
cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

struct kase {
    const char *name;
    int kind; /* 0 RDP eps, 1 RDP calibrate, 2 PLD eps, 3 PLD calibrate */
    double q, sigma;
    uint64_t T;
    double delta, eps;
    int reps;
    double target_ms; /* the target */
    double anchor_ms; /* ACCOUNTANT.md §8 */
    const char *anchor;
};

static void
die(const char *what)
{
    fprintf(stderr, "bench_acct: %s: %s\n", what, asec_errmsg());
    exit(1);
}

/* One run of a case; returns the answer (epsilon or sigma). */
static double
run_once(const struct kase *k, asec_acct_result *res)
{
    asec_acct *a;
    double v = NAN;

    if (asec_acct_alloc(&a, NULL) != ASEC_OK)
        die("alloc");
    if (k->kind == 0 || k->kind == 2) {
        if (asec_acct_add_poisson_gaussian(a, k->q, k->sigma, k->T) != ASEC_OK)
            die("add");
        if (asec_acct_epsilon(a, k->kind == 0 ? ASEC_ACCT_RDP : ASEC_ACCT_PLD, k->delta,
                              res) != ASEC_OK)
            die(k->name);
        v = res->epsilon;
    } else {
        asec_acct_calib c = ASEC_ACCT_CALIB_INIT;

        c.q = k->q;
        c.steps = k->T;
        c.target_epsilon = k->eps;
        c.delta = k->delta;
        if (asec_acct_calibrate(a, k->kind == 1 ? ASEC_ACCT_RDP : ASEC_ACCT_PLD, &c, &v,
                                res) != ASEC_OK)
            die(k->name);
    }
    asec_acct_free(a);
    return v;
}

static void
bench(const struct kase *k)
{
    double wall[MAXREP], cpu[MAXREP], v = NAN;
    asec_acct_result r;
    int n = k->reps < MAXREP ? k->reps : MAXREP;

    for (int i = 0; i < n; i++) {
        double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);

        v = run_once(k, &r);
        wall[i] = 1e3 * (now(CLOCK_MONOTONIC) - w0);
        cpu[i] = 1e3 * (now(CLOCK_PROCESS_CPUTIME_ID) - c0);
    }
    qsort(wall, (size_t)n, sizeof *wall, cmp);
    qsort(cpu, (size_t)n, sizeof *cpu, cmp);
    printf("%-44s %10.3f %9.3f %8.1f %9.1f %7.0fx  %s = %.6g", k->name, wall[n / 2],
           cpu[n / 2], k->target_ms, k->anchor_ms, k->anchor_ms / wall[n / 2],
           k->kind % 2 ? "sigma" : "eps", v);
    if (k->kind == 2)
        printf(" [%.6g, %.6g] N=%zu", r.epsilon_lo, r.epsilon, r.pld_points);
    printf("  (%s)\n", k->anchor);
}

/* Peak resident memory of one PLD epsilon query, in a child process. */
static void
peak_memory(const struct kase *k)
{
    pid_t pid = fork();
    int status;
    struct rusage ru;

    if (pid < 0) {
        perror("bench_acct: fork");
        return;
    }
    if (pid == 0) {
        asec_acct_result r;

        run_once(k, &r);
        _exit(0);
    }
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("bench_acct: wait4");
        return;
    }
    printf("%-44s peak RSS %.1f MiB (target <= 256 MiB)\n", k->name,
           (double)ru.ru_maxrss / 1024.0);
}

int
main(void)
{
    static const struct kase cases[] = {
        {"RDP eps: TF tutorial q=.00427 s=1.1 T=14063", 0, 256.0 / 60000, 1.1, 14063,
         1e-5, 0, 31, 0.3, 11.4, "Opacus RDP; dp_accounting 28.6"},
        {"RDP eps: LLM-like q=.004 s=.8 T=2000 d=1e-6", 0, 0.004, 0.8, 2000, 1e-6, 0, 31,
         0.3, 12, "Opacus RDP; dp_accounting 36"},
        {"RDP eps: q=1e-4 s=.5 T=1e5", 0, 1e-4, 0.5, 100000, 1e-5, 0, 31, 0.3, 12,
         "Opacus RDP; dp_accounting 18"},
        {"RDP eps: q=.5 s=.5 T=10", 0, 0.5, 0.5, 10, 1e-5, 0, 31, 2.0, 84,
         "Opacus RDP; dp_accounting 64"},
        {"RDP eps: stress q=1.02e-5 s=.1 T=976563", 0, 1024.0 / 1e8, 0.1, 976563, 1e-7, 0,
         31, 2.0, 12, "Opacus RDP; dp_accounting 18"},
        {"RDP calibrate: TF tutorial eps=3", 1, 256.0 / 60000, 0, 14063, 1e-5, 3.0, 7, 10,
         76, "Opacus RDP; dp_accounting 196"},
        {"RDP calibrate: q=1e-3 T=1e5 eps=8 d=1e-6", 1, 1e-3, 0, 100000, 1e-6, 8.0, 7, 10,
         214, "Opacus RDP; dp_accounting 349"},
        {"RDP calibrate: q=1e-4 T=1e4 eps=.5 d=1e-9", 1, 1e-4, 0, 10000, 1e-9, 0.5, 7, 10,
         51, "Opacus RDP; dp_accounting 288"},
        {"PLD eps: TF tutorial (T=14063)", 2, 256.0 / 60000, 1.1, 14063, 1e-5, 0, 5, 50,
         342, "dp_accounting PLD (773 in the table run)"},
        {"PLD eps: LLM-like q=.004 s=.8 T=2000 d=1e-6", 2, 0.004, 0.8, 2000, 1e-6, 0, 5,
         50, 621, "dp_accounting PLD"},
        {"PLD eps: q=.5 s=.5 T=10", 2, 0.5, 0.5, 10, 1e-5, 0, 5, 50, 1700,
         "dp_accounting PLD"},
        {"PLD eps: q=1e-4 s=1 T=1e4 d=1e-9 (small eps)", 2, 1e-4, 1.0, 10000, 1e-9, 0, 3,
         50, 466, "dp_accounting PLD median"},
        {"PLD eps: q=1e-4 s=.5 T=1e5", 2, 1e-4, 0.5, 100000, 1e-5, 0, 3, 300, 1210,
         "dp_accounting PLD"},
        {"PLD eps: q=1e-3 s=.6 T=1e5 d=1e-9", 2, 1e-3, 0.6, 100000, 1e-9, 0, 3, 300, 955,
         "dp_accounting PLD"},
        {"PLD eps: q=1 s=20 T=1e5 d=1e-9", 2, 1.0, 20.0, 100000, 1e-9, 0, 3, 300, 688,
         "dp_accounting PLD"},
        {"PLD eps: stress q=1.02e-5 s=.1 T=976563", 2, 1024.0 / 1e8, 0.1, 976563, 1e-7, 0,
         3, 3000, 19700, "dp_accounting PLD"},
        {"PLD calibrate: TF tutorial eps=3", 3, 256.0 / 60000, 0, 14063, 1e-5, 3.0, 3,
         1000, 6930, "dp_accounting PLD"},
        {"PLD calibrate: q=1e-4 T=1e4 eps=.5 d=1e-9", 3, 1e-4, 0, 10000, 1e-9, 0.5, 1,
         1000, 8170, "dp_accounting PLD"},
        {"PLD calibrate: q=1e-3 T=1e5 eps=8 d=1e-6", 3, 1e-3, 0, 100000, 1e-6, 8.0, 1,
         1000, 12500, "dp_accounting PLD"},
    };

    if (asec_init() != ASEC_OK)
        die("init");
    printf("attnsec accountant benchmark (median wall and CPU ms; target and anchor from "
           "issue #3 / ACCOUNTANT.md 8)\n");
    printf("%-44s %10s %9s %8s %9s %8s\n", "case", "wall ms", "cpu ms", "target",
           "anchor", "speedup");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        bench(&cases[i]);
    /* Online per-step update with a cached curve: target <= 1 us. */
    {
        asec_acct *a;
        asec_acct_result r;
        double t0, t1;
        const int n = 10000000;

        if (asec_acct_alloc(&a, NULL) != ASEC_OK ||
            asec_acct_add_poisson_gaussian(a, 0.01, 1.0, 1) != ASEC_OK ||
            asec_acct_epsilon(a, ASEC_ACCT_RDP, 1e-5, &r) != ASEC_OK)
            die("step");
        t0 = now(CLOCK_MONOTONIC);
        for (int i = 0; i < n; i++)
            if (asec_acct_step(a, 0.01, 1.0) != ASEC_OK)
                die("step");
        t1 = now(CLOCK_MONOTONIC);
        printf("%-44s %10.6f ms per step (target <= 0.001 ms)\n",
               "online step (cached q, sigma)", 1e3 * (t1 - t0) / n);
        asec_acct_free(a);
    }
    peak_memory(&cases[12]);
    peak_memory(&cases[13]);
    return 0;
}
