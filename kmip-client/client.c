/* SPDX-License-Identifier: BSD-3-Clause */
/* The client handle: one reused connection, servers tried in order, version negotiation,
 * framing of requests and responses, and reconnection when the server closed an idle link. */
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "timeutil.h"

struct kmip_client {
  pthread_mutex_t lock;
  struct kmip_config *cfg;              /* private copy */
  struct kmip_tls_ctx *tls;
  struct kmip_conn *conn;               /* NULL when disconnected */
  size_t server;                        /* index of the connected server */
  uint16_t *server_version;             /* negotiated per server, 0 = not yet */
  uint16_t version;                     /* in use on the current connection */
  unsigned *server_quirks;              /* KMIP_QUIRK_* learnt per server */
  unsigned connections;
  unsigned requests;
  char where[300];
};

static char *
xstrdup (const char *s)
{
  return s ? strdup (s) : NULL;
}

static struct kmip_config *
config_dup (const struct kmip_config *src)
{
  struct kmip_config *c = kmip_config_new ();

  if (c == NULL)
    return NULL;
  c->timeout_ms = src->timeout_ms;
  c->max_version = src->max_version;
  c->pin_version = src->pin_version;
  c->max_message = src->max_message ? src->max_message : KMIP_DEFAULT_MAX_MESSAGE;
  c->ca = xstrdup (src->ca);
  c->client_cert = xstrdup (src->client_cert);
  c->client_key = xstrdup (src->client_key);
  if ((src->ca && !c->ca) || (src->client_cert && !c->client_cert) ||
      (src->client_key && !c->client_key))
    goto err;
  for (size_t i = 0; i < src->nr_servers; i++) {
    char hp[600];
    snprintf (hp, sizeof hp, strchr (src->servers[i].host, ':') ? "[%s]:%s" : "%s:%s",
              src->servers[i].host, src->servers[i].port);
    if (kmip_config_add_server (c, hp) < 0)
      goto err;
  }
  return c;
 err:
  kmip_config_free (c);
  return NULL;
}

int
kmip_client_new (const struct kmip_config *cfg, struct kmip_client **clientp)
{
  struct kmip_client *c;
  int r;

  *clientp = NULL;
  if (cfg->nr_servers == 0)
    return kmip_set_error (KMIP_E_CONFIG, "no KMS server configured");
  if (cfg->timeout_ms == 0)
    return kmip_set_error (KMIP_E_CONFIG, "timeout must be positive");
  c = calloc (1, sizeof *c);
  if (c == NULL)
    return kmip_set_error (-ENOMEM, "out of memory");
  pthread_mutex_init (&c->lock, NULL);
  c->cfg = config_dup (cfg);
  c->server_version = calloc (cfg->nr_servers, sizeof *c->server_version);
  c->server_quirks = calloc (cfg->nr_servers, sizeof *c->server_quirks);
  if (c->cfg == NULL || c->server_version == NULL || c->server_quirks == NULL) {
    r = kmip_set_error (-ENOMEM, "out of memory");
    goto err;
  }
  r = kmip_tls_ctx_new (c->cfg, &c->tls);
  if (r < 0)
    goto err;
  *clientp = c;
  return 0;
 err:
  kmip_client_free (c);
  return r;
}

static void
disconnect_locked (struct kmip_client *c)
{
  if (c->conn) {
    c->conn->ops->close (c->conn);
    c->conn = NULL;
  }
}

void
kmip_client_free (struct kmip_client *c)
{
  if (c == NULL)
    return;
  disconnect_locked (c);
  kmip_tls_ctx_free (c->tls);
  kmip_config_free (c->cfg);
  free (c->server_version);
  free (c->server_quirks);
  pthread_mutex_destroy (&c->lock);
  free (c);
}

void
kmip_client_disconnect (struct kmip_client *c)
{
  pthread_mutex_lock (&c->lock);
  disconnect_locked (c);
  pthread_mutex_unlock (&c->lock);
}

