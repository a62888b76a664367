"""TFModel: SavedModel inference as a Spark ML Transformer (local Spark)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import functions as F

from sparktf.errors import MappingError, ModelError
from sparktf.ml import TFModel
from sparktf.spark.errors import reraise
from tests.models import mnist_numpy, run_plain

ROWS = 40
IMAGE_SCHEMA = "id int, image array<float>, label array<float>, name string"


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.RandomState(7)
    return (rng.rand(ROWS, 784) * (rng.rand(ROWS, 784) < 0.3)).astype(np.float32)


@pytest.fixture(scope="module")
def mnist_df(spark: Any, images: np.ndarray) -> Any:
    rows = [(i, images[i].tolist(), np.eye(10)[i % 10].tolist(), f"n{i}") for i in range(ROWS)]
    return spark.createDataFrame(rows, IMAGE_SCHEMA)


def _mnist(export: Path, **params: Any) -> TFModel:
    return TFModel(exportDir=str(export), inputMapping={"image": "x", "label": "y_"},
                   outputMapping={"prediction": "prediction", "Relu": "features"}, **params)


def _check_mnist(rows: list, images: np.ndarray, export: Path) -> None:
    ids = [r.id for r in rows]
    pred, relu = run_plain(export, {"x:0": images[ids]}, ["prediction:0", "Relu:0"])
    assert [r.prediction for r in rows] == pred.tolist()
    assert pred.tolist() == mnist_numpy(images[ids])[0].tolist()
    if "features" in rows[0]:
        np.testing.assert_allclose(np.array([r.features for r in rows]), relu, atol=1e-5)


def test_defaults_and_params(mnist_export: Path) -> None:
    model = TFModel(exportDir=str(mnist_export), inputMapping={"image": "x"},
                    outputMapping={"prediction": "p"})
    assert (model.getTagSet(), model.getBatchSize(), model.getPassthroughColumns()) == \
        ("serve", 1024, [])
    assert model.getSignatureDefKey() is None and model.getShipModel() is False
    model.setSignatureDefKey("serving_default").setBatchSize(8)
    assert (model.getSignatureDefKey(), model.getBatchSize()) == ("serving_default", 8)
    assert model.setSignatureDefKey(None).getSignatureDefKey() is None
    with pytest.raises(TypeError, match="expected a dict of names to names"):
        TFModel(inputMapping={"image": 1})


def test_graph_tensor_names_with_passthrough_and_small_batches(
    spark: Any, mnist_df: Any, mnist_export: Path, images: np.ndarray
) -> None:
    model = _mnist(mnist_export, passthroughColumns=["id"], batchSize=7)
    source = mnist_df  # two partitions of 20 rows: batches of 7, 7 and 6 rows
    sc = spark.sparkContext
    sc.setJobGroup("tfmodel-transform", "transform must not run a job")
    try:
        out = model.transform(source)
        assert sc.statusTracker().getJobIdsForGroup("tfmodel-transform") == []
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert out.schema.simpleString() == \
        "struct<id:int,prediction:bigint,features:array<float>>"
    rows = sorted(out.collect(), key=lambda r: r.id)
    assert [r.id for r in rows] == list(range(ROWS))
    _check_mnist(rows, images, mnist_export)


def test_signature_aliases_of_a_tf2_model(spark: Any, tf2_export: Path) -> None:
    data = [([1.0, 2.0, 3.0, 4.0],), ([0.0, 0.5, 0.0, 1.0],), ([2.0, 0.0, 0.0, 0.0],)]
    df = spark.createDataFrame(data, "pixels array<double>")  # double -> float32
    model = TFModel(exportDir=str(tf2_export), signatureDefKey="serving_default",
                    inputMapping={"pixels": "img"},
                    outputMapping={"scores": "scores", "label": "label"})
    out = model.transform(df)
    assert out.schema.simpleString() == "struct<scores:array<float>,label:bigint>"
    rows = out.collect()
    expected = np.array([d[0] for d in data], np.float32) @ (
        np.arange(12, dtype=np.float32).reshape(4, 3) / 10)
    got = sorted((tuple(r.scores), r.label) for r in rows)
    want = sorted((tuple(e), int(np.argmax(e))) for e in expected)
    assert [g[1] for g in got] == [w[1] for w in want]
    np.testing.assert_allclose([g[0] for g in got], [w[0] for w in want], rtol=1e-6)


TYPES_SCHEMA = ("f64 double, f16 array<float>, i8 tinyint, i16 smallint, u8 int, i32 int, "
                "i64 bigint, b boolean, s string, img array<float>, seq array<double>")
TYPES_OUTPUT = (
    "struct<f64_out:double,f16_out:array<float>,i8_out:int,i16_out:int,u8_out:int,"
    "i32_out:int,i64_out:bigint,b_out:boolean,s_out:binary,"
    "img_out:array<array<array<float>>>,s_len:int,img_sum:float,seq_sum:float>"
)


def test_dtypes_ranks_and_reshape(spark: Any, types_export: Path) -> None:
    rows = [(1.5, [0.5, 1.0], -3, 300, 255, -7, 2**40, True, "héllo",
             [1.0, 2.0, 3.0, 4.0], [1.0, 2.0]),
            (-2.25, [2.0, -1.5], 4, -5, 0, 8, -(2**40), False, "",
             [0.5, 0.0, 0.0, 0.5], [1.0, 2.0, 3.0])]
    df = spark.createDataFrame(rows, TYPES_SCHEMA)
    names = ["f64", "f16", "i8", "i16", "u8", "i32", "i64", "b", "s", "img"]
    outputs = {f"{n}_out": f"{n}_out" for n in names}
    outputs.update({"s_len": "s_len", "img_sum": "img_sum", "seq_sum": "seq_sum"})
    model = TFModel(exportDir=str(types_export), inputMapping={n: n for n in [*names, "seq"]},
                    outputMapping=outputs, batchSize=1)  # seq lengths differ between rows
    out = model.transform(df)
    assert out.schema.simpleString() == TYPES_OUTPUT
    got = sorted(out.collect(), key=lambda r: r.f64_out)
    for row, src in zip(got, sorted(rows), strict=True):
        assert [row[f"{n}_out"] for n in names[:8]] == list(src[:8])
        assert row.s_out == src[8].encode() and row.s_len == len(src[8].encode())
        assert row.img_out == np.array(src[9]).reshape(2, 2, 1).tolist()
        assert row.img_sum == pytest.approx(sum(src[9]))
        assert row.seq_sum == pytest.approx(sum(src[10]))


def test_ship_model_to_executors(mnist_df: Any, mnist_export: Path, images: np.ndarray,
                                 tmp_path: Path) -> None:
    local = tmp_path / "local_copy"
    shutil.copytree(mnist_export, local)
    model = TFModel(exportDir=str(local), inputMapping={"image": "x"},
                    outputMapping={"prediction": "prediction"}, passthroughColumns=["id"],
                    shipModel=True)
    out = model.transform(mnist_df.where(F.col("id") < 18))  # the 2nd partition is empty
    local.rename(tmp_path / "moved_away")  # workers can only use the shipped copy
    rows = sorted(out.collect(), key=lambda r: r.id)
    assert [r.id for r in rows] == list(range(18))
    _check_mnist(rows, images, mnist_export)


def test_streaming_dataframe(spark: Any, mnist_export: Path, images: np.ndarray,
                             tmp_path: Path) -> None:
    source = tmp_path / "stream_in"
    source.mkdir()
    for part, ids in enumerate((range(0, 15), range(15, 25))):
        offsets = pa.array(np.arange(len(ids) + 1, dtype=np.int32) * 784)
        table = pa.table({"id": pa.array(list(ids), pa.int32()),
                          "image": pa.ListArray.from_arrays(offsets, images[list(ids)].ravel())})
        pq.write_table(table, source / f"part-{part}.parquet")
    stream = spark.readStream.schema("id int, image array<float>").parquet(str(source))
    model = TFModel(exportDir=str(mnist_export), inputMapping={"image": "x"},
                    outputMapping={"prediction": "prediction"}, passthroughColumns=["id"])
    query = (model.transform(stream).writeStream.format("memory").queryName("tfmodel_stream")
             .option("checkpointLocation", str(tmp_path / "checkpoint"))
             .trigger(availableNow=True).start())
    query.awaitTermination(120)
    assert query.exception() is None
    rows = sorted(spark.table("tfmodel_stream").collect(), key=lambda r: r.id)
    assert [r.id for r in rows] == list(range(25))
    _check_mnist(rows, images, mnist_export)


def test_save_load_and_pipeline(mnist_df: Any, mnist_export: Path, images: np.ndarray,
                                tmp_path: Path) -> None:
    model = _mnist(mnist_export, passthroughColumns=["id"], batchSize=16)
    model.save(str(tmp_path / "tfmodel"))
    loaded = TFModel.load(str(tmp_path / "tfmodel"))
    assert loaded.getInputMapping() == {"image": "x", "label": "y_"}
    assert loaded.getOutputMapping() == {"prediction": "prediction", "Relu": "features"}
    assert (loaded.getBatchSize(), loaded.getPassthroughColumns()) == (16, ["id"])
    assert loaded.getSignatureDefKey() is None and loaded.getExportDir() == str(mnist_export)
    fitted = Pipeline(stages=[loaded]).fit(mnist_df)
    fitted.write().overwrite().save(str(tmp_path / "pipeline"))
    reloaded = PipelineModel.load(str(tmp_path / "pipeline"))
    stage = reloaded.stages[0]
    assert isinstance(stage, TFModel) and stage.getOutputMapping() == model.getOutputMapping()
    rows = sorted(reloaded.transform(mnist_df).collect(), key=lambda r: r.id)
    assert len(rows) == ROWS
    _check_mnist(rows, images, mnist_export)


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plain")
    (folder / "readme.txt").write_text("not a model")
    return folder


def _static_case(case: str, mnist: Path, tf2: Path, nobatch: Path, plain: Path) -> TFModel:
    """A TFModel whose transform must fail on the driver."""
    good_in, good_out = {"image": "x"}, {"prediction": "prediction"}
    params: dict[str, Any] = {"exportDir": str(mnist), "inputMapping": good_in,
                              "outputMapping": good_out}
    changes: dict[str, dict[str, Any]] = {
        "unknown-tensor": {"outputMapping": {"Reluu": "features"}},
        "unknown-column": {"inputMapping": {"imag": "x"}},
        "static-shape": {"inputMapping": {"id": "x"}},
        "dtype": {"inputMapping": {"name": "x"}},
        "missing-dir": {"exportDir": str(mnist.parent / "no_such_export")},
        "not-saved-model": {"exportDir": str(plain)},
        "unknown-tag-set": {"tagSet": "serve,gpu"},
        "unknown-signature": {"signatureDefKey": "predict"},
        "unknown-alias": {"exportDir": str(tf2), "signatureDefKey": "serving_default",
                          "inputMapping": {"image": "image"}, "outputMapping": {"label": "l"}},
        "no-batch-dim": {"exportDir": str(nobatch), "outputMapping": {"total": "total"}},
        "constant-output": {"exportDir": str(nobatch), "outputMapping": {"const": "c"}},
        "unfed-placeholder": {"inputMapping": {"label": "y_"}},
        "unknown-passthrough": {"passthroughColumns": ["ids"]},
        "duplicate-column": {"passthroughColumns": ["id"], "outputMapping": {"prediction": "id"}},
    }
    params.update(changes[case])
    if case in ("no-batch-dim", "constant-output"):
        params["inputMapping"] = {"image": "x"}
    return TFModel(**params)


STATIC_ERRORS = [
    ("unknown-tensor", MappingError,
     r"tensor 'Reluu' not found in the graph of SavedModel '.*mnist_export'; closest: 'Relu'"
     r".*; `sparktf inspect --export_dir .*mnist_export --ops` lists them all"),
    ("unknown-column", MappingError,
     r"input column 'imag' not found in the DataFrame; closest: 'image'; its columns: "
     r"'id', 'image', 'label', 'name'"),
    ("static-shape", ModelError,
     r"column 'id' cannot feed tensor 'x:0': expected shape \[None, 784\], found shape "
     r"\[None\] \(one value per row: the column's type is int\)"),
    ("dtype", ModelError,
     r"column 'name' of type string cannot feed tensor 'x:0' of dtype float32"),
    ("missing-dir", ModelError, r"SavedModel directory '.*no_such_export' does not exist"),
    ("not-saved-model", ModelError,
     r"'.*' is not a SavedModel directory: it has no saved_model.pb or saved_model.pbtxt "
     r"\(it holds: readme.txt\)"),
    ("unknown-tag-set", ModelError,
     r"tag set 'gpu,serve' not found in SavedModel '.*mnist_export'; its tag sets: 'serve'"),
    ("unknown-signature", ModelError,
     r"signature 'predict' not found in SavedModel '.*mnist_export' \(tag set 'serve'\); "
     r"its signatures: 'serving_default'"),
    ("unknown-alias", MappingError,
     r"input alias 'image' not found in signature 'serving_default' of SavedModel "
     r"'.*tf2_export'; closest: 'img'; its inputs: 'img'"),
    ("no-batch-dim", ModelError,
     r"output tensor 'total:0' has shape \[4\]: its first dimension is not the batch"),
    ("constant-output", ModelError,
     r"output tensor 'const:0' has shape \[3\]: its first dimension is not the batch"),
    ("unfed-placeholder", MappingError,
     r"the outputs need placeholder\(s\) 'x:0', which inputMapping does not feed"),
    ("unknown-passthrough", MappingError,
     r"passthrough column 'ids' not found in the DataFrame; closest: 'id'"),
    ("duplicate-column", MappingError, r"output column 'id' is given twice"),
]


@pytest.mark.parametrize(("case", "error", "message"), STATIC_ERRORS,
                         ids=[c[0] for c in STATIC_ERRORS])
def test_errors_found_by_transform(case: str, error: type, message: str, mnist_df: Any,
                                   mnist_export: Path, tf2_export: Path, nobatch_export: Path,
                                   plain_dir: Path) -> None:
    model = _static_case(case, mnist_export, tf2_export, nobatch_export, plain_dir)
    with pytest.raises(error, match=message):
        model.transform(mnist_df)


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"inputMapping": {}}, MappingError, r"TFModel: inputMapping is empty; give e.g."),
        ({"exportdir": "m"}, ModelError,
         r"TFModel: unknown param 'exportdir'; closest: 'exportDir'; accepted: exportDir, "),
        ({"batchSize": 0}, ModelError, r"TFModel: batchSize must be a positive integer, found 0"),
        ({"batchSize": "many"}, ModelError, r"batchSize must be a positive integer, found 'many'"),
        ({"tagSet": " "}, ModelError, r"TFModel: tagSet is empty"),
    ],
)
def test_bad_params_are_refused_when_set(params: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        TFModel(**params)
    with pytest.raises(error, match=message):
        TFModel().setParams(**params)


# Errors found while running kill the Python worker: keep these last, so that the other
# tests reuse workers that already imported TensorFlow.
RUNTIME_ERRORS = [
    ("shape", [(0, [0.5] * 784), (1, [0.5] * 10)],
     r"column 'image' cannot feed tensor 'x:0': expected shape \[None, 784\], found shape "
     r"\[2, None\]|row 0 holds 784 and row 1 holds 10"),
    ("short-rows", [(0, [0.5] * 10), (1, [0.5] * 10)],
     r"column 'image' cannot feed tensor 'x:0': expected shape \[None, 784\], found shape "
     r"\[2, 10\] \(10 values per row\)"),
    ("null", [(0, [0.5] * 784), (1, None)],
     r"column 'image' holds a null at row 1 of the batch \(the value is null\)"),
]


@pytest.mark.parametrize(("case", "rows", "message"), RUNTIME_ERRORS,
                         ids=[c[0] for c in RUNTIME_ERRORS])
def test_errors_found_by_workers(case: str, rows: list, message: str, spark: Any,
                                 mnist_export: Path) -> None:
    df = spark.createDataFrame(rows, "id int, image array<float>").coalesce(1)
    model = TFModel(exportDir=str(mnist_export), inputMapping={"image": "x"},
                    outputMapping={"prediction": "prediction"})
    out = model.transform(df)
    with pytest.raises(ModelError, match=message), reraise():
        out.collect()
