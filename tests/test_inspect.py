"""``sparktf inspect``: tag sets, signatures, operations, and its errors (exit 1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sparktf.cli import main as cli


@pytest.fixture(autouse=True)
def only_inspect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the parser with this sub-command only, independent of the others."""
    monkeypatch.setattr(cli, "COMMANDS", ("inspect",))


def test_signatures_of_a_tf1_model(mnist_export: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["inspect", "--export_dir", str(mnist_export)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"SavedModel: {mnist_export}", "tag sets: 'serve'"]
    assert "  serving_default (tensorflow/serving/predict)" in out
    assert "      img -> x:0 float32 [None, 784]" in out
    assert "      pred -> prediction:0 int64 [None]" in out
    assert not any(line.startswith("operations") for line in out)


def test_ops_list_every_operation(mnist_export: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["inspect", "--export_dir", str(mnist_export), "--ops"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "  Relu  Relu  -> Relu:0 float32 [None, 128]" in out
    assert "  x  Placeholder  -> x:0 float32 [None, 784]" in out
    assert "  y_  Placeholder  -> y_:0 float32 [None, 10]" in out
    assert "  prediction  ArgMax  -> prediction:0 int64 [None]" in out
    header = next(line for line in out if line.startswith("operations ("))
    count = int(header.split("(")[1].split(")")[0])
    assert count == len(out) - out.index(header) - 1


def test_tf2_aliases_and_one_signature(tf2_export: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["inspect", "--export_dir", str(tf2_export), "--signature_def_key", "sums"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "  sums (tensorflow/serving/predict)" in out
    assert "      pixels -> sums_pixels:0 float32 [None, 4]" in out
    assert "serving_default" not in out


def test_model_without_signatures(nobatch_export: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["inspect", "--export_dir", str(nobatch_export)]) == 0
    assert "(none: map graph tensor names; --ops lists the operations)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--export_dir", "{missing}"], r"SavedModel directory '.*no_such_model' does not exist"),
        (["--export_dir", "{plain}"], r"'.*plain' is not a SavedModel directory: it has no "
                                      r"saved_model.pb or saved_model.pbtxt \(it holds: a.txt\)"),
        (["--export_dir", "{mnist}", "--tag_set", "train"],
         r"tag set 'train' not found in SavedModel '.*'; its tag sets: 'serve'"),
        (["--export_dir", "{mnist}", "--signature_def_key", "predict"],
         r"signature 'predict' not found in SavedModel '.*' \(tag set 'serve'\); "
         r"its signatures: 'serving_default'"),
    ],
    ids=["missing-dir", "not-a-saved-model", "unknown-tag-set", "unknown-signature"],
)
def test_errors_exit_1_with_one_line(extra: list[str], message: str, mnist_export: Path,
                                     tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.txt").write_text("x")
    paths = {"missing": str(tmp_path / "no_such_model"), "plain": str(tmp_path / "plain"),
             "mnist": str(mnist_export)}
    argv = ["inspect", *(arg.format(**paths) for arg in extra)]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparktf: error: ")
    assert re.search(message, lines[0])


def test_missing_export_dir_flag_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["inspect"])
    assert exit_info.value.code == 2
    assert "--export_dir" in capsys.readouterr().err
