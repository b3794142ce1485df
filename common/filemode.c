/* SPDX-License-Identifier: BSD-3-Clause */
/* Warn about secret files other users can read. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "filemode.h"

bool
ncr_secret_file_warning (const char *what, const char *path, const struct stat *st,
                         char *buf, size_t size)
{
  bool grp = st->st_mode & S_IRGRP, oth = st->st_mode & S_IROTH;
  size_t used = strnlen (buf, size);

  if (!S_ISREG (st->st_mode) || !(grp || oth) || size == 0)
    return false;
  snprintf (buf + used, size - used, "%s%s %s is readable by %s (mode %04o): other users of "
            "this host can read it; chmod go-rwx %s", used ? "; " : "", what, path,
            grp && oth ? "its group and others" : grp ? "its group" : "others",
            (unsigned) (st->st_mode & 07777), path);
  return true;
}

bool
ncr_secret_path_warning (const char *what, const char *path, char *buf, size_t size)
{
  struct stat st;

  if (path == NULL || stat (path, &st) == -1)
    return false;
  return ncr_secret_file_warning (what, path, &st, buf, size);
}
