/* autograd.c — recording nodes and running backward (autograd.h). */
#include <stdlib.h>
#include <string.h>
#include "autograd.h"
#include "ops.h"

static _Thread_local bool grad_mode = true;
static unsigned visit_mark;

bool skd_grad_enabled(void)
{
	return grad_mode;
}

bool skd_set_grad_enabled(bool enabled)
{
	bool prev = grad_mode;
	grad_mode = enabled;
	return prev;
}

skd_node *skd_autograd_record(skd_tensor *out, const char *op, skd_backward_fn backward,
			      int n_inputs, skd_tensor *const *inputs)
{
	if (!grad_mode || !out)
		return NULL;
	bool any = false;
	for (int i = 0; i < n_inputs; i++)
		if (inputs[i] && inputs[i]->requires_grad)
			any = true;
	if (!any)
		return NULL;
	skd_node *node = calloc(1, sizeof *node);
	skd_node_input *in = calloc((size_t)n_inputs, sizeof *in);
	if (!node || !in) {
		free(node);
		free(in);
		skd_error("%s: out of memory recording the autograd node", op);
		return NULL;
	}
	node->refcount = 1;
	node->op = op;
	node->backward = backward;
	node->n_inputs = n_inputs;
	node->inputs = in;
	for (int i = 0; i < n_inputs; i++) {
		skd_tensor *t = inputs[i];
		if (!t)
			continue;
		in[i].ndim = t->ndim;
		memcpy(in[i].shape, t->shape, sizeof t->shape);
		if (!t->requires_grad)
			continue;
		if (t->grad_fn) {
			in[i].fn = t->grad_fn;
			t->grad_fn->refcount++;
		} else {
			in[i].leaf = skd_tensor_retain(t);
		}
	}
	node->out_ndim = out->ndim;
	memcpy(node->out_shape, out->shape, sizeof out->shape);
	skd_node_release(out->grad_fn);
	out->grad_fn = node;
	out->requires_grad = true;
	return node;
}

void skd_node_save(skd_node *node, skd_tensor *t)
{
	if (node->n_saved >= SKD_NODE_MAX_SAVED)
		return; /* a programming error in an op; caught by its tests */
	node->saved[node->n_saved++] =
		t ? skd_tensor_view(t, t->ndim, t->shape, t->stride, t->offset) : NULL;
}

bool skd_node_needs_grad(const skd_node *node, int i)
{
	return i >= 0 && i < node->n_inputs && (node->inputs[i].fn || node->inputs[i].leaf);
}

skd_tensor *skd_grad_buffer(const skd_tensor *g, int ndim, const int64_t *shape)
{
	/* g's one reference is the backward pass's (run_node's), and its storage is its own:
	 * nothing else can see the values change */
	bool own = g->refcount == 1 && g->storage->refcount == 1 && g->dtype == SKD_FLOAT32 &&
		   !g->grad_fn && g->ndim == ndim && skd_tensor_is_contiguous(g);
	for (int d = 0; own && d < ndim; d++)
		own = g->shape[d] == shape[d];
	if (own)
		return skd_tensor_retain((skd_tensor *)g);
	return skd_tensor_empty(SKD_FLOAT32, ndim, shape);
}

static void release_saved(skd_node *node)
{
	for (int k = 0; k < node->n_saved; k++) {
		skd_tensor_release(node->saved[k]);
		node->saved[k] = NULL;
	}
	if (node->ctx) {
		if (node->free_ctx)
			node->free_ctx(node->ctx);
		else
			free(node->ctx);
		node->ctx = NULL;
	}
	node->freed = true;
}

/* Iterative, so that dropping the output of a very long chain cannot overflow the C stack. */
void skd_node_release(skd_node *node)
{
	if (!node)
		return;
	size_t cap = 64, top = 0;
	skd_node **stack = malloc(cap * sizeof *stack);
	if (!stack)
		return; /* leak rather than crash */
	stack[top++] = node;
	while (top > 0) {
		skd_node *n = stack[--top];
		if (--n->refcount > 0)
			continue;
		release_saved(n);
		skd_tensor_release(n->grad);
		for (int i = 0; i < n->n_inputs; i++) {
			skd_tensor_release(n->inputs[i].leaf);
			if (!n->inputs[i].fn)
				continue;
			if (top == cap) {
				skd_node **s = realloc(stack, 2 * cap * sizeof *stack);
				if (!s)
					continue;
				stack = s;
				cap *= 2;
			}
			stack[top++] = n->inputs[i].fn;
		}
		free(n->inputs);
		free(n);
	}
	free(stack);
}

