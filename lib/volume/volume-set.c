/* SPDX-License-Identifier: BSD-3-Clause */
/* The volumes of one serving process: shared key provider, UUID lookup, batched preload, one key
 * check thread (see volume-set.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errors.h"
#include "secmem.h"
#include "timeutil.h"
#include "volume-set.h"

struct volume_set {
  const struct session_config *cfg;
  struct vset_hooks hooks;
  struct keyprov *kp;           /* NULL once a KEK file is dropped */
  bool kp_dropped;
  bool no_reread;
  char kp_warning[1024];
  /* The volumes, newest first. `lock` guards the list; `open_lock` serializes opening new
   * volumes (a KMS round trip), so that lookups of held volumes never wait on the KMS. */
  pthread_mutex_t lock;
  pthread_mutex_t open_lock;
  struct volume_session *head;
  size_t count;
  struct retired *retired;      /* volumes replaced by vset_adopt, keys wiped */
  /* key check */
  pthread_t checker;
  bool checker_running;
  pthread_mutex_t ck_lock;
  pthread_cond_t ck_cond;
  bool ck_stop;
  unsigned interval_s;
};

struct retired {
  struct volume *vol;
  struct retired *next;
};

int
vset_new (const struct session_config *c, const struct vset_hooks *hooks, struct volume_set **out)
{
  struct volume_set *vs = calloc (1, sizeof *vs);
  pthread_condattr_t ca;
  int r;

  if (vs == NULL)
    return ncr_error (ENOMEM, "out of memory");
  vs->cfg = c;
  vs->hooks = *hooks;
  if ((r = session_open_provider (c, &vs->kp)) < 0) {
    free (vs);
    return r;
  }
  snprintf (vs->kp_warning, sizeof vs->kp_warning, "%s", keyprov_warning (vs->kp));
  pthread_mutex_init (&vs->lock, NULL);
  pthread_mutex_init (&vs->open_lock, NULL);
  pthread_mutex_init (&vs->ck_lock, NULL);
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&vs->ck_cond, &ca);
  pthread_condattr_destroy (&ca);
  *out = vs;
  return 0;
}

const char *
vset_provider_warning (const struct volume_set *vs)
{
  return vs->kp_warning;
}

/* The held volume with this UUID (caller holds vs->lock). */
static struct volume_session *
find_locked (struct volume_set *vs, const uint8_t uuid[VH_UUID_LEN])
{
  for (struct volume_session *s = vs->head; s; s = s->next)
    if (s->has_uuid && memcmp (s->uuid, uuid, VH_UUID_LEN) == 0)
      return s;
  return NULL;
}

struct volume_session *
vset_find (struct volume_set *vs, const uint8_t uuid[VH_UUID_LEN])
{
  pthread_mutex_lock (&vs->lock);
  struct volume_session *s = find_locked (vs, uuid);
  pthread_mutex_unlock (&vs->lock);
  return s;
}

/* Is the volume whose headers are hs one we hold? Only if its UUID matches AND its header MAC
 * checks under the held DEK: a header copied or forged with a held volume's UUID does not get
 * that volume's key. A revoked volume (key wiped) matches on its UUID alone: it is refused
 * either way. Caller holds vs->lock. */
static struct volume_session *
match_locked (struct volume_set *vs, const struct volume_headers *hs)
{
  const struct volume_header *h = &hs->copy[hs->newest];
  struct volume_session *s = find_locked (vs, h->uuid);

  if (s == NULL)
    return NULL;
  if (__atomic_load_n (&s->revoked, __ATOMIC_SEQ_CST) || s->key == NULL)
    return s;
  if (volume_header_check_key (s->key, s->key_len, h) == 0)
    return s;
  /* The end of an online re-encryption: the header is under the next key already. */
  return s->next_key && volume_header_check_key (s->next_key, s->key_len, h) == 0 ? s : NULL;
}

/* Add a newly opened volume (caller holds open_lock, not lock). */
static int
add_volume (struct volume_set *vs, const char *name, struct volume_session *s, bool before_fork)
{
  int r;

  snprintf (s->name, sizeof s->name, "%s", name);
  if (vs->hooks.attach && (r = vs->hooks.attach (vs->hooks.opaque, s, before_fork)) < 0)
    return r;
  pthread_mutex_lock (&vs->lock);
  s->next = vs->head;
  vs->head = s;
  vs->count++;
  pthread_mutex_unlock (&vs->lock);
  return 0;
}

