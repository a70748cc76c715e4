/* check_rng.c - seeded streams are reproducible and follow the documented
 * construction; secure streams differ; the samplers have the right
 * distributions (fixed seeds, so the statistics are deterministic).
 *
 * Significance: every distributional test below rejects at alpha = 1e-6
 * (or at 6 standard errors, alpha ~ 2e-9 two-sided), so a correct sampler
 * fails none of them with probability > 0.9999 even if the seeds were
 * fresh. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gsl/gsl_cdf.h>
#include <sodium.h>

#include "attnsec/attnsec.h"
#include "testutil.h"

#define ALPHA 1e-6
#define ZIG_TAIL_CHECK 3.6541528853610088

static asec_rng *
seeded(uint64_t seed, const char *label)
{
    asec_rng *r;

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, seed, label), ASEC_OK);
    return r;
}

/* The stream key computed here from the rng.h description, independently
 * of rng.c. */
static void
expected_key(unsigned char key[32], uint64_t seed, const char *label)
{
    unsigned char msg[15 + 8], k0[32];

    memcpy(msg, "attnsec-seed-v1", 15);
    for (int i = 0; i < 8; i++)
        msg[15 + i] = (unsigned char)(seed >> (8 * i));
    crypto_generichash(k0, 32, msg, sizeof msg, NULL, 0);
    crypto_generichash(key, 32, (const unsigned char *)label, strlen(label), k0, 32);
}

START_TEST(test_documented_construction)
{
    unsigned char key[32], want[1000], got[1000];
    asec_rng *r = seeded(12345, "dlg/init");

    /* The stream is randombytes_buf_deterministic(key), byte for byte,
     * across refills and odd-sized reads. */
    expected_key(key, 12345, "dlg/init");
    randombytes_buf_deterministic(want, sizeof want, key);
    asec_rng_bytes(r, got, 3);
    asec_rng_bytes(r, got + 3, 600);
    asec_rng_bytes(r, got + 603, 397);
    ck_assert_mem_eq(got, want, sizeof want);
    ck_assert_uint_eq(asec_rng_tell(r), 1000);
    asec_rng_free(r);
}
END_TEST

START_TEST(test_derive_construction)
{
    unsigned char key[32], child[32], want[256], got[256];
    asec_rng *p = seeded(9, "task");
    asec_rng *c;

    /* A child's key is BLAKE2b(key = parent key, message = label), whatever
     * the parent has drawn. */
    asec_rng_bytes(p, got, 100);
    ck_assert_int_eq(asec_rng_derive(&c, p, "worker-3"), ASEC_OK);
    expected_key(key, 9, "task");
    crypto_generichash(child, 32, (const unsigned char *)"worker-3", 8, key, 32);
    randombytes_buf_deterministic(want, sizeof want, child);
    asec_rng_bytes(c, got, sizeof got);
    ck_assert_mem_eq(got, want, sizeof want);
    ck_assert_str_eq(asec_rng_get_label(c), "task/worker-3");
    ck_assert_uint_eq(asec_rng_get_seed(c), 9);
    asec_rng_free(c);
    asec_rng_free(p);
}
END_TEST

START_TEST(test_same_seed_same_bytes)
{
    asec_rng *a = seeded(42, "x"), *b = seeded(42, "x"), *c = seeded(42, "y"),
             *d = seeded(43, "x");
    unsigned char ba[256], bb[256], bc[256], bd[256];

    asec_rng_bytes(a, ba, sizeof ba);
    asec_rng_bytes(b, bb, sizeof bb);
    asec_rng_bytes(c, bc, sizeof bc);
    asec_rng_bytes(d, bd, sizeof bd);
    ck_assert_mem_eq(ba, bb, sizeof ba);
    ck_assert(memcmp(ba, bc, sizeof ba) != 0);
    ck_assert(memcmp(ba, bd, sizeof ba) != 0);
    ck_assert_int_eq(asec_rng_get_mode(a), ASEC_RNG_SEEDED);
    asec_rng_free(a);
    asec_rng_free(b);
    asec_rng_free(c);
    asec_rng_free(d);
}
END_TEST

