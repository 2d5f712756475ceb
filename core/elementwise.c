/* elementwise.c — arithmetic with broadcasting, scalar arithmetic and unary math, each
 * forward beside its backward. Results are contiguous float32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ops.h"
#include "parallel.h"
#include "vmath.h"

/* ---------- shared checks ---------- */

static int check_float(const char *op, const skd_tensor *t)
{
	if (!t)
		return skd_error("%s: expects a tensor, got nothing", op);
	if (t->dtype != SKD_FLOAT32)
		return skd_error("%s: expects a float32 tensor, got %s (convert with :float())", op,
				 skd_dtype_name(t->dtype));
	return SKD_OK;
}

/* NumPy broadcasting: align right, sizes equal or one of them 1. */
static int broadcast_shape(const char *op, const skd_tensor *a, const skd_tensor *b, int *ndim,
			   int64_t *shape)
{
	int n = a->ndim > b->ndim ? a->ndim : b->ndim;
	for (int i = 0; i < n; i++) {
		int ia = a->ndim - n + i, ib = b->ndim - n + i;
		int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
		if (sa != sb && sa != 1 && sb != 1) {
			char x[SKD_SHAPE_STR_LEN], y[SKD_SHAPE_STR_LEN];
			return skd_error("%s: shapes %s and %s cannot be broadcast (dimension %d: %lld vs %lld)",
					 op, skd_shape_str(a, x, sizeof x), skd_shape_str(b, y, sizeof y),
					 i + 1, (long long)sa, (long long)sb);
		}
		shape[i] = sa == 1 ? sb : sa;
	}
	*ndim = n;
	return SKD_OK;
}

/* Strides of t read in an output of the given geometry: 0 along broadcast dimensions. */
static void broadcast_strides(const skd_tensor *t, int ndim, const int64_t *shape, int64_t *st)
{
	for (int i = 0; i < ndim; i++) {
		int it = t->ndim - ndim + i;
		st[i] = (it >= 0 && t->shape[it] == shape[i] && shape[i] != 1) ? t->stride[it] : 0;
	}
}

/* Merges neighbouring dimensions that both operands walk as one (stride[d] = stride[d+1] ·
 * shape[d+1], broadcast ones included) and drops those of size 1, in place; returns the new
 * count. A weight divided by a scalar becomes one row with stride 0 for the scalar, an
 * (N,C,H,W) + (C,1,1) sum N·C rows of H·W, instead of one short row per innermost line. */
static int coalesce_dims(int ndim, int64_t *shape, int64_t *sa, int64_t *sb)
{
	int n = 0;
	for (int d = 0; d < ndim; d++) {
		if (shape[d] == 1)
			continue;
		if (n > 0 && sa[n - 1] == sa[d] * shape[d] && sb[n - 1] == sb[d] * shape[d]) {
			shape[n - 1] *= shape[d];
			sa[n - 1] = sa[d];
			sb[n - 1] = sb[d];
			continue;
		}
		shape[n] = shape[d];
		sa[n] = sa[d];
		sb[n] = sb[d];
		n++;
	}
	return n;
}

/* ---------- binary arithmetic ---------- */

typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV } binop;
static const char *binop_name[] = {"add", "sub", "mul", "div"};

static inline float apply(binop op, float x, float y)
{
	switch (op) {
	case OP_ADD: return x + y;
	case OP_SUB: return x - y;
	case OP_MUL: return x * y;
	default: return x / y;
	}
}

/* Elements per task along a row: a long row (same-shape operands flatten into one) is
 * shared among the threads in blocks this long. */
#define BINARY_BLOCK 16384

/* out (contiguous, broadcast shape) = a op b. Rows of the last dimension run as inner loops
 * the compiler vectorises when the strides are 1 or 0 (same shape, or a row and a scalar). */