static int
no_provider (void)
{
  return ncr_error (ENOKEY, "this volume is not one the server opened at start, and the KEK "
                    "file is no longer loaded (a server whose plugin has one export keeps a "
                    "KEK file only while it opens that volume): restart nbdkit");
}

int
vset_open (struct volume_set *vs, const char *name, volume_read_fn rd, void *reader,
           uint64_t size, unsigned timeout_s, bool before_fork, struct volume_session **out)
{
  struct volume_headers hs;
  struct volume_session *s;
  int r;

  /* The headers are read for every connection (two small reads): the data under an export
   * name may have changed since, and only the header says which volume it is. */
  if (volume_read_headers (rd, reader, size, &hs) == 0 && hs.newest >= 0 && !hs.conflict) {
    pthread_mutex_lock (&vs->lock);
    s = match_locked (vs, &hs);
    pthread_mutex_unlock (&vs->lock);
    if (s) {
      *out = s;
      return 0;
    }
  }
  /* Not held (or unreadable: session_open_header says why). */
  pthread_mutex_lock (&vs->open_lock);
  pthread_mutex_lock (&vs->lock);
  s = hs.newest >= 0 && !hs.conflict ? match_locked (vs, &hs) : NULL;  /* opened meanwhile? */
  pthread_mutex_unlock (&vs->lock);
  if (s)
    r = 0;
  else if (vs->kp == NULL)
    r = no_provider ();
  else if ((r = session_open_header (vs->cfg, vs->kp, timeout_s, rd, reader, size, &s)) == 0 &&
           (r = add_volume (vs, name, s, before_fork)) < 0) {
    session_free (s);
    s = NULL;
  }
  pthread_mutex_unlock (&vs->open_lock);
  if (r == 0)
    *out = s;
  return r;
}

int
vset_open_key_id (struct volume_set *vs, enum ncr_cipher cipher, unsigned sector_size,
                  bool before_fork, struct volume_session **out)
{
  struct volume_session *s;
  int r;

  pthread_mutex_lock (&vs->open_lock);
  if ((r = session_open_key_id (vs->cfg, vs->kp, cipher, sector_size, &s)) == 0 &&
      (r = add_volume (vs, "", s, before_fork)) < 0)
    session_free (s);
  pthread_mutex_unlock (&vs->open_lock);
  if (r == 0)
    *out = s;
  return r;
}

/* Preload ---------------------------------------------------------------------------------- */

static void
set_reason (char *reasons, size_t reason_size, size_t i, const char *msg)
{
  if (reasons)
    snprintf (reasons + i * reason_size, reason_size, "%s", msg);
}

/* What unwrapping the volume behind export `name` needs from the KMS: its newest header copy's
 * KEK, wrap and wrapped DEK (w->kek_id etc. point into *hs). Returns 0 if it is to be opened
 * (w filled), 1 if it is held already, -errno if its headers cannot be read (opened one by
 * one later, which says why). */
static int
want_for (struct volume_set *vs, const char *name, struct volume_headers *hs,
          struct keyprov_want *w)
{
  void *reader;
  uint64_t size;
  int r;

  if ((r = vs->hooks.reader_open (vs->hooks.opaque, name, &reader, &size)) < 0)
    return r;
  r = volume_read_headers (vs->hooks.read, reader, size, hs);
  vs->hooks.reader_close (vs->hooks.opaque, reader);
  if (r < 0 || hs->newest < 0 || hs->conflict)
    return r < 0 ? r : -EINVAL;
  pthread_mutex_lock (&vs->lock);
  bool held = match_locked (vs, hs) != NULL;
  pthread_mutex_unlock (&vs->lock);
  if (held)
    return 1;
  /* The slot volume_open will try first with this provider. */
  const struct volume_header *h = &hs->copy[hs->newest];
  int slot = volume_pick_slot (h, vs->kp);
  if (slot < 0)
    return -ENOKEY;
  w->kek_id = h->slot[slot].kek_id;
  w->wrap = h->slot[slot].wrap;
  w->wrapped = h->slot[slot].wrapped_dek;
  w->wrapped_len = h->slot[slot].wrapped_dek_len;
  return 0;
}

/* Ask the KMS for everything the volumes not held yet need, in batched requests (retrying an
 * unreachable KMS until deadline_ms): the opens that follow then need no round trip. */
