/* SPDX-License-Identifier: BSD-3-Clause */
/* What the filter keeps per served volume: its geometry, its engine (per-thread contexts copied
 * from one keyed master), the lock that orders its writes, and the lock that lets a revocation
 * wipe its keys while requests run. No nbdkit dependency: functions return -errno with a
 * message in ncr_last_error(). */
#ifndef NBDCRYPT_SERVED_VOLUME_H
#define NBDCRYPT_SERVED_VOLUME_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "rangelock.h"
#include "volume-session.h"
#include "xts-pool.h"
#include "xts.h"

struct served_volume {
  struct volume_session *s;     /* NULL for key-file= (headerless, no session) */
  enum ncr_cipher cipher;
  unsigned sector_size;
  uint64_t data_offset;         /* bytes of the plugin before the encrypted area */
  char description[160];        /* for NBD clients: UUID, cipher, sector size */
  const char *engine;           /* the XTS implementation keyed (ncr_xts_impl) */

  /* One engine context per thread, copied from a master keyed once (served_key). */
  struct ncr_xts_pool *pool;

  /* Revocation (on-revoke=disconnect or shutdown) wipes the key schedules and the DEK while
   * requests run on other threads. Every request that uses the engine holds key_lock shared
   * from before it looks at the pool until its last use of it, and the wipe holds it
   * exclusively: a request either finishes with intact key schedules or finds pool == NULL
   * and fails - it never encrypts with a schedule being zeroed (garbage on disk) or freed.
   * keys_revoked is set before the wipe waits for the lock, so that requests arriving
   * meanwhile fail at once; the lock prefers the writer, so that a steady stream of requests
   * cannot hold the wipe off. */
  pthread_rwlock_t key_lock;
  int keys_revoked;             /* __atomic access */

  /* Write ordering: a partial-sector write is a read-modify-write and holds its sectors
   * exclusively; every other write holds its sectors shared (see rangelock.h). */
  struct ncr_rangelock write_lock;
};

/* A volume's serving state, not keyed yet. s may be NULL (key-file=). */
int served_new (struct volume_session *s, enum ncr_cipher cipher, unsigned sector_size,
                uint64_t data_offset, struct served_volume **out);

/* Key the engine from key (the caller wipes key). check_only: build a context and drop it
 * again (a bad key is reported before the server forks; the key schedules are made in the
 * process that serves). The key and round keys that passed through registers and the stack
 * are scrubbed. Returns 0 or -errno. */
int served_key (struct served_volume *v, const uint8_t *key, size_t key_len, bool check_only);

/* True once the volume's keys were wiped by a revocation. */
bool served_revoked (const struct served_volume *v);

/* Wipe the key schedules (every thread's copy) at once; requests then fail. The caller wipes
 * the DEK itself (vset_wipe_key). */
void served_wipe_keys (struct served_volume *v);

void served_free (struct served_volume *v);

#endif /* NBDCRYPT_SERVED_VOLUME_H */
