/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer target: the KMIP TTLV decoder, lookups, re-encoder and `nbdcrypt ttlv` printers
 * over arbitrary bytes. Invariant checked: whatever decodes re-encodes to exactly the input
 * (the decoder accepts only canonical TTLV: zero padding, fixed sizes, booleans 0/1). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmip/ttlv.h"
#include "kmip/ttlv-print.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static FILE *devnull;

/* The lookups the operation layer does on a response; results are discarded, the point is
 * that none of them reads out of bounds on a hostile tree. */
static void
walk_like_a_client (const struct kmip_node *root)
{
  const struct kmip_node *item, *n;
  const char *s;
  const uint8_t *p;
  size_t len;
  uint32_t u;
  int32_t i;

  (void) kmip_get_int (kmip_find_path (root, KMIP_TAG_RESPONSE_HEADER,
                                       KMIP_TAG_PROTOCOL_VERSION, 0),
                       KMIP_TAG_PROTOCOL_VERSION_MAJOR, &i);
  for (item = kmip_find (root, KMIP_TAG_BATCH_ITEM); item; item = kmip_find_next (item)) {
    (void) kmip_get_enum (item, KMIP_TAG_OPERATION, &u);
    (void) kmip_get_enum (item, KMIP_TAG_RESULT_STATUS, &u);
    (void) kmip_get_text (item, KMIP_TAG_RESULT_MESSAGE, &s, &len);
    n = kmip_find (item, KMIP_TAG_RESPONSE_PAYLOAD);
    (void) kmip_get_text (n, KMIP_TAG_UNIQUE_IDENTIFIER, &s, &len);
    n = kmip_find_path (n, KMIP_TAG_SYMMETRIC_KEY, KMIP_TAG_KEY_BLOCK, KMIP_TAG_KEY_VALUE, 0);
    (void) kmip_get_bytes (n, KMIP_TAG_KEY_MATERIAL, &p, &len);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  unsigned char *bin;
  size_t binlen;
  int owned;
  struct kmip_tree *t;
  struct kmip_enc e;
  const uint8_t *out;
  size_t outlen;

  if (devnull == NULL && (devnull = fopen ("/dev/null", "w")) == NULL)
    abort ();

  /* Exact-size heap copy, so ASan sees any read past the end. */
  uint8_t *copy = malloc (size ? size : 1);
  if (copy == NULL)
    return 0;
  memcpy (copy, data, size);

  /* As `nbdcrypt ttlv` reads it: hex text or binary. */
  if (kmip_ttlv_input_to_binary (copy, size, &bin, &binlen, &owned) == 0) {
    if (kmip_decode (bin, binlen, NULL, &t) == 0) {
      walk_like_a_client (t->root);
      kmip_enc_init (&e);
      if (kmip_enc_node (&e, t->root) < 0 || kmip_enc_finish (&e, &out, &outlen) < 0 ||
          outlen != binlen || memcmp (out, bin, binlen) != 0) {
        fprintf (stderr, "decoded input did not re-encode to the same bytes\n");
        abort ();
      }
      kmip_enc_free (&e);
      kmip_ttlv_print_json (devnull, t->root);
      kmip_ttlv_print_text (devnull, t->root);
      kmip_tree_free (t);
    }
    if (owned)
      free (bin);
  }

  /* The frame check a transport does on the first 8 bytes. */
  size_t total;
  if (size >= KMIP_TTLV_HEADER_SIZE)
    (void) kmip_ttlv_frame_length (copy, 0, &total);

  free (copy);
  return 0;
}
