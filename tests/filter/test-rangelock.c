/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: the range lock that orders the filter's writes (common/rangelock.c):
 * holds that share no index never wait for each other (adjacent ranges included); shared
 * holds coexist; an exclusive hold excludes every overlapping hold, shared or exclusive;
 * among overlapping requests arrival order decides, so a waiting exclusive request is not
 * overtaken by later shared ones; the scope-bound hold is released on every exit. Then a
 * threaded stress test checks, per index, that an exclusive holder is alone and a shared
 * holder meets no exclusive one, and that every thread finishes (no deadlock).
 *
 * "Does not get the lock" is checked by waiting 200 ms: a slow machine can only make a
 * broken lock look right, never a correct one look broken. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "rangelock.h"

static struct ncr_rangelock lock;

#include "check.h"

static void
sleep_ms (int ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  nanosleep (&ts, NULL);
}

/* A request run by its own thread: takes its range, holds it until told to let go. */
struct job {
  uint64_t first, last;
  bool exclusive;
  atomic_int acquired, let_go;
  pthread_t th;
};

static void *
job_run (void *arg)
{
  struct job *j = arg;
  ACQUIRE_RANGE_FOR_CURRENT_SCOPE (&lock, j->first, j->last, j->exclusive);

  atomic_store (&j->acquired, 1);
  while (!atomic_load (&j->let_go))
    sleep_ms (1);
  return NULL;
}

static void
job_start (struct job *j, uint64_t first, uint64_t last, bool exclusive)
{
  j->first = first;
  j->last = last;
  j->exclusive = exclusive;
  atomic_store (&j->acquired, 0);
  atomic_store (&j->let_go, 0);
  pthread_create (&j->th, NULL, job_run, j);
}

/* Whether the job holds its range within ms milliseconds. */
static bool
job_holds_within (struct job *j, int ms)
{
  for (int i = 0; i < ms && !atomic_load (&j->acquired); i++)
    sleep_ms (1);
  return atomic_load (&j->acquired);
}

static void
job_finish (struct job *j)
{
  atomic_store (&j->let_go, 1);
  pthread_join (j->th, NULL);
}

#define SOON 10000              /* ms: "gets it" (generous, for loaded machines) */
#define NOT_YET 200             /* ms: "does not get it" */

static void
test_disjoint_never_wait (void)
{
  struct job j;
  struct ncr_range_hold h;

  ncr_rangelock_acquire (&lock, &h, 0, 3, true);
  job_start (&j, 4, 7, true);
  CHECK_MSG (job_holds_within (&j, SOON), "exclusive [4,7] waited for exclusive [0,3]");
  job_finish (&j);
  job_start (&j, 100, 100, false);
  CHECK_MSG (job_holds_within (&j, SOON), "shared [100] waited for exclusive [0,3]");
  job_finish (&j);
  ncr_rangelock_release (&h);
}

static void
test_shared_coexist (void)
{
  struct job j;
  struct ncr_range_hold h;

  ncr_rangelock_acquire (&lock, &h, 0, 9, false);
  job_start (&j, 5, 20, false);
  CHECK_MSG (job_holds_within (&j, SOON), "shared [5,20] waited for shared [0,9]");
  job_finish (&j);
  ncr_rangelock_release (&h);
}

/* first holder (mode a) then an overlapping request (mode b) by another thread: b waits
 * until a lets go, then gets it. */
static void
check_excludes (bool a, bool b, uint64_t bf, uint64_t bl)
{
  struct job j;
  struct ncr_range_hold h;

  ncr_rangelock_acquire (&lock, &h, 10, 19, a);
  job_start (&j, bf, bl, b);
  CHECK_MSG (!job_holds_within (&j, NOT_YET), "%s [%llu,%llu] got in beside %s [10,19]",
         b ? "exclusive" : "shared", (unsigned long long) bf, (unsigned long long) bl,
         a ? "exclusive" : "shared");
  ncr_rangelock_release (&h);
  CHECK_MSG (job_holds_within (&j, SOON), "the waiter did not get the range once it was free");
  job_finish (&j);
}

static void
test_exclusive_excludes (void)
{
  check_excludes (true, true, 19, 30);      /* one index in common, at the end */
  check_excludes (true, false, 0, 10);      /* ... at the start */
  check_excludes (false, true, 12, 12);     /* inside */
  check_excludes (true, false, 0, 100);     /* around */
}

