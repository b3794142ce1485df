/* SPDX-License-Identifier: BSD-3-Clause */
/* KMIP TTLV decoder: untrusted bytes to a tree in one allocation, with hard limits. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kmip/ttlv.h"
#include "internal.h"

static inline uint32_t
get32 (const uint8_t *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static inline uint64_t
get64 (const uint8_t *p)
{
  return (uint64_t) get32 (p) << 32 | get32 (p + 4);
}

/* Tags are 0x42XXXX (spec) or 0x54XXXX (extensions); anything else means we are not looking
 * at TTLV at all, or have lost sync. */
static inline bool
tag_ok (uint32_t tag)
{
  return (tag >> 16) == 0x42 || (tag >> 16) == 0x54;
}

static bool
all_zero (const uint8_t *p, size_t n)
{
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++)
    acc |= p[i];
  return acc == 0;
}

int
kmip_ttlv_frame_length (const uint8_t hdr[KMIP_TTLV_HEADER_SIZE], size_t max_size,
                        size_t *total)
{
  uint32_t tag = get32 (hdr) >> 8;
  uint32_t len = get32 (hdr + 4);

  if (max_size == 0)
    max_size = KMIP_DEFAULT_MAX_MESSAGE;
  if (!tag_ok (tag) || hdr[3] != KMIP_TYPE_STRUCTURE)
    return kmip_set_error (KMIP_E_DECODE,
                           "not a KMIP message: first item is tag 0x%06" PRIX32 " type 0x%02X,"
                           " expected a structure", tag, hdr[3]);
  if ((uint64_t) len + KMIP_TTLV_HEADER_SIZE > max_size)
    return kmip_set_error (KMIP_E_TOO_BIG,
                           "KMIP message of %" PRIu64 " bytes exceeds the limit of %zu bytes",
                           (uint64_t) len + KMIP_TTLV_HEADER_SIZE, max_size);
  if (len % 8 != 0)
    return kmip_set_error (KMIP_E_DECODE,
                           "KMIP message length %" PRIu32 " is not a multiple of 8", len);
  *total = (size_t) len + KMIP_TTLV_HEADER_SIZE;
  return 0;
}

/* Check one non-structure value: its size for the type, its padding, boolean values. */
static int
check_value (const uint8_t *v, uint8_t type, uint32_t len, size_t padded, size_t off)
{
  const char *why = NULL;

  switch (type) {
  case KMIP_TYPE_INTEGER:
  case KMIP_TYPE_ENUMERATION:
  case KMIP_TYPE_INTERVAL:
    if (len != 4) why = "4-byte value with a wrong length";
    break;
  case KMIP_TYPE_LONG_INTEGER:
  case KMIP_TYPE_DATE_TIME:
    if (len != 8) why = "8-byte value with a wrong length";
    break;
  case KMIP_TYPE_BOOLEAN:
    if (len != 8) why = "boolean with a length other than 8";
    else if (!all_zero (v, 7) || v[7] > 1) why = "boolean neither 0 nor 1";
    break;
  case KMIP_TYPE_BIG_INTEGER:
    if (len == 0 || len % 8 != 0) why = "big integer length not a positive multiple of 8";
    break;
  case KMIP_TYPE_TEXT_STRING:
  case KMIP_TYPE_BYTE_STRING:
    break;
  default:
    return kmip_set_error (KMIP_E_DECODE, "TTLV: unknown item type 0x%02X at offset %zu",
                           type, off);
  }
  if (why == NULL && !all_zero (v + len, padded - len))
    why = "non-zero padding";
  if (why)
    return kmip_set_error (KMIP_E_DECODE, "TTLV: %s (%s, length %" PRIu32 ") at offset %zu",
                           why, kmip_type_name (type), len, off);
  return 0;
}

/* Pass 1: validate everything and count nodes and value bytes, so that pass 2 can fill a
 * block allocated once. Iterative; the only stack is an array of depth-limited size. */
