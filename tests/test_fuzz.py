"""Fuzzing the TFRecord framing and the Example/SequenceExample decoding (issue 5).

Random and mutated bytes must end in a sparktf error or in a correct result: never another
exception type, never a hang, and never an allocation of what a corrupt length field claims.
The oracle for decoded values is TensorFlow's own protobuf classes. Set
``SPARKTF_FUZZ_EXAMPLES`` (default 60) for a deeper run.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import signal
import struct
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DataType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from sparktf.errors import SparkTFError
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.encode import Encoder
from sparktf.tfrecord.framing import (
    Problem,
    frame,
    masked_crc,
    scan_records,
)
from sparktf.tfrecord.reader import ReadSettings, read_file
from sparktf.tfrecord.splits import first_overrun
from sparktf.tfrecord.types import Column, columns_of

example_pb2 = pytest.importorskip("tensorflow.core.example.example_pb2")

EXAMPLES = int(os.environ.get("SPARKTF_FUZZ_EXAMPLES", "60"))  # more for a deeper run
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
COMPRESSIONS = ("none", "gzip", "zlib")
HUGE = (2**31, 2**32, 2**34, 2**40, 2**60, 2**63, 2**64 - 1)


# -- guards: time and memory -----------------------------------------------------------------


@contextlib.contextmanager
def bounded(*, seconds: int = 20, megabytes: float = 8.0) -> Iterator[None]:
    """Fail when the block runs longer than ``seconds`` or its Python allocations peak above
    ``megabytes`` (a corrupt length field must never be allocated)."""

    def too_slow(*_: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(seconds)
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
        assert peak < megabytes * 2**20, f"peak allocation {peak} bytes"
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- mutations -------------------------------------------------------------------------------

MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**20), st.integers(0, 7)),
    st.tuples(st.just("cut"), st.integers(0, 2**20)),
    st.tuples(st.just("insert"), st.integers(0, 2**20), st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("delete"), st.integers(0, 2**20), st.integers(1, 24)),
)


def mutate(blob: bytes, ops: list[tuple]) -> bytes:
    """Apply bit flips, truncations, insertions and deletions (positions wrap around)."""
    data = bytearray(blob)
    for op in ops:
        at = op[1] % (len(data) + 1)
        if op[0] == "flip" and data:
            data[at % len(data)] ^= 1 << op[2]
        elif op[0] == "cut":
            del data[at:]
        elif op[0] == "insert":
            data[at:at] = op[2]
        elif op[0] == "delete":
            del data[at : at + op[2]]
    return bytes(data)


def header(length: int) -> bytes:
    """A record header with a valid length CRC, claiming ``length`` data bytes."""
    raw = struct.pack("<Q", length)
    return raw + struct.pack("<I", masked_crc(raw))


def compress(blob: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(blob)
    return zlib.compress(blob) if compression == "zlib" else blob


def first_difference(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(np.frombuffer(a[:n], np.uint8) != np.frombuffer(b[:n], np.uint8))
    return int(diff[0]) if diff.size else n


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# -- framing ---------------------------------------------------------------------------------


@st.composite
def damaged_files(draw: st.DrawFn) -> tuple[list[bytes], bytes, str, bytes | None]:
    """Valid payloads, a damaged file that framed them, its compression, and the damaged
    uncompressed content when the damage was done before compressing (else None)."""
    payloads = draw(st.lists(st.binary(max_size=48), max_size=6))
    compression = draw(st.sampled_from(COMPRESSIONS))
    plain = b"".join(frame(p) for p in payloads)
    ops = draw(st.lists(MUTATION, min_size=1, max_size=3))
    if payloads and draw(st.booleans()):  # a header whose valid CRC claims a huge length
        k = draw(st.integers(0, len(payloads) - 1))
        at = sum(16 + len(p) for p in payloads[:k])
        length = draw(st.one_of(st.sampled_from(HUGE), st.integers(0, 2**64 - 1)))
        plain_damaged = plain[:at] + header(length) + plain[at + 12 :]
        return payloads, compress(plain_damaged, compression), compression, plain_damaged
    if compression == "none" or draw(st.booleans()):
        plain_damaged = mutate(plain, ops)
        return payloads, compress(plain_damaged, compression), compression, plain_damaged
    return payloads, mutate(compress(plain, compression), ops), compression, None


@FUZZ
@given(damaged_files())
def test_scan_records_survives_damaged_files(scratch: Path, case) -> None:
    payloads, damaged, compression, plain_damaged = case
    path = scratch / "scan.tfrecord"
    path.write_bytes(damaged)
    with bounded():
        items = list(scan_records(str(path), compression))
    for item in items[:-1]:  # only a data CRC fault lets the scan go on
        assert isinstance(item, tuple) or item.what == "corrupt data CRC", item
    for item in items:
        if isinstance(item, Problem):
            assert item.message().startswith(f"{path}: record {item.record} at byte offset ") or (
                item.offset == 0 and item.message().startswith(
                    f"{path} does not look like a TFRecord file: it looks like "))
        else:
            index, offset, data = item
            assert isinstance(index, int) and isinstance(offset, int) and isinstance(data, bytes)
    if plain_damaged is None:
        return
    good = [item for item in items if isinstance(item, tuple)]
    cut = first_difference(b"".join(frame(p) for p in payloads), plain_damaged)
    ends = np.cumsum([16 + len(p) for p in payloads], dtype=np.int64)
    intact = [i for i, end in enumerate(ends.tolist()) if end <= cut]
    # every record wholly before the damage comes back unchanged, at its place and offset
    assert [(g[0], g[2]) for g in good[: len(intact)]] == [(i, payloads[i]) for i in intact]
    assert [g[1] for g in good[: len(intact)]] == [int(e) - 16 - len(payloads[i])
                                                   for i, e in zip(intact, ends.tolist())]
    if plain_damaged == b"".join(frame(p) for p in payloads):
        assert [g[2] for g in good] == payloads and len(items) == len(payloads)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from(COMPRESSIONS))
def test_scan_records_survives_random_bytes(scratch: Path, blob: bytes, compression: str) -> None:
    path = scratch / "random.tfrecord"
    path.write_bytes(blob)
    with bounded():
        items = list(scan_records(str(path), compression))
    assert all(isinstance(i, (tuple, Problem)) for i in items)
    if compression == "none" and blob:
        assert isinstance(items[-1], Problem) or first_overrun(str(path)) is None


@pytest.mark.parametrize("length", HUGE)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_huge_declared_length_is_reported_not_allocated(
    tmp_path: Path, length: int, compression: str
) -> None:
    path = tmp_path / "huge.tfrecord"
    path.write_bytes(compress(frame(b"ok") + header(length) + b"x" * 100, compression))
    with bounded(megabytes=4):
        items = list(scan_records(str(path), compression))
    assert items[0] == (0, 0, b"ok")
    what = f"truncated record: expected {length} data bytes and a CRC, found 100 bytes"
    assert items[1] == Problem(str(path), 1, 18, what)
    if compression == "none":
        overrun = first_overrun(str(path))
        assert overrun is not None and (overrun.record, overrun.offset) == (1, 18)
        assert f"record length {length} runs past the end of the file (112 bytes left)" in (
            overrun.what
        )
    # tf.data allocates the declared length: before the reader checked plain files first,
    # this crashed the process (SIGSEGV) for lengths beyond what memory can hold
    decoder = Decoder(_struct(x=BinaryType()), "Example")
    with pytest.raises(SparkTFError, match=rf"^{path}: record 1 at byte offset 18: {what}$"):
        list(read_file(str(path), decoder, ReadSettings(compression=compression)))


# -- the read path: tf.data, recovery, decoding ----------------------------------------------

ID_SCHEMA = StructType([StructField("id", LongType()), StructField("x", ArrayType(FloatType()))])


@st.composite
def damaged_example_files(draw: st.DrawFn) -> tuple[list[dict], bytes, str]:
    n = draw(st.integers(0, 12))
    rows = [{"id": i, "x": [float(i)] * (i % 4)} for i in range(n)]
    batch = pa.RecordBatch.from_pylist(rows, schema=to_arrow_schema(ID_SCHEMA))
    plain = b"".join(frame(r) for r in Encoder(ID_SCHEMA, "Example").encode(batch))
    compression = draw(st.sampled_from(COMPRESSIONS))
    if n and draw(st.booleans()):
        at = sum(16 + len(r) for r in Encoder(ID_SCHEMA, "Example").encode(batch)[: n // 2])
        length = draw(st.sampled_from(HUGE))
        damaged = compress(plain[:at] + header(length) + plain[at + 12 :], compression)
    else:
        ops = draw(st.lists(MUTATION, max_size=3))
        if draw(st.booleans()):
            damaged = compress(mutate(plain, ops), compression)
        else:
            damaged = mutate(compress(plain, compression), ops)
    return rows, damaged, compression


@FUZZ
@given(damaged_example_files(), st.booleans(), st.sampled_from([1, 3, 4096]))
def test_read_file_survives_damaged_files(scratch: Path, case, skip: bool, batch: int) -> None:
    rows, damaged, compression = case
    path = scratch / "read.tfrecord"
    path.write_bytes(damaged)
    settings_ = ReadSettings(compression=compression, batch_size=batch,
                             ignore_corrupt_files=skip, ignore_corrupt_records=skip)
    with bounded(megabytes=64):  # tf.data's own buffers are not traced; ours are
        try:
            got = [r for b in read_file(str(path), Decoder(ID_SCHEMA, "Example"), settings_)
                   for r in b.to_pylist()]
        except SparkTFError as exc:
            assert not skip, f"skip mode raised: {exc}"
            assert str(path) in str(exc)
            return
    if skip:  # the records kept are original records, in order
        ids = [r["id"] for r in got]
        assert ids == sorted(set(ids)) and all(rows[i] == r for i, r in zip(ids, got))
    else:  # nothing corrupt was met: the file is a valid prefix of the original
        assert got == rows[: len(got)]
        assert not any(isinstance(i, Problem) for i in scan_records(str(path), compression))


# -- decoding: random and mutated Example / SequenceExample payloads -----------------------


def _struct(**fields: DataType) -> StructType:
    return StructType([StructField(name, t, True) for name, t in fields.items()])


SCHEMAS: dict[str, tuple[StructType, str]] = {
    "example-basic": (_struct(id=LongType(), x=ArrayType(FloatType()), s=StringType(),
                              raw=BinaryType()), "Example"),
    "example-narrow": (_struct(flag=BooleanType(), n=IntegerType(), d=DoubleType(),
                               ia=ArrayType(LongType()), ba=ArrayType(BooleanType())), "Example"),
    "sequence": (_struct(ctx=LongType(), q=ArrayType(ArrayType(LongType())),
                         f=ArrayType(ArrayType(FloatType())), w=ArrayType(ArrayType(StringType()))),
                 "SequenceExample"),
}

_F32 = st.floats(width=32)
_I64 = st.integers(-(2**63), 2**63 - 1)
_VALUES: dict[type[DataType], st.SearchStrategy] = {
    LongType: _I64, IntegerType: st.integers(-(2**31), 2**31 - 1), FloatType: _F32,
    DoubleType: _F32.map(float), BooleanType: st.booleans(), StringType: st.text(max_size=6),
    BinaryType: st.binary(max_size=6),
}


def _cell(data_type: DataType) -> st.SearchStrategy:
    if isinstance(data_type, ArrayType):
        return st.lists(_cell(data_type.elementType), max_size=3)
    return _VALUES[type(data_type)]


def valid_records(schema: StructType, record_type: str) -> st.SearchStrategy[list[bytes]]:
    row = st.fixed_dictionaries(
        {f.name: st.one_of(st.none(), _cell(f.dataType)) for f in schema.fields}
    )

    def encode(rows: list[dict]) -> list[bytes]:
        batch = pa.RecordBatch.from_pylist(rows, schema=to_arrow_schema(schema))
        return Encoder(schema, record_type).encode(batch)

    return st.lists(row, min_size=1, max_size=5).map(encode)


@st.composite
def fuzzed_batches(draw: st.DrawFn, schema: StructType, record_type: str) -> list[bytes]:
    records = draw(valid_records(schema, record_type))
    out = []
    for record in records:
        how = draw(st.sampled_from(["keep", "mutate", "random", "merge"]))
        if how == "mutate":
            record = mutate(record, draw(st.lists(MUTATION, min_size=1, max_size=3)))
        elif how == "random":
            record = draw(st.binary(max_size=40))
        elif how == "merge":  # protobuf concatenation merges messages: repeated keys
            record = record + draw(st.sampled_from(records))
        out.append(record)
    return out


class Unfit(Exception):
    """The reference finds a record the decoder must refuse (or may read only leniently)."""


_KIND = {"bytes_list": "bytes", "int64_list": "int64", "float_list": "float"}


class Close:
    """A float from the reference: equal to the decoder's value exactly (NaN included), or
    within float32 rounding when it was converted from an int64."""

    def __init__(self, value: float, *, from_int: bool) -> None:
        self.value, self.from_int = value, from_int

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, float):
            return False
        if math.isnan(self.value):
            return math.isnan(other)
        if self.from_int:
            return math.isclose(self.value, other, rel_tol=2**-22)
        return self.value == other

    def __repr__(self) -> str:
        return f"Close({self.value!r})"


def _element(column: Column, kind: str, value: Any) -> Any:
    element = column.element
    if kind == "bytes":
        if isinstance(element, BinaryType):
            return value
        if isinstance(element, StringType):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                raise Unfit("not UTF-8") from None
        if value in (b"1", b"true", b"True", b"TRUE"):
            return True
        if value in (b"0", b"false", b"False", b"FALSE"):
            return False
        raise Unfit("not a boolean")
    if isinstance(element, BooleanType):
        return value != 0
    if isinstance(element, IntegerType):
        if not -(2**31) <= value < 2**31:
            raise Unfit("int overflow")
        return value
    if isinstance(element, LongType):
        return value
    return Close(float(np.float32(value)), from_int=kind == "int64")


def _values(column: Column, feature: Any, kinds: set[str]) -> list[Any]:
    field = feature.WhichOneof("kind")
    if field is None:
        return []
    kind = _KIND[field]
    if not column.accepts(kind):
        raise Unfit(f"{kind} list for {column.field.dataType.simpleString()}")
    kinds.add(kind)
    return [_element(column, kind, v) for v in getattr(feature, field).value]


def reference(schema: StructType, record_type: str, records: list[bytes]) -> list[dict]:
    """Each record as TensorFlow's protobuf classes read it; raises Unfit when it cannot be."""
    from google.protobuf.message import DecodeError

    cls = example_pb2.Example if record_type == "Example" else example_pb2.SequenceExample
    columns = columns_of(schema, record_type)
    kinds: dict[str, set[str]] = {c.name: set() for c in columns}
    rows = []
    for data in records:
        try:
            message = cls.FromString(data)
        except DecodeError:
            raise Unfit("not a message") from None
        row = {}
        for column in columns:
            if record_type == "Example":
                container = message.features.feature
            elif column.depth == 2:
                container = message.feature_lists.feature_list
            else:
                container = message.context.feature
            if column.name not in container:
                row[column.name] = None
            elif column.depth == 2:
                row[column.name] = [
                    _values(column, f, kinds[column.name])
                    for f in container[column.name].feature
                ]
            else:
                values = _values(column, container[column.name], kinds[column.name])
                if column.depth == 1:
                    row[column.name] = values
                elif len(values) > 1:
                    raise Unfit("several values for a scalar")
                else:
                    row[column.name] = values[0] if values else None
        rows.append(row)
    for name, seen in kinds.items():
        if len(seen) > 1 and seen != {"int64", "float"}:
            raise Unfit(f"{name}: kinds {seen} in one batch")
    return rows


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_decoder_survives_fuzzed_payloads(name: str) -> None:
    schema, record_type = SCHEMAS[name]

    @FUZZ
    @given(fuzzed_batches(schema, record_type), st.booleans())
    def check(records: list[bytes], as_tensor: bool) -> None:
        decode_and_compare(schema, record_type, records, as_tensor)

    check()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_decoder_survives_random_payloads(name: str) -> None:
    schema, record_type = SCHEMAS[name]

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(st.lists(st.binary(max_size=40), min_size=1, max_size=4))
    def check(records: list[bytes]) -> None:
        decode_and_compare(schema, record_type, records, True)

    check()


