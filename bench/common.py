"""Shared benchmark helpers: MNIST-shaped data, a Spark session, per-worker peak RSS."""

from __future__ import annotations

import gzip
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist" / "data"
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 shipped digits: images float32 [n, 784] in 0-1, one-hot labels [n, 10]."""
    with gzip.open(MNIST / "digits-10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(MNIST / "digits-10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images.astype(np.float32) / 255.0, np.eye(10, dtype=np.float32)[labels]


def make_tfrecords(out: Path, records: int, files: int) -> Path:
    """Write ``records`` MNIST-shaped Examples (``image`` 784 floats, ``label`` 10 floats),
    tiled from the real digits, into ``files`` files under ``out`` (kept between runs)."""
    import pyarrow as pa
    from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

    from sparktf.tfrecord.encode import Encoder
    from sparktf.tfrecord.framing import RecordFileWriter, frame

    marker = out / f"_DONE_{records}_{files}"
    if marker.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):
        old.unlink()
    images, labels = mnist()
    schema = StructType([StructField("image", ArrayType(FloatType())),
                         StructField("label", ArrayType(FloatType()))])
    encoder = Encoder(schema, "Example")
    per_file, chunk = records // files, 10_000
    for index in range(files):
        with RecordFileWriter(str(out / f"part-{index:05d}.tfrecord")) as writer:
            for start in range(0, per_file, chunk):
                n = min(chunk, per_file - start)
                batch = pa.record_batch([_lists(images[:n]), _lists(labels[:n])],
                                        names=["image", "label"])
                writer.write_framed(b"".join(map(frame, encoder.encode(batch))))
    marker.write_text("ok")
    return out


def _lists(matrix: np.ndarray):
    import pyarrow as pa

    fixed = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), matrix.shape[1])
    return fixed.cast(pa.list_(pa.float32()))


def spark_session(master: str = "local[2]"):
    from pyspark.sql import SparkSession

    import sparktf

    builder = (
        SparkSession.builder.master(master)
        .appName("sparktf-bench")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.files.maxPartitionBytes", str(64 << 20))
    )
    # the session the README recommends (infer builds the same), unless ``run.py
    # --spark-defaults`` asks for Spark's defaults (to measure what configure_session gives)
    if os.environ.get("SPARKTF_BENCH_SPARK_DEFAULTS") != "1":
        builder = sparktf.configure_session(builder)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _python_workers() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"pyspark.daemon" in cmd or b"pyspark.worker" in cmd or b"pyspark/worker" in cmd:
            pids.append(int(entry))
    return pids


def _peak_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextmanager
def worker_peak_rss() -> Iterator[dict[str, float]]:
    """Track the peak RSS (VmHWM) of every Spark Python worker while the block runs.

    Yields a dict that holds ``peak_mib`` (the largest single worker) afterwards.
    """
    result: dict[str, float] = {"peak_mib": 0.0}
    peaks: dict[int, int] = {}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            for pid in _python_workers():
                peaks[pid] = max(peaks.get(pid, 0), _peak_kib(pid))
            stop.wait(0.2)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        for pid in _python_workers():
            peaks[pid] = max(peaks.get(pid, 0), _peak_kib(pid))
        result["peak_mib"] = max(peaks.values(), default=0) / 1024


def plain_gc() -> None:
    """Give a baseline Python's default GC state in the process it runs in.

    sparktf moves long-lived objects out of the cyclic GC in the processes it runs in
    (``sparktf._tf.freeze_survivors``). A baseline that shares such a process (this driver, or
    a Python worker that Spark reuses across the jobs of one session) would inherit a speed-up
    it does not have on its own: predict_batch_udf measured ~20% faster that way.
    """
    import gc

    gc.unfreeze()


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def accounted(fn, *args, **kwargs) -> tuple[float, dict[str, float]]:
    """Wall seconds of ``fn(...)`` and the CPU seconds it cost, by kind of process (this
    process, the JVM it started, Spark's Python workers: ``bench/cpu.py``)."""
    from cpu import CpuAccount

    with CpuAccount() as cpu:
        seconds, _ = timed(fn, *args, **kwargs)
    return seconds, cpu.seconds


def warm_cache(paths: list[str] | list[Path]) -> None:
    """Read ``paths`` (files, or folders of files) once, so the timed run that follows finds
    them in the page cache: this VM's proactive reclaim evicts cold files within minutes,
    and a 6 GB re-read from its disk takes ~30 s, which would swamp the figures."""
    for path in paths:
        path = Path(path)
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                with open(file, "rb") as handle:
                    while handle.read(1 << 24):
                        pass
