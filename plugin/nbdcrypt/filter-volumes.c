/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt filter, the control half: parameters, start-up, the volumes the process serves and
 * their key life cycle (the data path is in nbdcrypt-filter.c).
 *
 * Volumes with a header (kms-config=, kek-file=): every export of the plugin below is a volume
 * with its own header, KEK and DEK (lib/volume/volume-set.c). A volume is opened at the first
 * connection to its export - its header read through that connection, the DEK unwrapped once
 * into locked memory - and held for the life of the process, found again by UUID: later
 * connections never wait on the KMS. One that cannot be opened refuses its export alone.
 * preload=true opens every file of the plugin's dir= before serving, with batched KMS requests.
 *
 * Start-up: with a plugin of one export, that volume is opened before nbdkit forks, as are the
 * key-file= and key-id= keys: a volume that cannot be opened fails nbdkit's start with its exit
 * status and the reason on stderr in every mode (daemon, -f, --run, -s, socket activation).
 * Keys opened before the fork sit in locked memory kept across it (secmem.h); the engines are
 * keyed, the locks re-established and the key check started in .after_fork, in the process
 * that serves. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attributes.h"
#include "errors.h"
#include "filemode.h"
#include "filter-log.h"
#include "filter.h"
#include "keyfile.h"
#include "parse.h"
#include "secmem.h"
#include "timeutil.h"
#include "volume-header.h"
#include "volume-set.h"

bool filter_discard;

/* Configuration: set by .config, checked by .config_complete. */
static char *key_file;
static uint8_t *file_key;               /* key-file=: read once, until the engine is keyed */
static enum ncr_cipher cipher = NCR_CIPHER_AES_256_XTS;
static unsigned sector_size = 4096;
static bool cipher_set, sector_size_set;  /* given explicitly: must match a volume header */
static bool force_headerless;           /* force-headerless=true: key-file=/key-id= over a header */
static bool preload;                    /* preload=true */
static char *plugin_dir;                /* the plugin's dir=, seen on its way down */
static struct session_config session_cfg;

static nbdkit_backend *volume_backend;  /* the plugin below, from .config_complete */
static int final_thread_model;          /* from .get_ready */
static bool forked;                     /* .after_fork has run: new volumes are keyed at once */

/* Header mode and key-id=: every volume of the process. */
static struct volume_set *vset;
/* key-file= and key-id=: the one headerless volume. */
static struct served_volume *headerless;

/* Why an export was last refused (its volume could not be opened), for the export list: an
 * NBD client gets no text with a refused NBD_OPT_GO from nbdkit 1.32, but sees the export
 * list's descriptions (nbdinfo --list). Bounded: the oldest reason goes first. */
struct refusal {
  struct refusal *next;
  char name[256];
  char reason[300];
};
static struct refusal *refusals;
static size_t n_refusals;
static pthread_mutex_t refusals_lock = PTHREAD_MUTEX_INITIALIZER;
#define MAX_REFUSALS 4096

static void
note_refusal (const char *name, const char *reason)
{
  struct refusal **pp, *r = NULL;

  pthread_mutex_lock (&refusals_lock);
  for (pp = &refusals; *pp; pp = &(*pp)->next)
    if (strcmp ((*pp)->name, name) == 0) {
      r = *pp;
      *pp = r->next;            /* unlinked; relinked at the head below */
      n_refusals--;
      break;
    }
  if (reason) {
    if (r == NULL && n_refusals >= MAX_REFUSALS) {   /* drop the oldest (the tail) */
      for (pp = &refusals; (*pp)->next; pp = &(*pp)->next)
        ;
      r = *pp;
      *pp = NULL;
      n_refusals--;
    }
    if (r || (r = calloc (1, sizeof *r))) {
      snprintf (r->name, sizeof r->name, "%s", name);
      snprintf (r->reason, sizeof r->reason, "refused: %s", reason);
      r->next = refusals;
      refusals = r;
      n_refusals++;
      r = NULL;
    }
  }
  free (r);
  pthread_mutex_unlock (&refusals_lock);
}

