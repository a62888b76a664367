"""Faults where users work, in whole processes: two jobs on one output, a driver killed
during its write, a full disk, credentials that must not leak. Each checks what a user
sees (one line) and what is left (nothing half-written; rows in = rows out)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from sparktf import fs, manifest
from sparktf.errors import TFRecordError
from sparktf.tfrecord.framing import list_data_files, scan_records
from tests.models import mnist_numpy
from tests.processes import SPARKTF, noise, note_line, user_env
from tests.test_whole_process import MAPPING, read_output, write_digits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray]]:
    """Two inputs of 60 records, told apart by their ids (0-59 and 1000-1059)."""
    folder = tmp_path_factory.mktemp("two")
    made = {}
    for name, shift in (("a", 0), ("b", 1000)):
        images = np.random.default_rng(shift).random((60, 784), dtype=np.float32)
        path = write_digits(folder / name, images)
        if shift:  # ids 1000-1059
            from sparktf._tf import example_pb2
            from sparktf.tfrecord.framing import RecordFileWriter

            for part in sorted(path.glob("part-*")):
                records = [r[2] for r in scan_records(str(part), "none")]
                with RecordFileWriter(str(part)) as writer:
                    for record in records:
                        example = example_pb2().Example.FromString(record)
                        ids = example.features.feature["id"].int64_list.value
                        ids[0] += shift
                        writer.write(example.SerializeToString())
        made[name] = (path, images)
    return made


def _infer(source: Path, export: Path, out: str, fmt: str, *extra: str) -> list[str]:
    return [SPARKTF, "infer", "--export_dir", str(export), "--input", str(source), *MAPPING,
            "--output", out, "--output_format", fmt, "--master", "local[1]", *extra]


@pytest.mark.parametrize(("where", "fmt"), [("local", "tfrecord"), ("s3", "parquet")])
def test_two_jobs_on_one_new_output_one_wins(two_inputs, mnist_export, tmp_path, s3, where,
                                             fmt) -> None:
    out = (str(tmp_path / "out") if where == "local"
           else f"s3://{s3}/{uuid.uuid4().hex[:8]}/out")
    env = user_env("0", SPARKTF_MODEL_CACHE_DIR=str(tmp_path / "models"))
    jobs = {name: subprocess.Popen(_infer(path, mnist_export, out, fmt), env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, (path, _) in two_inputs.items()}
    done = {name: (job.wait(timeout=300), job.stderr.read()) for name, job in jobs.items()}
    codes = sorted(code for code, _ in done.values())
    assert codes == [0, 1], done
    loser = next(err for code, err in done.values() if code == 1)
    assert noise(loser) == [], loser
    note_line(f"two writers {where}", loser)
    last = loser.strip().splitlines()[-1]
    assert re_any(last, ["is being written by another job", "already exists"]), last
    winner = next(name for name, (code, _) in done.items() if code == 0)
    rows = read_output(out, fmt)
    shift = 0 if winner == "a" else 1000
    assert [r["id"] for r in rows] == list(range(shift, shift + 60))  # one job's rows only
    assert [r["prediction"] for r in rows] == mnist_numpy(two_inputs[winner][1])[0].tolist()


def re_any(text: str, parts: list[str]) -> bool:
    return any(part in text for part in parts)


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Enough records for a write to last a while (20 files, 6,000 records)."""
    from sparktf._tf import example_pb2
    from sparktf.tfrecord.framing import RecordFileWriter

    images = np.random.default_rng(3).random((6000, 784), dtype=np.float32)
    folder = tmp_path_factory.mktemp("big") / "tfr"
    folder.mkdir()

    for part in range(20):
        with RecordFileWriter(str(folder / f"part-{part:02d}.tfrecord")) as writer:
            for i in range(part * 300, part * 300 + 300):
                example = example_pb2().Example()
                example.features.feature["image"].float_list.value.extend(images[i].tolist())
                example.features.feature["label"].float_list.value.extend([0.0] * 10)
                example.features.feature["id"].int64_list.value.append(i)
                writer.write(example.SerializeToString())
    return folder, images


def _started_writing(out: str) -> bool:
    if fs.is_remote(out):
        return any(name.rsplit("/", 1)[-1].startswith("part-") for name, _ in fs.walk(out))
    return any(Path(out, "_temporary").rglob("part-*"))


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_driver_killed_during_its_write_leaves_nothing_and_a_rerun_succeeds(
        big_input, mnist_export, tmp_path, s3, where) -> None:
    out = (str(tmp_path / "out") if where == "local"
           else f"s3://{s3}/{uuid.uuid4().hex[:8]}/out")
    env = user_env("0", SPARKTF_MODEL_CACHE_DIR=str(tmp_path / "models"))
    command = _infer(big_input[0], mnist_export, out, "tfrecord", "--batch_size", "64")
    job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not _started_writing(out) and job.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert job.poll() is None, "the job ended before it was killed"
    os.killpg(job.pid, signal.SIGKILL)  # the driver, its JVM and its workers at once
    job.wait(timeout=60)
    assert not fs.exists(fs.child(out, "_SUCCESS"))
    with pytest.raises(TFRecordError, match="(holds no data files|matches nothing)"):
        list_data_files(out)  # nothing a reader takes as output
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    note_line(f"killed driver {where}, rerun", again.stderr)
    rows = read_output(out, "tfrecord")
    assert [r["id"] for r in rows] == list(range(6000))  # rows in = rows out, once each
    if where == "local":  # the dead job's staging and claim are gone
        assert not (Path(out) / "_temporary").exists()
        assert not list(tmp_path.glob(".out.sparktf-claim"))
    else:
        names = [name for name, _ in fs.walk(out)]
        assert not [n for n in names if n.startswith(("_sparktf-job-", "_sparktf-claim-"))]
        listed = {e.name for e in manifest.read(out)}
        assert {n for n in names if n.startswith("part-")} == listed


