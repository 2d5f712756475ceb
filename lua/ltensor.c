/* ltensor.c — the skd.Tensor userdata: constructors, geometry and element access, views and
 * copies, in-place fills, autograd, printing and the metamethods that are not arithmetic.
 * Every function here is both skd.f(t, ...) and t:f(...); lmath.c adds the arithmetic,
 * elementwise math and reductions to the same two tables. Dimensions and indices are
 * 1-based, as in Lua and Torch7. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "lskd.h"

typedef struct box { skd_tensor *t; } box;

/* Tensor storage is C memory Lua's collector cannot see, so the binding tells it when enough
 * has been made (design.md, "Memory"): once the new storage since the last full collection
 * passes 1/GC_FRACTION of what the allocator has in use, GC_MIN_BYTES, and the size of Lua's
 * own heap (a collection walks that heap, so it is paid for by at least as many bytes of
 * tensors), the binding runs a full collection. Garbage tensors then never hold much more than
 * that beside the live ones, and a 10,000-step loop runs in flat memory (tests/test_memory.lua),
 * in the incremental and the generational mode alike. Reporting every storage as a collector
 * step of its size, as before, finished a whole cycle on most large allocations: ~260 cycles
 * per distillation step, each walking every Lua object of three networks, 4.6 % of the step's
 * CPU time against 1.3 % now (perf, one thread), for 2 % more peak resident memory. */
#define GC_MIN_BYTES ((size_t)1 << 20)
#define GC_FRACTION 32

static size_t made_since_collection; /* one Lua state per process (skd-lua, or the host's) */

static void gc_pressure(lua_State *L, const skd_tensor *t)
{
	if (t->storage->refcount != 1)
		return; /* a view: no new storage */
	made_since_collection += t->storage->nbytes;
	if (made_since_collection < GC_MIN_BYTES ||
	    made_since_collection < skd_alloc_bytes_in_use() / GC_FRACTION ||
	    made_since_collection < (size_t)lua_gc(L, LUA_GCCOUNT) << 10)
		return;
	made_since_collection = 0;
	lua_gc(L, LUA_GCCOLLECT); /* does nothing inside a finaliser, where it is not allowed */
}

void lskd_pushtensor(lua_State *L, skd_tensor *t)
{
	if (!t)
		lskd_error(L);
	box *b = lua_newuserdatauv(L, sizeof *b, 0);
	b->t = t;
	luaL_setmetatable(L, LSKD_TENSOR);
	gc_pressure(L, t);
}

skd_tensor *lskd_opttensor(lua_State *L, int idx)
{
	box *b = luaL_testudata(L, idx, LSKD_TENSOR);
	if (!b)
		return NULL;
	if (!b->t)
		luaL_error(L, "tensor was closed (used after its <close> scope ended)");
	return b->t;
}

skd_tensor *lskd_checktensor(lua_State *L, int idx)
{
	skd_tensor *t = lskd_opttensor(L, idx);
	if (!t)
		luaL_typeerror(L, idx, "tensor");
	return t;
}

static skd_dtype checkdtype(lua_State *L, int idx, const char *op)
{
	const char *d = lskd_optstr(L, idx, op, "dtype", "float32");
	if (!strcmp(d, "float32") || !strcmp(d, "float"))
		return SKD_FLOAT32;
	if (!strcmp(d, "int32") || !strcmp(d, "int"))
		return SKD_INT32;
	luaL_error(L, "%s: dtype must be \"float32\" or \"int32\", got \"%s\"", op, d);
	return SKD_FLOAT32;
}

static void apply_requires_grad(lua_State *L, int opts, const char *op, skd_tensor *t)
{
	if (lskd_optbool(L, opts, op, "requires_grad", 0))
		lskd_check(L, skd_tensor_set_requires_grad(t, true));
}

/* ---------- constructors ---------- */

/* skd.tensor({{1,2},{3,4}} [, {dtype=, requires_grad=}]) */
static void nested_shape(lua_State *L, int idx, int depth, int64_t *shape, int *ndim)
{
	int len = (int)luaL_len(L, idx);
	if (depth >= SKD_MAX_DIMS)
		luaL_error(L, "tensor: nesting deeper than %d", SKD_MAX_DIMS);
	shape[depth] = len;
	*ndim = depth + 1;
	if (len > 0 && lua_rawgeti(L, idx, 1) == LUA_TTABLE)
		nested_shape(L, lua_gettop(L), depth + 1, shape, ndim);
	if (len > 0)
		lua_pop(L, 1);
}

