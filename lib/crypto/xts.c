/* SPDX-License-Identifier: BSD-3-Clause */
/* AES-XTS sector engine: XTS built on keyed AES-ECB contexts, many sectors per OpenSSL call.
 *
 * Why not EVP "aes-xts" directly: OpenSSL's XTS takes one data unit per call, so every sector
 * needs an IV re-init plus an update (about 60 ns of EVP bookkeeping per sector, a third of
 * the time of a 512-byte sector). Instead, XTS (IEEE 1619) is assembled from its parts:
 *
 *   T_j      = AES-ECB(K2, sector number j as a 128-bit little-endian integer)
 *   t_{j,i}  = T_j * x^i in GF(2^128)                  (i = 16-byte block index in the sector)
 *   C_{j,i}  = AES-ECB(K1, P_{j,i} ^ t_{j,i}) ^ t_{j,i}
 *
 * Per chunk of up to XTS_CHUNK bytes (a whole number of sectors): one ECB call under K2
 * makes the initial tweaks of all its sectors, one pass XORs the tweak stream into the data,
 * one ECB call under K1 covers the chunk, and a second pass XORs the same stream again (it is
 * recomputed from the initial tweaks: cheaper than storing and reloading it, since stores
 * are what these passes are limited by). The keys are set once, in ncr_xts_new; per chunk
 * there are two calls into OpenSSL's provider, whatever the sector size. Sector sizes are
 * multiples of 16 bytes, so XTS ciphertext stealing is never needed.
 *
 * The XOR pass has a portable C version and, on x86-64 CPUs with AVX-512 and VPCLMULQDQ, a
 * version that advances four tweaks per register (multiplying by x^8 is a byte shift plus a
 * carry-less multiply of the byte shifted out by 0x87).
 *
 * Which way is fastest depends on the sector size (measured with perf/engine-bench): for
 * 4096-byte sectors OpenSSL's fused XTS assembly wins once its per-sector IV setup is cheap,
 * which backend-openssl.c arranges; for 512-byte sectors the batched ECB construction wins
 * (the per-sector setup would be a fifth of the work). Without AVX-512 the portable XOR pass is
 * slower than OpenSSL's XTS at both sizes, so that is used. On CPUs with VAES (512-bit AES
 * rounds, xts-vaes.c) that beats all of these at both sizes (about 1.6x OpenSSL's XTS at
 * 512 B and 1.9x at 4 KiB on the AMD EPYC box, perf/engine-bench), so it is picked first.
 * CPUs (or VMs) with VAES but without AVX-512 get the same engine on 256-bit registers
 * (xts-vaes256.c: about 1.3x OpenSSL's XTS at 512 B and 1.5x at 4 KiB on an AMD EPYC VM that
 * hides AVX-512), picked second. The KATs run every way.
 *
 * Key memory: a context holds the key schedules of the one implementation it uses, and no key
 * bytes. vaes-xts and vaes256-xts keep them in secmem (locked, not in core dumps, wiped in
 * forked children and on free); the OpenSSL implementations in provider contexts whose pages are locked and
 * not dumped, but not wiped on fork (backend-openssl.c says why). With VAES no OpenSSL
 * context is made at all. NBDCRYPT_XTS_IMPL=NAME in the environment forces one
 * implementation (to test the fallbacks on a CPU that has VAES). */
#include "xts.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "crypto-internal.h"
#include "errors.h"
#include "xts-gf512.h"

/* Bytes of data per pair of ECB calls: small enough to stay in the L1/L2 cache across the
 * three passes, large enough that the ~20 ns of an EVP call is noise (perf/engine-bench). */
#ifndef XTS_CHUNK
#define XTS_CHUNK (64 * 1024)
#endif

/* Bytes of the per-context buffer of initial tweaks (16 per unit of a chunk), rounded up
 * to the 64-byte alignment as aligned_alloc requires. */
#define INITIAL_SIZE(unit) ((XTS_CHUNK / (unit) * 16 + 63) / 64 * 64)

