/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt filter: online re-encryption. 'nbdcrypt reencrypt --online' hands a run over by
 * writing a flagged header (and the header that will end the run) to the volume; one thread of
 * the serving process notices it when it reads its volumes' headers (every
 * reencrypt-poll-interval= seconds), then moves the data to the new DEK zone by zone with the
 * engine of lib/volume/reencrypt.h, while the connections keep reading and writing: the data
 * path picks each sector's key by the watermark (served-volume.h). A volume opened in the
 * middle of a run (a restart after a crash) resumes it. At the end the staged header is
 * written to both copies and the old DEK is wiped from the process. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nbdkit-filter.h>

#include "errors.h"
#include "filter.h"
#include "filter-log.h"
#include "parse.h"
#include "reencrypt.h"
#include "timeutil.h"
#include "volume-set.h"

static unsigned poll_s = 2;                     /* reencrypt-poll-interval= */
static uint64_t zone_bytes = 8u << 20;          /* reencrypt-zone-size= */
static uint64_t rate;                           /* reencrypt-rate=, bytes/s; 0: half the time */

/* One run in progress. */
struct run {
  struct volume_session *s;
  struct served_volume *v;
  struct volume *rv;            /* the flagged volume: both keys (the thread's own copy) */
  void *ch;                     /* channel to the export */
  uint64_t size;
  struct reencrypt_io io;
  struct reencrypt_state *st;
  uint64_t t0, done0;           /* ms, sectors: at the start of this process's part */
  bool data_done;               /* every sector is under the new DEK */
  bool told_no_final;           /* logged that the final header is missing */
  struct run *next;
};

static struct volume_set *rset;
static struct run *runs;
static pthread_t thread;
static bool started;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static bool stop;
static bool woken;              /* reenc_wake: look at every volume now */
static bool attached;           /* reenc_attached: look at the volumes opened since */

int
reenc_config (const char *key, const char *value)
{
  uint64_t n;

  if (strcmp (key, "reencrypt-poll-interval") == 0) {
    if (ncr_parse_uint (value, 3600, &n) < 0 || n == 0) {
      nbdkit_error ("nbdcrypt: reencrypt-poll-interval=%s: give seconds from 1 to 3600", value);
      return -1;
    }
    poll_s = (unsigned) n;
    return 1;
  }
  if (strcmp (key, "reencrypt-zone-size") == 0) {
    if (ncr_parse_size (value, 1ull << 30, &n) < 0 || n < 4096) {
      nbdkit_error ("nbdcrypt: reencrypt-zone-size=%s: give a size from 4K to 1G (K, M, G "
                    "suffixes)", value);
      return -1;
    }
    zone_bytes = n;
    return 1;
  }
  if (strcmp (key, "reencrypt-rate") == 0) {
    if (ncr_parse_size (value, UINT64_MAX / 2, &n) < 0) {
      nbdkit_error ("nbdcrypt: reencrypt-rate=%s: give bytes per second (K, M, G suffixes; "
                    "0: no limit)", value);
      return -1;
    }
    rate = n;
    return 1;
  }
  return 0;
}

static void
run_free (struct run *r)
{
  reencrypt_state_free (r->st);         /* XTS contexts and journal key, wiped */
  volume_free (r->rv);                  /* both DEKs, wiped */
  if (r->ch)
    filter_channel_close (r->ch);
  free (r);
}

static struct run *
find_run (const struct volume_session *s)
{
  for (struct run *r = runs; r; r = r->next)
    if (r->s == s)
      return r;
  return NULL;
}

/* Open the journal state and resolve a zone a crash left half done, then let requests in. The
 * served volume waits (REENC_WAIT) until then. */
static int
run_open (struct run *r)
{
  int e;

  if ((e = reencrypt_open_state (r->rv, r->size, &r->io, zone_bytes, &r->st)) < 0)
    return e;
  if (reencrypt_pending (r->st) && (e = reencrypt_zone (r->st)) < 0)
    return e;
  r->done0 = reencrypt_done_sectors (r->st);
  r->t0 = ncr_now_ms ();
  served_reenc_ready (r->v, r->done0);
  filter_log_info ("%s: re-encryption %s at sector %" PRIu64 " of %" PRIu64 " (online, zones "
                   "of %u sectors)", r->v->description, r->done0 ? "resumed" : "started",
                   r->done0, reencrypt_total_sectors (r->st), reencrypt_zone_sectors (r->st));
  return 0;
}

