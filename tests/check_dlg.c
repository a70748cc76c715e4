/* check_dlg.c - gradient leakage (attacks/dlg.c).
 *
 * TCases: core (exact recovery of the ATTACKS.md section 7.1 instances
 * n = 2, 4 for seeds 0-4 and n = 8 for seed 0, attention regression
 * (n = 4, d = 8, and n = d = 8 for seeds 0-4 with the suggested starts),
 * the default ViT on shipped digits with the [0, 1] box, warm starts,
 * iDLG labels, the token-span leak, joint labels), gradcheck (the exact
 * matching-loss gradient, Euclidean and cosine, inputs and soft labels,
 * against central differences; the LM residual), reference (the matching
 * losses and their gradients against PyTorch fixtures, Hungarian
 * assignment, matched error, decoding, PSNR, pruning, clipping), stats
 * (relative noise norm), errors (every documented ASEC_E*), oom
 * (fault-injection loop over the attack and the metrics). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "attnsec/dlg.h"
#include "testutil.h"

/* An instance of the DLG baseline family: weights from seed, tokens
 * N(0, 1), a random label (or targets E for attn-regression). */
struct inst {
    asec_model *m;
    size_t n, C, P;
    double *x, *g, *e;
    int64_t y;
};

static void
inst_make(struct inst *in, asec_model_kind kind, size_t n, size_t C, uint64_t seed)
{
    asec_model_arch a;
    asec_rng *r;
    asec_model_batch b;
    asec_model_vec gv = {NULL, NULL, NULL};

    memset(in, 0, sizeof *in);
    ck_assert_int_eq(asec_model_arch_default(&a, kind), ASEC_OK);
    a.channels = C;
    a.seq_len = n;
    ck_assert_int_eq(asec_model_alloc(&in->m, &a), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, seed, "check_dlg"), ASEC_OK);
    asec_model_init_params(in->m, r);
    in->n = n;
    in->C = C;
    in->P = asec_model_param_count(in->m);
    in->x = malloc(n * C * sizeof(double));
    in->e = malloc(n * C * sizeof(double));
    in->g = malloc(in->P * sizeof(double));
    ck_assert_ptr_nonnull(in->x);
    ck_assert_ptr_nonnull(in->e);
    ck_assert_ptr_nonnull(in->g);
    in->y = (int64_t)asec_rng_bounded(r, 4);
    asec_rng_normal_fill(r, in->x, n * C);
    asec_rng_normal_fill(r, in->e, n * C);
    memset(&b, 0, sizeof b);
    b.B = 1;
    b.T = n;
    b.x = in->x;
    if (kind == ASEC_MODEL_ATTN_REGRESSION)
        b.soft = in->e;
    else
        b.labels = &in->y;
    gv.params = in->g;
    ck_assert_int_eq(asec_model_grad(in->m, NULL, &gv, &b), ASEC_OK);
    asec_rng_free(r);
}

static void
inst_free(struct inst *in)
{
    asec_model_free(in->m);
    free(in->x);
    free(in->e);
    free(in->g);
}

static asec_dlg_result *
attack(struct inst *in, const asec_dlg_options *o, int known_targets, uint64_t seed)
{
    asec_dlg_problem pb = {1, in->n, in->g, NULL, known_targets ? in->e : NULL, NULL};
    asec_dlg_result *res = NULL;
    asec_rng *r;

    ck_assert_int_eq(asec_rng_alloc_seeded(&r, seed, "attack"), ASEC_OK);
    ck_assert_msg(asec_dlg_attack(&res, in->m, &pb, o, r) == ASEC_OK, "%s", asec_errmsg());
    asec_rng_free(r);
    return res;
}

/* ------------------------------------------------------------------ core */

START_TEST(test_recover_small)
{
    /* n = 2 and n = 4 (d = 16, 4 classes), seeds 0-4: matched relative
     * error <= 1e-10 with the default attack, labels by iDLG. */
    size_t n = _i < 5 ? 2 : 4;
    struct inst in;
    asec_dlg_options o;
    asec_dlg_result *res;
    double raw, mt;

    inst_make(&in, ASEC_MODEL_ATTN_BLOCK, n, 16, (uint64_t)(_i % 5));
    asec_dlg_options_default(&o);
    res = attack(&in, &o, 0, (uint64_t)_i);
    ck_assert_int_eq(res->label_mode, ASEC_DLG_LABELS_IDLG);
    ck_assert_int_eq(res->labels[0], in.y);
    ck_assert_int_eq(res->span_rank, n);
    ck_assert_int_eq(res->unknowns, n * n);
    ck_assert_int_eq(res->equations, in.P);
    ck_assert_int_eq(asec_dlg_rel_error(&raw, &mt, NULL, res->x, in.x, 1, n, 16), ASEC_OK);
    ck_assert_msg(mt <= 1e-10, "n = %zu seed %d: matched error %g", n, _i % 5, mt);
    ck_assert(res->converged);
    ck_assert(res->sigma_min > 0.0 && isfinite(res->cond) && res->noise_gain > 0.0);
    asec_dlg_result_free(res);
    inst_free(&in);
}
END_TEST

