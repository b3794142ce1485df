/* SPDX-License-Identifier: BSD-3-Clause */
/* kmip-client's error API on the project's one per-thread error module (common/errors.c):
 * kmip_set_error records the message there and returns the library's result code. */
#include <stdarg.h>

#include "errors.h"
#include "internal.h"

int
kmip_set_error (int code, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  ncr_verror_record (fmt, ap);
  va_end (ap);
  return code;
}

const char *
kmip_last_error (void)
{
  return ncr_last_error ();
}
