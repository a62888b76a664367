"""Read one TFRecord file as a stream of Arrow record batches.

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
from typing import Any

import pyarrow as pa

from sparktf import fs
from sparktf._tf import freeze_survivors, tensorflow
from sparktf.errors import TFRecordError, this_host
from sparktf.scratch import scratch_file
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.framing import Problem, first_overrun, resolve_compression, scan_records
from sparktf.tfrecord.options import ReadSettings

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
    """Yield the records of ``path`` as Arrow batches of at most ``settings.batch_size`` rows.

    A remote file (``s3://`` and the others of :mod:`sparktf.fs`) is first copied whole into
    this process's scratch directory and read there like a local one (faster than streaming
    it through Python: see the README), then removed; messages name the URL.
    """
    if not fs.is_remote(path):
        if not os.path.exists(path):
            raise TFRecordError(
                f"input file {path} does not exist on host {this_host()}: executors read their "
                "input files themselves, so inputs must be on a path every host reads (a shared "
                "filesystem) or on remote storage (s3://, gs://, abfs://, hdfs://)")
        yield from _read_local(path, decoder, settings, path)
        return
    with scratch_file("stage", ".tfrecord") as local:
        try:
            fs.download(path, local)
        except OSError as exc:
            raise TFRecordError(f"{path}: cannot read: {exc}") from None
        yield from _read_local(local, decoder, settings, path)


def _read_local(path: str, decoder: Decoder, settings: ReadSettings,
                name: str) -> Iterator[pa.RecordBatch]:
    """Read the local file ``path``; messages call it ``name``."""
    tf = tensorflow()
    freeze_survivors()
    compression = resolve_compression(path, settings.compression)
    overrun = first_overrun(path) if compression == "none" else None
    if overrun is not None:  # tf.data would allocate the declared length, or crash on it
        yield from _recover(path, compression, decoder, settings, 0, EOFError(overrun.what),
                            name)
        return
    dataset = _pipeline(compression, settings.batch_size)(path)
    done, consumed = 0, 0
    iterator = iter(dataset)
    while True:
        try:
            serialized, size = next(iterator)
        except StopIteration:
            break
        except faults(tf) as exc:
            yield from _recover(path, compression, decoder, settings, done, exc, name)
            return
        batch = decoder.decode(serialized, name, done)
        done += int(serialized.shape[0])
        consumed += 16 * int(serialized.shape[0]) + int(size)
        yield batch
    if not read_whole(path, compression, consumed):
        # tf.data stops quietly at a truncated header or compressed stream: find out what is left
        yield from _recover(path, compression, decoder, settings, done, EOFError("tail"), name)
        return
    _report(name, decoder)


_PIPELINES: dict[tuple[str, int], Any] = {}


def _pipeline(compression: str, batch_size: int) -> Any:
    """A ``tf.function`` that builds the ``tf.data`` pipeline of one file, traced once per
    process: building it anew traced its functions for each file (~35 ms a file). Traced
    without autograph, which would write a source file per process into the temp directory
    and never remove it."""
    make = _PIPELINES.get((compression, batch_size))
    if make is None:
        tf = tensorflow()

        def build(path: Any) -> Any:
            return tf.data.TFRecordDataset(
                path, compression_type=TF_COMPRESSION[compression], buffer_size=1 << 22
            ).batch(batch_size).map(_with_size).prefetch(2)

        make = _PIPELINES[(compression, batch_size)] = tf.function(
            build, input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
    return make


def _with_size(serialized: Any) -> tuple[Any, Any]:
    """A batch of records with its payload bytes, summed inside tf.data (graph mode)."""
    tf = tensorflow()
    return serialized, tf.reduce_sum(tf.cast(tf.strings.length(serialized), tf.int64))


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
) -> Iterator[pa.RecordBatch]:
    """Re-read ``path`` record by record from record ``start`` after a fault in tf.data;
    messages call it ``name`` (its URL when it was staged from a remote store)."""
    name = name or path
    log.debug("tf.data failed on %s after %d records: %s", name, start, cause)
    pending: list[bytes] = []
    first = start
    skip = settings.ignore_corrupt_records
    for item in scan_records(path, compression):
        if isinstance(item, Problem):
            item = dataclasses.replace(item, path=name)
            if not (skip or settings.ignore_corrupt_files):
                raise TFRecordError(item.message())
            log.warning("%s; %s", item.message(), "skipping it" if skip else "skipping the rest")
            decoder.skipped += 1
            if item.what == "corrupt data CRC" and skip:
                continue
            break
        index, _, data = item
        if index < start:
            continue
        if not pending:
            first = index
        pending.append(data)
        if len(pending) >= settings.batch_size:
            yield decoder.decode(pending, name, first)
            pending = []
    if pending:
        yield decoder.decode(pending, name, first)
    _report(name, decoder)
