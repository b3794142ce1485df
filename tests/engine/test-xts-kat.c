/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: known-answer tests of the XTS engine (lib/crypto/xts.c), every implementation.
 *
 * Source of the vectors: NIST CAVS 11.0 "XTSGenAES128.rsp" and "XTSGenAES256.rsp", the
 * data-unit-sequence-number variant (tweak = DataUnitSeqNumber as a 128-bit little-endian
 * integer, exactly dm-crypt's plain64 IV), as shipped by Debian's python3-cryptography-vectors
 * in cryptography_vectors/ciphers/AES/XTS/tweak-dataunitseqno/. Every vector whose data unit
 * is a whole number of 16-byte blocks (128, 256 and 384 bits: 600 of each file's 1000
 * vectors, [ENCRYPT] and [DECRYPT] sections) is run both ways and in place; the others need ciphertext stealing, which sectors never do.
 *
 * A second table checks the multi-sector path at the real sector sizes (512 and 4096 bytes,
 * up to 40 sectors per call, sector numbers near 2^32 and 2^64) against OpenSSL's own
 * EVP aes-xts run one sector at a time: an independent implementation of the same mode.
 *
 * Failures print the vector, got and want in hex. Exit 77 if the vector files are missing. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "errors.h"
#include "xts.h"

#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

#define VECDIR "/usr/lib/python3/dist-packages/cryptography_vectors/ciphers/AES/XTS/" \
  "tweak-dataunitseqno"

static size_t
unhex (const char *s, uint8_t *out, size_t max)
{
  size_t n = 0;

  while (s[0] && s[1] && s[0] != '\n' && s[0] != '\r' && n < max) {
    unsigned v;
    if (sscanf (s, "%2x", &v) != 1)
      break;
    out[n++] = v;
    s += 2;
  }
  return n;
}

struct vector {
  char where[160];
  unsigned du_bits;
  uint8_t key[64], pt[64], ct[64];
  size_t key_len, pt_len, ct_len;
  uint64_t seq;
};

/* Every way the engine can compute XTS (ncr_xts_new_impl); those missing here are skipped. */
static const char *const impls[] = { "vaes-xts", "vaes256-xts", "openssl-xts", "ecb-avx512", "ecb-generic" };
#define NIMPLS (sizeof impls / sizeof impls[0])

static void
run_vector (const struct vector *v, const char *impl)
{
  enum ncr_cipher c = v->key_len == 32 ? NCR_CIPHER_AES_128_XTS : NCR_CIPHER_AES_256_XTS;
  struct ncr_xts *x;
  uint8_t buf[64];
  char what[256];
  size_t n = v->du_bits / 8;
  int r;

  if ((r = ncr_xts_new_impl (c, v->key, v->key_len, n, impl, &x)) == -ENOTSUP)
    return;
  if (!CHECK_MSG (r >= 0, "%s: ncr_xts_new_impl", v->where))
    return;

  snprintf (what, sizeof what, "%s [%s] encrypt", v->where, ncr_xts_impl (x));
  memset (buf, 0, sizeof buf);
  if (ncr_xts_encrypt (x, v->seq, v->pt, buf, n) < 0)
    fprintf (stderr, "encrypt: %s\n", ncr_last_error ());
  CHECK_BYTES_EQ (what, buf, n, v->ct, n);

  snprintf (what, sizeof what, "%s [%s] decrypt", v->where, ncr_xts_impl (x));
  memset (buf, 0, sizeof buf);
  if (ncr_xts_decrypt (x, v->seq, v->ct, buf, n) < 0)
    fprintf (stderr, "decrypt: %s\n", ncr_last_error ());
  CHECK_BYTES_EQ (what, buf, n, v->pt, n);

  snprintf (what, sizeof what, "%s [%s] encrypt in place", v->where, ncr_xts_impl (x));
  memcpy (buf, v->pt, n);
  ncr_xts_encrypt (x, v->seq, buf, buf, n);
  CHECK_BYTES_EQ (what, buf, n, v->ct, n);
  ncr_xts_free (x);
}

/* Returns the number of vectors run, -1 if the file is missing. */
static int
run_file (const char *name)
{
  char path[512], line[4096];
  struct vector v;
  unsigned skipped = 0;
  int run = 0;
  FILE *fp;

  snprintf (path, sizeof path, "%s/%s", getenv ("XTS_VECTORS") ?: VECDIR, name);
  fp = fopen (path, "r");
  if (!fp) {
    fprintf (stderr, "%s: %m\n", path);
    return -1;
  }
  memset (&v, 0, sizeof v);
  while (fgets (line, sizeof line, fp)) {
    if (strncmp (line, "COUNT = ", 8) == 0) {
      memset (&v, 0, sizeof v);
      snprintf (v.where, sizeof v.where, "%s COUNT %u", name, (unsigned) atoi (line + 8));
    }
    else if (strncmp (line, "DataUnitLen = ", 14) == 0)
      v.du_bits = atoi (line + 14);
    else if (strncmp (line, "Key = ", 6) == 0)
      v.key_len = unhex (line + 6, v.key, sizeof v.key);
    else if (strncmp (line, "DataUnitSeqNumber = ", 20) == 0)
      v.seq = strtoull (line + 20, NULL, 10);
    else if (strncmp (line, "PT = ", 5) == 0 || strncmp (line, "CT = ", 5) == 0) {
      /* [ENCRYPT] lists PT then CT, [DECRYPT] CT then PT: run once both are read. */
      if (line[0] == 'P')
        v.pt_len = unhex (line + 5, v.pt, sizeof v.pt);
      else
        v.ct_len = unhex (line + 5, v.ct, sizeof v.ct);
      if (v.pt_len == 0 || v.ct_len == 0)
        continue;
      if (v.du_bits % 128 != 0) {
        skipped++;
        continue;
      }
      if (v.pt_len * 8 != v.du_bits || v.ct_len != v.pt_len ||
          (v.key_len != 32 && v.key_len != 64)) {
        FAIL ("%s: cannot parse the vector (du %u key %zu pt %zu ct %zu)",
              v.where, v.du_bits, v.key_len, v.pt_len, v.ct_len);
        continue;
      }
      for (size_t i = 0; i < NIMPLS; i++)
        run_vector (&v, impls[i]);
      run++;
    }
  }
  fclose (fp);
  printf ("%s: %d vectors run (each by every implementation), %u skipped (ciphertext "
          "stealing)\n",
          name, run, skipped);
  return run;
}

/* OpenSSL's EVP aes-xts, one data unit per call: the reference for multi-sector calls. */
static void
evp_xts_sector (const EVP_CIPHER *cipher, const uint8_t *key, uint64_t sector,
                const uint8_t *in, uint8_t *out, size_t n)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();
  uint8_t iv[16] = { 0 };
  int outl;

  for (int i = 0; i < 8; i++)
    iv[i] = sector >> (8 * i);
  if (!ctx || EVP_EncryptInit_ex (ctx, cipher, NULL, key, iv) != 1 ||
      EVP_EncryptUpdate (ctx, out, &outl, in, n) != 1) {
    fprintf (stderr, "OpenSSL EVP aes-xts failed\n");
    exit (1);
  }
  EVP_CIPHER_CTX_free (ctx);
}

