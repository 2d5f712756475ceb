/* lskd.c — luaopen_skd: assembles the skd module and the helpers the binding shares. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "lskd.h"

/* ---------- errors and arguments ---------- */

int lskd_error(lua_State *L)
{
	return luaL_error(L, "%s", skd_last_error());
}

void lskd_check(lua_State *L, int status)
{
	if (status != SKD_OK)
		lskd_error(L);
}

int lskd_checkdim(lua_State *L, int idx, int ndim, int extra)
{
	lua_Integer d = luaL_checkinteger(L, idx);
	lua_Integer n = ndim + extra;
	if (d < 0)
		d += n + 1;
	if (d < 1 || d > n) {
		if (n == 0)
			return luaL_argerror(L, idx, "dimension given for a 0-dim tensor");
		return luaL_argerror(L, idx, lua_pushfstring(L, "dimension %I out of range (expected 1 to %d, "
								  "or -%d to -1)", luaL_checkinteger(L, idx), (int)n, (int)n));
	}
	return (int)d - 1;
}

/* Pushes options[field] (nil when there is no options table); returns its type. */
static int push_opt(lua_State *L, int idx, const char *op, const char *field)
{
	if (lua_isnoneornil(L, idx)) {
		lua_pushnil(L);
		return LUA_TNIL;
	}
	if (!lua_istable(L, idx))
		luaL_error(L, "%s: options must be a table, got %s", op, luaL_typename(L, idx));
	return lua_getfield(L, idx, field);
}

static void opt_type_error(lua_State *L, const char *op, const char *field, const char *want)
{
	luaL_error(L, "%s: option '%s' expects %s, got %s", op, field, want, luaL_typename(L, -1));
}

double lskd_optnum(lua_State *L, int idx, const char *op, const char *field, double def)
{
	idx = lua_absindex(L, idx);
	int t = push_opt(L, idx, op, field);
	double v = def;
	if (t == LUA_TNUMBER)
		v = lua_tonumber(L, -1);
	else if (t != LUA_TNIL)
		opt_type_error(L, op, field, "a number");
	lua_pop(L, 1);
	return v;
}

/* Whether the number on top of the stack is an integer that fits an int; *v gets it. A double
 * outside int's range is rejected before any cast (casting it would be undefined). */
static bool top_as_int(lua_State *L, int *v)
{
	lua_Number d = lua_tonumber(L, -1);
	if (!(d >= INT_MIN && d <= INT_MAX) || d != floor(d))
		return false;
	*v = (int)d;
	return true;
}

int lskd_optint(lua_State *L, int idx, const char *op, const char *field, int def)
{
	idx = lua_absindex(L, idx);
	int t = push_opt(L, idx, op, field);
	int v = def;
	if (t == LUA_TNUMBER) {
		if (!top_as_int(L, &v))
			luaL_error(L, "%s: option '%s' expects an integer of at most 2^31-1 in "
				   "magnitude, got %s", op, field, lua_tostring(L, -1));
	} else if (t != LUA_TNIL) {
		opt_type_error(L, op, field, "an integer");
	}
	lua_pop(L, 1);
	return v;
}

/* options[field] as a tensor, NULL when absent. The options table keeps it alive for the call. */
skd_tensor *lskd_opttensorfield(lua_State *L, int idx, const char *op, const char *field)
{
	idx = lua_absindex(L, idx);
	int t = push_opt(L, idx, op, field);
	skd_tensor *v = NULL;
	if (t != LUA_TNIL && !(v = lskd_opttensor(L, -1)))
		opt_type_error(L, op, field, "a tensor");
	lua_pop(L, 1);
	return v;
}

int lskd_optbool(lua_State *L, int idx, const char *op, const char *field, int def)
{
	idx = lua_absindex(L, idx);
	int t = push_opt(L, idx, op, field);
	int v = def;
	if (t == LUA_TBOOLEAN)
		v = lua_toboolean(L, -1);
	else if (t != LUA_TNIL)
		opt_type_error(L, op, field, "a boolean");
	lua_pop(L, 1);
	return v;
}

