/* SPDX-License-Identifier: BSD-3-Clause */
/* Memory for secrets: mlock'd, left out of core dumps and forked children, wiped on free. */
#ifndef NBDCRYPT_SECMEM_H
#define NBDCRYPT_SECMEM_H

#include <stdbool.h>
#include <stddef.h>

/* Allocate n zeroed bytes in their own mapping, mlock'd, MADV_DONTDUMP and MADV_WIPEONFORK.
 * Returns NULL with errno set (and a message in ncr_last_error) on failure: a secret is never
 * silently placed in unlocked memory. */
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

/* Make the process non-dumpable while it holds keys (PR_SET_DUMPABLE 0), unless
 * allow_core_dumps, the debugging opt-out. Returns 0 or -errno. */
int secmem_protect_process (bool allow_core_dumps);

#endif /* NBDCRYPT_SECMEM_H */
