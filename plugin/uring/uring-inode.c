/* SPDX-License-Identifier: BSD-3-Clause */
/* The per-file shared state of the uring plugin: a refcounted list keyed by file identity
 * (see uring-inode.h). Looked up once per open, never on the I/O path. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "uring-inode.h"
#include "uring-readahead.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct uring_inode *all;    /* those in use: as many as distinct files open */

/* Identity: a block device is the device it names, whichever node it was opened through; a
 * file is its inode. An entry exists only while an open descriptor holds the file, so its
 * inode number cannot be reused meanwhile. */
static bool
same (const struct uring_inode *ino, const struct stat *st)
{
  if (S_ISBLK (st->st_mode))
    return ino->bdev && ino->dev == st->st_rdev;
  return !ino->bdev && ino->dev == st->st_dev && ino->ino == st->st_ino;
}

int
uring_inode_get (struct uring_inode **ip, const struct stat *st)
{
  struct uring_inode *ino;
  pthread_rwlockattr_t attr;
  int err;

  pthread_mutex_lock (&lock);
  for (ino = all; ino != NULL; ino = ino->next)
    if (same (ino, st)) {
      ino->refs++;
      pthread_mutex_unlock (&lock);
      *ip = ino;
      return 0;
    }
  ino = calloc (1, sizeof *ino);
  if (ino == NULL) {
    pthread_mutex_unlock (&lock);
    return ncr_error (ENOMEM, "out of memory");
  }
  err = uring_ra_group_new (&ino->ra);
  if (err < 0) {
    pthread_mutex_unlock (&lock);
    free (ino);
    return ncr_error (-err, "out of memory");
  }
  pthread_rwlockattr_init (&attr);
  /* Writers (read-modify-write) must not starve behind a stream of aligned writes. */
  pthread_rwlockattr_setkind_np (&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&ino->rmw_lock, &attr);
  pthread_rwlockattr_destroy (&attr);
  pthread_mutex_init (&ino->buffered_write_lock, NULL);
  ino->bdev = S_ISBLK (st->st_mode);
  ino->dev = ino->bdev ? st->st_rdev : st->st_dev;
  ino->ino = ino->bdev ? 0 : st->st_ino;
  ino->refs = 1;
  ino->next = all;
  all = ino;
  pthread_mutex_unlock (&lock);
  *ip = ino;
  return 0;
}

void
uring_inode_put (struct uring_inode *ino)
{
  if (ino == NULL)
    return;
  pthread_mutex_lock (&lock);
  if (--ino->refs > 0) {
    pthread_mutex_unlock (&lock);
    return;
  }
  for (struct uring_inode **pp = &all; *pp != NULL; pp = &(*pp)->next)
    if (*pp == ino) {
      *pp = ino->next;
      break;
    }
  pthread_mutex_unlock (&lock);
  pthread_rwlock_destroy (&ino->rmw_lock);
  pthread_mutex_destroy (&ino->buffered_write_lock);
  uring_ra_group_free (ino->ra);
  free (ino);
}
