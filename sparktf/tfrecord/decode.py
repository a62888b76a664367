"""Decode batches of serialized Example / SequenceExample records into Arrow record batches.

The fast path parses a whole batch at once with ``tf.io.parse_example`` (or
``parse_sequence_example``) into ragged values. When a batch does not parse that way (a
feature of another kind than expected, a payload that is not an Example), the batch is
decoded again record by record with TensorFlow's protobuf classes, which finds the exact
record and feature at fault, or reads features whose kind differs between records.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql.types import StructType

from sparktf._tf import tensorflow
from sparktf.errors import TFRecordError
from sparktf.tfrecord.convert import Ragged, to_arrow
from sparktf.tfrecord.types import Column, arrow_schema, columns_of

log = logging.getLogger(__name__)

_KIND_FIELD = {"bytes": "bytes_list", "int64": "int64_list", "float": "float_list"}
_FIELD_KIND = {v: k for k, v in _KIND_FIELD.items()}
_NUMPY = {"bytes": object, "int64": np.int64, "float": np.float32}


class _NotAMessage(Exception):
    """A record that ``tf.io.parse_example`` read but protobuf cannot (found late)."""


class Decoder:
    """Decode batches of one file's records to Arrow, for a fixed schema and record type."""

    def __init__(self, schema: StructType, record_type: str, *, skip_corrupt: bool = False):
        self.record_type = record_type
        self.schema = schema
        self.columns: list[Column] = (
            [] if record_type == "ByteArray" else columns_of(schema, record_type)
        )
        self.arrow_schema = arrow_schema(schema)
        self.kinds = {c.name: c.preferred_kind for c in self.columns}
        self.skip_corrupt = skip_corrupt
        self.skipped = 0
        # Numeric features of one length in every record of a batch are parsed as fixed-length
        # (dense) from the next batch on: no ragged assembly. An uneven batch turns it off.
        self.widths: dict[str, int] = {}
        self._learn = record_type == "Example"

    # -- public -------------------------------------------------------------------------
    def decode(self, serialized: Any, path: str, first: int) -> pa.RecordBatch:
        """Decode one batch; ``serialized`` is a tf string tensor or a list of bytes."""
        if self.record_type == "ByteArray":
            values = serialized.numpy() if hasattr(serialized, "numpy") else serialized
            return pa.record_batch([pa.array(values, pa.binary())], schema=self.arrow_schema)
        tf = tensorflow()
        try:
            parsed = self._parse_fast(serialized)
        except (tf.errors.InvalidArgumentError, UnicodeDecodeError) as exc:
            log.debug("bulk parse failed in %s near record %d: %s", path, first, exc)
            return self._decode_slow(_as_list(serialized), path, first)
        n = int(serialized.shape[0]) if hasattr(serialized, "shape") else len(serialized)
        try:
            return self._assemble(parsed, n, path, first, lambda: _as_list(serialized))
        except _NotAMessage:  # tf.io's parser is laxer than protobuf's: let the slow path say
            return self._decode_slow(_as_list(serialized), path, first)

    # -- fast path ----------------------------------------------------------------------
    def _spec(self, depths: Sequence[int], widths: dict[str, int]) -> dict[str, Any]:
        tf = tensorflow()
        dtypes = {"bytes": tf.string, "int64": tf.int64, "float": tf.float32}
        spec = {}
        for c in self.columns:
            if c.depth not in depths:
                continue
            dtype = dtypes[self.kinds[c.name]]
            width = widths.get(c.name)
            spec[c.name] = (
                tf.io.RaggedFeature(dtype) if width is None
                else tf.io.FixedLenFeature([] if c.depth == 0 else [width], dtype)
            )
        return spec

    def _parse_fast(self, serialized: Any) -> dict[str, Ragged]:
        if self.widths:
            tf = tensorflow()
            try:
                return self._unpack(self._parser(self.widths)(serialized))
            except tf.errors.InvalidArgumentError as exc:
                log.debug("feature lengths changed, parsing ragged from here on: %s", exc)
                self.widths, self._learn = {}, False
        parsed = self._unpack(self._parser({})(serialized))
        if self._learn:
            self.widths = self._uniform(parsed)
        return parsed

    def _unpack(self, tensors: dict[str, Any]) -> dict[str, Ragged]:
        out = {}
        for name, (values, splits) in tensors.items():
            flat = np.asarray(values)
            if splits:
                out[name] = Ragged(self.kinds[name], flat, [np.asarray(s) for s in splits])
            else:  # a fixed-length feature: every row holds `width` values
                width = self.widths[name]
                rows = np.arange(flat.size // width + 1, dtype=np.int64) * width
                out[name] = Ragged(self.kinds[name], flat, [rows])
        return out

    def _uniform(self, parsed: dict[str, Ragged]) -> dict[str, int]:
        """The numeric features that hold the same, non-zero number of values in every row."""
        widths = {}
        for c in self.columns:  # Example columns: scalars and flat arrays
            ragged = parsed[c.name]
            lengths = np.diff(ragged.splits[0])
            if ragged.kind == "bytes" or not lengths.size:
                continue
            width = int(lengths[0])
            if width > 0 and (lengths == width).all() and (c.depth == 1 or width == 1):
                widths[c.name] = width
        return widths

    def _parser(self, widths: dict[str, int]) -> Any:
        """The batch parser for the current kinds and fixed widths, traced once per process."""
        key = (self.record_type, tuple(sorted(widths.items())),
               tuple((c.name, c.depth, self.kinds[c.name]) for c in self.columns))
        parser = _PARSERS.get(key)
        if parser is None:
            parser = _PARSERS[key] = _trace_parser(
                self.record_type, self._spec((0, 1), widths), self._spec((2,), {})
            )
        return parser

    def _assemble(
        self, parsed: dict[str, Ragged], n: int, path: str, first: int, records: Any
    ) -> pa.RecordBatch:
        cache: dict[str, Any] = {}

        def record(i: int) -> str:
            return f"{path}: record {first + i}"

        def presence_of(column: Column) -> Any:
            def presence(rows: np.ndarray) -> np.ndarray:
                if "records" not in cache:
                    cache["records"] = records()
                return np.array(
                    [self._has(cache["records"][int(i)], column) for i in rows], dtype=bool
                )

            return presence

        arrays = [
            to_arrow(c, parsed[c.name], n, record=record, presence=presence_of(c))
            for c in self.columns
        ]
        return pa.record_batch(arrays, schema=self.arrow_schema)

    def decode_records(self, records: list[bytes], path: str, first: Any) -> pa.RecordBatch:
        """Decode one batch with protobuf alone, never importing TensorFlow (slower per
        record than :meth:`decode`; the same rows, or the same error)."""
        if self.record_type == "ByteArray":
            return pa.record_batch([pa.array(records, pa.binary())], schema=self.arrow_schema)
        return self._decode_slow(records, path, first)

    def _message(self, data: bytes) -> Any:
        from sparktf.tfrecord.protos import example_classes

        protos = example_classes()
        cls = protos.Example if self.record_type == "Example" else protos.SequenceExample
        return cls.FromString(data)

    def _has(self, data: bytes, column: Column) -> bool:
        from google.protobuf.message import DecodeError

        try:
            message = self._message(data)
        except DecodeError:
            raise _NotAMessage() from None
        return column.name in self._container(message, column)

    def _container(self, message: Any, column: Column) -> Any:
        if self.record_type == "Example":
            return message.features.feature
        if column.depth == 2:
            return message.feature_lists.feature_list
        return message.context.feature

    # -- slow path ----------------------------------------------------------------------
    def _decode_slow(self, records: list[bytes], path: str, first: int) -> pa.RecordBatch:
        from google.protobuf.message import DecodeError

        messages, kept = [], []
        for i, data in enumerate(records):
            try:
                messages.append(self._message(data))
                kept.append(i)
            except DecodeError as exc:
                what = (f"{path}: record {first + i}: not a valid "
                        f"tf.train.{self.record_type} ({exc})")
                if not self.skip_corrupt:
                    raise TFRecordError(
                        what + "; check the recordType option (Example, SequenceExample or "
                        "ByteArray)"
                    ) from None
                log.warning("skipping corrupt record: %s", what)
                self.skipped += 1
        parsed = {c.name: self._ragged_slow(c, messages, kept, path, first) for c in self.columns}
        kept_records = [records[i] for i in kept]
        batch = self._assemble(parsed, len(messages), path, first, lambda: kept_records)
        return batch

    def _ragged_slow(
        self, column: Column, messages: list[Any], rows: list[int], path: str, first: int
    ) -> Ragged:
        kinds: dict[str, int] = {}  # kind -> the first record holding it
        chunks: list[Any] = []  # each feature's repeated values
        row_len, step_len = [], []
        present = np.zeros(len(messages), dtype=bool)
        for j, message in enumerate(messages):
            container = self._container(message, column)
            if column.name not in container:
                row_len.append(0)
                continue
            present[j] = True
            features = (
                list(container[column.name].feature) if column.depth == 2
                else [container[column.name]]
            )
            row_len.append(len(features) if column.depth == 2 else None)
            for feature in features:
                field = feature.WhichOneof("kind")
                values = getattr(feature, field).value if field else ()
                kind = _FIELD_KIND.get(field or "", self.kinds[column.name])
                if not column.accepts(kind):
                    raise TFRecordError(
                        f"{path}: record {first + rows[j]}: feature {column.name!r} is a {kind} "
                        f"list, but column type {column.field.dataType.simpleString()} does not "
                        f"accept it"
                    )
                if field:  # a Feature with no list set is empty whatever its column
                    kinds.setdefault(kind, first + rows[j])
                chunks.append(values)
                step_len.append(len(values))
                if column.depth != 2:
                    row_len[-1] = len(values)
        kind = self._settle_kind(column, kinds, path)
        dtype = _NUMPY[kind]
        values = np.concatenate(
            [np.empty(0, dtype), *(np.asarray(vals, dtype=dtype) for vals in chunks if len(vals))])
        splits = [np.concatenate([[0], np.cumsum(row_len, dtype=np.int64)])]
        if column.depth == 2:
            splits.append(np.concatenate([[0], np.cumsum(step_len, dtype=np.int64)]))
        return Ragged(kind, values, splits, present)

    def _settle_kind(self, column: Column, kinds: dict[str, int], path: str) -> str:
        """One kind for the batch; int64 widens to float when both appear under a float type."""
        if not kinds:
            return self.kinds[column.name]
        if len(kinds) > 1 and set(kinds) != {"int64", "float"}:
            (first, at), (other, later) = sorted(kinds.items(), key=lambda item: item[1])[:2]
            raise TFRecordError(
                f"{path}: record {later}: feature {column.name!r} is {_a(other)} list, but "
                f"record {at} holds {_a(first)} list; column {column.name!r} "
                f"({column.field.dataType.simpleString()}) can read only one of them in the same "
                "batch of records"
            )
        kind = "float" if set(kinds) == {"int64", "float"} else next(iter(kinds))
        self.kinds[column.name] = kind  # decode later batches in bulk with it
        return kind


_PARSERS: dict[tuple[Any, ...], Any] = {}


def _trace_parser(record_type: str, features: dict[str, Any], lists: dict[str, Any]) -> Any:
    """A ``tf.function`` that parses a batch of records into ``{name: (values, splits)}``
    (one graph call per batch instead of eager ops and their Python argument checks); a
    fixed-length feature comes back flat, with no splits."""
    tf = tensorflow()

    def parse(serialized: Any) -> dict[str, Any]:
        if record_type == "Example":
            tensors = tf.io.parse_example(serialized, features)
        else:
            context, steps, _ = tf.io.parse_sequence_example(
                serialized, context_features=features or None, sequence_features=lists or None
            )
            tensors = {**context, **steps}
        return {
            name: (t.flat_values, t.nested_row_splits) if isinstance(t, tf.RaggedTensor)
            else (tf.reshape(t, [-1]), ())
            for name, t in tensors.items()
        }

    return tf.function(parse, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)


def _a(kind: str) -> str:
    return f"an {kind}" if kind == "int64" else f"a {kind}"


def _as_list(serialized: Any) -> list[bytes]:
    if hasattr(serialized, "numpy"):
        return list(serialized.numpy())
    return list(serialized)

