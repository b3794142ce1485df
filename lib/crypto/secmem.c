/* SPDX-License-Identifier: BSD-3-Clause */
/* Locked, non-dumpable, wipe-on-fork allocations for key material.
 *
 * Each allocation is its own anonymous mapping so that madvise() flags apply to it alone
 * and nothing else shares its pages. A small header in front records the mapping size. */
#include "secmem.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <stdlib.h>

#include "errors.h"

#define SECMEM_HEADER SECMEM_ALIGN  /* keeps the returned pointer SECMEM_ALIGN-aligned */

struct secmem_header {
  size_t map_len;
  struct secmem_header *prev, *next;    /* the live allocations, for secmem_after_fork */
};

/* Every live allocation and every region locked with secmem_lock_region: a forked child
 * inherits their contents but not their locks, so secmem_after_fork locks them again. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct secmem_header *live;
static bool keep_across_fork;

/* Pages locked by secmem_lock_region, each with the number of live regions on it (several
 * small objects share a malloc page): a page is unlocked when its last region goes, so that
 * locked memory follows the objects alive (threads come and go with connections) instead of
 * growing for the life of the process. An open-addressing table keyed by page address, under
 * live_lock; a removed entry leaves a tombstone. */
struct locked_page {
  uintptr_t page;               /* 0: empty; TOMBSTONE: removed */
  uint32_t count;
};
#define TOMBSTONE ((uintptr_t) 1)
static struct locked_page *pages;
static size_t pages_cap, pages_used;    /* used: live entries and tombstones */

static struct locked_page *
page_slot (uintptr_t page, bool insert)
{
  struct locked_page *tomb = NULL;

  if (pages_cap == 0)
    return NULL;
  for (size_t i = (page / 4096 * 11400714819323198485ull) & (pages_cap - 1), n = 0;
       n < pages_cap; i = (i + 1) & (pages_cap - 1), n++) {
    if (pages[i].page == page)
      return &pages[i];
    if (pages[i].page == TOMBSTONE && tomb == NULL)
      tomb = &pages[i];
    if (pages[i].page == 0)
      return insert ? (tomb ? tomb : &pages[i]) : NULL;
  }
  return insert ? tomb : NULL;
}

/* Room for one more entry (caller holds live_lock). Returns 0 or -ENOMEM. */
static int
pages_reserve (void)
{
  if ((pages_used + 1) * 2 <= pages_cap)
    return 0;
  size_t cap = pages_cap ? pages_cap * 2 : 256;
  struct locked_page *old = pages, *t = calloc (cap, sizeof *t);
  size_t old_cap = pages_cap;

  if (t == NULL)
    return -ENOMEM;
  pages = t;
  pages_cap = cap;
  pages_used = 0;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i].page > TOMBSTONE) {
      *page_slot (old[i].page, true) = old[i];
      pages_used++;
    }
  free (old);
  return 0;
}

static void
link_live (struct secmem_header *h)
{
  pthread_mutex_lock (&live_lock);
  h->prev = NULL;
  h->next = live;
  if (live)
    live->prev = h;
  live = h;
  pthread_mutex_unlock (&live_lock);
}

static void
unlink_live (struct secmem_header *h)
{
  pthread_mutex_lock (&live_lock);
  if (h->prev)
    h->prev->next = h->next;
  else
    live = h->next;
  if (h->next)
    h->next->prev = h->prev;
  pthread_mutex_unlock (&live_lock);
}

