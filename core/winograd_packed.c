/* winograd_packed.c — the Winograd forward (and backward-input) without a transformed kernel
 * in memory, for the calls where that kernel is used least: a frozen network's layers at batch
 * 1 or 2, of at most WG_PACKED_MAX_TILES tiles in all (so one chunk).
 *
 * Each thread takes whole panels of output channels and, a block of input channels at a time,
 * writes their transformed kernel straight into the micro-kernel's packed layout (ukernel.c),
 * small enough to stay in its core's L2, and multiplies it there by the block's tiles (the
 * call's tiles are packed once; a block of them stays in L2 while every panel meets it). The
 * kernel goes through memory once, as 9 floats per channel pair instead of alpha² written,
 * read back and packed again by sgemm. Each output element is one fixed
 * sequence of operations (its panel belongs to one thread, blocks of input channels add in
 * order), so results repeat bit for bit whatever the thread count.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "parallel.h"
#include "winograd_internal.h"

/* A thread's panel of the transformed kernel (alpha² x kc x nr floats) stays under this, in
 * its core's L2 beside the tiles it meets. The orientation follows the micro-kernel's storage
 * preference: M[ξ][k][t] has the tiles contiguous, so a kernel that prefers C by columns
 * takes the tiles along its rows (mr) and the output channels along its columns (nr). */
#ifndef WG_PANEL_BYTES
#define WG_PANEL_BYTES (384 << 10)
#endif
/* The call's transformed tiles for one block of input channels (alpha² x kc x tiles floats),
 * which every panel of output channels reads in turn, stay under this, in each core's L2. */
#ifndef WG_TILES_BYTES
#define WG_TILES_BYTES (768 << 10)
#endif

typedef struct packed_shape {
	int pt, pk;           /* panel widths: tiles, output channels */
	bool tiles_rows;      /* the tiles along the micro-kernel's rows (mr) */
	int64_t kc;           /* input channels per block of the kernel's panels */
} packed_shape;

static packed_shape packed_shape_of(int aa, int64_t nc, int64_t tpc)
{
	const skd_ukernel *uk = skd_ukernel_get();
	packed_shape p = {0, 0, uk->prefers_cols, 0};
	p.pt = p.tiles_rows ? uk->mr : uk->nr;
	p.pk = p.tiles_rows ? uk->nr : uk->mr;
	int64_t tiles = (tpc + p.pt - 1) / p.pt * p.pt;
	int64_t kc = WG_PANEL_BYTES / ((int64_t)sizeof(float) * aa * p.pk) / 16 * 16;
	int64_t kc_tiles = WG_TILES_BYTES / ((int64_t)sizeof(float) * aa * tiles) / 16 * 16;
	if (kc_tiles < kc)
		kc = kc_tiles;
	p.kc = kc < 16 ? 16 : kc;
	if (p.kc > nc)
		p.kc = nc;
	return p;
}

/* vp[ξ][tp][c][pt] = v[ξ][c][tp·pt + i], zero past the chunk's tpc tiles. */
static void pack_tiles(const float *v, int64_t aa, int64_t nc, int64_t tpc, int pt, float *vp)
{
	int64_t tpanels = (tpc + pt - 1) / pt, units = aa * tpanels;
#pragma omp parallel for schedule(static) if (aa * nc * tpc > SKD_PARALLEL_GRAIN)
	for (int64_t u = 0; u < units; u++) {
		int64_t xi = u / tpanels, tp = u % tpanels, t0 = tp * pt;
		int64_t len = tpc - t0 < pt ? tpc - t0 : pt;
		const float *src = v + xi * nc * tpc + t0;
		float *dst = vp + u * nc * pt;
		for (int64_t c = 0; c < nc; c++) {
			memcpy(dst + c * pt, src + c * tpc, sizeof(float) * len);
			if (len < pt)
				memset(dst + c * pt + len, 0, sizeof(float) * (pt - len));
		}
	}
}

/* up[ξ][c][j] = (G g Gᵀ)[ξ] for output channel k0 + j (j < nkv) and input channel c0 + c
 * (c < kc): one panel of the kernel, its lanes in storage order, so that each ξ's slice is
 * written in order. Lanes past the matrix's edge (j ≥ nkv) hold whatever kernel their
 * stand-in offset reads: the products they enter are never stored (ukernel.c). wt as in
 * transform_weight (flip: (nc, nk_all, 3, 3), rotated). The taps are gathered: a lane's 9
 * are contiguous, but consecutive lanes are a whole row of the weights apart. */
