/* fuzz.h - what the fuzz harnesses of tests/fuzz share (issue #12).
 *
 * Every harness is a libFuzzer target: LLVMFuzzerInitialize() once, then
 * LLVMFuzzerTestOneInput() per input.  The same source links either with
 * libFuzzer (--enable-fuzzing, 'make fuzz') or with replay.c, a plain
 * main() that feeds it the files named on the command line ('make check'
 * replays the committed seed corpora and the malformed corpus).
 *
 * A harness reports a bug by calling fuzz_bug(), which prints the broken
 * invariant and aborts: libFuzzer then saves the input as a crash, and the
 * replay program dies with SIGABRT so the test fails.
 *
 * Nothing here is part of libattnsec.
 */
#ifndef ATTNSEC_FUZZ_H
#define ATTNSEC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "attnsec/common.h"

/* The libFuzzer entry points each harness defines. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Print "fuzz: <harness invariant>" (and asec_errmsg()) on stderr, then
 * abort().  Never returns. */
void fuzz_bug(const char *fmt, ...) ASEC_PRINTF(1, 2) __attribute__((noreturn));

/* Abort with the condition's text unless cond holds. */
#define FUZZ_CHECK(cond)                                                                 \
    ((cond) ? (void)0                                                                    \
            : fuzz_bug("%s:%d: invariant failed: %s", __FILE__, __LINE__, #cond))

/* One-time setup: asec_init() (aborts if it fails); harness names the
 * scratch directory. */
void fuzz_setup(const char *harness);

/* A private scratch directory for files the harness writes, made on first
 * use, on tmpfs when /dev/shm is writable (the writers fsync), named
 * attnsec-HARNESS-XXXXXX and removed at exit. */
const char *fuzz_scratch(void);

/* Remove the scratch directory now (fuzz_bug() does, before aborting); the
 * next fuzz_scratch() makes a new one.  Harnesses that write files call it
 * at the end of every input, so that nothing is left behind when libFuzzer
 * ends with _Exit. */
void fuzz_scratch_remove(void);

/* Make data[0 .. size-1] the whole content of an unnamed in-memory file
 * (memfd; a file in the scratch directory where memfd_create is missing)
 * and return a path that opens it, e.g. "/proc/self/fd/5".  The path stays
 * valid until the next call.  Aborts if the file cannot be written. */
const char *fuzz_put_file(const uint8_t *data, size_t size);

/* Create (or truncate) the file at path and write buf[0 .. n-1] into it.
 * Aborts if it cannot. */
void fuzz_write_file(const char *path, const void *buf, size_t n);

/* Check the failure contract of a call that read the file at path:
 * status is one of the allowed ones (a bit mask of fuzz_bit(ASEC_E*)),
 * and asec_errmsg() is one non-empty line that starts with "path: "
 * (ASEC_ENOMEM from the allocator is exempt from the prefix rule). */
#define fuzz_bit(status) (1u << (unsigned)(-(status)))
void fuzz_check_failure(int status, unsigned allowed, const char *path, const char *what);

/* 1 when msg, the message of the call named what, holds no control byte
 * (no newline, no escape sequence that could repaint a terminal): what a
 * message quoting hostile input must guarantee.  To keep fuzzing past a
 * known, reported offender, ASEC_FUZZ_LAX_MESSAGES in the environment turns
 * the check off: "1" for every call, or a comma-separated list of prefixes
 * of what ("asec_acct,asec_model"). */
int fuzz_one_line(const char *msg, const char *what);

/* Independent little-endian decoding of one element of dtype (an
 * asec_io_dtype value) at p, for comparing with the library's own; F16 and
 * BF16 go through asec_io_f16_to_double / asec_io_bf16_to_double, which
 * check_io tests on all 2^16 inputs. */
double fuzz_decode(const unsigned char *p, int dtype);

/* 1 when a and b are the same double bit for bit, or both NaN. */
int fuzz_same_double(double a, double b);

#endif /* ATTNSEC_FUZZ_H */
