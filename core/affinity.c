/* affinity.c — pair-wise distillation kernels (method.md §2): L2 normalisation of graph nodes
 * over channels, the fully connected pair-wise loss through C×C Gram matrices, and the
 * local-range (α) loss over a band of grid neighbours. None of them forms an N×N matrix.
 *
 * Nodes come as (B, C, N): B images, C channels, N = nh·nw nodes in row-major grid order (the
 * pooled feature map with its spatial dimensions flattened). The materialised N×N affinity, for
 * the viewer and the tests, is a plain matmul in lua/skd/losses.lua.
 *
 * Sums that make a loss value accumulate in double, per row into a buffer that is then added
 * in order, so the value does not depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "parallel.h"

/* ---------- shared checks and small kernels ---------- */

/* x must be a 3-d float32 tensor (B, C, N); `who` names it in messages ("student ", "").
 * Returns a contiguous new reference or NULL. */
static skd_tensor *nodes_contiguous(const char *op, const char *who, skd_tensor *x)
{
	char s[SKD_SHAPE_STR_LEN];
	if (!x)
		return skd_error_null("%s: expects %snodes (B x C x N), got nothing", op, who);
	if (x->dtype != SKD_FLOAT32)
		return skd_error_null("%s: expects float32 %snodes, got %s", op, who,
				      skd_dtype_name(x->dtype));
	if (x->ndim != 3)
		return skd_error_null("%s: expects %snodes of 3 dimensions (B x C x N), got %s", op,
				      who, skd_shape_str(x, s, sizeof s));
	return skd_tensor_contiguous_nograd(x);
}

/* Student and teacher nodes must agree on B and N (C may differ: method.md §2). */
static int check_pair(const char *op, const skd_tensor *s, const skd_tensor *t)
{
	if (s->shape[0] != t->shape[0] || s->shape[2] != t->shape[2]) {
		char a[SKD_SHAPE_STR_LEN], b[SKD_SHAPE_STR_LEN];
		return skd_error("%s: student and teacher nodes must agree in batch and node count "
				 "(B x C x N), got student %s and teacher %s", op,
				 skd_shape_str(s, a, sizeof a), skd_shape_str(t, b, sizeof b));
	}
	if (s->shape[2] == 0)
		return skd_error("%s: expects at least one node, got N = 0", op);
	return SKD_OK;
}

/* Eight independent partial sums: deterministic, and the compiler can keep them in one
 * vector register (a single accumulator would serialise on the adds). */
static inline float dot(const float *a, const float *b, int64_t n)
{
	float acc[8] = {0};
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		for (int k = 0; k < 8; k++)
			acc[k] += a[i + k] * b[i + k];
	float s = 0;
	for (; i < n; i++)
		s += a[i] * b[i];
	for (int k = 0; k < 8; k++)
		s += acc[k];
	return s;
}

/* dst (rows x cols) = src (cols x rows)ᵀ, for each of `batch` matrices. */
static void transpose_batched(float *dst, const float *src, int64_t batch, int64_t rows,
			      int64_t cols)
{
#pragma omp parallel for schedule(static) if (batch * rows * cols > SKD_PARALLEL_GRAIN)
	for (int64_t b = 0; b < batch; b++) {
		const float *s = src + b * rows * cols;
		float *d = dst + b * rows * cols;
		for (int64_t c0 = 0; c0 < cols; c0 += 32)
			for (int64_t r = 0; r < rows; r++)
				for (int64_t c = c0; c < cols && c < c0 + 32; c++)
					d[r * cols + c] = s[c * rows + r];
	}
}

static double sum_ordered(const double *part, int64_t n)
{
	double s = 0;
	for (int64_t i = 0; i < n; i++)
		s += part[i];
	return s;
}

/* ---------- L2 normalisation of each node over channels (method.md §2, step 3) ---------- */

/* norm[b*N + n] = ‖x[b, :, n]‖₂. */
static void node_norms(float *norm, const float *x, int64_t B, int64_t C, int64_t N)
{
#pragma omp parallel for schedule(static) if (B * C * N > SKD_PARALLEL_GRAIN)
	for (int64_t b = 0; b < B; b++) {
		float *nb = norm + b * N;
		const float *xb = x + b * C * N;
		for (int64_t n = 0; n < N; n++)
			nb[n] = 0;
		for (int64_t c = 0; c < C; c++) /* rows of N: the inner loop vectorises */
			for (int64_t n = 0; n < N; n++)
				nb[n] += xb[c * N + n] * xb[c * N + n];
		for (int64_t n = 0; n < N; n++)
			nb[n] = sqrtf(nb[n]);
	}
}

