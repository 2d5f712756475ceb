/* interpolate.c — bilinear and nearest resizing. STUB: not implemented yet. */
#include "ops.h"

skd_tensor *skd_interpolate(skd_tensor *x, int64_t out_h, int64_t out_w, skd_interp_mode mode,
			    bool align_corners)
{
	(void)x;
	(void)out_h;
	(void)out_w;
	(void)mode;
	(void)align_corners;
	return skd_error_null("interpolate: not implemented yet");
}

