/* affine_row.h — p[i] = p[i]·a + b (+ q[i]) (then ReLU) along one row: what a frozen ResNet
 * does after a convolution (folded BatchNorm, residual, ReLU), shared by batchnorm.c's
 * skd_channel_affine_ (a plane at a time) and conv2d_pointwise.c (a block of the product at a
 * time, while it is in cache). One loop per case: a single loop testing for the residual
 * inside was compiled to masked loads from the null pointer, each a microcode assist, and ran
 * 4x slower than the whole convolution. Internal to core/. */
#ifndef SKD_AFFINE_ROW_H
#define SKD_AFFINE_ROW_H

#include <stdbool.h>
#include <stdint.h>

static inline void skd_affine_row(float *p, const float *q, int64_t n, float a, float b,
				  bool relu)
{
	if (q && relu)
		for (int64_t i = 0; i < n; i++) {
			float v = p[i] * a + b + q[i];
			p[i] = v > 0.0f ? v : 0.0f;
		}
	else if (q)
		for (int64_t i = 0; i < n; i++)
			p[i] = p[i] * a + b + q[i];
	else if (relu)
		for (int64_t i = 0; i < n; i++) {
			float v = p[i] * a + b;
			p[i] = v > 0.0f ? v : 0.0f;
		}
	else
		for (int64_t i = 0; i < n; i++)
			p[i] = p[i] * a + b;
}

#endif
