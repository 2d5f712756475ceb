/* winograd.c — 3x3 stride-1 convolution by minimal filtering, F(m x m, 3 x 3) with m = 2 or 4
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015), and the per-layer
 * choice between it and conv2d.c's direct path.
 *
 * Each output tile of m x m pixels reads an alpha x alpha input tile d (alpha = m + 2):
 *
 *   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A          per tile, per (output, input) channel pair
 *
 * Summed over input channels, the element-wise product becomes, for each of the alpha²
 * transform positions ξ, one GEMM  M[ξ] (cout x tiles) = U[ξ] (cout x cin) · V[ξ] (cin x tiles):
 * alpha² = 36 multiplications per 16 outputs instead of 144 for F(4,3), 16 per 4 instead of 36
 * for F(2,3). So a call is: weights -> U (alpha², cout, cin); for each chunk of tile rows, input
 * tiles -> V (alpha², cin, tiles), alpha² GEMMs through skd_sgemm, M -> output tiles. Calls
 * with few tiles (a frozen network at batch 1-2) never hold U: winograd_packed.c.
 *
 *   backward-input   dX = the same forward on dY with the kernel rotated by 180° and its
 *                    channels swapped, padding 2 − p (negative: a crop)
 *   backward-weight  dg = Gᵀ [ Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B) ] G, the transposed algorithm: the
 *                    sum over tiles is alpha² GEMMs dU[ξ] (cout x cin) += dYt[ξ] · V[ξ]ᵀ
 *
 * Transforms work on strips of STRIP consecutive tiles (across tile rows, so that narrow maps
 * fill them too), one channel at a time, so their inner loops run over tiles with a fixed trip
 * count and vectorise; OpenMP splits the strips, BLIS threads the GEMMs, and no BLIS call
 * happens inside a parallel region. Each output element is computed by one fixed sequence of
 * operations whatever the threads (chunks of tile rows are a function of the shape only), so
 * results repeat bit for bit. Accuracy against the direct path, max |error| / max |output| on
 * random data: about 4e-7 for F(2,3), 7e-6 for F(4,3) (tests/test_winograd.lua bounds them).
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "parallel.h"
#include "winograd.h"
#include "winograd_internal.h"

/* ---------- the transforms, on STRIP lanes at once ---------- */

/* Lane arrays get one block of slack: a segment's gather writes whole blocks of 8 tiles, and
 * the lanes past its end are overwritten by the next segment (or never read). */
#define LANES (STRIP + 8)

/* A strip is STRIP consecutive tiles of a chunk, in the chunk's order (tile row, then
 * column), so that it stays full however narrow the map; it falls into segments, each
 * within one tile row. Segment: tiles tw .. tw+len−1 of tile row th of image img, at lanes
 * lane .. lane+len−1. */
typedef struct segment {
	int64_t img, th, tw;
	int lane, len;
} segment;

/* The segments of the strip at chunk tiles s0 .. s0+nt−1 of a chunk starting at tile row
 * row0; returns their number (at most STRIP). */
static int strip_segments(const wg_geom *g, int64_t row0, int64_t s0, int nt, segment *seg)
{
	int ns = 0;
	for (int lane = 0; lane < nt;) {
		int64_t row = row0 + (s0 + lane) / g->tiles_w, tw = (s0 + lane) % g->tiles_w;
		int len = g->tiles_w - tw < nt - lane ? (int)(g->tiles_w - tw) : nt - lane;
		seg[ns++] = (segment){row / g->tiles_h, row % g->tiles_h, tw, lane, len};
		lane += len;
	}
	return ns;
}

/* The segments of every strip of a chunk of tpc tiles, found once for all its channels (the
 * divisions behind them cost as much as a narrow map's transform): strip s has count[s]
 * segments at seg + s·STRIP. */
typedef struct chunk_segs {
	segment *seg;
	int *count;
} chunk_segs;

/* Out of memory, cs->seg is NULL and strip_of finds each strip's segments where it is used. */
static void chunk_segments(const wg_geom *g, int64_t row0, int64_t tpc, chunk_segs *cs)
{
	int64_t strips = (tpc + STRIP - 1) / STRIP;
	cs->seg = malloc(sizeof(segment) * STRIP * strips);
	cs->count = malloc(sizeof(int) * strips);
	if (!cs->seg || !cs->count) {
		free(cs->seg);
		free(cs->count);
		cs->seg = NULL;
		cs->count = NULL;
		return;
	}
	for (int64_t st = 0; st < strips; st++) {
		int64_t s0 = st * STRIP;
		int nt = tpc - s0 < STRIP ? (int)(tpc - s0) : STRIP;
		cs->count[st] = strip_segments(g, row0, s0, nt, cs->seg + st * STRIP);
	}
}

/* Strip s0 / STRIP's segments: from cs when it has them, else found into local. */
static const segment *strip_of(const chunk_segs *cs, const wg_geom *g, int64_t row0, int64_t s0,
			       int nt, segment *local, int *ns)
{
	if (cs->seg) {
		*ns = cs->count[s0 / STRIP];
		return cs->seg + s0;
	}
	*ns = strip_segments(g, row0, s0, nt, local);
	return local;
}

/* Row phases of a strip: ph[i][p][t] = plane[r0 + i][c0 + t·m + p] for the n rows of a
 * segment's tiles (gather_segment builds them, whole blocks of 8 tiles and one block more). */
typedef float row_phases[MAX_A][MAX_M][LANES + 8];

