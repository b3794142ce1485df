/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: drives the kmip-client API against a real server (run by test-kmip-api.sh):
 * connection reuse, batched Get+State and Create+Activate, a handle shared by threads,
 * reconnection after the server went away, Locate paging, Encrypt/Decrypt, key-buffer sizes.
 * Create+Activate+Get through the ID placeholder (request counts). kmip_batch: many Gets in
 * few messages, a failed item alone, against a server that stops at failures (fake).
 * usage: kmip-api-test CONF {basic|placeholder|[stale-]placeholder-fake|threads|batch|
 *                            batch-stop-fake|reconnect}   ("reconnect" waits for a line on
 * stdin between its two halves, during which the caller restarts or stops the server) */
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kmip/kmip.h"

/* Every check is a REQUIRE: each step needs the server state the previous ones made. */
#define CHECK_LAST_ERROR kmip_last_error
#include "check.h"

static struct kmip_client *
open_client (const char *conf)
{
  struct kmip_config *cfg;
  struct kmip_client *c;

  REQUIRE (kmip_config_load (conf, &cfg) == 0);
  REQUIRE (kmip_client_new (cfg, &c) == 0);
  kmip_config_free (cfg);
  return c;
}

static char uid[KMIP_UID_MAX];
static uint8_t key0[32];

static void *
fetch_loop (void *cv)
{
  struct kmip_client *c = cv;
  uint8_t k[32];

  for (int i = 0; i < 10; i++) {
    REQUIRE (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, k, sizeof k) == 32);
    REQUIRE (memcmp (k, key0, 32) == 0);
  }
  explicit_bzero (k, sizeof k);
  return NULL;
}

static void
basic (struct kmip_client *c)
{
  struct kmip_create_params p = { .name = "api-test", .activate = true };
  uint8_t k[32], small[16], *ct, *pt;
  size_t ct_len, pt_len;
  uint32_t state;
  char **uids;
  int n;

  /* pykmip-server refuses Create + Activate-without-identifier as a whole: Create, then
   * Activate (3 requests with the refused one; the version is pinned, no DiscoverVersions).
   * The handle remembers, and the next time asks in 2. */
  REQUIRE (kmip_create_aes (c, &p, uid) == 0);
  REQUIRE (kmip_client_requests (c) == 3);
  {
    char u[KMIP_UID_MAX];
    REQUIRE (kmip_create_aes (c, &p, u) == 0 && kmip_client_requests (c) == 5);
  }
  REQUIRE (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, key0, sizeof key0) == 32);
  /* One connection, reused by every call. */
  for (int i = 0; i < 20; i++) {
    REQUIRE (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, k, sizeof k) == 32);
    REQUIRE (memcmp (k, key0, 32) == 0);
  }
  REQUIRE (kmip_client_connections (c) == 1);
  /* Get and GetAttributes(State) batched in one message. */
  memset (k, 0, sizeof k);
  REQUIRE (kmip_get_key_state (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, k, sizeof k, &state) == 32);
  REQUIRE (memcmp (k, key0, 32) == 0 && state == KMIP_STATE_ACTIVE);
  /* A buffer too small is refused, not overrun. */
  REQUIRE (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, small, sizeof small) == -ENOBUFS);
  /* Failures carry the server's result. */
  REQUIRE (kmip_get_key (c, "no-such-object", 0, k, sizeof k) == KMIP_E_RESULT);
  REQUIRE (kmip_last_result ().reason == KMIP_RESULT_REASON_ITEM_NOT_FOUND);
  REQUIRE (strstr (kmip_last_error (), "Item Not Found") != NULL);
  /* Locate with paging. */
  char page_name[64];
  snprintf (page_name, sizeof page_name, "api-page-%x", kmip_client_version (c));
  for (int i = 0; i < 3; i++) {
    char u[KMIP_UID_MAX];
    struct kmip_create_params q = { .name = page_name };
    REQUIRE (kmip_create_aes (c, &q, u) == 0);
  }
  struct kmip_locate_params lp = { .name = page_name };
  REQUIRE ((n = kmip_locate (c, &lp, &uids)) == 3);
  kmip_strv_free (uids);
  lp.max_items = 2;
  REQUIRE ((n = kmip_locate (c, &lp, &uids)) == 2);
  kmip_strv_free (uids);
  /* Server-side wrap of a data key (KMIP >= 1.2). */
  if (kmip_client_version (c) >= KMIP_V (1, 2)) {
    uint8_t iv[16] = { 1, 2, 3 };
    REQUIRE (kmip_encrypt (c, uid, KMIP_BLOCK_CIPHER_MODE_CBC, iv, 16, key0, 32, &ct, &ct_len)
           == 0);
    REQUIRE (ct_len == 48);
    REQUIRE (kmip_decrypt (c, uid, KMIP_BLOCK_CIPHER_MODE_CBC, iv, 16, ct, ct_len, &pt, &pt_len)
           == 0);
    REQUIRE (pt_len == 32 && memcmp (pt, key0, 32) == 0);
    free (ct);
    explicit_bzero (pt, pt_len);
    free (pt);
  }
  REQUIRE (kmip_client_connections (c) == 1);
  printf ("basic: ok at %d.%d, %u connection(s)\n", KMIP_V_MAJOR (kmip_client_version (c)),
          KMIP_V_MINOR (kmip_client_version (c)), kmip_client_connections (c));
}