/* Once per volume opened: clear the journal an end interrupted after its header writes left
 * behind (its staged header holds the DEK wrapped under the KEKs of then). */
static void
clear_stale_journal (struct volume_session *s, struct served_volume *v,
                     const struct volume_headers *hs, void *ch)
{
  struct reencrypt_io io = { filter_channel_read, filter_channel_write, filter_channel_flush,
                             ch };
  struct volume *cur = NULL;
  int r;

  if (reencrypt_journal_used (&io) != 1 || vset_dup_volume (rset, s, &cur) < 0)
    return;
  if ((r = reencrypt_clear_stale (hs, cur->dek, cur->dek_len, &io)) == 1)
    filter_log_info ("%s: cleared the journal left by the interrupted end of a re-encryption",
                     v->description);
  else if (r < 0)
    filter_log_warning ("%s: cannot clear the journal left by the interrupted end of a "
                        "re-encryption: %s", v->description, ncr_last_error ());
  volume_free (cur);
}

/* Look at one volume: a run handed over, a volume opened in the middle of one, the end of
 * one interrupted between its two header writes, or (at the first look) after them. arg:
 * non-NULL to look only at volumes not looked at yet. */
static int
poll_volume (struct volume_session *s, void *arg)
{
  const bool only_new = arg != NULL;
  struct served_volume *v = s->user;
  struct volume *cur = NULL, *rv = NULL, *sv = NULL;
  struct volume_headers hs;
  struct run *r;
  void *ch = NULL;
  uint64_t size;
  bool resume, first;
  int e;

  if (v == NULL || s->vol == NULL || session_revoked (s) || find_run (s) ||
      (only_new && v->polled))
    return 0;
  first = !v->polled;
  v->polled = true;
  resume = __atomic_load_n (&v->reenc, __ATOMIC_ACQUIRE) != REENC_NONE;
  if (filter_channel_open (s->name, &ch, &size) < 0 ||
      volume_read_headers (filter_channel_read, ch, size, &hs) < 0 || hs.newest < 0) {
    /* A volume opened mid-run waits for the run: say once why it cannot go on. */
    if (resume && !v->reenc_warned)
      filter_log_warning ("%s: the re-encryption in progress cannot resume: %s; requests to "
                          "the volume wait: serve it read-write, or stop the server and "
                          "finish the run with 'nbdcrypt reencrypt --take-over TARGET KEY'",
                          v->description, ncr_last_error ());
    v->reenc_warned = resume;
    goto done;
  }
  /* Most polls end here, with no key copied: nothing flagged in either copy. */
  const struct volume_header *nh = &hs.copy[hs.newest], *oh = &hs.copy[1 - hs.newest];
  if (!resume && !(nh->flags & VH_FLAG_REENCRYPT_ONLINE) &&
      !(hs.status[1 - hs.newest] == 0 && (oh->flags & VH_FLAG_REENCRYPT))) {
    if (first && !(nh->flags & VH_FLAG_REENCRYPT))
      clear_stale_journal (s, v, &hs, ch);
    goto done;
  }
  if (vset_dup_volume (rset, s, &cur) < 0)
    goto done;
  if (!resume) {
    struct reencrypt_io io = { filter_channel_read, filter_channel_write, filter_channel_flush,
                              ch };
    const struct volume_header *h = nh;
    if (!(h->flags & VH_FLAG_REENCRYPT)) {
      if (reencrypt_complete_end (&hs, cur->dek, cur->dek_len, &io) == 1)
        filter_log_info ("%s: completed the end of an interrupted re-encryption (the second "
                         "header copy)", v->description);
      goto done;
    }
    if (!(h->flags & VH_FLAG_REENCRYPT_ONLINE) || cur->next_dek)
      goto done;
    /* Handed over: the flagged header must be sealed under the DEK we serve with. */
    if ((e = volume_adopt_header (h, (unsigned) hs.newest, cur->cipher, cur->dek,
                                  cur->dek_len, &rv)) < 0 ||
        (e = volume_adopt_header (h, (unsigned) hs.newest, cur->cipher, cur->dek,
                                  cur->dek_len, &sv)) < 0) {
      filter_log_warning ("%s: a re-encryption was handed over, but %s", v->description,
                          ncr_last_error ());
      goto done;
    }
    if ((e = served_reenc_begin (v, rv->next_dek, rv->dek_len, true)) < 0) {
      filter_log_warning ("%s: cannot start the re-encryption: %s", v->description,
                          ncr_last_error ());
      goto done;
    }
    vset_adopt (rset, s, sv);   /* lookups match the new key too from now on */
    sv = NULL;
  }
  else {
    rv = cur;                   /* opened flagged: the session's copy has both keys */
    cur = NULL;
  }
  if ((r = calloc (1, sizeof *r)) == NULL)
    goto done;
  r->s = s;
  r->v = v;
  r->rv = rv;
  r->ch = ch;
  r->size = size;
  r->io = (struct reencrypt_io) { filter_channel_read, filter_channel_write,
                                 filter_channel_flush, ch };
  rv = NULL;
  ch = NULL;
  if ((e = run_open (r)) < 0) {
    filter_log_warning ("%s: re-encryption: %s; requests to the volume wait, trying again in "
                        "%u s", v->description, ncr_last_error (), poll_s);
    run_free (r);
    goto done;
  }
  r->next = runs;
  runs = r;
 done:
  volume_free (cur);
  volume_free (rv);
  volume_free (sv);
  if (ch)
    filter_channel_close (ch);
  explicit_bzero (&hs, sizeof hs);
  return 0;
}

