/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdcrypt reencrypt: replace a volume's data key (DEK) and re-encrypt every data sector under
 * the new one, offline, crash-safe (lib/volume/reencrypt.h): start, or resume an interrupted
 * run. The header first gets the new DEK (wrapped under the old one) and a flag; a journal
 * record per zone lets a run killed at any instant be resumed; the end writes a header with
 * only the new DEK, wrapped under the keyslots whose KEKs were given. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "errors.h"
#include "parse.h"
#include "reencrypt.h"
#include "secmem.h"
#include "timeutil.h"
#include "volume-common.h"
#include "volume.h"

static const char *cmd = "reencrypt";

static void
usage (FILE *fp)
{
  fprintf (fp,
"usage: nbdcrypt reencrypt TARGET KEY [--zone-size BYTES] [--take-over]\n"
"       nbdcrypt reencrypt TARGET KEY --online [--no-wait]\n"
"KEY: --kms-config FILE (KEK in a KMS) and/or --kek-file PATH (local KEK): the volume opens\n"
"  with one of them; at the end, the new data key is wrapped under every keyslot whose KEK\n"
"  is given (a KMS slot: --kms-config; a KEK file slot: that --kek-file). The other slots\n"
"  are removed (add them back with 'nbdcrypt add-kek').\n"
"Replaces the volume's data key and re-encrypts all data under the new one; offline (no\n"
"server may use the volume meanwhile). Killed or failed, run it again: it resumes.\n"
"  --zone-size BYTES   data re-encrypted per journal record (K, M, G suffixes; default\n"
"                      64M, at most 64000 sectors)\n"
"  --take-over         finish offline a run started with --online (no server may use\n"
"                      the volume any more)\n"
"  --online            the server that serves the volume (nbdkit with the nbdcrypt\n"
"                      filter) re-encrypts it while clients go on: hand the run over,\n"
"                      show progress and wait until the server has finished\n"
"  --no-wait           with --online: return once the run is handed over\n");
}

/* The tool's I/O for the engine: the target, plus (test build only) hooks that slow data
 * writes down or end the process in the middle of one. */
struct tool_io {
  struct volume_target *t;
  uint64_t data_offset;
  unsigned delay_ms;            /* NBDCRYPT_TEST_REENCRYPT_DELAY_MS */
  uint64_t crash_after;         /* NBDCRYPT_TEST_REENCRYPT_CRASH_AFTER: data bytes, 0 = off */
  uint64_t written;             /* data bytes written so far */
};

/* Zones go to the target in pieces of at most this: NBD servers cap a request (qemu-nbd at
 * 32 MiB), and smaller pieces start the write-back sooner. */
enum { IO_PIECE = 16 * 1024 * 1024 };

static int
io_read (void *opaque, void *buf, size_t count, uint64_t offset)
{
  struct tool_io *io = opaque;
  int r = 0;

  for (size_t done = 0; done < count && r == 0; done += IO_PIECE)
    r = target_pread (io->t, (uint8_t *) buf + done,
                      count - done < IO_PIECE ? count - done : IO_PIECE, offset + done);
  return r;
}

static int
io_flush (void *opaque)
{
  struct tool_io *io = opaque;
  return target_flush (io->t);
}

