/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt filter: nbdkit glue for inline AES-XTS (dm-crypt aes-xts-plain64) over any plugin.
 *
 * Clients see plaintext, the plugin below sees only ciphertext. Export sector n (counted from
 * the start of the export, sector-size bytes) is XTS-encrypted with tweak n, as dm-crypt's
 * aes-xts-plain64 does (for 4096-byte sectors, counting 4096-byte sectors, as LUKS2 does).
 * Each connection serves one volume (filter-volumes.c: which one, its keys and life cycle;
 * served-volume.h: its engine and locks); the cipher lives in lib/crypto. This file maps
 * nbdkit requests onto whole sectors of the connection's volume. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-filter.h>

#include "attributes.h"
#include "cleanup.h"
#include "errors.h"
#include "filter.h"
#include "filter-read.h"
#include "minmax.h"
#include "rangelock.h"
#include "volume-session.h"
#include "xts-pool.h"
#include "xts.h"

/* Write-zeroes is done in pieces of at most this much encrypted zeros, so that a huge zero
 * request needs only a bounded bounce buffer. */
#define ZERO_CHUNK (1024 * 1024)
_Static_assert (ZERO_CHUNK <= NCR_XTS_BOUNCE_KEEP, "a zero piece must fit what threads keep");

/* Write ordering (each volume's write_lock, served-volume.h). A partial-sector write is
 * read-modify-write (read the sector, decrypt, merge, encrypt, write): if any other write
 * reached the same sector between our read and our write, one update would be lost. So a
 * request that does read-modify-write holds its sectors exclusively from its first read to its
 * last write, and every other write (whole sectors, write-zeroes, trim) holds its sectors
 * shared. Only requests that share a sector wait for each other: whole-sector writes never
 * wait for whole-sector writes, and one client's unaligned writes do not slow another
 * client's writes to other sectors (a single process-wide lock did: measured with
 * perf/lock-contention.py, a client's aligned 4 KiB writes were starved outright while another
 * kept one-byte writes in flight elsewhere). Overlapping requests are served in arrival order,
 * so a stream of aligned writes cannot starve an unaligned one. Reads take no lock (a sector
 * is read in one piece below, before or after a write), except during an online
 * re-encryption, when they hold their sectors shared too (see served-volume.h). */

/* A connection: its export name until .prepare, then its volume. */
struct handle {
  char *name;
  struct served_volume *v;
};

static void
nbdcrypt_load (void)
{
  filter_load ();
}

static void
nbdcrypt_unload (void)
{
  filter_unload ();
}

static void *
nbdcrypt_open (nbdkit_next_open *next, nbdkit_context *context, int readonly,
               const char *exportname, int is_tls UNUSED)
{
  struct handle *h;

  if (next (context, readonly, exportname) == -1)
    return NULL;
  if ((h = calloc (1, sizeof *h)) == NULL || (h->name = strdup (exportname)) == NULL) {
    nbdkit_error ("nbdcrypt: out of memory");
    free (h);
    return NULL;
  }
  return h;
}

static void
nbdcrypt_close (void *handle)
{
  struct handle *h = handle;

  free (h->name);
  free (h);
}

/* The connection's volume: found (or opened) through the plugin's export, now ready. */
static int
nbdcrypt_prepare (nbdkit_next *next, void *handle, int readonly UNUSED)
{
  struct handle *h = handle;

  h->v = filter_volume_for (next, h->name);
  return h->v ? 0 : -1;
}

static const char *
nbdcrypt_export_description (nbdkit_next *next UNUSED, void *handle)
{
  struct handle *h = handle;

  return h->v ? nbdkit_strdup_intern (h->v->description) : NULL;
}

#define nbdcrypt_config_help \
  "key-file=PATH              Headerless volume: raw volume key, 64 bytes for\n" \
  "                           aes-256-xts, 32 bytes for aes-128-xts.\n" \
  "cipher=aes-256-xts|aes-128-xts   Cipher (default aes-256-xts).\n" \
  "sector-size=4096|512       Encryption sector size (default 4096).\n" \
  "discard=on|off             Pass whole-sector trims down (default off: trims\n" \
  "                           reveal which blocks are in use).\n" \
  "force-headerless=BOOL      Serve key-file=/key-id= even over a backend that begins\n" \
  "                           with an nbdcrypt or LUKS header (default false).\n" \
  FILTER_CONFIG_HELP_EXTRA \
  SESSION_CONFIG_HELP

