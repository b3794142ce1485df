/* SPDX-License-Identifier: BSD-3-Clause */
/* AES-XTS sector engine (SCAFFOLD: straightforward per-sector IV re-init; to be optimised). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "errors.h"
#include "secmem.h"
#include "xts.h"

struct ncr_xts {
  enum ncr_cipher cipher;
  unsigned sector_size;
  EVP_CIPHER_CTX *enc, *dec;
};

int
ncr_cipher_from_name (const char *name, enum ncr_cipher *out)
{
  if (strcmp (name, "aes-256-xts") == 0)
    *out = NCR_CIPHER_AES_256_XTS;
  else if (strcmp (name, "aes-128-xts") == 0)
    *out = NCR_CIPHER_AES_128_XTS;
  else
    return ncr_error (EINVAL, "unknown cipher '%s' (use aes-256-xts or aes-128-xts)", name);
  return 0;
}

const char *
ncr_cipher_name (enum ncr_cipher c)
{
  return c == NCR_CIPHER_AES_128_XTS ? "aes-128-xts" : "aes-256-xts";
}

size_t
ncr_cipher_key_len (enum ncr_cipher c)
{
  return c == NCR_CIPHER_AES_128_XTS ? 32 : 64;
}

int
ncr_sector_size_valid (unsigned s)
{
  if (s != 512 && s != 4096)
    return ncr_error (EINVAL, "sector size %u is not supported (use 512 or 4096)", s);
  return 0;
}

int
ncr_xts_new (enum ncr_cipher c, const uint8_t *key, size_t key_len,
             unsigned sector_size, struct ncr_xts **out)
{
  const EVP_CIPHER *evp = c == NCR_CIPHER_AES_128_XTS ? EVP_aes_128_xts () : EVP_aes_256_xts ();
  struct ncr_xts *x;
  int r;

  if ((r = ncr_sector_size_valid (sector_size)) < 0)
    return r;
  if (key_len != ncr_cipher_key_len (c))
    return ncr_error (EINVAL, "%s needs a %zu-byte key, got %zu bytes",
                      ncr_cipher_name (c), ncr_cipher_key_len (c), key_len);
  x = calloc (1, sizeof *x);
  if (!x)
    return ncr_error (ENOMEM, "out of memory");
  x->cipher = c;
  x->sector_size = sector_size;
  x->enc = EVP_CIPHER_CTX_new ();
  x->dec = EVP_CIPHER_CTX_new ();
  if (!x->enc || !x->dec ||
      EVP_EncryptInit_ex (x->enc, evp, NULL, key, NULL) != 1 ||
      EVP_DecryptInit_ex (x->dec, evp, NULL, key, NULL) != 1) {
    ncr_xts_free (x);
    return ncr_error (EINVAL, "cannot set %s key (are the two halves equal?)",
                      ncr_cipher_name (c));
  }
  *out = x;
  return 0;
}

static int
crypt (EVP_CIPHER_CTX *ctx, int enc, unsigned ss, uint64_t sector,
       const uint8_t *in, uint8_t *out, size_t len)
{
  if (len % ss)
    return ncr_error (EINVAL, "length %zu is not a whole number of %u-byte sectors", len, ss);
  for (size_t off = 0; off < len; off += ss, sector++) {
    uint8_t iv[16] = { 0 };
    int outl;
    for (int i = 0; i < 8; i++)
      iv[i] = sector >> (8 * i);
    if (EVP_CipherInit_ex (ctx, NULL, NULL, NULL, iv, enc) != 1 ||
        EVP_CipherUpdate (ctx, out + off, &outl, in + off, ss) != 1)
      return ncr_error (EIO, "AES-XTS failed at sector %" PRIu64, sector);
  }
  return 0;
}

int
ncr_xts_encrypt (struct ncr_xts *x, uint64_t s, const uint8_t *in, uint8_t *out, size_t len)
{
  return crypt (x->enc, 1, x->sector_size, s, in, out, len);
}

int
ncr_xts_decrypt (struct ncr_xts *x, uint64_t s, const uint8_t *in, uint8_t *out, size_t len)
{
  return crypt (x->dec, 0, x->sector_size, s, in, out, len);
}

void
ncr_xts_free (struct ncr_xts *x)
{
  if (!x)
    return;
  EVP_CIPHER_CTX_free (x->enc);
  EVP_CIPHER_CTX_free (x->dec);
  free (x);
}