START_TEST(test_recover_n8_cos)
{
    /* _i = 0: n = 8 (where vanilla DLG fails 5/5), seeds 0-4, Euclidean
     * loss: at least 4 of 5 recovered (the acceptance; a start
     * succeeds with probability about 0.1, so 64 starts miss an instance
     * only when its basin is unusually small).  _i = 1: n = 4 with the
     * cosine loss. */
    size_t n = _i ? 4 : 8, ok = 0, ninst = _i ? 1 : 5;

    for (size_t k = 0; k < ninst; k++) {
        struct inst in;
        asec_dlg_options o;
        asec_dlg_result *res;
        double raw, mt;

        inst_make(&in, ASEC_MODEL_ATTN_BLOCK, n, 16, (uint64_t)k);
        asec_dlg_options_default(&o);
        o.loss = _i ? ASEC_DLG_COS : ASEC_DLG_EUCLID;
        o.diagnostics = 0;
        res = attack(&in, &o, 0, (uint64_t)k);
        ck_assert_int_eq(asec_dlg_rel_error(&raw, &mt, NULL, res->x, in.x, 1, n, 16),
                         ASEC_OK);
        ok += mt <= 1e-10;
        asec_dlg_result_free(res);
        inst_free(&in);
    }
    ck_assert_msg(ok + (ninst > 1) >= ninst, "n = %zu: %zu of %zu recovered", n, ok, ninst);
}
END_TEST

START_TEST(test_warm_start)
{
    /* A warm start (truth + 0.01 N(0, 1), n = 8) with the default prior
     * and a single start: recovered (the prior is not applied to a warm
     * start; with it the first stage pulls the start into a low-norm
     * spurious minimum). */
    struct inst in;
    asec_dlg_options o;
    asec_dlg_problem pb;
    asec_dlg_result *res;
    asec_rng *r;
    double raw, mt, init[8 * 16];

    inst_make(&in, ASEC_MODEL_ATTN_BLOCK, 8, 16, (uint64_t)_i);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, (uint64_t)_i, "warm"), ASEC_OK);
    for (size_t i = 0; i < 8 * 16; i++)
        init[i] = in.x[i] + 0.01 * asec_rng_normal(r);
    asec_dlg_options_default(&o);
    o.restarts = 1;
    o.diagnostics = 0;
    memset(&pb, 0, sizeof pb);
    pb.B = 1;
    pb.T = 8;
    pb.grad = in.g;
    pb.init = init;
    ck_assert_int_eq(asec_dlg_attack(&res, in.m, &pb, &o, r), ASEC_OK);
    ck_assert_int_eq(asec_dlg_rel_error(&raw, &mt, NULL, res->x, in.x, 1, 8, 16), ASEC_OK);
    ck_assert_msg(mt <= 1e-10, "seed %d: matched error %g", _i, mt);
    asec_dlg_result_free(res);
    asec_rng_free(r);
    inst_free(&in);
}
END_TEST

START_TEST(test_recover_vit)
{
    /* The default ViT (seeded weights) on shipped digits test images,
     * B = 1, box [0, 1], iDLG label: exact recovery (PSNR far above the
     * 30 dB goal) from at most 2 starts. */
    asec_model_arch a;
    asec_model *m;
    asec_rng *r;
    asec_data *d;
    asec_dlg_options o;
    asec_dlg_result *res;
    size_t idx = (size_t)_i * 97, P;
    double *g, raw;
    int64_t y;

    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_VIT), ASEC_OK);
    ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, (uint64_t)_i, "check_dlg vit"), ASEC_OK);
    asec_model_init_params(m, r);
    ck_assert_int_eq(asec_data_load(&d, ASEC_TEST_DATADIR, "digits", "test"), ASEC_OK);
    P = asec_model_param_count(m);
    g = malloc(P * sizeof(double));
    ck_assert_ptr_nonnull(g);
    y = d->labels[idx];
    {
        asec_model_batch b = {1, 0, d->images + idx * 64, NULL, &y, NULL};
        asec_model_vec gv = {g, NULL, NULL};

        ck_assert_int_eq(asec_model_grad(m, NULL, &gv, &b), ASEC_OK);
    }
    asec_dlg_options_default(&o);
    o.restarts = 2;
    o.box_lo = 0.0;
    o.box_hi = 1.0;
    o.diagnostics = 0;
    {
        asec_dlg_problem pb = {1, 0, g, NULL, NULL, NULL};

        ck_assert_int_eq(asec_dlg_attack(&res, m, &pb, &o, r), ASEC_OK);
    }
    ck_assert_int_eq(res->label_mode, ASEC_DLG_LABELS_IDLG);
    ck_assert_int_eq(res->labels[0], y);
    ck_assert_int_eq(res->span_rank, 0);
    ck_assert_int_eq(res->unknowns, 64);
    for (size_t i = 0; i < 64; i++)
        ck_assert(res->x[i] >= 0.0 && res->x[i] <= 1.0);
    ck_assert_int_eq(asec_dlg_rel_error(&raw, NULL, NULL, res->x, d->images + idx * 64,
                                        1, 64, 1), ASEC_OK);
    ck_assert_msg(raw <= 1e-10, "image %zu: relative error %g", idx, raw);
    ck_assert(asec_dlg_psnr(res->x, d->images + idx * 64, 64, 1.0) >= 30.0);
    asec_dlg_result_free(res);
    free(g);
    asec_data_free(d);
    asec_rng_free(r);
    asec_model_free(m);
}
END_TEST

START_TEST(test_recover_regression)
{
    /* Attention regression (MATH.md 3.2) n = 4, d = 8, E known; and the
     * joint E + A attack reaches a zero residual at n = 2. */
    struct inst in;
    asec_dlg_options o;
    asec_dlg_result *res;
    double raw;

    inst_make(&in, ASEC_MODEL_ATTN_REGRESSION, 4, 8, 1);
    asec_dlg_options_default(&o);
    res = attack(&in, &o, 1, 1);
    ck_assert_int_eq(res->label_mode, ASEC_DLG_LABELS_KNOWN);
    ck_assert_ptr_null(res->labels);
    ck_assert_int_eq(asec_dlg_rel_error(&raw, NULL, NULL, res->x, in.x, 1, 4, 8), ASEC_OK);
    ck_assert_msg(raw <= 1e-10, "raw error %g", raw);
    asec_dlg_result_free(res);
    inst_free(&in);

    inst_make(&in, ASEC_MODEL_ATTN_REGRESSION, 2, 8, 2);
    o.restarts = 8;
    res = attack(&in, &o, 0, 2);
    ck_assert_int_eq(res->label_mode, ASEC_DLG_LABELS_JOINT);
    ck_assert_int_eq(res->soft_size, 16);
    ck_assert_ptr_nonnull(res->soft);
    ck_assert_int_eq(res->unknowns, 4 + 16);
    ck_assert(isfinite(res->residual));
    asec_dlg_result_free(res);
    inst_free(&in);
}
END_TEST

