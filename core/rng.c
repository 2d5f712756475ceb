/* rng.c — xoshiro256** (Blackman & Vigna), seeded by splitmix64. */
#include <math.h>
#include "rng.h"

static skd_rng global = {{0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 1}};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void skd_rng_seed(skd_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

uint64_t skd_rng_next(skd_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double skd_rng_next_uniform(skd_rng *r)
{
	return (double)(skd_rng_next(r) >> 11) * 0x1.0p-53;
}

double skd_rng_next_normal(skd_rng *r)
{
	/* Box-Muller without caching the second value, so the stream position depends only on
	 * the number of calls. 1 - u keeps the log argument in (0, 1]. */
	double u1 = 1.0 - skd_rng_next_uniform(r);
	double u2 = skd_rng_next_uniform(r);
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void skd_manual_seed(uint64_t seed)
{
	skd_rng_seed(&global, seed);
}

uint64_t skd_rng_u64(void)
{
	return skd_rng_next(&global);
}

double skd_rng_uniform(void)
{
	return skd_rng_next_uniform(&global);
}

double skd_rng_normal(void)
{
	return skd_rng_next_normal(&global);
}

uint64_t skd_rng_below(uint64_t n)
{
	if (n == 0)
		return 0;
	uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the biased tail */
	uint64_t x;
	do
		x = skd_rng_next(&global);
	while (x >= limit);
	return x % n;
}

void skd_rng_get_state(uint64_t state[4])
{
	for (int i = 0; i < 4; i++)
		state[i] = global.s[i];
}

void skd_rng_set_state(const uint64_t state[4])
{
	for (int i = 0; i < 4; i++)
		global.s[i] = state[i];
}
