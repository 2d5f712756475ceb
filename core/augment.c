/* augment.c — scale, pad, crop, flip and normalise an (image, label) pair (augment.h).
 * Plain single-threaded loops: the loader runs this on its worker thread, beside the
 * training step's OpenMP team, and must not start a team of its own. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "augment.h"
#include "error.h"
#include "rng.h"
#include "synthetic.h"

void skd_transform_init(skd_transform *t)
{
	memset(t, 0, sizeof *t);
	t->scale_min = t->scale_max = 1.0;
	for (int c = 0; c < 3; c++)
		t->std[c] = 1.0f;
}

int skd_transform_check(const skd_transform *t)
{
	if (!(t->scale_min > 0) || !(t->scale_max >= t->scale_min) || t->scale_max > 16)
		return skd_error("transform: scale range must satisfy 0 < min <= max <= 16, got {%g, %g}",
				 t->scale_min, t->scale_max);
	if (t->crop_h < 0 || t->crop_w < 0 || (t->crop_h == 0) != (t->crop_w == 0))
		return skd_error("transform: crop must be two positive sizes {h, w}, got {%d, %d}",
				 t->crop_h, t->crop_w);
	for (int c = 0; c < 3; c++)
		if (!(t->std[c] != 0) || !isfinite(t->std[c]) || !isfinite(t->mean[c]))
			return skd_error("transform: std must be non-zero and mean/std finite (channel %d: "
					 "mean %g, std %g)", c + 1, t->mean[c], t->std[c]);
	return SKD_OK;
}

uint64_t skd_augment_seed(uint64_t seed, int64_t epoch, int64_t index)
{
	uint64_t h = seed ^ 0x243F6A8885A308D3ull;
	h = (h ^ (uint64_t)epoch) * 0x9E3779B97F4A7C15ull;
	h = (h ^ (h >> 29) ^ (uint64_t)index) * 0xBF58476D1CE4E5B9ull;
	return h ^ (h >> 32);
}

/* Bilinear resize of planes (C x H x W) to C x OH x OW, sampling at half-pixel centres
 * (align_corners = false), and nearest-neighbour labels on the same grid: label pixel
 * floor((y + 0.5) H / OH) is the source pixel that contains the image's sample point. */
static int resize_pair(const float *img, const int32_t *lab, int H, int W, int OH, int OW,
		       float *oimg, int32_t *olab)
{
	int *x0 = malloc(sizeof(int) * (size_t)OW * 3);
	float *wx = malloc(sizeof(float) * (size_t)OW);
	if (!x0 || !wx) {
		free(x0);
		free(wx);
		return skd_error("transform: out of memory resizing to %dx%d", OH, OW);
	}
	int *x1 = x0 + OW, *xn = x0 + 2 * OW;
	for (int x = 0; x < OW; x++) {
		double sx = (x + 0.5) * W / OW - 0.5;
		sx = sx < 0 ? 0 : sx > W - 1 ? W - 1 : sx;
		x0[x] = (int)sx;
		x1[x] = x0[x] + 1 < W ? x0[x] + 1 : W - 1;
		wx[x] = (float)(sx - x0[x]);
		int n = (int)((x + 0.5) * W / OW);
		xn[x] = n < W ? n : W - 1;
	}
	size_t ip = (size_t)H * W, op = (size_t)OH * OW;
	for (int y = 0; y < OH; y++) {
		double sy = (y + 0.5) * H / OH - 0.5;
		sy = sy < 0 ? 0 : sy > H - 1 ? H - 1 : sy;
		int y0 = (int)sy, y1 = y0 + 1 < H ? y0 + 1 : H - 1;
		float wy = (float)(sy - y0);
		for (int c = 0; c < 3; c++) {
			const float *r0 = img + c * ip + (size_t)y0 * W, *r1 = img + c * ip + (size_t)y1 * W;
			float *o = oimg + c * op + (size_t)y * OW;
			for (int x = 0; x < OW; x++) {
				float a = r0[x0[x]] + (r0[x1[x]] - r0[x0[x]]) * wx[x];
				float b = r1[x0[x]] + (r1[x1[x]] - r1[x0[x]]) * wx[x];
				o[x] = a + (b - a) * wy;
			}
		}
		int ny = (int)((y + 0.5) * H / OH);
		const int32_t *lr = lab + (size_t)(ny < H ? ny : H - 1) * W;
		int32_t *ol = olab + (size_t)y * OW;
		for (int x = 0; x < OW; x++)
			ol[x] = lr[xn[x]];
	}
	free(x0);
	free(wx);
	return SKD_OK;
}

