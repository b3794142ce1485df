/* SPDX-License-Identifier: BSD-3-Clause */
/* MIN and MAX that evaluate each argument once (and warn on mixed signedness). */
#ifndef NBDCRYPT_MINMAX_H
#define NBDCRYPT_MINMAX_H

#undef MIN
#undef MAX
#define MINMAX_CAT_(a, b) a##b
#define MINMAX_CAT(a, b) MINMAX_CAT_ (a, b)
#define MINMAX_(op, a, b, n) ({                                         \
      __auto_type MINMAX_CAT (minmax_a_, n) = (a);                      \
      __auto_type MINMAX_CAT (minmax_b_, n) = (b);                      \
      MINMAX_CAT (minmax_a_, n) op MINMAX_CAT (minmax_b_, n) ?          \
        MINMAX_CAT (minmax_a_, n) : MINMAX_CAT (minmax_b_, n); })
#define MIN(a, b) MINMAX_ (<, a, b, __COUNTER__)
#define MAX(a, b) MINMAX_ (>, a, b, __COUNTER__)

#endif /* NBDCRYPT_MINMAX_H */
