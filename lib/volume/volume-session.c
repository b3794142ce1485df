/* SPDX-License-Identifier: BSD-3-Clause */
/* Volume key life cycle for a serving process: parameters, open once, periodic KEK check. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "parse.h"
#include "secmem.h"
#include "timeutil.h"
#include "volume-session.h"


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

int
session_open_provider (const struct session_config *c, struct keyprov **kp)
{
  if (c->kms_config)
    return keyprov_kmip_open (c->kms_config, kp);
  return keyprov_file_open (c->kek_file, kp);
}

int
session_open_header (const struct session_config *c, struct keyprov *kp, unsigned timeout_s,
                     volume_read_fn rd, void *opaque, uint64_t size, struct volume_session **out)
{
  struct volume_session *s = calloc (1, sizeof *s);
  int r;

  if (s == NULL)
    return ncr_error (ENOMEM, "out of memory");
  s->kp = kp;
  if ((r = volume_open (rd, opaque, size, kp, timeout_s, &s->vol)) < 0) {
    /* The library says what is wrong; the parameters that fix it are ours to name. */
    struct volume_headers hs;
    if (keyprov_error_is_transient (r))
      r = ncr_error (-r, "%s, or raise kms-startup-timeout=", ncr_last_error ());
    else if (r == -ENOKEY)
      r = ncr_error (-r, "%s: give %s", ncr_last_error (),
                     keyprov_kind (kp) == KEYPROV_FILE ? "kms-config=FILE" : "kek-file=PATH");
    else if (r == -ENOENT && volume_read_headers (rd, opaque, size, &hs) == -ENOENT) {
      if (c->many_exports)
        r = ncr_error (-r, "%s: every file of the directory is served as a volume; format "
                       "this one with 'nbdcrypt format', or move it out", ncr_last_error ());
      else
        r = ncr_error (-r, "%s; a headerless volume is opened with key-file= or key-id=, not "
                       "%s", ncr_last_error (), c->kms_config ? "kms-config=" : "kek-file=");
    }
    goto err;
  }
  /* An online run is the server's to drive (both keys); an offline one belongs to the
   * command, which must not share the volume with a server. */
  if ((s->vol->hdr.flags & VH_FLAGS_REENCRYPT) == VH_FLAG_REENCRYPT) {
    r = ncr_error (EBUSY, "an offline re-encryption is in progress: finish it with 'nbdcrypt "
                   "reencrypt TARGET' (with this volume's key) before serving the volume");
    goto err;
  }
  s->next_key = s->vol->next_dek;
  s->cipher = s->vol->cipher;
  s->key = s->vol->dek;
  s->key_len = s->vol->dek_len;
  s->sector_size = s->vol->hdr.sector_size;
  s->data_offset = s->vol->hdr.data_offset;
  memcpy (s->uuid, s->vol->hdr.uuid, sizeof s->uuid);
  s->has_uuid = true;
  snprintf (s->warning, sizeof s->warning, "%s", s->vol->warning);
  snprintf (s->check_id, sizeof s->check_id, "%s", s->vol->hdr.kek_id);
  s->watch = keyprov_kind (kp) == KEYPROV_KMIP;
  *out = s;
  return 0;
 err:
  session_free (s);
  return r;
}

int
session_open_key_id (const struct session_config *c, struct keyprov *kp, enum ncr_cipher cipher,
                     unsigned sector_size, struct volume_session **out)
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
  s->kp = kp;
  s->watch = true;
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
  s->next_key = NULL;
  volume_free (s->vol);
  s->vol = NULL;
  secmem_free (s->raw_key);
  s->raw_key = NULL;
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
  volume_free (s->vol);
  secmem_free (s->raw_key);
  free (s);
}
