/* SPDX-License-Identifier: BSD-3-Clause */
/* Shared between the filter's two halves: filter-volumes.c (parameters, start-up, the volumes
 * of the process and their key life cycle) and nbdcrypt-filter.c (connections and the data
 * path). */
#ifndef NBDCRYPT_FILTER_H
#define NBDCRYPT_FILTER_H

#include <stdbool.h>
#include <stdint.h>

#include <nbdkit-filter.h>

#include "served-volume.h"

/* discard=on: whole-sector trims are passed down. */
extern bool filter_discard;

/* The parameters (filter-volumes.c). */
int filter_load (void);
void filter_unload (void);
int filter_config (nbdkit_next_config *next, nbdkit_backend *nxdata, const char *key,
                   const char *value);
int filter_config_complete (nbdkit_next_config_complete *next, nbdkit_backend *nxdata);
int filter_get_ready (int thread_model);
int filter_after_fork (nbdkit_backend *backend);
void filter_cleanup (nbdkit_backend *backend);
int filter_preconnect (nbdkit_next_preconnect *next, nbdkit_backend *nxdata, int readonly);
int filter_list_exports (nbdkit_next_list_exports *next, nbdkit_backend *nxdata, int readonly,
                         int is_tls, struct nbdkit_exports *exports);

/* The volume a new connection to export `name` serves, its header read through next (or the
 * one headerless volume). NULL after nbdkit_error, with the one-line reason. */
struct served_volume *filter_volume_for (nbdkit_next *next, const char *name);

/* A read-write channel to export `name` outside any connection (filter-volumes.c): a shared
 * context on the plugin, or the file of its dir=. 0 or -errno with a message; the I/O
 * functions too. */
int filter_channel_open (const char *name, void **ch, uint64_t *size);
void filter_channel_close (void *ch);
int filter_channel_read (void *ch, void *buf, size_t count, uint64_t offset);
int filter_channel_write (void *ch, const void *buf, size_t count, uint64_t offset);
int filter_channel_flush (void *ch);

/* Online re-encryption (filter-reencrypt.c): one thread per process runs every volume's.
 * Parameters: returns 1 if key was one of them, 0 if not, -1 after nbdkit_error. */
int reenc_config (const char *key, const char *value);
/* Start the thread (after the fork): it polls the headers of vs's volumes every interval.
 * 0 or -1 after nbdkit_error. */
struct volume_set;
int reenc_start (struct volume_set *vs);
/* Wake the thread to look at every volume now (a revocation: a run drops its keys). */
void reenc_wake (void);
/* A volume was opened: the thread looks at it (and only at the volumes opened since its last
 * look) now: a run to resume, or the journal an interrupted end left. */
void reenc_attached (void);
/* Stop the thread (.cleanup), wiping the keys it holds. */
void reenc_stop (void);

#define FILTER_CONFIG_HELP_EXTRA \
  "preload=BOOL               Open every volume of the plugin's dir= before serving\n" \
  "                           (default false: each at its first connection).\n" \
  "reencrypt-poll-interval=SECS  How often to look for a re-encryption handed over\n" \
  "                           by 'nbdcrypt reencrypt --online' (default 2).\n" \
  "reencrypt-zone-size=SIZE   Data re-encrypted per journal record online (default 8M).\n" \
  "reencrypt-rate=BYTES       Online re-encryption at most this many bytes a second\n" \
  "                           (default 0: no limit; it takes at most half the time).\n"

#endif /* NBDCRYPT_FILTER_H */
