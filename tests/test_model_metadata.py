"""SavedModel metadata (driver) and the worker runtime, in-process: no Spark job."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sparktf.errors import MappingError, ModelError
from sparktf.model import Feed, Fetch, Plan, get_model, load_metadata, map_batches
from sparktf.model.metadata import TensorSpec, parse_tags
from tests.models import build_keras, build_nobatch, build_types, mnist_numpy, run_plain


def test_tf1_graph_tensors_and_signature(mnist_export: Path) -> None:
    meta = load_metadata(mnist_export)
    assert meta.tags == ("serve",)
    assert meta.tag_sets == (("serve",),)
    assert meta.public_signatures == ["serving_default"]
    assert meta.tensor("Relu") == TensorSpec("Relu:0", "float32", (None, 128))
    assert meta.tensor("x:0") == meta.tensor("x") == TensorSpec("x:0", "float32", (None, 784))
    assert meta.tensor("prediction") == TensorSpec("prediction:0", "int64", (None,))
    assert meta.resolve_input("img", signature_key="serving_default") == meta.tensor("x")
    assert meta.resolve_output("pred", signature_key="serving_default").name == "prediction:0"
    assert ("Relu", "Relu") in [(name, op_type) for name, op_type, _ in meta.operations()]


def test_tf2_aliases_resolve_to_other_tensor_names(tf2_export: Path) -> None:
    meta = load_metadata(tf2_export)
    img = meta.resolve_input("img", signature_key="serving_default")
    assert img.name != "img:0" and img.name.endswith(":0") and "img" in img.name
    assert (img.dtype, img.shape) == ("float32", (None, 4))
    scores = meta.resolve_output("scores", signature_key="serving_default")
    label = meta.resolve_output("label", signature_key="serving_default")
    assert (scores.dtype, scores.shape) == ("float32", (None, 3))
    assert (label.dtype, label.shape) == ("int64", (None,))
    assert meta.public_signatures == ["serving_default", "sums"]


def test_tf2_model_runs_through_the_v1_loader(tf2_export: Path) -> None:
    meta = load_metadata(tf2_export)
    feed = meta.resolve_input("img", signature_key="serving_default").name
    fetch = meta.resolve_output("scores", signature_key="serving_default").name
    rows = np.array([[1, 2, 3, 4], [0, 0, 0, 1]], np.float32)
    (scores,) = get_model(str(tf2_export), ("serve",)).run([feed], [fetch], [rows])
    weights = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    np.testing.assert_allclose(scores, rows @ weights, rtol=1e-6)


def test_keras_export_runs_through_the_v1_loader(tmp_path: Path) -> None:
    export = build_keras(tmp_path / "keras")
    meta = load_metadata(export)
    feed = meta.resolve_input("feat", signature_key="serving_default")
    fetch = meta.resolve_output("output_0", signature_key="serving_default")
    assert feed.name != "feat:0" and fetch.shape == (None, 2)
    rows = np.array([[1, 2, 3, 4], [0.5, 0, 0, 0]], np.float32)
    (out,) = get_model(str(export), ("serve",)).run([feed.name], [fetch.name], [rows])
    np.testing.assert_allclose(out, np.repeat(rows.sum(axis=1, keepdims=True), 2, axis=1))


def test_placeholders_the_outputs_need(mnist_export: Path) -> None:
    meta = load_metadata(mnist_export)
    assert meta.unfed_placeholders(["prediction:0"], []) == ["x:0"]
    assert meta.unfed_placeholders(["prediction:0", "Relu:0"], ["x:0"]) == []
    assert meta.unfed_placeholders(["loss:0"], ["x:0"]) == ["y_:0"]


def test_parse_tags() -> None:
    assert parse_tags("serve") == ("serve",)
    assert parse_tags(" serve , gpu") == parse_tags(["gpu", "serve"]) == ("gpu", "serve")


@pytest.fixture(scope="module")
def not_a_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plain")
    (folder / "notes.txt").write_text("no model here")
    return folder


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("missing", ModelError, r"SavedModel directory '.*mnist_exprt' does not exist; "
                                r"closest: 'mnist_export'"),
        ("file", ModelError, r"SavedModel path '.*notes.txt' is a file, not a directory"),
        ("plain", ModelError, r"'.*' is not a SavedModel directory: it has no saved_model.pb "
                              r"or saved_model.pbtxt \(it holds: notes.txt\)"),
        ("tags", ModelError, r"tag set 'gpu,train' not found in SavedModel '.*mnist_export'; "
                             r"its tag sets: 'serve'"),
        ("signature", ModelError, r"signature 'predict' not found in SavedModel "
                                  r"'.*mnist_export' \(tag set 'serve'\); its signatures: "
                                  r"'serving_default'"),
        ("tensor", MappingError, r"tensor 'Reluu' not found in the graph of SavedModel "
                                 r"'.*mnist_export'; closest: 'Relu'.*; `sparktf inspect "
                                 r"--export_dir .*mnist_export --ops` lists them all"),
        ("tensor-index", MappingError, r"tensor 'x:1' not found .*closest: 'x:0'"),
        ("alias", MappingError, r"input alias 'image' not found in signature 'serving_default'"
                                r".*closest: 'img'; its inputs: 'img'"),
    ],
)
def test_metadata_errors(case: str, error: type, message: str, mnist_export: Path,
                         not_a_model: Path) -> None:
    with pytest.raises(error, match=message):
        if case == "missing":
            load_metadata(mnist_export.parent / "mnist_exprt")
        elif case == "file":
            load_metadata(not_a_model / "notes.txt")
        elif case == "plain":
            load_metadata(not_a_model)
        elif case == "tags":
            load_metadata(mnist_export, tag_set="train,gpu")
        elif case == "signature":
            load_metadata(mnist_export).signature("predict")
        elif case == "tensor":
            load_metadata(mnist_export).tensor("Reluu")
        elif case == "tensor-index":
            load_metadata(mnist_export).tensor("x:1")
        else:
            load_metadata(mnist_export).resolve_input("image", signature_key="serving_default")


def test_corrupt_saved_model_file(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\x00 not a protocol buffer")
    with pytest.raises(ModelError, match=r"cannot parse '.*saved_model.pb' as a SavedModel"):
        load_metadata(tmp_path)


def _mnist_plan(export: Path, batch_size: int) -> Plan:
    return Plan(export_dir=str(export), tags=("serve",),
                feeds=(Feed("image", "x:0", "float32", (None, 784)),),
                fetches=(Fetch("prediction:0", "pred", "int64", (None,)),
                         Fetch("Relu:0", "features", "float32", (None, 128))),
                passthrough=("id",), batch_size=batch_size)


def test_map_batches_rechunks_and_matches_plain_tensorflow(mnist_export: Path) -> None:
    rng = np.random.RandomState(3)
    images = rng.rand(23, 784).astype(np.float32)
    offsets = pa.array(np.arange(24, dtype=np.int32) * 784)
    batch = pa.RecordBatch.from_arrays(
        [pa.array(np.arange(23)), pa.ListArray.from_arrays(offsets, pa.array(images.ravel()))],
        names=["id", "image"])
    empty = batch.slice(0, 0)
    out = list(map_batches(iter([empty, batch.slice(0, 20), batch.slice(20)]),
                           plan=_mnist_plan(mnist_export, batch_size=8)))
    assert [b.num_rows for b in out] == [20, 3]
    assert out[0].schema.names == ["id", "pred", "features"]
    table = pa.Table.from_batches(out)
    pred, relu = run_plain(mnist_export, {"x:0": images}, ["prediction:0", "Relu:0"])
    assert table.column("id").to_pylist() == list(range(23))
    np.testing.assert_array_equal(table.column("pred").to_numpy(), pred)
    np.testing.assert_allclose(np.array(table.column("features").to_pylist()), relu, atol=1e-5)
    np.testing.assert_array_equal(pred, mnist_numpy(images)[0])


def test_runtime_output_without_batch_dimension(nobatch_export: Path) -> None:
    plan = Plan(export_dir=str(nobatch_export), tags=("serve",),
                feeds=(Feed("v", "x:0", "float32", (None, 4)),),
                fetches=(Fetch("flat:0", "flat", "float32", (None,)),))
    batch = pa.RecordBatch.from_arrays([pa.array([[1.0, 2.0, 3.0, 4.0]] * 3)], names=["v"])
    with pytest.raises(ModelError, match=r"output tensor 'flat:0' returned shape \[12\] for a "
                                         r"batch of 3 rows: its first dimension is not the batch"):
        list(map_batches(iter([batch]), plan=plan))


def test_worker_cache_reloads_a_changed_model(tmp_path: Path) -> None:
    export = build_nobatch(tmp_path / "model")
    first = get_model(str(export), ("serve",))
    assert get_model(str(export), ("serve",)) is first
    shutil.rmtree(export)
    build_types(export)  # another model at the same path
    second = get_model(str(export), ("serve",))
    assert second is not first
    (out,) = second.run(["i32:0"], ["i32_out:0"], [np.array([5, 6], np.int32)])
    np.testing.assert_array_equal(out, [5, 6])