uint16_t
kmip_client_version (struct kmip_client *c)
{
  uint16_t v;

  pthread_mutex_lock (&c->lock);
  v = c->version;
  pthread_mutex_unlock (&c->lock);
  return v;
}

const char *
kmip_client_server (struct kmip_client *c)
{
  return c->conn ? c->where : NULL;
}

/* Read under the lock: the counters are updated by whichever thread is calling. */
unsigned
kmip_client_connections (struct kmip_client *c)
{
  unsigned n;

  pthread_mutex_lock (&c->lock);
  n = c->connections;
  pthread_mutex_unlock (&c->lock);
  return n;
}

unsigned
kmip_client_requests (struct kmip_client *c)
{
  unsigned n;

  pthread_mutex_lock (&c->lock);
  n = c->requests;
  pthread_mutex_unlock (&c->lock);
  return n;
}

unsigned
kmip_client_quirks (struct kmip_client *c)
{
  unsigned q;

  pthread_mutex_lock (&c->lock);
  q = c->server_quirks[c->server];   /* the server last connected to */
  pthread_mutex_unlock (&c->lock);
  return q;
}

void
kmip_client_add_quirk (struct kmip_client *c, unsigned quirk)
{
  pthread_mutex_lock (&c->lock);
  c->server_quirks[c->server] |= quirk;
  pthread_mutex_unlock (&c->lock);
}

/* Send one framed request and read one framed response on the current connection. The
 * response buffer holds key bytes: it is wiped before it is freed, whatever happens. */
static int
exchange (struct kmip_client *c, const uint8_t *req, size_t req_len, struct kmip_resp *resp,
          bool *retryable)
{
  int64_t deadline = (int64_t) ncr_now_ms () + c->cfg->timeout_ms;
  uint8_t hdr[KMIP_TTLV_HEADER_SIZE];
  uint8_t *buf;
  size_t total;
  int r;

  *retryable = false;
  r = c->conn->ops->write_all (c->conn, req, req_len, deadline);
  if (r < 0) {
    *retryable = r == -EPIPE || r == -ECONNRESET;
    return r;
  }
  r = c->conn->ops->read_all (c->conn, hdr, sizeof hdr, deadline);
  if (r < 0) {
    /* Closed before answering: the server dropped an idle connection (or crashed). */
    *retryable = r == -EPIPE || r == -ECONNRESET;
    return r;
  }
  r = kmip_ttlv_frame_length (hdr, c->cfg->max_message, &total);
  if (r < 0)
    return kmip_set_error (r, "%s: bad response (max-message-size %zu): %s", c->where,
                           c->cfg->max_message, kmip_last_error ());
  buf = malloc (total);
  if (buf == NULL)
    return kmip_set_error (-ENOMEM, "out of memory");
  memcpy (buf, hdr, sizeof hdr);
  r = c->conn->ops->read_all (c->conn, buf + sizeof hdr, total - sizeof hdr, deadline);
  if (r == -EPIPE)
    r = kmip_set_error (-ECONNRESET, "%s: the server closed the connection in the middle of "
                        "a response", c->where);
  if (r == 0) {
    r = kmip_resp_parse (buf, total, c->cfg->max_message, resp);
    if (r < 0)
      r = kmip_set_error (r, "%s: %s", c->where, kmip_last_error ());
  }
  explicit_bzero (buf, total);
  free (buf);
  explicit_bzero (hdr, sizeof hdr);
  return r;
}

/* Build with the version in use, exchange, and leave the connection closed on any failure
 * that may have desynchronised it. */
static int
call_on_conn (struct kmip_client *c, uint16_t version, unsigned nitems, unsigned flags,
              kmip_build_fn build, const void *args, struct kmip_resp *resp, bool *retryable)
{
  struct kmip_req req;
  const uint8_t *buf;
  size_t len;
  int r;

  kmip_req_begin (&req, version, nitems, c->cfg->max_message, flags);
  build (&req, args);
  r = kmip_req_finish (&req, &buf, &len);
  if (r == 0) {
    c->requests++;
    r = exchange (c, buf, len, resp, retryable);
  }
  kmip_req_free (&req);
  if (r < 0)
    disconnect_locked (c);
  return r;
}