static int
io_write (void *opaque, const void *buf, size_t count, uint64_t offset)
{
  struct tool_io *io = opaque;
  const uint8_t *p = buf;
  const size_t piece = 128 * 1024;
  int r = 0;

  if (offset < io->data_offset)
    return target_pwrite (io->t, buf, count, offset);
  if (io->delay_ms == 0 && io->crash_after == 0) {
    /* The engine flushes this zone after reading and hashing the next one: start the
     * write-back of each piece at once, so that the two overlap. */
    for (size_t done = 0; done < count && r == 0; done += IO_PIECE) {
      size_t n = count - done < IO_PIECE ? count - done : IO_PIECE;
      r = target_pwrite (io->t, p + done, n, offset + done);
      if (r == 0)
        target_start_writeback (io->t, offset + done, n);
    }
    return r;
  }
  /* Test hooks: a data write in flushed pieces, a delay after each, or an exit in the middle
   * (a crash with part of a zone written). */
  for (size_t done = 0; done < count && r == 0;) {
    size_t n = count - done < piece ? count - done : piece;
    if (io->crash_after && io->written + n >= io->crash_after) {
      n = (size_t) (io->crash_after - io->written);
      if (n)
        r = target_pwrite (io->t, p + done, n, offset + done);
      if (r == 0)
        r = target_flush (io->t);
      fprintf (stderr, "nbdcrypt reencrypt: test hook: exiting after %llu data bytes\n",
               (unsigned long long) io->crash_after);
      _exit (99);
    }
    r = target_pwrite (io->t, p + done, n, offset + done);
    if (r == 0 && io->delay_ms) {
      r = target_flush (io->t);
      ncr_sleep_ms (io->delay_ms);
    }
    done += n;
    io->written += n;
  }
  return r;
}

static void
test_hooks (struct tool_io *io)
{
#ifdef NBDCRYPT_TEST_HOOKS
  const char *d = getenv ("NBDCRYPT_TEST_REENCRYPT_DELAY_MS");
  const char *c = getenv ("NBDCRYPT_TEST_REENCRYPT_CRASH_AFTER");
  uint64_t v;

  if (d && ncr_parse_uint (d, 10000, &v) == 0)
    io->delay_ms = (unsigned) v;
  if (c && ncr_parse_uint (c, UINT64_MAX, &v) == 0)
    io->crash_after = v;
#else
  (void) io;
#endif
}

/* Open the volume: t, hs, v; kps[0] the provider that opened it, kps[1] the other one given. */
static int
open_volume (const char *kms_config, const char *kek_file,
             struct volume_target *t, struct volume_headers *hs, struct keyprov *kps[2],
             struct volume **v)
{
  int r;

  volume_free (*v);
  *v = NULL;
  if ((r = volume_read_headers (target_read_cb, t, target_size (t), hs)) < 0)
    return r;
  if (kps[0] == NULL) {
    if ((r = tool_provider_for_header (cmd, &hs->copy[hs->newest], kms_config, kek_file,
                                       &kps[0])) < 0)
      return r;
    if (kms_config && kek_file &&
        (r = tool_open_provider (cmd, keyprov_kind (kps[0]) == KEYPROV_KMIP ? NULL : kms_config,
                                 keyprov_kind (kps[0]) == KEYPROV_KMIP ? kek_file : NULL,
                                 &kps[1])) < 0)
      return r;
  }
  r = volume_open (target_read_cb, t, target_size (t), kps[0], 0, v);
  if (r < 0 && kps[1] &&
      (r = volume_open (target_read_cb, t, target_size (t), kps[1], 0, v)) == 0) {
    struct keyprov *k = kps[0];
    kps[0] = kps[1];
    kps[1] = k;
  }
  return r;
}

/* One progress line: sectors done and the rate since this run started. */
static void
progress (const char *target, struct reencrypt_state *st, unsigned ss, uint64_t t0,
          uint64_t done0)
{
  uint64_t done = reencrypt_done_sectors (st), total = reencrypt_total_sectors (st);
  uint64_t ms = ncr_now_ms () - t0;

  fprintf (stderr, "nbdcrypt reencrypt: %s: %llu of %llu sectors (%.1f%%), %.1f MB/s\n",
           target, (unsigned long long) done, (unsigned long long) total,
           total ? 100.0 * (double) done / (double) total : 100.0,
           ms ? (double) ((done - done0) * ss) / 1e3 / (double) ms : 0.0);
}

/* Online: the server has ended the run when the newest copy is unflagged and sealed under
 * the next DEK. 1 ended, 0 not yet (progress in *done), -errno. */
