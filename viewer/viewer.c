/* viewer.c — the public viewer API (viewer.h): open, show, save, close; what keys and the
 * mouse do (one handler for real and injected events); PNG frames and screenshots.
 *
 * Threads: the caller (Lua) and, in window mode, the window thread (window.c). Everything in
 * the frame state is read and written with v->lock held; tensors are touched on the caller's
 * thread only (vw_sample_make runs before the lock is taken). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "image.h"
#include "vw_internal.h"

/* One SDL window per process: the window thread owns SDL's video subsystem. */
static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static skd_viewer *active_window;

static int mkdir_p(const char *dir)
{
	char buf[1024];
	snprintf(buf, sizeof buf, "%s", dir);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0777) && errno != EEXIST)
			return skd_error("viewer: cannot make directory '%s': %s", buf, strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, 0777) && errno != EEXIST)
		return skd_error("viewer: cannot make directory '%s': %s", buf, strerror(errno));
	return SKD_OK;
}

static int copy_options(skd_viewer *v, const skd_viewer_options *o)
{
	snprintf(v->title, sizeof v->title, "%s", o->title ? o->title : "skd");
	v->scale = o->scale;
	v->history = o->history > 0 ? (o->history < 1024 ? o->history : 1024) : 8;
	v->max_nodes = o->max_nodes > 0 ? o->max_nodes : 1024;
	if (v->max_nodes > VW_MAX_NODES_CAP)
		v->max_nodes = VW_MAX_NODES_CAP;
	if (o->num_classes > 0) {
		v->names = skd_calloc((size_t)o->num_classes, sizeof *v->names);
		if (!v->names)
			return SKD_ERR;
		v->ncls = o->num_classes;
		for (int i = 0; i < v->ncls; i++)
			if (o->class_names && o->class_names[i] && !(v->names[i] = strdup(o->class_names[i])))
				return skd_error("viewer.open: out of memory");
	}
	if (o->palette && o->npalette > 0) {
		v->pal = skd_malloc((size_t)o->npalette * sizeof *v->pal);
		if (!v->pal)
			return SKD_ERR;
		memcpy(v->pal, o->palette, (size_t)o->npalette * sizeof *v->pal);
		v->npal = o->npalette;
	}
	const char *env_dir = getenv("SKD_VIEWER_DIR");
	if (o->dir && *o->dir) {
		snprintf(v->frame_dir, sizeof v->frame_dir, "%s/frames", o->dir);
		snprintf(v->shot_dir, sizeof v->shot_dir, "%s", o->dir);
	} else {
		snprintf(v->frame_dir, sizeof v->frame_dir, "%s", env_dir && *env_dir ? env_dir : "frames");
		snprintf(v->shot_dir, sizeof v->shot_dir, "%s", env_dir && *env_dir ? env_dir : ".");
	}
	return SKD_OK;
}

skd_viewer *skd_viewer_open(const skd_viewer_options *opt)
{
	skd_viewer_options none = {0};
	const skd_viewer_options *o = opt ? opt : &none;
	skd_viewer *v = skd_calloc(1, sizeof *v);
	if (!v)
		return NULL;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	v->open = v->following = v->dirty = true;
	v->alpha = 0.6;
	v->cur_x = v->cur_y = v->hover_node_i = v->hover_node_j = -1;
	if (copy_options(v, o) || vw_fonts_open(v) ||
	    !(v->ring = skd_calloc((size_t)v->history, sizeof *v->ring))) {
		skd_viewer_free(v);
		return NULL;
	}
	v->mode = o->mode;
	const char *env = getenv("SKD_VIEWER");
	if (v->mode == SKD_VIEWER_AUTO && env && !strcmp(env, "png"))
		v->mode = SKD_VIEWER_PNG;
	if (v->mode == SKD_VIEWER_AUTO && !getenv("DISPLAY") && !getenv("WAYLAND_DISPLAY"))
		v->mode = SKD_VIEWER_PNG;
	if (v->mode == SKD_VIEWER_PNG)
		return v;
	pthread_mutex_lock(&active_lock);
	skd_viewer *previous = active_window;
	active_window = NULL;
	pthread_mutex_unlock(&active_lock);
	if (previous)
		skd_viewer_close(previous);
	if (vw_window_start(v) == SKD_OK) {
		v->mode = SKD_VIEWER_WINDOW;
		pthread_mutex_lock(&active_lock);
		active_window = v;
		pthread_mutex_unlock(&active_lock);
		return v;
	}
	if (v->mode == SKD_VIEWER_WINDOW) { /* asked for explicitly: say why not */
		skd_viewer_free(v);
		return NULL;
	}
	fprintf(stderr, "viewer: no window (%s); writing PNG frames to %s/\n", skd_last_error(),
		v->frame_dir);
	v->mode = SKD_VIEWER_PNG;
	return v;
}