static int revoked_shutdown;            /* __atomic: on-revoke=shutdown fired: exit non-zero */

/* After on-revoke=shutdown has asked nbdkit to stop: how long nbdkit gets to close its
 * connections and unload (where we exit non-zero) before the process exits anyway. */
#define SHUTDOWN_GRACE_SECONDS 2

int
filter_load (void)
{
  session_config_init (&session_cfg);
  return 0;
}

void
filter_unload (void)
{
  /* key-file='s volume is not in the set; key-id='s is, and is freed with it. */
  if (headerless && headerless->s == NULL)
    served_free (headerless);
  headerless = NULL;
  vset_free (vset);             /* stops the key check thread, wipes every DEK */
  vset = NULL;
  secmem_free (file_key);
  file_key = NULL;
  free (key_file);
  free (plugin_dir);
  while (refusals) {
    struct refusal *r = refusals;
    refusals = r->next;
    free (r);
  }
  /* on-revoke=shutdown: nbdkit itself would exit 0 from here; the plugin below has been
   * unloaded already (nbdkit unloads the stack from the bottom). */
  if (__atomic_load_n (&revoked_shutdown, __ATOMIC_ACQUIRE))
    _exit (EXIT_FAILURE);
}

static int
set_string (char **dst, const char *value)
{
  free (*dst);
  *dst = strdup (value);
  if (*dst == NULL) {
    nbdkit_error ("nbdcrypt: strdup: %m");
    return -1;
  }
  return 0;
}

