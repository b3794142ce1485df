/* SPDX-License-Identifier: BSD-3-Clause */
/* kmip-client public API: configuration, connection to a KMIP server over mutual TLS, and the
 * KMIP operations nbdcrypt needs (keys: create, register, get, locate, attributes, lifecycle,
 * server-side encrypt/decrypt).
 *
 * Conventions (see kmip/errors.h): functions return 0 (or a count) on success, a negative errno
 * or KMIP_E_* on failure, with a message for the calling thread in kmip_last_error(). When the
 * server answers with a failure, the code is KMIP_E_RESULT, the message carries the server's
 * result reason and message ("Item Not Found: Could not locate object: 7", the server's text
 * escaped as kmip_escape_text does) and
 * kmip_last_result() gives the numbers. The library never prints.
 *
 * Thread-safety: a struct kmip_client may be shared by threads; calls on one handle are
 * serialised by an internal mutex (one request in flight per connection). For parallel
 * requests, open one handle per thread; for many objects, batch them (kmip_batch).
 * Configurations are read-only once loaded.
 *
 * Secrets: key bytes are copied into memory the caller provides (put it in secmem); every
 * intermediate copy (TLS plaintext buffers, the response message and its decoded tree) is
 * wiped before the call returns. */
#ifndef KMIP_KMIP_H
#define KMIP_KMIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kmip/errors.h"
#include "kmip/ttlv.h"

/* Protocol versions as 0xMMmm: KMIP_V(1, 4) == 0x0104. */
#define KMIP_V(major, minor) ((uint16_t) (((major) << 8) | (minor)))
#define KMIP_V_MAJOR(v) ((v) >> 8)
#define KMIP_V_MINOR(v) ((v) & 0xff)
#define KMIP_DEFAULT_MAX_VERSION KMIP_V (1, 4)   /* OVHcloud OKMS's ceiling */
#define KMIP_DEFAULT_PORT "5696"
#define KMIP_DEFAULT_TIMEOUT_MS 10000

/* ---------------------------------------------------------------- configuration */

struct kmip_server_addr {
  char *host;                   /* name or IP literal (IPv6 without brackets) */
  char *port;                   /* decimal string */
};

struct kmip_config {
  struct kmip_server_addr *servers; /* tried in order (failover) */
  size_t nr_servers;
  char *ca;                     /* PEM CA file trusted for the server; NULL: system store */
  char *client_cert;            /* PEM certificate (chain) for mutual TLS; NULL: none */
  char *client_key;             /* PEM private key; NULL: the key is in client_cert */
  unsigned timeout_ms;          /* connect, handshake, and each request/response */
  uint16_t max_version;         /* negotiate the highest common version <= this */
  uint16_t pin_version;         /* 0, or use exactly this version (no DiscoverVersions) */
  size_t max_message;           /* hard cap on a response's size */
};

/* Read the [kms] section of an INI file (other sections are ignored):
 *   server = host:port[, host:port...]   ([v6::addr]:port; port defaults to 5696)
 *   ca = FILE | system                    client-cert = FILE      client-key = FILE
 *   timeout = SECONDS (may be fractional) max-version = 1.0..1.4 | 2.0
 *   version = X.Y (pin)                   max-message-size = BYTES[K|M]
 * Relative paths are relative to the file's directory. Errors name FILE:LINE. */
int kmip_config_load (const char *path, struct kmip_config **cfgp);

/* Same, from text already in memory; name is used in messages and to resolve relative paths
 * (NULL: the current directory). */
int kmip_config_parse (const char *text, const char *name, struct kmip_config **cfgp);

/* An empty configuration with the defaults (for callers that fill it in themselves). */
struct kmip_config *kmip_config_new (void);
/* Append a server "host[:port]" / "[v6]:port". */
int kmip_config_add_server (struct kmip_config *cfg, const char *hostport);
void kmip_config_free (struct kmip_config *cfg);

/* "1.4" -> KMIP_V(1,4); returns 0 if not a version this library speaks. */
uint16_t kmip_version_parse (const char *s);

