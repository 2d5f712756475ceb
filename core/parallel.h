/* parallel.h — one threading policy for the engine.
 * BLIS threads the GEMMs and OpenMP the loops, both from one setting: SKD_THREADS in the
 * environment (default: all cores), or skd_threads_set(). Kernels never call BLIS from inside
 * an OpenMP parallel region, so the two never oversubscribe the cores. */
#ifndef SKD_PARALLEL_H
#define SKD_PARALLEL_H

#include <stdint.h>

int skd_threads_get(void);
int skd_threads_set(int n); /* SKD_ERR if n < 1 */

/* Loops shorter than this many elements run on one thread: forking costs more. */
#define SKD_PARALLEL_GRAIN 32768

#endif
