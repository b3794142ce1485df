/* SPDX-License-Identifier: BSD-3-Clause */
/* The 'nbdcrypt kms' subcommands, one small function each over the kmip-client API. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kms-common.h"
#include "secmem.h"

/* Server-chosen text (names, attribute values, vendor strings) as printed on one line. */
#define SAFE_MAX 512
static const char *
safe (const char *s, char buf[SAFE_MAX])
{
  return kmip_escape_text (s, strlen (s), buf, SAFE_MAX);
}

static const char *
vstr (uint16_t v, char buf[8])
{
  snprintf (buf, 8, "%d.%d", KMIP_V_MAJOR (v), KMIP_V_MINOR (v));
  return buf;
}

static int
do_versions (struct kmip_client *c, const struct kms_opts *o)
{
  uint16_t v[16];
  char b[8];
  int n, r;

  (void) o;
  if ((r = kmip_client_connect (c)) < 0)
    return kms_fail (r);
  printf ("server %s\n", kmip_client_server (c));
  printf ("using %s\n", vstr (kmip_client_version (c), b));
  n = kmip_discover_versions (c, v, 16);
  if (n == KMIP_E_RESULT) {
    printf ("supported unknown (DiscoverVersions failed: %s)\n", kmip_last_error ());
    return 0;
  }
  if (n < 0)
    return kms_fail (n);
  printf ("supported");
  for (int i = 0; i < n; i++)
    printf (" %s", vstr (v[i], b));
  printf ("\n");
  return 0;
}

static int
do_query (struct kmip_client *c, const struct kms_opts *o)
{
  struct kmip_query_info q;
  char b[SAFE_MAX];
  int r;

  (void) o;
  if ((r = kmip_query (c, &q)) < 0)
    return kms_fail (r);
  printf ("vendor: %s\n", q.vendor ? safe (q.vendor, b) : "(not given)");
  if (q.server_info)
    printf ("server information: %s\n", safe (q.server_info, b));
  printf ("operations:");
  for (size_t i = 0; i < q.nr_operations; i++) {
    const char *n = kmip_enum_name (KMIP_TAG_OPERATION, q.operations[i]);
    n ? printf (" %s", n) : printf (" 0x%x", q.operations[i]);
  }
  printf ("\nobject types:");
  for (size_t i = 0; i < q.nr_object_types; i++) {
    const char *n = kmip_enum_name (KMIP_TAG_OBJECT_TYPE, q.object_types[i]);
    n ? printf (" %s", n) : printf (" 0x%x", q.object_types[i]);
  }
  printf ("\n");
  kmip_query_info_free (&q);
  return 0;
}

static int
do_create (struct kmip_client *c, const struct kms_opts *o)
{
  struct kmip_create_params p = { .name = o->name, .activate = o->activate };
  char uid[KMIP_UID_MAX];
  int r;

  if (o->length && (r = kms_parse_uint ("--length", o->length, &p.length_bits)) < 0)
    return r;
  if (o->out) {
    /* Create (+ Activate) + Get in one message, through the ID placeholder. */
    uint8_t *key;
    struct stat st;
    int n;
    /* Refuse before anything is created in the KMS. */
    if (strcmp (o->out, "-") == 0)
      return ncr_error (EINVAL, "create --out needs a file (the UID goes to stdout)");
    if (lstat (o->out, &st) == 0)
      return ncr_error (EEXIST, "cannot create %s: it must not exist yet", o->out);
    if ((key = secmem_alloc (32)) == NULL)
      return ncr_error (ENOMEM, "cannot allocate locked memory for the key");
    n = kmip_create_aes_get (c, &p, uid, key, 32);
    r = n < 0 ? kms_fail (n) : kms_write_secret (o->out, key, n);
    secmem_free (key);
    if (r < 0 && uid[0]) {
      char msg[256];
      snprintf (msg, sizeof msg, "%s", ncr_last_error ());   /* not an argument to itself */
      return ncr_error (-r, "key %s created, but: %s", uid, msg);
    }
  }
  else if ((r = kmip_create_aes (c, &p, uid)) < 0)
    r = kms_fail (r);
  if (r < 0)
    return r;
  printf ("%s\n", uid);
  return 0;
}

