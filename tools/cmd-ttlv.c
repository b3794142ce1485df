/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt ttlv: decode a KMIP TTLV message (hex text or binary) and print it as a tree or JSON. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "commands.h"
#include "volume-common.h"
#include "kmip/ttlv-print.h"

/* Hex text is at most twice the binary plus whitespace; anything bigger than this cannot
 * decode under the 1 MiB message cap anyway, so refuse before reading it all. */
#define MAX_INPUT (8 * KMIP_DEFAULT_MAX_MESSAGE)

static void
usage (FILE *fp)
{
  fprintf (fp,
           "usage: nbdcrypt ttlv [--json] [FILE|-]\n"
           "Decode one KMIP TTLV message and print it with KMIP tag names.\n"
           "The input (default: standard input) is binary TTLV or hex text; whitespace in hex\n"
           "is ignored. --json prints one object per item: {\"tag\", \"type\", \"value\"}.\n");
}

static int
read_all (FILE *fp, unsigned char **out, size_t *outlen)
{
  size_t cap = 4096, len = 0;
  unsigned char *buf = malloc (cap);

  if (buf == NULL)
    return -ENOMEM;
  for (;;) {
    if (len == cap) {
      if (cap >= MAX_INPUT) {
        free (buf);
        return -EFBIG;
      }
      unsigned char *nb = realloc (buf, cap * 2);
      if (nb == NULL) {
        free (buf);
        return -ENOMEM;
      }
      buf = nb;
      cap *= 2;
    }
    size_t n = fread (buf + len, 1, cap - len, fp);
    len += n;
    if (n == 0) {
      if (ferror (fp)) {
        free (buf);
        return -EIO;
      }
      break;
    }
  }
  *out = buf;
  *outlen = len;
  return 0;
}

int
cmd_ttlv (int argc, char **argv)
{
  static const struct option opts[] = {
    { "json", no_argument, NULL, 'j' },
    TOOL_END_OPTIONS,
  };
  bool json = false;
  int c;

  optind = 1;
  while ((c = getopt_long (argc, argv, "jh", opts, NULL)) != -1) {
    switch (c) {
    case 'j': json = true; break;
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
  }
  if (argc - optind > 1) {
    fprintf (stderr, "nbdcrypt ttlv: one input file at most; see 'nbdcrypt ttlv --help'\n");
    return 2;
  }
  const char *path = optind < argc ? argv[optind] : "-";

  CLEANUP_FCLOSE FILE *fp = NULL;
  FILE *in = stdin;
  if (strcmp (path, "-") != 0) {
    fp = fopen (path, "rb");
    if (fp == NULL) {
      fprintf (stderr, "nbdcrypt ttlv: %s: %m\n", path);
      return 1;
    }
    in = fp;
  }

  CLEANUP_FREE unsigned char *raw = NULL;
  size_t rawlen;
  int r = read_all (in, &raw, &rawlen);
  if (r < 0) {
    if (r == -EFBIG)
      fprintf (stderr, "nbdcrypt ttlv: %s: input larger than %d bytes, not a KMIP message\n",
               path, MAX_INPUT);
    else
      fprintf (stderr, "nbdcrypt ttlv: %s: %s\n", path, strerror (-r));
    return 1;
  }
  if (rawlen == 0) {
    fprintf (stderr, "nbdcrypt ttlv: %s: empty input\n", path);
    return 1;
  }

  unsigned char *bin;
  size_t binlen;
  int owned;
  if (kmip_ttlv_input_to_binary (raw, rawlen, &bin, &binlen, &owned) < 0) {
    fprintf (stderr, "nbdcrypt ttlv: %s: %s\n", path, kmip_last_error ());
    return 1;
  }

  struct kmip_tree *tree;
  r = kmip_decode (bin, binlen, NULL, &tree);
  if (owned)
    free (bin);
  if (r < 0) {
    fprintf (stderr, "nbdcrypt ttlv: %s: %s\n", path, kmip_last_error ());
    return 1;
  }
  if (json)
    kmip_ttlv_print_json (stdout, tree->root);
  else
    kmip_ttlv_print_text (stdout, tree->root);
  kmip_tree_free (tree);
  if (fflush (stdout) == EOF || ferror (stdout)) {
    fprintf (stderr, "nbdcrypt ttlv: writing the output: %m\n");
    return 1;
  }
  return 0;
}
