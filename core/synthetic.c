/* synthetic.c — procedural street scenes with CamVid labels (synthetic.h).
 *
 * World: metres, Y up, camera at X = 0, height hc, looking down +Z. A point projects to
 * u = cx + f X / Z, v = cy + f (hc - Y) / Z (pixels). Planes parallel to the street (ground,
 * facades, side fences, car sides) are drawn by casting each pixel's ray onto them; upright
 * objects facing the camera (people, poles, trees, clutter, car backs) are drawn as
 * billboards at their depth. A depth buffer decides who is in front, which is the painter's
 * order back to front without having to sort overlapping planes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "rng.h"
#include "synthetic.h"

const char *const skd_camvid_names[SKD_CAMVID_CLASSES] = {
	"Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
	"Pedestrian", "Bicyclist",
};

const uint8_t skd_camvid_palette[SKD_CAMVID_CLASSES + 1][3] = {
	{128, 128, 128}, {128, 0, 0}, {192, 192, 128}, {128, 64, 128}, {60, 40, 222},
	{128, 128, 0}, {192, 128, 128}, {64, 64, 128}, {64, 0, 128}, {64, 64, 0},
	{0, 128, 192}, {0, 0, 0},
};

#define MAX_SEG 24
#define MAX_OBJ 96
#define MAX_BLOCK 48
#define FAR 1e9f

typedef struct rgb { float r, g, b; } rgb;

/* ---------- noise: hashed lattice values, smoothly interpolated, summed over octaves ---------- */

static inline uint32_t hash32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

/* The value at lattice point (i, j), from hj = hash32(j + seed): [0, 1). */
static inline float lattice(int32_t i, uint32_t hj)
{
	return (float)(hash32((uint32_t)i * 0x9E3779B1u ^ hj) >> 8) * (1.0f / 16777216.0f);
}

static float value_noise(double x, double y, uint32_t seed)
{
	double fx = floor(x), fy = floor(y);
	int32_t i = (int32_t)fx, j = (int32_t)fy;
	float tx = (float)(x - fx), ty = (float)(y - fy);
	tx = tx * tx * (3 - 2 * tx);
	ty = ty * ty * (3 - 2 * ty);
	uint32_t h0 = hash32((uint32_t)j + seed), h1 = hash32((uint32_t)j + 1 + seed);
	float a = lattice(i, h0), b = lattice(i + 1, h0);
	float c = lattice(i, h1), d = lattice(i + 1, h1);
	return (a + (b - a) * tx) * (1 - ty) + (c + (d - c) * tx) * ty;
}

/* In [0, 1], mean about 0.5. */
static float fbm(double x, double y, uint32_t seed, int octaves)
{
	float sum = 0, amp = 0.5f, norm = 0;
	for (int k = 0; k < octaves; k++) {
		sum += amp * value_noise(x, y, seed + 0x51ED27u * (uint32_t)k);
		norm += amp;
		amp *= 0.5f;
		x *= 2.03;
		y *= 2.03;
	}
	return sum / norm;
}

