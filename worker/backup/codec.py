"""Compression and encryption as streams: bytes in, bytes out, a bounded amount held at any time.

Encryption is AES-256-GCM in frames, so a backup of any size is encrypted and checked piece by piece:

    header:  b"DBOPSGCM" | version (1 byte, 1) | nonce prefix (8 random bytes) | frame size (u32, big endian)
    frame:   final flag (1 byte, 0 or 1) | ciphertext length (u32) | ciphertext with its 16-byte tag

Frame `i` is sealed with the nonce `prefix | i` (u32) and the associated data `header | i | final flag`, so frames
cannot be reordered, dropped, moved between backups, or cut off after the last one (the stream must end with the
one frame marked final, which may be empty). A wrong key fails on the first frame.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Protocol

from worker.errors import PermanentError

MAGIC = b"DBOPSGCM"
FORMAT_VERSION = 1
FRAME_SIZE = 1 << 20
KEY_BYTES = 32
TAG_BYTES = 16
_HEADER = struct.Struct(">8sB8sI")
_FRAME = struct.Struct(">BI")
EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}
# zstd's own compression threads and the input each one takes at a time: one thread doubles the throughput of a
# worker whose other thread reads and stores, for about 4 x ZSTD_JOB_SIZE more memory (measured, docs/benchmarks.md).
ZSTD_THREADS = 1
ZSTD_JOB_SIZE = 4 << 20


class Transform(Protocol):
    def update(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class _Identity:
    def update(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class _Zlib:
    def __init__(self, obj: zlib._Compress | zlib._Decompress, decompress: bool) -> None:
        self._obj = obj
        self._decompress = decompress

    def update(self, data: bytes) -> bytes:
        if self._decompress:
            return self._obj.decompress(data)  # type: ignore[union-attr]
        return self._obj.compress(data)  # type: ignore[union-attr]

    def finish(self) -> bytes:
        if self._decompress:
            out = self._obj.flush()
            if not self._obj.eof:  # type: ignore[union-attr]
                raise PermanentError("CorruptBackup", "the gzip stream ends before its end marker")
            return out
        return self._obj.flush()


class _Zstd:
    def __init__(self, level: int, decompress: bool) -> None:
        import zstandard

        self._decompress = decompress
        if decompress:
            self._d = zstandard.ZstdDecompressor().decompressobj()
        else:
            # libzstd compresses on a thread of its own (one worker, jobs of ZSTD_JOB_SIZE), so the worker's thread
            # reads, checks, hashes and stores while the previous piece is compressed; the output is still one
            # standard zstd frame.
            params = zstandard.ZstdCompressionParameters.from_level(
                level, threads=ZSTD_THREADS, job_size=ZSTD_JOB_SIZE
            )
            self._c = zstandard.ZstdCompressor(compression_params=params).compressobj()

    def update(self, data: bytes) -> bytes:
        return self._d.decompress(data) if self._decompress else self._c.compress(data)

    def finish(self) -> bytes:
        if self._decompress:
            if not self._d.eof:
                raise PermanentError("CorruptBackup", "the zstd stream ends before its end marker")
            return b""
        return self._c.flush()


def compressor(algorithm: str, level: int) -> Transform:
    if algorithm == "zstd":
        return _Zstd(level, decompress=False)
    if algorithm == "gzip":
        return _Zlib(zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS), decompress=False)
    return _Identity()


def decompressor(algorithm: str) -> Transform:
    if algorithm == "zstd":
        return _Zstd(0, decompress=True)
    if algorithm == "gzip":
        return _Zlib(zlib.decompressobj(16 + zlib.MAX_WBITS), decompress=True)
    return _Identity()


def read_key(path: str) -> bytes:
    """The 256-bit key from a mounted Secret file: 32 raw bytes, or 64 hexadecimal digits, or base64 of 32 bytes.
    The message never shows the file's content."""
    import base64
    import binascii

    try:
        with open(path, "rb") as handle:
            raw = handle.read(4096)
    except OSError as exc:
        raise PermanentError(
            "InvalidRequest", f"DBOPS_BACKUP_KEY_FILE: cannot read {path}: {exc.strerror}"
        ) from None
    if len(raw) == KEY_BYTES:
        return raw
    text = raw.strip()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            key = decode(text.decode("ascii"))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            continue
        if len(key) == KEY_BYTES:
            return key
    raise PermanentError(
        "InvalidRequest",
        f"DBOPS_BACKUP_KEY_FILE: {path} does not hold a 256-bit key (32 raw bytes, 64 hex digits or base64 of 32 "
        "bytes); generate one with `openssl rand -base64 32`",
    )


