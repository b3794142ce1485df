/* SPDX-License-Identifier: BSD-3-Clause */
/* Volume targets for the nbdcrypt command: file, block device, or NBD URI via libnbd. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include <libnbd.h>

#include "errors.h"
#include "volume-target.h"

struct volume_target {
  char *name;
  int fd;                       /* file or block device, else -1 */
  struct nbd_handle *nbd;       /* NBD URI, else NULL */
  uint64_t size;
  bool writable;
};

static bool
is_nbd_uri (const char *s)
{
  return strncmp (s, "nbd://", 6) == 0 || strncmp (s, "nbds://", 7) == 0 ||
         strncmp (s, "nbd+unix://", 11) == 0 || strncmp (s, "nbds+unix://", 12) == 0 ||
         strncmp (s, "nbd+vsock://", 12) == 0;
}

static int
open_nbd (struct volume_target *t)
{
  int64_t size;

  t->nbd = nbd_create ();
  if (t->nbd == NULL)
    return ncr_error (ENOMEM, "libnbd: %s", nbd_get_error ());
  if (nbd_connect_uri (t->nbd, t->name) == -1) {
    int e = nbd_get_errno () ? nbd_get_errno () : EIO;
    return ncr_error (e, "cannot connect to %s: %s", t->name, nbd_get_error ());
  }
  if (t->writable && nbd_is_read_only (t->nbd) == 1)
    return ncr_error (EROFS, "%s is read-only", t->name);
  size = nbd_get_size (t->nbd);
  if (size < 0)
    return ncr_error (EIO, "%s: %s", t->name, nbd_get_error ());
  t->size = (uint64_t) size;
  return 0;
}

static int
open_fd (struct volume_target *t)
{
  struct stat st;

  t->fd = open (t->name, (t->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (t->fd == -1)
    return ncr_error (errno, "cannot open %s: %s", t->name, strerror (errno));
  if (fstat (t->fd, &st) == -1)
    return ncr_error (errno, "%s: %s", t->name, strerror (errno));
  if (S_ISBLK (st.st_mode)) {
    if (ioctl (t->fd, BLKGETSIZE64, &t->size) == -1)
      return ncr_error (errno, "%s: BLKGETSIZE64: %s", t->name, strerror (errno));
  }
  else if (S_ISREG (st.st_mode))
    t->size = (uint64_t) st.st_size;
  else
    return ncr_error (EINVAL, "%s is not a file, a block device or an NBD URI", t->name);
  return 0;
}

int
target_open (const char *name, bool writable, struct volume_target **out)
{
  struct volume_target *t = calloc (1, sizeof *t);
  int r;

  if (t == NULL)
    return ncr_error (ENOMEM, "out of memory");
  t->fd = -1;
  t->writable = writable;
  t->name = strdup (name);
  if (t->name == NULL) {
    free (t);
    return ncr_error (ENOMEM, "out of memory");
  }
  r = is_nbd_uri (name) ? open_nbd (t) : open_fd (t);
  if (r < 0) {
    t->writable = false;          /* nothing was written: no flush on close */
    target_close (t);
    return r;
  }
  *out = t;
  return 0;
}

uint64_t target_size (const struct volume_target *t) { return t->size; }
const char *target_name (const struct volume_target *t) { return t->name; }

int
target_pread (struct volume_target *t, void *buf, size_t count, uint64_t offset)
{
  if (offset > t->size || count > t->size - offset)
    return ncr_error (EIO, "%s: read beyond the end (%zu bytes at %llu, size %llu)",
                      t->name, count, (unsigned long long) offset,
                      (unsigned long long) t->size);
  if (t->nbd) {
    if (nbd_pread (t->nbd, buf, count, offset, 0) == -1)
      return ncr_error (nbd_get_errno () ? nbd_get_errno () : EIO, "%s: read: %s", t->name,
                        nbd_get_error ());
    return 0;
  }
  for (size_t done = 0; done < count;) {
    ssize_t n = pread (t->fd, (char *) buf + done, count - done, (off_t) (offset + done));
    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0)
      return ncr_error (n == 0 ? EIO : errno, "%s: read at %llu: %s", t->name,
                        (unsigned long long) (offset + done),
                        n == 0 ? "unexpected end of file" : strerror (errno));
    done += (size_t) n;
  }
  return 0;
}

int
target_pwrite (struct volume_target *t, const void *buf, size_t count, uint64_t offset)
{
  if (offset > t->size || count > t->size - offset)
    return ncr_error (EIO, "%s: write beyond the end", t->name);
  if (t->nbd) {
    if (nbd_pwrite (t->nbd, buf, count, offset, 0) == -1)
      return ncr_error (nbd_get_errno () ? nbd_get_errno () : EIO, "%s: write: %s", t->name,
                        nbd_get_error ());
    return 0;
  }
  for (size_t done = 0; done < count;) {
    ssize_t n = pwrite (t->fd, (const char *) buf + done, count - done,
                        (off_t) (offset + done));
    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0)
      return ncr_error (n == 0 ? EIO : errno, "%s: write at %llu: %s", t->name,
                        (unsigned long long) (offset + done), strerror (errno));
    done += (size_t) n;
  }
  return 0;
}

void
target_start_writeback (struct volume_target *t, uint64_t offset, size_t count)
{
  /* Best effort: an error here shows up at the flush. */
  if (t->fd >= 0)
    (void) sync_file_range (t->fd, (off_t) offset, (off_t) count, SYNC_FILE_RANGE_WRITE);
}

int
target_flush (struct volume_target *t)
{
  if (t->nbd) {
    /* Servers that cannot flush have nothing volatile to flush. */
    if (nbd_can_flush (t->nbd) != 1)
      return 0;
    if (nbd_flush (t->nbd, 0) == -1)
      return ncr_error (nbd_get_errno () ? nbd_get_errno () : EIO, "%s: flush: %s", t->name,
                        nbd_get_error ());
    return 0;
  }
  if (fdatasync (t->fd) == -1)
    return ncr_error (errno, "%s: fdatasync: %s", t->name, strerror (errno));
  return 0;
}

int
target_close (struct volume_target *t)
{
  int r = 0;

  if (t == NULL)
    return 0;
  if (t->writable)
    r = target_flush (t);
  if (t->nbd) {
    if (nbd_aio_is_ready (t->nbd))
      nbd_shutdown (t->nbd, 0);
    nbd_close (t->nbd);
  }
  if (t->fd >= 0 && close (t->fd) == -1 && r == 0)
    r = ncr_error (errno, "%s: close: %s", t->name, strerror (errno));
  free (t->name);
  free (t);
  return r;
}

int
target_read_cb (void *opaque, void *buf, size_t count, uint64_t offset)
{
  return target_pread (opaque, buf, count, offset);
}

int
target_write_cb (void *opaque, const void *buf, size_t count, uint64_t offset)
{
  return target_pwrite (opaque, buf, count, offset);
}

int
target_flush_cb (void *opaque)
{
  return target_flush (opaque);
}
