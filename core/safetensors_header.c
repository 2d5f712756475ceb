/* safetensors_header.c — the safetensors header: a small strict JSON parser (RFC 8259) that
 * knows the format's schema, and the checks across entries (safetensors.h).
 *
 * The parser builds no tree: memory stays proportional to the number of tensors, whatever the
 * header's text, and a message can say which tensor and which field is wrong. Every offset is
 * checked against the data size here, before the reader allocates anything.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "safetensors.h"

#define NAME_FMT "%.200s" /* names in messages are cut, not the message */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one: no overlong forms,
 * no surrogates, nothing above U+10FFFF. */
static size_t utf8_char(const unsigned char *s, size_t avail)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
	if (c < 0xC2 || c > 0xF4 || avail < n)
		return 0;
	for (size_t k = 1; k < n; k++)
		if ((s[k] & 0xC0) != 0x80)
			return 0;
	if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) ||
	    (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
		return 0;
	return n;
}

bool skd_st_utf8_valid(const char *s)
{
	size_t len = strlen(s);
	for (size_t k = 0; k < len;) {
		size_t n = utf8_char((const unsigned char *)s + k, len - k);
		if (!n)
			return false;
		k += n;
	}
	return true;
}

static char *shape_text(const skd_st_entry *e, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < e->ndim && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, i ? ", %lld" : "%lld", (long long)e->shape[i]);
	if (n < len)
		snprintf(buf + n, len - n, "]");
	return buf;
}

/* ---------- the header parser ---------- */

typedef struct parser {
	const char *path;
	const unsigned char *s;
	size_t len, pos;
} parser;

static void skip_ws(parser *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
				   p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

static int syntax(parser *p, const char *expected)
{
	if (p->pos >= p->len)
		return skd_error("load: '%s': header is not valid JSON: expected %s, but the "
				 "header ends (it is %zu bytes)", p->path, expected, p->len);
	unsigned c = p->s[p->pos];
	return skd_error("load: '%s': header is not valid JSON: expected %s at byte %zu of %zu, "
			 "found %s'%c' (0x%02x)", p->path, expected, p->pos, p->len,
			 c >= 0x20 && c < 0x7F ? "" : "byte ", c >= 0x20 && c < 0x7F ? (int)c : '?', c);
}

/* What kind of JSON value starts at the next non-blank byte, for "must be X, got Y". */
static const char *kind(parser *p)
{
	skip_ws(p);
	if (p->pos >= p->len)
		return NULL;
	switch (p->s[p->pos]) {
	case '"': return "a string";
	case '{': return "an object";
	case '[': return "an array";
	case 't': case 'f': return "a boolean";
	case 'n': return "null";
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9': return "a number";
	default: return NULL;
	}
}

/* Consumes c (after blanks) or fails naming what was expected. */
static int expect(parser *p, char c, const char *expected)
{
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == (unsigned char)c) {
		p->pos++;
		return SKD_OK;
	}
	return syntax(p, expected);
}

static int hex4(parser *p, size_t at, size_t end, unsigned *out)
{
	if (at + 4 > end) {
		p->pos = at;
		return syntax(p, "four hex digits after \\u");
	}
	unsigned v = 0;
	for (size_t k = at; k < at + 4; k++) {
		unsigned c = p->s[k], d;
		if (c >= '0' && c <= '9') d = c - '0';
		else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
		else {
			p->pos = k;
			return syntax(p, "a hex digit in a \\u escape");
		}
		v = v * 16 + d;
	}
	*out = v;
	return SKD_OK;
}

/* Decodes the string at the next '"' into a new NUL-terminated UTF-8 buffer (*out). A decoded
 * string is never longer than its quoted form, which bounds the allocation. */
