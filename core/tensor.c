/* tensor.c — creation, lifetime, geometry and copies of tensors (tensor.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd.h"
#include "parallel.h"
#include "tensor.h"

void skd_node_release(skd_node *node); /* autograd.c */

size_t skd_dtype_size(skd_dtype dtype)
{
	(void)dtype; /* float32 and int32 are both 4 bytes */
	return 4;
}

const char *skd_dtype_name(skd_dtype dtype)
{
	return dtype == SKD_INT32 ? "int32" : "float32";
}

static uint64_t storage_ids;

static skd_storage *storage_new(size_t nbytes)
{
	skd_storage *s = skd_malloc(sizeof *s);
	if (!s)
		return NULL;
	s->data = skd_alloc(nbytes);
	if (!s->data) {
		free(s);
		return NULL;
	}
	s->nbytes = nbytes;
	s->refcount = 1;
	s->version = 0;
	s->id = __atomic_add_fetch(&storage_ids, 1, __ATOMIC_RELAXED);
	return s;
}

static void storage_release(skd_storage *s)
{
	if (s && __atomic_sub_fetch(&s->refcount, 1, __ATOMIC_ACQ_REL) == 0) {
		skd_free(s->data, s->nbytes);
		free(s);
	}
}

static int check_shape(int ndim, const int64_t *shape, int64_t *numel)
{
	if (ndim < 0 || ndim > SKD_MAX_DIMS)
		return skd_error("tensor: expects 0 to %d dimensions, got %d", SKD_MAX_DIMS, ndim);
	/* Bounds the product of the nonzero sizes too: strides are products of sizes, and a
	 * 0-size dimension must not let the others grow past what int64 strides can hold. */
	int64_t n = 1, span = 1;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return skd_error("tensor: size of dimension %d is negative (%lld)", i + 1,
					 (long long)shape[i]);
		if (shape[i] > 0 && span > INT64_MAX / 8 / shape[i])
			return skd_error("tensor: too many elements (size %lld in dimension %d)",
					 (long long)shape[i], i + 1);
		if (shape[i] > 0)
			span *= shape[i];
		n *= shape[i];
	}
	*numel = n;
	return SKD_OK;
}

static void contiguous_strides(int ndim, const int64_t *shape, int64_t *stride)
{
	int64_t s = 1;
	for (int i = ndim - 1; i >= 0; i--) {
		stride[i] = s;
		s *= shape[i] > 0 ? shape[i] : 1;
	}
}

skd_tensor *skd_tensor_empty(skd_dtype dtype, int ndim, const int64_t *shape)
{
	int64_t numel;
	if (check_shape(ndim, shape, &numel))
		return NULL;
	skd_tensor *t = skd_calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->storage = storage_new((size_t)numel * skd_dtype_size(dtype));
	if (!t->storage) {
		free(t);
		return NULL;
	}
	t->refcount = 1;
	t->dtype = dtype;
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		t->shape[i] = shape[i];
	contiguous_strides(ndim, shape, t->stride);
	return t;
}

skd_tensor *skd_tensor_zeros(skd_dtype dtype, int ndim, const int64_t *shape)
{
	skd_tensor *t = skd_tensor_empty(dtype, ndim, shape);
	if (t)
		memset(t->storage->data, 0, t->storage->nbytes);
	return t;
}

skd_tensor *skd_tensor_full(skd_dtype dtype, int ndim, const int64_t *shape, double value)
{
	skd_tensor *t = skd_tensor_empty(dtype, ndim, shape);
	if (t)
		skd_tensor_fill_(t, value);
	return t;
}

skd_tensor *skd_tensor_empty_like(const skd_tensor *t)
{
	return skd_tensor_empty(t->dtype, t->ndim, t->shape);
}

skd_tensor *skd_tensor_zeros_like(const skd_tensor *t)
{
	return skd_tensor_zeros(t->dtype, t->ndim, t->shape);
}

skd_tensor *skd_tensor_scalar(float value)
{
	skd_tensor *t = skd_tensor_empty(SKD_FLOAT32, 0, NULL);
	if (t)
		*skd_tensor_f32(t) = value;
	return t;
}

skd_tensor *skd_tensor_view(const skd_tensor *src, int ndim, const int64_t *shape,
			    const int64_t *stride, int64_t offset)
{
	int64_t numel;
	if (check_shape(ndim, shape, &numel))
		return NULL;
	skd_tensor *t = skd_calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->refcount = 1;
	t->dtype = src->dtype;
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++) {
		t->shape[i] = shape[i];
		t->stride[i] = stride[i];
	}
	t->offset = offset;
	t->storage = src->storage;
	__atomic_add_fetch(&t->storage->refcount, 1, __ATOMIC_RELAXED);
	return t;
}

skd_tensor *skd_tensor_retain(skd_tensor *t)
{
	if (t)
		__atomic_add_fetch(&t->refcount, 1, __ATOMIC_RELAXED);
	return t;
}

