/* lviewer.c — skd.viewer: the live inspection window (viewer/viewer.h) as a Lua handle.
 *
 *   v = skd.viewer.open{title=, scale=, classes="camvid" | {names}, palette="camvid" |
 *                       {{r,g,b},...}, mode="window"|"png", dir=, history=, max_nodes=}
 *   v:show{image=, label=, teacher=, student=, features={teacher=, student=},
 *          losses={term=number,...}, iter=, index=}   -> true, or false once closed
 *   v:save(path)  v:poll([seconds])  v:paused()  v:wait([seconds])  v:close()
 *   v:layout() v:state() v:inject{key=|mouse={x,y}|click={x,y}|close=true} v:pick(x, y)
 *   v:grab(path)  v:mode()  v:frame_dir()  v:affinity() -> {teacher=, student=, grid=, beta=}
 *   skd.viewer.read_png(path) -> H×W×C int32 tensor
 *
 * Classes and palettes are listed in class-id order: classes[1] names id 0. Pixel positions
 * (layout, inject, pick, state) are 1-based, as everything users see. Inputs (viewer.h has the
 * details): image 3×H×W float, shown as is within [0,1], else min-max scaled per image; label
 * H×W ids, 255 drawn black; teacher/student C×h×w logits (argmax) or h×w ids, resized nearest
 * to the image; features C×h×w; a leading batch dimension shows element `index` (1-based). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "image.h"
#include "lskd.h"
#include "viewer.h"

#define LSKD_VIEWER "skd.Viewer"

typedef struct lviewer {
	skd_viewer *v;
} lviewer;

static skd_viewer *checkviewer(lua_State *L, int idx)
{
	lviewer *u = luaL_checkudata(L, idx, LSKD_VIEWER);
	if (!u->v)
		luaL_error(L, "viewer: used after it was freed");
	return u->v;
}

/* classes = "camvid" | {"Sky", ...}; palette = "camvid" | {{r,g,b}, ...}. Strings and arrays
 * are left on the Lua stack so the pointers stay valid until open returns. */
static void read_classes(lua_State *L, skd_viewer_options *o, const char **names, int max_names,
			 uint8_t (*pal)[3], int max_pal)
{
	const char *const *preset_names = NULL;
	const uint8_t (*preset_pal)[3] = NULL;
	int t = lua_getfield(L, 1, "classes");
	if (t == LUA_TSTRING) {
		int n = skd_viewer_preset(lua_tostring(L, -1), &preset_names, &preset_pal);
		if (!n)
			luaL_error(L, "viewer.open: unknown class preset '%s' (camvid, cityscapes)",
				   lua_tostring(L, -1));
		o->num_classes = n;
		o->class_names = preset_names;
		o->palette = preset_pal;
		o->npalette = n;
	} else if (t == LUA_TTABLE) {
		int n = (int)luaL_len(L, -1);
		if (n > max_names)
			luaL_error(L, "viewer.open: at most %d class names, got %d", max_names, n);
		for (int i = 0; i < n; i++) {
			lua_rawgeti(L, -1, i + 1);
			names[i] = lua_tostring(L, -1);
			if (!names[i])
				luaL_error(L, "viewer.open: classes[%d] expects a string", i + 1);
			lua_pop(L, 1); /* the string stays alive in the classes table */
		}
		o->num_classes = n;
		o->class_names = names;
	} else if (t != LUA_TNIL) {
		luaL_error(L, "viewer.open: classes expects a preset name or a list of names, got %s",
			   luaL_typename(L, -1));
	}
	t = lua_getfield(L, 1, "palette");
	if (t == LUA_TSTRING) {
		const char *const *unused;
		int n = skd_viewer_preset(lua_tostring(L, -1), &unused, &preset_pal);
		if (!n)
			luaL_error(L, "viewer.open: unknown palette '%s' (camvid, cityscapes)",
				   lua_tostring(L, -1));
		o->palette = preset_pal;
		o->npalette = n;
	} else if (t == LUA_TTABLE) {
		int n = (int)luaL_len(L, -1);
		if (n > max_pal)
			luaL_error(L, "viewer.open: at most %d palette colours, got %d", max_pal, n);
		for (int i = 0; i < n; i++) {
			if (lua_rawgeti(L, -1, i + 1) != LUA_TTABLE)
				luaL_error(L, "viewer.open: palette[%d] expects {r, g, b}", i + 1);
			for (int k = 0; k < 3; k++) {
				lua_rawgeti(L, -1, k + 1);
				int isnum;
				lua_Integer c = lua_tointegerx(L, -1, &isnum);
				if (!isnum || c < 0 || c > 255)
					luaL_error(L, "viewer.open: palette[%d] expects {r, g, b} in 0..255",
						   i + 1);
				pal[i][k] = (uint8_t)c;
				lua_pop(L, 1);
			}
			lua_pop(L, 1);
		}
		o->palette = (const uint8_t (*)[3])pal;
		o->npalette = n;
	} else if (t != LUA_TNIL) {
		luaL_error(L, "viewer.open: palette expects a preset name or {{r,g,b},...}, got %s",
			   luaL_typename(L, -1));
	}
	lua_pop(L, 2);
}

