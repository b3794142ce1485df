/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt add-kek / remove-kek: manage a volume's keyslots (its data key wrapped under up to
 * VH_MAX_SLOTS KEKs, e.g. the KMS plus a recovery KEK file). Both open the volume with a key
 * it already has, then commit the changed header as rewrap does (tool_commit_header: the copy
 * the key did not open from first, flushed, then the other), so a kill at any instant leaves
 * a copy that opens with the key given. */
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

static void
add_usage (FILE *fp)
{
  fprintf (fp,
"usage: nbdcrypt add-kek TARGET CURRENT-KEY NEW-KEK [--wrap local|kms]\n"
"CURRENT-KEY: --kms-config FILE (KEK in a KMS) or --kek-file PATH (local KEK): a KEK\n"
"  one of the volume's keyslots opens with\n"
"NEW-KEK (one of):\n"
"  --new-kek-id UID              a KEK in the KMS of --kms-config\n"
"  --create-kek [--name N]       create a new AES-256 KEK in that KMS\n"
"  --new-kek-file PATH [--create-kek]   a local KEK file (created, 0600, with --create-kek)\n"
"Adds a keyslot holding the data key wrapped under NEW-KEK; the volume then opens with\n"
"any of its KEKs (at most %u). Adding a KMS KEK to a volume opened with a KEK file: give\n"
"both --kek-file CURRENT and --kms-config FILE.\n", VH_MAX_SLOTS);
}

static void
remove_usage (FILE *fp)
{
  fprintf (fp,
"usage: nbdcrypt remove-kek TARGET CURRENT-KEY (--slot N | --kek-id ID)\n"
"CURRENT-KEY: --kms-config FILE (KEK in a KMS) or --kek-file PATH (local KEK): a KEK\n"
"  one of the volume's keyslots opens with (it may be the one removed)\n"
"  --slot N        remove keyslot N (as 'nbdcrypt dump' numbers them)\n"
"  --kek-id ID     remove the keyslot of KEK ID (a KMS UID, or a KEK file's sha256:...)\n"
"The last keyslot is never removed. A removed KEK still opens header backups and old\n"
"copies of the volume: revoke it in the KMS, or destroy the file, to retire it.\n");
}

/* Open the volume for a header update: t, hs, the provider of the key given and v. Returns
 * 0 or 1 (the exit status) after printing why. */
static int
open_for_update (const char *cmd, const char *target, const char *kms_config,
                 const char *kek_file, struct volume_target **t, struct volume_headers *hs,
                 struct keyprov **kp, struct volume **v)
{
  if (secmem_protect_process (false) < 0 ||
      target_open (target, true, t) < 0 ||
      volume_read_headers (target_read_cb, *t, target_size (*t), hs) < 0 ||
      tool_provider_for_header (cmd, &hs->copy[hs->newest], kms_config, kek_file, kp) < 0 ||
      volume_open (target_read_cb, *t, target_size (*t), *kp, 0, v) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    return 1;
  }
  if ((*v)->warning[0])
    tool_warn (cmd, "%s", (*v)->warning);
  return 0;
}

static int
close_target (const char *cmd, struct volume_target *t, int status)
{
  if (t && target_close (t) < 0 && status == 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    status = 1;
  }
  return status;
}

int
cmd_add_kek (int argc, char **argv)
{
  static const char *cmd = "add-kek";
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
  struct keyprov *kp = NULL, *new_kp = NULL;
  struct volume *v = NULL;
  struct volume_headers hs;
  struct volume_header nh;
  char kek_id[VH_MAX_KEK_ID + 1];
  int c, status = 1;

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
    case 'h': add_usage (stdout); return 0;
    default: add_usage (stderr); return 2;
    }
  }
  if (optind != argc - 1)
    return tool_usage_error (add_usage);
  if (tool_new_kek_check (cmd, &nk) != 0)
    return 2;
  if (open_for_update (cmd, argv[optind], nk.kms_config, kek_file, &t, &hs, &kp, &v) != 0)
    goto out;
  /* Before --create-kek makes a KEK that could not be used. */
  if (volume_header_slots (&v->hdr) >= VH_MAX_SLOTS) {
    tool_err (cmd, "the volume has %u keyslots, the most a header holds; remove one first "
              "('nbdcrypt remove-kek')", VH_MAX_SLOTS);
    goto out;
  }
  if (tool_new_kek_resolve (cmd, &nk, kp, v->hdr.wrap, &new_kp, kek_id, &wrap) < 0 ||
      volume_add_slot_header (v, new_kp ? new_kp : kp, kek_id, wrap, &nh) < 0 ||
      tool_commit_header (t, &hs, v, &nh) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  printf ("added keyslot %u to %s: KEK %s %s (wrap %s); %u keyslots, header version %u, "
          "sequence %llu\n", nh.n_extra, argv[optind], nh.slot[nh.n_extra].kek_provider,
          nh.slot[nh.n_extra].kek_id, nh.slot[nh.n_extra].wrap, volume_header_slots (&nh),
          nh.version, (unsigned long long) nh.sequence);
  status = 0;
 out:
  volume_free (v);
  keyprov_free (new_kp);
  keyprov_free (kp);
  return close_target (cmd, t, status);
}

