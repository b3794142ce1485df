/* SPDX-License-Identifier: BSD-3-Clause */
/* Key operations: Create (+ Activate + Get in one batch), Register, Get, Locate, Activate, Revoke,
 * Destroy, ReKey, and server-side Encrypt / Decrypt. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

bool
kmip_uid_text_ok (const char *s, size_t len)
{
  if (len == 0 || len >= KMIP_UID_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
      return false;
  return true;
}

int
kmip_check_answer_uid (const struct kmip_node *payload, const char *opname, const char *uid)
{
  const char *s;
  size_t len;
  char got[KMIP_MESSAGE_TEXT_MAX], want[KMIP_MESSAGE_TEXT_MAX];

  if (payload == NULL || kmip_find (payload, KMIP_TAG_UNIQUE_IDENTIFIER) == NULL)
    return 0;
  if (kmip_get_text (payload, KMIP_TAG_UNIQUE_IDENTIFIER, &s, &len) < 0)
    return kmip_set_error (KMIP_E_DECODE, "%s %s: the answer's Unique Identifier is "
                           "malformed", opname, kmip_escape_text (uid, strlen (uid), want,
                                                                  sizeof want));
  if (len == strlen (uid) && memcmp (s, uid, len) == 0)
    return 0;
  return kmip_set_error (KMIP_E_DECODE, "%s %s: the KMS answered for another object (\"%s\"): "
                         "answer refused", opname,
                         kmip_escape_text (uid, strlen (uid), want, sizeof want),
                         kmip_escape_text (s, len, got, sizeof got));
}

/* Copy a Unique Identifier from a payload into the caller's buffer. */
static int
take_uid (const struct kmip_node *payload, const char *opname, char uid[KMIP_UID_MAX])
{
  const char *s;
  size_t len;

  if (payload == NULL || kmip_get_text (payload, KMIP_TAG_UNIQUE_IDENTIFIER, &s, &len) < 0)
    return kmip_set_error (KMIP_E_DECODE, "%s: the response has no Unique Identifier", opname);
  if (!kmip_uid_text_ok (s, len))
    return kmip_set_error (KMIP_E_DECODE, "%s: the server returned a malformed Unique "
                           "Identifier (%zu bytes, empty, too long or with control "
                           "characters)", opname, len);
  memcpy (uid, s, len);
  uid[len] = '\0';
  return 0;
}

static int
check_uid_arg (const char *uid)
{
  if (uid == NULL || uid[0] == '\0' || strlen (uid) >= KMIP_UID_MAX)
    return kmip_set_error (-EINVAL, "invalid key identifier (empty or longer than %d bytes)",
                           KMIP_UID_MAX - 1);
  return 0;
}

/* ---- Create, with Activate and Get through the ID placeholder */

struct create_args {
  const struct kmip_create_params *p;
  bool activate, get;           /* batch items after Create, naming no identifier */
};

