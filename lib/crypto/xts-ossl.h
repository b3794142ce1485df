/* SPDX-License-Identifier: BSD-3-Clause */
/* OpenSSL's AES, driven through the provider's function table: its AES-XTS one data unit per
 * call (setting the per-sector IV costs a memcpy instead of an EVP re-initialisation), and
 * keyed AES-ECB contexts for the engine's batched XTS construction. Every provider context
 * (each holds an AES key schedule) sits in locked pages left out of core dumps.
 * Internal to the XTS engine (xts.c). */
#ifndef NBDCRYPT_XTS_OSSL_H
#define NBDCRYPT_XTS_OSSL_H

#include <stddef.h>
#include <stdint.h>

#include "xts.h"

struct ossl_xts;

/* Keyed encrypt and decrypt contexts. -ENOTSUP if the provider's functions cannot be found
 * or its contexts cannot be locked (the engine then uses something else). Returns 0 or
 * -errno. */
int ossl_xts_new (enum ncr_cipher c, const uint8_t *key, size_t key_len, struct ossl_xts **out);
int ossl_xts_dup (const struct ossl_xts *x, struct ossl_xts **out);

/* len bytes, a whole number of unit-byte data units, from data unit sector on. */
int ossl_xts_crypt (struct ossl_xts *x, int enc, unsigned unit, uint64_t sector,
                    const uint8_t *in, uint8_t *out, size_t len);

/* Frees the contexts; the provider cleanses their key schedules. NULL is fine. */
void ossl_xts_free (struct ossl_xts *x);

/* The three AES-ECB contexts of the batched XTS construction: K1 encrypt, K1 decrypt, K2
 * encrypt (the tweaks), from the whole XTS key. No padding. -ENOTSUP as above. */
enum { OSSL_ECB_K1_ENC, OSSL_ECB_K1_DEC, OSSL_ECB_K2_ENC, OSSL_ECB_N };
struct ossl_ecb;
int ossl_ecb_new (enum ncr_cipher c, const uint8_t *key, size_t key_len, struct ossl_ecb **out);
int ossl_ecb_dup (const struct ossl_ecb *x, struct ossl_ecb **out);
/* In place; len a multiple of 16. Returns 0 or -EIO. */
int ossl_ecb_crypt (struct ossl_ecb *x, int which, uint8_t *buf, size_t len);
void ossl_ecb_free (struct ossl_ecb *x);

/* The memory holding key schedules (for tests): up to max regions, returns how many. */
int ossl_xts_key_memory (const struct ossl_xts *x, const void **p, size_t *n, int max);
int ossl_ecb_key_memory (const struct ossl_ecb *x, const void **p, size_t *n, int max);

/* RFC 5649 key wrap (enc 1) or unwrap (enc 0) under kek (16, 24 or 32 bytes) by OpenSSL's
 * AES-*-WRAP-PAD, its context (holding the KEK's key schedule) in locked, not-dumped pages
 * and wiped when freed. -ENOTSUP if the provider's functions cannot be found or locked;
 * -EKEYREJECTED if OpenSSL refuses (unwrap: integrity check failed); else 0 or -errno. */
int ossl_keywrap (int enc, const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
                  uint8_t *out, size_t out_size, size_t *out_len);

#endif /* NBDCRYPT_XTS_OSSL_H */
