/* SPDX-License-Identifier: BSD-3-Clause */
/* Readahead for O_DIRECT sequential reads: stream detection, prefetch ring + reaper thread,
 * invalidation by writes to the file from any connection (see uring-readahead.h for the rules). */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if __has_include (<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void) 0)
#endif

#include "uring-readahead.h"

/* Reads shorter than this neither start nor extend a stream (and cost one comparison):
 * small random reads must never pay for readahead. */
#define MIN_READ (32 * 1024)
/* Consecutive in-stream reads before prefetching starts. */
#define TRIGGER 3
/* The chunks live in one region on transparent huge pages where the kernel gives them: a
 * 1 MiB read into 4 KiB pages is 256 segments, more than a virtio disk takes in one request
 * (max_segments 254 here), so the block layer split every chunk in two. */
#define HUGE_PAGE (2 * 1024 * 1024)
/* serve() copies out of at most this many chunks (a read spanning more is not served). */
#define MAX_PIN 64

enum slot_state { FREE, PENDING, READY };

struct slot {
  enum slot_state state;
  bool stale;                 /* PENDING: a write overlapped it; drop it when it completes */
  bool used;                  /* READY: something was copied from it */
  uint64_t off;
  uint64_t len;
  uint64_t snap;              /* writes_started when issued */
  char *buf;
  pthread_cond_t landed;      /* PENDING -> READY or FREE; waiters counts the sleepers */
  unsigned waiters;
  unsigned copiers;           /* READY: readers copying out of it without the lock; while
                               * any are, the slot is neither reused nor freed */
  bool consumed;              /* READY: read to its end; free it when the copiers are done */
};

struct uring_readahead {
  struct uring_ra_config c;
  unsigned nslots;
  pthread_mutex_t lock;
  uint64_t frontier;          /* furthest end of the stream's reads */
  unsigned seq;               /* consecutive in-stream reads */
  bool started, broken;       /* ring + reaper up; could not start them */
  unsigned inflight;
  struct io_uring ring;
  pthread_t reaper;
  struct slot *slots;
  char *region;               /* the chunks' memory */
  struct uring_ra_stats st;
  struct uring_readahead *next;           /* the group's all_uras */
};

/* The writes to one file from every connection of the process, and that file's readaheads
 * (see uring-readahead.h). */
struct uring_ra_group {
  _Atomic uint64_t writes_started, writes_ended;
  pthread_mutex_t all_lock;
  struct uring_readahead *all_uras;       /* those with prefetch buffers */
  _Atomic unsigned nactive;
};

int
uring_ra_group_new (struct uring_ra_group **gp)
{
  struct uring_ra_group *g = calloc (1, sizeof *g);

  if (g == NULL)
    return -errno;
  atomic_init (&g->writes_started, 0);
  atomic_init (&g->writes_ended, 0);
  atomic_init (&g->nactive, 0);
  pthread_mutex_init (&g->all_lock, NULL);
  *gp = g;
  return 0;
}

void
uring_ra_group_free (struct uring_ra_group *g)
{
  if (g == NULL)
    return;
  pthread_mutex_destroy (&g->all_lock);
  free (g);
}

int
uring_ra_new (struct uring_readahead **rap, const struct uring_ra_config *c)
{
  struct uring_readahead *ra;

  if (c->group == NULL || c->chunk == 0 || c->window < c->chunk || c->window % c->chunk ||
      c->align == 0 || c->chunk % c->align)
    return -EINVAL;
  ra = calloc (1, sizeof *ra);
  if (ra == NULL)
    return -errno;
  ra->c = *c;
  ra->nslots = (unsigned) (c->window / c->chunk);
  pthread_mutex_init (&ra->lock, NULL);
  *rap = ra;
  return 0;
}

