/* SPDX-License-Identifier: BSD-3-Clause */
/* Text the server chose (result messages, identifiers, names) made safe to print. */
#include <stdbool.h>
#include <string.h>

#include "internal.h"

/* Bytes kept as they are: printable ASCII but the backslash, which starts our escapes. A
 * control byte (ESC, BEL, CR, LF) would let the server rewrite a terminal or forge log lines;
 * bytes >= 0x80 are escaped too, as UTF-8 can encode the C1 controls and bidi overrides. */
static size_t
escaped_len (unsigned char ch)
{
  if (ch == '\\')
    return 2;
  return ch >= 0x20 && ch < 0x7f ? 1 : 4;
}

static size_t
put_escaped (char *o, unsigned char ch)
{
  static const char hex[] = "0123456789abcdef";

  if (ch == '\\') {
    memcpy (o, "\\\\", 2);
    return 2;
  }
  if (ch >= 0x20 && ch < 0x7f) {
    *o = (char) ch;
    return 1;
  }
  o[0] = '\\';
  o[1] = 'x';
  o[2] = hex[ch >> 4];
  o[3] = hex[ch & 15];
  return 4;
}

const char *
kmip_escape_text (const char *s, size_t len, char *out, size_t outsize)
{
  size_t total = 0, cap, o = 0;
  bool cut;

  if (outsize == 0)
    return out;
  cap = outsize - 1;
  for (size_t i = 0; i < len && total <= cap; i++)
    total += escaped_len ((unsigned char) s[i]);
  /* Too long: as much as fits before a "..." that says the text goes on. */
  cut = total > cap && cap >= 3;
  if (cut)
    cap -= 3;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char) s[i];
    if (o + escaped_len (ch) > cap)
      break;
    o += put_escaped (out + o, ch);
  }
  if (cut) {
    memcpy (out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
  return out;
}