static int
nbdcrypt_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

/* A request on a volume whose key was revoked and wiped: EPERM, which NBD carries as is (a
 * refusal by policy, not a media error: nbdkit turns EACCES into EINVAL); the kernel's nbd
 * client reports every error as EIO anyway. Logged once, by the key check, not per request. */
static int
revoked_error (int *err)
{
  nbdkit_debug ("nbdcrypt: request refused: the volume key was revoked and wiped");
  *err = EPERM;
  return -1;
}

/* This thread's engine context and buffers; made on its first request. The caller holds
 * key_lock shared for as long as it uses them. */
static struct ncr_xts_thread *
thread_state (struct served_volume *v, int *err)
{
  struct ncr_xts_thread *t;

  if (!v->pool) {
    if (served_revoked (v)) {
      revoked_error (err);
      return NULL;
    }
    nbdkit_error ("nbdcrypt: the volume key is not loaded");  /* not once .after_fork passed */
    *err = EIO;
    return NULL;
  }
  t = ncr_xts_pool_thread (v->pool);
  if (!t) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    *err = ENOMEM;
  }
  return t;
}

/* An engine failure (never expected: OpenSSL refusing to work). */
static int
engine_error (int r, int *err)
{
  nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
  *err = r < 0 ? -r : EIO;
  return -1;
}

/* The export: the plugin's size past data_offset, rounded down to whole sectors. */
static int64_t
nbdcrypt_get_size (nbdkit_next *next, void *handle)
{
  struct served_volume *v = ((struct handle *) handle)->v;
  const unsigned sector_size = v->sector_size;
  const uint64_t data_offset = v->data_offset;
  int64_t size = next->get_size (next);

  if (size == -1)
    return -1;
  if ((uint64_t) size < data_offset) {
    nbdkit_error ("nbdcrypt: the device (%" PRIi64 " bytes) is smaller than the data offset "
                  "%" PRIu64, size, data_offset);
    return -1;
  }
  return (size - data_offset) / sector_size * sector_size;
}

static int
nbdcrypt_block_size (nbdkit_next *next, void *handle,
                     uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
  struct served_volume *v = ((struct handle *) handle)->v;
  const unsigned sector_size = v->sector_size;
  if (next->block_size (next, minimum, preferred, maximum) == -1)
    return -1;
  /* Any alignment works (partial sectors are read-modify-write), but whole sectors avoid
   * that extra read and the exclusive hold on their sectors. */
  *minimum = 1;
  *preferred = MAX (*preferred, sector_size);
  *maximum = 0xffffffff;
  return 0;
}

/* Write-zeroes is always ours: encrypted zeros are written, because a hole or zeroed range
 * below would decrypt to noise, not to zeros. */
static int
nbdcrypt_can_zero (nbdkit_next *next UNUSED, void *handle UNUSED)
{
  return NBDKIT_ZERO_NATIVE;
}

/* Advertised so that clients can ask, and told at once that zeroing is not fast here: it
 * costs as much as writing. */
static int
nbdcrypt_can_fast_zero (nbdkit_next *next UNUSED, void *handle UNUSED)
{
  return 1;
}

/* Off unless discard=on, like dm-crypt without allow_discards: the pattern of trimmed
 * blocks below tells an observer which blocks of the volume are in use. */
static int
nbdcrypt_can_trim (nbdkit_next *next, void *handle UNUSED)
{
  return filter_discard ? next->can_trim (next) : 0;
}

/* Off: holes and zero ranges below are ciphertext-level facts. A hole decrypts to noise, so
 * reporting it as a zero range would be a lie; and allocation below says nothing true
 * about the plaintext. nbdkit then reports the whole export as data. */
static int
nbdcrypt_can_extents (nbdkit_next *next UNUSED, void *handle UNUSED)
{
  return 0;
}

/* The keys of one request: this thread's buffers, its engine context for the DEK, and during
 * an online re-encryption its context for the next DEK, with the watermark between the two
 * (read once, while the request holds its sectors in write_lock: the run moves it only while
 * it holds a zone there exclusively, so it stays true for the request's sectors). */
struct req_keys {
  struct ncr_xts_thread *t;     /* buffers; t->xts is whichever pool was asked last */
  struct ncr_xts *old;          /* the DEK's context */
  struct ncr_xts *next;         /* the next DEK's, or NULL: no run */
  uint64_t wm;                  /* data sectors below it are under the next DEK */
};

