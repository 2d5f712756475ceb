/* panels.c — the layout and the frame: input, ground truth, teacher, student, error map,
 * legend, the affinity panel (N×N matrices or one pixel's row over the image, with colour
 * bars), the loss plot (plot.c) and the status bar. Called with the viewer's lock held; reads
 * only the frame state, so the same call makes the window's frame and the PNG files. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "vw_internal.h"

const char *const vw_panel_names[VW_NPANELS] = {
	"header", "input", "label", "teacher", "student", "error", "affinity_teacher",
	"affinity_student", "affinity_diff", "colorbar", "legend", "losses", "status",
};

enum { MARGIN = 8, CAPTION = 18, HEADER = 26, STATUS = 22, LEGEND_W = 150, CBAR_W = 120,
       LEGEND_LINE = 16, MIN_PLOT_W = 300 };

#define BG vw_pack(30, 30, 34)
#define EMPTY vw_pack(50, 50, 56)
#define TEXT vw_pack(232, 232, 232)
#define DIM vw_pack(150, 150, 160)

static double panel_scale(const skd_viewer *v, int h, int w)
{
	int m = h > w ? h : w;
	double s;
	if (v->scale > 0)
		s = v->scale;
	else if (m <= 256)
		s = floor(256.0 / m);
	else
		s = 1.0 / ceil(m / 320.0);
	if (m * s > 1200) /* five panels side by side must fit a screen */
		s = 1200.0 / m;
	return s;
}

/* h, w: the sample's size; 0 before the first sample (panels of 256×192 then). */
void vw_layout_compute(const skd_viewer *v, int h, int w, vw_layout *L)
{
	memset(L, 0, sizeof *L);
	L->img_h = h > 0 ? h : 192;
	L->img_w = w > 0 ? w : 256;
	double s = h > 0 ? panel_scale(v, h, w) : 1;
	L->pw = (int)lround(L->img_w * s) > 0 ? (int)lround(L->img_w * s) : 1;
	L->ph = (int)lround(L->img_h * s) > 0 ? (int)lround(L->img_h * s) : 1;
	int pw = L->pw, ph = L->ph;
	int row_a = HEADER + CAPTION, row_b = row_a + ph + MARGIN + CAPTION;
	for (int i = 0; i < 5; i++)
		L->r[VW_P_INPUT + i] = (vw_rect){MARGIN + i * (pw + MARGIN), row_a, pw, ph};
	for (int i = 0; i < 3; i++)
		L->r[VW_P_AFF0 + i] = (vw_rect){MARGIN + i * (pw + MARGIN), row_b, pw, ph};
	if (v->aff_view == 0) { /* N×N squares, centred in their slots */
		int side = pw < ph ? pw : ph;
		for (int i = 0; i < 3; i++) {
			vw_rect *r = &L->r[VW_P_AFF0 + i];
			*r = (vw_rect){r->x + (pw - side) / 2, r->y + (ph - side) / 2, side, side};
		}
	}
	int cbar_x = MARGIN + 3 * (pw + MARGIN);
	L->r[VW_P_COLORBAR] = (vw_rect){cbar_x, row_b, CBAR_W, ph};
	int plot_x = cbar_x + CBAR_W + MARGIN;
	int row_a_right = MARGIN + 5 * pw + 4 * MARGIN;
	int plot_w = row_a_right - plot_x;
	if (plot_w < MIN_PLOT_W)
		plot_w = MIN_PLOT_W;
	L->r[VW_P_LOSSES] = (vw_rect){plot_x, row_b - CAPTION, plot_w, ph + CAPTION};
	int right = plot_x + plot_w > row_a_right ? plot_x + plot_w : row_a_right;
	/* Legend: one column beside the panels, a second when the names do not fit. */
	int avail = 2 * ph + CAPTION + MARGIN;
	int lines = v->ncls > 0 ? v->ncls : 12;
	int cols = (lines * LEGEND_LINE + CAPTION) > avail ? 2 : 1;
	L->r[VW_P_LEGEND] = (vw_rect){right + MARGIN, row_a - CAPTION, cols * LEGEND_W,
				      avail + CAPTION};
	L->width = right + MARGIN + cols * LEGEND_W + MARGIN;
	int status_y = row_b + ph + MARGIN;
	L->height = status_y + STATUS;
	L->r[VW_P_HEADER] = (vw_rect){0, 0, L->width, HEADER};
	L->r[VW_P_STATUS] = (vw_rect){0, status_y, L->width, STATUS};
}

