/* SPDX-License-Identifier: BSD-3-Clause */
/* kmip-client internals: everything the library's files share that is not API. Never
 * installed; the public API is include/kmip/ only. Tests and fuzz targets that drive the
 * message layer directly include this file (with kmip-client/ on their include path). */
#ifndef KMIP_INTERNAL_H
#define KMIP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmip/kmip.h"
#include "kmip/ttlv.h"

/* ---------------------------------------------------------------- errors (errors.c) */

/* Record a message for this thread and return code (a negative errno or KMIP_E_*). The
 * arguments may include kmip_last_error() itself (formatted into a scratch buffer first). */
int kmip_set_error (int code, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* ---------------------------------------------------------------- messages (message.c)
 * Request building and response parsing: no I/O, fuzzed. */

/* Batch items in one message, either way (a response with more is refused as malformed). */
#define KMIP_MAX_BATCH KMIP_BATCH_ITEMS_MAX

/* A request being built: begin, then per batch item item_begin / payload fields / item_end,
 * then finish. The encoder's errors are sticky, so only finish needs checking. */
struct kmip_req {
  struct kmip_enc e;
  uint16_t version;
  unsigned nitems, declared;
};

/* kmip_req_begin flags. CONTINUE: the header asks the server to go on with the next batch
 * items when one fails (Batch Error Continuation Option "Continue"; the default is "Stop"),
 * for batches of independent items. */
#define KMIP_REQ_CONTINUE 1u

void kmip_req_begin (struct kmip_req *r, uint16_t version, unsigned batch_count,
                     size_t max_response, unsigned flags);
/* Open a batch item for operation op and its RequestPayload. */
void kmip_req_item_begin (struct kmip_req *r, uint32_t op);
void kmip_req_item_end (struct kmip_req *r);
int kmip_req_finish (struct kmip_req *r, const uint8_t **buf, size_t *len);
void kmip_req_free (struct kmip_req *r);   /* wipes (requests may carry keys) */

struct kmip_resp_item {
  uint32_t operation;                   /* 0 if the server left it out (failures) */
  uint32_t status, reason;
  const char *message;                  /* ResultMessage or NULL: the server's text, raw */
  size_t message_len;
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
 * status, reason and message (escaped, cut to a few hundred characters) and kmip_last_result
 * set. */
int kmip_resp_check (const struct kmip_resp *resp, size_t i, uint32_t op);

/* Record the result numbers for kmip_last_result(). */
void kmip_set_last_result (uint32_t status, uint32_t reason);

/* How much of a server's text (escaped) an error message quotes. */
#define KMIP_MESSAGE_TEXT_MAX 256

/* Whether len bytes from the server can be a Unique Identifier we keep, print and send back:
 * 1 to KMIP_UID_MAX - 1 bytes, no control byte (NUL, LF, ESC ...). */
bool kmip_uid_text_ok (const char *s, size_t len);

/* The answer (payload) of an operation on object uid must be about that object: if it names
 * one (Unique Identifier), it must be uid, byte for byte; otherwise KMIP_E_DECODE. An answer
 * naming none is accepted (the field is required by the spec, but what matters here is that
 * the server does not substitute another object). */
int kmip_check_answer_uid (const struct kmip_node *payload, const char *opname,
                           const char *uid);

/* ---------------------------------------------------------------- transport (tls.c)
 * The byte transport under the message layer: the protocol code only sees these ops, never
 * OpenSSL. */

struct kmip_conn;

struct kmip_transport_ops {
  /* Write all len bytes before the deadline (CLOCK_MONOTONIC ms). 0 or error. */
  int (*write_all) (struct kmip_conn *conn, const void *buf, size_t len, int64_t deadline);
  /* Read exactly len bytes. 0, -EPIPE on EOF before any byte (peer closed), or error. */
  int (*read_all) (struct kmip_conn *conn, void *buf, size_t len, int64_t deadline);
  /* True if the peer has closed or sent something unsolicited: the connection is unusable. */
  int (*is_stale) (struct kmip_conn *conn);
  void (*close) (struct kmip_conn *conn);
};

struct kmip_conn {
  const struct kmip_transport_ops *ops;
};

/* The TLS context for a configuration: trust anchors, client certificate. */
struct kmip_tls_ctx;
int kmip_tls_ctx_new (const struct kmip_config *cfg, struct kmip_tls_ctx **ctxp);
void kmip_tls_ctx_free (struct kmip_tls_ctx *ctx);

/* Connect to one server (TCP with timeout, then TLS handshake with verification). */
int kmip_tls_connect (struct kmip_tls_ctx *ctx, const struct kmip_server_addr *addr,
                      unsigned timeout_ms, struct kmip_conn **connp);


/* ---------------------------------------------------------------- exchanges (client.c)
 * One request/response exchange on a client handle (connect, failover, retry). */

/* Builds the batch items of a request for the version in use. */
typedef void (*kmip_build_fn) (struct kmip_req *req, const void *args);

/* Connect if needed (failover across servers, version negotiation), build a request of
 * nitems batch items with build(), send it, and decode the answer into resp (the caller
 * frees it with kmip_resp_free). Serialised on the handle's mutex. A request that fails
 * because a reused connection was closed by the server is sent once more on a new one. */
int kmip_call (struct kmip_client *c, unsigned nitems, kmip_build_fn build, const void *args,
               struct kmip_resp *resp);
/* The same with kmip_req_begin flags (KMIP_REQ_CONTINUE). */
int kmip_call_flags (struct kmip_client *c, unsigned nitems, unsigned flags, kmip_build_fn build,
                     const void *args, struct kmip_resp *resp);

/* What the connected server was seen to refuse (0 when not connected); learnt from its
 * answers and kept per configured server for the life of the handle. */
#define KMIP_QUIRK_NO_PLACEHOLDER_ACTIVATE 1u  /* Activate without Unique Identifier (PyKMIP) */
#define KMIP_QUIRK_NO_PLACEHOLDER_GET 2u       /* Get without Unique Identifier */
unsigned kmip_client_quirks (struct kmip_client *c);
void kmip_client_add_quirk (struct kmip_client *c, unsigned quirk);

/* The versions of a DiscoverVersions response payload (server order); count or error. */
int kmip_parse_versions (const struct kmip_node *payload, uint16_t *out, size_t max);

/* Batch items that the single operations and kmip_batch (ops-batch.c) both build. */
struct kmip_crypt_args {
  uint32_t op;                  /* KMIP_OPERATION_ENCRYPT or _DECRYPT */
  const char *uid;
  uint32_t mode;
  const uint8_t *iv, *in;
  size_t iv_len, in_len;
  const uint8_t *aad;           /* GCM: Authenticated Encryption Additional Data */
  size_t aad_len;
  uint8_t *tag;                 /* GCM: the tag (Encrypt: out, Decrypt: in) */
  size_t tag_len;
};
void kmip_build_crypt (struct kmip_req *req, const void *crypt_args);
/* Get of uid (key_format 0: the server's choice). */
void kmip_build_get_item (struct kmip_req *req, const char *uid, uint32_t key_format);
/* GetAttributes of uid asking for its State only. */
void kmip_build_state_item (struct kmip_req *req, const char *uid);
/* The State from a GetAttributes answer (batch item i) about uid. */
int kmip_extract_state_at (const struct kmip_resp *resp, size_t i, const char *uid,
                           uint32_t *state);

/* The key bytes of a Get response (batch item 0) into buf; length or error. */
int kmip_extract_key (const struct kmip_resp *resp, const char *uid, uint8_t *buf,
                      size_t bufsize);
/* The same for batch item i. */
int kmip_extract_key_at (const struct kmip_resp *resp, size_t i, const char *uid,
                         uint8_t *buf, size_t bufsize);

/* ---------------------------------------------------------------- attributes (attrs.c)
 * Both encodings: KMIP 1.x (Attribute name/value, TemplateAttribute) and 2.0 (Attributes
 * structure of tagged values). */

struct kmip_attr {
  uint32_t tag;               /* KMIP_TAG_* of the attribute; 0 for a custom (x-) one */
  const char *custom;         /* custom attribute name ("x-...") when tag == 0 */
  uint32_t value;             /* Enumeration / Integer value */
  const char *text;           /* TextString value, or the Name's NameValue */
};

/* KMIP 2.0 Vendor Attribute: an Attribute structure { Vendor Identification, Attribute Name,
 * Attribute Value }; there is no separate tag (see attrs.c, enc_vendor_attr). */
#define KMIP_TAG_VENDOR_ATTRIBUTE KMIP_TAG_ATTRIBUTE

/* "x-NAME" or "y-NAME" with a non-empty NAME. */
bool kmip_custom_name_ok (const char *name);

/* Whether this version uses the 2.0 encoding. */
#define KMIP_ATTRS_V2(version) ((version) >= KMIP_V (2, 0))

/* Encode one attribute as a 1.x Attribute or a 2.0 tagged item (a custom "x-NAME" one as a
 * 2.0 Vendor Attribute). -EINVAL (nothing encoded) for a malformed custom name. */
int kmip_enc_attr (struct kmip_req *req, const struct kmip_attr *a);
/* Encode a list inside container1 at 1.x (TemplateAttribute, or 0: directly) or inside
 * Attributes at 2.0. */
void kmip_enc_attr_list (struct kmip_req *req, uint32_t container1,
                         const struct kmip_attr *a, size_t n);

/* The spec's name of an attribute tag ("Cryptographic Length"), or NULL. */
const char *kmip_attr_name (uint32_t tag, char *buf, size_t len);

/* Fill a from a GetAttributes response payload (either encoding). */
int kmip_decode_attrs (const struct kmip_node *payload, uint16_t version,
                       struct kmip_attrs *a);

/* Append a copy of s[0..len) to a NULL-terminated string vector. */
int kmip_strv_add (char ***v, const char *s, size_t len);

#endif /* KMIP_INTERNAL_H */
