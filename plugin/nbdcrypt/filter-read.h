/* SPDX-License-Identifier: BSD-3-Clause */
/* The aligned body of a read: ciphertext from the plugin below, decrypted in place.
 *
 * It can be read and decrypted in pieces, each piece decrypted right after the plugin has
 * written it, while its bytes are still in this core's cache, instead of one call below for
 * the whole body and then one decrypt pass over it. Measured (docs/perf.md, "Large reads"),
 * that gained nothing over the page cache on a CPU where the cipher, not memory, limits the
 * decrypt pass (VAES on 256-bit registers, ~8 GB/s), and cost ~17% over O_DIRECT (the pieces
 * of one request reach the device one after another): so by default the body is one call
 * below, whatever its size. NBDCRYPT_READ_PIECE in nbdkit's environment turns the pieces on,
 * to measure them again on other hardware (perf/read-ab.sh). */
#ifndef NBDCRYPT_FILTER_READ_H
#define NBDCRYPT_FILTER_READ_H

#include <stdint.h>

#include <nbdkit-filter.h>

struct ncr_xts;

/* Piece size when NBDCRYPT_READ_PIECE does not say (0: never split), and the size above which
 * a body is split at all (small requests always stay one call below). */
#define FILTER_READ_PIECE 0
#define FILTER_READ_SPLIT_ABOVE (256 * 1024)

/* Read n bytes of ciphertext (a whole number of sectors, n > 0) from the plugin below at
 * byte offset below_offset (= data offset + export offset) into p, and decrypt them in place
 * with xts, the first sector having index first_sector. flags go with every call below.
 * NBDCRYPT_READ_PIECE (bytes, rounded down to whole sectors; 0: never split), read once,
 * overrides the piece size. Returns 0, or -1 with *err set and the
 * error logged by nbdkit_error; on error p holds an undefined mix of plaintext and
 * ciphertext (never returned to the client: nbdkit sends only the error). */
int filter_read_body (nbdkit_next *next, struct ncr_xts *xts, uint8_t *p, uint32_t n,
                      uint64_t below_offset, uint64_t first_sector, unsigned sector_size,
                      uint32_t flags, int *err);

#endif /* NBDCRYPT_FILTER_READ_H */
