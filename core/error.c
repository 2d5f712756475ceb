/* error.c — the per-thread error message of core/ (see error.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"

static _Thread_local char errbuf[1024] = "no error";

static void vrecord(const char *fmt, va_list ap)
{
	vsnprintf(errbuf, sizeof errbuf, fmt, ap);
}

int skd_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vrecord(fmt, ap);
	va_end(ap);
	return SKD_ERR;
}

void *skd_error_null(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vrecord(fmt, ap);
	va_end(ap);
	return NULL;
}

void skd_error_prefix(const char *prefix)
{
	char tmp[sizeof errbuf];
	snprintf(tmp, sizeof tmp, "%s%s", prefix, errbuf);
	memcpy(errbuf, tmp, sizeof errbuf);
}

const char *skd_last_error(void)
{
	return errbuf;
}

void *skd_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		skd_error("out of memory (asked for %zu bytes)", n);
	return p;
}

void *skd_calloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		skd_error("out of memory (asked for %zu x %zu bytes)", count, size);
	return p;
}
