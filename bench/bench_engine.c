/* bench_engine.c - speed of the transformer engine (issue #5):
 *
 *   1. T = 16, C = 64, L = 2, NH = 4 (MLP 256, K = 10, B = 1): one forward +
 *      backward pass (gradients w.r.t. parameters and inputs) and one
 *      second-order product grad_input <grad_theta L, v>; the goal is >= 10x
 *      faster than PyTorch float64 on the CPU, measured in the same run by
 *      bench/torch_engine.py when /usr/bin/python3 has torch.
 *   2. T = 512, C = 256, NH = 4: multi-head attention forward + backward from
 *      packed qkv; the goal is >= 50% of the dgemm throughput measured here
 *      (a 512^3 product), counting the 12 T^2 C flops of the six products.
 *
 * Run by 'make bench' with OPENBLAS_NUM_THREADS=1 (torch is limited to one
 * thread too).  Prints figures and ratios; never fails on a missed goal
 * (tests never assert on wall time), only on an error. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attnsec/attnsec.h"

#ifndef ASEC_SRCDIR
#define ASEC_SRCDIR "."
#endif

static double
now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int
die(const char *what)
{
    fprintf(stderr, "bench_engine: %s: %s\n", what, asec_errmsg());
    return EXIT_FAILURE;
}

/* The best of 5 rounds of mean seconds per call, each round at least
 * total/5 seconds.  fn returns an ASEC status. */
typedef int (*bench_fn)(void *ctx);

static double
best_time(bench_fn fn, void *ctx, double total)
{
    double best = 1e300;

    if (fn(ctx) != ASEC_OK)
        return -1.0;
    for (int r = 0; r < 5; r++) {
        double t0 = now(), t;
        long n = 0;

        do {
            if (fn(ctx) != ASEC_OK)
                return -1.0;
            n++;
            t = now() - t0;
        } while (t < total / 5);
        if (t / (double)n < best)
            best = t / (double)n;
    }
    return best;
}

struct small {
    asec_model *m;
    asec_model_batch b;
    double *g, *gx, *v;
};

static int
small_fwd_bwd(void *p)
{
    struct small *s = p;
    asec_model_vec out = {s->g, s->gx, NULL};
    double loss;

    return asec_model_grad(s->m, &loss, &out, &s->b);
}

static int
small_second(void *p)
{
    struct small *s = p;

    return asec_model_grad_dot_dinput(s->m, s->gx, NULL, s->v, &s->b);
}

struct big {
    size_t B, T, C, NH;
    double *qkv, *out, *att, *dout, *dqkv, *work;
};

static int
big_attn(void *p)
{
    struct big *s = p;
    int rc = asec_attn_forward(s->out, s->att, s->qkv, s->B, s->T, s->C, s->NH, 0);

    if (rc != ASEC_OK)
        return rc;
    memset(s->dqkv, 0, s->B * s->T * 3 * s->C * sizeof *s->dqkv);
    return asec_attn_backward(s->dqkv, s->work, s->dout, s->qkv, s->att, s->B, s->T, s->C,
                              s->NH);
}

struct gemm {
    asec_mat a, b, c;
};

static int
gemm_run(void *p)
{
    struct gemm *g = p;

    return asec_mat_gemm(&g->c, 1.0, &g->a, ASEC_NOTRANS, &g->b, ASEC_NOTRANS, 0.0);
}

/* Read "name seconds" lines from the torch script; 0 when it ran. */
static int
run_torch(double *fb, double *second, double *attn)
{
    char cmd[4096], line[256];
    FILE *fp;
    int st;

    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/bench/torch_engine.py' 2>/dev/null",
             ASEC_SRCDIR);
    fp = popen(cmd, "r");
    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof line, fp) != NULL) {
        char name[64];
        double t;

        if (sscanf(line, "%63s %lf", name, &t) != 2)
            continue;
        if (strcmp(name, "small_fwd_bwd") == 0)
            *fb = t;
        else if (strcmp(name, "small_second") == 0)
            *second = t;
        else if (strcmp(name, "attn_fwd_bwd") == 0)
            *attn = t;
    }
    st = pclose(fp);
    return st == 0 && *fb > 0 && *second > 0 && *attn > 0 ? 0 : -1;
}