void skd_tensor_release(skd_tensor *t)
{
	if (!t || __atomic_sub_fetch(&t->refcount, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	storage_release(t->storage);
	skd_tensor_release(t->grad);
	skd_node_release(t->grad_fn);
	free(t);
}

int64_t skd_tensor_numel(const skd_tensor *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->ndim; i++)
		n *= t->shape[i];
	return n;
}

bool skd_tensor_is_contiguous(const skd_tensor *t)
{
	int64_t s = 1;
	for (int i = t->ndim - 1; i >= 0; i--) {
		if (t->shape[i] != 1 && t->stride[i] != s)
			return false;
		s *= t->shape[i];
	}
	return true;
}

bool skd_tensor_same_shape(const skd_tensor *a, const skd_tensor *b)
{
	if (a->ndim != b->ndim)
		return false;
	for (int i = 0; i < a->ndim; i++)
		if (a->shape[i] != b->shape[i])
			return false;
	return true;
}

char *skd_shape_str(const skd_tensor *t, char *buf, size_t len)
{
	if (t->ndim == 0) {
		snprintf(buf, len, "scalar");
		return buf;
	}
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < t->ndim && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, i ? "x%lld" : "%lld",
					 (long long)t->shape[i]);
	return buf;
}

/* Visits every element of a strided tensor in row-major order: fn(offset_in_elements, k). */
#define FOR_EACH_OFFSET(t, OFF, K, BODY)                                                     \
	do {                                                                                 \
		int64_t idx_[SKD_MAX_DIMS] = {0};                                            \
		int64_t n_ = skd_tensor_numel(t), OFF = 0;                                   \
		for (int64_t K = 0; K < n_; K++) {                                           \
			BODY;                                                                \
			for (int d_ = (t)->ndim - 1; d_ >= 0; d_--) {                        \
				OFF += (t)->stride[d_];                                      \
				if (++idx_[d_] < (t)->shape[d_])                             \
					break;                                               \
				OFF -= (t)->stride[d_] * (t)->shape[d_];                     \
				idx_[d_] = 0;                                                \
			}                                                                    \
		}                                                                            \
	} while (0)

/* Copies between two tensors of the same shape in different storages, a block at a time:
 * the trailing dims that are contiguous in both merge into one block (the whole tensor when
 * both are contiguous), the dims before them index the blocks, and blocks of more than
 * COPY_PIECE elements are cut into pieces, all spread over the threads. The element-wise
 * walk of FOR_EACH_OFFSET on one thread took 15.6 ms to concatenate a PSPNet pyramid at
 * batch 2 (cat's parts are slices of its output), 0.8 ms this way. */
#define COPY_PIECE ((int64_t)1 << 16)

static void copy_blocks(skd_tensor *dst, const skd_tensor *src)
{
	int nd = dst->ndim, keep = nd; /* dims [keep, nd) form the block */
	int64_t block = 1;
	while (keep > 0 && dst->stride[keep - 1] == block && src->stride[keep - 1] == block)
		block *= dst->shape[--keep];
	/* a block that is not contiguous (a transposed last dim): one element at a time */
	int64_t ds = 1, ss = 1;
	if (keep == nd && nd > 0) {
		block = dst->shape[nd - 1];
		ds = dst->stride[nd - 1];
		ss = src->stride[nd - 1];
		keep = nd - 1;
	}
	int64_t numel = skd_tensor_numel(dst);
	if (numel == 0)
		return;
	int64_t blocks = numel / block, pieces = (block + COPY_PIECE - 1) / COPY_PIECE;
	uint32_t *d = dst->storage->data;
	const uint32_t *s = src->storage->data;
#pragma omp parallel for schedule(static) if (numel > SKD_PARALLEL_GRAIN)
	for (int64_t u = 0; u < blocks * pieces; u++) {
		int64_t b = u / pieces, i0 = u % pieces * COPY_PIECE;
		int64_t len = block - i0 < COPY_PIECE ? block - i0 : COPY_PIECE;
		int64_t od = dst->offset, os = src->offset;
		for (int k = keep - 1; k >= 0; k--) { /* block b's offsets */
			int64_t i = b % dst->shape[k];
			b /= dst->shape[k];
			od += i * dst->stride[k];
			os += i * src->stride[k];
		}
		if (ds == 1 && ss == 1)
			memcpy(d + od + i0, s + os + i0, (size_t)len * 4);
		else
			for (int64_t i = i0; i < i0 + len; i++)
				d[od + i * ds] = s[os + i * ss];
	}
}

