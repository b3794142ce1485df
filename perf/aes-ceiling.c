/* SPDX-License-Identifier: BSD-3-Clause */
/* The AES instruction ceiling of this CPU: how many AES rounds per second its AES units
 * retire on independent data (eight dependency chains, so latency does not count), for the
 * register widths the engines use (AES-NI 128-bit, VAES 256- and 512-bit), and what that
 * makes of AES-XTS at 10 rounds (AES-128) and 14 rounds (AES-256) per block. No XTS engine
 * can decrypt faster than this: the tweaks, loads and stores only add to it. Compare with
 * engine-bench, which measures the engines themselves.
 *
 *   perf/aes-ceiling [-t SECONDS] [-r REPS]      (default 1 s, 3 repetitions; medians) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

static double
now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

/* Each kernel: `iters` times, one AESENC on each of eight registers; returns the seconds and
 * folds the registers into *sink so that nothing is optimised away. */
#define KERNEL(name, tgt, type, set1, aesenc, xor, fold)                            \
  __attribute__ ((target (tgt))) static double                                        \
  name (long iters, volatile uint32_t *sink)                                           \
  {                                                                                    \
    type k = set1 (0x9e3779b9);                                                        \
    type x0 = set1 (1), x1 = set1 (2), x2 = set1 (3), x3 = set1 (4);                   \
    type x4 = set1 (5), x5 = set1 (6), x6 = set1 (7), x7 = set1 (8);                   \
    double t0 = now ();                                                                \
    for (long i = 0; i < iters; i++) {                                                 \
      x0 = aesenc (x0, k); x1 = aesenc (x1, k); x2 = aesenc (x2, k);                   \
      x3 = aesenc (x3, k); x4 = aesenc (x4, k); x5 = aesenc (x5, k);                   \
      x6 = aesenc (x6, k); x7 = aesenc (x7, k);                                        \
    }                                                                                  \
    double t = now () - t0;                                                            \
    type s = xor (xor (xor (x0, x1), xor (x2, x3)), xor (xor (x4, x5), xor (x6, x7))); \
    *sink = fold (s);                                                                  \
    return t;                                                                          \
  }

static uint32_t fold128 (__m128i s) { return (uint32_t) _mm_cvtsi128_si32 (s); }
__attribute__ ((target ("avx2"))) static uint32_t
fold256 (__m256i s) { return (uint32_t) _mm256_extract_epi32 (s, 5); }
__attribute__ ((target ("avx512f"))) static uint32_t
fold512 (__m512i s) { return (uint32_t) _mm512_reduce_add_epi32 (s); }

KERNEL (aes128bit, "aes,sse2", __m128i, _mm_set1_epi32, _mm_aesenc_si128, _mm_xor_si128,
        fold128)
KERNEL (aes256bit, "aes,avx2,vaes", __m256i, _mm256_set1_epi32, _mm256_aesenc_epi128,
        _mm256_xor_si256, fold256)
KERNEL (aes512bit, "aes,avx512f,vaes", __m512i, _mm512_set1_epi32, _mm512_aesenc_epi128,
        _mm512_xor_si512, fold512)

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  double secs = 1;
  int reps = 3, o;
  unsigned a, b, c, d;
  volatile uint32_t sink;
  struct {
    const char *name;
    double (*fn) (long, volatile uint32_t *);
    unsigned lanes;             /* 128-bit blocks per instruction */
    int ok;
  } k[3] = {
    { "AES-NI, 128-bit", aes128bit, 1, 0 },
    { "VAES, 256-bit", aes256bit, 2, 0 },
    { "VAES, 512-bit", aes512bit, 4, 0 },
  };

  while ((o = getopt (argc, argv, "t:r:")) != -1) {
    switch (o) {
    case 't': secs = atof (optarg); break;
    case 'r': reps = atoi (optarg); break;
    default:
      fprintf (stderr, "usage: %s [-t SECONDS] [-r REPS]\n", argv[0]);
      return 2;
    }
  }
  if (secs <= 0 || reps < 1 || reps > 99) {
    fprintf (stderr, "%s: -t must be positive, -r from 1 to 99\n", argv[0]);
    return 2;
  }
  __builtin_cpu_init ();
  k[0].ok = __builtin_cpu_supports ("aes");
  int vaes = __get_cpuid_count (7, 0, &a, &b, &c, &d) && (c & (1u << 9));
  k[1].ok = k[0].ok && vaes && __builtin_cpu_supports ("avx2");
  k[2].ok = k[1].ok && __builtin_cpu_supports ("avx512f");

  printf ("AES instruction ceiling: 8 independent chains, %g s x %d, median\n", secs, reps);
  printf ("| instructions | AESENC/s (G) | block-rounds/s (G) | AES-128-XTS ceiling GB/s | "
          "AES-256-XTS ceiling GB/s | ms per GiB at AES-256 |\n|---|---|---|---|---|---|\n");
  for (int i = 0; i < 3; i++) {
    if (!k[i].ok) {
      printf ("| %s | not on this CPU | | | | |\n", k[i].name);
      continue;
    }
    /* Calibrate the iterations to about `secs`. */
    long iters = 1 << 20;
    double t = k[i].fn (iters, &sink);
    while (t < 0.05) {
      iters *= 4;
      t = k[i].fn (iters, &sink);
    }
    iters = (long) (iters * secs / t);
    double rate[99];
    for (int r = 0; r < reps; r++)
      rate[r] = iters * 8.0 / k[i].fn (iters, &sink);
    qsort (rate, reps, sizeof rate[0], cmp_double);
    double ops = rate[reps / 2], br = ops * k[i].lanes;
    double gb128 = br / 10 * 16 / 1e9, gb256 = br / 14 * 16 / 1e9;
    printf ("| %s | %.2f | %.2f | %.1f | %.1f | %.0f |\n", k[i].name, ops / 1e9, br / 1e9,
            gb128, gb256, (double) (1ull << 30) / (gb256 * 1e9) * 1e3);
  }
  return 0;
}

#else

int
main (void)
{
  printf ("aes-ceiling: x86-64 only\n");
  return 0;
}

#endif
