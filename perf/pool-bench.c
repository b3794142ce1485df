/* SPDX-License-Identifier: BSD-3-Clause */
/* Cost of ncr_xts_pool_thread (lib/crypto/xts-pool.c) on its hit path, the call every
 * request makes: the best of 10 runs, in ns per call, for one thread on one pool, for one thread alternating between
 * two pools (both cached), and for 2 threads each on its own pool at once (no sharing, so
 * no contention expected), next to an uncontended mutex lock + unlock. Usage: pool-bench [calls, default 20000000] */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "xts-pool.h"
#include "xts.h"

#define NPOOLS 2
#define REPS 10                 /* the best of: the machine may be shared */

static struct ncr_xts_pool *pools[NPOOLS];
static long calls = 20000000;

static double
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double
min_d (double a, double b)
{
  return a < b ? a : b;
}

/* ns per call over `calls` calls, cycling through the first `n` pools starting at `first`. */
static double
run (int first, int n)
{
  uintptr_t sink = 0;
  double t0, best = 1e300;

  for (int i = 0; i < n; i++)   /* warm: make the contexts */
    if (!ncr_xts_pool_thread (pools[(first + i) % NPOOLS])) {
      fprintf (stderr, "pool-bench: %s\n", ncr_last_error ());
      exit (1);
    }
  for (int rep = 0; rep < REPS; rep++) {
    t0 = now_ns ();
    for (long i = 0; i < calls / REPS; i++)
      sink ^= (uintptr_t) ncr_xts_pool_thread (pools[(first + i % n) % NPOOLS])->xts;
    best = min_d (best, (now_ns () - t0) / (calls / REPS));
  }
  __asm__ volatile ("" : : "r" (sink));
  return best;
}

/* For comparison: ns per uncontended pthread_mutex_lock + unlock. */
static double
mutex_round_trip (void)
{
  static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  double t0, best = 1e300;

  for (int rep = 0; rep < REPS; rep++) {
    t0 = now_ns ();
    for (long i = 0; i < calls / REPS; i++) {
      pthread_mutex_lock (&m);
      pthread_mutex_unlock (&m);
    }
    best = min_d (best, (now_ns () - t0) / (calls / REPS));
  }
  return best;
}

static void *
own_pool (void *arg)
{
  double *ns = arg;

  *ns = run ((int) (ns[1]), 1);
  return NULL;
}

int
main (int argc, char **argv)
{
  uint8_t key[64];
  pthread_t th[NPOOLS];
  double res[NPOOLS][2];

  if (argc > 1)
    calls = atol (argv[1]);
  for (int i = 0; i < NPOOLS; i++) {
    struct ncr_xts *m;

    for (size_t j = 0; j < sizeof key; j++)
      key[j] = (uint8_t) (j * 7 + i * 13 + (j >= 32));
    if (ncr_xts_new (NCR_CIPHER_AES_256_XTS, key, sizeof key, 512, &m) < 0 ||
        ncr_xts_pool_new (m, 512, &pools[i]) < 0) {
      fprintf (stderr, "pool-bench: %s\n", ncr_last_error ());
      return 1;
    }
  }
  explicit_bzero (key, sizeof key);
  printf ("mutex lock+unlock alone:      %.2f ns\n", mutex_round_trip ());
  printf ("one thread, one pool:         %.2f ns/call\n", run (0, 1));
  printf ("one thread, two pools in turn: %.2f ns/call\n", run (0, 2));
  for (int i = 0; i < NPOOLS; i++) {
    res[i][1] = i;
    pthread_create (&th[i], NULL, own_pool, res[i]);
  }
  for (int i = 0; i < NPOOLS; i++)
    pthread_join (th[i], NULL);
  for (int i = 0; i < NPOOLS; i++)
    printf ("%d threads, own pool each:     thread %d %.2f ns/call\n", NPOOLS, i, res[i][0]);
  for (int i = 0; i < NPOOLS; i++)
    ncr_xts_pool_free (pools[i]);
  return 0;
}