/* The string stays valid after the pop: the options table still holds it. */
const char *lskd_optstr(lua_State *L, int idx, const char *op, const char *field, const char *def)
{
	idx = lua_absindex(L, idx);
	int t = push_opt(L, idx, op, field);
	const char *v = def;
	if (t == LUA_TSTRING)
		v = lua_tostring(L, -1);
	else if (t != LUA_TNIL)
		opt_type_error(L, op, field, "a string");
	lua_pop(L, 1);
	return v;
}

void lskd_optpair(lua_State *L, int idx, const char *op, const char *field, int def, int out[2])
{
	idx = lua_absindex(L, idx);
	int t = push_opt(L, idx, op, field);
	out[0] = out[1] = def;
	if (t == LUA_TNUMBER && lua_isinteger(L, -1)) {
		if (!top_as_int(L, &out[0]))
			luaL_error(L, "%s: option '%s' is out of range (%s)", op, field, lua_tostring(L, -1));
		out[1] = out[0];
	} else if (t == LUA_TTABLE) {
		for (int k = 0; k < 2; k++) {
			if (lua_rawgeti(L, -1, k + 1) != LUA_TNUMBER || !lua_isinteger(L, -1))
				luaL_error(L, "%s: option '%s' expects an integer or a pair {h, w}", op, field);
			if (!top_as_int(L, &out[k]))
				luaL_error(L, "%s: option '%s' is out of range (%s)", op, field,
					   lua_tostring(L, -1));
			lua_pop(L, 1);
		}
	} else if (t != LUA_TNIL) {
		opt_type_error(L, op, field, "an integer or a pair {h, w}");
	}
	lua_pop(L, 1);
}

int lskd_checkint(lua_State *L, int idx, const char *op, const char *what)
{
	lua_Integer v = luaL_checkinteger(L, idx);
	if (v < INT_MIN || v > INT_MAX)
		luaL_error(L, "%s: %s must fit in 32 bits, got %I", op, what, v);
	return (int)v;
}

int lskd_checksizes(lua_State *L, int idx, const char *op, int64_t *shape)
{
	int n = 0;
	if (lua_istable(L, idx) && !luaL_testudata(L, idx, LSKD_TENSOR)) {
		int len = (int)luaL_len(L, idx);
		if (len > SKD_MAX_DIMS)
			luaL_error(L, "%s: at most %d sizes, got %d", op, SKD_MAX_DIMS, len);
		for (int k = 1; k <= len; k++) {
			lua_rawgeti(L, idx, k);
			if (!lua_isinteger(L, -1))
				luaL_error(L, "%s: size %d is not an integer (%s)", op, k, luaL_typename(L, -1));
			shape[n++] = lua_tointeger(L, -1);
			lua_pop(L, 1);
		}
		return n;
	}
	while (lua_type(L, idx + n) == LUA_TNUMBER) {
		if (n == SKD_MAX_DIMS)
			luaL_error(L, "%s: at most %d sizes", op, SKD_MAX_DIMS);
		if (!lua_isinteger(L, idx + n))
			luaL_error(L, "%s: size %d is not an integer (%s)", op, n + 1,
				   lua_tostring(L, idx + n));
		shape[n] = lua_tointeger(L, idx + n);
		n++;
	}
	return n;
}

void lskd_setfuncs(lua_State *L, const luaL_Reg *fns)
{
	luaL_setfuncs(L, fns, 0);
}

/* ---------- module-level functions ---------- */

static int l_manual_seed(lua_State *L)
{
	skd_manual_seed((uint64_t)luaL_checkinteger(L, 1));
	return 0;
}

static int l_threads(lua_State *L)
{
	if (!lua_isnoneornil(L, 1)) {
		lua_Integer n = luaL_checkinteger(L, 1);
		if (n < 1 || n > 1024) /* checked before the cast to int could wrap it into range */
			return luaL_error(L, "threads: expects a count from 1 to 1024, got %I", n);
		lskd_check(L, skd_threads_set((int)n));
	}
	lua_pushinteger(L, skd_threads_get());
	return 1;
}

