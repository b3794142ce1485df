/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt format: SCAFFOLD, replaced by the real implementation. */
#include <stdio.h>

#include "commands.h"

int
cmd_format (int argc, char **argv)
{
  (void) argc; (void) argv;
  fprintf (stderr, "nbdcrypt format: not implemented yet\n");
  return 1;
}
