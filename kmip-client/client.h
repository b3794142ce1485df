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

/* The versions of a DiscoverVersions response payload (server order); count or error. */
int kmip_parse_versions (const struct kmip_node *payload, uint16_t *out, size_t max);

/* The key bytes of a Get response (batch item 0) into buf; length or error. */
int kmip_extract_key (const struct kmip_resp *resp, const char *uid, uint8_t *buf,
                      size_t bufsize);

#endif /* KMIP_CLIENT_H */
