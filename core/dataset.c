/* dataset.c — file discovery, pairing, PNG loading and label mapping (dataset.h). */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "dataset.h"
#include "error.h"
#include "image.h"

enum { K_SYNTHETIC, K_FILES, K_CALLBACK };

struct skd_dataset {
	int refcount;
	int kind;
	const char *name; /* "synthetic", "camvid", "cityscapes", "folder", "callback" */
	int64_t n;
	int num_classes;
	char **names;
	uint8_t (*palette)[3];
	/* files */
	char **images, **labels;
	int16_t map[256];    /* label PNG value -> class id or 255; -1: not in the class list */
	char valid[96];      /* the accepted values, for error messages */
	/* synthetic */
	uint64_t seed;
	int split, height, width;
	/* callback */
	skd_dataset_fetch fn;
	void *ud;
	void (*free_ud)(void *);
};

/* ---------- growing lists of strings ---------- */

typedef struct strlist { char **v; int64_t n, cap; } strlist;

static int strlist_push(strlist *l, char *s) /* takes s */
{
	if (!s)
		return SKD_ERR;
	if (l->n == l->cap) {
		int64_t cap = l->cap ? 2 * l->cap : 64;
		char **v = realloc(l->v, (size_t)cap * sizeof *v);
		if (!v) {
			free(s);
			return skd_error("dataset: out of memory listing files");
		}
		l->v = v, l->cap = cap;
	}
	l->v[l->n++] = s;
	return SKD_OK;
}

static void strlist_free(strlist *l)
{
	for (int64_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = skd_malloc(la + lb + 2);
	if (!s)
		return NULL;
	memcpy(s, a, la);
	s[la] = '/';
	memcpy(s + la + 1, b, lb + 1);
	return s;
}

/* A printf-formatted path, malloc'ed (no length limit). */
static char *fmt_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_path(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = n < 0 ? NULL : skd_malloc((size_t)n + 1);
	if (s) {
		va_start(ap, fmt);
		vsnprintf(s, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	return s;
}

static char *dup_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = skd_malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

static int is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);
	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* The entries of dir (sorted, hidden ones skipped): sub-folders, or files ending in suffix. */
static int list_dir(const char *who, const char *dir, const char *suffix, int folders, strlist *out)
{
	DIR *d = opendir(dir);
	if (!d)
		return skd_error("%s: cannot open folder '%s': %s", who, dir, strerror(errno));
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char *path = join(dir, e->d_name);
		struct stat st;
		int keep = path && stat(path, &st) == 0 &&
			   (folders ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode) && ends_with(e->d_name, suffix));
		free(path);
		if (keep && strlist_push(out, dup_str(e->d_name))) {
			closedir(d);
			return SKD_ERR;
		}
	}
	closedir(d);
	if (out->n > 1)
		qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
	return SKD_OK;
}

/* ---------- construction ---------- */

static skd_dataset *dataset_new(int kind, const char *name, int num_classes)
{
	skd_dataset *ds = skd_calloc(1, sizeof *ds);
	if (!ds)
		return NULL;
	ds->refcount = 1, ds->kind = kind, ds->name = name, ds->num_classes = num_classes;
	ds->names = skd_calloc((size_t)num_classes, sizeof *ds->names);
	ds->palette = skd_calloc((size_t)num_classes, sizeof *ds->palette);
	if (!ds->names || !ds->palette) {
		skd_dataset_release(ds);
		return NULL;
	}
	for (int v = 0; v < 256; v++)
		ds->map[v] = -1;
	return ds;
}

/* Class c's default colour: CamVid's for the first 11, then PASCAL VOC's bit pattern. */
static void default_colour(int c, uint8_t rgb[3])
{
	if (c < SKD_CAMVID_CLASSES) {
		memcpy(rgb, skd_camvid_palette[c], 3);
		return;
	}
	rgb[0] = rgb[1] = rgb[2] = 0;
	for (int k = 0, v = c; k < 8; k++, v >>= 3)
		for (int ch = 0; ch < 3; ch++)
			rgb[ch] |= (uint8_t)(((v >> ch) & 1) << (7 - k));
}

