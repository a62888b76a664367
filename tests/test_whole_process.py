"""What users run, in whole fresh processes: ``sparktf infer`` to every output format (local,
``s3://`` and through ``--remote``), the README's Quick start as a script, ``sparktf export`` and
``inspect``, and failed runs.

Each behaviour that depends on a session's state (the ``tfrecord`` data source's
registration, confs and JVM options, log levels, the preloading daemon) is checked here from
a process that starts its own Spark, not through ``main()`` inside the suite's warm session.
Every run is also checked to be quiet: no TensorFlow C++ lines (with ``TF_ENABLE_ONEDNN_OPTS``
``1``, as on AVX-512/AMX hosts, and ``0``), no Java frames, no Python traceback.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sparktf import fs
from sparktf._tf import example_pb2
from sparktf.tfrecord.framing import RecordFileWriter, list_data_files, scan_records
from tests.models import Checkpoint, build_mnist, mnist_numpy
from tests.processes import noise, run_sparktf, run_watched, user_env

ROWS = 60
HINT = "struct<image:array<float>,label:array<float>,id:bigint>"
MAPPING = ["--schema_hint", HINT, "--input_mapping", '{"image": "x"}',
           "--output_mapping", '{"prediction": "prediction"}', "--keep_columns", "id,label"]


def write_digits(folder: Path, images: np.ndarray) -> Path:
    """``ROWS`` MNIST-shaped Examples (image, one-hot label, id) in two files."""
    folder.mkdir(parents=True, exist_ok=True)
    half = len(images) // 2
    for part, rows in enumerate((range(0, half), range(half, len(images)))):
        with RecordFileWriter(str(folder / f"part-{part}.tfrecord")) as writer:
            for i in rows:
                example = example_pb2().Example()
                feature = example.features.feature
                feature["image"].float_list.value.extend(images[i].tolist())
                feature["label"].float_list.value.extend(np.eye(10)[i % 10].tolist())
                feature["id"].int64_list.value.append(i)
                writer.write(example.SerializeToString())
    return folder


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    images = np.random.default_rng(11).random((ROWS, 784), dtype=np.float32)
    return write_digits(tmp_path_factory.mktemp("whole") / "tfr", images), images


def quiet(done: subprocess.CompletedProcess[str], *, code: int = 0,
          spark_warnings: bool = False) -> list[str]:
    """Check the exit status and that stderr holds no noise; its lines."""
    assert done.returncode == code, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert noise(done.stderr, spark_warnings=spark_warnings) == [], done.stderr[-3000:]
    return lines


def read_output(out: str, fmt: str) -> list[dict[str, Any]]:
    """The rows of an output folder (local or URL), read without Spark, sorted by id."""
    files = [f for f in list_data_files(out) if not f.endswith(".crc")]
    rows: list[dict[str, Any]] = []
    for name in files:
        if fmt == "json":
            rows += [json.loads(line) for line in Path(name).read_text().splitlines()]
        elif fmt == "csv":
            with open(name, newline="") as handle:
                rows += [{k: json.loads(v) for k, v in r.items()} for r in csv.DictReader(handle)]
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            where = fs.parse(name)
            rows += pq.read_table(where.path, filesystem=where.filesystem()).to_pylist()
        else:
            for item in scan_records(name, "none"):
                example = example_pb2().Example.FromString(item[2])
                feature = example.features.feature
                rows.append({k: list(getattr(v, v.WhichOneof("kind")).value)
                             for k, v in feature.items()})
                rows[-1] = {k: v[0] if k != "label" else v for k, v in rows[-1].items()}
    return sorted(rows, key=lambda r: r["id"])


def check_predictions(rows: list[dict[str, Any]], images: np.ndarray) -> None:
    assert [r["id"] for r in rows] == list(range(ROWS))
    assert [r["prediction"] for r in rows] == mnist_numpy(images)[0].tolist()
    assert [int(np.argmax(r["label"])) for r in rows] == [i % 10 for i in range(ROWS)]


def summary(lines: list[str]) -> None:
    """The last line is infer's summary; at most the JVM's incubator line comes before."""
    assert re.match(rf"sparktf infer: {ROWS} rows in [0-9.]+ s", lines[-1]), lines
    assert all("incubator" in line for line in lines[:-1]), lines


# -- sparktf infer to each output format -----------------------------------------------------


@pytest.mark.parametrize(("fmt", "onednn"),
                         [("json", "1"), ("parquet", "0"), ("csv", "0"), ("tfrecord", "1")])
def test_infer_writes_each_format_from_a_fresh_process(digits, mnist_export, tmp_path, fmt,
                                                       onednn) -> None:
    """The tfrecord output failed in every fresh process (its data source was registered on
    a session that was active only in the thread that started Spark)."""
    out = tmp_path / "out"
    command = [str(Path(sys.executable).parent / "sparktf"), "infer", "--export_dir",
               str(mnist_export), "--input", str(digits[0]), *MAPPING, "--output", str(out),
               "--output_format", fmt]
    done, started = run_watched(command, onednn=onednn)
    summary(quiet(done))
    check_predictions(read_output(str(out), fmt), digits[1])
    assert (out / "_SUCCESS").exists()
    java = [c for c in started if " org.apache.spark.deploy.SparkSubmit " in c]
    assert java, started
    for option in ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                   "-Darrow.enable_unsafe_memory_access=true",
                   "spark.python.daemon.module=sparktf.spark.daemon"):
        assert option in java[0], java[0]
    assert any("-m sparktf.spark.daemon pyspark.worker" in c for c in started), started


def test_a_failed_spark_call_names_the_output_and_format(digits, mnist_export,
                                                        tmp_path) -> None:
    """An error from Spark itself (here its JSON writer) says what sparktf was doing."""
    parent = tmp_path / "a-file"
    parent.write_text("not a folder")
    done = run_sparktf(["infer", "--export_dir", str(mnist_export), "--input", str(digits[0]),
                        *MAPPING, "--output", str(parent / "out"), "--output_format", "json"],
                       onednn="0")
    last = quiet(done, code=1)[-1]
    assert last.startswith(f"sparktf: error: writing --output {parent / 'out'} as json: "), last
    assert "not a directory" in last and "Exception" not in last


@pytest.mark.parametrize("onednn", ["1", "0"])
def test_a_failed_run_is_quiet_and_leaves_no_output(digits, mnist_export, tmp_path,
                                                    onednn) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for part in sorted(digits[0].glob("part-*")):
        (bad / part.name).write_bytes(part.read_bytes())
    data = bytearray((bad / "part-0.tfrecord").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "part-0.tfrecord").write_bytes(bytes(data))
    out = tmp_path / "out"
    done = run_sparktf(["infer", "--export_dir", str(mnist_export), "--input", str(bad),
                        *MAPPING, "--output", str(out), "--master", "local[2]"], onednn=onednn)
    lines = quiet(done, code=1)
    assert re.match(r"sparktf: error: .*part-0\S+: record \d+ at byte offset \d+: corrupt",
                    lines[-1]), lines
    assert len(lines) <= 2 and done.stdout == "" and not out.exists()


# -- object stores and Spark Connect -----------------------------------------------------------


def upload_tree(local: Path, url: str) -> str:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            fs.upload(str(path), f"{url}/{path.relative_to(local).as_posix()}")
    return url


@pytest.mark.parametrize(("fmt", "onednn"), [("tfrecord", "1"), ("parquet", "0")])
def test_infer_on_s3_from_a_fresh_process(s3, digits, mnist_export, tmp_path, fmt,
                                          onednn) -> None:
    base = f"s3://{s3}/{uuid.uuid4().hex[:8]}"
    source = upload_tree(digits[0], f"{base}/tfr")
    model = upload_tree(mnist_export, f"{base}/model").replace("s3:", "s3a:")
    out = f"{base}/pred"
    done = run_sparktf(["infer", "--export_dir", model, "--input", source, *MAPPING,
                        "--output", out, "--output_format", fmt], onednn=onednn, cwd=tmp_path,
                       SPARKTF_MODEL_CACHE_DIR=str(tmp_path / "models"))
    summary(quiet(done))
    check_predictions(read_output(out, fmt), digits[1])
    assert not [p for p in tmp_path.iterdir() if p.name != "models"]  # no local "s3:" folder


@pytest.mark.parametrize(("fmt", "onednn"), [("tfrecord", "1")])
def test_infer_remote_from_a_fresh_process(connect_server, digits, mnist_export, tmp_path, fmt,
                                           onednn) -> None:
    """(json through ``--remote`` runs in tests/test_connect.py, also a fresh process.)"""
    out = tmp_path / "out"
    done = run_sparktf(["infer", "--remote", connect_server.url, "--export_dir",
                        str(mnist_export), "--input", str(digits[0]), *MAPPING, "--output",
                        str(out), "--output_format", fmt], onednn=onednn)
    lines = quiet(done)
    assert re.match(rf"sparktf infer: {ROWS} rows in", lines[-1]), lines
    check_predictions(read_output(str(out), fmt), digits[1])


# -- the README's Quick start, export and inspect ------------------------------------------------


def readme_quick_start() -> str:
    """The first Python block under the README's "Quick start" heading."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


