/* augment.h — training augmentation and normalisation of (image, label) pairs (method.md §5).
 *
 * In order: random scale (bilinear image, nearest label, both sampling the same half-pixel
 * centred grid so they stay aligned), padding up to the crop size (image with the mean,
 * label with 255: bottom and right, as in the authors' code), a random crop, a horizontal
 * flip with probability 1/2, and per-channel (x - mean) / std.
 *
 * Every random draw comes from a private generator seeded by the caller, normally
 * skd_augment_seed(seed, epoch, index), so a sample is augmented the same way whichever
 * thread makes it and in whatever order.
 */
#ifndef SKD_AUGMENT_H
#define SKD_AUGMENT_H

#include <stdint.h>
#include "tensor.h"

typedef struct skd_transform {
	double scale_min, scale_max; /* 1, 1: no scaling */
	int crop_h, crop_w;          /* 0, 0: no crop */
	int flip;                    /* random horizontal flip */
	int normalize;               /* apply (x - mean) / std */
	float mean[3], std[3];       /* in [0, 1] pixel units; mean also pads */
} skd_transform;

/* The identity: no scale, crop or flip; mean 0 and std 1. */
void skd_transform_init(skd_transform *t);
/* SKD_ERR with a message for impossible settings (scale <= 0, std == 0, negative crop). */
int skd_transform_check(const skd_transform *t);

uint64_t skd_augment_seed(uint64_t seed, int64_t epoch, int64_t index);

/* image 3 x H x W float32, label H x W int32 (any strides). Two new references. */
int skd_transform_apply(const skd_transform *t, uint64_t seed, const skd_tensor *image,
			const skd_tensor *label, skd_tensor **out_image, skd_tensor **out_label);

#endif
