/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: the prefetched-key cache (lib/keys/keycache.c): KEKs by id and DEKs by (KEK
 * id, wrapped bytes), the newest of equal keys kept, a dropped KEK takes its DEKs along and
 * its slot is wiped, thousands of keys in a few locked pages whose slots are reused. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "keycache.h"

#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

static const uint8_t kek_a[32] = { 1, 2, 3 }, kek_b[32] = { 4, 5, 6 };
static const uint8_t dek_1[64] = { 7 }, dek_2[64] = { 8 }, wrapped_1[] = { 0xa1, 0xa2 },
  wrapped_2[] = { 0xb1, 0xb2, 0xb3 };

static bool
all_zero (const uint8_t *p, size_t n)
{
  uint8_t acc = 0;

  for (size_t i = 0; i < n; i++)
    acc |= p[i];
  return acc == 0;
}

static void
test_kek_and_deks_by_key (void)
{
  struct keycache kc = KEYCACHE_INIT;
  const struct keycache_entry *e;

  REQUIRE (keycache_put (&kc, "a", NULL, 0, kek_a, 32) == 0);
  REQUIRE (keycache_put (&kc, "a", wrapped_1, sizeof wrapped_1, dek_1, 64) == 0);
  REQUIRE (keycache_put (&kc, "b", wrapped_2, sizeof wrapped_2, dek_2, 64) == 0);
  e = keycache_find (&kc, "a", NULL, 0);
  if (CHECK (e != NULL))
    CHECK_BYTES_EQ ("KEK a", e->secret, e->len, kek_a, 32);
  e = keycache_find (&kc, "a", wrapped_1, sizeof wrapped_1);
  if (CHECK (e != NULL))
    CHECK_BYTES_EQ ("DEK under a", e->secret, e->len, dek_1, 64);
  e = keycache_find (&kc, "b", wrapped_2, sizeof wrapped_2);
  if (CHECK (e != NULL))
    CHECK_BYTES_EQ ("DEK under b", e->secret, e->len, dek_2, 64);
  /* The key is the whole triple: another KEK, other bytes, a prefix are all misses. */
  CHECK (keycache_find (&kc, "b", NULL, 0) == NULL);
  CHECK (keycache_find (&kc, "b", wrapped_1, sizeof wrapped_1) == NULL);
  CHECK (keycache_find (&kc, "a", wrapped_1, 1) == NULL);
  CHECK (keycache_find (&kc, "c", NULL, 0) == NULL);
  keycache_clear (&kc);
  CHECK (keycache_find (&kc, "a", NULL, 0) == NULL);
}

static void
test_newest_wins (void)
{
  struct keycache kc = KEYCACHE_INIT;
  const struct keycache_entry *e;

  REQUIRE (keycache_put (&kc, "a", NULL, 0, kek_a, 32) == 0);
  REQUIRE (keycache_find (&kc, "a", NULL, 0) != NULL);
  REQUIRE (keycache_put (&kc, "a", NULL, 0, kek_b, 32) == 0);
  e = keycache_find (&kc, "a", NULL, 0);
  if (CHECK (e != NULL))
    CHECK_BYTES_EQ ("replaced KEK", e->secret, e->len, kek_b, 32);
  CHECK_INT_EQ (kc.n, 1);
  keycache_clear (&kc);
}

static void
test_drop_kek_wipes (void)
{
  struct keycache kc = KEYCACHE_INIT;
  const struct keycache_entry *e;
  uint8_t *kek_slot, *dek_slot;

  REQUIRE (keycache_put (&kc, "a", NULL, 0, kek_a, 32) == 0);
  REQUIRE (keycache_put (&kc, "a", wrapped_1, sizeof wrapped_1, dek_1, 64) == 0);
  REQUIRE (keycache_put (&kc, "b", NULL, 0, kek_b, 32) == 0);
  kek_slot = keycache_find (&kc, "a", NULL, 0)->secret;
  dek_slot = keycache_find (&kc, "a", wrapped_1, sizeof wrapped_1)->secret;
  keycache_drop_kek (&kc, "a");
  CHECK (keycache_find (&kc, "a", NULL, 0) == NULL);
  CHECK (keycache_find (&kc, "a", wrapped_1, sizeof wrapped_1) == NULL);
  e = keycache_find (&kc, "b", NULL, 0);
  if (CHECK (e != NULL))
    CHECK_BYTES_EQ ("KEK b kept", e->secret, e->len, kek_b, 32);
  /* The slots stay mapped (their page holds b) and hold zeros. */
  CHECK (all_zero (kek_slot, KEYCACHE_SECRET_MAX));
  CHECK (all_zero (dek_slot, KEYCACHE_SECRET_MAX));
  keycache_clear (&kc);
}

static void
test_many_keys_few_pages (void)
{
  struct keycache kc = KEYCACHE_INIT;
  size_t per_page = (size_t) sysconf (_SC_PAGESIZE) / KEYCACHE_SECRET_MAX, slabs;
  char id[32];
  uint8_t key[32];

  for (unsigned i = 0; i < 3000; i++) {
    snprintf (id, sizeof id, "kek-%u", i);
    memset (key, 0, sizeof key);
    memcpy (key, &i, sizeof i);
    REQUIRE (keycache_put (&kc, id, NULL, 0, key, sizeof key) == 0);
  }
  CHECK_INT_EQ (kc.nslabs, (3000 + per_page - 1) / per_page);
  for (unsigned i = 0; i < 3000; i += 7) {
    const struct keycache_entry *e;
    snprintf (id, sizeof id, "kek-%u", i);
    memset (key, 0, sizeof key);
    memcpy (key, &i, sizeof i);
    e = keycache_find (&kc, id, NULL, 0);
    if (CHECK_MSG (e != NULL, "%s", id))
      CHECK_BYTES_EQ (id, e->secret, e->len, key, sizeof key);
  }
  /* Dropped slots are reused: putting as many again takes no new page. */
  slabs = kc.nslabs;
  for (unsigned i = 0; i < 100; i++) {
    snprintf (id, sizeof id, "kek-%u", i);
    keycache_drop_kek (&kc, id);
  }
  for (unsigned i = 0; i < 100; i++) {
    snprintf (id, sizeof id, "new-%u", i);
    REQUIRE (keycache_put (&kc, id, NULL, 0, kek_a, 32) == 0);
  }
  CHECK_INT_EQ (kc.nslabs, slabs);
  CHECK (keycache_find (&kc, "new-99", NULL, 0) != NULL);
  CHECK (keycache_find (&kc, "kek-99", NULL, 0) == NULL);
  keycache_clear (&kc);
  CHECK_INT_EQ (kc.nslabs, 0);
}

static void
test_refusals (void)
{
  struct keycache kc = KEYCACHE_INIT;
  uint8_t big[KEYCACHE_SECRET_MAX + 1] = { 0 };

  CHECK (keycache_put (&kc, "a", NULL, 0, big, sizeof big) < 0);
  CHECK_STR_CONTAINS (ncr_last_error (), "cannot be kept");
  CHECK (keycache_put (&kc, "a", NULL, 0, big, 0) < 0);
  CHECK (keycache_put (&kc, "a", wrapped_1, 0, dek_1, 64) < 0);
  CHECK_INT_EQ (kc.n, 0);
  keycache_clear (&kc);
}

int
main (void)
{
  RUN (test_kek_and_deks_by_key);
  RUN (test_newest_wins);
  RUN (test_drop_kek_wipes);
  RUN (test_many_keys_few_pages);
  RUN (test_refusals);
  return check_exit ();
}
