/* SPDX-License-Identifier: BSD-3-Clause */
/* RFC 5649 key wrap with padding by OpenSSL's "AES-*-WRAP-PAD" ciphers (backend-openssl.c).
 * The KEK's key schedule lives in the cipher context: that is driven through the provider's
 * function table, so its pages are locked and not dumped, and it is wiped when freed. Only
 * where that cannot be done (another provider or allocator) does the plain EVP path run, whose
 * context is wiped on free but not locked. */
#include "keywrap.h"

#include <errno.h>
#include <string.h>

#include "crypto-internal.h"
#include "errors.h"

#define KEYWRAP_MAX_KEY 4096u

/* One pass of wrap or unwrap, through the locked provider context where possible. */
static int
run (int enc, const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
     uint8_t *out, size_t out_size, size_t *out_len)
{
  int r;

  if (kek_len != 16 && kek_len != 24 && kek_len != 32)
    return ncr_error (EINVAL, "key wrap: KEK is %zu bytes, not 16, 24 or 32", kek_len);
  r = crypto_aes_wrap_pad_locked (enc, kek, kek_len, in, in_len, out, out_size, out_len);
  if (r == -ENOTSUP)
    r = crypto_aes_wrap_pad_evp (enc, kek, kek_len, in, in_len, out, out_size, out_len);
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