static void *
reaper_main (void *arg)
{
  struct uring_readahead *ra = arg;
  bool stop = false;

  for (;;) {
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    int r;

    pthread_mutex_lock (&ra->lock);
    if (stop && ra->inflight == 0) {
      pthread_mutex_unlock (&ra->lock);
      return NULL;
    }
    pthread_mutex_unlock (&ra->lock);
    r = io_uring_wait_cqe (&ra->ring, &cqe);
    if (r < 0)
      continue;               /* -EINTR, or nothing yet */
    pthread_mutex_lock (&ra->lock);
    uint64_t now = atomic_load (&ra->c.group->writes_started);
    io_uring_for_each_cqe (&ra->ring, head, cqe) {
      struct slot *s = io_uring_cqe_get_data (cqe);
      seen++;
      if (s == NULL) {
        stop = true;
        continue;
      }
      ra->inflight--;
      if (cqe->res == (int) s->len && !s->stale && s->snap == now) {
        VALGRIND_MAKE_MEM_DEFINED (s->buf, s->len);
        s->state = READY;
        s->used = false;
        s->consumed = false;
      }
      else {
        /* An error, a short read (the file shrank), or a write overlapped it: nobody may
         * see these bytes. Readers waiting for it read the file themselves. */
        s->state = FREE;
        ra->st.discarded++;
      }
      if (s->waiters)
        pthread_cond_broadcast (&s->landed);
    }
    io_uring_cq_advance (&ra->ring, seen);
    pthread_mutex_unlock (&ra->lock);
  }
}

/* The slots and their chunks' memory (nothing in flight any more). */
static void
free_slots (struct uring_readahead *ra)
{
  for (unsigned i = 0; i < ra->nslots; i++)
    pthread_cond_destroy (&ra->slots[i].landed);
  free (ra->region);
  ra->region = NULL;
  free (ra->slots);
  ra->slots = NULL;
}

/* Buffers, ring and reaper, on the first stream. Called with ra->lock held. */
static bool
start (struct uring_readahead *ra)
{
  sigset_t all, old;
  int err;

  if (ra->started || ra->broken)
    return ra->started;
  ra->broken = true;          /* until it worked */
  ra->slots = calloc (ra->nslots, sizeof *ra->slots);
  if (ra->slots == NULL)
    return false;
  for (unsigned i = 0; i < ra->nslots; i++)
    pthread_cond_init (&ra->slots[i].landed, NULL);
  size_t bytes = (ra->nslots * ra->c.chunk + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
  if (posix_memalign ((void **) &ra->region, HUGE_PAGE > ra->c.align ? HUGE_PAGE : ra->c.align,
                      bytes) != 0) {
    ra->region = NULL;
    goto fail;
  }
  madvise (ra->region, bytes, MADV_HUGEPAGE);     /* a hint: fine if refused */
  for (unsigned i = 0; i < ra->nslots; i++)
    ra->slots[i].buf = ra->region + (size_t) i * ra->c.chunk;
  if (io_uring_queue_init (ra->nslots + 1, &ra->ring, 0) < 0)
    goto fail;
  /* The helper thread must not take the process's signals (nbdkit handles them). */
  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, &old);
  err = pthread_create (&ra->reaper, NULL, reaper_main, ra);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (err != 0) {
    io_uring_queue_exit (&ra->ring);
    goto fail;
  }
  struct uring_ra_group *g = ra->c.group;
  pthread_mutex_lock (&g->all_lock);
  ra->next = g->all_uras;
  g->all_uras = ra;
  atomic_fetch_add (&g->nactive, 1);
  pthread_mutex_unlock (&g->all_lock);
  ra->started = true;
  ra->broken = false;
  return true;

 fail:
  free_slots (ra);
  return false;
}

void
uring_ra_free (struct uring_readahead *ra)
{
  if (ra == NULL)
    return;
  if (ra->started) {
    struct uring_ra_group *g = ra->c.group;
    pthread_mutex_lock (&g->all_lock);
    for (struct uring_readahead **pp = &g->all_uras; *pp != NULL; pp = &(*pp)->next)
      if (*pp == ra) {
        *pp = ra->next;
        break;
      }
    atomic_fetch_sub (&g->nactive, 1);
    pthread_mutex_unlock (&g->all_lock);
    /* A no-op without data stops the reaper once every prefetch has landed. */
    pthread_mutex_lock (&ra->lock);
    struct io_uring_sqe *sqe = io_uring_get_sqe (&ra->ring);   /* nslots + 1 entries */
    io_uring_prep_nop (sqe);
    io_uring_sqe_set_data (sqe, NULL);
    int r;
    do
      r = io_uring_submit (&ra->ring);
    while (r == -EINTR || r == -EAGAIN || r == -EBUSY);
    pthread_mutex_unlock (&ra->lock);
    pthread_join (ra->reaper, NULL);
    io_uring_queue_exit (&ra->ring);
    free_slots (ra);
  }
  pthread_mutex_destroy (&ra->lock);
  free (ra);
}