void *
secmem_alloc (size_t n)
{
  size_t page = (size_t) sysconf (_SC_PAGESIZE);
  size_t len;
  uint8_t *base;

  if (n == 0 || n > SIZE_MAX - SECMEM_HEADER - page) {
    errno = EINVAL;
    ncr_error (EINVAL, "secmem_alloc: invalid size %zu", n);
    return NULL;
  }
  len = (n + SECMEM_HEADER + page - 1) / page * page;

  base = mmap (NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    int e = errno;
    ncr_error (e, "secmem_alloc: mmap %zu bytes: %s", len, strerror (e));
    errno = e;
    return NULL;
  }
  if (mlock (base, len) == -1) {
    int e = errno;
    munmap (base, len);
    ncr_error (e, "cannot lock key memory (mlock: %s); raise RLIMIT_MEMLOCK "
               "(ulimit -l) or run with CAP_IPC_LOCK", strerror (e));
    errno = e;
    return NULL;
  }
  if (madvise (base, len, MADV_DONTDUMP) == -1 ||
      (!__atomic_load_n (&keep_across_fork, __ATOMIC_RELAXED) &&
       madvise (base, len, MADV_WIPEONFORK) == -1)) {
    int e = errno;
    munlock (base, len);
    munmap (base, len);
    ncr_error (e, "cannot exclude key memory from core dumps/forks (madvise: %s)",
               strerror (e));
    errno = e;
    return NULL;
  }
  ((struct secmem_header *) base)->map_len = len;
  link_live ((struct secmem_header *) base);
  return base + SECMEM_HEADER;
}

void
secmem_free (void *p)
{
  uint8_t *base;
  size_t len;

  if (p == NULL)
    return;
  base = (uint8_t *) p - SECMEM_HEADER;
  len = ((struct secmem_header *) base)->map_len;
  unlink_live ((struct secmem_header *) base);
  explicit_bzero (base, len);
  munlock (base, len);
  munmap (base, len);
}

int
secmem_lock_region (const void *p, size_t n)
{
  uintptr_t page = (uintptr_t) sysconf (_SC_PAGESIZE), start, end;

  if (p == NULL || n == 0 || n > UINTPTR_MAX / 2 || (uintptr_t) p > UINTPTR_MAX / 2)
    return ncr_error (EINVAL, "secmem_lock_region: invalid region");
  start = (uintptr_t) p & ~(page - 1);
  end = ((uintptr_t) p + n + page - 1) & ~(page - 1);
  if (mlock ((void *) start, end - start) == -1)
    return ncr_error (errno, "cannot lock key memory (mlock: %s); raise RLIMIT_MEMLOCK "
                      "(ulimit -l) or run with CAP_IPC_LOCK", strerror (errno));
  if (madvise ((void *) start, end - start, MADV_DONTDUMP) == -1)
    return ncr_error (errno, "cannot exclude key memory from core dumps (madvise: %s)",
                      strerror (errno));
  pthread_mutex_lock (&live_lock);
  for (uintptr_t a = start; a < end; a += page) {
    struct locked_page *e = page_slot (a, false);
    if (e == NULL) {
      if (pages_reserve () < 0) {
        pthread_mutex_unlock (&live_lock);
        return ncr_error (ENOMEM, "out of memory");
      }
      e = page_slot (a, true);
      if (e->page == 0)
        pages_used++;
      *e = (struct locked_page) { a, 0 };
    }
    e->count++;
  }
  pthread_mutex_unlock (&live_lock);
  return 0;
}

void
secmem_unlock_region (const void *p, size_t n)
{
  uintptr_t page = (uintptr_t) sysconf (_SC_PAGESIZE), start, end;

  if (p == NULL || n == 0)
    return;
  start = (uintptr_t) p & ~(page - 1);
  end = ((uintptr_t) p + n + page - 1) & ~(page - 1);
  pthread_mutex_lock (&live_lock);
  for (uintptr_t a = start; a < end; a += page) {
    struct locked_page *e = page_slot (a, false);
    if (e == NULL || --e->count > 0)
      continue;
    e->page = TOMBSTONE;        /* stays counted in pages_used until the table is rebuilt */
    munlock ((void *) a, page);
    madvise ((void *) a, page, MADV_DODUMP);
  }
  pthread_mutex_unlock (&live_lock);
}

size_t
secmem_locked_region_pages (void)
{
  size_t n = 0;

  pthread_mutex_lock (&live_lock);
  for (size_t i = 0; i < pages_cap; i++)
    n += pages[i].page > TOMBSTONE;
  pthread_mutex_unlock (&live_lock);
  return n;
}

void
secmem_keep_across_fork (bool keep)
{
  __atomic_store_n (&keep_across_fork, keep, __ATOMIC_RELAXED);
}