/* Held shared [0,7]; X = exclusive [4,4] waits. A later shared [4,5] must queue behind X
 * (else a stream of shared holds starves X); a later shared [0,3] shares nothing with X and
 * goes ahead. */
static void
test_arrival_order (void)
{
  struct job x, s_behind, s_free;
  struct ncr_range_hold h;

  ncr_rangelock_acquire (&lock, &h, 0, 7, false);
  job_start (&x, 4, 4, true);
  CHECK_MSG (!job_holds_within (&x, NOT_YET), "exclusive [4] got in beside shared [0,7]");
  job_start (&s_behind, 4, 5, false);
  CHECK_MSG (!job_holds_within (&s_behind, NOT_YET),
         "shared [4,5] overtook the exclusive [4] waiting before it");
  job_start (&s_free, 0, 3, false);
  CHECK_MSG (job_holds_within (&s_free, SOON), "shared [0,3] waited, sharing nothing with X");
  job_finish (&s_free);
  ncr_rangelock_release (&h);
  CHECK_MSG (job_holds_within (&x, SOON), "X did not get [4] once it was free");
  CHECK_MSG (!job_holds_within (&s_behind, NOT_YET), "shared [4,5] got in beside X");
  job_finish (&x);
  CHECK_MSG (job_holds_within (&s_behind, SOON), "shared [4,5] did not follow X");
  job_finish (&s_behind);
}

/* ACQUIRE_RANGE_FOR_CURRENT_SCOPE releases on an early return. */
static int
scoped_early_return (int x)
{
  ACQUIRE_RANGE_FOR_CURRENT_SCOPE (&lock, 50, 59, true);
  if (x > 0)
    return 1;
  return 0;
}

static void
test_scope_release (void)
{
  struct job j;

  scoped_early_return (1);
  scoped_early_return (0);
  job_start (&j, 50, 59, true);
  CHECK_MSG (job_holds_within (&j, SOON), "a scoped hold was still held after its scope ended");
  job_finish (&j);
}

/* Stress: threads take random ranges over a small space, per index counting holders. */
#define NIDX 32
#define NTHR 4
#define ITERS 3000
static atomic_int shared_at[NIDX], exclusive_at[NIDX];
static atomic_int violations;

static void *
stress_run (void *arg)
{
  unsigned seed = (unsigned) (long) arg;

  for (int it = 0; it < ITERS; it++) {
    uint64_t first = rand_r (&seed) % NIDX;
    uint64_t last = first + rand_r (&seed) % (rand_r (&seed) % 4 == 0 ? NIDX - first : 3);
    bool exclusive = rand_r (&seed) % 3 == 0;

    if (last >= NIDX)
      last = NIDX - 1;
    ACQUIRE_RANGE_FOR_CURRENT_SCOPE (&lock, first, last, exclusive);
    for (uint64_t i = first; i <= last; i++) {
      if (exclusive ? atomic_fetch_add (&exclusive_at[i], 1) != 0 ||
                      atomic_load (&shared_at[i]) != 0
                    : (atomic_fetch_add (&shared_at[i], 1), atomic_load (&exclusive_at[i]) != 0))
        atomic_fetch_add (&violations, 1);
    }
    if (it % 7 == 0)
      sched_yield ();           /* let others in while the range is held */
    for (uint64_t i = first; i <= last; i++)
      atomic_fetch_sub (exclusive ? &exclusive_at[i] : &shared_at[i], 1);
  }
  return NULL;
}

static void
test_stress (void)
{
  pthread_t th[NTHR];

  alarm (300);                  /* a deadlock fails the test instead of hanging it */
  for (long i = 0; i < NTHR; i++)
    pthread_create (&th[i], NULL, stress_run, (void *) (i + 1));
  for (int i = 0; i < NTHR; i++)
    pthread_join (th[i], NULL);
  alarm (0);
  CHECK_MSG (atomic_load (&violations) == 0,
         "%d times a holder met a conflicting holder of the same index",
         atomic_load (&violations));
  CHECK_MSG (lock.head == NULL && lock.tail == NULL, "holds left in the lock after the stress");
}

int
main (void)
{
  ncr_rangelock_init (&lock);
  RUN (test_disjoint_never_wait);
  RUN (test_shared_coexist);
  RUN (test_exclusive_excludes);
  RUN (test_arrival_order);
  RUN (test_scope_release);
  RUN (test_stress);
  ncr_rangelock_destroy (&lock);
  return check_exit ();
}
