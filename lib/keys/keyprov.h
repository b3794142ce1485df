/* SPDX-License-Identifier: BSD-3-Clause */
/* Key providers: where a volume's key-encryption key (KEK) lives and how the data key (DEK) is
 * wrapped under it. "file": a local 32-byte KEK file, RFC 5649 wrap. "kmip": a KEK in a KMIP
 * server, either fetched and used locally (aes-kwp) or never leaving the KMS (wrap "kms").
 * Every key byte handled here sits in secmem and is wiped after use.
 *
 * Threads: one keyprov may be shared by every thread of a process (connection threads
 * opening volumes, a key-state checker): any call may come from any thread at any time, except
 * keyprov_free, which must be the last. The KMIP provider serialises its operations on one
 * mutex that guards its state and its one connection, so one request is in flight at a time
 * (a batch holds other callers back for its round trips); the file provider holds no mutable
 * state after it is opened. Error messages (ncr_last_error) are per thread. */
#ifndef NBDCRYPT_KEYPROV_H
#define NBDCRYPT_KEYPROV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kek_state {
  KEK_STATE_ACTIVE,
  KEK_STATE_PRE_ACTIVE,
  KEK_STATE_DEACTIVATED,
  KEK_STATE_COMPROMISED,      /* revoked as compromised */
  KEK_STATE_DESTROYED,
  KEK_STATE_MISSING,          /* no such object */
};
const char *kek_state_name (enum kek_state s);
/* True for states in which the key must no longer be used to open volumes. */
bool kek_state_is_revoked (enum kek_state s);

/* Where a KEK lives. The header records it by name: "file" or "kmip". */
enum keyprov_kind {
  KEYPROV_FILE,               /* a local 32-byte KEK file */
  KEYPROV_KMIP,               /* a KEK in a KMIP server */
};
/* How the DEK is wrapped. The header records it by name: "aes-kwp" or "kms". */
enum key_wrap {
  KEY_WRAP_AES_KWP,           /* RFC 5649 here, with the KEK (fetched from the KMS if kmip) */
  KEY_WRAP_KMS,               /* the KMS encrypts the DEK; the KEK never leaves it */
};

/* The names of the header (on-disk) and of the user interface, converted in one place: the
 * *_from_name functions return 0, or -EINVAL with a message quoting the unknown name. */
const char *keyprov_kind_name (enum keyprov_kind k);
int keyprov_kind_from_name (const char *name, enum keyprov_kind *out);
const char *key_wrap_name (enum key_wrap w);
int key_wrap_from_name (const char *name, enum key_wrap *out);

struct keyprov;

/* A local KEK file: exactly 32 bytes. Read into locked memory. Returns 0 or -errno. */
int keyprov_file_open (const char *path, struct keyprov **out);

/* Create a new random 32-byte KEK file (mode 0600, must not exist). Returns 0 or -errno. */
int keyprov_file_create (const char *path);

/* A KMIP server described by an nbdcrypt kms.conf. Connects lazily. Returns 0 or -errno. */
int keyprov_kmip_open (const char *config_path, struct keyprov **out);

enum keyprov_kind keyprov_kind (const struct keyprov *kp);
/* "file" or "kmip": the value stored in the header's KEK provider field. */
const char *keyprov_name (const struct keyprov *kp);

/* Set by the open functions when a secret file they read (the KEK file; kms.conf and the
 * client key of a KMS) is readable by group or others: a warning for the caller to show,
 * "" if none. The library never prints it. */
const char *keyprov_warning (const struct keyprov *kp);

/* The KEK id to record for this provider when the user gave none: for a file, its
 * fingerprint "sha256:<32 hex>" (a domain-separated digest, not the key). -ENOTSUP for kmip. */
int keyprov_default_kek_id (struct keyprov *kp, char *out, size_t size);

/* Create a new AES-256 KEK in the KMS (activated), returning its unique id. kmip only.
 * wrap: the wrap mode it is created for, or NULL. For "aes-kwp" the KMIP provider fetches the
 * new KEK in the creating exchange (ID placeholder batch) and keeps it, in locked memory, for
 * the next keyprov_wrap under that id, which then needs no further round trip. */
int keyprov_create_kek (struct keyprov *kp, const char *name, const char *wrap,
                        char *id_out, size_t id_size);

/* Wrap / unwrap a DEK under KEK kek_id with mode wrap (its header name: "aes-kwp" or "kms").
 * unwrap writes the DEK into dek (caller's secmem, dek_size bytes). Wrong KEK: -EKEYREJECTED.
 * KMS unreachable: a transient error (see keyprov_error_is_transient). Returns 0 or -errno. */
int keyprov_wrap (struct keyprov *kp, const char *kek_id, const char *wrap,
                  const uint8_t *dek, size_t dek_len,
                  uint8_t *out, size_t out_size, size_t *out_len);
int keyprov_unwrap (struct keyprov *kp, const char *kek_id, const char *wrap,
                    const uint8_t *in, size_t in_len,
                    uint8_t *dek, size_t dek_size, size_t *dek_len);

