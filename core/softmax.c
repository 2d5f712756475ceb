/* softmax.c — softmax and log_softmax over one dimension, forward beside backward.
 *
 * x is viewed as (outer, n, inner) around the dimension. Stable form: with m the max over
 * the dimension, softmax = exp(x − m) / Σ exp(x − m), log_softmax = x − m − log Σ exp(x − m).
 * When inner > 1 (the class axis of N×C×H×W logits) the work is split into column blocks
 * of one outer slice, and every loop runs along the contiguous inner axis so it vectorises;
 * when inner = 1 (the last axis) each row is one task. Each output is computed by one task
 * in a fixed order: results do not depend on the thread count. */
#include <math.h>
#include "ops.h"
#include "parallel.h"
#include "vmath.h"

#define COLS 256 /* inner positions per task; the per-task max/sum rows live on the stack */

static int check_args(const char *op, const skd_tensor *x, int dim)
{
	char s[SKD_SHAPE_STR_LEN];
	if (!x)
		return skd_error("%s: expects a tensor, got nothing", op);
	if (x->dtype != SKD_FLOAT32)
		return skd_error("%s: expects a float32 tensor, got %s (convert with :float())", op,
				 skd_dtype_name(x->dtype));
	if (dim < 0 || dim >= x->ndim)
		return skd_error("%s: dimension %d out of range for a tensor of shape %s (%d dims)", op,
				 dim + 1, skd_shape_str(x, s, sizeof s), x->ndim);
	return SKD_OK;
}

static void split_at(const int64_t *shape, int ndim, int dim, int64_t *outer, int64_t *n,
		     int64_t *inner)
{
	*outer = 1;
	*inner = 1;
	for (int i = 0; i < dim; i++)
		*outer *= shape[i];
	for (int i = dim + 1; i < ndim; i++)
		*inner *= shape[i];
	*n = shape[dim];
}

/* One row (inner = 1): y = softmax or log_softmax of x[0..n). */
static void row_forward(float *y, const float *x, int64_t n, bool log_out)
{
	float m = -INFINITY;
	for (int64_t k = 0; k < n; k++)
		m = x[k] > m ? x[k] : m;
	float sum = 0.0f;
	for (int64_t k = 0; k < n; k++) {
		y[k] = expf(x[k] - m);
		sum += y[k];
	}
	if (log_out) {
		float shift = m + logf(sum);
		for (int64_t k = 0; k < n; k++)
			y[k] = x[k] - shift;
	} else {
		float inv = 1.0f / sum;
		for (int64_t k = 0; k < n; k++)
			y[k] *= inv;
	}
}

/* Columns [0, cols) of one outer slice, stride `inner` between the n entries of a column. */
static void cols_forward(float *y, const float *x, int64_t n, int64_t inner, int64_t cols,
			 bool log_out)
{
	float m[COLS], sum[COLS];
	for (int64_t i = 0; i < cols; i++) {
		m[i] = -INFINITY;
		sum[i] = 0.0f;
	}
	for (int64_t k = 0; k < n; k++)
		for (int64_t i = 0; i < cols; i++)
			m[i] = x[k * inner + i] > m[i] ? x[k * inner + i] : m[i];
	for (int64_t k = 0; k < n; k++)
		for (int64_t i = 0; i < cols; i++) {
			float e = expf(x[k * inner + i] - m[i]);
			y[k * inner + i] = e;
			sum[i] += e;
		}
	if (log_out) {
		for (int64_t i = 0; i < cols; i++)
			m[i] += logf(sum[i]);
		for (int64_t k = 0; k < n; k++)
			for (int64_t i = 0; i < cols; i++)
				y[k * inner + i] = x[k * inner + i] - m[i];
	} else {
		for (int64_t i = 0; i < cols; i++)
			sum[i] = 1.0f / sum[i];
		for (int64_t k = 0; k < n; k++)
			for (int64_t i = 0; i < cols; i++)
				y[k * inner + i] *= sum[i];
	}
}

/* The backward of one column block, from the saved output y:
 *   softmax:     gx = y · (g − Σ_k g·y)
 *   log_softmax: gx = g − exp(y) · Σ_k g */
