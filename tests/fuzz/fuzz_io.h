/* fuzz_io.h - the .npy / safetensors checks shared by fuzz_npy and
 * fuzz_safetensors (fuzz_io.c). */
#ifndef ATTNSEC_FUZZ_IO_H
#define ATTNSEC_FUZZ_IO_H

#include <stddef.h>
#include <stdint.h>

#include "attnsec/io.h"

/* Write data to an in-memory file, open it as format (header only, each
 * tensor loaded RAW and DOUBLE, the whole file loaded DOUBLE, and once with
 * ASEC_IO_AUTO) and abort on any answer that the bytes contradict. */
void fuzz_io_check(const uint8_t *data, size_t size, asec_io_format format);

#endif /* ATTNSEC_FUZZ_IO_H */
