/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: per-thread engine contexts (lib/crypto/xts-pool.c): each thread gets its own context,
 * the same one on every call, producing the master's ciphertext; bounce buffers only grow;
 * states of exited threads are freed by the thread-exit destructor and those of live threads
 * by ncr_xts_pool_free (valgrind's leak check covers both). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "errors.h"
#include "xts-pool.h"
#include "xts.h"

#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

#define NTHREADS 4
#define SS 512
#define LEN (8 * SS)

static struct ncr_xts_pool *pool;
static uint8_t plain[LEN], want[LEN];
static struct ncr_xts_thread *seen[NTHREADS + 1];
static struct ncr_xts *seen_xts[NTHREADS + 1];
static pthread_barrier_t barrier;

static void *
worker (void *arg)
{
  long i = (long) arg;
  struct ncr_xts_thread *t = ncr_xts_pool_thread (pool);
  uint8_t got[LEN];

  if (!t) {
    FAIL ("ncr_xts_pool_thread: %s", ncr_last_error ());
    return NULL;
  }
  seen[i] = t;
  seen_xts[i] = t->xts;         /* compared after the thread exits: copy, never deref */
  if (i < NTHREADS)
    pthread_barrier_wait (&barrier);
  CHECK_MSG (ncr_xts_pool_thread (pool) == t,
             "a thread got a different state on its second call");
  CHECK_MSG (ncr_xts_thread_bounce (t, 100000) >= 0 && t->bounce_size >= 100000,
             "bounce buffer did not grow to 100000 bytes");
  {
    uint8_t *b = t->bounce;
    size_t sz = t->bounce_size;
    CHECK_MSG (ncr_xts_thread_bounce (t, 1000) >= 0 && t->bounce == b && t->bounce_size == sz,
               "a smaller request changed the bounce buffer");
  }
  for (int rep = 0; rep < 100; rep++) {
    if (!CHECK_MSG (ncr_xts_encrypt (t->xts, 5, plain, got, LEN) >= 0 &&
                    memcmp (got, want, LEN) == 0,
                    "a thread's context gave different ciphertext from the master's"))
      break;
  }
  return NULL;
}

/* Each thread its own context, the same on every call, all giving the master's ciphertext. */
static void
test_xts_pool_per_thread_contexts (void)
{
  pthread_t th[NTHREADS];

  pthread_barrier_init (&barrier, NULL, NTHREADS);
  for (long i = 0; i < NTHREADS; i++)
    pthread_create (&th[i], NULL, worker, (void *) i);
  for (int i = 0; i < NTHREADS; i++)
    pthread_join (th[i], NULL);
  /* The main thread keeps its state alive until ncr_xts_pool_free. */
  worker ((void *) (long) NTHREADS);
  /* The workers all held their states at once (the barrier): they must be distinct. */
  for (int i = 0; i < NTHREADS; i++)
    for (int j = i + 1; j < NTHREADS; j++)
      CHECK_MSG (seen[i] != seen[j] && seen_xts[i] != seen_xts[j],
                 "two live threads share a state");
}

int
main (void)
{
  uint8_t key[64];
  struct ncr_xts *master, *ref;

  if (RAND_bytes (key, sizeof key) != 1 || RAND_bytes (plain, sizeof plain) != 1)
    return 1;
  if (ncr_xts_new (NCR_CIPHER_AES_256_XTS, key, 64, SS, &master) < 0 ||
      ncr_xts_new (NCR_CIPHER_AES_256_XTS, key, 64, SS, &ref) < 0 ||
      ncr_xts_encrypt (ref, 5, plain, want, LEN) < 0 ||
      ncr_xts_pool_new (master, SS, &pool) < 0) {
    fprintf (stderr, "setup: %s\n", ncr_last_error ());
    return 1;
  }
  ncr_xts_free (ref);

  RUN (test_xts_pool_per_thread_contexts);
  /* Frees the states of live threads (the main thread's): valgrind's leak check sees it. */
  ncr_xts_pool_free (pool);
  explicit_bzero (key, sizeof key);
  return check_exit ();
}
