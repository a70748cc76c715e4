/* copyright_lm.c - the next-token (multinomial logistic) instance of the
 * copyright objective L + gamma / L_1 + L_reg (MATH.md §6.2-§6.3), its
 * L-BFGS fit with the L_1 >= beta_c guard, and the verbatim-regeneration
 * count used by the corpus demonstration of 'attnsec defend copyright'.
 *
 * Gradient (rows i, r_i = p_i - e_{y_i}, n = N, s = gamma / L_1^2):
 *   grad L_cpr = sum_i (1/n - s [cp_i] / n1) r_i x_i^T + lambda W.
 * L_1 is needed before the row weights are known, so one pass over row
 * blocks accumulates sum r_i x_i^T separately over copyrighted and other
 * rows, and the two sums are weighted at the end. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "attnsec/copyright.h"
#include "internal.h"

#define LM_BLOCK 1024
#define LM_ARMIJO_C1 1e-4

int
asec_copyright_lm_check(const asec_copyright_lm *p)
{
    if (p->version != ASEC_COPYRIGHT_LM_VERSION)
        ASEC_FAIL(ASEC_EINVAL, "copyright lm: version %u, expected %u", p->version,
                  (unsigned)ASEC_COPYRIGHT_LM_VERSION);
    if (p->x.rows == 0 || p->x.cols == 0 || p->x.data == NULL || p->x.ld < p->x.cols)
        ASEC_FAIL(ASEC_EINVAL, "copyright lm: empty or malformed feature matrix");
    if (p->classes < 2)
        ASEC_FAIL(ASEC_EINVAL, "copyright lm: %zu classes, need at least 2", p->classes);
    if (p->y == NULL || p->cp == NULL)
        ASEC_FAIL(ASEC_EINVAL, "copyright lm: labels or copyright marks are NULL");
    if (!isfinite(p->gamma) || p->gamma < 0)
        ASEC_FAIL(ASEC_EINVAL, "copyright lm: gamma %g must be finite and >= 0",
                  p->gamma);
    if (!isfinite(p->lambda) || p->lambda < 0)
        ASEC_FAIL(ASEC_EINVAL, "copyright lm: lambda %g must be finite and >= 0",
                  p->lambda);
    if (!isfinite(p->beta_c) || p->beta_c < 0)
        ASEC_FAIL(ASEC_EINVAL, "copyright lm: beta_c %g must be finite and >= 0",
                  p->beta_c);
    size_t n1 = 0;
    for (size_t i = 0; i < p->x.rows; i++) {
        if (p->y[i] < 0 || (uint64_t)p->y[i] >= p->classes)
            ASEC_FAIL(ASEC_EINVAL, "copyright lm: label %lld of row %zu outside [0, %zu)",
                      (long long)p->y[i], i, p->classes);
        n1 += p->cp[i] != 0;
        const double *xi = p->x.data + i * p->x.ld;
        for (size_t j = 0; j < p->x.cols; j++)
            if (!isfinite(xi[j]))
                ASEC_FAIL(ASEC_ENUMERIC, "copyright lm: feature (%zu, %zu) is not finite",
                          i, j);
    }
    if (p->gamma > 0 && n1 == 0)
        ASEC_FAIL(ASEC_EINVAL, "copyright lm: gamma %g > 0 but no row is copyrighted",
                  p->gamma);
    return ASEC_OK;
}

/* Logits of rows [r0, r0 + m) into z (m x V); then turn each row into
 * p - e_y in place (when resid) and return the cross-entropies in ce. */