static struct slot *
find (struct uring_readahead *ra, uint64_t off)
{
  for (unsigned i = 0; i < ra->nslots; i++)
    if (ra->slots[i].state != FREE && ra->slots[i].off == off)
      return &ra->slots[i];
  return NULL;
}

/* A slot for a new prefetch: a free one, or a finished one outside [lo, hi) (behind the
 * stream, or ahead of it after a jump). */
static struct slot *
reclaim (struct uring_readahead *ra, uint64_t lo, uint64_t hi)
{
  struct slot *best = NULL;

  for (unsigned i = 0; i < ra->nslots; i++) {
    struct slot *s = &ra->slots[i];
    if (s->state == FREE)
      return s;
    if (s->state == READY && s->copiers == 0 && (s->off + s->len <= lo || s->off >= hi) &&
        (best == NULL || s->off < best->off))
      best = s;
  }
  if (best && !best->used)
    ra->st.unused++;
  return best;
}

/* Keep [frontier, frontier + window) in flight. Called with ra->lock held. */
static void
prefetch (struct uring_readahead *ra)
{
  uint64_t chunk = ra->c.chunk;
  uint64_t from = ra->frontier / chunk * chunk;
  uint64_t to = ra->frontier + ra->c.window;
  uint64_t lo = ra->frontier > ra->c.window ? ra->frontier - ra->c.window : 0;
  unsigned queued = 0;
  uint64_t snap;

  if (to > ra->c.limit)
    to = ra->c.limit;
  if (from >= to || !start (ra))
    return;
  /* No prefetch may start while a write is in flight (it could read half of it). */
  snap = atomic_load (&ra->c.group->writes_started);
  if (snap != atomic_load (&ra->c.group->writes_ended))
    return;
  for (uint64_t off = from; off < to; off += chunk) {
    struct slot *s;
    struct io_uring_sqe *sqe;

    if (find (ra, off))
      continue;
    s = reclaim (ra, lo, to);
    if (s == NULL)
      break;
    sqe = io_uring_get_sqe (&ra->ring);
    if (sqe == NULL)
      break;
    s->state = PENDING;
    s->stale = false;
    s->used = false;
    s->off = off;
    s->len = off + chunk <= ra->c.limit ? chunk : ra->c.limit - off;
    s->snap = snap;
    io_uring_prep_read (sqe, ra->c.fd, s->buf, (unsigned) s->len, off);
    io_uring_sqe_set_data (sqe, s);
    ra->inflight++;
    ra->st.prefetches++;
    queued++;
  }
  if (queued) {
    int r;
    do
      r = io_uring_submit (&ra->ring);
    while (r == -EINTR);
    if (r < 0) {
      /* The SQEs stay queued in the ring and go in with uring_ra_free's stop request, so their
       * slots stay PENDING until then; nobody waits for them (serve checks 'broken'). */
      ra->broken = true;
      for (unsigned i = 0; i < ra->nslots; i++)
        if (ra->slots[i].waiters)
          pthread_cond_broadcast (&ra->slots[i].landed);
    }
  }
}

/* Copy [offset, end) out of the chunks covering it, if they are all there (waiting for the
 * ones in flight). Called with ra->lock held. */