/* y = x / (n + eps):  dx = g / (n + eps) − x (xᵀg) / (n (n + eps)²)   (second term dropped with
 * detach_norm, and at n = 0 where x = 0 makes it vanish anyway). */
static int l2_normalize_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	const skd_tensor *x = node->saved[0], *norm = node->saved[1];
	int64_t B = x->shape[0], C = x->shape[1], N = x->shape[2];
	double eps = node->farg[0];
	bool detach_norm = node->iarg[0] != 0;
	skd_tensor *gx = skd_tensor_empty(SKD_FLOAT32, 3, x->shape);
	float *xg = skd_malloc((size_t)(B * N) * sizeof *xg);
	if (!gx || !xg) {
		skd_tensor_release(gx);
		free(xg);
		return SKD_ERR;
	}
	const float *xp = skd_tensor_f32(x), *np = skd_tensor_f32(norm), *gp = skd_tensor_f32(g);
	float *out = skd_tensor_f32(gx);
#pragma omp parallel for schedule(static) if (B * C * N > SKD_PARALLEL_GRAIN)
	for (int64_t b = 0; b < B; b++) {
		const float *xb = xp + b * C * N, *gb = gp + b * C * N, *nb = np + b * N;
		float *ob = out + b * C * N, *xgb = xg + b * N;
		for (int64_t n = 0; n < N; n++)
			xgb[n] = 0;
		if (!detach_norm) {
			for (int64_t c = 0; c < C; c++)
				for (int64_t n = 0; n < N; n++)
					xgb[n] += xb[c * N + n] * gb[c * N + n];
			for (int64_t n = 0; n < N; n++) {
				float d = nb[n] + (float)eps;
				xgb[n] = nb[n] > 0 ? xgb[n] / (nb[n] * d * d) : 0.0f;
			}
		}
		for (int64_t c = 0; c < C; c++)
			for (int64_t n = 0; n < N; n++)
				ob[c * N + n] = gb[c * N + n] / (nb[n] + (float)eps) -
						xb[c * N + n] * xgb[n];
	}
	free(xg);
	gin[0] = gx;
	return SKD_OK;
}

skd_tensor *skd_l2_normalize(skd_tensor *xin, double eps, bool detach_norm)
{
	skd_tensor *x = nodes_contiguous("l2_normalize", "", xin);
	if (!x)
		return NULL;
	int64_t B = x->shape[0], C = x->shape[1], N = x->shape[2];
	skd_tensor *out = skd_tensor_empty(SKD_FLOAT32, 3, x->shape);
	skd_tensor *norm = skd_tensor_empty(SKD_FLOAT32, 2, (int64_t[]){B, N});
	if (!out || !norm) {
		skd_tensor_release(out);
		skd_tensor_release(norm);
		skd_tensor_release(x);
		return NULL;
	}
	const float *xp = skd_tensor_f32(x);
	float *np = skd_tensor_f32(norm), *op = skd_tensor_f32(out);
	node_norms(np, xp, B, C, N);
#pragma omp parallel for schedule(static) if (B * C * N > SKD_PARALLEL_GRAIN)
	for (int64_t b = 0; b < B; b++)
		for (int64_t c = 0; c < C; c++)
			for (int64_t n = 0; n < N; n++)
				op[(b * C + c) * N + n] = xp[(b * C + c) * N + n] / (np[b * N + n] + (float)eps);
	skd_node *node = skd_autograd_record(out, "l2_normalize", l2_normalize_backward, 1, &xin);
	if (node) {
		skd_node_save(node, x);
		skd_node_save(node, norm);
		node->farg[0] = eps;
		node->iarg[0] = detach_norm;
	}
	skd_tensor_release(norm);
	skd_tensor_release(x);
	return out;
}

/* ---------- fully connected pair-wise loss through Gram matrices (method.md §2, step 6) ----
 *
 * Per image, with S (Cs×N) and T (Ct×N) the normalised nodes:
 *     Σ_ij (sᵢᵀsⱼ − tᵢᵀtⱼ)² = ‖S Sᵀ‖²_F − 2‖S Tᵀ‖²_F + ‖T Tᵀ‖²_F
 *     ∂/∂S = 4 (S Sᵀ) S − 4 (S Tᵀ) T,   ∂/∂T = 4 (T Tᵀ) T − 4 (S Tᵀ)ᵀ S
 * The loss is their mean over the batch divided by N²: O(N·C²) work, O(C²) memory. */