START_TEST(test_recover_regression_square)
{
    /* Attention regression at n = d = 8 (E known, no token span: 64
     * unknowns), seeds 0-4, Euclidean loss, with the suggested 1024
     * starts: at least 4 of 5 recovered to a matched error <= 1e-10 (the
     * issue's acceptance).  A start succeeds with probability about
     * 1/100-1/300 here, so an instance is missed with probability
     * (1 - 1/300)^1024 ~ 3% or less, and 2 misses of 5 with about 1%. */
    size_t ok = 0;
    char msg[256] = "";

    for (uint64_t seed = 0; seed < 5; seed++) {
        struct inst in;
        asec_dlg_options o;
        asec_dlg_result *res;
        double raw, mt;
        size_t len = strlen(msg);

        inst_make(&in, ASEC_MODEL_ATTN_REGRESSION, 8, 8, seed);
        asec_dlg_options_default(&o);
        o.restarts = asec_dlg_suggest_restarts(in.m, 1, 8);
        ck_assert_uint_eq(o.restarts, 1024);
        o.diagnostics = 0;
        res = attack(&in, &o, 1, seed);
        ck_assert_int_eq(res->span_rank, 0);
        ck_assert_int_eq(res->unknowns, 64);
        ck_assert_int_eq(asec_dlg_rel_error(&raw, &mt, NULL, res->x, in.x, 1, 8, 8),
                         ASEC_OK);
        ok += mt <= 1e-10;
        snprintf(msg + len, sizeof msg - len, " seed %d: %.2g (%zu starts)", (int)seed,
                 mt, res->starts);
        asec_dlg_result_free(res);
        inst_free(&in);
    }
    ck_assert_msg(ok >= 4, "n = d = 8: %zu/5 recovered;%s", ok, msg);
}
END_TEST

START_TEST(test_alternate)
{
    /* Alternating losses (start 1 runs on cos, then polishes on euclid)
     * on the n = 4 attn-block instances of seeds 0-4 in the full space
     * (no span) with the box [-3, 3], which holds these tokens but is
     * active during the runs (the box penalty of L-BFGS and the active set
     * of LM): every instance recovered to 1e-10 within 16 starts, judged
     * by the Euclidean residual. */
    for (uint64_t seed = 0; seed < 5; seed++) {
        struct inst in;
        asec_dlg_options o;
        asec_dlg_result *res;
        double raw, mt;

        inst_make(&in, ASEC_MODEL_ATTN_BLOCK, 4, 16, seed);
        asec_dlg_options_default(&o);
        o.alternate = 1;
        o.span = 0;
        o.box_lo = -3.0;
        o.box_hi = 3.0;
        o.restarts = 16;
        res = attack(&in, &o, 0, seed);
        ck_assert_int_eq(asec_dlg_rel_error(&raw, &mt, NULL, res->x, in.x, 1, 4, 16),
                         ASEC_OK);
        ck_assert_msg(mt <= 1e-10 && res->converged, "seed %d: error %g after %zu starts",
                      (int)seed, mt, res->starts);
        asec_dlg_result_free(res);
        inst_free(&in);
    }
}
END_TEST

START_TEST(test_suggest_restarts)
{
    /* 64 for classifiers; attn-regression: 1024 up to 64 unknowns, then
     * 65536 / (B T min(B T, C)), at least 64. */
    struct inst in;

    inst_make(&in, ASEC_MODEL_ATTN_BLOCK, 8, 16, 0);
    ck_assert_uint_eq(asec_dlg_suggest_restarts(in.m, 1, 8), 64);
    inst_free(&in);
    inst_make(&in, ASEC_MODEL_ATTN_REGRESSION, 4, 16, 0);
    ck_assert_uint_eq(asec_dlg_suggest_restarts(in.m, 1, 4), 1024);
    ck_assert_uint_eq(asec_dlg_suggest_restarts(in.m, 1, 8), 1024);
    ck_assert_uint_eq(asec_dlg_suggest_restarts(in.m, 1, 12), 65536 / 144);
    ck_assert_uint_eq(asec_dlg_suggest_restarts(in.m, 1, 16), 256);
    ck_assert_uint_eq(asec_dlg_suggest_restarts(in.m, 2, 16), 128);
    ck_assert_uint_eq(asec_dlg_suggest_restarts(in.m, 4, 16), 64);
    ck_assert_uint_eq(asec_dlg_suggest_restarts(in.m, 1, 0), 1024); // seq_len 4
    inst_free(&in);
}
END_TEST

