/* SPDX-License-Identifier: BSD-3-Clause */
/* Key provider dispatch and the helpers shared by the file and KMIP providers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "keyprov.h"
#include "secmem.h"

const char *
kek_state_name (enum kek_state s)
{
  switch (s) {
  case KEK_STATE_ACTIVE: return "active";
  case KEK_STATE_PRE_ACTIVE: return "pre-active";
  case KEK_STATE_DEACTIVATED: return "deactivated";
  case KEK_STATE_COMPROMISED: return "compromised";
  case KEK_STATE_DESTROYED: return "destroyed";
  case KEK_STATE_MISSING: return "missing";
  }
  return "unknown";
}

bool
kek_state_is_revoked (enum kek_state s)
{
  return s != KEK_STATE_ACTIVE;
}

static const char *const kind_names[] = {
  [KEYPROV_FILE] = "file",
  [KEYPROV_KMIP] = "kmip",
};
static const char *const wrap_names[] = {
  [KEY_WRAP_AES_KWP] = "aes-kwp",
  [KEY_WRAP_KMS] = "kms",
};

#define NAMES(a) (sizeof (a) / sizeof (a)[0])

/* Index of name in names[n], or -1. */
static int
find_name (const char *name, const char *const *names, unsigned n)
{
  for (unsigned i = 0; i < n; i++)
    if (strcmp (name, names[i]) == 0)
      return (int) i;
  return -1;
}

const char *
keyprov_kind_name (enum keyprov_kind k)
{
  return (unsigned) k < NAMES (kind_names) ? kind_names[k] : "unknown";
}

int
keyprov_kind_from_name (const char *name, enum keyprov_kind *out)
{
  int i = find_name (name, kind_names, NAMES (kind_names));

  if (i < 0)
    return ncr_error (EINVAL, "unknown KEK provider '%s' (known: file, kmip)", name);
  *out = (enum keyprov_kind) i;
  return 0;
}

const char *
key_wrap_name (enum key_wrap w)
{
  return (unsigned) w < NAMES (wrap_names) ? wrap_names[w] : "unknown";
}

int
key_wrap_from_name (const char *name, enum key_wrap *out)
{
  int i = find_name (name, wrap_names, NAMES (wrap_names));

  if (i < 0)
    return ncr_error (EINVAL, "unknown wrap mode '%s' (known: aes-kwp, kms)", name);
  *out = (enum key_wrap) i;
  return 0;
}

enum keyprov_kind
keyprov_kind (const struct keyprov *kp)
{
  return kp->ops->kind;
}

const char *
keyprov_name (const struct keyprov *kp)
{
  return keyprov_kind_name (kp->ops->kind);
}

const char *
keyprov_warning (const struct keyprov *kp)
{
  return kp->warning;
}

#define UNSUPPORTED(what) \
  ncr_error (ENOTSUP, "%s is not supported by the '%s' key provider", what, keyprov_name (kp))

/* Every call that handles key bytes (a fetched KEK, a DEK) clears the registers and the stack
 * its callees used (secmem_scrub_cpu), then passes the result on. */
static int
scrubbed (int r)
{
  secmem_scrub_cpu ();
  return r;
}

int
keyprov_default_kek_id (struct keyprov *kp, char *out, size_t size)
{
  if (kp->ops->default_kek_id == NULL)
    return ncr_error (EINVAL, "a KEK in a KMS has no default id: name an existing KEK or "
                      "create one");
  return kp->ops->default_kek_id (kp, out, size);
}

int
keyprov_create_kek (struct keyprov *kp, const char *name, const char *wrap,
                    char *id_out, size_t id_size)
{
  bool local_wrap = false;
  enum key_wrap w;
  int r;

  if (kp->ops->create_kek == NULL)
    return UNSUPPORTED ("creating a KEK");
  if (wrap) {
    if ((r = key_wrap_from_name (wrap, &w)) < 0)
      return r;
    local_wrap = w == KEY_WRAP_AES_KWP;
  }
  return scrubbed (kp->ops->create_kek (kp, name, local_wrap, id_out, id_size));
}

