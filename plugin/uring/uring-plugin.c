/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdkit nbdcrypt-uring plugin: serves a file or block device (file=), or every one in a
 * directory as an export of its own (dir=), through io_uring (uring-file.c). Glue. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "attributes.h"
#include "cleanup.h"
#include "errors.h"
#include "uring-file.h"
#include "uring-readahead.h"

#define DEFAULT_QUEUE_DEPTH 64
#define DEFAULT_READAHEAD (16 * 1024 * 1024)

static char *filename;
static char *dirpath;         /* dir=: absolute */
static int dir_fd = -1;       /* dir=: the directory, open for the server's lifetime */
static bool direct;
static unsigned queue_depth = DEFAULT_QUEUE_DEPTH;
static enum uring_queue_engine engine = URING_QUEUE_PER_THREAD;
static uint64_t split_size;
static uint64_t readahead_size = DEFAULT_READAHEAD;
static int use_mmap = -1;     /* mmap=: -1 unset (on when buffered) */

/* Report a core-module error the nbdkit way: message, errno, -1. */
static int
fail (int r)
{
  nbdkit_error ("%s", ncr_last_error ());
  errno = -r;
  return -1;
}

static void
uring_unload (void)
{
  free (filename);
  free (dirpath);
  if (dir_fd >= 0)
    close (dir_fd);
}

static int
uring_config (const char *key, const char *value)
{
  if (strcmp (key, "file") == 0) {
    free (filename);
    filename = nbdkit_absolute_path (value);
    return filename ? 0 : -1;
  }
  if (strcmp (key, "dir") == 0) {
    free (dirpath);
    dirpath = nbdkit_realpath (value);
    return dirpath ? 0 : -1;
  }
  if (strcmp (key, "direct") == 0) {
    int r = nbdkit_parse_bool (value);
    if (r == -1) {
      nbdkit_error ("direct=%s: expected true or false", value);
      return -1;
    }
    direct = r;
    return 0;
  }
  if (strcmp (key, "queue-depth") == 0) {
    /* nbdkit's own message can be misleading ("empty string"): add ours. */
    if (nbdkit_parse_unsigned ("queue-depth", value, &queue_depth) == -1 ||
        queue_depth < 1 || queue_depth > 4096) {
      nbdkit_error ("queue-depth=%s: must be between 1 and 4096", value);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "split-size") == 0) {
    int64_t r = nbdkit_parse_size (value);
    if (r < 4096 || r > 64 * 1024 * 1024 || (r & (r - 1))) {
      nbdkit_error ("split-size=%s: must be a power of two from 4K to 64M", value);
      return -1;
    }
    split_size = (uint64_t) r;
    return 0;
  }
  if (strcmp (key, "readahead") == 0) {
    int64_t r = nbdkit_parse_size (value);
    if (r != 0 && (r < 64 * 1024 || r > 1024 * 1024 * 1024 || (r & (r - 1)))) {
      nbdkit_error ("readahead=%s: must be 0 or a power of two from 64K to 1G", value);
      return -1;
    }
    readahead_size = (uint64_t) r;
    return 0;
  }
  if (strcmp (key, "mmap") == 0) {
    use_mmap = nbdkit_parse_bool (value);
    if (use_mmap == -1) {
      nbdkit_error ("mmap=%s: expected true or false", value);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "ring") == 0) {
    if (strcmp (value, "per-thread") == 0)
      engine = URING_QUEUE_PER_THREAD;
    else if (strcmp (value, "shared") == 0)
      engine = URING_QUEUE_SHARED;
    else if (strcmp (value, "none") == 0)
      engine = URING_QUEUE_SYNC;
    else {
      nbdkit_error ("ring=%s: expected per-thread, shared or none", value);
      return -1;
    }
    return 0;
  }
  nbdkit_error ("unknown parameter '%s'", key);
  return -1;
}