START_TEST(test_span_and_idlg)
{
    /* The span leak: ||X - X U U^T|| / ||X|| ~ 1e-15 (ATTACKS.md 0.3); the
     * iDLG label is the true one for 5 seeds; B = 2 labels are the two
     * classes with negative bias gradients. */
    for (uint64_t seed = 0; seed < 5; seed++) {
        struct inst in;
        double U[16 * 4], sv[16], num = 0.0, den = 0.0;
        int64_t lab;

        inst_make(&in, ASEC_MODEL_ATTN_BLOCK, 4, 16, seed);
        ck_assert_int_eq(asec_dlg_span(U, sv, 4, in.m, in.g), ASEC_OK);
        for (size_t t = 0; t < 4; t++) {
            double z[4] = {0};

            for (size_t j = 0; j < 4; j++)
                for (size_t c = 0; c < 16; c++)
                    z[j] += U[c * 4 + j] * in.x[t * 16 + c];
            for (size_t c = 0; c < 16; c++) {
                double p = 0.0;

                for (size_t j = 0; j < 4; j++)
                    p += U[c * 4 + j] * z[j];
                num += (in.x[t * 16 + c] - p) * (in.x[t * 16 + c] - p);
                den += in.x[t * 16 + c] * in.x[t * 16 + c];
            }
        }
        ck_assert_msg(sqrt(num / den) < 1e-12, "span residual %g", sqrt(num / den));
        ck_assert(sv[4] < 1e-12 * sv[0]);
        ck_assert_int_eq(asec_dlg_idlg_labels(&lab, 1, in.m, in.g), ASEC_OK);
        ck_assert_int_eq(lab, in.y);
        inst_free(&in);
    }
    {
        asec_model_arch a;
        asec_model *m;
        double g[16 * 16 * 3 + 4 * 16 + 4] = {0};
        int64_t lab[3];
        size_t off = 3 * 16 * 16 + 4 * 16;

        ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_ATTN_BLOCK), ASEC_OK);
        ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_OK);
        ck_assert_int_eq(asec_model_param_count(m), sizeof g / sizeof g[0]);
        g[off + 0] = 0.2;
        g[off + 1] = -0.3;
        g[off + 2] = 0.3;
        g[off + 3] = -0.2;
        ck_assert_int_eq(asec_dlg_idlg_labels(lab, 3, m, g), ASEC_OK);
        ck_assert_int_eq(lab[0], 1);
        ck_assert_int_eq(lab[1], 3);
        ck_assert_int_eq(lab[2], 1);
        asec_model_free(m);
    }
}
END_TEST

START_TEST(test_joint_labels_batch)
{
    /* B = 2, joint soft labels: the attack runs, labels are argmax of the
     * recovered soft labels (each a probability vector). */
    asec_model_arch a;
    asec_model *m;
    asec_rng *r;
    size_t P;
    double x[2 * 2 * 16], *g;
    int64_t y[2] = {1, 3};
    asec_model_batch b = {2, 2, x, NULL, y, NULL};
    asec_model_vec gv = {NULL, NULL, NULL};
    asec_dlg_problem pb;
    asec_dlg_options o;
    asec_dlg_result *res;

    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_ATTN_BLOCK), ASEC_OK);
    ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_OK);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 5, "joint"), ASEC_OK);
    asec_model_init_params(m, r);
    asec_rng_normal_fill(r, x, sizeof x / sizeof x[0]);
    P = asec_model_param_count(m);
    g = malloc(P * sizeof(double));
    gv.params = g;
    ck_assert_int_eq(asec_model_grad(m, NULL, &gv, &b), ASEC_OK);
    pb.B = 2;
    pb.T = 2;
    pb.grad = g;
    pb.labels = NULL;
    pb.soft = NULL;
    pb.init = NULL;
    asec_dlg_options_default(&o);
    o.restarts = 4;
    ck_assert_int_eq(asec_dlg_attack(&res, m, &pb, &o, r), ASEC_OK);
    ck_assert_int_eq(res->label_mode, ASEC_DLG_LABELS_JOINT);
    ck_assert_int_eq(res->soft_size, 4);
    for (size_t i = 0; i < 2; i++) {
        double s = 0.0;

        for (size_t k = 0; k < 4; k++)
            s += res->soft[i * 4 + k];
        ck_assert_double_eq_tol(s, 1.0, 1e-12);
        ck_assert(res->labels[i] >= 0 && res->labels[i] < 4);
    }
    ck_assert_int_eq(res->unknowns, 4 * 4 + 8);
    asec_dlg_result_free(res);
    free(g);
    asec_rng_free(r);
    asec_model_free(m);
}
END_TEST

/* ------------------------------------------------------------- gradcheck */

static void
gradcheck(asec_model_kind kind, asec_dlg_loss loss, int soft)
{
    /* Central differences of the matching loss in x and in the soft labels
     * (targets): relative error <= 1e-6 (MATH.md section 8, M0). */
    struct inst in;
    asec_model_batch b;
    double *x2, *dx, sl[4] = {0.1, 0.5, 0.3, 0.1}, ds[4 * 16], f, fp, fm, *s2, *G;
    size_t n = 3, C = 8, ns;
    asec_rng *r;

    inst_make(&in, kind, n, C, 7);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 9, "gc"), ASEC_OK);
    G = malloc(in.P * sizeof(double));
    x2 = malloc(n * C * sizeof(double));
    dx = malloc(n * C * sizeof(double));
    memcpy(G, in.g, in.P * sizeof(double));
    for (size_t i = 0; i < in.P; i++)
        G[i] += 0.3 * fabs(G[i]) * asec_rng_normal(r); // a point away from the minimum
    memcpy(x2, in.x, n * C * sizeof(double));
    for (size_t i = 0; i < n * C; i++)
        x2[i] += 0.2 * asec_rng_normal(r);
    memset(&b, 0, sizeof b);
    b.B = 1;
    b.T = n;
    b.x = x2;
    if (kind == ASEC_MODEL_ATTN_REGRESSION) {
        b.soft = in.e;
        s2 = in.e;
        ns = n * C;
    } else if (soft) {
        b.soft = sl;
        s2 = sl;
        ns = 4;
    } else {
        b.labels = &in.y;
        s2 = NULL;
        ns = 0;
    }
    ck_assert_int_eq(asec_dlg_objective(&f, dx, s2 ? ds : NULL, NULL, in.m, &b, G, loss),
                     ASEC_OK);
    for (size_t i = 0; i < n * C + ns; i++) {
        double *p = i < n * C ? &x2[i] : &s2[i - n * C], h = 1e-6 * fmax(1.0, fabs(*p));
        double keep = *p, fd, an = i < n * C ? dx[i] : ds[i - n * C];

        *p = keep + h;
        ck_assert_int_eq(asec_dlg_objective(&fp, NULL, NULL, NULL, in.m, &b, G, loss),
                         ASEC_OK);
        *p = keep - h;
        ck_assert_int_eq(asec_dlg_objective(&fm, NULL, NULL, NULL, in.m, &b, G, loss),
                         ASEC_OK);
        *p = keep;
        fd = (fp - fm) / (2.0 * h);
        ck_assert_msg(asec_test_relerr(an, fd, 1e-6) < 1e-6,
                      "%s coordinate %zu: analytic %.12g, differences %.12g",
                      asec_dlg_loss_name(loss), i, an, fd);
    }
    free(G);
    free(x2);
    free(dx);
    asec_rng_free(r);
    inst_free(&in);
}

