"""A task's small files through one pipeline (``sparktf.tfrecord.runs``): the same rows and
the same errors as reading each file alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyspark.sql.types import ArrayType, FloatType, LongType, StructField, StructType

from sparktf._tf import example_pb2
from sparktf.errors import TFRecordError
from sparktf.partitions import PartitionSpec
from sparktf.planning import Split
from sparktf.tfrecord.framing import RecordFileWriter, frame
from sparktf.tfrecord.options import ReadSettings
from sparktf.tfrecord.runs import Run, grouped
from sparktf.tfrecord.scan import read_splits

SCHEMA = StructType([StructField("id", LongType()), StructField("x", ArrayType(FloatType()))])


def example(i: int, x: list[float] | list[int] | None = None) -> bytes:
    message = example_pb2().Example()
    message.features.feature["id"].int64_list.value.append(i)
    values = x if x is not None else [float(i)] * 3
    if values and isinstance(values[0], int):
        message.features.feature["x"].int64_list.value.extend(values)
    else:
        message.features.feature["x"].float_list.value.extend(values)
    return message.SerializeToString()


def files(folder: Path, sizes: list[int]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out, start = [], 0
    for n, size in enumerate(sizes):
        path = folder / f"part-{n:03d}.tfrecord"
        with RecordFileWriter(str(path)) as writer:
            for i in range(start, start + size):
                writer.write(example(i))
        start += size
        out.append(str(path))
    return out


def whole(paths: list[str]) -> list[Split]:
    return [Split(p, 0, os.path.getsize(p), os.path.getsize(p)) for p in paths]


def ids(splits: list[Split], batch: int = 16) -> list[int]:
    found = []
    for b in read_splits(splits, schema=SCHEMA, settings=ReadSettings(batch_size=batch),
                         spec=PartitionSpec()):
        found += b.column("id").to_pylist()
    return found


def test_many_files_one_run_give_each_record_once(tmp_path) -> None:
    paths = files(tmp_path / "d", [5, 0, 7, 1, 30, 2])
    splits = whole(paths)
    groups = list(grouped(splits, ReadSettings()))
    assert len(groups) == 1 and isinstance(groups[0], Run)  # the empty file drops out
    assert ids(splits) == list(range(45))
    size = os.path.getsize(paths[4])  # a file cut in two pieces, between whole files
    pieces = [*splits[:4], Split(paths[4], 0, size // 2, size),
              Split(paths[4], size // 2, size, size), splits[5]]
    kinds = [g.whole if isinstance(g, Run) else None for g in grouped(pieces, ReadSettings())]
    assert kinds == [True, False, True]
    assert ids(pieces) == list(range(45))


def _error(splits: list[Split]) -> str:
    with pytest.raises(TFRecordError) as caught:
        ids(splits)
    return str(caught.value)


def test_a_corrupt_file_in_a_run_is_named_as_read_alone(tmp_path) -> None:
    paths = files(tmp_path / "d", [20, 20, 20, 20])
    data = bytearray(Path(paths[2]).read_bytes())
    data[len(data) // 2] ^= 0x40
    Path(paths[2]).write_bytes(bytes(data))
    alone = _error(whole(paths[2:3]))
    assert "part-002.tfrecord: record" in alone and ": corrupt" in alone
    assert _error(whole(paths)) == alone


def test_a_record_that_does_not_decode_is_named_with_its_file(tmp_path) -> None:
    paths = files(tmp_path / "d", [10, 10, 10])
    records = [example(i) for i in range(20, 30)]
    records[6] = b"\xff\xff\xff not an example"
    Path(paths[2]).write_bytes(b"".join(frame(r) for r in records))
    message = _error(whole(paths))
    assert "part-002.tfrecord: record 6: not a valid tf.train.Example" in message


def test_files_whose_features_differ_in_kind_share_a_batch(tmp_path) -> None:
    """An int64 list in one file and a float list in another, for a float column: each
    file alone decodes, so their batch does too."""
    folder = tmp_path / "d"
    folder.mkdir()
    with RecordFileWriter(str(folder / "a.tfrecord")) as writer:
        for i in range(3):
            writer.write(example(i, [i, i]))
    with RecordFileWriter(str(folder / "b.tfrecord")) as writer:
        for i in range(3, 6):
            writer.write(example(i, [0.5, 1.5]))
    splits = whole([str(folder / "a.tfrecord"), str(folder / "b.tfrecord")])
    got = []
    for b in read_splits(splits, schema=SCHEMA, settings=ReadSettings(), spec=PartitionSpec()):
        got += list(zip(b.column("id").to_pylist(), b.column("x").to_pylist()))
    assert got == [(0, [0.0, 0.0]), (1, [1.0, 1.0]), (2, [2.0, 2.0]), (3, [0.5, 1.5]),
                   (4, [0.5, 1.5]), (5, [0.5, 1.5])]
