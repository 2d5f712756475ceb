/* lsys.c — the operating-system helpers plain Lua lacks, for the library's run plumbing:
 * atomic file writes, mkdir -p, isatty, file existence. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "lskd.h"

/* skd.write_file(path, text): temporary file beside path, fsync, rename — a crash leaves
 * either the old file or the new one, never a torn one. */
static int l_write_file(lua_State *L)
{
	size_t len;
	const char *path = luaL_checkstring(L, 1);
	const char *data = luaL_checklstring(L, 2, &len);
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
		return luaL_error(L, "write_file: path too long: %s", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return luaL_error(L, "write_file: cannot write '%s': %s", path, strerror(errno));
	size_t off = 0;
	while (off < len) {
		ssize_t k = write(fd, data + off, len - off);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			unlink(tmp);
			return luaL_error(L, "write_file: cannot write '%s': %s", path, strerror(e));
		}
		off += (size_t)k;
	}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return luaL_error(L, "write_file: cannot write '%s': %s", path, strerror(e));
	}
	return 0;
}

/* skd.mkdir(path): creates path and its parents; fine if it exists. */
static int l_mkdir(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	char buf[4096];
	if (!*path) /* the loop below starts at buf + 1 */
		return luaL_error(L, "mkdir: expects a path, got an empty string");
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return luaL_error(L, "mkdir: path too long: %s", path);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, 0755) != 0 && errno != EEXIST)
				return luaL_error(L, "mkdir: cannot create '%s': %s", buf, strerror(errno));
			*p = c;
			if (c == '\0')
				break;
		}
	}
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return luaL_error(L, "mkdir: '%s' exists and is not a directory", path);
	return 0;
}

static int l_isatty(lua_State *L)
{
	lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 2)));
	return 1;
}

static int l_exists(lua_State *L)
{
	struct stat st;
	lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0);
	return 1;
}

static int l_getpid(lua_State *L)
{
	lua_pushinteger(L, getpid());
	return 1;
}

static const luaL_Reg sys_fns[] = {
	{"write_file", l_write_file},
	{"mkdir", l_mkdir},
	{"isatty", l_isatty},
	{"exists", l_exists},
	{"getpid", l_getpid},
	{NULL, NULL},
};

void lskd_open_sys(lua_State *L)
{
	luaL_setfuncs(L, sys_fns, 0);
}
