/* SPDX-License-Identifier: BSD-3-Clause */
/* The nbdcrypt on-disk volume header: two checksummed, sequence-numbered copies at the start of
 * the target, encoded and parsed here and nowhere else (layout: docs/format.md). A header holds
 * the data key wrapped under 1..VH_MAX_SLOTS key-encryption keys (keyslots). */
#ifndef NBDCRYPT_VOLUME_HEADER_H
#define NBDCRYPT_VOLUME_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VH_MAGIC            "NBDCRYPT"      /* 8 bytes, no NUL */
#define VH_VERSION          3               /* newest read and written (keyslots) */
#define VH_VERSION_MAC      2               /* first with the header MAC; one keyslot */
#define VH_VERSION_MIN      1               /* oldest still read (no header MAC) */
#define VH_MAX_SLOTS        4u              /* keyslots in one header (version 3) */
#define VH_AREA_SIZE        4096u           /* each copy is one 4096-byte area */
#define VH_COPY_A_OFFSET    0u
#define VH_COPY_B_OFFSET    (512u * 1024u)
#define VH_MIN_DATA_OFFSET  (1024u * 1024u) /* both copies sit below it */
#define VH_DEFAULT_DATA_OFFSET VH_MIN_DATA_OFFSET
#define VH_MAX_DATA_OFFSET  (1024ull * 1024 * 1024)
#define VH_MAX_KEK_ID       255u            /* bytes, plus a NUL in the parsed struct */
#define VH_MAX_WRAPPED_DEK  512u
#define VH_KCV_LEN          32u
#define VH_UUID_LEN         16u
#define VH_MAX_NAME         15u             /* cipher, provider and wrap names */
/* Flags (offset 36; versions 2 and 3). A reader that predates a flag refuses the header. */
#define VH_FLAG_REENCRYPT   0x1u            /* re-encryption in progress: next_dek is set */
#define VH_FLAG_REENCRYPT_ONLINE 0x2u       /* with REENCRYPT: the serving filter runs it */
#define VH_FLAGS_REENCRYPT  (VH_FLAG_REENCRYPT | VH_FLAG_REENCRYPT_ONLINE)
#define VH_MAX_NEXT_DEK     72u             /* the next DEK, AES-KWP wrapped (64 + 8 bytes) */

/* One keyslot: the DEK wrapped under one KEK. Strings are NUL-terminated; kek_id is opaque
 * text (a KMIP unique identifier, or "sha256:..." for a KEK file). */
struct volume_keyslot {
  char kek_provider[VH_MAX_NAME + 1];   /* "kmip" | "file" */
  char wrap[VH_MAX_NAME + 1];           /* "aes-kwp" | "kms" */
  char kek_id[VH_MAX_KEK_ID + 1];
  uint32_t wrapped_dek_len;
  uint8_t wrapped_dek[VH_MAX_WRAPPED_DEK];
};

/* A parsed header copy. Slot 0 is also reachable under the names of the one-KEK headers
 * (h->kek_id is h->slot[0].kek_id), so code written for one KEK reads the first slot. Slots
 * 1..n_extra are in use; a header filled field by field with n_extra = 0 has one slot. */
struct volume_header {
  uint16_t version;                     /* VH_VERSION_MIN..VH_VERSION */
  uint32_t flags;                       /* 0, or VH_FLAG_REENCRYPT (| _ONLINE) */
  uint64_t sequence;
  uint64_t data_offset;                 /* bytes, multiple of 4096, >= VH_MIN_DATA_OFFSET */
  uint32_t sector_size;                 /* 512 or 4096 */
  uint8_t copy_index;                   /* 0 = copy A, 1 = copy B */
  char cipher[VH_MAX_NAME + 1];         /* "aes-256-xts" | "aes-128-xts" */
  uint8_t uuid[VH_UUID_LEN];
  union {
    struct volume_keyslot slot[VH_MAX_SLOTS];
    struct {                            /* slot[0], field for field */
      char kek_provider[VH_MAX_NAME + 1];
      char wrap[VH_MAX_NAME + 1];
      char kek_id[VH_MAX_KEK_ID + 1];
      uint32_t wrapped_dek_len;
      uint8_t wrapped_dek[VH_MAX_WRAPPED_DEK];
    };
  };
  unsigned n_extra;                     /* slots in use after slot 0: 0..VH_MAX_SLOTS-1 */
  /* Version 1: key check value (volume_kcv()). Version 2 and 3: the header MAC, which seals
   * the fields that change how data is read (volume_header_seal()) and proves the DEK too. */
  uint8_t kcv[VH_KCV_LEN];
  /* With VH_FLAG_REENCRYPT: the DEK being re-encrypted to, AES-KWP wrapped under a key derived
   * from the current DEK (reencrypt.h); sealed by the header MAC. Otherwise empty. */
  uint32_t next_dek_len;
  uint8_t next_dek[VH_MAX_NEXT_DEK];
};

