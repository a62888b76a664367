"""TFRecord read and write throughput: sparktf in Spark against TensorFlow in one process.

Read: ``spark.read.format("tfrecord")`` into the ``noop`` sink, against
``tf.data.TFRecordDataset`` + ``tf.io.parse_example`` on batches of 1024.
Write: ``sparktf.write_tfrecords`` against a ``tf.io.TFRecordWriter`` loop that builds one
``tf.train.Example`` per row. Both sides use the same records.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path

from common import (
    accounted,
    make_tfrecords,
    mnist,
    plain_gc,
    spark_session,
    timed,
    warm_cache,
    worker_peak_rss,
)

import sparktf

HINT = "struct<image:array<float>,label:array<float>>"


def tf_read(files: list[str]) -> int:
    import tensorflow as tf

    plain_gc()

    spec = {"image": tf.io.FixedLenFeature([784], tf.float32),
            "label": tf.io.FixedLenFeature([10], tf.float32)}
    n = 0
    for batch in tf.data.TFRecordDataset(files).batch(1024):
        parsed = tf.io.parse_example(batch, spec)
        n += int(parsed["image"].shape[0])
    return n


def tf_write_loop(path: str, records: int) -> int:
    import tensorflow as tf

    plain_gc()

    images, labels = mnist()
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(records):
            j = i % len(images)
            example = tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(float_list=tf.train.FloatList(value=images[j])),
                "label": tf.train.Feature(float_list=tf.train.FloatList(value=labels[j])),
            }))
            writer.write(example.SerializeToString())
    return records


def sparktf_read(spark, path: str) -> None:
    import sparktf

    df = sparktf.read_tfrecords(spark, path, schema_hint=HINT)
    df.write.format("noop").mode("overwrite").save()


def _noop(df) -> None:
    df.write.format("noop").mode("overwrite").save()


def _to_parquet(spark, path: str, out: str) -> None:
    sparktf.read_tfrecords(spark, path, schema_hint=HINT).write.mode("overwrite").parquet(out)


def _scored(spark, path: str):
    from model_bench import model

    df = sparktf.read_tfrecords(spark, path, schema_hint=HINT)
    return sparktf.TFModel(exportDir=str(model(Path(path).parent)), inputMapping={"image": "x"},
                           outputMapping={"prediction": "prediction"}).transform(df)


def sparktf_write(spark, source: str, out: str) -> None:
    sparktf.write_tfrecords(spark.read.parquet(source), out, mode="overwrite")


def _defaults(spark, fn):
    """``fn`` run with the session's ``spark.sql.files.maxPartitionBytes`` unset (this
    bench sets 64 MiB): each conversion route then packs tasks as it does by default."""
    key = "spark.sql.files.maxPartitionBytes"

    def run() -> None:
        saved = spark.conf.get(key, None)
        spark.conf.unset(key)
        try:
            fn()
        finally:
            if saved is not None:
                spark.conf.set(key, saved)

    return run


def _read_rounds(spark, data: Path, same: Path, rounds: int) -> dict[str, tuple[list, float]]:
    """Seconds of each round (and peak worker RSS) of each reader over alternating ``rounds``,
    every timed run starting with its input read once (``warm_cache``)."""
    files_list = sorted(str(p) for p in data.glob("*.tfrecord"))
    readers = {
        "tf.data + parse_example (1 process)": (files_list, lambda: tf_read(files_list)),
        "sparktf read -> noop (local[2])": (files_list, lambda: sparktf_read(spark, str(data))),
        "Spark's own Parquet reader -> noop (same records)": (
            [same], lambda: _noop(spark.read.parquet(str(same)))),
        "sparktf read -> Parquet files (conversion)": (
            files_list, lambda: _to_parquet(spark, str(data), str(data) + ".converted")),
        "sparktf.tfrecords_to_parquet (pyarrow in the tasks)": (
            files_list, lambda: sparktf.tfrecords_to_parquet(
                spark, str(data), str(data) + ".pyarrow", schema_hint=HINT, mode="overwrite")),
        "sparktf read -> Parquet files, Spark's default task size (128 MiB)": (
            files_list, _defaults(spark, lambda: _to_parquet(spark, str(data),
                                                             str(data) + ".converted"))),
        "sparktf.tfrecords_to_parquet, its default task size (1 GiB)": (
            files_list, _defaults(spark, lambda: sparktf.tfrecords_to_parquet(
                spark, str(data), str(data) + ".pyarrow", schema_hint=HINT, mode="overwrite"))),
        "TFModel fused over the files -> noop (read + score)": (
            files_list, lambda: _noop(_scored(spark, str(data)))),
    }
    times: dict[str, list[float]] = {name: [] for name in readers}
    cpus: dict[str, list[dict[str, float]]] = {name: [] for name in readers}
    peaks: dict[str, float] = {}
    for _ in range(rounds):
        for name, (inputs, fn) in readers.items():
            warm_cache(inputs)
            with worker_peak_rss() as rss:
                seconds, cpu = accounted(fn)
            times[name].append(seconds)
            cpus[name].append(cpu)
            peaks[name] = max(peaks.get(name, 0.0), rss["peak_mib"])
    return {name: (t, peaks[name], cpus[name]) for name, t in times.items()}


def run(work: Path, records: int, write_records: int, files: int,
        rounds: int = 1) -> list[dict]:
    import tensorflow  # noqa: F401  (imported before timing the single-process baselines)

    data = make_tfrecords(work / f"read-{records}", records, files)
    wdata = make_tfrecords(work / f"write-{write_records}", write_records, 2)
    spark = spark_session()
    parquet = str(work / f"write-{write_records}.parquet")
    sparktf.read_tfrecords(spark, str(wdata), schema_hint=HINT).write.mode(
        "overwrite").parquet(parquet)
    same = work / f"read-{records}.parquet"  # the same records, for Spark's own reader
    if not (same / "_SUCCESS").exists():  # written once, kept in bench/output
        sparktf.read_tfrecords(spark, str(data), schema_hint=HINT).write.mode(
            "overwrite").parquet(str(same))
    timed(sparktf_read, spark, str(wdata))  # warm the Python workers (TensorFlow import)
    rows = [{"bench": "read", "who": name, "records": records, "seconds": statistics.median(t),
             "runs": t, "peak_rss_mib": peak if "sparktf" in name else None, "cpu": cpu}
            for name, (t, peak, cpu) in _read_rounds(spark, data, same, rounds).items()]
    out = Path(tempfile.mkdtemp(dir=work))
    try:
        t_loop, _ = timed(tf_write_loop, str(out / "loop.tfrecord"), write_records)
        with worker_peak_rss() as rss:
            t_w, _ = timed(sparktf_write, spark, parquet, str(out / "sparktf"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rows.append({"bench": "write", "who": "tf.io.TFRecordWriter loop (1 process)",
                 "records": write_records, "seconds": t_loop})
    rows.append({"bench": "write", "who": "Parquet -> write_tfrecords (local[2])",
                 "records": write_records, "seconds": t_w, "peak_rss_mib": rss["peak_mib"]})
    return rows


def memory(work: Path, small: int, factor: int = 4) -> list[dict]:
    """Peak worker RSS reading one file of ``small`` records and one of ``factor`` x more."""
    spark = spark_session()
    rows = []
    for n in (small, small * factor):
        data = make_tfrecords(work / f"mem-{n}", n, 1)
        with worker_peak_rss() as rss:
            seconds, _ = timed(sparktf_read, spark, str(data))
        rows.append({"bench": "read memory", "who": f"sparktf read, one file of {n} records",
                     "records": n, "seconds": seconds, "peak_rss_mib": rss["peak_mib"]})
    return rows
