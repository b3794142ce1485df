/* SPDX-License-Identifier: BSD-3-Clause */
/* kmip-client error convention: every call returns 0 (or a count) on success and -errno or a
 * negative KMIP_E_* code on failure, and leaves a message for the calling thread. The library
 * never prints. Thread-safety: the last error is per thread. */
#ifndef KMIP_ERRORS_H
#define KMIP_ERRORS_H

/* Library-specific failures, beyond -errno. */
enum {
  KMIP_E_BASE = 1000,
  KMIP_E_DECODE = -(KMIP_E_BASE + 1),     /* malformed TTLV / unexpected message shape */
  KMIP_E_TOO_BIG = -(KMIP_E_BASE + 2),    /* message over the configured cap */
  KMIP_E_RESULT = -(KMIP_E_BASE + 3),     /* server returned a failure result status */
  KMIP_E_TLS = -(KMIP_E_BASE + 4),        /* TLS handshake / certificate failure */
  KMIP_E_VERSION = -(KMIP_E_BASE + 5),    /* no common protocol version */
  KMIP_E_CONFIG = -(KMIP_E_BASE + 6),     /* bad configuration file / value */
};

/* The message of this thread's last failure ("" if none). Valid until the next call. */
const char *kmip_last_error (void);

#endif /* KMIP_ERRORS_H */
