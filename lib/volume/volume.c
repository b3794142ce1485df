/* SPDX-License-Identifier: BSD-3-Clause */
/* Volume open/create: header selection, DEK unwrap with KMS retry, key check. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "backend.h"
#include "cleanup.h"
#include "errors.h"
#include "secmem.h"
#include "timeutil.h"
#include "volume.h"

static const char *const copy_name[2] = { "A", "B" };

int
volume_read_headers (volume_read_fn rd, void *opaque, uint64_t target_size,
                     struct volume_headers *out)
{
  uint8_t buf[VH_AREA_SIZE];
  int r;

  memset (out, 0, sizeof *out);
  out->newest = -1;
  for (unsigned i = 0; i < 2; i++) {
    uint64_t off = volume_header_copy_offset (i);

    if (target_size < off + VH_AREA_SIZE) {
      out->status[i] = -ENOENT;
      snprintf (out->reason[i], sizeof out->reason[i], "target too small to hold it");
      continue;
    }
    r = rd (opaque, buf, sizeof buf, off);
    if (r == 0)
      r = volume_header_parse (buf, sizeof buf, i, &out->copy[i]);
    out->status[i] = r;
    if (r < 0)
      snprintf (out->reason[i], sizeof out->reason[i], "%s", ncr_last_error ());
    else if (out->newest < 0 || out->copy[i].sequence > out->copy[out->newest].sequence)
      out->newest = (int) i;
  }
  if (out->status[0] == 0 && out->status[1] == 0 &&
      !volume_header_same_volume (&out->copy[0], &out->copy[1], out->conflict_why,
                                  sizeof out->conflict_why))
    out->conflict = true;
  if (out->newest >= 0)
    return 0;
  if (out->status[0] == -ENOENT && out->status[1] == -ENOENT)
    return ncr_error (ENOENT, "no nbdcrypt volume header on this target (not formatted with "
                      "'nbdcrypt format'?)");
  return ncr_error (EINVAL, "volume header is corrupt in both copies (copy A: %s; copy B: %s); "
                    "restore the first 1 MiB from a backup", out->reason[0], out->reason[1]);
}

/* Unwrap with retries while the KMS is unreachable. */
static int
unwrap_retry (struct keyprov *kp, const struct volume_header *h, unsigned timeout_s,
              uint8_t *dek, size_t dek_size, size_t *dek_len)
{
  struct ncr_backoff b;
  unsigned attempts = 0;
  int r;

  ncr_backoff_init (&b, (uint64_t) timeout_s * 1000);
  do {
    attempts++;
    r = keyprov_unwrap (kp, h->kek_id, h->wrap, h->wrapped_dek, h->wrapped_dek_len,
                        dek, dek_size, dek_len);
    if (r == 0 || !keyprov_error_is_transient (r))
      return r;
  } while (ncr_backoff_wait (&b));
  return ncr_error (-r, "KMS unreachable: gave up after %u attempts in %llu s (%s); check the "
                    "KMS and the network", attempts,
                    (unsigned long long) (ncr_backoff_elapsed_ms (&b) + 500) / 1000,
                    ncr_last_error ());
}

static int
provider_mismatch (const struct volume_header *h, struct keyprov *kp)
{
  enum keyprov_kind kind;
  int r;

  if ((r = keyprov_kind_from_name (h->kek_provider, &kind)) < 0)
    return r;
  if (kind == keyprov_kind (kp))
    return 0;
  if (kind == KEYPROV_KMIP)
    return ncr_error (ENOKEY, "this volume's KEK is in a KMS (KEK id %s), not in a local KEK "
                      "file", h->kek_id);
  return ncr_error (ENOKEY, "this volume's KEK is a local KEK file (fingerprint %s), not in a "
                    "KMS", h->kek_id);
}

/* Two valid copies of different volumes (one restored or copied from another volume, or
 * edited): serving either could serve noise, and only the operator knows which is right. */
static int
conflict_error (const struct volume_headers *hs)
{
  return ncr_error (EINVAL, "header copies A and B belong to different volumes (%s): one "
                    "was overwritten, e.g. restored from another volume; refusing to guess. "
                    "Copy A: sequence %llu, KEK %.60s; copy B: sequence %llu, KEK %.60s. "
                    "Check each with 'nbdcrypt verify TARGET --use-copy A' (or B), then "
                    "rewrite the other with 'nbdcrypt verify TARGET --repair --use-copy A' "
                    "(or B)", hs->conflict_why,
                    (unsigned long long) hs->copy[0].sequence, hs->copy[0].kek_id,
                    (unsigned long long) hs->copy[1].sequence, hs->copy[1].kek_id);
}

