"""Model scoring benchmarks.

- ``transform_vs_udf`` (issue 3): 1M rows read from Parquet (``image`` array<float> of 784),
  one TF1 MNIST-style model, batch size 1024, into the ``noop`` sink, alternating in one
  session: TFModel (fused Parquet scan), TFModel general path, Spark's ``predict_batch_udf``;
  plus plain single-process TF on the same rows (TensorFlow already imported).
- ``end_to_end`` (issue 6): whole-process ``sparktf infer`` against the plain TensorFlow
  script (bench/plain_tf.py) on 1M and 2M TFRecords, alternately; marginal throughput and
  fixed cost; the predicted class counts must match.
- ``memory``: peak RSS per Python worker scoring 1M and 4M records.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from common import (
    ROOT,
    accounted,
    make_tfrecords,
    mnist,
    plain_gc,
    spark_session,
    timed,
    warm_cache,
    worker_peak_rss,
)
from cpu import KINDS, run_accounted

sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent


def model(work: Path, *, aliases: tuple[str, str] = ("img", "pred")) -> Path:
    """The seeded TF1 MNIST-style SavedModel of the test suite (784 -> 128 Relu -> 10)."""
    from tests.models import build_mnist

    out = work / f"mnist_model_{'_'.join(aliases)}"
    if not (out / "saved_model.pb").exists():
        shutil.rmtree(out, ignore_errors=True)
        build_mnist(out, aliases=aliases)
    return out


def make_parquet(out: Path, rows: int, files: int = 10) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    marker = out / f"_DONE_{rows}"
    if marker.exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    images, _ = mnist()
    per_file = rows // files
    tiled = np.resize(images, (per_file, 784))
    column = pa.FixedSizeListArray.from_arrays(pa.array(tiled.ravel()), 784).cast(
        pa.list_(pa.float32()))
    table = pa.table({"image": column, "id": pa.array(np.arange(per_file, dtype=np.int64))})
    for i in range(files):
        pq.write_table(table, out / f"part-{i:05d}.parquet", row_group_size=per_file // 2)
    marker.write_text("ok")
    return out


def _noop(df) -> None:
    df.write.format("noop").mode("overwrite").save()


def _udf(export: Path):
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import LongType

    def make_predict_fn():
        import gc

        import tensorflow as tf

        # as common.plain_gc, inlined (this runs in a Python worker, which cannot import
        # bench/common.py): TFModel's tasks in the same worker froze its objects before
        gc.unfreeze()

        sess = tf.compat.v1.Session(graph=tf.Graph())
        tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(export))
        run = sess.make_callable("prediction:0", ["x:0"])
        return lambda x: run(x)

    return predict_batch_udf(make_predict_fn, return_type=LongType(), batch_size=1024,
                             input_tensor_shapes=[[784]])


def plain_tf_rows(parquet: Path, export: Path) -> tuple[int, float]:
    import pyarrow.parquet as pq
    import tensorflow as tf

    plain_gc()
    sess = tf.compat.v1.Session(graph=tf.Graph())
    tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(export))
    run = sess.make_callable("prediction:0", ["x:0"])
    start, n = time.perf_counter(), 0
    for path in sorted(parquet.glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024, columns=["image"]):
            values = batch.column(0).values.to_numpy().reshape(-1, 784)
            n += len(run(values))
    return n, time.perf_counter() - start


def transform_vs_udf(work: Path, rows: int, rounds: int) -> list[dict]:
    import sparktf

    export, parquet = model(work), make_parquet(work / f"parquet-{rows}", rows)
    spark = spark_session()
    df = spark.read.parquet(str(parquet))
    kw = dict(exportDir=str(export), inputMapping={"image": "x"},
              outputMapping={"prediction": "prediction"}, batchSize=1024)
    runs = {
        "TFModel.transform (fused Parquet scan)": lambda: _noop(
            sparktf.TFModel(**kw).transform(df)),
        "TFModel.transform (general mapInArrow path)": lambda: _noop(
            sparktf.TFModel(fuseScan=False, **kw).transform(df)),
        "predict_batch_udf": lambda: _noop(df.select(_udf(export)("image"))),
    }
    _noop(sparktf.TFModel(**kw).transform(df.limit(1000)))  # warm the workers (TF import)
    result: list[tuple[int, float]] = []
    times: dict[str, list[float]] = {k: [] for k in runs}
    cpus: dict[str, list[dict[str, float]]] = {k: [] for k in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            seconds, cpu = accounted(fn)
            times[name].append(seconds)
            cpus[name].append(cpu)
    _, plain_cpu = accounted(lambda: result.append(plain_tf_rows(parquet, export)))
    (n, plain), = result
    order = ["predict_batch_udf", *(name for name in runs if name != "predict_batch_udf")]
    out = [{"bench": "transform", "who": name, "records": rows,
            "seconds": statistics.median(times[name]), "runs": times[name], "cpu": cpus[name]}
           for name in order]
    out.append({"bench": "transform", "who": "plain TF, 1 process (TF imported)",
                "records": n, "seconds": plain, "cpu": [plain_cpu]})
    return out


def _infer_cmd(files: list[str], export: Path, out: Path, *extra: str) -> list[str]:
    return [str(BIN / "sparktf"), "infer", "--input", *files, "--export_dir", str(export),
            "--input_mapping", '{"image": "x"}', "--output_mapping",
            '{"prediction": "prediction"}', "--output", str(out), "--mode", "overwrite", *extra]


def _run(cmd: list[str]) -> tuple[float, str, dict[str, float]]:
    """Wall seconds, standard output and CPU account of a whole process (bench/cpu.py)."""
    pin = os.environ.get("SPARKTF_BENCH_PIN")  # run.py --pin: these CPUs only (taskset)
    account, seconds, stdout, _ = run_accounted(["taskset", "-c", pin, *cmd] if pin else cmd)
    return seconds, stdout, account.seconds


def _counts(spark, out: Path) -> list[int]:
    rows = spark.read.json(str(out)).groupBy("prediction").count().collect()
    counts = [0] * 10
    for r in rows:
        counts[r["prediction"]] = r["count"]
    return counts


def end_to_end(work: Path, per_file: int, rounds: int) -> tuple[list[dict], dict]:
    export = model(work)
    data = make_tfrecords(work / f"e2e-{per_file}", per_file * 20, 20)
    files = sorted(str(p) for p in data.glob("*.tfrecord"))
    sizes = {10 * per_file: files[:10], 20 * per_file: files}
    out = work / "infer-out"
    times: dict[tuple[str, int], list[float]] = {}
    cpus: dict[tuple[str, int], list[dict[str, float]]] = {}
    plain_counts = {}
    for _ in range(rounds):
        for n, chosen in sizes.items():
            for who, cmd in (("plain", [sys.executable, str(ROOT / "bench" / "plain_tf.py"),
                                        str(export), *chosen]),
                             ("graph", [sys.executable,
                                        str(ROOT / "bench" / "plain_tf_graph.py"),
                                        str(export), *chosen]),
                             ("sparktf", _infer_cmd(chosen, export, out / str(n)))):
                warm_cache(chosen)
                t, stdout, cpu = _run(cmd)
                times.setdefault((who, n), []).append(t)
                cpus.setdefault((who, n), []).append(cpu)
                if who in ("plain", "graph"):
                    plain_counts.setdefault(n, json.loads(stdout))
                    assert json.loads(stdout) == plain_counts[n], (who, n)
        t, _, cpu = _run([sys.executable, str(ROOT / "bench" / "spark_floor.py")])
        times.setdefault(("floor", 0), []).append(t)
        cpus.setdefault(("floor", 0), []).append(cpu)
    warm_cache(sizes[10 * per_file])
    t_general, _, cpu_general = _run(_infer_cmd(sizes[10 * per_file], export, out / "general",
                                                "--no_fuse"))
    spark = spark_session()
    same = all(_counts(spark, out / str(n)) == plain_counts[n] for n in sizes)
    small, big = sorted(sizes)
    med = {k: statistics.median(v) for k, v in times.items()}
    summary = {"same_predictions": same, "spark_floor_s": med[("floor", 0)],
               "spark_floor_cpu": cpu_total(cpus[("floor", 0)])}
    rows = []
    for who in ("plain", "graph", "sparktf"):
        marginal = (big - small) / (med[(who, big)] - med[(who, small)])
        fixed = med[(who, small)] - small / marginal
        summary[who] = {"T_small": med[(who, small)], "T_big": med[(who, big)],
                        "marginal_rps": marginal, "fixed_s": fixed,
                        **marginal_cpu(cpus[(who, small)], cpus[(who, big)], big - small)}
        label = {"plain": "plain TF script (whole process)",
                 "graph": "plain TF, graph mode (whole process)",
                 "sparktf": "sparktf infer, fused (whole process)"}[who]
        for n in (small, big):
            rows.append({"bench": "end-to-end", "who": f"{label}, {n:,}", "records": n,
                         "seconds": med[(who, n)], "runs": times[(who, n)],
                         "cpu": cpus[(who, n)]})
    summary["rounds"] = round_table(times, cpus, small, big)  # marginals round by round
    rows.append({"bench": "end-to-end", "who": "sparktf infer --no_fuse (general path)",
                 "records": small, "seconds": t_general, "cpu": [cpu_general]})
    return rows, summary


def parallelism(seconds: float, cpu: dict[str, float]) -> float:
    """Cores a run kept busy on average: its CPU seconds over its wall seconds. This VM's
    "modes" show here: the same single-process TensorFlow run keeps ~1.5 cores busy in one
    and ~1.1 in the other, for the same CPU seconds."""
    return sum(cpu.get(k, 0.0) for k in KINDS) / seconds


def round_table(times: dict, cpus: dict, small: int, big: int) -> list[dict[str, object]]:
    """Each round's marginal throughput of plain TF and infer, their ratio, and the mode each
    run caught (cores busy, see :func:`parallelism`); a round whose two plain TF runs kept
    different numbers of cores busy (by more than 0.2) mixes modes, and its marginals compare
    runs made at two speeds."""
    out = []
    for i in range(len(times[("plain", small)])):
        row: dict[str, object] = {}
        for who in ("plain", "sparktf"):
            t_small, t_big = times[(who, small)][i], times[(who, big)][i]
            row[who] = {"marginal_rps": round((big - small) / (t_big - t_small)),
                        "cores_busy": [round(parallelism(times[(who, n)][i], cpus[(who, n)][i]),
                                             2) for n in (small, big)]}
        busy = row["plain"]["cores_busy"]
        row["mixed_modes"] = abs(busy[0] - busy[1]) > 0.2
        row["ratio"] = round(row["sparktf"]["marginal_rps"] / row["plain"]["marginal_rps"], 2)
        out.append(row)
    return out


def cpu_total(runs: list[dict[str, float]]) -> float:
    """The median over runs of the CPU seconds of every process."""
    return statistics.median(sum(run.get(k, 0.0) for k in KINDS) for run in runs)


def marginal_cpu(small: list[dict[str, float]], big: list[dict[str, float]],
                 records: int) -> dict[str, object]:
    """CPU µs per record of the records between the two sizes, per kind of process (medians
    over rounds) and in all, with each round's figure."""
    per_kind = {kind: statistics.median((b.get(kind, 0.0) - s.get(kind, 0.0)) * 1e6 / records
                                        for s, b in zip(small, big)) for kind in KINDS}
    rounds = [sum(b.get(k, 0.0) - s.get(k, 0.0) for k in KINDS) * 1e6 / records
              for s, b in zip(small, big)]
    return {"marginal_cpu_us": statistics.median(rounds), "marginal_cpu_us_per_round": rounds,
            "marginal_cpu_us_by_kind": per_kind}