static int
do_get (struct kmip_client *c, const struct kms_opts *o)
{
  uint32_t format = 0;          /* the server's default: Raw keys, Opaque secret data */
  uint8_t *key;
  int n, r;

  if (o->out == NULL)
    return ncr_error (EINVAL, "--out FILE is required (key bytes never go to a "
                       "terminal)");
  if (o->format && strcmp (o->format, "transparent") == 0)
    format = KMIP_KEY_FORMAT_TYPE_TRANSPARENT_SYMMETRIC_KEY;
  else if (o->format && strcmp (o->format, "raw") == 0)
    format = KMIP_KEY_FORMAT_TYPE_RAW;
  else if (o->format)
    return ncr_error (EINVAL, "--format must be raw or transparent");
  key = secmem_alloc (MAX_SECRET_BYTES);
  if (key == NULL)
    return ncr_error (ENOMEM, "cannot allocate locked memory for the key");
  n = kmip_get_key (c, o->args[0], format, key, MAX_SECRET_BYTES);
  r = n < 0 ? kms_fail (n) : kms_write_secret (o->out, key, n);
  secmem_free (key);
  return r;
}

static int
parse_enum (uint32_t tag, const char *what, const char *s, uint32_t *v)
{
  /* Accept the spec names with or without spaces/case: "pre-active", "PreActive", "active". */
  char camel[64];
  size_t o = 0;
  bool up = true;

  for (size_t i = 0; s[i] && o + 1 < sizeof camel; i++) {
    if (s[i] == '-' || s[i] == '_' || s[i] == ' ') {
      up = true;
      continue;
    }
    camel[o++] = up ? toupper ((unsigned char) s[i]) : s[i];
    up = false;
  }
  camel[o] = '\0';
  if (kmip_enum_by_name (tag, camel, v) == 0)
    return 0;
  for (size_t i = 0; camel[i]; i++)     /* acronyms: "gcm" -> "GCM" */
    camel[i] = toupper ((unsigned char) camel[i]);
  if (kmip_enum_by_name (tag, camel, v) == 0)
    return 0;
  return ncr_error (EINVAL, "unknown %s '%s'", what, s);
}

static int
do_locate (struct kmip_client *c, const struct kms_opts *o)
{
  struct kmip_locate_params p = { .name = o->name };
  char **uids;
  int n, r;

  if ((o->state && (r = parse_enum (KMIP_TAG_STATE, "--state", o->state, &p.state)) < 0) ||
      (o->type && (r = parse_enum (KMIP_TAG_OBJECT_TYPE, "--type", o->type,
                                   &p.object_type)) < 0) ||
      (o->max && (r = kms_parse_uint ("--max", o->max, &p.max_items)) < 0) ||
      (o->offset && (r = kms_parse_uint ("--offset", o->offset, &p.offset)) < 0))
    return r;
  if ((n = kmip_locate (c, &p, &uids)) < 0)
    return kms_fail (n);
  for (int i = 0; i < n; i++)
    printf ("%s\n", uids[i]);
  kmip_strv_free (uids);
  return 0;
}

static void
json_str (const char *s)
{
  putchar ('"');
  for (; *s; s++) {
    unsigned char ch = *s;
    if (ch == '"' || ch == '\\')
      printf ("\\%c", ch);
    else if (ch < 0x20)
      printf ("\\u%04x", ch);
    else
      putchar (ch);
  }
  putchar ('"');
}

static const char *
ename (uint32_t tag, uint32_t v, char buf[16])
{
  const char *n = v ? kmip_enum_name (tag, v) : NULL;

  if (n)
    return n;
  snprintf (buf, 16, "%u", v);
  return buf;
}

static int
do_attrs (struct kmip_client *c, const struct kms_opts *o)
{
  struct kmip_attrs a;
  char b1[16], b2[16], b3[16], b[SAFE_MAX];
  int r;

  if ((r = kmip_get_attributes (c, o->args[0], &a)) < 0)
    return kms_fail (r);
  if (o->json) {
    printf ("{\"uid\": ");
    json_str (o->args[0]);
    printf (", \"object_type\": ");
    json_str (ename (KMIP_TAG_OBJECT_TYPE, a.object_type, b1));
    printf (", \"state\": ");
    json_str (ename (KMIP_TAG_STATE, a.state, b2));
    printf (", \"algorithm\": ");
    json_str (ename (KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, a.algorithm, b3));
    printf (", \"length\": %u, \"usage_mask\": %u, \"names\": [", a.length, a.usage_mask);
    for (size_t i = 0; a.names && a.names[i]; i++) {
      printf (i ? ", " : "");
      json_str (a.names[i]);
    }
    printf ("], \"custom\": {");
    for (size_t i = 0; a.custom && a.custom[i]; i++) {
      char *eq = strchr (a.custom[i], '=');
      *eq = '\0';
      printf (i ? ", " : "");
      json_str (a.custom[i]);
      printf (": ");
      json_str (eq + 1);
    }
    printf ("}}\n");
  }
  else {
    printf ("object type: %s\n", ename (KMIP_TAG_OBJECT_TYPE, a.object_type, b1));
    printf ("state: %s\n", ename (KMIP_TAG_STATE, a.state, b2));
    printf ("algorithm: %s\n", ename (KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, a.algorithm, b3));
    printf ("length: %u\n", a.length);
    printf ("usage mask: 0x%x\n", a.usage_mask);
    for (size_t i = 0; a.names && a.names[i]; i++)
      printf ("name: %s\n", safe (a.names[i], b));
    for (size_t i = 0; a.custom && a.custom[i]; i++)
      printf ("custom: %s\n", safe (a.custom[i], b));
  }
  kmip_attrs_free (&a);
  return 0;
}

