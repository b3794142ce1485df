/* SPDX-License-Identifier: BSD-3-Clause */
/* Attributes in the KMIP 1.x encoding (Attribute { Attribute Name, Attribute Value }) and the
 * 2.0 one (an Attributes structure holding the values under their own tags). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrs.h"

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

int
kmip_enc_attr (struct kmip_req *req, const struct kmip_attr *a)
{
  struct kmip_enc *e = &req->e;
  char buf[96];

  if (KMIP_ATTRS_V2 (req->version)) {
    if (a->tag == 0)
      return kmip_set_error (-ENOTSUP, "custom attribute '%s': KMIP 2.0 vendor attributes are "
                             "not supported by this client; use max-version = 1.4",
                             a->custom);
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
      if ((r = take (a, n->tag, n)) < 0)
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
      if ((strncmp (name, "x-", 2) == 0 || strncmp (name, "y-", 2) == 0) &&
          kmip_node_text (v, &s, &slen) == 0) {
        char *kv;
        if (asprintf (&kv, "%.*s=%.*s", (int) len, name, (int) slen, s) < 0) {
          r = -ENOMEM;
          goto bad;
        }
        r = kmip_strv_add (&a->custom, kv, strlen (kv));
        free (kv);
        if (r < 0)
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
