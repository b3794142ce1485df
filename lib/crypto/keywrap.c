/* SPDX-License-Identifier: BSD-3-Clause */
/* RFC 5649 key wrap with padding by OpenSSL's "AES-*-WRAP-PAD" ciphers. The KEK's key schedule
 * lives in the cipher context: that is driven through the provider's function table
 * (xts-ossl.c), so its pages are locked and not dumped, and it is wiped when freed. Only where
 * that cannot be done (another provider or allocator) does the plain EVP path run, whose
 * context is wiped on free but not locked. */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "errors.h"
#include "keywrap.h"
#include "xts-ossl.h"

#define KEYWRAP_MAX_KEY 4096u

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

/* The fallback where the provider's functions cannot be used (xts-ossl.c): plain EVP, its
 * context wiped on free but not locked. Returns 0, -EKEYREJECTED (OpenSSL refused: for unwrap,
 * the integrity check failed) or -ENOMEM. */
static int
evp_run (const EVP_CIPHER *c, int enc, const uint8_t *kek, const uint8_t *in, size_t in_len,
         uint8_t *out, size_t out_size, size_t *out_len)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();
  int n = 0, fin = 0, ok;

  if (ctx == NULL)
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

/* One pass of wrap or unwrap, through the locked provider context where possible. */
static int
run (int enc, const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
     uint8_t *out, size_t out_size, size_t *out_len)
{
  const EVP_CIPHER *c = wrap_cipher (kek_len);
  int r;

  if (c == NULL)
    return ncr_error (EINVAL, "key wrap: KEK is %zu bytes, not 16, 24 or 32", kek_len);
  r = ossl_keywrap (enc, kek, kek_len, in, in_len, out, out_size, out_len);
  if (r == -ENOTSUP)
    r = evp_run (c, enc, kek, in, in_len, out, out_size, out_len);
  if (r == -EKEYREJECTED) {
    if (enc)
      return ncr_error (EIO, "key wrap failed");
    return ncr_error (EKEYREJECTED, "key unwrap failed: wrong key-encryption key, or the "
                      "wrapped key was altered");
  }
  return r;
}

int
keywrap_wrap (const uint8_t *kek, size_t kek_len, const uint8_t *key, size_t key_len,
              uint8_t *out, size_t out_size, size_t *out_len)
{
  if (key_len == 0 || key_len > KEYWRAP_MAX_KEY)
    return ncr_error (EINVAL, "key wrap: key length %zu out of range", key_len);
  if (out_size < keywrap_wrapped_len (key_len))
    return ncr_error (EINVAL, "key wrap: output buffer too small");
  return run (1, kek, kek_len, key, key_len, out, out_size, out_len);
}

int
keywrap_unwrap (const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
                uint8_t *out, size_t out_size, size_t *out_len)
{
  if (in_len < 16 || in_len % 8 != 0 || in_len > KEYWRAP_MAX_KEY + 8)
    return ncr_error (EINVAL, "key unwrap: wrapped length %zu is not a multiple of 8 "
                      "between 16 and %u", in_len, KEYWRAP_MAX_KEY + 8);
  if (out_size < in_len - 8)
    return ncr_error (EINVAL, "key unwrap: output buffer too small");
  return run (0, kek, kek_len, in, in_len, out, out_size, out_len);
}