static int set_classes(skd_dataset *ds, const char *const *names, const uint8_t (*palette)[3])
{
	for (int c = 0; c < ds->num_classes; c++) {
		char buf[32];
		snprintf(buf, sizeof buf, "class_%d", c);
		if (!(ds->names[c] = dup_str(names ? names[c] : buf)))
			return SKD_ERR;
		if (palette)
			memcpy(ds->palette[c], palette[c], 3);
		else
			default_colour(c, ds->palette[c]);
	}
	return SKD_OK;
}

skd_dataset *skd_dataset_synthetic(uint64_t seed, int split, int64_t n, int height, int width)
{
	if (n < 1)
		return skd_error_null("synthetic: n must be at least 1, got %lld", (long long)n);
	if (height < 8 || width < 8 || height > 16384 || width > 16384)
		return skd_error_null("synthetic: size must be 8..16384 on each side, got %dx%d", height, width);
	if (split < 0 || split > 2)
		return skd_error_null("synthetic: split must be train, val or test");
	skd_dataset *ds = dataset_new(K_SYNTHETIC, "synthetic", SKD_CAMVID_CLASSES);
	if (!ds || set_classes(ds, skd_camvid_names, skd_camvid_palette)) {
		skd_dataset_release(ds);
		return NULL;
	}
	ds->n = n, ds->seed = seed, ds->split = split, ds->height = height, ds->width = width;
	return ds;
}

/* Adds the pair (image, label) after checking that the label file exists. */
static int add_pair(skd_dataset *ds, strlist *imgs, strlist *labs, char *image, char *label)
{
	if (!image || !label) {
		free(image);
		free(label);
		return SKD_ERR;
	}
	if (!is_file(label)) {
		skd_error("%s: image '%s' has no label: '%s' does not exist", ds->name, image, label);
		free(image);
		free(label);
		return SKD_ERR;
	}
	if (strlist_push(imgs, image)) {
		free(label);
		return SKD_ERR;
	}
	return strlist_push(labs, label);
}

static skd_dataset *finish_files(skd_dataset *ds, strlist *imgs, strlist *labs, const char *where)
{
	if (imgs->n == 0) {
		skd_error("%s: no images found in '%s'", ds->name, where);
		strlist_free(imgs);
		strlist_free(labs);
		skd_dataset_release(ds);
		return NULL;
	}
	ds->images = imgs->v, ds->labels = labs->v, ds->n = imgs->n;
	return ds;
}

static void fail_files(skd_dataset *ds, strlist *a, strlist *b)
{
	strlist_free(a);
	strlist_free(b);
	skd_dataset_release(ds);
}

skd_dataset *skd_dataset_camvid(const char *root, const char *split)
{
	skd_dataset *ds = dataset_new(K_FILES, "camvid", SKD_CAMVID_CLASSES);
	if (!ds || set_classes(ds, skd_camvid_names, skd_camvid_palette)) {
		skd_dataset_release(ds);
		return NULL;
	}
	for (int v = 0; v < SKD_CAMVID_CLASSES; v++)
		ds->map[v] = (int16_t)v;
	ds->map[11] = SKD_IGNORE_LABEL; /* Unlabelled */
	ds->map[255] = SKD_IGNORE_LABEL;
	snprintf(ds->valid, sizeof ds->valid, "0..10, 11 = void");
	strlist names = {0}, imgs = {0}, labs = {0};
	char *dir = join(root, split), *annot = fmt_path("%s/%sannot", root, split);
	struct stat st;
	int bad = !dir || !annot || list_dir("camvid", dir, ".png", 0, &names);
	if (!bad && (stat(annot, &st) != 0 || !S_ISDIR(st.st_mode)))
		bad = skd_error("camvid: label folder '%s' is missing (images are in '%s')", annot, dir);
	for (int64_t i = 0; !bad && i < names.n; i++)
		bad = add_pair(ds, &imgs, &labs, join(dir, names.v[i]), join(annot, names.v[i]));
	strlist_free(&names);
	if (bad)
		fail_files(ds, &imgs, &labs);
	else
		ds = finish_files(ds, &imgs, &labs, dir);
	free(dir);
	free(annot);
	return bad ? NULL : ds;
}

