/* cmd_audit_text.c - 'attnsec audit --data=text': the audit on the shipped
 * corpus (KJV, asec_data(3)) with a small token transformer
 * (attnsec-audit(1)).
 *
 * The model reads a window of AUDIT_TEXT_T tokens and predicts the token
 * that follows it: the engine's text transformer (asec_model(3)) with
 * learned positions, one pre-LayerNorm block, bidirectional attention,
 * mean pooling and a head over the whole vocabulary (K = V).  Training
 * examples are the non-overlapping windows of the training split; the
 * held-out windows come from the test split.
 *
 * Training goes through the DP-SGD library API in process (asec_dpsgd(3):
 * 'defend dpsgd' trains the digits model only), with the same sampling,
 * clipping, lattice noise and accounting as the digits audit; epsilon is
 * read from the run's accountant under every method.
 *
 * DLG (asec_dlg(3)) attacks the gradient of one client holding one
 * held-out window (B = 1).  The attack optimises the window's token
 * embeddings (T, C), so the token-embedding block of the observed gradient
 * is left out of the matching (embeddings given as inputs do not reach
 * it); the recovered embeddings are decoded to the nearest row of the
 * model's embedding table by cosine (asec_dlg_decode) and scored by
 * position.  The left-out block is read directly as a second attack: its
 * nonzero rows are the window's tokens (the bag of words every token
 * model leaks), scored as the fraction of the window's distinct tokens
 * among the rows of largest norm.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attnsec/attnsec.h"
#include "attnsec/dlg.h"
#include "attnsec/dpsgd.h"
#include "audit.h"
#include "cli.h"
#include "commands.h"

int
audit_text_load(struct audit *a)
{
    const size_t T = AUDIT_TEXT_T;
    int64_t *lab = NULL;
    size_t n;
    int rc;

    if ((rc = asec_data_load(&a->train, cli_datadir(), "kjv", "train")) != ASEC_OK ||
        (rc = asec_data_load(&a->test, cli_datadir(), "kjv", "test")) != ASEC_OK)
        return rc;
    a->ntrain = (a->train->n - 1) / T;
    a->ntest = (a->test->n - 1) / T;
    n = a->ntrain > a->ntest ? a->ntrain : a->ntest;
    a->win_train = malloc(a->ntrain * T * sizeof *a->win_train);
    a->y_train = malloc(a->ntrain * sizeof *a->y_train);
    a->win_test = malloc(a->ntest * T * sizeof *a->win_test);
    a->y_test = malloc(a->ntest * sizeof *a->y_test);
    lab = malloc(n * T * sizeof *lab);
    if (a->win_train == NULL || a->y_train == NULL || a->win_test == NULL ||
        a->y_test == NULL || lab == NULL) {
        free(lab);
        return ASEC_ENOMEM;
    }
    /* window w: tokens [w T, w T + T); its label the token after it */
    if ((rc = asec_data_windows(a->win_train, lab, a->train, T, 0, a->ntrain)) ==
        ASEC_OK) {
        for (size_t i = 0; i < a->ntrain; i++)
            a->y_train[i] = lab[i * T + T - 1];
        rc = asec_data_windows(a->win_test, lab, a->test, T, 0, a->ntest);
        for (size_t i = 0; rc == ASEC_OK && i < a->ntest; i++)
            a->y_test[i] = lab[i * T + T - 1];
    }
    free(lab);
    return rc;
}

void
audit_text_free(struct audit *a)
{
    free(a->win_train);
    free(a->y_train);
    free(a->win_test);
    free(a->y_test);
    asec_data_free(a->train);
}

void
audit_text_words(const struct audit *a, const int64_t *ids, char *buf, size_t cap)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t t = 0; t < AUDIT_TEXT_T && len + 1 < cap; t++) {
        const char *w = ids[t] >= 0 && (size_t)ids[t] < a->test->classes
                            ? a->test->vocab[ids[t]]
                            : "?";
        int n = snprintf(buf + len, cap - len, "%s%s", t ? " " : "", w);

        if (n < 0)
            break;
        len += (size_t)n;
    }
}

