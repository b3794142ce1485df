/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: the re-encryption engine (lib/volume/reencrypt.h) on an in-memory target whose
 * I/O "crashes" at a chosen write: for every write of a whole run (journal records, zone data,
 * flushes in between), a crash just before it, and one in the middle of it (half the buffer
 * written: a torn record, or a zone half rewritten), then a second crash during the resume at
 * a few more places, then a resume to the end. After each, every sector decrypts under the new
 * key to the original plaintext (the journal's hash rule told old and new sectors apart). A
 * journal left by another run (another next key) is ignored; the watermark says which key
 * reads a sector (the online path). The runs use two threads per zone, the watermark test
 * one. The end of an online run: a staged final header is checked (absent, damaged, another
 * volume's, sealed under the wrong key: refused), committed to both copies, and an end
 * interrupted between the two copies is completed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "errors.h"
#include "reencrypt.h"
#include "secmem.h"
#include "xts.h"

#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

enum { SS = 512, SECTORS = 100, ZONE = 16 * SS, DATA_OFF = 1024 * 1024 };
#define DISK_SIZE ((size_t) DATA_OFF + (size_t) SECTORS * SS)

struct mem {
  uint8_t *disk;
  long writes_left;             /* < 0: no crash */
  bool torn;                    /* the crashing write lands half */
  bool crashed;
  unsigned writes;
};

static int
mem_read (void *o, void *buf, size_t n, uint64_t off)
{
  struct mem *m = o;
  if (m->crashed)
    return -EIO;
  memcpy (buf, m->disk + off, n);
  return 0;
}

static int
mem_write (void *o, const void *buf, size_t n, uint64_t off)
{
  struct mem *m = o;
  if (m->crashed)
    return -EIO;
  m->writes++;
  if (m->writes_left == 0) {
    if (m->torn)
      memcpy (m->disk + off, buf, n / 2);
    m->crashed = true;
    return -EIO;
  }
  if (m->writes_left > 0)
    m->writes_left--;
  memcpy (m->disk + off, buf, n);
  return 0;
}

static int
mem_flush (void *o)
{
  struct mem *m = o;
  return m->crashed ? -EIO : 0;
}

static uint8_t plain[SECTORS * SS], *start_disk;
static struct volume vol;

/* The volume: old key, a next key wrapped under it, flagged header fields the engine uses. */
static void
setup (void)
{
  struct ncr_xts *x;

  vol.cipher = NCR_CIPHER_AES_256_XTS;
  vol.dek_len = 64;
  REQUIRE (volume_new_dek (vol.cipher, &vol.dek, &vol.dek_len) == 0);
  REQUIRE (volume_new_dek (vol.cipher, &vol.next_dek, &vol.dek_len) == 0);
  vol.hdr.flags = VH_FLAG_REENCRYPT;
  vol.hdr.sector_size = SS;
  vol.hdr.data_offset = DATA_OFF;
  for (unsigned i = 0; i < VH_UUID_LEN; i++) vol.hdr.uuid[i] = (uint8_t) (i + 1);
  REQUIRE (reencrypt_wrap_next_dek (vol.dek, vol.dek_len, vol.next_dek, vol.hdr.next_dek,
                                    &vol.hdr.next_dek_len) == 0);
  REQUIRE (crypto_random_bytes (plain, sizeof plain) == 0);
  start_disk = calloc (1, DISK_SIZE);
  REQUIRE (start_disk != NULL);
  REQUIRE (ncr_xts_new (vol.cipher, vol.dek, vol.dek_len, SS, &x) == 0);
  REQUIRE (ncr_xts_encrypt (x, 0, plain, start_disk + DATA_OFF, sizeof plain) == 0);
  ncr_xts_free (x);
}

/* Run to the end or to the crash; -EIO on a crash. */
static int
run (struct mem *m, struct reencrypt_state **keep)
{
  struct reencrypt_io io = { mem_read, mem_write, mem_flush, m };
  struct reencrypt_state *s;
  int r;

  if ((r = reencrypt_open_state (&vol, DISK_SIZE, &io, ZONE, &s)) < 0)
    return r;
  /* Two lanes (the offline tool's setting): each zone's second half in a helper thread. */
  if ((r = reencrypt_set_threads (s, 2)) < 0) {
    reencrypt_state_free (s);
    return r;
  }
  while ((r = reencrypt_zone (s)) == 0)
    ;
  if (keep && r == 1)
    *keep = s;
  else
    reencrypt_state_free (s);
  return r == 1 ? 0 : r;
}

/* Every sector under the new key decrypts to the plaintext. */
static bool
all_new (const uint8_t *disk)
{
  static uint8_t out[SECTORS * SS];
  struct ncr_xts *x;
  bool ok;

  REQUIRE (ncr_xts_new (vol.cipher, vol.next_dek, vol.dek_len, SS, &x) == 0);
  REQUIRE (ncr_xts_decrypt (x, 0, disk + DATA_OFF, out, sizeof out) == 0);
  ncr_xts_free (x);
  ok = memcmp (out, plain, sizeof out) == 0;
  return ok;
}

/* How many writes a whole run makes, uninterrupted. */
static unsigned
writes_of_a_run (void)
{
  struct mem m = { .disk = malloc (DISK_SIZE), .writes_left = -1 };

  REQUIRE (m.disk != NULL);
  memcpy (m.disk, start_disk, DISK_SIZE);
  REQUIRE (run (&m, NULL) == 0);
  CHECK_MSG (all_new (m.disk), "an uninterrupted run");
  free (m.disk);
  return m.writes;
}

static void
test_reencrypt_crash_at_every_write (void)
{
  unsigned total = writes_of_a_run (), cases = 0;

  CHECK_MSG (total == 2 * ((SECTORS * SS + ZONE - 1) / ZONE), "%u writes: a record and a "
             "zone's data per zone", total);
  for (unsigned w = 0; w < total; w++)
    for (int torn = 0; torn < 2; torn++)
      for (long again = -1; again < 3; again++) {
        struct mem m = { .disk = malloc (DISK_SIZE), .writes_left = w, .torn = torn };
        REQUIRE (m.disk != NULL);
        memcpy (m.disk, start_disk, DISK_SIZE);
        CHECK_MSG (run (&m, NULL) == -EIO, "write %u: no crash", w);
        /* Resume, itself crashing at its write `again` (torn), then resume to the end. */
        if (again >= 0) {
          m.crashed = false;
          m.writes_left = again;
          m.torn = true;
          (void) run (&m, NULL);
        }
        m.crashed = false;
        m.writes_left = -1;
        CHECK_MSG (run (&m, NULL) == 0, "write %u torn %d again %ld: resume failed: %s", w,
                   torn, again, ncr_last_error ());
        CHECK_MSG (all_new (m.disk), "crash at write %u (torn %d, resume crash %ld): data "
                   "not all under the new key", w, torn, again);
        free (m.disk);
        cases++;
      }
  printf ("%u crash cases over %u writes\n", cases, total);
}

/* A journal made under another next key (another run) says nothing about this one. */
static void
test_reencrypt_other_run_ignored (void)
{
  struct mem m = { .disk = malloc (DISK_SIZE), .writes_left = 3 };
  struct reencrypt_io io = { mem_read, mem_write, mem_flush, &m };
  struct reencrypt_state *s = NULL;
  uint8_t saved[VH_MAX_NEXT_DEK];

  REQUIRE (m.disk != NULL);
  memcpy (m.disk, start_disk, DISK_SIZE);
  CHECK (run (&m, NULL) == -EIO);
  m.crashed = false;
  m.writes_left = -1;
  memcpy (saved, vol.hdr.next_dek, sizeof saved);
  vol.hdr.next_dek[0] ^= 1;
  CHECK (reencrypt_open_state (&vol, DISK_SIZE, &io, ZONE, &s) == 0);
  CHECK_MSG (s && !reencrypt_pending (s) && reencrypt_done_sectors (s) == 0,
             "a record of another run was used");
  reencrypt_state_free (s);
  memcpy (vol.hdr.next_dek, saved, sizeof saved);
  CHECK (reencrypt_open_state (&vol, DISK_SIZE, &io, ZONE, &s) == 0);
  CHECK_MSG (s && reencrypt_pending (s) && reencrypt_done_sectors (s) == 16,
             "the run's own record: pending zone at 16");
  reencrypt_state_free (s);
  free (m.disk);
}

/* The online path: below the watermark the new key, from it on the old one. */
static void
test_reencrypt_watermark (void)
{
  struct mem m = { .disk = malloc (DISK_SIZE), .writes_left = -1 };
  struct reencrypt_io io = { mem_read, mem_write, mem_flush, &m };
  struct reencrypt_state *s = NULL;

  REQUIRE (m.disk != NULL);
  memcpy (m.disk, start_disk, DISK_SIZE);
  REQUIRE (reencrypt_open_state (&vol, DISK_SIZE, &io, ZONE, &s) == 0);
  CHECK (!reencrypt_sector_is_new (s, 0));
  CHECK (reencrypt_zone (s) == 0);
  CHECK (reencrypt_sector_is_new (s, 15) && !reencrypt_sector_is_new (s, 16));
  CHECK (reencrypt_total_sectors (s) == SECTORS && reencrypt_zone_sectors (s) == 16);
  while (reencrypt_zone (s) == 0)
    ;
  CHECK (reencrypt_sector_is_new (s, SECTORS - 1));
  reencrypt_state_free (s);
  free (m.disk);
}

/* A header of the test volume: flagged (sealed under the old key, the next key wrapped in
 * it) or final (sealed under the next key), with one made-up keyslot. */
static void
make_header (bool flagged, struct volume_header *h)
{
  memset (h, 0, sizeof *h);
  h->sector_size = SS;
  h->data_offset = DATA_OFF;
  strcpy (h->cipher, "aes-256-xts");
  memcpy (h->uuid, vol.hdr.uuid, VH_UUID_LEN);
  strcpy (h->kek_provider, "file");
  strcpy (h->wrap, "aes-kwp");
  strcpy (h->kek_id, "sha256:00112233445566778899aabbccddeeff");
  h->wrapped_dek_len = 72;
  memset (h->wrapped_dek, 0xa5, 72);
  if (flagged) {
    h->flags = VH_FLAG_REENCRYPT | VH_FLAG_REENCRYPT_ONLINE;
    h->next_dek_len = vol.hdr.next_dek_len;
    memcpy (h->next_dek, vol.hdr.next_dek, vol.hdr.next_dek_len);
  }
  REQUIRE (volume_header_seal (h, flagged ? vol.dek : vol.next_dek, vol.dek_len) == 0);
  REQUIRE (volume_header_validate (h) == 0);
}

static void
put_copy (uint8_t *disk, const struct volume_header *h, unsigned copy, uint64_t seq)
{
  struct volume_header c = *h;
  c.copy_index = (uint8_t) copy;
  c.sequence = seq;
  REQUIRE (volume_header_encode (&c, disk + volume_header_copy_offset (copy),
                                 VH_AREA_SIZE) == 0);
}

static bool
zero (const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

static void
test_reencrypt_online_end (void)
{
  struct mem m = { .disk = calloc (1, DISK_SIZE), .writes_left = -1 };
  struct reencrypt_io io = { mem_read, mem_write, mem_flush, &m };
  struct volume_header flagged, final, bad, got;
  struct volume_headers hs;

  REQUIRE (m.disk != NULL);
  strcpy (vol.hdr.cipher, "aes-256-xts");
  make_header (true, &flagged);
  make_header (false, &final);
  put_copy (m.disk, &flagged, 0, 7);
  put_copy (m.disk, &flagged, 1, 6);
  memset (m.disk + RJ_REC0_OFFSET, 0x5a, 4096);         /* a journal record's place */

  /* Nothing staged; then staged ones that must be refused. */
  CHECK (reencrypt_read_final (&vol, &io, &got) == -ENOENT);
  CHECK (reencrypt_commit_final (&vol, &io, DISK_SIZE, NULL) == -ENOENT);
  CHECK (reencrypt_stage_final (&vol, &flagged, &io) == -EINVAL);     /* not an end */
  make_header (false, &bad);
  REQUIRE (volume_header_seal (&bad, vol.dek, vol.dek_len) == 0);    /* the old key */
  REQUIRE (reencrypt_stage_final (&vol, &bad, &io) == 0);
  CHECK (reencrypt_read_final (&vol, &io, &got) == -EKEYREJECTED);
  CHECK_MSG (m.disk[0] == 'N' && volume_read_headers (mem_read, &m, DISK_SIZE, &hs) == 0 &&
             (hs.copy[0].flags & VH_FLAG_REENCRYPT), "a refused end writes no copy");
  REQUIRE (reencrypt_stage_final (&vol, &final, &io) == 0);
  m.disk[RJ_FINAL_OFFSET + 100] ^= 1;
  CHECK (reencrypt_read_final (&vol, &io, &got) == -EINVAL);
  m.disk[RJ_FINAL_OFFSET + 100] ^= 1;
  CHECK (reencrypt_read_final (&vol, &io, &got) == 0);

  /* Commit: both copies the final header, above both sequences; journal and stage zeroed. */
  CHECK (reencrypt_commit_final (&vol, &io, DISK_SIZE, &got) == 0);
  REQUIRE (volume_read_headers (mem_read, &m, DISK_SIZE, &hs) == 0);
  for (unsigned i = 0; i < 2; i++)
    CHECK_MSG (hs.status[i] == 0 && !(hs.copy[i].flags & VH_FLAG_REENCRYPT) &&
               hs.copy[i].sequence == 8 &&
               volume_header_check_key (vol.next_dek, vol.dek_len, &hs.copy[i]) == 0,
               "copy %u is the final header", i);
  CHECK (zero (m.disk + RJ_REC0_OFFSET, RJ_REC_MAX) && zero (m.disk + RJ_FINAL_OFFSET, 4096));

  /* An end killed between the copies: completed under the new key, not under the old. */
  put_copy (m.disk, &flagged, 1, 7);
  REQUIRE (volume_read_headers (mem_read, &m, DISK_SIZE, &hs) == 0);
  CHECK (reencrypt_complete_end (&hs, vol.dek, vol.dek_len, &io) == 0);
  CHECK (reencrypt_complete_end (&hs, vol.next_dek, vol.dek_len, &io) == 1);
  REQUIRE (volume_read_headers (mem_read, &m, DISK_SIZE, &hs) == 0);
  CHECK (!(hs.copy[0].flags & VH_FLAG_REENCRYPT) && !(hs.copy[1].flags & VH_FLAG_REENCRYPT));
  CHECK (reencrypt_complete_end (&hs, vol.next_dek, vol.dek_len, &io) == 0);
  free (m.disk);
}

/* An end killed after both copies, before the journal's zeroing: the records and the staged
 * header (sealed under the new key) are cleared; a header staged for a handover not committed
 * yet (sealed under the next key, both copies unflagged) is left; a flagged volume's journal
 * is never touched. */
static void
test_reencrypt_stale_journal (void)
{
  struct mem m = { .disk = calloc (1, DISK_SIZE), .writes_left = -1 };
  struct reencrypt_io io = { mem_read, mem_write, mem_flush, &m };
  struct volume_header flagged, final;
  struct volume_headers hs;

  REQUIRE (m.disk != NULL);
  strcpy (vol.hdr.cipher, "aes-256-xts");
  make_header (true, &flagged);
  make_header (false, &final);
  CHECK (reencrypt_journal_used (&io) == 0);

  /* The run is committed (both copies final); a record and the staged header remain. */
  put_copy (m.disk, &final, 0, 8);
  put_copy (m.disk, &final, 1, 8);
  memset (m.disk + RJ_REC1_OFFSET + RJ_REC_MAX - 8, 0x33, 8);  /* the end of a record */
  m.disk[RJ_REC1_OFFSET] = 1;
  REQUIRE (reencrypt_stage_final (&vol, &final, &io) == 0);
  REQUIRE (volume_read_headers (mem_read, &m, DISK_SIZE, &hs) == 0);
  CHECK (reencrypt_journal_used (&io) == 1);
  CHECK (reencrypt_clear_stale (&hs, vol.dek, vol.dek_len, &io) == 0);   /* not its key */
  CHECK (reencrypt_clear_stale (&hs, vol.next_dek, vol.dek_len, &io) == 1);
  CHECK (zero (m.disk + RJ_FINAL_OFFSET, 4096) && zero (m.disk + RJ_REC0_OFFSET, RJ_REC_MAX) &&
         zero (m.disk + RJ_REC1_OFFSET, RJ_REC_MAX));
  CHECK (reencrypt_journal_used (&io) == 0);
  CHECK (reencrypt_clear_stale (&hs, vol.next_dek, vol.dek_len, &io) == 0);

  /* Only the staged header of a committed run. */
  REQUIRE (reencrypt_stage_final (&vol, &final, &io) == 0);
  CHECK (reencrypt_clear_stale (&hs, vol.next_dek, vol.dek_len, &io) == 1);
  CHECK (zero (m.disk + RJ_FINAL_OFFSET, 4096));

  /* A handover in the making: copies unflagged and sealed under the current key (the old
   * one), the end staged under the next key. Left alone. */
  make_header (false, &final);
  REQUIRE (reencrypt_stage_final (&vol, &final, &io) == 0);
  struct volume_header cur = final;
  REQUIRE (volume_header_seal (&cur, vol.dek, vol.dek_len) == 0);
  put_copy (m.disk, &cur, 0, 9);
  put_copy (m.disk, &cur, 1, 9);
  REQUIRE (volume_read_headers (mem_read, &m, DISK_SIZE, &hs) == 0);
  CHECK (reencrypt_clear_stale (&hs, vol.dek, vol.dek_len, &io) == 0);
  CHECK (!zero (m.disk + RJ_FINAL_OFFSET, 4096));

  /* A flagged copy (a run in progress, or its end between the copies): never. */
  m.disk[RJ_REC0_OFFSET] = 1;
  put_copy (m.disk, &flagged, 1, 10);
  REQUIRE (volume_read_headers (mem_read, &m, DISK_SIZE, &hs) == 0);
  CHECK (reencrypt_clear_stale (&hs, vol.dek, vol.dek_len, &io) == 0);
  CHECK (m.disk[RJ_REC0_OFFSET] == 1 && !zero (m.disk + RJ_FINAL_OFFSET, 4096));

  /* A read error is the caller's to see. */
  put_copy (m.disk, &cur, 1, 10);
  REQUIRE (volume_read_headers (mem_read, &m, DISK_SIZE, &hs) == 0);
  m.crashed = true;
  CHECK (reencrypt_clear_stale (&hs, vol.dek, vol.dek_len, &io) == -EIO);
  CHECK (reencrypt_journal_used (&io) == -EIO);
  free (m.disk);
}

int
main (void)
{
  setup ();
  RUN (test_reencrypt_crash_at_every_write);
  RUN (test_reencrypt_other_run_ignored);
  RUN (test_reencrypt_watermark);
  RUN (test_reencrypt_online_end);
  RUN (test_reencrypt_stale_journal);
  secmem_free (vol.dek);
  secmem_free (vol.next_dek);
  free (start_disk);
  return check_exit ();
}
