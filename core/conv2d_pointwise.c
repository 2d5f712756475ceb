/* conv2d_pointwise.c — a 1x1 convolution where no gradient is recorded (a frozen teacher's),
 * as products of BLIS's micro-kernel on a weight packed once and kept, with what follows it in
 * a frozen ResNet (folded BatchNorm, residual, ReLU) applied to each block of the output while
 * it is still in cache.
 *
 * Through sgemm a 1x1 convolution packs its weight again on every call, and the engine's split
 * of a lone product between threads (matmul.c) packs the whole of it once per thread: layer4's
 * 2048x512 weight, 4 MB, twice per call to multiply it by 512 pixels. A frozen network's
 * weights do not change, so they are laid out once in the micro-kernel's panels (a pack,
 * kept by the caller between calls) and each call packs only its activations. The pack
 * records which storage it was made from and that storage's version (tensor.h), never a
 * reference to it: any in-place write to the weight, or another weight in its place, makes it
 * stale, and the call packs again in place of the old one. Per call each thread takes whole
 * panels of pixels, so the weight panels are read, never written, and every output element
 * is one fixed sequence of operations whatever the thread count (blocks of input channels
 * added in order).
 */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "affine_row.h"
#include "ops.h"
#include "parallel.h"

/* A block of a thread's packed pixels (pixels x input channels) stays under this, in its
 * core's L2, while every panel of the weight meets it. */
#ifndef PW_PIXELS_BYTES
#define PW_PIXELS_BYTES (512 << 10)
#endif
/* Input channels per block: BLIS's own kc for this kernel family (skx: 384). */
#define PW_KC 384

struct skd_pointwise {
	uint64_t storage_id, version; /* the weight's storage, and its version when packed */
	int64_t offset;               /* the weight's first element in it */
	int64_t cout, cin;
	int pt, pk;                   /* panel widths: pixels, output channels */
	bool pixels_rows;             /* the pixels along the micro-kernel's rows (mr) */
	float *panels;                /* [ceil(cout/pk)][cin][pk], zero past cout, */
	int64_t pstride;              /* each panel 64-byte aligned: cin·pk rounded up to 16 */
	size_t nbytes;
};

bool skd_pointwise_available(void)
{
	static int on = -1;
	if (on < 0) {
		const char *e = getenv("SKD_POINTWISE_PACKED");
		on = !(e && !strcmp(e, "0")) && skd_ukernel_get()->mr > 0;
	}
	return on;
}

void skd_pointwise_free(skd_pointwise *pw)
{
	if (!pw)
		return;
	skd_free(pw->panels, pw->nbytes);
	free(pw);
}

static bool pack_current(const skd_pointwise *pw, const skd_tensor *w)
{
	return pw && pw->storage_id == w->storage->id && pw->version == w->storage->version &&
	       pw->offset == w->offset && pw->cout == w->shape[0] && pw->cin == w->shape[1];
}

/* w (checked by check_args) laid out in the micro-kernel's panels; NULL with an error. */
static skd_pointwise *pack_weight(const skd_tensor *w)
{
	const skd_ukernel *uk = skd_ukernel_get();
	skd_pointwise *pw = calloc(1, sizeof *pw);
	if (!pw)
		return skd_error_null("conv2d_pointwise: out of memory");
	pw->cout = w->shape[0];
	pw->cin = w->shape[1];
	pw->pixels_rows = uk->prefers_cols; /* C by columns: pixels contiguous along mr */
	pw->pt = pw->pixels_rows ? uk->mr : uk->nr;
	pw->pk = pw->pixels_rows ? uk->nr : uk->mr;
	int64_t panels = (pw->cout + pw->pk - 1) / pw->pk;
	pw->pstride = (pw->cin * pw->pk + 15) / 16 * 16;
	pw->nbytes = sizeof(float) * (size_t)(panels * pw->pstride);
	pw->panels = skd_alloc(pw->nbytes);
	if (!pw->panels) {
		free(pw);
		return NULL;
	}
	const float *src = skd_tensor_f32(w);
	int64_t cin = pw->cin, pk = pw->pk, cout = pw->cout, ps = pw->pstride;
#pragma omp parallel for schedule(static) num_threads(skd_threads_get()) if (cout * cin > SKD_PARALLEL_GRAIN)
	for (int64_t p = 0; p < panels; p++) {
		float *dst = pw->panels + p * ps;
		for (int64_t c = 0; c < cin; c++)
			for (int64_t j = 0; j < pk; j++) {
				int64_t o = p * pk + j;
				dst[c * pk + j] = o < cout ? src[o * cin + c] : 0.0f;
			}
	}
	pw->storage_id = w->storage->id;
	pw->version = w->storage->version;
	pw->offset = w->offset;
	return pw;
}

/* Input channels ahead whose pixels pack_pixels asks for while it copies a channel. */
#define PREFETCH_CHANNELS 8

