/* SPDX-License-Identifier: BSD-3-Clause */
/* Batches of independent Get, GetAttributes (State) and Decrypt items on many objects, in as
 * few messages as the server takes, each item answered on its own. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct batch_args {
  struct kmip_batch_item *items;
  const size_t *idx;            /* the items of this message: items[idx[0..n)] */
  size_t n;
};

static void
build_batch (struct kmip_req *req, const void *argsv)
{
  const struct batch_args *a = argsv;

  for (size_t k = 0; k < a->n; k++) {
    const struct kmip_batch_item *it = &a->items[a->idx[k]];

    switch (it->op) {
    case KMIP_OPERATION_GET:
      kmip_build_get_item (req, it->uid, it->key_format);
      break;
    case KMIP_OPERATION_GET_ATTRIBUTES:
      kmip_build_state_item (req, it->uid);
      break;
    case KMIP_OPERATION_DECRYPT: {
      struct kmip_crypt_args c = {
        .op = KMIP_OPERATION_DECRYPT, .uid = it->uid, .mode = it->mode,
        .iv = it->iv, .iv_len = it->iv_len, .in = it->in, .in_len = it->in_len,
      };
      kmip_build_crypt (req, &c);
      break;
    }
    }
  }
}

/* Whether an item can be sent: the same checks as the single operations. */
static int
check_item (const struct kmip_batch_item *it)
{
  if (it->uid == NULL || !kmip_uid_text_ok (it->uid, strlen (it->uid)))
    return kmip_set_error (-EINVAL, "batch: invalid key identifier (empty, longer than %d "
                           "bytes or with control characters)", KMIP_UID_MAX - 1);
  switch (it->op) {
  case KMIP_OPERATION_GET:
    if (it->out == NULL)
      return kmip_set_error (-EINVAL, "batch: Get %s without a key buffer", it->uid);
    return 0;
  case KMIP_OPERATION_GET_ATTRIBUTES:
    return 0;
  case KMIP_OPERATION_DECRYPT:
    if (it->out == NULL || it->in == NULL || it->in_len == 0 ||
        it->mode == KMIP_BLOCK_CIPHER_MODE_GCM || (it->iv_len && it->iv == NULL))
      return kmip_set_error (-EINVAL, "batch: Decrypt %s needs data, an output buffer and a "
                             "mode other than GCM", it->uid);
    return 0;
  default:
    return kmip_set_error (-EINVAL, "batch: operation %s cannot be batched",
                           kmip_enum_name (KMIP_TAG_OPERATION, it->op) ? : "unknown");
  }
}

/* The Data of a Decrypt answer (batch item i) about uid into out. */
static int
extract_plaintext (const struct kmip_resp *resp, size_t i, const char *uid, uint8_t *out,
                   size_t out_size, size_t *out_len)
{
  const uint8_t *data;
  size_t len;
  int r;

  if ((r = kmip_resp_check (resp, i, KMIP_OPERATION_DECRYPT)) < 0 ||
      (r = kmip_check_answer_uid (resp->items[i].payload, "Decrypt", uid)) < 0)
    return r;
  if (resp->items[i].payload == NULL ||
      kmip_get_bytes (resp->items[i].payload, KMIP_TAG_DATA, &data, &len) < 0)
    return kmip_set_error (KMIP_E_DECODE, "Decrypt %s: the response has no Data", uid);
  if (len > out_size)
    return kmip_set_error (-ENOBUFS, "Decrypt %s: %zu bytes of plaintext, more than the %zu "
                           "expected", uid, len, out_size);
  memcpy (out, data, len);
  *out_len = len;
  return 0;
}

/* Record the answer to it (batch item i of resp). */
static void
answer_item (const struct kmip_resp *resp, size_t i, struct kmip_batch_item *it)
{
  int r = 0;

  kmip_set_last_result (0, 0);
  it->out_len = 0;
  it->state = 0;
  switch (it->op) {
  case KMIP_OPERATION_GET:
    r = kmip_extract_key_at (resp, i, it->uid, it->out, it->out_size);
    if (r >= 0) {
      it->out_len = (size_t) r;
      r = 0;
    }
    break;
  case KMIP_OPERATION_GET_ATTRIBUTES:
    r = kmip_extract_state_at (resp, i, it->uid, &it->state);
    break;
  case KMIP_OPERATION_DECRYPT:
    r = extract_plaintext (resp, i, it->uid, it->out, it->out_size, &it->out_len);
    break;
  }
  it->result = r;
  it->status = r == KMIP_E_RESULT ? kmip_last_result () : (struct kmip_result) { 0, 0 };
}

/* Give the items idx[0..n) the failure r (with the server's status, if any). */
static void
fail_items (struct kmip_batch_item *items, const size_t *idx, size_t n, int r)
{
  struct kmip_result st = r == KMIP_E_RESULT ? kmip_last_result () : (struct kmip_result) {};

  for (size_t k = 0; k < n; k++) {
    items[idx[k]].result = r;
    items[idx[k]].status = st;
  }
}

/* A message of several items answered by one failed item naming none: the server refused
 * the message as a whole (too large an answer, a message it could not parse). */
static bool
refused_whole (const struct kmip_resp *resp, size_t sent)
{
  return sent > 1 && resp->nitems == 1 && resp->items[0].id == NULL &&
         resp->items[0].status != KMIP_RESULT_STATUS_SUCCESS;
}

int
kmip_batch (struct kmip_client *c, struct kmip_batch_item *items, size_t n)
{
  size_t *idx, m = 0, pos = 0, chunk = KMIP_BATCH_ITEMS_MAX;
  int r = 0;

  if (n == 0)
    return 0;
  idx = calloc (n, sizeof *idx);
  if (idx == NULL)
    return kmip_set_error (-ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    items[i].out_len = 0;
    items[i].state = 0;
    items[i].status = (struct kmip_result) { 0, 0 };
    if ((items[i].result = check_item (&items[i])) == 0)
      idx[m++] = i;
  }
  while (pos < m) {
    struct batch_args a = { items, idx + pos, m - pos < chunk ? m - pos : chunk };
    struct kmip_resp resp;

    r = kmip_call_flags (c, (unsigned) a.n, KMIP_REQ_CONTINUE, build_batch, &a, &resp);
    if (r < 0) {
      fail_items (items, idx + pos, m - pos, r);
      break;
    }
    if (refused_whole (&resp, a.n)) {
      if (resp.items[0].reason == KMIP_RESULT_REASON_RESPONSE_TOO_LARGE) {
        chunk = a.n / 2;
        kmip_resp_free (&resp);
        continue;
      }
      r = kmip_resp_check (&resp, 0, items[idx[pos]].op);
      r = kmip_set_error (r, "the KMS refused a batch of %zu items: %s", a.n,
                          kmip_last_error ());
      fail_items (items, idx + pos, m - pos, r);
      kmip_resp_free (&resp);
      break;
    }
    if (resp.nitems > a.n) {
      r = kmip_set_error (KMIP_E_DECODE, "the KMS answered %zu batch items to a request of "
                          "%zu", resp.nitems, a.n);
      fail_items (items, idx + pos, m - pos, r);
      kmip_resp_free (&resp);
      break;
    }
    /* The answered items come first, in order (checked by their batch item ids); a server
     * that stopped at a failure left the rest for the next request. */
    for (size_t k = 0; k < resp.nitems; k++)
      answer_item (&resp, k, &items[idx[pos + k]]);
    pos += resp.nitems;
    kmip_resp_free (&resp);     /* wipes the decoded tree, key bytes included */
  }
  free (idx);
  return r;
}
