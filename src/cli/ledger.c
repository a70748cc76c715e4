/* ledger.c - read and compose the privacy ledger of 'attnsec release'
 * (ledger.h). */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "attnsec/acct.h"
#include "attnsec/attnsec.h"
#include "batch_plan.h"
#include "cli.h"
#include "ledger.h"
#include "printable.h"
#include "slurp.h"

void
ledger_free(struct ledger *l)
{
    json_decref(l->root);
    l->root = NULL;
    l->entries = NULL;
}

int
ledger_parse(struct ledger *l, const char *path, const char *buf, size_t len)
{
    json_error_t err;
    json_t *fmt, *ver;

    l->root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    l->entries = NULL;
    if (l->root == NULL) {
        char text[4 * sizeof err.text]; // jansson quotes the ledger's bytes

        if (json_error_code(&err) == json_error_out_of_memory) {
            cli_error("%s: out of memory", path);
            return EXIT_TEMPFAIL;
        }
        cli_error("%s:%d:%d: %s", path, err.line, err.column,
                  asec__printable(text, sizeof text, err.text));
        return EXIT_DATAERR;
    }
    if (batch_json_depth(l->root) > LEDGER_MAX_DEPTH) {
        cli_error("%s: nesting deeper than %d levels", path, LEDGER_MAX_DEPTH);
        ledger_free(l);
        return EXIT_DATAERR;
    }
    fmt = json_object_get(l->root, "format");
    ver = json_object_get(l->root, "version");
    l->entries = json_object_get(l->root, "entries");
    if (!json_is_object(l->root) || !json_is_string(fmt) ||
        strcmp(json_string_value(fmt), LEDGER_FORMAT) != 0 || !json_is_integer(ver) ||
        json_integer_value(ver) != LEDGER_VERSION || !json_is_array(l->entries)) {
        cli_error("%s: not an attnsec ledger (format \"%s\", version %d, with entries)",
                  path, LEDGER_FORMAT, LEDGER_VERSION);
        ledger_free(l);
        return EXIT_DATAERR;
    }
    if (json_array_size(l->entries) >= LEDGER_MAX_ENTRIES) {
        cli_error("%s: %zu entries; a ledger holds at most %d", path,
                  json_array_size(l->entries), LEDGER_MAX_ENTRIES - 1);
        ledger_free(l);
        return EXIT_DATAERR;
    }
    return 0;
}

int
ledger_read(struct ledger *l, const char *path)
{
    char *buf;
    size_t len;
    int st;

    l->root = l->entries = NULL;
    st = slurp_regular(path, LEDGER_MAX_BYTES, &buf, &len);
    if (st == SLURP_MISSING) {
        l->root = json_pack("{s:s, s:i, s:[]}", "format", LEDGER_FORMAT, "version",
                            LEDGER_VERSION, "entries");
        if (l->root == NULL) {
            cli_error("out of memory");
            return EXIT_TEMPFAIL;
        }
        l->entries = json_object_get(l->root, "entries");
        return 0;
    }
    if ((st = slurp_exit(st, path, len, LEDGER_MAX_BYTES)) != 0)
        return st;
    st = ledger_parse(l, path, buf, len);
    free(buf);
    return st;
}

static int
ledger_bad(const char *path, size_t i, const char *what)
{
    cli_error("%s: entries[%zu]: %s", path, i, what);
    return EXIT_DATAERR;
}

/* A finite number >= 0 under key, or -1. */
static double
entry_num(json_t *e, const char *key)
{
    json_t *v = json_object_get(e, key);
    double x;

    if (!json_is_number(v))
        return -1;
    x = json_number_value(v);
    return isfinite(x) && x >= 0 ? x : -1;
}

/* An accountant failure caused by the ledger's numbers (65): entry i, or
 * the composition of all n with the planned release (i == n); out of
 * memory is 75. */
static int
acct_refused(const char *path, size_t i, size_t n, int rc)
{
    char text[512];

    if (rc == ASEC_ENOMEM)
        return cli_fail(rc);
    asec__printable(text, sizeof text, asec_errmsg());
    if (i < n)
        cli_error("%s: entries[%zu]: refused by the accountant: %s", path, i, text);
    else
        cli_error("%s: cannot compose its %zu entries with this release: %s", path, n,
                  text);
    return EXIT_DATAERR;
}

int
ledger_compose(const struct ledger *l, const char *path, int gaussian_plan, double value,
               double delta, struct ledger_composed *out)
{
    asec_acct *acct = NULL;
    asec_acct_event ev;
    asec_acct_result res;
    size_t n = json_array_size(l->entries);
    double pure_sum = 0;
    int all_pure = 1, rc, st = 0;

    rc = asec_acct_alloc(&acct, NULL);
    if (rc != ASEC_OK)
        return cli_fail(rc);
    for (size_t i = 0; i <= n; i++) {
        int gaussian;
        double v;

        memset(&ev, 0, sizeof ev);
        ev.count = 1;
        ev.q = 1;
        if (i < n) {
            json_t *e = json_array_get(l->entries, i),
                   *m = json_object_get(e, "mechanism");

            if (!json_is_object(e) || !json_is_string(m)) {
                st = ledger_bad(path, i, "expected an object with a \"mechanism\"");
                goto done;
            }
            if (strcmp(json_string_value(m), "gaussian") == 0)
                gaussian = 1;
            else if (strcmp(json_string_value(m), "laplace") == 0)
                gaussian = 0;
            else {
                st = ledger_bad(path, i, "mechanism is not gaussian or laplace");
                goto done;
            }
            v = entry_num(e, gaussian ? "rho" : "epsilon");
            if (v < 0) {
                st = ledger_bad(path, i,
                                gaussian ? "rho: expected a number >= 0"
                                         : "epsilon: expected a number >= 0");
                goto done;
            }
        } else {
            gaussian = gaussian_plan;
            v = value;
        }
        /* The discrete Gaussian is rho-zCDP (CKS20 Thm. 14), the discrete
         * Laplace pure epsilon-DP; neither has the continuous mechanism's
         * exact privacy curve, so they enter as these events. */
        if (gaussian) {
            ev.kind = ASEC_ACCT_EV_ZCDP;
            ev.rho = v;
            all_pure = 0;
        } else {
            ev.kind = ASEC_ACCT_EV_PURE;
            ev.epsilon = v;
            pure_sum += v;
        }
        rc = asec_acct_add(acct, &ev);
        if (rc != ASEC_OK) {
            /* the planned release itself was checked by asec_noise_plan */
            st = i < n ? acct_refused(path, i, n, rc) : cli_fail(rc);
            goto done;
        }
    }
    out->entries = n + 1;
    out->delta = delta;
    out->epsilon = INFINITY;
    out->method = "none";
    if (delta > 0) {
        rc = asec_acct_epsilon(acct, ASEC_ACCT_RDP, delta, &res);
        if (rc != ASEC_OK) {
            st = acct_refused(path, n, n, rc);
            goto done;
        }
        out->epsilon = res.epsilon;
        out->method = asec_acct_method_name(res.method);
    }
    /* Pure releases also compose by adding epsilons (delta 0); keep the
     * tighter valid bound. */
    if (all_pure && pure_sum <= out->epsilon) {
        out->epsilon = pure_sum;
        out->method = asec_acct_method_name(ASEC_ACCT_BASIC);
    }
done:
    asec_acct_free(acct);
    return st;
}