static bool
serve (struct uring_readahead *ra, char *buf, uint64_t offset, uint64_t end)
{
  uint64_t chunk = ra->c.chunk;
  uint64_t first = offset / chunk * chunk;
  bool waited = false;

  if ((end - first + chunk - 1) / chunk > MAX_PIN)
    return false;
  for (;;) {
    struct slot *pending = NULL;
    for (uint64_t off = first; off < end; off += chunk) {
      struct slot *s = find (ra, off);
      if (s == NULL || s->stale || s->off + s->len < (end < off + chunk ? end : off + chunk))
        return false;
      if (s->state == PENDING && pending == NULL)
        pending = s;
    }
    if (pending == NULL)
      break;
    if (ra->broken)
      return false;
    /* Sleep until that chunk lands, then look at all of them again. */
    waited = true;
    pending->waiters++;
    pthread_cond_wait (&pending->landed, &ra->lock);
    pending->waiters--;
  }
  /* Copy without the lock (a 1 MiB copy under it held up the stream's other readers and
   * the reaper); the slots are pinned meanwhile. A write that ends during the copy marks
   * them stale: this read overlapped it, and either contents are allowed then. */
  struct slot *pinned[MAX_PIN];
  unsigned npin = 0;
  for (uint64_t off = first; off < end; off += chunk) {
    pinned[npin] = find (ra, off);
    pinned[npin++]->copiers++;
  }
  pthread_mutex_unlock (&ra->lock);
  for (unsigned i = 0; i < npin; i++) {
    struct slot *s = pinned[i];
    uint64_t off = s->off;
    uint64_t a = offset > off ? offset : off;
    uint64_t b = end < off + s->len ? end : off + s->len;
    memcpy (buf + (a - offset), s->buf + (a - off), b - a);
  }
  pthread_mutex_lock (&ra->lock);
  for (unsigned i = 0; i < npin; i++) {
    struct slot *s = pinned[i];
    s->used = true;
    if (end >= s->off + s->len)
      s->consumed = true;     /* read to its end: a sequential stream is done with it */
    if (--s->copiers == 0 && (s->consumed || s->stale)) {
      if (s->stale && !s->consumed)
        ra->st.discarded++;
      s->state = FREE;
    }
  }
  ra->st.hits++;
  if (waited)
    ra->st.waits++;
  return true;
}

int
uring_ra_read (struct uring_readahead *ra, void *buf, uint64_t len, uint64_t offset)
{
  uint64_t end = offset + len;
  bool hit = false;

  if (len < MIN_READ)
    return 0;
  pthread_mutex_lock (&ra->lock);
  if (ra->broken) {
    pthread_mutex_unlock (&ra->lock);
    return 0;
  }
  /* In the stream: at most a chunk past its front, or behind it by less than the window
   * (several worker threads serve one stream, so reads arrive slightly out of order). */
  if (offset <= ra->frontier + ra->c.chunk &&
      offset + ra->c.window >= ra->frontier) {
    if (ra->seq < TRIGGER)
      ra->seq++;
    if (end > ra->frontier)
      ra->frontier = end;
  }
  else {
    ra->seq = 0;
    ra->frontier = end;
  }
  if (ra->seq >= TRIGGER) {
    if (ra->started)
      hit = serve (ra, buf, offset, end);
    prefetch (ra);
  }
  pthread_mutex_unlock (&ra->lock);
  return hit;
}

void
uring_ra_write_begin (struct uring_ra_group *g)
{
  atomic_fetch_add (&g->writes_started, 1);
}

void
uring_ra_write_end (struct uring_ra_group *g, uint64_t offset, uint64_t len)
{
  uint64_t end = offset + len;

  if (atomic_load (&g->nactive) > 0) {
    pthread_mutex_lock (&g->all_lock);
    for (struct uring_readahead *ra = g->all_uras; ra != NULL; ra = ra->next) {
      pthread_mutex_lock (&ra->lock);
      for (unsigned i = 0; i < ra->nslots; i++) {
        struct slot *s = &ra->slots[i];
        if (s->state == FREE || s->off >= end || s->off + s->len <= offset)
          continue;
        if (s->state == READY && s->copiers == 0) {
          s->state = FREE;
          ra->st.discarded++;
        }
        else
          s->stale = true;    /* in flight, or being copied: freed when that is over */
      }
      pthread_mutex_unlock (&ra->lock);
    }
    pthread_mutex_unlock (&g->all_lock);
  }
  atomic_fetch_add (&g->writes_ended, 1);
}

void
uring_ra_get_stats (struct uring_readahead *ra, struct uring_ra_stats *st)
{
  pthread_mutex_lock (&ra->lock);
  *st = ra->st;
  pthread_mutex_unlock (&ra->lock);
}
