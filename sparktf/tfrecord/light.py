"""A task's first records in a process without TensorFlow: protobuf alone, before the import.

A Python worker forked by PySpark's own daemon (a session made without
:func:`sparktf.configure_session`) has no TensorFlow; importing it costs 3-4 s. Spark ends a
worker whenever a task stops reading early (``limit``, ``take``, ``show``), so every such
task paid the import again, for a handful of rows. Here such a worker reads the first
records of its task with :func:`~sparktf.tfrecord.framing.scan_records` and decodes them with
protobuf (:meth:`~sparktf.tfrecord.decode.Decoder.decode_records`, TensorFlow's own message
classes from :mod:`sparktf.tfrecord.protos`): in the same batches as the ``tf.data`` path
(``batchSize`` records from each split's start), so that each batch it takes decodes to the
same rows (``tests/test_fuzz.py`` checks it). It hands the rest to that path
(:func:`read`'s return value) when the light reading has taken :data:`LIGHT_SECONDS` and
its first rows have surely left the worker's output buffer, or at anything it does not
take: a remote or unplanned split, a framing fault, a batch that does not decode (protobuf
refuses some records that TensorFlow's laxer parser takes), a skip mode. That path reads
the split it is handed from its start and drops the rows already sent, so faults are
reported exactly as without this.

A small task (the walk-through's 2,000 records) is read whole before the budget runs out,
and never imports TensorFlow at all. A process that has TensorFlow already (the preloading
daemon, a worker that handed over before) reads everything through ``tf.data``, and so does
fused scoring (the model needs TensorFlow anyway).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence

import pyarrow as pa

from sparktf import fs
from sparktf._tf import loaded
from sparktf.planning import Split
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.framing import Problem, resolve_compression, scan_records
from sparktf.tfrecord.options import ReadSettings
from sparktf.tfrecord.reader import Span, part_of

#: Seconds of light reading per worker process before handing over to ``tf.data``: about
#: 60k MNIST records at ~17 µs each (``tf.data`` and TensorFlow's parser: ~5 µs, after a
#: 3-4 s import). Tasks that end within it never import TensorFlow; a longer read pays at
#: most this much more, once per worker (a reused worker's later tasks share the budget:
#: many small tasks do not keep a worker on the slower path).
LIGHT_SECONDS = 1.0
#: The rows of a task's first batch, sent before the rest of its first ``batchSize``.
FIRST_ROWS = 64
#: Arrow bytes to send after the first rows before handing over: PySpark's worker writes
#: through a 64 KiB buffer that it flushes only when full, so the first rows reach Spark
#: before TensorFlow's import only once this much more has been written behind them.
FLUSH_BYTES = 2 * 65536

Finish = Callable[[pa.RecordBatch, Split], pa.RecordBatch]


#: Seconds this process has read light (it only grows: it decides speed, never rows).
_spent = 0.0


def wanted(settings: ReadSettings) -> bool:
    """Whether a task should start light: no TensorFlow here, budget left, no skip mode."""
    return not (loaded() or _spent >= LIGHT_SECONDS or settings.ignore_corrupt_files
                or settings.ignore_corrupt_records)


def read(splits: Sequence[Split], decoder: Decoder, settings: ReadSettings,
         finish: Finish) -> Iterator[pa.RecordBatch]:
    """Yield the first batches of ``splits`` (each passed through ``finish``, which adds
    partition columns); return ``(index, rows)``: the split to go on from and the rows of it
    already sent."""
    global _spent
    start = time.perf_counter()
    deadline = start + LIGHT_SECONDS - _spent
    sent = -1  # Arrow bytes after the first rows; -1: nothing sent yet
    try:
        for index, split in enumerate(splits):
            done = 0
            for batch in _batches(split, decoder, settings):
                if batch is None:
                    return index, done
                for part in _parts(batch, first=sent < 0):
                    yield finish(part, split)
                    sent = 0 if sent < 0 else sent + part.nbytes
                done += batch.num_rows
                if time.perf_counter() > deadline and sent >= FLUSH_BYTES:
                    return index, done
        return len(splits), 0
    finally:
        _spent += time.perf_counter() - start


def _parts(batch: pa.RecordBatch, *, first: bool) -> list[pa.RecordBatch]:
    """The task's first batch as its first rows and the rest (the first rows leave sooner)."""
    if first and batch.num_rows > FIRST_ROWS:
        return [batch.slice(0, FIRST_ROWS), batch.slice(FIRST_ROWS)]
    return [batch]


def _batches(split: Split, decoder: Decoder,
             settings: ReadSettings) -> Iterator[pa.RecordBatch | None]:
    """The batches of ``split``, then None if the split is not read to its end here."""
    records = _records(split, settings)
    if records is None:
        yield None
        return
    with contextlib.closing(records):
        pending: list[bytes] = []
        first = 0
        for item in records:
            if isinstance(item, Problem):
                yield None
                return
            pending.append(item[2])
            if len(pending) == settings.batch_size:
                batch = _decode(decoder, pending, split.path, first)
                yield batch
                if batch is None:
                    return
                first, pending = first + len(pending), []
        if pending:
            yield _decode(decoder, pending, split.path, first)


Records = Iterator[tuple[int, int, bytes] | Problem]


def _records(split: Split, settings: ReadSettings) -> Records | None:
    """The framed records of a local ``split`` whose planning walk found nothing wrong."""
    if fs.is_remote(split.path) or not os.path.isfile(split.path):
        return None
    try:
        compression = resolve_compression(split.path, settings.compression)
        span = part_of(split.path, split, compression)
    except Exception:  # noqa: BLE001 - the tf.data path says what is wrong
        return None
    if not isinstance(span, Span) or span.problem is not None:
        return None
    return scan_records(split.path, compression, start=span.first, stop=span.stop)


def _decode(decoder: Decoder, records: list[bytes], path: str,
            first: int) -> pa.RecordBatch | None:
    try:
        return decoder.decode_records(records, path, first)
    except Exception:  # noqa: BLE001 - the tf.data path decodes it again and says why
        return None
