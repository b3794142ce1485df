/* SPDX-License-Identifier: BSD-3-Clause */
/* A main() for libFuzzer targets in builds without libFuzzer (gcc, valgrind): runs the entry
 * point once over every file named on the command line, directories included (one level), so
 * the seed corpus is exercised by every build. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
replay_file (const char *path)
{
  FILE *fp = fopen (path, "rb");
  if (fp == NULL) {
    fprintf (stderr, "%s: %s\n", path, strerror (errno));
    return -1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc (cap);
  size_t n;
  while (buf && (n = fread (buf + len, 1, cap - len, fp)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *nb = realloc (buf, cap *= 2);
      if (nb == NULL)
        free (buf);
      buf = nb;
    }
  }
  fclose (fp);
  if (buf == NULL) {
    fprintf (stderr, "%s: out of memory\n", path);
    return -1;
  }
  LLVMFuzzerTestOneInput (buf, len);
  free (buf);
  return 0;
}

int
main (int argc, char **argv)
{
  unsigned files = 0;
  int rc = 0;

  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat (argv[i], &st) < 0) {
      fprintf (stderr, "%s: %s\n", argv[i], strerror (errno));
      return 1;
    }
    if (!S_ISDIR (st.st_mode)) {
      rc |= replay_file (argv[i]) < 0;
      files++;
      continue;
    }
    DIR *dir = opendir (argv[i]);
    struct dirent *d;
    while (dir && (d = readdir (dir)) != NULL) {
      if (d->d_name[0] == '.')
        continue;
      char path[4096];
      snprintf (path, sizeof path, "%s/%s", argv[i], d->d_name);
      rc |= replay_file (path) < 0;
      files++;
    }
    if (dir)
      closedir (dir);
  }
  if (files == 0) {
    fprintf (stderr, "%s: no input files\n", argv[0]);
    return 1;
  }
  printf ("%s: replayed %u inputs\n", argv[0], files);
  return rc;
}
