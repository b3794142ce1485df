/* SPDX-License-Identifier: BSD-3-Clause */
/* Engine micro-benchmark: MB/s of ncr_xts_encrypt/decrypt vs `openssl speed -evp aes-*-xts`.
 *
 * Usage: engine-bench [-t SECONDS] [-r REPS] [-c aes-256-xts|aes-128-xts] [-n]
 *   -t  seconds per measurement (default 0.3)   -r  repetitions, medians shown (default 5)
 *   -n  skip the external `openssl speed` runs
 *
 * `openssl speed -evp` times one EVP update per buffer, the same buffer and the same IV each
 * time: raw XTS on one data unit. Its loop is also run in-process ("speed loop"), alternating
 * with each engine measurement, so that the ratio column compares two runs made at the same
 * moment: on a shared machine the load changes from second to second. The ratio shown is
 * the median of the per-repetition ratios; "vs openssl" divides the median by the figure the
 * external `openssl speed` command printed.
 *
 * The engine rows do real work: each sector gets its own tweak. "1 sector/call" is the worst
 * case (a lone 512-byte or 4 KiB request); "64 KiB/call" and "1 MiB/call" are typical NBD
 * requests. As with openssl speed, each call reuses one buffer of the call's size. Every
 * implementation available is measured; "*" marks the one ncr_xts_new picks for the sector
 * size. "EVP re-init/sector" is the straightforward way (EVP_CipherInit_ex with the IV, then
 * an update, per sector), for comparison. MB = 10^6 bytes, as openssl speed counts. Times are
 * CPU time of this thread, as openssl speed's are (user time unless -elapsed).
 * A benchmark, not a test: the numbers are measured, and vary with the machine's load. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "errors.h"
#include "xts.h"

#define MAXCALL (1024 * 1024)
#define MAXREPS 99

static const char *const impls[] = { "vaes-xts", "vaes256-xts", "openssl-xts", "ecb-avx512", "ecb-generic" };
static double seconds = 0.3;
static int reps = 5;

static double
now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
median (const double *v, int n)
{
  double s[MAXREPS];
  memcpy (s, v, n * sizeof *v);
  qsort (s, n, sizeof *s, cmp_double);
  return s[n / 2];
}

/* A measured operation: run it for `seconds` of CPU time, return MB/s. */
struct op {
  enum { OP_ENGINE, OP_SPEED_LOOP, OP_EVP_REINIT } kind;
  struct ncr_xts *x;
  EVP_CIPHER_CTX *ctx;
  int enc;
  unsigned ss;
  size_t call;
};

static double
measure (const struct op *op, uint8_t *buf)
{
  double t0 = now (), t;
  uint64_t bytes = 0, sector = 0;
  int outl;

  /* Read the clock (a system call for thread CPU time) once per 4 MiB of work, so that it
   * adds well under 1% even to 512-byte calls. */
  const size_t batch = op->call >= (4u << 20) ? 1 : (4u << 20) / op->call;

  do {
    for (size_t i = 0; i < batch; i++) {
      switch (op->kind) {
      case OP_ENGINE:
        if ((op->enc ? ncr_xts_encrypt (op->x, sector, buf, buf, op->call)
                     : ncr_xts_decrypt (op->x, sector, buf, buf, op->call)) < 0) {
          fprintf (stderr, "engine-bench: %s\n", ncr_last_error ());
          exit (1);
        }
        sector += op->call / op->ss;
        break;
      case OP_SPEED_LOOP:       /* what openssl speed -evp times */
        if (EVP_CipherUpdate (op->ctx, buf, &outl, buf, op->call) != 1)
          exit (1);
        break;
      case OP_EVP_REINIT:
        for (size_t o = 0; o < op->call; o += op->ss, sector++) {
          uint8_t iv[16] = { 0 };
          for (int b = 0; b < 8; b++)
            iv[b] = sector >> (8 * b);
          if (EVP_CipherInit_ex (op->ctx, NULL, NULL, NULL, iv, op->enc) != 1 ||
              EVP_CipherUpdate (op->ctx, buf + o, &outl, buf + o, op->ss) != 1)
            exit (1);
        }
        break;
      }
      bytes += op->call;
    }
  } while ((t = now () - t0) < seconds);
  return bytes / t / 1e6;
}

