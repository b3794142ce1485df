/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: the TTLV codec against bytes nobody here wrote (KMIP 1.1 test cases, spec 9.1.2
 * examples): decode + re-encode byte-exact, encoder from scratch byte-exact, malformed input
 * refused with a message (truncation, bad lengths, caps, nesting, booleans, padding). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmip/ttlv.h"
#include "test-ttlv-vectors.h"

#include "check.h"

#define N(a) (sizeof (a) / sizeof (a)[0])

static size_t
unhex (const char *hex, uint8_t *out, size_t max)
{
  size_t n = strlen (hex) / 2;
  if (n > max) {
    fprintf (stderr, "vector too long\n");
    exit (1);
  }
  for (size_t i = 0; i < n; i++)
    sscanf (hex + 2 * i, "%2hhx", &out[i]);
  return n;
}

/* The encoder's output must equal want byte for byte; prints got/want on failure. */
static void
expect_bytes (const char *what, struct kmip_enc *e, const uint8_t *want, size_t wlen)
{
  const uint8_t *got;
  size_t glen;
  int r = kmip_enc_finish (e, &got, &glen);

  if (r < 0) {
    FAIL ("%s: encoder: %s", what, kmip_last_error ());
    return;
  }
  CHECK_BYTES_EQ (what, got, glen, want, wlen);
}

/* 1. Every vector decodes, and re-encoding the tree gives the same bytes. Every proper
 * prefix must be refused (the message is exactly one item). */
static void
test_roundtrip (const char *name, const char *hex)
{
  uint8_t buf[4096];
  size_t len = unhex (hex, buf, sizeof buf);
  struct kmip_tree *t;
  struct kmip_enc e;

  if (kmip_decode (buf, len, NULL, &t) < 0) {
    FAIL ("%s: decode: %s", name, kmip_last_error ());
    return;
  }
  kmip_enc_init (&e);
  kmip_enc_node (&e, t->root);
  expect_bytes (name, &e, buf, len);
  kmip_enc_free (&e);
  kmip_tree_free (t);

  for (size_t cut = 0; cut < len; cut++) {
    if (kmip_decode (buf, cut, NULL, &t) == 0) {
      FAIL ("%s: truncated to %zu of %zu bytes but decoded", name, cut, len);
      kmip_tree_free (t);
      break;
    }
  }
}

/* 2. Spec 9.1.2 examples: the decoded value equals the documented value, and encoding that
 * value from scratch gives the documented bytes. */
