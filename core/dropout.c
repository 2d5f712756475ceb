/* dropout.c — dropout and channel dropout. STUB: not implemented yet. */
#include "ops.h"

skd_tensor *skd_dropout(skd_tensor *x, double p, bool training)
{
	(void)x;
	(void)p;
	(void)training;
	return skd_error_null("dropout: not implemented yet");
}

skd_tensor *skd_dropout2d(skd_tensor *x, double p, bool training)
{
	(void)x;
	(void)p;
	(void)training;
	return skd_error_null("dropout2d: not implemented yet");
}