/* tile[i·n + j][lane + t] = plane[r0 + i][c0 + t·m + j] (0 outside rows x cols) for the
 * segment's tiles t < len: entry (i, j) of n x n tiles whose corners are m apart. Each row is
 * first split by column phase (ph[i][p][t] = column t·m + p), a stride-m deinterleave that
 * vectorises, then column j of the tiles is phase j % m shifted by j / m tiles. Loops run in
 * blocks of 8 tiles with fixed trip counts; inlined with constant m and n. Only a block that
 * reaches past the plane's edge is read through a zero-padded copy (the whole row was copied
 * for most segments, ~6 million small memcpy calls per w0.5 student step). With in non-NULL
 * the segment is a whole strip (lane 0, STRIP tiles) and the transform reads the phases where
 * they are: in[i·n + j] = ph[i][j % m] + j / m, nothing copied into tile. */
static inline __attribute__((always_inline)) void
gather_segment(const float *plane, int64_t rows, int64_t cols, int64_t r0, int64_t c0, int m,
	       int n, int lane, int len, float (*restrict tile)[LANES], row_phases ph,
	       const float **in)
{
	float edge[8 * MAX_M];
	int nb = (len + 7) / 8 * 8, np = n > m ? nb + 8 : nb; /* tiles written; phases built */
	int64_t need = (int64_t)np * m, lo = c0 < 0 ? -c0 : 0, hi = cols - c0;
	if (hi > need)
		hi = need;
	if (lo > need)
		lo = need;
	if (hi < lo)
		hi = lo;
	for (int i = 0; i < n; i++) {
		int64_t r = r0 + i;
		if (r < 0 || r >= rows) {
			if (in)
				memset(ph[i], 0, sizeof ph[i]);
			else
				for (int j = 0; j < n; j++)
					memset(tile[i * n + j] + lane, 0, sizeof(float) * nb);
		} else if (len < 8) { /* a few tiles (narrow maps, sub-grids): element by element */
			const float *row = plane + r * cols + c0;
			for (int j = 0; j < n; j++)
				for (int t = 0; t < len; t++) {
					int64_t k = (int64_t)t * m + j;
					tile[i * n + j][lane + t] = k >= lo && k < hi ? row[k] : 0.0f;
				}
		} else {
			const float *row = plane + r * cols + c0;
			for (int b = 0; b < np; b += 8) {
				int64_t k0 = (int64_t)b * m;
				const float *src = row + k0;
				if (k0 < lo || k0 + 8 * m > hi) { /* a block across the plane's edge */
					for (int k = 0; k < 8 * m; k++)
						edge[k] = k0 + k >= lo && k0 + k < hi ? row[k0 + k] : 0.0f;
					src = edge;
				}
				for (int t = 0; t < 8; t++)
#pragma GCC unroll 4
					for (int p = 0; p < m; p++)
						ph[i][p][b + t] = src[t * m + p];
			}
			if (!in) {
				/* 8 floats a move, each through an empty asm: as plain copy loops
				 * (scalar or vector) GCC made each (i, j) a call to memcpy, six
				 * million calls of ~128 bytes per w0.5 student step */
#pragma GCC unroll 6
				for (int j = 0; j < n; j++)
					for (int b = 0; b < nb; b += 8) {
#ifdef __AVX2__
						__m256 v8 = _mm256_loadu_ps(ph[i][j % m] + b + j / m);
						__asm__("" : "+x"(v8));
						_mm256_storeu_ps(tile[i * n + j] + lane + b, v8);
#else
						for (int t = 0; t < 8; t++)
							tile[i * n + j][lane + b + t] = ph[i][j % m][b + t + j / m];
#endif
					}
			}
		}
		if (in) /* (never a segment of fewer than 8 tiles) */
			for (int j = 0; j < n; j++)
				in[i * n + j] = ph[i][j % m] + j / m;
	}
}

#ifdef __AVX2__
/* The same gather for a whole strip of a narrow map (tiles_w < 8: every segment a few tiles,
 * as on the sub-grids of a dilated layer), where gather_segment goes element by element:
 * tile[i·n + j][t] for all STRIP lanes at once, 8 at a time through masked AVX2 gathers, the
 * mask being the element's place inside the rows x cols plane (lanes past nt read nothing).
 * xc is channel c's plane of image 0; an image's planes are image_stride floats apart (the
 * caller checks that every offset fits in 32 bits). */