/* The KEK's lifecycle state. A file KEK is always active. Returns 0 or -errno. */
int keyprov_kek_state (struct keyprov *kp, const char *kek_id, enum kek_state *state);

/* ---- many volumes at once: a process serving thousands of volumes from one KMS */

/* One volume's wrapped DEK, as its header names it. */
struct keyprov_want {
  const char *kek_id;
  const char *wrap;             /* header name: "aes-kwp" or "kms" */
  const uint8_t *wrapped;
  size_t wrapped_len;
  int result;                   /* out: 0, or -errno (ncr_last_error: the last item's) */
};

/* Fetch what unwrapping these needs in as few KMS messages as possible: for wrap "aes-kwp"
 * the distinct KEKs (batched Get), for "kms" the DEKs (batched Decrypt), each with the KEK's
 * State in the same exchange (batched GetAttributes; up to 128 batch items a message, so 64
 * volumes with a KEK each). A KEK that is not Active is refused as keyprov_unwrap refuses it
 * (EKEYREVOKED; ENOENT when missing) and nothing of it is kept. What succeeded is kept in
 * locked memory in the provider until keyprov_forget() (or until keyprov_kek_state[_many]
 * sees that KEK no longer Active): keyprov_unwrap of a prefetched volume then answers from
 * there without a round trip; any other goes to the KMS as before. A wrong item (missing KEK,
 * revoked, malformed) fails alone, in its result. Returns 0 if the exchange happened (even if
 * items failed), or -errno if it did not (transient, see keyprov_error_is_transient, when the
 * KMS could not be reached): the items without an answer then carry that error. The file
 * provider fetches nothing: it checks each item as keyprov_unwrap would (wrap mode, KEK
 * fingerprint). */
int keyprov_prefetch (struct keyprov *kp, struct keyprov_want *w, size_t n);
/* Wipe everything prefetched. */
void keyprov_forget (struct keyprov *kp);

struct keyprov_state_query {
  const char *kek_id;
  enum kek_state state;         /* out */
  int result;                   /* out: 0, or -errno */
};
/* keyprov_kek_state of many KEKs in as few messages as possible (batched GetAttributes of the
 * State, one item per distinct id): a missing object gives KEK_STATE_MISSING with result 0.
 * Returns 0 if the exchange happened, or -errno as keyprov_prefetch. */
int keyprov_kek_state_many (struct keyprov *kp, struct keyprov_state_query *q, size_t n);

/* For benchmarks and tests: request messages sent to the KMS and TLS connections opened by
 * this provider so far (0 and 0 for a file). */
void keyprov_stats (const struct keyprov *kp, uint64_t *messages, uint64_t *connections);

/* Fetch a raw key object (headerless volumes keyed by key-id=): into key (secmem). */
int keyprov_get_key (struct keyprov *kp, const char *key_id,
                     uint8_t *key, size_t key_size, size_t *key_len);

/* True if r (a negative return) means "could not reach the KMS" (retry later), as opposed
 * to an answer (wrong key, missing object, permission denied). */
bool keyprov_error_is_transient (int r);

/* Close any connection to the KMS, keeping the configuration and credentials loaded; the next
 * call connects again. Before a fork: a connection is not shared between processes. */
void keyprov_disconnect (struct keyprov *kp);

void keyprov_free (struct keyprov *kp);

/* For provider implementations: names are parsed by the dispatch above, providers see enums.
 * create_kek's bool: the KEK is for a local (aes-kwp) wrap. prefetch gets the parsed wrap
 * modes beside the items and handles the items whose result the dispatch left 0. Optional
 * (NULL): default_kek_id, create_kek, get_key, disconnect; prefetch and forget (nothing to
 * fetch ahead); kek_state_many (kek_state for each); stats (zeros). */
struct keyprov_ops {
  enum keyprov_kind kind;
  int (*default_kek_id) (struct keyprov *, char *, size_t);
  int (*create_kek) (struct keyprov *, const char *, bool, char *, size_t);
  int (*wrap) (struct keyprov *, const char *, enum key_wrap, const uint8_t *, size_t,
               uint8_t *, size_t, size_t *);
  int (*unwrap) (struct keyprov *, const char *, enum key_wrap, const uint8_t *, size_t,
                 uint8_t *, size_t, size_t *);
  int (*kek_state) (struct keyprov *, const char *, enum kek_state *);
  int (*prefetch) (struct keyprov *, struct keyprov_want *, const enum key_wrap *, size_t);
  void (*forget) (struct keyprov *);
  int (*kek_state_many) (struct keyprov *, struct keyprov_state_query *, size_t);
  void (*stats) (const struct keyprov *, uint64_t *, uint64_t *);
  int (*get_key) (struct keyprov *, const char *, uint8_t *, size_t, size_t *);
  void (*disconnect) (struct keyprov *);
  void (*free) (struct keyprov *);
};
struct keyprov {
  const struct keyprov_ops *ops;
  char warning[1024];           /* see keyprov_warning */
};

#endif /* NBDCRYPT_KEYPROV_H */
