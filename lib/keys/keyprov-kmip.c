/* SPDX-License-Identifier: BSD-3-Clause */
/* KMIP key provider: the KEK lives in a KMIP server (OVHcloud OKMS, PyKMIP, any KMIP 1.x/2.0).
 * Wrap "aes-kwp": Get the KEK into locked memory, RFC 5649 locally, wipe it. Wrap "kms": the
 * server encrypts/decrypts the DEK (AES-CBC, random IV stored with the ciphertext), so the KEK
 * never leaves the KMS. Before any unwrap the KEK must be Active.
 *
 * Many volumes: keyprov_prefetch fetches the KEKs (or decrypts the DEKs) of a whole set of
 * volumes with their States in batched messages and keeps them in a key cache (keycache.h)
 * that unwrap answers from; keyprov_kek_state_many batches the state checks. One mutex
 * serialises every operation: the connection, the cache and the KEK kept by create_kek. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmip/kmip.h"
#include "kmip/ttlv.h"

#include "backend.h"
#include "cleanup.h"
#include "errors.h"
#include "filemode.h"
#include "keycache.h"
#include "keyprov.h"
#include "keywrap.h"
#include "secmem.h"

#define KEK_LEN 32
#define KMS_WRAP_IV_LEN 16
/* Layout of the header's wrapped-DEK field for wrap "kms": one byte block cipher mode (1 =
 * CBC, PKCS#5 padding), one byte IV length, the IV, then the server's ciphertext. */
#define KMS_WRAP_HDR 2


struct keyprov_kmip {
  struct keyprov base;
  char *config_path;
  struct kmip_config *cfg;
  pthread_mutex_t lock;         /* every operation: the fields below and the connection */
  struct kmip_client *client;
  struct keycache cache;        /* keyprov_prefetch's keys, until keyprov_forget */
  /* A KEK this provider created for a local wrap, fetched in the creating exchange: used by
   * the next wrap under new_kek_id, then wiped (secmem). */
  uint8_t *new_kek;
  char new_kek_id[KMIP_UID_MAX];
};

static void
drop_new_kek (struct keyprov_kmip *k)
{
  secmem_free (k->new_kek);
  k->new_kek = NULL;
  k->new_kek_id[0] = '\0';
}

/* The errno for a kmip-client failure r (res: the server's answer when r is KMIP_E_RESULT).
 * Connection problems keep their errno (ECONNREFUSED, ETIMEDOUT, ...) so that callers can
 * tell "unreachable" from "refused". */
static int
kmip_errno (int r, struct kmip_result res)
{
  switch (r) {
  case KMIP_E_RESULT:
    return res.reason == KMIP_RESULT_REASON_ITEM_NOT_FOUND ? ENOENT :
           res.reason == KMIP_RESULT_REASON_PERMISSION_DENIED ? EACCES : EIO;
  case KMIP_E_TLS: return EPROTO;
  case KMIP_E_DECODE: case KMIP_E_TOO_BIG: return EBADMSG;
  case KMIP_E_VERSION: return EPROTONOSUPPORT;
  case KMIP_E_CONFIG: return EINVAL;
  default: return r < 0 && r > -4096 ? -r : EIO;
  }
}

/* Turn a kmip-client failure into -errno with a message. */
static int
keyprov_kmip_fail (int r, const char *what, const char *uid)
{
  const char *msg = kmip_last_error ();
  int e = kmip_errno (r, kmip_last_result ());

  if (r == KMIP_E_RESULT) {
    if (e == ENOENT)
      return ncr_error (e, "KEK %s not found in the KMS (destroyed, or another identity's "
                        "key?): %s", uid ? uid : "", msg);
    return ncr_error (e, "KMS refused %s%s%s: %s", what, uid ? " of " : "", uid ? uid : "",
                      msg);
  }
  return ncr_error (e, "KMS %s failed: %s", what, msg);
}

/* The same for one item of a batch (the library's message is the last item's, not this
 * one's: the server's reason is named here instead). */
