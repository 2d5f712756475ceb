/* dropout.c — dropout (each element) and dropout2d (each (n,c) channel as a whole).
 *
 * A kept element is scaled by 1/(1−p) so the expectation is unchanged; the backward is the
 * gradient times the same mask. The masks are drawn from the engine's generator (rng.h) on
 * the calling thread, one draw per element (or channel) in row-major order, before any
 * parallel loop: a run repeats bit for bit after skd_manual_seed, whatever the thread count.
 * Out of training, or with p = 0, both return x itself (a new reference, as PyTorch does):
 * no draws, no node, the gradient flows to x unchanged. */
#include "ops.h"
#include "parallel.h"
#include "rng.h"

static int check_args(const char *op, const skd_tensor *x, double p)
{
	if (!x)
		return skd_error("%s: expects a tensor, got nothing", op);
	if (x->dtype != SKD_FLOAT32)
		return skd_error("%s: expects a float32 tensor, got %s (convert with :float())", op,
				 skd_dtype_name(x->dtype));
	if (!(p >= 0.0 && p < 1.0))
		return skd_error("%s: p must be in [0, 1), got %g", op, p);
	return SKD_OK;
}

/* mask[k] = scale with probability 1−p, else 0: one uniform draw per element, in order. */
static void draw_mask(float *mask, int64_t n, double p)
{
	float scale = (float)(1.0 / (1.0 - p));
	for (int64_t k = 0; k < n; k++)
		mask[k] = skd_rng_uniform() < p ? 0.0f : scale;
}

/* grad_x = grad_out · mask, the mask broadcast over H×W for dropout2d. */
static int dropout_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	gin[0] = skd_mul((skd_tensor *)g, node->saved[0]);
	return gin[0] ? SKD_OK : SKD_ERR;
}

/* out = x · mask, mask of x's shape (per element) or (N,C,1,...) (per channel). */
static skd_tensor *apply_mask(const char *op, skd_tensor *x_in, skd_tensor *mask)
{
	skd_tensor *x = skd_tensor_contiguous_nograd(x_in);
	skd_tensor *out = x ? skd_tensor_empty(SKD_FLOAT32, x->ndim, x->shape) : NULL;
	if (!out) {
		skd_tensor_release(x);
		return NULL;
	}
	int64_t n = skd_tensor_numel(x), groups = skd_tensor_numel(mask), per = groups ? n / groups : 0;
	const float *xp = skd_tensor_f32(x), *mp = skd_tensor_f32(mask);
	float *yp = skd_tensor_f32(out);
	if (per == 1) {
#pragma omp parallel for schedule(static) if (n > SKD_PARALLEL_GRAIN)
		for (int64_t i = 0; i < n; i++)
			yp[i] = xp[i] * mp[i];
	} else {
#pragma omp parallel for schedule(static) if (n > SKD_PARALLEL_GRAIN)
		for (int64_t gi = 0; gi < groups; gi++) {
			float m = mp[gi];
			const float *src = xp + gi * per;
			float *dst = yp + gi * per;
			for (int64_t i = 0; i < per; i++)
				dst[i] = src[i] * m;
		}
	}
	skd_tensor_release(x);
	skd_node *node = skd_autograd_record(out, op, dropout_backward, 1, &x_in);
	if (node)
		skd_node_save(node, mask);
	return out;
}

skd_tensor *skd_dropout(skd_tensor *x, double p, bool training)
{
	if (check_args("dropout", x, p))
		return NULL;
	if (!training || p == 0.0)
		return skd_tensor_retain(x);
	skd_tensor *mask = skd_tensor_empty(SKD_FLOAT32, x->ndim, x->shape);
	if (!mask)
		return NULL;
	draw_mask(skd_tensor_f32(mask), skd_tensor_numel(mask), p);
	skd_tensor *out = apply_mask("dropout", x, mask);
	skd_tensor_release(mask);
	return out;
}

skd_tensor *skd_dropout2d(skd_tensor *x, double p, bool training)
{
	if (check_args("dropout2d", x, p))
		return NULL;
	if (x->ndim != 4) {
		char s[SKD_SHAPE_STR_LEN];
		return skd_error_null("dropout2d: expects a 4-d (N,C,H,W) input, got %s",
				      skd_shape_str(x, s, sizeof s));
	}
	if (!training || p == 0.0)
		return skd_tensor_retain(x);
	skd_tensor *mask = skd_tensor_empty(SKD_FLOAT32, 4, (int64_t[]){x->shape[0], x->shape[1], 1, 1});
	if (!mask)
		return NULL;
	draw_mask(skd_tensor_f32(mask), skd_tensor_numel(mask), p);
	skd_tensor *out = apply_mask("dropout2d", x, mask);
	skd_tensor_release(mask);
	return out;
}