/* ---------------------------------------------------------------- connection */

struct kmip_client;

/* Create a handle. Nothing is sent until the first operation, which connects (trying the
 * servers in order), negotiates the version, and keeps the connection for later calls. The
 * configuration is copied. */
int kmip_client_new (const struct kmip_config *cfg, struct kmip_client **clientp);
void kmip_client_free (struct kmip_client *client);

/* Connect now (and negotiate) if not connected; useful to report problems early. */
int kmip_client_connect (struct kmip_client *client);
/* Drop the connection; the next operation reconnects. */
void kmip_client_disconnect (struct kmip_client *client);

/* The version in use (negotiated or pinned), 0 before the first connection. */
uint16_t kmip_client_version (struct kmip_client *client);
/* "host:port" of the server currently connected, or NULL. */
const char *kmip_client_server (struct kmip_client *client);
/* Number of TCP+TLS connections made so far (for tests and benchmarks). */
unsigned kmip_client_connections (struct kmip_client *client);
/* Number of request messages sent so far, DiscoverVersions included (one per round trip). */
unsigned kmip_client_requests (struct kmip_client *client);

/* Result status / reason of the last failed operation on this thread (0 if none). */
struct kmip_result { uint32_t status, reason; };
struct kmip_result kmip_last_result (void);

/* ---------------------------------------------------------------- values */

#define KMIP_UID_MAX 128        /* longer identifiers are refused as malformed */

/* Enumerations and masks use the constants of kmip/ttlv.h: KMIP_OBJECT_TYPE_SYMMETRIC_KEY,
 * KMIP_STATE_ACTIVE, KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE, KMIP_KEY_FORMAT_TYPE_RAW,
 * KMIP_CRYPTOGRAPHIC_ALGORITHM_AES, KMIP_CRYPTOGRAPHIC_USAGE_MASK_ENCRYPT,
 * KMIP_BLOCK_CIPHER_MODE_CBC ...; kmip_enum_name (KMIP_TAG_STATE, v) names a value. */

/* A result reason as the spec writes it ("Item Not Found", "Permission Denied"). */
const char *kmip_reason_text (uint32_t reason, char *buf, size_t len);

/* Text from the server (names, attribute values, vendor strings) as it may be printed: the
 * len bytes of s (NULs included) into out, printable ASCII kept, a backslash as "\\", every
 * other byte as "\xNN"; cut to outsize - 1 characters, ending in "..." when cut. The
 * library's own messages already hold server text escaped this way. Returns out. */
const char *kmip_escape_text (const char *s, size_t len, char *out, size_t outsize);

/* ---------------------------------------------------------------- operations */

/* DiscoverVersions: the versions the server supports, best first. Returns the count (up to
 * max) or an error; KMIP_E_RESULT when the server does not implement it (KMIP 1.0). */
int kmip_discover_versions (struct kmip_client *c, uint16_t *versions, size_t max);

struct kmip_query_info {
  uint32_t *operations; size_t nr_operations;
  uint32_t *object_types; size_t nr_object_types;
  char *vendor;                 /* Vendor Identification, or NULL */
  char *server_info;            /* Server Information as text when the server sends text */
};
int kmip_query (struct kmip_client *c, struct kmip_query_info *info);
void kmip_query_info_free (struct kmip_query_info *info);

struct kmip_create_params {
  unsigned length_bits;         /* 128, 192, 256 (default 256 if 0) */
  uint32_t usage_mask;          /* default ENCRYPT|DECRYPT|WRAP|UNWRAP if 0 */
  const char *name;             /* Name attribute, or NULL */
  bool activate;                /* Activate in the same message (ID placeholder batch); in a
                                 * second request if the server refuses that message */
};
/* Create an AES key; its Unique Identifier goes to uid. */
int kmip_create_aes (struct kmip_client *c, const struct kmip_create_params *p,
                     char uid[KMIP_UID_MAX]);

