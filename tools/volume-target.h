/* SPDX-License-Identifier: BSD-3-Clause */
/* The TARGET of format/dump/rewrap/verify: a regular file, a block device, or an NBD URI
 * (through libnbd, so any storage an nbdkit plugin reaches can be formatted). */
#ifndef NBDCRYPT_VOLUME_TARGET_H
#define NBDCRYPT_VOLUME_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct volume_target;

/* Open name read-only or read-write. Returns 0 or -errno with ncr_last_error() set. */
int target_open (const char *name, bool writable, struct volume_target **out);
uint64_t target_size (const struct volume_target *t);
const char *target_name (const struct volume_target *t);
/* Exactly count bytes at offset. Returns 0 or -errno. */
int target_pread (struct volume_target *t, void *buf, size_t count, uint64_t offset);
int target_pwrite (struct volume_target *t, const void *buf, size_t count, uint64_t offset);
/* Start writing back [offset, offset+count) without waiting (a file or block device:
 * sync_file_range; an NBD target: nothing). A hint: target_flush still makes it durable. */
void target_start_writeback (struct volume_target *t, uint64_t offset, size_t count);
/* Durable: fdatasync / NBD flush. */
int target_flush (struct volume_target *t);
/* Close; returns the first error of a final flush for writable targets. */
int target_close (struct volume_target *t);

/* Adapter for volume_open()/volume_read_headers(): opaque is a struct volume_target *. */
int target_read_cb (void *opaque, void *buf, size_t count, uint64_t offset);
/* And for the re-encryption engine's struct reencrypt_io. */
int target_write_cb (void *opaque, const void *buf, size_t count, uint64_t offset);
int target_flush_cb (void *opaque);

#endif /* NBDCRYPT_VOLUME_TARGET_H */