/* skd.blis() -> {arch = "skx", threads = 1}: the BLIS kernel set and thread count in use. */
static int l_blis(lua_State *L)
{
	lua_createtable(L, 0, 2);
	lua_pushstring(L, skd_blis_arch());
	lua_setfield(L, -2, "arch");
	lua_pushinteger(L, skd_blis_threads_get());
	lua_setfield(L, -2, "threads");
	return 1;
}

static int l_clock(lua_State *L)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (double)ts.tv_sec + ts.tv_nsec * 1e-9);
	return 1;
}

/* skd.no_grad(fn, ...): calls fn with recording off, restoring the mode even on error. */
static int l_no_grad(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	bool prev = skd_set_grad_enabled(false);
	int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
	skd_set_grad_enabled(prev);
	if (status != LUA_OK)
		return lua_error(L);
	return lua_gettop(L);
}

static int l_grad_enabled(lua_State *L)
{
	if (!lua_isnoneornil(L, 1))
		skd_set_grad_enabled(lua_toboolean(L, 1));
	lua_pushboolean(L, skd_grad_enabled());
	return 1;
}

/* skd.memory() -> {in_use, cached, peak_in_use, peak_held} in bytes of tensor storage; the
 * peaks since skd.reset_peak_memory() (or the start). */
static int l_memory(lua_State *L)
{
	size_t peak_in_use, peak_held;
	skd_alloc_peaks(&peak_in_use, &peak_held);
	lua_createtable(L, 0, 4);
	lua_pushinteger(L, (lua_Integer)skd_alloc_bytes_in_use());
	lua_setfield(L, -2, "in_use");
	lua_pushinteger(L, (lua_Integer)skd_alloc_bytes_cached());
	lua_setfield(L, -2, "cached");
	lua_pushinteger(L, (lua_Integer)peak_in_use);
	lua_setfield(L, -2, "peak_in_use");
	lua_pushinteger(L, (lua_Integer)peak_held);
	lua_setfield(L, -2, "peak_held");
	return 1;
}

static int l_reset_peak_memory(lua_State *L)
{
	(void)L;
	skd_alloc_reset_peaks();
	return 0;
}

static int l_empty_cache(lua_State *L)
{
	(void)L;
	skd_alloc_empty_cache();
	return 0;
}

