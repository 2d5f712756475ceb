/* lskd.h — what the binding's files share: the tensor userdata and argument helpers.
 * Core errors become Lua errors here and only here (style.md, practice 1). */
#ifndef LSKD_H
#define LSKD_H

#include <lua.h>
#include <lauxlib.h>
#include "skd.h"

#define LSKD_TENSOR "skd.Tensor"

/* The tensor at idx; raises "bad argument #idx (tensor expected, got X)" otherwise. */
skd_tensor *lskd_checktensor(lua_State *L, int idx);
/* The tensor at idx, or NULL when it is nil or absent. */
skd_tensor *lskd_opttensor(lua_State *L, int idx);
/* Pushes t, taking over the caller's reference. NULL raises the core's last error. */
void lskd_pushtensor(lua_State *L, skd_tensor *t);
/* Raises the core's last error as a Lua error (never returns). */
int lskd_error(lua_State *L);
/* Checks a status from core/: raises on SKD_ERR. */
void lskd_check(lua_State *L, int status);

/* A Lua dimension at idx (1-based; negative counts from the end) for a tensor of ndim
 * dimensions (ndim + extra valid positions, for unsqueeze). Returns it 0-based. */
int lskd_checkdim(lua_State *L, int idx, int ndim, int extra);

/* Fields of an options table at idx (absent table or nil field: the default). A field of the
 * wrong type raises an error naming the op and the field. */
double lskd_optnum(lua_State *L, int idx, const char *op, const char *field, double def);
int lskd_optint(lua_State *L, int idx, const char *op, const char *field, int def);
int lskd_optbool(lua_State *L, int idx, const char *op, const char *field, int def);
skd_tensor *lskd_opttensorfield(lua_State *L, int idx, const char *op, const char *field);
const char *lskd_optstr(lua_State *L, int idx, const char *op, const char *field, const char *def);
/* A number or a {h, w} pair, e.g. stride = 2 or stride = {2, 1}. */
void lskd_optpair(lua_State *L, int idx, const char *op, const char *field, int def, int out[2]);
/* An integer argument that must fit an int (raises "op: what must fit in 32 bits" instead of
 * letting the cast wrap 2^32+1 to 1). */
int lskd_checkint(lua_State *L, int idx, const char *op, const char *what);
/* Sizes given as numbers from idx on (stopping at a table or nil), or as one table {2,3}. */
int lskd_checksizes(lua_State *L, int idx, const char *op, int64_t *shape);

/* Registers fns into the table at the top of the stack. */
void lskd_setfuncs(lua_State *L, const luaL_Reg *fns);

/* The library parts, each called by luaopen_skd with the module table on top; each lives in
 * its own file and adds its functions to the module. C functions that exist only to serve a
 * Lua library file under lua/skd/ are registered as skd._name; the file wraps them. */
void lskd_open_tensor(lua_State *L);  /* ltensor.c */
void lskd_open_math(lua_State *L);    /* lmath.c: arithmetic, elementwise math, reductions */
void lskd_open_nn(lua_State *L);      /* lnn.c */
void lskd_open_optim(lua_State *L);   /* loptim.c: optimiser kernels */
void lskd_open_sys(lua_State *L);     /* lsys.c: atomic writes, mkdir, isatty */
void lskd_open_viewer(lua_State *L);  /* lviewer.c: skd.viewer */
void lskd_open_io(lua_State *L);      /* lio.c: skd.save, skd.load */
void lskd_open_data(lua_State *L);    /* ldata.c: datasets, augmentation, loader */
void lskd_open_metrics(lua_State *L); /* lmetrics.c: confusion matrices */
void lskd_open_losses(lua_State *L);  /* llosses.c: distillation kernels (affinity, ...) */

int luaopen_skd(lua_State *L);

#endif
