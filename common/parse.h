/* SPDX-License-Identifier: BSD-3-Clause */
/* Strict parsers for option values (filter parameters, command options): the whole string
 * must be the value, or the call fails with -EINVAL/-ERANGE and a message that quotes it.
 * The messages name no option: the caller puts the option in front (ncr_error_prefix). */
#ifndef NBDCRYPT_PARSE_H
#define NBDCRYPT_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/* The set nbdkit_parse_bool accepts, case-insensitive: 1/0, true/false, t/f, yes/no, y/n,
 * on/off. */
int ncr_parse_bool (const char *s, bool *out);

/* Decimal digits only (no sign, blank, base prefix or suffix), value 0..max. */
int ncr_parse_uint (const char *s, uint64_t max, uint64_t *out);

/* Like ncr_parse_uint, with an optional binary suffix K, M or G (either case). */
int ncr_parse_size (const char *s, uint64_t max, uint64_t *out);

#endif /* NBDCRYPT_PARSE_H */
