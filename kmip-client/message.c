/* SPDX-License-Identifier: BSD-3-Clause */
/* KMIP messages: the request header and batch items around operation payloads, and the
 * response header / batch items / result fields, checked; the server's text is escaped where
 * it enters a message. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static __thread struct kmip_result last_result;

struct kmip_result
kmip_last_result (void)
{
  return last_result;
}

void
kmip_set_last_result (uint32_t status, uint32_t reason)
{
  last_result.status = status;
  last_result.reason = reason;
}

void
kmip_req_begin (struct kmip_req *r, uint16_t version, unsigned batch_count,
                size_t max_response, unsigned flags)
{
  struct kmip_enc *e = &r->e;

  kmip_enc_init (e);
  r->version = version;
  r->nitems = 0;
  r->declared = batch_count;
  kmip_enc_begin (e, KMIP_TAG_REQUEST_MESSAGE);
  kmip_enc_begin (e, KMIP_TAG_REQUEST_HEADER);
  kmip_enc_begin (e, KMIP_TAG_PROTOCOL_VERSION);
  kmip_enc_int (e, KMIP_TAG_PROTOCOL_VERSION_MAJOR, KMIP_V_MAJOR (version));
  kmip_enc_int (e, KMIP_TAG_PROTOCOL_VERSION_MINOR, KMIP_V_MINOR (version));
  kmip_enc_end (e);
  /* Tell the server our cap so it answers "Response Too Large" rather than overflowing it. */
  if (max_response && max_response <= INT32_MAX)
    kmip_enc_int (e, KMIP_TAG_MAXIMUM_RESPONSE_SIZE, (int32_t) max_response);
  /* After Authentication and before Batch Count, in the header's field order. */
  if ((flags & KMIP_REQ_CONTINUE) && batch_count > 1)
    kmip_enc_enum (e, KMIP_TAG_BATCH_ERROR_CONTINUATION_OPTION,
                   KMIP_BATCH_ERROR_CONTINUATION_OPTION_CONTINUE);
  kmip_enc_int (e, KMIP_TAG_BATCH_COUNT, (int32_t) batch_count);
  kmip_enc_end (e);
}

void
kmip_req_item_begin (struct kmip_req *r, uint32_t op)
{
  r->nitems++;
  kmip_enc_begin (&r->e, KMIP_TAG_BATCH_ITEM);
  kmip_enc_enum (&r->e, KMIP_TAG_OPERATION, op);
  if (r->declared > 1) {
    /* Required with several items; the answer echoes it. Big-endian item number. */
    uint8_t id[4] = { (uint8_t) (r->nitems >> 24), (uint8_t) (r->nitems >> 16),
                      (uint8_t) (r->nitems >> 8), (uint8_t) r->nitems };
    kmip_enc_bytes (&r->e, KMIP_TAG_UNIQUE_BATCH_ITEM_ID, id, sizeof id);
  }
  kmip_enc_begin (&r->e, KMIP_TAG_REQUEST_PAYLOAD);
}

void
kmip_req_item_end (struct kmip_req *r)
{
  kmip_enc_end (&r->e);
  kmip_enc_end (&r->e);
}

int
kmip_req_finish (struct kmip_req *r, const uint8_t **buf, size_t *len)
{
  kmip_enc_end (&r->e);
  if (r->nitems != r->declared)
    return kmip_set_error (-EINVAL, "internal error: %u batch items declared, %u built",
                           r->declared, r->nitems);
  return kmip_enc_finish (&r->e, buf, len);
}

void
kmip_req_free (struct kmip_req *r)
{
  kmip_enc_free (&r->e);
}

const char *
kmip_reason_text (uint32_t reason, char *buf, size_t len)
{
  const char *name = kmip_enum_name (KMIP_TAG_RESULT_REASON, reason);
  size_t o = 0;

  if (len == 0)
    return buf;
  if (name == NULL) {
    snprintf (buf, len, "result reason 0x%x", reason);
    return buf;
  }
  /* "ItemNotFound" -> "Item Not Found", as the spec spells reasons. */
  for (size_t i = 0; name[i] && o + 2 < len; i++) {
    if (i > 0 && isupper ((unsigned char) name[i]) && !isupper ((unsigned char) name[i - 1]))
      buf[o++] = ' ';
    buf[o++] = name[i];
  }
  buf[o] = '\0';
  return buf;
}

void
kmip_resp_free (struct kmip_resp *resp)
{
  kmip_tree_free (resp->tree);
  memset (resp, 0, sizeof *resp);
}

