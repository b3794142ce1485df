/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: the on-disk header codec: round trip, canonical encoding, the documented byte
 * positions (docs/format.md), and rejection of every kind of damage (checksum, magic, version,
 * lengths, values, reserved bytes, misplaced copy); the version 2 header MAC seals exactly the
 * fields that change how data is read; copies of different volumes are told apart; version 3
 * keyslots: four at their longest fit, sit where documented, are edited and left unsealed;
 * the re-encryption flag and the wrapped next DEK: placed as documented, sealed by the MAC. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "volume-header.h"
#include "errors.h"

#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

static void
sample (struct volume_header *h)
{
  memset (h, 0, sizeof *h);
  h->version = VH_VERSION_MAC;
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

/* The sample header, encoded. */
static void
sample_encoded (uint8_t *buf)
{
  struct volume_header h;

  sample (&h);
  REQUIRE (volume_header_encode (&h, buf, VH_AREA_SIZE) == 0);
}

/* Encode, parse: the same header; encoding the parsed one gives the same bytes. */
static void
test_header_round_trip (void)
{
  struct volume_header h, p;
  uint8_t buf[VH_AREA_SIZE], buf2[VH_AREA_SIZE];

  sample (&h);
  CHECK_MSG (volume_header_encode (&h, buf, sizeof buf) == 0, "encode");
  CHECK_MSG (volume_header_parse (buf, sizeof buf, 0, &p) == 0, "parse");
  CHECK_MSG (memcmp (&h, &p, sizeof h) == 0, "round trip differs");
  CHECK_MSG (volume_header_encode (&p, buf2, sizeof buf2) == 0 &&
             memcmp (buf, buf2, sizeof buf) == 0, "encoding not canonical");
}

/* The byte positions docs/format.md documents. */
static void
test_header_documented_positions (void)
{
  struct volume_header h;
  uint8_t buf[VH_AREA_SIZE];

  sample (&h);
  sample_encoded (buf);
  CHECK_MSG (memcmp (buf, "NBDCRYPT", 8) == 0, "magic at 0");
  CHECK_MSG (buf[8] == 0 && buf[9] == 2, "version at 8");
  CHECK_MSG (buf[23] == 7, "sequence at 16 (big-endian)");
  CHECK_MSG (buf[24 + 5] == 0x10, "data offset at 24");
  CHECK_MSG (buf[32 + 2] == 0x10, "sector size at 32");
  CHECK_MSG (memcmp (buf + 40, "aes-256-xts", 11) == 0, "cipher at 40");
  CHECK_MSG (memcmp (buf + 56, "kmip", 4) == 0, "provider at 56");
  CHECK_MSG (memcmp (buf + 72, "aes-kwp", 7) == 0, "wrap at 72");
  CHECK_MSG (buf[88] == 0x10, "uuid at 88");
  CHECK_MSG (buf[105] == 36 && buf[107] == 72, "lengths at 104/106");
  CHECK_MSG (buf[112] == 0xc0, "kcv at 112");
  CHECK_MSG (memcmp (buf + 144, h.kek_id, 36) == 0, "kek id at 144");
  CHECK_MSG (buf[400] == 1, "wrapped key at 400");

  char u[37];
  volume_uuid_str (h.uuid, u);
  CHECK_MSG (strcmp (u, "10111213-1415-1617-1819-1a1b1c1d1e1f") == 0, "uuid string %s", u);
}

/* Damage anywhere is caught by the checksum; bad values even with a valid checksum. */
static void
test_header_damage_refused (void)
{
  struct volume_header p;
  uint8_t buf[VH_AREA_SIZE];

  sample_encoded (buf);
  /* Torn/corrupt bytes anywhere: checksum catches them. */
  for (size_t off = 8; off < VH_AREA_SIZE; off += 97)
    CHECK_MSG (parse_edit (buf, off, buf[off] ^ 0x40, false) == -EINVAL, "damage at %zu accepted",
               off);
  CHECK_MSG (parse_edit (buf, 0, 'X', false) == -ENOENT, "bad magic should read as no header");
  /* Values checked even with a valid checksum. */
  CHECK_MSG (parse_edit (buf, 9, 4, true) == -EINVAL, "version 4 accepted");
  CHECK_MSG (parse_edit (buf, 9, 3, true) == -EINVAL, "version 3 without a slot count accepted");
  CHECK_MSG (parse_edit (buf, 108, 1, true) == -EINVAL, "slot count in a version 2 header");
  CHECK_MSG (parse_edit (buf, 9, 0, true) == -EINVAL, "version 0 accepted");
  CHECK_MSG (parse_edit (buf, 9, 1, true) == 0, "version 1 refused");
  CHECK_MSG (parse_edit (buf, 39, 2, true) == -EINVAL, "unknown flag accepted");
  CHECK_MSG (parse_edit (buf, 39, 1, true) == -EINVAL, "re-encryption flag without a key");
  CHECK_MSG (parse_edit (buf, 10, 1, true) == -EINVAL, "copy B accepted as copy A");
  CHECK_MSG (parse_edit (buf, 11, 1, true) == -EINVAL, "reserved byte accepted");
  CHECK_MSG (parse_edit (buf, 34, 0x11, true) == -EINVAL, "sector size 0x1100 accepted");
  CHECK_MSG (parse_edit (buf, 29, 0x08, true) == -EINVAL, "data offset below 1 MiB accepted");
  CHECK_MSG (parse_edit (buf, 31, 0x01, true) == -EINVAL, "unaligned data offset accepted");
  CHECK_MSG (parse_edit (buf, 40, 'b', true) == -EINVAL, "unknown cipher accepted");
  CHECK_MSG (parse_edit (buf, 55, 'x', true) == -EINVAL, "unterminated cipher accepted");
  CHECK_MSG (parse_edit (buf, 60, 'x', true) == -EINVAL, "bytes after provider accepted");
  CHECK_MSG (parse_edit (buf, 104, 1, true) == -EINVAL, "kek id length 292 accepted");
  CHECK_MSG (parse_edit (buf, 105, 0, true) == -EINVAL, "kek id length 0 accepted");
  CHECK_MSG (parse_edit (buf, 105, 40, true) == -EINVAL, "kek id length past text accepted");
  CHECK_MSG (parse_edit (buf, 144 + 5, 0, true) == -EINVAL, "NUL inside kek id accepted");
  CHECK_MSG (parse_edit (buf, 106, 2, true) == -EINVAL, "wrapped length 584 accepted");
  CHECK_MSG (parse_edit (buf, 107, 71, true) == -EINVAL, "wrapped length 71 for aes-kwp accepted");
  CHECK_MSG (parse_edit (buf, 2000, 1, true) == -EINVAL, "reserved area byte accepted");
  CHECK_MSG (parse_edit (buf, 400 + 72, 1, true) == -EINVAL, "bytes after wrapped key accepted");
  CHECK_MSG (volume_header_parse (buf, 4095, 0, &p) == -EINVAL, "short buffer accepted");
  CHECK_MSG (volume_header_parse (buf, sizeof buf, 1, &p) == -EINVAL, "copy A accepted as B");
}

/* The encoder refuses what the parser would refuse. */
static void
test_header_encoder_refusals (void)
{
  struct volume_header h, p;
  uint8_t buf2[VH_AREA_SIZE];

  sample (&h); strcpy (h.kek_provider, "file"); strcpy (h.wrap, "kms");
  CHECK_MSG (volume_header_encode (&h, buf2, sizeof buf2) == -EINVAL, "file+kms encoded");
  sample (&h); h.kek_id[0] = '\0';
  CHECK_MSG (volume_header_encode (&h, buf2, sizeof buf2) == -EINVAL, "empty kek id encoded");
  sample (&h); h.sector_size = 1024;
  CHECK_MSG (volume_header_encode (&h, buf2, sizeof buf2) == -EINVAL, "sector 1024 encoded");
  sample (&h); strcpy (h.cipher, "aes-128-xts");
  CHECK_MSG (volume_header_encode (&h, buf2, sizeof buf2) == -EINVAL,
             "aes-128 with 72-byte wrapped key encoded");
  h.wrapped_dek_len = 40;
  CHECK_MSG (volume_header_encode (&h, buf2, sizeof buf2) == 0, "aes-128 with 40 bytes");
  sample (&h); strcpy (h.wrap, "kms"); h.wrapped_dek_len = 98; h.copy_index = 1;
  CHECK_MSG (volume_header_encode (&h, buf2, sizeof buf2) == 0 &&
             volume_header_parse (buf2, sizeof buf2, 1, &p) == 0 && p.wrapped_dek_len == 98,
             "kms wrap, copy B");
}

/* Key check value: deterministic, depends on key and UUID, constant-time check. */
static void
test_header_key_check_value (void)
{
  struct volume_header h;

  uint8_t dek[64], k1[32], k2[32];
  for (int i = 0; i < 64; i++) dek[i] = (uint8_t) i;
  sample (&h);
  CHECK_MSG (volume_kcv (dek, 64, h.uuid, k1) == 0 && volume_kcv (dek, 64, h.uuid, k2) == 0 &&
             memcmp (k1, k2, 32) == 0, "kcv deterministic");
  memcpy (h.kcv, k1, 32);
  CHECK_MSG (volume_kcv_check (dek, 64, &h) == 0, "kcv check");
  dek[63] ^= 1;
  CHECK_MSG (volume_kcv_check (dek, 64, &h) == -EKEYREJECTED, "kcv with wrong key accepted");
  dek[63] ^= 1; h.uuid[0] ^= 1;
  CHECK_MSG (volume_kcv_check (dek, 64, &h) == -EKEYREJECTED, "kcv with other uuid accepted");
}

/* Version 2 header MAC: every field that changes how data is read is sealed, a downgrade to
 * version 1 is caught, what a rewrap changes is not sealed, version 1 checks its KCV. */
static void
test_header_mac_seals_fields (void)
{
  struct volume_header s2, e;
  uint8_t dek[64];

  for (int i = 0; i < 64; i++) dek[i] = (uint8_t) i;
  sample (&s2);
  CHECK_MSG (volume_header_seal (&s2, dek, 64) == 0 && s2.version == 2, "seal");
  CHECK_MSG (volume_header_check_key (dek, 64, &s2) == 0, "sealed header refused");
  e = s2; e.sector_size = 512;
  CHECK_MSG (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED &&
             strstr (ncr_last_error (), "header authentication failed"), "sector size edit");
  e = s2; e.data_offset += 4096;
  CHECK_MSG (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "data offset edit");
  e = s2; strcpy (e.cipher, "aes-128-xts");
  CHECK_MSG (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "cipher edit");
  e = s2; e.uuid[15] ^= 1;
  CHECK_MSG (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "uuid edit");
  e = s2; e.flags = 1;
  CHECK_MSG (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "flags edit");
  e = s2; e.version = 1;
  CHECK_MSG (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "downgrade to v1");
  dek[0] ^= 1;
  CHECK_MSG (volume_header_check_key (dek, 64, &s2) == -EKEYREJECTED, "wrong key accepted");
  dek[0] ^= 1;
  e = s2; e.sequence = 99; e.copy_index = 1; strcpy (e.kek_id, "other"); e.wrapped_dek[0] ^= 1;
  strcpy (e.wrap, "kms"); e.wrapped_dek_len = 98;
  CHECK_MSG (volume_header_check_key (dek, 64, &e) == 0, "rewrapped header refused");
  e = s2; e.version = 1;
  CHECK_MSG (volume_kcv (dek, 64, e.uuid, e.kcv) == 0 &&
             volume_header_check_key (dek, 64, &e) == 0, "v1 kcv");
}

/* Two copies of one volume (a rewrap between them) agree; copies of two volumes do not. */
static void
test_header_copy_identity (void)
{
  struct volume_header s2, e;
  uint8_t dek[64];
  char why[120];

  for (int i = 0; i < 64; i++) dek[i] = (uint8_t) i;
  sample (&s2);
  CHECK_MSG (volume_header_seal (&s2, dek, 64) == 0, "seal");
  e = s2; e.sequence = 8; e.copy_index = 1; strcpy (e.kek_id, "new");
  CHECK_MSG (volume_header_same_volume (&s2, &e, why, sizeof why), "rewrap seen as other volume");
  e = s2; e.uuid[0] ^= 1;
  CHECK_MSG (!volume_header_same_volume (&s2, &e, why, sizeof why) && strstr (why, "UUID"),
             "other uuid: %s", why);
  e = s2; e.sector_size = 512;
  CHECK_MSG (!volume_header_same_volume (&s2, &e, why, sizeof why) &&
             strstr (why, "sector size"), "other sector size: %s", why);
  e = s2; e.data_offset *= 2;
  CHECK_MSG (!volume_header_same_volume (&s2, &e, why, sizeof why), "other data offset");
  e = s2; e.kcv[3] ^= 1;
  CHECK_MSG (!volume_header_same_volume (&s2, &e, why, sizeof why) && strstr (why, "data key"),
             "other key: %s", why);
  e.version = 1;                  /* an interrupted upgrade: v1 KCV next to a v2 MAC */
  CHECK_MSG (volume_header_same_volume (&s2, &e, why, sizeof why), "upgrade seen as other volume");
}

/* The re-encryption flag with the wrapped next DEK at 3336: round trip, documented bytes,
 * damage refused, in the MAC; a flagged and an unflagged copy are one volume. */
static void
test_header_reencrypt_flag (void)
{
  struct volume_header h, p, e;
  uint8_t buf[VH_AREA_SIZE], dek[64];
  char why[120];

  for (int i = 0; i < 64; i++) dek[i] = (uint8_t) i;
  sample (&h);
  h.flags = VH_FLAG_REENCRYPT;
  h.next_dek_len = 72;
  for (int i = 0; i < 72; i++) h.next_dek[i] = (uint8_t) (0x80 + i);
  CHECK_MSG (volume_header_seal (&h, dek, 64) == 0, "seal");
  REQUIRE (volume_header_encode (&h, buf, sizeof buf) == 0);
  CHECK_MSG (volume_header_parse (buf, sizeof buf, 0, &p) == 0 &&
             memcmp (&h, &p, sizeof h) == 0, "flagged header round trip");
  CHECK_MSG (buf[39] == 1 && buf[3336] == 0 && buf[3337] == 72 && buf[3340] == 0x80 &&
             buf[3340 + 71] == 0x80 + 71 && buf[3340 + 72] == 0, "documented positions");
  CHECK_MSG (parse_edit (buf, 3337, 71, true) == -EINVAL, "next DEK length 71 accepted");
  CHECK_MSG (parse_edit (buf, 3338, 1, true) == -EINVAL, "reserved byte at 3338 accepted");
  CHECK_MSG (parse_edit (buf, 3340 + 72, 1, true) == -EINVAL, "byte after the next DEK");
  CHECK_MSG (parse_edit (buf, 9, 1, true) == -EINVAL, "flagged version 1 accepted");
  CHECK_MSG (parse_edit (buf, 39, 0, true) == -EINVAL, "next DEK without the flag accepted");
  CHECK_MSG (volume_header_check_key (dek, 64, &h) == 0, "sealed flagged header refused");
  e = h; e.next_dek[5] ^= 1;
  CHECK_MSG (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "next DEK not in the MAC");
  e = h; e.flags = 0; e.next_dek_len = 0; memset (e.next_dek, 0, sizeof e.next_dek);
  CHECK_MSG (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "flag not in the MAC");
  CHECK_MSG (volume_header_seal (&e, dek, 64) == 0 &&
             volume_header_same_volume (&h, &e, why, sizeof why), "start/end of a run: %s", why);
  e.uuid[0] ^= 1;
  CHECK_MSG (!volume_header_same_volume (&h, &e, why, sizeof why), "other volume accepted");
}

/* A keyslot at its longest: a 255-byte KEK id and a 512-byte wrapped key. */
static void
long_slot (struct volume_keyslot *k, char tag)
{
  memset (k, 0, sizeof *k);
  strcpy (k->kek_provider, "kmip");
  strcpy (k->wrap, "kms");
  memset (k->kek_id, tag, VH_MAX_KEK_ID);
  k->wrapped_dek_len = VH_MAX_WRAPPED_DEK;
  for (unsigned i = 0; i < VH_MAX_WRAPPED_DEK; i++) k->wrapped_dek[i] = (uint8_t) (i + tag);
}

/* Version 3: four slots at their longest fit the area, round trip, sit where docs/format.md
 * says; counts, duplicates and stray bytes in unused slot records are refused. */
static void
test_header_keyslots_layout (void)
{
  struct volume_header h, p;
  struct volume_keyslot k;
  uint8_t buf[VH_AREA_SIZE], buf2[VH_AREA_SIZE];

  sample (&h);
  long_slot (&h.slot[0], 'a');
  for (char t = 'b'; t <= 'd'; t++) {
    long_slot (&k, t);
    CHECK_MSG (volume_header_add_slot (&h, &k) == 0, "add slot %c", t);
  }
  h.version = VH_VERSION;
  CHECK_MSG (volume_header_slots (&h) == 4, "4 slots");
  CHECK_MSG (volume_header_encode (&h, buf, sizeof buf) == 0, "encode 4 longest slots");
  CHECK_MSG (volume_header_parse (buf, sizeof buf, 0, &p) == 0, "parse 4 slots");
  CHECK_MSG (memcmp (&h, &p, sizeof h) == 0, "4-slot round trip differs");
  CHECK_MSG (volume_header_encode (&p, buf2, sizeof buf2) == 0 &&
             memcmp (buf, buf2, sizeof buf) == 0, "4-slot encoding not canonical");
  CHECK_MSG (buf[9] == 3 && buf[108] == 4, "version 3, slot count at 108");
  CHECK_MSG (buf[104] == 0 && buf[105] == 255 && buf[144] == 'a', "slot 0 where v2 had it");
  CHECK_MSG (memcmp (buf + 912, "kmip", 4) == 0 && memcmp (buf + 928, "kms", 3) == 0,
             "slot 1 names at 912/928");
  CHECK_MSG (buf[945] == 255 && buf[946] == 2 && buf[947] == 0, "slot 1 lengths at 944/946");
  CHECK_MSG (buf[952] == 'b' && buf[952 + 254] == 'b' && buf[1208] == (uint8_t) 'b',
             "slot 1 id at 952, wrapped key at 1208");
  CHECK_MSG (buf[912 + 2 * 808 + 40] == 'd', "slot 3 at 2528");
  for (unsigned i = 3336; i < 4064; i++)
    if (buf[i]) {
      CHECK_MSG (0, "byte %u after the slots is not zero", i);
      break;
    }
  CHECK_MSG (parse_edit (buf, 108, 5, true) == -EINVAL, "5 slots accepted");
  CHECK_MSG (parse_edit (buf, 108, 0, true) == -EINVAL, "0 slots accepted");
  CHECK_MSG (parse_edit (buf, 912 + 36, 1, true) == -EINVAL, "slot reserved byte accepted");
  CHECK_MSG (parse_edit (buf, 912 + 808 + 16, 'x', true) == -EINVAL, "bad slot 2 wrap accepted");
  /* Three slots: the fourth record must be zero. */
  CHECK_MSG (parse_edit (buf, 108, 3, true) == -EINVAL, "stray unused slot record accepted");
  CHECK_MSG (volume_header_remove_slot (&h, 3) == 0 &&
             volume_header_encode (&h, buf, sizeof buf) == 0 &&
             parse_edit (buf, 912 + 2 * 808 + 300, 1, true) == -EINVAL,
             "byte in an unused slot record accepted");
  /* Duplicates: the same KEK in two slots is refused when parsed (built here by hand). */
  memcpy (buf + 912 + 808 + 40, buf + 144, 255);
  CHECK_MSG (parse_edit (buf, 0, 'N', true) == -EINVAL &&
             strstr (ncr_last_error (), "same KEK"), "duplicate slot accepted");
  /* Version 2 holds one slot. */
  h.version = VH_VERSION_MAC;
  CHECK_MSG (volume_header_encode (&h, buf, sizeof buf) == -EINVAL, "v2 with 3 slots encoded");
}

/* Adding and removing slots; the MAC seals no slot, and the version follows the slot count. */
static void
test_header_keyslots_edit (void)
{
  struct volume_header h, e;
  struct volume_keyslot k;
  uint8_t dek[64];
  char why[120];

  for (int i = 0; i < 64; i++) dek[i] = (uint8_t) (7 * i);
  sample (&h);
  CHECK_MSG (volume_header_seal (&h, dek, 64) == 0 && h.version == 2, "one slot seals as v2");
  e = h;
  CHECK_MSG (volume_header_remove_slot (&e, 0) == -EINVAL &&
             strstr (ncr_last_error (), "last"), "last slot removed");
  k = h.slot[0];
  CHECK_MSG (volume_header_add_slot (&e, &k) == -EEXIST, "duplicate slot added");
  strcpy (k.kek_provider, "file");
  strcpy (k.kek_id, "sha256:00112233445566778899aabbccddeeff");
  CHECK_MSG (volume_header_add_slot (&e, &k) == 0 && e.n_extra == 1, "file slot added");
  CHECK_MSG (volume_header_find_slot (&e, "file", k.kek_id) == 1 &&
             volume_header_find_slot (&e, "kmip", k.kek_id) == -1, "find slot");
  CHECK_MSG (volume_header_seal (&e, dek, 64) == 0 && e.version == 3, "two slots seal as v3");
  CHECK_MSG (volume_header_same_volume (&h, &e, why, sizeof why), "add-kek seen as other volume");
  strcpy (k.kek_id, "x2");
  strcpy (k.kek_provider, "kmip");
  CHECK_MSG (volume_header_add_slot (&e, &k) == 0, "third slot");
  strcpy (k.kek_id, "x3");
  CHECK_MSG (volume_header_add_slot (&e, &k) == 0, "fourth slot");
  strcpy (k.kek_id, "x4");
  CHECK_MSG (volume_header_add_slot (&e, &k) == -ENOSPC, "fifth slot added");
  /* Slots are not sealed: the MAC holds with any slot table of the same version. */
  CHECK_MSG (volume_header_check_key (dek, 64, &e) == 0, "slot added after sealing refused");
  CHECK_MSG (volume_header_remove_slot (&e, 1) == 0 && e.n_extra == 2 &&
             strcmp (e.slot[1].kek_id, "x2") == 0 && strcmp (e.slot[2].kek_id, "x3") == 0,
             "remove slot 1 moves the later ones down");
  CHECK_MSG (volume_header_check_key (dek, 64, &e) == 0, "slot removed after sealing refused");
  e.version = 2;
  CHECK_MSG (volume_header_check_key (dek, 64, &e) == -EKEYREJECTED, "v3 relabelled v2");
  CHECK_MSG (volume_header_remove_slot (&e, 0) == 0 && volume_header_remove_slot (&e, 0) == 0 &&
             e.n_extra == 0 && strcmp (e.kek_id, "x3") == 0, "slot 0 removed");
  CHECK_MSG (volume_header_seal (&e, dek, 64) == 0 && e.version == 2 &&
             memcmp (e.kcv, h.kcv, VH_KCV_LEN) == 0, "back to one slot: v2, the same MAC");
}

int
main (void)
{
  RUN (test_header_round_trip);
  RUN (test_header_documented_positions);
  RUN (test_header_damage_refused);
  RUN (test_header_encoder_refusals);
  RUN (test_header_key_check_value);
  RUN (test_header_mac_seals_fields);
  RUN (test_header_copy_identity);
  RUN (test_header_keyslots_layout);
  RUN (test_header_keyslots_edit);
  RUN (test_header_reencrypt_flag);
  return check_exit ();
}
