/* SPDX-License-Identifier: BSD-3-Clause */
/* AES-XTS on VAES + VPCLMULQDQ with 256-bit registers (AVX2), for CPUs without AVX-512.
 *
 * Why: CPUs (and VMs) that have VAES but no AVX-512 - AMD Zen 3, or a hypervisor that hides
 * AVX-512 - run VAESENC on two blocks per 256-bit instruction at the same rate as AESENC on
 * one, so this does a sector in half the AES instructions of OpenSSL 3.0's XTS (128-bit
 * AES-NI). Measured on such a VM (AMD EPYC, AVX-512 hidden): see docs/perf.md.
 *
 * Same construction as xts-vaes.c, two lanes per register instead of four: T = AES(K2,
 * sector) per data unit, block i's tweak T * x^i. Sixteen blocks per step in eight
 * registers, each register then advanced by x^16 (a two-byte shift per 128-bit lane plus a
 * carry-less multiply of the two bytes shifted out by 0x87). Units are multiples of 16 bytes:
 * a last odd block goes through 128-bit AES-NI, so nothing past the unit is touched. */
#include "crypto-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "errors.h"
#include "secmem.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#define VAES256_TARGET __attribute__ ((target ("aes,pclmul,avx2,vpclmulqdq,vaes")))

struct vaes256_xts {
  __m256i enc[15];              /* K1 round keys, each in both lanes */
  __m256i dec[15];              /* K1 equivalent-inverse round keys, both lanes */
  __m128i tweak[15];            /* K2 round keys */
  int rounds;                   /* 10 or 14 */
  int refs;                     /* contexts sharing these schedules (vaes256_xts_dup) */
};
_Static_assert (SECMEM_ALIGN >= 32, "secmem must align 256-bit key schedules");

bool
vaes256_xts_available (void)
{
  unsigned a, b, c, d;

  __builtin_cpu_init ();
  if (!(__builtin_cpu_supports ("aes") && __builtin_cpu_supports ("pclmul") &&
        __builtin_cpu_supports ("avx2") &&
        __builtin_cpu_supports ("vpclmulqdq")))
    return false;
  /* VAES: CPUID.(7,0):ECX bit 9 (not known to every compiler's __builtin_cpu_supports). */
  return __get_cpuid_count (7, 0, &a, &b, &c, &d) && (c & (1u << 9));
}

VAES256_TARGET static void
setup (struct vaes256_xts *x, const uint8_t *key, size_t half)
{
  __m128i rk[15];
  int nr = aesni_expand_key (key, half, rk);

  x->rounds = nr;
  for (int i = 0; i <= nr; i++)
    x->enc[i] = _mm256_broadcastsi128_si256 (rk[i]);
  x->dec[0] = _mm256_broadcastsi128_si256 (rk[nr]);
  for (int i = 1; i < nr; i++)
    x->dec[i] = _mm256_broadcastsi128_si256 (_mm_aesimc_si128 (rk[nr - i]));
  x->dec[nr] = _mm256_broadcastsi128_si256 (rk[0]);
  aesni_expand_key (key + half, half, x->tweak);
  crypto_wipe (rk, sizeof rk);
}

int
vaes256_xts_new (enum ncr_cipher c, const uint8_t *key, size_t key_len,
                 struct vaes256_xts **out)
{
  struct vaes256_xts *x;

  if (!vaes256_xts_available ())
    return -ENOTSUP;
  if (key_len != ncr_cipher_key_len (c))
    return ncr_error (EINVAL, "%s needs a %zu-byte key", ncr_cipher_name (c),
                      ncr_cipher_key_len (c));
  x = secmem_alloc (sizeof *x);   /* locked, not dumped, wiped in children and on free */
  if (!x)
    return -errno;
  setup (x, key, key_len / 2);
  x->refs = 1;
  *out = x;
  return 0;
}

