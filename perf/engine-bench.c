/* SPDX-License-Identifier: BSD-3-Clause */
/* Engine micro-benchmark: MB/s of ncr_xts_encrypt/decrypt vs `openssl speed -evp aes-*-xts`.
 *
 * Usage: engine-bench [-t SECONDS] [-r REPS] [-c aes-256-xts|aes-128-xts] [-n]
 *   -t  seconds per measurement (default 0.5)   -r  repetitions, the median is shown (3)
 *   -n  skip the `openssl speed` runs
 *
 * openssl speed times one EVP update per buffer with a fixed IV: the cost of raw XTS on one
 * data unit. The engine rows time real work: each sector gets its own tweak. "1 sector/call"
 * is the worst case (a lone 512-byte or 4 KiB request); "64 KiB/call" and "1 MiB/call" are
 * typical NBD requests. The "EVP re-init/sector" row is the straightforward way (set the IV,
 * then update, per sector), shown for comparison. MB = 10^6 bytes, as openssl speed counts.
 * A benchmark, not a test: numbers vary with the machine's load; every figure is measured. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "errors.h"
#include "xts.h"

#define BUF (1024 * 1024)

static double seconds = 0.5;
static int reps = 3;

static double
now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
median (double *v, int n)
{
  qsort (v, n, sizeof *v, cmp_double);
  return v[n / 2];
}

/* MB/s of the engine, call bytes per call, over a 1 MiB buffer. */
static double
bench_engine (struct ncr_xts *x, int enc, unsigned ss, size_t call, uint8_t *buf)
{
  double t0 = now (), t;
  uint64_t bytes = 0, sector = 0;

  do {
    for (size_t o = 0; o < BUF; o += call) {
      int r = enc ? ncr_xts_encrypt (x, sector, buf + o, buf + o, call)
                  : ncr_xts_decrypt (x, sector, buf + o, buf + o, call);
      if (r < 0) {
        fprintf (stderr, "engine-bench: %s\n", ncr_last_error ());
        exit (1);
      }
      sector += call / ss;
    }
    bytes += BUF;
  } while ((t = now () - t0) < seconds);
  return bytes / t / 1e6;
}

/* MB/s of EVP aes-xts with the IV set before every sector (the per-sector re-init way). */
static double
bench_evp_reinit (const EVP_CIPHER *cipher, const uint8_t *key, int enc, unsigned ss,
                  uint8_t *buf)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();
  double t0 = now (), t;
  uint64_t bytes = 0, sector = 0;
  int outl;

  if (!ctx || EVP_CipherInit_ex (ctx, cipher, NULL, key, NULL, enc) != 1)
    exit (1);
  do {
    for (size_t o = 0; o < BUF; o += ss, sector++) {
      uint8_t iv[16] = { 0 };
      memcpy (iv, &sector, 8);           /* little-endian hosts: plain64 */
      if (EVP_CipherInit_ex (ctx, NULL, NULL, NULL, iv, enc) != 1 ||
          EVP_CipherUpdate (ctx, buf + o, &outl, buf + o, ss) != 1)
        exit (1);
    }
    bytes += BUF;
  } while ((t = now () - t0) < seconds);
  EVP_CIPHER_CTX_free (ctx);
  return bytes / t / 1e6;
}

/* MB/s reported by `openssl speed -evp CIPHER -bytes SS` (its unit: 1000s of bytes/s). */
static double
openssl_speed (const char *cipher, int enc, unsigned ss)
{
  char cmd[256], line[512];
  double kbs = -1;
  FILE *fp;
  int secs = seconds < 1 ? 1 : (int) seconds;

  snprintf (cmd, sizeof cmd, "openssl speed -seconds %d -bytes %u %s-evp %s 2>/dev/null",
            secs, ss, enc ? "" : "-decrypt ", cipher);
  fp = popen (cmd, "r");
  if (!fp)
    return -1;
  while (fgets (line, sizeof line, fp)) {
    double v;
    if (strncasecmp (line, cipher, strlen (cipher)) == 0 &&
        sscanf (line + strlen (cipher), "%lfk", &v) == 1)
      kbs = v;
  }
  pclose (fp);
  return kbs < 0 ? -1 : kbs / 1000;
}

