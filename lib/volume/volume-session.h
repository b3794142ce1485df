/* SPDX-License-Identifier: BSD-3-Clause */
/* A served volume's keys, for the filter (no nbdkit dependency): the volume parameters
 * (kms-config=, kek-file=, key-id=, ...) and opening one volume (header mode: unwrap the DEK;
 * key-id mode: fetch a raw key from the KMS) through a key provider shared by every volume of
 * the process. The set of volumes a process serves, and the key check that watches them, are
 * in volume-set.h. */
#ifndef NBDCRYPT_VOLUME_SESSION_H
#define NBDCRYPT_VOLUME_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "volume.h"
#include "xts.h"

/* What a key check that finds the key revoked does (on-revoke=). */
enum session_on_revoke {
  SESSION_REVOKE_DISCONNECT,    /* default: wipe the keys, fail every request, refuse new ones */
  SESSION_REVOKE_REFUSE,        /* refuse new connections; open ones keep the key */
  SESSION_REVOKE_SHUTDOWN,      /* wipe the keys, fail every request, exit non-zero */
};

struct session_config {
  const char *kms_config;       /* KMIP configuration (kms.conf) */
  const char *kek_file;         /* local 32-byte KEK */
  const char *key_id;           /* headerless: raw volume key held by the KMS */
  unsigned startup_timeout;     /* kms-startup-timeout=, seconds (default 60) */
  unsigned check_interval;      /* key-check-interval=, seconds (default 300; 0 = off) */
  enum session_on_revoke on_revoke; /* on-revoke= (default disconnect) */
  bool allow_core_dumps;        /* allow-core-dumps=true */
  bool many_exports;            /* set by the server: every export of a directory is a volume */
};

/* The documented parameter list, for the filter's config_help. */
#define SESSION_CONFIG_HELP \
  "kms-config=FILE           KMIP server configuration: open the volume header's KEK there\n" \
  "kek-file=PATH             local 32-byte KEK that wraps the volume header's key\n" \
  "key-id=UID                headerless volume whose raw key is held by the KMS\n" \
  "kms-startup-timeout=SECS  keep retrying an unreachable KMS at start (default 60)\n" \
  "key-check-interval=SECS   check the KEK's state this often (default 300, 0 = never)\n" \
  "on-revoke=disconnect|shutdown|refuse  revoked KEK: wipe the keys and fail every\n" \
  "                          request (default), the same then exit non-zero, or only\n" \
  "                          refuse new connections (open ones keep the key)\n" \
  "allow-core-dumps=BOOL     debugging only: keep the process dumpable (keys may leak)"

void session_config_init (struct session_config *c);

/* Handle one key=value if it is a volume parameter: returns 1 if handled, 0 if the key is not
 * ours, -EINVAL (message set) on a bad value. value must outlive the config. */
int session_config_set (struct session_config *c, const char *key, const char *value);

/* After all parameters: check combinations. have_key_file: the filter's key-file= was given.
 * Returns 0, or -EINVAL with a message. */
int session_config_complete (const struct session_config *c, bool have_key_file);

/* True if the parameters select a volume mode (header or key-id). */
bool session_config_active (const struct session_config *c);
/* True for header mode (kms-config or kek-file without key-id). */
bool session_config_header_mode (const struct session_config *c);

struct volume_session {
  struct keyprov *kp;           /* the process's provider: not owned */
  struct volume *vol;           /* header mode */
  uint8_t *raw_key;             /* key-id mode (secmem) */
  enum ncr_cipher cipher;
  const uint8_t *key;           /* the XTS key: vol->dek or raw_key */
  size_t key_len;
  const uint8_t *next_key;      /* online re-encryption in progress: vol->next_dek; else NULL */
  unsigned sector_size;
  uint64_t data_offset;         /* 0 in key-id mode */
  uint8_t uuid[VH_UUID_LEN];    /* header mode */
  bool has_uuid;
  bool watch;                   /* a KMS-held key: the key check watches check_id */
  char check_id[VH_MAX_KEK_ID + 1]; /* the KMS object whose state is checked */
  char warning[400];            /* about the volume (header copies) */
  int revoked;                  /* __atomic access: set by the key check */
  char revoked_msg[600];        /* why; written before revoked is set */
  /* Kept by the volume set (volume-set.c). */
  char name[256];               /* the export it was first opened through */
  void *user;                   /* the server's state for this volume */
  struct volume_session *next;
};

/* The key provider the parameters name (a KMS or a KEK file), for every volume of the process.
 * Returns 0 or -errno. */
int session_open_provider (const struct session_config *c, struct keyprov **out);

/* Header mode: read the header through rd, unwrap the DEK through kp (retrying an unreachable
 * KMS for up to timeout_s). A volume in an online re-encryption opens with both keys
 * (next_key); one in an offline run is refused (-EBUSY). Returns 0 or -errno with a one-line
 * reason in ncr_last_error(). */
int session_open_header (const struct session_config *c, struct keyprov *kp, unsigned timeout_s,
                         volume_read_fn rd, void *opaque, uint64_t size,
                         struct volume_session **out);

/* Key-id mode: fetch the raw key for cipher (64 bytes for aes-256-xts, 32 for aes-128-xts). */
int session_open_key_id (const struct session_config *c, struct keyprov *kp,
                         enum ncr_cipher cipher, unsigned sector_size,
                         struct volume_session **out);

enum session_event {
  SESSION_EVENT_REVOKED,             /* the key must no longer be used: msg says why */
  SESSION_EVENT_UNREACHABLE,         /* a check could not reach the KMS: still serving */
  SESSION_EVENT_RECOVERED,           /* the KMS answers again after failures */
  SESSION_EVENT_KEK_CHANGED,         /* a rewrap moved the volume to another KEK: now watched */
};
typedef void (*session_event_fn) (void *opaque, enum session_event ev, const char *msg);

/* One line for the log: UUID, cipher, sector size, data offset, KEK provider and id, wrap. */
void session_describe (const struct session_config *c, const struct volume_session *s, char *out,
                       size_t n);

/* Set once a check found the key revoked, deactivated or destroyed (never cleared). */
bool session_revoked (const struct volume_session *s);

/* on-revoke= as the word the parameter takes. */
const char *session_on_revoke_name (enum session_on_revoke r);

/* Wipe the volume key (the DEK, or key-id mode's raw key) from the process at once and free
 * it: s->key is NULL afterwards. Call only from the revocation event (the checker thread has
 * nothing left to do with the key then) or when no other thread uses s. */
void session_wipe_key (struct volume_session *s);

/* Wipe and free the keys. NULL is fine. */
void session_free (struct volume_session *s);

#endif /* NBDCRYPT_VOLUME_SESSION_H */
