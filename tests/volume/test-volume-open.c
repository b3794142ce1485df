/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: opening a volume through a read callback with the KEK-file provider: the DEK
 * comes back in locked memory and equal to what was formatted; one damaged header copy opens
 * from the other with a warning; both damaged refuses; a wrong KEK file, a provider mismatch,
 * an unformatted target and a tampered key check value are refused with a reason; a rewrap
 * interrupted after its first copy opens with the new KEK, and with the old one from the
 * older copy; keyslots: any slot's KEK opens, an interrupted remove-kek still opens with the
 * removed KEK from the older copy, a KEK in no slot is refused naming the slots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "errors.h"
#include "keyprov.h"
#include "secmem.h"
#include "volume.h"

#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

#define TARGET_SIZE (2u * 1024 * 1024)
static uint8_t *target;

static int
mem_read (void *opaque, void *buf, size_t count, uint64_t offset)
{
  (void) opaque;
  if (offset + count > TARGET_SIZE)
    return ncr_error (EIO, "read beyond end");
  memcpy (buf, target + offset, count);
  return 0;
}

static void
write_copy (const struct volume_header *h0, unsigned i)
{
  struct volume_header h = *h0;
  h.copy_index = (uint8_t) i;
  if (volume_header_encode (&h, target + volume_header_copy_offset (i), VH_AREA_SIZE) != 0)
    abort ();
}

static void
make_kek (const char *path, uint8_t fill)
{
  uint8_t k[32];
  FILE *f = fopen (path, "w");
  for (int i = 0; i < 32; i++) k[i] = (uint8_t) (fill + i);
  fwrite (k, 1, 32, f);
  fclose (f);
}

/* Shared by the tests, in order: the KEK files, their providers, the DEK and the header
 * formatted with kek1. */
static char dir[] = "/tmp/nbdcrypt-volopen.XXXXXX", kek1[64], kek2[64], shortf[64];
static struct keyprov *kp1, *kp2;
static char id1[64], id2[64];
static uint8_t *dek;
static size_t dek_len;
static struct volume_header h;

/* KEK files: exactly 32 bytes, distinct fingerprints as default key identifiers. */
static void
test_kek_file_provider (void)
{
  CHECK_MSG (keyprov_file_open (shortf, &kp1) == -EINVAL && strstr (ncr_last_error (), "32 bytes"),
             "short KEK file accepted");
  CHECK_MSG (keyprov_file_open ("/nonexistent/kek", &kp1) == -ENOENT, "missing KEK file");
  CHECK_MSG (keyprov_file_open (kek1, &kp1) == 0, "open kek1");
  CHECK_MSG (keyprov_file_open (kek2, &kp2) == 0, "open kek2");
  CHECK_MSG (keyprov_default_kek_id (kp1, id1, sizeof id1) == 0 &&
             keyprov_default_kek_id (kp2, id2, sizeof id2) == 0 &&
             strncmp (id1, "sha256:", 7) == 0 && strlen (id1) == 39 && strcmp (id1, id2) != 0,
             "fingerprints %s %s", id1, id2);
}

static void
test_open_unformatted_target (void)
{
  struct volume *v = NULL;

  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == -ENOENT &&
             strstr (ncr_last_error (), "no nbdcrypt volume header"), "blank target opened");
}

/* Formatted with kek1: opens with the DEK it was formatted with; a target smaller than the
 * data offset and another KEK file do not open it. */
