/* SPDX-License-Identifier: BSD-3-Clause */
/* io_uring request queue: per-thread rings, a shared ring with a completion thread, or a
 * synchronous pread/pwrite fallback, behind one "run this batch to completion" call. */
#include <errno.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#if __has_include (<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void) 0)
#endif

#include "cleanup.h"
#include "errors.h"
#include "uring-queue.h"

/* -EAGAIN/-EINTR from one operation are retried this many times before giving up; a transfer
 * that makes progress is never counted. */
#define MAX_RETRIES 1000
/* One SQE never asks for more than this (the kernel caps a single read/write near 2 GiB). */
#define MAX_SQE_BYTES (UINT64_C (1) << 30)
/* Operations in one submission round that fit on the stack; larger rounds allocate. */
#define ROUND_ON_STACK 64

struct ring {
  struct io_uring uring;
  pid_t owner;                /* per-thread engine: the thread that created and alone submits */
  bool fixed;                 /* descriptors registered: SQEs use IOSQE_FIXED_FILE */
  struct ring *next;
};

struct uring_queue {
  enum uring_queue_engine engine;
  unsigned depth;
  int fds[URING_QUEUE_MAX_FDS];
  unsigned nfds;
  uint64_t id;                /* never reused, so a stale per-thread cache cannot match */

  pthread_mutex_t lock;       /* the ring list; URING_QUEUE_SHARED: the submission queue */
  struct ring *rings;
  unsigned nrings;

  /* URING_QUEUE_SHARED */
  struct ring *shared;
  pthread_t reaper;
  bool reaper_running;
  pthread_cond_t space;       /* signalled when in-flight operations complete */
  _Atomic unsigned inflight;  /* kept <= cq_cap so the completion queue never overflows */
  _Atomic unsigned space_waiters;
  unsigned cq_cap;

  _Atomic uint64_t ops, enters, batches, resubmits;
};

/* A batch on the shared ring: the caller sleeps on 'remaining' until the reaper zeroes it. */
struct waiter {
  _Atomic uint32_t remaining;
};

static _Atomic uint64_t next_queue_id = 1;

/* The per-thread engine's cache: the ring this thread used last, and for which queue. */
static __thread struct {
  uint64_t qid;
  struct ring *ring;
} thread_cache;

const char *
uring_queue_engine_name (enum uring_queue_engine engine)
{
  switch (engine) {
  case URING_QUEUE_PER_THREAD: return "per-thread";
  case URING_QUEUE_SHARED: return "shared";
  case URING_QUEUE_SYNC: return "sync";
  }
  return "?";
}

enum uring_queue_engine
uring_queue_engine (const struct uring_queue *q)
{
  return q->engine;
}

static const char *
op_name (enum uring_queue_opcode opcode)
{
  switch (opcode) {
  case URING_QUEUE_READ: return "read";
  case URING_QUEUE_WRITE: return "write";
  case URING_QUEUE_FDATASYNC: return "fdatasync";
  }
  return "?";
}

int
uring_queue_probe (void)
{
  struct io_uring ring;
  int r = io_uring_queue_init (2, &ring, 0);

  if (r == 0) {
    io_uring_queue_exit (&ring);
    return 0;
  }
  if (r == -ENOSYS)
    return ncr_error (ENOSYS, "this kernel has no io_uring");
  if (r == -EPERM)
    return ncr_error (EPERM, "io_uring is disabled (sysctl kernel.io_uring_disabled, "
                      "or a seccomp policy)");
  return ncr_error (-r, "io_uring_queue_init: %s", strerror (-r));
}

/* Set up one ring, trying the cheapest completion mode the kernel offers first. */
static int
ring_new (struct uring_queue *q, const unsigned *flag_sets, size_t nsets, struct ring **rp)
{
  struct ring *r = calloc (1, sizeof *r);
  int err = -EINVAL;

  if (r == NULL)
    return ncr_error (errno, "calloc: %s", strerror (errno));
  for (size_t i = 0; i < nsets; i++) {
    struct io_uring_params p = { .flags = flag_sets[i] };
    err = io_uring_queue_init_params (q->depth, &r->uring, &p);
    if (err != -EINVAL)     /* EINVAL: an unknown flag on an older kernel; try fewer */
      break;
  }
  if (err < 0) {
    free (r);
    return ncr_error (-err, "io_uring_queue_init (depth %u): %s", q->depth, strerror (-err));
  }
  /* Registered files save an fget/fput per request; without them (e.g. a seccomp policy that
   * forbids io_uring_register) the plain descriptors still work. */
  r->fixed = io_uring_register_files (&r->uring, q->fds, q->nfds) == 0;
  r->owner = gettid ();
  *rp = r;
  return 0;
}

