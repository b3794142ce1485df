/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt filter: SCAFFOLD, replaced by the real implementation. */
#include <nbdkit-filter.h>

static struct nbdkit_filter filter = {
  .name = "nbdcrypt",
  .longname = "nbdcrypt inline AES-XTS encryption filter",
};

NBDKIT_REGISTER_FILTER (filter)