static void
test_open_formatted_volume (void)
{
  struct volume *v = NULL;

  CHECK_MSG (volume_new_dek (NCR_CIPHER_AES_256_XTS, &dek, &dek_len) == 0 && dek_len == 64, "dek");
  CHECK_MSG (volume_make_header (kp1, id1, "aes-kwp", NCR_CIPHER_AES_256_XTS, 4096, 1 << 20,
                                 dek, dek_len, &h) == 0, "make header");
  write_copy (&h, 0);
  write_copy (&h, 1);

  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == 0, "open");
  if (v) {
    CHECK_MSG (v->dek_len == 64 && memcmp (v->dek, dek, 64) == 0, "DEK differs");
    CHECK_MSG (v->warning[0] == '\0', "unexpected warning: %s", v->warning);
    CHECK_MSG (v->hdr.data_offset == 1 << 20 && v->hdr.sector_size == 4096, "geometry");
    volume_free (v); v = NULL;
  }
  /* A target smaller than the data offset is not a volume. */
  CHECK_MSG (volume_open (mem_read, NULL, 1 << 20, kp1, 0, &v) < 0, "truncated target opened");

  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp2, 0, &v) == -EKEYREJECTED &&
             strstr (ncr_last_error (), "wrong KEK file"), "wrong KEK file opened");
}

/* One damaged header copy opens from the other with a warning; both damaged refuses. */
static void
test_open_damaged_copies (void)
{
  struct volume *v = NULL;

  /* Copy A damaged: opens from B with a warning. */
  target[100] ^= 0xff;
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == 0, "open with A damaged");
  if (v) {
    CHECK_MSG (v->used_copy == 1 && strstr (v->warning, "copy A is damaged"), "warning: %s",
               v->warning);
    volume_free (v); v = NULL;
  }
  /* Both damaged: refused, naming both. */
  target[(512 << 10) + 100] ^= 0xff;
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == -EINVAL &&
             strstr (ncr_last_error (), "corrupt in both copies"), "both damaged opened");
  target[100] ^= 0xff;
  target[(512 << 10) + 100] ^= 0xff;
}

/* A tampered key check value or wrapped key (valid checksums) is refused after unwrapping. */
static void
test_open_tampered_key (void)
{
  struct volume *v = NULL;
  struct volume_header h2;

  /* A tampered key check value (valid checksum) is detected after unwrapping. */
  h2 = h;
  h2.kcv[0] ^= 1;
  write_copy (&h2, 0); write_copy (&h2, 1);
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == -EKEYREJECTED &&
             strstr (ncr_last_error (), "header authentication failed"), "bad MAC opened");
  /* A tampered wrapped key fails the RFC 5649 integrity check. */
  h2 = h;
  h2.wrapped_dek[5] ^= 1;
  write_copy (&h2, 0); write_copy (&h2, 1);
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == -EKEYREJECTED, "bad wdek");
  write_copy (&h, 0); write_copy (&h, 1);
}

/* Fields edited in both copies (checksums valid): the version 2 header MAC refuses them; a
 * version 1 header (key check value, no MAC) still opens, with a warning to upgrade. */
static void
test_open_edited_fields (void)
{
  struct volume *v = NULL;
  struct volume_header h2;

  h2 = h;
  h2.sector_size = 512;
  write_copy (&h2, 0); write_copy (&h2, 1);
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == -EKEYREJECTED &&
             strstr (ncr_last_error (), "header authentication failed"), "edited sector size");
  h2 = h;
  h2.data_offset = 1 << 20 | 4096;
  write_copy (&h2, 0); write_copy (&h2, 1);
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == -EKEYREJECTED,
             "edited data offset");
  h2 = h;
  h2.version = 1;
  CHECK_MSG (volume_kcv (dek, dek_len, h2.uuid, h2.kcv) == 0, "v1 kcv");
  write_copy (&h2, 0); write_copy (&h2, 1);
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == 0 && v &&
             strstr (v->warning, "version 1"), "v1 header: %s", v ? v->warning : "");
  volume_free (v);
  write_copy (&h, 0); write_copy (&h, 1);
}

/* Copy A from another volume under the same KEK: refused, naming both; each copy can be
 * opened on its own when the operator chooses it. */
