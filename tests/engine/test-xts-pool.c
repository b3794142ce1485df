/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: per-thread engine contexts (lib/crypto/xts-pool.c): each thread gets its own context,
 * the same one on every call, producing the master's ciphertext; bounce buffers grow, and
 * after a request larger than NCR_XTS_BOUNCE_KEEP are cut back to it, the pages past it given
 * back to the system (unmapped, and the process's VmRSS drops); states of exited threads are
 * freed by the thread-exit destructor and those of live threads by ncr_xts_pool_free
 * (valgrind's leak check covers both). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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
  RUN (test_xts_pool_bounce_trim);
  /* Frees the states of live threads (the main thread's): valgrind's leak check sees it. */
  ncr_xts_pool_free (pool);
  explicit_bzero (key, sizeof key);
  return check_exit ();
}
