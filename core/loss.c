/* loss.c — cross-entropy with an ignored label (method.md §0: L_ce on the logits upsampled
 * to the label size, ignoring label 255).
 *
 * logits z (N,C,d1,...) float32, target y (N,d1,...) int32. Per element e = (n, d1, ...):
 *     ℓ_e = −log_softmax(z)[n, y_e, ...] = log Σ_c exp z_c − z_{y_e}
 * and ℓ_e = 0 where y_e = ignore_index. With class weights a (C floats, e.g. median-frequency
 * balancing for rare classes), ℓ_e is multiplied by a[y_e]. Reductions (as PyTorch's
 * weight=/ignore_index=): "mean" divides the sum by Σ a[y_e] over non-ignored elements (their
 * number when there are no weights); when that is 0 — every element ignored — the loss is 0 and
 * the gradient 0 (PyTorch returns NaN there: 0/0), so that a crop of pure void cannot poison a
 * training run. "sum" adds; "none" returns the per-element losses in the target's shape.
 *
 * The gradient is (softmax(z) − onehot(y)) · a[y_e] · r_e with r_e the reduction's factor of e
 * (0 where ignored), computed from the saved log-softmax. Sums run in double in element order,
 * so the result does not depend on the thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "ops.h"
#include "parallel.h"
#include "vmath.h"

/* Checks dtypes and that target is logits' shape without the class dimension. */
static int check_args(const skd_tensor *z, const skd_tensor *y, const skd_tensor *weight,
		      skd_reduction reduction)
{
	char zs[SKD_SHAPE_STR_LEN], ys[SKD_SHAPE_STR_LEN];
	if (!z || !y)
		return skd_error("cross_entropy: expects logits and a target, got nothing for the %s",
				 z ? "target" : "logits");
	if (z->dtype != SKD_FLOAT32)
		return skd_error("cross_entropy: logits must be float32, got %s (convert with :float())",
				 skd_dtype_name(z->dtype));
	if (y->dtype != SKD_INT32)
		return skd_error("cross_entropy: target must be int32 class ids, got %s (use :int())",
				 skd_dtype_name(y->dtype));
	if (z->ndim < 2)
		return skd_error("cross_entropy: expects logits of at least 2 dims (N,C,...), got %s",
				 skd_shape_str(z, zs, sizeof zs));
	bool match = y->ndim == z->ndim - 1 && y->shape[0] == z->shape[0];
	for (int d = 1; match && d < y->ndim; d++)
		match = y->shape[d] == z->shape[d + 1];
	if (!match) {
		/* the expected target shape: logits' without dimension 2 (C) */
		char want[SKD_SHAPE_STR_LEN];
		size_t used = 0;
		for (int d = 0; d < z->ndim && used < sizeof want; d++)
			if (d != 1)
				used += (size_t)snprintf(want + used, sizeof want - used, used ? "x%lld" : "%lld",
							 (long long)z->shape[d]);
		return skd_error("cross_entropy: target shape %s does not match logits %s (expected target %s)",
				 skd_shape_str(y, ys, sizeof ys), skd_shape_str(z, zs, sizeof zs), want);
	}
	if (z->shape[1] < 1)
		return skd_error("cross_entropy: logits %s have no classes", skd_shape_str(z, zs, sizeof zs));
	if (reduction != SKD_REDUCTION_MEAN && reduction != SKD_REDUCTION_SUM &&
	    reduction != SKD_REDUCTION_NONE)
		return skd_error("cross_entropy: unknown reduction %d", (int)reduction);
	if (weight) {
		char ws[SKD_SHAPE_STR_LEN];
		if (weight->dtype != SKD_FLOAT32 || weight->ndim != 1 || weight->shape[0] != z->shape[1])
			return skd_error("cross_entropy: class weights must be a float32 vector of %lld "
					 "(one per class of logits %s), got %s %s", (long long)z->shape[1],
					 skd_shape_str(z, zs, sizeof zs), skd_dtype_name(weight->dtype),
					 skd_shape_str(weight, ws, sizeof ws));
		const float *a = skd_tensor_f32(weight);
		for (int64_t c = 0; c < weight->shape[0]; c++)
			if (!(a[c] >= 0 && isfinite(a[c])))
				return skd_error("cross_entropy: class weight %lld is %g; weights must be "
						 "finite and >= 0", (long long)c + 1, (double)a[c]);
	}
	return SKD_OK;
}

