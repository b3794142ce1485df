/* SPDX-License-Identifier: BSD-3-Clause */
/* Strict parsers for option values: booleans, unsigned numbers, sizes. */
#include <errno.h>
#include <stddef.h>
#include <strings.h>

#include "errors.h"
#include "parse.h"

int
ncr_parse_bool (const char *s, bool *out)
{
  static const char *const yes[] = { "1", "true", "t", "yes", "y", "on" };
  static const char *const no[] = { "0", "false", "f", "no", "n", "off" };

  for (unsigned i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (strcasecmp (s, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcasecmp (s, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  return ncr_error (EINVAL, "'%s' is not a boolean (use on/off, true/false, yes/no or 1/0)", s);
}

/* Digits of s up to the first non-digit, into *v (checked against max). *end: that char. */
static int
parse_digits (const char *s, uint64_t max, uint64_t *v, const char **end)
{
  uint64_t n = 0;
  const char *p = s;

  if (*p < '0' || *p > '9')
    return ncr_error (EINVAL, "'%s' is not a number (expected decimal digits)", s);
  for (; *p >= '0' && *p <= '9'; p++) {
    unsigned d = (unsigned) (*p - '0');
    if (n > (max - d) / 10)
      return ncr_error (ERANGE, "'%s' is too large (at most %llu)", s,
                        (unsigned long long) max);
    n = n * 10 + d;
  }
  *v = n;
  *end = p;
  return 0;
}

int
ncr_parse_uint (const char *s, uint64_t max, uint64_t *out)
{
  const char *end = s;
  uint64_t v = 0;
  int r;

  if ((r = parse_digits (s, max, &v, &end)) < 0)
    return r;
  if (*end != '\0')
    return ncr_error (EINVAL, "'%s' is not a number (unexpected '%c')", s, *end);
  *out = v;
  return 0;
}

int
ncr_parse_size (const char *s, uint64_t max, uint64_t *out)
{
  const char *end = s;
  unsigned shift = 0;
  uint64_t v = 0;
  int r;

  if ((r = parse_digits (s, max, &v, &end)) < 0)
    return r;
  switch (*end) {
  case '\0': break;
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  default: end = NULL; break;
  }
  if (end == NULL || *end != '\0')
    return ncr_error (EINVAL, "'%s' is not a size (a number of bytes, optionally followed "
                      "by K, M or G)", s);
  if (v > max >> shift)
    return ncr_error (ERANGE, "'%s' is too large (at most %llu bytes)", s,
                      (unsigned long long) max);
  *out = v << shift;
  return 0;
}
