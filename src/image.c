/* image.c - grey-scale image grids as PNG (libpng) or binary PGM.  See
 * attnsec/image.h for the contracts.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#ifdef HAVE_PNG
#include <png.h>
#include <setjmp.h>
#endif

#include "attnsec/afile.h"
#include "attnsec/image.h"
#include "internal.h"

/* The grey of the separating lines and of empty cells. */
#define IMAGE_GAP_GREY 128
/* The largest side written (PGM readers and PNG viewers cope). */
#define IMAGE_MAX_SIDE 65535

int
asec_image_has_png(void)
{
#ifdef HAVE_PNG
    return 1;
#else
    return 0;
#endif
}

const char *
asec_image_ext(void)
{
    return asec_image_has_png() ? "png" : "pgm";
}

/* 1 when path ends in ext (".png"), compared without case. */
static int
has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), k = strlen(ext);

    if (n <= k)
        return 0;
    for (size_t i = 0; i < k; i++) {
        char c = path[n - k + i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != ext[i])
            return 0;
    }
    return 1;
}

#ifdef HAVE_PNG
struct png_ctx {
    asec_afile *f;
    int rc;           /* the first write error */
    char msg[160];    /* libpng's error message */
};

static void
png_err(png_structp png, png_const_charp msg)
{
    struct png_ctx *c = png_get_error_ptr(png);

    snprintf(c->msg, sizeof c->msg, "%s", msg != NULL ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void
png_warn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static png_voidp
png_alloc(png_structp png, png_alloc_size_t n)
{
    (void)png;
    return asec__malloc(n);
}

static void
png_release(png_structp png, png_voidp p)
{
    (void)png;
    asec__free(p);
}

static void
png_write_cb(png_structp png, png_bytep data, size_t n)
{
    struct png_ctx *c = png_get_io_ptr(png);
    int rc = asec_afile_write(c->f, data, n);

    if (rc != ASEC_OK) {
        c->rc = rc;
        png_error(png, "write failed");
    }
}

static void
png_flush_cb(png_structp png)
{
    (void)png;
}

/* Encode pix (H, W) bytes into f.  The afile stays open. */
static int
write_png(asec_afile *f, const unsigned char *pix, size_t W, size_t H, const char *path)
{
    struct png_ctx c;
    png_structp png;
    png_infop info = NULL;

    memset(&c, 0, sizeof c);
    c.f = f;
    c.rc = ASEC_OK;
    png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, &c, png_err, png_warn, NULL,
                                    png_alloc, png_release);
    if (png == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "no memory for the PNG encoder of %s", path);
    info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_write_struct(&png, NULL);
        ASEC_FAIL(ASEC_ENOMEM, "no memory for the PNG header of %s", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        if (c.rc != ASEC_OK)
            return c.rc; // asec_afile_write() set the message
        if (strstr(c.msg, "memory") != NULL)
            ASEC_FAIL(ASEC_ENOMEM, "%s: libpng: %s", path, c.msg);
        ASEC_FAIL(ASEC_EIO, "%s: libpng: %s", path, c.msg);
    }
    png_set_write_fn(png, &c, png_write_cb, png_flush_cb);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (size_t y = 0; y < H; y++)
        png_write_row(png, (png_const_bytep)(pix + y * W));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return ASEC_OK;
}
#endif

static int
write_pgm(asec_afile *f, const unsigned char *pix, size_t W, size_t H)
{
    ASEC_TRY(asec_afile_printf(f, "P5\n%zu %zu\n255\n", W, H));
    return asec_afile_write(f, pix, W * H);
}

int
asec_image_write_grid(const char *path, const double *tiles, size_t n, size_t h,
                      size_t w, double lo, double hi, size_t rows, size_t cols,
                      size_t scale)
{
    int png = has_ext(path, ".png"), rc;
    size_t W, H, cells, tile;
    unsigned char *pix = NULL;
    asec_afile *f = NULL;

    if (!png && !has_ext(path, ".pgm"))
        ASEC_FAIL(ASEC_EINVAL, "%s: an image path must end in .png or .pgm", path);
    if (png && !asec_image_has_png())
        ASEC_FAIL(ASEC_ENOTSUP, "%s: PNG output needs libpng (this build has none; "
                                "write .pgm)", path);
    if (n == 0 || h == 0 || w == 0 || rows == 0 || cols == 0 || scale == 0)
        ASEC_FAIL(ASEC_EINVAL, "empty image grid (n %zu, h %zu, w %zu, rows %zu, cols %zu, "
                               "scale %zu)", n, h, w, rows, cols, scale);
    if (asec__mul_size(rows, cols, &cells) != 0 || n > cells)
        ASEC_FAIL(ASEC_EINVAL, "%zu tiles do not fit a %zu x %zu grid", n, rows, cols);
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
        ASEC_FAIL(ASEC_EINVAL, "grey range [%g, %g] must be finite with lo < hi", lo, hi);
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || scale > IMAGE_MAX_SIDE ||
        cols > IMAGE_MAX_SIDE || rows > IMAGE_MAX_SIDE ||
        (w * scale + 1) * cols + 1 > IMAGE_MAX_SIDE ||
        (h * scale + 1) * rows + 1 > IMAGE_MAX_SIDE)
        ASEC_FAIL(ASEC_ELIMIT, "image grid of %zu x %zu tiles of %zu x %zu at scale %zu "
                               "exceeds %d pixels a side", rows, cols, h, w, scale,
                  IMAGE_MAX_SIDE);
    if (asec__mul_size(n, h * w, &tile) != 0)
        ASEC_FAIL(ASEC_ELIMIT, "image grid size overflows");
    for (size_t i = 0; i < tile; i++)
        if (!isfinite(tiles[i]))
            ASEC_FAIL(ASEC_EINVAL, "tile value %zu (tile %zu) is not finite", i,
                      i / (h * w));
    W = (w * scale + 1) * cols + 1;
    H = (h * scale + 1) * rows + 1;
    pix = asec__malloc(W * H);
    if (pix == NULL)
        ASEC_FAIL(ASEC_ENOMEM, "no memory for a %zu x %zu picture", W, H);
    memset(pix, IMAGE_GAP_GREY, W * H);
    for (size_t t = 0; t < n; t++) {
        size_t x0 = (t % cols) * (w * scale + 1) + 1, y0 = (t / cols) * (h * scale + 1) + 1;
        const double *img = tiles + t * h * w;

        for (size_t i = 0; i < h; i++)
            for (size_t j = 0; j < w; j++) {
                double v = 255.0 * (img[i * w + j] - lo) / (hi - lo);
                unsigned char g = (unsigned char)(v <= 0.0 ? 0 : v >= 255.0 ? 255
                                                                : (int)floor(v + 0.5));

                for (size_t a = 0; a < scale; a++)
                    memset(pix + (y0 + i * scale + a) * W + x0 + j * scale, g, scale);
            }
    }
    rc = asec_afile_open(&f, path);
    if (rc != ASEC_OK)
        goto fail;
#ifdef HAVE_PNG
    rc = png ? write_png(f, pix, W, H, path) : write_pgm(f, pix, W, H);
#else
    rc = write_pgm(f, pix, W, H);
#endif
    if (rc != ASEC_OK)
        goto fail;
    rc = asec_afile_commit(f);
    f = NULL;
fail:
    asec_afile_abort(f);
    asec__free(pix);
    return rc;
}
