/* matmul.c — matrix products on BLIS: skd_sgemm (the engine's one way to call GEMM) and
 * skd_matmul with PyTorch's batching rules, forward beside backward.
 *
 * An operand is read where it lies whenever one of its two matrix dims has unit stride: a
 * transposed view becomes a transposition flag, an expanded batch dim a zero batch stride.
 * Only other layouts are copied. A batch that a 2-d operand is broadcast over folds into a
 * single GEMM (the (..., M, K) x (K, N) case of linear layers and 1x1 convolutions).
 */
#include <blis.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include "ops.h"
#include "parallel.h"

/* ---------- GEMM ---------- */

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* One BLIS call on row-major operands. */
static void sgemm_blis(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
		       const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
		       float *c, int64_t ldc)
{
	/* row-major storage: op(A)(i,p) = a[i*lda + p], or a[p*lda + i] when transposed */
	inc_t rsa = trans_a ? 1 : lda, csa = trans_a ? lda : 1;
	inc_t rsb = trans_b ? 1 : ldb, csb = trans_b ? ldb : 1;
	bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &alpha, (float *)a, rsa, csa,
		  (float *)b, rsb, csb, &beta, c, ldc, 1);
}

/* A product with one column (or one row) of C as a matrix-vector product: BLIS's GEMM packs
 * the whole matrix for a single column and ran a spectral norm's power iteration (512 x 4096
 * times a vector) at 0.8 GFLOP/s; its gemv reads the matrix once. */
static void sgemv_blis(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
		       const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
		       float *c, int64_t ldc)
{
	inc_t rsa = trans_a ? 1 : lda, csa = trans_a ? lda : 1;
	inc_t rsb = trans_b ? 1 : ldb, csb = trans_b ? ldb : 1;
	if (n == 1) /* c[i·ldc] = Σ_p op(A)(i,p) · op(B)(p,0) */
		bli_sgemv(BLIS_NO_TRANSPOSE, BLIS_NO_CONJUGATE, m, k, &alpha, (float *)a, rsa, csa,
			  (float *)b, rsb, &beta, c, ldc);
	else /* m == 1: c[j] = Σ_p op(B)(p,j) · op(A)(0,p) */
		bli_sgemv(BLIS_NO_TRANSPOSE, BLIS_NO_CONJUGATE, n, k, &alpha, (float *)b, csb, rsb,
			  (float *)a, csa, &beta, c, 1);
}

/* Below this many multiply-adds a product runs on one thread: forking costs more. */
#define SGEMM_SPLIT_MACS ((int64_t)1 << 22)