vw_sample *vw_current(const skd_viewer *v)
{
	if (v->nsamples == 0)
		return NULL;
	return v->ring[(v->first + v->view) % v->history];
}

int vw_pixel_at(const skd_viewer *v, int x, int y, int *iy, int *ix)
{
	const vw_layout *L = &v->layout;
	int last = v->aff_view == 1 ? VW_P_AFF2 : VW_P_ERROR;
	for (int p = VW_P_INPUT; p <= last; p++) {
		vw_rect r = L->r[p];
		if (x >= r.x && y >= r.y && x < r.x + r.w && y < r.y + r.h) {
			*ix = (int)((int64_t)(x - r.x) * L->img_w / r.w);
			*iy = (int)((int64_t)(y - r.y) * L->img_h / r.h);
			return 1;
		}
	}
	return 0;
}

int vw_entry_at(const skd_viewer *v, int x, int y, int *i, int *j)
{
	const vw_sample *s = vw_current(v);
	if (v->aff_view != 0 || !s || !(s->aff_t || s->aff_s))
		return 0;
	int n = s->gh * s->gw;
	for (int p = VW_P_AFF0; p <= VW_P_AFF2; p++) {
		vw_rect r = v->layout.r[p];
		if (x >= r.x && y >= r.y && x < r.x + r.w && y < r.y + r.h) {
			*j = (int)((int64_t)(x - r.x) * n / r.w);
			*i = (int)((int64_t)(y - r.y) * n / r.h);
			return 1;
		}
	}
	return 0;
}

/* The image pixel whose affinity row is drawn: pinned, else under the mouse, else the centre. */
static void row_pixel(const skd_viewer *v, const vw_sample *s, int *y, int *x)
{
	if (v->pinned) {
		*y = v->pix_y < s->h ? v->pix_y : s->h - 1;
		*x = v->pix_x < s->w ? v->pix_x : s->w - 1;
	} else if (v->cur_x >= 0) {
		*y = v->cur_y < s->h ? v->cur_y : s->h - 1;
		*x = v->cur_x < s->w ? v->cur_x : s->w - 1;
	} else {
		*y = s->h / 2;
		*x = s->w / 2;
	}
}

static void caption(const skd_viewer *v, SDL_Surface *c, vw_rect r, const char *text)
{
	vw_text(c, v->font, r.x, r.y - CAPTION + 1, VW_LEFT, TEXT, "%s", text);
}

static void empty(const skd_viewer *v, SDL_Surface *c, vw_rect r, const char *why)
{
	vw_fill(c, r, EMPTY);
	vw_text(c, v->font_small, r.x + r.w / 2, r.y + r.h / 2 - 7, VW_CENTER, DIM, "%s", why);
}

/* Nearest sampling of an h×w source over the panel rectangle. */
#define FOR_PANEL_PIXELS(r, s)                                                                 \
	for (int py = 0, sy = 0; py < (r).h && (sy = (int)((int64_t)py * (s)->h / (r).h), 1); py++) \
		for (int px = 0, sx = 0;                                                       \
		     px < (r).w && (sx = (int)((int64_t)px * (s)->w / (r).w), 1); px++)

static void rgb_panel(SDL_Surface *c, vw_rect r, const vw_sample *s)
{
	FOR_PANEL_PIXELS(r, s) {
		const uint8_t *p = s->rgb + ((size_t)sy * s->w + sx) * 3;
		vw_put(c, r.x + px, r.y + py, vw_pack(p[0], p[1], p[2]));
	}
}