/* Check everything a connection will need now, so mistakes are startup errors. */
static int
uring_config_complete (void)
{
  struct uring_file *uf;
  int r;

  if (filename && dirpath) {
    nbdkit_error ("file= and dir= cannot be used together: file= serves one file, dir= "
                  "every file in a directory (one export each); give only one of them");
    return -1;
  }
  if (filename == NULL && dirpath == NULL) {
    nbdkit_error ("you must supply the file=<FILE> parameter (a file or a block device) "
                  "or dir=<DIR> (every file in DIR, one export each)");
    return -1;
  }
  if (engine != URING_QUEUE_SYNC && uring_queue_probe () < 0) {
    /* Not fatal: the same semantics, one blocking syscall per request. Say so loudly. */
    fprintf (stderr, "nbdkit: uring: warning: %s: falling back to pread/pwrite\n",
             ncr_last_error ());
    nbdkit_debug ("io_uring unavailable (%s): falling back to pread/pwrite",
                  ncr_last_error ());
    engine = URING_QUEUE_SYNC;
  }
  if (use_mmap == 1 && direct) {
    nbdkit_error ("mmap=true reads through the page cache: it needs direct=false");
    return -1;
  }
  use_mmap = !direct && use_mmap != 0;
  if (dirpath) {
    /* The files come and go: each is checked when a client opens it. */
    dir_fd = open (dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd == -1) {
      nbdkit_error ("dir=%s: %m", dirpath);
      return -1;
    }
    nbdkit_debug ("uring: dir=%s direct=%d queue-depth=%u split-size=%" PRIu64
                  " readahead=%" PRIu64 " ring=%s mmap=%d", dirpath, direct, queue_depth,
                  split_size, direct ? readahead_size : 0, uring_queue_engine_name (engine),
                  use_mmap);
    return 0;
  }
  struct uring_file_config cfg = {
    .path = filename, .direct = direct, .readonly = true, .engine = URING_QUEUE_SYNC, .depth = 1,
    .split_size = split_size, .readahead = readahead_size, .mmap = use_mmap,
  };
  r = uring_file_open (&uf, &cfg);
  if (r < 0)
    return fail (r);
  if (uring_file_map_error (uf))
    nbdkit_debug ("uring: buffered reads use pread: %s", ncr_last_error ());
  uring_file_close (uf);
  nbdkit_debug ("uring: file=%s direct=%d queue-depth=%u split-size=%" PRIu64
                " readahead=%" PRIu64 " ring=%s mmap=%d", filename, direct, queue_depth,
                split_size, direct ? readahead_size : 0, uring_queue_engine_name (engine),
                use_mmap);
  return 0;
}

static void
uring_dump_plugin (void)
{
  printf ("uring_io_uring=%s\n", uring_queue_probe () == 0 ? "yes" : "no");
  printf ("uring_default_queue_depth=%d\n", DEFAULT_QUEUE_DEPTH);
  printf ("uring_default_readahead=%d\n", DEFAULT_READAHEAD);
}

/* dir=: a name that is a file directly in the directory, and not hidden. */
static bool
export_name_ok (const char *name)
{
  return name[0] != '\0' && name[0] != '.' && strchr (name, '/') == NULL;
}

static int
compare_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* dir=: every regular file and block device directly in the directory, sorted by name. Hidden
 * files, symbolic links and everything else are left out, as opening them would fail. */