static int parse_string(parser *p, char **out)
{
	*out = NULL;
	if (expect(p, '"', "a string"))
		return SKD_ERR;
	size_t start = p->pos, end = start;
	while (end < p->len && p->s[end] != '"')
		end += p->s[end] == '\\' ? 2 : 1;
	if (end >= p->len) {
		p->pos = p->len;
		return syntax(p, "the closing '\"' of a string");
	}
	char *buf = skd_malloc(end - start + 1);
	if (!buf)
		return SKD_ERR;
	size_t n = 0;
	for (size_t k = start; k < end;) {
		unsigned c = p->s[k];
		if (c < 0x20) {
			p->pos = k;
			free(buf);
			return syntax(p, "no raw control character in a string");
		}
		if (c != '\\') {
			size_t len = utf8_char(p->s + k, end - k);
			if (!len) {
				free(buf);
				return skd_error("load: '%s': header is not valid UTF-8 at byte %zu",
						 p->path, k);
			}
			memcpy(buf + n, p->s + k, len);
			n += len;
			k += len;
			continue;
		}
		unsigned e = p->s[k + 1], cp;
		k += 2;
		switch (e) {
		case '"': case '\\': case '/': buf[n++] = (char)e; continue;
		case 'b': buf[n++] = '\b'; continue;
		case 'f': buf[n++] = '\f'; continue;
		case 'n': buf[n++] = '\n'; continue;
		case 'r': buf[n++] = '\r'; continue;
		case 't': buf[n++] = '\t'; continue;
		case 'u': break;
		default:
			p->pos = k - 1;
			free(buf);
			return syntax(p, "one of \"\\/bfnrtu after a backslash");
		}
		if (hex4(p, k, end, &cp)) {
			free(buf);
			return SKD_ERR;
		}
		k += 4;
		if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate needs its low half */
			unsigned lo;
			if (k + 2 > end || p->s[k] != '\\' || p->s[k + 1] != 'u' ||
			    hex4(p, k + 2, end, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
				free(buf);
				return skd_error("load: '%s': header is not valid JSON: unpaired "
						 "surrogate \\u%04X at byte %zu", p->path, cp, k - 6);
			}
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			k += 6;
		} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
			free(buf);
			return skd_error("load: '%s': header is not valid JSON: unpaired surrogate "
					 "\\u%04X at byte %zu", p->path, cp, k - 6);
		} else if (cp == 0) {
			free(buf);
			return skd_error("load: '%s': header has a string with a NUL character "
					 "(\\u0000) at byte %zu", p->path, k - 6);
		}
		if (cp < 0x80) {
			buf[n++] = (char)cp;
		} else if (cp < 0x800) {
			buf[n++] = (char)(0xC0 | cp >> 6);
			buf[n++] = (char)(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			buf[n++] = (char)(0xE0 | cp >> 12);
			buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
			buf[n++] = (char)(0x80 | (cp & 0x3F));
		} else {
			buf[n++] = (char)(0xF0 | cp >> 18);
			buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
			buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
			buf[n++] = (char)(0x80 | (cp & 0x3F));
		}
	}
	buf[n] = '\0';
	p->pos = end + 1;
	*out = buf;
	return SKD_OK;
}

/* A JSON number that must be a non-negative integer below 2^63; what names it in messages. */
static int parse_uint(parser *p, uint64_t *out, const char *what, const char *name)
{
	const char *k = kind(p);
	if (!k || strcmp(k, "a number"))
		return k ? skd_error("load: '%s': tensor '" NAME_FMT "' %s must be a non-negative "
				     "integer, got %s", p->path, name, what, k)
			 : syntax(p, "a number");
	size_t start = p->pos;
	bool negative = false, fraction = false, overflow = false;
	uint64_t v = 0;
	if (p->s[p->pos] == '-') {
		negative = true;
		p->pos++;
	}
	if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
		return syntax(p, "a digit");
	if (p->s[p->pos] == '0') {
		p->pos++;
	} else {
		while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
			unsigned d = p->s[p->pos++] - '0';
			if (v > ((uint64_t)INT64_MAX - d) / 10)
				overflow = true;
			else
				v = v * 10 + d;
		}
	}
	if (p->pos < p->len && p->s[p->pos] == '.') {
		fraction = true;
		p->pos++;
		if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
			return syntax(p, "a digit after '.'");
		while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
			p->pos++;
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		fraction = true;
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
			return syntax(p, "a digit in an exponent");
		while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
			p->pos++;
	}
	int len = (int)(p->pos - start < 40 ? p->pos - start : 40);
	const char *text = (const char *)p->s + start;
	if (negative)
		return skd_error("load: '%s': tensor '" NAME_FMT "' %s is negative (%.*s)", p->path,
				 name, what, len, text);
	if (fraction)
		return skd_error("load: '%s': tensor '" NAME_FMT "' %s is not an integer (%.*s)",
				 p->path, name, what, len, text);
	if (overflow)
		return skd_error("load: '%s': tensor '" NAME_FMT "' %s is too large (%.*s)", p->path,
				 name, what, len, text);
	*out = v;
	return SKD_OK;
}

