/* SPDX-License-Identifier: BSD-3-Clause */
/* Monotonic time, sleeping, and the retry backoff used while a KMS is unreachable. */
#ifndef NBDCRYPT_TIMEUTIL_H
#define NBDCRYPT_TIMEUTIL_H

#include <stdbool.h>
#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC (immune to wall-clock steps). */
uint64_t ncr_now_ms (void);

/* Sleep the whole duration, resuming after signals. */
void ncr_sleep_ms (uint64_t ms);

/* Exponential backoff up to a deadline: 0.5 s, 1 s, 2 s, 4 s, then 8 s between attempts.
 *   struct ncr_backoff b;
 *   ncr_backoff_init (&b, timeout_ms);
 *   do r = attempt (); while (r is transient && ncr_backoff_wait (&b));
 * A timeout of 0 gives exactly one attempt. */
#define NCR_BACKOFF_FIRST_MS 500
#define NCR_BACKOFF_MAX_MS 8000
struct ncr_backoff {
  uint64_t start_ms, deadline_ms, delay_ms;
};
void ncr_backoff_init (struct ncr_backoff *b, uint64_t timeout_ms);

/* If the deadline has not passed: sleep the next delay (never past the deadline), double it,
 * and return true (try again). Otherwise return false at once. */
bool ncr_backoff_wait (struct ncr_backoff *b);

/* Called before each wait of every backoff loop (the library never prints: a front-end that
 * wants a line per retry sets this), with the failure that caused the retry (the thread's
 * last error) and the wait. Process-wide; NULL (the default) for none. */
typedef void (*ncr_backoff_notify_fn) (const char *msg);
void ncr_backoff_set_notify (ncr_backoff_notify_fn fn);

/* Milliseconds since ncr_backoff_init. */
uint64_t ncr_backoff_elapsed_ms (const struct ncr_backoff *b);

#endif /* NBDCRYPT_TIMEUTIL_H */
