/* reduce.c — sum, mean and max over everything or one dimension; argmax.
 *
 * Sums accumulate in double over fixed 4096-element blocks whose partials are then added in
 * order, so the result does not depend on the thread count (bit-exact reruns). */
#include <math.h>
#include <stdlib.h>
#include "ops.h"
#include "parallel.h"

#define BLOCK 4096

static skd_tensor *float_contiguous(const char *op, skd_tensor *a)
{
	if (!a)
		return skd_error_null("%s: expects a tensor, got nothing", op);
	if (a->dtype != SKD_FLOAT32)
		return skd_error_null("%s: expects a float32 tensor, got %s", op, skd_dtype_name(a->dtype));
	return skd_tensor_contiguous_nograd(a);
}

static int check_dim(const char *op, const skd_tensor *a, int dim)
{
	if (dim < 0 || dim >= a->ndim) {
		char s[SKD_SHAPE_STR_LEN];
		return skd_error("%s: dimension %d out of range for a tensor of shape %s (%d dims)", op,
				 dim + 1, skd_shape_str(a, s, sizeof s), a->ndim);
	}
	return SKD_OK;
}

/* Views a as (outer, n, inner) around dim. */
static void split_at(const skd_tensor *a, int dim, int64_t *outer, int64_t *n, int64_t *inner)
{
	*outer = 1;
	*inner = 1;
	for (int i = 0; i < dim; i++)
		*outer *= a->shape[i];
	for (int i = dim + 1; i < a->ndim; i++)
		*inner *= a->shape[i];
	*n = a->shape[dim];
}

/* Shape after reducing dim. */
static int reduced_shape(const skd_tensor *a, int dim, bool keepdim, int64_t *shape)
{
	int k = 0;
	for (int i = 0; i < a->ndim; i++) {
		if (i != dim)
			shape[k++] = a->shape[i];
		else if (keepdim)
			shape[k++] = 1;
	}
	return k;
}

static double sum_floats(const float *x, int64_t n)
{
	int64_t nblocks = (n + BLOCK - 1) / BLOCK;
	if (nblocks <= 1) {
		double s = 0;
		for (int64_t i = 0; i < n; i++)
			s += x[i];
		return s;
	}
	double *part = malloc((size_t)nblocks * sizeof *part);
	if (!part) { /* still correct, just serial */
		double s = 0;
		for (int64_t i = 0; i < n; i++)
			s += x[i];
		return s;
	}
#pragma omp parallel for schedule(static) if (n > SKD_PARALLEL_GRAIN)
	for (int64_t b = 0; b < nblocks; b++) {
		int64_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
		double s = 0;
		for (int64_t i = lo; i < hi; i++)
			s += x[i];
		part[b] = s;
	}
	double s = 0;
	for (int64_t b = 0; b < nblocks; b++)
		s += part[b];
	free(part);
	return s;
}

/* ---------- sum and mean over everything ---------- */

static int sum_all_backward(skd_node *n, const skd_tensor *g, skd_tensor **gin)
{
	double scale = n->farg[0];
	gin[0] = skd_tensor_full(SKD_FLOAT32, n->inputs[0].ndim, n->inputs[0].shape,
				 *skd_tensor_f32(g) * scale);
	return gin[0] ? SKD_OK : SKD_ERR;
}

static skd_tensor *sum_all(const char *op, skd_tensor *a, bool mean)
{
	skd_tensor *x = float_contiguous(op, a);
	if (!x)
		return NULL;
	int64_t n = skd_tensor_numel(x);
	double s = sum_floats(skd_tensor_f32(x), n);
	skd_tensor_release(x);
	if (mean)
		s = n ? s / (double)n : NAN;
	skd_tensor *out = skd_tensor_scalar((float)s);
	skd_node *node = skd_autograd_record(out, op, sum_all_backward, 1, &a);
	if (node)
		node->farg[0] = mean ? 1.0 / (double)(n ? n : 1) : 1.0;
	return out;
}

