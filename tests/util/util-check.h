/* SPDX-License-Identifier: BSD-3-Clause */
/* CHECK for the lib/common tests: report the line, the claim and the last library error, count
 * failures; done() turns the count into the exit status. */
#ifndef NBDCRYPT_UTIL_CHECK_H
#define NBDCRYPT_UTIL_CHECK_H

#include <stdio.h>

#include "errors.h"

static int failures;

#define CHECK(cond, ...) do {                                   \
    if (!(cond)) {                                              \
      fprintf (stderr, "FAIL line %d: ", __LINE__);             \
      fprintf (stderr, __VA_ARGS__);                            \
      fprintf (stderr, " [%s]\n", ncr_last_error ());           \
      failures++;                                               \
    }                                                           \
  } while (0)

static inline int
done (const char *what)
{
  if (failures)
    return 1;
  printf ("%s: all checks passed\n", what);
  return 0;
}

#endif /* NBDCRYPT_UTIL_CHECK_H */