/* Keyslots in use in h (1..VH_MAX_SLOTS). */
static inline unsigned
volume_header_slots (const struct volume_header *h)
{
  return 1u + h->n_extra;
}

/* The slot of h holding provider's KEK kek_id, or -1. */
int volume_header_find_slot (const struct volume_header *h, const char *provider,
                             const char *kek_id);

/* Append slot s to h. -EEXIST if h already has a slot for that provider and KEK id, -ENOSPC
 * if h has VH_MAX_SLOTS slots, -EINVAL if s is not valid; a message says which. h's version
 * and MAC are not touched: seal it again (volume_header_seal). */
int volume_header_add_slot (struct volume_header *h, const struct volume_keyslot *s);

/* Remove slot i from h, moving the later slots down one place. -EINVAL if i is not in use or
 * is the last slot (a header without a slot loses the data). Seal h again afterwards. */
int volume_header_remove_slot (struct volume_header *h, unsigned i);

/* Offset of copy i (0 or 1) on the target. */
static inline uint64_t
volume_header_copy_offset (unsigned i)
{
  return i == 0 ? VH_COPY_A_OFFSET : VH_COPY_B_OFFSET;
}

/* Parse one 4096-byte area read from an untrusted target. Checks magic, version, checksum,
 * every length and every value. Returns 0, or -EINVAL/-ENOENT (no magic: not a header) with a
 * message naming what is wrong. `expected_copy` (0/1) must match the stored copy index. */
int volume_header_parse (const uint8_t *buf, size_t len, unsigned expected_copy,
                         struct volume_header *out);

/* Check a header's values (used by both parse and encode). Returns 0 or -EINVAL. */
int volume_header_validate (const struct volume_header *h);

/* Encode h into a 4096-byte area (zero-filled, checksummed). Returns 0 or -EINVAL. */
int volume_header_encode (const struct volume_header *h, uint8_t *buf, size_t len);

/* True if buf (at least 8 bytes) starts with the nbdcrypt magic. */
bool volume_header_has_magic (const uint8_t *buf, size_t len);

/* Key check value: HMAC-SHA256 keyed by the DEK over a fixed label and the volume UUID.
 * It detects a wrong DEK before any sector is served. Returns 0 or -EIO. */
int volume_kcv (const uint8_t *dek, size_t dek_len, const uint8_t uuid[VH_UUID_LEN],
                uint8_t out[VH_KCV_LEN]);

/* Constant-time comparison of a computed KCV with the stored one: 0 if equal. */
int volume_kcv_check (const uint8_t *dek, size_t dek_len, const struct volume_header *h);

/* Set h->version to the lowest version that holds h (VH_VERSION_MAC for one keyslot,
 * VH_VERSION for more) and h->kcv to the header MAC: HMAC-SHA256 under HKDF-SHA256(DEK,
 * info "nbdcrypt header mac v2") over version, flags, sector size, data offset, cipher and
 * UUID (docs/format.md), plus the wrapped next DEK while re-encrypting; the keyslots are not
 * in it. Returns 0 or -EIO. */
int volume_header_seal (struct volume_header *h, const uint8_t *dek, size_t dek_len);

/* Check an unwrapped DEK against header h, in constant time: the key check value (version 1)
 * or the header MAC (versions 2 and 3). 0, or -EKEYREJECTED with a message saying what to do. */
int volume_header_check_key (const uint8_t *dek, size_t dek_len,
                             const struct volume_header *h);

/* Do two valid copies describe the same volume (UUID, cipher, sector size, data offset,
 * flags, and the same key check value or MAC when their versions match)? Copies of one volume
 * differ only in sequence, copy index, keyslots (an interrupted rewrap, add-kek or
 * remove-kek) or version (an interrupted upgrade, or a keyslot count crossing one). If not, `why` names the first difference. */
bool volume_header_same_volume (const struct volume_header *a, const struct volume_header *b,
                                char *why, size_t why_size);

/* Format a UUID as the canonical 36-character string (out must hold 37 bytes). */
void volume_uuid_str (const uint8_t uuid[VH_UUID_LEN], char out[37]);

#endif /* NBDCRYPT_VOLUME_HEADER_H */
