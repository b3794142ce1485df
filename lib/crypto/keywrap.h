/* SPDX-License-Identifier: BSD-3-Clause */
/* AES key wrap with padding (RFC 5649) under a 128-, 192- or 256-bit KEK, through OpenSSL. */
#ifndef NBDCRYPT_KEYWRAP_H
#define NBDCRYPT_KEYWRAP_H

#include <stddef.h>
#include <stdint.h>

/* Wrapped length for a key of n bytes: n rounded up to 8, plus the 8-byte integrity block. */
static inline size_t
keywrap_wrapped_len (size_t n)
{
  return (n + 7) / 8 * 8 + 8;
}

/* Wrap key (1..4096 bytes) under kek (16, 24 or 32 bytes). out must hold
 * keywrap_wrapped_len(key_len) bytes; *out_len receives the length. Returns 0 or -errno. */
int keywrap_wrap (const uint8_t *kek, size_t kek_len, const uint8_t *key, size_t key_len,
                  uint8_t *out, size_t out_size, size_t *out_len);

/* Unwrap; out (out_size >= in_len - 8) should be secure memory. Returns 0, or -EKEYREJECTED
 * when the integrity check fails (wrong KEK or altered data), or -errno. */
int keywrap_unwrap (const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
                    uint8_t *out, size_t out_size, size_t *out_len);

#endif /* NBDCRYPT_KEYWRAP_H */
