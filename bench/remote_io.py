"""Reading TFRecords from an S3-protocol server (moto on 127.0.0.1) against local disk.

The same files, read side by side in alternating rounds: ``read_tfrecords`` -> ``noop`` from
the local folder and from ``s3://``; and, in this process, one file read the way a task reads
a remote file (staged whole into a scratch file, then ``tf.data``) against streaming it
through a ``pyarrow`` input stream and the record-by-record reader. moto is not S3 (no
network, one Python process serving): the figures compare code paths, they are no target.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from common import make_tfrecords, spark_session, timed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import s3server  # noqa: E402

HINT = "struct<image:array<float>,label:array<float>>"


def start_server(work: Path):
    """Start moto and point the environment at it; call before any Spark session starts,
    so that the Python workers inherit the endpoint."""
    endpoint = s3server.configure()
    proc = s3server.start(endpoint, work / "moto.log")
    s3server.make_bucket("sparktf-bench")
    return proc


def _spark_read(spark, path: str) -> None:
    import sparktf

    sparktf.read_tfrecords(spark, path, schema_hint=HINT).write.format("noop").mode(
        "overwrite").save()


def _one_file(url: str, staged: bool) -> int:
    from pyspark.sql.types import StructType

    from sparktf.tfrecord.decode import Decoder
    from sparktf.tfrecord.framing import Problem, resolve_compression, scan_records
    from sparktf.tfrecord.reader import ReadSettings, read_file

    schema = StructType.fromDDL("image array<float>, label array<float>")
    if staged:
        return sum(b.num_rows for b in read_file(url, Decoder(schema, "Example"),
                                                 ReadSettings()))
    decoder, rows, pending = Decoder(schema, "Example"), 0, []
    for item in scan_records(url, resolve_compression(url, None)):
        if isinstance(item, Problem):
            raise RuntimeError(item.message())
        pending.append(item[2])
        if len(pending) == 4096:
            rows += decoder.decode(pending, url, rows).num_rows
            pending = []
    return rows + (decoder.decode(pending, url, rows).num_rows if pending else 0)


def run(work: Path, records: int, rounds: int) -> list[dict]:
    from sparktf import fs

    data = make_tfrecords(work / f"remote-{records}", records, 4)
    url = f"s3://sparktf-bench/remote-{records}"
    for path in sorted(data.glob("*.tfrecord")):
        fs.upload(str(path), f"{url}/{path.name}")
    spark = spark_session()
    timed(_spark_read, spark, str(data))  # warm the Python workers (TensorFlow import)
    first = sorted(data.glob("*.tfrecord"))[0].name
    per_file = records // 4
    cases = {
        "read_tfrecords local disk -> noop (local[2])": (records, lambda: _spark_read(
            spark, str(data))),
        "read_tfrecords s3:// -> noop (local[2])": (records, lambda: _spark_read(spark, url)),
        "one s3:// file, staged + tf.data (1 process)": (per_file, lambda: _one_file(
            f"{url}/{first}", True)),
        "one s3:// file, streamed + record scan (1 process)": (per_file, lambda: _one_file(
            f"{url}/{first}", False)),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (_, fn) in cases.items():
            times[name].append(timed(fn)[0])
    return [{"bench": "remote read" if "local[2]" in name else "remote file", "who": name,
             "records": n, "seconds": statistics.median(times[name]), "runs": times[name]}
            for name, (n, _) in cases.items()]
