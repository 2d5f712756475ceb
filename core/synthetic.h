/* synthetic.h — the embedded default dataset: street scenes drawn procedurally.
 *
 * A scene is a pinhole view down a street: sky, buildings and tree rows on both sides, road
 * and pavements in perspective, cars, pedestrians, bicyclists, poles with signs, fences and
 * unlabelled clutter, all placed in metres and projected, hidden by a depth buffer; then
 * lighting, blur and noise. Colours are drawn from families shared between classes, so a
 * network has to use texture, shape and context, not a colour lookup.
 *
 * Everything comes from a private generator seeded by (seed, split, index): the same
 * arguments give the same bytes, on any thread, in any order. Labels are the 11 CamVid
 * classes (skd_camvid_names) and SKD_IGNORE_LABEL for void.
 */
#ifndef SKD_SYNTHETIC_H
#define SKD_SYNTHETIC_H

#include <stdint.h>

#define SKD_IGNORE_LABEL 255
#define SKD_CAMVID_CLASSES 11

enum {
	SKD_SKY = 0, SKD_BUILDING, SKD_POLE, SKD_ROAD, SKD_PAVEMENT, SKD_TREE,
	SKD_SIGN, SKD_FENCE, SKD_CAR, SKD_PEDESTRIAN, SKD_BICYCLIST
};

extern const char *const skd_camvid_names[SKD_CAMVID_CLASSES];
/* Display colours (RGB) of the 11 classes and, last, of void: SegNet's camvid11 palette. */
extern const uint8_t skd_camvid_palette[SKD_CAMVID_CLASSES + 1][3];

/* Renders scene `index` of `split` (0 train, 1 val, 2 test) into image (3 x height x width
 * floats in [0, 1], planes R, G, B) and label (height x width class ids or 255).
 * Single-threaded and reentrant. SKD_ERR on a bad size. */
int skd_synthetic_render(uint64_t seed, int split, int64_t index, int height, int width,
			 float *image, int32_t *label);

#endif
