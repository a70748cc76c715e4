#!/bin/sh
# attnsec-vg.sh - the attnsec program under valgrind memcheck: what ATTNSEC
# names while 'make check-valgrind' runs the CLI tests (valgrind-wrap.sh).
exec "${ASEC_SRCDIR:?}/tests/valgrind-wrap.sh" "${ASEC_BUILDDIR:?}/src/cli/attnsec" "$@"