START_TEST(test_gradcheck_block)
{
    gradcheck(ASEC_MODEL_ATTN_BLOCK, _i & 1 ? ASEC_DLG_COS : ASEC_DLG_EUCLID, _i >> 1);
}
END_TEST

START_TEST(test_gradcheck_regression)
{
    gradcheck(ASEC_MODEL_ATTN_REGRESSION, _i ? ASEC_DLG_COS : ASEC_DLG_EUCLID, 1);
}
END_TEST

START_TEST(test_residual)
{
    /* The residual matches the loss: 0.5 |r|^2 = f (euclid), and for cos
     * 0.5 |r|^2 = 1 - cos = f. */
    struct inst in;
    asec_model_batch b = {1, 3, NULL, NULL, NULL, NULL};
    double *r, f;

    inst_make(&in, ASEC_MODEL_ATTN_BLOCK, 3, 8, 3);
    b.x = in.x;
    b.labels = &in.y;
    r = malloc(in.P * sizeof(double));
    for (size_t i = 0; i < in.P; i++)
        in.g[i] *= 1.5 + 0.01 * (double)(i % 7);
    in.x[0] += 0.1;
    for (int k = 0; k < 2; k++) {
        double rr;

        ck_assert_int_eq(asec_dlg_residual(r, in.m, &b, in.g, (asec_dlg_loss)k), ASEC_OK);
        ck_assert_int_eq(
            asec_dlg_objective(&f, NULL, NULL, NULL, in.m, &b, in.g, (asec_dlg_loss)k),
            ASEC_OK);
        rr = asec_vec_dot(r, r, in.P);
        ck_assert_double_eq_tol(0.5 * rr, f, 1e-13 * fmax(1.0, f));
    }
    free(r);
    inst_free(&in);
}
END_TEST

/* ------------------------------------------------------------- reference */

/* A fixture array of datasets/fixtures/dlg as doubles (malloc'ed);
 * want elements. */
static double *
fixture(const char *inst, const char *key, size_t want)
{
    char rel[256];
    asec_io_file *f = NULL;
    const asec_io_tensor *t;
    double *out;

    snprintf(rel, sizeof rel, "fixtures/dlg/%s_%s.npy", inst, key);
    ck_assert_msg(asec_io_open(&f, asec_test_datafile(rel), ASEC_IO_NPY,
                               ASEC_IO_LOAD_DOUBLE, NULL) == ASEC_OK,
                  "%s: %s", rel, asec_errmsg());
    t = asec_io_file_tensor(f, 0);
    ck_assert_ptr_nonnull(t);
    ck_assert_msg(t->nelem == want, "%s: %zu elements, want %zu", rel, t->nelem, want);
    out = malloc(want * sizeof(double));
    ck_assert_ptr_nonnull(out);
    memcpy(out, t->data, want * sizeof(double));
    asec_io_file_free(f);
    return out;
}

START_TEST(test_torch_matching)
{
    /* The Euclidean and cosine matching losses and their exact gradients
     * (inputs, and soft labels for the soft instance) against PyTorch
     * double backward (datasets/gen/make_dlg_fixtures.py): attn-block,
     * C = 8, T = 3, K = 3, 2 heads, mean pooling, no positions; _i = 0:
     * B = 1 with a hard label, _i = 1: B = 2 with soft labels. */
    const char *inst = _i ? "block_b2_soft" : "block_b1_hard";
    size_t B = _i ? 2 : 1, T = 3, C = 8, K = 3, P;
    asec_model_arch a;
    asec_model *m;
    double *theta, *G, *x, *lab, *soft = NULL;
    int64_t y = 0;

    ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_ATTN_BLOCK), ASEC_OK);
    a.channels = C;
    a.seq_len = T;
    a.classes = K;
    a.heads = 2;
    ck_assert_int_eq(asec_model_alloc(&m, &a), ASEC_OK);
    P = asec_model_param_count(m);
    ck_assert_uint_eq(P, 3 * C * C + K * C + K);
    theta = fixture(inst, "params", P);
    memcpy(asec_model_params(m), theta, P * sizeof(double));
    G = fixture(inst, "G", P);
    x = fixture(inst, "x", B * T * C);
    if (_i) {
        soft = fixture(inst, "soft", B * K);
    } else {
        lab = fixture(inst, "labels", 1);
        y = (int64_t)lab[0];
        free(lab);
    }
    for (int k = 0; k < 2; k++) {
        asec_dlg_loss loss = k ? ASEC_DLG_COS : ASEC_DLG_EUCLID;
        asec_model_batch b = {B, T, x, NULL, _i ? NULL : &y, soft};
        char key[32];
        double f, *dx = malloc(B * T * C * sizeof(double)), *ds = malloc(B * K * sizeof(double));
        double *want;

        ck_assert_ptr_nonnull(dx);
        ck_assert_ptr_nonnull(ds);
        ck_assert_int_eq(asec_dlg_objective(&f, dx, _i ? ds : NULL, NULL, m, &b, G, loss),
                         ASEC_OK);
        snprintf(key, sizeof key, "loss_%s", asec_dlg_loss_name(loss));
        want = fixture(inst, key, 1);
        ck_assert_msg(asec_test_relerr(f, want[0], 1e-300) <= 1e-10, "%s: %.17g vs %.17g",
                      key, f, want[0]);
        free(want);
        snprintf(key, sizeof key, "dx_%s", asec_dlg_loss_name(loss));
        want = fixture(inst, key, B * T * C);
        asec_test_allclose(dx, want, B * T * C, 1e-10, 1e-10 * asec_vec_norm2(want, B * T * C),
                           key);
        free(want);
        if (_i) {
            snprintf(key, sizeof key, "dsoft_%s", asec_dlg_loss_name(loss));
            want = fixture(inst, key, B * K);
            asec_test_allclose(ds, want, B * K, 1e-10, 1e-10 * asec_vec_norm2(want, B * K),
                               key);
            free(want);
        }
        free(dx);
        free(ds);
    }
    free(theta);
    free(G);
    free(x);
    free(soft);
    asec_model_free(m);
}
END_TEST

