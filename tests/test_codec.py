"""Example/SequenceExample encoding and bulk decoding, checked against TensorFlow's protobufs."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from sparktf.errors import SchemaError, TFRecordError
from sparktf.spark.api import parse_schema_hint  # noqa: F401  (import check: no Spark needed)
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.encode import Encoder, varints
from sparktf.tfrecord.framing import frame
from sparktf.tfrecord.reader import ReadSettings, read_file

example_pb2 = pytest.importorskip("tensorflow.core.example.example_pb2")
feature_pb2 = pytest.importorskip("tensorflow.core.example.feature_pb2")

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FLOAT32 = st.floats(width=32, allow_nan=False)
TEXT = st.text(max_size=8)


def _rows():
    cell = {
        "i": INT64,
        "n": st.integers(min_value=-(2**31), max_value=2**31 - 1),
        "f": FLOAT32,
        "d": FLOAT32.map(float),
        "b": st.booleans(),
        "s": TEXT,
        "raw": st.binary(max_size=8),
        "fa": st.lists(FLOAT32, max_size=5),
        "ia": st.lists(INT64, max_size=5),
        "sa": st.lists(TEXT, max_size=3),
    }
    row = st.fixed_dictionaries({k: st.one_of(st.none(), v) for k, v in cell.items()})
    return st.lists(row, min_size=1, max_size=12)


def _schema() -> StructType:
    from pyspark.sql.types import (
        ArrayType,
        BinaryType,
        BooleanType,
        DoubleType,
        FloatType,
        IntegerType,
        LongType,
        StringType,
        StructField,
    )

    return StructType([
        StructField("i", LongType()), StructField("n", IntegerType()),
        StructField("f", FloatType()), StructField("d", DoubleType()),
        StructField("b", BooleanType()), StructField("s", StringType()),
        StructField("raw", BinaryType()), StructField("fa", ArrayType(FloatType())),
        StructField("ia", ArrayType(LongType())), StructField("sa", ArrayType(StringType())),
    ])


def _batch(schema: StructType, rows: list[dict]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows, schema=to_arrow_schema(schema))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows())
def test_round_trip_through_tensorflow_protobuf(rows: list[dict]) -> None:
    schema = _schema()
    records = Encoder(schema, "Example").encode(_batch(schema, rows))
    for row, data in zip(rows, records):
        features = example_pb2.Example.FromString(data).features.feature
        for name, value in row.items():
            assert (name in features) == (value is not None), name
    decoded = Decoder(schema, "Example").decode(records, "mem", 0).to_pylist()
    assert decoded == rows
    slow = Decoder(schema, "Example")._decode_slow(records, "mem", 0).to_pylist()
    assert slow == rows


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(st.lists(INT64, max_size=3), max_size=3)),
                min_size=1, max_size=8))
def test_sequence_example_feature_lists_round_trip(lists) -> None:
    schema = StructType.fromJson({"type": "struct", "fields": [
        {"name": "q", "type": {"type": "array", "elementType": {
            "type": "array", "elementType": "long", "containsNull": True},
            "containsNull": True}, "nullable": True, "metadata": {}}]})
    rows = [{"q": v} for v in lists]
    records = Encoder(schema, "SequenceExample").encode(_batch(schema, rows))
    for row, data in zip(rows, records):
        message = example_pb2.SequenceExample.FromString(data)
        got = message.feature_lists.feature_list
        if row["q"] is None:
            assert "q" not in got
        else:
            assert [list(f.int64_list.value) for f in got["q"].feature] == row["q"]
    assert Decoder(schema, "SequenceExample").decode(records, "m", 0).to_pylist() == rows


@given(st.lists(INT64, max_size=50))
def test_vectorised_varints_match_protobuf(values: list[int]) -> None:
    buf, sizes = varints(np.array(values, dtype=np.int64))
    message = feature_pb2.Int64List(value=values).SerializeToString()
    expected = message[1 + len(_varint_prefix(message)) :] if values else b""
    assert buf.tobytes() == expected
    assert int(sizes.sum()) == len(expected)


def _varint_prefix(message: bytes) -> bytes:
    i = 1
    while message[i] & 0x80:
        i += 1
    return message[1 : i + 1]


def test_special_floats_and_int64_extremes_survive() -> None:
    schema = StructType.fromJson(_schema().jsonValue())
    rows = [{"i": 2**63 - 1, "fa": [math.inf, -math.inf, math.nan], "ia": [-(2**63), 0]}]
    full = [{f.name: r.get(f.name) for f in schema.fields} for r in rows]
    records = Encoder(schema, "Example").encode(_batch(schema, full))
    out = Decoder(schema, "Example").decode(records, "m", 0).to_pylist()[0]
    assert out["i"] == 2**63 - 1 and out["ia"] == [-(2**63), 0]
    assert out["fa"][:2] == [math.inf, -math.inf] and math.isnan(out["fa"][2])


def test_parsers_leave_no_generated_source_in_the_temp_dir(tmp_path, monkeypatch) -> None:
    import tempfile

    from sparktf.tfrecord import decode, reader

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where autograph would write
    monkeypatch.setattr(decode, "_PARSERS", {})  # trace anew
    monkeypatch.setattr(reader, "_PIPELINES", {})
    schema = StructType.fromJson(_schema().jsonValue())
    records = Encoder(schema, "Example").encode(_batch(schema, [{"i": 1}]))
    for record_type in ("Example", "SequenceExample"):
        Decoder(schema, record_type).decode(records, "m", 0)
    path = tmp_path / "one.tfrecord"
    path.write_bytes(b"".join(frame(r) for r in records))
    assert [b.num_rows for b in read_file(str(path), Decoder(schema, "Example"),
                                          ReadSettings())] == [1]
    assert list(tmp_path.iterdir()) == [path]  # a file per trace and process, never removed


def _example(**features) -> bytes:
    message = example_pb2.Example()
    for name, (kind, values) in features.items():
        getattr(message.features.feature[name], f"{kind}_list").value.extend(values)
    return message.SerializeToString()


def _decode(ddl_fields: list[tuple[str, str]], records: list[bytes], **kw) -> list[dict]:
    fields = [{"name": n, "type": t, "nullable": True, "metadata": {}} for n, t in ddl_fields]
    schema = StructType.fromJson({"type": "struct", "fields": fields})
    return Decoder(schema, "Example", **kw).decode(records, "f.tfrecord", 10).to_pylist()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 6), st.sampled_from([None, 0, 1, 2, 3])),
                min_size=1, max_size=6))
def test_even_batches_parse_fixed_width_until_a_batch_is_not(tmp_path_factory, runs) -> None:
    """Runs of records with the same lengths switch to fixed-width parsing; any change (another
    length, an empty list, a missing feature) must still read back exactly."""
    rows = []
    for count, width in runs:
        for _ in range(count):
            i = len(rows)
            rows.append({"id": i, "x": None if width is None else [float(i)] * width,
                         "n": None if width == 0 else i * 7})
    schema = StructType.fromJson({"type": "struct", "fields": [
        {"name": "id", "type": "long", "nullable": True, "metadata": {}},
        {"name": "x", "type": {"type": "array", "elementType": "float", "containsNull": True},
         "nullable": True, "metadata": {}},
        {"name": "n", "type": "integer", "nullable": True, "metadata": {}}]})
    path = tmp_path_factory.mktemp("even") / "runs.tfrecord"
    path.write_bytes(b"".join(frame(r) for r in Encoder(schema, "Example").encode(
        _batch(schema, rows))))
    decoder = Decoder(schema, "Example")
    got = [r for b in read_file(str(path), decoder, ReadSettings(batch_size=2))
           for r in b.to_pylist()]
    assert got == rows


def test_fixed_width_parsing_is_used_and_given_up_once_lengths_change() -> None:
    decoder = Decoder(StructType.fromJson({"type": "struct", "fields": [
        {"name": "x", "type": {"type": "array", "elementType": "float", "containsNull": True},
         "nullable": True, "metadata": {}}]}), "Example")
    even = [_example(x=("float", [1.0, 2.0])), _example(x=("float", [3.0, 4.0]))]
    assert decoder.decode(even, "f", 0).to_pylist() == [{"x": [1.0, 2.0]}, {"x": [3.0, 4.0]}]
    assert decoder.widths == {"x": 2}
    assert decoder.decode(even[::-1], "f", 2).to_pylist()[0] == {"x": [3.0, 4.0]}
    uneven = [_example(x=("float", [5.0])), _example(y=("float", [1.0]))]
    assert decoder.decode(uneven, "f", 4).to_pylist() == [{"x": [5.0]}, {"x": None}]
    decoder.decode(even, "f", 6)
    assert decoder.widths == {}  # ragged from the first uneven batch on


def test_int64_features_read_as_float_when_hinted_even_mixed_with_floats() -> None:
    records = [_example(x=("int64", [1, 2])), _example(x=("float", [0.5]))]
    arr = {"type": "array", "elementType": "double", "containsNull": True}
    assert _decode([("x", arr)], records) == [{"x": [1.0, 2.0]}, {"x": [0.5]}]


def test_bytes_read_as_boolean() -> None:
    records = [_example(b=("bytes", [b"true"])), _example(b=("bytes", [b"0"]))]
    assert _decode([("b", "boolean")], records) == [{"b": True}, {"b": False}]


@pytest.mark.parametrize(
    ("fields", "records", "match"),
    [
        ([("x", "float")], [_example(x=("float", [1.0])), _example(x=("float", [1.0, 2.0, 3.0]))],
         r"f.tfrecord: record 11: feature 'x': column type float expects one value, found 3"),
        ([("x", "long")], [_example(x=("float", [1.0]))],
         r"record 10: feature 'x' is a float list, but column type bigint"),
        ([("x", "integer")], [_example(x=("int64", [2**40]))],
         r"f.tfrecord: record 10: feature 'x': value 1099511627776 does not fit column type int"),
        ([("x", "boolean")], [_example(x=("bytes", [b"maybe"]))],
         r"feature 'x': expected a boolean \(true/false/1/0\), found b'maybe'"),
        ([("x", "string")], [_example(x=("bytes", [b"\xff\xfe"]))],
         r"feature 'x': value is not valid UTF-8"),
    ],
)
def test_decode_errors_name_file_record_and_feature(fields, records, match) -> None:
    with pytest.raises(TFRecordError, match=match):
        _decode(fields, records)


def test_non_example_payload_is_named() -> None:
    with pytest.raises(TFRecordError, match=r"f.tfrecord: record 11: not a valid tf.train.Example"):
        _decode([("x", "float")], [_example(x=("float", [1.0])), b"\xff\xff\xff"])


def test_skip_mode_drops_undecodable_records() -> None:
    fields = [{"name": "x", "type": "float", "nullable": True, "metadata": {}}]
    decoder = Decoder(StructType.fromJson({"type": "struct", "fields": fields}), "Example",
                      skip_corrupt=True)
    out = decoder.decode([_example(x=("float", [1.0])), b"\xff\xff\xff"], "f", 0).to_pylist()
    assert out == [{"x": 1.0}] and decoder.skipped == 1


def test_missing_feature_is_null_but_not_for_non_nullable() -> None:
    records = [_example(x=("float", [1.0])), _example(y=("float", [2.0]))]
    assert _decode([("x", "float")], records) == [{"x": 1.0}, {"x": None}]
    schema = StructType.fromJson({"type": "struct", "fields": [
        {"name": "x", "type": "float", "nullable": False, "metadata": {}}]})
    with pytest.raises(TFRecordError, match=r"f: record 1: feature 'x' is missing, but the column "
                       "is not nullable"):
        Decoder(schema, "Example").decode(records, "f", 0)


def test_empty_list_and_missing_feature_differ_for_arrays() -> None:
    message = example_pb2.Example()
    message.features.feature["x"].float_list.SetInParent()
    records = [message.SerializeToString(), _example(y=("float", [1.0]))]
    arr = {"type": "array", "elementType": "float", "containsNull": True}
    assert _decode([("x", arr)], records) == [{"x": []}, {"x": None}]


@pytest.mark.parametrize("ddl", ["map<string,int>", "decimal(10,2)", "timestamp",
                                 "struct<a:int>", "array<array<int>>"])
def test_unsupported_column_types_are_refused_before_writing(ddl: str) -> None:
    schema = StructType.fromJson({"type": "struct", "fields": [
        {"name": "col", "type": _json_type(ddl), "nullable": True, "metadata": {}}]})
    with pytest.raises(SchemaError, match=r"column 'col': type .* is not supported by TFRecord"):
        Encoder(schema, "Example")


def _json_type(ddl: str):
    return {
        "map<string,int>": {"type": "map", "keyType": "string", "valueType": "integer",
                            "valueContainsNull": True},
        "decimal(10,2)": "decimal(10,2)",
        "timestamp": "timestamp",
        "struct<a:int>": {"type": "struct", "fields": [
            {"name": "a", "type": "integer", "nullable": True, "metadata": {}}]},
        "array<array<int>>": {"type": "array", "elementType": {
            "type": "array", "elementType": "integer", "containsNull": True}, "containsNull": True},
    }[ddl]


def test_null_inside_an_array_is_refused() -> None:
    schema = StructType.fromJson({"type": "struct", "fields": [{"name": "a", "type": {
        "type": "array", "elementType": "float", "containsNull": True}, "nullable": True,
        "metadata": {}}]})
    with pytest.raises(TFRecordError, match="column 'a': an array holds a null element"):
        Encoder(schema, "Example").encode(_batch(schema, [{"a": [1.0, None]}]))