/* This request's keys; during a run, next and (once the caller holds its range) wm. A
 * thread's state is one for all pools, its xts the last pool's: the next DEK's context is
 * asked first, then the DEK's, and both pointers kept (both stay cached in the thread). */
static int
request_keys (struct served_volume *v, struct req_keys *k, int *err)
{
  k->next = NULL;
  k->wm = 0;
  if (__atomic_load_n (&v->reenc, __ATOMIC_ACQUIRE) != REENC_NONE) {
    struct ncr_xts_thread *tn;
    if (!served_reenc_wait (v) || v->next_pool == NULL)
      return revoked_error (err);
    if (!(tn = ncr_xts_pool_thread (v->next_pool))) {
      nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
      *err = ENOMEM;
      return -1;
    }
    k->next = tn->xts;
  }
  if (!(k->t = thread_state (v, err)))
    return -1;
  k->old = k->t->xts;
  return 0;
}

/* Encrypt or decrypt whole sectors from `sector` on, each under its key. */
static int
crypt_sectors (const struct served_volume *v, const struct req_keys *k, bool enc,
               uint64_t sector, const uint8_t *in, uint8_t *out, size_t len, int *err)
{
  const unsigned ss = v->sector_size;
  size_t n_new = 0;
  int r = 0;

  if (k->next && sector < k->wm)
    n_new = MIN ((uint64_t) (len / ss), k->wm - sector) * ss;
  if (n_new > 0)
    r = enc ? ncr_xts_encrypt (k->next, sector, in, out, n_new)
            : ncr_xts_decrypt (k->next, sector, in, out, n_new);
  if (r == 0 && len > n_new)
    r = enc ? ncr_xts_encrypt (k->old, sector + n_new / ss, in + n_new, out + n_new,
                               len - n_new)
            : ncr_xts_decrypt (k->old, sector + n_new / ss, in + n_new, out + n_new,
                               len - n_new);
  return r < 0 ? engine_error (r, err) : 0;
}

/* Read and decrypt one whole sector into the thread's sector buffer. */
static int
read_sector (nbdkit_next *next, struct served_volume *v, const struct req_keys *k,
             uint64_t sector, int *err)
{
  const unsigned sector_size = v->sector_size;
  uint8_t *b = k->t->sector;

  if (next->pread (next, b, sector_size, v->data_offset + sector * sector_size, 0,
                   err) == -1)
    return -1;
  return crypt_sectors (v, k, false, sector, b, b, sector_size, err);
}

/* A range hold taken only during a run (released at scope exit if taken). */
static void
release_if_held (struct ncr_range_hold *h)
{
  if (h->lock)
    ncr_rangelock_release (h);
}

static int
nbdcrypt_pread (nbdkit_next *next, void *handle, void *buf, uint32_t count, uint64_t offset,
                uint32_t flags, int *err)
{
  struct served_volume *v = ((struct handle *) handle)->v;
  const unsigned sector_size = v->sector_size;
  const uint64_t data_offset = v->data_offset;
  __attribute__ ((cleanup (release_if_held))) struct ncr_range_hold hold = { .lock = NULL };
  struct req_keys k;
  uint8_t *p = buf;

  if (served_revoked (v))
    return revoked_error (err);
  if (count == 0)
    return 0;
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&v->key_lock);
  if (request_keys (v, &k, err) == -1)
    return -1;
  if (k.next) {
    ncr_rangelock_acquire (&v->write_lock, &hold, offset / sector_size,
                           (offset + count - 1) / sector_size, false);
    k.wm = __atomic_load_n (&v->watermark, __ATOMIC_ACQUIRE);
  }

  /* 1. Unaligned head: the end of a sector the request starts inside of. */
  if (offset % sector_size) {
    uint32_t skip = offset % sector_size, n = MIN (count, sector_size - skip);

    if (read_sector (next, v, &k, offset / sector_size, err) == -1)
      return -1;
    memcpy (p, k.t->sector + skip, n);
    p += n;
    offset += n;
    count -= n;
  }

  /* 2. Aligned body: whole sectors straight into the client's buffer, decrypted in place
   * (filter-read.c: one call below; it can also split large bodies, for measurements). */
  if (count >= sector_size) {
    uint32_t n = count / sector_size * sector_size;

    if (!k.next) {
      if (filter_read_body (next, k.old, p, n, data_offset + offset, offset / sector_size,
                            sector_size, flags, err) == -1)
        return -1;
    }
    else if (next->pread (next, p, n, data_offset + offset, flags, err) == -1 ||
             crypt_sectors (v, &k, false, offset / sector_size, p, p, n, err) == -1)
      return -1;
    p += n;
    offset += n;
    count -= n;
  }

  /* 3. Unaligned tail: the start of the sector the request ends inside of. */
  if (count > 0) {
    if (read_sector (next, v, &k, offset / sector_size, err) == -1)
      return -1;
    memcpy (p, k.t->sector, count);
  }
  return 0;
}

