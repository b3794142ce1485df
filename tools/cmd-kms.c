/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt kms: SCAFFOLD, replaced by the real implementation. */
#include <stdio.h>

#include "commands.h"

int
cmd_kms (int argc, char **argv)
{
  (void) argc; (void) argv;
  fprintf (stderr, "nbdcrypt kms: not implemented yet\n");
  return 1;
}
