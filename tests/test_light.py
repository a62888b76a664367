"""A task's first records without TensorFlow (``sparktf.tfrecord.light``) and TensorFlow's
Example classes without importing it (``sparktf.tfrecord.protos``): the same rows and the
same errors as the ``tf.data`` path, wherever the hand-over falls."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    FloatType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from sparktf.errors import TFRecordError
from sparktf.partitions import PartitionSpec
from sparktf.planning import Split
from sparktf.tfrecord import light
from sparktf.tfrecord.encode import Encoder
from sparktf.tfrecord.framing import frame
from sparktf.tfrecord.options import ReadSettings
from sparktf.tfrecord.scan import read_splits
from sparktf.tfrecord.types import arrow_schema

EXAMPLE = StructType([StructField("id", LongType()), StructField("x", ArrayType(FloatType())),
                      StructField("s", StringType()), StructField("raw", BinaryType())])
SEQUENCE = StructType([StructField("id", LongType()),
                       StructField("q", ArrayType(ArrayType(LongType())))])
PARTITIONED = StructType([*EXAMPLE.fields, StructField("day", LongType())])
SPEC = PartitionSpec(columns=(("day", "bigint"),), values=(("1",), ("2",), (None,)))


def rows(schema: StructType, start: int, count: int) -> list[dict]:
    if schema is SEQUENCE:
        return [{"id": i, "q": [[i, i + 1]] * (i % 3)} for i in range(start, start + count)]
    return [{"id": i, "x": [i / 4] * (i % 5) or None, "s": f"row {i}" if i % 7 else None,
             "raw": bytes([i % 256]) * (i % 4)} for i in range(start, start + count)]


def write(path: Path, schema: StructType, record_type: str, start: int, count: int,
          compression: str = "none") -> Split:
    data = {f.name: f.dataType for f in schema.fields if f.name != "day"}
    batch = pa.RecordBatch.from_pylist(rows(schema, start, count),
                                       schema=arrow_schema(StructType(
                                           [StructField(n, t) for n, t in data.items()])))
    blob = b"".join(frame(r) for r in Encoder(
        StructType([StructField(n, t) for n, t in data.items()]), record_type).encode(batch))
    path.write_bytes(gzip.compress(blob) if compression == "gzip" else blob)
    size = path.stat().st_size
    return Split(str(path), 0, size, size)


def dataset(folder: Path, kind: str) -> tuple[list[Split], StructType, ReadSettings, PartitionSpec]:
    """Splits of one of the layouts a task meets, with its schema and settings."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "sequence":
        splits = [write(folder / f"s{i}.tfrecord", SEQUENCE, "SequenceExample", i * 50, 50)
                  for i in range(3)]
        return splits, SEQUENCE, ReadSettings(batch_size=16, record_type="SequenceExample"), \
            PartitionSpec()
    if kind == "gzip":
        splits = [write(folder / f"g{i}.tfrecord.gz", EXAMPLE, "Example", i * 70, 70, "gzip")
                  for i in range(3)]
        return splits, EXAMPLE, ReadSettings(batch_size=32), PartitionSpec()
    if kind == "partitioned":
        splits = [write(folder / f"p{i}.tfrecord", EXAMPLE, "Example", i * 40, 40)
                  for i in range(3)]
        splits = [Split(s.path, s.start, s.length, s.size, partition=i)
                  for i, s in enumerate(splits)]
        return splits, PARTITIONED, ReadSettings(batch_size=16), SPEC
    whole = write(folder / "big.tfrecord", EXAMPLE, "Example", 0, 300)
    if kind == "pieces":  # a file in three splits, cut mid-record
        third = whole.size // 3
        return [Split(whole.path, 0, third, whole.size),
                Split(whole.path, third, third, whole.size),
                Split(whole.path, 2 * third, whole.size - 2 * third, whole.size)], \
            EXAMPLE, ReadSettings(batch_size=64), PartitionSpec()
    small = [write(folder / f"e{i}.tfrecord", EXAMPLE, "Example", 300 + 9 * i, 9)
             for i in range(3)]
    return [whole, *small], EXAMPLE, ReadSettings(batch_size=64), PartitionSpec()


def read(splits: list[Split], schema: StructType, settings: ReadSettings,
         spec: PartitionSpec, light_start: bool) -> list[dict]:
    return [row for batch in read_splits(splits, schema=schema, settings=settings, spec=spec,
                                         light_start=light_start)
            for row in batch.to_pylist()]


HANDOVERS = {  # (LIGHT_SECONDS, FLUSH_BYTES): where the tf.data path takes over
    "never": (1e9, 0),
    "after the first batch": (0.0, 0),
    "after some bytes": (0.0, 3000),
}