class Encryptor:
    def __init__(self, key: bytes, frame_size: int = FRAME_SIZE) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self._prefix = os.urandom(8)
        self._frame_size = frame_size
        self.header = _HEADER.pack(MAGIC, FORMAT_VERSION, self._prefix, frame_size)
        self._pending = bytearray()
        self._index = 0
        self._started = False

    def _seal(self, plain: bytes, final: bool) -> bytes:
        index = struct.pack(">I", self._index)
        sealed = self._aead.encrypt(self._prefix + index, plain, self.header + index + bytes([final]))
        self._index += 1
        return _FRAME.pack(int(final), len(sealed)) + sealed

    def update(self, data: bytes) -> bytes:
        out = bytearray()
        if not self._started:
            out += self.header
            self._started = True
        self._pending += data
        while len(self._pending) > self._frame_size:
            out += self._seal(bytes(self._pending[: self._frame_size]), final=False)
            del self._pending[: self._frame_size]
        return bytes(out)

    def finish(self) -> bytes:
        out = self.update(b"")
        tail = self._seal(bytes(self._pending), final=True)
        self._pending.clear()
        return out + tail


class Decryptor:
    """The inverse of Encryptor; raises PermanentError on a wrong key, a changed or a truncated stream."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self._buffer = bytearray()
        self._header: bytes | None = None
        self._prefix = b""
        self._frame_size = 0
        self._index = 0
        self._done = False

    def update(self, data: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        self._buffer += data
        out = bytearray()
        if self._header is None:
            if len(self._buffer) < _HEADER.size:
                return b""
            magic, version, prefix, frame_size = _HEADER.unpack_from(self._buffer)
            if magic != MAGIC or version != FORMAT_VERSION or frame_size > 64 * FRAME_SIZE:
                raise PermanentError(
                    "CorruptBackup", "the stored bytes are not a dbops encrypted stream (version 1)"
                )
            self._header = bytes(self._buffer[: _HEADER.size])
            self._prefix, self._frame_size = prefix, frame_size
            del self._buffer[: _HEADER.size]
        while len(self._buffer) >= _FRAME.size:
            final, length = _FRAME.unpack_from(self._buffer)
            if self._done or final > 1 or length > self._frame_size + TAG_BYTES:
                raise PermanentError("CorruptBackup", "the encrypted stream has data after its last frame")
            if len(self._buffer) < _FRAME.size + length:
                break
            sealed = bytes(self._buffer[_FRAME.size : _FRAME.size + length])
            del self._buffer[: _FRAME.size + length]
            index = struct.pack(">I", self._index)
            try:
                out += self._aead.decrypt(self._prefix + index, sealed, self._header + index + bytes([final]))
            except InvalidTag:
                raise PermanentError(
                    "DecryptionFailed",
                    "the backup cannot be decrypted: the key (DBOPS_BACKUP_KEY_FILE) is not the one it was "
                    "encrypted with, or the stored bytes were changed"
                    if self._index == 0
                    else f"frame {self._index} of the encrypted backup was changed",
                ) from None
            self._index += 1
            self._done = bool(final)
        return bytes(out)

    def finish(self) -> bytes:
        if not self._done or self._buffer:
            raise PermanentError("CorruptBackup", "the encrypted stream is cut short (no final frame)")
        return b""


def chain(chunks: Iterable[bytes], *transforms: Transform) -> Iterator[bytes]:
    """`chunks` through each transform in turn; empty pieces are not passed on."""
    for chunk in chunks:
        piece = chunk
        for transform in transforms:
            piece = transform.update(piece)
            if not piece:
                break
        if piece:
            yield piece
    tail = b""
    for transform in transforms:
        tail = transform.update(tail) + transform.finish() if tail else transform.finish()
    if tail:
        yield tail
