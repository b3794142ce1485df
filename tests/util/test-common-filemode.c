/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: secret files readable by group or others get a warning naming the file, its
 * mode and the fix; private files, non-regular files and missing paths get none. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filemode.h"
#include "errors.h"
#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

int
main (void)
{
  char path[] = "/tmp/test-common-filemode-XXXXXX";
  char buf[600];
  int fd = mkstemp (path);

  if (fd == -1) {
    perror ("mkstemp");
    return 1;
  }
  close (fd);

  static const struct { mode_t mode; const char *who; } cases[] = {
    { 0640, "readable by its group (mode 0640)" },
    { 0604, "readable by others (mode 0604)" },
    { 0644, "readable by its group and others (mode 0644)" },
    { 0444, "readable by its group and others (mode 0444)" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    buf[0] = '\0';
    chmod (path, cases[i].mode);
    CHECK_MSG (ncr_secret_path_warning ("KEK file", path, buf, sizeof buf), "mode %o warns",
           (unsigned) cases[i].mode);
    CHECK_MSG (strstr (buf, cases[i].who) && strstr (buf, "KEK file /tmp/") &&
           strstr (buf, "chmod go-rwx /tmp/"), "message: %s", buf);
  }
  for (mode_t m = 0; m <= 0700; m += 0100) {
    buf[0] = '\0';
    chmod (path, m | 0030 | 0003);          /* write/exec for others: not "readable" */
    CHECK_MSG (!ncr_secret_path_warning ("key", path, buf, sizeof buf) && buf[0] == '\0',
           "mode %o does not warn", (unsigned) (m | 033));
  }

  /* Two warnings in one buffer are joined; a full buffer is cut, not overrun. */
  chmod (path, 0644);
  buf[0] = '\0';
  ncr_secret_path_warning ("KMS configuration", path, buf, sizeof buf);
  ncr_secret_path_warning ("client key", path, buf, sizeof buf);
  CHECK_MSG (strstr (buf, "KMS configuration") && strstr (buf, "; client key"), "joined: %s", buf);
  char small[20] = "";
  CHECK_MSG (ncr_secret_path_warning ("key", path, small, sizeof small) &&
         strlen (small) == sizeof small - 1, "cut");

  buf[0] = '\0';
  CHECK_MSG (!ncr_secret_path_warning ("key", "/nonexistent/key", buf, sizeof buf), "missing");
  CHECK_MSG (!ncr_secret_path_warning ("key", "/dev/null", buf, sizeof buf), "not a regular file");
  unlink (path);
  return check_exit ();
}
