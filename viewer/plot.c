/* plot.c — loss curves: one line per term against the iteration, linear or log y axis, with
 * ticks at "nice" numbers (1, 2, 5 × 10^k), axis labels and a legend with the last values.
 * The history is kept whole up to a cap, then thinned by half, so memory stays bounded in a
 * 10,000-step run and the curve's shape survives. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vw_internal.h"

#define MAX_POINTS (1 << 18)

static const uint8_t curve_rgb[VW_MAX_CURVES][3] = {
	{86, 180, 233}, {230, 159, 0},  {0, 158, 115},  {240, 228, 66},
	{213, 94, 0},   {204, 121, 167}, {0, 114, 178},  {255, 255, 255},
	{160, 160, 160}, {255, 100, 100}, {100, 255, 100}, {120, 120, 255},
	{255, 180, 120}, {180, 255, 220}, {220, 180, 255}, {200, 200, 60},
};

static vw_curve *find_curve(skd_viewer *v, const char *name)
{
	for (int i = 0; i < v->ncurves; i++)
		if (!strcmp(v->curves[i].name, name))
			return &v->curves[i];
	if (v->ncurves == VW_MAX_CURVES)
		return NULL;
	vw_curve *c = &v->curves[v->ncurves++];
	memset(c, 0, sizeof *c);
	snprintf(c->name, sizeof c->name, "%s", name);
	return c;
}

/* Keeps every other point: the curve keeps its shape at half the memory. */
static void thin(vw_curve *c)
{
	int64_t k = 0;
	for (int64_t i = 0; i < c->n; i += 2, k++) {
		c->x[k] = c->x[i];
		c->y[k] = c->y[i];
	}
	c->n = k;
}

int vw_curves_append(skd_viewer *v, int n, const char *const *names, const double *values,
		     int64_t iter)
{
	for (int t = 0; t < n; t++) {
		vw_curve *c = find_curve(v, names[t]);
		if (!c)
			return skd_error("viewer.show: at most %d loss terms, '%s' is one more",
					 VW_MAX_CURVES, names[t]);
		if (c->n == MAX_POINTS)
			thin(c);
		if (c->n == c->cap) {
			int64_t cap = c->cap ? c->cap * 2 : 256;
			double *x = realloc(c->x, cap * sizeof *x), *y = x ? realloc(c->y, cap * sizeof *y) : NULL;
			if (x)
				c->x = x;
			if (!x || !y)
				return skd_error("viewer.show: out of memory for loss curves");
			c->y = y;
			c->cap = cap;
		}
		c->x[c->n] = (double)iter;
		c->y[c->n] = values[t];
		c->n++;
	}
	return SKD_OK;
}

void vw_curves_free(skd_viewer *v)
{
	for (int i = 0; i < v->ncurves; i++) {
		free(v->curves[i].x);
		free(v->curves[i].y);
	}
	v->ncurves = 0;
}

