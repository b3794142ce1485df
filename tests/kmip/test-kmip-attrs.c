/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: custom attributes in both KMIP encodings, byte for byte: a 1.x Attribute named
 * "x-NAME" and its KMIP 2.0 form, a Vendor Attribute (an Attribute structure holding Vendor
 * Identification "x", Attribute Name "NAME", Attribute Value; KMIP 2.0 spec section 4.53,
 * Table 135). The expected bytes below were written by hand from that table and the tag
 * values of section 9.1.3.1, not produced by this library. Decoding of GetAttributes payloads
 * carrying them (2.0 and 1.x), other vendors, and malformed names. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CHECK_LAST_ERROR kmip_last_error
#include "check.h"

static size_t
unhex (const char *s, uint8_t *out, size_t max)
{
  size_t n = 0;
  unsigned v;

  while (*s) {
    if (*s == ' ' || *s == '\n') {
      s++;
      continue;
    }
    if (n == max || sscanf (s, "%2x", &v) != 1)
      abort ();
    out[n++] = (uint8_t) v;
    s += 2;
  }
  return n;
}

/* Encode one attribute inside a New Attribute (2.0) or bare (1.x) and compare. */
static void
check_encoding (uint16_t version, const struct kmip_attr *a, const char *want_hex)
{
  struct kmip_req req = { .version = version };
  uint8_t want[512];
  size_t want_len = unhex (want_hex, want, sizeof want), len = 0;
  const uint8_t *buf = NULL;

  kmip_enc_init (&req.e);
  if (KMIP_ATTRS_V2 (version))
    kmip_enc_begin (&req.e, KMIP_TAG_NEW_ATTRIBUTE);
  CHECK (kmip_enc_attr (&req, a) == 0);
  if (KMIP_ATTRS_V2 (version))
    kmip_enc_end (&req.e);
  CHECK (kmip_enc_finish (&req.e, &buf, &len) == 0);
  CHECK_BYTES_EQ ("encoding", buf, len, want, want_len);
  kmip_enc_free (&req.e);
}

static void
check_refused (const char *name)
{
  struct kmip_req req = { .version = KMIP_V (2, 0) };
  struct kmip_attr a = { .custom = name, .text = "v" };
  const uint8_t *buf;
  size_t len;

  kmip_enc_init (&req.e);
  kmip_enc_begin (&req.e, KMIP_TAG_NEW_ATTRIBUTE);
  CHECK (kmip_enc_attr (&req, &a) == -EINVAL);
  kmip_enc_end (&req.e);
  CHECK (kmip_enc_finish (&req.e, &buf, &len) == 0 && len == 8);   /* nothing inside */
  kmip_enc_free (&req.e);
}

/* Decode a GetAttributes response payload given as hex and check the custom list. */
static void
check_decode (uint16_t version, const char *hex, const char *const *want)
{
  uint8_t buf[1024];
  size_t len = unhex (hex, buf, sizeof buf), n = 0;
  struct kmip_tree *t;
  struct kmip_attrs a;

  CHECK (kmip_decode (buf, len, NULL, &t) == 0);
  CHECK (kmip_decode_attrs (t->root, version, &a) == 0);
  while (want[n])
    n++;
  for (size_t i = 0; i < n; i++)
    CHECK (a.custom && a.custom[i] && strcmp (a.custom[i], want[i]) == 0);
  CHECK ((n == 0 && a.custom == NULL) || (a.custom && a.custom[n] == NULL));
  kmip_attrs_free (&a);
  kmip_tree_free (t);
}

/* Custom attributes encoded as a 2.0 Vendor Attribute and a 1.x "x-" Attribute; standard
 * ones keep their own tag. */
