/* SPDX-License-Identifier: BSD-3-Clause */
/* The re-encryption engine: a volume's data moved from its DEK to a new one, zone by zone,
 * with a journal record per zone (the old ciphertext's hashes) that lets any later run tell,
 * after a crash anywhere, which sectors of the zone were already rewritten. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "backend.h"
#include "errors.h"
#include "keywrap.h"
#include "reencrypt.h"
#include "secmem.h"
#include "xts.h"

static const char next_info[] = "nbdcrypt reencrypt next-dek v1";
static const char journal_info[] = "nbdcrypt reencrypt journal v1";
enum { RJ_SCRATCH = 256 * 1024 };  /* a multiple of both sector sizes */
static const char rj_magic[8] = { 'N', 'B', 'D', 'C', 'R', 'J', 'N', 'L' };

/* Journal record head (4096 bytes, big-endian), followed by count 8-byte hashes. */
enum {
  RJ_OFF_MAGIC = 0,       /* 8 "NBDCRJNL" */
  RJ_OFF_VERSION = 8,     /* 4 1 */
  RJ_OFF_SECTOR = 12,     /* 4 sector size */
  RJ_OFF_UUID = 16,       /* 16 the volume's UUID */
  RJ_OFF_SEQ = 32,        /* 8 record sequence, +1 per zone */
  RJ_OFF_START = 40,      /* 8 zone start (data sector) */
  RJ_OFF_COUNT = 48,      /* 8 zone sector count, 1..RJ_MAX_ZONE_SECTORS */
  RJ_OFF_HASHES = 56,     /* 32 SHA-256 of the hash array */
  RJ_OFF_MAC = 4064,      /* 32 HMAC-SHA256 over [0, 4064) under the journal key */
};
_Static_assert (RJ_REC0_OFFSET + RJ_REC_MAX <= VH_COPY_B_OFFSET, "record 0 below copy B");
_Static_assert (RJ_REC0_OFFSET >= VH_COPY_A_OFFSET + VH_AREA_SIZE, "record 0 after copy A");
_Static_assert (RJ_REC1_OFFSET >= VH_COPY_B_OFFSET + VH_AREA_SIZE, "record 1 after copy B");
_Static_assert (RJ_REC1_OFFSET + RJ_REC_MAX <= VH_MIN_DATA_OFFSET, "record 1 below the data");

/* One CPU lane of step 1: its own XTS contexts (a context serves one thread) and scratch,
 * and the part of a zone it hashes and re-encrypts. */
struct lane {
  struct reencrypt_state *s;
  struct ncr_xts *old_x, *new_x;
  uint8_t *scratch;             /* secmem, RJ_SCRATCH bytes: plaintext between the passes */
  uint64_t first;               /* job: sectors [first, first + n) at p, hashes out */
  size_t n;
  uint8_t *p, *hashes;
  int r;
};

struct reencrypt_state {
  struct reencrypt_io io;
  uint32_t ss;
  uint64_t data_offset;
  uint64_t total;               /* data sectors */
  uint64_t watermark;           /* sectors below it are under the new DEK */
  unsigned zone_sectors;
  uint64_t seq;                 /* sequence of the newest record */
  bool pending;                 /* the newest record's zone needs the hash rule */
  bool unflushed;               /* the last zone's new ciphertext is written, not flushed */
  uint64_t pz_start, pz_count;
  uint8_t uuid[VH_UUID_LEN];
  uint8_t *jkey;                /* secmem, 32 bytes */
  struct lane lane[2];          /* lane 1: a helper thread's, when threads == 2 */
  unsigned threads;
  uint8_t *buf;                 /* one zone (ciphertext only) */
  uint8_t *rec;                 /* one journal record: head + hashes */
};

static uint32_t
get32 (const uint8_t *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}
static uint64_t get64 (const uint8_t *p) { return (uint64_t) get32 (p) << 32 | get32 (p + 4); }
static void
put32 (uint8_t *p, uint32_t v)
{
  p[0] = v >> 24; p[1] = (v >> 16) & 0xff; p[2] = (v >> 8) & 0xff; p[3] = v & 0xff;
}
static void put64 (uint8_t *p, uint64_t v) { put32 (p, v >> 32); put32 (p + 4, v & 0xffffffff); }

static uint64_t
rec_offset (uint64_t seq)
{
  return (seq & 1) ? RJ_REC1_OFFSET : RJ_REC0_OFFSET;
}

