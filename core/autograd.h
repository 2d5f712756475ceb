/* autograd.h — the dynamic tape.
 *
 * An op that gets an input requiring grad (in grad mode) records a node on its output:
 *
 *     skd_node *n = skd_autograd_record(out, "conv2d", conv2d_backward, 3, (skd_tensor *[]){x, w, b});
 *     if (n) { skd_node_save(n, x); skd_node_save(n, w); n->iarg[0] = stride; ... }
 *
 * skd_autograd_record returns NULL (and records nothing) when grad mode is off or no input
 * requires grad; inputs may be NULL (an absent bias). The node keeps, per input, the input's
 * own node or, for a leaf, the leaf itself, plus its shape: not its data. Whatever backward
 * needs of the data the op saves explicitly.
 *
 * skd_backward() walks the nodes in reverse topological order. A node's backward gets the
 * gradient of its output (contiguous, the output's shape) and writes a new reference into
 * grad_inputs[i] for each input i with skd_node_needs_grad(node, i) (it may leave others NULL).
 * Backward runs in no-grad mode. After it, saved tensors are released (the graph is freed);
 * a second backward through the same nodes is an error.
 */
#ifndef SKD_AUTOGRAD_H
#define SKD_AUTOGRAD_H

#include "tensor.h"

#define SKD_NODE_MAX_SAVED 6
#define SKD_NODE_MAX_ARGS 16

typedef struct skd_node skd_node;
typedef int (*skd_backward_fn)(skd_node *node, const skd_tensor *grad_output,
			       skd_tensor **grad_inputs);

typedef struct skd_node_input {
	skd_node *fn;      /* owned: the input's grad_fn, or NULL */
	skd_tensor *leaf;  /* owned: the input itself if it is a leaf requiring grad, or NULL */
	int ndim;
	int64_t shape[SKD_MAX_DIMS];
} skd_node_input;

struct skd_node {
	int refcount;
	const char *op;           /* for messages: "conv2d" */
	skd_backward_fn backward;
	int n_inputs;
	skd_node_input *inputs;
	int out_ndim;
	int64_t out_shape[SKD_MAX_DIMS];
	skd_tensor *saved[SKD_NODE_MAX_SAVED]; /* owned */
	int n_saved;
	int64_t iarg[SKD_NODE_MAX_ARGS]; /* small op parameters */
	double farg[SKD_NODE_MAX_ARGS];
	void *ctx;                /* op-specific heap block, freed with free_ctx (or free) */
	void (*free_ctx)(void *ctx);
	bool freed;               /* saved state released by a backward pass */
	/* the engine's scratch */
	unsigned mark;
	int pending;
	skd_tensor *grad;
};

/* --- grad mode (per thread) --- */
bool skd_grad_enabled(void);
bool skd_set_grad_enabled(bool enabled); /* returns the previous mode */

/* --- recording (for op implementations) --- */
skd_node *skd_autograd_record(skd_tensor *out, const char *op, skd_backward_fn backward,
			      int n_inputs, skd_tensor *const *inputs);
/* Saves a detached alias of t (same storage and geometry, no grad_fn), so that saving the op's
 * own output makes no reference cycle. NULL is saved as NULL. Read back as node->saved[k]. */
void skd_node_save(skd_node *node, skd_tensor *t);
bool skd_node_needs_grad(const skd_node *node, int i);
/* For an element-wise backward: the output gradient g itself when nothing but this backward
 * pass holds it (so the input gradient may overwrite it, one buffer less at the peak), else a
 * new float tensor of the given shape. A new reference; the kernel must read g[i] before it
 * writes element i. */
skd_tensor *skd_grad_buffer(const skd_tensor *g, int ndim, const int64_t *shape);

/* --- running --- */
/* Backpropagates from root. grad_output NULL means 1 (root must then have one element). */
int skd_backward(skd_tensor *root, const skd_tensor *grad_output);
/* t->requires_grad = flag; only leaves of float dtype may be changed. */
int skd_tensor_set_requires_grad(skd_tensor *t, bool flag);
void skd_node_release(skd_node *node);

/* Reduces a broadcast gradient g back to a shape (sums the broadcast dims). New reference. */
skd_tensor *skd_sum_to_shape(const skd_tensor *g, int ndim, const int64_t *shape);

/* --- finite-difference gradient check (gradcheck.c) --- */
/* f maps the inputs to one output tensor (new reference) or NULL on error. */
typedef skd_tensor *(*skd_gradcheck_fn)(void *ud, int n, skd_tensor **inputs);
typedef struct skd_gradcheck_opts {
	double eps;   /* central difference step, default 1e-2 (float32) */
	double atol;  /* default 1e-3 */
	double rtol;  /* default 1e-2 */
	int max_checks; /* elements checked per input (spread evenly); 0 = all */
} skd_gradcheck_opts;
typedef struct skd_gradcheck_result {
	bool ok;
	double max_abs_err, max_rel_err;
	int worst_input;
	int64_t worst_index;
	double worst_analytic, worst_numeric;
} skd_gradcheck_result;
/* Checks d(sum(f(x) * r))/dx against central differences, r a fixed random projection.
 * Only inputs with requires_grad are checked. Returns SKD_ERR if f itself fails. */
int skd_gradcheck(skd_gradcheck_fn f, void *ud, int n, skd_tensor **inputs,
		  const skd_gradcheck_opts *opts, skd_gradcheck_result *result);

#endif
