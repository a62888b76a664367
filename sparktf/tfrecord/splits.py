"""Where the records of a split of an uncompressed TFRecord file are.

A file larger than a task (:mod:`sparktf.planning`) is read by several tasks, each given a
byte range. A split owns the records whose header starts in its range, so every record is
read exactly once:

- a split that starts at byte 0 starts at a record; another one finds its first record by
  **resynchronising**: the first position whose 12 bytes are a length and that length's
  masked CRC32C, whose data's CRC matches too (a position inside a payload passes both
  checks only by chance, or when a payload holds TFRecord frames itself);
- from there the length fields are **walked** (runs of equal lengths compared in bulk) to
  count the records that start in the range and find the byte after the last one;
- that byte is where the next split's records must start, so each split **checks its end**:
  no position between its range's end and that byte may look like a record (or the next
  split, resynchronising, would start inside this split's last record), and the frame found
  there must be intact (else that frame is corrupt, and the next split cannot see it).

Either finding is reported as a :class:`~sparktf.tfrecord.framing.Problem`: a split is never
read from a wrong position in silence. Record numbers in messages count from the file's
start; they are found (by walking from byte 0) only when a message needs one.

Examples
--------
>>> import tempfile, os
>>> from sparktf.tfrecord.framing import frame
>>> path = os.path.join(tempfile.mkdtemp(), "a.tfrecord")
>>> _ = open(path, "wb").write(b"".join(frame(b"x" * n) for n in (10, 20, 30)))
>>> locate(path, 20, 40)  # the second record (bytes 26..62) starts in 20..60
Extent(first=26, count=1, end=62, problem=None)
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Any, BinaryIO

import numpy as np

from sparktf.tfrecord.framing import Problem, masked_crc

_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_CHUNK = 1 << 18  # bytes scanned at a time when resynchronising


@dataclass(frozen=True)
class Extent:
    """The records of a split: the first one's offset, how many start in the split, the
    byte after the last one (where the next split's first record starts), and what is wrong
    there when :func:`check_end` finds something (read the records first, then report it)."""

    first: int
    count: int
    end: int
    problem: Problem | None = None


def locate(path: str, start: int, length: int, handle: BinaryIO | None = None
           ) -> Extent | Problem:
    """The :class:`Extent` of the split ``start`` .. ``start + length`` of ``path`` (read
    through ``handle`` when one is open), or the :class:`Problem` that stops its walk (a
    length running past the end of the file: the records before it are read one by one,
    which finds exactly where and what)."""
    if handle is None:
        with open(path, "rb") as opened:
            return locate(path, start, length, opened)
    fd = handle.fileno()
    size = os.fstat(fd).st_size
    stop = min(start + length, size)
    first = 0 if start == 0 else resync(fd, start, stop, size)
    if first is None:  # every byte of the range is inside a record that began before
        return Extent(stop, 0, stop)
    walked = walk(path, first, stop, size, handle)
    if isinstance(walked, Problem):
        return walked
    count, end = walked
    return Extent(first, count, end, check_end(fd, path, stop, end, size))


def resync(fd: int, start: int, stop: int, size: int) -> int | None:
    """The first position in ``start`` .. ``stop`` where an intact record starts, or None."""
    pos = start
    while pos < stop:
        buf = os.pread(fd, min(stop - pos, _CHUNK) + 11, pos)
        count = min(len(buf) - 11, stop - pos)
        if count <= 0:
            return None
        lengths = np.ndarray((count,), "<u8", buf, 0, (1,))
        places = pos + np.arange(count, dtype=np.int64)
        fits = lengths <= np.maximum(size - places - 16, 0).astype(np.uint64)
        for i in np.flatnonzero(fits):
            if intact(fd, int(places[i]), size, buf[i:i + 12]) is None:
                return int(places[i])
        pos += count
    return None


def intact(fd: int, offset: int, size: int, header: bytes | None = None) -> str | None:
    """None when an intact record starts at ``offset``, else what is wrong there."""
    header = header if header is not None else os.pread(fd, 12, offset)
    if len(header) < 12:
        return f"truncated record header ({len(header)} of 12 bytes)"
    (length,) = _LENGTH.unpack_from(header)
    if masked_crc(header[:8]) != _CRC.unpack_from(header, 8)[0]:
        return "corrupt length CRC (the framing is lost)"
    if length > size - offset - 16:
        return f"record length {length} runs past the end of the file"
    body = os.pread(fd, length + 4, offset + 12)
    if masked_crc(memoryview(body)[:length]) != _CRC.unpack_from(body, length)[0]:
        return "corrupt data CRC"
    return None


def walk(path: str, first: int, stop: int, size: int,
         handle: BinaryIO | None = None) -> tuple[int, int] | Problem:
    """Count the records from ``first`` whose header starts before ``stop``, through their
    length fields only (no CRC; ``tf.data`` checks them as it reads): ``(count, end)``.
    A file smaller than a mapped window is read whole instead of mapped."""
    if handle is None:
        with open(path, "rb") as opened:
            return walk(path, first, stop, size, opened)
    offset, count = first, 0
    while offset < stop:
        base = offset - offset % mmap.ALLOCATIONGRANULARITY
        end = min(base + _WINDOW, size)
        if end - offset < 8:
            return Problem(path, RecordIndex(path, offset), offset, "truncated record header")
        if base == 0 and end == size and size <= _SMALL:
            view: Any = os.pread(handle.fileno(), size, 0)
            offset, count, overrun = _walk(view, 0, offset, count, min(end, stop + 7), size)
        else:
            with mmap.mmap(handle.fileno(), end - base, offset=base,
                           access=mmap.ACCESS_READ) as view:
                offset, count, overrun = _walk(view, base, offset, count,
                                               min(end, stop + 7), size)
        if overrun is not None:
            return Problem(path, RecordIndex(path, offset), offset,
                           f"record length {overrun} runs past the end of the file "
                           f"({size - offset} bytes left)")
    return count, offset


_SMALL = 1 << 20  # files up to this size are read, not mapped, by walk


def check_end(fd: int, path: str, stop: int, end: int, size: int) -> Problem | None:
    """The :class:`Problem` at a split's end (see the module docstring), or None."""
    false_start = resync(fd, stop, end, size) if stop < end else None
    if false_start is not None:
        return Problem(path, RecordIndex(path, end), false_start,
                       f"bytes inside the record before byte {end} look like an intact "
                       "record, so this file cannot be read in splits; read it whole "
                       "(option splitFiles=false)", fatal=True)
    if end >= size:
        return None
    what = intact(fd, end, size)
    return None if what is None else Problem(path, RecordIndex(path, end), end, what)


def records_before(path: str, offset: int) -> int:
    """How many records start before byte ``offset`` (walking from byte 0)."""
    walked = walk(path, 0, offset, os.path.getsize(path))
    return walked[0] if not isinstance(walked, Problem) else 0


class RecordIndex:
    """The number of the record at ``offset`` counted from the file's start, found only
    when it is used (in a message): ``RecordIndex(path, offset) + 2`` is an ``int``."""

    def __init__(self, path: str, offset: int, skipped: int = 0) -> None:
        self.path, self.offset, self.skipped = path, offset, skipped

    @cached_property
    def value(self) -> int:
        return records_before(self.path, self.offset) + self.skipped

    def __add__(self, other: int) -> int:
        return self.value + int(other)

    __radd__ = __add__

    def __int__(self) -> int:
        return self.value

    __index__ = __int__

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __repr__(self) -> str:
        return f"RecordIndex({self.path!r}, {self.offset})"


def first_overrun(path: str) -> Problem | None:
    """Walk the length fields of an uncompressed file without reading its data, and name the
    first record whose declared length runs past the end of the file (None when none does).

    ``tf.data`` allocates a record's declared length before reading it, and a length field
    that claims terabytes crashes the process; the reader checks plain files with this first.
    The length CRC is not checked here: :func:`scan_records` says what is wrong.

    Examples
    --------
    >>> import tempfile, os
    >>> from sparktf.tfrecord.framing import frame
    >>> path = os.path.join(tempfile.mkdtemp(), "a.tfrecord")
    >>> _ = open(path, "wb").write(frame(b"abc") + frame(b"de")[:-1])
    >>> first_overrun(path).record
    1
    """
    size = os.path.getsize(path)
    offset = index = 0
    with open(path, "rb") as handle:
        while offset < size:
            base = offset - offset % mmap.ALLOCATIONGRANULARITY
            end = min(base + _WINDOW, size)
            if end - offset < 8:
                return Problem(path, index, offset, "truncated record header")
            # mapped, not read: only the pages holding length fields are touched and nothing
            # is copied; one window at a time keeps the resident memory bounded
            with mmap.mmap(handle.fileno(), end - base, offset=base,
                           access=mmap.ACCESS_READ) as view:
                offset, index, length = _walk(view, base, offset, index, end, size)
            if length is not None:
                return Problem(path, index, offset, f"record length {length} runs past "
                               f"the end of the file ({size - offset} bytes left)")
    return None


def _walk(view: mmap.mmap, base: int, offset: int, index: int, end: int,
          size: int) -> tuple[int, int, int | None]:
    """Step through the length fields that lie in ``view`` (file bytes ``base``..``end``);
    returns where it stopped and, at an overrun, the declared length.

    Records of equal length (fixed-shape features) are passed in runs: the length fields of
    the next records at the same stride are compared in one numpy call, not one by one.
    """
    unpack = struct.Struct("<Q").unpack_from
    scalar_steps = 0  # after a short run, step one by one for a while before trying again
    while offset + 8 <= end:
        (length,) = unpack(view, offset - base)
        if length > size - offset - 16:
            return offset, index, length
        step = 16 + length
        ahead = min((end - offset - 8) // step, _RUN)
        if scalar_steps or ahead < 8:
            scalar_steps = max(scalar_steps - 1, 0)
            offset, index = offset + step, index + 1
            continue
        equal = np.ndarray((ahead,), "<u8", view, offset + step - base, (step,)) == length
        same = ahead if equal.all() else int(np.argmin(equal))  # equal lengths that follow
        fits = min(same, (size - offset) // step - 1)  # the records after this one that fit
        offset, index = offset + step * (1 + fits), index + 1 + fits
        if fits < same:  # the next one is the same length, and runs past the end
            return offset, index, length
        scalar_steps = 0 if same >= 8 else 32
    return offset, index, None


_RUN = 4096  # length fields compared at once by first_overrun
_WINDOW = 64 << 20  # bytes of a file mapped at a time by first_overrun
