/* SPDX-License-Identifier: BSD-3-Clause */
/* Keys fetched ahead for many volumes at once (keyprov_prefetch): KEKs by id and DEKs by
 * (KEK id, wrapped bytes), in locked memory until dropped. Not thread-safe: its owner (a key
 * provider) holds its own lock around every call. */
#ifndef NBDCRYPT_KEYCACHE_H
#define NBDCRYPT_KEYCACHE_H

#include <stddef.h>
#include <stdint.h>

/* The largest secret kept: an AES-256 KEK (32 bytes) or an XTS DEK (up to 64). */
#define KEYCACHE_SECRET_MAX 64

struct keycache_entry {
  char *kek_id;
  uint8_t *wrapped;             /* a DEK: its wrapped form (not secret); NULL for a KEK */
  size_t wrapped_len;
  uint8_t *secret;              /* a slot of locked memory, KEYCACHE_SECRET_MAX bytes */
  size_t len;
  uint64_t seq;                 /* order of insertion: the newest of equal keys wins */
};

struct keycache {
  struct keycache_entry *e;     /* sorted by key when sorted is set */
  size_t n, cap;
  int sorted;
  uint64_t seq;
  void **slabs;                 /* secmem pages cut into slots */
  size_t nslabs;
  uint8_t **free_slots;
  size_t nfree, free_cap;
};

#define KEYCACHE_INIT { .sorted = 1 }

/* Keep a copy of secret (len <= KEYCACHE_SECRET_MAX bytes) for a KEK (wrapped NULL) or the
 * DEK wrapped as wrapped[0..wrapped_len), replacing an entry with the same key. Returns 0 or
 * -errno with a message. */
int keycache_put (struct keycache *kc, const char *kek_id, const uint8_t *wrapped,
                  size_t wrapped_len, const uint8_t *secret, size_t len);

/* The entry for that key, or NULL. Valid until the next call that changes the cache. */
const struct keycache_entry *keycache_find (struct keycache *kc, const char *kek_id,
                                            const uint8_t *wrapped, size_t wrapped_len);

/* Drop (wiping) the KEK kek_id and every DEK wrapped under it. */
void keycache_drop_kek (struct keycache *kc, const char *kek_id);

/* Drop everything, wiping every secret, and free the locked memory. */
void keycache_clear (struct keycache *kc);

#endif /* NBDCRYPT_KEYCACHE_H */
