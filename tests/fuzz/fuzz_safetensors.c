/* fuzz_safetensors.c - libFuzzer harness for the strict safetensors reader
 * (src/safetensors.c) and for model files (src/model_io.c: the
 * architecture JSON in __metadata__, then every parameter tensor).
 *
 * The input is the whole file.  fuzz_io_check() opens it header-only,
 * loads every tensor RAW and DOUBLE and compares every answer with the
 * input bytes (see fuzz_io.c).  Then asec_model_load() reads it as a
 * model; a model that loads must describe itself with an architecture that
 * round-trips through JSON, and asec_model_read_vector() of the same file
 * must give back its parameters.  Seeds: tests/fuzz/corpus/fuzz_safetensors,
 * datasets/fixtures/safetensors, tests/malformed/st-*; dictionary
 * safetensors.dict.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "attnsec/attnsec.h"
#include "fuzz.h"
#include "fuzz_io.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup("fuzz_safetensors");
    return 0;
}

static void
check_model(const char *path)
{
    asec_model *m = NULL;
    asec_model_arch back;
    char json[1024], again[1024];
    double *v;
    size_t p;
    int rc;

    rc = asec_model_load(&m, path);
    if (rc != ASEC_OK) {
        FUZZ_CHECK(m == NULL);
        fuzz_check_failure(
            rc, fuzz_bit(ASEC_EFORMAT) | fuzz_bit(ASEC_ELIMIT) | fuzz_bit(ASEC_ENUMERIC),
            path, "asec_model_load");
        return;
    }
    FUZZ_CHECK(asec_model_arch_to_json(json, sizeof json, asec_model_get_arch(m)) ==
               ASEC_OK);
    FUZZ_CHECK(asec_model_arch_from_json(&back, json, strlen(json)) == ASEC_OK);
    FUZZ_CHECK(asec_model_arch_to_json(again, sizeof again, &back) == ASEC_OK);
    if (strcmp(json, again) != 0)
        fuzz_bug("architecture JSON does not round-trip: %s -> %s", json, again);
    p = asec_model_param_count(m);
    v = malloc(p ? p * sizeof *v : 1);
    FUZZ_CHECK(v != NULL);
    rc = asec_model_read_vector(m, path, v);
    if (rc != ASEC_OK)
        fuzz_bug("a model that loads fails asec_model_read_vector: %d", rc);
    for (size_t i = 0; i < p; i++)
        if (!fuzz_same_double(v[i], asec_model_params(m)[i]))
            fuzz_bug("parameter %zu: read_vector %.17g, load %.17g", i, v[i],
                     asec_model_params(m)[i]);
    free(v);
    asec_model_free(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_io_check(data, size, ASEC_IO_SAFETENSORS);
    /* fuzz_io_check leaves the same bytes in the same file. */
    check_model(fuzz_put_file(data, size));
    return 0;
}
