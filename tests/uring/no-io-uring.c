/* SPDX-License-Identifier: BSD-3-Clause */
/* Test helper: run a command where io_uring_setup fails (seccomp), as on a kernel without
 * io_uring (ENOSYS) or with it disabled (EPERM).  Usage: no-io-uring ENOSYS|EPERM CMD ARGS... */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int
main (int argc, char *argv[])
{
  int err;

  if (argc < 3 || (strcmp (argv[1], "ENOSYS") && strcmp (argv[1], "EPERM"))) {
    fprintf (stderr, "usage: no-io-uring ENOSYS|EPERM CMD [ARGS...]\n");
    return 2;
  }
  err = strcmp (argv[1], "ENOSYS") == 0 ? ENOSYS : EPERM;
  struct sock_filter filter[] = {
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr)),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { .len = sizeof filter / sizeof filter[0], .filter = filter };

  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
      prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == -1) {
    perror ("no-io-uring: seccomp");
    return 77;
  }
  execvp (argv[2], &argv[2]);
  perror (argv[2]);
  return 127;
}