/* Cityscapes' 34 label ids -> 19 train ids (cityscapesScripts, labels.py). */
static const int16_t CITYSCAPES_TRAIN_ID[34] = {
	255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255,
	5, 255, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18,
};
static const char *const CITYSCAPES_NAMES[19] = {
	"road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
	"vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
	"motorcycle", "bicycle",
};
static const uint8_t CITYSCAPES_PALETTE[19][3] = {
	{128, 64, 128}, {244, 35, 232}, {70, 70, 70}, {102, 102, 156}, {190, 153, 153},
	{153, 153, 153}, {250, 170, 30}, {220, 220, 0}, {107, 142, 35}, {152, 251, 152},
	{70, 130, 180}, {220, 20, 60}, {255, 0, 0}, {0, 0, 142}, {0, 0, 70}, {0, 60, 100},
	{0, 80, 100}, {0, 0, 230}, {119, 11, 32},
};

skd_dataset *skd_dataset_cityscapes(const char *root, const char *split)
{
	skd_dataset *ds = dataset_new(K_FILES, "cityscapes", 19);
	if (!ds || set_classes(ds, CITYSCAPES_NAMES, CITYSCAPES_PALETTE)) {
		skd_dataset_release(ds);
		return NULL;
	}
	for (int v = 0; v < 34; v++)
		ds->map[v] = CITYSCAPES_TRAIN_ID[v];
	ds->map[255] = SKD_IGNORE_LABEL;
	snprintf(ds->valid, sizeof ds->valid, "label ids 0..33");
	strlist cities = {0}, imgs = {0}, labs = {0};
	char *idir = fmt_path("%s/leftImg8bit/%s", root, split);
	int bad = !idir || list_dir("cityscapes", idir, "", 1, &cities);
	const char *suffix = "_leftImg8bit.png";
	for (int64_t c = 0; !bad && c < cities.n; c++) {
		strlist files = {0};
		char *cdir = join(idir, cities.v[c]);
		bad = !cdir || list_dir("cityscapes", cdir, suffix, 0, &files);
		for (int64_t i = 0; !bad && i < files.n; i++) {
			int stem = (int)(strlen(files.v[i]) - strlen(suffix));
			bad = add_pair(ds, &imgs, &labs, join(cdir, files.v[i]),
				       fmt_path("%s/gtFine/%s/%s/%.*s_gtFine_labelIds.png", root, split,
						cities.v[c], stem, files.v[i]));
		}
		strlist_free(&files);
		free(cdir);
	}
	strlist_free(&cities);
	if (bad)
		fail_files(ds, &imgs, &labs);
	else
		ds = finish_files(ds, &imgs, &labs, idir);
	free(idir);
	return bad ? NULL : ds;
}

