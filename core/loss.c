/* loss.c — cross-entropy with an ignored label. STUB: not implemented yet. */
#include "ops.h"

skd_tensor *skd_cross_entropy(skd_tensor *logits, skd_tensor *target, int ignore_index,
			      skd_reduction reduction)
{
	(void)logits;
	(void)target;
	(void)ignore_index;
	(void)reduction;
	return skd_error_null("cross_entropy: not implemented yet");
}

