/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt filter: nbdkit glue for inline AES-XTS (dm-crypt aes-xts-plain64) over any plugin.
 *
 * Clients see plaintext, the plugin below sees only ciphertext. Export sector n (counted from
 * the start of the export, sector-size bytes) is XTS-encrypted with tweak n, as dm-crypt's
 * aes-xts-plain64 does (for 4096-byte sectors, counting 4096-byte sectors, as LUKS2 does).
 * The cipher lives in lib/ (xts.c: the engine; xts-pool.c: per-thread contexts and buffers;
 * keyfile.c: the key file); this file only maps nbdkit requests onto whole sectors. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nbdkit-filter.h>

#include "attributes.h"
#include "cleanup.h"
#include "errors.h"
#include "filemode.h"
#include "filter-log.h"
#include "filter-read.h"
#include "keyfile.h"
#include "minmax.h"
#include "parse.h"
#include "rangelock.h"
#include "secmem.h"
#include "timeutil.h"
#include "volume-session.h"
#include "xts-pool.h"
#include "xts.h"

/* Write-zeroes is done in pieces of at most this much encrypted zeros, so that a huge zero
 * request needs only a bounded bounce buffer. */
#define ZERO_CHUNK (1024 * 1024)
_Static_assert (ZERO_CHUNK <= NCR_XTS_BOUNCE_KEEP, "a zero piece must fit what threads keep");

/* Configuration: set by .config, checked by .config_complete. */
static char *key_file;
static uint8_t *file_key;               /* key-file=: read once, until the engine is keyed */
static enum ncr_cipher cipher = NCR_CIPHER_AES_256_XTS;
static unsigned sector_size = 4096;
static bool discard;
static bool cipher_set, sector_size_set;  /* given explicitly: must match a volume header */
static bool force_headerless;           /* force-headerless=true: key-file=/key-id= over a header */

/* Volumes with a header (kms-config=, kek-file=) or keyed by the KMS (key-id=): parameters
 * and key life cycle in lib/volume/volume-session.c.
 *
 * Start-up: every key is loaded and checked before nbdkit forks - key-file= in
 * .config_complete, volumes in .get_ready (the plugin below is ready by then: nbdkit readies
 * the stack from the bottom) - so that a volume that cannot be opened fails nbdkit's start
 * with its exit status and the reason on stderr in every mode (daemon, -f, --run, -s, socket
 * activation). Those keys sit in locked memory kept across the fork (secmem.h); the engine is
 * keyed, the locks re-established and the key check started in .after_fork, in the process
 * that serves. */
static struct session_config session_cfg;
static struct volume_session *vsess;
static nbdkit_backend *volume_backend;  /* the plugin below, from .config_complete */
static int final_thread_model;          /* from .get_ready */

/* Bytes of the plugin below that precede the encrypted area (0: a raw volume). Tweaks count
 * export sectors, i.e. from here. */
static uint64_t data_offset;

/* One engine context per thread, copied from a master keyed once in .after_fork. */
static struct ncr_xts_pool *pool;

/* Revocation (on-revoke=disconnect or shutdown): the key check thread wipes the key schedules
 * (the pool: the master and every thread's copy) and the DEK while requests run on other
 * threads. So every request that uses the engine holds key_lock shared from before it looks
 * at the pool until its last use of it, and the wipe holds it exclusively: a request either
 * finishes with intact key schedules or finds pool == NULL and fails - it never encrypts
 * with a schedule being zeroed (garbage on disk) or freed (a crash). keys_revoked is set
 * before the wipe waits for the lock, so that requests arriving meanwhile fail at once
 * instead of queueing behind requests still in the plugin below; the lock prefers the
 * writer, so that a steady stream of requests cannot hold the wipe off. Costs one shared
 * lock round trip per request, next to encrypting at least one sector. */
static pthread_rwlock_t key_lock;
static int keys_revoked;                /* __atomic access */
static int revoked_shutdown;            /* __atomic: on-revoke=shutdown fired: exit non-zero */

/* After on-revoke=shutdown has asked nbdkit to stop: how long nbdkit gets to close its
 * connections and unload (where we exit non-zero) before the process exits anyway. */
#define SHUTDOWN_GRACE_SECONDS 2

/* Write ordering. A partial-sector write is read-modify-write (read the sector, decrypt,
 * merge, encrypt, write): if any other write reached the same sector between our read and
 * our write, one update would be lost. So a request that does read-modify-write holds its
 * sectors exclusively from its first read to its last write, and every other write
 * (whole sectors, write-zeroes, trim) holds its sectors shared. Only requests that share a
 * sector wait for each other: whole-sector writes never wait for whole-sector writes, and one
 * client's unaligned writes do not slow another client's writes to other sectors (a single
 * process-wide lock did: measured with perf/lock-contention.py, a client's aligned 4 KiB
 * writes were starved outright while another kept one-byte writes in flight elsewhere).
 * Overlapping requests are served in arrival order, so a stream of aligned writes cannot
 * starve an unaligned one. Reads take no lock: a sector is read in one piece below, before
 * or after a write. */