def decode_and_compare(
    schema: StructType, record_type: str, records: list[bytes], as_tensor: bool
) -> None:
    from sparktf._tf import tensorflow

    try:
        expected: list[dict] | None = reference(schema, record_type, records)
    except Unfit:
        expected = None
    batch: Any = tensorflow().constant(records, dtype=tensorflow().string) if as_tensor else records
    with bounded(megabytes=32):
        try:
            got = Decoder(schema, record_type).decode(batch, "fuzz.tfrecord", 7)
        except SparkTFError as exc:
            assert "fuzz.tfrecord: record " in str(exc), str(exc)
            assert expected is None, f"refused a batch protobuf reads: {exc}"
            # protobuf alone refuses too (its error, or protobuf's on a record only tf.io
            # takes); the light start then hands the records to tf.data, which says why
            with pytest.raises(SparkTFError, match="fuzz.tfrecord: record "):
                Decoder(schema, record_type).decode_records(records, "fuzz.tfrecord", 7)
            return
    assert got.schema == to_arrow_schema(schema) and got.num_rows == len(records)
    if expected is not None:
        assert expected == got.to_pylist()
    # protobuf alone (a task's first records in a process without TensorFlow): the same rows
    # wherever protobuf reads the records; where only tf.io's laxer parser takes them, it
    # refuses, and the light start hands those records to tf.data (sparktf.tfrecord.light)
    try:
        light = Decoder(schema, record_type).decode_records(records, "fuzz.tfrecord", 7)
    except SparkTFError as exc:
        assert expected is None, f"protobuf alone refused records protobuf reads: {exc}"
        return
    assert light.schema == got.schema and repr(light.to_pylist()) == repr(got.to_pylist())


