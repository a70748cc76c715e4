/* attnsec/image.h - grey-scale image grids (reconstructions next to
 * originals) written as PNG or binary PGM.
 *
 * Format by extension: a path ending in ".png" is written as an 8-bit
 * grey PNG (libpng; only when the library was built with it, see
 * asec_image_has_png()), a path ending in ".pgm" as a binary PGM (P5,
 * maxval 255).  asec_image_ext() names the preferred extension of the
 * build ("png", else "pgm"), so callers compose "recon_grid.%s".  Files
 * are written atomically (asec_afile(3)).
 */
#ifndef ATTNSEC_IMAGE_H
#define ATTNSEC_IMAGE_H

#include <stddef.h>

#include <attnsec/common.h>

ASEC_BEGIN_DECLS

/* 1 when PNG output is compiled in, else 0.  Cannot fail. */
ASEC_API int asec_image_has_png(void);

/* "png" when PNG output is compiled in, else "pgm" (static strings). */
ASEC_API const char *asec_image_ext(void);

/* Write n tiles (n, h, w) row-major (tile i at grid row i / cols, column
 * i % cols) as a rows x cols grid.  Each tile pixel becomes a
 * scale x scale block of grey round(255 (v - lo) / (hi - lo)), clamped to
 * [0, 255]; tiles are separated and framed by 1-pixel lines of grey 128,
 * and grid cells past n are grey 128 too.  The picture is
 * cols (w scale + 1) + 1 pixels wide and rows (h scale + 1) + 1 high.
 *
 * Returns ASEC_OK; ASEC_EINVAL (n, h, w, rows, cols or scale 0,
 * n > rows cols, lo >= hi or not finite, a non-finite tile value, a path
 * without a ".png" or ".pgm" extension); ASEC_ELIMIT (a side over 65535
 * pixels); ASEC_ENOTSUP (".png" without libpng); ASEC_ENOMEM; and the
 * errors of asec_afile_open() / asec_afile_commit() (ASEC_ECREATE,
 * ASEC_ENOSPC, ASEC_EIO).  Allocates the 8-bit picture (width x height
 * bytes) while writing. */
ASEC_API int asec_image_write_grid(const char *path, const double *tiles, size_t n,
                                   size_t h, size_t w, double lo, double hi,
                                   size_t rows, size_t cols,
                                   size_t scale) ASEC_WARN_UNUSED ASEC_NONNULL(1, 2);

ASEC_END_DECLS

#endif /* ATTNSEC_IMAGE_H */
