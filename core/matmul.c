/* matmul.c — matmul and batched matmul on BLIS sgemm. STUB: not implemented yet. */
#include "ops.h"

skd_tensor *skd_matmul(skd_tensor *a, skd_tensor *b)
{
	(void)a;
	(void)b;
	return skd_error_null("matmul: not implemented yet");
}

void skd_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
	       const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
	       int64_t ldc)
{
	(void)trans_a; (void)trans_b; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda;
	(void)b; (void)ldb; (void)beta; (void)c; (void)ldc;
}
