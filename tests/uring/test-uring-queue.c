/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: uring-queue on its own, every engine: batches split by depth, reads and writes
 * checked with plain pread/pwrite, short reads at end of file resubmitted, errors reported,
 * many threads at once (one ring each in the per-thread engine). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#if __has_include (<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "errors.h"
#include "uring-queue.h"

#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

#define FILE_SIZE (4u << 20)
#define NTHREADS 6


static char path[256];
static unsigned char *expect;   /* what the file should hold */

static void
fill_random (unsigned char *p, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245 + 12345;
    p[i] = (unsigned char) (seed >> 16);
  }
}

static struct uring_queue *
make_queue (enum uring_queue_engine engine, unsigned depth, int fd)
{
  struct uring_queue *q = NULL;
  struct uring_queue_config c = { .engine = engine, .depth = depth, .fds = { fd, -1 }, .nfds = 1 };
  int r = uring_queue_new (&q, &c);
  CHECK_MSG (r == 0, "uring_queue_new %s depth %u: %d", uring_queue_engine_name (engine), depth, r);
  return q;
}

/* 16 x 256 KiB reads with depth 8: two rounds; contents match the file. */
static void
test_batch_read (enum uring_queue_engine engine, int fd)
{
  struct uring_queue *q = make_queue (engine, 8, fd);
  unsigned char *buf = malloc (FILE_SIZE);
  struct uring_queue_op ops[16];
  struct uring_queue_stats st;
  size_t piece = FILE_SIZE / 16;

  for (int i = 0; i < 16; i++)
    ops[i] = (struct uring_queue_op) { .opcode = URING_QUEUE_READ, .buf = buf + i * piece,
                                       .len = piece, .offset = i * piece };
  CHECK_MSG (uring_queue_run (q, ops, 16) == 0, "batch read");
  CHECK_MSG (memcmp (buf, expect, FILE_SIZE) == 0, "batch read contents (%s)",
             uring_queue_engine_name (engine));
  for (int i = 0; i < 16; i++)
    CHECK_MSG (ops[i].done == piece && ops[i].error == 0, "op %d done %lu", i,
               (unsigned long) ops[i].done);
  uring_queue_get_stats (q, &st);
  CHECK_MSG (st.ops == 16 && st.batches == 2, "%s: ops %lu batches %lu",
             uring_queue_engine_name (engine), (unsigned long) st.ops, (unsigned long) st.batches);
  if (engine == URING_QUEUE_PER_THREAD) {
    /* Both rounds of 8 go in one io_uring_enter each (submit and wait together). */
    CHECK_MSG (st.enters == 2, "per-thread enters %lu", (unsigned long) st.enters);
    CHECK_MSG (st.rings == 1 && st.fixed_files, "rings %u fixed %d", st.rings, st.fixed_files);
  }
  uring_queue_free (q);
  free (buf);
}

/* Writes (one with RWF_DSYNC) then fdatasync; checked with pread. */
static void
test_write (enum uring_queue_engine engine, int fd, unsigned seed)
{
  struct uring_queue *q = make_queue (engine, 4, fd);
  unsigned char *data = malloc (300000), *check = malloc (300000);
  struct uring_queue_op ops[3];

  fill_random (data, 300000, seed);
  ops[0] = (struct uring_queue_op) { .opcode = URING_QUEUE_WRITE, .buf = data, .len = 100000,
                                     .offset = 7 };
  ops[1] = (struct uring_queue_op) { .opcode = URING_QUEUE_WRITE, .buf = data + 100000,
                                     .len = 200000, .offset = 100007, .rw_flags = RWF_DSYNC };
  ops[2] = (struct uring_queue_op) { .opcode = URING_QUEUE_FDATASYNC };
  CHECK_MSG (uring_queue_run (q, ops, 2) == 0, "write");
  CHECK_MSG (uring_queue_run (q, &ops[2], 1) == 0, "fdatasync");
  CHECK_MSG (pread (fd, check, 300000, 7) == 300000, "pread");
  CHECK_MSG (memcmp (check, data, 300000) == 0, "written data (%s)",
             uring_queue_engine_name (engine));
  memcpy (expect + 7, data, 300000);
  uring_queue_free (q);
  free (data);
  free (check);
}

/* A read across end of file comes back short, is resubmitted, then hits EOF: an error
 * unless min_len says the tail is optional. */
static void
test_eof (enum uring_queue_engine engine, int fd)
{
  struct uring_queue *q = make_queue (engine, 4, fd);
  unsigned char buf[8192];
  struct uring_queue_op op = { .opcode = URING_QUEUE_READ, .buf = buf, .len = 8192,
                               .offset = FILE_SIZE - 4096 };
  struct uring_queue_stats st;
  int r;

  r = uring_queue_run (q, &op, 1);
  CHECK_MSG (r == -EIO && strstr (ncr_last_error (), "unexpected end of file"),
             "read past EOF: %d", r);
  CHECK_MSG (op.done == 4096, "done %lu", (unsigned long) op.done);
  op.min_len = 4096;
  CHECK_MSG (uring_queue_run (q, &op, 1) == 0, "read past EOF with min_len");
  CHECK_MSG (op.done == 4096 && memcmp (buf, expect + FILE_SIZE - 4096, 4096) == 0, "EOF data");
  uring_queue_get_stats (q, &st);
  CHECK_MSG (st.resubmits >= 2, "resubmits %lu", (unsigned long) st.resubmits);
  uring_queue_free (q);
}

