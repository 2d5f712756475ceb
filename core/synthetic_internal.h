/* synthetic_internal.h — what the two halves of the synthetic street scenes share (private:
 * included by synthetic.c, the scene's composition, and synthetic_draw.c, its painting).
 *
 * The scene struct is the whole state of one render: the camera, the random layout that
 * synthetic.c draws in a fixed order, and the image, label and depth buffers the painters
 * of synthetic_draw.c fill. Painting draws nothing at random: all randomness stays in the
 * composition, so a scene's bytes depend only on (seed, split, index) and the size.
 */
#ifndef SKD_SYNTHETIC_INTERNAL_H
#define SKD_SYNTHETIC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "rng.h"
#include "synthetic.h"

#define MAX_SEG 24
#define MAX_OBJ 96
#define MAX_BLOCK 48
#define FAR 1e9f

typedef struct rgb { float r, g, b; } rgb;

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

/* ---------- the painters (synthetic_draw.c) ----------
 * Called nearest first: a depth buffer keeps whatever is in front, so most pixels are shaded
 * once. First the objects (sorted nearest first by the caller): car sides and backs, fences,
 * and the upright things drawn as billboards at their depth (people, bikes, poles, trees,
 * clutter); then the facades along the street, the ground, the backdrop at the street's
 * end and the sky. */
void skd_synth_draw_car(scene *sc, const object *o);
void skd_synth_draw_fence(scene *sc, const object *o);
void skd_synth_draw_billboard(scene *sc, const object *o);
void skd_synth_draw_facades(scene *sc);
void skd_synth_draw_ground(scene *sc);
void skd_synth_draw_backdrop(scene *sc);
void skd_synth_draw_sky(scene *sc);

#endif
