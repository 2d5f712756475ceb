/* sample.c — from tensors to what the viewer draws: RGB bytes, class maps at the image size,
 * and the affinity matrices of method.md §2 (steps 2–4). Runs on the caller's thread, outside
 * the viewer's lock; the window thread only ever sees the finished vw_sample. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "vw_internal.h"

/* Element `index` of a batch when t has one more dimension than a single item, else t.
 * New reference, contiguous; NULL with an error naming the input. */
static skd_tensor *unbatch(skd_tensor *t, int single_ndim, int64_t index, const char *what,
			   const char *expect)
{
	char s[SKD_SHAPE_STR_LEN];
	if (t->ndim == single_ndim + 1) {
		if (index < 0 || index >= t->shape[0])
			return skd_error_null("viewer.show: %s: index %lld out of range for a batch "
					      "of %lld (%s)", what, (long long)index + 1,
					      (long long)t->shape[0], skd_shape_str(t, s, sizeof s));
		skd_tensor *one = skd_tensor_view(t, t->ndim - 1, t->shape + 1, t->stride + 1,
						  t->offset + index * t->stride[0]);
		if (!one)
			return NULL;
		skd_tensor *c = skd_tensor_contiguous_nograd(one);
		skd_tensor_release(one);
		return c;
	}
	if (t->ndim != single_ndim)
		return skd_error_null("viewer.show: %s expects %s, got %s", what, expect,
				      skd_shape_str(t, s, sizeof s));
	return skd_tensor_contiguous_nograd(t);
}

/* New reference: t as contiguous float32 (t retained when it already is). */
static skd_tensor *as_float(skd_tensor *t)
{
	if (t->dtype == SKD_FLOAT32)
		return skd_tensor_contiguous_nograd(t);
	return skd_tensor_to_dtype(t, SKD_FLOAT32);
}

/* Nearest-neighbour resize of an h×w id map to H×W (PyTorch's "nearest": src = dst*in/out). */
static int32_t *resize_ids(const int32_t *src, int h, int w, int H, int W)
{
	int32_t *out = skd_malloc((size_t)H * W * sizeof *out);
	if (!out)
		return NULL;
	for (int y = 0; y < H; y++) {
		const int32_t *row = src + (size_t)((int64_t)y * h / H) * w;
		for (int x = 0; x < W; x++)
			out[(size_t)y * W + x] = row[(int64_t)x * w / W];
	}
	return out;
}

/* Id map (int32 contiguous h×w, any dtype accepted) resized to H×W. */
static int32_t *ids_from_map(skd_tensor *map, int H, int W)
{
	skd_tensor *ids = map->dtype == SKD_INT32 ? skd_tensor_retain(map)
						  : skd_tensor_to_dtype(map, SKD_INT32);
	if (!ids)
		return NULL;
	int32_t *out = resize_ids(skd_tensor_i32(ids), (int)ids->shape[0], (int)ids->shape[1], H, W);
	skd_tensor_release(ids);
	return out;
}

static int32_t *labels(skd_tensor *t, int64_t index, int H, int W)
{
	skd_tensor *one = unbatch(t, 2, index, "label", "HxW or NxHxW class ids");
	if (!one)
		return NULL;
	int32_t *out = ids_from_map(one, H, W);
	skd_tensor_release(one);
	return out;
}

/* A prediction: C×h×w (or N×C×h×w) float logits -> argmax over C; h×w (or N×h×w int32) ids. */
static int32_t *prediction(skd_tensor *t, int64_t index, int H, int W, const char *what)
{
	bool logits = t->dtype == SKD_FLOAT32 && t->ndim >= 3;
	skd_tensor *one = unbatch(t, logits ? 3 : 2, index, what,
				  "CxHxW logits, NxCxHxW logits, HxW ids or NxHxW int32 ids");
	if (!one)
		return NULL;
	if (logits) {
		skd_tensor *ids = skd_argmax(one, 0, false);
		skd_tensor_release(one);
		if (!ids)
			return NULL;
		one = ids;
	}
	int32_t *out = ids_from_map(one, H, W);
	skd_tensor_release(one);
	return out;
}

/* 1×H×W, 3×H×W (or a batch of them, or H×W gray) -> H×W×3 bytes. Values already within [0,1]
 * are shown as they are; any other range (mean/std-normalised inputs, 0..255) is min-max
 * scaled over the whole image, all channels together so colours keep their balance. */
