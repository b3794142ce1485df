/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: one KMIP key provider serving many volumes (run by test-kmip-keyprov-batch.sh
 * against pykmip-server): keyprov_prefetch fetches the KEKs of 100 aes-kwp volumes and the
 * DEKs of kms-wrapped ones in a few batched messages over one connection, then every unwrap
 * answers without a round trip; a revoked or destroyed KEK fails alone; keyprov_kek_state_many
 * checks 100 KEKs in two messages and evicts what it sees revoked; four threads unwrap through
 * one provider at once while a fifth polls states. Prints the message counts it measured.
 * usage: keyprov-batch-test KMS.CONF SCRATCH-DIR */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmip/kmip.h"

#include "errors.h"
#include "keyprov.h"

#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

#define NKWP 100                /* aes-kwp volumes, a KEK each */
#define NKMS 6                  /* kms volumes, over NKMS_KEK KEKs */
#define NKMS_KEK 2
#define NVOL (NKWP + NKMS)
#define DEK_LEN 64
#define REVOKED 7               /* volume whose KEK is revoked before the prefetch */
#define DESTROYED 8             /* ... destroyed */
#define REVOKED_LATER 9         /* ... revoked after it */

static const char *conf, *scratch;
static struct keyprov *kp;
static struct kmip_client *admin;        /* a second identity-less handle for revoke/destroy */

struct volume {
  char kek_id[KMIP_UID_MAX];
  const char *wrap;
  uint8_t dek[DEK_LEN];
  uint8_t wrapped[512];
  size_t wrapped_len;
};
static struct volume vol[NVOL];

static uint64_t
messages (void)
{
  uint64_t m, c;

  keyprov_stats (kp, &m, &c);
  return m;
}

static uint64_t
connections (void)
{
  uint64_t m, c;

  keyprov_stats (kp, &m, &c);
  return c;
}

static double
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Unwrap volume i and compare with its DEK: 0 or the error. */
static int
unwrap_check (size_t i)
{
  uint8_t dek[DEK_LEN];
  size_t len = 0;
  int r;

  r = keyprov_unwrap (kp, vol[i].kek_id, vol[i].wrap, vol[i].wrapped, vol[i].wrapped_len, dek,
                      sizeof dek, &len);
  if (r == 0 && !CHECK_BYTES_EQ ("unwrapped DEK", dek, len, vol[i].dek, DEK_LEN))
    r = -EBADMSG;
  explicit_bzero (dek, sizeof dek);
  return r;
}

static void
test_setup_volumes (void)
{
  char kms_kek[NKMS_KEK][KMIP_UID_MAX], name[64];
  FILE *rnd = fopen ("/dev/urandom", "r");
  struct kmip_config *cfg;

  REQUIRE (rnd != NULL);
  REQUIRE (keyprov_kmip_open (conf, &kp) == 0);
  REQUIRE (kmip_config_load (conf, &cfg) == 0);
  REQUIRE (kmip_client_new (cfg, &admin) == 0);
  kmip_config_free (cfg);
  for (size_t i = 0; i < NVOL; i++) {
    REQUIRE (fread (vol[i].dek, DEK_LEN, 1, rnd) == 1);
    if (i < NKWP) {
      /* create_kek keeps the new KEK for the next wrap: no extra round trip. */
      snprintf (name, sizeof name, "batch-kwp-%zu", i);
      vol[i].wrap = "aes-kwp";
      REQUIRE (keyprov_create_kek (kp, name, "aes-kwp", vol[i].kek_id, KMIP_UID_MAX) == 0);
    }
    else {
      size_t j = (i - NKWP) % NKMS_KEK;
      if (i - NKWP < NKMS_KEK) {
        snprintf (name, sizeof name, "batch-kms-%zu", j);
        REQUIRE (keyprov_create_kek (kp, name, "kms", kms_kek[j], KMIP_UID_MAX) == 0);
      }
      vol[i].wrap = "kms";
      strcpy (vol[i].kek_id, kms_kek[j]);
    }
    REQUIRE (keyprov_wrap (kp, vol[i].kek_id, vol[i].wrap, vol[i].dek, DEK_LEN, vol[i].wrapped,
                           sizeof vol[i].wrapped, &vol[i].wrapped_len) == 0);
  }
  fclose (rnd);
  REQUIRE (kmip_revoke (admin, vol[REVOKED].kek_id,
                        KMIP_REVOCATION_REASON_CODE_CESSATION_OF_OPERATION, "test") == 0);
  REQUIRE (kmip_revoke (admin, vol[DESTROYED].kek_id,
                        KMIP_REVOCATION_REASON_CODE_CESSATION_OF_OPERATION, "test") == 0);
  REQUIRE (kmip_destroy (admin, vol[DESTROYED].kek_id) == 0);
  printf ("setup: %d volumes, %llu messages\n", NVOL, (unsigned long long) messages ());
}