int
reencrypt_wrap_next_dek (const uint8_t *dek, size_t dek_len, const uint8_t *next,
                         uint8_t out[VH_MAX_NEXT_DEK], uint32_t *out_len)
{
  uint8_t key[32];
  size_t len = 0;
  int r;

  if (keywrap_wrapped_len (dek_len) > VH_MAX_NEXT_DEK)
    return ncr_error (EINVAL, "a %zu-byte data key does not fit the header", dek_len);
  r = crypto_hkdf_sha256 (dek, dek_len, NULL, 0, next_info, key, sizeof key);
  if (r == 0)
    r = keywrap_wrap (key, sizeof key, next, dek_len, out, VH_MAX_NEXT_DEK, &len);
  crypto_wipe (key, sizeof key);
  if (r < 0)
    return ncr_error (-r, "wrapping the next data key failed: %s", ncr_last_error ());
  *out_len = (uint32_t) len;
  return 0;
}

int
reencrypt_unwrap_next_dek (const uint8_t *dek, size_t dek_len, const uint8_t *wrapped,
                           size_t wrapped_len, uint8_t *next, size_t next_len)
{
  uint8_t key[32];
  size_t len = 0;
  int r;

  r = crypto_hkdf_sha256 (dek, dek_len, NULL, 0, next_info, key, sizeof key);
  if (r == 0)
    r = keywrap_unwrap (key, sizeof key, wrapped, wrapped_len, next, next_len, &len);
  crypto_wipe (key, sizeof key);
  if (r == 0 && len != next_len)
    r = -EKEYREJECTED;
  if (r < 0)
    return ncr_error (EKEYREJECTED, "the header's next data key (re-encryption in progress) "
                      "does not unwrap under this volume's key: the header is damaged; "
                      "restore the first 1 MiB from a backup");
  return 0;
}

int
reencrypt_begin_header (const struct volume *v, bool online, struct volume_header *out)
{
  uint8_t *next = NULL;
  size_t len = 0;
  int r;

  if (v->hdr.flags & VH_FLAG_REENCRYPT)
    return ncr_error (EBUSY, "a re-encryption is already in progress");
  volume_disk_header (v, out);
  if ((r = volume_new_dek (v->cipher, &next, &len)) < 0)
    return r;
  r = reencrypt_wrap_next_dek (v->dek, v->dek_len, next, out->next_dek, &out->next_dek_len);
  secmem_free (next);
  if (r < 0)
    return r;
  out->flags |= VH_FLAG_REENCRYPT | (online ? VH_FLAG_REENCRYPT_ONLINE : 0);
  if ((r = volume_header_seal (out, v->dek, v->dek_len)) < 0)
    return r;
  return volume_header_validate (out);
}

/* The journal's MAC key: bound to the old DEK and to this run's wrapped next DEK, so a record
 * left by another run never validates. */
static int
journal_key (const struct volume *v, uint8_t key[32])
{
  return crypto_hkdf_sha256 (v->dek, v->dek_len, v->hdr.next_dek, v->hdr.next_dek_len,
                             journal_info, key, 32);
}

static int
hash_sectors (const uint8_t *p, size_t n, uint32_t ss, uint8_t *hashes)
{
  return crypto_sha256_units (p, ss, n, hashes, RJ_HASH_LEN);
}

static int
array_digest (const uint8_t *hashes, uint64_t count, uint8_t out[CRYPTO_SHA256_LEN])
{
  struct iovec part = { .iov_base = (void *) hashes, .iov_len = count * RJ_HASH_LEN };
  return crypto_sha256 (&part, 1, out);
}

/* Read the record at off into s->rec and check it: 0 if valid (fields returned), 1 if not
 * (absent, torn, from another run or volume), -errno if it cannot be read. */