/* skd.rng_state() -> {4 integers}; skd.set_rng_state(s): checkpoints resume the stream. */
static int l_rng_state(lua_State *L)
{
	uint64_t s[4];
	skd_rng_get_state(s);
	lua_createtable(L, 4, 0);
	for (int i = 0; i < 4; i++) {
		lua_pushinteger(L, (lua_Integer)s[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static int l_set_rng_state(lua_State *L)
{
	uint64_t s[4], any = 0;
	luaL_checktype(L, 1, LUA_TTABLE);
	for (int i = 0; i < 4; i++) {
		if (lua_rawgeti(L, 1, i + 1) != LUA_TNUMBER || !lua_isinteger(L, -1))
			return luaL_error(L, "set_rng_state: expects the table of 4 integers rng_state() gave");
		s[i] = (uint64_t)lua_tointeger(L, -1);
		any |= s[i];
		lua_pop(L, 1);
	}
	if (!any) /* xoshiro's one fixed point: it would draw 0 forever */
		return luaL_error(L, "set_rng_state: the all-zero state is not a generator state");
	skd_rng_set_state(s);
	return 0;
}

/* Training traps SIGINT so that Ctrl-C saves a checkpoint and exits cleanly: the handler
 * only sets a flag the loop polls (skd._interrupted()). _trap_sigint(false) restores the
 * previous handler (the REPL's). */
static volatile sig_atomic_t interrupted;
static struct sigaction saved_sigint;
static int sigint_trapped;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int l_trap_sigint(lua_State *L)
{
	int on = lua_toboolean(L, 1);
	if (on && !sigint_trapped) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_sigint;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, &saved_sigint);
		sigint_trapped = 1;
		interrupted = 0;
	} else if (!on && sigint_trapped) {
		sigaction(SIGINT, &saved_sigint, NULL);
		sigint_trapped = 0;
	}
	return 0;
}

static int l_interrupted(lua_State *L)
{
	lua_pushboolean(L, interrupted);
	interrupted = 0;
	return 1;
}

/* ---------- gradcheck: the Lua function as the C callback ---------- */

typedef struct gc_ctx { lua_State *L; int fn; } gc_ctx;

static skd_tensor *gc_call(void *ud, int n, skd_tensor **inputs)
{
	gc_ctx *c = ud;
	lua_State *L = c->L;
	lua_pushvalue(L, c->fn);
	for (int i = 0; i < n; i++)
		lskd_pushtensor(L, skd_tensor_retain(inputs[i]));
	if (lua_pcall(L, n, 1, 0) != LUA_OK) {
		skd_error("gradcheck: the function failed: %s", lua_tostring(L, -1));
		lua_pop(L, 1);
		return NULL;
	}
	skd_tensor *out = lskd_opttensor(L, -1);
	if (!out) {
		skd_error("gradcheck: the function must return a tensor, got %s", luaL_typename(L, -1));
		lua_pop(L, 1);
		return NULL;
	}
	skd_tensor_retain(out);
	lua_pop(L, 1);
	return out;
}

/* skd.gradcheck(fn, {inputs...}, {eps=, atol=, rtol=, max_checks=}) -> ok, report */
static int l_gradcheck(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	luaL_checktype(L, 2, LUA_TTABLE);
	int n = (int)luaL_len(L, 2);
	if (n < 1 || n > 16)
		return luaL_error(L, "gradcheck: expects 1 to 16 inputs, got %d", n);
	skd_tensor *inputs[16];
	for (int i = 0; i < n; i++) {
		lua_rawgeti(L, 2, i + 1);
		inputs[i] = lskd_checktensor(L, -1);
		lua_pop(L, 1);
	}
	skd_gradcheck_opts o = {
		.eps = lskd_optnum(L, 3, "gradcheck", "eps", 1e-2),
		.atol = lskd_optnum(L, 3, "gradcheck", "atol", 1e-3),
		.rtol = lskd_optnum(L, 3, "gradcheck", "rtol", 1e-2),
		.max_checks = lskd_optint(L, 3, "gradcheck", "max_checks", 0),
	};
	gc_ctx c = {L, 1};
	skd_gradcheck_result r;
	lskd_check(L, skd_gradcheck(gc_call, &c, n, inputs, &o, &r));
	lua_pushboolean(L, r.ok);
	lua_createtable(L, 0, 6);
	lua_pushnumber(L, r.max_abs_err);
	lua_setfield(L, -2, "max_abs_err");
	lua_pushnumber(L, r.max_rel_err);
	lua_setfield(L, -2, "max_rel_err");
	lua_pushinteger(L, r.worst_input + 1);
	lua_setfield(L, -2, "worst_input");
	lua_pushinteger(L, r.worst_index + 1);
	lua_setfield(L, -2, "worst_index");
	lua_pushnumber(L, r.worst_analytic);
	lua_setfield(L, -2, "analytic");
	lua_pushnumber(L, r.worst_numeric);
	lua_setfield(L, -2, "numeric");
	lua_pushfstring(L, "max abs err %f, worst input %d element %d: analytic %f, numeric %f",
			r.max_abs_err, r.worst_input + 1, (int)r.worst_index + 1, r.worst_analytic,
			r.worst_numeric);
	lua_setfield(L, -2, "message");
	return 2;
}

/* ---------- the Lua library files under lua/skd/ ---------- */

/* Adds <dir of this binary>/../lua/?.lua to package.path, so that skd.nn, skd.models, ...
 * load from the source tree whether skd-lua or skd.so was started, from any directory. */
static void add_library_path(lua_State *L)
{
	Dl_info info;
	char buf[PATH_MAX], real[PATH_MAX];
	const char *env = getenv("SKD_LUA_DIR");
	if (env && *env) {
		snprintf(buf, sizeof buf, "%s", env);
	} else {
		if (!dladdr((void *)luaopen_skd, &info) || !info.dli_fname)
			return;
		const char *self = info.dli_fname;
		if (strchr(self, '/') == NULL) { /* a program found on PATH: ask the kernel */
			ssize_t k = readlink("/proc/self/exe", real, sizeof real - 1);
			if (k <= 0)
				return;
			real[k] = '\0';
		} else if (!realpath(self, real)) {
			return;
		}
		snprintf(buf, sizeof buf, "%s/../lua", dirname(real));
	}
	if (!realpath(buf, real))
		return;
	lua_getglobal(L, "package");
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	lua_getfield(L, -1, "path");
	lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", real, real, lua_tostring(L, -1));
	lua_setfield(L, -3, "path");
	lua_pop(L, 2);
}

/* skd.nn, skd.models, ... load on first use: require("skd." .. key). */
static int module_index(lua_State *L)
{
	const char *key = luaL_checkstring(L, 2);
	if (!strcmp(key, "nn") || !strcmp(key, "models") || !strcmp(key, "losses") ||
	    !strcmp(key, "optim") || !strcmp(key, "data") || !strcmp(key, "metrics") ||
	    !strcmp(key, "train") || !strcmp(key, "distill") || !strcmp(key, "utils") ||
	    !strcmp(key, "eval") || !strcmp(key, "viewer_lib") || !strcmp(key, "experiment")) {
		lua_getglobal(L, "require");
		lua_pushfstring(L, "skd.%s", key);
		lua_call(L, 1, 1);
		lua_pushvalue(L, 2);
		lua_pushvalue(L, -2);
		lua_rawset(L, 1);
		return 1;
	}
	return 0;
}

static const luaL_Reg module_fns[] = {
	{"manual_seed", l_manual_seed},
	{"threads", l_threads},
	{"blis", l_blis},
	{"clock", l_clock},
	{"no_grad", l_no_grad},
	{"grad_enabled", l_grad_enabled},
	{"memory", l_memory},
	{"reset_peak_memory", l_reset_peak_memory},
	{"empty_cache", l_empty_cache},
	{"gradcheck", l_gradcheck},
	{"rng_state", l_rng_state},
	{"set_rng_state", l_set_rng_state},
	{"_trap_sigint", l_trap_sigint},
	{"_interrupted", l_interrupted},
	{NULL, NULL},
};

/* Parts not linked in (a build without them) are simply absent from the module. */
__attribute__((weak)) void lskd_open_viewer(lua_State *L);
__attribute__((weak)) void lskd_open_io(lua_State *L);
__attribute__((weak)) void lskd_open_data(lua_State *L);
__attribute__((weak)) void lskd_open_metrics(lua_State *L);
__attribute__((weak)) void lskd_open_losses(lua_State *L);

int luaopen_skd(lua_State *L)
{
	skd_threads_get(); /* reads SKD_THREADS before the first parallel loop */
	add_library_path(L);
	luaL_newlib(L, module_fns);
	lua_pushliteral(L, SKD_VERSION);
	lua_setfield(L, -2, "version");
	lskd_open_tensor(L);
	lskd_open_math(L);
	lskd_open_nn(L);
	lskd_open_optim(L);
	lskd_open_sys(L);
	if (lskd_open_viewer)
		lskd_open_viewer(L);
	if (lskd_open_io)
		lskd_open_io(L);
	if (lskd_open_data)
		lskd_open_data(L);
	if (lskd_open_metrics)
		lskd_open_metrics(L);
	if (lskd_open_losses)
		lskd_open_losses(L);
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, module_index);
	lua_setfield(L, -2, "__index");
	lua_setmetatable(L, -2);
	return 1;
}
