/* pool.c — max, average and adaptive average pooling over (N,C,H,W) or (C,H,W) inputs, each
 * forward beside its backward. Window placement, output sizes and divisors follow PyTorch
 * exactly, including ceil_mode (the last window must start inside the input or the left
 * padding) and count_include_pad.
 *
 * Every kernel works on one H×W plane at a time; planes run in parallel. The backward passes
 * scatter into the input plane serially within a plane, so the sums happen in a fixed order
 * and the result does not depend on the thread count. */
#include <math.h>
#include "ops.h"
#include "parallel.h"

/* ---------- shared checks and geometry ---------- */

/* The input as a contiguous float tensor of 3 or 4 dims (new reference), or NULL. */
static skd_tensor *plane_input(const char *op, skd_tensor *x)
{
	if (!x)
		return skd_error_null("%s: expects a tensor, got nothing", op);
	if (x->dtype != SKD_FLOAT32)
		return skd_error_null("%s: expects a float32 tensor, got %s (convert with :float())", op,
				      skd_dtype_name(x->dtype));
	if (x->ndim != 3 && x->ndim != 4) {
		char s[SKD_SHAPE_STR_LEN];
		return skd_error_null("%s: expects a 4-d (N,C,H,W) or 3-d (C,H,W) input, got %s", op,
				      skd_shape_str(x, s, sizeof s));
	}
	if (x->shape[x->ndim - 1] < 1 || x->shape[x->ndim - 2] < 1) {
		char s[SKD_SHAPE_STR_LEN];
		return skd_error_null("%s: expects a non-empty H×W plane, got input %s", op,
				      skd_shape_str(x, s, sizeof s));
	}
	if (x->shape[x->ndim - 1] * x->shape[x->ndim - 2] > INT32_MAX)
		return skd_error_null("%s: an H×W plane of more than 2^31 elements is not supported", op);
	return skd_tensor_contiguous_nograd(x);
}

static int64_t count_planes(const skd_tensor *x)
{
	int64_t p = 1;
	for (int i = 0; i < x->ndim - 2; i++)
		p *= x->shape[i];
	return p;
}

/* A new tensor shaped like x but with the last two sizes replaced. */
static skd_tensor *plane_output(const skd_tensor *x, int64_t oh, int64_t ow, skd_dtype dtype)
{
	int64_t shape[SKD_MAX_DIMS];
	for (int i = 0; i < x->ndim; i++)
		shape[i] = x->shape[i];
	shape[x->ndim - 2] = oh;
	shape[x->ndim - 1] = ow;
	return skd_tensor_empty(dtype, x->ndim, shape);
}

/* Floor division for a possibly negative numerator (PyTorch's div_rtn). */
static int64_t div_floor(int64_t a, int64_t b)
{
	int64_t q = a / b, r = a % b;
	return (r != 0 && (r < 0) != (b < 0)) ? q - 1 : q;
}

/* PyTorch's pooling_output_shape: in ceil mode a window is dropped if it would start past
 * the input and its left padding (it would hold padding only). */
static int64_t pooled_size(int64_t in, int k, int pad, int stride, bool ceil_mode)
{
	int64_t out = div_floor(in + 2 * pad - (k - 1) - 1 + (ceil_mode ? stride - 1 : 0), stride) + 1;
	if (ceil_mode && (out - 1) * stride >= in + pad)
		out--;
	return out;
}

static int check_pool_params(const char *op, const skd_tensor *x, const skd_pool2d_params *p,
			     int64_t *oh, int64_t *ow)
{
	char s[SKD_SHAPE_STR_LEN];
	if (!p)
		return skd_error("%s: expects pooling parameters, got nothing", op);
	for (int d = 0; d < 2; d++) {
		if (p->kernel[d] < 1 || p->stride[d] < 1)
			return skd_error("%s: kernel and stride must be positive, got kernel %dx%d, stride %dx%d",
					 op, p->kernel[0], p->kernel[1], p->stride[0], p->stride[1]);
		if (p->padding[d] < 0 || p->padding[d] > p->kernel[d] / 2)
			return skd_error("%s: padding must be between 0 and half the kernel size, got "
					 "padding %dx%d for kernel %dx%d", op, p->padding[0], p->padding[1],
					 p->kernel[0], p->kernel[1]);
	}
	int64_t h = x->shape[x->ndim - 2], w = x->shape[x->ndim - 1];
	*oh = pooled_size(h, p->kernel[0], p->padding[0], p->stride[0], p->ceil_mode);
	*ow = pooled_size(w, p->kernel[1], p->padding[1], p->stride[1], p->ceil_mode);
	if (*oh < 1 || *ow < 1)
		return skd_error("%s: output size %lldx%lld is too small (input %s, kernel %dx%d, "
				 "padding %dx%d)", op, (long long)*oh, (long long)*ow,
				 skd_shape_str(x, s, sizeof s), p->kernel[0], p->kernel[1],
				 p->padding[0], p->padding[1]);
	return SKD_OK;
}

