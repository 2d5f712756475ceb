/* ldata.c — the C side of skd.data (lua/skd/data.lua): dataset and loader handles, the
 * transform, and PNG helpers for tests.
 *
 *   skd._dataset_synthetic(seed, split, n, h, w)   skd._dataset_camvid(root, split)
 *   skd._dataset_cityscapes(root, split)           skd._dataset_folder(list, C, names, void)
 *   skd._dataset_lua(n, C, fn)  -- fn(i) -> image, label; loaded on the caller's thread
 *   ds:get(i) -> image, label   ds:classes()  ds:palette()  ds:paths(i)  ds:kind()  #ds
 *   skd._transform_apply(image, label, opts, seed) -> image, label
 *   skd._loader_new(ds, opts)  ld:next(roll_over) -> {image, label, index} | nil
 *   ld:state() -> epoch, position   ld:set_state(epoch, position)  ld:batches()  ld:close()
 *   skd._png_write(path, tensor)  skd._png_read(path) -> int32 tensor
 * Indices and epochs are 1-based on this side, 0-based in core/.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "augment.h"
#include "dataset.h"
#include "image.h"
#include "loader.h"
#include "lskd.h"

#define LSKD_DATASET "skd.Dataset"
#define LSKD_LOADER "skd.Loader"

/* A dataset whose samples a Lua function makes runs that function on the thread that asks
 * (the loader never prefetches it): `cur` is pointed at the calling lua_State before each
 * use; the registry reference is dropped through the main thread, which outlives them all. */
typedef struct lua_ud { lua_State *main, *cur; int ref; } lua_ud;

typedef struct dataset_box { skd_dataset *ds; lua_ud *lua; } dataset_box;
typedef struct loader_box { skd_loader *ld; } loader_box;

/* ---------- datasets ---------- */

/* A 1-based Lua index as core's 0-based one; anything below 1 becomes -1, which core reports
 * as out of range (i - 1 itself would overflow at math.mininteger). */
static int64_t zero_based(lua_Integer i)
{
	return i < 1 ? -1 : (int64_t)i - 1;
}

static void push_dataset(lua_State *L, skd_dataset *ds)
{
	if (!ds)
		lskd_error(L);
	dataset_box *b = lua_newuserdatauv(L, sizeof *b, 0);
	b->ds = ds;
	b->lua = NULL;
	luaL_setmetatable(L, LSKD_DATASET);
}

static skd_dataset *check_dataset(lua_State *L, int idx)
{
	dataset_box *b = luaL_checkudata(L, idx, LSKD_DATASET);
	if (!b->ds)
		luaL_error(L, "dataset was closed");
	if (b->lua)
		b->lua->cur = L;
	return b->ds;
}

static int split_id(lua_State *L, const char *op, const char *split)
{
	if (!strcmp(split, "train"))
		return 0;
	if (!strcmp(split, "val"))
		return 1;
	if (!strcmp(split, "test"))
		return 2;
	return luaL_error(L, "%s: split must be \"train\", \"val\" or \"test\", got \"%s\"", op, split);
}

static int l_dataset_synthetic(lua_State *L)
{
	uint64_t seed = (uint64_t)luaL_checkinteger(L, 1);
	int split = split_id(L, "synthetic", luaL_checkstring(L, 2));
	push_dataset(L, skd_dataset_synthetic(seed, split, luaL_checkinteger(L, 3),
					      lskd_checkint(L, 4, "synthetic", "height"),
					      lskd_checkint(L, 5, "synthetic", "width")));
	return 1;
}

static int l_dataset_camvid(lua_State *L)
{
	push_dataset(L, skd_dataset_camvid(luaL_checkstring(L, 1), luaL_checkstring(L, 2)));
	return 1;
}

static int l_dataset_cityscapes(lua_State *L)
{
	push_dataset(L, skd_dataset_cityscapes(luaL_checkstring(L, 1), luaL_checkstring(L, 2)));
	return 1;
}

