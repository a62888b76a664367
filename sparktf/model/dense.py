"""The dense lane of fused TFRecord scoring: parse records straight into the model's tensors.

When every column a model reads is a fixed-length numeric feature — its tensor has a fully
known static shape, and the feature parses to the tensor's own dtype (``float32`` from a
``float``/``double`` column, ``int64`` from a ``bigint`` column) — and no column passes
through, a fused task parses each batch of records with ``tf.io.parse_example`` inside the
file's ``tf.data`` pipeline, as a hand-written TensorFlow script does: numpy arrays in the
model's shape, no Arrow columns in between, and parsing runs in ``tf.data``'s thread while
the session runs the previous batch.

Anything else in a file — a missing feature, another number of values, another kind, a
corrupt record, a truncated file — stops the dense lane at that batch; the general lane
(:func:`~sparktf.tfrecord.reader.read_file` and :func:`~sparktf.model.runtime.map_batches`)
reads the rest of that file. Rows, errors and the skipping of corrupt records are the
general lane's; a test compares the two lanes.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql.types import DoubleType, FloatType, LongType, StructType

from sparktf import fs
from sparktf._tf import freeze_survivors, tensorflow
from sparktf.model.convert import check_batch_dim, to_arrow
from sparktf.model.runtime import LazyModel, Plan, map_batches
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.framing import first_overrun, resolve_compression
from sparktf.tfrecord.options import ReadSettings
from sparktf.tfrecord.reader import TF_COMPRESSION, faults, read_file, read_whole
from sparktf.tfrecord.types import columns_of

log = logging.getLogger(__name__)

#: Spark element types the dense lane parses, with the tensor dtype each must feed.
_DENSE = {FloatType: "float32", DoubleType: "float32", LongType: "int64"}


@dataclass(frozen=True)
class DenseColumn:
    """A feature parsed as ``width`` values of ``dtype`` per record."""

    name: str
    dtype: str
    width: int
    scalar: bool  # a column of one value (FixedLenFeature([]))


def dense_columns(plan: Plan, schema: StructType,
                  settings: ReadSettings) -> tuple[DenseColumn, ...] | None:
    """The features of the dense lane for ``plan`` over ``schema``; None when it does not
    apply (then the general lane reads every file)."""
    if plan.passthrough or settings.record_type != "Example" or not plan.feeds:
        return None
    columns = {c.name: c for c in columns_of(schema, "Example")}
    out: dict[str, DenseColumn] = {}
    for feed in plan.feeds:
        column = columns.get(feed.column)
        shape = feed.shape
        if (column is None or shape is None or len(shape) < 1
                or any(d is None or d < 0 for d in shape[1:])
                or _DENSE.get(type(column.element)) != feed.dtype):
            return None
        width = math.prod(shape[1:])
        if column.depth == 0 and width != 1:
            return None
        dense = DenseColumn(feed.column, feed.dtype, width, column.depth == 0)
        if out.setdefault(feed.column, dense) != dense:  # one column, two shapes
            return None
    return tuple(out.values())


def score_dense(paths: Iterator[str], *, columns: tuple[DenseColumn, ...], plan: Plan,
                schema: StructType, settings: ReadSettings) -> Iterator[pa.RecordBatch]:
    """Score the files ``paths`` in the dense lane (remote files in the general lane)."""
    freeze_survivors()
    model = LazyModel(plan)
    for path in paths:
        done = 0
        if not fs.is_remote(path):
            for batch in _dense_file(path, columns, plan, settings, model):
                if batch is None:  # the dense lane stops here
                    break
                done += batch.num_rows
                yield batch
            else:
                continue
        log.info("%s: the general lane reads from record %d on", path, done)
        decoder = Decoder(schema, "Example", skip_corrupt=settings.ignore_corrupt_records)
        yield from map_batches(_after(read_file(path, decoder, settings), done), plan=plan)


def _dense_file(path: str, columns: tuple[DenseColumn, ...], plan: Plan,
                settings: ReadSettings, model: LazyModel) -> Iterator[pa.RecordBatch | None]:
    """Scored batches of ``path``; None at the first batch the dense lane cannot take."""
    tf = tensorflow()
    try:
        compression = resolve_compression(path, settings.compression)
    except Exception:  # noqa: BLE001 - the general lane says what is wrong
        yield None
        return
    if compression == "none" and first_overrun(path) is not None:
        yield None
        return
    iterator = iter(_pipeline(compression, plan.batch_size, columns)(path))
    consumed = 0
    by_name = {c.name: i for i, c in enumerate(columns)}
    while True:
        try:
            *values, size = next(iterator)
        except StopIteration:
            break
        except faults(tf):
            yield None
            return
        arrays = [_shaped(values[by_name[f.column]].numpy(), f.shape) for f in plan.feeds]
        rows = int(arrays[0].shape[0])
        consumed += 16 * rows + int(size)
        yield _scored(model, arrays, rows, plan)
    if not read_whole(path, compression, consumed):
        yield None


def _shaped(values: np.ndarray, shape: tuple[int | None, ...] | None) -> np.ndarray:
    assert shape is not None  # dense_columns took only known shapes
    return values.reshape((values.shape[0], *shape[1:]))


def _scored(model: LazyModel, arrays: list[np.ndarray], rows: int,
            plan: Plan) -> pa.RecordBatch:
    fetched = model.run([f.tensor for f in plan.feeds], [f.tensor for f in plan.fetches], arrays)
    outputs = []
    for value, fetch in zip(fetched, plan.fetches, strict=True):
        check_batch_dim(value, rows=rows, tensor=fetch.tensor)
        outputs.append(to_arrow(value, rows=rows, tensor=fetch.tensor, dtype=fetch.dtype))
    return pa.RecordBatch.from_arrays(outputs, names=[f.column for f in plan.fetches])


def _after(batches: Iterator[pa.RecordBatch], skip: int) -> Iterator[pa.RecordBatch]:
    """``batches`` without their first ``skip`` rows."""
    for batch in batches:
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        yield batch.slice(skip) if skip else batch
        skip = 0


#: Traced pipeline builders, keyed by everything they depend on; the oldest goes beyond
#: :data:`_KEEP` (a worker that scores many differently shaped models).
_PIPELINES: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_KEEP = 16


def _pipeline(compression: str, batch_size: int, columns: tuple[DenseColumn, ...]) -> Any:
    """A ``tf.function`` building one file's pipeline (read, batch, parse, prefetch), traced
    once per process and key (see ``sparktf.tfrecord.reader._pipeline``)."""
    key = (compression, batch_size, columns)
    make = _PIPELINES.get(key)
    if make is not None:
        _PIPELINES.move_to_end(key)
    else:
        tf = tensorflow()
        spec = {c.name: tf.io.FixedLenFeature([] if c.scalar else [c.width], tf.as_dtype(c.dtype))
                for c in columns}

        def parse(serialized: Any) -> tuple[Any, ...]:
            parsed = tf.io.parse_example(serialized, spec)
            size = tf.reduce_sum(tf.cast(tf.strings.length(serialized), tf.int64))
            return (*(parsed[c.name] for c in columns), size)

        def build(path: Any) -> Any:
            return tf.data.TFRecordDataset(
                path, compression_type=TF_COMPRESSION[compression], buffer_size=1 << 22
            ).batch(batch_size).map(parse).prefetch(2)

        make = _PIPELINES[key] = tf.function(
            build, input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
        while len(_PIPELINES) > _KEEP:
            _PIPELINES.popitem(last=False)
    return make
