/* print.c — Torch7-style text for tensors (tensor.h: skd_tensor_format).
 *
 *     th-like output for skd.tensor{{1.5, -2}, {0.25, 3}}:
 *      1.5000 -2.0000
 *      0.2500  3.0000
 *     [skd.FloatTensor of size 2x2]
 *
 * One number format serves the whole tensor, chosen from the values shown (as Torch7's
 * Storage__printformat does): integers without decimals when every value is integral, 4
 * decimals otherwise, a common scale line ("1e-03 *") when all magnitudes are very large or very
 * small, exponent notation when they span more than 4 decades. A 1-d tensor prints one value a
 * line, a 2-d one as a matrix (in column blocks when wider than 80 characters), and a higher one
 * as matrices headed "(i,j,.,.) =". Past SUMMARY_THRESHOLD elements only the first and last
 * EDGE_ITEMS of each dimension print, with "..." between (PyTorch's summarisation), so printing a
 * million-element tensor reads a few dozen values.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd.h"
#include "tensor.h"

#define SUMMARY_THRESHOLD 1000
#define EDGE_ITEMS 3
#define LINE_WIDTH 80
#define SKIP (-1) /* the "..." position of a summarised dimension */

/* ---------- a growing string ---------- */

typedef struct text {
	char *s;
	size_t len, cap;
	int failed;
} text;

