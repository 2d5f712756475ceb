/* batchnorm.c — batch normalisation over x (N,C,...): per channel c,
 *
 *     y = (x − μ_c) · invstd_c · γ_c + β_c,   invstd_c = 1 / sqrt(σ²_c + eps)
 *
 * In training μ, σ² are the batch's (biased variance, over N and the spatial positions) and
 * the running statistics move towards them in place, with the UNBIASED variance (PyTorch):
 * running ← (1 − momentum)·running + momentum·batch. They are buffers, not inputs: the tape
 * never sees them. In eval the running statistics normalise. γ (weight), β (bias) may be NULL.
 *
 * Per-channel sums run in double, one channel per task, in a fixed order: results do not
 * depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include "affine_row.h"
#include "ops.h"
#include "parallel.h"

/* The mean and invstd each channel was normalised with (what backward needs besides x, γ). */
typedef struct bn_stats {
	int64_t channels;
	float *mean, *invstd; /* point into the same block as the struct */
} bn_stats;

static bn_stats *stats_alloc(int64_t channels)
{
	bn_stats *s = skd_malloc(sizeof *s + 2 * (size_t)channels * sizeof(float));
	if (!s)
		return NULL;
	s->channels = channels;
	s->mean = (float *)(s + 1);
	s->invstd = s->mean + channels;
	return s;
}

/* A per-channel tensor (weight, bias, running stats) must be float32 with one value per
 * channel; any shape with C elements is accepted, as PyTorch does. */
static int check_channel_tensor(const skd_tensor *t, const char *name, const skd_tensor *x)
{
	char s[SKD_SHAPE_STR_LEN], xs[SKD_SHAPE_STR_LEN];
	if (!t)
		return SKD_OK;
	if (t->dtype != SKD_FLOAT32)
		return skd_error("batch_norm: %s must be float32, got %s", name, skd_dtype_name(t->dtype));
	if (skd_tensor_numel(t) != x->shape[1])
		return skd_error("batch_norm: %s expects %lld elements (one per channel of input %s), "
				 "got shape %s", name, (long long)x->shape[1],
				 skd_shape_str(x, xs, sizeof xs), skd_shape_str(t, s, sizeof s));
	return SKD_OK;
}

/* Element k (flat, row-major) of a tensor of any strides: running stats may be views. */
static float *flat_at(const skd_tensor *t, int64_t k)
{
	int64_t off = 0;
	for (int d = t->ndim - 1; d >= 0; d--) {
		off += (k % t->shape[d]) * t->stride[d];
		k /= t->shape[d];
	}
	return skd_tensor_f32(t) + off;
}

/* x viewed as (N, C, S): channel c's values are the N runs x[(n·C + c)·S .. +S). */
static void channel_geometry(const skd_tensor *x, int64_t *n, int64_t *c, int64_t *s)
{
	*n = x->shape[0];
	*c = x->shape[1];
	*s = 1;
	for (int i = 2; i < x->ndim; i++)
		*s *= x->shape[i];
}

/* The channel sums below accumulate in double over SUM_LANES interleaved lanes, added up in
 * a fixed order at the end: a single accumulator is a chain of dependent additions (one
 * element per add latency), while lanes vectorise; the order, and so every bit, is the same
 * on every run and at every thread count. */
#define SUM_LANES 8

static double lanes_total(const double *acc)
{
	double t = 0;
	for (int l = 0; l < SUM_LANES; l++)
		t += acc[l];
	return t;
}

/* acc[l] += Σ (p[i] − m) (square: its square) over i ≡ l mod SUM_LANES */
static void add_lanes(double *acc, const float *p, int64_t len, double m, bool square)
{
	int64_t body = len - len % SUM_LANES, i = 0;
	if (square) {
		for (; i < body; i += SUM_LANES)
			for (int l = 0; l < SUM_LANES; l++) {
				double d = p[i + l] - m;
				acc[l] += d * d;
			}
	} else {
		for (; i < body; i += SUM_LANES)
			for (int l = 0; l < SUM_LANES; l++)
				acc[l] += p[i + l];
	}
	for (; i < len; i++) {
		double d = p[i] - m;
		acc[i - body] += square ? d * d : p[i];
	}
}

