/* loader.c — batching, epoch order and the prefetch worker (loader.h).
 *
 * The worker and the caller share one job slot under a mutex: the caller posts (epoch,
 * position), the worker builds that batch and marks it done. After taking a batch the caller
 * posts the one after it, so it is built while the caller's training step runs. A batch is
 * a pure function of (seed, epoch, position), so who builds it, and when, does not matter.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "loader.h"
#include "rng.h"

typedef struct order_cache { int64_t epoch; int64_t *perm; } order_cache;

enum { JOB_NONE, JOB_WAITING, JOB_RUNNING, JOB_DONE };

struct skd_loader {
	skd_dataset *ds;
	skd_loader_opts o;
	int64_t n, epoch_len; /* samples, and samples used per epoch (drop_last) */
	int64_t epoch, pos;   /* the caller's cursor */
	order_cache order;    /* the caller's thread */
	/* the worker; everything below `mu` is shared and read or written under it */
	int started;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int quit, job, job_rc;
	int64_t job_epoch, job_pos;
	skd_batch job_out;
	char job_err[1024];
	order_cache worker_order; /* the worker's thread */
};

/* ---------- epoch order ---------- */

void skd_loader_epoch_order(uint64_t seed, int64_t epoch, int shuffle, int64_t n, int64_t *out)
{
	for (int64_t i = 0; i < n; i++)
		out[i] = i;
	if (!shuffle)
		return;
	skd_rng rng;
	skd_rng_seed(&rng, (seed ^ 0x6A09E667F3BCC908ull) + (uint64_t)epoch * 0x9E3779B97F4A7C15ull);
	for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates with an unbiased draw in [0, i] */
		uint64_t m = (uint64_t)i + 1, limit = UINT64_MAX - UINT64_MAX % m, x;
		do
			x = skd_rng_next(&rng);
		while (x >= limit);
		int64_t j = (int64_t)(x % m), t = out[i];
		out[i] = out[j];
		out[j] = t;
	}
}

static const int64_t *order_of(const skd_loader *ld, order_cache *oc, int64_t epoch)
{
	if (oc->epoch != epoch) {
		skd_loader_epoch_order(ld->o.seed, epoch, ld->o.shuffle, ld->n, oc->perm);
		oc->epoch = epoch;
	}
	return oc->perm;
}

/* ---------- building one batch (either thread) ---------- */

void skd_batch_free(skd_batch *b)
{
	skd_tensor_release(b->image);
	skd_tensor_release(b->label);
	free(b->index);
	memset(b, 0, sizeof *b);
}

static int build_batch(const skd_loader *ld, order_cache *oc, int64_t epoch, int64_t pos, skd_batch *out)
{
	memset(out, 0, sizeof *out);
	int64_t B = ld->epoch_len - pos < ld->o.batch ? ld->epoch_len - pos : ld->o.batch;
	const int64_t *perm = order_of(ld, oc, epoch);
	out->index = skd_malloc(sizeof(int64_t) * (size_t)B);
	if (!out->index)
		return SKD_ERR;
	out->n = (int)B;
	for (int64_t b = 0; b < B; b++) {
		int64_t idx = perm[pos + b];
		out->index[b] = idx;
		skd_tensor *img, *lab, *ti, *tl;
		if (skd_dataset_get(ld->ds, idx, &img, &lab))
			goto fail;
		int rc = skd_transform_apply(&ld->o.transform, skd_augment_seed(ld->o.seed, epoch, idx),
					     img, lab, &ti, &tl);
		skd_tensor_release(img);
		skd_tensor_release(lab);
		if (rc)
			goto fail;
		int64_t H = ti->shape[1], W = ti->shape[2];
		if (b == 0) {
			out->image = skd_tensor_empty(SKD_FLOAT32, 4, (int64_t[]){B, 3, H, W});
			out->label = skd_tensor_empty(SKD_INT32, 3, (int64_t[]){B, H, W});
		} else if (out->image->shape[2] != H || out->image->shape[3] != W) {
			skd_error("loader: sample %lld is 3x%lldx%lld but the batch's first sample (%lld) is "
				  "3x%lldx%lld; give the transform a crop size to batch images of different sizes",
				  (long long)idx + 1, (long long)H, (long long)W, (long long)out->index[0] + 1,
				  (long long)out->image->shape[2], (long long)out->image->shape[3]);
			skd_tensor_release(ti);
			skd_tensor_release(tl);
			goto fail;
		}
		if (!out->image || !out->label) {
			skd_tensor_release(ti);
			skd_tensor_release(tl);
			goto fail;
		}
		size_t np = (size_t)(H * W);
		memcpy(skd_tensor_f32(out->image) + (size_t)b * 3 * np, skd_tensor_f32(ti), 3 * np * sizeof(float));
		memcpy(skd_tensor_i32(out->label) + (size_t)b * np, skd_tensor_i32(tl), np * sizeof(int32_t));
		skd_tensor_release(ti);
		skd_tensor_release(tl);
	}
	return SKD_OK;
fail:
	skd_batch_free(out);
	return SKD_ERR;
}

