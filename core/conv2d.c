/* conv2d.c — 2-d convolution (stride, padding, dilation, groups), forward beside backward.
 *
 * One entry point, skd_conv2d, validates and dispatches. The direct path below is the
 * reference every faster path (Winograd, space-to-batch for dilation) is tested against:
 *
 *   forward          Y[g]  = W[g] · col(X)[g]            (Cout/g x K) · (K x cols)
 *   backward-input   dcol  = W[g]^T · dY[g],  dX += col2im(dcol)
 *   backward-weight  dW[g] = sum over tiles of dY[g] · col(X)[g]^T
 *
 * with K = Cin/g·kh·kw and the columns the output pixels (image, oh, ow). The column matrix
 * is built for one tile at a time: a band of output rows of one image when a map is large,
 * several whole images when maps are small (so that the GEMM is not skinny). That bounds
 * the scratch memory whatever the batch. A 1x1, stride-1, unpadded convolution
 * reads X in place: its column matrix is the NCHW image itself.
 */
#include <stdio.h>
#include <string.h>
#include "ops.h"
#include "parallel.h"
#include "winograd.h"

/* A tile's column matrix holds at most this many floats (16 MiB), and small images are
 * stacked until the GEMM gets at least TILE_MIN_COLS columns. (-D overrides: tuning builds.) */
#ifndef TILE_MAX_FLOATS
#define TILE_MAX_FLOATS (4 << 20)
#endif
#ifndef TILE_MIN_COLS
#define TILE_MIN_COLS 1024
#endif

/* One convolution's sizes: input (n,cin,h,w), weight (cout,cin/groups,kh,kw), output
 * (n,cout,oh,ow); per group cin_g input and cout_g output channels and kdim = cin_g·kh·kw
 * rows of the column matrix. */
typedef struct conv_geom {
	int64_t n, cin, h, w, cout, kh, kw, oh, ow;
	int sh, sw, ph, pw, dh, dw, groups;
	int64_t cin_g, cout_g, kdim;
} conv_geom;

/* ---------- checks ---------- */

static int conv_error_shapes(const char *what, const skd_tensor *t, const char *name)
{
	char s[SKD_SHAPE_STR_LEN];
	return skd_error("conv2d: %s (%s %s)", what, name, skd_shape_str(t, s, sizeof s));
}

static int check_float(const skd_tensor *t, const char *name)
{
	if (t->dtype == SKD_FLOAT32)
		return SKD_OK;
	char what[96];
	snprintf(what, sizeof what, "expects a float32 %s, got %s", name, skd_dtype_name(t->dtype));
	return conv_error_shapes(what, t, name);
}

