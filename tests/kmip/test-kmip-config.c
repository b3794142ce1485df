/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: the kms.conf [kms] parser: values, defaults, relative paths, IPv6, and errors
 * that name file:line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmip/kmip.h"

#define CHECK_LAST_ERROR kmip_last_error
#include "check.h"

/* The text must be refused with a message containing want. */
static void
refused (const char *text, const char *want)
{
  struct kmip_config *cfg = NULL;
  int r = kmip_config_parse (text, "/etc/nbdcrypt/kms.conf", &cfg);

  CHECK_MSG (r < 0 && cfg == NULL && strstr (kmip_last_error (), want) != NULL,
             "%s\n  accepted or wrong message: '%s' (wanted '%s')", text, kmip_last_error (),
             want);
  kmip_config_free (cfg);
}

/* Every setting, several servers (IPv6 in brackets), paths relative to the file. */
static void
test_kms_conf_values (void)
{
  struct kmip_config *cfg;

  CHECK (kmip_config_parse (
    "# comment\n"
    "[other]\nserver = ignored:1\n"
    "[kms]\n"
    "server = kms1.example:5696, [2001:db8::1]:15696 ,10.0.0.2\n"
    "ca = ca.pem\n"
    "client-cert = /abs/client.pem\n"
    "client-key = keys/client.key\n"
    "timeout = 2.5\n"
    "max-version = 2.0\n"
    "version = 1.2\n"
    "max-message-size = 64K\n", "/etc/nbdcrypt/kms.conf", &cfg) == 0);
  if (cfg) {
    CHECK (cfg->nr_servers == 3);
    CHECK (strcmp (cfg->servers[0].host, "kms1.example") == 0);
    CHECK (strcmp (cfg->servers[0].port, "5696") == 0);
    CHECK (strcmp (cfg->servers[1].host, "2001:db8::1") == 0);
    CHECK (strcmp (cfg->servers[1].port, "15696") == 0);
    CHECK (strcmp (cfg->servers[2].host, "10.0.0.2") == 0);
    CHECK (strcmp (cfg->servers[2].port, "5696") == 0);
    CHECK (strcmp (cfg->ca, "/etc/nbdcrypt/ca.pem") == 0);
    CHECK (strcmp (cfg->client_cert, "/abs/client.pem") == 0);
    CHECK (strcmp (cfg->client_key, "/etc/nbdcrypt/keys/client.key") == 0);
    CHECK (cfg->timeout_ms == 2500);
    CHECK (cfg->max_version == KMIP_V (2, 0));
    CHECK (cfg->pin_version == KMIP_V (1, 2));
    CHECK (cfg->max_message == 65536);
    kmip_config_free (cfg);
  }
}

/* Defaults: max-version 1.4 (OKMS), 10 s, 1 MiB, system CA store. */
static void
test_kms_conf_defaults (void)
{
  struct kmip_config *cfg;

  CHECK (kmip_config_parse ("[kms]\nserver=k\n", NULL, &cfg) == 0);
  if (cfg) {
    CHECK (cfg->max_version == KMIP_V (1, 4) && cfg->pin_version == 0);
    CHECK (cfg->timeout_ms == 10000 && cfg->max_message == 1024 * 1024);
    CHECK (cfg->ca == NULL && cfg->client_cert == NULL);
    kmip_config_free (cfg);
  }
}

/* Bad values and shapes: refused with file:line and what is wrong. */
static void
test_kms_conf_refusals (void)
{
  struct kmip_config *cfg;

  refused ("[kms]\nserver = a:1\nmax-version = 1.5\n", "kms.conf:3: max-version '1.5'");
  refused ("[kms]\nserver = a:1\nverify = no\n", "kms.conf:3: unknown setting 'verify'");
  refused ("[kms]\n\nserver = a:99999\n", "kms.conf:3: bad port in server address 'a:99999'");
  refused ("[kms]\nserver = 2001:db8::1:5696\n", "write IPv6 addresses as [addr]:port");
  refused ("[kms]\nserver = ,\n", "kms.conf:2: 'server' lists no server");
  refused ("[kms]\nserver = a\ntimeout = 0\n", "kms.conf:3: timeout '0'");
  refused ("[kms]\nserver = a\ntimeout = ten\n", "kms.conf:3: timeout 'ten'");
  refused ("[kms]\nserver = a\nmax-message-size = 1G\n", "kms.conf:3: max-message-size");
  refused ("[kms\nserver = a\n", "kms.conf:1: malformed section header");
  refused ("[kms]\nserver\n", "kms.conf:2: expected 'key = value'");
  refused ("[other]\nserver = a\n", "no [kms] section");
  refused ("[kms]\nca = x\n", "has no 'server = host:port'");
  refused ("[kms]\nserver = a\nclient-key = k\n", "client-key is set but client-cert is not");
  CHECK (kmip_config_load ("/nonexistent/kms.conf", &cfg) < 0 && cfg == NULL);
  CHECK (strstr (kmip_last_error (), "/nonexistent/kms.conf") != NULL);
}

int
main (void)
{
  RUN (test_kms_conf_values);
  RUN (test_kms_conf_defaults);
  RUN (test_kms_conf_refusals);
  return check_exit ();
}