START_TEST(test_secure_differs)
{
    asec_rng *a, *b, *c;
    unsigned char ba[64], bb[64];

    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_secure(&a), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_secure(&b), ASEC_OK);
    asec_rng_bytes(a, ba, sizeof ba);
    asec_rng_bytes(b, bb, sizeof bb);
    /* Equal 512-bit draws would mean a broken OS generator. */
    ck_assert(memcmp(ba, bb, sizeof ba) != 0);
    ck_assert_int_eq(asec_rng_get_mode(a), ASEC_RNG_SECURE);
    ck_assert_int_eq(asec_rng_seek(a, 0), ASEC_EINVAL);
    ck_assert_int_eq(asec_rng_derive(&c, a, "child"), ASEC_OK);
    ck_assert_int_eq(asec_rng_get_mode(c), ASEC_RNG_SECURE);
    asec_rng_free(a);
    asec_rng_free(b);
    asec_rng_free(c);
}
END_TEST

START_TEST(test_fork_discards_secure_buffer)
{
    asec_rng *r;
    unsigned char parent[32], child[32];
    int fds[2], status;
    pid_t pid;

    /* A forked child must not replay the parent's buffered secure bytes. */
    ck_assert_int_eq(asec_init(), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_secure(&r), ASEC_OK);
    (void)asec_rng_u64(r); /* fill the buffer */
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        asec_rng_bytes(r, child, sizeof child);
        _exit(write(fds[1], child, sizeof child) == (ssize_t)sizeof child ? 0 : 1);
    }
    asec_rng_bytes(r, parent, sizeof parent);
    ck_assert_int_eq(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(memcmp(parent, child, sizeof parent) != 0);
    close(fds[0]);
    close(fds[1]);
    asec_rng_free(r);
}
END_TEST

START_TEST(test_label_streams_uncorrelated)
{
    enum { N = 1 << 20 };
    asec_rng *a = seeded(77, "task-1"), *b = seeded(77, "task-2");
    static long pairs[256][16];
    double chi = 0, e = (double)N / (256 * 16);

    /* Chi-square on (byte of stream a, high nibble of the same byte of
     * stream b): dependence between same-seed streams would show here. */
    memset(pairs, 0, sizeof pairs);
    for (int i = 0; i < N; i++) {
        unsigned char x, y;

        asec_rng_bytes(a, &x, 1);
        asec_rng_bytes(b, &y, 1);
        pairs[x][y >> 4]++;
    }
    for (int i = 0; i < 256; i++)
        for (int j = 0; j < 16; j++)
            chi += (pairs[i][j] - e) * (pairs[i][j] - e) / e;
    ck_assert_double_gt(gsl_cdf_chisq_Q(chi, 256 * 16 - 1), ALPHA);
    asec_rng_free(a);
    asec_rng_free(b);
}
END_TEST

START_TEST(test_seek_resumes_stream)
{
    asec_rng *a = seeded(5, "ckpt"), *b = seeded(5, "ckpt");
    double xa[50], xb[50];
    uint64_t pos;

    for (int i = 0; i < 77; i++)
        (void)asec_rng_normal(a);
    pos = asec_rng_tell(a);
    for (int i = 0; i < 50; i++)
        xa[i] = asec_rng_normal(a);
    ck_assert_int_eq(asec_rng_seek(b, pos), ASEC_OK);
    ck_assert_uint_eq(asec_rng_tell(b), pos);
    for (int i = 0; i < 50; i++)
        xb[i] = asec_rng_normal(b);
    ck_assert_mem_eq(xa, xb, sizeof xa);
    asec_rng_free(a);
    asec_rng_free(b);
}
END_TEST

START_TEST(test_uniform_grid_and_range)
{
    asec_rng *r = seeded(1, "u");

    for (int i = 0; i < 100000; i++) {
        double u = asec_rng_uniform(r), p = asec_rng_uniform_pos(r);

        ck_assert(u >= 0.0 && u < 1.0);
        ck_assert(p > 0.0 && p < 1.0);
        /* u is a multiple of 2^-53: scaling by 2^53 leaves an integer. */
        ck_assert(ldexp(u, 53) == floor(ldexp(u, 53)));
    }
    asec_rng_free(r);
}
END_TEST

START_TEST(test_uniform_moments)
{
    enum { N = 1000000 };
    asec_rng *r = seeded(2, "moments");
    double s = 0, s2 = 0, mean, var;

    for (int i = 0; i < N; i++) {
        double u = asec_rng_uniform(r);

        s += u;
        s2 += u * u;
    }
    mean = s / N;
    var = s2 / N - mean * mean;
    /* SE of the mean: sqrt(1/12 / N); of the variance: sqrt(1/180 / N). */
    ck_assert_double_le(fabs(mean - 0.5), 6 * sqrt(1.0 / 12 / N));
    ck_assert_double_le(fabs(var - 1.0 / 12), 6 * sqrt(1.0 / 180 / N));
    asec_rng_free(r);
}
END_TEST