int
vaes256_xts_dup (const struct vaes256_xts *x, struct vaes256_xts **out)
{
  struct vaes256_xts *d = (struct vaes256_xts *) x;     /* read-only after setup: shared */

  __atomic_add_fetch (&d->refs, 1, __ATOMIC_RELAXED);
  *out = d;
  return 0;
}

/* t * x in GF(2^128) (one 128-bit value). */
VAES256_TARGET static inline __m128i
mul_x (__m128i t)
{
  __m128i hi = _mm_srli_epi64 (t, 63);
  __m128i shifted = _mm_xor_si128 (_mm_slli_epi64 (t, 1), _mm_slli_si128 (hi, 8));
  return _mm_xor_si128 (shifted, _mm_clmulepi64_si128 (_mm_srli_si128 (hi, 8),
                                                       _mm_set_epi64x (0, 0x87), 0x00));
}

/* Every lane times x^2 (a two-bit shift) or x^16 (a two-byte shift). */
VAES256_TARGET static inline __m256i
mul_x2 (__m256i t, __m256i poly)
{
  __m256i hi = _mm256_srli_epi64 (t, 62);
  __m256i shifted = _mm256_xor_si256 (_mm256_slli_epi64 (t, 2), _mm256_slli_si256 (hi, 8));
  return _mm256_xor_si256 (shifted,
                           _mm256_clmulepi64_epi128 (_mm256_srli_si256 (hi, 8), poly, 0x00));
}

VAES256_TARGET static inline __m256i
mul_x16 (__m256i t, __m256i poly)
{
  __m256i red = _mm256_clmulepi64_epi128 (_mm256_srli_si256 (t, 14), poly, 0x00);
  return _mm256_xor_si256 (_mm256_slli_si256 (t, 2), red);
}

/* All rounds on n registers; the compiler unrolls the n loop. */
#define ROUNDS(op, last, k, nr, v, n)                                                   \
  do {                                                                                  \
    _Pragma ("GCC unroll 8")                                                            \
    for (int j_ = 0; j_ < (n); j_++)                                                    \
      v[j_] = _mm256_xor_si256 (v[j_], k[0]);                                           \
    for (int r_ = 1; r_ < nr; r_++) {                                                   \
      const __m256i rk_ = k[r_];                                                        \
      _Pragma ("GCC unroll 8")                                                          \
      for (int j_ = 0; j_ < (n); j_++)                                                  \
        v[j_] = op (v[j_], rk_);                                                        \
    }                                                                                   \
    _Pragma ("GCC unroll 8")                                                            \
    for (int j_ = 0; j_ < (n); j_++)                                                    \
      v[j_] = last (v[j_], k[nr]);                                                      \
  } while (0)