static void
test_prefetch_batched (void)
{
  struct keyprov_want w[NVOL];
  uint64_t before = messages (), used;
  double t0 = now_ms ();

  for (size_t i = 0; i < NVOL; i++)
    w[i] = (struct keyprov_want) { vol[i].kek_id, vol[i].wrap, vol[i].wrapped,
                                   vol[i].wrapped_len, 1 };
  CHECK_INT_EQ (keyprov_prefetch (kp, w, NVOL), 0);
  used = messages () - before;
  printf ("prefetch: %d volumes (%d KEKs), %llu messages, %.0f ms\n", NVOL, NKWP + NKMS_KEK,
          (unsigned long long) used, now_ms () - t0);
  /* State + Get per aes-kwp KEK, State per kms KEK + Decrypt per kms volume: 208 items. */
  CHECK_MSG (used <= (NVOL + 31) / 32, "%llu messages for %d volumes",
             (unsigned long long) used, NVOL);
  for (size_t i = 0; i < NVOL; i++) {
    int want = i == REVOKED ? -EKEYREVOKED : i == DESTROYED ? -ENOENT : 0;
    CHECK_MSG (w[i].result == want, "volume %zu: result %d, want %d", i, w[i].result, want);
  }
}

static void
test_unwrap_without_round_trip (void)
{
  uint64_t before = messages ();

  for (size_t i = 0; i < NVOL; i++)
    if (i != REVOKED && i != DESTROYED)
      CHECK_MSG (unwrap_check (i) == 0, "volume %zu", i);
  CHECK_INT_EQ (messages () - before, 0);
  /* Not prefetched: asked of the KMS, and refused as before. */
  CHECK_INT_EQ (unwrap_check (REVOKED), -EKEYREVOKED);
  CHECK_STR_CONTAINS (ncr_last_error (), "deactivated");
  CHECK_INT_EQ (unwrap_check (DESTROYED), -ENOENT);
  CHECK_INT_EQ (connections (), 1);
}

static void
test_state_many (void)
{
  struct keyprov_state_query q[NKWP + 2];
  uint64_t before, used;

  REQUIRE (kmip_revoke (admin, vol[REVOKED_LATER].kek_id,
                        KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE, "test") == 0);
  /* Prefetched before its revocation: still answered from memory until a check sees it. */
  CHECK_INT_EQ (unwrap_check (REVOKED_LATER), 0);
  for (size_t i = 0; i < NKWP; i++)
    q[i] = (struct keyprov_state_query) { .kek_id = vol[i].kek_id, .result = 1 };
  q[NKWP] = (struct keyprov_state_query) { .kek_id = "nbdcrypt-no-such-kek", .result = 1 };
  q[NKWP + 1] = (struct keyprov_state_query) { .kek_id = vol[0].kek_id, .result = 1 };
  before = messages ();
  CHECK_INT_EQ (keyprov_kek_state_many (kp, q, NKWP + 2), 0);
  used = messages () - before;
  printf ("kek_state_many: %d ids, %llu messages\n", NKWP + 2, (unsigned long long) used);
  CHECK_MSG (used <= 4, "%llu messages", (unsigned long long) used);
  for (size_t i = 0; i < NKWP + 2; i++) {
    enum kek_state want = i == REVOKED ? KEK_STATE_DEACTIVATED :
                          i == REVOKED_LATER ? KEK_STATE_COMPROMISED :
                          i == DESTROYED || i == NKWP ? KEK_STATE_MISSING : KEK_STATE_ACTIVE;
    CHECK_MSG (q[i].result == 0 && q[i].state == want, "query %zu: result %d, state %s, want %s",
               i, q[i].result, kek_state_name (q[i].state), kek_state_name (want));
  }
  /* Seen compromised: the prefetched KEK is gone, and the KMS refuses it. */
  CHECK_INT_EQ (unwrap_check (REVOKED_LATER), -EKEYREVOKED);
  CHECK_INT_EQ (connections (), 1);
}

static void
test_forget (void)
{
  uint64_t before;

  keyprov_forget (kp);
  before = messages ();
  CHECK_INT_EQ (unwrap_check (0), 0);
  CHECK_INT_EQ (messages () - before, 2);          /* State, then Get, as before prefetch */
}

/* ---- threads sharing the provider */

static void *
unwrap_share (void *arg)
{
  size_t t = (size_t) arg;

  for (size_t i = t; i < NVOL; i += 4)
    if (i != REVOKED && i != DESTROYED && i != REVOKED_LATER)
      CHECK_MSG (unwrap_check (i) == 0, "thread %zu, volume %zu", t, i);
  return NULL;
}

