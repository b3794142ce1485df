/* SPDX-License-Identifier: BSD-3-Clause */
/* HMAC-SHA256 and HKDF-SHA256 (RFC 5869) behind plain functions: the one place above OpenSSL's
 * EVP_MAC / EVP_KDF that the header code uses to derive and check its authentication key. */
#ifndef NBDCRYPT_MAC_H
#define NBDCRYPT_MAC_H

#include <stddef.h>
#include <stdint.h>

#define NCR_HMAC_SHA256_LEN 32u

/* out = HMAC-SHA256(key, msg). Returns 0 or -EIO with a message. */
int ncr_hmac_sha256 (const uint8_t *key, size_t key_len, const void *msg, size_t msg_len,
                     uint8_t out[NCR_HMAC_SHA256_LEN]);

/* out = HKDF-SHA256(ikm, salt, info) expanded to out_len bytes (extract then expand; an
 * empty salt is RFC 5869's default of HashLen zero bytes). Returns 0 or -EIO. */
int ncr_hkdf_sha256 (const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                     const char *info, uint8_t *out, size_t out_len);

#endif /* NBDCRYPT_MAC_H */