/* What needs attention after a successful open, for the filter's log and the tools. */
static void
open_warning (struct volume *v, const struct volume_headers *hs)
{
  unsigned used = v->used_copy, other = 1 - used;
  const struct volume_header *o = &hs->copy[other];

  if (hs->status[other] != 0)
    snprintf (v->warning, sizeof v->warning, "header copy %s is damaged (%.150s); opened from "
              "copy %s; run 'nbdcrypt verify --repair' to rewrite it",
              copy_name[other], hs->reason[other], copy_name[used]);
  else if (o->sequence > v->hdr.sequence && strcmp (o->kek_id, v->hdr.kek_id) != 0)
    snprintf (v->warning, sizeof v->warning, "a rewrap was interrupted: copy %s (sequence "
              "%llu) opened with this KEK, copy %s (sequence %llu) holds KEK %.60s; finish "
              "with 'nbdcrypt rewrap' from this KEK, or roll back with 'nbdcrypt verify "
              "--repair --use-copy %s'", copy_name[used],
              (unsigned long long) v->hdr.sequence, copy_name[other],
              (unsigned long long) o->sequence, o->kek_id, copy_name[used]);
  else if (o->sequence != v->hdr.sequence || o->version != v->hdr.version)
    snprintf (v->warning, sizeof v->warning, "header copies differ (sequence %llu and %llu, "
              "version %u and %u: interrupted rewrap?); opened from copy %s; run 'nbdcrypt "
              "verify --repair'", (unsigned long long) hs->copy[0].sequence,
              (unsigned long long) hs->copy[1].sequence, hs->copy[0].version,
              hs->copy[1].version, copy_name[used]);
  else if (v->hdr.version < VH_VERSION)
    snprintf (v->warning, sizeof v->warning, "header version %u: its fields are not "
              "authenticated; 'nbdcrypt verify --repair' (or a rewrap) upgrades it to "
              "version %u", v->hdr.version, VH_VERSION);
}

static int
open_from (volume_read_fn rd, void *opaque, uint64_t target_size, struct keyprov *kp,
           unsigned timeout_s, int only, struct volume **out)
{
  struct volume_headers hs;
  struct volume *v;
  int order[2], n = 0, r;

  if ((r = volume_read_headers (rd, opaque, target_size, &hs)) < 0)
    return r;
  if (only >= 0) {
    if (hs.status[only] != 0)
      return ncr_error (EINVAL, "header copy %s is not valid: %s", copy_name[only],
                        hs.reason[only]);
    order[n++] = only;
  }
  else {
    if (hs.conflict)
      return conflict_error (&hs);
    /* Newest valid copy first; the other valid copy only if it was wrapped differently (an
     * interrupted rewrap) and the newest one's KEK is not the one we were given. */
    order[n++] = hs.newest;
    if (hs.status[1 - hs.newest] == 0)
      order[n++] = 1 - hs.newest;
  }

  v = calloc (1, sizeof *v);
  if (v == NULL)
    return ncr_error (ENOMEM, "out of memory");

  for (int k = 0; k < n; k++) {
    const struct volume_header *h = &hs.copy[order[k]];
    size_t dek_len = 0;

    if (k > 0 && strcmp (h->kek_id, hs.copy[order[0]].kek_id) == 0 &&
        strcmp (h->wrap, hs.copy[order[0]].wrap) == 0)
      break;                    /* same KEK: trying again cannot help */
    if ((r = provider_mismatch (h, kp)) < 0)
      continue;
    if ((r = ncr_cipher_from_name (h->cipher, &v->cipher)) < 0)
      break;
    v->dek_len = ncr_cipher_key_len (v->cipher);
    if (v->dek == NULL && (v->dek = secmem_alloc (v->dek_len)) == NULL) {
      r = -errno;
      break;
    }
    r = unwrap_retry (kp, h, timeout_s, v->dek, v->dek_len, &dek_len);
    if (r == 0 && dek_len != v->dek_len)
      r = ncr_error (EINVAL, "the unwrapped volume key is %zu bytes, %s needs %zu",
                     dek_len, h->cipher, v->dek_len);
    if (r == 0)
      r = volume_header_check_key (v->dek, v->dek_len, h);
    if (r == 0) {
      v->hdr = *h;
      v->used_copy = (unsigned) order[k];
      break;
    }
    if (r != -EKEYREJECTED && r != -EINVAL)
      break;                    /* KMS errors etc.: report them, not a fallback's */
  }
  if (r < 0) {
    char msg[512];
    snprintf (msg, sizeof msg, "%s", ncr_last_error ());
    volume_free (v);
    return ncr_error (-r, "%s", msg);
  }

  if (only < 0)
    open_warning (v, &hs);
  if (v->hdr.data_offset >= target_size) {
    char msg[200];
    snprintf (msg, sizeof msg, "target (%llu bytes) is not larger than the data offset "
              "(%llu bytes): truncated volume?", (unsigned long long) target_size,
              (unsigned long long) v->hdr.data_offset);
    volume_free (v);
    return ncr_error (EINVAL, "%s", msg);
  }
  *out = v;
  return 0;
}

