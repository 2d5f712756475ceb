/* lmath.c — arithmetic on skd.Tensor: t + u and the other operator metamethods (tensor or
 * number on either side), in-place add_ and mul_, elementwise math (relu, exp, ...) and the
 * reductions sum, mean, max and argmax. ltensor.c makes the type; lskd_open_math registers
 * these in the module and in the tensor's method table, so each is both skd.f(t, ...) and
 * t:f(...), and sets the metatable's arithmetic metamethods. Dimensions and the indices
 * argmax returns are 1-based. */
#include "lskd.h"

/* ---------- in place ---------- */

static int t_add_(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	if (lua_isnumber(L, 2)) {
		skd_tensor *s = skd_tensor_scalar((float)lua_tonumber(L, 2));
		int rc = s ? skd_add_(t, s, 1.0) : SKD_ERR;
		skd_tensor_release(s);
		lskd_check(L, rc);
	} else {
		lskd_check(L, skd_add_(t, lskd_checktensor(L, 2), luaL_optnumber(L, 3, 1.0)));
	}
	lua_settop(L, 1);
	return 1;
}

static int t_mul_(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	lskd_check(L, skd_mul_scalar_(t, luaL_checknumber(L, 2)));
	lua_settop(L, 1);
	return 1;
}

static int t_relu_(lua_State *L)
{
	lskd_check(L, skd_relu_(lskd_checktensor(L, 1)));
	lua_settop(L, 1);
	return 1;
}

/* ---------- arithmetic ---------- */

typedef skd_tensor *(*binfn)(skd_tensor *, skd_tensor *);
typedef skd_tensor *(*scalfn)(skd_tensor *, double);

/* t op u, t op number, number op t. */
static int arith(lua_State *L, const char *op, binfn tt, scalfn ts, scalfn st)
{
	skd_tensor *a = lskd_opttensor(L, 1), *b = lskd_opttensor(L, 2);
	if (a && b)
		lskd_pushtensor(L, tt(a, b));
	else if (a && lua_isnumber(L, 2))
		lskd_pushtensor(L, ts(a, lua_tonumber(L, 2)));
	else if (b && lua_isnumber(L, 1))
		lskd_pushtensor(L, st(b, lua_tonumber(L, 1)));
	else
		return luaL_error(L, "%s: expects tensors or numbers, got %s and %s", op,
				  luaL_typename(L, 1), luaL_typename(L, 2));
	return 1;
}

static skd_tensor *sub_scalar(skd_tensor *a, double s) { return skd_add_scalar(a, -s); }
static skd_tensor *div_scalar(skd_tensor *a, double s) { return skd_mul_scalar(a, 1.0 / s); }

static int t_add(lua_State *L) { return arith(L, "add", skd_add, skd_add_scalar, skd_add_scalar); }
static int t_sub(lua_State *L) { return arith(L, "sub", skd_sub, sub_scalar, skd_rsub_scalar); }
static int t_mul(lua_State *L) { return arith(L, "mul", skd_mul, skd_mul_scalar, skd_mul_scalar); }
static int t_div(lua_State *L) { return arith(L, "div", skd_div, div_scalar, skd_rdiv_scalar); }

static int t_pow(lua_State *L)
{
	skd_tensor *a = lskd_checktensor(L, 1);
	lskd_pushtensor(L, skd_pow_scalar(a, luaL_checknumber(L, 2)));
	return 1;
}

#define UNARY(name, fn) \
	static int t_##name(lua_State *L) { lskd_pushtensor(L, fn(lskd_checktensor(L, 1))); return 1; }
UNARY(neg, skd_neg)
UNARY(relu, skd_relu)
UNARY(sigmoid, skd_sigmoid)
UNARY(tanh, skd_tanh)
UNARY(exp, skd_exp)
UNARY(log, skd_log)
UNARY(sqrt, skd_sqrt)
UNARY(abs, skd_abs)
#undef UNARY

