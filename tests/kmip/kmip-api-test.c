/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: drives the kmip-client API against a real server (run by test-kmip-api.sh):
 * connection reuse, batched Get+State and Create+Activate, a handle shared by threads,
 * reconnection after the server went away, Locate paging, Encrypt/Decrypt, key-buffer sizes.
 * usage: kmip-api-test CONF {basic|threads|reconnect}   ("reconnect" waits for a line on
 * stdin between its two halves, during which the caller restarts or stops the server) */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmip/kmip.h"

#define CHECK(expr)                                                          \
  do {                                                                       \
    if (!(expr)) {                                                           \
      fprintf (stderr, "%s:%d: FAIL: %s (last error: %s)\n", __FILE__, __LINE__, \
               #expr, kmip_last_error ());                                   \
      exit (1);                                                              \
    }                                                                        \
  } while (0)

static struct kmip_client *
open_client (const char *conf)
{
  struct kmip_config *cfg;
  struct kmip_client *c;

  CHECK (kmip_config_load (conf, &cfg) == 0);
  CHECK (kmip_client_new (cfg, &c) == 0);
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
    CHECK (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, k, sizeof k) == 32);
    CHECK (memcmp (k, key0, 32) == 0);
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

  CHECK (kmip_create_aes (c, &p, uid) == 0);
  CHECK (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, key0, sizeof key0) == 32);
  /* One connection, reused by every call. */
  for (int i = 0; i < 20; i++) {
    CHECK (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, k, sizeof k) == 32);
    CHECK (memcmp (k, key0, 32) == 0);
  }
  CHECK (kmip_client_connections (c) == 1);
  /* Get and GetAttributes(State) batched in one message. */
  memset (k, 0, sizeof k);
  CHECK (kmip_get_key_state (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, k, sizeof k, &state) == 32);
  CHECK (memcmp (k, key0, 32) == 0 && state == KMIP_STATE_ACTIVE);
  /* A buffer too small is refused, not overrun. */
  CHECK (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, small, sizeof small) == -ENOBUFS);
  /* Failures carry the server's result. */
  CHECK (kmip_get_key (c, "no-such-object", 0, k, sizeof k) == KMIP_E_RESULT);
  CHECK (kmip_last_result ().reason == KMIP_RESULT_REASON_ITEM_NOT_FOUND);
  CHECK (strstr (kmip_last_error (), "Item Not Found") != NULL);
  /* Locate with paging. */
  char page_name[64];
  snprintf (page_name, sizeof page_name, "api-page-%x", kmip_client_version (c));
  for (int i = 0; i < 3; i++) {
    char u[KMIP_UID_MAX];
    struct kmip_create_params q = { .name = page_name };
    CHECK (kmip_create_aes (c, &q, u) == 0);
  }
  struct kmip_locate_params lp = { .name = page_name };
  CHECK ((n = kmip_locate (c, &lp, &uids)) == 3);
  kmip_strv_free (uids);
  lp.max_items = 2;
  CHECK ((n = kmip_locate (c, &lp, &uids)) == 2);
  kmip_strv_free (uids);
  /* Server-side wrap of a data key (KMIP >= 1.2). */
  if (kmip_client_version (c) >= KMIP_V (1, 2)) {
    uint8_t iv[16] = { 1, 2, 3 };
    CHECK (kmip_encrypt (c, uid, KMIP_BLOCK_CIPHER_MODE_CBC, iv, 16, key0, 32, &ct, &ct_len)
           == 0);
    CHECK (ct_len == 48);
    CHECK (kmip_decrypt (c, uid, KMIP_BLOCK_CIPHER_MODE_CBC, iv, 16, ct, ct_len, &pt, &pt_len)
           == 0);
    CHECK (pt_len == 32 && memcmp (pt, key0, 32) == 0);
    free (ct);
    explicit_bzero (pt, pt_len);
    free (pt);
  }
  CHECK (kmip_client_connections (c) == 1);
  printf ("basic: ok at %d.%d, %u connection(s)\n", KMIP_V_MAJOR (kmip_client_version (c)),
          KMIP_V_MINOR (kmip_client_version (c)), kmip_client_connections (c));
}

int
main (int argc, char **argv)
{
  struct kmip_client *c;

  if (argc != 3) {
    fprintf (stderr, "usage: %s CONF basic|threads|reconnect\n", argv[0]);
    return 2;
  }
  c = open_client (argv[1]);
  if (strcmp (argv[2], "basic") == 0)
    basic (c);
  else if (strcmp (argv[2], "threads") == 0) {
    pthread_t t[4];
    struct kmip_create_params p = { .activate = true };
    CHECK (kmip_create_aes (c, &p, uid) == 0);
    CHECK (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, key0, 32) == 32);
    for (int i = 0; i < 4; i++)
      CHECK (pthread_create (&t[i], NULL, fetch_loop, c) == 0);
    for (int i = 0; i < 4; i++)
      pthread_join (t[i], NULL);
    CHECK (kmip_client_connections (c) == 1);
    printf ("threads: 40 fetches by 4 threads on one handle, 1 connection\n");
  }
  else if (strcmp (argv[2], "reconnect") == 0) {
    char line[16];
    struct kmip_create_params p = { .activate = true };
    CHECK (kmip_create_aes (c, &p, uid) == 0);
    CHECK (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, key0, 32) == 32);
    printf ("ready, connected to %s\n", kmip_client_server (c));
    fflush (stdout);
    CHECK (fgets (line, sizeof line, stdin) != NULL);   /* the server restarts meanwhile */
    uint8_t k[32];
    CHECK (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, k, 32) == 32);
    CHECK (memcmp (k, key0, 32) == 0);
    CHECK (kmip_client_connections (c) == 2);
    printf ("reconnect: ok, %u connections, now connected to %s\n",
            kmip_client_connections (c), kmip_client_server (c));
  }
  else
    return 2;
  kmip_client_free (c);
  return 0;
}