static void
multi_sector (enum ncr_cipher c, unsigned ss, unsigned nsect, uint64_t first, const char *impl)
{
  const EVP_CIPHER *cipher = c == NCR_CIPHER_AES_128_XTS ? EVP_aes_128_xts ()
                                                         : EVP_aes_256_xts ();
  size_t n = (size_t) ss * nsect, kl = ncr_cipher_key_len (c);
  uint8_t key[64];
  uint8_t *pt = malloc (n), *want = malloc (n), *got = malloc (n);
  struct ncr_xts *x, *d = NULL;
  char what[200];
  int r;

  if (!pt || !want || !got || RAND_bytes (key, kl) != 1 || RAND_bytes (pt, n) != 1) {
    fprintf (stderr, "setup failed\n");
    exit (1);
  }
  for (unsigned s = 0; s < nsect; s++)
    evp_xts_sector (cipher, key, first + s, pt + (size_t) s * ss, want + (size_t) s * ss, ss);
  if ((r = ncr_xts_new_impl (c, key, kl, ss, impl, &x)) == -ENOTSUP) {
    free (pt);
    free (want);
    free (got);
    return;
  }
  if (r < 0) {
    fprintf (stderr, "ncr_xts_new_impl: %s\n", ncr_last_error ());
    exit (1);
  }
  snprintf (what, sizeof what, "%s %u-byte sectors x%u from %" PRIu64 " [%s] vs EVP",
            ncr_cipher_name (c), ss, nsect, first, ncr_xts_impl (x));
  if (ncr_xts_encrypt (x, first, pt, got, n) < 0)
    fprintf (stderr, "encrypt: %s\n", ncr_last_error ());
  CHECK_BYTES_EQ (what, got, n, want, n);
  /* Decrypt in place with a copy of the context: what each filter thread uses. */
  if (ncr_xts_dup (x, &d) < 0 || ncr_xts_decrypt (d, first, got, got, n) < 0)
    fprintf (stderr, "dup/decrypt: %s\n", ncr_last_error ());
  CHECK_BYTES_EQ (what, got, n, pt, n);
  ncr_xts_free (x);
  ncr_xts_free (d);
  free (pt);
  free (want);
  free (got);
}

