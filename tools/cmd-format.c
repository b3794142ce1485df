/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt format: write a volume header holding a fresh random data key (DEK) wrapped under a
 * key-encryption key (KEK) from a KMS or a local KEK file. Refuses targets that hold data. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "commands.h"
#include "errors.h"
#include "minmax.h"
#include "parse.h"
#include "secmem.h"
#include "volume-common.h"
#include "volume.h"
#include "xts.h"

static const char *cmd = "format";

static void
usage (FILE *fp)
{
  fprintf (fp,
"usage: nbdcrypt format TARGET KEY-OPTIONS [OPTIONS]\n"
"TARGET: a file, a block device, or an NBD URI (nbd://host/export, nbd+unix:///?socket=S)\n"
"KEY-OPTIONS (one of):\n"
"  --kms-config FILE --kek-id UID     KEK held by a KMIP server\n"
"  --kms-config FILE --create-kek [--name N]   create a new AES-256 KEK in the KMS\n"
"  --kek-file PATH                    local 32-byte KEK (no KMS)\n"
"  --kek-file PATH --create-kek       create PATH (0600) with a new random KEK first\n"
"OPTIONS:\n"
"  --wrap local|kms      local: RFC 5649 wrap with the fetched KEK (default);\n"
"                        kms: the KMS encrypts the DEK, the KEK never leaves it (KMIP >= 1.2)\n"
"  --cipher aes-256-xts|aes-128-xts   (default aes-256-xts)\n"
"  --sector-size 512|4096             (default 4096)\n"
"  --data-offset BYTES   where data starts, multiple of 4096, >= 1M (default 1M)\n"
"  --force               overwrite a target that holds data (a filesystem, LUKS, ...)\n");
}

