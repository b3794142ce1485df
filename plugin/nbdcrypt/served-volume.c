/* SPDX-License-Identifier: BSD-3-Clause */
/* Per served volume: geometry, engine, write ordering, revocation (see served-volume.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cleanup.h"
#include "errors.h"
#include "secmem.h"
#include "served-volume.h"

int
served_new (struct volume_session *s, enum ncr_cipher cipher, unsigned sector_size,
            uint64_t data_offset, struct served_volume **out)
{
  struct served_volume *v = calloc (1, sizeof *v);
  pthread_rwlockattr_t a;

  if (v == NULL)
    return ncr_error (ENOMEM, "out of memory");
  v->s = s;
  v->cipher = cipher;
  v->sector_size = sector_size;
  v->data_offset = data_offset;
  if (s && s->has_uuid) {
    char uuid[37];
    volume_uuid_str (s->uuid, uuid);
    snprintf (v->description, sizeof v->description, "nbdcrypt volume %s, %s, %u-byte sectors",
              uuid, ncr_cipher_name (cipher), sector_size);
  }
  else
    snprintf (v->description, sizeof v->description, "nbdcrypt headerless volume, %s, "
              "%u-byte sectors", ncr_cipher_name (cipher), sector_size);
  pthread_rwlockattr_init (&a);
  pthread_rwlockattr_setkind_np (&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&v->key_lock, &a);
  pthread_rwlockattr_destroy (&a);
  ncr_rangelock_init (&v->write_lock);
  pthread_mutex_init (&v->reenc_lock, NULL);
  pthread_cond_init (&v->reenc_cond, NULL);
  *out = v;
  return 0;
}

/* An engine keyed from key: a pool of per-thread copies (or, check_only, nothing kept). */
static int
new_pool (struct served_volume *v, const uint8_t *key, size_t key_len, bool check_only,
          struct ncr_xts_pool **out)
{
  struct ncr_xts *master;
  int r;

  *out = NULL;
  if ((r = ncr_xts_new (v->cipher, key, key_len, v->sector_size, &master)) < 0)
    return r;
  v->engine = ncr_xts_impl (master);
  if (check_only) {
    ncr_xts_free (master);
    return 0;
  }
  if ((r = ncr_xts_pool_new (master, v->sector_size, out)) < 0)
    ncr_xts_free (master);
  return r;
}

static int
key_engine (struct served_volume *v, const uint8_t *key, size_t key_len, bool check_only)
{
  struct ncr_xts_pool *p;
  int r;

  if ((r = new_pool (v, key, key_len, check_only, &p)) < 0 || check_only)
    return r;
  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&v->key_lock);
  ncr_xts_pool_free (v->pool);
  v->pool = p;
  return 0;
}

int
served_key (struct served_volume *v, const uint8_t *key, size_t key_len, bool check_only)
{
  int r = key_engine (v, key, key_len, check_only);

  /* The key and its round keys went through vector registers and stack frames just now:
   * clear them (see secmem.h). */
  secmem_scrub_cpu ();
  return r;
}

bool
served_revoked (const struct served_volume *v)
{
  return __atomic_load_n (&v->keys_revoked, __ATOMIC_ACQUIRE) != 0;
}

void
served_wipe_keys (struct served_volume *v)
{
  __atomic_store_n (&v->keys_revoked, 1, __ATOMIC_RELEASE);
  pthread_mutex_lock (&v->reenc_lock);
  pthread_cond_broadcast (&v->reenc_cond);      /* requests waiting for a run: fail now */
  pthread_mutex_unlock (&v->reenc_lock);
  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&v->key_lock);
  ncr_xts_pool_free (v->pool);  /* the master and every thread's copy, cleansed */
  v->pool = NULL;
  ncr_xts_pool_free (v->next_pool);
  v->next_pool = NULL;
  secmem_scrub_cpu ();          /* this thread's registers and stack (see secmem.h) */
}

int
served_reenc_begin (struct served_volume *v, const uint8_t *next_key, size_t key_len,
                    bool wait)
{
  struct ncr_xts_pool *p;
  int r = new_pool (v, next_key, key_len, false, &p);

  secmem_scrub_cpu ();
  if (r < 0)
    return r;
  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&v->key_lock);
  if (served_revoked (v)) {
    ncr_xts_pool_free (p);
    return ncr_error (EPERM, "the volume key was revoked");
  }
  ncr_xts_pool_free (v->next_pool);
  v->next_pool = p;
  __atomic_store_n (&v->watermark, 0, __ATOMIC_RELEASE);
  __atomic_store_n (&v->reenc, wait ? REENC_WAIT : REENC_RUN, __ATOMIC_RELEASE);
  return 0;
}

void
served_reenc_ready (struct served_volume *v, uint64_t watermark)
{
  pthread_mutex_lock (&v->reenc_lock);
  __atomic_store_n (&v->watermark, watermark, __ATOMIC_RELEASE);
  __atomic_store_n (&v->reenc, REENC_RUN, __ATOMIC_RELEASE);
  pthread_cond_broadcast (&v->reenc_cond);
  pthread_mutex_unlock (&v->reenc_lock);
}

void
served_reenc_end (struct served_volume *v)
{
  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&v->key_lock);
  if (v->next_pool == NULL)
    return;                     /* revoked meanwhile: both engines are gone */
  ncr_xts_pool_free (v->pool);
  v->pool = v->next_pool;
  v->next_pool = NULL;
  __atomic_store_n (&v->reenc, REENC_NONE, __ATOMIC_RELEASE);
  __atomic_store_n (&v->watermark, 0, __ATOMIC_RELEASE);
}

bool
served_reenc_wait (struct served_volume *v)
{
  pthread_mutex_lock (&v->reenc_lock);
  while (__atomic_load_n (&v->reenc, __ATOMIC_ACQUIRE) == REENC_WAIT && !served_revoked (v)) {
    struct timespec t;
    clock_gettime (CLOCK_REALTIME, &t);
    t.tv_sec += 1;
    pthread_cond_timedwait (&v->reenc_cond, &v->reenc_lock, &t);
  }
  pthread_mutex_unlock (&v->reenc_lock);
  return !served_revoked (v);
}

void
served_free (struct served_volume *v)
{
  if (v == NULL)
    return;
  ncr_xts_pool_free (v->pool);
  ncr_xts_pool_free (v->next_pool);
  ncr_rangelock_destroy (&v->write_lock);
  pthread_cond_destroy (&v->reenc_cond);
  pthread_mutex_destroy (&v->reenc_lock);
  pthread_rwlock_destroy (&v->key_lock);
  free (v);
}