int
volume_open (volume_read_fn rd, void *opaque, uint64_t target_size,
             struct keyprov *kp, unsigned timeout_s, struct volume **out)
{
  return open_from (rd, opaque, target_size, kp, timeout_s, -1, out);
}

int
volume_open_copy (volume_read_fn rd, void *opaque, uint64_t target_size,
                  struct keyprov *kp, unsigned timeout_s, unsigned copy, struct volume **out)
{
  if (copy > 1)
    return ncr_error (EINVAL, "header copy index %u is not 0 (A) or 1 (B)", copy);
  return open_from (rd, opaque, target_size, kp, timeout_s, (int) copy, out);
}

void
volume_free (struct volume *v)
{
  if (v == NULL)
    return;
  secmem_free (v->dek);
  explicit_bzero (v, sizeof *v);
  free (v);
}

int
volume_new_dek (enum ncr_cipher c, uint8_t **dek_out, size_t *len_out)
{
  size_t len = ncr_cipher_key_len (c);
  uint8_t *dek = secmem_alloc (len);

  if (dek == NULL)
    return -errno;
  /* XTS refuses equal key halves; with a working CSPRNG the loop runs once. */
  for (int tries = 0;; tries++) {
    if (tries == 4 || crypto_random_key (dek, len) < 0) {
      secmem_free (dek);
      return ncr_error (EIO, "the OS random generator failed");
    }
    if (crypto_ct_memcmp (dek, dek + len / 2, len / 2) != 0)
      break;
  }
  *dek_out = dek;
  *len_out = len;
  return 0;
}

static int
fill_wrap (struct keyprov *kp, const char *kek_id, const char *wrap,
           const uint8_t *dek, size_t dek_len, struct volume_header *h)
{
  size_t wlen = 0;
  int r;

  if (strlen (kek_id) == 0 || strlen (kek_id) > VH_MAX_KEK_ID)
    return ncr_error (EINVAL, "KEK id '%s' is empty or longer than %u bytes", kek_id,
                      VH_MAX_KEK_ID);
  if (strlen (wrap) > VH_MAX_NAME)
    return ncr_error (EINVAL, "unknown wrap mode '%s'", wrap);
  snprintf (h->kek_provider, sizeof h->kek_provider, "%s", keyprov_name (kp));
  snprintf (h->kek_id, sizeof h->kek_id, "%s", kek_id);
  snprintf (h->wrap, sizeof h->wrap, "%s", wrap);
  r = keyprov_wrap (kp, kek_id, wrap, dek, dek_len, h->wrapped_dek, sizeof h->wrapped_dek,
                    &wlen);
  if (r < 0)
    return r;
  h->wrapped_dek_len = (uint32_t) wlen;
  return 0;
}

int
volume_make_header (struct keyprov *kp, const char *kek_id, const char *wrap,
                    enum ncr_cipher c, unsigned sector_size, uint64_t data_offset,
                    const uint8_t *dek, size_t dek_len, struct volume_header *out)
{
  int r;

  memset (out, 0, sizeof *out);
  out->sequence = 1;
  out->copy_index = 0;
  out->data_offset = data_offset;
  out->sector_size = sector_size;
  snprintf (out->cipher, sizeof out->cipher, "%s", ncr_cipher_name (c));
  if (crypto_random_bytes (out->uuid, VH_UUID_LEN) < 0)
    return ncr_error (EIO, "the OS random generator failed");
  out->uuid[6] = (out->uuid[6] & 0x0f) | 0x40;    /* RFC 4122 version 4 */
  out->uuid[8] = (out->uuid[8] & 0x3f) | 0x80;
  if ((r = fill_wrap (kp, kek_id, wrap, dek, dek_len, out)) < 0 ||
      (r = volume_header_seal (out, dek, dek_len)) < 0)
    return r;
  return volume_header_validate (out);
}

int
volume_rewrap_header (const struct volume *v, struct keyprov *kp, const char *new_kek_id,
                      const char *wrap, struct volume_header *out)
{
  int r;

  *out = v->hdr;
  out->sequence = v->hdr.sequence + 1;
  memset (out->wrapped_dek, 0, sizeof out->wrapped_dek);
  if ((r = fill_wrap (kp, new_kek_id, wrap, v->dek, v->dek_len, out)) < 0 ||
      (r = volume_header_seal (out, v->dek, v->dek_len)) < 0)
    return r;
  return volume_header_validate (out);
}
