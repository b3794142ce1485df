/* SPDX-License-Identifier: BSD-3-Clause */
/* Volume open/create: header selection, DEK unwrap with KMS retry, key check. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "backend.h"
#include "cleanup.h"
#include "errors.h"
#include "reencrypt.h"
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
unwrap_retry (struct keyprov *kp, const struct volume_keyslot *h, unsigned timeout_s,
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

/* No slot of h is for kp's kind of provider, or (a KEK file) for its fingerprint: say what
 * the volume needs. */
static int
provider_mismatch (const struct volume_header *h, struct keyprov *kp)
{
  char list[600] = "", own[VH_MAX_KEK_ID + 1] = "";
  unsigned same_kind = 0;
  size_t n = 0;

  for (unsigned i = 0; i <= h->n_extra; i++)
    same_kind += strcmp (h->slot[i].kek_provider, keyprov_name (kp)) == 0;
  if (h->n_extra == 0) {
    if (strcmp (h->kek_provider, "kmip") == 0)
      return ncr_error (ENOKEY, "this volume's KEK is in a KMS (KEK id %s), not in a local "
                        "KEK file", h->kek_id);
    return ncr_error (ENOKEY, "this volume's KEK is a local KEK file (fingerprint %s), not "
                      "in a KMS", h->kek_id);
  }
  for (unsigned i = 0; i <= h->n_extra && n < sizeof list; i++)
    n += (size_t) snprintf (list + n, sizeof list - n, "%sslot %u: %s %.80s", i ? ", " : "",
                            i, strcmp (h->slot[i].kek_provider, "kmip") == 0 ? "KMS KEK" :
                            "KEK file", h->slot[i].kek_id);
  if (same_kind > 0 && keyprov_default_kek_id (kp, own, sizeof own) == 0)
    return ncr_error (EKEYREJECTED, "wrong KEK file: its fingerprint %s is in none of this "
                      "volume's keyslots (%s); give one of the volume's KEK files", own, list);
  return ncr_error (ENOKEY, "none of this volume's keyslots is for %s (%s)",
                    keyprov_kind (kp) == KEYPROV_KMIP ? "a KMS" : "a local KEK file", list);
}

/* The slots of h worth trying with kp, best first: those of kp's kind; for a KEK file, only
 * the one naming its fingerprint (any other can only fail; with a single KEK file slot it is
 * still tried, for the provider's own "wrong KEK file" message). Returns how many. */
static unsigned
candidate_slots (const struct volume_header *h, struct keyprov *kp, unsigned out[VH_MAX_SLOTS])
{
  char own[VH_MAX_KEK_ID + 1] = "";
  unsigned n = 0, same_kind = 0;

  if (keyprov_kind (kp) == KEYPROV_FILE && keyprov_default_kek_id (kp, own, sizeof own) < 0)
    own[0] = '\0';
  for (unsigned i = 0; i <= h->n_extra && i < VH_MAX_SLOTS; i++)
    same_kind += strcmp (h->slot[i].kek_provider, keyprov_name (kp)) == 0;
  for (int pass = 0; pass < 2; pass++)
    for (unsigned i = 0; i <= h->n_extra && i < VH_MAX_SLOTS; i++) {
      enum keyprov_kind kind;
      bool mine = own[0] && strcmp (h->slot[i].kek_id, own) == 0;

      if (keyprov_kind_from_name (h->slot[i].kek_provider, &kind) < 0 ||
          kind != keyprov_kind (kp) || mine != (pass == 0) ||
          (own[0] && !mine && same_kind > 1))
        continue;
      out[n++] = i;
    }
  return n;
}

int
volume_pick_slot (const struct volume_header *h, struct keyprov *kp)
{
  unsigned slots[VH_MAX_SLOTS];

  return candidate_slots (h, kp, slots) > 0 ? (int) slots[0] : -1;
}

