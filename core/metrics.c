/* metrics.c — accumulating and reading the confusion matrix (metrics.h). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "metrics.h"
#include "parallel.h"

skd_confusion *skd_confusion_new(int num_classes, int ignore_index)
{
	if (num_classes < 1 || num_classes > 4096)
		return skd_error_null("confusion: num_classes must be 1..4096, got %d", num_classes);
	if (ignore_index >= 0 && ignore_index < num_classes)
		return skd_error_null("confusion: ignore_index %d is one of the %d classes", ignore_index,
				      num_classes);
	skd_confusion *cm = skd_calloc(1, sizeof *cm);
	if (!cm)
		return NULL;
	cm->counts = skd_calloc((size_t)num_classes * num_classes, sizeof *cm->counts);
	if (!cm->counts) {
		free(cm);
		return NULL;
	}
	cm->num_classes = num_classes;
	cm->ignore_index = ignore_index;
	return cm;
}

void skd_confusion_free(skd_confusion *cm)
{
	if (cm) {
		free(cm->counts);
		free(cm);
	}
}

void skd_confusion_reset(skd_confusion *cm)
{
	memset(cm->counts, 0, sizeof *cm->counts * (size_t)cm->num_classes * cm->num_classes);
}

/* "2x3" style position of flat index i in a tensor of the given shape, 1-based. */
static void position_str(const skd_tensor *t, int64_t i, char *buf, size_t len)
{
	int64_t idx[SKD_MAX_DIMS];
	for (int d = t->ndim - 1; d >= 0; d--) {
		idx[d] = i % t->shape[d];
		i /= t->shape[d];
	}
	size_t k = 0;
	buf[0] = '\0';
	for (int d = 0; d < t->ndim && k + 1 < len; d++)
		k += (size_t)snprintf(buf + k, len - k, "%s%lld", d ? "," : "(", (long long)idx[d] + 1);
	if (k + 1 < len)
		snprintf(buf + k, len - k, ")");
}

/* Checks the shapes; on success *logits is 1 for logits, 0 for class ids. */
static int check_shapes(const skd_confusion *cm, const skd_tensor *pred, const skd_tensor *label,
			int *logits)
{
	char a[SKD_SHAPE_STR_LEN], b[SKD_SHAPE_STR_LEN];
	if (label->dtype != SKD_INT32 || label->ndim < 2)
		return skd_error("confusion: label must be an int32 tensor (H x W or B x H x W), got %s %s",
				 skd_dtype_name(label->dtype), skd_shape_str(label, a, sizeof a));
	if (pred->dtype == SKD_INT32) {
		*logits = 0;
		if (!skd_tensor_same_shape(pred, label))
			return skd_error("confusion: predicted ids %s and label %s differ in shape",
					 skd_shape_str(pred, a, sizeof a), skd_shape_str(label, b, sizeof b));
		return SKD_OK;
	}
	*logits = 1;
	int cd = label->ndim - 2; /* the class dimension sits before H x W */
	int ok = pred->ndim == label->ndim + 1 && pred->shape[cd] == cm->num_classes;
	for (int d = 0; ok && d < label->ndim; d++)
		ok = pred->shape[d < cd ? d : d + 1] == label->shape[d];
	if (!ok)
		return skd_error("confusion: logits %s do not fit label %s with %d classes (expected the "
				 "label's shape with %d inserted before H x W)", skd_shape_str(pred, a, sizeof a),
				 skd_shape_str(label, b, sizeof b), cm->num_classes, cm->num_classes);
	return SKD_OK;
}