static int
read_record (struct reencrypt_state *s, uint64_t off, uint64_t *seq, uint64_t *start,
             uint64_t *count)
{
  uint8_t mac[32], dig[CRYPTO_SHA256_LEN];
  uint8_t *h = s->rec;
  int r, diff;

  if ((r = s->io.read (s->io.opaque, h, RJ_HEAD_SIZE, off)) < 0)
    return r;
  if (memcmp (h + RJ_OFF_MAGIC, rj_magic, 8) != 0)
    return 1;
  if (crypto_hmac_sha256 (s->jkey, 32, h, RJ_OFF_MAC, mac) < 0)
    return ncr_error (EIO, "HMAC-SHA256 failed");
  diff = crypto_ct_memcmp (mac, h + RJ_OFF_MAC, sizeof mac);
  crypto_wipe (mac, sizeof mac);
  if (diff != 0 || get32 (h + RJ_OFF_VERSION) != 1 || get32 (h + RJ_OFF_SECTOR) != s->ss ||
      memcmp (h + RJ_OFF_UUID, s->uuid, VH_UUID_LEN) != 0)
    return 1;
  *seq = get64 (h + RJ_OFF_SEQ);
  *start = get64 (h + RJ_OFF_START);
  *count = get64 (h + RJ_OFF_COUNT);
  if (*count == 0 || *count > RJ_MAX_ZONE_SECTORS || *start > s->total ||
      *count > s->total - *start)
    return 1;
  /* The hash array, whole: a record torn between head and array is not valid. */
  if ((r = s->io.read (s->io.opaque, h + RJ_HEAD_SIZE, *count * RJ_HASH_LEN,
                       off + RJ_HEAD_SIZE)) < 0)
    return r;
  if (array_digest (h + RJ_HEAD_SIZE, *count, dig) < 0)
    return ncr_error (EIO, "SHA-256 failed");
  return crypto_ct_memcmp (dig, h + RJ_OFF_HASHES, sizeof dig) == 0 ? 0 : 1;
}

/* The newest valid record: s->seq, the pending zone and its hashes in s->rec. */
static int
recover (struct reencrypt_state *s)
{
  uint64_t seq[2] = { 0, 0 }, start[2] = { 0, 0 }, count[2] = { 0, 0 };
  int ok[2], pick;

  for (unsigned i = 0; i < 2; i++) {
    ok[i] = read_record (s, i ? RJ_REC1_OFFSET : RJ_REC0_OFFSET, &seq[i], &start[i],
                         &count[i]);
    if (ok[i] < 0)
      return ok[i];
  }
  if (ok[0] != 0 && ok[1] != 0) {
    s->watermark = 0;           /* no zone was started */
    return 0;
  }
  pick = ok[0] != 0 ? 1 : ok[1] != 0 ? 0 : seq[1] > seq[0] ? 1 : 0;
  /* s->rec holds record 1, read last: read record 0 again if it is the one. */
  if (pick == 0) {
    int r = read_record (s, RJ_REC0_OFFSET, &seq[0], &start[0], &count[0]);
    if (r != 0)
      return r < 0 ? r : ncr_error (EIO, "journal record 0 changed while it was read");
  }
  s->seq = seq[pick];
  s->watermark = start[pick];
  s->pending = true;
  s->pz_start = start[pick];
  s->pz_count = count[pick];
  return 0;
}

int
reencrypt_open_state (const struct volume *v, uint64_t target_size,
                      const struct reencrypt_io *io, uint64_t zone_bytes,
                      struct reencrypt_state **out)
{
  struct reencrypt_state *s;
  uint64_t zs;
  int r;

  if (!(v->hdr.flags & VH_FLAG_REENCRYPT) || v->next_dek == NULL)
    return ncr_error (EINVAL, "no re-encryption is in progress on this volume");
  s = calloc (1, sizeof *s);
  if (s == NULL)
    return ncr_error (ENOMEM, "out of memory");
  s->io = *io;
  s->ss = v->hdr.sector_size;
  s->data_offset = v->hdr.data_offset;
  s->total = (target_size - v->hdr.data_offset) / s->ss;
  memcpy (s->uuid, v->hdr.uuid, VH_UUID_LEN);
  zs = (zone_bytes ? zone_bytes : RJ_DEFAULT_ZONE_BYTES) / s->ss;
  if (zs == 0)
    zs = 1;
  if (zs > RJ_MAX_ZONE_SECTORS)
    zs = RJ_MAX_ZONE_SECTORS;
  s->zone_sectors = (unsigned) zs;
  s->buf = malloc ((size_t) zs * s->ss);
  s->rec = calloc (1, RJ_REC_MAX);
  s->jkey = secmem_alloc (32);
  s->lane[0].scratch = secmem_alloc (RJ_SCRATCH);
  s->lane[0].s = s->lane[1].s = s;
  s->threads = 1;
  if (s->buf == NULL || s->rec == NULL || s->jkey == NULL || s->lane[0].scratch == NULL) {
    r = ncr_error (ENOMEM, "out of memory for a %llu-byte zone",
                   (unsigned long long) zs * s->ss);
    goto err;
  }
  if ((r = journal_key (v, s->jkey)) < 0) {
    r = ncr_error (EIO, "HKDF-SHA256 failed");
    goto err;
  }
  if ((r = ncr_xts_new (v->cipher, v->dek, v->dek_len, s->ss, &s->lane[0].old_x)) < 0 ||
      (r = ncr_xts_new (v->cipher, v->next_dek, v->dek_len, s->ss, &s->lane[0].new_x)) < 0 ||
      (r = recover (s)) < 0)
    goto err;
  *out = s;
  return 0;
 err:
  reencrypt_state_free (s);
  return r;
}

