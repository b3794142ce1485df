/* SPDX-License-Identifier: BSD-3-Clause */
/* Every volume one serving process holds (no nbdkit dependency): one key provider - one KMS
 * session - shared by all of them; the volumes opened so far, found again by UUID, so that a
 * volume is unwrapped once for the life of the process and later connections never wait on
 * the KMS; a preload that opens many volumes with batched KMS requests; and one key check
 * thread for all of them, with batched state queries.
 *
 * Threads: vset_open, vset_find and vset_foreach may be called from any thread. Volumes are
 * never removed before vset_free; a revoked volume stays, with its keys wiped, so that it
 * keeps being refused. */
#ifndef NBDCRYPT_VOLUME_SET_H
#define NBDCRYPT_VOLUME_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "volume-session.h"

struct volume_set;

/* What the server provides. All may be called from the key check thread. */
struct vset_hooks {
  void *opaque;
  /* A new volume was opened: make the server's state for it (s->user). before_fork: the
   * volume is opened before the server forks (keep it light, key nothing yet). Returns 0, or
   * -errno with a message; the volume is then dropped. */
  int (*attach) (void *opaque, struct volume_session *s, bool before_fork);
  /* The volume is freed (vset_free): free s->user. */
  void (*detach) (void *opaque, struct volume_session *s);
  /* A reader for export `name` outside any connection (preload, re-reading the header in the
   * key check). NULL: the server cannot (the key check then does not follow rewraps).
   * Returns 0 or -errno with a message. */
  int (*reader_open) (void *opaque, const char *name, void **reader, uint64_t *size);
  void (*reader_close) (void *opaque, void *reader);
  volume_read_fn read;
  /* A key check event about volume s (from the key check thread). */
  void (*event) (void *opaque, struct volume_session *s, enum session_event ev,
                 const char *msg);
};

/* Open the key provider the parameters name. Returns 0 or -errno with a message. */
int vset_new (const struct session_config *c, const struct vset_hooks *hooks,
              struct volume_set **out);

/* Secret files (KEK file, kms.conf, client key) readable by others: a warning, or "". */
const char *vset_provider_warning (const struct volume_set *vs);

/* Header mode: the volume behind one export, whose header is read through rd. A volume held
 * already (same UUID, and the header's MAC checks under its DEK) is returned without any KMS
 * request; otherwise the DEK is unwrapped (an unreachable KMS is retried for up to timeout_s:
 * 0 gives one attempt) and the volume joins the set. A revoked volume is returned as it is:
 * the caller refuses it. before_fork: see vset_hooks.attach. Returns 0, or -errno with a
 * one-line reason. */
int vset_open (struct volume_set *vs, const char *name, volume_read_fn rd, void *reader,
               uint64_t size, unsigned timeout_s, bool before_fork,
               struct volume_session **out);

/* Open the n exports names[] (through hooks.reader_open), batching the KMS requests of the
 * volumes not held yet: KEKs or DEKs for up to dozens of volumes per message. results[i]: 0
 * or -errno (the reason for names[i] is in reasons[i], reason_size bytes each, if not NULL).
 * Volumes that fail are not held (a later vset_open tries again). Returns the number opened.
 * An unreachable KMS is retried for up to timeout_s in all. */
size_t vset_preload (struct volume_set *vs, size_t n, const char *const *names,
                     unsigned timeout_s, bool before_fork, int *results, char *reasons,
                     size_t reason_size);

/* Key-id mode: the one headerless volume whose raw key the KMS holds. */
int vset_open_key_id (struct volume_set *vs, enum ncr_cipher cipher, unsigned sector_size,
                      bool before_fork, struct volume_session **out);

/* The volume held with this UUID, or NULL. */
struct volume_session *vset_find (struct volume_set *vs, const uint8_t uuid[VH_UUID_LEN]);

/* Call fn for every volume held (in the order opened); stops at, and returns, the first
 * non-zero return. fn must not call back into the set. */
int vset_foreach (struct volume_set *vs, int (*fn) (struct volume_session *, void *),
                  void *arg);
size_t vset_count (struct volume_set *vs);

/* Before the server forks: close the KMS connection (a TLS session is not shared between
 * processes; the next request connects again). */
void vset_prepare_fork (struct volume_set *vs);

/* A KEK file has no life cycle to watch: once the volumes the process will serve are open,
 * drop the provider so that the KEK does not stay in memory for the life of the process.
 * Later vset_open of a volume not held fails with a message saying so. */
void vset_drop_file_provider (struct volume_set *vs);

/* The key check must not re-read headers (the server cannot read outside a connection
 * safely, e.g. a plugin that is not thread-safe). Call before vset_start_checker. */
void vset_no_reread (struct volume_set *vs);

/* Start the key check (KMS-held keys only, interval_s > 0): every interval, the header of each
 * held volume is read again (if hooks.reader_open) to follow a rewrap to another KMS KEK -
 * the header's MAC still matching the DEK in use - and the states of all watched keys are
 * asked in batched requests; a revoked, deactivated, destroyed or missing key sets the
 * volume's revoked flag and reports SESSION_EVENT_REVOKED for that volume alone.
 * Returns 0 or -errno. */
int vset_start_checker (struct volume_set *vs, unsigned interval_s);

/* A copy of s's volume (header as opened, both keys while a run is on), for a thread that
 * must not race a revocation freeing s->vol. -EPERM if revoked, -EINVAL for a headerless
 * volume. */
int vset_dup_volume (struct volume_set *vs, struct volume_session *s, struct volume **out);

/* Online re-encryption: s's volume is now nv (taken over): a run started (nv flagged, with
 * both keys) or ended (nv under the new key alone). Lookups match either key meanwhile. The
 * old volume's keys are wiped at once; its memory is kept until vset_free, for a key check
 * reading it at that instant. */
void vset_adopt (struct volume_set *vs, struct volume_session *s, struct volume *nv);

/* Revocation: wipe s's key (see session_wipe_key) so that no lookup reads it meanwhile. */
void vset_wipe_key (struct volume_set *vs, struct volume_session *s);

/* KMS requests sent and connections made so far (the scale benchmark); 0 for a KEK file. */
void vset_kms_stats (struct volume_set *vs, uint64_t *messages, uint64_t *connections);

/* Stop the key check, detach and free every volume (keys wiped), close the provider. */
void vset_free (struct volume_set *vs);

#endif /* NBDCRYPT_VOLUME_SET_H */
