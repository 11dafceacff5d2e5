"""bias=auto on tiny models with real data: the run trains the bias its ranking puts first, exactly as bias=<chosen>
would, a second run reuses the ranking, and bad settings are rejected up front. Every run also writes per-example
predictions from which the record's final score is recomputed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy import stats
from transformers import AutoTokenizer, BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

from beft import predictions, rank, records
from beft.errors import BeftError
from beft.models import loading
from beft.run import run
from beft.spec import RunSpec
from tests.conftest import CONF_DIR, run_config
from tests.models.tiny import HIDDEN, LAYERS

SMALL = ("data.num_train=16", "trainer.args.num_train_epochs=1")
DECODER_SMALL = ("data.num_train=4", "data.num_eval=4", "data.max_length=64", "trainer.args.num_train_epochs=1")
ROLE_MODULE = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value"}


def composer(tmp: Path, data_dir: Path, *fixed: str):
    def cfg(*overrides: str):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("train", overrides=[f"results_dir={tmp / 'runs'}", f"data.cache_dir={tmp / 'cache'}",
                                               f"data.dir={data_dir}", *fixed, *overrides])  # fmt: skip

    return cfg


def model_cfg(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(compose("train", overrides=list(overrides)).model, resolve=True)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    """A tiny random BERT body with MiniLM's tokenizer (the task head is added by the run)."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(loading.resolve_source(model_cfg()))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                        num_attention_heads=2, intermediate_size=64)  # fmt: skip
    model = BertModel(config)
    draw = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a fresh BERT's biases are zero, where the angle score is undefined: give them values
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.normal_(std=0.1, generator=draw)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def encoder_runs(tmp_path_factory, tiny_encoder, data_dir):
    """bias=auto on SST-2 (its ranking computed here), then the chosen bias as a fixed-bias run."""
    tmp = tmp_path_factory.mktemp("auto")
    cfg = composer(tmp, data_dir, f"model.path={tiny_encoder}", "task=sst2", *SMALL)
    auto = run_config(cfg("bias=auto"))
    fixed = run_config(cfg(f"bias={auto['auto']['chosen']}"))
    return tmp / "runs", cfg, auto, fixed


def metric_from_file(folder: Path, record: dict) -> float:
    """The record's main metric, recomputed from its predictions file."""
    split, metric = record["score"]["split"], record["score"]["metric"]
    rows = predictions.read(folder, record["predictions"][split])
    if metric == "spearman":
        return float(stats.spearmanr([r["score"] for r in rows], [r["gold"] for r in rows]).statistic)
    assert metric == "accuracy"
    golds = [r["gold"] if isinstance(r["gold"], list) else [r["gold"]] for r in rows]
    return sum(r["prediction"] in g for r, g in zip(rows, golds, strict=True)) / len(rows)


def folder_of(results: Path, record: dict) -> Path:
    return records.run_folder(results, record["run"]["name"], record["run"]["variant"])


@pytest.mark.slow
def test_auto_trains_the_bias_its_ranking_puts_first(encoder_runs):
    results, _, auto, _ = encoder_runs
    chosen, scores = auto["auto"]["chosen"], auto["auto"]["scores"]
    assert auto["status"] == "completed" and auto["run"]["bias"] == "auto" and auto["run"]["label"] == "beft-auto"
    assert auto["auto"]["approach"] == "angle" and sorted(scores) == ["k", "q", "v"]
    assert chosen == max(scores, key=scores.get)
    ranking = json.loads((results / auto["auto"]["ranking"]).read_text())
    assert ranking["status"] == "completed" and ranking["approaches"]["angle"]["ranking_qkv"][0] == chosen
    assert scores == {role: ranking["approaches"]["angle"]["sum"][role] for role in "qkv"}
    biases = [n for n in auto["params"]["trainable_tensors"] if ".encoder.layer." in n]
    assert biases == [f"bert.encoder.layer.{i}.{ROLE_MODULE[chosen]}.bias" for i in range(LAYERS)]
    assert folder_of(results, auto).parts[-2] == "beft-auto"


@pytest.mark.slow
def test_auto_reproduces_the_fixed_bias_run(encoder_runs):
    results, _, auto, fixed = encoder_runs
    assert fixed["run"]["bias"] == auto["auto"]["chosen"] and "auto" not in fixed
    assert auto["epochs"] == fixed["epochs"] and auto["params"]["trainable"] == fixed["params"]["trainable"]
    read = [predictions.read(folder_of(results, r), r["predictions"]["validation"]) for r in (auto, fixed)]
    assert read[0] == read[1]