static double frobenius2(const float *g, int64_t n)
{
	double s = 0;
	for (int64_t i = 0; i < n; i++)
		s += (double)g[i] * g[i];
	return s;
}

static int pairwise_gram_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	const skd_tensor *s = node->saved[0], *t = node->saved[1];
	const skd_tensor *gss = node->saved[2], *gst = node->saved[3], *gtt = node->saved[4];
	int64_t B = s->shape[0], Cs = s->shape[1], Ct = t->shape[1], N = s->shape[2];
	float a = (float)(node->farg[0] * *skd_tensor_f32(g)); /* 4 / (B N²) · upstream */
	const float *sp = skd_tensor_f32(s), *tp = skd_tensor_f32(t), *stp = skd_tensor_f32(gst);
	if (skd_node_needs_grad(node, 0)) {
		skd_tensor *gs = skd_tensor_empty(SKD_FLOAT32, 3, s->shape);
		if (!gs)
			return SKD_ERR;
		float *o = skd_tensor_f32(gs);
		const float *ssp = skd_tensor_f32(gss);
		for (int64_t b = 0; b < B; b++) {
			const float *S = sp + b * Cs * N, *T = tp + b * Ct * N;
			skd_sgemm(false, false, Cs, N, Cs, a, ssp + b * Cs * Cs, Cs, S, N, 0.0f,
				  o + b * Cs * N, N);
			skd_sgemm(false, false, Cs, N, Ct, -a, stp + b * Cs * Ct, Ct, T, N, 1.0f,
				  o + b * Cs * N, N);
		}
		gin[0] = gs;
	}
	if (skd_node_needs_grad(node, 1)) {
		skd_tensor *gt = skd_tensor_empty(SKD_FLOAT32, 3, t->shape);
		if (!gt)
			return SKD_ERR;
		float *o = skd_tensor_f32(gt);
		const float *ttp = skd_tensor_f32(gtt);
		for (int64_t b = 0; b < B; b++) {
			const float *S = sp + b * Cs * N, *T = tp + b * Ct * N;
			skd_sgemm(false, false, Ct, N, Ct, a, ttp + b * Ct * Ct, Ct, T, N, 0.0f,
				  o + b * Ct * N, N);
			skd_sgemm(true, false, Ct, N, Cs, -a, stp + b * Cs * Ct, Ct, S, N, 1.0f,
				  o + b * Ct * N, N);
		}
		gin[1] = gt;
	}
	return SKD_OK;
}

skd_tensor *skd_pairwise_gram(skd_tensor *sin, skd_tensor *tin)
{
	const char *op = "pairwise_gram";
	skd_tensor *s = nodes_contiguous(op, "student ", sin);
	if (!s)
		return NULL;
	skd_tensor *t = nodes_contiguous(op, "teacher ", tin);
	skd_tensor *gss = NULL, *gst = NULL, *gtt = NULL, *out = NULL;
	if (!t || check_pair(op, s, t))
		goto done;
	int64_t B = s->shape[0], Cs = s->shape[1], Ct = t->shape[1], N = s->shape[2];
	gss = skd_tensor_empty(SKD_FLOAT32, 3, (int64_t[]){B, Cs, Cs});
	gst = skd_tensor_empty(SKD_FLOAT32, 3, (int64_t[]){B, Cs, Ct});
	gtt = skd_tensor_empty(SKD_FLOAT32, 3, (int64_t[]){B, Ct, Ct});
	if (!gss || !gst || !gtt)
		goto done;
	const float *sp = skd_tensor_f32(s), *tp = skd_tensor_f32(t);
	float *ssp = skd_tensor_f32(gss), *stp = skd_tensor_f32(gst), *ttp = skd_tensor_f32(gtt);
	double total = 0;
	for (int64_t b = 0; b < B; b++) {
		const float *S = sp + b * Cs * N, *T = tp + b * Ct * N;
		float *SS = ssp + b * Cs * Cs, *ST = stp + b * Cs * Ct, *TT = ttp + b * Ct * Ct;
		skd_sgemm(false, true, Cs, Cs, N, 1.0f, S, N, S, N, 0.0f, SS, Cs);
		skd_sgemm(false, true, Cs, Ct, N, 1.0f, S, N, T, N, 0.0f, ST, Ct);
		skd_sgemm(false, true, Ct, Ct, N, 1.0f, T, N, T, N, 0.0f, TT, Ct);
		total += frobenius2(SS, Cs * Cs) - 2.0 * frobenius2(ST, Cs * Ct) +
			 frobenius2(TT, Ct * Ct);
	}
	double pairs = (double)N * (double)N;
	out = skd_tensor_scalar((float)(total / (pairs * (double)B)));
	skd_node *node = skd_autograd_record(out, op, pairwise_gram_backward, 2,
					     (skd_tensor *[]){sin, tin});
	if (node) {
		skd_node_save(node, s);
		skd_node_save(node, t);
		skd_node_save(node, gss);
		skd_node_save(node, gst);
		skd_node_save(node, gtt);
		node->farg[0] = 4.0 / (pairs * (double)B);
	}
done:
	skd_tensor_release(gss);
	skd_tensor_release(gst);
	skd_tensor_release(gtt);
	skd_tensor_release(s);
	skd_tensor_release(t);
	return out;
}

