/* SPDX-License-Identifier: BSD-3-Clause */
/* Core-library error convention: functions return -errno and leave a message, per thread,
 * that the caller (the filter, the nbdcrypt command) shows. The library never prints. */
#ifndef NBDCRYPT_ERRORS_H
#define NBDCRYPT_ERRORS_H

#include <stdarg.h>

/* Record a message for this thread and return -errnum (errnum > 0; anything else gives -EIO),
 * so that callers write
 *   return ncr_error (EINVAL, "sector size %u is not 512 or 4096", n);
 * The arguments may include ncr_last_error () itself (to add words after it). */
int ncr_error (int errnum, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* Put context in front of the current message and return -errnum, e.g. after a failed call
 * that returned r:
 *   return ncr_error_prefix (-r, "opening %s: ", path);
 * turns "permission denied" into "opening vol.img: permission denied". */
int ncr_error_prefix (int errnum, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* Record a message without an errno: for a library with its own result codes on top of this
 * module (kmip-client's kmip_set_error). */
void ncr_verror_record (const char *fmt, va_list ap);

/* The last message recorded by this thread ("" if none). Valid until the next ncr_error. */
const char *ncr_last_error (void);

#endif /* NBDCRYPT_ERRORS_H */
