/* vw_internal.h — what the viewer's files share: the frame state behind the mutex (samples,
 * loss curves, UI state), the layout, and the drawing helpers. Not part of the public API.
 *
 *   sample.c   tensors -> display data (class maps, affinity via skd_matmul)
 *   draw.c     canvas primitives, text (SDL2_ttf), colour maps, class palettes, fonts
 *   panels.c   layout and the frame: image panels, legend, affinity, status bar
 *   plot.c     loss curves
 *   viewer.c   the public API, event handling, PNG frames
 *   window.c   the window thread (SDL window, renderer, event loop)
 */
#ifndef SKD_VW_INTERNAL_H
#define SKD_VW_INTERNAL_H

#include <pthread.h>
#include <SDL.h>
#include <SDL_ttf.h>
#include "viewer.h"

#define VW_MAX_CURVES 16
#define VW_MAX_NODES_CAP 4096

/* One shown sample, ready to draw: everything at the display size h×w. */
typedef struct vw_sample {
	int h, w;
	uint8_t *rgb;                       /* h*w*3, or NULL */
	int32_t *label, *teacher, *student; /* h*w class ids, or NULL */
	double error_rate;                  /* student vs label, non-ignored pixels; < 0: n/a */
	/* Affinity (method.md §2): nodes are beta×beta patches of the fh×fw feature map that sets
	 * the grid (the student's if given), gh×gw = N of them. */
	int fh, fw, beta, gh, gw;
	skd_tensor *aff_t, *aff_s;          /* N×N cosine similarities, or NULL */
	float lo, hi;                       /* shared colour range of teacher and student */
	float dmax;                         /* |teacher - student| range is [0, dmax] */
	int64_t iter;
} vw_sample;

typedef struct vw_curve {
	char name[48];
	int64_t n, cap;
	double *x, *y;
} vw_curve;

typedef struct vw_rect {
	int x, y, w, h;
} vw_rect;

enum {
	VW_P_HEADER, VW_P_INPUT, VW_P_LABEL, VW_P_TEACHER, VW_P_STUDENT, VW_P_ERROR,
	VW_P_AFF0, VW_P_AFF1, VW_P_AFF2, VW_P_COLORBAR, VW_P_LEGEND, VW_P_LOSSES, VW_P_STATUS,
	VW_NPANELS
};
extern const char *const vw_panel_names[VW_NPANELS];

typedef struct vw_layout {
	int width, height;  /* canvas */
	int img_h, img_w;   /* sample size the layout was made for */
	int pw, ph;         /* image panel size */
	vw_rect r[VW_NPANELS];
} vw_layout;

struct skd_viewer {
	pthread_mutex_t lock; /* guards everything below "guarded" */
	pthread_cond_t cond;  /* window started, event handled, unpaused, closed */

	/* fixed at open */
	char title[128];
	double scale;
	int ncls;
	char **names;
	int npal;
	uint8_t (*pal)[3];
	int history, max_nodes;
	skd_viewer_mode mode;
	char frame_dir[1024], shot_dir[1024];
	TTF_Font *font, *font_small;
	bool ttf_init;

	/* guarded */
	vw_sample **ring;   /* history slots; ring[(first + k) % history], k < nsamples */
	int first, nsamples;
	int view;           /* k of the sample on screen */
	bool following;     /* new samples take the view (false after p until n reaches the end) */
	vw_curve curves[VW_MAX_CURVES];
	int ncurves;
	int64_t iter;
	bool open, paused, log_scale, pinned, dirty;
	int aff_view;
	double alpha;
	int pix_x, pix_y;   /* pinned image pixel */
	int cur_x, cur_y;   /* image pixel under the mouse, -1: none */
	int hover_node_i, hover_node_j; /* matrix entry under the mouse, -1: none */
	char message[160];
	vw_layout layout;
	SDL_Surface *canvas;
	int64_t frames, shots;

