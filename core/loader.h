/* loader.h — batches from a dataset: epoch shuffling, augmentation, background prefetch.
 *
 * The order of epoch e is a permutation drawn from a generator seeded by (seed, e); sample i
 * of epoch e is augmented with skd_augment_seed(seed, e, i). So a batch depends only on
 * (seed, epoch, position): prefetching, resuming from a saved state, or building batches
 * on another thread all give the same bytes.
 *
 * With prefetch, one worker thread builds the next batch while the caller computes. The
 * worker touches only the dataset (read-only) and new tensors; it never calls back into the
 * caller (callback datasets are therefore loaded on the caller's thread, without prefetch).
 */
#ifndef SKD_LOADER_H
#define SKD_LOADER_H

#include <stdint.h>
#include "augment.h"
#include "dataset.h"

typedef struct skd_loader_opts {
	int batch;       /* samples per batch, >= 1 */
	int shuffle;     /* a new permutation every epoch; else dataset order */
	int drop_last;   /* skip the epoch's last batch when it would be short */
	int prefetch;    /* build the next batch on a worker thread */
	uint64_t seed;
	skd_transform transform;
} skd_loader_opts;

typedef struct skd_batch {
	skd_tensor *image; /* B x 3 x H x W float32 */
	skd_tensor *label; /* B x H x W int32 */
	int64_t *index;    /* B dataset indices, 0-based (malloc'ed) */
	int n;             /* B */
} skd_batch;

typedef struct skd_loader skd_loader;

/* Retains ds. NULL with a message for bad options. */
skd_loader *skd_loader_new(skd_dataset *ds, const skd_loader_opts *opts);
/* Stops the worker (waiting for the batch it is building) and releases everything. */
void skd_loader_free(skd_loader *ld);

int64_t skd_loader_batches_per_epoch(const skd_loader *ld);

/* The next batch. At the end of an epoch the loader moves to the next one; with
 * roll_over == 0 that call returns SKD_OK with out->image == NULL (the epoch's end), with
 * roll_over != 0 it goes on with the next epoch's first batch. */
int skd_loader_next(skd_loader *ld, skd_batch *out, int roll_over);
void skd_batch_free(skd_batch *b);

/* Where the loader stands: epoch (0-based) and samples consumed in it. */
void skd_loader_get_state(const skd_loader *ld, int64_t *epoch, int64_t *position);
/* Moves there (dropping a prefetched batch); the next batch is then exactly the one an
 * uninterrupted loader would give at that point. */
int skd_loader_set_state(skd_loader *ld, int64_t epoch, int64_t position);

/* The sample order of an epoch: n indices (0-based) into out. */
void skd_loader_epoch_order(uint64_t seed, int64_t epoch, int shuffle, int64_t n, int64_t *out);

#endif
