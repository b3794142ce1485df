/* SPDX-License-Identifier: BSD-3-Clause */
/* Internal: KMIP request building and response parsing (no I/O; fuzzed). */
#ifndef KMIP_MESSAGE_H
#define KMIP_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "kmip/kmip.h"
#include "kmip/ttlv.h"

#define KMIP_MAX_BATCH 8

/* A request being built: begin, then per batch item item_begin / payload fields / item_end,
 * then finish. The encoder's errors are sticky, so only finish needs checking. */
struct kmip_req {
  struct kmip_enc e;
  uint16_t version;
  unsigned nitems, declared;
};

void kmip_req_begin (struct kmip_req *r, uint16_t version, unsigned batch_count,
                     size_t max_response);
/* Open a batch item for operation op and its RequestPayload. */
void kmip_req_item_begin (struct kmip_req *r, uint32_t op);
void kmip_req_item_end (struct kmip_req *r);
int kmip_req_finish (struct kmip_req *r, const uint8_t **buf, size_t *len);
void kmip_req_free (struct kmip_req *r);   /* wipes (requests may carry keys) */

struct kmip_resp_item {
  uint32_t operation;                   /* 0 if the server left it out (failures) */
  uint32_t status, reason;
  const char *message;                  /* ResultMessage or NULL */
  const struct kmip_node *payload;      /* ResponsePayload or NULL */
  const uint8_t *id;                    /* Unique Batch Item ID or NULL */
  size_t id_len;
};

struct kmip_resp {
  struct kmip_tree *tree;
  uint16_t version;
  size_t nitems;
  struct kmip_resp_item items[KMIP_MAX_BATCH];
};

/* Decode and check the shape of a ResponseMessage. Unknown tags anywhere are ignored. */
int kmip_resp_parse (const uint8_t *buf, size_t len, size_t max_size, struct kmip_resp *resp);
/* Wipe and free the decoded tree. */
void kmip_resp_free (struct kmip_resp *resp);

/* Check batch item i is a success of operation op; otherwise KMIP_E_RESULT with the server's
 * status, reason and message verbatim (and kmip_last_result set). */
int kmip_resp_check (const struct kmip_resp *resp, size_t i, uint32_t op);

/* Record the result numbers for kmip_last_result(). */
void kmip_set_last_result (uint32_t status, uint32_t reason);

#endif /* KMIP_MESSAGE_H */
