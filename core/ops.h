/* ops.h — every differentiable op of the engine, by the file that implements it.
 *
 * Each function returns a new reference, or NULL with a message (error.h) that names the op
 * and the shapes involved. Dimensions are 0-based. Inputs may have any strides unless said
 * otherwise. When grad mode is on and an input requires grad, the result records its node
 * (autograd.h); each file keeps the backward of its ops next to their forward.
 */
#ifndef SKD_OPS_H
#define SKD_OPS_H

#include "autograd.h"
#include "tensor.h"

/* --- elementwise.c: arithmetic with broadcasting (NumPy rules), scalars, unary math --- */
skd_tensor *skd_add(skd_tensor *a, skd_tensor *b);
skd_tensor *skd_sub(skd_tensor *a, skd_tensor *b);
skd_tensor *skd_mul(skd_tensor *a, skd_tensor *b);
skd_tensor *skd_div(skd_tensor *a, skd_tensor *b);
skd_tensor *skd_add_scalar(skd_tensor *a, double s);  /* a + s */
skd_tensor *skd_mul_scalar(skd_tensor *a, double s);  /* a * s */
skd_tensor *skd_rsub_scalar(skd_tensor *a, double s); /* s - a */
skd_tensor *skd_rdiv_scalar(skd_tensor *a, double s); /* s / a */
skd_tensor *skd_pow_scalar(skd_tensor *a, double p);  /* a ^ p */
skd_tensor *skd_neg(skd_tensor *a);
skd_tensor *skd_relu(skd_tensor *a);
skd_tensor *skd_leaky_relu(skd_tensor *a, double slope);
skd_tensor *skd_sigmoid(skd_tensor *a);
skd_tensor *skd_tanh(skd_tensor *a);
skd_tensor *skd_exp(skd_tensor *a);
skd_tensor *skd_log(skd_tensor *a);
skd_tensor *skd_sqrt(skd_tensor *a);
skd_tensor *skd_abs(skd_tensor *a);
/* In place, refused on tensors that take part in autograd (requires_grad in grad mode). */
int skd_add_(skd_tensor *a, skd_tensor *b, double alpha); /* a += alpha * b (b broadcast) */
int skd_mul_scalar_(skd_tensor *a, double s);
int skd_relu_(skd_tensor *a); /* a = max(a, 0) */

/* --- reduce.c: reductions (dim < 0 never: the binding resolves it) --- */
skd_tensor *skd_sum_all(skd_tensor *a);
skd_tensor *skd_mean_all(skd_tensor *a);
skd_tensor *skd_max_all(skd_tensor *a);
skd_tensor *skd_sum_dim(skd_tensor *a, int dim, bool keepdim);
skd_tensor *skd_mean_dim(skd_tensor *a, int dim, bool keepdim);
/* Values of the max over dim; *indices (may be NULL) gets the int32 argmax, new reference. */
skd_tensor *skd_max_dim(skd_tensor *a, int dim, bool keepdim, skd_tensor **indices);
skd_tensor *skd_argmax(skd_tensor *a, int dim, bool keepdim); /* int32, no grad */

/* --- shape.c: views with autograd, copies, joins --- */
skd_tensor *skd_reshape(skd_tensor *a, int ndim, const int64_t *shape); /* one -1 allowed */
skd_tensor *skd_permute(skd_tensor *a, const int *order);
skd_tensor *skd_transpose(skd_tensor *a, int d0, int d1);
skd_tensor *skd_narrow(skd_tensor *a, int dim, int64_t start, int64_t length);
skd_tensor *skd_select(skd_tensor *a, int dim, int64_t index);
skd_tensor *skd_unsqueeze(skd_tensor *a, int dim);
skd_tensor *skd_squeeze(skd_tensor *a, int dim);
skd_tensor *skd_expand(skd_tensor *a, int ndim, const int64_t *shape);
skd_tensor *skd_contiguous(skd_tensor *a); /* a itself (retained) when already contiguous */
skd_tensor *skd_clone(skd_tensor *a);
skd_tensor *skd_detach(skd_tensor *a);     /* shares storage, no grad_fn */
skd_tensor *skd_flip(skd_tensor *a, int dim); /* a copy reversed along dim */
skd_tensor *skd_cat(int n, skd_tensor *const *ts, int dim);
/* Splits along dim into pieces of `size` (last may be smaller); *n_out pieces into out[]
 * (an array of at most max_out new references). */
