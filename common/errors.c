/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-thread last-error message: the one error module of the core library and of
 * kmip-client (whose kmip_last_error reads the same message). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errors.h"

#define ERROR_MAX 1024

static __thread char last_error[ERROR_MAX];

/* Every message is formatted into a scratch buffer and then copied, so that its arguments may
 * point into last_error itself (ncr_error (e, "%s", ncr_last_error ()), a prefix added to the
 * current message): vsnprintf with overlapping source and destination is undefined. */
static int
set_error (int errnum, const char *keep, const char *fmt, va_list ap)
{
  char scratch[ERROR_MAX];
  int n = vsnprintf (scratch, sizeof scratch, fmt, ap);

  if (n < 0)
    n = 0;
  if (keep && (size_t) n < sizeof scratch)
    snprintf (scratch + n, sizeof scratch - n, "%s", keep);
  memcpy (last_error, scratch, sizeof last_error);
  return errnum > 0 ? -errnum : -EIO;
}

int
ncr_error (int errnum, const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = set_error (errnum, NULL, fmt, ap);
  va_end (ap);
  return r;
}

int
ncr_error_prefix (int errnum, const char *fmt, ...)
{
  char current[ERROR_MAX];
  va_list ap;
  int r;

  memcpy (current, last_error, sizeof current);
  va_start (ap, fmt);
  r = set_error (errnum, current, fmt, ap);
  va_end (ap);
  return r;
}

void
ncr_verror_record (const char *fmt, va_list ap)
{
  set_error (EIO, NULL, fmt, ap);
}

const char *
ncr_last_error (void)
{
  return last_error;
}