/* ---------- the worker ---------- */

static void *worker_main(void *arg)
{
	skd_loader *ld = arg;
	pthread_mutex_lock(&ld->mu);
	for (;;) {
		while (!ld->quit && ld->job != JOB_WAITING)
			pthread_cond_wait(&ld->cv, &ld->mu);
		if (ld->quit)
			break;
		ld->job = JOB_RUNNING;
		int64_t e = ld->job_epoch, p = ld->job_pos;
		pthread_mutex_unlock(&ld->mu);
		skd_batch out;
		int rc = build_batch(ld, &ld->worker_order, e, p, &out);
		pthread_mutex_lock(&ld->mu);
		ld->job_out = out;
		ld->job_rc = rc;
		if (rc)
			snprintf(ld->job_err, sizeof ld->job_err, "%s", skd_last_error());
		ld->job = JOB_DONE;
		pthread_cond_broadcast(&ld->cv);
	}
	pthread_mutex_unlock(&ld->mu);
	return NULL;
}

/* Under mu: waits for a running job, then drops whatever the slot holds. */
static void drop_job(skd_loader *ld)
{
	while (ld->job == JOB_RUNNING)
		pthread_cond_wait(&ld->cv, &ld->mu);
	if (ld->job == JOB_DONE)
		skd_batch_free(&ld->job_out);
	ld->job = JOB_NONE;
}

/* Under mu. */
static void post_job(skd_loader *ld, int64_t epoch, int64_t pos)
{
	ld->job = JOB_WAITING;
	ld->job_epoch = epoch;
	ld->job_pos = pos;
	pthread_cond_broadcast(&ld->cv);
}

static int next_prefetched(skd_loader *ld, int64_t e, int64_t p, skd_batch *out)
{
	pthread_mutex_lock(&ld->mu);
	if (ld->job != JOB_NONE && (ld->job_epoch != e || ld->job_pos != p))
		drop_job(ld);
	if (ld->job == JOB_NONE)
		post_job(ld, e, p);
	while (ld->job != JOB_DONE)
		pthread_cond_wait(&ld->cv, &ld->mu);
	int rc = ld->job_rc;
	*out = ld->job_out;
	memset(&ld->job_out, 0, sizeof ld->job_out);
	ld->job = JOB_NONE;
	if (rc == SKD_OK) {
		int64_t p2 = p + out->n, e2 = e;
		if (p2 >= ld->epoch_len)
			e2++, p2 = 0;
		post_job(ld, e2, p2);
	} else {
		skd_error("%s", ld->job_err);
	}
	pthread_mutex_unlock(&ld->mu);
	return rc;
}

/* ---------- the loader ---------- */