/* The 1-2-5 step that gives about `want` intervals over span. */
static double nice_step(double span, int want)
{
	double raw = span / want, mag = pow(10, floor(log10(raw))), f = raw / mag;
	return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

typedef struct axis {
	double lo, hi;   /* data range (log10 of it on a log axis) */
	int p0, p1;      /* pixel positions of lo and hi */
	bool log;
} axis;

static int to_pixel(const axis *a, double value)
{
	double t = a->log ? log10(value) : value;
	return a->p0 + (int)lround((t - a->lo) / (a->hi - a->lo) * (a->p1 - a->p0));
}

/* Ticks and their labels along one axis; vertical = the y axis at x = at, else x axis at y. */
static void ticks(const skd_viewer *v, SDL_Surface *c, const axis *a, bool vertical, int at,
		  int other0, int other1)
{
	uint32_t grid = vw_pack(58, 58, 66), fg = vw_pack(200, 200, 200);
	double step = a->log && a->hi - a->lo >= 2 ? ceil((a->hi - a->lo) / 5)
						   : nice_step(a->hi - a->lo, vertical ? 4 : 5);
	for (double t = ceil(a->lo / step - 1e-9) * step; t <= a->hi + step * 1e-9; t += step) {
		int p = a->p0 + (int)lround((t - a->lo) / (a->hi - a->lo) * (a->p1 - a->p0));
		double value = a->log ? pow(10, t) : t;
		if (fabs(value) < step * 1e-9 && !a->log)
			value = 0;
		char label[32];
		snprintf(label, sizeof label, "%.3g", value);
		if (vertical) {
			vw_line(c, other0 + 1, p, other1, p, grid);
			vw_line(c, at - 4, p, at, p, fg);
			vw_text(c, v->font_small, at - 6, p - 7, VW_RIGHT, fg, "%s", label);
		} else {
			vw_line(c, p, other0, p, other1 - 1, grid);
			vw_line(c, p, at, p, at + 4, fg);
			vw_text(c, v->font_small, p, at + 5, VW_CENTER, fg, "%s", label);
		}
	}
}

/* A curve squeezed into pixel columns: per column the min..max span, joined column to column,
 * so 100,000 points cost the same as the plot's width. */
static void draw_curve(SDL_Surface *c, const vw_curve *cv, const axis *ax, const axis *ay,
		       uint32_t col)
{
	bool have = false, have_prev = false;
	int col_x = 0, lo = 0, hi = 0, first = 0, last = 0, prev_x = 0, prev_last = 0;
	for (int64_t i = 0; i <= cv->n; i++) {
		bool end = i == cv->n;
		if (!end && (!isfinite(cv->y[i]) || (ay->log && !(cv->y[i] > 0))))
			continue;
		int x = end ? 0 : to_pixel(ax, cv->x[i]), y = end ? 0 : to_pixel(ay, cv->y[i]);
		if (have && !end && x == col_x) {
			lo = y < lo ? y : lo;
			hi = y > hi ? y : hi;
			last = y;
			continue;
		}
		if (have) { /* flush the finished column */
			if (have_prev)
				vw_line(c, prev_x, prev_last, col_x, first, col);
			vw_line(c, col_x, lo, col_x, hi, col);
			have_prev = true;
			prev_x = col_x;
			prev_last = last;
		}
		if (end)
			break;
		have = true;
		col_x = x;
		lo = hi = first = last = y;
	}
}

void vw_plot_losses(const skd_viewer *v, SDL_Surface *c, vw_rect r)
{
	vw_text(c, v->font, r.x, r.y + 1, VW_LEFT, vw_pack(232, 232, 232), "losses (%s y, key l)",
		v->log_scale ? "log" : "linear");
	vw_rect box = {r.x + 56, r.y + 36, r.w - 56 - 8, r.h - 36 - 34};
	if (box.w < 20 || box.h < 20)
		return;
	vw_fill(c, box, vw_pack(22, 22, 26));
	double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
	for (int k = 0; k < v->ncurves; k++) {
		const vw_curve *cv = &v->curves[k];
		for (int64_t i = 0; i < cv->n; i++) {
			double y = cv->y[i];
			if (!isfinite(y) || (v->log_scale && !(y > 0)))
				continue;
			xmin = fmin(xmin, cv->x[i]);
			xmax = fmax(xmax, cv->x[i]);
			ymin = fmin(ymin, y);
			ymax = fmax(ymax, y);
		}
	}
	uint32_t fg = vw_pack(200, 200, 200);
	if (!(xmax >= xmin)) {
		vw_text(c, v->font_small, box.x + box.w / 2, box.y + box.h / 2 - 7, VW_CENTER,
			vw_pack(150, 150, 160), "%s", v->ncurves ? "(no value to plot on this axis)"
								 : "(no losses yet)");
		vw_outline(c, box, fg);
		return;
	}
	if (xmax == xmin) {
		xmin -= 1;
		xmax += 1;
	}
	axis ax = {xmin, xmax, box.x, box.x + box.w - 1, false};
	axis ay = {ymin, ymax, box.y + box.h - 1, box.y, v->log_scale};
	if (v->log_scale) {
		ay.lo = floor(log10(ymin) * 10) / 10;
		ay.hi = ceil(log10(ymax) * 10) / 10;
		if (ay.hi - ay.lo < 0.2) {
			ay.lo -= 0.1;
			ay.hi += 0.1;
		}
	} else {
		double pad = ymax > ymin ? 0.05 * (ymax - ymin) : (fabs(ymax) > 0 ? 0.1 * fabs(ymax) : 1);
		ay.lo = ymin - pad;
		ay.hi = ymax + pad;
	}
	ticks(v, c, &ay, true, box.x, box.x, box.x + box.w - 1);
	ticks(v, c, &ax, false, box.y + box.h, box.y, box.y + box.h);
	vw_outline(c, box, fg);
	vw_text(c, v->font_small, box.x + box.w / 2, box.y + box.h + 19, VW_CENTER, fg, "iteration");
	vw_text(c, v->font_small, box.x, box.y - 15, VW_CENTER, fg, "%s",
		v->log_scale ? "loss (log)" : "loss");
	int ly = box.y + 4;
	for (int k = 0; k < v->ncurves; k++) {
		const vw_curve *cv = &v->curves[k];
		uint32_t col = vw_pack(curve_rgb[k][0], curve_rgb[k][1], curve_rgb[k][2]);
		draw_curve(c, cv, &ax, &ay, col);
		vw_fill(c, (vw_rect){box.x + box.w - 150, ly + 6, 14, 3}, col);
		vw_text(c, v->font_small, box.x + box.w - 132, ly, VW_LEFT, fg, "%s %.4g", cv->name,
			cv->n ? cv->y[cv->n - 1] : 0.0);
		ly += 14;
	}
}