static void
build_create (struct kmip_req *req, const void *argsv)
{
  const struct create_args *c = argsv;
  const struct kmip_create_params *p = c->p;
  struct kmip_attr a[4] = {
    { .tag = KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, .value = KMIP_CRYPTOGRAPHIC_ALGORITHM_AES },
    { .tag = KMIP_TAG_CRYPTOGRAPHIC_LENGTH, .value = p->length_bits },
    { .tag = KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK, .value = p->usage_mask },
    { .tag = KMIP_TAG_NAME, .text = p->name },
  };

  kmip_req_item_begin (req, KMIP_OPERATION_CREATE);
  kmip_enc_enum (&req->e, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
  kmip_enc_attr_list (req, KMIP_TAG_TEMPLATE_ATTRIBUTE, a, p->name ? 4 : 3);
  kmip_req_item_end (req);
  /* No Unique Identifier: the server uses the ID placeholder set by Create. */
  if (c->activate) {
    kmip_req_item_begin (req, KMIP_OPERATION_ACTIVATE);
    kmip_req_item_end (req);
  }
  if (c->get) {
    kmip_req_item_begin (req, KMIP_OPERATION_GET);
    kmip_enc_enum (&req->e, KMIP_TAG_KEY_FORMAT_TYPE, KMIP_KEY_FORMAT_TYPE_RAW);
    kmip_req_item_end (req);
  }
}

/* The whole message was refused (PyKMIP answers one failed item without an operation when
 * it cannot parse a request): nothing in it was done. */
static bool
refused_message (const struct kmip_resp *resp)
{
  return resp->nitems == 1 && resp->items[0].operation == 0 &&
         resp->items[0].status == KMIP_RESULT_STATUS_OPERATION_FAILED &&
         resp->items[0].reason == KMIP_RESULT_REASON_INVALID_MESSAGE;
}

static int
create_params (const struct kmip_create_params *p, struct kmip_create_params *q)
{
  *q = *p;
  if (q->length_bits == 0)
    q->length_bits = 256;
  if (q->length_bits != 128 && q->length_bits != 192 && q->length_bits != 256)
    return kmip_set_error (-EINVAL, "AES key length must be 128, 192 or 256 bits, not %u",
                           q->length_bits);
  if (q->usage_mask == 0)
    q->usage_mask = KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT | KMIP_CRYPTOGRAPHIC_USAGE_MASK_DECRYPT |
      KMIP_CRYPTOGRAPHIC_USAGE_MASK_WRAP_KEY | KMIP_CRYPTOGRAPHIC_USAGE_MASK_UNWRAP_KEY;
  return 0;
}

/* Create (then Activate if q->activate, then Get if get) in as few messages as the server
 * accepts. Returns the key length (get) or 0. */
static int
create_batch (struct kmip_client *c, const struct kmip_create_params *q, bool get,
              char uid[KMIP_UID_MAX], uint8_t *buf, size_t bufsize)
{
  unsigned quirks = kmip_client_quirks (c);
  struct create_args a = {
    .p = q,
    .activate = q->activate && !(quirks & KMIP_QUIRK_NO_PLACEHOLDER_ACTIVATE),
    .get = get && !(quirks & KMIP_QUIRK_NO_PLACEHOLDER_GET),
  };
  unsigned n = 1 + a.activate + a.get;
  struct kmip_resp resp;
  const char *s;
  size_t i = 1, len;
  int r, klen = 0;

  uid[0] = '\0';
  r = kmip_call (c, n, build_create, &a, &resp);
  if (r < 0)
    return r;
  if (n > 1 && refused_message (&resp)) {
    /* Nothing was created. Remember what this server refuses (an Activate without
     * identifier, PyKMIP's case, is the likelier one) and ask with less. */
    kmip_resp_free (&resp);
    kmip_client_add_quirk (c, a.activate ? KMIP_QUIRK_NO_PLACEHOLDER_ACTIVATE
                                         : KMIP_QUIRK_NO_PLACEHOLDER_GET);
    return create_batch (c, q, get, uid, buf, bufsize);
  }
  r = kmip_resp_check (&resp, 0, KMIP_OPERATION_CREATE);
  if (r == 0)
    r = take_uid (resp.items[0].payload, "Create", uid);
  if (r == 0 && a.activate && (r = kmip_resp_check (&resp, i++, KMIP_OPERATION_ACTIVATE)) < 0)
    r = kmip_set_error (r, "key %s created but not activated: %s", uid, kmip_last_error ());
  if (r == 0 && a.get) {
    /* The placeholder must have named the key just created (checked before any key byte is
     * copied; an answer naming no object is refused here too). */
    if ((r = kmip_resp_check (&resp, i, KMIP_OPERATION_GET)) == 0 &&
        (resp.items[i].payload == NULL ||
         kmip_get_text (resp.items[i].payload, KMIP_TAG_UNIQUE_IDENTIFIER, &s, &len) < 0 ||
         len != strlen (uid) || memcmp (s, uid, len)))
      r = kmip_set_error (KMIP_E_DECODE, "Get through the ID placeholder did not return the "
                          "key just created (%s)", uid);
    if (r == 0)
      r = klen = kmip_extract_key_at (&resp, i, uid, buf, bufsize);
  }
  kmip_resp_free (&resp);
  if (r < 0)
    return r;
  if (get && !a.get && (klen = kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, buf, bufsize)) < 0)
    return klen;
  if (q->activate && !a.activate && (r = kmip_activate (c, uid)) < 0) {
    if (get)
      explicit_bzero (buf, (size_t) klen);
    return kmip_set_error (r, "key %s created but not activated: %s", uid, kmip_last_error ());
  }
  return get ? klen : 0;
}

