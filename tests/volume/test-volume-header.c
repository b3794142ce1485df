/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: the on-disk header codec: round trip, canonical encoding, the documented byte
 * positions (docs/format.md), and rejection of every kind of damage (checksum, magic, version,
 * lengths, values, reserved bytes, misplaced copy); the version 2 header MAC seals exactly the
 * fields that change how data is read; copies of different volumes are told apart. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "volume-header.h"
#include "errors.h"

static int failures;

#define CHECK(cond, ...) do {                                   \
    if (!(cond)) {                                              \
      fprintf (stderr, "FAIL line %d: ", __LINE__);             \
      fprintf (stderr, __VA_ARGS__);                            \
      fprintf (stderr, " [%s]\n", ncr_last_error ());           \
      failures++;                                               \
    }                                                           \
  } while (0)

static void
sample (struct volume_header *h)
{
  memset (h, 0, sizeof *h);
  h->version = VH_VERSION;
  h->sequence = 7;
  h->data_offset = 1024 * 1024;
  h->sector_size = 4096;
  h->copy_index = 0;
  strcpy (h->cipher, "aes-256-xts");
  strcpy (h->kek_provider, "kmip");
  strcpy (h->wrap, "aes-kwp");
  strcpy (h->kek_id, "1f2e3d4c-0000-4000-8000-123456789abc");
  for (int i = 0; i < 16; i++) h->uuid[i] = (uint8_t) (0x10 + i);
  h->wrapped_dek_len = 72;
  for (int i = 0; i < 72; i++) h->wrapped_dek[i] = (uint8_t) (i * 3 + 1);
  for (int i = 0; i < 32; i++) h->kcv[i] = (uint8_t) (0xc0 + i);
}

/* Re-checksum after a deliberate edit, so that value checks (not the checksum) are tested. */
static void
resum (uint8_t *buf)
{
  SHA256 (buf, 4064, buf + 4064);
}

static int
parse_edit (const uint8_t *orig, size_t off, uint8_t val, bool fix_sum)
{
  uint8_t b[VH_AREA_SIZE];
  struct volume_header h;

  memcpy (b, orig, sizeof b);
  b[off] = val;
  if (fix_sum)
    resum (b);
  return volume_header_parse (b, sizeof b, 0, &h);
}