/* Fills g from the operands, or sets a message naming what is wrong and the shapes. */
static int conv_geometry(const skd_tensor *x, const skd_tensor *w, const skd_tensor *b,
			 const skd_conv2d_params *p, conv_geom *g)
{
	char sx[SKD_SHAPE_STR_LEN], sw[SKD_SHAPE_STR_LEN];
	if (!x || !w)
		return skd_error("conv2d: expects an input and a weight tensor, got nothing");
	if (check_float(x, "input") || check_float(w, "weight") || (b && check_float(b, "bias")))
		return SKD_ERR;
	skd_shape_str(x, sx, sizeof sx);
	skd_shape_str(w, sw, sizeof sw);
	if (x->ndim != 4)
		return skd_error("conv2d: expects a 4-d input (N,C,H,W), got %s", sx);
	if (w->ndim != 4)
		return skd_error("conv2d: expects a 4-d weight (Cout,Cin/groups,kh,kw), got %s "
				 "(input %s)", sw, sx);
	skd_conv2d_params d = {{1, 1}, {0, 0}, {1, 1}, 1};
	if (p)
		d = *p;
	if (d.stride[0] < 1 || d.stride[1] < 1)
		return skd_error("conv2d: stride must be at least 1, got %dx%d", d.stride[0],
				 d.stride[1]);
	if (d.dilation[0] < 1 || d.dilation[1] < 1)
		return skd_error("conv2d: dilation must be at least 1, got %dx%d", d.dilation[0],
				 d.dilation[1]);
	if (d.padding[0] < 0 || d.padding[1] < 0)
		return skd_error("conv2d: padding must not be negative, got %dx%d", d.padding[0],
				 d.padding[1]);
	if (d.groups < 1)
		return skd_error("conv2d: groups must be at least 1, got %d", d.groups);
	*g = (conv_geom){
		.n = x->shape[0], .cin = x->shape[1], .h = x->shape[2], .w = x->shape[3],
		.cout = w->shape[0], .kh = w->shape[2], .kw = w->shape[3],
		.sh = d.stride[0], .sw = d.stride[1], .ph = d.padding[0], .pw = d.padding[1],
		.dh = d.dilation[0], .dw = d.dilation[1], .groups = d.groups,
	};
	if (g->kh < 1 || g->kw < 1)
		return skd_error("conv2d: kernel size must be positive, got %lldx%lld (weight %s)",
				 (long long)g->kh, (long long)g->kw, sw);
	if (g->cin % g->groups)
		return skd_error("conv2d: groups=%d does not divide the input's %lld channels "
				 "(input %s)", g->groups, (long long)g->cin, sx);
	if (g->cout % g->groups)
		return skd_error("conv2d: groups=%d does not divide the weight's %lld output "
				 "channels (weight %s)", g->groups, (long long)g->cout, sw);
	if (w->shape[1] * g->groups != g->cin) {
		if (g->groups == 1)
			return skd_error("conv2d: weight expects %lld input channels, input has %lld "
					 "(input %s)", (long long)w->shape[1], (long long)g->cin, sx);
		return skd_error("conv2d: weight %s with groups=%d expects %lld input channels "
				 "(%lld per group), input has %lld (input %s)", sw, g->groups,
				 (long long)(w->shape[1] * g->groups), (long long)w->shape[1],
				 (long long)g->cin, sx);
	}
	if (b && (b->ndim != 1 || b->shape[0] != g->cout)) {
		char sb[SKD_SHAPE_STR_LEN];
		return skd_error("conv2d: bias expects %lld elements (one per output channel of "
				 "weight %s), got %s", (long long)g->cout, sw,
				 skd_shape_str(b, sb, sizeof sb));
	}
	/* reach of the dilated kernel against the padded input; C division truncates toward
	 * zero, so an input smaller than the kernel must be caught before dividing */
	int64_t reach_h = g->dh * (g->kh - 1) + 1, reach_w = g->dw * (g->kw - 1) + 1;
	int64_t span_h = g->h + 2 * (int64_t)g->ph, span_w = g->w + 2 * (int64_t)g->pw;
	if (span_h < reach_h || span_w < reach_w)
		return skd_error("conv2d: output size would be empty: input %s padded to %lldx%lld "
				 "is smaller than the kernel's reach %lldx%lld (kernel %lldx%lld, "
				 "dilation %dx%d)", sx, (long long)span_h, (long long)span_w,
				 (long long)reach_h, (long long)reach_w, (long long)g->kh,
				 (long long)g->kw, g->dh, g->dw);
	g->oh = (span_h - reach_h) / g->sh + 1;
	g->ow = (span_w - reach_w) / g->sw + 1;
	g->cin_g = g->cin / g->groups;
	g->cout_g = g->cout / g->groups;
	g->kdim = g->cin_g * g->kh * g->kw;
	return SKD_OK;
}

/* ---------- im2col and col2im ---------- */

/* The outputs o in [*lo, *hi) (within [0, out)) whose input index o·s + off lies in [0, in):
 * the rest read padding. */
static void valid_range(int64_t out, int64_t in, int s, int64_t off, int64_t *lo, int64_t *hi)
{
	int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
	int64_t h = in - 1 - off < 0 ? 0 : (in - 1 - off) / s + 1;
	*lo = l < out ? l : out;
	*hi = h < out ? h : out;
	if (*hi < *lo)
		*hi = *lo;
}

/* col (kdim x nimg·noh·ow, rows of ldc) from the images at x (the group's first channel of
 * the tile's first image): row (c, i, j), column (image, oh, ow) holds
 * x[image][c][oh·sh − ph + i·dh][ow·sw − pw + j·dw], or 0 in the padding. Only the padding
 * is zeroed; stride-1 rows are straight copies. */