/* Sectors [start, start+count) of the data area, as one I/O. */
static int
zone_io (struct reencrypt_state *s, bool wr, uint64_t start, uint64_t count)
{
  uint64_t off = s->data_offset + start * s->ss;
  size_t len = (size_t) count * s->ss;

  return wr ? s->io.write (s->io.opaque, s->buf, len, off)
            : s->io.read (s->io.opaque, s->buf, len, off);
}

/* Old DEK -> new DEK, in place, through the lane's locked scratch buffer: the plaintext
 * never sits in the (large, swappable) zone buffer. */
static int
transform (struct lane *l, uint64_t sector, uint8_t *p, size_t len)
{
  uint32_t ss = l->s->ss;
  int r;

  for (size_t done = 0; done < len; done += RJ_SCRATCH) {
    size_t n = len - done < RJ_SCRATCH ? len - done : RJ_SCRATCH;
    uint64_t sec = sector + done / ss;
    if ((r = ncr_xts_decrypt (l->old_x, sec, p + done, l->scratch, n)) < 0 ||
        (r = ncr_xts_encrypt (l->new_x, sec, l->scratch, p + done, n)) < 0)
      return r;
  }
  return 0;
}

/* A lane's job: hash its sectors' old ciphertext, then re-encrypt them. */
static void *
lane_run (void *arg)
{
  struct lane *l = arg;
  uint32_t ss = l->s->ss;

  l->r = hash_sectors (l->p, l->n, ss, l->hashes);
  if (l->r == 0)
    l->r = transform (l, l->first, l->p, l->n * ss);
  return NULL;
}

/* Step 1 for n sectors from `first` in s->buf: split between the lanes (the helper thread
 * takes the second half), hashes into `hashes`. */
static int
hash_and_transform (struct reencrypt_state *s, uint64_t first, size_t n, uint8_t *hashes)
{
  size_t half = s->threads > 1 && n >= 2 ? n / 2 : 0;
  struct lane *a = &s->lane[0], *b = &s->lane[1];
  pthread_t t;
  bool spawned = false;

  a->first = first; a->n = n - half; a->p = s->buf; a->hashes = hashes;
  if (half) {
    b->first = first + a->n; b->n = half; b->p = s->buf + a->n * s->ss;
    b->hashes = hashes + a->n * RJ_HASH_LEN;
    spawned = pthread_create (&t, NULL, lane_run, b) == 0;
  }
  lane_run (a);
  if (half) {
    if (spawned)
      pthread_join (t, NULL);
    else
      lane_run (b);           /* no thread: the same work, here */
  }
  if (a->r < 0)
    return a->r;
  return half ? b->r : 0;
}

int
reencrypt_set_threads (struct reencrypt_state *s, unsigned n)
{
  struct lane *b = &s->lane[1];
  int r;

  if (n < 2 || s->threads > 1)
    return 0;
  if ((r = ncr_xts_dup (s->lane[0].old_x, &b->old_x)) < 0 ||
      (r = ncr_xts_dup (s->lane[0].new_x, &b->new_x)) < 0)
    return r;
  if ((b->scratch = secmem_alloc (RJ_SCRATCH)) == NULL)
    return ncr_error (ENOMEM, "out of locked memory");
  s->threads = 2;
  return 0;
}

/* Re-process the zone of the newest record: old sectors (ciphertext hashing to the recorded
 * hash) are re-encrypted, the others were written under the new DEK already and are kept.
 * The record stays valid throughout, so a crash here is recovered the same way. */
static int
resume_zone (struct reencrypt_state *s)
{
  const uint8_t *want = s->rec + RJ_HEAD_SIZE;
  uint8_t got[RJ_HASH_LEN];
  uint64_t n = s->pz_count, old = 0;
  int r;

  if ((r = zone_io (s, false, s->pz_start, n)) < 0)
    return r;
  for (uint64_t i = 0; i < n; i++) {
    uint8_t *p = s->buf + i * s->ss;
    if ((r = hash_sectors (p, 1, s->ss, got)) < 0)
      return r;
    if (memcmp (got, want + i * RJ_HASH_LEN, RJ_HASH_LEN) != 0)
      continue;
    if ((r = transform (&s->lane[0], s->pz_start + i, p, s->ss)) < 0)
      return r;
    old++;
  }
  if (old > 0 && ((r = zone_io (s, true, s->pz_start, n)) < 0 ||
                  (r = s->io.flush (s->io.opaque)) < 0))
    return r;
  s->watermark = s->pz_start + n;
  s->pending = false;
  return 0;
}

