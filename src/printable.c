/* printable.c - asec__printable(), see printable.h.  Its own file so that
 * the attnsec program can compile it too (a static libattnsec then never
 * links a second copy: this object is pulled only for this symbol). */
#include "config.h"

#include <string.h>

#include "printable.h"

char *
asec__printable(char *dst, size_t cap, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    if (cap == 0)
        return dst;
    for (; *src != '\0'; src++) {
        unsigned char c = (unsigned char)*src;
        size_t need = (c >= 0x20 && c < 0x7f) ? 1 : 4;

        if (n + need + 4 > cap) { /* keep room for "..." and the NUL */
            if (cap >= 4) {
                memcpy(dst + (n < cap - 4 ? n : cap - 4), "...", 3);
                n = (n < cap - 4 ? n : cap - 4) + 3;
            }
            break;
        }
        if (need == 1) {
            dst[n++] = (char)c;
        } else {
            dst[n++] = '\\';
            dst[n++] = 'x';
            dst[n++] = hex[c >> 4];
            dst[n++] = hex[c & 15];
        }
    }
    dst[n < cap ? n : cap - 1] = '\0';
    return dst;
}