static void gather_strip_narrow(const float *xc, int64_t image_stride, int64_t rows,
				int64_t cols, int64_t pr, int64_t pc, int m, int n,
				const segment *seg, int ns, float (*restrict tile)[LANES])
{
	int32_t base[STRIP] __attribute__((aligned(32))), r0[STRIP] __attribute__((aligned(32)));
	int32_t c0[STRIP] __attribute__((aligned(32)));
	for (int t = 0; t < STRIP; t++) {
		base[t] = 0;
		r0[t] = c0[t] = -(MAX_A + 1); /* outside: masked whatever i, j */
	}
	for (int k = 0; k < ns; k++)
		for (int t = 0; t < seg[k].len; t++) {
			int lane = seg[k].lane + t;
			r0[lane] = (int32_t)(seg[k].th * m - pr);
			c0[lane] = (int32_t)((seg[k].tw + t) * m - pc);
			base[lane] = (int32_t)(seg[k].img * image_stride + r0[lane] * cols + c0[lane]);
		}
	__m256i vrows = _mm256_set1_epi32((int32_t)rows), vcols = _mm256_set1_epi32((int32_t)cols);
	__m256i minus1 = _mm256_set1_epi32(-1);
	for (int v = 0; v < STRIP; v += 8) {
		__m256i vb = _mm256_load_si256((const __m256i *)(base + v));
		__m256i vr = _mm256_load_si256((const __m256i *)(r0 + v));
		__m256i vc = _mm256_load_si256((const __m256i *)(c0 + v));
		for (int i = 0; i < n; i++) {
			__m256i r = _mm256_add_epi32(vr, _mm256_set1_epi32(i));
			__m256i rin = _mm256_and_si256(_mm256_cmpgt_epi32(r, minus1),
						       _mm256_cmpgt_epi32(vrows, r));
			for (int j = 0; j < n; j++) {
				__m256i c = _mm256_add_epi32(vc, _mm256_set1_epi32(j));
				__m256i in = _mm256_and_si256(rin, _mm256_and_si256(
					_mm256_cmpgt_epi32(c, minus1), _mm256_cmpgt_epi32(vcols, c)));
				__m256i idx = _mm256_add_epi32(vb, _mm256_set1_epi32((int32_t)(i * cols + j)));
				_mm256_storeu_ps(tile[i * n + j] + v,
						 _mm256_mask_i32gather_ps(_mm256_setzero_ps(), xc, idx,
									  _mm256_castsi256_ps(in), 4));
			}
		}
	}
}
#endif

/* The inverse for m x m output tiles: plane(segment)[th·m + i][tw·m + t·m + j] =
 * res[i·m + j][lane + t] + bias inside the oh x ow plane, for every segment of the strip. */
static inline __attribute__((always_inline)) void
scatter_strip(float (*res)[STRIP], int m, float bias, float *y, int64_t plane_stride,
	      int64_t oh, int64_t ow, const segment *seg, int ns)
{
	float buf[MAX_M][STRIP * MAX_M];
	for (int i = 0; i < m; i++)
		for (int t = 0; t < STRIP; t++)
#pragma GCC unroll 4
			for (int j = 0; j < m; j++)
				buf[i][t * m + j] = res[i * m + j][t] + bias;
	for (int k = 0; k < ns; k++) {
		const segment *sg = &seg[k];
		float *plane = y + sg->img * plane_stride;
		int64_t c0 = sg->tw * m, len = ow - c0 < sg->len * m ? ow - c0 : sg->len * m;
		for (int i = 0; i < m && sg->th * m + i < oh; i++)
			memcpy(plane + (sg->th * m + i) * ow + c0, buf[i] + sg->lane * m,
			       sizeof(float) * len);
	}
}

/* The tiles of channel planes (n, nch, rows, cols) into transformed lanes: out[ξ] of the
 * strip = (T d Tᵀ)[ξ] for n_in x n_in tiles d at corners m apart, offset (-pr, -pc); T = Bᵀ
 * for the input (n_in = alpha), A for a gradient of the output (n_in = m). */
static void transform_tiles(const wg_geom *g, const float *x, int64_t nch, int64_t rows,
			    int64_t cols, int64_t pr, int64_t pc, bool grad_output, int64_t row0,
			    int64_t nrows, bool panels, float *v)
{
	int m = g->k->m, aa = g->k->alpha * g->k->alpha;
	int64_t tpc = nrows * g->tiles_w, strips = (tpc + STRIP - 1) / STRIP;
	int64_t units = nch * strips;
	const wg_transforms *T = skd_wg_transforms();
	wg_transform_fn *transform = grad_output ? T->grad_output[m == 4] : T->input[m == 4];
	chunk_segs cs;
	chunk_segments(g, row0, tpc, &cs);
#ifdef __AVX2__
	/* narrow maps gather a strip at once (gather_strip_narrow), with 32-bit offsets */
	bool narrow = g->tiles_w < 8 && g->n * nch * rows * cols < INT32_MAX - 64;
#endif
#pragma omp parallel for schedule(static) if (units * STRIP * aa > SKD_PARALLEL_GRAIN)
	for (int64_t u = 0; u < units; u++) {
		int64_t c = u / strips, s0 = u % strips * STRIP;
		int nt = tpc - s0 < STRIP ? (int)(tpc - s0) : STRIP;
		segment local[STRIP];
		int ns;
		const segment *seg = strip_of(&cs, g, row0, s0, nt, local, &ns);
		float tile[MAX_A * MAX_A][LANES], loc[MAX_A * MAX_A][STRIP];
		row_phases ph;
		const float *in[MAX_A * MAX_A];
		/* v[ξ][c][t], or as panels of STRIP tiles v[ξ][s0 / STRIP][c][lane], whole */
		float *dst = panels ? v + (s0 / STRIP * nch + c) * STRIP : v + c * tpc + s0;
		int64_t xstride = panels ? strips * nch * STRIP : nch * tpc;
		int nw = panels ? STRIP : nt;
		float *out[MAX_A * MAX_A];
		for (int e = 0; e < aa; e++)
			in[e] = tile[e];
		strip_outputs(dst, xstride, nw, aa, loc, out);
#ifdef __AVX2__
		if (narrow) { /* tiles of alpha (input) or m (output gradient) on a side */
			gather_strip_narrow(x + c * rows * cols, nch * rows * cols, rows, cols, pr, pc,
					    m, grad_output ? m : m + 2, seg, ns, tile);
			ns = 0;
		}
#endif
		if (nt < STRIP && ns > 0) /* lanes no segment writes: keep them finite */
			memset(tile, 0, sizeof tile);
		/* a strip that is one segment (maps of 32 tiles a row and more) is transformed from
		 * its row phases where they are built */
		const float **direct = ns == 1 && seg[0].lane == 0 && seg[0].len == STRIP ? in : NULL;
		for (int k = 0; k < ns; k++) {
			const float *plane = x + (seg[k].img * nch + c) * rows * cols;
			int64_t r0 = seg[k].th * m - pr, c0 = seg[k].tw * m - pc;
			int l0 = seg[k].lane, len = seg[k].len;
			if (m == 4 && !grad_output)
				gather_segment(plane, rows, cols, r0, c0, 4, 6, l0, len, tile, ph, direct);
			else if (m == 4)
				gather_segment(plane, rows, cols, r0, c0, 4, 4, l0, len, tile, ph, direct);
			else if (!grad_output)
				gather_segment(plane, rows, cols, r0, c0, 2, 4, l0, len, tile, ph, direct);
			else
				gather_segment(plane, rows, cols, r0, c0, 2, 2, l0, len, tile, ph, direct);
		}
		transform(in, out);
		flush_outputs(dst, xstride, nw, aa, loc);
	}
	free(cs.seg);
	free(cs.count);
}

