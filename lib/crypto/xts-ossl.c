/* SPDX-License-Identifier: BSD-3-Clause */
/* OpenSSL's AES through the provider's dispatch table. For XTS: per sector, an IV-only init
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
#include <errno.h>
#include <inttypes.h>
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
#include <openssl/params.h>
#include <openssl/provider.h>

#include "errors.h"
#include "secmem.h"
#include "xts-ossl.h"

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

/* Indexed by enum ncr_cipher. */
static struct prov_cipher xts_funcs[2] = { { .name = "AES-128-XTS" }, { .name = "AES-256-XTS" } };
static struct prov_cipher ecb_funcs[2] = { { .name = "AES-128-ECB" }, { .name = "AES-256-ECB" } };
/* RFC 5649 key wrap under a 16/24/32-byte KEK (index kek_len / 8 - 2). */
static struct prov_cipher kwp_funcs[3] = {
  { .name = "AES-128-WRAP-PAD", .no_dup = true }, { .name = "AES-192-WRAP-PAD", .no_dup = true },
  { .name = "AES-256-WRAP-PAD", .no_dup = true },
};
static pthread_once_t funcs_once = PTHREAD_ONCE_INIT;

/* Keyed provider contexts of one cipher: XTS has two, ECB three (OSSL_ECB_*). */
struct ctx_set {
  const struct prov_cipher *f;
  int n;
  void *ctx[OSSL_ECB_N];
};

enum { XTS_ENC, XTS_DEC, XTS_N };

struct ossl_xts {
  struct ctx_set s;             /* ctx[XTS_ENC], ctx[XTS_DEC] */
};

