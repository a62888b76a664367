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
from sparktf.tfrecord.framing import list_data_files, scan_records
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
    assert remote.schema.simpleString() == local.schema.simpleString()
    assert sorted(map(str, remote.collect())) == sorted(map(str, local.collect()))
    through_source = spark.read.format("tfrecord").load(f"{base}/plain.tfrecord")
    records = len(list(scan_records(str(data_dir / "examples.tfrecord"), "none")))
    assert through_source.count() == records > 0


def test_corrupt_remote_file_names_url_record_and_offset(spark, s3: str, data_dir: Path) -> None:
    blob = bytearray((data_dir / "examples.tfrecord").read_bytes())
    length = int.from_bytes(blob[:8], "little")
    second = 16 + length  # the second record's offset
    blob[second + 12] ^= 0xFF  # a data byte of the second record: its CRC no longer holds
    url = f"{fresh(s3, 's3a')}/bad.tfrecord"
    put(url, bytes(blob))
    with pytest.raises(Exception, match=rf"{url}: record 1 at byte offset {second}: "
                                        "corrupt data CRC"):
        sparktf.read_tfrecords(spark, url).collect()
    leftovers = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("sparktf-stage-*/*")]
    assert not [p for p in leftovers if p.stat().st_size == len(blob)]


def test_a_remote_parquet_file_is_named_as_such(spark, s3: str, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"image": [[0.5] * 4] * 3}), tmp_path / "x.parquet")
    url = f"{fresh(s3, 's3a')}/part-00000.parquet"
    put(url, (tmp_path / "x.parquet").read_bytes())
    with pytest.raises(TFRecordError) as caught:
        sparktf.read_tfrecords(spark, url)
    assert str(caught.value).startswith(
        f"{url} does not look like a TFRecord file: it looks like a Parquet file")


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

    # (a job that fails into a fresh path: test_faults.test_s3_write_faults_commit_each_row_once)
    before = s3server.keys(s3)
    failing = frame_of(spark).mapInArrow(fail_second, frame_of(spark).schema)
    out = fresh(s3)
    sparktf.write_tfrecords(frame_of(spark, 10), out)
    def objects() -> dict[str, int]:
        return {k: fs.size(f"s3://{s3}/{k}") for k in s3server.keys(s3)
                if k not in before and not k.endswith("/")}

    old = objects()
    with pytest.raises(Exception, match="injected failure"):
        sparktf.write_tfrecords(failing, out, mode="overwrite")
    assert objects() == old
    # besides, at most the marker of the output directory itself (pyarrow's deletes recreate
    # it: apache/arrow#36275), which the directory already is
    assert set(s3server.keys(s3)) - set(before) - set(old) <= {out.split("/", 3)[3] + "/"}
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


# -- models from URLs ---------------------------------------------------------------------


def upload_tree(local: Path, url: str) -> str:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            fs.upload(str(path), f"{url}/{path.relative_to(local).as_posix()}")
    return url


@pytest.fixture(scope="module")
def s3_model(s3: str, mnist_export: Path) -> str:
    return upload_tree(mnist_export, f"{fresh(s3, 's3a')}/mnist_export")


@pytest.fixture()
def model_cache(tmp_path: Path, monkeypatch) -> Path:
    cache = tmp_path / "models"
    monkeypatch.setenv("SPARKTF_MODEL_CACHE_DIR", str(cache))
    return cache


def test_model_cache_fetches_once_checks_and_refetches(s3: str, mnist_export: Path,
                                                       model_cache: Path, monkeypatch) -> None:
    from sparktf.model.fetch import COMPLETE, local_copy

    url = upload_tree(mnist_export, f"{fresh(s3)}/m")
    first = local_copy(url)
    assert Path(first).parent == model_cache and (Path(first) / COMPLETE).exists()
    assert sorted(p.relative_to(first).as_posix() for p in Path(first).rglob("*")
                  if p.is_file() and p.name != COMPLETE) == sorted(
        p.relative_to(mnist_export).as_posix() for p in mnist_export.rglob("*") if p.is_file())
    stamp = os.stat(Path(first) / "saved_model.pb").st_mtime_ns
    assert local_copy(url) == first  # reused, not fetched again
    assert os.stat(Path(first) / "saved_model.pb").st_mtime_ns == stamp
    (Path(first) / "saved_model.pb").write_bytes(b"half")  # a damaged copy is fetched again
    assert local_copy(url) == first
    assert (Path(first) / "saved_model.pb").read_bytes() == (
        mnist_export / "saved_model.pb").read_bytes()
    put(f"{url}/assets/extra.txt", b"new object")  # the model changed: a new copy
    second = local_copy(url)
    assert second != first and (Path(second) / "assets" / "extra.txt").exists()
    monkeypatch.setenv("SPARKTF_MODEL_CACHE_KEEP", "1")
    other = local_copy(upload_tree(mnist_export, f"{fresh(s3)}/m"))
    assert [p.name for p in model_cache.iterdir() if p.is_dir()] == [Path(other).name]
    assert not [p for p in model_cache.iterdir() if p.name.startswith(".part-")]


