/* bench_winograd.c — conv2d's paths side by side on the 3x3 layers of the student and teacher
 * networks: direct (im2col + GEMM), Winograd F(2x2,3x3), F(4x4,3x3) (space-to-batch first on
 * dilated layers), and what the per-layer rule (SKD_CONV_ALGO=auto) picks. For each pass —
 * forward, backward-input, backward-weight — the time, the effective rate (the direct
 * convolution's FLOPs, 2·N·OH·OW·Cout·Cin·9, over the time: it passes the machine's peak when
 * a path does less arithmetic) and the speedup over direct. The machine's FP32 peak is
 * measured as a large BLIS sgemm and printed beside the nominal one.
 *
 * A benchmark, not a test: medians (and the best run, since the machine may be shared) of
 * timed runs after a warm-up, at the engine's thread count (SKD_THREADS).
 *
 * usage: [SKD_BENCH_CLOCK=cpu] bench_winograd [runs [layer-substring [pass-substring]]]
 *        runs default 5 (SKD_BENCH_RUNS also sets it); with SKD_BENCH_CLOCK=cpu, the
 *        process's CPU time instead of wall time (for one-thread runs on a busy machine).
 *        bench_winograd calibrate [runs]: the measurements the per-layer rule in
 *        core/winograd.c was fitted to (forward + both backward passes of 24 layers, each
 *        path), with the rule's pick beside the fastest (run it as
 *        SKD_THREADS=1 SKD_BENCH_CLOCK=cpu bench_winograd calibrate 3).
 *        bench_winograd calibrate-forward [runs]: the same for the forward-alone rule (a
 *        frozen network: 24 layers at batch 1 to 8, stem to PSPNet head; fitted at
 *        SKD_THREADS=2 bench_winograd calibrate-forward 5).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "skd.h"
#include "winograd.h"

typedef struct layer {
	const char *name;
	int n, cin, h, w, cout, dil;
} layer;

/* Batch 8. The student (PSPNet-ResNet18, output stride 8) at 3x128x256: layer1 at 32x64,
 * layer2 at 16x32, layers 3 and 4 dilated at 16x32; at width 0.5 the same maps with half the
 * channels. The teacher's ResNet-50/101 bottlenecks have the same 3x3 convolutions as the
 * full-width student. Plus the layer1 at 64x64 and a deep stem's 3x3 at 64x128. */
static const layer layers[] = {
	{"64->64 @64x64", 8, 64, 64, 64, 64, 1},
	{"64->64 @32x64 (layer1)", 8, 64, 32, 64, 64, 1},
	{"128->128 @32x32", 8, 128, 32, 32, 128, 1},
	{"128->128 @16x32 (layer2)", 8, 128, 16, 32, 128, 1},
	{"256->256 d2 @16x32 (layer3)", 8, 256, 16, 32, 256, 2},
	{"512->512 d4 @16x32 (layer4)", 8, 512, 16, 32, 512, 4},
	{"32->32 @32x64 (w0.5 layer1)", 8, 32, 32, 64, 32, 1},
	{"128->128 d2 @16x32 (w0.5 l3)", 8, 128, 16, 32, 128, 2},
	{"256->256 d4 @16x32 (w0.5 l4)", 8, 256, 16, 32, 256, 4},
	{"32->64 @64x128 (deep stem)", 8, 32, 64, 128, 64, 1},
	/* the frozen teacher's forward at batch 1 (bench/compare.sh's teacher case) */
	{"b1 32->64 @64x128 (teacher stem)", 1, 32, 64, 128, 64, 1},
	{"b1 64->64 @32x64 (teacher layer1)", 1, 64, 32, 64, 64, 1},
	{"b1 128->128 @16x32 (teacher layer2)", 1, 128, 16, 32, 128, 1},
	{"b1 256->256 d2 @16x32 (teacher layer3)", 1, 256, 16, 32, 256, 2},
	{"b1 512->512 d4 @16x32 (teacher layer4)", 1, 512, 16, 32, 512, 4},
	{"b1 4096->512 @16x32 (teacher head)", 1, 4096, 16, 32, 512, 1},
};

static bool cpu_clock;

