/* Strict number, duration and size parsing (pure). No signs, no spaces
 * inside, no overflow: every function returns 0 on success, -1 with *err set
 * to a static message otherwise. */
#ifndef SG_NUM_H
#define SG_NUM_H

#include <stddef.h>
#include <stdint.h>

/* Decimal digits only, value <= max. */
int num_parse_u64(const char *p, size_t len, uint64_t max, uint64_t *out, const char **err);
/* "500ms", "10s", "5m", "1h", "2d"; a bare number is seconds. Result in ms. */
int num_parse_duration(const char *s, uint64_t *ms, const char **err);
/* "512", "64k", "1m", "2g" (powers of 1024); a bare number is bytes. */
int num_parse_size(const char *s, uint64_t *bytes, const char **err);
/* "yes/no/on/off/true/false/1/0" */
int num_parse_bool(const char *s, int *out, const char **err);

#endif
