"""Read one TFRecord file as a stream of Arrow record batches.

Framing, CRC checks and decompression run in ``tf.data`` (C++), batches are decoded in bulk
by :class:`~sparktf.tfrecord.decode.Decoder`. When ``tf.data`` reports a fault, the file is
scanned again record by record to say exactly where and what it is, and, in a skip mode, to
keep every good record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from sparktf._tf import tensorflow
from sparktf.errors import TFRecordError
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.framing import Problem, resolve_compression, scan_records

log = logging.getLogger(__name__)
_TF_COMPRESSION = {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}


@dataclass(frozen=True)
class ReadSettings:
    """How to read files: record type, compression, batch size and what to skip."""

    record_type: str = "Example"
    compression: str | None = None  # None: detect gzip from the magic bytes
    batch_size: int = 4096
    ignore_corrupt_files: bool = False
    ignore_corrupt_records: bool = False


def read_file(path: str, decoder: Decoder, settings: ReadSettings) -> Iterator[pa.RecordBatch]:
    """Yield the records of ``path`` as Arrow batches of at most ``settings.batch_size`` rows."""
    tf = tensorflow()
    compression = resolve_compression(path, settings.compression)
    dataset = tf.data.TFRecordDataset(
        path, compression_type=_TF_COMPRESSION[compression], buffer_size=1 << 22
    ).batch(settings.batch_size).prefetch(2)
    done = 0
    iterator = iter(dataset)
    while True:
        try:
            serialized = next(iterator)
        except StopIteration:
            break
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.InternalError,
                tf.errors.UnknownError, tf.errors.InvalidArgumentError) as exc:
            yield from _recover(path, compression, decoder, settings, done, exc)
            break
        batch = decoder.decode(serialized, path, done)
        done += int(serialized.shape[0])
        yield batch
    if decoder.skipped:
        log.warning("%s: skipped %d corrupt records", path, decoder.skipped)


def _recover(
    path: str,
    compression: str,
    decoder: Decoder,
    settings: ReadSettings,
    start: int,
    cause: Exception,
) -> Iterator[pa.RecordBatch]:
    """Re-read ``path`` record by record from record ``start`` after a fault in tf.data."""
    log.debug("tf.data failed on %s after %d records: %s", path, start, cause)
    pending: list[bytes] = []
    first = start
    skip = settings.ignore_corrupt_records
    for item in scan_records(path, compression):
        if isinstance(item, Problem):
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
            yield decoder.decode(pending, path, first)
            pending = []
    if pending:
        yield decoder.decode(pending, path, first)
