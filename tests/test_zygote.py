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

from tests.connect_server import ConnectServer, alive
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
    """The sessions' task daemons under the server: each has become a relay."""
    from tests.connect_server import descendants

    out = []
    for pid in descendants(server.pid or 0):
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if line.startswith("sparktf-daemon-relay"):
            out.append(pid)
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def stderr_of(pid: int) -> str:
    """What the process's stderr is (a pipe's inode): a session's relay and its workers
    share the one Spark reads."""
    return os.readlink(f"/proc/{pid}/fd/2")


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
    assert all(Path(f"/proc/{d}/comm").read_text().strip() == "cat" for d in daemons)
    assert max(rss_kib(d) for d in daemons) < 4096  # ... each a relay, no interpreter
    workers = [pid for pid, parent in zygote_tree().items() if parent == zygote]
    assert workers and all(has_tensorflow(w) for w in workers)  # forked with it loaded
    sessions_of = {stderr_of(w) for w in workers}
    assert sessions_of <= {stderr_of(d) for d in daemons}


def test_a_stopped_session_daemon_takes_its_workers_along(shared_server, digits,
                                                          mnist_export) -> None:
    """Spark stops a daemon with SIGTERM (at its own stop, or to start it again): the zygote
    then ends that session's workers and keeps the others'."""
    relays = []
    for _ in range(2):  # two fresh sessions, their workers pooled (Spark ends them idle 60 s)
        known = set(session_daemons(shared_server))
        run_client(shared_server, digits[0], mnist_export)
        (relay,) = set(session_daemons(shared_server)) - known
        relays.append(relay)
    (zygote,) = zygotes()
    workers = [pid for pid, parent in zygote_tree().items() if parent == zygote]
    stopped, kept = ([w for w in workers if stderr_of(w) == stderr_of(r)] for r in relays)
    assert stopped and kept
    os.kill(relays[0], signal.SIGTERM)
    wait_until(lambda: not any(alive(p) for p in stopped))
    assert all(alive(p) for p in kept)


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


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix-socket"])
def test_a_daemon_played_as_spark_plays_it(tmp_path: Path, unix: bool) -> None:
    """PySpark's daemon protocol against the real zygote, with this test as Spark: a port
    (or socket path) on stdout, a worker pid on each connection, a pid on stdin kills that
    worker only, and stdin closed ends the daemon, its other workers and its socket."""
    import socket
    import struct

    before = zygotes()
    env = {**os.environ, "SPARKTF_PRELOAD": "shared", "PYTHON_WORKER_FACTORY_SECRET": "x",
           "SPARK_REUSE_WORKER": "1"}
    if unix:
        env.update(PYTHON_UNIX_DOMAIN_ENABLED="true", PYTHON_WORKER_FACTORY_SOCK_DIR=str(tmp_path))
    daemon = subprocess.Popen([sys.executable, "-m", "sparktf.spark.daemon", "pyspark.worker"],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        (head,) = struct.unpack("!i", daemon.stdout.read(4))
        where: Any = daemon.stdout.read(head).decode() if unix else ("127.0.0.1", head)

        def worker() -> tuple[socket.socket, int]:
            sock = socket.socket(socket.AF_UNIX if unix else socket.AF_INET)
            sock.connect(where)
            return sock, struct.unpack("!i", sock.recv(4, socket.MSG_WAITALL))[0]

        (first, one), (second, two) = worker(), worker()
        assert {one, two} <= set(zygote_tree()) and one != two
        forked_by = zygote_tree()[one]
        assert Path(f"/proc/{daemon.pid}/comm").read_text().strip() == "cat"
        daemon.stdin.write(struct.pack("!i", one))
        daemon.stdin.flush()
        wait_until(lambda: not alive(one))
        assert alive(two)
        daemon.stdin.close()  # Spark gone
        assert daemon.wait(timeout=10) == 0
        wait_until(lambda: not alive(two))
        if unix:
            assert not Path(where).exists()
        else:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(where, timeout=5)
        assert not Path(f"/proc/{one}").exists()  # reaped, not a zombie: its pid is free
        first.close()
        second.close()
        again = subprocess.Popen(daemon.args, env=env, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE)  # the zygote outlived that session
        try:
            (head,) = struct.unpack("!i", again.stdout.read(4))
            where = again.stdout.read(head).decode() if unix else ("127.0.0.1", head)
            _, three = worker()
            assert zygote_tree()[three] == forked_by  # the same zygote serves the next one
        finally:
            again.kill()
    finally:
        daemon.kill()
        for pid in zygotes() - before:
            with_suppressed_kill(pid)


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_relay_keeps_the_name_a_multicall_cat_needs(tmp_path: Path) -> None:
    """BusyBox and uutils pick their program by argv[0]: run as anything but ``cat`` they
    would not relay. A ``cat`` that is its own program gets a name ``ps -f`` tells apart."""
    import shutil

    from sparktf.spark.shared_daemon import relay_name

    (tmp_path / "busybox").write_bytes(b"")
    (tmp_path / "cat").symlink_to(tmp_path / "busybox")
    assert relay_name(str(tmp_path / "cat")) == "cat"
    assert relay_name(shutil.which("cat") or "/bin/cat") == "sparktf-daemon-relay"
