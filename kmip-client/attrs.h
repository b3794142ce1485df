/* SPDX-License-Identifier: BSD-3-Clause */
/* Internal: attributes in both encodings, KMIP 1.x (Attribute name/value, TemplateAttribute)
 * and 2.0 (Attributes structure of tagged values). */
#ifndef KMIP_ATTRS_H
#define KMIP_ATTRS_H

#include <stdbool.h>

#include "message.h"

struct kmip_attr {
  uint32_t tag;               /* KMIP_TAG_* of the attribute; 0 for a custom (x-) one */
  const char *custom;         /* custom attribute name ("x-...") when tag == 0 */
  uint32_t value;             /* Enumeration / Integer value */
  const char *text;           /* TextString value, or the Name's NameValue */
};

/* KMIP 2.0 Vendor Attribute: an Attribute structure { Vendor Identification, Attribute Name,
 * Attribute Value }; there is no separate tag (see attrs.c, enc_vendor_attr). */
#define KMIP_TAG_VENDOR_ATTRIBUTE KMIP_TAG_ATTRIBUTE

/* "x-NAME" or "y-NAME" with a non-empty NAME. */
bool kmip_custom_name_ok (const char *name);

/* Whether this version uses the 2.0 encoding. */
#define KMIP_ATTRS_V2(version) ((version) >= KMIP_V (2, 0))

/* Encode one attribute as a 1.x Attribute or a 2.0 tagged item (a custom "x-NAME" one as a
 * 2.0 Vendor Attribute). -EINVAL (nothing encoded) for a malformed custom name. */
int kmip_enc_attr (struct kmip_req *req, const struct kmip_attr *a);
/* Encode a list inside container1 at 1.x (TemplateAttribute, or 0: directly) or inside
 * Attributes at 2.0. */
void kmip_enc_attr_list (struct kmip_req *req, uint32_t container1,
                         const struct kmip_attr *a, size_t n);

/* The spec's name of an attribute tag ("Cryptographic Length"), or NULL. */
const char *kmip_attr_name (uint32_t tag, char *buf, size_t len);

/* Fill a from a GetAttributes response payload (either encoding). */
int kmip_decode_attrs (const struct kmip_node *payload, uint16_t version,
                       struct kmip_attrs *a);

/* Append a copy of s[0..len) to a NULL-terminated string vector. */
int kmip_strv_add (char ***v, const char *s, size_t len);

#endif /* KMIP_ATTRS_H */
