/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt rewrap: rotate the key-encryption key. The data key and the data are untouched;
 * only the wrapped DEK in the header changes (and a version 1 header is upgraded). Crash-safe:
 * the copy the current key did not open from is rewritten first and flushed, then the other,
 * so a kill at any instant leaves a valid copy that opens with the old or the new KEK. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "errors.h"
#include "secmem.h"
#include "volume-common.h"
#include "volume.h"

static const char *cmd = "rewrap";

static void
usage (FILE *fp)
{
  fprintf (fp,
"usage: nbdcrypt rewrap TARGET CURRENT-KEY NEW-KEK [--wrap local|kms]\n"
"CURRENT-KEY: --kms-config FILE (KEK in a KMS) or --kek-file PATH (local KEK)\n"
"NEW-KEK (one of):\n"
"  --new-kek-id UID              a KEK in the KMS of --kms-config\n"
"  --create-kek [--name N]       create a new AES-256 KEK in that KMS\n"
"  --new-kek-file PATH [--create-kek]   a local KEK file (created, 0600, with --create-kek)\n"
"The new KEK's KMS is --kms-config (rotating from a KEK file to a KMS: give both\n"
"--kek-file OLD and --kms-config FILE).\n");
}

int
cmd_rewrap (int argc, char **argv)
{
  enum { O_KMS = 256, O_KEK_FILE, O_NEW_ID, O_CREATE, O_NAME, O_NEW_FILE, O_WRAP };
  static const struct option opts[] = {
    TOOL_KEY_OPTIONS,
    { "new-kek-id", required_argument, NULL, O_NEW_ID },
    { "create-kek", no_argument, NULL, O_CREATE },
    { "name", required_argument, NULL, O_NAME },
    { "new-kek-file", required_argument, NULL, O_NEW_FILE },
    { "wrap", required_argument, NULL, O_WRAP },
    TOOL_END_OPTIONS,
  };
  const char *kms_config = NULL, *kek_file = NULL, *new_id = NULL, *name = NULL;
  const char *new_file = NULL, *wrap = NULL;
  enum key_wrap w;
  bool create = false;
  struct volume_target *t = NULL;
  struct keyprov *old_kp = NULL, *new_kp = NULL;
  struct volume *v = NULL;
  struct volume_headers hs;
  struct volume_header nh;
  char kek_id[VH_MAX_KEK_ID + 1];
  unsigned first;
  int c, r, status = 1;

  while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_KMS: kms_config = optarg; break;
    case O_KEK_FILE: kek_file = optarg; break;
    case O_NEW_ID: new_id = optarg; break;
    case O_CREATE: create = true; break;
    case O_NAME: name = optarg; break;
    case O_NEW_FILE: new_file = optarg; break;
    case O_WRAP:
      if (tool_parse_wrap (optarg, &w) < 0) {
        tool_err (cmd, "%s", ncr_last_error ());
        return 2;
      }
      wrap = key_wrap_name (w);
      break;
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
  }
  if (optind != argc - 1)
    return tool_usage_error (usage);
  if ((!!new_id + !!new_file + (create && !new_file)) != 1) {
    tool_err (cmd, "give the new KEK: exactly one of --new-kek-id UID, --create-kek, "
              "--new-kek-file PATH");
    return 2;
  }
  if (!new_file && kms_config == NULL) {
    tool_err (cmd, "--new-kek-id and --create-kek need --kms-config FILE");
    return 2;
  }
  if (new_file && wrap && w != KEY_WRAP_AES_KWP) {
    tool_err (cmd, "a KEK file supports only --wrap local");
    return 2;
  }
  if (secmem_protect_process (false) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    return 1;
  }

  if ((r = target_open (argv[optind], true, &t)) < 0 ||
      (r = volume_read_headers (target_read_cb, t, target_size (t), &hs)) < 0 ||
      (r = tool_provider_for_header (cmd, &hs.copy[hs.newest], kms_config, kek_file,
                                     &old_kp)) < 0 ||
      (r = volume_open (target_read_cb, t, target_size (t), old_kp, 0, &v)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  if (v->warning[0])
    tool_warn (cmd, "%s", v->warning);

  if (wrap == NULL)
    wrap = keyprov_kind (old_kp) == KEYPROV_KMIP && !new_file ? v->hdr.wrap :
           key_wrap_name (KEY_WRAP_AES_KWP);
  /* The new KEK's provider: a file, or the KMS (reusing the old provider if it is the KMS). */
  if (new_file) {
    if (create && (r = keyprov_file_create (new_file)) < 0) {
      tool_err (cmd, "%s", ncr_last_error ());
      goto out;
    }
    r = tool_open_provider (cmd, NULL, new_file, &new_kp);
    if (r == 0)
      r = keyprov_default_kek_id (new_kp, kek_id, sizeof kek_id);
  }
  else {
    if (keyprov_kind (old_kp) != KEYPROV_KMIP)
      r = tool_open_provider (cmd, kms_config, NULL, &new_kp);
    if (r == 0 && new_id)
      snprintf (kek_id, sizeof kek_id, "%s", new_id);
    else if (r == 0)
      r = keyprov_create_kek (new_kp ? new_kp : old_kp, name, wrap, kek_id, sizeof kek_id);
  }
  if (r < 0 ||
      (r = volume_rewrap_header (v, new_kp ? new_kp : old_kp, kek_id, wrap, &nh)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }

  /* Sequence above both copies. The copy the key did NOT open from goes first: until that
   * write is flushed, the copy that opened (with the KEK the operator just gave) is intact.
   * After an interrupted rewrap that opened from the older copy, this overwrites the aborted
   * run's copy and never the one the given KEK opens (writing the older copy first, as a
   * plain "oldest first" rule would, could leave only the aborted run's KEK). */
  uint64_t seq_a = hs.status[0] == 0 ? hs.copy[0].sequence : 0;
  uint64_t seq_b = hs.status[1] == 0 ? hs.copy[1].sequence : 0;
  nh.sequence = (seq_a > seq_b ? seq_a : seq_b) + 1;
  first = 1 - v->used_copy;
  if ((r = tool_write_headers (t, &nh, first)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  printf ("rewrapped %s: KEK %s %s -> %s %s (wrap %s), sequence %llu\n", argv[optind],
          v->hdr.kek_provider, v->hdr.kek_id, nh.kek_provider, nh.kek_id, nh.wrap,
          (unsigned long long) nh.sequence);
  status = 0;

 out:
  volume_free (v);
  keyprov_free (new_kp);
  keyprov_free (old_kp);
  if (t && target_close (t) < 0 && status == 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    status = 1;
  }
  return status;
}