/* Create an AES key (activated if p->activate) and fetch its bytes into buf (at most bufsize
 * bytes), in one round trip: Create, Activate and Get batched in one message, the later items
 * naming the new key through the ID placeholder (no Unique Identifier). A server that refuses
 * an Activate without identifier (PyKMIP 0.10) gets Create + Get in one message and the
 * Activate in a second; one that refuses the placeholder in Get, three requests. What a server
 * refused is remembered on the handle, so later calls do not try again. The Get answer must
 * name the identifier Create returned. Returns the key length; on failure after Create
 * succeeded, uid holds the new key's identifier (else it is empty). */
int kmip_create_aes_get (struct kmip_client *c, const struct kmip_create_params *p,
                         char uid[KMIP_UID_MAX], uint8_t *buf, size_t bufsize);

/* Register a symmetric key (AES, len bytes: KMIP_OBJECT_TYPE_SYMMETRIC_KEY) or secret data
 * (KMIP_OBJECT_TYPE_SECRET_DATA). */
int kmip_register (struct kmip_client *c, uint32_t object_type,
                   const uint8_t *bytes, size_t len, const char *name,
                   char uid[KMIP_UID_MAX]);

/* Get the key material of a symmetric key or secret data, at most bufsize bytes into buf
 * (-ENOBUFS if larger). Returns the number of bytes. key_format: KMIP_KEY_FORMAT_TYPE_RAW or
 * _TRANSPARENT_SYMMETRIC_KEY, or 0 to let the server choose
 * (both yield the raw key bytes here; what differs is what is asked on the wire). */
int kmip_get_key (struct kmip_client *c, const char *uid, uint32_t key_format,
                  uint8_t *buf, size_t bufsize);

/* The same and the object's State (KMIP_STATE_*), with Get and GetAttributes batched in one
 * message: one round trip to fetch a key and check it may still be used. */
int kmip_get_key_state (struct kmip_client *c, const char *uid, uint32_t key_format,
                        uint8_t *buf, size_t bufsize, uint32_t *state);

struct kmip_locate_params {
  const char *name;             /* Name, or NULL */
  uint32_t object_type;         /* 0: any */
  uint32_t state;               /* 0: any */
  uint32_t max_items;           /* 0: no limit */
  uint32_t offset;              /* skip this many (KMIP >= 1.3; ignored by older servers) */
};
/* Locate: *uids receives a malloc'd array of malloc'd strings (kmip_strv_free). */
int kmip_locate (struct kmip_client *c, const struct kmip_locate_params *p, char ***uidsp);
void kmip_strv_free (char **strv);

struct kmip_attrs {
  uint32_t object_type, state, algorithm, length, usage_mask; /* 0 if absent */
  char **names;                 /* NULL-terminated */
  char **custom;                /* NULL-terminated "x-name=value" for text custom attrs
                                 * (1.x, or 2.0 Vendor Attributes of vendor x/y); other
                                 * vendors' 2.0 text attributes as "VENDOR:name=value" */
};
int kmip_get_attributes (struct kmip_client *c, const char *uid, struct kmip_attrs *a);
void kmip_attrs_free (struct kmip_attrs *a);

/* GetAttributeList: the names of the attributes the object has (NULL-terminated). */
int kmip_get_attribute_list (struct kmip_client *c, const char *uid, char ***namesp);

/* Add / modify a text attribute: a custom one ("x-NAME" as vSphere sends; a Vendor Attribute
 * with Vendor Identification "x" at KMIP 2.0), "Name" or "Contact Information". */
int kmip_add_attribute (struct kmip_client *c, const char *uid, const char *name,
                        const char *value);
int kmip_modify_attribute (struct kmip_client *c, const char *uid, const char *name,
                           const char *value);

int kmip_activate (struct kmip_client *c, const char *uid);
int kmip_revoke (struct kmip_client *c, const char *uid, uint32_t reason_code,
                 const char *message);
int kmip_destroy (struct kmip_client *c, const char *uid);
/* ReKey: a new key replacing uid; its identifier goes to new_uid. */
int kmip_rekey (struct kmip_client *c, const char *uid, char new_uid[KMIP_UID_MAX]);

