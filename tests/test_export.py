"""``sparktf export``: list a TF1 checkpoint's operations and export it as a SavedModel."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparktf.cli.main import main
from sparktf.errors import MappingError, ModelError
from sparktf.model.export import (
    export_checkpoint,
    find_checkpoint,
    list_operations,
    parse_signatures,
)
from tests.models import Checkpoint

SIGNATURES = {
    "serving_default": {
        "inputs": {"img": "x"},
        "outputs": {"pred": "prediction"},
        "method_name": "predict",
    },
    "features": {
        "inputs": {"img": "x:0"},
        "outputs": {"hidden": "Relu:0", "logits": "logits"},
        "method_name": "tensorflow/serving/predict",
    },
    "scores": {"inputs": {"img": "x"}, "outputs": {"scores": "logits"}, "method_name": "regress"},
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    return Checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def exported(ckpt: Checkpoint, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "model"
    code = main(
        ["export", "--model_dir", str(ckpt.dir), "--export_dir", str(out),
         "--signatures", json.dumps(SIGNATURES)]
    )  # fmt: skip
    assert code == 0
    return out


def test_show_prints_every_operation(ckpt: Checkpoint, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", "--model_dir", str(ckpt.dir), "--show"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = dict(line.split() for line in lines)
    assert len(lines) == len(list_operations(ckpt.dir)) == len(shown)
    assert shown["x"] == "Placeholder"
    assert shown["Relu"] == "Relu"
    assert shown["prediction"] == "ArgMax"
    assert shown["hid_w"] == "VarHandleOp"


def test_exported_model_runs_in_tf2_with_aliases(exported: Path, ckpt: Checkpoint) -> None:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(exported))
    assert set(loaded.signatures) == set(SIGNATURES)
    pred = loaded.signatures["serving_default"](img=tf.constant(ckpt.x))
    assert list(pred) == ["pred"]
    np.testing.assert_array_equal(pred["pred"].numpy(), ckpt.logits().argmax(1))
    feats = loaded.signatures["features"](img=tf.constant(ckpt.x))
    np.testing.assert_allclose(feats["hidden"].numpy(), ckpt.hidden(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats["logits"].numpy(), ckpt.logits(), rtol=1e-5, atol=1e-5)


def test_exported_model_passes_saved_model_cli(exported: Path) -> None:
    cli = Path(sys.executable).with_name("saved_model_cli")
    if not cli.exists():
        cli = Path(shutil.which("saved_model_cli") or cli)
    done = subprocess.run(
        [str(cli), "show", "--dir", str(exported), "--all"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "MetaGraphDef with tag-set: 'serve'" in out
    for key in SIGNATURES:
        assert f"signature_def['{key}']" in out
    assert "inputs['img'] tensor_info:" in out and "name: x:0" in out
    assert "outputs['pred'] tensor_info:" in out and "name: prediction:0" in out
    assert "outputs['hidden'] tensor_info:" in out and "name: Relu:0" in out
    assert "Method name is: tensorflow/serving/predict" in out
    assert "Method name is: tensorflow/serving/regress" in out


def test_no_signatures_and_tag_set(ckpt: Checkpoint, tmp_path: Path) -> None:
    import tensorflow as tf

    out = export_checkpoint(ckpt.dir, tmp_path / "bare", signatures={}, tag_set="serve, gpu")
    loaded = tf.saved_model.load(out, tags=["serve", "gpu"])
    assert not loaded.signatures
    # The graph's tensors stay reachable by name, with the checkpoint's weights.
    run = loaded.prune("x:0", "Relu:0")
    np.testing.assert_allclose(run(tf.constant(ckpt.x)).numpy(), ckpt.hidden(), rtol=1e-5)
    with pytest.raises(RuntimeError, match="MetaGraphDef associated with tags"):
        tf.saved_model.load(out, tags=["serve"])


def test_existing_export_dir_is_refused_then_overwritten(
    ckpt: Checkpoint, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = ["export", "--model_dir", str(ckpt.dir), "--export_dir", str(out),
            "--signatures", json.dumps({"s": SIGNATURES["serving_default"]})]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"export directory '{out}' already exists and is not empty (it holds: keep.txt)" in err
    assert (out / "keep.txt").read_text() == "mine"
    assert main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["saved_model.pb", "variables"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left


def test_overwrite_never_deletes_the_checkpoint(ckpt: Checkpoint) -> None:
    with pytest.raises(ModelError, match="overwriting it would delete the checkpoint"):
        export_checkpoint(ckpt.dir, ckpt.dir.parent, signatures={}, overwrite=True)
    assert (ckpt.dir / "checkpoint").is_file()


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"pred": "predicton"}, r"output 'pred': no tensor 'predicton'; closest: 'prediction'"),
        ({"pred": "predicton:0"}, r"no tensor 'predicton:0'; closest: 'prediction:0'"),
        ({"pred": "x:3"}, r"operation 'x' \(Placeholder\) has 1 output\(s\), so no tensor x:3"),
        ({"a": "Rellu", "b": "logit"}, r"closest: 'Relu'.*output 'b': .*closest: 'logits'"),
    ],
)
def test_unknown_tensor_lists_close_matches(
    ckpt: Checkpoint, tmp_path: Path, outputs: dict[str, str], message: str
) -> None:
    sigs = {"serving_default": {"inputs": {"img": "x"}, "outputs": outputs}}
    with pytest.raises(MappingError, match=r"in the graph of '.*model\.ckpt-7': .*" + message):
        export_checkpoint(ckpt.dir, tmp_path / "out", signatures=sigs)
    assert not (tmp_path / "out").exists()


def _no_meta(ckpt: Checkpoint, tmp: Path) -> Path:
    shutil.copytree(ckpt.dir, tmp / "m")
    (tmp / "m" / "model.ckpt-7.meta").unlink()
    return tmp / "m"


def _stale_state(ckpt: Checkpoint, tmp: Path) -> Path:
    (tmp / "m").mkdir()
    (tmp / "m" / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-9"\n')
    return tmp / "m"


def _misspelt(ckpt: Checkpoint, tmp: Path) -> Path:
    (tmp / "model").mkdir()
    return tmp / "modle"


def _saved_model(ckpt: Checkpoint, tmp: Path) -> Path:
    (tmp / "m" / "variables").mkdir(parents=True)
    (tmp / "m" / "saved_model.pb").write_bytes(b"")
    return tmp / "m"


def _notes_only(ckpt: Checkpoint, tmp: Path) -> Path:
    (tmp / "m").mkdir()
    (tmp / "m" / "notes.txt").write_text("no checkpoint here")
    return tmp / "m"


@pytest.mark.parametrize(
    ("make_dir", "message"),
    [
        (_misspelt, r"model directory '.*/modle' does not exist; closest: 'model' \(in '.*'\)$"),
        (_notes_only, r"no TF1 checkpoint in '.*/m' \(expected .*\); it holds: notes\.txt$"),
        (
            _saved_model,
            r"no TF1 checkpoint .*; it is a SavedModel already: use it as the export "
            r"directory; it holds: saved_model\.pb, variables/$",
        ),
        (_stale_state, r"'checkpoint' file names '.*model\.ckpt-9', whose \.index file is missing"),
        (_no_meta, r"checkpoint '.*model\.ckpt-7' has no meta graph file '.*model\.ckpt-7\.meta'"),
    ],
    ids=["missing-dir", "no-checkpoint", "saved-model", "stale-state-file", "no-meta-graph"],
)
def test_model_dir_errors_exit_1(
    ckpt: Checkpoint, tmp_path: Path, capsys: pytest.CaptureFixture, make_dir, message: str
) -> None:
    model_dir = make_dir(ckpt, tmp_path)
    assert main(["export", "--model_dir", str(model_dir), "--show"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("sparktf: error: ")
    assert re.search(message, last), last


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], r"nothing to do: give --show, or --export_dir"),
        (["--export_dir", "OUT"], r"--signatures: required with --export_dir"),
        (["--show", "--signatures", "{}"], r"--signatures: only used with --export_dir"),
        (["--export_dir", "OUT", "--signatures", "{'a': 1}"],
         r"--signatures: expected inline JSON"),
        (["--export_dir", "OUT", "--signatures", '{"s": {"inputs": ["x"], "outputs": {"p": "p"}}}'],
         r"--signatures: signature 's' inputs: expected an object \{alias: tensor name\}"),
        (["--export_dir", "OUT", "--signatures", '{"s": {"outputs": {}}}'],
         r"--signatures: signature 's': 'outputs' must map at least one alias"),
        (["--export_dir", "OUT", "--signatures", '{"s": {"input": {}, "outputs": {"p": "p"}}}'],
         r"--signatures: signature 's': unknown key 'input'; closest: 'inputs'"),
        (["--export_dir", "OUT", "--signatures",
          '{"s": {"outputs": {"p": "p"}, "method_name": "predit"}}'],
         r"--signatures: signature 's': unknown method_name 'predit'; closest: 'predict'"),
        (["--export_dir", "OUT", "--signatures", "[]"], r"--signatures: expected a JSON object"),
        (["--export_dir", "OUT", "--signatures", "{}", "--tag_set", " , "],
         r"--tag_set: tag set ' , ' names no tag"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2(
    ckpt: Checkpoint, capsys: pytest.CaptureFixture, extra: list[str], message: str
) -> None:
    assert main(["export", "--model_dir", str(ckpt.dir), *extra]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("usage: sparktf")
    assert re.match("sparktf: error: " + message, lines[-1]), lines[-1]


def test_signatures_from_a_file(ckpt: Checkpoint, tmp_path: Path) -> None:
    sig_file = tmp_path / "sigs.json"
    sig_file.write_text(json.dumps({"serving_default": SIGNATURES["serving_default"]}))
    out = tmp_path / "out"
    argv = ["export", "--model_dir", str(ckpt.dir), "--export_dir", str(out),
            "--signatures", str(sig_file)]  # fmt: skip
    assert main(argv) == 0
    assert (out / "saved_model.pb").is_file()


def test_parse_signatures_normalises_method_names() -> None:
    sigs = parse_signatures(
        {"a": {"outputs": {"p": "p"}}, "b": {"outputs": {"p": "p"}, "method_name": "classify"}}
    )
    assert sigs["a"].method_name == "tensorflow/serving/predict"
    assert sigs["a"].inputs == {}
    assert sigs["b"].method_name == "tensorflow/serving/classify"


def test_copied_checkpoint_dir_uses_its_own_files(ckpt: Checkpoint, tmp_path: Path) -> None:
    # Saver writes absolute paths in the 'checkpoint' state file; a copy must not follow them.
    assert str(ckpt.dir) in (ckpt.dir / "checkpoint").read_text()
    copy = shutil.copytree(ckpt.dir, tmp_path / "copy")
    assert find_checkpoint(copy) == str(copy / "model.ckpt-7")


@pytest.mark.parametrize(
    ("damaged", "message"),
    [
        ("model.ckpt-7.meta", r"cannot import the meta graph of checkpoint '.*model\.ckpt-7': "),
        ("model.ckpt-7.data-00000-of-00001", r"cannot restore the variables of checkpoint '.*7': "),
    ],
)
def test_unreadable_checkpoint_is_a_model_error(
    ckpt: Checkpoint, tmp_path: Path, damaged: str, message: str
) -> None:
    copy = shutil.copytree(ckpt.dir, tmp_path / "copy")
    (copy / damaged).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match=message):
        export_checkpoint(copy, tmp_path / "out", signatures={})
    assert not (tmp_path / "out").exists()