static void binary_kernel(binop op, float *out, int ndim, const int64_t *shape, const float *a,
			  const int64_t *sa, const float *b, const int64_t *sb)
{
	int64_t inner = ndim ? shape[ndim - 1] : 1, rows = 1;
	for (int i = 0; i < ndim - 1; i++)
		rows *= shape[i];
	int64_t ia = ndim ? sa[ndim - 1] : 0, ib = ndim ? sb[ndim - 1] : 0;
	int64_t blocks = (inner + BINARY_BLOCK - 1) / BINARY_BLOCK, tasks = rows * blocks;
#pragma omp parallel for schedule(static) if (rows * inner > SKD_PARALLEL_GRAIN && tasks > 1)
	for (int64_t task = 0; task < tasks; task++) {
		int64_t r = task / blocks, j0 = task % blocks * BINARY_BLOCK;
		int64_t j1 = j0 + BINARY_BLOCK < inner ? j0 + BINARY_BLOCK : inner;
		int64_t oa = 0, ob = 0, rem = r;
		for (int d = ndim - 2; d >= 0; d--) {
			int64_t k = rem % shape[d];
			rem /= shape[d];
			oa += k * sa[d];
			ob += k * sb[d];
		}
		const float *pa = a + oa, *pb = b + ob;
		float *po = out + r * inner;
#define ROW(X, Y)                                                                    \
	switch (op) {                                                                \
	case OP_ADD: for (int64_t j = j0; j < j1; j++) po[j] = (X) + (Y); break;    \
	case OP_SUB: for (int64_t j = j0; j < j1; j++) po[j] = (X) - (Y); break;    \
	case OP_MUL: for (int64_t j = j0; j < j1; j++) po[j] = (X) * (Y); break;    \
	case OP_DIV: for (int64_t j = j0; j < j1; j++) po[j] = (X) / (Y); break;    \
	}
		if (ia == 1 && ib == 1) {
			ROW(pa[j], pb[j])
		} else if (ia == 1 && ib == 0) {
			float y = pb[0];
			ROW(pa[j], y)
		} else if (ia == 0 && ib == 1) {
			float x = pa[0];
			ROW(x, pb[j])
		} else {
			for (int64_t j = j0; j < j1; j++)
				po[j] = apply(op, pa[j * ia], pb[j * ib]);
		}
#undef ROW
	}
}

/* Flattens same-shape contiguous operands into one row so the whole tensor is one loop. */
static skd_tensor *binary_forward(binop op, skd_tensor *a, skd_tensor *b)
{
	const char *name = binop_name[op];
	if (check_float(name, a) || check_float(name, b))
		return NULL;
	int ndim;
	int64_t shape[SKD_MAX_DIMS], sa[SKD_MAX_DIMS], sb[SKD_MAX_DIMS];
	if (broadcast_shape(name, a, b, &ndim, shape))
		return NULL;
	skd_tensor *out = skd_tensor_empty(SKD_FLOAT32, ndim, shape);
	if (!out)
		return NULL;
	if (skd_tensor_same_shape(a, b) && skd_tensor_is_contiguous(a) && skd_tensor_is_contiguous(b)) {
		int64_t n = skd_tensor_numel(a), one = 1;
		binary_kernel(op, skd_tensor_f32(out), 1, &n, skd_tensor_f32(a), &one,
			      skd_tensor_f32(b), &one);
	} else {
		int64_t cshape[SKD_MAX_DIMS];
		memcpy(cshape, shape, sizeof(int64_t) * ndim);
		broadcast_strides(a, ndim, shape, sa);
		broadcast_strides(b, ndim, shape, sb);
		int cdim = coalesce_dims(ndim, cshape, sa, sb);
		binary_kernel(op, skd_tensor_f32(out), cdim, cshape, skd_tensor_f32(a), sa,
			      skd_tensor_f32(b), sb);
	}
	return out;
}

static int add_backward(skd_node *n, const skd_tensor *g, skd_tensor **gin)
{
	for (int i = 0; i < 2; i++) {
		if (!skd_node_needs_grad(n, i))
			continue;
		gin[i] = skd_sum_to_shape(g, n->inputs[i].ndim, n->inputs[i].shape);
		if (gin[i] && i == 1 && n->iarg[0] == OP_SUB) {
			/* gin[i] may be g itself (shared with input 1): negate into a new tensor */
			skd_tensor *neg = skd_neg(gin[i]);
			skd_tensor_release(gin[i]);
			gin[i] = neg;
		}
		if (!gin[i])
			return SKD_ERR;
	}
	return SKD_OK;
}