/* ap[u][c][pt] = x's pixels of panel u (of image n), input channels c0 .. c0 + kc, zero past
 * the image's last pixel; panel u at ap + (u - u0)·ustride. Channel by channel, so that each
 * channel's pixels are read as one run, with the same pixels PREFETCH_CHANNELS channels on
 * asked for ahead: panel by panel, each 128-byte read was a whole channel row (hw floats) past
 * the last, which the hardware prefetchers do not follow, and this copy, reading activations
 * that had left the core's L2, was 4 % of a PSPNet-R101 forward at batch 1 (2 % now). */
static void pack_pixels(const float *x, int64_t cin, int64_t hw, int64_t tpanels, int pt,
			int64_t u0, int64_t u1, int64_t c0, int64_t kc, int64_t ustride, float *ap)
{
	for (int64_t c = 0; c < kc; c++) {
		const float *row = x + (c0 + c) * hw; /* the channel's plane in image 0 */
		bool ahead = c + PREFETCH_CHANNELS < kc;
		int64_t n = u0 / tpanels, p0 = u0 % tpanels * pt;
		for (int64_t u = u0; u < u1; u++) {
			const float *src = row + n * cin * hw + p0;
			float *dst = ap + (u - u0) * ustride + c * pt;
			int64_t len = hw - p0 < pt ? hw - p0 : pt;
			if (ahead)
				for (int64_t i = 0; i < len; i += 16)
					_mm_prefetch((const char *)(src + PREFETCH_CHANNELS * hw + i),
						     _MM_HINT_T0);
			if (len == 32 && pt == 32) { /* the usual panel (skx: mr = 32), inline */
				for (int i = 0; i < 32; i++)
					dst[i] = src[i];
			} else {
				memcpy(dst, src, sizeof(float) * (size_t)len);
				memset(dst + len, 0, sizeof(float) * (size_t)(pt - len));
			}
			if ((p0 += pt) >= hw) {
				p0 = 0;
				n++;
			}
		}
	}
}

/* y = y·scale + shift (+ residual) (then ReLU) on one block: nk output channels from k0, np
 * pixels at y (channel stride hw). scale, shift may be NULL. */
static void epilogue(float *y, const float *res, int64_t hw, int64_t k0, int nk, int64_t np,
		     const float *scale, const float *shift, bool relu)
{
	for (int j = 0; j < nk; j++)
		skd_affine_row(y + j * hw, res ? res + j * hw : NULL, np,
			       scale ? scale[k0 + j] : 1.0f, shift ? shift[k0 + j] : 0.0f, relu);
}

static int check_args(const skd_tensor *x, const skd_tensor *w, const skd_tensor *scale,
		      const skd_tensor *shift, const skd_tensor *residual)
{
	char s[SKD_SHAPE_STR_LEN], r[SKD_SHAPE_STR_LEN];
	if (w->dtype != SKD_FLOAT32 || w->ndim != 4 || w->shape[2] != 1 || w->shape[3] != 1 ||
	    w->shape[0] < 1 || w->shape[1] < 1 || !skd_tensor_is_contiguous(w))
		return skd_error("conv2d_pointwise: expects a contiguous float32 weight (Cout, Cin, "
				 "1, 1), got %s %s", skd_dtype_name(w->dtype),
				 skd_shape_str(w, s, sizeof s));
	int64_t cout = w->shape[0], cin = w->shape[1];
	if (x->dtype != SKD_FLOAT32 || x->ndim != 4 || !skd_tensor_is_contiguous(x) ||
	    x->shape[1] != cin)
		return skd_error("conv2d_pointwise: expects a contiguous float32 input (N, %lld, H, "
				 "W), got %s %s", (long long)cin, skd_dtype_name(x->dtype),
				 skd_shape_str(x, s, sizeof s));
	bool grad = skd_grad_enabled();
	if (grad && (x->requires_grad || w->requires_grad))
		return skd_error("conv2d_pointwise: records no gradient, so not on an input or "
				 "weight that requires grad (use conv2d)");
	const skd_tensor *per[2] = {scale, shift};
	const char *names[2] = {"scale", "shift"};
	for (int i = 0; i < 2; i++) {
		if (!per[i])
			continue;
		if (per[i]->dtype != SKD_FLOAT32 || per[i]->ndim != 1 || per[i]->shape[0] != cout ||
		    !skd_tensor_is_contiguous(per[i]))
			return skd_error("conv2d_pointwise: expects %s of shape (%lld), contiguous "
					 "float32, got %s %s", names[i], (long long)cout,
					 skd_dtype_name(per[i]->dtype),
					 skd_shape_str(per[i], s, sizeof s));
		if (grad && per[i]->requires_grad)
			return skd_error("conv2d_pointwise: records no gradient, so not with a %s "
					 "that requires grad", names[i]);
	}
	if (!residual)
		return SKD_OK;
	int64_t want[4] = {x->shape[0], cout, x->shape[2], x->shape[3]};
	if (residual->dtype != SKD_FLOAT32 || residual->ndim != 4 ||
	    memcmp(residual->shape, want, sizeof want) || !skd_tensor_is_contiguous(residual))
		return skd_error("conv2d_pointwise: expects a residual of the output's shape "
				 "%lldx%lldx%lldx%lld, contiguous float32, got %s %s%s",
				 (long long)want[0], (long long)want[1], (long long)want[2],
				 (long long)want[3], skd_dtype_name(residual->dtype),
				 skd_shape_str(residual, r, sizeof r),
				 skd_tensor_is_contiguous(residual) ? "" : " (not contiguous)");
	if (grad && residual->requires_grad)
		return skd_error("conv2d_pointwise: records no gradient, so not with a residual "
				 "that requires grad");
	return SKD_OK;
}

