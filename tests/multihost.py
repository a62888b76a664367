"""A Spark Standalone cluster of several "hosts" on one machine, for tests (root only).

Each host is a Linux network namespace with its own address on a private link (a bridge in a
namespace of its own, ``10.213.0.0/24``; veth pairs to each host), so nothing on the
machine's own interfaces is addressed or changed:

- ``master`` (10.213.0.10): the Standalone master on port 7077;
- ``w1``, ``w2`` (10.213.0.11, .12): a worker each (1 core), each also in its own mount and
  UTS namespace: its own host name (resolving to its address), an empty private ``/tmp``
  and empty folders over every path in ``hidden`` — it sees none of the driver's working,
  input or model folders kept there;
- ``driver`` (10.213.0.20): drivers run with :meth:`MultiHost.driver`.

Only ``shared`` (a folder outside ``/tmp``) is visible at the same path from every host: it
stands for a shared filesystem. Daemons keep pid, log and work folders in the run's state
folder (``/var/tmp/sparktf-multihost-*``). Everything is removed on exit, also on failure or
Ctrl-C; names carry the creating process's pid, so leftovers of a run that died are found by
prefix and removed by the next run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import MASTER, SPARK_HOME, WORKER

PREFIX = "sptf-"  # network namespaces: sptf-<pid>-<token>-<host>
STATE = Path("/var/tmp")  # state folders: sparktf-multihost-<pid>-<token>
STATE_PREFIX = "sparktf-multihost-"
NET = "10.213.0"
ADDRESSES = {"master": f"{NET}.10", "w1": f"{NET}.11", "w2": f"{NET}.12", "driver": f"{NET}.20"}
PORT = 7077
ROOT = Path(__file__).resolve().parent.parent


def unavailable() -> str | None:
    """Why namespaces cannot be made here (one line), or None."""
    if os.geteuid() != 0:
        return "multi-host tests need root (network and mount namespaces)"
    for tool in ("ip", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"multi-host tests need `{tool}` (iproute2 / util-linux)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@dataclass
class MultiHost:
    """A running cluster: its namespaces, addresses and folders."""

    names: dict[str, str]  # host -> network namespace
    state: Path
    shared: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"spark://{ADDRESSES['master']}:{PORT}"

    def hostname(self, host: str) -> str:
        return self.names[host]

    def driver(self, args: Sequence[str], *, cwd: Path,
               env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``args`` on the driver host (stdout and stderr piped, text)."""
        return subprocess.Popen(["ip", "netns", "exec", self.names["driver"], *args],
                                cwd=cwd, env=env or self.driver_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def driver_env(self) -> dict[str, str]:
        """The driver's environment: no loopback address of the test session's own."""
        env = {k: v for k, v in self.env.items() if not k.startswith("SPARK_")}
        env["SPARK_HOME"] = str(SPARK_HOME)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [self.env.get("PYTHONPATH")])])
        return env

    def pids(self, host: str) -> list[int]:
        listed = subprocess.run(["ip", "netns", "pids", self.names[host]],
                                capture_output=True, text=True)
        return [int(p) for p in listed.stdout.split()]

    def sees(self, host: str, path: Path) -> bool:
        """Whether ``path`` exists in ``host``'s view of the disk."""
        pid = self.daemon_pid(host)
        found = subprocess.run(["nsenter", "-t", str(pid), "-m", "test", "-e", str(path)])
        return found.returncode == 0

    def daemon_pid(self, host: str) -> int:
        cls = MASTER if host == "master" else WORKER
        return int(next((self.state / host / "pids").glob(f"*{cls}*.pid")).read_text())

    def python_workers(self, host: str) -> list[int]:
        """Spark Python worker processes running on ``host``."""
        found = []
        for pid in self.pids(host):
            words = _cmdline(pid).split()
            if words and "python" in os.path.basename(words[0]) and any(
                    "pyspark" in w or "sparktf.spark.daemon" in w for w in words[1:]):
                found.append(pid)
        return found

    def kill(self, host: str) -> None:
        """Kill every process of ``host`` at once (the host is gone)."""
        for pid in self.pids(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def link(self, host: str, *, up: bool) -> None:
        """Take ``host``'s link to the others down (or bring it back up): its processes run
        on, unreachable."""
        port = f"p{list(ADDRESSES).index(host)}"
        _run("ip", "-n", self.names["hub"], "link", "set", port, "up" if up else "down")

    def log(self, host: str) -> str:
        return "\n".join(p.read_text(errors="replace")
                         for p in sorted((self.state / host / "logs").glob("*.out")))


def _run(*args: str) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _remove_netns(name: str) -> None:
    """Kill what runs in network namespace ``name`` (TERM, then KILL), then delete it."""
    listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    pids = [int(p) for p in listed.stdout.split()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def clean_leftovers() -> None:
    """Remove namespaces and state folders of earlier runs whose process is gone."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX) and not _owner_alive(name[len(PREFIX):]):
            _remove_netns(name)
    for folder in STATE.glob(f"{STATE_PREFIX}*"):
        if not _owner_alive(folder.name[len(STATE_PREFIX):]):
            shutil.rmtree(folder, ignore_errors=True)


def _owner_alive(rest: str) -> bool:
    owner = rest.split("-", 1)[0]
    return owner.isdigit() and _alive(int(owner))


def _link(hub: str, ns: str, port: str, address: str) -> None:
    _run("ip", "netns", "add", ns)
    _run("ip", "-n", hub, "link", "add", port, "type", "veth", "peer", "name", "eth0",
         "netns", ns)
    _run("ip", "-n", hub, "link", "set", port, "master", "br0", "up")
    _run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
    _run("ip", "-n", ns, "link", "set", "eth0", "up")
    _run("ip", "-n", ns, "link", "set", "lo", "up")


def _daemon_env(base: dict[str, str], state: Path, host: str) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
    folder = state / host
    for sub in ("pids", "logs", "work"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    java = shutil.which("java")
    if java and "JAVA_HOME" not in env:
        env["JAVA_HOME"] = str(Path(os.path.realpath(java)).parents[1])
    env.update({
        "SPARK_HOME": str(SPARK_HOME), "SPARK_PID_DIR": str(folder / "pids"),
        "SPARK_LOG_DIR": str(folder / "logs"), "SPARK_WORKER_DIR": str(folder / "work"),
        "SPARK_LOCAL_IP": ADDRESSES[host], "SPARK_IDENT_STRING": host,
        "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(ROOT),
        "SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=false",
    })
    return env


def _start_master(run: dict[str, str], base: dict[str, str], state: Path) -> None:
    env = _daemon_env(base, state, "master")
    _run_env(env, "ip", "netns", "exec", run["master"], "bash",
             str(SPARK_HOME / "sbin" / "spark-daemon.sh"), "start", MASTER, "1",
             "--host", ADDRESSES["master"], "--port", str(PORT), "--webui-port", "8080")


# Inside the worker's new mount and UTS namespaces: its own name, /etc/hosts, empty /tmp
# and hidden folders, then the daemon. The code and the interpreter stay visible even when
# they lie in a hidden folder (a checkout under /tmp): bound aside first, back on top after.
_WORKER_SHELL = """set -e
hostname "$1"; mount --bind "$2" /etc/hosts; shift 2
i=0; IFS=:; for k in $SPARKTF_KEEP; do
  mkdir -p "$SPARKTF_KEEP_BASE/$i"; mount --bind "$k" "$SPARKTF_KEEP_BASE/$i"; i=$((i+1)); done
unset IFS
while [ "$1" != -- ]; do mount -t tmpfs -o size=2g sparktf-hidden "$1"; shift; done; shift
i=0; IFS=:; for k in $SPARKTF_KEEP; do
  mkdir -p "$k"; mount --bind "$SPARKTF_KEEP_BASE/$i" "$k"; i=$((i+1)); done
unset IFS
exec bash "$@"
"""


def _kept(hidden: Sequence[Path]) -> list[Path]:
    """The checkout and the interpreter's prefix, where they lie inside a hidden folder."""
    kept: list[Path] = []
    for path in sorted({ROOT, Path(sys.prefix).absolute()}, key=lambda p: len(p.parts)):
        inside = any(path.is_relative_to(h) for h in hidden)
        if inside and not any(path.is_relative_to(k) for k in kept):
            kept.append(path)
    return kept


def _start_worker(host: str, run: dict[str, str], base: dict[str, str], state: Path,
                  hidden: Sequence[Path]) -> subprocess.Popen:
    env = _daemon_env(base, state, host)
    env["SPARKTF_KEEP"] = ":".join(str(k) for k in _kept(hidden))
    env["SPARKTF_KEEP_BASE"] = str(state / host / "keep")
    hosts = state / host / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{ADDRESSES[host]} {run[host]}\n")
    return subprocess.Popen(
        ["ip", "netns", "exec", run[host], "unshare", "--mount", "--uts",
         "--propagation", "private", "bash", "-c", _WORKER_SHELL, "worker", run[host],
         str(hosts), *[str(h) for h in hidden if h.is_dir()], "--",
         str(SPARK_HOME / "sbin" / "spark-daemon.sh"), "start", WORKER, "1",
         "--host", ADDRESSES[host], "--cores", "1", "--memory", "1g",
         "--webui-port", "8081", f"spark://{ADDRESSES['master']}:{PORT}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _run_env(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stdout}{done.stderr}")


def _wait_registered(cluster: MultiHost, workers: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cluster.log("master").count("Registering worker") >= workers:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{workers} workers did not register in {timeout} s:\n"
                       f"{cluster.log('master')[-3000:]}")


@contextmanager
def multihost(hidden: Sequence[Path] = (Path(tempfile.gettempdir()),)) -> Iterator[MultiHost]:
    """Start the cluster; tear everything down on exit (also on failure or interrupt).

    ``hidden``: folders the workers see empty (by default the temp folder, which holds the
    drivers' working, input and model folders of the tests).
    """
    clean_leftovers()
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    run = {host: f"{PREFIX}{tag}-{host}" for host in ("hub", *ADDRESSES)}
    state = STATE / f"{STATE_PREFIX}{tag}"
    shared = state / "shared"
    shared.mkdir(parents=True)
    base = dict(os.environ)
    cluster = MultiHost(run, state, shared, base)
    try:
        _run("ip", "netns", "add", run["hub"])
        _run("ip", "-n", run["hub"], "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", run["hub"], "link", "set", "br0", "up")
        for index, host in enumerate(ADDRESSES):
            _link(run["hub"], run[host], f"p{index}", ADDRESSES[host])
        _start_master(run, base, state)
        starting = [_start_worker(h, run, base, state, hidden) for h in ("w1", "w2")]
        for process in starting:
            out, _ = process.communicate(timeout=120)
            if process.returncode != 0:
                raise RuntimeError(f"worker did not start: {out}")
        _wait_registered(cluster, 2)
        yield cluster
    finally:
        for host in ("driver", "w1", "w2", "master", "hub"):
            _remove_netns(run[host])
        shutil.rmtree(state, ignore_errors=True)