/* ---------- max_pool2d ---------- */

/* gx[argmax] += g, per plane; the argmax (flat index in the plane) was saved by forward. */
static int max_pool2d_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	skd_tensor *gx = skd_tensor_zeros(SKD_FLOAT32, node->inputs[0].ndim, node->inputs[0].shape);
	if (!gx)
		return SKD_ERR;
	const int32_t *arg = skd_tensor_i32(node->saved[0]);
	const float *gp = skd_tensor_f32(g);
	float *gxp = skd_tensor_f32(gx);
	int64_t planes = node->iarg[0], in_plane = node->iarg[1], out_plane = node->iarg[2];
#pragma omp parallel for schedule(static) if (planes * in_plane > SKD_PARALLEL_GRAIN)
	for (int64_t c = 0; c < planes; c++) {
		float *dst = gxp + c * in_plane;
		for (int64_t o = 0; o < out_plane; o++)
			dst[arg[c * out_plane + o]] += gp[c * out_plane + o];
	}
	gin[0] = gx;
	return SKD_OK;
}

/* Ties go to the first maximum in row-major order; a NaN wins (as PyTorch). */
skd_tensor *skd_max_pool2d(skd_tensor *x_in, const skd_pool2d_params *p)
{
	const char *op = "max_pool2d";
	skd_tensor *x = plane_input(op, x_in);
	if (!x)
		return NULL;
	int64_t oh, ow;
	if (check_pool_params(op, x, p, &oh, &ow)) {
		skd_tensor_release(x);
		return NULL;
	}
	int64_t h = x->shape[x->ndim - 2], w = x->shape[x->ndim - 1], planes = count_planes(x);
	skd_tensor *out = plane_output(x, oh, ow, SKD_FLOAT32);
	skd_tensor *arg = plane_output(x, oh, ow, SKD_INT32);
	if (!out || !arg) {
		skd_tensor_release(x);
		skd_tensor_release(out);
		skd_tensor_release(arg);
		return NULL;
	}
	const float *xp = skd_tensor_f32(x);
	float *yp = skd_tensor_f32(out);
	int32_t *ap = skd_tensor_i32(arg);
	int kh = p->kernel[0], kw = p->kernel[1], sh = p->stride[0], sw = p->stride[1];
	int ph = p->padding[0], pw = p->padding[1];
	/* One output row at a time, each window tap (y, dx) applied to the whole row: the taps
	 * come in the same row-major order for every output as a window-by-window loop, so
	 * ties and NaNs resolve the same, and the loop over the row vectorises. */
#pragma omp parallel for schedule(static) if (planes * h * w > SKD_PARALLEL_GRAIN)
	for (int64_t t = 0; t < planes * oh; t++) {
		int64_t c = t / oh, i = t % oh;
		const float *src = xp + c * h * w;
		float *bv = yp + t * ow;
		int32_t *bi = ap + t * ow;
		int64_t h0 = i * sh - ph, h1 = h0 + kh < h ? h0 + kh : h;
		h0 = h0 < 0 ? 0 : h0;
		for (int64_t j = 0; j < ow; j++) {
			int64_t w0 = j * sw - pw;
			bv[j] = -INFINITY;
			bi[j] = (int32_t)(h0 * w + (w0 < 0 ? 0 : w0));
		}
		for (int64_t y = h0; y < h1; y++)
			for (int dx = 0; dx < kw; dx++) {
				/* the outputs j whose tap dx falls inside the row: 0 <= j·sw − pw + dx < w */
				int64_t off = dx - pw, jlo = off >= 0 ? 0 : (-off + sw - 1) / sw;
				int64_t jhi = off < w ? (w - 1 - off) / sw + 1 : 0; /* exclusive */
				jhi = jhi < ow ? jhi : ow;
				const float *row = src + y * w + off;
				int32_t base = (int32_t)(y * w + off);
				for (int64_t j = jlo; j < jhi; j++) {
					float v = row[j * sw];
					bool take = v > bv[j] || v != v;
					bv[j] = take ? v : bv[j];
					bi[j] = take ? base + (int32_t)(j * sw) : bi[j];
				}
			}
	}
	skd_tensor_release(x);
	skd_node *node = skd_autograd_record(out, op, max_pool2d_backward, 1, &x_in);
	if (node) {
		skd_node_save(node, arg);
		node->iarg[0] = planes;
		node->iarg[1] = h * w;
		node->iarg[2] = oh * ow;
	}
	skd_tensor_release(arg);
	return out;
}

