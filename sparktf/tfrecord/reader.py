"""Read a TFRecord file, or a split of one, as a stream of Arrow record batches.

Framing, CRC checks and decompression run in ``tf.data`` (C++), batches are decoded in bulk
by :class:`~sparktf.tfrecord.decode.Decoder`. When ``tf.data`` reports a fault, the file is
scanned again record by record to say exactly where and what it is, and, in a skip mode, to
keep every good record.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from sparktf import fs
from sparktf._tf import tensorflow
from sparktf.errors import TFRecordError, this_host
from sparktf.planning import Split
from sparktf.scratch import scratch_file
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.framing import Problem, resolve_compression, scan_records
from sparktf.tfrecord.options import ReadSettings
from sparktf.tfrecord.splits import RecordIndex, locate

log = logging.getLogger(__name__)
TF_COMPRESSION = {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}
_GZIP_MIN = 18  # header and trailer of the smallest gzip member


def faults(tf: object) -> tuple[type[Exception], ...]:
    """The TensorFlow errors by which ``tf.data`` (or a parse inside it) reports a damaged
    file or a record it cannot take."""
    errors = tf.errors  # type: ignore[attr-defined]
    return (errors.DataLossError, errors.OutOfRangeError, errors.InternalError,
            errors.UnknownError, errors.InvalidArgumentError)


def read_file(path: str, decoder: Decoder, settings: ReadSettings) -> Iterator[pa.RecordBatch]:
    """Yield the records of the whole file ``path`` (see :func:`read_split`)."""
    yield from read_split(Split(path, 0, WHOLE, WHOLE), decoder, settings)


WHOLE = 1 << 62  # the length of a split that is its whole file, whatever its size


def read_split(split: Split, decoder: Decoder, settings: ReadSettings) -> Iterator[pa.RecordBatch]:
    """Yield the records of ``split`` (a whole file, or the records whose header starts in a
    byte range of an uncompressed one: :mod:`sparktf.tfrecord.splits`) as Arrow batches of at
    most ``settings.batch_size`` rows.

    A remote file (``s3://`` and the others of :mod:`sparktf.fs`) is first copied whole into
    this process's scratch directory and read there like a local one (faster than streaming
    it through Python: see the README), then removed; messages name the URL.
    """
    path = split.path
    if not fs.is_remote(path):
        if not os.path.exists(path):
            raise TFRecordError(
                f"input file {path} does not exist on host {this_host()}: executors read their "
                "input files themselves, so inputs must be on a path every host reads (a shared "
                "filesystem) or on remote storage (s3://, gs://, abfs://, hdfs://)")
        yield from _read_local(path, decoder, settings, path, split)
        return
    with scratch_file("stage", ".tfrecord") as local:
        try:
            fs.download(path, local)
        except OSError as exc:
            raise TFRecordError(f"{path}: cannot read: {exc}") from None
        yield from _read_local(local, decoder, settings, path, split)


def _read_local(path: str, decoder: Decoder, settings: ReadSettings, name: str,
                split: Split) -> Iterator[pa.RecordBatch]:
    """Read ``split`` of the local file ``path``; messages call it ``name``."""
    tf = tensorflow()
    compression = resolve_compression(path, settings.compression)
    span = part_of(path, split, compression)
    if isinstance(span, Problem):  # a length runs past the end: the records before it
        yield from _recover(path, compression, decoder, settings, 0, EOFError(span.what), name)
        return
    if span.count == 0:  # a split inside one record, or an empty file
        end_of_split(span, name, settings, decoder)
        return
    dataset = _pipeline(compression, settings.batch_size)(path, span.first, span.count)
    done, consumed = 0, 0
    iterator = iter(dataset)
    while True:
        try:
            serialized, size = next(iterator)
        except StopIteration:
            break
        except faults(tf) as exc:
            yield from _recover(path, compression, decoder, settings, done, exc, name, span)
            return
        batch = decoder.decode(serialized, name, span.number(done))
        done += int(serialized.shape[0])
        consumed += 16 * int(serialized.shape[0]) + int(size)
        yield batch
    if not span.read_all(path, compression, consumed):
        # tf.data stops quietly at a truncated header or compressed stream: find out what is left
        yield from _recover(path, compression, decoder, settings, done, EOFError("tail"), name,
                            span)
        return
    end_of_split(span, name, settings, decoder)
    _report(name, decoder)


@dataclass(frozen=True)
class Span:
    """What ``tf.data`` reads of a file: from byte ``first``, ``count`` records (-1: to the
    end); ``stop`` ends a split's record-by-record scan; ``end`` is where a split's last
    record ends, and ``problem`` what its end check found (:mod:`sparktf.tfrecord.splits`)."""

    first: int = 0
    count: int = -1
    stop: int | None = None
    end: int | None = None
    problem: Problem | None = None
    path: str = ""

    def number(self, done: int) -> Any:
        """The number of the record ``done`` records after ``first``, counted from the file's
        start (found only when a message needs it)."""
        return done if self.first == 0 else RecordIndex(self.path, self.first, done)

    def read_all(self, path: str, compression: str, consumed: int) -> bool:
        """Whether ``consumed`` bytes are all of the span (a whole compressed file: see
        :func:`read_whole`)."""
        if self.end is None:
            return read_whole(path, compression, consumed)
        return consumed == self.end - self.first


def part_of(path: str, split: Split, compression: str) -> Span | Problem:
    """The :class:`Span` of ``split`` in the local file ``path``: a compressed file is read
    whole; of an uncompressed one, the length fields are walked first (``tf.data`` would
    allocate a declared length before reading it, and one that claims terabytes crashes the
    process), and a split's first record is found by resynchronising."""
    if compression != "none":
        if not split.whole:
            raise TFRecordError(f"{split.path}: a {compression} file cannot be read in parts")
        return Span()
    size = os.path.getsize(path)
    start, length = (0, size) if split.whole else (split.start, split.length)
    extent = locate(path, start, length)
    if isinstance(extent, Problem):
        return extent
    stop = None if split.whole else start + length
    return Span(extent.first, extent.count, stop, extent.end, extent.problem, path)