def udf_on_tfrecords(work: Path, per_file: int) -> list[dict]:
    """predict_batch_udf over read_tfrecords (10 files), in-process, into noop."""
    import sparktf

    export = model(work)
    data = make_tfrecords(work / f"e2e-{per_file}", per_file * 20, 20)
    files = sorted(str(p) for p in data.glob("*.tfrecord"))[:10]
    spark = spark_session()
    df = sparktf.read_tfrecords(spark, files, schema_hint="struct<image:array<float>>")
    warm_cache(files)
    t, _ = timed(_noop, df.select(_udf(export)("image")))
    return [{"bench": "end-to-end", "who": "read_tfrecords + predict_batch_udf (in-process)",
             "records": 10 * per_file, "seconds": t}]


def tfos(work: Path, records: int) -> list[dict]:
    """TensorFlowOnSpark 2.2.5's TFModel on ``records`` rows, where it is installed."""
    try:
        from tensorflowonspark import pipeline
    except ImportError:
        return []
    import sparktf

    # TFoS 2.2.5 looks signature aliases up as tensor names (KeyError: 'img:0' on the
    # other model), so it gets a copy whose aliases equal the tensor names.
    export = model(work, aliases=("x", "prediction"))
    data = make_tfrecords(work / f"tfos-{records}", records, 2)
    spark = spark_session()
    df = sparktf.read_tfrecords(spark, str(data), schema_hint="struct<image:array<float>>")
    df = df.cache()
    df.count()
    tfos_model = (pipeline.TFModel({"export_dir": str(export), "signature_def_key":
                                    "serving_default", "batch_size": 1024})
                  .setInputMapping({"image": "x"}).setOutputMapping({"prediction": "prediction"})
                  .setExportDir(str(export)).setSignatureDefKey("serving_default"))
    t, _ = timed(_noop, tfos_model.transform(df))
    df.unpersist()
    return [{"bench": "end-to-end", "who": "TensorFlowOnSpark 2.2.5 TFModel (in-process)",
             "records": records, "seconds": t}]


