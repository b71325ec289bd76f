"""apps/paper_recipe.py on a tiny synthetic configuration: the table and the plot."""

import csv
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _recipe():
    spec = importlib.util.spec_from_file_location("paper_recipe", ROOT / "apps" / "paper_recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = [
    "--dataset", "synthetic", "--samples-per-class", "4", "--clip-seconds", "0.5",
    "--n-mels", "16", "--width", "0.125", "--epochs", "1", "--finetune-epochs", "1",
    "--ratios", "0.5", "--methods", "l1,random", "--batch-size", "8", "--calibration", "8",
    "--tflite", "per-architecture", "--quiet",
]  # fmt: skip


def test_tiny_recipe_writes_table_and_plot(tmp_path):
    recipe = _recipe()
    out = tmp_path / "recipe"
    rows = recipe.main([*TINY, "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    # per model: unpruned + 2 methods x (FT, KD) + scratch+KD
    assert len(rows) == 2 * (1 + 2 * 2 + 1)
    with open(out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(rows)
    assert tuple(table[0]) == recipe.COLUMNS
    for model in ("cnn6", "qcnn6"):
        mine = [r for r in table if r["model"] == model]
        stages = sorted(r["stage"] for r in mine)
        assert stages == sorted(["unpruned", "prune+FT", "prune+FT", "prune+KD", "prune+KD",
                                 "scratch+KD"])  # fmt: skip
        base = next(r for r in mine if r["stage"] == "unpruned")
        small = [r for r in mine if r["stage"] != "unpruned"]
        # every pruned / scratch model shares one architecture: same size, all smaller
        assert len({(r["params"], r["macs"], r["tflite_bytes"]) for r in small}) == 1
        for r in small:
            assert int(r["params"]) < int(base["params"])
            assert int(r["macs"]) < int(base["macs"])
            assert 0 < int(r["tflite_bytes"]) < int(base["tflite_bytes"])
            assert r["tflite_kind"] == "int8"
            assert float(r["seconds"]) > 0
        for r in mine:
            assert 0.0 <= float(r["score"]) <= 1.0 and r["score_name"] == "accuracy"
        kd = {(r["method"], r["kd"]) for r in mine if r["stage"].startswith("prune")}
        assert kd == {("l1", "True"), ("l1", "False"), ("random", "True"), ("random", "False")}
        assert all(r["score_after_pruning"] != "" for r in mine if r["stage"].startswith("prune"))
        assert (out / model / "l1" / "p0.5" / "kd" / "metrics.json").is_file()
        assert (out / model / "scratch" / "p0.5" / "kd" / "model.keras").is_file()
    # the quaternion model is the smaller of the two unpruned models
    bases = {r["model"]: int(r["params"]) for r in table if r["stage"] == "unpruned"}
    assert bases["qcnn6"] < bases["cnn6"]
    markdown = (out / "results.md").read_text()
    assert markdown.startswith("Command: `python apps/paper_recipe.py")
    assert markdown.count("\n| cnn6 |") == 6 and markdown.count("\n| qcnn6 |") == 6
    import matplotlib.image

    image = matplotlib.image.imread(out / "accuracy_vs_macs.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 600  # two panels


@pytest.mark.parametrize(
    "args,message",
    [
        (["--ratios", "0.5,1.0"], "outside (0, 1)"),
        (["--methods", "l1,magnitude"], "magnitude"),
        (["--model-family", "mccnn14"], "quaternion twin"),
        (["--dataset", "esc50"], "needs --data-dir"),
        (["--epochs", "0"], "--epochs must be >= 1"),
    ],
)
def test_bad_options_fail_before_any_work(tmp_path, args, message):
    recipe = _recipe()
    with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace(")", r"\)")):
        recipe.main([*args, "--out", str(tmp_path / "o"), "--quiet"])
    assert not (tmp_path / "o" / "results.csv").exists()
