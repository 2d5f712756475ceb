/* viewer.h — the live inspection window (design.md, "viewer/"): segmentation maps, the N×N
 * affinity of method.md §2 and loss curves, in one window or as numbered PNG frames.
 *
 * The viewer reads tensors and knows no training. A windowed viewer owns one thread that owns
 * the SDL window, its renderer and its event loop; show() copies what it needs out of the
 * tensors into the viewer's frame state (under a mutex) and returns, so a training step never
 * waits for the screen, and the window stays live while a step computes or a REPL waits for
 * input. Closing the window never stops the caller: show() and poll() on a closed viewer do
 * nothing and return 0. Headless (SKD_VIEWER=png, no display, or SDL video failing) the same
 * renderer draws into an SDL software surface and every show() writes the next numbered PNG.
 *
 * Coordinates here are 0-based pixels; the Lua binding converts to and from 1-based ones.
 */
#ifndef SKD_VIEWER_H
#define SKD_VIEWER_H

#include <stdbool.h>
#include <stdint.h>
#include "tensor.h"

typedef struct skd_viewer skd_viewer;

typedef enum { SKD_VIEWER_AUTO = 0, SKD_VIEWER_WINDOW, SKD_VIEWER_PNG } skd_viewer_mode;

typedef struct skd_viewer_options {
	const char *title;              /* window title and header; NULL: "skd" */
	double scale;                   /* image panel magnification; <= 0: automatic (~256 px) */
	int num_classes;                /* entries of class_names; 0: names are the ids */
	const char *const *class_names;
	const uint8_t (*palette)[3];    /* npalette RGB colours, class id order; NULL: default */
	int npalette;
	skd_viewer_mode mode;           /* AUTO: $SKD_VIEWER=png forces PNG, else a window if
	                                 * SDL video starts, else PNG */
	const char *dir;                /* PNG frames go to dir/frames; NULL: $SKD_VIEWER_DIR,
	                                 * else ./frames. Screenshots (key s) go to dir or "." */
	int history;                    /* samples kept for n/p; <= 0: 8 */
	int max_nodes;                  /* affinity node cap; <= 0: 1024; at most 4096 */
} skd_viewer_options;

/* What one show() brings. Every tensor is borrowed and may be NULL. A batch (leading N) shows
 * element `index`.
 *   image    3×H×W or 1×H×W float: values within [0,1] are shown as they are, anything else
 *            is min-max scaled per image (so normalised network inputs display sensibly)
 *   label    H×W class ids (int32, or float truncated); 255 (ignore) is drawn black
 *   teacher, student  C×h×w float logits (argmax over C is taken) or h×w class ids; both are
 *            resized (nearest) to the image size
 *   feat_teacher, feat_student  C×h×w features for the affinity panel
 *   losses   term names and values, appended to the curves at iteration `iter`
 *            (iter < 0: one more than the last) */
typedef struct skd_viewer_input {
	skd_tensor *image, *label, *teacher, *student, *feat_teacher, *feat_student;
	int64_t index;
	int nlosses;
	const char *const *loss_names;
	const double *loss_values;
	int64_t iter;
} skd_viewer_input;

/* A panel's place on the canvas, for tests and for mapping clicks. */
typedef struct skd_viewer_rect {
	const char *name;
	int x, y, w, h;
} skd_viewer_rect;

/* Synthetic input for tests (the binding's v:inject). In window mode it goes through SDL's
 * event queue and the call returns once the viewer thread has handled it. */
typedef enum { SKD_VIEWER_EV_KEY, SKD_VIEWER_EV_MOTION, SKD_VIEWER_EV_CLICK,
	       SKD_VIEWER_EV_CLOSE } skd_viewer_event_kind;
typedef struct skd_viewer_event {
	skd_viewer_event_kind kind;
	const char *key;                /* KEY: "space", "n", "p", "tab", "+", "-", "l", "s", "q" */
	int x, y;                       /* MOTION, CLICK: canvas pixel */
} skd_viewer_event;

/* What the user has set with keys and mouse (for tests and scripts). */
typedef struct skd_viewer_ui_state {
	bool open, paused, log_scale, pinned;
	int affinity_view;              /* 0: N×N matrices, 1: rows over the image */
	double alpha;                   /* overlay opacity of affinity rows */
	int sample, nsamples;           /* sample on view (0 = oldest kept), samples kept */
	int pixel_x, pixel_y;           /* image pixel whose affinity row is drawn; -1: none */
	int cursor_x, cursor_y;         /* image pixel under the mouse; -1: none */
	int64_t frames_written;         /* PNG mode: frames written so far */
	int64_t iter;                   /* last loss iteration */
	char message[160];              /* last status message (e.g. "saved ...") */
} skd_viewer_ui_state;

/* Class names and palette of a data set: "camvid" (README's 12 ids, 11 = Unlabelled) or
 * "cityscapes" (19 train ids). Returns the class count, 0 for an unknown name. */
int skd_viewer_preset(const char *name, const char *const **names, const uint8_t (**palette)[3]);

/* New viewer, or NULL with an error (e.g. no font). A windowed viewer replaces (closes) a
 * window opened earlier by another viewer: one SDL window per process. */
skd_viewer *skd_viewer_open(const skd_viewer_options *opt);
/* 1: shown; 0: the viewer is closed (nothing done); SKD_ERR: bad input (message set). */
int skd_viewer_show(skd_viewer *v, const skd_viewer_input *in);
/* 1 while open, 0 once closed. Cheap: the window thread does the event handling. With
 * timeout > 0 it first waits up to that many seconds, returning early when the UI state changes
 * (a key, a click, the window closing), so `while v:paused() do v:poll(0.05) end` idles. */
int skd_viewer_poll(skd_viewer *v, double timeout);
bool skd_viewer_paused(skd_viewer *v);
/* Blocks while the viewer is paused and open, at most timeout seconds (< 0: no limit).
 * Returns 1 if open afterwards, 0 if closed. */
int skd_viewer_wait(skd_viewer *v, double timeout);
/* Writes the current frame as an RGB PNG (rendered afresh: same pixels in every mode). */
int skd_viewer_save(skd_viewer *v, const char *path);
int skd_viewer_inject(skd_viewer *v, const skd_viewer_event *ev);
/* Window mode, for tests: renders, presents, reads the window's pixels back from the renderer
 * and writes them as a PNG (what is on screen, not a fresh render). SKD_ERR when closed. */
int skd_viewer_grab(skd_viewer *v, const char *path);
/* Pins the affinity row to image pixel (x, y); x < 0 unpins (the row follows the mouse). */
void skd_viewer_pick(skd_viewer *v, int x, int y);
/* The sample on view's N×N affinities as new references (NULL where absent), its node grid
 * and patch size; for the REPL and tests. */
void skd_viewer_affinity(skd_viewer *v, skd_tensor **teacher, skd_tensor **student, int *grid_h,
			 int *grid_w, int *beta);
/* Up to max rects of the current layout; returns their count. */
int skd_viewer_layout(skd_viewer *v, skd_viewer_rect *out, int max);
void skd_viewer_ui(skd_viewer *v, skd_viewer_ui_state *out);
skd_viewer_mode skd_viewer_get_mode(const skd_viewer *v);
const char *skd_viewer_frame_dir(const skd_viewer *v);
/* Closes the window (or stops writing frames); the handle stays valid. Idempotent. */
void skd_viewer_close(skd_viewer *v);
/* Closes and frees. NULL is fine. */
void skd_viewer_free(skd_viewer *v);

#endif
