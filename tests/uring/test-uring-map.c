/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: uring-map on its own: reads from the mapping match the file; a second
 * uring_map_get of the same file shares the mapping, another file gets its own while the
 * first one's stays shared as long as it is in use (dir= serves many files); a read of pages cut off by truncation
 * returns -EFAULT (SIGBUS caught) and the thread reads on normally afterwards, from several
 * threads at once; a SIGBUS outside a uring_map_read reaches the handler installed before. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "uring-map.h"

#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

#define PAGE 4096u
#define PAGES 16u


static unsigned char expect[PAGES * PAGE];

/* The handler that was there first: umap's handler must pass foreign SIGBUS to it. */
static sigjmp_buf foreign_jb;
static volatile sig_atomic_t foreign_seen;
static volatile unsigned char sink;

static void
foreign_handler (int sig)
{
  (void) sig;
  foreign_seen = 1;
  siglongjmp (foreign_jb, 1);
}

static int
make_file (const char *dir, const char *name, char *path, size_t pathlen, size_t size,
           unsigned seed)
{
  int fd;

  snprintf (path, pathlen, "%s/%s-XXXXXX", dir, name);
  fd = mkstemp (path);
  if (fd == -1)
    return -1;
  for (size_t i = 0; i < size; i++) {
    seed = seed * 1103515245 + 12345;
    expect[i] = (unsigned char) (seed >> 16);
  }
  if (pwrite (fd, expect, size, 0) != (ssize_t) size) {
    close (fd);
    return -1;
  }
  return fd;
}

struct reader {
  struct uring_map *m;
  int efault, ok;
};

/* Alternately reads a cut-off page (must fail) and a kept one (must match). */
static void *
reader_thread (void *arg)
{
  struct reader *r = arg;
  unsigned char buf[PAGE];

  for (int i = 0; i < 200; i++) {
    if (uring_map_read (r->m, buf, PAGE, (PAGES - 1) * PAGE) == -EFAULT)
      r->efault++;
    if (uring_map_read (r->m, buf, PAGE, PAGE) == 0 && memcmp (buf, expect + PAGE, PAGE) == 0)
      r->ok++;
  }
  return NULL;
}

/* The file the tests share: PAGES pages, mapped as a (its holders a and b). */
static const char *tmp;
static char path[256];
static int fd = -1;
static struct stat st;
static struct uring_map *a, *b;

/* Reads from the mapping match the file, across page boundaries too. */
static void
test_umap_reads (void)
{
  static unsigned char buf[PAGES * PAGE];
  int r;

  fd = make_file (tmp, "umap", path, sizeof path, PAGES * PAGE, 1);
  REQUIRE (fd >= 0);
  fstat (fd, &st);
  CHECK_MSG (uring_map_get (&a, fd, &st, 0) == -EINVAL && a == NULL, "size 0 refused");
  r = uring_map_get (&a, fd, &st, PAGES * PAGE);
  if (!CHECK_MSG (r == 0, "uring_map_get %d", r))
    exit (1);
  CHECK_MSG (uring_map_size (a) == PAGES * PAGE, "size %llu",
             (unsigned long long) uring_map_size (a));
  CHECK_MSG (uring_map_read (a, buf, PAGES * PAGE, 0) == 0 &&
             memcmp (buf, expect, PAGES * PAGE) == 0, "whole file");
  CHECK_MSG (uring_map_read (a, buf, 5, PAGE - 2) == 0 && memcmp (buf, expect + PAGE - 2, 5) == 0,
             "across a page boundary");
}

/* Same file: shared. Smaller size: shared. Written through the fd: seen. Another file
 * replaces it for later callers; the earlier holders keep theirs. */
static void
test_umap_sharing (void)
{
  static unsigned char buf[PAGES * PAGE];
  char path2[256];
  struct stat st2;
  struct uring_map *c, *d, *e;
  int fd2;

  CHECK_MSG (uring_map_get (&b, fd, &st, PAGE) == 0 && b == a, "same file shares the mapping");
  CHECK_MSG (pwrite (fd, "written", 7, 3 * PAGE) == 7, "pwrite");
  memcpy (expect + 3 * PAGE, "written", 7);
  CHECK_MSG (uring_map_read (b, buf, 7, 3 * PAGE) == 0 && memcmp (buf, "written", 7) == 0,
             "a write through the descriptor is seen");

  fd2 = make_file (tmp, "umap2", path2, sizeof path2, PAGE, 2);
  fstat (fd2, &st2);
  CHECK_MSG (uring_map_get (&c, fd2, &st2, PAGE) == 0 && c != a, "another file, another mapping");
  CHECK_MSG (uring_map_read (a, buf, 7, 3 * PAGE) == 0 && memcmp (buf, "written", 7) == 0,
             "the old mapping still reads");
  CHECK_MSG (uring_map_get (&d, fd2, &st2, PAGE) == 0 && d == c, "the new one is shared now");
  CHECK_MSG (uring_map_get (&e, fd, &st, PAGE) == 0 && e == a,
             "the first file's mapping, still in use, is shared too");
  uring_map_put (e);
  uring_map_put (d);
  uring_map_put (c);
  close (fd2);
  unlink (path2);
  /* The expected bytes of file 1 were overwritten by make_file: restore them. */
  CHECK_MSG (pread (fd, expect, PAGES * PAGE, 0) == (ssize_t) (PAGES * PAGE), "pread");
}

