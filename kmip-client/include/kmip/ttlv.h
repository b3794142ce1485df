/* SPDX-License-Identifier: BSD-3-Clause */
/* KMIP TTLV codec: an encoder into a growable buffer, a decoder from untrusted bytes into a
 * tree held in one allocation, lookup helpers with type checks, and tag/enum/type name tables.
 *
 * Wire format (KMIP spec section 9.1): every item is Tag (3 bytes, 0x42XXXX), Type (1 byte),
 * Length (4 bytes, big-endian, the value length without padding), Value padded with zeros to a
 * multiple of 8 bytes. Integers, enumerations and intervals are 4-byte values padded to 8;
 * long integers, booleans and date-times are 8 bytes; big integers are two's complement,
 * big-endian, a multiple of 8 bytes; text and byte strings have any length and are padded.
 *
 * Errors follow kmip/errors.h: functions return 0 (or a count) on success, a negative code on
 * failure (KMIP_E_DECODE, KMIP_E_TOO_BIG, -ENOMEM, -ENOENT, -EINVAL) and leave a message
 * retrievable with kmip_last_error(). Nothing here prints.
 *
 * Thread-safety: an encoder or a tree belongs to one thread at a time; distinct objects may be
 * used concurrently. The name tables are read-only. */
#ifndef KMIP_TTLV_H
#define KMIP_TTLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmip/errors.h"

/* ---- Item types (spec 9.1.1.2) ---- */
enum kmip_type {
  KMIP_TYPE_STRUCTURE = 0x01,
  KMIP_TYPE_INTEGER = 0x02,
  KMIP_TYPE_LONG_INTEGER = 0x03,
  KMIP_TYPE_BIG_INTEGER = 0x04,
  KMIP_TYPE_ENUMERATION = 0x05,
  KMIP_TYPE_BOOLEAN = 0x06,
  KMIP_TYPE_TEXT_STRING = 0x07,
  KMIP_TYPE_BYTE_STRING = 0x08,
  KMIP_TYPE_DATE_TIME = 0x09,
  KMIP_TYPE_INTERVAL = 0x0A,
};

/* ---- Tags, enumeration values and mask bits, KMIP 1.0-1.4 and 2.0 ----
 * KMIP_TAG_REQUEST_MESSAGE, KMIP_TAG_UNIQUE_IDENTIFIER, ...; enumeration values are
 * KMIP_<TAG>_<VALUE>: KMIP_OPERATION_GET, KMIP_OBJECT_TYPE_SYMMETRIC_KEY,
 * KMIP_RESULT_STATUS_SUCCESS, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, KMIP_KEY_FORMAT_TYPE_RAW,
 * KMIP_STATE_ACTIVE, KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE, KMIP_NAME_TYPE_..., and the
 * Cryptographic Usage Mask bits KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT, ... */
enum kmip_tag {
#define KMIP_TAG(sym, name, value) KMIP_TAG_##sym = value,
#include "kmip/ttlv-tags.def"
#undef KMIP_TAG
};

enum {
#define KMIP_ENUM(tag, sym, name, value) KMIP_##tag##_##sym = value,
#define KMIP_MASK(tag, sym, name, value) KMIP_##tag##_##sym = value,
#include "kmip/ttlv-enums.def"
#undef KMIP_ENUM
#undef KMIP_MASK
};

/* ---- Limits ---- */
#define KMIP_TTLV_HEADER_SIZE 8
#define KMIP_DEFAULT_MAX_MESSAGE (1024 * 1024)   /* bytes, header included */
#define KMIP_DEFAULT_MAX_DEPTH 32                /* nested structures */
#define KMIP_DEFAULT_MAX_NODES 65536             /* items in one message */
#define KMIP_MAX_DEPTH_LIMIT 256                 /* hard ceiling for max_depth (encoder too) */

struct kmip_decode_limits {
  size_t max_size;      /* whole message in bytes; 0 = KMIP_DEFAULT_MAX_MESSAGE */
  unsigned max_depth;   /* 0 = KMIP_DEFAULT_MAX_DEPTH; capped at KMIP_MAX_DEPTH_LIMIT */
  size_t max_nodes;     /* 0 = KMIP_DEFAULT_MAX_NODES */
};

/* For transports: given the first 8 bytes of a message, check the item is a Structure and
 * that its total size (header + value) fits max_size (0 = default), and return that size in
 * *total. Call before allocating or reading the rest. KMIP_E_DECODE / KMIP_E_TOO_BIG. */
