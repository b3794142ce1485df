/* SPDX-License-Identifier: BSD-3-Clause */
/* Buffered reads from a shared, read-only mapping of the served file (docs/uring.md: a
 * 1 MiB read costs a quarter less CPU as a copy from the page cache's pages than as a
 * pread). One mapping per file in use, shared by all its connections; the last one made is
 * kept while no connection uses it.
 *
 * A mapped page that cannot be read (the file was truncated under us, or an I/O error)
 * raises SIGBUS in the copying thread; uring_map_read catches it and returns -EFAULT, and the
 * caller reads the range again with pread, which reports the real error. SIGBUS from
 * anywhere else goes to whatever handled it before (by default: a core dump).
 * No nbdkit dependency: functions return 0 or -errno with a message in ncr_last_error(). */
#ifndef NBDCRYPT_URING_MAP_H
#define NBDCRYPT_URING_MAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct uring_map;

/* A reference to the mapping of the file open as FD (ST: its fstat), covering at least
 * SIZE bytes: the one already made for this file (same device and inode, big enough), or a
 * new one, which then replaces it for later callers. */
int uring_map_get (struct uring_map **mp, int fd, const struct stat *st, uint64_t size);
void uring_map_put (struct uring_map *m);
uint64_t uring_map_size (const struct uring_map *m);

/* Copy LEN bytes at OFFSET (OFFSET + LEN <= uring_map_size) to BUF: 0, or -EFAULT when a page
 * could not be read (BUF is then partly written). */
int uring_map_read (const struct uring_map *m, void *buf, size_t len, uint64_t offset);

#endif /* NBDCRYPT_URING_MAP_H */
