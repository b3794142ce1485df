/* SPDX-License-Identifier: BSD-3-Clause */
/* AES-XTS sector engine, byte-compatible with dm-crypt aes-xts-plain64: sector n is encrypted
 * with tweak = n as a 128-bit little-endian integer. The key is set once per context; per
 * sector only the tweak changes. A context is not thread-safe: keep one per thread. */
#ifndef NBDCRYPT_XTS_H
#define NBDCRYPT_XTS_H

#include <stddef.h>
#include <stdint.h>

#include "cipher.h"

struct ncr_xts;

/* Build a keyed context. key_len must equal ncr_cipher_key_len(c); the two XTS halves must
 * differ (IEEE 1619 / FIPS; refused with -EINVAL). The key bytes are not kept: only the AES
 * key schedules, in locked memory left out of core dumps (secmem for the VAES engine; locked,
 * MADV_DONTDUMP pages under OpenSSL's contexts otherwise), wiped when freed; the caller wipes
 * its own copy of the key. The environment variable NBDCRYPT_XTS_IMPL, if set, names the
 * implementation to use (see ncr_xts_new_impl). Returns 0 or -errno with ncr_last_error() set. */
int ncr_xts_new (enum ncr_cipher c, const uint8_t *key, size_t key_len,
                 unsigned sector_size, struct ncr_xts **out);

/* A second context with the same key and settings, for another thread (no key bytes
 * needed): read-only key schedules are shared (reference counted), OpenSSL's contexts are
 * copied into locked pages. Free each with ncr_xts_free. Returns 0 or -errno. */
int ncr_xts_dup (const struct ncr_xts *x, struct ncr_xts **out);

/* Encrypt/decrypt len bytes (a whole number of sectors) starting at sector first_sector.
 * in == out is allowed (in place); otherwise the buffers must not overlap.
 * Returns 0 or -errno. */
int ncr_xts_encrypt (struct ncr_xts *x, uint64_t first_sector,
                     const uint8_t *in, uint8_t *out, size_t len);
int ncr_xts_decrypt (struct ncr_xts *x, uint64_t first_sector,
                     const uint8_t *in, uint8_t *out, size_t len);

/* Wipe key material and key schedules, free. NULL is fine. */
void ncr_xts_free (struct ncr_xts *x);

/* Internal, for the known-answer tests and the engine benchmark. */
/* Like ncr_xts_new for any data unit that is a multiple of 16 bytes (the NIST vectors use
 * 16-, 32- and 48-byte units). */
int ncr_xts_new_unit (enum ncr_cipher c, const uint8_t *key, size_t key_len,
                      unsigned unit, struct ncr_xts **out);
/* Like ncr_xts_new_unit with the implementation chosen: "vaes-xts" (VAES + AVX-512),
 * "vaes256-xts" (VAES on 256-bit registers, no AVX-512),
 * "openssl-xts" (OpenSSL's XTS, one call per sector), "ecb-avx512" (batched ECB with the
 * AVX-512 tweak pass) or "ecb-generic" (batched ECB, portable C tweak pass); NULL: the
 * default choice (or NBDCRYPT_XTS_IMPL). -ENOTSUP when the CPU or the OpenSSL build lacks it.
 * All give the same bytes. */
int ncr_xts_new_impl (enum ncr_cipher c, const uint8_t *key, size_t key_len, unsigned unit,
                      const char *name, struct ncr_xts **out);
/* The implementation the context uses (one of the names above). */
const char *ncr_xts_impl (const struct ncr_xts *x);
/* Where the context's key schedules are: up to max (address, length) regions; returns how
 * many (for the tests that check that they are locked and left out of core dumps). */
int ncr_xts_key_memory (const struct ncr_xts *x, const void **p, size_t *n, int max);

#endif /* NBDCRYPT_XTS_H */