static int
item_fail (const struct kmip_batch_item *it, const char *what)
{
  int e = kmip_errno (it->result, it->status);
  char reason[96];

  if (it->result == KMIP_E_RESULT) {
    if (e == ENOENT)
      return ncr_error (e, "KEK %s not found in the KMS (destroyed, or another identity's "
                        "key?)", it->uid);
    return ncr_error (e, "KMS refused %s of %s: %s", what, it->uid,
                      kmip_reason_text (it->status.reason, reason, sizeof reason));
  }
  return ncr_error (e, "KMS %s of %s failed: %s", what, it->uid, strerror (e));
}

static int
check_uid (const char *uid)
{
  if (strlen (uid) == 0 || strlen (uid) >= KMIP_UID_MAX)
    return ncr_error (EINVAL, "KMIP unique identifier '%.40s' is empty or too long", uid);
  return 0;
}

/* A KMIP State as a kek_state; -1 if it is none we know. */
static int
map_state (uint32_t st, enum kek_state *out)
{
  switch (st) {
  case KMIP_STATE_ACTIVE: *out = KEK_STATE_ACTIVE; return 0;
  case KMIP_STATE_PRE_ACTIVE: *out = KEK_STATE_PRE_ACTIVE; return 0;
  case KMIP_STATE_DEACTIVATED: *out = KEK_STATE_DEACTIVATED; return 0;
  case KMIP_STATE_COMPROMISED: *out = KEK_STATE_COMPROMISED; return 0;
  case KMIP_STATE_DESTROYED: case KMIP_STATE_DESTROYED_COMPROMISED:
    *out = KEK_STATE_DESTROYED; return 0;
  default: return -1;
  }
}

/* A KEK seen in a state other than Active: nothing prefetched under it may be used. */
static void
saw_state (struct keyprov_kmip *k, const char *kek_id, enum kek_state st)
{
  if (st != KEK_STATE_ACTIVE)
    keycache_drop_kek (&k->cache, kek_id);
}

static int
kek_state_locked (struct keyprov_kmip *k, const char *kek_id, enum kek_state *state)
{
  struct kmip_attrs a;
  int r;

  if ((r = check_uid (kek_id)) < 0)
    return r;
  memset (&a, 0, sizeof a);
  r = kmip_get_attributes (k->client, kek_id, &a);
  if (r < 0) {
    if (r == KMIP_E_RESULT && kmip_last_result ().reason == KMIP_RESULT_REASON_ITEM_NOT_FOUND) {
      *state = KEK_STATE_MISSING;
      saw_state (k, kek_id, *state);
      return 0;
    }
    return keyprov_kmip_fail (r, "GetAttributes", kek_id);
  }
  if (map_state (a.state, state) < 0)
    r = ncr_error (EBADMSG, "KMS returned no usable state for KEK %s", kek_id);
  else
    saw_state (k, kek_id, *state);
  kmip_attrs_free (&a);
  return r < 0 ? r : 0;
}

/* The KEK must be Active before it is used: a revoked or destroyed KEK is a deliberate "stop".
 * The error for a KEK in state st (0 if Active). */
static int
state_error (const char *kek_id, enum kek_state st)
{
  if (st == KEK_STATE_ACTIVE)
    return 0;
  if (st == KEK_STATE_MISSING)
    return ncr_error (ENOENT, "KEK %s does not exist in the KMS (destroyed, or not visible to "
                      "this client certificate)", kek_id);
  if (st == KEK_STATE_PRE_ACTIVE)
    return ncr_error (EKEYREVOKED, "KEK %s is pre-active in the KMS: activate it ('nbdcrypt "
                      "kms activate %s') to open the volume", kek_id, kek_id);
  /* Deactivated, compromised or destroyed: no way back through the KMS. Say so plainly. */
  return ncr_error (EKEYREVOKED, "KEK %s is %s in the KMS and cannot unwrap this volume's data "
                    "key any more: unless a copy of the volume key was kept before (nbdcrypt "
                    "dump --dump-volume-key), the data is gone (crypto-shredded); with one, see "
                    "'Revocation and recovery' in docs/operations.md", kek_id,
                    kek_state_name (st));
}

static int
require_active (struct keyprov_kmip *k, const char *kek_id)
{
  enum kek_state st;
  int r;

  if ((r = kek_state_locked (k, kek_id, &st)) < 0)
    return r;
  return state_error (kek_id, st);
}

/* Fetch the KEK for local wrapping into new locked memory (*out, secmem_free by the caller);
 * on failure nothing is left allocated. */
