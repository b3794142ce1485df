/* SPDX-License-Identifier: BSD-3-Clause */
/* TLS transport (OpenSSL 3): mutual TLS >= 1.2 with the server's chain and name always
 * verified, timeouts through non-blocking sockets and poll, and errors that say what to fix. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "internal.h"
#include "timeutil.h"

struct kmip_tls_ctx {
  SSL_CTX *ssl_ctx;
  char *ca;                     /* for messages; NULL: system store */
  bool have_client_cert;
};

struct tls_conn {
  struct kmip_conn base;
  SSL *ssl;
  int fd;
  char where[300];              /* "host:port" for messages */
  unsigned timeout_ms;
};

/* The first OpenSSL error on the queue as text, and clear the queue. */
static const char *
ssl_err_string (char *buf, size_t len)
{
  unsigned long e = ERR_peek_error ();

  if (e == 0)
    snprintf (buf, len, "unknown error");
  else
    ERR_error_string_n (e, buf, len);
  ERR_clear_error ();
  return buf;
}

int
kmip_tls_ctx_new (const struct kmip_config *cfg, struct kmip_tls_ctx **ctxp)
{
  struct kmip_tls_ctx *ctx;
  char ebuf[256];
  int r;

  *ctxp = NULL;
  ctx = calloc (1, sizeof *ctx);
  if (ctx == NULL)
    return kmip_set_error (-ENOMEM, "out of memory");
  ERR_clear_error ();
  ctx->ssl_ctx = SSL_CTX_new (TLS_client_method ());
  if (ctx->ssl_ctx == NULL) {
    r = kmip_set_error (KMIP_E_TLS, "SSL_CTX_new: %s", ssl_err_string (ebuf, sizeof ebuf));
    goto err;
  }
  SSL_CTX_set_min_proto_version (ctx->ssl_ctx, TLS1_2_VERSION);
  /* Decrypted records can hold key material: have OpenSSL wipe its plaintext buffers. */
  SSL_CTX_set_options (ctx->ssl_ctx, SSL_OP_CLEANSE_PLAINTEXT | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode (ctx->ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
  /* Always verify; there is deliberately no option to turn this off. */
  SSL_CTX_set_verify (ctx->ssl_ctx, SSL_VERIFY_PEER, NULL);

  if (cfg->ca) {
    ctx->ca = strdup (cfg->ca);
    if (ctx->ca == NULL) {
      r = kmip_set_error (-ENOMEM, "out of memory");
      goto err;
    }
    if (access (cfg->ca, R_OK) != 0) {
      r = kmip_set_error (-errno, "cannot read CA file %s (setting 'ca'): %m", cfg->ca);
      goto err;
    }
    if (SSL_CTX_load_verify_file (ctx->ssl_ctx, cfg->ca) != 1) {
      r = kmip_set_error (KMIP_E_TLS, "CA file %s (setting 'ca') holds no usable PEM "
                          "certificate: %s", cfg->ca, ssl_err_string (ebuf, sizeof ebuf));
      goto err;
    }
  }
  else if (SSL_CTX_set_default_verify_paths (ctx->ssl_ctx) != 1) {
    r = kmip_set_error (KMIP_E_TLS, "cannot load the system CA store: %s",
                        ssl_err_string (ebuf, sizeof ebuf));
    goto err;
  }

  if (cfg->client_cert) {
    const char *key = cfg->client_key ? cfg->client_key : cfg->client_cert;
    if (access (cfg->client_cert, R_OK) != 0) {
      r = kmip_set_error (-errno, "cannot read client certificate %s (setting 'client-cert'): "
                          "%m", cfg->client_cert);
      goto err;
    }
    if (SSL_CTX_use_certificate_chain_file (ctx->ssl_ctx, cfg->client_cert) != 1) {
      r = kmip_set_error (KMIP_E_TLS, "client certificate %s is not a PEM certificate: %s",
                          cfg->client_cert, ssl_err_string (ebuf, sizeof ebuf));
      goto err;
    }
    if (access (key, R_OK) != 0) {
      r = kmip_set_error (-errno, "cannot read client key %s (setting 'client-key'): %m", key);
      goto err;
    }
    if (SSL_CTX_use_PrivateKey_file (ctx->ssl_ctx, key, SSL_FILETYPE_PEM) != 1) {
      if (ERR_GET_REASON (ERR_peek_last_error ()) == X509_R_KEY_VALUES_MISMATCH) {
        ERR_clear_error ();
        r = kmip_set_error (KMIP_E_TLS, "client key %s does not belong to client certificate "
                            "%s", key, cfg->client_cert);
        goto err;
      }
      r = kmip_set_error (KMIP_E_TLS, "client key %s is not an unencrypted PEM private key: "
                          "%s", key, ssl_err_string (ebuf, sizeof ebuf));
      goto err;
    }
    if (SSL_CTX_check_private_key (ctx->ssl_ctx) != 1) {
      r = kmip_set_error (KMIP_E_TLS, "client key %s does not belong to client certificate "
                          "%s", key, cfg->client_cert);
      ERR_clear_error ();
      goto err;
    }
    ctx->have_client_cert = true;
  }
  *ctxp = ctx;
  return 0;

 err:
  kmip_tls_ctx_free (ctx);
  return r;
}

void
kmip_tls_ctx_free (struct kmip_tls_ctx *ctx)
{
  if (ctx == NULL)
    return;
  SSL_CTX_free (ctx->ssl_ctx);
  free (ctx->ca);
  free (ctx);
}

/* ---- a socket BIO that never raises SIGPIPE (send with MSG_NOSIGNAL): a library must not
 * change the process's signal dispositions, and OpenSSL's own socket BIO uses write(2). */

static int
nosig_write (BIO *b, const char *buf, int len)
{
  ssize_t n = send (BIO_get_fd (b, NULL), buf, len, MSG_NOSIGNAL);

  BIO_clear_retry_flags (b);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_write (b);
  return (int) n;
}

static int
nosig_read (BIO *b, char *buf, int len)
{
  ssize_t n = recv (BIO_get_fd (b, NULL), buf, len, 0);

  BIO_clear_retry_flags (b);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_read (b);
  return (int) n;
}

static long
nosig_ctrl (BIO *b, int cmd, long num, void *ptr)
{
  switch (cmd) {
  case BIO_C_SET_FD:
    BIO_set_data (b, (void *) (intptr_t) *(int *) ptr);
    BIO_set_init (b, 1);
    (void) num;
    return 1;
  case BIO_C_GET_FD:
    if (ptr)
      *(int *) ptr = (int) (intptr_t) BIO_get_data (b);
    return (long) (intptr_t) BIO_get_data (b);
  case BIO_CTRL_FLUSH:
    return 1;
  default:
    return 0;
  }
}

static BIO_METHOD *nosig_method;
static pthread_once_t nosig_once = PTHREAD_ONCE_INIT;

static void
nosig_init (void)
{
  nosig_method = BIO_meth_new (BIO_get_new_index () | BIO_TYPE_SOURCE_SINK |
                               BIO_TYPE_DESCRIPTOR, "kmip socket");
  if (nosig_method) {
    BIO_meth_set_write (nosig_method, nosig_write);
    BIO_meth_set_read (nosig_method, nosig_read);
    BIO_meth_set_ctrl (nosig_method, nosig_ctrl);
  }
}

/* ---- connection */

/* Wait until fd is readable/writable or the deadline passes. */
static int
wait_fd (int fd, short events, int64_t deadline)
{
  for (;;) {
    int64_t left = deadline - (int64_t) ncr_now_ms ();
    struct pollfd p = { .fd = fd, .events = events };
    int n;

    if (left <= 0)
      return -ETIMEDOUT;
    n = poll (&p, 1, left > 60000 ? 60000 : (int) left);
    if (n > 0)
      return 0;
    if (n < 0 && errno != EINTR)
      return -errno;
  }
}

static int
tcp_connect (const struct kmip_server_addr *addr, const char *where, int64_t deadline,
             unsigned timeout_ms)
{
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
  struct addrinfo *res, *ai;
  int r, fd = -1, err = 0;

  r = getaddrinfo (addr->host, addr->port, &hints, &res);
  if (r != 0)
    return kmip_set_error (-EHOSTUNREACH, "%s: cannot resolve '%s': %s", where, addr->host,
                           r == EAI_SYSTEM ? strerror (errno) : gai_strerror (r));
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket (ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    if (connect (fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    if (errno == EINPROGRESS) {
      socklen_t len = sizeof err;
      r = wait_fd (fd, POLLOUT, deadline);
      if (r == 0 && getsockopt (fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
        break;
      if (r < 0)
        err = -r;
    }
    else
      err = errno;
    close (fd);
    fd = -1;
  }
  freeaddrinfo (res);
  if (fd < 0) {
    if (err == ECONNREFUSED)
      return kmip_set_error (-ECONNREFUSED, "%s: connection refused (is the KMS running and "
                             "listening on this port?)", where);
    if (err == ETIMEDOUT)
      return kmip_set_error (-ETIMEDOUT, "%s: connection timed out after %.1f s (host down "
                             "or a firewall dropping packets?)", where, timeout_ms / 1000.0);
    return kmip_set_error (-err, "%s: cannot connect: %s", where, strerror (err));
  }
  int one = 1;
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Explain a failed handshake: what the verification said, or what the server's alert said. */
static int
handshake_error (struct kmip_tls_ctx *ctx, struct tls_conn *c, const char *host,
                 int ssl_err, int saved_errno)
{
  long vr = SSL_get_verify_result (c->ssl);
  unsigned long e = ERR_peek_error ();
  int reason = ERR_GET_REASON (e);
  char ebuf[256];
  const char *ca = ctx->ca ? ctx->ca : "the system store";

  if (vr != X509_V_OK) {
    ERR_clear_error ();
    switch (vr) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return kmip_set_error (KMIP_E_TLS, "%s: server certificate does not match '%s' "
                             "(hostname mismatch): use the name the certificate was issued "
                             "for in 'server ='", c->where, host);
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return kmip_set_error (KMIP_E_TLS, "%s: server certificate has expired: the KMS must "
                             "renew it (or the clock here is wrong)", c->where);
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return kmip_set_error (KMIP_E_TLS, "%s: server certificate is not yet valid (check the "
                             "clock)", c->where);
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return kmip_set_error (KMIP_E_TLS, "%s: server certificate is not trusted: it is not "
                             "signed by a CA in %s (setting 'ca'): %s", c->where, ca,
                             X509_verify_cert_error_string (vr));
    default:
      return kmip_set_error (KMIP_E_TLS, "%s: server certificate rejected: %s", c->where,
                             X509_verify_cert_error_string (vr));
    }
  }
  if (e && ERR_GET_LIB (e) == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET &&
      reason < SSL_AD_REASON_OFFSET + 256) {
    int alert = reason - SSL_AD_REASON_OFFSET;
    ERR_clear_error ();
    switch (alert) {
    case SSL_AD_HANDSHAKE_FAILURE:
    case SSL_AD_CERTIFICATE_REQUIRED:
      if (!ctx->have_client_cert)
        return kmip_set_error (KMIP_E_TLS, "%s: the server requires a client certificate "
                               "(TLS alert: %s): set client-cert and client-key", c->where,
                               SSL_alert_desc_string_long (alert));
      /* fallthrough */
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_DECRYPT_ERROR:
      return kmip_set_error (KMIP_E_TLS, "%s: the server rejected our client certificate (TLS "
                             "alert: %s): client-cert must be issued by a CA the KMS trusts, "
                             "valid, with extendedKeyUsage clientAuth", c->where,
                             SSL_alert_desc_string_long (alert));
    case SSL_AD_PROTOCOL_VERSION:
      return kmip_set_error (KMIP_E_TLS, "%s: no common TLS version (we require TLS >= 1.2)",
                             c->where);
    default:
      return kmip_set_error (KMIP_E_TLS, "%s: TLS handshake failed, the server sent alert: %s",
                             c->where, SSL_alert_desc_string_long (alert));
    }
  }
  if (e && ERR_GET_LIB (e) == ERR_LIB_SSL && reason == SSL_R_WRONG_VERSION_NUMBER) {
    ERR_clear_error ();
    return kmip_set_error (KMIP_E_TLS, "%s: the server does not speak TLS (is this the KMIP "
                           "port, usually 5696?)", c->where);
  }
  if (e)
    return kmip_set_error (KMIP_E_TLS, "%s: TLS handshake failed: %s", c->where,
                           ssl_err_string (ebuf, sizeof ebuf));
  if (ssl_err == SSL_ERROR_SYSCALL && saved_errno)
    return kmip_set_error (-saved_errno, "%s: TLS handshake failed: %s", c->where,
                           strerror (saved_errno));
  return kmip_set_error (KMIP_E_TLS, "%s: the server closed the connection during the TLS "
                         "handshake (not a TLS port, or it refused our client certificate)",
                         c->where);
}

enum ssl_op { OP_CONNECT, OP_READ, OP_WRITE };

/* Drive one non-blocking SSL call until it completes or the deadline passes. Returns 0, or
 * -ETIMEDOUT / -errno from poll, or -EIO with *ssl_err and *saved_errno describing it. */
static int
ssl_drive (struct tls_conn *c, enum ssl_op op, void *buf, size_t len, size_t *n,
           int64_t deadline, int *ssl_err, int *saved_errno)
{
  for (;;) {
    int ok, r;

    ERR_clear_error ();
    errno = 0;
    switch (op) {
    case OP_CONNECT: ok = SSL_connect (c->ssl); break;
    case OP_READ: ok = SSL_read_ex (c->ssl, buf, len, n); break;
    default: ok = SSL_write_ex (c->ssl, buf, len, n); break;
    }
    if (ok > 0)
      return 0;
    *ssl_err = SSL_get_error (c->ssl, ok);
    *saved_errno = errno;
    if (*ssl_err == SSL_ERROR_WANT_READ)
      r = wait_fd (c->fd, POLLIN, deadline);
    else if (*ssl_err == SSL_ERROR_WANT_WRITE)
      r = wait_fd (c->fd, POLLOUT, deadline);
    else
      return -EIO;
    if (r < 0)
      return r;
  }
}

/* An error on an established connection: an alert (TLS 1.3 sends the client certificate
 * verdict after the handshake), EOF, a reset, or a timeout. */
static int
io_error (struct tls_conn *c, int r, int ssl_err, int saved_errno, const char *what)
{
  unsigned long e = ERR_peek_error ();
  int reason = ERR_GET_REASON (e);
  char ebuf[256];

  if (r == -ETIMEDOUT)
    return kmip_set_error (-ETIMEDOUT, "%s: no %s within %.1f s (server not answering)",
                           c->where, what, c->timeout_ms / 1000.0);
  if (e && ERR_GET_LIB (e) == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET &&
      reason < SSL_AD_REASON_OFFSET + 256) {
    int alert = reason - SSL_AD_REASON_OFFSET;
    ERR_clear_error ();
    if (alert == SSL_AD_CERTIFICATE_REQUIRED || alert == SSL_AD_BAD_CERTIFICATE ||
        alert == SSL_AD_UNKNOWN_CA || alert == SSL_AD_UNSUPPORTED_CERTIFICATE ||
        alert == SSL_AD_CERTIFICATE_EXPIRED || alert == SSL_AD_CERTIFICATE_UNKNOWN ||
        alert == SSL_AD_ACCESS_DENIED)
      return kmip_set_error (KMIP_E_TLS, "%s: the server rejected our client certificate (TLS "
                             "alert: %s)", c->where, SSL_alert_desc_string_long (alert));
    return kmip_set_error (KMIP_E_TLS, "%s: the server sent TLS alert: %s", c->where,
                           SSL_alert_desc_string_long (alert));
  }
  if (ssl_err == SSL_ERROR_ZERO_RETURN ||
      (ssl_err == SSL_ERROR_SYSCALL && saved_errno == 0 && e == 0) ||
      (e && ERR_GET_REASON (e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
    ERR_clear_error ();
    return kmip_set_error (-EPIPE, "%s: the server closed the connection", c->where);
  }
  if (ssl_err == SSL_ERROR_SYSCALL && (saved_errno == ECONNRESET || saved_errno == EPIPE))
    return kmip_set_error (-EPIPE, "%s: the server closed the connection (reset)", c->where);
  if (ssl_err == SSL_ERROR_SYSCALL && saved_errno)
    return kmip_set_error (-saved_errno, "%s: %s: %s", c->where, what, strerror (saved_errno));
  return kmip_set_error (KMIP_E_TLS, "%s: %s: %s", c->where, what,
                         ssl_err_string (ebuf, sizeof ebuf));
}

static int
tls_write_all (struct kmip_conn *conn, const void *buf, size_t len, int64_t deadline)
{
  struct tls_conn *c = (struct tls_conn *) conn;
  size_t done = 0, n;
  int ssl_err = 0, saved = 0, r;

  while (done < len) {
    r = ssl_drive (c, OP_WRITE, (char *) buf + done, len - done, &n, deadline,
                   &ssl_err, &saved);
    if (r < 0)
      return io_error (c, r, ssl_err, saved, "sending the request");
    done += n;
  }
  return 0;
}

static int
tls_read_all (struct kmip_conn *conn, void *buf, size_t len, int64_t deadline)
{
  struct tls_conn *c = (struct tls_conn *) conn;
  size_t done = 0, n;
  int ssl_err = 0, saved = 0, r;

  while (done < len) {
    r = ssl_drive (c, OP_READ, (char *) buf + done, len - done, &n, deadline,
                   &ssl_err, &saved);
    if (r < 0) {
      r = io_error (c, r, ssl_err, saved, "response");
      if (r == -EPIPE && done > 0)
        return kmip_set_error (-ECONNRESET, "%s: the server closed the connection in the "
                               "middle of a response (%zu of %zu bytes)", c->where, done, len);
      return r;
    }
    done += n;
  }
  return 0;
}

static int
tls_is_stale (struct kmip_conn *conn)
{
  struct tls_conn *c = (struct tls_conn *) conn;
  struct pollfd p = { .fd = c->fd, .events = POLLIN };
  char byte;
  size_t n;
  int ret;

  if (SSL_pending (c->ssl) > 0)
    return 1;                   /* unsolicited data: we cannot resynchronise */
  if (poll (&p, 1, 0) <= 0)
    return 0;
  if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
    return 1;
  /* Readable: a close_notify, an EOF, or a TLS 1.3 session ticket (harmless). */
  ERR_clear_error ();
  ret = SSL_peek_ex (c->ssl, &byte, 1, &n);
  if (ret > 0)
    return 1;
  ret = SSL_get_error (c->ssl, ret);
  ERR_clear_error ();
  return ret != SSL_ERROR_WANT_READ && ret != SSL_ERROR_WANT_WRITE;
}

static void
tls_close (struct kmip_conn *conn)
{
  struct tls_conn *c = (struct tls_conn *) conn;

  if (c == NULL)
    return;
  if (c->ssl) {
    SSL_shutdown (c->ssl);      /* best effort close_notify; non-blocking */
    SSL_free (c->ssl);
  }
  if (c->fd >= 0)
    close (c->fd);
  ERR_clear_error ();
  free (c);
}

static const struct kmip_transport_ops tls_ops = {
  .write_all = tls_write_all,
  .read_all = tls_read_all,
  .is_stale = tls_is_stale,
  .close = tls_close,
};

static bool
is_ip_literal (const char *host)
{
  unsigned char buf[sizeof (struct in6_addr)];

  return inet_pton (AF_INET, host, buf) == 1 || inet_pton (AF_INET6, host, buf) == 1;
}

int
kmip_tls_connect (struct kmip_tls_ctx *ctx, const struct kmip_server_addr *addr,
                  unsigned timeout_ms, struct kmip_conn **connp)
{
  int64_t deadline = (int64_t) ncr_now_ms () + timeout_ms;
  struct tls_conn *c;
  BIO *bio;
  int r, ssl_err = 0, saved = 0;

  *connp = NULL;
  pthread_once (&nosig_once, nosig_init);
  if (nosig_method == NULL)
    return kmip_set_error (-ENOMEM, "cannot create the socket BIO method");
  c = calloc (1, sizeof *c);
  if (c == NULL)
    return kmip_set_error (-ENOMEM, "out of memory");
  c->base.ops = &tls_ops;
  c->timeout_ms = timeout_ms;
  snprintf (c->where, sizeof c->where, strchr (addr->host, ':') ? "[%s]:%s" : "%s:%s",
            addr->host, addr->port);
  c->fd = tcp_connect (addr, c->where, deadline, timeout_ms);
  if (c->fd < 0) {
    r = c->fd;
    free (c);
    return r;
  }
  ERR_clear_error ();
  c->ssl = SSL_new (ctx->ssl_ctx);
  bio = BIO_new (nosig_method);
  if (c->ssl == NULL || bio == NULL) {
    BIO_free (bio);
    r = kmip_set_error (-ENOMEM, "SSL_new failed");
    goto err;
  }
  BIO_set_fd (bio, c->fd, BIO_NOCLOSE);
  SSL_set_bio (c->ssl, bio, bio);
  if (is_ip_literal (addr->host)) {
    /* No SNI for addresses (RFC 6066); check the certificate's IP SAN instead. */
    if (X509_VERIFY_PARAM_set1_ip_asc (SSL_get0_param (c->ssl), addr->host) != 1) {
      r = kmip_set_error (KMIP_E_TLS, "%s: cannot set the expected IP address", c->where);
      goto err;
    }
  }
  else if (SSL_set_tlsext_host_name (c->ssl, addr->host) != 1 ||
           SSL_set1_host (c->ssl, addr->host) != 1) {
    r = kmip_set_error (KMIP_E_TLS, "%s: cannot set the expected host name", c->where);
    goto err;
  }
  r = ssl_drive (c, OP_CONNECT, NULL, 0, NULL, deadline, &ssl_err, &saved);
  if (r == -ETIMEDOUT) {
    r = kmip_set_error (-ETIMEDOUT, "%s: TLS handshake timed out after %.1f s (the server "
                        "accepted the connection but does not answer)", c->where,
                        timeout_ms / 1000.0);
    goto err;
  }
  if (r < 0) {
    r = handshake_error (ctx, c, addr->host, ssl_err, saved);
    goto err;
  }
  *connp = &c->base;
  return 0;

 err:
  ERR_clear_error ();
  if (c->ssl)
    SSL_free (c->ssl);
  close (c->fd);
  free (c);
  return r;
}
