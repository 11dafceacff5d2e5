"""``make tables``' figures from fixture records: Fig. 1, Fig. 11 and learning curves, what each lacks, their size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from beft import records
from beft.report import figures, plots
from beft.report.lookup import run_table
from tests.report.conftest import paper_table, run_id, write, write_run

EPOCHS = {"v": [[0.5, 0.7, 0.8], [0.6, 0.7, 0.9]], "q": [[0.5, 0.6, 0.6], [0.5, 0.5, 0.7]]}  # per seed, per epoch


def write_sst2(root):
    for bias, seeds in EPOCHS.items():
        for seed, curve in enumerate(seeds):
            epochs = [{"epoch": e + 1, "train_loss": 0.5, "validation": {"accuracy": a}} for e, a in enumerate(curve)]
            write(root, run_id("minilm", "sst2", "low", "beft", bias, seed), status="completed",
                  score=records.Score(metric="accuracy", split="validation", final=curve[-1]), epochs=epochs,
                  final={"validation": {"accuracy": curve[-1]}}, params={"percent": 0.015, "trainable": 3458},
                  train_runtime_s=60.0 + seed)  # fmt: skip
    write_run(root, "minilm", "sst2", "low", "bitfit", None, 0, "accuracy", 0.8, params={"percent": 0.12})


def test_fig1_points_and_missing(tmp_path):
    write_sst2(tmp_path)
    points, missing = figures.fig1(run_table(tmp_path), "minilm", paper_table("table04"))
    v = next(p for p in points if p["bias"] == "v")
    assert (v["x"], v["y"], v["n"], v["kind"]) == (3458.0, pytest.approx(85.0), 2, "directly")
    assert v["err"] == pytest.approx(5.0) and v["paper"] == 85.8  # population std of 80, 90; Table 4's b_v
    assert "minilm/sst2/low/beft-k" in missing and "minilm/sst2/low/bias_lora-v" in missing


def test_fig11_panels_per_task(tmp_path):
    write_sst2(tmp_path)
    panels, missing = figures.fig11(run_table(tmp_path), "minilm")
    assert list(panels) == ["SST-2", "RTE", "QQP", "QNLI", "MNLI", "CoLA", "MRPC", "STS-B"]
    labels = {p["label"]: p for p in panels["SST-2"]}
    assert set(labels) == {"beft-v", "bitfit"} and labels["beft-v"]["runtime"] == "60 s train, n=2"
    assert "sst2/full" in missing and "rte/beft-v" in missing and panels["RTE"] == []


def test_learning_curves_are_mean_and_population_std_per_epoch(tmp_path):
    write_sst2(tmp_path)
    write_run(tmp_path, "minilm", "sst2", "low", "beft", "v", 0, "accuracy", 0.1, variant="data.num_train=8")
    found = [rec for _, rec in records.iter_runs(tmp_path)]
    metric, curves = figures.curves(found, "minilm", "sst2", "low")
    assert metric == "accuracy" and set(curves) == {"v", "q"}  # the variant is not averaged in
    assert curves["v"]["epochs"] == [1, 2, 3] and curves["v"]["n"] == 2
    assert curves["v"]["mean"] == pytest.approx([55.0, 70.0, 85.0])
    assert curves["v"]["std"] == pytest.approx([5.0, 0.0, 5.0])


def test_draw_all_writes_readable_figures_and_lists_what_is_missing(tmp_path):
    write_sst2(tmp_path / "runs")
    out = tmp_path / "tables"
    written = figures.draw_all(run_table(tmp_path / "runs"), tmp_path / "runs", paper_table("table04"), out)
    names = {p.relative_to(out).as_posix() for p in written}
    assert {"fig01_minilm.png", "fig04_minilm_sst2.png", "fig11_minilm.png", "curves/minilm_sst2_low.png",
            "figures.md"} <= names  # fmt: skip
    for path in written:
        if path.suffix == ".png":
            width, height = Image.open(path).size
            assert width <= 2000 and height <= 2000, (path.name, width, height)
    listing = (out / "figures.md").read_text()
    assert "minilm/sst2/low/beft-k" in listing and "minilm/sst2/low/ranking" in listing
    assert "curves/minilm_sst2_low.png`: learning curves (v: 2 seeds, q: 2 seeds). Missing (1): b_k" in listing


def test_difference_map_stays_under_2000_pixels_wide(tmp_path):
    values = np.linspace(-10, 10, 9 * 24).reshape(9, 24)
    labels = [["1.0\n(2.0)"] * 24 for _ in range(9)]
    path = plots.difference_map(values, labels, [f"row {i}" for i in range(9)], [f"TASK-{j}" for j in range(24)],
                                "a wide table", tmp_path / "wide.png")  # fmt: skip
    assert Image.open(path).size[0] <= 2000


def test_no_curve_from_a_single_evaluated_epoch(tmp_path):
    root = tmp_path / "runs"
    for seed in range(2):
        epochs = [{"epoch": 5, "train_loss": 0.4, "validation": {"accuracy": 0.6}}]  # decoders evaluate once
        write(root, run_id("smollm2", "copa", "low", "beft", "v", seed), status="completed", epochs=epochs,
              score=records.Score(metric="accuracy", split="validation", final=0.6))  # fmt: skip
    written = figures.draw_all(run_table(root), root, None, tmp_path / "tables")
    assert not [p for p in written if "curves" in str(p)]
    assert "smollm2 copa low: no learning curve" in (tmp_path / "tables" / "figures.md").read_text()