/* ---------- local-range pair-wise loss over grid neighbours (method.md §2, step 5) ----------
 *
 * Only pairs (i, j) with max(|Δrow|, |Δcol|) ≤ r count; |P| is the number of such ordered
 * pairs, the diagonal included (border nodes have fewer neighbours). Nodes are transposed to
 * node-major (N×C) so that each pair is a dot product over contiguous channels. The
 * differences d_ij = sᵢᵀsⱼ − tᵢᵀtⱼ are kept, K = (2r+1)² per node (0 off the grid), for the
 * backward: P is symmetric, so ∂L/∂sᵢ = (4/(B|P|)) Σ_j d_ij sⱼ. */

static int64_t count_local_pairs(int64_t nh, int64_t nw, int64_t r)
{
	int64_t rows = 0, cols = 0; /* pairs factor into row pairs × column pairs */
	for (int64_t y = 0; y < nh; y++)
		rows += (y + r < nh - 1 ? y + r : nh - 1) - (y - r > 0 ? y - r : 0) + 1;
	for (int64_t x = 0; x < nw; x++)
		cols += (x + r < nw - 1 ? x + r : nw - 1) - (x - r > 0 ? x - r : 0) + 1;
	return rows * cols;
}

/* Neighbour k of node (y, x), or −1 off the grid. */
static inline int64_t neighbour(int64_t y, int64_t x, int64_t k, int64_t r, int64_t nh,
				int64_t nw)
{
	int64_t side = 2 * r + 1, yy = y + k / side - r, xx = x + k % side - r;
	return (yy < 0 || yy >= nh || xx < 0 || xx >= nw) ? -1 : yy * nw + xx;
}

static int pairwise_local_backward(skd_node *node, const skd_tensor *g, skd_tensor **gin)
{
	const skd_tensor *d = node->saved[2];
	int64_t nh = node->iarg[0], nw = node->iarg[1], r = node->iarg[2], K = (2 * r + 1) * (2 * r + 1);
	float a = (float)(node->farg[0] * *skd_tensor_f32(g)); /* 4 / (B|P|) · upstream */
	const float *dp = skd_tensor_f32(d);
	for (int which = 0; which < 2; which++) {
		if (!skd_node_needs_grad(node, which))
			continue;
		const skd_tensor *xn = node->saved[which]; /* node-major (B, N, C) */
		int64_t B = xn->shape[0], N = xn->shape[1], C = xn->shape[2];
		float sign = which == 0 ? a : -a;
		float *acc = skd_malloc((size_t)(B * N * C) * sizeof *acc);
		skd_tensor *gx = skd_tensor_empty(SKD_FLOAT32, 3, (int64_t[]){B, C, N});
		if (!acc || !gx) {
			free(acc);
			skd_tensor_release(gx);
			return SKD_ERR;
		}
		const float *xp = skd_tensor_f32(xn);
#pragma omp parallel for schedule(static) if (B * N * K * C > SKD_PARALLEL_GRAIN)
		for (int64_t bi = 0; bi < B * N; bi++) {
			int64_t b = bi / N, i = bi % N, y = i / nw, x = i % nw;
			float *o = acc + bi * C;
			for (int64_t c = 0; c < C; c++)
				o[c] = 0;
			for (int64_t k = 0; k < K; k++) {
				int64_t j = neighbour(y, x, k, r, nh, nw);
				if (j < 0)
					continue;
				float w = sign * dp[bi * K + k];
				const float *xj = xp + (b * N + j) * C;
				for (int64_t c = 0; c < C; c++)
					o[c] += w * xj[c];
			}
		}
		transpose_batched(skd_tensor_f32(gx), acc, B, C, N);
		free(acc);
		gin[which] = gx;
	}
	return SKD_OK;
}

