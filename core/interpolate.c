/* interpolate.c — resizing (N,C,H,W) maps: bilinear (align_corners true or false) and
 * PyTorch's legacy 'nearest', each forward beside its backward.
 *
 * Source positions follow PyTorch's CPU kernels to the rounding: the scale is computed in
 * float from the sizes (no user scale factor), align_corners=false maps output pixel centres
 * (dst + 0.5)·in/out − 0.5 and clamps negative positions to 0, and the nearest index is
 * min(floor(dst·in/out), in−1). The index and weight of every output row and column are
 * computed once per call (axis tables), then planes run in parallel; bilinear goes through
 * its separable form (columns, then rows: bilinear_plane).
 *
 * The backward passes scatter-add into the input; each (n,c) plane is one task, so every
 * input element is accumulated by one thread in a fixed order (no atomics, bit-exact reruns). */
#include <math.h>
#include <stdlib.h>
#include "ops.h"
#include "parallel.h"

/* Where output position o along one axis reads: two source indices and their weights
 * (nearest uses i0 only, with weight 1). */
typedef struct axis_tap {
	int64_t i0, i1;
	float l0, l1;
} axis_tap;

/* PyTorch's area_pixel_compute_scale / area_pixel_compute_source_index, bilinear. As
 * PyTorch 1.13's CPU kernel does (checked against it weight by weight), the scale is a float,
 * the source position and its fraction l1 are evaluated in double, and l0 = 1 − l1 in float:
 * with these roundings the weights are PyTorch's bit for bit. */
static void bilinear_taps(axis_tap *t, int64_t in, int64_t out, bool align_corners)
{
	float scale;
	if (align_corners)
		scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
	else
		scale = (float)in / (float)out;
	for (int64_t o = 0; o < out; o++) {
		double src = align_corners ? (double)scale * (double)o
					   : (double)scale * ((double)o + 0.5) - 0.5;
		if (src < 0.0)
			src = 0.0;
		int64_t i0 = (int64_t)src;
		if (i0 > in - 1) /* guards against rounding past the last pixel */
			i0 = in - 1;
		double frac = src - (double)i0;
		t[o].i0 = i0;
		t[o].i1 = i0 < in - 1 ? i0 + 1 : i0;
		t[o].l1 = (float)frac;
		t[o].l0 = 1.0f - t[o].l1;
	}
}

/* PyTorch's nearest_idx (mode 'nearest', not 'nearest-exact'). */
static void nearest_taps(axis_tap *t, int64_t in, int64_t out)
{
	float scale = (float)in / (float)out;
	for (int64_t o = 0; o < out; o++) {
		int64_t i;
		if (out == in)
			i = o;
		else if (out == 2 * in)
			i = o >> 1;
		else {
			i = (int64_t)floorf((float)o * scale);
			if (i > in - 1)
				i = in - 1;
		}
		t[o] = (axis_tap){i, i, 1.0f, 0.0f};
	}
}

/* Everything a backward needs: the mode and both axis tables. */
typedef struct interp_ctx {
	skd_interp_mode mode;
	int64_t oh, ow;
	axis_tap *rows, *cols; /* point into the same block as the struct */
} interp_ctx;

static interp_ctx *make_ctx(skd_interp_mode mode, int64_t h, int64_t w, int64_t oh, int64_t ow,
			    bool align_corners)
{
	interp_ctx *c = skd_malloc(sizeof *c + (size_t)(oh + ow) * sizeof(axis_tap));
	if (!c)
		return NULL;
	c->mode = mode;
	c->oh = oh;
	c->ow = ow;
	c->rows = (axis_tap *)(c + 1);
	c->cols = c->rows + oh;
	if (mode == SKD_INTERP_BILINEAR) {
		bilinear_taps(c->rows, h, oh, align_corners);
		bilinear_taps(c->cols, w, ow, align_corners);
	} else {
		nearest_taps(c->rows, h, oh);
		nearest_taps(c->cols, w, ow);
	}
	return c;
}

