/* bench_conv.c — conv2d forward, backward-input and backward-weight GFLOP/s on ResNet-shaped
 * layers, each beside BLIS sgemm on the GEMM of the same (M, N, K) and the same transposition
 * flags, as a ratio. A benchmark, not a test: figures are medians of timed runs after a
 * warm-up, at the engine's thread count (SKD_THREADS).
 *
 *   pass             GEMM the direct path performs           M       N        K
 *   forward          Y = W · col(X)                          Cout    N·OH·OW  Cin·kh·kw
 *   backward-input   dcol = W^T · dY, then col2im            Cin·kh·kw N·OH·OW Cout
 *   backward-weight  dW = dY · col(X)^T                      Cout    Cin·kh·kw N·OH·OW
 *
 * FLOPs are 2·M·N·K for all three (im2col FLOPs: padding taps included). With a faster path
 * chosen (SKD_CONV_ALGO, core/winograd.h) the same FLOPs over its time give an effective rate,
 * which may pass the GEMM's.
 *
 * usage: [SKD_BENCH_CLOCK=cpu] bench_conv [runs [layer-substring [pass-substring]]]
 *        runs default 5 (SKD_BENCH_RUNS also sets it); the substrings pick rows, e.g.
 *        bench_conv 5 3x3 weight
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "skd.h"

typedef struct layer {
	const char *name;
	int n, cin, h, w, cout, k, stride, pad, dil;
} layer;

/* ResNet layers at batch 8: layer1 of a 256x256 input, the dilated layer3 / layer4 of an
 * output-stride-8 network, and a bottleneck 1x1. */
static const layer layers[] = {
	{"64->64 3x3 @64x64", 8, 64, 64, 64, 64, 3, 1, 1, 1},
	{"128->128 3x3 d2 @32x32", 8, 128, 32, 32, 128, 3, 1, 2, 2},
	{"256->256 1x1 @32x32", 8, 256, 32, 32, 256, 1, 1, 0, 1},
	{"512->512 3x3 d4 @32x32", 8, 512, 32, 32, 512, 3, 1, 4, 4},
};

/* Wall time, or with SKD_BENCH_CLOCK=cpu the process's CPU time: on a machine shared with
 * other work, a one-thread run timed that way still measures the code, not the neighbours. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now(void)
{
	struct timespec ts;
	clock_gettime(bench_clock, &ts);
	return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static skd_tensor *randn(int ndim, const int64_t *shape)
{
	skd_tensor *t = skd_tensor_empty(SKD_FLOAT32, ndim, shape);
	if (!t)
		return NULL;
	float *p = skd_tensor_f32(t);
	for (int64_t i = 0, n = skd_tensor_numel(t); i < n; i++)
		p[i] = (float)skd_rng_normal();
	return t;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_conv: %s: %s\n", what, skd_last_error());
	exit(1);
}

typedef enum { FORWARD, BACKWARD_INPUT, BACKWARD_WEIGHT } pass;
static const char *pass_name[] = {"forward", "backward-input", "backward-weight"};

/* Seconds of one conv2d pass. Backward passes time skd_backward alone, with only the
 * operand whose gradient is measured requiring grad. */
static double time_conv(pass ps, skd_tensor *x, skd_tensor *w, const skd_conv2d_params *p)
{
	skd_tensor *req = ps == BACKWARD_INPUT ? x : ps == BACKWARD_WEIGHT ? w : NULL;
	if (ps == FORWARD) {
		bool prev = skd_set_grad_enabled(false);
		double t0 = now();
		skd_tensor *y = skd_conv2d(x, w, NULL, p);
		double t = now() - t0;
		skd_set_grad_enabled(prev);
		if (!y)
			die("conv2d");
		skd_tensor_release(y);
		return t;
	}
	skd_tensor_set_requires_grad(req, true);
	skd_tensor *y = skd_conv2d(x, w, NULL, p);
	if (!y)
		die("conv2d");
	skd_tensor *g = skd_tensor_full(SKD_FLOAT32, y->ndim, y->shape, 0.01);
	double t0 = now();
	if (skd_backward(y, g))
		die("backward");
	double t = now() - t0;
	skd_tensor_release(g);
	skd_tensor_release(y);
	skd_tensor_release(req->grad);
	req->grad = NULL;
	skd_tensor_set_requires_grad(req, false);
	return t;
}

static double time_sgemm(pass ps, int64_t m, int64_t n, int64_t k, float *a, float *b, float *c)
{
	bool ta = ps == BACKWARD_INPUT, tb = ps == BACKWARD_WEIGHT;
	double t0 = now();
	skd_sgemm(ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c, n);
	return now() - t0;
}