static int write_rgb_png(const char *path, SDL_Surface *c)
{
	uint8_t *rgb = skd_malloc((size_t)c->w * c->h * 3);
	if (!rgb)
		return SKD_ERR;
	for (int y = 0; y < c->h; y++) {
		const uint32_t *row = (const uint32_t *)((const uint8_t *)c->pixels + (size_t)y * c->pitch);
		for (int x = 0; x < c->w; x++) {
			uint8_t *p = rgb + ((size_t)y * c->w + x) * 3;
			p[0] = (row[x] >> 16) & 255;
			p[1] = (row[x] >> 8) & 255;
			p[2] = row[x] & 255;
		}
	}
	int rc = skd_image_write_png(path, rgb, c->w, c->h, 3);
	free(rgb);
	return rc;
}

int vw_write_frame_locked(skd_viewer *v, const char *path)
{
	if (vw_render(v))
		return SKD_ERR;
	return write_rgb_png(path, v->canvas);
}

int vw_screenshot_locked(skd_viewer *v)
{
	char path[1200];
	if (mkdir_p(v->shot_dir))
		return SKD_ERR;
	do
		snprintf(path, sizeof path, "%s/skd_screenshot_%04lld.png", v->shot_dir,
			 (long long)++v->shots);
	while (access(path, F_OK) == 0);
	int rc = vw_write_frame_locked(v, path);
	snprintf(v->message, sizeof v->message, rc ? "screenshot failed: %s" : "saved %s",
		 rc ? skd_last_error() : path);
	v->dirty = true;
	return rc;
}

int skd_viewer_show(skd_viewer *v, const skd_viewer_input *in)
{
	pthread_mutex_lock(&v->lock);
	bool open = v->open;
	pthread_mutex_unlock(&v->lock);
	if (!open)
		return 0;
	vw_sample *s = NULL;
	if (in->image || in->label || in->teacher || in->student || in->feat_teacher ||
	    in->feat_student) {
		s = vw_sample_make(v, in);
		if (!s)
			return SKD_ERR;
	}
	int rc = SKD_OK;
	pthread_mutex_lock(&v->lock);
	if (!v->open) {
		pthread_mutex_unlock(&v->lock);
		vw_sample_free(s);
		return 0;
	}
	if (in->nlosses > 0) {
		int64_t it = in->iter >= 0 ? in->iter : v->iter + 1;
		rc = vw_curves_append(v, in->nlosses, in->loss_names, in->loss_values, it);
		v->iter = it;
	}
	if (s) {
		s->iter = v->iter;
		if (v->nsamples == v->history) { /* drop the oldest */
			vw_sample_free(v->ring[v->first]);
			v->ring[v->first] = NULL;
			v->first = (v->first + 1) % v->history;
			v->nsamples--;
			if (!v->following && v->view > 0)
				v->view--;
		}
		v->ring[(v->first + v->nsamples) % v->history] = s;
		v->nsamples++;
		if (v->following)
			v->view = v->nsamples - 1;
	}
	v->dirty = true;
	if (rc == SKD_OK && v->mode == SKD_VIEWER_PNG) {
		char path[1200];
		snprintf(path, sizeof path, "%s/frame_%06lld.png", v->frame_dir,
			 (long long)v->frames + 1);
		rc = mkdir_p(v->frame_dir);
		if (rc == SKD_OK)
			rc = vw_write_frame_locked(v, path);
		if (rc == SKD_OK)
			v->frames++;
	} else if (v->has_thread) {
		SDL_Event wake = {.type = v->sync_event};
		SDL_PushEvent(&wake);
	}
	pthread_mutex_unlock(&v->lock);
	return rc == SKD_OK ? 1 : SKD_ERR;
}

