/* shape.c — views with autograd (reshape, permute, transpose, narrow, select, squeeze,
 * unsqueeze, expand), copies (contiguous, clone, flip), detach, and cat/split.
 * A view shares its input's storage; its backward routes the gradient back into the input's
 * geometry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"

static int check_tensor(const char *op, const skd_tensor *a)
{
	return a ? SKD_OK : skd_error("%s: expects a tensor, got nothing", op);
}

static int check_dim(const char *op, const skd_tensor *a, int dim, int ndim_limit)
{
	if (dim < 0 || dim >= ndim_limit) {
		char s[SKD_SHAPE_STR_LEN];
		return skd_error("%s: dimension %d out of range for a tensor of shape %s (%d dims)", op,
				 dim + 1, skd_shape_str(a, s, sizeof s), a->ndim);
	}
	return SKD_OK;
}

/* ---------- reshape, squeeze, unsqueeze: one backward, reshape back ---------- */

static int reshape_backward(skd_node *n, const skd_tensor *g, skd_tensor **gin)
{
	/* g is contiguous (the engine's promise), so the input's shape is a plain view of it */
	int64_t stride[SKD_MAX_DIMS], s = 1;
	for (int i = n->inputs[0].ndim - 1; i >= 0; i--) {
		stride[i] = s;
		s *= n->inputs[0].shape[i];
	}
	gin[0] = skd_tensor_view(g, n->inputs[0].ndim, n->inputs[0].shape, stride, g->offset);
	return gin[0] ? SKD_OK : SKD_ERR;
}

static skd_tensor *reshape_to(const char *op, skd_tensor *a, int ndim, const int64_t *shape)
{
	skd_tensor *x = skd_tensor_contiguous_nograd(a);
	if (!x)
		return NULL;
	int64_t stride[SKD_MAX_DIMS], s = 1;
	for (int i = ndim - 1; i >= 0; i--) {
		stride[i] = s;
		s *= shape[i];
	}
	skd_tensor *out = skd_tensor_view(x, ndim, shape, stride, x->offset);
	skd_tensor_release(x);
	skd_autograd_record(out, op, reshape_backward, 1, &a);
	return out;
}

skd_tensor *skd_reshape(skd_tensor *a, int ndim, const int64_t *shape_in)
{
	if (check_tensor("reshape", a))
		return NULL;
	if (ndim < 0 || ndim > SKD_MAX_DIMS)
		return skd_error_null("reshape: expects 0 to %d sizes, got %d", SKD_MAX_DIMS, ndim);
	int64_t shape[SKD_MAX_DIMS], known = 1, span = 1, numel = skd_tensor_numel(a);
	int infer = -1;
	for (int i = 0; i < ndim; i++) {
		shape[i] = shape_in[i];
		if (shape[i] == -1) {
			if (infer >= 0)
				return skd_error_null("reshape: only one size may be -1");
			infer = i;
		} else if (shape[i] < 0) {
			return skd_error_null("reshape: size %lld is invalid", (long long)shape[i]);
		} else if (shape[i] > 0 && span > INT64_MAX / 8 / shape[i]) {
			/* span, the product of the nonzero sizes, bounds the strides reshape_to
			 * forms, also when a 0 size makes the element count 0 */
			return skd_error_null("reshape: sizes whose product overflows (size %lld in "
					      "position %d) cannot view %lld elements", (long long)shape[i],
					      i + 1, (long long)numel);
		} else {
			known *= shape[i];
			span *= shape[i] > 0 ? shape[i] : 1;
		}
	}
	if (infer >= 0)
		shape[infer] = known ? numel / known : 0;
	int64_t total = 1;
	for (int i = 0; i < ndim; i++)
		total *= shape[i];
	if (total != numel) {
		char s[SKD_SHAPE_STR_LEN], want[SKD_SHAPE_STR_LEN] = "";
		size_t used = 0;
		for (int i = 0; i < ndim; i++)
			used += (size_t)snprintf(want + used, sizeof want - used, i ? "x%lld" : "%lld",
						 (long long)shape_in[i]);
		return skd_error_null("reshape: cannot view a tensor of shape %s (%lld elements) as %s",
				      skd_shape_str(a, s, sizeof s), (long long)numel, want);
	}
	return reshape_to("reshape", a, ndim, shape);
}

skd_tensor *skd_unsqueeze(skd_tensor *a, int dim)
{
	if (check_tensor("unsqueeze", a) || check_dim("unsqueeze", a, dim, a->ndim + 1))
		return NULL;
	if (a->ndim == SKD_MAX_DIMS)
		return skd_error_null("unsqueeze: already %d dimensions", SKD_MAX_DIMS);
	int64_t shape[SKD_MAX_DIMS];
	for (int i = 0, k = 0; i <= a->ndim; i++)
		shape[i] = i == dim ? 1 : a->shape[k++];
	return reshape_to("unsqueeze", a, a->ndim + 1, shape);
}