static void ids_panel(const skd_viewer *v, SDL_Surface *c, vw_rect r, const vw_sample *s,
		      const int32_t *ids)
{
	FOR_PANEL_PIXELS(r, s) vw_put(c, r.x + px, r.y + py,
				      vw_class_colour(v, ids[(size_t)sy * s->w + sx]));
}

/* Wrong pixels red, right ones dark green, ignored ones black. */
static void error_panel(SDL_Surface *c, vw_rect r, const vw_sample *s)
{
	FOR_PANEL_PIXELS(r, s) {
		size_t i = (size_t)sy * s->w + sx;
		uint32_t col = s->label[i] == 255 ? vw_pack(0, 0, 0)
			       : s->student[i] != s->label[i] ? vw_pack(235, 50, 50)
							      : vw_pack(30, 100, 40);
		vw_put(c, r.x + px, r.y + py, col);
	}
}

static void crosshair(SDL_Surface *c, vw_rect r, const vw_sample *s, int y, int x)
{
	int cx = r.x + (int)((2 * (int64_t)x + 1) * r.w / (2 * s->w));
	int cy = r.y + (int)((2 * (int64_t)y + 1) * r.h / (2 * s->h));
	for (int d = 3; d <= 7; d++) {
		uint32_t col = vw_pack(255, 255, 255);
		vw_put(c, cx - d, cy, col);
		vw_put(c, cx + d, cy, col);
		vw_put(c, cx, cy - d, col);
		vw_put(c, cx, cy + d, col);
	}
}

static uint32_t heat(float val, float lo, float hi)
{
	return vw_colormap(((double)val - lo) / ((double)hi - lo));
}

static uint32_t blend(uint32_t a, uint32_t b, double alpha)
{
	int out[3];
	for (int k = 0; k < 3; k++) {
		int x = (a >> (16 - 8 * k)) & 255, y = (b >> (16 - 8 * k)) & 255;
		out[k] = (int)lround(x + alpha * (y - x));
	}
	return vw_pack(out[0], out[1], out[2]);
}

/* which: 0 teacher, 1 student, 2 |teacher - student|. */
static float entry(const vw_sample *s, int which, int64_t k)
{
	const float *t = s->aff_t ? skd_tensor_f32(s->aff_t) : NULL;
	const float *u = s->aff_s ? skd_tensor_f32(s->aff_s) : NULL;
	if (which == 0)
		return t[k];
	if (which == 1)
		return u[k];
	return fabsf(t[k] - u[k]);
}

static int has_matrix(const vw_sample *s, int which)
{
	return which == 0 ? s->aff_t != NULL : which == 1 ? s->aff_s != NULL
							  : s->aff_t && s->aff_s;
}

static void matrix_panel(SDL_Surface *c, vw_rect r, const vw_sample *s, int which, int node)
{
	int64_t n = (int64_t)s->gh * s->gw;
	float lo = which == 2 ? 0 : s->lo, hi = which == 2 ? s->dmax : s->hi;
	for (int py = 0; py < r.h; py++) {
		int64_t i = (int64_t)py * n / r.h;
		for (int px = 0; px < r.w; px++) {
			int64_t j = (int64_t)px * n / r.w;
			vw_put(c, r.x + px, r.y + py, heat(entry(s, which, i * n + j), lo, hi));
		}
	}
	if (node >= 0) { /* ticks beside the selected node's row */
		int y = r.y + (int)((2 * (int64_t)node + 1) * r.h / (2 * n));
		for (int d = 2; d <= 6; d++) {
			vw_put(c, r.x - d, y, TEXT);
			vw_put(c, r.x + r.w - 1 + d, y, TEXT);
		}
	}
}

