/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: monotonic time and sleeping; the retry backoff waits 0.5 s, 1 s, ... and
 * never past its deadline, and gives one attempt for a timeout of 0; MIN/MAX evaluate each
 * argument once; scoped rwlocks are released when the scope ends, whichever way. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "cleanup.h"
#include "minmax.h"
#include "timeutil.h"
#include "errors.h"
#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

static void
sleeping (void)
{
  uint64_t t0 = ncr_now_ms ();

  ncr_sleep_ms (120);
  uint64_t dt = ncr_now_ms () - t0;
  CHECK_MSG (dt >= 120 && dt < 1000, "slept 120 ms: took %llu", (unsigned long long) dt);
}

static void
backoff (void)
{
  struct ncr_backoff b;
  unsigned attempts = 1;

  ncr_backoff_init (&b, 0);
  CHECK_MSG (!ncr_backoff_wait (&b), "timeout 0: one attempt only");

  /* 1.2 s: attempts at 0, 0.5 s, 1.2 s (the second delay, 1 s, is cut at the deadline). */
  ncr_backoff_init (&b, 1200);
  while (ncr_backoff_wait (&b))
    attempts++;
  uint64_t dt = ncr_backoff_elapsed_ms (&b);
  CHECK_MSG (attempts == 3, "3 attempts in 1.2 s, got %u", attempts);
  CHECK_MSG (dt >= 1200 && dt < 1700, "ends at the deadline: %llu ms", (unsigned long long) dt);
  CHECK_MSG (b.delay_ms == 2000, "delays double: next %llu", (unsigned long long) b.delay_ms);
  for (int i = 0; i < 10; i++)
    b.delay_ms = MIN (b.delay_ms * 2, (uint64_t) NCR_BACKOFF_MAX_MS);
  CHECK_MSG (b.delay_ms == NCR_BACKOFF_MAX_MS, "capped at 8 s");
}

static void
minmax (void)
{
  int i = 0;

  CHECK_MSG (MIN (i++, 10) == 0 && i == 1, "MIN evaluates once");
  CHECK_MSG (MAX (i++, -5) == 1 && i == 2, "MAX evaluates once");
  CHECK_MSG (MIN (MAX (3, 7), MIN (9, 8)) == 7, "nested");
}

static int
locked_return (pthread_rwlock_t *l, bool write)
{
  if (write) {
    ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (l);
    return pthread_rwlock_tryrdlock (l);
  }
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (l);
  return pthread_rwlock_trywrlock (l);
}

static void
scoped_rwlocks (void)
{
  pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;

  CHECK_MSG (locked_return (&l, true) == EBUSY, "held exclusive inside the scope");
  CHECK_MSG (pthread_rwlock_trywrlock (&l) == 0, "released after the scope");
  pthread_rwlock_unlock (&l);
  CHECK_MSG (locked_return (&l, false) == EBUSY, "held shared inside the scope");
  CHECK_MSG (pthread_rwlock_trywrlock (&l) == 0, "released after the scope");
  pthread_rwlock_unlock (&l);
  pthread_rwlock_destroy (&l);
}

int
main (void)
{
  RUN (sleeping);
  RUN (backoff);
  RUN (minmax);
  RUN (scoped_rwlocks);
  return check_exit ();
}
