/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt verify: check a volume end to end without serving it: both header copies, the
 * KMS (reachable, KEK state), the unwrap, and the key check value. --repair rewrites a
 * damaged or outdated header copy from the newest valid one. */
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

static const char *cmd = "verify";

static void
usage (FILE *fp)
{
  fprintf (fp,
"usage: nbdcrypt verify TARGET (--kms-config FILE | --kek-file PATH) [--repair]\n"
"       [--timeout SECONDS]\n"
"Checks both header copies, that the KMS is reachable and the KEK active, that the data\n"
"key unwraps and matches the key check value. Exit 0: the volume opens. --repair rewrites\n"
"a damaged or outdated header copy from the newest valid copy.\n");
}

int
cmd_verify (int argc, char **argv)
{
  enum { O_KMS = 256, O_KEK_FILE, O_REPAIR, O_TIMEOUT };
  static const struct option opts[] = {
    { "kms-config", required_argument, NULL, O_KMS },
    { "kek-file", required_argument, NULL, O_KEK_FILE },
    { "repair", no_argument, NULL, O_REPAIR },
    { "timeout", required_argument, NULL, O_TIMEOUT },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *kms_config = NULL, *kek_file = NULL;
  bool repair = false;
  uint64_t timeout = 0;
  struct volume_target *t = NULL;
  struct keyprov *kp = NULL;
  struct volume *v = NULL;
  struct volume_headers hs;
  const struct volume_header *h;
  enum kek_state st;
  int c, r, status = 1;

  while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_KMS: kms_config = optarg; break;
    case O_KEK_FILE: kek_file = optarg; break;
    case O_REPAIR: repair = true; break;
    case O_TIMEOUT:
      if (vc_parse_uint ("--timeout", optarg, 86400, &timeout) < 0) {
        vc_err (cmd, "%s", ncr_last_error ());
        return 2;
      }
      break;
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
  }
  if (optind != argc - 1) {
    usage (stderr);
    return 2;
  }
  if (secmem_protect_process (false) < 0) {
    vc_err (cmd, "%s", ncr_last_error ());
    return 1;
  }
  if ((r = vt_open (argv[optind], repair, &t)) < 0 ||
      (r = volume_read_headers (vt_read_cb, t, vt_size (t), &hs)) < 0) {
    vc_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  for (unsigned i = 0; i < 2; i++) {
    if (hs.status[i] == 0)
      printf ("header copy %c: valid (sequence %llu, KEK %s)\n", 'A' + i,
              (unsigned long long) hs.copy[i].sequence, hs.copy[i].kek_id);
    else
      printf ("header copy %c: INVALID: %s\n", 'A' + i, hs.reason[i]);
  }
  h = &hs.copy[hs.newest];
  if ((r = vc_provider_for_header (cmd, h, kms_config, kek_file, &kp)) < 0) {
    vc_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  r = keyprov_kek_state (kp, h->kek_id, &st);
  if (r < 0) {
    printf ("KEK %s: cannot check: %s\n", h->kek_id, ncr_last_error ());
    /* With --timeout, an unreachable KMS gets the open's retries before we give up. */
    if (!(timeout > 0 && keyprov_error_is_transient (r))) {
      vc_err (cmd, "%s", ncr_last_error ());
      goto out;
    }
  }
  else
    printf ("KEK %s (%s): %s\n", h->kek_id, h->kek_provider, kek_state_name (st));
  if ((r = volume_open (vt_read_cb, t, vt_size (t), kp, (unsigned) timeout, &v)) < 0) {
    printf ("volume key: FAILED: %s\n", ncr_last_error ());
    vc_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  printf ("volume key: unwrapped from copy %c, key check value OK\n", 'A' + v->used_copy);
  if (v->warning[0]) {
    if (!repair)
      vc_warn (cmd, "%s", v->warning);
    else if (v->used_copy != (unsigned) hs.newest) {
      vc_err (cmd, "opened from the older copy only; rerun with the newest copy's KEK (%s) "
              "to repair, or finish the rotation with 'nbdcrypt rewrap'", h->kek_id);
      goto out;
    }
    else {
      /* Write only the stale copy; the good one is not touched. */
      struct volume_header fixed = v->hdr;
      unsigned bad = 1 - v->used_copy;
      uint8_t buf[VH_AREA_SIZE];
      fixed.copy_index = (uint8_t) bad;
      if ((r = volume_header_encode (&fixed, buf, sizeof buf)) < 0 ||
          (r = vt_pwrite (t, buf, sizeof buf, volume_header_copy_offset (bad))) < 0 ||
          (r = vt_flush (t)) < 0) {
        vc_err (cmd, "%s", ncr_last_error ());
        goto out;
      }
      printf ("repaired header copy %c\n", 'A' + bad);
    }
  }
  status = 0;
 out:
  volume_free (v);
  keyprov_free (kp);
  if (t && vt_close (t) < 0 && status == 0) {
    vc_err (cmd, "%s", ncr_last_error ());
    status = 1;
  }
  return status;
}
