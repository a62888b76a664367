"""Convert the MNIST IDX files into TFRecords (or CSV) for train and test, with Spark.

Each digit becomes one record with ``image`` (784 floats, pixels scaled to 0-1) and ``label``
(10 floats, one-hot), i.e. a DataFrame of schema ``struct<image:array<float>,label:array<float>>``.
The first 8,000 digits go to ``OUTPUT/train`` and the last 2,000 to ``OUTPUT/test``, each in
``--num_partitions`` files and in the IDX order.

``--format tfr`` writes TFRecord ``Example`` files with ``sparktf.write_tfrecords``;
``--format csv`` writes CSV files with a header and one column per value:
``image_0 .. image_783, label_0 .. label_9``.

Examples
--------
    python examples/mnist/mnist_data_setup.py --output mnist/tfr --format tfr
    python examples/mnist/mnist_data_setup.py --output mnist/csv --format csv --num_partitions 2
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mnist_idx import IMAGES, LABELS, IDXError, load_mnist, to_features

log = logging.getLogger("mnist_data_setup")

TRAIN_SIZE = 8000
# Arrow tables smaller than this many bytes become a local relation (split by the default
# parallelism); above it, one partition per record batch.
ARROW_LOCAL_RELATION = "spark.sql.execution.arrow.localRelationThreshold"


def spark_session(master: str | None) -> Any:
    """A SparkSession on loopback with the UI off; ``local[*]`` unless spark-submit chose."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    import sparktf

    builder = (
        SparkSession.builder.appName("mnist_data_setup")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false")
    )
    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit
        master = "local[*]"
    if master is not None:
        builder = builder.master(master)
    return sparktf.configure_session(builder).getOrCreate()


def _list_array(values: np.ndarray) -> Any:
    """An Arrow ``list<float>`` array, one list per row of a 2-D float32 array (no copy)."""
    import pyarrow as pa

    rows, width = values.shape
    offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1)))


def to_dataframe(
    spark: Any, images: np.ndarray, labels: np.ndarray, *, num_partitions: int, flat: bool = False
) -> Any:
    """The digits as a DataFrame of ``num_partitions`` contiguous partitions, in IDX order.

    By default the columns are ``image: array<float>`` and ``label: array<float>``; with
    ``flat`` one float column per value (``image_0 .. image_783, label_0 .. label_9``), the
    layout CSV needs -- built directly, as 794 array look-ups per row would be slow in Spark.
    The rows travel to Spark as one Arrow table (no Python object per digit) cut into
    ``num_partitions`` contiguous record batches; Spark makes one partition of each batch when
    it does not inline the table as a local relation, which ``ARROW_LOCAL_RELATION = 0`` rules
    out. So the files keep the IDX order, without a shuffle.

    Examples
    --------
    >>> df = to_dataframe(spark, *load_mnist(), num_partitions=2)  # doctest: +SKIP
    >>> df.schema.simpleString()  # doctest: +SKIP
    'struct<image:array<float>,label:array<float>>'
    """
    import pyarrow as pa

    if num_partitions < 1:
        raise ValueError(f"num_partitions must be at least 1, found {num_partitions}")
    x, y = to_features(images, labels)
    if flat:
        columns = {f"image_{i}": x[:, i] for i in range(x.shape[1])}
        columns |= {f"label_{i}": y[:, i] for i in range(y.shape[1])}
    else:
        columns = {"image": _list_array(x), "label": _list_array(y)}
    table = pa.table(columns)
    chunk = max(1, math.ceil(len(x) / num_partitions))
    table = pa.Table.from_batches(table.to_batches(max_chunksize=chunk))
    previous = spark.conf.get(ARROW_LOCAL_RELATION, None)
    spark.conf.set(ARROW_LOCAL_RELATION, "0")
    try:
        return spark.createDataFrame(table)
    finally:
        if previous is None:
            spark.conf.unset(ARROW_LOCAL_RELATION)
        else:
            spark.conf.set(ARROW_LOCAL_RELATION, previous)


def write_split(df: Any, path: Path, *, fmt: str) -> None:
    """Write one split as TFRecords (``tfr``) or CSV with a header (``csv``), replacing ``path``.

    ``df`` has array columns for ``tfr`` and flat columns for ``csv`` (see :func:`to_dataframe`).
    """
    if fmt == "tfr":
        import sparktf

        sparktf.write_tfrecords(df, str(path), mode="overwrite")
    elif fmt == "csv":
        df.write.mode("overwrite").option("header", True).csv(str(path))
    else:
        raise ValueError(f"unknown format {fmt!r}: expected 'tfr' or 'csv'")


def setup(
    spark: Any,
    images: np.ndarray,
    labels: np.ndarray,
    output: str | Path,
    *,
    fmt: str = "tfr",
    num_partitions: int = 10,
    train_size: int = TRAIN_SIZE,
) -> dict[str, Path]:
    """Write ``output/train`` (the first ``train_size`` digits) and ``output/test`` (the rest).

    Examples
    --------
    >>> setup(spark, *load_mnist(), "mnist/csv", fmt="csv")  # doctest: +SKIP
    {'train': PosixPath('mnist/csv/train'), 'test': PosixPath('mnist/csv/test')}
    """
    if not 0 < train_size < len(images):
        raise ValueError(f"train_size must be in 1..{len(images) - 1}, found {train_size}")
    splits = {"train": slice(0, train_size), "test": slice(train_size, len(images))}
    paths = {}
    for name, rows in splits.items():
        df = to_dataframe(
            spark, images[rows], labels[rows], num_partitions=num_partitions, flat=fmt == "csv"
        )
        paths[name] = Path(output) / name
        write_split(df, paths[name], fmt=fmt)
        log.info("wrote %d digits to %s", rows.stop - rows.start, paths[name])
    return paths


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Write the MNIST digits as TFRecords or CSV (train: first 8,000; test: rest).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "example:\n"
            "  python examples/mnist/mnist_data_setup.py --output mnist/tfr --format tfr\n"
        ),
    )
    parser.add_argument("--images", default=str(IMAGES), help="IDX images (.gz ok)")
    parser.add_argument("--labels", default=str(LABELS), help="IDX labels (.gz ok)")
    parser.add_argument("--output", help="output folder (default: mnist/FORMAT)")
    parser.add_argument("--format", choices=("tfr", "csv"), default="tfr", help="default: tfr")
    parser.add_argument("--num_partitions", type=_positive, default=10, help="files per split")
    parser.add_argument("--master", help="Spark master (default: local[*] or spark-submit's)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    log.setLevel(logging.INFO)
    output = args.output or f"mnist/{args.format}"
    started = time.monotonic()
    try:
        images, labels = load_mnist(args.images, args.labels)
    except IDXError as exc:
        print(f"mnist_data_setup: error: {exc}", file=sys.stderr)
        return 1
    spark = spark_session(args.master)
    try:
        spark.sparkContext.setLogLevel("ERROR")
        paths = setup(
            spark, images, labels, output, fmt=args.format, num_partitions=args.num_partitions
        )
    finally:
        spark.stop()
    print(
        f"wrote {', '.join(str(p) for p in paths.values())} ({args.format}, "
        f"{args.num_partitions} partitions each) in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
