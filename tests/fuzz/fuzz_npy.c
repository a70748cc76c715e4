/* fuzz_npy.c - libFuzzer harness for the strict .npy reader (src/npy.c).
 *
 * The input is the whole file.  fuzz_io_check() opens it header-only,
 * loads the array RAW and DOUBLE, and compares every answer with the
 * input bytes (see fuzz_io.c).  Seeds: tests/fuzz/corpus/fuzz_npy,
 * datasets/fixtures/npy and tests/malformed/npy-*; dictionary npy.dict.
 */
#include "config.h"

#include "attnsec/attnsec.h"
#include "fuzz.h"
#include "fuzz_io.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup("fuzz_npy");
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_io_check(data, size, ASEC_IO_NPY);
    return 0;
}
