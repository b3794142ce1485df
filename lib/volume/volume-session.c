/* SPDX-License-Identifier: BSD-3-Clause */
/* Volume key life cycle for a serving process: parameters, open once, periodic KEK check. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "errors.h"
#include "parse.h"
#include "secmem.h"
#include "timeutil.h"
#include "volume-session.h"

struct session_checker {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop;
  unsigned interval_s;
  session_event_fn ev;
  session_reread_fn reread;
  void *opaque;
  struct volume_session *s;
};

void
session_config_init (struct session_config *c)
{
  memset (c, 0, sizeof *c);
  c->startup_timeout = 60;
  c->check_interval = 300;
}

static int
parse_seconds (const char *key, const char *value, unsigned max, unsigned *out)
{
  uint64_t v;

  if (ncr_parse_uint (value, max, &v) < 0)
    return ncr_error (EINVAL, "%s=%s: expected a number of seconds (0..%u)", key, value, max);
  *out = (unsigned) v;
  return 0;
}

int
session_config_set (struct session_config *c, const char *key, const char *value)
{
  int r;

  if (strcmp (key, "kms-config") == 0)
    c->kms_config = value;
  else if (strcmp (key, "kek-file") == 0)
    c->kek_file = value;
  else if (strcmp (key, "key-id") == 0)
    c->key_id = value;
  else if (strcmp (key, "kms-startup-timeout") == 0) {
    if ((r = parse_seconds (key, value, 86400, &c->startup_timeout)) < 0)
      return r;
  }
  else if (strcmp (key, "key-check-interval") == 0) {
    if ((r = parse_seconds (key, value, 86400 * 7, &c->check_interval)) < 0)
      return r;
  }
  else if (strcmp (key, "on-revoke") == 0) {
    if (strcmp (value, "disconnect") == 0)
      c->on_revoke = SESSION_REVOKE_DISCONNECT;
    else if (strcmp (value, "refuse") == 0)
      c->on_revoke = SESSION_REVOKE_REFUSE;
    else if (strcmp (value, "shutdown") == 0)
      c->on_revoke = SESSION_REVOKE_SHUTDOWN;
    else
      return ncr_error (EINVAL, "on-revoke=%s: expected disconnect, shutdown or refuse", value);
  }
  else if (strcmp (key, "allow-core-dumps") == 0) {
    if (ncr_parse_bool (value, &c->allow_core_dumps) < 0)
      return ncr_error_prefix (EINVAL, "%s: ", key);
  }
  else
    return 0;
  return 1;
}

bool
session_config_active (const struct session_config *c)
{
  return c->kms_config || c->kek_file || c->key_id;
}

bool
session_config_header_mode (const struct session_config *c)
{
  return (c->kms_config || c->kek_file) && c->key_id == NULL;
}

int
session_config_complete (const struct session_config *c, bool have_key_file)
{
  if (have_key_file && session_config_active (c))
    return ncr_error (EINVAL, "key-file= is a raw key for a headerless volume: do not combine "
                      "it with kms-config=, kek-file= or key-id=");
  if (c->kms_config && c->kek_file)
    return ncr_error (EINVAL, "give kms-config= (KEK in a KMS) or kek-file= (local KEK), "
                      "not both");
  if (c->key_id && c->kms_config == NULL)
    return ncr_error (EINVAL, "key-id= needs kms-config=FILE (the KMS holding the key)");
  if (c->key_id && c->kek_file)
    return ncr_error (EINVAL, "key-id= (a raw key in the KMS) and kek-file= do not combine");
  return 0;
}

static int
open_provider (const struct session_config *c, struct keyprov **kp)
{
  if (c->kms_config)
    return keyprov_kmip_open (c->kms_config, kp);
  return keyprov_file_open (c->kek_file, kp);
}

int
session_open_header (const struct session_config *c, volume_read_fn rd, void *opaque, uint64_t size,
                     struct volume_session **out)
{
  struct volume_session *s = calloc (1, sizeof *s);
  int r;

  if (s == NULL)
    return ncr_error (ENOMEM, "out of memory");
  if ((r = open_provider (c, &s->kp)) < 0)
    goto err;
  snprintf (s->key_warning, sizeof s->key_warning, "%s", keyprov_warning (s->kp));
  if ((r = volume_open (rd, opaque, size, s->kp, c->startup_timeout, &s->vol)) < 0) {
    /* The library says what is wrong; the parameters that fix it are ours to name. */
    struct volume_headers hs;
    if (keyprov_error_is_transient (r))
      r = ncr_error (-r, "%s, or raise kms-startup-timeout=", ncr_last_error ());
    else if (r == -ENOKEY)
      r = ncr_error (-r, "%s: give %s", ncr_last_error (),
                     keyprov_kind (s->kp) == KEYPROV_FILE ? "kms-config=FILE" : "kek-file=PATH");
    else if (r == -ENOENT && volume_read_headers (rd, opaque, size, &hs) == -ENOENT)
      r = ncr_error (-r, "%s; a headerless volume is opened with key-file= or key-id=, not %s",
                     ncr_last_error (), c->kms_config ? "kms-config=" : "kek-file=");
    goto err;
  }
  s->cipher = s->vol->cipher;
  s->key = s->vol->dek;
  s->key_len = s->vol->dek_len;
  s->sector_size = s->vol->hdr.sector_size;
  s->data_offset = s->vol->hdr.data_offset;
  snprintf (s->warning, sizeof s->warning, "%s", s->vol->warning);
  snprintf (s->check_id, sizeof s->check_id, "%s", s->vol->hdr.kek_id);
  /* A KEK file has no life cycle to watch: drop the provider now, so that the KEK does not
   * stay in memory (even locked) for the life of the process. */
  if (keyprov_kind (s->kp) == KEYPROV_FILE) {
    keyprov_free (s->kp);
    s->kp = NULL;
  }
  *out = s;
  return 0;
 err:
  session_free (s);
  return r;
}