static void
test_primitive (const struct ttlv_primitive *p)
{
  const uint32_t tag = 0x420020;
  uint8_t want[256], val[64];
  size_t wlen = unhex (p->hex, want, sizeof want);
  struct kmip_tree *t;
  struct kmip_enc e;
  bool ok = true;

  if (kmip_decode (want, wlen, NULL, &t) < 0) {
    FAIL ("primitive %s: decode: %s", p->type, kmip_last_error ());
    return;
  }
  const struct kmip_node *n = t->root;
  if (n->tag != tag || strcmp (kmip_type_name (n->type), p->type) != 0)
    FAIL ("primitive %s: decoded tag 0x%06" PRIX32 " type %s", p->type, n->tag,
          kmip_type_name (n->type));

  kmip_enc_init (&e);
  switch (n->type) {
  case KMIP_TYPE_INTEGER:
    ok = n->v.i32 == p->ival;
    kmip_enc_int (&e, tag, (int32_t) p->ival);
    break;
  case KMIP_TYPE_LONG_INTEGER:
    ok = n->v.i64 == p->ival;
    kmip_enc_long (&e, tag, p->ival);
    break;
  case KMIP_TYPE_ENUMERATION:
    ok = n->v.u32 == p->ival;
    kmip_enc_enum (&e, tag, (uint32_t) p->ival);
    break;
  case KMIP_TYPE_INTERVAL:
    ok = n->v.u32 == p->ival;
    kmip_enc_interval (&e, tag, (uint32_t) p->ival);
    break;
  case KMIP_TYPE_BOOLEAN:
    ok = n->v.b == (p->ival != 0);
    kmip_enc_bool (&e, tag, p->ival != 0);
    break;
  case KMIP_TYPE_DATE_TIME:
    ok = n->v.i64 == p->ival;
    kmip_enc_datetime (&e, tag, p->ival);
    break;
  case KMIP_TYPE_TEXT_STRING:
    ok = n->len == strlen (p->sval) && strcmp (n->v.str.s, p->sval) == 0;
    kmip_enc_str (&e, tag, p->sval);
    break;
  case KMIP_TYPE_BYTE_STRING: {
    size_t vlen = unhex (p->sval, val, sizeof val);
    ok = n->len == vlen && memcmp (n->v.str.p, val, vlen) == 0;
    kmip_enc_bytes (&e, tag, val, vlen);
    break;
  }
  case KMIP_TYPE_BIG_INTEGER: {
    /* The minimal two's complement, sign-extended, must be the decoded 8-byte multiple. */
    size_t vlen = unhex (p->bigint_hex, val, sizeof val);
    ok = n->len >= vlen && memcmp (n->v.str.p + (n->len - vlen), val, vlen) == 0;
    for (size_t i = 0; ok && i < n->len - vlen; i++)
      ok = n->v.str.p[i] == ((val[0] & 0x80) ? 0xFF : 0x00);
    kmip_enc_bigint (&e, tag, val, vlen);
    break;
  }
  case KMIP_TYPE_STRUCTURE: {
    /* {Enumeration 0x420004=254, Integer 0x420005=255} */
    const struct kmip_node *a = n->child, *b = a ? a->next : NULL;
    ok = n->nchildren == 2 && a && b && b->next == NULL &&
      a->tag == 0x420004 && a->type == KMIP_TYPE_ENUMERATION && a->v.u32 == 254 &&
      b->tag == 0x420005 && b->type == KMIP_TYPE_INTEGER && b->v.i32 == 255 &&
      a->parent == n && b->parent == n;
    kmip_enc_begin (&e, tag);
    kmip_enc_enum (&e, 0x420004, 254);
    kmip_enc_int (&e, 0x420005, 255);
    kmip_enc_end (&e);
    break;
  }
  }
  if (!ok)
    FAIL ("primitive %s: decoded value differs from the documented value", p->type);
  char what[64];
  snprintf (what, sizeof what, "primitive %s from scratch", p->type);
  expect_bytes (what, &e, want, wlen);
  kmip_enc_free (&e);
  kmip_tree_free (t);
}

static const struct ttlv_message *
vector (const char *name)
{
  for (size_t i = 0; i < N (ttlv_messages); i++)
    if (strcmp (ttlv_messages[i].name, name) == 0)
      return &ttlv_messages[i];
  fprintf (stderr, "no vector %s\n", name);
  exit (1);
}

static void
header (struct kmip_enc *e, uint32_t tag, int64_t timestamp)
{
  kmip_enc_begin (e, tag);
  kmip_enc_begin (e, KMIP_TAG_PROTOCOL_VERSION);
  kmip_enc_int (e, KMIP_TAG_PROTOCOL_VERSION_MAJOR, 1);
  kmip_enc_int (e, KMIP_TAG_PROTOCOL_VERSION_MINOR, 1);
  kmip_enc_end (e);
  if (timestamp)
    kmip_enc_datetime (e, KMIP_TAG_TIME_STAMP, timestamp);
  kmip_enc_int (e, KMIP_TAG_BATCH_COUNT, 1);
  kmip_enc_end (e);
}

static void
attribute_text (struct kmip_enc *e, const char *name)
{
  kmip_enc_begin (e, KMIP_TAG_ATTRIBUTE);
  kmip_enc_str (e, KMIP_TAG_ATTRIBUTE_NAME, name);
}