static int l_open(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	skd_viewer_options o = {0};
	o.title = lskd_optstr(L, 1, "viewer.open", "title", NULL);
	o.scale = lskd_optnum(L, 1, "viewer.open", "scale", 0);
	o.dir = lskd_optstr(L, 1, "viewer.open", "dir", NULL);
	o.history = lskd_optint(L, 1, "viewer.open", "history", 0);
	o.max_nodes = lskd_optint(L, 1, "viewer.open", "max_nodes", 0);
	const char *mode = lskd_optstr(L, 1, "viewer.open", "mode", "auto");
	if (!strcmp(mode, "window"))
		o.mode = SKD_VIEWER_WINDOW;
	else if (!strcmp(mode, "png"))
		o.mode = SKD_VIEWER_PNG;
	else if (strcmp(mode, "auto"))
		return luaL_error(L, "viewer.open: mode expects \"auto\", \"window\" or \"png\", got "
				  "\"%s\"", mode);
	/* Strings fetched by lskd_optstr live in the options table, which outlives the call. */
	const char *names[256];
	uint8_t pal[256][3];
	read_classes(L, &o, names, 256, pal, 256);
	lviewer *u = lua_newuserdatauv(L, sizeof *u, 0);
	u->v = NULL;
	luaL_setmetatable(L, LSKD_VIEWER);
	u->v = skd_viewer_open(&o);
	if (!u->v)
		return lskd_error(L);
	return 1;
}

/* A 1-based coordinate or index as a 0-based int: -1 below 1, INT_MAX past it (the plain cast
 * and - 1 overflowed past 2^31); the viewer ignores positions off its panels. */
static int zero_based(lua_Integer v)
{
	return v < 1 ? -1 : v > INT_MAX ? INT_MAX : (int)(v - 1);
}