/* The same KEK and wrap in a slot of an earlier copy: trying it again cannot help. */
static bool
tried_before (const struct volume_headers *hs, const int *order, int k,
              const struct volume_keyslot *s)
{
  for (int j = 0; j < k; j++) {
    const struct volume_header *h = &hs->copy[order[j]];
    for (unsigned i = 0; i <= h->n_extra; i++)
      if (strcmp (h->slot[i].kek_id, s->kek_id) == 0 && strcmp (h->slot[i].wrap, s->wrap) == 0)
        return true;
  }
  return false;
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

/* Does h hold a slot for the KEK of slot k? */
static bool
holds_kek (const struct volume_header *h, const struct volume_keyslot *k)
{
  return volume_header_find_slot (h, k->kek_provider, k->kek_id) >= 0;
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
  else if (o->sequence > v->hdr.sequence && !holds_kek (o, &v->hdr.slot[0]))
    snprintf (v->warning, sizeof v->warning, "a rewrap was interrupted: copy %s (sequence "
              "%llu) opened with this KEK, copy %s (sequence %llu) holds KEK %.60s; finish "
              "with 'nbdcrypt rewrap' (or 'nbdcrypt remove-kek') from this KEK, or roll back "
              "with 'nbdcrypt verify --repair --use-copy %s'", copy_name[used],
              (unsigned long long) v->hdr.sequence, copy_name[other],
              (unsigned long long) o->sequence, o->kek_id, copy_name[used]);
  else if (o->sequence != v->hdr.sequence || o->version != v->hdr.version)
    snprintf (v->warning, sizeof v->warning, "header copies differ (sequence %llu and %llu, "
              "version %u and %u: interrupted rewrap or add-kek?); opened from copy %s; run "
              "'nbdcrypt "
              "verify --repair'", (unsigned long long) hs->copy[0].sequence,
              (unsigned long long) hs->copy[1].sequence, hs->copy[0].version,
              hs->copy[1].version, copy_name[used]);
  else if (v->hdr.version < VH_VERSION_MAC)
    snprintf (v->warning, sizeof v->warning, "header version %u: its fields are not "
              "authenticated; 'nbdcrypt verify --repair' (or a rewrap) upgrades it to "
              "version %u", v->hdr.version, VH_VERSION_MAC);
}

static int
open_from (volume_read_fn rd, void *opaque, uint64_t target_size, struct keyprov *kp,
           unsigned timeout_s, int only, struct volume **out)
{
  struct volume_headers hs;
  struct volume *v;
  char tried_msg[1024] = "", last_msg[600] = "";
  size_t tried_len = 0;
  unsigned tried = 0;
  bool done = false;
  int order[2], n = 0, r, first_r = 0, last_r = 0;

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

  r = 0;
  for (int k = 0; k < n && !done; k++) {
    const struct volume_header *h = &hs.copy[order[k]];
    unsigned slots[VH_MAX_SLOTS], ns = candidate_slots (h, kp, slots);

    if (ns == 0) {
      if (k == 0)
        r = provider_mismatch (h, kp);
      continue;
    }
    if ((r = ncr_cipher_from_name (h->cipher, &v->cipher)) < 0) {
      tried = 0;
      break;
    }
    v->dek_len = ncr_cipher_key_len (v->cipher);
    if (v->dek == NULL && (v->dek = secmem_alloc (v->dek_len)) == NULL) {
      r = -errno;
      break;
    }
    for (unsigned j = 0; j < ns; j++) {
      const struct volume_keyslot *s = &h->slot[slots[j]];
      size_t dek_len = 0;

      if (k > 0 && tried_before (&hs, order, k, s))
        continue;
      r = unwrap_retry (kp, s, timeout_s, v->dek, v->dek_len, &dek_len);
      if (r == 0 && dek_len != v->dek_len)
        r = ncr_error (EINVAL, "the unwrapped volume key is %zu bytes, %s needs %zu",
                       dek_len, h->cipher, v->dek_len);
      if (r == 0)
        r = volume_header_check_key (v->dek, v->dek_len, h);
      if (r == 0) {
        v->hdr = *h;
        v->used_copy = (unsigned) order[k];
        v->used_slot = slots[j];
        if (slots[j] != 0) {
          struct volume_keyslot t = v->hdr.slot[0];
          v->hdr.slot[0] = v->hdr.slot[slots[j]];
          v->hdr.slot[slots[j]] = t;
          explicit_bzero (&t, sizeof t);
        }
        done = true;
        break;
      }
      if (first_r == 0)
        first_r = r;
      last_r = r;
      tried++;
      snprintf (last_msg, sizeof last_msg, "%s", ncr_last_error ());
      /* Each failure, for a message that lists every slot tried. */
      if (tried_len < sizeof tried_msg)
        tried_len += (size_t) snprintf (tried_msg + tried_len, sizeof tried_msg - tried_len,
                                        "%sslot %u of copy %s (%s %.60s): %.200s",
                                        tried > 1 ? "; " : "", slots[j],
                                        copy_name[order[k]], s->kek_provider, s->kek_id,
                                        last_msg);
      if (keyprov_error_is_transient (r))
        break;                  /* the KMS is down: another slot in it cannot help */
    }
    if (!done && tried > 0 && keyprov_error_is_transient (last_r))
      break;
  }
  if (!done) {
    char msg[1024];
    if (tried > 1)
      snprintf (msg, sizeof msg, "no keyslot opens with this key (%s)", tried_msg);
    else if (tried == 1)
      snprintf (msg, sizeof msg, "%s", last_msg);
    else
      snprintf (msg, sizeof msg, "%s", ncr_last_error ());
    if (tried > 1)
      r = first_r;
    else if (tried == 1)
      r = last_r;
    else if (r == 0)
      r = -ENOKEY;
    volume_free (v);
    return ncr_error (-r, "%s", msg);
  }

  if (v->hdr.flags & VH_FLAG_REENCRYPT) {
    /* The header MAC (checked above) covers the wrapped next DEK. */
    v->next_dek = secmem_alloc (v->dek_len);
    r = v->next_dek == NULL ? ncr_error (ENOMEM, "out of locked memory") :
        reencrypt_unwrap_next_dek (v->dek, v->dek_len, v->hdr.next_dek, v->hdr.next_dek_len,
                                   v->next_dek, v->dek_len);
    if (r < 0) {
      volume_free (v);
      return r;
    }
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
  secmem_free (v->next_dek);
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

int
volume_wrap_keyslot (struct keyprov *kp, const char *kek_id, const char *wrap,
           const uint8_t *dek, size_t dek_len, struct volume_keyslot *h)
{
  size_t wlen = 0;
  int r;

  if (strlen (kek_id) == 0 || strlen (kek_id) > VH_MAX_KEK_ID)
    return ncr_error (EINVAL, "KEK id '%s' is empty or longer than %u bytes", kek_id,
                      VH_MAX_KEK_ID);
  if (strlen (wrap) > VH_MAX_NAME)
    return ncr_error (EINVAL, "unknown wrap mode '%s'", wrap);
  memset (h, 0, sizeof *h);
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
  if ((r = volume_wrap_keyslot (kp, kek_id, wrap, dek, dek_len, &out->slot[0])) < 0 ||
      (r = volume_header_seal (out, dek, dek_len)) < 0)
    return r;
  return volume_header_validate (out);
}

int
volume_adopt_header (const struct volume_header *h, unsigned copy, enum ncr_cipher cipher,
                     const uint8_t *dek, size_t dek_len, struct volume **out)
{
  struct volume *v;
  int r;

  if ((r = volume_header_check_key (dek, dek_len, h)) < 0)
    return r;
  if ((v = calloc (1, sizeof *v)) == NULL)
    return ncr_error (ENOMEM, "out of memory");
  v->hdr = *h;
  v->used_copy = copy;
  v->cipher = cipher;
  v->dek_len = dek_len;
  if ((v->dek = secmem_alloc (dek_len)) == NULL) {
    volume_free (v);
    return ncr_error (ENOMEM, "out of locked memory");
  }
  memcpy (v->dek, dek, dek_len);
  if (h->flags & VH_FLAG_REENCRYPT) {
    r = (v->next_dek = secmem_alloc (dek_len)) == NULL ?
        ncr_error (ENOMEM, "out of locked memory") :
        reencrypt_unwrap_next_dek (dek, dek_len, h->next_dek, h->next_dek_len, v->next_dek,
                                   dek_len);
    if (r < 0) {
      volume_free (v);
      return r;
    }
  }
  *out = v;
  return 0;
}

void
volume_disk_header (const struct volume *v, struct volume_header *out)
{
  *out = v->hdr;
  if (v->used_slot != 0 && v->used_slot <= out->n_extra) {
    out->slot[v->used_slot] = v->hdr.slot[0];
    out->slot[0] = v->hdr.slot[v->used_slot];
  }
}

/* Keyslots are fixed while a re-encryption runs: its end writes the slots its command was
 * given (online, staged at the start), so a change made meanwhile would be undone. */
static int
slots_fixed (const struct volume *v)
{
  if (!(v->hdr.flags & VH_FLAG_REENCRYPT))
    return 0;
  return ncr_error (EBUSY, "a re-encryption of this volume is in progress, and its end writes "
                    "the keyslots it was given: change keyslots once it has ended ('nbdcrypt "
                    "dump' shows its progress)");
}

int
volume_rewrap_header (const struct volume *v, struct keyprov *kp, const char *new_kek_id,
                      const char *wrap, struct volume_header *out)
{
  struct volume_keyslot k;
  int r, other;

  if ((r = slots_fixed (v)) < 0)
    return r;
  volume_disk_header (v, out);
  out->sequence = v->hdr.sequence + 1;
  if ((r = volume_wrap_keyslot (kp, new_kek_id, wrap, v->dek, v->dek_len, &k)) < 0)
    goto done;
  other = volume_header_find_slot (out, k.kek_provider, k.kek_id);
  if (other >= 0 && (unsigned) other != v->used_slot) {
    r = ncr_error (EEXIST, "keyslot %d already holds %s KEK %s: remove the slot opened with "
                   "('nbdcrypt remove-kek --slot %u') instead of rewrapping it", other,
                   k.kek_provider, k.kek_id, v->used_slot);
    goto done;
  }
  out->slot[v->used_slot] = k;
  if ((r = volume_header_seal (out, v->dek, v->dek_len)) == 0)
    r = volume_header_validate (out);
 done:
  explicit_bzero (&k, sizeof k);
  return r;
}

int
volume_add_slot_header (const struct volume *v, struct keyprov *kp, const char *kek_id,
                        const char *wrap, struct volume_header *out)
{
  struct volume_keyslot k;
  int r;

  if ((r = slots_fixed (v)) < 0)
    return r;
  volume_disk_header (v, out);
  out->sequence = v->hdr.sequence + 1;
  /* Refuse a duplicate before asking the KMS to wrap anything. */
  if (volume_header_find_slot (out, keyprov_name (kp), kek_id) >= 0)
    return ncr_error (EEXIST, "the volume already has a keyslot for %s KEK %s",
                      keyprov_name (kp), kek_id);
  if (volume_header_slots (out) >= VH_MAX_SLOTS)
    return ncr_error (ENOSPC, "the volume has %u keyslots, the most a header holds; remove "
                      "one first ('nbdcrypt remove-kek')", VH_MAX_SLOTS);
  if ((r = volume_wrap_keyslot (kp, kek_id, wrap, v->dek, v->dek_len, &k)) == 0 &&
      (r = volume_header_add_slot (out, &k)) == 0 &&
      (r = volume_header_seal (out, v->dek, v->dek_len)) == 0)
    r = volume_header_validate (out);
  explicit_bzero (&k, sizeof k);
  return r;
}

int
volume_remove_slot_header (const struct volume *v, unsigned slot, struct volume_header *out)
{
  int r;

  if ((r = slots_fixed (v)) < 0)
    return r;
  volume_disk_header (v, out);
  out->sequence = v->hdr.sequence + 1;
  if ((r = volume_header_remove_slot (out, slot)) < 0 ||
      (r = volume_header_seal (out, v->dek, v->dek_len)) < 0)
    return r;
  return volume_header_validate (out);
}
