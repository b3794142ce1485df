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
int filter_preconnect (nbdkit_next_preconnect *next, nbdkit_backend *nxdata, int readonly);
int filter_list_exports (nbdkit_next_list_exports *next, nbdkit_backend *nxdata, int readonly,
                         int is_tls, struct nbdkit_exports *exports);

/* The volume a new connection to export `name` serves, its header read through next (or the
 * one headerless volume). NULL after nbdkit_error, with the one-line reason. */
struct served_volume *filter_volume_for (nbdkit_next *next, const char *name);

#define FILTER_CONFIG_HELP_EXTRA \
  "preload=BOOL               Open every volume of the plugin's dir= before serving\n" \
  "                           (default false: each at its first connection).\n"

#endif /* NBDCRYPT_FILTER_H */