/* Batch mean and biased variance of each channel (two passes, double accumulation). */
static void batch_moments(const float *xp, int64_t n, int64_t c, int64_t s, double *mean,
			  double *var)
{
#pragma omp parallel for schedule(static) if (n * c * s > SKD_PARALLEL_GRAIN)
	for (int64_t ch = 0; ch < c; ch++) {
		double acc[SUM_LANES] = {0}, acc2[SUM_LANES] = {0};
		for (int64_t b = 0; b < n; b++)
			add_lanes(acc, xp + (b * c + ch) * s, s, 0.0, false);
		double m = lanes_total(acc) / (double)(n * s);
		for (int64_t b = 0; b < n; b++)
			add_lanes(acc2, xp + (b * c + ch) * s, s, m, true);
		mean[ch] = m;
		var[ch] = lanes_total(acc2) / (double)(n * s);
	}
}

/* ---------- backward ---------- */

/* With g the output gradient, xhat = (x − μ)·invstd, M = N·S values per channel:
 *   dβ = Σ g,   dγ = Σ g·xhat,
 *   dx = γ·invstd·(g − Σg/M − xhat·Σ(g·xhat)/M)   in training (μ, σ² depend on x),
 *   dx = γ·invstd·g                                 in eval. */
static int batch_norm_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	const skd_tensor *x = node->saved[0], *w = node->saved[1];
	const bn_stats *st = node->ctx;
	bool training = node->iarg[0] != 0;
	int64_t n, c, s;
	channel_geometry(x, &n, &c, &s);
	double *sums = malloc(2 * (size_t)c * sizeof *sums);
	if (!sums)
		return skd_error("batch_norm: out of memory in backward");
	double *sum_g = sums, *sum_gxc = sums + c; /* Σ g and Σ g·(x − μ) */
	const float *xp = skd_tensor_f32(x), *gp = skd_tensor_f32(g);
	const float *wp = w ? skd_tensor_f32(w) : NULL;
#pragma omp parallel for schedule(static) if (n * c * s > SKD_PARALLEL_GRAIN)
	for (int64_t ch = 0; ch < c; ch++) {
		double a[SUM_LANES] = {0}, b2[SUM_LANES] = {0}; /* lanes: see add_lanes */
		float m = st->mean[ch];
		for (int64_t b = 0; b < n; b++) {
			const float *px = xp + (b * c + ch) * s, *pg = gp + (b * c + ch) * s;
			int64_t body = s - s % SUM_LANES, i = 0;
			for (; i < body; i += SUM_LANES)
				for (int l = 0; l < SUM_LANES; l++) {
					a[l] += pg[i + l];
					b2[l] += (double)pg[i + l] * (px[i + l] - m);
				}
			for (; i < s; i++) {
				a[i - body] += pg[i];
				b2[i - body] += (double)pg[i] * (px[i] - m);
			}
		}
		sum_g[ch] = lanes_total(a);
		sum_gxc[ch] = lanes_total(b2);
	}
	int rc = SKD_OK;
	if (skd_node_needs_grad(node, 0)) {
		skd_tensor *gx = skd_grad_buffer(g, x->ndim, x->shape); /* may be g: read first */
		if (gx) {
			float *gxp = skd_tensor_f32(gx);
			double count = (double)(n * s);
#pragma omp parallel for schedule(static) if (n * c * s > SKD_PARALLEL_GRAIN)
			for (int64_t plane = 0; plane < n * c; plane++) {
				int64_t ch = plane % c;
				float inv = st->invstd[ch], m = st->mean[ch];
				float scale = inv * (wp ? wp[ch] : 1.0f);
				const float *px = xp + plane * s, *pg = gp + plane * s;
				float *o = gxp + plane * s;
				if (training) {
					float mean_g = (float)(sum_g[ch] / count);
					float proj = (float)(sum_gxc[ch] / count) * inv * inv;
#pragma omp simd
					for (int64_t i = 0; i < s; i++)
						o[i] = (pg[i] - mean_g - (px[i] - m) * proj) * scale;
				} else {
#pragma omp simd
					for (int64_t i = 0; i < s; i++)
						o[i] = pg[i] * scale;
				}
			}
		}
		gin[0] = gx;
		if (!gx)
			rc = SKD_ERR;
	}
	for (int k = 1; k <= 2 && rc == SKD_OK; k++) {
		if (!skd_node_needs_grad(node, k))
			continue;
		gin[k] = skd_tensor_empty(SKD_FLOAT32, node->inputs[k].ndim, node->inputs[k].shape);
		if (!gin[k]) {
			rc = SKD_ERR;
			break;
		}
		float *p = skd_tensor_f32(gin[k]);
		for (int64_t ch = 0; ch < c; ch++)
			p[ch] = k == 1 ? (float)(sum_gxc[ch] * st->invstd[ch]) : (float)sum_g[ch];
	}
	free(sums);
	return rc;
}

