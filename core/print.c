/* print.c — Torch7-style text for tensors (tensor.h). Placeholder layout; see issue 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tensor.h"

char *skd_tensor_format(const skd_tensor *t)
{
	char shape[SKD_SHAPE_STR_LEN];
	size_t cap = 256 + (size_t)skd_tensor_numel(t) * 16, used = 0;
	char *buf = skd_malloc(cap);
	if (!buf)
		return NULL;
	buf[0] = '\0';
	int64_t n = skd_tensor_numel(t), idx[SKD_MAX_DIMS] = {0};
	for (int64_t k = 0; k < n; k++) {
		used += (size_t)snprintf(buf + used, cap - used, " %.4f", skd_tensor_get(t, idx));
		for (int d = t->ndim - 1; d >= 0; d--) {
			if (++idx[d] < t->shape[d])
				break;
			idx[d] = 0;
		}
	}
	snprintf(buf + used, cap - used, "\n[skd.%s of size %s]", t->dtype == SKD_INT32 ? "IntTensor" : "FloatTensor",
		 skd_shape_str(t, shape, sizeof shape));
	return buf;
}