static float *random_floats(int64_t n)
{
	float *p = skd_alloc(sizeof(float) * n);
	if (!p)
		die("alloc");
	for (int64_t i = 0; i < n; i++)
		p[i] = (float)skd_rng_uniform() - 0.5f;
	return p;
}

int main(int argc, char **argv)
{
	int runs = 5;
	const char *env = getenv("SKD_BENCH_RUNS");
	if (argc > 1)
		runs = atoi(argv[1]);
	else if (env)
		runs = atoi(env);
	if (runs < 1)
		runs = 1;
	if (runs > 100)
		runs = 100;
	const char *only_layer = argc > 2 ? argv[2] : NULL, *only_pass = argc > 3 ? argv[3] : NULL;
	skd_manual_seed(1);
	const char *clk = getenv("SKD_BENCH_CLOCK");
	if (clk && strcmp(clk, "cpu") == 0)
		bench_clock = CLOCK_PROCESS_CPUTIME_ID;
	const char *algo = getenv("SKD_CONV_ALGO"), *wait = getenv("OMP_WAIT_POLICY");
	printf("conv2d vs BLIS sgemm of the same GEMM shape — threads %d, SKD_CONV_ALGO=%s, "
	       "OMP_WAIT_POLICY=%s,\nmedian of %d runs after 1 warm-up, %s time\n\n",
	       skd_threads_get(), algo ? algo : "(unset)", wait ? wait : "(unset)", runs,
	       bench_clock == CLOCK_MONOTONIC ? "wall" : "CPU");
	printf("%-24s %-15s %5s %5s %5s %8s %7s %7s %6s %6s\n", "layer (batch 8)", "pass", "M",
	       "N", "K", "conv ms", "GFLOP/s", "sgemm", "ratio", "best");
	double tconv[100], tgemm[100];
	for (size_t li = 0; li < sizeof layers / sizeof *layers; li++) {
		const layer *L = &layers[li];
		if (only_layer && !strstr(L->name, only_layer))
			continue;
		int64_t xs[4] = {L->n, L->cin, L->h, L->w}, ws[4] = {L->cout, L->cin, L->k, L->k};
		skd_tensor *x = randn(4, xs), *w = randn(4, ws);
		if (!x || !w)
			die("alloc");
		skd_conv2d_params p = {{L->stride, L->stride}, {L->pad, L->pad}, {L->dil, L->dil}, 1};
		int64_t oh = (L->h + 2 * L->pad - L->dil * (L->k - 1) - 1) / L->stride + 1;
		int64_t ow = (L->w + 2 * L->pad - L->dil * (L->k - 1) - 1) / L->stride + 1;
		int64_t pix = L->n * oh * ow, kdim = (int64_t)L->cin * L->k * L->k;
		for (int ps = FORWARD; ps <= BACKWARD_WEIGHT; ps++) {
			if (only_pass && !strstr(pass_name[ps], only_pass))
				continue;
			int64_t m = ps == BACKWARD_INPUT ? kdim : L->cout;
			int64_t n = ps == BACKWARD_WEIGHT ? kdim : pix;
			int64_t k = ps == FORWARD ? kdim : ps == BACKWARD_INPUT ? L->cout : pix;
			float *a = random_floats(m * k), *b = random_floats(k * n), *c = random_floats(m * n);
			time_conv(ps, x, w, &p);
			time_sgemm(ps, m, n, k, a, b, c);
			/* interleaved, so that a noisy neighbour on the machine hits both alike */
			for (int r = 0; r < runs; r++) {
				tconv[r] = time_conv(ps, x, w, &p);
				tgemm[r] = time_sgemm(ps, m, n, k, a, b, c);
			}
			double flop = 2.0 * m * n * k;
			double tc = median(tconv, runs), tg = median(tgemm, runs);
			double bc = tconv[0], bg = tgemm[0]; /* sorted by median() */
			printf("%-24s %-15s %5lld %5lld %5lld %8.2f %7.1f %7.1f %5.0f%% %5.0f%%\n",
			       L->name, pass_name[ps], (long long)m, (long long)n, (long long)k,
			       tc * 1e3, flop / tc * 1e-9, flop / tg * 1e-9, 100.0 * tg / tc,
			       100.0 * bg / bc);
			fflush(stdout);
			skd_free(a, sizeof(float) * m * k);
			skd_free(b, sizeof(float) * k * n);
			skd_free(c, sizeof(float) * m * n);
		}
		skd_tensor_release(x);
		skd_tensor_release(w);
	}
	printf("\nratio = conv2d GFLOP/s / sgemm GFLOP/s of the medians; best = the same of the "
	       "fastest runs\n(less sensitive to other load on the machine). Targets: forward >= 80%% "
	       "for 3x3, backward >= 70%%.\n");
	return 0;
}