int
kmip_create_aes (struct kmip_client *c, const struct kmip_create_params *p,
                 char uid[KMIP_UID_MAX])
{
  struct kmip_create_params q;
  int r;

  if ((r = create_params (p, &q)) < 0)
    return r;
  return create_batch (c, &q, false, uid, NULL, 0);
}

int
kmip_create_aes_get (struct kmip_client *c, const struct kmip_create_params *p,
                     char uid[KMIP_UID_MAX], uint8_t *buf, size_t bufsize)
{
  struct kmip_create_params q;
  int r;

  uid[0] = '\0';
  if ((r = create_params (p, &q)) < 0)
    return r;
  return create_batch (c, &q, true, uid, buf, bufsize);
}

/* ---- Register */

struct register_args {
  uint32_t type;
  const uint8_t *bytes;
  size_t len;
  const char *name;
};

static void
build_register (struct kmip_req *req, const void *argsv)
{
  const struct register_args *p = argsv;
  struct kmip_enc *e = &req->e;
  bool sym = p->type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY;
  struct kmip_attr a[2] = {
    { .tag = KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK,
      .value = sym ? (KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT | KMIP_CRYPTOGRAPHIC_USAGE_MASK_DECRYPT |
                      KMIP_CRYPTOGRAPHIC_USAGE_MASK_WRAP_KEY |
                      KMIP_CRYPTOGRAPHIC_USAGE_MASK_UNWRAP_KEY)
                   : KMIP_CRYPTOGRAPHIC_USAGE_MASK_DERIVE_KEY },
    { .tag = KMIP_TAG_NAME, .text = p->name },
  };

  kmip_req_item_begin (req, KMIP_OPERATION_REGISTER);
  kmip_enc_enum (e, KMIP_TAG_OBJECT_TYPE, p->type);
  kmip_enc_attr_list (req, KMIP_TAG_TEMPLATE_ATTRIBUTE, a, p->name ? 2 : 1);
  kmip_enc_begin (e, sym ? KMIP_TAG_SYMMETRIC_KEY : KMIP_TAG_SECRET_DATA);
  if (!sym)
    kmip_enc_enum (e, KMIP_TAG_SECRET_DATA_TYPE, KMIP_SECRET_DATA_TYPE_SEED);
  kmip_enc_begin (e, KMIP_TAG_KEY_BLOCK);
  kmip_enc_enum (e, KMIP_TAG_KEY_FORMAT_TYPE,
                 sym ? KMIP_KEY_FORMAT_TYPE_RAW : KMIP_KEY_FORMAT_TYPE_OPAQUE);
  kmip_enc_begin (e, KMIP_TAG_KEY_VALUE);
  kmip_enc_bytes (e, KMIP_TAG_KEY_MATERIAL, p->bytes, p->len);
  kmip_enc_end (e);
  if (sym) {
    kmip_enc_enum (e, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
    kmip_enc_int (e, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, (int32_t) (p->len * 8));
  }
  kmip_enc_end (e);
  kmip_enc_end (e);
  kmip_req_item_end (req);
}

int
kmip_register (struct kmip_client *c, uint32_t object_type, const uint8_t *bytes, size_t len,
               const char *name, char uid[KMIP_UID_MAX])
{
  struct register_args a = { object_type, bytes, len, name };
  struct kmip_resp resp;
  int r;

  if (object_type == KMIP_OBJECT_TYPE_SYMMETRIC_KEY && len != 16 && len != 24 && len != 32)
    return kmip_set_error (-EINVAL, "an AES key is 16, 24 or 32 bytes, not %zu", len);
  if (object_type != KMIP_OBJECT_TYPE_SYMMETRIC_KEY &&
      object_type != KMIP_OBJECT_TYPE_SECRET_DATA)
    return kmip_set_error (-EINVAL, "only symmetric keys and secret data can be registered");
  if (len == 0 || len > 4096)
    return kmip_set_error (-EINVAL, "secret of %zu bytes: expected 1 to 4096", len);
  r = kmip_call (c, 1, build_register, &a, &resp);
  if (r < 0)
    return r;
  r = kmip_resp_check (&resp, 0, KMIP_OPERATION_REGISTER);
  if (r == 0)
    r = take_uid (resp.items[0].payload, "Register", uid);
  kmip_resp_free (&resp);
  return r;
}

/* ---- Get */

struct get_args { const char *uid; uint32_t format; };

void
kmip_build_get_item (struct kmip_req *req, const char *uid, uint32_t key_format)
{
  kmip_req_item_begin (req, KMIP_OPERATION_GET);
  kmip_enc_str (&req->e, KMIP_TAG_UNIQUE_IDENTIFIER, uid);
  if (key_format)
    kmip_enc_enum (&req->e, KMIP_TAG_KEY_FORMAT_TYPE, key_format);
  kmip_req_item_end (req);
}

static void
build_get (struct kmip_req *req, const void *argsv)
{
  const struct get_args *a = argsv;

  kmip_build_get_item (req, a->uid, a->format);
}

/* Copy the key material of a Get response (batch item i) to buf. */
int
kmip_extract_key_at (const struct kmip_resp *resp, size_t i, const char *uid, uint8_t *buf,
                     size_t bufsize)
{
  const struct kmip_node *obj, *block, *value, *material;
  const uint8_t *key;
  size_t len;
  int r;

  r = kmip_resp_check (resp, i, KMIP_OPERATION_GET);
  if (r == 0)
    r = kmip_check_answer_uid (resp->items[i].payload, "Get", uid);
  if (r < 0)
    return r;
  obj = resp->items[i].payload ? kmip_find (resp->items[i].payload, KMIP_TAG_SYMMETRIC_KEY)
                               : NULL;
  if (obj == NULL && resp->items[i].payload)
    obj = kmip_find (resp->items[i].payload, KMIP_TAG_SECRET_DATA);
  if (obj == NULL)
    return kmip_set_error (KMIP_E_DECODE, "Get %s: the object is not a symmetric key or "
                           "secret data", uid);
  if ((r = kmip_get_struct (obj, KMIP_TAG_KEY_BLOCK, &block)) < 0)
    goto bad;
  if (kmip_find (block, KMIP_TAG_KEY_WRAPPING_DATA))
    return kmip_set_error (-ENOTSUP, "Get %s: the server returned the key wrapped; wrapped "
                           "keys are not supported", uid);
  if ((r = kmip_get_struct (block, KMIP_TAG_KEY_VALUE, &value)) < 0)
    goto bad;
  material = kmip_find (value, KMIP_TAG_KEY_MATERIAL);
  if (material && material->type == KMIP_TYPE_STRUCTURE)   /* Transparent Symmetric Key */
    r = kmip_get_bytes (material, KMIP_TAG_KEY, &key, &len);
  else
    r = kmip_node_bytes (material, &key, &len);
  if (r < 0)
    goto bad;
  if (len > bufsize)
    return kmip_set_error (-ENOBUFS, "Get %s: the key is %zu bytes, more than the %zu "
                           "expected", uid, len, bufsize);
  memcpy (buf, key, len);
  return (int) len;
 bad:
  return kmip_set_error (KMIP_E_DECODE, "Get %s: malformed key block: %s", uid,
                         kmip_last_error ());
}

int
kmip_extract_key (const struct kmip_resp *resp, const char *uid, uint8_t *buf, size_t bufsize)
{
  return kmip_extract_key_at (resp, 0, uid, buf, bufsize);
}

int
kmip_get_key (struct kmip_client *c, const char *uid, uint32_t key_format, uint8_t *buf,
              size_t bufsize)
{
  struct get_args a = { uid, key_format };
  struct kmip_resp resp;
  int r;

  if ((r = check_uid_arg (uid)) < 0)
    return r;
  r = kmip_call (c, 1, build_get, &a, &resp);
  if (r < 0)
    return r;
  r = kmip_extract_key (&resp, uid, buf, bufsize);
  kmip_resp_free (&resp);       /* wipes the decoded tree, key bytes included */
  return r;
}

/* ---- Get with the object's State, in one batched message */

void
kmip_build_state_item (struct kmip_req *req, const char *uid)
{
  char buf[32];

  kmip_req_item_begin (req, KMIP_OPERATION_GET_ATTRIBUTES);
  kmip_enc_str (&req->e, KMIP_TAG_UNIQUE_IDENTIFIER, uid);
  if (KMIP_ATTRS_V2 (req->version))
    kmip_enc_enum (&req->e, KMIP_TAG_ATTRIBUTE_REFERENCE, KMIP_TAG_STATE);
  else
    kmip_enc_str (&req->e, KMIP_TAG_ATTRIBUTE_NAME, kmip_attr_name (KMIP_TAG_STATE, buf,
                                                                   sizeof buf));
  kmip_req_item_end (req);
}

int
kmip_extract_state_at (const struct kmip_resp *resp, size_t i, const char *uid,
                       uint32_t *state)
{
  struct kmip_attrs attrs;
  int r;

  *state = 0;
  if ((r = kmip_resp_check (resp, i, KMIP_OPERATION_GET_ATTRIBUTES)) < 0 ||
      (r = kmip_check_answer_uid (resp->items[i].payload, "GetAttributes", uid)) < 0 ||
      (r = kmip_decode_attrs (resp->items[i].payload, resp->version, &attrs)) < 0)
    return r;
  *state = attrs.state;
  kmip_attrs_free (&attrs);
  return 0;
}

static void
build_get_state (struct kmip_req *req, const void *argsv)
{
  const struct get_args *a = argsv;

  build_get (req, argsv);
  kmip_build_state_item (req, a->uid);
}

int
kmip_get_key_state (struct kmip_client *c, const char *uid, uint32_t key_format,
                    uint8_t *buf, size_t bufsize, uint32_t *state)
{
  struct get_args a = { uid, key_format };
  struct kmip_resp resp;
  int r, n;

  *state = 0;
  if ((r = check_uid_arg (uid)) < 0)
    return r;
  r = kmip_call (c, 2, build_get_state, &a, &resp);
  if (r < 0)
    return r;
  n = kmip_extract_key (&resp, uid, buf, bufsize);
  if (n >= 0)
    r = kmip_extract_state_at (&resp, 1, uid, state);
  if (n >= 0 && r < 0)
    explicit_bzero (buf, n);
  kmip_resp_free (&resp);
  return n < 0 ? n : r < 0 ? r : n;
}

/* ---- Locate */

static void
build_locate (struct kmip_req *req, const void *argsv)
{
  const struct kmip_locate_params *p = argsv;
  struct kmip_attr a[3];
  size_t n = 0;

  kmip_req_item_begin (req, KMIP_OPERATION_LOCATE);
  if (p->max_items)
    kmip_enc_int (&req->e, KMIP_TAG_MAXIMUM_ITEMS, (int32_t) p->max_items);
  if (p->offset && req->version >= KMIP_V (1, 3))
    kmip_enc_int (&req->e, KMIP_TAG_OFFSET_ITEMS, (int32_t) p->offset);
  if (p->object_type)
    a[n++] = (struct kmip_attr) { .tag = KMIP_TAG_OBJECT_TYPE, .value = p->object_type };
  if (p->state)
    a[n++] = (struct kmip_attr) { .tag = KMIP_TAG_STATE, .value = p->state };
  if (p->name)
    a[n++] = (struct kmip_attr) { .tag = KMIP_TAG_NAME, .text = p->name };
  if (n || !KMIP_ATTRS_V2 (req->version))
    kmip_enc_attr_list (req, 0, a, n);
  kmip_req_item_end (req);
}

int
kmip_locate (struct kmip_client *c, const struct kmip_locate_params *p, char ***uidsp)
{
  struct kmip_resp resp;
  const struct kmip_node *n;
  char **uids = NULL;
  int r, count = 0;

  *uidsp = NULL;
  if (p->max_items > INT32_MAX || p->offset > INT32_MAX)
    return kmip_set_error (-EINVAL, "Locate: paging values out of range");
  r = kmip_call (c, 1, build_locate, p, &resp);
  if (r < 0)
    return r;
  r = kmip_resp_check (&resp, 0, KMIP_OPERATION_LOCATE);
  if (r < 0)
    goto out;
  /* An empty result may come without a payload. */
  uids = calloc (1, sizeof *uids);
  if (uids == NULL) {
    r = kmip_set_error (-ENOMEM, "out of memory");
    goto out;
  }
  for (n = resp.items[0].payload ? kmip_find (resp.items[0].payload,
                                              KMIP_TAG_UNIQUE_IDENTIFIER) : NULL;
       n; n = kmip_find_next (n)) {
    const char *s;
    size_t len;
    if (kmip_node_text (n, &s, &len) < 0 || !kmip_uid_text_ok (s, len)) {
      r = kmip_set_error (KMIP_E_DECODE, "Locate: the server returned a malformed Unique "
                          "Identifier (empty, too long or with control characters)");
      goto out;
    }
    if ((r = kmip_strv_add (&uids, s, len)) < 0)
      goto out;
    count++;
  }
  /* Servers before 1.3 do not page: apply the offset here so callers see one behaviour. */
  if (p->offset && resp.version < KMIP_V (1, 3)) {
    int skip = (int) p->offset < count ? (int) p->offset : count;
    for (int i = 0; i < skip; i++)
      free (uids[i]);
    memmove (uids, uids + skip, (count - skip + 1) * sizeof *uids);
    count -= skip;
  }
  *uidsp = uids;
  uids = NULL;
  r = count;
 out:
  kmip_strv_free (uids);
  kmip_resp_free (&resp);
  return r;
}

/* ---- operations on one identifier: Activate, Destroy, ReKey, Revoke */

struct uid_args {
  uint32_t op;
  const char *uid;
  uint32_t reason;
  const char *message;
};

static void
build_uid_op (struct kmip_req *req, const void *argsv)
{
  const struct uid_args *a = argsv;

  kmip_req_item_begin (req, a->op);
  kmip_enc_str (&req->e, KMIP_TAG_UNIQUE_IDENTIFIER, a->uid);
  if (a->op == KMIP_OPERATION_REVOKE) {
    kmip_enc_begin (&req->e, KMIP_TAG_REVOCATION_REASON);
    kmip_enc_enum (&req->e, KMIP_TAG_REVOCATION_REASON_CODE, a->reason);
    if (a->message)
      kmip_enc_str (&req->e, KMIP_TAG_REVOCATION_MESSAGE, a->message);
    kmip_enc_end (&req->e);
    /* A compromise needs the date it happened; we only know it is now at the latest. */
    if (a->reason == KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE ||
        a->reason == KMIP_REVOCATION_REASON_CODE_CA_COMPROMISE)
      kmip_enc_datetime (&req->e, KMIP_TAG_COMPROMISE_OCCURRENCE_DATE, time (NULL));
  }
  kmip_req_item_end (req);
}

static int
uid_op (struct kmip_client *c, const struct uid_args *a, char out_uid[KMIP_UID_MAX])
{
  struct kmip_resp resp;
  int r;

  if ((r = check_uid_arg (a->uid)) < 0)
    return r;
  r = kmip_call (c, 1, build_uid_op, a, &resp);
  if (r < 0)
    return r;
  r = kmip_resp_check (&resp, 0, a->op);
  /* ReKey answers with the new key's identifier; the others name the key they acted on. */
  if (r == 0 && out_uid)
    r = take_uid (resp.items[0].payload, kmip_enum_name (KMIP_TAG_OPERATION, a->op), out_uid);
  else if (r == 0)
    r = kmip_check_answer_uid (resp.items[0].payload,
                               kmip_enum_name (KMIP_TAG_OPERATION, a->op), a->uid);
  kmip_resp_free (&resp);
  return r;
}

int
kmip_activate (struct kmip_client *c, const char *uid)
{
  return uid_op (c, &(struct uid_args) { .op = KMIP_OPERATION_ACTIVATE, .uid = uid }, NULL);
}

int
kmip_destroy (struct kmip_client *c, const char *uid)
{
  return uid_op (c, &(struct uid_args) { .op = KMIP_OPERATION_DESTROY, .uid = uid }, NULL);
}

int
kmip_rekey (struct kmip_client *c, const char *uid, char new_uid[KMIP_UID_MAX])
{
  return uid_op (c, &(struct uid_args) { .op = KMIP_OPERATION_REKEY, .uid = uid }, new_uid);
}

int
kmip_revoke (struct kmip_client *c, const char *uid, uint32_t reason_code, const char *message)
{
  if (reason_code == 0 || kmip_enum_name (KMIP_TAG_REVOCATION_REASON_CODE, reason_code) == NULL)
    return kmip_set_error (-EINVAL, "unknown revocation reason %u", reason_code);
  return uid_op (c, &(struct uid_args) { KMIP_OPERATION_REVOKE, uid, reason_code, message },
                 NULL);
}

/* ---- Encrypt / Decrypt (AES: CBC/ECB with PKCS#5 padding, CTR, ..., GCM with a tag) */

void
kmip_build_crypt (struct kmip_req *req, const void *argsv)
{
  const struct kmip_crypt_args *a = argsv;
  struct kmip_enc *e = &req->e;
  bool gcm = a->mode == KMIP_BLOCK_CIPHER_MODE_GCM;

  /* Field order as the spec lists them (PyKMIP reads them in that order). */
  kmip_req_item_begin (req, a->op);
  kmip_enc_str (e, KMIP_TAG_UNIQUE_IDENTIFIER, a->uid);
  kmip_enc_begin (e, KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS);
  kmip_enc_enum (e, KMIP_TAG_BLOCK_CIPHER_MODE, a->mode);
  if (a->mode == KMIP_BLOCK_CIPHER_MODE_CBC || a->mode == KMIP_BLOCK_CIPHER_MODE_ECB)
    kmip_enc_enum (e, KMIP_TAG_PADDING_METHOD, KMIP_PADDING_METHOD_PKCS5);
  kmip_enc_enum (e, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
  if (gcm)
    kmip_enc_int (e, KMIP_TAG_TAG_LENGTH, (int32_t) a->tag_len);
  kmip_enc_end (e);
  kmip_enc_bytes (e, KMIP_TAG_DATA, a->in, a->in_len);
  if (a->iv_len)
    kmip_enc_bytes (e, KMIP_TAG_IV_COUNTER_NONCE, a->iv, a->iv_len);
  if (gcm && a->aad_len)
    kmip_enc_bytes (e, KMIP_TAG_AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA, a->aad, a->aad_len);
  if (gcm && a->op == KMIP_OPERATION_DECRYPT)
    kmip_enc_bytes (e, KMIP_TAG_AUTHENTICATED_ENCRYPTION_TAG, a->tag, a->tag_len);
  kmip_req_item_end (req);
}

static int
crypt_op (struct kmip_client *c, const struct kmip_crypt_args *a, uint8_t **outp, size_t *out_lenp)
{
  struct kmip_resp resp;
  const uint8_t *data, *tag;
  size_t len, tlen;
  const char *opname = a->op == KMIP_OPERATION_ENCRYPT ? "Encrypt" : "Decrypt";
  bool gcm = a->mode == KMIP_BLOCK_CIPHER_MODE_GCM;
  int r;

  *outp = NULL;
  *out_lenp = 0;
  if ((r = check_uid_arg (a->uid)) < 0)
    return r;
  if (gcm && (a->tag == NULL || a->tag_len < 4 || a->tag_len > 16))
    return kmip_set_error (-EINVAL, "%s: GCM needs a tag of 4 to 16 bytes", opname);
  if (!gcm && (a->aad_len || a->tag_len))
    return kmip_set_error (-EINVAL, "%s: additional data and tags are for GCM only", opname);
  if (gcm && (r = kmip_client_connect (c)) == 0 && kmip_client_version (c) < KMIP_V (1, 4))
    return kmip_set_error (-ENOTSUP, "%s: GCM tags and additional data need KMIP 1.4 or later "
                           "(version in use: %d.%d)", opname,
                           KMIP_V_MAJOR (kmip_client_version (c)),
                           KMIP_V_MINOR (kmip_client_version (c)));
  if (r < 0)
    return r;
  r = kmip_call (c, 1, kmip_build_crypt, a, &resp);
  if (r < 0)
    return r;
  r = kmip_resp_check (&resp, 0, a->op);
  if (r == 0)
    r = kmip_check_answer_uid (resp.items[0].payload, opname, a->uid);
  if (r == 0) {
    if (resp.items[0].payload == NULL ||
        kmip_get_bytes (resp.items[0].payload, KMIP_TAG_DATA, &data, &len) < 0)
      r = kmip_set_error (KMIP_E_DECODE, "%s: the response has no Data", opname);
    else if (gcm && a->op == KMIP_OPERATION_ENCRYPT &&
             (kmip_get_bytes (resp.items[0].payload, KMIP_TAG_AUTHENTICATED_ENCRYPTION_TAG,
                              &tag, &tlen) < 0 || tlen != a->tag_len))
      r = kmip_set_error (KMIP_E_DECODE, "Encrypt: the response has no %zu-byte "
                          "Authenticated Encryption Tag", a->tag_len);
    else if ((*outp = malloc (len ? len : 1)) == NULL)
      r = kmip_set_error (-ENOMEM, "out of memory");
    else {
      memcpy (*outp, data, len);
      *out_lenp = len;
      if (gcm && a->op == KMIP_OPERATION_ENCRYPT)
        memcpy (a->tag, tag, tlen);
    }
  }
  kmip_resp_free (&resp);
  return r;
}

int
kmip_encrypt (struct kmip_client *c, const char *uid, uint32_t mode, const uint8_t *iv,
              size_t iv_len, const uint8_t *in, size_t in_len, uint8_t **outp,
              size_t *out_lenp)
{
  struct kmip_crypt_args a = { KMIP_OPERATION_ENCRYPT, uid, mode, iv, in, iv_len, in_len,
                          NULL, 0, NULL, 0 };
  if (mode == KMIP_BLOCK_CIPHER_MODE_GCM)
    return kmip_set_error (-EINVAL, "Encrypt: use kmip_encrypt_aead for GCM");
  return crypt_op (c, &a, outp, out_lenp);
}

int
kmip_decrypt (struct kmip_client *c, const char *uid, uint32_t mode, const uint8_t *iv,
              size_t iv_len, const uint8_t *in, size_t in_len, uint8_t **outp,
              size_t *out_lenp)
{
  struct kmip_crypt_args a = { KMIP_OPERATION_DECRYPT, uid, mode, iv, in, iv_len, in_len,
                          NULL, 0, NULL, 0 };
  if (mode == KMIP_BLOCK_CIPHER_MODE_GCM)
    return kmip_set_error (-EINVAL, "Decrypt: use kmip_decrypt_aead for GCM");
  return crypt_op (c, &a, outp, out_lenp);
}

int
kmip_encrypt_aead (struct kmip_client *c, const char *uid, const uint8_t *iv, size_t iv_len,
                   const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                   uint8_t *tag, size_t tag_len, uint8_t **outp, size_t *out_lenp)
{
  struct kmip_crypt_args a = { KMIP_OPERATION_ENCRYPT, uid, KMIP_BLOCK_CIPHER_MODE_GCM, iv, in,
                          iv_len, in_len, aad, aad_len, tag, tag_len };
  if (iv_len == 0)
    return kmip_set_error (-EINVAL, "Encrypt: GCM needs a nonce (IV)");
  return crypt_op (c, &a, outp, out_lenp);
}

int
kmip_decrypt_aead (struct kmip_client *c, const char *uid, const uint8_t *iv, size_t iv_len,
                   const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                   const uint8_t *tag, size_t tag_len, uint8_t **outp, size_t *out_lenp)
{
  struct kmip_crypt_args a = { KMIP_OPERATION_DECRYPT, uid, KMIP_BLOCK_CIPHER_MODE_GCM, iv, in,
                          iv_len, in_len, aad, aad_len, (uint8_t *) tag, tag_len };
  if (iv_len == 0)
    return kmip_set_error (-EINVAL, "Decrypt: GCM needs a nonce (IV)");
  return crypt_op (c, &a, outp, out_lenp);
}
