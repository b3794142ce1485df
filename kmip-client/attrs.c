/* SPDX-License-Identifier: BSD-3-Clause */
/* Attributes in the KMIP 1.x encoding (Attribute { Attribute Name, Attribute Value }) and the
 * 2.0 one (an Attributes structure holding the values under their own tags). */
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* 1.x names of the attributes this library writes or reads. Others are derived from the tag
 * name by spacing the CamelCase words. */
static const struct { uint32_t tag; const char *name; } names[] = {
  { KMIP_TAG_UNIQUE_IDENTIFIER, "Unique Identifier" },
  { KMIP_TAG_NAME, "Name" },
  { KMIP_TAG_OBJECT_TYPE, "Object Type" },
  { KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, "Cryptographic Algorithm" },
  { KMIP_TAG_CRYPTOGRAPHIC_LENGTH, "Cryptographic Length" },
  { KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK, "Cryptographic Usage Mask" },
  { KMIP_TAG_STATE, "State" },
  { KMIP_TAG_CONTACT_INFORMATION, "Contact Information" },
};

const char *
kmip_attr_name (uint32_t tag, char *buf, size_t len)
{
  const char *camel;
  size_t o = 0;

  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (names[i].tag == tag)
      return names[i].name;
  camel = kmip_tag_name (tag);
  if (camel == NULL || len == 0)
    return NULL;
  for (size_t i = 0; camel[i] && o + 2 < len; i++) {
    if (i > 0 && isupper ((unsigned char) camel[i]) && !isupper ((unsigned char) camel[i - 1]))
      buf[o++] = ' ';
    buf[o++] = camel[i];
  }
  buf[o] = '\0';
  return buf;
}

bool
kmip_custom_name_ok (const char *name)
{
  return name && (name[0] == 'x' || name[0] == 'y') && name[1] == '-' && name[2] != '\0';
}

/* The value part: under 'tag' (2.0) or under Attribute Value (1.x). */
static void
enc_value (struct kmip_enc *e, uint32_t vtag, const struct kmip_attr *a)
{
  switch (a->tag) {
  case KMIP_TAG_NAME:
    kmip_enc_begin (e, vtag);
    kmip_enc_str (e, KMIP_TAG_NAME_VALUE, a->text);
    kmip_enc_enum (e, KMIP_TAG_NAME_TYPE, KMIP_NAME_TYPE_UNINTERPRETED_TEXT_STRING);
    kmip_enc_end (e);
    break;
  case KMIP_TAG_CRYPTOGRAPHIC_LENGTH:
  case KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK:
    kmip_enc_int (e, vtag, (int32_t) a->value);
    break;
  case KMIP_TAG_OBJECT_TYPE:
  case KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM:
  case KMIP_TAG_STATE:
    kmip_enc_enum (e, vtag, a->value);
    break;
  default:                      /* custom and other text attributes */
    kmip_enc_str (e, vtag, a->text ? a->text : "");
    break;
  }
}

/* KMIP 2.0 has no Custom Attribute: a 1.x custom attribute "x-NAME" (client-defined; "y-NAME"
 * server-defined) is a Vendor Attribute with Vendor Identification "x" (or "y") and Attribute
 * Name "NAME". A Vendor Attribute has no tag of its own: it is encoded as an Attribute
 * structure (0x420008) holding Vendor Identification (0x42009D), Attribute Name (0x42000A) and
 * Attribute Value (0x42000B), in that order. Confirmed in the OASIS KMIP Specification 2.0,
 * section 4.53 "Vendor Attribute", Table 135 "Attribute Object Structure" (and 2.1, section
 * 4.60, Table 150); the 2.0/2.1 tag tables (section 9.1.3.1) list no "Vendor Attribute" tag.
 * Read in the copies of kmip-spec-v2.0-os.html / kmip-spec-v2.1-os.html kept in
 * github.com/appmonster007/kmip-adapter, docs/kmip-spec/v2.x/. */
