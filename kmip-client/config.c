/* SPDX-License-Identifier: BSD-3-Clause */
/* The [kms] section of kms.conf: an INI parser whose errors name file:line. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kmip/kmip.h"
#include "internal.h"

struct kmip_config *
kmip_config_new (void)
{
  struct kmip_config *cfg = calloc (1, sizeof *cfg);

  if (cfg == NULL) {
    kmip_set_error (-ENOMEM, "out of memory");
    return NULL;
  }
  cfg->timeout_ms = KMIP_DEFAULT_TIMEOUT_MS;
  cfg->max_version = KMIP_DEFAULT_MAX_VERSION;
  cfg->max_message = KMIP_DEFAULT_MAX_MESSAGE;
  return cfg;
}

void
kmip_config_free (struct kmip_config *cfg)
{
  if (cfg == NULL)
    return;
  for (size_t i = 0; i < cfg->nr_servers; i++) {
    free (cfg->servers[i].host);
    free (cfg->servers[i].port);
  }
  free (cfg->servers);
  free (cfg->ca);
  free (cfg->client_cert);
  free (cfg->client_key);
  free (cfg);
}

uint16_t
kmip_version_parse (const char *s)
{
  static const char *const known[] = { "1.0", "1.1", "1.2", "1.3", "1.4", "2.0" };

  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcmp (s, known[i]) == 0)
      return KMIP_V (known[i][0] - '0', known[i][2] - '0');
  return 0;
}

/* Parse one "host[:port]" or "[v6]:port" into cfg->servers. */
int
kmip_config_add_server (struct kmip_config *cfg, const char *hostport)
{
  char *host = NULL, *port = NULL;
  const char *colon;
  struct kmip_server_addr *n;

  if (hostport[0] == '[') {
    const char *end = strchr (hostport, ']');
    if (end == NULL || (end[1] != '\0' && end[1] != ':'))
      return kmip_set_error (KMIP_E_CONFIG, "bad server address '%s': expected [IPv6]:port",
                             hostport);
    host = strndup (hostport + 1, end - hostport - 1);
    colon = end[1] == ':' ? end + 1 : NULL;
  }
  else {
    colon = strchr (hostport, ':');
    if (colon && strchr (colon + 1, ':'))
      return kmip_set_error (KMIP_E_CONFIG, "bad server address '%s': write IPv6 addresses "
                             "as [addr]:port", hostport);
    host = colon ? strndup (hostport, colon - hostport) : strdup (hostport);
  }
  if (host == NULL)
    return kmip_set_error (-ENOMEM, "out of memory");
  if (host[0] == '\0') {
    free (host);
    return kmip_set_error (KMIP_E_CONFIG, "bad server address '%s': no host", hostport);
  }
  if (colon) {
    char *end;
    errno = 0;
    unsigned long p = strtoul (colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno || p == 0 || p > 65535 ||
        !isdigit ((unsigned char) colon[1])) {
      free (host);
      return kmip_set_error (KMIP_E_CONFIG, "bad port in server address '%s'", hostport);
    }
    port = strdup (colon + 1);
  }
  else
    port = strdup (KMIP_DEFAULT_PORT);
  n = realloc (cfg->servers, (cfg->nr_servers + 1) * sizeof *n);
  if (port == NULL || n == NULL) {
    free (host);
    free (port);
    return kmip_set_error (-ENOMEM, "out of memory");
  }
  cfg->servers = n;
  n[cfg->nr_servers].host = host;
  n[cfg->nr_servers].port = port;
  cfg->nr_servers++;
  return 0;
}

static char *
trim (char *s)
{
  char *e;

  while (isspace ((unsigned char) *s))
    s++;
  e = s + strlen (s);
  while (e > s && isspace ((unsigned char) e[-1]))
    *--e = '\0';
  return s;
}

/* Cut a comment: '#' or ';' at the start of the line or after white space, as INI users
 * expect ("timeout = 10   # seconds"). A '#' inside a word (a path "a#b") stays. */
