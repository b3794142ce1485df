/* SPDX-License-Identifier: BSD-3-Clause */
/* The crypto backend on OpenSSL 3, the one file in lib/crypto that includes OpenSSL: random
 * bytes, constant-time compare, wipe, SHA-256, HMAC and HKDF for every layer (backend.h); keyed
 * AES-ECB, AES-XTS and AES key wrap contexts for the engines and keywrap.c
 * (crypto-internal.h). Swapping or auditing the crypto library is this file's work.
 *
 * AES goes through the provider's dispatch table. For XTS: per data unit, an IV-only init
 * and one update, without the EVP layer's ~60 ns of bookkeeping per EVP_CipherInit_ex (a
 * tenth of the time of a 4 KiB sector). For ECB (the engine's batched construction): one
 * update per chunk, as EVP_CipherUpdate would do. Everything used is public API
 * (OSSL_PROVIDER(3), provider-cipher(7)); the cipher code is the provider's, unchanged.
 *
 * Key memory. Each provider context holds its AES key schedules inline (the default and FIPS
 * providers' PROV_AES_CTX / PROV_AES_XTS_CTX), in one allocation made by the provider with
 * OPENSSL_zalloc, i.e. malloc. Holding the context pointer ourselves (which EVP does not give
 * out) lets us lock the pages under [ctx, ctx + malloc_usable_size (ctx)) and mark them
 * MADV_DONTDUMP (secmem_lock_region) before the key is set; a copy (dupctx) is locked right
 * after the provider makes it. The provider wipes the context when it frees it
 * (OPENSSL_clear_free). What this cannot give: MADV_WIPEONFORK (the pages are shared with
 * other heap objects that a forked child needs), and contexts of a provider we do not know
 * to allocate with malloc, or with OpenSSL's allocator replaced (CRYPTO_set_mem_functions):
 * then these functions say -ENOTSUP rather than keep a key schedule in unlocked memory. */
#include "backend.h"
#include "crypto-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include "errors.h"
#include "secmem.h"

/* ---- random, compare, wipe, digests ---- */

int
crypto_random_bytes (void *buf, size_t n)
{
  if (n > INT_MAX || RAND_bytes (buf, (int) n) != 1)
    return ncr_error (EIO, "the OS random generator failed");
  return 0;
}

int
crypto_random_key (void *buf, size_t n)
{
  if (n > INT_MAX || RAND_priv_bytes (buf, (int) n) != 1)
    return ncr_error (EIO, "the OS random generator failed");
  return 0;
}

int
crypto_ct_memcmp (const void *a, const void *b, size_t n)
{
  return CRYPTO_memcmp (a, b, n);
}

void
crypto_wipe (void *p, size_t n)
{
  OPENSSL_cleanse (p, n);
}

int
crypto_sha256 (const struct iovec *parts, size_t n, uint8_t out[CRYPTO_SHA256_LEN])
{
  EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
  unsigned md_len = 0;
  bool ok;

  if (ctx == NULL)
    return ncr_error (ENOMEM, "out of memory");
  ok = EVP_DigestInit_ex (ctx, EVP_sha256 (), NULL) == 1;
  for (size_t i = 0; ok && i < n; i++)
    ok = EVP_DigestUpdate (ctx, parts[i].iov_base, parts[i].iov_len) == 1;
  ok = ok && EVP_DigestFinal_ex (ctx, out, &md_len) == 1 && md_len == CRYPTO_SHA256_LEN;
  EVP_MD_CTX_free (ctx);                /* cleanses the digest state */
  return ok ? 0 : ncr_error (EIO, "SHA-256 failed");
}