static int
get_kek (struct keyprov_kmip *k, const char *kek_id, uint8_t **out)
{
  uint8_t *kek = secmem_alloc (KEK_LEN);
  int r;

  if (kek == NULL)
    return -errno;
  r = kmip_get_key (k->client, kek_id, KMIP_KEY_FORMAT_TYPE_RAW, kek, KEK_LEN);
  if (r == -ENOBUFS || (r >= 0 && r != KEK_LEN)) {
    secmem_free (kek);
    return ncr_error (EINVAL, "KEK %s is not a 256-bit key (local wrap needs an AES-256 KEK)",
                      kek_id);
  }
  if (r < 0) {
    secmem_free (kek);
    return keyprov_kmip_fail (r, "Get", kek_id);
  }
  *out = kek;
  return 0;
}

static int
wrap_locked (struct keyprov_kmip *k, const char *kek_id, enum key_wrap wrap,
             const uint8_t *dek, size_t dek_len, uint8_t *out, size_t out_size, size_t *out_len)
{
  int r;

  if ((r = check_uid (kek_id)) < 0)
    return r;
  if (wrap == KEY_WRAP_AES_KWP && k->new_kek && strcmp (kek_id, k->new_kek_id) == 0) {
    /* Created, activated and fetched by create_kek a moment ago, in one exchange. */
    r = keywrap_wrap (k->new_kek, KEK_LEN, dek, dek_len, out, out_size, out_len);
    drop_new_kek (k);
    return r;
  }
  if ((r = require_active (k, kek_id)) < 0)
    return r;
  if (wrap == KEY_WRAP_AES_KWP) {
    CLEANUP_SECMEM_FREE uint8_t *kek = NULL;
    if ((r = get_kek (k, kek_id, &kek)) < 0)
      return r;
    return keywrap_wrap (kek, KEK_LEN, dek, dek_len, out, out_size, out_len);
  }
  if (wrap == KEY_WRAP_KMS) {
    uint8_t iv[KMS_WRAP_IV_LEN];
    uint8_t *ct = NULL;
    size_t ct_len = 0;

    if (crypto_random_bytes (iv, sizeof iv) < 0)
      return ncr_error (EIO, "the OS random generator failed");
    r = kmip_encrypt (k->client, kek_id, KMIP_BLOCK_CIPHER_MODE_CBC, iv, sizeof iv, dek, dek_len,
                      &ct, &ct_len);
    if (r < 0)
      return keyprov_kmip_fail (r, "Encrypt (wrap kms needs KMIP >= 1.2)", kek_id);
    if (ct_len == 0 || KMS_WRAP_HDR + sizeof iv + ct_len > out_size) {
      free (ct);
      return ncr_error (EBADMSG, "KMS Encrypt returned %zu bytes for a %zu-byte key",
                        ct_len, dek_len);
    }
    out[0] = KMIP_BLOCK_CIPHER_MODE_CBC;
    out[1] = sizeof iv;
    memcpy (out + KMS_WRAP_HDR, iv, sizeof iv);
    memcpy (out + KMS_WRAP_HDR + sizeof iv, ct, ct_len);
    *out_len = KMS_WRAP_HDR + sizeof iv + ct_len;
    free (ct);                  /* ciphertext: not a secret */
    return 0;
  }
  return ncr_error (EINVAL, "wrap mode %s is not supported by a KMS", key_wrap_name (wrap));
}

/* The parts of a "kms" wrapped DEK (see KMS_WRAP_HDR). */
static int
parse_kms_wrapped (const uint8_t *in, size_t in_len, const uint8_t **iv, size_t *iv_len,
                   const uint8_t **ct, size_t *ct_len)
{
  if (in_len < KMS_WRAP_HDR || in[0] != KMIP_BLOCK_CIPHER_MODE_CBC || in[1] != KMS_WRAP_IV_LEN ||
      in_len <= KMS_WRAP_HDR + (size_t) in[1])
    return ncr_error (EINVAL, "volume header: malformed KMS-wrapped key");
  *iv = in + KMS_WRAP_HDR;
  *iv_len = in[1];
  *ct = in + KMS_WRAP_HDR + in[1];
  *ct_len = in_len - KMS_WRAP_HDR - in[1];
  return 0;
}

