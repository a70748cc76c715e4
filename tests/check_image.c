/* check_image.c - image grids (src/image.c).
 *
 * TCases: core (a PGM grid read back pixel by pixel: layout, grey
 * mapping, clamping, empty cells, scale; the extension rule), reference
 * (with libpng: the PNG signature, IHDR width and height, and the picture
 * decoded by libpng equal to the PGM's pixels), errors (every documented
 * ASEC_E*), oom (fault-injection loop over both writers). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_PNG
#include <png.h>
#endif

#include "attnsec/attnsec.h"
#include "attnsec/image.h"
#include "testutil.h"

/* Three 2x3 tiles with values in [-0.5, 1.5] (clamped outside [0, 1]). */
static const double tiles[3 * 6] = {
    0.0, 0.5, 1.0, 0.25, 0.75, 0.1,
    -0.5, 1.5, 0.2, 0.4, 0.6, 0.8,
    1.0, 0.0, 1.0, 0.0, 1.0, 0.0,
};

/* The grey of tile value v in [0, 1]. */
static int
grey(double v)
{
    double g = 255.0 * v;

    return g <= 0.0 ? 0 : g >= 255.0 ? 255 : (int)floor(g + 0.5);
}

/* Parse a binary PGM written by the module: width, height, pixels. */
static unsigned char *
read_pgm(const char *path, size_t *W, size_t *H)
{
    size_t len, off = 0;
    char *buf = asec_test_slurp(path, &len);
    unsigned char *pix;
    unsigned int w, h, mx;
    int used = 0;

    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(sscanf(buf, "P5\n%u %u\n%u\n%n", &w, &h, &mx, &used), 3);
    ck_assert_uint_eq(mx, 255);
    off = (size_t)used;
    ck_assert_uint_eq(len - off, (size_t)w * h);
    pix = malloc((size_t)w * h);
    ck_assert_ptr_nonnull(pix);
    memcpy(pix, buf + off, (size_t)w * h);
    free(buf);
    *W = w;
    *H = h;
    return pix;
}

/* The expected picture of the 3 tiles in a 2 x 2 grid at scale s. */
static void
check_layout(const unsigned char *pix, size_t W, size_t H, size_t s)
{
    ck_assert_uint_eq(W, 2 * (3 * s + 1) + 1);
    ck_assert_uint_eq(H, 2 * (2 * s + 1) + 1);
    for (size_t y = 0; y < H; y++)
        for (size_t x = 0; x < W; x++) {
            size_t cx = x % (3 * s + 1), cy = y % (2 * s + 1);
            size_t t = (y / (2 * s + 1)) * 2 + x / (3 * s + 1);
            int want = 128;

            if (cx != 0 && cy != 0 && t < 3) {
                size_t i = (cy - 1) / s, j = (cx - 1) / s;

                want = grey(tiles[t * 6 + i * 3 + j]);
            }
            if (pix[y * W + x] != want)
                ck_abort_msg("pixel (%zu, %zu) is %d, want %d", x, y, pix[y * W + x], want);
        }
}

START_TEST(test_pgm_roundtrip)
{
    char *dir = asec_test_mkdtemp();
    char path[4096];
    unsigned char *pix;
    size_t W, H, s = (size_t)_i + 1;

    snprintf(path, sizeof path, "%s/grid.pgm", dir);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 2, 3, 0.0, 1.0, 2, 2, s),
                     ASEC_OK);
    pix = read_pgm(path, &W, &H);
    check_layout(pix, W, H, s);
    free(pix);
    // the upper-case extension, a shifted range (same picture), and only
    // the final file in the directory (the write is atomic)
    snprintf(path, sizeof path, "%s/grid2.PGM", dir);
    {
        double sh[18];

        for (size_t i = 0; i < 18; i++)
            sh[i] = 2.0 * tiles[i] - 3.0;
        ck_assert_int_eq(asec_image_write_grid(path, sh, 3, 2, 3, -3.0, -1.0, 2, 2, s),
                         ASEC_OK);
    }
    pix = read_pgm(path, &W, &H);
    check_layout(pix, W, H, s);
    free(pix);
    ck_assert_int_eq(asec_test_count_entries(dir), 2);
    asec_test_rmtree(dir);
}
END_TEST

START_TEST(test_ext)
{
    ck_assert_str_eq(asec_image_ext(), asec_image_has_png() ? "png" : "pgm");
#ifdef HAVE_PNG
    ck_assert_int_eq(asec_image_has_png(), 1);
#else
    ck_assert_int_eq(asec_image_has_png(), 0);
#endif
}
END_TEST

#ifdef HAVE_PNG
static unsigned int
be32(const unsigned char *p)
{
    return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3];
}

