/* SPDX-License-Identifier: BSD-3-Clause */
/* The volume ciphers and their names, key lengths and sector sizes: a leaf module that the
 * engines (xts.c, xts-vaes.c), the volume header and the front-ends share. */
#ifndef NBDCRYPT_CIPHER_H
#define NBDCRYPT_CIPHER_H

#include <stddef.h>

enum ncr_cipher {
  NCR_CIPHER_AES_128_XTS,       /* 32-byte key */
  NCR_CIPHER_AES_256_XTS,       /* 64-byte key */
};

/* "aes-128-xts" / "aes-256-xts"; returns 0 or -EINVAL with a message. */
int ncr_cipher_from_name (const char *name, enum ncr_cipher *out);
const char *ncr_cipher_name (enum ncr_cipher c);
size_t ncr_cipher_key_len (enum ncr_cipher c);

/* Sector sizes: 512 or 4096. Returns 0 or -EINVAL with a message. */
int ncr_sector_size_valid (unsigned sector_size);

#endif /* NBDCRYPT_CIPHER_H */
