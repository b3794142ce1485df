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

/* Commit a header update made from volume v (rewrap, add-kek, remove-kek) to both copies,
 * crash-safe: the sequence above both valid copies in hs; first the copy v did NOT open from
 * (until that write is flushed, the copy the operator's KEK opened is intact), then the one
 * it opened from. Sets nh->sequence. Returns 0 or -errno. */
struct volume;
struct volume_headers;
int tool_commit_header (struct volume_target *t, const struct volume_headers *hs,
                        const struct volume *v, struct volume_header *nh);

/* The new KEK of rewrap and add-kek, from their options: exactly one of --new-kek-id UID
 * (in the KMS of --kms-config), --create-kek [--name N] (created there), --new-kek-file PATH
 * [--create-kek] (a local KEK file, created 0600 with --create-kek); --wrap local|kms. */
struct tool_new_kek {
  const char *kms_config;       /* --kms-config */
  const char *id, *name, *file; /* --new-kek-id, --name, --new-kek-file */
  bool create;                  /* --create-kek */
  const char *wrap;             /* --wrap, as the header names it; NULL: the default */
};

/* getopt_long entries for struct tool_new_kek (O_NEW_ID .. O_WRAP: the command's codes). */
#define TOOL_NEW_KEK_OPTIONS \
  { "new-kek-id", required_argument, NULL, O_NEW_ID }, \
  { "create-kek", no_argument, NULL, O_CREATE }, \
  { "name", required_argument, NULL, O_NAME }, \
  { "new-kek-file", required_argument, NULL, O_NEW_FILE }, \
  { "wrap", required_argument, NULL, O_WRAP }

/* Usage checks of the new-KEK options: 0, or prints why and returns 2 (exit status). */
int tool_new_kek_check (const char *cmd, const struct tool_new_kek *nk);

/* Resolve the new KEK: create it if asked, open its provider if it is not cur_kp (the key
 * the volume opened with; *new_kp stays NULL when cur_kp is the new KEK's provider too), and
 * fill kek_id and *wrap (default: cur_wrap for a KEK in the same KMS, else aes-kwp). Returns 0
 * or -errno with the message set. */
int tool_new_kek_resolve (const char *cmd, const struct tool_new_kek *nk, struct keyprov *cur_kp,
                          const char *cur_wrap, struct keyprov **new_kp,
                          char kek_id[VH_MAX_KEK_ID + 1], const char **wrap);

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
