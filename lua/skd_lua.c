/* skd_lua.c — the skd-lua program: runs scripts with the skd module preloaded.
 * Minimal driver; the REPL (readline, history, completion) is issue 2's remaining part. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lskd.h"

static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	if (!msg)
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

static int report(lua_State *L, int status)
{
	if (status != LUA_OK) {
		fprintf(stderr, "skd-lua: %s\n", lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	return status;
}

static int docall(lua_State *L, int narg, int nres)
{
	int base = lua_gettop(L) - narg;
	lua_pushcfunction(L, traceback);
	lua_insert(L, base);
	int status = lua_pcall(L, narg, nres, base);
	lua_remove(L, base);
	return status;
}

int main(int argc, char **argv)
{
	lua_State *L = luaL_newstate();
	if (!L) {
		fprintf(stderr, "skd-lua: cannot create a Lua state (out of memory)\n");
		return 1;
	}
	luaL_openlibs(L);
	luaL_requiref(L, "skd", luaopen_skd, 1);
	lua_pop(L, 1);
	int status = LUA_OK;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-e") && i + 1 < argc) {
			status = luaL_loadstring(L, argv[++i]);
			if (status == LUA_OK)
				status = docall(L, 0, 0);
			if (report(L, status) != LUA_OK)
				goto done;
		} else if (!strcmp(argv[i], "-v")) {
			printf("skd %s, %s\n", SKD_VERSION, LUA_RELEASE);
		} else {
			break;
		}
	}
	if (i < argc) {
		lua_createtable(L, argc - i, i + 1);
		for (int k = 0; k < argc; k++) {
			lua_pushstring(L, argv[k]);
			lua_rawseti(L, -2, k - i);
		}
		lua_setglobal(L, "arg");
		status = luaL_loadfile(L, argv[i]);
		if (status == LUA_OK) {
			for (int k = i + 1; k < argc; k++)
				lua_pushstring(L, argv[k]);
			status = docall(L, argc - i - 1, 0);
		}
		report(L, status);
	}
done:
	lua_close(L);
	return status == LUA_OK ? 0 : 1;
}