START_TEST(test_png)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    char *dir = asec_test_mkdtemp();
    char path[4096];
    size_t len, W, H;
    unsigned char *buf, *ref;
    png_image img;
    unsigned char *dec;

    snprintf(path, sizeof path, "%s/grid.png", dir);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 2, 3, 0.0, 1.0, 2, 2, 3),
                     ASEC_OK);
    buf = (unsigned char *)asec_test_slurp(path, &len);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_gt(len, 33);
    ck_assert_mem_eq(buf, sig, 8);
    ck_assert_uint_eq(be32(buf + 8), 13);
    ck_assert_mem_eq(buf + 12, "IHDR", 4);
    ck_assert_uint_eq(be32(buf + 16), 2 * (3 * 3 + 1) + 1);
    ck_assert_uint_eq(be32(buf + 20), 2 * (2 * 3 + 1) + 1);
    ck_assert_uint_eq(buf[24], 8); // bit depth
    ck_assert_uint_eq(buf[25], 0); // grey
    // libpng decodes it to the PGM writer's pixels
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    ck_assert_int_ne(png_image_begin_read_from_memory(&img, buf, len), 0);
    img.format = PNG_FORMAT_GRAY;
    dec = malloc(PNG_IMAGE_SIZE(img));
    ck_assert_ptr_nonnull(dec);
    ck_assert_int_ne(png_image_finish_read(&img, NULL, dec, 0, NULL), 0);
    snprintf(path, sizeof path, "%s/grid.pgm", dir);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 2, 3, 0.0, 1.0, 2, 2, 3),
                     ASEC_OK);
    ref = read_pgm(path, &W, &H);
    ck_assert_uint_eq(img.width, W);
    ck_assert_uint_eq(img.height, H);
    ck_assert_mem_eq(dec, ref, W * H);
    check_layout(dec, W, H, 3);
    free(dec);
    free(ref);
    free(buf);
    asec_test_rmtree(dir);
}
END_TEST
#endif

START_TEST(test_errors)
{
    char *dir = asec_test_mkdtemp();
    char path[4096], bad[4096];
    double nan_tile[6] = {0, 0, NAN, 0, 0, 0};

    snprintf(path, sizeof path, "%s/g.pgm", dir);
    // ASEC_EINVAL: extension, empty shapes, too many tiles, range, NaN
    snprintf(bad, sizeof bad, "%s/g.jpg", dir);
    ck_assert_int_eq(asec_image_write_grid(bad, tiles, 3, 2, 3, 0, 1, 2, 2, 1), ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), ".png or .pgm"));
    ck_assert_int_eq(asec_image_write_grid(".pgm", tiles, 3, 2, 3, 0, 1, 2, 2, 1),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 0, 2, 3, 0, 1, 2, 2, 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 0, 3, 0, 1, 2, 2, 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 2, 0, 0, 1, 2, 2, 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 2, 3, 0, 1, 0, 2, 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 2, 3, 0, 1, 2, 0, 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 2, 3, 0, 1, 2, 2, 0), ASEC_EINVAL);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 2, 3, 0, 1, 1, 2, 1), ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "do not fit"));
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 2, 3, 1, 1, 2, 2, 1), ASEC_EINVAL);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 2, 3, 0, INFINITY, 2, 2, 1),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 2, 3, NAN, 1, 2, 2, 1),
                     ASEC_EINVAL);
    ck_assert_int_eq(asec_image_write_grid(path, nan_tile, 1, 2, 3, 0, 1, 1, 1, 1),
                     ASEC_EINVAL);
    ck_assert_ptr_nonnull(strstr(asec_errmsg(), "not finite"));
    // ASEC_ELIMIT: a side over 65535 pixels
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 1, 2, 3, 0, 1, 1, 1, 30000),
                     ASEC_ELIMIT);
    ck_assert_int_eq(asec_image_write_grid(path, tiles, 3, 2, 3, 0, 1, 1, 70000, 1),
                     ASEC_ELIMIT);
    // ASEC_ENOTSUP: PNG without libpng
    snprintf(bad, sizeof bad, "%s/g.png", dir);
    ck_assert_int_eq(asec_image_write_grid(bad, tiles, 3, 2, 3, 0, 1, 2, 2, 1),
                     asec_image_has_png() ? ASEC_OK : ASEC_ENOTSUP);
    // ASEC_ECREATE: a missing directory
    snprintf(bad, sizeof bad, "%s/missing/g.pgm", dir);
    ck_assert_int_eq(asec_image_write_grid(bad, tiles, 3, 2, 3, 0, 1, 2, 2, 1),
                     ASEC_ECREATE);
    // nothing written by the failures but g.png (when PNG is built in)
    ck_assert_int_eq(asec_test_count_entries(dir), asec_image_has_png() ? 1 : 0);
    asec_test_rmtree(dir);
}
END_TEST

START_TEST(test_oom)
{
    /* ASEC_ENOMEM from every allocation: the picture, the atomic file,
     * libpng's encoder (its allocator is routed through the hook). */
    char *dir = asec_test_mkdtemp();
    char path[4096];
    const char *ext[2] = {"pgm", "png"};

    for (int k = 0; k < 1 + asec_image_has_png(); k++) {
        long n;

        snprintf(path, sizeof path, "%s/g.%s", dir, ext[k]);
        for (n = 0;; n++) {
            int rc;

            asec_debug_fail_alloc(n);
            rc = asec_image_write_grid(path, tiles, 3, 2, 3, 0, 1, 2, 2, 2);
            asec_debug_fail_alloc(-1);
            if (rc == ASEC_OK)
                break;
            ck_assert_int_eq(rc, ASEC_ENOMEM);
            ck_assert_int_lt(n, 10000);
        }
        ck_assert_int_gt(n, 0);
    }
    ck_assert_int_eq(asec_test_count_entries(dir), 1 + asec_image_has_png());
    asec_test_rmtree(dir);
}
END_TEST

static Suite *
image_suite(void)
{
    Suite *s = suite_create("image");
    TCase *tc;

    tc = tcase_create("core");
    tcase_add_loop_test(tc, test_pgm_roundtrip, 0, 3);
    tcase_add_test(tc, test_ext);
    suite_add_tcase(s, tc);

#ifdef HAVE_PNG
    tc = tcase_create("reference");
    tcase_add_test(tc, test_png);
    suite_add_tcase(s, tc);
#endif

    tc = tcase_create("errors");
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("oom");
    tcase_add_test(tc, test_oom);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    if (asec_init() != ASEC_OK)
        return EXIT_FAILURE;
    return asec_test_run(image_suite());
}