static int
unwrap_error (int r, const char *kek_id)
{
  if (r == -EKEYREJECTED)
    return ncr_error (EKEYREJECTED, "the volume key does not unwrap under KEK %s (wrong "
                      "KEK, or the header was tampered with)", kek_id);
  return r;
}

static int
kms_dek_too_long (const char *kek_id, size_t len)
{
  return ncr_error (EKEYREJECTED, "KMS Decrypt under KEK %s gave %zu bytes, not a volume key "
                    "(wrong KEK?)", kek_id, len);
}

/* Answer from what keyprov_prefetch fetched: 0, -errno, or 1 if nothing is there for it. */
static int
unwrap_prefetched (struct keyprov_kmip *k, const char *kek_id, enum key_wrap wrap,
                   const uint8_t *in, size_t in_len, uint8_t *dek, size_t dek_size,
                   size_t *dek_len)
{
  const struct keycache_entry *e;

  if (wrap == KEY_WRAP_AES_KWP && (e = keycache_find (&k->cache, kek_id, NULL, 0)) != NULL)
    return unwrap_error (keywrap_unwrap (e->secret, e->len, in, in_len, dek, dek_size,
                                         dek_len), kek_id);
  if (wrap == KEY_WRAP_KMS && (e = keycache_find (&k->cache, kek_id, in, in_len)) != NULL) {
    if (e->len > dek_size)
      return kms_dek_too_long (kek_id, e->len);
    memcpy (dek, e->secret, e->len);
    *dek_len = e->len;
    return 0;
  }
  return 1;
}

static int
unwrap_locked (struct keyprov_kmip *k, const char *kek_id, enum key_wrap wrap,
               const uint8_t *in, size_t in_len, uint8_t *dek, size_t dek_size, size_t *dek_len)
{
  int r;

  if ((r = check_uid (kek_id)) < 0)
    return r;
  if ((r = unwrap_prefetched (k, kek_id, wrap, in, in_len, dek, dek_size, dek_len)) <= 0)
    return r;
  if ((r = require_active (k, kek_id)) < 0)
    return r;
  if (wrap == KEY_WRAP_AES_KWP) {
    CLEANUP_SECMEM_FREE uint8_t *kek = NULL;
    if ((r = get_kek (k, kek_id, &kek)) < 0)
      return r;
    return unwrap_error (keywrap_unwrap (kek, KEK_LEN, in, in_len, dek, dek_size, dek_len),
                         kek_id);
  }
  if (wrap == KEY_WRAP_KMS) {
    const uint8_t *iv = NULL, *ct = NULL;
    uint8_t *pt = NULL;
    size_t pt_len = 0, iv_len = 0, ct_len = 0;

    if ((r = parse_kms_wrapped (in, in_len, &iv, &iv_len, &ct, &ct_len)) < 0)
      return r;
    r = kmip_decrypt (k->client, kek_id, KMIP_BLOCK_CIPHER_MODE_CBC, iv, iv_len, ct, ct_len,
                      &pt, &pt_len);
    if (r < 0)
      return keyprov_kmip_fail (r, "Decrypt", kek_id);
    if (pt_len > dek_size) {
      crypto_wipe (pt, pt_len);
      free (pt);
      return kms_dek_too_long (kek_id, pt_len);
    }
    memcpy (dek, pt, pt_len);
    *dek_len = pt_len;
    crypto_wipe (pt, pt_len);
    free (pt);
    return 0;
  }
  return ncr_error (EINVAL, "wrap mode %s is not supported by a KMS", key_wrap_name (wrap));
}