/* d(a*b) = g*b, g*a; d(a/b) = g/b, -g*a/b^2. Each reduced to its input's shape. */
static int muldiv_backward(skd_node *n, const skd_tensor *g, skd_tensor **gin)
{
	skd_tensor *a = n->saved[0], *b = n->saved[1], *gg = (skd_tensor *)g;
	for (int i = 0; i < 2; i++) {
		if (!skd_node_needs_grad(n, i))
			continue;
		const int64_t *shape = n->inputs[i].shape;
		int ndim = n->inputs[i].ndim;
		if (n->iarg[0] == OP_DIV && i == 1) {
			/* −Σ g·a / b²: b is constant along the dimensions the sum runs over, so it
			 * divides the reduced sum (one pass over the broadcast shape, not three) */
			skd_tensor *ga = skd_mul(gg, a);
			skd_tensor *sum = ga ? skd_sum_to_shape(ga, ndim, shape) : NULL;
			skd_tensor *bb = sum ? skd_mul(b, b) : NULL;
			gin[1] = bb ? skd_div(sum, bb) : NULL;
			if (gin[1])
				skd_mul_scalar_(gin[1], -1.0);
			skd_tensor_release(ga);
			skd_tensor_release(sum);
			skd_tensor_release(bb);
			if (!gin[1])
				return SKD_ERR;
			continue;
		}
		skd_tensor *full = n->iarg[0] == OP_MUL ? skd_mul(gg, i == 0 ? b : a) : skd_div(gg, b);
		if (!full)
			return SKD_ERR;
		gin[i] = skd_sum_to_shape(full, ndim, shape);
		skd_tensor_release(full);
		if (!gin[i])
			return SKD_ERR;
	}
	return SKD_OK;
}

static skd_tensor *binary(binop op, skd_tensor *a, skd_tensor *b)
{
	skd_tensor *out = binary_forward(op, a, b);
	bool linear = op == OP_ADD || op == OP_SUB;
	skd_node *n = skd_autograd_record(out, binop_name[op], linear ? add_backward : muldiv_backward,
					  2, (skd_tensor *[]){a, b});
	if (n) {
		n->iarg[0] = op;
		if (!linear) {
			skd_node_save(n, a);
			skd_node_save(n, b);
		}
	}
	return out;
}

skd_tensor *skd_add(skd_tensor *a, skd_tensor *b) { return binary(OP_ADD, a, b); }
skd_tensor *skd_sub(skd_tensor *a, skd_tensor *b) { return binary(OP_SUB, a, b); }
skd_tensor *skd_mul(skd_tensor *a, skd_tensor *b) { return binary(OP_MUL, a, b); }
skd_tensor *skd_div(skd_tensor *a, skd_tensor *b) { return binary(OP_DIV, a, b); }

/* ---------- unary ops (scalar arithmetic included) ---------- */

typedef enum {
	U_ADDS, U_MULS, U_RSUBS, U_RDIVS, U_POWS, U_NEG, U_RELU, U_LEAKY, U_SIGMOID, U_TANH,
	U_EXP, U_LOG, U_SQRT, U_ABS
} unop;
static const char *unop_name[] = {"add", "mul", "sub", "div", "pow", "neg", "relu",
				  "leaky_relu", "sigmoid", "tanh", "exp", "log", "sqrt", "abs"};

static void unary_kernel(unop op, float *restrict y, const float *restrict x, int64_t n, float s)
{
#define LOOP(EXPR)                                                                           \
	_Pragma("omp parallel for schedule(static) if (n > SKD_PARALLEL_GRAIN)")             \
	for (int64_t i = 0; i < n; i++) {                                                    \
		float v = x[i];                                                              \
		y[i] = (EXPR);                                                               \
	}                                                                                    \
	break
	switch (op) {
	case U_ADDS: LOOP(v + s);
	case U_MULS: LOOP(v * s);
	case U_RSUBS: LOOP(s - v);
	case U_RDIVS: LOOP(s / v);
	case U_POWS: LOOP(powf(v, s));
	case U_NEG: LOOP(-v);
	case U_RELU: LOOP(v > 0.0f ? v : 0.0f);
	case U_LEAKY: LOOP(v > 0.0f ? v : v * s);
	case U_SIGMOID: LOOP(1.0f / (1.0f + expf(-v)));
	case U_TANH: LOOP(tanhf(v));
	case U_EXP: LOOP(expf(v));
	case U_LOG: LOOP(logf(v));
	case U_SQRT: LOOP(sqrtf(v));
	case U_ABS: LOOP(fabsf(v));
	}
#undef LOOP
}

/* c > 0 ? a : b with both operands already loaded: written as a call, the loops below read
 * g[i] unconditionally, so the compiler turns the choice into a vector blend instead of a
 * branch per element (which a ReLU mask mispredicts half the time: measured 5x slower). */