/* The ID placeholder against pykmip-server 0.10, on a fresh handle: it refuses an Activate
 * without identifier (its payload parser needs one) but takes Get without one. */
static void
placeholder (struct kmip_client *c)
{
  char name[64], u[KMIP_UID_MAX], u2[KMIP_UID_MAX], **uids;
  uint8_t k[32], k2[32];
  uint32_t state;
  unsigned n0;

  snprintf (name, sizeof name, "ph-%ld", (long) getpid ());
  /* First Create + Activate + Get: refused as a whole (nothing created), then Create + Get
   * in one message, then Activate: 3 requests. */
  n0 = kmip_client_requests (c);
  REQUIRE (kmip_create_aes_get (c, &(struct kmip_create_params) { .name = name, .activate = true },
                              u, k, sizeof k) == 32);
  REQUIRE (kmip_client_requests (c) == n0 + 3);
  REQUIRE (kmip_locate (c, &(struct kmip_locate_params) { .name = name }, &uids) == 1);
  REQUIRE (strcmp (uids[0], u) == 0);             /* the refused message left no key behind */
  kmip_strv_free (uids);
  REQUIRE (kmip_get_key_state (c, u, KMIP_KEY_FORMAT_TYPE_RAW, k2, sizeof k2, &state) == 32);
  REQUIRE (memcmp (k, k2, 32) == 0 && state == KMIP_STATE_ACTIVE);
  /* The handle remembers: Create + Get, Activate: 2 requests. */
  n0 = kmip_client_requests (c);
  REQUIRE (kmip_create_aes_get (c, &(struct kmip_create_params) { .activate = true }, u2, k, 32)
         == 32);
  REQUIRE (kmip_client_requests (c) == n0 + 2 && strcmp (u, u2) != 0);
  REQUIRE (kmip_get_key_state (c, u2, KMIP_KEY_FORMAT_TYPE_RAW, k2, sizeof k2, &state) == 32);
  REQUIRE (memcmp (k, k2, 32) == 0 && state == KMIP_STATE_ACTIVE);
  /* Without activation: Create + Get in one message. */
  n0 = kmip_client_requests (c);
  REQUIRE (kmip_create_aes_get (c, &(struct kmip_create_params) { .length_bits = 128 }, u, k, 32)
         == 16);
  REQUIRE (kmip_client_requests (c) == n0 + 1);
  REQUIRE (kmip_get_key_state (c, u, KMIP_KEY_FORMAT_TYPE_RAW, k2, sizeof k2, &state) == 16);
  REQUIRE (memcmp (k, k2, 16) == 0 && state == KMIP_STATE_PRE_ACTIVE);
  /* A buffer too small: the key is created, its identifier given back, nothing copied. */
  REQUIRE (kmip_create_aes_get (c, &(struct kmip_create_params) { 0 }, u, k, 16) == -ENOBUFS);
  REQUIRE (u[0] != '\0');
  REQUIRE (kmip_client_connections (c) == 1);
  printf ("placeholder: ok at %d.%d: Create+Activate+Get refused once, then Create+Get in one "
          "message\n", KMIP_V_MAJOR (kmip_client_version (c)),
          KMIP_V_MINOR (kmip_client_version (c)));
  explicit_bzero (k, sizeof k);
  explicit_bzero (k2, sizeof k2);
}