int
reencrypt_zone (struct reencrypt_state *s)
{
  uint8_t *h = s->rec, *hashes = s->rec + RJ_HEAD_SIZE;
  uint64_t start = s->watermark, n, seq = s->seq + 1, off;
  size_t rec_len;
  int r;

  if (s->pending)
    return resume_zone (s);
  if (start >= s->total) {
    if (s->unflushed && (r = s->io.flush (s->io.opaque)) < 0)
      return r;
    s->unflushed = false;
    return 1;
  }
  n = s->total - start < s->zone_sectors ? s->total - start : s->zone_sectors;

  /* 1. Old ciphertext, its hashes, then old DEK -> new DEK in place (tweaks unchanged). */
  if ((r = zone_io (s, false, start, n)) < 0 ||
      (r = hash_and_transform (s, start, n, hashes)) < 0)
    return r;

  /* 2. The previous zone's new ciphertext made durable (its flush was deferred to here, so
   * that its write-back overlaps step 1), then the record, in the slot the previous zone's
   * did not use, flushed: from here on a crash is recovered from this zone's hashes. The
   * flush is made even after no zone: the ciphertext just hashed must be durable before the
   * record names it (online, it may be a client's write still in a cache; if the storage
   * lost it, the older ciphertext under it would be taken for new). */
  if ((r = s->io.flush (s->io.opaque)) < 0)
    return r;
  s->unflushed = false;
  memset (h, 0, RJ_HEAD_SIZE);
  memcpy (h + RJ_OFF_MAGIC, rj_magic, 8);
  put32 (h + RJ_OFF_VERSION, 1);
  put32 (h + RJ_OFF_SECTOR, s->ss);
  memcpy (h + RJ_OFF_UUID, s->uuid, VH_UUID_LEN);
  put64 (h + RJ_OFF_SEQ, seq);
  put64 (h + RJ_OFF_START, start);
  put64 (h + RJ_OFF_COUNT, n);
  if (array_digest (hashes, n, h + RJ_OFF_HASHES) < 0 ||
      crypto_hmac_sha256 (s->jkey, 32, h, RJ_OFF_MAC, h + RJ_OFF_MAC) < 0)
    return ncr_error (EIO, "SHA-256 failed");
  rec_len = RJ_HEAD_SIZE + (size_t) n * RJ_HASH_LEN;
  rec_len = (rec_len + 4095) / 4096 * 4096;     /* whole 4 KiB blocks, zero padded */
  memset (s->rec + RJ_HEAD_SIZE + n * RJ_HASH_LEN, 0,
          rec_len - RJ_HEAD_SIZE - n * RJ_HASH_LEN);
  off = rec_offset (seq);
  if ((r = s->io.write (s->io.opaque, s->rec, rec_len, off)) < 0 ||
      (r = s->io.flush (s->io.opaque)) < 0)
    return r;
  s->seq = seq;

  /* 3. The new ciphertext (flushed before the next record, or by reencrypt_zone's last
   * call); 4. the watermark: reads see the new ciphertext from here on. */
  if ((r = zone_io (s, true, start, n)) < 0)
    return r;
  s->unflushed = true;
  s->watermark = start + n;
  return 0;
}

bool
reencrypt_sector_is_new (const struct reencrypt_state *s, uint64_t sector)
{
  return sector < s->watermark;
}

uint64_t reencrypt_done_sectors (const struct reencrypt_state *s) { return s->watermark; }
uint64_t reencrypt_total_sectors (const struct reencrypt_state *s) { return s->total; }
bool reencrypt_pending (const struct reencrypt_state *s) { return s->pending; }
unsigned reencrypt_zone_sectors (const struct reencrypt_state *s) { return s->zone_sectors; }

void
reencrypt_state_free (struct reencrypt_state *s)
{
  if (s == NULL)
    return;
  for (unsigned i = 0; i < 2; i++) {
    ncr_xts_free (s->lane[i].old_x);
    ncr_xts_free (s->lane[i].new_x);
    secmem_free (s->lane[i].scratch);
  }
  secmem_free (s->jkey);
  free (s->buf);
  free (s->rec);
  free (s);
}

