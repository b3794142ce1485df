/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-thread last-error message for kmip-client. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static __thread char last_error[1024];

int
kmip_set_error (int code, const char *fmt, ...)
{
  va_list ap;

  /* Format into a scratch buffer: callers often wrap the previous message, passing
   * kmip_last_error() itself as an argument. */
  char tmp[sizeof last_error];

  va_start (ap, fmt);
  vsnprintf (tmp, sizeof tmp, fmt, ap);
  va_end (ap);
  memcpy (last_error, tmp, sizeof last_error);
  return code;
}

const char *
kmip_last_error (void)
{
  return last_error;
}