static skd_tensor *field_tensor(lua_State *L, int idx, const char *name)
{
	lua_getfield(L, idx, name);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	skd_tensor *t = lskd_opttensor(L, -1);
	if (!t)
		luaL_error(L, "viewer.show: %s expects a tensor, got %s", name, luaL_typename(L, -1));
	lua_pop(L, 1); /* still referenced by the argument table */
	return t;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *const show_fields[] = {
	"image", "label", "teacher", "student", "features", "losses", "iter", "index", NULL,
};

/* v:show{...}: a typo in a field name is an error, not a panel that silently stays empty. */
static int l_show(lua_State *L)
{
	skd_viewer *v = checkviewer(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_pushnil(L);
	while (lua_next(L, 2)) {
		bool known = false;
		if (lua_type(L, -2) == LUA_TSTRING)
			for (int i = 0; show_fields[i]; i++)
				known = known || !strcmp(lua_tostring(L, -2), show_fields[i]);
		if (!known)
			return luaL_error(L, "viewer.show: unknown field '%s' (image, label, teacher, "
					  "student, features, losses, iter, index)",
					  lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
		lua_pop(L, 1);
	}
	skd_viewer_input in = {0};
	in.image = field_tensor(L, 2, "image");
	in.label = field_tensor(L, 2, "label");
	in.teacher = field_tensor(L, 2, "teacher");
	in.student = field_tensor(L, 2, "student");
	int t = lua_getfield(L, 2, "features"); /* stays on the stack while in.feat_* are used */
	if (t == LUA_TTABLE) {
		in.feat_teacher = field_tensor(L, -1, "teacher");
		in.feat_student = field_tensor(L, -1, "student");
	} else if (t != LUA_TNIL) {
		return luaL_error(L, "viewer.show: features expects {teacher=, student=}, got %s",
				  luaL_typename(L, -1));
	}
	in.index = zero_based(lskd_optint(L, 2, "viewer.show", "index", 1));
	double iter = lskd_optnum(L, 2, "viewer.show", "iter", -1);
	in.iter = iter >= 0 && iter < 0x1p62 ? (int64_t)iter : -1; /* no undefined cast of 1e300 */
	const char *names[64];
	double values[64];
	t = lua_getfield(L, 2, "losses");
	if (t == LUA_TTABLE) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			if (lua_type(L, -2) != LUA_TSTRING)
				return luaL_error(L, "viewer.show: losses expects {name = number, ...}");
			if (in.nlosses == 64)
				return luaL_error(L, "viewer.show: at most 64 loss terms");
			names[in.nlosses++] = lua_tostring(L, -2);
			lua_pop(L, 1);
		}
		qsort(names, (size_t)in.nlosses, sizeof *names, cmp_names); /* stable colours */
		for (int i = 0; i < in.nlosses; i++) {
			lua_getfield(L, -1, names[i]);
			skd_tensor *x = lskd_opttensor(L, -1);
			if (x && skd_tensor_numel(x) == 1)
				values[i] = skd_tensor_get(x, (int64_t[SKD_MAX_DIMS]){0});
			else if (lua_type(L, -1) == LUA_TNUMBER)
				values[i] = lua_tonumber(L, -1);
			else
				return luaL_error(L, "viewer.show: losses.%s expects a number or a "
						  "one-element tensor, got %s", names[i],
						  luaL_typename(L, -1));
			lua_pop(L, 1);
		}
		in.loss_names = names;
		in.loss_values = values;
	} else if (t != LUA_TNIL) {
		return luaL_error(L, "viewer.show: losses expects {name = number, ...}, got %s",
				  luaL_typename(L, -1));
	}
	int rc = skd_viewer_show(v, &in);
	if (rc == SKD_ERR)
		return lskd_error(L);
	lua_pushboolean(L, rc == 1);
	return 1;
}

static int l_save(lua_State *L)
{
	lskd_check(L, skd_viewer_save(checkviewer(L, 1), luaL_checkstring(L, 2)));
	lua_pushboolean(L, 1);
	return 1;
}

static int l_grab(lua_State *L)
{
	lskd_check(L, skd_viewer_grab(checkviewer(L, 1), luaL_checkstring(L, 2)));
	lua_pushboolean(L, 1);
	return 1;
}

/* v:poll([seconds]) -> open: with seconds, first idles up to that long (or until a key). */
static int l_poll(lua_State *L)
{
	skd_viewer *v = checkviewer(L, 1);
	lua_pushboolean(L, skd_viewer_poll(v, luaL_optnumber(L, 2, 0)));
	return 1;
}

static int l_paused(lua_State *L)
{
	lua_pushboolean(L, skd_viewer_paused(checkviewer(L, 1)));
	return 1;
}

static int l_wait(lua_State *L)
{
	skd_viewer *v = checkviewer(L, 1);
	lua_pushboolean(L, skd_viewer_wait(v, luaL_optnumber(L, 2, -1)));
	return 1;
}

static int l_close(lua_State *L)
{
	skd_viewer_close(checkviewer(L, 1));
	return 0;
}

static int l_gc(lua_State *L)
{
	lviewer *u = luaL_checkudata(L, 1, LSKD_VIEWER);
	skd_viewer_free(u->v);
	u->v = NULL;
	return 0;
}

/* A {x, y} pair of 1-based pixels from field `name` of the table at idx. */
static int opt_point(lua_State *L, int idx, const char *name, int *x, int *y)
{
	if (lua_getfield(L, idx, name) == LUA_TNIL) {
		lua_pop(L, 1);
		return 0;
	}
	int ok = lua_istable(L, -1) && lua_rawgeti(L, -1, 1) == LUA_TNUMBER &&
		 lua_rawgeti(L, -2, 2) == LUA_TNUMBER;
	if (!ok)
		luaL_error(L, "viewer.inject: %s expects {x, y}", name);
	*x = zero_based(lua_tointeger(L, -2));
	*y = zero_based(lua_tointeger(L, -1));
	lua_pop(L, 3);
	return 1;
}

static int l_inject(lua_State *L)
{
	skd_viewer *v = checkviewer(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	skd_viewer_event e = {0};
	e.key = lskd_optstr(L, 2, "viewer.inject", "key", NULL);
	if (e.key)
		e.kind = SKD_VIEWER_EV_KEY;
	else if (opt_point(L, 2, "mouse", &e.x, &e.y))
		e.kind = SKD_VIEWER_EV_MOTION;
	else if (opt_point(L, 2, "click", &e.x, &e.y))
		e.kind = SKD_VIEWER_EV_CLICK;
	else if (lskd_optbool(L, 2, "viewer.inject", "close", 0))
		e.kind = SKD_VIEWER_EV_CLOSE;
	else
		return luaL_error(L, "viewer.inject: expects {key=}, {mouse={x,y}}, {click={x,y}} "
				  "or {close=true}");
	lskd_check(L, skd_viewer_inject(v, &e));
	lua_pushboolean(L, skd_viewer_poll(v, 0));
	return 1;
}

static int l_pick(lua_State *L)
{
	skd_viewer *v = checkviewer(L, 1);
	if (lua_isnoneornil(L, 2))
		skd_viewer_pick(v, -1, -1);
	else
		skd_viewer_pick(v, zero_based(luaL_checkinteger(L, 2)), zero_based(luaL_checkinteger(L, 3)));
	return 0;
}

static void set_rect(lua_State *L, int x, int y, int w, int h)
{
	lua_createtable(L, 0, 4);
	lua_pushinteger(L, x + 1);
	lua_setfield(L, -2, "x");
	lua_pushinteger(L, y + 1);
	lua_setfield(L, -2, "y");
	lua_pushinteger(L, w);
	lua_setfield(L, -2, "w");
	lua_pushinteger(L, h);
	lua_setfield(L, -2, "h");
}

/* v:layout() -> {input = {x=, y=, w=, h=}, ..., canvas = {...}}, 1-based pixel positions. */
static int l_layout(lua_State *L)
{
	skd_viewer_rect r[32];
	int n = skd_viewer_layout(checkviewer(L, 1), r, 32);
	lua_createtable(L, 0, n);
	for (int i = 0; i < n; i++) {
		set_rect(L, r[i].x, r[i].y, r[i].w, r[i].h);
		lua_setfield(L, -2, r[i].name);
	}
	return 1;
}

static void set_point(lua_State *L, const char *name, int x, int y)
{
	if (x < 0)
		return;
	lua_createtable(L, 2, 0);
	lua_pushinteger(L, x + 1);
	lua_rawseti(L, -2, 1);
	lua_pushinteger(L, y + 1);
	lua_rawseti(L, -2, 2);
	lua_setfield(L, -2, name);
}

static const char *mode_name(skd_viewer_mode m)
{
	return m == SKD_VIEWER_WINDOW ? "window" : "png";
}

/* v:state() -> what keys and mouse have set: open, paused, log_scale, pinned, view
 * ("matrices"|"rows"), alpha, sample, samples, pixel {x,y}, cursor {x,y}, frames, iter,
 * message, mode. */
static int l_state(lua_State *L)
{
	skd_viewer *v = checkviewer(L, 1);
	skd_viewer_ui_state s;
	skd_viewer_ui(v, &s);
	lua_createtable(L, 0, 14);
	lua_pushboolean(L, s.open);
	lua_setfield(L, -2, "open");
	lua_pushboolean(L, s.paused);
	lua_setfield(L, -2, "paused");
	lua_pushboolean(L, s.log_scale);
	lua_setfield(L, -2, "log_scale");
	lua_pushboolean(L, s.pinned);
	lua_setfield(L, -2, "pinned");
	lua_pushstring(L, s.affinity_view ? "rows" : "matrices");
	lua_setfield(L, -2, "view");
	lua_pushnumber(L, s.alpha);
	lua_setfield(L, -2, "alpha");
	lua_pushinteger(L, s.nsamples ? s.sample + 1 : 0);
	lua_setfield(L, -2, "sample");
	lua_pushinteger(L, s.nsamples);
	lua_setfield(L, -2, "samples");
	set_point(L, "pixel", s.pixel_x, s.pixel_y);
	set_point(L, "cursor", s.cursor_x, s.cursor_y);
	lua_pushinteger(L, s.frames_written);
	lua_setfield(L, -2, "frames");
	lua_pushinteger(L, s.iter);
	lua_setfield(L, -2, "iter");
	lua_pushstring(L, s.message);
	lua_setfield(L, -2, "message");
	lua_pushstring(L, mode_name(skd_viewer_get_mode(v)));
	lua_setfield(L, -2, "mode");
	return 1;
}

/* v:affinity() -> {teacher=N×N, student=N×N, grid={gh, gw}, beta=} of the sample on view. */
static int l_affinity(lua_State *L)
{
	skd_tensor *t, *s;
	int gh, gw, beta;
	skd_viewer_affinity(checkviewer(L, 1), &t, &s, &gh, &gw, &beta);
	lua_createtable(L, 0, 4);
	if (t) {
		lskd_pushtensor(L, t);
		lua_setfield(L, -2, "teacher");
	}
	if (s) {
		lskd_pushtensor(L, s);
		lua_setfield(L, -2, "student");
	}
	lua_createtable(L, 2, 0);
	lua_pushinteger(L, gh);
	lua_rawseti(L, -2, 1);
	lua_pushinteger(L, gw);
	lua_rawseti(L, -2, 2);
	lua_setfield(L, -2, "grid");
	lua_pushinteger(L, beta);
	lua_setfield(L, -2, "beta");
	return 1;
}

static int l_mode(lua_State *L)
{
	lua_pushstring(L, mode_name(skd_viewer_get_mode(checkviewer(L, 1))));
	return 1;
}

static int l_frame_dir(lua_State *L)
{
	lua_pushstring(L, skd_viewer_frame_dir(checkviewer(L, 1)));
	return 1;
}

static int l_tostring(lua_State *L)
{
	lviewer *u = luaL_checkudata(L, 1, LSKD_VIEWER);
	if (!u->v) {
		lua_pushliteral(L, "skd.Viewer (freed)");
		return 1;
	}
	skd_viewer_ui_state s;
	skd_viewer_ui(u->v, &s);
	lua_pushfstring(L, "skd.Viewer (%s, %s, %d sample%s)", mode_name(skd_viewer_get_mode(u->v)),
			s.open ? "open" : "closed", s.nsamples, s.nsamples == 1 ? "" : "s");
	return 1;
}

/* skd.viewer.read_png(path) -> H×W×C int32 tensor (C = 1 for gray files, else 3). */
static int l_read_png(lua_State *L)
{
	skd_image img;
	lskd_check(L, skd_image_read_png(luaL_checkstring(L, 1), &img, 0));
	skd_tensor *t = skd_tensor_empty(SKD_INT32, 3,
					 (int64_t[]){img.height, img.width, img.channels});
	if (t) {
		int32_t *p = skd_tensor_i32(t);
		for (size_t i = 0, n = (size_t)img.height * img.width * img.channels; i < n; i++)
			p[i] = img.pixels[i];
	}
	skd_image_free(&img);
	lskd_pushtensor(L, t);
	return 1;
}

static const luaL_Reg viewer_methods[] = {
	{"show", l_show}, {"save", l_save}, {"poll", l_poll}, {"paused", l_paused},
	{"wait", l_wait}, {"close", l_close}, {"inject", l_inject}, {"pick", l_pick},
	{"layout", l_layout}, {"state", l_state}, {"grab", l_grab}, {"mode", l_mode},
	{"frame_dir", l_frame_dir}, {"affinity", l_affinity}, {NULL, NULL},
};

static const luaL_Reg viewer_meta[] = {
	{"__gc", l_gc}, {"__close", l_gc}, {"__tostring", l_tostring}, {NULL, NULL},
};

static const luaL_Reg viewer_fns[] = {
	{"open", l_open}, {"read_png", l_read_png}, {NULL, NULL},
};

void lskd_open_viewer(lua_State *L)
{
	luaL_newmetatable(L, LSKD_VIEWER);
	luaL_setfuncs(L, viewer_meta, 0);
	luaL_newlib(L, viewer_methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);
	luaL_newlib(L, viewer_fns);
	lua_setfield(L, -2, "viewer");
}
