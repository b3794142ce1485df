/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: server text is escaped where it enters kmip-client's messages, and an answer
 * about another object is refused. kmip_escape_text against a hand-written table (printable
 * ASCII kept, backslash doubled, every other byte \xNN, cut with "..." never inside an
 * escape); a Result Message holding ESC, BEL, CR, LF reaches kmip_last_error() without a raw
 * control byte; kmip_check_answer_uid refuses "999" and "1\0evil" for "1". Uses internal.h. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define CHECK_LAST_ERROR kmip_last_error
#include "check.h"

static bool
has_control_byte (const char *s)
{
  for (; *s; s++)
    if ((unsigned char) *s < 0x20 || *s == 0x7f)
      return true;
  return false;
}

static void
test_escape_table (void)
{
  static const struct { const char *in; size_t len, outsize; const char *want; } t[] = {
    { "Could not locate object: 7", 26, 64, "Could not locate object: 7" },
    { "a\\b", 3, 64, "a\\\\b" },
    { "\x1b[2J\x07", 5, 64, "\\x1b[2J\\x07" },
    { "line\r\nnbdkit: info: ok", 22, 64, "line\\x0d\\x0anbdkit: info: ok" },
    { "1\0evil", 6, 64, "1\\x00evil" },
    { "caf\xc3\xa9\x7f", 6, 64, "caf\\xc3\\xa9\\x7f" },
    { "abcdefghi", 9, 10, "abcdefghi" },                 /* fits exactly: not cut */
    { "abcdefghij", 10, 10, "abcdef..." },
    { "\x1b\x1b\x1b", 3, 10, "\\x1b..." },               /* an escape is never cut in two */
    { "a\x1b", 2, 5, "a..." },
    { "abc", 3, 1, "" },
    { "", 0, 8, "" },
  };

  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char out[64];
    kmip_escape_text (t[i].in, t[i].len, out, t[i].outsize);
    CHECK_MSG (strcmp (out, t[i].want) == 0, "escape case %zu: got \"%s\", want \"%s\"", i,
               out, t[i].want);
    CHECK (strlen (out) < t[i].outsize);
  }
}

/* A one-item ResponseMessage: Get failed, Item Not Found, with message msg (len bytes). */
static void
failed_get (struct kmip_enc *e, const char *msg, size_t len)
{
  kmip_enc_begin (e, KMIP_TAG_RESPONSE_MESSAGE);
  kmip_enc_begin (e, KMIP_TAG_RESPONSE_HEADER);
  kmip_enc_begin (e, KMIP_TAG_PROTOCOL_VERSION);
  kmip_enc_int (e, KMIP_TAG_PROTOCOL_VERSION_MAJOR, 1);
  kmip_enc_int (e, KMIP_TAG_PROTOCOL_VERSION_MINOR, 4);
  kmip_enc_end (e);
  kmip_enc_int (e, KMIP_TAG_BATCH_COUNT, 1);
  kmip_enc_end (e);
  kmip_enc_begin (e, KMIP_TAG_BATCH_ITEM);
  kmip_enc_enum (e, KMIP_TAG_OPERATION, KMIP_OPERATION_GET);
  kmip_enc_enum (e, KMIP_TAG_RESULT_STATUS, KMIP_RESULT_STATUS_OPERATION_FAILED);
  kmip_enc_enum (e, KMIP_TAG_RESULT_REASON, KMIP_RESULT_REASON_ITEM_NOT_FOUND);
  kmip_enc_text (e, KMIP_TAG_RESULT_MESSAGE, msg, len);
  kmip_enc_end (e);
  kmip_enc_end (e);
}

static void
test_result_message (void)
{
  static const char msg[] = "\x1b]0;owned\x07\r\nnbdkit: info: KMS check OK";
  struct kmip_enc e;
  struct kmip_resp resp;
  const uint8_t *buf;
  size_t len;
  char big[4000];

  kmip_enc_init (&e);
  failed_get (&e, msg, sizeof msg - 1);
  CHECK (kmip_enc_finish (&e, &buf, &len) == 0);
  CHECK (kmip_resp_parse (buf, len, 0, &resp) == 0);
  CHECK (kmip_resp_check (&resp, 0, KMIP_OPERATION_GET) == KMIP_E_RESULT);
  CHECK (!has_control_byte (kmip_last_error ()));
  CHECK (strcmp (kmip_last_error (), "Get failed: Item Not Found: \\x1b]0;owned\\x07\\x0d\\x0a"
                 "nbdkit: info: KMS check OK") == 0);
  kmip_resp_free (&resp);

  /* A long message is cut: what the server says cannot crowd out what we say. */
  memset (big, 'A', sizeof big);
  kmip_enc_reset (&e);
  failed_get (&e, big, sizeof big);
  CHECK (kmip_enc_finish (&e, &buf, &len) == 0);
  CHECK (kmip_resp_parse (buf, len, 0, &resp) == 0);
  CHECK (kmip_resp_check (&resp, 0, KMIP_OPERATION_GET) == KMIP_E_RESULT);
  CHECK (strlen (kmip_last_error ()) < KMIP_MESSAGE_TEXT_MAX + 40);
  CHECK (strstr (kmip_last_error (), "AAA...") != NULL);
  kmip_resp_free (&resp);
  kmip_enc_free (&e);
}

/* A payload { Unique Identifier uid (len bytes) }, or an empty one for len == SIZE_MAX. */
static void
answer_uid (const char *uid, size_t len, const char *asked, int want)
{
  struct kmip_enc e;
  struct kmip_tree *t;
  const uint8_t *buf;
  size_t blen;

  kmip_enc_init (&e);
  kmip_enc_begin (&e, KMIP_TAG_RESPONSE_PAYLOAD);
  if (len != SIZE_MAX)
    kmip_enc_text (&e, KMIP_TAG_UNIQUE_IDENTIFIER, uid, len);
  kmip_enc_end (&e);
  CHECK (kmip_enc_finish (&e, &buf, &blen) == 0);
  CHECK (kmip_decode (buf, blen, NULL, &t) == 0);
  CHECK (kmip_check_answer_uid (t->root, "Get", asked) == want);
  if (want < 0) {
    CHECK (strstr (kmip_last_error (), "the KMS answered for another object") != NULL);
    CHECK (!has_control_byte (kmip_last_error ()));
  }
  kmip_tree_free (t);
  kmip_enc_free (&e);
}

static void
test_answer_uid (void)
{
  answer_uid ("1", 1, "1", 0);
  answer_uid (NULL, SIZE_MAX, "1", 0);           /* names no object: not another one */
  answer_uid ("999", 3, "1", KMIP_E_DECODE);
  answer_uid ("1\0evil", 6, "1", KMIP_E_DECODE);
  CHECK (strstr (kmip_last_error (), "(\"1\\x00evil\")") != NULL);
  answer_uid ("1", 1, "10", KMIP_E_DECODE);
  answer_uid ("1\n2", 3, "1", KMIP_E_DECODE);
  CHECK (!kmip_uid_text_ok ("1\n2", 3) && !kmip_uid_text_ok ("1\0", 2) &&
         !kmip_uid_text_ok ("", 0) && kmip_uid_text_ok ("ph-1", 4));
}

int
main (void)
{
  RUN (test_escape_table);
  RUN (test_result_message);
  RUN (test_answer_uid);
  return check_exit ();
}
