/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt dump: show a volume header (no key needed), as text or JSON; with
 * --dump-volume-key FILE, unwrap the data key and write it to a new 0600 file (recovery,
 * dm-crypt interop, like cryptsetup's --dump-volume-key). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "commands.h"
#include "errors.h"
#include "reencrypt.h"
#include "secmem.h"
#include "volume-common.h"
#include "volume.h"

static const char *cmd = "dump";

static void
usage (FILE *fp)
{
  fprintf (fp,
"usage: nbdcrypt dump [--json] TARGET\n"
"       nbdcrypt dump TARGET --dump-volume-key FILE (--kms-config F | --kek-file F)\n"
"Shows the volume header and every keyslot; needs no key. --dump-volume-key writes the raw data key\n"
"(the dm-crypt volume key) to FILE, which must not exist; it is created with mode 0600.\n");
}

/* kek_id is printable ASCII (the parser guarantees it); escape what JSON requires. */
static void
json_str (const char *s)
{
  putchar ('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      putchar ('\\');
    putchar (*s);
  }
  putchar ('"');
}

/* Re-encryption progress of a flagged header, from the journal (unauthenticated without the
 * key: a figure to show, nothing is decided on it). False if h is not flagged. */
static bool
reencrypt_progress (struct volume_target *t, const struct volume_header *h, uint64_t *done,
                    uint64_t *total)
{
  uint64_t size = target_size (t);

  if (!(h->flags & VH_FLAG_REENCRYPT))
    return false;
  *total = size > h->data_offset ? (size - h->data_offset) / h->sector_size : 0;
  if (reencrypt_peek_progress (target_read_cb, t, h, done) < 0 || *done > *total)
    *done = 0;
  return true;
}

static void
print_json (const struct volume_headers *hs, const struct volume_header *h,
            struct volume_target *t)
{
  uint64_t size = target_size (t), done, total;
  char uuid[37], wdek[2 * VH_MAX_WRAPPED_DEK + 1], kcv[2 * VH_KCV_LEN + 1];

  volume_uuid_str (h->uuid, uuid);
  tool_hex (h->wrapped_dek, h->wrapped_dek_len, wdek);
  tool_hex (h->kcv, VH_KCV_LEN, kcv);
  printf ("{\"uuid\": \"%s\", \"version\": %d, \"cipher\": \"%s\", \"sector_size\": %u, "
          "\"data_offset\": %llu, \"data_size\": %llu, \"kek_provider\": \"%s\", \"kek_id\": ",
          uuid, h->version, h->cipher, h->sector_size, (unsigned long long) h->data_offset,
          (unsigned long long) (size > h->data_offset ? size - h->data_offset : 0),
          h->kek_provider);
  json_str (h->kek_id);
  printf (", \"wrap\": \"%s\", \"wrapped_dek\": \"%s\", \"key_check_value\": \"%s\", "
          "\"sequence\": %llu, \"keyslots\": [", h->wrap, wdek, kcv,
          (unsigned long long) h->sequence);
  for (unsigned i = 0; i <= h->n_extra; i++) {
    tool_hex (h->slot[i].wrapped_dek, h->slot[i].wrapped_dek_len, wdek);
    printf ("%s{\"slot\": %u, \"kek_provider\": \"%s\", \"kek_id\": ", i ? ", " : "", i,
            h->slot[i].kek_provider);
    json_str (h->slot[i].kek_id);
    printf (", \"wrap\": \"%s\", \"wrapped_dek\": \"%s\"}", h->slot[i].wrap, wdek);
  }
  if (reencrypt_progress (t, h, &done, &total))
    printf ("], \"reencrypt\": {\"done_sectors\": %llu, \"total_sectors\": %llu, "
            "\"online\": %s}", (unsigned long long) done, (unsigned long long) total,
            (h->flags & VH_FLAG_REENCRYPT_ONLINE) ? "true" : "false");
  else
    printf ("], \"reencrypt\": null");
  printf (", \"copies\": [");
  for (unsigned i = 0; i < 2; i++) {
    printf ("%s{\"copy\": \"%c\", \"offset\": %llu, \"valid\": %s", i ? ", " : "", 'A' + i,
            (unsigned long long) volume_header_copy_offset (i), hs->status[i] ? "false" : "true");
    if (hs->status[i] == 0) {
      volume_uuid_str (hs->copy[i].uuid, uuid);
      printf (", \"version\": %u, \"sequence\": %llu, \"uuid\": \"%s\", \"kek_id\": ",
              hs->copy[i].version, (unsigned long long) hs->copy[i].sequence, uuid);
      json_str (hs->copy[i].kek_id);
      printf (", \"kek_ids\": [");
      for (unsigned k = 0; k <= hs->copy[i].n_extra; k++) {
        printf ("%s", k ? ", " : "");
        json_str (hs->copy[i].slot[k].kek_id);
      }
      putchar (']');
    }
    else
      printf (", \"error\": "), json_str (hs->reason[i]);
    putchar ('}');
  }
  printf ("], \"copies_agree\": %s}\n", hs->conflict ? "false" : "true");
}

static void
print_text (const struct volume_headers *hs, const struct volume_header *h,
            struct volume_target *t)
{
  uint64_t size = target_size (t), done, total;
  char uuid[37], wdek[2 * VH_MAX_WRAPPED_DEK + 1];

  volume_uuid_str (h->uuid, uuid);
  tool_hex (h->wrapped_dek, h->wrapped_dek_len, wdek);
  printf ("nbdcrypt volume, header version %d\n"
          "uuid:          %s\n"
          "cipher:        %s\n"
          "sector size:   %u\n"
          "data offset:   %llu\n"
          "data size:     %llu\n"
          "KEK provider:  %s\n"
          "KEK id:        %s\n"
          "wrap:          %s\n"
          "wrapped DEK:   %s\n"
          "sequence:      %llu\n"
          "keyslots:      %u\n",
          h->version, uuid, h->cipher, h->sector_size, (unsigned long long) h->data_offset,
          (unsigned long long) (size > h->data_offset ? size - h->data_offset : 0),
          h->kek_provider, h->kek_id, h->wrap, wdek, (unsigned long long) h->sequence,
          volume_header_slots (h));
  /* Every slot, numbered as remove-kek --slot takes them (the KEK lines above: slot 0). */
  for (unsigned i = 0; i <= h->n_extra; i++)
    printf ("slot %u:        %s %s (wrap %s)\n", i, h->slot[i].kek_provider, h->slot[i].kek_id,
            h->slot[i].wrap);
  if (reencrypt_progress (t, h, &done, &total))
    printf ("re-encryption in progress: %llu of %llu sectors (%.1f%%); %s\n",
            (unsigned long long) done, (unsigned long long) total,
            total ? 100.0 * (double) done / (double) total : 0.0,
            (h->flags & VH_FLAG_REENCRYPT_ONLINE) ?
            "online: the server that serves the volume runs it" :
            "offline: resume with 'nbdcrypt reencrypt'");
  for (unsigned i = 0; i < 2; i++) {
    if (hs->status[i] == 0) {
      volume_uuid_str (hs->copy[i].uuid, uuid);
      printf ("copy %c:        valid, version %u, sequence %llu, uuid %s, %u keyslot%s\n",
              'A' + i, hs->copy[i].version, (unsigned long long) hs->copy[i].sequence, uuid,
              volume_header_slots (&hs->copy[i]), hs->copy[i].n_extra ? "s" : "");
    }
    else
      printf ("copy %c:        INVALID: %s\n", 'A' + i, hs->reason[i]);
  }
}

static int
dump_key (struct volume_target *t, const struct volume_header *h, const char *kms_config,
          const char *kek_file, const char *out)
{
  struct keyprov *kp = NULL;
  struct volume *v = NULL;
  CLEANUP_CLOSE int fd = -1;
  int r;

  if (secmem_protect_process (false) < 0)
    return -1;
  if ((r = tool_provider_for_header (cmd, h, kms_config, kek_file, &kp)) < 0 ||
      (r = volume_open (target_read_cb, t, target_size (t), kp, 0, &v)) < 0)
    goto done;
  fd = open (out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd == -1) {
    r = ncr_error (errno, "cannot create %s: %s (it must not exist)", out, strerror (errno));
    goto done;
  }
  if (write (fd, v->dek, v->dek_len) != (ssize_t) v->dek_len || fsync (fd) == -1) {
    r = ncr_error (errno ? errno : EIO, "cannot write %s: %s", out, strerror (errno));
    unlink (out);
    goto done;
  }
  if (v->warning[0])
    tool_warn (cmd, "%s", v->warning);
  fprintf (stderr, "nbdcrypt dump: wrote the %zu-byte volume key (%s) to %s; dm-crypt: "
           "cryptsetup open --type plain --cipher aes-xts-plain64 --key-size %zu "
           "--sector-size %u%s --offset %llu --key-file %s TARGET NAME\n",
           v->dek_len, v->hdr.cipher, out, v->dek_len * 8, v->hdr.sector_size,
           v->hdr.sector_size > 512 ? " --iv-large-sectors" : "",
           (unsigned long long) (v->hdr.data_offset / 512), out);
 done:
  volume_free (v);
  keyprov_free (kp);
  return r;
}

int
cmd_dump (int argc, char **argv)
{
  enum { O_JSON = 256, O_KEY, O_KMS, O_KEK_FILE };
  static const struct option opts[] = {
    { "json", no_argument, NULL, O_JSON },
    { "dump-volume-key", required_argument, NULL, O_KEY },
    TOOL_KEY_OPTIONS,
    TOOL_END_OPTIONS,
  };
  const char *key_out = NULL, *kms_config = NULL, *kek_file = NULL;
  bool json = false;
  struct volume_target *t = NULL;
  struct volume_headers hs;
  int c, r, status = 1;

  while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_JSON: json = true; break;
    case O_KEY: key_out = optarg; break;
    case O_KMS: kms_config = optarg; break;
    case O_KEK_FILE: kek_file = optarg; break;
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
  }
  if (optind != argc - 1)
    return tool_usage_error (usage);
  if (key_out == NULL && (kms_config || kek_file)) {
    tool_err (cmd, "a key is only needed with --dump-volume-key");
    return 2;
  }
  if ((r = target_open (argv[optind], false, &t)) < 0 ||
      (r = volume_read_headers (target_read_cb, t, target_size (t), &hs)) < 0) {
    tool_err (cmd, "%s: %s", argv[optind], ncr_last_error ());
    goto out;
  }
  for (unsigned i = 0; i < 2; i++)
    if (hs.status[i])
      tool_warn (cmd, "header copy %c is invalid: %s", 'A' + i, hs.reason[i]);
  if (hs.conflict)
    tool_warn (cmd, "header copies A and B belong to different volumes (%s); shown: copy %c "
               "(highest sequence); the volume will not open until 'nbdcrypt verify --repair "
             "--use-copy A|B' rewrites one from the other", hs.conflict_why, 'A' + hs.newest);
  if (key_out) {
    if (dump_key (t, &hs.copy[hs.newest], kms_config, kek_file, key_out) < 0) {
      tool_err (cmd, "%s", ncr_last_error ());
      goto out;
    }
  }
  else if (json)
    print_json (&hs, &hs.copy[hs.newest], t);
  else
    print_text (&hs, &hs.copy[hs.newest], t);
  status = 0;
 out:
  target_close (t);
  return status;
}