/* The first target outside [0, C) that is not ignore_index, reported with its 1-based
 * position; otherwise the mean's divisor in *total: Σ a[y_e] over non-ignored elements, or
 * their number without weights a. */
static int check_targets(const skd_tensor *y, const int32_t *t, int64_t classes, int ignore_index,
			 const float *a, double *total)
{
	int64_t n = skd_tensor_numel(y);
	double counted = 0;
	for (int64_t e = 0; e < n; e++) {
		if (t[e] == ignore_index)
			continue;
		if (t[e] < 0 || t[e] >= classes) {
			char pos[SKD_SHAPE_STR_LEN], ys[SKD_SHAPE_STR_LEN];
			int64_t idx[SKD_MAX_DIMS], rem = e;
			for (int d = y->ndim - 1; d >= 0; d--) {
				idx[d] = rem % y->shape[d];
				rem /= y->shape[d];
			}
			size_t used = 0;
			for (int d = 0; d < y->ndim && used < sizeof pos; d++)
				used += (size_t)snprintf(pos + used, sizeof pos - used, d ? ",%lld" : "%lld",
							 (long long)idx[d] + 1);
			return skd_error("cross_entropy: target value %d at position (%s) of target %s is "
					 "outside [0, %lld) and is not ignore_index %d", (int)t[e], pos,
					 skd_shape_str(y, ys, sizeof ys), (long long)classes, ignore_index);
		}
		counted += a ? (double)a[t[e]] : 1.0;
	}
	*total = counted;
	return SKD_OK;
}

/* gz[n,c,i] = (exp(lsm[n,c,i]) − [c = y]) · a[y] · r, r = (per-element g or scalar g) · scale,
 * a[y] = 1 without class weights and 0 where y is ignored. */
static int cross_entropy_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	const skd_tensor *lsm = node->saved[0], *y = node->saved[1], *weight = node->saved[2];
	int ignore_index = (int)node->iarg[0];
	bool per_element = node->iarg[1] == SKD_REDUCTION_NONE;
	float scale = (float)node->farg[0];
	skd_tensor *gz = skd_tensor_empty(SKD_FLOAT32, lsm->ndim, lsm->shape);
	if (!gz)
		return SKD_ERR;
	int64_t batch = lsm->shape[0], classes = lsm->shape[1], inner = 1;
	for (int d = 2; d < lsm->ndim; d++)
		inner *= lsm->shape[d];
	const float *lp = skd_tensor_f32(lsm), *gp = skd_tensor_f32(g);
	const float *a = weight ? skd_tensor_f32(weight) : NULL;
	const int32_t *tp = skd_tensor_i32(y);
	float *gzp = skd_tensor_f32(gz);
