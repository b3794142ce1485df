/* SPDX-License-Identifier: BSD-3-Clause */
/* Memory for secrets: mlock'd, left out of core dumps and forked children, wiped on free. */
#ifndef NBDCRYPT_SECMEM_H
#define NBDCRYPT_SECMEM_H

#include <stdbool.h>
#include <stddef.h>

/* Allocate n zeroed bytes in their own mapping, mlock'd, MADV_DONTDUMP and MADV_WIPEONFORK.
 * The pointer is SECMEM_ALIGN-byte aligned (enough for AVX-512 key schedules). Each call maps
 * whole pages of its own (at least one page), so allocate few, long-lived objects.
 * Returns NULL with errno set (and a message in ncr_last_error) on failure: a secret is never
 * silently placed in unlocked memory. */
#define SECMEM_ALIGN 64
void *secmem_alloc (size_t n);

/* Wipe, unlock and unmap memory from secmem_alloc. NULL is fine. */
void secmem_free (void *p);

/* Cleanup attribute for pointers from secmem_alloc. */
static inline void
cleanup_secmem_free (void *ptr)
{
  secmem_free (*(void **) ptr);
}
#define CLEANUP_SECMEM_FREE __attribute__ ((cleanup (cleanup_secmem_free)))

/* For a secret inside an object this module did not allocate (a heap object of a library,
 * e.g. an OpenSSL provider context holding an AES key schedule): mlock the pages that hold
 * [p, p + n) and leave them out of core dumps (MADV_DONTDUMP). Call it before the secret is
 * written where possible. Not MADV_WIPEONFORK: the pages are shared with unrelated objects
 * that a forked child needs. Pages are counted: each stays locked until the last region on it
 * is given back with secmem_unlock_region (the owner wipes the secret before that). Returns 0
 * or -errno with a message. */
int secmem_lock_region (const void *p, size_t n);

/* The object locked with secmem_lock_region (p, n) is gone (its secret wiped): pages no other
 * live region is on are unlocked and may be dumped again. */
void secmem_unlock_region (const void *p, size_t n);

/* Pages locked through secmem_lock_region now (tests). */
size_t secmem_locked_region_pages (void);

/* After key bytes went through the CPU: zero the vector registers (SSE/AVX/AVX-512) and the
 * SECMEM_SCRUB_BYTES of stack below the caller's frame. Memory copies, OpenSSL and our XTS
 * code leave keys in vector registers and in dead stack frames; the dynamic linker's lazy
 * binding (_dl_runtime_resolve_xsavec) later spills every vector register onto the stack of
 * whatever thread calls an unresolved function, and new threads inherit the registers. So a
 * key would end up in ordinary, dumpable stack memory long after it was wiped from its
 * buffer. Call it from a frame above the code that handled the key. */
#define SECMEM_SCRUB_BYTES (64 * 1024)
void secmem_scrub_cpu (void);

/* Keys that must outlive a fork: nbdkit opens the volume before it forks (so that a failure
 * fails its start), and the serving process is the child. MADV_WIPEONFORK would hand the
 * child zeros, and the child inherits no mlock. While keep is true, secmem_alloc does not set
 * MADV_WIPEONFORK; secmem_after_fork, called in the process that goes on serving, locks
 * every live allocation and every secmem_lock_region region again, sets MADV_WIPEONFORK on
 * the allocations and ends the keep. Returns 0 or -errno with a message. */
void secmem_keep_across_fork (bool keep);
int secmem_after_fork (void);

/* Make the process non-dumpable while it holds keys (PR_SET_DUMPABLE 0), unless
 * allow_core_dumps, the debugging opt-out. Returns 0 or -errno. */
int secmem_protect_process (bool allow_core_dumps);

#endif /* NBDCRYPT_SECMEM_H */
