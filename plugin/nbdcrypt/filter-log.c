/* SPDX-License-Identifier: BSD-3-Clause */
/* Warnings and information lines of the filter, at their level (see filter-log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <unistd.h>

#include "filter-log.h"

/* nbdkit points stderr at /dev/null when it forks into the background (without -v). */
static int
stderr_is_null (void)
{
  struct stat st;

  return fstat (STDERR_FILENO, &st) == 0 && S_ISCHR (st.st_mode) &&
         major (st.st_rdev) == 1 && minor (st.st_rdev) == 3;
}

static void
vlog (int priority, const char *level, const char *fmt, va_list ap)
{
  char msg[1024];
  int n = vsnprintf (msg, sizeof msg, fmt, ap);

  for (char *p = msg; *p; p++)
    if ((unsigned char) *p < 0x20 || *p == 0x7f)
      *p = '?';
  if (n >= (int) sizeof msg)
    msg[sizeof msg - 2] = '~';      /* cut: say so */
  if (stderr_is_null ())
    syslog (priority, "nbdcrypt: %s: %s", level, msg);
  else
    fprintf (stderr, "nbdkit: nbdcrypt: %s: %s\n", level, msg);
}

void
filter_log_info (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vlog (LOG_INFO, "info", fmt, ap);
  va_end (ap);
}

void
filter_log_warning (const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  vlog (LOG_WARNING, "warning", fmt, ap);
  va_end (ap);
}
