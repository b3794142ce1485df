/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-thread last-error message for the core library. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "errors.h"

static __thread char last_error[512];

int
ncr_error (int errnum, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (last_error, sizeof last_error, fmt, ap);
  va_end (ap);
  return errnum > 0 ? -errnum : -EIO;
}

const char *
ncr_last_error (void)
{
  return last_error;
}
