/* optim.h — optimiser update kernels (PyTorch semantics), one fused loop per parameter
 * tensor, so a model with one flat parameter buffer is updated by one call. All tensors
 * contiguous float32 of one shape; updates run in place and are never recorded. */
#ifndef SKD_OPTIM_H
#define SKD_OPTIM_H

#include <stdbool.h>
#include "tensor.h"

/* SGD with momentum and weight decay, as torch.optim.SGD (dampening 0):
 *   g = grad + wd·p;  buf = g on the first step, else momentum·buf + g;
 *   g = nesterov ? g + momentum·buf : buf;  p -= lr·g
 * momentum_buf may be NULL when momentum == 0. */
int skd_sgd_step(skd_tensor *param, const skd_tensor *grad, skd_tensor *momentum_buf, double lr,
		 double momentum, double weight_decay, bool nesterov, bool first_step);

/* Adam as torch.optim.Adam (L2 weight decay added to the gradient, no amsgrad); step counts
 * from 1 for the bias corrections. */
int skd_adam_step(skd_tensor *param, const skd_tensor *grad, skd_tensor *exp_avg,
		  skd_tensor *exp_avg_sq, double lr, double beta1, double beta2, double eps,
		  double weight_decay, int64_t step);

#endif