static void
enc_vendor_attr (struct kmip_enc *e, const struct kmip_attr *a)
{
  kmip_enc_begin (e, KMIP_TAG_VENDOR_ATTRIBUTE);
  kmip_enc_text (e, KMIP_TAG_VENDOR_IDENTIFICATION, a->custom, 1);
  kmip_enc_str (e, KMIP_TAG_ATTRIBUTE_NAME, a->custom + 2);
  kmip_enc_str (e, KMIP_TAG_ATTRIBUTE_VALUE, a->text ? a->text : "");
  kmip_enc_end (e);
}

int
kmip_enc_attr (struct kmip_req *req, const struct kmip_attr *a)
{
  struct kmip_enc *e = &req->e;
  char buf[96];

  if (a->tag == 0 && !kmip_custom_name_ok (a->custom))
    return kmip_set_error (-EINVAL, "custom attribute name '%s': expected x-NAME or y-NAME",
                           a->custom ? a->custom : "");
  if (KMIP_ATTRS_V2 (req->version)) {
    if (a->tag == 0)
      enc_vendor_attr (e, a);
    else
      enc_value (e, a->tag, a);
    return 0;
  }
  kmip_enc_begin (e, KMIP_TAG_ATTRIBUTE);
  kmip_enc_str (e, KMIP_TAG_ATTRIBUTE_NAME,
                a->tag ? kmip_attr_name (a->tag, buf, sizeof buf) : a->custom);
  enc_value (e, KMIP_TAG_ATTRIBUTE_VALUE, a);
  kmip_enc_end (e);
  return 0;
}

void
kmip_enc_attr_list (struct kmip_req *req, uint32_t container1, const struct kmip_attr *a,
                    size_t n)
{
  uint32_t container = KMIP_ATTRS_V2 (req->version) ? KMIP_TAG_ATTRIBUTES : container1;

  if (container)
    kmip_enc_begin (&req->e, container);
  for (size_t i = 0; i < n; i++)
    kmip_enc_attr (req, &a[i]);
  if (container)
    kmip_enc_end (&req->e);
}

int
kmip_strv_add (char ***v, const char *s, size_t len)
{
  size_t n = 0;
  char **nv, *copy;

  while (*v && (*v)[n])
    n++;
  copy = strndup (s, len);
  nv = realloc (*v, (n + 2) * sizeof *nv);
  if (copy == NULL || nv == NULL) {
    free (copy);
    if (nv)
      *v = nv;
    return kmip_set_error (-ENOMEM, "out of memory");
  }
  nv[n] = copy;
  nv[n + 1] = NULL;
  *v = nv;
  return 0;
}

/* A text custom attribute into a->custom as "PREFIX-NAME=VALUE". */
static int
add_custom (struct kmip_attrs *a, const char *prefix, size_t plen, const char *sep,
            const char *name, size_t nlen, const char *value, size_t vlen)
{
  char *kv;
  int r;

  if (asprintf (&kv, "%.*s%s%.*s=%.*s", (int) plen, prefix, sep, (int) nlen, name,
                (int) vlen, value) < 0)
    return -ENOMEM;
  r = kmip_strv_add (&a->custom, kv, strlen (kv));
  free (kv);
  return r;
}

/* A 2.0 Vendor Attribute (an Attribute structure, see enc_vendor_attr): vendors "x" and "y"
 * give back the 1.x custom name "x-NAME"; others are reported as "VENDOR:NAME". Values other
 * than text are not reported. */
static int
take_vendor_attr (struct kmip_attrs *a, const struct kmip_node *n)
{
  const char *vendor, *name, *value;
  size_t vlen, nlen, len;
  const struct kmip_node *v;
  bool x;

  if (kmip_node_struct (n) < 0 ||
      kmip_get_text (n, KMIP_TAG_VENDOR_IDENTIFICATION, &vendor, &vlen) < 0 ||
      kmip_get_text (n, KMIP_TAG_ATTRIBUTE_NAME, &name, &nlen) < 0 ||
      (v = kmip_find (n, KMIP_TAG_ATTRIBUTE_VALUE)) == NULL)
    return KMIP_E_DECODE;
  if (kmip_node_text (v, &value, &len) < 0)
    return 0;
  x = vlen == 1 && (vendor[0] == 'x' || vendor[0] == 'y');
  return add_custom (a, vendor, vlen, x ? "-" : ":", name, nlen, value, len);
}