int skd_confusion_add(skd_confusion *cm, const skd_tensor *pred, const skd_tensor *label)
{
	int logits = 0;
	if (check_shapes(cm, pred, label, &logits))
		return SKD_ERR;
	skd_tensor *p = skd_tensor_contiguous_nograd((skd_tensor *)pred);
	skd_tensor *l = p ? skd_tensor_contiguous_nograd((skd_tensor *)label) : NULL;
	if (!l) {
		skd_tensor_release(p);
		return SKD_ERR;
	}
	const int C = cm->num_classes, ign = cm->ignore_index;
	const int64_t HW = label->shape[label->ndim - 1] * label->shape[label->ndim - 2];
	const int64_t n = skd_tensor_numel(label);
	const int32_t *lab = skd_tensor_i32(l);
	const int32_t *ids = logits ? NULL : skd_tensor_i32(p);
	const float *z = logits ? skd_tensor_f32(p) : NULL;
	int64_t bad = -1; /* the first offending pixel; checked before anything is counted */
	int bad_pred = 0;
	for (int64_t i = 0; i < n && bad < 0; i++) {
		if (lab[i] != ign && (lab[i] < 0 || lab[i] >= C))
			bad = i;
		else if (ids && lab[i] != ign && (ids[i] < 0 || ids[i] >= C))
			bad = i, bad_pred = 1;
	}
	if (bad >= 0) {
		char pos[64];
		position_str(label, bad, pos, sizeof pos);
		skd_error(bad_pred ? "confusion: predicted class %d at %s is outside 0..%d"
				   : "confusion: label value %d at %s is outside 0..%d (ignore index %d)",
			  bad_pred ? ids[bad] : lab[bad], pos, C - 1, ign);
		skd_tensor_release(p);
		skd_tensor_release(l);
		return SKD_ERR;
	}
	/* Per-thread histograms, summed after: integer counts, so the result does not depend
	 * on the number of threads or the chunking. */
	int nt = n * (logits ? C : 1) > SKD_PARALLEL_GRAIN ? skd_threads_get() : 1;
	int64_t *locals = skd_calloc((size_t)nt * C * C, sizeof *locals);
	if (!locals) {
		skd_tensor_release(p);
		skd_tensor_release(l);
		return SKD_ERR;
	}
	#pragma omp parallel num_threads(nt) if (nt > 1)
	{
		int64_t *local = locals + (size_t)omp_get_thread_num() * C * C;
		#pragma omp for schedule(static)
		for (int64_t i = 0; i < n; i++) {
			int t = lab[i];
			if (t == ign)
				continue;
			int k;
			if (ids) {
				k = ids[i];
			} else {
				const float *zi = z + (i / HW) * C * HW + i % HW;
				float best = zi[0];
				k = 0;
				for (int c = 1; c < C; c++)
					if (zi[c * HW] > best)
						best = zi[c * HW], k = c;
			}
			local[(size_t)t * C + k]++;
		}
	}
	for (int k = 0; k < nt; k++)
		for (size_t j = 0; j < (size_t)C * C; j++)
			cm->counts[j] += locals[(size_t)k * C * C + j];
	free(locals);
	skd_tensor_release(p);
	skd_tensor_release(l);
	return SKD_OK;
}

int skd_confusion_merge(skd_confusion *dst, const skd_confusion *src)
{
	if (dst->num_classes != src->num_classes)
		return skd_error("confusion: cannot merge a %d-class matrix into a %d-class one",
				 src->num_classes, dst->num_classes);
	for (size_t j = 0; j < (size_t)dst->num_classes * dst->num_classes; j++)
		dst->counts[j] += src->counts[j];
	return SKD_OK;
}

static void class_sums(const skd_confusion *cm, int c, int64_t *tp, int64_t *row, int64_t *col)
{
	int C = cm->num_classes;
	*tp = cm->counts[(size_t)c * C + c];
	*row = *col = 0;
	for (int k = 0; k < C; k++) {
		*row += cm->counts[(size_t)c * C + k];
		*col += cm->counts[(size_t)k * C + c];
	}
}

double skd_confusion_iou(const skd_confusion *cm, int c)
{
	int64_t tp, row, col;
	class_sums(cm, c, &tp, &row, &col);
	int64_t denom = row + col - tp; /* TP + FN + FP */
	return denom > 0 ? (double)tp / (double)denom : NAN;
}

double skd_confusion_class_accuracy(const skd_confusion *cm, int c)
{
	int64_t tp, row, col;
	class_sums(cm, c, &tp, &row, &col);
	return row > 0 ? (double)tp / (double)row : NAN;
}

double skd_confusion_miou(const skd_confusion *cm)
{
	double sum = 0;
	int n = 0;
	for (int c = 0; c < cm->num_classes; c++) {
		double iou = skd_confusion_iou(cm, c);
		if (!isnan(iou))
			sum += iou, n++;
	}
	return n ? sum / n : NAN;
}

int64_t skd_confusion_total(const skd_confusion *cm)
{
	int64_t s = 0;
	for (size_t j = 0; j < (size_t)cm->num_classes * cm->num_classes; j++)
		s += cm->counts[j];
	return s;
}

double skd_confusion_pixel_accuracy(const skd_confusion *cm)
{
	int64_t total = skd_confusion_total(cm), tp = 0;
	for (int c = 0; c < cm->num_classes; c++)
		tp += cm->counts[(size_t)c * cm->num_classes + c];
	return total ? (double)tp / (double)total : NAN;
}