def test_reference_oracle_rejects_what_it_should() -> None:
    """The oracle itself can fail: it refuses unfit records and compares floats exactly."""
    schema, _ = SCHEMAS["example-narrow"]
    wide = example_pb2.Example()
    wide.features.feature["n"].int64_list.value.append(2**40)
    with pytest.raises(Unfit, match="int overflow"):
        reference(schema, "Example", [wide.SerializeToString()])
    assert Close(1.0, from_int=False) != 1.0000001 and Close(math.nan, from_int=False) == math.nan


# -- what fuzzing found, kept as plain regression tests --------------------------------------


def _feature(name: str, kind: str | None, values: list) -> bytes:
    message = example_pb2.Example()
    feature = message.features.feature[name]
    if kind is None:
        feature.SetInParent()  # a Feature with no list set
    else:
        getattr(feature, f"{kind}_list").value.extend(values)
    return message.SerializeToString()


@pytest.mark.parametrize("skip", [False, True])
def test_payload_tf_parses_but_protobuf_refuses(skip: bool) -> None:
    """``tf.io.parse_example`` reads b'\\x00\\x00' as an empty Example; protobuf refuses it.
    The decoder used to leak protobuf's DecodeError when it checked an empty array."""
    schema = _struct(x=ArrayType(FloatType()))
    records = [_feature("x", "float", [1.0]), b"\x00\x00"]
    decoder = Decoder(schema, "Example", skip_corrupt=skip)
    if skip:
        assert decoder.decode(records, "f.tfrecord", 7).to_pylist() == [{"x": [1.0]}]
        assert decoder.skipped == 1
    else:
        with pytest.raises(SparkTFError, match=r"f.tfrecord: record 8: not a valid "
                           r"tf.train.Example \(.*\); check the recordType option"):
            decoder.decode(records, "f.tfrecord", 7)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_feature_with_no_list_is_empty_whatever_the_kind(order: tuple[int, int]) -> None:
    records = [_feature("b", "bytes", [b"true"]), _feature("b", None, [])]
    got = Decoder(_struct(b=BooleanType()), "Example").decode(
        [records[i] for i in order], "f.tfrecord", 0).to_pylist()
    assert got == [[{"b": True}, {"b": None}][i] for i in order]