/* ---------- forward ---------- */

/* Validates the arguments; on success *xc is x made contiguous (new reference). */
static int check_args(skd_tensor *x, skd_tensor *weight, skd_tensor *bias, skd_tensor *rm,
		      skd_tensor *rv, bool training, skd_tensor **xc)
{
	char s[SKD_SHAPE_STR_LEN];
	if (!x)
		return skd_error("batch_norm: expects a tensor, got nothing");
	if (x->dtype != SKD_FLOAT32)
		return skd_error("batch_norm: expects a float32 input, got %s (convert with :float())",
				 skd_dtype_name(x->dtype));
	if (x->ndim < 2)
		return skd_error("batch_norm: expects an input of at least 2 dims (N,C,...), got %s",
				 skd_shape_str(x, s, sizeof s));
	if (check_channel_tensor(weight, "weight", x) || check_channel_tensor(bias, "bias", x) ||
	    check_channel_tensor(rm, "running_mean", x) || check_channel_tensor(rv, "running_var", x))
		return SKD_ERR;
	if (!rm != !rv)
		return skd_error("batch_norm: running_mean and running_var must be given together");
	int64_t n, c, sp;
	channel_geometry(x, &n, &c, &sp);
	if (training && n * sp <= 1)
		return skd_error("batch_norm: expected more than 1 value per channel when training, "
				 "got input %s", skd_shape_str(x, s, sizeof s));
	if (!training && !rm)
		return skd_error("batch_norm: eval mode needs running_mean and running_var");
	*xc = skd_tensor_contiguous_nograd(x);
	return *xc ? SKD_OK : SKD_ERR;
}

skd_tensor *skd_batch_norm(skd_tensor *x_in, skd_tensor *weight, skd_tensor *bias,
			   skd_tensor *running_mean, skd_tensor *running_var, bool training,
			   double momentum, double eps)
{
	skd_tensor *x = NULL;
	if (check_args(x_in, weight, bias, running_mean, running_var, training, &x))
		return NULL;
	int64_t n, c, s;
	channel_geometry(x, &n, &c, &s);
	skd_tensor *w = weight ? skd_tensor_contiguous_nograd(weight) : NULL;
	skd_tensor *b = bias ? skd_tensor_contiguous_nograd(bias) : NULL;
	bn_stats *st = stats_alloc(c);
	double *moments = malloc(2 * (size_t)(c ? c : 1) * sizeof *moments);
	skd_tensor *out = skd_tensor_empty(SKD_FLOAT32, x->ndim, x->shape);
	if ((weight && !w) || (bias && !b) || !st || !moments || !out) {
		if (!moments)
			skd_error("batch_norm: out of memory");
		skd_tensor_release(out);
		out = NULL;
		goto done;
	}
	const float *xp = skd_tensor_f32(x);
	double *mean = moments, *var = moments + c;
	if (training) {
		batch_moments(xp, n, c, s, mean, var);
		if (running_mean) {
			double unbias = (double)(n * s) / (double)(n * s - 1);
			for (int64_t ch = 0; ch < c; ch++) {
				float *rm = flat_at(running_mean, ch), *rv = flat_at(running_var, ch);
				*rm = (float)(momentum * mean[ch] + (1.0 - momentum) * *rm);
				*rv = (float)(momentum * var[ch] * unbias + (1.0 - momentum) * *rv);
			}
		}
	} else {
		for (int64_t ch = 0; ch < c; ch++) {
			mean[ch] = *flat_at(running_mean, ch);
			var[ch] = *flat_at(running_var, ch);
		}
	}
	for (int64_t ch = 0; ch < c; ch++) {
		st->mean[ch] = (float)mean[ch];
		st->invstd[ch] = (float)(1.0 / sqrt(var[ch] + eps));
	}
	/* y = x·α + β' with α = invstd·γ, β' = β − μ·α: one multiply-add per element */
	float *yp = skd_tensor_f32(out);
	const float *wp = w ? skd_tensor_f32(w) : NULL, *bp = b ? skd_tensor_f32(b) : NULL;
#pragma omp parallel for schedule(static) if (n * c * s > SKD_PARALLEL_GRAIN)
	for (int64_t plane = 0; plane < n * c; plane++) {
		int64_t ch = plane % c;
		float alpha = st->invstd[ch] * (wp ? wp[ch] : 1.0f);
		float beta = (bp ? bp[ch] : 0.0f) - st->mean[ch] * alpha;
		const float *px = xp + plane * s;
		float *py = yp + plane * s;
		for (int64_t i = 0; i < s; i++)
			py[i] = px[i] * alpha + beta;
	}
	skd_node *node = skd_autograd_record(out, "batch_norm", batch_norm_backward, 3,
					     (skd_tensor *[]){x_in, weight, bias});
	if (node) {
		skd_node_save(node, x);
		skd_node_save(node, w);
		node->iarg[0] = training;
		node->ctx = st;
		st = NULL;
	}
done:
	free(st);
	free(moments);
	skd_tensor_release(x);
	skd_tensor_release(w);
	skd_tensor_release(b);
	return out;
}

