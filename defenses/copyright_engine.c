/* copyright_engine.c - context features from the engine for the next-token
 * copyright regression (issue #10; MATH.md §6.2-§6.3): a causal text
 * transformer (attnsec/model.h) trained briefly for next-token prediction
 * by Adam on the engine's exact gradients, then frozen; the feature row of
 * a context is [1, h] with h the trunk's final hidden state (after the
 * final LayerNorm, before the head) at the context's last token.
 *
 * The hidden state is read through the public model API only: a copy of
 * the model whose head is C x C with weight I and bias 0 (every other
 * tensor copied by name) outputs exactly h as its "logits". */
#include "config.h"

#include <math.h>
#include <string.h>

#include "attnsec/copyright.h"
#include "attnsec/model.h"
#include "internal.h"

/* Windows per forward pass when computing features. */
#define ENGINE_CHUNK 256

static int
engine_check_model(const asec_model *m, const char *who)
{
    const asec_model_arch *a = asec_model_get_arch(m);

    if (a->kind != ASEC_MODEL_TEXT || !a->causal || a->pool != ASEC_MODEL_POOL_NONE)
        ASEC_FAIL(ASEC_EINVAL,
                  "%s: need a causal text model with pooling 'none', got kind '%s', "
                  "causal %d, pooling '%s'",
                  who, asec_model_kind_name(a->kind), a->causal,
                  asec_model_pool_name(a->pool));
    return ASEC_OK;
}

int
asec_copyright_engine_train(asec_model *m, asec_copyright_engine_result *res,
                            double *curve, const int64_t *tokens, size_t ntok,
                            const asec_copyright_engine_options *opts, asec_rng *rng)
{
    asec_copyright_engine_options o = ASEC_COPYRIGHT_ENGINE_OPTIONS_INIT;
    if (opts != NULL)
        o = *opts;
    if (o.version != ASEC_COPYRIGHT_ENGINE_OPTIONS_VERSION)
        ASEC_FAIL(ASEC_EINVAL, "copyright engine: options version %u, expected %u",
                  o.version, (unsigned)ASEC_COPYRIGHT_ENGINE_OPTIONS_VERSION);
    if (o.batch == 0 || !(o.lr > 0) || !isfinite(o.lr) || !(o.beta1 >= 0) ||
        !(o.beta1 < 1) || !(o.beta2 >= 0) || !(o.beta2 < 1) || !(o.eps > 0) ||
        !isfinite(o.eps))
        ASEC_FAIL(ASEC_EINVAL,
                  "copyright engine: need batch >= 1, lr > 0, beta1 and beta2 in "
                  "[0, 1), eps > 0 (batch %zu, lr %g, betas %g %g, eps %g)",
                  o.batch, o.lr, o.beta1, o.beta2, o.eps);
    ASEC_TRY(engine_check_model(m, "copyright engine"));
    size_t T = asec_model_get_arch(m)->seq_len, P = asec_model_param_count(m), nbt;
    if (ntok < T + 1)
        ASEC_FAIL(ASEC_EINVAL,
                  "copyright engine: %zu tokens, need at least seq_len + 1 = %zu", ntok,
                  T + 1);
    if (asec__mul_size(o.batch, T, &nbt) != 0 || asec__mul_size(nbt, 2, &nbt) != 0 ||
        asec__mul_size(nbt, sizeof(int64_t), &nbt) != 0)
        ASEC_FAIL(ASEC_EINVAL, "copyright engine: batch %zu is too large", o.batch);

    int rc = ASEC_OK;
    int64_t *win = asec__malloc(nbt);
    double *mom = asec__calloc(P, sizeof(double));
    double *vel = asec__calloc(P, sizeof(double));
    if (win == NULL || mom == NULL || vel == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM,
                       "copyright engine: out of memory for Adam state (%zu parameters)",
                       P);
    double *theta = asec_model_params(m), *g = asec_model_grads(m);
    asec_model_vec gv = {g, NULL, NULL};
    asec_model_batch b = {o.batch, T, NULL, win, win + o.batch * T, NULL};
    double b1t = 1.0, b2t = 1.0, tail = 0.0;
    size_t ntail = o.steps / 10 > 0 ? o.steps / 10 : 1;

    memset(res, 0, sizeof *res);
    res->loss_first = NAN;
    res->loss_last = NAN;
    for (size_t step = 0; step < o.steps; step++) {
        double loss;

        /* B windows at uniform random starts: inputs tokens[s .. s+T),
         * labels tokens[s+1 .. s+T+1). */
        for (size_t i = 0; i < o.batch; i++) {
            size_t s = (size_t)asec_rng_bounded(rng, (uint64_t)(ntok - T));
            memcpy(win + i * T, tokens + s, T * sizeof(int64_t));
            memcpy(win + (o.batch + i) * T, tokens + s + 1, T * sizeof(int64_t));
        }
        if ((rc = asec_model_grad(m, &loss, &gv, &b)) != ASEC_OK)
            goto fail;
        if (!isfinite(loss))
            ASEC_FAIL_GOTO(fail, rc, ASEC_ENUMERIC,
                           "copyright engine: the loss at step %zu is not finite", step);
        if (curve != NULL)
            curve[step] = loss;
        if (step == 0)
            res->loss_first = loss;
        if (step + ntail >= o.steps)
            tail += loss;
        b1t *= o.beta1;
        b2t *= o.beta2;
        double c1 = 1.0 / (1.0 - b1t), c2 = 1.0 / (1.0 - b2t);
        for (size_t k = 0; k < P; k++) {
            mom[k] = o.beta1 * mom[k] + (1.0 - o.beta1) * g[k];
            vel[k] = o.beta2 * vel[k] + (1.0 - o.beta2) * g[k] * g[k];
            theta[k] -= o.lr * (mom[k] * c1) / (sqrt(vel[k] * c2) + o.eps);
        }
        res->steps = step + 1;
    }
    if (o.steps > 0)
        res->loss_last = tail / (double)(ntail < o.steps ? ntail : o.steps);
fail:
    asec__free(win);
    asec__free(mom);
    asec__free(vel);
    return rc;
}