/* The data is done: commit the staged final header, switch the volume to the new DEK. 1 when
 * finished, 0 to try again later. */
static int
run_finish (struct run *r)
{
  struct volume_header f;
  struct volume *nv = NULL;
  uint64_t ms = ncr_now_ms () - r->t0;
  uint64_t bytes = (reencrypt_total_sectors (r->st) - r->done0) * r->v->sector_size;

  if (reencrypt_commit_final (r->rv, &r->io, r->size, &f) < 0) {
    if (!r->told_no_final)
      filter_log_warning ("%s: every sector is under the new data key, but the run cannot end: "
                          "%s; run 'nbdcrypt reencrypt --online TARGET KEY' again to stage "
                          "the final header (serving goes on meanwhile)", r->v->description,
                          ncr_last_error ());
    r->told_no_final = true;
    return 0;
  }
  if (volume_adopt_header (&f, 1, r->rv->cipher, r->rv->next_dek, r->rv->dek_len, &nv) == 0)
    vset_adopt (rset, r->s, nv);
  served_reenc_end (r->v);
  explicit_bzero (&f, sizeof f);
  filter_log_info ("%s: re-encryption finished: %" PRIu64 " bytes in %.1f s, the old data key "
                   "is wiped", r->v->description, bytes, (double) ms / 1000.0);
  return 1;
}

/* One step of run r: a zone, or the end. 1: the run is over (finished, revoked or failed
 * and dropped); 0: more to do. */
static int
run_step (struct run *r)
{
  struct ncr_range_hold hold;
  uint64_t a, n, total;
  int e;

  if (session_revoked (r->s) || served_revoked (r->v))
    return 1;
  if (r->data_done)
    return run_finish (r);
  a = reencrypt_done_sectors (r->st);
  total = reencrypt_total_sectors (r->st);
  if (a >= total) {
    if ((e = reencrypt_zone (r->st)) < 0)     /* the last zone's flush */
      goto fail;
    r->data_done = true;
    return run_finish (r);
  }
  n = total - a < reencrypt_zone_sectors (r->st) ? total - a : reencrypt_zone_sectors (r->st);
  /* The zone exclusively: no request reads or writes it while its sectors change key. */
  ncr_rangelock_acquire (&r->v->write_lock, &hold, a, a + n - 1, true);
  e = reencrypt_zone (r->st);
  if (e == 0)
    __atomic_store_n (&r->v->watermark, reencrypt_done_sectors (r->st), __ATOMIC_RELEASE);
  else
    /* The zone may be half rewritten: hold requests until a new run resolves it. */
    __atomic_store_n (&r->v->reenc, REENC_WAIT, __ATOMIC_RELEASE);
  ncr_rangelock_release (&hold);
  if (e == 0)
    return 0;
 fail:
  filter_log_warning ("%s: re-encryption stopped: %s; requests to the volume wait, resuming in "
                      "%u s", r->v->description, ncr_last_error (), poll_s);
  __atomic_store_n (&r->v->reenc, REENC_WAIT, __ATOMIC_RELEASE);
  return 1;
}