int skd_tensor_set_requires_grad(skd_tensor *t, bool flag)
{
	if (t->grad_fn)
		return skd_error("requires_grad: only leaf tensors can be changed; this one is the "
				 "result of %s (use detach() first)", t->grad_fn->op);
	if (flag && t->dtype != SKD_FLOAT32)
		return skd_error("requires_grad: only float32 tensors can require grad, this one "
				 "is %s", skd_dtype_name(t->dtype));
	t->requires_grad = flag;
	return SKD_OK;
}

/* Adds g into *slot: the first contribution is kept by reference, later ones make a new sum,
 * since g may be shared with other slots (add's backward hands the same tensor to both). */
static int accumulate(skd_tensor **slot, skd_tensor *g)
{
	if (!*slot) {
		*slot = skd_tensor_retain(g);
		return SKD_OK;
	}
	skd_tensor *sum = skd_add(*slot, g);
	if (!sum)
		return SKD_ERR;
	skd_tensor_release(*slot);
	*slot = sum;
	return SKD_OK;
}

/* Leaf gradients are accumulated in place: .grad may be a view into a model's flat gradient
 * buffer, which must keep receiving the values. */
static int accumulate_leaf(skd_tensor *leaf, skd_tensor *g)
{
	if (!leaf->grad) {
		skd_tensor *c = skd_tensor_empty(SKD_FLOAT32, leaf->ndim, leaf->shape);
		if (!c || skd_tensor_copy_(c, g)) {
			skd_tensor_release(c);
			return SKD_ERR;
		}
		leaf->grad = c;
		return SKD_OK;
	}
	return skd_add_(leaf->grad, g, 1.0);
}

static bool shape_equals(int ndim, const int64_t *shape, const skd_tensor *t)
{
	if (t->ndim != ndim)
		return false;
	for (int i = 0; i < ndim; i++)
		if (t->shape[i] != shape[i])
			return false;
	return true;
}

typedef struct nodelist {
	skd_node **v;
	size_t n, cap;
} nodelist;

static int push(nodelist *l, skd_node *node)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		skd_node **v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return skd_error("backward: out of memory");
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = node;
	return SKD_OK;
}

/* Marks every node reachable from root and counts, for each, how many edges lead to it. */
static int collect(skd_node *root, nodelist *all)
{
	unsigned mark = ++visit_mark;
	nodelist stack = {0};
	int rc = SKD_OK;
	root->mark = mark;
	root->pending = 0;
	if (push(&stack, root) || push(all, root))
		rc = SKD_ERR;
	while (rc == SKD_OK && stack.n > 0) {
		skd_node *n = stack.v[--stack.n];
		for (int i = 0; i < n->n_inputs && rc == SKD_OK; i++) {
			skd_node *in = n->inputs[i].fn;
			if (!in)
				continue;
			if (in->mark != mark) {
				in->mark = mark;
				in->pending = 0;
				if (push(&stack, in) || push(all, in))
					rc = SKD_ERR;
			}
			in->pending++;
		}
	}
	free(stack.v);
	return rc;
}

static int run_node(skd_node *n, nodelist *ready)
{
	int rc = SKD_OK;
	if (n->freed)
		return skd_error("backward: trying to backward through the graph a second time "
				 "(through %s); its saved tensors were freed by the first backward",
				 n->op);
	skd_tensor *g = n->grad;
	n->grad = NULL;
	skd_tensor *gc = g ? skd_tensor_contiguous_nograd(g) : NULL;
	skd_tensor_release(g);
	if (!gc) {
		/* No gradient reached this node (an unused branch): nothing flows further. */
		for (int i = 0; i < n->n_inputs; i++)
			if (n->inputs[i].fn && --n->inputs[i].fn->pending == 0 && push(ready, n->inputs[i].fn))
				return SKD_ERR;
		release_saved(n);
		return SKD_OK;
	}
	skd_tensor **gin = calloc((size_t)n->n_inputs, sizeof *gin);
	if (!gin) {
		skd_tensor_release(gc);
		return skd_error("backward: out of memory");
	}
	if (n->backward(n, gc, gin)) {
		skd_error_prefix("backward of ");
		rc = SKD_ERR;
	}
	for (int i = 0; i < n->n_inputs && rc == SKD_OK; i++) {
		skd_node_input *in = &n->inputs[i];
		if (!gin[i] || (!in->fn && !in->leaf))
			continue;
		if (!shape_equals(in->ndim, in->shape, gin[i])) {
			char a[SKD_SHAPE_STR_LEN];
			rc = skd_error("backward: %s produced a gradient of shape %s for input %d "
				       "(an engine bug)", n->op, skd_shape_str(gin[i], a, sizeof a), i + 1);
		} else if (in->fn) {
			rc = accumulate(&in->fn->grad, gin[i]);
		} else {
			rc = accumulate_leaf(in->leaf, gin[i]);
		}
	}
	for (int i = 0; i < n->n_inputs; i++) {
		skd_tensor_release(gin[i]);
		if (rc == SKD_OK && n->inputs[i].fn && --n->inputs[i].fn->pending == 0)
			rc = push(ready, n->inputs[i].fn);
	}
	free(gin);
	skd_tensor_release(gc);
	release_saved(n);
	return rc;
}