int
reencrypt_peek_progress (volume_read_fn rd, void *opaque, const struct volume_header *h,
                         uint64_t *done_sectors)
{
  uint8_t head[64];
  uint64_t best_seq = 0;
  int r;

  *done_sectors = 0;
  for (unsigned i = 0; i < 2; i++) {
    if ((r = rd (opaque, head, sizeof head, i ? RJ_REC1_OFFSET : RJ_REC0_OFFSET)) < 0)
      return r;
    if (memcmp (head, rj_magic, 8) != 0 || get32 (head + RJ_OFF_SECTOR) != h->sector_size ||
        memcmp (head + RJ_OFF_UUID, h->uuid, VH_UUID_LEN) != 0)
      continue;
    if (get64 (head + RJ_OFF_SEQ) >= best_seq) {
      best_seq = get64 (head + RJ_OFF_SEQ);
      *done_sectors = get64 (head + RJ_OFF_START);
    }
  }
  return 0;
}

/* A provider in kps that wraps keyslot k, or NULL: the KMS for a KMS slot, the KEK file
 * whose fingerprint the slot names for a file slot. */
static struct keyprov *
provider_for_slot (struct keyprov *const *kps, size_t n, const struct volume_keyslot *k)
{
  for (size_t i = 0; i < n; i++) {
    char own[VH_MAX_KEK_ID + 1];
    if (kps[i] == NULL || strcmp (keyprov_name (kps[i]), k->kek_provider) != 0)
      continue;
    if (keyprov_kind (kps[i]) == KEYPROV_KMIP)
      return kps[i];
    if (keyprov_default_kek_id (kps[i], own, sizeof own) == 0 && strcmp (own, k->kek_id) == 0)
      return kps[i];
  }
  return NULL;
}

int
reencrypt_finish_header (const struct volume *v, struct keyprov *const *kps, size_t n,
                         struct volume_header *out, char *removed, size_t removed_size)
{
  struct volume_header disk;
  struct volume_keyslot k;
  size_t rl = 0;
  int r = 0;

  if (!(v->hdr.flags & VH_FLAG_REENCRYPT) || v->next_dek == NULL)
    return ncr_error (EINVAL, "no re-encryption is in progress on this volume");
  if (removed_size)
    removed[0] = '\0';
  volume_disk_header (v, &disk);
  *out = disk;
  out->n_extra = 0;
  memset (out->slot, 0, sizeof out->slot);
  /* The slot opened with first, wrapped by kps[0]: it always survives. */
  for (unsigned pass = 0; pass < 2; pass++)
    for (unsigned i = 0; i <= disk.n_extra; i++) {
      const struct volume_keyslot *d = &disk.slot[i];
      struct keyprov *kp;
      if ((pass == 0) != (i == v->used_slot))
        continue;
      kp = pass == 0 ? kps[0] : provider_for_slot (kps, n, d);
      if (kp == NULL) {
        if (rl < removed_size)
          rl += (size_t) snprintf (removed + rl, removed_size - rl, "%s%s %s", rl ? "\n" : "",
                                   strcmp (d->kek_provider, "kmip") == 0 ? "KMS KEK" :
                                   "KEK file", d->kek_id);
        continue;
      }
      if ((r = volume_wrap_keyslot (kp, d->kek_id, d->wrap, v->next_dek, v->dek_len, &k)) < 0) {
        if (pass == 1)
          r = ncr_error (-r, "keyslot %u (%s %s) cannot wrap the new data key: %s; make it "
                         "work, or remove the slot ('nbdcrypt remove-kek --slot %u') and run "
                         "'nbdcrypt reencrypt' again", i, d->kek_provider, d->kek_id,
                         ncr_last_error (), i);
        goto done;
      }
      if (pass == 0)
        out->slot[0] = k;
      else if ((r = volume_header_add_slot (out, &k)) < 0)
        goto done;
    }
  out->flags &= ~VH_FLAGS_REENCRYPT;
  out->next_dek_len = 0;
  explicit_bzero (out->next_dek, sizeof out->next_dek);
  if ((r = volume_header_seal (out, v->next_dek, v->dek_len)) == 0)
    r = volume_header_validate (out);
 done:
  explicit_bzero (&k, sizeof k);
  explicit_bzero (&disk, sizeof disk);
  return r;
}

