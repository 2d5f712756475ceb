/* safetensors.c — reading and writing safetensors files (safetensors.h); the header's parser
 * and checks are in safetensors_header.c.
 *
 * Tensor bytes are read with pread, in offset order, straight into the tensor's storage (F32,
 * I32) or through a bounded buffer (conversions); pread rather than mmap so that a file
 * truncated while we read is an error, not a SIGBUS. Writing goes to a temporary file that is
 * fsync'ed and renamed over the target.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "parallel.h"
#include "safetensors.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c moves tensor bytes as they lie in memory: little-endian hosts only"
#endif

#define MAX_HEADER ((uint64_t)100 << 20) /* a longer header is refused as absurd */
#define CHUNK ((size_t)1 << 20)           /* conversion buffer, bytes */
#define NAME_FMT "%.200s"                 /* names in messages are cut, not the message */

static const struct {
	const char *name;
	size_t size;
} dtypes[] = {
	[SKD_ST_BOOL] = {"BOOL", 1}, [SKD_ST_U8] = {"U8", 1},     [SKD_ST_I8] = {"I8", 1},
	[SKD_ST_U16] = {"U16", 2},   [SKD_ST_I16] = {"I16", 2},   [SKD_ST_U32] = {"U32", 4},
	[SKD_ST_I32] = {"I32", 4},   [SKD_ST_U64] = {"U64", 8},   [SKD_ST_I64] = {"I64", 8},
	[SKD_ST_F16] = {"F16", 2},   [SKD_ST_BF16] = {"BF16", 2}, [SKD_ST_F32] = {"F32", 4},
	[SKD_ST_F64] = {"F64", 8},
};

const char *skd_st_dtype_name(skd_st_dtype dtype)
{
	return dtypes[dtype].name;
}

size_t skd_st_dtype_size(skd_st_dtype dtype)
{
	return dtypes[dtype].size;
}

static bool is_float_dtype(skd_st_dtype d)
{
	return d == SKD_ST_F16 || d == SKD_ST_BF16 || d == SKD_ST_F32 || d == SKD_ST_F64;
}

/* ---------- reading ---------- */

static int read_exact(int fd, void *buf, size_t n, uint64_t off, const char *path)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = pread(fd, p, n < ((size_t)1 << 30) ? n : (size_t)1 << 30, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return skd_error("load: '%s': read failed: %s", path, strerror(errno));
		if (r == 0)
			return skd_error("load: '%s': the file ended early (did it change while being "
					 "read?)", path);
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return SKD_OK;
}

skd_st_file *skd_st_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return skd_error_null("load: '%s': cannot open: %s", path, strerror(errno));
	struct stat st;
	unsigned char lenbuf[8];
	char *json = NULL;
	skd_st_file *f = NULL;
	if (fstat(fd, &st) != 0) {
		skd_error("load: '%s': cannot stat: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		skd_error("load: '%s': %s", path, S_ISDIR(st.st_mode) ? "is a directory"
								  : "is not a regular file");
		goto fail;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (size < 8) {
		skd_error("load: '%s': the file is %llu bytes, shorter than the 8-byte header "
			  "length of a safetensors file", path, (unsigned long long)size);
		goto fail;
	}
	if (read_exact(fd, lenbuf, 8, 0, path))
		goto fail;
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | lenbuf[i];
	if (n > MAX_HEADER) {
		skd_error("load: '%s': header length %llu is absurd (more than 100 MB): not a "
			  "safetensors file?", path, (unsigned long long)n);
		goto fail;
	}
	if (n > size - 8) {
		skd_error("load: '%s': header length %llu exceeds the %llu bytes that follow it "
			  "(truncated file?)", path, (unsigned long long)n,
			  (unsigned long long)(size - 8));
		goto fail;
	}
	json = skd_malloc(n);
	if (!json || read_exact(fd, json, n, 8, path))
		goto fail;
	f = skd_st_parse_header(path, json, n, size - 8 - n);
	if (!f)
		goto fail;
	free(json);
	f->fd = fd;
	f->data_start = 8 + n;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return f;
fail:
	free(json);
	close(fd);
	return NULL;
}

/* Half precision to single, exactly (subnormals, infinities and NaN payloads kept). */
static float f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
	uint32_t bits;
	if (exp == 0) {
		float v = (float)mant * 0x1p-24f; /* zero or subnormal: exact in float32 */
		memcpy(&bits, &v, 4);
		bits |= sign;
	} else if (exp == 31) {
		bits = sign | 0x7F800000u | mant << 13;
	} else {
		bits = sign | (exp + 112) << 23 | mant << 13;
	}
	float v;
	memcpy(&v, &bits, 4);
	return v;
}