static void transform_weight_panel(const wg_kind *K, const float *wt, int64_t nk_all,
				   int64_t nc, bool flip, int64_t k0, int nkv, int64_t c0,
				   int64_t kc, int pk, int64_t xstride, float *up)
{
	int aa = K->alpha * K->alpha;
	int64_t lanes = kc * pk;
	wg_transform_fn *transform = skd_wg_transforms()->weight[K->m == 4];
	/* tap e of lane (c, j) at base + off + step·e */
	const float *base = flip ? wt + (c0 * nk_all + k0) * 9 + 8 : wt + (k0 * nc + c0) * 9;
	int step = flip ? -1 : 1;
	int64_t cs64 = flip ? nk_all * 9 : 9, js64 = flip ? 9 : nc * 9;
#ifdef __AVX2__
	bool fits = (kc - 1) * cs64 + (pk - 1) * js64 <= INT32_MAX; /* offsets as gather indices */
	int32_t cstride = fits ? (int32_t)cs64 : 0, jstride = fits ? (int32_t)js64 : 0;
	/* Each lane's j and offset, 8 lanes a vector, stepped a strip at a time in registers (the
	 * offsets stored lane by lane and loaded back as vectors stalled on store forwarding,
	 * a tenth of this function's time): STRIP lanes on, j moves by STRIP % pk and the
	 * offset by the channels and columns that makes, plus one channel where j wraps. */
	__m256i vj[STRIP / 8], voff[STRIP / 8];
	for (int v = 0; v < STRIP / 8; v++) {
		int32_t j0[8], off0[8];
		for (int t = 0; t < 8; t++) {
			j0[t] = (v * 8 + t) % pk;
			off0[t] = (v * 8 + t) / pk * cstride + j0[t] * jstride;
		}
		vj[v] = _mm256_loadu_si256((const __m256i *)j0);
		voff[v] = _mm256_loadu_si256((const __m256i *)off0);
	}
	const __m256i step_j = _mm256_set1_epi32(STRIP % pk), last_j = _mm256_set1_epi32(pk - 1);
	const __m256i step_off = _mm256_set1_epi32(STRIP / pk * cstride + STRIP % pk * jstride);
	const __m256i wrap_j = _mm256_set1_epi32(pk), wrap_off = _mm256_set1_epi32(cstride - pk * jstride);
	const __m256i nkv_v = _mm256_set1_epi32(nkv), lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#endif
	for (int64_t l0 = 0; l0 < lanes; l0 += STRIP) {
		int64_t nt = lanes - l0 < STRIP ? lanes - l0 : STRIP;
		float g9[9][STRIP] __attribute__((aligned(32))), loc[MAX_A * MAX_A][STRIP];
		const float *in[9];
		float *out[MAX_A * MAX_A];
#ifdef __AVX2__
		if (fits) {
			__m256i nt_v = _mm256_set1_epi32((int32_t)nt);
			for (int v = 0; v < STRIP / 8; v++) {
				/* lanes past the edge (j ≥ nkv) or past the panel read the first kernel */
				__m256i t = _mm256_add_epi32(lane, _mm256_set1_epi32(v * 8));
				__m256i ok = _mm256_and_si256(_mm256_cmpgt_epi32(nkv_v, vj[v]),
							      _mm256_cmpgt_epi32(nt_v, t));
				__m256i idx = _mm256_and_si256(voff[v], ok);
				for (int e = 0; e < 9; e++)
					_mm256_store_ps(g9[e] + v * 8,
							_mm256_i32gather_ps(base + step * e, idx, 4));
				__m256i jn = _mm256_add_epi32(vj[v], step_j);
				__m256i wrapped = _mm256_cmpgt_epi32(jn, last_j);
				vj[v] = _mm256_sub_epi32(jn, _mm256_and_si256(wrapped, wrap_j));
				voff[v] = _mm256_add_epi32(_mm256_add_epi32(voff[v], step_off),
							   _mm256_and_si256(wrapped, wrap_off));
			}
		} else
#endif
		{ /* one lane at a time (kernels too far apart for 32-bit offsets) */
			for (int t = 0; t < STRIP; t++) {
				int64_t l = l0 + t, lc = l / pk, lj = l % pk;
				const float *src = base + (t < nt && lj < nkv ? lc * cs64 + lj * js64 : 0);
				for (int e = 0; e < 9; e++)
					g9[e][t] = src[step * e];
			}
		}
		for (int e = 0; e < 9; e++)
			in[e] = g9[e];
		strip_outputs(up + l0, xstride, nt, aa, loc, out);
		transform(in, out);
		flush_outputs(up + l0, xstride, nt, aa, loc);
	}
}

/* y's (n, nout, oh, ow) from src (n, nin, h, w) and the weights, as weights_then_forward;
 * the call's tiles are one chunk (skd_wg_packed_for). */
