/* winograd_transforms.c — the 2-d transforms of the Winograd convolution (winograd.c,
 * winograd_packed.c), compiled twice: for AVX2, the build's baseline, and for AVX-512, taken
 * where the processor has it.
 *
 * The transforms are plain loops over STRIP lanes that the compiler vectorises; 512-bit
 * vectors halve their instructions. For a frozen PSPNet-R101 at batch 1 they matter: the
 * kernel's transform alone was ~13 % of the forward's time (its 32-tile layers do little
 * multiplying per kernel transformed), and on a dilated 256-channel layer the AVX-512 build of
 * that transform ran 1.6x faster, 1.9x with 16-lane blocks (perf samples against BLIS's). Each lane is the same sequence of operations in both builds
 * (the same contractions into FMAs, no reassociation), so they give the same bits.
 * SKD_WG_AVX512=0 keeps the AVX2 build (for comparisons).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "winograd.h"
#include "winograd_internal.h"

/* out[p·n_out + q] = Σ_i Σ_j c(p,i) c(q,j) in[i·n_in + j], lane by lane, where
 * c(p,i) = mat[p·sp + i·si]. Always inlined with a constant matrix, so that the loops over
 * i, j, p, q unroll, the zero coefficients (most of them) drop out at compile time and each
 * lane's sum stays in a register. The lanes go vl at a time: vl = one 512-bit vector keeps the
 * intermediate rows (mid) in registers where they fit (24 or fewer of them; the F(4,3) kernel
 * transform ran ~15 % faster than over all STRIP lanes per row), vl = STRIP suits AVX2 (at 8
 * lanes its 16 registers spill and the kernel transform ran 1.5x slower) and F(4,3)'s input
 * transform (36 rows). The order of operations in a lane is the same whatever vl. */
static inline __attribute__((always_inline)) void
transform2d(const float *mat, int sp, int si, int n_out, int n_in, int vl,
	    const float *const *in, float *const *out)
{
	for (int k0 = 0; k0 < STRIP; k0 += vl) {
		float mid[MAX_A * MAX_A][vl];
#pragma GCC unroll 6
		for (int i = 0; i < n_in; i++)
#pragma GCC unroll 6
			for (int q = 0; q < n_out; q++)
				for (int k = 0; k < vl; k++) {
					float s = 0.0f;
#pragma GCC unroll 6
					for (int j = 0; j < n_in; j++)
						if (mat[q * sp + j * si] != 0.0f)
							s += mat[q * sp + j * si] * in[i * n_in + j][k0 + k];
					mid[i * n_out + q][k] = s;
				}
#pragma GCC unroll 6
		for (int p = 0; p < n_out; p++)
#pragma GCC unroll 6
			for (int q = 0; q < n_out; q++)
				for (int k = 0; k < vl; k++) {
					float s = 0.0f;
#pragma GCC unroll 6
					for (int i = 0; i < n_in; i++)
						if (mat[p * sp + i * si] != 0.0f)
							s += mat[p * sp + i * si] * mid[i * n_out + q][k];
					out[p * n_out + q][k0 + k] = s;
				}
	}
}

/* The ten transforms for one instruction set: NAME(in, out) calls transform2d with its
 * matrix, strides and sizes. The coefficient (ξ, o) of A is Aᵀ[o][ξ]; of Gᵀ, G[o][ξ]. */
#define WG_TRANSFORMS(ATTR, SUFFIX, VL)                                                   \
	static ATTR void weight2##SUFFIX(const float *const *in, float *const *out)        \
	{ transform2d(f2.g, 3, 1, 4, 3, VL, in, out); }                                     \
	static ATTR void weight4##SUFFIX(const float *const *in, float *const *out)        \
	{ transform2d(f4.g, 3, 1, 6, 3, VL, in, out); }                                     \
	static ATTR void weight_grad2##SUFFIX(const float *const *in, float *const *out)   \
	{ transform2d(f2.g, 1, 3, 3, 4, VL, in, out); }                                     \
	static ATTR void weight_grad4##SUFFIX(const float *const *in, float *const *out)   \
	{ transform2d(f4.g, 1, 3, 3, 6, VL, in, out); }                                     \
	static ATTR void input2##SUFFIX(const float *const *in, float *const *out)         \
	{ transform2d(f2.bt, MAX_A, 1, 4, 4, VL, in, out); }                                \
	static ATTR void input4##SUFFIX(const float *const *in, float *const *out)         \
	{ transform2d(f4.bt, MAX_A, 1, 6, 6, STRIP, in, out); }                             \
	static ATTR void grad_output2##SUFFIX(const float *const *in, float *const *out)   \
	{ transform2d(f2.at, 1, MAX_A, 4, 2, VL, in, out); }                                \
	static ATTR void grad_output4##SUFFIX(const float *const *in, float *const *out)   \
	{ transform2d(f4.at, 1, MAX_A, 6, 4, VL, in, out); }                                \
	static ATTR void output2##SUFFIX(const float *const *in, float *const *out)        \
	{ transform2d(f2.at, MAX_A, 1, 2, 4, VL, in, out); }                                \
	static ATTR void output4##SUFFIX(const float *const *in, float *const *out)        \
	{ transform2d(f4.at, MAX_A, 1, 4, 6, VL, in, out); }                                \
	static const wg_transforms transforms##SUFFIX = {                                  \
		#SUFFIX + 1,                                                               \
		{weight2##SUFFIX, weight4##SUFFIX},                                        \
		{weight_grad2##SUFFIX, weight_grad4##SUFFIX},                              \
		{input2##SUFFIX, input4##SUFFIX},                                          \
		{grad_output2##SUFFIX, grad_output4##SUFFIX},                              \
		{output2##SUFFIX, output4##SUFFIX},                                        \
	};

WG_TRANSFORMS(, _avx2, STRIP)

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_AVX512_BUILD 1
WG_TRANSFORMS(__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,prefer-vector-width=512"))),
	      _avx512, 16)
#endif

static const wg_transforms *choose(void)
{
#ifdef HAVE_AVX512_BUILD
	const char *e = getenv("SKD_WG_AVX512");
	bool allowed = !(e && !strcmp(e, "0"));
	__builtin_cpu_init();
	if (allowed && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
	    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))
		return &transforms_avx512;
#endif
	return &transforms_avx2;
}

const wg_transforms *skd_wg_transforms(void)
{
	/* threads racing here all store the same choice */
	static const wg_transforms *chosen;
	const wg_transforms *t = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
	if (!t) {
		t = choose();
		__atomic_store_n(&chosen, t, __ATOMIC_RELEASE);
	}
	return t;
}

const char *skd_winograd_isa(void)
{
	return skd_wg_transforms()->isa;
}
