"""The dense lane of fused TFRecord scoring gives the general lane's rows and errors."""

from __future__ import annotations

import dataclasses
import gzip
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pyspark.sql.types import (
    ArrayType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StructField,
    StructType,
)

from sparktf.errors import SparkTFError
from sparktf.model.dense import dense_columns, score_dense
from sparktf.model.runtime import Feed, Fetch, Plan, map_batches
from sparktf.partitions import PartitionSpec
from sparktf.planning import Split
from sparktf.tfrecord.framing import frame
from sparktf.tfrecord.options import ReadSettings
from sparktf.tfrecord.reader import WHOLE
from sparktf.tfrecord.scan import read_splits

SCHEMA = StructType([StructField("image", ArrayType(FloatType()))])
SETTINGS = ReadSettings(batch_size=4)


def _plan(export: Path, **changes: object) -> Plan:
    plan = Plan(export_dir=str(export), tags=("serve",),
                feeds=(Feed("image", "x:0", "float32", (None, 784)),),
                fetches=(Fetch("prediction:0", "prediction", "int64", (None,)),), batch_size=4)
    return dataclasses.replace(plan, **changes)


def _example(values: list[float] | None, kind: str = "float_list") -> bytes:
    from sparktf._tf import example_pb2

    message = example_pb2().Example()
    if values is not None:
        getattr(message.features.feature["image"], kind).value.extend(values)
    return message.SerializeToString()


def _images(n: int) -> list[list[float]]:
    rng = np.random.default_rng(7)
    return rng.random((n, 784), dtype=np.float32).tolist()


def _write(path: Path, records: list[bytes], *, gzipped: bool = False) -> str:
    blob = b"".join(frame(r) for r in records)
    path.write_bytes(gzip.compress(blob) if gzipped else blob)
    return str(path)


def _outcome(lane: Callable[[], Iterator[pa.RecordBatch]]) -> pa.Table | tuple[type, str]:
    try:
        return pa.Table.from_batches(list(lane()), schema=None)
    except SparkTFError as exc:
        return type(exc), str(exc)


def _both(files: list[str], plan: Plan, settings: ReadSettings = SETTINGS):
    columns = dense_columns(plan, SCHEMA, settings)
    assert columns is not None
    splits = [Split(f, 0, WHOLE, WHOLE) for f in files]
    dense = _outcome(lambda: score_dense(iter(splits), columns=columns, plan=plan,
                                         schema=SCHEMA, settings=settings))
    general = _outcome(lambda: map_batches(read_splits(splits, schema=SCHEMA, settings=settings,
                                                       spec=PartitionSpec()), plan=plan))
    return dense, general


def _good(n: int) -> list[bytes]:
    return [_example(v) for v in _images(n)]


def test_clean_files_stay_in_the_dense_lane(tmp_path: Path, mnist_export: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    files = [_write(tmp_path / "a.tfrecord", _good(10)),
             _write(tmp_path / "b.tfrecord.gz", _good(7), gzipped=True)]
    with caplog.at_level(logging.INFO, "sparktf.model.dense"):
        dense, general = _both(files, _plan(mnist_export))
    assert isinstance(dense, pa.Table) and dense.num_rows == 17
    assert dense.equals(general)
    assert "general lane" not in caplog.text


def _missing(records: list[bytes]) -> list[bytes]:
    return records[:6] + [_example(None)] + records[7:]


def _short(records: list[bytes]) -> list[bytes]:
    return records[:5] + [_example([0.5] * 783)] + records[6:]


def _ints(records: list[bytes]) -> list[bytes]:
    return records[:9] + [_example([1] * 784, "int64_list")]


def _corrupt(records: list[bytes]) -> list[bytes]:
    broken = bytearray(frame(records[5]))
    broken[40] ^= 0xFF  # inside the payload: its data CRC no longer matches
    return records[:5] + [bytes(broken)] + records[6:]


@pytest.mark.parametrize(("change", "handover"),
                         [(_missing, 4), (_short, 4), (_ints, 8), (_corrupt, 4)],
                         ids=["missing feature", "783 values", "int64 values", "corrupt record"])
@pytest.mark.parametrize("skip", [False, True], ids=["strict", "skip corrupt"])
def test_a_file_the_dense_lane_cannot_take_ends_as_in_the_general_lane(
        tmp_path: Path, mnist_export: Path, caplog: pytest.LogCaptureFixture,
        change: Callable[[list[bytes]], list[bytes]], handover: int, skip: bool) -> None:
    records = change(_good(10))
    if change is _corrupt:  # already framed around the broken record
        path = tmp_path / "x.tfrecord"
        path.write_bytes(b"".join(r if i == 5 else frame(r) for i, r in enumerate(records)))
        files = [str(path)]
    else:
        files = [_write(tmp_path / "x.tfrecord", records)]
    settings = dataclasses.replace(SETTINGS, ignore_corrupt_records=skip)
    with caplog.at_level(logging.INFO, "sparktf.model.dense"):
        dense, general = _both(files, _plan(mnist_export), settings)
    if isinstance(general, pa.Table):
        assert isinstance(dense, pa.Table) and dense.equals(general)
    else:
        assert dense == general
    # the batch (of 4) that holds the odd record goes to the general lane, with the rest
    assert f"x.tfrecord: the general lane reads from record {handover} on" in caplog.text


def test_a_truncated_file_ends_as_in_the_general_lane(tmp_path: Path, mnist_export: Path) -> None:
    path = tmp_path / "cut.tfrecord"
    _write(path, _good(9))
    path.write_bytes(path.read_bytes()[:-100])
    dense, general = _both([str(path)], _plan(mnist_export))
    assert isinstance(general, tuple) and "cut.tfrecord" in general[1]
    assert dense == general


@pytest.mark.parametrize(
    ("schema", "change"),
    [
        (SCHEMA, {"passthrough": ("image",)}),
        (SCHEMA, {"feeds": (Feed("image", "x:0", "float32", (None, None)),)}),
        (SCHEMA, {"feeds": (Feed("image", "x:0", "float32", None),)}),
        (SCHEMA, {"feeds": (Feed("image", "x:0", "float64", (None, 784)),)}),
        (StructType([StructField("image", ArrayType(IntegerType()))]),
         {"feeds": (Feed("image", "x:0", "int64", (None, 784)),)}),
        (StructType([StructField("image", LongType())]),
         {"feeds": (Feed("image", "x:0", "int64", (None, 2)),)}),
    ],
    ids=["pass-through column", "unknown width", "unknown rank", "float64 tensor",
         "int column", "scalar into 2 values"],
)
def test_the_general_lane_reads_what_the_dense_lane_does_not_parse(
        mnist_export: Path, schema: StructType, change: dict) -> None:
    assert dense_columns(_plan(mnist_export, **change), schema, SETTINGS) is None


@pytest.mark.parametrize(
    ("element", "dtype"), [(FloatType(), "float32"), (DoubleType(), "float32"),
                           (LongType(), "int64")])
def test_dense_columns_of_fixed_numeric_features(mnist_export: Path, element: object,
                                                 dtype: str) -> None:
    schema = StructType([StructField("v", ArrayType(element))])
    plan = _plan(mnist_export, feeds=(Feed("v", "x:0", dtype, (None, 4, 2)),))
    (column,) = dense_columns(plan, schema, SETTINGS)
    assert (column.name, column.dtype, column.width, column.scalar) == ("v", dtype, 8, False)