static int
create_kek_locked (struct keyprov_kmip *k, const char *name, bool local_wrap,
                   char *id_out, size_t id_size)
{
  struct kmip_create_params p = {
    .length_bits = 256,
    .usage_mask = KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT | KMIP_CRYPTOGRAPHIC_USAGE_MASK_DECRYPT |
                  KMIP_CRYPTOGRAPHIC_USAGE_MASK_WRAP_KEY | KMIP_CRYPTOGRAPHIC_USAGE_MASK_UNWRAP_KEY,
    .name = name,
    .activate = true,
  };
  char uid[KMIP_UID_MAX];
  int r;

  drop_new_kek (k);
  if (local_wrap) {
    /* Local wrap needs the KEK: Create, Activate and Get in one message where the server
     * takes the ID placeholder (kmip_create_aes_get falls back as the server requires). */
    uint8_t *kek = secmem_alloc (KEK_LEN);
    if (kek == NULL)
      return -errno;
    r = kmip_create_aes_get (k->client, &p, uid, kek, KEK_LEN);
    if (r >= 0 && r != KEK_LEN) {
      secmem_free (kek);
      return ncr_error (EBADMSG, "KMS Create returned a %d-byte KEK %s, not %d bytes", r, uid,
                        KEK_LEN);
    }
    if (r < 0) {
      secmem_free (kek);
      return keyprov_kmip_fail (r, "Create", NULL);
    }
    k->new_kek = kek;
    snprintf (k->new_kek_id, sizeof k->new_kek_id, "%s", uid);
  }
  else if ((r = kmip_create_aes (k->client, &p, uid)) < 0)
    return keyprov_kmip_fail (r, "Create", NULL);
  if (strlen (uid) >= id_size)
    return ncr_error (ENAMETOOLONG, "KMS returned an identifier that is too long");
  strcpy (id_out, uid);
  return 0;
}

static int
get_key_locked (struct keyprov_kmip *k, const char *key_id, uint8_t *key, size_t key_size,
                size_t *key_len)
{
  int r;

  if ((r = check_uid (key_id)) < 0 || (r = require_active (k, key_id)) < 0)
    return r;
  /* Format left to the server: Raw is not applicable to Secret Data on some servers. */
  r = kmip_get_key (k->client, key_id, 0, key, key_size);
  if (r == -ENOBUFS)
    return ncr_error (EINVAL, "key %s is larger than %zu bytes", key_id, key_size);
  if (r < 0)
    return keyprov_kmip_fail (r, "Get", key_id);
  *key_len = (size_t) r;
  return 0;
}

/* ---- many volumes at once */

/* Sort item indices by the KEK id found at id_offset in each item of base (stride bytes): the
 * items under one KEK side by side, so that each distinct KEK is asked about once. */
struct by_id { const uint8_t *base; size_t stride, id_offset; };

static const char *
id_at (const struct by_id *b, size_t i)
{
  return *(const char *const *) (b->base + i * b->stride + b->id_offset);
}

static int
cmp_by_id (const void *x, const void *y, void *bv)
{
  return strcmp (id_at (bv, *(const size_t *) x), id_at (bv, *(const size_t *) y));
}

static void
sort_by_id (size_t *order, size_t m, const struct by_id *b)
{
  qsort_r (order, m, sizeof *order, cmp_by_id, (void *) b);
}

/* The end of the run of order[] entries from g on that share order[g]'s KEK id. */
static size_t
run_end (const size_t *order, size_t g, size_t m, const struct by_id *b)
{
  size_t e = g + 1;

  while (e < m && strcmp (id_at (b, order[e]), id_at (b, order[g])) == 0)
    e++;
  return e;
}

/* The State answer of a batch as kek_state_locked gives it: 0 with *st, or -errno. */
static int
item_state (struct keyprov_kmip *k, const struct kmip_batch_item *it, enum kek_state *st)
{
  if (it->result == KMIP_E_RESULT &&
      it->status.reason == KMIP_RESULT_REASON_ITEM_NOT_FOUND)
    *st = KEK_STATE_MISSING;
  else if (it->result < 0)
    return item_fail (it, "GetAttributes");
  else if (map_state (it->state, st) < 0)
    return ncr_error (EBADMSG, "KMS returned no usable state for KEK %s", it->uid);
  saw_state (k, it->uid, *st);
  return 0;
}

/* Keep what the batch fetched for want w (its State item st, its Get or Decrypt item d);
 * kept[d] says the KEK of a Get is already kept. Returns w's result. */