static void
test_open_spliced_copies (void)
{
  struct volume *v = NULL;
  uint8_t *dek3 = NULL;
  size_t dek3_len = 0;
  struct volume_header h3;

  CHECK_MSG (volume_new_dek (NCR_CIPHER_AES_256_XTS, &dek3, &dek3_len) == 0 &&
             volume_make_header (kp1, id1, "aes-kwp", NCR_CIPHER_AES_256_XTS, 4096, 1 << 20,
                                 dek3, dek3_len, &h3) == 0, "second volume");
  h3.sequence = 5;
  write_copy (&h3, 0); write_copy (&h, 1);
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == -EINVAL &&
             strstr (ncr_last_error (), "belong to different volumes (UUID") &&
             strstr (ncr_last_error (), "--use-copy"), "spliced copy A opened");
  CHECK_MSG (volume_open_copy (mem_read, NULL, TARGET_SIZE, kp1, 0, 1, &v) == 0 && v &&
             v->used_copy == 1 && memcmp (v->dek, dek, 64) == 0, "open from copy B");
  volume_free (v); v = NULL;
  CHECK_MSG (volume_open_copy (mem_read, NULL, TARGET_SIZE, kp1, 0, 0, &v) == 0 && v &&
             dek3 && memcmp (v->dek, dek3, 64) == 0, "open from copy A");
  volume_free (v);
  secmem_free (dek3);
  write_copy (&h, 0); write_copy (&h, 1);
}

/* A rewrap interrupted after its first copy opens with the new KEK, and with the old one from
 * the older copy; once complete, only with the new one. */
static void
test_open_interrupted_rewrap (void)
{
  struct volume *v = NULL;
  struct volume_header h2;

  /* To kek2: copy B rewritten (sequence 2), copy A still old. */
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == 0, "reopen");
  if (v) {
    CHECK_MSG (volume_rewrap_header (v, kp2, id2, "aes-kwp", &h2) == 0 && h2.sequence == 2,
               "rewrap");
    volume_free (v); v = NULL;
    write_copy (&h2, 1);
    CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp2, 0, &v) == 0, "open with new KEK");
    if (v) {
      CHECK_MSG (v->used_copy == 1 && memcmp (v->dek, dek, 64) == 0 &&
                 strstr (v->warning, "interrupted rewrap"), "new: %s", v->warning);
      volume_free (v); v = NULL;
    }
    CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == 0, "open with old KEK");
    if (v) {
      CHECK_MSG (v->used_copy == 0 && memcmp (v->dek, dek, 64) == 0 &&
                 strstr (v->warning, "a rewrap was interrupted") &&
                 strstr (v->warning, "--use-copy A"), "old copy: %s", v->warning);
      volume_free (v); v = NULL;
    }
    /* Completed rewrap: the old KEK no longer opens it. */
    write_copy (&h2, 0);
    CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == -EKEYREJECTED,
               "old KEK opened a fully rewrapped volume");
  }
}

/* Keyslots: a second KEK file added opens the volume (its slot presented first, the disk
 * order kept for updates); a remove-kek interrupted after its first copy still opens with the
 * removed KEK from the older copy, with a warning; completed, that KEK is refused; a KEK file
 * in no slot is refused naming every slot. */