int skd_split(skd_tensor *a, int64_t size, int dim, skd_tensor **out, int max_out, int *n_out);

/* --- matmul.c: BLIS sgemm --- */
/* a: (M,K) or (B,M,K) or (...,M,K); b: (K,N) or (B,K,N); batch dims broadcast as in PyTorch. */
skd_tensor *skd_matmul(skd_tensor *a, skd_tensor *b);
/* C = alpha * op(A) op(B) + beta * C on contiguous row-major float arrays, through BLIS with
 * the engine's thread count. The one way core/ calls GEMM. */
void skd_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
	       const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
	       int64_t ldc);
/* BLIS's micro-kernel (ukernel.c), for a caller that writes its operands as packed panels:
 * an A panel holds mr rows of A column after column ([p][mr] for p < k), a B panel nr columns
 * of B row after row ([p][nr]), both 64-byte aligned and zero past the edge of the matrix.
 * skd_ukernel_run sets the m x n block at c (m ≤ mr, n ≤ nr; element (i, j) at
 * c[i·rs_c + j·cs_c]) to beta·C + A·B. prefers_cols: the kernel is fastest with C stored by
 * columns (rs_c = 1). mr = 0 when there is no usable micro-kernel. */
#define SKD_UKERNEL_MAX_BLOCK 1024
typedef struct skd_ukernel {
	int mr, nr;
	bool prefers_cols;
} skd_ukernel;
const skd_ukernel *skd_ukernel_get(void);
void skd_ukernel_run(int64_t m, int64_t n, int64_t k, const float *a, const float *b, float beta,
		     float *c, int64_t rs_c, int64_t cs_c);

/* --- conv2d.c --- */
typedef struct skd_conv2d_params {
	int stride[2], padding[2], dilation[2], groups;
} skd_conv2d_params;
/* x: (N,Cin,H,W); w: (Cout,Cin/groups,kh,kw); b: (Cout) or NULL. */
skd_tensor *skd_conv2d(skd_tensor *x, skd_tensor *w, skd_tensor *b, const skd_conv2d_params *p);

/* --- conv2d_pointwise.c: a 1x1 convolution recording no gradient, its weight packed once --- */
/* The weight laid out in the micro-kernel's panels, kept by the caller between calls. */
typedef struct skd_pointwise skd_pointwise;
/* false where there is no usable micro-kernel, or SKD_POINTWISE_PACKED=0 */
bool skd_pointwise_available(void);
void skd_pointwise_free(skd_pointwise *pw); /* NULL is fine */
/* y = conv2d(x, w)·scale + shift (+ residual) (then ReLU), per output channel: a 1x1,
 * stride-1, unpadded, one-group convolution of x (N, Cin, H, W) contiguous, w (Cout, Cin, 1,
 * 1) contiguous, neither recording a gradient: a frozen ResNet's conv with its folded
 * BatchNorm and what follows it. scale, shift: (Cout) or NULL; residual NULL or the output's
 * shape, contiguous. *cache: the pack of an earlier call (or NULL), used while it matches w
 * as it is now (same storage, not written since), replaced by a new one otherwise. New
 * tensor, or NULL with an error. */
skd_tensor *skd_conv2d_pointwise(const skd_tensor *x, const skd_tensor *w, skd_pointwise **cache,
				 const skd_tensor *scale, const skd_tensor *shift,
				 const skd_tensor *residual, bool relu);

/* --- pool.c --- */
typedef struct skd_pool2d_params {
	int kernel[2], stride[2], padding[2];
	bool ceil_mode;
	bool count_include_pad; /* avg_pool2d only; PyTorch's default is true */
} skd_pool2d_params;
skd_tensor *skd_max_pool2d(skd_tensor *x, const skd_pool2d_params *p);
skd_tensor *skd_avg_pool2d(skd_tensor *x, const skd_pool2d_params *p);
skd_tensor *skd_adaptive_avg_pool2d(skd_tensor *x, int64_t out_h, int64_t out_w);

