/* SPDX-License-Identifier: BSD-3-Clause */
/* Shared helpers for the volume subcommands (format, dump, rewrap, verify). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "errors.h"
#include "minmax.h"
#include "parse.h"
#include "reencrypt.h"
#include "timeutil.h"
#include "volume-common.h"
#include "volume.h"

int
tool_usage_error (void (*usage) (FILE *fp))
{
  usage (stderr);
  return 2;
}

/* One line on stderr: "nbdcrypt CMD: LEVELMESSAGE" (level "" or "warning: "). */
void
tool_msg (const char *cmd, const char *level, const char *fmt, ...)
{
  va_list ap;

  fprintf (stderr, "nbdcrypt %s: %s", cmd, level);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

/* Open a provider and show what it found wrong with its files (group-readable KEK, ...). */
static int
opened (const char *cmd, int r, struct keyprov **out)
{
  if (r == 0 && keyprov_warning (*out)[0])
    tool_warn (cmd, "%s", keyprov_warning (*out));
  return r;
}

int
tool_open_provider (const char *cmd, const char *kms_config, const char *kek_file,
                    struct keyprov **out)
{
  if (kms_config && kek_file)
    return ncr_error (EINVAL, "give either --kms-config or --kek-file, not both");
  if (kms_config)
    return opened (cmd, keyprov_kmip_open (kms_config, out), out);
  if (kek_file)
    return opened (cmd, keyprov_file_open (kek_file, out), out);
  return ncr_error (EINVAL, "no key given: use --kms-config FILE (KEK in a KMS) or "
                    "--kek-file PATH (local KEK)");
}

int
tool_provider_for_header (const char *cmd, const struct volume_header *h, const char *kms_config,
                          const char *kek_file, struct keyprov **out)
{
  bool kmip = false, file = false;
  char list[600] = "";
  size_t n = 0;

  for (unsigned i = 0; i <= h->n_extra && i < VH_MAX_SLOTS; i++) {
    enum keyprov_kind kind;
    int r = keyprov_kind_from_name (h->slot[i].kek_provider, &kind);
    if (r < 0)
      return r;
    kmip |= kind == KEYPROV_KMIP;
    file |= kind == KEYPROV_FILE;
  }
  /* Both given: the key of the first slot opens, the other names a new KEK (rewrap). */
  if (kms_config && kek_file) {
    if (strcmp (h->kek_provider, "kmip") == 0)
      return tool_open_provider (cmd, kms_config, NULL, out);
    return tool_open_provider (cmd, NULL, kek_file, out);
  }
  if (kms_config && kmip)
    return tool_open_provider (cmd, kms_config, NULL, out);
  if (kek_file && file)
    return tool_open_provider (cmd, NULL, kek_file, out);
  if (h->n_extra == 0 && kmip)
    return ncr_error (EINVAL, "this volume's KEK (%s) is in a KMS: give --kms-config FILE",
                      h->kek_id);
  if (h->n_extra == 0)
    return ncr_error (EINVAL, "this volume's KEK is a local file (fingerprint %s): give "
                      "--kek-file PATH", h->kek_id);
  for (unsigned i = 0; i <= h->n_extra && n < sizeof list; i++)
    n += (size_t) snprintf (list + n, sizeof list - n, "%sslot %u: %s %.80s", i ? ", " : "",
                            i, strcmp (h->slot[i].kek_provider, "kmip") == 0 ? "KMS KEK" :
                            "KEK file", h->slot[i].kek_id);
  return ncr_error (EINVAL, "this volume's keyslots (%s) open with %s", list,
                    kmip && file ? "--kms-config FILE or --kek-file PATH" :
                    kmip ? "--kms-config FILE" : "--kek-file PATH");
}

int
tool_parse_wrap (const char *opt, enum key_wrap *out)
{
  if (strcmp (opt, "local") == 0)
    opt = key_wrap_name (KEY_WRAP_AES_KWP);
  if (key_wrap_from_name (opt, out) < 0)
    return ncr_error (EINVAL, "--wrap must be local or kms, not '%s'", opt);
  return 0;
}

int
tool_parse_uint (const char *opt, const char *value, uint64_t max, uint64_t *out)
{
  if (ncr_parse_uint (value, max, out) < 0)
    return ncr_error_prefix (EINVAL, "%s: ", opt);
  return 0;
}

static int
write_copy (struct volume_target *t, const struct volume_header *h0, unsigned i,
            unsigned delay_ms)
{
  struct volume_header h = *h0;
  uint8_t buf[VH_AREA_SIZE];
  uint64_t off = volume_header_copy_offset (i);
  int r;

  h.copy_index = (uint8_t) i;
  if ((r = volume_header_encode (&h, buf, sizeof buf)) < 0)
    return r;
  if (delay_ms == 0)
    r = target_pwrite (t, buf, sizeof buf, off);
  else {
    for (size_t p = 0; p < sizeof buf && r == 0; p += 512) {
      r = target_pwrite (t, buf + p, 512, off + p);
      if (r == 0)
        r = target_flush (t);       /* make each piece reach the file: a visible torn copy */
      ncr_sleep_ms (delay_ms);
    }
  }
  if (r == 0)
    r = target_flush (t);
  return r;
}

/* Slow header writes, so that a test can kill the command in the middle of a copy: only in
 * the test build of the command (nbdcrypt-test-hooks, built with NBDCRYPT_TEST_HOOKS), never
 * in the installed one. */
static unsigned
test_write_delay_ms (void)
{
#ifdef NBDCRYPT_TEST_HOOKS
  const char *d = getenv ("NBDCRYPT_TEST_HEADER_WRITE_DELAY_MS");
  uint64_t v;

  if (d && ncr_parse_uint (d, 10000, &v) == 0)
    return (unsigned) v;
#endif
  return 0;
}

int
tool_write_headers (struct volume_target *t, const struct volume_header *h, unsigned first)
{
  unsigned delay = test_write_delay_ms ();
  int r;

  if ((r = write_copy (t, h, first, delay)) < 0)
    return r;
  if (delay)
    ncr_sleep_ms (delay);
  return write_copy (t, h, 1 - first, delay);
}

int
tool_commit_header (struct volume_target *t, const struct volume_headers *hs,
                    const struct volume *v, struct volume_header *nh)
{
  /* Sequence above both copies. The copy the key did NOT open from goes first: after an
   * interrupted update that opened from the older copy, this overwrites the aborted run's copy
   * and never the one the given KEK opens (writing the older copy first, as a plain "oldest
   * first" rule would, could leave only the aborted run's KEK). */
  uint64_t seq_a = hs->status[0] == 0 ? hs->copy[0].sequence : 0;
  uint64_t seq_b = hs->status[1] == 0 ? hs->copy[1].sequence : 0;

  nh->sequence = (seq_a > seq_b ? seq_a : seq_b) + 1;
  /* A keyslot change (rewrap, add-kek, remove-kek) first clears what the interrupted end of
   * a re-encryption left in the journal area: its staged final header holds the DEK wrapped
   * under the KEKs of then, one of which may be the KEK this change removes. */
  if (!(v->hdr.flags & VH_FLAGS_REENCRYPT) && !(nh->flags & VH_FLAGS_REENCRYPT)) {
    struct reencrypt_io io = { target_read_cb, target_write_cb, target_flush_cb, t };
    int r = reencrypt_clear_stale (hs, v->dek, v->dek_len, &io);

    if (r < 0)
      return r;
  }
  return tool_write_headers (t, nh, 1 - v->used_copy);
}

int
tool_new_kek_check (const char *cmd, const struct tool_new_kek *nk)
{
  enum key_wrap w;

  if ((!!nk->id + !!nk->file + (nk->create && !nk->file)) != 1) {
    tool_err (cmd, "give the new KEK: exactly one of --new-kek-id UID, --create-kek, "
              "--new-kek-file PATH");
    return 2;
  }
  if (!nk->file && nk->kms_config == NULL) {
    tool_err (cmd, "--new-kek-id and --create-kek need --kms-config FILE");
    return 2;
  }
  if (nk->file && nk->wrap && key_wrap_from_name (nk->wrap, &w) == 0 && w != KEY_WRAP_AES_KWP) {
    tool_err (cmd, "a KEK file supports only --wrap local");
    return 2;
  }
  return 0;
}

int
tool_new_kek_resolve (const char *cmd, const struct tool_new_kek *nk, struct keyprov *cur_kp,
                      const char *cur_wrap, struct keyprov **new_kp,
                      char kek_id[VH_MAX_KEK_ID + 1], const char **wrap)
{
  int r = 0;

  *new_kp = NULL;
  *wrap = nk->wrap;
  if (*wrap == NULL)
    *wrap = keyprov_kind (cur_kp) == KEYPROV_KMIP && !nk->file ? cur_wrap :
            key_wrap_name (KEY_WRAP_AES_KWP);
  /* The new KEK's provider: a file, or the KMS (the current provider if it is the KMS). */
  if (nk->file) {
    if (nk->create && (r = keyprov_file_create (nk->file)) < 0)
      return r;
    if ((r = tool_open_provider (cmd, NULL, nk->file, new_kp)) < 0)
      return r;
    return keyprov_default_kek_id (*new_kp, kek_id, VH_MAX_KEK_ID + 1);
  }
  if (keyprov_kind (cur_kp) != KEYPROV_KMIP &&
      (r = tool_open_provider (cmd, nk->kms_config, NULL, new_kp)) < 0)
    return r;
  if (nk->id) {
    snprintf (kek_id, VH_MAX_KEK_ID + 1, "%s", nk->id);
    return 0;
  }
  return keyprov_create_kek (*new_kp ? *new_kp : cur_kp, nk->name, *wrap, kek_id,
                             VH_MAX_KEK_ID + 1);
}

/* Known signatures, at fixed offsets (as blkid probes them). */
static const struct {
  uint64_t off;
  const char *magic;
  size_t len;
  const char *what;
} sigs[] = {
  { 0, "NBDCRYPT", 8, "an nbdcrypt volume header (copy A)" },
  { VH_COPY_B_OFFSET, "NBDCRYPT", 8, "an nbdcrypt volume header (copy B)" },
  { 0, "LUKS\xba\xbe", 6, "a LUKS header" },
  { 16384, "SKUL\xba\xbe", 6, "a LUKS2 secondary header" },
  { 1080, "\x53\xef", 2, "an ext2/3/4 filesystem" },
  { 0, "XFSB", 4, "an XFS filesystem" },
  { 65600, "_BHRfS_M", 8, "a btrfs filesystem" },
  { 4086, "SWAPSPACE2", 10, "a Linux swap area" },
  { 3, "NTFS    ", 8, "an NTFS filesystem" },
  { 82, "FAT32   ", 8, "a FAT32 filesystem" },
  { 54, "FAT1", 4, "a FAT12/16 filesystem" },
  { 32769, "CD001", 5, "an ISO 9660 filesystem" },
  { 512, "EFI PART", 8, "a GPT partition table" },
  { 510, "\x55\xaa", 2, "an MBR partition table / boot sector" },
  { 0, "QFI\xfb", 4, "a qcow2 image" },
};

int
tool_detect_data (struct volume_target *t, uint64_t area, char *what, size_t what_size,
                  bool *found)
{
  CLEANUP_FREE uint8_t *buf = NULL;
  uint64_t n = MIN (area, target_size (t));
  int r;

  *found = false;
  buf = malloc (n ? n : 1);
  if (buf == NULL)
    return ncr_error (ENOMEM, "out of memory");
  if (n && (r = target_pread (t, buf, n, 0)) < 0)
    return r;
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    if (sigs[i].len == 0 || sigs[i].off + sigs[i].len > n)
      continue;
    if (memcmp (buf + sigs[i].off, sigs[i].magic, sigs[i].len) == 0) {
      snprintf (what, what_size, "%s (signature at offset %llu)", sigs[i].what,
                (unsigned long long) sigs[i].off);
      *found = true;
      return 0;
    }
  }
  for (uint64_t i = 0; i < n; i++)
    if (buf[i]) {
      snprintf (what, what_size, "data (non-zero byte at offset %llu in the first %llu "
                "bytes, where the header goes)", (unsigned long long) i,
                (unsigned long long) n);
      *found = true;
      return 0;
    }
  return 0;
}

void
tool_hex (const uint8_t *p, size_t n, char *out)
{
  for (size_t i = 0; i < n; i++)
    sprintf (out + 2 * i, "%02x", p[i]);
  out[2 * n] = '\0';
}
