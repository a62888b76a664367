"""The MNIST example: IDX reader, training script and data set-up (examples/mnist)."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

import mnist_data_setup  # noqa: E402
import mnist_idx  # noqa: E402
import mnist_train  # noqa: E402

CLASS_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return mnist_idx.load_mnist()


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory: pytest.TempPathFactory) -> mnist_train.TrainResult:
    return mnist_train.train(*digits, tmp_path_factory.mktemp("mnist_model"), epochs=3, seed=0)


def test_idx_reader_on_the_shipped_digits(digits) -> None:
    images, labels = digits
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == CLASS_COUNTS
    assert images.min() == 0 and images.max() == 255
    x, y = mnist_idx.to_features(images[:5], labels[:5])
    assert x.shape == (5, 784) and x.dtype == np.float32 and float(x.max()) <= 1.0
    np.testing.assert_array_equal(x * 255, images[:5].reshape(5, 784).astype(np.float32))
    assert y.argmax(1).tolist() == labels[:5].tolist() and y.sum() == 5


def _idx(path: Path, magic: int, shape: tuple[int, ...], data: bytes) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header + data)
    return path


def test_idx_reader_plain_file(tmp_path: Path) -> None:
    path = _idx(tmp_path / "labels-idx1-ubyte", 2049, (3,), bytes([7, 0, 9]))
    assert mnist_idx.read_idx(path, magic=2049).tolist() == [7, 0, 9]


def _too_short(tmp: Path) -> Path:
    (tmp / "i").write_bytes(b"\0\0")
    return tmp / "i"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: _idx(t / "i.gz", 2049, (2,), b"\0\0"),
         r"expected IDX magic number 2051, found 2049"),
        (lambda t: _idx(t / "i.gz", 2051, (2, 28, 28), bytes(100)),
         r"header declares shape \(2, 28, 28\) \(1568 bytes of data\), found 100 bytes"),
        (lambda t: _idx(t / "i.gz", 2051, (2, 14, 14), bytes(392)),
         r"expected images of shape \(n, 28, 28\), found \(2, 14, 14\)"),
        (lambda t: t / "missing.gz", r"missing\.gz: cannot read IDX file"),
        (_too_short, r"2 bytes, too short for an IDX header"),
    ],
    ids=["wrong-magic", "truncated", "wrong-shape", "missing", "too-short"],
)  # fmt: skip
def test_idx_reader_errors(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(mnist_idx.IDXError, match=message):
        mnist_idx.load_mnist(make(tmp_path), mnist_idx.LABELS)


def test_idx_labels_must_match_images(tmp_path: Path) -> None:
    labels = _idx(tmp_path / "l.gz", 2049, (5,), bytes(5))
    with pytest.raises(
        mnist_idx.IDXError, match=r"l\.gz: expected 10000 labels .* found shape \(5,\)"
    ):
        mnist_idx.load_mnist(mnist_idx.IMAGES, labels)


def test_training_reaches_90_percent_and_saves_the_named_graph(trained) -> None:
    from sparktf.model.export import find_checkpoint, list_operations

    assert trained.accuracy >= 0.90
    assert trained.steps == 3 * 8000 // mnist_train.BATCH_SIZE
    model_dir = Path(trained.checkpoint).parent
    assert find_checkpoint(model_dir) == trained.checkpoint
    ops = dict(list_operations(model_dir))
    assert (ops["x"], ops["y_"], ops["Relu"], ops["prediction"]) == (
        "Placeholder", "Placeholder", "Relu", "ArgMax",
    )  # fmt: skip


def _weights(prefix: str) -> np.ndarray:
    import tensorflow as tf

    return tf.train.load_checkpoint(prefix).get_tensor("hid_w")


def test_training_is_deterministic_with_a_seed(digits, tmp_path: Path) -> None:
    images, labels = digits[0][:600], digits[1][:600]
    runs = [
        mnist_train.train(images, labels, tmp_path / name, epochs=1, seed=seed, train_size=500)
        for name, seed in (("a", 1), ("b", 1), ("c", 2))
    ]
    assert runs[0].accuracy == runs[1].accuracy
    np.testing.assert_array_equal(_weights(runs[0].checkpoint), _weights(runs[1].checkpoint))
    assert not np.array_equal(_weights(runs[0].checkpoint), _weights(runs[2].checkpoint))


def test_train_script_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = mnist_train.main(["--images", str(tmp_path / "nope.gz"), "--model_dir", str(tmp_path)])
    assert code == 1
    assert "mnist_train: error: " in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _read_csv_dir(path: Path) -> tuple[list[Path], pd.DataFrame]:
    parts = sorted(path.glob("part-*.csv"))
    return parts, pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)


def test_data_setup_writes_csv_splits_in_order(spark, digits, tmp_path: Path) -> None:
    images, labels = digits[0][:300], digits[1][:300]
    paths = mnist_data_setup.setup(
        spark, images, labels, tmp_path / "csv", fmt="csv", num_partitions=3, train_size=200
    )
    assert paths == {"train": tmp_path / "csv" / "train", "test": tmp_path / "csv" / "test"}
    x, y = mnist_idx.to_features(images, labels)
    for name, rows in (("train", slice(0, 200)), ("test", slice(200, 300))):
        parts, frame = _read_csv_dir(paths[name])
        assert len(parts) == 3 and (paths[name] / "_SUCCESS").exists()
        assert list(frame.columns[:2]) == ["image_0", "image_1"]
        assert list(frame.columns[-1:]) == ["label_9"] and frame.shape[1] == 794
        np.testing.assert_allclose(frame.filter(like="image_").to_numpy(), x[rows], rtol=1e-6)
        np.testing.assert_array_equal(frame.filter(like="label_").to_numpy(), y[rows])


def test_data_setup_dataframe_schema_and_partitions(spark, digits) -> None:
    df = mnist_data_setup.to_dataframe(spark, digits[0][:50], digits[1][:50], num_partitions=4)
    assert df.schema.simpleString() == "struct<image:array<float>,label:array<float>>"
    assert df.rdd.getNumPartitions() == 4
    rows = df.collect()
    x, y = mnist_idx.to_features(digits[0][:50], digits[1][:50])
    np.testing.assert_array_equal(np.array([r.image for r in rows], np.float32), x)
    np.testing.assert_array_equal(np.array([r.label for r in rows], np.float32), y)


def test_data_setup_writes_tfrecords(spark, digits, tmp_path: Path) -> None:
    import sparktf

    if not hasattr(sparktf, "write_tfrecords"):
        pytest.skip("sparktf.write_tfrecords is not available yet")
    import tensorflow as tf

    images, labels = digits[0][:120], digits[1][:120]
    paths = mnist_data_setup.setup(
        spark, images, labels, tmp_path / "tfr", fmt="tfr", num_partitions=2, train_size=100
    )
    spec = {
        "image": tf.io.FixedLenFeature([784], tf.float32),
        "label": tf.io.FixedLenFeature([10], tf.float32),
    }
    x, y = mnist_idx.to_features(images, labels)
    for name, rows in (("train", slice(0, 100)), ("test", slice(100, 120))):
        files = sorted(str(p) for p in paths[name].glob("part-*"))
        assert len(files) == 2
        records = list(tf.data.TFRecordDataset(files))
        parsed = tf.io.parse_example(tf.stack(records), spec)
        np.testing.assert_array_equal(parsed["image"].numpy(), x[rows])
        np.testing.assert_array_equal(parsed["label"].numpy(), y[rows])