static struct timespec deadline(double seconds)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	double end = t.tv_sec + t.tv_nsec * 1e-9 + seconds;
	t.tv_sec = (time_t)end;
	t.tv_nsec = (long)((end - floor(end)) * 1e9);
	return t;
}

int skd_viewer_poll(skd_viewer *v, double timeout)
{
	struct timespec until = deadline(timeout > 0 ? timeout : 0);
	pthread_mutex_lock(&v->lock);
	if (timeout > 0 && v->open)
		pthread_cond_timedwait(&v->cond, &v->lock, &until);
	int open = v->open;
	pthread_mutex_unlock(&v->lock);
	return open;
}

bool skd_viewer_paused(skd_viewer *v)
{
	pthread_mutex_lock(&v->lock);
	bool p = v->paused && v->open;
	pthread_mutex_unlock(&v->lock);
	return p;
}

int skd_viewer_wait(skd_viewer *v, double timeout)
{
	struct timespec until = deadline(timeout >= 0 ? timeout : 0);
	pthread_mutex_lock(&v->lock);
	/* Only a window can unpause; a headless viewer never blocks. */
	while (v->paused && v->open && v->has_thread) {
		if (timeout < 0)
			pthread_cond_wait(&v->cond, &v->lock);
		else if (pthread_cond_timedwait(&v->cond, &v->lock, &until) == ETIMEDOUT)
			break;
	}
	int open = v->open;
	pthread_mutex_unlock(&v->lock);
	return open;
}

int skd_viewer_save(skd_viewer *v, const char *path)
{
	pthread_mutex_lock(&v->lock);
	int rc = vw_write_frame_locked(v, path);
	pthread_mutex_unlock(&v->lock);
	return rc;
}

/* The layout for the sample on view (events may arrive before the first render). */
static void refresh_layout(skd_viewer *v)
{
	const vw_sample *s = vw_current(v);
	vw_layout_compute(v, s ? s->h : 0, s ? s->w : 0, &v->layout);
}

/* Image pixel at the centre of node i (so a click on a matrix row picks that node). */
static void node_centre(const vw_sample *s, int i, int *y, int *x)
{
	int r = i / s->gw, c = i % s->gw;
	int fy = r * s->beta + s->beta / 2, fx = c * s->beta + s->beta / 2;
	fy = fy < s->fh ? fy : s->fh - 1;
	fx = fx < s->fw ? fx : s->fw - 1;
	*y = (int)(((int64_t)fy * s->h + s->h / 2) / s->fh);
	*x = (int)(((int64_t)fx * s->w + s->w / 2) / s->fw);
}

static void key(skd_viewer *v, SDL_Keycode k, int *act)
{
	switch (k) {
	case SDLK_SPACE:
		v->paused = !v->paused;
		snprintf(v->message, sizeof v->message, "%s", v->paused ? "paused" : "resumed");
		pthread_cond_broadcast(&v->cond);
		break;
	case SDLK_n:
		if (v->view < v->nsamples - 1)
			v->view++;
		v->following = v->view >= v->nsamples - 1;
		break;
	case SDLK_p:
		if (v->view > 0)
			v->view--;
		v->following = v->view >= v->nsamples - 1;
		break;
	case SDLK_TAB:
		v->aff_view = (v->aff_view + 1) % 2;
		break;
	case SDLK_PLUS: case SDLK_EQUALS: case SDLK_KP_PLUS:
		v->alpha = fmin(1.0, round(v->alpha * 10 + 1) / 10);
		break;
	case SDLK_MINUS: case SDLK_KP_MINUS:
		v->alpha = fmax(0.0, round(v->alpha * 10 - 1) / 10);
		break;
	case SDLK_l:
		v->log_scale = !v->log_scale;
		break;
	case SDLK_u:
		v->pinned = false;
		break;
	case SDLK_s:
		*act |= VW_ACT_SAVE;
		break;
	case SDLK_q: case SDLK_ESCAPE:
		*act |= VW_ACT_CLOSE;
		break;
	default:
		return;
	}
	v->dirty = true;
}