static void
ring_free (struct ring *r)
{
  io_uring_queue_exit (&r->uring);
  free (r);
}

static void
prep_sqe (struct uring_queue *q, struct ring *r, struct io_uring_sqe *sqe,
          struct uring_queue_op *op)
{
  int fd = r->fixed ? (int) op->fd_index : q->fds[op->fd_index];
  char *buf = (char *) op->buf + op->done;
  uint64_t len = op->len - op->done;
  uint64_t off = op->offset + op->done;

  if (len > MAX_SQE_BYTES)
    len = MAX_SQE_BYTES;
  switch (op->opcode) {
  case URING_QUEUE_READ:
    io_uring_prep_read (sqe, fd, buf, (unsigned) len, off);
    break;
  case URING_QUEUE_WRITE:
    io_uring_prep_write (sqe, fd, buf, (unsigned) len, off);
    sqe->rw_flags = op->rw_flags;
    break;
  case URING_QUEUE_FDATASYNC:
    io_uring_prep_fsync (sqe, fd, IORING_FSYNC_DATASYNC);
    break;
  }
  if (r->fixed)
    sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data (sqe, op);
}

/* Account for one completion: record the error, or the progress, and say whether the
 * operation has to go round again (short transfer, -EAGAIN, -EINTR). */
static void
op_complete (struct uring_queue_op *op, int64_t res)
{
  op->again = false;
  if (res == -EAGAIN || res == -EINTR) {
    if (++op->retries > MAX_RETRIES)
      op->error = (int) -res;
    else
      op->again = true;
    return;
  }
  if (res < 0) {
    op->error = (int) -res;
    return;
  }
  if (op->opcode == URING_QUEUE_FDATASYNC)
    return;
  if (res == 0) {
    uint64_t need = op->min_len ? op->min_len : op->len;
    if (op->opcode == URING_QUEUE_READ && op->done >= need)
      return;                 /* end of file after everything that was needed */
    if (op->opcode == URING_QUEUE_READ || ++op->retries > MAX_RETRIES)
      op->error = op->opcode == URING_QUEUE_READ ? ENODATA : EIO;
    else
      op->again = true;
    return;
  }
  /* The kernel filled the buffer behind memcheck's back (no read syscall to see). */
  if (op->opcode == URING_QUEUE_READ)
    VALGRIND_MAKE_MEM_DEFINED ((char *) op->buf + op->done, res);
  op->done += (uint64_t) res;
  if (op->done < op->len)
    op->again = true;
}

/* ---- URING_QUEUE_PER_THREAD
 * ------------------------------------------------------------------------ */

static int
thread_ring (struct uring_queue *q, struct ring **rp)
{
  static const unsigned flag_sets[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,   /* 6.1+ */
    IORING_SETUP_COOP_TASKRUN,                                 /* 5.19+ */
    0,
  };
  pid_t me;
  struct ring *r;
  int err;

  if (thread_cache.qid == q->id) {
    *rp = thread_cache.ring;
    return 0;
  }
  me = gettid ();
  pthread_mutex_lock (&q->lock);
  for (r = q->rings; r != NULL; r = r->next)
    if (r->owner == me)
      break;
  pthread_mutex_unlock (&q->lock);
  if (r == NULL) {
    /* Created by the thread that will submit to it, as SINGLE_ISSUER requires. */
    err = ring_new (q, flag_sets, sizeof flag_sets / sizeof flag_sets[0], &r);
    if (err < 0)
      return err;
    pthread_mutex_lock (&q->lock);
    r->next = q->rings;
    q->rings = r;
    q->nrings++;
    pthread_mutex_unlock (&q->lock);
  }
  thread_cache.qid = q->id;
  thread_cache.ring = r;
  *rp = r;
  return 0;
}

/* A ring whose io_uring_enter failed for good is dropped; the thread makes a new one. */
static void
thread_ring_discard (struct uring_queue *q, struct ring *dead)
{
  struct ring **pp;

  pthread_mutex_lock (&q->lock);
  for (pp = &q->rings; *pp != NULL; pp = &(*pp)->next)
    if (*pp == dead) {
      *pp = dead->next;
      q->nrings--;
      break;
    }
  pthread_mutex_unlock (&q->lock);
  thread_cache.qid = 0;
  ring_free (dead);
}

