"""A real MiniLM b_v run on real RTE, shared as an adapter: stock peft, the merged model and the CLIs reproduce it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from safetensors.torch import load_file
from transformers import AutoTokenizer

from beft import adapters, export, predict
from beft.data.sources import load_local_split
from beft.data.tasks import TaskSpec
from beft.errors import BeftError
from beft.spec import RunSpec
from tests.conftest import CONF_DIR, REPO, run_config

SMALL = ("data.num_train=32", "trainer.args.num_train_epochs=1")
BATCH = 64

# Runs in a fresh interpreter outside the repository and never imports beft: first the merged model with plain
# transformers (peft not imported yet), then the stock base model + the adapter with peft.
FRESH = r"""
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

merged_dir, base_dir, adapter_dir, texts_path, out_path = sys.argv[1:]
pairs = json.load(open(texts_path))


def logits(model, tokenizer):
    out = []
    with torch.no_grad():
        for i in range(0, len(pairs), 64):
            first, second = zip(*pairs[i : i + 64])
            texts = {"text": list(first), "text_pair": list(second)}
            enc = tokenizer(**texts, truncation=True, max_length=128, padding=True, return_tensors="pt")
            out += model.eval()(**enc).logits.tolist()
    return out


def imported():
    return sorted({m.split(".")[0] for m in sys.modules} & {"beft", "peft"})


result = {}
merged = AutoModelForSequenceClassification.from_pretrained(merged_dir)
result["merged"] = {"logits": logits(merged, AutoTokenizer.from_pretrained(merged_dir)), "imported": imported()}
from peft import PeftModel

base = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=2)
model = PeftModel.from_pretrained(base, adapter_dir)
result["peft"] = {"logits": logits(model, AutoTokenizer.from_pretrained(base_dir)), "imported": imported()}
json.dump(result, open(out_path, "w"))
"""


def _logits(model, tokenizer, pairs: list[list[str]]) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(pairs), BATCH):
            first, second = zip(*pairs[i : i + BATCH], strict=True)
            enc = tokenizer(
                list(first), list(second), truncation=True, max_length=128, padding=True, return_tensors="pt"
            )
            out.append(model(**enc).logits)
    return torch.cat(out)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir):
    """A real run in this process; the trained model is kept (spied from the adapter hook) to compare against."""
    tmp = tmp_path_factory.mktemp("adapter_run")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"results_dir={tmp / 'runs'}",
                f"data.cache_dir={tmp / 'cache'}",
                f"data.dir={data_dir}",
                "model=minilm",
                "task=rte",
                "bias=v",
                *SMALL,
            ],
        )
    kept = {}
    save = adapters.save_run_adapter

    def spy(spec, model, params):
        kept["model"] = model
        return save(spec, model, params)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(adapters, "save_run_adapter", spy)
        record = run_config(cfg)
    task = TaskSpec.from_config(cfg.task)
    val = load_local_split(task, data_dir, "validation")
    pairs = [[r["sentence1"], r["sentence2"]] for r in val]
    logits = _logits(kept["model"].eval(), AutoTokenizer.from_pretrained(record["model_source"]), pairs)
    (tmp / "pairs.json").write_text(json.dumps(pairs))
    return {
        "tmp": tmp,
        "record": record,
        "folder": RunSpec.from_config(cfg).folder,
        "pairs": pairs,
        "labels": list(val["label"]),
        "logits": logits,
    }


@pytest.fixture(scope="module")
def exported(trained_run):
    """``beft.export`` writes the adapter and the merged model; a fresh process loads both without beft."""
    tmp, folder = trained_run["tmp"], trained_run["folder"]
    code = export.main([str(folder), "--adapter", str(tmp / "shared"), "--merged", str(tmp / "merged")])
    assert code == 0
    out = tmp / "fresh.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
    base, adapter = trained_run["record"]["model_source"], trained_run["record"]["adapter"]["path"]
    cmd = [sys.executable, "-c", FRESH, str(tmp / "merged"), base, adapter, str(tmp / "pairs.json"), str(out)]
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_record_states_a_small_adapter_of_exactly_the_trained_numbers(trained_run):
    record, folder = trained_run["record"], trained_run["folder"]
    adapter = record["adapter"]
    assert adapter["path"] == str((folder / "adapter").resolve()) and adapter["mergeable"] is True
    assert adapter["bytes"] == adapters.folder_bytes(adapter["path"]) < 64 * 1024
    state = load_file(Path(adapter["path"]) / "adapter_model.safetensors")
    deltas = sorted(k.removeprefix("base_model.model.").removesuffix(".beft_bias") for k in state if "beft_bias" in k)
    assert deltas == [f"bert.encoder.layer.{i}.attention.self.value" for i in range(6)] + ["bert.pooler.dense"]
    assert {k for k in state if "beft_bias" not in k} == {
        "base_model.model.classifier.weight",
        "base_model.model.classifier.bias",
    }
    assert sum(t.numel() for t in state.values()) == record["params"]["trainable"] == 3458
    config = json.loads((Path(adapter["path"]) / "adapter_config.json").read_text())
    assert (
        config["peft_type"] == "BEFT" and config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    )


@pytest.mark.slow
def test_trained_model_predictions_are_the_recorded_ones(trained_run):
    """Anchors the reference predictions of the tests below to the Trainer's own evaluation."""
    preds = trained_run["logits"].argmax(-1)
    accuracy = (preds == torch.tensor(trained_run["labels"])).float().mean().item()
    assert len(preds) == 277 and accuracy == pytest.approx(trained_run["record"]["final"]["validation"]["accuracy"])


