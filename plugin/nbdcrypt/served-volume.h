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

  /* Online re-encryption (filter-reencrypt.c runs it). While reenc is not REENC_NONE, data
   * sectors below watermark are under the next DEK (next_pool), the others under the DEK
   * (pool); the run holds the zone it rewrites exclusively in write_lock, and every request,
   * reads too, holds its sectors in it, so that a request sees a sector and the watermark
   * from the same side of a zone's rewrite. next_pool and the switch to it change under
   * key_lock held exclusively, like pool. REENC_WAIT: requests wait (a zone left half done by
   * a crash is being resolved before anything is served). */
  struct ncr_xts_pool *next_pool;
  int reenc;                    /* __atomic: enum served_reenc */
  uint64_t watermark;           /* __atomic */
  pthread_mutex_t reenc_lock;
  pthread_cond_t reenc_cond;    /* broadcast when reenc leaves REENC_WAIT */
  bool reenc_warned;            /* the run thread's: said why a run cannot resume */
  bool polled;                  /* the run thread's: it has looked at the volume once */
};

enum served_reenc { REENC_NONE, REENC_WAIT, REENC_RUN };

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

/* A run starts: key next_pool from next_key (the caller wipes it), watermark 0, state wait
 * (a pending zone to resolve first) or run. 0 or -errno. */
int served_reenc_begin (struct served_volume *v, const uint8_t *next_key, size_t key_len,
                        bool wait);

/* The run serves: watermark set, waiting requests released. */
void served_reenc_ready (struct served_volume *v, uint64_t watermark);

/* The run ended (every sector under the next DEK): the next DEK's engine becomes the engine,
 * the old one is wiped. */
void served_reenc_end (struct served_volume *v);

/* A request: wait while the run's state is REENC_WAIT (false if the keys were revoked
 * meanwhile). The caller holds key_lock shared. */
bool served_reenc_wait (struct served_volume *v);

void served_free (struct served_volume *v);

#endif /* NBDCRYPT_SERVED_VOLUME_H */
