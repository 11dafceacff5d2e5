"""End to end on the real SmolLM2 (a bias-free LLaMA-architecture decoder with grouped-query attention): an added b_v
trained on real CB through the CLI, zero-shot and in-context COPA, and SQuAD generation, each writing a completed
record; and the decoder data preparation that frames only the examples a run uses."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from beft import predictions, records
from beft.data import prompts, sources
from beft.pipelines import pipeline_for
from beft.spec import RunSpec
from beft.training import metrics
from tests.conftest import FIXTURE_DATA, REPO, run_config

LAYERS, KV_WIDTH = 30, 3 * 64  # SmolLM2-135M: 30 layers, 3 key/value heads of 64
SMOLLM2_BV = LAYERS * KV_WIDTH  # 5,760 added b_v entries
# small enough for two shared CPU cores: 4 training and 4 evaluation examples, texts cut to their last 64 tokens
# (left truncation keeps every option token)
SMALL = ("data.num_train=4", "data.num_eval=4", "data.max_length=64", "trainer.args.num_train_epochs=1")
# one intra-op thread: on a CPU shared with other jobs two threads make a training step several times slower (they
# wait for each other); results are the same
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cb_run(tmp_path_factory, data_dir, decoder_cache):
    """An added b_v trained on 4 real CB examples, evaluated on 4, as a user types it."""
    tmp = tmp_path_factory.mktemp("decoder-e2e")
    cmd = [sys.executable, "-m", "beft.train", "model=smollm2", "task=cb", "bias=v", *SMALL, f"data.dir={data_dir}",
           f"results_dir={tmp / 'runs'}", f"data.cache_dir={decoder_cache}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = list((tmp / "runs").rglob("record.json"))
    assert len(records) == 1, records
    return json.loads(records[0].read_text()), records[0], proc


def check_common(record: dict) -> None:
    assert record["status"] == "completed"
    assert record["seeds"]["trainer"] == 42 and record["seeds"]["seed"] == 0  # the decoders' fixed Trainer seed
    assert record["config"]["model"]["kind"] == "decoder"
    assert "/models/SmolLM2-135M-Instruct" in record["model_source"]  # the converted copy, not the GGUF file
    score = record["score"]
    assert score["final"] == record["final"]["validation"][score["metric"]]
    assert 0.0 <= score["final"] <= 1.0


@pytest.mark.slow
def test_added_bv_on_cb_writes_a_completed_record(cb_run):
    record, path, proc = cb_run
    check_common(record)
    assert record["run"]["model"] == "smollm2" and record["run"]["task"] == "cb" and record["run"]["bias"] == "v"
    assert path.parts[-6:-1] == ("smollm2", "cb", "low", "beft-v", "seed=0__" + ",".join(sorted(SMALL)))
    params = record["params"]
    assert params["trainable"] == SMOLLM2_BV == 5760
    assert params["trainable_tensors"] == [f"model.layers.{i}.self_attn.v_proj.bias" for i in range(LAYERS)]
    assert params["total"] == params["pretrained_total"] + SMOLLM2_BV  # the added biases are new parameters
    assert params["permille"] == pytest.approx(1000 * 5760 / params["pretrained_total"])
    assert 0.04 < params["permille"] < 0.05  # 5,760 of ~134.5 M
    assert record["score"]["metric"] == "accuracy"  # decoders report CB's accuracy, not macro-F1
    assert set(record["final"]["validation"]) == {"accuracy"}
    assert (4 * record["score"]["final"]).is_integer()  # 4 evaluation examples
    assert record["data"]["num_train"] == 4 and record["data"]["eval_rows"] == {"validation": 4}
    assert record["config"]["trainer"]["args"]["learning_rate"] == 1e-2  # Table 22: CB 1e-2, 1 x 8
    assert record["config"]["trainer"]["args"]["gradient_accumulation_steps"] == 8
    assert [e["epoch"] for e in record["epochs"]] == [1] and math.isfinite(record["epochs"][0]["train_loss_mean"])
    changes = record["bias_change"]
    assert len(changes) == LAYERS and {c["role"] for c in changes} == {"v"}
    assert any(c["l1"] > 0 for c in changes)  # the added bias trained away from zero
    assert "record:" in proc.stdout and "trainable parameters: 5,760" in proc.stdout
    assert not (path.parent / "trainer").exists()


@pytest.mark.slow
def test_zero_shot_copa_scores_the_pretrained_model(compose_cfg, data_dir, decoder_cache, one_thread):
    record = run_config(compose_cfg("model=smollm2", "task=copa", "method=zero_shot", "data.num_eval=16",
                             f"data.dir={data_dir}", f"data.cache_dir={decoder_cache}"))  # fmt: skip
    check_common(record)
    assert record["run"]["method"] == "zero_shot" and record["run"]["bias"] is None
    assert record["params"]["trainable"] == 0 and record["params"]["trainable_tensors"] == []
    assert record["data"]["train_rows"] is None and record["data"]["num_train"] == 0  # no training data read
    assert record["data"]["eval_rows"] == {"validation": 16}
    assert record["score"]["metric"] == "accuracy" and (16 * record["score"]["final"]).is_integer()
    assert record["seeds"]["demonstrations"] is None
    assert record["train_runtime_s"] is None
    assert record["adapter"] == {"path": None, "bytes": None, "reason": "method zero_shot trains nothing"}


@pytest.fixture
def squad_dir(tmp_path, data_dir):
    """The real SQuAD dev file next to the fixture's small training file (the real one is not in shared/data)."""
    folder = tmp_path / "data" / "squad"
    folder.mkdir(parents=True)
    (folder / "dev-v1.1.json").symlink_to(data_dir / "squad" / "dev-v1.1.json")
    (folder / "train-v1.1.json").symlink_to(FIXTURE_DATA / "squad" / "train-v1.1.json")
    return tmp_path / "data"