/* out = in ^ the tweak stream of units data units, whose initial tweaks are in initial. */
typedef void (*xor_tweaks_fn) (const uint8_t *initial, size_t units, size_t unit,
                               const uint8_t *in, uint8_t *out);

/* OpenSSL's AES contexts (backend-openssl.c) of a context that uses them: for openssl-xts
 * AES-XTS under the whole key, AES_ENC and AES_DEC; for ecb-* AES-ECB, AES_ENC and AES_DEC
 * under K1 and AES_TWEAK (encrypt) under K2. */
enum { AES_ENC, AES_DEC, AES_TWEAK, AES_N };

struct ncr_xts {
  enum ncr_cipher cipher;
  unsigned unit;                /* data unit (sector) size in bytes, a multiple of 16 */
  size_t chunk;                 /* bytes per ECB call: a whole number of units */
  /* vx or aes[] holds the key schedules, whichever impl uses. */
  struct vaes_xts *vx;          /* vaes-xts: in secmem, shared by dup'd contexts */
  struct vaes256_xts *vy;       /* vaes256-xts: likewise */
  struct crypto_aes *aes[AES_N];        /* openssl-xts, ecb-*: provider contexts, locked */
  uint8_t *initial;             /* ecb-*: per-unit sector numbers, then initial tweaks */
  xor_tweaks_fn xor_tweaks;     /* ecb-*: the tweak pass; NULL otherwise */
  bool use_vaes;                /* vx does the whole job */
  bool use_vaes256;             /* vy does the whole job */
  const char *impl;
};

/* ---- portable tweak passes ---- */

