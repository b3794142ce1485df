/* SPDX-License-Identifier: BSD-3-Clause */
/* Readahead for O_DIRECT sequential reads. No nbdkit dependency.
 *
 * With O_DIRECT the kernel does no readahead, so a sequential reader only ever has its own
 * requests in flight, and a client with a few 1 MiB requests outstanding leaves the device
 * mostly idle between them. One struct uring_readahead per open file (per NBD connection) watches
 * the
 * reads; once it sees a sequential stream it keeps WINDOW bytes beyond the furthest read in
 * flight, in CHUNK-sized aligned buffers, read through a ring of its own whose completions a
 * helper thread reaps. A read wholly covered by prefetched chunks (done, or still in flight:
 * then it waits) is copied from them instead of reading the device.
 *
 * Writes never lose to stale prefetched data: every write, zero and trim of the file, from any
 * connection of the process, is bracketed by uring_ra_write_begin / uring_ra_write_end on the
 * file's group (one struct uring_ra_group per file, shared by every readahead of that file). A
 * prefetch that was issued while a write to the file was in flight, or during which one began,
 * is discarded when it completes; chunks overlapping a finished write are dropped (in every
 * connection's readahead of that file) before that write returns. Writes to other files served
 * by the process do not disturb this file's prefetches. Writers outside this process are not
 * seen (like any cache). */
#ifndef NBDCRYPT_URING_READAHEAD_H
#define NBDCRYPT_URING_READAHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct uring_ra_group;

struct uring_ra_config {
  int fd;                     /* O_DIRECT descriptor */
  struct uring_ra_group *group; /* the file's writes (outlives the readahead) */
  uint64_t window;            /* bytes kept in flight ahead of the stream (power of two) */
  uint64_t chunk;             /* prefetch unit, divides window, multiple of align */
  unsigned align;             /* buffer alignment for O_DIRECT */
  uint64_t limit;             /* never prefetch at or beyond this offset (direct_end) */
};

struct uring_ra_stats {
  uint64_t hits;              /* reads served from prefetched chunks */
  uint64_t waits;             /* ... of which waited for a chunk still in flight */
  uint64_t prefetches;        /* chunks read ahead */
  uint64_t discarded;         /* chunks dropped by a write, or stale when they completed */
  uint64_t unused;            /* chunks evicted without ever being read */
};

struct uring_readahead;

/* One per file, before its first readahead; freed after its last. */
int uring_ra_group_new (struct uring_ra_group **gp);
void uring_ra_group_free (struct uring_ra_group *g);

int uring_ra_new (struct uring_readahead **rap, const struct uring_ra_config *config);
void uring_ra_free (struct uring_readahead *ra);

/* A read of [offset, offset+len) (within the limit) into BUF. Returns 1 if it was served from
 * prefetched data, 0 if the caller must read it itself. Either way the read is noted for
 * stream detection and, in a stream, prefetches are started (before the caller's own read,
 * so they run alongside it). Never fails: readahead trouble only means no readahead. */
int uring_ra_read (struct uring_readahead *ra, void *buf, uint64_t len, uint64_t offset);

/* Any write to the file (all connections): begin before touching the file, end after. */
void uring_ra_write_begin (struct uring_ra_group *g);
void uring_ra_write_end (struct uring_ra_group *g, uint64_t offset, uint64_t len);

void uring_ra_get_stats (struct uring_readahead *ra, struct uring_ra_stats *stats);

#endif /* NBDCRYPT_URING_READAHEAD_H */
