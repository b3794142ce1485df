/* SPDX-License-Identifier: BSD-3-Clause */
/* AES-XTS on VAES + VPCLMULQDQ: sixteen blocks per step in four 512-bit registers.
 *
 * Why: OpenSSL 3.0's XTS and ECB assembly use 128-bit AES-NI, one block per instruction.
 * CPUs with VAES run AESENC on four blocks per 512-bit instruction, so a whole 4 KiB sector
 * goes through the cipher with a quarter of the instructions. The keys are expanded here
 * with AES-NI (AESKEYGENASSIST), once per context; the decryption schedule is the
 * "equivalent inverse cipher" one (AESIMC of the middle round keys), as AESDEC needs.
 *
 * Tweaks: T = AES(K2, sector) per data unit; block i's tweak is T * x^i in GF(2^128).
 * The first four lanes get x^0..x^3 by per-lane shifts, and each register then advances by
 * x^16 per step: a two-byte shift within each 128-bit lane plus a carry-less multiply of
 * the two bytes shifted out by 0x87 (x^128 = x^7 + x^2 + x + 1). Units that are not a
 * multiple of 256 bytes (the NIST vectors' 16- and 32-byte units) finish with masked loads
 * and stores, so nothing past the unit is touched. */
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

#include "xts-gf512.h"

#define AESNI_TARGET __attribute__ ((target ("aes")))
#define VAES_TARGET \
  __attribute__ ((target ("aes,avx512f,avx512bw,avx512vl,vpclmulqdq,vaes")))

struct vaes_xts {
  __m512i enc[15];              /* K1 round keys, each broadcast to four lanes */
  __m512i dec[15];              /* K1 equivalent-inverse round keys, broadcast */
  __m128i tweak[15];            /* K2 round keys */
  int rounds;                   /* 10 or 14 */
  int refs;                     /* contexts sharing these schedules (vaes_xts_dup) */
};

bool
vaes_xts_available (void)
{
  unsigned a, b, c, d;

  __builtin_cpu_init ();
  if (!(__builtin_cpu_supports ("aes") && __builtin_cpu_supports ("avx512f") &&
        __builtin_cpu_supports ("avx512bw") && __builtin_cpu_supports ("avx512vl") &&
        __builtin_cpu_supports ("vpclmulqdq")))
    return false;
  /* clang 14's __builtin_cpu_supports does not know "vaes": CPUID.(7,0):ECX bit 9. */
  return __get_cpuid_count (7, 0, &a, &b, &c, &d) && (c & (1u << 9));
}

/* k ^ (k << 32) ^ (k << 64) ^ (k << 96): the running XOR of the previous round key's words. */
AESNI_TARGET static inline __m128i
prefix_xor (__m128i k)
{
  k = _mm_xor_si128 (k, _mm_slli_si128 (k, 4));
  k = _mm_xor_si128 (k, _mm_slli_si128 (k, 4));
  return _mm_xor_si128 (k, _mm_slli_si128 (k, 4));
}

#define K128(i, rcon)                                                                   \
  rk[i] = _mm_xor_si128 (prefix_xor (rk[i - 1]),                                        \
                         _mm_shuffle_epi32 (_mm_aeskeygenassist_si128 (rk[i - 1], rcon), 0xff))
#define K256A(i, rcon)                                                                  \
  rk[i] = _mm_xor_si128 (prefix_xor (rk[i - 2]),                                        \
                         _mm_shuffle_epi32 (_mm_aeskeygenassist_si128 (rk[i - 1], rcon), 0xff))
#define K256B(i)                                                                        \
  rk[i] = _mm_xor_si128 (prefix_xor (rk[i - 2]),                                        \
                         _mm_shuffle_epi32 (_mm_aeskeygenassist_si128 (rk[i - 1], 0), 0xaa))

/* FIPS 197 key expansion; returns the number of rounds. AES-NI only (no EVEX encodings):
 * xts-vaes256.c runs it on CPUs without AVX-512. */
AESNI_TARGET static int
expand_key (const uint8_t *key, size_t len, __m128i rk[15])
{
  rk[0] = _mm_loadu_si128 ((const void *) key);
  if (len == 16) {
    K128 (1, 0x01); K128 (2, 0x02); K128 (3, 0x04); K128 (4, 0x08); K128 (5, 0x10);
    K128 (6, 0x20); K128 (7, 0x40); K128 (8, 0x80); K128 (9, 0x1b); K128 (10, 0x36);
    return 10;
  }
  rk[1] = _mm_loadu_si128 ((const void *) (key + 16));
  K256A (2, 0x01); K256B (3); K256A (4, 0x02); K256B (5); K256A (6, 0x04); K256B (7);
  K256A (8, 0x08); K256B (9); K256A (10, 0x10); K256B (11); K256A (12, 0x20); K256B (13);
  K256A (14, 0x40);
  return 14;
}