/* MB/s printed by `openssl speed -evp CIPHER -bytes SS` (its unit: 1000s of bytes/s). */
static double
openssl_speed (const char *cipher, int enc, unsigned ss)
{
  char cmd[256], line[512];
  double kbs = -1;
  FILE *fp;

  snprintf (cmd, sizeof cmd, "openssl speed -seconds %d -bytes %u %s-evp %s 2>/dev/null",
            seconds < 1 ? 1 : (int) seconds, ss, enc ? "" : "-decrypt ", cipher);
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

static void
row (unsigned ss, int enc, const char *method, const struct op *op,
     const struct op *speed_loop, double external, uint8_t *buf)
{
  double mine[MAXREPS], ref[MAXREPS], ratio[MAXREPS], m;

  for (int i = 0; i < reps; i++) {
    ref[i] = measure (speed_loop, buf);
    mine[i] = measure (op, buf);
    ratio[i] = mine[i] / ref[i];
  }
  m = median (mine, reps);
  printf ("%-6u %-4s %-29s %8.0f %8.0f %6.0f%%", ss, enc ? "enc" : "dec", method, m,
          median (ref, reps), 100 * median (ratio, reps));
  if (external > 0)
    printf (" %8.0f %6.0f%%", external, 100 * m / external);
  printf ("\n");
}

int
main (int argc, char **argv)
{
  enum ncr_cipher c = NCR_CIPHER_AES_256_XTS;
  const char *cname = "aes-256-xts";
  int opt, no_openssl = 0;
  uint8_t key[64], *buf = aligned_alloc (64, MAXCALL);

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
  if (reps < 1 || reps > MAXREPS || seconds <= 0 || !buf)
    return 2;
  if (RAND_bytes (key, sizeof key) != 1 || RAND_bytes (buf, MAXCALL) != 1)
    return 1;

  const EVP_CIPHER *evp = c == NCR_CIPHER_AES_128_XTS ? EVP_aes_128_xts ()
                                                      : EVP_aes_256_xts ();
  printf ("nbdcrypt engine benchmark: %s, %d x %.1f s CPU time per figure, MB/s "
          "(10^6 bytes/s)\n", cname, reps, seconds);
  printf ("%-6s %-4s %-29s %8s %8s %7s %8s %7s\n", "sector", "op", "method", "MB/s",
          "speedlp", "ratio", "openssl", "vs it");

  for (unsigned ss = 512; ss <= 4096; ss *= 8) {
    for (int enc = 1; enc >= 0; enc--) {
      uint8_t iv[16] = { 0 };
      struct op loop = { .kind = OP_SPEED_LOOP, .enc = enc, .ss = ss, .call = ss };
      double external = no_openssl ? -1 : openssl_speed (cname, enc, ss);

      loop.ctx = EVP_CIPHER_CTX_new ();
      if (!loop.ctx || EVP_CipherInit_ex (loop.ctx, evp, NULL, key, iv, enc) != 1)
        return 1;
      printf ("%-6u %-4s %-29s %8s %8s %7s %8.0f\n", ss, enc ? "enc" : "dec",
              "openssl speed -evp", "", "", "", external);

      for (size_t impl = 0; impl < sizeof impls / sizeof impls[0]; impl++) {
        static const size_t calls[] = { 0, 64 * 1024, MAXCALL };
        struct op op = { .kind = OP_ENGINE, .enc = enc, .ss = ss };
        bool dflt;
        int r;

        if (ncr_xts_new (c, key, ncr_cipher_key_len (c), ss, &op.x) < 0) {
          fprintf (stderr, "engine-bench: %s\n", ncr_last_error ());
          return 1;
        }
        dflt = strcmp (ncr_xts_impl (op.x), impls[impl]) == 0;
        ncr_xts_free (op.x);
        r = ncr_xts_new_impl (c, key, ncr_cipher_key_len (c), ss, impls[impl], &op.x);
        if (r == -ENOTSUP)
          continue;             /* not available on this CPU / OpenSSL */
        if (r < 0) {
          fprintf (stderr, "engine-bench: %s\n", ncr_last_error ());
          return 1;
        }
        for (size_t k = 0; k < 3; k++) {
          char method[64];

          op.call = calls[k] ? calls[k] : ss;
          if (op.call == ss)
            snprintf (method, sizeof method, "%s%s 1 sector/call", dflt ? "*" : " ",
                      impls[impl]);
          else
            snprintf (method, sizeof method, "%s%s %zu KiB/call", dflt ? "*" : " ",
                      impls[impl], op.call / 1024);
          row (ss, enc, method, &op, &loop, external, buf);
        }
        ncr_xts_free (op.x);
      }

      struct op reinit = { .kind = OP_EVP_REINIT, .enc = enc, .ss = ss, .call = 64 * 1024 };
      reinit.ctx = EVP_CIPHER_CTX_new ();
      if (!reinit.ctx || EVP_CipherInit_ex (reinit.ctx, evp, NULL, key, NULL, enc) != 1)
        return 1;
      row (ss, enc, " EVP re-init/sector 64 KiB", &reinit, &loop, external, buf);
      EVP_CIPHER_CTX_free (reinit.ctx);
      EVP_CIPHER_CTX_free (loop.ctx);
    }
  }
  explicit_bzero (key, sizeof key);
  free (buf);
  return 0;
}
