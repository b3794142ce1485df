/* SPDX-License-Identifier: BSD-3-Clause */
/* Printing a decoded KMIP TTLV tree as an indented text tree or as JSON (nbdcrypt ttlv). */
#ifndef KMIP_TTLV_PRINT_H
#define KMIP_TTLV_PRINT_H

#include <stdio.h>

#include "kmip/ttlv.h"

/* One line per node: "Name (Type): value", children indented by two spaces. */
void kmip_ttlv_print_text (FILE *fp, const struct kmip_node *root);

/* One JSON object per node, {"tag": ..., "type": ..., "value": ...}, a Structure's value
 * being the array of its children; the output is one JSON document ending in a newline. */
void kmip_ttlv_print_json (FILE *fp, const struct kmip_node *root);

/* Parse input that is either binary TTLV or hex text (whitespace allowed anywhere). On success
 * *out points to malloc'd binary (or to 'in' itself when it was binary: *owned is false). */
int kmip_ttlv_input_to_binary (const unsigned char *in, size_t len,
                               unsigned char **out, size_t *outlen, int *owned);

#endif /* KMIP_TTLV_PRINT_H */
