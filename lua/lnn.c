/* lnn.c — functional neural-network ops: skd.conv2d, skd.matmul, pooling, interpolate,
 * batch_norm, dropout, softmax, cross_entropy, cat, split. Options go in a trailing table. */
#include <string.h>
#include "lskd.h"
#include "winograd.h"

/* skd.conv2d(x, w [, b] [, {stride=, padding=, dilation=, groups=}]) */
static int l_conv2d(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1), *w = lskd_checktensor(L, 2);
	skd_tensor *b = lskd_opttensor(L, 3);
	int opts = (b || lua_isnil(L, 3)) ? 4 : 3;
	if (!b && !lua_isnoneornil(L, 3) && !lua_istable(L, 3))
		return luaL_typeerror(L, 3, "tensor, nil or options table");
	skd_conv2d_params p;
	lskd_optpair(L, opts, "conv2d", "stride", 1, p.stride);
	lskd_optpair(L, opts, "conv2d", "padding", 0, p.padding);
	lskd_optpair(L, opts, "conv2d", "dilation", 1, p.dilation);
	p.groups = lskd_optint(L, opts, "conv2d", "groups", 1);
	/* core/conv2d.c forms 2·padding in int: keep it (and the dilated reach) far from 2^31 */
	for (int k = 0; k < 2; k++)
		if (p.padding[k] > 1 << 24 || p.dilation[k] > 1 << 24)
			return luaL_error(L, "conv2d: padding and dilation must be at most 2^24, got "
					  "padding %dx%d, dilation %dx%d", p.padding[0], p.padding[1],
					  p.dilation[0], p.dilation[1]);
	lskd_pushtensor(L, skd_conv2d(x, w, b, &p));
	return 1;
}

/* skd.conv_algo([name]) -> the setting before the call: "auto", "direct", "winograd2" or
 * "winograd4" (SKD_CONV_ALGO's default); with a name, sets it for every later conv2d. */
static int l_conv_algo(lua_State *L)
{
	skd_conv_algo prev = skd_conv_algo_get(), a;
	if (!lua_isnoneornil(L, 1)) {
		lskd_check(L, skd_conv_algo_parse(luaL_checkstring(L, 1), &a));
		skd_conv_algo_set(a);
	}
	lua_pushstring(L, skd_conv_algo_name(prev));
	return 1;
}

static int l_matmul(lua_State *L)
{
	lskd_pushtensor(L, skd_matmul(lskd_checktensor(L, 1), lskd_checktensor(L, 2)));
	return 1;
}

/* {kernel=, stride= (default: kernel), padding=, ceil_mode=, count_include_pad=}; a number
 * as the second argument is the kernel size. */
static void pool_params(lua_State *L, const char *op, skd_pool2d_params *p)
{
	int opts = 2;
	if (lua_isnumber(L, 2)) {
		p->kernel[0] = p->kernel[1] = lskd_checkint(L, 2, op, "kernel size");
		opts = 3;
	} else {
		lskd_optpair(L, 2, op, "kernel", 0, p->kernel);
		if (p->kernel[0] == 0)
			luaL_error(L, "%s: expects a kernel size (a number, or {kernel=k} in the options)", op);
	}
	lskd_optpair(L, opts, op, "stride", 0, p->stride);
	if (p->stride[0] == 0) {
		p->stride[0] = p->kernel[0];
		p->stride[1] = p->kernel[1];
	}
	lskd_optpair(L, opts, op, "padding", 0, p->padding);
	p->ceil_mode = lskd_optbool(L, opts, op, "ceil_mode", 0);
	p->count_include_pad = lskd_optbool(L, opts, op, "count_include_pad", 1);
}

static int l_max_pool2d(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1);
	skd_pool2d_params p;
	pool_params(L, "max_pool2d", &p);
	lskd_pushtensor(L, skd_max_pool2d(x, &p));
	return 1;
}

static int l_avg_pool2d(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1);
	skd_pool2d_params p;
	pool_params(L, "avg_pool2d", &p);
	lskd_pushtensor(L, skd_avg_pool2d(x, &p));
	return 1;
}

/* Output size as a number (square) or {h, w}. */
static void checksize2(lua_State *L, int idx, const char *op, int64_t out[2])
{
	if (lua_isinteger(L, idx)) {
		out[0] = out[1] = lua_tointeger(L, idx);
		return;
	}
	if (!lua_istable(L, idx) || luaL_len(L, idx) != 2)
		luaL_error(L, "%s: expects an output size: a number or {h, w}", op);
	for (int k = 0; k < 2; k++) {
		lua_rawgeti(L, idx, k + 1);
		if (!lua_isinteger(L, -1))
			luaL_error(L, "%s: output size entries must be integers", op);
		out[k] = lua_tointeger(L, -1);
		lua_pop(L, 1);
	}
}

