/* audit.h - what cmd_audit.c (the audit, the digits and the report
 * writers) and cmd_audit_text.c (the text audit's data, training and
 * DLG) share.  Private to the attnsec program. */
#ifndef ATTNSEC_CLI_AUDIT_H
#define ATTNSEC_CLI_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "attnsec/attnsec.h"

#define AUDIT_MAX_RUNS 9
#define AUDIT_MAX_IMAGES 16
#define AUDIT_DELTA 1e-5
#define AUDIT_TEXT_T 8 /* tokens per text window */

/* DLG on the client gradients of one run: per attacked image (digits) or
 * window (text). */
struct dlg_out {
    size_t nimg;
    double mse[AUDIT_MAX_IMAGES], psnr[AUDIT_MAX_IMAGES], rel[AUDIT_MAX_IMAGES];
    int label_ok[AUDIT_MAX_IMAGES];
    int converged[AUDIT_MAX_IMAGES];
    /* text: positional token accuracy of the decoded DLG result, and of
     * the tokens read off the token-embedding gradient's rows */
    double tok_acc[AUDIT_MAX_IMAGES], rows_acc[AUDIT_MAX_IMAGES];
    /* text: tok_acc when the decoding is restricted to the T rows of
     * largest norm of the token-embedding gradient (DLG and the rows) */
    double bag_acc[AUDIT_MAX_IMAGES];
    double *recon; /* digits: (nimg, 64) */
    int64_t *ids;  /* text: (nimg, T) decoded token ids */
    double seconds;
    int ok;
    int loss; /* asec_dlg_loss of the attack */
};

struct run {
    char name[32];     /* "non-private", "eps=8" */
    char dir[32];      /* runs/<dir> */
    double target_eps; /* 0: non-private */
    int ok;            /* training finished */
    char fail[256];    /* why a stage failed */
    double sigma, q, clip;
    double eps[4], eps_lo[4]; /* rdp, pld, basic, advanced; NAN when absent */
    double test_acc, train_acc, test_loss;
    /* DLG on what one DP-SGD step releases (the raw gradient when not
     * private; clipped and noised otherwise), and, for private runs, on
     * the clipped gradient without noise (clip) */
    struct dlg_out dlg, clip_only;
    /* attention inversion */
    int ai_ok;
    double ai_orbit, ai_orbit_w, ai_naive, ai_ker, ai_rel;
    double ai_qk_err; /* |q, k from X - q, k of the forward pass|, max */
    int ai_success;
};

struct audit {
    const char *out;
    int quick;
    int text; /* --data=text */
    uint64_t seed;
    size_t steps, batch, nimg, restarts, noisy_restarts;
    size_t np_steps, np_batch; /* the non-private run (Adam) */
    double np_lr;
    size_t params, width, tokens; /* of the model, for the notes */
    size_t ntrain;                /* training examples (images or windows) */
    char ker_text[32], qk_text[32];
    double lr, clip;
    double eps[AUDIT_MAX_RUNS];
    size_t neps;
    const char *plot;
    int json;
    asec_data *test;  /* digits: the test images; text: the test tokens */
    asec_data *train; /* text: the training tokens (digits: NULL) */
    double *prior;    /* digits: the mean training image of each class
                         (classes, H W), DLG's first start */
    /* text: windows of AUDIT_TEXT_T tokens; the label of a window is the
     * token that follows it */
    int64_t *win_train, *y_train; /* (ntrain, T), (ntrain) */
    int64_t *win_test, *y_test;   /* (ntest, T), (ntest) */
    size_t ntest;
    asec_report *rep; /* started when the audit starts (time, argv) */
    struct run runs[AUDIT_MAX_RUNS + 1];
    size_t nruns;
};

extern const char *const audit_acct_names[4];

/* A malloc'ed formatted string (a path), or NULL. */
char *audit_pathf(const char *fmt, ...) ASEC_PRINTF(1, 2);

/* Index in the test split of attacked example k. */
size_t audit_test_index(const struct audit *a, size_t k);

/* cmd_audit_text.c.  Load the corpus and cut the windows (ASEC_* status,
 * message in asec_errmsg()). */
int audit_text_load(struct audit *a);
/* Train run r in process (non-private Adam or DP-SGD at sigma calibrated
 * to r->target_eps), fill its privacy and utility fields, save the model
 * to runs/<dir>/model.safetensors and hand it over in *out.  Returns an
 * exit status; a failed stage is recorded in r->fail and leaves r->ok 0. */
int audit_text_train(struct audit *a, struct run *r, uint64_t seed, asec_model **out);
/* DLG on a text client's gradient (B = 1 window); as the digits one. */
int audit_text_dlg(struct audit *a, struct run *r, struct dlg_out *out, int noise_on,
                   asec_model *m, uint64_t seed);
/* Write a window's tokens (or decoded ids) as words into buf. */
void audit_text_words(const struct audit *a, const int64_t *ids, char *buf, size_t cap);
void audit_text_free(struct audit *a);

#endif /* ATTNSEC_CLI_AUDIT_H */
