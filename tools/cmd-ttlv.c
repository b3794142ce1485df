/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt ttlv: SCAFFOLD, replaced by the real implementation. */
#include <stdio.h>

#include "commands.h"

int
cmd_ttlv (int argc, char **argv)
{
  (void) argc; (void) argv;
  fprintf (stderr, "nbdcrypt ttlv: not implemented yet\n");
  return 1;
}