/* Converts count elements of src (dtype d) to dst; returns the index of the first integer
 * that does not fit in int32, or -1. */
static int64_t convert(skd_st_dtype d, const unsigned char *src, size_t count, void *dst)
{
	float *fd = dst;
	int32_t *id = dst;
	switch (d) {
	case SKD_ST_F16:
#pragma omp parallel for schedule(static) if (count > SKD_PARALLEL_GRAIN)
		for (size_t i = 0; i < count; i++) {
			uint16_t h;
			memcpy(&h, src + 2 * i, 2);
			fd[i] = f16_to_f32(h);
		}
		return -1;
	case SKD_ST_BF16:
#pragma omp parallel for schedule(static) if (count > SKD_PARALLEL_GRAIN)
		for (size_t i = 0; i < count; i++) {
			uint32_t bits = 0;
			memcpy((char *)&bits + 2, src + 2 * i, 2);
			memcpy(&fd[i], &bits, 4);
		}
		return -1;
	case SKD_ST_F64:
		for (size_t i = 0; i < count; i++) {
			double v;
			memcpy(&v, src + 8 * i, 8);
			fd[i] = (float)v;
		}
		return -1;
	case SKD_ST_F32: case SKD_ST_I32:
		memcpy(dst, src, count * 4);
		return -1;
	case SKD_ST_BOOL:
		for (size_t i = 0; i < count; i++)
			id[i] = src[i] != 0;
		return -1;
	case SKD_ST_U8:
		for (size_t i = 0; i < count; i++)
			id[i] = src[i];
		return -1;
	case SKD_ST_I8:
		for (size_t i = 0; i < count; i++)
			id[i] = (int8_t)src[i];
		return -1;
	case SKD_ST_U16: case SKD_ST_I16:
		for (size_t i = 0; i < count; i++) {
			uint16_t v;
			memcpy(&v, src + 2 * i, 2);
			id[i] = d == SKD_ST_I16 ? (int32_t)(int16_t)v : (int32_t)v;
		}
		return -1;
	case SKD_ST_U32:
		for (size_t i = 0; i < count; i++) {
			uint32_t v;
			memcpy(&v, src + 4 * i, 4);
			if (v > INT32_MAX)
				return (int64_t)i;
			id[i] = (int32_t)v;
		}
		return -1;
	case SKD_ST_I64: case SKD_ST_U64:
		for (size_t i = 0; i < count; i++) {
			uint64_t v;
			memcpy(&v, src + 8 * i, 8);
			bool fits = d == SKD_ST_U64 ? v <= INT32_MAX
						    : (int64_t)v >= INT32_MIN && (int64_t)v <= INT32_MAX;
			if (!fits)
				return (int64_t)i;
			id[i] = (int32_t)(int64_t)v;
		}
		return -1;
	}
	return -1;
}

