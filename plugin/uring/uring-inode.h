/* SPDX-License-Identifier: BSD-3-Clause */
/* What every open of one file in the process shares, whichever connection and export name it
 * came through: the locks that order its writers and its readahead write tracking. Looked up
 * by identity (device and inode; a block device by its device number), refcounted.
 * No nbdkit dependency: functions return 0 or -errno with a message in ncr_last_error(). */
#ifndef NBDCRYPT_URING_INODE_H
#define NBDCRYPT_URING_INODE_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>

struct uring_ra_group;

struct uring_inode {
  /* Unaligned direct writes read, modify and write whole blocks; they take this lock for
   * writing, aligned direct writes (and zero, trim) take it for reading, so a block is never
   * rewritten from a stale copy. Per file, not per connection: every connection writing the
   * file (multi-conn, or one export opened twice) must be ordered by the same lock. */
  pthread_rwlock_t rmw_lock;
  /* Buffered writes to a regular file are serialized here (uring-file.c says why). */
  pthread_mutex_t buffered_write_lock;
  struct uring_ra_group *ra;  /* every readahead of this file watches these writes */

  /* private to uring-inode.c */
  bool bdev;
  dev_t dev;
  ino_t ino;
  unsigned refs;
  struct uring_inode *next;
};

/* The shared state of the file whose fstat is ST (a regular file or a block device): the
 * one already in use, or a new one. Every get is paired with a put. */
int uring_inode_get (struct uring_inode **ip, const struct stat *st);
void uring_inode_put (struct uring_inode *ino);

#endif /* NBDCRYPT_URING_INODE_H */
