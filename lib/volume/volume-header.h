/* SPDX-License-Identifier: BSD-3-Clause */
/* The nbdcrypt on-disk volume header: two checksummed, sequence-numbered copies at the start of
 * the target, encoded and parsed here and nowhere else (layout: docs/format.md). */
#ifndef NBDCRYPT_VOLUME_HEADER_H
#define NBDCRYPT_VOLUME_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VH_MAGIC            "NBDCRYPT"      /* 8 bytes, no NUL */
#define VH_VERSION          2               /* written by this nbdcrypt */
#define VH_VERSION_MIN      1               /* oldest still read (no header MAC) */
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

/* A parsed header copy. Strings are NUL-terminated; kek_id is opaque text (a KMIP unique
 * identifier, or "sha256:..." for a KEK file). */
struct volume_header {
  uint16_t version;                     /* VH_VERSION_MIN..VH_VERSION */
  uint32_t flags;                       /* none defined yet: always 0 */
  uint64_t sequence;
  uint64_t data_offset;                 /* bytes, multiple of 4096, >= VH_MIN_DATA_OFFSET */
  uint32_t sector_size;                 /* 512 or 4096 */
  uint8_t copy_index;                   /* 0 = copy A, 1 = copy B */
  char cipher[VH_MAX_NAME + 1];         /* "aes-256-xts" | "aes-128-xts" */
  uint8_t uuid[VH_UUID_LEN];
  char kek_provider[VH_MAX_NAME + 1];   /* "kmip" | "file" */
  char wrap[VH_MAX_NAME + 1];           /* "aes-kwp" | "kms" */
  char kek_id[VH_MAX_KEK_ID + 1];
  uint32_t wrapped_dek_len;
  uint8_t wrapped_dek[VH_MAX_WRAPPED_DEK];
  /* Version 1: key check value (volume_kcv()). Version 2: the header MAC, which seals the
   * fields that change how data is read (volume_header_seal()) and proves the DEK too. */
  uint8_t kcv[VH_KCV_LEN];
};

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

/* Version 2: set h->version to VH_VERSION and h->kcv to the header MAC: HMAC-SHA256 under
 * HKDF-SHA256(DEK, info "nbdcrypt header mac v2") over version, flags, sector size, data
 * offset, cipher and UUID (docs/format.md). Returns 0 or -EIO. */
int volume_header_seal (struct volume_header *h, const uint8_t *dek, size_t dek_len);

/* Check an unwrapped DEK against header h, in constant time: the key check value (version 1)
 * or the header MAC (version 2). 0, or -EKEYREJECTED with a message saying what to do. */
int volume_header_check_key (const uint8_t *dek, size_t dek_len,
                             const struct volume_header *h);

/* Do two valid copies describe the same volume (UUID, cipher, sector size, data offset,
 * flags, and the same key check value or MAC when their versions match)? Copies of one volume
 * differ only in sequence, copy index, KEK and wrapped DEK (an interrupted rewrap) or version
 * (an interrupted upgrade). If not, `why` names the first difference. */
bool volume_header_same_volume (const struct volume_header *a, const struct volume_header *b,
                                char *why, size_t why_size);

/* Format a UUID as the canonical 36-character string (out must hold 37 bytes). */
void volume_uuid_str (const uint8_t uuid[VH_UUID_LEN], char out[37]);

#endif /* NBDCRYPT_VOLUME_HEADER_H */