static inline float pick_pos(float c, float a, float b)
{
	return c > 0.0f ? a : b;
}

/* gx = g * dy/dx, written with whichever of x (input) and y (output) the derivative needs.
 * gx may be g itself (skd_grad_buffer): element i is read before it is written, and `simd`
 * vectorises without the overlap test that would send gx == g down the scalar path. */
static void unary_grad_kernel(unop op, float *gx, const float *g, const float *restrict x,
			      const float *restrict y, int64_t n, float s)
{
#define LOOP(EXPR)                                                                           \
	_Pragma("omp parallel for simd schedule(static) if (n > SKD_PARALLEL_GRAIN)")        \
	for (int64_t i = 0; i < n; i++)                                                      \
		gx[i] = (EXPR);                                                              \
	break
	switch (op) {
	case U_ADDS: LOOP(g[i]);
	case U_MULS: LOOP(g[i] * s);
	case U_RSUBS: LOOP(-g[i]);
	case U_RDIVS: LOOP(-g[i] * y[i] / x[i]);          /* d(s/x) = -s/x^2 = -y/x */
	case U_POWS: LOOP(g[i] * s * powf(x[i], s - 1.0f));
	case U_NEG: LOOP(-g[i]);
	case U_RELU: LOOP(pick_pos(y[i], g[i], 0.0f));
	case U_LEAKY: LOOP(pick_pos(x[i], g[i], g[i] * s));
	case U_SIGMOID: LOOP(g[i] * y[i] * (1.0f - y[i]));
	case U_TANH: LOOP(g[i] * (1.0f - y[i] * y[i]));
	case U_EXP: LOOP(g[i] * y[i]);
	case U_LOG: LOOP(g[i] / x[i]);
	case U_SQRT: LOOP(g[i] * 0.5f / y[i]);
	case U_ABS: LOOP(pick_pos(x[i], g[i], pick_pos(-x[i], -g[i], 0.0f)));
	}
#undef LOOP
}

static int unary_backward(skd_node *n, const skd_tensor *g, skd_tensor **gin)
{
	skd_tensor *gx = skd_grad_buffer(g, n->inputs[0].ndim, n->inputs[0].shape);
	if (!gx)
		return SKD_ERR;
	const float *x = n->saved[0] ? skd_tensor_f32(n->saved[0]) : NULL;
	const float *y = n->saved[1] ? skd_tensor_f32(n->saved[1]) : NULL;
	unary_grad_kernel((unop)n->iarg[0], skd_tensor_f32(gx), skd_tensor_f32(g), x, y,
			  skd_tensor_numel(gx), (float)n->farg[0]);
	gin[0] = gx;
	return SKD_OK;
}

static skd_tensor *unary(unop op, skd_tensor *a, double s)
{
	if (check_float(unop_name[op], a))
		return NULL;
	skd_tensor *x = skd_tensor_contiguous_nograd(a);
	if (!x)
		return NULL;
	skd_tensor *y = skd_tensor_empty(SKD_FLOAT32, a->ndim, a->shape);
	if (y) {
		unary_kernel(op, skd_tensor_f32(y), skd_tensor_f32(x), skd_tensor_numel(x), (float)s);
		skd_node *n = skd_autograd_record(y, unop_name[op], unary_backward, 1, &a);
		if (n) {
			bool needs_x = op == U_RDIVS || op == U_POWS || op == U_LEAKY || op == U_LOG ||
				       op == U_ABS;
			bool needs_y = op == U_RDIVS || op == U_RELU || op == U_SIGMOID ||
				       op == U_TANH || op == U_EXP || op == U_SQRT;
			n->iarg[0] = op;
			n->farg[0] = s;
			skd_node_save(n, needs_x ? x : NULL);
			skd_node_save(n, needs_y ? y : NULL);
		}
	}
	skd_tensor_release(x);
	return y;
}

