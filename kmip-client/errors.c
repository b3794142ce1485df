/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-thread last-error message for kmip-client. */
#include <stdarg.h>
#include <stdio.h>

#include "kmip/errors.h"

static __thread char last_error[1024];

int
kmip_set_error (int code, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (last_error, sizeof last_error, fmt, ap);
  va_end (ap);
  return code;
}

const char *
kmip_last_error (void)
{
  return last_error;
}
