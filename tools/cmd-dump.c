/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt dump: SCAFFOLD, replaced by the real implementation. */
#include <stdio.h>

#include "commands.h"

int
cmd_dump (int argc, char **argv)
{
  (void) argc; (void) argv;
  fprintf (stderr, "nbdcrypt dump: not implemented yet\n");
  return 1;
}