int
crypto_sha256_units (const uint8_t *p, size_t unit, size_t n, uint8_t *out, size_t out_len)
{
  EVP_MD *md = EVP_MD_fetch (NULL, "SHA256", NULL);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
  uint8_t d[CRYPTO_SHA256_LEN];
  unsigned md_len = 0;
  bool ok = md && ctx && out_len >= 1 && out_len <= CRYPTO_SHA256_LEN;

  for (size_t i = 0; ok && i < n; i++) {
    ok = EVP_DigestInit_ex2 (ctx, md, NULL) == 1 &&
         EVP_DigestUpdate (ctx, p + i * unit, unit) == 1 &&
         EVP_DigestFinal_ex (ctx, d, &md_len) == 1 && md_len == CRYPTO_SHA256_LEN;
    if (ok)
      memcpy (out + i * out_len, d, out_len);
  }
  EVP_MD_CTX_free (ctx);
  EVP_MD_free (md);
  return ok ? 0 : ncr_error (EIO, "SHA-256 failed");
}

int
crypto_hmac_sha256 (const uint8_t *key, size_t key_len, const void *msg, size_t len,
                    uint8_t out[CRYPTO_SHA256_LEN])
{
  unsigned out_len = 0;

  if (key_len > INT_MAX ||
      HMAC (EVP_sha256 (), key, (int) key_len, msg, len, out, &out_len) == NULL ||
      out_len != CRYPTO_SHA256_LEN)
    return ncr_error (EIO, "HMAC-SHA256 failed");
  return 0;
}

int
crypto_hkdf_sha256 (const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                    const char *info, uint8_t *out, size_t out_len)
{
  EVP_KDF *kdf = EVP_KDF_fetch (NULL, OSSL_KDF_NAME_HKDF, NULL);
  EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new (kdf) : NULL;
  OSSL_PARAM params[5], *p = params;
  int ok;

  *p++ = OSSL_PARAM_construct_utf8_string (OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0);
  *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_KEY, (void *) ikm, ikm_len);
  if (salt_len > 0)
    *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_SALT, (void *) salt, salt_len);
  *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_INFO, (void *) info, strlen (info));
  *p = OSSL_PARAM_construct_end ();
  ok = ctx != NULL && EVP_KDF_derive (ctx, out, out_len, params) == 1;
  EVP_KDF_CTX_free (ctx);       /* wipes the derived state */
  EVP_KDF_free (kdf);
  return ok ? 0 : ncr_error (EIO, "HKDF-SHA256 failed in OpenSSL");
}

/* ---- the provider's AES functions ---- */

struct prov_cipher {
  const char *name;
  EVP_CIPHER *fetched;          /* held for the process's life: keeps the provider loaded */
  void *provctx;
  OSSL_FUNC_cipher_newctx_fn *newctx;
  OSSL_FUNC_cipher_freectx_fn *freectx;
  OSSL_FUNC_cipher_dupctx_fn *dupctx;
  OSSL_FUNC_cipher_encrypt_init_fn *einit;
  OSSL_FUNC_cipher_decrypt_init_fn *dinit;
  OSSL_FUNC_cipher_update_fn *update;
  bool no_dup;                  /* one-shot use: dupctx not needed */
  bool ok;                      /* all found, and the contexts can be locked */
};

/* 128- and 256-bit AES (index 0 and 1). */
static struct prov_cipher xts_funcs[2] = { { .name = "AES-128-XTS" }, { .name = "AES-256-XTS" } };
static struct prov_cipher ecb_funcs[2] = { { .name = "AES-128-ECB" }, { .name = "AES-256-ECB" } };
/* RFC 5649 key wrap under a 16/24/32-byte KEK (index kek_len / 8 - 2). */
static struct prov_cipher kwp_funcs[3] = {
  { .name = "AES-128-WRAP-PAD", .no_dup = true }, { .name = "AES-192-WRAP-PAD", .no_dup = true },
  { .name = "AES-256-WRAP-PAD", .no_dup = true },
};
static pthread_once_t funcs_once = PTHREAD_ONCE_INIT;

/* One keyed provider context. */
struct crypto_aes {
  const struct prov_cipher *f;
  void *ctx;
  size_t locked;                /* bytes of ctx locked by lock_ctx (0: not locked) */
  int enc;
};

/* Does a provider's "NAME:ALIAS:OID" list contain name? */
static bool
names_contain (const char *names, const char *name)
{
  size_t n = strlen (name);

  for (const char *p = names; p && *p; p = strchr (p, ':') ? strchr (p, ':') + 1 : NULL)
    if (strncasecmp (p, name, n) == 0 && (p[n] == ':' || p[n] == '\0'))
      return true;
  return false;
}