#pragma omp parallel for schedule(static) if (batch * classes * inner > SKD_PARALLEL_GRAIN)
	for (int64_t plane = 0; plane < batch * classes; plane++) {
		int64_t b = plane / classes, c = plane % classes;
		const int32_t *t = tp + b * inner;
		const float *l = lp + plane * inner, *gb = gp + (per_element ? b * inner : 0);
		float *o = gzp + plane * inner;
		/* exp first, then the selects: two loops that each vectorise (expf through libmvec,
		 * vmath.h; GCC will not if-convert a loop that also calls a vector function) */
		for (int64_t i = 0; i < inner; i++)
			o[i] = expf(l[i]);
		int32_t cls = (int32_t)c, ignore = (int32_t)ignore_index;
		if (a) { /* class weights: a gather per element, whatever the reduction */
			for (int64_t i = 0; i < inner; i++) {
				float r = t[i] == ignore ? 0.0f : a[t[i]] * gb[per_element ? i : 0] * scale;
				o[i] = (o[i] - (t[i] == cls ? 1.0f : 0.0f)) * r;
			}
		} else if (per_element) { /* reduction "none": the upstream gradient per pixel */
			for (int64_t i = 0; i < inner; i++) {
				float r = t[i] == ignore ? 0.0f : gb[i] * scale;
				o[i] = (o[i] - (t[i] == cls ? 1.0f : 0.0f)) * r;
			}
		} else { /* in this form the selects vectorise */
			float r0 = gb[0] * scale;
			for (int64_t i = 0; i < inner; i++) {
				float hit = t[i] == cls ? 1.0f : 0.0f, r = t[i] == ignore ? 0.0f : r0;
				o[i] = (o[i] - hit) * r;
			}
		}
	}
	gin[0] = gz;
	return SKD_OK;
}

skd_tensor *skd_cross_entropy(skd_tensor *logits, skd_tensor *target, const skd_tensor *weight,
			      int ignore_index, skd_reduction reduction)
{
	if (check_args(logits, target, weight, reduction))
		return NULL;
	skd_tensor *y = skd_tensor_contiguous_nograd(target), *lsm = NULL, *losses = NULL, *out = NULL;
	skd_tensor *a = weight ? skd_tensor_contiguous_nograd((skd_tensor *)weight) : NULL;
	int64_t classes = logits->shape[1];
	double total = 0;
	if (!y || (weight && !a) ||
	    check_targets(y, skd_tensor_i32(y), classes, ignore_index, a ? skd_tensor_f32(a) : NULL, &total))
		goto done;
	bool prev = skd_set_grad_enabled(false);
	lsm = skd_log_softmax(logits, 1);
	skd_set_grad_enabled(prev);
	losses = lsm ? skd_tensor_empty(SKD_FLOAT32, y->ndim, y->shape) : NULL;
	if (!losses)
		goto done;
	int64_t batch = y->shape[0], n = skd_tensor_numel(y), inner = batch ? n / batch : 0;
	const float *lp = skd_tensor_f32(lsm);
	const float *ap = a ? skd_tensor_f32(a) : NULL;
	const int32_t *tp = skd_tensor_i32(y);
	float *lo = skd_tensor_f32(losses);
#pragma omp parallel for schedule(static) if (n > SKD_PARALLEL_GRAIN)
	for (int64_t e = 0; e < n; e++) {
		int64_t b = inner ? e / inner : 0, i = e - b * inner;
		int32_t t = tp[e];
		lo[e] = t == ignore_index ? 0.0f : -lp[(b * classes + t) * inner + i] * (ap ? ap[t] : 1.0f);
	}
	double scale = 1.0;
	if (reduction == SKD_REDUCTION_NONE) {
		out = skd_tensor_retain(losses);
	} else {
		double sum = 0;
		for (int64_t e = 0; e < n; e++)
			sum += lo[e];
		if (reduction == SKD_REDUCTION_MEAN) {
			scale = total > 0 ? 1.0 / total : 0.0;
			sum *= scale;
		}
		out = skd_tensor_scalar((float)sum);
	}
	skd_node *node = skd_autograd_record(out, "cross_entropy", cross_entropy_backward, 1, &logits);
	if (node) {
		skd_node_save(node, lsm);
		skd_node_save(node, y);
		skd_node_save(node, a);
		node->iarg[0] = ignore_index;
		node->iarg[1] = reduction;
		node->farg[0] = scale;
	}
done:
	skd_tensor_release(a);
	skd_tensor_release(y);
	skd_tensor_release(lsm);
	skd_tensor_release(losses);
	return out;
}