START_TEST(test_hungarian)
{
    /* A 4 x 4 instance solved by hand (optimum 13: 0->1, 1->0, 2->2, 3->3
     * is 2 + 6 + 1 + 4 = 13), and a permutation recovered exactly. */
    const double cost[16] = {9, 2, 7, 8, 6, 4, 3, 7, 5, 8, 1, 8, 7, 6, 9, 4};
    size_t as[4], perm[3];
    double x[3 * 2] = {1, 2, 3, 4, 5, 6}, xh[3 * 2] = {5, 6, 1, 2, 3, 4}, raw, mt;
    double s = 0.0;

    ck_assert_int_eq(asec_dlg_hungarian(as, cost, 4), ASEC_OK);
    for (size_t i = 0; i < 4; i++)
        s += cost[i * 4 + as[i]];
    ck_assert_double_eq(s, 13.0);
    ck_assert_int_eq(as[0], 1);
    ck_assert_int_eq(as[1], 0);
    ck_assert_int_eq(as[2], 2);
    ck_assert_int_eq(as[3], 3);
    ck_assert_int_eq(asec_dlg_rel_error(&raw, &mt, perm, xh, x, 1, 3, 2), ASEC_OK);
    ck_assert_double_eq(mt, 0.0);
    ck_assert(raw > 0.5);
    ck_assert_int_eq(perm[0], 2);
    ck_assert_int_eq(perm[1], 0);
    ck_assert_int_eq(perm[2], 1);
}
END_TEST

START_TEST(test_metrics_defenses)
{
    const double vocab[3 * 2] = {1, 0, 0, 1, -1, -1}, xs[3 * 2] = {0.1, 5, -2, -2.1, 3, 0.2};
    int64_t ids[3];
    double a[4] = {0, 0.5, 1, 1}, b[4] = {0, 0.5, 1, 0.9};
    double g[6] = {0.5, -0.1, 0.05, -2, 0.3, 0.01}, pg[6];
    double rows[2 * 2] = {3, 4, 0.3, 0.4}, out[2];

    ck_assert_int_eq(asec_dlg_decode(ids, xs, 3, 2, vocab, 3), ASEC_OK);
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq(ids[1], 2);
    ck_assert_int_eq(ids[2], 0);
    // MSE = 0.01 / 4: PSNR = 10 log10(400) = 26.0206 dB
    ck_assert_double_eq_tol(asec_dlg_psnr(a, b, 4, 1.0), 10.0 * log10(400.0), 1e-10);
    ck_assert(isinf(asec_dlg_psnr(a, a, 4, 1.0)));
    memcpy(pg, g, sizeof g);
    ck_assert_int_eq(asec_dlg_defend_prune(pg, 6, 0.5), ASEC_OK);
    ck_assert_double_eq(pg[0], 0.5);
    ck_assert_double_eq(pg[1], 0.0);
    ck_assert_double_eq(pg[2], 0.0);
    ck_assert_double_eq(pg[3], -2.0);
    ck_assert_double_eq(pg[4], 0.3);
    ck_assert_double_eq(pg[5], 0.0);
    ck_assert_int_eq(asec_dlg_defend_clip(out, rows, 2, 2, 1.0), ASEC_OK);
    // row 0 (norm 5) scaled to norm 1, row 1 (norm 0.5) kept; the mean
    ck_assert_double_eq_tol(out[0], (0.6 + 0.3) / 2, 1e-15);
    ck_assert_double_eq_tol(out[1], (0.8 + 0.4) / 2, 1e-15);
}
END_TEST

/* ----------------------------------------------------------------- stats */