/* Contexts are malloc'd (so malloc_usable_size applies) by the providers built on libcrypto's
 * allocator, as long as that allocator is malloc. */
static bool
lockable_provider (const OSSL_PROVIDER *prov)
{
  const char *pname = OSSL_PROVIDER_get0_name (prov);
  CRYPTO_malloc_fn m;
  CRYPTO_realloc_fn r;
  CRYPTO_free_fn f;

  CRYPTO_get_mem_functions (&m, &r, &f);
  return m == CRYPTO_malloc && f == CRYPTO_free && pname &&
    (strcmp (pname, "default") == 0 || strcmp (pname, "fips") == 0);
}

static void
resolve (struct prov_cipher *f)
{
  const OSSL_PROVIDER *prov;
  const OSSL_ALGORITHM *algs;
  int no_store;

  f->fetched = EVP_CIPHER_fetch (NULL, f->name, NULL);
  if (!f->fetched || !(prov = EVP_CIPHER_get0_provider (f->fetched)))
    return;
  if (!lockable_provider (prov))
    return;
  f->provctx = OSSL_PROVIDER_get0_provider_ctx (prov);
  algs = OSSL_PROVIDER_query_operation (prov, OSSL_OP_CIPHER, &no_store);
  for (const OSSL_ALGORITHM *a = algs; a && a->algorithm_names; a++) {
    if (!names_contain (a->algorithm_names, f->name))
      continue;
    for (const OSSL_DISPATCH *d = a->implementation; d->function_id; d++) {
      switch (d->function_id) {
      case OSSL_FUNC_CIPHER_NEWCTX: f->newctx = OSSL_FUNC_cipher_newctx (d); break;
      case OSSL_FUNC_CIPHER_FREECTX: f->freectx = OSSL_FUNC_cipher_freectx (d); break;
      case OSSL_FUNC_CIPHER_DUPCTX: f->dupctx = OSSL_FUNC_cipher_dupctx (d); break;
      case OSSL_FUNC_CIPHER_ENCRYPT_INIT: f->einit = OSSL_FUNC_cipher_encrypt_init (d); break;
      case OSSL_FUNC_CIPHER_DECRYPT_INIT: f->dinit = OSSL_FUNC_cipher_decrypt_init (d); break;
      case OSSL_FUNC_CIPHER_UPDATE: f->update = OSSL_FUNC_cipher_update (d); break;
      }
    }
    break;
  }
  if (algs)
    OSSL_PROVIDER_unquery_operation (prov, OSSL_OP_CIPHER, algs);
  f->ok = f->newctx && f->freectx && (f->dupctx || f->no_dup) && f->einit && f->dinit &&
    f->update;
}

static void
resolve_all (void)
{
  for (int i = 0; i < 2; i++) {
    resolve (&xts_funcs[i]);
    resolve (&ecb_funcs[i]);
  }
  for (int i = 0; i < 3; i++)
    resolve (&kwp_funcs[i]);
}

/* Lock the pages of a provider context and keep them out of core dumps; *locked: the bytes
 * locked, for ctx_free. */
static int
lock_ctx (void *ctx, size_t *locked)
{
  size_t n = malloc_usable_size (ctx);
  int r = secmem_lock_region (ctx, n);

  *locked = r == 0 ? n : 0;
  return r;
}

/* Free a context (OPENSSL_clear_free: its key schedules are wiped), then give its pages'
 * locks back. */
static void
ctx_free (const struct prov_cipher *f, void *ctx, size_t locked)
{
  f->freectx (ctx);
  secmem_unlock_region (ctx, locked);   /* the address only: the lock counts of its pages */
}

