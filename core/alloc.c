/* alloc.c — a caching allocator for tensor storage.
 *
 * A training step allocates the same activation sizes every iteration. Freed blocks are kept
 * on per-size free lists and handed out again, instead of going back to the kernel (which
 * for large blocks means munmap, then page faults on every new touch). Sizes are rounded up
 * (64 B below 64 KiB, 4 KiB above) so near-equal requests share a list. The cache is bounded
 * (SKD_CACHE_MB, default 4096); past it blocks are freed at once. Compiled with
 * -DSKD_NO_CACHE (the sanitizer build), every block goes straight to free() so that
 * AddressSanitizer sees each use after free.
 *
 * Blocks of BIG_BLOCK bytes and more are mapped from the kernel directly and unmapped when they
 * leave the cache, so that skd_alloc_empty_cache really gives their memory back: glibc serves
 * such sizes from its heap once its adaptive mmap threshold has risen, and a hole in the heap
 * stays resident. Module:flatten relies on it to move a model's parameters into one buffer
 * without holding two copies at once (a ResNet-101 teacher's 260 MB). A big block records its
 * mapped size in a header, so a request the cache has no block of exactly its size for can
 * take a cached block up to twice as large: the backward's scratch sizes then serve the
 * next forward's activations instead of both staying resident (a PSPNet-ResNet18 training
 * step at 8x128x256 held 871 MB with exact sizes only).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "tensor.h"

#define NBUCKETS 1024
#define BIG_BLOCK ((size_t)1 << 20)
#define BIG_HEADER ((size_t)64) /* keeps the payload 64-byte aligned */
#define MAX_BIG_CLASSES 512

typedef struct block { struct block *next; } block;
typedef struct sizeclass {
	size_t size;
	block *free;
	struct sizeclass *next;
} sizeclass;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static sizeclass *buckets[NBUCKETS];
static size_t in_use, cached;
static size_t peak_in_use, peak_held; /* highs of in_use and in_use + cached since the last reset */

static size_t round_size(size_t n)
{
	size_t q = n < 65536 ? 64 : 4096;
	return (n + q - 1) / q * q;
}

#ifndef SKD_NO_CACHE /* the sanitizer build keeps no cache: these would be unused */
static size_t cache_limit;
static sizeclass *big_classes[MAX_BIG_CLASSES]; /* the classes of BIG_BLOCK and more */
static int nbig;