static void
prefetch (struct volume_set *vs, size_t n, const char *const *names, uint64_t deadline_ms)
{
  struct volume_headers *hs = calloc (n, sizeof *hs);
  struct keyprov_want *w = calloc (n, sizeof *w);
  size_t m = 0;
  struct ncr_backoff b;
  uint64_t now = ncr_now_ms ();
  int r;

  if (hs == NULL || w == NULL || vs->kp == NULL || keyprov_kind (vs->kp) != KEYPROV_KMIP)
    goto out;
  for (size_t i = 0; i < n; i++)
    if (want_for (vs, names[i], &hs[m], &w[m]) == 0)
      m++;
  if (m == 0)
    goto out;
  ncr_backoff_init (&b, deadline_ms > now ? deadline_ms - now : 0);
  do
    r = keyprov_prefetch (vs->kp, w, m);
  while (r < 0 && keyprov_error_is_transient (r) && ncr_backoff_wait (&b));
 out:
  free (w);
  free (hs);
}

size_t
vset_preload (struct volume_set *vs, size_t n, const char *const *names, unsigned timeout_s,
              bool before_fork, int *results, char *reasons, size_t reason_size)
{
  size_t opened = 0;
  uint64_t deadline = ncr_now_ms () + (uint64_t) timeout_s * 1000;

  if (vs->hooks.reader_open)
    prefetch (vs, n, names, deadline);
  for (size_t i = 0; i < n; i++) {
    void *reader = NULL;
    uint64_t size;
    struct volume_session *s;
    int r;

    if (vs->hooks.reader_open == NULL)
      r = ncr_error (ENOTSUP, "the server cannot read exports outside a connection");
    else if ((r = vs->hooks.reader_open (vs->hooks.opaque, names[i], &reader, &size)) == 0) {
      /* After the prefetch, an item the KMS could not serve is tried once more alone (the
       * KMS may be back); none waits past the deadline. */
      uint64_t now = ncr_now_ms ();
      unsigned left = now < deadline ? (unsigned) ((deadline - now + 999) / 1000) : 0;
      r = vset_open (vs, names[i], vs->hooks.read, reader, size, left, before_fork, &s);
      vs->hooks.reader_close (vs->hooks.opaque, reader);
    }
    results[i] = r;
    if (r < 0)
      set_reason (reasons, reason_size, i, ncr_last_error ());
    else
      opened++;
  }
  if (vs->kp)
    keyprov_forget (vs->kp);    /* what was prefetched and not used: wiped */
  return opened;
}

/* The key check --------------------------------------------------------------------------- */

int
vset_foreach (struct volume_set *vs, int (*fn) (struct volume_session *, void *), void *arg)
{
  int r = 0;

  pthread_mutex_lock (&vs->lock);
  /* Oldest first: the list is newest first, so walk it into an array. */
  size_t n = vs->count, i = n;
  struct volume_session **all = malloc ((n ? n : 1) * sizeof *all);
  if (all == NULL) {
    pthread_mutex_unlock (&vs->lock);
    return -ENOMEM;
  }
  for (struct volume_session *s = vs->head; s && i > 0; s = s->next)
    all[--i] = s;
  pthread_mutex_unlock (&vs->lock);
  for (i = 0; i < n && r == 0; i++)
    r = fn (all[i], arg);
  free (all);
  return r;
}

size_t
vset_count (struct volume_set *vs)
{
  pthread_mutex_lock (&vs->lock);
  size_t n = vs->count;
  pthread_mutex_unlock (&vs->lock);
  return n;
}

/* A rewrap moved the volume to another KMS KEK (its header's MAC still matching the DEK in
 * use): watch that KEK from now on. */
static void
follow_rewrap (struct volume_set *vs, struct volume_session *s)
{
  struct volume_headers hs;
  const struct volume_header *h;
  enum keyprov_kind kind;
  void *reader;
  uint64_t size;
  char msg[1024];
  int r;

  if (s->vol == NULL || vs->no_reread || vs->hooks.reader_open == NULL ||
      vs->hooks.reader_open (vs->hooks.opaque, s->name, &reader, &size) < 0)
    return;
  r = volume_read_headers (vs->hooks.read, reader, size, &hs);
  vs->hooks.reader_close (vs->hooks.opaque, reader);
  if (r < 0 || hs.newest < 0 || hs.conflict)
    return;
  h = &hs.copy[hs.newest];
  /* Still in a keyslot (other slots may hold other KEKs, revoked ones too): keep watching. */
  if (volume_header_find_slot (h, "kmip", s->check_id) >= 0 || s->key == NULL ||
      volume_header_check_key (s->key, s->key_len, h) < 0)
    return;
  /* Gone from every slot: a rewrap replaced it. Watch the first KMS slot's KEK now. */
  const struct volume_keyslot *k = NULL;
  for (unsigned i = 0; i < volume_header_slots (h) && k == NULL; i++)
    if (keyprov_kind_from_name (h->slot[i].kek_provider, &kind) == 0 && kind == KEYPROV_KMIP)
      k = &h->slot[i];
  if (k == NULL)
    return;
  snprintf (msg, sizeof msg, "key check: the volume was rewrapped from KEK %s to KEK %s; "
            "watching %s from now on", s->check_id, k->kek_id, k->kek_id);
  snprintf (s->check_id, sizeof s->check_id, "%s", k->kek_id);
  vs->hooks.event (vs->hooks.opaque, s, SESSION_EVENT_KEK_CHANGED, msg);
}

