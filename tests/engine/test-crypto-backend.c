/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: the crypto backend (lib/crypto/backend-openssl.c) against published vectors:
 * SHA-256 (FIPS 180-2 appendix B.1, and the empty message), over one part or split into
 * several; HMAC-SHA256 (RFC 4231 test case 2); AES-128/256 ECB contexts (FIPS 197 appendix
 * C.1/C.3), both directions and a copy; constant-time compare; wipe; random bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "crypto-internal.h"
#include "errors.h"
#include "secmem.h"

#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

static void
test_sha256 (void)
{
  static const char abc_want[] =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  static const char empty_want[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  uint8_t want[CRYPTO_SHA256_LEN], got[CRYPTO_SHA256_LEN];
  struct iovec one[] = { { (void *) "abc", 3 } };
  struct iovec split[] = { { (void *) "a", 1 }, { (void *) "", 0 }, { (void *) "bc", 2 } };

  check_unhex (abc_want, want);
  CHECK_MSG (crypto_sha256 (one, 1, got) == 0 && memcmp (got, want, sizeof want) == 0,
         "SHA-256(\"abc\")");
  memset (got, 0, sizeof got);
  CHECK_MSG (crypto_sha256 (split, 3, got) == 0 && memcmp (got, want, sizeof want) == 0,
         "SHA-256 of \"abc\" in three parts");
  check_unhex (empty_want, want);
  CHECK_MSG (crypto_sha256 (NULL, 0, got) == 0 && memcmp (got, want, sizeof want) == 0,
         "SHA-256 of the empty message");
}

static void
test_hmac_sha256 (void)
{
  static const char want_hex[] =
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
  static const char msg[] = "what do ya want for nothing?";
  uint8_t want[CRYPTO_SHA256_LEN], got[CRYPTO_SHA256_LEN];

  check_unhex (want_hex, want);
  CHECK_MSG (crypto_hmac_sha256 ((const uint8_t *) "Jefe", 4, msg, sizeof msg - 1, got) == 0 &&
         memcmp (got, want, sizeof want) == 0, "HMAC-SHA256 (RFC 4231 case 2)");
}

/* One FIPS 197 vector through encrypt, decrypt and copied contexts. */
static void
test_aes_ecb (const char *name, const char *key_hex, const char *ct_hex)
{
  uint8_t key[32], pt[16], ct[16], buf[16];
  size_t key_len = check_unhex (key_hex, key);
  struct crypto_aes *e = NULL, *d = NULL, *e2 = NULL;
  int r;

  check_unhex ("00112233445566778899aabbccddeeff", pt);
  check_unhex (ct_hex, ct);
  r = crypto_aes_new (CRYPTO_AES_ECB, 1, key, key_len, &e);
  if (r == -ENOTSUP) {
    printf ("%s: OpenSSL's provider contexts cannot be locked here: not checked\n", name);
    return;
  }
  CHECK_MSG (r == 0, "%s: encrypt context: %s", name, ncr_last_error ());
  CHECK_MSG (crypto_aes_new (CRYPTO_AES_ECB, 0, key, key_len, &d) == 0,
         "%s: decrypt context: %s", name, ncr_last_error ());
  if (!e || !d)
    goto out;
  memcpy (buf, pt, 16);
  CHECK_MSG (crypto_aes_ecb (e, buf, 16) == 0 && memcmp (buf, ct, 16) == 0, "%s encrypt", name);
  CHECK_MSG (crypto_aes_ecb (d, buf, 16) == 0 && memcmp (buf, pt, 16) == 0, "%s decrypt", name);
  CHECK_MSG (crypto_aes_dup (e, &e2) == 0, "%s: copy: %s", name, ncr_last_error ());
  if (e2) {
    CHECK_MSG (crypto_aes_ecb (e2, buf, 16) == 0 && memcmp (buf, ct, 16) == 0,
           "%s encrypt by a copy", name);
  }
  CHECK_MSG (crypto_aes_new (CRYPTO_AES_ECB, 1, key, 24, &e2) == -EINVAL,
         "%s: a 24-byte ECB key is refused", name);
 out:
  crypto_aes_free (e);
  crypto_aes_free (d);
  crypto_aes_free (e2);
}

static void
test_compare_wipe_random (void)
{
  uint8_t a[32], b[32], zero[32] = { 0 };

  memset (a, 0x5a, sizeof a);
  memcpy (b, a, sizeof b);
  CHECK_MSG (crypto_ct_memcmp (a, b, sizeof a) == 0, "equal buffers compare equal");
  b[31] ^= 1;
  CHECK_MSG (crypto_ct_memcmp (a, b, sizeof a) != 0, "a difference in the last byte is seen");
  CHECK_MSG (crypto_ct_memcmp (a, b, 0) == 0, "zero bytes compare equal");
  crypto_wipe (a, sizeof a);
  CHECK_MSG (memcmp (a, zero, sizeof a) == 0, "wipe zeroes");

  /* 256 random bits that are all zero, or twice the same, mean the generator is broken. */
  CHECK_MSG (crypto_random_bytes (a, sizeof a) == 0 && crypto_random_bytes (b, sizeof b) == 0 &&
         memcmp (a, zero, 32) != 0 && memcmp (a, b, 32) != 0, "random bytes");
  CHECK_MSG (crypto_random_key (a, sizeof a) == 0 && crypto_random_key (b, sizeof b) == 0 &&
         memcmp (a, zero, 32) != 0 && memcmp (a, b, 32) != 0, "random key bytes");
}

/* The process's locked memory in KiB (VmLck), or -1. */
static long
vmlck_kib (void)
{
  char line[256];
  long v = -1;
  FILE *f = fopen ("/proc/self/status", "r");

  while (f && fgets (line, sizeof line, f))
    if (sscanf (line, "VmLck: %ld kB", &v) == 1)
      break;
  if (f)
    fclose (f);
  return v;
}

/* Locked memory follows the contexts alive: a server makes and frees an engine copy per
 * thread as connections come and go, so pages locked for freed contexts must be unlocked, or
 * locked memory grows until RLIMIT_MEMLOCK is hit and requests fail with ENOMEM. */
static void
test_locked_pages_follow_contexts (void)
{
  uint8_t key[64];
  struct crypto_aes *a = NULL, *c[64] = { NULL };
  size_t base;
  long lck0, lck1;

  memset (key, 0x3c, 32);
  memset (key + 32, 0xa5, 32);
  if (crypto_aes_new (CRYPTO_AES_XTS, 1, key, 64, &a) == -ENOTSUP) {
    printf ("OpenSSL's provider contexts cannot be locked here: not checked\n");
    return;
  }
  CHECK_MSG (a != NULL, "an XTS context: %s", ncr_last_error ());
  if (a == NULL)
    return;
  base = secmem_locked_region_pages ();
  lck0 = vmlck_kib ();
  for (int round = 0; round < 50; round++) {
    for (size_t i = 0; i < 64; i++)
      CHECK_MSG (crypto_aes_dup (a, &c[i]) == 0, "copy %zu: %s", i, ncr_last_error ());
    CHECK_MSG (secmem_locked_region_pages () > base, "the copies' pages are locked");
    for (size_t i = 0; i < 64; i++) {
      crypto_aes_free (c[i]);
      c[i] = NULL;
    }
  }
  lck1 = vmlck_kib ();
  CHECK_MSG (secmem_locked_region_pages () == base,
             "after 3200 copies made and freed, %zu pages stay locked (%zu before)",
             secmem_locked_region_pages (), base);
  CHECK_MSG (lck0 < 0 || lck1 <= lck0, "VmLck %ld kB after the copies, %ld kB before",
             lck1, lck0);
  crypto_aes_free (a);

  /* Two regions on one page: the page stays locked until the second goes. */
  static uint8_t two[2][64] __attribute__ ((aligned (4096)));
  base = secmem_locked_region_pages ();
  CHECK (secmem_lock_region (two[0], 64) == 0 && secmem_lock_region (two[1], 64) == 0);
  CHECK (secmem_locked_region_pages () == base + 1);
  secmem_unlock_region (two[0], 64);
  CHECK_MSG (secmem_locked_region_pages () == base + 1, "a page with a live region stays locked");
  secmem_unlock_region (two[1], 64);
  CHECK_MSG (secmem_locked_region_pages () == base, "the last region unlocks its page");
}

/* FIPS 197 appendix C.1 and C.3. */
static void
test_aes_ecb_fips197 (void)
{
  test_aes_ecb ("AES-128", "000102030405060708090a0b0c0d0e0f",
                "69c4e0d86a7b0430d8cdb78070b4c55a");
  test_aes_ecb ("AES-256", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "8ea2b7ca516745bfeafc49904b496089");
}

int
main (void)
{
  RUN (test_sha256);
  RUN (test_hmac_sha256);
  RUN (test_aes_ecb_fips197);
  RUN (test_compare_wipe_random);
  RUN (test_locked_pages_follow_contexts);
  return check_exit ();
}