/* A new context of f, locked, then keyed. Returns 0 or -errno with a message. */
static int
ctx_new (const struct prov_cipher *f, int enc, const uint8_t *key, size_t key_len,
         const OSSL_PARAM *params, void **out, size_t *locked)
{
  void *ctx = f->newctx (f->provctx);
  int r;

  if (!ctx)
    return ncr_error (ENOMEM, "cannot make an OpenSSL %s context", f->name);
  if ((r = lock_ctx (ctx, locked)) < 0) {
    f->freectx (ctx);
    return r;
  }
  if ((enc ? f->einit : f->dinit) (ctx, key, key_len, NULL, 0, params) != 1) {
    ctx_free (f, ctx, *locked);
    return ncr_error (EINVAL, "OpenSSL refused the %s key", f->name);
  }
  *out = ctx;
  return 0;
}

/* ---- AES-ECB and AES-XTS contexts ---- */

int
crypto_aes_new (enum crypto_aes_mode mode, int enc, const uint8_t *key, size_t key_len,
                struct crypto_aes **out)
{
  /* ECB takes one AES key (16 or 32 bytes), XTS two. */
  size_t aes_len = mode == CRYPTO_AES_XTS ? key_len / 2 : key_len;
  struct prov_cipher *funcs = mode == CRYPTO_AES_XTS ? xts_funcs : ecb_funcs;
  unsigned int no_padding = 0;
  const OSSL_PARAM ecb_params[] = {
    OSSL_PARAM_construct_uint (OSSL_CIPHER_PARAM_PADDING, &no_padding),
    OSSL_PARAM_construct_end (),
  };
  struct crypto_aes *a;
  int r;

  if ((aes_len != 16 && aes_len != 32) || (mode == CRYPTO_AES_XTS && key_len % 2))
    return ncr_error (EINVAL, "AES key of %zu bytes: use 16 or 32 bytes per AES key", key_len);
  pthread_once (&funcs_once, resolve_all);
  if (!funcs[aes_len == 32].ok)
    return -ENOTSUP;
  a = calloc (1, sizeof *a);
  if (!a)
    return ncr_error (ENOMEM, "out of memory");
  a->f = &funcs[aes_len == 32];
  a->enc = enc;
  r = ctx_new (a->f, enc, key, key_len, mode == CRYPTO_AES_ECB ? ecb_params : NULL, &a->ctx,
               &a->locked);
  if (r < 0) {
    free (a);
    return r;
  }
  *out = a;
  return 0;
}

int
crypto_aes_dup (const struct crypto_aes *a, struct crypto_aes **out)
{
  struct crypto_aes *d = calloc (1, sizeof *d);
  int r;

  if (!d)
    return ncr_error (ENOMEM, "out of memory");
  *d = *a;
  d->locked = 0;
  d->ctx = a->f->dupctx (a->ctx);
  if (!d->ctx) {
    free (d);
    return ncr_error (ENOMEM, "cannot copy an OpenSSL %s context", a->f->name);
  }
  if ((r = lock_ctx (d->ctx, &d->locked)) < 0) {
    crypto_aes_free (d);
    return r;
  }
  *out = d;
  return 0;
}

int
crypto_aes_ecb (struct crypto_aes *a, uint8_t *buf, size_t len)
{
  size_t outl;

  if (a->f->update (a->ctx, buf, &outl, len, buf, len) != 1 || outl != len)
    return -EIO;
  return 0;
}

int
crypto_aes_xts (struct crypto_aes *a, unsigned unit, uint64_t sector,
                const uint8_t *in, uint8_t *out, size_t len)
{
  OSSL_FUNC_cipher_encrypt_init_fn *init = a->enc ? a->f->einit : a->f->dinit;
  void *ctx = a->ctx;

  for (size_t off = 0; off < len; off += unit, sector++) {
    uint8_t iv[16] = { 0 };
    size_t outl;

    for (int i = 0; i < 8; i++)         /* plain64: little-endian sector number */
      iv[i] = sector >> (8 * i);
    if (init (ctx, NULL, 0, iv, sizeof iv, NULL) != 1 ||
        a->f->update (ctx, out + off, &outl, unit, in + off, unit) != 1 || outl != unit)
      return ncr_error (EIO, "AES-XTS failed at sector %" PRIu64, sector);
  }
  return 0;
}

void
crypto_aes_free (struct crypto_aes *a)
{
  if (!a)
    return;
  ctx_free (a->f, a->ctx, a->locked);
  free (a);
}