static int
scan (const uint8_t *buf, size_t len, unsigned max_depth, size_t max_nodes,
      size_t *nnodes, size_t *ndata)
{
  size_t ends[KMIP_MAX_DEPTH_LIMIT + 1];
  unsigned depth = 0;
  size_t pos = 0, nodes = 0, data = 0;

  ends[0] = len;
  if (len == 0)
    return kmip_set_error (KMIP_E_DECODE, "TTLV: empty message");
  while (pos < len) {
    size_t end = ends[depth];
    if (end - pos < KMIP_TTLV_HEADER_SIZE)
      return kmip_set_error (KMIP_E_DECODE, "TTLV: truncated item header at offset %zu "
                             "(%zu bytes left in the enclosing item)", pos, end - pos);
    uint32_t tag = get32 (buf + pos) >> 8;
    uint8_t type = buf[pos + 3];
    uint32_t vlen = get32 (buf + pos + 4);
    if (!tag_ok (tag))
      return kmip_set_error (KMIP_E_DECODE, "TTLV: bad tag 0x%06" PRIX32 " at offset %zu",
                             tag, pos);
    uint64_t padded = ((uint64_t) vlen + 7) & ~(uint64_t) 7;
    if (padded > end - pos - KMIP_TTLV_HEADER_SIZE)
      return kmip_set_error (KMIP_E_DECODE, "TTLV: item %s at offset %zu has length %" PRIu32
                             " (%" PRIu64 " padded) but only %zu bytes remain in the enclosing"
                             " item", kmip_tag_name (tag) ? kmip_tag_name (tag) : "(unknown tag)",
                             pos, vlen, padded, end - pos - KMIP_TTLV_HEADER_SIZE);
    if (++nodes > max_nodes)
      return kmip_set_error (KMIP_E_TOO_BIG, "TTLV: more than %zu items", max_nodes);
    if (depth == 0 && pos != 0)
      return kmip_set_error (KMIP_E_DECODE, "TTLV: trailing bytes after the message at "
                             "offset %zu", pos);

    size_t vpos = pos + KMIP_TTLV_HEADER_SIZE;
    if (type == KMIP_TYPE_STRUCTURE) {
      if (vlen % 8 != 0)
        return kmip_set_error (KMIP_E_DECODE, "TTLV: structure length %" PRIu32
                               " not a multiple of 8 at offset %zu", vlen, pos);
      if (depth >= max_depth)
        return kmip_set_error (KMIP_E_DECODE, "TTLV: structures nested deeper than %u "
                               "at offset %zu", max_depth, pos);
      ends[++depth] = vpos + vlen;
      pos = vpos;
    }
    else {
      int r = check_value (buf + vpos, type, vlen, (size_t) padded, pos);
      if (r < 0)
        return r;
      if (type == KMIP_TYPE_TEXT_STRING || type == KMIP_TYPE_BYTE_STRING ||
          type == KMIP_TYPE_BIG_INTEGER)
        data += (size_t) vlen + 1;      /* bounded by len, no overflow */
      pos = vpos + (size_t) padded;
    }
    /* Leave every structure that ends here. */
    while (depth > 0 && pos == ends[depth])
      depth--;
  }
  *nnodes = nodes;
  *ndata = data;
  return 0;
}