@pytest.mark.slow
def test_squad_bv_generates_and_records_f1(compose_cfg, squad_dir, decoder_cache, one_thread):
    record = run_config(compose_cfg("model=smollm2", "task=squad", "bias=v", "data.num_train=4", "data.num_eval=4",
                             "data.max_length=128", "trainer.args.num_train_epochs=1", f"data.dir={squad_dir}",
                             f"data.cache_dir={decoder_cache}"))  # fmt: skip
    check_common(record)
    assert record["params"]["trainable"] == SMOLLM2_BV
    assert record["score"]["metric"] == "f1"
    final = record["final"]["validation"]
    assert set(final) == {"f1", "exact_match"} and 0.0 <= final["exact_match"] <= final["f1"] <= 1.0
    assert record["data"]["num_train"] == 4 and record["data"]["train_rows"] == 6
    assert record["data"]["eval_rows"] == {"validation": 4}
    assert record["config"]["data"]["max_length"] == 128  # prompts cut to 78 tokens: 50 new ones fit
    folder = records.run_folder(record["config"]["results_dir"], record["run"]["name"], record["run"]["variant"])
    rows = predictions.read(folder, record["predictions"]["validation"])  # the generated answers, with every gold one
    assert len(rows) == 4 and all(r["text"] == r["prediction"] and r["gold"] for r in rows)
    f1 = metrics.mean_over(metrics.token_f1, [r["text"] for r in rows], [r["gold"] for r in rows])
    assert f1 == final["f1"]


@pytest.mark.slow
def test_icl_copa_puts_demonstrations_before_each_example(compose_cfg, data_dir, decoder_cache, one_thread):
    record = run_config(compose_cfg("model=smollm2", "task=copa", "method=icl", "method.num_demos=2", "data.num_eval=4",
                             f"data.dir={data_dir}", f"data.cache_dir={decoder_cache}"))  # fmt: skip
    check_common(record)
    assert record["run"]["method"] == "icl" and record["params"]["trainable"] == 0
    assert record["seeds"]["demonstrations"] == 0  # RandomState(0) draws each example's demonstrations
    assert record["data"]["train_rows"] == 400 and record["data"]["eval_rows"] == {"validation": 4}


def test_decoder_runs_encode_only_the_training_subset(compose_cfg, fixture_data_dir, monkeypatch):
    """The training split can hold ~100k rows (ReCoRD: ~14 candidate texts each): only the regime's subset is framed
    and tokenised, and the evaluation split only its data.num_eval examples."""
    encoded: list[int] = []

    def encode_split(ds, *args):
        encoded.append(len(ds))
        return ds.add_column("gold", [[1]] * len(ds))

    monkeypatch.setattr(prompts, "encode_split", encode_split)
    cfg = compose_cfg("model=smollm2", "task=drop", "data.num_train=3", "data.num_eval=2",
                      f"data.dir={fixture_data_dir}")  # fmt: skip
    spec = RunSpec.unchecked(cfg)
    splits = sources.load_splits(spec.task, spec.data.dir)
    indices = [4, 0, 2]
    tokenizer = OmegaConf.create({"pad_token_id": 0})
    prep = pipeline_for(spec.model).prepare_data(spec, splits, indices, tokenizer)
    assert encoded == [3, 2]
    assert prep.train["question"] == [splits["train"][i]["question"] for i in indices]  # in the subset's order