/* v[ξ][c][t] = (Bᵀ d B)[ξ] for the input tiles d of channel c of x (n, nch, h, w) in the
 * chunk's tile rows row0 .. row0 + nrows − 1 (t: the chunk's tile index). */
void skd_wg_transform_input(const wg_geom *g, const float *x, int64_t nch, int64_t row0,
			    int64_t nrows, float *v)
{
	transform_tiles(g, x, nch, g->h, g->w, g->ph, g->pw, false, row0, nrows, false, v);
}

void skd_wg_transform_input_panels(const wg_geom *g, const float *x, int64_t nch, int64_t row0,
				   int64_t nrows, float *vp)
{
	transform_tiles(g, x, nch, g->h, g->w, g->ph, g->pw, false, row0, nrows, true, vp);
}

/* dyt[ξ][c][t] = (A dY Aᵀ)[ξ] for the m x m tiles of dy (n, nch, oh, ow), zero past its edge:
 * the transform the weight gradient pairs with V. */
static void transform_grad_output(const wg_geom *g, const float *dy, int64_t nch, int64_t row0,
				  int64_t nrows, float *dyt)
{
	transform_tiles(g, dy, nch, g->oh, g->ow, 0, 0, true, row0, nrows, false, dyt);
}

/* y (n, ych, oh, ow) tiles = Aᵀ M[·][c] A + bias[c] for its first nch channels, for the tile
 * rows of the chunk. */
void skd_wg_transform_output(const wg_geom *g, const float *mm, int64_t nch, int64_t ych,
			     int64_t row0, int64_t nrows, const float *bias, float *y)
{
	int m = g->k->m, aa = g->k->alpha * g->k->alpha;
	int64_t tpc = nrows * g->tiles_w, strips = (tpc + STRIP - 1) / STRIP;
	int64_t units = nch * strips;
	wg_transform_fn *transform = skd_wg_transforms()->output[m == 4];
	chunk_segs cs;
	chunk_segments(g, row0, tpc, &cs);
#pragma omp parallel for schedule(static) if (units * STRIP * aa > SKD_PARALLEL_GRAIN)
	for (int64_t u = 0; u < units; u++) {
		int64_t c = u / strips, s0 = u % strips * STRIP;
		int nt = tpc - s0 < STRIP ? (int)(tpc - s0) : STRIP;
		segment local[STRIP];
		int ns;
		const segment *seg = strip_of(&cs, g, row0, s0, nt, local, &ns);
		float loc[MAX_A * MAX_A][STRIP], res[MAX_M * MAX_M][STRIP];
		const float *in[MAX_A * MAX_A];
		float *out[MAX_M * MAX_M];
		const float *src = mm + c * tpc + s0;
		for (int xi = 0; xi < aa; xi++) {
			in[xi] = src + xi * nch * tpc;
			if (nt < STRIP) {
				memcpy(loc[xi], in[xi], sizeof(float) * nt);
				memset(loc[xi] + nt, 0, sizeof(float) * (STRIP - nt));
				in[xi] = loc[xi];
			}
		}
		for (int o = 0; o < m * m; o++)
			out[o] = res[o];
		float *yc = y + c * g->oh * g->ow, bv = bias ? bias[c] : 0.0f;
		int64_t stride = ych * g->oh * g->ow;
		transform(in, out);
		if (m == 4)
			scatter_strip(res, 4, bv, yc, stride, g->oh, g->ow, seg, ns);
		else
			scatter_strip(res, 2, bv, yc, stride, g->oh, g->ow, seg, ns);
	}
	free(cs.seg);
	free(cs.count);
}

/* u[ξ][k][c] = (G g Gᵀ)[ξ] for the 3x3 kernel g of output channel k, input channel c, taken
 * from wt (nk, nc, 3, 3) — or, flipped, from wt (nc, nk_all, 3, 3) rotated by 180°: the kernel
 * of the backward-input convolution (a block of nk of its nk_all output channels). */
