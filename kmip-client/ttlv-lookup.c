/* SPDX-License-Identifier: BSD-3-Clause */
/* Lookups in a decoded TTLV tree: find children by tag, read values with a type check. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "kmip/ttlv.h"
#include "internal.h"

const struct kmip_node *
kmip_find (const struct kmip_node *parent, uint32_t tag)
{
  if (parent == NULL)
    return NULL;
  for (const struct kmip_node *c = parent->child; c; c = c->next)
    if (c->tag == tag)
      return c;
  return NULL;
}

const struct kmip_node *
kmip_find_next (const struct kmip_node *prev)
{
  if (prev == NULL)
    return NULL;
  for (const struct kmip_node *c = prev->next; c; c = c->next)
    if (c->tag == prev->tag)
      return c;
  return NULL;
}

const struct kmip_node *
kmip_find_path (const struct kmip_node *n, ...)
{
  va_list ap;
  uint32_t tag;

  va_start (ap, n);
  while (n && (tag = va_arg (ap, uint32_t)) != 0)
    n = kmip_find (n, tag);
  va_end (ap);
  return n;
}

size_t
kmip_count (const struct kmip_node *parent, uint32_t tag)
{
  size_t k = 0;
  for (const struct kmip_node *c = parent ? parent->child : NULL; c; c = c->next)
    k += c->tag == tag;
  return k;
}

static const char *
tag_str (uint32_t tag, char *buf, size_t n)
{
  const char *name = kmip_tag_name (tag);
  if (name)
    return name;
  snprintf (buf, n, "0x%06" PRIX32, tag);
  return buf;
}

static int
want (const struct kmip_node *n, uint8_t type)
{
  char b1[16], b2[16];

  if (n == NULL)
    return kmip_set_error (-ENOENT, "KMIP: missing item");
  if (n->type == type)
    return 0;
  return kmip_set_error (KMIP_E_DECODE, "KMIP: %s in %s is a %s, expected a %s",
                         tag_str (n->tag, b1, sizeof b1),
                         n->parent ? tag_str (n->parent->tag, b2, sizeof b2) : "message",
                         kmip_type_name (n->type), kmip_type_name (type));
}

int kmip_node_struct (const struct kmip_node *n) { return want (n, KMIP_TYPE_STRUCTURE); }

#define NODE_GETTER(fn, ctype, ttype, field)                    \
  int fn (const struct kmip_node *n, ctype *v)                  \
  {                                                             \
    int r = want (n, ttype);                                    \
    if (r == 0)                                                 \
      *v = n->v.field;                                          \
    return r;                                                   \
  }
NODE_GETTER (kmip_node_int, int32_t, KMIP_TYPE_INTEGER, i32)
NODE_GETTER (kmip_node_long, int64_t, KMIP_TYPE_LONG_INTEGER, i64)
NODE_GETTER (kmip_node_enum, uint32_t, KMIP_TYPE_ENUMERATION, u32)
NODE_GETTER (kmip_node_bool, bool, KMIP_TYPE_BOOLEAN, b)
NODE_GETTER (kmip_node_datetime, int64_t, KMIP_TYPE_DATE_TIME, i64)
NODE_GETTER (kmip_node_interval, uint32_t, KMIP_TYPE_INTERVAL, u32)

int
kmip_node_text (const struct kmip_node *n, const char **s, size_t *len)
{
  int r = want (n, KMIP_TYPE_TEXT_STRING);
  if (r == 0) {
    *s = n->v.str.s;
    if (len)
      *len = n->len;
  }
  return r;
}

static int
node_blob (const struct kmip_node *n, uint8_t type, const uint8_t **p, size_t *len)
{
  int r = want (n, type);
  if (r == 0) {
    *p = n->v.str.p;
    *len = n->len;
  }
  return r;
}

int
kmip_node_bytes (const struct kmip_node *n, const uint8_t **p, size_t *len)
{
  return node_blob (n, KMIP_TYPE_BYTE_STRING, p, len);
}

int
kmip_node_bigint (const struct kmip_node *n, const uint8_t **p, size_t *len)
{
  return node_blob (n, KMIP_TYPE_BIG_INTEGER, p, len);
}

/* find + a message naming what is missing, for required fields. */
static const struct kmip_node *
required (const struct kmip_node *parent, uint32_t tag, int *r)
{
  char b1[16], b2[16];
  const struct kmip_node *n = kmip_find (parent, tag);

  *r = 0;
  if (n == NULL)
    *r = kmip_set_error (-ENOENT, "KMIP: %s missing from %s", tag_str (tag, b1, sizeof b1),
                         parent ? tag_str (parent->tag, b2, sizeof b2) : "(nothing)");
  return n;
}

int
kmip_get_struct (const struct kmip_node *parent, uint32_t tag, const struct kmip_node **out)
{
  int r;
  const struct kmip_node *n = required (parent, tag, &r);
  if (r == 0 && (r = kmip_node_struct (n)) == 0)
    *out = n;
  return r;
}

#define GETTER(fn, nodefn, ctype)                                       \
  int fn (const struct kmip_node *parent, uint32_t tag, ctype *v)       \
  {                                                                     \
    int r;                                                              \
    const struct kmip_node *n = required (parent, tag, &r);             \
    return r < 0 ? r : nodefn (n, v);                                   \
  }
GETTER (kmip_get_int, kmip_node_int, int32_t)
GETTER (kmip_get_long, kmip_node_long, int64_t)
GETTER (kmip_get_enum, kmip_node_enum, uint32_t)
GETTER (kmip_get_bool, kmip_node_bool, bool)
GETTER (kmip_get_datetime, kmip_node_datetime, int64_t)
GETTER (kmip_get_interval, kmip_node_interval, uint32_t)

int
kmip_get_text (const struct kmip_node *parent, uint32_t tag, const char **s, size_t *len)
{
  int r;
  const struct kmip_node *n = required (parent, tag, &r);
  return r < 0 ? r : kmip_node_text (n, s, len);
}

int
kmip_get_bytes (const struct kmip_node *parent, uint32_t tag, const uint8_t **p, size_t *len)
{
  int r;
  const struct kmip_node *n = required (parent, tag, &r);
  return r < 0 ? r : kmip_node_bytes (n, p, len);
}

int
kmip_get_bigint (const struct kmip_node *parent, uint32_t tag, const uint8_t **p, size_t *len)
{
  int r;
  const struct kmip_node *n = required (parent, tag, &r);
  return r < 0 ? r : kmip_node_bigint (n, p, len);
}