/* Encrypt / Decrypt with a key held by the server (KMIP >= 1.2). mode: KMIP block cipher
 * mode (KMIP_BLOCK_CIPHER_MODE_CBC with PKCS#5 padding, _CTR ...); iv of iv_len bytes.
 * The output (malloc'd, *outp, *out_lenp) must be wiped and freed by the caller. */
int kmip_encrypt (struct kmip_client *c, const char *uid, uint32_t mode,
                  const uint8_t *iv, size_t iv_len, const uint8_t *in, size_t in_len,
                  uint8_t **outp, size_t *out_lenp);
int kmip_decrypt (struct kmip_client *c, const char *uid, uint32_t mode,
                  const uint8_t *iv, size_t iv_len, const uint8_t *in, size_t in_len,
                  uint8_t **outp, size_t *out_lenp);

/* AES-GCM with a key held by the server (KMIP >= 1.4, where the Authenticated Encryption
 * Additional Data and Tag fields exist; -ENOTSUP before): nonce iv (12 bytes usually), aad
 * (may be empty), a tag of tag_len bytes (4..16) written by Encrypt into tag, checked by
 * Decrypt (a wrong tag, data or aad fails on the server's side). Output as kmip_encrypt. */
int kmip_encrypt_aead (struct kmip_client *c, const char *uid, const uint8_t *iv,
                       size_t iv_len, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                       size_t in_len, uint8_t *tag, size_t tag_len, uint8_t **outp,
                       size_t *out_lenp);
int kmip_decrypt_aead (struct kmip_client *c, const char *uid, const uint8_t *iv,
                       size_t iv_len, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                       size_t in_len, const uint8_t *tag, size_t tag_len, uint8_t **outp,
                       size_t *out_lenp);

/* ---------------------------------------------------------------- batches */

/* Independent operations on many objects in few messages: up to KMIP_BATCH_ITEMS_MAX batch
 * items a request (pykmip-server takes any number within its 1 MiB message cap; 128 Get
 * answers make about 40 KB), sent with Batch Error Continuation Option "Continue" so that a
 * failed item (a missing or refused object) does not stop the items after it. */
#define KMIP_BATCH_ITEMS_MAX 128

struct kmip_batch_item {
  /* In. */
  uint32_t op;                  /* KMIP_OPERATION_GET, _GET_ATTRIBUTES (the State only) or
                                 * _DECRYPT */
  const char *uid;
  uint32_t key_format;          /* Get: as kmip_get_key (0: the server's choice) */
  uint32_t mode;                /* Decrypt: as kmip_decrypt (GCM is not batched) */
  const uint8_t *iv, *in;       /* Decrypt: IV and ciphertext */
  size_t iv_len, in_len;
  uint8_t *out;                 /* Get: the key bytes, Decrypt: the plaintext, at most
                                 * out_size bytes (-ENOBUFS if more): the caller's secmem */
  size_t out_size;
  /* Out. */
  size_t out_len;
  uint32_t state;               /* GetAttributes: KMIP_STATE_*, 0 if the answer had none */
  int result;                   /* 0, or what the single operation would have returned */
  struct kmip_result status;    /* the server's status and reason if result is KMIP_E_RESULT */
};

/* Send items[0..n) in batches of at most KMIP_BATCH_ITEMS_MAX (fewer when the server answers
 * "Response Too Large"); a server that stops at a failed item despite "Continue" gets the
 * items it left unanswered in the next request. Items are checked first: a malformed one
 * (empty identifier, no output buffer) gets -EINVAL and is not sent. Returns 0 once every
 * item has its own answer, successes and failures alike, or the error of an exchange that
 * failed (no connection, a malformed or refused message): the items it left unanswered have
 * that error as result, and kmip_last_error() says why. */
int kmip_batch (struct kmip_client *c, struct kmip_batch_item *items, size_t n);

#endif /* KMIP_KMIP_H */
