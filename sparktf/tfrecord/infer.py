"""Schema inference from a bounded sample of records spread across files."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from pyspark.sql.types import DataType

from sparktf.errors import TFRecordError
from sparktf.tfrecord.convert import is_utf8
from sparktf.tfrecord.framing import NotTFRecord, first_records, resolve_compression
from sparktf.tfrecord.types import FeatureStats, byte_array_schema

_FIELD_KIND = {"bytes_list": "bytes", "int64_list": "int64", "float_list": "float"}


def sample_files(files: Sequence[str], max_files: int) -> list[str]:
    """Up to ``max_files`` files spread evenly over ``files`` (first and last included)."""
    if len(files) <= max_files:
        return list(files)
    step = (len(files) - 1) / (max_files - 1)
    return [files[round(i * step)] for i in range(max_files)]


def inferred_fields(
    files: Sequence[str],
    *,
    record_type: str,
    compression: str | None,
    sample_records: int,
    known: Iterable[str] = (),
) -> list[tuple[str, DataType]]:
    """The features of a sample of records, with their inferred Spark types, sorted by name;
    the names in ``known`` (given by a schema hint) are left out, whatever their kinds.

    Raises
    ------
    TFRecordError
        When nothing is left to read: no feature found and none known.
    """
    if record_type == "ByteArray":
        return [(f.name, f.dataType) for f in byte_array_schema().fields]
    stats = infer_features(files, record_type=record_type, compression=compression,
                           sample_records=sample_records)
    given = set(known)
    fields = [(name, stats[name].spark_type(name)) for name in sorted(stats)
              if name not in given and stats[name].kinds]
    if not fields and not given:
        raise TFRecordError(
            f"{files[0]}: no features found in the sampled records; give a schema hint"
        )
    return fields


def infer_features(
    files: Sequence[str],
    *,
    record_type: str,
    compression: str | None,
    sample_records: int,
    max_files: int = 32,
) -> dict[str, FeatureStats]:
    """Inspect up to ``sample_records`` records, taken from up to ``max_files`` files.

    Examples
    --------
    >>> import tempfile, os
    >>> from sparktf.tfrecord.framing import RecordFileWriter
    >>> from tensorflow.core.example import example_pb2
    >>> ex = example_pb2.Example()
    >>> ex.features.feature["x"].float_list.value.extend([1.0, 2.0])
    >>> path = os.path.join(tempfile.mkdtemp(), "a.tfrecord")
    >>> with RecordFileWriter(path) as w:
    ...     w.write(ex.SerializeToString())
    >>> stats = infer_features([path], record_type="Example", compression=None, sample_records=10)
    >>> stats["x"].spark_type("x").simpleString()
    'array<float>'
    """
    from google.protobuf.message import DecodeError

    from sparktf.tfrecord.protos import example_classes

    protos = example_classes()  # TensorFlow's classes, without importing TensorFlow
    cls = protos.Example if record_type == "Example" else protos.SequenceExample
    chosen = sample_files(files, max_files)
    per_file = max(1, math.ceil(sample_records / len(chosen)))
    stats: dict[str, FeatureStats] = {}
    failures: list[str] = []
    for path in chosen:
        try:
            records = first_records(path, resolve_compression(path, compression), per_file)
        except NotTFRecord as exc:
            failures.append(str(exc))
            continue
        for index, data in enumerate(records):
            try:
                message = cls.FromString(data)
            except DecodeError as exc:
                failures.append(f"{path}: record {index}: not a valid tf.train.{record_type} "
                                f"({exc}); check the recordType option (Example, "
                                "SequenceExample or ByteArray)")
                continue
            _observe(message, record_type, path, stats)
    if failures and not stats:
        raise TFRecordError(failures[0])
    return stats


def _observe(message: object, record_type: str, path: str, stats: dict[str, FeatureStats]) -> None:
    if record_type == "Example":
        contexts, lists = message.features.feature, {}  # type: ignore[attr-defined]
    else:
        contexts = message.context.feature  # type: ignore[attr-defined]
        lists = message.feature_lists.feature_list  # type: ignore[attr-defined]
    for name, feature in contexts.items():
        _note(stats, name, [feature], path, list_feature=False)
    for name, feature_list in lists.items():
        _note(stats, name, list(feature_list.feature), path, list_feature=True)


def _note(
    stats: dict[str, FeatureStats], name: str, features: list, path: str, *, list_feature: bool
) -> None:
    entry = stats.setdefault(name, FeatureStats(kinds={}))
    entry.list_feature |= list_feature
    for feature in features:
        field = feature.WhichOneof("kind")
        if field is None:
            entry.not_single = True
            continue
        kind = _FIELD_KIND[field]
        entry.kinds.setdefault(kind, path)
        values = getattr(feature, field).value
        if len(values) != 1:
            entry.not_single = True
        if kind == "bytes" and not entry.binary:
            entry.binary = not all(map(is_utf8, values))

