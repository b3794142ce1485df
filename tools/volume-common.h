/* SPDX-License-Identifier: BSD-3-Clause */
/* Helpers shared by format, dump, rewrap and verify: key-provider options, header writes in a
 * crash-safe order, existing-data detection, output formatting. */
#ifndef NBDCRYPT_VOLUME_COMMON_H
#define NBDCRYPT_VOLUME_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include "keyprov.h"
#include "volume-header.h"
#include "volume-target.h"

/* Print "nbdcrypt CMD: message" (tool_err) or "nbdcrypt CMD: warning: message" on stderr. */
void tool_msg (const char *cmd, const char *level, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));
#define tool_err(cmd, ...) tool_msg ((cmd), "", __VA_ARGS__)
#define tool_warn(cmd, ...) tool_msg ((cmd), "warning: ", __VA_ARGS__)

/* A command line the subcommand cannot use: its usage on stderr; returns exit status 2. */
int tool_usage_error (void (*usage) (FILE *fp));

/* Open the provider named by exactly one of kms_config / kek_file. Its warnings (a KEK file,
 * kms.conf or client key readable by others) are printed for command cmd. Returns 0 or
 * -errno. */
int tool_open_provider (const char *cmd, const char *kms_config, const char *kek_file,
                        struct keyprov **out);

/* Open the provider the volume's header names ("kmip" -> kms_config, "file" -> kek_file),
 * with a message naming the missing option. */
int tool_provider_for_header (const char *cmd, const struct volume_header *h,
                              const char *kms_config, const char *kek_file,
                            struct keyprov **out);

/* --wrap local|kms (also the header spelling aes-kwp). Returns 0 or -EINVAL. */
int tool_parse_wrap (const char *opt, enum key_wrap *out);

/* A numeric option's value: decimal digits only, 0..max; the message names opt. */
int tool_parse_uint (const char *opt, const char *value, uint64_t max, uint64_t *out);

/* Write header h as both copies: first the copy `first`, flush, then the other, flush. A kill
 * at any instant leaves at least one valid copy. Test build only (nbdcrypt-test-hooks):
 * NBDCRYPT_TEST_HEADER_WRITE_DELAY_MS (documented in docs/volumes.md) writes each copy in
 * 512-byte pieces with that delay after each piece, so a test can kill the command in the
 * middle of a copy. */
int tool_write_headers (struct volume_target *t, const struct volume_header *h, unsigned first);

/* Describe existing data that `format` must not overwrite without --force: returns true and
 * a description ("an ext2/3/4 filesystem", "non-zero bytes at offset 4096 ...") if any.
 * Reads [0, area) of the target. */
int tool_detect_data (struct volume_target *t, uint64_t area, char *what, size_t what_size,
                      bool *found);

/* Hex of n bytes into out (2n+1 bytes). */
void tool_hex (const uint8_t *p, size_t n, char *out);

/* getopt_long table entries every volume subcommand shares: the current key (O_KMS and
 * O_KEK_FILE are the command's own option codes) and the closing --help and terminator. */
#define TOOL_KEY_OPTIONS \
  { "kms-config", required_argument, NULL, O_KMS }, \
  { "kek-file", required_argument, NULL, O_KEK_FILE }
#define TOOL_END_OPTIONS \
  { "help", no_argument, NULL, 'h' }, \
  { NULL, 0, NULL, 0 }

#endif /* NBDCRYPT_VOLUME_COMMON_H */
