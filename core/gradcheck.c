/* gradcheck.c — finite-difference check of autograd (autograd.h).
 *
 * The scalar L = Σ f(x)·r, with r a fixed random projection, is differentiated twice: by
 * backward, and by central differences (L(x+ε) − L(x−ε)) / 2ε, evaluated in double from the
 * float32 outputs. Every op's test goes through here (style.md, practice 5). */
#include <math.h>
#include <stdlib.h>
#include "ops.h"
#include "rng.h"

static double project(const skd_tensor *out, const float *r)
{
	skd_tensor *c = skd_tensor_contiguous_nograd((skd_tensor *)out);
	if (!c)
		return NAN;
	const float *p = skd_tensor_f32(c);
	double s = 0;
	for (int64_t i = 0, n = skd_tensor_numel(c); i < n; i++)
		s += (double)p[i] * r[i];
	skd_tensor_release(c);
	return s;
}

static int eval_projection(skd_gradcheck_fn f, void *ud, int n, skd_tensor **inputs,
			   const float *r, int64_t numel, double *value)
{
	skd_tensor *out = f(ud, n, inputs);
	if (!out)
		return SKD_ERR;
	if (skd_tensor_numel(out) != numel || out->dtype != SKD_FLOAT32) {
		skd_tensor_release(out);
		return skd_error("gradcheck: the function's output changed shape between calls");
	}
	*value = project(out, r);
	skd_tensor_release(out);
	return SKD_OK;
}

static void unravel(const skd_tensor *t, int64_t flat, int64_t *index)
{
	for (int d = t->ndim - 1; d >= 0; d--) {
		index[d] = flat % t->shape[d];
		flat /= t->shape[d];
	}
}

int skd_gradcheck(skd_gradcheck_fn f, void *ud, int n, skd_tensor **inputs,
		  const skd_gradcheck_opts *opts, skd_gradcheck_result *res)
{
	skd_gradcheck_opts o = {1e-2, 1e-3, 1e-2, 0};
	if (opts) {
		if (opts->eps > 0) o.eps = opts->eps;
		if (opts->atol >= 0) o.atol = opts->atol;
		if (opts->rtol >= 0) o.rtol = opts->rtol;
		o.max_checks = opts->max_checks;
	}
	*res = (skd_gradcheck_result){.ok = true, .worst_input = -1};
	bool prev = skd_set_grad_enabled(true);
	for (int i = 0; i < n; i++)
		if (inputs[i] && inputs[i]->requires_grad) {
			skd_tensor_release(inputs[i]->grad);
			inputs[i]->grad = NULL;
		}
	skd_tensor *out = f(ud, n, inputs);
	if (!out) {
		skd_set_grad_enabled(prev);
		return SKD_ERR;
	}
	if (!out->requires_grad) {
		skd_tensor_release(out);
		skd_set_grad_enabled(prev);
		return skd_error("gradcheck: the output does not require grad (no input with "
				 "requires_grad reaches it)");
	}
	int64_t numel = skd_tensor_numel(out);
	skd_tensor *r = skd_tensor_empty(SKD_FLOAT32, out->ndim, out->shape);
	if (!r) {
		skd_tensor_release(out);
		skd_set_grad_enabled(prev);
		return SKD_ERR;
	}
	skd_rng rng; /* private: the check must not move the global stream */
	skd_rng_seed(&rng, 12345);
	float *rp = skd_tensor_f32(r);
	for (int64_t i = 0; i < numel; i++)
		rp[i] = (float)(skd_rng_next_uniform(&rng) * 2.0 - 1.0);
	int rc = skd_backward(out, r);
	skd_tensor_release(out);
	skd_set_grad_enabled(false);
	for (int i = 0; i < n && rc == SKD_OK; i++) {
		skd_tensor *x = inputs[i];
		if (!x || !x->requires_grad)
			continue;
		int64_t m = skd_tensor_numel(x);
		int64_t step = (o.max_checks > 0 && m > o.max_checks) ? m / o.max_checks : 1;
		for (int64_t k = 0; k < m && rc == SKD_OK; k += step) {
			int64_t idx[SKD_MAX_DIMS];
			unravel(x, k, idx);
			double analytic = x->grad ? skd_tensor_get(x->grad, idx) : 0.0;
			double orig = skd_tensor_get(x, idx), lp, lm;
			skd_tensor_set(x, idx, orig + o.eps);
			rc = eval_projection(f, ud, n, inputs, rp, numel, &lp);
			skd_tensor_set(x, idx, orig - o.eps);
			if (rc == SKD_OK)
				rc = eval_projection(f, ud, n, inputs, rp, numel, &lm);
			skd_tensor_set(x, idx, orig);
			if (rc)
				break;
			double numeric = (lp - lm) / (2.0 * o.eps);
			double err = fabs(analytic - numeric);
			double rel = err / (fabs(numeric) > 1e-12 ? fabs(numeric) : 1e-12);
			bool bad = !(err <= o.atol + o.rtol * fabs(numeric));
			if (err > res->max_abs_err || (bad && res->ok) || isnan(err)) {
				if (bad || res->ok) {
					res->worst_input = i;
					res->worst_index = k;
					res->worst_analytic = analytic;
					res->worst_numeric = numeric;
				}
			}
			if (err > res->max_abs_err || isnan(err))
				res->max_abs_err = err;
			if (rel > res->max_rel_err && err > o.atol)
				res->max_rel_err = rel;
			if (bad)
				res->ok = false;
		}
	}
	skd_tensor_release(r);
	skd_set_grad_enabled(prev);
	return rc;
}
