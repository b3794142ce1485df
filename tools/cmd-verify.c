/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt verify: SCAFFOLD, replaced by the real implementation. */
#include <stdio.h>

#include "commands.h"

int
cmd_verify (int argc, char **argv)
{
  (void) argc; (void) argv;
  fprintf (stderr, "nbdcrypt verify: not implemented yet\n");
  return 1;
}
