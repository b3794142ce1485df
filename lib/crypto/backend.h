/* SPDX-License-Identifier: BSD-3-Clause */
/* The cryptographic primitives for every layer: random bytes, constant-time compare, wipe,
 * SHA-256, HMAC-SHA256, so that no other file needs to include OpenSSL. They come from
 * backend-openssl.c; lib/crypto's engines use its AES contexts too (crypto-internal.h). */
#ifndef NBDCRYPT_BACKEND_H
#define NBDCRYPT_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define CRYPTO_SHA256_LEN 32

/* n bytes from OpenSSL's OS-seeded DRBG: crypto_random_bytes for public values (IVs, UUIDs),
 * crypto_random_key for secrets (its own DRBG instance, so that public outputs reveal nothing
 * about the generator that made a key). Returns 0 or -EIO with a message. */
int crypto_random_bytes (void *buf, size_t n);
int crypto_random_key (void *buf, size_t n);

/* 0 if the n bytes at a and b are equal, non-zero otherwise, in a time that does not depend
 * on their contents. */
int crypto_ct_memcmp (const void *a, const void *b, size_t n);

/* Zero n bytes in a way the compiler cannot remove. */
void crypto_wipe (void *p, size_t n);

/* SHA-256 of the concatenation of n parts. Returns 0 or -errno with a message. */
int crypto_sha256 (const struct iovec *parts, size_t n, uint8_t out[CRYPTO_SHA256_LEN]);

/* SHA-256 of each of n consecutive units of unit bytes at p, the first out_len (1..32) bytes
 * of each digest written to out (n * out_len bytes): one algorithm fetch and one context for
 * all, for many small hashes (re-encryption hashes every sector). Returns 0 or -errno. */
int crypto_sha256_units (const uint8_t *p, size_t unit, size_t n, uint8_t *out,
                         size_t out_len);

/* HMAC-SHA256 of msg under key. Returns 0 or -errno with a message. */
int crypto_hmac_sha256 (const uint8_t *key, size_t key_len, const void *msg, size_t len,
                        uint8_t out[CRYPTO_SHA256_LEN]);

/* HKDF-SHA256 (RFC 5869: extract, then expand to out_len bytes) of ikm with salt (none:
 * HashLen zero bytes) and the label info. Returns 0 or -errno with a message. */
int crypto_hkdf_sha256 (const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                        const char *info, uint8_t *out, size_t out_len);

#endif /* NBDCRYPT_BACKEND_H */