int
keyprov_wrap (struct keyprov *kp, const char *kek_id, const char *wrap,
              const uint8_t *dek, size_t dek_len,
              uint8_t *out, size_t out_size, size_t *out_len)
{
  enum key_wrap w;
  int r;

  if ((r = key_wrap_from_name (wrap, &w)) < 0)
    return r;
  return scrubbed (kp->ops->wrap (kp, kek_id, w, dek, dek_len, out, out_size, out_len));
}

int
keyprov_unwrap (struct keyprov *kp, const char *kek_id, const char *wrap,
                const uint8_t *in, size_t in_len,
                uint8_t *dek, size_t dek_size, size_t *dek_len)
{
  enum key_wrap w;
  int r;

  if ((r = key_wrap_from_name (wrap, &w)) < 0)
    return r;
  return scrubbed (kp->ops->unwrap (kp, kek_id, w, in, in_len, dek, dek_size, dek_len));
}

int
keyprov_kek_state (struct keyprov *kp, const char *kek_id, enum kek_state *state)
{
  return kp->ops->kek_state (kp, kek_id, state);
}

int
keyprov_prefetch (struct keyprov *kp, struct keyprov_want *w, size_t n)
{
  enum key_wrap *wraps;
  int r = 0;

  if (n == 0)
    return 0;
  wraps = calloc (n, sizeof *wraps);
  if (wraps == NULL)
    return ncr_error (ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    if (w[i].kek_id == NULL || w[i].wrap == NULL || w[i].wrapped == NULL ||
        w[i].wrapped_len == 0)
      w[i].result = ncr_error (EINVAL, "prefetch: item %zu has no KEK id, wrap mode or "
                               "wrapped key", i);
    else
      w[i].result = key_wrap_from_name (w[i].wrap, &wraps[i]);
  }
  if (kp->ops->prefetch)
    r = scrubbed (kp->ops->prefetch (kp, w, wraps, n));
  free (wraps);
  return r;
}

void
keyprov_forget (struct keyprov *kp)
{
  if (kp && kp->ops->forget)
    kp->ops->forget (kp);
}

int
keyprov_kek_state_many (struct keyprov *kp, struct keyprov_state_query *q, size_t n)
{
  if (kp->ops->kek_state_many)
    return kp->ops->kek_state_many (kp, q, n);
  for (size_t i = 0; i < n; i++) {
    q[i].state = KEK_STATE_MISSING;
    q[i].result = kp->ops->kek_state (kp, q[i].kek_id, &q[i].state);
  }
  return 0;
}

void
keyprov_stats (const struct keyprov *kp, uint64_t *messages, uint64_t *connections)
{
  *messages = *connections = 0;
  if (kp->ops->stats)
    kp->ops->stats (kp, messages, connections);
}

int
keyprov_get_key (struct keyprov *kp, const char *key_id,
                 uint8_t *key, size_t key_size, size_t *key_len)
{
  if (kp->ops->get_key == NULL)
    return UNSUPPORTED ("fetching a raw key by id");
  return scrubbed (kp->ops->get_key (kp, key_id, key, key_size, key_len));
}

bool
keyprov_error_is_transient (int r)
{
  switch (-r) {
  case ECONNREFUSED: case ETIMEDOUT: case EHOSTUNREACH: case ENETUNREACH:
  case ECONNRESET: case ECONNABORTED: case EPIPE: case ENETDOWN: case EHOSTDOWN:
  case EAGAIN: case ENOTCONN:
    return true;
  default:
    return false;
  }
}

void
keyprov_disconnect (struct keyprov *kp)
{
  if (kp && kp->ops->disconnect)
    kp->ops->disconnect (kp);
}

void
keyprov_free (struct keyprov *kp)
{
  if (kp)
    kp->ops->free (kp);
}
