/* SPDX-License-Identifier: BSD-3-Clause */
/* Local KEK file provider: a 32-byte AES-256 KEK on the host (no KMS), RFC 5649 wrap. The KEK
 * id recorded in the header is a fingerprint, so a wrong file is named before unwrapping.
 * Nothing changes after open (the KEK, its path and fingerprint are read-only), so threads
 * share a provider without a lock. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "cleanup.h"
#include "errors.h"
#include "filemode.h"
#include "keyprov.h"
#include "keywrap.h"
#include "secmem.h"

#define KEK_LEN 32

struct keyprov_file {
  struct keyprov base;
  char *path;
  uint8_t *kek;                 /* secmem, KEK_LEN bytes */
  char fingerprint[7 + 32 + 1]; /* "sha256:" + 16 bytes hex */
};

static const char fp_label[] = "nbdcrypt kek fingerprint v1";

static int
file_default_kek_id (struct keyprov *kp, char *out, size_t size)
{
  struct keyprov_file *f = (struct keyprov_file *) kp;

  if (strlen (f->fingerprint) >= size)
    return ncr_error (ENAMETOOLONG, "KEK id buffer too small");
  strcpy (out, f->fingerprint);
  return 0;
}

static int
check_id (struct keyprov_file *f, const char *kek_id)
{
  if (strcmp (kek_id, f->fingerprint) != 0)
    return ncr_error (EKEYREJECTED, "wrong KEK file: %s has fingerprint %s but the volume "
                      "was wrapped under %s; give the KEK file the volume was formatted "
                      "(or last rewrapped) with", f->path, f->fingerprint, kek_id);
  return 0;
}

static int
check_wrap (enum key_wrap wrap)
{
  if (wrap != KEY_WRAP_AES_KWP)
    return ncr_error (EINVAL, "a KEK file supports only wrap mode aes-kwp, not %s",
                      key_wrap_name (wrap));
  return 0;
}

static int
file_wrap (struct keyprov *kp, const char *kek_id, enum key_wrap wrap,
           const uint8_t *dek, size_t dek_len, uint8_t *out, size_t out_size, size_t *out_len)
{
  struct keyprov_file *f = (struct keyprov_file *) kp;
  int r;

  if ((r = check_wrap (wrap)) < 0 || (r = check_id (f, kek_id)) < 0)
    return r;
  return keywrap_wrap (f->kek, KEK_LEN, dek, dek_len, out, out_size, out_len);
}

static int
file_unwrap (struct keyprov *kp, const char *kek_id, enum key_wrap wrap,
             const uint8_t *in, size_t in_len, uint8_t *dek, size_t dek_size, size_t *dek_len)
{
  struct keyprov_file *f = (struct keyprov_file *) kp;
  int r;

  if ((r = check_wrap (wrap)) < 0 || (r = check_id (f, kek_id)) < 0)
    return r;
  r = keywrap_unwrap (f->kek, KEK_LEN, in, in_len, dek, dek_size, dek_len);
  if (r == -EKEYREJECTED)
    return ncr_error (EKEYREJECTED, "the wrapped volume key does not unwrap under %s "
                      "(KEK file altered, or the header was tampered with)", f->path);
  return r;
}

static int
file_kek_state (struct keyprov *kp, const char *kek_id, enum kek_state *state)
{
  struct keyprov_file *f = (struct keyprov_file *) kp;
  int r;

  if ((r = check_id (f, kek_id)) < 0)
    return r;
  *state = KEK_STATE_ACTIVE;    /* a local file has no lifecycle */
  return 0;
}

/* Nothing to fetch: the KEK is here. Each item is checked as file_unwrap would check it. */
static int
file_prefetch (struct keyprov *kp, struct keyprov_want *w, const enum key_wrap *wraps, size_t n)
{
  struct keyprov_file *f = (struct keyprov_file *) kp;

  for (size_t i = 0; i < n; i++)
    if (w[i].result == 0 && (w[i].result = check_wrap (wraps[i])) == 0)
      w[i].result = check_id (f, w[i].kek_id);
  return 0;
}

