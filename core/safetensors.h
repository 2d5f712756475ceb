/* safetensors.h — checkpoints on disk in the safetensors format (design.md, "Files on disk").
 * safetensors_header.c parses and checks the header; safetensors.c reads and writes files.
 *
 * A file is 8 bytes holding the little-endian length N of a header, N bytes of UTF-8 JSON
 *
 *   {"__metadata__": {"role": "teacher", ...},
 *    "layer1.0.conv1.weight": {"dtype": "F32", "shape": [64, 64, 3, 3],
 *                              "data_offsets": [begin, end]}, ...}
 *
 * then the data buffer: each tensor row-major, little-endian, in bytes [begin, end) of it.
 * The buffer is covered exactly: no two tensors overlap and no byte belongs to none.
 *
 * Nothing in a file is trusted. The reader checks every length, offset, shape and string
 * against the file's real size before it allocates, so a truncated, damaged or lying file ends
 * in an error such as
 *   load: 'ck.safetensors': tensor 'fc.weight' data_offsets [0, 100] exceed the data size 64
 * never in a crash, and never in an allocation larger than the file warrants.
 * Every message starts "load: 'path': " or "save: 'path': ".
 */
#ifndef SKD_SAFETENSORS_H
#define SKD_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tensor.h"

/* The dtypes a file may hold. Floats load as float32, integers and BOOL as int32 (an integer
 * that does not fit is an error, never a silent wrap). F8 and complex types are refused. */
typedef enum {
	SKD_ST_BOOL, SKD_ST_U8, SKD_ST_I8, SKD_ST_U16, SKD_ST_I16, SKD_ST_U32, SKD_ST_I32,
	SKD_ST_U64, SKD_ST_I64, SKD_ST_F16, SKD_ST_BF16, SKD_ST_F32, SKD_ST_F64
} skd_st_dtype;

typedef struct skd_st_entry {
	char *name; /* valid UTF-8 without NUL */
	skd_st_dtype dtype;
	int ndim;
	int64_t shape[SKD_MAX_DIMS];
	uint64_t begin, end; /* byte range in the data buffer */
} skd_st_entry;

typedef struct skd_st_meta {
	char *key, *value;
} skd_st_meta;

/* A validated file, open for reading its tensors. */
typedef struct skd_st_file {
	char *path;
	int fd;                 /* -1 for a header parsed from memory */
	uint64_t data_start;    /* 8 + N: where the data buffer begins in the file */
	uint64_t data_size;     /* bytes in the data buffer */
	size_t n_entries;
	skd_st_entry *entries;  /* in order of data_offsets, so reading them is sequential */
	size_t n_meta;
	skd_st_meta *meta;      /* sorted by key */
} skd_st_file;

/* Opens and validates path. New handle (close with skd_st_close), or NULL with an error. */
skd_st_file *skd_st_open(const char *path);
/* Validates a header held in memory (json: len bytes, not NUL-terminated) against a data
 * buffer of data_size bytes; path only names the file in messages. The handle has fd -1:
 * its tensors cannot be read. New handle, or NULL with an error. */
skd_st_file *skd_st_parse_header(const char *path, const char *json, size_t len,
				 uint64_t data_size);
/* Entry i of f as a new contiguous tensor (float32 or int32, see skd_st_dtype), or NULL with
 * an error (file changed under us, an integer out of int32's range, out of memory). */
skd_tensor *skd_st_read(skd_st_file *f, size_t i);
void skd_st_close(skd_st_file *f); /* NULL is fine */

/* Writes n tensors (float32 as F32, int32 as I32; any strides, written contiguous) and n_meta
 * string pairs to path. Names are sorted, so equal inputs give equal bytes. Atomic: the bytes
 * go to a temporary file in path's directory, which is fsync'ed and renamed over path, so
 * path holds either its old content or the whole new file, never a part.
 * Returns SKD_OK, or SKD_ERR with an error naming path. */
int skd_st_save(const char *path, size_t n, const char *const *names,
		skd_tensor *const *tensors, size_t n_meta, const char *const *keys,
		const char *const *values);

const char *skd_st_dtype_name(skd_st_dtype dtype); /* "F32", "BF16", ... */
size_t skd_st_dtype_size(skd_st_dtype dtype);      /* bytes per element */
/* Whether s is valid UTF-8 (no overlong forms, no surrogates): JSON strings must be. */
bool skd_st_utf8_valid(const char *s);

#endif
