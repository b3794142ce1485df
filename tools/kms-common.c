/* SPDX-License-Identifier: BSD-3-Clause */
/* 'nbdcrypt kms' helpers: client setup from kms.conf and careful secret file handling. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kms-common.h"

int
kms_fail (int r)
{
  /* r is a negative errno or KMIP_E_*: ncr_error gives back -(-r). */
  return ncr_error (-r, "%s", kmip_last_error ());
}

int
kms_open_client (const struct kms_opts *o, struct kmip_client **cp)
{
  struct kmip_config *cfg;
  int r;

  r = kmip_config_load (o->config, &cfg);
  if (r < 0)
    return kms_fail (r);
  if (o->kmip_version) {
    cfg->pin_version = kmip_version_parse (o->kmip_version);
    if (cfg->pin_version == 0) {
      kmip_config_free (cfg);
      return ncr_error (EINVAL, "--kmip-version '%s' is not one of 1.0, 1.1, 1.2, 1.3, "
                         "1.4, 2.0", o->kmip_version);
    }
  }
  r = kmip_client_new (cfg, cp);
  kmip_config_free (cfg);
  return r < 0 ? kms_fail (r) : 0;
}

int
kms_write_secret (const char *path, const uint8_t *buf, size_t len)
{
  int fd;
  size_t done = 0;

  if (path == NULL)
    return ncr_error (EINVAL, "--out FILE is required (key bytes never go to a "
                       "terminal)");
  if (strcmp (path, "-") == 0) {
    if (isatty (STDOUT_FILENO))
      return ncr_error (EINVAL, "refusing to write key bytes to a terminal");
    fd = STDOUT_FILENO;
  }
  else {
    fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
      return ncr_error (errno, "cannot create %s: %m%s", path,
                         errno == EEXIST ? " (it must not exist yet)" : "");
  }
  while (done < len) {
    ssize_t n = write (fd, buf + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = errno;
      if (fd != STDOUT_FILENO) {
        close (fd);
        unlink (path);
      }
      return ncr_error (e, "write %s: %s", path, strerror (e));
    }
    done += n;
  }
  if (fd != STDOUT_FILENO && close (fd) < 0) {
    unlink (path);
    return ncr_error (errno, "close %s: %m", path);
  }
  return 0;
}

int
kms_read_secret (const char *path, uint8_t *buf, size_t max)
{
  int fd;
  size_t done = 0;

  if (path == NULL)
    return ncr_error (EINVAL, "--in FILE is required");
  fd = strcmp (path, "-") == 0 ? STDIN_FILENO : open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ncr_error (errno, "cannot open %s: %m", path);
  for (;;) {
    ssize_t n = read (fd, buf + done, max - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      if (fd != STDIN_FILENO)
        close (fd);
      return ncr_error (e, "read %s: %s", path, strerror (e));
    }
    if (n == 0)
      break;
    done += n;
    if (done == max) {
      char extra;
      if (read (fd, &extra, 1) > 0) {
        if (fd != STDIN_FILENO)
          close (fd);
        return ncr_error (EFBIG, "%s is larger than %zu bytes", path, max);
      }
      break;
    }
  }
  if (fd != STDIN_FILENO)
    close (fd);
  if (done == 0)
    return ncr_error (EINVAL, "%s is empty", path);
  return (int) done;
}

int
kms_parse_uint (const char *what, const char *s, uint32_t *v)
{
  char *end;
  unsigned long n;

  errno = 0;
  n = strtoul (s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || n > INT32_MAX)
    return ncr_error (EINVAL, "%s '%s' is not a number", what, s);
  *v = (uint32_t) n;
  return 0;
}
