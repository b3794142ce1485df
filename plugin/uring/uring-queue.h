/* SPDX-License-Identifier: BSD-3-Clause */
/* io_uring request queue for one file: batches of reads, writes and fsyncs run to completion,
 * short transfers and -EAGAIN/-EINTR resubmitted. No nbdkit dependency.
 *
 * A caller (an nbdkit worker thread) hands uq_run() a batch of operations and blocks until all
 * of them are done, which is how nbdkit's synchronous plugin API works. Three engines:
 *
 *  UQ_PER_THREAD  each calling thread gets its own ring (created on first use, thread-affine,
 *                 IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN where the kernel has them); a batch is
 *                 submitted and waited for in one io_uring_enter.  The default: fewest syscalls
 *                 and no cross-thread wakeups (see docs/uring.md for the measurements).
 *  UQ_SHARED      one ring per queue; callers submit under a lock, a completion thread owns the
 *                 completion queue and wakes each caller (futex) when its batch is done.
 *  UQ_SYNC        pread/pwrite/fdatasync: the fallback when io_uring is missing or disabled.
 *
 * Every engine registers the queue's descriptors as fixed files where the kernel allows it.
 * Functions return 0 or -errno, with a message retrievable by ncr_last_error(). */
#ifndef NBDCRYPT_URING_QUEUE_H
#define NBDCRYPT_URING_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum uq_engine { UQ_PER_THREAD, UQ_SHARED, UQ_SYNC };

enum uq_opcode {
  UQ_READ,
  UQ_WRITE,
  UQ_FDATASYNC,
};

#define UQ_MAX_FDS 2

/* One operation. The caller fills the first block; uq_run fills the results. */
struct uq_op {
  enum uq_opcode opcode;
  unsigned fd_index;          /* which of the queue's descriptors (0..nfds-1) */
  int rw_flags;               /* UQ_WRITE: RWF_DSYNC for a FUA write; else 0 */
  void *buf;
  uint64_t len;
  uint64_t offset;
  uint64_t min_len;           /* UQ_READ: bytes that must be read; end of file after that is
                               * accepted (direct-I/O reads of a final partial block). 0 = len */
  /* results */
  int error;                  /* 0 or a positive errno */
  uint64_t done;              /* bytes transferred */
  /* private to uring-queue.c */
  unsigned retries;
  bool again;                 /* needs resubmission */
  void *waiter;               /* UQ_SHARED: the batch this op belongs to */
};

struct uq_config {
  enum uq_engine engine;
  unsigned depth;             /* SQEs in flight per ring (1..4096) */
  int fds[UQ_MAX_FDS];
  unsigned nfds;
};

struct uq_stats {
  uint64_t ops;               /* operations completed (resubmissions counted again) */
  uint64_t enters;            /* io_uring_enter calls (or syscalls in UQ_SYNC) */
  uint64_t batches;           /* submission rounds */
  uint64_t resubmits;         /* short transfers, -EAGAIN and -EINTR retried */
  unsigned rings;
  bool fixed_files;
};

struct uq;

/* Probe whether io_uring can be used at all: 0, or -errno (-ENOSYS: no io_uring in this kernel,
 * -EPERM: disabled by kernel.io_uring_disabled or a seccomp policy). */
int uq_probe (void);

/* Create a queue. With UQ_PER_THREAD the rings come later, one per calling thread. */
int uq_new (struct uq **qp, const struct uq_config *config);
void uq_free (struct uq *q);

/* Run N operations, as many in flight at once as the depth allows, and wait for all of them.
 * Returns 0 if every operation completed in full, else -errno of the first one that failed
 * (each op's error field says which). */
int uq_run (struct uq *q, struct uq_op *ops, size_t n);

enum uq_engine uq_engine (const struct uq *q);
const char *uq_engine_name (enum uq_engine engine);
void uq_get_stats (struct uq *q, struct uq_stats *stats);

#endif /* NBDCRYPT_URING_QUEUE_H */
