"""Reading a TFRecord file in byte-range splits: every record exactly once, the same errors
as reading it whole, and never a silent misread (``sparktf.tfrecord.splits``)."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql.types import LongType, StructField, StructType

from sparktf.errors import TFRecordError
from sparktf.listing import list_inputs
from sparktf.planning import Split
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.framing import frame
from sparktf.tfrecord.options import ReadSettings
from sparktf.tfrecord.reader import WHOLE, read_split
from sparktf.tfrecord.splits import locate
from sparktf.tfrecord.types import byte_array_schema

FIXTURES = [HealthCheck.function_scoped_fixture]
RAW = ReadSettings(record_type="ByteArray", batch_size=7)
SCHEMA = byte_array_schema()


def _read(split: Split, read: ReadSettings = RAW, schema: StructType = SCHEMA) -> list:
    decoder = Decoder(schema, read.record_type, skip_corrupt=read.ignore_corrupt_records)
    out = []
    for batch in read_split(split, decoder, read):
        out += batch.column(0).to_pylist()
    return out


def read_in_splits(path: Path, piece: int, read: ReadSettings = RAW,
                   schema: StructType = SCHEMA) -> list | str:
    """The records of every split of ``piece`` bytes, in order; or the first error."""
    size = path.stat().st_size
    try:
        return [r for start in range(0, max(size, 1), piece)
                for r in _read(Split(str(path), start, piece, size), read, schema)]
    except TFRecordError as exc:
        return f"error: {exc}"


def read_whole(path: Path, read: ReadSettings = RAW, schema: StructType = SCHEMA) -> list | str:
    try:
        return _read(Split(str(path), 0, WHOLE, WHOLE), read, schema)
    except TFRecordError as exc:
        return f"error: {exc}"


def write(path: Path, records: list[bytes]) -> Path:
    path.write_bytes(b"".join(frame(r) for r in records))
    return path


payloads = st.lists(st.binary(max_size=300) | st.binary(min_size=1000, max_size=5000),
                    max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(records=payloads, piece=st.integers(1, 4000) | st.sampled_from([1, 7, 12, 16, 17]))
def test_every_record_is_read_once_by_the_split_its_header_starts_in(tmp_path, records,
                                                                      piece) -> None:
    path = write(tmp_path / "r.tfrecord", records)
    assert read_in_splits(path, piece) == records


framed = st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=4), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(inner=framed, plain=st.lists(st.binary(max_size=60), max_size=6),
       piece=st.integers(1, 600), seed=st.integers(0, 1000))
def test_payloads_holding_frames_are_read_right_or_refused(tmp_path, inner, plain, piece,
                                                           seed) -> None:
    """A record whose bytes are TFRecord frames themselves fools a resynchronising split;
    the previous split's end check then refuses the file: never a wrong record list."""
    records = [b"".join(frame(x) for x in group) for group in inner] + plain
    random.Random(seed).shuffle(records)
    path = write(tmp_path / "r.tfrecord", records)
    got = read_in_splits(path, piece)
    if isinstance(got, str):
        assert "cannot be read in splits" in got and "splitFiles=false" in got, got
    else:
        assert got == records


def test_a_frame_inside_a_payload_at_a_split_start_is_refused(tmp_path) -> None:
    records = [b"a" * 50, frame(b"hidden record") + b"tail", b"b" * 50]
    path = write(tmp_path / "r.tfrecord", records)
    start = 16 + 50 + 12  # the first byte of the second record's payload
    got = read_in_splits(path, start)
    assert isinstance(got, str) and "cannot be read in splits" in got
    assert read_in_splits(path, 10_000) == records  # whole: fine
    assert read_whole(path) == records


def _damaged(tmp_path: Path, at: int) -> tuple[Path, list[bytes]]:
    records = [bytes([i]) * (20 + i % 7) for i in range(40)]
    path = write(tmp_path / "bad.tfrecord", records)
    data = bytearray(path.read_bytes())
    data[at] ^= 0x55
    path.write_bytes(bytes(data))
    return path, records