void skd_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
	       const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
	       int64_t ldc)
{
	if (m <= 0 || n <= 0)
		return;
	if (k <= 0) { /* an empty sum: C = beta C, and beta = 0 must not read C */
		for (int64_t i = 0; i < m; i++)
			for (int64_t j = 0; j < n; j++)
				c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
		return;
	}
	int nt = skd_threads_get(); /* BLIS's thread count is set on first use of the setting */
	/* BLIS rejects zero strides and strides shorter than a row even where a matrix has a
	 * single row or column and the stride is never followed; make them harmless. */
	int64_t ar = trans_a ? k : m, ac = trans_a ? m : k;
	int64_t br = trans_b ? n : k, bc = trans_b ? k : n;
	if (ar == 1)
		lda = max64(ac, 1);
	if (br == 1)
		ldb = max64(bc, 1);
	if (m == 1)
		ldc = max64(n, 1);
	if (n == 1 || m == 1) {
		sgemv_blis(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
		return;
	}
	/* BLIS runs single-threaded (parallel.h), so a lone product, outside the engine's own
	 * parallel loops, is split into one slab of C per thread: columns where C is wide, rows
	 * where it is tall. Every element is still one BLIS sum over the whole of k, in the same
	 * order, so the result does not depend on the split. */
	if (nt > 1 && skd_blis_threads_get() == 1 && !omp_in_parallel() &&
	    m * n * k >= SGEMM_SPLIT_MACS && (n >= 64 * nt || m >= 64 * nt)) {
		bool by_cols = n >= m || m < 64 * nt;
		int64_t len = by_cols ? n : m;
		int64_t part = (len + nt - 1) / nt;
		part = (part + 15) / 16 * 16; /* whole micro-tiles in every slab but the last */
#pragma omp parallel for schedule(static) num_threads(nt)
		for (int t = 0; t < nt; t++) {
			int64_t s0 = t * part, s1 = s0 + part < len ? s0 + part : len;
			if (s0 >= s1)
				continue;
			if (by_cols)
				sgemm_blis(trans_a, trans_b, m, s1 - s0, k, alpha, a, lda,
					   trans_b ? b + s0 * ldb : b + s0, ldb, beta, c + s0, ldc);
			else
				sgemm_blis(trans_a, trans_b, s1 - s0, n, k, alpha,
					   trans_a ? a + s0 : a + s0 * lda, lda, b, ldb, beta,
					   c + s0 * ldc, ldc);
		}
		return;
	}
	sgemm_blis(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ---------- operands as batched matrix views ---------- */

/* One operand over the broadcast batch: element (batch i, row r, col c) lives at
 * p + sum_d i_d * bstride[d] + r * rs + c * cs, with rs == 1 or cs == 1. */
typedef struct mat_view {
	const float *p;
	int64_t rows, cols, rs, cs;
	int64_t bstride[SKD_MAX_DIMS];
} mat_view;

typedef struct batch_shape {
	int nd;
	int64_t shape[SKD_MAX_DIMS];
	int64_t count;
} batch_shape;

static mat_view transposed(mat_view v)
{
	mat_view t = v;
	t.rows = v.cols;
	t.cols = v.rows;
	t.rs = v.cs;
	t.cs = v.rs;
	return t;
}

/* Batch strides of t (whose last two dims are the matrix) read over batch shape bs: zero
 * along dims t lacks or broadcasts. Also right for a gradient buffer of t's shape, where a
 * zero stride marks a dim the backward sums over. */
static void batch_strides(const skd_tensor *t, const batch_shape *bs, int64_t *st)
{
	for (int i = 0; i < bs->nd; i++) {
		int it = t->ndim - 2 - bs->nd + i;
		st[i] = (it >= 0 && t->shape[it] == bs->shape[i] && bs->shape[i] != 1) ? t->stride[it]
										       : 0;
	}
}

/* Fills v for t if its matrix dims allow a flag instead of a copy; false otherwise. */
static bool view_in_place(const skd_tensor *t, const batch_shape *bs, mat_view *v)
{
	int64_t rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
	int64_t sr = t->stride[t->ndim - 2], sc = t->stride[t->ndim - 1];
	v->p = skd_tensor_f32(t);
	v->rows = rows;
	v->cols = cols;
	if (rows == 0 || cols == 0) { /* nothing is read: any valid strides do */
		v->cs = 1;
		v->rs = max64(cols, 1);
	} else if ((sc == 1 || cols == 1) && (rows == 1 || sr >= max64(cols, 1))) {
		v->cs = 1;
		v->rs = rows == 1 ? max64(cols, 1) : sr;
	} else if ((sr == 1 || rows == 1) && (cols == 1 || sc >= max64(rows, 1))) {
		v->rs = 1;
		v->cs = cols == 1 ? max64(rows, 1) : sc;
	} else {
		return false;
	}
	batch_strides(t, bs, v->bstride);
	return true;
}

/* The view of t, with *hold the tensor it reads (t retained, or a contiguous copy). */
static int make_view(skd_tensor *t, const batch_shape *bs, mat_view *v, skd_tensor **hold)
{
	if (view_in_place(t, bs, v)) {
		*hold = skd_tensor_retain(t);
		return SKD_OK;
	}
	skd_tensor *c = skd_tensor_contiguous_nograd(t);
	if (!c)
		return SKD_ERR;
	if (!skd_tensor_is_contiguous(c) || !view_in_place(c, bs, v)) { /* cannot happen */
		skd_tensor_release(c);
		return skd_error("matmul: internal error: no matrix view of a contiguous tensor");
	}
	*hold = c;
	return SKD_OK;
}

static void sgemm_view(int64_t m, int64_t n, int64_t k, const float *a, const mat_view *va,
		       const float *b, const mat_view *vb, float beta, float *c, int64_t ldc)
{
	bool ta = va->cs != 1, tb = vb->cs != 1;
	skd_sgemm(ta, tb, m, n, k, 1.0f, a, ta ? va->cs : va->rs, b, tb ? vb->cs : vb->rs, beta, c,
		  ldc);
}

/* Whether the batch dims (those of size > 1) step through memory as if the matrix's rows
 * (stride rs, `rows` of them) simply continued: then batch and rows are one dimension. */
static bool batch_continues(const batch_shape *bs, const int64_t *bstride, int64_t rows,
			    int64_t rs)
{
	int64_t expect = rows * rs;
	for (int d = bs->nd - 1; d >= 0; d--) {
		if (bs->shape[d] == 1)
			continue;
		if (bstride[d] != expect)
			return false;
		expect *= bs->shape[d];
	}
	return true;
}

static bool batch_all_zero(const batch_shape *bs, const int64_t *bstride)
{
	for (int d = 0; d < bs->nd; d++)
		if (bs->shape[d] != 1 && bstride[d] != 0)
			return false;
	return true;
}

/* C[i] (+)= A[i] B[i] over the batch: c is a row-major (rows of ldc) result whose batch
 * stride is 0 along dims it is summed over. Each C block is overwritten at its first visit
 * and accumulated into afterwards, in a fixed order (deterministic). */
static void gemm_batched(const batch_shape *bs, const mat_view *a, const mat_view *b, float *c,
			 int64_t ldc, const int64_t *cstride)
{
	int64_t m = a->rows, k = a->cols, n = b->cols;
	if (bs->count == 0)
		return;
	/* (batch, M) folds into one row dimension when B is shared by the whole batch */
	if (bs->count > 1 && batch_all_zero(bs, b->bstride) && a->cs == 1 &&
	    batch_continues(bs, a->bstride, m, a->rs) && batch_continues(bs, cstride, m, ldc)) {
		mat_view fa = *a;
		fa.rows = m * bs->count;
		sgemm_view(fa.rows, n, k, a->p, &fa, b->p, b, 0.0f, c, ldc);
		return;
	}
	/* (batch, K) folds into one inner dimension when C is summed over the whole batch */
	if (bs->count > 1 && batch_all_zero(bs, cstride) && a->rs == 1 && b->cs == 1 &&
	    batch_continues(bs, a->bstride, k, a->cs) && batch_continues(bs, b->bstride, k, b->rs)) {
		sgemm_view(m, n, k * bs->count, a->p, a, b->p, b, 0.0f, c, ldc);
		return;
	}
	int64_t idx[SKD_MAX_DIMS] = {0};
	for (int64_t t = 0; t < bs->count; t++) {
		int64_t oa = 0, ob = 0, oc = 0;
		bool first = true;
		for (int d = 0; d < bs->nd; d++) {
			oa += idx[d] * a->bstride[d];
			ob += idx[d] * b->bstride[d];
			oc += idx[d] * cstride[d];
			if (cstride[d] == 0 && idx[d] != 0)
				first = false;
		}
		sgemm_view(m, n, k, a->p + oa, a, b->p + ob, b, first ? 0.0f : 1.0f, c + oc, ldc);
		for (int d = bs->nd - 1; d >= 0; d--) {
			if (++idx[d] < bs->shape[d])
				break;
			idx[d] = 0;
		}
	}
}

/* ---------- matmul ---------- */

static int matmul_error(const char *what, const skd_tensor *a, const skd_tensor *b)
{
	char x[SKD_SHAPE_STR_LEN], y[SKD_SHAPE_STR_LEN];
	return skd_error("matmul: %s (%s @ %s)", what, skd_shape_str(a, x, sizeof x),
			 skd_shape_str(b, y, sizeof y));
}

/* The broadcast batch of a (..., M, K) and b (..., K, N), both with at least two dims. */
static int broadcast_batch(const skd_tensor *a, const skd_tensor *b, batch_shape *bs)
{
	int na = a->ndim - 2, nb = b->ndim - 2;
	bs->nd = na > nb ? na : nb;
	bs->count = 1;
	for (int i = 0; i < bs->nd; i++) {
		int ia = na - bs->nd + i, ib = nb - bs->nd + i;
		int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
		if (sa != sb && sa != 1 && sb != 1)
			return matmul_error("batch dimensions cannot be broadcast", a, b);
		bs->shape[i] = sa == 1 ? sb : sa;
		bs->count *= bs->shape[i];
	}
	return SKD_OK;
}

static void contiguous_strides(int ndim, const int64_t *shape, int64_t *stride)
{
	int64_t s = 1;
	for (int i = ndim - 1; i >= 0; i--) {
		stride[i] = s;
		s *= shape[i];
	}
}

/* dA = dC B^T and dB = A^T dC, each summed over the batch dims its operand was broadcast
 * along (its gradient buffer has zero batch strides there). */
static int matmul_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	skd_tensor *a = node->saved[0], *b = node->saved[1];
	batch_shape bs;
	if (broadcast_batch(a, b, &bs))
		return SKD_ERR;
	mat_view va, vb, vg;
	skd_tensor *ha = NULL, *hb = NULL;
	int rc = SKD_ERR;
	if (make_view(a, &bs, &va, &ha) || make_view(b, &bs, &vb, &hb))
		goto done;
	vg.p = skd_tensor_f32(g);
	vg.rows = va.rows;
	vg.cols = vb.cols;
	vg.rs = vg.cols;
	vg.cs = 1;
	{
		int64_t full[SKD_MAX_DIMS];
		contiguous_strides(g->ndim, g->shape, full);
		for (int d = 0; d < bs.nd; d++)
			vg.bstride[d] = bs.shape[d] == 1 ? 0 : full[d];
	}
	for (int i = 0; i < 2; i++) {
		if (!skd_node_needs_grad(node, i))
			continue;
		skd_tensor *src = i == 0 ? a : b;
		skd_tensor *gi = skd_tensor_empty(SKD_FLOAT32, src->ndim, src->shape);
		if (!gi)
			goto done;
		int64_t cstride[SKD_MAX_DIMS];
		batch_strides(gi, &bs, cstride);
		mat_view lhs = i == 0 ? vg : transposed(va), rhs = i == 0 ? transposed(vb) : vg;
		gemm_batched(&bs, &lhs, &rhs, skd_tensor_f32(gi), gi->shape[gi->ndim - 1], cstride);
		if (bs.count == 0) /* nothing was multiplied: the gradient is zero */
			skd_tensor_fill_(gi, 0.0);
		gin[i] = gi;
	}
	rc = SKD_OK;
done:
	skd_tensor_release(ha);
	skd_tensor_release(hb);
	return rc;
}

/* Both operands with at least two dims. */
static skd_tensor *matmul_nd(skd_tensor *a, skd_tensor *b)
{
	batch_shape bs;
	if (broadcast_batch(a, b, &bs))
		return NULL;
	int64_t m = a->shape[a->ndim - 2], n = b->shape[b->ndim - 1];
	int64_t shape[SKD_MAX_DIMS];
	memcpy(shape, bs.shape, sizeof(int64_t) * bs.nd);
	shape[bs.nd] = m;
	shape[bs.nd + 1] = n;
	skd_tensor *out = skd_tensor_empty(SKD_FLOAT32, bs.nd + 2, shape);
	if (!out)
		return NULL;
	mat_view va, vb;
	skd_tensor *ha = NULL, *hb = NULL;
	if (make_view(a, &bs, &va, &ha) || make_view(b, &bs, &vb, &hb)) {
		skd_tensor_release(ha);
		skd_tensor_release(out);
		return NULL;
	}
	int64_t cstride[SKD_MAX_DIMS];
	contiguous_strides(bs.nd, bs.shape, cstride);
	for (int d = 0; d < bs.nd; d++)
		cstride[d] = bs.shape[d] == 1 ? 0 : cstride[d] * m * n;
	gemm_batched(&bs, &va, &vb, skd_tensor_f32(out), n, cstride);
	skd_tensor_release(ha);
	skd_tensor_release(hb);
	skd_node *node = skd_autograd_record(out, "matmul", matmul_backward, 2,
					     (skd_tensor *[]){a, b});
	if (node) {
		skd_node_save(node, a);
		skd_node_save(node, b);
	}
	return out;
}

/* A 1-d operand is a row (left) or a column (right) that the result then drops, as in
 * torch.matmul; the unsqueeze/squeeze views carry the autograd. */
skd_tensor *skd_matmul(skd_tensor *a, skd_tensor *b)
{
	if (!a || !b)
		return skd_error_null("matmul: expects two tensors, got nothing");
	if (a->dtype != SKD_FLOAT32 || b->dtype != SKD_FLOAT32) {
		const skd_tensor *bad = a->dtype != SKD_FLOAT32 ? a : b;
		char what[96];
		snprintf(what, sizeof what, "expects float32 tensors, got %s",
			 skd_dtype_name(bad->dtype));
		matmul_error(what, a, b);
		return NULL;
	}
	if (a->ndim < 1 || b->ndim < 1) {
		matmul_error("expects tensors of at least 1 dimension", a, b);
		return NULL;
	}
	int64_t ka = a->shape[a->ndim - 1], kb = b->shape[b->ndim >= 2 ? b->ndim - 2 : 0];
	if (ka != kb) {
		matmul_error("inner dimensions differ", a, b);
		return NULL;
	}
	if (a->ndim >= 2 && b->ndim >= 2)
		return matmul_nd(a, b);
	skd_tensor *a2 = a->ndim == 1 ? skd_unsqueeze(a, 0) : skd_tensor_retain(a);
	skd_tensor *b2 = b->ndim == 1 ? skd_unsqueeze(b, 1) : skd_tensor_retain(b);
	skd_tensor *r = a2 && b2 ? matmul_nd(a2, b2) : NULL;
	skd_tensor_release(a2);
	skd_tensor_release(b2);
	if (r && b->ndim == 1) {
		skd_tensor *s = skd_squeeze(r, r->ndim - 1);
		skd_tensor_release(r);
		r = s;
	}
	if (r && a->ndim == 1) {
		skd_tensor *s = skd_squeeze(r, r->ndim - (b->ndim == 1 ? 1 : 2));
		skd_tensor_release(r);
		r = s;
	}
	return r;
}