skd_tensor *skd_sum_all(skd_tensor *a) { return sum_all("sum", a, false); }
skd_tensor *skd_mean_all(skd_tensor *a) { return sum_all("mean", a, true); }

/* ---------- sum and mean over one dimension ---------- */

/* gin[o,k,i] = scale * g[o,i] */
static int sum_dim_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	int dim = (int)node->iarg[0];
	skd_tensor *gx = skd_tensor_empty(SKD_FLOAT32, node->inputs[0].ndim, node->inputs[0].shape);
	if (!gx)
		return SKD_ERR;
	int64_t outer, n, inner;
	split_at(gx, dim, &outer, &n, &inner);
	const float *gp = skd_tensor_f32(g);
	float *p = skd_tensor_f32(gx), scale = (float)node->farg[0];
#pragma omp parallel for schedule(static) if (outer * n * inner > SKD_PARALLEL_GRAIN)
	for (int64_t o = 0; o < outer; o++)
		for (int64_t k = 0; k < n; k++)
			for (int64_t i = 0; i < inner; i++)
				p[(o * n + k) * inner + i] = scale * gp[o * inner + i];
	gin[0] = gx;
	return SKD_OK;
}

static skd_tensor *sum_dim(const char *op, skd_tensor *a, int dim, bool keepdim, bool mean)
{
	skd_tensor *x = float_contiguous(op, a);
	if (!x)
		return NULL;
	if (check_dim(op, x, dim)) {
		skd_tensor_release(x);
		return NULL;
	}
	int64_t shape[SKD_MAX_DIMS], outer, n, inner;
	int nd = reduced_shape(x, dim, keepdim, shape);
	split_at(x, dim, &outer, &n, &inner);
	skd_tensor *out = skd_tensor_empty(SKD_FLOAT32, nd, shape);
	if (out) {
		const float *p = skd_tensor_f32(x);
		float *q = skd_tensor_f32(out);
		double scale = mean ? 1.0 / (double)(n ? n : 1) : 1.0;
#pragma omp parallel for schedule(static) if (outer * n * inner > SKD_PARALLEL_GRAIN)
		for (int64_t o = 0; o < outer; o++)
			for (int64_t i = 0; i < inner; i++) {
				double s = 0;
				for (int64_t k = 0; k < n; k++)
					s += p[(o * n + k) * inner + i];
				q[o * inner + i] = (float)(s * scale);
			}
		skd_node *node = skd_autograd_record(out, op, sum_dim_backward, 1, &a);
		if (node) {
			node->iarg[0] = dim;
			node->farg[0] = scale;
		}
	}
	skd_tensor_release(x);
	return out;
}

skd_tensor *skd_sum_dim(skd_tensor *a, int dim, bool keepdim) { return sum_dim("sum", a, dim, keepdim, false); }
skd_tensor *skd_mean_dim(skd_tensor *a, int dim, bool keepdim) { return sum_dim("mean", a, dim, keepdim, true); }

/* ---------- max ---------- */

/* NaN wins, as in PyTorch: a NaN anywhere makes the max NaN. */
static inline bool better(float v, float best)
{
	return v > best || (v != v && best == best);
}

static int max_all_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	skd_tensor *gx = skd_tensor_zeros(SKD_FLOAT32, node->inputs[0].ndim, node->inputs[0].shape);
	if (!gx)
		return SKD_ERR;
	skd_tensor_f32(gx)[node->iarg[0]] = *skd_tensor_f32(g);
	gin[0] = gx;
	return SKD_OK;
}