static void cols_backward(float *gx, const float *g, const float *y, int64_t n, int64_t inner,
			  int64_t cols, bool log_out)
{
	float dot[COLS];
	for (int64_t i = 0; i < cols; i++)
		dot[i] = 0.0f;
	if (log_out) {
		for (int64_t k = 0; k < n; k++)
			for (int64_t i = 0; i < cols; i++)
				dot[i] += g[k * inner + i];
		for (int64_t k = 0; k < n; k++)
			for (int64_t i = 0; i < cols; i++)
				gx[k * inner + i] = g[k * inner + i] - expf(y[k * inner + i]) * dot[i];
	} else {
		for (int64_t k = 0; k < n; k++)
			for (int64_t i = 0; i < cols; i++)
				dot[i] += g[k * inner + i] * y[k * inner + i];
		for (int64_t k = 0; k < n; k++)
			for (int64_t i = 0; i < cols; i++)
				gx[k * inner + i] = y[k * inner + i] * (g[k * inner + i] - dot[i]);
	}
}

/* The same for one row (inner = 1). */
static void row_backward(float *gx, const float *g, const float *y, int64_t n, bool log_out)
{
	float dot = 0.0f;
	if (log_out) {
		for (int64_t k = 0; k < n; k++)
			dot += g[k];
		for (int64_t k = 0; k < n; k++)
			gx[k] = g[k] - expf(y[k]) * dot;
	} else {
		for (int64_t k = 0; k < n; k++)
			dot += g[k] * y[k];
		for (int64_t k = 0; k < n; k++)
			gx[k] = y[k] * (g[k] - dot);
	}
}

#define BLOCKS(inner) (((inner) + COLS - 1) / COLS)

static int softmax_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	const skd_tensor *y = node->saved[0];
	int dim = (int)node->iarg[0];
	bool log_out = node->iarg[1] != 0;
	skd_tensor *gx = skd_tensor_empty(SKD_FLOAT32, y->ndim, y->shape);
	if (!gx)
		return SKD_ERR;
	int64_t outer, n, inner;
	split_at(y->shape, y->ndim, dim, &outer, &n, &inner);
	const float *gp = skd_tensor_f32(g), *yp = skd_tensor_f32(y);
	float *gxp = skd_tensor_f32(gx);
	if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * n > SKD_PARALLEL_GRAIN)
		for (int64_t o = 0; o < outer; o++)
			row_backward(gxp + o * n, gp + o * n, yp + o * n, n, log_out);
	} else {
		int64_t nb = BLOCKS(inner), tasks = outer * nb;
#pragma omp parallel for schedule(static) if (outer * n * inner > SKD_PARALLEL_GRAIN)
		for (int64_t t = 0; t < tasks; t++) {
			int64_t o = t / nb, i0 = (t % nb) * COLS;
			int64_t cols = inner - i0 < COLS ? inner - i0 : COLS;
			int64_t base = o * n * inner + i0;
			cols_backward(gxp + base, gp + base, yp + base, n, inner, cols, log_out);
		}
	}
	gin[0] = gx;
	return SKD_OK;
}

static skd_tensor *softmax_forward(const char *op, skd_tensor *x_in, int dim, bool log_out)
{
	if (check_args(op, x_in, dim))
		return NULL;
	skd_tensor *x = skd_tensor_contiguous_nograd(x_in);
	skd_tensor *out = x ? skd_tensor_empty(SKD_FLOAT32, x->ndim, x->shape) : NULL;
	if (!out) {
		skd_tensor_release(x);
		return NULL;
	}
	int64_t outer, n, inner;
	split_at(x->shape, x->ndim, dim, &outer, &n, &inner);
	const float *xp = skd_tensor_f32(x);
	float *yp = skd_tensor_f32(out);
	if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * n > SKD_PARALLEL_GRAIN)
		for (int64_t o = 0; o < outer; o++)
			row_forward(yp + o * n, xp + o * n, n, log_out);
	} else {
		int64_t nb = BLOCKS(inner), tasks = outer * nb;
#pragma omp parallel for schedule(static) if (outer * n * inner > SKD_PARALLEL_GRAIN)
		for (int64_t t = 0; t < tasks; t++) {
			int64_t o = t / nb, i0 = (t % nb) * COLS;
			int64_t cols = inner - i0 < COLS ? inner - i0 : COLS;
			int64_t base = o * n * inner + i0;
			cols_forward(yp + base, xp + base, n, inner, cols, log_out);
		}
	}
	skd_tensor_release(x);
	skd_node *node = skd_autograd_record(out, op, softmax_backward, 1, &x_in);
	if (node) {
		skd_node_save(node, out);
		node->iarg[0] = dim;
		node->iarg[1] = log_out;
	}
	return out;
}

skd_tensor *skd_softmax(skd_tensor *x, int dim) { return softmax_forward("softmax", x, dim, false); }
skd_tensor *skd_log_softmax(skd_tensor *x, int dim) { return softmax_forward("log_softmax", x, dim, true); }