static inline float clampf(float x, float lo, float hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

static inline rgb scale(rgb c, float s)
{
	return (rgb){c.r * s, c.g * s, c.b * s};
}

static inline rgb mix(rgb a, rgb b, float t)
{
	return (rgb){a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}

/* Distance from (px, py) to the segment (ax, ay)-(bx, by). */
static double seg_dist(double px, double py, double ax, double ay, double bx, double by)
{
	double dx = bx - ax, dy = by - ay;
	double t = ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy + 1e-12);
	t = t < 0 ? 0 : t > 1 ? 1 : t;
	double ex = px - ax - t * dx, ey = py - ay - t * dy;
	return sqrt(ex * ex + ey * ey);
}

/* ---------- the scene ---------- */

enum { SEG_BUILDING, SEG_TREES };

typedef struct segment {
	double z0, z1, height;
	int kind, brick, shop, sign;
	rgb wall, trim, glass, signc;
	double floor_h, win_w, win_h, win_sp, win_off, sign_a0, sign_a1;
	uint32_t seed;
} segment;

typedef struct side {
	double x;     /* the facade plane: metres left (< 0) or right (> 0) of the camera */
	double shade; /* sunlit 1, in shadow less */
	int nseg;
	segment seg[MAX_SEG];
} side;

typedef struct block { double x0, x1, h; int label; rgb col; } block;

enum { OBJ_CAR, OBJ_PERSON, OBJ_BIKE, OBJ_POLE, OBJ_TREE, OBJ_CLUTTER, OBJ_FENCE };

typedef struct object {
	int kind, variant;
	double x, z, w, h, len; /* centre X, nearest Z, width, height, length along Z */
	double p[6];
	rgb c[4];
	uint32_t seed;
} object;

typedef struct scene {
	int H, W;
	float *img; /* 3 planes */
	int32_t *lab;
	float *depth;
	skd_rng rng;
	double cx, cy, f, hc;
	double road_l, road_r, lane_w, curb_w, dash_len, dash_period, zebra_z;
	double marks[8]; /* lane dividers, X */
	int nlanes, nmarks, edge_lines, shadow_side;
	rgb road, mark, pave, curb, sky_top, sky_bot, cloud;
	double tile, cloud_amt, cloud_thr, shadow_x0, shadow_k, shadow_f;
	uint32_t nseed;
	side sides[2];
	double zend;
	int nblock;
	block blocks[MAX_BLOCK];
	int nobj;
	object obj[MAX_OBJ];
} scene;

static double urand(scene *sc, double a, double b)
{
	return a + (b - a) * skd_rng_next_uniform(&sc->rng);
}

static int irand(scene *sc, int n) /* [0, n) */
{
	return (int)(skd_rng_next_uniform(&sc->rng) * n);
}

static int chance(scene *sc, double p)
{
	return skd_rng_next_uniform(&sc->rng) < p;
}

static int poisson(scene *sc, double mean)
{
	double l = exp(-mean), p = 1;
	int k = 0;
	do {
		k++;
		p *= skd_rng_next_uniform(&sc->rng);
	} while (p > l && k < 64);
	return k - 1;
}

/* Colour families shared by the classes: what tells a class apart is its mixture of
 * families, its texture and its shape, never a colour of its own. */
enum { F_GREY, F_BEIGE, F_BROWN, F_RED, F_GREEN, F_BLUE, F_WHITE, F_DARK, F_YELLOW, F_N };

static rgb family(scene *sc, int fam)
{
	double g, t = 0.04;
	switch (fam) {
	case F_GREY: g = urand(sc, 0.3, 0.75); break;
	case F_WHITE: g = urand(sc, 0.78, 0.95); break;
	case F_DARK: g = urand(sc, 0.06, 0.25); break;
	case F_BEIGE: return (rgb){urand(sc, .6, .85), urand(sc, .5, .72), urand(sc, .35, .58)};
	case F_BROWN: return (rgb){urand(sc, .3, .55), urand(sc, .2, .38), urand(sc, .1, .28)};
	case F_RED: return (rgb){urand(sc, .5, .85), urand(sc, .1, .3), urand(sc, .1, .25)};
	case F_GREEN: return (rgb){urand(sc, .15, .42), urand(sc, .3, .6), urand(sc, .1, .32)};
	case F_BLUE: return (rgb){urand(sc, .1, .35), urand(sc, .25, .5), urand(sc, .5, .85)};
	default: return (rgb){urand(sc, .75, .95), urand(sc, .6, .85), urand(sc, .05, .3)};
	}
	return (rgb){g + urand(sc, -t, t), g + urand(sc, -t, t), g + urand(sc, -t, t)};
}

/* Weights over the families, per use. */
static const float W_BUILDING[F_N] = {.30f, .25f, .14f, .14f, .03f, .03f, .10f, .01f, 0};
static const float W_ROAD[F_N] = {.85f, 0, .05f, 0, 0, 0, 0, .10f, 0};
static const float W_PAVE[F_N] = {.50f, .25f, .10f, .15f, 0, 0, 0, 0, 0};
static const float W_FOLIAGE[F_N] = {0, 0, .10f, 0, .72f, 0, 0, .08f, .10f};
static const float W_CAR[F_N] = {.20f, .04f, .06f, .12f, .06f, .12f, .20f, .16f, .04f};
static const float W_CLOTHES[F_N] = {.15f, .10f, .12f, .10f, .08f, .15f, .10f, .15f, .05f};
static const float W_POLE[F_N] = {.50f, 0, .10f, 0, .10f, 0, 0, .30f, 0};
static const float W_SIGN[F_N] = {0, 0, 0, .30f, .15f, .25f, .15f, 0, .15f};
static const float W_FENCE[F_N] = {.30f, .05f, .25f, .05f, .15f, 0, .08f, .12f, 0};
static const float W_ANY[F_N] = {.2f, .1f, .1f, .1f, .1f, .1f, .1f, .1f, .1f};

static rgb pick(scene *sc, const float *w)
{
	double u = skd_rng_next_uniform(&sc->rng), acc = 0;
	for (int k = 0; k < F_N; k++) {
		acc += w[k];
		if (u < acc)
			return family(sc, k);
	}
	return family(sc, F_GREY);
}

static inline void put(scene *sc, int x, int y, float z, rgb c, int label)
{
	size_t i = (size_t)y * sc->W + x, plane = (size_t)sc->H * sc->W;
	if (z >= sc->depth[i])
		return;
	sc->depth[i] = z;
	sc->img[i] = c.r;
	sc->img[plane + i] = c.g;
	sc->img[2 * plane + i] = c.b;
	sc->lab[i] = label;
}

/* Early depth test: everything is drawn near to far, so most pixels are shaded once. */
static inline int hidden(const scene *sc, int x, int y, double z)
{
	return z >= sc->depth[(size_t)y * sc->W + x];
}

/* Fine texture fades with distance, as a camera's pixels average it away. */
static inline float detail(scene *sc, double z, double size_m)
{
	return clampf((float)(sc->f * size_m / z - 1.0) * 0.5f, 0, 1);
}

/* ---------- sky, ground ---------- */

static void draw_sky(scene *sc)
{
	double aspect = (double)sc->W / sc->H;
	for (int y = 0; y < sc->H; y++) {
		float t = clampf((float)((y + 0.5) / (sc->cy + 1)), 0, 1);
		rgb base = mix(sc->sky_top, sc->sky_bot, powf(t, 0.7f));
		for (int x = 0; x < sc->W; x++) {
			if (hidden(sc, x, y, FAR))
				continue;
			float c = fbm(x * 3.0 * aspect / sc->W, y * 5.0 / sc->H, sc->nseed + 1, 4);
			float a = clampf((c - (float)sc->cloud_thr) * 4.0f, 0, 1) * (float)sc->cloud_amt;
			put(sc, x, y, FAR, mix(base, scale(sc->cloud, 0.9f + 0.2f * c), a), SKD_SKY);
		}
	}
}

static rgb ground_colour(scene *sc, double X, double Z, int *label)
{
	float d = detail(sc, Z, 0.05);
	float patch = fbm(X * 0.4, Z * 0.4, sc->nseed + 2, 3) - 0.5f;
	float grain = value_noise(X * 12, Z * 12, sc->nseed + 3) - 0.5f;
	rgb c;
	if (X >= sc->road_l && X <= sc->road_r) {
		*label = SKD_ROAD;
		c = scale(sc->road, 1 + 0.25f * patch + 0.25f * d * grain);
		double fromL = X - sc->road_l, fromR = sc->road_r - X;
		int mark = 0;
		if (sc->edge_lines && ((fromL > 0.3 && fromL < 0.45) || (fromR > 0.3 && fromR < 0.45)))
			mark = 1;
		for (int k = 0; k < sc->nmarks; k++)
			if (fabs(X - sc->marks[k]) < 0.08 && fmod(Z, sc->dash_period) < sc->dash_len)
				mark = 1;
		if (Z > sc->zebra_z && Z < sc->zebra_z + 4 && fmod(X + 100, 1.1) < 0.55)
			mark = 1;
		if (mark)
			c = scale(sc->mark, 0.85f + 0.3f * (fbm(X * 3, Z * 3, sc->nseed + 4, 2)));
	} else {
		*label = SKD_PAVEMENT;
		double off = X < sc->road_l ? sc->road_l - X : X - sc->road_r;
		if (off < sc->curb_w) {
			c = scale(sc->curb, 1 + 0.2f * patch);
		} else {
			c = scale(sc->pave, 1 + 0.3f * patch + 0.15f * d * grain);
			float dt = detail(sc, Z, sc->tile * 0.5);
			if (fmod(fabs(X), sc->tile) < 0.05 || fmod(Z, sc->tile) < 0.05)
				c = scale(c, 1 - 0.25f * dt);
		}
	}
	/* the shadow of the buildings on the sun's side */
	double edge = sc->shadow_x0 + sc->shadow_k * Z;
	if ((sc->shadow_side < 0 && X < edge) || (sc->shadow_side > 0 && X > edge))
		c = scale(c, (float)sc->shadow_f);
	return c;
}

static void draw_ground(scene *sc)
{
	for (int y = (int)floor(sc->cy); y < sc->H; y++) {
		double dv = y + 0.5 - sc->cy;
		if (dv <= 0)
			continue;
		double Z = sc->f * sc->hc / dv;
		for (int x = 0; x < sc->W; x++) {
			if (hidden(sc, x, y, Z))
				continue;
			double X = (x + 0.5 - sc->cx) * Z / sc->f;
			int label;
			rgb c = ground_colour(sc, X, Z, &label);
			put(sc, x, y, (float)Z, c, label);
		}
	}
}

/* ---------- facades: buildings and tree rows along both sides, a backdrop at the end ---------- */

static rgb foliage(rgb base, double a, double b, uint32_t seed, float d)
{
	float lo = fbm(a * 0.7, b * 0.7, seed, 3);
	float hi = value_noise(a * 4, b * 4, seed + 7);
	return scale(base, 0.55f + 0.6f * lo + d * 0.5f * (hi - 0.5f));
}

static int shade_building(scene *sc, const segment *s, double a, double Y, double Z, rgb *c,
			  int *label)
{
	if (Y > s->height)
		return 0;
	float d = detail(sc, Z, 0.25);
	*label = SKD_BUILDING;
	rgb wall = scale(s->wall, 0.9f + 0.25f * fbm(a * 0.3, Y * 0.3, s->seed, 3));
	if (s->brick && d > 0) {
		double row = floor(Y / 0.25);
		double off = fmod(row, 2) * 0.25;
		if (fmod(Y, 0.25) < 0.035 || fmod(a + off, 0.5) < 0.035)
			wall = scale(wall, 1 + 0.2f * d);
	}
	if (a < 0.25 || Y > s->height - 0.5) { /* corners and cornice */
		*c = s->trim;
		return 1;
	}
	double gf = s->shop ? 3.8 : s->floor_h;
	if (s->sign && Y > gf - 1.0 && Y < gf - 0.15 && a > s->sign_a0 && a < s->sign_a1) {
		*label = SKD_SIGN;
		*c = scale(s->signc, 0.9f + 0.2f * value_noise(a * 2, Y * 2, s->seed + 5));
		if (fmod(a * 2.5, 1.0) < 0.3 && Y > gf - 0.8 && Y < gf - 0.35) /* lettering */
			*c = scale(*c, 0.4f);
		return 1;
	}
	if (Y < gf) {
		double sp = s->win_sp * 2;
		double u = fmod(a - s->win_off + sp * 8, sp);
		if (s->shop && Y > 0.4 && Y < gf - 1.1 && u > 0.35 && u < sp - 0.35)
			*c = scale(s->glass, 0.7f + 0.4f * value_noise(a, Y * 0.5, s->seed + 9));
		else if (!s->shop && u > sp * 0.4 && u < sp * 0.4 + 1.1 && Y < 2.2)
			*c = scale(s->trim, 0.6f); /* a door */
		else
			*c = scale(wall, 0.85f);
		return 1;
	}
	double yy = fmod(Y - gf, s->floor_h);
	double u = fmod(a - s->win_off + s->win_sp * 8, s->win_sp);
	double y0 = 0.3 * s->floor_h;
	if (Y < s->height - 0.9 && yy > y0 - 0.08 && yy < y0 + s->win_h + 0.08 &&
	    u > -0.08 + 0.08 && u < s->win_w + 0.08) {
		if (yy < y0 || yy > y0 + s->win_h || u < 0.08 || u > s->win_w) {
			*c = s->trim;
			return 1;
		}
		int fl = (int)floor((Y - gf) / s->floor_h), col = (int)floor((a - s->win_off) / s->win_sp);
		uint32_t h = hash32((uint32_t)fl * 7919u + (uint32_t)col * 104729u + s->seed);
		rgb g = s->glass;
		if ((h & 7) == 0)
			g = (rgb){0.85f, 0.75f, 0.45f}; /* lit */
		else if ((h & 7) == 1)
			g = mix(s->wall, s->trim, 0.5f); /* curtains */
		float refl = (float)((yy - y0) / s->win_h);
		*c = scale(g, 0.75f + 0.45f * refl);
		return 1;
	}
	*c = wall;
	return 1;
}

static int shade_trees(scene *sc, const segment *s, double a, double Y, double Z, rgb *c, int *label)
{
	double top = s->height * (0.6 + 0.45 * fbm(a * 0.12, 0.5, s->seed, 2));
	if (Y > top)
		return 0;
	if (Y > 2.5 && fbm(a * 0.8, Y * 0.8, s->seed + 3, 2) > 0.68)
		return 0;
	*label = SKD_TREE;
	*c = foliage(s->wall, a, Y, s->seed + 11, detail(sc, Z, 0.2));
	return 1;
}

static void draw_facades(scene *sc)
{
	for (int y = 0; y < sc->H; y++) {
		double dv = y + 0.5 - sc->cy;
		for (int x = 0; x < sc->W; x++) {
			double du = x + 0.5 - sc->cx;
			for (int k = 0; k < 2; k++) {
				const side *sd = &sc->sides[k];
				if (du * sd->x <= 0)
					continue;
				double Z = sc->f * sd->x / du, Y = sc->hc - dv * Z / sc->f;
				if (Y < 0 || Z < 0.5 || hidden(sc, x, y, Z))
					continue;
				for (int i = 0; i < sd->nseg; i++) {
					const segment *s = &sd->seg[i];
					if (Z < s->z0 || Z >= s->z1)
						continue;
					rgb c;
					int label, hit;
					if (s->kind == SEG_BUILDING)
						hit = shade_building(sc, s, Z - s->z0, Y, Z, &c, &label);
					else
						hit = shade_trees(sc, s, Z - s->z0, Y, Z, &c, &label);
					if (hit)
						put(sc, x, y, (float)Z, scale(c, (float)sd->shade), label);
					break;
				}
			}
		}
	}
}

static void draw_backdrop(scene *sc)
{
	double Z = sc->zend;
	for (int y = 0; y < sc->H; y++) {
		double Y = sc->hc - (y + 0.5 - sc->cy) * Z / sc->f;
		if (Y < 0)
			continue;
		for (int x = 0; x < sc->W; x++) {
			if (hidden(sc, x, y, Z))
				continue;
			double X = (x + 0.5 - sc->cx) * Z / sc->f;
			for (int i = 0; i < sc->nblock; i++) {
				const block *b = &sc->blocks[i];
				if (X < b->x0 || X >= b->x1)
					continue;
				rgb c = b->col;
				if (b->label == SKD_TREE) {
					double top = b->h * (0.7 + 0.5 * fbm(X * 0.15, 0.5, sc->nseed + 20, 3));
					if (Y > top)
						break;
					c = foliage(b->col, X, Y, sc->nseed + 21, 0);
				} else {
					if (Y > b->h)
						break;
					if (fmod(X - b->x0, 3.0) > 1.0 && fmod(Y, 3.2) > 1.2 && Y < b->h - 1)
						c = scale(c, 0.6f);
				}
				put(sc, x, y, (float)Z, c, b->label);
				break;
			}
		}
	}
}

/* ---------- objects ---------- */

/* The pixel rectangle covering the part of the plane X = xs with Z in [z0, z1], Y in [0, h]. */
static int plane_rect(const scene *sc, double xs, double z0, double z1, double h, int r[4])
{
	double ua = sc->cx + sc->f * xs / z0, ub = sc->cx + sc->f * xs / z1;
	double va = sc->cy + sc->f * (sc->hc - h) / z0, vb = sc->cy + sc->f * (sc->hc - h) / z1;
	r[0] = (int)floor(fmin(ua, ub)), r[1] = (int)ceil(fmax(ua, ub));
	r[2] = (int)floor(fmin(va, vb)), r[3] = (int)ceil(sc->cy + sc->f * sc->hc / z0);
	r[0] = r[0] < 0 ? 0 : r[0], r[2] = r[2] < 0 ? 0 : r[2];
	r[1] = r[1] > sc->W ? sc->W : r[1], r[3] = r[3] > sc->H ? sc->H : r[3];
	return r[0] < r[1] && r[2] < r[3];
}

/* A car, van or bus: an upright box; its back faces the camera, and the side that faces the
 * camera's axis shows in perspective. a runs across (back) or along (side), b up, metres. */
static int shade_car(const object *o, int back, double a, double b, rgb *c)
{
	double h = o->h, w = back ? o->w : o->len, tall = o->variant > 0;
	double clear = 0.12 * h, top = tall ? 0.93 * h : 0.58 * h;
	rgb paint = scale(o->c[0], 0.8f + 0.35f * (float)(b / h));
	double r = fmin(0.34, 0.22 * h);
	if (!back) {
		for (int k = 0; k < 2; k++) {
			double aw = k ? w - 0.9 : 0.9, dd = hypot(a - aw, b - r);
			if (dd < r) {
				*c = dd < 0.45 * r ? (rgb){.55f, .55f, .55f} : o->c[3];
				return 1;
			}
		}
	}
	if (b < clear) {
		if (back && (fabs(a - 0.14 * w) < 0.08 * w || fabs(a - 0.86 * w) < 0.08 * w)) {
			*c = o->c[3];
			return 1;
		}
		return 0;
	}
	if (b > top) { /* the cabin: narrower, glass */
		double k = (b - top) / (h - top);
		double in0, in1;
		if (back) {
			in0 = w * (0.07 + 0.14 * k);
			in1 = w - in0;
		} else {
			in0 = w * (0.22 + 0.12 * k);
			in1 = w * (0.78 - 0.25 * k);
		}
		if (a < in0 || a > in1)
			return 0;
		int pillar = back ? 0 : fabs(a - 0.5 * (in0 + in1)) < 0.06;
		int glass = b < h - 0.06 * h && a > in0 + 0.06 && a < in1 - 0.06 && !pillar;
		*c = glass ? scale(o->c[1], 0.7f + 0.5f * (float)k) : paint;
		return 1;
	}
	*c = paint;
	if (back) {
		if (b > 0.45 * h && b < 0.55 * h && (a < 0.15 * w || a > 0.85 * w))
			*c = o->c[2];
		else if (b > 0.25 * h && b < 0.33 * h && fabs(a - 0.5 * w) < 0.13 * w)
			*c = (rgb){.85f, .85f, .8f};
		else if (b < 0.22 * h)
			*c = scale(paint, 0.55f);
		else if (tall && b > 0.55 * h && a > 0.1 * w && a < 0.9 * w)
			*c = o->c[1];
	} else {
		if (fabs(a - 0.5 * w) < 0.03 || (tall && b > 0.55 * h && b < 0.85 * h && fmod(a, 1.6) > 0.2))
			*c = tall ? o->c[1] : scale(paint, 0.6f);
	}
	return 1;
}

static void draw_car(scene *sc, const object *o)
{
	double x0 = o->x - o->w / 2, x1 = o->x + o->w / 2, z = o->z;
	int u0 = (int)floor(sc->cx + sc->f * x0 / z), u1 = (int)ceil(sc->cx + sc->f * x1 / z);
	int v0 = (int)floor(sc->cy + sc->f * (sc->hc - o->h) / z), v1 = (int)ceil(sc->cy + sc->f * sc->hc / z);
	for (int y = v0 < 0 ? 0 : v0; y < v1 && y < sc->H; y++)
		for (int x = u0 < 0 ? 0 : u0; x < u1 && x < sc->W; x++) {
			double a = (x + 0.5 - sc->cx) * z / sc->f - x0, b = sc->hc - (y + 0.5 - sc->cy) * z / sc->f;
			rgb c;
			if (hidden(sc, x, y, z))
				continue;
			if (a >= 0 && a <= o->w && b >= 0 && b <= o->h && shade_car(o, 1, a, b, &c))
				put(sc, x, y, (float)z, c, SKD_CAR);
		}
	double xs = x1 < 0 ? x1 : x0 > 0 ? x0 : 0;
	int r[4];
	if (xs == 0 || !plane_rect(sc, xs, z, z + o->len, o->h, r))
		return;
	for (int y = r[2]; y < r[3]; y++)
		for (int x = r[0]; x < r[1]; x++) {
			double du = x + 0.5 - sc->cx;
			if (du * xs <= 0)
				continue;
			double Z = sc->f * xs / du;
			if (Z < z || Z > z + o->len || hidden(sc, x, y, Z))
				continue;
			double b = sc->hc - (y + 0.5 - sc->cy) * Z / sc->f;
			rgb c;
			if (b >= 0 && b <= o->h && shade_car(o, 0, Z - z, b, &c))
				put(sc, x, y, (float)Z, scale(c, 0.85f), SKD_CAR);
		}
}

static int thick(double px, double py, double ax, double ay, double bx, double by, double r)
{
	return seg_dist(px, py, ax, ay, bx, by) < r;
}

/* A person: px across (metres from the centre), py up. */
static int shade_person(const object *o, double px, double py, rgb *c)
{
	double H = o->h, ph = o->p[0];
	if (hypot(px, py - 0.925 * H) < 0.068 * H) {
		*c = py > 0.95 * H ? o->c[3] : o->c[2];
		return 1;
	}
	if (py > 0.5 * H && py < 0.86 * H && fabs(px) < (0.1 + 0.03 * (py - 0.5 * H) / (0.36 * H)) * H) {
		*c = o->c[0];
		return 1;
	}
	for (int s = -1; s <= 1; s += 2) {
		if (thick(px, py, s * 0.12 * H, 0.83 * H, s * 0.15 * H + s * ph * 0.08 * H, 0.5 * H, 0.032 * H)) {
			*c = py < 0.54 * H ? o->c[2] : o->c[0];
			return 1;
		}
		if (thick(px, py, s * 0.05 * H, 0.52 * H, s * (0.05 + 0.13 * ph) * H, 0.03 * H, 0.042 * H)) {
			*c = py < 0.05 * H ? (rgb){.1f, .1f, .1f} : o->c[1];
			return 1;
		}
	}
	if (o->variant && px > 0.14 * H && px < 0.24 * H && py > 0.4 * H && py < 0.58 * H) {
		*c = o->c[3]; /* a bag */
		return 1;
	}
	return 0;
}

/* A bicycle and its rider; variant 0 seen from the side (p[1] mirrors), 1 from behind. */
static int shade_bike(const object *o, double px, double py, rgb *c)
{
	double ph = o->p[0];
	rgb tyre = {.08f, .08f, .08f};
	if (o->variant == 1) {
		if (fabs(px) < 0.035 && py < 0.68) {
			*c = tyre;
			return 1;
		}
		for (int s = -1; s <= 1; s += 2)
			if (thick(px, py, s * 0.08, 0.95, s * 0.14, 0.35 + 0.12 * s * ph, 0.06)) {
				*c = o->c[1];
				return 1;
			}
		if (py > 0.9 && py < 1.45 && fabs(px) < 0.17) {
			*c = o->c[0];
			return 1;
		}
		if (thick(px, py, -0.27, 1.0, 0.27, 1.0, 0.03) || hypot(px, py - 1.57) < 0.11) {
			*c = py > 1.5 ? o->c[3] : o->c[2];
			return 1;
		}
		return 0;
	}
	px *= o->p[1];
	for (int k = -1; k <= 1; k += 2) {
		double d = hypot(px - k * 0.55, py - 0.34);
		if (d < 0.34 && d > 0.29) {
			*c = tyre;
			return 1;
		}
	}
	static const double frame[5][4] = {
		{-0.55, 0.34, 0.0, 0.3}, {0.0, 0.3, -0.12, 0.85}, {-0.12, 0.85, 0.42, 0.88},
		{0.42, 0.88, 0.55, 0.34}, {0.0, 0.3, 0.42, 0.8},
	};
	for (int k = 0; k < 5; k++)
		if (thick(px, py, frame[k][0], frame[k][1], frame[k][2], frame[k][3], 0.028)) {
			*c = o->c[2];
			return 1;
		}
	if (hypot(px - 0.22, py - 1.57) < 0.11) {
		*c = o->c[3];
		return 1;
	}
	if (thick(px, py, -0.1, 0.93, 0.14, 1.42, 0.08) || thick(px, py, 0.12, 1.38, 0.43, 1.0, 0.035)) {
		*c = o->c[0];
		return 1;
	}
	double kx = 0.14 + 0.08 * ph, ky = 0.62;
	if (thick(px, py, -0.1, 0.92, kx, ky, 0.055) || thick(px, py, kx, ky, 0.15 * ph, 0.3 - 0.12 * ph, 0.045)) {
		*c = o->c[1];
		return 1;
	}
	return 0;
}

/* A sign plate of size s centred at (dx, dy) = (0, 0): 0 round, 1 square, 2 triangle. */
static int plate(const object *o, double dx, double dy, double s, int shape, rgb *c)
{
	int in;
	if (shape == 0)
		in = hypot(dx, dy) < s / 2;
	else if (shape == 1)
		in = fabs(dx) < s / 2 && fabs(dy) < s * 0.4;
	else
		in = dy > -s * 0.43 && fabs(dx) < (s * 0.43 - dy) * 0.577 * 1.15;
	if (in) {
		int rim = shape == 0 ? hypot(dx, dy) > s * 0.38 : fabs(dx) > s * 0.38;
		*c = rim ? o->c[2] : o->c[1];
	}
	return in;
}

/* A pole, and what hangs on it: variant 0 a street lamp, 1 sign plates, 2 a traffic light.
 * p: 0 radius, 1 height, 2 arm or plate offset (signed, towards the road), 3 plate size,
 * 4 plate shape, 5 a second plate (variant 1) or the height of a plate on a lamp post
 * (variant 0, 0 for none). The pole is Pole; plates and lights are SignSymbol. */
static int shade_pole(const object *o, double px, double py, rgb *c, int *label)
{
	double r = o->p[0], hp = o->p[1], off = o->p[2], s = o->p[3];
	int shape = (int)o->p[4];
	*label = SKD_SIGN;
	if (o->variant == 0 && o->p[5] > 0 && plate(o, px, py - o->p[5], s, shape, c))
		return 1;
	if (o->variant == 1) {
		for (int k = 0; k < 1 + (o->p[5] > 0.5); k++)
			if (plate(o, px - off, py - (hp - s * 0.55 - k * s * 1.15), s, shape ^ k, c))
				return 1;
	} else if (o->variant == 2) {
		double bx = px - off, top = hp;
		if (fabs(bx) < 0.17 && py > top - 0.95 && py < top) {
			*c = o->c[1];
			for (int k = 0; k < 3; k++)
				if (hypot(bx, py - (top - 0.18 - 0.3 * k)) < 0.1)
					*c = k == (int)o->p[4] ? o->c[2] : scale(o->c[2], 0.25f);
			return 1;
		}
	}
	*label = SKD_POLE;
	if (fabs(px) < r && py < hp) {
		*c = scale(o->c[0], 1.1f - 0.5f * (float)(px * px / (r * r)));
		return 1;
	}
	if (o->variant != 1 && py > hp - 0.12 && py < hp && (off > 0 ? px > 0 && px < off : px < 0 && px > off)) {
		*c = o->c[0];
		return 1;
	}
	if (o->variant == 0 && fabs(px - off) < 0.28 && py > hp - 0.25 && py < hp) {
		*c = scale(o->c[0], 1.3f);
		return 1;
	}
	return 0;
}

static int shade_tree(const object *o, double px, double py, rgb *c)
{
	double R = o->p[0], base = o->p[1], k = o->p[2], tw = o->p[3];
	double dy = (py - base - R * k) / k, d = hypot(px, dy);
	double ang = atan2(dy, px);
	double edge = R * (0.72 + 0.45 * fbm(cos(ang) * 1.5 + 5, sin(ang) * 1.5 + 5, o->seed, 2));
	if (d < edge) {
		if (d > 0.35 * R && fbm(px * 1.6, py * 1.6, o->seed + 1, 2) > 0.66)
			return 0;
		*c = foliage(o->c[0], px * 1.5, py * 1.5, o->seed + 2, 1);
		return 1;
	}
	if (fabs(px) < tw * (1 - 0.3 * py / (base + R)) && py < base + R) {
		*c = scale(o->c[1], 0.8f + 0.4f * value_noise(px * 8, py * 2, o->seed + 3));
		return 1;
	}
	return 0;
}

/* Unlabelled street furniture: bins, bollards, crates, barriers. */
static int shade_clutter(const object *o, double px, double py, rgb *c)
{
	double w = o->w, h = o->h;
	switch (o->variant) {
	case 0: /* bin with a lid */
		*c = py > 0.85 * h ? o->c[1] : scale(o->c[0], 0.85f + 0.3f * (float)(px / w + 0.5));
		return fabs(px) < (py > 0.85 * h ? 0.5 : 0.42) * w;
	case 1: /* bollard */
		*c = py > 0.8 * h && py < 0.9 * h ? o->c[1] : o->c[0];
		return fabs(px) < 0.5 * w;
	case 2: /* barrier: striped board on two legs */
		if (py > 0.55 * h) {
			*c = fmod(px + 10, 0.5) < 0.25 ? o->c[0] : o->c[1];
			return 1;
		}
		*c = o->c[1];
		return fabs(fabs(px) - 0.4 * w) < 0.04;
	default: /* crates */
		*c = scale(o->c[0], 0.8f + 0.4f * value_noise(px * 3, py * 3, o->seed));
		return py < h * (px < 0 ? 1.0 : 0.6);
	}
}

/* A fence along the street. a along Z, b up. variant 0 pickets, 1 rails, 2 panels. */
static int shade_fence(const object *o, double a, double b, rgb *c)
{
	double h = o->h, sp = o->p[0];
	*c = scale(o->c[0], 0.85f + 0.3f * value_noise(a * 4, b * 4, o->seed));
	double post = fmod(a, 2.5);
	if (post < 0.1)
		return 1;
	switch (o->variant) {
	case 0:
		return fmod(a, sp) < o->p[1] || fabs(b - 0.8 * h) < 0.04 || fabs(b - 0.2 * h) < 0.04;
	case 1:
		return fabs(b - 0.9 * h) < 0.06 || fabs(b - 0.5 * h) < 0.06 || (o->p[2] > 0.5 && fabs(b - 0.15 * h) < 0.05);
	default:
		if (b > 0.92 * h || b < 0.08 * h)
			return 1;
		if (fmod(a * 10, 1.0) < 0.3 || fmod(b * 10, 1.0) < 0.3) {
			*c = scale(*c, 0.8f);
			return 1;
		}
		return o->p[2] > 0.5;
	}
}

static void draw_fence(scene *sc, const object *o)
{
	double xs = o->x;
	int r[4];
	if (xs == 0 || !plane_rect(sc, xs, o->z, o->z + o->len, o->h, r))
		return;
	for (int y = r[2]; y < r[3]; y++)
		for (int x = r[0]; x < r[1]; x++) {
			double du = x + 0.5 - sc->cx;
			if (du * xs <= 0)
				continue;
			double Z = sc->f * xs / du;
			if (Z < o->z || Z > o->z + o->len || hidden(sc, x, y, Z))
				continue;
			double b = sc->hc - (y + 0.5 - sc->cy) * Z / sc->f;
			rgb c;
			if (b >= 0 && b <= o->h && shade_fence(o, Z - o->z, b, &c))
				put(sc, x, y, (float)Z, c, SKD_FENCE);
		}
}

/* Upright objects facing the camera: people, bicycles, poles, trees, clutter. */
static void draw_billboard(scene *sc, const object *o)
{
	double z = o->z;
	int u0 = (int)floor(sc->cx + sc->f * (o->x - o->w / 2) / z);
	int u1 = (int)ceil(sc->cx + sc->f * (o->x + o->w / 2) / z);
	int v0 = (int)floor(sc->cy + sc->f * (sc->hc - o->h) / z);
	int v1 = (int)ceil(sc->cy + sc->f * sc->hc / z);
	for (int y = v0 < 0 ? 0 : v0; y < v1 && y < sc->H; y++)
		for (int x = u0 < 0 ? 0 : u0; x < u1 && x < sc->W; x++) {
			double px = (x + 0.5 - sc->cx) * z / sc->f - o->x;
			double py = sc->hc - (y + 0.5 - sc->cy) * z / sc->f;
			if (py < 0 || py > o->h || fabs(px) > o->w / 2 || hidden(sc, x, y, z))
				continue;
			rgb c;
			int label = SKD_IGNORE_LABEL, hit = 0;
			switch (o->kind) {
			case OBJ_PERSON: hit = shade_person(o, px, py, &c); label = SKD_PEDESTRIAN; break;
			case OBJ_BIKE: hit = shade_bike(o, px, py, &c); label = SKD_BICYCLIST; break;
			case OBJ_POLE: hit = shade_pole(o, px, py, &c, &label); break;
			case OBJ_TREE: hit = shade_tree(o, px, py, &c); label = SKD_TREE; break;
			default: hit = shade_clutter(o, px, py, &c); break;
			}
			if (hit)
				put(sc, x, y, (float)z, c, label);
		}
}

/* ---------- layout: every random decision of a scene, in a fixed order ---------- */

static void add(scene *sc, object o)
{
	if (sc->nobj < MAX_OBJ) {
		o.seed = (uint32_t)skd_rng_next(&sc->rng);
		sc->obj[sc->nobj++] = o;
	}
}

/* Whether a new car at (x, z) would overlap one already placed (same lane, too close). */
static int car_overlaps(const scene *sc, double x, double z, double len)
{
	for (int i = 0; i < sc->nobj; i++) {
		const object *o = &sc->obj[i];
		if (o->kind == OBJ_CAR && fabs(o->x - x) < 2.2 && z < o->z + o->len + 1 && o->z < z + len + 1)
			return 1;
	}
	return 0;
}

static void place_car(scene *sc, double x, double z, int parked)
{
	object o = {.kind = OBJ_CAR, .x = x, .z = z};
	double u = urand(sc, 0, 1);
	if (u < 0.07 && !parked) {
		o.variant = 2, o.w = urand(sc, 2.4, 2.55), o.h = urand(sc, 2.8, 3.4), o.len = urand(sc, 8, 12);
	} else if (u < 0.22) {
		o.variant = 1, o.w = urand(sc, 1.9, 2.1), o.h = urand(sc, 1.9, 2.4), o.len = urand(sc, 4.5, 5.5);
	} else {
		o.w = urand(sc, 1.65, 1.95), o.h = urand(sc, 1.35, 1.6), o.len = urand(sc, 3.8, 4.8);
	}
	o.c[0] = pick(sc, W_CAR);
	o.c[1] = mix(family(sc, F_DARK), sc->sky_bot, (float)urand(sc, 0, 0.5));
	o.c[2] = chance(sc, 0.8) ? (rgb){.75f, .12f, .1f} : (rgb){.9f, .55f, .1f};
	o.c[3] = family(sc, F_DARK);
	if (!car_overlaps(sc, x, z, o.len))
		add(sc, o);
}

static double pavement_x(scene *sc, int right, double margin)
{
	double in = right ? sc->road_r + sc->curb_w : sc->road_l - sc->curb_w;
	double out = sc->sides[right].x;
	double t = urand(sc, 0, 1);
	double a = in + (right ? margin : -margin), b = out + (right ? -margin : margin);
	return a + (b - a) * t;
}

static void place_person(scene *sc, double x, double z)
{
	object o = {.kind = OBJ_PERSON, .x = x, .z = z};
	o.h = chance(sc, 0.1) ? urand(sc, 1.0, 1.3) : urand(sc, 1.5, 1.9);
	o.w = 0.55 * o.h;
	o.p[0] = urand(sc, -1, 1);
	o.variant = chance(sc, 0.3);
	o.c[0] = pick(sc, W_CLOTHES);
	o.c[1] = pick(sc, W_CLOTHES);
	double skin = urand(sc, 0.3, 0.85);
	o.c[2] = (rgb){(float)skin, (float)(0.78 * skin), (float)(0.65 * skin)};
	o.c[3] = chance(sc, 0.5) ? family(sc, F_DARK) : pick(sc, W_CLOTHES);
	add(sc, o);
}

static void place_pole(scene *sc, int right, double z)
{
	double dir = right ? -1 : 1; /* towards the road */
	object o = {.kind = OBJ_POLE, .z = z};
	o.x = right ? sc->road_r + sc->curb_w + urand(sc, 0.2, 0.7) : sc->road_l - sc->curb_w - urand(sc, 0.2, 0.7);
	double u = urand(sc, 0, 1);
	o.c[0] = pick(sc, W_POLE);
	if (u < 0.42) {
		o.variant = 0;
		o.p[0] = urand(sc, 0.08, 0.15), o.p[1] = urand(sc, 5, 9), o.p[2] = dir * urand(sc, 0.8, 2.5);
		o.p[3] = urand(sc, 0.5, 0.8), o.p[4] = irand(sc, 3);
		o.p[5] = chance(sc, 0.4) ? urand(sc, 2.2, 3.2) : 0;
		o.c[1] = chance(sc, 0.4) ? family(sc, F_WHITE) : pick(sc, W_SIGN);
		o.c[2] = pick(sc, W_SIGN);
	} else if (u < 0.85) {
		o.variant = 1;
		o.p[0] = urand(sc, 0.035, 0.06), o.p[1] = urand(sc, 2.6, 3.6);
		o.p[3] = urand(sc, 0.5, 0.9), o.p[4] = irand(sc, 3), o.p[5] = urand(sc, 0, 1) < 0.5;
		o.p[2] = chance(sc, 0.5) ? 0 : dir * o.p[3] / 2;
		o.c[1] = chance(sc, 0.4) ? family(sc, F_WHITE) : pick(sc, W_SIGN);
		o.c[2] = pick(sc, W_SIGN);
	} else {
		o.variant = 2;
		o.p[0] = urand(sc, 0.06, 0.1), o.p[1] = urand(sc, 3, 4.5);
		o.p[2] = chance(sc, 0.5) ? 0 : dir * urand(sc, 0.5, 2.0);
		o.p[4] = irand(sc, 3);
		o.c[1] = chance(sc, 0.7) ? family(sc, F_DARK) : family(sc, F_YELLOW);
		static const rgb lit[3] = {{.9f, .15f, .1f}, {.95f, .7f, .1f}, {.2f, .85f, .4f}};
		o.c[2] = lit[(int)o.p[4]];
	}
	o.w = 2 * (fabs(o.p[2]) + 0.45) + 0.2;
	o.h = o.p[1] + 0.05;
	add(sc, o);
}

static void layout(scene *sc)
{
	int W = sc->W, H = sc->H;
	sc->cx = W * urand(sc, 0.4, 0.6);
	sc->cy = H * urand(sc, 0.4, 0.56);
	sc->f = W * urand(sc, 0.55, 0.85);
	sc->hc = urand(sc, 1.2, 1.9);
	sc->nseed = (uint32_t)skd_rng_next(&sc->rng);

	/* the street */
	double lw = urand(sc, 2.8, 3.6), cam = urand(sc, -0.5, 0.5);
	int nl = irand(sc, 3), nr = irand(sc, 2);
	sc->lane_w = lw;
	sc->nlanes = 1 + nl + nr;
	sc->road_l = cam - lw / 2 - nl * lw - (chance(sc, 0.5) ? 2.3 : 0);
	sc->road_r = cam + lw / 2 + nr * lw + (chance(sc, 0.5) ? 2.3 : 0);
	sc->nmarks = 0;
	for (int j = 0; j < nl; j++)
		sc->marks[sc->nmarks++] = cam - lw / 2 - j * lw;
	for (int j = 0; j < nr; j++)
		sc->marks[sc->nmarks++] = cam + lw / 2 + j * lw;
	sc->curb_w = urand(sc, 0.15, 0.35);
	sc->sides[0].x = sc->road_l - urand(sc, 1.5, 5);
	sc->sides[1].x = sc->road_r + urand(sc, 1.5, 5);
	sc->dash_len = urand(sc, 1.5, 4);
	sc->dash_period = sc->dash_len + urand(sc, 3, 9);
	sc->zebra_z = chance(sc, 0.25) ? urand(sc, 6, 30) : -100;
	sc->edge_lines = chance(sc, 0.5);
	sc->road = scale(pick(sc, W_ROAD), (float)urand(sc, 0.55, 0.85));
	sc->mark = chance(sc, 0.8) ? family(sc, F_WHITE) : family(sc, F_YELLOW);
	sc->pave = pick(sc, W_PAVE);
	sc->curb = chance(sc, 0.5) ? mix(sc->pave, (rgb){.9f, .9f, .9f}, 0.4f) : family(sc, F_GREY);
	sc->tile = urand(sc, 0.3, 1.2);

	/* sky and light */
	if (chance(sc, 0.45)) {
		sc->sky_top = family(sc, chance(sc, 0.5) ? F_WHITE : F_GREY);
		sc->sky_bot = mix(sc->sky_top, (rgb){.95f, .95f, .95f}, (float)urand(sc, 0.2, 0.6));
	} else {
		sc->sky_top = mix(family(sc, F_BLUE), (rgb){.8f, .85f, .95f}, (float)urand(sc, 0, 0.5));
		sc->sky_bot = mix(sc->sky_top, (rgb){.95f, .95f, .95f}, (float)urand(sc, 0.3, 0.8));
	}
	sc->cloud = family(sc, chance(sc, 0.7) ? F_WHITE : F_GREY);
	sc->cloud_amt = urand(sc, 0, 1);
	sc->cloud_thr = urand(sc, 0.4, 0.65);
	sc->shadow_side = irand(sc, 3) - 1;
	sc->shadow_f = urand(sc, 0.45, 0.8);
	sc->shadow_x0 = urand(sc, sc->sides[0].x, sc->sides[1].x);
	sc->shadow_k = urand(sc, -0.08, 0.08);
	for (int k = 0; k < 2; k++) {
		int shaded = sc->shadow_side == (k ? -1 : 1);
		sc->sides[k].shade = (shaded ? sc->shadow_f : 1.0) * urand(sc, 0.9, 1.1);
	}

	/* facades */
	sc->zend = urand(sc, 40, 220);
	for (int k = 0; k < 2; k++) {
		side *sd = &sc->sides[k];
		double z = urand(sc, 0.5, 3);
		while (z < sc->zend && sd->nseg < MAX_SEG) {
			segment *s = &sd->seg[sd->nseg++];
			double len = urand(sc, 6, 30);
			s->z0 = z;
			s->z1 = sd->nseg == MAX_SEG || z + len > sc->zend ? sc->zend : z + len;
			s->seed = (uint32_t)skd_rng_next(&sc->rng);
			if (chance(sc, 0.18)) {
				s->kind = SEG_TREES;
				s->height = urand(sc, 5, 12);
				s->wall = pick(sc, W_FOLIAGE);
			} else {
				s->kind = SEG_BUILDING;
				s->height = urand(sc, 4, 9) + (chance(sc, 0.6) ? urand(sc, 0, 22) : 0);
				s->wall = pick(sc, W_BUILDING);
				s->trim = chance(sc, 0.5) ? scale(s->wall, 0.7f) : pick(sc, W_BUILDING);
				s->glass = chance(sc, 0.5) ? family(sc, F_DARK) : mix(sc->sky_bot, family(sc, F_GREY), 0.5f);
				s->floor_h = urand(sc, 2.8, 3.8);
				s->win_w = urand(sc, 0.7, 1.8);
				s->win_h = urand(sc, 0.35, 0.6) * s->floor_h;
				s->win_sp = s->win_w + urand(sc, 0.5, 2.5);
				s->win_off = urand(sc, 0, s->win_sp);
				s->brick = chance(sc, 0.3);
				s->shop = chance(sc, 0.45);
				s->sign = chance(sc, s->shop ? 0.8 : 0.25);
				s->sign_a0 = urand(sc, 0.5, len / 2);
				s->sign_a1 = s->sign_a0 + urand(sc, 1.5, 8);
				s->signc = pick(sc, W_SIGN);
			}
			z += len;
		}
	}
	double haze = fmin(0.6, sc->zend / 400);
	int open_end = chance(sc, 0.6);
	for (double x = -1.3 * sc->zend; x < 1.3 * sc->zend && sc->nblock < MAX_BLOCK;) {
		block *b = &sc->blocks[sc->nblock++];
		double w = urand(sc, 0.04, 0.15) * sc->zend;
		b->x0 = x, b->x1 = x + w;
		double u = urand(sc, 0, 1); /* some of the distance is unrecognisable: void */
		b->label = u < 0.68 ? SKD_BUILDING : u < 0.92 ? SKD_TREE : SKD_IGNORE_LABEL;
		b->h = urand(sc, 3, 25);
		b->col = mix(pick(sc, b->label == SKD_TREE ? W_FOLIAGE : b->label == SKD_BUILDING ? W_BUILDING : W_ANY), sc->sky_bot, (float)haze);
		if (open_end && x + w > sc->road_l - 2 && x < sc->road_r + 2)
			b->h = 0;
		x += w;
	}

	/* traffic: moving cars in the lanes, parked cars along the curbs */
	for (int j = -nl; j <= nr; j++) {
		int n = poisson(sc, 1.2);
		for (int i = 0; i < n; i++)
			place_car(sc, cam + j * lw + urand(sc, -0.3, 0.3), urand(sc, j == 0 ? 9 : 5, 70), 0);
	}
	for (int k = 0; k < 2; k++) {
		int parking = k ? sc->road_r - (cam + lw / 2 + nr * lw) > 1 : (cam - lw / 2 - nl * lw) - sc->road_l > 1;
		for (double z = urand(sc, 2, 8); parking && z < 70; z += urand(sc, 5, 11))
			if (chance(sc, 0.8))
				place_car(sc, k ? sc->road_r - 1.1 : sc->road_l + 1.1, z, 1);
	}

	/* people */
	int n = poisson(sc, 6);
	for (int i = 0; i < n; i++) {
		int right = chance(sc, 0.5);
		double z = urand(sc, 3, 30);
		if (chance(sc, 0.1))
			place_person(sc, urand(sc, sc->road_l, sc->road_r), urand(sc, 6, 30));
		else
			place_person(sc, pavement_x(sc, right, 0.3), z);
		if (chance(sc, 0.3)) /* a companion */
			place_person(sc, pavement_x(sc, right, 0.3), z + urand(sc, -1, 1));
	}
	n = poisson(sc, 2.2);
	for (int i = 0; i < n; i++) {
		object o = {.kind = OBJ_BIKE, .h = 1.75, .z = urand(sc, 4, 30)};
		int right = chance(sc, 0.5);
		o.x = right ? sc->road_r - urand(sc, 0.5, 1.5) : sc->road_l + urand(sc, 0.5, 1.5);
		o.variant = chance(sc, 0.5);
		o.w = o.variant ? 0.7 : 1.8;
		o.p[0] = urand(sc, -1, 1), o.p[1] = chance(sc, 0.5) ? 1 : -1;
		o.c[0] = pick(sc, W_CLOTHES), o.c[1] = pick(sc, W_CLOTHES);
		o.c[2] = pick(sc, W_ANY), o.c[3] = pick(sc, W_CLOTHES);
		add(sc, o);
	}

	/* street furniture */
	for (int k = 0; k < 2; k++)
		for (double z = urand(sc, 3, 12); z < fmin(sc->zend, 90); z += urand(sc, 6, 22))
			place_pole(sc, k, z);
	for (int k = 0; k < 2; k++) {
		if (!chance(sc, 0.5))
			continue;
		for (double z = urand(sc, 3, 12); z < fmin(sc->zend, 80); z += urand(sc, 6, 18)) {
			object o = {.kind = OBJ_TREE, .z = z, .x = pavement_x(sc, k, 0.5)};
			o.p[0] = urand(sc, 1.2, 3.5), o.p[1] = urand(sc, 1.8, 3.0);
			o.p[2] = urand(sc, 0.8, 1.3), o.p[3] = urand(sc, 0.12, 0.25);
			o.w = 2.8 * o.p[0], o.h = o.p[1] + 2.9 * o.p[0] * o.p[2];
			o.c[0] = pick(sc, W_FOLIAGE);
			o.c[1] = chance(sc, 0.6) ? family(sc, F_BROWN) : family(sc, F_DARK);
			add(sc, o);
		}
	}
	for (int k = 0; k < 3; k++) {
		if (!chance(sc, k == 2 ? 0.25 : 0.6))
			continue;
		object o = {.kind = OBJ_FENCE, .variant = irand(sc, 3)};
		if (k == 2)
			o.x = sc->nmarks ? sc->marks[irand(sc, sc->nmarks)] : cam - lw / 2;
		else if (chance(sc, 0.5))
			o.x = sc->sides[k].x + (k ? -0.3 : 0.3);
		else
			o.x = k ? sc->road_r + sc->curb_w + 0.15 : sc->road_l - sc->curb_w - 0.15;
		o.z = urand(sc, 2, 25), o.len = urand(sc, 10, 50), o.h = urand(sc, 1.0, 2.0);
		o.p[0] = urand(sc, 0.1, 0.3), o.p[1] = urand(sc, 0.04, 0.1), o.p[2] = chance(sc, 0.5);
		o.c[0] = pick(sc, W_FENCE);
		add(sc, o);
	}
	n = poisson(sc, 4);
	for (int i = 0; i < n; i++) {
		object o = {.kind = OBJ_CLUTTER, .variant = irand(sc, 4), .z = urand(sc, 3, 40)};
		static const double size[4][2] = {{0.6, 1.0}, {0.15, 0.9}, {1.2, 1.0}, {0.8, 0.8}};
		o.w = size[o.variant][0], o.h = size[o.variant][1];
		o.x = o.variant == 2 && chance(sc, 0.4) ? urand(sc, sc->road_l, sc->road_r) : pavement_x(sc, chance(sc, 0.5), 0.3);
		o.c[0] = pick(sc, W_ANY), o.c[1] = pick(sc, W_ANY);
		add(sc, o);
	}
}

/* ---------- the camera: haze, unlabelled edges, exposure, blur, sensor noise ---------- */

static void develop(scene *sc)
{
	int H = sc->H, W = sc->W;
	size_t np = (size_t)H * W;
	float *img = sc->img;
	/* aerial perspective: far things fade into the horizon's colour */
	double vis = urand(sc, 150, 1000);
	for (size_t i = 0; i < np; i++)
		if (sc->depth[i] < FAR) {
			float t = 1 - expf(-(float)(sc->depth[i] / vis));
			img[i] += (sc->sky_bot.r - img[i]) * t;
			img[np + i] += (sc->sky_bot.g - img[np + i]) * t;
			img[2 * np + i] += (sc->sky_bot.b - img[2 * np + i]) * t;
		}
	/* annotators leave some object outlines unlabelled */
	double pv = chance(sc, 0.8) ? urand(sc, 0.2, 0.7) : 0;
	if (pv > 0) {
		int32_t *orig = (int32_t *)sc->depth; /* depth is no longer needed */
		memcpy(orig, sc->lab, np * sizeof *orig);
		for (int y = 0; y + 1 < H; y++)
			for (int x = 0; x + 1 < W; x++) {
				size_t i = (size_t)y * W + x;
				if ((orig[i] != orig[i + 1] || orig[i] != orig[i + W]) &&
				    skd_rng_next_uniform(&sc->rng) < pv)
					sc->lab[i] = SKD_IGNORE_LABEL;
			}
	}
	float expo = (float)urand(sc, 0.7, 1.3), gam = (float)urand(sc, 0.8, 1.25);
	float tint[3] = {(float)urand(sc, 0.9, 1.1), (float)urand(sc, 0.9, 1.1), (float)urand(sc, 0.9, 1.1)};
	enum { LUT = 1024 };
	float curve[LUT + 2]; /* the gamma curve, interpolated: powf per value is the slow part */
	for (int k = 0; k <= LUT; k++)
		curve[k] = powf((float)k / LUT, gam);
	curve[LUT + 1] = 1;
	for (int ch = 0; ch < 3; ch++)
		for (size_t i = 0; i < np; i++) {
			float v = clampf(img[ch * np + i] * expo * tint[ch], 0, 1) * LUT;
			int k = (int)v;
			img[ch * np + i] = curve[k] + (curve[k + 1] - curve[k]) * (v - (float)k);
		}
	if (chance(sc, 0.5)) { /* a soft lens: [1 2 1] blur, blended */
		float a = (float)urand(sc, 0.3, 1.0);
		float *row = sc->depth; /* scratch again: W floats */
		for (int ch = 0; ch < 3; ch++) {
			float *p = img + ch * np;
			for (int y = 0; y < H; y++) {
				float *r = p + (size_t)y * W;
				for (int x = 0; x < W; x++)
					row[x] = 0.25f * (r[x > 0 ? x - 1 : 0] + 2 * r[x] + r[x + 1 < W ? x + 1 : W - 1]);
				for (int x = 0; x < W; x++)
					r[x] += (row[x] - r[x]) * a;
			}
			for (int x = 0; x < W; x++) {
				float prev = p[x];
				for (int y = 0; y < H; y++) {
					float cur = p[(size_t)y * W + x];
					float next = p[(size_t)(y + 1 < H ? y + 1 : H - 1) * W + x];
					p[(size_t)y * W + x] = cur + (0.25f * (prev + 2 * cur + next) - cur) * a;
					prev = cur;
				}
			}
		}
	}
	/* Sensor noise: the sum of four 16-bit uniforms from one draw (Irwin-Hall), scaled to
	 * unit variance, is close enough to a Gaussian and far cheaper than Box-Muller. */
	float sigma = (float)urand(sc, 0.004, 0.03) * 1.7320508f / 65536.0f;
	for (size_t i = 0; i < 3 * np; i++) {
		uint64_t r = skd_rng_next(&sc->rng);
		float u = (float)((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48));
		float v = img[i] + sigma * (u - 2 * 65535.0f);
		img[i] = (float)(int)(clampf(v, 0, 1) * 255 + 0.5f) * (1.0f / 255); /* 8-bit, as a camera gives */
	}
}

int skd_synthetic_render(uint64_t seed, int split, int64_t index, int height, int width,
			 float *image, int32_t *label)
{
	if (height < 1 || width < 1 || height > 16384 || width > 16384)
		return skd_error("synthetic: image size must be 1..16384, got %dx%d", height, width);
	scene *sc = skd_calloc(1, sizeof *sc);
	if (!sc)
		return SKD_ERR;
	size_t np = (size_t)height * width;
	sc->depth = skd_malloc(np * sizeof *sc->depth);
	if (!sc->depth) {
		free(sc);
		return SKD_ERR;
	}
	sc->H = height, sc->W = width, sc->img = image, sc->lab = label;
	for (size_t i = 0; i < np; i++)
		sc->depth[i] = 2 * FAR;
	/* The scene's generator depends on (seed, split, index) only: each sample can be made
	 * alone, by any thread, at any size (the layout is drawn before the size is used). */
	uint64_t key = seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)split + 1) * 0xD1B54A32D192ED03ull ^
		       ((uint64_t)index + 1) * 0xA0761D6478BD642Full;
	skd_rng_seed(&sc->rng, key);
	layout(sc);
	int order[MAX_OBJ];
	for (int i = 0; i < sc->nobj; i++) { /* stable insertion sort, nearest first */
		int j = i;
		for (; j > 0 && sc->obj[order[j - 1]].z > sc->obj[i].z; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	for (int i = 0; i < sc->nobj; i++) {
		const object *o = &sc->obj[order[i]];
		if (o->kind == OBJ_CAR)
			draw_car(sc, o);
		else if (o->kind == OBJ_FENCE)
			draw_fence(sc, o);
		else
			draw_billboard(sc, o);
	}
	draw_facades(sc);
	draw_ground(sc);
	draw_backdrop(sc);
	draw_sky(sc);
	develop(sc);
	free(sc->depth);
	free(sc);
	return SKD_OK;
}