static void
test_errors (enum uring_queue_engine engine, const char *file)
{
  int wfd = open (file, O_WRONLY);
  struct uring_queue *q = make_queue (engine, 2, wfd);
  char buf[512];
  struct uring_queue_op op = { .opcode = URING_QUEUE_READ, .buf = buf, .len = sizeof buf };
  int r;

  r = uring_queue_run (q, &op, 1);
  CHECK_MSG (r == -EBADF && op.error == EBADF && strstr (ncr_last_error (), "read at offset 0"),
             "read from a write-only descriptor: %d", r);
  op.fd_index = 1;
  CHECK_MSG (uring_queue_run (q, &op, 1) == -EINVAL, "descriptor index out of range");
  uring_queue_free (q);
  close (wfd);
}

struct worker {
  struct uring_queue *q;
  int id;
  int fd;
};

/* Each thread rewrites and rereads its own 64 KiB stripes many times. */
static void *
worker_main (void *arg)
{
  struct worker *w = arg;
  unsigned char data[65536], back[65536];

  for (int i = 0; i < 40; i++) {
    uint64_t off = (uint64_t) (w->id + NTHREADS * (i % 10)) * 65536;   /* stripes of its own */
    struct uring_queue_op op = { .opcode = URING_QUEUE_WRITE, .buf = data, .len = sizeof data,
                                 .offset = off };
    fill_random (data, sizeof data, (unsigned) (i * 31 + w->id));
    CHECK_MSG (uring_queue_run (w->q, &op, 1) == 0, "thread %d write", w->id);
    op = (struct uring_queue_op) { .opcode = URING_QUEUE_READ, .buf = back, .len = sizeof back,
                                   .offset = off };
    CHECK_MSG (uring_queue_run (w->q, &op, 1) == 0, "thread %d read", w->id);
    CHECK_MSG (memcmp (data, back, sizeof data) == 0, "thread %d data at %lu", w->id,
               (unsigned long) off);
  }
  return NULL;
}

static void
test_threads (enum uring_queue_engine engine, int fd)
{
  struct uring_queue *q = make_queue (engine, 8, fd);
  pthread_t t[NTHREADS];
  struct worker w[NTHREADS];
  struct uring_queue_stats st;

  for (int i = 0; i < NTHREADS; i++) {
    w[i] = (struct worker) { .q = q, .id = i, .fd = fd };
    pthread_create (&t[i], NULL, worker_main, &w[i]);
  }
  for (int i = 0; i < NTHREADS; i++)
    pthread_join (t[i], NULL);
  uring_queue_get_stats (q, &st);
  CHECK_MSG (st.ops == NTHREADS * 80, "%s: ops %lu", uring_queue_engine_name (engine),
             (unsigned long) st.ops);
  if (engine == URING_QUEUE_PER_THREAD)
    CHECK_MSG (st.rings == NTHREADS, "one ring per thread: %u", st.rings);
  uring_queue_free (q);
  /* The stripes now hold random data: reload the reference. */
  CHECK_MSG (pread (fd, expect, FILE_SIZE, 0) == FILE_SIZE, "reload");
}

static int fd = -1;

/* Bad depths are refused with the valid range. */
static void
test_queue_config_refusals (void)
{
  struct uring_queue *q;
  struct uring_queue_config bad = { .engine = URING_QUEUE_SYNC, .depth = 0, .fds = { 0 },
                                    .nfds = 1 };

  CHECK_MSG (uring_queue_new (&q, &bad) == -EINVAL, "depth 0 refused");
  bad.depth = 5000;
  CHECK_MSG (uring_queue_new (&q, &bad) == -EINVAL && strstr (ncr_last_error (), "1-4096"),
             "depth 5000 refused");
}

/* Every claim of this file with one engine. */
static void
run_engine (enum uring_queue_engine engine, unsigned seed)
{
  test_batch_read (engine, fd);
  test_write (engine, fd, seed);
  test_batch_read (engine, fd);
  test_eof (engine, fd);
  test_errors (engine, path);
  test_threads (engine, fd);
}

static void
test_engine_per_thread (void)
{
  run_engine (URING_QUEUE_PER_THREAD, 1);
}

static void
test_engine_shared (void)
{
  /* Valgrind keeps its scheduler lock across io_uring_enter, so the shared engine's
   * completion thread, blocked there, would stop every other thread: not testable there. */
  if (RUNNING_ON_VALGRIND) {
    printf ("shared engine skipped under valgrind\n");
    return;
  }
  run_engine (URING_QUEUE_SHARED, 2);
}

static void
test_engine_sync (void)
{
  run_engine (URING_QUEUE_SYNC, 3);
}

int
main (void)
{
  const char *tmp = getenv ("TMPDIR") ? getenv ("TMPDIR") : "/tmp";
  int r;

  r = uring_queue_probe ();
  if (r == -ENOSYS || r == -EPERM)
    SKIP ("%s", ncr_last_error ());
  CHECK_MSG (r == 0, "uring_queue_probe %d", r);

  snprintf (path, sizeof path, "%s/uring-queue-XXXXXX", tmp);
  fd = mkstemp (path);
  if (fd == -1) {
    perror ("mkstemp");
    return 1;
  }
  expect = malloc (FILE_SIZE);
  fill_random (expect, FILE_SIZE, 42);
  if (pwrite (fd, expect, FILE_SIZE, 0) != FILE_SIZE) {
    perror ("pwrite");
    return 1;
  }

  RUN (test_queue_config_refusals);
  RUN (test_engine_per_thread);
  RUN (test_engine_shared);
  RUN (test_engine_sync);

  close (fd);
  unlink (path);
  free (expect);
  return check_exit ();
}
