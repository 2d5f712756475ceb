/* winograd.h — the arithmetic-saving convolution paths behind skd_conv2d (conv2d.c), which
 * stays the one entry point and keeps its im2col path as the reference these are tested
 * against. Internal to core/: callers outside it use skd_conv2d and the algorithm switch.
 *
 *   winograd.c      F(2x2,3x3) and F(4x4,3x3) (Lavin & Gray 2015) for 3x3 stride-1
 *                   convolutions: forward, backward-input (a forward with the kernel rotated),
 *                   backward-weight (the transposed algorithm); the per-layer choice.
 *   winograd_packed.c  the same forward without a transformed kernel in memory, on BLIS's
 *                   micro-kernel (ukernel.c), for a frozen network's small batches.
 *   conv2d_s2b.c    a dilation-d 3x3 convolution with padding d as d·d ordinary ones on the
 *                   interleaved sub-grids (space-to-batch), which then take the Winograd path.
 *
 * All arrays are contiguous row-major float: x (n,cin,h,w), weight (cout,cin,3,3), y and dy
 * (n,cout,oh,ow). Every function returns SKD_OK, or SKD_ERR with a message (out of memory).
 */
#ifndef SKD_WINOGRAD_H
#define SKD_WINOGRAD_H

#include <stdbool.h>
#include <stdint.h>

/* ---------- the algorithm switch (SKD_CONV_ALGO, skd.conv_algo) ---------- */

typedef enum skd_conv_algo {
	SKD_CONV_AUTO,      /* per layer, by the rule in skd_conv_fast_plan */
	SKD_CONV_DIRECT,    /* im2col + GEMM everywhere */
	SKD_CONV_WINOGRAD2, /* F(2x2,3x3) on every layer that can take it */
	SKD_CONV_WINOGRAD4, /* F(4x4,3x3) likewise */
} skd_conv_algo;

/* The setting in force: skd_conv_algo_set's, else SKD_CONV_ALGO from the environment
 * (direct|winograd2|winograd4|auto), else auto. */
skd_conv_algo skd_conv_algo_get(void);
void skd_conv_algo_set(skd_conv_algo a);
const char *skd_conv_algo_name(skd_conv_algo a);
/* SKD_OK and *a set, or SKD_ERR with a message listing the names. */
int skd_conv_algo_parse(const char *name, skd_conv_algo *a);
/* The instruction set the Winograd transforms run on: "avx512" where the processor has it
 * and SKD_WG_AVX512 is not "0", else "avx2" (both give the same bits). */
const char *skd_winograd_isa(void);

/* ---------- the dispatch ---------- */

/* A convolution as skd_conv2d validated it. forward_only: no gradient will be asked of it
 * (grad mode off, or nothing requires grad: a frozen network), so only its forward counts. */
typedef struct skd_conv_shape {
	int64_t n, cin, h, w, cout, kh, kw;
	int sh, sw, ph, pw, dh, dw, groups;
	bool forward_only;
} skd_conv_shape;

/* The Winograd output tile (2 or 4) this layer takes, or 0 for the direct path. A pure
 * function of the shape, the algorithm switch and the process's fixed settings (SKD_WG_PACKED,
 * the BLIS kernel set), so a layer always takes the same path.
 * Dilation d > 1 (with padding d) means space-to-batch first. A training step (forward and
 * both backward passes) and a forward alone have a rule each: their costs differ. */
int skd_conv_fast_plan(const skd_conv_shape *s);

/* y = conv(x, w) + b (b may be NULL) by plan m (nonzero, from skd_conv_fast_plan). */
int skd_conv_fast_forward(const skd_conv_shape *s, int m, const float *x, const float *w,
			  const float *b, float *y);
/* dx and/or dw (either may be NULL; both are overwritten) from dy by plan m. */
int skd_conv_fast_backward(const skd_conv_shape *s, int m, const float *x, const float *w,
			   const float *dy, float *dx, float *dw);

/* ---------- winograd.c: 3x3, stride 1, dilation 1, groups 1 ----------
 * ph, pw: zero padding on each side; negative values crop instead (backward-input of a layer
 * padded by more than 2 needs that). The output is (h + 2ph − 2) x (w + 2pw − 2). */
int skd_winograd_forward(int m, int64_t n, int64_t cin, int64_t h, int64_t w, int64_t cout,
			 int64_t ph, int64_t pw, const float *x, const float *wt, const float *b,
			 float *y);
/* dx (n,cin,h,w) = the gradient of skd_winograd_forward's input, from dy. */
int skd_winograd_backward_input(int m, int64_t n, int64_t cin, int64_t h, int64_t w,
				int64_t cout, int64_t ph, int64_t pw, const float *dy,
				const float *wt, float *dx);
/* dw (cout,cin,3,3) = the gradient of skd_winograd_forward's weight, from x and dy. */
int skd_winograd_backward_weight(int m, int64_t n, int64_t cin, int64_t h, int64_t w,
				 int64_t cout, int64_t ph, int64_t pw, const float *x,
				 const float *dy, float *dw);

/* ---------- conv2d_s2b.c: 3x3, stride 1, dilation (dh,dw), padding (dh,dw), groups 1 ----
 * The output is (h, w). The sub-grid convolutions take Winograd tile m. */
int skd_s2b_forward(int m, int64_t n, int64_t cin, int64_t h, int64_t w, int64_t cout, int dh,
		    int dw, const float *x, const float *wt, const float *b, float *y);
int skd_s2b_backward(int m, int64_t n, int64_t cin, int64_t h, int64_t w, int64_t cout, int dh,
		     int dw, const float *x, const float *wt, const float *dy, float *dx,
		     float *dwt);

#endif
