/* SPDX-License-Identifier: BSD-3-Clause */
/* Range lock: one mutex, one condition variable, and a list of holds in arrival order (both
 * granted ones and waiters, so that arrival order can be honoured). */
#include <assert.h>
#include <stddef.h>

#include "rangelock.h"

void
ncr_rangelock_init (struct ncr_rangelock *l)
{
  pthread_mutex_init (&l->mutex, NULL);
  pthread_cond_init (&l->released, NULL);
  l->head = l->tail = NULL;
}

void
ncr_rangelock_destroy (struct ncr_rangelock *l)
{
  assert (l->head == NULL);
  pthread_cond_destroy (&l->released);
  pthread_mutex_destroy (&l->mutex);
}

static bool
conflicts (const struct ncr_range_hold *a, const struct ncr_range_hold *b)
{
  return (a->exclusive || b->exclusive) && a->first <= b->last && b->first <= a->last;
}

/* Whether some earlier hold or waiter conflicts with h. Called with the mutex held. */
static bool
must_wait (const struct ncr_range_hold *h)
{
  for (const struct ncr_range_hold *e = h->prev; e; e = e->prev)
    if (conflicts (e, h))
      return true;
  return false;
}

void
ncr_rangelock_acquire (struct ncr_rangelock *l, struct ncr_range_hold *h,
                       uint64_t first, uint64_t last, bool exclusive)
{
  assert (first <= last);
  h->lock = l;
  h->first = first;
  h->last = last;
  h->exclusive = exclusive;
  h->next = NULL;

  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&l->mutex);
  /* Queue first: from now on, later conflicting requests wait behind this one. */
  h->prev = l->tail;
  if (l->tail)
    l->tail->next = h;
  else
    l->head = h;
  l->tail = h;
  /* Only a release can make an earlier conflicting entry go away. */
  while (must_wait (h))
    pthread_cond_wait (&l->released, &l->mutex);
}

void
ncr_rangelock_release (struct ncr_range_hold *h)
{
  struct ncr_rangelock *l = h->lock;

  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&l->mutex);
  if (h->prev)
    h->prev->next = h->next;
  else
    l->head = h->next;
  if (h->next)
    h->next->prev = h->prev;
  else
    l->tail = h->prev;
  /* Every waiter re-checks (only those behind h can have been waiting for it). Signalled
   * under the mutex: once it is released, the lock may be destroyed. */
  pthread_cond_broadcast (&l->released);
}