static int
lm_block(asec_mat *z, double *ce, const asec_copyright_lm *p, const asec_mat *wm,
         size_t r0, size_t m, int resid)
{
    asec_mat xb = {m, p->x.cols, p->x.ld, p->x.data + r0 * p->x.ld};
    asec_mat zb = {m, p->classes, p->classes, z->data};
    ASEC_TRY(asec_mat_gemm(&zb, 1.0, &xb, ASEC_NOTRANS, wm, ASEC_TRANS, 0.0));
    size_t V = p->classes;
    for (size_t i = 0; i < m; i++) {
        double *zi = zb.data + i * V;
        double mx = zi[0];
        for (size_t k = 1; k < V; k++)
            mx = zi[k] > mx ? zi[k] : mx;
        double sum = 0;
        for (size_t k = 0; k < V; k++)
            sum += exp(zi[k] - mx);
        double lse = mx + log(sum);
        size_t y = (size_t)p->y[r0 + i];
        ce[i] = lse - zi[y];
        if (resid) {
            for (size_t k = 0; k < V; k++)
                zi[k] = exp(zi[k] - lse);
            zi[y] -= 1.0;
        }
    }
    return ASEC_OK;
}

static int
lm_eval(asec_copyright_losses *out, double *grad, const asec_copyright_lm *p,
        const double *w, double *zbuf, double *ce, double *gcp)
{
    size_t N = p->x.rows, d = p->x.cols, V = p->classes;
    asec_mat wm = {V, d, d, (double *)(uintptr_t)w};
    asec_mat z = {LM_BLOCK, V, V, zbuf};
    asec_mat g2 = {V, d, d, grad}, g1 = {V, d, d, gcp};
    double s_all = 0, s1 = 0, s2 = 0;
    size_t n1 = 0, n2 = 0;
    int want = grad != NULL;

    if (want) {
        memset(grad, 0, V * d * sizeof(double));
        memset(gcp, 0, V * d * sizeof(double));
    }
    for (size_t r0 = 0; r0 < N; r0 += LM_BLOCK) {
        size_t m = N - r0 < LM_BLOCK ? N - r0 : LM_BLOCK;
        ASEC_TRY(lm_block(&z, ce, p, &wm, r0, m, want));
        for (size_t i = 0; i < m; i++) {
            s_all += ce[i];
            if (p->cp[r0 + i]) {
                s1 += ce[i];
                n1++;
            } else {
                s2 += ce[i];
                n2++;
            }
        }
        /* sum of r_i x_i^T, separately over copyrighted (gcp) and other
         * (grad) rows: one product per run of rows with the same mark. */
        for (size_t a = 0; want && a < m;) {
            size_t b = a + 1;
            int mark = p->cp[r0 + a] != 0;
            while (b < m && (p->cp[r0 + b] != 0) == mark)
                b++;
            asec_mat rb = {b - a, V, V, zbuf + a * V};
            asec_mat xb = {b - a, d, p->x.ld, p->x.data + (r0 + a) * p->x.ld};
            ASEC_TRY(asec_mat_gemm(mark ? &g1 : &g2, 1.0, &rb, ASEC_TRANS, &xb,
                                   ASEC_NOTRANS, 1.0));
            a = b;
        }
    }
    double wn = 0;
    for (size_t k = 0; k < V * d; k++)
        wn += w[k] * w[k];
    out->l = s_all / (double)N;
    out->l1 = n1 ? s1 / (double)n1 : NAN;
    out->l2 = n2 ? s2 / (double)n2 : NAN;
    out->l_reg = 0.5 * p->lambda * wn;
    out->tau = (n1 && n2) ? out->l1 - out->l2 : NAN;
    if (!isfinite(out->l) || !isfinite(out->l_reg))
        ASEC_FAIL(ASEC_ENUMERIC, "copyright lm: the loss is not finite");
    out->l_cpr = out->l + out->l_reg;
    if (p->gamma > 0) {
        if (!(out->l1 > 0))
            ASEC_FAIL(ASEC_ENUMERIC, "copyright lm: L_1 = %g, gamma / L_1 undefined",
                      out->l1);
        out->l_cpr += p->gamma / out->l1;
    }
    if (!want)
        return ASEC_OK;
    /* grad = (1/N) sum_all - (gamma / L_1^2) (1/n1) sum_cp + lambda W */
    double s = p->gamma > 0 ? p->gamma / (out->l1 * out->l1) : 0.0;
    double c_all = 1.0 / (double)N, c_cp = c_all - (n1 ? s / (double)n1 : 0.0);
    for (size_t k = 0; k < V * d; k++) {
        grad[k] = c_all * grad[k] + c_cp * gcp[k] + p->lambda * w[k];
        if (!isfinite(grad[k]))
            ASEC_FAIL(ASEC_ENUMERIC, "copyright lm: gradient entry %zu is not finite", k);
    }
    return ASEC_OK;
}