START_TEST(test_bounded_chisq)
{
    enum { N = 1000000, K = 7 };
    asec_rng *r = seeded(3, "bounded");
    long counts[K] = {0};
    double chi = 0, e = (double)N / K;

    ck_assert_uint_eq(asec_rng_bounded(r, 0), 0);
    ck_assert_uint_eq(asec_rng_bounded(r, 1), 0);
    for (int i = 0; i < N; i++) {
        uint64_t v = asec_rng_bounded(r, K);

        ck_assert_uint_lt(v, K);
        counts[v]++;
    }
    for (int k = 0; k < K; k++)
        chi += (counts[k] - e) * (counts[k] - e) / e;
    ck_assert_double_gt(gsl_cdf_chisq_Q(chi, K - 1), ALPHA);
    /* A bound near 2^64 exercises the rejection branch. */
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_lt(asec_rng_bounded(r, UINT64_MAX - 5), UINT64_MAX - 5);
    asec_rng_free(r);
}
END_TEST

/* Chi-square of n draws against a continuous CDF on equiprobable bins. */
static double
chisq_pvalue(asec_rng *r, double (*draw)(asec_rng *), double (*cdf)(double), int n)
{
    enum { BINS = 100 };
    long counts[BINS] = {0};
    double chi = 0, e = (double)n / BINS;

    for (int i = 0; i < n; i++) {
        double p = cdf(draw(r));
        int b = (int)(p * BINS);

        counts[b < 0 ? 0 : b >= BINS ? BINS - 1 : b]++;
    }
    for (int b = 0; b < BINS; b++)
        chi += (counts[b] - e) * (counts[b] - e) / e;
    return gsl_cdf_chisq_Q(chi, BINS - 1);
}

static double
normal_cdf(double x)
{
    return gsl_cdf_ugaussian_P(x);
}

static double
laplace_cdf(double x)
{
    return gsl_cdf_laplace_P(x, 1.0);
}

START_TEST(test_normal_distribution)
{
    enum { N = 1000000 };
    asec_rng *r = seeded(4, "normal");
    double s = 0, s2 = 0, tail = 0;

    ck_assert_double_gt(chisq_pvalue(r, asec_rng_normal, normal_cdf, N), ALPHA);
    for (int i = 0; i < N; i++) {
        double z = asec_rng_normal(r);

        s += z;
        s2 += z * z;
        tail += fabs(z) > ZIG_TAIL_CHECK;
    }
    ck_assert_double_le(fabs(s / N), 6 * sqrt(1.0 / N));
    ck_assert_double_le(fabs(s2 / N - 1.0), 6 * sqrt(2.0 / N));
    /* The tail beyond the ziggurat's base strip is drawn by a separate
     * branch: P(|Z| > 3.6541528853610088) = 2.58e-4, binomial SE. */
    {
        double p = 2 * gsl_cdf_ugaussian_Q(ZIG_TAIL_CHECK);

        ck_assert_double_le(fabs(tail / N - p), 6 * sqrt(p * (1 - p) / N));
    }
    asec_rng_free(r);
}
END_TEST

START_TEST(test_laplace_distribution)
{
    enum { N = 1000000 };
    asec_rng *r = seeded(6, "laplace");

    ck_assert_double_gt(chisq_pvalue(r, asec_rng_laplace, laplace_cdf, N), ALPHA);
    asec_rng_free(r);
}
END_TEST

static Suite *
rng_suite(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    TCase *ts = tcase_create("stats");

    tcase_add_test(tc, test_documented_construction);
    tcase_add_test(tc, test_derive_construction);
    tcase_add_test(tc, test_same_seed_same_bytes);
    tcase_add_test(tc, test_secure_differs);
    tcase_add_test(tc, test_seek_resumes_stream);
    tcase_add_test(tc, test_fork_discards_secure_buffer);
    tcase_add_test(ts, test_label_streams_uncorrelated);
    tcase_add_test(tc, test_uniform_grid_and_range);
    tcase_add_test(ts, test_uniform_moments);
    tcase_add_test(ts, test_bounded_chisq);
    tcase_add_test(ts, test_normal_distribution);
    tcase_add_test(ts, test_laplace_distribution);
    tcase_set_timeout(ts, 60);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, ts);
    return s;
}

int
main(void)
{
    return asec_test_run(rng_suite());
}