def end_of_split(span: Span, name: str, settings: ReadSettings, decoder: Decoder) -> None:
    """Report what a split's end check found: an error, or in a skip mode a warning (the
    next split resynchronises past it), unless it is fatal."""
    if span.problem is None:
        return
    problem = dataclasses.replace(span.problem, path=name)
    if problem.fatal or not (settings.ignore_corrupt_records or settings.ignore_corrupt_files):
        raise TFRecordError(problem.message())
    log.warning("%s; skipping it", problem.message())
    decoder.skipped += 1


_PIPELINES: dict[tuple[str, int], Any] = {}


def _pipeline(compression: str, batch_size: int) -> Any:
    """A ``tf.function`` that builds the ``tf.data`` pipeline of one file or split, traced
    once per process: building it anew traced its functions for each file (~35 ms a file).
    Traced without autograph, which would write a source file per process into the temp
    directory and never remove it."""
    make = _PIPELINES.get((compression, batch_size))
    if make is None:
        tf = tensorflow()

        def build(path: Any, first: Any, count: Any) -> Any:
            records = records_dataset(tf, path, compression, first, count)
            return plain(tf, records.batch(batch_size).map(_with_size).prefetch(2))

        make = _PIPELINES[(compression, batch_size)] = tf.function(
            build, input_signature=span_signature(tf), autograph=False)
    return make


def span_signature(tf: Any) -> list[Any]:
    """The signature of a pipeline builder: the file, its first record's byte, the count."""
    return [tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int64),
            tf.TensorSpec([], tf.int64)]


def records_dataset(tf: Any, path: Any, compression: str, first: Any, count: Any) -> Any:
    """The records of ``path`` from byte ``first`` on, ``count`` of them (-1: all).

    ``tf.data.TFRecordDataset`` reads from a file's start only; the ``TFRecordDatasetV2``
    op behind it takes a byte offset, so it is built from ``tf.raw_ops`` and made a dataset
    with ``tf.data.experimental.from_variant``. Such a dataset cannot be serialised by
    ``tf.data``'s graph rewrites (the op's serialisation drops the offset), so pipelines on
    it run with them off (:func:`plain`); measured here, that also saves ~7 ms per file
    (iterator set-up), the larger part of what a small file cost.
    """
    variant = tf.raw_ops.TFRecordDatasetV2(
        filenames=tf.reshape(path, [1]), compression_type=TF_COMPRESSION[compression],
        buffer_size=tf.constant(1 << 22, tf.int64), byte_offsets=tf.reshape(first, [1]))
    return tf.data.experimental.from_variant(variant, tf.TensorSpec([], tf.string)).take(count)