static void transform_weight(const wg_kind *K, const float *wt, int64_t nk, int64_t nk_all,
			     int64_t nc, bool flip, float *u)
{
	int aa = K->alpha * K->alpha;
	int64_t strips = (nc + STRIP - 1) / STRIP, units = nk * strips;
	wg_transform_fn *transform = skd_wg_transforms()->weight[K->m == 4];
#pragma omp parallel for schedule(static) if (units * STRIP * aa > SKD_PARALLEL_GRAIN)
	for (int64_t q = 0; q < units; q++) {
		int64_t k = q / strips, c0 = q % strips * STRIP;
		int64_t nt = nc - c0 < STRIP ? nc - c0 : STRIP;
		float g9[9][STRIP], loc[MAX_A * MAX_A][STRIP];
		const float *in[9];
		float *out[MAX_A * MAX_A], *dst = u + k * nc + c0;
		/* the strip's kernels, tap-major; no branch inside the copies (at batch 1 this
		 * gather, not the arithmetic, set the transform's speed) */
		if (flip) {
			for (int64_t t = 0; t < nt; t++) {
				const float *g = wt + ((c0 + t) * nk_all + k) * 9;
				for (int e = 0; e < 9; e++)
					g9[e][t] = g[8 - e];
			}
		} else {
			const float *g = wt + (k * nc + c0) * 9;
			for (int64_t t = 0; t < nt; t++)
				for (int e = 0; e < 9; e++)
					g9[e][t] = g[t * 9 + e];
		}
		for (int e = 0; e < 9; e++) {
			for (int64_t t = nt; t < STRIP; t++)
				g9[e][t] = 0.0f;
			in[e] = g9[e];
		}
		strip_outputs(dst, nk * nc, nt, aa, loc, out);
		transform(in, out);
		flush_outputs(dst, nk * nc, nt, aa, loc);
	}
}

/* dw (nk, nc, 3, 3) = Gᵀ du[·][k][c] G: the weight gradient from its transformed sum. */
static void transform_weight_grad(const wg_kind *K, const float *du, int64_t nk, int64_t nc,
				  float *dw)
{
	int aa = K->alpha * K->alpha;
	int64_t strips = (nc + STRIP - 1) / STRIP, units = nk * strips;
	wg_transform_fn *transform = skd_wg_transforms()->weight_grad[K->m == 4];
#pragma omp parallel for schedule(static) if (units * STRIP * aa > SKD_PARALLEL_GRAIN)
	for (int64_t q = 0; q < units; q++) {
		int64_t k = q / strips, c0 = q % strips * STRIP;
		int64_t nt = nc - c0 < STRIP ? nc - c0 : STRIP;
		float loc[MAX_A * MAX_A][STRIP], res[9][STRIP];
		const float *in[MAX_A * MAX_A];
		float *out[9];
		for (int xi = 0; xi < aa; xi++) {
			in[xi] = du + (xi * nk + k) * nc + c0;
			if (nt < STRIP) { /* the last strip of a row: padded */
				memcpy(loc[xi], in[xi], sizeof(float) * nt);
				memset(loc[xi] + nt, 0, sizeof(float) * (STRIP - nt));
				in[xi] = loc[xi];
			}
		}
		for (int e = 0; e < 9; e++)
			out[e] = res[e];
		transform(in, out);
		for (int64_t t = 0; t < nt; t++)
			for (int e = 0; e < 9; e++)
				dw[(k * nc + c0 + t) * 9 + e] = res[e][t];
	}
}

/* ---------- chunks of tile rows ---------- */

/* The transformed tiles of a chunk (alpha² x channels x tiles, for the input and the output
 * side) take about this many bytes: enough tiles for GEMMs that run near BLIS's peak, few
 * enough that the buffers stay bounded whatever the batch. A chunk has at least
 * WG_MIN_TILES tiles (below that the GEMMs slow down: 128 instead of 256 cost the w1.0
 * student's step 9% more CPU time), but layers of thousands of channels, whose GEMMs have K
 * in the thousands, take WG_WIDE_MIN_TILES: a PSPNet head's 4096 + 512 channels through
 * F(2,3) at 256 tiles took 71 MB beside its transformed kernel. */
#ifndef WG_CHUNK_BYTES
#define WG_CHUNK_BYTES (24 << 20)
#endif
#define WG_MIN_TILES 256
#define WG_WIDE_MIN_TILES 128
#define WG_WIDE_CHANNELS 2048

int64_t skd_wg_chunk_rows(const wg_geom *g, int64_t ch_in, int64_t ch_out)
{
	int64_t aa = g->k->alpha * g->k->alpha;
	int64_t tiles = WG_CHUNK_BYTES / (int64_t)(sizeof(float) * aa * (ch_in + ch_out));
	int64_t least = ch_in + ch_out >= WG_WIDE_CHANNELS ? WG_WIDE_MIN_TILES : WG_MIN_TILES;
	if (tiles < least)
		tiles = least;
	int64_t rows = (tiles + g->tiles_w - 1) / g->tiles_w;
	return rows < g->rows ? rows : g->rows;
}

/* The first nk of y's (n, ych, oh, ow) channels from x (n, nc, h, w) and the transformed
 * kernel u (alpha², nk, nc). */