int
session_open_key_id (const struct session_config *c, enum ncr_cipher cipher, unsigned sector_size,
                     struct volume_session **out)
{
  struct volume_session *s = calloc (1, sizeof *s);
  size_t want = ncr_cipher_key_len (cipher), got = 0;
  struct ncr_backoff b;
  int r;

  if (s == NULL)
    return ncr_error (ENOMEM, "out of memory");
  s->cipher = cipher;
  s->sector_size = sector_size;
  s->key_len = want;
  snprintf (s->check_id, sizeof s->check_id, "%s", c->key_id);
  s->raw_key = secmem_alloc (64);
  if (s->raw_key == NULL) {
    r = -errno;
    goto err;
  }
  if ((r = open_provider (c, &s->kp)) < 0)
    goto err;
  snprintf (s->key_warning, sizeof s->key_warning, "%s", keyprov_warning (s->kp));
  ncr_backoff_init (&b, (uint64_t) c->startup_timeout * 1000);
  do
    r = keyprov_get_key (s->kp, c->key_id, s->raw_key, 64, &got);
  while (r < 0 && keyprov_error_is_transient (r) && ncr_backoff_wait (&b));
  if (r < 0) {
    if (keyprov_error_is_transient (r))
      r = ncr_error (-r, "KMS unreachable for %u s (%s); check the KMS, or raise "
                     "kms-startup-timeout=", c->startup_timeout, ncr_last_error ());
    goto err;
  }
  if (got != want) {
    r = ncr_error (EINVAL, "key %s holds %zu bytes but %s needs %zu (an AES-512 key or Secret "
                   "Data of 64 bytes for aes-256-xts, 32 for aes-128-xts)", c->key_id, got,
                   ncr_cipher_name (cipher), want);
    goto err;
  }
  s->key = s->raw_key;
  *out = s;
  return 0;
 err:
  session_free (s);
  return r;
}

/* After a rewrap the header names another KEK. Follow it only if the header still holds our
 * DEK (its key check value or header MAC matches), its copies agree, and the new KEK is in the
 * same KMS; otherwise keep
 * watching the KEK the volume was opened with. Read errors: try again next time. */
static void
follow_rewrap (struct session_checker *ck)
{
  struct volume_session *s = ck->s;
  struct volume_headers hs;
  const struct volume_header *h;
  enum keyprov_kind kind;
  char msg[600];

  if (ck->reread (ck->opaque, &hs) < 0 || hs.newest < 0 || hs.conflict)
    return;
  h = &hs.copy[hs.newest];
  if (strcmp (h->kek_id, s->check_id) == 0 || keyprov_kind_from_name (h->kek_provider, &kind) < 0 ||
      kind != KEYPROV_KMIP || volume_header_check_key (s->key, s->key_len, h) < 0)
    return;
  snprintf (msg, sizeof msg, "key check: the volume was rewrapped from KEK %s to KEK %s; "
            "watching %s from now on", s->check_id, h->kek_id, h->kek_id);
  snprintf (s->check_id, sizeof s->check_id, "%s", h->kek_id);
  ck->ev (ck->opaque, SESSION_EVENT_KEK_CHANGED, msg);
}