static uint8_t *rgb_bytes(skd_tensor *t, int64_t index)
{
	char s[SKD_SHAPE_STR_LEN];
	skd_tensor *one;
	if (t->ndim == 2) {
		one = skd_tensor_view(t, 3, (int64_t[]){1, t->shape[0], t->shape[1]},
				      (int64_t[]){0, t->stride[0], t->stride[1]}, t->offset);
	} else {
		one = unbatch(t, 3, index, "image", "3xHxW, 1xHxW, HxW or Nx3xHxW");
	}
	if (!one)
		return NULL;
	skd_tensor *f = as_float(one);
	skd_tensor_release(one);
	if (!f)
		return NULL;
	int64_t C = f->shape[0], H = f->shape[1], W = f->shape[2], plane = H * W;
	if (C != 1 && C != 3) {
		skd_tensor_release(f);
		return skd_error_null("viewer.show: image expects 1 or 3 channels, got %s",
				      skd_shape_str(t, s, sizeof s));
	}
	const float *x = skd_tensor_f32(f);
	float lo = INFINITY, hi = -INFINITY;
	for (int64_t i = 0; i < C * plane; i++) {
		if (x[i] < lo)
			lo = x[i];
		if (x[i] > hi)
			hi = x[i];
	}
	double off = 0, mul = 255;
	if (!(lo >= 0 && hi <= 1)) {
		off = lo;
		mul = hi > lo ? 255.0 / ((double)hi - lo) : 0;
	}
	uint8_t *out = skd_malloc((size_t)plane * 3);
	if (out) {
		for (int64_t i = 0; i < plane; i++) {
			for (int k = 0; k < 3; k++) {
				double val = ((double)x[(C == 3 ? k : 0) * plane + i] - off) * mul;
				if (mul == 0)
					val = 128;
				out[i * 3 + k] = val > 0 ? (val < 255 ? (uint8_t)(val + 0.5) : 255) : 0;
			}
		}
	}
	skd_tensor_release(f);
	return out;
}

/* N×N cosine similarities of the graph nodes of one feature map (method.md §2):
 * step 2, each beta×beta patch becomes a node by average pooling in ceil mode (a partial border
 * patch is a node of the pixels it has); beta = 0 instead pools adaptively onto the gh×gw grid,
 * for a teacher map whose size differs from the student's (step 1 resizes it; pooling both onto
 * one grid keeps node i at the same place in the image, which is what the viewer needs);
 * step 3, L2 normalisation over channels (eps 1e-8); step 4, a_ij = f̂_iᵀ f̂_j by matmul. */
static skd_tensor *affinity(skd_tensor *feat, int64_t index, int gh, int gw, int beta,
			    const char *what)
{
	skd_tensor *one = unbatch(feat, 3, index, what, "CxHxW or NxCxHxW");
	if (!one)
		return NULL;
	skd_tensor *f = as_float(one);
	skd_tensor_release(one);
	if (!f)
		return NULL;
	int64_t C = f->shape[0], fh = f->shape[1], fw = f->shape[2], N = (int64_t)gh * gw;
	skd_tensor *x = skd_tensor_view(f, 4, (int64_t[]){1, C, fh, fw},
					(int64_t[]){C * fh * fw, fh * fw, fw, 1}, f->offset);
	skd_tensor_release(f);
	if (!x)
		return NULL;
	bool grad = skd_set_grad_enabled(false);
	skd_pool2d_params pool = {{beta, beta}, {beta, beta}, {0, 0}, true, false};
	skd_tensor *pooled = beta ? skd_avg_pool2d(x, &pool) : skd_adaptive_avg_pool2d(x, gh, gw);
	skd_tensor *nodes = pooled ? skd_reshape(pooled, 3, (int64_t[]){1, C, N}) : NULL;
	skd_tensor *unit = nodes ? skd_l2_normalize(nodes, 1e-8, false) : NULL;
	skd_tensor *cols = unit ? skd_select(unit, 0, 0) : NULL; /* C×N */
	skd_tensor *rows = cols ? skd_transpose(cols, 0, 1) : NULL; /* N×C */
	skd_tensor *A = rows ? skd_matmul(rows, cols) : NULL;
	skd_set_grad_enabled(grad);
	skd_tensor *parts[] = {x, pooled, nodes, unit, cols, rows};
	for (size_t k = 0; k < sizeof parts / sizeof *parts; k++)
		skd_tensor_release(parts[k]);
	if (A && (A->ndim != 2 || A->shape[0] != N || A->shape[1] != N)) {
		skd_tensor_release(A);
		return skd_error_null("viewer.show: %s: pooling gave an unexpected node grid", what);
	}
	if (A && !skd_tensor_is_contiguous(A)) {
		skd_tensor *c = skd_tensor_contiguous_nograd(A);
		skd_tensor_release(A);
		A = c;
	}
	return A;
}

static void min_max(const skd_tensor *A, float *lo, float *hi)
{
	const float *a = skd_tensor_f32(A);
	for (int64_t i = 0, n = skd_tensor_numel(A); i < n; i++) {
		if (a[i] < *lo)
			*lo = a[i];
		if (a[i] > *hi)
			*hi = a[i];
	}
}