int
main(void)
{
    struct small s;
    struct big bg = {1, 512, 256, 4, NULL, NULL, NULL, NULL, NULL, NULL};
    struct gemm gm;
    asec_model_arch a;
    asec_rng *rng;
    size_t P, n;
    double t_fb, t_2nd, t_attn, t_gemm, tf_fb = 0, tf_2nd = 0, tf_attn = 0;
    double attn_flops, gemm_flops;
    int have_torch;

    if (asec_init() != ASEC_OK || asec_rng_alloc_seeded(&rng, 0, "bench") != ASEC_OK)
        return die("init");
    /* 1. the small transformer */
    if (asec_model_arch_default(&a, ASEC_MODEL_TEXT) != ASEC_OK)
        return die("arch");
    a.vocab = 16, a.classes = 10, a.seq_len = 16, a.channels = 64, a.layers = 2;
    a.heads = 4, a.mlp_hidden = 256, a.causal = 0, a.pool = ASEC_MODEL_POOL_MEAN;
    if (asec_model_alloc(&s.m, &a) != ASEC_OK)
        return die("model");
    asec_model_init_params(s.m, rng);
    P = asec_model_param_count(s.m);
    memset(&s.b, 0, sizeof s.b);
    s.b.B = 1;
    s.b.x = malloc(16 * 64 * sizeof(double));
    s.b.labels = (const int64_t[]){3};
    s.g = malloc(P * sizeof *s.g);
    s.gx = malloc(16 * 64 * sizeof *s.gx);
    s.v = malloc(P * sizeof *s.v);
    if (s.b.x == NULL || s.g == NULL || s.gx == NULL || s.v == NULL)
        return die("malloc");
    asec_rng_normal_fill(rng, (double *)(uintptr_t)s.b.x, 16 * 64);
    asec_rng_normal_fill(rng, s.v, P);
    t_fb = best_time(small_fwd_bwd, &s, 1.0);
    t_2nd = best_time(small_second, &s, 1.0);
    if (t_fb < 0 || t_2nd < 0)
        return die("small model");

    /* 2. attention at T = 512, C = 256, and the dgemm reference */
    n = bg.B * bg.T * 3 * bg.C;
    bg.qkv = malloc(n * sizeof(double));
    bg.dqkv = malloc(n * sizeof(double));
    bg.out = malloc(bg.B * bg.T * bg.C * sizeof(double));
    bg.dout = malloc(bg.B * bg.T * bg.C * sizeof(double));
    bg.att = malloc(bg.B * bg.NH * bg.T * bg.T * sizeof(double));
    bg.work = malloc(bg.T * bg.T * sizeof(double));
    if (!bg.qkv || !bg.dqkv || !bg.out || !bg.dout || !bg.att || !bg.work)
        return die("malloc");
    asec_rng_normal_fill(rng, bg.qkv, n);
    asec_rng_normal_fill(rng, bg.dout, bg.B * bg.T * bg.C);
    t_attn = best_time(big_attn, &bg, 2.0);
    if (asec_mat_alloc(&gm.a, 512, 512) != ASEC_OK ||
        asec_mat_alloc(&gm.b, 512, 512) != ASEC_OK ||
        asec_mat_alloc(&gm.c, 512, 512) != ASEC_OK)
        return die("gemm alloc");
    asec_rng_normal_fill(rng, gm.a.data, 512 * 512);
    asec_rng_normal_fill(rng, gm.b.data, 512 * 512);
    t_gemm = best_time(gemm_run, &gm, 1.0);
    if (t_attn < 0 || t_gemm < 0)
        return die("attention");
    /* QK^T, att V (forward); dV, dP, dQ, dK (backward): 6 products of
     * 2 T^2 HS flops per head */
    attn_flops = 12.0 * (double)bg.B * (double)bg.T * (double)bg.T * (double)bg.C;
    gemm_flops = 2.0 * 512.0 * 512.0 * 512.0;

    have_torch = run_torch(&tf_fb, &tf_2nd, &tf_attn) == 0;
    printf("engine, T=16 C=64 L=2 NH=4 B=1 (%zu parameters):\n", P);
    printf("  forward+backward      %9.1f us", 1e6 * t_fb);
    if (have_torch)
        printf("   torch %9.1f us   speedup %5.1fx (goal >= 10x)", 1e6 * tf_fb,
               tf_fb / t_fb);
    printf("\n  second-order product  %9.1f us", 1e6 * t_2nd);
    if (have_torch)
        printf("   torch %9.1f us   speedup %5.1fx (goal >= 10x)", 1e6 * tf_2nd,
               tf_2nd / t_2nd);
    printf("\nattention forward+backward, T=512 C=256 NH=4 B=1:\n");
    printf("  %9.2f ms  %6.2f GFLOP/s; dgemm 512^3 %6.2f GFLOP/s; ratio %4.0f%% (goal >= "
           "50%%)\n",
           1e3 * t_attn, attn_flops / t_attn * 1e-9, gemm_flops / t_gemm * 1e-9,
           100.0 * (attn_flops / t_attn) / (gemm_flops / t_gemm));
    if (have_torch)
        printf("  torch %9.2f ms   speedup %5.1fx\n", 1e3 * tf_attn, tf_attn / t_attn);
    else
        printf("torch comparison skipped: /usr/bin/python3 has no torch module "
               "(Debian: python3-torch)\n");
    asec_model_free(s.m);
    asec_rng_free(rng);
    asec_mat_free(&gm.a), asec_mat_free(&gm.b), asec_mat_free(&gm.c);
    free((void *)(uintptr_t)s.b.x), free(s.g), free(s.gx), free(s.v);
    free(bg.qkv), free(bg.dqkv), free(bg.out), free(bg.dout), free(bg.att), free(bg.work);
    return EXIT_SUCCESS;
}