/* One round of checks over every watched, not yet revoked volume. */
struct check_round {
  struct volume_set *vs;
  struct volume_session **list;
  size_t n, cap;
};

static int
collect (struct volume_session *s, void *arg)
{
  struct check_round *cr = arg;

  if (!s->watch || __atomic_load_n (&s->revoked, __ATOMIC_SEQ_CST))
    return 0;
  if (cr->n == cr->cap) {
    size_t cap = cr->cap ? cr->cap * 2 : 16;
    struct volume_session **l = realloc (cr->list, cap * sizeof *l);
    if (l == NULL)
      return -ENOMEM;
    cr->list = l;
    cr->cap = cap;
  }
  cr->list[cr->n++] = s;
  return 0;
}

static void
revoke (struct volume_set *vs, struct volume_session *s, enum kek_state st)
{
  snprintf (s->revoked_msg, sizeof s->revoked_msg, "key %s is %s in the KMS: the volume key "
            "may no longer be used", s->check_id, kek_state_name (st));
  __atomic_store_n (&s->revoked, 1, __ATOMIC_SEQ_CST);
  vs->hooks.event (vs->hooks.opaque, s, SESSION_EVENT_REVOKED, s->revoked_msg);
}

static void
check_round (struct volume_set *vs, bool *failing)
{
  struct check_round cr = { .vs = vs };
  char msg[600];

  if (vset_foreach (vs, collect, &cr) < 0 || cr.n == 0) {
    free (cr.list);
    return;
  }
  for (size_t i = 0; i < cr.n; i++)
    follow_rewrap (vs, cr.list[i]);
  struct keyprov_state_query *q = calloc (cr.n, sizeof *q);
  if (q == NULL) {
    free (cr.list);
    return;
  }
  for (size_t i = 0; i < cr.n; i++)
    q[i].kek_id = cr.list[i]->check_id;
  int r = keyprov_kek_state_many (vs->kp, q, cr.n);
  for (size_t i = 0; i < cr.n; i++) {
    struct volume_session *s = cr.list[i];

    if (r < 0 || q[i].result < 0) {
      snprintf (msg, sizeof msg, "key check: cannot get the state of %s from the KMS (%s); "
                "still serving with the cached key", s->check_id,
                r < 0 ? ncr_last_error () : strerror (-q[i].result));
      *failing = true;
      vs->hooks.event (vs->hooks.opaque, s, SESSION_EVENT_UNREACHABLE, msg);
      if (r < 0)
        break;                  /* the whole exchange failed: one line, not one per volume */
      continue;
    }
    if (*failing) {
      *failing = false;
      snprintf (msg, sizeof msg, "key check: the KMS answers again (%s is %s)", s->check_id,
                kek_state_name (q[i].state));
      vs->hooks.event (vs->hooks.opaque, s, SESSION_EVENT_RECOVERED, msg);
    }
    if (kek_state_is_revoked (q[i].state))
      revoke (vs, s, q[i].state);
  }
  free (q);
  free (cr.list);
}

static void *
checker_main (void *arg)
{
  struct volume_set *vs = arg;
  bool failing = false;

  for (;;) {
    struct timespec until;

    clock_gettime (CLOCK_MONOTONIC, &until);
    until.tv_sec += vs->interval_s;
    pthread_mutex_lock (&vs->ck_lock);
    while (!vs->ck_stop) {
      if (pthread_cond_timedwait (&vs->ck_cond, &vs->ck_lock, &until) == ETIMEDOUT)
        break;
    }
    bool stop = vs->ck_stop;
    pthread_mutex_unlock (&vs->ck_lock);
    if (stop)
      return NULL;
    check_round (vs, &failing);
  }
}