/* skd._dataset_folder(list, num_classes, names|nil, void_values|nil) */
static int l_dataset_folder(lua_State *L)
{
	const char *list = luaL_checkstring(L, 1);
	int C = lskd_checkint(L, 2, "folder", "num_classes");
	if (C < 1 || C > 255)
		return luaL_error(L, "folder: num_classes must be 1..255, got %d", C);
	const char *names[255];
	int has_names = lua_istable(L, 3), voids[256], nv = 0;
	if (has_names) {
		if ((int)luaL_len(L, 3) != C)
			return luaL_error(L, "folder: %d class names for %d classes", (int)luaL_len(L, 3), C);
		for (int c = 0; c < C; c++) {
			lua_rawgeti(L, 3, c + 1);
			names[c] = lua_tostring(L, -1); /* the table keeps the string alive */
			lua_pop(L, 1);
			if (!names[c])
				return luaL_error(L, "folder: class name %d is not a string", c + 1);
		}
	}
	if (lua_istable(L, 4)) {
		nv = (int)luaL_len(L, 4);
		if (nv > 256)
			return luaL_error(L, "folder: too many void values");
		for (int k = 0; k < nv; k++) {
			lua_rawgeti(L, 4, k + 1);
			voids[k] = lskd_checkint(L, -1, "folder", "a void value");
			lua_pop(L, 1);
		}
	}
	push_dataset(L, skd_dataset_folder(list, C, has_names ? names : NULL, voids, nv));
	return 1;
}

static int lua_fetch(void *ud, int64_t i, skd_tensor **image, skd_tensor **label)
{
	lua_ud *u = ud;
	lua_State *L = u->cur;
	lua_rawgeti(L, LUA_REGISTRYINDEX, u->ref);
	lua_pushinteger(L, i + 1);
	if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
		skd_error("dataset: sample %lld: %s", (long long)i + 1, lua_tostring(L, -1));
		lua_pop(L, 1);
		return SKD_ERR;
	}
	skd_tensor *a = lskd_opttensor(L, -2), *b = lskd_opttensor(L, -1);
	if (!a || !b) {
		lua_pop(L, 2);
		return skd_error("dataset: sample %lld: expected an image and a label tensor", (long long)i + 1);
	}
	*image = skd_tensor_retain(a);
	*label = skd_tensor_retain(b);
	lua_pop(L, 2);
	return SKD_OK;
}

static void lua_free_ud(void *ud)
{
	lua_ud *u = ud;
	luaL_unref(u->main, LUA_REGISTRYINDEX, u->ref);
	free(u);
}

/* skd._dataset_lua(n, num_classes, fn) */
static int l_dataset_lua(lua_State *L)
{
	lua_Integer n = luaL_checkinteger(L, 1);
	int C = lskd_checkint(L, 2, "dataset", "num_classes");
	luaL_checktype(L, 3, LUA_TFUNCTION);
	lua_ud *u = malloc(sizeof *u);
	if (!u)
		return luaL_error(L, "dataset: out of memory");
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
	u->main = lua_tothread(L, -1);
	lua_pop(L, 1);
	u->cur = L;
	lua_pushvalue(L, 3);
	u->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	skd_dataset *ds = skd_dataset_callback(n, C, lua_fetch, u, lua_free_ud);
	if (!ds)
		lua_free_ud(u);
	push_dataset(L, ds);
	((dataset_box *)lua_touserdata(L, -1))->lua = u;
	return 1;
}

static int ds_get(lua_State *L)
{
	skd_dataset *ds = check_dataset(L, 1);
	lua_Integer i = luaL_checkinteger(L, 2);
	skd_tensor *img, *lab;
	lskd_check(L, skd_dataset_get(ds, zero_based(i), &img, &lab));
	lskd_pushtensor(L, img);
	lskd_pushtensor(L, lab);
	return 2;
}

static int ds_len(lua_State *L)
{
	lua_pushinteger(L, skd_dataset_size(check_dataset(L, 1)));
	return 1;
}

static int ds_kind(lua_State *L)
{
	lua_pushstring(L, skd_dataset_kind(check_dataset(L, 1)));
	return 1;
}

static int ds_classes(lua_State *L)
{
	skd_dataset *ds = check_dataset(L, 1);
	int C = skd_dataset_num_classes(ds);
	lua_createtable(L, C, 0);
	for (int c = 0; c < C; c++) {
		lua_pushstring(L, skd_dataset_class_name(ds, c));
		lua_rawseti(L, -2, c + 1);
	}
	return 1;
}

