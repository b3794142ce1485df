/* SPDX-License-Identifier: BSD-3-Clause */
/* XTS tweak arithmetic on four 128-bit lanes at once (AVX-512 + VPCLMULQDQ), shared by the
 * batched ECB construction (xts.c) and the VAES engine (xts-vaes.c). x86-64 only (empty
 * elsewhere). Internal to lib/crypto; kept apart from crypto-internal.h so that only these two
 * files compile the AVX-512 intrinsics. */
#ifndef NBDCRYPT_XTS_GF512_H
#define NBDCRYPT_XTS_GF512_H

#if defined(__x86_64__)
#include <immintrin.h>

#define XTS_GF512_TARGET __attribute__ ((target ("avx512f,avx512bw,avx512vl,vpclmulqdq")))

/* Each 128-bit lane times x^k in GF(2^128) mod x^128 + x^7 + x^2 + x + 1, k = the per-lane
 * shift count in cnt (0 <= k < 64, both qwords of a lane the same); poly: 0x87 in every
 * qword. */
XTS_GF512_TARGET static inline __m512i
xts_mul_x_lanes (__m512i t, __m512i cnt, __m512i poly)
{
  __m512i shifted = _mm512_sllv_epi64 (t, cnt);
  __m512i spill = _mm512_srlv_epi64 (t, _mm512_sub_epi64 (_mm512_set1_epi64 (64), cnt));
  __m512i up = _mm512_bslli_epi128 (spill, 8);          /* low qword's spill into high */
  __m512i over = _mm512_bsrli_epi128 (spill, 8);        /* bits past x^127 ... */
  __m512i red = _mm512_clmulepi64_epi128 (over, poly, 0x00);  /* ... reduced by 0x87 */
  return _mm512_xor_si512 (_mm512_xor_si512 (shifted, up), red);
}
#endif /* __x86_64__ */

#endif /* NBDCRYPT_XTS_GF512_H */