/* After an element: ',' (returns 1: another follows) or the closing bracket (returns 0). */
static int next_or_close(parser *p, char close)
{
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == ',') {
		p->pos++;
		return 1;
	}
	if (p->pos < p->len && p->s[p->pos] == (unsigned char)close) {
		p->pos++;
		return 0;
	}
	syntax(p, close == ']' ? "',' or ']'" : "',' or '}'");
	return SKD_ERR;
}

/* Consumes the opening bracket (the caller saw it through kind()); returns 1 when the
 * container is empty, having consumed its closing bracket too. */
static int open_container(parser *p, char close)
{
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == (unsigned char)close) {
		p->pos++;
		return 1;
	}
	return 0;
}

static int parse_shape(parser *p, skd_st_entry *e)
{
	const char *k = kind(p);
	if (!k || strcmp(k, "an array"))
		return k ? skd_error("load: '%s': tensor '" NAME_FMT "' shape must be an array of "
				     "integers, got %s", p->path, e->name, k)
			 : syntax(p, "an array");
	e->ndim = 0;
	if (open_container(p, ']'))
		return SKD_OK;
	int more;
	do {
		if (e->ndim == SKD_MAX_DIMS)
			return skd_error("load: '%s': tensor '" NAME_FMT "' shape has more than %d "
					 "dimensions", p->path, e->name, SKD_MAX_DIMS);
		char what[32];
		uint64_t v;
		snprintf(what, sizeof what, "shape entry %d", e->ndim + 1);
		if (parse_uint(p, &v, what, e->name))
			return SKD_ERR;
		e->shape[e->ndim++] = (int64_t)v;
		more = next_or_close(p, ']');
	} while (more == 1);
	return more;
}

static int parse_offsets(parser *p, skd_st_entry *e)
{
	const char *k = kind(p);
	if (!k || strcmp(k, "an array"))
		return k ? skd_error("load: '%s': tensor '" NAME_FMT "' data_offsets must be "
				     "[begin, end], got %s", p->path, e->name, k)
			 : syntax(p, "an array");
	if (open_container(p, ']'))
		return skd_error("load: '%s': tensor '" NAME_FMT "' data_offsets must be "
				 "[begin, end], got []", p->path, e->name);
	if (parse_uint(p, &e->begin, "data_offsets begin", e->name))
		return SKD_ERR;
	int more = next_or_close(p, ']');
	if (more != 1)
		return more ? SKD_ERR
			    : skd_error("load: '%s': tensor '" NAME_FMT "' data_offsets must be "
					"[begin, end], got one number", p->path, e->name);
	if (parse_uint(p, &e->end, "data_offsets end", e->name))
		return SKD_ERR;
	more = next_or_close(p, ']');
	if (more)
		return more < 0 ? SKD_ERR
				: skd_error("load: '%s': tensor '" NAME_FMT "' data_offsets must "
					    "be [begin, end], got more than two numbers", p->path,
					    e->name);
	return SKD_OK;
}

