/* SPDX-License-Identifier: BSD-3-Clause */
/* The aligned body of a read: one call below then its decryption, or pieces (filter-read.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "errors.h"
#include "filter-read.h"
#include "minmax.h"
#include "xts.h"

static uint32_t piece_size = FILTER_READ_PIECE;
static pthread_once_t piece_once = PTHREAD_ONCE_INIT;

/* NBDCRYPT_READ_PIECE: the benchmarks' piece size; a value that is not a number below 4 GiB
 * leaves the default. */
static void
read_piece_env (void)
{
  const char *s = getenv ("NBDCRYPT_READ_PIECE");
  char *end;
  unsigned long long v;

  if (!s || !*s)
    return;
  errno = 0;
  v = strtoull (s, &end, 0);
  if (errno == 0 && *end == '\0' && v <= UINT32_MAX)
    piece_size = v;
}

/* One call below for [p, p + n), then its decryption. */
static int
read_decrypt (nbdkit_next *next, struct ncr_xts *xts, uint8_t *p, uint32_t n,
              uint64_t below_offset, uint64_t first_sector, uint32_t flags, int *err)
{
  int r;

  if (next->pread (next, p, n, below_offset, flags, err) == -1)
    return -1;
  if ((r = ncr_xts_decrypt (xts, first_sector, p, p, n)) < 0) {
    nbdkit_error ("nbdcrypt: %s", ncr_last_error ());
    *err = -r;
    return -1;
  }
  return 0;
}

int
filter_read_body (nbdkit_next *next, struct ncr_xts *xts, uint8_t *p, uint32_t n,
                  uint64_t below_offset, uint64_t first_sector, unsigned sector_size,
                  uint32_t flags, int *err)
{
  uint32_t piece;

  pthread_once (&piece_once, read_piece_env);
  /* Small bodies stay one call below; a piece is whole sectors. */
  piece = piece_size / sector_size * sector_size;
  if (n <= FILTER_READ_SPLIT_ABOVE || piece == 0 || piece >= n)
    return read_decrypt (next, xts, p, n, below_offset, first_sector, flags, err);

  /* The plugin writes a piece into p, and it is decrypted while those bytes are still in
   * this core's cache. */
  while (n > 0) {
    uint32_t len = MIN (n, piece);

    if (read_decrypt (next, xts, p, len, below_offset, first_sector, flags, err) == -1)
      return -1;
    p += len;
    n -= len;
    below_offset += len;
    first_sector += len / sector_size;
  }
  return 0;
}