/* Sleep until deadline (ms, monotonic) unless stopped or woken. False once stopped. */
static bool
sleep_until (uint64_t deadline)
{
  pthread_mutex_lock (&lock);
  while (!stop && !woken && !attached) {
    uint64_t now = ncr_now_ms ();
    if (now >= deadline)
      break;
    struct timespec t;
    clock_gettime (CLOCK_MONOTONIC, &t);
    uint64_t ns = (uint64_t) t.tv_nsec + (deadline - now) * 1000000u;
    t.tv_sec += ns / 1000000000u;
    t.tv_nsec = ns % 1000000000u;
    pthread_cond_timedwait (&cond, &lock, &t);
  }
  bool go = !stop;
  pthread_mutex_unlock (&lock);
  return go;
}

static void *
reenc_main (void *arg)
{
  uint64_t next_poll = 0;

  (void) arg;
  for (;;) {
    uint64_t now = ncr_now_ms (), t0;

    pthread_mutex_lock (&lock);
    bool full = woken, fresh = attached;
    woken = attached = false;
    pthread_mutex_unlock (&lock);
    if (now >= next_poll || full) {
      vset_foreach (rset, poll_volume, NULL);
      next_poll = ncr_now_ms () + poll_s * 1000u;
    }
    else if (fresh) {
      bool only_new = true;                 /* the volumes opened since: not all of them */
      vset_foreach (rset, poll_volume, &only_new);
    }
    if (runs == NULL) {
      if (!sleep_until (next_poll))
        return NULL;
      continue;
    }
    /* A zone of each run, then a pause: as long as the zones took (the run takes at most
     * half the time), or what keeps the rate under reencrypt-rate=. */
    t0 = ncr_now_ms ();
    uint64_t bytes = 0;
    for (struct run **p = &runs; *p; ) {
      struct run *r = *p;
      uint64_t before = reencrypt_done_sectors (r->st);
      int over = run_step (r);
      bytes += (reencrypt_done_sectors (r->st) - before) * r->v->sector_size;
      if (over) {
        *p = r->next;
        run_free (r);
      }
      else
        p = &r->next;
    }
    uint64_t took = ncr_now_ms () - t0, pause = took;
    if (rate && bytes * 1000 / rate > took)
      pause = bytes * 1000 / rate - took;
    else if (rate)
      pause = 0;
    bool data_left = false;
    for (struct run *r = runs; r; r = r->next)
      data_left |= !r->data_done;
    if (!data_left)
      pause = next_poll > ncr_now_ms () ? next_poll - ncr_now_ms () : 0;
    if (!sleep_until (ncr_now_ms () + pause))
      return NULL;
  }
}

int
reenc_start (struct volume_set *vs)
{
  pthread_condattr_t ca;

  rset = vs;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&cond, &ca);
  pthread_condattr_destroy (&ca);
  if (pthread_create (&thread, NULL, reenc_main, NULL) != 0) {
    nbdkit_error ("nbdcrypt: cannot start the re-encryption thread: %s", strerror (errno));
    return -1;
  }
  started = true;
  return 0;
}

void
reenc_wake (void)
{
  if (!started)
    return;
  pthread_mutex_lock (&lock);
  woken = true;
  pthread_cond_signal (&cond);
  pthread_mutex_unlock (&lock);
}

void
reenc_attached (void)
{
  if (!started)
    return;
  pthread_mutex_lock (&lock);
  attached = true;
  pthread_cond_signal (&cond);
  pthread_mutex_unlock (&lock);
}

void
reenc_stop (void)
{
  if (!started)
    return;
  pthread_mutex_lock (&lock);
  stop = true;
  pthread_cond_signal (&cond);
  pthread_mutex_unlock (&lock);
  pthread_join (thread, NULL);
  started = false;
  while (runs) {
    struct run *r = runs;
    runs = r->next;
    run_free (r);
  }
}
