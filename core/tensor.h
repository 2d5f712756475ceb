/* tensor.h — N-d tensors: a view (shape, strides, offset) on reference-counted storage.
 *
 * Ownership: every function whose comment says "new reference" hands the caller one reference,
 * to be dropped with skd_tensor_release(). Arguments are borrowed unless said otherwise.
 * Dimensions are 0-based here; the Lua binding converts from Lua's 1-based ones.
 * Data is row-major (NCHW for images); storage is 64-byte aligned.
 */
#ifndef SKD_TENSOR_H
#define SKD_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "error.h"

#define SKD_MAX_DIMS 8

typedef enum { SKD_FLOAT32 = 0, SKD_INT32 = 1 } skd_dtype;

typedef struct skd_storage {
	void *data;
	size_t nbytes;
	int refcount;
	uint64_t id;      /* unique in the process: a cache tells storages apart by it, not by
			   * an address that a later storage may reuse */
	uint64_t version; /* bumped by every in-place write (skd_tensor_written): caches of what
			   * the data was (conv2d_pointwise.c) compare it */
} skd_storage;

struct skd_node;

typedef struct skd_tensor {
	int refcount;
	skd_dtype dtype;
	int ndim;
	int64_t shape[SKD_MAX_DIMS];
	int64_t stride[SKD_MAX_DIMS]; /* in elements */
	int64_t offset;               /* in elements, into storage */
	skd_storage *storage;
	/* autograd (autograd.h) */
	bool requires_grad;
	struct skd_tensor *grad;  /* owned; accumulated into by backward (leaves only) */
	struct skd_node *grad_fn; /* owned; NULL for leaves and for results made in no-grad mode */
} skd_tensor;

/* --- creation (each returns a new reference, or NULL with an error) --- */
skd_tensor *skd_tensor_empty(skd_dtype dtype, int ndim, const int64_t *shape);
skd_tensor *skd_tensor_zeros(skd_dtype dtype, int ndim, const int64_t *shape);
skd_tensor *skd_tensor_full(skd_dtype dtype, int ndim, const int64_t *shape, double value);
skd_tensor *skd_tensor_empty_like(const skd_tensor *t);
skd_tensor *skd_tensor_zeros_like(const skd_tensor *t);
skd_tensor *skd_tensor_scalar(float value); /* 0-d float tensor */
/* A new view of t's storage with the given geometry (no autograd). */
skd_tensor *skd_tensor_view(const skd_tensor *t, int ndim, const int64_t *shape,
			    const int64_t *stride, int64_t offset);

/* --- lifetime --- */
skd_tensor *skd_tensor_retain(skd_tensor *t); /* returns t */
void skd_tensor_release(skd_tensor *t);      /* NULL is fine */

/* --- geometry --- */
int64_t skd_tensor_numel(const skd_tensor *t);
bool skd_tensor_is_contiguous(const skd_tensor *t);
bool skd_tensor_same_shape(const skd_tensor *a, const skd_tensor *b);
size_t skd_dtype_size(skd_dtype dtype);
const char *skd_dtype_name(skd_dtype dtype);
/* Writes "2x3x4" (or "scalar") into buf; returns buf. For error messages. */
char *skd_shape_str(const skd_tensor *t, char *buf, size_t len);
#define SKD_SHAPE_STR_LEN 128

/* float -> int32 as every conversion here does it: toward 0, saturating at the int32 range,
 * NaN to 0 (a plain C cast of an out-of-range value is undefined). */
static inline int32_t skd_to_int32(double v)
{
	if (!(v == v))
		return 0;
	if (v >= 2147483647.0)
		return INT32_MAX;
	if (v <= -2147483648.0)
		return INT32_MIN;
	return (int32_t)v;
}

/* Pointer to the first element (storage + offset). */
static inline float *skd_tensor_f32(const skd_tensor *t)
{
	return (float *)t->storage->data + t->offset;
}
static inline int32_t *skd_tensor_i32(const skd_tensor *t)
{
	return (int32_t *)t->storage->data + t->offset;
}

/* Marks t's storage as written in place: every op that writes into an existing tensor (the
 * "_" ops, the optimisers, element sets) calls it, so a cache made from the old contents sees
 * it is stale. */
static inline void skd_tensor_written(skd_tensor *t)
{
	t->storage->version++;
}

/* --- data movement, no autograd --- */
/* New reference: t itself if contiguous, else a contiguous copy. */
skd_tensor *skd_tensor_contiguous_nograd(skd_tensor *t);
/* Copies src into dst (same numel, same dtype, any strides). */
int skd_tensor_copy_(skd_tensor *dst, const skd_tensor *src);
int skd_tensor_fill_(skd_tensor *t, double value);
/* New reference: a contiguous copy with dtype converted (float->int32 by skd_to_int32). */
skd_tensor *skd_tensor_to_dtype(const skd_tensor *t, skd_dtype dtype);
/* Element at a 0-based multi-index, as double. No bounds check: the binding checks. */
double skd_tensor_get(const skd_tensor *t, const int64_t *index);
void skd_tensor_set(skd_tensor *t, const int64_t *index, double value);

/* --- printing (print.c) --- */
/* Torch7-style text: values (with a common scale factor), then "[skd.FloatTensor of size 2x3]".
 * Returns a malloc'ed string the caller frees, or NULL with an error. */
char *skd_tensor_format(const skd_tensor *t);

/* --- the memory allocator (alloc.c) --- */
/* 64-byte aligned blocks, cached by size so that a training step reuses the previous step's
 * activations instead of returning pages to the kernel. */
void *skd_alloc(size_t nbytes);
void skd_free(void *p, size_t nbytes);
size_t skd_alloc_bytes_in_use(void);
size_t skd_alloc_bytes_cached(void);
void skd_alloc_peaks(size_t *in_use_peak, size_t *held_peak); /* since the last reset */
void skd_alloc_reset_peaks(void);
void skd_alloc_empty_cache(void);

#endif
