/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt verify: check a volume end to end without serving it: both header copies, the
 * KMS (reachable, KEK state), the unwrap, and the key check value or header MAC. --repair
 * rewrites a damaged or outdated header copy from the copy that opened (--use-copy chooses
 * it) and upgrades a version 1 header. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commands.h"
#include "errors.h"
#include "secmem.h"
#include "volume-common.h"
#include "volume.h"

static const char *cmd = "verify";

static void
usage (FILE *fp)
{
  fprintf (fp,
"usage: nbdcrypt verify TARGET (--kms-config FILE | --kek-file PATH) [--repair]\n"
"       [--use-copy A|B] [--timeout SECONDS]\n"
"Checks both header copies, that the KMS is reachable and the KEK active, that the data\n"
"key unwraps and matches the header (key check value, or the header MAC of version 2).\n"
"Exit 0: the volume opens. --repair rewrites a damaged or outdated header copy from the\n"
"copy that opened, and upgrades a version 1 header. --use-copy A|B: open from that copy\n"
"only (when the copies disagree, or to roll back an interrupted rewrap); with --repair,\n"
"the other copy is rewritten from it.\n");
}

/* The two copies hold the same header (apart from where they sit)? */
static bool
same_bytes (const struct volume_header *a, const struct volume_header *b)
{
  struct volume_header x = *a, y = *b;
  uint8_t ba[VH_AREA_SIZE], bb[VH_AREA_SIZE];

  x.copy_index = y.copy_index = 0;
  return volume_header_encode (&x, ba, sizeof ba) == 0 &&
         volume_header_encode (&y, bb, sizeof bb) == 0 && memcmp (ba, bb, sizeof ba) == 0;
}

/* Open the provider for copy `*pick` and report its KEK's state. In an interrupted rewrap the
 * key given may be the older copy's: then that copy is the one checked (and *pick moves). */
static int
check_kek (const struct volume_headers *hs, int *pick, bool fixed, const char *kms_config,
           const char *kek_file, unsigned timeout, struct keyprov **kp)
{
  const struct volume_header *o = &hs->copy[1 - *pick];
  const struct volume_keyslot *h = &hs->copy[*pick].slot[0];
  enum kek_state st;
  char first[512];
  int r, i;

  r = tool_provider_for_header (cmd, &hs->copy[*pick], kms_config, kek_file, kp);
  /* The slot the key given opens (a KEK file: the one with its fingerprint). */
  if (r == 0 && (i = volume_pick_slot (&hs->copy[*pick], *kp)) >= 0)
    h = &hs->copy[*pick].slot[i];
  if (r == 0)
    r = keyprov_kek_state (*kp, h->kek_id, &st);
  if (r < 0 && !fixed && !hs->conflict && hs->status[1 - *pick] == 0 &&
      strcmp (o->kek_id, h->kek_id) != 0 && !keyprov_error_is_transient (r)) {
    struct keyprov *okp = NULL;
    snprintf (first, sizeof first, "%s", ncr_last_error ());
    if (tool_provider_for_header (cmd, o, kms_config, kek_file, &okp) == 0 &&
        (i = volume_pick_slot (o, okp)) >= 0 &&
        keyprov_kek_state (okp, o->slot[i].kek_id, &st) == 0) {
      keyprov_free (*kp);
      *kp = okp;
      *pick = 1 - *pick;
      h = &o->slot[i];
      r = 0;
    }
    else {
      keyprov_free (okp);
      r = ncr_error (-r, "%s", first);
    }
  }
  if (r < 0) {
    printf ("KEK %s: cannot check: %s\n", h->kek_id, ncr_last_error ());
    /* With --timeout, an unreachable KMS gets the open's retries before we give up. */
    if (*kp && timeout > 0 && keyprov_error_is_transient (r))
      return 0;
    return r;
  }
  printf ("KEK %s (%s): %s\n", h->kek_id, h->kek_provider, kek_state_name (st));
  return 0;
}

/* --repair: bring both copies to the header that opened (v->hdr). A version 1 header is
 * upgraded: both copies rewritten at the next sequence, the copy that did not open first, so
 * that a kill leaves the opened copy intact. Otherwise only a differing other copy is
 * rewritten, and the opened copy is not touched. */
static int
repair (struct volume_target *t, const struct volume_headers *hs, const struct volume *v)
{
  unsigned used = v->used_copy, other = 1 - used;
  struct volume_header fixed;
  uint8_t buf[VH_AREA_SIZE];
  int r;

  volume_disk_header (v, &fixed);
  if (v->hdr.version < VH_VERSION_MAC) {
    uint64_t seq = v->hdr.sequence;
    if (hs->status[other] == 0 && hs->copy[other].sequence > seq)
      seq = hs->copy[other].sequence;
    fixed.sequence = seq + 1;
    if ((r = volume_header_seal (&fixed, v->dek, v->dek_len)) < 0 ||
        (r = tool_write_headers (t, &fixed, other)) < 0)
      return r;
    printf ("upgraded the header to version %u (both copies, sequence %llu)\n",
            fixed.version, (unsigned long long) fixed.sequence);
    return 0;
  }
  if (hs->status[other] == 0 && same_bytes (&hs->copy[other], &fixed))
    return 0;
  fixed.copy_index = (uint8_t) other;
  if ((r = volume_header_encode (&fixed, buf, sizeof buf)) < 0 ||
      (r = target_pwrite (t, buf, sizeof buf, volume_header_copy_offset (other))) < 0 ||
      (r = target_flush (t)) < 0)
    return r;
  printf ("repaired header copy %c (rewritten from copy %c)\n", 'A' + other, 'A' + used);
  return 0;
}

