/* window.c — the window thread. It owns SDL's video subsystem, the window, the renderer and
 * the event loop, so SDL is only ever called for the window from this one thread. It wakes on
 * an event or every 50 ms, applies events to the frame state (viewer.c), and when the state
 * changed re-renders the canvas (panels.c) under the lock and presents it. Nothing here waits
 * for the caller: show() only copies data in and pushes a wake-up event.
 *
 * Events of our own type (v->sync_event): code 0 wakes the loop; code 1 acknowledges the
 * events pushed before it (data1 = sequence number), so injected events are synchronous;
 * code 2 does the same after reading the presented frame back into a PNG (data2 = path). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "image.h"
#include "vw_internal.h"

/* SDL loads X11 and GL libraries with dlopen and unloads them when video quits; a leak checker
 * then reports their never-freed globals from "<unknown module>", which no suppression can
 * name. Sanitizer builds therefore keep video initialised to the end of the process. */
#if defined(__SANITIZE_ADDRESS__)
#define QUIT_VIDEO() ((void)0)
#else
#define QUIT_VIDEO() SDL_QuitSubSystem(SDL_INIT_VIDEO)
#endif

typedef struct window {
	SDL_Window *win;
	SDL_Renderer *ren;
	SDL_Texture *tex;
	int w, h;
} window;

static void window_destroy(window *w)
{
	if (w->tex)
		SDL_DestroyTexture(w->tex);
	if (w->ren)
		SDL_DestroyRenderer(w->ren);
	if (w->win)
		SDL_DestroyWindow(w->win);
	memset(w, 0, sizeof *w);
}

/* (Re)sizes the window and its texture to the canvas; lock held. */
static int fit_canvas(skd_viewer *v, window *w)
{
	SDL_Surface *c = v->canvas;
	if (w->tex && w->w == c->w && w->h == c->h)
		return 0;
	if (w->tex)
		SDL_DestroyTexture(w->tex);
	w->tex = SDL_CreateTexture(w->ren, SDL_PIXELFORMAT_XRGB8888, SDL_TEXTUREACCESS_STREAMING,
				   c->w, c->h);
	if (!w->tex)
		return -1;
	if (w->w != c->w || w->h != c->h)
		SDL_SetWindowSize(w->win, c->w, c->h);
	w->w = c->w;
	w->h = c->h;
	/* Logical size: SDL maps mouse coordinates back to canvas pixels if the user resizes. */
	SDL_RenderSetLogicalSize(w->ren, c->w, c->h);
	return 0;
}

static int window_create(skd_viewer *v, window *w)
{
	pthread_mutex_lock(&v->lock);
	int rc = vw_render(v);
	int cw = v->canvas ? v->canvas->w : 640, ch = v->canvas ? v->canvas->h : 480;
	pthread_mutex_unlock(&v->lock);
	if (rc)
		return -1;
	w->win = SDL_CreateWindow(v->title, SDL_WINDOWPOS_UNDEFINED, SDL_WINDOWPOS_UNDEFINED, cw,
				  ch, SDL_WINDOW_RESIZABLE);
	if (!w->win)
		return -1;
	w->ren = SDL_CreateRenderer(w->win, -1, 0);
	if (!w->ren)
		w->ren = SDL_CreateRenderer(w->win, -1, SDL_RENDERER_SOFTWARE);
	if (!w->ren)
		return -1;
	w->w = cw;
	w->h = ch;
	return 0;
}

/* Re-renders if the state changed and shows the canvas. */
static void present(skd_viewer *v, window *w, bool force)
{
	pthread_mutex_lock(&v->lock);
	bool draw = v->dirty || force || !w->tex;
	if (draw) {
		if (vw_render(v) == SKD_OK && fit_canvas(v, w) == 0)
			SDL_UpdateTexture(w->tex, NULL, v->canvas->pixels, v->canvas->pitch);
		v->dirty = false;
	}
	pthread_mutex_unlock(&v->lock);
	if (!draw || !w->tex)
		return;
	SDL_SetRenderDrawColor(w->ren, 0, 0, 0, 255);
	SDL_RenderClear(w->ren);
	SDL_RenderCopy(w->ren, w->tex, NULL, NULL);
	SDL_RenderPresent(w->ren);
}

/* The presented frame read back from the renderer, as a PNG: proof of what is on screen. */
static int grab(window *w, const char *path)
{
	int ow = 0, oh = 0;
	if (SDL_GetRendererOutputSize(w->ren, &ow, &oh) || ow <= 0 || oh <= 0)
		return skd_error("viewer.grab: no renderer output: %s", SDL_GetError());
	uint32_t *px = skd_malloc((size_t)ow * oh * 4);
	uint8_t *rgb = skd_malloc((size_t)ow * oh * 3);
	int rc = SKD_ERR;
	if (px && rgb) {
		if (SDL_RenderReadPixels(w->ren, NULL, SDL_PIXELFORMAT_XRGB8888, px, ow * 4)) {
			rc = skd_error("viewer.grab: cannot read pixels: %s", SDL_GetError());
		} else {
			for (size_t i = 0; i < (size_t)ow * oh; i++) {
				rgb[3 * i] = (px[i] >> 16) & 255;
				rgb[3 * i + 1] = (px[i] >> 8) & 255;
				rgb[3 * i + 2] = px[i] & 255;
			}
			rc = skd_image_write_png(path, rgb, ow, oh, 3);
		}
	}
	free(px);
	free(rgb);
	return rc;
}

