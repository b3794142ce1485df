/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt: the command-line tool. Dispatches to one subcommand per file (cmd-*.c). */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
  const char *name;
  int (*run) (int argc, char **argv);
  const char *summary;
} commands[] = {
  { "format", cmd_format, "create an encrypted volume header (envelope-encrypted data key)" },
  { "dump",   cmd_dump,   "show a volume header; optionally write out the volume key" },
  { "rewrap", cmd_rewrap, "rotate the key-encryption key without touching data" },
  { "add-kek", cmd_add_kek, "add a keyslot: the data key wrapped under one more KEK" },
  { "remove-kek", cmd_remove_kek, "remove a keyslot (never the last)" },
  { "reencrypt", cmd_reencrypt, "replace the data key and re-encrypt all data (resumable)" },
  { "verify", cmd_verify, "check KMS reachability, KEK state and the key check value" },
  { "header", cmd_header, "back up or restore the volume header copies (as luksHeaderBackup)" },
  { "kms",    cmd_kms,    "talk to a KMIP server (versions, query, create, get, ...)" },
  { "ttlv",   cmd_ttlv,   "decode a KMIP TTLV message (hex or binary) for debugging" },
};

static void
usage (FILE *fp)
{
  fprintf (fp, "usage: nbdcrypt COMMAND [ARGS...]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf (fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf (fp, "\n'nbdcrypt COMMAND --help' describes each command; "
           "'nbdcrypt --version' prints the version.\n");
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    usage (stderr);
    return 2;
  }
  if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0) {
    usage (stdout);
    return 0;
  }
  if (strcmp (argv[1], "--version") == 0 || strcmp (argv[1], "-V") == 0) {
    printf ("nbdcrypt %s\n", NBDCRYPT_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp (argv[1], commands[i].name) == 0)
      return commands[i].run (argc - 1, argv + 1);
  fprintf (stderr, "nbdcrypt: unknown command '%s'; try 'nbdcrypt --help'\n", argv[1]);
  return 2;
}