int
main (int argc, char **argv)
{
  enum ncr_cipher c = NCR_CIPHER_AES_256_XTS;
  const char *cname = "aes-256-xts";
  int opt, no_openssl = 0;
  uint8_t key[64], *buf = aligned_alloc (64, BUF);

  while ((opt = getopt (argc, argv, "t:r:c:n")) != -1) {
    switch (opt) {
    case 't': seconds = atof (optarg); break;
    case 'r': reps = atoi (optarg); break;
    case 'c':
      if (ncr_cipher_from_name (optarg, &c) < 0) {
        fprintf (stderr, "engine-bench: %s\n", ncr_last_error ());
        return 2;
      }
      cname = optarg;
      break;
    case 'n': no_openssl = 1; break;
    default:
      fprintf (stderr, "usage: %s [-t SECONDS] [-r REPS] [-c CIPHER] [-n]\n", argv[0]);
      return 2;
    }
  }
  if (reps < 1 || reps > 99 || seconds <= 0 || !buf)
    return 2;
  if (RAND_bytes (key, sizeof key) != 1 || RAND_bytes (buf, BUF) != 1)
    return 1;

  printf ("nbdcrypt engine benchmark: %s, median of %d x %.1f s, MB/s (10^6 bytes/s)\n\n",
          cname, reps, seconds);
  printf ("%-6s %-5s %-28s %10s %10s %7s\n",
          "sector", "op", "method", "MB/s", "openssl", "ratio");

  for (unsigned ss = 512; ss <= 4096; ss *= 8) {
    for (int enc = 1; enc >= 0; enc--) {
      double ref = -1, v[99];
      const char *op = enc ? "enc" : "dec";

      if (!no_openssl) {
        for (int i = 0; i < reps; i++)
          v[i] = openssl_speed (cname, enc, ss);
        ref = median (v, reps);
        printf ("%-6u %-5s %-28s %10.0f\n", ss, op, "openssl speed -evp", ref);
      }
      for (int impl = 0; impl <= 1; impl++) {
        static const size_t calls[] = { 0, 64 * 1024, BUF };
        struct ncr_xts *x;

        if (ncr_xts_new (c, key, ncr_cipher_key_len (c), ss, &x) < 0) {
          fprintf (stderr, "engine-bench: %s\n", ncr_last_error ());
          return 1;
        }
        if (impl == 1) {
          if (strcmp (ncr_xts_impl (x), "generic") == 0) {
            ncr_xts_free (x);
            continue;       /* the default already is the generic code */
          }
          ncr_xts_use_generic (x);
        }
        for (size_t k = 0; k < 3; k++) {
          size_t call = calls[k] ? calls[k] : ss;
          char method[64];
          double mbs;

          for (int i = 0; i < reps; i++)
            v[i] = bench_engine (x, enc, ss, call, buf);
          mbs = median (v, reps);
          if (call == ss)
            snprintf (method, sizeof method, "nbdcrypt %s 1 sector/call", ncr_xts_impl (x));
          else
            snprintf (method, sizeof method, "nbdcrypt %s %zu KiB/call",
                      ncr_xts_impl (x), call / 1024);
          if (ref > 0)
            printf ("%-6u %-5s %-28s %10.0f %10.0f %6.0f%%\n", ss, op, method, mbs, ref,
                    100 * mbs / ref);
          else
            printf ("%-6u %-5s %-28s %10.0f\n", ss, op, method, mbs);
        }
        ncr_xts_free (x);
      }
      {
        const EVP_CIPHER *evp = c == NCR_CIPHER_AES_128_XTS ? EVP_aes_128_xts ()
                                                            : EVP_aes_256_xts ();
        double mbs;
        for (int i = 0; i < reps; i++)
          v[i] = bench_evp_reinit (evp, key, enc, ss, buf);
        mbs = median (v, reps);
        if (ref > 0)
          printf ("%-6u %-5s %-28s %10.0f %10.0f %6.0f%%\n", ss, op, "EVP re-init/sector",
                  mbs, ref, 100 * mbs / ref);
        else
          printf ("%-6u %-5s %-28s %10.0f\n", ss, op, "EVP re-init/sector", mbs);
      }
    }
  }
  explicit_bzero (key, sizeof key);
  free (buf);
  return 0;
}
