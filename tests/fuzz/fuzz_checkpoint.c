/* fuzz_checkpoint.c - libFuzzer harness for DP-SGD checkpoints, the files
 * 'attnsec defend dpsgd --resume' reads (asec_dpsgd_checkpoint_load in
 * defenses/dpsgd.c: the safetensors reader, then the metadata: content,
 * architecture, options, step and stream state, accountant ledger, and
 * the tensors params, opt.m, opt.v, ema, perm).
 *
 * The handle is a tiny seeded run made once: an attn-regression model with
 * d = 2, T = 2 (8 parameters) on 4 synthetic examples, Adam, shuffled
 * batches of 2, 6 steps, sigma 1, an EMA; the checkpoint it writes after
 * 2 steps is the first seed (also committed in the corpus).  The input is
 * the checkpoint file.
 *
 * What must hold: a failure has an allowed status and a one-line message,
 * and leaves the handle unchanged (parameters bit for bit, steps done);
 * a success gives finite parameters and at most the planned steps (the
 * handle is then rebuilt, so every input starts from the same state).
 * Seeds: tests/fuzz/corpus/fuzz_checkpoint; dictionary checkpoint.dict.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "fuzz.h"

#define N_EX 4
#define D 2
#define T 2

#define LOAD_FAILS                                                                       \
    (fuzz_bit(ASEC_EFORMAT) | fuzz_bit(ASEC_ELIMIT) | fuzz_bit(ASEC_ENUMERIC) |          \
     fuzz_bit(ASEC_EINVAL) | fuzz_bit(ASEC_EBADLEN))

static asec_model *model;
static asec_rng *rng;
static asec_dpsgd *run;
static double xs[N_EX * T * D], ys[N_EX * T * D];
static double *snapshot;
static size_t nparams;

/* A fresh handle at step 0 with the initial parameters. */
static void
build(void)
{
    asec_model_arch a;
    asec_dpsgd_options o = ASEC_DPSGD_OPTIONS_INIT;
    asec_dpsgd_data data = {N_EX, T, xs, NULL, NULL, ys};
    double *p;

    asec_dpsgd_free(run);
    asec_model_free(model);
    asec_rng_free(rng);
    if (asec_model_arch_default(&a, ASEC_MODEL_ATTN_REGRESSION) != ASEC_OK)
        fuzz_bug("asec_model_arch_default");
    a.channels = D;
    a.seq_len = T;
    if (asec_model_alloc(&model, &a) != ASEC_OK)
        fuzz_bug("asec_model_alloc");
    nparams = asec_model_param_count(model);
    p = asec_model_params(model);
    for (size_t i = 0; i < nparams; i++)
        p[i] = 0.25 * (double)(i % 5) - 0.5;
    if (asec_rng_alloc_seeded(&rng, 7, "fuzz/checkpoint") != ASEC_OK)
        fuzz_bug("asec_rng_alloc_seeded");
    o.sampling = ASEC_DPSGD_SHUFFLE;
    o.batch = 2;
    o.steps = 6;
    o.sigma = 1.0;
    o.chunk = 2;
    o.ema = 0.5;
    if (asec_dpsgd_alloc(&run, model, &data, &o, rng) != ASEC_OK)
        fuzz_bug("asec_dpsgd_alloc");
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup("fuzz_checkpoint");
    for (size_t i = 0; i < N_EX * T * D; i++) {
        xs[i] = 0.1 * (double)((i * 7) % 11) - 0.5;
        ys[i] = 0.05 * (double)((i * 3) % 7);
    }
    build();
    snapshot = malloc(nparams * sizeof *snapshot);
    if (snapshot == NULL)
        fuzz_bug("out of memory");
    /* ASEC_FUZZ_WRITE_SEED=PATH: write the seed checkpoint (2 steps). */
    if (getenv("ASEC_FUZZ_WRITE_SEED") != NULL) {
        for (int s = 0; s < 2; s++)
            if (asec_dpsgd_iterate(run, NULL) != ASEC_OK)
                fuzz_bug("asec_dpsgd_iterate");
        if (asec_dpsgd_checkpoint_save(run, getenv("ASEC_FUZZ_WRITE_SEED")) != ASEC_OK)
            fuzz_bug("asec_dpsgd_checkpoint_save");
        build();
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_put_file(data, size);
    uint64_t steps = asec_dpsgd_steps_done(run);
    const double *p;
    int rc;

    memcpy(snapshot, asec_model_params(model), nparams * sizeof *snapshot);
    rc = asec_dpsgd_checkpoint_load(run, path);
    p = asec_model_params(model);
    if (rc == ASEC_OK) {
        FUZZ_CHECK(asec_dpsgd_steps_done(run) <= 6);
        for (size_t i = 0; i < nparams; i++)
            FUZZ_CHECK(isfinite(p[i]));
        build(); // the next input starts from the same state
        return 0;
    }
    if (rc >= 0 || (LOAD_FAILS & fuzz_bit(rc)) == 0)
        fuzz_bug("asec_dpsgd_checkpoint_load: unexpected status %d (%s)", rc,
                 asec_strerror(rc));
    if (asec_errmsg()[0] == '\0' ||
        !fuzz_one_line(asec_errmsg(), "asec_dpsgd_checkpoint_load"))
        fuzz_bug("asec_dpsgd_checkpoint_load: the message is empty or not one line of "
                 "printable text");
    FUZZ_CHECK(asec_dpsgd_steps_done(run) == steps);
    if (memcmp(snapshot, p, nparams * sizeof *snapshot) != 0)
        fuzz_bug("a failed load changed the parameters");
    return 0;
}