/* A copy of m whose head is the C x C identity: its outputs are the final
 * hidden states. */
static int
engine_trunk(asec_model **out, asec_model *m)
{
    asec_model_arch a = *asec_model_get_arch(m);
    asec_model *t = NULL;
    size_t C = a.channels;

    a.classes = C;
    ASEC_TRY(asec_model_alloc(&t, &a));
    const double *src = asec_model_params(m);
    double *dst = asec_model_params(t);
    size_t nt = asec_model_tensor_count(t);
    int rc = ASEC_OK;
    for (size_t i = 0; i < nt; i++) {
        asec_model_tensor ti, si;

        if ((rc = asec_model_tensor_get(t, i, &ti)) != ASEC_OK)
            goto fail;
        if (strcmp(ti.name, "head.weight") == 0) {
            memset(dst + ti.offset, 0, ti.size * sizeof(double));
            for (size_t k = 0; k < C; k++)
                dst[ti.offset + k * C + k] = 1.0;
            continue;
        }
        if (strcmp(ti.name, "head.bias") == 0) {
            memset(dst + ti.offset, 0, ti.size * sizeof(double));
            continue;
        }
        if ((rc = asec_model_tensor_find(m, ti.name, &si)) != ASEC_OK)
            goto fail;
        if (si.size != ti.size)
            ASEC_FAIL_GOTO(fail, rc, ASEC_EINTERNAL,
                           "copyright engine: tensor '%s' has %zu entries in the model "
                           "and %zu in its trunk",
                           ti.name, si.size, ti.size);
        memcpy(dst + ti.offset, src + si.offset, ti.size * sizeof(double));
    }
    *out = t;
    return ASEC_OK;
fail:
    asec_model_free(t);
    return rc;
}

int
asec_copyright_engine_features(double *x, asec_model *m, const int64_t *tokens,
                               size_t ntok)
{
    ASEC_TRY(engine_check_model(m, "copyright features"));
    const asec_model_arch *a = asec_model_get_arch(m);
    size_t T = a->seq_len, C = a->channels, d = C + 1;
    if (ntok < T)
        ASEC_FAIL(ASEC_EINVAL,
                  "copyright features: %zu tokens, need at least seq_len %zu", ntok, T);
    size_t rows = ntok - T + 1, chunk = rows < ENGINE_CHUNK ? rows : ENGINE_CHUNK;
    size_t nw, nh;
    if (asec__mul_size(chunk, T, &nw) != 0 || asec__mul_size(nw, C, &nh) != 0 ||
        asec__mul_size(nh, sizeof(double), &nh) != 0 ||
        asec__mul_size(nw, sizeof(int64_t), &nw) != 0)
        ASEC_FAIL(ASEC_EINVAL, "copyright features: seq_len %zu, channels %zu too large",
                  T, C);

    asec_model *t = NULL;
    ASEC_TRY(engine_trunk(&t, m));
    int rc = ASEC_OK;
    int64_t *win = asec__malloc(nw);
    double *h = asec__malloc(nh);
    if (win == NULL || h == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "copyright features: out of memory");
    for (size_t r0 = 0; r0 < rows; r0 += chunk) {
        size_t B = rows - r0 < chunk ? rows - r0 : chunk;
        asec_model_batch b = {B, T, NULL, win, NULL, NULL};

        for (size_t i = 0; i < B; i++)
            memcpy(win + i * T, tokens + r0 + i, T * sizeof(int64_t));
        if ((rc = asec_model_forward(t, NULL, NULL, h, &b)) != ASEC_OK)
            goto fail;
        for (size_t i = 0; i < B; i++) {
            double *xi = x + (r0 + i) * d;

            xi[0] = 1.0;
            memcpy(xi + 1, h + (i * T + T - 1) * C, C * sizeof(double));
        }
    }
fail:
    asec__free(win);
    asec__free(h);
    asec_model_free(t);
    return rc;
}
