/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-thread XTS contexts and buffers for a multi-threaded server holding any number of
 * volumes, one pool per volume key: each thread has one state, whatever the number of pools
 * (its bounce and sector buffers and a small cache of contexts), made on its first request
 * and freed when the thread exits. A pool's context in a thread is a copy of the pool's
 * master (keyed once, at start; ncr_xts_dup shares read-only key schedules and copies
 * OpenSSL's contexts into locked pages), made on the thread's first use of the pool, dropped
 * (cleansed) when the thread has used several other pools since, when the thread exits, or
 * when the pool is freed. Nothing is allocated or keyed per request, up to
 * NCR_XTS_BOUNCE_KEEP: a bounce buffer grows to the largest request, and is cut back to that
 * size once a larger request is done, so that idle threads (nbdkit keeps 16 per connection)
 * do not each keep the largest request's size until their connection closes.
 * Thread safety: any thread may use any pool; ncr_xts_pool_free needs only that no thread
 * is using that pool's context (other pools may be in use meanwhile). */
#ifndef NBDCRYPT_XTS_POOL_H
#define NBDCRYPT_XTS_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "xts.h"

/* What a thread's bounce buffer keeps between requests: a 1 MiB request, aligned or not,
 * and a 2 MiB aligned one never reallocate. */
#define NCR_XTS_BOUNCE_KEEP (4 * 1024 * 1024)

/* A thread's state, the same for every pool it uses. */
struct ncr_xts_thread {
  struct ncr_xts *xts;          /* this thread's context for the pool last asked for */
  uint8_t *sector;              /* one sector of scratch (partial-sector reads): 4096
                                 * bytes, of which the pool's sector size is used and wiped
                                 * when xts changes to another pool's */
  uint8_t *bounce;              /* ciphertext staging for writes; bounce_size bytes */
  size_t bounce_size;
};

struct ncr_xts_pool;

/* Take ownership of master (freed with the pool). sector_size at most 4096. Returns 0 or
 * -errno. */
int ncr_xts_pool_new (struct ncr_xts *master, unsigned sector_size,
                      struct ncr_xts_pool **out);

/* The calling thread's state, created on first use, with ->xts set to this thread's
 * context for p (made on the thread's first use of p). ->xts stays p's context until the
 * thread's next call, for any pool. One uncontended lock of a per-thread mutex when p's
 * context is cached. NULL (errno, ncr_last_error) on failure. */
struct ncr_xts_thread *ncr_xts_pool_thread (struct ncr_xts_pool *p);

/* Make t->bounce at least size bytes (its old contents are not kept). Returns 0 or -errno. */
int ncr_xts_thread_bounce (struct ncr_xts_thread *t, size_t size);

/* The request is done with t->bounce: if it is larger than NCR_XTS_BOUNCE_KEEP, give the
 * memory past that back to the system (the buffer is mapped memory, so this always lowers
 * the process's RSS, whatever malloc would have kept). Never fails. */
void ncr_xts_thread_bounce_trim (struct ncr_xts_thread *t);

/* Free every thread's copy of the master, and the master (key schedules cleansed); a
 * thread whose ->xts was one of them gets NULL there and its sector buffer wiped. No thread
 * may be using the pool's context, nor use the pool any more; other pools may be in use in
 * any thread meanwhile. NULL is fine. */
void ncr_xts_pool_free (struct ncr_xts_pool *p);

/* Internal, for the tests: how many threads' copies of masters are alive in the process,
 * all pools together. */
size_t ncr_xts_pool_live_copies (void);

#endif /* NBDCRYPT_XTS_POOL_H */
