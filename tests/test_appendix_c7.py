"""Appendix C.7 end to end on tiny random XLM-R models and original-format fixture files: PAWS-X (sentence pairs) and
CommonsenseQA (the encoder multiple-choice head)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoTokenizer, XLMRobertaForSequenceClassification

from beft import predict
from beft.data import features, sources
from beft.data.tasks import TaskSpec
from beft.models import loading
from tests.conftest import CONF_DIR, FIXTURE_DATA, run_config
from tests.models.tiny import tiny_xlmr_config

MINILM = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "minilm.yaml"))  # where its tokenizer is


@pytest.fixture(scope="module")
def tiny_xlmr_dir(tmp_path_factory) -> Path:
    """A model folder: a tiny random XLM-R with MiniLM's (offline) tokenizer, the vocabulary sized to match."""
    folder = tmp_path_factory.mktemp("tiny_xlmr")
    tokenizer = AutoTokenizer.from_pretrained(loading.resolve_source(MINILM))
    torch.manual_seed(0)
    XLMRobertaForSequenceClassification(tiny_xlmr_config(vocab_size=len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def task_spec(compose_cfg, task: str) -> TaskSpec:
    return TaskSpec.from_config(compose_cfg(f"task={task}", "model=xlmr_base").task)


def test_commonsense_qa_reads_the_original_jsonl(compose_cfg):
    split = sources.load_local_split(task_spec(compose_cfg, "commonsense_qa"), FIXTURE_DATA, "validation")
    first = split[0]
    assert first["question"] == "Where would you put a plate after washing it?"
    assert first["choices"] == ["cupboard", "river", "garage", "bed", "car"]
    assert split["label"] == [0, 1, 2]  # answerKey A, B, C -> the index of the gold choice
    assert split.features["label"].names == ["A", "B", "C", "D", "E"]


def test_pawsx_reads_the_original_tsv(compose_cfg):
    split = sources.load_local_split(task_spec(compose_cfg, "pawsx"), FIXTURE_DATA, "test")
    assert split.column_names == ["sentence1", "sentence2", "label"]
    assert split["label"] == [0, 1, 1, 0]
    assert split[0]["sentence1"] == "He was born in Ohio and later lived in Texas ."


def test_every_choice_is_encoded_with_its_question(compose_cfg, tiny_xlmr_dir):
    task = task_spec(compose_cfg, "commonsense_qa")
    tokenizer = AutoTokenizer.from_pretrained(tiny_xlmr_dir)
    split = sources.load_local_split(task, FIXTURE_DATA, "validation")
    encoded = features.tokenize_choices(split, "question", "choices", tokenizer, 128, "dynamic", None)
    row = encoded[1]
    assert len(row["input_ids"]) == 5 and row["label"] == 1
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in row["input_ids"]]
    assert texts == [f"what do people use to cut paper? {c}" for c in ["spoon", "scissors", "pillow", "cup", "lamp"]]


def run_tiny(compose_cfg, tiny_xlmr_dir, task: str, num_train: int, *extra: str) -> dict:
    cfg = compose_cfg("model=xlmr_base", f"model.path={tiny_xlmr_dir}", f"task={task}", f"data.dir={FIXTURE_DATA}",
                      f"data.num_train={num_train}", "trainer.args.num_train_epochs=1", *extra)  # fmt: skip
    return run_config(cfg)


def test_commonsense_qa_trains_b_v_of_a_multiple_choice_head(compose_cfg, tiny_xlmr_dir, tmp_path, capsys):
    record = run_tiny(compose_cfg, tiny_xlmr_dir, "commonsense_qa", 6)
    assert record["status"] == "completed", record.get("error")
    assert record["data"]["eval_rows"] == {"validation": 3}
    last = record["epochs"][-1]["validation"]
    assert last["accuracy"] in {0.0, 1 / 3, 2 / 3, 1.0}  # three questions
    params = record["params"]
    # b_v of both layers (2 x 32), the new pooler (32 x 32 + 32) and the one-logit head (32 + 1)
    assert params["trainable"] == 2 * 32 + 32 * 32 + 32 + 32 + 1
    values = [f"roberta.encoder.layer.{i}.attention.self.value.bias" for i in range(2)]
    assert [n for n in params["trainable_tensors"] if "encoder" in n] == values
    (run_folder,) = (tmp_path / "runs").glob("xlmr_base/commonsense_qa/low/beft-v/seed=0*")
    assert predict.main([str(run_folder), "--text", "Where do fish live?", "water"]) == 2
    assert "is a multiple-choice run (task commonsense_qa)" in capsys.readouterr().err


def test_the_multiple_choice_model_is_built_for_the_task(compose_cfg, tiny_xlmr_dir):
    task = task_spec(compose_cfg, "commonsense_qa")
    model, _, _ = loading.load_encoder({"path": str(tiny_xlmr_dir)}, task)
    assert type(model).__name__ == "XLMRobertaForMultipleChoice"
    logits = model(input_ids=torch.ones(2, 5, 7, dtype=torch.long)).logits
    assert logits.shape == (2, 5)  # one logit per choice, softmax over a question's five


def test_pawsx_runs_as_a_sentence_pair_task(compose_cfg, tiny_xlmr_dir):
    record = run_tiny(compose_cfg, tiny_xlmr_dir, "pawsx", 8, "bias=q")
    assert record["status"] == "completed", record.get("error")
    assert record["data"]["eval_rows"] == {"test": 4}
    assert 0.0 <= record["epochs"][-1]["test"]["accuracy"] <= 1.0
    queries = [f"roberta.encoder.layer.{i}.attention.self.query.bias" for i in range(2)]
    assert [n for n in record["params"]["trainable_tensors"] if "encoder" in n] == queries
