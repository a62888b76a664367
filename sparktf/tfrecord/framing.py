"""TFRecord framing: file listing, compression detection, and record-level reading/writing.

A TFRecord file is a sequence of records, each framed as::

    uint64 length | uint32 masked_crc32c(length) | byte data[length] | uint32 masked_crc32c(data)

The fast read path lives in :mod:`sparktf.tfrecord.decode` (``tf.data``); the functions here
are the exact, record-by-record reference used for diagnostics, skipping corrupt records, and
writing.
"""

from __future__ import annotations

import glob
import gzip
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import google_crc32c

from sparktf import fs, manifest
from sparktf.errors import TFRecordError
from sparktf.tfrecord.sniff import UNKNOWN, looks_like

COMPRESSIONS = ("none", "gzip", "zlib")
EXTENSIONS = {"none": "", "gzip": ".gz", "zlib": ".zlib"}
_MASK_DELTA = 0xA282EAD8
GZIP_MAGIC = b"\x1f\x8b"
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


def masked_crc(data: bytes | memoryview) -> int:
    """The masked CRC32C that TFRecord framing stores (CRC from ``google-crc32c``)."""
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


_HEADERS: dict[int, bytes] = {}


def _header(size: int) -> bytes:
    header = _HEADERS.get(size)
    if header is None:
        length = struct.pack("<Q", size)
        header = length + struct.pack("<I", masked_crc(length))
        if len(_HEADERS) < 1 << 16:
            _HEADERS[size] = header
    return header


def frame(data: bytes) -> bytes:
    """Frame one record: length, masked length CRC, data, masked data CRC.

    Examples
    --------
    >>> frame(b"abc").hex()
    '0300000000000000b099490e6162636e57f121'
    """
    return _header(len(data)) + data + _FOOTER.pack(masked_crc(data))


def list_data_files(paths: str | Iterable[str]) -> list[str]:
    """Expand files, directories (recursively, skipping ``_``/``.`` names) and globs, local
    or remote (see :mod:`sparktf.fs`). A directory whose ``_SUCCESS`` is a sparktf manifest
    gives exactly the files the manifest lists (see :mod:`sparktf.manifest`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "part-0.tfrecord").write_bytes(b""); _ = (d / "_SUCCESS").write_bytes(b"")
    >>> [pathlib.Path(p).name for p in list_data_files(str(d))]
    ['part-0.tfrecord']
    """
    items = [paths] if isinstance(paths, str) else list(paths)
    if not items:
        raise TFRecordError("no input path given")
    for raw in items:
        fs.parse(str(raw))  # every path is checked before anything is listed
    found: list[str] = []
    for raw in items:
        path = str(raw)
        entries = None if glob.has_magic(path) else manifest.read(path)
        files = manifest.files(path, entries) if entries is not None else fs.expand(path)
        if not files:
            if fs.is_remote(path):
                fs.check_container(path)  # a missing bucket says so
            empty = entries is not None or (not glob.has_magic(path) and fs.exists(path))
            what = ("holds no data files (names starting with '_' or '.' are skipped)" if empty
                    else "matches nothing")
            raise TFRecordError(f"input path {raw}: {what}")
        found.extend(files)
    return found


def resolve_compression(path: str, option: str | None) -> str:
    """The compression of ``path``: the option when given, else gzip when the file starts
    with gzip's magic bytes (whatever its name), else none.

    Examples
    --------
    >>> resolve_compression("x.tfrecord", "GZIP")
    'gzip'
    """
    if option:
        value = option.strip().lower()
        if value in ("", "auto"):
            option = None
        elif value not in COMPRESSIONS:
            raise TFRecordError(
                f"option compression: expected one of {', '.join(COMPRESSIONS)}, found {option!r}"
            )
        else:
            return value
    with fs.open_input(path, buffer_size=1 << 16) as handle:
        return "gzip" if handle.read(2) == GZIP_MAGIC else "none"


class _ZlibReader:
    """A minimal readable stream over a zlib-compressed file; like ``gzip``, it raises
    ``EOFError`` when the file ends before the stream's end marker (a zero-byte file is an
    empty stream)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw, self._z, self._buf, self._started = raw, zlib.decompressobj(), b"", False

    def read(self, n: int) -> bytes:
        while len(self._buf) < n and not self._z.eof:
            chunk = self._z.unconsumed_tail or self._raw.read(1 << 20)
            if not chunk:
                if self._started:
                    raise EOFError("compressed file ended before the end-of-stream marker")
                break
            self._started = True
            self._buf += self._z.decompress(chunk, max(n - len(self._buf), 1 << 16))
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def close(self) -> None:
        self._raw.close()


class _GzipReader(gzip.GzipFile):
    """A gzip stream that closes the file it reads (``GzipFile`` leaves a given one open)."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def open_records(path: str, compression: str) -> BinaryIO:
    """Open ``path`` for reading record bytes, decompressing as needed."""
    if compression == "gzip":
        raw = fs.open_input(path)
        return _GzipReader(raw)  # type: ignore[return-value]
    if compression == "zlib":
        return _ZlibReader(fs.open_input(path))  # type: ignore[return-value]
    return fs.open_input(path)