static int
file_get_key (struct keyprov *kp, const char *key_id, uint8_t *key, size_t key_size,
              size_t *key_len)
{
  (void) key; (void) key_size; (void) key_len; (void) key_id;
  (void) kp;
  return ncr_error (ENOTSUP, "a KEK file holds no raw volume keys: fetching a key by id "
                    "needs a KMS");
}

static void
file_free (struct keyprov *kp)
{
  struct keyprov_file *f = (struct keyprov_file *) kp;

  secmem_free (f->kek);
  free (f->path);
  free (f);
}

static const struct keyprov_ops file_ops = {
  .kind = KEYPROV_FILE,
  .default_kek_id = file_default_kek_id,
  .wrap = file_wrap,
  .unwrap = file_unwrap,
  .kek_state = file_kek_state,
  .prefetch = file_prefetch,
  .get_key = file_get_key,
  .free = file_free,
};

/* Domain-separated digest of the KEK: identifies the file without revealing anything usable. */
static int
fingerprint (const uint8_t *kek, char out[7 + 32 + 1])
{
  const struct iovec parts[] = {
    { (void *) fp_label, sizeof fp_label - 1 }, { (void *) kek, KEK_LEN },
  };
  uint8_t md[CRYPTO_SHA256_LEN];
  int r;

  if ((r = crypto_sha256 (parts, 2, md)) < 0)
    return r;
  strcpy (out, "sha256:");
  for (unsigned i = 0; i < 16; i++)
    sprintf (out + 7 + 2 * i, "%02x", md[i]);
  return 0;
}

int
keyprov_file_open (const char *path, struct keyprov **out)
{
  CLEANUP_CLOSE int fd = -1;
  struct keyprov_file *f;
  struct stat st;
  ssize_t n;
  uint8_t extra;
  int r;

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return ncr_error (errno, "cannot open KEK file %s: %s", path, strerror (errno));
  if (fstat (fd, &st) == -1)
    return ncr_error (errno, "KEK file %s: %s", path, strerror (errno));
  if (!S_ISREG (st.st_mode) || st.st_size != KEK_LEN)
    return ncr_error (EINVAL, "KEK file %s must be a regular file of exactly %d bytes "
                      "(create one with 'head -c 32 /dev/urandom > FILE')", path, KEK_LEN);
  f = calloc (1, sizeof *f);
  if (f == NULL)
    return ncr_error (ENOMEM, "out of memory");
  f->base.ops = &file_ops;
  f->path = strdup (path);
  f->kek = secmem_alloc (KEK_LEN);
  if (f->path == NULL || f->kek == NULL) {
    r = f->kek ? ncr_error (ENOMEM, "out of memory") :
                 ncr_error_prefix (errno, "KEK file %s: ", path);
    file_free (&f->base);
    return r;
  }
  /* Read straight into locked memory: no unlocked copy of the KEK ever exists. */
  n = pread (fd, f->kek, KEK_LEN, 0);
  if (n != KEK_LEN || pread (fd, &extra, 1, KEK_LEN) != 0) {
    r = ncr_error (n < 0 ? errno : EINVAL, "KEK file %s: could not read exactly %d bytes",
                   path, KEK_LEN);
    file_free (&f->base);
    return r;
  }
  if ((r = fingerprint (f->kek, f->fingerprint)) < 0) {
    file_free (&f->base);
    return r;
  }
  ncr_secret_file_warning ("KEK file", path, &st, f->base.warning, sizeof f->base.warning);
  *out = &f->base;
  return 0;
}

int
keyprov_file_create (const char *path)
{
  CLEANUP_SECMEM_FREE uint8_t *kek = secmem_alloc (KEK_LEN);
  CLEANUP_CLOSE int fd = -1;

  if (kek == NULL)
    return -errno;
  if (crypto_random_key (kek, KEK_LEN) < 0)
    return ncr_error (EIO, "the OS random generator failed");
  fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd == -1)
    return ncr_error (errno, "cannot create KEK file %s: %s", path, strerror (errno));
  if (write (fd, kek, KEK_LEN) != KEK_LEN || fsync (fd) == -1) {
    int e = errno ? errno : EIO;
    unlink (path);
    return ncr_error (e, "cannot write KEK file %s: %s", path, strerror (e));
  }
  return 0;
}