int
secmem_after_fork (void)
{
  struct secmem_header *h;
  size_t i;
  int r = 0;

  secmem_keep_across_fork (false);
  pthread_mutex_lock (&live_lock);
  for (h = live; h && r == 0; h = h->next) {
    if (mlock (h, h->map_len) == -1)
      r = ncr_error (errno, "cannot lock key memory again after nbdkit's fork (mlock: %s); "
                     "raise RLIMIT_MEMLOCK (ulimit -l, LimitMEMLOCK=) or run with "
                     "CAP_IPC_LOCK", strerror (errno));
    else if (madvise (h, h->map_len, MADV_DONTDUMP) == -1 ||
             madvise (h, h->map_len, MADV_WIPEONFORK) == -1)
      r = ncr_error (errno, "cannot exclude key memory from core dumps/forks (madvise: %s)",
                     strerror (errno));
  }
  for (i = 0; i < pages_cap && r == 0; i++)
    if (pages[i].page > TOMBSTONE &&
        mlock ((void *) pages[i].page, (size_t) sysconf (_SC_PAGESIZE)) == -1)
      r = ncr_error (errno, "cannot lock key memory again after nbdkit's fork (mlock: %s)",
                     strerror (errno));
  pthread_mutex_unlock (&live_lock);
  return r;
}

#if defined(__clang__)
#define NOINLINE __attribute__ ((noinline))
#else
#define NOINLINE __attribute__ ((noinline, noclone))
#endif

/* All vector registers are caller-saved in the SysV x86-64 ABI: a non-inlined function may
 * clobber them without telling the compiler. */
NOINLINE static void
clear_vector_registers (void)
{
#if defined(__x86_64__)
  if (__builtin_cpu_supports ("avx512f"))
    __asm__ volatile ("vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17\n\t"
                      "vpxord %%zmm18, %%zmm18, %%zmm18\n\tvpxord %%zmm19, %%zmm19, %%zmm19\n\t"
                      "vpxord %%zmm20, %%zmm20, %%zmm20\n\tvpxord %%zmm21, %%zmm21, %%zmm21\n\t"
                      "vpxord %%zmm22, %%zmm22, %%zmm22\n\tvpxord %%zmm23, %%zmm23, %%zmm23\n\t"
                      "vpxord %%zmm24, %%zmm24, %%zmm24\n\tvpxord %%zmm25, %%zmm25, %%zmm25\n\t"
                      "vpxord %%zmm26, %%zmm26, %%zmm26\n\tvpxord %%zmm27, %%zmm27, %%zmm27\n\t"
                      "vpxord %%zmm28, %%zmm28, %%zmm28\n\tvpxord %%zmm29, %%zmm29, %%zmm29\n\t"
                      "vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31"
                      ::: "memory");
  if (__builtin_cpu_supports ("avx"))
    __asm__ volatile ("vzeroall" ::: "memory");         /* ymm0-15 (zmm0-15 too) */
  else
    __asm__ volatile ("pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\t"
                      "pxor %%xmm3, %%xmm3\n\tpxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\t"
                      "pxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\tpxor %%xmm8, %%xmm8\n\t"
                      "pxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
                      "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\t"
                      "pxor %%xmm15, %%xmm15" ::: "memory");
#endif
}

NOINLINE static void
scrub_stack (void)
{
  uint8_t area[SECMEM_SCRUB_BYTES];

  explicit_bzero (area, sizeof area);
  __asm__ volatile ("" : : "r" (area) : "memory");      /* area stays live: no dead store */
}

void
secmem_scrub_cpu (void)
{
  /* Registers first: explicit_bzero itself may spill them while resolving its symbol. */
  clear_vector_registers ();
  scrub_stack ();
  clear_vector_registers ();
}

int
secmem_protect_process (bool allow_core_dumps)
{
  if (allow_core_dumps)
    return 0;
  if (prctl (PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
    return ncr_error (errno, "prctl(PR_SET_DUMPABLE, 0): %s", strerror (errno));
  return 0;
}