skd_tensor *skd_add_scalar(skd_tensor *a, double s) { return unary(U_ADDS, a, s); }
skd_tensor *skd_mul_scalar(skd_tensor *a, double s) { return unary(U_MULS, a, s); }
skd_tensor *skd_rsub_scalar(skd_tensor *a, double s) { return unary(U_RSUBS, a, s); }
skd_tensor *skd_rdiv_scalar(skd_tensor *a, double s) { return unary(U_RDIVS, a, s); }
skd_tensor *skd_pow_scalar(skd_tensor *a, double p) { return unary(U_POWS, a, p); }
skd_tensor *skd_neg(skd_tensor *a) { return unary(U_NEG, a, 0); }
skd_tensor *skd_relu(skd_tensor *a) { return unary(U_RELU, a, 0); }
skd_tensor *skd_leaky_relu(skd_tensor *a, double slope) { return unary(U_LEAKY, a, slope); }
skd_tensor *skd_sigmoid(skd_tensor *a) { return unary(U_SIGMOID, a, 0); }
skd_tensor *skd_tanh(skd_tensor *a) { return unary(U_TANH, a, 0); }
skd_tensor *skd_exp(skd_tensor *a) { return unary(U_EXP, a, 0); }
skd_tensor *skd_log(skd_tensor *a) { return unary(U_LOG, a, 0); }
skd_tensor *skd_sqrt(skd_tensor *a) { return unary(U_SQRT, a, 0); }
skd_tensor *skd_abs(skd_tensor *a) { return unary(U_ABS, a, 0); }

/* ---------- in place (optimisers, gradient accumulation) ---------- */

static int check_inplace(const char *op, skd_tensor *a)
{
	if (check_float(op, a))
		return SKD_ERR;
	if (a->requires_grad && skd_grad_enabled())
		return skd_error("%s: in-place update of a tensor that requires grad; do it in "
				 "no-grad mode (skd.no_grad)", op);
	if (!skd_tensor_is_contiguous(a))
		return skd_error("%s: in-place update needs a contiguous tensor", op);
	return SKD_OK;
}

int skd_add_(skd_tensor *a, skd_tensor *b, double alpha)
{
	if (check_inplace("add_", a) || check_float("add_", b))
		return SKD_ERR;
	int ndim;
	int64_t shape[SKD_MAX_DIMS], sb[SKD_MAX_DIMS];
	if (broadcast_shape("add_", a, b, &ndim, shape))
		return SKD_ERR;
	if (ndim != a->ndim || memcmp(shape, a->shape, (size_t)ndim * sizeof *shape)) {
		char x[SKD_SHAPE_STR_LEN], y[SKD_SHAPE_STR_LEN];
		return skd_error("add_: %s cannot be added in place into %s",
				 skd_shape_str(b, y, sizeof y), skd_shape_str(a, x, sizeof x));
	}
	skd_tensor_written(a);
	float *pa = skd_tensor_f32(a), al = (float)alpha;
	int64_t n = skd_tensor_numel(a);
	if (skd_tensor_same_shape(a, b) && skd_tensor_is_contiguous(b)) {
		const float *pb = skd_tensor_f32(b);
#pragma omp parallel for schedule(static) if (n > SKD_PARALLEL_GRAIN)
		for (int64_t i = 0; i < n; i++)
			pa[i] += al * pb[i];
		return SKD_OK;
	}
	skd_tensor *bb = skd_mul_scalar(b, alpha); /* no autograd: called in no-grad mode */
	if (!bb)
		return SKD_ERR;
	int64_t sa[SKD_MAX_DIMS];
	broadcast_strides(a, ndim, shape, sa);
	broadcast_strides(bb, ndim, shape, sb);
	binary_kernel(OP_ADD, pa, ndim, shape, pa, sa, skd_tensor_f32(bb), sb);
	skd_tensor_release(bb);
	return SKD_OK;
}

int skd_relu_(skd_tensor *a)
{
	if (check_inplace("relu_", a))
		return SKD_ERR;
	skd_tensor_written(a);
	float *p = skd_tensor_f32(a);
	int64_t n = skd_tensor_numel(a);
#pragma omp parallel for schedule(static) if (n > SKD_PARALLEL_GRAIN)
	for (int64_t i = 0; i < n; i++)
		p[i] = p[i] > 0.0f ? p[i] : 0.0f;
	return SKD_OK;
}

int skd_mul_scalar_(skd_tensor *a, double s)
{
	if (check_inplace("mul_", a))
		return SKD_ERR;
	skd_tensor_written(a);
	float *p = skd_tensor_f32(a), f = (float)s;
	int64_t n = skd_tensor_numel(a);
#pragma omp parallel for schedule(static) if (n > SKD_PARALLEL_GRAIN)
	for (int64_t i = 0; i < n; i++)
		p[i] *= f;
	return SKD_OK;
}