/* The engines in this build: the default for 4096-byte sectors and every one available. */
static void
print_implementations (void)
{
  uint8_t k[64];
  struct ncr_xts *x;

  for (int i = 0; i < 64; i++)
    k[i] = i;
  if (ncr_xts_new (NCR_CIPHER_AES_256_XTS, k, 64, 4096, &x) == 0) {
    printf ("default for 4096-byte sectors: %s; available:", ncr_xts_impl (x));
    ncr_xts_free (x);
    for (size_t i = 0; i < NIMPLS; i++)
      if (ncr_xts_new_impl (NCR_CIPHER_AES_256_XTS, k, 64, 4096, impls[i], &x) == 0) {
        printf (" %s", impls[i]);
        ncr_xts_free (x);
      }
    printf ("\n");
  }
}

/* NIST CAVS XTSGenAES128/256 (the IEEE 1619 data-unit-sequence-number form): 600 usable
 * vectors per file, both ways and in place, by every implementation. */
static void
test_xts_kat_nist_cavs (void)
{
  int a = run_file ("XTSGenAES128.rsp");
  int b = run_file ("XTSGenAES256.rsp");

  if (a < 0 || b < 0)
    SKIP ("NIST XTS vectors not found (install python3-cryptography-vectors)");
  CHECK_MSG (a == 600 && b == 600, "expected 600 usable vectors per file, ran %d and %d", a, b);
}

/* Many sectors per call at 512 and 4096 bytes, sector numbers near 2^32 and 2^64: equal to
 * OpenSSL's EVP aes-xts one sector at a time, and decrypted in place by a copy. */
static void
test_xts_multi_sector_vs_evp (void)
{
  static const unsigned counts[] = { 1, 2, 3, 17, 40 };
  static const uint64_t firsts[] = { 0, 1, 0xfffffff0, UINT64_MAX - 50 };

  for (size_t g = 0; g < NIMPLS; g++)
    for (unsigned ss = 512; ss <= 4096; ss *= 8)
      for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        for (size_t f = 0; f < sizeof firsts / sizeof firsts[0]; f++) {
          multi_sector (NCR_CIPHER_AES_256_XTS, ss, counts[i], firsts[f], impls[g]);
          multi_sector (NCR_CIPHER_AES_128_XTS, ss, counts[i], firsts[f], impls[g]);
        }
}

/* Wrong key length, unsupported sector size, equal key halves, partial sector: refused. */
static void
test_xts_bad_inputs (void)
{
  uint8_t key[64], buf[4096] = { 0 };
  struct ncr_xts *x;

  for (int i = 0; i < 64; i++)
    key[i] = i;
  CHECK_MSG (ncr_xts_new (NCR_CIPHER_AES_256_XTS, key, 32, 4096, &x) == -EINVAL,
             "a 32-byte key was accepted for aes-256-xts");
  CHECK_MSG (ncr_xts_new (NCR_CIPHER_AES_256_XTS, key, 64, 1024, &x) == -EINVAL,
             "sector size 1024 was accepted");
  memcpy (key + 32, key, 32);
  CHECK_MSG (ncr_xts_new (NCR_CIPHER_AES_256_XTS, key, 64, 512, &x) == -EINVAL,
             "a key with equal halves was accepted");
  key[63] ^= 1;
  CHECK_MSG (ncr_xts_new (NCR_CIPHER_AES_256_XTS, key, 64, 512, &x) >= 0 &&
             ncr_xts_encrypt (x, 0, buf, buf, 100) == -EINVAL,
             "a partial sector was accepted");
  ncr_xts_free (x);
}

int
main (void)
{
  print_implementations ();
  RUN (test_xts_kat_nist_cavs);         /* first: exits 77 without the vector files */
  RUN (test_xts_multi_sector_vs_evp);
  RUN (test_xts_bad_inputs);
  return check_exit ();
}