static void describe_value(skd_st_dtype d, const unsigned char *src, char *buf, size_t len)
{
	uint64_t v = 0;
	memcpy(&v, src, dtypes[d].size);
	if (d == SKD_ST_I64)
		snprintf(buf, len, "%lld", (long long)(int64_t)v);
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* Filling fresh memory costs a page fault per 4 KiB page, which dominates reading a big
 * checkpoint from the page cache; asking for transparent huge pages (a hint the kernel may
 * ignore) makes that one fault per 2 MiB. */
static void advise_huge(void *p, size_t n)
{
	const uintptr_t huge = (uintptr_t)2 << 20;
	if (n < 2 * huge)
		return;
	uintptr_t b = ((uintptr_t)p + huge - 1) & ~(huge - 1), e = ((uintptr_t)p + n) & ~(huge - 1);
	if (e > b)
		(void)madvise((void *)b, e - b, MADV_HUGEPAGE);
}

skd_tensor *skd_st_read(skd_st_file *f, size_t i)
{
	if (i >= f->n_entries)
		return skd_error_null("load: '%s': no tensor number %zu", f->path, i + 1);
	const skd_st_entry *e = &f->entries[i];
	if (f->fd < 0)
		return skd_error_null("load: '%s': the header was parsed without its file",
				      f->path);
	skd_tensor *t = skd_tensor_empty(is_float_dtype(e->dtype) ? SKD_FLOAT32 : SKD_INT32,
					 e->ndim, e->shape);
	if (!t) {
		char prefix[512];
		snprintf(prefix, sizeof prefix, "load: '%s': tensor '" NAME_FMT "': ", f->path,
			 e->name);
		skd_error_prefix(prefix);
		return NULL;
	}
	size_t nbytes = (size_t)(e->end - e->begin), esize = dtypes[e->dtype].size;
	uint64_t off = f->data_start + e->begin;
	unsigned char *out = t->storage->data;
	advise_huge(out, (size_t)skd_tensor_numel(t) * 4);
	if (e->dtype == SKD_ST_F32 || e->dtype == SKD_ST_I32) {
		if (read_exact(f->fd, out, nbytes, off, f->path))
			goto fail;
		return t;
	}
	size_t bufsize = nbytes < CHUNK ? nbytes : CHUNK; /* CHUNK is a multiple of every size */
	unsigned char *buf = bufsize ? skd_malloc(bufsize) : NULL;
	if (bufsize && !buf)
		goto fail;
	for (size_t done = 0; done < nbytes; done += bufsize < nbytes - done ? bufsize
									    : nbytes - done) {
		size_t n = bufsize < nbytes - done ? bufsize : nbytes - done;
		if (read_exact(f->fd, buf, n, off + done, f->path)) {
			free(buf);
			goto fail;
		}
		int64_t bad = convert(e->dtype, buf, n / esize, out + done / esize * 4);
		if (bad >= 0) {
			char val[32];
			describe_value(e->dtype, buf + (size_t)bad * esize, val, sizeof val);
			skd_error("load: '%s': tensor '" NAME_FMT "' (%s) holds %s at flat index %llu, "
				  "which does not fit in int32", f->path, e->name,
				  dtypes[e->dtype].name, val,
				  (unsigned long long)(done / esize + (size_t)bad));
			free(buf);
			goto fail;
		}
	}
	free(buf);
	return t;
fail:
	skd_tensor_release(t);
	return NULL;
}

/* ---------- writing ---------- */

typedef struct text {
	char *p;
	size_t len, cap;
	bool oom;
} text;

static void put(text *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q) {
			b->oom = true;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(text *b, const char *s)
{
	put(b, s, strlen(s));
}

/* A JSON string: '"' and '\' escaped, control characters as \u00XX, UTF-8 as it is. */
static void put_json_string(text *b, const char *s)
{
	put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof esc, "\\u%04x", c);
			put(b, esc, 6);
		} else {
			put(b, (const char *)&c, 1);
		}
	}
	put(b, "\"", 1);
}

typedef struct item {
	const char *name;
	skd_tensor *tensor; /* NULL for a metadata pair */
	const char *value;
} item;

static int by_item_name(const void *a, const void *b)
{
	return strcmp(((const item *)a)->name, ((const item *)b)->name);
}

/* The sorted, checked items: names valid UTF-8, unique, not the reserved key. */
static item *sorted_items(const char *path, size_t n, const char *const *names,
			  skd_tensor *const *tensors, const char *const *values)
{
	const char *what = tensors ? "tensor name" : "metadata key";
	item *it = skd_calloc(n ? n : 1, sizeof *it);
	if (!it)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		it[i].name = names[i];
		it[i].tensor = tensors ? tensors[i] : NULL;
		it[i].value = values ? values[i] : NULL;
		const char *bad = !names[i] ? "is missing"
				  : !skd_st_utf8_valid(names[i]) ? "is not valid UTF-8"
				  : tensors && !strcmp(names[i], "__metadata__") ? "is reserved"
				  : tensors && !tensors[i] ? "has no tensor"
				  : values && !values[i] ? "has no value"
				  : values && !skd_st_utf8_valid(values[i]) ? "has a value that is not UTF-8"
				  : NULL;
		if (bad) {
			skd_error("save: '%s': %s '" NAME_FMT "' %s", path, what,
				  names[i] ? names[i] : "?", bad);
			free(it);
			return NULL;
		}
	}
	qsort(it, n, sizeof *it, by_item_name);
	for (size_t i = 1; i < n; i++)
		if (!strcmp(it[i].name, it[i - 1].name)) {
			skd_error("save: '%s': %s '" NAME_FMT "' is given twice", path, what,
				  it[i].name);
			free(it);
			return NULL;
		}
	return it;
}

/* The header text, padded with spaces so that the data starts 8-byte aligned as the
 * reference writer does. */