static int forward_transformed(const wg_geom *g, int64_t nc, int64_t nk, int64_t ych,
			       const float *x, const float *u, const float *bias, float *y)
{
	int64_t aa = g->k->alpha * g->k->alpha, crow = skd_wg_chunk_rows(g, nc, nk);
	size_t vbytes = sizeof(float) * aa * nc * crow * g->tiles_w;
	size_t mbytes = sizeof(float) * aa * nk * crow * g->tiles_w;
	float *v = skd_alloc(vbytes), *mm = v ? skd_alloc(mbytes) : NULL;
	if (!mm) {
		skd_free(v, vbytes);
		return SKD_ERR;
	}
	for (int64_t row0 = 0; row0 < g->rows; row0 += crow) {
		int64_t nrows = g->rows - row0 < crow ? g->rows - row0 : crow;
		int64_t tpc = nrows * g->tiles_w;
		skd_wg_transform_input(g, x, nc, row0, nrows, v);
		/* the alpha^2 products are independent: one per OpenMP thread when BLIS itself
		 * runs single-threaded (parallel.h), so both cores work on GEMMs */
#pragma omp parallel for schedule(static) if (skd_blis_threads_get() == 1 && skd_threads_get() > 1)
		for (int64_t xi = 0; xi < aa; xi++)
			skd_sgemm(false, false, nk, tpc, nc, 1.0f, u + xi * nk * nc, nc,
				  v + xi * nc * tpc, tpc, 0.0f, mm + xi * nk * tpc, tpc);
		skd_wg_transform_output(g, mm, nk, ych, row0, nrows, bias, y);
	}
	skd_free(v, vbytes);
	skd_free(mm, mbytes);
	return SKD_OK;
}

/* The transformed kernel is alpha²/9 times the size of the weights (4x for F(4,3)): a PSPNet
 * head's 4096 -> 512 convolution would need 128 MB of it at once. Past this size it is made
 * and used a block of output channels at a time (each block transforms the input again, which
 * costs little beside the products where kernels are this large). */
#ifndef WG_KERNEL_BLOCK_BYTES
#define WG_KERNEL_BLOCK_BYTES ((int64_t)64 << 20)
#endif

static int64_t kernel_block(int64_t aa, int64_t nin, int64_t nout)
{
	int64_t per = (int64_t)sizeof(float) * aa * nin; /* one output channel's */
	if (per * nout <= WG_KERNEL_BLOCK_BYTES)
		return nout;
	int64_t b = WG_KERNEL_BLOCK_BYTES / per / 16 * 16;
	return b < 16 ? 16 : b;
}

/* Transforms the weights (rotated 180° with channels swapped for backward-input) and runs the
 * transformed convolution of src (nin channels) into dst (nout channels), a block of output
 * channels at a time where the transformed kernel would be large. */
static int weights_then_forward(const wg_geom *g, int64_t nin, int64_t nout, const float *src,
				const float *wt, bool rotate, const float *bias, float *dst)
{
	int64_t aa = g->k->alpha * g->k->alpha, block = kernel_block(aa, nin, nout);
	size_t ubytes = sizeof(float) * aa * (block < nout ? block : nout) * nin;
	float *u = skd_alloc(ubytes);
	if (!u)
		return SKD_ERR;
	int rc = SKD_OK;
	for (int64_t k0 = 0; k0 < nout && rc == SKD_OK; k0 += block) {
		int64_t nk = nout - k0 < block ? nout - k0 : block;
		/* output channel k0's kernels: wt + k0·nin·9 as (nout, nin, 3, 3); rotated, the
		 * weights are (nin, nout, 3, 3) and channel k0 starts at wt + k0·9 */
		transform_weight(g->k, wt + (rotate ? k0 * 9 : k0 * nin * 9), nk, nout, nin, rotate, u);
		rc = forward_transformed(g, nin, nk, nout, src, u, bias ? bias + k0 : NULL,
					 dst + k0 * g->oh * g->ow);
	}
	skd_free(u, ubytes);
	return rc;
}

int skd_winograd_forward(int m, int64_t n, int64_t cin, int64_t h, int64_t w, int64_t cout,
			 int64_t ph, int64_t pw, const float *x, const float *wt, const float *b,
			 float *y)
{
	wg_geom g = geometry(m, n, h, w, ph, pw);
	if (skd_wg_packed_for(&g, cin, cout))
		return skd_wg_forward_packed(&g, cin, cout, x, wt, false, b, y);
	return weights_then_forward(&g, cin, cout, x, wt, false, b, y);
}

int skd_winograd_backward_input(int m, int64_t n, int64_t cin, int64_t h, int64_t w,
				int64_t cout, int64_t ph, int64_t pw, const float *dy,
				const float *wt, float *dx)
{
	/* dy is (h + 2ph − 2) x (w + 2pw − 2); padded by 2 − p it gives back h x w */
	wg_geom g = geometry(m, n, h + 2 * ph - 2, w + 2 * pw - 2, 2 - ph, 2 - pw);
	if (skd_wg_packed_for(&g, cout, cin))
		return skd_wg_forward_packed(&g, cout, cin, dy, wt, true, NULL, dx);
	return weights_then_forward(&g, cout, cin, dy, wt, true, NULL, dx);
}