static void handle(skd_viewer *v, window *w, const SDL_Event *e)
{
	if (e->type == v->sync_event) {
		int rc = SKD_OK;
		if (e->user.code == 2) {
			present(v, w, true);
			rc = grab(w, (const char *)e->user.data2);
		}
		if (e->user.code >= 1) {
			pthread_mutex_lock(&v->lock);
			v->sync_done = (uint64_t)(uintptr_t)e->user.data1;
			v->sync_rc = rc;
			if (rc)
				snprintf(v->sync_error, sizeof v->sync_error, "%s", skd_last_error());
			pthread_cond_broadcast(&v->cond);
			pthread_mutex_unlock(&v->lock);
		}
		return;
	}
	pthread_mutex_lock(&v->lock);
	int act = vw_handle_event(v, e);
	if (act & VW_ACT_SAVE)
		vw_screenshot_locked(v);
	if (act & VW_ACT_CLOSE) { /* closed for show() and poll() now; the loop ends below */
		v->quit = true;
		v->open = false;
		pthread_cond_broadcast(&v->cond);
	}
	pthread_mutex_unlock(&v->lock);
}

static void *thread_main(void *arg)
{
	skd_viewer *v = arg;
	window w = {0};
	/* SDL must not take over SIGINT/SIGTERM: Ctrl-C belongs to the REPL and the trainer. */
	SDL_SetHint(SDL_HINT_NO_SIGNAL_HANDLERS, "1");
	SDL_SetHint(SDL_HINT_MOUSE_FOCUS_CLICKTHROUGH, "1");
	bool ok = SDL_InitSubSystem(SDL_INIT_VIDEO) == 0;
	uint32_t sync = ok ? SDL_RegisterEvents(1) : (uint32_t)-1;
	ok = ok && sync != (uint32_t)-1 && window_create(v, &w) == 0;
	pthread_mutex_lock(&v->lock);
	if (!ok) {
		snprintf(v->start_error, sizeof v->start_error, "%s", SDL_GetError());
		v->start_status = -1;
	} else {
		v->sync_event = sync;
		v->start_status = 1;
	}
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	if (!ok) {
		window_destroy(&w);
		QUIT_VIDEO();
		return NULL;
	}
	for (;;) {
		SDL_Event e;
		int got = SDL_WaitEventTimeout(&e, 50);
		while (got) {
			handle(v, &w, &e);
			got = SDL_PollEvent(&e);
		}
		pthread_mutex_lock(&v->lock);
		bool quit = v->quit;
		if (quit) { /* from now on show() and poll() are no-ops */
			v->open = false;
			pthread_cond_broadcast(&v->cond);
		}
		pthread_mutex_unlock(&v->lock);
		if (quit)
			break;
		present(v, &w, false);
	}
	window_destroy(&w);
	QUIT_VIDEO();
	return NULL;
}

int vw_window_start(skd_viewer *v)
{
	v->start_status = 0;
	v->quit = false;
	if (pthread_create(&v->thread, NULL, thread_main, v))
		return skd_error("viewer: cannot start the window thread");
	pthread_mutex_lock(&v->lock);
	while (v->start_status == 0)
		pthread_cond_wait(&v->cond, &v->lock);
	int status = v->start_status;
	pthread_mutex_unlock(&v->lock);
	if (status < 0) {
		pthread_join(v->thread, NULL);
		return skd_error("viewer: cannot open a window: %s", v->start_error);
	}
	v->has_thread = true;
	return SKD_OK;
}

void vw_window_stop(skd_viewer *v)
{
	pthread_mutex_lock(&v->lock);
	v->quit = true;
	if (v->open) {
		SDL_Event wake = {.type = v->sync_event};
		SDL_PushEvent(&wake);
	}
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->thread, NULL);
	v->has_thread = false;
}

/* Pushes e (may be NULL) and a code-1 or code-2 acknowledgement, and waits for it (5 s). */
static int send_and_wait(skd_viewer *v, SDL_Event *e, const char *grab_path)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&v->lock);
	if (!v->open || !v->has_thread) {
		pthread_mutex_unlock(&v->lock);
		return grab_path ? skd_error("viewer.grab: the window is closed") : SKD_OK;
	}
	uint64_t seq = ++v->sync_sent;
	if (e)
		SDL_PushEvent(e);
	SDL_Event ack = {.type = v->sync_event};
	ack.user.code = grab_path ? 2 : 1;
	ack.user.data1 = (void *)(uintptr_t)seq;
	ack.user.data2 = (void *)grab_path;
	SDL_PushEvent(&ack);
	int rc = SKD_OK;
	while (v->sync_done < seq && v->open) {
		if (pthread_cond_timedwait(&v->cond, &v->lock, &until) == ETIMEDOUT) {
			rc = skd_error("viewer: the window thread did not answer in 5 s");
			break;
		}
	}
	if (rc == SKD_OK && v->sync_done >= seq && v->sync_rc)
		rc = skd_error("%s", v->sync_error);
	else if (rc == SKD_OK && grab_path && v->sync_done < seq)
		rc = skd_error("viewer.grab: the window closed");
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int vw_window_send(skd_viewer *v, SDL_Event *e)
{
	return send_and_wait(v, e, NULL);
}

int skd_viewer_grab(skd_viewer *v, const char *path)
{
	return send_and_wait(v, NULL, path);
}
