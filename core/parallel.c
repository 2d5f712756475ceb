/* parallel.c — the thread count shared by OpenMP loops and BLIS (parallel.h). */
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>
#include <blis.h>
#include "error.h"
#include "parallel.h"

static int nthreads = 0; /* 0: not yet read from the environment */

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