int skd_winograd_backward_weight(int m, int64_t n, int64_t cin, int64_t h, int64_t w,
				 int64_t cout, int64_t ph, int64_t pw, const float *x,
				 const float *dy, float *dw)
{
	wg_geom g = geometry(m, n, h, w, ph, pw);
	int64_t aa = g.k->alpha * g.k->alpha, crow = skd_wg_chunk_rows(&g, cin, cout);
	size_t vbytes = sizeof(float) * aa * cin * crow * g.tiles_w;
	size_t tbytes = sizeof(float) * aa * cout * crow * g.tiles_w;
	size_t ubytes = sizeof(float) * aa * cout * cin;
	float *v = skd_alloc(vbytes), *dyt = v ? skd_alloc(tbytes) : NULL;
	float *du = dyt ? skd_alloc(ubytes) : NULL;
	int rc = SKD_ERR;
	if (!du)
		goto done;
	/* chunks add into du in a fixed order: the first GEMM of each ξ overwrites */
	for (int64_t row0 = 0; row0 < g.rows; row0 += crow) {
		int64_t nrows = g.rows - row0 < crow ? g.rows - row0 : crow;
		int64_t tpc = nrows * g.tiles_w;
		skd_wg_transform_input(&g, x, cin, row0, nrows, v);
		transform_grad_output(&g, dy, cout, row0, nrows, dyt);
#pragma omp parallel for schedule(static) if (skd_blis_threads_get() == 1 && skd_threads_get() > 1)
		for (int64_t xi = 0; xi < aa; xi++)
			skd_sgemm(false, true, cout, cin, tpc, 1.0f, dyt + xi * cout * tpc, tpc,
				  v + xi * cin * tpc, tpc, row0 == 0 ? 0.0f : 1.0f,
				  du + xi * cout * cin, cin);
	}
	if (g.rows == 0)
		memset(du, 0, ubytes);
	transform_weight_grad(g.k, du, cout, cin, dw);
	rc = SKD_OK;
done:
	skd_free(v, vbytes);
	skd_free(dyt, tbytes);
	skd_free(du, ubytes);
	return rc;
}

/* ---------- the algorithm switch and the per-layer choice ---------- */

static const char *const algo_names[] = {"auto", "direct", "winograd2", "winograd4"};
static skd_conv_algo algo_setting;
static bool algo_known;

const char *skd_conv_algo_name(skd_conv_algo a)
{
	return (unsigned)a < sizeof algo_names / sizeof *algo_names ? algo_names[a] : "?";
}

int skd_conv_algo_parse(const char *name, skd_conv_algo *a)
{
	for (unsigned i = 0; name && i < sizeof algo_names / sizeof *algo_names; i++)
		if (!strcmp(name, algo_names[i])) {
			*a = (skd_conv_algo)i;
			return SKD_OK;
		}
	return skd_error("conv_algo: expects auto, direct, winograd2 or winograd4, got '%s'",
			 name ? name : "(nothing)");
}

skd_conv_algo skd_conv_algo_get(void)
{
	if (!algo_known) {
		const char *env = getenv("SKD_CONV_ALGO");
		algo_setting = SKD_CONV_AUTO;
		if (env && *env && skd_conv_algo_parse(env, &algo_setting)) {
			fprintf(stderr, "skd: SKD_CONV_ALGO: %s; using auto\n", skd_last_error());
			algo_setting = SKD_CONV_AUTO;
		}
		algo_known = true;
	}
	return algo_setting;
}

void skd_conv_algo_set(skd_conv_algo a)
{
	algo_setting = a;
	algo_known = true;
}

/* The rules: predicted time in units of one GEMM flop,
 *
 *   direct    18·P·ci·co + IM2COL·9·P·ci
 *   Winograd  2·T·α²·ci·co + TRANSFORM·T·α²·(ci + co) + WEIGHT·α²·ci·co + ROW·R·(ci + co)
 *             + CALL [+ S2B·P·(ci + co) when dilated]
 *
 * for P output pixels, T tiles in R tile rows (of the sub-grids when dilated), ci and co
 * channels. The GEMM terms are one pass's; the other terms' costs were fitted (least squares,
 * relative, non-negative) to measured times, so for a training step they also carry the two
 * backward passes. Rerun the fits with bench_winograd's `calibrate` (training step) and
 * `calibrate-forward` (forward alone) modes.
 *
 * A training step (forward + both backward passes): 24 layers from 3→4 channels to 512→512,
 * maps 4x4 to 64x64, dilation 1, 2 and 4, batch 8 mostly, measured one-threaded in CPU time
 * (`SKD_THREADS=1 SKD_BENCH_CLOCK=cpu bench_winograd calibrate`). The fit picks the fastest
 * path for 22 of them and loses ≤ 13% on the other two; reruns on the shared machine move a
 * few near-ties (20 to 22 of 24). Winograd wins from about 8 channels on maps of 8x8 and more;
 * thin layers on small maps, and F(4,3) on maps of 4x4 (tiny GEMMs), stay direct or take
 * F(2,3).
 *
 * A forward alone (a frozen teacher, inference): 24 layers at batch 1, 2, 4 and 8, from the
 * stem to a PSPNet head's 4096→512, at two threads (`SKD_THREADS=2 bench_winograd
 * calibrate-forward`): fastest path for 23 of 24, total time of the picks within 0.1% of the
 * fastest's (one thread, CPU time: 19 of 24, within 1.2%). Without the training step's
 * backward passes to share it, the weight transform weighs twice as much: at batch 1 a head's
 * 4096→512 kernel is 16·4096·512 floats through F(2,3) but 36·4096·512 through F(4,3), written
 * and read for 32 tiles, and F(2,3) was 1.3x faster there. WEIGHT_PACKED is the same term for
 * calls that take winograd_packed.c (≤ 128 tiles in all), where the kernel is transformed
 * into cache and never written out: estimated from the packed layer4 and head times (the
 * rest of the fit unchanged); with it F(4,3) takes every frozen layer of 16x32 and more at
 * batch 1, the fastest path for 21 of the 24 layers (the three others thin or 8x16 maps, ≤ 0.14
 * ms off). The training step's WEIGHT_PACKED is its WEIGHT scaled by the same ratio, not
 * fitted: at batch 8 no layer takes the packed forward. CALL is the fixed cost of a Winograd
 * call (≈ 0.2 ms: scratch, threads). */
typedef struct rule_costs {
	double im2col, transform, weight, weight_packed, row, s2b, call;
} rule_costs;

