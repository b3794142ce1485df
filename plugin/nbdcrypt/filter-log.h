/* SPDX-License-Identifier: BSD-3-Clause */
/* Log lines at their true level. nbdkit 1.32 gives a filter nbdkit_error (always shown, with
 * "error:") and nbdkit_debug (only with -v): nothing for a warning or a line of information,
 * so these write where nbdkit's own messages go, in nbdkit's format:
 *   nbdkit: nbdcrypt: warning: MESSAGE   /   nbdkit: nbdcrypt: info: MESSAGE
 * on stderr, or to syslog (LOG_WARNING / LOG_INFO) once nbdkit has forked into the background
 * and its stderr is /dev/null. Control characters (a header or KMS may carry them) are shown
 * as '?', so that no text can forge another log line or drive a terminal. */
#ifndef NBDCRYPT_FILTER_LOG_H
#define NBDCRYPT_FILTER_LOG_H

void filter_log_info (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void filter_log_warning (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

#endif /* NBDCRYPT_FILTER_LOG_H */