int
kmip_resp_parse (const uint8_t *buf, size_t len, size_t max_size, struct kmip_resp *resp)
{
  struct kmip_decode_limits lim = { .max_size = max_size };
  const struct kmip_node *root, *hdr, *pv, *item;
  int32_t major, minor, count;
  int r;

  memset (resp, 0, sizeof *resp);
  r = kmip_decode (buf, len, &lim, &resp->tree);
  if (r < 0)
    return r;
  root = resp->tree->root;
  if (root->tag != KMIP_TAG_RESPONSE_MESSAGE || kmip_node_struct (root) < 0) {
    r = kmip_set_error (KMIP_E_DECODE, "the server's answer is not a KMIP ResponseMessage "
                        "(tag 0x%06x)", root->tag);
    goto err;
  }
  if ((r = kmip_get_struct (root, KMIP_TAG_RESPONSE_HEADER, &hdr)) < 0 ||
      (r = kmip_get_struct (hdr, KMIP_TAG_PROTOCOL_VERSION, &pv)) < 0 ||
      (r = kmip_get_int (pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, &major)) < 0 ||
      (r = kmip_get_int (pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, &minor)) < 0 ||
      (r = kmip_get_int (hdr, KMIP_TAG_BATCH_COUNT, &count)) < 0) {
    r = kmip_set_error (KMIP_E_DECODE, "malformed response header: %s", kmip_last_error ());
    goto err;
  }
  if (major < 0 || major > 255 || minor < 0 || minor > 255) {
    r = kmip_set_error (KMIP_E_DECODE, "malformed response: protocol version %d.%d",
                        major, minor);
    goto err;
  }
  resp->version = KMIP_V (major, minor);
  if (count < 1 || count > KMIP_MAX_BATCH ||
      kmip_count (root, KMIP_TAG_BATCH_ITEM) != (size_t) count) {
    r = kmip_set_error (KMIP_E_DECODE, "malformed response: batch count %d but %zu batch items",
                        count, kmip_count (root, KMIP_TAG_BATCH_ITEM));
    goto err;
  }
  for (item = kmip_find (root, KMIP_TAG_BATCH_ITEM); item; item = kmip_find_next (item)) {
    struct kmip_resp_item *it = &resp->items[resp->nitems];
    const struct kmip_node *n;

    if ((r = kmip_node_struct (item)) < 0 ||
        (r = kmip_get_enum (item, KMIP_TAG_RESULT_STATUS, &it->status)) < 0)
      goto bad_item;
    if ((n = kmip_find (item, KMIP_TAG_OPERATION)) && (r = kmip_node_enum (n, &it->operation)) < 0)
      goto bad_item;
    if ((n = kmip_find (item, KMIP_TAG_RESULT_REASON)) && (r = kmip_node_enum (n, &it->reason)) < 0)
      goto bad_item;
    if ((n = kmip_find (item, KMIP_TAG_RESULT_MESSAGE)) &&
        (r = kmip_node_text (n, &it->message, &it->message_len)) < 0)
      goto bad_item;
    if ((n = kmip_find (item, KMIP_TAG_UNIQUE_BATCH_ITEM_ID)) &&
        (r = kmip_node_bytes (n, &it->id, &it->id_len)) < 0)
      goto bad_item;
    if ((n = kmip_find (item, KMIP_TAG_RESPONSE_PAYLOAD))) {
      if ((r = kmip_node_struct (n)) < 0)
        goto bad_item;
      it->payload = n;
    }
    resp->nitems++;
  }
  return 0;

 bad_item:
  r = kmip_set_error (KMIP_E_DECODE, "malformed response batch item %zu: %s",
                      resp->nitems + 1, kmip_last_error ());
 err:
  kmip_resp_free (resp);
  return r;
}

int
kmip_resp_check (const struct kmip_resp *resp, size_t i, uint32_t op)
{
  const struct kmip_resp_item *it;
  const char *opname = kmip_enum_name (KMIP_TAG_OPERATION, op);
  char reason[96], msg[KMIP_MESSAGE_TEXT_MAX];

  if (opname == NULL)
    opname = "operation";
  if (i >= resp->nitems)
    return kmip_set_error (KMIP_E_DECODE, "%s: the response has no batch item %zu", opname,
                           i + 1);
  it = &resp->items[i];
  if (it->id && (it->id_len != 4 ||
                 ((uint32_t) it->id[0] << 24 | (uint32_t) it->id[1] << 16 |
                  (uint32_t) it->id[2] << 8 | it->id[3]) != i + 1))
    return kmip_set_error (KMIP_E_DECODE, "%s: the response batch items are out of order",
                           opname);
  if (it->operation && it->operation != op)
    return kmip_set_error (KMIP_E_DECODE, "%s: the response is for another operation (%s)",
                           opname, kmip_enum_name (KMIP_TAG_OPERATION, it->operation)
                           ? : "unknown");
  kmip_set_last_result (it->status, it->reason);
  if (it->status == KMIP_RESULT_STATUS_SUCCESS)
    return 0;
  /* The server's text goes into messages that reach terminals and logs: escaped, here where
   * it enters them, so that no caller can forget to. */
  if (it->message)
    kmip_escape_text (it->message, it->message_len, msg, sizeof msg);
  if (it->status != KMIP_RESULT_STATUS_OPERATION_FAILED)
    return kmip_set_error (KMIP_E_RESULT, "%s: %s%s%s", opname,
                           kmip_enum_name (KMIP_TAG_RESULT_STATUS, it->status) ? :
                           "unexpected result status", it->message ? ": " : "",
                           it->message ? msg : "");
  if (it->reason == 0)
    return kmip_set_error (KMIP_E_RESULT, "%s failed: %s", opname,
                           it->message ? msg : "no reason given");
  return kmip_set_error (KMIP_E_RESULT, "%s failed: %s%s%s", opname,
                         kmip_reason_text (it->reason, reason, sizeof reason),
                         it->message ? ": " : "", it->message ? msg : "");
}
