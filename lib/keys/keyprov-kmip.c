/* SPDX-License-Identifier: BSD-3-Clause */
/* KMIP key provider: the KEK lives in a KMIP server (OVHcloud OKMS, PyKMIP, any KMIP 1.x/2.0).
 * Wrap "aes-kwp": Get the KEK into locked memory, RFC 5649 locally, wipe it. Wrap "kms": the
 * server encrypts/decrypts the DEK (AES-CBC, random IV stored with the ciphertext), so the KEK
 * never leaves the KMS. Before any unwrap the KEK must be Active. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmip/kmip.h"
#include "kmip/ttlv.h"

#include "backend.h"
#include "cleanup.h"
#include "errors.h"
#include "filemode.h"
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
  struct kmip_client *client;
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

/* Turn a kmip-client failure into -errno with a message. Connection problems keep their errno
 * (ECONNREFUSED, ETIMEDOUT, ...) so that callers can tell "unreachable" from "refused". */
static int
keyprov_kmip_fail (int r, const char *what, const char *uid)
{
  const char *msg = kmip_last_error ();
  int e;

  if (r == KMIP_E_RESULT) {
    struct kmip_result res = kmip_last_result ();
    e = res.reason == KMIP_RESULT_REASON_ITEM_NOT_FOUND ? ENOENT :
        res.reason == KMIP_RESULT_REASON_PERMISSION_DENIED ? EACCES : EIO;
    if (e == ENOENT)
      return ncr_error (e, "KEK %s not found in the KMS (destroyed, or another identity's "
                        "key?): %s", uid ? uid : "", msg);
    return ncr_error (e, "KMS refused %s%s%s: %s", what, uid ? " of " : "", uid ? uid : "",
                      msg);
  }
  switch (r) {
  case KMIP_E_TLS: e = EPROTO; break;
  case KMIP_E_DECODE: case KMIP_E_TOO_BIG: e = EBADMSG; break;
  case KMIP_E_VERSION: e = EPROTONOSUPPORT; break;
  case KMIP_E_CONFIG: e = EINVAL; break;
  default: e = r < 0 && r > -4096 ? -r : EIO; break;
  }
  return ncr_error (e, "KMS %s failed: %s", what, msg);
}

static int
check_uid (const char *uid)
{
  if (strlen (uid) == 0 || strlen (uid) >= KMIP_UID_MAX)
    return ncr_error (EINVAL, "KMIP unique identifier '%.40s' is empty or too long", uid);
  return 0;
}

static int
keyprov_kmip_kek_state (struct keyprov *kp, const char *kek_id, enum kek_state *state)
{
  struct keyprov_kmip *k = (struct keyprov_kmip *) kp;
  struct kmip_attrs a;
  int r;

  if ((r = check_uid (kek_id)) < 0)
    return r;
  memset (&a, 0, sizeof a);
  r = kmip_get_attributes (k->client, kek_id, &a);
  if (r < 0) {
    if (r == KMIP_E_RESULT && kmip_last_result ().reason == KMIP_RESULT_REASON_ITEM_NOT_FOUND) {
      *state = KEK_STATE_MISSING;
      return 0;
    }
    return keyprov_kmip_fail (r, "GetAttributes", kek_id);
  }
  switch (a.state) {
  case KMIP_STATE_ACTIVE: *state = KEK_STATE_ACTIVE; break;
  case KMIP_STATE_PRE_ACTIVE: *state = KEK_STATE_PRE_ACTIVE; break;
  case KMIP_STATE_DEACTIVATED: *state = KEK_STATE_DEACTIVATED; break;
  case KMIP_STATE_COMPROMISED: *state = KEK_STATE_COMPROMISED; break;
  case KMIP_STATE_DESTROYED: case KMIP_STATE_DESTROYED_COMPROMISED:
    *state = KEK_STATE_DESTROYED; break;
  default:
    r = ncr_error (EBADMSG, "KMS returned no usable state for KEK %s", kek_id);
  }
  kmip_attrs_free (&a);
  return r < 0 ? r : 0;
}