static inline uint64_t
load_le64 (const uint8_t *p)
{
  uint64_t v;
  memcpy (&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64 (v);
#endif
  return v;
}

static inline void
store_le64 (uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64 (v);
#endif
  memcpy (p, &v, 8);
}

static void
xor_tweaks_generic (const uint8_t *initial, size_t units, size_t unit,
                    const uint8_t *in, uint8_t *out)
{
  for (size_t j = 0; j < units; j++) {
    uint64_t lo = load_le64 (initial + 16 * j), hi = load_le64 (initial + 16 * j + 8);
    for (size_t b = 0; b < unit; b += 16) {
      uint64_t carry;
      store_le64 (out + b, load_le64 (in + b) ^ lo);
      store_le64 (out + b + 8, load_le64 (in + b + 8) ^ hi);
      /* Multiply by x: shift the 128-bit little-endian value left, reduce by
       * x^128 = x^7 + x^2 + x + 1 (0x87). */
      carry = (uint64_t) -(hi >> 63) & 0x87;
      hi = (hi << 1) | (lo >> 63);
      lo = (lo << 1) ^ carry;
    }
    in += unit;
    out += unit;
  }
}

/* ---- x86-64 AVX-512 + VPCLMULQDQ tweak passes (eight blocks per step) ---- */
#if defined(__x86_64__)

/* Each lane times x^8: a one-byte shift, and the byte shifted out reduced by 0x87. */
XTS_GF512_TARGET static inline __m512i
mul_x8 (__m512i t, __m512i poly)
{
  __m512i red = _mm512_clmulepi64_epi128 (_mm512_bsrli_epi128 (t, 15), poly, 0x00);
  return _mm512_xor_si512 (_mm512_bslli_epi128 (t, 1), red);
}

XTS_GF512_TARGET static void
xor_tweaks_avx512 (const uint8_t *initial, size_t units, size_t unit,
                   const uint8_t *in, uint8_t *out)
{
  const __m512i poly = _mm512_set1_epi64 (0x87);
  const __m512i cnt_lo = _mm512_set_epi64 (3, 3, 2, 2, 1, 1, 0, 0);
  const __m512i cnt_hi = _mm512_set_epi64 (7, 7, 6, 6, 5, 5, 4, 4);

  for (size_t j = 0; j < units; j++) {
    __m512i t = _mm512_broadcast_i32x4 (_mm_loadu_si128 ((const void *) (initial + 16 * j)));
    __m512i a = xts_mul_x_lanes (t, cnt_lo, poly);          /* tweaks of blocks 0..3 */
    __m512i b = xts_mul_x_lanes (t, cnt_hi, poly);          /* tweaks of blocks 4..7 */

    size_t o = 0;

    for (; o + 128 <= unit; o += 128) {
      __m512i d0 = _mm512_loadu_si512 (in + o);
      __m512i d1 = _mm512_loadu_si512 (in + o + 64);
      _mm512_storeu_si512 (out + o, _mm512_xor_si512 (d0, a));
      _mm512_storeu_si512 (out + o + 64, _mm512_xor_si512 (d1, b));
      a = mul_x8 (a, poly);
      b = mul_x8 (b, poly);
    }
    if (o < unit) {             /* units that are not a multiple of 128 bytes (KATs only) */
      uint8_t t8[128];
      _mm512_storeu_si512 (t8, a);
      _mm512_storeu_si512 (t8 + 64, b);
      for (size_t k = 0; o + k < unit; k++)
        out[o + k] = in[o + k] ^ t8[k];
      explicit_bzero (t8, sizeof t8);
    }
    in += unit;
    out += unit;
  }
}

static bool
have_avx512 (void)
{
  __builtin_cpu_init ();
  return __builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512bw") &&
    __builtin_cpu_supports ("avx512vl") && __builtin_cpu_supports ("vpclmulqdq");
}
#endif /* __x86_64__ */

/* ---- building a context ---- */

/* The implementations, in the order ncr_xts_new prefers them for 512-byte sectors (see the
 * top of this file for why; default_order has the order for each sector size). */
enum impl { IMPL_VAES, IMPL_VAES256, IMPL_ECB_AVX512, IMPL_OPENSSL_XTS, IMPL_ECB_GENERIC,
            IMPL_N };
static const char *const impl_names[IMPL_N] = {
  "vaes-xts", "vaes256-xts", "ecb-avx512", "openssl-xts", "ecb-generic",
};

/* Key x (cipher, unit and chunk set) for implementation i. Only what i uses is made, so that
 * no other copy of the key schedules exists (with VAES, no OpenSSL context at all).
 * -ENOTSUP if the CPU or OpenSSL lacks it. */
static int
build (struct ncr_xts *x, enum impl i, const uint8_t *key, size_t key_len)
{
  size_t half = key_len / 2;
  int r;

  switch (i) {
  case IMPL_VAES:
    if ((r = vaes_xts_new (x->cipher, key, key_len, &x->vx)) < 0)
      return r;
    x->use_vaes = true;
    break;
  case IMPL_VAES256:
    if ((r = vaes256_xts_new (x->cipher, key, key_len, &x->vy)) < 0)
      return r;
    x->use_vaes256 = true;
    break;
  case IMPL_OPENSSL_XTS:
    if ((r = crypto_aes_new (CRYPTO_AES_XTS, 1, key, key_len, &x->aes[AES_ENC])) < 0 ||
        (r = crypto_aes_new (CRYPTO_AES_XTS, 0, key, key_len, &x->aes[AES_DEC])) < 0)
      return r;
    break;
  case IMPL_ECB_AVX512:
  case IMPL_ECB_GENERIC:
    x->xor_tweaks = xor_tweaks_generic;
    if (i == IMPL_ECB_AVX512) {
#if defined(__x86_64__)
      if (!have_avx512 ())
        return -ENOTSUP;
      x->xor_tweaks = xor_tweaks_avx512;
#else
      return -ENOTSUP;
#endif
    }
    x->initial = aligned_alloc (64, INITIAL_SIZE (x->unit));
    if (!x->initial)
      return ncr_error (ENOMEM, "out of memory");
    if ((r = crypto_aes_new (CRYPTO_AES_ECB, 1, key, half, &x->aes[AES_ENC])) < 0 ||
        (r = crypto_aes_new (CRYPTO_AES_ECB, 0, key, half, &x->aes[AES_DEC])) < 0 ||
        (r = crypto_aes_new (CRYPTO_AES_ECB, 1, key + half, half, &x->aes[AES_TWEAK])) < 0)
      return r;
    break;
  default:
    return -ENOTSUP;
  }
  x->impl = impl_names[i];
  return 0;
}

int
ncr_xts_new_impl (enum ncr_cipher c, const uint8_t *key, size_t key_len, unsigned unit,
                  const char *name, struct ncr_xts **out)
{
  size_t half = ncr_cipher_key_len (c) / 2;
  enum impl order[IMPL_N];
  size_t n = 0;

  if (unit == 0 || unit % 16 || unit > XTS_CHUNK)
    return ncr_error (EINVAL, "XTS data unit of %u bytes is not a multiple of 16 in 16..%d",
                      unit, XTS_CHUNK);
  if (key_len != ncr_cipher_key_len (c))
    return ncr_error (EINVAL, "%s needs a %zu-byte key, got %zu bytes",
                      ncr_cipher_name (c), ncr_cipher_key_len (c), key_len);
  /* IEEE 1619 / FIPS: K1 == K2 defeats XTS; OpenSSL's own XTS refuses it too. */
  if (crypto_ct_memcmp (key, key + half, half) == 0)
    return ncr_error (EINVAL, "invalid %s key: its two halves are equal", ncr_cipher_name (c));

  if (!name) {
    name = getenv ("NBDCRYPT_XTS_IMPL");
    if (name && !*name)
      name = NULL;
  }
  if (name) {
    for (enum impl i = 0; i < IMPL_N; i++)
      if (strcmp (name, impl_names[i]) == 0)
        order[n++] = i;
    if (n == 0)
      return ncr_error (EINVAL, "unknown XTS implementation '%s' (NBDCRYPT_XTS_IMPL: use "
                        "vaes-xts, vaes256-xts, ecb-avx512, openssl-xts or ecb-generic)",
                        name);
  }
  else {
    /* See the top of this file for why. */
    order[n++] = IMPL_VAES;
    order[n++] = IMPL_VAES256;
    if (unit >= 4096)
      order[n++] = IMPL_OPENSSL_XTS;
    order[n++] = IMPL_ECB_AVX512;
    if (unit < 4096)
      order[n++] = IMPL_OPENSSL_XTS;
    order[n++] = IMPL_ECB_GENERIC;
  }

  for (size_t k = 0; k < n; k++) {
    struct ncr_xts *x = calloc (1, sizeof *x);
    int r;

    if (!x)
      return ncr_error (ENOMEM, "out of memory");
    x->cipher = c;
    x->unit = unit;
    x->chunk = XTS_CHUNK / unit * unit;
    r = build (x, order[k], key, key_len);
    if (r == 0) {
      *out = x;
      return 0;
    }
    ncr_xts_free (x);
    if (r != -ENOTSUP)
      return r;
  }
  if (n == 1)
    return ncr_error (ENOTSUP, "XTS implementation '%s' is not available here", name);
  return ncr_error (ENOTSUP, "no AES implementation for %s: no VAES, and OpenSSL's AES "
                    "provider was not found or its contexts cannot be kept in locked memory",
                    ncr_cipher_name (c));
}

int
ncr_xts_new_unit (enum ncr_cipher c, const uint8_t *key, size_t key_len,
                  unsigned unit, struct ncr_xts **out)
{
  return ncr_xts_new_impl (c, key, key_len, unit, NULL, out);
}

int
ncr_xts_new (enum ncr_cipher c, const uint8_t *key, size_t key_len,
             unsigned sector_size, struct ncr_xts **out)
{
  int r = ncr_sector_size_valid (sector_size);

  return r < 0 ? r : ncr_xts_new_unit (c, key, key_len, sector_size, out);
}

const char *
ncr_xts_impl (const struct ncr_xts *x)
{
  return x->impl;
}

int
ncr_xts_dup (const struct ncr_xts *x, struct ncr_xts **out)
{
  struct ncr_xts *d = calloc (1, sizeof *d);
  int r = 0;

  if (!d)
    return ncr_error (ENOMEM, "out of memory");
  *d = *x;
  d->vx = NULL;
  d->vy = NULL;
  memset (d->aes, 0, sizeof d->aes);
  d->initial = NULL;
  if (x->vx)
    r = vaes_xts_dup (x->vx, &d->vx);           /* shared, read-only schedules */
  if (r == 0 && x->vy)
    r = vaes256_xts_dup (x->vy, &d->vy);
  for (int i = 0; r == 0 && i < AES_N; i++)
    if (x->aes[i])
      r = crypto_aes_dup (x->aes[i], &d->aes[i]);
  if (r == 0 && x->initial) {
    d->initial = aligned_alloc (64, INITIAL_SIZE (x->unit));
    if (!d->initial)
      r = ncr_error (ENOMEM, "out of memory");
  }
  if (r < 0) {
    ncr_xts_free (d);
    return r;
  }
  *out = d;
  return 0;
}

static int
xts_crypt (struct ncr_xts *x, int enc, uint64_t sector,
           const uint8_t *in, uint8_t *out, size_t len)
{
  struct crypto_aes *k1 = x->aes[enc ? AES_ENC : AES_DEC];

  if (len % x->unit)
    return ncr_error (EINVAL, "length %zu is not a whole number of %u-byte sectors",
                      len, x->unit);
  if (x->use_vaes) {
    vaes_xts_crypt (x->vx, enc, x->unit, sector, in, out, len);
    return 0;
  }
  if (x->use_vaes256) {
    vaes256_xts_crypt (x->vy, enc, x->unit, sector, in, out, len);
    return 0;
  }
  if (!x->xor_tweaks)
    return crypto_aes_xts (k1, x->unit, sector, in, out, len);
  while (len > 0) {
    size_t n = len < x->chunk ? len : x->chunk, units = n / x->unit;

    for (size_t j = 0; j < units; j++) {
      store_le64 (x->initial + 16 * j, sector + j);
      memset (x->initial + 16 * j + 8, 0, 8);
    }
    if (crypto_aes_ecb (x->aes[AES_TWEAK], x->initial, units * 16) < 0)
      return ncr_error (EIO, "AES-XTS tweak encryption failed at sector %" PRIu64, sector);
    x->xor_tweaks (x->initial, units, x->unit, in, out);
    if (crypto_aes_ecb (k1, out, n) < 0)
      return ncr_error (EIO, "AES-XTS failed at sector %" PRIu64, sector);
    x->xor_tweaks (x->initial, units, x->unit, out, out);

    sector += units;
    in += n;
    out += n;
    len -= n;
  }
  return 0;
}

int
ncr_xts_encrypt (struct ncr_xts *x, uint64_t s, const uint8_t *in, uint8_t *out, size_t len)
{
  return xts_crypt (x, 1, s, in, out, len);
}

int
ncr_xts_decrypt (struct ncr_xts *x, uint64_t s, const uint8_t *in, uint8_t *out, size_t len)
{
  return xts_crypt (x, 0, s, in, out, len);
}

int
ncr_xts_key_memory (const struct ncr_xts *x, const void **p, size_t *n, int max)
{
  int k = 0;

  if (x->vx && k < max) {
    vaes_xts_key_memory (x->vx, &p[k], &n[k]);
    k++;
  }
  if (x->vy && k < max) {
    vaes256_xts_key_memory (x->vy, &p[k], &n[k]);
    k++;
  }
  for (int i = 0; i < AES_N; i++)
    if (x->aes[i] && k < max) {
      crypto_aes_key_memory (x->aes[i], &p[k], &n[k]);
      k++;
    }
  return k;
}

void
ncr_xts_free (struct ncr_xts *x)
{
  if (!x)
    return;
  /* Each wipes its key schedules: secmem_free for VAES, OPENSSL_clear_free in the provider
   * for OpenSSL's contexts. */
  vaes_xts_free (x->vx);
  vaes256_xts_free (x->vy);
  for (int i = 0; i < AES_N; i++)
    crypto_aes_free (x->aes[i]);
  if (x->initial)
    crypto_wipe (x->initial, INITIAL_SIZE (x->unit));
  free (x->initial);
  explicit_bzero (x, sizeof *x);
  free (x);
}