int kmip_ttlv_frame_length (const uint8_t hdr[KMIP_TTLV_HEADER_SIZE], size_t max_size,
                            size_t *total);

/* ---- Encoder ----
 * Errors are sticky: after the first failure every add_* call does nothing and returns the
 * same code, and kmip_enc_finish() reports it, so message-building code may check only once.
 *
 *   struct kmip_enc e;
 *   kmip_enc_init (&e);
 *   kmip_enc_begin (&e, KMIP_TAG_REQUEST_MESSAGE);
 *     kmip_enc_begin (&e, KMIP_TAG_REQUEST_HEADER); ... kmip_enc_end (&e);
 *   kmip_enc_end (&e);
 *   if (kmip_enc_finish (&e, &buf, &len) < 0) ...;   // buf valid until reset/free
 *   kmip_enc_free (&e);
 */
struct kmip_enc {
  uint8_t *buf;
  size_t len, cap;
  size_t max_size;                       /* refuse to grow beyond; 0 = default 1 MiB */
  unsigned depth;                        /* open structures */
  size_t open[KMIP_MAX_DEPTH_LIMIT];     /* offsets of open structure headers */
  int err;                               /* first failure, 0 if none */
};

void kmip_enc_init (struct kmip_enc *e);
/* Forget the content, keep the buffer (wiped) for reuse. */
void kmip_enc_reset (struct kmip_enc *e);
/* Wipe (a request may carry key material) and free the buffer. */
void kmip_enc_free (struct kmip_enc *e);

int kmip_enc_begin (struct kmip_enc *e, uint32_t tag);   /* open a Structure */
int kmip_enc_end (struct kmip_enc *e);                   /* close it, patching its length */
int kmip_enc_int (struct kmip_enc *e, uint32_t tag, int32_t v);
int kmip_enc_long (struct kmip_enc *e, uint32_t tag, int64_t v);
/* Big integer from a two's-complement big-endian byte string of any length (>= 1); it is
 * sign-extended to a multiple of 8 bytes as the spec requires. */
int kmip_enc_bigint (struct kmip_enc *e, uint32_t tag, const uint8_t *be, size_t len);
int kmip_enc_enum (struct kmip_enc *e, uint32_t tag, uint32_t v);
int kmip_enc_bool (struct kmip_enc *e, uint32_t tag, bool v);
int kmip_enc_text (struct kmip_enc *e, uint32_t tag, const char *s, size_t len);
int kmip_enc_str (struct kmip_enc *e, uint32_t tag, const char *s);   /* NUL-terminated */
int kmip_enc_bytes (struct kmip_enc *e, uint32_t tag, const void *p, size_t len);
int kmip_enc_datetime (struct kmip_enc *e, uint32_t tag, int64_t unix_seconds);
int kmip_enc_interval (struct kmip_enc *e, uint32_t tag, uint32_t seconds);
/* Re-encode a decoded node and its subtree (unknown tags included). */
struct kmip_node;
int kmip_enc_node (struct kmip_enc *e, const struct kmip_node *n);
/* Check every structure is closed; return the message. 0 or the first error. */
int kmip_enc_finish (struct kmip_enc *e, const uint8_t **buf, size_t *len);

/* ---- Decoder ----
 * The tree lives in one block (nodes + copies of the values); kmip_tree_free() wipes the values
 * (responses carry keys) and frees it. The input buffer may be released right after decoding.
 * Text strings are NUL-terminated copies (an embedded NUL is kept; use .len). */
struct kmip_node {
  uint32_t tag;
  uint8_t type;                   /* enum kmip_type */
  uint32_t len;                   /* value length on the wire (unpadded) */
  union {
    int32_t i32;                  /* Integer */
    int64_t i64;                  /* LongInteger, DateTime (seconds since the epoch) */
    uint32_t u32;                 /* Enumeration, Interval */
    bool b;                       /* Boolean */
    struct {
      const uint8_t *p;           /* ByteString, BigInteger (two's complement, big-endian) */
      const char *s;              /* TextString (same pointer as p, NUL-terminated) */
    } str;
  } v;
  struct kmip_node *parent;       /* NULL for the root */
  struct kmip_node *child;        /* first child (Structure), else NULL */
  struct kmip_node *next;         /* next sibling */
  uint32_t nchildren;
};

struct kmip_tree {
  struct kmip_node *root;
  size_t nnodes;
  size_t size;                    /* bytes in the block, for the wipe */
};