/* The audit's text model: see the top of this file. */
static int
text_model(asec_model **out, const struct audit *a, asec_rng *rng)
{
    asec_model_arch ar;
    asec_rng *init = NULL;
    int rc;

    if ((rc = asec_model_arch_default(&ar, ASEC_MODEL_TEXT)) != ASEC_OK)
        return rc;
    ar.vocab = a->test->classes;
    ar.classes = ar.vocab;
    ar.channels = 32;
    ar.layers = 1;
    ar.heads = 2;
    ar.mlp_hidden = 4 * ar.channels;
    ar.seq_len = AUDIT_TEXT_T;
    ar.causal = 0;
    ar.pool = ASEC_MODEL_POOL_MEAN;
    ar.pos = ASEC_MODEL_POS_LEARNED;
    if ((rc = asec_model_alloc(out, &ar)) != ASEC_OK)
        return rc;
    if ((rc = asec_rng_derive(&init, rng, "model/init")) != ASEC_OK) {
        asec_model_free(*out);
        *out = NULL;
        return rc;
    }
    asec_model_init_params(*out, init);
    asec_rng_free(init);
    return ASEC_OK;
}

int
audit_text_train(struct audit *a, struct run *r, uint64_t seed, asec_model **out)
{
    static const asec_acct_method methods[4] = {ASEC_ACCT_RDP, ASEC_ACCT_PLD,
                                                ASEC_ACCT_BASIC, ASEC_ACCT_ADVANCED};
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    asec_dpsgd_data dd = {a->ntrain, AUDIT_TEXT_T, NULL, a->win_train, a->y_train, NULL};
    asec_dpsgd_data td = {a->ntest, AUDIT_TEXT_T, NULL, a->win_test, a->y_test, NULL};
    asec_dpsgd_info info;
    asec_dpsgd *d = NULL;
    asec_model *m = NULL;
    asec_rng *rng = NULL;
    char *dir = NULL, *mp = NULL;
    int rc, priv = r->target_eps > 0;

    *out = NULL;
    o.sampling = ASEC_DPSGD_POISSON;
    o.delta = AUDIT_DELTA;
    if (priv) {
        o.optim = ASEC_DPSGD_MOMENTUM;
        o.momentum = 0.9;
        o.steps = a->steps;
        o.batch = a->batch;
        o.lr = a->lr;
        o.clip = a->clip;
        o.target_epsilon = r->target_eps;
    } else {
        o.optim = ASEC_DPSGD_ADAM;
        o.beta1 = 0.9;
        o.steps = a->np_steps;
        o.batch = a->np_batch;
        o.lr = a->np_lr;
        o.clip = 0;
        o.sigma = 0;
    }
    if ((rc = asec_rng_alloc_seeded(&rng, seed, "audit/text/train")) != ASEC_OK ||
        (rc = text_model(&m, a, rng)) != ASEC_OK)
        goto done;
    if (priv) {
        /* sigma calibrated so that the RDP epsilon after the last step is
         * the target (as 'defend dpsgd --target-epsilon') */
        rc = cli_calibrate_sigma(&o.sigma, (double)o.batch / (double)a->ntrain,
                                 o.steps, r->target_eps, AUDIT_DELTA);
        if (rc != ASEC_OK)
            goto done;
    }
    if ((rc = asec_dpsgd_alloc(&d, m, &dd, &o, rng)) != ASEC_OK)
        goto done;
    while (asec_dpsgd_steps_done(d) < o.steps)
        if ((rc = asec_dpsgd_iterate(d, NULL)) != ASEC_OK)
            goto done;
    asec_dpsgd_get_info(d, &info);
    r->sigma = info.sigma;
    r->q = info.q;
    r->clip = info.clip;
    for (int k = 0; k < 4; k++) {
        asec_acct_result res;

        r->eps[k] = r->eps_lo[k] = INFINITY;
        if (priv) {
            if (asec_acct_epsilon(asec_dpsgd_get_acct(d), methods[k], AUDIT_DELTA,
                                  &res) == ASEC_OK) {
                r->eps[k] = res.epsilon;
                r->eps_lo[k] = res.epsilon_lo;
            } else
                r->eps[k] = r->eps_lo[k] = NAN;
        }
    }
    /* utility: next-token accuracy and loss on every held-out window */
    if ((rc = asec_dpsgd_evaluate(m, &td, 0, &r->test_loss, &r->test_acc)) != ASEC_OK)
        goto done;
    dir = audit_pathf("%s/runs/%s", a->out, r->dir);
    mp = audit_pathf("%s/runs/%s/model.safetensors", a->out, r->dir);
    if (dir == NULL || mp == NULL) {
        rc = ASEC_ENOMEM;
        goto done;
    }
    if ((rc = asec_afile_mkdirs(dir)) != ASEC_OK ||
        (rc = asec_model_save(m, mp)) != ASEC_OK)
        goto done;
    r->ok = 1;
    *out = m;
    m = NULL;
done:
    if (rc != ASEC_OK)
        snprintf(r->fail, sizeof r->fail, "training: %s", asec_errmsg());
    asec_dpsgd_free(d);
    asec_model_free(m);
    asec_rng_free(rng);
    free(dir);
    free(mp);
    if (rc == ASEC_ENOMEM || rc == ASEC_EIO || rc == ASEC_ECREATE)
        return cli_fail(rc);
    return 0;
}