skd_dataset *skd_dataset_folder(const char *list_path, int num_classes, const char *const *names,
				const int *void_values, int n_void)
{
	if (num_classes < 1 || num_classes > 255)
		return skd_error_null("folder: num_classes must be 1..255, got %d", num_classes);
	skd_dataset *ds = dataset_new(K_FILES, "folder", num_classes);
	if (!ds || set_classes(ds, names, NULL)) {
		skd_dataset_release(ds);
		return NULL;
	}
	for (int v = 0; v < num_classes; v++)
		ds->map[v] = (int16_t)v;
	ds->map[255] = SKD_IGNORE_LABEL;
	int len = snprintf(ds->valid, sizeof ds->valid, "0..%d, 255 = ignore", num_classes - 1);
	for (int k = 0; k < n_void; k++) {
		if (void_values[k] < 0 || void_values[k] > 255) {
			skd_dataset_release(ds);
			return skd_error_null("folder: void value %d is not a byte (0..255)", void_values[k]);
		}
		ds->map[void_values[k]] = SKD_IGNORE_LABEL;
		if (len < (int)sizeof ds->valid)
			len += snprintf(ds->valid + len, sizeof ds->valid - (size_t)len, ", %d = void", void_values[k]);
	}
	FILE *f = fopen(list_path, "r");
	if (!f) {
		skd_dataset_release(ds);
		return skd_error_null("folder: cannot open list file '%s': %s", list_path, strerror(errno));
	}
	char base[4096];
	const char *slash = strrchr(list_path, '/');
	snprintf(base, sizeof base, "%.*s", slash ? (int)(slash - list_path) : 1, slash ? list_path : ".");
	strlist imgs = {0}, labs = {0};
	char line[8192];
	for (int ln = 1; fgets(line, sizeof line, f); ln++) {
		char a[4096], b[4096], extra[8];
		int k = sscanf(line, "%4095s %4095s %7s", a, b, extra);
		if (k <= 0 || a[0] == '#')
			continue;
		if (k != 2) {
			skd_error("folder: '%s' line %d: expected 'image_path label_path', got '%.*s'",
				  list_path, ln, (int)strcspn(line, "\r\n"), line);
			fclose(f);
			fail_files(ds, &imgs, &labs);
			return NULL;
		}
		char *img = a[0] == '/' ? dup_str(a) : join(base, a);
		char *lab = b[0] == '/' ? dup_str(b) : join(base, b);
		int bad = !img || !lab;
		if (!bad && !is_file(img))
			bad = skd_error("folder: '%s' line %d: image '%s' does not exist", list_path, ln, img);
		else if (!bad && !is_file(lab))
			bad = skd_error("folder: '%s' line %d: image '%s' has no label: '%s' does not exist",
					list_path, ln, img, lab);
		if (bad || strlist_push(&imgs, img) || (img = NULL, strlist_push(&labs, lab))) {
			free(img);
			if (bad)
				free(lab);
			fclose(f);
			fail_files(ds, &imgs, &labs);
			return NULL;
		}
	}
	fclose(f);
	return finish_files(ds, &imgs, &labs, list_path);
}

skd_dataset *skd_dataset_callback(int64_t n, int num_classes, skd_dataset_fetch fn, void *ud,
				  void (*free_ud)(void *))
{
	if (n < 0 || num_classes < 1)
		return skd_error_null("dataset: a callback dataset needs n >= 0 and num_classes >= 1");
	skd_dataset *ds = dataset_new(K_CALLBACK, "callback", num_classes);
	if (!ds || set_classes(ds, NULL, NULL)) {
		skd_dataset_release(ds);
		return NULL;
	}
	ds->n = n, ds->fn = fn, ds->ud = ud, ds->free_ud = free_ud;
	return ds;
}

/* ---------- lifetime and queries ---------- */

skd_dataset *skd_dataset_retain(skd_dataset *ds)
{
	__atomic_add_fetch(&ds->refcount, 1, __ATOMIC_RELAXED);
	return ds;
}

