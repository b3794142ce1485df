/* SPDX-License-Identifier: BSD-3-Clause */
/* Key fetch latency (KMIP Get of a 256-bit key) from a KMIP server: one reused connection
 * versus a new TCP+TLS connection per request. Prints p50/p99/mean in a table, and the
 * client's own CPU time per request in ms (independent of the server and of machine load).
 * usage: kmip-fetch-bench KMS.CONF [REQUESTS]   (run by kmip-fetch-bench.sh) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kmip/kmip.h"

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of this process (the client side only) in ms. */
static double
cpu_ms (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static double cpu_start;

static void
report (const char *mode, double *lat, int n, unsigned conns)
{
  double sum = 0, cpu = (cpu_ms () - cpu_start) / n;

  qsort (lat, n, sizeof *lat, cmp_double);
  for (int i = 0; i < n; i++)
    sum += lat[i];
  printf ("%-26s %6d %6u %9.2f %9.2f %9.2f %9.2f %9.0f %11.3f\n", mode, n, conns, lat[n / 2],
          lat[(int) (n * 0.99) < n ? (int) (n * 0.99) : n - 1], sum / n, lat[0],
          1000.0 * n / sum, cpu);
}

int
main (int argc, char **argv)
{
  struct kmip_config *cfg;
  struct kmip_client *c;
  char uid[KMIP_UID_MAX];
  uint8_t key[32];
  int n = argc > 2 ? atoi (argv[2]) : 200;
  double *lat;

  if (argc < 2 || n < 1) {
    fprintf (stderr, "usage: %s KMS.CONF [REQUESTS]\n", argv[0]);
    return 2;
  }
  lat = calloc (n, sizeof *lat);
  if (kmip_config_load (argv[1], &cfg) < 0 || kmip_client_new (cfg, &c) < 0 ||
      kmip_create_aes (c, &(struct kmip_create_params) { .activate = true }, uid) < 0) {
    fprintf (stderr, "kmip-fetch-bench: %s\n", kmip_last_error ());
    return 1;
  }
  printf ("KMIP %d.%d (%s), server %s, key %s, %d Get requests per mode\n",
          KMIP_V_MAJOR (kmip_client_version (c)), KMIP_V_MINOR (kmip_client_version (c)),
          cfg->pin_version ? "pinned" : "negotiated", kmip_client_server (c), uid, n);
  printf ("%-26s %6s %6s %9s %9s %9s %9s %9s %11s\n", "mode", "n", "conns", "p50 ms", "p99 ms",
          "mean ms", "min ms", "req/s", "client cpu");

  /* Reused connection: only the request and its answer. */
  unsigned before = kmip_client_connections (c);
  cpu_start = cpu_ms ();
  for (int i = 0; i < n; i++) {
    double t0 = now_ms ();
    if (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, key, sizeof key) != 32) {
      fprintf (stderr, "kmip-fetch-bench: %s\n", kmip_last_error ());
      return 1;
    }
    lat[i] = now_ms () - t0;
  }
  report ("reused connection", lat, n, kmip_client_connections (c) - before);

  /* A new connection per request: TCP + TLS handshake (mutual, ECDSA P-256) + request. The
   * negotiated version is remembered per handle, so DiscoverVersions is not repeated. */
  before = kmip_client_connections (c);
  cpu_start = cpu_ms ();
  for (int i = 0; i < n; i++) {
    double t0 = now_ms ();
    kmip_client_disconnect (c);
    if (kmip_get_key (c, uid, KMIP_KEY_FORMAT_TYPE_RAW, key, sizeof key) != 32) {
      fprintf (stderr, "kmip-fetch-bench: %s\n", kmip_last_error ());
      return 1;
    }
    lat[i] = now_ms () - t0;
  }
  report ("connection per request", lat, n, kmip_client_connections (c) - before);

  /* A fresh handle per request, as a one-shot command does: handshake + DiscoverVersions. */
  int m = n < 50 ? n : 50;
  cpu_start = cpu_ms ();
  for (int i = 0; i < m; i++) {
    struct kmip_client *c2;
    double t0 = now_ms ();
    if (kmip_client_new (cfg, &c2) < 0 ||
        kmip_get_key (c2, uid, KMIP_KEY_FORMAT_TYPE_RAW, key, sizeof key) != 32) {
      fprintf (stderr, "kmip-fetch-bench: %s\n", kmip_last_error ());
      return 1;
    }
    lat[i] = now_ms () - t0;
    kmip_client_free (c2);
  }
  report ("new handle per request", lat, m, m);
  explicit_bzero (key, sizeof key);
  kmip_client_free (c);
  kmip_config_free (cfg);
  free (lat);
  return 0;
}