static int
uring_list_exports (int readonly UNUSED, int is_tls UNUSED, struct nbdkit_exports *exports)
{
  CLEANUP_FREE char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *d;
  DIR *dp;
  int fd, r = 0;

  if (dirpath == NULL)
    return nbdkit_use_default_export (exports);
  /* A descriptor of its own: readdir's position is not shared with other listings. */
  fd = openat (dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  dp = fd == -1 ? NULL : fdopendir (fd);
  if (dp == NULL) {
    nbdkit_error ("dir=%s: %m", dirpath);
    if (fd >= 0)
      close (fd);
    return -1;
  }
  while (errno = 0, (d = readdir (dp)) != NULL) {
    struct stat st;

    if (!export_name_ok (d->d_name) ||
        fstatat (fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
        !(S_ISREG (st.st_mode) || S_ISBLK (st.st_mode)))
      continue;
    if (n == cap) {
      char **p = realloc (names, (cap = cap ? 2 * cap : 64) * sizeof *names);
      if (p == NULL) {
        nbdkit_error ("listing dir=%s: %m", dirpath);
        r = -1;
        break;
      }
      names = p;
    }
    names[n] = strdup (d->d_name);
    if (names[n] == NULL) {
      nbdkit_error ("listing dir=%s: %m", dirpath);
      r = -1;
      break;
    }
    n++;
  }
  if (r == 0 && errno != 0) {
    nbdkit_error ("reading dir=%s: %m", dirpath);
    r = -1;
  }
  if (r == 0)
    qsort (names, n, sizeof *names, compare_names);
  for (size_t i = 0; i < n; i++) {
    if (r == 0 && nbdkit_add_export (exports, names[i], NULL) == -1)
      r = -1;
    free (names[i]);
  }
  closedir (dp);
  return r;
}

static const char *
uring_default_export (int readonly UNUSED, int is_tls UNUSED)
{
  if (dirpath == NULL)
    return "";
  /* As nbdkit's file plugin: no file is more default than another. */
  nbdkit_error ("dir=%s has no default export: ask for a file by its name (nbdinfo --list "
                "shows them), or give one with nbdkit's exportname filter (default-export=)",
                dirpath);
  return NULL;
}

static void *
uring_open (int readonly)
{
  struct uring_file *uf;
  struct uring_file_config cfg = {
    .path = filename, .direct = direct, .readonly = readonly,
    .engine = engine, .depth = queue_depth, .split_size = split_size,
    .readahead = readahead_size, .mmap = use_mmap,
  };
  const char *name = NULL;
  int r;

  if (dirpath) {
    name = nbdkit_export_name ();
    if (name == NULL)
      return NULL;
    if (!export_name_ok (name)) {
      nbdkit_error ("export '%s': dir= serves the files directly in %s by their names; "
                    "not '', names with '/', '.', '..' or hidden files (names starting "
                    "with '.')", name, dirpath);
      errno = EINVAL;
      return NULL;
    }
    cfg.path = name;
    cfg.in_dir = true;
    cfg.dirfd = dir_fd;
  }
  r = uring_file_open (&uf, &cfg);
  if (r < 0) {
    if (name) {
      nbdkit_error ("export '%s' in dir=%s: %s%s", name, dirpath, ncr_last_error (),
                    r == -ENOENT ? " (nbdinfo --list shows the exports)" : "");
      errno = -r;
    }
    else
      fail (r);
    return NULL;
  }
  return uf;
}

static void
uring_close (void *handle)
{
  struct uring_file *uf = handle;
  struct uring_queue_stats st;

  uring_queue_get_stats (uring_file_queue (uf), &st);
  nbdkit_debug ("uring: %s: %" PRIu64 " operations in %" PRIu64 " batches, %" PRIu64
                " io_uring_enter calls, %" PRIu64 " resubmitted, %u rings, fixed files %s",
                uring_queue_engine_name (uring_queue_engine (uring_file_queue (uf))), st.ops,
                st.batches, st.enters,
                st.resubmits, st.rings, st.fixed_files ? "yes" : "no");
  if (uring_file_readahead (uf)) {
    struct uring_ra_stats rs;
    uring_ra_get_stats (uring_file_readahead (uf), &rs);
    nbdkit_debug ("uring: readahead: %" PRIu64 " reads served (%" PRIu64 " waited), %" PRIu64
                  " chunks prefetched, %" PRIu64 " discarded, %" PRIu64 " never read",
                  rs.hits, rs.waits, rs.prefetches, rs.discarded, rs.unused);
  }
  uring_file_close (uf);
}

static int64_t
uring_get_size (void *handle)
{
  int64_t r = uring_file_size (handle);
  return r < 0 ? fail ((int) r) : r;
}

static int
uring_block_size (void *handle, uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
  unsigned a = uring_file_direct_alignment (handle);

  /* Any size works (unaligned direct I/O is bounced), but aligned requests are cheaper. */
  *minimum = 1;
  *preferred = a > 4096 ? a : 4096;
  *maximum = 0xffffffff;
  return 0;
}

static int
uring_can_write (void *handle)
{
  return uring_file_can_write (handle);
}

static int
uring_can_multi_conn (void *handle UNUSED)
{
  /* Every connection to an export opens the same file and flush is fdatasync: what one
   * connection has flushed, all see. */
  return 1;
}

static int
uring_can_trim (void *handle UNUSED)
{
  return 1;
}

static int
uring_can_zero (void *handle UNUSED)
{
  return 1;
}

static int
uring_can_fast_zero (void *handle UNUSED)
{
  /* uring_file_zero fails with ENOTSUP instead of falling back to writing zeros when asked to. */
  return 1;
}

static int
uring_can_fua (void *handle UNUSED)
{
  return NBDKIT_FUA_NATIVE;
}

static int
uring_can_cache (void *handle)
{
  /* With direct=true reads never use the page cache, so filling it would only waste memory. */
  return uring_file_direct_alignment (handle) > 1 ? NBDKIT_CACHE_NONE : NBDKIT_CACHE_NATIVE;
}

static int
uring_can_extents (void *handle)
{
  return uring_file_can_extents (handle);
}

static int
uring_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
             uint32_t flags UNUSED)
{
  int r = uring_file_pread (handle, buf, count, offset);
  return r < 0 ? fail (r) : 0;
}

static int
uring_pwrite (void *handle, const void *buf, uint32_t count, uint64_t offset,
              uint32_t flags)
{
  int r = uring_file_pwrite (handle, buf, count, offset,
                             flags & NBDKIT_FLAG_FUA ? URING_FILE_FUA : 0);
  return r < 0 ? fail (r) : 0;
}

static int
uring_flush (void *handle, uint32_t flags UNUSED)
{
  int r = uring_file_flush (handle);
  return r < 0 ? fail (r) : 0;
}

static int
uring_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  int r = uring_file_trim (handle, count, offset, flags & NBDKIT_FLAG_FUA ? URING_FILE_FUA : 0);
  return r < 0 ? fail (r) : 0;
}