int
reencrypt_clear_journal (const struct reencrypt_io *io)
{
  uint8_t *z = calloc (1, RJ_REC_MAX);
  int r;

  if (z == NULL)
    return ncr_error (ENOMEM, "out of memory");
  if ((r = io->write (io->opaque, z, RJ_REC_MAX, RJ_REC0_OFFSET)) == 0 &&
      (r = io->write (io->opaque, z, RJ_REC_MAX, RJ_REC1_OFFSET)) == 0 &&
      (r = io->write (io->opaque, z, VH_AREA_SIZE, RJ_FINAL_OFFSET)) == 0)
    r = io->flush (io->opaque);
  free (z);
  return r;
}

/* Encode h as copy `copy` (sequence as given) and write it, flushed. */
static int
write_copy (const struct reencrypt_io *io, const struct volume_header *h, unsigned copy,
            uint64_t offset)
{
  struct volume_header c = *h;
  uint8_t area[VH_AREA_SIZE];
  int r;

  c.copy_index = (uint8_t) copy;
  r = volume_header_encode (&c, area, sizeof area);
  if (r == 0 && (r = io->write (io->opaque, area, sizeof area, offset)) == 0)
    r = io->flush (io->opaque);
  explicit_bzero (&c, sizeof c);
  explicit_bzero (area, sizeof area);
  return r;
}

int
reencrypt_stage_final (const struct volume *v, const struct volume_header *final,
                       const struct reencrypt_io *io)
{
  if (!(v->hdr.flags & VH_FLAG_REENCRYPT) || (final->flags & VH_FLAGS_REENCRYPT) ||
      memcmp (final->uuid, v->hdr.uuid, VH_UUID_LEN) != 0)
    return ncr_error (EINVAL, "the final header does not end this volume's re-encryption");
  return write_copy (io, final, 0, RJ_FINAL_OFFSET);
}

int
reencrypt_read_final (const struct volume *v, const struct reencrypt_io *io,
                      struct volume_header *out)
{
  uint8_t area[VH_AREA_SIZE];
  int r;

  if (v->next_dek == NULL)
    return ncr_error (EINVAL, "no re-encryption is in progress on this volume");
  if ((r = io->read (io->opaque, area, sizeof area, RJ_FINAL_OFFSET)) < 0)
    return r;
  r = volume_header_parse (area, sizeof area, 0, out);
  explicit_bzero (area, sizeof area);
  if (r == -ENOENT)
    return ncr_error (ENOENT, "no final header is staged for the end of the re-encryption");
  if (r < 0)
    return ncr_error (-r, "the staged final header is damaged: %s", ncr_last_error ());
  if ((out->flags & VH_FLAGS_REENCRYPT) || memcmp (out->uuid, v->hdr.uuid, VH_UUID_LEN) != 0 ||
      strcmp (out->cipher, v->hdr.cipher) != 0 || out->sector_size != v->hdr.sector_size ||
      out->data_offset != v->hdr.data_offset)
    return ncr_error (EINVAL, "the staged final header is not this volume's");
  if (volume_header_check_key (v->next_dek, v->dek_len, out) < 0)
    return ncr_error (EKEYREJECTED, "the staged final header is not sealed under the new "
                      "data key (a header staged by another run)");
  return 0;
}

int
reencrypt_commit_final (const struct volume *v, const struct reencrypt_io *io,
                        uint64_t target_size, struct volume_header *out)
{
  struct volume_headers hs;
  struct volume_header f;
  uint64_t seq = 0;
  unsigned first;
  int r;

  if ((r = reencrypt_read_final (v, io, &f)) < 0 ||
      (r = volume_read_headers (io->read, io->opaque, target_size, &hs)) < 0)
    goto out;
  for (unsigned i = 0; i < 2; i++)
    if (hs.status[i] == 0 && hs.copy[i].sequence > seq)
      seq = hs.copy[i].sequence;
  f.sequence = seq + 1;
  /* The copy that does not hold the newest flagged header first: until the second write,
   * the newest copy is still the run's (or, once written, the final one). */
  first = hs.newest == 0 ? 1 : 0;
  if ((r = write_copy (io, &f, first, volume_header_copy_offset (first))) == 0 &&
      (r = write_copy (io, &f, 1 - first, volume_header_copy_offset (1 - first))) == 0)
    r = reencrypt_clear_journal (io);
  if (r == 0 && out)
    *out = f;
 out:
  explicit_bzero (&f, sizeof f);
  explicit_bzero (&hs, sizeof hs);
  return r;
}