skd_loader *skd_loader_new(skd_dataset *ds, const skd_loader_opts *opts)
{
	int64_t n = skd_dataset_size(ds);
	if (opts->batch < 1)
		return skd_error_null("loader: batch must be at least 1, got %d", opts->batch);
	if (n < 1 || (opts->drop_last && n < opts->batch))
		return skd_error_null("loader: the dataset has %lld samples, too few for one batch of %d%s",
				      (long long)n, opts->batch, opts->drop_last ? " with drop_last" : "");
	if (skd_transform_check(&opts->transform))
		return NULL;
	skd_loader *ld = skd_calloc(1, sizeof *ld);
	if (!ld)
		return NULL;
	ld->o = *opts;
	if (!skd_dataset_threadsafe(ds))
		ld->o.prefetch = 0;
	ld->n = n;
	ld->epoch_len = opts->drop_last ? n / opts->batch * opts->batch : n;
	ld->order.epoch = ld->worker_order.epoch = -1;
	ld->order.perm = skd_malloc(sizeof(int64_t) * (size_t)n);
	ld->worker_order.perm = skd_malloc(sizeof(int64_t) * (size_t)n);
	if (!ld->order.perm || !ld->worker_order.perm) {
		free(ld->order.perm);
		free(ld->worker_order.perm);
		free(ld);
		return NULL;
	}
	pthread_mutex_init(&ld->mu, NULL);
	pthread_cond_init(&ld->cv, NULL);
	ld->ds = skd_dataset_retain(ds);
	return ld;
}

void skd_loader_free(skd_loader *ld)
{
	if (!ld)
		return;
	if (ld->started) {
		pthread_mutex_lock(&ld->mu);
		ld->quit = 1;
		pthread_cond_broadcast(&ld->cv);
		pthread_mutex_unlock(&ld->mu);
		pthread_join(ld->thread, NULL);
	}
	if (ld->job == JOB_DONE)
		skd_batch_free(&ld->job_out);
	pthread_mutex_destroy(&ld->mu);
	pthread_cond_destroy(&ld->cv);
	skd_dataset_release(ld->ds);
	free(ld->order.perm);
	free(ld->worker_order.perm);
	free(ld);
}

int64_t skd_loader_batches_per_epoch(const skd_loader *ld)
{
	return (ld->epoch_len + ld->o.batch - 1) / ld->o.batch;
}

int skd_loader_next(skd_loader *ld, skd_batch *out, int roll_over)
{
	memset(out, 0, sizeof *out);
	if (ld->pos >= ld->epoch_len) {
		ld->epoch++;
		ld->pos = 0;
		if (!roll_over)
			return SKD_OK;
	}
	if (ld->o.prefetch && !ld->started) {
		if (pthread_create(&ld->thread, NULL, worker_main, ld) == 0)
			ld->started = 1;
		else
			ld->o.prefetch = 0; /* no thread to be had: build batches here instead */
	}
	int rc = ld->o.prefetch ? next_prefetched(ld, ld->epoch, ld->pos, out)
				: build_batch(ld, &ld->order, ld->epoch, ld->pos, out);
	if (rc == SKD_OK)
		ld->pos += out->n;
	return rc;
}

void skd_loader_get_state(const skd_loader *ld, int64_t *epoch, int64_t *position)
{
	*epoch = ld->epoch;
	*position = ld->pos;
}

int skd_loader_set_state(skd_loader *ld, int64_t epoch, int64_t position)
{
	if (epoch < 0 || position < 0 || position > ld->epoch_len)
		return skd_error("loader: state (epoch %lld, position %lld) is out of range (position "
				 "0..%lld)", (long long)epoch + 1, (long long)position, (long long)ld->epoch_len);
	if (ld->started) {
		pthread_mutex_lock(&ld->mu);
		drop_job(ld);
		pthread_mutex_unlock(&ld->mu);
	}
	ld->epoch = epoch;
	ld->pos = position;
	return SKD_OK;
}
