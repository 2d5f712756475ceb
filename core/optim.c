/* optim.c — SGD and Adam update kernels (optim.h). */
#include <math.h>
#include "optim.h"
#include "parallel.h"

static int check(const char *op, const skd_tensor *p, const skd_tensor *t, const char *what)
{
	char a[SKD_SHAPE_STR_LEN], b[SKD_SHAPE_STR_LEN];
	if (!t)
		return skd_error("%s: %s is missing", op, what);
	if (t->dtype != SKD_FLOAT32 || !skd_tensor_is_contiguous(t))
		return skd_error("%s: %s must be a contiguous float32 tensor", op, what);
	if (!skd_tensor_same_shape(p, t))
		return skd_error("%s: %s has shape %s, the parameter %s", op, what,
				 skd_shape_str(t, a, sizeof a), skd_shape_str(p, b, sizeof b));
	return SKD_OK;
}

int skd_sgd_step(skd_tensor *param, const skd_tensor *grad, skd_tensor *momentum_buf, double lr,
		 double momentum, double weight_decay, bool nesterov, bool first_step)
{
	if (check("sgd", param, param, "parameter") || check("sgd", param, grad, "gradient") ||
	    (momentum != 0 && check("sgd", param, momentum_buf, "momentum buffer")))
		return SKD_ERR;
	skd_tensor_written(param);
	float *p = skd_tensor_f32(param), *buf = momentum != 0 ? skd_tensor_f32(momentum_buf) : NULL;
	const float *g = skd_tensor_f32(grad);
	const float flr = (float)lr, m = (float)momentum, wd = (float)weight_decay;
	int64_t n = skd_tensor_numel(param);
#pragma omp parallel for schedule(static) if (n > SKD_PARALLEL_GRAIN)
	for (int64_t i = 0; i < n; i++) {
		float d = g[i] + wd * p[i];
		if (buf) {
			buf[i] = first_step ? d : m * buf[i] + d;
			d = nesterov ? d + m * buf[i] : buf[i];
		}
		p[i] -= flr * d;
	}
	return SKD_OK;
}

int skd_adam_step(skd_tensor *param, const skd_tensor *grad, skd_tensor *exp_avg,
		  skd_tensor *exp_avg_sq, double lr, double beta1, double beta2, double eps,
		  double weight_decay, int64_t step)
{
	if (check("adam", param, param, "parameter") || check("adam", param, grad, "gradient") ||
	    check("adam", param, exp_avg, "exp_avg") || check("adam", param, exp_avg_sq, "exp_avg_sq"))
		return SKD_ERR;
	if (step < 1)
		return skd_error("adam: step counts from 1, got %lld", (long long)step);
	skd_tensor_written(param);
	float *p = skd_tensor_f32(param), *m = skd_tensor_f32(exp_avg), *v = skd_tensor_f32(exp_avg_sq);
	const float *g = skd_tensor_f32(grad);
	const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
	const float b1 = (float)beta1, b2 = (float)beta2, wd = (float)weight_decay;
	const float step_size = (float)(lr / bc1), sqrt_bc2 = (float)sqrt(bc2), feps = (float)eps;
	int64_t n = skd_tensor_numel(param);
#pragma omp parallel for schedule(static) if (n > SKD_PARALLEL_GRAIN)
	for (int64_t i = 0; i < n; i++) {
		float d = g[i] + wd * p[i];
		m[i] = b1 * m[i] + (1.0f - b1) * d;
		v[i] = b2 * v[i] + (1.0f - b2) * d * d;
		p[i] -= step_size * m[i] / (sqrtf(v[i]) / sqrt_bc2 + feps);
	}
	return SKD_OK;
}
