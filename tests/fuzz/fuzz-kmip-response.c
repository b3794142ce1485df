/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the kmip-client response layer over arbitrary bytes, as a hostile server
 * would send them: message shape checks, per-item result checks with verbatim messages, and
 * the payload readers of every operation (key material at any batch position, attributes in
 * both encodings with 2.0 Vendor Attributes, versions). Seeds: real pykmip-server responses
 * (make-corpus-kmip-response.py), plus batch-create-activate-get.ttlv (the fake placeholder
 * server's answer) and v2_0-get-attributes-vendor.ttlv (Vendor Attributes, written by hand). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct kmip_resp resp;
  uint8_t key[64];
  uint16_t versions[8];

  if (kmip_resp_parse (data, size, 1 << 20, &resp) < 0)
    return 0;
  for (size_t i = 0; i <= resp.nitems; i++) {   /* one past the end on purpose */
    uint32_t op = i < resp.nitems && resp.items[i].operation ? resp.items[i].operation
                                                             : KMIP_OPERATION_GET;
    (void) kmip_resp_check (&resp, i, op);
  }
  for (size_t i = 0; i < resp.nitems; i++) {
    const struct kmip_node *p = resp.items[i].payload;
    struct kmip_attrs a;
    (void) kmip_parse_versions (p, versions, sizeof versions / sizeof versions[0]);
    if (kmip_decode_attrs (p, resp.version, &a) == 0)
      kmip_attrs_free (&a);
    if (kmip_decode_attrs (p, KMIP_V (2, 0), &a) == 0)
      kmip_attrs_free (&a);
    (void) kmip_extract_key_at (&resp, i, "fuzz", key, sizeof key);   /* batched Gets */
  }
  (void) kmip_extract_key (&resp, "fuzz", key, sizeof key);
  (void) kmip_extract_key (&resp, "fuzz", key, 16);
  kmip_resp_free (&resp);
  return 0;
}
