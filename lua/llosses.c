/* llosses.c — the C kernels behind skd.losses (lua/skd/losses.lua), registered as skd._name:
 * they exist only to serve that file, which composes them into the distillation losses. */
#include "lskd.h"

/* skd._l2_normalize(x, {eps=1e-8, detach_norm=false}): x (B,C,N) normalised over C. */
static int l_l2_normalize(lua_State *L)
{
	skd_tensor *x = lskd_checktensor(L, 1);
	double eps = lskd_optnum(L, 2, "l2_normalize", "eps", 1e-8);
	bool detach = lskd_optbool(L, 2, "l2_normalize", "detach_norm", 0);
	if (!(eps >= 0))
		return luaL_error(L, "l2_normalize: option 'eps' must be at least 0, got %f", eps);
	lskd_pushtensor(L, skd_l2_normalize(x, eps, detach));
	return 1;
}

/* skd._pairwise_gram(s, t): s (B,Cs,N), t (B,Ct,N) normalised nodes -> scalar loss. */
static int l_pairwise_gram(lua_State *L)
{
	lskd_pushtensor(L, skd_pairwise_gram(lskd_checktensor(L, 1), lskd_checktensor(L, 2)));
	return 1;
}

/* skd._pairwise_local(s, t, nh, nw, radius) -> scalar loss over the band of neighbours. */
static int l_pairwise_local(lua_State *L)
{
	skd_tensor *s = lskd_checktensor(L, 1), *t = lskd_checktensor(L, 2);
	lua_Integer nh = luaL_checkinteger(L, 3), nw = luaL_checkinteger(L, 4);
	lua_Integer r = luaL_checkinteger(L, 5);
	if (r < 0 || r > 1 << 20)
		return luaL_argerror(L, 5, "connection range must be between 0 and 2^20");
	lskd_pushtensor(L, skd_pairwise_local(s, t, nh, nw, (int)r));
	return 1;
}

static const luaL_Reg losses_fns[] = {
	{"_l2_normalize", l_l2_normalize},
	{"_pairwise_gram", l_pairwise_gram},
	{"_pairwise_local", l_pairwise_local},
	{NULL, NULL},
};

void lskd_open_losses(lua_State *L)
{
	luaL_setfuncs(L, losses_fns, 0);
}