static int ds_palette(lua_State *L)
{
	skd_dataset *ds = check_dataset(L, 1);
	int C = skd_dataset_num_classes(ds);
	lua_createtable(L, C, 0);
	for (int c = 0; c < C; c++) {
		uint8_t rgb[3];
		skd_dataset_class_colour(ds, c, rgb);
		lua_createtable(L, 3, 0);
		for (int k = 0; k < 3; k++) {
			lua_pushinteger(L, rgb[k]);
			lua_rawseti(L, -2, k + 1);
		}
		lua_rawseti(L, -2, c + 1);
	}
	return 1;
}

static int ds_paths(lua_State *L)
{
	skd_dataset *ds = check_dataset(L, 1);
	lua_Integer i = luaL_checkinteger(L, 2);
	lua_pushstring(L, skd_dataset_image_path(ds, zero_based(i)));
	lua_pushstring(L, skd_dataset_label_path(ds, zero_based(i)));
	return 2;
}

static int ds_gc(lua_State *L)
{
	dataset_box *b = luaL_checkudata(L, 1, LSKD_DATASET);
	skd_dataset_release(b->ds);
	b->ds = NULL;
	return 0;
}

static int ds_tostring(lua_State *L)
{
	dataset_box *b = luaL_checkudata(L, 1, LSKD_DATASET);
	if (!b->ds)
		lua_pushliteral(L, "skd.Dataset (closed)");
	else
		lua_pushfstring(L, "skd.Dataset (%s, %d samples, %d classes)", skd_dataset_kind(b->ds),
				(int)skd_dataset_size(b->ds), skd_dataset_num_classes(b->ds));
	return 1;
}

/* ---------- the transform ---------- */

/* Reads k numbers from the list field `field` of the table at idx (a number fills all). */
static int opt_numbers(lua_State *L, int idx, const char *op, const char *field, int k, double *out)
{
	int t = lua_getfield(L, idx, field);
	if (t == LUA_TNIL) {
		lua_pop(L, 1);
		return 0;
	}
	if (t == LUA_TNUMBER) {
		for (int j = 0; j < k; j++)
			out[j] = lua_tonumber(L, -1);
	} else if (t == LUA_TTABLE && luaL_len(L, -1) == k) {
		for (int j = 0; j < k; j++) {
			if (lua_rawgeti(L, -1, j + 1) != LUA_TNUMBER)
				luaL_error(L, "%s: option '%s' expects %d numbers", op, field, k);
			out[j] = lua_tonumber(L, -1);
			lua_pop(L, 1);
		}
	} else {
		luaL_error(L, "%s: option '%s' expects a number or a list of %d numbers", op, field, k);
	}
	lua_pop(L, 1);
	return 1;
}

/* {scale={min,max}, crop={h,w}, flip=bool, mean={r,g,b}, std={r,g,b}} at idx (nil: identity). */
static void read_transform(lua_State *L, int idx, skd_transform *t)
{
	skd_transform_init(t);
	if (lua_isnoneornil(L, idx))
		return;
	luaL_checktype(L, idx, LUA_TTABLE);
	idx = lua_absindex(L, idx);
	double v[3];
	if (opt_numbers(L, idx, "transform", "scale", 2, v))
		t->scale_min = v[0], t->scale_max = v[1];
	if (opt_numbers(L, idx, "transform", "crop", 2, v)) {
		for (int k = 0; k < 2; k++) /* range first: casting 1e300 to int is undefined */
			if (!(v[k] >= 0 && v[k] <= INT_MAX) || v[k] != floor(v[k]))
				luaL_error(L, "transform: crop sizes must be integers in 0..2^31-1, got %f",
					   v[k]);
		t->crop_h = (int)v[0], t->crop_w = (int)v[1];
	}
	t->flip = lskd_optbool(L, idx, "transform", "flip", 0);
	if (opt_numbers(L, idx, "transform", "mean", 3, v)) {
		t->normalize = 1;
		for (int c = 0; c < 3; c++)
			t->mean[c] = (float)v[c];
	}
	if (opt_numbers(L, idx, "transform", "std", 3, v)) {
		t->normalize = 1;
		for (int c = 0; c < 3; c++)
			t->std[c] = (float)v[c];
	}
	lskd_check(L, skd_transform_check(t));
}