/* top (u <= AUDIT_TEXT_T) = the u rows of gw (V, C) of largest norm. */
static void
top_rows(int64_t *top, size_t u, const double *gw, size_t V, size_t C)
{
    double best[AUDIT_TEXT_T];

    for (size_t j = 0; j < u; j++) {
        best[j] = -1;
        top[j] = -1;
    }
    for (size_t v = 0; v < V; v++) {
        double s = 0;
        size_t j;

        for (size_t c = 0; c < C; c++)
            s += gw[v * C + c] * gw[v * C + c];
        if (s <= best[u - 1])
            continue;
        /* insert into the sorted top-u list */
        for (j = u - 1; j > 0 && best[j - 1] < s; j--) {
            best[j] = best[j - 1];
            top[j] = top[j - 1];
        }
        best[j] = s;
        top[j] = (int64_t)v;
    }
}

/* The bag-of-words leak: the window's distinct tokens are the nonzero
 * rows of grad tok_emb.weight (V, C); score the top-u rows by norm (u =
 * the number of distinct tokens) as the fraction of them that occur. */
static double
rows_leak(const double *gw, size_t V, size_t C, const int64_t *tok, size_t T)
{
    int64_t uniq[AUDIT_TEXT_T], top[AUDIT_TEXT_T];
    size_t u = 0, hit = 0;

    for (size_t t = 0; t < T; t++) {
        size_t j = 0;

        while (j < u && uniq[j] != tok[t])
            j++;
        if (j == u)
            uniq[u++] = tok[t];
    }
    top_rows(top, u, gw, V, C);
    for (size_t j = 0; j < u; j++)
        for (size_t i = 0; i < u; i++)
            if (top[j] == uniq[i]) {
                hit++;
                break;
            }
    return (double)hit / (double)u;
}