skd_tensor *skd_squeeze(skd_tensor *a, int dim)
{
	if (check_tensor("squeeze", a) || check_dim("squeeze", a, dim, a->ndim))
		return NULL;
	if (a->shape[dim] != 1)
		return skd_error_null("squeeze: dimension %d has size %lld, not 1", dim + 1,
				      (long long)a->shape[dim]);
	int64_t shape[SKD_MAX_DIMS];
	for (int i = 0, k = 0; i < a->ndim; i++)
		if (i != dim)
			shape[k++] = a->shape[i];
	return reshape_to("squeeze", a, a->ndim - 1, shape);
}

/* ---------- permute, transpose ---------- */

static int permute_backward(skd_node *n, const skd_tensor *g, skd_tensor **gin)
{
	int inv[SKD_MAX_DIMS];
	for (int i = 0; i < n->out_ndim; i++)
		inv[n->iarg[i]] = i;
	skd_tensor *v = skd_permute((skd_tensor *)g, inv);
	if (!v)
		return SKD_ERR;
	gin[0] = skd_tensor_contiguous_nograd(v);
	skd_tensor_release(v);
	return gin[0] ? SKD_OK : SKD_ERR;
}

skd_tensor *skd_permute(skd_tensor *a, const int *order)
{
	if (check_tensor("permute", a))
		return NULL;
	bool seen[SKD_MAX_DIMS] = {false};
	int64_t shape[SKD_MAX_DIMS], stride[SKD_MAX_DIMS];
	for (int i = 0; i < a->ndim; i++) {
		int d = order[i];
		if (d < 0 || d >= a->ndim || seen[d])
			return skd_error_null("permute: the order must list each of the %d dimensions "
					      "once (bad entry %d)", a->ndim, d + 1);
		seen[d] = true;
		shape[i] = a->shape[d];
		stride[i] = a->stride[d];
	}
	skd_tensor *out = skd_tensor_view(a, a->ndim, shape, stride, a->offset);
	skd_node *n = skd_autograd_record(out, "permute", permute_backward, 1, &a);
	if (n)
		for (int i = 0; i < a->ndim; i++)
			n->iarg[i] = order[i];
	return out;
}

skd_tensor *skd_transpose(skd_tensor *a, int d0, int d1)
{
	if (check_tensor("transpose", a) || check_dim("transpose", a, d0, a->ndim) ||
	    check_dim("transpose", a, d1, a->ndim))
		return NULL;
	int order[SKD_MAX_DIMS];
	for (int i = 0; i < a->ndim; i++)
		order[i] = i;
	order[d0] = d1;
	order[d1] = d0;
	return skd_permute(a, order);
}

/* ---------- narrow, select: backward scatters into zeros ---------- */

static int narrow_backward(skd_node *n, const skd_tensor *g, skd_tensor **gin)
{
	skd_tensor *gx = skd_tensor_zeros(SKD_FLOAT32, n->inputs[0].ndim, n->inputs[0].shape);
	if (!gx)
		return SKD_ERR;
	int dim = (int)n->iarg[0];
	int64_t start = n->iarg[1], len = n->iarg[2];
	skd_tensor *part = skd_tensor_view(gx, gx->ndim, gx->shape, gx->stride,
					   gx->offset + start * gx->stride[dim]);
	if (!part) {
		skd_tensor_release(gx);
		return SKD_ERR;
	}
	part->shape[dim] = len; /* select: g lacks dim, but has the same element order */
	int rc = skd_tensor_copy_(part, g);
	skd_tensor_release(part);
	if (rc) {
		skd_tensor_release(gx);
		return SKD_ERR;
	}
	gin[0] = gx;
	return SKD_OK;
}

skd_tensor *skd_narrow(skd_tensor *a, int dim, int64_t start, int64_t length)
{
	if (check_tensor("narrow", a) || check_dim("narrow", a, dim, a->ndim))
		return NULL;
	/* compared without forming start + length, which huge arguments would overflow */
	if (start < 0 || length < 0 || start > a->shape[dim] || length > a->shape[dim] - start)
		return skd_error_null("narrow: %lld elements from position %lld do not fit in "
				      "dimension %d of size %lld", (long long)length,
				      (long long)start + 1, dim + 1, (long long)a->shape[dim]);
	int64_t shape[SKD_MAX_DIMS];
	memcpy(shape, a->shape, sizeof shape);
	shape[dim] = length;
	skd_tensor *out = skd_tensor_view(a, a->ndim, shape, a->stride, a->offset + start * a->stride[dim]);
	skd_node *n = skd_autograd_record(out, "narrow", narrow_backward, 1, &a);
	if (n) {
		n->iarg[0] = dim;
		n->iarg[1] = start;
		n->iarg[2] = length;
	}
	return out;
}