def test_kinds_mixed_in_one_batch_name_file_and_records() -> None:
    records = [_feature("b", None, []), _feature("b", "bytes", [b"1"]),
               _feature("b", "int64", [1])]
    with pytest.raises(SparkTFError, match=r"^f.tfrecord: record 12: feature 'b' is an int64 "
                       r"list, but record 11 holds a bytes list; column 'b' \(boolean\) can read "
                       r"only one of them in the same batch of records$"):
        Decoder(_struct(b=BooleanType()), "Example").decode(records, "f.tfrecord", 10)


@pytest.mark.parametrize("compression", ["gzip", "zlib"])
@pytest.mark.parametrize("keep", [1, 5, 17, -1])
@pytest.mark.parametrize("n", [20, 0])
def test_cut_compressed_file_is_an_error_not_fewer_rows(
    tmp_path: Path, compression: str, keep: int, n: int
) -> None:
    """tf.data reads a gzip file under 18 bytes, a zlib stream cut short, or an empty gzip
    stream whose (all-zero) trailer is cut, as fewer records without an error; the reader
    must notice."""
    rows = [{"id": i, "x": [1.0]} for i in range(n)]
    batch = pa.RecordBatch.from_pylist(rows, schema=to_arrow_schema(ID_SCHEMA))
    blob = compress(b"".join(frame(r) for r in Encoder(ID_SCHEMA, "Example").encode(batch)),
                    compression)
    if keep >= len(blob):
        pytest.skip(f"a {compression} stream of {n} records has only {len(blob)} bytes")
    path = tmp_path / "cut.tfrecord"
    path.write_bytes(blob[:keep])
    with pytest.raises(SparkTFError, match=rf"^{path}: record \d+ at byte offset \d+: "
                       r"cannot (decompress|read record).*(ended|gzipped)"):
        list(read_file(str(path), Decoder(ID_SCHEMA, "Example"),
                       ReadSettings(compression=compression)))


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_zero_byte_file_is_zero_records_in_every_compression(
    tmp_path: Path, compression: str
) -> None:
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    assert list(scan_records(str(path), compression)) == []
    batches = list(read_file(str(path), Decoder(ID_SCHEMA, "Example"),
                             ReadSettings(compression=compression)))
    assert sum(b.num_rows for b in batches) == 0