static int
lm_scratch(double **zbuf, double **ce, double **gcp, size_t V, size_t vd)
{
    size_t nz, ng;
    if (asec__mul_size(V, LM_BLOCK, &nz) != 0 ||
        asec__mul_size(nz, sizeof(double), &nz) ||
        asec__mul_size(vd, sizeof(double), &ng))
        ASEC_FAIL(ASEC_ENOMEM, "copyright lm: %zu classes overflow the block buffer", V);
    *zbuf = asec__malloc(nz);
    *ce = asec__malloc(LM_BLOCK * sizeof(double));
    *gcp = asec__malloc(ng);
    if (*zbuf == NULL || *ce == NULL || *gcp == NULL) {
        asec__free(*zbuf);
        asec__free(*ce);
        asec__free(*gcp);
        *zbuf = *ce = *gcp = NULL;
        ASEC_FAIL(ASEC_ENOMEM, "copyright lm: out of memory for the logit block");
    }
    return ASEC_OK;
}

int
asec_copyright_lm_eval(asec_copyright_losses *out, double *grad,
                       const asec_copyright_lm *p, const double *w)
{
    ASEC_TRY(asec_copyright_lm_check(p));
    size_t vd;
    if (asec__mul_size(p->classes, p->x.cols, &vd) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "copyright lm: V d overflows");
    double *zbuf = NULL, *ce = NULL, *gcp = NULL;
    ASEC_TRY(lm_scratch(&zbuf, &ce, &gcp, p->classes, grad ? vd : 0));
    int rc = lm_eval(out, grad, p, w, zbuf, ce, gcp);
    asec__free(zbuf);
    asec__free(ce);
    asec__free(gcp);
    return rc;
}

static double
dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double
maxabs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

