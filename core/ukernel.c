/* ukernel.c — BLIS's GEMM micro-kernel, for callers that lay their operands out as its packed
 * panels themselves (ops.h, skd_ukernel_*).
 *
 * bli_sgemm packs both operands on every call: fine when each packed element then meets many
 * of the other operand's (a large product), but a Winograd layer of a frozen network at batch 1
 * multiplies a transformed kernel that is alpha²/9 times the weights by 32 tiles, so each
 * kernel element is used 32 times and BLIS spent as long writing and re-reading it (transform
 * to memory, then packing) as multiplying (winograd.c). Calling the micro-kernel directly lets
 * the transform write the packed panel and the product read it while it is still in cache.
 * The micro-kernel is the one BLIS picked for this CPU (parallel.c), at its own register-block
 * shape mr x nr and storage preference. */
#include <blis.h>
#include <pthread.h>
#include <string.h>
#include "ops.h"
#include "parallel.h"

static skd_ukernel info;
static sgemm_ukr_ft kernel;
static cntx_t *context;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void ukernel_init(void)
{
	skd_threads_get(); /* the kernel set is chosen before BLIS first initialises */
	context = bli_gks_query_cntx();
	kernel = (sgemm_ukr_ft)bli_cntx_get_l3_nat_ukr_dt(BLIS_FLOAT, BLIS_GEMM_UKR, context);
	int mr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MR, context);
	int nr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NR, context);
	/* panels are laid out mr (nr) wide; a kernel set whose packed panels are wider than its
	 * register block (PACKMR, PACKNR) would read them otherwise */
	int pmr = (int)bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_MR, context);
	int pnr = (int)bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_NR, context);
	if (!kernel || mr < 1 || nr < 1 || mr * nr > SKD_UKERNEL_MAX_BLOCK || pmr != mr || pnr != nr)
		return; /* unavailable: callers keep to skd_sgemm */
	info.mr = mr;
	info.nr = nr;
	info.prefers_cols = bli_cntx_l3_nat_ukr_prefers_cols_dt(BLIS_FLOAT, BLIS_GEMM_UKR, context);
}

const skd_ukernel *skd_ukernel_get(void)
{
	pthread_once(&once, ukernel_init);
	return &info;
}

void skd_ukernel_run(int64_t m, int64_t n, int64_t k, const float *a, const float *b, float beta,
		     float *c, int64_t rs_c, int64_t cs_c)
{
	float one = 1.0f;
	auxinfo_t aux;
	memset(&aux, 0, sizeof aux);
	bli_auxinfo_set_next_a((void *)a, &aux);
	bli_auxinfo_set_next_b((void *)b, &aux);
	if (m == info.mr && n == info.nr) {
		kernel(m, n, k, &one, (float *)a, (float *)b, &beta, c, rs_c, cs_c, &aux, context);
		return;
	}
	/* an edge block: the whole register block into a local one, then its m x n part (not
	 * every BLIS 0.9 micro-kernel honours m and n below its block shape) */
	float zero = 0.0f, t[SKD_UKERNEL_MAX_BLOCK] __attribute__((aligned(64)));
	inc_t rs_t = info.prefers_cols ? 1 : info.nr, cs_t = info.prefers_cols ? info.mr : 1;
	kernel(info.mr, info.nr, k, &one, (float *)a, (float *)b, &zero, t, rs_t, cs_t, &aux,
	       context);
	for (int64_t i = 0; i < m; i++)
		for (int64_t j = 0; j < n; j++) {
			float *cij = c + i * rs_c + j * cs_c, tij = t[i * rs_t + j * cs_t];
			*cij = beta == 0.0f ? tij : beta * *cij + tij;
		}
}
