/* parallel.c — the thread count shared by OpenMP loops and BLIS (parallel.h). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <blis.h>
#include "error.h"
#include "parallel.h"

static int nthreads = 0; /* 0: not yet read from the environment */

/* BLIS 0.9 chooses its kernels by CPUID, and on an AVX-512 CPU whose count of 512-bit FMA
 * units it cannot tell (a model it does not list, such as this workplace's KVM Xeon, model
 * 207) it falls back from the 'skx' kernels to the AVX2 'haswell' ones: sgemm 2048^3 at one
 * thread measured 77 GFLOP/s against 109 with 'skx' (the core retires two 512-bit FMAs per
 * cycle: 164 GFLOP/s of zmm FMAs against 85 of ymm). So where the CPU has the AVX-512 subsets
 * the skx kernels use, the engine asks BLIS for them, through BLIS's own BLIS_ARCH_TYPE
 * override, before BLIS first initialises. The decision reads CPU features only, never a
 * timing, so a run's numbers do not depend on how busy the machine was. A BLIS_ARCH_TYPE of
 * the user's wins; SKD_BLIS_ARCH=blis leaves BLIS its own choice. BLIS 0.9.0 validates the
 * override against its kernel registry before building that registry (and aborts), so the
 * validation is switched off for the one call that fixes the choice. */
static void blis_choose_kernels(void)
{
	const char *mine = getenv("SKD_BLIS_ARCH");
	if (getenv("BLIS_ARCH_TYPE") || (mine && strcmp(mine, "blis") == 0))
		return;
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
	      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")))
		return;
	errlev_t level = bli_error_checking_level();
	bli_error_checking_level_set(BLIS_NO_ERROR_CHECKING);
	setenv("BLIS_ARCH_TYPE", "skx", 1);
	bli_arch_query_id(); /* fixed once for the process (pthread_once inside BLIS) */
	unsetenv("BLIS_ARCH_TYPE");
	bli_error_checking_level_set(level);
#endif
}

const char *skd_blis_arch(void)
{
	skd_threads_get();
	return bli_arch_string(bli_arch_query_id());
}

static int nblis = 1;

/* BLIS's own thread count (parallel.h): 1 unless SKD_BLIS_THREADS says otherwise, never
 * more than the engine's. */
static int blis_threads(int n)
{
	const char *env = getenv("SKD_BLIS_THREADS");
	long v = 1;
	if (env && *env) {
		v = strtol(env, NULL, 10);
		if (v < 1 || v > 1024)
			v = 1;
	}
	nblis = (int)(v < n ? v : n);
	return nblis;
}

int skd_blis_threads_get(void)
{
	skd_threads_get();
	return nblis;
}

static void init_once(void)
{
	if (nthreads > 0)
		return;
	blis_choose_kernels();
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	const char *env = getenv("SKD_THREADS");
	if (env && *env) {
		char *end;
		long v = strtol(env, &end, 10);
		if (*end == '\0' && v >= 1 && v <= 1024)
			n = v;
	}
	if (n < 1)
		n = 1;
	nthreads = (int)n;
	omp_set_num_threads(nthreads);
	bli_thread_set_num_threads(blis_threads(nthreads));
}

int skd_threads_get(void)
{
	init_once();
	return nthreads;
}

int skd_threads_set(int n)
{
	if (n < 1 || n > 1024)
		return skd_error("threads: expects a count from 1 to 1024, got %d", n);
	nthreads = n;
	omp_set_num_threads(n);
	bli_thread_set_num_threads(blis_threads(n));
	return SKD_OK;
}