static int
online_state (struct volume_target *t, const struct volume *v, uint64_t *done)
{
  struct volume_headers hs;
  const struct volume_header *h;
  int r;

  if ((r = volume_read_headers (target_read_cb, t, target_size (t), &hs)) < 0)
    return r;
  h = &hs.copy[hs.newest];
  if (memcmp (h->uuid, v->hdr.uuid, VH_UUID_LEN) != 0)
    return ncr_error (EINVAL, "the target now holds another volume");
  if (h->flags & VH_FLAG_REENCRYPT) {
    r = reencrypt_peek_progress (target_read_cb, t, h, done);
    return r < 0 ? r : 0;
  }
  if (volume_header_check_key (v->next_dek, v->dek_len, h) < 0)
    return ncr_error (EKEYREJECTED, "the run ended, but not with this run's data key: another "
                      "re-encryption or header restore happened meanwhile");
  return 1;
}

/* Online: show progress until the server has finished. */
static int
online_wait (const char *target, struct volume_target *t, const struct volume *v)
{
  uint64_t total = (target_size (t) - v->hdr.data_offset) / v->hdr.sector_size;
  uint64_t t0 = ncr_now_ms (), last = 0, done = 0, shown = UINT64_MAX;
  bool told = false;
  int r;

  while ((r = online_state (t, v, &done)) == 0) {
    uint64_t now = ncr_now_ms ();
    if (done != shown && now - last >= 1000) {
      fprintf (stderr, "nbdcrypt reencrypt: %s: %llu of %llu sectors (%.1f%%), online\n",
               target, (unsigned long long) done, (unsigned long long) total,
               total ? 100.0 * (double) done / (double) total : 100.0);
      shown = done;
      last = now;
    }
    if (!told && done == 0 && now - t0 >= 10000) {
      fprintf (stderr, "nbdcrypt reencrypt: %s: no server has started the run yet; it "
               "starts within reencrypt-poll-interval= seconds of nbdkit serving the volume "
               "(Ctrl-C leaves it to the server)\n", target);
      told = true;
    }
    ncr_sleep_ms (250);
  }
  if (r < 0)
    return r;
  uint64_t ms = ncr_now_ms () - t0;
  printf ("re-encrypted %s online: %llu sectors of %u bytes in %.2f s, new data key\n", target,
          (unsigned long long) total, v->hdr.sector_size, (double) ms / 1000.0);
  return 0;
}

/* Online: stage the header that ends the run (the next DEK wrapped under the KEKs given here)
 * for the server, which holds no KEK. start: the flagged header about to be committed - the
 * end is staged before it, so that a run a server can see always has its end, wherever this
 * command is killed; NULL: v is flagged already (a run handed over before: staged again). */
static int
stage_end (const struct volume *v, const struct volume_header *start, struct keyprov *kps[2],
           const struct reencrypt_io *io, char *removed, size_t removed_size)
{
  struct volume tmp = *v;
  struct volume_header end;
  int r = 0;

  if (start) {
    tmp.hdr.flags = start->flags;
    tmp.hdr.next_dek_len = start->next_dek_len;
    memcpy (tmp.hdr.next_dek, start->next_dek, sizeof tmp.hdr.next_dek);
    if ((tmp.next_dek = secmem_alloc (v->dek_len)) == NULL)
      return ncr_error (ENOMEM, "out of locked memory");
    r = reencrypt_unwrap_next_dek (v->dek, v->dek_len, start->next_dek, start->next_dek_len,
                                   tmp.next_dek, v->dek_len);
  }
  if (r == 0 && (r = reencrypt_finish_header (&tmp, kps, 2, &end, removed, removed_size)) == 0)
    r = reencrypt_stage_final (&tmp, &end, io);
  if (start)
    secmem_free (tmp.next_dek);
  explicit_bzero (&end, sizeof end);
  explicit_bzero (&tmp, sizeof tmp);    /* a copy: v keeps its keys */
  return r;
}

static void
warn_removed (const char *target, char *removed)
{
  char *line = removed;

  if (!removed[0])
    return;
  for (char *nl; line; line = nl) {
    if ((nl = strchr (line, '\n')) != NULL)
      *nl++ = '\0';
    tool_warn (cmd, "removed the keyslot of %s: its KEK was not given, so it could not "
               "wrap the new data key; add it back with 'nbdcrypt add-kek %s KEY "
               "--new-kek-id UID' (KMS) or '--new-kek-file PATH' (KEK file)", line, target);
  }
}