/* Submit the round and wait for all of it in (usually) one io_uring_enter. */
static int
per_thread_round (struct uring_queue *q, struct uring_queue_op **round, size_t n)
{
  struct ring *r;
  struct io_uring *ring;
  struct io_uring_cqe *cqe;
  size_t got = 0;
  uint64_t enters = 1;
  int ret;

  ret = thread_ring (q, &r);
  if (ret < 0)
    return ret;
  ring = &r->uring;
  for (size_t i = 0; i < n; i++)
    prep_sqe (q, r, io_uring_get_sqe (ring), round[i]);   /* n <= depth: never NULL */

  ret = io_uring_submit_and_wait (ring, (unsigned) n);
  for (;;) {
    unsigned head, seen = 0;

    if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME) {
      atomic_fetch_add_explicit (&q->enters, enters, memory_order_relaxed);
      thread_ring_discard (q, r);
      return ncr_error (-ret, "io_uring_enter: %s", strerror (-ret));
    }
    io_uring_for_each_cqe (ring, head, cqe) {
      op_complete (io_uring_cqe_get_data (cqe), cqe->res);
      seen++;
    }
    io_uring_cq_advance (ring, seen);
    got += seen;
    if (got >= n)
      break;
    if (ret == -EAGAIN || ret == -EBUSY)
      sched_yield ();         /* the kernel is short of resources: let completions drain */
    if (io_uring_sq_ready (ring) > 0)
      ret = io_uring_submit_and_wait (ring, (unsigned) (n - got));
    else
      ret = io_uring_wait_cqe_nr (ring, &cqe, (unsigned) (n - got));
    enters++;
  }
  atomic_fetch_add_explicit (&q->enters, enters, memory_order_relaxed);
  return 0;
}

/* ---- URING_QUEUE_SHARED
 * ---------------------------------------------------------------------------- */