/* Pass 2: the bytes are known good; build the tree. */
static void
build (const uint8_t *buf, size_t len, struct kmip_node *nodes, uint8_t *data)
{
  struct kmip_node *parent[KMIP_MAX_DEPTH_LIMIT + 1];
  struct kmip_node *last[KMIP_MAX_DEPTH_LIMIT + 1];
  size_t ends[KMIP_MAX_DEPTH_LIMIT + 1];
  unsigned depth = 0;
  size_t pos = 0, k = 0;

  parent[0] = NULL;
  last[0] = NULL;
  ends[0] = len;
  while (pos < len) {
    struct kmip_node *n = &nodes[k++];
    uint32_t vlen = get32 (buf + pos + 4);
    size_t vpos = pos + KMIP_TTLV_HEADER_SIZE;
    const uint8_t *v = buf + vpos;

    memset (n, 0, sizeof *n);
    n->tag = get32 (buf + pos) >> 8;
    n->type = buf[pos + 3];
    n->len = vlen;
    n->parent = parent[depth];
    if (last[depth])
      last[depth]->next = n;
    last[depth] = n;
    if (n->parent)
      n->parent->nchildren++;

    switch (n->type) {
    case KMIP_TYPE_STRUCTURE:
      depth++;
      parent[depth] = n;
      last[depth] = NULL;
      ends[depth] = vpos + vlen;
      pos = vpos;
      break;
    case KMIP_TYPE_INTEGER: n->v.i32 = (int32_t) get32 (v); break;
    case KMIP_TYPE_LONG_INTEGER:
    case KMIP_TYPE_DATE_TIME: n->v.i64 = (int64_t) get64 (v); break;
    case KMIP_TYPE_ENUMERATION:
    case KMIP_TYPE_INTERVAL: n->v.u32 = get32 (v); break;
    case KMIP_TYPE_BOOLEAN: n->v.b = v[7] != 0; break;
    default:                    /* text, bytes, big integer: copy, NUL-terminate */
      memcpy (data, v, vlen);
      data[vlen] = '\0';
      n->v.str.p = data;
      n->v.str.s = (const char *) data;
      data += (size_t) vlen + 1;
    }
    if (n->type != KMIP_TYPE_STRUCTURE)
      pos = vpos + (((size_t) vlen + 7) & ~(size_t) 7);
    while (depth > 0 && pos == ends[depth]) {
      if (parent[depth]->nchildren)
        parent[depth]->child = parent[depth] + 1;   /* children follow in document order */
      depth--;
    }
  }
}

int
kmip_decode (const uint8_t *buf, size_t len, const struct kmip_decode_limits *lim,
             struct kmip_tree **out)
{
  size_t max_size = lim && lim->max_size ? lim->max_size : KMIP_DEFAULT_MAX_MESSAGE;
  unsigned max_depth = lim && lim->max_depth ? lim->max_depth : KMIP_DEFAULT_MAX_DEPTH;
  size_t max_nodes = lim && lim->max_nodes ? lim->max_nodes : KMIP_DEFAULT_MAX_NODES;
  size_t nnodes, ndata;
  int r;

  *out = NULL;
  if (max_depth > KMIP_MAX_DEPTH_LIMIT)
    max_depth = KMIP_MAX_DEPTH_LIMIT;
  if (len > max_size)
    return kmip_set_error (KMIP_E_TOO_BIG, "TTLV: message of %zu bytes exceeds the limit "
                           "of %zu bytes", len, max_size);
  r = scan (buf, len, max_depth, max_nodes, &nnodes, &ndata);
  if (r < 0)
    return r;

  /* nnodes <= len/8 and ndata <= len + nnodes, both bounded by max_size: no overflow. */
  size_t size = sizeof (struct kmip_tree) + nnodes * sizeof (struct kmip_node) + ndata;
  struct kmip_tree *t = malloc (size);
  if (t == NULL)
    return kmip_set_error (-ENOMEM, "TTLV: out of memory decoding %zu bytes", len);
  t->root = (struct kmip_node *) (t + 1);
  t->nnodes = nnodes;
  t->size = size;
  build (buf, len, t->root, (uint8_t *) (t->root + nnodes));
  *out = t;
  return 0;
}

void
kmip_tree_free (struct kmip_tree *t)
{
  if (t) {
    /* Secrets (key material, private key numbers) only live in the value bytes after the
     * nodes; wiping just those keeps decoding cheap. */
    uint8_t *values = (uint8_t *) (t->root + t->nnodes);
    explicit_bzero (values, t->size - (size_t) (values - (uint8_t *) t));
    free (t);
  }
}
