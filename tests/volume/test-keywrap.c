/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: RFC 5649 AES key wrap with padding: the RFC's own test vectors (section 6),
 * a 64-byte XTS key round trip under a 256-bit KEK, and rejection of a wrong KEK / altered data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "keywrap.h"
#include "crypto-internal.h"

#include "check.h"

/* RFC 5649 section 6: "Padded Key Wrap Examples", 192-bit KEK. */
static const struct {
  const char *source, *kek, *key, *wrapped;
} vectors[] = {
  { "RFC 5649 s6, 20-octet key",
    "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
    "c37b7e6492584340bed12207808941155068f738",
    "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a" },
  { "RFC 5649 s6, 7-octet key",
    "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8",
    "466f7250617369",
    "afbeb0f07dfbf5419200f2ccb50bb24f" },
};

/* The RFC's vectors wrap and unwrap to the published bytes; a flipped bit anywhere is
 * rejected by the integrity check. */
static void
test_keywrap_rfc5649_vectors (void)
{
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    uint8_t kek[32], key[64], want[80], got[80], back[80];
    size_t kek_len = check_unhex (vectors[i].kek, kek), key_len = check_unhex (vectors[i].key, key);
    size_t want_len = check_unhex (vectors[i].wrapped, want), got_len = 0, back_len = 0;
    char what[120];

    snprintf (what, sizeof what, "wrap: %s", vectors[i].source);
    CHECK_MSG (keywrap_wrap (kek, kek_len, key, key_len, got, sizeof got, &got_len) == 0,
               "%s", what);
    CHECK_BYTES_EQ (what, got, got_len, want, want_len);
    CHECK_MSG (keywrap_unwrap (kek, kek_len, want, want_len, back, sizeof back, &back_len) == 0 &&
               back_len == key_len && memcmp (back, key, key_len) == 0,
               "unwrap: %s", vectors[i].source);
    for (size_t b = 0; b < want_len; b++) {
      want[b] ^= 0x01;
      CHECK_MSG (keywrap_unwrap (kek, kek_len, want, want_len, back, sizeof back, &back_len) ==
                 -EKEYREJECTED, "%s: altered byte %zu accepted", vectors[i].source, b);
      want[b] ^= 0x01;
    }
  }
}

/* The nbdcrypt case: 64-byte DEK under a 256-bit KEK -> 72 bytes; wrong KEK rejected; the
 * locked provider-context path gives the same bytes; bad sizes refused. */
static void
test_keywrap_xts_dek (void)
{
  uint8_t kek[32], kek2[32], dek[64], w[72], back[72];
  size_t wl = 0, bl = 0;

  for (int i = 0; i < 32; i++) { kek[i] = (uint8_t) i; kek2[i] = (uint8_t) (i + 1); }
  for (int i = 0; i < 64; i++) dek[i] = (uint8_t) (0xa0 ^ i);
  CHECK_MSG (keywrap_wrap (kek, 32, dek, 64, w, sizeof w, &wl) == 0 && wl == 72 &&
             keywrap_wrapped_len (64) == 72, "64-byte wrap length %zu", wl);
  CHECK_MSG (keywrap_unwrap (kek, 32, w, wl, back, sizeof back, &bl) == 0 && bl == 64 &&
             memcmp (back, dek, 64) == 0, "64-byte round trip");
  CHECK_MSG (keywrap_unwrap (kek2, 32, w, wl, back, sizeof back, &bl) == -EKEYREJECTED,
             "wrong KEK accepted");
  /* keywrap_* must run through the locked provider-context path (backend-openssl.c) wherever
   * OpenSSL's default provider is in use, as here; the EVP fallback is for other setups.
   * Unwrap into an exact-size buffer (the provider itself wants in_len bytes of room). */
  {
    uint8_t w2[72], b2[64];
    size_t wl2 = 0, bl2 = 0;
    int r1 = crypto_aes_wrap_pad_locked (1, kek, 32, dek, 64, w2, sizeof w2, &wl2);
    int r2 = crypto_aes_wrap_pad_locked (0, kek, 32, w2, wl2, b2, sizeof b2, &bl2);
    CHECK_MSG (r1 == 0 && wl2 == 72 && memcmp (w2, w, 72) == 0 && r2 == 0 && bl2 == 64 &&
               memcmp (b2, dek, 64) == 0 &&
               crypto_aes_wrap_pad_locked (0, kek2, 32, w2, wl2, b2, sizeof b2, &bl2)
                 == -EKEYREJECTED,
               "locked-context key wrap (%d, %d)", r1, r2);
  }
  CHECK_MSG (keywrap_unwrap (kek, 32, w, 71, back, sizeof back, &bl) == -EINVAL &&
             keywrap_unwrap (kek, 17, w, 72, back, sizeof back, &bl) < 0 &&
             keywrap_wrap (kek, 32, dek, 64, w, 71, &wl) == -EINVAL, "bad sizes accepted");
}

int
main (void)
{
  RUN (test_keywrap_rfc5649_vectors);
  RUN (test_keywrap_xts_dek);
  return check_exit ();
}