static int l_adaptive_avg_pool2d(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1);
	int64_t s[2];
	checksize2(L, 2, "adaptive_avg_pool2d", s);
	lskd_pushtensor(L, skd_adaptive_avg_pool2d(x, s[0], s[1]));
	return 1;
}

/* skd.interpolate(x, {h, w}, {mode="bilinear"|"nearest", align_corners=false}) */
static int l_interpolate(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1);
	int64_t s[2];
	checksize2(L, 2, "interpolate", s);
	const char *mode = lskd_optstr(L, 3, "interpolate", "mode", "bilinear");
	skd_interp_mode m;
	if (!strcmp(mode, "bilinear"))
		m = SKD_INTERP_BILINEAR;
	else if (!strcmp(mode, "nearest"))
		m = SKD_INTERP_NEAREST;
	else
		return luaL_error(L, "interpolate: mode must be \"bilinear\" or \"nearest\", got \"%s\"", mode);
	bool ac = lskd_optbool(L, 3, "interpolate", "align_corners", 0);
	lskd_pushtensor(L, skd_interpolate(x, s[0], s[1], m, ac));
	return 1;
}

/* skd.batch_norm(x, weight, bias, running_mean, running_var, {training=, momentum=0.1, eps=1e-5}) */
static int l_batch_norm(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1);
	skd_tensor *w = lskd_opttensor(L, 2), *b = lskd_opttensor(L, 3);
	skd_tensor *rm = lskd_opttensor(L, 4), *rv = lskd_opttensor(L, 5);
	bool training = lskd_optbool(L, 6, "batch_norm", "training", 0);
	double momentum = lskd_optnum(L, 6, "batch_norm", "momentum", 0.1);
	double eps = lskd_optnum(L, 6, "batch_norm", "eps", 1e-5);
	lskd_pushtensor(L, skd_batch_norm(x, w, b, rm, rv, training, momentum, eps));
	return 1;
}

/* skd._channel_affine_(x, scale, shift [, residual [, relu=false]]) -> x: in place, no
 * gradient (Module:freeze's folding; a frozen ResNet block's residual sum and ReLU) */
static int l_channel_affine_(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1);
	skd_tensor *residual = lua_isnoneornil(L, 4) ? NULL : lskd_checktensor(L, 4);
	if (!lua_isnoneornil(L, 5))
		luaL_checktype(L, 5, LUA_TBOOLEAN);
	bool relu = lua_toboolean(L, 5);
	lskd_check(L, skd_channel_affine_(x, lskd_checktensor(L, 2), lskd_checktensor(L, 3),
					  residual, relu));
	lua_settop(L, 1);
	return 1;
}

/* A 1x1 convolution's weight packed for skd._conv2d_pointwise (conv2d_pointwise.c). */
#define LSKD_POINTWISE "skd.PointwisePack"

static int pointwise_gc(lua_State *L)
{
	skd_pointwise **pp = luaL_checkudata(L, 1, LSKD_POINTWISE);
	skd_pointwise_free(*pp);
	*pp = NULL;
	return 0;
}

/* skd._conv2d_pointwise(x, w, pack|nil, scale|nil, shift|nil, residual|nil, relu) -> y, pack:
 * conv2d(x, w)·scale + shift (+ residual) (then ReLU) for a 1x1 convolution recording no
 * gradient (Conv2d's frozen path). pack: what the previous call returned, or nil; it is
 * repacked in place when w has changed, so a module holds one pack whatever happens. */
static int l_conv2d_pointwise(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1), *w = lskd_checktensor(L, 2);
	skd_tensor *t[3]; /* scale, shift, residual: a tensor or nil, never silently ignored */
	for (int i = 0; i < 3; i++)
		t[i] = lua_isnoneornil(L, 4 + i) ? NULL : lskd_checktensor(L, 4 + i);
	if (!lua_isnoneornil(L, 7))
		luaL_checktype(L, 7, LUA_TBOOLEAN);
	bool relu = lua_toboolean(L, 7);
	lua_settop(L, 7); /* every argument slot exists, so slot 3 can take a new pack */
	if (lua_isnil(L, 3)) {
		skd_pointwise **pp = lua_newuserdatauv(L, sizeof *pp, 0);
		*pp = NULL;
		luaL_setmetatable(L, LSKD_POINTWISE);
		lua_replace(L, 3);
	}
	skd_pointwise **pack = luaL_checkudata(L, 3, LSKD_POINTWISE);
	lskd_pushtensor(L, skd_conv2d_pointwise(x, w, pack, t[0], t[1], t[2], relu));
	lua_pushvalue(L, 3);
	return 2;
}

static int l_pointwise_available(lua_State *L)
{
	lua_pushboolean(L, skd_pointwise_available());
	return 1;
}

/* skd._winograd_isa() -> "avx512" | "avx2": which build of the Winograd transforms runs */
static int l_winograd_isa(lua_State *L)
{
	lua_pushstring(L, skd_winograd_isa());
	return 1;
}