/* dst plane (oh×ow) from src plane (h×w) through the axis tables, rows [r0, r1). */
static void resize_rows(float *dst, const float *src, int64_t w, const interp_ctx *c,
			int64_t r0, int64_t r1)
{
	const axis_tap *cols = c->cols;
	for (int64_t i = r0; i < r1; i++) {
		const axis_tap *r = &c->rows[i];
		const float *top = src + r->i0 * w, *bot = src + r->i1 * w;
		float *d = dst + i * c->ow;
		if (c->mode == SKD_INTERP_NEAREST) {
			for (int64_t j = 0; j < c->ow; j++)
				d[j] = top[cols[j].i0];
			continue;
		}
		for (int64_t j = 0; j < c->ow; j++) {
			const axis_tap *q = &cols[j];
			d[j] = r->l0 * (q->l0 * top[q->i0] + q->l1 * top[q->i1]) +
			       r->l1 * (q->l0 * bot[q->i0] + q->l1 * bot[q->i1]);
		}
	}
}

/* Bilinear resizing is separable: each of the h input rows is first resized along its
 * columns into rows[h][ow], then every output row blends two of those. Per plane that is
 * h·ow column gathers instead of 4·oh·ow, and the blend is a loop that vectorises; each
 * output is the same expression, l0·(c0·a + c1·b) + l1·(c0·c + c1·d), as the one-step form. */
static void bilinear_plane(float *dst, const float *src, int64_t h, int64_t w,
			   const interp_ctx *c, float *rows)
{
	const axis_tap *cols = c->cols;
	for (int64_t y = 0; y < h; y++) {
		const float *s = src + y * w;
		float *r = rows + y * c->ow;
		for (int64_t j = 0; j < c->ow; j++)
			r[j] = cols[j].l0 * s[cols[j].i0] + cols[j].l1 * s[cols[j].i1];
	}
	for (int64_t i = 0; i < c->oh; i++) {
		const axis_tap *t = &c->rows[i];
		const float *top = rows + t->i0 * c->ow, *bot = rows + t->i1 * c->ow;
		float *d = dst + i * c->ow, l0 = t->l0, l1 = t->l1;
		for (int64_t j = 0; j < c->ow; j++)
			d[j] = l0 * top[j] + l1 * bot[j];
	}
}

/* The transpose of resize_rows: gsrc (h×w, zeroed) += weights · gdst. Bilinear runs the
 * separable form backwards (rows[h][ow], zeroed, gathers the output rows' shares; then each
 * row scatters along its columns); nearest scatters directly. */
static void resize_plane_backward(float *gsrc, const float *gdst, int64_t w, const interp_ctx *c,
				  float *rows, int64_t h)
{
	const axis_tap *cols = c->cols;
	if (c->mode == SKD_INTERP_NEAREST) {
		for (int64_t i = 0; i < c->oh; i++) {
			float *top = gsrc + c->rows[i].i0 * w;
			const float *g = gdst + i * c->ow;
			for (int64_t j = 0; j < c->ow; j++)
				top[cols[j].i0] += g[j];
		}
		return;
	}
	for (int64_t k = 0; k < h * c->ow; k++)
		rows[k] = 0.0f;
	for (int64_t i = 0; i < c->oh; i++) {
		const axis_tap *t = &c->rows[i];
		const float *g = gdst + i * c->ow;
		float *top = rows + t->i0 * c->ow, *bot = rows + t->i1 * c->ow, l0 = t->l0, l1 = t->l1;
		for (int64_t j = 0; j < c->ow; j++)
			top[j] += l0 * g[j];
		for (int64_t j = 0; j < c->ow; j++)
			bot[j] += l1 * g[j];
	}
	for (int64_t y = 0; y < h; y++) {
		const float *r = rows + y * c->ow;
		float *s = gsrc + y * w;
		for (int64_t j = 0; j < c->ow; j++) {
			s[cols[j].i0] += cols[j].l0 * r[j];
			s[cols[j].i1] += cols[j].l1 * r[j];
		}
	}
}

static int interpolate_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	const interp_ctx *c = node->ctx;
	skd_tensor *gx = skd_tensor_zeros(SKD_FLOAT32, node->inputs[0].ndim, node->inputs[0].shape);
	if (!gx)
		return SKD_ERR;
	int64_t planes = gx->shape[0] * gx->shape[1], h = gx->shape[2], w = gx->shape[3];
	const float *gp = skd_tensor_f32(g);
	float *gxp = skd_tensor_f32(gx);
	int rc = SKD_OK;