/* Node-major copy (B, N, C) of contiguous (B, C, N) nodes. New reference. */
static skd_tensor *node_major(const skd_tensor *x)
{
	int64_t B = x->shape[0], C = x->shape[1], N = x->shape[2];
	skd_tensor *y = skd_tensor_empty(SKD_FLOAT32, 3, (int64_t[]){B, N, C});
	if (y)
		transpose_batched(skd_tensor_f32(y), skd_tensor_f32(x), B, N, C);
	return y;
}

skd_tensor *skd_pairwise_local(skd_tensor *sin, skd_tensor *tin, int64_t nh, int64_t nw,
			       int radius)
{
	const char *op = "pairwise_local";
	skd_tensor *s = nodes_contiguous(op, "student ", sin);
	if (!s)
		return NULL;
	skd_tensor *t = nodes_contiguous(op, "teacher ", tin);
	skd_tensor *sn = NULL, *tn = NULL, *d = NULL, *out = NULL;
	double *part = NULL;
	if (!t || check_pair(op, s, t))
		goto done;
	int64_t B = s->shape[0], Cs = s->shape[1], Ct = t->shape[1], N = s->shape[2];
	if (nh < 1 || nw < 1 || N % nw != 0 || N / nw != nh) { /* nh·nw could overflow */
		skd_error("%s: a node grid of %lldx%lld does not hold the %lld nodes given", op,
			  (long long)nh, (long long)nw, (long long)N);
		goto done;
	}
	if (radius < 0) {
		skd_error("%s: connection range alpha must be at least 0, got %d", op, radius);
		goto done;
	}
	/* a range past the grid adds only empty offsets: clamp it so K stays small */
	int64_t r = radius, rmax = (nh > nw ? nh : nw) - 1;
	if (r > rmax)
		r = rmax;
	int64_t K = (2 * r + 1) * (2 * r + 1);
	sn = node_major(s);
	tn = node_major(t);
	d = skd_tensor_zeros(SKD_FLOAT32, 3, (int64_t[]){B, N, K});
	part = skd_malloc((size_t)(B * N) * sizeof *part);
	if (!sn || !tn || !d || !part)
		goto done;
	const float *sp = skd_tensor_f32(sn), *tp = skd_tensor_f32(tn);
	float *dp = skd_tensor_f32(d);
#pragma omp parallel for schedule(static) if (B * N * K * (Cs + Ct) > SKD_PARALLEL_GRAIN)
	for (int64_t bi = 0; bi < B * N; bi++) {
		int64_t b = bi / N, i = bi % N, y = i / nw, x = i % nw;
		const float *si = sp + bi * Cs, *ti = tp + bi * Ct;
		double sq = 0;
		for (int64_t k = 0; k < K; k++) {
			int64_t j = neighbour(y, x, k, r, nh, nw);
			if (j < 0)
				continue;
			float v = dot(si, sp + (b * N + j) * Cs, Cs) - dot(ti, tp + (b * N + j) * Ct, Ct);
			dp[bi * K + k] = v;
			sq += (double)v * v;
		}
		part[bi] = sq;
	}
	double pairs = (double)count_local_pairs(nh, nw, r);
	out = skd_tensor_scalar((float)(sum_ordered(part, B * N) / (pairs * (double)B)));
	skd_node *node = skd_autograd_record(out, op, pairwise_local_backward, 2,
					     (skd_tensor *[]){sin, tin});
	if (node) {
		skd_node_save(node, sn);
		skd_node_save(node, tn);
		skd_node_save(node, d);
		node->iarg[0] = nh;
		node->iarg[1] = nw;
		node->iarg[2] = r;
		node->farg[0] = 4.0 / (pairs * (double)B);
	}
done:
	free(part);
	skd_tensor_release(sn);
	skd_tensor_release(tn);
	skd_tensor_release(d);
	skd_tensor_release(s);
	skd_tensor_release(t);
	return out;
}