static int
take_prefetched (struct keyprov_kmip *k, const struct keyprov_want *w, enum key_wrap wrap,
                 const struct kmip_batch_item *st, const struct kmip_batch_item *d, bool *kept)
{
  enum kek_state state;
  int r;

  if ((r = item_state (k, st, &state)) < 0 || (r = state_error (w->kek_id, state)) < 0)
    return r;
  if (wrap == KEY_WRAP_AES_KWP) {
    if (d->result == -ENOBUFS || (d->result == 0 && d->out_len != KEK_LEN))
      return ncr_error (EINVAL, "KEK %s is not a 256-bit key (local wrap needs an AES-256 "
                        "KEK)", w->kek_id);
    if (d->result < 0)
      return item_fail (d, "Get");
    if (*kept)
      return 0;
    *kept = true;
    return keycache_put (&k->cache, w->kek_id, NULL, 0, d->out, d->out_len);
  }
  if (d->result == -ENOBUFS)
    return kms_dek_too_long (w->kek_id, d->out_size + 1);
  if (d->result < 0)
    return item_fail (d, "Decrypt");
  if (d->out_len == 0)
    return kms_dek_too_long (w->kek_id, 0);
  return keycache_put (&k->cache, w->kek_id, w->wrapped, w->wrapped_len, d->out, d->out_len);
}

static int
prefetch_locked (struct keyprov_kmip *k, struct keyprov_want *w, const enum key_wrap *wraps,
                 size_t n)
{
  const struct by_id b = { (const uint8_t *) w, sizeof *w, offsetof (struct keyprov_want,
                                                                     kek_id) };
  CLEANUP_FREE size_t *order = calloc (n, sizeof *order);
  CLEANUP_FREE size_t *st_of = calloc (n, sizeof *st_of);
  CLEANUP_FREE size_t *data_of = calloc (n, sizeof *data_of);
  /* At most 2 items a want: a State and a Get for its KEK, or a State and its Decrypt. */
  CLEANUP_FREE struct kmip_batch_item *items = calloc (2 * n, sizeof *items);
  CLEANUP_FREE bool *kept = calloc (2 * n, sizeof *kept);
  CLEANUP_SECMEM_FREE uint8_t *secrets = NULL;
  size_t m = 0, nitems = 0, nsecrets = 0, slot = 0;
  int r;

  if (!order || !st_of || !data_of || !items || !kept)
    return ncr_error (ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    const uint8_t *iv, *ct;
    size_t iv_len, ct_len;

    if (w[i].result == 0 && (w[i].result = check_uid (w[i].kek_id)) == 0 &&
        (wraps[i] == KEY_WRAP_AES_KWP ||
         (wraps[i] == KEY_WRAP_KMS &&
          (w[i].result = parse_kms_wrapped (w[i].wrapped, w[i].wrapped_len, &iv, &iv_len, &ct,
                                            &ct_len)) == 0)))
      order[m++] = i;
    else if (w[i].result == 0)
      w[i].result = ncr_error (EINVAL, "wrap mode %s is not supported by a KMS",
                               key_wrap_name (wraps[i]));
  }
  if (m == 0)
    return 0;
  sort_by_id (order, m, &b);
  /* Items per distinct KEK: its State, then its Get if a volume wraps locally, then the
   * Decrypt of each volume wrapped by the KMS; the key bytes go to slots of secrets. */
  for (size_t g = 0, e; g < m; g = e) {
    e = run_end (order, g, m, &b);
    nsecrets++;                 /* at most one Get */
    for (size_t j = g; j < e; j++)
      nsecrets += wraps[order[j]] == KEY_WRAP_KMS;
  }
  secrets = secmem_alloc (nsecrets * KEYCACHE_SECRET_MAX);
  if (secrets == NULL)
    return -errno;
  for (size_t g = 0, e; g < m; g = e) {
    const char *id = w[order[g]].kek_id;
    size_t st = nitems++, get = SIZE_MAX;

    e = run_end (order, g, m, &b);
    items[st] = (struct kmip_batch_item) { .op = KMIP_OPERATION_GET_ATTRIBUTES, .uid = id };
    for (size_t j = g; j < e; j++) {
      size_t i = order[j];
      st_of[i] = st;
      if (wraps[i] == KEY_WRAP_AES_KWP) {
        if (get == SIZE_MAX) {
          get = nitems++;
          items[get] = (struct kmip_batch_item) {
            .op = KMIP_OPERATION_GET, .uid = id, .key_format = KMIP_KEY_FORMAT_TYPE_RAW,
            .out = secrets + slot++ * KEYCACHE_SECRET_MAX, .out_size = KEK_LEN,
          };
        }
        data_of[i] = get;
      }
      else {
        const uint8_t *iv = NULL, *ct = NULL;
        size_t iv_len = 0, ct_len = 0;

        parse_kms_wrapped (w[i].wrapped, w[i].wrapped_len, &iv, &iv_len, &ct, &ct_len);
        data_of[i] = nitems;
        items[nitems++] = (struct kmip_batch_item) {
          .op = KMIP_OPERATION_DECRYPT, .uid = id, .mode = KMIP_BLOCK_CIPHER_MODE_CBC,
          .iv = iv, .iv_len = iv_len, .in = ct, .in_len = ct_len,
          .out = secrets + slot++ * KEYCACHE_SECRET_MAX, .out_size = KEYCACHE_SECRET_MAX,
        };
      }
    }
  }
  r = kmip_batch (k->client, items, nitems);
  for (size_t j = 0; j < m; j++) {
    size_t i = order[j];
    w[i].result = take_prefetched (k, &w[i], wraps[i], &items[st_of[i]], &items[data_of[i]],
                                   &kept[data_of[i]]);
  }
  /* secrets (every fetched key) is wiped as it is freed; the kept ones were copied. */
  return r < 0 ? keyprov_kmip_fail (r, "batch", NULL) : 0;
}