	/* window thread (window.c) */
	pthread_t thread;
	bool has_thread, quit;
	int start_status;   /* 0 pending, 1 running, -1 failed (start_error says why) */
	char start_error[256];
	uint32_t sync_event;
	uint64_t sync_sent, sync_done;
	int sync_rc;        /* result of the last acknowledged request (grab) */
	char sync_error[256];
};

/* sample.c */
vw_sample *vw_sample_make(const skd_viewer *v, const skd_viewer_input *in); /* NULL + error */
void vw_sample_free(vw_sample *s);
/* Node index of image pixel (y, x), or -1 without affinity. */
int vw_sample_node(const vw_sample *s, int y, int x);

/* draw.c: the canvas is an SDL_PIXELFORMAT_XRGB8888 surface */
static inline uint32_t vw_pack(int r, int g, int b)
{
	return 0xff000000u | (uint32_t)r << 16 | (uint32_t)g << 8 | (uint32_t)b;
}
void vw_fill(SDL_Surface *c, vw_rect r, uint32_t colour);
void vw_outline(SDL_Surface *c, vw_rect r, uint32_t colour);
void vw_line(SDL_Surface *c, int x0, int y0, int x1, int y1, uint32_t colour);
void vw_put(SDL_Surface *c, int x, int y, uint32_t colour);
enum { VW_LEFT = 0, VW_CENTER = 1, VW_RIGHT = 2 };
/* Draws text with its top at y, aligned at x; returns its width. */
int vw_text(SDL_Surface *c, TTF_Font *f, int x, int y, int align, uint32_t colour,
	    const char *fmt, ...) __attribute__((format(printf, 7, 8)));
int vw_text_width(TTF_Font *f, const char *s);
uint32_t vw_colormap(double t); /* t in [0,1] -> viridis-like colour */
uint32_t vw_class_colour(const skd_viewer *v, int32_t id);
const char *vw_class_name(const skd_viewer *v, int32_t id, char *buf, size_t len);
/* Opens the fonts (SKD_VIEWER_FONT, fc-match DejaVuSans, the Debian path); SKD_ERR if none. */
int vw_fonts_open(skd_viewer *v);
void vw_fonts_close(skd_viewer *v);

/* panels.c (lock held) */
void vw_layout_compute(const skd_viewer *v, int img_h, int img_w, vw_layout *out);
/* Renders the current state into v->canvas (re-made when the layout changes). */
int vw_render(skd_viewer *v);
vw_sample *vw_current(const skd_viewer *v);
/* Image pixel under canvas point (x, y): 1 with *iy, *ix set, or 0 outside image panels. */
int vw_pixel_at(const skd_viewer *v, int x, int y, int *iy, int *ix);
/* Matrix entry under canvas point: 1 with *i, *j set, or 0. */
int vw_entry_at(const skd_viewer *v, int x, int y, int *i, int *j);

/* plot.c */
void vw_plot_losses(const skd_viewer *v, SDL_Surface *c, vw_rect r);
int vw_curves_append(skd_viewer *v, int n, const char *const *names, const double *values,
		     int64_t iter);
void vw_curves_free(skd_viewer *v);

/* viewer.c */
enum { VW_ACT_NONE = 0, VW_ACT_SAVE = 1, VW_ACT_CLOSE = 2 };
/* Applies one event to the UI state (lock held); returns what the caller must do. */
int vw_handle_event(skd_viewer *v, const SDL_Event *e);
/* Renders and writes a PNG (lock held). */
int vw_write_frame_locked(skd_viewer *v, const char *path);
/* Key s: the next screenshot file (lock held). */
int vw_screenshot_locked(skd_viewer *v);

/* window.c */
int vw_window_start(skd_viewer *v);   /* SKD_ERR (message set) when no window can be made */
void vw_window_stop(skd_viewer *v);   /* asks the thread to close and joins it */
/* Pushes e and waits until the window thread has handled it. */
int vw_window_send(skd_viewer *v, SDL_Event *e);

#endif