/* 3. Whole messages built with the encoder, as the client will build them. */
static void
test_encode_messages (void)
{
  uint8_t want[4096];
  size_t wlen;
  struct kmip_enc e;
  const char *uid = "49a1ca88-6bea-4fb2-b450-7e58802c3038";

  kmip_enc_init (&e);

  /* KMIP 1.1 test case 3.1.1: Create an AES-128 key. */
  wlen = unhex (vector ("libkmip:kmip_1_1_test_suite_3_1_1_0_a")->hex, want, sizeof want);
  kmip_enc_begin (&e, KMIP_TAG_REQUEST_MESSAGE);
  header (&e, KMIP_TAG_REQUEST_HEADER, 0);
  kmip_enc_begin (&e, KMIP_TAG_BATCH_ITEM);
  kmip_enc_enum (&e, KMIP_TAG_OPERATION, KMIP_OPERATION_CREATE);
  kmip_enc_begin (&e, KMIP_TAG_REQUEST_PAYLOAD);
  kmip_enc_enum (&e, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
  kmip_enc_begin (&e, KMIP_TAG_TEMPLATE_ATTRIBUTE);
  attribute_text (&e, "Cryptographic Algorithm");
  kmip_enc_enum (&e, KMIP_TAG_ATTRIBUTE_VALUE, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
  kmip_enc_end (&e);
  attribute_text (&e, "Cryptographic Length");
  kmip_enc_int (&e, KMIP_TAG_ATTRIBUTE_VALUE, 128);
  kmip_enc_end (&e);
  attribute_text (&e, "Cryptographic Usage Mask");
  kmip_enc_int (&e, KMIP_TAG_ATTRIBUTE_VALUE, KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT |
                KMIP_CRYPTOGRAPHIC_USAGE_MASK_DECRYPT);
  kmip_enc_end (&e);
  kmip_enc_end (&e);
  kmip_enc_end (&e);
  kmip_enc_end (&e);
  kmip_enc_end (&e);
  expect_bytes ("Create request from scratch", &e, want, wlen);

  /* Get request. The same encoder is reused: reset keeps the buffer. */
  kmip_enc_reset (&e);
  wlen = unhex (vector ("pykmip:TestRequestMessage.get")->hex, want, sizeof want);
  kmip_enc_begin (&e, KMIP_TAG_REQUEST_MESSAGE);
  header (&e, KMIP_TAG_REQUEST_HEADER, 0);
  kmip_enc_begin (&e, KMIP_TAG_BATCH_ITEM);
  kmip_enc_enum (&e, KMIP_TAG_OPERATION, KMIP_OPERATION_GET);
  kmip_enc_begin (&e, KMIP_TAG_REQUEST_PAYLOAD);
  kmip_enc_str (&e, KMIP_TAG_UNIQUE_IDENTIFIER, uid);
  kmip_enc_end (&e);
  kmip_enc_end (&e);
  kmip_enc_end (&e);
  expect_bytes ("Get request from scratch", &e, want, wlen);

  /* Locate by name and object type. */
  kmip_enc_reset (&e);
  wlen = unhex (vector ("pykmip:TestRequestMessage.locate")->hex, want, sizeof want);
  kmip_enc_begin (&e, KMIP_TAG_REQUEST_MESSAGE);
  header (&e, KMIP_TAG_REQUEST_HEADER, 0);
  kmip_enc_begin (&e, KMIP_TAG_BATCH_ITEM);
  kmip_enc_enum (&e, KMIP_TAG_OPERATION, KMIP_OPERATION_LOCATE);
  kmip_enc_begin (&e, KMIP_TAG_REQUEST_PAYLOAD);
  attribute_text (&e, "Object Type");
  kmip_enc_enum (&e, KMIP_TAG_ATTRIBUTE_VALUE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
  kmip_enc_end (&e);
  attribute_text (&e, "Name");
  kmip_enc_begin (&e, KMIP_TAG_ATTRIBUTE_VALUE);
  kmip_enc_str (&e, KMIP_TAG_NAME_VALUE, "Key1");
  kmip_enc_enum (&e, KMIP_TAG_NAME_TYPE, KMIP_NAME_TYPE_UNINTERPRETED_TEXT_STRING);
  kmip_enc_end (&e);
  kmip_enc_end (&e);
  kmip_enc_end (&e);
  kmip_enc_end (&e);
  kmip_enc_end (&e);
  expect_bytes ("Locate request from scratch", &e, want, wlen);

  /* Get response with a 3DES key (what the client parses). */
  static const uint8_t key[] = {
    0x73, 0x67, 0x57, 0x80, 0x51, 0x01, 0x2A, 0x6D, 0x13, 0x4A, 0x85, 0x5E,
    0x25, 0xC8, 0xCD, 0x5E, 0x4C, 0xA1, 0x31, 0x45, 0x57, 0x29, 0xD3, 0xC8,
  };
  kmip_enc_reset (&e);
  wlen = unhex (vector ("pykmip:TestResponseMessage.get")->hex, want, sizeof want);
  kmip_enc_begin (&e, KMIP_TAG_RESPONSE_MESSAGE);
  header (&e, KMIP_TAG_RESPONSE_HEADER, 1335514343);     /* 2012-04-27T08:12:23Z */
  kmip_enc_begin (&e, KMIP_TAG_BATCH_ITEM);
  kmip_enc_enum (&e, KMIP_TAG_OPERATION, KMIP_OPERATION_GET);
  kmip_enc_enum (&e, KMIP_TAG_RESULT_STATUS, KMIP_RESULT_STATUS_SUCCESS);
  kmip_enc_begin (&e, KMIP_TAG_RESPONSE_PAYLOAD);
  kmip_enc_enum (&e, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
  kmip_enc_str (&e, KMIP_TAG_UNIQUE_IDENTIFIER, uid);
  kmip_enc_begin (&e, KMIP_TAG_SYMMETRIC_KEY);
  kmip_enc_begin (&e, KMIP_TAG_KEY_BLOCK);
  kmip_enc_enum (&e, KMIP_TAG_KEY_FORMAT_TYPE, KMIP_KEY_FORMAT_TYPE_RAW);
  kmip_enc_begin (&e, KMIP_TAG_KEY_VALUE);
  kmip_enc_bytes (&e, KMIP_TAG_KEY_MATERIAL, key, sizeof key);
  kmip_enc_end (&e);
  kmip_enc_enum (&e, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_TRIPLE_DES);
  kmip_enc_int (&e, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, 168);
  for (int i = 0; i < 5; i++)
    kmip_enc_end (&e);
  expect_bytes ("Get response from scratch", &e, want, wlen);
  kmip_enc_free (&e);
}

/* 4. The lookup helpers on a real response: what the operation layer will do. */
static void
test_lookup (void)
{
  uint8_t buf[4096];
  size_t len = unhex (vector ("pykmip:TestResponseMessage.get")->hex, buf, sizeof buf);
  struct kmip_tree *t;
  uint32_t op, status;
  int32_t major, clen;
  const char *uid;
  size_t uidlen, klen;
  const uint8_t *key;
  const struct kmip_node *item, *payload, *n;

  if (kmip_decode (buf, len, NULL, &t) < 0) {
    FAIL ("lookup: decode: %s", kmip_last_error ());
    return;
  }
  const struct kmip_node *root = t->root;
  n = kmip_find_path (root, KMIP_TAG_RESPONSE_HEADER, KMIP_TAG_PROTOCOL_VERSION,
                      KMIP_TAG_PROTOCOL_VERSION_MAJOR, 0);
  if (kmip_node_int (n, &major) < 0 || major != 1)
    FAIL ("lookup: protocol major via path");
  if (kmip_get_struct (root, KMIP_TAG_BATCH_ITEM, &item) < 0 ||
      kmip_get_enum (item, KMIP_TAG_OPERATION, &op) < 0 || op != KMIP_OPERATION_GET ||
      kmip_get_enum (item, KMIP_TAG_RESULT_STATUS, &status) < 0 ||
      status != KMIP_RESULT_STATUS_SUCCESS ||
      kmip_get_struct (item, KMIP_TAG_RESPONSE_PAYLOAD, &payload) < 0 ||
      kmip_get_text (payload, KMIP_TAG_UNIQUE_IDENTIFIER, &uid, &uidlen) < 0 ||
      uidlen != 36 || strcmp (uid, "49a1ca88-6bea-4fb2-b450-7e58802c3038") != 0)
    FAIL ("lookup: operation/status/uid: %s", kmip_last_error ());
  n = kmip_find_path (payload, KMIP_TAG_SYMMETRIC_KEY, KMIP_TAG_KEY_BLOCK, 0);
  if (kmip_get_int (n, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, &clen) < 0 || clen != 168)
    FAIL ("lookup: cryptographic length");
  if (kmip_get_bytes (kmip_find (n, KMIP_TAG_KEY_VALUE), KMIP_TAG_KEY_MATERIAL, &key, &klen) < 0
      || klen != 24 || key[0] != 0x73 || key[23] != 0xC8)
    FAIL ("lookup: key material");

  /* Missing and mistyped fields: distinct codes, messages that name the tag and the parent. */
  if (kmip_get_enum (item, KMIP_TAG_RESULT_REASON, &op) != -ENOENT ||
      strstr (kmip_last_error (), "ResultReason missing from BatchItem") == NULL)
    FAIL ("lookup: missing field: got '%s'", kmip_last_error ());
  if (kmip_get_int (item, KMIP_TAG_OPERATION, &clen) != KMIP_E_DECODE ||
      strstr (kmip_last_error (), "Operation in BatchItem is a Enumeration") == NULL)
    FAIL ("lookup: wrong type: got '%s'", kmip_last_error ());
  if (kmip_find (NULL, KMIP_TAG_OPERATION) != NULL || kmip_find_next (NULL) != NULL ||
      kmip_find_path (root, KMIP_TAG_BATCH_ITEM, KMIP_TAG_ATTRIBUTE, 0) != NULL)
    FAIL ("lookup: absent paths");
  if (kmip_count (root, KMIP_TAG_BATCH_ITEM) != 1 || root->nchildren != 2 ||
      kmip_find_next (item) != NULL)
    FAIL ("lookup: counts");
  kmip_tree_free (t);

  /* Repeated fields: the Create request's three Attributes in order. */
  len = unhex (vector ("libkmip:kmip_1_1_test_suite_3_1_1_0_a")->hex, buf, sizeof buf);
  if (kmip_decode (buf, len, NULL, &t) < 0) {
    FAIL ("lookup: decode create: %s", kmip_last_error ());
    return;
  }
  n = kmip_find_path (t->root, KMIP_TAG_BATCH_ITEM, KMIP_TAG_REQUEST_PAYLOAD,
                      KMIP_TAG_TEMPLATE_ATTRIBUTE, 0);
  const char *names[3] = { "Cryptographic Algorithm", "Cryptographic Length",
                           "Cryptographic Usage Mask" };
  int k = 0;
  for (const struct kmip_node *a = kmip_find (n, KMIP_TAG_ATTRIBUTE); a; a = kmip_find_next (a)) {
    const char *s;
    if (k >= 3 || kmip_get_text (a, KMIP_TAG_ATTRIBUTE_NAME, &s, NULL) < 0 ||
        strcmp (s, names[k]) != 0)
      FAIL ("lookup: attribute %d", k);
    k++;
  }
  if (k != 3 || kmip_count (n, KMIP_TAG_ATTRIBUTE) != 3)
    FAIL ("lookup: %d attributes, want 3", k);
  kmip_tree_free (t);
}

/* Decode must fail with code 'want' and a message containing 'msg'. */
static void
expect_reject (const char *what, const uint8_t *buf, size_t len,
               const struct kmip_decode_limits *lim, int want, const char *msg)
{
  struct kmip_tree *t = (struct kmip_tree *) 1;
  int r = kmip_decode (buf, len, lim, &t);

  if (r == 0) {
    FAIL ("%s: accepted", what);
    kmip_tree_free (t);
  }
  else if (r != want || strstr (kmip_last_error (), msg) == NULL)
    FAIL ("%s: got %d '%s', want %d '...%s...'", what, r, kmip_last_error (), want, msg);
  else if (t != NULL)
    FAIL ("%s: *out not cleared", what);
}

static size_t
put_item (uint8_t *p, uint32_t tag, uint8_t type, uint32_t len)
{
  p[0] = tag >> 16; p[1] = tag >> 8; p[2] = tag; p[3] = type;
  p[4] = len >> 24; p[5] = len >> 16; p[6] = len >> 8; p[7] = len;
  return 8;
}

/* 5. Malformed and hostile input. */
static void
test_reject (void)
{
  static uint8_t buf[8 * 400];
  uint8_t v[4096] = { 0 };
  size_t len;
  struct kmip_tree *t;

  expect_reject ("empty", v, 0, NULL, KMIP_E_DECODE, "empty");

  /* A structure claiming more than the message holds. */
  len = unhex ("42007801000000F0" "42007702000000040000000100000000", v, sizeof v);
  expect_reject ("structure overrun", v, len, NULL, KMIP_E_DECODE, "length 240 (240 padded)");
  /* A child overrunning its structure though the message is long enough. */
  len = unhex ("4200780100000008" "4200770200000004" "0000000100000000", v, sizeof v);
  expect_reject ("child overrun", v, len, NULL, KMIP_E_DECODE, "only 0 bytes remain");
  /* Length 0xFFFFFFFF must not wrap when padded. */
  len = unhex ("42007808FFFFFFFF00000000", v, sizeof v);
  expect_reject ("huge length", v, len, NULL, KMIP_E_DECODE, "length 4294967295 (4294967296 padded)");
  len = unhex ("4200780100000004" "0000000000000000", v, sizeof v);
  expect_reject ("structure length not 8k", v, len, NULL, KMIP_E_DECODE, "multiple of 8");
  len = unhex ("42002002000000080000000000000008", v, sizeof v);
  expect_reject ("integer of 8 bytes", v, len, NULL, KMIP_E_DECODE, "wrong length");
  len = unhex ("42002003000000040000000800000000", v, sizeof v);
  expect_reject ("long of 4 bytes", v, len, NULL, KMIP_E_DECODE, "wrong length");
  len = unhex ("42002004000000040102030400000000", v, sizeof v);
  expect_reject ("bigint of 4 bytes", v, len, NULL, KMIP_E_DECODE, "big integer");
  len = unhex ("42002006000000080000000000000002", v, sizeof v);
  expect_reject ("boolean 2", v, len, NULL, KMIP_E_DECODE, "boolean neither");
  len = unhex ("42002006000000080100000000000001", v, sizeof v);
  expect_reject ("boolean high byte", v, len, NULL, KMIP_E_DECODE, "boolean neither");
  len = unhex ("42002006000000040000000100000000", v, sizeof v);
  expect_reject ("boolean of 4 bytes", v, len, NULL, KMIP_E_DECODE, "boolean with");
  len = unhex ("420020070000000B48656C6C6F20576F726C64000000FF00", v, sizeof v);
  expect_reject ("text padding not zero", v, len, NULL, KMIP_E_DECODE, "non-zero padding");
  len = unhex ("420020070000000B48656C6C6F20576F726C64", v, sizeof v);
  expect_reject ("text not padded", v, len, NULL, KMIP_E_DECODE, "length 11 (16 padded) but only 11");
  len = unhex ("4200200200000004000000080000FF00", v, sizeof v);
  expect_reject ("integer padding", v, len, NULL, KMIP_E_DECODE, "non-zero padding");
  len = unhex ("4200200B000000040000000800000000", v, sizeof v);
  expect_reject ("type 0x0B", v, len, NULL, KMIP_E_DECODE, "unknown item type 0x0B");
  len = unhex ("42002000000000040000000800000000", v, sizeof v);
  expect_reject ("type 0x00", v, len, NULL, KMIP_E_DECODE, "unknown item type 0x00");
  len = unhex ("43002002000000040000000800000000", v, sizeof v);
  expect_reject ("tag prefix 0x43", v, len, NULL, KMIP_E_DECODE, "bad tag 0x430020");
  len = unhex ("42002002000000040000000800000000" "42002002000000040000000800000000", v,
               sizeof v);
  expect_reject ("two top-level items", v, len, NULL, KMIP_E_DECODE, "trailing bytes");
  /* Extension tags (0x54XXXX) and unknown 0x42 tags are kept, not refused. */
  len = unhex ("42007801000000205400010200000004000000070000000042FFFF0600000008"
               "0000000000000001", v, sizeof v);
  if (kmip_decode (v, len, NULL, &t) < 0)
    FAIL ("unknown tags refused: %s", kmip_last_error ());
  else {
    if (t->nnodes != 3 || kmip_find (t->root, 0x540001) == NULL ||
        kmip_find (t->root, 0x42FFFF) == NULL || kmip_tag_name (0x42FFFF) != NULL)
      FAIL ("unknown tags not kept");
    kmip_tree_free (t);
  }

  /* Size cap: the message is refused before anything is allocated. */
  len = unhex (vector ("pykmip:TestRequestMessage.get")->hex, v, sizeof v);
  struct kmip_decode_limits small = { .max_size = 151 };
  expect_reject ("over max_size", v, len, &small, KMIP_E_TOO_BIG, "exceeds the limit");
  small.max_size = 152;
  if (kmip_decode (v, len, &small, &t) < 0)
    FAIL ("at max_size: %s", kmip_last_error ());
  else
    kmip_tree_free (t);
  struct kmip_decode_limits few = { .max_nodes = 9 };
  expect_reject ("over max_nodes", v, len, &few, KMIP_E_TOO_BIG, "more than 9 items");

  /* Frame check for transports. */
  size_t total;
  if (kmip_ttlv_frame_length (v, 0, &total) < 0 || total != len)
    FAIL ("frame length: %s", kmip_last_error ());
  uint8_t hdr[8];
  put_item (hdr, KMIP_TAG_RESPONSE_MESSAGE, KMIP_TYPE_STRUCTURE, 0xFFFFFFF8);
  if (kmip_ttlv_frame_length (hdr, 0, &total) != KMIP_E_TOO_BIG)
    FAIL ("frame length 4 GiB accepted");
  put_item (hdr, KMIP_TAG_RESPONSE_MESSAGE, KMIP_TYPE_STRUCTURE, 1024 * 1024 - 8);
  if (kmip_ttlv_frame_length (hdr, 0, &total) < 0 || total != 1024 * 1024)
    FAIL ("frame length at 1 MiB refused");
  put_item (hdr, KMIP_TAG_RESPONSE_MESSAGE, KMIP_TYPE_STRUCTURE, 1024 * 1024);
  if (kmip_ttlv_frame_length (hdr, 0, &total) != KMIP_E_TOO_BIG)
    FAIL ("frame length over 1 MiB accepted");
  put_item (hdr, KMIP_TAG_RESPONSE_MESSAGE, KMIP_TYPE_INTEGER, 8);
  if (kmip_ttlv_frame_length (hdr, 0, &total) != KMIP_E_DECODE)
    FAIL ("frame of an integer accepted");
  memcpy (hdr, "HTTP/1.1", 8);
  if (kmip_ttlv_frame_length (hdr, 0, &total) != KMIP_E_DECODE)
    FAIL ("frame of HTTP accepted");

  /* Nesting: 32 structures are fine by default, 33 are not; a limit raised past its ceiling
   * still stops at the ceiling (256). */
  struct kmip_decode_limits deep = { .max_depth = 9999 };
  for (unsigned depth = 32; depth <= 400; depth += depth == 32 ? 1 : 367) {
    len = 0;
    for (unsigned i = 0; i < depth; i++)
      len += put_item (buf + len, KMIP_TAG_ATTRIBUTE, KMIP_TYPE_STRUCTURE,
                       8 * (depth - 1 - i));
    if (depth == 400) {
      expect_reject ("nesting 400", buf, len, &deep, KMIP_E_DECODE, "deeper than 256");
      continue;
    }
    if (depth == 33)
      expect_reject ("nesting 33", buf, len, NULL, KMIP_E_DECODE, "deeper than 32");
    if (kmip_decode (buf, len, depth == 33 ? &deep : NULL, &t) < 0) {
      FAIL ("nesting %u: %s", depth, kmip_last_error ());
      continue;
    }
    const struct kmip_node *n = t->root;
    unsigned d = 1;
    while (n->child) {
      n = n->child;
      d++;
    }
    if (d != depth)
      FAIL ("nesting: depth %u decoded as %u", depth, d);
    /* Re-encoding a deep tree round-trips (iterative walk). */
    struct kmip_enc e;
    kmip_enc_init (&e);
    kmip_enc_node (&e, t->root);
    expect_bytes ("deep tree re-encoded", &e, buf, len);
    kmip_enc_free (&e);
    kmip_tree_free (t);
  }
}

/* 6. Encoder misuse and limits. */
static void
test_encoder_errors (void)
{
  struct kmip_enc e;
  const uint8_t *out;
  size_t len;
  static uint8_t big[2048];

  kmip_enc_init (&e);
  if (kmip_enc_end (&e) != -EINVAL || kmip_enc_int (&e, 0x420020, 1) != -EINVAL ||
      kmip_enc_finish (&e, &out, &len) != -EINVAL)
    FAIL ("encoder: end without begin is not sticky");
  kmip_enc_reset (&e);
  kmip_enc_begin (&e, KMIP_TAG_REQUEST_MESSAGE);
  if (kmip_enc_finish (&e, &out, &len) != -EINVAL)
    FAIL ("encoder: open structure finished");
  kmip_enc_reset (&e);
  if (kmip_enc_int (&e, 0x1000000, 1) != -EINVAL)
    FAIL ("encoder: 4-byte tag accepted");
  kmip_enc_reset (&e);
  e.max_size = 1024;
  kmip_enc_begin (&e, KMIP_TAG_REQUEST_MESSAGE);
  if (kmip_enc_bytes (&e, KMIP_TAG_KEY_MATERIAL, big, sizeof big) != KMIP_E_TOO_BIG ||
      kmip_enc_end (&e) != KMIP_E_TOO_BIG)
    FAIL ("encoder: max_size not enforced");
  kmip_enc_reset (&e);
  if (kmip_enc_bigint (&e, 0x420020, big, 0) != -EINVAL)
    FAIL ("encoder: empty bigint accepted");
  kmip_enc_free (&e);

  /* Growth across many reallocations keeps earlier bytes. */
  kmip_enc_init (&e);
  kmip_enc_begin (&e, KMIP_TAG_REQUEST_MESSAGE);
  for (int i = 0; i < 1000; i++)
    kmip_enc_int (&e, KMIP_TAG_BATCH_COUNT, i);
  kmip_enc_end (&e);
  struct kmip_tree *t;
  if (kmip_enc_finish (&e, &out, &len) < 0 || len != 8 + 16 * 1000 ||
      kmip_decode (out, len, NULL, &t) < 0)
    FAIL ("encoder: growth");
  else {
    int k = 0;
    for (const struct kmip_node *n = t->root->child; n; n = n->next, k++)
      if (n->v.i32 != k)
        break;
    if (k != 1000)
      FAIL ("encoder: growth lost data at %d", k);
    kmip_tree_free (t);
  }
  kmip_enc_free (&e);
}

/* 7. Name tables. */
static void
test_names (void)
{
  uint32_t tag, v;

  if (strcmp (kmip_tag_name (0x420078), "RequestMessage") != 0 ||
      strcmp (kmip_tag_name (0x42006A), "ProtocolVersionMajor") != 0 ||
      strcmp (kmip_tag_name (0x420094), "UniqueIdentifier") != 0 ||
      kmip_tag_name (0x420000) != NULL || kmip_tag_name (0x540000) != NULL)
    FAIL ("names: tag names");
  if (kmip_tag_by_name ("BatchItem", &tag) < 0 || tag != 0x42000F ||
      kmip_tag_by_name ("NoSuchTag", &tag) != -ENOENT)
    FAIL ("names: tag by name");
  /* Every named tag maps back to itself. */
  for (uint32_t t = 0x420000; t < 0x420400; t++) {
    const char *n = kmip_tag_name (t);
    if (n && (kmip_tag_by_name (n, &tag) < 0 || tag != t))
      FAIL ("names: %s does not map back to 0x%06" PRIX32, n, t);
  }
  if (strcmp (kmip_enum_name (KMIP_TAG_OPERATION, 10), "Get") != 0 ||
      strcmp (kmip_enum_name (KMIP_TAG_OBJECT_TYPE, 2), "SymmetricKey") != 0 ||
      strcmp (kmip_enum_name (KMIP_TAG_RESULT_REASON, 1), "ItemNotFound") != 0 ||
      strcmp (kmip_enum_name (KMIP_TAG_RESULT_REASON, 0xC), "PermissionDenied") != 0 ||
      strcmp (kmip_enum_name (KMIP_TAG_STATE, 2), "Active") != 0 ||
      strcmp (kmip_enum_name (KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, 3), "AES") != 0 ||
      strcmp (kmip_enum_name (KMIP_TAG_KEY_FORMAT_TYPE, 7), "TransparentSymmetricKey") != 0 ||
      strcmp (kmip_enum_name (KMIP_TAG_REVOCATION_REASON_CODE, 2), "KeyCompromise") != 0 ||
      strcmp (kmip_enum_name (KMIP_TAG_OPERATION, 0x1E), "DiscoverVersions") != 0 ||
      strcmp (kmip_enum_name (KMIP_TAG_MASK_GENERATOR_HASHING_ALGORITHM, 6), "SHA256") != 0 ||
      kmip_enum_name (KMIP_TAG_OPERATION, 0xFFFF) != NULL ||
      kmip_enum_name (KMIP_TAG_UNIQUE_BATCH_ITEM_ID, 1) != NULL)
    FAIL ("names: enum names");
  if (kmip_enum_by_name (KMIP_TAG_OPERATION, "Revoke", &v) < 0 || v != KMIP_OPERATION_REVOKE)
    FAIL ("names: enum by name");
  if (strcmp (kmip_mask_bit_name (KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK, 4), "Encrypt") != 0)
    FAIL ("names: usage mask bit");
  if (strcmp (kmip_type_name (KMIP_TYPE_DATE_TIME), "DateTime") != 0 ||
      kmip_type_name (0) != NULL || kmip_type_name (11) != NULL ||
      kmip_type_by_name ("Interval") != KMIP_TYPE_INTERVAL)
    FAIL ("names: type names");
}

/* 1 and 2 over every vector of the table. */
static void
test_messages_roundtrip (void)
{
  for (size_t i = 0; i < N (ttlv_messages); i++)
    test_roundtrip (ttlv_messages[i].name, ttlv_messages[i].hex);
}

static void
test_primitives (void)
{
  for (size_t i = 0; i < N (ttlv_primitives); i++) {
    test_roundtrip (ttlv_primitives[i].type, ttlv_primitives[i].hex);
    test_primitive (&ttlv_primitives[i]);
  }
}

int
main (void)
{
  RUN (test_messages_roundtrip);
  RUN (test_primitives);
  RUN (test_encode_messages);
  RUN (test_lookup);
  RUN (test_reject);
  RUN (test_encoder_errors);
  RUN (test_names);
  printf ("ttlv vectors: %zu messages and %zu primitives\n", N (ttlv_messages),
          N (ttlv_primitives));
  return check_exit ();
}