static int
kek_state_many_locked (struct keyprov_kmip *k, struct keyprov_state_query *q, size_t n)
{
  const struct by_id b = { (const uint8_t *) q, sizeof *q,
                           offsetof (struct keyprov_state_query, kek_id) };
  CLEANUP_FREE size_t *order = calloc (n, sizeof *order);
  CLEANUP_FREE size_t *item_of = calloc (n, sizeof *item_of);
  CLEANUP_FREE struct kmip_batch_item *items = calloc (n, sizeof *items);
  size_t m = 0, nitems = 0;
  int r;

  if (n && (!order || !item_of || !items))
    return ncr_error (ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    q[i].state = KEK_STATE_MISSING;
    if ((q[i].result = check_uid (q[i].kek_id ? q[i].kek_id : "")) == 0)
      order[m++] = i;
  }
  if (m == 0)
    return 0;
  sort_by_id (order, m, &b);
  for (size_t g = 0, e; g < m; g = e) {
    e = run_end (order, g, m, &b);
    items[nitems] = (struct kmip_batch_item) { .op = KMIP_OPERATION_GET_ATTRIBUTES,
                                               .uid = q[order[g]].kek_id };
    for (size_t j = g; j < e; j++)
      item_of[order[j]] = nitems;
    nitems++;
  }
  r = kmip_batch (k->client, items, nitems);
  for (size_t j = 0; j < m; j++) {
    size_t i = order[j];
    q[i].result = item_state (k, &items[item_of[i]], &q[i].state);
  }
  return r < 0 ? keyprov_kmip_fail (r, "GetAttributes batch", NULL) : 0;
}

/* ---- the operations, each under the lock */

#define KMIP_PROVIDER(kp) \
  struct keyprov_kmip *k = (struct keyprov_kmip *) (kp); \
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&k->lock)

static int
keyprov_kmip_kek_state (struct keyprov *kp, const char *kek_id, enum kek_state *state)
{
  KMIP_PROVIDER (kp);
  return kek_state_locked (k, kek_id, state);
}

static int
keyprov_kmip_wrap (struct keyprov *kp, const char *kek_id, enum key_wrap wrap,
                   const uint8_t *dek, size_t dek_len, uint8_t *out, size_t out_size,
                   size_t *out_len)
{
  KMIP_PROVIDER (kp);
  return wrap_locked (k, kek_id, wrap, dek, dek_len, out, out_size, out_len);
}

static int
keyprov_kmip_unwrap (struct keyprov *kp, const char *kek_id, enum key_wrap wrap,
                     const uint8_t *in, size_t in_len, uint8_t *dek, size_t dek_size,
                     size_t *dek_len)
{
  KMIP_PROVIDER (kp);
  return unwrap_locked (k, kek_id, wrap, in, in_len, dek, dek_size, dek_len);
}