def output_formats(work: Path, per_file: int, rounds: int) -> list[dict]:
    """The output write on its own: the same fused scoring of 10 files (1M records at full
    scale) into ``noop`` and into JSON, Parquet and TFRecord files, alternating in one
    session; each format's write costs its difference to ``noop``."""
    import sparktf

    export = model(work)
    data = make_tfrecords(work / f"e2e-{per_file}", per_file * 20, 20)
    files = sorted(str(p) for p in data.glob("*.tfrecord"))[:10]
    spark = spark_session()
    out = work / "output-formats"

    def scored():
        df = sparktf.read_tfrecords(spark, files, schema_hint="struct<image:array<float>>")
        return sparktf.TFModel(exportDir=str(export), inputMapping={"image": "x"},
                               outputMapping={"prediction": "prediction"}).transform(df)

    writers = {
        "fused infer -> noop": lambda: _noop(scored()),
        "fused infer -> JSON": lambda: scored().write.mode("overwrite").json(str(out / "j")),
        "fused infer -> Parquet": lambda: scored().write.mode("overwrite").parquet(
            str(out / "p")),
        "fused infer -> TFRecord": lambda: sparktf.write_tfrecords(scored(), str(out / "t"),
                                                                   mode="overwrite"),
    }
    _noop(scored())  # warm the workers
    times: dict[str, list[float]] = {k: [] for k in writers}
    cpus: dict[str, list[dict[str, float]]] = {k: [] for k in writers}
    for _ in range(rounds):
        for name, fn in writers.items():
            warm_cache(files)
            seconds, cpu = accounted(fn)
            times[name].append(seconds)
            cpus[name].append(cpu)
    shutil.rmtree(out, ignore_errors=True)
    return [{"bench": "output", "who": name, "records": 10 * per_file,
             "seconds": statistics.median(t), "runs": t, "cpu": cpus[name]}
            for name, t in times.items()]


def memory(work: Path, per_file: int) -> list[dict]:
    import sparktf

    export = model(work)
    data = make_tfrecords(work / f"e2e-{per_file}", per_file * 20, 20)
    files = sorted(str(p) for p in data.glob("*.tfrecord"))
    spark = spark_session()
    rows = []
    for label, chosen in (("1x", files[:10]), ("4x", files + files)):
        df = sparktf.read_tfrecords(spark, chosen, schema_hint="struct<image:array<float>>")
        scored = sparktf.TFModel(exportDir=str(export), inputMapping={"image": "x"},
                                 outputMapping={"prediction": "prediction"}).transform(df)
        with worker_peak_rss() as rss:
            t, _ = timed(_noop, scored)
        rows.append({"bench": "memory", "who": f"TFModel fused, {len(chosen) * per_file:,} "
                     f"records ({label})", "records": len(chosen) * per_file, "seconds": t,
                     "peak_rss_mib": rss["peak_mib"]})
    return rows