static int l_transform_apply(lua_State *L)
{
	skd_tensor *img = lskd_checktensor(L, 1), *lab = lskd_checktensor(L, 2);
	skd_transform t;
	read_transform(L, 3, &t);
	skd_tensor *oi, *ol;
	lskd_check(L, skd_transform_apply(&t, (uint64_t)luaL_optinteger(L, 4, 0), img, lab, &oi, &ol));
	lskd_pushtensor(L, oi);
	lskd_pushtensor(L, ol);
	return 2;
}

/* ---------- the loader ---------- */

static loader_box *check_loader(lua_State *L, int idx)
{
	loader_box *b = luaL_checkudata(L, idx, LSKD_LOADER);
	if (!b->ld)
		luaL_error(L, "loader was closed");
	return b;
}

/* skd._loader_new(ds, {batch, shuffle, drop_last, prefetch, seed, transform}) */
static int l_loader_new(lua_State *L)
{
	skd_dataset *ds = check_dataset(L, 1);
	skd_loader_opts o;
	memset(&o, 0, sizeof o);
	o.batch = lskd_optint(L, 2, "loader", "batch", 1);
	o.shuffle = lskd_optbool(L, 2, "loader", "shuffle", 0);
	o.drop_last = lskd_optbool(L, 2, "loader", "drop_last", 0);
	o.prefetch = lskd_optbool(L, 2, "loader", "prefetch", 1);
	o.seed = 0;
	skd_transform_init(&o.transform);
	int has_seed = 0;
	if (lua_istable(L, 2)) {
		int t = lua_getfield(L, 2, "seed");
		if (t == LUA_TNUMBER && lua_isinteger(L, -1))
			o.seed = (uint64_t)lua_tointeger(L, -1), has_seed = 1;
		else if (t != LUA_TNIL)
			return luaL_error(L, "loader: option 'seed' expects an integer");
		lua_pop(L, 1);
		lua_getfield(L, 2, "transform");
		read_transform(L, -1, &o.transform);
		lua_pop(L, 1);
	}
	if (!has_seed)
		o.seed = skd_rng_u64(); /* skd.manual_seed decides */
	loader_box *b = lua_newuserdatauv(L, sizeof *b, 1);
	b->ld = NULL;
	luaL_setmetatable(L, LSKD_LOADER);
	lua_pushvalue(L, 1); /* the dataset handle lives as long as the loader */
	lua_setiuservalue(L, -2, 1);
	b->ld = skd_loader_new(ds, &o);
	if (!b->ld)
		return lskd_error(L);
	return 1;
}

static int ld_next(lua_State *L)
{
	loader_box *b = check_loader(L, 1);
	int roll = lua_toboolean(L, 2);
	lua_getiuservalue(L, 1, 1); /* the dataset: binds a Lua callback dataset to this thread */
	check_dataset(L, -1);
	lua_pop(L, 1);
	skd_batch batch;
	lskd_check(L, skd_loader_next(b->ld, &batch, roll));
	if (!batch.image) {
		lua_pushnil(L);
		return 1;
	}
	lua_createtable(L, 0, 3);
	lskd_pushtensor(L, batch.image);
	lua_setfield(L, -2, "image");
	lskd_pushtensor(L, batch.label);
	lua_setfield(L, -2, "label");
	lua_createtable(L, batch.n, 0);
	for (int k = 0; k < batch.n; k++) {
		lua_pushinteger(L, batch.index[k] + 1);
		lua_rawseti(L, -2, k + 1);
	}
	lua_setfield(L, -2, "index");
	free(batch.index);
	return 1;
}

static int ld_state(lua_State *L)
{
	int64_t e, p;
	skd_loader_get_state(check_loader(L, 1)->ld, &e, &p);
	lua_pushinteger(L, e + 1);
	lua_pushinteger(L, p);
	return 2;
}

static int ld_set_state(lua_State *L)
{
	loader_box *b = check_loader(L, 1);
	lskd_check(L, skd_loader_set_state(b->ld, zero_based(luaL_checkinteger(L, 2)),
					   luaL_checkinteger(L, 3)));
	return 0;
}

static int ld_batches(lua_State *L)
{
	lua_pushinteger(L, skd_loader_batches_per_epoch(check_loader(L, 1)->ld));
	return 1;
}

