/* SPDX-License-Identifier: BSD-3-Clause */
/* Re-encryption of a volume's data under a new data key (DEK), crash-safe, zone by zone, with
 * a progress journal in the zero gaps of the header area (layout and rules: docs/format.md,
 * "Re-encryption"). No nbdkit dependency: I/O goes through callbacks, so the nbdcrypt tool
 * (file, block device, NBD) and a filter (through the plugin below) can both drive it. The
 * caller keeps the sectors of a zone away from other writers while reencrypt_zone runs, and
 * calls the functions on one state from one thread at a time. */
#ifndef NBDCRYPT_REENCRYPT_H
#define NBDCRYPT_REENCRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "volume.h"

/* Journal records: two, alternating, each up to 504 KiB, in the zeros below data_offset. */
#define RJ_REC0_OFFSET     (8u * 1024)
#define RJ_REC1_OFFSET     (520u * 1024)
#define RJ_REC_MAX         (504u * 1024)
#define RJ_HEAD_SIZE       4096u
#define RJ_HASH_LEN        8u
#define RJ_MAX_ZONE_SECTORS ((RJ_REC_MAX - RJ_HEAD_SIZE) / RJ_HASH_LEN)   /* 64000 */
#define RJ_DEFAULT_ZONE_BYTES (64u * 1024 * 1024)
/* Online runs: the header that ends the run, staged by the command for the server (one
 * 4096-byte area between copy A and record 0). */
#define RJ_FINAL_OFFSET    4096u

/* Write exactly count bytes at offset / make every completed write durable (fdatasync, NBD
 * flush). 0 or -errno with ncr_error set. */
typedef int (*volume_write_fn) (void *opaque, const void *buf, size_t count, uint64_t offset);
typedef int (*volume_flush_fn) (void *opaque);

struct reencrypt_io {
  volume_read_fn read;
  volume_write_fn write;
  volume_flush_fn flush;
  void *opaque;
};

struct reencrypt_state;

/* Wrap / unwrap the next DEK of a flagged header: AES-KWP (RFC 5649) under
 * HKDF-SHA256(IKM = current DEK, info "nbdcrypt reencrypt next-dek v1"). */
int reencrypt_wrap_next_dek (const uint8_t *dek, size_t dek_len, const uint8_t *next,
                             uint8_t out[VH_MAX_NEXT_DEK], uint32_t *out_len);
int reencrypt_unwrap_next_dek (const uint8_t *dek, size_t dek_len, const uint8_t *wrapped,
                               size_t wrapped_len, uint8_t *next, size_t next_len);

/* The header that starts a re-encryption of v: v's header (disk order) with a fresh random
 * next DEK wrapped in it, VH_FLAG_REENCRYPT set (and VH_FLAG_REENCRYPT_ONLINE if online: the
 * server that serves the volume runs it), sealed under the current DEK (which every keyslot
 * still holds). The caller zeroes the journal (reencrypt_clear_journal) and then commits it to
 * both copies; the sequence is the caller's. -EBUSY if v is already flagged. */
int reencrypt_begin_header (const struct volume *v, bool online, struct volume_header *out);

/* Read the journal of flagged volume v and recover where the re-encryption stands: below the
 * newest valid record's zone, every sector is under the new DEK; from its end on, under the
 * old one; inside it, a sector is old iff its ciphertext still hashes to the recorded old
 * hash. That zone is "pending" until reencrypt_zone has re-processed it. zone_bytes: the size
 * of the zones this run writes (rounded down to whole sectors, at most RJ_MAX_ZONE_SECTORS
 * sectors; 0: RJ_DEFAULT_ZONE_BYTES). io must stay valid until reencrypt_state_free. */
int reencrypt_open_state (const struct volume *v, uint64_t target_size,
                          const struct reencrypt_io *io, uint64_t zone_bytes,
                          struct reencrypt_state **out);

/* Hash and re-encrypt each zone in n = 2 threads (the calling one and a helper per zone:
 * offline, where the CPU work is on the critical path); default 1. 0 or -errno. */
int reencrypt_set_threads (struct reencrypt_state *s, unsigned n);

/* Re-encrypt the next zone: the pending zone (sector by sector, by the hash rule), else the
 * zone_bytes at the watermark (old ciphertext read, hashed, re-encrypted in memory; the
 * previous zone's data flushed; journal record written to the other slot, flushed; new
 * ciphertext written). The new ciphertext's flush is deferred to the next call, so that its
 * write-back overlaps the next zone's reading and hashing: call until it returns 1 (every
 * sector done and flushed). 0 and the watermark moved, or -errno (the journal still tells a
 * later run where to resume). */
