/* SPDX-License-Identifier: BSD-3-Clause */
/* Server operations: DiscoverVersions and Query. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void
build_discover_all (struct kmip_req *req, const void *args)
{
  (void) args;
  /* No versions listed: the server answers with all it supports. */
  kmip_req_item_begin (req, KMIP_OPERATION_DISCOVER_VERSIONS);
  kmip_req_item_end (req);
}

int
kmip_discover_versions (struct kmip_client *c, uint16_t *versions, size_t max)
{
  struct kmip_resp resp;
  int r;

  r = kmip_call (c, 1, build_discover_all, NULL, &resp);
  if (r < 0)
    return r;
  r = kmip_resp_check (&resp, 0, KMIP_OPERATION_DISCOVER_VERSIONS);
  if (r == 0)
    r = kmip_parse_versions (resp.items[0].payload, versions, max);
  kmip_resp_free (&resp);
  return r;
}

static void
build_query (struct kmip_req *req, const void *args)
{
  (void) args;
  kmip_req_item_begin (req, KMIP_OPERATION_QUERY);
  kmip_enc_enum (&req->e, KMIP_TAG_QUERY_FUNCTION, KMIP_QUERY_FUNCTION_QUERY_OPERATIONS);
  kmip_enc_enum (&req->e, KMIP_TAG_QUERY_FUNCTION, KMIP_QUERY_FUNCTION_QUERY_OBJECTS);
  kmip_enc_enum (&req->e, KMIP_TAG_QUERY_FUNCTION, KMIP_QUERY_FUNCTION_QUERY_SERVER_INFORMATION);
  kmip_req_item_end (req);
}

static int
collect_enums (const struct kmip_node *p, uint32_t tag, uint32_t **out, size_t *n)
{
  size_t count = kmip_count (p, tag), i = 0;
  const struct kmip_node *e;

  *out = calloc (count ? count : 1, sizeof **out);
  if (*out == NULL)
    return kmip_set_error (-ENOMEM, "out of memory");
  for (e = kmip_find (p, tag); e; e = kmip_find_next (e))
    if (kmip_node_enum (e, &(*out)[i]) == 0)
      i++;
  *n = i;
  return 0;
}

int
kmip_query (struct kmip_client *c, struct kmip_query_info *info)
{
  struct kmip_resp resp;
  const struct kmip_node *p, *n;
  const char *s;
  size_t len;
  int r;

  memset (info, 0, sizeof *info);
  r = kmip_call (c, 1, build_query, NULL, &resp);
  if (r < 0)
    return r;
  r = kmip_resp_check (&resp, 0, KMIP_OPERATION_QUERY);
  if (r < 0)
    goto out;
  p = resp.items[0].payload;
  if (p == NULL)
    goto out;
  if ((r = collect_enums (p, KMIP_TAG_OPERATION, &info->operations, &info->nr_operations)) < 0 ||
      (r = collect_enums (p, KMIP_TAG_OBJECT_TYPE, &info->object_types,
                          &info->nr_object_types)) < 0)
    goto out;
  if (kmip_get_text (p, KMIP_TAG_VENDOR_IDENTIFICATION, &s, &len) == 0 &&
      (info->vendor = strndup (s, len)) == NULL)
    r = kmip_set_error (-ENOMEM, "out of memory");
  /* Server Information is a structure of vendor-defined content; keep its text fields. */
  if (r == 0 && (n = kmip_find (p, KMIP_TAG_SERVER_INFORMATION)) != NULL &&
      n->type == KMIP_TYPE_STRUCTURE) {
    for (const struct kmip_node *ch = n->child; ch; ch = ch->next)
      if (ch->type == KMIP_TYPE_TEXT_STRING) {
        info->server_info = strndup (ch->v.str.s, ch->len);
        break;
      }
  }
 out:
  if (r < 0)
    kmip_query_info_free (info);
  kmip_resp_free (&resp);
  return r;
}

void
kmip_query_info_free (struct kmip_query_info *info)
{
  free (info->operations);
  free (info->object_types);
  free (info->vendor);
  free (info->server_info);
  memset (info, 0, sizeof *info);
}
