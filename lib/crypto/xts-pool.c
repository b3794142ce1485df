/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-thread XTS contexts and buffers for any number of pools: one process-wide pthread key
 * finds the thread's state (its buffers and a small cache of contexts, one per pool it used
 * lately); each pool keeps a list of the cached copies of its master, so that freeing it can
 * wipe them in every thread. One key for the process, whatever the number of pools: the
 * system has at most PTHREAD_KEYS_MAX (1024) of them, and a server may hold thousands of
 * volumes.
 *
 * Locks, taken in this order, never two threads' locks at once:
 *   copies_lock   process-wide: every pool's list of copies, and which cache entry holds
 *                 which copy (taken on a cache miss, by ncr_xts_pool_free and at thread
 *                 exit, never on the hit path)
 *   state->lock   per thread: that thread's cache entries and its t.xts (taken by the owner
 *                 on every call, by another thread only inside ncr_xts_pool_free)
 * A cache entry changes only with both held, so either one is enough to read it: the hit
 * path is one uncontended lock of the thread's own mutex.
 *
 * Bounce buffers are anonymous mappings rather than malloc blocks: cutting one back must
 * return its pages to the system, and glibc keeps freed blocks of up to 32 MiB in its arenas
 * once it has seen a block that size freed (its mmap threshold adapts). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cleanup.h"
#include "errors.h"
#include "xts-pool.h"

/* The largest sector size: every thread's sector buffer is this big, whatever its pools'. */
#define SECTOR_MAX 4096

/* Contexts cached per thread. An nbdkit worker thread serves one connection, so one export,
 * for its life: it needs one entry; a few more keep a thread that serves several (the key
 * check) from copying a master on every switch. */
#define CACHE_ENTRIES 4

struct state;

/* One cached copy of a pool's master; an empty entry has xts == NULL and id == 0. */
struct entry {
  struct ncr_xts *xts;
  uint64_t id;                  /* the pool's id: never reused, unlike its address */
  uint64_t last_used;           /* the owner's tick at its last hit (owner only) */
  struct ncr_xts_pool *pool;
  struct state *owner;
  struct entry *prev, *next;    /* in pool->copies */
};

struct state {
  struct ncr_xts_thread t;      /* first: the public part */
  pthread_mutex_t lock;
  unsigned sector_used;         /* the sector size of t.xts's pool: what t.sector may hold */
  uint64_t tick;
  struct entry cache[CACHE_ENTRIES];
};

struct ncr_xts_pool {
  struct ncr_xts *master;
  unsigned sector_size;
  uint64_t id;
  struct entry *copies;         /* under copies_lock */
};

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static int key_err;             /* pthread_key_create's error, if it failed */
static bool key_made;
static pthread_mutex_t copies_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_id;        /* under copies_lock */
static atomic_size_t live_copies;

static void
copy_free (struct ncr_xts *x)
{
  if (!x)
    return;
  ncr_xts_free (x);             /* cleanses its key schedules */
  atomic_fetch_sub (&live_copies, 1);
}

/* Take e's copy out of its pool's list and out of the cache; returns it, to be freed once
 * e->owner->lock is dropped (the owner's hit path waits on it). The caller holds that lock
 * and copies_lock. The owner's
 * sector buffer may hold a plaintext sector of the pool whose context it last used: wipe it
 * if that was this one. */
static struct ncr_xts *
entry_take (struct entry *e)
{
  struct ncr_xts *x = e->xts;
  struct state *s = e->owner;

  if (e->prev)
    e->prev->next = e->next;
  else
    e->pool->copies = e->next;
  if (e->next)
    e->next->prev = e->prev;
  if (s->t.xts == x) {
    s->t.xts = NULL;
    explicit_bzero (s->t.sector, s->sector_used);
    s->sector_used = 0;
  }
  e->xts = NULL;
  e->id = 0;
  e->pool = NULL;
  e->prev = e->next = NULL;
  return x;
}

/* pthread key destructor: the thread is exiting. */
static void
thread_exit (void *v)
{
  struct state *s = v;
  struct ncr_xts *gone[CACHE_ENTRIES] = { NULL };

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&copies_lock);
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    for (int i = 0; i < CACHE_ENTRIES; i++)
      if (s->cache[i].xts)
        gone[i] = entry_take (&s->cache[i]);
  }
  /* No other thread can reach s now: its entries are in no pool's list. */
  for (int i = 0; i < CACHE_ENTRIES; i++)
    copy_free (gone[i]);
  explicit_bzero (s->t.sector, SECTOR_MAX);
  free (s->t.sector);
  if (s->t.bounce)           /* holds ciphertext only */
    munmap (s->t.bounce, s->t.bounce_size);
  pthread_mutex_destroy (&s->lock);
  free (s);
}

