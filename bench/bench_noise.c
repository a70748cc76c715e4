/* bench_noise.c - throughput of the samplers on one core (make bench).
 *
 * Figures, best of three runs each:
 *   u64          raw seeded stream (asec_rng_u64): the anchor every sampler
 *                is measured against ("u64-equivalents" per sample)
 *   normal       asec_rng_normal, and asec_rng_normal_fill; target >= 30 M/s
 *   laplace      asec_rng_laplace
 *   dgauss       exact discrete Gaussian, fast and GMP paths, at sigma = 3
 *                and at sigma ~ 2^20 (the lattice size a release uses)
 *   dlaplace     exact discrete Laplace, fast and GMP paths
 *   release      asec_noise_release (snap + noise + unsnap), values/s
 * Prints figures and says whether the normal target is met; exits 0 either
 * way (a loaded machine must not fail make bench).  Nothing in make check
 * depends on these numbers.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "attnsec/attnsec.h"

#define NORMAL_TARGET 30e6
#define REPEAT 3

static double
now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static asec_rng *
stream(const char *label)
{
    asec_rng *r;

    if (asec_rng_alloc_seeded(&r, 2024, label) != ASEC_OK) {
        fprintf(stderr, "bench_noise: %s\n", asec_errmsg());
        exit(2);
    }
    return r;
}

/* Keeps the compiler from discarding the samples. */
static volatile double sink;

enum kind { U64, NORMAL, NORMAL_FILL, LAPLACE, DGAUSS, DLAPLACE, RELEASE };

struct job {
    enum kind kind;
    size_t n;
    uint64_t num, den;
    asec_noise_path path;
};

/* Samples per second of one job, best of REPEAT. */
static double
rate(const struct job *j)
{
    static double fbuf[1 << 16], xbuf[1 << 16];
    static int64_t ibuf[1 << 16];
    double best = 0;

    for (int rep = 0; rep < REPEAT; rep++) {
        asec_rng *r = stream("bench");
        double t0 = now(), t, acc = 0;
        int rc = ASEC_OK;

        switch (j->kind) {
        case U64:
            for (size_t i = 0; i < j->n; i++)
                acc += (double)(asec_rng_u64(r) >> 40);
            break;
        case NORMAL:
            for (size_t i = 0; i < j->n; i++)
                acc += asec_rng_normal(r);
            break;
        case NORMAL_FILL:
            for (size_t i = 0; i < j->n; i += 1 << 16) {
                asec_rng_normal_fill(r, fbuf, 1 << 16);
                acc += fbuf[0];
            }
            break;
        case LAPLACE:
            for (size_t i = 0; i < j->n; i++)
                acc += asec_rng_laplace(r);
            break;
        case DGAUSS:
        case DLAPLACE:
            for (size_t i = 0; i < j->n && rc == ASEC_OK; i += 1 << 16) {
                rc = j->kind == DGAUSS
                         ? asec_noise_dgauss(ibuf, 1 << 16, r, j->num, j->den, j->path)
                         : asec_noise_dlaplace(ibuf, 1 << 16, r, j->num, j->den, j->path);
                acc += (double)ibuf[0];
            }
            break;
        case RELEASE: {
            asec_noise_options o = ASEC_NOISE_OPTIONS_INIT;

            o.epsilon = 1.0;
            o.delta = 1e-5;
            o.path = j->path;
            for (size_t i = 0; i < (1 << 16); i++)
                xbuf[i] = sin((double)i);
            for (size_t i = 0; i < j->n && rc == ASEC_OK; i += 1 << 16) {
                rc = asec_noise_release(fbuf, xbuf, 1 << 16, &o, r, NULL);
                acc += fbuf[0];
            }
            break;
        }
        }
        t = now() - t0;
        asec_rng_free(r);
        if (rc != ASEC_OK) {
            fprintf(stderr, "bench_noise: %s\n", asec_errmsg());
            exit(2);
        }
        sink = acc;
        if ((double)j->n / t > best)
            best = (double)j->n / t;
    }
    return best;
}

static void
row(const char *name, double r, double anchor)
{
    printf("  %-40s %9.2f M/s   %5.2f u64-equivalents\n", name, r / 1e6, anchor / r);
}

int
main(void)
{
    const size_t big = 20000000, mid = 2000000, small = 1 << 19;
    const uint64_t s2_lattice = (uint64_t)1 << 40; /* sigma = 2^20 lattice units */
    double u64, normal, fill;
    struct job j;

    if (asec_init() != ASEC_OK) {
        fprintf(stderr, "bench_noise: %s\n", asec_errmsg());
        return 2;
    }
    printf("attnsec %s, one core, seeded ChaCha20 stream, best of %d\n",
           asec_version_string(), REPEAT);

    j = (struct job){U64, big, 0, 0, ASEC_NOISE_PATH_AUTO};
    u64 = rate(&j);
    row("asec_rng_u64 (anchor)", u64, u64);

    j.kind = NORMAL;
    normal = rate(&j);
    row("asec_rng_normal", normal, u64);
    j.kind = NORMAL_FILL;
    fill = rate(&j);
    row("asec_rng_normal_fill", fill, u64);
    j.kind = LAPLACE;
    row("asec_rng_laplace", rate(&j), u64);

    printf("exact lattice noise (CKS20):\n");
    j = (struct job){DGAUSS, mid, 9, 1, ASEC_NOISE_PATH_FAST};
    row("discrete Gaussian sigma=3, fast", rate(&j), u64);
    j.path = ASEC_NOISE_PATH_GMP;
    j.n = small;
    row("discrete Gaussian sigma=3, GMP", rate(&j), u64);
    j = (struct job){DGAUSS, mid, s2_lattice, 1, ASEC_NOISE_PATH_FAST};
    row("discrete Gaussian sigma=2^20, fast", rate(&j), u64);
    j.path = ASEC_NOISE_PATH_GMP;
    j.n = small;
    row("discrete Gaussian sigma=2^20, GMP", rate(&j), u64);
    j = (struct job){DLAPLACE, mid, (uint64_t)1 << 60, (uint64_t)1 << 40,
                     ASEC_NOISE_PATH_FAST};
    row("discrete Laplace b=2^20, fast", rate(&j), u64);
    j.path = ASEC_NOISE_PATH_GMP;
    j.n = small;
    row("discrete Laplace b=2^20, GMP", rate(&j), u64);
    j = (struct job){RELEASE, mid, 0, 0, ASEC_NOISE_PATH_AUTO};
    row("asec_noise_release Gaussian (values)", rate(&j), u64);

    printf("normal target %.0f M/s: %s (%.2fx)\n", NORMAL_TARGET / 1e6,
           normal >= NORMAL_TARGET ? "met" : "MISSED", normal / NORMAL_TARGET);
    return 0;
}