static int ld_close(lua_State *L)
{
	loader_box *b = luaL_checkudata(L, 1, LSKD_LOADER);
	skd_loader_free(b->ld); /* joins the worker */
	b->ld = NULL;
	return 0;
}

/* ---------- PNG helpers (tests write their own small datasets) ---------- */

/* skd._png_write(path, t): int32 H x W (gray) or 3 x H x W (RGB) with values 0..255, or
 * float 3 x H x W in [0, 1]. */
static int l_png_write(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	skd_tensor *t = lskd_checktensor(L, 2);
	int ch = t->ndim == 2 ? 1 : t->ndim == 3 && t->shape[0] == 3 ? 3 : 0;
	if (!ch || (ch == 1 && t->dtype != SKD_INT32))
		return luaL_error(L, "png_write: expects an int32 HxW or a 3xHxW tensor");
	int H = (int)t->shape[t->ndim - 2], W = (int)t->shape[t->ndim - 1];
	skd_tensor *c = skd_tensor_contiguous_nograd(t);
	if (!c)
		return lskd_error(L);
	uint8_t *px = malloc((size_t)H * W * ch);
	if (!px) {
		skd_tensor_release(c);
		return luaL_error(L, "png_write: out of memory");
	}
	size_t np = (size_t)H * W;
	for (int k = 0; k < ch; k++)
		for (size_t p = 0; p < np; p++) {
			double v = c->dtype == SKD_INT32 ? skd_tensor_i32(c)[k * np + p]
							 : skd_tensor_f32(c)[k * np + p] * 255.0 + 0.5;
			px[p * ch + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
		}
	int rc = skd_image_write_png(path, px, W, H, ch);
	free(px);
	skd_tensor_release(c);
	lskd_check(L, rc);
	return 0;
}

/* skd._png_read(path) -> int32 tensor, H x W for gray files, 3 x H x W for colour ones. */
static int l_png_read(lua_State *L)
{
	skd_image im;
	lskd_check(L, skd_image_read_png(luaL_checkstring(L, 1), &im, 0));
	int H = im.height, W = im.width, ch = im.channels;
	skd_tensor *t = ch == 1 ? skd_tensor_empty(SKD_INT32, 2, (int64_t[]){H, W})
				: skd_tensor_empty(SKD_INT32, 3, (int64_t[]){3, H, W});
	if (t) {
		size_t np = (size_t)H * W;
		for (int k = 0; k < ch; k++)
			for (size_t p = 0; p < np; p++)
				skd_tensor_i32(t)[k * np + p] = im.pixels[p * ch + k];
	}
	skd_image_free(&im);
	lskd_pushtensor(L, t);
	return 1;
}

static const luaL_Reg dataset_methods[] = {
	{"get", ds_get}, {"size", ds_len}, {"kind", ds_kind}, {"classes", ds_classes},
	{"palette", ds_palette}, {"paths", ds_paths}, {NULL, NULL},
};

static const luaL_Reg loader_methods[] = {
	{"next", ld_next}, {"state", ld_state}, {"set_state", ld_set_state},
	{"batches", ld_batches}, {"close", ld_close}, {NULL, NULL},
};

static const luaL_Reg data_fns[] = {
	{"_dataset_synthetic", l_dataset_synthetic}, {"_dataset_camvid", l_dataset_camvid},
	{"_dataset_cityscapes", l_dataset_cityscapes}, {"_dataset_folder", l_dataset_folder},
	{"_dataset_lua", l_dataset_lua}, {"_transform_apply", l_transform_apply},
	{"_loader_new", l_loader_new}, {"_png_write", l_png_write}, {"_png_read", l_png_read},
	{NULL, NULL},
};

void lskd_open_data(lua_State *L)
{
	luaL_newmetatable(L, LSKD_DATASET);
	luaL_newlib(L, dataset_methods);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, ds_len);
	lua_setfield(L, -2, "__len");
	lua_pushcfunction(L, ds_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, ds_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pop(L, 1);
	luaL_newmetatable(L, LSKD_LOADER);
	luaL_newlib(L, loader_methods);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, ld_close);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, ld_close);
	lua_setfield(L, -2, "__close");
	lua_pop(L, 1);
	luaL_setfuncs(L, data_fns, 0);
}