START_TEST(test_noise_norm)
{
    /* Relative noise: |noise| / |g| = sigma (1 + O(1/sqrt(P))).  P = 40000,
     * fixed seeds; the 5% window is > 10 standard deviations of the norm
     * ratio for both distributions (significance far below 1e-6). */
    size_t P = 40000;
    double *g = malloc(P * sizeof(double)), *h = malloc(P * sizeof(double));
    asec_rng *r;

    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 11, "noise"), ASEC_OK);
    for (int dist = 0; dist < 2; dist++) {
        double d2 = 0.0;

        for (size_t i = 0; i < P; i++)
            g[i] = h[i] = sin((double)i);
        ck_assert_int_eq(asec_dlg_defend_noise(h, P, 0.3, 1, (asec_dlg_noise)dist, r),
                         ASEC_OK);
        for (size_t i = 0; i < P; i++)
            d2 += (h[i] - g[i]) * (h[i] - g[i]);
        ck_assert_double_eq_tol(sqrt(d2) / asec_vec_norm2(g, P), 0.3, 0.015);
        // absolute: per-entry standard deviation sigma
        for (size_t i = 0; i < P; i++)
            h[i] = 0.0;
        ck_assert_int_eq(asec_dlg_defend_noise(h, P, 0.01, 0, (asec_dlg_noise)dist, r),
                         ASEC_OK);
        ck_assert_double_eq_tol(asec_vec_norm2(h, P) / sqrt((double)P), 0.01, 0.0005);
    }
    asec_rng_free(r);
    free(g);
    free(h);
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(test_errors)
{
    struct inst in;
    asec_dlg_options o;
    asec_dlg_problem pb;
    asec_dlg_result *res = NULL;
    asec_rng *r;
    double U[16], *bad;
    asec_dlg_loss l;
    asec_dlg_labels lm;
    asec_dlg_noise nd;
    size_t as[2];
    const double nan2[4] = {0, NAN, 1, 1};
    int64_t ids[1];

    inst_make(&in, ASEC_MODEL_ATTN_BLOCK, 2, 16, 0);
    ck_assert_int_eq(asec_rng_alloc_seeded(&r, 1, "errors"), ASEC_OK);
    asec_dlg_options_default(&o);
    pb.B = 1;
    pb.T = 2;
    pb.grad = in.g;
    pb.labels = NULL;
    pb.soft = NULL;
    pb.init = NULL;
    // ASEC_EINVAL: options, empty batch, missing gradient, modes
    o.restarts = 0;
    ck_assert_int_eq(asec_dlg_attack(&res, in.m, &pb, &o, r), ASEC_EINVAL);
    ck_assert_ptr_null(res);
    asec_dlg_options_default(&o);
    o.init_std = -1.0;
    ck_assert_int_eq(asec_dlg_attack(&res, in.m, &pb, &o, r), ASEC_EINVAL);
    asec_dlg_options_default(&o);
    o.loss = (asec_dlg_loss)7;
    ck_assert_int_eq(asec_dlg_attack(&res, in.m, &pb, &o, r), ASEC_EINVAL);
    asec_dlg_options_default(&o);
    ck_assert_int_eq(o.alternate, -1);
    o.alternate = 2;
    ck_assert_int_eq(asec_dlg_attack(&res, in.m, &pb, &o, r), ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "alternate"));
    asec_dlg_options_default(&o);
    o.labels = ASEC_DLG_LABELS_KNOWN;
    ck_assert_int_eq(asec_dlg_attack(&res, in.m, &pb, &o, r), ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "known"));
    asec_dlg_options_default(&o);
    pb.B = 0;
    ck_assert_int_eq(asec_dlg_attack(&res, in.m, &pb, &o, r), ASEC_EINVAL);
    pb.B = 1;
    pb.grad = NULL;
    ck_assert_int_eq(asec_dlg_attack(&res, in.m, &pb, &o, r), ASEC_EINVAL);
    // ASEC_ENUMERIC: a non-finite observed gradient
    bad = malloc(in.P * sizeof(double));
    memcpy(bad, in.g, in.P * sizeof(double));
    bad[5] = NAN;
    pb.grad = bad;
    ck_assert_int_eq(asec_dlg_attack(&res, in.m, &pb, &o, r), ASEC_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "entry 5"));
    free(bad);
    pb.grad = in.g;
    // ASEC_EINVAL: span rank; ASEC_ENOTSUP: no span for a vit
    ck_assert_int_eq(asec_dlg_span(U, NULL, 0, in.m, in.g), ASEC_EINVAL);
    ck_assert_int_eq(asec_dlg_span(U, NULL, 17, in.m, in.g), ASEC_EINVAL);
    {
        asec_model_arch a;
        asec_model *v;
        double *gv;
        int64_t lab;

        ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_VIT), ASEC_OK);
        ck_assert_int_eq(asec_model_alloc(&v, &a), ASEC_OK);
        gv = calloc(asec_model_param_count(v), sizeof(double));
        ck_assert_int_eq(asec_dlg_span(U, NULL, 1, v, gv), ASEC_ENOTSUP);
        asec_model_free(v);
        free(gv);
        ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_ATTN_REGRESSION), ASEC_OK);
        ck_assert_int_eq(asec_model_alloc(&v, &a), ASEC_OK);
        gv = calloc(asec_model_param_count(v), sizeof(double));
        ck_assert_int_eq(asec_dlg_idlg_labels(&lab, 1, v, gv), ASEC_EINVAL);
        asec_model_free(v);
        free(gv);
    }
    // ASEC_EBADLEN: a batch the model cannot take (the engine's check)
    {
        asec_model_arch a;
        asec_model *v;
        double *gv;

        ck_assert_int_eq(asec_model_arch_default(&a, ASEC_MODEL_ATTN_BLOCK), ASEC_OK);
        a.pos = ASEC_MODEL_POS_LEARNED;
        ck_assert_int_eq(asec_model_alloc(&v, &a), ASEC_OK);
        gv = calloc(asec_model_param_count(v), sizeof(double));
        gv[0] = 1.0;
        pb.grad = gv;
        pb.T = 40;
        ck_assert_int_eq(asec_dlg_attack(&res, v, &pb, &o, r), ASEC_EBADLEN);
        pb.T = 2;
        pb.grad = in.g;
        asec_model_free(v);
        free(gv);
    }
    // parsers, metrics and defenses
    ck_assert_int_eq(asec_dlg_loss_parse(&l, "cos"), ASEC_OK);
    ck_assert_int_eq(l, ASEC_DLG_COS);
    ck_assert_int_eq(asec_dlg_loss_parse(&l, "l1"), ASEC_EINVAL);
    ck_assert_int_eq(asec_dlg_labels_parse(&lm, "joint"), ASEC_OK);
    ck_assert_int_eq(asec_dlg_labels_parse(&lm, "guess"), ASEC_EINVAL);
    ck_assert_int_eq(asec_dlg_noise_parse(&nd, "laplace"), ASEC_OK);
    ck_assert_int_eq(asec_dlg_noise_parse(&nd, "cauchy"), ASEC_EINVAL);
    ck_assert_str_eq(asec_dlg_loss_name((asec_dlg_loss)9), "?");
    ck_assert_str_eq(asec_dlg_labels_name(ASEC_DLG_LABELS_IDLG), "idlg");
    ck_assert_int_eq(asec_dlg_hungarian(as, nan2, 2), ASEC_EINVAL);
    ck_assert_int_eq(asec_dlg_decode(ids, nan2, 1, 2, nan2, 0), ASEC_EINVAL);
    ck_assert_int_eq(asec_dlg_defend_noise(in.g, in.P, -1.0, 1, ASEC_DLG_NOISE_GAUSS, r),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_dlg_defend_noise(in.g, in.P, NAN, 1, ASEC_DLG_NOISE_GAUSS, r),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_dlg_defend_prune(in.g, in.P, 1.5), ASEC_EINVAL);
    ck_assert_int_eq(asec_dlg_defend_clip(U, in.g, 0, 4, 1.0), ASEC_EINVAL);
    ck_assert_int_eq(asec_dlg_defend_clip(U, in.g, 1, 4, 0.0), ASEC_EINVAL);
    {
        // ASEC_ENUMERIC: the cosine loss at a zero gradient
        asec_model_batch b = {1, 2, in.x, NULL, &in.y, NULL};
        double *z = calloc(in.P, sizeof(double)), f;

        ck_assert_int_eq(asec_dlg_objective(&f, NULL, NULL, NULL, in.m, &b, z, ASEC_DLG_COS),
                         ASEC_ENUMERIC);
        ck_assert_int_eq(asec_dlg_residual(z, in.m, &b, z, ASEC_DLG_COS), ASEC_ENUMERIC);
        ck_assert_int_eq(
            asec_dlg_objective(&f, NULL, NULL, NULL, in.m, &b, in.g, (asec_dlg_loss)5),
            ASEC_EINVAL);
        free(z);
    }
    asec_rng_free(r);
    inst_free(&in);
}
END_TEST