@pytest.mark.parametrize("what", ["data", "length", "length CRC"])
def test_a_corrupt_record_near_a_boundary_gives_the_error_of_a_whole_read(tmp_path,
                                                                          what) -> None:
    for piece in (97, 128, 130, 200):
        for record in (8, 9, 10):
            offsets = [0]
            for i in range(40):
                offsets.append(offsets[-1] + 16 + 20 + i % 7)
            at = offsets[record] + {"data": 14, "length": 1, "length CRC": 9}[what]
            path, _ = _damaged(tmp_path, at)
            whole = read_whole(path)
            assert isinstance(whole, str) and f"record {record} at byte offset" in whole
            assert read_in_splits(path, piece) == whole, (piece, record)


def test_skipping_corrupt_records_keeps_every_good_record_in_splits(tmp_path) -> None:
    offsets = [0]
    for i in range(40):
        offsets.append(offsets[-1] + 16 + 20 + i % 7)
    path, records = _damaged(tmp_path, offsets[12] + 14)  # a data CRC: the framing holds
    skip = ReadSettings(record_type="ByteArray", batch_size=5, ignore_corrupt_records=True)
    expected = records[:12] + records[13:]
    assert read_whole(path, skip) == expected
    for piece in (60, 97, 128, 500):
        assert read_in_splits(path, piece, skip) == expected


def test_a_record_that_is_not_an_example_is_named_from_the_file_start(tmp_path) -> None:
    from sparktf._tf import example_pb2

    def example(i: int) -> bytes:
        message = example_pb2().Example()
        message.features.feature["x"].int64_list.value.append(i)
        return message.SerializeToString()

    records = [example(i) for i in range(50)]
    records[31] = b"\xff\xff not a protobuf"
    path = write(tmp_path / "e.tfrecord", records)
    schema = StructType([StructField("x", LongType())])
    read = ReadSettings(batch_size=8)
    whole = read_whole(path, read, schema)
    assert isinstance(whole, str) and "record 31: not a valid tf.train.Example" in whole
    assert read_in_splits(path, 333, read, schema) == whole


def test_locate_counts_records_and_finds_the_next_start(tmp_path) -> None:
    path = write(tmp_path / "r.tfrecord", [b"x" * 10, b"y" * 20, b"z" * 30])
    assert locate(str(path), 0, 26) == locate(str(path), 0, 1)  # record 0 only
    found = locate(str(path), 1, 100)
    assert (found.first, found.count, found.end) == (26, 2, 108)
    empty = locate(str(path), 30, 20)  # inside the second record
    assert empty.count == 0


def test_only_large_uncompressed_local_files_are_splittable(tmp_path) -> None:
    big = bytes(2 << 20)
    (tmp_path / "plain.tfrecord").write_bytes(frame(big))
    (tmp_path / "small.tfrecord").write_bytes(frame(b"x"))
    (tmp_path / "named.tfrecord.gz").write_bytes(gzip.compress(frame(big)))
    (tmp_path / "sniffed.tfrecord").write_bytes(gzip.compress(frame(big) * 40, 1))
    found = {Path(f.path).name: f.splittable for f in list_inputs(str(tmp_path)).files}
    assert found == {"plain.tfrecord": True, "small.tfrecord": False,
                     "named.tfrecord.gz": False, "sniffed.tfrecord": False}
    forced = list_inputs(str(tmp_path), compression="gzip").files
    assert not any(f.splittable for f in forced)


@settings(max_examples=80, deadline=None, suppress_health_check=FIXTURES)
@given(records=st.lists(st.binary(min_size=1, max_size=80), min_size=1, max_size=30),
       where=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255),
       piece=st.integers(8, 300))
def test_one_damaged_byte_gives_the_same_outcome_whole_and_in_splits(tmp_path, records, where,
                                                                     flip, piece) -> None:
    path = write(tmp_path / "d.tfrecord", records)
    data = bytearray(path.read_bytes())
    data[int(where * len(data))] ^= flip
    path.write_bytes(bytes(data))
    assert read_in_splits(path, piece) == read_whole(path)