/* ---------- avg_pool2d ---------- */

/* One window of avg_pool2d: its clipped extent in the input and its divisor. */
typedef struct window {
	int64_t h0, h1, w0, w1;
	float count;
} window;

/* PyTorch's avg_pool2d: the divisor counts the window clipped to the padded input when
 * count_include_pad (so a ceil-mode window running past the padding counts only the part
 * inside it), else the part inside the input itself. */
static window avg_window(const skd_pool2d_params *p, int64_t h, int64_t w, int64_t i, int64_t j)
{
	window r;
	int64_t h0 = i * p->stride[0] - p->padding[0], w0 = j * p->stride[1] - p->padding[1];
	int64_t h1 = h0 + p->kernel[0], w1 = w0 + p->kernel[1];
	if (h1 > h + p->padding[0])
		h1 = h + p->padding[0];
	if (w1 > w + p->padding[1])
		w1 = w + p->padding[1];
	int64_t padded_count = (h1 - h0) * (w1 - w0);
	r.h0 = h0 < 0 ? 0 : h0;
	r.w0 = w0 < 0 ? 0 : w0;
	r.h1 = h1 < h ? h1 : h;
	r.w1 = w1 < w ? w1 : w;
	int64_t count = p->count_include_pad ? padded_count : (r.h1 - r.h0) * (r.w1 - r.w0);
	r.count = (float)count;
	return r;
}

static int avg_pool2d_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	const skd_pool2d_params *p = node->ctx;
	skd_tensor *gx = skd_tensor_zeros(SKD_FLOAT32, node->inputs[0].ndim, node->inputs[0].shape);
	if (!gx)
		return SKD_ERR;
	int nd = gx->ndim;
	int64_t h = gx->shape[nd - 2], w = gx->shape[nd - 1], oh = g->shape[nd - 2], ow = g->shape[nd - 1];
	int64_t planes = count_planes(gx);
	const float *gp = skd_tensor_f32(g);
	float *gxp = skd_tensor_f32(gx);
#pragma omp parallel for schedule(static) if (planes * h * w > SKD_PARALLEL_GRAIN)
	for (int64_t c = 0; c < planes; c++) {
		float *dst = gxp + c * h * w;
		for (int64_t i = 0; i < oh; i++)
			for (int64_t j = 0; j < ow; j++) {
				window r = avg_window(p, h, w, i, j);
				float v = gp[(c * oh + i) * ow + j] / r.count;
				for (int64_t y = r.h0; y < r.h1; y++)
					for (int64_t xx = r.w0; xx < r.w1; xx++)
						dst[y * w + xx] += v;
			}
	}
	gin[0] = gx;
	return SKD_OK;
}

skd_tensor *skd_avg_pool2d(skd_tensor *x_in, const skd_pool2d_params *p)
{
	const char *op = "avg_pool2d";
	skd_tensor *x = plane_input(op, x_in);
	if (!x)
		return NULL;
	int64_t oh, ow;
	if (check_pool_params(op, x, p, &oh, &ow)) {
		skd_tensor_release(x);
		return NULL;
	}
	int64_t h = x->shape[x->ndim - 2], w = x->shape[x->ndim - 1], planes = count_planes(x);
	skd_tensor *out = plane_output(x, oh, ow, SKD_FLOAT32);
	if (!out) {
		skd_tensor_release(x);
		return NULL;
	}
	const float *xp = skd_tensor_f32(x);
	float *yp = skd_tensor_f32(out);
#pragma omp parallel for schedule(static) if (planes * h * w > SKD_PARALLEL_GRAIN)
	for (int64_t c = 0; c < planes; c++) {
		const float *src = xp + c * h * w;
		for (int64_t i = 0; i < oh; i++)
			for (int64_t j = 0; j < ow; j++) {
				window r = avg_window(p, h, w, i, j);
				float s = 0.0f;
				for (int64_t y = r.h0; y < r.h1; y++)
					for (int64_t xx = r.w0; xx < r.w1; xx++)
						s += src[y * w + xx];
				yp[(c * oh + i) * ow + j] = s / r.count;
			}
	}
	skd_tensor_release(x);
	skd_node *node = skd_autograd_record(out, op, avg_pool2d_backward, 1, &x_in);
	if (node) {
		skd_pool2d_params *saved = skd_malloc(sizeof *saved);
		if (!saved) {
			skd_tensor_release(out);
			return NULL;
		}
		*saved = *p;
		node->ctx = saved;
	}
	return out;
}

