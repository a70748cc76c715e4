/* printable.h - NOT installed.  The one escaping helper for untrusted text
 * quoted in a one-line message.  Compiled into the library (declared for
 * it by internal.h) and, from the same source, into the attnsec program,
 * which cannot reach the library's hidden symbols. */
#ifndef ATTNSEC_PRINTABLE_H
#define ATTNSEC_PRINTABLE_H

#include <stddef.h>

/* Copy src into dst (capacity cap, always NUL-terminated when cap > 0,
 * cut with "..." when long) for a one-line message: bytes outside
 * printable ASCII (control bytes, DEL, every byte >= 0x80) become \xNN,
 * so input can neither break the line nor reach a terminal as an escape
 * sequence.  Returns dst.  For text from untrusted input (tensor names,
 * JSON keys, parser excerpts such as jansson's error text).  Allocates
 * nothing. */
char *asec__printable(char *dst, size_t cap, const char *src);

#endif /* ATTNSEC_PRINTABLE_H */
