/* SPDX-License-Identifier: BSD-3-Clause */
/* Shared by the 'nbdcrypt kms' subcommands: options, client setup, secret file I/O. */
#ifndef NBDCRYPT_KMS_COMMON_H
#define NBDCRYPT_KMS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmip/kmip.h"

#include "errors.h"

#define KMS_DEFAULT_CONFIG "/etc/nbdcrypt/kms.conf"
#define MAX_SECRET_BYTES 4096

struct kms_opts {
  const char *config, *kmip_version;
  const char *name, *length, *out, *in, *format, *state, *type, *max, *offset;
  const char *reason, *message, *iv, *mode, *aad;
  bool activate, json, secret_data, modify;
  char **args;
  int nargs;
};

/* Subcommands report every failure through ncr_last_error(): their own with ncr_error, a
 * kmip-client one carried over with kms_fail. */
struct kms_subcommand {
  const char *name;
  int nargs;
  int (*run) (struct kmip_client *c, const struct kms_opts *o);  /* 0 or -err (message set) */
};

/* A kmip-client failure r: its message (kmip_last_error) becomes the command's; returns r. */
int kms_fail (int r);

const struct kms_subcommand *kms_find_subcommand (const char *name);

/* Load the config (applying --kmip-version) and create the client. */
int kms_open_client (const struct kms_opts *o, struct kmip_client **cp);

/* Write secret bytes to a new file (O_EXCL, 0600) or to stdout for "-" when stdout is not a
 * terminal. */
int kms_write_secret (const char *path, const uint8_t *buf, size_t len);
/* Read at most max bytes from a file or "-" into buf; returns the count. */
int kms_read_secret (const char *path, uint8_t *buf, size_t max);

/* Parse an unsigned decimal option. */
int kms_parse_uint (const char *what, const char *s, uint32_t *v);

#endif /* NBDCRYPT_KMS_COMMON_H */
