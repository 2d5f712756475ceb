/* softmax.c — softmax and log_softmax. STUB: not implemented yet. */
#include "ops.h"

skd_tensor *skd_softmax(skd_tensor *x, int dim)
{
	(void)x;
	(void)dim;
	return skd_error_null("softmax: not implemented yet");
}

skd_tensor *skd_log_softmax(skd_tensor *x, int dim)
{
	(void)x;
	(void)dim;
	return skd_error_null("log_softmax: not implemented yet");
}

