/* winograd_internal.h — what winograd.c and winograd_packed.c share: the transform matrices,
 * a convolution's tiling, the lane-wise 2-d transform, and the pieces of a Winograd call that
 * both forwards use (chunks of tile rows, the input and output transforms). Internal to the
 * Winograd files; the rest of core/ goes through winograd.h. */
#ifndef SKD_WINOGRAD_INTERNAL_H
#define SKD_WINOGRAD_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define STRIP 32 /* tiles per strip: the transforms' vector length */
#define MAX_A 6  /* alpha for F(4,3) */
#define MAX_M 4

/* The transform matrices, row-major with fixed row lengths: bt is Bᵀ (alpha x alpha), g is
 * G (alpha x 3), at is Aᵀ (m x alpha). Points 0, ±1, (±2,) ∞. */
typedef struct wg_kind {
	int m, alpha;
	float bt[MAX_A * MAX_A], g[MAX_A * 3], at[MAX_M * MAX_A];
} wg_kind;

static const wg_kind f2 = {
	2, 4,
	{1, 0, -1, 0, 0, 0,
	 0, 1, 1, 0, 0, 0,
	 0, -1, 1, 0, 0, 0,
	 0, 1, 0, -1, 0, 0},
	{1, 0, 0, 0.5f, 0.5f, 0.5f, 0.5f, -0.5f, 0.5f, 0, 0, 1},
	{1, 1, 1, 0, 0, 0,
	 0, 1, -1, -1, 0, 0},
};

static const wg_kind f4 = {
	4, 6,
	{4, 0, -5, 0, 1, 0,
	 0, -4, -4, 1, 1, 0,
	 0, 4, -4, -1, 1, 0,
	 0, -2, -1, 2, 1, 0,
	 0, 2, -1, -2, 1, 0,
	 0, 4, 0, -5, 0, 1},
	{1.0f / 4, 0, 0,
	 -1.0f / 6, -1.0f / 6, -1.0f / 6,
	 -1.0f / 6, 1.0f / 6, -1.0f / 6,
	 1.0f / 24, 1.0f / 12, 1.0f / 6,
	 1.0f / 24, -1.0f / 12, 1.0f / 6,
	 0, 0, 1},
	{1, 1, 1, 1, 1, 0,
	 0, 1, -1, 2, -2, 0,
	 0, 1, 1, 4, 4, 0,
	 0, 1, -1, 8, -8, 1},
};

/* The tiling of one convolution: n images of h x w in, oh x ow out, padding (ph, pw). */
typedef struct wg_geom {
	const wg_kind *k;
	int64_t n, h, w, oh, ow, ph, pw;
	int64_t tiles_h, tiles_w;         /* per image */
	int64_t rows;                     /* tile rows over the batch: n · tiles_h */
} wg_geom;

static inline wg_geom geometry(int m, int64_t n, int64_t h, int64_t w, int64_t ph, int64_t pw)
{
	wg_geom g = {m == 4 ? &f4 : &f2, n, h, w, h + 2 * ph - 2, w + 2 * pw - 2, ph, pw, 0, 0, 0};
	g.tiles_h = (g.oh + m - 1) / m;
	g.tiles_w = (g.ow + m - 1) / m;
	g.rows = n * g.tiles_h;
	return g;
}

/* The 2-d transforms of a strip, out[ξ][lane] from in[·][lane] for STRIP lanes at once
 * (winograd_transforms.c): each one of the five (kernel, kernel gradient, input tiles, output
 * gradient tiles, output tiles) for F(2,3) and F(4,3), compiled for AVX2 and again for AVX-512
 * and chosen once per process. Every lane is one fixed sequence of operations, so both
 * builds give the same bits. */
typedef void wg_transform_fn(const float *const *in, float *const *out);
typedef struct wg_transforms {
	const char *isa;
	/* index 0: F(2,3), 1: F(4,3) */
	wg_transform_fn *weight[2];      /* G g Gᵀ: 9 -> alpha² */
	wg_transform_fn *weight_grad[2]; /* Gᵀ du G: alpha² -> 9 */
	wg_transform_fn *input[2];       /* Bᵀ d B: alpha² -> alpha² */
	wg_transform_fn *grad_output[2]; /* A dY Aᵀ: m² -> alpha² */
	wg_transform_fn *output[2];      /* Aᵀ M A: alpha² -> m² */
} wg_transforms;

/* The AVX-512 build where the processor has it and SKD_WG_AVX512 is not "0", else AVX2. */
const wg_transforms *skd_wg_transforms(void);

/* Points out[ξ] at dst + ξ·stride when the strip is whole (nt == STRIP), else at loc. */
static inline void strip_outputs(float *dst, int64_t stride, int64_t nt, int n, float (*loc)[STRIP],
			  float **out)
{
	for (int xi = 0; xi < n; xi++)
		out[xi] = nt == STRIP ? dst + xi * stride : loc[xi];
}

static inline void flush_outputs(float *dst, int64_t stride, int64_t nt, int n, float (*loc)[STRIP])
{
	if (nt < STRIP)
		for (int xi = 0; xi < n; xi++)
			memcpy(dst + xi * stride, loc[xi], sizeof(float) * nt);
}

/* Tile rows per chunk: enough tiles for GEMMs near BLIS's peak, few enough that the
 * transformed tiles stay bounded whatever the batch (winograd.c). */
int64_t skd_wg_chunk_rows(const wg_geom *g, int64_t ch_in, int64_t ch_out);
/* v[ξ][c][t] = (Bᵀ d B)[ξ] for the input tiles of the chunk's tile rows row0 .. row0+nrows−1. */
void skd_wg_transform_input(const wg_geom *g, const float *x, int64_t nch, int64_t row0,
			    int64_t nrows, float *v);
/* The same as panels of WG_STRIP tiles, vp[ξ][t / STRIP][c][t % STRIP], zero past the last
 * tile: the micro-kernel's packed layout when its tile panels are STRIP wide. */
void skd_wg_transform_input_panels(const wg_geom *g, const float *x, int64_t nch, int64_t row0,
				   int64_t nrows, float *vp);
/* y (n, ych, oh, ow) tiles = Aᵀ M[·][c] A + bias[c] for the first nch channels. */
void skd_wg_transform_output(const wg_geom *g, const float *mm, int64_t nch, int64_t ych,
			     int64_t row0, int64_t nrows, const float *bias, float *y);

/* winograd_packed.c: the forward on the micro-kernel's packed panels, for calls whose chunks
 * are small (a frozen network at batch 1 or 2). skd_wg_packed_for says whether a call of
 * that geometry takes it; skd_wg_forward_packed runs it (rotate: the backward-input kernel). */
bool skd_wg_packed_for(const wg_geom *g, int64_t nin, int64_t nout);
int skd_wg_forward_packed(const wg_geom *g, int64_t nin, int64_t nout, const float *src,
			  const float *wt, bool rotate, const float *bias, float *dst);

#endif
