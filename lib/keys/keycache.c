/* SPDX-License-Identifier: BSD-3-Clause */
/* The prefetched-key cache (keycache.h): a sorted array of entries, the secrets in slots cut
 * from a few locked pages (secmem maps at least a page per allocation, too much for one
 * 32-byte key per volume times thousands of volumes). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "keycache.h"
#include "secmem.h"

/* A slot of locked memory, from the free list or a new slab. */
static uint8_t *
slot_get (struct keycache *kc)
{
  if (kc->nfree == 0) {
    size_t page = (size_t) sysconf (_SC_PAGESIZE);
    size_t nslots = page / KEYCACHE_SECRET_MAX;
    void **slabs;
    uint8_t **fs, *slab;

    slabs = realloc (kc->slabs, (kc->nslabs + 1) * sizeof *slabs);
    if (slabs == NULL)
      return NULL;
    kc->slabs = slabs;
    /* Room for every slot of every slab: slot_put never has to grow the list. */
    fs = realloc (kc->free_slots, (kc->nslabs + 1) * nslots * sizeof *fs);
    if (fs == NULL)
      return NULL;
    kc->free_slots = fs;
    kc->free_cap = (kc->nslabs + 1) * nslots;
    slab = secmem_alloc (page);
    if (slab == NULL)
      return NULL;
    kc->slabs[kc->nslabs++] = slab;
    for (size_t i = 0; i < nslots; i++)
      kc->free_slots[kc->nfree++] = slab + i * KEYCACHE_SECRET_MAX;
  }
  return kc->free_slots[--kc->nfree];
}

/* Wipe a slot and give it back (the free list has room for all slots, see slot_get). */
static void
slot_put (struct keycache *kc, uint8_t *slot)
{
  explicit_bzero (slot, KEYCACHE_SECRET_MAX);
  kc->free_slots[kc->nfree++] = slot;
}

static void
entry_free (struct keycache *kc, struct keycache_entry *e)
{
  slot_put (kc, e->secret);
  free (e->kek_id);
  free (e->wrapped);
}

/* The order of keys: KEK id, then wrapped length (a KEK, 0, before its DEKs), then bytes. */
static int
key_cmp (const char *id1, const uint8_t *w1, size_t l1,
         const char *id2, const uint8_t *w2, size_t l2)
{
  int c = strcmp (id1, id2);

  if (c)
    return c;
  if (l1 != l2)
    return l1 < l2 ? -1 : 1;
  return l1 ? memcmp (w1, w2, l1) : 0;
}

static int
entry_cmp (const void *a, const void *b)
{
  const struct keycache_entry *x = a, *y = b;
  int c = key_cmp (x->kek_id, x->wrapped, x->wrapped_len, y->kek_id, y->wrapped,
                   y->wrapped_len);

  if (c)
    return c;
  return x->seq > y->seq ? -1 : x->seq < y->seq;      /* newest first */
}

/* Sort, and drop the older of entries with equal keys. */
static void
sort_entries (struct keycache *kc)
{
  size_t o = 0;

  if (kc->sorted)
    return;
  qsort (kc->e, kc->n, sizeof *kc->e, entry_cmp);
  for (size_t i = 0; i < kc->n; i++) {
    if (o > 0 && key_cmp (kc->e[o - 1].kek_id, kc->e[o - 1].wrapped, kc->e[o - 1].wrapped_len,
                          kc->e[i].kek_id, kc->e[i].wrapped, kc->e[i].wrapped_len) == 0)
      entry_free (kc, &kc->e[i]);
    else
      kc->e[o++] = kc->e[i];
  }
  kc->n = o;
  kc->sorted = 1;
}

int
keycache_put (struct keycache *kc, const char *kek_id, const uint8_t *wrapped,
              size_t wrapped_len, const uint8_t *secret, size_t len)
{
  struct keycache_entry e = { .wrapped_len = wrapped ? wrapped_len : 0, .len = len };

  if (len == 0 || len > KEYCACHE_SECRET_MAX || (wrapped && wrapped_len == 0))
    return ncr_error (EINVAL, "key cache: a %zu-byte key cannot be kept (at most %d)", len,
                      KEYCACHE_SECRET_MAX);
  if (kc->n == kc->cap) {
    size_t cap = kc->cap ? 2 * kc->cap : 64;
    struct keycache_entry *ne = realloc (kc->e, cap * sizeof *ne);
    if (ne == NULL)
      return ncr_error (ENOMEM, "out of memory");
    kc->e = ne;
    kc->cap = cap;
  }
  e.kek_id = strdup (kek_id);
  if (wrapped && (e.wrapped = malloc (wrapped_len)) != NULL)
    memcpy (e.wrapped, wrapped, wrapped_len);
  if (e.kek_id == NULL || (wrapped && e.wrapped == NULL)) {
    free (e.kek_id);
    free (e.wrapped);
    return ncr_error (ENOMEM, "out of memory");
  }
  e.secret = slot_get (kc);
  if (e.secret == NULL) {
    int err = errno ? errno : ENOMEM;
    free (e.kek_id);
    free (e.wrapped);
    return ncr_error_prefix (err, "key cache: ");
  }
  memcpy (e.secret, secret, len);
  e.seq = ++kc->seq;
  kc->e[kc->n++] = e;
  kc->sorted = 0;
  return 0;
}

const struct keycache_entry *
keycache_find (struct keycache *kc, const char *kek_id, const uint8_t *wrapped,
               size_t wrapped_len)
{
  size_t lo = 0, hi;

  if (wrapped == NULL)
    wrapped_len = 0;
  sort_entries (kc);
  hi = kc->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct keycache_entry *m = &kc->e[mid];
    int c = key_cmp (kek_id, wrapped, wrapped_len, m->kek_id, m->wrapped, m->wrapped_len);

    if (c == 0)
      return m;
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

void
keycache_drop_kek (struct keycache *kc, const char *kek_id)
{
  size_t o = 0;

  for (size_t i = 0; i < kc->n; i++) {
    if (strcmp (kc->e[i].kek_id, kek_id) == 0)
      entry_free (kc, &kc->e[i]);
    else
      kc->e[o++] = kc->e[i];
  }
  kc->n = o;                    /* removing keeps the order */
}

void
keycache_clear (struct keycache *kc)
{
  for (size_t i = 0; i < kc->n; i++) {
    free (kc->e[i].kek_id);
    free (kc->e[i].wrapped);
  }
  free (kc->e);
  for (size_t i = 0; i < kc->nslabs; i++)
    secmem_free (kc->slabs[i]);             /* wipes every slot */
  free (kc->slabs);
  free (kc->free_slots);
  *kc = (struct keycache) KEYCACHE_INIT;
}