int
cmd_verify (int argc, char **argv)
{
  enum { O_KMS = 256, O_KEK_FILE, O_REPAIR, O_TIMEOUT, O_USE_COPY };
  static const struct option opts[] = {
    TOOL_KEY_OPTIONS,
    { "repair", no_argument, NULL, O_REPAIR },
    { "use-copy", required_argument, NULL, O_USE_COPY },
    { "timeout", required_argument, NULL, O_TIMEOUT },
    TOOL_END_OPTIONS,
  };
  const char *kms_config = NULL, *kek_file = NULL;
  bool repair_opt = false;
  int use_copy = -1, pick;
  uint64_t timeout = 0;
  struct volume_target *t = NULL;
  struct keyprov *kp = NULL;
  struct volume *v = NULL;
  struct volume_headers hs;
  int c, r, status = 1;

  while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_KMS: kms_config = optarg; break;
    case O_KEK_FILE: kek_file = optarg; break;
    case O_REPAIR: repair_opt = true; break;
    case O_USE_COPY:
      if (strcasecmp (optarg, "A") == 0)
        use_copy = 0;
      else if (strcasecmp (optarg, "B") == 0)
        use_copy = 1;
      else {
        tool_err (cmd, "--use-copy takes A or B, not '%s'", optarg);
        return 2;
      }
      break;
    case O_TIMEOUT:
      if (tool_parse_uint ("--timeout", optarg, 86400, &timeout) < 0) {
        tool_err (cmd, "%s", ncr_last_error ());
        return 2;
      }
      break;
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
  }
  if (optind != argc - 1)
    return tool_usage_error (usage);
  if (secmem_protect_process (false) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    return 1;
  }
  if ((r = target_open (argv[optind], repair_opt, &t)) < 0 ||
      (r = volume_read_headers (target_read_cb, t, target_size (t), &hs)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  for (unsigned i = 0; i < 2; i++) {
    char uuid[37];
    if (hs.status[i] == 0) {
      volume_uuid_str (hs.copy[i].uuid, uuid);
      printf ("header copy %c: valid (version %u, sequence %llu, uuid %s, KEK %s", 'A' + i,
              hs.copy[i].version, (unsigned long long) hs.copy[i].sequence, uuid,
              hs.copy[i].kek_id);
      for (unsigned k = 1; k <= hs.copy[i].n_extra; k++)
        printf (", %s", hs.copy[i].slot[k].kek_id);
      printf (")\n");
    }
    else
      printf ("header copy %c: INVALID: %s\n", 'A' + i, hs.reason[i]);
  }
  if (hs.conflict)
    printf ("header copies A and B belong to different volumes: %s\n", hs.conflict_why);
  if (use_copy >= 0 && hs.status[use_copy] != 0) {
    tool_err (cmd, "--use-copy %c: that copy is not valid (%s)", 'A' + use_copy,
              hs.reason[use_copy]);
    goto out;
  }
  pick = use_copy >= 0 ? use_copy : hs.newest;
  if (check_kek (&hs, &pick, use_copy >= 0, kms_config, kek_file, (unsigned) timeout, &kp) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  r = use_copy >= 0 ? volume_open_copy (target_read_cb, t, target_size (t), kp, (unsigned) timeout,
                                        (unsigned) use_copy, &v)
                    : volume_open (target_read_cb, t, target_size (t), kp, (unsigned) timeout, &v);
  if (r < 0) {
    printf ("volume key: FAILED: %s\n", ncr_last_error ());
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  printf ("volume key: unwrapped from copy %c, key check value OK%s\n", 'A' + v->used_copy,
          v->hdr.version >= 2 ? " (header MAC: fields authenticated)" : "");
  if (v->hdr.flags & VH_FLAG_REENCRYPT)
    printf ("re-encryption in progress: the next data key unwraps too; the filter will not "
            "serve the volume until 'nbdcrypt reencrypt' finishes it\n");
  if (!repair_opt) {
    if (v->warning[0])
      tool_warn (cmd, "%s", v->warning);
    struct volume_header disk;
    volume_disk_header (v, &disk);
    if (use_copy >= 0 && hs.status[1 - use_copy] == 0 &&
        !same_bytes (&hs.copy[1 - use_copy], &disk))
      printf ("copy %c opens with this key; 'nbdcrypt verify --repair --use-copy %c' "
              "rewrites copy %c from it\n", 'A' + use_copy, 'A' + use_copy, 'B' - use_copy);
  }
  else if (use_copy < 0 && hs.status[1 - v->used_copy] == 0 &&
           hs.copy[1 - v->used_copy].sequence > v->hdr.sequence) {
    tool_err (cmd, "%s. --repair does not choose between the two KEKs: finish the rewrap with "
              "'nbdcrypt rewrap', or give --use-copy %c to roll back to this KEK", v->warning,
            'A' + v->used_copy);
    goto out;
  }
  else if ((r = repair (t, &hs, v)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  status = 0;
 out:
  volume_free (v);
  keyprov_free (kp);
  if (t && target_close (t) < 0 && status == 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    status = 1;
  }
  return status;
}
