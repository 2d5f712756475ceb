/* conv2d_s2b.c — a dilated 3x3 convolution (stride 1, dilation (dh, dw), padding equal to the
 * dilation: the "same" convolution of dilated ResNets) as dh·dw ordinary 3x3 convolutions on
 * the interleaved sub-grids of its input (space-to-batch), which take the Winograd path.
 *
 * Output pixel (a + dh·r, b + dw·q) reads input pixels (a + dh·(r + i − 1), b + dw·(q + j − 1)):
 * only sub-grid (a, b) = x[:, :, a::dh, b::dw], at (r + i − 1, q + j − 1). So sub-grid (a, b) of
 * the output is a dilation-1, padding-1 convolution of sub-grid (a, b) of the input, with the
 * same weights. Sub-grids are ceil(h/dh) x ceil(w/dw) when h or w is not a multiple of the
 * dilation; the shorter ones get a zero row or column, which stands exactly where the dilated
 * convolution reads its own zero padding (row a + dh·rows(a) lies in [h, h + dh)), and the
 * outputs computed there are dropped. No tap beyond a sub-grid's border is ever multiplied
 * except that one-pixel frame, where im2col would read dh·dw times as many padding taps.
 *
 *   forward          ys = conv(s2b(x)),                 y  = b2s(ys)
 *   backward-input   dxs = conv_backward_input(s2b(dy)), dx = b2s(dxs)
 *   backward-weight  dw = conv_backward_weight(s2b(x), s2b(dy)): the sum over sub-grids is
 *                    the sum over the batch of sub-grid images
 */
#include <string.h>
#include "parallel.h"
#include "tensor.h"
#include "winograd.h"

/* The sub-grid geometry: sub-grid (a, b) of image i is image (i·dh + a)·dw + b of a batch
 * of n·dh·dw, each hs x ws. */
typedef struct s2b_geom {
	int64_t n, h, w, hs, ws;
	int dh, dw;
} s2b_geom;

static s2b_geom s2b_geometry(int64_t n, int64_t h, int64_t w, int dh, int dw)
{
	return (s2b_geom){n, h, w, (h + dh - 1) / dh, (w + dw - 1) / dw, dh, dw};
}

/* xs (n·dh·dw, c, hs, ws) <- x (n, c, h, w), zero where a sub-grid is shorter. One thread
 * fills all the sub-grids of one input plane; every element is written once. */
static void space_to_batch(const s2b_geom *g, int64_t c, const float *x, float *xs)
{
	int64_t planes = g->n * c, sub = g->hs * g->ws;
#pragma omp parallel for schedule(static) if (planes * g->h * g->w > SKD_PARALLEL_GRAIN)
	for (int64_t p = 0; p < planes; p++) {
		int64_t img = p / c, ch = p % c;
		const float *src = x + p * g->h * g->w;
		for (int a = 0; a < g->dh; a++)
			for (int b = 0; b < g->dw; b++) {
				float *dst = xs + (((img * g->dh + a) * g->dw + b) * c + ch) * sub;
				int64_t nq = (g->w - b + g->dw - 1) / g->dw; /* columns inside */
				for (int64_t r = 0; r < g->hs; r++, dst += g->ws) {
					int64_t row = a + (int64_t)g->dh * r;
					if (row >= g->h) {
						memset(dst, 0, sizeof(float) * g->ws);
						continue;
					}
					const float *s = src + row * g->w + b;
					for (int64_t q = 0; q < nq; q++)
						dst[q] = s[q * g->dw];
					for (int64_t q = nq; q < g->ws; q++)
						dst[q] = 0.0f;
				}
			}
	}
}

/* x (n, c, h, w) <- the inside of the sub-grids xs (n·dh·dw, c, hs, ws). */
static void batch_to_space(const s2b_geom *g, int64_t c, const float *xs, float *x)
{
	int64_t planes = g->n * c, sub = g->hs * g->ws;
#pragma omp parallel for schedule(static) if (planes * g->h * g->w > SKD_PARALLEL_GRAIN)
	for (int64_t p = 0; p < planes; p++) {
		int64_t img = p / c, ch = p % c;
		float *dst = x + p * g->h * g->w;
		for (int a = 0; a < g->dh; a++)
			for (int b = 0; b < g->dw; b++) {
				const float *src = xs + (((img * g->dh + a) * g->dw + b) * c + ch) * sub;
				int64_t nq = (g->w - b + g->dw - 1) / g->dw;
				for (int64_t r = 0; a + (int64_t)g->dh * r < g->h; r++) {
					float *d = dst + (a + (int64_t)g->dh * r) * g->w + b;
					const float *s = src + r * g->ws;
					for (int64_t q = 0; q < nq; q++)
						d[q * g->dw] = s[q];
				}
			}
	}
}

/* A scratch array of the sub-grid batch with c channels. */
static float *sub_alloc(const s2b_geom *g, int64_t c, size_t *bytes)
{
	*bytes = sizeof(float) * g->n * g->dh * g->dw * c * g->hs * g->ws;
	return skd_alloc(*bytes);
}

int skd_s2b_forward(int m, int64_t n, int64_t cin, int64_t h, int64_t w, int64_t cout, int dh,
		    int dw, const float *x, const float *wt, const float *b, float *y)
{
	s2b_geom g = s2b_geometry(n, h, w, dh, dw);
	size_t xb = 0, yb = 0;
	float *xs = sub_alloc(&g, cin, &xb), *ys = xs ? sub_alloc(&g, cout, &yb) : NULL;
	int rc = SKD_ERR;
	if (!ys)
		goto done;
	space_to_batch(&g, cin, x, xs);
	if (skd_winograd_forward(m, n * dh * dw, cin, g.hs, g.ws, cout, 1, 1, xs, wt, b, ys))
		goto done;
	batch_to_space(&g, cout, ys, y);
	rc = SKD_OK;
done:
	skd_free(xs, xb);
	skd_free(ys, yb);
	return rc;
}

int skd_s2b_backward(int m, int64_t n, int64_t cin, int64_t h, int64_t w, int64_t cout, int dh,
		     int dw, const float *x, const float *wt, const float *dy, float *dx,
		     float *dwt)
{
	s2b_geom g = s2b_geometry(n, h, w, dh, dw);
	int64_t nb = n * dh * dw;
	size_t dyb = 0, sb = 0;
	float *dys = sub_alloc(&g, cout, &dyb), *scratch = NULL;
	int rc = SKD_ERR;
	if (!dys)
		goto done;
	space_to_batch(&g, cout, dy, dys);
	if (dx) {
		if (!(scratch = sub_alloc(&g, cin, &sb)))
			goto done;
		if (skd_winograd_backward_input(m, nb, cin, g.hs, g.ws, cout, 1, 1, dys, wt, scratch))
			goto done;
		batch_to_space(&g, cin, scratch, dx);
	}
	if (dwt) {
		if (!scratch && !(scratch = sub_alloc(&g, cin, &sb)))
			goto done;
		space_to_batch(&g, cin, x, scratch);
		if (skd_winograd_backward_weight(m, nb, cin, g.hs, g.ws, cout, 1, 1, scratch, dys,
						 dwt))
			goto done;
	}
	rc = SKD_OK;
done:
	skd_free(dys, dyb);
	skd_free(scratch, sb);
	return rc;
}
