/* attnsec/attnsec.h - the umbrella header of libattnsec.
 *
 * libattnsec measures what transformer attention leaks (gradient leakage,
 * input recovery from attention weights) and what the defenses cost
 * (differential privacy, copyright-avoiding regression).  See
 * libattnsec(3) for the conventions every module follows.
 *
 * A first program (cc prog.c $(pkg-config --cflags --libs attnsec)):
 *
 *     #include <stdio.h>
 *     #include <attnsec/attnsec.h>
 *
 *     int main(void)
 *     {
 *         asec_rng *rng;
 *         asec_mat a;
 *         double row[3] = { 1000.0, 1001.0, 999.0 };
 *         asec_mat z = asec_mat_view(row, 1, 3);
 *
 *         if (asec_init() != ASEC_OK)
 *             return 1;
 *         if (asec_rng_alloc_seeded(&rng, 42, "example") != ASEC_OK
 *             || asec_mat_alloc(&a, 1, 3) != ASEC_OK) {
 *             fprintf(stderr, "%s\n", asec_errmsg());
 *             return 1;
 *         }
 *         if (asec_mat_softmax_rows(&a, &z) == ASEC_OK)     // stable at 1e3
 *             printf("%.6f %.6f %.6f\n", a.data[0], a.data[1], a.data[2]);
 *         printf("a normal draw: %f\n", asec_rng_normal(rng));
 *         asec_mat_free(&a);
 *         asec_rng_free(rng);
 *         return 0;
 *     }
 */
#ifndef ATTNSEC_ATTNSEC_H
#define ATTNSEC_ATTNSEC_H

#include <attnsec/common.h>
#include <attnsec/version.h>
#include <attnsec/mat.h>
#include <attnsec/vec.h>
#include <attnsec/attn.h>
#include <attnsec/model.h>
#include <attnsec/data.h>
#include <attnsec/rng.h>
#include <attnsec/afile.h>
#include <attnsec/report.h>
#include <attnsec/attn_invert.h>
#include <attnsec/dlg.h>
#include <attnsec/image.h>
#include <attnsec/noise.h>
#include <attnsec/io.h>
#include <attnsec/copyright.h>
#include <attnsec/acct.h>
#include <attnsec/dp_attn.h>
#include <attnsec/dpsgd.h>

#endif /* ATTNSEC_ATTNSEC_H */