int skd_backward(skd_tensor *root, const skd_tensor *grad_output)
{
	char a[SKD_SHAPE_STR_LEN], b[SKD_SHAPE_STR_LEN];
	if (!root->requires_grad)
		return skd_error("backward: tensor does not require grad (no input of the "
				 "computation had requires_grad, or it ran in no-grad mode)");
	skd_tensor *g;
	if (!grad_output) {
		if (skd_tensor_numel(root) != 1)
			return skd_error("backward: a gradient is needed for a non-scalar output "
					 "(shape %s); call backward(grad)", skd_shape_str(root, a, sizeof a));
		g = skd_tensor_full(SKD_FLOAT32, root->ndim, root->shape, 1.0);
	} else {
		if (!skd_tensor_same_shape(root, grad_output) || grad_output->dtype != SKD_FLOAT32)
			return skd_error("backward: gradient of shape %s (%s) for an output of shape %s",
					 skd_shape_str(grad_output, a, sizeof a),
					 skd_dtype_name(grad_output->dtype), skd_shape_str(root, b, sizeof b));
		g = skd_tensor_empty(SKD_FLOAT32, root->ndim, root->shape);
		if (g && skd_tensor_copy_(g, grad_output)) {
			skd_tensor_release(g);
			g = NULL;
		}
	}
	if (!g)
		return SKD_ERR;
	bool prev = skd_set_grad_enabled(false);
	int rc = SKD_OK;
	if (!root->grad_fn) {
		rc = accumulate_leaf(root, g);
		skd_tensor_release(g);
		skd_set_grad_enabled(prev);
		return rc;
	}
	nodelist all = {0}, ready = {0};
	rc = collect(root->grad_fn, &all);
	if (rc == SKD_OK) {
		skd_tensor_release(root->grad_fn->grad);
		root->grad_fn->grad = g;
		g = NULL;
		rc = push(&ready, root->grad_fn);
	}
	while (rc == SKD_OK && ready.n > 0)
		rc = run_node(ready.v[--ready.n], &ready);
	/* On failure, drop the partial gradients so nothing stale is left on the nodes. */
	for (size_t k = 0; k < all.n; k++) {
		skd_tensor_release(all.v[k]->grad);
		all.v[k]->grad = NULL;
	}
	skd_tensor_release(g);
	free(all.v);
	free(ready.v);
	skd_set_grad_enabled(prev);
	return rc;
}

skd_tensor *skd_sum_to_shape(const skd_tensor *g, int ndim, const int64_t *shape)
{
	if (g->ndim == ndim) {
		bool same = true;
		for (int i = 0; i < ndim; i++)
			same = same && g->shape[i] == shape[i];
		if (same)
			return skd_tensor_contiguous_nograd((skd_tensor *)g);
	}
	skd_tensor *r = skd_tensor_zeros(SKD_FLOAT32, ndim, shape);
	if (!r)
		return NULL;
	if (skd_tensor_numel(r) == 1) { /* to a scalar (a weight divided by σ, a gain γ): the
					 * blocked parallel sum, in double, of skd_sum_all */
		bool prev = skd_set_grad_enabled(false);
		skd_tensor *total = skd_sum_all((skd_tensor *)g);
		skd_set_grad_enabled(prev);
		if (!total) {
			skd_tensor_release(r);
			return NULL;
		}
		skd_tensor_f32(r)[0] = skd_tensor_f32(total)[0];
		skd_tensor_release(total);
		return r;
	}
	/* Stride of r along each of g's dims: 0 where r broadcasts (size 1 or missing). */
	int64_t rstride[SKD_MAX_DIMS] = {0};
	int lead = g->ndim - ndim;
	for (int d = 0; d < g->ndim; d++) {
		int rd = d - lead;
		if (rd >= 0 && shape[rd] == g->shape[d] && shape[rd] != 1)
			rstride[d] = r->stride[rd];
	}
	const float *gp = skd_tensor_f32(g);
	float *rp = skd_tensor_f32(r);
	int64_t idx[SKD_MAX_DIMS] = {0}, n = skd_tensor_numel(g), goff = 0, roff = 0;
	for (int64_t k = 0; k < n; k++) {
		rp[roff] += gp[goff];
		for (int d = g->ndim - 1; d >= 0; d--) {
			goff += g->stride[d];
			roff += rstride[d];
			if (++idx[d] < g->shape[d])
				break;
			goff -= g->stride[d] * g->shape[d];
			roff -= rstride[d] * g->shape[d];
			idx[d] = 0;
		}
	}
	return r;
}
