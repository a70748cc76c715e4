#!/bin/sh
# valgrind-wrap.sh - run a program of the build tree under valgrind memcheck
# (make check-valgrind).
#
#   valgrind-wrap.sh PROGRAM [ARG]...
#
# make check-valgrind uses it as the LOG_COMPILER of the Check programs,
# tests/fuzz/replay.sh runs the replays through it, and attnsec-vg.sh (what
# ATTNSEC names during check-valgrind) runs the CLI through it.
#
# Libtool wrapper scripts are handled (libtool --mode=execute).  The exit
# status is the program's, or 99 when memcheck found an error or a
# definite, indirect or possible leak.  Each process writes
# $ASEC_VALGRIND_LOGDIR/vg.PID.log (default: $ASEC_BUILDDIR/valgrind-logs);
# check-valgrind fails if any log reports an error, so a leak in a command
# whose status a test ignores is still caught.  OPENBLAS_CORETYPE=Sandybridge
# keeps OpenBLAS off AVX-512 kernels, which valgrind cannot emulate, and
# off the FMA kernels of Haswell, which it emulates slowly: a 64x64 dgemm
# runs about 6x faster under memcheck with the Sandybridge (AVX) kernels.
: "${ASEC_BUILDDIR:?ASEC_BUILDDIR must name the build tree (make check sets it)}"
: "${ASEC_SRCDIR:?ASEC_SRCDIR must name the source tree (make check sets it)}"

prog=$1
shift
logdir=${ASEC_VALGRIND_LOGDIR:-$ASEC_BUILDDIR/valgrind-logs}
mkdir -p "$logdir" || exit 99
OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Sandybridge}
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS
exec "$ASEC_BUILDDIR/libtool" --mode=execute valgrind -q \
    --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect,possible \
    --show-leak-kinds=definite,indirect,possible \
    --suppressions="$ASEC_SRCDIR/tests/valgrind.supp" \
    --log-file="$logdir/vg.%p.log" \
    "$prog" "$@"