def plain(tf: Any, dataset: Any) -> Any:
    """``dataset`` with ``tf.data``'s graph rewrites and autotuning off (see
    :func:`records_dataset`)."""
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    options.experimental_optimization.inject_prefetch = False
    options.autotune.enabled = False
    return dataset.with_options(options)


def _with_size(serialized: Any) -> tuple[Any, Any]:
    """A batch of records with its payload bytes, summed inside tf.data (graph mode)."""
    tf = tensorflow()
    return serialized, tf.reduce_sum(tf.cast(tf.strings.length(serialized), tf.int64))


def skip_rows(batches: Iterator[pa.RecordBatch], skip: int) -> Iterator[pa.RecordBatch]:
    """``batches`` without their first ``skip`` rows."""
    for batch in batches:
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        yield batch.slice(skip) if skip else batch
        skip = 0


def _report(path: str, decoder: Decoder) -> None:
    if decoder.skipped:
        log.warning("%s: skipped %d corrupt records", path, decoder.skipped)


def read_whole(path: str, compression: str, consumed: int) -> bool:
    """Whether ``consumed`` uncompressed bytes are all of ``path`` (gzip: mod 2**32).

    tf.data ends without an error at a truncated record header, at a gzip file shorter than a
    gzip header, and at a zlib stream cut short, so the reader checks what it got.
    """
    size = os.path.getsize(path)
    if compression == "none":
        return consumed == size
    if compression == "gzip":
        if size < _GZIP_MIN:
            return size == 0
        if consumed == 0:  # an empty stream's trailer is zeros: a cut one still looks right
            return _gzip_empty(path)
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            return int.from_bytes(handle.read(4), "little") == consumed % (1 << 32)
    return _zlib_size(path) == consumed


def _gzip_empty(path: str) -> bool:
    """Whether ``path`` is a complete gzip file holding nothing (the module checks the
    trailer when it reaches the end)."""
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read(1) == b""
    except (OSError, EOFError, zlib.error):
        return False


def _zlib_size(path: str) -> int | None:
    """The uncompressed size of a complete zlib file, or None when the stream is cut short or
    damaged (inflates in bounded chunks, keeping nothing)."""
    if os.path.getsize(path) == 0:
        return 0
    inflate, total = zlib.decompressobj(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                while chunk and not inflate.eof:
                    total += len(inflate.decompress(chunk, 1 << 22))
                    chunk = inflate.unconsumed_tail
            except zlib.error:
                return None
    return total if inflate.eof else None


def _recover(
    path: str,
    compression: str,
    decoder: Decoder,
    settings: ReadSettings,
    start: int,
    cause: Exception,
    name: str | None = None,
    span: Span | None = None,
) -> Iterator[pa.RecordBatch]:
    """Re-read ``path`` (or its ``span``) record by record from record ``start`` after a
    fault in tf.data; messages call it ``name`` (its URL when it was staged from a remote
    store)."""
    name = name or path
    span = span or Span()
    log.debug("tf.data failed on %s after %d records: %s", name, start, cause)
    pending: list[bytes] = []
    first = start
    skip = settings.ignore_corrupt_records
    records = scan_records(path, compression, start=span.first, stop=span.stop,
                           first=span.number(0))
    finished = True
    for item in records:
        if isinstance(item, Problem):
            item = dataclasses.replace(item, path=name)
            if not (skip or settings.ignore_corrupt_files):
                raise TFRecordError(item.message())
            log.warning("%s; %s", item.message(), "skipping it" if skip else "skipping the rest")
            decoder.skipped += 1
            if item.what == "corrupt data CRC" and skip:
                continue
            finished = False
            break
        index, _, data = item
        if index < start:
            continue
        if not pending:
            first = index
        pending.append(data)
        if len(pending) >= settings.batch_size:
            yield decoder.decode(pending, name, span.number(first))
            pending = []
    if pending:
        yield decoder.decode(pending, name, span.number(first))
    if finished:
        end_of_split(span, name, settings, decoder)
    _report(name, decoder)
