/* SPDX-License-Identifier: BSD-3-Clause */
/* KMIP name tables: item types, tags (1.0-2.0) and enumeration values, both directions. */
#include <errno.h>
#include <string.h>

#include "kmip/ttlv.h"

static const char *const type_names[] = {
  [KMIP_TYPE_STRUCTURE] = "Structure",
  [KMIP_TYPE_INTEGER] = "Integer",
  [KMIP_TYPE_LONG_INTEGER] = "LongInteger",
  [KMIP_TYPE_BIG_INTEGER] = "BigInteger",
  [KMIP_TYPE_ENUMERATION] = "Enumeration",
  [KMIP_TYPE_BOOLEAN] = "Boolean",
  [KMIP_TYPE_TEXT_STRING] = "TextString",
  [KMIP_TYPE_BYTE_STRING] = "ByteString",
  [KMIP_TYPE_DATE_TIME] = "DateTime",
  [KMIP_TYPE_INTERVAL] = "Interval",
};
#define NTYPES (sizeof type_names / sizeof type_names[0])

const char *
kmip_type_name (unsigned type)
{
  return type < NTYPES ? type_names[type] : NULL;
}

int
kmip_type_by_name (const char *name)
{
  for (unsigned t = 1; t < NTYPES; t++)
    if (strcmp (type_names[t], name) == 0)
      return (int) t;
  return -EINVAL;
}

/* Spec tags are 0x42XXXX and dense from 0x420001: index by the low 16 bits. */
static const char *const tag_names[] = {
#define KMIP_TAG(sym, name, value) [(value) - 0x420000] = #name,
#include "kmip/ttlv-tags.def"
#undef KMIP_TAG
};
#define NTAGS (sizeof tag_names / sizeof tag_names[0])

const char *
kmip_tag_name (uint32_t tag)
{
  if (tag < 0x420000 || tag - 0x420000 >= NTAGS)
    return NULL;
  return tag_names[tag - 0x420000];
}

int
kmip_tag_by_name (const char *name, uint32_t *tag)
{
  for (size_t i = 0; i < NTAGS; i++)
    if (tag_names[i] && strcmp (tag_names[i], name) == 0) {
      *tag = 0x420000 + (uint32_t) i;
      return 0;
    }
  return -ENOENT;
}

struct value_name {
  uint32_t tag;
  uint32_t value;
  const char *name;
};

static const struct value_name enum_names[] = {
#define KMIP_ENUM(tag, sym, name, value) { KMIP_TAG_##tag, value, #name },
#define KMIP_MASK(tag, sym, name, value)
#include "kmip/ttlv-enums.def"
#undef KMIP_ENUM
#undef KMIP_MASK
};

static const struct value_name mask_names[] = {
#define KMIP_ENUM(tag, sym, name, value)
#define KMIP_MASK(tag, sym, name, value) { KMIP_TAG_##tag, value, #name },
#include "kmip/ttlv-enums.def"
#undef KMIP_ENUM
#undef KMIP_MASK
};

/* Tags whose values come from an enumeration named after another tag. */
static uint32_t
enum_kind (uint32_t tag)
{
  switch (tag) {
  case KMIP_TAG_MASK_GENERATOR_HASHING_ALGORITHM: return KMIP_TAG_HASHING_ALGORITHM;
  default: return tag;
  }
}

const char *
kmip_enum_name (uint32_t tag, uint32_t value)
{
  tag = enum_kind (tag);
  for (size_t i = 0; i < sizeof enum_names / sizeof enum_names[0]; i++)
    if (enum_names[i].tag == tag && enum_names[i].value == value)
      return enum_names[i].name;
  return NULL;
}

int
kmip_enum_by_name (uint32_t tag, const char *name, uint32_t *value)
{
  tag = enum_kind (tag);
  for (size_t i = 0; i < sizeof enum_names / sizeof enum_names[0]; i++)
    if (enum_names[i].tag == tag && strcmp (enum_names[i].name, name) == 0) {
      *value = enum_names[i].value;
      return 0;
    }
  return -ENOENT;
}

const char *
kmip_mask_bit_name (uint32_t tag, uint32_t bit)
{
  for (size_t i = 0; i < sizeof mask_names / sizeof mask_names[0]; i++)
    if (mask_names[i].tag == tag && mask_names[i].value == bit)
      return mask_names[i].name;
  return NULL;
}
