/* error.h — how core/ reports failure to its caller.
 *
 * Core functions never abort on anything a user can cause. A function returning a pointer
 * returns NULL on failure; one returning int returns SKD_ERR (-1). Either way it first records a
 * message with skd_error(), e.g. "conv2d: weight expects 3 input channels, input has 4".
 * The message is per thread and stays until the next skd_error().
 */
#ifndef SKD_ERROR_H
#define SKD_ERROR_H

#define SKD_OK 0
#define SKD_ERR (-1)

/* Records a printf-style message; always returns SKD_ERR so callers can `return skd_error(..)`. */
int skd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like skd_error, but returns NULL: `return skd_error_null("...")` from pointer-returning code. */
void *skd_error_null(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefixes the current message: "container: " + message (used by composite ops). */
void skd_error_prefix(const char *prefix);
const char *skd_last_error(void);

/* Out-of-memory is reported like any other error. */
void *skd_malloc(size_t n);
void *skd_calloc(size_t count, size_t size);

#endif