int
main (void)
{
  struct volume_header h, p;
  uint8_t buf[VH_AREA_SIZE], buf2[VH_AREA_SIZE];

  sample (&h);
  CHECK (volume_header_encode (&h, buf, sizeof buf) == 0, "encode");
  CHECK (volume_header_parse (buf, sizeof buf, 0, &p) == 0, "parse");
  CHECK (memcmp (&h, &p, sizeof h) == 0, "round trip differs");
  CHECK (volume_header_encode (&p, buf2, sizeof buf2) == 0 && memcmp (buf, buf2, sizeof buf) == 0,
         "encoding not canonical");
  /* Documented positions (docs/format.md). */
  CHECK (memcmp (buf, "NBDCRYPT", 8) == 0, "magic at 0");
  CHECK (buf[8] == 0 && buf[9] == 2, "version at 8");
  CHECK (buf[23] == 7, "sequence at 16 (big-endian)");
  CHECK (buf[24 + 5] == 0x10, "data offset at 24");
  CHECK (buf[32 + 2] == 0x10, "sector size at 32");
  CHECK (memcmp (buf + 40, "aes-256-xts", 11) == 0, "cipher at 40");
  CHECK (memcmp (buf + 56, "kmip", 4) == 0, "provider at 56");
  CHECK (memcmp (buf + 72, "aes-kwp", 7) == 0, "wrap at 72");
  CHECK (buf[88] == 0x10, "uuid at 88");
  CHECK (buf[105] == 36 && buf[107] == 72, "lengths at 104/106");
  CHECK (buf[112] == 0xc0, "kcv at 112");
  CHECK (memcmp (buf + 144, h.kek_id, 36) == 0, "kek id at 144");
  CHECK (buf[400] == 1, "wrapped key at 400");

  char u[37];
  volume_uuid_str (h.uuid, u);
  CHECK (strcmp (u, "10111213-1415-1617-1819-1a1b1c1d1e1f") == 0, "uuid string %s", u);

  /* Torn/corrupt bytes anywhere: checksum catches them. */
  for (size_t off = 8; off < VH_AREA_SIZE; off += 97)
    CHECK (parse_edit (buf, off, buf[off] ^ 0x40, false) == -EINVAL, "damage at %zu accepted",
           off);
  CHECK (parse_edit (buf, 0, 'X', false) == -ENOENT, "bad magic should read as no header");
  /* Values checked even with a valid checksum. */
  CHECK (parse_edit (buf, 9, 3, true) == -EINVAL, "version 3 accepted");
  CHECK (parse_edit (buf, 9, 0, true) == -EINVAL, "version 0 accepted");
  CHECK (parse_edit (buf, 9, 1, true) == 0, "version 1 refused");
  CHECK (parse_edit (buf, 39, 1, true) == -EINVAL, "unknown flag accepted");
  CHECK (parse_edit (buf, 10, 1, true) == -EINVAL, "copy B accepted as copy A");
  CHECK (parse_edit (buf, 11, 1, true) == -EINVAL, "reserved byte accepted");
  CHECK (parse_edit (buf, 34, 0x11, true) == -EINVAL, "sector size 0x1100 accepted");
  CHECK (parse_edit (buf, 29, 0x08, true) == -EINVAL, "data offset below 1 MiB accepted");
  CHECK (parse_edit (buf, 31, 0x01, true) == -EINVAL, "unaligned data offset accepted");
  CHECK (parse_edit (buf, 40, 'b', true) == -EINVAL, "unknown cipher accepted");
  CHECK (parse_edit (buf, 55, 'x', true) == -EINVAL, "unterminated cipher accepted");
  CHECK (parse_edit (buf, 60, 'x', true) == -EINVAL, "bytes after provider accepted");
  CHECK (parse_edit (buf, 104, 1, true) == -EINVAL, "kek id length 292 accepted");
  CHECK (parse_edit (buf, 105, 0, true) == -EINVAL, "kek id length 0 accepted");
  CHECK (parse_edit (buf, 105, 40, true) == -EINVAL, "kek id length past text accepted");
  CHECK (parse_edit (buf, 144 + 5, 0, true) == -EINVAL, "NUL inside kek id accepted");
  CHECK (parse_edit (buf, 106, 2, true) == -EINVAL, "wrapped length 584 accepted");
  CHECK (parse_edit (buf, 107, 71, true) == -EINVAL, "wrapped length 71 for aes-kwp accepted");
  CHECK (parse_edit (buf, 2000, 1, true) == -EINVAL, "reserved area byte accepted");
  CHECK (parse_edit (buf, 400 + 72, 1, true) == -EINVAL, "bytes after wrapped key accepted");
  CHECK (volume_header_parse (buf, 4095, 0, &p) == -EINVAL, "short buffer accepted");
  CHECK (volume_header_parse (buf, sizeof buf, 1, &p) == -EINVAL, "copy A accepted as B");

  /* Encoder refuses what the parser would refuse. */
  sample (&h); strcpy (h.kek_provider, "file"); strcpy (h.wrap, "kms");
  CHECK (volume_header_encode (&h, buf2, sizeof buf2) == -EINVAL, "file+kms encoded");
  sample (&h); h.kek_id[0] = '\0';
  CHECK (volume_header_encode (&h, buf2, sizeof buf2) == -EINVAL, "empty kek id encoded");
  sample (&h); h.sector_size = 1024;
  CHECK (volume_header_encode (&h, buf2, sizeof buf2) == -EINVAL, "sector 1024 encoded");
  sample (&h); strcpy (h.cipher, "aes-128-xts");
  CHECK (volume_header_encode (&h, buf2, sizeof buf2) == -EINVAL,
         "aes-128 with 72-byte wrapped key encoded");
  h.wrapped_dek_len = 40;
  CHECK (volume_header_encode (&h, buf2, sizeof buf2) == 0, "aes-128 with 40 bytes");
  sample (&h); strcpy (h.wrap, "kms"); h.wrapped_dek_len = 98; h.copy_index = 1;
  CHECK (volume_header_encode (&h, buf2, sizeof buf2) == 0 &&
         volume_header_parse (buf2, sizeof buf2, 1, &p) == 0 && p.wrapped_dek_len == 98,
         "kms wrap, copy B");

  /* Key check value: deterministic, depends on key and UUID, constant-time check. */
  uint8_t dek[64], k1[32], k2[32];
  for (int i = 0; i < 64; i++) dek[i] = (uint8_t) i;
  sample (&h);
  CHECK (volume_kcv (dek, 64, h.uuid, k1) == 0 && volume_kcv (dek, 64, h.uuid, k2) == 0 &&
         memcmp (k1, k2, 32) == 0, "kcv deterministic");
  memcpy (h.kcv, k1, 32);
  CHECK (volume_kcv_check (dek, 64, &h) == 0, "kcv check");
  dek[63] ^= 1;
  CHECK (volume_kcv_check (dek, 64, &h) == -EKEYREJECTED, "kcv with wrong key accepted");
  dek[63] ^= 1; h.uuid[0] ^= 1;
  CHECK (volume_kcv_check (dek, 64, &h) == -EKEYREJECTED, "kcv with other uuid accepted");

  /* Version 2 header MAC: every field that changes how data is read is sealed... */
  struct volume_header s2, e;
  char why[120];
  for (int i = 0; i < 64; i++) dek[i] = (uint8_t) i;
  sample (&s2);
  CHECK (volume_header_seal (&s2, dek, 64) == 0 && s2.version == 2, "seal");
  CHECK (volume_header_check_key (dek, 64, &s2) == 0, "sealed header refused");
  e = s2; e.sector_size = 512;
  CHECK (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED &&
         strstr (ncr_last_error (), "header authentication failed"), "sector size edit");
  e = s2; e.data_offset += 4096;
  CHECK (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "data offset edit");
  e = s2; strcpy (e.cipher, "aes-128-xts");
  CHECK (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "cipher edit");
  e = s2; e.uuid[15] ^= 1;
  CHECK (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "uuid edit");
  e = s2; e.flags = 1;
  CHECK (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "flags edit");
  /* ...a downgrade to version 1 leaves a MAC where the v1 key check value belongs... */
  e = s2; e.version = 1;
  CHECK (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "downgrade to v1");
  dek[0] ^= 1;
  CHECK (volume_header_check_key (dek, 64, &s2) == -EKEYREJECTED, "wrong key accepted");
  dek[0] ^= 1;
  /* ...and what a rewrap changes is not (the unwrap and the MAC check the key itself). */
  e = s2; e.sequence = 99; e.copy_index = 1; strcpy (e.kek_id, "other"); e.wrapped_dek[0] ^= 1;
  strcpy (e.wrap, "kms"); e.wrapped_dek_len = 98;
  CHECK (volume_header_check_key (dek, 64, &e) == 0, "rewrapped header refused");
  /* A version 1 header checks its key check value. */
  e = s2; e.version = 1;
  CHECK (volume_kcv (dek, 64, e.uuid, e.kcv) == 0 && volume_header_check_key (dek, 64, &e) == 0,
         "v1 kcv");

  /* Identity of two copies. */
  e = s2; e.sequence = 8; e.copy_index = 1; strcpy (e.kek_id, "new");
  CHECK (volume_header_same_volume (&s2, &e, why, sizeof why), "rewrap seen as other volume");
  e = s2; e.uuid[0] ^= 1;
  CHECK (!volume_header_same_volume (&s2, &e, why, sizeof why) && strstr (why, "UUID"),
         "other uuid: %s", why);
  e = s2; e.sector_size = 512;
  CHECK (!volume_header_same_volume (&s2, &e, why, sizeof why) && strstr (why, "sector size"),
         "other sector size: %s", why);
  e = s2; e.data_offset *= 2;
  CHECK (!volume_header_same_volume (&s2, &e, why, sizeof why), "other data offset");
  e = s2; e.kcv[3] ^= 1;
  CHECK (!volume_header_same_volume (&s2, &e, why, sizeof why) && strstr (why, "data key"),
         "other key: %s", why);
  e.version = 1;                  /* an interrupted upgrade: v1 KCV next to a v2 MAC */
  CHECK (volume_header_same_volume (&s2, &e, why, sizeof why), "upgrade seen as other volume");

  printf ("%s\n", failures ? "FAIL" : "PASS");
  return failures ? 1 : 0;
}