int
cmd_format (int argc, char **argv)
{
  enum { O_KMS = 256, O_KEK_ID, O_CREATE, O_NAME, O_KEK_FILE, O_WRAP, O_CIPHER, O_SECTOR,
         O_OFFSET, O_FORCE };
  static const struct option opts[] = {
    { "kms-config", required_argument, NULL, O_KMS },
    { "kek-id", required_argument, NULL, O_KEK_ID },
    { "create-kek", no_argument, NULL, O_CREATE },
    { "name", required_argument, NULL, O_NAME },
    { "kek-file", required_argument, NULL, O_KEK_FILE },
    { "wrap", required_argument, NULL, O_WRAP },
    { "cipher", required_argument, NULL, O_CIPHER },
    { "sector-size", required_argument, NULL, O_SECTOR },
    { "data-offset", required_argument, NULL, O_OFFSET },
    { "force", no_argument, NULL, O_FORCE },
    TOOL_END_OPTIONS,
  };
  const char *kms_config = NULL, *kek_id_opt = NULL, *name = NULL, *kek_file = NULL;
  const char *cipher_name = "aes-256-xts";
  enum key_wrap wrap = KEY_WRAP_AES_KWP;
  bool create = false, force = false, sector_size_given = false;
  uint64_t sector_size = 4096;
  uint64_t data_offset = VH_DEFAULT_DATA_OFFSET;
  enum ncr_cipher cipher;
  struct volume_target *t = NULL;
  struct keyprov *kp = NULL;
  CLEANUP_SECMEM_FREE uint8_t *dek = NULL;
  size_t dek_len = 0;
  struct volume_header h;
  char kek_id[VH_MAX_KEK_ID + 1], what[200], uuid[37];
  bool found;
  int c, r, status = 1;

  while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_KMS: kms_config = optarg; break;
    case O_KEK_ID: kek_id_opt = optarg; break;
    case O_CREATE: create = true; break;
    case O_NAME: name = optarg; break;
    case O_KEK_FILE: kek_file = optarg; break;
    case O_WRAP:
      if (tool_parse_wrap (optarg, &wrap) < 0) {
        tool_err (cmd, "%s", ncr_last_error ());
        return 2;
      }
      break;
    case O_CIPHER: cipher_name = optarg; break;
    case O_SECTOR:
      if (tool_parse_uint ("--sector-size", optarg, UINT32_MAX, &sector_size) < 0) {
        tool_err (cmd, "%s", ncr_last_error ());
        return 2;
      }
      if (sector_size != 512 && sector_size != 4096) {
        tool_err (cmd, "--sector-size must be 512 or 4096, not '%s'", optarg);
        return 2;
      }
      sector_size_given = true;
      break;
    case O_OFFSET:
      if (ncr_parse_size (optarg, UINT64_MAX, &data_offset) < 0) {
        tool_err (cmd, "--data-offset: %s", ncr_last_error ());
        return 2;
      }
      if (data_offset % 4096 || data_offset < VH_MIN_DATA_OFFSET ||
          data_offset > VH_MAX_DATA_OFFSET) {
        tool_err (cmd, "--data-offset must be a multiple of 4096 between 1M and 1G, not '%s'",
                  optarg);
        return 2;
      }
      break;
    case O_FORCE: force = true; break;
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
  }
  if (optind != argc - 1)
    return tool_usage_error (usage);
  if (ncr_cipher_from_name (cipher_name, &cipher) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    return 2;
  }
  if (kek_file && (kek_id_opt || name || wrap != KEY_WRAP_AES_KWP)) {
    tool_err (cmd, "--kek-file takes no --kek-id, --name or --wrap kms (those are for a KMS)");
    return 2;
  }
  if (kms_config && !!kek_id_opt == create) {
    tool_err (cmd, "with --kms-config give exactly one of --kek-id UID or --create-kek");
    return 2;
  }
  if (secmem_protect_process (false) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    return 1;
  }

  if ((r = target_open (argv[optind], true, &t)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    return 1;
  }
  if (target_size (t) < data_offset + sector_size) {
    tool_err (cmd, "%s is %llu bytes: too small for a %llu-byte header area plus data",
              argv[optind], (unsigned long long) target_size (t), (unsigned long long) data_offset);
    goto out;
  }
  /* Nothing is lost by a typo: anything recognisable, or any byte where the header goes. */
  if ((r = tool_detect_data (t, data_offset, what, sizeof what, &found)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  if (found && !force) {
    tool_err (cmd, "%s already holds %s; refusing to overwrite it (use --force if you mean it)",
              argv[optind], what);
    goto out;
  }

  if (kek_file && create && (r = keyprov_file_create (kek_file)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  if ((r = tool_open_provider (cmd, kms_config, kek_file, &kp)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  if (kek_id_opt)
    snprintf (kek_id, sizeof kek_id, "%s", kek_id_opt);
  else if (kms_config)
    r = keyprov_create_kek (kp, name, key_wrap_name (wrap), kek_id, sizeof kek_id);
  else
    r = keyprov_default_kek_id (kp, kek_id, sizeof kek_id);
  if (r < 0 ||
      (r = volume_new_dek (cipher, &dek, &dek_len)) < 0 ||
      (r = volume_make_header (kp, kek_id, key_wrap_name (wrap), cipher,
                               (unsigned) sector_size, data_offset, dek, dek_len, &h)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }

  /* Clear the whole header area first (an old LUKS header's key slots must not survive),
   * then write copy B and copy A. */
  {
    CLEANUP_FREE uint8_t *zero = calloc (1, 1 << 20);
    if (zero == NULL) {
      tool_err (cmd, "out of memory");
      goto out;
    }
    for (uint64_t off = 0; off < data_offset && r == 0; off += 1 << 20)
      r = target_pwrite (t, zero, MIN (data_offset - off, (uint64_t) 1 << 20), off);
    if (r == 0)
      r = target_flush (t);
  }
  if (r < 0 || (r = tool_write_headers (t, &h, 1)) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  volume_uuid_str (h.uuid, uuid);
  printf ("formatted %s: uuid %s, %s, %u-byte sectors, data at %llu, %llu bytes usable\n"
          "KEK: %s %s (wrap %s)\n",
          argv[optind], uuid, h.cipher, h.sector_size, (unsigned long long) h.data_offset,
          (unsigned long long) ((target_size (t) - h.data_offset) / h.sector_size * h.sector_size),
          h.kek_provider, h.kek_id, h.wrap);
  /* The default suits file systems that write 4 KiB blocks; VMFS writes 512-byte blocks,
   * each a read-modify-write of a 4096-byte sector (1.3-1.9x slower through an iSCSI
   * gateway). On stderr: stdout stays one parseable summary. */
  if (!sector_size_given)
    fprintf (stderr, "nbdcrypt %s: note: 4096-byte encryption sectors (the default); for "
             "ESXi/VMFS, which writes 512-byte blocks, use --sector-size 512 "
             "(docs/gateway.md)\n", cmd);
  status = 0;

 out:
  keyprov_free (kp);
  if (t && target_close (t) < 0 && status == 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    status = 1;
  }
  return status;
}
