/* SPDX-License-Identifier: BSD-3-Clause */
/* Description: strict option parsers: booleans take exactly nbdkit_parse_bool's words in any
 * case; numbers and sizes take digits only (no sign, blank, trailing junk, overflow, empty),
 * each refusal quoting the value. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"
#include "errors.h"
#define CHECK_LAST_ERROR ncr_last_error
#include "check.h"

static void
booleans (void)
{
  static const char *const yes[] = { "1", "true", "TRUE", "True", "t", "T", "yes", "YES", "y",
                                     "on", "ON", "On" };
  static const char *const no[] = { "0", "false", "FALSE", "f", "no", "No", "n", "N", "off",
                                    "OFF" };
  static const char *const bad[] = { "", "2", "01", "yes ", " on", "enable", "truex", "-1" };
  bool b;

  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
    CHECK_MSG (ncr_parse_bool (yes[i], &b) == 0 && b, "'%s' is true", yes[i]);
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    CHECK_MSG (ncr_parse_bool (no[i], &b) == 0 && !b, "'%s' is false", no[i]);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_MSG (ncr_parse_bool (bad[i], &b) == -EINVAL, "'%s' refused", bad[i]);
    CHECK_MSG (strstr (ncr_last_error (), "is not a boolean"), "message for '%s'", bad[i]);
  }
}

static void
numbers (void)
{
  static const char *const bad[] = { "", "4096x", "-1", "+1", " 1", "1 ", "0x10", "1e3",
                                     "99999999999999999999", "18446744073709551616" };
  uint64_t v;

  CHECK_MSG (ncr_parse_uint ("4096", UINT64_MAX, &v) == 0 && v == 4096, "4096");
  CHECK_MSG (ncr_parse_uint ("0", 10, &v) == 0 && v == 0, "0");
  CHECK_MSG (ncr_parse_uint ("007", 10, &v) == 0 && v == 7, "leading zeros are digits");
  CHECK_MSG (ncr_parse_uint ("18446744073709551615", UINT64_MAX, &v) == 0 && v == UINT64_MAX,
         "UINT64_MAX");
  CHECK_MSG (ncr_parse_uint ("86400", 86400, &v) == 0 && v == 86400, "max itself");
  CHECK_MSG (ncr_parse_uint ("86401", 86400, &v) == -ERANGE &&
         strstr (ncr_last_error (), "at most 86400"), "above max");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_MSG (ncr_parse_uint (bad[i], UINT64_MAX, &v) < 0, "'%s' refused", bad[i]);
    CHECK_MSG (strstr (ncr_last_error (), bad[i]), "message quotes '%s'", bad[i]);
  }
}

static void
sizes (void)
{
  uint64_t v;

  CHECK_MSG (ncr_parse_size ("1M", UINT64_MAX, &v) == 0 && v == 1048576, "1M");
  CHECK_MSG (ncr_parse_size ("4k", UINT64_MAX, &v) == 0 && v == 4096, "4k");
  CHECK_MSG (ncr_parse_size ("2G", UINT64_MAX, &v) == 0 && v == 2ull << 30, "2G");
  CHECK_MSG (ncr_parse_size ("12345", UINT64_MAX, &v) == 0 && v == 12345, "bytes");
  CHECK_MSG (ncr_parse_size ("1Mx", UINT64_MAX, &v) == -EINVAL, "trailing junk");
  CHECK_MSG (ncr_parse_size ("1MB", UINT64_MAX, &v) == -EINVAL, "two-letter suffix");
  CHECK_MSG (ncr_parse_size ("M", UINT64_MAX, &v) == -EINVAL, "suffix alone");
  CHECK_MSG (ncr_parse_size ("-1M", UINT64_MAX, &v) == -EINVAL, "negative");
  CHECK_MSG (ncr_parse_size ("", UINT64_MAX, &v) == -EINVAL, "empty");
  CHECK_MSG (ncr_parse_size ("17179869184G", UINT64_MAX, &v) == -ERANGE, "2^64 bytes overflows");
  CHECK_MSG (ncr_parse_size ("2G", 1ull << 30, &v) == -ERANGE, "above max after the suffix");
  CHECK_MSG (ncr_parse_size ("1G", 1ull << 30, &v) == 0 && v == 1ull << 30, "max after suffix");
}

int
main (void)
{
  RUN (booleans);
  RUN (numbers);
  RUN (sizes);
  return check_exit ();
}
