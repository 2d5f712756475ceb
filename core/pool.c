/* pool.c — max, average and adaptive average pooling. STUB: not implemented yet. */
#include "ops.h"

skd_tensor *skd_max_pool2d(skd_tensor *x, const skd_pool2d_params *p)
{
	(void)x;
	(void)p;
	return skd_error_null("max_pool2d: not implemented yet");
}

skd_tensor *skd_avg_pool2d(skd_tensor *x, const skd_pool2d_params *p)
{
	(void)x;
	(void)p;
	return skd_error_null("avg_pool2d: not implemented yet");
}

skd_tensor *skd_adaptive_avg_pool2d(skd_tensor *x, int64_t out_h, int64_t out_w)
{
	(void)x;
	(void)out_h;
	(void)out_w;
	return skd_error_null("adaptive_avg_pool2d: not implemented yet");
}

