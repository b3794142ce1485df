/* SPDX-License-Identifier: BSD-3-Clause */
/* Compiler attributes used across the tree. */
#ifndef NBDCRYPT_ATTRIBUTES_H
#define NBDCRYPT_ATTRIBUTES_H

/* A parameter a callback signature imposes but this implementation does not need. */
#define UNUSED __attribute__ ((unused))

#endif /* NBDCRYPT_ATTRIBUTES_H */