int
filter_config (nbdkit_next_config *next, nbdkit_backend *nxdata, const char *key,
               const char *value)
{
  int vr = session_config_set (&session_cfg, key, value);

  if (vr == 0 && (vr = reenc_config (key, value)) < 0)
    return -1;
  if (vr < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  if (vr > 0)
    return 0;
  if (strcmp (key, "key-file") == 0)
    return set_string (&key_file, value);
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
  if (strcmp (key, "force-headerless") == 0 || strcmp (key, "preload") == 0) {
    int r = nbdkit_parse_bool (value);
    if (r == -1)
      return -1;
    *(key[0] == 'f' ? &force_headerless : &preload) = r;
    return 0;
  }
  if (strcmp (key, "discard") == 0) {
    if (ncr_parse_bool (value, &filter_discard) < 0) {
      nbdkit_error ("nbdcrypt: discard: %s", ncr_last_error ());
      return -1;
    }
    return 0;
  }
  /* The plugin's directory of exports (nbdkit's file plugin, nbdcrypt's uring plugin): noted
   * for preload=true, and passed down. */
  if (strcmp (key, "dir") == 0 && set_string (&plugin_dir, value) == -1)
    return -1;
  return next (nxdata, key, value);
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
  if (served_new (NULL, cipher, sector_size, 0, &headerless) < 0 ||
      served_key (headerless, file_key, key_len, true) < 0) {
    nbdkit_error ("nbdcrypt: key-file '%s': %s", key_file, ncr_last_error ());
    return -1;
  }
  return 0;
}

/* Header reads: through a context on the plugin below (a connection's, or one of our own), or
 * straight from a file of the plugin's dir= (nbdkit's file plugin cannot open an export
 * outside a connection; its exports are the files' bytes as they are). */
struct reader {
  nbdkit_next *next;
  int fd;                       /* -1: read through next */
};

static int
volume_read (void *opaque, void *buf, size_t count, uint64_t offset)
{
  struct reader *rd = opaque;
  int err = 0;

  if (rd->fd >= 0) {
    for (size_t done = 0; done < count; ) {
      ssize_t n = pread (rd->fd, (uint8_t *) buf + done, count - done, offset + done);
      if (n <= 0)
        return ncr_error (n == 0 ? EIO : errno, "cannot read the volume header (offset %"
                          PRIu64 "): %s", offset, n == 0 ? "short file" : strerror (errno));
      done += n;
    }
    return 0;
  }
  if (rd->next->pread (rd->next, buf, count, offset, 0, &err) == -1) {
    err = err ? err : EIO;
    return ncr_error (err, "cannot read the volume header (offset %" PRIu64 ") from the "
                      "plugin: %s", offset, strerror (err));
  }
  return 0;
}

/* A channel to export `name` outside any connection (.get_ready, preload, the key check
 * thread; writable: an online re-encryption). Returns 0 or -errno with a message. */
static int
channel_open (const char *name, bool writable, void **out, uint64_t *size)
{
  struct reader *rd = calloc (1, sizeof *rd);
  struct stat st;
  int64_t sz;

  if (rd == NULL)
    return ncr_error (ENOMEM, "out of memory");
  rd->fd = -1;
  if (plugin_dir) {
    int dfd;
    /* The name is an export name (from a client, once): one plain entry of dir=. */
    if (name[0] == '\0' || name[0] == '.' || strchr (name, '/')) {
      free (rd);
      return ncr_error (EINVAL, "export '%s' is not a file of dir=%s", name, plugin_dir);
    }
    dfd = open (plugin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    rd->fd = dfd == -1 ? -1 :
             openat (dfd, name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
    if (dfd != -1)
      close (dfd);
    if (rd->fd == -1 || fstat (rd->fd, &st) == -1) {
      int e = errno;
      if (rd->fd != -1)
        close (rd->fd);
      free (rd);
      return ncr_error (e, "cannot open %s/%s to read the volume header: %s", plugin_dir,
                        name, strerror (e));
    }
    if (S_ISBLK (st.st_mode)) {
      off_t end = lseek (rd->fd, 0, SEEK_END);
      st.st_size = end < 0 ? 0 : end;
    }
    *size = st.st_size;
    *out = rd;
    return 0;
  }
  rd->next = nbdkit_next_context_open (volume_backend, !writable, name, 1);
  if (rd->next == NULL) {
    free (rd);
    return ncr_error (EIO, "cannot open export '%s' of the plugin outside a connection",
                      name);
  }
  if (rd->next->prepare (rd->next) == -1 || (sz = rd->next->get_size (rd->next)) < 0) {
    rd->next->finalize (rd->next);
    nbdkit_next_context_close (rd->next);
    free (rd);
    return ncr_error (EIO, "cannot prepare export '%s' of the plugin or get its size", name);
  }
  /* nbdkit asks a context what it can do before it lets it write or flush. */
  if (writable && (rd->next->can_write (rd->next) != 1 || rd->next->can_flush (rd->next) < 0)) {
    rd->next->finalize (rd->next);
    nbdkit_next_context_close (rd->next);
    free (rd);
    return ncr_error (EROFS, "export '%s' of the plugin is read-only", name);
  }
  *size = (uint64_t) sz;
  *out = rd;
  return 0;
}

static int
reader_open (void *opaque UNUSED, const char *name, void **out, uint64_t *size)
{
  return channel_open (name, false, out, size);
}

static void
reader_close (void *opaque UNUSED, void *reader)
{
  struct reader *rd = reader;

  if (rd->fd >= 0)
    close (rd->fd);
  else {
    rd->next->finalize (rd->next);
    nbdkit_next_context_close (rd->next);
  }
  free (rd);
}

int
filter_channel_open (const char *name, void **ch, uint64_t *size)
{
  return channel_open (name, true, ch, size);
}

void
filter_channel_close (void *ch)
{
  reader_close (NULL, ch);
}

int
filter_channel_read (void *ch, void *buf, size_t count, uint64_t offset)
{
  int r = 0;

  /* Pieces: a plugin may cap a request's size. */
  for (size_t done = 0; done < count && r == 0; done += 1u << 24)
    r = volume_read (ch, (uint8_t *) buf + done,
                     count - done < (1u << 24) ? count - done : (1u << 24), offset + done);
  return r;
}

int
filter_channel_write (void *ch, const void *buf, size_t count, uint64_t offset)
{
  struct reader *rd = ch;
  int err = 0;

  if (rd->fd >= 0) {
    for (size_t done = 0; done < count; ) {
      ssize_t n = pwrite (rd->fd, (const uint8_t *) buf + done, count - done, offset + done);
      if (n <= 0)
        return ncr_error (n == 0 ? EIO : errno, "cannot write at offset %" PRIu64 ": %s",
                          offset + done, n == 0 ? "short write" : strerror (errno));
      done += n;
    }
    return 0;
  }
  /* Pieces: a plugin may cap a request's size. */
  for (size_t done = 0; done < count; ) {
    uint32_t n = count - done < (1u << 24) ? count - done : (1u << 24);
    if (rd->next->pwrite (rd->next, (const uint8_t *) buf + done, n, offset + done, 0,
                          &err) == -1) {
      err = err ? err : EIO;
      return ncr_error (err, "cannot write at offset %" PRIu64 " to the plugin: %s",
                        offset + done, strerror (err));
    }
    done += n;
  }
  return 0;
}

int
filter_channel_flush (void *ch)
{
  struct reader *rd = ch;
  int err = 0;

  if (rd->fd >= 0)
    return fdatasync (rd->fd) == 0 ? 0 : ncr_error (errno, "fdatasync: %s", strerror (errno));
  if (rd->next->can_flush (rd->next) == 1 && rd->next->flush (rd->next, 0, &err) == -1) {
    err = err ? err : EIO;
    return ncr_error (err, "flush to the plugin failed: %s", strerror (err));
  }
  return 0;
}

/* Volumes -------------------------------------------------------------------------------- */

/* A keyed volume, in the log: the engine (debug) and the volume's line (info). s: NULL for
 * key-file='s headerless volume. */
static void
log_keyed (const struct served_volume *v, const struct volume_session *s)
{
  char line[600];

  nbdkit_debug ("nbdcrypt: %s, discard %s, engine %s", v->description,
                filter_discard ? "on" : "off", v->engine);
  if (s == NULL)
    return;
  session_describe (&session_cfg, s, line, sizeof line);
  filter_log_info ("%s%s%s", line, s->name[0] ? ", export " : "", s->name);
}

/* A new volume joins the set: its serving state. Before the fork the engine is only checked;
 * after it (a volume opened by a connection), keyed at once. */
static int
volume_attach (void *opaque UNUSED, struct volume_session *s, bool before_fork)
{
  struct served_volume *v;
  int r;

  if (s->vol && ((cipher_set && s->cipher != cipher) ||
                 (sector_size_set && s->sector_size != sector_size)))
    return ncr_error (EINVAL, "cipher=/sector-size= disagree with the volume header (%s, "
                      "%u-byte sectors): leave them out, the header decides",
                      ncr_cipher_name (s->cipher), s->sector_size);
  /* A run of online re-encryption runs in a thread of ours, on a context of its own. */
  if (s->next_key && final_thread_model != NBDKIT_THREAD_MODEL_PARALLEL)
    return ncr_error (EBUSY, "an online re-encryption is in progress, and this plugin does "
                      "not serve requests in parallel: serve the volume with one that does "
                      "(file, uring), or stop it and finish the run with 'nbdcrypt reencrypt "
                      "--take-over TARGET KEY'");
  if ((r = served_new (s, s->cipher, s->sector_size, s->data_offset, &v)) < 0)
    return r;
  if ((r = served_key (v, s->key, s->key_len, before_fork)) < 0 ||
      (!before_fork && s->next_key &&
       (r = served_reenc_begin (v, s->next_key, s->key_len, true)) < 0)) {
    served_free (v);
    return r;
  }
  s->user = v;
  /* A run resumes (its requests wait until then), or the journal an interrupted end left
   * is cleared, at once. */
  if (!before_fork)
    reenc_attached ();
  if (s->warning[0])
    filter_log_warning ("%s", s->warning);
  if (!before_fork)
    log_keyed (v, s);
  return 0;
}

static void
volume_detach (void *opaque UNUSED, struct volume_session *s)
{
  served_free (s->user);
  s->user = NULL;
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

/* Called by the key check thread, about one volume. */
static void
volume_event (void *opaque UNUSED, struct volume_session *s, enum session_event ev,
              const char *msg)
{
  struct served_volume *v = s->user;
  const char *what = v ? v->description : "volume";
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
    nbdkit_error ("nbdcrypt: %s: %s: refusing new connections; open connections keep the key "
                  "(on-revoke=refuse)", what, msg);
    return;
  case SESSION_REVOKE_DISCONNECT:
    if (v)
      served_wipe_keys (v);
    vset_wipe_key (vset, s);
    reenc_wake ();              /* a run of this volume drops its keys now */
    nbdkit_error ("nbdcrypt: %s: %s: volume key wiped from memory; every request to it now "
                  "fails and new connections to it are refused (on-revoke=disconnect)",
                  what, msg);
    return;
  case SESSION_REVOKE_SHUTDOWN:
    if (v)
      served_wipe_keys (v);
    vset_wipe_key (vset, s);
    reenc_wake ();
    nbdkit_error ("nbdcrypt: %s: %s: volume key wiped from memory; shutting down with exit "
                  "status 1 (on-revoke=shutdown)", what, msg);
    __atomic_store_n (&revoked_shutdown, 1, __ATOMIC_RELEASE);
    nbdkit_shutdown ();
    if (pthread_create (&t, NULL, shutdown_watchdog, NULL) != 0)
      _exit (EXIT_FAILURE);
    pthread_detach (t);
    return;
  }
}

/* One line per retry of an unreachable KMS at start, while clients wait. */
static void
log_kms_retry (const char *msg)
{
  filter_log_warning ("%s", msg);
}

int
filter_config_complete (nbdkit_next_config_complete *next, nbdkit_backend *nxdata)
{
  const struct vset_hooks hooks = {
    .attach = volume_attach, .detach = volume_detach, .reader_open = reader_open,
    .reader_close = reader_close, .read = volume_read, .event = volume_event,
  };
  int r;

  if (session_config_complete (&session_cfg, key_file != NULL) < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  volume_backend = nxdata;      /* the plugin's backend: stable for the process's life */
  if (secmem_protect_process (session_cfg.allow_core_dumps) < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  if (plugin_dir && !session_config_header_mode (&session_cfg) &&
      (key_file || session_cfg.key_id)) {
    nbdkit_error ("nbdcrypt: the plugin serves every file of dir=%s as an export, but %s "
                  "keys one headerless volume: every export would share one key. Make each "
                  "file a volume ('nbdcrypt format') and serve them with kek-file= or "
                  "kms-config=", plugin_dir, key_file ? "key-file=" : "key-id=");
    return -1;
  }
  if (preload && !plugin_dir)
    filter_log_info ("preload=true: the plugin has no dir=; its one volume is opened at "
                     "start anyway");
  session_cfg.many_exports = plugin_dir != NULL;
  if (session_config_active (&session_cfg)) {
    /* The provider (KEK file, KMS credentials) is read now, before any drop of privileges;
     * a KEK file stays in locked memory kept across the fork. */
    secmem_keep_across_fork (true);
    r = vset_new (&session_cfg, &hooks, &vset);
    secmem_keep_across_fork (false);
    if (r < 0) {
      nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
      return -1;
    }
    if (vset_provider_warning (vset)[0])
      filter_log_warning ("%s", vset_provider_warning (vset));
    return next (nxdata);       /* volumes are opened in .get_ready, once the plugin is ready */
  }
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

/* Headerless volumes ------------------------------------------------------------------------ */

/* key-file= and key-id= serve the whole plugin as data. Over a volume made by 'nbdcrypt
 * format', or a LUKS container, that is a mistake which the first write at offset 0 turns into
 * lost data (both header copies overwritten): refuse it, unless force-headerless=true.
 * Checked in .get_ready through a context of our own; a plugin that cannot be opened outside
 * a connection (nbdkit's sh and eval plugins) is checked through the first connection instead,
 * and every connection is refused if it finds a header. Returns 0, or -1 after nbdkit_error. */
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
  void *n;
  int r;

  if (force_headerless || session_config_header_mode (&session_cfg))
    return 0;
  if (reader_open (NULL, "", &n, &size) < 0) {
    nbdkit_debug ("nbdcrypt: %s: checking for a header at the first connection instead",
                  ncr_last_error ());
    return 0;
  }
  r = check_headerless (((struct reader *) n)->next, size);
  reader_close (NULL, n);
  return r;
}

/* Start-up ------------------------------------------------------------------------------- */

/* preload=true: every regular file (or block device), not hidden, directly in the plugin's
 * dir= - what nbdkit's file plugin and nbdcrypt's uring plugin offer as exports - opened in
 * name order with batched KMS requests. A volume that cannot be opened is refused alone (a
 * warning, and its export refuses connections until one opens it); a KMS that stays
 * unreachable for kms-startup-timeout fails the start, as it does for a single volume. */
static int
preload_dir (void)
{
  enum { REASON = 300 };
  struct dirent **ents;
  int n = scandir (plugin_dir, &ents, NULL, alphasort);
  size_t count = 0, opened, transient = 0;
  int dfd, r = -1;

  if (n < 0) {
    nbdkit_error ("nbdcrypt: preload=true: cannot list dir=%s: %m", plugin_dir);
    return -1;
  }
  const char **names = calloc (n + 1, sizeof *names);
  int *results = calloc (n + 1, sizeof *results);
  char *reasons = calloc (n + 1, REASON);
  dfd = open (plugin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (!names || !results || !reasons || dfd == -1) {
    nbdkit_error ("nbdcrypt: preload=true: dir=%s: %m", plugin_dir);
    goto out;
  }
  for (int i = 0; i < n; i++) {
    struct stat st;
    if (ents[i]->d_name[0] != '.' && fstatat (dfd, ents[i]->d_name, &st, 0) == 0 &&
        (S_ISREG (st.st_mode) || S_ISBLK (st.st_mode)))
      names[count++] = ents[i]->d_name;
  }
  uint64_t t0 = ncr_now_ms (), msgs0, conns0, msgs1, conns1;
  vset_kms_stats (vset, &msgs0, &conns0);
  opened = vset_preload (vset, count, names, session_cfg.startup_timeout, true, results,
                         reasons, REASON);
  for (size_t i = 0; i < count; i++) {
    if (results[i] == 0)
      continue;
    if (keyprov_error_is_transient (results[i]))
      transient++;
    filter_log_warning ("preload: export '%s' refused: %s", names[i], reasons + i * REASON);
    note_refusal (names[i], reasons + i * REASON);
  }
  vset_kms_stats (vset, &msgs1, &conns1);
  filter_log_info ("preload: %zu of %zu volumes in %s opened in %" PRIu64 " ms (%" PRIu64
                   " KMS requests, %" PRIu64 " connections)", opened, count, plugin_dir,
                   ncr_now_ms () - t0, msgs1 - msgs0, conns1 - conns0);
  if (transient > 0 && opened == 0)
    nbdkit_error ("nbdcrypt: preload: the KMS stayed unreachable for kms-startup-timeout=%u s: "
                  "check the KMS, or raise kms-startup-timeout=", session_cfg.startup_timeout);
  else
    r = 0;
 out:
  if (dfd != -1)
    close (dfd);
  for (int i = 0; i < n; i++)
    free (ents[i]);
  free (ents);
  free (names);
  free (results);
  free (reasons);
  return r;
}

int
filter_get_ready (int thread_model)
{
  struct volume_session *s;
  int r = 0;

  final_thread_model = thread_model;
  if (refuse_headerless_over_header () == -1)
    return -1;
  if (!session_config_active (&session_cfg))
    return 0;
  secmem_keep_across_fork (true);
  ncr_backoff_set_notify (log_kms_retry);
  if (session_cfg.key_id) {
    r = vset_open_key_id (vset, cipher, sector_size, true, &s);
    if (r == 0)
      headerless = s->user;
  }
  else if (plugin_dir) {
    if (preload && preload_dir () == -1) {
      ncr_backoff_set_notify (NULL);
      secmem_keep_across_fork (false);
      return -1;
    }
  }
  else {
    void *n;
    uint64_t size;
    if ((r = reader_open (NULL, "", &n, &size)) < 0)
      nbdkit_debug ("nbdcrypt: %s: opening each volume at its first connection instead",
                    ncr_last_error ());
    else {
      r = vset_open (vset, "", volume_read, n, size, session_cfg.startup_timeout, true, &s);
      reader_close (NULL, n);
    }
  }
  ncr_backoff_set_notify (NULL);
  secmem_keep_across_fork (false);
  if (r < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  /* One export: its volume is open; a KEK file need not stay in memory. */
  if (!plugin_dir && vset_count (vset) > 0)
    vset_drop_file_provider (vset);
  vset_prepare_fork (vset);
  return 0;
}

/* Key the engine of a volume opened before the fork. */
static int
key_after_fork (struct volume_session *s, void *arg UNUSED)
{
  struct served_volume *v = s->user;

  if (served_key (v, s->key, s->key_len, false) < 0 ||
      (s->next_key && served_reenc_begin (v, s->next_key, s->key_len, true) < 0)) {
    nbdkit_error ("nbdcrypt: %s: %s", v->description, ncr_last_error ());
    return -1;
  }
  log_keyed (v, s);
  return 0;
}

/* In the process that serves (after nbdkit's fork, if any): lock the keys kept across the
 * fork again and exclude them from later forks, key the engines, start the key check. */
int
filter_after_fork (nbdkit_backend *backend UNUSED)
{
  int r;

  if (session_cfg.allow_core_dumps)
    filter_log_warning ("allow-core-dumps=true: the process stays dumpable and a core file "
                        "may contain key material");
  if (secmem_after_fork () < 0 || secmem_protect_process (session_cfg.allow_core_dumps) < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  forked = true;
  if (!session_config_active (&session_cfg)) {
    r = served_key (headerless, file_key, ncr_cipher_key_len (cipher), false);
    secmem_free (file_key);     /* key bytes gone; only the key schedules remain */
    file_key = NULL;
    if (r < 0) {
      nbdkit_error ("nbdcrypt: key-file '%s': %s", key_file, ncr_last_error ());
      return -1;
    }
    log_keyed (headerless, NULL);
    filter_log_info ("headerless volume opened: %s, %u-byte sectors, key-file '%s'",
                     ncr_cipher_name (cipher), sector_size, key_file);
    return 0;
  }
  if (vset_foreach (vset, key_after_fork, NULL) != 0)
    return -1;
  /* The key check re-reads headers through contexts of its own, outside any connection:
   * only safe when the plugin (hence nbdkit) runs requests in parallel. */
  if (final_thread_model != NBDKIT_THREAD_MODEL_PARALLEL)
    vset_no_reread (vset);
  if (vset_start_checker (vset, session_cfg.check_interval) < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    return -1;
  }
  /* Online re-encryption: also on contexts of its own, next to the connections. */
  if (final_thread_model == NBDKIT_THREAD_MODEL_PARALLEL && reenc_start (vset) == -1)
    return -1;
  return 0;
}

/* Before the plugin goes: stop the re-encryption thread, which uses it. */
void
filter_cleanup (nbdkit_backend *backend UNUSED)
{
  reenc_stop ();
}

/* key-id=: a revoked key refuses new connections (per volume for header mode: .prepare). */
int
filter_preconnect (nbdkit_next_preconnect *next, nbdkit_backend *nxdata, int readonly)
{
  if (headerless && headerless->s && session_revoked (headerless->s)) {
    nbdkit_error ("nbdcrypt: connection refused: %s", headerless->s->revoked_msg);
    return -1;
  }
  return next (nxdata, readonly);
}

/* Connections ---------------------------------------------------------------------------- */

struct served_volume *
filter_volume_for (nbdkit_next *next, const char *name)
{
  struct volume_session *s;
  int64_t size;

  if (!session_config_header_mode (&session_cfg)) {
    /* The header check of refuse_headerless_over_header, if .get_ready could not make it. */
    switch (__atomic_load_n (&headerless_state, __ATOMIC_ACQUIRE)) {
    case HEADERLESS_REFUSED:
      nbdkit_error ("nbdcrypt: refused: the plugin's data begins with a volume header (see "
                    "the first error)");
      return NULL;
    case HEADERLESS_UNCHECKED:
      if (!force_headerless &&
          ((size = next->get_size (next)) < 0 || check_headerless (next, size) == -1))
        return NULL;
    }
    return headerless;
  }
  if ((size = next->get_size (next)) < 0)
    return NULL;
  /* One attempt at the KMS: a client waits for this connection, and a KMS that is down
   * refuses this export alone (volumes held already keep serving). */
  struct reader rd = { .next = next, .fd = -1 };
  if (vset_open (vset, name, volume_read, &rd, size, 0, !forked, &s) < 0) {
    nbdkit_error ("nbdcrypt: export '%s': %s", name, ncr_last_error ());
    note_refusal (name, ncr_last_error ());
    return NULL;
  }
  if (session_revoked (s)) {
    nbdkit_error ("nbdcrypt: export '%s': connection refused: %s", name, s->revoked_msg);
    note_refusal (name, s->revoked_msg);
    return NULL;
  }
  note_refusal (name, NULL);
  return s->user;
}

/* The plugin's exports, each described by the volume it holds once opened; a revoked one
 * (whose connections are refused) by why it is refused. */
struct describe_arg {
  const char *name;
  const char *desc;
  char why[640];                /* "refused: " and a refusal or revoked_msg (600) */
};

static int
find_by_name (struct volume_session *s, void *arg)
{
  struct describe_arg *a = arg;

  if (strcmp (s->name, a->name) != 0 || s->user == NULL)
    return 0;
  if (session_revoked (s)) {    /* revoked_msg is written before the flag, never again */
    snprintf (a->why, sizeof a->why, "refused: %s", s->revoked_msg);
    a->desc = a->why;
  }
  else
    a->desc = ((struct served_volume *) s->user)->description;
  return 1;
}

int
filter_list_exports (nbdkit_next_list_exports *next, nbdkit_backend *nxdata, int readonly,
                     int is_tls UNUSED, struct nbdkit_exports *exports)
{
  struct nbdkit_exports *below;
  int r = -1;

  if (vset == NULL)
    return next (nxdata, readonly, exports);
  if ((below = nbdkit_exports_new ()) == NULL)
    return -1;
  if (next (nxdata, readonly, below) == -1)
    goto out;
  for (size_t i = 0; i < nbdkit_exports_count (below); i++) {
    struct nbdkit_export e = nbdkit_get_export (below, i);
    struct describe_arg a = { .name = e.name, .desc = e.description };
    if (vset_foreach (vset, find_by_name, &a) == 0) {
      pthread_mutex_lock (&refusals_lock);
      for (struct refusal *f = refusals; f; f = f->next)
        if (strcmp (f->name, e.name) == 0)
          snprintf (a.why, sizeof a.why, "%s", f->reason);
      pthread_mutex_unlock (&refusals_lock);
      if (a.why[0])
        a.desc = a.why;
    }
    if (nbdkit_add_export (exports, e.name, a.desc) == -1)
      goto out;
  }
  r = 0;
 out:
  nbdkit_exports_free (below);
  return r;
}