/* Row `node` of the matrix drawn at every image pixel, over the image with opacity alpha. */
static void row_panel(const skd_viewer *v, SDL_Surface *c, vw_rect r, const vw_sample *s,
		      int which, int node)
{
	int64_t n = (int64_t)s->gh * s->gw;
	float lo = which == 2 ? 0 : s->lo, hi = which == 2 ? s->dmax : s->hi;
	FOR_PANEL_PIXELS(r, s) {
		int j = vw_sample_node(s, sy, sx);
		uint32_t under = vw_pack(0, 0, 0);
		if (s->rgb) {
			const uint8_t *p = s->rgb + ((size_t)sy * s->w + sx) * 3;
			under = vw_pack(p[0], p[1], p[2]);
		}
		uint32_t top = heat(entry(s, which, (int64_t)node * n + j), lo, hi);
		vw_put(c, r.x + px, r.y + py, s->rgb ? blend(under, top, v->alpha) : top);
	}
}

/* A vertical colour ramp from lo (bottom) to hi (top) with five labelled ticks. */
static void colour_bar(const skd_viewer *v, SDL_Surface *c, int x, int y, int h, float lo,
		       float hi, const char *title)
{
	vw_text(c, v->font_small, x, y, VW_LEFT, TEXT, "%s", title);
	int top = y + 16, bar_h = h - 16 - 8, bar_w = 12;
	if (bar_h < 10)
		return;
	for (int py = 0; py < bar_h; py++) {
		uint32_t col = vw_colormap(1.0 - (double)py / (bar_h - 1));
		vw_fill(c, (vw_rect){x, top + py, bar_w, 1}, col);
	}
	vw_outline(c, (vw_rect){x - 1, top - 1, bar_w + 2, bar_h + 2}, DIM);
	for (int k = 0; k <= 4; k++) {
		int py = top + (bar_h - 1) * (4 - k) / 4;
		vw_fill(c, (vw_rect){x + bar_w, py, 3, 1}, TEXT);
		vw_text(c, v->font_small, x + bar_w + 5, py - 7, VW_LEFT, TEXT, "%.3g",
			lo + (hi - lo) * k / 4.0);
	}
}

static void affinity_panels(const skd_viewer *v, SDL_Surface *c, const vw_sample *s)
{
	static const char *const who[3] = {"teacher", "student", "|teacher - student|"};
	const vw_layout *L = &v->layout;
	int y = 0, x = 0, node = -1;
	if (s && (s->aff_t || s->aff_s)) {
		row_pixel(v, s, &y, &x);
		node = vw_sample_node(s, y, x);
	}
	char buf[160];
	for (int k = 0; k < 3; k++) {
		vw_rect r = L->r[VW_P_AFF0 + k];
		vw_rect slot = {r.x, L->r[VW_P_COLORBAR].y, r.w, r.h};
		if (v->aff_view == 0) {
			slot.x = MARGIN + k * (L->pw + MARGIN);
			slot.w = L->pw;
		}
		if (!s || !has_matrix(s, k)) {
			snprintf(buf, sizeof buf, "affinity: %s", who[k]);
			caption(v, c, slot, buf);
			empty(v, c, r, s && (s->aff_t || s->aff_s) ? "(needs both features)"
								   : "(no features)");
			continue;
		}
		if (v->aff_view == 0) {
			snprintf(buf, sizeof buf, k == 2 ? "%s" : "%s affinity", who[k]);
			caption(v, c, slot, buf);
			matrix_panel(c, r, s, k, node);
		} else {
			snprintf(buf, sizeof buf, "%s row at (%d,%d)", who[k], x + 1, y + 1);
			caption(v, c, slot, buf);
			row_panel(v, c, r, s, k, node);
			crosshair(c, r, s, y, x);
		}
	}
	vw_rect cb = L->r[VW_P_COLORBAR];
	if (s && (s->aff_t || s->aff_s)) {
		/* N nodes: beta×beta feature patches (method.md §2 step 2); the grid is in the
		 * status bar when hovering a matrix. */
		snprintf(buf, sizeof buf, "N=%d  β=%d", s->gh * s->gw, s->beta);
		caption(v, c, cb, buf);
		colour_bar(v, c, cb.x, cb.y, cb.h, s->lo, s->hi, "cos");
		if (s->aff_t && s->aff_s)
			colour_bar(v, c, cb.x + cb.w / 2, cb.y, cb.h, 0, s->dmax, "|diff|");
	}
}

