/* metrics.h — the confusion matrix of a segmentation, and what is read from it (method.md §5).
 *
 * counts[t * C + p] is the number of pixels of true class t predicted as p, in int64 (a
 * Cityscapes validation pass is about 10^9 pixels). Pixels whose label is the ignore index
 * are not counted. From it, for class c: TP = counts[c][c], FP = column c minus TP,
 * FN = row c minus TP, and
 *   IoU_c          = TP / (TP + FP + FN)       (NaN when TP + FP + FN = 0: the class is in
 *                                               neither the labels nor the predictions)
 *   mIoU           = mean of IoU_c over the classes with TP + FP + FN > 0
 *   pixel accuracy = sum_c TP / all counted pixels
 *   class accuracy = TP / (TP + FN)            (NaN for classes absent from the labels)
 * The mIoU's rule: method.md asks for the mean over the classes of the dataset's class list;
 * a class that never occurs in a (small) evaluation set, and is never predicted, has no IoU
 * at all and is left out rather than counted as 0 or 1. Over a full validation set every
 * class occurs, and this is the usual mean over all C classes.
 */
#ifndef SKD_METRICS_H
#define SKD_METRICS_H

#include <stdint.h>
#include "tensor.h"

typedef struct skd_confusion {
	int num_classes;
	int ignore_index;
	int64_t *counts; /* num_classes x num_classes, row = label, column = prediction */
} skd_confusion;

skd_confusion *skd_confusion_new(int num_classes, int ignore_index);
void skd_confusion_free(skd_confusion *cm);
void skd_confusion_reset(skd_confusion *cm);

/* Adds a batch. pred: class ids (int32, the label's shape) or logits (float32 with a class
 * dimension of size C inserted before the label's last two: B x C x H x W for a B x H x W
 * label, C x H x W for an H x W one; the argmax is taken, the first maximum on ties).
 * A label outside 0..C-1 that is not the ignore index, or a predicted id outside 0..C-1 at
 * a counted pixel, is an error naming the value and where it is. */
int skd_confusion_add(skd_confusion *cm, const skd_tensor *pred, const skd_tensor *label);
/* dst += src (same number of classes). */
int skd_confusion_merge(skd_confusion *dst, const skd_confusion *src);

double skd_confusion_iou(const skd_confusion *cm, int c);
double skd_confusion_class_accuracy(const skd_confusion *cm, int c);
double skd_confusion_miou(const skd_confusion *cm);
double skd_confusion_pixel_accuracy(const skd_confusion *cm);
int64_t skd_confusion_total(const skd_confusion *cm);

#endif
