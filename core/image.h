/* image.h — PNG files through libpng: 8-bit gray or RGB pixels, row-major, interleaved
 * (H x W x channels). Used by the datasets (reading) and the viewer (writing frames). */
#ifndef SKD_IMAGE_H
#define SKD_IMAGE_H

#include <stdint.h>

typedef struct skd_image {
	int width, height, channels; /* channels: 1 (gray) or 3 (RGB) */
	uint8_t *pixels;             /* malloc'ed; skd_image_free releases it */
} skd_image;

/* Reads path into img converted to want_channels (1 or 3; 0 keeps gray as 1, else 3).
 * Alpha is dropped, 16-bit samples are reduced, palettes are expanded. SKD_ERR with a
 * message naming the file on failure. */
int skd_image_read_png(const char *path, skd_image *img, int want_channels);
/* Writes pixels atomically: a temporary file beside path, fsync, rename. */
int skd_image_write_png(const char *path, const uint8_t *pixels, int width, int height,
			int channels);
void skd_image_free(skd_image *img);

#endif
