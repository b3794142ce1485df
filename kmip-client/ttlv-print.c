/* SPDX-License-Identifier: BSD-3-Clause */
/* Printing a decoded KMIP TTLV tree as text or JSON, and reading hex-or-binary input. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmip/ttlv-print.h"
#include "internal.h"

/* Beyond this size a BigInteger is printed in hex: decimal conversion is quadratic, and a
 * debugging tool fed a hostile 1 MiB integer should not spin for minutes. 8 KiB covers
 * 65536-bit numbers, far beyond any RSA/DH key. */
#define BIGINT_DECIMAL_MAX 8192

static void
print_hex (FILE *fp, const uint8_t *p, size_t n)
{
  static const char digits[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    putc (digits[p[i] >> 4], fp);
    putc (digits[p[i] & 15], fp);
  }
}

/* Two's complement big-endian to decimal, by repeated division of base-1e9 limbs. */
static void
print_bigint_decimal (FILE *fp, const uint8_t *p, size_t n)
{
  bool neg = n > 0 && (p[0] & 0x80);
  size_t nlimbs = (n + 3) / 4;
  uint32_t *limb = calloc (nlimbs ? nlimbs : 1, sizeof *limb);   /* big-endian limbs */
  size_t ndig = n * 241 / 100 + 2;                                /* 8*log10(2) per byte */
  char *dig = malloc (ndig + 2);

  if (limb == NULL || dig == NULL) {
    free (limb);
    free (dig);
    fputs ("\"(out of memory)\"", fp);
    return;
  }
  /* Magnitude: for a negative number, invert and add one. */
  for (size_t i = 0; i < n; i++) {
    size_t bytepos = n - 1 - i;                  /* from the least significant byte */
    uint8_t b = neg ? (uint8_t) ~p[bytepos] : p[bytepos];
    limb[nlimbs - 1 - i / 4] |= (uint32_t) b << (8 * (i % 4));
  }
  if (neg)
    for (size_t i = nlimbs; i-- > 0;)
      if (++limb[i] != 0)
        break;

  size_t k = 0, first = 0;
  while (first < nlimbs) {
    uint64_t rem = 0;
    for (size_t i = first; i < nlimbs; i++) {
      uint64_t cur = rem << 32 | limb[i];
      limb[i] = (uint32_t) (cur / 1000000000);
      rem = cur % 1000000000;
    }
    while (first < nlimbs && limb[first] == 0)
      first++;
    for (int d = 0; d < 9 && k < ndig; d++) {   /* nine digits per round, trimmed below */
      dig[k++] = (char) ('0' + rem % 10);
      rem /= 10;
    }
  }
  while (k > 1 && dig[k - 1] == '0')
    k--;
  if (k == 0)
    dig[k++] = '0';
  putc ('"', fp);
  if (neg)
    putc ('-', fp);
  while (k > 0)
    putc (dig[--k], fp);
  putc ('"', fp);
  free (limb);
  free (dig);
}

static void
print_bigint (FILE *fp, const uint8_t *p, size_t n)
{
  if (n <= BIGINT_DECIMAL_MAX)
    print_bigint_decimal (fp, p, n);
  else {
    fputs ("\"0x", fp);
    print_hex (fp, p, n);
    putc ('"', fp);
  }
}

