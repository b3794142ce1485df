/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-thread XTS contexts and buffers for a multi-threaded server: each thread gets its own
 * copy of a master context (keyed once, at start; ncr_xts_dup shares read-only key schedules
 * and copies OpenSSL's contexts into locked pages) and its own bounce and sector buffers, made
 * on the thread's first request and freed when the thread exits or the pool is freed.
 * Nothing is allocated or keyed per request; a bounce buffer only grows. */
#ifndef NBDCRYPT_XTS_POOL_H
#define NBDCRYPT_XTS_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "xts.h"

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

/* Make t->bounce at least size bytes (grows, never shrinks). Returns 0 or -errno. */
int ncr_xts_thread_bounce (struct ncr_xts_thread *t, size_t size);

/* Free every thread's state and the master (key schedules cleansed). No thread may use the
 * pool any more. NULL is fine. */
void ncr_xts_pool_free (struct ncr_xts_pool *p);

#endif /* NBDCRYPT_XTS_POOL_H */
