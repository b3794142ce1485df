/* SPDX-License-Identifier: BSD-3-Clause */
/* KMIP TTLV encoder: typed items appended to a growable buffer, structure lengths patched. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kmip/ttlv.h"
#include "internal.h"

void
kmip_enc_init (struct kmip_enc *e)
{
  e->buf = NULL;
  e->len = e->cap = 0;
  e->max_size = 0;
  e->depth = 0;
  e->err = 0;
}

void
kmip_enc_reset (struct kmip_enc *e)
{
  if (e->buf)
    explicit_bzero (e->buf, e->len);
  e->len = 0;
  e->depth = 0;
  e->err = 0;
}

void
kmip_enc_free (struct kmip_enc *e)
{
  if (e->buf) {
    explicit_bzero (e->buf, e->cap);
    free (e->buf);
  }
  kmip_enc_init (e);
}

static int
fail (struct kmip_enc *e, int code, const char *what)
{
  if (e->err == 0)
    e->err = kmip_set_error (code, "TTLV encoder: %s", what);
  return e->err;
}

/* Make room for n more bytes; the buffer never grows past max_size, so a runaway caller
 * gets an error rather than unbounded memory. */
static int
reserve (struct kmip_enc *e, size_t n)
{
  size_t max = e->max_size ? e->max_size : KMIP_DEFAULT_MAX_MESSAGE;

  if (e->err)
    return e->err;
  if (n > max || e->len > max - n)
    return fail (e, KMIP_E_TOO_BIG, "message larger than the configured maximum");
  if (e->len + n <= e->cap)
    return 0;

  size_t ncap = e->cap ? e->cap : 256;
  while (ncap < e->len + n)
    ncap *= 2;
  if (ncap > max)
    ncap = max;
  /* Not realloc: the old block may hold key material and must be wiped. */
  uint8_t *nbuf = malloc (ncap);
  if (nbuf == NULL)
    return fail (e, -ENOMEM, "out of memory");
  if (e->buf) {
    memcpy (nbuf, e->buf, e->len);
    explicit_bzero (e->buf, e->cap);
    free (e->buf);
  }
  e->buf = nbuf;
  e->cap = ncap;
  return 0;
}

