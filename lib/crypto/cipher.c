/* SPDX-License-Identifier: BSD-3-Clause */
/* The volume ciphers: name <-> enum, key length, supported sector sizes. */
#include "cipher.h"

#include <errno.h>
#include <string.h>

#include "errors.h"

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
