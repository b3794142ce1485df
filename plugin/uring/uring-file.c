/* SPDX-License-Identifier: BSD-3-Clause */
/* File and block-device I/O for the uring plugin: request splitting, O_DIRECT alignment
 * (bounce buffers, read-modify-write), zero/trim/extents/cache with the file plugin's rules. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cleanup.h"
#include "errors.h"
#include "uring-file.h"
#include "uring-inode.h"
#include "uring-map.h"
#include "uring-readahead.h"

/* Requests are cut into pieces this big (split-size=), all in flight at once, so one large
 * request keeps several device queues busy instead of one. */
#define DEFAULT_SPLIT (256 * 1024)
/* At most this many pieces per request (bigger requests get bigger pieces), so the operation
 * array stays on the stack; +4 leaves room for head/tail reads and a trailing fdatasync. */
#define MAX_CHUNKS 64
#define MAX_OPS (MAX_CHUNKS + 4)
/* A thread keeps its bounce buffer between requests up to this size; a bigger one (a large
 * unaligned direct request) is freed after use, so 16 threads cannot pin 16 x 64 MiB. */
#define BOUNCE_KEEP (4 * 1024 * 1024)
/* Readahead (direct only) prefetches in pieces of this size, or window/4 if smaller. */
#define READAHEAD_CHUNK (1024 * 1024)
/* Zeros written by the fallback come from one shared, aligned buffer of this size. */
#define ZERO_BUF_SIZE (1024 * 1024)

#define FD_MAIN 0                 /* O_DIRECT when direct=true */
#define FD_BUFFERED 1             /* direct=true only: the final partial block of a file */

struct uring_file {
  int fd, bfd;
  bool direct, is_bdev, can_write;
  unsigned sector_size;           /* block device: logical block size (files: 4096) */
  unsigned lbs;                   /* direct: offset/length alignment */
  unsigned mem_align;             /* direct: buffer alignment */
  uint64_t direct_end;            /* direct: end of the last whole block; buffered beyond */
  uint64_t size_at_open;
  uint64_t split;                 /* request piece size */
  bool fast_zeroout;              /* block device with a write-zeroes command */
  _Atomic bool can_punch_hole, can_zero_range, can_fallocate, can_discard;
  struct uring_queue *q;
  struct uring_readahead *ra;     /* direct: readahead for sequential streams, or NULL */
  struct uring_map *map;               /* buffered: the file's shared mapping, or NULL */
  int map_error;                  /* why there is none (errno), if one was wanted */
  /* Shared with every other open of the same file: rmw_lock orders direct read-modify-write
   * against all other changes; buffered_write_lock serializes buffered writes to a regular
   * file. The file systems do that anyway (ext4, XFS, btrfs, tmpfs take the inode lock
   * exclusively for a buffered write), but a writer waiting for the kernel's lock spins
   * while the holder runs: on 4 KiB random writes over large page-cache folios that spinning
   * took 16-18 % of nbdkit's CPU. Waiting here sleeps instead (docs/uring.md). Not for block
   * devices, whose buffered writes run in parallel, nor for FUA writes, whose sync runs after
   * the kernel drops its lock. Both are per file: writers of different files never wait for
   * each other. */
  struct uring_inode *ino;
};

static pthread_key_t bounce_key;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void *zero_buf;

/* Each worker thread keeps one aligned bounce buffer, grown as needed, freed at thread exit. */
static __thread struct {
  void *p;
  size_t size;
} bounce;

static void
global_init (void)
{
  pthread_key_create (&bounce_key, free);
  if (posix_memalign (&zero_buf, 4096, ZERO_BUF_SIZE) == 0)
    memset (zero_buf, 0, ZERO_BUF_SIZE);
  else
    zero_buf = NULL;
}

static void *
bounce_get (const struct uring_file *uf, size_t size)
{
  size_t align = uf->mem_align > 4096 ? uf->mem_align : 4096;
  void *p;

  if (bounce.size >= size)
    return bounce.p;
  if (posix_memalign (&p, align, size) != 0) {
    ncr_error (ENOMEM, "cannot allocate a %zu-byte bounce buffer", size);
    return NULL;
  }
  free (bounce.p);
  bounce.p = p;
  bounce.size = size;
  pthread_setspecific (bounce_key, p);
  return p;
}

static void
bounce_trim (void)
{
  if (bounce.size > BOUNCE_KEEP) {
    free (bounce.p);
    bounce.p = NULL;
    bounce.size = 0;
    pthread_setspecific (bounce_key, NULL);
  }
}