static void *
poll_states (void *arg)
{
  struct keyprov_state_query q[NKWP];

  (void) arg;
  for (int round = 0; round < 5; round++) {
    for (size_t i = 0; i < NKWP; i++)
      q[i] = (struct keyprov_state_query) { .kek_id = vol[i].kek_id };
    CHECK_INT_EQ (keyprov_kek_state_many (kp, q, NKWP), 0);
    CHECK (q[0].state == KEK_STATE_ACTIVE && q[REVOKED].state == KEK_STATE_DEACTIVATED);
  }
  return NULL;
}

static void
run_threads (void)
{
  pthread_t th[5];

  for (size_t t = 0; t < 4; t++)
    REQUIRE (pthread_create (&th[t], NULL, unwrap_share, (void *) t) == 0);
  REQUIRE (pthread_create (&th[4], NULL, poll_states, NULL) == 0);
  for (size_t t = 0; t < 5; t++)
    pthread_join (th[t], NULL);
}

static void
test_threads_round_trips (void)
{
  uint64_t before = messages ();
  double t0 = now_ms ();

  run_threads ();
  printf ("threads, no prefetch: %llu messages, %.0f ms\n",
          (unsigned long long) (messages () - before), now_ms () - t0);
  CHECK_INT_EQ (connections (), 1);
}

static void
test_threads_prefetched (void)
{
  struct keyprov_want w[NVOL];
  uint64_t before, start = messages ();
  double t0 = now_ms ();

  for (size_t i = 0; i < NVOL; i++)
    w[i] = (struct keyprov_want) { vol[i].kek_id, vol[i].wrap, vol[i].wrapped,
                                   vol[i].wrapped_len, 0 };
  CHECK_INT_EQ (keyprov_prefetch (kp, w, NVOL), 0);
  before = messages ();
  run_threads ();
  printf ("threads, prefetched: %llu messages, %.0f ms (prefetch included)\n",
          (unsigned long long) (messages () - start), now_ms () - t0);
  /* Only the state polls went to the KMS: 5 rounds of NKWP items each. */
  CHECK_INT_EQ (messages () - before,
                5 * ((NKWP + KMIP_BATCH_ITEMS_MAX - 1) / KMIP_BATCH_ITEMS_MAX));
  CHECK_INT_EQ (connections (), 1);
  keyprov_forget (kp);
}

/* A KEK file has nothing to fetch: each item is checked as unwrap would, no error overall. */
static void
test_file_provider (void)
{
  char path[4096], id[64];
  struct keyprov *fkp;
  struct keyprov_want w[3];
  uint64_t m, c;

  snprintf (path, sizeof path, "%s/kek", scratch);
  REQUIRE (keyprov_file_create (path) == 0);
  REQUIRE (keyprov_file_open (path, &fkp) == 0);
  REQUIRE (keyprov_default_kek_id (fkp, id, sizeof id) == 0);
  w[0] = (struct keyprov_want) { id, "aes-kwp", vol[0].wrapped, vol[0].wrapped_len, 1 };
  w[1] = (struct keyprov_want) { "sha256:00", "aes-kwp", vol[0].wrapped, vol[0].wrapped_len, 1 };
  w[2] = (struct keyprov_want) { id, "rot13", vol[0].wrapped, vol[0].wrapped_len, 1 };
  CHECK_INT_EQ (keyprov_prefetch (fkp, w, 3), 0);
  CHECK_INT_EQ (w[0].result, 0);
  CHECK_INT_EQ (w[1].result, -EKEYREJECTED);
  CHECK_INT_EQ (w[2].result, -EINVAL);
  keyprov_forget (fkp);
  keyprov_stats (fkp, &m, &c);
  CHECK (m == 0 && c == 0);
  keyprov_free (fkp);
}

int
main (int argc, char **argv)
{
  if (argc != 3) {
    fprintf (stderr, "usage: %s KMS.CONF SCRATCH-DIR\n", argv[0]);
    return 2;
  }
  conf = argv[1];
  scratch = argv[2];
  RUN (test_setup_volumes);
  RUN (test_prefetch_batched);
  RUN (test_unwrap_without_round_trip);
  RUN (test_state_many);
  RUN (test_forget);
  RUN (test_threads_round_trips);
  RUN (test_threads_prefetched);
  RUN (test_file_provider);
  printf ("total: %llu messages, %llu connections\n", (unsigned long long) messages (),
          (unsigned long long) connections ());
  kmip_client_free (admin);
  keyprov_free (kp);
  return check_exit ();
}