/* --- interpolate.c --- */
typedef enum { SKD_INTERP_NEAREST, SKD_INTERP_BILINEAR } skd_interp_mode;
/* x: (N,C,H,W) -> (N,C,out_h,out_w). align_corners matters for bilinear only. */
skd_tensor *skd_interpolate(skd_tensor *x, int64_t out_h, int64_t out_w, skd_interp_mode mode,
			    bool align_corners);

/* --- batchnorm.c --- */
/* x: (N,C,...). weight, bias, running_mean, running_var: (C) or NULL. In training, batch
 * statistics normalise x and the running ones are updated in place (unbiased variance, as
 * PyTorch); in eval the running ones normalise. */
skd_tensor *skd_batch_norm(skd_tensor *x, skd_tensor *weight, skd_tensor *bias,
			   skd_tensor *running_mean, skd_tensor *running_var, bool training,
			   double momentum, double eps);
/* x[:, c, ...] = x[:, c, ...]·scale[c] + shift[c] (+ residual) (then ReLU), in place, for a
 * contiguous float32 x that no gradient flows through: an evaluation-mode BatchNorm folded
 * into the convolution before it (Module:freeze), applied to the convolution's fresh output
 * instead of to copies of its weights, with what a ResNet block does next. scale, shift: (C);
 * residual NULL or x's shape, contiguous. Returns SKD_OK, or SKD_ERR naming what is wrong. */
int skd_channel_affine_(skd_tensor *x, skd_tensor *scale, skd_tensor *shift,
			skd_tensor *residual, bool relu);

/* --- dropout.c (draws from the engine's RNG, rng.h) --- */
skd_tensor *skd_dropout(skd_tensor *x, double p, bool training);
skd_tensor *skd_dropout2d(skd_tensor *x, double p, bool training); /* whole channels */

/* --- softmax.c --- */
skd_tensor *skd_softmax(skd_tensor *x, int dim);
skd_tensor *skd_log_softmax(skd_tensor *x, int dim);

/* --- loss.c --- */
typedef enum { SKD_REDUCTION_MEAN, SKD_REDUCTION_SUM, SKD_REDUCTION_NONE } skd_reduction;
/* logits: (N,C,...) float; target: (N,...) int32 class ids; weight: NULL or C floats ≥ 0, a
 * per-class factor (as PyTorch's weight=). Mean over non-ignored elements, weighted by class
 * (0 if all are ignored). A target outside [0,C) other than ignore_index is an error. */
skd_tensor *skd_cross_entropy(skd_tensor *logits, skd_tensor *target, const skd_tensor *weight,
			      int ignore_index, skd_reduction reduction);

/* --- affinity.c: pair-wise distillation kernels (method.md §2) ---
 * Nodes are (B, C, N): N = nh·nw graph nodes in row-major grid order. None of these forms an
 * N×N matrix; the materialised affinity (viewer, tests) is a matmul in lua/skd/losses.lua. */
/* x / (‖x‖₂ over dim 1 + eps) for each (b, n). detach_norm: the norm is a constant in backward. */
skd_tensor *skd_l2_normalize(skd_tensor *x, double eps, bool detach_norm);
/* s: (B,Cs,N), t: (B,Ct,N), normalised nodes (Cs and Ct may differ). Scalar
 * (1/B) Σ_b (1/N²) Σ_ij (sᵢᵀsⱼ − tᵢᵀtⱼ)², through the C×C Gram matrices. */
skd_tensor *skd_pairwise_gram(skd_tensor *s, skd_tensor *t);
/* The same over the ordered pairs with max(|Δrow|, |Δcol|) ≤ radius on the nh×nw node grid,
 * divided by their number (diagonal included): a banded kernel over neighbours. */
skd_tensor *skd_pairwise_local(skd_tensor *s, skd_tensor *t, int64_t nh, int64_t nw,
			       int radius);

#endif
