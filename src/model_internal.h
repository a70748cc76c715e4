/* model_internal.h - NOT installed.  The layout of asec_model, shared by
 * model.c (passes) and model_io.c (files, architecture JSON), and the few
 * semi-private helpers of attn.c and model.c that other library files use. */
#ifndef ATTNSEC_MODEL_INTERNAL_H
#define ATTNSEC_MODEL_INTERNAL_H

#include <stddef.h>

#include "attnsec/model.h"

#define ASEC_MODEL_NAME_MAX 64

struct asec_model_tensor_rec {
    char name[ASEC_MODEL_NAME_MAX];
    size_t ndim;
    size_t shape[2];
    size_t offset;
    size_t size;
};

/* The parameter tensors of architecture a, in arena order, without
 * allocating a model (model files are checked against it before the
 * parameters are allocated): *out holds *n records, freed by the caller
 * with asec__free().  ASEC_OK, the asec_model_arch_check() errors or
 * ASEC_ENOMEM.  Defined in model.c. */
int asec__model_tensor_table(const asec_model_arch *a,
                             struct asec_model_tensor_rec **out, size_t *n);

/* Offsets into the flat parameter vector of one block (SIZE_MAX: absent).
 * For the attention-only block qkvw is Wq, followed by Wk and Wv. */
struct asec_model_block_off {
    size_t ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fcw, fcb, fpw, fpb;
};

struct asec_model_offsets {
    size_t wte;                       /* tok_emb.weight (V, C) */
    size_t wpe;                       /* pos_emb.weight (T, C) */
    size_t patchw, patchb;            /* patch_emb.weight (C, PD), .bias (C) */
    size_t cls;                       /* cls_token (C) */
    size_t lnfw, lnfb;                /* ln_f.weight (C), .bias (C) */
    size_t headw, headb;              /* head.weight (K, C), .bias (K) */
    size_t rx, ry;                    /* attn.x (d, d), attn.y (d, d) */
    struct asec_model_block_off *blk; /* (L) */
};

/* Cached activations of one layer, for a batch (B, T). */
struct asec_model_layer_acts {
    double *ln1, *ln1_mean, *ln1_rstd; /* (B, T, C), (B, T), (B, T) */
    double *qkv;  /* (B, T, 3C); attn-regression [q | v] (B, T, 2C) */
    double *att;  /* (B, NH, T, T) probabilities */
    double *atty; /* (B, T, C) heads concatenated */
    double *res2; /* (B, T, C) after the attention residual */
    double *ln2, *ln2_mean, *ln2_rstd; /* (B, T, C), (B, T), (B, T) */
    double *fch, *fchg;                /* (B, T, H) before and after GELU */
    double *fcphi;                     /* (B, T, H) Phi(fch), the GELU's cache */
    double *fcpdf;                     /* (B, T, H) phi(fch), filled only when a
                                          backward pass follows */
    double *res3;                      /* (B, T, C) block output */
};

struct asec_model_acts {
    double *x0;                        /* (B, T, C) the embedded input */
    double *patches;                   /* vit: (B, Tp, PD) */
    double *lnf, *lnf_mean, *lnf_rstd; /* (B, T, C), (B, T), (B, T) */
    double *pooled;                    /* (B, R, C) */
    double *logits, *probs;            /* (B, R, K) */
    double *losses;                    /* (B, R) row cross-entropies */
};

/* Backward scratch (one set for gradients, one for their tangents). */
struct asec_model_work {
    double *dres, *dtmp, *dx0; /* (B, T, C) */
    double *dqkv;              /* (B, T, 3C) */
    double *datt;              /* (2, T, T) */
    double *dh1, *dh2;         /* (B, T, H) */
    double *dpatch;            /* vit: (B, Tp, PD) */
    double *dpool;             /* (B, R, C) */
    double *dlogits;           /* (B, R, K) */
    double *wrow;              /* (B, R) loss weight of every row */
    double *lossb;             /* (B) per-example losses */
};

