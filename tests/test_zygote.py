"""``SPARKTF_PRELOAD=shared`` on a Spark Connect server: every client session's task workers
fork from one TensorFlow-preloaded zygote per host, the sessions' own daemons import no
TensorFlow, a zygote that is gone is started again, and the rows are those of the default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.connect_server import ConnectServer
from tests.models import mnist_numpy

CLIENT = """
import json, sys
from pyspark.sql import SparkSession
import sparktf
spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
df = sparktf.read_tfrecords(spark, sys.argv[2], schema_hint="image array<float>, id bigint")
model = sparktf.TFModel(exportDir=sys.argv[3], inputMapping={"image": "x"},
                        outputMapping={"prediction": "prediction"}, passthroughColumns=["id"])
rows = sorted((r.id, r.prediction) for r in model.transform(df).collect())
print(json.dumps(rows))
spark.stop()
"""


def zygote_tree() -> dict[int, int]:
    """``{pid: parent pid}`` of every zygote process and worker forked from one (a worker
    keeps its zygote's command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"sparktf.spark.zygote" in (entry / "cmdline").read_bytes():
                    stat = (entry / "stat").read_text()
                    found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    return found


def zygotes() -> set[int]:
    """The zygotes themselves (not their workers)."""
    tree = zygote_tree()
    return {pid for pid, parent in tree.items() if parent not in tree}


def has_tensorflow(pid: int) -> bool:
    try:
        return "_pywrap_tensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def session_daemons(server: ConnectServer) -> list[int]:
    from tests.connect_server import descendants

    out = []
    for pid in descendants(server.pid or 0):
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "sparktf.spark.daemon pyspark.worker" in line:
            out.append(pid)
    return out


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnectServer]:
    before = set(zygote_tree())
    server = ConnectServer(tmp_path_factory.mktemp("zygote-server"))
    server.env["SPARKTF_PRELOAD"] = "shared"
    server.start()
    try:
        yield server
    finally:  # the zygote outlives the server by design (idle exit): end it first, or
        for pid in set(zygote_tree()) - before:  # stop() waits its whole timeout for it
            with_suppressed_kill(pid)
        server.stop()


def with_suppressed_kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_client(server: ConnectServer, data: Path, model: Path) -> list[Any]:
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARKTF_PRELOAD")}
    done = subprocess.run([sys.executable, "-c", CLIENT, server.url, str(data), str(model)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Skipping doctests" not in done.stderr, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    from sparktf._tf import example_pb2
    from sparktf.tfrecord.framing import RecordFileWriter

    images = np.random.default_rng(4).random((40, 784), dtype=np.float32)
    folder = tmp_path_factory.mktemp("zygote-data") / "tfr"
    folder.mkdir()
    with RecordFileWriter(str(folder / "part-0.tfrecord")) as writer:
        for i in range(40):
            example = example_pb2().Example()
            example.features.feature["image"].float_list.value.extend(images[i].tolist())
            example.features.feature["id"].int64_list.value.append(i)
            writer.write(example.SerializeToString())
    return folder, images


def test_sessions_fork_their_workers_from_one_zygote(shared_server, digits,
                                                     mnist_export) -> None:
    expected = mnist_numpy(digits[1])[0].tolist()
    first = run_client(shared_server, digits[0], mnist_export)
    assert [i for i, _ in first] == list(range(40))
    assert np.allclose([p for _, p in first], expected, atol=1e-5)
    (zygote,) = zygotes()  # one per host and installation
    assert has_tensorflow(zygote)
    second = run_client(shared_server, digits[0], mnist_export)
    assert second == first
    assert zygotes() == {zygote}  # the second session used the same one
    daemons = session_daemons(shared_server)
    assert len(daemons) >= 2, daemons  # one per client session (SPARK-54055) ...
    assert not [d for d in daemons if has_tensorflow(d)]  # ... none with TensorFlow
    workers = [pid for pid, parent in zygote_tree().items() if parent == zygote]
    assert workers and all(has_tensorflow(w) for w in workers)  # forked with it loaded


def test_a_zygote_that_is_gone_is_started_again(shared_server, digits, mnist_export) -> None:
    run_client(shared_server, digits[0], mnist_export)
    for pid in zygotes():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    old = set(zygote_tree())  # the dead zygote's workers live on, orphans
    again = run_client(shared_server, digits[0], mnist_export)
    assert [i for i, _ in again] == list(range(40))
    assert len(zygotes() - old) == 1


@pytest.mark.parametrize("value, told", [("Bogus", True), (" Shared ", False), ("", True)])
def test_an_unknown_preload_mode_is_named_with_the_accepted_ones(value: str, told: bool) -> None:
    """The daemon, run as Spark runs it (here a planning daemon, which preloads nothing),
    reports an unknown ``SPARKTF_PRELOAD`` on stderr (the executor's log) and still serves."""
    done = subprocess.run(
        [sys.executable, "-m", "sparktf.spark.daemon", "pyspark.sql.worker.plan_data_source_read"],
        env={**os.environ, "SPARKTF_PRELOAD": value}, stdin=subprocess.DEVNULL,
        capture_output=True, timeout=60)
    assert len(done.stdout) == 4, done.stderr.decode()[-2000:]  # it served: its port
    line = f"sparktf daemon: SPARKTF_PRELOAD={value!r} is not one of daemon, shared, off; " \
           "using daemon"
    assert (line in done.stderr.decode()) is told, done.stderr.decode()
