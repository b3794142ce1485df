/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: per-thread engine contexts (lib/crypto/xts-pool.c): each thread gets its own context,
 * the same one on every call, producing the master's ciphertext; bounce buffers grow, and
 * after a request larger than NCR_XTS_BOUNCE_KEEP are cut back to it, the pages past it given
 * back to the system (unmapped, and the process's VmRSS drops). Thousands of pools (one per
 * volume) live at once, more than the system has pthread keys, each thread using all of
 * them with its pool's key and keeping a few copies only; freeing a pool while other threads
 * serve other pools drops (cleanses) its copies in every thread, and a pool made right
 * afterwards (at the same address, if malloc gives it back) gets its own key; copies of
 * exited threads are freed by the thread-exit destructor and those of live threads by
 * ncr_xts_pool_free (the live-copy count says so; valgrind's leak check covers both). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* The process's resident set, in KiB (-1 if unknown). */
static long
vmrss_kib (void)
{
  char line[256];
  long kib = -1;
  FILE *f = fopen ("/proc/self/status", "r");

  if (!f)
    return -1;
  while (fgets (line, sizeof line, f))
    if (sscanf (line, "VmRSS: %ld", &kib) == 1)
      break;
  fclose (f);
  return kib;
}

/* A 32 MiB request, then the trim: the buffer keeps its first NCR_XTS_BOUNCE_KEEP bytes in
 * place, and the pages past them are unmapped (mincore: ENOMEM) and no longer resident. */
static void
bounce_trim (struct ncr_xts_thread *t)
{
  const size_t big = 32 * 1024 * 1024 + 1;
  long page = sysconf (_SC_PAGESIZE), before, after;
  uint8_t *b, *gone;
  size_t gone_len;
  unsigned char vec[1];

  if (ncr_xts_thread_bounce (t, big) < 0 || t->bounce_size < big) {
    FAIL ("bounce buffer did not grow to 32 MiB");
    return;
  }
  memset (t->bounce, 0xa5, t->bounce_size);       /* resident now */
  b = t->bounce;
  gone = b + NCR_XTS_BOUNCE_KEEP;
  gone_len = t->bounce_size - NCR_XTS_BOUNCE_KEEP;
  before = vmrss_kib ();
  ncr_xts_thread_bounce_trim (t);
  after = vmrss_kib ();
  if (t->bounce != b || t->bounce_size != NCR_XTS_BOUNCE_KEEP)
    FAIL ("the trim did not keep the first NCR_XTS_BOUNCE_KEEP bytes in place");
  if (b[0] != 0xa5 || b[NCR_XTS_BOUNCE_KEEP - 1] != 0xa5)
    FAIL ("the kept part of the bounce buffer lost its contents");
  for (size_t off = 0; off < gone_len; off += page)
    if (mincore (gone + off, page, vec) == 0 || errno != ENOMEM) {
      FAIL ("a page past NCR_XTS_BOUNCE_KEEP is still mapped after the trim");
      break;
    }
  /* 28 MiB were given back: allow a quarter of it for anything else moving. */
  if (before > 0 && after > 0 && before - after < 21 * 1024) {
    fprintf (stderr, "VmRSS %ld KiB before the trim, %ld after\n", before, after);
    FAIL ("the trim did not lower the process's resident set by 28 MiB");
  }
  printf ("bounce trim: VmRSS %ld -> %ld KiB\n", before, after);
  ncr_xts_thread_bounce_trim (t);                  /* nothing more to do */
  if (ncr_xts_thread_bounce (t, 1000) < 0 || t->bounce != b ||
      ncr_xts_thread_bounce (t, NCR_XTS_BOUNCE_KEEP) < 0 || t->bounce != b)
    FAIL ("a request within NCR_XTS_BOUNCE_KEEP after the trim remapped the buffer");
  memset (t->bounce, 0, NCR_XTS_BOUNCE_KEEP);     /* and all of it is usable */
  if (ncr_xts_thread_bounce (t, big) < 0 || t->bounce_size < big)
    FAIL ("bounce buffer did not grow again after the trim");
  else
    memset (t->bounce, 0, big);
}

/* The main thread's buffer, grown by a 32 MiB request, is cut back to NCR_XTS_BOUNCE_KEEP. */
static void
test_xts_pool_bounce_trim (void)
{
  bounce_trim (seen[NTHREADS]);
}

/* ---- many pools: one per volume, thousands of them ---- */

#define MANY 2000               /* more than PTHREAD_KEYS_MAX (1024) */
#define MANY_THREADS 4
#define CACHED 4                /* the copies a thread keeps (CACHE_ENTRIES in xts-pool.c) */

static struct ncr_xts_pool *many[MANY];
static uint8_t many_want[MANY][SS];  /* plain's first sector at sector i under pool i's key */

/* A master of a fresh random key in *master, and the reference ciphertext (made by a
 * context of its own, not the master) in want_out. */
static void
make_master (struct ncr_xts **master, uint64_t sector, uint8_t want_out[SS])
{
  uint8_t key[64];
  struct ncr_xts *ref = NULL;

  REQUIRE (RAND_bytes (key, sizeof key) == 1);
  if (ncr_xts_new (NCR_CIPHER_AES_256_XTS, key, 64, SS, master) < 0 ||
      ncr_xts_new (NCR_CIPHER_AES_256_XTS, key, 64, SS, &ref) < 0 ||
      ncr_xts_encrypt (ref, sector, plain, want_out, SS) < 0) {
    fprintf (stderr, "setup: %s\n", ncr_last_error ());
    exit (1);
  }
  ncr_xts_free (ref);
  explicit_bzero (key, sizeof key);
}

/* The same as a pool, in *p. */
static void
make_pool (struct ncr_xts_pool **p, uint64_t sector, uint8_t want_out[SS])
{
  struct ncr_xts *master;

  make_master (&master, sector, want_out);
  if (ncr_xts_pool_new (master, SS, p) < 0) {
    fprintf (stderr, "setup: %s\n", ncr_last_error ());
    exit (1);
  }
}

/* t's context for the pool gives want for plain's first sector at sector. */
static bool
encrypts_as (struct ncr_xts_thread *t, uint64_t sector, const uint8_t want_in[SS])
{
  uint8_t got[SS];

  return t && t->xts && ncr_xts_encrypt (t->xts, sector, plain, got, SS) >= 0 &&
         memcmp (got, want_in, SS) == 0;
}

static pthread_barrier_t many_barrier;

static void *
many_worker (void *arg)
{
  long k = (long) arg;
  struct ncr_xts_thread *first = NULL;
  struct ncr_xts *last[CACHED];
  size_t i = 0;

  /* Each thread starts at its own quarter, so that the threads make and drop copies of
   * different pools at the same time. */
  for (size_t j = 0; j < MANY; j++) {
    struct ncr_xts_thread *t;

    i = (j + k * (MANY / MANY_THREADS)) % MANY;
    t = ncr_xts_pool_thread (many[i]);
    if (!first)
      first = t;
    if (!CHECK_MSG (t && t == first, "thread %ld, pool %zu: no state, or another one", k, i) ||
        !CHECK_MSG (encrypts_as (t, i, many_want[i]),
                    "thread %ld, pool %zu: not the pool's ciphertext", k, i))
      break;
  }
  /* The last CACHED pools are cached: asking again, most recent first, gives the same
   * contexts (and evicts nothing). */
  for (int c = 0; c < CACHED; c++)
    last[c] = ncr_xts_pool_thread (many[(i + MANY - c) % MANY])->xts;
  for (int c = CACHED - 1; c >= 0; c--)
    CHECK_MSG (ncr_xts_pool_thread (many[(i + MANY - c) % MANY])->xts == last[c],
               "thread %ld: a recently used pool's context was not kept", k);
  pthread_barrier_wait (&many_barrier);        /* main counts the copies */
  pthread_barrier_wait (&many_barrier);
  return NULL;
}

/* MANY pools alive at once, each used from MANY_THREADS threads with its own key; a thread
 * keeps CACHED copies at most, and its copies go when it exits. */
static void
test_xts_pool_thousands_of_pools (void)
{
  pthread_t th[MANY_THREADS];
  size_t base = ncr_xts_pool_live_copies ();

  pthread_barrier_init (&many_barrier, NULL, MANY_THREADS + 1);
  for (long k = 0; k < MANY_THREADS; k++)
    pthread_create (&th[k], NULL, many_worker, (void *) k);
  pthread_barrier_wait (&many_barrier);
  CHECK_INT_EQ (ncr_xts_pool_live_copies (), base + MANY_THREADS * CACHED);
  pthread_barrier_wait (&many_barrier);
  for (int k = 0; k < MANY_THREADS; k++)
    pthread_join (th[k], NULL);
  CHECK_MSG (ncr_xts_pool_live_copies () == base,
             "exited threads left %zu copies behind", ncr_xts_pool_live_copies () - base);
  pthread_barrier_destroy (&many_barrier);
}

/* ---- freeing one pool while other threads serve others ---- */

#define SERVERS 2

static struct ncr_xts_pool *doomed;
static pthread_barrier_t serve_barrier;
static atomic_bool serve_stop;
static atomic_long served[SERVERS];

static void *
serve_others (void *arg)
{
  long k = (long) arg;
  struct ncr_xts_thread *t = NULL;

  /* Copies of pools 1 and 2, then of the doomed pool: it is this thread's current context
   * when it is freed. */
  for (size_t i = 1; i <= 2; i++)
    CHECK (encrypts_as (ncr_xts_pool_thread (many[i]), i, many_want[i]));
  CHECK (encrypts_as (ncr_xts_pool_thread (doomed), 0, many_want[0]));
  pthread_barrier_wait (&serve_barrier);
  /* Requests for pools 1 and 2, taking turns, while the doomed pool is freed and a new
   * pool is made and used. */
  while (!atomic_load (&serve_stop)) {
    size_t i = 1 + atomic_load (&served[k]) % 2;

    t = ncr_xts_pool_thread (many[i]);
    if (!CHECK_MSG (encrypts_as (t, i, many_want[i]),
                    "server %ld, pool %zu: not the pool's ciphertext", k, i))
      break;
    atomic_fetch_add (&served[k], 1);
  }
  return NULL;
}

/* Freeing a pool drops its copies in every thread (the live-copy count falls by one per
 * thread that had one; the main thread's current context becomes NULL, not a dangling
 * pointer) while two threads keep serving other pools; a new pool, perhaps at the freed
 * one's address, gets contexts of its own key. */
static void
test_xts_pool_free_while_others_serve (void)
{
  pthread_t th[SERVERS];
  struct ncr_xts_thread *t;
  struct ncr_xts_pool *old_address, *fresh;
  struct ncr_xts *fresh_master;
  uint8_t fresh_want[SS];
  long before[SERVERS];
  size_t base = ncr_xts_pool_live_copies (), live;

  doomed = many[0];
  many[0] = NULL;
  pthread_barrier_init (&serve_barrier, NULL, SERVERS + 1);
  for (long k = 0; k < SERVERS; k++)
    pthread_create (&th[k], NULL, serve_others, (void *) k);
  t = ncr_xts_pool_thread (doomed);
  CHECK (encrypts_as (t, 0, many_want[0]));
  pthread_barrier_wait (&serve_barrier);

  /* The servers only hit their caches from now on: the count moves only with the free. */
  live = ncr_xts_pool_live_copies ();
  CHECK_INT_EQ (live, base + 1 + SERVERS * 3);
  for (int k = 0; k < SERVERS; k++)
    before[k] = atomic_load (&served[k]);
  make_master (&fresh_master, 0, fresh_want);
  old_address = doomed;
  ncr_xts_pool_free (doomed);
  CHECK_MSG (ncr_xts_pool_live_copies () == live - 1 - SERVERS,
             "%zu copies alive after the free, want %zu", ncr_xts_pool_live_copies (),
             live - 1 - SERVERS);
  CHECK_MSG (t->xts == NULL, "the freed pool's context is still the thread's current one");

  /* Made right after the free, so that malloc is likely to hand out the same address. */
  REQUIRE (ncr_xts_pool_new (fresh_master, SS, &fresh) == 0);
  printf ("a new pool %s the freed one's address\n",
          fresh == old_address ? "reuses" : "does not reuse");
  CHECK_MSG (encrypts_as (ncr_xts_pool_thread (fresh), 0, fresh_want),
             "a new pool's context is not of its own key");

  /* Let the servers go on a while after the free, then stop. */
  for (int k = 0; k < SERVERS; k++)
    while (atomic_load (&served[k]) < before[k] + 200 && !check_failures)
      sched_yield ();
  atomic_store (&serve_stop, true);
  for (int k = 0; k < SERVERS; k++)
    pthread_join (th[k], NULL);
  CHECK_INT_EQ (ncr_xts_pool_live_copies (), base + 1);      /* the main thread's, of fresh */
  ncr_xts_pool_free (fresh);
  CHECK_INT_EQ (ncr_xts_pool_live_copies (), base);
  pthread_barrier_destroy (&serve_barrier);
}

/* ---- thread exit ---- */

static void *
use_six_pools (void *arg)
{
  size_t *during = arg;

  for (size_t i = 10; i < 16; i++)
    CHECK (encrypts_as (ncr_xts_pool_thread (many[i]), i, many_want[i]));
  *during = ncr_xts_pool_live_copies ();
  return NULL;
}

/* A thread that used six pools keeps CACHED copies, and its exit frees them all. */
static void
test_xts_pool_thread_exit_frees_copies (void)
{
  pthread_t th;
  size_t base = ncr_xts_pool_live_copies (), during = 0;

  pthread_create (&th, NULL, use_six_pools, &during);
  pthread_join (th, NULL);
  CHECK_INT_EQ (during, base + CACHED);
  CHECK_INT_EQ (ncr_xts_pool_live_copies (), base);
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

  for (size_t i = 0; i < MANY; i++)
    make_pool (&many[i], i, many_want[i]);

  RUN (test_xts_pool_per_thread_contexts);
  RUN (test_xts_pool_bounce_trim);
  RUN (test_xts_pool_thousands_of_pools);
  RUN (test_xts_pool_free_while_others_serve);
  RUN (test_xts_pool_thread_exit_frees_copies);
  /* Frees the copies of live threads (the main thread's): the count and valgrind's leak
   * check see it. */
  ncr_xts_pool_free (pool);
  for (size_t i = 0; i < MANY; i++)
    ncr_xts_pool_free (many[i]);
  CHECK_INT_EQ (ncr_xts_pool_live_copies (), 0);
  explicit_bzero (key, sizeof key);
  return check_exit ();
}
