/* SPDX-License-Identifier: BSD-3-Clause */
/* A regular file or block device served through uring-queue: buffered or O_DIRECT I/O
 * (bounce buffers and read-modify-write for unaligned requests), zero, trim, extents, cache.
 * No nbdkit dependency: functions return 0 or -errno with a message in ncr_last_error(). */
#ifndef NBDCRYPT_URING_FILE_H
#define NBDCRYPT_URING_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "uring-queue.h"

struct uring_file_config {
  const char *path;
  bool in_dir;                /* PATH is a name in the directory DIRFD (one component): a
                               * symbolic link or a FIFO there is refused, not opened */
  int dirfd;
  bool direct;                /* O_DIRECT */
  bool readonly;              /* open O_RDONLY */
  enum uring_queue_engine engine;
  unsigned depth;             /* uring-queue depth */
  uint64_t split_size;        /* large requests are cut into pieces this big; 0: 256 KiB */
  uint64_t readahead;         /* direct: bytes prefetched ahead of a sequential stream
                               * (uring-readahead.h); 0: none */
  bool mmap;                  /* buffered: reads copy from a shared mapping (uring-map.h) */
};

/* uring_file_zero flags */
#define URING_FILE_ZERO_MAY_TRIM 1u   /* the range may be deallocated */
#define URING_FILE_ZERO_FAST     2u   /* fail with -ENOTSUP rather than write zeros */
#define URING_FILE_FUA           4u

struct uring_file;

/* Open PATH. A writable open refused with EACCES/EROFS/EPERM falls back to read-only
 * (uring_file_can_write says which). */
int uring_file_open (struct uring_file **ufp, const struct uring_file_config *config);
void uring_file_close (struct uring_file *uf);

int64_t uring_file_size (struct uring_file *uf);            /* bytes, or -errno */
bool uring_file_can_write (const struct uring_file *uf);
bool uring_file_is_block_device (const struct uring_file *uf);
bool uring_file_can_extents (struct uring_file *uf);
/* The direct I/O block size; 1 if buffered. */
unsigned uring_file_direct_alignment (const struct uring_file *uf);
/* 0 when buffered reads use the mapping or none was asked for; else why it failed (errno,
 * message in ncr_last_error() right after uring_file_open). */
int uring_file_map_error (const struct uring_file *uf);
struct uring_queue *uring_file_queue (struct uring_file *uf);
/* NULL when there is none. */
struct uring_readahead *uring_file_readahead (struct uring_file *uf);

int uring_file_pread (struct uring_file *uf, void *buf, uint32_t count, uint64_t offset);
int uring_file_pwrite (struct uring_file *uf, const void *buf, uint32_t count, uint64_t offset,
                       unsigned flags);
int uring_file_flush (struct uring_file *uf);
int uring_file_trim (struct uring_file *uf, uint32_t count, uint64_t offset, unsigned flags);
int uring_file_zero (struct uring_file *uf, uint32_t count, uint64_t offset, unsigned flags);
int uring_file_cache (struct uring_file *uf, uint32_t count, uint64_t offset);

/* Report [offset, offset+count) as data/hole runs (SEEK_DATA/SEEK_HOLE); stops after the first
 * run when req_one. The callback returns 0 or -errno. */
typedef int (*uring_file_extent_fn) (void *opaque, uint64_t offset, uint64_t length, bool hole);
int uring_file_extents (struct uring_file *uf, uint32_t count, uint64_t offset, bool req_one,
                        uring_file_extent_fn fn, void *opaque);

#endif /* NBDCRYPT_URING_FILE_H */
