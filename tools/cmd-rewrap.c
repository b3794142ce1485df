/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt rewrap: SCAFFOLD, replaced by the real implementation. */
#include <stdio.h>

#include "commands.h"

int
cmd_rewrap (int argc, char **argv)
{
  (void) argc; (void) argv;
  fprintf (stderr, "nbdcrypt rewrap: not implemented yet\n");
  return 1;
}