skd_tensor *skd_select(skd_tensor *a, int dim, int64_t index)
{
	if (check_tensor("select", a) || check_dim("select", a, dim, a->ndim))
		return NULL;
	if (index < 0 || index >= a->shape[dim])
		return skd_error_null("select: index %lld is outside dimension %d of size %lld",
				      (long long)index + 1, dim + 1, (long long)a->shape[dim]);
	int64_t shape[SKD_MAX_DIMS], stride[SKD_MAX_DIMS];
	for (int i = 0, k = 0; i < a->ndim; i++)
		if (i != dim) {
			shape[k] = a->shape[i];
			stride[k++] = a->stride[i];
		}
	skd_tensor *out = skd_tensor_view(a, a->ndim - 1, shape, stride, a->offset + index * a->stride[dim]);
	skd_node *n = skd_autograd_record(out, "select", narrow_backward, 1, &a);
	if (n) {
		n->iarg[0] = dim;
		n->iarg[1] = index;
		n->iarg[2] = 1;
	}
	return out;
}

/* ---------- expand ---------- */

static int expand_backward(skd_node *n, const skd_tensor *g, skd_tensor **gin)
{
	gin[0] = skd_sum_to_shape(g, n->inputs[0].ndim, n->inputs[0].shape);
	return gin[0] ? SKD_OK : SKD_ERR;
}

skd_tensor *skd_expand(skd_tensor *a, int ndim, const int64_t *shape_in)
{
	if (check_tensor("expand", a))
		return NULL;
	if (ndim < a->ndim || ndim > SKD_MAX_DIMS)
		return skd_error_null("expand: %d sizes given for a tensor of %d dims", ndim, a->ndim);
	int64_t shape[SKD_MAX_DIMS], stride[SKD_MAX_DIMS];
	for (int i = 0; i < ndim; i++) {
		int ia = i - (ndim - a->ndim);
		int64_t have = ia >= 0 ? a->shape[ia] : 1;
		shape[i] = shape_in[i] == -1 ? have : shape_in[i];
		if (have == shape[i]) {
			stride[i] = ia >= 0 ? a->stride[ia] : 0;
		} else if (have == 1) {
			stride[i] = 0;
		} else {
			char s[SKD_SHAPE_STR_LEN];
			return skd_error_null("expand: dimension %d of size %lld cannot become %lld "
					      "(tensor of shape %s)", i + 1, (long long)have,
					      (long long)shape[i], skd_shape_str(a, s, sizeof s));
		}
	}
	skd_tensor *out = skd_tensor_view(a, ndim, shape, stride, a->offset);
	skd_autograd_record(out, "expand", expand_backward, 1, &a);
	return out;
}

/* ---------- copies ---------- */

static int identity_backward(skd_node *n, const skd_tensor *g, skd_tensor **gin)
{
	(void)n;
	gin[0] = skd_tensor_retain((skd_tensor *)g);
	return SKD_OK;
}

static skd_tensor *copy_of(const char *op, skd_tensor *a)
{
	skd_tensor *out = skd_tensor_empty(a->dtype, a->ndim, a->shape);
	if (out && skd_tensor_copy_(out, a)) {
		skd_tensor_release(out);
		return NULL;
	}
	skd_autograd_record(out, op, identity_backward, 1, &a);
	return out;
}

skd_tensor *skd_contiguous(skd_tensor *a)
{
	if (check_tensor("contiguous", a))
		return NULL;
	if (skd_tensor_is_contiguous(a))
		return skd_tensor_retain(a);
	return copy_of("contiguous", a);
}

skd_tensor *skd_clone(skd_tensor *a)
{
	return check_tensor("clone", a) ? NULL : copy_of("clone", a);
}

skd_tensor *skd_detach(skd_tensor *a)
{
	if (check_tensor("detach", a))
		return NULL;
	return skd_tensor_view(a, a->ndim, a->shape, a->stride, a->offset);
}

/* ---------- flip: a copy reversed along one dimension ---------- */

static int flip_backward(skd_node *n, const skd_tensor *g, skd_tensor **gin)
{
	gin[0] = skd_flip((skd_tensor *)g, (int)n->iarg[0]); /* its own inverse */
	return gin[0] ? SKD_OK : SKD_ERR;
}