/* Truncated: the cut pages fail with -EFAULT, the kept ones read, again and again, from 4
 * threads; grown back, the hole reads as zeros. */
static void
test_umap_truncated (void)
{
  static unsigned char buf[PAGES * PAGE];
  pthread_t t[4];
  struct reader rd[4];

  CHECK_MSG (ftruncate (fd, PAGES * PAGE / 2) == 0, "ftruncate");
  CHECK_MSG (uring_map_read (a, buf, PAGE, (PAGES - 1) * PAGE) == -EFAULT, "cut page");
  CHECK_MSG (uring_map_read (a, buf, PAGES * PAGE, 0) == -EFAULT, "read across the cut");
  CHECK_MSG (uring_map_read (a, buf, PAGE, 0) == 0 && memcmp (buf, expect, PAGE) == 0, "kept page");
  for (int i = 0; i < 4; i++) {
    rd[i] = (struct reader) { .m = a };
    pthread_create (&t[i], NULL, reader_thread, &rd[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join (t[i], NULL);
    CHECK_MSG (rd[i].efault == 200 && rd[i].ok == 200, "thread %d: %d faults caught, %d reads",
               i, rd[i].efault, rd[i].ok);
  }
  CHECK_MSG (ftruncate (fd, PAGES * PAGE) == 0, "ftruncate");
  memset (expect + PAGES * PAGE / 2, 0, PAGES * PAGE / 2);
  CHECK_MSG (uring_map_read (a, buf, PAGES * PAGE, 0) == 0 &&
             memcmp (buf, expect, PAGES * PAGE) == 0, "grown back");
}

/* A bigger size than mapped: a new, bigger mapping. */
static void
test_umap_bigger_size (void)
{
  struct uring_map *c;

  CHECK_MSG (uring_map_get (&c, fd, &st, 2 * PAGES * PAGE) == 0 && c != a &&
             uring_map_size (c) == 2 * PAGES * PAGE, "bigger size, new mapping");
  uring_map_put (c);
}

/* Touches the page past p's file end (p == NULL: raises SIGBUS): did the earlier handler get
 * it? Not inlined, so that no variable of the caller lives across the siglongjmp. */
__attribute__ ((noinline))
static bool
foreign_sigbus_seen (volatile unsigned char *p)
{
  foreign_seen = 0;
  if (sigsetjmp (foreign_jb, 0) == 0) {
    if (p)
      sink = p[PAGE];   /* stored: valgrind drops a load whose value is unused */
    else
      raise (SIGBUS);
  }
  return foreign_seen;
}

/* A SIGBUS outside uring_map_read (a mapping of our own, past the end of its file) reaches the
 * handler installed before, as does one sent by kill. */
static void
test_umap_foreign_sigbus (void)
{
  char path3[256];
  int fd3 = make_file (tmp, "umap3", path3, sizeof path3, PAGE, 3);
  volatile unsigned char *p = mmap (NULL, 2 * PAGE, PROT_READ, MAP_SHARED, fd3, 0);

  CHECK_MSG (p != MAP_FAILED, "mmap");
  CHECK_MSG (foreign_sigbus_seen (p), "a foreign SIGBUS did not reach the earlier handler");
  CHECK_MSG (foreign_sigbus_seen (NULL), "a sent SIGBUS did not reach the earlier handler");
  munmap ((void *) p, 2 * PAGE);
  close (fd3);
  unlink (path3);
}

int
main (void)
{
  struct sigaction sa;

  tmp = getenv ("TMPDIR") ? getenv ("TMPDIR") : "/tmp";
  /* The handler installed before the first uring_map_get. */
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = foreign_handler;
  sa.sa_flags = SA_NODEFER;
  sigemptyset (&sa.sa_mask);
  CHECK_MSG (sigaction (SIGBUS, &sa, NULL) == 0, "sigaction");

  RUN (test_umap_reads);
  RUN (test_umap_sharing);
  RUN (test_umap_truncated);
  RUN (test_umap_bigger_size);
  RUN (test_umap_foreign_sigbus);

  uring_map_put (b);
  uring_map_put (a);
  close (fd);
  unlink (path);
  return check_exit ();
}