/* Against the fake "placeholder" server (pinned 1.4), which honours the ID placeholder in
 * every operation: Create + Activate + Get in one message. Against "stale-placeholder", whose
 * Get answers for another object: refused. */
static void
placeholder_fake (struct kmip_client *c, bool stale)
{
  char u[KMIP_UID_MAX];
  uint8_t k[32], want[32];
  int r;

  for (int i = 0; i < 32; i++)
    want[i] = (uint8_t) i;
  r = kmip_create_aes_get (c, &(struct kmip_create_params) { .activate = true }, u, k, 32);
  if (stale) {
    REQUIRE (r == KMIP_E_DECODE && strcmp (u, "ph-1") == 0);
    REQUIRE (strstr (kmip_last_error (), "did not return the key just created (ph-1)") != NULL);
    printf ("stale placeholder: refused: %s\n", kmip_last_error ());
    return;
  }
  REQUIRE (r == 32 && memcmp (k, want, 32) == 0 && strcmp (u, "ph-1") == 0);
  REQUIRE (kmip_client_requests (c) == 1);
  REQUIRE (kmip_create_aes (c, &(struct kmip_create_params) { .activate = true }, u) == 0);
  REQUIRE (kmip_client_requests (c) == 2 && strcmp (u, "ph-2") == 0);
  printf ("placeholder server: Create+Activate+Get in 1 message, Create+Activate in 1\n");
}

static void
placeholder_fake_fresh (struct kmip_client *c)
{
  placeholder_fake (c, false);
}

static void
placeholder_fake_stale (struct kmip_client *c)
{
  placeholder_fake (c, true);
}

/* kmip_batch of n Gets: uid i is "missing-i" if i is in missing[], else "k<i>". Checks
 * every item's result and key; returns the requests it took. */
static unsigned
batch_gets (struct kmip_client *c, const char *const *uids, size_t n)
{
  struct kmip_batch_item *it = calloc (n, sizeof *it);
  uint8_t (*keys)[32] = calloc (n, 32);
  unsigned before = kmip_client_requests (c);

  REQUIRE (it && keys);
  for (size_t i = 0; i < n; i++)
    it[i] = (struct kmip_batch_item) { .op = KMIP_OPERATION_GET, .uid = uids[i],
                                       .key_format = KMIP_KEY_FORMAT_TYPE_RAW,
                                       .out = keys[i], .out_size = 32 };
  REQUIRE (kmip_batch (c, it, n) == 0);
  for (size_t i = 0; i < n; i++) {
    if (strncmp (uids[i], "missing", 7) == 0 || strcmp (uids[i], "999999") == 0)
      CHECK_MSG (it[i].result == KMIP_E_RESULT &&
                 it[i].status.reason == KMIP_RESULT_REASON_ITEM_NOT_FOUND,
                 "item %zu (%s): result %d, reason %u", i, uids[i], it[i].result,
                 it[i].status.reason);
    else
      CHECK_MSG (it[i].result == 0 && it[i].out_len == 32, "item %zu (%s): result %d", i,
                 uids[i], it[i].result);
  }
  explicit_bzero (keys, n * 32);
  free (keys);
  free (it);
  return kmip_client_requests (c) - before;
}

/* pykmip-server honours "Continue": 70 Gets with a missing object among them in two
 * messages (64 + 6), every present key answered. */
