/* SPDX-License-Identifier: BSD-3-Clause */
/* KMIP TTLV codec micro-benchmark: Get-request encode and Get-response decode in messages per
 * second, side by side with PyKMIP's encoder/decoder on the same bytes.
 *   kmip-codec-bench [--seconds N] [--no-pykmip] [--pykmip-script PATH] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kmip/ttlv.h"

#ifndef PYKMIP_SCRIPT
#define PYKMIP_SCRIPT "perf/kmip_codec_pykmip.py"
#endif

static const char uid[] = "49a1ca88-6bea-4fb2-b450-7e58802c3038";

/* A Get response carrying an AES-256 key in Raw format, as a KMIP 1.1 server sends it; built
 * once with the encoder, then decoded by both implementations. */
static const uint8_t key[32] = {
  0x1f, 0x2e, 0x3d, 0x4c, 0x5b, 0x6a, 0x79, 0x88, 0x97, 0xa6, 0xb5, 0xc4, 0xd3, 0xe2, 0xf1, 0x00,
  0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0,
};

/* Rates are per CPU-second of this (single-threaded) process, on both sides, so that other
 * work on a shared machine does not distort the comparison; wall time is reported alongside. */
static double
now (clockid_t clk)
{
  struct timespec ts;
  clock_gettime (clk, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_total, wall_total;

static void
version_header (struct kmip_enc *e, uint32_t tag, int64_t stamp)
{
  kmip_enc_begin (e, tag);
  kmip_enc_begin (e, KMIP_TAG_PROTOCOL_VERSION);
  kmip_enc_int (e, KMIP_TAG_PROTOCOL_VERSION_MAJOR, 1);
  kmip_enc_int (e, KMIP_TAG_PROTOCOL_VERSION_MINOR, 1);
  kmip_enc_end (e);
  if (stamp)
    kmip_enc_datetime (e, KMIP_TAG_TIME_STAMP, stamp);
  kmip_enc_int (e, KMIP_TAG_BATCH_COUNT, 1);
  kmip_enc_end (e);
}

/* What the client does per Get: build the request in a reused encoder. */
static int
encode_get (struct kmip_enc *e, const uint8_t **out, size_t *len)
{
  kmip_enc_reset (e);
  kmip_enc_begin (e, KMIP_TAG_REQUEST_MESSAGE);
  version_header (e, KMIP_TAG_REQUEST_HEADER, 0);
  kmip_enc_begin (e, KMIP_TAG_BATCH_ITEM);
  kmip_enc_enum (e, KMIP_TAG_OPERATION, KMIP_OPERATION_GET);
  kmip_enc_begin (e, KMIP_TAG_REQUEST_PAYLOAD);
  kmip_enc_text (e, KMIP_TAG_UNIQUE_IDENTIFIER, uid, sizeof uid - 1);
  kmip_enc_end (e);
  kmip_enc_end (e);
  kmip_enc_end (e);
  return kmip_enc_finish (e, out, len);
}

static void
build_response (struct kmip_enc *e)
{
  kmip_enc_begin (e, KMIP_TAG_RESPONSE_MESSAGE);
  version_header (e, KMIP_TAG_RESPONSE_HEADER, 1335514343);
  kmip_enc_begin (e, KMIP_TAG_BATCH_ITEM);
  kmip_enc_enum (e, KMIP_TAG_OPERATION, KMIP_OPERATION_GET);
  kmip_enc_enum (e, KMIP_TAG_RESULT_STATUS, KMIP_RESULT_STATUS_SUCCESS);
  kmip_enc_begin (e, KMIP_TAG_RESPONSE_PAYLOAD);
  kmip_enc_enum (e, KMIP_TAG_OBJECT_TYPE, KMIP_OBJECT_TYPE_SYMMETRIC_KEY);
  kmip_enc_str (e, KMIP_TAG_UNIQUE_IDENTIFIER, uid);
  kmip_enc_begin (e, KMIP_TAG_SYMMETRIC_KEY);
  kmip_enc_begin (e, KMIP_TAG_KEY_BLOCK);
  kmip_enc_enum (e, KMIP_TAG_KEY_FORMAT_TYPE, KMIP_KEY_FORMAT_TYPE_RAW);
  kmip_enc_begin (e, KMIP_TAG_KEY_VALUE);
  kmip_enc_bytes (e, KMIP_TAG_KEY_MATERIAL, key, sizeof key);
  kmip_enc_end (e);
  kmip_enc_enum (e, KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, KMIP_CRYPTOGRAPHIC_ALGORITHM_AES);
  kmip_enc_int (e, KMIP_TAG_CRYPTOGRAPHIC_LENGTH, 256);
  for (int i = 0; i < 5; i++)
    kmip_enc_end (e);
}

/* What the client does per Get response: decode, check status, find the key, free (wiped). */
static int
decode_get (const uint8_t *msg, size_t len)
{
  struct kmip_tree *t;
  const struct kmip_node *item, *kv;
  uint32_t status;
  const uint8_t *k;
  size_t klen;
  int r;

  if ((r = kmip_decode (msg, len, NULL, &t)) < 0)
    return r;
  r = kmip_get_struct (t->root, KMIP_TAG_BATCH_ITEM, &item);
  if (r == 0)
    r = kmip_get_enum (item, KMIP_TAG_RESULT_STATUS, &status);
  if (r == 0 && status != KMIP_RESULT_STATUS_SUCCESS)
    r = -1;
  kv = kmip_find_path (item, KMIP_TAG_RESPONSE_PAYLOAD, KMIP_TAG_SYMMETRIC_KEY,
                       KMIP_TAG_KEY_BLOCK, KMIP_TAG_KEY_VALUE, 0);
  if (r == 0)
    r = kmip_get_bytes (kv, KMIP_TAG_KEY_MATERIAL, &k, &klen);
  if (r == 0 && (klen != sizeof key || k[0] != key[0]))
    r = -1;
  kmip_tree_free (t);
  return r;
}

enum { ENCODE, DECODE, PAIR };

/* Run one kind of work for about 'seconds', in batches, and return messages per second. */
static double
measure (int what, double seconds, struct kmip_enc *e, const uint8_t *resp, size_t resplen)
{
  const uint8_t *out;
  size_t len;
  unsigned long n = 0;
  double start = now (CLOCK_PROCESS_CPUTIME_ID), wall = now (CLOCK_MONOTONIC), elapsed;

  do {
    for (int i = 0; i < 10000; i++) {
      if (what != DECODE && encode_get (e, &out, &len) < 0)
        abort ();
      if (what != ENCODE && decode_get (resp, resplen) < 0)
        abort ();
    }
    n += 10000;
    elapsed = now (CLOCK_PROCESS_CPUTIME_ID) - start;
  } while (elapsed < seconds);
  cpu_total += elapsed;
  wall_total += now (CLOCK_MONOTONIC) - wall;
  return n / elapsed;
}

static char *
hex (const uint8_t *p, size_t n)
{
  char *s = malloc (2 * n + 1);
  if (s == NULL)
    abort ();
  for (size_t i = 0; i < n; i++)
    sprintf (s + 2 * i, "%02X", p[i]);
  return s;
}

/* Ask PyKMIP for its three rates on the same bytes; false if it could not run. */
static bool
run_pykmip (const char *script, const char *reqhex, const char *resphex, double seconds,
            double rates[3])
{
  char *cmd;
  char line[256];
  int got = 0;

  if (asprintf (&cmd, "/usr/bin/python3 '%s' '%s' %s %s %g", script, uid, reqhex, resphex,
                seconds) < 0)
    return false;
  FILE *fp = popen (cmd, "r");
  free (cmd);
  if (fp == NULL)
    return false;
  while (fgets (line, sizeof line, fp)) {
    if (sscanf (line, "encode %lf", &rates[ENCODE]) == 1) got |= 1;
    else if (sscanf (line, "decode %lf", &rates[DECODE]) == 1) got |= 2;
    else if (sscanf (line, "pair %lf", &rates[PAIR]) == 1) got |= 4;
  }
  return pclose (fp) == 0 && got == 7;
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "seconds", required_argument, NULL, 's' },
    { "no-pykmip", no_argument, NULL, 'n' },
    { "pykmip-script", required_argument, NULL, 'p' },
    { NULL, 0, NULL, 0 },
  };
  double seconds = 2;
  bool pykmip = true;
  const char *script = PYKMIP_SCRIPT;
  int c;

  while ((c = getopt_long (argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 's': seconds = atof (optarg); break;
    case 'n': pykmip = false; break;
    case 'p': script = optarg; break;
    default:
      fprintf (stderr, "usage: %s [--seconds N] [--no-pykmip] [--pykmip-script PATH]\n",
               argv[0]);
      return 2;
    }
  }

  struct kmip_enc req, resp;
  const uint8_t *reqmsg, *respmsg;
  size_t reqlen, resplen;
  kmip_enc_init (&req);
  kmip_enc_init (&resp);
  build_response (&resp);
  if (kmip_enc_finish (&resp, &respmsg, &resplen) < 0 ||
      encode_get (&req, &reqmsg, &reqlen) < 0 || decode_get (respmsg, resplen) < 0) {
    fprintf (stderr, "kmip-codec-bench: %s\n", kmip_last_error ());
    return 1;
  }
  char *reqhex = hex (reqmsg, reqlen), *resphex = hex (respmsg, resplen);

  double ours[3], theirs[3];
  ours[ENCODE] = measure (ENCODE, seconds, &req, respmsg, resplen);
  ours[DECODE] = measure (DECODE, seconds, &req, respmsg, resplen);
  ours[PAIR] = measure (PAIR, seconds, &req, respmsg, resplen);
  bool have_py = pykmip && run_pykmip (script, reqhex, resphex, seconds, theirs);
  if (pykmip && !have_py)
    fprintf (stderr, "kmip-codec-bench: PyKMIP side failed (%s); showing nbdcrypt only\n",
             script);

  static const char *const names[3] = {
    "Get request encode", "Get response decode", "encode + decode pair",
  };
  printf ("KMIP TTLV codec: Get request (%zu bytes) encode, Get response with an AES-256 key "
          "(%zu bytes) decode + key lookup;\nrates per CPU-second on one core, %g CPU-s per row "
          "(this process got %.0f%% of a core: the machine is %s)\n\n", reqlen, resplen, seconds,
          100 * cpu_total / wall_total, cpu_total / wall_total > 0.9 ? "idle" : "shared");
  printf ("%-22s %18s %18s %10s\n", "operation", "nbdcrypt msg/s", "PyKMIP msg/s", "ratio");
  for (int i = 0; i < 3; i++) {
    if (have_py)
      printf ("%-22s %18.0f %18.0f %9.0fx\n", names[i], ours[i], theirs[i], ours[i] / theirs[i]);
    else
      printf ("%-22s %18.0f %18s %10s\n", names[i], ours[i], "-", "-");
  }
  free (reqhex);
  free (resphex);
  kmip_enc_free (&req);
  kmip_enc_free (&resp);
  return 0;
}