static const rule_costs STEP_COSTS = {28.0, 40.0, 80.0, 25.0, 2500.0, 135.0, 0.0};
static const rule_costs FORWARD_COSTS = {100.0, 72.0, 170.0, 50.0, 0.0, 135.0, 3e7};

/* Past this much scratch (transformed kernel, and a chunk's transformed tiles in and out) the
 * rule leaves a layer to the direct path, whose column buffer is capped at 16 MiB: a PSPNet
 * head's 4096 -> 512 conv would take 470 MiB through F(4,3). A forced path ignores it. */
#define SCRATCH_MAX ((int64_t)256 << 20)

static bool eligible(const skd_conv_shape *s)
{
	if (s->kh != 3 || s->kw != 3 || s->sh != 1 || s->sw != 1 || s->groups != 1)
		return false;
	if (s->n < 1 || s->cin < 1 || s->cout < 1)
		return false;
	if (s->dh == 1 && s->dw == 1)
		return true;
	return s->ph == s->dh && s->pw == s->dw; /* space-to-batch */
}

/* The Winograd term of a rule for tile m on n images with oh x ow outputs; "never" when its
 * scratch would pass SCRATCH_MAX. */
static double winograd_cost(const rule_costs *c, int m, int64_t n, int64_t cin, int64_t cout,
			    int64_t oh, int64_t ow)
{
	wg_geom g = geometry(m, n, oh, ow, 1, 1); /* padded by 1, the output is oh x ow */
	double aa = (m + 2) * (m + 2), ci = (double)cin, co = (double)cout;
	double rows = (double)g.rows, tiles = rows * g.tiles_w;
	if (skd_wg_packed_for(&g, cin, cout)) { /* no transformed kernel in memory, no blocks */
		if (sizeof(float) * aa * tiles * (2.0 * ci + co) > (double)SCRATCH_MAX)
			return 1e300; /* tiles in, their panels, products out */
		return tiles * aa * (2.0 * ci * co + c->transform * (ci + co)) +
		       c->weight_packed * aa * ci * co + c->row * rows * (ci + co) + c->call;
	}
	int64_t block = kernel_block((m + 2) * (m + 2), cin, cout);
	int64_t chunk = skd_wg_chunk_rows(&g, cin, block) * g.tiles_w;
	double cb = (double)block, blocks = (double)((cout + block - 1) / block);
	if (sizeof(float) * aa * (ci * cb + (double)chunk * (ci + cb)) > (double)SCRATCH_MAX)
		return 1e300;
	return tiles * aa * (2.0 * ci * co + c->transform * (blocks * ci + co)) +
	       c->weight * aa * ci * co + c->row * rows * (blocks * ci + co) + c->call;
}

int skd_conv_fast_plan(const skd_conv_shape *s)
{
	skd_conv_algo a = skd_conv_algo_get();
	if (a == SKD_CONV_DIRECT || !eligible(s))
		return 0;
	if (a == SKD_CONV_WINOGRAD2)
		return 2;
	if (a == SKD_CONV_WINOGRAD4)
		return 4;
	const rule_costs *c = s->forward_only ? &FORWARD_COSTS : &STEP_COSTS;
	int64_t oh = s->h + 2 * s->ph - 2 * s->dh, ow = s->w + 2 * s->pw - 2 * s->dw;
	double pixels = (double)s->n * oh * ow, ci = (double)s->cin, co = (double)s->cout;
	double direct = pixels * (18.0 * ci * co + c->im2col * 9.0 * ci);
	int64_t n = s->n, wh = oh, ww = ow;
	double extra = 0.0;
	if (s->dh > 1 || s->dw > 1) { /* sub-grids, and the copies into and out of them */
		n *= s->dh * s->dw;
		wh = (s->h + s->dh - 1) / s->dh;
		ww = (s->w + s->dw - 1) / s->dw;
		extra = c->s2b * pixels * (ci + co);
	}
	double c2 = winograd_cost(c, 2, n, s->cin, s->cout, wh, ww) + extra;
	double c4 = winograd_cost(c, 4, n, s->cin, s->cout, wh, ww) + extra;
	if (direct <= c2 && direct <= c4)
		return 0;
	return c4 <= c2 ? 4 : 2;
}

int skd_conv_fast_forward(const skd_conv_shape *s, int m, const float *x, const float *w,
			  const float *b, float *y)
{
	if (s->dh > 1 || s->dw > 1)
		return skd_s2b_forward(m, s->n, s->cin, s->h, s->w, s->cout, s->dh, s->dw, x, w, b,
				       y);
	return skd_winograd_forward(m, s->n, s->cin, s->h, s->w, s->cout, s->ph, s->pw, x, w, b,
				    y);
}

int skd_conv_fast_backward(const skd_conv_shape *s, int m, const float *x, const float *w,
			   const float *dy, float *dx, float *dw)
{
	if (s->dh > 1 || s->dw > 1)
		return skd_s2b_backward(m, s->n, s->cin, s->h, s->w, s->cout, s->dh, s->dw, x, w,
					dy, dx, dw);
	if (dx && skd_winograd_backward_input(m, s->n, s->cin, s->h, s->w, s->cout, s->ph, s->pw,
					      dy, w, dx))
		return SKD_ERR;
	if (dw && skd_winograd_backward_weight(m, s->n, s->cin, s->h, s->w, s->cout, s->ph,
					       s->pw, x, dy, dw))
		return SKD_ERR;
	return SKD_OK;
}