static void put(text *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *b, const char *fmt, ...)
{
	if (b->failed)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = 1;
			return;
		}
		if (b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = 2 * b->cap + (size_t)n + 1;
		char *s = realloc(b->s, cap);
		if (!s) {
			b->failed = 1;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
}

/* ---------- which indices print ---------- */

/* Per dimension: how many positions print, and whether the middle is cut to "...". */
typedef struct layout {
	int ndim;
	int64_t shown[SKD_MAX_DIMS];
	int cut[SKD_MAX_DIMS];
} layout;

static void make_layout(const skd_tensor *t, layout *l)
{
	int summarise = skd_tensor_numel(t) > SUMMARY_THRESHOLD;
	l->ndim = t->ndim;
	for (int d = 0; d < t->ndim; d++) {
		l->cut[d] = summarise && t->shape[d] > 2 * EDGE_ITEMS;
		l->shown[d] = l->cut[d] ? 2 * EDGE_ITEMS + 1 : t->shape[d];
	}
}

/* The tensor index at print position p of dimension d, or SKIP. */
static int64_t index_at(const skd_tensor *t, const layout *l, int d, int64_t p)
{
	if (!l->cut[d] || p < EDGE_ITEMS)
		return p;
	if (p == EDGE_ITEMS)
		return SKIP;
	return t->shape[d] - (2 * EDGE_ITEMS + 1 - p);
}

/* ---------- the common number format ---------- */

typedef enum { FMT_INT, FMT_FIXED, FMT_EXP } fmt_kind;

typedef struct numfmt {
	fmt_kind kind;
	int width; /* characters per value, sign included */
	double scale;
} numfmt;

/* Decimal digits before the point of |v| (v > 0), as Torch7 counts them: 1 for [1, 10),
 * 0 for [0.1, 1), -1 for [0.01, 0.1). */
static int exponent_of(double v)
{
	return (int)floor(log10(v)) + 1;
}

static void choose_format(const skd_tensor *t, const layout *l, numfmt *f)
{
	double max_abs = 0, min_abs = INFINITY;
	int integral = 1, any_nonfinite = 0;
	int64_t pos[SKD_MAX_DIMS] = {0}, idx[SKD_MAX_DIMS];
	int64_t total = 1;
	for (int d = 0; d < l->ndim; d++)
		total *= l->shown[d];
	for (int64_t k = 0; k < total; k++) {
		int skip = 0;
		for (int d = 0; d < l->ndim; d++) {
			idx[d] = index_at(t, l, d, pos[d]);
			skip |= idx[d] == SKIP;
		}
		if (!skip) {
			double v = skd_tensor_get(t, idx);
			if (!isfinite(v)) {
				any_nonfinite = 1;
			} else {
				double a = fabs(v);
				if (a > max_abs)
					max_abs = a;
				if (a > 0 && a < min_abs)
					min_abs = a;
				if (v != floor(v))
					integral = 0;
			}
		}
		for (int d = l->ndim - 1; d >= 0; d--) {
			if (++pos[d] < l->shown[d])
				break;
			pos[d] = 0;
		}
	}
	int exp_max = max_abs > 0 ? exponent_of(max_abs) : 1;
	int exp_min = isfinite(min_abs) ? exponent_of(min_abs) : 1;
	f->scale = 1;
	if (t->dtype == SKD_INT32 || integral) {
		if (exp_max > 9) {
			f->kind = FMT_EXP;
			f->width = 11;
		} else {
			f->kind = FMT_INT;
			f->width = (exp_max > 1 ? exp_max : 1) + 1;
		}
	} else if (exp_max - exp_min > 4) {
		f->kind = FMT_EXP;
		f->width = 11;
	} else if (exp_max > 5 || exp_max < 0) {
		f->kind = FMT_FIXED;
		f->width = 7;
		f->scale = pow(10.0, exp_max - 1);
	} else {
		f->kind = FMT_FIXED;
		f->width = exp_max <= 0 ? 7 : exp_max + 6;
	}
	if (any_nonfinite && f->width < 4)
		f->width = 4; /* "-inf" */
	for (int d = 0; d < l->ndim; d++)
		if (l->cut[d] && f->width < 3)
			f->width = 3; /* "..." */
}

static void put_value(text *b, const numfmt *f, double v)
{
	if (isnan(v)) {
		put(b, "%*s", f->width, "nan");
		return;
	}
	if (isinf(v)) {
		put(b, "%*s", f->width, v > 0 ? "inf" : "-inf");
		return;
	}
	v /= f->scale;
	if (v == 0)
		v = 0; /* no "-0" */
	switch (f->kind) {
	case FMT_INT:
		put(b, "%*.0f", f->width, v);
		break;
	case FMT_FIXED:
		put(b, "%*.4f", f->width, v);
		break;
	case FMT_EXP:
		put(b, "%*.4e", f->width, v);
		break;
	}
}

/* ---------- layouts by dimension ---------- */

/* The 2-d slice of t at the leading indices idx[0 .. ndim-3], as rows of columns. */
static void put_matrix(text *b, const skd_tensor *t, const layout *l, const numfmt *f,
		       int64_t *idx, const char *indent)
{
	int r = t->ndim - 2, c = t->ndim - 1;
	int64_t per_block = (LINE_WIDTH - (int64_t)strlen(indent)) / (f->width + 1);
	if (per_block < 1 || l->cut[c])
		per_block = l->shown[c]; /* a summarised row is short enough */
	for (int64_t first = 0; first < l->shown[c]; first += per_block) {
		int64_t last = first + per_block < l->shown[c] ? first + per_block : l->shown[c];
		if (per_block < l->shown[c])
			put(b, "%s%sColumns %lld to %lld\n", first ? "\n" : "", indent,
			    (long long)first + 1, (long long)last);
		for (int64_t pr = 0; pr < l->shown[r]; pr++) {
			idx[r] = index_at(t, l, r, pr);
			put(b, "%s", indent);
			if (idx[r] == SKIP) {
				put(b, "%*s\n", f->width, "...");
				continue;
			}
			for (int64_t pc = first; pc < last; pc++) {
				idx[c] = index_at(t, l, c, pc);
				if (pc > first)
					put(b, " ");
				if (idx[c] == SKIP)
					put(b, "%*s", f->width, "...");
				else
					put_value(b, f, skd_tensor_get(t, idx));
			}
			put(b, "\n");
		}
	}
}

static void put_vector(text *b, const skd_tensor *t, const layout *l, const numfmt *f)
{
	int64_t idx[1];
	for (int64_t p = 0; p < l->shown[0]; p++) {
		idx[0] = index_at(t, l, 0, p);
		if (idx[0] == SKIP)
			put(b, "%*s", f->width, "...");
		else
			put_value(b, f, skd_tensor_get(t, idx));
		put(b, "\n");
	}
}

/* ≥ 3-d: one matrix per leading index, in row-major order, headed "(i,j,.,.) =". */
static void put_slices(text *b, const skd_tensor *t, const layout *l, const numfmt *f)
{
	int lead = t->ndim - 2;
	int64_t pos[SKD_MAX_DIMS] = {0}, idx[SKD_MAX_DIMS] = {0};
	int64_t total = 1;
	for (int d = 0; d < lead; d++)
		total *= l->shown[d];
	int first_block = 1;
	for (int64_t k = 0; k < total; k++) {
		int skip_at = -1;
		for (int d = 0; d < lead; d++) {
			idx[d] = index_at(t, l, d, pos[d]);
			if (idx[d] == SKIP && skip_at < 0)
				skip_at = d;
		}
		if (skip_at >= 0) {
			/* one "..." for the whole run of cut slices it stands for */
			int first_of_run = 1;
			for (int d = skip_at + 1; d < lead; d++)
				first_of_run &= pos[d] == 0;
			if (first_of_run)
				put(b, "\n...\n");
		} else {
			put(b, first_block ? "(" : "\n(");
			for (int d = 0; d < lead; d++)
				put(b, "%lld,", (long long)idx[d] + 1);
			put(b, ".,.) =\n");
			put_matrix(b, t, l, f, idx, " ");
			first_block = 0;
		}
		for (int d = lead - 1; d >= 0; d--) {
			if (++pos[d] < l->shown[d])
				break;
			pos[d] = 0;
		}
	}
}

char *skd_tensor_format(const skd_tensor *t)
{
	text b = {NULL, 0, 0, 0};
	char shape[SKD_SHAPE_STR_LEN];
	const char *type = t->dtype == SKD_INT32 ? "IntTensor" : "FloatTensor";
	b.cap = 256;
	b.s = malloc(b.cap);
	if (!b.s)
		return skd_error_null("tostring: out of memory");
	b.s[0] = '\0';
	int64_t n = skd_tensor_numel(t);
	if (n > 0) {
		layout l;
		numfmt f;
		make_layout(t, &l);
		choose_format(t, &l, &f);
		if (f.scale != 1)
			put(&b, "%.0e *\n", f.scale);
		if (t->ndim == 0) {
			put_value(&b, &f, skd_tensor_get(t, NULL));
			put(&b, "\n");
		} else if (t->ndim == 1) {
			put_vector(&b, t, &l, &f);
		} else if (t->ndim == 2) {
			int64_t idx[2];
			put_matrix(&b, t, &l, &f, idx, "");
		} else {
			put_slices(&b, t, &l, &f);
		}
	}
	if (t->ndim == 0)
		put(&b, "[skd.%s scalar]", type);
	else
		put(&b, "[skd.%s of size %s]", type, skd_shape_str(t, shape, sizeof shape));
	if (t->grad_fn)
		put(&b, " (grad_fn: %s)", t->grad_fn->op);
	else if (t->requires_grad)
		put(&b, " (requires_grad)");
	if (b.failed) {
		free(b.s);
		return skd_error_null("tostring: out of memory");
	}
	return b.s;
}