skd_tensor *skd_max_all(skd_tensor *a)
{
	skd_tensor *x = float_contiguous("max", a);
	if (!x)
		return NULL;
	int64_t n = skd_tensor_numel(x), arg = 0;
	if (n == 0) {
		skd_tensor_release(x);
		return skd_error_null("max: the tensor is empty");
	}
	const float *p = skd_tensor_f32(x);
	for (int64_t i = 1; i < n; i++)
		if (better(p[i], p[arg]))
			arg = i;
	skd_tensor *out = skd_tensor_scalar(p[arg]);
	skd_tensor_release(x);
	skd_node *node = skd_autograd_record(out, "max", max_all_backward, 1, &a);
	if (node)
		node->iarg[0] = arg;
	return out;
}

static int max_dim_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	int dim = (int)node->iarg[0];
	skd_tensor *gx = skd_tensor_zeros(SKD_FLOAT32, node->inputs[0].ndim, node->inputs[0].shape);
	if (!gx)
		return SKD_ERR;
	int64_t outer, n, inner;
	split_at(gx, dim, &outer, &n, &inner);
	const int32_t *idx = skd_tensor_i32(node->saved[0]);
	const float *gp = skd_tensor_f32(g);
	float *p = skd_tensor_f32(gx);
	for (int64_t o = 0; o < outer; o++)
		for (int64_t i = 0; i < inner; i++)
			p[(o * n + idx[o * inner + i]) * inner + i] = gp[o * inner + i];
	gin[0] = gx;
	return SKD_OK;
}

/* values and int32 indices of the max over dim; either output pointer may be NULL. */
static int max_over(const char *op, skd_tensor *a, int dim, bool keepdim, skd_tensor **values,
		    skd_tensor **indices)
{
	skd_tensor *x = float_contiguous(op, a);
	if (!x)
		return SKD_ERR;
	if (check_dim(op, x, dim) || (x->shape[dim] == 0 && skd_error("%s: dimension %d is empty", op, dim + 1))) {
		skd_tensor_release(x);
		return SKD_ERR;
	}
	int64_t shape[SKD_MAX_DIMS], outer, n, inner;
	int nd = reduced_shape(x, dim, keepdim, shape);
	split_at(x, dim, &outer, &n, &inner);
	skd_tensor *v = values ? skd_tensor_empty(SKD_FLOAT32, nd, shape) : NULL;
	skd_tensor *ix = skd_tensor_empty(SKD_INT32, nd, shape);
	if ((values && !v) || !ix) {
		skd_tensor_release(x);
		skd_tensor_release(v);
		skd_tensor_release(ix);
		return SKD_ERR;
	}
	const float *p = skd_tensor_f32(x);
	int32_t *ip = skd_tensor_i32(ix);
	float *vp = v ? skd_tensor_f32(v) : NULL;
#pragma omp parallel for schedule(static) if (outer * n * inner > SKD_PARALLEL_GRAIN)
	for (int64_t o = 0; o < outer; o++)
		for (int64_t i = 0; i < inner; i++) {
			int64_t best = 0;
			for (int64_t k = 1; k < n; k++)
				if (better(p[(o * n + k) * inner + i], p[(o * n + best) * inner + i]))
					best = k;
			ip[o * inner + i] = (int32_t)best;
			if (vp)
				vp[o * inner + i] = p[(o * n + best) * inner + i];
		}
	skd_tensor_release(x);
	if (v) {
		skd_node *node = skd_autograd_record(v, op, max_dim_backward, 1, &a);
		if (node) {
			node->iarg[0] = dim;
			skd_node_save(node, ix);
		}
		*values = v;
	}
	if (indices)
		*indices = ix;
	else
		skd_tensor_release(ix);
	return SKD_OK;
}

skd_tensor *skd_max_dim(skd_tensor *a, int dim, bool keepdim, skd_tensor **indices)
{
	skd_tensor *v = NULL;
	if (indices)
		*indices = NULL;
	return max_over("max", a, dim, keepdim, &v, indices) ? NULL : v;
}

skd_tensor *skd_argmax(skd_tensor *a, int dim, bool keepdim)
{
	skd_tensor *ix = NULL;
	return max_over("argmax", a, dim, keepdim, NULL, &ix) ? NULL : ix;
}