int
asec_copyright_lm_fit(double *w, asec_copyright_lm_result *res,
                      const asec_copyright_lm *p, const asec_copyright_lm_options *opts)
{
    asec_copyright_lm_options o = ASEC_COPYRIGHT_LM_OPTIONS_INIT;
    if (opts != NULL)
        o = *opts;
    if (o.version != ASEC_COPYRIGHT_LM_OPTIONS_VERSION)
        ASEC_FAIL(ASEC_EINVAL, "copyright lm: options version %u, expected %u", o.version,
                  (unsigned)ASEC_COPYRIGHT_LM_OPTIONS_VERSION);
    if (o.memory == 0 || o.max_backtrack == 0 || !(o.tol_grad >= 0) ||
        !(o.tol_rel_loss >= 0))
        ASEC_FAIL(ASEC_EINVAL, "copyright lm: memory and max_backtrack must be >= 1 and "
                               "the tolerances >= 0");
    ASEC_TRY(asec_copyright_lm_check(p));
    size_t V = p->classes, d = p->x.cols, nd, nbuf;
    if (asec__mul_size(V, d, &nd) != 0 ||
        asec__mul_size(nd, 2 * o.memory + 4, &nbuf) != 0 ||
        asec__mul_size(nbuf, sizeof(double), &nbuf) != 0)
        ASEC_FAIL(ASEC_ENOMEM, "copyright lm: workspace size overflows");

    int rc = ASEC_OK;
    double *zbuf = NULL, *ce = NULL, *gcp = NULL, *buf = NULL, *alpha = NULL, *rho = NULL;
    ASEC_TRY(lm_scratch(&zbuf, &ce, &gcp, V, nd));
    buf = asec__malloc(nbuf);
    alpha = asec__malloc(o.memory * sizeof(double));
    rho = asec__malloc(o.memory * sizeof(double));
    if (buf == NULL || alpha == NULL || rho == NULL)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENOMEM, "copyright lm: out of memory for L-BFGS");
    double *g = buf, *dir = buf + nd, *wt = buf + 2 * nd, *gt = buf + 3 * nd;
    double *S = buf + 4 * nd, *Y = S + o.memory * nd;

    memset(res, 0, sizeof *res);
    res->status = ASEC_COPYRIGHT_RUNNING;
    asec_copyright_losses cur, trial;
    if ((rc = lm_eval(&cur, g, p, w, zbuf, ce, gcp)) != ASEC_OK)
        goto fail;
    res->evaluations = 1;
    if (p->gamma > 0 && cur.l1 < p->beta_c)
        ASEC_FAIL_GOTO(fail, rc, ASEC_ENUMERIC,
                       "copyright lm: L_1(w0) = %g is below beta_c = %g", cur.l1,
                       p->beta_c);
    res->min_l1 = cur.l1;
    size_t npairs = 0, head = 0; /* ring buffer of (s, y) pairs */
    for (;;) {
        double gn = maxabs(g, nd);
        if (gn <= o.tol_grad) {
            res->status = ASEC_COPYRIGHT_CONVERGED_GRAD;
            break;
        }
        if (res->iterations >= o.max_iter) {
            res->status = ASEC_COPYRIGHT_MAX_ITER;
            break;
        }
        /* Two-loop recursion: dir = -H g. */
        for (size_t k = 0; k < nd; k++)
            dir[k] = -g[k];
        for (size_t j = 0; j < npairs; j++) {
            size_t idx = (head + o.memory - 1 - j) % o.memory;
            alpha[idx] = rho[idx] * dot(S + idx * nd, dir, nd);
            for (size_t k = 0; k < nd; k++)
                dir[k] -= alpha[idx] * Y[idx * nd + k];
        }
        double step0 = 1.0;
        if (npairs > 0) {
            size_t last = (head + o.memory - 1) % o.memory;
            double gam = dot(S + last * nd, Y + last * nd, nd) /
                         dot(Y + last * nd, Y + last * nd, nd);
            for (size_t k = 0; k < nd; k++)
                dir[k] *= gam;
        } else {
            double n2 = sqrt(dot(g, g, nd));
            step0 = n2 > 1.0 ? 1.0 / n2 : 1.0;
        }
        for (size_t j = npairs; j-- > 0;) {
            size_t idx = (head + o.memory - 1 - j) % o.memory;
            double beta = rho[idx] * dot(Y + idx * nd, dir, nd);
            for (size_t k = 0; k < nd; k++)
                dir[k] += (alpha[idx] - beta) * S[idx * nd + k];
        }
        double gd = dot(g, dir, nd);
        if (!(gd < 0)) { /* not a descent direction: restart from -g */
            for (size_t k = 0; k < nd; k++)
                dir[k] = -g[k];
            gd = -dot(g, g, nd);
            npairs = 0;
            double n2 = sqrt(-gd);
            step0 = n2 > 1.0 ? 1.0 / n2 : 1.0;
        }
        /* Backtracking: Armijo, finite, and the beta_c guard. */
        double a = step0;
        size_t bt = 0;
        int ok = 0;
        for (; bt <= o.max_backtrack; bt++, a *= 0.5) {
            for (size_t k = 0; k < nd; k++)
                wt[k] = w[k] + a * dir[k];
            rc = lm_eval(&trial, gt, p, wt, zbuf, ce, gcp);
            res->evaluations++;
            if (rc == ASEC_ENOMEM)
                goto fail;
            if (rc != ASEC_OK) { /* non-finite trial point: shorten */
                rc = ASEC_OK;
                continue;
            }
            if (p->gamma > 0 && trial.l1 < p->beta_c)
                continue;
            if (trial.l_cpr <= cur.l_cpr + LM_ARMIJO_C1 * a * gd) {
                ok = 1;
                break;
            }
        }
        if (!ok) {
            res->status = ASEC_COPYRIGHT_STALLED;
            break;
        }
        /* Store the pair s = wt - w, y = gt - g. */
        double *sn = S + head * nd, *yn = Y + head * nd;
        for (size_t k = 0; k < nd; k++) {
            sn[k] = wt[k] - w[k];
            yn[k] = gt[k] - g[k];
        }
        double sy = dot(sn, yn, nd);
        if (sy > 1e-12 * sqrt(dot(sn, sn, nd) * dot(yn, yn, nd))) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % o.memory;
            if (npairs < o.memory)
                npairs++;
        }
        double dec = cur.l_cpr - trial.l_cpr;
        memcpy(w, wt, nd * sizeof(double));
        memcpy(g, gt, nd * sizeof(double));
        cur = trial;
        res->iterations++;
        if (p->gamma > 0 || isfinite(cur.l1))
            res->min_l1 = cur.l1 < res->min_l1 ? cur.l1 : res->min_l1;
        if (dec <= o.tol_rel_loss * fabs(cur.l_cpr)) {
            res->status = ASEC_COPYRIGHT_CONVERGED_LOSS;
            break;
        }
    }
    res->losses = cur;
    res->grad_norm = maxabs(g, nd);