static int
keyprov_kmip_create_kek (struct keyprov *kp, const char *name, bool local_wrap,
                         char *id_out, size_t id_size)
{
  KMIP_PROVIDER (kp);
  return create_kek_locked (k, name, local_wrap, id_out, id_size);
}

static int
keyprov_kmip_get_key (struct keyprov *kp, const char *key_id, uint8_t *key, size_t key_size,
                      size_t *key_len)
{
  KMIP_PROVIDER (kp);
  return get_key_locked (k, key_id, key, key_size, key_len);
}

static int
keyprov_kmip_prefetch (struct keyprov *kp, struct keyprov_want *w, const enum key_wrap *wraps,
                       size_t n)
{
  KMIP_PROVIDER (kp);
  return prefetch_locked (k, w, wraps, n);
}

static void
keyprov_kmip_forget (struct keyprov *kp)
{
  KMIP_PROVIDER (kp);
  keycache_clear (&k->cache);
}

static int
keyprov_kmip_kek_state_many (struct keyprov *kp, struct keyprov_state_query *q, size_t n)
{
  KMIP_PROVIDER (kp);
  return kek_state_many_locked (k, q, n);
}

/* The client's counters are read under its own lock: no need to wait for ours. */
static void
keyprov_kmip_stats (const struct keyprov *kp, uint64_t *messages, uint64_t *connections)
{
  const struct keyprov_kmip *k = (const struct keyprov_kmip *) kp;

  *messages = kmip_client_requests (k->client);
  *connections = kmip_client_connections (k->client);
}

/* The configuration and TLS context (certificates, client key) stay loaded: a process that
 * drops privileges after this can still reconnect. */
static void
keyprov_kmip_disconnect (struct keyprov *kp)
{
  KMIP_PROVIDER (kp);
  kmip_client_disconnect (k->client);
}

/* No lock: the caller guarantees nobody else uses the provider any more. */
static void
keyprov_kmip_free (struct keyprov *kp)
{
  struct keyprov_kmip *k = (struct keyprov_kmip *) kp;

  drop_new_kek (k);
  keycache_clear (&k->cache);
  kmip_client_free (k->client);
  kmip_config_free (k->cfg);
  free (k->config_path);
  pthread_mutex_destroy (&k->lock);
  free (k);
}

static const struct keyprov_ops keyprov_kmip_ops = {
  .kind = KEYPROV_KMIP,
  .disconnect = keyprov_kmip_disconnect,
  .create_kek = keyprov_kmip_create_kek,
  .wrap = keyprov_kmip_wrap,
  .unwrap = keyprov_kmip_unwrap,
  .kek_state = keyprov_kmip_kek_state,
  .prefetch = keyprov_kmip_prefetch,
  .forget = keyprov_kmip_forget,
  .kek_state_many = keyprov_kmip_kek_state_many,
  .stats = keyprov_kmip_stats,
  .get_key = keyprov_kmip_get_key,
  .free = keyprov_kmip_free,
};

int
keyprov_kmip_open (const char *config_path, struct keyprov **out)
{
  struct keyprov_kmip *k = calloc (1, sizeof *k);
  int r;

  if (k == NULL)
    return ncr_error (ENOMEM, "out of memory");
  k->base.ops = &keyprov_kmip_ops;
  pthread_mutex_init (&k->lock, NULL);
  k->cache = (struct keycache) KEYCACHE_INIT;
  k->config_path = strdup (config_path);
  if (k->config_path == NULL) {
    keyprov_kmip_free (&k->base);
    return ncr_error (ENOMEM, "out of memory");
  }
  r = kmip_config_load (config_path, &k->cfg);
  if (r == 0)
    r = kmip_client_new (k->cfg, &k->client);
  if (r < 0) {
    r = ncr_error (EINVAL, "KMS configuration %s: %s", config_path, kmip_last_error ());
    keyprov_kmip_free (&k->base);
    return r;
  }
  ncr_secret_path_warning ("KMS configuration", config_path, k->base.warning,
                           sizeof k->base.warning);
  ncr_secret_path_warning ("KMS client key", k->cfg->client_key ? k->cfg->client_key :
                           k->cfg->client_cert, k->base.warning, sizeof k->base.warning);
  *out = &k->base;
  return 0;
}