int vw_handle_event(skd_viewer *v, const SDL_Event *e)
{
	int act = VW_ACT_NONE, y, x, i, j;
	const vw_sample *s = vw_current(v);
	switch (e->type) {
	case SDL_KEYDOWN:
		key(v, e->key.keysym.sym, &act);
		break;
	case SDL_MOUSEMOTION:
		refresh_layout(v);
		v->cur_x = v->cur_y = v->hover_node_i = v->hover_node_j = -1;
		if (s && vw_pixel_at(v, e->motion.x, e->motion.y, &y, &x)) {
			v->cur_x = x;
			v->cur_y = y;
		} else if (vw_entry_at(v, e->motion.x, e->motion.y, &i, &j)) {
			v->hover_node_i = i;
			v->hover_node_j = j;
		}
		v->dirty = true;
		break;
	case SDL_MOUSEBUTTONDOWN:
		refresh_layout(v);
		if (s && vw_pixel_at(v, e->button.x, e->button.y, &y, &x)) {
			v->pinned = true;
			v->pix_x = x;
			v->pix_y = y;
		} else if (s && vw_entry_at(v, e->button.x, e->button.y, &i, &j)) {
			v->pinned = true;
			node_centre(s, i, &v->pix_y, &v->pix_x);
		}
		v->dirty = true;
		break;
	case SDL_WINDOWEVENT:
		if (e->window.event == SDL_WINDOWEVENT_CLOSE)
			act |= VW_ACT_CLOSE;
		else if (e->window.event == SDL_WINDOWEVENT_LEAVE)
			v->cur_x = v->cur_y = v->hover_node_i = v->hover_node_j = -1;
		v->dirty = true;
		break;
	case SDL_QUIT:
		act |= VW_ACT_CLOSE;
		break;
	default:
		return act;
	}
	pthread_cond_broadcast(&v->cond); /* wakes poll(seconds) and wait() */
	return act;
}

static int key_code(const char *name, SDL_Keycode *k)
{
	static const struct { const char *name; SDL_Keycode code; } names[] = {
		{"space", SDLK_SPACE}, {"tab", SDLK_TAB}, {"+", SDLK_PLUS}, {"plus", SDLK_PLUS},
		{"=", SDLK_EQUALS}, {"-", SDLK_MINUS}, {"minus", SDLK_MINUS},
		{"escape", SDLK_ESCAPE},
	};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (!strcmp(name, names[i].name)) {
			*k = names[i].code;
			return SKD_OK;
		}
	if (name[0] >= 'a' && name[0] <= 'z' && !name[1]) {
		*k = SDLK_a + (name[0] - 'a');
		return SKD_OK;
	}
	return skd_error("viewer.inject: unknown key '%s' (space, tab, +, -, escape or a letter)",
			 name);
}

