"""A flaky S3 endpoint (``tests/flaky_s3.py`` in front of moto): at a 10% fault rate —
503 SlowDown, 500, reset connections, stalled reads — reading TFRecords, loading a model from
``s3://`` and writing tfrecord and Parquet outputs there complete with the same rows
(``sparktf.stores``: retries with backoff, timeouts); at 100% a job fails with one line
naming the URL and the last cause and leaves nothing visible."""

from __future__ import annotations

import os
import subprocess
import uuid

import numpy as np
import pytest

from sparktf import fs
from tests.flaky_s3 import FlakyProxy
from tests.models import mnist_numpy
from tests.processes import SPARKTF, noise, note_line, user_env
from tests.test_whole_process import MAPPING, read_output, upload_tree, write_digits


@pytest.fixture(scope="module")
def on_s3(s3, mnist_export, tmp_path_factory) -> dict:
    """Input records and the model, on S3 (uploaded straight, not through the proxy)."""
    images = np.random.default_rng(41).random((60, 784), dtype=np.float32)
    folder = write_digits(tmp_path_factory.mktemp("flaky") / "tfr", images)
    base = f"s3://{s3}/{uuid.uuid4().hex[:8]}"
    return {"input": upload_tree(folder, f"{base}/tfr"),
            "model": upload_tree(mnist_export, f"{base}/model"), "images": images,
            "base": base}


def _run(on_s3: dict, proxy: FlakyProxy, out: str, fmt: str, tmp_path,
         **extra: str) -> subprocess.CompletedProcess:
    env = user_env("0", AWS_ENDPOINT_URL=proxy.url, SPARKTF_S3_REQUEST_TIMEOUT="1",
                   SPARKTF_MODEL_CACHE_DIR=str(tmp_path / f"models-{fmt}"), **extra)
    command = [SPARKTF, "infer", "--export_dir", on_s3["model"], "--input", on_s3["input"],
               *MAPPING, "--output", out, "--output_format", fmt]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)


@pytest.mark.parametrize("fmt", ["tfrecord", "parquet"])
def test_a_ten_percent_fault_rate_gives_the_same_rows(on_s3, tmp_path, fmt) -> None:
    out = f"{on_s3['base']}/out-{fmt}"
    with FlakyProxy(os.environ["AWS_ENDPOINT_URL"], rate=0.1, seed=7, stall=2) as proxy:
        done = _run(on_s3, proxy, out, fmt, tmp_path)
    assert done.returncode == 0 and noise(done.stderr) == [], done.stderr[-3000:]
    note_line(f"flaky S3 10% {fmt} {proxy.counts}", done.stderr)
    faults = {k: v for k, v in proxy.counts.items() if k != "requests"}
    assert proxy.counts["requests"] > 50 and all(faults.values()), proxy.counts
    rows = read_output(out, fmt)  # read straight from the server
    assert [r["id"] for r in rows] == list(range(60))
    assert [r["prediction"] for r in rows] == mnist_numpy(on_s3["images"])[0].tolist()


def test_a_store_that_always_fails_stops_in_one_line_and_leaves_nothing(on_s3,
                                                                         tmp_path) -> None:
    out = f"{on_s3['base']}/out-never"
    with FlakyProxy(os.environ["AWS_ENDPOINT_URL"], rate=1.0, seed=1, stall=1) as proxy:
        done = _run(on_s3, proxy, out, "tfrecord", tmp_path, SPARKTF_S3_MAX_ATTEMPTS="3")
    assert done.returncode == 1 and noise(done.stderr) == [], done.stderr[-3000:]
    note_line("flaky S3 100%", done.stderr)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("sparktf: error: ") and "s3://" in last, last
    assert any(cause in last for cause in ("SLOW_DOWN", "SlowDown", "INTERNAL", "500", "503",
                                            "NETWORK_CONNECTION",
                                            "Timeout", "timed out", "reset", "Connection")), last
    assert not fs.exists(f"{out}/_SUCCESS")
    assert not [name for name, _ in fs.walk(out) if name.rsplit("/", 1)[-1].startswith("part-")]