static void *big_map(size_t size)
{
	char *m = mmap(NULL, size + BIG_HEADER, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	*(size_t *)m = size;
	return m + BIG_HEADER;
}

static size_t big_size(const void *p)
{
	return *(const size_t *)((const char *)p - BIG_HEADER);
}

static void big_unmap(void *p)
{
	munmap((char *)p - BIG_HEADER, big_size(p) + BIG_HEADER);
}

static sizeclass *find_class(size_t size, int create)
{
	size_t h = (size / 64) % NBUCKETS;
	for (sizeclass *c = buckets[h]; c; c = c->next)
		if (c->size == size)
			return c;
	if (!create || (size >= BIG_BLOCK && nbig == MAX_BIG_CLASSES))
		return NULL;
	sizeclass *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->size = size;
	c->next = buckets[h];
	buckets[h] = c;
	if (size >= BIG_BLOCK)
		big_classes[nbig++] = c;
	return c;
}

/* The smallest class from size to 2·size with a free block: a big request's best fit. */
static sizeclass *best_fit(size_t size)
{
	sizeclass *best = NULL;
	for (int i = 0; i < nbig; i++) {
		sizeclass *c = big_classes[i];
		if (c->free && c->size >= size && c->size <= 2 * size &&
		    (!best || c->size < best->size))
			best = c;
	}
	return best;
}

static size_t limit_bytes(void)
{
	if (cache_limit == 0) {
		const char *env = getenv("SKD_CACHE_MB");
		long mb = env ? atol(env) : 4096;
		cache_limit = (size_t)(mb < 0 ? 0 : mb) << 20;
		if (cache_limit == 0)
			cache_limit = 1; /* caching off, but initialised */
	}
	return cache_limit;
}
#endif

/* The size a block really has: its class, or for a big block what it was mapped with. */
static size_t block_size(const void *p, size_t nbytes)
{
	size_t size = round_size(nbytes ? nbytes : 1);
#ifndef SKD_NO_CACHE
	if (size >= BIG_BLOCK)
		return big_size(p);
#else
	(void)p;
#endif
	return size;
}

static void release(void *p, size_t size)
{
#ifndef SKD_NO_CACHE
	if (size >= BIG_BLOCK) {
		big_unmap(p);
		return;
	}
#endif
	(void)size;
	free(p);
}

void *skd_alloc(size_t nbytes)
{
	size_t size = round_size(nbytes ? nbytes : 1);
	void *p = NULL;
#ifndef SKD_NO_CACHE
	pthread_mutex_lock(&lock);
	sizeclass *c = find_class(size, 0);
	if (!(c && c->free) && size >= BIG_BLOCK)
		c = best_fit(size);
	if (c && c->free) {
		block *b = c->free;
		c->free = b->next;
		cached -= c->size;
		in_use += c->size;
		if (in_use > peak_in_use)
			peak_in_use = in_use;
		p = b;
	}
	pthread_mutex_unlock(&lock);
	if (p)
		return p;
	if (size >= BIG_BLOCK)
		p = big_map(size);
	else
#endif
		if (posix_memalign(&p, 64, size) != 0)
			p = NULL;
	if (!p)
		return skd_error_null("out of memory (asked for %zu bytes)", nbytes);
	pthread_mutex_lock(&lock);
	in_use += size;
	if (in_use > peak_in_use)
		peak_in_use = in_use;
	if (in_use + cached > peak_held)
		peak_held = in_use + cached;
	pthread_mutex_unlock(&lock);
	return p;
}

void skd_free(void *p, size_t nbytes)
{
	if (!p)
		return;
	size_t size = block_size(p, nbytes);
	pthread_mutex_lock(&lock);
	in_use -= size;
#ifndef SKD_NO_CACHE
	if (cached + size <= limit_bytes()) {
		sizeclass *c = find_class(size, 1);
		if (c) {
			block *b = p;
			b->next = c->free;
			c->free = b;
			cached += size;
			pthread_mutex_unlock(&lock);
			return;
		}
	}
#endif
	pthread_mutex_unlock(&lock);
	release(p, size);
}

/* Read under the lock: the loader's worker allocates and frees concurrently. */
size_t skd_alloc_bytes_in_use(void)
{
	pthread_mutex_lock(&lock);
	size_t n = in_use;
	pthread_mutex_unlock(&lock);
	return n;
}

size_t skd_alloc_bytes_cached(void)
{
	pthread_mutex_lock(&lock);
	size_t n = cached;
	pthread_mutex_unlock(&lock);
	return n;
}

/* The highest bytes in use, and held (in use + cached), since the last reset: the first is
 * what the computation needs, the gap to the second what the cache keeps beside it. */
void skd_alloc_peaks(size_t *in_use_peak, size_t *held_peak)
{
	pthread_mutex_lock(&lock);
	*in_use_peak = peak_in_use;
	*held_peak = peak_held;
	pthread_mutex_unlock(&lock);
}

void skd_alloc_reset_peaks(void)
{
	pthread_mutex_lock(&lock);
	peak_in_use = in_use;
	peak_held = in_use + cached;
	pthread_mutex_unlock(&lock);
}

void skd_alloc_empty_cache(void)
{
	pthread_mutex_lock(&lock);
	for (int h = 0; h < NBUCKETS; h++)
		for (sizeclass *c = buckets[h]; c; c = c->next)
			while (c->free) {
				block *b = c->free;
				c->free = b->next;
				cached -= c->size;
				release(b, c->size);
			}
	pthread_mutex_unlock(&lock);
}
