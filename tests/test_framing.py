"""TFRecord framing: CRCs, corruption diagnostics, file listing and compression detection."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparktf.errors import TFRecordError
from sparktf.tfrecord.framing import (
    Problem,
    RecordFileWriter,
    frame,
    list_data_files,
    resolve_compression,
    scan_records,
)
from sparktf.tfrecord.splits import first_overrun


def _records(path: Path, compression: str = "none") -> list:
    return list(scan_records(str(path), compression))


def test_frame_matches_tensorflow_writer(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    path = tmp_path / "tf.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for data in (b"", b"a", b"hello" * 1000):
            writer.write(data)
    assert path.read_bytes() == frame(b"") + frame(b"a") + frame(b"hello" * 1000)


@pytest.mark.parametrize("compression", ["none", "gzip", "zlib"])
def test_writer_round_trip_readable_by_tf_data(tmp_path: Path, compression: str) -> None:
    tf = pytest.importorskip("tensorflow")
    path = tmp_path / "out.tfrecord"
    payloads = [bytes([i]) * i for i in range(50)]
    with RecordFileWriter(str(path), compression) as writer:
        for data in payloads:
            writer.write(data)
    tf_type = {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}[compression]
    read = [r.numpy() for r in tf.data.TFRecordDataset(str(path), compression_type=tf_type)]
    assert read == payloads
    assert [r[2] for r in _records(path, compression)] == payloads


def _three_records(tmp_path: Path) -> tuple[Path, list[int]]:
    path = tmp_path / "three.tfrecord"
    blobs = [frame(b"first"), frame(b"second"), frame(b"third")]
    path.write_bytes(b"".join(blobs))
    offsets = [0, len(blobs[0]), len(blobs[0]) + len(blobs[1])]
    return path, offsets


@pytest.mark.parametrize(
    ("damage", "record", "what"),
    [
        (lambda b, o: b[: o[1] + 12 + 2] + b"X" + b[o[1] + 12 + 3 :], 1, "corrupt data CRC"),
        (lambda b, o: b[: o[1] + 9] + b"\x00" + b[o[1] + 10 :], 1, "corrupt length CRC"),
        (lambda b, o: b[:-3], 2, "truncated record"),
        (lambda b, o: b + b"\x01\x02", 3, "truncated record header"),
    ],
)
def test_scan_names_record_offset_and_fault(tmp_path, damage, record, what) -> None:
    path, offsets = _three_records(tmp_path)
    path.write_bytes(damage(path.read_bytes(), offsets + [path.stat().st_size]))
    items = _records(path)
    problem = next(i for i in items if isinstance(i, Problem))
    assert problem.record == record
    assert what in problem.what
    expected_offset = (offsets + [path.stat().st_size - 2])[record]
    assert problem.offset == expected_offset
    assert str(path) in problem.message()


def test_data_crc_fault_does_not_stop_the_scan(tmp_path: Path) -> None:
    path, offsets = _three_records(tmp_path)
    data = bytearray(path.read_bytes())
    data[offsets[1] + 13] ^= 0xFF
    path.write_bytes(bytes(data))
    items = _records(path)
    assert [type(i).__name__ for i in items] == ["tuple", "Problem", "tuple"]
    assert items[2][2] == b"third"


def test_list_data_files_skips_hidden_and_expands_globs(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.tfrecord", "_SUCCESS", ".a.tfrecord.crc", "sub/b.tfrecord"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "_temporary").mkdir()
    (tmp_path / "_temporary" / "x.tfrecord").write_bytes(b"")
    names = [Path(p).name for p in list_data_files(str(tmp_path))]
    assert names == ["a.tfrecord", "b.tfrecord"]
    assert [Path(p).name for p in list_data_files(str(tmp_path / "*.tfrecord"))] == ["a.tfrecord"]
    both = list_data_files([str(tmp_path / "a.tfrecord"), str(tmp_path / "sub")])
    assert [Path(p).name for p in both] == ["a.tfrecord", "b.tfrecord"]
    single = str(tmp_path / "a.tfrecord")
    assert list_data_files("file://" + single) == [single]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "missing", "missing: matches nothing"),
        (lambda p: p / "nomatch-*.tfrecord", r"nomatch-\*.tfrecord: matches nothing"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "empty: holds no data files"),
    ],
)
def test_list_data_files_errors_name_the_path(tmp_path, make, match) -> None:
    with pytest.raises(TFRecordError, match=match):
        list_data_files(str(make(tmp_path)))


def test_compression_from_magic_bytes_not_name(tmp_path: Path, data_dir: Path) -> None:
    hidden_gzip = tmp_path / "data.tfrecord"
    shutil.copy(data_dir / "examples.tfrecord.gz", hidden_gzip)
    plain_named_gz = tmp_path / "plain.tfrecord.gz"
    shutil.copy(data_dir / "examples.tfrecord", plain_named_gz)
    assert resolve_compression(str(hidden_gzip), None) == "gzip"
    assert resolve_compression(str(plain_named_gz), None) == "none"
    assert resolve_compression(str(plain_named_gz), "auto") == "none"
    assert len(_records(hidden_gzip, "gzip")) == 5
    with pytest.raises(TFRecordError, match="compression: expected one of none, gzip, zlib"):
        resolve_compression(str(hidden_gzip), "snappy")


def test_truncated_gzip_stream_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "cut.tfrecord.gz"
    path.write_bytes(gzip.compress(frame(b"x" * 5000) * 3)[:-20])
    problem = _records(path, "gzip")[-1]
    assert isinstance(problem, Problem)


@pytest.mark.parametrize("cut", [0, 3, 9, 17])
def test_first_overrun_walks_records_across_mapped_windows(tmp_path: Path, monkeypatch,
                                                           cut: int) -> None:
    import sparktf.tfrecord.splits as framing

    monkeypatch.setattr(framing, "_WINDOW", 1 << 16)  # 64 KiB windows: records straddle them
    data = b"".join(frame(bytes([i % 251]) * (i * 7 % 900)) for i in range(3000))
    path = tmp_path / "many.tfrecord"
    path.write_bytes(data[: len(data) - cut])
    found = first_overrun(str(path))
    if cut == 0:
        assert found is None
    else:  # the last record's declared length no longer fits
        assert found is not None and found.record == 2999
        assert found.offset == len(data) - (16 + 2999 * 7 % 900)
        assert "runs past the end of the file" in found.what
    path.write_bytes(data + b"\x01\x02\x03")  # a header cut short after the last record
    found = first_overrun(str(path))
    assert found is not None and (found.record, found.what) == (3000, "truncated record header")


def _reference_overrun(data: bytes) -> tuple[int, int, str] | None:
    """The first overrun, found one length field at a time (the test's oracle)."""
    offset = index = 0
    while offset < len(data):
        if len(data) - offset < 8:
            return index, offset, "truncated record header"
        (length,) = struct.unpack_from("<Q", data, offset)
        if length > len(data) - offset - 16:
            return index, offset, f"record length {length} runs past the end of the file"
        offset, index = offset + 16 + length, index + 1
    return None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 300), st.integers(0, 40)), min_size=1, max_size=8),
       st.integers(0, 60), st.sampled_from([1 << 16, 1 << 17, 64 << 20]))
def test_first_overrun_matches_a_record_by_record_walk(tmp_path_factory, runs, cut: int,
                                                        window: int) -> None:
    """Runs of equal-length records are passed in bulk; the answer must not change."""
    import sparktf.tfrecord.splits as framing

    data = b"".join(frame(b"r" * length) * count for count, length in runs)
    data = data[: max(len(data) - cut, 0)]
    path = tmp_path_factory.mktemp("runs") / "runs.tfrecord"
    path.write_bytes(data)
    old = framing._WINDOW
    framing._WINDOW = window  # small windows: runs straddle them
    try:
        found = first_overrun(str(path))
    finally:
        framing._WINDOW = old
    expected = _reference_overrun(data)
    if expected is None:
        assert found is None
    else:
        assert found is not None and (found.record, found.offset) == expected[:2]
        assert found.what.startswith(expected[2])