@pytest.mark.slow
def test_a_second_auto_run_reuses_the_ranking(encoder_runs, monkeypatch):
    results, cfg, auto, _ = encoder_runs
    ranking_file = results / auto["auto"]["ranking"]
    before = ranking_file.read_bytes()

    def no_second_ranking(spec):
        raise AssertionError(f"ranked {spec.rank_folder} again")

    monkeypatch.setattr(rank, "_rank_locked", no_second_ranking)
    # another approach makes a variant of the auto run (as Hydra names it), which shares the ranking
    spec = RunSpec.from_config(cfg("bias=auto", "bias.approach=magnitude"))
    other = records.to_dict(run(dataclasses.replace(spec, variant="bias.approach=magnitude")))
    assert other["run"]["variant"] == "bias.approach=magnitude" and other["auto"]["approach"] == "magnitude"
    assert other["auto"]["ranking"] == auto["auto"]["ranking"] and ranking_file.read_bytes() == before
    scores = other["auto"]["scores"]
    assert other["auto"]["chosen"] == json.loads(before)["approaches"]["magnitude"]["ranking_qkv"][0]
    assert other["auto"]["chosen"] == max(scores, key=scores.get)


@pytest.mark.slow
def test_predictions_recompute_the_final_score(encoder_runs, tiny_encoder, data_dir, tmp_path):
    results, _, auto, _ = encoder_runs
    rows = predictions.read(folder_of(results, auto), auto["predictions"]["validation"])
    assert len(rows) == auto["data"]["eval_rows"]["validation"] and [r["id"] for r in rows] == list(range(len(rows)))
    assert all(abs(sum(r["probs"]) - 1) < 1e-9 and r["prediction"] == max(range(2), key=r["probs"].__getitem__)
               for r in rows)  # fmt: skip
    assert metric_from_file(folder_of(results, auto), auto) == auto["score"]["final"]
    stsb = run_config(composer(tmp_path, data_dir, f"model.path={tiny_encoder}", "task=stsb", *SMALL)())
    folder = folder_of(tmp_path / "runs", stsb)
    assert metric_from_file(folder, stsb) == pytest.approx(stsb["score"]["final"], abs=1e-12)
    assert set(predictions.read(folder, stsb["predictions"]["validation"])[0]) == {"id", "gold", "prediction", "score"}


@pytest.fixture(scope="module")
def tiny_decoder(tmp_path_factory, smollm2_tokenizer) -> Path:
    """A tiny random LLaMA (no biases, grouped-query attention) with SmolLM2's tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(vocab_size=len(smollm2_tokenizer), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=64)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    smollm2_tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_auto_on_a_decoder_with_added_biases(tiny_decoder, data_dir, tmp_path):
    cfg = composer(tmp_path, data_dir, "model=smollm2", f"model.path={tiny_decoder}", "task=cb", *DECODER_SMALL)
    auto = run_config(cfg("bias=auto", "bias.approach=magnitude"))
    scores, chosen = auto["auto"]["scores"], auto["auto"]["chosen"]
    assert chosen == max(scores, key=scores.get)
    ranking = json.loads((tmp_path / "runs" / auto["auto"]["ranking"]).read_text())
    assert "angle" not in ranking["approaches"] and "target" not in ranking  # undefined for zero-initialised biases
    assert ranking["approaches"]["magnitude"]["ranking_qkv"][0] == chosen
    proj = {"q": "q_proj", "k": "k_proj", "v": "v_proj"}[chosen]
    assert auto["params"]["trainable_tensors"] == [f"model.layers.{i}.self_attn.{proj}.bias" for i in range(LAYERS)]
    folder = folder_of(tmp_path / "runs", auto)
    rows = predictions.read(folder, auto["predictions"]["validation"])
    assert len(rows) == 4 and all(len(r["probs"]) == 3 and abs(sum(r["probs"]) - 1) < 1e-9 for r in rows)
    assert metric_from_file(folder, auto) == auto["score"]["final"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("bias=auto", "method=bitfit"), r"bias=auto chooses the bias that method=beft trains; got method='bitfit'"),
        (("bias=auto", "bias.approach=cosine"), r"bias.approach='cosine'; valid: \['angle', 'magnitude', 'fisher'\]"),
        (("bias=auto", "bias.roles=[o]"), r"bias.roles=\['o'\] for bias=auto; valid: a list of \['q', 'k', 'v'\]"),
    ],
)
def test_bad_auto_settings_are_rejected_up_front(overrides, message, tiny_encoder, data_dir, tmp_path):
    with pytest.raises(BeftError, match=message):
        RunSpec.from_config(composer(tmp_path, data_dir, f"model.path={tiny_encoder}")(*overrides))


def test_angle_cannot_rank_added_biases(data_dir, tmp_path, tiny_encoder):
    folder = tmp_path / "llama"
    LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4,
                                 num_key_value_heads=2, intermediate_size=64)).save_pretrained(folder)  # fmt: skip
    cfg = composer(tmp_path, data_dir, "model=smollm2", f"model.path={folder}", "task=cb", "bias=auto")
    with pytest.raises(BeftError, match=r"bias.approach='angle' \(model smollm2 has added, zero-initialised biases\); "
                       r"valid: \['magnitude', 'fisher'\]"):  # fmt: skip
        RunSpec.from_config(cfg())