static double now(void)
{
	struct timespec ts;
	clock_gettime(cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
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

static void die(const char *what)
{
	fprintf(stderr, "bench_winograd: %s: %s\n", what, skd_last_error());
	exit(1);
}

static skd_tensor *randn(int ndim, const int64_t *shape)
{
	skd_tensor *t = skd_tensor_empty(SKD_FLOAT32, ndim, shape);
	if (!t)
		die("alloc");
	float *p = skd_tensor_f32(t);
	for (int64_t i = 0, n = skd_tensor_numel(t); i < n; i++)
		p[i] = (float)skd_rng_normal();
	return t;
}

typedef enum { FORWARD, BACKWARD_INPUT, BACKWARD_WEIGHT, NPASS } pass;
static const char *pass_name[] = {"forward", "backward-input", "backward-weight"};

/* Seconds of one pass; a backward pass times skd_backward alone, with only the operand whose
 * gradient is measured requiring grad. */
static double time_pass(pass ps, skd_tensor *x, skd_tensor *w, const skd_conv2d_params *p)
{
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
	skd_tensor *req = ps == BACKWARD_INPUT ? x : w;
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

/* The machine's FP32 rate: a 2048^3 sgemm, best of 3 after a warm-up. */
static double peak_gflops(void)
{
	int64_t n = 2048;
	size_t bytes = sizeof(float) * n * n;
	float *a = skd_alloc(bytes), *b = skd_alloc(bytes), *c = skd_alloc(bytes);
	if (!a || !b || !c)
		die("alloc");
	for (int64_t i = 0; i < n * n; i++) {
		a[i] = (float)(i % 7) * 0.1f;
		b[i] = (float)(i % 5) * 0.1f;
	}
	double best = 1e30;
	for (int r = 0; r < 4; r++) {
		double t0 = now();
		skd_sgemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
		double t = now() - t0;
		if (r > 0 && t < best)
			best = t;
	}
	skd_free(a, bytes);
	skd_free(b, bytes);
	skd_free(c, bytes);
	return 2.0 * n * n * n / best * 1e-9;
}

static const skd_conv_algo algos[] = {SKD_CONV_DIRECT, SKD_CONV_WINOGRAD2, SKD_CONV_WINOGRAD4,
				      SKD_CONV_AUTO};
#define NALGO 4

/* One training step's conv work (forward, then backward into both x and w), or with
 * forward_only a forward with no gradient wanted; best of runs. */
static double time_step(skd_tensor *x, skd_tensor *w, const skd_conv2d_params *p, int runs,
			bool forward_only)
{
	double best = 1e30;
	for (int r = 0; r <= runs; r++) {
		double t = forward_only ? time_pass(FORWARD, x, w, p) : 0.0;
		if (!forward_only) {
			skd_tensor_set_requires_grad(x, true);
			skd_tensor_set_requires_grad(w, true);
			double t0 = now();
			skd_tensor *y = skd_conv2d(x, w, NULL, p);
			if (!y)
				die("conv2d");
			skd_tensor *g = skd_tensor_full(SKD_FLOAT32, y->ndim, y->shape, 0.01);
			if (skd_backward(y, g))
				die("backward");
			t = now() - t0;
			skd_tensor_release(g);
			skd_tensor_release(y);
			skd_tensor_release(x->grad);
			skd_tensor_release(w->grad);
			x->grad = w->grad = NULL;
			skd_tensor_set_requires_grad(x, false);
			skd_tensor_set_requires_grad(w, false);
		}
		if (r > 0 && t < best)
			best = t;
	}
	return best;
}

/* n, cin, h, w, cout, dilation: thin to wide, 4x4 to 64x64 maps, dilation 1, 2, 4. */
static const int calib[][6] = {
	{8, 3, 64, 64, 4, 1},     {8, 3, 64, 64, 16, 1},    {8, 8, 64, 64, 8, 1},
	{8, 16, 32, 64, 16, 1},   {8, 32, 32, 64, 32, 1},   {8, 64, 32, 64, 64, 1},
	{8, 16, 16, 16, 16, 1},   {8, 64, 8, 8, 64, 1},     {8, 128, 4, 4, 128, 1},
	{8, 256, 6, 6, 256, 1},   {8, 128, 16, 32, 128, 1}, {8, 256, 8, 8, 256, 1},
	{8, 64, 16, 16, 64, 2},   {8, 32, 16, 32, 32, 4},   {8, 64, 16, 32, 64, 4},
	{8, 128, 16, 32, 128, 2}, {8, 128, 16, 32, 128, 4}, {8, 256, 16, 32, 256, 2},
	{8, 256, 16, 32, 256, 4}, {2, 512, 16, 32, 512, 4}, {4, 32, 9, 9, 32, 1},
	{8, 512, 4, 4, 512, 1},   {1, 64, 64, 64, 128, 1},  {8, 24, 24, 24, 24, 1},
};

/* Forward alone (a frozen network: no gradient wanted), batch 1 and 2 as the teacher runs in
 * distillation and inference, from the stem to a PSPNet head. */
static const int calib_forward[][6] = {
	{1, 3, 128, 256, 32, 1},  {1, 32, 64, 128, 32, 1},  {1, 32, 64, 128, 64, 1},
	{1, 64, 32, 64, 64, 1},   {1, 128, 16, 32, 128, 1}, {1, 256, 16, 32, 256, 2},
	{1, 512, 16, 32, 512, 4}, {1, 4096, 16, 32, 512, 1}, {1, 2048, 16, 32, 512, 1},
	{2, 64, 64, 128, 64, 1},  {2, 128, 32, 64, 128, 1}, {2, 256, 32, 64, 256, 2},
	{2, 512, 32, 64, 512, 4}, {2, 4096, 32, 64, 512, 1}, {1, 64, 8, 8, 64, 1},
	{1, 256, 8, 16, 256, 2},  {1, 512, 4, 4, 512, 1},   {8, 128, 16, 32, 128, 1},
	{8, 256, 16, 32, 256, 2}, {1, 1024, 16, 32, 256, 1}, {4, 512, 16, 32, 512, 4},
	{1, 16, 32, 32, 16, 1},   {2, 32, 24, 24, 32, 1},   {1, 256, 32, 64, 256, 1},
};

static void calibrate(int runs, bool forward)
{
	static const char *name[] = {"direct", "F2", "F4"};
	const int (*grid)[6] = forward ? calib_forward : calib;
	size_t count = forward ? sizeof calib_forward / sizeof *calib_forward
			       : sizeof calib / sizeof *calib;
	printf("%s ms (best of %d, %s clock, threads %d); * marks the rule's pick\n",
	       forward ? "forward (no grad)" : "fwd+bwd", runs, cpu_clock ? "CPU" : "wall",
	       skd_threads_get());
	int agree = 0, total = 0;
	for (size_t i = 0; i < count; i++) {
		const int *c = grid[i];
		int64_t xs[4] = {c[0], c[1], c[2], c[3]}, ws[4] = {c[4], c[1], 3, 3};
		skd_tensor *x = randn(4, xs), *w = randn(4, ws);
		skd_conv2d_params p = {{1, 1}, {c[5], c[5]}, {c[5], c[5]}, 1};
		skd_conv_shape s = {c[0], c[1], c[2], c[3], c[4], 3, 3, 1, 1, c[5], c[5], c[5], c[5], 1,
				    forward};
		skd_conv_algo_set(SKD_CONV_AUTO);
		int plan = skd_conv_fast_plan(&s), pick = plan == 4 ? 2 : plan == 2 ? 1 : 0, best = 0;
		double t[3];
		for (int a = 0; a < 3; a++) {
			skd_conv_algo_set(algos[a]);
			t[a] = time_step(x, w, &p, runs, forward) * 1e3;
			if (t[a] < t[best])
				best = a;
		}
		printf("%d x %3d->%-3d %2dx%-2d d%d:", c[0], c[1], c[4], c[2], c[3], c[5]);
		for (int a = 0; a < 3; a++)
			printf("  %s %8.2f%s", name[a], t[a], a == pick ? "*" : " ");
		printf("  fastest %s, rule's pick %+.0f%%\n", name[best], 100.0 * (t[pick] / t[best] - 1));
		agree += pick == best;
		total++;
		skd_tensor_release(x);
		skd_tensor_release(w);
	}
	skd_conv_algo_set(SKD_CONV_AUTO);
	printf("the rule picks the fastest path for %d of %d layers\n", agree, total);
}

int main(int argc, char **argv)
{
	int runs = 5;
	const char *env = getenv("SKD_BENCH_RUNS");
	const char *clk = getenv("SKD_BENCH_CLOCK");
	cpu_clock = clk && !strcmp(clk, "cpu");
	if (argc > 1 && (!strcmp(argv[1], "calibrate") || !strcmp(argv[1], "calibrate-forward"))) {
		skd_manual_seed(1);
		calibrate(argc > 2 && atoi(argv[2]) > 0 ? atoi(argv[2]) : 3,
			  !strcmp(argv[1], "calibrate-forward"));
		return 0;
	}
	if (argc > 1)
		runs = atoi(argv[1]);
	else if (env)
		runs = atoi(env);
	runs = runs < 1 ? 1 : runs > 100 ? 100 : runs;
	const char *only_layer = argc > 2 ? argv[2] : NULL, *only_pass = argc > 3 ? argv[3] : NULL;
	skd_manual_seed(1);
	int threads = skd_threads_get();
	double peak = peak_gflops();
	const char *wait = getenv("OMP_WAIT_POLICY");
	printf("conv2d paths on 3x3 layers — threads %d, OMP_WAIT_POLICY=%s, %s clock, median (best) "
	       "of %d runs after 1 warm-up\n", threads, wait ? wait : "(unset: spinning; on a busy "
	       "machine set passive)", cpu_clock ? "CPU" : "wall", runs);
	printf("machine FP32: sgemm 2048^3 %.0f GFLOP/s measured at %d threads (bench/compare.sh "
	       "prints the nominal peak)\n\n", peak, threads);
	printf("%-30s %-15s %-9s %8s %8s %12s %7s\n", "layer (batch 8; b1: 1)", "pass", "path", "ms",
	       "(best)", "eff GFLOP/s", "speedup");
	double times[100];
	for (size_t li = 0; li < sizeof layers / sizeof *layers; li++) {
		const layer *L = &layers[li];
		if (only_layer && !strstr(L->name, only_layer))
			continue;
		int64_t xs[4] = {L->n, L->cin, L->h, L->w}, ws[4] = {L->cout, L->cin, 3, 3};
		skd_tensor *x = randn(4, xs), *w = randn(4, ws);
		skd_conv2d_params p = {{1, 1}, {L->dil, L->dil}, {L->dil, L->dil}, 1};
		skd_conv_shape s = {L->n, L->cin, L->h, L->w, L->cout, 3, 3,
				    1, 1, L->dil, L->dil, L->dil, L->dil, 1, false};
		double flop = 2.0 * L->n * L->h * L->w * L->cout * L->cin * 9;
		skd_conv_algo saved = skd_conv_algo_get();
		skd_conv_algo_set(SKD_CONV_AUTO);
		int plan_step = skd_conv_fast_plan(&s);
		s.forward_only = true;
		int plan_forward = skd_conv_fast_plan(&s);
		for (int ps = FORWARD; ps < NPASS; ps++) {
			if (only_pass && !strstr(pass_name[ps], only_pass))
				continue;
			/* the forward is timed with no gradient wanted, so it takes the forward rule */
			int plan = ps == FORWARD ? plan_forward : plan_step;
			double direct_ms = 0.0;
			for (int ai = 0; ai < NALGO; ai++) {
				skd_conv_algo_set(algos[ai]);
				time_pass(ps, x, w, &p);
				for (int r = 0; r < runs; r++)
					times[r] = time_pass(ps, x, w, &p);
				double med = median(times, runs) * 1e3, best = times[0] * 1e3;
				if (ai == 0)
					direct_ms = med;
				char path[32];
				if (algos[ai] == SKD_CONV_AUTO)
					snprintf(path, sizeof path, "auto=%s", plan == 4 ? "F4" : plan == 2 ? "F2"
											   : "dir");
				else
					snprintf(path, sizeof path, "%s", skd_conv_algo_name(algos[ai]));
				printf("%-30s %-15s %-9s %8.2f %8.2f %12.1f %6.2fx\n", L->name, pass_name[ps],
				       path, med, best, flop / (med * 1e-3) * 1e-9, direct_ms / med);
				fflush(stdout);
			}
		}
		skd_conv_algo_set(saved);
		skd_tensor_release(x);
		skd_tensor_release(w);
	}
	printf("\neff GFLOP/s = direct-convolution FLOPs / time; speedup = direct median / median. "
	       "F2, F4: Winograd tiles; dilated layers go through space-to-batch first.\n");
	return 0;
}
