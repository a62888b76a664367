"""Issue 5's bad-input catalogue, TFRecord side: the cases test_datasource.py and
test_codec.py do not already cover, each ending in a specific error or a defined result.

Covered elsewhere: corrupt data/length CRC and truncation, a non-Example payload, gzip
without ``.gz`` and a plain file named ``.gz``, the wrong ``recordType``, kinds differing
across files, unicode and dotted names, unsupported column types, malformed schema hints, an
existing output path (test_datasource.py, test_codec.py); random and damaged bytes
(test_fuzz.py). test_datasource.py reads a zero-byte file with a hint; here it is also read
without one, under each compression, and beside a data file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import FloatType, LongType, StructField, StructType

import sparktf
from sparktf.errors import TFRecordError
from sparktf.spark.errors import reraise

example_pb2 = pytest.importorskip("tensorflow.core.example.example_pb2")

MB64 = 64 << 20


def _records(out: Path, cls: Any = None) -> list[Any]:
    """The records of the data files under ``out``, parsed with TensorFlow's protobufs."""
    from sparktf.tfrecord.framing import list_data_files, scan_records

    cls = cls or example_pb2.Example
    return [cls.FromString(item[2]) for path in list_data_files(str(out))
            for item in scan_records(path, "none")]


def _no_success_under(root: Path) -> bool:
    return not list(root.rglob("_SUCCESS"))


# -- a zero-byte file ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "options", "expected"),
    [
        (["empty.tfrecord"], {}, (TFRecordError, r"empty.tfrecord: no features found in the "
                                                 r"sampled records; give a schema hint")),
        (["empty.tfrecord"], {"schema_hint": "struct<x:float>"}, []),
        (["empty.tfrecord"], {"schema_hint": "struct<x:float>", "compression": "gzip"}, []),
        (["empty.tfrecord"], {"schema_hint": "struct<x:float>", "compression": "zlib"}, []),
        (["empty.tfrecord.gz"], {"schema_hint": "struct<x:float>"}, []),
        (["empty.tfrecord", "data.tfrecord"], {}, [2.5]),  # inferred from the other file
    ],
)
def test_zero_byte_file(spark, tmp_path: Path, files, options, expected) -> None:
    from sparktf.tfrecord.framing import RecordFileWriter

    for name in files:
        if name.startswith("empty"):
            (tmp_path / name).write_bytes(b"")
        else:
            message = example_pb2.Example()
            message.features.feature["x"].float_list.value.append(2.5)
            with RecordFileWriter(str(tmp_path / name)) as writer:
                writer.write(message.SerializeToString())
    paths = [str(tmp_path / n) for n in files]
    if isinstance(expected, tuple):
        with pytest.raises(expected[0], match=expected[1]):
            sparktf.read_tfrecords(spark, paths, **options)
        return
    df = sparktf.read_tfrecords(spark, paths, **options)
    assert df.schema.simpleString() == "struct<x:float>"
    assert [r.x for r in df.collect()] == expected


# -- a 64 MB record --------------------------------------------------------------------------


def _big(spark) -> Any:
    """One row: id 7 and a 64 MB binary value (0xab repeated), made in the JVM (from the id,
    so that the optimizer does not fold it into a 64 MB literal in the plan)."""
    return spark.range(7, 8, numPartitions=1).select(
        "id", F.expr(f"unhex(repeat(substr(concat('ab', id), 1, 2), {MB64}))").alias("blob"))