struct discover_args { uint16_t max; };

static const uint16_t known_versions[] = {
  KMIP_V (2, 0), KMIP_V (1, 4), KMIP_V (1, 3), KMIP_V (1, 2), KMIP_V (1, 1), KMIP_V (1, 0),
};

static void
build_discover (struct kmip_req *req, const void *argsv)
{
  const struct discover_args *a = argsv;

  kmip_req_item_begin (req, KMIP_OPERATION_DISCOVER_VERSIONS);
  for (size_t i = 0; i < sizeof known_versions / sizeof known_versions[0]; i++) {
    if (known_versions[i] > a->max)
      continue;
    kmip_enc_begin (&req->e, KMIP_TAG_PROTOCOL_VERSION);
    kmip_enc_int (&req->e, KMIP_TAG_PROTOCOL_VERSION_MAJOR, KMIP_V_MAJOR (known_versions[i]));
    kmip_enc_int (&req->e, KMIP_TAG_PROTOCOL_VERSION_MINOR, KMIP_V_MINOR (known_versions[i]));
    kmip_enc_end (&req->e);
  }
  kmip_req_item_end (req);
}

/* The versions listed in a DiscoverVersions response payload, in the server's order. */
int
kmip_parse_versions (const struct kmip_node *payload, uint16_t *out, size_t max)
{
  const struct kmip_node *pv;
  size_t n = 0;

  if (payload == NULL)
    return 0;                   /* an empty payload: no version in common */
  for (pv = kmip_find (payload, KMIP_TAG_PROTOCOL_VERSION); pv; pv = kmip_find_next (pv)) {
    int32_t major, minor;
    if (kmip_node_struct (pv) < 0 ||
        kmip_get_int (pv, KMIP_TAG_PROTOCOL_VERSION_MAJOR, &major) < 0 ||
        kmip_get_int (pv, KMIP_TAG_PROTOCOL_VERSION_MINOR, &minor) < 0 ||
        major < 0 || major > 255 || minor < 0 || minor > 255)
      return kmip_set_error (KMIP_E_DECODE, "malformed DiscoverVersions response: %s",
                             kmip_last_error ());
    if (n < max)
      out[n++] = KMIP_V (major, minor);
  }
  return (int) n;
}

/* Pick the protocol version for a fresh connection to server i. */
static int
negotiate (struct kmip_client *c, size_t i)
{
  struct discover_args a = { .max = c->cfg->max_version };
  struct kmip_resp resp;
  uint16_t v[16];
  bool retryable;
  int r, n;

  if (c->cfg->pin_version) {
    c->version = c->cfg->pin_version;
    return 0;
  }
  if (c->server_version[i]) {
    c->version = c->server_version[i];
    return 0;
  }
  if (a.max < KMIP_V (1, 1)) {                /* max-version = 1.0: nothing to discover */
    c->version = c->server_version[i] = KMIP_V (1, 0);
    return 0;
  }
  /* DiscoverVersions exists since 1.1; ask with the highest version we may speak. A server
   * that refuses that header version may answer in its own: ask once more in that one. */
  uint16_t ask = a.max;
  for (int attempt = 0;; attempt++) {
    r = call_on_conn (c, ask, 1, 0, build_discover, &a, &resp, &retryable);
    if (r < 0)
      return r;
    r = kmip_resp_check (&resp, 0, KMIP_OPERATION_DISCOVER_VERSIONS);
    if (r != KMIP_E_RESULT ||
        resp.items[0].reason == KMIP_RESULT_REASON_AUTHENTICATION_NOT_SUCCESSFUL ||
        resp.items[0].reason == KMIP_RESULT_REASON_PERMISSION_DENIED)
      break;
    if (attempt == 0 && resp.version >= KMIP_V (1, 1) && resp.version < ask &&
        resp.items[0].reason != KMIP_RESULT_REASON_OPERATION_NOT_SUPPORTED) {
      ask = resp.version;
      kmip_resp_free (&resp);
      continue;
    }
    /* A KMIP 1.0 server does not know the operation: use 1.0. */
    kmip_resp_free (&resp);
    c->version = c->server_version[i] = KMIP_V (1, 0);
    return 0;
  }
  if (r < 0) {
    kmip_resp_free (&resp);
    return r;
  }
  n = kmip_parse_versions (resp.items[0].payload, v, sizeof v / sizeof v[0]);
  kmip_resp_free (&resp);
  if (n < 0)
    return n;
  /* The server lists its preference first; take the highest one we may use. */
  uint16_t best = 0;
  for (int k = 0; k < n; k++)
    if (v[k] <= a.max && v[k] > best)
      for (size_t j = 0; j < sizeof known_versions / sizeof known_versions[0]; j++)
        if (v[k] == known_versions[j])
          best = v[k];
  if (best == 0)
    return kmip_set_error (KMIP_E_VERSION, "%s: no KMIP version in common (we speak up to "
                           "%d.%d, set by max-version)", c->where, KMIP_V_MAJOR (a.max),
                           KMIP_V_MINOR (a.max));
  c->version = c->server_version[i] = best;
  return 0;
}