/* Write plaintext src (NULL: zeros) to [offset, offset + count) as ONE write of whole
 * sectors below, staged in the thread's bounce buffer (the client's buffer is never
 * changed). Its sectors are held in write_lock: exclusively when some are only partly
 * covered (read-modify-write), shared otherwise. */
static int
write_sectors (nbdkit_next *next, struct served_volume *v, struct req_keys *k,
               const uint8_t *src, uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  const unsigned sector_size = v->sector_size;
  const uint64_t data_offset = v->data_offset;
  const uint64_t first = offset / sector_size, last = (offset + count - 1) / sector_size;
  const size_t len = (last - first + 1) * sector_size;
  const uint32_t head = offset % sector_size;                   /* bytes kept before */
  const uint32_t tail = (offset + count) % sector_size;         /* bytes written in last */
  const bool rmw = head != 0 || tail != 0;
  uint8_t *b;
  int r;

  if ((r = ncr_xts_thread_bounce (k->t, len)) < 0)
    return engine_error (r, err);
  b = k->t->bounce;

  ACQUIRE_RANGE_FOR_CURRENT_SCOPE (&v->write_lock, first, last, rmw);
  if (k->next)
    k->wm = __atomic_load_n (&v->watermark, __ATOMIC_ACQUIRE);

  /* 1. Unaligned head: the first sector's current plaintext, to be partly overwritten. */
  if (head != 0) {
    if (next->pread (next, b, sector_size, data_offset + first * sector_size, 0, err) == -1 ||
        crypt_sectors (v, k, false, first, b, b, sector_size, err) == -1)
      return -1;
  }

  /* 3. Unaligned tail (read before the body is merged): the last sector's current plaintext,
   * unless it is the head sector, already read. */
  if (tail != 0 && (last != first || head == 0)) {
    uint8_t *s = b + len - sector_size;

    if (next->pread (next, s, sector_size, data_offset + last * sector_size, 0, err) == -1 ||
        crypt_sectors (v, k, false, last, s, s, sector_size, err) == -1)
      return -1;
  }

  /* 2. Body: merge the new plaintext and encrypt all the sectors; aligned client data is
   * encrypted straight from its buffer into the bounce buffer. */
  if (src && !rmw)
    r = crypt_sectors (v, k, true, first, src, b, len, err);
  else {
    if (src)
      memcpy (b + head, src, count);
    else
      memset (b + head, 0, count);
    r = crypt_sectors (v, k, true, first, b, b, len, err);
  }
  if (r < 0)
    return -1;

  /* One call below for the whole span; FUA, if asked, travels with it. */
  return next->pwrite (next, b, len, data_offset + first * sector_size, flags, err);
}

static int
nbdcrypt_pwrite (nbdkit_next *next, void *handle, const void *buf, uint32_t count,
                 uint64_t offset, uint32_t flags, int *err)
{
  struct served_volume *v = ((struct handle *) handle)->v;
  struct req_keys k;
  int r;

  if (served_revoked (v))
    return revoked_error (err);
  if (count == 0)
    return 0;
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&v->key_lock);
  if (request_keys (v, &k, err) == -1)
    return -1;
  r = write_sectors (next, v, &k, buf, count, offset, flags, err);
  /* An idle thread keeps at most NCR_XTS_BOUNCE_KEEP of bounce buffer, whatever the largest
   * request was (write-zeroes works in pieces smaller than that). */
  ncr_xts_thread_bounce_trim (k.t);
  return r;
}