int
cmd_reencrypt (int argc, char **argv)
{
  enum { O_KMS = 256, O_KEK_FILE, O_ZONE, O_ONLINE, O_NO_WAIT, O_TAKE_OVER };
  static const struct option opts[] = {
    TOOL_KEY_OPTIONS,
    { "zone-size", required_argument, NULL, O_ZONE },
    { "online", no_argument, NULL, O_ONLINE },
    { "no-wait", no_argument, NULL, O_NO_WAIT },
    { "take-over", no_argument, NULL, O_TAKE_OVER },
    TOOL_END_OPTIONS,
  };
  const char *kms_config = NULL, *kek_file = NULL, *target;
  struct volume_target *t = NULL;
  struct keyprov *kps[2] = { NULL, NULL };
  struct volume *v = NULL;
  struct reencrypt_state *st = NULL;
  struct volume_headers hs;
  struct volume_header nh;
  struct tool_io tio = { 0 };
  struct reencrypt_io io = { io_read, io_write, io_flush, &tio };
  uint64_t zone = RJ_DEFAULT_ZONE_BYTES, t0, last, done0, ms;
  char removed[1200];
  bool started = false, online = false, no_wait = false, take_over = false;
  int c, r, status = 1;

  while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_KMS: kms_config = optarg; break;
    case O_KEK_FILE: kek_file = optarg; break;
    case O_ZONE:
      if (ncr_parse_size (optarg, 1ull << 30, &zone) < 0 || zone < 512) {
        tool_err (cmd, "--zone-size must be a size from 512 bytes to 1G (K, M, G suffixes), "
                  "not '%s'", optarg);
        return 2;
      }
      break;
    case O_ONLINE: online = true; break;
    case O_NO_WAIT: no_wait = true; break;
    case O_TAKE_OVER: take_over = true; break;
    case 'h': usage (stdout); return 0;
    default: usage (stderr); return 2;
    }
  }
  if (optind != argc - 1)
    return tool_usage_error (usage);
  if ((no_wait && !online) || (online && take_over)) {
    tool_err (cmd, "%s", no_wait ? "--no-wait goes with --online" :
              "--take-over finishes an online run offline: not with --online");
    return 2;
  }
  target = argv[optind];
  if (secmem_protect_process (false) < 0 ||
      target_open (target, true, &t) < 0 ||
      open_volume (kms_config, kek_file, t, &hs, kps, &v) < 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  tio.t = t;
  tio.data_offset = v->hdr.data_offset;
  test_hooks (&tio);

  /* The newest copy unflagged, the other still flagged: a run killed after the first copy of
   * the final header was written; only the second copy and the journal's zeroing are
   * missing. */
  if ((r = reencrypt_complete_end (&hs, v->dek, v->dek_len, &io)) != 0) {
    if (r < 0) {
      tool_err (cmd, "%s", ncr_last_error ());
      goto out;
    }
    printf ("re-encrypted %s: finished an interrupted run (header sequence %llu)\n", target,
            (unsigned long long) hs.copy[hs.newest].sequence + 1);
    status = 0;
    goto out;
  }
  if (v->warning[0])
    tool_warn (cmd, "%s", v->warning);
  if ((v->hdr.flags & VH_FLAGS_REENCRYPT) == VH_FLAGS_REENCRYPT && !online && !take_over) {
    tool_err (cmd, "the server that serves this volume is re-encrypting it (a run started "
              "with --online): follow it with 'nbdcrypt reencrypt --online %s KEY'; if no "
              "server serves the volume any more, finish it here with --take-over", target);
    goto out;
  }
  if ((v->hdr.flags & VH_FLAGS_REENCRYPT) == VH_FLAG_REENCRYPT && online) {
    tool_err (cmd, "an offline re-encryption of this volume is in progress: finish it with "
              "'nbdcrypt reencrypt %s KEY' while no server uses the volume", target);
    goto out;
  }
  if (!(v->hdr.flags & VH_FLAG_REENCRYPT)) {
    /* Start: a journal without records, then the flagged header on both copies. */
    if (reencrypt_clear_journal (&io) < 0 || reencrypt_begin_header (v, online, &nh) < 0 ||
        (online && stage_end (v, &nh, kps, &io, removed, sizeof removed) < 0) ||
        tool_commit_header (t, &hs, v, &nh) < 0 ||
        open_volume (kms_config, kek_file, t, &hs, kps, &v) < 0) {
      tool_err (cmd, "%s", ncr_last_error ());
      goto out;
    }
    if (!(v->hdr.flags & VH_FLAG_REENCRYPT)) {
      tool_err (cmd, "the header written to start the re-encryption did not open");
      goto out;
    }
    started = true;
  }
  if (online) {
    /* Following a run handed over before: its end staged again (the same keyslots, if the
     * same KEKs are given). */
    if (!started && stage_end (v, NULL, kps, &io, removed, sizeof removed) < 0) {
      tool_err (cmd, "%s", ncr_last_error ());
      goto out;
    }
    warn_removed (target, removed);
    if (no_wait) {
      printf ("handed over %s: the server that serves it re-encrypts it in the background "
              "('nbdcrypt dump %s' shows the progress)\n", target, target);
      status = 0;
      goto out;
    }
    if (online_wait (target, t, v) < 0) {
      tool_err (cmd, "%s", ncr_last_error ());
      goto out;
    }
    status = 0;
    goto out;
  }
  if (reencrypt_open_state (v, target_size (t), &io, zone, &st) < 0 ||
      (sysconf (_SC_NPROCESSORS_ONLN) > 1 && reencrypt_set_threads (st, 2) < 0)) {
    tool_err (cmd, "%s", ncr_last_error ());
    goto out;
  }
  done0 = reencrypt_done_sectors (st);
  fprintf (stderr, "nbdcrypt reencrypt: %s: %s at sector %llu of %llu (zones of %u sectors "
           "of %u bytes)\n", target, started ? "starting" : "resuming",
           (unsigned long long) done0, (unsigned long long) reencrypt_total_sectors (st),
           reencrypt_zone_sectors (st), v->hdr.sector_size);
  t0 = last = ncr_now_ms ();
  while ((r = reencrypt_zone (st)) == 0) {
    if (ncr_now_ms () - last >= 1000) {
      last = ncr_now_ms ();
      progress (target, st, v->hdr.sector_size, t0, done0);
    }
  }
  if (r < 0) {
    tool_err (cmd, "%s (run 'nbdcrypt reencrypt' again to resume)", ncr_last_error ());
    goto out;
  }
  ms = ncr_now_ms () - t0;

  /* The end: the new DEK alone, under the KEKs given; then the journal zeroed. */
  if (reencrypt_finish_header (v, kps, 2, &nh, removed, sizeof removed) < 0 ||
      volume_read_headers (target_read_cb, t, target_size (t), &hs) < 0 ||
      tool_commit_header (t, &hs, v, &nh) < 0 || reencrypt_clear_journal (&io) < 0) {
    tool_err (cmd, "%s (run 'nbdcrypt reencrypt' again to finish)", ncr_last_error ());
    goto out;
  }
  {
    uint64_t bytes = (reencrypt_total_sectors (st) - done0) * v->hdr.sector_size;
    printf ("re-encrypted %s: %llu bytes in %.2f s (%.1f MB/s), new data key, %u keyslot%s, "
            "header sequence %llu\n", target, (unsigned long long) bytes,
            (double) ms / 1000.0, ms ? (double) bytes / 1e3 / (double) ms : 0.0,
            volume_header_slots (&nh), nh.n_extra ? "s" : "",
            (unsigned long long) nh.sequence);
  }
  warn_removed (target, removed);
  status = 0;
 out:
  reencrypt_state_free (st);
  volume_free (v);
  keyprov_free (kps[0]);
  keyprov_free (kps[1]);
  if (t && target_close (t) < 0 && status == 0) {
    tool_err (cmd, "%s", ncr_last_error ());
    status = 1;
  }
  return status;
}