static int build_header(text *h, const item *ts, size_t n, const item *ms, size_t n_meta)
{
	char num[96];
	puts_(h, "{");
	if (n_meta) {
		puts_(h, "\"__metadata__\":{");
		for (size_t i = 0; i < n_meta; i++) {
			if (i)
				puts_(h, ",");
			put_json_string(h, ms[i].name);
			puts_(h, ":");
			put_json_string(h, ms[i].value);
		}
		puts_(h, n ? "}," : "}");
	}
	uint64_t offset = 0;
	for (size_t i = 0; i < n; i++) {
		const skd_tensor *t = ts[i].tensor;
		if (i)
			puts_(h, ",");
		put_json_string(h, ts[i].name);
		puts_(h, t->dtype == SKD_INT32 ? ":{\"dtype\":\"I32\",\"shape\":["
					       : ":{\"dtype\":\"F32\",\"shape\":[");
		for (int d = 0; d < t->ndim; d++) {
			snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
			puts_(h, num);
		}
		uint64_t bytes = (uint64_t)skd_tensor_numel(t) * 4;
		snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}",
			 (unsigned long long)offset, (unsigned long long)(offset + bytes));
		puts_(h, num);
		offset += bytes;
	}
	puts_(h, "}");
	while ((8 + h->len) % 8)
		puts_(h, " ");
	return h->oom ? skd_error("out of memory building the header") : SKD_OK;
}

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n < ((size_t)1 << 30) ? n : (size_t)1 << 30);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return SKD_ERR;
		p += w;
		n -= (size_t)w;
	}
	return SKD_OK;
}

/* The directory part of path ("." when there is none), for the temporary file's message and
 * for the fsync that makes the rename durable. */
static void dir_of(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(buf, len, ".");
	else if (slash == path)
		snprintf(buf, len, "/");
	else
		snprintf(buf, len, "%.*s", (int)(slash - path), path);
}

static int write_body(int fd, const text *h, const item *ts, size_t n)
{
	unsigned char lenbuf[8];
	for (int i = 0; i < 8; i++)
		lenbuf[i] = (unsigned char)((uint64_t)h->len >> (8 * i));
	if (write_all(fd, lenbuf, 8) || write_all(fd, h->p, h->len))
		return SKD_ERR;
	for (size_t i = 0; i < n; i++) {
		skd_tensor *c = skd_tensor_contiguous_nograd(ts[i].tensor);
		if (!c)
			return SKD_ERR;
		int st = write_all(fd, (char *)c->storage->data + c->offset * 4,
				   (size_t)skd_tensor_numel(c) * 4);
		skd_tensor_release(c);
		if (st)
			return SKD_ERR;
	}
	return fsync(fd) ? SKD_ERR : SKD_OK;
}

int skd_st_save(const char *path, size_t n, const char *const *names,
		skd_tensor *const *tensors, size_t n_meta, const char *const *keys,
		const char *const *values)
{
	item *ts = sorted_items(path, n, names, tensors, NULL);
	item *ms = ts ? sorted_items(path, n_meta, keys, NULL, values) : NULL;
	text h = {0};
	char *tmp = NULL, dir[4096], prefix[512];
	int status = SKD_ERR, fd = -1;
	snprintf(prefix, sizeof prefix, "save: '%s': ", path);
	if (!ms)
		goto done;
	if (build_header(&h, ts, n, ms, n_meta) || !(tmp = skd_malloc(strlen(path) + 16))) {
		skd_error_prefix(prefix);
		goto done;
	}
	dir_of(path, dir, sizeof dir);
	sprintf(tmp, "%s.tmp-XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		skd_error("save: '%s': cannot create a temporary file in '%s': %s", path, dir,
			  strerror(errno));
		free(tmp);
		tmp = NULL; /* nothing was created, nothing to remove */
		goto done;
	}
	/* mkstemp makes the file 0600; give it the mode the old file had, or the umask's. */
	struct stat st;
	mode_t mode;
	if (stat(path, &st) == 0) {
		mode = st.st_mode & 07777;
	} else {
		mode_t mask = umask(0);
		umask(mask);
		mode = 0666 & ~mask;
	}
	errno = 0;
	if (write_body(fd, &h, ts, n)) {
		if (errno)
			skd_error("save: '%s': writing failed: %s ('%s' is unchanged)", path,
				  strerror(errno), path);
		else
			skd_error_prefix(prefix);
		goto done;
	}
	(void)fchmod(fd, mode);
	int closed = close(fd);
	fd = -1;
	if (closed != 0 || rename(tmp, path) != 0) {
		skd_error("save: '%s': cannot put the file in place: %s ('%s' is unchanged)", path,
			  strerror(errno), path);
		goto done;
	}
	free(tmp);
	tmp = NULL;
	/* The rename is durable only once the directory entry is on disk; a filesystem that
	 * cannot fsync a directory has nothing to flush, so that failure is not reported. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	status = SKD_OK;
done:
	if (fd >= 0)
		close(fd);
	if (tmp && status != SKD_OK)
		unlink(tmp);
	free(tmp);
	free(h.p);
	free(ts);
	free(ms);
	return status;
}
