/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: the XTS engine's key schedules live only in locked memory that is left out of
 * core dumps, for every implementation (vaes-xts, vaes256-xts, openssl-xts, ecb-avx512,
 * ecb-generic) and both ciphers, in the master context, in a copy (ncr_xts_dup) and in a pool
 * thread's copy (lib/crypto/xts-pool.c), and are wiped when freed - a pool's copies in every
 * thread when the pool is freed while another thread keeps serving another pool:
 *  - each region that ncr_xts_key_memory reports lies in a mapping whose /proc/self/smaps
 *    entry has "lo" (mlock'd) and "dd" (MADV_DONTDUMP) in VmFlags and Locked > 0 - and "wf"
 *    (MADV_WIPEONFORK) for vaes-xts and vaes256-xts, whose schedules a forked child then reads
 *    as zeros; and
 *    those regions really hold the schedules (both halves' first round keys are found there);
 *  - independently of what the engine reports: every copy of any AES round key of either key
 *    half (computed here, FIPS 197 key expansion) found anywhere in the process's writable or
 *    anonymous memory lies in such a mapping; and after ncr_xts_free none is left at all.
 * Under ASan mlock is a no-op, so "lo"/Locked are not checked there; under valgrind the
 * memory scans are skipped (valgrind's own mappings are not readable by the client). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#include "errors.h"
#include "secmem.h"
#include "xts-pool.h"
#include "xts.h"

#include "check.h"

/* ---- FIPS 197 key expansion (the oracle for what a schedule contains) ---- */

static uint8_t sbox[256];

static uint8_t
rotl8 (uint8_t x, int s)
{
  return (uint8_t) ((x << s) | (x >> (8 - s)));
}

static void
make_sbox (void)
{
  uint8_t p = 1, q = 1;

  /* p runs through the multiplicative group (times 3), q through the inverses (over 3). */
  do {
    p = p ^ (uint8_t) (p << 1) ^ (p & 0x80 ? 0x1b : 0);
    q ^= (uint8_t) (q << 1);
    q ^= (uint8_t) (q << 2);
    q ^= (uint8_t) (q << 4);
    if (q & 0x80)
      q ^= 0x09;
    sbox[p] = q ^ rotl8 (q, 1) ^ rotl8 (q, 2) ^ rotl8 (q, 3) ^ rotl8 (q, 4) ^ 0x63;
  } while (p != 1);
  sbox[0] = 0x63;
}

/* w: 16 * (nr + 1) bytes of round keys from a key of nk 32-bit words. Returns nr. */
static int
expand_key (const uint8_t *key, int nk, uint8_t *w)
{
  int nr = nk + 6, total = 4 * (nr + 1);
  uint8_t rcon = 1;

  memcpy (w, key, 4 * nk);
  for (int i = nk; i < total; i++) {
    uint8_t t[4];

    memcpy (t, w + 4 * (i - 1), 4);
    if (i % nk == 0) {
      uint8_t t0 = t[0];
      t[0] = sbox[t[1]] ^ rcon;
      t[1] = sbox[t[2]];
      t[2] = sbox[t[3]];
      t[3] = sbox[t0];
      rcon = (uint8_t) (rcon << 1) ^ (rcon & 0x80 ? 0x1b : 0);
    }
    else if (nk > 6 && i % nk == 4)
      for (int j = 0; j < 4; j++)
        t[j] = sbox[t[j]];
    for (int j = 0; j < 4; j++)
      w[4 * i + j] = w[4 * (i - nk) + j] ^ t[j];
  }
  return nr;
}

/* The oracle itself: FIPS 197's own expansions. */
static void
test_fips197_key_expansion (void)
{
  /* FIPS 197 appendix A.1 (AES-128) and A.3 (AES-256): the last word of the schedule. */
  static const uint8_t k128[16] = {
    0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c,
  };
  static const uint8_t k256[32] = {
    0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d, 0x77, 0x81,
    0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61, 0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4,
  };
  static const uint8_t last128[4] = { 0xb6, 0x63, 0x0c, 0xa6 };
  static const uint8_t last256[4] = { 0x70, 0x6c, 0x63, 0x1e };
  uint8_t w[240];

  expand_key (k128, 4, w);
  CHECK_MSG (memcmp (w + 172, last128, 4) == 0, "the test's AES-128 key expansion is wrong");
  expand_key (k256, 8, w);
  CHECK_MSG (memcmp (w + 236, last256, 4) == 0, "the test's AES-256 key expansion is wrong");
}

/* ---- the process's mappings ---- */

struct mapping {
  uintptr_t start, end;
  bool readable, writable, anonymous, special;
  long locked_kb;
  char flags[512];              /* VmFlags */
  char name[128];
};

static struct mapping *maps;
static size_t nmaps, maps_cap;

static void
read_smaps (void)
{
  FILE *fp = fopen ("/proc/self/smaps", "r");
  char line[512];

  nmaps = 0;
  if (!fp) {
    perror ("/proc/self/smaps");
    exit (1);
  }
  while (fgets (line, sizeof line, fp)) {
    unsigned long s, e;
    char perms[8], name[128] = "";
    long kb;

    if (sscanf (line, "%lx-%lx %7s %*s %*s %*s %127s", &s, &e, perms, name) >= 3 &&
        strchr (line, '-') < strchr (line, ' ')) {
      struct mapping *m;

      if (nmaps == maps_cap) {
        maps_cap = maps_cap ? 2 * maps_cap : 1024;
        maps = realloc (maps, maps_cap * sizeof *maps);
        if (!maps) {
          perror ("realloc");
          exit (1);
        }
      }
      m = &maps[nmaps++];
      memset (m, 0, sizeof *m);
      m->start = s;
      m->end = e;
      m->readable = perms[0] == 'r';
      m->writable = perms[1] == 'w';
      m->anonymous = name[0] == '\0';
      m->special = strcmp (name, "[vvar]") == 0 || strcmp (name, "[vsyscall]") == 0;
      snprintf (m->name, sizeof m->name, "%s", name);
    }
    else if (nmaps && sscanf (line, "Locked: %ld kB", &kb) == 1)
      maps[nmaps - 1].locked_kb = kb;
    else if (nmaps && strncmp (line, "VmFlags:", 8) == 0)
      snprintf (maps[nmaps - 1].flags, sizeof maps[0].flags, "%s", line + 8);
  }
  fclose (fp);
}

static const struct mapping *
mapping_of (uintptr_t a)
{
  for (size_t i = 0; i < nmaps; i++)
    if (maps[i].start <= a && a < maps[i].end)
      return &maps[i];
  return NULL;
}

static bool
has_flag (const struct mapping *m, const char *f)
{
  char pat[8];

  snprintf (pat, sizeof pat, " %s", f);
  for (const char *p = m->flags; (p = strstr (p, pat)); p++)
    if (p[3] == ' ' || p[3] == '\n' || p[3] == '\0')
      return true;
  return false;
}

/* Is [a, a + n) in locked, not-dumped mappings (and wiped on fork, if wf)? why: a message. */
static bool
protected_range (uintptr_t a, size_t n, bool wf, char *why, size_t whylen)
{
  for (uintptr_t p = a; p < a + n;) {
    const struct mapping *m = mapping_of (p);

    if (!m) {
      snprintf (why, whylen, "%#" PRIxPTR " is in no mapping", p);
      return false;
    }
    if (!has_flag (m, "dd") || (!UNDER_ASAN && (!has_flag (m, "lo") || m->locked_kb <= 0)) ||
        (wf && !has_flag (m, "wf"))) {
      snprintf (why, whylen, "%#" PRIxPTR " is in %" PRIxPTR "-%" PRIxPTR " %s (Locked %ld kB, "
                "VmFlags%.*s)", p, m->start, m->end, m->name[0] ? m->name : "[anon]",
                m->locked_kb, (int) strcspn (m->flags, "\n"), m->flags);
      return false;
    }
    p = m->end;
  }
  return true;
}

/* ---- needles: every round key of both key halves, in two byte orders ---- */

/* In secmem, so that the needles themselves are in protected memory. */
struct needles {
  size_t n;
  uint8_t b[2 * 2 * 15][16];    /* halves x orders x rounds */
};

static void
make_needles (const uint8_t *key, size_t key_len, struct needles *nd)
{
  int nk = (int) key_len / 2 / 4;

  nd->n = 0;
  for (int half = 0; half < 2; half++) {
    uint8_t *w = nd->b[nd->n];
    int nr = expand_key (key + half * key_len / 2, nk, w);

    /* The same round keys with each 32-bit word byte-swapped: OpenSSL's C AES code keeps
     * them as host-order words. */
    for (int r = 0; r <= nr; r++)
      for (int j = 0; j < 16; j++)
        nd->b[nd->n + nr + 1 + r][j] = w[16 * r + (j & ~3) + 3 - (j & 3)];
    nd->n += 2 * (nr + 1);
  }
}

/* Does [p, p + n) hold round key 0 of half (the half's first 16 key bytes)? */
static bool
holds (const void *p, size_t n, const uint8_t *key, size_t key_len, int half)
{
  return memmem (p, n, key + half * key_len / 2, 16) != NULL;
}

/* Scan readable memory that can have been written (writable or anonymous mappings) for the
 * needles. Hits inside [skip[i], skip[i] + skiplen[i]) are not counted (the test's own key
 * and needles). alive: the contexts exist, so hits are expected and must all be in locked,
 * not-dumped memory; otherwise there must be none. */
static void
scan (const char *what, const struct needles *nd, const void *const *skip,
      const size_t *skiplen, int nskip, bool alive)
{
  size_t hits = 0, bad = 0;

  if (RUNNING_ON_VALGRIND || UNDER_ASAN)
    return;
  read_smaps ();
  for (size_t i = 0; i < nmaps; i++) {
    const struct mapping *m = &maps[i];

    if (!m->readable || m->special || !(m->writable || m->anonymous))
      continue;
    for (size_t k = 0; k < nd->n; k++) {
      const uint8_t *p = (const uint8_t *) m->start, *end = (const uint8_t *) m->end;

      while (p < end && (p = memmem (p, end - p, nd->b[k], 16)) != NULL) {
        bool skipped = false;
        char why[400];

        for (int s = 0; s < nskip; s++)
          if ((const uint8_t *) skip[s] <= p && p < (const uint8_t *) skip[s] + skiplen[s])
            skipped = true;
        if (!skipped) {
          hits++;
          if (!alive) {
            bad++;
            FAIL ("%s: after free, round key %zu is still at %p (%s)", what, k, (void *) p,
                  m->name[0] ? m->name : "[anon]");
          }
          else if (!protected_range ((uintptr_t) p, 16, false, why, sizeof why)) {
            bad++;
            FAIL ("%s: round key %zu is in unprotected memory: %s", what, k, why);
          }
        }
        p++;
      }
    }
  }
  if (alive && hits == 0)
    FAIL ("%s: the scan found no round key at all (so it proves nothing)", what);
  printf ("%s: scan: %zu round-key copies found, %s\n", what, hits,
          bad ? "SOME UNPROTECTED" : alive ? "all in locked, not-dumped memory" : "none left");
}

/* ---- the checks ---- */

/* Every key region of x is protected, and together they hold both halves' first round keys. */
static void
check_context (const char *what, const struct ncr_xts *x, const uint8_t *key, size_t key_len)
{
  const void *p[8];
  size_t n[8];
  int k = ncr_xts_key_memory (x, p, n, 8);
  bool wf = strcmp (ncr_xts_impl (x), "vaes-xts") == 0 ||
            strcmp (ncr_xts_impl (x), "vaes256-xts") == 0;
  bool half0 = false, half1 = false;

  read_smaps ();
  if (k <= 0) {
    FAIL ("%s: no key memory reported", what);
    return;
  }
  for (int i = 0; i < k; i++) {
    char why[400];

    if (!protected_range ((uintptr_t) p[i], n[i], wf, why, sizeof why))
      FAIL ("%s: key schedule region %d (%zu bytes at %p) is not locked/not-dumped%s: %s",
            what, i, n[i], p[i], wf ? "/wipe-on-fork" : "", why);
    half0 |= holds (p[i], n[i], key, key_len, 0);
    half1 |= holds (p[i], n[i], key, key_len, 1);
  }
  if (!half0 || !half1)
    FAIL ("%s: the reported key memory does not hold the key schedules (K1 %s, K2 %s)",
          what, half0 ? "found" : "missing", half1 ? "found" : "missing");
}

/* vaes-xts: a forked child sees the schedules as zeros (MADV_WIPEONFORK). */
static void
check_wipe_on_fork (const char *what, const struct ncr_xts *x)
{
  const void *p[8];
  size_t n[8];
  int k = ncr_xts_key_memory (x, p, n, 8);
  pid_t pid;
  int status;

  fflush (stdout);
  pid = fork ();
  if (pid == 0) {
    for (int i = 0; i < k; i++)
      for (size_t j = 0; j < n[i]; j++)
        if (((const uint8_t *) p[i])[j] != 0)
          _exit (1);
    _exit (0);
  }
  if (pid < 0 || waitpid (pid, &status, 0) != pid || !WIFEXITED (status) ||
      WEXITSTATUS (status) != 0)
    FAIL ("%s: a forked child can read the key schedules", what);
}

struct thread_arg {
  struct ncr_xts_pool *pool;
  const char *what;
  const uint8_t *key;
  size_t key_len;
};

static void *
pool_thread (void *v)
{
  struct thread_arg *a = v;
  struct ncr_xts_thread *t = ncr_xts_pool_thread (a->pool);
  char what[200];

  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;   /* maps[] is shared */

  snprintf (what, sizeof what, "%s pool thread", a->what);
  pthread_mutex_lock (&lock);
  if (!t)
    FAIL ("%s: %s", what, ncr_last_error ());
  else
    check_context (what, t->xts, a->key, a->key_len);
  pthread_mutex_unlock (&lock);
  return NULL;
}

static void
run (const char *impl, enum ncr_cipher c)
{
  size_t key_len = ncr_cipher_key_len (c);
  uint8_t *key = secmem_alloc (key_len);
  struct needles *nd = secmem_alloc (sizeof *nd);
  struct ncr_xts *x = NULL, *d = NULL, *m = NULL;
  struct ncr_xts_pool *pool = NULL;
  char what[200];
  int r;

  if (!key || !nd || getrandom (key, key_len, 0) != (ssize_t) key_len) {
    fprintf (stderr, "setup: %s\n", ncr_last_error ());
    exit (1);
  }
  make_needles (key, key_len, nd);
  snprintf (what, sizeof what, "%s %s", ncr_cipher_name (c), impl);
  const void *skip[] = { key, nd };
  const size_t skiplen[] = { key_len, sizeof *nd };

  r = ncr_xts_new_impl (c, key, key_len, 512, impl, &x);
  if (r == -ENOTSUP) {
    printf ("%s: not available here, skipped\n", what);
    goto out;
  }
  if (r < 0 || ncr_xts_dup (x, &d) < 0 || ncr_xts_new_impl (c, key, key_len, 512, impl, &m) < 0 ||
      ncr_xts_pool_new (m, 512, &pool) < 0) {
    FAIL ("%s: %s", what, ncr_last_error ());
    goto out;
  }
  check_context (what, x, key, key_len);
  {
    char w2[220];
    snprintf (w2, sizeof w2, "%s copy", what);
    check_context (w2, d, key, key_len);
  }
  if (strcmp (impl, "vaes-xts") == 0 || strcmp (impl, "vaes256-xts") == 0)
    check_wipe_on_fork (what, x);
  {
    struct thread_arg a = { pool, what, key, key_len };
    pthread_t th[2];

    for (int i = 0; i < 2; i++)
      pthread_create (&th[i], NULL, pool_thread, &a);
    for (int i = 0; i < 2; i++)
      pthread_join (th[i], NULL);
    /* Threads that exit take their copies along (the key destructor); one still in use: */
    pool_thread (&a);
  }
  scan (what, nd, skip, skiplen, 2, true);
  ncr_xts_free (x);
  ncr_xts_free (d);
  ncr_xts_pool_free (pool);     /* frees m and the main thread's copy */
  x = d = NULL;
  pool = NULL;
  scan (what, nd, skip, skiplen, 2, false);
  printf ("%s: checked\n", what);
 out:
  ncr_xts_free (x);
  ncr_xts_free (d);
  ncr_xts_pool_free (pool);
  secmem_free (key);
  secmem_free (nd);
}

/* ---- a pool freed while another thread serves another pool ---- */

struct server {
  struct ncr_xts_pool *freed, *kept;
  pthread_barrier_t ready;
  _Atomic bool stop;
  _Atomic long served;
};

/* Encrypts with the freed pool's copy once, then only with the kept pool's until told to
 * stop: the freed pool's copy stays in its cache, unused, through the free. */
static void *
serve_kept (void *v)
{
  struct server *sv = v;
  uint8_t buf[512] = { 0 };
  struct ncr_xts_thread *t = ncr_xts_pool_thread (sv->freed);

  if (!t || ncr_xts_encrypt (t->xts, 1, buf, buf, sizeof buf) < 0)
    FAIL ("server, the pool to free: %s", ncr_last_error ());
  pthread_barrier_wait (&sv->ready);
  while (!sv->stop) {
    t = ncr_xts_pool_thread (sv->kept);
    if (!t || ncr_xts_encrypt (t->xts, 1, buf, buf, sizeof buf) < 0) {
      FAIL ("server, the kept pool: %s", ncr_last_error ());
      break;
    }
    sv->served++;
  }
  return NULL;
}

/* Two pools, two keys; a server thread holds copies of both, the main thread one of the
 * first. While the server encrypts with the second pool, the first is freed: its round keys
 * are gone from the whole process (the server's cached copy included), the second's are
 * still there, all protected. */
static void
test_keymem_pool_free_while_serving (void)
{
  const size_t key_len = 64;
  uint8_t *keys = secmem_alloc (2 * key_len);
  struct needles *nd = secmem_alloc (2 * sizeof *nd);
  struct ncr_xts *m[2] = { NULL, NULL };
  struct server *sv = calloc (1, sizeof *sv);
  struct ncr_xts_thread *t;
  pthread_t th;
  long served;

  if (!keys || !nd || !sv || getrandom (keys, 2 * key_len, 0) != (ssize_t) (2 * key_len)) {
    fprintf (stderr, "setup: %s\n", ncr_last_error ());
    exit (1);
  }
  const void *skip[] = { keys, nd };
  const size_t skiplen[] = { 2 * key_len, 2 * sizeof *nd };
  for (int i = 0; i < 2; i++) {
    make_needles (keys + i * key_len, key_len, &nd[i]);
    if (ncr_xts_new (NCR_CIPHER_AES_256_XTS, keys + i * key_len, key_len, 512, &m[i]) < 0 ||
        ncr_xts_pool_new (m[i], 512, i == 0 ? &sv->freed : &sv->kept) < 0) {
      fprintf (stderr, "setup: %s\n", ncr_last_error ());
      exit (1);
    }
  }
  printf ("engine %s\n", ncr_xts_impl (m[0]));
  pthread_barrier_init (&sv->ready, NULL, 2);
  pthread_create (&th, NULL, serve_kept, sv);
  t = ncr_xts_pool_thread (sv->freed);
  if (!CHECK (t != NULL))
    exit (1);
  check_context ("the pool to free, main thread's copy", t->xts, keys, key_len);
  pthread_barrier_wait (&sv->ready);

  ncr_xts_pool_free (sv->freed);
  sv->freed = NULL;
  served = sv->served;
  scan ("freed pool, while another is served", &nd[0], skip, skiplen, 2, false);
  scan ("kept pool, while served", &nd[1], skip, skiplen, 2, true);
  /* The server went on through the free and the scans. */
  while (sv->served < served + 100 && !check_failures)
    sched_yield ();
  sv->stop = true;
  pthread_join (th, NULL);
  pthread_barrier_destroy (&sv->ready);
  ncr_xts_pool_free (sv->kept);
  scan ("kept pool, after its free", &nd[1], skip, skiplen, 2, false);
  free (sv);
  secmem_free (keys);
  secmem_free (nd);
}

/* Both ciphers with one implementation; "not available here" on CPUs without it. */
static void
test_keymem_vaes_xts (void)
{
  run ("vaes-xts", NCR_CIPHER_AES_256_XTS);
  run ("vaes-xts", NCR_CIPHER_AES_128_XTS);
}

static void
test_keymem_vaes256_xts (void)
{
  run ("vaes256-xts", NCR_CIPHER_AES_256_XTS);
  run ("vaes256-xts", NCR_CIPHER_AES_128_XTS);
}

static void
test_keymem_openssl_xts (void)
{
  run ("openssl-xts", NCR_CIPHER_AES_256_XTS);
  run ("openssl-xts", NCR_CIPHER_AES_128_XTS);
}

static void
test_keymem_ecb_avx512 (void)
{
  run ("ecb-avx512", NCR_CIPHER_AES_256_XTS);
  run ("ecb-avx512", NCR_CIPHER_AES_128_XTS);
}

static void
test_keymem_ecb_generic (void)
{
  run ("ecb-generic", NCR_CIPHER_AES_256_XTS);
  run ("ecb-generic", NCR_CIPHER_AES_128_XTS);
}

int
main (void)
{
  make_sbox ();
  if (UNDER_ASAN)
    printf ("ASan: mlock is a no-op here, so only MADV_DONTDUMP is checked; no memory scan\n");
  if (RUNNING_ON_VALGRIND)
    printf ("valgrind: no memory scan\n");
  RUN (test_fips197_key_expansion);
  RUN (test_keymem_vaes_xts);
  RUN (test_keymem_vaes256_xts);
  RUN (test_keymem_openssl_xts);
  RUN (test_keymem_ecb_avx512);
  RUN (test_keymem_ecb_generic);
  RUN (test_keymem_pool_free_while_serving);
  free (maps);
  return check_exit ();
}
