/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the volume header parser over arbitrary bytes. Whatever parses must
 * validate and re-encode to exactly the same bytes (the encoding is canonical), in every
 * version still read (1: key check value, 2: header MAC, 3: keyslots; seeds of each, with a
 * four-slot header at the longest KEK ids and wrapped keys), and be the same volume as itself.
 * Input: one control byte, then the header area. Control bit 0 set: the SHA-256 checksum is
 * recomputed first, so the fuzzer gets past it and exercises every field check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "volume-header.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct volume_header h;
  uint8_t buf[VH_AREA_SIZE];
  char why[120];
  uint8_t *copy;
  size_t n;

  if (size < 1)
    return 0;
  n = size - 1;
  /* Exact-size heap copy, so ASan sees any read past the end of a short input. */
  copy = malloc (n ? n : 1);
  if (copy == NULL)
    return 0;
  memcpy (copy, data + 1, n);
  if ((data[0] & 1) && n >= VH_AREA_SIZE)
    SHA256 (copy, VH_AREA_SIZE - 32, copy + VH_AREA_SIZE - 32);
  for (unsigned i = 0; i < 2; i++) {
    if (volume_header_parse (copy, n, i, &h) == 0) {
      if (volume_header_validate (&h) != 0 ||
          volume_header_encode (&h, buf, sizeof buf) != 0 ||
          memcmp (buf, copy, VH_AREA_SIZE) != 0 ||
          !volume_header_same_volume (&h, &h, why, sizeof why))
        abort ();
    }
  }
  free (copy);
  return 0;
}
