/* rng.h — the engine's one random generator (xoshiro256**, seeded through splitmix64).
 * Data order, augmentation, dropout and initialisation all draw from it, always from the
 * calling thread and in a fixed order, so a run repeats bit for bit for a given seed. */
#ifndef SKD_RNG_H
#define SKD_RNG_H

#include <stdint.h>

void skd_manual_seed(uint64_t seed);
uint64_t skd_rng_u64(void);
double skd_rng_uniform(void);              /* [0, 1) with 53 random bits */
double skd_rng_normal(void);               /* standard normal (Box-Muller) */
uint64_t skd_rng_below(uint64_t n);        /* uniform integer in [0, n), unbiased */
void skd_rng_get_state(uint64_t state[4]); /* for checkpoints: resume repeats the draws */
void skd_rng_set_state(const uint64_t state[4]);

/* A private generator for code that must not disturb the global stream (data workers). */
typedef struct skd_rng { uint64_t s[4]; } skd_rng;
void skd_rng_seed(skd_rng *r, uint64_t seed);
uint64_t skd_rng_next(skd_rng *r);
double skd_rng_next_uniform(skd_rng *r);
double skd_rng_next_normal(skd_rng *r);

#endif