int reencrypt_zone (struct reencrypt_state *s);

/* Online path: is data sector `sector` under the new DEK? True below the watermark. Valid
 * only while no zone is pending (a pending zone's sectors need the hash rule: process it with
 * reencrypt_zone first). */
bool reencrypt_sector_is_new (const struct reencrypt_state *s, uint64_t sector);

/* Progress: sectors done (the watermark) and data sectors in all; is a zone pending? */
uint64_t reencrypt_done_sectors (const struct reencrypt_state *s);
uint64_t reencrypt_total_sectors (const struct reencrypt_state *s);
bool reencrypt_pending (const struct reencrypt_state *s);
unsigned reencrypt_zone_sectors (const struct reencrypt_state *s);

void reencrypt_state_free (struct reencrypt_state *s);

/* Without a key (nbdcrypt dump): the zone start of the newest record whose magic, UUID and
 * sector size match header h, as an unauthenticated progress figure. 0 if none. */
int reencrypt_peek_progress (volume_read_fn rd, void *opaque, const struct volume_header *h,
                             uint64_t *done_sectors);

/* The header that ends a re-encryption: v's header (disk order) with the next DEK wrapped
 * under every keyslot a provider in kps[0..n) can wrap (slot v->used_slot through kps[0]; a
 * KMS slot through a KMS provider; a KEK file slot through the KEK file with that
 * fingerprint), the other slots removed and listed in `removed` (a line per slot, for the
 * operator), the flag and next DEK cleared, sealed under the next DEK. Sequence: the
 * caller's. -errno if a slot the providers cover cannot be wrapped. */
int reencrypt_finish_header (const struct volume *v, struct keyprov *const *kps, size_t n,
                             struct volume_header *out, char *removed, size_t removed_size);

/* Zero both journal records and the staged final header, flushed: at the start of a run, and
 * after the finished header is on both copies. */
int reencrypt_clear_journal (const struct reencrypt_io *io);

/* Online runs. The command (which has the KEKs) stages the header that ends the run, made by
 * reencrypt_finish_header, at RJ_FINAL_OFFSET; the server (which has only the DEKs) commits it
 * when the data is done. v: the flagged volume, with next_dek. 0 or -errno. */
int reencrypt_stage_final (const struct volume *v, const struct volume_header *final,
                           const struct reencrypt_io *io);

/* Read the staged final header and check it ends v's run: a valid header of the same volume
 * (UUID, cipher, sector size, data offset), not flagged, whose MAC checks under v's next DEK.
 * 0, -ENOENT (none staged) or -EINVAL/-EKEYREJECTED with a message. */
int reencrypt_read_final (const struct volume *v, const struct reencrypt_io *io,
                          struct volume_header *out);

/* The server's end of an online run, once every sector is done: the staged final header
 * written to both copies (sequence above both; the copy other than `newest` first, each
 * flushed), then the journal cleared. target_size: for re-reading the copies. out: the header
 * committed (copy B's index). 0 or -errno. */
int reencrypt_commit_final (const struct volume *v, const struct reencrypt_io *io,
                            uint64_t target_size, struct volume_header *out);

/* Complete an end interrupted between its two copy writes: if the newest copy of hs is an
 * unflagged header of v's volume (its MAC checking under key) and the other copy is still
 * flagged, write the newest one over it and clear the journal. 1 if it did, 0 if nothing was
 * to do, -errno. */
int reencrypt_complete_end (const struct volume_headers *hs, const uint8_t *key, size_t key_len,
                            const struct reencrypt_io *io);

/* After a run, the journal area is zero again: the end clears it once the final header is on
 * both copies. An end interrupted between the two (a crash, a kill) leaves the records and,
 * after an online run, the staged final header, which holds the DEK wrapped under the KEKs of
 * that moment: a later rewrap or remove-kek would leave a wrapped DEK behind under a KEK that
 * no keyslot holds any more. */

/* Whether the journal area holds anything (a record head, or the staged header area, not
 * zero): 1 or 0 (reads 12 KiB), -errno. */
int reencrypt_journal_used (const struct reencrypt_io *io);

/* Clear what an interrupted end left, if both header copies of hs are unflagged (or one is
 * damaged) and the newest is sealed under key: the records, and the staged final header if
 * it checks under key (its run is committed). A header staged for a run not handed over yet
 * (sealed under another key: the command writes it before the flagged header) is left alone.
 * 1 if it cleared something, 0 if there was nothing to clear, -errno. */
int reencrypt_clear_stale (const struct volume_headers *hs, const uint8_t *key, size_t key_len,
                           const struct reencrypt_io *io);

#endif /* NBDCRYPT_REENCRYPT_H */
