/* SPDX-License-Identifier: BSD-3-Clause */
/* CHECK for the uring unit tests: on failure print where, what, why and the module's last
 * error, count it, and go on; main returns failure if any. */
#ifndef NBDCRYPT_URING_CHECK_H
#define NBDCRYPT_URING_CHECK_H

#include <stdatomic.h>
#include <stdio.h>

#include "errors.h"

static _Atomic int failures;
#define CHECK(cond, ...) do {                                             \
    if (!(cond)) {                                                        \
      fprintf (stderr, "%s:%d: FAIL: %s: ", __FILE__, __LINE__, #cond);   \
      fprintf (stderr, __VA_ARGS__);                                      \
      fprintf (stderr, " (last error: %s)\n", ncr_last_error ());         \
      failures++;                                                         \
    }                                                                     \
  } while (0)

#endif /* NBDCRYPT_URING_CHECK_H */
