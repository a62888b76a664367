"""Models as users keep them (``sparktf.model.sources``): Keras 3 ``.keras`` files and MLflow
model URIs, scored through TFModel (classic and Connect) and ``sparktf infer``, with
predictions equal to Keras's own; a real MLflow tracking store (sqlite, a local artifact
folder; no server, no mock)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sparktf
from sparktf.cli.main import main
from sparktf.errors import ModelError
from sparktf.model.sources import resolve
from tests import keras_models
from tests.processes import noise, user_env

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _model_cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("SPARKTF_MODEL_CACHE_DIR", str(tmp_path_factory.getbasetemp() /
                                                      "model-cache"))


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keras")
    return {name: keras_models.save(getattr(keras_models, name)(), folder / f"{name}.keras")
            for name in ("functional", "sequential", "custom")}


def _frame(spark: Any, images: np.ndarray) -> Any:
    return spark.createDataFrame(
        [(i, images[i].tolist(), [float(i)]) for i in range(len(images))],
        "id bigint, image array<float>, bias array<float>")


def _scored(df: Any, export: str, inputs: dict[str, str], outputs: dict[str, str]) -> list:
    model = sparktf.TFModel(exportDir=export, signatureDefKey="serving_default",
                            inputMapping=inputs, outputMapping=outputs,
                            passthroughColumns=["id"])
    return sorted(model.transform(df).collect(), key=lambda r: r.id)


def test_a_functional_keras_file_scores_as_keras_predicts(any_spark, keras_files) -> None:
    images = keras_models.rows(40)
    rows = _scored(_frame(any_spark, images), str(keras_files["functional"]),
                   {"image": "image", "bias": "bias"}, {"probs": "probs", "score": "score"})
    expected = keras_models.keras.saving.load_model(keras_files["functional"]).predict(
        {"image": images, "bias": np.arange(40, dtype=np.float32)[:, None]}, verbose=0)
    assert np.allclose([r.probs for r in rows], expected["probs"], atol=1e-5)
    assert np.allclose([r.score for r in rows], expected["score"], atol=1e-4)


def test_a_sequential_model_names_its_output_after_its_last_layer(spark, keras_files) -> None:
    source = resolve(str(keras_files["sequential"]))
    meta = sparktf.load_metadata(source.location, name=source.given)
    signature = meta.signature("serving_default")
    assert list(signature.inputs) == ["pixels"] and list(signature.outputs) == ["logits"]
    images = keras_models.rows(10, seed=4)
    rows = _scored(_frame(spark, images), str(keras_files["sequential"]),
                   {"image": "pixels"}, {"logits": "logits"})
    model = keras_models.keras.saving.load_model(keras_files["sequential"])
    assert np.allclose([r.logits for r in rows], model.predict(images, verbose=0), atol=1e-5)


def test_a_custom_layer_model_scores_without_its_class_on_the_workers(spark,
                                                                      keras_files) -> None:
    df = spark.createDataFrame([(i, [float(i), 1.0, -1.0, 0.5]) for i in range(5)],
                               "id bigint, x array<float>")
    model = sparktf.TFModel(exportDir=str(keras_files["custom"]),
                            signatureDefKey="serving_default", inputMapping={"x": "x"},
                            outputMapping={"scaled": "y"}, passthroughColumns=["id"])
    rows = sorted(model.transform(df).collect(), key=lambda r: r.id)
    keras_model = keras_models.keras.saving.load_model(keras_files["custom"])
    x = np.array([[float(i), 1.0, -1.0, 0.5] for i in range(5)], dtype=np.float32)
    assert np.allclose([r.y for r in rows], keras_model.predict(x, verbose=0), atol=1e-5)


def test_a_second_resolve_converts_nothing(tmp_path, caplog) -> None:
    path = keras_models.save(keras_models.functional(seed=11), tmp_path / "again.keras")
    caplog.set_level("INFO", logger="sparktf.model.keras_export")
    first = resolve(str(path)).location
    assert "exported to SavedModel" in caplog.text
    stamp = os.stat(Path(first) / "saved_model.pb").st_mtime_ns
    caplog.clear()
    assert resolve(str(path)).location == first
    assert "exported before is reused" in caplog.text and "exported to" not in caplog.text
    assert os.stat(Path(first) / "saved_model.pb").st_mtime_ns == stamp
    keras_models.save(keras_models.functional(seed=12), path)  # other weights: a new export
    assert resolve(str(path)).location != first


def test_a_keras_file_on_s3_is_fetched_and_converted(spark, s3, keras_files) -> None:
    from sparktf import fs

    url = f"s3://{s3}/models/sequential.keras"
    fs.upload(str(keras_files["sequential"]), url)
    local = resolve(str(keras_files["sequential"])).location
    assert resolve(url).location == local  # the same bytes: the same export


@pytest.mark.parametrize(("content", "message"), [
    (b"not a zip file at all", r"is not a Keras model file: a \.keras file is a zip archive"),
    ("truncated", r"is not a Keras model file"),
])
def test_corrupt_keras_files_are_named(keras_files, tmp_path, content, message) -> None:
    path = tmp_path / "bad.keras"
    data = keras_files["functional"].read_bytes()
    path.write_bytes(data[: len(data) // 2] if content == "truncated" else content)
    with pytest.raises(ModelError, match=rf"'{path}' {message}"):
        resolve(str(path))


CUSTOM_MODULE = '''
import keras

@keras.saving.register_keras_serializable(package="outside")
class Doubler(keras.layers.Layer):
    def call(self, inputs):
        return inputs * 2
'''


def test_a_custom_class_that_is_not_imported_is_named_with_the_fix(tmp_path) -> None:
    """Saved where the class was registered; loaded (in fresh processes) where it is not,
    then with ``--import``."""
    (tmp_path / "outside_layers.py").write_text(CUSTOM_MODULE)
    path = tmp_path / "doubler.keras"
    env = user_env("0", PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}",
                   SPARKTF_MODEL_CACHE_DIR=str(tmp_path / "cache"))
    save = ("from sparktf._tf import tensorflow; tensorflow(); import keras, outside_layers; "
            "x = keras.Input(shape=(2,), name='x'); "
            f"keras.Model(x, outside_layers.Doubler(name='d')(x)).save({str(path)!r})")
    subprocess.run([sys.executable, "-c", save], env=env, check=True, capture_output=True)
    sparktf_cli = str(Path(sys.executable).parent / "sparktf")
    env["PYTHONPATH"] = str(ROOT)
    missing = subprocess.run([sparktf_cli, "inspect", "--export_dir", str(path)], env=env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and noise(missing.stderr) == [], missing.stderr
    last = missing.stderr.strip().splitlines()[-1]
    assert ("its custom class 'Doubler' (registered as 'outside>Doubler', from module "
            "'outside_layers') is not known in this process") in last, last
    assert "--import outside_layers" in last and "register_keras_serializable" in last
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{ROOT}"
    found = subprocess.run([sparktf_cli, "inspect", "--export_dir", str(path), "--import",
                            "outside_layers"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert found.returncode == 0, found.stderr
    assert f"Keras model: {path}" in found.stdout and "x -> serving_default_x:0" in found.stdout


# -- MLflow -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracking(tmp_path_factory) -> dict[str, Any]:
    """A real tracking store (sqlite) with a local artifact root; models logged with
    ``mlflow.tensorflow.log_model`` and ``mlflow.keras.log_model``, registered, aliased,
    and a pyfunc model that is neither."""
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("sparktf", artifact_location=str(folder / "art"))
    functional = keras_models.functional(seed=5)
    sequential = keras_models.sequential(seed=6)

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):  # noqa: ANN001, ANN201 - no hints: MLflow
            return model_input                     # would check them against its schemas

    with mlflow.start_run(experiment_id=experiment) as run:
        tf_info = mlflow.tensorflow.log_model(functional, name="tfmodel",
                                              registered_model_name="sparktf-functional")
        keras_info = mlflow.keras.log_model(sequential, name="kerasmodel",
                                            registered_model_name="sparktf-sequential")
        pyfunc_info = mlflow.pyfunc.log_model(name="echo", python_model=Echo())
    mlflow.MlflowClient().set_registered_model_alias("sparktf-functional", "champion", 1)
    yield {"uri": uri, "run": run.info.run_id, "functional": functional,
           "sequential": sequential, "tf_model_id": tf_info.model_id,
           "keras_uri": keras_info.model_uri, "pyfunc_uri": pyfunc_info.model_uri}
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


def test_mlflow_uris_of_every_kind_score_as_keras_predicts(any_spark, tracking) -> None:
    images = keras_models.rows(12, seed=7)
    df = _frame(any_spark, images)
    expected = tracking["functional"].predict(
        {"image": images, "bias": np.arange(12, dtype=np.float32)[:, None]}, verbose=0)
    for uri in ("models:/sparktf-functional/1", "models:/sparktf-functional@champion",
                f"models:/{tracking['tf_model_id']}", f"runs:/{tracking['run']}/tfmodel"):
        rows = _scored(df, uri, {"image": "image", "bias": "bias"}, {"probs": "probs"})
        assert np.allclose([r.probs for r in rows], expected["probs"], atol=1e-5), uri
    rows = _scored(df, "models:/sparktf-sequential/1", {"image": "pixels"},
                   {"logits": "logits"})
    assert np.allclose([r.logits for r in rows],
                       tracking["sequential"].predict(images, verbose=0), atol=1e-5)


def test_infer_and_inspect_take_an_mlflow_uri(spark, tracking, tmp_path, capsys) -> None:
    images = keras_models.rows(20, seed=8)
    rows = [(images[i].tolist(),) for i in range(20)]
    source = tmp_path / "tfr"
    sparktf.write_tfrecords(spark.createDataFrame(rows, "pixels array<float>").coalesce(1),
                            str(source))
    out = tmp_path / "out"
    code = main(["infer", "--export_dir", "models:/sparktf-sequential/1", "--input",
                 str(source), "--schema_hint", "pixels array<float>", "--signature_def_key",
                 "serving_default", "--input_mapping", '{"pixels": "pixels"}',
                 "--output_mapping", '{"logits": "logits"}', "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    found = [json.loads(line)["logits"] for part in sorted(out.glob("part-*.json"))
             for line in part.read_text().splitlines()]
    assert np.allclose(found, tracking["sequential"].predict(images, verbose=0), atol=1e-5)
    assert main(["inspect", "--export_dir", "models:/sparktf-sequential/1"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("MLflow model: models:/sparktf-sequential/1 (as SavedModel ")
    assert "pixels -> serving_default_pixels:0 float32 [None, 784]" in shown


@pytest.mark.parametrize(("uri", "message"), [
    ("models:/no-such-model/1", r"Registered Model with name=no-such-model not found"),
    ("models:/sparktf-functional/7", r"version"),
    ("models:/sparktf-functional@nope", r"alias nope not found"),
])
def test_unknown_models_name_the_uri_and_tracking_uri(tracking, uri, message) -> None:
    with pytest.raises(ModelError) as caught:
        resolve(uri)
    text = str(caught.value)
    assert text.startswith(f"{uri}: cannot resolve this MLflow model") and (
        f"tracking URI {tracking['uri']}" in text)
    import re

    assert re.search(message, text, re.I), text


def test_another_flavor_is_refused_with_its_flavors(tracking) -> None:
    with pytest.raises(ModelError, match=r"an MLflow model of flavor\(s\) python_function; "
                       r"sparktf scores the tensorflow and keras flavors"):
        resolve(tracking["pyfunc_uri"])


def test_tracking_credentials_never_reach_a_message() -> None:
    from sparktf.model.mlflow_source import redacted

    assert redacted("https://bob:p4ss@mlflow.example/x?token=t0k") == (
        "https://***@mlflow.example/x")


def test_an_mlflow_uri_without_mlflow_names_the_extra(tmp_path) -> None:
    code = ("import sys; sys.modules['mlflow'] = None; "
            "from sparktf.cli.main import main; "
            "sys.exit(main(['inspect', '--export_dir', 'models:/m/1']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=user_env("0", PYTHONPATH=str(ROOT)), timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "sparktf: error: models:/m/1: an MLflow model URI needs the mlflow package: "
        "pip install 'sparktf[mlflow]'")