static int affinities(const skd_viewer *v, const skd_viewer_input *in, vw_sample *s)
{
	skd_tensor *grid = in->feat_student ? in->feat_student : in->feat_teacher;
	char sh[SKD_SHAPE_STR_LEN];
	if (grid->ndim < 3 || grid->ndim > 4)
		return skd_error("viewer.show: features expect CxHxW or NxCxHxW, got %s",
				 skd_shape_str(grid, sh, sizeof sh));
	s->fh = (int)grid->shape[grid->ndim - 2];
	s->fw = (int)grid->shape[grid->ndim - 1];
	/* The smallest patch that brings N under the cap (method.md §2 step 2). */
	int beta = 1;
	while ((int64_t)((s->fh + beta - 1) / beta) * ((s->fw + beta - 1) / beta) > v->max_nodes)
		beta++;
	s->beta = beta;
	s->gh = (s->fh + beta - 1) / beta;
	s->gw = (s->fw + beta - 1) / beta;
	skd_tensor *pair[2] = {in->feat_teacher, in->feat_student};
	skd_tensor **out[2] = {&s->aff_t, &s->aff_s};
	const char *what[2] = {"features.teacher", "features.student"};
	for (int k = 0; k < 2; k++) {
		skd_tensor *f = pair[k];
		if (!f)
			continue;
		bool same = f->ndim >= 3 && f->shape[f->ndim - 2] == s->fh &&
			    f->shape[f->ndim - 1] == s->fw;
		*out[k] = affinity(f, in->index, s->gh, s->gw, same ? beta : 0, what[k]);
		if (!*out[k])
			return SKD_ERR;
	}
	s->lo = INFINITY;
	s->hi = -INFINITY;
	for (int k = 0; k < 2; k++)
		if (*out[k])
			min_max(*out[k], &s->lo, &s->hi);
	if (s->hi - s->lo < 1e-6f)
		s->lo = s->hi - 1e-6f;
	s->dmax = 0;
	if (s->aff_t && s->aff_s) {
		const float *a = skd_tensor_f32(s->aff_t), *b = skd_tensor_f32(s->aff_s);
		for (int64_t i = 0, n = skd_tensor_numel(s->aff_t); i < n; i++) {
			float d = fabsf(a[i] - b[i]);
			if (d > s->dmax)
				s->dmax = d;
		}
	}
	if (s->dmax < 1e-6f)
		s->dmax = 1e-6f;
	return SKD_OK;
}

vw_sample *vw_sample_make(const skd_viewer *v, const skd_viewer_input *in)
{
	/* The display size: the first input given, in this order. */
	skd_tensor *order[] = {in->image, in->label, in->student, in->teacher, in->feat_student,
			       in->feat_teacher};
	skd_tensor *first = NULL;
	for (size_t k = 0; k < sizeof order / sizeof *order && !first; k++)
		first = order[k];
	if (!first)
		return skd_error_null("viewer.show: nothing to show");
	if (first->ndim < 2)
		return skd_error_null("viewer.show: expects images and maps of at least 2 dims, "
				      "got %d", first->ndim);
	/* checked as int64 before the int cast (2^32 + 5 would pass as 5), and before any
	 * allocation (the message once read the freed sample) */
	int64_t h = first->shape[first->ndim - 2], w = first->shape[first->ndim - 1];
	if (h <= 0 || w <= 0 || h > 8192 || w > 8192)
		return skd_error_null("viewer.show: image size %lldx%lld out of range (1..8192)",
				      (long long)h, (long long)w);
	vw_sample *s = skd_calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->h = (int)h;
	s->w = (int)w;
	s->error_rate = -1;
	if ((in->image && !(s->rgb = rgb_bytes(in->image, in->index))) ||
	    (in->label && !(s->label = labels(in->label, in->index, s->h, s->w))) ||
	    (in->teacher && !(s->teacher = prediction(in->teacher, in->index, s->h, s->w, "teacher"))) ||
	    (in->student && !(s->student = prediction(in->student, in->index, s->h, s->w, "student"))) ||
	    ((in->feat_teacher || in->feat_student) && affinities(v, in, s))) {
		vw_sample_free(s);
		return NULL;
	}
	if (s->label && s->student) {
		int64_t valid = 0, wrong = 0;
		for (int64_t i = 0, n = (int64_t)s->h * s->w; i < n; i++) {
			if (s->label[i] == 255)
				continue;
			valid++;
			wrong += s->student[i] != s->label[i];
		}
		s->error_rate = valid ? (double)wrong / valid : 0;
	}
	return s;
}

void vw_sample_free(vw_sample *s)
{
	if (!s)
		return;
	free(s->rgb);
	free(s->label);
	free(s->teacher);
	free(s->student);
	skd_tensor_release(s->aff_t);
	skd_tensor_release(s->aff_s);
	free(s);
}

int vw_sample_node(const vw_sample *s, int y, int x)
{
	if (!(s->aff_t || s->aff_s) || y < 0 || x < 0 || y >= s->h || x >= s->w)
		return -1;
	int fy = (int)((int64_t)y * s->fh / s->h), fx = (int)((int64_t)x * s->fw / s->w);
	return (fy / s->beta) * s->gw + fx / s->beta;
}