static inline void
put32 (uint8_t *p, uint32_t v)
{
  p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static inline void
put64 (uint8_t *p, uint64_t v)
{
  put32 (p, v >> 32);
  put32 (p + 4, (uint32_t) v);
}

/* Append a header and return a pointer to the zeroed, padded value area of vlen bytes. */
static uint8_t *
item (struct kmip_enc *e, uint32_t tag, uint8_t type, size_t vlen)
{
  if (e->err)
    return NULL;
  if (tag > 0xFFFFFF) {
    fail (e, -EINVAL, "tag does not fit 3 bytes");
    return NULL;
  }
  if (vlen > UINT32_MAX - 7) {
    fail (e, KMIP_E_TOO_BIG, "item too long");
    return NULL;
  }
  size_t padded = (vlen + 7) & ~(size_t) 7;
  if (reserve (e, KMIP_TTLV_HEADER_SIZE + padded) < 0)
    return NULL;
  uint8_t *p = e->buf + e->len;
  put32 (p, tag << 8 | type);
  put32 (p + 4, (uint32_t) vlen);
  memset (p + 8, 0, padded);
  e->len += KMIP_TTLV_HEADER_SIZE + padded;
  return p + 8;
}

int
kmip_enc_begin (struct kmip_enc *e, uint32_t tag)
{
  if (e->err)
    return e->err;
  if (e->depth >= KMIP_MAX_DEPTH_LIMIT)
    return fail (e, -EINVAL, "structures nested too deeply");
  size_t off = e->len;
  if (item (e, tag, KMIP_TYPE_STRUCTURE, 0) == NULL)
    return e->err;
  e->open[e->depth++] = off;
  return 0;
}

int
kmip_enc_end (struct kmip_enc *e)
{
  if (e->err)
    return e->err;
  if (e->depth == 0)
    return fail (e, -EINVAL, "end without begin");
  size_t off = e->open[--e->depth];
  size_t vlen = e->len - off - KMIP_TTLV_HEADER_SIZE;
  if (vlen > UINT32_MAX)
    return fail (e, KMIP_E_TOO_BIG, "structure too long");
  put32 (e->buf + off + 4, (uint32_t) vlen);
  return 0;
}

int
kmip_enc_int (struct kmip_enc *e, uint32_t tag, int32_t v)
{
  uint8_t *p = item (e, tag, KMIP_TYPE_INTEGER, 4);
  if (p)
    put32 (p, (uint32_t) v);
  return e->err;
}

int
kmip_enc_long (struct kmip_enc *e, uint32_t tag, int64_t v)
{
  uint8_t *p = item (e, tag, KMIP_TYPE_LONG_INTEGER, 8);
  if (p)
    put64 (p, (uint64_t) v);
  return e->err;
}

int
kmip_enc_bigint (struct kmip_enc *e, uint32_t tag, const uint8_t *be, size_t len)
{
  if (e->err)
    return e->err;
  if (len == 0 || be == NULL)
    return fail (e, -EINVAL, "empty big integer");
  if (len > SIZE_MAX - 8)
    return fail (e, KMIP_E_TOO_BIG, "big integer too long");
  size_t padded = (len + 7) & ~(size_t) 7;
  uint8_t *p = item (e, tag, KMIP_TYPE_BIG_INTEGER, padded);
  if (p) {
    /* Sign extension: leading bytes are 0xFF for a negative number. */
    memset (p, (be[0] & 0x80) ? 0xFF : 0x00, padded - len);
    memcpy (p + (padded - len), be, len);
  }
  return e->err;
}

int
kmip_enc_enum (struct kmip_enc *e, uint32_t tag, uint32_t v)
{
  uint8_t *p = item (e, tag, KMIP_TYPE_ENUMERATION, 4);
  if (p)
    put32 (p, v);
  return e->err;
}

int
kmip_enc_bool (struct kmip_enc *e, uint32_t tag, bool v)
{
  uint8_t *p = item (e, tag, KMIP_TYPE_BOOLEAN, 8);
  if (p)
    p[7] = v ? 1 : 0;
  return e->err;
}

int
kmip_enc_text (struct kmip_enc *e, uint32_t tag, const char *s, size_t len)
{
  uint8_t *p = item (e, tag, KMIP_TYPE_TEXT_STRING, len);
  if (p && len)
    memcpy (p, s, len);
  return e->err;
}

int
kmip_enc_str (struct kmip_enc *e, uint32_t tag, const char *s)
{
  return kmip_enc_text (e, tag, s, s ? strlen (s) : 0);
}

int
kmip_enc_bytes (struct kmip_enc *e, uint32_t tag, const void *data, size_t len)
{
  uint8_t *p = item (e, tag, KMIP_TYPE_BYTE_STRING, len);
  if (p && len)
    memcpy (p, data, len);
  return e->err;
}

int
kmip_enc_datetime (struct kmip_enc *e, uint32_t tag, int64_t unix_seconds)
{
  uint8_t *p = item (e, tag, KMIP_TYPE_DATE_TIME, 8);
  if (p)
    put64 (p, (uint64_t) unix_seconds);
  return e->err;
}

int
kmip_enc_interval (struct kmip_enc *e, uint32_t tag, uint32_t seconds)
{
  uint8_t *p = item (e, tag, KMIP_TYPE_INTERVAL, 4);
  if (p)
    put32 (p, seconds);
  return e->err;
}

/* Iterative walk (a decoded tree is at most KMIP_MAX_DEPTH_LIMIT deep, but an iterative walk
 * needs no such argument): descend into children, close structures on the way back up. */
int
kmip_enc_node (struct kmip_enc *e, const struct kmip_node *root)
{
  const struct kmip_node *n = root;

  while (n && e->err == 0) {
    switch (n->type) {
    case KMIP_TYPE_STRUCTURE:
      kmip_enc_begin (e, n->tag);
      if (n->child) {
        n = n->child;
        continue;
      }
      kmip_enc_end (e);
      break;
    case KMIP_TYPE_INTEGER: kmip_enc_int (e, n->tag, n->v.i32); break;
    case KMIP_TYPE_LONG_INTEGER: kmip_enc_long (e, n->tag, n->v.i64); break;
    case KMIP_TYPE_BIG_INTEGER: kmip_enc_bigint (e, n->tag, n->v.str.p, n->len); break;
    case KMIP_TYPE_ENUMERATION: kmip_enc_enum (e, n->tag, n->v.u32); break;
    case KMIP_TYPE_BOOLEAN: kmip_enc_bool (e, n->tag, n->v.b); break;
    case KMIP_TYPE_TEXT_STRING: kmip_enc_text (e, n->tag, n->v.str.s, n->len); break;
    case KMIP_TYPE_BYTE_STRING: kmip_enc_bytes (e, n->tag, n->v.str.p, n->len); break;
    case KMIP_TYPE_DATE_TIME: kmip_enc_datetime (e, n->tag, n->v.i64); break;
    case KMIP_TYPE_INTERVAL: kmip_enc_interval (e, n->tag, n->v.u32); break;
    default: return fail (e, -EINVAL, "node of unknown type");
    }
    /* Move to the next sibling, closing every structure we finish on the way up. */
    while (n != root && n->next == NULL) {
      n = n->parent;
      kmip_enc_end (e);
    }
    if (n == root)
      break;
    n = n->next;
  }
  return e->err;
}

int
kmip_enc_finish (struct kmip_enc *e, const uint8_t **buf, size_t *len)
{
  if (e->err)
    return e->err;
  if (e->depth != 0)
    return fail (e, -EINVAL, "structure left open");
  *buf = e->buf;
  *len = e->len;
  return 0;
}
