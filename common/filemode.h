/* SPDX-License-Identifier: BSD-3-Clause */
/* Warn about secret files other users can read (as ssh and cryptsetup do): the library only
 * words the warning; the filter logs it and the command prints it. */
#ifndef NBDCRYPT_FILEMODE_H
#define NBDCRYPT_FILEMODE_H

#include <stdbool.h>
#include <stddef.h>

struct stat;

/* If st (a regular file holding a secret: a key, a KEK, a client key, a KMS configuration)
 * is readable by its group or by others, append a warning naming `what` and path to buf
 * (separated by "; " from what buf already holds) and return true. */
bool ncr_secret_file_warning (const char *what, const char *path, const struct stat *st,
                              char *buf, size_t size);

/* The same for a path (stat follows symlinks): a file that cannot be stat'ed gives no
 * warning, opening it will say why. */
bool ncr_secret_path_warning (const char *what, const char *path, char *buf, size_t size);

#endif /* NBDCRYPT_FILEMODE_H */