/* ISO 8601 UTC, or false when the value has no four-digit-year representation. */
static bool
format_datetime (int64_t t, char *buf, size_t n)
{
  struct tm tm;
  time_t tt = (time_t) t;

  if (t < -62167219200LL || t > 253402300799LL)    /* 0000-01-01 .. 9999-12-31 */
    return false;
  if (gmtime_r (&tt, &tm) == NULL)
    return false;
  return strftime (buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0;
}

/* Length of the valid UTF-8 sequence at s (0 if invalid): overlongs, surrogates and values
 * beyond U+10FFFF are refused, so the JSON we print is always valid. */
static size_t
utf8_len (const unsigned char *s, size_t n)
{
  unsigned c = s[0];
  size_t len;
  uint32_t cp;

  if (c < 0x80) return 1;
  else if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
  else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
  else return 0;
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

/* A JSON string: escapes for quotes, backslashes and controls; invalid UTF-8 becomes U+FFFD. */
static void
print_json_string (FILE *fp, const char *str, size_t n)
{
  const unsigned char *s = (const unsigned char *) str;

  putc ('"', fp);
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    if (c == '"' || c == '\\') { putc ('\\', fp); putc (c, fp); i++; }
    else if (c == '\n') { fputs ("\\n", fp); i++; }
    else if (c == '\t') { fputs ("\\t", fp); i++; }
    else if (c == '\r') { fputs ("\\r", fp); i++; }
    else if (c < 0x20 || c == 0x7F) { fprintf (fp, "\\u%04X", c); i++; }
    else {
      size_t l = utf8_len (s + i, n - i);
      if (l == 0) { fputs ("\\uFFFD", fp); i++; }
      else { fwrite (s + i, 1, l, fp); i += l; }
    }
  }
  putc ('"', fp);
}

static void
print_json_node (FILE *fp, const struct kmip_node *n, unsigned indent)
{
  const char *tag = kmip_tag_name (n->tag);
  const char *name;
  char buf[64];

  fprintf (fp, "%*s{\"tag\": ", indent * 2, "");
  if (tag)
    fprintf (fp, "\"%s\"", tag);
  else
    fprintf (fp, "\"0x%06" PRIX32 "\"", n->tag);
  fprintf (fp, ", \"type\": \"%s\", \"value\": ", kmip_type_name (n->type));
  switch (n->type) {
  case KMIP_TYPE_STRUCTURE:
    if (n->child == NULL) {
      fputs ("[]}", fp);
      return;
    }
    fputs ("[\n", fp);
    for (const struct kmip_node *c = n->child; c; c = c->next) {
      print_json_node (fp, c, indent + 1);
      fputs (c->next ? ",\n" : "\n", fp);
    }
    fprintf (fp, "%*s]}", indent * 2, "");
    return;
  case KMIP_TYPE_INTEGER: fprintf (fp, "%" PRId32, n->v.i32); break;
  case KMIP_TYPE_LONG_INTEGER: fprintf (fp, "%" PRId64, n->v.i64); break;
  case KMIP_TYPE_BIG_INTEGER: print_bigint (fp, n->v.str.p, n->len); break;
  case KMIP_TYPE_ENUMERATION:
    if ((name = kmip_enum_name (n->tag, n->v.u32)) != NULL)
      fprintf (fp, "\"%s\"", name);
    else
      fprintf (fp, "%" PRIu32, n->v.u32);
    break;
  case KMIP_TYPE_BOOLEAN: fputs (n->v.b ? "true" : "false", fp); break;
  case KMIP_TYPE_TEXT_STRING: print_json_string (fp, n->v.str.s, n->len); break;
  case KMIP_TYPE_BYTE_STRING:
    putc ('"', fp);
    print_hex (fp, n->v.str.p, n->len);
    putc ('"', fp);
    break;
  case KMIP_TYPE_DATE_TIME:
    if (format_datetime (n->v.i64, buf, sizeof buf))
      fprintf (fp, "\"%s\"", buf);
    else
      fprintf (fp, "%" PRId64, n->v.i64);
    break;
  case KMIP_TYPE_INTERVAL: fprintf (fp, "%" PRIu32, n->v.u32); break;
  }
  putc ('}', fp);
}

/* Recursion depth is bounded by the decoder's depth limit (at most KMIP_MAX_DEPTH_LIMIT). */
void
kmip_ttlv_print_json (FILE *fp, const struct kmip_node *root)
{
  print_json_node (fp, root, 0);
  putc ('\n', fp);
}

/* Text strings in the tree view: printable ASCII as is, anything else as a \xHH escape, so a
 * hostile server cannot send terminal control sequences to the operator's screen. */
static void
print_text_escaped (FILE *fp, const char *s, size_t n)
{
  putc ('"', fp);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char) s[i];
    if (c == '"' || c == '\\')
      fprintf (fp, "\\%c", c);
    else if (c >= 0x20 && c < 0x7F)
      putc (c, fp);
    else
      fprintf (fp, "\\x%02X", c);
  }
  putc ('"', fp);
}