@pytest.mark.parametrize(
    ("record_type", "compression"),
    [("Example", "none"), ("Example", "gzip"), ("ByteArray", "none")],
)
def test_64mb_record_round_trip(spark, tmp_path: Path, record_type: str, compression: str) -> None:
    out = tmp_path / "big"
    df = _big(spark)
    if record_type == "ByteArray":
        df = df.select(F.col("blob").alias("byteArray"))
    sparktf.write_tfrecords(df, str(out), record_type=record_type, compression=compression)
    hint = "struct<blob:binary,id:bigint>" if record_type == "Example" else None
    back = sparktf.read_tfrecords(spark, str(out), schema_hint=hint, recordType=record_type)
    column = "blob" if record_type == "Example" else "byteArray"
    row = back.select(F.length(column).alias("n"), F.sha2(column, 256).alias("sha"),
                      *(["id"] if hint else [])).collect()
    assert len(row) == 1
    assert row[0]["n"] == MB64
    assert row[0]["sha"] == hashlib.sha256(b"\xab" * MB64).hexdigest()
    if hint:
        assert row[0]["id"] == 7


MEMORY_PROBE = """
import json, resource, sys
import pyarrow as pa
from pyspark.sql.types import BinaryType, LongType, StructField, StructType
from sparktf._tf import tensorflow
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.encode import Encoder
from sparktf.tfrecord.framing import RecordFileWriter, frame
from sparktf.tfrecord.reader import ReadSettings, read_file

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

schema = StructType([StructField("id", LongType()), StructField("blob", BinaryType())])
def batch(size):
    return pa.record_batch([pa.array([1]), pa.array([b"\\xab" * size], pa.binary())],
                           names=["id", "blob"])
def write(path, size):
    with RecordFileWriter(path) as writer:
        writer.write_framed(b"".join(map(frame, Encoder(schema, "Example").encode(batch(size)))))
def read(path):
    return sum(b.num_rows for b in read_file(path, Decoder(schema, "Example"), ReadSettings()))

tensorflow()
small, big = sys.argv[1] + "/small.tfrecord", sys.argv[1] + "/big.tfrecord"
write(small, 10); read(small)  # warm up: imports, tf.data, first allocations
base = peak()
write(big, int(sys.argv[2]))
wrote = peak()
rows = read(big)
print(json.dumps({"write": wrote - base, "read": peak() - base, "rows": rows}))
"""