static void nested_fill(lua_State *L, int idx, int depth, int ndim, const int64_t *shape,
			skd_tensor *t, int64_t *pos)
{
	int len = (int)luaL_len(L, idx);
	if (len != shape[depth])
		luaL_error(L, "tensor: ragged nested table (a row of length %d where %d was expected)",
			   len, (int)shape[depth]);
	for (int k = 1; k <= len; k++) {
		int ty = lua_rawgeti(L, idx, k);
		if (depth + 1 < ndim) {
			if (ty != LUA_TTABLE)
				luaL_error(L, "tensor: expected a nested table at depth %d", depth + 2);
			nested_fill(L, lua_gettop(L), depth + 1, ndim, shape, t, pos);
		} else {
			if (ty != LUA_TNUMBER)
				luaL_error(L, "tensor: element %d is %s, not a number", (int)*pos + 1,
					   luaL_typename(L, -1));
			if (t->dtype == SKD_FLOAT32)
				skd_tensor_f32(t)[*pos] = (float)lua_tonumber(L, -1);
			else /* truncated as :int() does (1.5 -> 1), not dropped to 0 */
				skd_tensor_i32(t)[*pos] = skd_to_int32(lua_tonumber(L, -1));
			(*pos)++;
		}
		lua_pop(L, 1);
	}
}

