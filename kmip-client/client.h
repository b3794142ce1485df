/* SPDX-License-Identifier: BSD-3-Clause */
/* Internal: one request/response exchange on a client handle (connect, failover, retry). */
#ifndef KMIP_CLIENT_H
#define KMIP_CLIENT_H

#include "message.h"

/* Builds the batch items of a request for the version in use. */
typedef void (*kmip_build_fn) (struct kmip_req *req, const void *args);

/* Connect if needed (failover across servers, version negotiation), build a request of
 * nitems batch items with build(), send it, and decode the answer into resp (the caller
 * frees it with kmip_resp_free). Serialised on the handle's mutex. A request that fails
 * because a reused connection was closed by the server is sent once more on a new one. */
int kmip_call (struct kmip_client *c, unsigned nitems, kmip_build_fn build, const void *args,
               struct kmip_resp *resp);

/* What the connected server was seen to refuse (0 when not connected); learnt from its
 * answers and kept per configured server for the life of the handle. */
#define KMIP_QUIRK_NO_PLACEHOLDER_ACTIVATE 1u  /* Activate without Unique Identifier (PyKMIP) */
#define KMIP_QUIRK_NO_PLACEHOLDER_GET 2u       /* Get without Unique Identifier */
unsigned kmip_client_quirks (struct kmip_client *c);
void kmip_client_add_quirk (struct kmip_client *c, unsigned quirk);

/* The versions of a DiscoverVersions response payload (server order); count or error. */
int kmip_parse_versions (const struct kmip_node *payload, uint16_t *out, size_t max);

/* The key bytes of a Get response (batch item 0) into buf; length or error. */
int kmip_extract_key (const struct kmip_resp *resp, const char *uid, uint8_t *buf,
                      size_t bufsize);
/* The same for batch item i. */
int kmip_extract_key_at (const struct kmip_resp *resp, size_t i, const char *uid,
                         uint8_t *buf, size_t bufsize);

#endif /* KMIP_CLIENT_H */