static int
nbdcrypt_zero (nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
               uint32_t flags, int *err)
{
  struct served_volume *v = ((struct handle *) handle)->v;
  const unsigned sector_size = v->sector_size;
  struct req_keys k;
  const uint32_t fua = flags & NBDKIT_FLAG_FUA;
  bool several;

  /* Zeroing is writing encrypted zeros: never faster than a write, so say so at once. */
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    *err = ENOTSUP;
    return -1;
  }
  if (served_revoked (v))
    return revoked_error (err);
  if (count == 0)
    return 0;
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&v->key_lock);
  if (request_keys (v, &k, err) == -1)
    return -1;

  /* Pieces of at most ZERO_CHUNK bytes of sectors. With several pieces, FUA is applied once:
   * the pieces are written without it, then one flush. */
  several = offset / sector_size * sector_size + ZERO_CHUNK < offset + count;
  while (count > 0) {
    uint64_t end = MIN (offset + count, offset / sector_size * sector_size + ZERO_CHUNK);
    uint32_t n = end - offset;

    if (write_sectors (next, v, &k, NULL, n, offset, several ? 0 : fua, err) == -1)
      return -1;
    offset += n;
    count -= n;
  }
  if (several && fua)
    return next->flush (next, 0, err);
  return 0;
}

static int
nbdcrypt_trim (nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
               uint32_t flags, int *err)
{
  struct served_volume *v = ((struct handle *) handle)->v;
  const unsigned sector_size = v->sector_size;
  const uint64_t data_offset = v->data_offset;
  /* Only the whole sectors inside the range: the plugin below can only drop whole
   * ciphertext sectors, and the rest of a partly covered sector must keep its data. A
   * trimmed sector then reads back as noise, which NBD allows (trimmed data is
   * unspecified). Nothing to trim means nothing changed, so FUA needs no flush. */
  uint64_t start = (offset + sector_size - 1) / sector_size * sector_size;
  uint64_t end = (offset + count) / sector_size * sector_size;

  if (served_revoked (v))             /* no key needed, but the volume is closed to every request */
    return revoked_error (err);
  if (end <= start)
    return 0;
  /* Shared: a read-modify-write of a sector must not write back what was just dropped. */
  ACQUIRE_RANGE_FOR_CURRENT_SCOPE (&v->write_lock, start / sector_size,
                                   end / sector_size - 1, false);
  return next->trim (next, end - start, data_offset + start, flags, err);
}

/* Prefetch hint: passed down, widened to whole sectors (what a later read will fetch). */
static int
nbdcrypt_cache (nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
                uint32_t flags, int *err)
{
  struct served_volume *v = ((struct handle *) handle)->v;
  const unsigned sector_size = v->sector_size;
  const uint64_t data_offset = v->data_offset;
  uint64_t start = offset / sector_size * sector_size;
  uint64_t end = (offset + count + sector_size - 1) / sector_size * sector_size;

  if (served_revoked (v))
    return revoked_error (err);
  while (start < end) {       /* widening may exceed 32 bits: pieces of at most 1 GiB */
    uint32_t n = MIN (end - start, UINT64_C (1) << 30);

    if (next->cache (next, n, data_offset + start, flags, err) == -1)
      return -1;
    start += n;
  }
  return 0;
}

static struct nbdkit_filter filter = {
  .name               = "nbdcrypt",
  .longname           = "nbdcrypt inline AES-XTS encryption filter",
  .load               = nbdcrypt_load,
  .unload             = nbdcrypt_unload,
  .config             = filter_config,
  .config_complete    = filter_config_complete,
  .config_help        = nbdcrypt_config_help,
  .get_ready          = filter_get_ready,
  .after_fork         = filter_after_fork,
  .cleanup            = filter_cleanup,
  .preconnect         = filter_preconnect,
  .list_exports       = filter_list_exports,
  .open               = nbdcrypt_open,
  .close              = nbdcrypt_close,
  .prepare            = nbdcrypt_prepare,
  .export_description = nbdcrypt_export_description,
  .thread_model       = nbdcrypt_thread_model,
  .get_size           = nbdcrypt_get_size,
  .block_size         = nbdcrypt_block_size,
  .can_zero           = nbdcrypt_can_zero,
  .can_fast_zero      = nbdcrypt_can_fast_zero,
  .can_trim           = nbdcrypt_can_trim,
  .can_extents        = nbdcrypt_can_extents,
  .pread              = nbdcrypt_pread,
  .pwrite             = nbdcrypt_pwrite,
  .zero               = nbdcrypt_zero,
  .trim               = nbdcrypt_trim,
  .cache              = nbdcrypt_cache,
};

NBDKIT_REGISTER_FILTER (filter)