static inline uint64_t round_down (uint64_t x, uint64_t a) { return x & ~(a - 1); }
static inline uint64_t round_up (uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }
static inline bool is_enotsup (int e) { return e == EOPNOTSUPP || e == ENOTSUP || e == ENODEV; }

/* Append read/write operations covering [offset, offset+len) of BUF to OPS. */
static size_t
add_rw (const struct uring_file *uf, struct uring_queue_op *ops, size_t n,
        enum uring_queue_opcode opcode,
        unsigned fd_index, void *buf, uint64_t len, uint64_t offset)
{
  uint64_t chunk = uf->split;

  if (len > chunk * MAX_CHUNKS)
    chunk = round_up ((len + MAX_CHUNKS - 1) / MAX_CHUNKS, 4096);
  while (len > 0) {
    uint64_t l = len < chunk ? len : chunk;
    ops[n++] = (struct uring_queue_op) {
      .opcode = opcode, .fd_index = fd_index, .buf = buf, .len = l, .offset = offset,
    };
    buf = (char *) buf + l;
    offset += l;
    len -= l;
  }
  return n;
}

/* FUA "once per request": a single write carries RWF_DSYNC; several are followed by one
 * fdatasync after they have all completed. */
static int
run_writes (struct uring_file *uf, struct uring_queue_op *ops, size_t n, unsigned flags)
{
  int r;

  if ((flags & URING_FILE_FUA) && n == 1)
    ops[0].rw_flags |= RWF_DSYNC;
  r = uring_queue_run (uf->q, ops, n);
  if (r == 0 && (flags & URING_FILE_FUA) && n > 1)
    r = uring_file_flush (uf);
  return r;
}

