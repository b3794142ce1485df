/* SPDX-License-Identifier: BSD-3-Clause */
/* The C tests' one set of checks, skip code and runner (see tests/README.md).
 *
 * A test file is a list of claims: each claim a `static void test_NAME (void)` that checks
 * with the macros below, and main() a list of RUN (test_NAME) ending in `return check_exit ();`.
 * A failed check prints file:line, the expression, got/want where it knows them (hex for byte
 * buffers) and, if the file defines CHECK_LAST_ERROR before including this header (e.g.
 * `#define CHECK_LAST_ERROR ncr_last_error`), the library's last error; then the test goes on,
 * so one run shows every failure. Counters are atomic: checks may run in any thread.
 *
 *   CHECK (cond)                        CHECK_MSG (cond, fmt, ...)
 *   REQUIRE (cond)                      a CHECK whose failure ends the program (exit 1): later
 *                                       checks would be meaningless
 *   FAIL (fmt, ...)                     a failure found by the test's own logic
 *   CHECK_INT_EQ (got, want)            integers, printed in decimal and hex
 *   CHECK_STR_EQ (got, want)            CHECK_STR_CONTAINS (s, part)    (NULL-safe)
 *   CHECK_MEM_EQ (got, want, n)         CHECK_BYTES_EQ (what, got, glen, want, wlen)
 *   SKIP (fmt, ...)                     exit 77 (meson: skipped): only when a tool or a
 *                                       kernel feature the test needs is truly missing
 *
 * Every CHECK-style macro is an expression giving whether the check passed, so a test can
 * stop early: `if (!CHECK (fd >= 0)) return;`. */
#ifndef NBDCRYPT_TESTS_CHECK_H
#define NBDCRYPT_TESTS_CHECK_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_SKIP_EXIT 77

static _Atomic unsigned check_failures, check_count;
static const char *check_test_name = "main";

/* The library's last error, printed with a failure, if the test says where to find it. */
static inline const char *
check_last_error (void)
{
#ifdef CHECK_LAST_ERROR
  return CHECK_LAST_ERROR ();
#else
  return NULL;
#endif
}

/* The failure line's head: "file:line: FAIL (test_name): what". */
static inline void
check_fail_head (const char *file, int line, const char *what)
{
  fprintf (stderr, "%s:%d: FAIL (%s): %s", file, line, check_test_name, what);
}

static inline void
check_fail_tail (void)
{
  const char *e = check_last_error ();

  if (e && *e)
    fprintf (stderr, " (last error: %s)", e);
  fputc ('\n', stderr);
  check_failures++;
}

static inline bool
check_at (bool ok, const char *file, int line, const char *expr)
{
  check_count++;
  if (!ok) {
    check_fail_head (file, line, expr);
    check_fail_tail ();
  }
  return ok;
}

__attribute__ ((format (printf, 5, 6)))
static inline bool
check_msg_at (bool ok, const char *file, int line, const char *expr, const char *fmt, ...)
{
  va_list ap;

  check_count++;
  if (!ok) {
    check_fail_head (file, line, expr);
    if (*expr)
      fputs (": ", stderr);
    va_start (ap, fmt);
    vfprintf (stderr, fmt, ap);
    va_end (ap);
    check_fail_tail ();
  }
  return ok;
}

static inline bool
check_int_eq_at (bool ok, const char *file, int line, const char *expr,
                 intmax_t got, intmax_t want)
{
  return check_msg_at (ok, file, line, expr, "got %jd (%#jx), want %jd (%#jx)",
                       got, (uintmax_t) got, want, (uintmax_t) want);
}

static inline bool
check_str_at (bool ok, const char *file, int line, const char *expr,
              const char *got, const char *rel, const char *want)
{
  return check_msg_at (ok, file, line, expr, "got \"%s\", want %s \"%s\"",
                       got ? got : "(null)", rel, want ? want : "(null)");
}

static inline void
check_print_hex (const char *label, const void *p, size_t n)
{
  const uint8_t *b = p;

  fprintf (stderr, "  %s (%zu bytes): ", label, n);
  for (size_t i = 0; i < n; i++)
    fprintf (stderr, "%02x", b[i]);
  fputc ('\n', stderr);
}

/* Equal lengths and bytes; on failure both buffers in hex. */
static inline bool
check_bytes_at (const char *file, int line, const char *what,
                const void *got, size_t glen, const void *want, size_t wlen)
{
  bool ok = glen == wlen && (wlen == 0 || memcmp (got, want, wlen) == 0);

  check_count++;
  if (!ok) {
    check_fail_head (file, line, what);
    check_fail_tail ();
    check_print_hex ("got ", got, glen);
    check_print_hex ("want", want, wlen);
  }
  return ok;
}

#define CHECK(cond) check_at (!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_MSG(cond, ...) check_msg_at (!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)
#define REQUIRE(cond) \
  ((void) (CHECK (cond) || (fflush (stdout), exit (1), 0)))
#define FAIL(...) ((void) check_msg_at (false, __FILE__, __LINE__, "", __VA_ARGS__))
#define CHECK_INT_EQ(got, want)                                                        \
  __extension__ ({ intmax_t check_g_ = (intmax_t) (got), check_w_ = (intmax_t) (want); \
      check_int_eq_at (check_g_ == check_w_, __FILE__, __LINE__, #got " == " #want,    \
                       check_g_, check_w_); })
#define CHECK_STR_EQ(got, want)                                                        \
  __extension__ ({ const char *check_g_ = (got), *check_w_ = (want);                   \
      check_str_at (check_g_ && check_w_ && strcmp (check_g_, check_w_) == 0,          \
                    __FILE__, __LINE__, #got " == " #want, check_g_, "", check_w_); })
#define CHECK_STR_CONTAINS(s, part)                                                    \
  __extension__ ({ const char *check_g_ = (s), *check_w_ = (part);                     \
      check_str_at (check_g_ && check_w_ && strstr (check_g_, check_w_) != NULL,       \
                    __FILE__, __LINE__, #s " contains " #part, check_g_, "a string containing", \
                    check_w_); })
#define CHECK_MEM_EQ(got, want, n) \
  check_bytes_at (__FILE__, __LINE__, #got " == " #want, (got), (n), (want), (n))
#define CHECK_BYTES_EQ(what, got, glen, want, wlen) \
  check_bytes_at (__FILE__, __LINE__, (what), (got), (glen), (want), (wlen))

#define SKIP(...) do {                          \
    printf ("SKIP: ");                          \
    printf (__VA_ARGS__);                       \
    printf ("\n");                              \
    exit (CHECK_SKIP_EXIT);                     \
  } while (0)

/* Runs one named test and says how it went. */
static inline void
check_run (const char *name, void (*test) (void))
{
  unsigned before = check_failures;

  check_test_name = name;
  test ();
  printf ("%s: %s\n", name, check_failures == before ? "ok" : "FAILED");
  fflush (stdout);
  check_test_name = "main";
}
#define RUN(test) check_run (#test, test)

/* main's last line: the totals, and the exit status meson reads. */
static inline int
check_exit (void)
{
  printf ("%u checks, %u failures\n", (unsigned) check_count, (unsigned) check_failures);
  return check_failures ? 1 : 0;
}

/* Hex text (known-answer vectors) to bytes; returns the number of bytes written to out. */
static inline size_t
check_unhex (const char *s, uint8_t *out)
{
  size_t n = 0;

  for (; s[0] && s[1]; s += 2)
    sscanf (s, "%2hhx", &out[n++]);
  return n;
}

#endif /* NBDCRYPT_TESTS_CHECK_H */