static char *
strip_comment (char *line)
{
  for (char *p = line; *p; p++)
    if ((*p == '#' || *p == ';') && (p == line || isspace ((unsigned char) p[-1]))) {
      *p = '\0';
      break;
    }
  return line;
}

/* A path from the file: relative ones are relative to the file's directory. */
static char *
resolve_path (const char *value, const char *name)
{
  const char *slash = name ? strrchr (name, '/') : NULL;
  char *r;

  if (value[0] == '/' || slash == NULL)
    return strdup (value);
  if (asprintf (&r, "%.*s/%s", (int) (slash - name), name, value) < 0)
    return NULL;
  return r;
}

static int
set_path (char **field, const char *value, const char *name, const char *where)
{
  if (value[0] == '\0')
    return kmip_set_error (KMIP_E_CONFIG, "%s: empty file name", where);
  free (*field);
  *field = resolve_path (value, name);
  if (*field == NULL)
    return kmip_set_error (-ENOMEM, "out of memory");
  return 0;
}

static int
set_key (struct kmip_config *cfg, const char *key, char *value, const char *name,
         const char *where)
{
  char *end;

  if (strcmp (key, "server") == 0 || strcmp (key, "servers") == 0) {
    char *save = NULL, *tok;
    size_t before = cfg->nr_servers;
    for (tok = strtok_r (value, ",", &save); tok; tok = strtok_r (NULL, ",", &save)) {
      tok = trim (tok);
      if (*tok == '\0')
        continue;
      int r = kmip_config_add_server (cfg, tok);
      if (r < 0)
        return kmip_set_error (r, "%s: %s", where, kmip_last_error ());
    }
    if (cfg->nr_servers == before)
      return kmip_set_error (KMIP_E_CONFIG, "%s: 'server' lists no server", where);
    return 0;
  }
  if (strcmp (key, "ca") == 0) {
    if (strcmp (value, "system") == 0) {
      free (cfg->ca);
      cfg->ca = NULL;
      return 0;
    }
    return set_path (&cfg->ca, value, name, where);
  }
  if (strcmp (key, "client-cert") == 0)
    return set_path (&cfg->client_cert, value, name, where);
  if (strcmp (key, "client-key") == 0)
    return set_path (&cfg->client_key, value, name, where);
  if (strcmp (key, "timeout") == 0) {
    errno = 0;
    double t = strtod (value, &end);
    if (errno || end == value || *trim (end) != '\0' || !(t > 0) || t > 3600)
      return kmip_set_error (KMIP_E_CONFIG, "%s: timeout '%s' is not a number of seconds "
                             "between 0 and 3600", where, value);
    cfg->timeout_ms = (unsigned) (t * 1000 + 0.5);
    if (cfg->timeout_ms == 0)
      cfg->timeout_ms = 1;
    return 0;
  }
  if (strcmp (key, "max-version") == 0 || strcmp (key, "version") == 0) {
    uint16_t v = kmip_version_parse (value);
    if (v == 0)
      return kmip_set_error (KMIP_E_CONFIG, "%s: %s '%s' is not one of 1.0, 1.1, 1.2, 1.3, "
                             "1.4, 2.0", where, key, value);
    if (key[0] == 'm')
      cfg->max_version = v;
    else
      cfg->pin_version = v;
    return 0;
  }
  if (strcmp (key, "max-message-size") == 0) {
    errno = 0;
    unsigned long long n = strtoull (value, &end, 10);
    unsigned long long mult = 1;
    if (*end == 'K' || *end == 'k')
      mult = 1024, end++;
    else if (*end == 'M' || *end == 'm')
      mult = 1024 * 1024, end++;
    if (errno || end == value || *end != '\0' || !isdigit ((unsigned char) value[0]) ||
        n > (256ULL << 20) / mult || n * mult < 1024)
      return kmip_set_error (KMIP_E_CONFIG, "%s: max-message-size '%s' must be between 1K "
                             "and 256M", where, value);
    cfg->max_message = n * mult;
    return 0;
  }
  return kmip_set_error (KMIP_E_CONFIG, "%s: unknown setting '%s' in [kms] (known: server, ca, "
                         "client-cert, client-key, timeout, max-version, version, "
                         "max-message-size)", where, key);
}

