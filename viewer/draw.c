/* draw.c — canvas primitives, text through SDL2_ttf, the colour map, class palettes, fonts.
 *
 * Everything draws into one XRGB8888 software surface, in windowed and PNG mode alike, so a
 * saved frame is the frame on screen. Primitives clip to the surface. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vw_internal.h"

void vw_put(SDL_Surface *c, int x, int y, uint32_t colour)
{
	if (x < 0 || y < 0 || x >= c->w || y >= c->h)
		return;
	((uint32_t *)((uint8_t *)c->pixels + (size_t)y * c->pitch))[x] = colour;
}

void vw_fill(SDL_Surface *c, vw_rect r, uint32_t colour)
{
	int x0 = r.x < 0 ? 0 : r.x, y0 = r.y < 0 ? 0 : r.y;
	int x1 = r.x + r.w > c->w ? c->w : r.x + r.w, y1 = r.y + r.h > c->h ? c->h : r.y + r.h;
	for (int y = y0; y < y1; y++) {
		uint32_t *row = (uint32_t *)((uint8_t *)c->pixels + (size_t)y * c->pitch);
		for (int x = x0; x < x1; x++)
			row[x] = colour;
	}
}

void vw_outline(SDL_Surface *c, vw_rect r, uint32_t colour)
{
	vw_fill(c, (vw_rect){r.x, r.y, r.w, 1}, colour);
	vw_fill(c, (vw_rect){r.x, r.y + r.h - 1, r.w, 1}, colour);
	vw_fill(c, (vw_rect){r.x, r.y, 1, r.h}, colour);
	vw_fill(c, (vw_rect){r.x + r.w - 1, r.y, 1, r.h}, colour);
}

/* Bresenham; endpoints far outside the canvas are the caller's to clip (plot.c does). */
void vw_line(SDL_Surface *c, int x0, int y0, int x1, int y1, uint32_t colour)
{
	int dx = abs(x1 - x0), dy = -abs(y1 - y0);
	int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
	int err = dx + dy;
	for (;;) {
		vw_put(c, x0, y0, colour);
		if (x0 == x1 && y0 == y1)
			break;
		int e2 = 2 * err;
		if (e2 >= dy) {
			err += dy;
			x0 += sx;
		}
		if (e2 <= dx) {
			err += dx;
			y0 += sy;
		}
	}
}

int vw_text_width(TTF_Font *f, const char *s)
{
	int w = 0, h = 0;
	if (!f || !*s || TTF_SizeUTF8(f, s, &w, &h))
		return 0;
	return w;
}

int vw_text(SDL_Surface *c, TTF_Font *f, int x, int y, int align, uint32_t colour,
	    const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (!f || !buf[0])
		return 0;
	SDL_Color col = {(colour >> 16) & 255, (colour >> 8) & 255, colour & 255, 255};
	SDL_Surface *t = TTF_RenderUTF8_Blended(f, buf, col);
	if (!t)
		return 0;
	SDL_Rect dst = {x, y, t->w, t->h};
	if (align == VW_CENTER)
		dst.x -= t->w / 2;
	else if (align == VW_RIGHT)
		dst.x -= t->w;
	SDL_SetSurfaceBlendMode(t, SDL_BLENDMODE_BLEND);
	SDL_BlitSurface(t, NULL, c, &dst);
	int w = t->w;
	SDL_FreeSurface(t);
	return w;
}

/* Perceptually ordered dark-blue -> green -> yellow ramp (samples of matplotlib's viridis),
 * interpolated linearly: low values dark, high values bright, readable in grey print too. */
