/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt rewrap: rotate the key-encryption key of the keyslot the given key opens. The data
 * key and the data are untouched; only that slot's wrapped DEK in the header changes (and a
 * version 1 header is upgraded). Crash-safe:
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
"--kek-file OLD and --kms-config FILE). The keyslot the current key opens is rewrapped;\n"
"the volume's other keyslots are kept.\n");
}

int
cmd_rewrap (int argc, char **argv)
{
  enum { O_KMS = 256, O_KEK_FILE, O_NEW_ID, O_CREATE, O_NAME, O_NEW_FILE, O_WRAP };
  static const struct option opts[] = {
    TOOL_KEY_OPTIONS,
    TOOL_NEW_KEK_OPTIONS,
    TOOL_END_OPTIONS,
  };
  struct tool_new_kek nk = { 0 };
  const char *kek_file = NULL, *wrap;
  enum key_wrap w;
  struct volume_target *t = NULL;
  struct keyprov *old_kp = NULL, *new_kp = NULL;
  struct volume *v = NULL;
  struct volume_headers hs;
  struct volume_header nh;
  char kek_id[VH_MAX_KEK_ID + 1];
  int c, r, status = 1;

  while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_KMS: nk.kms_config = optarg; break;
    case O_KEK_FILE: kek_file = optarg; break;
    case O_NEW_ID: nk.id = optarg; break;
    case O_CREATE: nk.create = true; break;
    case O_NAME: nk.name = optarg; break;
    case O_NEW_FILE: nk.file = optarg; break;
    case O_WRAP:
      if (tool_parse_wrap (optarg, &w) < 0) {
        tool_err (cmd, "%s", ncr_last_error ());
        return 2;
      }
      nk.wrap = key_wrap_name (w);
      break;
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
  }
  if (optind != argc - 1)
    return tool_usage_error (usage);
  if (tool_new_kek_check (cmd, &nk) != 0)
    return 2;
  if (secmem_protect_process (false) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    return 1;
  }

  if ((r = target_open (argv[optind], true, &t)) < 0 ||
      (r = volume_read_headers (target_read_cb, t, target_size (t), &hs)) < 0 ||
      (r = tool_provider_for_header (cmd, &hs.copy[hs.newest], nk.kms_config, kek_file,
                                     &old_kp)) < 0 ||
      (r = volume_open (target_read_cb, t, target_size (t), old_kp, 0, &v)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  if (v->warning[0])
    tool_warn (cmd, "%s", v->warning);

  /* The slot the key given opened is the one rewrapped (v->hdr holds it as slot 0). */
  if ((r = tool_new_kek_resolve (cmd, &nk, old_kp, v->hdr.wrap, &new_kp, kek_id, &wrap)) < 0 ||
      (r = volume_rewrap_header (v, new_kp ? new_kp : old_kp, kek_id, wrap, &nh)) < 0 ||
      (r = tool_commit_header (t, &hs, v, &nh)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  printf ("rewrapped %s: keyslot %u: KEK %s %s -> %s %s (wrap %s), sequence %llu\n",
          argv[optind], v->used_slot, v->hdr.kek_provider, v->hdr.kek_id,
          nh.slot[v->used_slot].kek_provider, nh.slot[v->used_slot].kek_id,
          nh.slot[v->used_slot].wrap, (unsigned long long) nh.sequence);
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
