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
(:func:`~sparktf.tfrecord.reader.read_split` and :func:`~sparktf.model.runtime.map_batches`)
reads the rest of that file. Rows, errors and the skipping of corrupt records are the
general lane's; a test compares the two lanes.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql.types import DoubleType, FloatType, LongType, StructType

from sparktf import fs
from sparktf._tf import freeze_survivors, tensorflow
from sparktf.model.convert import check_batch_dim, to_arrow
from sparktf.model.runtime import LazyModel, Plan, map_batches
from sparktf.planning import Split
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.framing import Problem, resolve_compression
from sparktf.tfrecord.options import ReadSettings
from sparktf.tfrecord.reader import (
    faults,
    part_of,
    plain,
    read_split,
    records_dataset,
    skip_rows,
    span_signature,
)
from sparktf.tfrecord.runs import Run, check_read, grouped, records_of, run_signature
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


def score_dense(splits: Iterator[Split], *, columns: tuple[DenseColumn, ...], plan: Plan,
                schema: StructType, settings: ReadSettings) -> Iterator[pa.RecordBatch]:
    """Score the files or splits ``splits`` in the dense lane: runs of plain local splits
    through one pipeline each (:mod:`sparktf.tfrecord.runs`), a compressed file alone,
    remote files in the general lane."""
    freeze_survivors()
    model = LazyModel(plan)
    for group in grouped(splits, settings):
        if isinstance(group, Run):
            yield from _dense_run(group, columns, plan, schema, settings, model)
            continue
        done = 0
        if not fs.is_remote(group.path):
            for batch in _dense_split(group, columns, plan, settings, model):
                if batch is None:  # the dense lane stops here
                    break
                done += batch.num_rows
                yield batch
            else:
                continue
        yield from _general(group, done, plan, schema, settings)


def _general(split: Split, done: int, plan: Plan, schema: StructType,
             settings: ReadSettings) -> Iterator[pa.RecordBatch]:
    """The general lane for ``split`` from its record ``done`` on."""
    log.info("%s: the general lane reads from record %d on", split.path, done)
    decoder = Decoder(schema, "Example", skip_corrupt=settings.ignore_corrupt_records)
    yield from map_batches(skip_rows(read_split(split, decoder, settings), done), plan=plan)


def _dense_run(run: Run, columns: tuple[DenseColumn, ...], plan: Plan, schema: StructType,
               settings: ReadSettings, model: LazyModel) -> Iterator[pa.RecordBatch]:
    """Score a run; at the first batch the dense lane cannot take, the general lane reads
    that batch's first split from there, and the run goes on after it."""
    tf = tensorflow()
    iterator = iter(_run_pipeline(plan.batch_size, columns, run.whole)(*run.inputs()))
    by_name = {c.name: i for i, c in enumerate(columns)}
    done = consumed = 0
    while True:
        try:
            *values, size = next(iterator)
        except StopIteration:
            break
        except faults(tf):
            index, local = run.position(done)
            yield from _general(run.splits[index], local, plan, schema, settings)
            if index + 1 < len(run.splits):
                yield from _dense_run(run.after(index), columns, plan, schema, settings, model)
            return
        arrays = [_shaped(values[by_name[f.column]].numpy(), f.shape) for f in plan.feeds]
        rows = int(arrays[0].shape[0])
        done += rows
        consumed += 16 * rows + int(size)
        yield _scored(model, arrays, rows, plan)
    check_read(run, consumed)


def _dense_split(split: Split, columns: tuple[DenseColumn, ...], plan: Plan,
                 settings: ReadSettings, model: LazyModel) -> Iterator[pa.RecordBatch | None]:
    """Scored batches of ``split``; None at the first batch the dense lane cannot take."""
    tf = tensorflow()
    path = split.path
    try:
        compression = resolve_compression(path, settings.compression)
        span = part_of(path, split, compression)
    except Exception:  # noqa: BLE001 - the general lane says what is wrong
        yield None
        return
    if isinstance(span, Problem) or span.problem is not None:
        yield None
        return
    iterator = iter(_pipeline(compression, plan.batch_size, columns)(path, span.first,
                                                                    span.count))
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
    if not span.read_all(path, compression, consumed):
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


#: Traced pipeline builders, keyed by everything they depend on; the oldest goes beyond
#: :data:`_KEEP` (a worker that scores many differently shaped models).
_PIPELINES: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_KEEP = 16


def _run_pipeline(batch_size: int, columns: tuple[DenseColumn, ...], whole: bool) -> Any:
    """A ``tf.function`` building a run's pipeline (its splits' records, batched across
    them, parsed, prefetched), traced once per process and key."""
    def build(tf: Any, parse: Any) -> Any:
        def make(paths: Any, firsts: Any, counts: Any) -> Any:
            records = records_of(tf, paths, firsts, counts, whole)
            return plain(tf, records.batch(batch_size).map(parse).prefetch(2))

        return tf.function(make, input_signature=run_signature(tf), autograph=False)

    return _traced(("run", batch_size, columns, whole), columns, build)


def _pipeline(compression: str, batch_size: int, columns: tuple[DenseColumn, ...]) -> Any:
    """A ``tf.function`` building one file's pipeline (read, batch, parse, prefetch), traced
    once per process and key (see ``sparktf.tfrecord.reader._pipeline``)."""
    def build(tf: Any, parse: Any) -> Any:
        def make(path: Any, first: Any, count: Any) -> Any:
            records = records_dataset(tf, path, compression, first, count)
            return plain(tf, records.batch(batch_size).map(parse).prefetch(2))

        return tf.function(make, input_signature=span_signature(tf), autograph=False)

    return _traced((compression, batch_size, columns), columns, build)


def _traced(key: tuple[Any, ...], columns: tuple[DenseColumn, ...],
            build: Callable[[Any, Any], Any]) -> Any:
    """The builder ``build(tf, parse)`` made for ``key``, kept in a bounded LRU."""
    make = _PIPELINES.get(key)
    if make is not None:
        _PIPELINES.move_to_end(key)
        return make
    tf = tensorflow()
    spec = {c.name: tf.io.FixedLenFeature([] if c.scalar else [c.width], tf.as_dtype(c.dtype))
            for c in columns}

    def parse(serialized: Any) -> tuple[Any, ...]:
        parsed = tf.io.parse_example(serialized, spec)
        size = tf.reduce_sum(tf.cast(tf.strings.length(serialized), tf.int64))
        return (*(parsed[c.name] for c in columns), size)

    make = _PIPELINES[key] = build(tf, parse)
    while len(_PIPELINES) > _KEEP:
        _PIPELINES.popitem(last=False)
    return make