/* Connect to the first server that works, in configuration order. */
static int
connect_locked (struct kmip_client *c)
{
  char errors[2048] = "";
  size_t o = 0;
  int r = 0;

  for (size_t i = 0; i < c->cfg->nr_servers; i++) {
    const struct kmip_server_addr *a = &c->cfg->servers[i];
    snprintf (c->where, sizeof c->where, strchr (a->host, ':') ? "[%s]:%s" : "%s:%s",
              a->host, a->port);
    r = kmip_tls_connect (c->tls, a, c->cfg->timeout_ms, &c->conn);
    if (r == 0) {
      c->connections++;
      c->server = i;
      r = negotiate (c, i);
      if (r == 0)
        return 0;
      disconnect_locked (c);
    }
    if (o < sizeof errors)
      o += snprintf (errors + o, sizeof errors - o, "%s%s", o ? "; " : "", kmip_last_error ());
  }
  if (c->cfg->nr_servers == 1)
    return kmip_set_error (r, "%s", errors);
  return kmip_set_error (r, "all %zu KMS servers failed: %s", c->cfg->nr_servers, errors);
}

int
kmip_client_connect (struct kmip_client *c)
{
  int r = 0;

  pthread_mutex_lock (&c->lock);
  if (c->conn && c->conn->ops->is_stale (c->conn))
    disconnect_locked (c);
  if (c->conn == NULL)
    r = connect_locked (c);
  pthread_mutex_unlock (&c->lock);
  return r;
}

int
kmip_call (struct kmip_client *c, unsigned nitems, kmip_build_fn build, const void *args,
           struct kmip_resp *resp)
{
  return kmip_call_flags (c, nitems, 0, build, args, resp);
}

int
kmip_call_flags (struct kmip_client *c, unsigned nitems, unsigned flags, kmip_build_fn build,
                 const void *args, struct kmip_resp *resp)
{
  bool fresh = false, retryable;
  int r;

  memset (resp, 0, sizeof *resp);
  kmip_set_last_result (0, 0);
  pthread_mutex_lock (&c->lock);
  for (int attempt = 0; attempt < 2; attempt++) {
    if (c->conn && c->conn->ops->is_stale (c->conn))
      disconnect_locked (c);
    if (c->conn == NULL) {
      r = connect_locked (c);
      if (r < 0)
        break;
      fresh = true;
    }
    r = call_on_conn (c, c->version, nitems, flags, build, args, resp, &retryable);
    /* Only a reused connection that the server closed before answering is retried: the
     * request most likely never reached it. A fresh one failing is a real failure. */
    if (r == 0 || fresh || !retryable)
      break;
  }
  pthread_mutex_unlock (&c->lock);
  return r;
}