void
crypto_aes_key_memory (const struct crypto_aes *a, const void **p, size_t *n)
{
  *p = a->ctx;
  *n = malloc_usable_size (a->ctx);
}

/* ---- RFC 5649 key wrap ---- */

int
crypto_aes_wrap_pad_locked (int enc, const uint8_t *kek, size_t kek_len,
                            const uint8_t *in, size_t in_len,
                            uint8_t *out, size_t out_size, size_t *out_len)
{
  const struct prov_cipher *f;
  void *ctx;
  size_t n = 0, locked = 0;
  int r, ok;

  if (kek_len != 16 && kek_len != 24 && kek_len != 32)
    return ncr_error (EINVAL, "key wrap: KEK is %zu bytes, not 16, 24 or 32", kek_len);
  pthread_once (&funcs_once, resolve_all);
  f = &kwp_funcs[kek_len / 8 - 2];
  if (!f->ok)
    return -ENOTSUP;
  if ((r = ctx_new (f, enc, kek, kek_len, NULL, &ctx, &locked)) < 0)
    return r == -EINVAL ? ncr_error (EINVAL, "key wrap: OpenSSL refused the KEK") : r;
  /* The wrap ciphers do the whole job in one update. The provider wants room for in_len
   * bytes even when unwrapping (which yields in_len - 8 at most): unwrap into locked scratch
   * memory of that size. */
  if (enc)
    ok = f->update (ctx, out, &n, out_size, in, in_len) == 1 && n <= out_size;
  else {
    uint8_t *tmp = secmem_alloc (in_len);

    if (!tmp) {
      r = -errno;
      ctx_free (f, ctx, locked);
      return r;
    }
    ok = f->update (ctx, tmp, &n, in_len, in, in_len) == 1 && n <= out_size;
    if (ok)
      memcpy (out, tmp, n);
    secmem_free (tmp);          /* wipes */
  }
  ctx_free (f, ctx, locked);
  if (!ok)
    return -EKEYREJECTED;
  *out_len = n;
  return 0;
}

static const EVP_CIPHER *
wrap_cipher (size_t kek_len)
{
  switch (kek_len) {
  case 16: return EVP_aes_128_wrap_pad ();
  case 24: return EVP_aes_192_wrap_pad ();
  case 32: return EVP_aes_256_wrap_pad ();
  default: return NULL;
  }
}

int
crypto_aes_wrap_pad_evp (int enc, const uint8_t *kek, size_t kek_len,
                         const uint8_t *in, size_t in_len,
                         uint8_t *out, size_t out_size, size_t *out_len)
{
  const EVP_CIPHER *c = wrap_cipher (kek_len);
  EVP_CIPHER_CTX *ctx;
  int n = 0, fin = 0, ok;

  if (c == NULL)
    return ncr_error (EINVAL, "key wrap: KEK is %zu bytes, not 16, 24 or 32", kek_len);
  if (in_len > INT_MAX)
    return ncr_error (EINVAL, "key wrap: %zu bytes is too long", in_len);
  if ((ctx = EVP_CIPHER_CTX_new ()) == NULL)
    return ncr_error (ENOMEM, "key wrap: out of memory");
  /* Legacy EVP refuses wrap modes unless asked; harmless with OpenSSL 3 providers. */
  EVP_CIPHER_CTX_set_flags (ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  /* The wrap ciphers process everything in one Update call. */
  ok = EVP_CipherInit_ex (ctx, c, NULL, kek, NULL, enc) == 1 &&
       EVP_CipherUpdate (ctx, out, &n, in, (int) in_len) == 1 &&
       n >= 0 && (size_t) n <= out_size &&
       EVP_CipherFinal_ex (ctx, out + n, &fin) == 1;
  EVP_CIPHER_CTX_free (ctx);
  if (!ok) {
    if (n > 0 && (size_t) n <= out_size)
      OPENSSL_cleanse (out, (size_t) n);
    return -EKEYREJECTED;
  }
  *out_len = (size_t) n + (size_t) fin;
  return 0;
}