FROM_A_THREAD = """
# (added by the test) the data source from a thread that did not create the session
import threading
def _in_a_thread():
    sparktf.write_tfrecords(df.limit(5), "copy/thread", mode="overwrite")
    print("thread read", sparktf.read_tfrecords(spark, "copy/thread").count())
_worker = threading.Thread(target=_in_a_thread)
_worker.start()
_worker.join()
"""


@pytest.mark.parametrize("onednn", ["1"])
def test_readme_quick_start_runs_as_a_script(tmp_path, mnist_export, onednn) -> None:
    images = np.random.default_rng(2).random((ROWS, 784), dtype=np.float32)
    write_digits(tmp_path / "mnist" / "tfr" / "test", images)
    build_mnist(tmp_path / "mnist_export")
    script = tmp_path / "quick_start.py"
    script.write_text(readme_quick_start() + FROM_A_THREAD)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, env=user_env(onednn), timeout=300)
    quiet(done, spark_warnings=True)  # Spark's own start-up lines are the script's
    assert re.search(r"\|\s*prediction\|\s*features\|", done.stdout), done.stdout
    assert "only showing top 20 rows" in done.stdout
    assert "thread read 5" in done.stdout
    copied = sorted((tmp_path / "copy" / "test").glob("part-*.gz"))
    assert copied and sum(1 for f in copied for _ in scan_records(str(f), "gzip")) == ROWS


