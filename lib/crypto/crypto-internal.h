/* SPDX-License-Identifier: BSD-3-Clause */
/* Internal to lib/crypto: the AES contexts and key wrap of the OpenSSL backend
 * (backend-openssl.c) that the engines and keywrap.c are built on, and the VAES engine
 * (xts-vaes.c). Other layers use xts.h, keywrap.h, secmem.h and backend.h instead. */
#ifndef NBDCRYPT_CRYPTO_INTERNAL_H
#define NBDCRYPT_CRYPTO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cipher.h"

/* ---- AES contexts (backend-openssl.c) ----
 * One keyed context of OpenSSL's AES provider, for one direction, driven through the
 * provider's function table: the key is set once, per call there is one update (and for XTS
 * an IV-only init per data unit), without the EVP layer's bookkeeping. The context holds the
 * AES key schedule; its pages are locked and left out of core dumps before the key is set,
 * and the provider wipes it when it is freed. */
enum crypto_aes_mode {
  CRYPTO_AES_ECB,               /* key 16 or 32 bytes, no padding */
  CRYPTO_AES_XTS,               /* key 32 or 64 bytes: K1 then K2 */
};
struct crypto_aes;

/* enc 1 to encrypt, 0 to decrypt. -ENOTSUP (no message) when the provider's functions cannot
 * be found or its contexts cannot be locked (another provider, or OpenSSL's allocator
 * replaced): the caller then uses something else. Otherwise 0 or -errno with a message. */
int crypto_aes_new (enum crypto_aes_mode mode, int enc, const uint8_t *key, size_t key_len,
                    struct crypto_aes **out);
/* A copy, for another thread, locked like the original. Returns 0 or -errno. */
int crypto_aes_dup (const struct crypto_aes *a, struct crypto_aes **out);

/* ECB, in place; len a multiple of 16. Returns 0 or -EIO (no message: the caller says what
 * failed). */
int crypto_aes_ecb (struct crypto_aes *a, uint8_t *buf, size_t len);

/* XTS: len bytes, a whole number of unit-byte data units; data unit i has the tweak
 * sector + i as a 128-bit little-endian integer (dm-crypt plain64). Returns 0 or -EIO with
 * a message. */
int crypto_aes_xts (struct crypto_aes *a, unsigned unit, uint64_t sector,
                    const uint8_t *in, uint8_t *out, size_t len);

/* Frees; the provider wipes the key schedule. NULL is fine. */
void crypto_aes_free (struct crypto_aes *a);

/* The memory holding the key schedule (for the tests that check it is locked). */
void crypto_aes_key_memory (const struct crypto_aes *a, const void **p, size_t *n);

/* ---- RFC 5649 AES key wrap with padding (backend-openssl.c) ----
 * Wrap (enc 1) or unwrap (enc 0) in under kek (16, 24 or 32 bytes), into out (out_size
 * bytes), *out_len set. Two ways, for keywrap.c to choose from:
 *  - _locked: OpenSSL's AES-*-WRAP-PAD through the provider's function table, its context
 *    (holding the KEK's key schedule) in locked, not-dumped pages, wiped when freed;
 *    -ENOTSUP (no message) where that cannot be done, as for crypto_aes_new.
 *  - _evp: plain EVP, its context wiped when freed but not locked.
 * Both return 0, -EKEYREJECTED (no message) when OpenSSL refuses (for unwrap: the integrity
 * check failed), or -errno with a message. */
int crypto_aes_wrap_pad_locked (int enc, const uint8_t *kek, size_t kek_len,
                                const uint8_t *in, size_t in_len,
                                uint8_t *out, size_t out_size, size_t *out_len);
int crypto_aes_wrap_pad_evp (int enc, const uint8_t *kek, size_t kek_len,
                             const uint8_t *in, size_t in_len,
                             uint8_t *out, size_t out_size, size_t *out_len);

/* ---- AES-XTS on VAES + VPCLMULQDQ, 512-bit registers (xts-vaes.c) ---- */
struct vaes_xts;

/* Does this CPU (and build) have AVX-512F/BW/VL, VAES, VPCLMULQDQ and AES-NI? */
bool vaes_xts_available (void);

/* Expanded key schedules, in secmem. -ENOTSUP when not available. Returns 0 or -errno. */
int vaes_xts_new (enum ncr_cipher c, const uint8_t *key, size_t key_len, struct vaes_xts **out);
/* For another thread: the schedules are read-only, so this shares them (reference counted;
 * vaes_xts_free each). Never fails. */
int vaes_xts_dup (const struct vaes_xts *x, struct vaes_xts **out);

/* len bytes, a whole number of unit-byte data units (unit a multiple of 16), from data
 * unit sector on. */
void vaes_xts_crypt (const struct vaes_xts *x, int enc, unsigned unit, uint64_t sector,
                     const uint8_t *in, uint8_t *out, size_t len);

/* Drops a reference; the last one wipes the key schedules and frees. NULL is fine. */
void vaes_xts_free (struct vaes_xts *x);

/* The memory that holds the key schedules (for tests). */
void vaes_xts_key_memory (const struct vaes_xts *x, const void **p, size_t *n);

#if defined(__x86_64__)
#include <immintrin.h>
/* FIPS 197 key expansion of a 16- or 32-byte AES key with AES-NI (xts-vaes.c; the caller
 * has checked the CPU); returns the number of rounds (10 or 14). */
int aesni_expand_key (const uint8_t *key, size_t len, __m128i rk[15]);
#endif

/* ---- AES-XTS on VAES + VPCLMULQDQ, 256-bit registers, no AVX-512 (xts-vaes256.c) ----
 * The same calls and rules as vaes_xts_* above. */
struct vaes256_xts;

/* Does this CPU (and build) have AVX2, VAES, VPCLMULQDQ and AES-NI? */
bool vaes256_xts_available (void);
int vaes256_xts_new (enum ncr_cipher c, const uint8_t *key, size_t key_len,
                     struct vaes256_xts **out);
int vaes256_xts_dup (const struct vaes256_xts *x, struct vaes256_xts **out);
void vaes256_xts_crypt (const struct vaes256_xts *x, int enc, unsigned unit, uint64_t sector,
                        const uint8_t *in, uint8_t *out, size_t len);
void vaes256_xts_free (struct vaes256_xts *x);
void vaes256_xts_key_memory (const struct vaes256_xts *x, const void **p, size_t *n);

#endif /* NBDCRYPT_CRYPTO_INTERNAL_H */
