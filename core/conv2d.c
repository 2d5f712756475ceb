/* conv2d.c — 2-d convolution. STUB: not implemented yet. */
#include "ops.h"

skd_tensor *skd_conv2d(skd_tensor *x, skd_tensor *w, skd_tensor *b, const skd_conv2d_params *p)
{
	(void)x;
	(void)w;
	(void)b;
	(void)p;
	return skd_error_null("conv2d: not implemented yet");
}