static int parse_dtype(parser *p, skd_st_entry *e)
{
	const char *k = kind(p);
	if (!k || strcmp(k, "a string"))
		return k ? skd_error("load: '%s': tensor '" NAME_FMT "' dtype must be a string, got "
				     "%s", p->path, e->name, k)
			 : syntax(p, "a string");
	char *s;
	if (parse_string(p, &s))
		return SKD_ERR;
	for (int d = 0; d <= SKD_ST_F64; d++)
		if (!strcmp(s, skd_st_dtype_name((skd_st_dtype)d))) {
			e->dtype = (skd_st_dtype)d;
			free(s);
			return SKD_OK;
		}
	skd_error("load: '%s': tensor '" NAME_FMT "' has unsupported dtype \"%.40s\" (skd reads "
		  "F32 F16 BF16 F64 I64 I32 I16 I8 U64 U32 U16 U8 BOOL)", p->path, e->name, s);
	free(s);
	return SKD_ERR;
}

/* {"dtype": .., "shape": [..], "data_offsets": [b, e]}: each field once, nothing else. */
static int parse_entry(parser *p, skd_st_entry *e)
{
	const char *k = kind(p);
	if (!k || strcmp(k, "an object"))
		return k ? skd_error("load: '%s': tensor '" NAME_FMT "' must be an object {dtype, "
				     "shape, data_offsets}, got %s", p->path, e->name, k)
			 : syntax(p, "an object");
	bool seen[3] = {false, false, false};
	static const char *const fields[3] = {"dtype", "shape", "data_offsets"};
	if (!open_container(p, '}')) {
		int more;
		do {
			char *key;
			if (parse_string(p, &key))
				return SKD_ERR;
			int f = 0;
			while (f < 3 && strcmp(key, fields[f]))
				f++;
			if (f == 3 || seen[f]) {
				skd_error("load: '%s': tensor '" NAME_FMT "' has %s field \"%.40s\"",
					  p->path, e->name, f == 3 ? "an unknown" : "a repeated", key);
				free(key);
				return SKD_ERR;
			}
			free(key);
			seen[f] = true;
			if (expect(p, ':', "':'") ||
			    (f == 0 ? parse_dtype(p, e) : f == 1 ? parse_shape(p, e)
								 : parse_offsets(p, e)))
				return SKD_ERR;
			more = next_or_close(p, '}');
		} while (more == 1);
		if (more < 0)
			return SKD_ERR;
	}
	for (int f = 0; f < 3; f++)
		if (!seen[f])
			return skd_error("load: '%s': tensor '" NAME_FMT "' lacks the field \"%s\"",
					 p->path, e->name, fields[f]);
	return SKD_OK;
}

static int parse_metadata(parser *p, skd_st_file *f)
{
	const char *k = kind(p);
	if (!k || strcmp(k, "an object"))
		return k ? skd_error("load: '%s': \"__metadata__\" must be an object of strings, "
				     "got %s", p->path, k)
			 : syntax(p, "an object");
	if (open_container(p, '}'))
		return SKD_OK;
	size_t cap = 0;
	int more;
	do {
		if (f->n_meta == cap) {
			cap = cap ? 2 * cap : 8;
			skd_st_meta *m = realloc(f->meta, cap * sizeof *m);
			if (!m)
				return skd_error("load: '%s': out of memory", p->path);
			f->meta = m;
		}
		skd_st_meta *m = &f->meta[f->n_meta];
		m->value = NULL;
		if (parse_string(p, &m->key))
			return SKD_ERR;
		f->n_meta++;
		if (expect(p, ':', "':'"))
			return SKD_ERR;
		k = kind(p);
		if (!k || strcmp(k, "a string"))
			return k ? skd_error("load: '%s': metadata '" NAME_FMT "' must be a string, "
					     "got %s", p->path, m->key, k)
				 : syntax(p, "a string");
		if (parse_string(p, &m->value))
			return SKD_ERR;
		more = next_or_close(p, '}');
	} while (more == 1);
	return more;
}

