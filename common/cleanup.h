/* SPDX-License-Identifier: BSD-3-Clause */
/* Scope-bound cleanup helpers: free, close, unlock and wipe on every exit path. */
#ifndef NBDCRYPT_CLEANUP_H
#define NBDCRYPT_CLEANUP_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void
cleanup_free (void *ptr)
{
  free (*(void **) ptr);
}
#define CLEANUP_FREE __attribute__ ((cleanup (cleanup_free)))

static inline void
cleanup_fclose (FILE **fp)
{
  if (*fp)
    fclose (*fp);
}
#define CLEANUP_FCLOSE __attribute__ ((cleanup (cleanup_fclose)))

static inline void
cleanup_close (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}
#define CLEANUP_CLOSE __attribute__ ((cleanup (cleanup_close)))

/* Wipe a stack object (array or struct) that held a secret, whichever way the scope ends:
 *   uint8_t key[64]; CLEANUP_WIPE (key);
 * The descriptor is declared after the object, so it is cleaned up (wiped) first. */
struct cleanup_wipe_desc { void *p; size_t n; };
static inline void
cleanup_wipe_desc (struct cleanup_wipe_desc *d)
{
  explicit_bzero (d->p, d->n);
}
#define CLEANUP_CONCAT_(a, b) a##b
#define CLEANUP_CONCAT(a, b) CLEANUP_CONCAT_ (a, b)
#define CLEANUP_WIPE(var)                                               \
  __attribute__ ((cleanup (cleanup_wipe_desc)))                         \
  struct cleanup_wipe_desc CLEANUP_CONCAT (cleanup_wipe_, __LINE__) =   \
    { &(var), sizeof (var) }

static inline void
cleanup_unlock (pthread_mutex_t **m)
{
  pthread_mutex_unlock (*m);
}
#define ACQUIRE_LOCK_FOR_CURRENT_SCOPE(mutex)                           \
  __attribute__ ((cleanup (cleanup_unlock)))                            \
  pthread_mutex_t *CLEANUP_CONCAT (cleanup_lock_, __LINE__) = (mutex);  \
  pthread_mutex_lock (CLEANUP_CONCAT (cleanup_lock_, __LINE__))

/* The same for a read-write lock, held shared or exclusive until the scope ends (nbdkit's
 * ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE / ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE): no early return or
 * goto can leave it held. */
static inline void
cleanup_rwlock_unlock (pthread_rwlock_t **l)
{
  pthread_rwlock_unlock (*l);
}
#define ACQUIRE_RWLOCK_(rwlock, how)                                            \
  __attribute__ ((cleanup (cleanup_rwlock_unlock)))                             \
  pthread_rwlock_t *CLEANUP_CONCAT (cleanup_rwlock_, __LINE__) = (rwlock);      \
  how (CLEANUP_CONCAT (cleanup_rwlock_, __LINE__))
#define ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE(rwlock) ACQUIRE_RWLOCK_ (rwlock, pthread_rwlock_rdlock)
#define ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE(rwlock) ACQUIRE_RWLOCK_ (rwlock, pthread_rwlock_wrlock)

#endif /* NBDCRYPT_CLEANUP_H */
