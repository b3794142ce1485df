/* SPDX-License-Identifier: BSD-3-Clause */
/* AES-XTS with VAES + VPCLMULQDQ on 512-bit registers (four blocks per instruction).
 * Internal to the XTS engine (xts.c). */
#ifndef NBDCRYPT_XTS_VAES_H
#define NBDCRYPT_XTS_VAES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cipher.h"

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

#endif /* NBDCRYPT_XTS_VAES_H */