skd_tensor *skd_flip(skd_tensor *a, int dim)
{
	if (check_tensor("flip", a) || check_dim("flip", a, dim, a->ndim))
		return NULL;
	/* a view with a negative stride along dim, copied out contiguously */
	int64_t stride[SKD_MAX_DIMS];
	memcpy(stride, a->stride, sizeof stride);
	stride[dim] = -a->stride[dim];
	skd_tensor *rev = skd_tensor_view(a, a->ndim, a->shape, stride,
					  a->offset + (a->shape[dim] - 1) * a->stride[dim]);
	if (!rev)
		return NULL;
	skd_tensor *out = skd_tensor_empty(a->dtype, a->ndim, a->shape);
	if (out && skd_tensor_copy_(out, rev)) {
		skd_tensor_release(out);
		out = NULL;
	}
	skd_tensor_release(rev);
	skd_node *n = skd_autograd_record(out, "flip", flip_backward, 1, &a);
	if (n)
		n->iarg[0] = dim;
	return out;
}

/* ---------- cat and split ---------- */

static int cat_backward(skd_node *n, const skd_tensor *g, skd_tensor **gin)
{
	int dim = (int)n->iarg[0];
	int64_t start = 0;
	for (int i = 0; i < n->n_inputs; i++) {
		int64_t len = n->inputs[i].shape[dim];
		if (skd_node_needs_grad(n, i)) {
			skd_tensor *v = skd_narrow((skd_tensor *)g, dim, start, len);
			gin[i] = v ? skd_tensor_contiguous_nograd(v) : NULL;
			skd_tensor_release(v);
			if (!gin[i])
				return SKD_ERR;
		}
		start += len;
	}
	return SKD_OK;
}

skd_tensor *skd_cat(int n, skd_tensor *const *ts, int dim)
{
	char a[SKD_SHAPE_STR_LEN], b[SKD_SHAPE_STR_LEN];
	if (n < 1)
		return skd_error_null("cat: expects at least one tensor");
	for (int i = 0; i < n; i++)
		if (!ts[i])
			return skd_error_null("cat: tensor %d is missing", i + 1);
	const skd_tensor *t0 = ts[0];
	if (check_dim("cat", t0, dim, t0->ndim))
		return NULL;
	int64_t shape[SKD_MAX_DIMS];
	memcpy(shape, t0->shape, sizeof shape);
	shape[dim] = 0;
	for (int i = 0; i < n; i++) {
		const skd_tensor *t = ts[i];
		bool ok = t->ndim == t0->ndim && t->dtype == t0->dtype;
		for (int d = 0; ok && d < t->ndim; d++)
			ok = d == dim || t->shape[d] == t0->shape[d];
		if (!ok)
			return skd_error_null("cat: tensor %d (%s, %s) does not match tensor 1 (%s, %s) "
					      "outside dimension %d", i + 1, skd_shape_str(t, a, sizeof a),
					      skd_dtype_name(t->dtype), skd_shape_str(t0, b, sizeof b),
					      skd_dtype_name(t0->dtype), dim + 1);
		shape[dim] += t->shape[dim];
	}
	skd_tensor *out = skd_tensor_empty(t0->dtype, t0->ndim, shape);
	if (!out)
		return NULL;
	int64_t start = 0;
	for (int i = 0; i < n; i++) {
		skd_tensor *part = skd_tensor_view(out, out->ndim, out->shape, out->stride,
						   start * out->stride[dim]);
		if (!part) {
			skd_tensor_release(out);
			return NULL;
		}
		part->shape[dim] = ts[i]->shape[dim];
		skd_tensor_copy_(part, ts[i]);
		skd_tensor_release(part);
		start += ts[i]->shape[dim];
	}
	skd_node *node = skd_autograd_record(out, "cat", cat_backward, n, ts);
	if (node)
		node->iarg[0] = dim;
	return out;
}

int skd_split(skd_tensor *a, int64_t size, int dim, skd_tensor **out, int max_out, int *n_out)
{
	*n_out = 0;
	if (check_tensor("split", a) || check_dim("split", a, dim, a->ndim))
		return SKD_ERR;
	if (size < 1)
		return skd_error("split: piece size must be at least 1, got %lld", (long long)size);
	int64_t len = a->shape[dim], pieces = len / size + (len % size != 0);
	if (pieces > max_out)
		return skd_error("split: %lld pieces is more than %d", (long long)pieces, max_out);
	for (int64_t i = 0; i < pieces; i++) {
		int64_t l = len - i * size < size ? len - i * size : size;
		out[i] = skd_narrow(a, dim, i * size, l);
		if (!out[i]) {
			for (int64_t k = 0; k < i; k++)
				skd_tensor_release(out[k]);
			return SKD_ERR;
		}
	}
	*n_out = (int)pieces;
	return SKD_OK;
}
