/* vmath.h — expf and logf in loops that vectorise. Declared `omp declare simd`, a loop calling
 * them compiles to calls of glibc's vector variants (libmvec: _ZGVdN8v_expf for 8 lanes of
 * AVX2, ≤ 1 ulp like the scalar ones) instead of one scalar call per element: the softmax and
 * cross-entropy loops over a segmentation's pixels spent more time in expf than in their own
 * arithmetic. The scalar expf still computes a loop's leftover elements, so a value's last bit
 * may depend on its position; for a given shape every run computes the same bits. Internal to
 * core/; link with -lmvec. */
#ifndef SKD_VMATH_H
#define SKD_VMATH_H

#include <math.h>

#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern float logf(float);

#endif