static void im2col(const conv_geom *g, const float *x, int64_t nimg, int64_t oh0, int64_t noh,
		   float *col, int64_t ldc)
{
	int64_t hw = g->h * g->w, istride = g->cin * hw, kk = g->kh * g->kw, band = noh * g->ow;
#pragma omp parallel for schedule(static) if (g->kdim * nimg * band > SKD_PARALLEL_GRAIN)
	for (int64_t r = 0; r < g->kdim; r++) {
		int64_t c = r / kk, i = (r / g->kw) % g->kh, j = r % g->kw;
		int64_t off = j * g->dw - g->pw, lo, hi;
		valid_range(g->ow, g->w, g->sw, off, &lo, &hi);
		for (int64_t im = 0; im < nimg; im++) {
			const float *xc = x + im * istride + c * hw;
			float *dst = col + r * ldc + im * band;
			for (int64_t oh = oh0; oh < oh0 + noh; oh++, dst += g->ow) {
				int64_t ih = oh * g->sh - g->ph + i * g->dh;
				if (ih < 0 || ih >= g->h) {
					memset(dst, 0, sizeof(float) * g->ow);
					continue;
				}
				const float *xrow = xc + ih * g->w;
				for (int64_t o = 0; o < lo; o++)
					dst[o] = 0.0f;
				if (g->sw == 1)
					memcpy(dst + lo, xrow + lo + off, sizeof(float) * (hi - lo));
				else
					for (int64_t o = lo; o < hi; o++)
						dst[o] = xrow[o * g->sw + off];
				for (int64_t o = hi; o < g->ow; o++)
					dst[o] = 0.0f;
			}
		}
	}
}

/* The adjoint of im2col: dx (same geometry as im2col's x) += the columns scattered back.
 * One thread owns one (image, channel) plane and adds its kh·kw rows in a fixed order. */
static void col2im(const conv_geom *g, const float *col, int64_t ldc, int64_t nimg, int64_t oh0,
		   int64_t noh, float *dx)
{
	int64_t hw = g->h * g->w, istride = g->cin * hw, band = noh * g->ow;
#pragma omp parallel for schedule(static) if (g->kdim * nimg * band > SKD_PARALLEL_GRAIN)
	for (int64_t q = 0; q < g->cin_g * nimg; q++) {
		int64_t c = q / nimg, im = q % nimg;
		float *dxc = dx + im * istride + c * hw;
		for (int64_t i = 0; i < g->kh; i++)
			for (int64_t j = 0; j < g->kw; j++) {
				int64_t r = (c * g->kh + i) * g->kw + j;
				int64_t off = j * g->dw - g->pw, lo, hi;
				valid_range(g->ow, g->w, g->sw, off, &lo, &hi);
				const float *src = col + r * ldc + im * band;
				for (int64_t oh = oh0; oh < oh0 + noh; oh++, src += g->ow) {
					int64_t ih = oh * g->sh - g->ph + i * g->dh;
					if (ih < 0 || ih >= g->h)
						continue;
					float *xrow = dxc + ih * g->w;
					if (g->sw == 1)
						for (int64_t o = lo; o < hi; o++)
							xrow[o + off] += src[o];
					else
						for (int64_t o = lo; o < hi; o++)
							xrow[o * g->sw + off] += src[o];
				}
			}
	}
}

/* ---------- tiles of output pixels ---------- */