static int t_leaky_relu(lua_State *L)
{
	lskd_pushtensor(L, skd_leaky_relu(lskd_checktensor(L, 1), luaL_optnumber(L, 2, 0.01)));
	return 1;
}

/* ---------- reductions ---------- */

typedef skd_tensor *(*alldfn)(skd_tensor *);
typedef skd_tensor *(*dimfn)(skd_tensor *, int, bool);

static int reduction(lua_State *L, alldfn all, dimfn bydim)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	if (lua_isnoneornil(L, 2)) {
		lskd_pushtensor(L, all(t));
		return 1;
	}
	int d = lskd_checkdim(L, 2, t->ndim, 0);
	lskd_pushtensor(L, bydim(t, d, lua_toboolean(L, 3)));
	return 1;
}

static int t_sum(lua_State *L) { return reduction(L, skd_sum_all, skd_sum_dim); }
static int t_mean(lua_State *L) { return reduction(L, skd_mean_all, skd_mean_dim); }

/* Pushes a copy of the 0-based int32 indices ix made 1-based, as every index the binding
 * hands out. A copy: ix itself may be saved by max's backward. */
static void push_one_based(lua_State *L, skd_tensor *ix)
{
	skd_tensor *c = skd_tensor_to_dtype(ix, SKD_INT32);
	lskd_pushtensor(L, c);
	int32_t *p = skd_tensor_i32(c);
	for (int64_t i = 0, n = skd_tensor_numel(c); i < n; i++)
		p[i] += 1;
}

/* t:max() -> 0-d tensor; t:max(d [, keepdim]) -> values, indices (1-based, int32) */
static int t_max(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	if (lua_isnoneornil(L, 2)) {
		lskd_pushtensor(L, skd_max_all(t));
		return 1;
	}
	int d = lskd_checkdim(L, 2, t->ndim, 0);
	skd_tensor *ix = NULL;
	skd_tensor *v = skd_max_dim(t, d, lua_toboolean(L, 3), &ix);
	if (!v)
		return lskd_error(L);
	lskd_pushtensor(L, v);
	lskd_pushtensor(L, ix); /* owned by Lua from here, so released even if the copy fails */
	push_one_based(L, ix);
	lua_remove(L, -2);
	return 2;
}

static int t_argmax(lua_State *L)
{
	skd_tensor *t = lskd_checktensor(L, 1);
	int d = lskd_checkdim(L, 2, t->ndim, 0);
	lskd_pushtensor(L, skd_argmax(t, d, lua_toboolean(L, 3)));
	push_one_based(L, lskd_checktensor(L, -1));
	lua_remove(L, -2);
	return 1;
}

static const luaL_Reg math_fns[] = {
	{"add_", t_add_}, {"mul_", t_mul_}, {"relu_", t_relu_},
	{"add", t_add}, {"sub", t_sub}, {"mul", t_mul}, {"div", t_div}, {"pow", t_pow},
	{"neg", t_neg}, {"relu", t_relu}, {"leaky_relu", t_leaky_relu}, {"sigmoid", t_sigmoid},
	{"tanh", t_tanh}, {"exp", t_exp}, {"log", t_log}, {"sqrt", t_sqrt}, {"abs", t_abs},
	{"sum", t_sum}, {"mean", t_mean}, {"max", t_max}, {"argmax", t_argmax},
	{NULL, NULL},
};

static const luaL_Reg math_meta[] = {
	{"__add", t_add}, {"__sub", t_sub}, {"__mul", t_mul}, {"__div", t_div},
	{"__unm", t_neg}, {"__pow", t_pow},
	{NULL, NULL},
};

/* Called after lskd_open_tensor, with the module table on top: the metatable and its
 * method table exist by then. */
void lskd_open_math(lua_State *L)
{
	luaL_setfuncs(L, math_fns, 0);
	luaL_getmetatable(L, LSKD_TENSOR);
	luaL_setfuncs(L, math_meta, 0);
	lua_getfield(L, -1, "methods");
	luaL_setfuncs(L, math_fns, 0);
	lua_pop(L, 2);
}