skd_tensor *skd_conv2d_pointwise(const skd_tensor *x, const skd_tensor *w, skd_pointwise **cache,
				 const skd_tensor *scale, const skd_tensor *shift,
				 const skd_tensor *residual, bool relu)
{
	if (!skd_pointwise_available())
		return skd_error_null("conv2d_pointwise: no usable BLIS micro-kernel here (or "
				      "SKD_POINTWISE_PACKED=0)");
	if (check_args(x, w, scale, shift, residual))
		return NULL;
	if (!pack_current(*cache, w)) { /* the stale pack goes at once, not at the next GC */
		skd_pointwise_free(*cache);
		if (!(*cache = pack_weight(w)))
			return NULL;
	}
	const skd_pointwise *pw = *cache;
	int64_t n = x->shape[0], hw = x->shape[2] * x->shape[3], cin = pw->cin, cout = pw->cout;
	int64_t shape[4] = {n, cout, x->shape[2], x->shape[3]};
	skd_tensor *y = skd_tensor_empty(SKD_FLOAT32, 4, shape);
	if (!y || n * hw == 0)
		return y;
	int pt = pw->pt, pk = pw->pk, nth = skd_threads_get();
	int64_t kc_max = cin < PW_KC ? cin : PW_KC;
	int64_t tpanels = (hw + pt - 1) / pt, units = n * tpanels;
	int64_t kpanels = (cout + pk - 1) / pk;
	/* a thread's pixels in blocks of `group` panels (their packed block under
	 * PW_PIXELS_BYTES): every weight panel is read once per block */
	int64_t group = PW_PIXELS_BYTES / ((int64_t)sizeof(float) * kc_max * pt);
	if (group < 1)
		group = 1;
	int64_t per = (units + nth - 1) / nth;
	if (group > per)
		group = per;
	int64_t ustride = (kc_max * pt + 15) / 16 * 16; /* every panel 64-byte aligned */
	size_t abytes = sizeof(float) * (size_t)(nth * group * ustride);
	float *ap = skd_alloc(abytes);
	if (!ap) {
		skd_tensor_release(y);
		return NULL;
	}
	const float *xp = skd_tensor_f32(x), *rp = residual ? skd_tensor_f32(residual) : NULL;
	const float *sc = scale ? skd_tensor_f32(scale) : NULL;
	const float *sh = shift ? skd_tensor_f32(shift) : NULL;
	float *yp = skd_tensor_f32(y);
#pragma omp parallel num_threads(nth) if (nth > 1 && units > 1 && units * cout * cin > SKD_PARALLEL_GRAIN)
	{
		int t = omp_get_thread_num(), tn = omp_get_num_threads();
		int64_t u_begin = units * t / tn, u_end = units * (t + 1) / tn;
		float *mine = ap + (size_t)t * group * ustride;
		for (int64_t g0 = u_begin; g0 < u_end; g0 += group) {
			int64_t g1 = g0 + group < u_end ? g0 + group : u_end;
			for (int64_t c0 = 0; c0 < cin; c0 += kc_max) {
				int64_t kc = cin - c0 < kc_max ? cin - c0 : kc_max;
				float beta = c0 == 0 ? 0.0f : 1.0f;
				bool last = c0 + kc == cin;
				pack_pixels(xp, cin, hw, tpanels, pt, g0, g1, c0, kc, ustride,
					    mine);
				for (int64_t kp = 0; kp < kpanels; kp++) {
					int64_t k0 = kp * pk;
					int nk = cout - k0 < pk ? (int)(cout - k0) : pk;
					const float *b = pw->panels + kp * pw->pstride + c0 * pk;
					for (int64_t u = g0; u < g1; u++) {
						int64_t img = u / tpanels, p0 = u % tpanels * pt;
						int64_t np = hw - p0 < pt ? hw - p0 : pt;
						const float *a = mine + (u - g0) * ustride;
						int64_t off = (img * cout + k0) * hw + p0;
						float *c = yp + off;
						if (pw->pixels_rows)
							skd_ukernel_run(np, nk, kc, a, b, beta, c, 1, hw);
						else
							skd_ukernel_run(nk, np, kc, b, a, beta, c, hw, 1);
						if (last)
							epilogue(c, rp ? rp + off : NULL, hw, k0, nk, np,
								 sc, sh, relu);
					}
				}
			}
		}
	}
	skd_free(ap, abytes);
	return y;
}
