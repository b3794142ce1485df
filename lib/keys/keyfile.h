/* SPDX-License-Identifier: BSD-3-Clause */
/* Raw volume key files (key-file=PATH): exactly the cipher's key length, binary, no header. */
#ifndef NBDCRYPT_KEYFILE_H
#define NBDCRYPT_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

/* Read the key in PATH into locked memory (secmem_alloc, size want): the file must hold
 * exactly want bytes. The error message names the file and the expected size, never key
 * bytes. Free *key with secmem_free. Returns 0 or -errno with ncr_last_error() set. */
int ncr_keyfile_read (const char *path, size_t want, uint8_t **key);

struct stat;
/* Like ncr_keyfile_read; *st receives fstat() of the file that was read (to recognise it when
 * it is read again). */
int ncr_keyfile_read_stat (const char *path, size_t want, uint8_t **key, struct stat *st);

#endif /* NBDCRYPT_KEYFILE_H */