fail:
    asec__free(zbuf);
    asec__free(ce);
    asec__free(gcp);
    asec__free(buf);
    asec__free(alpha);
    asec__free(rho);
    return rc;
}

int
asec_copyright_regen(size_t *hits, size_t *total, const int64_t *tokens, size_t ntok,
                     const size_t *bounds, size_t ndocs, const unsigned char *selected,
                     size_t n, size_t prefix, int64_t skip, asec_copyright_next_fn next,
                     void *ctx)
{
    if (prefix < 1 || prefix >= n)
        ASEC_FAIL(ASEC_EINVAL, "regeneration: need 1 <= prefix (%zu) < n (%zu)", prefix,
                  n);
    for (size_t j = 0; j < ndocs; j++)
        if (bounds[j] > bounds[j + 1] || bounds[j + 1] > ntok)
            ASEC_FAIL(ASEC_EINVAL,
                      "regeneration: document %zu [%zu, %zu) is out of order "
                      "or past %zu tokens",
                      j, bounds[j], bounds[j + 1], ntok);
    size_t nb;
    if (asec__mul_size(n, sizeof(int64_t), &nb) != 0)
        ASEC_FAIL(ASEC_EINVAL, "regeneration: n = %zu is too large", n);
    int64_t *hist = asec__malloc(nb);
    if (hist == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "regeneration: out of memory");
    int rc = ASEC_OK;
    size_t h = 0, t = 0;
    for (size_t j = 0; j < ndocs; j++) {
        if (selected != NULL && !selected[j])
            continue;
        for (size_t s = bounds[j]; s + n <= bounds[j + 1]; s++) {
            int has_skip = 0;
            for (size_t k = 0; k < n; k++)
                has_skip |= skip >= 0 && tokens[s + k] == skip;
            if (has_skip)
                continue;
            t++;
            memcpy(hist, tokens + s, prefix * sizeof(int64_t));
            size_t len = prefix;
            for (; len < n; len++) {
                int64_t nx;
                if ((rc = next(ctx, hist, len, &nx)) != ASEC_OK)
                    goto done;
                if (nx != tokens[s + len])
                    break;
                hist[len] = nx;
            }
            h += len == n;
        }
    }
    *hits = h;
    *total = t;
done:
    asec__free(hist);
    return rc;
}