static void
print_text_node (FILE *fp, const struct kmip_node *n, unsigned indent)
{
  const char *tag = kmip_tag_name (n->tag);
  const char *name;
  char buf[64];

  fprintf (fp, "%*s", indent * 2, "");
  if (tag)
    fputs (tag, fp);
  else
    fprintf (fp, "0x%06" PRIX32, n->tag);
  fprintf (fp, " (%s)", kmip_type_name (n->type));
  switch (n->type) {
  case KMIP_TYPE_STRUCTURE:
    putc ('\n', fp);
    for (const struct kmip_node *c = n->child; c; c = c->next)
      print_text_node (fp, c, indent + 1);
    return;
  case KMIP_TYPE_INTEGER:
    fprintf (fp, ": %" PRId32, n->v.i32);
    if (n->tag == KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK) {
      const char *sep = " (";
      for (uint32_t bit = 1; bit; bit <<= 1)
        if ((uint32_t) n->v.i32 & bit) {
          name = kmip_mask_bit_name (n->tag, bit);
          if (name)
            fprintf (fp, "%s%s", sep, name);
          else
            fprintf (fp, "%s0x%" PRIX32, sep, bit);
          sep = "|";
        }
      if (sep[0] == '|')
        putc (')', fp);
    }
    break;
  case KMIP_TYPE_LONG_INTEGER: fprintf (fp, ": %" PRId64, n->v.i64); break;
  case KMIP_TYPE_BIG_INTEGER: fputs (": ", fp); print_bigint (fp, n->v.str.p, n->len); break;
  case KMIP_TYPE_ENUMERATION:
    if ((name = kmip_enum_name (n->tag, n->v.u32)) != NULL)
      fprintf (fp, ": %s (0x%08" PRIX32 ")", name, n->v.u32);
    else
      fprintf (fp, ": 0x%08" PRIX32, n->v.u32);
    break;
  case KMIP_TYPE_BOOLEAN: fputs (n->v.b ? ": true" : ": false", fp); break;
  case KMIP_TYPE_TEXT_STRING:
    fputs (": ", fp);
    print_text_escaped (fp, n->v.str.s, n->len);
    break;
  case KMIP_TYPE_BYTE_STRING:
    fprintf (fp, " [%" PRIu32 " bytes]: ", n->len);
    print_hex (fp, n->v.str.p, n->len);
    break;
  case KMIP_TYPE_DATE_TIME:
    if (format_datetime (n->v.i64, buf, sizeof buf))
      fprintf (fp, ": %s", buf);
    else
      fprintf (fp, ": %" PRId64 " (seconds since 1970)", n->v.i64);
    break;
  case KMIP_TYPE_INTERVAL: fprintf (fp, ": %" PRIu32 " s", n->v.u32); break;
  }
  putc ('\n', fp);
}

void
kmip_ttlv_print_text (FILE *fp, const struct kmip_node *root)
{
  print_text_node (fp, root, 0);
}

static int
hexval (unsigned char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int
kmip_ttlv_input_to_binary (const unsigned char *in, size_t len,
                           unsigned char **out, size_t *outlen, int *owned)
{
  size_t ndigits = 0;
  bool is_hex = len > 0;

  /* Binary TTLV starts with 0x42 ('B' is not a hex digit), so the two cannot be confused. */
  for (size_t i = 0; i < len && is_hex; i++) {
    if (hexval (in[i]) >= 0)
      ndigits++;
    else if (!isspace (in[i]))
      is_hex = false;
  }
  if (!is_hex || ndigits == 0) {
    *out = (unsigned char *) in;
    *outlen = len;
    *owned = 0;
    return 0;
  }
  if (ndigits % 2)
    return kmip_set_error (KMIP_E_DECODE, "hex input has an odd number of digits (%zu)",
                           ndigits);
  unsigned char *bin = malloc (ndigits / 2 ? ndigits / 2 : 1);
  if (bin == NULL)
    return kmip_set_error (-ENOMEM, "out of memory");
  size_t k = 0;
  int hi = -1;
  for (size_t i = 0; i < len; i++) {
    int v = hexval (in[i]);
    if (v < 0)
      continue;
    if (hi < 0)
      hi = v;
    else {
      bin[k++] = (unsigned char) (hi << 4 | v);
      hi = -1;
    }
  }
  *out = bin;
  *outlen = k;
  *owned = 1;
  return 0;
}
