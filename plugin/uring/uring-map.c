/* SPDX-License-Identifier: BSD-3-Clause */
/* Buffered reads from a shared read-only mapping of the file, SIGBUS caught per copy
 * (see uring-map.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "errors.h"
#include "uring-map.h"

struct uring_map {
  char *base;
  uint64_t len;
  dev_t dev;
  ino_t ino;
  unsigned refs;              /* users, plus one while it is `current` */
  struct uring_map *next;     /* `maps` */
};

/* The copy in progress in this thread: a SIGBUS at an address inside [lo, hi) ends it. */
struct guard {
  sigjmp_buf jb;
  const char *lo, *hi;
};
static __thread struct guard *volatile active;

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static int handler_err;
static struct sigaction previous;
static bool installed;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Every mapping in use, one per file (dir= serves many); `current`, the one made last, is
 * kept while no connection uses it, so that reconnecting to one file does not map it again. */
static struct uring_map *maps;
static struct uring_map *current;

static void
on_sigbus (int sig, siginfo_t *si, void *uc)
{
  struct guard *g = active;
  const char *addr = si ? si->si_addr : NULL;

  if (g && addr >= g->lo && addr < g->hi) {
    active = NULL;
    siglongjmp (g->jb, 1);
  }
  /* Not ours: do what the handler before us would have done. */
  if (previous.sa_flags & SA_SIGINFO) {
    previous.sa_sigaction (sig, si, uc);
    return;
  }
  if (previous.sa_handler == SIG_IGN)
    return;
  if (previous.sa_handler != SIG_DFL) {
    previous.sa_handler (sig);
    return;
  }
  /* The default action: restore it; a fault re-executes and raises it, a sent signal is
   * raised again here. */
  sigaction (SIGBUS, &previous, NULL);
  if (si == NULL || si->si_code <= 0)
    raise (sig);
}

static void
install_handler (void)
{
  struct sigaction sa;

  memset (&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  /* SA_NODEFER: SIGBUS stays unblocked while the handler runs, so leaving it by
   * siglongjmp (which restores no signal mask) leaves the thread's mask as it was. */
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset (&sa.sa_mask);
  if (sigaction (SIGBUS, &sa, &previous) == -1)
    handler_err = errno;
  else
    installed = true;
}

/* Called with `lock` held. */
static void
drop (struct uring_map *m)
{
  if (--m->refs == 0) {
    for (struct uring_map **pp = &maps; *pp != NULL; pp = &(*pp)->next)
      if (*pp == m) {
        *pp = m->next;
        break;
      }
    munmap (m->base, m->len);
    free (m);
  }
}

int
uring_map_get (struct uring_map **mp, int fd, const struct stat *st, uint64_t size)
{
  struct uring_map *m;
  void *base;
  int err;

  *mp = NULL;
  if (size == 0 || size > (uint64_t) SIZE_MAX / 2)
    return ncr_error (EINVAL, "cannot map a file of %" PRIu64 " bytes", size);
  pthread_once (&handler_once, install_handler);
  if (handler_err)
    return ncr_error (handler_err, "cannot install a SIGBUS handler: %s",
                      strerror (handler_err));
  pthread_mutex_lock (&lock);
  for (m = maps; m != NULL; m = m->next)
    if (m->dev == st->st_dev && m->ino == st->st_ino && m->len >= size) {
      m->refs++;
      *mp = m;
      pthread_mutex_unlock (&lock);
      return 0;
    }
  base = mmap (NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    err = errno;
    pthread_mutex_unlock (&lock);
    return ncr_error (err, "cannot map %" PRIu64 " bytes of the file: %s", size,
                      strerror (err));
  }
  m = calloc (1, sizeof *m);
  if (m == NULL) {
    munmap (base, size);
    pthread_mutex_unlock (&lock);
    return ncr_error (ENOMEM, "out of memory");
  }
  *m = (struct uring_map) { .base = base, .len = size, .dev = st->st_dev, .ino = st->st_ino,
                            .refs = 2, .next = maps };
  maps = m;
  if (current)
    drop (current);
  current = m;
  *mp = m;
  pthread_mutex_unlock (&lock);
  return 0;
}

void
uring_map_put (struct uring_map *m)
{
  if (m == NULL)
    return;
  pthread_mutex_lock (&lock);
  drop (m);
  pthread_mutex_unlock (&lock);
}

uint64_t
uring_map_size (const struct uring_map *m)
{
  return m->len;
}

int
uring_map_read (const struct uring_map *m, void *buf, size_t len, uint64_t offset)
{
  struct guard g = { .lo = m->base + offset, .hi = m->base + offset + len };

  if (sigsetjmp (g.jb, 0) != 0)
    return -EFAULT;
  active = &g;
  __atomic_signal_fence (__ATOMIC_SEQ_CST);
  memcpy (buf, m->base + offset, len);
  __atomic_signal_fence (__ATOMIC_SEQ_CST);
  active = NULL;
  return 0;
}

/* When the plugin is unloaded: the last mapping goes, and SIGBUS goes back to the handler
 * it had, which must not point into unmapped code. */
__attribute__ ((destructor)) static void
uring_map_fini (void)
{
  pthread_mutex_lock (&lock);
  if (current) {
    drop (current);
    current = NULL;
  }
  pthread_mutex_unlock (&lock);
  if (installed)
    sigaction (SIGBUS, &previous, NULL);
}