struct asec_model {
    asec_model_arch arch;
    size_t P;
    double *params; /* (P) */
    double *grads;  /* (P) */
    size_t ntensors;
    struct asec_model_tensor_rec *tensors;
    struct asec_model_offsets off;
    /* arenas, grown on demand; with tangents each tangent buffer follows
     * its primal buffer in the same arena */
    double *act, *work;
    size_t cap_act, cap_work;
    struct asec_model_layer_acts *la, *tla; /* (L) views into act / tact */
};

/* One pass over a batch. */
struct asec_model_run {
    asec_model *m;
    const asec_model_batch *batch;
    size_t B, T, R;
    struct asec_model_acts a, ta;
    struct asec_model_layer_acts *ta_l; /* tangent layer views or NULL */
    struct asec_model_work w, tw;
    double *losses; /* (B) */
    int tan;
    const double *tp, *tx, *tsoft; /* tangent directions (NULL: zero) */
    double *dp;                    /* parameter gradient (P), or (B, P) per example */
    int per_ex;
    double *dx, *dsoft;         /* input and soft-label gradients */
    double *tdp, *tdx, *tdsoft; /* their tangents */
    int backward;               /* a backward pass follows the forward one */
    asec_model_attn_hook hook;  /* asec_model_forward_hook(), else NULL */
    void *hook_ctx;
};

/* The GELU kernels of attn.c with a second cache, pdf = phi(inp), beside
 * cdf = Phi(inp): asec_attn_gelu_*() with the same contracts, where pdf
 * (n) is filled by asec_attn__gelu_forward() (may be NULL) and read by the
 * others (NULL: recompute).  The model keeps both caches so that its
 * backward and tangent passes call neither erf nor exp. */
void asec_attn__gelu_forward(double *out, double *cdf, double *pdf, const double *inp,
                             size_t n);
void asec_attn__gelu_backward(double *dinp, const double *inp, const double *cdf,
                              const double *pdf, const double *dout, size_t n);
void asec_attn__gelu_forward_tangent(double *tout, const double *inp, const double *cdf,
                                     const double *pdf, const double *tinp, size_t n);
void asec_attn__gelu_backward_tangent(double *tdinp, const double *inp, const double *cdf,
                                      const double *pdf, const double *tinp,
                                      const double *dout, const double *tdout, size_t n);

/* A linear layer's primal and tangent passes together (attn.c):
 *   _forward_pair:   out = inp W^T + b and tout as
 *                    asec_attn_linear_forward_tangent() (overwritten)
 *   _backward_pair:  asec_attn_linear_backward() followed by
 *                    asec_attn_linear_backward_tangent() (accumulating)
 * When tout starts right after out's N rows and tinp right after inp's
 * (dinp/tdinp and dout/tdout for the backward pass), the two products with
 * the same weight become one product of 2N rows: the weight is read once
 * and the small-M GEMM runs faster (B = 1 layers have M = T rows).  Other
 * layouts fall back to the two kernels.  Allocates nothing. */
int asec_attn__linear_forward_pair(double *out, double *tout, const double *inp,
                                   const double *tinp, const double *weight,
                                   const double *bias, const double *tweight,
                                   const double *tbias, size_t N, size_t IN, size_t OUT);
int asec_attn__linear_backward_pair(double *dinp, double *tdinp, double *dweight,
                                    double *dbias, double *tdweight, double *tdbias,
                                    const double *dout, const double *tdout,
                                    const double *inp, const double *tinp,
                                    const double *weight, const double *tweight, size_t N,
                                    size_t IN, size_t OUT);

/* Find name in names[0..n) and store its index in *out; ASEC_EINVAL
 * ("unknown <what> 'name'") when it is not there.  Shared by the name
 * parsers of model.c and attacks/dlg.c. */
int asec_model__parse_name(int *out, const char *name, const char *const *names, int n,
                           const char *what);

#endif /* ATTNSEC_MODEL_INTERNAL_H */