def test_a_full_disk_fails_in_one_line_and_keeps_the_old_output(mnist_export, tmp_path,
                                                                  big_input) -> None:
    """A local output on a 6 MiB tmpfs (a private mount namespace) fills up mid-job."""
    from tests.multihost import unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    disk = tmp_path / "disk"
    disk.mkdir()
    report = tmp_path / "report.json"
    script = tmp_path / "full.py"
    script.write_text(FULL_DISK % {"root": str(ROOT)})
    inner = (f"mount -t tmpfs -o size=6m sparktf-test {disk} && "
             f"{sys.executable} {script} {disk} {mnist_export} {big_input[0]} {report}")
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                           inner], env=user_env("0"), capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(report.read_text())
    assert found["code"] == 1 and found["noise"] == [], found
    note_line("full disk", found["last"])
    assert "no space left" in found["last"].lower(), found["last"]
    assert found["last"].startswith("sparktf: error: ") and f"{disk}/out" in found["last"]
    assert found["before"] == found["after"] and found["before"]  # the old output intact
    assert found["leftovers"] == [] and found["scratch"] == []


FULL_DISK = """
import hashlib, json, os, subprocess, sys
sys.path.insert(0, %(root)r)
from tests.processes import SPARKTF, noise, user_env
from tests.test_whole_process import MAPPING
disk, model, source, report = sys.argv[1:5]
out = os.path.join(disk, "out")
env = user_env("0", SPARKTF_SCRATCH_DIR=os.path.join(disk, "scratch"))
os.makedirs(os.path.join(disk, "scratch"))
small = os.path.join(disk, "small")
os.makedirs(small)
import shutil
shutil.copy(sorted(os.path.join(source, f) for f in os.listdir(source))[0], small)
base = [SPARKTF, "infer", "--export_dir", model, *MAPPING, "--master", "local[1]",
        "--output_format", "tfrecord", "--output", out, "--keep_columns", "id,image"]
first = subprocess.run(base + ["--input", small], env=env, capture_output=True, text=True)
assert first.returncode == 0, first.stderr


def snapshot(path):
    return sorted((name, hashlib.sha256(open(os.path.join(root, name), "rb").read())
                   .hexdigest()) for root, _, names in os.walk(path) for name in names)


before = snapshot(out)
full = subprocess.run(base + ["--input", source, "--mode", "overwrite"], env=env,
                      capture_output=True, text=True)
lines = full.stderr.strip().splitlines()
json.dump({"code": full.returncode, "last": lines[-1] if lines else "",
           "noise": noise(full.stderr), "before": before, "after": snapshot(out),
           "leftovers": [n for n in os.listdir(disk) if n not in ("out", "scratch", "small")]
           + [n for n in os.listdir(out) if n.startswith("_temporary")],
           "scratch": [n for n in os.listdir(os.path.join(disk, "scratch"))]},
          open(report, "w"))
"""


SECRETS = {"aws": "sparktf-test-secret", "connect": "TOPSECRETconnectTOKEN",
           "mlflow": "hunter2secretPASS"}


def test_credentials_never_reach_what_a_run_prints_or_writes(s3, digits_on_s3, mnist_export,
                                                            tmp_path) -> None:
    """AWS keys, a Spark Connect token and MLflow credentials, with --verbose: not in
    stdout, stderr (Spark's INFO log included) or the files written."""
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == SECRETS["aws"]
    out = f"s3://{s3}/{uuid.uuid4().hex[:8]}/out"
    env = user_env("0", SPARKTF_MODEL_CACHE_DIR=str(tmp_path / "models"),
                   MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="2",
                   MLFLOW_TRACKING_URI=f"http://alice:{SECRETS['mlflow']}@127.0.0.1:9/")
    runs = [
        [SPARKTF, "infer", "--export_dir", str(mnist_export), "--input", digits_on_s3,
         *MAPPING, "--output", out, "--output_format", "tfrecord", "--verbose"],
        [SPARKTF, "infer", "--remote", f"sc://127.0.0.1:9/;token={SECRETS['connect']}",
         "--export_dir", str(mnist_export), "--input", digits_on_s3, *MAPPING, "--output",
         str(tmp_path / "o"), "--verbose"],
        [SPARKTF, "inspect", "--export_dir", "models:/m/1", "--verbose"],
    ]
    seen = []
    for command in runs:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        seen.append(done.stdout + done.stderr)
    assert "sparktf infer: 60 rows" in seen[0]  # the first run works; the others fail
    assert "127.0.0.1:9" in seen[1] and "models:/m/1" in seen[2]
    written = b"".join(fs.open_input(fs.child(out, name)).read() for name, _ in fs.walk(out))
    for secret in SECRETS.values():
        assert all(secret not in text for text in seen), secret
        assert secret.encode() not in written


@pytest.fixture(scope="module")
def digits_on_s3(s3, tmp_path_factory) -> str:
    images = np.random.default_rng(31).random((60, 784), dtype=np.float32)
    folder = write_digits(tmp_path_factory.mktemp("s3digits") / "tfr", images)
    url = f"s3://{s3}/{uuid.uuid4().hex[:8]}/tfr"
    for part in sorted(folder.glob("part-*")):
        fs.upload(str(part), f"{url}/{part.name}")
    return url
