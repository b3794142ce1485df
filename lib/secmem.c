/* SPDX-License-Identifier: BSD-3-Clause */
/* Locked, non-dumpable, wipe-on-fork allocations for key material.
 *
 * Each allocation is its own anonymous mapping so that madvise() flags apply to it alone
 * and nothing else shares its pages. A small header in front records the mapping size. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "errors.h"
#include "secmem.h"

#define SECMEM_HEADER SECMEM_ALIGN  /* keeps the returned pointer SECMEM_ALIGN-aligned */

struct secmem_header {
  size_t map_len;
};

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
      madvise (base, len, MADV_WIPEONFORK) == -1) {
    int e = errno;
    munlock (base, len);
    munmap (base, len);
    ncr_error (e, "cannot exclude key memory from core dumps/forks (madvise: %s)",
               strerror (e));
    errno = e;
    return NULL;
  }
  ((struct secmem_header *) base)->map_len = len;
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
  return 0;
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
