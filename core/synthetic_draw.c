/* synthetic_draw.c — painting the synthetic street scenes (synthetic_internal.h): value
 * noise for texture, the depth-tested pixel writer, and the painters of the sky, the ground,
 * the facades and backdrop, and of each kind of object.
 *
 * World: metres, Y up, camera at X = 0, height hc, looking down +Z. A point projects to
 * u = cx + f X / Z, v = cy + f (hc - Y) / Z (pixels). Planes parallel to the street (ground,
 * facades, side fences, car sides) are drawn by casting each pixel's ray onto them; upright
 * objects facing the camera (people, poles, trees, clutter, car backs) are drawn as
 * billboards at their depth. Nothing here draws a random number: textures are hashed from
 * the seeds synthetic.c chose for each surface.
 */
#include <math.h>
#include "synthetic_internal.h"

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

/* Distance from (px, py) to the segment (ax, ay)-(bx, by). */
static double seg_dist(double px, double py, double ax, double ay, double bx, double by)
{
	double dx = bx - ax, dy = by - ay;
	double t = ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy + 1e-12);
	t = t < 0 ? 0 : t > 1 ? 1 : t;
	double ex = px - ax - t * dx, ey = py - ay - t * dy;
	return sqrt(ex * ex + ey * ey);
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

void skd_synth_draw_sky(scene *sc)
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

void skd_synth_draw_ground(scene *sc)
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

void skd_synth_draw_facades(scene *sc)
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

void skd_synth_draw_backdrop(scene *sc)
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

/* Whether pixel (x, y) sees that plane (X = xs, Z in [z0, z1], Y in [0, h]) in front of what
 * is drawn there; if so *Z is the depth and *b the height it sees. */
static int plane_point(const scene *sc, int x, int y, double xs, double z0, double z1, double h,
		       double *Z, double *b)
{
	double du = x + 0.5 - sc->cx;
	if (du * xs <= 0)
		return 0;
	*Z = sc->f * xs / du;
	if (*Z < z0 || *Z > z1 || hidden(sc, x, y, *Z))
		return 0;
	*b = sc->hc - (y + 0.5 - sc->cy) * *Z / sc->f;
	return *b >= 0 && *b <= h;
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

void skd_synth_draw_car(scene *sc, const object *o)
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
			double Z, b;
			rgb c;
			if (plane_point(sc, x, y, xs, z, z + o->len, o->h, &Z, &b) &&
			    shade_car(o, 0, Z - z, b, &c))
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

void skd_synth_draw_fence(scene *sc, const object *o)
{
	double xs = o->x;
	int r[4];
	if (xs == 0 || !plane_rect(sc, xs, o->z, o->z + o->len, o->h, r))
		return;
	for (int y = r[2]; y < r[3]; y++)
		for (int x = r[0]; x < r[1]; x++) {
			double Z, b;
			rgb c;
			if (plane_point(sc, x, y, xs, o->z, o->z + o->len, o->h, &Z, &b) &&
			    shade_fence(o, Z - o->z, b, &c))
				put(sc, x, y, (float)Z, c, SKD_FENCE);
		}
}

/* Upright objects facing the camera: people, bicycles, poles, trees, clutter. */
void skd_synth_draw_billboard(scene *sc, const object *o)
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
