/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-thread XTS contexts and buffers: a pthread key finds the thread's state; a list of all
 * states lets the pool free (and wipe) those of threads that are still alive at the end.
 * Bounce buffers are anonymous mappings rather than malloc blocks: cutting one back must
 * return its pages to the system, and glibc keeps freed blocks of up to 32 MiB in its arenas
 * once it has seen a block that size freed (its mmap threshold adapts). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cleanup.h"
#include "errors.h"
#include "xts-pool.h"

struct state {
  struct ncr_xts_thread t;      /* first: the public part */
  struct ncr_xts_pool *pool;
  struct state *prev, *next;
};

struct ncr_xts_pool {
  struct ncr_xts *master;
  unsigned sector_size;
  pthread_key_t key;
  pthread_mutex_t lock;         /* protects the list, taken once per thread, not per request */
  struct state *all;
};

static void
state_free (struct state *s)
{
  ncr_xts_free (s->t.xts);
  if (s->t.sector)
    explicit_bzero (s->t.sector, s->pool->sector_size);  /* may hold a plaintext sector */
  free (s->t.sector);
  if (s->t.bounce)           /* holds ciphertext only */
    munmap (s->t.bounce, s->t.bounce_size);
  free (s);
}

static void
unlink_state (struct state *s)
{
  struct ncr_xts_pool *p = s->pool;

  if (s->prev)
    s->prev->next = s->next;
  else
    p->all = s->next;
  if (s->next)
    s->next->prev = s->prev;
}

/* pthread key destructor: the thread is exiting. */
static void
thread_exit (void *v)
{
  struct state *s = v;

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->pool->lock);
    unlink_state (s);
  }
  state_free (s);
}

int
ncr_xts_pool_new (struct ncr_xts *master, unsigned sector_size, struct ncr_xts_pool **out)
{
  struct ncr_xts_pool *p = calloc (1, sizeof *p);
  int r;

  if (!p)
    return ncr_error (ENOMEM, "out of memory");
  if ((r = pthread_key_create (&p->key, thread_exit)) != 0) {
    free (p);
    return ncr_error (r, "pthread_key_create: %s", strerror (r));
  }
  pthread_mutex_init (&p->lock, NULL);
  p->master = master;
  p->sector_size = sector_size;
  *out = p;
  return 0;
}

struct ncr_xts_thread *
ncr_xts_pool_thread (struct ncr_xts_pool *p)
{
  struct state *s = pthread_getspecific (p->key);
  int r = 0;

  if (s)
    return &s->t;

  s = calloc (1, sizeof *s);
  if (!s) {
    ncr_error (ENOMEM, "out of memory");
    errno = ENOMEM;
    return NULL;
  }
  s->pool = p;
  s->t.sector = aligned_alloc (64, p->sector_size);
  if (!s->t.sector || (r = ncr_xts_dup (p->master, &s->t.xts)) < 0 ||
      (r = pthread_setspecific (p->key, s)) != 0) {
    if (!s->t.sector)
      ncr_error (ENOMEM, "out of memory");
    else if (r > 0)
      ncr_error (r, "pthread_setspecific: %s", strerror (r));
    state_free (s);
    errno = ENOMEM;
    return NULL;
  }
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&p->lock);
    s->next = p->all;
    if (p->all)
      p->all->prev = s;
    p->all = s;
  }
  return &s->t;
}

int
ncr_xts_thread_bounce (struct ncr_xts_thread *t, size_t size)
{
  void *b;

  if (size <= t->bounce_size)
    return 0;
  /* Round up to 64 KiB steps so that requests of slowly growing size do not remap every
   * time; the old contents need not be kept. */
  size = (size + 65535) & ~(size_t) 65535;
  if (t->bounce)
    munmap (t->bounce, t->bounce_size);
  t->bounce = NULL;
  t->bounce_size = 0;
  b = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (b == MAP_FAILED)
    return ncr_error (ENOMEM, "out of memory for a %zu-byte bounce buffer", size);
  t->bounce = b;
  t->bounce_size = size;
  return 0;
}

void
ncr_xts_thread_bounce_trim (struct ncr_xts_thread *t)
{
  /* The first NCR_XTS_BOUNCE_KEEP bytes stay mapped where they are: nothing to copy, and
   * the next request of up to that size reuses them. KEEP is a multiple of the page size. */
  if (t->bounce_size <= NCR_XTS_BOUNCE_KEEP)
    return;
  munmap (t->bounce + NCR_XTS_BOUNCE_KEEP, t->bounce_size - NCR_XTS_BOUNCE_KEEP);
  t->bounce_size = NCR_XTS_BOUNCE_KEEP;
}

void
ncr_xts_pool_free (struct ncr_xts_pool *p)
{
  if (!p)
    return;
  /* After pthread_key_delete no destructor runs, so the list is ours alone. */
  pthread_key_delete (p->key);
  while (p->all) {
    struct state *s = p->all;
    unlink_state (s);
    state_free (s);
  }
  pthread_mutex_destroy (&p->lock);
  ncr_xts_free (p->master);
  free (p);
}
