/* SPDX-License-Identifier: BSD-3-Clause */
/* Encode and parse the on-disk volume header. This is the single place that reads header bytes
 * from a target; every field is bounds-checked and the encoding is canonical (reserved bytes and
 * string padding must be zero), so parse(encode(h)) == h and encode(parse(b)) == b. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>


#include "cleanup.h"
#include "errors.h"
#include "backend.h"
#include "volume-header.h"

/* Byte offsets inside one 4096-byte copy; docs/format.md has the same table. */
enum {
  OFF_MAGIC = 0,          /* 8  "NBDCRYPT" */
  OFF_VERSION = 8,        /* 2  u16 BE */
  OFF_COPY = 10,          /* 1  0 = A, 1 = B */
  OFF_RSVD1 = 11,         /* 1  zero */
  OFF_AREA = 12,          /* 4  u32 BE, 4096 */
  OFF_SEQ = 16,           /* 8  u64 BE */
  OFF_DATA_OFFSET = 24,   /* 8  u64 BE */
  OFF_SECTOR = 32,        /* 4  u32 BE */
  OFF_FLAGS = 36,         /* 4  u32 BE, zero (reserved in version 1) */
  OFF_CIPHER = 40,        /* 16 NUL-padded ASCII */
  OFF_PROVIDER = 56,      /* 16 NUL-padded ASCII */
  OFF_WRAP = 72,          /* 16 NUL-padded ASCII */
  OFF_UUID = 88,          /* 16 */
  OFF_KEK_ID_LEN = 104,   /* 2  u16 BE */
  OFF_WDEK_LEN = 106,     /* 2  u16 BE */
  OFF_NSLOTS = 108,       /* 1  v3: keyslots in use, 1..4; v1/v2: zero */
  OFF_RSVD3 = 109,        /* 3  zero */
  OFF_KCV = 112,          /* 32 key check value (v1) or header MAC (v2, v3) */
  OFF_KEK_ID = 144,       /* 256 (VH_MAX_KEK_ID + 1, zero padded) */
  OFF_WDEK = 400,         /* 512 */
  OFF_SLOTS = 912,        /* v3: slots 1..3, SLOT_REC bytes each, zero when unused */
  OFF_RSVD4 = 912 + 3 * 808,  /* zero (v1/v2: from OFF_SLOTS) */
  OFF_NEXT_LEN = OFF_RSVD4,   /* 2  u16 BE: with VH_FLAG_REENCRYPT, the next DEK's length */
  OFF_NEXT_RSVD = OFF_NEXT_LEN + 2,   /* 2 zero */
  OFF_NEXT_DEK = OFF_NEXT_LEN + 4,    /* VH_MAX_NEXT_DEK: the wrapped next DEK, zero padded */
  OFF_RSVD5 = OFF_NEXT_DEK + VH_MAX_NEXT_DEK,  /* up to the checksum: zero */
  OFF_CHECKSUM = 4064,    /* 32 SHA-256 over bytes [0, 4064) */
  NAME_FIELD = 16,
  KEK_ID_FIELD = 256,
  /* One slot record of slots 1..3 (slot 0 keeps the version 1/2 places above). */
  SLOT_PROVIDER = 0,      /* 16 */
  SLOT_WRAP = 16,         /* 16 */
  SLOT_KEK_ID_LEN = 32,   /* 2 */
  SLOT_WDEK_LEN = 34,     /* 2 */
  SLOT_RSVD = 36,         /* 4 zero */
  SLOT_KEK_ID = 40,       /* 256 */
  SLOT_WDEK = 296,        /* 512 */
  SLOT_REC = 808,
};

