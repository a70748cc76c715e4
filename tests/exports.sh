#!/bin/sh
# The dynamic symbol table of libattnsec equals src/attnsec.sym: nothing
# leaks (asec__ helpers stay hidden), nothing public is missing.
: "${ASEC_SRCDIR:?}" "${ASEC_BUILDDIR:?}"
lib=$(ls "$ASEC_BUILDDIR"/src/.libs/libattnsec.so 2>/dev/null)
if [ -z "$lib" ] || ! command -v nm >/dev/null 2>&1; then
    echo "nm or the shared library is unavailable; skipping"
    exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/asec-exports.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRV]$/ { print $3 }' | grep -v '^_' | sort >"$tmp/actual"
grep -v '^#' "$ASEC_SRCDIR/src/attnsec.sym" | sed '/^$/d' | sort >"$tmp/expected"
if ! diff -u "$tmp/expected" "$tmp/actual"; then
    echo "FAIL: exported symbols differ from src/attnsec.sym (- listed only, + exported only)" >&2
    exit 1
fi
if grep -q '^asec_[a-z0-9]*__' "$tmp/actual"; then
    echo "FAIL: semi-private asec_*__* symbols are exported" >&2
    exit 1
fi
exit 0