static bool is_pointwise(const conv_geom *g)
{
	return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* A tile is nimg whole images, or (nimg = 1) a band of noh output rows of one image. */
typedef struct tile_plan {
	int64_t nimg, noh;
	int64_t max_cols; /* columns of the largest tile */
} tile_plan;

static tile_plan plan_tiles(const conv_geom *g)
{
	int64_t ohw = g->oh * g->ow;
	if (is_pointwise(g))
		return (tile_plan){1, g->oh, ohw};
	int64_t cap = TILE_MAX_FLOATS / (g->kdim > 0 ? g->kdim : 1);
	if (cap < g->ow)
		cap = g->ow;
	if (ohw > cap) {
		int64_t noh = cap / g->ow;
		return (tile_plan){1, noh, noh * g->ow};
	}
	int64_t nimg = (TILE_MIN_COLS + ohw - 1) / ohw;
	if (nimg > cap / ohw)
		nimg = cap / ohw;
	if (nimg > g->n)
		nimg = g->n;
	if (nimg < 1)
		nimg = 1;
	return (tile_plan){nimg, g->oh, nimg * ohw};
}

/* out (C x nimg·ohw) <-> NCHW images n0.. : the layout change a stacked-images tile needs. */
static void stack_images(const conv_geom *g, int64_t c, const float *src, int64_t n0,
			 int64_t nimg, float *dst)
{
	int64_t ohw = g->oh * g->ow;
#pragma omp parallel for schedule(static) if (c * nimg * ohw > SKD_PARALLEL_GRAIN)
	for (int64_t q = 0; q < c * nimg; q++) {
		int64_t ch = q / nimg, im = q % nimg;
		memcpy(dst + ch * nimg * ohw + im * ohw, src + ((n0 + im) * c + ch) * ohw,
		       sizeof(float) * ohw);
	}
}

static void unstack_images(const conv_geom *g, const float *src, const float *bias,
			   int64_t n0, int64_t nimg, float *y)
{
	int64_t ohw = g->oh * g->ow, c = g->cout;
#pragma omp parallel for schedule(static) if (c * nimg * ohw > SKD_PARALLEL_GRAIN)
	for (int64_t q = 0; q < c * nimg; q++) {
		int64_t ch = q / nimg, im = q % nimg;
		const float *s = src + ch * nimg * ohw + im * ohw;
		float *d = y + ((n0 + im) * c + ch) * ohw, bv = bias ? bias[ch] : 0.0f;
		for (int64_t i = 0; i < ohw; i++)
			d[i] = s[i] + bv;
	}
}

/* ---------- the direct path: forward ---------- */

/* y (N,Cout,OH,OW) = conv(x, w) + b; x, w contiguous. */
static int conv2d_forward_direct(const conv_geom *g, const float *x, const float *w,
				 const float *b, float *y)
{
	tile_plan t = plan_tiles(g);
	bool direct = is_pointwise(g);
	int64_t hw = g->h * g->w, ohw = g->oh * g->ow;
	size_t col_bytes = direct ? 0 : sizeof(float) * g->kdim * t.max_cols;
	size_t stack_bytes = t.nimg > 1 ? sizeof(float) * g->cout * t.max_cols : 0;
	float *col = col_bytes ? skd_alloc(col_bytes) : NULL;
	float *stack = stack_bytes ? skd_alloc(stack_bytes) : NULL;
	if ((col_bytes && !col) || (stack_bytes && !stack)) {
		skd_free(col, col_bytes);
		skd_free(stack, stack_bytes);
		return SKD_ERR;
	}
	for (int64_t n0 = 0; n0 < g->n; n0 += t.nimg) {
		int64_t nimg = g->n - n0 < t.nimg ? g->n - n0 : t.nimg;
		for (int64_t oh0 = 0; oh0 < g->oh; oh0 += t.noh) {
			int64_t noh = g->oh - oh0 < t.noh ? g->oh - oh0 : t.noh;
			int64_t cols = nimg * noh * g->ow;
			for (int gr = 0; gr < g->groups; gr++) {
				const float *xg = x + (n0 * g->cin + gr * g->cin_g) * hw;
				const float *src = xg + oh0 * g->w;
				int64_t ld_src = hw;
				if (!direct) {
					im2col(g, xg, nimg, oh0, noh, col, cols);
					src = col;
					ld_src = cols;
				}
				float *dst = t.nimg > 1 ? stack + gr * g->cout_g * cols
							: y + (n0 * g->cout + gr * g->cout_g) * ohw + oh0 * g->ow;
				skd_sgemm(false, false, g->cout_g, cols, g->kdim, 1.0f,
					  w + gr * g->cout_g * g->kdim, g->kdim, src, ld_src, 0.0f, dst,
					  t.nimg > 1 ? cols : ohw);
			}
			if (t.nimg > 1) {
				unstack_images(g, stack, b, n0, nimg, y);
			} else if (b) {
				float *yt = y + n0 * g->cout * ohw + oh0 * g->ow;
				int64_t len = noh * g->ow;
#pragma omp parallel for schedule(static) if (g->cout * len > SKD_PARALLEL_GRAIN)
				for (int64_t c = 0; c < g->cout; c++)
					for (int64_t i = 0; i < len; i++)
						yt[c * ohw + i] += b[c];
			}
		}
	}
	skd_free(col, col_bytes);
	skd_free(stack, stack_bytes);
	return SKD_OK;
}

/* ---------- the direct path: backward ---------- */

/* dx (zeroed unless pointwise) and/or dw (either may be NULL) from dy; x, w contiguous.
 * Both walk the same tiles, so a stacked tile of dy is gathered once for the two. */
static int conv2d_backward_direct(const conv_geom *g, const float *x, const float *w,
				  const float *dy, float *dx, float *dw)
{
	tile_plan t = plan_tiles(g);
	bool direct = is_pointwise(g);
	int64_t hw = g->h * g->w, ohw = g->oh * g->ow;
	size_t col_bytes = direct ? 0 : sizeof(float) * g->kdim * t.max_cols;
	size_t stack_bytes = t.nimg > 1 ? sizeof(float) * g->cout * t.max_cols : 0;
	float *col = col_bytes && dw ? skd_alloc(col_bytes) : NULL;
	float *dcol = col_bytes && dx ? skd_alloc(col_bytes) : NULL;
	float *stack = stack_bytes ? skd_alloc(stack_bytes) : NULL;
	int rc = SKD_ERR;
	if ((col_bytes && ((dw && !col) || (dx && !dcol))) || (stack_bytes && !stack))
		goto done;
	if (dw && g->n == 0)
		memset(dw, 0, sizeof(float) * g->cout * g->kdim);
	for (int64_t n0 = 0; n0 < g->n; n0 += t.nimg) {
		int64_t nimg = g->n - n0 < t.nimg ? g->n - n0 : t.nimg;
		if (t.nimg > 1)
			stack_images(g, g->cout, dy, n0, nimg, stack);
		for (int64_t oh0 = 0; oh0 < g->oh; oh0 += t.noh) {
			int64_t noh = g->oh - oh0 < t.noh ? g->oh - oh0 : t.noh;
			int64_t cols = nimg * noh * g->ow;
			bool first = n0 == 0 && oh0 == 0;
			for (int gr = 0; gr < g->groups; gr++) {
				const float *wg = w + gr * g->cout_g * g->kdim;
				const float *dyg = t.nimg > 1 ? stack + gr * g->cout_g * cols
							      : dy + (n0 * g->cout + gr * g->cout_g) * ohw +
								    oh0 * g->ow;
				int64_t ld_dy = t.nimg > 1 ? cols : ohw;
				int64_t xoff = (n0 * g->cin + gr * g->cin_g) * hw;
				if (dw) { /* dW[g] (+)= dY[g] · col^T */
					const float *src = x + xoff + oh0 * g->w;
					int64_t ld_src = hw;
					if (!direct) {
						im2col(g, x + xoff, nimg, oh0, noh, col, cols);
						src = col;
						ld_src = cols;
					}
					skd_sgemm(false, true, g->cout_g, g->kdim, cols, 1.0f, dyg, ld_dy,
						  src, ld_src, first ? 0.0f : 1.0f,
						  dw + gr * g->cout_g * g->kdim, g->kdim);
				}
				if (dx && direct) { /* every dx element is written exactly once */
					skd_sgemm(true, false, g->kdim, cols, g->cout_g, 1.0f, wg, g->kdim,
						  dyg, ld_dy, 0.0f, dx + xoff + oh0 * g->w, hw);
				} else if (dx) {
					skd_sgemm(true, false, g->kdim, cols, g->cout_g, 1.0f, wg, g->kdim,
						  dyg, ld_dy, 0.0f, dcol, cols);
					col2im(g, dcol, cols, nimg, oh0, noh, dx + xoff);
				}
			}
		}
	}
	rc = SKD_OK;
done:
	skd_free(col, col_bytes);
	skd_free(dcol, col_bytes);
	skd_free(stack, stack_bytes);
	return rc;
}

/* db[c] = sum of dy over images and pixels, each channel summed in a fixed order. */
static void bias_grad(const conv_geom *g, const float *dy, float *db)
{
	int64_t ohw = g->oh * g->ow;
#pragma omp parallel for schedule(static) if (g->n * g->cout * ohw > SKD_PARALLEL_GRAIN)
	for (int64_t c = 0; c < g->cout; c++) {
		double s = 0.0;
		for (int64_t n = 0; n < g->n; n++) {
			const float *p = dy + (n * g->cout + c) * ohw;
			float part = 0.0f;
			for (int64_t i = 0; i < ohw; i++)
				part += p[i];
			s += part;
		}
		db[c] = (float)s;
	}
}

/* ---------- the entry point and its autograd ---------- */

static void node_geometry(const skd_node *node, skd_conv2d_params *p)
{
	for (int k = 0; k < 2; k++) {
		p->stride[k] = (int)node->iarg[k];
		p->padding[k] = (int)node->iarg[2 + k];
		p->dilation[k] = (int)node->iarg[4 + k];
	}
	p->groups = (int)node->iarg[6];
}

/* The layer as the fast paths (winograd.h) see it. */
static skd_conv_shape fast_shape(const conv_geom *g, bool forward_only)
{
	return (skd_conv_shape){g->n, g->cin, g->h, g->w, g->cout, g->kh, g->kw,
				g->sh, g->sw, g->ph, g->pw, g->dh, g->dw, g->groups, forward_only};
}

static int conv2d_backward(skd_node *node, const skd_tensor *dy, skd_tensor **gin)
{
	skd_conv2d_params p;
	node_geometry(node, &p);
	conv_geom g;
	if (conv_geometry(node->saved[0], node->saved[1], NULL, &p, &g))
		return SKD_ERR;
	bool need_x = skd_node_needs_grad(node, 0), need_w = skd_node_needs_grad(node, 1);
	int rc = SKD_ERR;
	skd_tensor *x = NULL, *w = NULL, *dx = NULL, *dw = NULL, *db = NULL;
	if (need_x || need_w) {
		x = skd_tensor_contiguous_nograd(node->saved[0]);
		w = skd_tensor_contiguous_nograd(node->saved[1]);
		if (!x || !w)
			goto done;
	}
	int plan = (int)node->iarg[7]; /* the path the forward took */
	/* col2im adds into dx; the pointwise and the fast paths write every element */
	if (need_x && !(dx = is_pointwise(&g) || plan ? skd_tensor_empty_like(x)
						       : skd_tensor_zeros_like(x)))
		goto done;
	if (need_w && !(dw = skd_tensor_empty_like(w)))
		goto done;
	skd_conv_shape fs = fast_shape(&g, false);
	if ((need_x || need_w) && plan &&
	    skd_conv_fast_backward(&fs, plan, skd_tensor_f32(x), skd_tensor_f32(w),
				   skd_tensor_f32(dy), dx ? skd_tensor_f32(dx) : NULL,
				   dw ? skd_tensor_f32(dw) : NULL))
		goto done;
	if ((need_x || need_w) && !plan &&
	    conv2d_backward_direct(&g, skd_tensor_f32(x), skd_tensor_f32(w), skd_tensor_f32(dy),
				   dx ? skd_tensor_f32(dx) : NULL, dw ? skd_tensor_f32(dw) : NULL))
		goto done;
	if (skd_node_needs_grad(node, 2)) {
		if (!(db = skd_tensor_empty(SKD_FLOAT32, 1, &g.cout)))
			goto done;
		bias_grad(&g, skd_tensor_f32(dy), skd_tensor_f32(db));
	}
	gin[0] = dx;
	gin[1] = dw;
	gin[2] = db;
	dx = dw = db = NULL;
	rc = SKD_OK;
done:
	skd_tensor_release(x);
	skd_tensor_release(w);
	skd_tensor_release(dx);
	skd_tensor_release(dw);
	skd_tensor_release(db);
	return rc;
}

skd_tensor *skd_conv2d(skd_tensor *x, skd_tensor *w, skd_tensor *b, const skd_conv2d_params *p)
{
	conv_geom g;
	if (conv_geometry(x, w, b, p, &g))
		return NULL;
	skd_tensor *xc = skd_tensor_contiguous_nograd(x);
	skd_tensor *wc = xc ? skd_tensor_contiguous_nograd(w) : NULL;
	skd_tensor *bc = wc && b ? skd_tensor_contiguous_nograd(b) : NULL;
	int64_t shape[4] = {g.n, g.cout, g.oh, g.ow};
	skd_tensor *y = wc && (bc || !b) ? skd_tensor_empty(SKD_FLOAT32, 4, shape) : NULL;
	/* the dispatch: a Winograd tile (space-to-batch first when dilated) chosen per layer by
	 * skd_conv_fast_plan, or the direct path, the reference they are tested against */
	bool forward_only = !skd_grad_enabled() || !(x->requires_grad || w->requires_grad ||
						      (b && b->requires_grad));
	skd_conv_shape fs = fast_shape(&g, forward_only);
	int plan = skd_conv_fast_plan(&fs);
	if (y && (plan ? skd_conv_fast_forward(&fs, plan, skd_tensor_f32(xc), skd_tensor_f32(wc),
						bc ? skd_tensor_f32(bc) : NULL, skd_tensor_f32(y))
		       : conv2d_forward_direct(&g, skd_tensor_f32(xc), skd_tensor_f32(wc),
					       bc ? skd_tensor_f32(bc) : NULL, skd_tensor_f32(y)))) {
		skd_tensor_release(y);
		y = NULL;
	}
	skd_tensor_release(xc);
	skd_tensor_release(wc);
	skd_tensor_release(bc);
	if (!y)
		return NULL;
	skd_node *node = skd_autograd_record(y, "conv2d", conv2d_backward, 3,
					     (skd_tensor *[]){x, w, b});
	if (node) {
		skd_node_save(node, x);
		skd_node_save(node, w);
		int64_t args[8] = {g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups, plan};
		memcpy(node->iarg, args, sizeof args);
	}
	return y;
}
