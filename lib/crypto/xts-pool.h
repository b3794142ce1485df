/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-thread XTS contexts and buffers for a multi-threaded server: each thread gets its own
 * copy of a master context (keyed once, at start; ncr_xts_dup shares read-only key schedules
 * and copies OpenSSL's contexts into locked pages) and its own bounce and sector buffers, made
 * on the thread's first request and freed when the thread exits or the pool is freed.
 * Nothing is allocated or keyed per request, up to NCR_XTS_BOUNCE_KEEP: a bounce buffer grows
 * to the largest request, and is cut back to that size once a larger request is done, so
 * that idle threads (nbdkit keeps 16 per connection) do not each keep the largest request's
 * size until their connection closes. */
#ifndef NBDCRYPT_XTS_POOL_H
#define NBDCRYPT_XTS_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "xts.h"

/* What a thread's bounce buffer keeps between requests: a 1 MiB request, aligned or not,
 * and a 2 MiB aligned one never reallocate. */
#define NCR_XTS_BOUNCE_KEEP (4 * 1024 * 1024)

struct ncr_xts_thread {
  struct ncr_xts *xts;          /* this thread's context */
  uint8_t *sector;              /* one sector of scratch (partial-sector reads) */
  uint8_t *bounce;              /* ciphertext staging for writes; bounce_size bytes */
  size_t bounce_size;
};

struct ncr_xts_pool;

/* Take ownership of master (freed with the pool). Returns 0 or -errno. */
int ncr_xts_pool_new (struct ncr_xts *master, unsigned sector_size,
                      struct ncr_xts_pool **out);

/* The calling thread's state, created on first use. NULL (errno, ncr_last_error) on
 * failure. */
struct ncr_xts_thread *ncr_xts_pool_thread (struct ncr_xts_pool *p);

/* Make t->bounce at least size bytes (its old contents are not kept). Returns 0 or -errno. */
int ncr_xts_thread_bounce (struct ncr_xts_thread *t, size_t size);

/* The request is done with t->bounce: if it is larger than NCR_XTS_BOUNCE_KEEP, give the
 * memory past that back to the system (the buffer is mapped memory, so this always lowers
 * the process's RSS, whatever malloc would have kept). Never fails. */
void ncr_xts_thread_bounce_trim (struct ncr_xts_thread *t);

/* Free every thread's state and the master (key schedules cleansed). No thread may use the
 * pool any more. NULL is fine. */
void ncr_xts_pool_free (struct ncr_xts_pool *p);

#endif /* NBDCRYPT_XTS_POOL_H */
