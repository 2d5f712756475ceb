/* lmetrics.c — the C side of skd.metrics (lua/skd/metrics.lua): the confusion matrix handle.
 *
 *   skd._confusion(num_classes, ignore_index) -> cm
 *   cm:add(pred, label)  cm:iou() cm:class_accuracy() -> per-class tables (NaN: no pixels)
 *   cm:miou()  cm:pixel_accuracy()  cm:matrix() -> int32 C x C (row = label, column = prediction)
 *   cm:count(label, pred)  cm:total()  cm:reset()  cm:merge(other)  cm:num_classes()
 * The methods table is skd._confusion_methods, so that metrics.lua can add the Lua ones.
 */
#include "lskd.h"
#include "metrics.h"

#define LSKD_CONFUSION "skd.Confusion"

typedef struct cm_box { skd_confusion *cm; } cm_box;

static skd_confusion *check_cm(lua_State *L, int idx)
{
	return ((cm_box *)luaL_checkudata(L, idx, LSKD_CONFUSION))->cm;
}

static int l_confusion(lua_State *L)
{
	int C = lskd_checkint(L, 1, "confusion", "num_classes");
	int ignore = lua_isnoneornil(L, 2) ? 255 : lskd_checkint(L, 2, "confusion", "ignore_index");
	cm_box *b = lua_newuserdatauv(L, sizeof *b, 0);
	b->cm = NULL;
	luaL_setmetatable(L, LSKD_CONFUSION);
	if (!(b->cm = skd_confusion_new(C, ignore)))
		return lskd_error(L);
	return 1;
}

static int cm_add(lua_State *L)
{
	skd_confusion *cm = check_cm(L, 1);
	lskd_check(L, skd_confusion_add(cm, lskd_checktensor(L, 2), lskd_checktensor(L, 3)));
	lua_settop(L, 1);
	return 1;
}

static int per_class(lua_State *L, double (*fn)(const skd_confusion *, int))
{
	skd_confusion *cm = check_cm(L, 1);
	lua_createtable(L, cm->num_classes, 0);
	for (int c = 0; c < cm->num_classes; c++) {
		lua_pushnumber(L, fn(cm, c));
		lua_rawseti(L, -2, c + 1);
	}
	return 1;
}

static int cm_iou(lua_State *L) { return per_class(L, skd_confusion_iou); }
static int cm_class_accuracy(lua_State *L) { return per_class(L, skd_confusion_class_accuracy); }

static int cm_miou(lua_State *L)
{
	lua_pushnumber(L, skd_confusion_miou(check_cm(L, 1)));
	return 1;
}

static int cm_pixel_accuracy(lua_State *L)
{
	lua_pushnumber(L, skd_confusion_pixel_accuracy(check_cm(L, 1)));
	return 1;
}

static int cm_total(lua_State *L)
{
	lua_pushinteger(L, skd_confusion_total(check_cm(L, 1)));
	return 1;
}

static int cm_num_classes(lua_State *L)
{
	lua_pushinteger(L, check_cm(L, 1)->num_classes);
	return 1;
}

static int cm_count(lua_State *L)
{
	skd_confusion *cm = check_cm(L, 1);
	lua_Integer t = luaL_checkinteger(L, 2), p = luaL_checkinteger(L, 3);
	if (t < 1 || t > cm->num_classes || p < 1 || p > cm->num_classes)
		return luaL_error(L, "confusion: count(%d, %d) out of range 1..%d", (int)t, (int)p,
				  cm->num_classes);
	lua_pushinteger(L, cm->counts[(t - 1) * cm->num_classes + (p - 1)]);
	return 1;
}

static int cm_matrix(lua_State *L)
{
	skd_confusion *cm = check_cm(L, 1);
	int C = cm->num_classes;
	skd_tensor *m = skd_tensor_empty(SKD_INT32, 2, (int64_t[]){C, C});
	if (!m)
		return lskd_error(L);
	for (int j = 0; j < C * C; j++) {
		if (cm->counts[j] > INT32_MAX) {
			skd_tensor_release(m);
			return luaL_error(L, "confusion: a count (%I) exceeds int32; read it with cm:count(t, p)",
					  (lua_Integer)cm->counts[j]);
		}
		skd_tensor_i32(m)[j] = (int32_t)cm->counts[j];
	}
	lskd_pushtensor(L, m);
	return 1;
}

static int cm_reset(lua_State *L)
{
	skd_confusion_reset(check_cm(L, 1));
	lua_settop(L, 1);
	return 1;
}

static int cm_merge(lua_State *L)
{
	lskd_check(L, skd_confusion_merge(check_cm(L, 1), check_cm(L, 2)));
	lua_settop(L, 1);
	return 1;
}

static int cm_gc(lua_State *L)
{
	cm_box *b = luaL_checkudata(L, 1, LSKD_CONFUSION);
	skd_confusion_free(b->cm);
	b->cm = NULL;
	return 0;
}

static const luaL_Reg cm_methods[] = {
	{"add", cm_add}, {"iou", cm_iou}, {"class_accuracy", cm_class_accuracy}, {"miou", cm_miou},
	{"pixel_accuracy", cm_pixel_accuracy}, {"matrix", cm_matrix}, {"count", cm_count},
	{"total", cm_total}, {"num_classes", cm_num_classes}, {"reset", cm_reset},
	{"merge", cm_merge}, {NULL, NULL},
};

void lskd_open_metrics(lua_State *L)
{
	luaL_newmetatable(L, LSKD_CONFUSION);
	luaL_newlib(L, cm_methods);
	lua_pushvalue(L, -1);
	lua_setfield(L, -4, "_confusion_methods"); /* module table is below the metatable */
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, cm_gc);
	lua_setfield(L, -2, "__gc");
	lua_pop(L, 1);
	lua_pushcfunction(L, l_confusion);
	lua_setfield(L, -2, "_confusion");
}