static const uint8_t ramp[9][3] = {
	{68, 1, 84},    {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
	{39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37},
};

uint32_t vw_colormap(double t)
{
	if (!(t > 0))
		t = 0; /* NaN too */
	if (t > 1)
		t = 1;
	double p = t * 8;
	int i = (int)p;
	if (i >= 8)
		return vw_pack(ramp[8][0], ramp[8][1], ramp[8][2]);
	double f = p - i;
	int rgb[3];
	for (int k = 0; k < 3; k++)
		rgb[k] = (int)(ramp[i][k] + f * (ramp[i + 1][k] - ramp[i][k]) + 0.5);
	return vw_pack(rgb[0], rgb[1], rgb[2]);
}

/* Default colours for ids without a palette entry: the PASCAL VOC bit-spreading scheme,
 * shifted by one so that no class is black (black means "ignore"). */
static uint32_t spread_colour(int32_t id)
{
	unsigned c = (unsigned)id + 1, r = 0, g = 0, b = 0;
	for (int j = 7; j >= 0; j--) {
		r |= (c & 1) << j;
		g |= ((c >> 1) & 1) << j;
		b |= ((c >> 2) & 1) << j;
		c >>= 3;
	}
	return vw_pack((int)r, (int)g, (int)b);
}

uint32_t vw_class_colour(const skd_viewer *v, int32_t id)
{
	if (id == 255)
		return vw_pack(0, 0, 0);
	if (id >= 0 && id < v->npal)
		return vw_pack(v->pal[id][0], v->pal[id][1], v->pal[id][2]);
	return spread_colour(id);
}

const char *vw_class_name(const skd_viewer *v, int32_t id, char *buf, size_t len)
{
	if (id == 255)
		snprintf(buf, len, "255 ignore");
	else if (id >= 0 && id < v->ncls && v->names[id])
		snprintf(buf, len, "%d %s", (int)id, v->names[id]);
	else
		snprintf(buf, len, "%d", (int)id);
	return buf;
}

/* --- presets (class ids as in the data sets' label files) --- */

/* shared/data/camvid/README.txt: SegNet's 11 classes plus the void id 11. */
static const char *const camvid_names[] = {
	"Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
	"Pedestrian", "Bicyclist", "Unlabelled",
};
static const uint8_t camvid_palette[][3] = {
	{128, 128, 128}, {128, 0, 0},    {192, 192, 128}, {128, 64, 128},
	{60, 40, 222},   {128, 128, 0},  {192, 128, 128}, {64, 64, 128},
	{64, 0, 128},    {64, 64, 0},    {0, 128, 192},   {0, 0, 0},
};
/* Cityscapes' 19 evaluation classes, train ids 0..18, with the benchmark's colours. */
static const char *const cityscapes_names[] = {
	"road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
	"vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
	"motorcycle", "bicycle",
};
static const uint8_t cityscapes_palette[][3] = {
	{128, 64, 128}, {244, 35, 232}, {70, 70, 70},   {102, 102, 156}, {190, 153, 153},
	{153, 153, 153}, {250, 170, 30}, {220, 220, 0}, {107, 142, 35},  {152, 251, 152},
	{70, 130, 180}, {220, 20, 60},  {255, 0, 0},    {0, 0, 142},     {0, 0, 70},
	{0, 60, 100},   {0, 80, 100},   {0, 0, 230},    {119, 11, 32},
};

int skd_viewer_preset(const char *name, const char *const **names, const uint8_t (**palette)[3])
{
	if (!strcmp(name, "camvid")) {
		*names = camvid_names;
		*palette = camvid_palette;
		return (int)(sizeof camvid_names / sizeof *camvid_names);
	}
	if (!strcmp(name, "cityscapes")) {
		*names = cityscapes_names;
		*palette = cityscapes_palette;
		return (int)(sizeof cityscapes_names / sizeof *cityscapes_names);
	}
	return 0;
}

/* --- fonts --- */

/* fontconfig's answer for DejaVuSans (fonts-dejavu-core), asked through fc-match so that the
 * viewer links no fontconfig of its own. */
static int fc_match(char *out, size_t len)
{
	FILE *p = popen("fc-match -f '%{file}' DejaVuSans:style=Book 2>/dev/null", "r");
	if (!p)
		return 0;
	size_t n = fread(out, 1, len - 1, p);
	pclose(p);
	out[n] = 0;
	return n > 0 && access(out, R_OK) == 0 && strstr(out, ".ttf") != NULL;
}

#define DEBIAN_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

int vw_fonts_open(skd_viewer *v)
{
	char path[1024] = "";
	const char *env = getenv("SKD_VIEWER_FONT");
	if (env && *env) {
		if (access(env, R_OK) != 0)
			return skd_error("viewer: SKD_VIEWER_FONT='%s' is not a readable file", env);
		snprintf(path, sizeof path, "%s", env);
	} else if (!fc_match(path, sizeof path)) {
		if (access(DEBIAN_FONT, R_OK) != 0)
			return skd_error("viewer: no TrueType font found (tried $SKD_VIEWER_FONT, "
					 "fc-match DejaVuSans, " DEBIAN_FONT "); install "
					 "fonts-dejavu-core (scripts/install-deps.sh) or set "
					 "SKD_VIEWER_FONT");
		snprintf(path, sizeof path, "%s", DEBIAN_FONT);
	}
	if (TTF_Init() != 0)
		return skd_error("viewer: SDL_ttf init failed: %s", TTF_GetError());
	v->ttf_init = true;
	v->font = TTF_OpenFont(path, 13);
	v->font_small = TTF_OpenFont(path, 11);
	if (!v->font || !v->font_small) {
		int rc = skd_error("viewer: cannot open font '%s': %s", path, TTF_GetError());
		vw_fonts_close(v);
		return rc;
	}
	/* Light hinting: crisp small text that looks the same on every run. */
	TTF_SetFontHinting(v->font, TTF_HINTING_LIGHT);
	TTF_SetFontHinting(v->font_small, TTF_HINTING_LIGHT);
	return SKD_OK;
}

void vw_fonts_close(skd_viewer *v)
{
	if (v->font)
		TTF_CloseFont(v->font);
	if (v->font_small)
		TTF_CloseFont(v->font_small);
	if (v->ttf_init)
		TTF_Quit(); /* TTF_Init/TTF_Quit are reference counted */
	v->ttf_init = false;
	v->font = v->font_small = NULL;
}