static void legend(const skd_viewer *v, SDL_Surface *c, const vw_sample *s)
{
	vw_rect r = v->layout.r[VW_P_LEGEND];
	vw_text(c, v->font, r.x, r.y + 1, VW_LEFT, TEXT, "classes");
	int ids[64], n = 0;
	if (v->ncls > 0) {
		for (int i = 0; i < v->ncls && n < 64; i++)
			ids[n++] = i;
	} else if (s) { /* no names given: the ids present in this sample */
		bool seen[256] = {0};
		const int32_t *maps[3] = {s->label, s->teacher, s->student};
		for (int m = 0; m < 3; m++)
			for (int64_t i = 0; maps[m] && i < (int64_t)s->h * s->w; i++)
				if (maps[m][i] >= 0 && maps[m][i] < 255)
					seen[maps[m][i]] = true;
		for (int i = 0; i < 255 && n < 64; i++)
			if (seen[i])
				ids[n++] = i;
	}
	int per_col = (r.h - CAPTION) / LEGEND_LINE;
	char name[96];
	for (int k = 0; k < n && per_col > 0; k++) {
		int col = k / per_col, line = k % per_col;
		if (col >= r.w / LEGEND_W)
			break;
		int x = r.x + col * LEGEND_W, y = r.y + CAPTION + line * LEGEND_LINE;
		vw_fill(c, (vw_rect){x, y + 2, 12, 12}, vw_class_colour(v, ids[k]));
		vw_outline(c, (vw_rect){x, y + 2, 12, 12}, DIM);
		vw_text(c, v->font_small, x + 17, y + 1, VW_LEFT, TEXT, "%s",
			vw_class_name(v, ids[k], name, sizeof name));
	}
}

static void header(const skd_viewer *v, SDL_Surface *c)
{
	vw_rect r = v->layout.r[VW_P_HEADER];
	vw_fill(c, r, vw_pack(44, 44, 52));
	int x = MARGIN + vw_text(c, v->font, MARGIN, 5, VW_LEFT, TEXT, "%s", v->title);
	if (v->ncurves > 0)
		x += vw_text(c, v->font, x + 16, 5, VW_LEFT, TEXT, "iter %lld", (long long)v->iter) + 16;
	if (v->nsamples > 0)
		x += vw_text(c, v->font, x + 16, 5, VW_LEFT, TEXT, "sample %d/%d%s", v->view + 1,
			     v->nsamples, v->following ? "" : " (n: newer)") + 16;
	if (v->paused)
		vw_text(c, v->font, x + 16, 5, VW_LEFT, vw_pack(255, 190, 60), "PAUSED");
	vw_text(c, v->font_small, r.w - MARGIN, 7, VW_RIGHT, DIM,
		"space pause   n/p sample   tab %s   +/- alpha %.2f   l %s   click pin   s save   "
		"q close", v->aff_view ? "rows" : "matrices", v->alpha,
		v->log_scale ? "log" : "linear");
}