def test_64mb_record_memory_stays_a_few_copies(tmp_path: Path) -> None:
    """Writing and reading one 64 MB record costs a bounded number of copies of it (what a
    Spark Python worker holds for such a record), not memory that grows with more."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path), str(MB64)],
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    peaks = json.loads(done.stdout.strip().splitlines()[-1])
    assert peaks["rows"] == 1
    assert peaks["write"] < 6 * MB64, peaks  # the batch, its encoding, the framed record
    assert peaks["read"] < 6 * MB64, peaks  # tf.data's record, the tensor, numpy, Arrow


# -- missing features and nulls on write -----------------------------------------------------


@pytest.fixture()
def with_gaps(spark, tmp_path: Path) -> Path:
    """One file of 4 records written from rows with nulls (record order kept)."""
    df = spark.createDataFrame(
        [(0, 1.5, [1.0], "a"), (1, None, None, None), (2, 2.5, [], ""), (3, None, [2.0], None)],
        "id bigint, v float, xs array<float>, s string",
    )
    out = tmp_path / "gaps"
    sparktf.write_tfrecords(df.coalesce(1), str(out))
    return out


def test_null_on_write_leaves_the_feature_out(with_gaps: Path) -> None:
    present = [sorted(r.features.feature) for r in _records(with_gaps)]
    assert present == [["id", "s", "v", "xs"], ["id"], ["id", "s", "v", "xs"], ["id", "xs"]]


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (None, {"v": [1.5, None, 2.5, None], "xs": [[1.0], None, [], [2.0]],
                "s": ["a", None, "", None]}),
        ("struct<v:double,xs:array<double>,s:binary>",
         {"v": [1.5, None, 2.5, None], "xs": [[1.0], None, [], [2.0]],
          "s": [b"a", None, b"", None]}),
    ],
)
def test_feature_missing_in_some_records_reads_as_null(spark, with_gaps, hint, expected) -> None:
    df = sparktf.read_tfrecords(spark, str(with_gaps), schema_hint=hint)
    rows = sorted(df.collect(), key=lambda r: r.id)
    got = {name: [r[name] for r in rows] for name in expected}
    got["s"] = [bytes(v) if isinstance(v, bytearray) else v for v in got["s"]]
    assert got == expected


@pytest.mark.parametrize(
    ("field", "match"),
    [
        (StructField("v", FloatType(), False),
         r"gaps/part-\S+\.tfrecord: record 1: feature 'v' is missing, but the column is not "
         r"nullable"),
        (StructField("absent", LongType(), False),
         r"gaps/part-\S+\.tfrecord: record 0: feature 'absent' is missing, but the column is "
         r"not nullable"),
    ],
)
def test_missing_feature_in_a_non_nullable_column(spark, with_gaps, field, match) -> None:
    sparktf.register(spark)
    df = spark.read.format("tfrecord").schema(StructType([field])).load(str(with_gaps))
    with pytest.raises(TFRecordError, match=match), reraise():
        df.collect()


# -- NaN, ±Inf, int64 extremes, empty arrays and strings, through Spark ---------------------

F32_MAX = 3.4028234663852886e38
F32_TINY = 1.401298464324817e-45  # the smallest subnormal float32


NAN, INF = math.nan, math.inf
SPECIAL = {
    "floats": ("f float, d double, fa array<float>", [
        (NAN, NAN, [NAN, INF, -INF]), (INF, INF, []), (-INF, -INF, [-0.0]),
        (-0.0, -0.0, [F32_MAX, -F32_MAX]), (F32_MAX, 0.5, [F32_TINY]), (F32_TINY, None, None),
    ]),
    "integers": ("i bigint, n int, ia array<bigint>", [
        (-(2**63), -(2**31), [-(2**63), 2**63 - 1]), (2**63 - 1, 2**31 - 1, []), (0, 0, [0]),
        (-1, -1, None),
    ]),
    "strings": ("s string, b binary, sa array<string>, ba array<binary>", [
        ("", b"", [], []), ("\u0000", b"\x00", [""], [b""]), ("é" * 3, b"\xff" * 5,
                                                               ["", "a", ""], [b"\x00", b""]),
    ]),
}


@pytest.mark.parametrize("group", sorted(SPECIAL))
def test_special_values_round_trip_through_spark(spark, tmp_path: Path, group: str) -> None:
    """NaN, ±Inf, -0.0, float32 extremes, int64/int32 extremes, empty arrays and empty
    strings come back exactly (empty arrays as [], not null)."""
    ddl, rows = SPECIAL[group]
    df = spark.createDataFrame([(i, *r) for i, r in enumerate(rows)], f"id bigint, {ddl}")
    sparktf.write_tfrecords(df, str(tmp_path / "out"))
    hint = "struct<id:bigint," + ",".join(c.strip().replace(" ", ":") for c in ddl.split(",")) + ">"
    back = sparktf.read_tfrecords(spark, str(tmp_path / "out"), schema_hint=hint)
    got = [tuple(r)[1:] for r in sorted(back.collect(), key=lambda r: r.id)]
    assert _same([list(g) for g in got], [list(r) for r in rows]), got


def test_double_beyond_float32_rounds_to_inf(spark, tmp_path: Path) -> None:
    """double is stored as float32 (documented): beyond its range it rounds to ±inf, below
    its smallest subnormal to 0."""
    df = spark.createDataFrame([(0, 1e300), (1, -1e300), (2, 1e-300)], "id bigint, d double")
    sparktf.write_tfrecords(df, str(tmp_path / "out"))
    back = sparktf.read_tfrecords(spark, str(tmp_path / "out"), schema_hint="struct<d:double>")
    assert _same([r.d for r in sorted(back.collect(), key=lambda r: r.id)], [INF, -INF, 0.0])


def _same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and -0.0 told apart from 0.0."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, (bytes, bytearray)) and isinstance(b, (bytes, bytearray)):
        return bytes(a) == bytes(b)
    return a == b and type(a) is type(b)


def test_empty_values_are_inferred_and_read_back(spark, tmp_path: Path) -> None:
    """Every record holds an empty list or an empty string: inference still finds the kind."""
    df = spark.createDataFrame([([], [], "", b"")] * 3,
                               "fa array<float>, sa array<string>, s string, b binary")
    sparktf.write_tfrecords(df, str(tmp_path / "e"))
    back = sparktf.read_tfrecords(spark, str(tmp_path / "e"))
    assert back.schema.simpleString() == (
        "struct<b:string,fa:array<float>,s:string,sa:array<string>>")
    assert [r.asDict() for r in back.collect()] == [{"b": "", "fa": [], "s": "", "sa": []}] * 3


def test_empty_feature_lists_through_spark(spark, tmp_path: Path) -> None:
    rows = [(0, [[]]), (1, []), (2, None), (3, [[], [1], []])]
    df = spark.createDataFrame(rows, "id bigint, q array<array<bigint>>")
    sparktf.write_tfrecords(df, str(tmp_path / "s"), record_type="SequenceExample")
    back = sparktf.read_tfrecords(spark, str(tmp_path / "s"), recordType="SequenceExample",
                                  schema_hint="struct<id:bigint,q:array<array<bigint>>>")
    assert sorted((r.id, r.q) for r in back.collect()) == rows


# -- an output path that is not writable -----------------------------------------------------


def _blocked(tmp_path: Path, case: str) -> tuple[Path, Path]:
    """(the output path, the regular file in its way)."""
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"not a directory")
    return (blocker, blocker) if case == "file" else (blocker / "out", blocker)


@pytest.mark.parametrize(
    ("case", "mode", "match"),
    [
        ("file", "errorifexists", r"output path {out} already exists \(1 entries\)"),
        ("file", "overwrite", r"output path {out} exists and is not a directory"),
        ("file", "append", r"output path {out} exists and is not a directory"),
        ("parent", "errorifexists", r"output path {out} is not writable: cannot create "
                                    r"{out}/_temporary/\w+ \(Not a directory\)"),
    ],
)
def test_output_path_blocked_by_a_file(spark, tmp_path, case, mode, match) -> None:
    out, blocker = _blocked(tmp_path, case)
    df = spark.createDataFrame([(1,)], "x bigint")
    with pytest.raises(TFRecordError, match=match.format(out=out)):
        sparktf.write_tfrecords(df, str(out), mode=mode)
    assert blocker.read_bytes() == b"not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_output_path_blocked_by_a_file_through_the_raw_writer(spark, tmp_path: Path) -> None:
    out, blocker = _blocked(tmp_path, "file")
    sparktf.register(spark)
    writer = spark.createDataFrame([(1,)], "x bigint").write.format("tfrecord").mode("overwrite")
    match = (rf"output path {out} is not writable: cannot create {out}/_temporary/\w+ "
             r"\((Not a directory|File exists)\)")
    with pytest.raises(TFRecordError, match=match), reraise():
        writer.save(str(out))
    assert blocker.read_bytes() == b"not a directory" and _no_success_under(tmp_path)


def test_ignore_mode_with_a_file_in_the_way_writes_nothing(spark, tmp_path: Path) -> None:
    out, blocker = _blocked(tmp_path, "file")
    sparktf.write_tfrecords(spark.createDataFrame([(1,)], "x bigint"), str(out), mode="ignore")
    assert blocker.read_bytes() == b"not a directory"


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs Linux sysfs")
def test_output_path_on_a_file_system_that_refuses_writes(spark) -> None:
    """sysfs refuses new directories even to root (chmod does not stop root)."""
    out = "/sys/sparktf-test-output"
    df = spark.createDataFrame([(1,)], "x bigint")
    with pytest.raises(TFRecordError, match=rf"output path {out} is not writable: cannot create "
                       rf"{out}/_temporary/\w+ \(.+\)"):
        sparktf.write_tfrecords(df, out)
    assert not os.path.exists(out)