/* For xts-vaes256.c: the same expansion. */
AESNI_TARGET int
aesni_expand_key (const uint8_t *key, size_t len, __m128i rk[15])
{
  return expand_key (key, len, rk);
}

VAES_TARGET static void
setup (struct vaes_xts *x, const uint8_t *key, size_t half)
{
  __m128i rk[15];
  int nr = expand_key (key, half, rk);

  x->rounds = nr;
  for (int i = 0; i <= nr; i++)
    x->enc[i] = _mm512_broadcast_i32x4 (rk[i]);
  x->dec[0] = _mm512_broadcast_i32x4 (rk[nr]);
  for (int i = 1; i < nr; i++)
    x->dec[i] = _mm512_broadcast_i32x4 (_mm_aesimc_si128 (rk[nr - i]));
  x->dec[nr] = _mm512_broadcast_i32x4 (rk[0]);
  expand_key (key + half, half, x->tweak);
  crypto_wipe (rk, sizeof rk);
}

int
vaes_xts_new (enum ncr_cipher c, const uint8_t *key, size_t key_len, struct vaes_xts **out)
{
  struct vaes_xts *x;

  if (!vaes_xts_available ())
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
vaes_xts_dup (const struct vaes_xts *x, struct vaes_xts **out)
{
  struct vaes_xts *d = (struct vaes_xts *) x;   /* read-only after setup: shared */

  __atomic_add_fetch (&d->refs, 1, __ATOMIC_RELAXED);
  *out = d;
  return 0;
}

/* Tweaks of blocks 0..3 from T: lane i holds T * x^i (per-lane 128-bit shift left by i). */
VAES_TARGET static inline __m512i
first_tweaks (__m128i t, __m512i poly)
{
  const __m512i cnt = _mm512_set_epi64 (3, 3, 2, 2, 1, 1, 0, 0);

  return xts_mul_x_lanes (_mm512_broadcast_i32x4 (t), cnt, poly);
}

/* Multiply every lane by x^4 (a nibble shift) or x^16 (a two-byte shift). */
VAES_TARGET static inline __m512i
mul_x4 (__m512i t, __m512i poly)
{
  __m512i hi = _mm512_srli_epi64 (t, 60);
  __m512i shifted = _mm512_xor_si512 (_mm512_slli_epi64 (t, 4), _mm512_bslli_epi128 (hi, 8));
  return _mm512_xor_si512 (shifted,
                           _mm512_clmulepi64_epi128 (_mm512_bsrli_epi128 (hi, 8), poly, 0x00));
}

VAES_TARGET static inline __m512i
mul_x16 (__m512i t, __m512i poly)
{
  __m512i red = _mm512_clmulepi64_epi128 (_mm512_bsrli_epi128 (t, 14), poly, 0x00);
  return _mm512_xor_si512 (_mm512_bslli_epi128 (t, 2), red);
}

#define ROUNDS4(op, last, k, nr, x0, x1, x2, x3)                                        \
  do {                                                                                  \
    x0 = _mm512_xor_si512 (x0, k[0]); x1 = _mm512_xor_si512 (x1, k[0]);                 \
    x2 = _mm512_xor_si512 (x2, k[0]); x3 = _mm512_xor_si512 (x3, k[0]);                 \
    for (int r_ = 1; r_ < nr; r_++) {                                                   \
      x0 = op (x0, k[r_]); x1 = op (x1, k[r_]); x2 = op (x2, k[r_]); x3 = op (x3, k[r_]); \
    }                                                                                   \
    x0 = last (x0, k[nr]); x1 = last (x1, k[nr]); x2 = last (x2, k[nr]); x3 = last (x3, k[nr]); \
  } while (0)

#define ROUNDS1(op, last, k, nr, x0)                                                    \
  do {                                                                                  \
    x0 = _mm512_xor_si512 (x0, k[0]);                                                   \
    for (int r_ = 1; r_ < nr; r_++)                                                     \
      x0 = op (x0, k[r_]);                                                              \
    x0 = last (x0, k[nr]);                                                              \
  } while (0)

VAES_TARGET static void
crypt_unit (const struct vaes_xts *x, int enc, size_t unit, uint64_t sector,
            const uint8_t *in, uint8_t *out)
{
  const __m512i poly = _mm512_set1_epi64 (0x87);
  const __m512i *k = enc ? x->enc : x->dec;
  const int nr = x->rounds;
  __m128i t = _mm_set_epi64x (0, (long long) sector);
  __m512i a[4];
  size_t off = 0;
  int g;

  t = _mm_xor_si128 (t, x->tweak[0]);
  for (int r = 1; r < nr; r++)
    t = _mm_aesenc_si128 (t, x->tweak[r]);
  t = _mm_aesenclast_si128 (t, x->tweak[nr]);
  a[0] = first_tweaks (t, poly);
  a[1] = mul_x4 (a[0], poly);
  a[2] = mul_x4 (a[1], poly);
  a[3] = mul_x4 (a[2], poly);

  for (; unit - off >= 256; off += 256) {
    __m512i x0 = _mm512_xor_si512 (_mm512_loadu_si512 (in + off), a[0]);
    __m512i x1 = _mm512_xor_si512 (_mm512_loadu_si512 (in + off + 64), a[1]);
    __m512i x2 = _mm512_xor_si512 (_mm512_loadu_si512 (in + off + 128), a[2]);
    __m512i x3 = _mm512_xor_si512 (_mm512_loadu_si512 (in + off + 192), a[3]);
    if (enc)
      ROUNDS4 (_mm512_aesenc_epi128, _mm512_aesenclast_epi128, k, nr, x0, x1, x2, x3);
    else
      ROUNDS4 (_mm512_aesdec_epi128, _mm512_aesdeclast_epi128, k, nr, x0, x1, x2, x3);
    _mm512_storeu_si512 (out + off, _mm512_xor_si512 (x0, a[0]));
    _mm512_storeu_si512 (out + off + 64, _mm512_xor_si512 (x1, a[1]));
    _mm512_storeu_si512 (out + off + 128, _mm512_xor_si512 (x2, a[2]));
    _mm512_storeu_si512 (out + off + 192, _mm512_xor_si512 (x3, a[3]));
    a[0] = mul_x16 (a[0], poly);
    a[1] = mul_x16 (a[1], poly);
    a[2] = mul_x16 (a[2], poly);
    a[3] = mul_x16 (a[3], poly);
  }
  /* Fewer than sixteen blocks left: four at a time, the last group masked. */
  for (g = 0; off < unit; off += 64, g++) {
    size_t rem = unit - off;
    __mmask64 m = rem >= 64 ? ~(__mmask64) 0 : ((__mmask64) 1 << rem) - 1;
    __m512i x0 = _mm512_xor_si512 (_mm512_maskz_loadu_epi8 (m, in + off), a[g]);
    if (enc)
      ROUNDS1 (_mm512_aesenc_epi128, _mm512_aesenclast_epi128, k, nr, x0);
    else
      ROUNDS1 (_mm512_aesdec_epi128, _mm512_aesdeclast_epi128, k, nr, x0);
    _mm512_mask_storeu_epi8 (out + off, m, _mm512_xor_si512 (x0, a[g]));
  }
}

void
vaes_xts_crypt (const struct vaes_xts *x, int enc, unsigned unit, uint64_t sector,
                const uint8_t *in, uint8_t *out, size_t len)
{
  for (size_t off = 0; off < len; off += unit, sector++)
    crypt_unit (x, enc, unit, sector, in + off, out + off);
}

void
vaes_xts_free (struct vaes_xts *x)
{
  if (!x)
    return;
  if (__atomic_sub_fetch (&x->refs, 1, __ATOMIC_ACQ_REL) > 0)
    return;
  secmem_free (x);              /* wipes */
}

void
vaes_xts_key_memory (const struct vaes_xts *x, const void **p, size_t *n)
{
  *p = x;
  *n = sizeof *x;
}

#else /* !__x86_64__ */

bool
vaes_xts_available (void)
{
  return false;
}

int
vaes_xts_new (enum ncr_cipher c, const uint8_t *key, size_t key_len, struct vaes_xts **out)
{
  (void) c; (void) key; (void) key_len; (void) out;
  return -ENOTSUP;
}

int
vaes_xts_dup (const struct vaes_xts *x, struct vaes_xts **out)
{
  (void) x; (void) out;
  return -ENOTSUP;
}

void
vaes_xts_crypt (const struct vaes_xts *x, int enc, unsigned unit, uint64_t sector,
                const uint8_t *in, uint8_t *out, size_t len)
{
  (void) x; (void) enc; (void) unit; (void) sector; (void) in; (void) out; (void) len;
}

void
vaes_xts_free (struct vaes_xts *x)
{
  (void) x;
}

void
vaes_xts_key_memory (const struct vaes_xts *x, const void **p, size_t *n)
{
  (void) x;
  *p = NULL;
  *n = 0;
}

#endif /* __x86_64__ */
