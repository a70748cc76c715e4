/* error.c - status texts and the thread-local failure message. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_message[512];

int
asec__fail(int status, const char *fmt, ...)
{
    char msg[sizeof last_message];
    va_list ap;

    /* Format into a local buffer first: callers may pass asec_errmsg()
     * itself as an argument to add context to a callee's message. */
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_message, msg, sizeof msg);
    return status;
}

const char *
asec_errmsg(void)
{
    return last_message;
}

const char *
asec_strerror(int status)
{
    switch (status) {
    case ASEC_OK:
        return "success";
    case ASEC_EINVAL:
        return "invalid argument";
    case ASEC_EBADLEN:
        return "shapes do not conform";
    case ASEC_ENOMEM:
        return "out of memory";
    case ASEC_EIO:
        return "input/output error";
    case ASEC_EFORMAT:
        return "malformed input";
    case ASEC_EBUDGET:
        return "privacy budget would be exceeded";
    case ASEC_ENOINIT:
        return "library not initialised";
    case ASEC_ENOENT:
        return "input missing or unreadable";
    case ASEC_ELIMIT:
        return "input exceeds a limit";
    case ASEC_ENOTSUP:
        return "not supported in this build";
    case ASEC_ECREATE:
        return "cannot create output";
    case ASEC_ENOSPC:
        return "no space left on device";
    case ASEC_ENUMERIC:
        return "numerical failure";
    case ASEC_EINTERNAL:
        return "internal error";
    default:
        return "unknown error";
    }
}