int
kmip_config_parse (const char *text, const char *name, struct kmip_config **cfgp)
{
  struct kmip_config *cfg;
  char *copy, *line, *next;
  unsigned lineno = 0;
  bool in_kms = false, seen_kms = false;
  const char *fname = name ? name : "<config>";
  int r = 0;

  *cfgp = NULL;
  cfg = kmip_config_new ();
  if (cfg == NULL)
    return -ENOMEM;
  copy = strdup (text);
  if (copy == NULL) {
    kmip_config_free (cfg);
    return kmip_set_error (-ENOMEM, "out of memory");
  }
  for (line = copy; line && r == 0; line = next) {
    char where[512], *s, *eq;

    next = strchr (line, '\n');
    if (next)
      *next++ = '\0';
    lineno++;
    snprintf (where, sizeof where, "%s:%u", fname, lineno);
    s = trim (strip_comment (line));
    if (*s == '\0')
      continue;
    if (*s == '[') {
      char *end = strchr (s, ']');
      if (end == NULL || *trim (end + 1) != '\0') {
        r = kmip_set_error (KMIP_E_CONFIG, "%s: malformed section header '%s'", where, s);
        break;
      }
      *end = '\0';
      in_kms = strcmp (trim (s + 1), "kms") == 0;
      seen_kms |= in_kms;
      continue;
    }
    if (!in_kms)
      continue;                 /* other sections belong to other readers */
    eq = strchr (s, '=');
    if (eq == NULL) {
      r = kmip_set_error (KMIP_E_CONFIG, "%s: expected 'key = value', got '%s'", where, s);
      break;
    }
    *eq = '\0';
    r = set_key (cfg, trim (s), trim (eq + 1), name, where);
  }
  free (copy);
  if (r == 0 && !seen_kms)
    r = kmip_set_error (KMIP_E_CONFIG, "%s: no [kms] section", fname);
  if (r == 0 && cfg->nr_servers == 0)
    r = kmip_set_error (KMIP_E_CONFIG, "%s: [kms] has no 'server = host:port'", fname);
  if (r == 0 && cfg->client_key && !cfg->client_cert)
    r = kmip_set_error (KMIP_E_CONFIG, "%s: client-key is set but client-cert is not", fname);
  if (r < 0) {
    kmip_config_free (cfg);
    return r;
  }
  *cfgp = cfg;
  return 0;
}

int
kmip_config_load (const char *path, struct kmip_config **cfgp)
{
  FILE *fp;
  char *text = NULL;
  size_t len = 0;
  int r;

  *cfgp = NULL;
  fp = fopen (path, "re");
  if (fp == NULL)
    return kmip_set_error (-errno, "cannot open KMS configuration %s: %m", path);
  /* Config files are small; refuse anything absurd rather than read it whole. */
  text = malloc (1 << 20);
  if (text == NULL) {
    fclose (fp);
    return kmip_set_error (-ENOMEM, "out of memory");
  }
  len = fread (text, 1, (1 << 20) - 1, fp);
  if (ferror (fp)) {
    r = kmip_set_error (-EIO, "cannot read KMS configuration %s", path);
    goto out;
  }
  if (!feof (fp)) {
    r = kmip_set_error (KMIP_E_CONFIG, "%s: configuration file larger than 1 MiB", path);
    goto out;
  }
  text[len] = '\0';
  if (memchr (text, '\0', len)) {
    r = kmip_set_error (KMIP_E_CONFIG, "%s: binary data in configuration file", path);
    goto out;
  }
  r = kmip_config_parse (text, path, cfgp);
 out:
  fclose (fp);
  free (text);
  return r;
}