int
reencrypt_complete_end (const struct volume_headers *hs, const uint8_t *key, size_t key_len,
                        const struct reencrypt_io *io)
{
  const struct volume_header *n, *o;
  int r;

  if (hs->newest < 0 || hs->conflict || hs->status[1 - hs->newest] != 0)
    return 0;
  n = &hs->copy[hs->newest];
  o = &hs->copy[1 - hs->newest];
  if ((n->flags & VH_FLAG_REENCRYPT) || !(o->flags & VH_FLAG_REENCRYPT) ||
      memcmp (n->uuid, o->uuid, VH_UUID_LEN) != 0 ||
      volume_header_check_key (key, key_len, n) < 0)
    return 0;
  struct volume_header c = *n;
  c.sequence = n->sequence + 1;
  r = write_copy (io, &c, 1 - hs->newest, volume_header_copy_offset (1 - hs->newest));
  explicit_bzero (&c, sizeof c);
  if (r == 0)
    r = reencrypt_clear_journal (io);
  return r < 0 ? r : 1;
}

static bool
area_zero (const uint8_t *p, size_t n)
{
  uint8_t acc = 0;

  for (size_t i = 0; i < n; i++)
    acc |= p[i];
  return acc == 0;
}

/* The three 4 KiB areas that say whether the journal is in use: record 0's and record 1's
 * heads, and the staged header. */
static int
read_journal_heads (const struct reencrypt_io *io, uint8_t rec0[RJ_HEAD_SIZE],
                    uint8_t rec1[RJ_HEAD_SIZE], uint8_t final[VH_AREA_SIZE])
{
  int r;

  if ((r = io->read (io->opaque, rec0, RJ_HEAD_SIZE, RJ_REC0_OFFSET)) < 0 ||
      (r = io->read (io->opaque, rec1, RJ_HEAD_SIZE, RJ_REC1_OFFSET)) < 0 ||
      (r = io->read (io->opaque, final, VH_AREA_SIZE, RJ_FINAL_OFFSET)) < 0)
    return r;
  return 0;
}

int
reencrypt_journal_used (const struct reencrypt_io *io)
{
  uint8_t rec0[RJ_HEAD_SIZE], rec1[RJ_HEAD_SIZE], final[VH_AREA_SIZE];
  int r;

  if ((r = read_journal_heads (io, rec0, rec1, final)) < 0)
    return r;
  r = !(area_zero (rec0, sizeof rec0) && area_zero (rec1, sizeof rec1) &&
        area_zero (final, sizeof final));
  explicit_bzero (final, sizeof final);
  return r;
}

int
reencrypt_clear_stale (const struct volume_headers *hs, const uint8_t *key, size_t key_len,
                       const struct reencrypt_io *io)
{
  uint8_t rec0[RJ_HEAD_SIZE], rec1[RJ_HEAD_SIZE], final[VH_AREA_SIZE];
  struct volume_header f;
  const struct volume_header *n, *o;
  bool records, staged = false;
  int r;

  if (hs->newest < 0 || hs->conflict)
    return 0;
  n = &hs->copy[hs->newest];
  o = &hs->copy[1 - hs->newest];
  if ((n->flags & VH_FLAGS_REENCRYPT) ||
      (hs->status[1 - hs->newest] == 0 && (o->flags & VH_FLAGS_REENCRYPT)) ||
      volume_header_check_key (key, key_len, n) < 0)
    return 0;
  if ((r = read_journal_heads (io, rec0, rec1, final)) < 0)
    goto out;
  records = !area_zero (rec0, sizeof rec0) || !area_zero (rec1, sizeof rec1);
  if (!area_zero (final, sizeof final) &&
      volume_header_parse (final, sizeof final, 0, &f) == 0 &&
      memcmp (f.uuid, n->uuid, VH_UUID_LEN) == 0 &&
      volume_header_check_key (key, key_len, &f) == 0)
    staged = true;
  r = 0;
  if (!records && !staged)
    goto out;
  {
    uint8_t *z = calloc (1, RJ_REC_MAX);

    if (z == NULL) {
      r = ncr_error (ENOMEM, "out of memory");
      goto out;
    }
    if (records &&
        ((r = io->write (io->opaque, z, RJ_REC_MAX, RJ_REC0_OFFSET)) < 0 ||
         (r = io->write (io->opaque, z, RJ_REC_MAX, RJ_REC1_OFFSET)) < 0))
      goto freez;
    if (staged && (r = io->write (io->opaque, z, VH_AREA_SIZE, RJ_FINAL_OFFSET)) < 0)
      goto freez;
    r = io->flush (io->opaque);
  freez:
    free (z);
  }
  if (r == 0)
    r = 1;
 out:
  explicit_bzero (final, sizeof final);
  explicit_bzero (&f, sizeof f);
  return r;
}