static void
batch (struct kmip_client *c)
{
  struct kmip_create_params p = { .activate = true };
  const char *uids[70];
  char ids[70][KMIP_UID_MAX];
  unsigned used;

  REQUIRE (kmip_create_aes (c, &p, ids[0]) == 0);
  for (size_t i = 0; i < 70; i++) {
    if (i > 0)
      strcpy (ids[i], ids[0]);
    uids[i] = ids[i];
  }
  strcpy (ids[3], "999999");
  used = batch_gets (c, uids, 70);
  CHECK_INT_EQ (used, 2);
  printf ("batch: 70 Gets, one missing, %u requests\n", used);
}

/* A server that stops at a failed item and refuses more than 16 items a message (fake): the
 * batch halves its messages, and sends again what was left unanswered. 40 items: 40 and 20
 * refused as too large, then 10 (answered up to the missing 5th), 10, 10 (up to the missing
 * 30th), 9: 7 requests. */
static void
batch_stop_fake (struct kmip_client *c)
{
  const char *uids[40];
  char ids[40][16];
  unsigned used;

  for (size_t i = 0; i < 40; i++) {
    snprintf (ids[i], sizeof ids[i], i == 5 || i == 30 ? "missing-%zu" : "k%zu", i);
    uids[i] = ids[i];
  }
  used = batch_gets (c, uids, 40);
  CHECK_INT_EQ (used, 7);
  printf ("batch-stop: 40 Gets, %u requests\n", used);
}

/* Four threads fetch through one handle: one connection, every key right. */
static void
threads (struct kmip_client *c)
{
  pthread_t t[4];
  struct kmip_create_params p = { .activate = true };

  REQUIRE (kmip_create_aes (c, &p, uid) == 0);
  REQUIRE (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, key0, 32) == 32);
  for (int i = 0; i < 4; i++)
    REQUIRE (pthread_create (&t[i], NULL, fetch_loop, c) == 0);
  for (int i = 0; i < 4; i++)
    pthread_join (t[i], NULL);
  REQUIRE (kmip_client_connections (c) == 1);
  printf ("threads: 40 fetches by 4 threads on one handle, 1 connection\n");
}

/* The server goes away between two fetches (the caller restarts or stops it while this
 * waits for a line on stdin): the handle connects again. */
static void
reconnect (struct kmip_client *c)
{
  char line[16];
  uint8_t k[32];
  struct kmip_create_params p = { .activate = true };

  REQUIRE (kmip_create_aes (c, &p, uid) == 0);
  REQUIRE (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, key0, 32) == 32);
  printf ("ready, connected to %s\n", kmip_client_server (c));
  fflush (stdout);
  REQUIRE (fgets (line, sizeof line, stdin) != NULL);   /* the server restarts meanwhile */
  REQUIRE (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, k, 32) == 32);
  REQUIRE (memcmp (k, key0, 32) == 0);
  REQUIRE (kmip_client_connections (c) == 2);
  printf ("reconnect: ok, %u connections, now connected to %s\n",
          kmip_client_connections (c), kmip_client_server (c));
}

static const struct {
  const char *mode;
  void (*run) (struct kmip_client *c);
} modes[] = {
  { "basic", basic },
  { "placeholder", placeholder },
  { "placeholder-fake", placeholder_fake_fresh },
  { "stale-placeholder-fake", placeholder_fake_stale },
  { "threads", threads },
  { "batch", batch },
  { "batch-stop-fake", batch_stop_fake },
  { "reconnect", reconnect },
};

int
main (int argc, char **argv)
{
  struct kmip_client *c;

  if (argc != 3) {
    fprintf (stderr, "usage: %s CONF basic|placeholder|threads|reconnect\n", argv[0]);
    return 2;
  }
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
    if (strcmp (argv[2], modes[i].mode) == 0) {
      c = open_client (argv[1]);
      modes[i].run (c);
      kmip_client_free (c);
      return 0;
    }
  return 2;
}