static int
do_attr_list (struct kmip_client *c, const struct kms_opts *o)
{
  char **names, b[SAFE_MAX];
  int n = kmip_get_attribute_list (c, o->args[0], &names);

  if (n < 0)
    return kms_fail (n);
  for (int i = 0; i < n; i++)
    printf ("%s\n", safe (names[i], b));
  kmip_strv_free (names);
  return 0;
}

static int
do_set_attr (struct kmip_client *c, const struct kms_opts *o)
{
  int r = o->modify ? kmip_modify_attribute (c, o->args[0], o->args[1], o->args[2])
                    : kmip_add_attribute (c, o->args[0], o->args[1], o->args[2]);

  return r < 0 ? kms_fail (r) : 0;
}

static int
do_activate (struct kmip_client *c, const struct kms_opts *o)
{
  int r = kmip_activate (c, o->args[0]);

  return r < 0 ? kms_fail (r) : 0;
}

static int
do_destroy (struct kmip_client *c, const struct kms_opts *o)
{
  int r = kmip_destroy (c, o->args[0]);

  return r < 0 ? kms_fail (r) : 0;
}

static int
do_rekey (struct kmip_client *c, const struct kms_opts *o)
{
  char uid[KMIP_UID_MAX];
  int r = kmip_rekey (c, o->args[0], uid);

  if (r < 0)
    return kms_fail (r);
  printf ("%s\n", uid);
  return 0;
}

static int
do_revoke (struct kmip_client *c, const struct kms_opts *o)
{
  uint32_t reason = KMIP_REVOCATION_REASON_CODE_CESSATION_OF_OPERATION;

  if (o->reason == NULL || strcmp (o->reason, "ceased") == 0)
    ;
  else if (strcmp (o->reason, "compromised") == 0)
    reason = KMIP_REVOCATION_REASON_CODE_KEY_COMPROMISE;
  else if (strcmp (o->reason, "superseded") == 0)
    reason = KMIP_REVOCATION_REASON_CODE_SUPERSEDED;
  else
    return ncr_error (EINVAL, "--reason must be compromised, superseded or ceased");
  int r = kmip_revoke (c, o->args[0], reason, o->message);

  return r < 0 ? kms_fail (r) : 0;
}

static int
do_register (struct kmip_client *c, const struct kms_opts *o)
{
  char uid[KMIP_UID_MAX];
  uint8_t *buf = secmem_alloc (MAX_SECRET_BYTES);
  int n, r;

  if (buf == NULL)
    return ncr_error (ENOMEM, "cannot allocate locked memory for the key");
  n = kms_read_secret (o->in, buf, MAX_SECRET_BYTES);
  if ((r = n) >= 0 &&
      (r = kmip_register (c, o->secret_data ? KMIP_OBJECT_TYPE_SECRET_DATA
                          : KMIP_OBJECT_TYPE_SYMMETRIC_KEY, buf, n, o->name, uid)) < 0)
    r = kms_fail (r);
  secmem_free (buf);
  if (r == 0)
    printf ("%s\n", uid);
  return r;
}

static int
parse_hex (const char *opt, const char *s, uint8_t *out, size_t max)
{
  size_t n = strlen (s);

  if (n % 2 || n / 2 > max)
    return ncr_error (EINVAL, "%s must be an even number of hex digits (at most %zu "
                       "bytes)", opt, max);
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (!isxdigit ((unsigned char) s[2 * i]) || !isxdigit ((unsigned char) s[2 * i + 1]) ||
        sscanf (s + 2 * i, "%2x", &v) != 1)
      return ncr_error (EINVAL, "%s is not hexadecimal", opt);
    out[i] = v;
  }
  return (int) (n / 2);
}

