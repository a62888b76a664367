"""``sparktf infer`` and the command line's exit codes and messages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sparktf
from sparktf.cli.main import main
from tests.models import mnist_numpy

HINT = "struct<image:array<float>,label:array<float>>"
SEED = ["--schema_hint", HINT, "--input_mapping", '{"image": "x", "label": "y_"}',
        "--output_mapping", '{"prediction": "prediction", "Relu": "features"}']


@pytest.fixture(scope="module")
def digits(spark, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """60 MNIST-shaped records in 2 files, in a known order (file 0 then file 1)."""
    rng = np.random.default_rng(7)
    images = rng.random((60, 784), dtype=np.float32)
    labels = np.eye(10, dtype=np.float32)[np.arange(60) % 10]
    rows = [(images[i].tolist(), labels[i].tolist()) for i in range(60)]
    out = tmp_path_factory.mktemp("cli") / "tfr"
    sparktf.write_tfrecords(spark.createDataFrame(rows, HINT).coalesce(1), str(out))
    return out, images


def _predictions(out: Path) -> list[dict]:
    rows = []
    for part in sorted(out.glob("part-*.json")):
        rows += [json.loads(line) for line in part.read_text().splitlines()]
    return rows


def test_seed_call_fetches_prediction_and_relu(spark, digits, mnist_export, tmp_path,
                                               capsys) -> None:
    out = tmp_path / "pred"
    code = main(["infer", "--export_dir", str(mnist_export), "--input", str(digits[0]),
                 *SEED, "--output", str(out), "--verbose"])
    assert code == 0
    captured = capsys.readouterr()
    assert "only showing top 20 rows" in captured.out and "|-- image: array" in captured.out
    assert "sparktf infer: 60 rows in" in captured.err and str(out) in captured.err
    assert re.search(r"\(the job [0-9.]+ s, [0-9,]+ rows/s\)", captured.err), captured.err
    rows = _predictions(out)
    expected, hidden = mnist_numpy(digits[1])
    assert [r["prediction"] for r in rows] == expected.tolist()
    assert np.allclose([r["features"] for r in rows], hidden, atol=1e-4)
    assert sorted(rows[0]) == ["features", "prediction"]  # only the mapped outputs
    assert (out / "_SUCCESS").exists()


def test_general_path_gives_the_fused_predictions(digits, mnist_export, tmp_path) -> None:
    fused, general = tmp_path / "fused", tmp_path / "general"
    base = ["infer", "--export_dir", str(mnist_export), "--input", str(digits[0]), *SEED]
    assert main([*base, "--output", str(fused)]) == 0
    assert main([*base, "--output", str(general), "--no_fuse"]) == 0
    assert _predictions(general) == _predictions(fused)
    assert [r["prediction"] for r in _predictions(fused)] == mnist_numpy(digits[1])[0].tolist()


def test_existing_output_is_refused_then_overwritten(spark, digits, mnist_export, tmp_path,
                                                     capsys) -> None:
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["infer", "--export_dir", str(mnist_export), "--input", str(digits[0]),
            "--input_mapping", '{"image": "x"}', "--output_mapping",
            '{"prediction": "prediction"}', "--output", str(out)]
    assert main(args) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("sparktf: error: --output") and "--mode overwrite" in last
    assert (out / "keep.txt").read_text() == "mine"
    assert main([*args, "--mode", "overwrite"]) == 0
    assert not (out / "keep.txt").exists() and len(_predictions(out)) == 60


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--input_mapping", "{image: x}"], r"--input_mapping: expected inline JSON"),
        (["--output_mapping", '["prediction"]'], r"--output_mapping: expected a non-empty JSON"),
        (["--schema_hint", "struct<image:array<float>"], r"--schema_hint: .* malformed"),
        (["--batch_size", "0"], r"--batch_size: expected a positive integer"),
        (["--conf", "nokey"], r"--conf: expected KEY=VALUE"),
        (["--frobnicate"], r"unrecognized arguments: --frobnicate"),
    ],
)
def test_usage_errors_exit_2_with_one_line(spark, digits, mnist_export, tmp_path, capsys,
                                           extra, match) -> None:
    base = {"--input_mapping": '{"image": "x"}', "--output_mapping": '{"prediction": "prediction"}'}
    args = ["infer", "--export_dir", str(mnist_export), "--input", str(digits[0]),
            "--output", str(tmp_path / "o")]
    for flag, value in base.items():
        if flag not in extra:
            args += [flag, value]
    assert _exit_code(args + extra) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("sparktf: error: ") and re.search(match, last)


def _exit_code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # argparse's own usage errors
        return int(exc.code)


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        (["--input_mapping", '{"image": "xx"}'], r"'xx'.*closest: 'x"),
        (["--output_mapping", '{"Rellu": "f"}'], r"'Rellu'.*closest: 'Relu"),
        (["--input_mapping", '{"imag": "x"}'], r"'imag'.*image"),
    ],
)
def test_model_and_mapping_errors_exit_1(spark, digits, mnist_export, tmp_path, capsys,
                                         mapping, match) -> None:
    base = {"--input_mapping": '{"image": "x"}', "--output_mapping": '{"prediction": "prediction"}'}
    base[mapping[0]] = mapping[1]
    args = ["infer", "--export_dir", str(mnist_export), "--input", str(digits[0]),
            "--output", str(tmp_path / "o"), *[x for kv in base.items() for x in kv]]
    assert main(args) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("sparktf: error: ") and re.search(match, last)
    assert not (tmp_path / "o" / "_SUCCESS").exists()


def test_missing_input_exits_1(spark, mnist_export, tmp_path, capsys) -> None:
    code = main(["infer", "--export_dir", str(mnist_export), "--input", str(tmp_path / "none"),
                 "--input_mapping", '{"image": "x"}', "--output_mapping",
                 '{"prediction": "prediction"}', "--output", str(tmp_path / "o")])
    assert code == 1
    assert "none: matches nothing" in capsys.readouterr().err.strip().splitlines()[-1]


def test_python_dash_m_runs_the_seed_call(digits, mnist_export, tmp_path) -> None:
    """Also: local workers run the driver's interpreter, whatever ``python3`` the PATH has."""
    out = tmp_path / "pm"
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("python", "python3"):
        (fake / name).write_text("#!/bin/sh\necho not this python >&2\nexit 3\n")
        (fake / name).chmod(0o755)
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PATH=f"{fake}:{os.environ['PATH']}")
    env.pop("PYSPARK_PYTHON", None)
    done = subprocess.run(
        [sys.executable, "-m", "sparktf", "infer", "--export_dir", str(mnist_export), "--input",
         str(digits[0]), *SEED, "--output", str(out), "--master", "local[2]"],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("sparktf infer: 60 rows")
    expected, _ = mnist_numpy(digits[1])
    assert [r["prediction"] for r in _predictions(out)] == expected.tolist()


def _corrupt_copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    part = sorted(dst.glob("part-*"))[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    return dst


def test_model_mistakes_are_reported_before_spark_is_needed(digits, mnist_export,
                                                            tmp_path) -> None:
    """An unreachable master: the mapping error still comes, from the model alone."""
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    done = subprocess.run(
        [sys.executable, "-m", "sparktf", "infer", "--export_dir", str(mnist_export), "--input",
         str(digits[0]), "--input_mapping", '{"image": "xx"}', "--output_mapping",
         '{"prediction": "prediction"}', "--output", str(tmp_path / "o"),
         "--master", "spark://127.0.0.1:9"],
        capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        "sparktf: error: tensor 'xx' not found in the graph of SavedModel")


def test_failed_overwrite_leaves_the_old_output_and_empty_dirs_count_as_absent(
        digits, mnist_export, tmp_path, capsys) -> None:
    out = tmp_path / "pred"
    out.mkdir()  # what an older failed run could leave: an empty folder
    good = ["infer", "--export_dir", str(mnist_export), "--input", str(digits[0]), *SEED,
            "--output", str(out)]
    assert main(good) == 0
    before = sorted(p.name for p in out.iterdir())
    bad = _corrupt_copy(digits[0], tmp_path / "bad")
    args = ["infer", "--export_dir", str(mnist_export), "--input", str(bad), *SEED,
            "--output", str(out), "--mode", "overwrite"]
    assert main(args) == 1
    assert "corrupt" in capsys.readouterr().err.strip().splitlines()[-1]
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_version_verbose_schema_and_subcommand_usage(digits, mnist_export, tmp_path,
                                                     capsys) -> None:
    assert _exit_code(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sparktf {sparktf.__version__}"
    assert main(["infer", "--export_dir", "m", "--input", "i", "--input_mapping", "{x",
                 "--output_mapping", "{}", "--output", "o"]) == 2
    assert capsys.readouterr().err.startswith("usage: sparktf infer ")
    out = tmp_path / "v"
    assert main(["infer", "--export_dir", str(mnist_export), "--input", str(digits[0]), *SEED,
                 "--output", str(out), "--verbose", "--output_format", "parquet"]) == 0
    shown = capsys.readouterr().out
    assert "output:\nroot\n |-- prediction: long" in shown and "|-- features: array" in shown


@pytest.mark.parametrize("fmt", ["tfrecord", "json"])
def test_partition_by_writes_a_tree_of_the_outputs(spark, digits, mnist_export, tmp_path,
                                                   fmt) -> None:
    out = tmp_path / "tree"
    args = ["infer", "--export_dir", str(mnist_export), "--input", str(digits[0]), *SEED,
            "--output", str(out), "--output_format", fmt, "--partition_by", "prediction"]
    assert main(args) == 0
    expected, _ = mnist_numpy(digits[1])
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(
        {f"prediction={v}" for v in expected.tolist()})
    if fmt == "tfrecord":
        back = sparktf.read_tfrecords(spark, str(out))
    else:
        back = spark.read.json(str(out))
    assert back.count() == 60
    assert sorted(r.prediction for r in back.collect()) == sorted(expected.tolist())


def test_partition_by_names_an_output_column(digits, mnist_export, tmp_path, capsys) -> None:
    args = ["infer", "--export_dir", str(mnist_export), "--input", str(digits[0]), *SEED,
            "--output", str(tmp_path / "o"), "--partition_by", "predictoin"]
    assert main(args) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--partition_by: 'predictoin' is not an output column" in last
    assert "closest: 'prediction'" in last and not (tmp_path / "o").exists()