_Static_assert (OFF_KEK_ID + KEK_ID_FIELD == OFF_WDEK, "layout");
_Static_assert (OFF_WDEK + VH_MAX_WRAPPED_DEK == OFF_SLOTS, "layout");
_Static_assert (SLOT_KEK_ID + KEK_ID_FIELD == SLOT_WDEK, "layout");
_Static_assert (SLOT_WDEK + VH_MAX_WRAPPED_DEK == SLOT_REC, "layout");
_Static_assert (OFF_SLOTS + (VH_MAX_SLOTS - 1) * SLOT_REC == OFF_RSVD4, "layout");
_Static_assert (OFF_RSVD5 <= OFF_CHECKSUM, "four keyslots and a next DEK fit in one area");
_Static_assert (OFF_CHECKSUM + 32 == VH_AREA_SIZE, "layout");
/* The slot-0 names alias slot[0] exactly. */
_Static_assert (offsetof (struct volume_header, kek_provider) ==
                offsetof (struct volume_header, slot[0].kek_provider), "alias");
_Static_assert (offsetof (struct volume_header, kek_id) ==
                offsetof (struct volume_header, slot[0].kek_id), "alias");
_Static_assert (offsetof (struct volume_header, wrapped_dek_len) ==
                offsetof (struct volume_header, slot[0].wrapped_dek_len), "alias");
_Static_assert (offsetof (struct volume_header, wrapped_dek) ==
                offsetof (struct volume_header, slot[0].wrapped_dek), "alias");

/* Where slot i's fields sit in an area. */
struct slot_place {
  unsigned provider, wrap, kek_id_len, wdek_len, kek_id, wdek;
};

static struct slot_place
slot_place (unsigned i)
{
  unsigned b = OFF_SLOTS + (i - 1) * SLOT_REC;

  if (i == 0)
    return (struct slot_place) { OFF_PROVIDER, OFF_WRAP, OFF_KEK_ID_LEN, OFF_WDEK_LEN,
                                 OFF_KEK_ID, OFF_WDEK };
  return (struct slot_place) { b + SLOT_PROVIDER, b + SLOT_WRAP, b + SLOT_KEK_ID_LEN,
                               b + SLOT_WDEK_LEN, b + SLOT_KEK_ID, b + SLOT_WDEK };
}
_Static_assert (VH_COPY_B_OFFSET + VH_AREA_SIZE <= VH_MIN_DATA_OFFSET, "layout");

static const char kcv_label[] = "nbdcrypt key check v1";
static const char mac_info[] = "nbdcrypt header mac v2";