/* ---------- adaptive_avg_pool2d ---------- */

/* PyTorch's bins: output cell i of n covers [floor(i·in/n), ceil((i+1)·in/n)), so bins of an
 * odd-sized map overlap by one row (PSPNet's 3- and 6-bin levels on odd maps). */
static int64_t bin_start(int64_t i, int64_t n, int64_t in) { return (i * in) / n; }
static int64_t bin_end(int64_t i, int64_t n, int64_t in) { return ((i + 1) * in + n - 1) / n; }

static int adaptive_avg_pool2d_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	skd_tensor *gx = skd_tensor_zeros(SKD_FLOAT32, node->inputs[0].ndim, node->inputs[0].shape);
	if (!gx)
		return SKD_ERR;
	int nd = gx->ndim;
	int64_t h = gx->shape[nd - 2], w = gx->shape[nd - 1], oh = g->shape[nd - 2], ow = g->shape[nd - 1];
	int64_t planes = count_planes(gx);
	const float *gp = skd_tensor_f32(g);
	float *gxp = skd_tensor_f32(gx);
#pragma omp parallel for schedule(static) if (planes * h * w > SKD_PARALLEL_GRAIN)
	for (int64_t c = 0; c < planes; c++) {
		float *dst = gxp + c * h * w;
		for (int64_t i = 0; i < oh; i++) {
			int64_t h0 = bin_start(i, oh, h), h1 = bin_end(i, oh, h);
			for (int64_t j = 0; j < ow; j++) {
				int64_t w0 = bin_start(j, ow, w), w1 = bin_end(j, ow, w);
				float v = gp[(c * oh + i) * ow + j] / (float)((h1 - h0) * (w1 - w0));
				for (int64_t y = h0; y < h1; y++)
					for (int64_t xx = w0; xx < w1; xx++)
						dst[y * w + xx] += v;
			}
		}
	}
	gin[0] = gx;
	return SKD_OK;
}

skd_tensor *skd_adaptive_avg_pool2d(skd_tensor *x_in, int64_t oh, int64_t ow)
{
	const char *op = "adaptive_avg_pool2d";
	skd_tensor *x = plane_input(op, x_in);
	if (!x)
		return NULL;
	if (oh < 1 || ow < 1) {
		skd_tensor_release(x);
		return skd_error_null("%s: output size must be at least 1x1, got %lldx%lld", op,
				      (long long)oh, (long long)ow);
	}
	int64_t h = x->shape[x->ndim - 2], w = x->shape[x->ndim - 1], planes = count_planes(x);
	skd_tensor *out = plane_output(x, oh, ow, SKD_FLOAT32);
	if (!out) {
		skd_tensor_release(x);
		return NULL;
	}
	const float *xp = skd_tensor_f32(x);
	float *yp = skd_tensor_f32(out);
#pragma omp parallel for schedule(static) if (planes * h * w > SKD_PARALLEL_GRAIN)
	for (int64_t c = 0; c < planes; c++) {
		const float *src = xp + c * h * w;
		for (int64_t i = 0; i < oh; i++) {
			int64_t h0 = bin_start(i, oh, h), h1 = bin_end(i, oh, h);
			for (int64_t j = 0; j < ow; j++) {
				int64_t w0 = bin_start(j, ow, w), w1 = bin_end(j, ow, w);
				float s = 0.0f;
				for (int64_t y = h0; y < h1; y++)
					for (int64_t xx = w0; xx < w1; xx++)
						s += src[y * w + xx];
				yp[(c * oh + i) * ow + j] = s / (float)((h1 - h0) * (w1 - w0));
			}
		}
	}
	skd_tensor_release(x);
	skd_autograd_record(out, op, adaptive_avg_pool2d_backward, 1, &x_in);
	return out;
}
