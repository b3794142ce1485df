/* SPDX-License-Identifier: BSD-3-Clause */
/* io_uring request queue for one file: batches of reads, writes and fsyncs run to completion,
 * short transfers and -EAGAIN/-EINTR resubmitted. No nbdkit dependency.
 *
 * A caller (an nbdkit worker thread) hands uring_queue_run() a batch of operations and blocks
 * until all
 * of them are done, which is how nbdkit's synchronous plugin API works. Three engines:
 *
 *  URING_QUEUE_PER_THREAD  each calling thread gets its own ring (created on first use,
 * thread-affine,
 *                 IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN where the kernel has them); a batch is
 *                 submitted and waited for in one io_uring_enter.  The default: fewest syscalls
 *                 and no cross-thread wakeups (see docs/uring.md for the measurements).
 *  URING_QUEUE_SHARED      one ring per queue; callers submit under a lock, a completion thread
 * owns the
 *                 completion queue and wakes each caller (futex) when its batch is done.
 *  URING_QUEUE_SYNC        pread/pwrite/fdatasync: the fallback when io_uring is missing or
 * disabled.
 *
 * Every engine registers the queue's descriptors as fixed files where the kernel allows it.
 * Functions return 0 or -errno, with a message retrievable by ncr_last_error(). */
#ifndef NBDCRYPT_URING_QUEUE_H
#define NBDCRYPT_URING_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum uring_queue_engine { URING_QUEUE_PER_THREAD, URING_QUEUE_SHARED, URING_QUEUE_SYNC };

enum uring_queue_opcode {
  URING_QUEUE_READ,
  URING_QUEUE_WRITE,
  URING_QUEUE_FDATASYNC,
};

#define URING_QUEUE_MAX_FDS 2

/* One operation. The caller fills the first block; uring_queue_run fills the results. */
struct uring_queue_op {
  enum uring_queue_opcode opcode;
  unsigned fd_index;          /* which of the queue's descriptors (0..nfds-1) */
  int rw_flags;               /* URING_QUEUE_WRITE: RWF_DSYNC for a FUA write; else 0 */
  void *buf;
  uint64_t len;
  uint64_t offset;
  uint64_t min_len;           /* reads: bytes that must be read; end of file after that is
                               * accepted (direct-I/O reads of a final partial block). 0 = len */
  /* results */
  int error;                  /* 0 or a positive errno */
  uint64_t done;              /* bytes transferred */
  /* private to uring-queue.c */
  unsigned retries;
  bool again;                 /* needs resubmission */
  void *waiter;               /* URING_QUEUE_SHARED: the batch this op belongs to */
};

struct uring_queue_config {
  enum uring_queue_engine engine;
  unsigned depth;             /* SQEs in flight per ring (1..4096) */
  int fds[URING_QUEUE_MAX_FDS];
  unsigned nfds;
};

struct uring_queue_stats {
  uint64_t ops;               /* operations completed (resubmissions counted again) */
  uint64_t enters;            /* io_uring_enter calls (or syscalls in URING_QUEUE_SYNC) */
  uint64_t batches;           /* submission rounds */
  uint64_t resubmits;         /* short transfers, -EAGAIN and -EINTR retried */
  unsigned rings;
  bool fixed_files;
};

struct uring_queue;

/* Probe whether io_uring can be used at all: 0, or -errno (-ENOSYS: no io_uring in this kernel,
 * -EPERM: disabled by kernel.io_uring_disabled or a seccomp policy). */
int uring_queue_probe (void);

/* Create a queue. With URING_QUEUE_PER_THREAD the rings come later, one per calling thread. */
int uring_queue_new (struct uring_queue **qp, const struct uring_queue_config *config);
void uring_queue_free (struct uring_queue *q);

/* Run N operations, as many in flight at once as the depth allows, and wait for all of them.
 * Returns 0 if every operation completed in full, else -errno of the first one that failed
 * (each op's error field says which). */
int uring_queue_run (struct uring_queue *q, struct uring_queue_op *ops, size_t n);

enum uring_queue_engine uring_queue_engine (const struct uring_queue *q);
const char *uring_queue_engine_name (enum uring_queue_engine engine);
void uring_queue_get_stats (struct uring_queue *q, struct uring_queue_stats *stats);

#endif /* NBDCRYPT_URING_QUEUE_H */