/* ------------------------------------------------------------------- oom */

START_TEST(test_oom)
{
    /* ASEC_ENOMEM: every allocation of the attack (span, workspace,
     * Jacobian, LM system, diagnostics, result) and of the metrics fails
     * in turn (liblbfgs's own allocations are outside the hook). */
    struct inst in;
    long n;

    inst_make(&in, ASEC_MODEL_ATTN_BLOCK, 2, 16, 0);
    for (n = 0;; n++) {
        asec_dlg_options o;
        asec_dlg_problem pb = {1, 2, in.g, NULL, NULL, NULL};
        asec_dlg_result *res = NULL;
        asec_rng *r;
        double raw, mt, g2[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        int rc;

        ck_assert_int_eq(asec_rng_alloc_seeded(&r, 3, "oom"), ASEC_OK);
        asec_dlg_options_default(&o);
        o.restarts = 2;
        o.lbfgs_iters = 5;
        o.lm_iters = 3;
        asec_debug_fail_alloc(n);
        rc = asec_dlg_attack(&res, in.m, &pb, &o, r);
        if (rc == ASEC_OK)
            rc = asec_dlg_rel_error(&raw, &mt, NULL, res->x, in.x, 1, 2, 16);
        if (rc == ASEC_OK)
            rc = asec_dlg_defend_prune(g2, 8, 0.5);
        asec_debug_fail_alloc(-1);
        asec_dlg_result_free(res);
        asec_rng_free(r);
        if (rc == ASEC_OK)
            break;
        ck_assert_int_eq(rc, ASEC_ENOMEM);
        ck_assert_int_lt(n, 100000);
    }
    ck_assert_int_gt(n, 10);
    inst_free(&in);
}
END_TEST

static Suite *
dlg_suite(void)
{
    Suite *s = suite_create("dlg");
    TCase *tc;

    tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_recover_small, 0, 10);
    tcase_add_loop_test(tc, test_recover_n8_cos, 0, 2);
    tcase_add_test(tc, test_recover_regression);
    tcase_add_test(tc, test_recover_regression_square);
    tcase_add_test(tc, test_suggest_restarts);
    tcase_add_test(tc, test_alternate);
    tcase_add_loop_test(tc, test_recover_vit, 0, 2);
    tcase_add_loop_test(tc, test_warm_start, 0, 5);
    tcase_add_test(tc, test_span_and_idlg);
    tcase_add_test(tc, test_joint_labels_batch);
    suite_add_tcase(s, tc);

    tc = tcase_create("gradcheck");
    tcase_add_loop_test(tc, test_gradcheck_block, 0, 4);
    tcase_add_loop_test(tc, test_gradcheck_regression, 0, 2);
    tcase_add_test(tc, test_residual);
    suite_add_tcase(s, tc);

    tc = tcase_create("reference");
    tcase_add_loop_test(tc, test_torch_matching, 0, 2);
    tcase_add_test(tc, test_hungarian);
    tcase_add_test(tc, test_metrics_defenses);
    suite_add_tcase(s, tc);

    tc = tcase_create("stats");
    tcase_add_test(tc, test_noise_norm);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("oom");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_oom);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    if (asec_init() != ASEC_OK)
        return EXIT_FAILURE;
    return asec_test_run(dlg_suite());
}
