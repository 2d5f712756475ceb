/* batchnorm.c — batch normalisation. STUB: not implemented yet. */
#include "ops.h"

skd_tensor *skd_batch_norm(skd_tensor *x, skd_tensor *weight, skd_tensor *bias,
			   skd_tensor *running_mean, skd_tensor *running_var, bool training,
			   double momentum, double eps)
{
	(void)x;
	(void)weight;
	(void)bias;
	(void)running_mean;
	(void)running_var;
	(void)training;
	(void)momentum;
	(void)eps;
	return skd_error_null("batch_norm: not implemented yet");
}