VAES256_TARGET static void
crypt_unit (const struct vaes256_xts *x, int enc, size_t unit, uint64_t sector,
            const uint8_t *in, uint8_t *out)
{
  const __m256i poly = _mm256_set1_epi64x (0x87);
  const __m256i *k = enc ? x->enc : x->dec;
  const int nr = x->rounds;
  __m128i t = _mm_set_epi64x (0, (long long) sector);
  __m256i a[8], v[8];
  size_t off = 0;
  int g;

  t = _mm_xor_si128 (t, x->tweak[0]);
  for (int r = 1; r < nr; r++)
    t = _mm_aesenc_si128 (t, x->tweak[r]);
  t = _mm_aesenclast_si128 (t, x->tweak[nr]);
  /* a[j] holds the tweaks of blocks 2j and 2j + 1. */
  a[0] = _mm256_set_m128i (mul_x (t), t);
  for (int j = 1; j < 8; j++)
    a[j] = mul_x2 (a[j - 1], poly);

  for (; unit - off >= 256; off += 256) {
    _Pragma ("GCC unroll 8")
    for (int j = 0; j < 8; j++)
      v[j] = _mm256_xor_si256 (_mm256_loadu_si256 ((const void *) (in + off + 32 * j)), a[j]);
    if (enc)
      ROUNDS (_mm256_aesenc_epi128, _mm256_aesenclast_epi128, k, nr, v, 8);
    else
      ROUNDS (_mm256_aesdec_epi128, _mm256_aesdeclast_epi128, k, nr, v, 8);
    _Pragma ("GCC unroll 8")
    for (int j = 0; j < 8; j++) {
      _mm256_storeu_si256 ((void *) (out + off + 32 * j), _mm256_xor_si256 (v[j], a[j]));
      a[j] = mul_x16 (a[j], poly);
    }
  }
  /* Fewer than sixteen blocks left: two at a time, then an odd last block alone. */
  for (g = 0; unit - off >= 32; off += 32, g++) {
    v[0] = _mm256_xor_si256 (_mm256_loadu_si256 ((const void *) (in + off)), a[g]);
    if (enc)
      ROUNDS (_mm256_aesenc_epi128, _mm256_aesenclast_epi128, k, nr, v, 1);
    else
      ROUNDS (_mm256_aesdec_epi128, _mm256_aesdeclast_epi128, k, nr, v, 1);
    _mm256_storeu_si256 ((void *) (out + off), _mm256_xor_si256 (v[0], a[g]));
  }
  if (off < unit) {
    __m128i tw = _mm256_castsi256_si128 (a[g]);
    __m128i b = _mm_xor_si128 (_mm_loadu_si128 ((const void *) (in + off)), tw);
    b = _mm_xor_si128 (b, _mm256_castsi256_si128 (k[0]));
    for (int r = 1; r < nr; r++)
      b = enc ? _mm_aesenc_si128 (b, _mm256_castsi256_si128 (k[r]))
              : _mm_aesdec_si128 (b, _mm256_castsi256_si128 (k[r]));
    b = enc ? _mm_aesenclast_si128 (b, _mm256_castsi256_si128 (k[nr]))
            : _mm_aesdeclast_si128 (b, _mm256_castsi256_si128 (k[nr]));
    _mm_storeu_si128 ((void *) (out + off), _mm_xor_si128 (b, tw));
  }
}

void
vaes256_xts_crypt (const struct vaes256_xts *x, int enc, unsigned unit, uint64_t sector,
                   const uint8_t *in, uint8_t *out, size_t len)
{
  for (size_t off = 0; off < len; off += unit, sector++)
    crypt_unit (x, enc, unit, sector, in + off, out + off);
}

void
vaes256_xts_free (struct vaes256_xts *x)
{
  if (!x)
    return;
  if (__atomic_sub_fetch (&x->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  secmem_free (x);              /* wipes */
}

void
vaes256_xts_key_memory (const struct vaes256_xts *x, const void **p, size_t *n)
{
  *p = x;
  *n = sizeof *x;
}

#else /* !__x86_64__ */

bool
vaes256_xts_available (void)
{
  return false;
}

int
vaes256_xts_new (enum ncr_cipher c, const uint8_t *key, size_t key_len,
                 struct vaes256_xts **out)
{
  (void) c; (void) key; (void) key_len; (void) out;
  return -ENOTSUP;
}

int
vaes256_xts_dup (const struct vaes256_xts *x, struct vaes256_xts **out)
{
  (void) x; (void) out;
  return -ENOTSUP;
}

void
vaes256_xts_crypt (const struct vaes256_xts *x, int enc, unsigned unit, uint64_t sector,
                   const uint8_t *in, uint8_t *out, size_t len)
{
  (void) x; (void) enc; (void) unit; (void) sector; (void) in; (void) out; (void) len;
}

void
vaes256_xts_free (struct vaes256_xts *x)
{
  (void) x;
}

void
vaes256_xts_key_memory (const struct vaes256_xts *x, const void **p, size_t *n)
{
  (void) x;
  *p = NULL;
  *n = 0;
}

#endif /* __x86_64__ */
