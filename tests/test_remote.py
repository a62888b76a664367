"""Remote storage against a real S3-protocol server (moto on 127.0.0.1): paths and URLs,
reading, the object-store commit protocol, and models from URLs."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

import sparktf
from sparktf import fs, manifest
from sparktf.errors import StorageError, TFRecordError
from sparktf.tfrecord.framing import list_data_files
from tests import s3server

ROWS = 300


def fresh(bucket: str, scheme: str = "s3") -> str:
    """A new, empty prefix in the test bucket."""
    return f"{scheme}://{bucket}/{uuid.uuid4().hex[:8]}"


def put(url: str, data: bytes) -> None:
    with fs.open_output(url) as handle:
        handle.write(data)


def frame_of(spark, n: int = ROWS):
    return spark.range(0, n, numPartitions=2).selectExpr(
        "id", "array(cast(id as float), cast(id / 2 as float)) as x", "cast(id as string) as s")


def sorted_rows(df) -> list[tuple]:
    return sorted((r.id, tuple(r.x), r.s) for r in df.collect())


# -- paths and URLs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme", "path"),
    [
        ("s3://b/k/x", "s3", "b/k/x"),
        ("s3a://b/k/x/", "s3", "b/k/x"),
        ("S3N://b//k", "s3", "b/k"),
        ("gs://b/k", "gs", "b/k"),
        ("abfss://c@acct.dfs.core.windows.net/k", "abfs", "c/k"),
        ("hdfs://nn:8020/data/x", "hdfs", "/data/x"),
        ("hdfs:///data/x", "hdfs", "/data/x"),
        ("file:///tmp/a", "file", "/tmp/a"),
        ("file:/tmp/a", "file", "/tmp/a"),
    ],
)
def test_parse_normalises_schemes(url: str, scheme: str, path: str) -> None:
    loc = fs.parse(url)
    assert (loc.scheme, loc.path, loc.url) == (scheme, path, url)


def test_parse_keeps_relative_local_paths() -> None:
    assert fs.parse("data/train").path == os.path.abspath("data/train")
    assert fs.local_path("data/train") == "data/train"
    assert fs.parse("odd:name").is_local  # no '/' after the colon: a file name


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/x", "ftp://host/x: unknown URL scheme 'ftp'; accepted: a local path"),
        ("s3:/bucket/x", r"s3:/bucket/x: malformed URL: expected s3://<bucket>/<path>"),
        ("s3:///x", r"s3:///x: malformed URL: no bucket or container after s3://"),
        ("s3://b/x?versionId=1", "query strings are not supported"),
        ("file:relative", "expected file:///<absolute path>"),
    ],
)
def test_bad_urls_are_storage_errors(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        fs.parse(url)
    with pytest.raises(StorageError, match=message):
        list_data_files(url)


def test_listing_globs_dirs_and_alias_on_s3(s3: str) -> None:
    base = fresh(s3)
    for name in ("a/p-0.tfrecord", "a/p-1.tfrecord", "a/_SUCCESS", "a/.p-0.crc",
                 "a/sub/q.tfrecord", "a/_temporary/z.tfrecord", "b/p-2.tfrecord"):
        put(f"{base}/{name}", b"")
    assert list_data_files(f"{base}/a") == [
        f"{base}/a/p-0.tfrecord", f"{base}/a/p-1.tfrecord", f"{base}/a/sub/q.tfrecord"]
    alias = base.replace("s3://", "s3a://")
    assert list_data_files(f"{alias}/*/p-*.tfrecord") == [
        f"{alias}/a/p-0.tfrecord", f"{alias}/a/p-1.tfrecord", f"{alias}/b/p-2.tfrecord"]
    with pytest.raises(TFRecordError, match=f"input path {alias}/none: matches nothing"):
        list_data_files(f"{alias}/none")


# -- reading ------------------------------------------------------------------------------


def test_remote_read_equals_local_read(spark, s3: str, data_dir: Path) -> None:
    """TF-written files (plain and gzip, whatever their names), uploaded, read back by the
    data source and by read_tfrecords (schema inference included) exactly as locally."""
    base = fresh(s3, "s3a")
    fs.upload(str(data_dir / "examples.tfrecord"), f"{base}/plain.tfrecord")
    fs.upload(str(data_dir / "examples.tfrecord.gz"), f"{base}/zipped.tfrecord")
    local = sparktf.read_tfrecords(spark, [str(data_dir / "examples.tfrecord"),
                                           str(data_dir / "examples.tfrecord.gz")])
    remote = sparktf.read_tfrecords(spark, base)
    assert remote.schema == local.schema
    key = [c for c in local.columns][0]
    assert sorted(map(str, remote.orderBy(key).collect())) == sorted(
        map(str, local.orderBy(key).collect()))
    through_source = spark.read.format("tfrecord").load(f"{base}/plain.tfrecord")
    assert through_source.count() == sparktf.read_tfrecords(
        spark, str(data_dir / "examples.tfrecord")).count() > 0


def test_corrupt_remote_file_names_url_record_and_offset(spark, s3: str, data_dir: Path) -> None:
    blob = bytearray((data_dir / "examples.tfrecord").read_bytes())
    length = int.from_bytes(blob[:8], "little")
    second = 16 + length  # the second record's offset
    blob[second + 12] ^= 0xFF  # a data byte of the second record: its CRC no longer holds
    url = f"{fresh(s3, 's3a')}/bad.tfrecord"
    put(url, bytes(blob))
    with pytest.raises(Exception, match=rf"{url}: record 1 at byte offset {second}: "
                                        "corrupt data CRC"):
        sparktf.read_tfrecords(spark, url, schema_hint="struct<>").collect()
    leftovers = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("sparktf-stage-*/*")]
    assert not [p for p in leftovers if p.stat().st_size == len(blob)]


# -- writing ------------------------------------------------------------------------------


def test_write_read_round_trip_on_s3_and_no_local_folder(spark, s3: str, tmp_path: Path,
                                                         monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = fresh(s3)
    df = frame_of(spark)
    sparktf.write_tfrecords(df, out)
    assert not Path("s3:").exists() and not list(tmp_path.iterdir())  # the old silent loss
    names = fs.entries(out)
    assert names[0] == "_SUCCESS" and len(names) == 3, names
    entries = manifest.read(out)
    assert sorted(e.name for e in entries) == names[1:]
    assert sum(e.records for e in entries) == ROWS
    back = sparktf.read_tfrecords(spark, out.replace("s3://", "s3a://"),
                                  schema_hint="id bigint, x array<float>, s string")
    assert sorted_rows(back) == sorted_rows(df)
    local = str(tmp_path / "local")
    sparktf.write_tfrecords(df, local)
    assert sparktf.read_tfrecords(spark, local).schema == sparktf.read_tfrecords(
        spark, out).schema


def test_save_modes_on_s3(spark, s3: str) -> None:
    out = fresh(s3, "s3a")
    sparktf.write_tfrecords(frame_of(spark, 10), out)
    first = set(fs.entries(out))
    with pytest.raises(TFRecordError, match=f"output path {out} already exists"):
        sparktf.write_tfrecords(frame_of(spark, 10), out)
    sparktf.write_tfrecords(frame_of(spark, 20), out, mode="ignore")
    assert set(fs.entries(out)) == first
    sparktf.write_tfrecords(frame_of(spark, 5), out, mode="append")
    assert sparktf.read_tfrecords(spark, out).count() == 15
    assert len(manifest.read(out)) == 4
    frame_of(spark, 7).write.format("tfrecord").mode("overwrite").save(out)
    assert sparktf.read_tfrecords(spark, out).count() == 7
    assert not set(fs.entries(out)) & (first - {"_SUCCESS"})  # old files gone
    assert len(fs.entries(out)) == 1 + len(manifest.read(out))


def test_failed_write_leaves_nothing_and_keeps_old_output(spark, s3: str) -> None:
    def fail_second(batches):  # a closure: pickled by value, as the test module is not
        from pyspark import TaskContext

        for batch in batches:
            yield batch
            if TaskContext.get().partitionId() == 1:
                raise RuntimeError("injected failure")

    before = s3server.keys(s3)
    fresh_out = fresh(s3)
    failing = frame_of(spark).mapInArrow(fail_second, frame_of(spark).schema)
    with pytest.raises(Exception, match="injected failure"):
        sparktf.write_tfrecords(failing, fresh_out)
    assert s3server.keys(s3) == before  # no object, no _SUCCESS, no directory marker
    out = fresh(s3)
    sparktf.write_tfrecords(frame_of(spark, 10), out)
    old = {k: fs.size(f"s3://{s3}/{k}") for k in s3server.keys(s3) if k not in before}
    with pytest.raises(Exception, match="injected failure"):
        sparktf.write_tfrecords(failing, out, mode="overwrite")
    assert {k: fs.size(f"s3://{s3}/{k}") for k in s3server.keys(s3) if k not in before} == old
    assert sparktf.read_tfrecords(spark, out).count() == 10


def test_retried_attempts_commit_one_file_per_task(s3: str) -> None:
    """Two attempts of a task both uploaded (a retry after a lost executor, or speculation):
    the commit keeps the winner's, deletes the loser's, and the manifest lists each once."""
    from sparktf.spark import objcommit
    from sparktf.spark.commit import TaskCommit

    out = fresh(s3)
    put(f"{out}/part-00000-old.tfrecord", b"old")
    messages = []
    for partition, attempts in ((0, (0, 1)), (1, (0,))):
        for attempt in attempts:
            name = objcommit.object_name(partition, "j1", attempt, ".tfrecord")
            put(f"{out}/{name}", b"x" * (partition + 1))
        messages.append(TaskCommit(staged=f"{out}/{name}", final=name, records=1,
                                   size=partition + 1))
    objcommit.commit_job(out, "j1", messages, overwrite=False)
    assert fs.entries(out) == ["_SUCCESS", "part-00000-j1-a1.tfrecord",
                               "part-00000-old.tfrecord", "part-00001-j1-a0.tfrecord"]
    assert [e.name for e in manifest.read(out)] == fs.entries(out)[1:]
    fs.delete([f"{out}/part-00001-j1-a0.tfrecord"])
    with pytest.raises(StorageError, match="part-00001-j1-a0.tfrecord: listed in the manifest"):
        list_data_files(out)


def test_bad_output_url_fails_before_any_job(spark, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match="s3:/b/x: malformed URL"):
        sparktf.write_tfrecords(frame_of(spark, 3), "s3:/b/x")
    with pytest.raises(StorageError, match="unknown URL scheme 'ftp'"):
        sparktf.write_tfrecords(frame_of(spark, 3), "ftp://h/x")
    assert not list(tmp_path.iterdir())


def test_manifest_is_json_with_sizes(s3: str) -> None:
    out = fresh(s3)
    manifest.write(out, [manifest.Entry("part-a", 3, 1)], job="j")
    with fs.open_input(f"{out}/_SUCCESS") as handle:
        data = json.loads(handle.read())
    assert data["files"] == [{"name": "part-a", "size": 3, "records": 1}]
