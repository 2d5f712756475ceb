/* dataset.h — segmentation datasets: indexed (image, label) pairs.
 *
 * Kinds: the embedded synthetic scenes (synthetic.h), CamVid in the SegNet layout, Cityscapes
 * (leftImg8bit + gtFine labelIds, mapped to the 19 train ids), a list file of pairs, and a
 * callback (samples made by the caller, e.g. a Lua function).
 *
 * Construction finds and pairs the files (and fails naming what is missing); loading a sample
 * reads its PNGs and checks them (size agreement, label values). skd_dataset_get is safe to
 * call from any thread at the same time, except for callback datasets, which run on the
 * caller's thread only (skd_dataset_threadsafe says which).
 *
 * Samples: image 3 x H x W float32 in [0, 1]; label H x W int32, class ids 0..C-1 or
 * SKD_IGNORE_LABEL (255). Indices are 0-based here.
 */
#ifndef SKD_DATASET_H
#define SKD_DATASET_H

#include <stdint.h>
#include "tensor.h"
#include "synthetic.h"

typedef struct skd_dataset skd_dataset;

/* split: 0 train, 1 val, 2 test. */
skd_dataset *skd_dataset_synthetic(uint64_t seed, int split, int64_t n, int height, int width);
/* <root>/<split>/NAME.png paired with <root>/<split>annot/NAME.png; labels 0..10, 11 -> 255. */
skd_dataset *skd_dataset_camvid(const char *root, const char *split);
/* <root>/leftImg8bit/<split>/<city>/X_leftImg8bit.png with
 * <root>/gtFine/<split>/<city>/X_gtFine_labelIds.png; label ids 0..33 -> train ids 0..18/255. */
skd_dataset *skd_dataset_cityscapes(const char *root, const char *split);
/* A list file of lines "image_path label_path" (relative paths are relative to the list's
 * folder; blank lines and lines starting with # are skipped). Label values 0..C-1 are kept,
 * 255 is ignore, values listed in void_values become 255; anything else is an error.
 * names: C class names (copied), or NULL for "class_0".. */
skd_dataset *skd_dataset_folder(const char *list_path, int num_classes, const char *const *names,
				const int *void_values, int n_void);

/* A dataset whose samples come from fn (called on the constructing thread only). free_ud
 * (may be NULL) is called with ud when the dataset is released. fn returns SKD_OK with two
 * new references, or SKD_ERR with a message. */
typedef int (*skd_dataset_fetch)(void *ud, int64_t index, skd_tensor **image, skd_tensor **label);
skd_dataset *skd_dataset_callback(int64_t n, int num_classes, skd_dataset_fetch fn, void *ud,
				  void (*free_ud)(void *));

skd_dataset *skd_dataset_retain(skd_dataset *ds); /* returns ds */
void skd_dataset_release(skd_dataset *ds);        /* NULL is fine */

int64_t skd_dataset_size(const skd_dataset *ds);
int skd_dataset_num_classes(const skd_dataset *ds);
const char *skd_dataset_kind(const skd_dataset *ds); /* "synthetic", "camvid", ... */
const char *skd_dataset_class_name(const skd_dataset *ds, int c);
void skd_dataset_class_colour(const skd_dataset *ds, int c, uint8_t rgb[3]);
int skd_dataset_threadsafe(const skd_dataset *ds);
/* The files of sample i (NULL for generated samples). */
const char *skd_dataset_image_path(const skd_dataset *ds, int64_t i);
const char *skd_dataset_label_path(const skd_dataset *ds, int64_t i);

/* Sample i: two new references, or SKD_ERR with a message naming the file and the fault. */
int skd_dataset_get(const skd_dataset *ds, int64_t i, skd_tensor **image, skd_tensor **label);

#endif
