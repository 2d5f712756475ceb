/* skd.h — the engine's whole C API, for programs that link core/ (the Lua binding, the
 * viewer, benchmarks). */
#ifndef SKD_H
#define SKD_H

#include "error.h"
#include "tensor.h"
#include "autograd.h"
#include "ops.h"
#include "rng.h"
#include "parallel.h"

#define SKD_VERSION "0.1.0"

#endif