/* One check per interval; the state of the KMS object decides, an unreachable KMS never does. */
static void *
checker_main (void *arg)
{
  struct session_checker *ck = arg;
  struct volume_session *s = ck->s;
  bool failing = false;
  char msg[600];

  for (;;) {
    struct timespec until;
    enum kek_state st;
    int r;

    clock_gettime (CLOCK_MONOTONIC, &until);
    until.tv_sec += ck->interval_s;
    pthread_mutex_lock (&ck->lock);
    while (!ck->stop) {
      if (pthread_cond_timedwait (&ck->cond, &ck->lock, &until) == ETIMEDOUT)
        break;
    }
    bool stop = ck->stop;
    pthread_mutex_unlock (&ck->lock);
    if (stop)
      return NULL;

    if (ck->reread)
      follow_rewrap (ck);
    r = keyprov_kek_state (s->kp, s->check_id, &st);
    if (r < 0) {
      snprintf (msg, sizeof msg, "key check: cannot get the state of %s from the KMS (%s); "
                "still serving with the cached key", s->check_id, ncr_last_error ());
      failing = true;
      ck->ev (ck->opaque, SESSION_EVENT_UNREACHABLE, msg);
      continue;
    }
    if (failing) {
      failing = false;
      snprintf (msg, sizeof msg, "key check: the KMS answers again (%s is %s)", s->check_id,
                kek_state_name (st));
      ck->ev (ck->opaque, SESSION_EVENT_RECOVERED, msg);
    }
    if (kek_state_is_revoked (st)) {
      snprintf (s->revoked_msg, sizeof s->revoked_msg, "key %s is %s in the KMS: the volume "
                "key may no longer be used", s->check_id, kek_state_name (st));
      __atomic_store_n (&s->revoked, 1, __ATOMIC_SEQ_CST);
      ck->ev (ck->opaque, SESSION_EVENT_REVOKED, s->revoked_msg);
      return NULL;              /* final: nothing more to watch */
    }
  }
}

int
session_start_checker (struct volume_session *s, unsigned interval_s, session_event_fn ev,
                       session_reread_fn reread, void *opaque)
{
  struct session_checker *ck;
  pthread_condattr_t ca;
  int r;

  if (interval_s == 0 || s->kp == NULL || keyprov_kind (s->kp) != KEYPROV_KMIP)
    return 0;                   /* a KEK file has no life cycle to watch */
  ck = calloc (1, sizeof *ck);
  if (ck == NULL)
    return ncr_error (ENOMEM, "out of memory");
  ck->interval_s = interval_s;
  ck->ev = ev;
  ck->reread = s->vol ? reread : NULL;     /* key-id= volumes have no header */
  ck->opaque = opaque;
  ck->s = s;
  pthread_mutex_init (&ck->lock, NULL);
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&ck->cond, &ca);
  pthread_condattr_destroy (&ca);
  r = pthread_create (&ck->thread, NULL, checker_main, ck);
  if (r != 0) {
    pthread_cond_destroy (&ck->cond);
    pthread_mutex_destroy (&ck->lock);
    free (ck);
    return ncr_error (r, "cannot start the key check thread: %s", strerror (r));
  }
  s->checker = ck;
  return 0;
}

bool
session_revoked (const struct volume_session *s)
{
  return __atomic_load_n (&s->revoked, __ATOMIC_SEQ_CST) != 0;
}

const char *
session_on_revoke_name (enum session_on_revoke r)
{
  switch (r) {
  case SESSION_REVOKE_DISCONNECT: return "disconnect";
  case SESSION_REVOKE_REFUSE: return "refuse";
  case SESSION_REVOKE_SHUTDOWN: return "shutdown";
  }
  return "?";
}

void
session_wipe_key (struct volume_session *s)
{
  /* volume_free and secmem_free wipe before they free; the header (wrapped DEK, KEK id) goes
   * too, since nothing may read it without the key. */
  s->key = NULL;
  volume_free (s->vol);
  s->vol = NULL;
  secmem_free (s->raw_key);
  s->raw_key = NULL;
}

void
session_prepare_fork (struct volume_session *s)
{
  /* A TLS session is not shared between two processes: the serving one connects again at
   * its first key check, with the credentials already loaded (read before any drop of
   * privileges). */
  keyprov_disconnect (s->kp);
}

void
session_describe (const struct session_config *c, const struct volume_session *s, char *out,
                  size_t n)
{
  if (s->vol) {
    char uuid[37];
    volume_uuid_str (s->vol->hdr.uuid, uuid);
    snprintf (out, n, "volume %s opened: %s, %u-byte sectors, data at %" PRIu64 ", KEK %s "
              "'%s', wrap %s, header copy %c", uuid, ncr_cipher_name (s->cipher),
              s->sector_size, s->data_offset, s->vol->hdr.kek_provider, s->vol->hdr.kek_id,
              s->vol->hdr.wrap, s->vol->used_copy ? 'B' : 'A');
  }
  else
    snprintf (out, n, "headerless volume opened: %s, %u-byte sectors, key '%s' from the KMS "
              "(%s)", ncr_cipher_name (s->cipher), s->sector_size, c->key_id, c->kms_config);
}

void
session_free (struct volume_session *s)
{
  if (s == NULL)
    return;
  if (s->checker) {
    struct session_checker *ck = s->checker;
    pthread_mutex_lock (&ck->lock);
    ck->stop = true;
    pthread_cond_signal (&ck->cond);
    pthread_mutex_unlock (&ck->lock);
    pthread_join (ck->thread, NULL);
    pthread_cond_destroy (&ck->cond);
    pthread_mutex_destroy (&ck->lock);
    free (ck);
  }
  volume_free (s->vol);
  secmem_free (s->raw_key);
  keyprov_free (s->kp);
  free (s);
}
