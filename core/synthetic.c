/* synthetic.c — procedural street scenes with CamVid labels (synthetic.h): the composition.
 *
 * Every random decision of a scene (the street, its buildings and trees, the objects and
 * their colours) is drawn here in a fixed order from the scene's generator; the painters of
 * synthetic_draw.c then render it nearest first into depth-tested buffers (a depth buffer
 * decides who is in front: the painter's order without sorting overlapping planes), and
 * the camera stage below adds haze, unlabelled outlines, exposure, blur and sensor noise.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "synthetic_internal.h"

const char *const skd_camvid_names[SKD_CAMVID_CLASSES] = {
	"Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
	"Pedestrian", "Bicyclist",
};

const uint8_t skd_camvid_palette[SKD_CAMVID_CLASSES + 1][3] = {
	{128, 128, 128}, {128, 0, 0}, {192, 192, 128}, {128, 64, 128}, {60, 40, 222},
	{128, 128, 0}, {192, 128, 128}, {64, 64, 128}, {64, 0, 128}, {64, 64, 0},
	{0, 128, 192}, {0, 0, 0},
};

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
			skd_synth_draw_car(sc, o);
		else if (o->kind == OBJ_FENCE)
			skd_synth_draw_fence(sc, o);
		else
			skd_synth_draw_billboard(sc, o);
	}
	skd_synth_draw_facades(sc);
	skd_synth_draw_ground(sc);
	skd_synth_draw_backdrop(sc);
	skd_synth_draw_sky(sc);
	develop(sc);
	free(sc->depth);
	free(sc);
	return SKD_OK;
}