static void
test_custom_attr_encodings (void)
{
  struct kmip_attr x = { .custom = "x-vsphere-id", .text = "abc" };
  struct kmip_attr y = { .custom = "y-srv", .text = "" };

  /* KMIP 2.0: New Attribute { Attribute { Vendor Identification "x", Attribute Name
   * "vsphere-id", Attribute Value "abc" } }. */
  check_encoding (KMIP_V (2, 0), &x,
    "42013D 01 00000040"                                  /* New Attribute, 64 bytes */
    "  420008 01 00000038"                                /* Attribute, 56 bytes */
    "    42009D 07 00000001 78 00000000000000"            /* Vendor Identification "x" */
    "    42000A 07 0000000A 767370686572652d6964 000000000000"  /* Attribute Name */
    "    42000B 07 00000003 616263 0000000000");          /* Attribute Value "abc" */
  /* A server-defined one ("y-") and an empty value. */
  check_encoding (KMIP_V (2, 0), &y,
    "42013D 01 00000030"
    "  420008 01 00000028"
    "    42009D 07 00000001 79 00000000000000"
    "    42000A 07 00000003 737276 0000000000"
    "    42000B 07 00000000");
  /* KMIP 1.x: Attribute { Attribute Name "x-vsphere-id", Attribute Value "abc" }. */
  check_encoding (KMIP_V (1, 4), &x,
    "420008 01 00000028"
    "  42000A 07 0000000C 782d767370686572652d6964 00000000"
    "  42000B 07 00000003 616263 0000000000");
  /* A standard attribute at 2.0 keeps its own tag (no Attribute wrapper). */
  check_encoding (KMIP_V (2, 0),
                  &(struct kmip_attr) { .tag = KMIP_TAG_CONTACT_INFORMATION, .text = "ops" },
    "42013D 01 00000010"
    "  420022 07 00000003 6f7073 0000000000");
}

/* Only "x-NAME" and "y-NAME" are custom names; others are refused and encode nothing. */
static void
test_custom_attr_names (void)
{
  CHECK (kmip_custom_name_ok ("x-a") && kmip_custom_name_ok ("y-b"));
  CHECK (!kmip_custom_name_ok ("x-") && !kmip_custom_name_ok ("z-a") &&
         !kmip_custom_name_ok ("x") && !kmip_custom_name_ok (NULL));
  check_refused ("x-");
  check_refused ("vsphere-id");
}

/* Custom attributes reported from GetAttributes payloads, 2.0 and 1.x. */
static void
test_custom_attr_decoding (void)
{
  /* GetAttributes 2.0 payload: Unique Identifier "1", Attributes { State Active, Vendor
   * Attribute x/vsphere-id/abc, Vendor Attribute Acme.Corp/tag/t, Vendor Attribute x/bin
   * with a Byte String value (not reported) }. */
  check_decode (KMIP_V (2, 0),
    "42007C 01 000000E0"
    "  420094 07 00000001 31 00000000000000"
    "  420125 01 000000C8"
    "    42008D 05 00000004 00000002 00000000"
    "    420008 01 00000038"
    "      42009D 07 00000001 78 00000000000000"
    "      42000A 07 0000000A 767370686572652d6964 000000000000"
    "      42000B 07 00000003 616263 0000000000"
    "    420008 01 00000038"
    "      42009D 07 00000009 41636d652e436f7270 00000000000000"
    "      42000A 07 00000003 746167 0000000000"
    "      42000B 07 00000001 74 00000000000000"
    "    420008 01 00000030"
    "      42009D 07 00000001 78 00000000000000"
    "      42000A 07 00000003 62696e 0000000000"
    "      42000B 08 00000002 0102 000000000000",
    (const char *const[]) { "x-vsphere-id=abc", "Acme.Corp:tag=t", NULL });
  /* The same custom attribute in a 1.x payload. */
  check_decode (KMIP_V (1, 4),
    "42007C 01 00000040"
    "  420094 07 00000001 31 00000000000000"
    "  420008 01 00000028"
    "    42000A 07 0000000C 782d767370686572652d6964 00000000"
    "    42000B 07 00000003 616263 0000000000",
    (const char *const[]) { "x-vsphere-id=abc", NULL });
}

/* A 2.0 Vendor Attribute without its Attribute Name is malformed. */
static void
test_vendor_attr_without_name_refused (void)
{
  uint8_t buf[256];
  size_t len = unhex (
    "42007C 01 00000030"
    "  420125 01 00000028"
    "    420008 01 00000020"
    "      42009D 07 00000001 78 00000000000000"
    "      42000B 07 00000001 74 00000000000000", buf, sizeof buf);
  struct kmip_tree *t;
  struct kmip_attrs a;
  CHECK (kmip_decode (buf, len, NULL, &t) == 0);
  CHECK (kmip_decode_attrs (t->root, KMIP_V (2, 0), &a) == KMIP_E_DECODE);
  CHECK (a.custom == NULL && a.names == NULL);
  kmip_tree_free (t);
}

int
main (void)
{
  RUN (test_custom_attr_encodings);
  RUN (test_custom_attr_names);
  RUN (test_custom_attr_decoding);
  RUN (test_vendor_attr_without_name_refused);
  return check_exit ();
}