/* The KEK must be Active before it is used: a revoked or destroyed KEK is a deliberate "stop". */
static int
require_active (struct keyprov *kp, const char *kek_id)
{
  enum kek_state st;
  int r;

  if ((r = keyprov_kmip_kek_state (kp, kek_id, &st)) < 0)
    return r;
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
keyprov_kmip_wrap (struct keyprov *kp, const char *kek_id, enum key_wrap wrap,
                   const uint8_t *dek, size_t dek_len, uint8_t *out, size_t out_size,
                   size_t *out_len)
{
  struct keyprov_kmip *k = (struct keyprov_kmip *) kp;
  int r;

  if ((r = check_uid (kek_id)) < 0)
    return r;
  if (wrap == KEY_WRAP_AES_KWP && k->new_kek && strcmp (kek_id, k->new_kek_id) == 0) {
    /* Created, activated and fetched by create_kek a moment ago, in one exchange. */
    r = keywrap_wrap (k->new_kek, KEK_LEN, dek, dek_len, out, out_size, out_len);
    drop_new_kek (k);
    return r;
  }
  if ((r = require_active (kp, kek_id)) < 0)
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

static int
keyprov_kmip_unwrap (struct keyprov *kp, const char *kek_id, enum key_wrap wrap,
                     const uint8_t *in, size_t in_len, uint8_t *dek, size_t dek_size,
                     size_t *dek_len)
{
  struct keyprov_kmip *k = (struct keyprov_kmip *) kp;
  int r;

  if ((r = check_uid (kek_id)) < 0 || (r = require_active (kp, kek_id)) < 0)
    return r;
  if (wrap == KEY_WRAP_AES_KWP) {
    CLEANUP_SECMEM_FREE uint8_t *kek = NULL;
    if ((r = get_kek (k, kek_id, &kek)) < 0)
      return r;
    r = keywrap_unwrap (kek, KEK_LEN, in, in_len, dek, dek_size, dek_len);
    if (r == -EKEYREJECTED)
      return ncr_error (EKEYREJECTED, "the volume key does not unwrap under KEK %s (wrong "
                        "KEK, or the header was tampered with)", kek_id);
    return r;
  }
  if (wrap == KEY_WRAP_KMS) {
    uint8_t *pt = NULL;
    size_t pt_len = 0, iv_len;

    if (in_len < KMS_WRAP_HDR || in[0] != KMIP_BLOCK_CIPHER_MODE_CBC || in[1] != KMS_WRAP_IV_LEN ||
        in_len <= KMS_WRAP_HDR + (size_t) in[1])
      return ncr_error (EINVAL, "volume header: malformed KMS-wrapped key");
    iv_len = in[1];
    r = kmip_decrypt (k->client, kek_id, in[0], in + KMS_WRAP_HDR, iv_len,
                      in + KMS_WRAP_HDR + iv_len, in_len - KMS_WRAP_HDR - iv_len,
                      &pt, &pt_len);
    if (r < 0)
      return keyprov_kmip_fail (r, "Decrypt", kek_id);
    if (pt_len > dek_size) {
      crypto_wipe (pt, pt_len);
      free (pt);
      return ncr_error (EKEYREJECTED, "KMS Decrypt under KEK %s gave %zu bytes, not a volume "
                        "key (wrong KEK?)", kek_id, pt_len);
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
keyprov_kmip_create_kek (struct keyprov *kp, const char *name, bool local_wrap,
                         char *id_out, size_t id_size)
{
  struct keyprov_kmip *k = (struct keyprov_kmip *) kp;
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
keyprov_kmip_get_key (struct keyprov *kp, const char *key_id, uint8_t *key, size_t key_size,
                      size_t *key_len)
{
  struct keyprov_kmip *k = (struct keyprov_kmip *) kp;
  int r;

  if ((r = check_uid (key_id)) < 0 || (r = require_active (kp, key_id)) < 0)
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

static void
keyprov_kmip_free (struct keyprov *kp)
{
  struct keyprov_kmip *k = (struct keyprov_kmip *) kp;

  drop_new_kek (k);
  kmip_client_free (k->client);
  kmip_config_free (k->cfg);
  free (k->config_path);
  free (k);
}

/* The configuration and TLS context (certificates, client key) stay loaded: a process that
 * drops privileges after this can still reconnect. */
static void
keyprov_kmip_disconnect (struct keyprov *kp)
{
  kmip_client_disconnect (((struct keyprov_kmip *) kp)->client);
}

static const struct keyprov_ops keyprov_kmip_ops = {
  .kind = KEYPROV_KMIP,
  .disconnect = keyprov_kmip_disconnect,
  .create_kek = keyprov_kmip_create_kek,
  .wrap = keyprov_kmip_wrap,
  .unwrap = keyprov_kmip_unwrap,
  .kek_state = keyprov_kmip_kek_state,
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
