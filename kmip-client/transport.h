/* SPDX-License-Identifier: BSD-3-Clause */
/* Internal: the byte transport under the KMIP message layer. The protocol code only sees
 * these ops, never OpenSSL (tls.c implements them). */
#ifndef KMIP_TRANSPORT_H
#define KMIP_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "kmip/kmip.h"

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

/* Monotonic clock in milliseconds. */
int64_t kmip_now_ms (void);

#endif /* KMIP_TRANSPORT_H */
