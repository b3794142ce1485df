#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Independent oracle for the nbdcrypt filter tests: python3-cryptography's AES-XTS (not our
# engine, not nbdkit) says what each ciphertext sector in the backing file must be.
#
#   oracle.py check KEYFILE CIPHER SECTOR_SIZE BACKING PLAINTEXT [DATA_OFFSET]
#       every sector n of PLAINTEXT, encrypted with tweak n (128-bit little endian, dm-crypt
#       plain64), must equal the backing file at DATA_OFFSET + n * SECTOR_SIZE; bytes of the
#       backing file past the last whole sector must be zero (never touched).
#   oracle.py write-random URI PLAINTEXT COUNT SEED
#       COUNT writes of random data at random offsets and lengths (aligned or not, 1 byte to
#       three sectors) through NBD (libnbd), mirrored into the PLAINTEXT model file.
import random
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def xts_encrypt(key, sector, data):
    tweak = sector.to_bytes(16, "little")
    enc = Cipher(algorithms.AES(key), modes.XTS(tweak)).encryptor()
    return enc.update(data) + enc.finalize()


def check(keyfile, cipher, ss, backing, plaintext, data_offset=0):
    key = open(keyfile, "rb").read()
    want_len = {"aes-256-xts": 64, "aes-128-xts": 32}[cipher]
    assert len(key) == want_len, f"key is {len(key)} bytes, {cipher} needs {want_len}"
    plain = open(plaintext, "rb").read()
    disk = open(backing, "rb").read()
    assert len(plain) % ss == 0, "plaintext model is not whole sectors"
    nsect = len(plain) // ss
    bad = 0
    for n in range(nsect):
        p = plain[n * ss:(n + 1) * ss]
        want = xts_encrypt(key, n, p)
        got = disk[data_offset + n * ss:data_offset + (n + 1) * ss]
        if got != want:
            bad += 1
            if bad <= 5:
                i = next((i for i in range(ss) if i >= len(got) or got[i] != want[i]), -1)
                print(f"oracle: sector {n}: ciphertext differs from python3-cryptography "
                      f"XTS (first at byte {i}): got {got[i:i+16].hex()} "
                      f"want {want[i:i+16].hex()}", file=sys.stderr)
        elif p != bytes(ss) and got == p:
            bad += 1
            print(f"oracle: sector {n} holds plaintext", file=sys.stderr)
    rest = disk[data_offset + nsect * ss:]
    if rest.strip(b"\0"):
        print(f"oracle: {len(rest)} bytes past the export were modified", file=sys.stderr)
        bad += 1
    if bad:
        print(f"oracle: FAIL: {bad} of {nsect} {ss}-byte sectors wrong ({cipher})",
              file=sys.stderr)
        sys.exit(1)
    print(f"oracle: {nsect} {ss}-byte sectors match python3-cryptography {cipher}")


def write_random(uri, plaintext, count, seed):
    import nbd
    rng = random.Random(seed)
    model = bytearray(open(plaintext, "rb").read())
    h = nbd.NBD()
    h.connect_uri(uri)
    size = h.get_size()
    assert size == len(model), f"export is {size} bytes, model {len(model)}"
    for _ in range(count):
        length = rng.randint(1, min(3 * 4096, size))
        offset = rng.randint(0, size - length)
        if rng.random() < 0.3:              # some whole-sector writes too
            offset -= offset % 512
        data = rng.randbytes(length)
        h.pwrite(data, offset)
        model[offset:offset + length] = data
    # Every byte reads back as the model says, through the filter.
    got = h.pread(size, 0) if size <= 32 << 20 else None
    h.shutdown()
    if got is not None and got != bytes(model):
        i = next(i for i in range(size) if got[i] != model[i])
        print(f"oracle: read-back differs from the model at byte {i}", file=sys.stderr)
        sys.exit(1)
    open(plaintext, "wb").write(model)
    print(f"oracle: {count} random writes applied and read back")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "check" and len(sys.argv) in (7, 8):
        check(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6],
              int(sys.argv[7]) if len(sys.argv) == 8 else 0)
    elif cmd == "write-random" and len(sys.argv) == 6:
        write_random(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        print(__doc__ or "see the header of oracle.py", file=sys.stderr)
        sys.exit(2)
