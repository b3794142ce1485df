/* SPDX-License-Identifier: BSD-3-Clause */
/* HMAC-SHA256 and HKDF-SHA256 through OpenSSL 3's EVP_MAC and EVP_KDF. */
#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "errors.h"
#include "mac.h"

int
ncr_hmac_sha256 (const uint8_t *key, size_t key_len, const void *msg, size_t msg_len,
                 uint8_t out[NCR_HMAC_SHA256_LEN])
{
  EVP_MAC *mac = EVP_MAC_fetch (NULL, OSSL_MAC_NAME_HMAC, NULL);
  EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new (mac) : NULL;
  OSSL_PARAM params[] = {
    OSSL_PARAM_construct_utf8_string (OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0),
    OSSL_PARAM_construct_end (),
  };
  size_t out_len = 0;
  int ok;

  ok = ctx != NULL &&
       EVP_MAC_init (ctx, key, key_len, params) == 1 &&
       EVP_MAC_update (ctx, msg, msg_len) == 1 &&
       EVP_MAC_final (ctx, out, &out_len, NCR_HMAC_SHA256_LEN) == 1 &&
       out_len == NCR_HMAC_SHA256_LEN;
  EVP_MAC_CTX_free (ctx);       /* wipes the keyed state */
  EVP_MAC_free (mac);
  return ok ? 0 : ncr_error (EIO, "HMAC-SHA256 failed in OpenSSL");
}

int
ncr_hkdf_sha256 (const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                 const char *info, uint8_t *out, size_t out_len)
{
  EVP_KDF *kdf = EVP_KDF_fetch (NULL, OSSL_KDF_NAME_HKDF, NULL);
  EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new (kdf) : NULL;
  OSSL_PARAM params[5], *p = params;
  int ok;

  *p++ = OSSL_PARAM_construct_utf8_string (OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0);
  *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_KEY, (void *) ikm, ikm_len);
  if (salt_len > 0)
    *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_SALT, (void *) salt, salt_len);
  *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_INFO, (void *) info, strlen (info));
  *p = OSSL_PARAM_construct_end ();
  ok = ctx != NULL && EVP_KDF_derive (ctx, out, out_len, params) == 1;
  EVP_KDF_CTX_free (ctx);
  EVP_KDF_free (kdf);
  return ok ? 0 : ncr_error (EIO, "HKDF-SHA256 failed in OpenSSL");
}