int skd_wg_forward_packed(const wg_geom *g, int64_t nin, int64_t nout, const float *src,
			  const float *wt, bool rotate, const float *bias, float *dst)
{
	int aa = g->k->alpha * g->k->alpha, nth = skd_threads_get();
	int64_t tpc = g->rows * g->tiles_w;
	packed_shape ps = packed_shape_of(aa, nin, tpc);
	int64_t tpanels = (tpc + ps.pt - 1) / ps.pt;
	int64_t kpanels = (nout + ps.pk - 1) / ps.pk;
	size_t vbytes = ps.pt == STRIP ? 0 : sizeof(float) * aa * nin * tpc;
	size_t pbytes = sizeof(float) * aa * nin * tpanels * ps.pt;
	size_t mbytes = sizeof(float) * aa * nout * tpc;
	/* a thread's panel of the kernel, each ξ's slice starting 64-byte aligned (ops.h) */
	int64_t xs_max = (ps.kc * ps.pk + 15) / 16 * 16, per = aa * xs_max;
	size_t ubytes = sizeof(float) * per * nth;
	float *v = vbytes ? skd_alloc(vbytes) : NULL, *vp = v || !vbytes ? skd_alloc(pbytes) : NULL;
	float *mm = vp ? skd_alloc(mbytes) : NULL, *up = mm ? skd_alloc(ubytes) : NULL;
	int rc = SKD_ERR;
	if (!up)
		goto done;
	if (ps.pt == STRIP) /* the transform writes the panels itself */
		skd_wg_transform_input_panels(g, src, nin, 0, g->rows, vp);
	else {
		skd_wg_transform_input(g, src, nin, 0, g->rows, v);
		pack_tiles(v, aa, nin, tpc, ps.pt, vp);
	}
	/* Blocks of input channels outermost: a block's tiles stay in each core's L2 while every
	 * panel of output channels meets them (panels outermost read all the tiles from L3 once a
	 * panel: 43 times 19 MB for a PSPNet head at batch 1). A thread keeps the same panels in
	 * every block (static schedule, same count), so no barrier is needed between blocks and
	 * each output sums its blocks in order. */
#pragma omp parallel num_threads(nth) if (nth > 1 && kpanels > 1)
	for (int64_t c0 = 0; c0 < nin; c0 += ps.kc) {
		int64_t kc = nin - c0 < ps.kc ? nin - c0 : ps.kc;
#pragma omp for schedule(static) nowait
		for (int64_t kp = 0; kp < kpanels; kp++) {
			float *mine = up + (int64_t)omp_get_thread_num() * per;
			int64_t k0 = kp * ps.pk;
			int nkv = nout - k0 < ps.pk ? (int)(nout - k0) : ps.pk;
			int64_t xs = (kc * ps.pk + 15) / 16 * 16;
			transform_weight_panel(g->k, wt, nout, nin, rotate, k0, nkv, c0, kc, ps.pk, xs,
					       mine);
			float beta = c0 == 0 ? 0.0f : 1.0f;
			for (int xi = 0; xi < aa; xi++) {
				const float *b = mine + xi * xs;
				float *cm = mm + (xi * nout + k0) * tpc;
				for (int64_t tp = 0; tp < tpanels; tp++) {
					const float *a = vp + ((xi * tpanels + tp) * nin + c0) * ps.pt;
					int64_t nt = tpc - tp * ps.pt < ps.pt ? tpc - tp * ps.pt : ps.pt;
					if (ps.tiles_rows)
						skd_ukernel_run(nt, nkv, kc, a, b, beta, cm + tp * ps.pt, 1,
								tpc);
					else
						skd_ukernel_run(nkv, nt, kc, b, a, beta, cm + tp * ps.pt,
								tpc, 1);
				}
			}
		}
	}
	skd_wg_transform_output(g, mm, nout, nout, 0, g->rows, bias, dst);
	rc = SKD_OK;
done:
	skd_free(v, vbytes);
	skd_free(vp, pbytes);
	skd_free(mm, mbytes);
	skd_free(up, ubytes);
	return rc;
}

/* The packed forward serves calls of at most this many tiles: a frozen network at batch 1 or
 * 2 (32 to 128 tiles a layer at 128x256), where the transformed kernel is used least. With
 * more, a block of input channels whose tiles fit in L2 gets too thin for the micro-kernel (kc
 * 32 at 128 tiles), and BLIS's own blocking was up to 1.4x faster (a batch of 8: 256 tiles and
 * up; measured when the panels were the outer loop); a macro-kernel blocked as BLIS's, on the
 * whole kernel packed once per call, was tried for those and measured 0.6–1.0x sgemm's time on
 * the student's layers, so they keep sgemm.
 * SKD_WG_PACKED=0 turns it off (for comparisons). */
#define WG_PACKED_MAX_TILES 128

static bool packed_enabled(void)
{
	static int on = -1;
	if (on < 0) {
		const char *e = getenv("SKD_WG_PACKED");
		on = !(e && !strcmp(e, "0")) && skd_ukernel_get()->mr > 0;
	}
	return on;
}

/* The whole call, not a chunk: wide layers' chunks have 128 tiles at any batch, and the kernel
 * would be transformed again for each. Chunks are never under 128 tiles, so such a call is one
 * chunk (skd_wg_forward_packed relies on it). */
bool skd_wg_packed_for(const wg_geom *g, int64_t nin, int64_t nout)
{
	return packed_enabled() && g->rows * g->tiles_w <= WG_PACKED_MAX_TILES;
}