void skd_dataset_release(skd_dataset *ds)
{
	if (!ds || __atomic_sub_fetch(&ds->refcount, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (int c = 0; ds->names && c < ds->num_classes; c++)
		free(ds->names[c]);
	free(ds->names);
	free(ds->palette);
	for (int64_t i = 0; ds->images && i < ds->n; i++) {
		free(ds->images[i]);
		free(ds->labels[i]);
	}
	free(ds->images);
	free(ds->labels);
	if (ds->free_ud)
		ds->free_ud(ds->ud);
	free(ds);
}

int64_t skd_dataset_size(const skd_dataset *ds) { return ds->n; }
int skd_dataset_num_classes(const skd_dataset *ds) { return ds->num_classes; }
const char *skd_dataset_kind(const skd_dataset *ds) { return ds->name; }
int skd_dataset_threadsafe(const skd_dataset *ds) { return ds->kind != K_CALLBACK; }

const char *skd_dataset_class_name(const skd_dataset *ds, int c)
{
	return c >= 0 && c < ds->num_classes ? ds->names[c] : NULL;
}

void skd_dataset_class_colour(const skd_dataset *ds, int c, uint8_t rgb[3])
{
	if (c >= 0 && c < ds->num_classes)
		memcpy(rgb, ds->palette[c], 3);
	else
		rgb[0] = rgb[1] = rgb[2] = 0;
}

const char *skd_dataset_image_path(const skd_dataset *ds, int64_t i)
{
	return ds->kind == K_FILES && i >= 0 && i < ds->n ? ds->images[i] : NULL;
}

const char *skd_dataset_label_path(const skd_dataset *ds, int64_t i)
{
	return ds->kind == K_FILES && i >= 0 && i < ds->n ? ds->labels[i] : NULL;
}

/* ---------- loading ---------- */

static int load_files(const skd_dataset *ds, int64_t i, skd_tensor **image, skd_tensor **label)
{
	const char *ipath = ds->images[i], *lpath = ds->labels[i];
	skd_image im, lb;
	char who[32];
	snprintf(who, sizeof who, "%s: ", ds->name);
	if (skd_image_read_png(ipath, &im, 3)) {
		skd_error_prefix(who);
		return SKD_ERR;
	}
	if (skd_image_read_png(lpath, &lb, 0)) {
		skd_error_prefix(who);
		skd_image_free(&im);
		return SKD_ERR;
	}
	int rc = SKD_ERR;
	*image = *label = NULL;
	if (lb.channels != 1) {
		skd_error("%s: label '%s' is a colour image; expected 8-bit grayscale class ids", ds->name, lpath);
		goto out;
	}
	if (lb.width != im.width || lb.height != im.height) {
		skd_error("%s: size mismatch: image '%s' is %dx%d (HxW) but its label '%s' is %dx%d",
			  ds->name, ipath, im.height, im.width, lpath, lb.height, lb.width);
		goto out;
	}
	int H = im.height, W = im.width;
	size_t np = (size_t)H * W;
	*image = skd_tensor_empty(SKD_FLOAT32, 3, (int64_t[]){3, H, W});
	*label = skd_tensor_empty(SKD_INT32, 2, (int64_t[]){H, W});
	if (!*image || !*label)
		goto out;
	int32_t *l = skd_tensor_i32(*label);
	for (size_t p = 0; p < np; p++) {
		int v = ds->map[lb.pixels[p]];
		if (v < 0) {
			skd_error("%s: label '%s' has value %d at row %d, column %d (1-based), outside "
				  "the class list (%s)", ds->name, lpath, lb.pixels[p], (int)(p / W) + 1,
				  (int)(p % W) + 1, ds->valid);
			goto out;
		}
		l[p] = v;
	}
	float *x = skd_tensor_f32(*image);
	for (int ch = 0; ch < 3; ch++)
		for (size_t p = 0; p < np; p++)
			x[ch * np + p] = im.pixels[3 * p + ch] * (1.0f / 255.0f);
	rc = SKD_OK;
out:
	if (rc != SKD_OK) {
		skd_tensor_release(*image);
		skd_tensor_release(*label);
		*image = *label = NULL;
	}
	skd_image_free(&im);
	skd_image_free(&lb);
	return rc;
}

int skd_dataset_get(const skd_dataset *ds, int64_t i, skd_tensor **image, skd_tensor **label)
{
	*image = *label = NULL;
	if (i < 0 || i >= ds->n)
		return skd_error("%s: index %lld out of range (the dataset has %lld samples)", ds->name,
				 (long long)i + 1, (long long)ds->n);
	if (ds->kind == K_FILES)
		return load_files(ds, i, image, label);
	if (ds->kind == K_CALLBACK)
		return ds->fn(ds->ud, i, image, label);
	int H = ds->height, W = ds->width;
	*image = skd_tensor_empty(SKD_FLOAT32, 3, (int64_t[]){3, H, W});
	*label = skd_tensor_empty(SKD_INT32, 2, (int64_t[]){H, W});
	if (!*image || !*label ||
	    skd_synthetic_render(ds->seed, ds->split, i, H, W, skd_tensor_f32(*image), skd_tensor_i32(*label))) {
		skd_tensor_release(*image);
		skd_tensor_release(*label);
		*image = *label = NULL;
		return SKD_ERR;
	}
	return SKD_OK;
}
