/* SPDX-License-Identifier: BSD-3-Clause */
/* Attribute operations: GetAttributes, GetAttributeList, AddAttribute, ModifyAttribute. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct attr_args {
  uint32_t op;
  const char *uid;
  struct kmip_attr attr;
  struct kmip_attr current;     /* 2.0 ModifyAttribute of a multi-valued one; tag 0: none */
};

static void
build_attr_op (struct kmip_req *req, const void *argsv)
{
  const struct attr_args *a = argsv;

  kmip_req_item_begin (req, a->op);
  kmip_enc_str (&req->e, KMIP_TAG_UNIQUE_IDENTIFIER, a->uid);
  if (a->op == KMIP_OPERATION_ADD_ATTRIBUTE || a->op == KMIP_OPERATION_MODIFY_ATTRIBUTE) {
    if (KMIP_ATTRS_V2 (req->version)) {
      if (a->current.tag) {
        kmip_enc_begin (&req->e, KMIP_TAG_CURRENT_ATTRIBUTE);
        kmip_enc_attr (req, &a->current);
        kmip_enc_end (&req->e);
      }
      kmip_enc_begin (&req->e, KMIP_TAG_NEW_ATTRIBUTE);
      kmip_enc_attr (req, &a->attr);
      kmip_enc_end (&req->e);
    }
    else
      kmip_enc_attr (req, &a->attr);
  }
  /* GetAttributes / GetAttributeList with no names: all of them. */
  kmip_req_item_end (req);
}

static int
check_args (const char *uid)
{
  if (uid == NULL || uid[0] == '\0' || strlen (uid) >= KMIP_UID_MAX)
    return kmip_set_error (-EINVAL, "invalid key identifier");
  return 0;
}

int
kmip_get_attributes (struct kmip_client *c, const char *uid, struct kmip_attrs *a)
{
  struct attr_args args = { .op = KMIP_OPERATION_GET_ATTRIBUTES, .uid = uid };
  struct kmip_resp resp;
  int r;

  memset (a, 0, sizeof *a);
  if ((r = check_args (uid)) < 0)
    return r;
  r = kmip_call (c, 1, build_attr_op, &args, &resp);
  if (r < 0)
    return r;
  r = kmip_resp_check (&resp, 0, KMIP_OPERATION_GET_ATTRIBUTES);
  if (r == 0)
    r = kmip_check_answer_uid (resp.items[0].payload, "GetAttributes", uid);
  if (r == 0)
    r = kmip_decode_attrs (resp.items[0].payload, resp.version, a);
  kmip_resp_free (&resp);
  return r;
}

int
kmip_get_attribute_list (struct kmip_client *c, const char *uid, char ***namesp)
{
  struct attr_args args = { .op = KMIP_OPERATION_GET_ATTRIBUTE_LIST, .uid = uid };
  struct kmip_resp resp;
  const struct kmip_node *n, *p;
  char **names = NULL;
  int r, count = 0;

  *namesp = NULL;
  if ((r = check_args (uid)) < 0)
    return r;
  r = kmip_call (c, 1, build_attr_op, &args, &resp);
  if (r < 0)
    return r;
  r = kmip_resp_check (&resp, 0, KMIP_OPERATION_GET_ATTRIBUTE_LIST);
  if (r == 0)
    r = kmip_check_answer_uid (resp.items[0].payload, "GetAttributeList", uid);
  if (r < 0)
    goto out;
  if ((names = calloc (1, sizeof *names)) == NULL) {
    r = kmip_set_error (-ENOMEM, "out of memory");
    goto out;
  }
  p = resp.items[0].payload;
  /* 1.x: Attribute Name text strings; 2.0: Attribute Reference enumerations of tags. */
  for (n = p ? p->child : NULL; n; n = n->next) {
    const char *s;
    size_t len;
    char buf[96];
    if (n->tag == KMIP_TAG_ATTRIBUTE_NAME && kmip_node_text (n, &s, &len) == 0)
      r = kmip_strv_add (&names, s, len);
    else if (n->tag == KMIP_TAG_ATTRIBUTE_REFERENCE && n->type == KMIP_TYPE_ENUMERATION &&
             (s = kmip_attr_name (n->v.u32, buf, sizeof buf)) != NULL)
      r = kmip_strv_add (&names, s, strlen (s));
    else if (n->tag == KMIP_TAG_ATTRIBUTE_REFERENCE &&
             kmip_get_text (n, KMIP_TAG_ATTRIBUTE_NAME, &s, &len) == 0)
      r = kmip_strv_add (&names, s, len);
    else
      continue;
    if (r < 0)
      goto out;
    count++;
  }
  *namesp = names;
  names = NULL;
  r = count;
 out:
  kmip_strv_free (names);
  kmip_resp_free (&resp);
  return r;
}

static int
attr_change (struct kmip_client *c, uint32_t op, const char *uid, const char *name,
             const char *value)
{
  struct attr_args args = { .op = op, .uid = uid };
  struct kmip_resp resp;
  int r;

  if ((r = check_args (uid)) < 0)
    return r;
  if (name == NULL || value == NULL)
    return kmip_set_error (-EINVAL, "attribute name and value are required");
  if (kmip_custom_name_ok (name))
    args.attr = (struct kmip_attr) { .custom = name, .text = value };
  else if (strcmp (name, "Name") == 0)
    args.attr = (struct kmip_attr) { .tag = KMIP_TAG_NAME, .text = value };
  else if (strcmp (name, "Contact Information") == 0)
    args.attr = (struct kmip_attr) { .tag = KMIP_TAG_CONTACT_INFORMATION, .text = value };
  else
    return kmip_set_error (-EINVAL, "attribute '%s': only Name, Contact Information and custom "
                           "x-NAME attributes can be set", name);
  if ((r = kmip_client_connect (c)) < 0)     /* the encoding depends on the version */
    return r;
  /* KMIP 2.0 modifies one instance of a multi-valued attribute (Name): name the current one,
   * the first, as 1.x servers do implicitly (attribute index 0). */
  struct kmip_attrs cur = { 0 };
  if (op == KMIP_OPERATION_MODIFY_ATTRIBUTE && args.attr.tag == KMIP_TAG_NAME &&
      kmip_client_version (c) >= KMIP_V (2, 0)) {
    if ((r = kmip_get_attributes (c, uid, &cur)) < 0)
      return r;
    if (cur.names && cur.names[0])
      args.current = (struct kmip_attr) { .tag = KMIP_TAG_NAME, .text = cur.names[0] };
  }
  r = kmip_call (c, 1, build_attr_op, &args, &resp);
  kmip_attrs_free (&cur);
  if (r < 0)
    return r;
  r = kmip_resp_check (&resp, 0, op);
  if (r == 0)
    r = kmip_check_answer_uid (resp.items[0].payload, kmip_enum_name (KMIP_TAG_OPERATION, op),
                               uid);
  kmip_resp_free (&resp);
  return r;
}

int
kmip_add_attribute (struct kmip_client *c, const char *uid, const char *name,
                    const char *value)
{
  return attr_change (c, KMIP_OPERATION_ADD_ATTRIBUTE, uid, name, value);
}

int
kmip_modify_attribute (struct kmip_client *c, const char *uid, const char *name,
                       const char *value)
{
  return attr_change (c, KMIP_OPERATION_MODIFY_ATTRIBUTE, uid, name, value);
}