/* The slot --kek-id names in h (disk order), or -1 after printing why. */
static int
slot_of_kek (const char *cmd, const struct volume_header *h, const char *id)
{
  int found = -1;

  for (unsigned i = 0; i <= h->n_extra; i++) {
    if (strcmp (h->slot[i].kek_id, id) != 0)
      continue;
    if (found >= 0) {
      tool_err (cmd, "keyslots %d and %u both hold KEK id %s (a KMS and a file): give --slot",
                found, i, id);
      return -1;
    }
    found = (int) i;
  }
  if (found < 0)
    tool_err (cmd, "the volume has no keyslot for KEK %s ('nbdcrypt dump' lists them)", id);
  return found;
}

int
cmd_remove_kek (int argc, char **argv)
{
  static const char *cmd = "remove-kek";
  enum { O_KMS = 256, O_KEK_FILE, O_SLOT, O_KEK_ID };
  static const struct option opts[] = {
    TOOL_KEY_OPTIONS,
    { "slot", required_argument, NULL, O_SLOT },
    { "kek-id", required_argument, NULL, O_KEK_ID },
    TOOL_END_OPTIONS,
  };
  const char *kms_config = NULL, *kek_file = NULL, *id = NULL;
  struct volume_target *t = NULL;
  struct keyprov *kp = NULL;
  struct volume *v = NULL;
  struct volume_headers hs;
  struct volume_header disk, nh;
  uint64_t slot = 0;
  bool by_slot = false;
  int c, status = 1;

  while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_KMS: kms_config = optarg; break;
    case O_KEK_FILE: kek_file = optarg; break;
    case O_SLOT:
      if (tool_parse_uint ("--slot", optarg, VH_MAX_SLOTS - 1, &slot) < 0) {
        tool_err (cmd, "%s", ncr_last_error ());
        return 2;
      }
      by_slot = true;
      break;
    case O_KEK_ID: id = optarg; break;
    case 'h': remove_usage (stdout); return 0;
    default: remove_usage (stderr); return 2;
    }
  }
  if (optind != argc - 1)
    return tool_usage_error (remove_usage);
  if (by_slot == !!id) {
    tool_err (cmd, "say which keyslot to remove: exactly one of --slot N, --kek-id ID");
    return 2;
  }
  if (open_for_update (cmd, argv[optind], kms_config, kek_file, &t, &hs, &kp, &v) != 0)
    goto out;
  volume_disk_header (v, &disk);
  if (id) {
    int i = slot_of_kek (cmd, &disk, id);
    if (i < 0)
      goto out;
    slot = (uint64_t) i;
  }
  if (volume_remove_slot_header (v, (unsigned) slot, &nh) < 0 ||
      tool_commit_header (t, &hs, v, &nh) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  printf ("removed keyslot %u from %s: KEK %s %s; %u keyslot%s left, header version %u, "
          "sequence %llu\n", (unsigned) slot, argv[optind], disk.slot[slot].kek_provider,
          disk.slot[slot].kek_id, volume_header_slots (&nh),
          volume_header_slots (&nh) > 1 ? "s" : "", nh.version,
          (unsigned long long) nh.sequence);
  tool_warn (cmd, "KEK %s still opens header backups and old copies of this volume: revoke "
             "it in the KMS or destroy the file to retire it", disk.slot[slot].kek_id);
  status = 0;
 out:
  volume_free (v);
  keyprov_free (kp);
  return close_target (cmd, t, status);
}
