/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt header backup|restore: save both header copies of a volume to a file, and write
 * them back (as cryptsetup's luksHeaderBackup / luksHeaderRestore). A lost or overwritten
 * header loses the volume: its wrapped DEK is only there. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "commands.h"
#include "volume-common.h"
#include "errors.h"
#include "volume-header.h"
#include "volume-target.h"
#include "volume.h"

/* The backup file: copy A's area then copy B's, as they are on the volume. */
#define BACKUP_SIZE (2 * VH_AREA_SIZE)
static const uint64_t copy_offset[2] = { VH_COPY_A_OFFSET, VH_COPY_B_OFFSET };

static void
usage (FILE *fp)
{
  fprintf (fp,
"usage: nbdcrypt header backup TARGET FILE\n"
"       nbdcrypt header restore TARGET FILE [--force]\n"
"backup:  write both header copies of TARGET to FILE (created, mode 0600; it must not\n"
"         exist). Keep it with the volume's KEK: without one of the two, the data is gone.\n"
"restore: write the header copies in FILE back to TARGET. Refused if TARGET holds a valid\n"
"         header of another volume (another UUID), unless --force.\n"
"TARGET: a file, a block device, or an NBD URI (of the plugin below the filter).\n");
}

static int
fail (const char *what, const char *msg)
{
  fprintf (stderr, "nbdcrypt header %s: %s\n", what, msg);
  return 1;
}

/* Parse the two areas of buf: how many are valid, and one valid copy's UUID in uuid. */
static int
parse_areas (const uint8_t *buf, uint8_t uuid[VH_UUID_LEN], char *why, size_t why_size)
{
  int valid = 0;

  why[0] = '\0';
  for (unsigned i = 0; i < 2; i++) {
    struct volume_header h;
    if (volume_header_parse (buf + i * VH_AREA_SIZE, VH_AREA_SIZE, i, &h) == 0) {
      if (valid == 0)
        memcpy (uuid, h.uuid, VH_UUID_LEN);
      valid++;
    }
    else
      snprintf (why + strlen (why), why_size - strlen (why), "%scopy %c: %s",
                i ? "; " : "", 'A' + i, ncr_last_error ());
  }
  return valid;
}

static int
backup (const char *target, const char *file)
{
  struct volume_target *t;
  uint8_t buf[BACKUP_SIZE], uuid[VH_UUID_LEN];
  char why[400], uuid_s[37];
  int fd, r = 0;

  if (target_open (target, false, &t) < 0)
    return fail ("backup", ncr_last_error ());
  for (unsigned i = 0; i < 2 && r == 0; i++)
    r = target_pread (t, buf + i * VH_AREA_SIZE, VH_AREA_SIZE, copy_offset[i]);
  target_close (t);
  if (r < 0)
    return fail ("backup", ncr_last_error ());
  if (parse_areas (buf, uuid, why, sizeof why) == 0) {
    fprintf (stderr, "nbdcrypt header backup: %s holds no valid nbdcrypt header (%s): "
             "nothing worth a backup\n", target, why);
    return 1;
  }
  fd = open (file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd == -1) {
    fprintf (stderr, "nbdcrypt header backup: %s: %s%s\n", file, strerror (errno),
             errno == EEXIST ? " (choose a new file: a backup is never overwritten)" : "");
    return 1;
  }
  if (write (fd, buf, sizeof buf) != (ssize_t) sizeof buf || fsync (fd) == -1) {
    int e = errno;
    close (fd);
    unlink (file);
    fprintf (stderr, "nbdcrypt header backup: writing %s: %s\n", file, strerror (e));
    return 1;
  }
  close (fd);
  volume_uuid_str (uuid, uuid_s);
  printf ("backed up the header of volume %s (%s) to %s\n", uuid_s, target, file);
  return 0;
}

static int
restore (const char *target, const char *file, bool force)
{
  struct volume_target *t;
  struct volume_headers hs;
  uint8_t buf[BACKUP_SIZE + 1], uuid[VH_UUID_LEN];
  char why[400], uuid_s[37], cur_s[37];
  ssize_t n;
  int fd, r;

  fd = open (file, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    fprintf (stderr, "nbdcrypt header restore: %s: %s\n", file, strerror (errno));
    return 1;
  }
  n = read (fd, buf, sizeof buf);
  close (fd);
  if (n != BACKUP_SIZE) {
    fprintf (stderr, "nbdcrypt header restore: %s is not a header backup (%zd bytes, a "
             "backup has %u)\n", file, n, BACKUP_SIZE);
    return 1;
  }
  if (parse_areas (buf, uuid, why, sizeof why) == 0) {
    fprintf (stderr, "nbdcrypt header restore: %s holds no valid header (%s)\n", file, why);
    return 1;
  }
  volume_uuid_str (uuid, uuid_s);
  if (target_open (target, true, &t) < 0)
    return fail ("restore", ncr_last_error ());
  if (target_size (t) < VH_MIN_DATA_OFFSET) {
    target_close (t);
    return fail ("restore", "the target is smaller than the header area (1 MiB)");
  }
  if (volume_read_headers (target_read_cb, t, target_size (t), &hs) == 0 &&
      memcmp (hs.copy[hs.newest].uuid, uuid, VH_UUID_LEN) != 0 && !force) {
    volume_uuid_str (hs.copy[hs.newest].uuid, cur_s);
    target_close (t);
    fprintf (stderr, "nbdcrypt header restore: %s holds the valid header of another volume "
             "(%s; the backup is of %s): restoring would make its data unreadable. Check the "
             "target; add --force only if that volume is to be replaced\n", target, cur_s,
             uuid_s);
    return 1;
  }
  r = 0;
  for (unsigned i = 0; i < 2 && r == 0; i++)
    r = target_pwrite (t, buf + i * VH_AREA_SIZE, VH_AREA_SIZE, copy_offset[i]);
  if (r == 0)
    r = target_flush (t);
  if (r < 0) {
    char msg[512];
    snprintf (msg, sizeof msg, "%s", ncr_last_error ());
    target_close (t);
    return fail ("restore", msg);
  }
  if (target_close (t) < 0)
    return fail ("restore", ncr_last_error ());
  printf ("restored the header of volume %s from %s to %s\n", uuid_s, file, target);
  return 0;
}

int
cmd_header (int argc, char **argv)
{
  static const struct option opts[] = {
    { "force", no_argument, NULL, 'f' },
    TOOL_END_OPTIONS,
  };
  bool force = false;
  const char *action;
  int c;

  if (argc < 2) {
    usage (stderr);
    return 2;
  }
  action = argv[1];
  if (strcmp (action, "--help") == 0 || strcmp (action, "-h") == 0) {
    usage (stdout);
    return 0;
  }
  optind = 1;
  while ((c = getopt_long (argc - 1, argv + 1, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'f': force = true; break;
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
  }
  if (argc - 1 - optind != 2) {
    usage (stderr);
    return 2;
  }
  if (strcmp (action, "backup") == 0 && !force)
    return backup (argv[1 + optind], argv[2 + optind]);
  if (strcmp (action, "restore") == 0)
    return restore (argv[1 + optind], argv[2 + optind], force);
  usage (stderr);
  return 2;
}