int
audit_text_dlg(struct audit *a, struct run *r, struct dlg_out *out, int noise_on,
               asec_model *m, uint64_t seed)
{
    const size_t T = AUDIT_TEXT_T;
    const asec_model_arch *ar = asec_model_get_arch(m);
    size_t P = asec_model_param_count(m), C = ar->channels, V = ar->vocab;
    double *g = malloc(P * sizeof *g), *x = malloc(T * C * sizeof *x);
    double *ctab = malloc(T * C * sizeof *ctab); /* the candidates' rows */
    asec_model_tensor emb;
    asec_rng *rng = NULL, *noise = NULL;
    char label[64];
    int rc, priv = r->target_eps > 0;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    out->loss = ASEC_DLG_COS;
    out->ids = calloc(a->nimg * T, sizeof *out->ids);
    if (g == NULL || x == NULL || ctab == NULL || out->ids == NULL) {
        rc = ASEC_ENOMEM;
        goto done;
    }
    if ((rc = asec_model_tensor_find(m, "tok_emb.weight", &emb)) != ASEC_OK)
        goto done;

    snprintf(label, sizeof label, "audit/dlg/%s/%d", r->dir, noise_on);
    if ((rc = asec_rng_alloc_seeded(&rng, seed, label)) != ASEC_OK)
        goto done;
    snprintf(label, sizeof label, "audit/client-noise/%s", r->dir);
    if ((rc = asec_rng_alloc_seeded(&noise, seed, label)) != ASEC_OK)
        goto done;
    for (size_t k = 0; k < a->nimg; k++) {
        size_t idx = audit_test_index(a, k);
        const int64_t *tok = a->win_test + idx * T;
        int64_t y = a->y_test[idx];
        asec_model_batch b = {1, T, NULL, tok, &y, NULL};
        asec_model_vec gv = {g, NULL, NULL};
        asec_dlg_options o;
        asec_dlg_problem pb = {1, T, g, NULL, NULL, NULL};
        asec_dlg_result *res = NULL;
        const double *table = asec_model_params(m) + emb.offset;
        double loss, se = 0, nx = 0;
        int64_t cand[AUDIT_TEXT_T], bag[AUDIT_TEXT_T];
        size_t ok = 0, okb = 0;

        if ((rc = asec_model_grad(m, &loss, &gv, &b)) != ASEC_OK)
            goto done;
        if (priv) {
            rc = asec_dpsgd_clip(g, P, r->clip, NULL);
            if (rc < 0)
                goto done;
            if (noise_on)
                for (size_t i = 0; i < P; i++)
                    g[i] += r->sigma * r->clip * asec_rng_normal(noise);
            rc = ASEC_OK;
        }
        out->rows_acc[k] = rows_leak(g + emb.offset, V, C, tok, T);
        /* the combined attacker (as TAG / LAMP use the embedding
         * gradient): the T rows of largest norm are the candidates */
        top_rows(cand, T, g + emb.offset, V, C);
        for (size_t t = 0; t < T; t++)
            memcpy(ctab + t * C, table + (size_t)cand[t] * C, C * sizeof *ctab);
        /* embeddings given as inputs do not reach tok_emb.weight: match
         * the rest of the gradient */
        memset(g + emb.offset, 0, emb.size * sizeof *g);
        asec_dlg_options_default(&o);
        o.loss = ASEC_DLG_COS;
        o.restarts = noise_on && priv ? a->noisy_restarts : a->restarts;
        /* L-BFGS alone: with 256 unknowns and P ~ 146k equations one exact
         * Jacobian costs more than a thousand L-BFGS iterations, and the
         * decoded tokens need only the nearest embedding row */
        o.lbfgs_iters = a->quick ? 300 : 1000;
        o.lm_iters = 0;
        o.diagnostics = 0;
        o.labels = ASEC_DLG_LABELS_AUTO; /* iDLG: B = 1, one label */
        if ((rc = asec_dlg_attack(&res, m, &pb, &o, rng)) != ASEC_OK)
            goto done;
        if ((rc = asec_dlg_decode(out->ids + k * T, res->x, T, C, table, V)) != ASEC_OK ||
            (rc = asec_dlg_decode(bag, res->x, T, C, ctab, T)) != ASEC_OK) {
            asec_dlg_result_free(res);
            goto done;
        }
        for (size_t t = 0; t < T; t++) {
            ok += out->ids[k * T + t] == tok[t];
            okb += cand[bag[t]] == tok[t];
            for (size_t c = 0; c < C; c++) {
                double d = res->x[t * C + c] - table[(size_t)tok[t] * C + c];

                se += d * d;
                x[t * C + c] = table[(size_t)tok[t] * C + c];
                nx += x[t * C + c] * x[t * C + c];
            }
        }
        out->tok_acc[k] = (double)ok / (double)T;
        out->bag_acc[k] = (double)okb / (double)T;
        out->mse[k] = se / (double)(T * C);
        out->rel[k] = sqrt(se / nx);
        out->psnr[k] = NAN;
        out->label_ok[k] = res->labels != NULL && res->labels[0] == y;
        out->converged[k] = res->converged;
        asec_dlg_result_free(res);
        out->nimg = k + 1;
    }
    out->ok = 1;
done:
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out->seconds =
        (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (rc != ASEC_OK)
        snprintf(r->fail, sizeof r->fail, "DLG: %s", asec_errmsg());
    asec_rng_free(rng);
    asec_rng_free(noise);
    free(g);
    free(x);
    free(ctab);
    return rc;
}