def test_export_and_inspect_from_fresh_processes(tmp_path) -> None:
    ckpt = Checkpoint(tmp_path / "ckpt")
    shown = run_sparktf(["export", "--model_dir", str(ckpt.dir), "--show"], onednn="1")
    assert quiet(shown) == [] and re.search(r"^x\s+Placeholder", shown.stdout, re.M), shown.stdout
    export = tmp_path / "export"
    signatures = json.dumps({"serving_default": {"inputs": {"img": "x"},
                                                 "outputs": {"pred": "prediction"}}})
    made = run_sparktf(["export", "--model_dir", str(ckpt.dir), "--export_dir", str(export),
                        "--signatures", signatures], onednn="0")
    quiet(made)
    assert (export / "saved_model.pb").exists()
    inspected = run_sparktf(["inspect", "--export_dir", str(export)], onednn="1")
    assert quiet(inspected) == []
    assert "serving_default" in inspected.stdout and "img" in inspected.stdout
    missing = run_sparktf(["inspect", "--export_dir", str(tmp_path / "nope")], onednn="1")
    lines = quiet(missing, code=1)
    assert lines == [lines[-1]] and "does not exist" in lines[-1]


@pytest.mark.parametrize("onednn", ["1", "0"])
def test_tensorflow_imported_from_two_threads_at_once(onednn: str) -> None:
    """The CLI imports TensorFlow in a background thread while its main thread may need it
    too: the second caller waits, both get the module, stderr stays usable and quiet (two
    filters of fd 2 at once used to close each other's descriptors: EBADF, a stray marker)."""
    code = ("import sys\nfrom sparktf import _tf\n_tf.warm_up()\ntf = _tf.tensorflow()\n"
            "_tf._WARMING.join()\nprint(tf.__name__)\nprint('still here', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=user_env(onednn), timeout=120)
    lines = quiet(done)
    assert done.stdout.split() == ["tensorflow"]
    assert lines == ["still here"]


# -- sparktf convert ---------------------------------------------------------------------------


def test_convert_from_a_fresh_process(digits, tmp_path) -> None:
    """TFRecord → Parquet: a quiet run ending in its summary, rows Spark's types read back
    (by pyarrow here: the suite's session is not this process's); a misspelt partition
    column is a usage error naming the flag and the close match."""
    import pyarrow.parquet as pq

    out = tmp_path / "pq"
    done = run_sparktf(["convert", "--input", str(digits[0]), "--output", str(out),
                        "--schema_hint", HINT, "--codec", "zstd"], onednn="1")
    lines = quiet(done)
    assert re.match(rf"sparktf convert: {ROWS} records in [0-9.]+ s .* -> {out}$", lines[-1])
    assert all("incubator" in line for line in lines[:-1]), lines
    assert (out / "_SUCCESS").exists()
    table = pq.read_table(out)
    assert sorted(table.column("id").to_pylist()) == list(range(ROWS))
    assert str(table.schema.field("image").type) == "list<element: float>"
    images = dict(zip(table.column("id").to_pylist(), table.column("image").to_pylist()))
    assert np.allclose([images[i] for i in range(ROWS)], digits[1])
    wrong = run_sparktf(["convert", "--input", str(digits[0]), "--output",
                         str(tmp_path / "never"), "--partition_by", "lable"], onednn="0")
    last = quiet(wrong, code=2)[-1]
    assert last.startswith("sparktf: error: --partition_by: partition column 'lable' is not a"
                           ) and "'label'" in last, last
    assert not (tmp_path / "never").exists()
