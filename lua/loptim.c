/* loptim.c — the optimiser kernels for lua/skd/optim.lua: skd._sgd_step, skd._adam_step. */
#include "lskd.h"
#include "optim.h"

/* skd._sgd_step(p, g, buf|nil, lr, momentum, weight_decay, nesterov, first_step) */
static int l_sgd_step(lua_State *L)
{
	skd_tensor *p = lskd_checktensor(L, 1), *g = lskd_checktensor(L, 2);
	skd_tensor *buf = lskd_opttensor(L, 3);
	/* every argument is read before grad mode goes off: a bad one raises, and a raise
	 * between the two calls would leave grad mode off for the rest of the session */
	double lr = luaL_checknumber(L, 4), momentum = luaL_checknumber(L, 5);
	double weight_decay = luaL_checknumber(L, 6);
	bool prev = skd_set_grad_enabled(false);
	int rc = skd_sgd_step(p, g, buf, lr, momentum, weight_decay, lua_toboolean(L, 7),
			      lua_toboolean(L, 8));
	skd_set_grad_enabled(prev);
	lskd_check(L, rc);
	return 0;
}

/* skd._adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step) */
static int l_adam_step(lua_State *L)
{
	skd_tensor *p = lskd_checktensor(L, 1), *g = lskd_checktensor(L, 2);
	skd_tensor *m = lskd_checktensor(L, 3), *v = lskd_checktensor(L, 4);
	double lr = luaL_checknumber(L, 5), beta1 = luaL_checknumber(L, 6);
	double beta2 = luaL_checknumber(L, 7), eps = luaL_checknumber(L, 8);
	double weight_decay = luaL_checknumber(L, 9);
	lua_Integer step = luaL_checkinteger(L, 10);
	bool prev = skd_set_grad_enabled(false); /* after the reads, as in l_sgd_step */
	int rc = skd_adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step);
	skd_set_grad_enabled(prev);
	lskd_check(L, rc);
	return 0;
}

static const luaL_Reg optim_fns[] = {
	{"_sgd_step", l_sgd_step},
	{"_adam_step", l_adam_step},
	{NULL, NULL},
};

void lskd_open_optim(lua_State *L)
{
	luaL_setfuncs(L, optim_fns, 0);
}