static struct ncr_rangelock write_lock;

static void
nbdcrypt_load (void)
{
  pthread_rwlockattr_t a;

  pthread_rwlockattr_init (&a);
  pthread_rwlockattr_setkind_np (&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&key_lock, &a);
  pthread_rwlockattr_destroy (&a);
  ncr_rangelock_init (&write_lock);
  session_config_init (&session_cfg);
}

static void
nbdcrypt_unload (void)
{
  session_free (vsess);              /* stops the key check thread, wipes the DEK */
  vsess = NULL;
  ncr_xts_pool_free (pool);     /* every thread's key schedules, cleansed */
  pool = NULL;
  secmem_free (file_key);
  file_key = NULL;
  free (key_file);
  ncr_rangelock_destroy (&write_lock);
  pthread_rwlock_destroy (&key_lock);
  /* on-revoke=shutdown: nbdkit itself would exit 0 from here; the plugin below has been
   * unloaded already (nbdkit unloads the stack from the bottom). */
  if (__atomic_load_n (&revoked_shutdown, __ATOMIC_ACQUIRE))
    _exit (EXIT_FAILURE);
}

static int
nbdcrypt_config (nbdkit_next_config *next, nbdkit_backend *nxdata,
                 const char *key, const char *value)
{
  int vr = session_config_set (&session_cfg, key, value);

  if (vr < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  if (vr > 0)
    return 0;
  if (strcmp (key, "key-file") == 0) {
    free (key_file);
    key_file = strdup (value);
    if (!key_file) {
      nbdkit_error ("nbdcrypt: strdup: %m");
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "cipher") == 0) {
    if (ncr_cipher_from_name (value, &cipher) < 0) {
      nbdkit_error ("nbdcrypt: cipher=%s: %s", value, ncr_last_error ());
      return -1;
    }
    cipher_set = true;
    return 0;
  }
  if (strcmp (key, "sector-size") == 0) {
    if (nbdkit_parse_unsigned ("sector-size", value, &sector_size) == -1)
      return -1;
    if (ncr_sector_size_valid (sector_size) < 0) {
      nbdkit_error ("nbdcrypt: sector-size=%s: %s", value, ncr_last_error ());
      return -1;
    }
    sector_size_set = true;
    return 0;
  }
  if (strcmp (key, "force-headerless") == 0) {
    int r = nbdkit_parse_bool (value);
    if (r == -1)
      return -1;
    force_headerless = r;
    return 0;
  }
  if (strcmp (key, "discard") == 0) {
    if (ncr_parse_bool (value, &discard) < 0) {
      nbdkit_error ("nbdcrypt: discard: %s", ncr_last_error ());
      return -1;
    }
    return 0;
  }
  return next (nxdata, key, value);
}

/* The one place where the filter is keyed: a master engine context from the volume key,
 * copied by each thread on its first request. The caller wipes key. The key schedules are in
 * locked memory that is left out of core dumps and, with the VAES engine, wiped in forked
 * children - so this runs in .after_fork, once nbdkit has forked into the background.
 * check_only: build the context and free it again (to report a bad key before the fork).
 * source names the key in messages. Returns 0, or -1 after nbdkit_error. */
static int
key_engine (enum ncr_cipher c, const uint8_t *key, size_t key_len, unsigned ss,
            const char *source, bool check_only)
{
  struct ncr_xts *master;
  struct ncr_xts_pool *p;

  if (ncr_xts_new (c, key, key_len, ss, &master) < 0) {
    nbdkit_error ("nbdcrypt: %s: %s", source, ncr_last_error ());
    return -1;
  }
  if (check_only) {
    ncr_xts_free (master);
    return 0;
  }
  if (ncr_xts_pool_new (master, ss, &p) < 0) {
    ncr_xts_free (master);
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  ncr_xts_pool_free (pool);
  pool = p;
  nbdkit_debug ("nbdcrypt: %s, %u-byte sectors, discard %s, engine %s",
                ncr_cipher_name (c), ss, discard ? "on" : "off", ncr_xts_impl (master));
  return 0;
}

static int
set_key (enum ncr_cipher c, const uint8_t *key, size_t key_len, unsigned ss,
         const char *source, bool check_only)
{
  int r = key_engine (c, key, key_len, ss, source, check_only);

  /* The key and its round keys went through vector registers and stack frames just now
   * (and, in key-file mode, through the file read before): clear them (see secmem.h). */
  secmem_scrub_cpu ();
  return r;
}

/* key-file=: read the key once, into locked memory kept across nbdkit's fork, and check
 * that it keys the engine (a bad key file stops nbdkit with a message on the terminal). The
 * engine is keyed from this copy in .after_fork, then the copy is wiped: whatever happens to
 * the file meanwhile, the key served with is the key checked, and a file readable only by
 * root still works when nbdkit drops privileges (-u). Returns 0, or -1 after nbdkit_error. */
static int
load_key_file (void)
{
  size_t key_len = ncr_cipher_key_len (cipher);
  char source[PATH_MAX + 16];
  struct stat st;
  int r;

  secmem_keep_across_fork (true);
  r = ncr_keyfile_read_stat (key_file, key_len, &file_key, &st);
  secmem_keep_across_fork (false);
  if (r < 0) {
    nbdkit_error ("nbdcrypt: %s (cipher=%s)", ncr_last_error (), ncr_cipher_name (cipher));
    return -1;
  }
  char warning[600] = "";
  if (ncr_secret_file_warning ("key file", key_file, &st, warning, sizeof warning))
    filter_log_warning ("%s", warning);
  snprintf (source, sizeof source, "key-file '%s'", key_file);
  return set_key (cipher, file_key, key_len, sector_size, source, true);
}

static int
nbdcrypt_config_complete (nbdkit_next_config_complete *next, nbdkit_backend *nxdata)
{
  if (session_config_complete (&session_cfg, key_file != NULL) < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  volume_backend = nxdata;      /* the plugin's backend: stable for the process's life */
  if (secmem_protect_process (session_cfg.allow_core_dumps) < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  if (session_config_active (&session_cfg))
    return next (nxdata);       /* opened in .get_ready, once the plugin is ready */
  if (!key_file) {
    nbdkit_error ("nbdcrypt: key-file=PATH is required: a file holding the raw %zu-byte "
                  "%s volume key (or kms-config=FILE / kek-file=PATH for a volume made "
                  "by 'nbdcrypt format')", ncr_cipher_key_len (cipher),
                  ncr_cipher_name (cipher));
    return -1;
  }
  if (load_key_file () == -1)         /* the engine is keyed in .after_fork */
    return -1;
  return next (nxdata);
}

/* Header reads go through a context on the plugin below (opened in .after_fork). */
static int
volume_read (void *opaque, void *buf, size_t count, uint64_t offset)
{
  nbdkit_next *n = opaque;
  int err = 0;

  if (n->pread (n, buf, count, offset, 0, &err) == -1) {
    err = err ? err : EIO;
    return ncr_error (err, "cannot read the volume header (offset %" PRIu64 ") from the "
                      "plugin: %s", offset, strerror (err));
  }
  return 0;
}

/* A context on the plugin below outside any connection (.get_ready, the key check thread).
 * Returns NULL with a message in ncr_last_error(). */
static nbdkit_next *
plugin_open (uint64_t *size)
{
  nbdkit_next *n = nbdkit_next_context_open (volume_backend, 1, "", 1);
  int64_t sz;

  if (n == NULL) {
    ncr_error (EIO, "cannot open the plugin to read the volume header");
    return NULL;
  }
  if (n->prepare (n) == -1 || (sz = n->get_size (n)) < 0) {
    n->finalize (n);
    nbdkit_next_context_close (n);
    ncr_error (EIO, "cannot prepare the plugin or get its size to read the volume header");
    return NULL;
  }
  *size = (uint64_t) sz;
  return n;
}

static void
plugin_close (nbdkit_next *n)
{
  n->finalize (n);
  nbdkit_next_context_close (n);
}

/* Re-read both header copies (key check thread). */
static int
volume_reread (void *opaque UNUSED, struct volume_headers *hs)
{
  uint64_t size;
  nbdkit_next *n = plugin_open (&size);
  int r;

  if (n == NULL)
    return -EIO;
  r = volume_read_headers (volume_read, n, size, hs);
  plugin_close (n);
  return r;
}

/* key-file= and key-id= serve the whole plugin as data. Over a volume made by 'nbdcrypt
 * format', or a LUKS container, that is a mistake which the first write at offset 0 turns into
 * lost data (both header copies overwritten): refuse it, unless force-headerless=true.
 * Checked in .get_ready through a context of our own; a plugin that cannot be opened outside
 * a connection (nbdkit's sh and eval plugins) is checked through the first connection instead
 * (.prepare), and every connection is refused if it finds a header.
 * Returns 0, or -1 after nbdkit_error. */
enum { HEADERLESS_UNCHECKED, HEADERLESS_OK, HEADERLESS_REFUSED };
static int headerless_state = HEADERLESS_UNCHECKED;     /* __atomic access */

static int
check_headerless (nbdkit_next *n, uint64_t size)
{
  const char *param = key_file ? "key-file=" : "key-id=";
  static const uint64_t offsets[] = { VH_COPY_A_OFFSET, VH_COPY_B_OFFSET };
  uint8_t buf[VH_AREA_SIZE];
  const char *what = NULL;
  int err = 0;

  for (size_t i = 0; i < 2 && what == NULL; i++) {
    if (offsets[i] + sizeof buf > size)
      break;
    if (n->pread (n, buf, sizeof buf, offsets[i], 0, &err) == -1) {
      nbdkit_error ("nbdcrypt: cannot read the plugin to check for a volume header: %s",
                    strerror (err ? err : EIO));
      return -1;
    }
    if (volume_header_has_magic (buf, sizeof buf))
      what = i == 0 ? "an nbdcrypt volume header (copy A)" :
                      "an nbdcrypt volume header (copy B)";
    else if (i == 0 && memcmp (buf, "LUKS\xba\xbe", 6) == 0)
      what = "a LUKS header";
  }
  if (what == NULL) {
    __atomic_store_n (&headerless_state, HEADERLESS_OK, __ATOMIC_RELEASE);
    return 0;
  }
  __atomic_store_n (&headerless_state, HEADERLESS_REFUSED, __ATOMIC_RELEASE);
  nbdkit_error ("nbdcrypt: the plugin's data begins with %s, but %s serves it as a headerless "
                "volume: the header would be read as data and destroyed by the first write. "
                "Open an nbdcrypt volume with kek-file= or kms-config= instead; if the header "
                "is really stale and to be overwritten, add force-headerless=true", what, param);
  return -1;
}

static int
refuse_headerless_over_header (void)
{
  uint64_t size;
  nbdkit_next *n;
  int r;

  if (force_headerless || session_config_header_mode (&session_cfg))
    return 0;
  if ((n = plugin_open (&size)) == NULL) {
    nbdkit_debug ("nbdcrypt: %s: checking for a header at the first connection instead",
                  ncr_last_error ());
    return 0;
  }
  r = check_headerless (n, size);
  plugin_close (n);
  return r;
}

/* The header check of refuse_headerless_over_header, if .get_ready could not make it. */
static int
nbdcrypt_prepare (nbdkit_next *next, void *handle UNUSED, int readonly UNUSED)
{
  int64_t size;

  switch (__atomic_load_n (&headerless_state, __ATOMIC_ACQUIRE)) {
  case HEADERLESS_OK:
    return 0;
  case HEADERLESS_REFUSED:
    nbdkit_error ("nbdcrypt: refused: the plugin's data begins with a volume header (see "
                  "the first error)");
    return -1;
  }
  if (force_headerless || session_config_header_mode (&session_cfg))
    return 0;
  if ((size = next->get_size (next)) < 0)
    return -1;
  return check_headerless (next, (uint64_t) size);
}

/* One line per retry of an unreachable KMS at start, while clients wait. */
static void
log_kms_retry (const char *msg)
{
  filter_log_warning ("%s", msg);
}

/* The volume key's name in messages. */
static const char *
key_source (void)
{
  return session_config_header_mode (&session_cfg) ? "volume key" : session_cfg.key_id;
}

/* Header mode: read the header through the plugin, unwrap the DEK (retrying an unreachable KMS
 * for kms-startup-timeout), check the key check value. key-id= mode: fetch the raw key.
 * Returns 0, or -1 after nbdkit_error. */
static int
open_volume (void)
{
  int r;

  if (session_config_header_mode (&session_cfg)) {
    uint64_t size;
    nbdkit_next *n = plugin_open (&size);

    if (n == NULL)
      r = -EIO;
    else {
      r = session_open_header (&session_cfg, volume_read, n, size, &vsess);
      plugin_close (n);
    }
  }
  else
    r = session_open_key_id (&session_cfg, cipher, sector_size, &vsess);
  if (r < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  return 0;
}

/* Everything that can refuse the volume runs here, before nbdkit forks (see the top). The key
 * check thread re-reads the header through its own plugin context, outside any connection:
 * only safe when the plugin (hence nbdkit) runs requests in parallel. */
static int
nbdcrypt_get_ready (int thread_model)
{
  int r;

  final_thread_model = thread_model;
  if (refuse_headerless_over_header () == -1)
    return -1;
  if (!session_config_active (&session_cfg))
    return 0;
  secmem_keep_across_fork (true);
  ncr_backoff_set_notify (log_kms_retry);
  r = open_volume ();
  ncr_backoff_set_notify (NULL);
  secmem_keep_across_fork (false);
  if (r == -1)
    return -1;
  if (vsess->key_warning[0])
    filter_log_warning ("%s", vsess->key_warning);
  if (vsess->warning[0])
    filter_log_warning ("%s", vsess->warning);
  if ((cipher_set && vsess->cipher != cipher) ||
      (sector_size_set && vsess->sector_size != sector_size)) {
    nbdkit_error ("nbdcrypt: cipher=/sector-size= disagree with the volume header (%s, "
                  "%u-byte sectors): leave them out, the header decides",
                  ncr_cipher_name (vsess->cipher), vsess->sector_size);
    return -1;
  }
  cipher = vsess->cipher;
  sector_size = vsess->sector_size;
  data_offset = vsess->data_offset;
  if (set_key (cipher, vsess->key, vsess->key_len, sector_size, key_source (), true) == -1)
    return -1;
  session_prepare_fork (vsess);
  return 0;
}

/* on-revoke=disconnect|shutdown: wipe the key schedules and the DEK now (see key_lock). */
static void
wipe_keys (void)
{
  __atomic_store_n (&keys_revoked, 1, __ATOMIC_RELEASE);
  ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (&key_lock);
  ncr_xts_pool_free (pool);     /* the master and every thread's copy, cleansed */
  pool = NULL;
  session_wipe_key (vsess);
  secmem_scrub_cpu ();          /* this thread's registers and stack (see secmem.h) */
}

/* on-revoke=shutdown: nbdkit_shutdown() stops accepting connections, but in nbdkit 1.32 it
 * waits for the open ones to close (an iSCSI gateway or the kernel's nbd client never
 * closes) and then exits 0. The keys are gone already and every request fails, so nothing
 * is lost by not waiting: give nbdkit a moment to clean up, then exit non-zero. */
static void *
shutdown_watchdog (void *arg UNUSED)
{
  sleep (SHUTDOWN_GRACE_SECONDS);
  _exit (EXIT_FAILURE);
}

/* Called by the key check thread. */
static void
volume_event (void *opaque UNUSED, enum session_event ev, const char *msg)
{
  pthread_t t;

  switch (ev) {
  case SESSION_EVENT_KEK_CHANGED:
  case SESSION_EVENT_RECOVERED:
    filter_log_info ("%s", msg);
    return;
  case SESSION_EVENT_UNREACHABLE:
    filter_log_warning ("%s", msg);
    return;
  case SESSION_EVENT_REVOKED:
    break;
  }
  switch (session_cfg.on_revoke) {
  case SESSION_REVOKE_REFUSE:
    nbdkit_error ("nbdcrypt: %s: refusing new connections; open connections keep the key "
                  "(on-revoke=refuse)", msg);
    return;
  case SESSION_REVOKE_DISCONNECT:
    wipe_keys ();
    nbdkit_error ("nbdcrypt: %s: volume key wiped from memory; every request now fails and new "
                  "connections are refused (on-revoke=disconnect)", msg);
    return;
  case SESSION_REVOKE_SHUTDOWN:
    wipe_keys ();
    nbdkit_error ("nbdcrypt: %s: volume key wiped from memory; shutting down with exit status "
                  "1 (on-revoke=shutdown)", msg);
    __atomic_store_n (&revoked_shutdown, 1, __ATOMIC_RELEASE);
    nbdkit_shutdown ();
    if (pthread_create (&t, NULL, shutdown_watchdog, NULL) != 0)
      _exit (EXIT_FAILURE);
    pthread_detach (t);
    return;
  }
}

/* In the process that serves (after nbdkit's fork, if any): lock the keys kept across the
 * fork again and exclude them from later forks, key the engine, start the key check. */
static int
nbdcrypt_after_fork (nbdkit_backend *backend UNUSED)
{
  char line[600];
  int r;

  if (session_cfg.allow_core_dumps)
    filter_log_warning ("allow-core-dumps=true: the process stays dumpable and a core file "
                        "may contain key material");
  if (secmem_after_fork () < 0 || secmem_protect_process (session_cfg.allow_core_dumps) < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  if (!session_config_active (&session_cfg)) {
    r = set_key (cipher, file_key, ncr_cipher_key_len (cipher), sector_size, "key-file",
                 false);
    secmem_free (file_key);     /* key bytes gone; only the key schedules remain */
    file_key = NULL;
    if (r == 0)
      filter_log_info ("headerless volume opened: %s, %u-byte sectors, key-file '%s'",
                       ncr_cipher_name (cipher), sector_size, key_file);
    return r;
  }
  if (set_key (vsess->cipher, vsess->key, vsess->key_len, vsess->sector_size, key_source (),
               false) == -1)
    return -1;
  session_describe (&session_cfg, vsess, line, sizeof line);
  filter_log_info ("%s", line);
  if (session_start_checker (vsess, session_cfg.check_interval, volume_event,
                             final_thread_model == NBDKIT_THREAD_MODEL_PARALLEL ?
                             volume_reread : NULL, NULL) < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  return 0;
}

/* A revoked key: no new connections (whether open ones go on is on-revoke='s choice). */
static int
nbdcrypt_preconnect (nbdkit_next_preconnect *next, nbdkit_backend *nxdata, int readonly)
{
  if (vsess && session_revoked (vsess)) {
    nbdkit_error ("nbdcrypt: connection refused: %s", vsess->revoked_msg);
    return -1;
  }
  return next (nxdata, readonly);
}

#define nbdcrypt_config_help \
  "key-file=PATH              Headerless volume: raw volume key, 64 bytes for\n" \
  "                           aes-256-xts, 32 bytes for aes-128-xts.\n" \
  "cipher=aes-256-xts|aes-128-xts   Cipher (default aes-256-xts).\n" \
  "sector-size=4096|512       Encryption sector size (default 4096).\n" \
  "discard=on|off             Pass whole-sector trims down (default off: trims\n" \
  "                           reveal which blocks are in use).\n" \
  "force-headerless=BOOL      Serve key-file=/key-id= even over a backend that begins\n" \
  "                           with an nbdcrypt or LUKS header (default false).\n" \
  SESSION_CONFIG_HELP

static int
nbdcrypt_thread_model (void)
{
  return NBDKIT_THREAD_MODEL_PARALLEL;
}

/* A request on a volume whose key was revoked and wiped: EPERM, which NBD carries as is (a
 * refusal by policy, not a media error: nbdkit turns EACCES into EINVAL); the kernel's nbd
 * client reports every error as EIO anyway. Logged once, by the key check, not per request. */
static int
revoked_error (int *err)
{
  nbdkit_debug ("nbdcrypt: request refused: the volume key was revoked and wiped");
  *err = EPERM;
  return -1;
}

static bool
revoked (void)
{
  return __atomic_load_n (&keys_revoked, __ATOMIC_ACQUIRE) != 0;
}

/* This thread's engine context and buffers; made on its first request. The caller holds
 * key_lock shared for as long as it uses them. */
static struct ncr_xts_thread *
thread_state (int *err)
{
  struct ncr_xts_thread *t;

  if (!pool) {
    if (revoked ()) {
      revoked_error (err);
      return NULL;
    }
    nbdkit_error ("nbdcrypt: the volume key is not loaded");  /* not once .after_fork passed */
    *err = EIO;
    return NULL;
  }
  t = ncr_xts_pool_thread (pool);
  if (!t) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    *err = ENOMEM;
  }
  return t;
}

/* An engine failure (never expected: OpenSSL refusing to work). */
static int
engine_error (int r, int *err)
{
  nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
  *err = r < 0 ? -r : EIO;
  return -1;
}

/* The export: the plugin's size past data_offset, rounded down to whole sectors. */
static int64_t
nbdcrypt_get_size (nbdkit_next *next, void *handle UNUSED)
{
  int64_t size = next->get_size (next);

  if (size == -1)
    return -1;
  if ((uint64_t) size < data_offset) {
    nbdkit_error ("nbdcrypt: the device (%" PRIi64 " bytes) is smaller than the data offset "
                  "%" PRIu64, size, data_offset);
    return -1;
  }
  return (size - data_offset) / sector_size * sector_size;
}

static int
nbdcrypt_block_size (nbdkit_next *next, void *handle UNUSED,
                     uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
  if (next->block_size (next, minimum, preferred, maximum) == -1)
    return -1;
  /* Any alignment works (partial sectors are read-modify-write), but whole sectors avoid
   * that extra read and the exclusive hold on their sectors. */
  *minimum = 1;
  *preferred = MAX (*preferred, sector_size);
  *maximum = 0xffffffff;
  return 0;
}

/* Write-zeroes is always ours: encrypted zeros are written, because a hole or zeroed range
 * below would decrypt to noise, not to zeros. */
static int
nbdcrypt_can_zero (nbdkit_next *next UNUSED, void *handle UNUSED)
{
  return NBDKIT_ZERO_NATIVE;
}

/* Advertised so that clients can ask, and told at once that zeroing is not fast here: it
 * costs as much as writing. */
static int
nbdcrypt_can_fast_zero (nbdkit_next *next UNUSED, void *handle UNUSED)
{
  return 1;
}

/* Off unless discard=on, like dm-crypt without allow_discards: the pattern of trimmed
 * blocks below tells an observer which blocks of the volume are in use. */
static int
nbdcrypt_can_trim (nbdkit_next *next, void *handle UNUSED)
{
  return discard ? next->can_trim (next) : 0;
}

/* Off: holes and zero ranges below are ciphertext-level facts. A hole decrypts to noise, so
 * reporting it as a zero range would be a lie; and allocation below says nothing true
 * about the plaintext. nbdkit then reports the whole export as data. */
static int
nbdcrypt_can_extents (nbdkit_next *next UNUSED, void *handle UNUSED)
{
  return 0;
}

/* Read and decrypt one whole sector into the thread's sector buffer. */
static int
read_sector (nbdkit_next *next, struct ncr_xts_thread *t, uint64_t sector, int *err)
{
  int r;

  if (next->pread (next, t->sector, sector_size, data_offset + sector * sector_size, 0,
                   err) == -1)
    return -1;
  if ((r = ncr_xts_decrypt (t->xts, sector, t->sector, t->sector, sector_size)) < 0)
    return engine_error (r, err);
  return 0;
}

static int
nbdcrypt_pread (nbdkit_next *next, void *handle UNUSED, void *buf, uint32_t count, uint64_t offset,
                uint32_t flags, int *err)
{
  struct ncr_xts_thread *t;
  uint8_t *p = buf;

  if (revoked ())
    return revoked_error (err);
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&key_lock);
  if (!(t = thread_state (err)))
    return -1;

  /* 1. Unaligned head: the end of a sector the request starts inside of. */
  if (offset % sector_size) {
    uint32_t skip = offset % sector_size, n = MIN (count, sector_size - skip);

    if (read_sector (next, t, offset / sector_size, err) == -1)
      return -1;
    memcpy (p, t->sector + skip, n);
    p += n;
    offset += n;
    count -= n;
  }

  /* 2. Aligned body: whole sectors straight into the client's buffer, decrypted in place
   * (filter-read.c: one call below; it can also split large bodies, for measurements). */
  if (count >= sector_size) {
    uint32_t n = count / sector_size * sector_size;

    if (filter_read_body (next, t->xts, p, n, data_offset + offset, offset / sector_size,
                          sector_size, flags, err) == -1)
      return -1;
    p += n;
    offset += n;
    count -= n;
  }

  /* 3. Unaligned tail: the start of the sector the request ends inside of. */
  if (count > 0) {
    if (read_sector (next, t, offset / sector_size, err) == -1)
      return -1;
    memcpy (p, t->sector, count);
  }
  return 0;
}

/* Write plaintext src (NULL: zeros) to [offset, offset + count) as ONE write of whole
 * sectors below, staged in the thread's bounce buffer (the client's buffer is never
 * changed). Its sectors are held in write_lock: exclusively when some are only partly
 * covered (read-modify-write), shared otherwise. */
static int
write_sectors (nbdkit_next *next, struct ncr_xts_thread *t, const uint8_t *src,
               uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
  const uint64_t first = offset / sector_size, last = (offset + count - 1) / sector_size;
  const size_t len = (last - first + 1) * sector_size;
  const uint32_t head = offset % sector_size;                   /* bytes kept before */
  const uint32_t tail = (offset + count) % sector_size;         /* bytes written in last */
  const bool rmw = head != 0 || tail != 0;
  uint8_t *b;
  int r;

  if ((r = ncr_xts_thread_bounce (t, len)) < 0)
    return engine_error (r, err);
  b = t->bounce;

  ACQUIRE_RANGE_FOR_CURRENT_SCOPE (&write_lock, first, last, rmw);

  /* 1. Unaligned head: the first sector's current plaintext, to be partly overwritten. */
  if (head != 0) {
    if (next->pread (next, b, sector_size, data_offset + first * sector_size, 0, err) == -1)
      return -1;
    if ((r = ncr_xts_decrypt (t->xts, first, b, b, sector_size)) < 0)
      return engine_error (r, err);
  }

  /* 3. Unaligned tail (read before the body is merged): the last sector's current plaintext,
   * unless it is the head sector, already read. */
  if (tail != 0 && (last != first || head == 0)) {
    uint8_t *s = b + len - sector_size;

    if (next->pread (next, s, sector_size, data_offset + last * sector_size, 0, err) == -1)
      return -1;
    if ((r = ncr_xts_decrypt (t->xts, last, s, s, sector_size)) < 0)
      return engine_error (r, err);
  }

  /* 2. Body: merge the new plaintext and encrypt all the sectors; aligned client data is
   * encrypted straight from its buffer into the bounce buffer. */
  if (src && !rmw)
    r = ncr_xts_encrypt (t->xts, first, src, b, len);
  else {
    if (src)
      memcpy (b + head, src, count);
    else
      memset (b + head, 0, count);
    r = ncr_xts_encrypt (t->xts, first, b, b, len);
  }
  if (r < 0)
    return engine_error (r, err);

  /* One call below for the whole span; FUA, if asked, travels with it. */
  return next->pwrite (next, b, len, data_offset + first * sector_size, flags, err);
}

static int
nbdcrypt_pwrite (nbdkit_next *next, void *handle UNUSED, const void *buf, uint32_t count,
                 uint64_t offset, uint32_t flags, int *err)
{
  struct ncr_xts_thread *t;
  int r;

  if (revoked ())
    return revoked_error (err);
  if (count == 0)
    return 0;
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&key_lock);
  if (!(t = thread_state (err)))
    return -1;
  r = write_sectors (next, t, buf, count, offset, flags, err);
  /* An idle thread keeps at most NCR_XTS_BOUNCE_KEEP of bounce buffer, whatever the largest
   * request was (write-zeroes works in pieces smaller than that). */
  ncr_xts_thread_bounce_trim (t);
  return r;
}

static int
nbdcrypt_zero (nbdkit_next *next, void *handle UNUSED, uint32_t count, uint64_t offset,
               uint32_t flags, int *err)
{
  struct ncr_xts_thread *t;
  const uint32_t fua = flags & NBDKIT_FLAG_FUA;
  bool several;

  /* Zeroing is writing encrypted zeros: never faster than a write, so say so at once. */
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    *err = ENOTSUP;
    return -1;
  }
  if (revoked ())
    return revoked_error (err);
  if (count == 0)
    return 0;
  ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (&key_lock);
  if (!(t = thread_state (err)))
    return -1;

  /* Pieces of at most ZERO_CHUNK bytes of sectors. With several pieces, FUA is applied once:
   * the pieces are written without it, then one flush. */
  several = offset / sector_size * sector_size + ZERO_CHUNK < offset + count;
  while (count > 0) {
    uint64_t end = MIN (offset + count, offset / sector_size * sector_size + ZERO_CHUNK);
    uint32_t n = end - offset;

    if (write_sectors (next, t, NULL, n, offset, several ? 0 : fua, err) == -1)
      return -1;
    offset += n;
    count -= n;
  }
  if (several && fua)
    return next->flush (next, 0, err);
  return 0;
}

static int
nbdcrypt_trim (nbdkit_next *next, void *handle UNUSED, uint32_t count, uint64_t offset,
               uint32_t flags, int *err)
{
  /* Only the whole sectors inside the range: the plugin below can only drop whole
   * ciphertext sectors, and the rest of a partly covered sector must keep its data. A
   * trimmed sector then reads back as noise, which NBD allows (trimmed data is
   * unspecified). Nothing to trim means nothing changed, so FUA needs no flush. */
  uint64_t start = (offset + sector_size - 1) / sector_size * sector_size;
  uint64_t end = (offset + count) / sector_size * sector_size;

  if (revoked ())             /* no key needed, but the volume is closed to every request */
    return revoked_error (err);
  if (end <= start)
    return 0;
  /* Shared: a read-modify-write of a sector must not write back what was just dropped. */
  ACQUIRE_RANGE_FOR_CURRENT_SCOPE (&write_lock, start / sector_size,
                                   end / sector_size - 1, false);
  return next->trim (next, end - start, data_offset + start, flags, err);
}

/* Prefetch hint: passed down, widened to whole sectors (what a later read will fetch). */
static int
nbdcrypt_cache (nbdkit_next *next, void *handle UNUSED, uint32_t count, uint64_t offset,
                uint32_t flags, int *err)
{
  uint64_t start = offset / sector_size * sector_size;
  uint64_t end = (offset + count + sector_size - 1) / sector_size * sector_size;

  if (revoked ())
    return revoked_error (err);
  while (start < end) {       /* widening may exceed 32 bits: pieces of at most 1 GiB */
    uint32_t n = MIN (end - start, UINT64_C (1) << 30);

    if (next->cache (next, n, data_offset + start, flags, err) == -1)
      return -1;
    start += n;
  }
  return 0;
}

static struct nbdkit_filter filter = {
  .name               = "nbdcrypt",
  .longname           = "nbdcrypt inline AES-XTS encryption filter",
  .load               = nbdcrypt_load,
  .unload             = nbdcrypt_unload,
  .config             = nbdcrypt_config,
  .config_complete    = nbdcrypt_config_complete,
  .config_help        = nbdcrypt_config_help,
  .get_ready          = nbdcrypt_get_ready,
  .after_fork         = nbdcrypt_after_fork,
  .preconnect         = nbdcrypt_preconnect,
  .prepare            = nbdcrypt_prepare,
  .thread_model       = nbdcrypt_thread_model,
  .get_size           = nbdcrypt_get_size,
  .block_size         = nbdcrypt_block_size,
  .can_zero           = nbdcrypt_can_zero,
  .can_fast_zero      = nbdcrypt_can_fast_zero,
  .can_trim           = nbdcrypt_can_trim,
  .can_extents        = nbdcrypt_can_extents,
  .pread              = nbdcrypt_pread,
  .pwrite             = nbdcrypt_pwrite,
  .zero               = nbdcrypt_zero,
  .trim               = nbdcrypt_trim,
  .cache              = nbdcrypt_cache,
};

NBDKIT_REGISTER_FILTER (filter)