@pytest.mark.parametrize("handover", sorted(HANDOVERS))
@pytest.mark.parametrize("kind", ["files", "pieces", "gzip", "sequence", "partitioned"])
def test_light_start_gives_the_rows_of_tf_data(tmp_path, monkeypatch, kind: str,
                                               handover: str) -> None:
    splits, schema, settings, spec = dataset(tmp_path / kind, kind)
    expected = read(splits, schema, settings, spec, light_start=False)
    assert expected
    seconds, flush = HANDOVERS[handover]
    monkeypatch.setattr(light, "LIGHT_SECONDS", seconds)
    monkeypatch.setattr(light, "FLUSH_BYTES", flush)
    handed = []
    original = light.read

    def spied(*args, **kwargs):
        handed.append((yield from original(*args, **kwargs)))
        return handed[-1]

    monkeypatch.setattr(light, "read", spied)
    assert read(splits, schema, settings, spec, light_start=True) == expected
    index, sent = handed[0]
    if handover == "never":
        assert (index, sent) == (len(splits), 0)  # all read without tf.data
    else:
        assert index < len(splits) and 0 < sent <= len(expected)


def test_the_first_rows_go_out_alone_and_the_hand_over_point_is_returned(tmp_path,
                                                                          monkeypatch) -> None:
    splits, schema, _, _ = dataset(tmp_path, "files")
    monkeypatch.setattr(light, "LIGHT_SECONDS", 0.0)
    monkeypatch.setattr(light, "FLUSH_BYTES", 1)
    from sparktf.tfrecord.decode import Decoder

    batches = light.read(splits, Decoder(schema, "Example"), ReadSettings(batch_size=100),
                         lambda b, s: b)
    sizes = []
    with pytest.raises(StopIteration) as stop:
        while True:
            sizes.append(next(batches).num_rows)
    assert sizes == [light.FIRST_ROWS, 100 - light.FIRST_ROWS]  # then the budget is out
    assert stop.value.value == (0, 100)  # split 0, its first 100 rows sent


def corrupt_copy(split: Split, folder: Path, offset: int) -> Split:
    blob = bytearray(Path(split.path).read_bytes())
    blob[offset] ^= 0xFF
    path = folder / ("bad-" + Path(split.path).name)
    path.write_bytes(bytes(blob))
    return Split(str(path), 0, len(blob), len(blob))


@pytest.mark.parametrize("where", ["first file", "second file", "truncated"])
def test_a_fault_is_reported_as_the_tf_data_path_reports_it(tmp_path, monkeypatch,
                                                             where: str) -> None:
    splits, schema, settings, spec = dataset(tmp_path, "files")
    monkeypatch.setattr(light, "LIGHT_SECONDS", 1e9)
    index = 0 if where == "first file" else 1
    if where == "truncated":
        blob = Path(splits[1].path).read_bytes()[:-7]
        Path(splits[1].path).write_bytes(blob)
        splits[1] = Split(splits[1].path, 0, len(blob), len(blob))
    else:
        splits[index] = corrupt_copy(splits[index], tmp_path, 5000 if index == 0 else 300)
    errors = []
    for light_start in (False, True):
        with pytest.raises(TFRecordError) as caught:
            read(splits, schema, settings, spec, light_start=light_start)
        errors.append(str(caught.value))
    assert errors[0] == errors[1], errors
    assert ("truncated" if where == "truncated" else "bad-e" if index else "bad-big") \
        in errors[0], errors[0]


def test_skip_modes_a_spent_budget_and_tensorflow_read_through_tf_data(monkeypatch) -> None:
    import sparktf._tf

    monkeypatch.setattr(sparktf._tf, "_TF", None)  # as in a worker of PySpark's own daemon
    monkeypatch.setattr(light, "_spent", 0.0)
    assert light.wanted(ReadSettings())
    assert not light.wanted(ReadSettings(ignore_corrupt_records=True))
    assert not light.wanted(ReadSettings(ignore_corrupt_files=True))
    monkeypatch.setattr(light, "_spent", light.LIGHT_SECONDS)  # this worker's second is used
    assert not light.wanted(ReadSettings())
    monkeypatch.undo()
    monkeypatch.setattr(light, "_spent", 0.0)
    sparktf._tf.tensorflow()
    assert not light.wanted(ReadSettings())


def test_a_workers_tasks_share_one_budget(tmp_path, monkeypatch) -> None:
    """Many small tasks in one reused worker do not each read a second light."""
    splits, schema, settings, spec = dataset(tmp_path, "files")
    monkeypatch.setattr(light, "_spent", 0.0)
    monkeypatch.setattr(light, "LIGHT_SECONDS", 5.0)
    monkeypatch.setattr(light, "FLUSH_BYTES", 0)
    from sparktf.tfrecord.decode import Decoder

    def task() -> tuple[int, int]:
        batches = light.read(splits[1:], Decoder(schema, "Example"), settings, lambda b, s: b)
        while True:
            try:
                next(batches)
            except StopIteration as stop:
                return stop.value

    assert task() == (3, 0)  # three small files, read light
    assert 0 < light._spent < light.LIGHT_SECONDS
    ticks = iter(range(10**6))
    monkeypatch.setattr(light.time, "perf_counter", lambda: next(ticks) * 10.0)  # 10 s a call
    assert task() == (0, 9)  # what is left of the budget is out after the first batch
    assert light._spent >= light.LIGHT_SECONDS