static int parse_top(parser *p, skd_st_file *f)
{
	const char *k = kind(p);
	if (!k || strcmp(k, "an object"))
		return k ? skd_error("load: '%s': header must be a JSON object, got %s", p->path, k)
			 : syntax(p, "a JSON object");
	bool seen_meta = false;
	size_t cap = 0;
	if (!open_container(p, '}')) {
		int more;
		do {
			char *name;
			if (parse_string(p, &name))
				return SKD_ERR;
			if (!strcmp(name, "__metadata__")) {
				free(name);
				if (seen_meta)
					return skd_error("load: '%s': \"__metadata__\" appears twice",
							 p->path);
				seen_meta = true;
				if (expect(p, ':', "':'") || parse_metadata(p, f))
					return SKD_ERR;
				more = next_or_close(p, '}');
				continue;
			}
			if (f->n_entries == cap) {
				cap = cap ? 2 * cap : 64;
				skd_st_entry *e = realloc(f->entries, cap * sizeof *e);
				if (!e) {
					free(name);
					return skd_error("load: '%s': out of memory", p->path);
				}
				f->entries = e;
			}
			skd_st_entry *e = &f->entries[f->n_entries++];
			memset(e, 0, sizeof *e);
			e->name = name;
			if (expect(p, ':', "':'") || parse_entry(p, e))
				return SKD_ERR;
			more = next_or_close(p, '}');
		} while (more == 1);
		if (more < 0)
			return SKD_ERR;
	}
	skip_ws(p);
	if (p->pos < p->len)
		return skd_error("load: '%s': header has %zu bytes of garbage after its JSON object "
				 "(from byte %zu)", p->path, p->len - p->pos, p->pos);
	return SKD_OK;
}

/* ---------- checks across entries ---------- */

static int by_name(const void *a, const void *b)
{
	return strcmp((*(const skd_st_entry *const *)a)->name,
		      (*(const skd_st_entry *const *)b)->name);
}

static int by_offset(const void *pa, const void *pb)
{
	const skd_st_entry *a = pa, *b = pb;
	if (a->begin != b->begin)
		return a->begin < b->begin ? -1 : 1;
	if (a->end != b->end)
		return a->end < b->end ? -1 : 1;
	return strcmp(a->name, b->name);
}

static int by_key(const void *a, const void *b)
{
	return strcmp(((const skd_st_meta *)a)->key, ((const skd_st_meta *)b)->key);
}

/* One entry against the data size: offsets in range and bytes = numel x dtype size. */
static int check_entry(const skd_st_file *f, const skd_st_entry *e)
{
	char sh[SKD_SHAPE_STR_LEN];
	unsigned long long b = e->begin, en = e->end;
	if (e->end < e->begin)
		return skd_error("load: '%s': tensor '" NAME_FMT "' data_offsets [%llu, %llu] end "
				 "before they begin", f->path, e->name, b, en);
	if (e->end > f->data_size)
		return skd_error("load: '%s': tensor '" NAME_FMT "' data_offsets [%llu, %llu] exceed "
				 "the data size %llu", f->path, e->name, b, en,
				 (unsigned long long)f->data_size);
	/* The product of the non-zero sizes is bounded too: the tensor's strides are built from
	 * it, even when a zero size makes the tensor empty. */
	uint64_t numel = 1, span = 1, limit = (uint64_t)INT64_MAX / 8;
	for (int i = 0; i < e->ndim; i++) {
		uint64_t d = (uint64_t)e->shape[i];
		if (d > 1 && span > limit / d)
			return skd_error("load: '%s': tensor '" NAME_FMT "' shape %s is too large",
					 f->path, e->name, shape_text(e, sh, sizeof sh));
		span *= d ? d : 1;
		numel *= d;
	}
	uint64_t need = numel * skd_st_dtype_size(e->dtype);
	if (need != e->end - e->begin)
		return skd_error("load: '%s': tensor '" NAME_FMT "' has %llu bytes at data_offsets "
				 "[%llu, %llu], but shape %s of %s needs %llu", f->path, e->name,
				 en - b, b, en, shape_text(e, sh, sizeof sh),
				 skd_st_dtype_name(e->dtype), (unsigned long long)need);
	return SKD_OK;
}

