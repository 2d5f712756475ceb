/* lio.c — skd.save and skd.load: checkpoints as safetensors files (core/safetensors.h).
 *
 *   skd.save(path, {name = tensor, ...} [, {key = "value", ...}])
 *   local tensors, metadata = skd.load(path)
 *
 * Metadata values are strings; numbers are stored as tostring(n). The core does the format;
 * this file turns Lua tables into arrays and back, and core errors into Lua errors.
 */
#include <string.h>
#include "lskd.h"
#include "safetensors.h"

#define LSKD_STFILE "skd.SafetensorsFile"

/* An open file being read: a userdata so that a Lua error half-way (out of memory, an I64
 * that does not fit) still closes it when the collector runs. */
typedef struct stbox { skd_st_file *f; } stbox;

static int stfile_gc(lua_State *L)
{
	stbox *b = luaL_checkudata(L, 1, LSKD_STFILE);
	skd_st_close(b->f);
	b->f = NULL;
	return 0;
}

/* skd.load(path) -> tensors, metadata */
static int l_load(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	stbox *b = lua_newuserdatauv(L, sizeof *b, 0);
	b->f = NULL;
	luaL_setmetatable(L, LSKD_STFILE);
	b->f = skd_st_open(path);
	if (!b->f)
		return lskd_error(L);
	lua_createtable(L, 0, (int)b->f->n_entries);
	for (size_t i = 0; i < b->f->n_entries; i++) {
		lskd_pushtensor(L, skd_st_read(b->f, i));
		lua_setfield(L, -2, b->f->entries[i].name);
	}
	lua_createtable(L, 0, (int)b->f->n_meta);
	for (size_t i = 0; i < b->f->n_meta; i++) {
		lua_pushstring(L, b->f->meta[i].value);
		lua_setfield(L, -2, b->f->meta[i].key);
	}
	skd_st_close(b->f);
	b->f = NULL;
	return 2;
}

/* A key of the table at idx (on top of the stack) as a C string without NUL bytes. */
static const char *check_key(lua_State *L, const char *path, const char *what)
{
	if (lua_type(L, -2) != LUA_TSTRING)
		luaL_error(L, "save: '%s': %s keys must be strings, got a %s key", path, what,
			   luaL_typename(L, -2));
	size_t len;
	const char *key = lua_tolstring(L, -2, &len);
	if (strlen(key) != len)
		luaL_error(L, "save: '%s': %s key '%s...' contains a NUL byte", path, what, key);
	return key;
}

/* skd.save(path, tensors [, metadata]) */
static int l_save(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	if (lua_type(L, 2) != LUA_TTABLE)
		return luaL_error(L, "save: '%s': expects a table {name = tensor, ...}, got %s",
				  path, luaL_typename(L, 2));
	int has_meta = !lua_isnoneornil(L, 3);
	if (has_meta && lua_type(L, 3) != LUA_TTABLE)
		return luaL_error(L, "save: '%s': metadata must be a table of strings, got %s",
				  path, luaL_typename(L, 3));
	lua_settop(L, 3);

	size_t n = 0, n_meta = 0;
	for (lua_pushnil(L); lua_next(L, 2); lua_pop(L, 1))
		n++;
	if (has_meta)
		for (lua_pushnil(L); lua_next(L, 3); lua_pop(L, 1))
			n_meta++;
	/* The arrays live in userdata so that an error below frees them with the rest. */
	const char **names = lua_newuserdatauv(L, (n + 1) * sizeof *names, 0);
	skd_tensor **tensors = lua_newuserdatauv(L, (n + 1) * sizeof *tensors, 0);
	const char **keys = lua_newuserdatauv(L, (n_meta + 1) * sizeof *keys, 0);
	const char **values = lua_newuserdatauv(L, (n_meta + 1) * sizeof *values, 0);
	lua_createtable(L, 0, (int)n_meta); /* anchors the strings that numbers become */
	int anchor = lua_gettop(L);

	size_t i = 0;
	for (lua_pushnil(L); lua_next(L, 2) && i < n; lua_pop(L, 1), i++) {
		names[i] = check_key(L, path, "tensor table");
		tensors[i] = lskd_opttensor(L, -1);
		if (!tensors[i])
			return luaL_error(L, "save: '%s': '%s' is a %s, not a tensor", path, names[i],
					  luaL_typename(L, -1));
	}
	i = 0;
	if (has_meta)
		for (lua_pushnil(L); lua_next(L, 3) && i < n_meta; lua_pop(L, 1), i++) {
			keys[i] = check_key(L, path, "metadata");
			int ty = lua_type(L, -1);
			if (ty != LUA_TSTRING && ty != LUA_TNUMBER)
				return luaL_error(L, "save: '%s': metadata '%s' is a %s; values must "
						  "be strings (numbers are converted)", path, keys[i],
						  luaL_typename(L, -1));
			size_t len;
			values[i] = luaL_tolstring(L, -1, &len); /* tostring(n) for numbers */
			if (strlen(values[i]) != len)
				return luaL_error(L, "save: '%s': metadata '%s' contains a NUL byte",
						  path, keys[i]);
			lua_setfield(L, anchor, keys[i]);
			lua_getfield(L, anchor, keys[i]);
			values[i] = lua_tostring(L, -1);
			lua_pop(L, 1);
		}
	lskd_check(L, skd_st_save(path, n, names, tensors, n_meta, keys, values));
	return 0;
}

/* skd._tensor_bytes(t) -> the bytes a file would hold for t (row-major, little-endian), so
 * that tests can compare tensors bit for bit, NaN payloads and signed zeros included. */
static int l_tensor_bytes(lua_State *L)
{
	skd_tensor *c = skd_tensor_contiguous_nograd(lskd_checktensor(L, 1));
	if (!c)
		return lskd_error(L);
	lua_pushlstring(L, (const char *)c->storage->data + c->offset * 4,
			(size_t)skd_tensor_numel(c) * 4);
	skd_tensor_release(c);
	return 1;
}

static const luaL_Reg io_fns[] = {
	{"save", l_save},
	{"load", l_load},
	{"_tensor_bytes", l_tensor_bytes},
	{NULL, NULL},
};

void lskd_open_io(lua_State *L)
{
	if (luaL_newmetatable(L, LSKD_STFILE)) {
		lua_pushcfunction(L, stfile_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
	lskd_setfuncs(L, io_fns);
}