#pragma omp parallel if (planes * c->oh * c->ow > SKD_PARALLEL_GRAIN)
	{
		float *rows = c->mode == SKD_INTERP_BILINEAR ? malloc(sizeof(float) * h * c->ow) : NULL;
		if (c->mode == SKD_INTERP_BILINEAR && !rows) {
#pragma omp atomic write
			rc = SKD_ERR;
		}
#pragma omp for schedule(static)
		for (int64_t p = 0; p < planes; p++)
			if (rows || c->mode == SKD_INTERP_NEAREST)
				resize_plane_backward(gxp + p * h * w, gp + p * c->oh * c->ow, w, c, rows, h);
		free(rows);
	}
	if (rc) {
		skd_tensor_release(gx);
		return skd_error("interpolate: out of memory in backward");
	}
	gin[0] = gx;
	return SKD_OK;
}

skd_tensor *skd_interpolate(skd_tensor *x_in, int64_t oh, int64_t ow, skd_interp_mode mode,
			    bool align_corners)
{
	const char *op = "interpolate";
	char s[SKD_SHAPE_STR_LEN];
	if (!x_in)
		return skd_error_null("%s: expects a tensor, got nothing", op);
	if (x_in->dtype != SKD_FLOAT32)
		return skd_error_null("%s: expects a float32 tensor, got %s (convert with :float())", op,
				      skd_dtype_name(x_in->dtype));
	if (x_in->ndim != 4)
		return skd_error_null("%s: expects a 4-d (N,C,H,W) input, got %s", op,
				      skd_shape_str(x_in, s, sizeof s));
	if (x_in->shape[2] < 1 || x_in->shape[3] < 1)
		return skd_error_null("%s: expects a non-empty H×W plane, got input %s", op,
				      skd_shape_str(x_in, s, sizeof s));
	if (oh < 1 || ow < 1)
		return skd_error_null("%s: output size must be at least 1x1, got %lldx%lld", op,
				      (long long)oh, (long long)ow);
	if (oh > INT32_MAX || ow > INT32_MAX) /* the axis tables hold oh + ow entries */
		return skd_error_null("%s: output size must be below 2^31 per side, got %lldx%lld", op,
				      (long long)oh, (long long)ow);
	if (mode != SKD_INTERP_BILINEAR && mode != SKD_INTERP_NEAREST)
		return skd_error_null("%s: unknown mode %d", op, (int)mode);
	if (mode == SKD_INTERP_NEAREST && align_corners)
		return skd_error_null("%s: align_corners applies to mode \"bilinear\" only, not \"nearest\"", op);
	skd_tensor *x = skd_tensor_contiguous_nograd(x_in);
	if (!x)
		return NULL;
	int64_t planes = x->shape[0] * x->shape[1], h = x->shape[2], w = x->shape[3];
	interp_ctx *c = make_ctx(mode, h, w, oh, ow, align_corners);
	skd_tensor *out = c ? skd_tensor_empty(SKD_FLOAT32, 4,
					       (int64_t[]){x->shape[0], x->shape[1], oh, ow}) : NULL;
	if (!out) {
		free(c);
		skd_tensor_release(x);
		return NULL;
	}
	const float *xp = skd_tensor_f32(x);
	float *yp = skd_tensor_f32(out);
	if (mode == SKD_INTERP_NEAREST) {
		/* one task per output row of every plane: small batches of large maps still spread */
		int64_t tasks = planes * oh;
#pragma omp parallel for schedule(static) if (tasks * ow > SKD_PARALLEL_GRAIN)
		for (int64_t t = 0; t < tasks; t++) {
			int64_t p = t / oh, i = t % oh;
			resize_rows(yp + p * oh * ow, xp + p * h * w, w, c, i, i + 1);
		}
	} else { /* one task per plane, with its buffer of column-resized rows */
#pragma omp parallel if (planes * oh * ow > SKD_PARALLEL_GRAIN)
		{
			float *rows = malloc(sizeof(float) * h * ow);
#pragma omp for schedule(static)
			for (int64_t p = 0; p < planes; p++) {
				if (rows)
					bilinear_plane(yp + p * oh * ow, xp + p * h * w, h, w, c, rows);
				else
					resize_rows(yp + p * oh * ow, xp + p * h * w, w, c, 0, oh);
			}
			free(rows);
		}
	}
	skd_tensor_release(x);
	skd_node *node = skd_autograd_record(out, op, interpolate_backward, 1, &x_in);
	if (node)
		node->ctx = c;
	else
		free(c);
	return out;
}