int skd_tensor_copy_(skd_tensor *dst, const skd_tensor *src)
{
	if (skd_tensor_numel(dst) != skd_tensor_numel(src)) {
		char a[SKD_SHAPE_STR_LEN], b[SKD_SHAPE_STR_LEN];
		return skd_error("copy: destination %s and source %s differ in element count",
				 skd_shape_str(dst, a, sizeof a), skd_shape_str(src, b, sizeof b));
	}
	if (dst->dtype != src->dtype)
		return skd_error("copy: destination is %s, source is %s",
				 skd_dtype_name(dst->dtype), skd_dtype_name(src->dtype));
	skd_tensor_written(dst);
	bool aliased = false; /* an expanded destination: several elements, one address */
	for (int k = 0; k < dst->ndim; k++)
		aliased = aliased || (dst->stride[k] == 0 && dst->shape[k] > 1);
	if (dst->storage != src->storage && !aliased && skd_tensor_same_shape(dst, src)) {
		copy_blocks(dst, src);
		return SKD_OK;
	}
	uint32_t *d = (uint32_t *)dst->storage->data + dst->offset;
	const uint32_t *s = (const uint32_t *)src->storage->data + src->offset;
	if (skd_tensor_is_contiguous(dst) && skd_tensor_is_contiguous(src)) {
		memmove(d, s, (size_t)skd_tensor_numel(src) * 4);
		return SKD_OK;
	}
	if (skd_tensor_is_contiguous(dst)) {
		FOR_EACH_OFFSET(src, off, k, d[k] = s[off]);
		return SKD_OK;
	}
	/* General case: gather src in order into a temporary, then scatter. */
	int64_t n = skd_tensor_numel(src);
	uint32_t *tmp = skd_malloc((size_t)n * 4);
	if (!tmp)
		return SKD_ERR;
	FOR_EACH_OFFSET(src, off, k, tmp[k] = s[off]);
	FOR_EACH_OFFSET(dst, off, k, d[off] = tmp[k]);
	free(tmp);
	return SKD_OK;
}

skd_tensor *skd_tensor_contiguous_nograd(skd_tensor *t)
{
	if (skd_tensor_is_contiguous(t))
		return skd_tensor_retain(t);
	skd_tensor *c = skd_tensor_empty(t->dtype, t->ndim, t->shape);
	if (c && skd_tensor_copy_(c, t)) {
		skd_tensor_release(c);
		return NULL;
	}
	return c;
}

int skd_tensor_fill_(skd_tensor *t, double value)
{
	skd_tensor_written(t);
	int64_t n = skd_tensor_numel(t);
	if (skd_tensor_is_contiguous(t) && n > SKD_PARALLEL_GRAIN) {
		/* zero_grad's whole gradient buffer each step: on all threads (it was 1.5 % of a
		 * student training step on one) */
		uint32_t bits;
		if (t->dtype == SKD_FLOAT32) {
			float v = (float)value;
			memcpy(&bits, &v, 4);
		} else {
			int32_t v = skd_to_int32(value);
			memcpy(&bits, &v, 4);
		}
		uint32_t *p = (uint32_t *)t->storage->data + t->offset;
#pragma omp parallel for schedule(static)
		for (int64_t i = 0; i < n; i++)
			p[i] = bits;
		return SKD_OK;
	}
	if (t->dtype == SKD_FLOAT32) {
		float v = (float)value, *p = skd_tensor_f32(t);
		FOR_EACH_OFFSET(t, off, k, p[off] = v);
	} else {
		int32_t v = skd_to_int32(value), *p = skd_tensor_i32(t);
		FOR_EACH_OFFSET(t, off, k, p[off] = v);
	}
	return SKD_OK;
}

skd_tensor *skd_tensor_to_dtype(const skd_tensor *t, skd_dtype dtype)
{
	skd_tensor *r = skd_tensor_empty(dtype, t->ndim, t->shape);
	if (!r)
		return NULL;
	if (t->dtype == dtype) {
		skd_tensor_copy_(r, t);
	} else if (dtype == SKD_FLOAT32) {
		const int32_t *s = skd_tensor_i32(t);
		float *d = skd_tensor_f32(r);
		FOR_EACH_OFFSET(t, off, k, d[k] = (float)s[off]);
	} else {
		const float *s = skd_tensor_f32(t);
		int32_t *d = skd_tensor_i32(r);
		FOR_EACH_OFFSET(t, off, k, d[k] = skd_to_int32(s[off]));
	}
	return r;
}

static int64_t index_offset(const skd_tensor *t, const int64_t *index)
{
	int64_t off = t->offset;
	for (int i = 0; i < t->ndim; i++)
		off += index[i] * t->stride[i];
	return off;
}

double skd_tensor_get(const skd_tensor *t, const int64_t *index)
{
	int64_t off = index_offset(t, index);
	if (t->dtype == SKD_FLOAT32)
		return ((const float *)t->storage->data)[off];
	return ((const int32_t *)t->storage->data)[off];
}

void skd_tensor_set(skd_tensor *t, const int64_t *index, double value)
{
	int64_t off = index_offset(t, index);
	skd_tensor_written(t);
	if (t->dtype == SKD_FLOAT32)
		((float *)t->storage->data)[off] = (float)value;
	else
		((int32_t *)t->storage->data)[off] = skd_to_int32(value);
}