PROTOS_ALONE = """
import sys
from sparktf.tfrecord.protos import example_classes
from sparktf.tfrecord.infer import infer_features
classes = example_classes()
stats = infer_features([sys.argv[1]], record_type="Example", compression=None, sample_records=5)
print(sorted(stats), classes.Example.DESCRIPTOR.file.name, "tensorflow" in sys.modules)
"""


def test_example_classes_are_tensorflows_own_without_importing_it(tmp_path) -> None:
    """A fresh process infers a schema with TensorFlow's Example classes and never imports
    TensorFlow; the classes parse what TensorFlow's own serialise, field for field."""
    split = write(tmp_path / "a.tfrecord", EXAMPLE, "Example", 0, 5)
    done = subprocess.run([sys.executable, "-c", PROTOS_ALONE, split.path],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["['id',", "'raw',", "'s',", "'x']",
                                   "tensorflow/core/example/example.proto", "False"]
    from sparktf._tf import example_pb2
    from sparktf.tfrecord.protos import example_classes

    theirs = example_pb2().SequenceExample()
    theirs.context.feature["id"].int64_list.value.append(7)
    theirs.feature_lists.feature_list["q"].feature.add().float_list.value.extend([1.5, -2.0])
    ours = example_classes().SequenceExample.FromString(theirs.SerializeToString())
    assert ours.SerializeToString() == theirs.SerializeToString()
    assert list(ours.feature_lists.feature_list["q"].feature[0].float_list.value) == [1.5, -2.0]


def test_example_classes_fall_back_to_tensorflows_module(monkeypatch) -> None:
    from sparktf.tfrecord import protos

    protos.example_classes.cache_clear()
    monkeypatch.setattr(protos, "_FILES", ("no_such_pb2.py",))
    try:
        fallback = protos.example_classes()
        from sparktf._tf import example_pb2

        assert fallback.Example is example_pb2().Example
    finally:
        protos.example_classes.cache_clear()
    monkeypatch.undo()
    assert protos.example_classes().Example is not example_pb2().Example


NO_TENSORFLOW = '''
import builtins, sys
_import = builtins.__import__


def guarded(name, *args, **kwargs):
    if name == "tensorflow" or name.startswith("tensorflow."):
        raise ImportError(f"a test forbids importing {name} in {sys.argv}")
    return _import(name, *args, **kwargs)


builtins.__import__ = guarded
'''

PLAIN_SESSION = '''
import contextlib, io, json, sys
from pyspark.sql import SparkSession
import sparktf
spark = (SparkSession.builder.master("local[2]").config("spark.driver.host", "127.0.0.1")
         .config("spark.ui.showConsoleProgress", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
df = sparktf.read_tfrecords(spark, sys.argv[1])
limited = df.limit(5).toPandas()
taken = df.take(5)
with contextlib.redirect_stdout(io.StringIO()) as shown:
    df.show()
everything = df.toPandas()
print(json.dumps({
    "limit": [[int(i), None if x is None else [float(v) for v in x]]
              for i, x in zip(limited["id"], limited["x"])],
    "take": [[r.id, r.x] for r in taken],
    "shown": shown.getvalue().count(chr(10)) - 5,
    "all": sorted(int(i) for i in everything["id"]),
    "tensorflow": "tensorflow" in sys.modules,
}))
'''


def test_a_plain_session_reads_small_data_without_importing_tensorflow(tmp_path) -> None:
    """A session made without configure_session (PySpark's own daemon): the first actions
    a user tries, and toPandas() of every row, on the walk-through's size, in a whole
    process where importing TensorFlow fails (driver and Python workers alike)."""
    data = tmp_path / "data"
    data.mkdir()
    for part in range(3):
        write(data / f"part-{part}.tfrecord", StructType(EXAMPLE.fields[:2]), "Example",
              part * 300, 300)
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NO_TENSORFLOW)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(guard), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", PLAIN_SESSION, str(data)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {i: [i / 4] * (i % 5) or None for i in range(900)}
    for name in ("limit", "take"):
        assert len(got[name]) == 5 and all(x == expected[i] for i, x in got[name]), got[name]
    assert got["shown"] == 20 and got["all"] == list(range(900))
    assert got["tensorflow"] is False
