/* SPDX-License-Identifier: BSD-3-Clause */
/* Raw volume key files: read exactly N bytes into locked memory, or say precisely why not. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "errors.h"
#include "keyfile.h"
#include "secmem.h"

int
ncr_keyfile_read (const char *path, size_t want, uint8_t **key)
{
  struct stat st;

  return ncr_keyfile_read_stat (path, want, key, &st);
}

int
ncr_keyfile_read_stat (const char *path, size_t want, uint8_t **key, struct stat *st)
{
  CLEANUP_CLOSE int fd = -1;
  CLEANUP_SECMEM_FREE uint8_t *buf = NULL;
  size_t got = 0;

  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd == -1)
    return ncr_error (errno, "cannot open key file '%s': %s (it must hold a %zu-byte raw key)",
                      path, strerror (errno), want);
  if (fstat (fd, st) == -1)
    return ncr_error (errno, "key file '%s': %s", path, strerror (errno));
  if (S_ISDIR (st->st_mode))
    return ncr_error (EISDIR, "key file '%s' is a directory, not a %zu-byte key", path, want);

  /* One byte more than wanted, so that a longer file is caught without trusting st_size
   * (pipes and /dev/fd/N have none). */
  buf = secmem_alloc (want + 1);
  if (!buf)
    return -errno;
  while (got < want + 1) {
    ssize_t r = read (fd, buf + got, want + 1 - got);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return ncr_error (errno, "cannot read key file '%s': %s", path, strerror (errno));
    }
    if (r == 0)
      break;
    got += r;
  }
  if (got != want)
    return ncr_error (EINVAL, "key file '%s' holds %s%zu bytes; it must hold exactly %zu "
                      "bytes of raw key (e.g. head -c %zu /dev/urandom > FILE)",
                      path, got > want ? "more than " : "", got > want ? want : got,
                      want, want);
  *key = buf;
  buf = NULL;
  return 0;
}