@pytest.mark.parametrize(
    ("suffix", "message"),
    [("missing", "does not exist"), ("notamodel", "is not a SavedModel directory")],
)
def test_bad_remote_model_errors_name_the_url(s3: str, model_cache: Path, suffix: str,
                                               message: str) -> None:
    from sparktf.errors import ModelError

    url = f"{fresh(s3, 's3a')}/{suffix}"
    if suffix == "notamodel":
        put(f"{url}/variables/variables.index", b"x")
    with pytest.raises(ModelError, match=rf"{url}'? {message}"):
        sparktf.load_metadata(url)


def test_tfmodel_and_inspect_with_an_s3_export_dir(spark, s3_model: str, mnist_export: Path,
                                                   capsys) -> None:
    import numpy as np

    from sparktf.cli.main import main
    from sparktf.ml import TFModel
    from tests.models import mnist_numpy

    images = np.random.default_rng(3).random((20, 784), dtype=np.float32)
    df = spark.createDataFrame([(i, images[i].tolist()) for i in range(20)],
                               "id int, image array<float>")
    model = TFModel(exportDir=s3_model, inputMapping={"image": "x"},
                    outputMapping={"prediction": "prediction"}, passthroughColumns=["id"])
    rows = sorted(model.transform(df).collect())
    assert [r.prediction for r in rows] == mnist_numpy(images)[0].tolist()
    assert main(["inspect", "--export_dir", s3_model]) == 0
    assert f"SavedModel: {s3_model}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--output", "s3:/b/pred"], 2, "--output: s3:/b/pred: malformed URL"),
        (["--output", "mem://b/pred"], 2, "--output: mem://b/pred: unknown URL scheme 'mem'"),
        (["--output", "x", "--export_dir", "ftp://h/m"], 2, "--export_dir: ftp://h/m: unknown"),
    ],
)
def test_cli_refuses_bad_outputs_before_scoring(spark, s3: str, argv: list[str], code: int,
                                                message: str, capsys, tmp_path: Path,
                                                monkeypatch) -> None:
    from sparktf.cli.main import main

    monkeypatch.chdir(tmp_path)
    base = {"--export_dir": "m", "--output": "x"}
    flags = dict(zip(argv[::2], (a.format(bucket=s3) for a in argv[1::2])))
    message = message.format(bucket=s3)
    args = ["infer", "--input", "in", "--input_mapping", '{"a": "x"}', "--output_mapping",
            '{"p": "p"}', "--output_format", "json"]
    for flag, value in {**base, **flags}.items():
        args += [flag, value]
    assert main(args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    assert not list(tmp_path.iterdir())


def test_cli_json_to_a_url_without_a_connector_stops_before_scoring(
        spark, s3: str, data_dir: Path, mnist_export: Path, capsys) -> None:
    from sparktf.cli.main import main

    url = f"s3a://{s3}/{uuid.uuid4().hex[:8]}/pred"
    assert main(["infer", "--input", str(data_dir / "examples.tfrecord"), "--export_dir",
                 str(mnist_export), "--input_mapping", '{"vals": "x"}', "--output_mapping",
                 '{"prediction": "p"}', "--output_format", "json", "--output", url]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"--output {url}: this Spark has no Hadoop connector for s3a://" in last
    assert not fs.exists(url)


def test_scratch_dirs_of_killed_processes_are_removed(tmp_path: Path, monkeypatch) -> None:
    import subprocess
    import sys

    from sparktf import scratch

    monkeypatch.setenv("SPARKTF_SCRATCH_DIR", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = tmp_path / f"sparktf-stage-{dead}"
    left.mkdir()
    (left / "tmp1234.tfrecord").write_bytes(b"staged by a worker killed with SIGKILL")
    alive = tmp_path / f"sparktf-stage-{os.getppid()}"
    alive.mkdir()
    with scratch.scratch_file("stage") as path:
        assert Path(path).parent == tmp_path / f"sparktf-stage-{os.getpid()}"
    assert not left.exists() and alive.exists() and not os.listdir(Path(path).parent)


def test_export_from_and_to_s3(s3: str, tmp_path: Path, model_cache: Path, capsys) -> None:
    """``sparktf export`` reads a checkpoint from a URL and writes the SavedModel to one,
    refusing an existing one without --overwrite; the model then runs from the URL."""
    import numpy as np

    from sparktf.cli.main import main
    from sparktf.model.fetch import local_copy
    from tests.models import run_plain
    from tests.test_export import SIGNATURES, Checkpoint

    ckpt = Checkpoint(tmp_path / "ckpt")
    base = fresh(s3, "s3a")
    upload_tree(ckpt.dir, f"{base}/ckpt")
    assert main(["export", "--model_dir", f"{base}/ckpt", "--show"]) == 0
    shown = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert shown["Relu"] == "Relu" and shown["x"] == "Placeholder"
    argv = ["export", "--model_dir", f"{base}/ckpt", "--export_dir", f"{base}/export",
            "--signatures", json.dumps(SIGNATURES)]
    assert main(argv) == 0
    pred = run_plain(Path(local_copy(f"{base}/export")), {"x:0": ckpt.x}, ["prediction:0"])[0]
    np.testing.assert_array_equal(pred, ckpt.logits().argmax(1))
    assert main(argv) == 1
    assert f"export directory '{base}/export' already exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert main(["export", "--model_dir", f"{base}/none", "--show"]) == 1
    assert f"checkpoint directory '{base}/none' does not exist" in capsys.readouterr().err
    assert not list(Path(tempfile_dir()).glob("sparktf-export-*"))


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


@pytest.mark.parametrize(
    ("success", "listed"),
    [(b"", ["a.tfrecord", "b.tfrecord"]),  # Spark's or the local protocol's
     (b'{"name": "s3a-committer", "filenames": ["a.tfrecord"]}', ["a.tfrecord", "b.tfrecord"]),
     (None, ["a.tfrecord"])],  # a sparktf manifest naming one file
)
def test_only_a_sparktf_manifest_narrows_a_listing(s3: str, success: bytes | None,
                                                   listed: list[str]) -> None:
    out = fresh(s3)
    put(f"{out}/a.tfrecord", b"aa")
    put(f"{out}/b.tfrecord", b"b")
    if success is None:
        manifest.write(out, [manifest.Entry("a.tfrecord", 2, 1)], job="j")
    else:
        put(f"{out}/_SUCCESS", success)
    assert list_data_files(out) == [f"{out}/{n}" for n in listed]
    if success is None:
        manifest.write(out, [manifest.Entry("a.tfrecord", 3, 1)], job="j")
        with pytest.raises(StorageError, match="a.tfrecord: the manifest says 3 bytes, found 2"):
            list_data_files(out)


def test_two_processes_fetch_a_model_once(s3: str, mnist_export: Path, tmp_path: Path) -> None:
    """Two processes of one host asking for the same remote model at once: one downloads
    (under the entry's flock), the other waits and loads the same complete copy."""
    import subprocess
    import sys

    url = upload_tree(mnist_export, f"{fresh(s3)}/m")
    code = ("import logging, sys; logging.basicConfig(level=logging.INFO); "
            "from sparktf.model.fetch import local_copy; print(local_copy(sys.argv[1]))")
    env = dict(os.environ, SPARKTF_MODEL_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    procs = [subprocess.Popen([sys.executable, "-c", code, url], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    assert results[0][0] == results[1][0]
    assert sum(err.count("fetching SavedModel") for _, err in results) == 1, results
    copy = Path(results[0][0].strip())
    assert (copy / "saved_model.pb").read_bytes() == (mnist_export / "saved_model.pb").read_bytes()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [copy.name,
                                                                       f"{copy.name}.lock"]


def test_missing_bucket_is_one_clear_error_without_secrets(spark, s3: str) -> None:
    url = "s3://no-such-bucket-sparktf/out"
    with pytest.raises(StorageError) as caught:
        sparktf.write_tfrecords(frame_of(spark, 3), url)
    message = str(caught.value)
    assert message.startswith(url) and "bucket" in message.lower(), message
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in message
    with pytest.raises(StorageError, match=f"^{url}"):
        list_data_files(url)
