/* SPDX-License-Identifier: BSD-3-Clause */
/* A regular file or block device served through uring-queue: buffered or O_DIRECT I/O
 * (bounce buffers and read-modify-write for unaligned requests), zero, trim, extents, cache.
 * No nbdkit dependency: functions return 0 or -errno with a message in ncr_last_error(). */
#ifndef NBDCRYPT_URING_FILE_H
#define NBDCRYPT_URING_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "uring-queue.h"

struct uf_config {
  const char *path;
  bool direct;                /* O_DIRECT */
  bool readonly;              /* open O_RDONLY */
  enum uq_engine engine;
  unsigned depth;             /* uring-queue depth */
  uint64_t split_size;        /* large requests are cut into pieces this big; 0: 256 KiB */
  uint64_t readahead;         /* direct: bytes prefetched ahead of a sequential stream
                               * (uring-readahead.h); 0: none */
  bool mmap;                  /* buffered: reads copy from a shared mapping (uring-map.h) */
};

/* uf_zero flags */
#define UF_ZERO_MAY_TRIM 1u   /* the range may be deallocated */
#define UF_ZERO_FAST     2u   /* fail with -ENOTSUP rather than write zeros */
#define UF_FUA           4u

struct uf;

/* Open PATH. A writable open refused with EACCES/EROFS/EPERM falls back to read-only
 * (uf_can_write says which). */
int uf_open (struct uf **ufp, const struct uf_config *config);
void uf_close (struct uf *uf);

int64_t uf_size (struct uf *uf);            /* bytes, or -errno */
bool uf_can_write (const struct uf *uf);
bool uf_is_block_device (const struct uf *uf);
bool uf_can_extents (struct uf *uf);
unsigned uf_direct_alignment (const struct uf *uf);   /* direct I/O block size; 1 if buffered */
/* 0 when buffered reads use the mapping or none was asked for; else why it failed (errno,
 * message in ncr_last_error() right after uf_open). */
int uf_map_error (const struct uf *uf);
struct uq *uf_queue (struct uf *uf);
struct ura *uf_readahead (struct uf *uf);             /* NULL when there is none */

int uf_pread (struct uf *uf, void *buf, uint32_t count, uint64_t offset);
int uf_pwrite (struct uf *uf, const void *buf, uint32_t count, uint64_t offset, unsigned flags);
int uf_flush (struct uf *uf);
int uf_trim (struct uf *uf, uint32_t count, uint64_t offset, unsigned flags);
int uf_zero (struct uf *uf, uint32_t count, uint64_t offset, unsigned flags);
int uf_cache (struct uf *uf, uint32_t count, uint64_t offset);

/* Report [offset, offset+count) as data/hole runs (SEEK_DATA/SEEK_HOLE); stops after the first
 * run when req_one. The callback returns 0 or -errno. */
typedef int (*uf_extent_fn) (void *opaque, uint64_t offset, uint64_t length, bool hole);
int uf_extents (struct uf *uf, uint32_t count, uint64_t offset, bool req_one,
                uf_extent_fn fn, void *opaque);

#endif /* NBDCRYPT_URING_FILE_H */
