/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: the per-thread error message: ncr_error may quote the current message (its
 * own buffer) and ncr_error_prefix puts context in front of it, both without overlapping
 * copies; long messages are cut, not overrun; each thread has its own message. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "errors.h"
#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"


static void
returns_negative_errno (void)
{
  CHECK_MSG (ncr_error (EINVAL, "bad %d", 1) == -EINVAL, "ncr_error returns -errnum");
  CHECK_MSG (strcmp (ncr_last_error (), "bad 1") == 0, "message recorded");
  CHECK_MSG (ncr_error (0, "x") == -EIO && ncr_error (-3, "x") == -EIO, "non-positive -> -EIO");
}

static void
quotes_its_own_message (void)
{
  ncr_error (EIO, "permission denied");
  CHECK_MSG (ncr_error (EACCES, "%s", ncr_last_error ()) == -EACCES, "errno");
  CHECK_MSG (strcmp (ncr_last_error (), "permission denied") == 0, "self copy unchanged");
  ncr_error (EIO, "%s; and then %s", ncr_last_error (), ncr_last_error ());
  CHECK_MSG (strcmp (ncr_last_error (), "permission denied; and then permission denied") == 0,
         "self quoted twice");
}

static void
prefix_puts_context_first (void)
{
  ncr_error (EACCES, "permission denied");
  CHECK_MSG (ncr_error_prefix (EACCES, "opening %s: ", "vol.img") == -EACCES, "errno");
  CHECK_MSG (strcmp (ncr_last_error (), "opening vol.img: permission denied") == 0, "prefixed");
  ncr_error_prefix (EACCES, "kek-file=%s: ", ncr_last_error ());
  CHECK_MSG (strcmp (ncr_last_error (), "kek-file=opening vol.img: permission denied: opening "
                 "vol.img: permission denied") == 0, "prefix quoting the message itself");
}

static void
long_messages_are_cut (void)
{
  char big[3000];

  memset (big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ncr_error (EIO, "%s", big);
  size_t n = strlen (ncr_last_error ());
  CHECK_MSG (n > 500 && n < sizeof big, "cut at the buffer size (%zu)", n);
  ncr_error_prefix (EIO, "%s", big);
  CHECK_MSG (strlen (ncr_last_error ()) == n, "a long prefix is cut too");
  ncr_error (EIO, "short");
  ncr_error_prefix (EIO, "%s: ", big);
  CHECK_MSG (strlen (ncr_last_error ()) == n, "prefix longer than the buffer");
}

static void *
other_thread (void *arg)
{
  (void) arg;
  ncr_error (EIO, "thread message");
  return NULL;
}

static void
per_thread (void)
{
  pthread_t t;

  ncr_error (EIO, "main message");
  pthread_create (&t, NULL, other_thread, NULL);
  pthread_join (t, NULL);
  CHECK_MSG (strcmp (ncr_last_error (), "main message") == 0, "threads do not share messages");
}

int
main (void)
{
  RUN (returns_negative_errno);
  RUN (quotes_its_own_message);
  RUN (prefix_puts_context_first);
  RUN (long_messages_are_cut);
  RUN (per_thread);
  return check_exit ();
}