void
vset_no_reread (struct volume_set *vs)
{
  vs->no_reread = true;
}

int
vset_start_checker (struct volume_set *vs, unsigned interval_s)
{
  int r;

  if (interval_s == 0 || vs->kp == NULL || keyprov_kind (vs->kp) != KEYPROV_KMIP ||
      vs->checker_running)
    return 0;                   /* a KEK file has no life cycle to watch */
  vs->interval_s = interval_s;
  r = pthread_create (&vs->checker, NULL, checker_main, vs);
  if (r != 0)
    return ncr_error (r, "cannot start the key check thread: %s", strerror (r));
  vs->checker_running = true;
  return 0;
}

int
vset_dup_volume (struct volume_set *vs, struct volume_session *s, struct volume **out)
{
  int r;

  pthread_mutex_lock (&vs->lock);
  if (__atomic_load_n (&s->revoked, __ATOMIC_SEQ_CST) || s->key == NULL)
    r = ncr_error (EPERM, "the volume key was revoked");
  else if (s->vol == NULL)
    r = ncr_error (EINVAL, "a headerless volume");
  else
    r = volume_adopt_header (&s->vol->hdr, s->vol->used_copy, s->vol->cipher, s->vol->dek,
                             s->vol->dek_len, out);
  pthread_mutex_unlock (&vs->lock);
  return r;
}

void
vset_adopt (struct volume_set *vs, struct volume_session *s, struct volume *nv)
{
  struct retired *r = calloc (1, sizeof *r);

  pthread_mutex_lock (&vs->lock);
  if (__atomic_load_n (&s->revoked, __ATOMIC_SEQ_CST)) {
    pthread_mutex_unlock (&vs->lock);   /* revoked meanwhile: its keys stay wiped */
    volume_free (nv);
    free (r);
    return;
  }
  struct volume *old = s->vol;
  s->vol = nv;
  s->key = nv->dek;
  s->next_key = nv->next_dek;
  pthread_mutex_unlock (&vs->lock);
  if (old == NULL)
    return;
  explicit_bzero (old->dek, old->dek_len);
  if (old->next_dek)
    explicit_bzero (old->next_dek, old->dek_len);
  if (r == NULL) {
    volume_free (old);          /* no memory to keep it: a key check reading it now is rare */
    return;
  }
  r->vol = old;
  pthread_mutex_lock (&vs->lock);
  r->next = vs->retired;
  vs->retired = r;
  pthread_mutex_unlock (&vs->lock);
}

void
vset_wipe_key (struct volume_set *vs, struct volume_session *s)
{
  pthread_mutex_lock (&vs->lock);
  session_wipe_key (s);
  pthread_mutex_unlock (&vs->lock);
}

void
vset_prepare_fork (struct volume_set *vs)
{
  if (vs->kp)
    keyprov_disconnect (vs->kp);
}

void
vset_drop_file_provider (struct volume_set *vs)
{
  pthread_mutex_lock (&vs->open_lock);
  if (vs->kp && keyprov_kind (vs->kp) == KEYPROV_FILE) {
    keyprov_free (vs->kp);      /* the KEK, wiped */
    vs->kp = NULL;
    vs->kp_dropped = true;
  }
  pthread_mutex_unlock (&vs->open_lock);
}

void
vset_kms_stats (struct volume_set *vs, uint64_t *messages, uint64_t *connections)
{
  *messages = *connections = 0;
  if (vs->kp)
    keyprov_stats (vs->kp, messages, connections);
}

void
vset_free (struct volume_set *vs)
{
  if (vs == NULL)
    return;
  if (vs->checker_running) {
    pthread_mutex_lock (&vs->ck_lock);
    vs->ck_stop = true;
    pthread_cond_signal (&vs->ck_cond);
    pthread_mutex_unlock (&vs->ck_lock);
    pthread_join (vs->checker, NULL);
  }
  while (vs->head) {
    struct volume_session *s = vs->head;
    vs->head = s->next;
    if (vs->hooks.detach)
      vs->hooks.detach (vs->hooks.opaque, s);
    session_free (s);
  }
  while (vs->retired) {
    struct retired *r = vs->retired;
    vs->retired = r->next;
    volume_free (r->vol);
    free (r);
  }
  keyprov_free (vs->kp);
  pthread_cond_destroy (&vs->ck_cond);
  pthread_mutex_destroy (&vs->ck_lock);
  pthread_mutex_destroy (&vs->open_lock);
  pthread_mutex_destroy (&vs->lock);
  free (vs);
}
