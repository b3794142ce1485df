/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: raw key files (lib/keys/keyfile.c): exactly the wanted size is accepted and read
 * back intact; shorter, longer, empty, missing, unreadable-as-directory files are refused with
 * a message naming the file and the expected size, and never the key bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "keyfile.h"
#include "secmem.h"

#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

static char dir[] = "/tmp/nbdcrypt-keyfile.XXXXXX";

static void
write_file (const char *path, size_t n)
{
  FILE *fp = fopen (path, "w");
  for (size_t i = 0; i < n; i++)
    fputc ('A' + i % 26, fp);
  fclose (fp);
}

static void
expect_refused (const char *name, size_t size, int make_dir, const char *msg_part)
{
  char path[256];
  uint8_t *key = NULL;
  int r;

  snprintf (path, sizeof path, "%s/%s", dir, name);
  if (make_dir)
    mkdir (path, 0700);
  else if (size != (size_t) -1)
    write_file (path, size);
  r = ncr_keyfile_read (path, 64, &key);
  if (!CHECK_MSG (r < 0, "%s (%zu bytes) was accepted", name, size)) {
    secmem_free (key);
    return;
  }
  if (CHECK_MSG (strstr (ncr_last_error (), path) && strstr (ncr_last_error (), "64") &&
                 strstr (ncr_last_error (), msg_part) && !strstr (ncr_last_error (), "ABCDEF"),
                 "%s: message does not name the file, the size and '%s' (or shows key bytes)",
                 name, msg_part))
    printf ("refused %s: %s\n", name, ncr_last_error ());
}

/* A file of exactly the key size is read back byte for byte. */
static void
test_keyfile_exact_size (void)
{
  char path[256];
  uint8_t *key = NULL;

  snprintf (path, sizeof path, "%s/good", dir);
  write_file (path, 64);
  if (!CHECK_MSG (ncr_keyfile_read (path, 64, &key) >= 0, "a 64-byte key file was refused"))
    return;
  for (int i = 0; i < 64; i++)
    if (!CHECK_MSG (key[i] == 'A' + i % 26, "key byte %d differs from the file", i))
      break;
  secmem_free (key);
}

/* Every wrong size, a missing file and a directory: refused, with a useful message. */
static void
test_keyfile_refusals (void)
{
  expect_refused ("short", 63, 0, "holds 63 bytes");
  expect_refused ("long", 65, 0, "more than 64");
  expect_refused ("empty", 0, 0, "holds 0 bytes");
  expect_refused ("missing", (size_t) -1, 0, "No such file");
  expect_refused ("adir", 0, 1, "directory");
}

int
main (void)
{
  if (!mkdtemp (dir))
    return 1;
  RUN (test_keyfile_exact_size);
  RUN (test_keyfile_refusals);
  { char cmd[300]; snprintf (cmd, sizeof cmd, "rm -rf %s", dir); if (system (cmd)) {} }
  return check_exit ();
}