#define GCM_TAG_LEN 16

static int
do_crypt (struct kmip_client *c, const struct kms_opts *o, bool enc)
{
  uint32_t mode = KMIP_BLOCK_CIPHER_MODE_CBC;
  uint8_t iv[32], aad[256], tag[GCM_TAG_LEN], *in, *out = NULL;
  size_t out_len = 0;
  int iv_len = 0, aad_len = 0, n, r;
  bool gcm;

  if (o->mode && strcmp (o->mode, "cbc") != 0 &&
      (r = parse_enum (KMIP_TAG_BLOCK_CIPHER_MODE, "--mode", o->mode, &mode)) < 0)
    return r;
  gcm = mode == KMIP_BLOCK_CIPHER_MODE_GCM;
  if (o->iv && (iv_len = parse_hex ("--iv", o->iv, iv, sizeof iv)) < 0)
    return iv_len;
  if (o->aad && !gcm)
    return ncr_error (EINVAL, "--aad is for --mode gcm");
  if (o->aad && (aad_len = parse_hex ("--aad", o->aad, aad, sizeof aad)) < 0)
    return aad_len;
  if ((in = secmem_alloc (MAX_SECRET_BYTES + GCM_TAG_LEN)) == NULL)
    return ncr_error (ENOMEM, "cannot allocate locked memory");
  n = kms_read_secret (o->in, in, MAX_SECRET_BYTES + (gcm && !enc ? GCM_TAG_LEN : 0));
  /* GCM: the tag follows the ciphertext (Encrypt appends it, Decrypt takes it off). */
  if (n >= 0 && gcm && !enc && n < GCM_TAG_LEN)
    n = ncr_error (EINVAL, "--mode gcm: the input is shorter than its %d-byte tag",
                    GCM_TAG_LEN);
  if (n < 0)
    r = n;
  else if (gcm && enc)
    r = kmip_encrypt_aead (c, o->args[0], iv, iv_len, aad, aad_len, in, n, tag, GCM_TAG_LEN,
                           &out, &out_len);
  else if (gcm)
    r = kmip_decrypt_aead (c, o->args[0], iv, iv_len, aad, aad_len, in, n - GCM_TAG_LEN,
                           in + n - GCM_TAG_LEN, GCM_TAG_LEN, &out, &out_len);
  else
    r = (enc ? kmip_encrypt : kmip_decrypt) (c, o->args[0], mode, iv, iv_len, in, n, &out,
                                             &out_len);
  if (n >= 0 && r < 0)
    r = kms_fail (r);
  secmem_free (in);
  if (r == 0 && gcm && enc) {
    uint8_t *ct = realloc (out, out_len + GCM_TAG_LEN);   /* ciphertext: not secret */
    if (ct == NULL)
      r = ncr_error (ENOMEM, "out of memory");
    else {
      memcpy (ct + out_len, tag, GCM_TAG_LEN);
      out = ct;
      out_len += GCM_TAG_LEN;
    }
  }
  if (r == 0)
    r = kms_write_secret (o->out, out, out_len);
  if (out) {
    explicit_bzero (out, out_len);
    free (out);
  }
  return r;
}

static int
do_encrypt (struct kmip_client *c, const struct kms_opts *o)
{
  return do_crypt (c, o, true);
}

static int
do_decrypt (struct kmip_client *c, const struct kms_opts *o)
{
  return do_crypt (c, o, false);
}

static const struct kms_subcommand subcommands[] = {
  { "versions", 0, do_versions },
  { "query", 0, do_query },
  { "create", 0, do_create },
  { "get", 1, do_get },
  { "locate", 0, do_locate },
  { "attrs", 1, do_attrs },
  { "attr-list", 1, do_attr_list },
  { "set-attr", 3, do_set_attr },
  { "activate", 1, do_activate },
  { "destroy", 1, do_destroy },
  { "rekey", 1, do_rekey },
  { "revoke", 1, do_revoke },
  { "register", 0, do_register },
  { "encrypt", 1, do_encrypt },
  { "decrypt", 1, do_decrypt },
};

const struct kms_subcommand *
kms_find_subcommand (const char *name)
{
  for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
    if (strcmp (subcommands[i].name, name) == 0)
      return &subcommands[i];
  return NULL;
}