@pytest.mark.slow
def test_stock_peft_in_a_fresh_process_gives_the_trained_predictions(trained_run, exported):
    assert exported["peft"]["imported"] == ["peft"]
    got = torch.tensor(exported["peft"]["logits"])
    assert torch.equal(got.argmax(-1), trained_run["logits"].argmax(-1))
    torch.testing.assert_close(got, trained_run["logits"], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_merged_model_gives_the_trained_predictions_with_plain_transformers(trained_run, exported):
    assert exported["merged"]["imported"] == []
    got = torch.tensor(exported["merged"]["logits"])
    assert torch.equal(got.argmax(-1), trained_run["logits"].argmax(-1))
    torch.testing.assert_close(got, trained_run["logits"], atol=1e-4, rtol=0)


@pytest.mark.slow
def test_export_writes_the_adapter_and_a_self_contained_merged_model(trained_run, exported):
    tmp, folder = trained_run["tmp"], trained_run["folder"]
    for name in sorted(p.name for p in (folder / "adapter").iterdir()):
        assert (tmp / "shared" / name).read_bytes() == (folder / "adapter" / name).read_bytes()
    merged = sorted(p.name for p in (tmp / "merged").iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(merged)
    assert not any(name.startswith("adapter") for name in merged)
    assert json.loads((tmp / "merged" / "config.json").read_text())["id2label"] == {
        "0": "entailment",
        "1": "not_entailment",
    }


@pytest.mark.slow
def test_predict_cli_on_a_tsv_file_with_a_progress_bar(trained_run, data_dir):
    tmp = trained_run["tmp"]
    lines = (data_dir / "glue" / "RTE" / "dev.tsv").read_text(encoding="utf-8").splitlines()[:21]  # header + 20
    (tmp / "dev20.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "beft.predict", str(trained_run["folder"]), "--file", str(tmp / "dev20.tsv")]
    proc = subprocess.run(
        [*cmd, "--out", str(tmp / "preds.jsonl")], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Predicting" in proc.stderr  # tqdm's bar
    preds = [json.loads(line) for line in (tmp / "preds.jsonl").read_text().splitlines()]
    names = ["entailment", "not_entailment"]
    assert [p["label"] for p in preds] == [names[i] for i in trained_run["logits"][:20].argmax(-1)]
    assert [p["sentence1"] for p in preds] == [pair[0] for pair in trained_run["pairs"][:20]]
    want = trained_run["logits"][:20].softmax(-1)
    got = torch.tensor([[p["scores"][n] for n in names] for p in preds])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_predict_texts_on_the_command_line(trained_run, capsys):
    pairs = trained_run["pairs"][:2]
    code = predict.main([str(trained_run["folder"]), "--text", *pairs[0], "--text", *pairs[1]])
    assert code == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    names = ["entailment", "not_entailment"]
    assert [o["label"] for o in out] == [names[i] for i in trained_run["logits"][:2].argmax(-1)]
    assert predict.main([str(trained_run["folder"]), "--text", "only one sentence"]) == 2
    assert "--text takes 2 texts (sentence1 sentence2)" in capsys.readouterr().err


def test_read_rows_takes_tsv_and_jsonl_with_the_task_fields(tmp_path):
    task = TaskSpec.from_config(_rte_task())
    (tmp_path / "a.tsv").write_text("index\tsentence1\tsentence2\n0\tA man sleeps.\tNobody sleeps.\n")
    (tmp_path / "b.jsonl").write_text('{"sentence1": "x", "sentence2": "y", "label": "entailment"}\n\n')
    (tmp_path / "c.jsonl").write_text('{"sentence1": "x"}\n')
    assert predict.read_rows(tmp_path / "a.tsv", task) == [
        {"sentence1": "A man sleeps.", "sentence2": "Nobody sleeps."}
    ]
    assert predict.read_rows(tmp_path / "b.jsonl", task) == [{"sentence1": "x", "sentence2": "y"}]
    with pytest.raises(BeftError, match=r"c\.jsonl, line 1: needs the fields \['sentence1', 'sentence2'\]"):
        predict.read_rows(tmp_path / "c.jsonl", task)


def test_export_cli_needs_an_output_and_an_adapter(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        export.main([str(tmp_path)])
    assert err.value.code == 2 and "give --adapter OUT, --merged OUT or both" in capsys.readouterr().err
    assert export.main([str(tmp_path), "--merged", str(tmp_path / "m")]) == 2
    assert "neither an adapter folder" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def _rte_task() -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "task" / "rte.yaml"))


@pytest.mark.slow
def test_export_never_writes_into_a_folder_that_holds_other_files(trained_run, capsys):
    tmp, folder = trained_run["tmp"], trained_run["folder"]
    mine = tmp / "users-model"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    assert export.main([str(folder), "--adapter", str(mine)]) == 2
    assert export.main([str(folder), "--merged", str(mine)]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["config.json"] and (
        mine / "config.json"
    ).read_text() == '{"mine": true}'
    assert export.main([str(folder), "--adapter", str(tmp / "empty-ok")]) == 0  # a new folder is written whole
    assert (tmp / "empty-ok" / "adapter_config.json").is_file() and not list(tmp.glob(".empty-ok-*"))