struct ossl_ecb {
  struct ctx_set s;             /* ctx[OSSL_ECB_K1_ENC], ... */
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

/* Lock the pages of a provider context and keep them out of core dumps. */
static int
lock_ctx (void *ctx)
{
  return secmem_lock_region (ctx, malloc_usable_size (ctx));
}

/* A new context of f, locked, then keyed. Returns 0 or -errno with a message. */
static int
ctx_new (const struct prov_cipher *f, int enc, const uint8_t *key, size_t key_len,
         const OSSL_PARAM *params, void **out)
{
  void *ctx = f->newctx (f->provctx);
  int r;

  if (!ctx)
    return ncr_error (ENOMEM, "cannot make an OpenSSL %s context", f->name);
  if ((r = lock_ctx (ctx)) < 0) {
    f->freectx (ctx);
    return r;
  }
  if ((enc ? f->einit : f->dinit) (ctx, key, key_len, NULL, 0, params) != 1) {
    f->freectx (ctx);
    return ncr_error (EINVAL, "OpenSSL refused the %s key", f->name);
  }
  *out = ctx;
  return 0;
}

/* A copy of a keyed context, locked. Returns 0 or -errno with a message. */
static int
ctx_dup (const struct prov_cipher *f, void *ctx, void **out)
{
  void *d = f->dupctx (ctx);
  int r;

  if (!d)
    return ncr_error (ENOMEM, "cannot copy an OpenSSL %s context", f->name);
  if ((r = lock_ctx (d)) < 0) {
    f->freectx (d);
    return r;
  }
  *out = d;
  return 0;
}

static void
ctx_free (const struct prov_cipher *f, void *ctx)
{
  if (ctx)
    f->freectx (ctx);           /* OPENSSL_clear_free: the key schedules are wiped */
}

/* d (zeroed) becomes a copy of s; on failure d holds the copies made so far (set_free). */
static int
set_dup (const struct ctx_set *s, struct ctx_set *d)
{
  int r;

  d->f = s->f;
  d->n = s->n;
  for (int i = 0; i < s->n; i++)
    if ((r = ctx_dup (s->f, s->ctx[i], &d->ctx[i])) < 0)
      return r;
  return 0;
}

static void
set_free (struct ctx_set *s)
{
  for (int i = 0; i < s->n; i++)
    ctx_free (s->f, s->ctx[i]);
}

static int
set_key_memory (const struct ctx_set *s, const void **p, size_t *n, int max)
{
  int k;

  for (k = 0; k < s->n && k < max; k++) {
    p[k] = s->ctx[k];
    n[k] = malloc_usable_size (s->ctx[k]);
  }
  return k;
}

int
ossl_xts_new (enum ncr_cipher c, const uint8_t *key, size_t key_len, struct ossl_xts **out)
{
  struct ossl_xts *x;
  int r;

  pthread_once (&funcs_once, resolve_all);
  if (!xts_funcs[c].ok)
    return -ENOTSUP;
  x = calloc (1, sizeof *x);
  if (!x)
    return ncr_error (ENOMEM, "out of memory");
  x->s.f = &xts_funcs[c];
  x->s.n = XTS_N;
  if ((r = ctx_new (x->s.f, 1, key, key_len, NULL, &x->s.ctx[XTS_ENC])) < 0 ||
      (r = ctx_new (x->s.f, 0, key, key_len, NULL, &x->s.ctx[XTS_DEC])) < 0) {
    ossl_xts_free (x);
    return r;
  }
  *out = x;
  return 0;
}

int
ossl_xts_dup (const struct ossl_xts *x, struct ossl_xts **out)
{
  struct ossl_xts *d = calloc (1, sizeof *d);
  int r;

  if (!d)
    return ncr_error (ENOMEM, "out of memory");
  if ((r = set_dup (&x->s, &d->s)) < 0) {
    ossl_xts_free (d);
    return r;
  }
  *out = d;
  return 0;
}

int
ossl_xts_crypt (struct ossl_xts *x, int enc, unsigned unit, uint64_t sector,
                const uint8_t *in, uint8_t *out, size_t len)
{
  void *ctx = x->s.ctx[enc ? XTS_ENC : XTS_DEC];
  OSSL_FUNC_cipher_encrypt_init_fn *init = enc ? x->s.f->einit : x->s.f->dinit;

  for (size_t off = 0; off < len; off += unit, sector++) {
    uint8_t iv[16] = { 0 };
    size_t outl;

    for (int i = 0; i < 8; i++)         /* plain64: little-endian sector number */
      iv[i] = sector >> (8 * i);
    if (init (ctx, NULL, 0, iv, sizeof iv, NULL) != 1 ||
        x->s.f->update (ctx, out + off, &outl, unit, in + off, unit) != 1 || outl != unit)
      return ncr_error (EIO, "AES-XTS failed at sector %" PRIu64, sector);
  }
  return 0;
}

void
ossl_xts_free (struct ossl_xts *x)
{
  if (!x)
    return;
  set_free (&x->s);
  free (x);
}

int
ossl_ecb_new (enum ncr_cipher c, const uint8_t *key, size_t key_len, struct ossl_ecb **out)
{
  size_t half = key_len / 2;
  unsigned int no_padding = 0;
  const OSSL_PARAM params[] = {
    OSSL_PARAM_construct_uint (OSSL_CIPHER_PARAM_PADDING, &no_padding),
    OSSL_PARAM_construct_end (),
  };
  struct ossl_ecb *x;
  int r;

  pthread_once (&funcs_once, resolve_all);
  if (!ecb_funcs[c].ok)
    return -ENOTSUP;
  x = calloc (1, sizeof *x);
  if (!x)
    return ncr_error (ENOMEM, "out of memory");
  x->s.f = &ecb_funcs[c];
  x->s.n = OSSL_ECB_N;
  if ((r = ctx_new (x->s.f, 1, key, half, params, &x->s.ctx[OSSL_ECB_K1_ENC])) < 0 ||
      (r = ctx_new (x->s.f, 0, key, half, params, &x->s.ctx[OSSL_ECB_K1_DEC])) < 0 ||
      (r = ctx_new (x->s.f, 1, key + half, half, params, &x->s.ctx[OSSL_ECB_K2_ENC])) < 0) {
    ossl_ecb_free (x);
    return r;
  }
  *out = x;
  return 0;
}

int
ossl_ecb_dup (const struct ossl_ecb *x, struct ossl_ecb **out)
{
  struct ossl_ecb *d = calloc (1, sizeof *d);
  int r;

  if (!d)
    return ncr_error (ENOMEM, "out of memory");
  if ((r = set_dup (&x->s, &d->s)) < 0) {
    ossl_ecb_free (d);
    return r;
  }
  *out = d;
  return 0;
}

int
ossl_ecb_crypt (struct ossl_ecb *x, int which, uint8_t *buf, size_t len)
{
  size_t outl;

  if (x->s.f->update (x->s.ctx[which], buf, &outl, len, buf, len) != 1 || outl != len)
    return -EIO;
  return 0;
}

void
ossl_ecb_free (struct ossl_ecb *x)
{
  if (!x)
    return;
  set_free (&x->s);
  free (x);
}

int
ossl_xts_key_memory (const struct ossl_xts *x, const void **p, size_t *n, int max)
{
  return set_key_memory (&x->s, p, n, max);
}

int
ossl_ecb_key_memory (const struct ossl_ecb *x, const void **p, size_t *n, int max)
{
  return set_key_memory (&x->s, p, n, max);
}

int
ossl_keywrap (int enc, const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
              uint8_t *out, size_t out_size, size_t *out_len)
{
  const struct prov_cipher *f;
  void *ctx;
  size_t n = 0;
  int r, ok;

  if (kek_len != 16 && kek_len != 24 && kek_len != 32)
    return ncr_error (EINVAL, "key wrap: KEK is %zu bytes, not 16, 24 or 32", kek_len);
  pthread_once (&funcs_once, resolve_all);
  f = &kwp_funcs[kek_len / 8 - 2];
  if (!f->ok)
    return -ENOTSUP;
  if ((r = ctx_new (f, enc, kek, kek_len, NULL, &ctx)) < 0)
    return r == -EINVAL ? ncr_error (EINVAL, "key wrap: OpenSSL refused the KEK") : r;
  /* The wrap ciphers do the whole job in one update. The provider wants room for in_len
   * bytes even when unwrapping (which yields in_len - 8 at most): unwrap into locked scratch
   * memory of that size. */
  if (enc)
    ok = f->update (ctx, out, &n, out_size, in, in_len) == 1 && n <= out_size;
  else {
    uint8_t *tmp = secmem_alloc (in_len);

    if (!tmp) {
      ctx_free (f, ctx);
      return -errno;
    }
    ok = f->update (ctx, tmp, &n, in_len, in, in_len) == 1 && n <= out_size;
    if (ok)
      memcpy (out, tmp, n);
    secmem_free (tmp);          /* wipes */
  }
  ctx_free (f, ctx);
  if (!ok)
    return -EKEYREJECTED;
  *out_len = n;
  return 0;
}