/* Decode exactly one top-level item filling [buf, buf+len) (trailing bytes are an error).
 * lim may be NULL for the defaults. Checks: lengths within the enclosing structure, padding
 * bytes zero, fixed-size types have their size, Boolean is 0 or 1, BigInteger length a
 * multiple of 8, known type codes, tag prefix 0x42 or 0x54 (extensions), depth, node count,
 * size cap. Unknown tags are kept. KMIP_E_DECODE / KMIP_E_TOO_BIG / -ENOMEM. */
int kmip_decode (const uint8_t *buf, size_t len, const struct kmip_decode_limits *lim,
                 struct kmip_tree **out);
void kmip_tree_free (struct kmip_tree *t);

/* ---- Lookup ----
 * kmip_find*: NULL when absent (optional fields). kmip_get_*: find + type check, for required
 * fields: -ENOENT when absent, KMIP_E_DECODE when the type is wrong, with a message naming the
 * tag and the parent. kmip_node_* type-check a node you already hold. */
const struct kmip_node *kmip_find (const struct kmip_node *parent, uint32_t tag);
/* The next sibling after 'prev' with the same tag (repeated fields: BatchItem, Attribute). */
const struct kmip_node *kmip_find_next (const struct kmip_node *prev);
/* Follow a path of tags from 'n', e.g. kmip_find_path (root, KMIP_TAG_RESPONSE_HEADER,
 * KMIP_TAG_PROTOCOL_VERSION, KMIP_TAG_PROTOCOL_VERSION_MAJOR, 0). NULL when absent. */
const struct kmip_node *kmip_find_path (const struct kmip_node *n, ...);
size_t kmip_count (const struct kmip_node *parent, uint32_t tag);

int kmip_node_struct (const struct kmip_node *n);   /* 0 if n is a Structure */
int kmip_node_int (const struct kmip_node *n, int32_t *v);
int kmip_node_long (const struct kmip_node *n, int64_t *v);
int kmip_node_enum (const struct kmip_node *n, uint32_t *v);
int kmip_node_bool (const struct kmip_node *n, bool *v);
int kmip_node_text (const struct kmip_node *n, const char **s, size_t *len);
int kmip_node_bytes (const struct kmip_node *n, const uint8_t **p, size_t *len);
int kmip_node_bigint (const struct kmip_node *n, const uint8_t **p, size_t *len);
int kmip_node_datetime (const struct kmip_node *n, int64_t *v);
int kmip_node_interval (const struct kmip_node *n, uint32_t *v);

int kmip_get_struct (const struct kmip_node *parent, uint32_t tag,
                     const struct kmip_node **out);
int kmip_get_int (const struct kmip_node *parent, uint32_t tag, int32_t *v);
int kmip_get_long (const struct kmip_node *parent, uint32_t tag, int64_t *v);
int kmip_get_enum (const struct kmip_node *parent, uint32_t tag, uint32_t *v);
int kmip_get_bool (const struct kmip_node *parent, uint32_t tag, bool *v);
int kmip_get_text (const struct kmip_node *parent, uint32_t tag, const char **s, size_t *len);
int kmip_get_bytes (const struct kmip_node *parent, uint32_t tag,
                    const uint8_t **p, size_t *len);
int kmip_get_bigint (const struct kmip_node *parent, uint32_t tag,
                     const uint8_t **p, size_t *len);
int kmip_get_datetime (const struct kmip_node *parent, uint32_t tag, int64_t *v);
int kmip_get_interval (const struct kmip_node *parent, uint32_t tag, uint32_t *v);

/* ---- Names ----
 * Tag names are the spec names in CamelCase without spaces ("RequestMessage",
 * "ProtocolVersionMajor", "UniqueIdentifier"); enumeration value names likewise ("Get",
 * "SymmetricKey", "ItemNotFound"). All return NULL when unknown. */
const char *kmip_type_name (unsigned type);                  /* "Structure", "TextString" */
int kmip_type_by_name (const char *name);                    /* -EINVAL if unknown */
const char *kmip_tag_name (uint32_t tag);
int kmip_tag_by_name (const char *name, uint32_t *tag);      /* -ENOENT if unknown */
/* Name of an enumeration value carried by 'tag' (e.g. KMIP_TAG_OPERATION, 10 -> "Get"). */
const char *kmip_enum_name (uint32_t tag, uint32_t value);
int kmip_enum_by_name (uint32_t tag, const char *name, uint32_t *value);
/* The name of one Cryptographic Usage Mask (or other mask) bit, e.g. 0x4 -> "Encrypt". */
const char *kmip_mask_bit_name (uint32_t tag, uint32_t bit);

#endif /* KMIP_TTLV_H */