int skd_viewer_inject(skd_viewer *v, const skd_viewer_event *ev)
{
	SDL_Event e;
	memset(&e, 0, sizeof e);
	switch (ev->kind) {
	case SKD_VIEWER_EV_KEY:
		e.type = SDL_KEYDOWN;
		e.key.state = SDL_PRESSED;
		if (!ev->key || key_code(ev->key, &e.key.keysym.sym))
			return ev->key ? SKD_ERR : skd_error("viewer.inject: key expects a name");
		break;
	case SKD_VIEWER_EV_MOTION:
		e.type = SDL_MOUSEMOTION;
		e.motion.x = ev->x;
		e.motion.y = ev->y;
		break;
	case SKD_VIEWER_EV_CLICK:
		e.type = SDL_MOUSEBUTTONDOWN;
		e.button.button = SDL_BUTTON_LEFT;
		e.button.state = SDL_PRESSED;
		e.button.clicks = 1;
		e.button.x = ev->x;
		e.button.y = ev->y;
		break;
	case SKD_VIEWER_EV_CLOSE:
		e.type = SDL_WINDOWEVENT;
		e.window.event = SDL_WINDOWEVENT_CLOSE;
		break;
	}
	pthread_mutex_lock(&v->lock);
	bool via_window = v->has_thread && v->open;
	pthread_mutex_unlock(&v->lock);
	if (via_window)
		return vw_window_send(v, &e);
	pthread_mutex_lock(&v->lock);
	int rc = SKD_OK;
	if (v->open) {
		int act = vw_handle_event(v, &e);
		if (act & VW_ACT_SAVE)
			rc = vw_screenshot_locked(v);
		if (act & VW_ACT_CLOSE) {
			v->open = false;
			pthread_cond_broadcast(&v->cond);
		}
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

void skd_viewer_pick(skd_viewer *v, int x, int y)
{
	pthread_mutex_lock(&v->lock);
	v->pinned = x >= 0 && y >= 0;
	v->pix_x = x;
	v->pix_y = y;
	v->dirty = true;
	pthread_mutex_unlock(&v->lock);
}

void skd_viewer_affinity(skd_viewer *v, skd_tensor **teacher, skd_tensor **student, int *grid_h,
			 int *grid_w, int *beta)
{
	pthread_mutex_lock(&v->lock);
	const vw_sample *s = vw_current(v);
	*teacher = s && s->aff_t ? skd_tensor_retain(s->aff_t) : NULL;
	*student = s && s->aff_s ? skd_tensor_retain(s->aff_s) : NULL;
	*grid_h = s ? s->gh : 0;
	*grid_w = s ? s->gw : 0;
	*beta = s ? s->beta : 0;
	pthread_mutex_unlock(&v->lock);
}

int skd_viewer_layout(skd_viewer *v, skd_viewer_rect *out, int max)
{
	pthread_mutex_lock(&v->lock);
	refresh_layout(v);
	int n = 0;
	for (int p = 0; p < VW_NPANELS && n < max; p++, n++) {
		vw_rect r = v->layout.r[p];
		out[n] = (skd_viewer_rect){vw_panel_names[p], r.x, r.y, r.w, r.h};
	}
	if (n < max)
		out[n++] = (skd_viewer_rect){"canvas", 0, 0, v->layout.width, v->layout.height};
	pthread_mutex_unlock(&v->lock);
	return n;
}

void skd_viewer_ui(skd_viewer *v, skd_viewer_ui_state *u)
{
	pthread_mutex_lock(&v->lock);
	const vw_sample *s = vw_current(v);
	*u = (skd_viewer_ui_state){
		.open = v->open, .paused = v->paused, .log_scale = v->log_scale,
		.pinned = v->pinned, .affinity_view = v->aff_view, .alpha = v->alpha,
		.sample = v->view, .nsamples = v->nsamples, .pixel_x = -1, .pixel_y = -1,
		.cursor_x = v->cur_x, .cursor_y = v->cur_y, .frames_written = v->frames,
		.iter = v->iter,
	};
	if (s) {
		u->pixel_x = v->pinned ? v->pix_x : v->cur_x >= 0 ? v->cur_x : s->w / 2;
		u->pixel_y = v->pinned ? v->pix_y : v->cur_x >= 0 ? v->cur_y : s->h / 2;
	}
	snprintf(u->message, sizeof u->message, "%s", v->message);
	pthread_mutex_unlock(&v->lock);
}

skd_viewer_mode skd_viewer_get_mode(const skd_viewer *v)
{
	return v->mode;
}

const char *skd_viewer_frame_dir(const skd_viewer *v)
{
	return v->frame_dir;
}

void skd_viewer_close(skd_viewer *v)
{
	pthread_mutex_lock(&active_lock);
	if (active_window == v)
		active_window = NULL;
	pthread_mutex_unlock(&active_lock);
	if (v->has_thread)
		vw_window_stop(v);
	pthread_mutex_lock(&v->lock);
	v->open = false;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

void skd_viewer_free(skd_viewer *v)
{
	if (!v)
		return;
	skd_viewer_close(v);
	for (int k = 0; v->ring && k < v->nsamples; k++)
		vw_sample_free(v->ring[(v->first + k) % v->history]);
	free(v->ring);
	vw_curves_free(v);
	for (int i = 0; v->names && i < v->ncls; i++)
		free(v->names[i]);
	free(v->names);
	free(v->pal);
	if (v->canvas)
		SDL_FreeSurface(v->canvas);
	vw_fonts_close(v);
	pthread_mutex_destroy(&v->lock);
	pthread_cond_destroy(&v->cond);
	free(v);
}