static int check_pair(const skd_tensor *image, const skd_tensor *label)
{
	char a[SKD_SHAPE_STR_LEN], b[SKD_SHAPE_STR_LEN];
	if (image->dtype != SKD_FLOAT32 || image->ndim != 3 || image->shape[0] != 3)
		return skd_error("transform: image must be a 3xHxW float32 tensor, got %s %s",
				 skd_dtype_name(image->dtype), skd_shape_str(image, a, sizeof a));
	if (label->dtype != SKD_INT32 || label->ndim != 2 || label->shape[0] != image->shape[1] ||
	    label->shape[1] != image->shape[2])
		return skd_error("transform: label must be an int32 tensor of the image's size, got %s %s "
				 "(image %s)", skd_dtype_name(label->dtype), skd_shape_str(label, b, sizeof b),
				 skd_shape_str(image, a, sizeof a));
	if (image->shape[1] < 1 || image->shape[2] < 1)
		return skd_error("transform: empty image %s", skd_shape_str(image, a, sizeof a));
	return SKD_OK;
}

int skd_transform_apply(const skd_transform *t, uint64_t seed, const skd_tensor *image,
			const skd_tensor *label, skd_tensor **out_image, skd_tensor **out_label)
{
	*out_image = *out_label = NULL;
	if (skd_transform_check(t) || check_pair(image, label))
		return SKD_ERR;
	skd_tensor *img = skd_tensor_contiguous_nograd((skd_tensor *)image);
	skd_tensor *lab = img ? skd_tensor_contiguous_nograd((skd_tensor *)label) : NULL;
	if (!lab) {
		skd_tensor_release(img);
		return SKD_ERR;
	}
	int H = (int)image->shape[1], W = (int)image->shape[2];
	/* Four draws, always, in this order: what one option does never shifts another's. */
	skd_rng rng;
	skd_rng_seed(&rng, seed);
	double u_scale = skd_rng_next_uniform(&rng), u_y = skd_rng_next_uniform(&rng);
	double u_x = skd_rng_next_uniform(&rng), u_flip = skd_rng_next_uniform(&rng);

	double s = t->scale_min + (t->scale_max - t->scale_min) * u_scale;
	int SH = H, SW = W;
	const float *src = skd_tensor_f32(img);
	const int32_t *srcl = skd_tensor_i32(lab);
	float *scaled = NULL;
	int32_t *scaledl = NULL;
	int rc = SKD_ERR;
	if (s != 1.0) {
		SH = (int)lround(H * s), SW = (int)lround(W * s);
		SH = SH < 1 ? 1 : SH, SW = SW < 1 ? 1 : SW;
		scaled = malloc(sizeof(float) * 3 * (size_t)SH * SW);
		scaledl = malloc(sizeof(int32_t) * (size_t)SH * SW);
		if (!scaled || !scaledl) {
			skd_error("transform: out of memory scaling %dx%d by %g", H, W, s);
			goto out;
		}
		if (resize_pair(src, srcl, H, W, SH, SW, scaled, scaledl))
			goto out;
		src = scaled, srcl = scaledl;
	}
	/* Pad bottom/right up to the crop size, then crop at a random offset. */
	int OH = t->crop_h ? t->crop_h : SH, OW = t->crop_w ? t->crop_w : SW;
	int PH = SH > OH ? SH : OH, PW = SW > OW ? SW : OW;
	int y0 = (int)(u_y * (PH - OH + 1)), x0 = (int)(u_x * (PW - OW + 1));
	int flip = t->flip && u_flip < 0.5;
	*out_image = skd_tensor_empty(SKD_FLOAT32, 3, (int64_t[]){3, OH, OW});
	*out_label = skd_tensor_empty(SKD_INT32, 2, (int64_t[]){OH, OW});
	if (!*out_image || !*out_label)
		goto out;
	float *oi = skd_tensor_f32(*out_image);
	int32_t *ol = skd_tensor_i32(*out_label);
	size_t sp = (size_t)SH * SW, op = (size_t)OH * OW;
	for (int c = 0; c < 3; c++) {
		float mean = t->mean[c], inv = t->normalize ? 1.0f / t->std[c] : 1.0f;
		float sub = t->normalize ? mean : 0.0f;
		for (int y = 0; y < OH; y++) {
			int sy = y + y0;
			float *o = oi + c * op + (size_t)y * OW;
			if (sy >= SH) { /* padding rows */
				for (int x = 0; x < OW; x++)
					o[x] = (mean - sub) * inv;
				continue;
			}
			const float *r = src + c * sp + (size_t)sy * SW;
			for (int x = 0; x < OW; x++) {
				int sx = (flip ? OW - 1 - x : x) + x0;
				o[x] = ((sx < SW ? r[sx] : mean) - sub) * inv;
			}
		}
	}
	for (int y = 0; y < OH; y++) {
		int sy = y + y0;
		for (int x = 0; x < OW; x++) {
			int sx = (flip ? OW - 1 - x : x) + x0;
			ol[(size_t)y * OW + x] = sy < SH && sx < SW ? srcl[(size_t)sy * SW + sx] : SKD_IGNORE_LABEL;
		}
	}
	rc = SKD_OK;
out:
	if (rc != SKD_OK) {
		skd_tensor_release(*out_image);
		skd_tensor_release(*out_label);
		*out_image = *out_label = NULL;
	}
	free(scaled);
	free(scaledl);
	skd_tensor_release(img);
	skd_tensor_release(lab);
	return rc;
}