static void
futex_wait (_Atomic uint32_t *addr, uint32_t val)
{
  syscall (SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void
futex_wake (_Atomic uint32_t *addr)
{
  syscall (SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* The completion thread: reaps every CQE, wakes each batch's caller when its last op is done.
 * A CQE with no data is the stop request from uring_queue_free. */
static void *
reaper_main (void *arg)
{
  struct uring_queue *q = arg;
  struct io_uring *ring = &q->shared->uring;

  for (;;) {
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0, done = 0;
    bool stop = false;
    int r = io_uring_wait_cqe (ring, &cqe);

    if (r < 0) {
      if (r != -EINTR && r != -EAGAIN && r != -EBUSY)
        sched_yield ();
      continue;
    }
    io_uring_for_each_cqe (ring, head, cqe) {
      struct uring_queue_op *op = io_uring_cqe_get_data (cqe);
      seen++;
      if (op == NULL) {
        stop = true;
        continue;
      }
      struct waiter *w = op->waiter;
      op_complete (op, cqe->res);
      done++;
      /* After the last decrement the caller may return: touch nothing of its batch but the
       * futex word's address (a wake on a stale address is harmless). */
      if (atomic_fetch_sub (&w->remaining, 1) == 1)
        futex_wake (&w->remaining);
    }
    io_uring_cq_advance (ring, seen);
    atomic_fetch_sub (&q->inflight, done);
    if (atomic_load (&q->space_waiters) > 0) {
      pthread_mutex_lock (&q->lock);
      pthread_cond_broadcast (&q->space);
      pthread_mutex_unlock (&q->lock);
    }
    if (stop)
      return NULL;
  }
}

static int
shared_round (struct uring_queue *q, struct uring_queue_op **round, size_t n)
{
  struct io_uring *ring = &q->shared->uring;
  struct waiter w;
  uint32_t v;
  int ret;

  atomic_init (&w.remaining, (uint32_t) n);
  pthread_mutex_lock (&q->lock);
  while (atomic_load (&q->inflight) + n > q->cq_cap) {
    atomic_fetch_add (&q->space_waiters, 1);
    pthread_cond_wait (&q->space, &q->lock);
    atomic_fetch_sub (&q->space_waiters, 1);
  }
  for (size_t i = 0; i < n; i++) {
    round[i]->waiter = &w;
    prep_sqe (q, q->shared, io_uring_get_sqe (ring), round[i]);
  }
  atomic_fetch_add (&q->inflight, (unsigned) n);
  do {
    ret = io_uring_submit (ring);
    atomic_fetch_add_explicit (&q->enters, 1, memory_order_relaxed);
    if (ret == -EAGAIN || ret == -EBUSY)
      sched_yield ();
  } while (ret == -EINTR || ret == -EAGAIN || ret == -EBUSY ||
           (ret >= 0 && io_uring_sq_ready (ring) > 0));
  pthread_mutex_unlock (&q->lock);
  if (ret < 0) {
    /* Nothing was queued in the kernel: undo, and fail the round. */
    atomic_fetch_sub (&q->inflight, (unsigned) n);
    return ncr_error (-ret, "io_uring_enter: %s", strerror (-ret));
  }

  while ((v = atomic_load (&w.remaining)) != 0)
    futex_wait (&w.remaining, v);
  return 0;
}

/* ---- URING_QUEUE_SYNC
 * ------------------------------------------------------------------------------ */

static int
sync_round (struct uring_queue *q, struct uring_queue_op **round, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    struct uring_queue_op *op = round[i];
    int fd = q->fds[op->fd_index];
    char *buf = (char *) op->buf + op->done;
    uint64_t len = op->len - op->done;
    off_t off = (off_t) (op->offset + op->done);
    ssize_t r = 0;

    if (len > MAX_SQE_BYTES)
      len = MAX_SQE_BYTES;
    switch (op->opcode) {
    case URING_QUEUE_READ:
      r = pread (fd, buf, len, off);
      break;
    case URING_QUEUE_WRITE: {
      struct iovec iov = { .iov_base = buf, .iov_len = len };
      r = pwritev2 (fd, &iov, 1, off, op->rw_flags);
      break;
    }
    case URING_QUEUE_FDATASYNC:
      r = fdatasync (fd);
      break;
    }
    op_complete (op, r >= 0 ? (int64_t) r : -(int64_t) errno);
  }
  atomic_fetch_add_explicit (&q->enters, n, memory_order_relaxed);
  return 0;
}

/* ---- common ------------------------------------------------------------------------------- */

int
uring_queue_run (struct uring_queue *q, struct uring_queue_op *ops, size_t n)
{
  struct uring_queue_op *on_stack[ROUND_ON_STACK];
  CLEANUP_FREE struct uring_queue_op **heap = NULL;
  struct uring_queue_op **round = on_stack;
  size_t cap = n < q->depth ? n : q->depth;
  size_t nround = 0, next = 0;
  uint64_t batches = 0, resubmits = 0;

  for (size_t i = 0; i < n; i++) {
    ops[i].error = 0;
    ops[i].done = 0;
    ops[i].retries = 0;
    ops[i].again = false;
    if (ops[i].fd_index >= q->nfds)
      return ncr_error (EINVAL, "uring_queue_run: descriptor index %u out of range",
                        ops[i].fd_index);
  }
  if (cap > ROUND_ON_STACK) {
    heap = malloc (cap * sizeof *heap);
    if (heap == NULL)
      return ncr_error (ENOMEM, "malloc: %s", strerror (ENOMEM));
    round = heap;
  }

  for (;;) {
    int ret = 0;

    /* Operations that need another go keep their place; new ones fill the rest. */
    while (nround < cap && next < n)
      round[nround++] = &ops[next++];
    if (nround == 0)
      break;
    switch (q->engine) {
    case URING_QUEUE_PER_THREAD: ret = per_thread_round (q, round, nround); break;
    case URING_QUEUE_SHARED: ret = shared_round (q, round, nround); break;
    case URING_QUEUE_SYNC: ret = sync_round (q, round, nround); break;
    }
    if (ret < 0)
      return ret;
    batches++;
    atomic_fetch_add_explicit (&q->ops, nround, memory_order_relaxed);
    size_t keep = 0;
    for (size_t i = 0; i < nround; i++)
      if (round[i]->again)
        round[keep++] = round[i];
    resubmits += keep;
    nround = keep;
  }
  atomic_fetch_add_explicit (&q->batches, batches, memory_order_relaxed);
  if (resubmits)
    atomic_fetch_add_explicit (&q->resubmits, resubmits, memory_order_relaxed);

  for (size_t i = 0; i < n; i++)
    if (ops[i].error) {
      if (ops[i].error == ENODATA)
        return ncr_error (EIO, "%s at offset %" PRIu64 ": unexpected end of file",
                          op_name (ops[i].opcode), ops[i].offset + ops[i].done);
      return ncr_error (ops[i].error, "%s at offset %" PRIu64 " (%" PRIu64 " bytes): %s",
                        op_name (ops[i].opcode), ops[i].offset, ops[i].len,
                        strerror (ops[i].error));
    }
  return 0;
}

int
uring_queue_new (struct uring_queue **qp, const struct uring_queue_config *config)
{
  struct uring_queue *q;
  int err;

  if (config->depth < 1 || config->depth > 4096)
    return ncr_error (EINVAL, "queue depth %u is out of range (1-4096)", config->depth);
  if (config->nfds < 1 || config->nfds > URING_QUEUE_MAX_FDS)
    return ncr_error (EINVAL, "%u descriptors: between 1 and %d", config->nfds,
                      URING_QUEUE_MAX_FDS);
  q = calloc (1, sizeof *q);
  if (q == NULL)
    return ncr_error (errno, "calloc: %s", strerror (errno));
  q->engine = config->engine;
  q->depth = config->depth;
  q->nfds = config->nfds;
  memcpy (q->fds, config->fds, sizeof q->fds);
  q->id = atomic_fetch_add (&next_queue_id, 1);
  pthread_mutex_init (&q->lock, NULL);
  pthread_cond_init (&q->space, NULL);

  if (q->engine == URING_QUEUE_SHARED) {
    /* No COOP_TASKRUN here: completions are posted by task work in the submitting thread,
     * which sleeps on a futex, so it must be woken (signal-style) to run it. */
    static const unsigned flag_sets[] = { 0 };
    sigset_t all, old;

    err = ring_new (q, flag_sets, 1, &q->shared);
    if (err < 0)
      goto fail;
    q->cq_cap = q->shared->uring.cq.ring_entries;
    q->nrings = 1;
    /* The completion thread must not take the process's signals (nbdkit handles them). */
    sigfillset (&all);
    pthread_sigmask (SIG_BLOCK, &all, &old);
    err = -pthread_create (&q->reaper, NULL, reaper_main, q);
    pthread_sigmask (SIG_SETMASK, &old, NULL);
    if (err < 0) {
      ring_free (q->shared);
      err = ncr_error (-err, "pthread_create: %s", strerror (-err));
      goto fail;
    }
    q->reaper_running = true;
  }
  *qp = q;
  return 0;

 fail:
  pthread_cond_destroy (&q->space);
  pthread_mutex_destroy (&q->lock);
  free (q);
  return err;
}

void
uring_queue_free (struct uring_queue *q)
{
  if (q == NULL)
    return;
  if (q->reaper_running) {
    struct io_uring_sqe *sqe;
    /* A no-op without data tells the completion thread to stop. */
    pthread_mutex_lock (&q->lock);
    sqe = io_uring_get_sqe (&q->shared->uring);
    io_uring_prep_nop (sqe);
    io_uring_sqe_set_data (sqe, NULL);
    int r;
    do
      r = io_uring_submit (&q->shared->uring);
    while (r == -EINTR || r == -EAGAIN || r == -EBUSY);
    pthread_mutex_unlock (&q->lock);
    pthread_join (q->reaper, NULL);
  }
  if (q->shared)
    ring_free (q->shared);
  while (q->rings) {
    struct ring *r = q->rings;
    q->rings = r->next;
    ring_free (r);
  }
  if (thread_cache.qid == q->id)
    thread_cache.qid = 0;
  pthread_cond_destroy (&q->space);
  pthread_mutex_destroy (&q->lock);
  free (q);
}

void
uring_queue_get_stats (struct uring_queue *q, struct uring_queue_stats *st)
{
  memset (st, 0, sizeof *st);
  st->ops = atomic_load (&q->ops);
  st->enters = atomic_load (&q->enters);
  st->batches = atomic_load (&q->batches);
  st->resubmits = atomic_load (&q->resubmits);
  pthread_mutex_lock (&q->lock);
  st->rings = q->nrings;
  st->fixed_files = q->shared ? q->shared->fixed : (q->rings ? q->rings->fixed : false);
  pthread_mutex_unlock (&q->lock);
}