static void
key_init (void)
{
  key_err = pthread_key_create (&key, thread_exit);
  key_made = key_err == 0;
}

/* The code may be unloaded while threads that hold a state still run (nbdkit dlcloses its
 * filters at exit, and a connection thread may still be finishing): delete the key first,
 * so that their exit does not call thread_exit in unmapped code. Those threads' states are
 * then left behind; their copies went with the pools. */
__attribute__ ((destructor)) static void
key_fini (void)
{
  if (key_made)
    pthread_key_delete (key);
}

int
ncr_xts_pool_new (struct ncr_xts *master, unsigned sector_size, struct ncr_xts_pool **out)
{
  struct ncr_xts_pool *p;

  if (sector_size == 0 || sector_size > SECTOR_MAX)
    return ncr_error (EINVAL, "sector size %u is not within 1..%d", sector_size, SECTOR_MAX);
  pthread_once (&key_once, key_init);
  if (key_err)
    return ncr_error (key_err, "pthread_key_create: %s", strerror (key_err));
  p = calloc (1, sizeof *p);
  if (!p)
    return ncr_error (ENOMEM, "out of memory");
  p->master = master;
  p->sector_size = sector_size;
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&copies_lock);
    p->id = ++last_id;
  }
  *out = p;
  return 0;
}

/* The calling thread's state, made on its first call. NULL (errno, ncr_last_error) on
 * failure. */
static struct state *
state_get (void)
{
  struct state *s = pthread_getspecific (key);
  int r;

  if (s)
    return s;
  s = calloc (1, sizeof *s);
  if (!s || !(s->t.sector = aligned_alloc (64, SECTOR_MAX))) {
    free (s);
    ncr_error (ENOMEM, "out of memory");
    errno = ENOMEM;
    return NULL;
  }
  pthread_mutex_init (&s->lock, NULL);
  for (int i = 0; i < CACHE_ENTRIES; i++)
    s->cache[i].owner = s;
  if ((r = pthread_setspecific (key, s)) != 0) {
    ncr_error (r, "pthread_setspecific: %s", strerror (r));
    pthread_mutex_destroy (&s->lock);
    free (s->t.sector);
    free (s);
    errno = r;
    return NULL;
  }
  return s;
}

/* Make t.xts the context of e, the pool p's entry. The caller holds s->lock. Switching
 * pools wipes the sector buffer: it may hold the previous volume's plaintext (a sector of
 * that volume's size at most). */
static void
entry_use (struct state *s, struct entry *e, const struct ncr_xts_pool *p)
{
  e->last_used = ++s->tick;
  if (s->t.xts != e->xts) {
    explicit_bzero (s->t.sector, s->sector_used);
    s->t.xts = e->xts;
    s->sector_used = p->sector_size;
  }
}

/* p is not in s's cache: copy its master into an empty entry, or into the least recently
 * used one. The copy is made outside the locks (it maps and locks pages). */
static struct ncr_xts_thread *
cache_miss (struct state *s, struct ncr_xts_pool *p)
{
  struct ncr_xts *x, *old = NULL;
  int r;

  if ((r = ncr_xts_dup (p->master, &x)) < 0) {
    errno = -r;
    return NULL;
  }
  atomic_fetch_add (&live_copies, 1);
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&copies_lock);
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    struct entry *e = &s->cache[0];

    for (int i = 1; i < CACHE_ENTRIES && e->xts; i++)
      if (!s->cache[i].xts || s->cache[i].last_used < e->last_used)
        e = &s->cache[i];
    if (e->xts)
      old = entry_take (e);
    e->xts = x;
    e->id = p->id;
    e->pool = p;
    e->next = p->copies;
    if (p->copies)
      p->copies->prev = e;
    p->copies = e;
    entry_use (s, e, p);
  }
  copy_free (old);
  return &s->t;
}

struct ncr_xts_thread *
ncr_xts_pool_thread (struct ncr_xts_pool *p)
{
  struct state *s = state_get ();

  if (!s)
    return NULL;
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->lock);
    for (int i = 0; i < CACHE_ENTRIES; i++)
      if (s->cache[i].id == p->id) {
        entry_use (s, &s->cache[i], p);
        return &s->t;
      }
  }
  return cache_miss (s, p);
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
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&copies_lock);
    while (p->copies) {
      struct ncr_xts *x;
      {
        /* The owner may be looking up another pool's entry at this moment. */
        ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&p->copies->owner->lock);
        x = entry_take (p->copies);
      }
      copy_free (x);
    }
  }
  ncr_xts_free (p->master);
  free (p);
}

size_t
ncr_xts_pool_live_copies (void)
{
  return atomic_load (&live_copies);
}