/* Names unique; the entries, sorted by offset, tile the data buffer exactly (the official
 * format forbids holes and overlaps, so a file cannot hide bytes or alias tensors). */
static int check_layout(skd_st_file *f)
{
	for (size_t i = 0; i < f->n_entries; i++)
		if (check_entry(f, &f->entries[i]))
			return SKD_ERR;
	if (f->n_entries > 1) {
		const skd_st_entry **sorted = skd_malloc(f->n_entries * sizeof *sorted);
		if (!sorted)
			return SKD_ERR;
		for (size_t i = 0; i < f->n_entries; i++)
			sorted[i] = &f->entries[i];
		qsort(sorted, f->n_entries, sizeof *sorted, by_name);
		for (size_t i = 1; i < f->n_entries; i++)
			if (!strcmp(sorted[i]->name, sorted[i - 1]->name)) {
				skd_error("load: '%s': tensor '" NAME_FMT "' appears twice in the "
					  "header", f->path, sorted[i]->name);
				free(sorted);
				return SKD_ERR;
			}
		free(sorted);
	}
	if (f->n_entries > 1) /* qsort's pointer must not be NULL, even for no elements */
		qsort(f->entries, f->n_entries, sizeof *f->entries, by_offset);
	uint64_t cursor = 0;
	for (size_t i = 0; i < f->n_entries; i++) {
		const skd_st_entry *e = &f->entries[i];
		if (e->begin < cursor) {
			const skd_st_entry *prev = &f->entries[i - 1];
			return skd_error("load: '%s': tensor '" NAME_FMT "' data_offsets [%llu, %llu] "
					 "overlap tensor '" NAME_FMT "' data_offsets [%llu, %llu]",
					 f->path, e->name, (unsigned long long)e->begin,
					 (unsigned long long)e->end, prev->name,
					 (unsigned long long)prev->begin,
					 (unsigned long long)prev->end);
		}
		if (e->begin > cursor)
			break;
		cursor = e->end;
	}
	if (cursor != f->data_size) {
		uint64_t upto = f->data_size;
		for (size_t i = 0; i < f->n_entries; i++)
			if (f->entries[i].begin > cursor) {
				upto = f->entries[i].begin;
				break;
			}
		return skd_error("load: '%s': no tensor covers data bytes [%llu, %llu) of %llu (a "
				 "safetensors data buffer has no holes; truncated header or extra "
				 "bytes?)", f->path, (unsigned long long)cursor,
				 (unsigned long long)upto, (unsigned long long)f->data_size);
	}
	if (f->n_meta > 1)
		qsort(f->meta, f->n_meta, sizeof *f->meta, by_key);
	for (size_t i = 1; i < f->n_meta; i++)
		if (!strcmp(f->meta[i].key, f->meta[i - 1].key))
			return skd_error("load: '%s': metadata key '" NAME_FMT "' appears twice",
					 f->path, f->meta[i].key);
	return SKD_OK;
}

skd_st_file *skd_st_parse_header(const char *path, const char *json, size_t len,
				 uint64_t data_size)
{
	skd_st_file *f = skd_calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->fd = -1;
	f->data_size = data_size;
	f->path = strdup(path);
	if (!f->path) {
		free(f);
		return skd_error_null("load: '%s': out of memory", path);
	}
	parser p = {f->path, (const unsigned char *)json, len, 0};
	if (parse_top(&p, f) || check_layout(f)) {
		skd_st_close(f);
		return NULL;
	}
	return f;
}

void skd_st_close(skd_st_file *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	for (size_t i = 0; i < f->n_entries; i++)
		free(f->entries[i].name);
	for (size_t i = 0; i < f->n_meta; i++) {
		free(f->meta[i].key);
		free(f->meta[i].value);
	}
	free(f->entries);
	free(f->meta);
	free(f->path);
	free(f);
}
