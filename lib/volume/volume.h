/* SPDX-License-Identifier: BSD-3-Clause */
/* Opening and creating nbdcrypt volumes: read both header copies through a caller-supplied read
 * function (the filter reads through the plugin below, the tool through a file, a block device
 * or libnbd), pick the valid one, unwrap the data key through a key provider, check it. */
#ifndef NBDCRYPT_VOLUME_H
#define NBDCRYPT_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyprov.h"
#include "volume-header.h"
#include "xts.h"

/* Read exactly count bytes at offset; returns 0 or -errno (with ncr_error set). */
typedef int (*volume_read_fn) (void *opaque, void *buf, size_t count, uint64_t offset);

/* The result of reading the two header copies. */
struct volume_headers {
  struct volume_header copy[2];
  int status[2];                /* 0 valid, -ENOENT no magic, -EINVAL corrupt, other: I/O */
  char reason[2][160];          /* why a copy is not valid */
  int newest;                   /* index of the valid copy with the highest sequence, or -1 */
  bool conflict;                /* both valid, but they describe different volumes */
  char conflict_why[120];       /* the first difference, "field A-value / B-value" */
};

/* Read and parse both copies. Returns 0 if at least one is valid, else -ENOENT (no header:
 * not formatted) or -EINVAL (corrupt) with a message naming both reasons. Two valid copies
 * that disagree on the volume's identity are returned with `conflict` set: volume_open
 * refuses them, the tools show them. */
int volume_read_headers (volume_read_fn rd, void *opaque, uint64_t target_size,
                         struct volume_headers *out);

struct volume {
  /* The copy the key was unwrapped from, with the keyslot that unwrapped it in slot 0 (so
   * hdr.kek_id is the KEK this volume was opened with): on disk it is slot used_slot, which
   * trades places with slot 0 here. volume_disk_header() gives the slots in disk order. */
  struct volume_header hdr;
  unsigned used_copy;           /* 0 = A, 1 = B */
  enum ncr_cipher cipher;
  uint8_t *dek;                 /* secmem; dek_len = ncr_cipher_key_len(cipher) */
  size_t dek_len;
  char warning[400];            /* non-empty: opened, but something needs attention */
  unsigned used_slot;           /* the keyslot (on disk) the key was unwrapped from */
  /* Re-encryption in progress (hdr.flags & VH_FLAG_REENCRYPT): the DEK the data is moving to,
   * unwrapped from the header with the DEK (reencrypt.h); secmem, dek_len bytes. Else NULL. */
  uint8_t *next_dek;
};

/* Open: read headers, refuse copies that disagree on the volume's identity, unwrap the DEK
 * through kp from the first keyslot whose provider is kp's kind (a KEK file tries the slot
 * naming its fingerprint first) and that unwraps, check it and the header's fields (key check
 * value or header MAC). A header flagged for re-encryption opens with both keys (next_dek).
 * On failure the message lists the slots tried and why each failed. While the KMS
 * is unreachable, retries with backoff (0.5 s doubling to 8 s) until timeout_s has passed.
 * Returns 0, or -errno with a one-line reason in ncr_last_error(). */
int volume_open (volume_read_fn rd, void *opaque, uint64_t target_size,
                 struct keyprov *kp, unsigned timeout_s, struct volume **out);

/* The keyslot of h that volume_open tries first with kp (for a KEK file, the slot naming
 * its fingerprint), or -1 if no slot is for kp's kind of provider. */
int volume_pick_slot (const struct volume_header *h, struct keyprov *kp);

/* The same, from header copy `copy` (0 = A, 1 = B) only, whatever the other copy holds: the
 * operator's choice when the copies disagree (nbdcrypt verify --use-copy). */
int volume_open_copy (volume_read_fn rd, void *opaque, uint64_t target_size,
                      struct keyprov *kp, unsigned timeout_s, unsigned copy,
                      struct volume **out);

void volume_free (struct volume *v);

/* A fresh random DEK for cipher c in secmem (XTS halves guaranteed different). */
int volume_new_dek (enum ncr_cipher c, uint8_t **dek_out, size_t *len_out);

/* Fill a new header (current version, sequence 1, copy A, random UUID, sealed) wrapping dek
 * under kek_id with wrap. Returns 0 or -errno. */
int volume_make_header (struct keyprov *kp, const char *kek_id, const char *wrap,
                        enum ncr_cipher c, unsigned sector_size, uint64_t data_offset,
                        const uint8_t *dek, size_t dek_len, struct volume_header *out);

/* A keyslot holding dek wrapped under kp's KEK kek_id with wrap. Returns 0 or -errno. */
int volume_wrap_keyslot (struct keyprov *kp, const char *kek_id, const char *wrap,
                         const uint8_t *dek, size_t dek_len, struct volume_keyslot *out);

/* A volume held with DEK `dek` whose header is now h (copy `copy`, as read from the target: a
 * run of re-encryption handed over to the server, or its end): checks that h is the same
 * volume (UUID) and that its MAC checks under dek, and returns a volume with h and both keys
 * (next_dek unwrapped if h is flagged). 0, or -errno (-EKEYREJECTED: not under this key). */
int volume_adopt_header (const struct volume_header *h, unsigned copy, enum ncr_cipher cipher,
                         const uint8_t *dek, size_t dek_len, struct volume **out);

/* v's header with its keyslots in the order they have on disk. */
void volume_disk_header (const struct volume *v, struct volume_header *out);

/* Rewrap: v's header (disk order) with the keyslot v was opened with (v->used_slot) holding
 * the DEK wrapped under new_kek_id instead (by kp, which may be another provider than the
 * volume's), the sequence incremented, sealed (a version 1 header is upgraded). -EEXIST if
 * another slot already holds that KEK. */
int volume_rewrap_header (const struct volume *v, struct keyprov *kp, const char *new_kek_id,
                          const char *wrap, struct volume_header *out);

/* Add a keyslot: v's header (disk order) plus a last slot with the DEK wrapped under kek_id
 * by kp, the sequence incremented, sealed (version 3: more than one slot). -EEXIST if the
 * volume has a slot for that KEK, -ENOSPC if it has VH_MAX_SLOTS. */
int volume_add_slot_header (const struct volume *v, struct keyprov *kp, const char *kek_id,
                            const char *wrap, struct volume_header *out);

/* Remove keyslot `slot` (disk order): v's header without it, the sequence incremented,
 * sealed (version 2 again when one slot is left). -EINVAL for the last slot. */
int volume_remove_slot_header (const struct volume *v, unsigned slot,
                               struct volume_header *out);

#endif /* NBDCRYPT_VOLUME_H */
