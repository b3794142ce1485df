/* SPDX-License-Identifier: BSD-3-Clause */
/* OpenSSL's own AES-XTS, one data unit per call, driven through the provider's function table
 * so that setting the per-sector IV costs a memcpy instead of an EVP re-initialisation.
 * Internal to the XTS engine (xts.c). */
#ifndef NBDCRYPT_XTS_OSSL_H
#define NBDCRYPT_XTS_OSSL_H

#include <stddef.h>
#include <stdint.h>

#include "xts.h"

struct ossl_xts;

/* Keyed encrypt and decrypt contexts. -ENOTSUP if the provider's functions cannot be found
 * (the engine then uses its ECB construction). Returns 0 or -errno. */
int ossl_xts_new (enum ncr_cipher c, const uint8_t *key, size_t key_len, struct ossl_xts **out);
int ossl_xts_dup (const struct ossl_xts *x, struct ossl_xts **out);

/* len bytes, a whole number of unit-byte data units, from data unit sector on. */
int ossl_xts_crypt (struct ossl_xts *x, int enc, unsigned unit, uint64_t sector,
                    const uint8_t *in, uint8_t *out, size_t len);

/* Frees the contexts; the provider cleanses their key schedules. NULL is fine. */
void ossl_xts_free (struct ossl_xts *x);

#endif /* NBDCRYPT_XTS_OSSL_H */
