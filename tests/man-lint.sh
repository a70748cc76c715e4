#!/bin/sh
# Every man page is clean under 'mandoc -Tlint', and every public function
# is documented in a section-3 page.
: "${ASEC_SRCDIR:?}"
if [ -z "${MANDOC:-}" ] || [ ! -x "$MANDOC" ]; then
    echo "mandoc is not installed (Debian: mandoc); skipping"
    exit 77
fi
failures=0
for page in "$ASEC_SRCDIR"/man/*.[1-8]; do
    [ -f "$page" ] || continue
    # -W warning: report warnings and worse; style notes are not failures.
    if ! out=$("$MANDOC" -Tlint -W warning "$page" 2>&1) || [ -n "$out" ]; then
        echo "FAIL: $page:" >&2
        echo "$out" >&2
        failures=$((failures + 1))
    fi
done
for sym in $(grep -v '^#' "$ASEC_SRCDIR/src/attnsec.sym"); do
    if ! cat "$ASEC_SRCDIR"/man/*.3 | grep -q -E "^\.(Nm|Fn|Fo) $sym( |\$)"; then
        echo "FAIL: $sym is not documented in any section-3 page (.Nm/.Fn/.Fo)" >&2
        failures=$((failures + 1))
    fi
done
[ "$failures" -eq 0 ] || exit 1
exit 0