@dataclass(frozen=True)
class Problem:
    """A corrupt spot in a TFRecord file: where, and what is wrong."""

    path: str
    record: int
    offset: int
    what: str
    head: bytes = b""  # the file's first bytes, when the framing is wrong from its start
    fatal: bool = False  # no skip mode may step over it (a split read from a wrong place)

    def message(self) -> str:
        looks = looks_like(self.head) if self.head else UNKNOWN
        if looks != UNKNOWN:  # a file of another format, not a damaged TFRecord file
            return (f"{self.path} does not look like a TFRecord file: it looks like "
                    f"{looks} ({self.what} at byte 0)")
        return f"{self.path}: record {self.record} at byte offset {self.offset}: {self.what}"


def scan_records(path: str, compression: str, *, start: int = 0, stop: int | None = None,
                 first: Any = 0) -> Iterator[tuple[int, int, bytes] | Problem]:
    """Yield ``(record_number, offset, data)`` per record, or a :class:`Problem` and stop
    at the first framing fault a reader cannot step over.

    A record whose data CRC is wrong yields a :class:`Problem` and the scan goes on (the framing
    is intact); a wrong length CRC or a truncation ends the scan. Memory stays bounded by the
    data really there: a length field that claims more bytes than the file holds is reported,
    never allocated. A split of an uncompressed file: the scan starts at the record at byte
    ``start`` and ends before the first record starting at ``stop`` or later; record numbers
    count from ``start``, while a :class:`Problem` names the record counted from the file's
    start, ``first`` being the number of the record at ``start``.
    """
    try:
        stream = open_records(path, compression)
        size = fs.size(path) if compression == "none" else None
        if start:
            stream.seek(start)
    except OSError as exc:
        yield Problem(path, 0, 0, f"cannot open: {exc}")
        return
    offset, count = start, 0
    try:
        while stop is None or offset < stop:
            index = first + count if first else count
            try:
                header = stream.read(12)
            except (OSError, EOFError, zlib.error) as exc:
                yield Problem(path, index, offset, f"cannot decompress ({compression}): {exc}")
                return
            if not header:
                return
            if len(header) < 12:
                yield Problem(path, index, offset, f"truncated record header ({len(header)} "
                              "of 12 bytes)", head=_head(path) if offset == 0 else b"")
                return
            length, length_crc = _HEADER.unpack(header)
            if masked_crc(header[:8]) != length_crc:
                yield Problem(path, index, offset, "corrupt length CRC (the framing is lost)",
                              head=_head(path) if offset == 0 else b"")
                return
            limit = None if size is None else max(size - offset - 12, 0)
            try:
                body = _read_body(stream, length + 4, limit)
            except (OSError, EOFError, zlib.error) as exc:
                yield Problem(path, index, offset, f"cannot read record: {exc}")
                return
            if len(body) < length + 4:
                yield Problem(path, index, offset, f"truncated record: expected {length} data "
                              f"bytes and a CRC, found {len(body)} bytes")
                return
            data = body[:length]
            if masked_crc(data) != _FOOTER.unpack_from(body, length)[0]:
                yield Problem(path, index, offset, "corrupt data CRC")
            else:
                yield count, offset, data
            offset += 16 + length
            count += 1
    finally:
        stream.close()


_CHUNK = 1 << 20


def _head(path: str, size: int = 64) -> bytes:
    """The first bytes of ``path`` (a local path or a URL) as stored (compressed or not)."""
    with fs.open_input(path, buffer_size=1 << 16) as handle:
        return handle.read(size)


def _read_body(stream: BinaryIO, want: int, limit: int | None) -> bytes:
    """Read ``want`` bytes, or what is left: at most ``limit`` bytes of a plain file (its size
    is known), in bounded chunks from a compressed stream (its size is not)."""
    if limit is not None:
        return stream.read(min(want, limit))
    chunks, got = [], 0
    while got < want:
        chunk = stream.read(min(want - got, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class NotTFRecord(TFRecordError):
    """A file whose framing is wrong from its first byte (see :func:`looks_like`)."""


def first_records(path: str, compression: str, limit: int) -> list[bytes]:
    """Up to ``limit`` records from the start of ``path``, stopping at the first problem
    (reading the file reports it, or skips it when asked to); :class:`NotTFRecord` when the
    file is not framed as TFRecords at all."""
    out: list[bytes] = []
    if limit <= 0:
        return out
    for item in scan_records(path, compression):
        if isinstance(item, Problem):
            if item.head and not out and looks_like(item.head) != UNKNOWN:
                raise NotTFRecord(item.message())  # not a TFRecord file at all
            break
        out.append(item[2])
        if len(out) >= limit:
            break
    return out


class RecordFileWriter:
    """Write framed records to a file, compressed as asked."""

    def __init__(self, path: str, compression: str = "none") -> None:
        if compression not in COMPRESSIONS:
            raise TFRecordError(
                f"compression: expected one of {COMPRESSIONS}, found {compression!r}"
            )
        raw = open(path, "wb")
        if compression == "gzip":
            self._out: BinaryIO = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6)
        else:
            self._out = raw
        self._raw, self._z = raw, zlib.compressobj() if compression == "zlib" else None
        self.records = 0

    def write_framed(self, blob: bytes) -> None:
        """Write bytes that are already framed records."""
        self._out.write(self._z.compress(blob) if self._z else blob)

    def write(self, data: bytes) -> None:
        """Frame and write one record."""
        self.write_framed(frame(data))
        self.records += 1

    def close(self) -> None:
        if self._z is not None:
            self._out.write(self._z.flush())
        self._out.close()
        if self._raw is not self._out:
            self._raw.close()

    def __enter__(self) -> RecordFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