int skd_channel_affine_(skd_tensor *x, skd_tensor *scale, skd_tensor *shift,
			skd_tensor *residual, bool relu)
{
	char s[SKD_SHAPE_STR_LEN], r[SKD_SHAPE_STR_LEN];
	if (!x || !scale || !shift)
		return skd_error("channel_affine_: expects a tensor, a scale and a shift");
	if (x->dtype != SKD_FLOAT32 || x->ndim < 2 || !skd_tensor_is_contiguous(x))
		return skd_error("channel_affine_: expects a contiguous float32 tensor (N,C,...), got "
				 "%s %s", skd_dtype_name(x->dtype), skd_shape_str(x, s, sizeof s));
	if (x->requires_grad && skd_grad_enabled())
		return skd_error("channel_affine_: works in place, so not on a tensor that requires "
				 "grad (use batch_norm)");
	if (check_channel_tensor(scale, "scale", x) || check_channel_tensor(shift, "shift", x))
		return SKD_ERR;
	if (residual && (residual->dtype != SKD_FLOAT32 || !skd_tensor_is_contiguous(residual) ||
			 !skd_tensor_same_shape(residual, x)))
		return skd_error("channel_affine_: expects a residual of the tensor's shape %s, "
				 "contiguous float32, got %s %s%s", skd_shape_str(x, s, sizeof s),
				 skd_dtype_name(residual->dtype), skd_shape_str(residual, r, sizeof r),
				 skd_tensor_is_contiguous(residual) ? "" : " (not contiguous)");
	if (residual && residual->storage == x->storage &&
	    skd_tensor_f32(residual) != skd_tensor_f32(x))
		return skd_error("channel_affine_: expects a residual that is the tensor itself or "
				 "apart from it, got one that shares its storage at another offset");
	if (residual && residual->requires_grad && skd_grad_enabled())
		return skd_error("channel_affine_: records no gradient, so not with a residual that "
				 "requires grad");
	int64_t n, c, sp;
	channel_geometry(x, &n, &c, &sp);
	skd_tensor_written(x);
	float *xp = skd_tensor_f32(x);
	const float *rp = residual ? skd_tensor_f32(residual) : NULL;
	/* one pass for what a frozen ResNet block does after its convolution: folded BatchNorm,
	 * the identity added, ReLU (each was a pass, and a parallel region, of its own) */
#pragma omp parallel for schedule(static) if (n * c * sp > SKD_PARALLEL_GRAIN)
	for (int64_t plane = 0; plane < n * c; plane++) {
		int64_t ch = plane % c;
		float a = *flat_at(scale, ch), b = *flat_at(shift, ch);
		float *p = xp + plane * sp;
		const float *q = rp ? rp + plane * sp : NULL;
		skd_affine_row(p, q, sp, a, b, relu);
	}
	return SKD_OK;
}