/* skd.dropout(x, p [, training=true]) */
static int l_dropout(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1);
	double p = luaL_optnumber(L, 2, 0.5);
	bool training = lua_isnone(L, 3) ? true : lua_toboolean(L, 3);
	lskd_pushtensor(L, skd_dropout(x, p, training));
	return 1;
}

static int l_dropout2d(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1);
	double p = luaL_optnumber(L, 2, 0.5);
	bool training = lua_isnone(L, 3) ? true : lua_toboolean(L, 3);
	lskd_pushtensor(L, skd_dropout2d(x, p, training));
	return 1;
}

static int l_softmax(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1);
	lskd_pushtensor(L, skd_softmax(x, lskd_checkdim(L, 2, x->ndim, 0)));
	return 1;
}

static int l_log_softmax(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1);
	lskd_pushtensor(L, skd_log_softmax(x, lskd_checkdim(L, 2, x->ndim, 0)));
	return 1;
}

/* skd.cross_entropy(logits, target, {ignore_index=255, reduction="mean"|"sum"|"none",
 *                   weight=C-vector of class weights}) */
static int l_cross_entropy(lua_State *L)
{
	skd_tensor *z = lskd_checktensor(L, 1), *y = lskd_checktensor(L, 2);
	int ignore = lskd_optint(L, 3, "cross_entropy", "ignore_index", 255);
	const char *red = lskd_optstr(L, 3, "cross_entropy", "reduction", "mean");
	skd_tensor *weight = lskd_opttensorfield(L, 3, "cross_entropy", "weight");
	skd_reduction r;
	if (!strcmp(red, "mean"))
		r = SKD_REDUCTION_MEAN;
	else if (!strcmp(red, "sum"))
		r = SKD_REDUCTION_SUM;
	else if (!strcmp(red, "none"))
		r = SKD_REDUCTION_NONE;
	else
		return luaL_error(L, "cross_entropy: reduction must be \"mean\", \"sum\" or \"none\", got \"%s\"", red);
	lskd_pushtensor(L, skd_cross_entropy(z, y, weight, ignore, r));
	return 1;
}

/* skd.cat({a, b, ...}, dim) */
static int l_cat(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	int n = (int)luaL_len(L, 1);
	if (n < 1)
		return luaL_error(L, "cat: expects a non-empty table of tensors");
	skd_tensor **ts = lua_newuserdatauv(L, (size_t)n * sizeof *ts, 0); /* freed by the GC */
	for (int i = 0; i < n; i++) {
		lua_rawgeti(L, 1, i + 1);
		ts[i] = lskd_opttensor(L, -1);
		if (!ts[i])
			return luaL_error(L, "cat: element %d of the table is %s, not a tensor", i + 1,
					  luaL_typename(L, -1));
		lua_pop(L, 1);
	}
	int dim = lskd_checkdim(L, 2, ts[0]->ndim, 0);
	lskd_pushtensor(L, skd_cat(n, ts, dim));
	return 1;
}

/* skd.split(t, size, dim) -> {pieces...} */
static int l_split(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	lua_Integer size = luaL_checkinteger(L, 2);
	int dim = lskd_checkdim(L, 3, t->ndim, 0);
	if (size < 1)
		return luaL_argerror(L, 2, "piece size must be at least 1");
	int64_t pieces = t->shape[dim] / size + (t->shape[dim] % size != 0);
	if (pieces > INT32_MAX)
		return luaL_error(L, "split: %I pieces is too many", (lua_Integer)pieces);
	int max = (int)pieces;
	skd_tensor **out = lua_newuserdatauv(L, (size_t)(max ? max : 1) * sizeof *out, 0);
	int n;
	lskd_check(L, skd_split(t, size, dim, out, max, &n));
	lua_createtable(L, n, 0);
	for (int i = 0; i < n; i++) {
		lskd_pushtensor(L, out[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static const luaL_Reg nn_fns[] = {
	{"conv2d", l_conv2d},
	{"conv_algo", l_conv_algo},
	{"matmul", l_matmul},
	{"max_pool2d", l_max_pool2d},
	{"avg_pool2d", l_avg_pool2d},
	{"adaptive_avg_pool2d", l_adaptive_avg_pool2d},
	{"interpolate", l_interpolate},
	{"batch_norm", l_batch_norm},
	{"_channel_affine_", l_channel_affine_},
	{"_conv2d_pointwise", l_conv2d_pointwise},
	{"_pointwise_available", l_pointwise_available},
	{"_winograd_isa", l_winograd_isa},
	{"dropout", l_dropout},
	{"dropout2d", l_dropout2d},
	{"softmax", l_softmax},
	{"log_softmax", l_log_softmax},
	{"cross_entropy", l_cross_entropy},
	{"cat", l_cat},
	{"split", l_split},
	{NULL, NULL},
};

void lskd_open_nn(lua_State *L)
{
	luaL_newmetatable(L, LSKD_POINTWISE);
	lua_pushcfunction(L, pointwise_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	luaL_setfuncs(L, nn_fns, 0);
}