static int
uring_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  unsigned f = (flags & NBDKIT_FLAG_MAY_TRIM ? URING_FILE_ZERO_MAY_TRIM : 0) |
               (flags & NBDKIT_FLAG_FAST_ZERO ? URING_FILE_ZERO_FAST : 0) |
               (flags & NBDKIT_FLAG_FUA ? URING_FILE_FUA : 0);
  int r = uring_file_zero (handle, count, offset, f);

  if (r == -ENOTSUP && (flags & NBDKIT_FLAG_FAST_ZERO)) {
    /* Not an error: the client asked to be told, and will write zeros itself. */
    errno = ENOTSUP;
    return -1;
  }
  return r < 0 ? fail (r) : 0;
}

static int
add_extent (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  if (nbdkit_add_extent (opaque, offset, length,
                         hole ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0) == -1)
    return -errno;
  return 0;
}

static int
uring_extents (void *handle, uint32_t count, uint64_t offset, uint32_t flags,
               struct nbdkit_extents *extents)
{
  int r = uring_file_extents (handle, count, offset, flags & NBDKIT_FLAG_REQ_ONE,
                              add_extent, extents);
  return r < 0 ? fail (r) : 0;
}

static int
uring_cache (void *handle, uint32_t count, uint64_t offset, uint32_t flags UNUSED)
{
  int r = uring_file_cache (handle, count, offset);
  return r < 0 ? fail (r) : 0;
}

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static struct nbdkit_plugin plugin = {
  .name = "nbdcrypt-uring",
  .longname = "nbdcrypt io_uring file and block device plugin",
  .version = "0.1.0",
  .unload = uring_unload,
  .config = uring_config,
  .config_complete = uring_config_complete,
  .config_help =
    "file=<FILE>          The file or block device to serve (file= or dir= is required).\n"
    "dir=<DIR>            Serve every file and block device in DIR, each as the export\n"
    "                     named by its file name.\n"
    "direct=true|false    Use O_DIRECT (default false).\n"
    "queue-depth=<N>      io_uring entries per ring (default 64).\n"
    "split-size=<SIZE>    Requests are cut into pieces this big, in flight together (256K).\n"
    "readahead=<SIZE>     direct=true: prefetch this much ahead of sequential reads (16M; 0 off).\n"
    "mmap=true|false      direct=false: reads copy from a shared mapping of the file (default\n"
    "                     true; false: pread).\n"
    "ring=per-thread|shared|none  io_uring layout (default per-thread; none: pread/pwrite).",
  .magic_config_key = "file",
  .dump_plugin = uring_dump_plugin,
  .list_exports = uring_list_exports,
  .default_export = uring_default_export,
  .open = uring_open,
  .close = uring_close,
  .get_size = uring_get_size,
  .block_size = uring_block_size,
  .can_write = uring_can_write,
  .can_multi_conn = uring_can_multi_conn,
  .can_trim = uring_can_trim,
  .can_zero = uring_can_zero,
  .can_fast_zero = uring_can_fast_zero,
  .can_fua = uring_can_fua,
  .can_cache = uring_can_cache,
  .can_extents = uring_can_extents,
  .pread = uring_pread,
  .pwrite = uring_pwrite,
  .flush = uring_flush,
  .trim = uring_trim,
  .zero = uring_zero,
  .extents = uring_extents,
  .cache = uring_cache,
  .errno_is_preserved = 1,
};

NBDKIT_REGISTER_PLUGIN (plugin)