static int t_tensor(lua_State *L)
{
	int64_t shape[SKD_MAX_DIMS];
	int ndim = 0;
	lua_settop(L, 2); /* the options slot stays below the result */
	if (lua_type(L, 1) == LUA_TNUMBER) { /* skd.tensor(3.5): a 0-d tensor */
		skd_dtype dt = checkdtype(L, 2, "tensor");
		skd_tensor *t = skd_tensor_full(dt, 0, NULL, lua_tonumber(L, 1));
		lskd_pushtensor(L, t);
		apply_requires_grad(L, 2, "tensor", t);
		return 1;
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	skd_dtype dt = checkdtype(L, 2, "tensor");
	nested_shape(L, 1, 0, shape, &ndim);
	skd_tensor *t = skd_tensor_empty(dt, ndim, shape);
	lskd_pushtensor(L, t);
	int64_t pos = 0;
	nested_fill(L, 1, 0, ndim, shape, t, &pos);
	apply_requires_grad(L, 2, "tensor", t);
	return 1;
}

/* Sizes then an optional options table: zeros(2, 3, {dtype="int32"}) or zeros({2, 3}, {...}). */
static int sized(lua_State *L, const char *op, int64_t *shape, int *opts)
{
	int n = lskd_checksizes(L, 1, op, shape);
	int next = (lua_istable(L, 1) && !luaL_testudata(L, 1, LSKD_TENSOR)) ? 2 : n + 1;
	if (!lua_isnoneornil(L, next) && !lua_istable(L, next))
		luaL_error(L, "%s: sizes must be integers (argument %d is %s)", op, next,
			   luaL_typename(L, next));
	*opts = next;
	lua_settop(L, next); /* the options slot stays below the result */
	return n;
}

static int make_filled(lua_State *L, const char *op, double v)
{
	int64_t shape[SKD_MAX_DIMS];
	int opts, n = sized(L, op, shape, &opts);
	skd_tensor *t = skd_tensor_full(checkdtype(L, opts, op), n, shape, v);
	lskd_pushtensor(L, t);
	apply_requires_grad(L, opts, op, t);
	return 1;
}

static int t_zeros(lua_State *L) { return make_filled(L, "zeros", 0.0); }

/* skd.empty(sizes...): uninitialised values (PyTorch's torch.empty), for a buffer about to be
 * overwritten; its pages are only touched when written. */
static int t_empty(lua_State *L)
{
	int64_t shape[SKD_MAX_DIMS];
	int opts, n = sized(L, "empty", shape, &opts);
	skd_tensor *t = skd_tensor_empty(checkdtype(L, opts, "empty"), n, shape);
	lskd_pushtensor(L, t);
	apply_requires_grad(L, opts, "empty", t);
	return 1;
}
static int t_ones(lua_State *L) { return make_filled(L, "ones", 1.0); }

static int t_full(lua_State *L)
{
	int64_t shape[SKD_MAX_DIMS];
	int n = lskd_checksizes(L, 1, "full", shape);
	if (!lua_istable(L, 1))
		return luaL_error(L, "full: expects a table of sizes, then the value");
	lua_settop(L, 3);
	skd_tensor *t = skd_tensor_full(checkdtype(L, 3, "full"), n, shape, luaL_checknumber(L, 2));
	lskd_pushtensor(L, t);
	apply_requires_grad(L, 3, "full", t);
	return 1;
}

static int make_random(lua_State *L, const char *op, bool normal)
{
	int64_t shape[SKD_MAX_DIMS];
	int opts, n = sized(L, op, shape, &opts);
	skd_tensor *t = skd_tensor_empty(SKD_FLOAT32, n, shape);
	lskd_pushtensor(L, t);
	float *p = skd_tensor_f32(t);
	for (int64_t i = 0, m = skd_tensor_numel(t); i < m; i++)
		p[i] = (float)(normal ? skd_rng_normal() : skd_rng_uniform());
	apply_requires_grad(L, opts, op, t);
	return 1;
}

static int t_randn(lua_State *L) { return make_random(L, "randn", true); }
static int t_rand(lua_State *L) { return make_random(L, "rand", false); }

/* skd.arange(n) -> 0..n-1; skd.arange(a, b [, step]) -> a, a+step, ... < b */
static int t_arange(lua_State *L)
{
	double a = 0, b, step = 1;
	if (lua_isnumber(L, 2)) {
		a = luaL_checknumber(L, 1);
		b = luaL_checknumber(L, 2);
		step = luaL_optnumber(L, 3, 1);
	} else {
		b = luaL_checknumber(L, 1);
	}
	if (step == 0)
		return luaL_error(L, "arange: step must not be 0");
	double count = ceil((b - a) / step);
	if (!(count < 0x1p40)) /* also NaN and infinite bounds: the cast would be undefined */
		return luaL_error(L, "arange: %f to %f by %f would have %f elements (at most 2^40)",
				  a, b, step, count);
	int64_t n = count > 0 ? (int64_t)count : 0;
	skd_tensor *t = skd_tensor_empty(SKD_FLOAT32, 1, &n);
	lskd_pushtensor(L, t);
	for (int64_t i = 0; i < n; i++)
		skd_tensor_f32(t)[i] = (float)(a + i * step);
	return 1;
}

/* ---------- geometry ---------- */

static int t_size(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	if (!lua_isnoneornil(L, 2)) {
		int d = lskd_checkdim(L, 2, t->ndim, 0);
		lua_pushinteger(L, t->shape[d]);
		return 1;
	}
	lua_createtable(L, t->ndim, 0);
	for (int i = 0; i < t->ndim; i++) {
		lua_pushinteger(L, t->shape[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static int t_stride(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	lua_createtable(L, t->ndim, 0);
	for (int i = 0; i < t->ndim; i++) {
		lua_pushinteger(L, t->stride[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static int t_dim(lua_State *L)
{
	lua_pushinteger(L, lskd_checktensor(L, 1)->ndim);
	return 1;
}

static int t_numel(lua_State *L)
{
	lua_pushinteger(L, skd_tensor_numel(lskd_checktensor(L, 1)));
	return 1;
}

static int t_dtype(lua_State *L)
{
	lua_pushstring(L, skd_dtype_name(lskd_checktensor(L, 1)->dtype));
	return 1;
}

static int t_is_contiguous(lua_State *L)
{
	lua_pushboolean(L, skd_tensor_is_contiguous(lskd_checktensor(L, 1)));
	return 1;
}

static void push_value(lua_State *L, const skd_tensor *t, const int64_t *idx)
{
	double v = skd_tensor_get(t, idx);
	if (t->dtype == SKD_INT32)
		lua_pushinteger(L, (lua_Integer)v);
	else
		lua_pushnumber(L, v);
}

static int t_item(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	if (skd_tensor_numel(t) != 1) {
		char s[SKD_SHAPE_STR_LEN];
		return luaL_error(L, "item: expects a tensor with one element, got shape %s",
				  skd_shape_str(t, s, sizeof s));
	}
	int64_t idx[SKD_MAX_DIMS] = {0};
	push_value(L, t, idx);
	return 1;
}

/* Reads 1-based indices from arg first.., one per dimension, bounds-checked. */
static void check_index(lua_State *L, const skd_tensor *t, int first, const char *op, int64_t *idx)
{
	int given = lua_gettop(L) - first + 1;
	if (given != t->ndim) {
		char s[SKD_SHAPE_STR_LEN];
		luaL_error(L, "%s: a tensor of shape %s needs %d indices, got %d", op,
			   skd_shape_str(t, s, sizeof s), t->ndim, given < 0 ? 0 : given);
	}
	for (int d = 0; d < t->ndim; d++) {
		lua_Integer i = luaL_checkinteger(L, first + d);
		if (i < 1 || i > t->shape[d])
			luaL_error(L, "%s: index %d is out of range for dimension %d of size %d", op,
				   (int)i, d + 1, (int)t->shape[d]);
		idx[d] = i - 1;
	}
}

static int t_get(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	int64_t idx[SKD_MAX_DIMS];
	check_index(L, t, 2, "get", idx);
	push_value(L, t, idx);
	return 1;
}

/* t:set(v, i, j, ...) */
static int t_set(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	double v = luaL_checknumber(L, 2);
	int64_t idx[SKD_MAX_DIMS];
	check_index(L, t, 3, "set", idx);
	if (t->requires_grad && skd_grad_enabled())
		return luaL_error(L, "set: in-place update of a tensor that requires grad; do it "
				  "in skd.no_grad");
	skd_tensor_set(t, idx, v);
	lua_settop(L, 1);
	return 1;
}

static void totable(lua_State *L, const skd_tensor *t, int d, int64_t *idx)
{
	lua_createtable(L, (int)t->shape[d], 0);
	for (int64_t k = 0; k < t->shape[d]; k++) {
		idx[d] = k;
		if (d + 1 < t->ndim)
			totable(L, t, d + 1, idx);
		else
			push_value(L, t, idx);
		lua_rawseti(L, -2, (int)k + 1);
	}
}

static int t_totable(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	int64_t idx[SKD_MAX_DIMS] = {0};
	if (t->ndim == 0)
		push_value(L, t, idx);
	else
		totable(L, t, 0, idx);
	return 1;
}

/* ---------- views and copies ---------- */

static int t_reshape(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	int64_t shape[SKD_MAX_DIMS];
	int n = lskd_checksizes(L, 2, "reshape", shape);
	lskd_pushtensor(L, skd_reshape(t, n, shape));
	return 1;
}

static int t_permute(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	int64_t order64[SKD_MAX_DIMS];
	int order[SKD_MAX_DIMS];
	int n = lskd_checksizes(L, 2, "permute", order64);
	if (n != t->ndim)
		return luaL_error(L, "permute: a tensor of %d dims needs %d entries, got %d", t->ndim,
				  t->ndim, n);
	for (int i = 0; i < n; i++)
		order[i] = (int)order64[i] - 1;
	lskd_pushtensor(L, skd_permute(t, order));
	return 1;
}

static int t_transpose(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	int a = lskd_checkdim(L, 2, t->ndim, 0), b = lskd_checkdim(L, 3, t->ndim, 0);
	lskd_pushtensor(L, skd_transpose(t, a, b));
	return 1;
}

static int t_narrow(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	int d = lskd_checkdim(L, 2, t->ndim, 0);
	lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
	if (start < 1) /* and start - 1 cannot wrap around */
		return luaL_error(L, "narrow: start %I is before the first position 1", start);
	lskd_pushtensor(L, skd_narrow(t, d, start - 1, len));
	return 1;
}

static int t_select(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	int d = lskd_checkdim(L, 2, t->ndim, 0);
	lua_Integer i = luaL_checkinteger(L, 3);
	if (i < 0)
		i += t->shape[d] + 1;
	lskd_pushtensor(L, skd_select(t, d, i - 1));
	return 1;
}

static int t_unsqueeze(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	lskd_pushtensor(L, skd_unsqueeze(t, lskd_checkdim(L, 2, t->ndim, 1)));
	return 1;
}

static int t_squeeze(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	if (lua_isnoneornil(L, 2)) { /* all size-1 dims */
		int64_t shape[SKD_MAX_DIMS];
		int n = 0;
		for (int i = 0; i < t->ndim; i++)
			if (t->shape[i] != 1)
				shape[n++] = t->shape[i];
		lskd_pushtensor(L, skd_reshape(t, n, shape));
		return 1;
	}
	lskd_pushtensor(L, skd_squeeze(t, lskd_checkdim(L, 2, t->ndim, 0)));
	return 1;
}

static int t_expand(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	int64_t shape[SKD_MAX_DIMS];
	int n = lskd_checksizes(L, 2, "expand", shape);
	lskd_pushtensor(L, skd_expand(t, n, shape));
	return 1;
}

static int t_contiguous(lua_State *L) { lskd_pushtensor(L, skd_contiguous(lskd_checktensor(L, 1))); return 1; }
static int t_clone(lua_State *L) { lskd_pushtensor(L, skd_clone(lskd_checktensor(L, 1))); return 1; }
static int t_detach(lua_State *L) { lskd_pushtensor(L, skd_detach(lskd_checktensor(L, 1))); return 1; }

static int t_flip(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	lskd_pushtensor(L, skd_flip(t, lskd_checkdim(L, 2, t->ndim, 0)));
	return 1;
}

static int t_float(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	lskd_pushtensor(L, t->dtype == SKD_FLOAT32 ? skd_tensor_retain(t) : skd_tensor_to_dtype(t, SKD_FLOAT32));
	return 1;
}

static int t_int(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	lskd_pushtensor(L, t->dtype == SKD_INT32 ? skd_tensor_retain(t) : skd_tensor_to_dtype(t, SKD_INT32));
	return 1;
}

/* ---------- in place ---------- */

static void check_inplace(lua_State *L, skd_tensor *t, const char *op)
{
	if (t->requires_grad && skd_grad_enabled())
		luaL_error(L, "%s: in-place update of a tensor that requires grad; do it in skd.no_grad", op);
}

static int t_fill_(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	check_inplace(L, t, "fill_");
	lskd_check(L, skd_tensor_fill_(t, luaL_checknumber(L, 2)));
	lua_settop(L, 1);
	return 1;
}

/* t:normal_(mean=0, std=1), t:uniform_(a=0, b=1): refill a contiguous float32 tensor in
 * place from the engine's generator, with the draws randn/rand would make (v·std + mean,
 * u·(b − a) + a): a layer's initialisation without a temporary of the weight's size. */
static int refill_random(lua_State *L, const char *op, bool normal)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	check_inplace(L, t, op);
	if (t->dtype != SKD_FLOAT32 || !skd_tensor_is_contiguous(t))
		return luaL_error(L, "%s: expects a contiguous float32 tensor (call :contiguous())", op);
	double a = luaL_optnumber(L, 2, 0.0), b = luaL_optnumber(L, 3, 1.0);
	if (normal && !(b >= 0.0))
		return luaL_error(L, "%s: std must be >= 0, got %f", op, b);
	if (!normal && !(a <= b))
		return luaL_error(L, "%s: expects a <= b, got %f > %f", op, a, b);
	float scale = (float)(normal ? b : b - a), shift = (float)a;
	skd_tensor_written(t);
	float *p = skd_tensor_f32(t);
	for (int64_t i = 0, m = skd_tensor_numel(t); i < m; i++)
		p[i] = (float)(normal ? skd_rng_normal() : skd_rng_uniform()) * scale + shift;
	lua_settop(L, 1);
	return 1;
}

static int t_normal_(lua_State *L) { return refill_random(L, "normal_", true); }
static int t_uniform_(lua_State *L) { return refill_random(L, "uniform_", false); }

static int t_zero_(lua_State *L)
{
	lua_settop(L, 1);
	lua_pushinteger(L, 0);
	return t_fill_(L);
}

static int t_copy_(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1), *src = lskd_checktensor(L, 2);
	check_inplace(L, t, "copy_");
	lskd_check(L, skd_tensor_copy_(t, src));
	lua_settop(L, 1);
	return 1;
}

/* ---------- autograd ---------- */

static int t_requires_grad(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	if (lua_isnone(L, 2)) {
		lskd_check(L, skd_tensor_set_requires_grad(t, true));
	} else {
		lskd_check(L, skd_tensor_set_requires_grad(t, lua_toboolean(L, 2)));
	}
	lua_settop(L, 1);
	return 1;
}

static int t_backward(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	lskd_check(L, skd_backward(t, lskd_opttensor(L, 2)));
	return 0;
}

static int t_zero_grad(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	if (t->grad)
		skd_tensor_fill_(t->grad, 0.0);
	return 0;
}

/* ---------- metamethods ---------- */

static int t_tostring(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	char *s = skd_tensor_format(t);
	if (!s)
		return lskd_error(L);
	lua_pushstring(L, s);
	free(s);
	return 1;
}

static int t_gc(lua_State *L)
{
	box *b = luaL_checkudata(L, 1, LSKD_TENSOR);
	skd_tensor_release(b->t);
	b->t = NULL;
	return 0;
}

static int t_len(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	lua_pushinteger(L, t->ndim ? t->shape[0] : 0);
	return 1;
}

static int t_eq(lua_State *L)
{
	lua_pushboolean(L, lskd_opttensor(L, 1) == lskd_opttensor(L, 2));
	return 1;
}

/* t[i]: select along dimension 1 (a number for 1-d tensors); t.grad; methods; skd functions. */
static int t_index(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	if (lua_type(L, 2) == LUA_TNUMBER) {
		lua_Integer i = luaL_checkinteger(L, 2);
		if (t->ndim == 0)
			return luaL_error(L, "index: a 0-dim tensor cannot be indexed (use :item())");
		if (i < 1 || i > t->shape[0])
			return luaL_error(L, "index: %d is out of range for dimension 1 of size %d",
					  (int)i, (int)t->shape[0]);
		if (t->ndim == 1) {
			int64_t idx = i - 1;
			push_value(L, t, &idx);
			return 1;
		}
		lskd_pushtensor(L, skd_select(t, 0, i - 1));
		return 1;
	}
	const char *k = luaL_checkstring(L, 2);
	if (!strcmp(k, "grad")) {
		if (t->grad)
			lskd_pushtensor(L, skd_tensor_retain(t->grad));
		else
			lua_pushnil(L);
		return 1;
	}
	if (!strcmp(k, "is_leaf")) {
		lua_pushboolean(L, t->grad_fn == NULL);
		return 1;
	}
	if (!strcmp(k, "grad_fn")) {
		if (t->grad_fn)
			lua_pushstring(L, t->grad_fn->op);
		else
			lua_pushnil(L);
		return 1;
	}
	if (!strcmp(k, "requires_grad_")) { /* the flag itself, as a field */
		lua_pushboolean(L, t->requires_grad);
		return 1;
	}
	/* methods: the metatable's method table, then the skd module (t:conv2d(w), t:softmax(2)) */
	luaL_getmetatable(L, LSKD_TENSOR);
	lua_getfield(L, -1, "methods");
	lua_getfield(L, -1, k);
	if (!lua_isnil(L, -1))
		return 1;
	lua_pop(L, 3);
	lua_getfield(L, LUA_REGISTRYINDEX, "skd.module");
	lua_getfield(L, -1, k);
	return 1;
}

/* t[i] = v fills the slice; t.grad = nil drops the gradient (t.grad = g sets it). */
static int t_newindex(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	if (lua_type(L, 2) == LUA_TNUMBER) {
		lua_Integer i = luaL_checkinteger(L, 2);
		check_inplace(L, t, "index assignment");
		if (t->ndim == 0 || i < 1 || i > t->shape[0])
			return luaL_error(L, "index assignment: index %I is out of range for dimension 1 "
					  "of size %I", i, (lua_Integer)(t->ndim ? t->shape[0] : 0));
		/* every check that can raise comes before the view is made: a raise after it
		 * would leak the view, and with it the whole storage */
		bool number = lua_isnumber(L, 3);
		skd_tensor *src = number ? NULL : lskd_opttensor(L, 3);
		if (!number && !src)
			return luaL_error(L, "index assignment: expects a number or a tensor, got %s",
					  luaL_typename(L, 3));
		skd_tensor *s = skd_select(t, 0, i - 1);
		if (!s)
			return lskd_error(L);
		int rc = number ? skd_tensor_fill_(s, lua_tonumber(L, 3)) : skd_tensor_copy_(s, src);
		skd_tensor_release(s);
		lskd_check(L, rc);
		return 0;
	}
	const char *k = luaL_checkstring(L, 2);
	if (!strcmp(k, "grad")) {
		skd_tensor *g = lskd_opttensor(L, 3);
		if (!g && !lua_isnil(L, 3)) /* t.grad = 5 must not silently drop the gradient */
			return luaL_error(L, "grad: expects a tensor or nil, got %s", luaL_typename(L, 3));
		if (g && (!skd_tensor_same_shape(g, t) || g->dtype != SKD_FLOAT32 ||
			  !skd_tensor_is_contiguous(g))) {
			/* backward accumulates into .grad in place, and the optimisers read it flat */
			char a[SKD_SHAPE_STR_LEN], b[SKD_SHAPE_STR_LEN];
			return luaL_error(L, "grad: expects a contiguous float32 gradient of the tensor's "
					  "shape %s, got %s%s %s", skd_shape_str(t, a, sizeof a),
					  skd_tensor_is_contiguous(g) ? "" : "non-contiguous ",
					  skd_dtype_name(g->dtype), skd_shape_str(g, b, sizeof b));
		}
		skd_tensor_release(t->grad);
		t->grad = g ? skd_tensor_retain(g) : NULL;
		return 0;
	}
	return luaL_error(L, "tensor: cannot set field '%s'", k);
}

static const luaL_Reg tensor_fns[] = {
	{"tensor", t_tensor}, {"zeros", t_zeros}, {"empty", t_empty}, {"ones", t_ones}, {"full", t_full},
	{"randn", t_randn}, {"rand", t_rand}, {"arange", t_arange},
	{"size", t_size}, {"stride", t_stride}, {"dim", t_dim}, {"numel", t_numel},
	{"dtype", t_dtype}, {"is_contiguous", t_is_contiguous}, {"item", t_item},
	{"get", t_get}, {"set", t_set}, {"totable", t_totable},
	{"reshape", t_reshape}, {"view", t_reshape}, {"permute", t_permute},
	{"transpose", t_transpose}, {"narrow", t_narrow}, {"select", t_select},
	{"unsqueeze", t_unsqueeze}, {"squeeze", t_squeeze}, {"expand", t_expand},
	{"contiguous", t_contiguous}, {"clone", t_clone}, {"detach", t_detach}, {"flip", t_flip},
	{"float", t_float}, {"int", t_int},
	{"fill_", t_fill_}, {"normal_", t_normal_}, {"uniform_", t_uniform_}, {"zero_", t_zero_}, {"copy_", t_copy_},
	{"requires_grad", t_requires_grad}, {"backward", t_backward}, {"zero_grad", t_zero_grad},
	{NULL, NULL},
};

static const luaL_Reg tensor_meta[] = {
	{"__len", t_len}, {"__eq", t_eq}, /* the arithmetic ones: lmath.c */
	{"__index", t_index}, {"__newindex", t_newindex}, {"__tostring", t_tostring},
	{"__gc", t_gc}, {"__close", t_gc},
	{NULL, NULL},
};

/* skd._rebind(t, u): the handle t now refers to u's tensor. Module:flatten moves each
 * parameter into the flat buffer this way, so references taken before flattening (an
 * optimiser's parameter list) follow it instead of going stale. */
static int l_rebind(lua_State *L)
{
	box *a = luaL_checkudata(L, 1, LSKD_TENSOR);
	skd_tensor *u = lskd_checktensor(L, 2);
	if (!a->t)
		return luaL_error(L, "rebind: tensor was closed");
	skd_tensor *old = a->t;
	a->t = skd_tensor_retain(u);
	skd_tensor_release(old);
	return 0;
}

static int l_is_tensor(lua_State *L)
{
	lua_pushboolean(L, luaL_testudata(L, 1, LSKD_TENSOR) != NULL);
	return 1;
}

void lskd_open_tensor(lua_State *L)
{
	/* module table on top */
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, "skd.module");
	luaL_setfuncs(L, tensor_fns, 0);
	lua_pushcfunction(L, l_is_tensor);
	lua_setfield(L, -2, "is_tensor");
	lua_pushcfunction(L, l_rebind);
	lua_setfield(L, -2, "_rebind");
	luaL_newmetatable(L, LSKD_TENSOR);
	luaL_setfuncs(L, tensor_meta, 0);
	luaL_newlib(L, tensor_fns);
	lua_setfield(L, -2, "methods");
	lua_pushliteral(L, "skd.Tensor");
	lua_setfield(L, -2, "__name");
	lua_pop(L, 1);
}
