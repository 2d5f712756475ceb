/* parallel.h — one threading policy for the engine.
 * BLIS threads the GEMMs and OpenMP the loops, both from one setting: SKD_THREADS in the
 * environment (default: all cores), or skd_threads_set(). Kernels never call BLIS from inside
 * an OpenMP parallel region, so the two never oversubscribe the cores. */
#ifndef SKD_PARALLEL_H
#define SKD_PARALLEL_H

#include <stdint.h>

int skd_threads_get(void);
int skd_threads_set(int n); /* SKD_ERR if n < 1 */

/* BLIS's own thread count. Default 1: on this workplace's 2-vCPU machine BLIS's threaded
 * sgemm measured 11 GFLOP/s at 2 threads against 53 at 1 (a 512x4096x2304 product), and a
 * training step 5x slower. So the engine runs BLIS single-threaded and spreads independent
 * GEMMs over OpenMP threads instead (Winograd's alpha^2 products, one per thread), which
 * scales; SKD_BLIS_THREADS=n gives BLIS n threads where its own threading scales. */
int skd_blis_threads_get(void);

/* The name of the BLIS kernel set in use ("skx", "haswell", ...). On AVX-512 CPUs the engine
 * asks for "skx" even where BLIS's CPUID tables would fall back to AVX2 (parallel.c);
 * SKD_BLIS_ARCH=blis keeps BLIS's own choice, BLIS_ARCH_TYPE picks one outright. */
const char *skd_blis_arch(void);

/* Loops shorter than this many elements run on one thread: forking costs more. */
#define SKD_PARALLEL_GRAIN 32768

#endif