static void status_bar(const skd_viewer *v, SDL_Surface *c, const vw_sample *s)
{
	vw_rect r = v->layout.r[VW_P_STATUS];
	vw_fill(c, r, vw_pack(44, 44, 52));
	char text[400] = "", a[96], b[96], d[96];
	int i, j;
	if (s && v->hover_node_i >= 0 && (s->aff_t || s->aff_s)) {
		i = v->hover_node_i;
		j = v->hover_node_j;
		int64_t k = (int64_t)i * s->gh * s->gw + j;
		snprintf(a, sizeof a, s->aff_t ? "%.4f" : "-", s->aff_t ? entry(s, 0, k) : 0.0f);
		snprintf(b, sizeof b, s->aff_s ? "%.4f" : "-", s->aff_s ? entry(s, 1, k) : 0.0f);
		snprintf(text, sizeof text, "a(%d,%d) on the %dx%d node grid:   teacher %s   "
			 "student %s", i + 1, j + 1, s->gh, s->gw, a, b);
	} else if (s && v->cur_x >= 0 && v->cur_x < s->w && v->cur_y < s->h) {
		size_t p = (size_t)v->cur_y * s->w + v->cur_x;
		snprintf(text, sizeof text, "x=%d y=%d   GT: %s   teacher: %s   student: %s",
			 v->cur_x + 1, v->cur_y + 1,
			 s->label ? vw_class_name(v, s->label[p], a, sizeof a) : "-",
			 s->teacher ? vw_class_name(v, s->teacher[p], b, sizeof b) : "-",
			 s->student ? vw_class_name(v, s->student[p], d, sizeof d) : "-");
	} else {
		snprintf(text, sizeof text, "%s", s ? "hover a panel for pixel classes"
						    : "waiting for v:show{...}");
	}
	vw_text(c, v->font, MARGIN, r.y + 3, VW_LEFT, TEXT, "%s", text);
	if (v->message[0])
		vw_text(c, v->font, r.w - MARGIN, r.y + 3, VW_RIGHT, vw_pack(140, 220, 140), "%s",
			v->message);
}

static void image_panels(const skd_viewer *v, SDL_Surface *c, const vw_sample *s)
{
	const vw_layout *L = &v->layout;
	char buf[96];
	caption(v, c, L->r[VW_P_INPUT], "input");
	caption(v, c, L->r[VW_P_LABEL], "ground truth");
	caption(v, c, L->r[VW_P_TEACHER], "teacher");
	caption(v, c, L->r[VW_P_STUDENT], "student");
	if (s && s->error_rate >= 0)
		snprintf(buf, sizeof buf, "student error %.1f%%", 100 * s->error_rate);
	else
		snprintf(buf, sizeof buf, "student error");
	caption(v, c, L->r[VW_P_ERROR], buf);
	if (s && s->rgb)
		rgb_panel(c, L->r[VW_P_INPUT], s);
	else
		empty(v, c, L->r[VW_P_INPUT], "(no image)");
	const int32_t *maps[3] = {s ? s->label : NULL, s ? s->teacher : NULL,
				  s ? s->student : NULL};
	for (int k = 0; k < 3; k++) {
		if (maps[k])
			ids_panel(v, c, L->r[VW_P_LABEL + k], s, maps[k]);
		else
			empty(v, c, L->r[VW_P_LABEL + k], "(none)");
	}
	if (s && s->label && s->student)
		error_panel(c, L->r[VW_P_ERROR], s);
	else
		empty(v, c, L->r[VW_P_ERROR], "(needs label and student)");
	if (s && (v->pinned || v->cur_x >= 0)) {
		int y, x;
		row_pixel(v, s, &y, &x);
		for (int p = VW_P_INPUT; p <= VW_P_ERROR; p++)
			crosshair(c, L->r[p], s, y, x);
	}
}

int vw_render(skd_viewer *v)
{
	const vw_sample *s = vw_current(v);
	vw_layout_compute(v, s ? s->h : 0, s ? s->w : 0, &v->layout);
	vw_layout *L = &v->layout;
	if (!v->canvas || v->canvas->w != L->width || v->canvas->h != L->height) {
		if (v->canvas)
			SDL_FreeSurface(v->canvas);
		v->canvas = SDL_CreateRGBSurfaceWithFormat(0, L->width, L->height, 32,
							   SDL_PIXELFORMAT_XRGB8888);
		if (!v->canvas)
			return skd_error("viewer: cannot make a %dx%d canvas: %s", L->width,
					 L->height, SDL_GetError());
	}
	SDL_Surface *c = v->canvas; /* a plain software surface: no locking needed */
	vw_fill(c, (vw_rect){0, 0, c->w, c->h}, BG);
	header(v, c);
	image_panels(v, c, s);
	affinity_panels(v, c, s);
	legend(v, c, s);
	vw_plot_losses(v, c, L->r[VW_P_LOSSES]);
	status_bar(v, c, s);
	return SKD_OK;
}