/* One attribute value (node) known by its tag into a. */
static int
take (struct kmip_attrs *a, uint32_t tag, const struct kmip_node *v)
{
  const char *s;
  size_t len;
  int32_t i;

  switch (tag) {
  case KMIP_TAG_OBJECT_TYPE: return kmip_node_enum (v, &a->object_type);
  case KMIP_TAG_STATE: return kmip_node_enum (v, &a->state);
  case KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM: return kmip_node_enum (v, &a->algorithm);
  case KMIP_TAG_CRYPTOGRAPHIC_LENGTH:
  case KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK:
    if (kmip_node_int (v, &i) < 0)
      return KMIP_E_DECODE;
    if (tag == KMIP_TAG_CRYPTOGRAPHIC_LENGTH)
      a->length = (uint32_t) i;
    else
      a->usage_mask = (uint32_t) i;
    return 0;
  case KMIP_TAG_NAME:
    if (kmip_get_text (v, KMIP_TAG_NAME_VALUE, &s, &len) < 0)
      return KMIP_E_DECODE;
    return kmip_strv_add (&a->names, s, len);
  default:
    return 0;                   /* not one we report */
  }
}

static uint32_t
tag_of_name (const char *name)
{
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp (names[i].name, name) == 0)
      return names[i].tag;
  return 0;
}

int
kmip_decode_attrs (const struct kmip_node *payload, uint16_t version, struct kmip_attrs *a)
{
  const struct kmip_node *n;
  int r;

  memset (a, 0, sizeof *a);
  if (payload == NULL)
    return 0;
  if (KMIP_ATTRS_V2 (version)) {
    const struct kmip_node *attrs = kmip_find (payload, KMIP_TAG_ATTRIBUTES);
    for (n = attrs && attrs->type == KMIP_TYPE_STRUCTURE ? attrs->child : NULL; n; n = n->next)
      if ((r = n->tag == KMIP_TAG_VENDOR_ATTRIBUTE ? take_vendor_attr (a, n)
                                                   : take (a, n->tag, n)) < 0)
        goto bad;
  }
  else {
    for (n = kmip_find (payload, KMIP_TAG_ATTRIBUTE); n; n = kmip_find_next (n)) {
      const char *name, *s;
      size_t len, slen;
      const struct kmip_node *v = kmip_find (n, KMIP_TAG_ATTRIBUTE_VALUE);
      if (kmip_get_text (n, KMIP_TAG_ATTRIBUTE_NAME, &name, &len) < 0 || v == NULL) {
        r = KMIP_E_DECODE;
        goto bad;
      }
      if (len > 2 && (strncmp (name, "x-", 2) == 0 || strncmp (name, "y-", 2) == 0) &&
          kmip_node_text (v, &s, &slen) == 0) {
        if ((r = add_custom (a, name, len, "", "", 0, s, slen)) < 0)
          goto bad;
        continue;
      }
      if ((r = take (a, tag_of_name (name), v)) < 0)
        goto bad;
    }
  }
  return 0;
 bad:
  kmip_attrs_free (a);
  if (r == -ENOMEM)
    return kmip_set_error (-ENOMEM, "out of memory");
  return kmip_set_error (KMIP_E_DECODE, "malformed attribute in GetAttributes response");
}

void
kmip_strv_free (char **v)
{
  if (v == NULL)
    return;
  for (size_t i = 0; v[i]; i++)
    free (v[i]);
  free (v);
}

void
kmip_attrs_free (struct kmip_attrs *a)
{
  kmip_strv_free (a->names);
  kmip_strv_free (a->custom);
  memset (a, 0, sizeof *a);
}
