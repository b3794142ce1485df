/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt kms: talk to a KMIP server with the kms.conf settings (versions, query, create,
 * get, locate, attrs, activate, revoke, destroy, register, and a few more for debugging). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmip/kmip.h"
#include "commands.h"
#include "kms-common.h"
#include "secmem.h"


static void
usage (FILE *fp)
{
  fprintf (fp,
"usage: nbdcrypt kms [--config FILE] [--kmip-version X.Y] COMMAND [ARGS]\n"
"  versions                          negotiated version and the versions the server lists\n"
"  query                             server vendor, operations and object types\n"
"  create [--name N] [--length 256] [--activate] [--out FILE]   create an AES key; prints\n"
"                                    its UID (--out: its bytes too, fetched in the same message)\n"
"  get UID --out FILE [--format raw|transparent]   key bytes to a new 0600 file\n"
"  locate [--name N] [--state S] [--type T] [--max N] [--offset N]   one UID per line\n"
"  attrs UID [--json]                state, algorithm, length, names\n"
"  attr-list UID                     names of the object's attributes\n"
"  set-attr UID NAME VALUE [--modify]   add (or modify) Name or a custom x- attribute\n"
"  activate UID | destroy UID | rekey UID\n"
"  revoke UID [--reason compromised|superseded|ceased] [--message TEXT]\n"
"  register --in FILE [--name N] [--secret-data]   prints the UID\n"
"  encrypt|decrypt UID --in FILE --out FILE --iv HEX [--mode cbc|ctr|gcm] [--aad HEX]\n"
"                                    server-side AES (KMIP >= 1.2; gcm: >= 1.4, a 16-byte\n"
"                                    tag after the ciphertext)\n"
"FILE for --in may be '-' (stdin). The default config is %s.\n", KMS_DEFAULT_CONFIG);
}

enum {
  OPT_NAME = 256, OPT_LENGTH, OPT_ACTIVATE, OPT_OUT, OPT_IN, OPT_FORMAT, OPT_STATE, OPT_TYPE,
  OPT_MAX, OPT_OFFSET, OPT_JSON, OPT_REASON, OPT_MESSAGE, OPT_SECRET, OPT_IV, OPT_MODE,
  OPT_MODIFY, OPT_KVER, OPT_AAD,
};

static const struct option long_opts[] = {
  { "config", required_argument, NULL, 'c' },
  { "help", no_argument, NULL, 'h' },
  { "kmip-version", required_argument, NULL, OPT_KVER },
  { "name", required_argument, NULL, OPT_NAME },
  { "length", required_argument, NULL, OPT_LENGTH },
  { "activate", no_argument, NULL, OPT_ACTIVATE },
  { "out", required_argument, NULL, OPT_OUT },
  { "in", required_argument, NULL, OPT_IN },
  { "format", required_argument, NULL, OPT_FORMAT },
  { "state", required_argument, NULL, OPT_STATE },
  { "type", required_argument, NULL, OPT_TYPE },
  { "max", required_argument, NULL, OPT_MAX },
  { "offset", required_argument, NULL, OPT_OFFSET },
  { "json", no_argument, NULL, OPT_JSON },
  { "reason", required_argument, NULL, OPT_REASON },
  { "message", required_argument, NULL, OPT_MESSAGE },
  { "secret-data", no_argument, NULL, OPT_SECRET },
  { "iv", required_argument, NULL, OPT_IV },
  { "mode", required_argument, NULL, OPT_MODE },
  { "aad", required_argument, NULL, OPT_AAD },
  { "modify", no_argument, NULL, OPT_MODIFY },
  { NULL, 0, NULL, 0 },
};

int
cmd_kms (int argc, char **argv)
{
  struct kms_opts o = { .config = KMS_DEFAULT_CONFIG };
  struct kmip_client *client = NULL;
  const char *sub;
  int c, r;

  optind = 1;
  while ((c = getopt_long (argc, argv, "c:h", long_opts, NULL)) != -1) {
    switch (c) {
    case 'c': o.config = optarg; break;
    case 'h': usage (stdout); return 0;
    case OPT_KVER: o.kmip_version = optarg; break;
    case OPT_AAD: o.aad = optarg; break;
    case OPT_NAME: o.name = optarg; break;
    case OPT_LENGTH: o.length = optarg; break;
    case OPT_ACTIVATE: o.activate = true; break;
    case OPT_OUT: o.out = optarg; break;
    case OPT_IN: o.in = optarg; break;
    case OPT_FORMAT: o.format = optarg; break;
    case OPT_STATE: o.state = optarg; break;
    case OPT_TYPE: o.type = optarg; break;
    case OPT_MAX: o.max = optarg; break;
    case OPT_OFFSET: o.offset = optarg; break;
    case OPT_JSON: o.json = true; break;
    case OPT_REASON: o.reason = optarg; break;
    case OPT_MESSAGE: o.message = optarg; break;
    case OPT_SECRET: o.secret_data = true; break;
    case OPT_IV: o.iv = optarg; break;
    case OPT_MODE: o.mode = optarg; break;
    case OPT_MODIFY: o.modify = true; break;
    default:
      fprintf (stderr, "nbdcrypt kms: bad option; try 'nbdcrypt kms --help'\n");
      return 2;
    }
  }
  if (optind >= argc) {
    usage (stderr);
    return 2;
  }
  sub = argv[optind++];
  o.args = argv + optind;
  o.nargs = argc - optind;

  const struct kms_subcommand *cmd = kms_find_subcommand (sub);
  if (cmd == NULL) {
    fprintf (stderr, "nbdcrypt kms: unknown command '%s'; try 'nbdcrypt kms --help'\n", sub);
    return 2;
  }
  if (o.nargs != cmd->nargs) {
    fprintf (stderr, "nbdcrypt kms %s: expected %d argument%s, got %d\n", sub, cmd->nargs,
             cmd->nargs == 1 ? "" : "s", o.nargs);
    return 2;
  }
  /* Keys pass through this process: keep them out of core dumps. */
  secmem_protect_process (false);
  r = kms_open_client (&o, &client);
  if (r == 0)
    r = cmd->run (client, &o);
  if (r < 0)
    fprintf (stderr, "nbdcrypt kms %s: %s\n", sub, ncr_last_error ());
  kmip_client_free (client);
  return r < 0 ? 1 : 0;
}
