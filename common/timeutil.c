/* SPDX-License-Identifier: BSD-3-Clause */
/* Monotonic time, sleeping, and the retry backoff used while a KMS is unreachable. */
#include <errno.h>
#include <time.h>

#include "minmax.h"
#include <stdio.h>

#include "errors.h"
#include "timeutil.h"

uint64_t
ncr_now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

void
ncr_sleep_ms (uint64_t ms)
{
  struct timespec ts = { .tv_sec = (time_t) (ms / 1000), .tv_nsec = (long) (ms % 1000) * 1000000 };

  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
}

void
ncr_backoff_init (struct ncr_backoff *b, uint64_t timeout_ms)
{
  b->start_ms = ncr_now_ms ();
  b->deadline_ms = b->start_ms + timeout_ms;
  b->delay_ms = NCR_BACKOFF_FIRST_MS;
}

static ncr_backoff_notify_fn backoff_notify;

void
ncr_backoff_set_notify (ncr_backoff_notify_fn fn)
{
  __atomic_store_n (&backoff_notify, fn, __ATOMIC_RELEASE);
}

bool
ncr_backoff_wait (struct ncr_backoff *b)
{
  uint64_t now = ncr_now_ms ();
  ncr_backoff_notify_fn notify = __atomic_load_n (&backoff_notify, __ATOMIC_ACQUIRE);
  uint64_t delay;

  if (now >= b->deadline_ms)
    return false;
  delay = MIN (b->delay_ms, b->deadline_ms - now);
  if (notify) {
    char msg[700];
    snprintf (msg, sizeof msg, "%s; retrying in %.1f s (giving up in %llu s)",
              ncr_last_error (), delay / 1000.0,
              (unsigned long long) (b->deadline_ms - now + 999) / 1000);
    notify (msg);
  }
  ncr_sleep_ms (delay);
  b->delay_ms = MIN (b->delay_ms * 2, (uint64_t) NCR_BACKOFF_MAX_MS);
  return true;
}

uint64_t
ncr_backoff_elapsed_ms (const struct ncr_backoff *b)
{
  return ncr_now_ms () - b->start_ms;
}
