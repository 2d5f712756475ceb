/* image.c — PNG reading and writing with libpng's simplified API (image.h). */
#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "error.h"
#include "image.h"

int skd_image_read_png(const char *path, skd_image *img, int want_channels)
{
	png_image png;
	memset(&png, 0, sizeof png);
	memset(img, 0, sizeof *img);
	png.version = PNG_IMAGE_VERSION;
	errno = 0; /* a stale ENOENT from earlier would turn any failure into "no such file" */
	if (!png_image_begin_read_from_file(&png, path)) {
		int rc = skd_error("png: cannot read '%s': %s", path,
				   errno == ENOENT ? "no such file" : png.message);
		png_image_free(&png);
		return rc;
	}
	int ch = want_channels;
	if (ch == 0)
		ch = (png.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
	if (ch != 1 && ch != 3) {
		png_image_free(&png);
		return skd_error("png: channels must be 1 or 3, got %d", want_channels);
	}
	png.format = ch == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
	size_t size = PNG_IMAGE_SIZE(png);
	uint8_t *buf = malloc(size);
	if (!buf) {
		png_image_free(&png);
		return skd_error("png: out of memory reading '%s' (%ux%u)", path, png.width, png.height);
	}
	/* Gray images are read as stored: label PNGs hold class ids, not intensities to be
	 * gamma-corrected; background NULL drops alpha without compositing surprises. */
	if (!png_image_finish_read(&png, NULL, buf, 0, NULL)) {
		int rc = skd_error("png: cannot decode '%s': %s", path, png.message);
		free(buf);
		png_image_free(&png);
		return rc;
	}
	img->width = (int)png.width;
	img->height = (int)png.height;
	img->channels = ch;
	img->pixels = buf;
	return SKD_OK;
}

int skd_image_write_png(const char *path, const uint8_t *pixels, int width, int height,
			int channels)
{
	if (channels != 1 && channels != 3)
		return skd_error("png: channels must be 1 or 3, got %d", channels);
	if (width <= 0 || height <= 0)
		return skd_error("png: image size %dx%d is empty", width, height);
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
		return skd_error("png: path too long");
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return skd_error("png: cannot write '%s': %s", path, strerror(errno));
	png_image png;
	memset(&png, 0, sizeof png);
	png.version = PNG_IMAGE_VERSION;
	png.width = (png_uint_32)width;
	png.height = (png_uint_32)height;
	png.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
	int ok = png_image_write_to_stdio(&png, f, 0, pixels, 0, NULL);
	ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp, path) != 0) {
		int rc = skd_error("png: cannot write '%s': %s", path,
				   png.message[0] ? png.message : strerror(errno));
		unlink(tmp);
		return rc;
	}
	return SKD_OK;
}

void skd_image_free(skd_image *img)
{
	free(img->pixels);
	img->pixels = NULL;
}