static int
detect_alignment (struct uring_file *uf, const char *path)
{
  struct statx stx;

  /* Block devices: the logical block size; files: a safe guess when the kernel cannot tell. */
  uf->lbs = uf->mem_align = uf->is_bdev ? uf->sector_size : 4096;
  if (statx (uf->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
      (stx.stx_mask & STATX_DIOALIGN)) {
    if (stx.stx_dio_offset_align == 0)
      return ncr_error (EINVAL, "%s: the file system does not support direct I/O; "
                        "use direct=false", path);
    uf->lbs = stx.stx_dio_offset_align;
    uf->mem_align = stx.stx_dio_mem_align ? stx.stx_dio_mem_align : 1;
  }
  if (uf->lbs & (uf->lbs - 1) || uf->mem_align & (uf->mem_align - 1))
    return ncr_error (EINVAL, "%s: direct I/O alignment %u/%u is not a power of two",
                      path, uf->lbs, uf->mem_align);
  return 0;
}

/* A block device can zero fast only when it has a write-zeroes command; otherwise the kernel
 * quietly writes zero pages, which is the slow path fast-zero must refuse. */
static bool
bdev_has_write_zeroes (int fd)
{
  struct stat st;
  char path[128];
  CLEANUP_FCLOSE FILE *fp = NULL;
  unsigned long long max = 0;

  if (fstat (fd, &st) == -1)
    return false;
  snprintf (path, sizeof path, "/sys/dev/block/%u:%u/queue/write_zeroes_max_bytes",
            major (st.st_rdev), minor (st.st_rdev));
  fp = fopen (path, "r");
  if (fp == NULL) {             /* a partition: the queue is its parent's */
    snprintf (path, sizeof path, "/sys/dev/block/%u:%u/../queue/write_zeroes_max_bytes",
              major (st.st_rdev), minor (st.st_rdev));
    fp = fopen (path, "r");
  }
  return fp && fscanf (fp, "%llu", &max) == 1 && max > 0;
}

/* PATH itself, or the name PATH in the directory DIRFD: no symbolic link followed (one could
 * lead out of the directory), and O_NONBLOCK so that a FIFO there cannot hang the open (the
 * caller clears it once it knows it has a file or a block device). */
static int
open_file (const struct uring_file_config *cfg, int flags)
{
  if (cfg->in_dir)
    return openat (cfg->dirfd, cfg->path, flags | O_NOFOLLOW | O_NONBLOCK);
  return open (cfg->path, flags);
}

/* False when the path names something that is neither a file nor a block device. */
static bool
file_is_servable (const struct uring_file_config *cfg)
{
  struct stat st;

  if ((cfg->in_dir ? fstatat (cfg->dirfd, cfg->path, &st, AT_SYMLINK_NOFOLLOW)
                   : stat (cfg->path, &st)) == -1)
    return true;              /* cannot tell: report the open's own error */
  return S_ISREG (st.st_mode) || S_ISBLK (st.st_mode);
}

int
uring_file_open (struct uring_file **ufp, const struct uring_file_config *cfg)
{
  struct uring_file *uf;
  struct stat st;
  int flags = O_CLOEXEC | O_NOCTTY | (cfg->direct ? O_DIRECT : 0);
  int err;
  int64_t size;

  pthread_once (&init_once, global_init);
  if (zero_buf == NULL)
    return ncr_error (ENOMEM, "cannot allocate the zero buffer");
  uf = calloc (1, sizeof *uf);
  if (uf == NULL)
    return ncr_error (errno, "calloc: %s", strerror (errno));
  uf->bfd = -1;
  uf->direct = cfg->direct;
  uf->split = cfg->split_size ? cfg->split_size : DEFAULT_SPLIT;
  if (uf->split < 4096 || (uf->split & (uf->split - 1))) {
    err = ncr_error (EINVAL, "split size %" PRIu64 " is not a power of two >= 4096",
                     uf->split);
    free (uf);
    return err;
  }
  uf->can_write = !cfg->readonly;
  uf->fd = open_file (cfg, flags | (cfg->readonly ? O_RDONLY : O_RDWR));
  if (uf->fd == -1 && !cfg->readonly &&
      (errno == EACCES || errno == EROFS || errno == EPERM)) {
    uf->can_write = false;
    uf->fd = open_file (cfg, flags | O_RDONLY);
  }
  if (uf->fd == -1) {
    /* O_DIRECT on a FIFO or a socket fails with EINVAL too: say what the file is. */
    if (errno == EINVAL && cfg->direct && !file_is_servable (cfg))
      err = ncr_error (EINVAL, "%s is not a regular file or a block device", cfg->path);
    else if (errno == EINVAL && cfg->direct)
      err = ncr_error (EINVAL, "%s: the file system does not support O_DIRECT; "
                       "use direct=false", cfg->path);
    else if (errno == ELOOP && cfg->in_dir)
      err = ncr_error (ELOOP, "%s is a symbolic link: links in the directory are not "
                       "followed (one could lead out of it)", cfg->path);
    else
      err = ncr_error (errno, "open %s: %s", cfg->path, strerror (errno));
    goto fail;
  }
  if (fstat (uf->fd, &st) == -1) {
    err = ncr_error (errno, "fstat %s: %s", cfg->path, strerror (errno));
    goto fail;
  }
  if (!S_ISREG (st.st_mode) && !S_ISBLK (st.st_mode)) {
    err = ncr_error (EINVAL, "%s is not a regular file or a block device", cfg->path);
    goto fail;
  }
  if (cfg->in_dir && fcntl (uf->fd, F_SETFL, fcntl (uf->fd, F_GETFL) & ~O_NONBLOCK) == -1) {
    err = ncr_error (errno, "fcntl %s: %s", cfg->path, strerror (errno));
    goto fail;
  }
  err = uring_inode_get (&uf->ino, &st);
  if (err < 0)
    goto fail;
  uf->is_bdev = S_ISBLK (st.st_mode);
  uf->lbs = uf->mem_align = 1;
  uf->sector_size = 4096;
  if (uf->is_bdev) {
    int ss;
    if (ioctl (uf->fd, BLKSSZGET, &ss) == -1) {
      err = ncr_error (errno, "%s: BLKSSZGET: %s", cfg->path, strerror (errno));
      goto fail;
    }
    uf->sector_size = (unsigned) ss;
  }
  size = uring_file_size (uf);
  if (size < 0) {
    err = (int) size;
    goto fail;
  }
  uf->size_at_open = (uint64_t) size;
  uf->direct_end = uf->size_at_open;
  if (cfg->direct) {
    err = detect_alignment (uf, cfg->path);
    if (err < 0)
      goto fail;
    uf->direct_end = round_down (uf->size_at_open, uf->lbs);
    if (uf->direct_end != uf->size_at_open) {
      /* The last partial block of a file cannot be read or written with O_DIRECT without
       * running past the end (a write would extend the file): that tail is buffered. The
       * buffered part starts on a page boundary: a dirty page cache page overlapping blocks
       * written with O_DIRECT cannot be invalidated, and the kernel reports that as EIO. */
      uint64_t page = (uint64_t) sysconf (_SC_PAGESIZE);
      uf->direct_end = round_down (uf->size_at_open, page > uf->lbs ? page : uf->lbs);
      struct stat bst;
      uf->bfd = open_file (cfg, (flags & ~O_DIRECT) | (uf->can_write ? O_RDWR : O_RDONLY));
      if (uf->bfd == -1) {
        err = ncr_error (errno, "open %s: %s", cfg->path, strerror (errno));
        goto fail;
      }
      if (cfg->in_dir && (fstat (uf->bfd, &bst) == -1 || bst.st_dev != st.st_dev ||
                          bst.st_ino != st.st_ino)) {
        err = ncr_error (ESTALE, "%s was replaced while it was being opened; try again",
                         cfg->path);
        goto fail;
      }
      if (cfg->in_dir && fcntl (uf->bfd, F_SETFL, fcntl (uf->bfd, F_GETFL) & ~O_NONBLOCK) == -1) {
        err = ncr_error (errno, "fcntl %s: %s", cfg->path, strerror (errno));
        goto fail;
      }
    }
  }
  uf->fast_zeroout = uf->is_bdev && bdev_has_write_zeroes (uf->fd);
  atomic_init (&uf->can_punch_hole, true);
  atomic_init (&uf->can_zero_range, true);
  atomic_init (&uf->can_fallocate, !uf->is_bdev);
  atomic_init (&uf->can_discard, uf->is_bdev);

  struct uring_queue_config qc = {
    .engine = cfg->engine, .depth = cfg->depth,
    .fds = { uf->fd, uf->bfd }, .nfds = uf->bfd >= 0 ? 2 : 1,
  };
  err = uring_queue_new (&uf->q, &qc);
  if (err < 0)
    goto fail;
  /* Readahead has a ring of its own: not with ring=none (or without io_uring). */
  if (cfg->direct && cfg->readahead && cfg->engine != URING_QUEUE_SYNC && uf->direct_end > 0) {
    uint64_t chunk = cfg->readahead < 4 * READAHEAD_CHUNK ? cfg->readahead / 4 :
                     READAHEAD_CHUNK;
    unsigned align = uf->mem_align > uf->lbs ? uf->mem_align : uf->lbs;
    struct uring_ra_config rc = {
      .fd = uf->fd, .group = uf->ino->ra, .window = cfg->readahead, .chunk = chunk,
      .align = align > 4096 ? align : 4096, .limit = uf->direct_end,
    };
    err = uring_ra_new (&uf->ra, &rc);
    if (err < 0) {
      uring_queue_free (uf->q);
      err = ncr_error (-err, "readahead=%" PRIu64 ": %s", cfg->readahead, strerror (-err));
      goto fail;
    }
  }
  /* Buffered reads copy from the file's mapping. Without one (a file too big for the
   * address space, mmap refused) they are preads, the same data at a higher cost. */
  if (!cfg->direct && cfg->mmap && uf->size_at_open > 0)
    uf->map_error = -uring_map_get (&uf->map, uf->fd, &st, uf->size_at_open);
  *ufp = uf;
  return 0;

 fail:
  uring_inode_put (uf->ino);
  if (uf->bfd >= 0)
    close (uf->bfd);
  if (uf->fd >= 0)
    close (uf->fd);
  free (uf);
  return err;
}

void
uring_file_close (struct uring_file *uf)
{
  if (uf == NULL)
    return;
  uring_map_put (uf->map);
  uring_ra_free (uf->ra);
  uring_queue_free (uf->q);
  uring_inode_put (uf->ino);
  if (uf->bfd >= 0)
    close (uf->bfd);
  close (uf->fd);
  free (uf);
}

int64_t
uring_file_size (struct uring_file *uf)
{
  struct stat st;

  if (uf->is_bdev) {
    uint64_t size;
    if (ioctl (uf->fd, BLKGETSIZE64, &size) == -1)
      return ncr_error (errno, "BLKGETSIZE64: %s", strerror (errno));
    return (int64_t) size;
  }
  if (fstat (uf->fd, &st) == -1)
    return ncr_error (errno, "fstat: %s", strerror (errno));
  return st.st_size;
}

bool uring_file_can_write (const struct uring_file *uf) { return uf->can_write; }
bool uring_file_is_block_device (const struct uring_file *uf) { return uf->is_bdev; }
int uring_file_map_error (const struct uring_file *uf) { return uf->map ? 0 : uf->map_error; }
unsigned
uring_file_direct_alignment (const struct uring_file *uf)
{
  return uf->direct ? uf->lbs : 1;
}
struct uring_queue *uring_file_queue (struct uring_file *uf) { return uf->q; }
struct uring_readahead *uring_file_readahead (struct uring_file *uf) { return uf->ra; }

bool
uring_file_can_extents (struct uring_file *uf)
{
  /* As the file plugin: if SEEK_HOLE works at all, trust it. */
  return lseek (uf->fd, 0, SEEK_HOLE) != -1;
}

/* Split [offset, end) at direct_end: [offset, mid) goes O_DIRECT, [mid, end) buffered. */
static uint64_t
direct_split (const struct uring_file *uf, uint64_t offset, uint64_t end)
{
  if (end <= uf->direct_end)
    return end;
  return offset > uf->direct_end ? offset : uf->direct_end;
}

static bool
is_aligned (const struct uring_file *uf, const void *buf, uint64_t offset, uint64_t end)
{
  return ((uintptr_t) buf & (uf->mem_align - 1)) == 0 &&
         ((offset | end) & (uf->lbs - 1)) == 0;
}

/* One buffered read or write in the calling thread, as the file plugin does it: no operation
 * array, no shared counters (their cache line bounced between the cores on every 4 KiB
 * request). Short transfers continue, EINTR/EAGAIN retry; messages as uring-queue's. */
static int
inline_rw (struct uring_file *uf, bool write, void *buf, uint64_t len, uint64_t offset,
           int rw_flags)
{
  uint64_t done = 0;
  unsigned retries = 0;

  while (done < len) {
    struct iovec iov = { .iov_base = (char *) buf + done, .iov_len = len - done };
    ssize_t r = write ? pwritev2 (uf->fd, &iov, 1, (off_t) (offset + done), rw_flags)
                      : pread (uf->fd, iov.iov_base, iov.iov_len, (off_t) (offset + done));

    if (r == -1 && (errno == EINTR || errno == EAGAIN) && ++retries <= 1000)
      continue;
    if (r == -1)
      return ncr_error (errno, "%s at offset %" PRIu64 " (%" PRIu64 " bytes): %s",
                        write ? "write" : "read", offset, len, strerror (errno));
    if (r == 0) {
      if (!write)
        return ncr_error (EIO, "read at offset %" PRIu64 ": unexpected end of file",
                          offset + done);
      if (++retries > 1000)
        return ncr_error (EIO, "write at offset %" PRIu64 " (%" PRIu64 " bytes): %s",
                          offset, len, strerror (EIO));
      continue;
    }
    done += (uint64_t) r;
  }
  return 0;
}

int
uring_file_pread (struct uring_file *uf, void *buf, uint32_t count, uint64_t offset)
{
  struct uring_queue_op ops[MAX_OPS];
  uint64_t end = offset + count, mid, astart = 0, aend = 0;
  char *bb = NULL;
  size_t n = 0;
  int r;

  if (!uf->direct) {
    /* From the mapping: a copy from the page cache, no syscall (docs/uring.md). A page that
     * cannot be read (SIGBUS: the file shrank, an I/O error) is read again below, with
     * pread, for the real error. */
    if (uf->map && end <= uring_map_size (uf->map) && uring_map_read (uf->map, buf, count,
                                                                      offset) == 0)
      return 0;
    /* One piece: a plain pread. io_uring's buffered read first tries without blocking and,
     * on a page cache miss, resumes through task work: measured 16.4 vs 12.3 us of CPU per
     * 4 KiB random read (docs/uring.md). Several pieces: the ring, all in flight at once. */
    if (count <= uf->split)
      return inline_rw (uf, false, buf, count, offset, 0);
    n = add_rw (uf, ops, 0, URING_QUEUE_READ, FD_MAIN, buf, count, offset);
    return uring_queue_run (uf->q, ops, n);
  }

  mid = direct_split (uf, offset, end);
  /* A sequential stream: the data may be prefetched already (or the read starts more). */
  if (uf->ra && mid == end && uring_ra_read (uf->ra, buf, count, offset) == 1)
    return 0;
  if (mid > offset) {
    if (is_aligned (uf, buf, offset, mid))
      n = add_rw (uf, ops, n, URING_QUEUE_READ, FD_MAIN, buf, mid - offset, offset);
    else {
      /* Read the covering whole blocks into an aligned buffer, copy out the middle. */
      astart = round_down (offset, uf->lbs);
      aend = round_up (mid, uf->lbs);
      bb = bounce_get (uf, aend - astart);
      if (bb == NULL)
        return -ENOMEM;
      n = add_rw (uf, ops, n, URING_QUEUE_READ, FD_MAIN, bb, aend - astart, astart);
    }
  }
  if (end > mid)
    n = add_rw (uf, ops, n, URING_QUEUE_READ, FD_BUFFERED, (char *) buf + (mid - offset),
                end - mid, mid);
  r = uring_queue_run (uf->q, ops, n);
  if (r == 0 && bb)
    memcpy (buf, bb + (offset - astart), mid - offset);
  bounce_trim ();
  return r;
}

/* The O_DIRECT part of a write, [offset, end) with end <= direct_end. */
static size_t
direct_write_ops (struct uring_file *uf, struct uring_queue_op *ops, const void *buf,
                  uint64_t offset,
                  uint64_t end, bool *exclusive, int *err)
{
  uint64_t astart, aend;
  char *bb;
  size_t n = 0;

  *exclusive = false;
  if (is_aligned (uf, buf, offset, end)) {
    pthread_rwlock_rdlock (&uf->ino->rmw_lock);
    return add_rw (uf, ops, 0, URING_QUEUE_WRITE, FD_MAIN, (void *) buf, end - offset, offset);
  }
  astart = round_down (offset, uf->lbs);
  aend = round_up (end, uf->lbs);
  bb = bounce_get (uf, aend - astart);
  if (bb == NULL) {
    *err = -ENOMEM;
    return 0;
  }
  if (astart == offset && aend == end) {
    /* Aligned range, unaligned buffer: copy, no read needed. */
    pthread_rwlock_rdlock (&uf->ino->rmw_lock);
  }
  else {
    /* Read-modify-write of the partial head and tail blocks, exclusively. */
    struct uring_queue_op rd[2];
    size_t nrd = 0;

    *exclusive = true;
    pthread_rwlock_wrlock (&uf->ino->rmw_lock);
    if (astart != offset)
      rd[nrd++] = (struct uring_queue_op) { .opcode = URING_QUEUE_READ, .fd_index = FD_MAIN,
                                            .buf = bb, .len = uf->lbs, .offset = astart };
    if (aend != end && (nrd == 0 || aend - uf->lbs != astart))
      rd[nrd++] = (struct uring_queue_op) { .opcode = URING_QUEUE_READ, .fd_index = FD_MAIN,
                                            .buf = bb + (aend - uf->lbs - astart), .len = uf->lbs,
                                            .offset = aend - uf->lbs };
    *err = uring_queue_run (uf->q, rd, nrd);
    if (*err < 0) {
      pthread_rwlock_unlock (&uf->ino->rmw_lock);
      return 0;
    }
  }
  memcpy (bb + (offset - astart), buf, end - offset);
  n = add_rw (uf, ops, 0, URING_QUEUE_WRITE, FD_MAIN, bb, aend - astart, astart);
  return n;
}

static int
do_pwrite (struct uring_file *uf, const void *buf, uint32_t count, uint64_t offset, unsigned flags)
{
  struct uring_queue_op ops[MAX_OPS];
  uint64_t end = offset + count, mid;
  bool exclusive, locked = false;
  size_t n = 0;
  int r = 0;

  if (!uf->direct) {
    /* Buffered writes are memory copies into the page cache: on ext4 io_uring cannot do
     * them without blocking and punts each to a worker thread, which measured slower than
     * writing from this thread (docs/uring.md). One pwritev2, RWF_DSYNC for FUA. */
    bool serialize = !uf->is_bdev && !(flags & URING_FILE_FUA);

    if (serialize)
      pthread_mutex_lock (&uf->ino->buffered_write_lock);
    r = inline_rw (uf, true, (void *) buf, count, offset, flags & URING_FILE_FUA ? RWF_DSYNC : 0);
    if (serialize)
      pthread_mutex_unlock (&uf->ino->buffered_write_lock);
    return r;
  }
  mid = direct_split (uf, offset, end);
  if (mid > offset) {
    n = direct_write_ops (uf, ops, buf, offset, mid, &exclusive, &r);
    if (r < 0)
      return r;
    locked = true;
  }
  if (end > mid)
    n = add_rw (uf, ops, n, URING_QUEUE_WRITE, FD_BUFFERED, (char *) buf + (mid - offset),
                end - mid, mid);
  r = run_writes (uf, ops, n, flags);
  if (locked)
    pthread_rwlock_unlock (&uf->ino->rmw_lock);
  bounce_trim ();
  return r;
}

int
uring_file_flush (struct uring_file *uf)
{
  struct uring_queue_op op = { .opcode = URING_QUEUE_FDATASYNC, .fd_index = FD_MAIN };
  return uring_queue_run (uf->q, &op, 1);
}

/* Zero and trim change bytes without writing them: with direct=true they must still wait
 * for a read-modify-write of any block they touch, or its stale copy of the block would
 * overwrite them. Taking rmw_lock shared orders them like aligned writes: against every
 * read-modify-write, not against each other. Buffered I/O never reads-modifies-writes. */
static inline void
change_lock (struct uring_file *uf)
{
  if (uf->direct)
    pthread_rwlock_rdlock (&uf->ino->rmw_lock);
}

static inline void
change_unlock (struct uring_file *uf)
{
  if (uf->direct)
    pthread_rwlock_unlock (&uf->ino->rmw_lock);
}

/* fallocate as a plain syscall: io_uring would only hand it to a worker thread. */
static int
do_fallocate (struct uring_file *uf, int mode, uint64_t offset, uint64_t len)
{
  int r = 0;

  change_lock (uf);
  if (fallocate (uf->fd, mode, (off_t) offset, (off_t) len) == -1)
    r = -errno;
  change_unlock (uf);
  return r;
}

static int
do_trim (struct uring_file *uf, uint32_t count, uint64_t offset, unsigned flags)
{
  int r = 0;

  if (uf->is_bdev && atomic_load (&uf->can_discard)) {
    /* BLKDISCARD wants whole logical blocks; trim is advisory, so shave the edges. */
    uint64_t s = round_up (offset, uf->sector_size);
    uint64_t e = round_down (offset + count, uf->sector_size);
    if (e > s) {
      uint64_t range[2] = { s, e - s };
      change_lock (uf);
      if (ioctl (uf->fd, BLKDISCARD, &range) == -1)
        r = -errno;
      change_unlock (uf);
    }
    if (r < 0 && (is_enotsup (-r) || r == -ENOTTY))
      atomic_store (&uf->can_discard, false);
  }
  else if (!uf->is_bdev && atomic_load (&uf->can_punch_hole)) {
    r = do_fallocate (uf, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, count);
    if (r < 0 && is_enotsup (-r))
      atomic_store (&uf->can_punch_hole, false);
  }
  /* Like the file plugin: only EIO and EPERM are worth failing an advisory trim for. */
  if (r == -EIO || r == -EPERM)
    return ncr_error (-r, "trim: %s", strerror (-r));
  if (flags & URING_FILE_FUA)
    return uring_file_flush (uf);
  return 0;
}

/* Write zeros from the shared zero buffer (already aligned for O_DIRECT). */
static int
write_zeros (struct uring_file *uf, uint32_t count, uint64_t offset)
{
  while (count > 0) {
    uint32_t n = count < ZERO_BUF_SIZE ? count : ZERO_BUF_SIZE;
    /* Keep the pieces after the first on block boundaries so only the ends need RMW. */
    if (uf->direct && n == ZERO_BUF_SIZE && (offset & (uf->lbs - 1)))
      n -= (uint32_t) (offset & (uf->lbs - 1));
    int r = uring_file_pwrite (uf, zero_buf, n, offset, 0);
    if (r < 0)
      return r;
    count -= n;
    offset += n;
  }
  return 0;
}

/* Try one fallocate mode; *ok is cleared when the file system does not support it.
 * Returns 1 on success, 0 to try the next method, -errno on a real error. */
static int
try_fallocate (struct uring_file *uf, _Atomic bool *ok, int mode, uint32_t count, uint64_t offset)
{
  int r;

  if (!atomic_load (ok))
    return 0;
  r = do_fallocate (uf, mode, offset, count);
  if (r == 0)
    return 1;
  if (!is_enotsup (-r))
    return ncr_error (-r, "zero: fallocate: %s", strerror (-r));
  atomic_store (ok, false);
  return 0;
}

/* Zero [offset, offset+count) without writing data: 1 done, 0 no method applies, -errno. */
static int
zero_by_fallocate (struct uring_file *uf, uint32_t count, uint64_t offset, unsigned flags)
{
  int r = 0;

  /* 1. Deallocate, when allowed (on a block device this is write-zeroes with unmap, which
   *    the kernel never emulates: always fast). */
  if (flags & URING_FILE_ZERO_MAY_TRIM)
    r = try_fallocate (uf, &uf->can_punch_hole, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                       count, offset);
  /* 2. Zero in place: unwritten extents on a file system; on a block device write-zeroes,
   *    which the kernel emulates by writing zero pages when the device lacks it. */
  if (r == 0 && (!uf->is_bdev || uf->fast_zeroout || !(flags & URING_FILE_ZERO_FAST)))
    r = try_fallocate (uf, &uf->can_zero_range, FALLOC_FL_ZERO_RANGE, count, offset);
  /* 3. A file system with holes but no ZERO_RANGE: punch, then allocate again (the client
   *    did not allow holes). If allocating fails, fall through to writing zeros. */
  if (r == 0 && !uf->is_bdev && atomic_load (&uf->can_fallocate)) {
    r = try_fallocate (uf, &uf->can_punch_hole, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                       count, offset);
    if (r == 1)
      r = try_fallocate (uf, &uf->can_fallocate, 0, count, offset);
  }
  return r;
}

static int
do_zero (struct uring_file *uf, uint32_t count, uint64_t offset, unsigned flags)
{
  uint64_t end = offset + count, s = offset, e = end;
  int r;

  /* Block devices only fallocate whole logical blocks: the partial edges are written. */
  if (uf->is_bdev) {
    s = round_up (offset, uf->sector_size);
    e = round_down (end, uf->sector_size);
    if (e < s)
      s = e = offset;
  }
  r = e > s ? zero_by_fallocate (uf, (uint32_t) (e - s), s, flags) : 0;
  if (r < 0)
    return r;
  if (r == 0) {
    if (flags & URING_FILE_ZERO_FAST)
      return ncr_error (ENOTSUP, "fast zero: only writing zeros would work here");
    s = e = offset;           /* write the whole range */
  }
  if (s > offset && (r = write_zeros (uf, (uint32_t) (s - offset), offset)) < 0)
    return r;
  if (end > e && e >= s && (r = write_zeros (uf, (uint32_t) (end - e), e)) < 0)
    return r;
  if (flags & URING_FILE_FUA)
    return uring_file_flush (uf);
  return 0;
}

int
uring_file_cache (struct uring_file *uf, uint32_t count, uint64_t offset)
{
  int r = posix_fadvise (uf->fd, (off_t) offset, count, POSIX_FADV_WILLNEED);
  if (r != 0)
    return ncr_error (r, "posix_fadvise: %s", strerror (r));
  return 0;
}

int
uring_file_extents (struct uring_file *uf, uint32_t count, uint64_t offset, bool req_one,
                    uring_file_extent_fn fn, void *opaque)
{
  uint64_t end = offset + count;

  while (offset < end) {
    off_t pos = lseek (uf->fd, (off_t) offset, SEEK_DATA);
    int r;

    if (pos == -1) {
      if (errno != ENXIO)     /* ENXIO: offset is in the final hole */
        return ncr_error (errno, "lseek SEEK_DATA %" PRIu64 ": %s", offset, strerror (errno));
      pos = (off_t) end;
    }
    if ((uint64_t) pos > offset) {
      uint64_t e = (uint64_t) pos < end ? (uint64_t) pos : end;
      if ((r = fn (opaque, offset, e - offset, true)) < 0)
        return r;
      if (req_one)
        return 0;
      offset = e;
    }
    if (offset >= end)
      break;
    pos = lseek (uf->fd, (off_t) offset, SEEK_HOLE);
    if (pos == -1)
      return ncr_error (errno, "lseek SEEK_HOLE %" PRIu64 ": %s", offset, strerror (errno));
    if ((uint64_t) pos > offset) {
      uint64_t e = (uint64_t) pos < end ? (uint64_t) pos : end;
      if ((r = fn (opaque, offset, e - offset, false)) < 0)
        return r;
      if (req_one)
        return 0;
      offset = e;
    }
  }
  return 0;
}

/* Every change to the file's contents tells the readahead of every connection (the
 * bracketing rules are in uring-readahead.h): change_begin before it, change_end (which
 * passes the change's result through) after it. Without readahead, nothing to tell. */
static inline void
change_begin (const struct uring_file *uf)
{
  if (uf->ra)
    uring_ra_write_begin (uf->ino->ra);
}

static inline int
change_end (const struct uring_file *uf, int r, uint64_t offset, uint32_t count)
{
  if (uf->ra)
    uring_ra_write_end (uf->ino->ra, offset, count);
  return r;
}

int
uring_file_pwrite (struct uring_file *uf, const void *buf, uint32_t count, uint64_t offset,
                   unsigned flags)
{
  change_begin (uf);
  return change_end (uf, do_pwrite (uf, buf, count, offset, flags), offset, count);
}

int
uring_file_trim (struct uring_file *uf, uint32_t count, uint64_t offset, unsigned flags)
{
  change_begin (uf);
  return change_end (uf, do_trim (uf, count, offset, flags), offset, count);
}

int
uring_file_zero (struct uring_file *uf, uint32_t count, uint64_t offset, unsigned flags)
{
  change_begin (uf);
  return change_end (uf, do_zero (uf, count, offset, flags), offset, count);
}
