/* SPDX-License-Identifier: BSD-3-Clause */
/* A lock over ranges of an index space (e.g. sectors): only requests whose ranges share an
 * index wait for each other.
 *
 * A hold covers [first, last] (inclusive) in shared or exclusive mode. Shared holds of
 * overlapping ranges coexist; an exclusive hold excludes every other hold that overlaps it.
 * Among overlapping requests, arrival order decides: a request waits for every earlier hold
 * or waiter that it conflicts with, so a stream of shared holds cannot starve an exclusive
 * waiter (nor the reverse). Waits only ever point at earlier requests, and each caller takes
 * one range at a time, so there is no deadlock.
 *
 * Cost: one mutex acquisition and a scan of the holds in the lock (held or waited for, so at
 * most the number of requests in flight) on acquire, one mutex acquisition on release. Holds
 * live in the caller's frame: nothing is allocated. Thread-safe; never fails. */
#ifndef NBDCRYPT_RANGELOCK_H
#define NBDCRYPT_RANGELOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cleanup.h"

struct ncr_range_hold {
  struct ncr_rangelock *lock;
  uint64_t first, last;                 /* inclusive */
  bool exclusive;
  struct ncr_range_hold *prev, *next;   /* the lock's list, in arrival order */
};

struct ncr_rangelock {
  pthread_mutex_t mutex;
  pthread_cond_t released;              /* broadcast whenever a hold leaves the list */
  struct ncr_range_hold *head, *tail;
};

void ncr_rangelock_init (struct ncr_rangelock *l);
/* No hold may remain. */
void ncr_rangelock_destroy (struct ncr_rangelock *l);

/* Wait until [first, last] can be held in this mode, then hold it in h (caller's storage,
 * alive until the release). first <= last. */
void ncr_rangelock_acquire (struct ncr_rangelock *l, struct ncr_range_hold *h,
                            uint64_t first, uint64_t last, bool exclusive);
void ncr_rangelock_release (struct ncr_range_hold *h);

static inline void
ncr_rangelock_cleanup (struct ncr_range_hold *h)
{
  ncr_rangelock_release (h);
}

/* Hold [first, last] until the end of the enclosing scope, whichever way it ends. */
#define ACQUIRE_RANGE_FOR_CURRENT_SCOPE(l, first, last, exclusive)                  \
  __attribute__ ((cleanup (ncr_rangelock_cleanup)))                                 \
  struct ncr_range_hold CLEANUP_CONCAT (range_hold_, __LINE__);                     \
  ncr_rangelock_acquire ((l), &CLEANUP_CONCAT (range_hold_, __LINE__), (first),     \
                         (last), (exclusive))

#endif /* NBDCRYPT_RANGELOCK_H */