static uint16_t get16 (const uint8_t *p) { return (uint16_t) (p[0] << 8 | p[1]); }
static uint32_t
get32 (const uint8_t *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}
static uint64_t get64 (const uint8_t *p) { return (uint64_t) get32 (p) << 32 | get32 (p + 4); }
static void put16 (uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void
put32 (uint8_t *p, uint32_t v)
{
  p[0] = v >> 24; p[1] = (v >> 16) & 0xff; p[2] = (v >> 8) & 0xff; p[3] = v & 0xff;
}
static void put64 (uint8_t *p, uint64_t v) { put32 (p, v >> 32); put32 (p + 4, v & 0xffffffff); }

static bool
all_zero (const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

static bool
in_list (const char *s, const char *const *list)
{
  for (; *list; list++)
    if (strcmp (s, *list) == 0)
      return true;
  return false;
}

/* A NUL-padded ASCII name field: 1..15 printable characters, then only NULs. */
static int
get_name (const uint8_t *p, char out[VH_MAX_NAME + 1], const char *what)
{
  size_t n = strnlen ((const char *) p, NAME_FIELD);

  if (n == 0 || n == NAME_FIELD)
    return ncr_error (EINVAL, "volume header: %s field is empty or not terminated", what);
  for (size_t i = 0; i < n; i++)
    if (p[i] < 0x21 || p[i] > 0x7e)
      return ncr_error (EINVAL, "volume header: %s field has a non-printable byte", what);
  if (!all_zero (p + n, NAME_FIELD - n))
    return ncr_error (EINVAL, "volume header: %s field has bytes after its end", what);
  memcpy (out, p, n);
  out[n] = '\0';
  return 0;
}

/* One keyslot's values; slot i for the messages. */
static int
validate_slot (const struct volume_keyslot *k, const char *cipher, unsigned i)
{
  static const char *const providers[] = { "kmip", "file", NULL };
  static const char *const wraps[] = { "aes-kwp", "kms", NULL };
  size_t n;

  if (!in_list (k->kek_provider, providers))
    return ncr_error (EINVAL, "volume header: slot %u: unknown KEK provider '%.15s'", i,
                      k->kek_provider);
  if (!in_list (k->wrap, wraps))
    return ncr_error (EINVAL, "volume header: slot %u: unknown wrap mode '%.15s'", i,
                      k->wrap);
  if (strcmp (k->kek_provider, "file") == 0 && strcmp (k->wrap, "aes-kwp") != 0)
    return ncr_error (EINVAL, "volume header: slot %u: a KEK file only supports wrap aes-kwp",
                      i);
  n = strnlen (k->kek_id, sizeof k->kek_id);
  if (n == 0 || n > VH_MAX_KEK_ID)
    return ncr_error (EINVAL, "volume header: slot %u: KEK id is empty or longer than %u "
                      "bytes", i, VH_MAX_KEK_ID);
  for (size_t j = 0; j < n; j++)
    if ((unsigned char) k->kek_id[j] < 0x20 || (unsigned char) k->kek_id[j] > 0x7e)
      return ncr_error (EINVAL, "volume header: slot %u: KEK id has a non-printable byte", i);
  if (k->wrapped_dek_len == 0 || k->wrapped_dek_len > VH_MAX_WRAPPED_DEK)
    return ncr_error (EINVAL, "volume header: slot %u: wrapped key length %u out of range "
                      "(1..%u)", i, k->wrapped_dek_len, VH_MAX_WRAPPED_DEK);
  if (strcmp (k->wrap, "aes-kwp") == 0) {
    /* RFC 5649 output is the key rounded up to 8 bytes plus the 8-byte integrity block. */
    uint32_t want = strcmp (cipher, "aes-256-xts") == 0 ? 72 : 40;
    if (k->wrapped_dek_len != want)
      return ncr_error (EINVAL, "volume header: slot %u: wrapped key is %u bytes, %s wants "
                        "%u", i, k->wrapped_dek_len, cipher, want);
  }
  return 0;
}

int
volume_header_validate (const struct volume_header *h)
{
  static const char *const ciphers[] = { "aes-256-xts", "aes-128-xts", NULL };
  int r;

  if (!in_list (h->cipher, ciphers))
    return ncr_error (EINVAL, "volume header: unknown cipher '%.15s'", h->cipher);
  if (h->sector_size != 512 && h->sector_size != 4096)
    return ncr_error (EINVAL, "volume header: sector size %u is not 512 or 4096",
                      h->sector_size);
  if (h->data_offset < VH_MIN_DATA_OFFSET || h->data_offset > VH_MAX_DATA_OFFSET ||
      h->data_offset % 4096 != 0)
    return ncr_error (EINVAL, "volume header: data offset %llu is not a multiple of 4096 "
                      "between 1 MiB and 1 GiB", (unsigned long long) h->data_offset);
  if (h->version < VH_VERSION_MIN || h->version > VH_VERSION)
    return ncr_error (EINVAL, "volume header: version %u is not supported (this nbdcrypt "
                      "reads versions %u to %u)", h->version, VH_VERSION_MIN, VH_VERSION);
  if ((h->flags & ~VH_FLAGS_REENCRYPT) != 0 || (h->flags != 0 && h->version < VH_VERSION_MAC) ||
      (h->flags & VH_FLAGS_REENCRYPT) == VH_FLAG_REENCRYPT_ONLINE)
    return ncr_error (EINVAL, "volume header: unknown flags 0x%x (written by a newer "
                      "nbdcrypt?)", h->flags);
  if (h->flags & VH_FLAG_REENCRYPT) {
    /* RFC 5649 output for the cipher's key length, as a slot's aes-kwp key. */
    uint32_t want = strcmp (h->cipher, "aes-256-xts") == 0 ? 72 : 40;
    if (h->next_dek_len != want)
      return ncr_error (EINVAL, "volume header: the next data key (re-encryption) is %u "
                        "bytes, %s wants %u", h->next_dek_len, h->cipher, want);
  }
  else if (h->next_dek_len != 0)
    return ncr_error (EINVAL, "volume header: a next data key without the re-encryption "
                      "flag");
  if (h->copy_index > 1)
    return ncr_error (EINVAL, "volume header: copy index %u is not 0 or 1", h->copy_index);
  if (h->n_extra > VH_MAX_SLOTS - 1)
    return ncr_error (EINVAL, "volume header: %u keyslots, at most %u", h->n_extra + 1,
                      VH_MAX_SLOTS);
  if (h->n_extra > 0 && h->version < 3)
    return ncr_error (EINVAL, "volume header: version %u holds one keyslot, not %u",
                      h->version, h->n_extra + 1);
  for (unsigned i = 0; i <= h->n_extra; i++) {
    if ((r = validate_slot (&h->slot[i], h->cipher, i)) < 0)
      return r;
    /* One KEK, one slot: a second copy could only disagree with the first. */
    for (unsigned j = 0; j < i; j++)
      if (strcmp (h->slot[i].kek_provider, h->slot[j].kek_provider) == 0 &&
          strcmp (h->slot[i].kek_id, h->slot[j].kek_id) == 0)
        return ncr_error (EINVAL, "volume header: slots %u and %u hold the same KEK (%s %s)",
                          j, i, h->slot[i].kek_provider, h->slot[i].kek_id);
  }
  return 0;
}

int
volume_header_find_slot (const struct volume_header *h, const char *provider,
                         const char *kek_id)
{
  for (unsigned i = 0; i <= h->n_extra && i < VH_MAX_SLOTS; i++)
    if (strcmp (h->slot[i].kek_provider, provider) == 0 &&
        strcmp (h->slot[i].kek_id, kek_id) == 0)
      return (int) i;
  return -1;
}

int
volume_header_add_slot (struct volume_header *h, const struct volume_keyslot *s)
{
  int r;

  if (volume_header_find_slot (h, s->kek_provider, s->kek_id) >= 0)
    return ncr_error (EEXIST, "the volume already has a keyslot for %s KEK %s", s->kek_provider,
                      s->kek_id);
  if (volume_header_slots (h) >= VH_MAX_SLOTS)
    return ncr_error (ENOSPC, "the volume has %u keyslots, the most a header holds; remove one "
                      "first ('nbdcrypt remove-kek')", VH_MAX_SLOTS);
  if ((r = validate_slot (s, h->cipher, h->n_extra + 1)) < 0)
    return r;
  h->n_extra++;
  h->slot[h->n_extra] = *s;
  return 0;
}

int
volume_header_remove_slot (struct volume_header *h, unsigned i)
{
  if (i > h->n_extra)
    return ncr_error (EINVAL, "there is no keyslot %u (the volume has slots 0 to %u)", i,
                      h->n_extra);
  if (h->n_extra == 0)
    return ncr_error (EINVAL, "keyslot %u is the volume's last: removing it would lose the "
                      "data key and all data; add another KEK first ('nbdcrypt add-kek')", i);
  for (unsigned j = i; j < h->n_extra; j++)
    h->slot[j] = h->slot[j + 1];
  explicit_bzero (&h->slot[h->n_extra], sizeof h->slot[h->n_extra]);
  h->n_extra--;
  return 0;
}

bool
volume_header_has_magic (const uint8_t *buf, size_t len)
{
  return len >= 8 && memcmp (buf, VH_MAGIC, 8) == 0;
}

/* SHA-256 of the area before the checksum field: what the checksum covers. */
static int
checksum (const uint8_t *buf, uint8_t out[CRYPTO_SHA256_LEN])
{
  struct iovec part = { .iov_base = (void *) buf, .iov_len = OFF_CHECKSUM };
  return crypto_sha256 (&part, 1, out);
}

/* Keyslot i of an area: names, then the length-prefixed KEK id and wrapped DEK, each in a
 * fixed field whose bytes after the value must be zero. */
static int
get_slot (const uint8_t *buf, unsigned i, struct volume_keyslot *k)
{
  struct slot_place p = slot_place (i);
  uint16_t kek_id_len, wdek_len;
  char what[40];
  int r;

  snprintf (what, sizeof what, "KEK provider (slot %u)", i);
  if ((r = get_name (buf + p.provider, k->kek_provider, what)) < 0)
    return r;
  snprintf (what, sizeof what, "wrap (slot %u)", i);
  if ((r = get_name (buf + p.wrap, k->wrap, what)) < 0)
    return r;
  if (i > 0 && !all_zero (buf + p.provider - SLOT_PROVIDER + SLOT_RSVD, 4))
    return ncr_error (EINVAL, "volume header: reserved bytes are not zero");

  kek_id_len = get16 (buf + p.kek_id_len);
  if (kek_id_len == 0 || kek_id_len > VH_MAX_KEK_ID)
    return ncr_error (EINVAL, "volume header: slot %u: KEK id length %u out of range (1..%u)",
                      i, kek_id_len, VH_MAX_KEK_ID);
  if (memchr (buf + p.kek_id, 0, kek_id_len) != NULL ||
      !all_zero (buf + p.kek_id + kek_id_len, KEK_ID_FIELD - kek_id_len))
    return ncr_error (EINVAL, "volume header: slot %u: KEK id field is malformed", i);
  memcpy (k->kek_id, buf + p.kek_id, kek_id_len);
  k->kek_id[kek_id_len] = '\0';

  wdek_len = get16 (buf + p.wdek_len);
  if (wdek_len == 0 || wdek_len > VH_MAX_WRAPPED_DEK)
    return ncr_error (EINVAL, "volume header: slot %u: wrapped key length %u out of range "
                      "(1..%u)", i, wdek_len, VH_MAX_WRAPPED_DEK);
  if (!all_zero (buf + p.wdek + wdek_len, VH_MAX_WRAPPED_DEK - wdek_len))
    return ncr_error (EINVAL, "volume header: slot %u: bytes after the wrapped key are not "
                      "zero", i);
  k->wrapped_dek_len = wdek_len;
  memcpy (k->wrapped_dek, buf + p.wdek, wdek_len);
  return 0;
}

int
volume_header_parse (const uint8_t *buf, size_t len, unsigned expected_copy,
                     struct volume_header *out)
{
  uint8_t sum[CRYPTO_SHA256_LEN];
  uint16_t version;
  unsigned nslots, used_end, next_end;
  int r;

  memset (out, 0, sizeof *out);
  if (len < VH_AREA_SIZE)
    return ncr_error (EINVAL, "volume header: short read (%zu of %u bytes)", len, VH_AREA_SIZE);
  if (!volume_header_has_magic (buf, len))
    return ncr_error (ENOENT, "no nbdcrypt header (magic not found)");
  /* Checksum before anything else: a torn write must read as "corrupt", never as values. */
  if ((r = checksum (buf, sum)) < 0)
    return r;
  if (crypto_ct_memcmp (sum, buf + OFF_CHECKSUM, sizeof sum) != 0)
    return ncr_error (EINVAL, "volume header: checksum mismatch (corrupt or torn write)");
  version = get16 (buf + OFF_VERSION);
  if (version < VH_VERSION_MIN || version > VH_VERSION)
    return ncr_error (EINVAL, "volume header: version %u is not supported (this nbdcrypt "
                      "reads versions %u to %u)", version, VH_VERSION_MIN, VH_VERSION);
  if (get32 (buf + OFF_AREA) != VH_AREA_SIZE)
    return ncr_error (EINVAL, "volume header: area size %u is not %u",
                      get32 (buf + OFF_AREA), VH_AREA_SIZE);
  nslots = version >= 3 ? buf[OFF_NSLOTS] : 1;
  if (version < 3 && buf[OFF_NSLOTS] != 0)
    return ncr_error (EINVAL, "volume header: reserved bytes are not zero");
  if (nslots < 1 || nslots > VH_MAX_SLOTS)
    return ncr_error (EINVAL, "volume header: keyslot count %u out of range (1..%u)", nslots,
                      VH_MAX_SLOTS);
  /* Version 1/2 headers end at the first slot; in version 3 unused slot records are zero. */
  used_end = version >= 3 ? OFF_SLOTS + (nslots - 1) * SLOT_REC : OFF_SLOTS;
  out->flags = get32 (buf + OFF_FLAGS);
  /* The next DEK field is used only while re-encrypting; the flag itself is checked by
   * volume_header_validate (any unknown bit refused). */
  next_end = (out->flags & VH_FLAG_REENCRYPT) ? OFF_NEXT_LEN : OFF_CHECKSUM;
  if (buf[OFF_RSVD1] || !all_zero (buf + OFF_RSVD3, 3) ||
      !all_zero (buf + used_end, next_end - used_end))
    return ncr_error (EINVAL, "volume header: reserved bytes are not zero");
  if (out->flags & VH_FLAG_REENCRYPT) {
    out->next_dek_len = get16 (buf + OFF_NEXT_LEN);
    if (out->next_dek_len == 0 || out->next_dek_len > VH_MAX_NEXT_DEK)
      return ncr_error (EINVAL, "volume header: next data key length %u out of range (1..%u)",
                        out->next_dek_len, VH_MAX_NEXT_DEK);
    if (!all_zero (buf + OFF_NEXT_RSVD, 2) ||
        !all_zero (buf + OFF_NEXT_DEK + out->next_dek_len,
                   OFF_CHECKSUM - OFF_NEXT_DEK - out->next_dek_len))
      return ncr_error (EINVAL, "volume header: reserved bytes are not zero");
    memcpy (out->next_dek, buf + OFF_NEXT_DEK, out->next_dek_len);
  }

  out->version = version;
  out->copy_index = buf[OFF_COPY];
  if (out->copy_index != expected_copy)
    return ncr_error (EINVAL, "volume header: copy %u found where copy %u belongs",
                      out->copy_index, expected_copy);
  out->sequence = get64 (buf + OFF_SEQ);
  out->data_offset = get64 (buf + OFF_DATA_OFFSET);
  out->sector_size = get32 (buf + OFF_SECTOR);
  if ((r = get_name (buf + OFF_CIPHER, out->cipher, "cipher")) < 0)
    return r;
  memcpy (out->uuid, buf + OFF_UUID, VH_UUID_LEN);
  for (unsigned i = 0; i < nslots; i++)
    if ((r = get_slot (buf, i, &out->slot[i])) < 0)
      return r;
  out->n_extra = nslots - 1;
  memcpy (out->kcv, buf + OFF_KCV, VH_KCV_LEN);

  return volume_header_validate (out);
}

int
volume_header_encode (const struct volume_header *h, uint8_t *buf, size_t len)
{
  size_t n;
  int r;

  if (len < VH_AREA_SIZE)
    return ncr_error (EINVAL, "volume header: buffer too small");
  if ((r = volume_header_validate (h)) < 0)
    return r;
  memset (buf, 0, VH_AREA_SIZE);
  memcpy (buf + OFF_MAGIC, VH_MAGIC, 8);
  put16 (buf + OFF_VERSION, h->version);
  put32 (buf + OFF_FLAGS, h->flags);
  buf[OFF_COPY] = h->copy_index;
  put32 (buf + OFF_AREA, VH_AREA_SIZE);
  put64 (buf + OFF_SEQ, h->sequence);
  put64 (buf + OFF_DATA_OFFSET, h->data_offset);
  put32 (buf + OFF_SECTOR, h->sector_size);
  /* validate() bounded these names to known values, all shorter than the field. */
  memcpy (buf + OFF_CIPHER, h->cipher, strlen (h->cipher));
  memcpy (buf + OFF_UUID, h->uuid, VH_UUID_LEN);
  if (h->version >= 3)
    buf[OFF_NSLOTS] = (uint8_t) volume_header_slots (h);
  for (unsigned i = 0; i <= h->n_extra; i++) {
    const struct volume_keyslot *k = &h->slot[i];
    struct slot_place p = slot_place (i);

    n = strnlen (k->kek_id, sizeof k->kek_id);
    memcpy (buf + p.provider, k->kek_provider, strlen (k->kek_provider));
    memcpy (buf + p.wrap, k->wrap, strlen (k->wrap));
    put16 (buf + p.kek_id_len, (uint16_t) n);
    put16 (buf + p.wdek_len, (uint16_t) k->wrapped_dek_len);
    memcpy (buf + p.kek_id, k->kek_id, n);
    memcpy (buf + p.wdek, k->wrapped_dek, k->wrapped_dek_len);
  }
  if (h->flags & VH_FLAG_REENCRYPT) {
    put16 (buf + OFF_NEXT_LEN, (uint16_t) h->next_dek_len);
    memcpy (buf + OFF_NEXT_DEK, h->next_dek, h->next_dek_len);
  }
  memcpy (buf + OFF_KCV, h->kcv, VH_KCV_LEN);
  return checksum (buf, buf + OFF_CHECKSUM);
}

int
volume_kcv (const uint8_t *dek, size_t dek_len, const uint8_t uuid[VH_UUID_LEN],
            uint8_t out[VH_KCV_LEN])
{
  uint8_t msg[sizeof kcv_label - 1 + VH_UUID_LEN];

  memcpy (msg, kcv_label, sizeof kcv_label - 1);
  memcpy (msg + sizeof kcv_label - 1, uuid, VH_UUID_LEN);
  if (crypto_hmac_sha256 (dek, dek_len, msg, sizeof msg, out) < 0)
    return ncr_error (EIO, "HMAC-SHA256 for the key check value failed");
  return 0;
}

/* The end of both key checks: r is how computing got went; got is compared with the header's
 * field in constant time and wiped; a mismatch is -EKEYREJECTED with the message given.
 * (An explicit wipe rather than CLEANUP_WIPE: clang flags its descriptor as unused.) */
static int
check_tag (int r, uint8_t got[VH_KCV_LEN], const struct volume_header *h, const char *mismatch)
{
  int diff = r == 0 ? crypto_ct_memcmp (got, h->kcv, VH_KCV_LEN) : 0;

  crypto_wipe (got, VH_KCV_LEN);
  if (r < 0)
    return r;
  if (diff != 0)
    return ncr_error (EKEYREJECTED, "%s", mismatch);
  return 0;
}

int
volume_kcv_check (const uint8_t *dek, size_t dek_len, const struct volume_header *h)
{
  uint8_t kcv[VH_KCV_LEN];

  return check_tag (volume_kcv (dek, dek_len, h->uuid, kcv), kcv, h,
                    "key check value mismatch: the unwrapped volume key is not this "
                    "volume's key");
}

/* The version 2 and 3 MAC: key from HKDF (so the DEK itself never keys anything but XTS and the
 * version 1 KCV), message = the fields that decide how sectors are read, fixed-width. */
static int
header_mac (const uint8_t *dek, size_t dek_len, const struct volume_header *h,
            uint8_t out[VH_KCV_LEN])
{
  uint8_t key[32], msg[2 + 4 + 4 + 8 + NAME_FIELD + VH_UUID_LEN + 2 + VH_MAX_NEXT_DEK] = { 0 };
  size_t len = 2 + 4 + 4 + 8 + NAME_FIELD + VH_UUID_LEN;
  int r;

  put16 (msg, h->version);
  put32 (msg + 2, h->flags);
  put32 (msg + 6, h->sector_size);
  put64 (msg + 10, h->data_offset);
  memcpy (msg + 18, h->cipher, strnlen (h->cipher, NAME_FIELD));
  memcpy (msg + 18 + NAME_FIELD, h->uuid, VH_UUID_LEN);
  /* While re-encrypting, the wrapped next DEK too: it decides which key reads each sector.
   * Without the flag the message is unchanged, so existing MACs stay valid. */
  if ((h->flags & VH_FLAG_REENCRYPT) && h->next_dek_len <= VH_MAX_NEXT_DEK) {
    put16 (msg + len, (uint16_t) h->next_dek_len);
    memcpy (msg + len + 2, h->next_dek, h->next_dek_len);
    len += 2 + h->next_dek_len;
  }
  r = crypto_hkdf_sha256 (dek, dek_len, NULL, 0, mac_info, key, sizeof key);
  if (r == 0)
    r = crypto_hmac_sha256 (key, sizeof key, msg, len, out);
  crypto_wipe (key, sizeof key);
  return r;
}

int
volume_header_seal (struct volume_header *h, const uint8_t *dek, size_t dek_len)
{
  /* The lowest version that holds the slots: a one-KEK volume stays readable by an nbdcrypt
   * that predates keyslots. */
  h->version = h->n_extra > 0 ? VH_VERSION : VH_VERSION_MAC;
  return header_mac (dek, dek_len, h, h->kcv);
}

int
volume_header_check_key (const uint8_t *dek, size_t dek_len, const struct volume_header *h)
{
  uint8_t mac[VH_KCV_LEN];

  if (h->version < VH_VERSION_MAC)
    return volume_kcv_check (dek, dek_len, h);
  return check_tag (header_mac (dek, dek_len, h, mac), mac, h,
                    "header authentication failed: the header's cipher, sector size, data "
                    "offset or UUID was changed, or the unwrapped key is not this volume's; "
                    "refusing to serve noise (restore the first 1 MiB from a backup)");
}

bool
volume_header_same_volume (const struct volume_header *a, const struct volume_header *b,
                           char *why, size_t why_size)
{
  char ua[37], ub[37];

  volume_uuid_str (a->uuid, ua);
  volume_uuid_str (b->uuid, ub);
  if (memcmp (a->uuid, b->uuid, VH_UUID_LEN) != 0)
    snprintf (why, why_size, "UUID %s / %s", ua, ub);
  else if (strcmp (a->cipher, b->cipher) != 0)
    snprintf (why, why_size, "cipher %s / %s", a->cipher, b->cipher);
  else if (a->sector_size != b->sector_size)
    snprintf (why, why_size, "sector size %u / %u", a->sector_size, b->sector_size);
  else if (a->data_offset != b->data_offset)
    snprintf (why, why_size, "data offset %llu / %llu", (unsigned long long) a->data_offset,
              (unsigned long long) b->data_offset);
  else if ((a->flags & ~VH_FLAGS_REENCRYPT) != (b->flags & ~VH_FLAGS_REENCRYPT))
    snprintf (why, why_size, "flags 0x%x / 0x%x", a->flags, b->flags);
  /* Same version: the KCV or MAC is a function of the DEK and the fields above only, so
   * copies of one volume hold the same bytes; different bytes mean a different data key.
   * Copies that differ in the re-encryption flag are one volume caught between the start or
   * the end of a re-encryption and the second copy's write: their MACs differ by design (the
   * wrapped next DEK; at the end, the new DEK). */
  else if ((a->flags & VH_FLAG_REENCRYPT) == (b->flags & VH_FLAG_REENCRYPT) &&
           a->version == b->version && crypto_ct_memcmp (a->kcv, b->kcv, VH_KCV_LEN) != 0)
    snprintf (why, why_size, "a different data key (key check value / header MAC)");
  else
    return true;
  return false;
}

void
volume_uuid_str (const uint8_t u[VH_UUID_LEN], char out[37])
{
  snprintf (out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
            "%02x%02x%02x%02x%02x%02x",
            u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
            u[10], u[11], u[12], u[13], u[14], u[15]);
}