static void
test_open_keyslots (void)
{
  struct volume *v = NULL;
  struct volume_header h3, h4, d;
  struct keyprov *kp3 = NULL;
  char kek3[64], id3[64];

  write_copy (&h, 0); write_copy (&h, 1);
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == 0, "open one slot");
  if (v == NULL)
    return;
  CHECK_MSG (volume_add_slot_header (v, kp2, id2, "aes-kwp", &h3) == 0 && h3.version == 3 &&
             h3.n_extra == 1 && strcmp (h3.slot[1].kek_id, id2) == 0 &&
             h3.sequence == h.sequence + 1, "add slot");
  CHECK_MSG (volume_add_slot_header (v, kp1, id1, "aes-kwp", &h4) == -EEXIST, "add duplicate");
  volume_free (v); v = NULL;
  write_copy (&h3, 0); write_copy (&h3, 1);

  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp2, 0, &v) == 0, "open with slot 1");
  if (v == NULL)
    return;
  volume_disk_header (v, &d);
  CHECK_MSG (v->used_slot == 1 && strcmp (v->hdr.kek_id, id2) == 0 &&
             strcmp (d.slot[0].kek_id, id1) == 0 && strcmp (d.slot[1].kek_id, id2) == 0 &&
             memcmp (v->dek, dek, 64) == 0 && v->warning[0] == '\0',
             "slot 1 opened: used %u, %s", v->used_slot, v->warning);
  CHECK_MSG (volume_remove_slot_header (v, 0, &h4) == 0 && h4.version == 2 &&
             h4.n_extra == 0 && strcmp (h4.kek_id, id2) == 0, "remove slot 0");
  volume_free (v); v = NULL;

  /* Interrupted: copy B (written first) has only kek2, copy A still both. */
  write_copy (&h4, 1);
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == 0, "removed KEK, old copy");
  if (v) {
    CHECK_MSG (v->used_copy == 0 && v->used_slot == 0 && memcmp (v->dek, dek, 64) == 0 &&
               strstr (v->warning, "interrupted") && strstr (v->warning, "--use-copy A"),
               "old copy: %s", v->warning);
    volume_free (v); v = NULL;
  }
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp2, 0, &v) == 0 && v->used_copy == 1,
             "remaining KEK, new copy");
  volume_free (v); v = NULL;
  write_copy (&h4, 0);
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == -EKEYREJECTED &&
             strstr (ncr_last_error (), "wrong KEK file"), "removed KEK opened");

  /* A third KEK file, in no slot of a two-slot header. */
  write_copy (&h3, 0); write_copy (&h3, 1);
  snprintf (kek3, sizeof kek3, "%s/kek3", dir);
  make_kek (kek3, 201);
  CHECK_MSG (keyprov_file_open (kek3, &kp3) == 0 &&
             keyprov_default_kek_id (kp3, id3, sizeof id3) == 0, "kek3");
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp3, 0, &v) == -EKEYREJECTED &&
             strstr (ncr_last_error (), "in none of this volume's keyslots") &&
             strstr (ncr_last_error (), id1) && strstr (ncr_last_error (), id2),
             "unknown KEK file: %s", ncr_last_error ());
  CHECK_MSG (volume_pick_slot (&h3, kp2) == 1 && volume_pick_slot (&h3, kp3) == -1, "pick slot");
  keyprov_free (kp3);
  unlink (kek3);
}

static void
test_open_provider_mismatch (void)
{
  struct volume *v = NULL;
  struct volume_header h2;

  /* A header saying "kmip" with a file provider: -ENOKEY, told where the KEK is (the
   * front-end names its own option). */
  h2 = h;
  strcpy (h2.kek_provider, "kmip");
  strcpy (h2.kek_id, "42");
  write_copy (&h2, 0); write_copy (&h2, 1);
  CHECK_MSG (volume_open (mem_read, NULL, TARGET_SIZE, kp1, 0, &v) == -ENOKEY &&
             strstr (ncr_last_error (), "KEK is in a KMS (KEK id 42)") &&
             !strstr (ncr_last_error (), "kms-config"), "provider mismatch");
}

int
main (void)
{
  target = calloc (1, TARGET_SIZE);
  if (mkdtemp (dir) == NULL || target == NULL)
    return 99;
  snprintf (kek1, sizeof kek1, "%s/kek1", dir);
  snprintf (kek2, sizeof kek2, "%s/kek2", dir);
  snprintf (shortf, sizeof shortf, "%s/short", dir);
  make_kek (kek1, 1);
  make_kek (kek2, 101);
  FILE *f = fopen (shortf, "w"); fputs ("short", f); fclose (f);

  RUN (test_kek_file_provider);
  RUN (test_open_unformatted_target);
  RUN (test_open_formatted_volume);
  RUN (test_open_damaged_copies);
  RUN (test_open_tampered_key);
  RUN (test_open_edited_fields);
  RUN (test_open_spliced_copies);
  RUN (test_open_interrupted_rewrap);
  RUN (test_open_keyslots);
  RUN (test_open_provider_mismatch);

  secmem_free (dek);
  keyprov_free (kp1);
  keyprov_free (kp2);
  unlink (kek1); unlink (kek2); unlink (shortf); rmdir (dir);
  free (target);
  return check_exit ();
}
