"""Bad input is rejected before any model or data is loaded, with a message naming the bad value and the valid choices.

One test per kind of mistake a sweep meets: unknown group choices (Hydra lists the valid ones), values, a regime the
task does not define or cannot fill, a bias the model lacks, a model/task pairing that cannot work, broken data files
(named with the line) and model folders. Every entry point (train, rank, bench) reports them the same way.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from beft import bench, rank
from beft.errors import BeftError, DataError
from beft.models import loading
from beft.spec import RunSpec
from beft.sweeps.guard import guarded
from tests.conftest import CONF_DIR, REPO, run_config, task_config
from tests.models.tiny import tiny_llama

TASKS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    """A tiny LLaMA saved as a local model folder: attention projections without biases."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama().save_pretrained(folder)
    return folder


@pytest.fixture
def rte_copy(tmp_path, data_dir) -> Path:
    """A data folder holding a copy of the real RTE files, to break one of them."""
    folder = tmp_path / "data"
    # copyfile, not copy2: the copies are writable even where the data folder is read-only (as CI's is)
    shutil.copytree(data_dir / "glue" / "RTE", folder / "glue" / "RTE", copy_function=shutil.copyfile)
    return folder


@pytest.mark.parametrize(
    ("override", "message", "a_valid_choice"),
    [
        ("model=bert_huge", "Could not find 'model/bert_huge'", "minilm"),
        ("task=rte2", "Could not find 'task/rte2'", "rte"),
        ("regime=tiny", "Could not find 'regime/tiny'", "medium"),
        ("bias=z", "Could not find 'bias/z'", "v"),
        ("method=lorra", "Could not find 'method/lorra'", "lora"),
        ("hydra/launcher=slurmm", "Could not find 'hydra/launcher/slurmm'", "slurm"),
    ],
)
def test_unknown_group_choice_lists_the_valid_ones(compose_cfg, override, message, a_valid_choice):
    with pytest.raises(MissingConfigException, match=message) as err:
        compose_cfg(override)
    assert "Available options" in str(err.value) and f"\t{a_valid_choice}\n" in str(err.value)


BAD_VALUES = {
    # a regime the task has no schedule for (the paper gives CB and WiC only low and all)
    "task=cb regime=medium": r"regime='medium' is not defined for task='cb' on encoder models; valid regimes for cb: "
    r"\['low', 'all'\]",
    # a regime larger than the task's training split
    "task=cb data.num_train=300": r"data.num_train=300 \(regime='low'\) is larger than task cb's training split of "
    r"250 rows; valid: 1..250",
    "trainer.args.learning_rate=-0.001": r"trainer.args.learning_rate=-0.001 must be a positive number",
    "trainer.args.num_train_epochs=0": r"trainer.args.num_train_epochs=0 must be a positive number",
    "trainer.args.per_device_train_batch_size=-4": r"per_device_train_batch_size=-4 must be a positive integer",
    "seed=1.5": r"seed=1.5 must be an integer",
    "data.num_train=0": r"data.num_train=0 must be a positive integer",
    "model=smollm2 task=cb trainer=gpu": r"trainer.args.fp16 and trainer.args.bf16 are both true; choose one",
    # a model/task pairing that cannot work: an encoder has no generation head
    "task.kind=generation": r"model 'minilm' is an encoder and cannot run task 'rte' of kind 'generation'; an "
    r"encoder runs classification or regression or multiple_choice tasks",
    "task.kind=ranking": r"task.kind='ranking' \(task rte\); valid: \['classification', 'regression', "
    r"'multiple_choice', 'generation'\]",
    "model.kind=seq2seq": r"model.kind=.seq2seq. \(model minilm\); valid: \[.encoder., .decoder.\]",
    "task=stsb task.kind=classification": r"task stsb: kind 'classification' does not match label_names=None",
    # decoder pairings: an encoder cannot generate or choose, a decoder has no regression head
    "task=squad": r"task 'squad' runs on decoder models only, and model 'minilm' is an encoder; choose a decoder model",
    "task=copa": r"task 'copa' runs on decoder models only, and model 'minilm' is an encoder; choose a decoder model",
    "model=smollm2 task=stsb": r"task 'stsb' runs on encoder models only, and model 'smollm2' is a decoder; choose an "
    r"encoder model",
    "model=smollm2 task=cb regime=all": r"regime='all' is not defined for task='cb' on decoder models; valid regimes "
    r"for cb: \['low'\]",
    "model=smollm2 task=squad task.metrics=[f1,accuracy]": r"task squad: metrics \['f1', 'accuracy'\] / main_metric "
    r"'f1'; valid metrics: \['f1', 'exact_match'\]",
    "model=smollm2 task=copa task.metrics=[f1] task.main_metric=f1": r"task copa: metrics \['f1'\] / main_metric "
    r"'f1'; valid metrics: \['accuracy'\]",  # a decoder scores candidates: accuracy only
    "model=smollm2 task=cb task.decoder.template=cb2": r"task.template='cb2' is not a known prompt template; valid: "
    r"\['boolq', 'cb', 'copa'",
}


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES.items(), ids=list(BAD_VALUES))
def test_bad_value_is_rejected_naming_it(compose_cfg, overrides, message):
    with pytest.raises(BeftError, match=message):
        RunSpec.from_config(compose_cfg(*overrides.split()))


def test_every_task_declares_the_regimes_it_has_a_schedule_for():
    """The regime check reads task.regimes (a decoder: its ``decoder`` block's): for every model kind that runs the
    task it must list exactly the schedules of conf/schedule/<kind>/<task>/."""
    for task in TASKS:
        cfg = task_config(task)
        for kind in cfg.get("pipelines") or ["encoder"]:
            declared = {**cfg, **(cfg.get("decoder") or {})}["regimes"] if kind == "decoder" else cfg["regimes"]
            schedules = sorted(p.stem for p in (CONF_DIR / "schedule" / kind / task).glob("*.yaml"))
            assert sorted(declared) == schedules, (task, kind)


def test_bias_the_model_lacks_is_named_before_weights_load(compose_cfg, llama_dir, monkeypatch):
    monkeypatch.setattr(loading, "load_encoder", _must_not_load)
    with pytest.raises(BeftError, match=r"model 'minilm' \(bias=q\): llama has no q bias in its attention layers; "
                       r"add a zero-initialised one with model.add_bias=true"):  # fmt: skip
        RunSpec.from_config(compose_cfg("bias=q", f"model.path={llama_dir}"))


def test_bias_free_decoder_without_add_bias_is_told_to_add_one(compose_cfg, llama_dir, monkeypatch):
    """SmolLM2 (LLaMA) has no attention biases: b_q needs model.add_bias=true; with it the check passes."""
    monkeypatch.setattr(loading, "load_decoder", _must_not_load)
    with pytest.raises(BeftError, match=r"model 'smollm2' \(bias=q\): llama has no q bias in its attention layers; add "
                       r"a zero-initialised one with model.add_bias=true \(bias-free models"):  # fmt: skip
        RunSpec.from_config(compose_cfg("model=smollm2", "task=sst2", "bias=q", "model.add_bias=false",
                                 f"model.path={llama_dir}"))  # fmt: skip
    spec = RunSpec.from_config(compose_cfg("model=smollm2", "task=sst2", "bias=q", f"model.path={llama_dir}"))
    assert spec.task.name == "sst2"


def test_bitfit_on_a_model_without_any_bias(compose_cfg, llama_dir):
    with pytest.raises(BeftError, match=r"\(llama\) has no bias terms at all, so method 'bitfit' would train the task"):
        RunSpec.from_config(compose_cfg("method=bitfit", f"model.path={llama_dir}"))


def test_architecture_without_a_role_map(compose_cfg, tmp_path):
    folder = tmp_path / "distilbert"
    DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    ).save_pretrained(folder)
    with pytest.raises(BeftError, match=r"model type 'distilbert' has no role map; supported: \['bert', 'gptj'"):
        RunSpec.from_config(compose_cfg(f"model.path={folder}"))


def test_local_model_folder_without_weights(compose_cfg, llama_dir, tmp_path):
    folder = tmp_path / "no-weights"
    folder.mkdir()
    shutil.copy(llama_dir / "config.json", folder)
    with pytest.raises(BeftError, match=rf"model.path='{folder}': {folder} has no weights \(expected one of model"):
        RunSpec.from_config(compose_cfg(f"model.path={folder}"))


def test_hub_model_out_of_reach(compose_cfg):
    """Offline, a hub id that is not cached fails at the config, before data or weights, saying what to do."""
    with pytest.raises(BeftError, match=r"cannot read the config of 'beft-tests/no-such-model'.*set model.path"):
        RunSpec.from_config(compose_cfg("model=bert_base", "model.hub_id=beft-tests/no-such-model"))


def test_data_folder_from_the_environment_that_is_missing(compose_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("BEFT_DATA_DIR", str(tmp_path / "gone"))
    with pytest.raises(DataError, match=rf"data.dir '{tmp_path / 'gone'}' is not a folder \(set data.dir or BEFT_DATA"):
        RunSpec.from_config(compose_cfg())


def test_task_files_missing_from_the_data_folder(compose_cfg, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"task 'rte': .*glue/RTE/train.tsv is missing"):
        RunSpec.from_config(compose_cfg(f"data.dir={tmp_path / 'empty'}"))


def test_data_file_with_wrong_columns_names_file_and_line(compose_cfg, rte_copy):
    path = rte_copy / "glue" / "RTE" / "dev.tsv"
    path.write_text(path.read_text().replace("sentence1\t", "premise\t", 1))
    with pytest.raises(DataError, match=rf"{path}, line 1 \(header\): column 'sentence1' .* is missing; found"):
        RunSpec.from_config(compose_cfg(f"data.dir={rte_copy}"))


def test_data_file_with_a_bad_label_names_file_and_line(compose_cfg, rte_copy):
    path = rte_copy / "glue" / "RTE" / "train.tsv"
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace("\tnot_entailment\n", "\tmaybe\n")
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=rf"{path}, line 2: label 'maybe' is not one of \['entailment'"):
        RunSpec.from_config(compose_cfg(f"data.dir={rte_copy}"))


def test_unparseable_row_stops_the_run_before_the_model_loads(compose_cfg, data_dir, tmp_path, monkeypatch):
    """A broken row deep in a file is found when the data loads, which comes before the model."""
    folder = tmp_path / "data" / "super_glue" / "CB"
    shutil.copytree(data_dir / "super_glue" / "CB", folder, copy_function=shutil.copyfile)  # writable copies
    lines = (folder / "val.jsonl").read_text().splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + "\n"  # line 3 cut in half
    (folder / "val.jsonl").write_text("".join(lines))
    monkeypatch.setattr(loading, "load_encoder", _must_not_load)
    with pytest.raises(DataError, match=rf"{folder / 'val.jsonl'}, line 3: not valid JSON"):
        run_config(compose_cfg("task=cb", f"data.dir={tmp_path / 'data'}"))


def test_rank_and_bench_report_bad_input_in_one_line(compose_cfg, tmp_path, caplog, capsys):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("rank", overrides=[f"results_dir={tmp_path}", "task=wic", "regime=high"])
    with pytest.raises(SystemExit) as exit_, caplog.at_level(logging.ERROR):
        guarded(rank.rank_from_config, cfg, logging.getLogger("beft.rank"))
    assert exit_.value.code == 2
    assert "regime='high' is not defined for task='wic' on encoder models; valid regimes for wic: ['low', 'all']" in (
        caplog.text
    )
    assert not list(tmp_path.rglob("*.json"))
    with pytest.raises(SystemExit) as exit_:
        bench.cli(["--skip-e2e", "trainer.args.learning_rate=0"])
    assert exit_.value.code == 2
    assert "beft.bench: trainer.args.learning_rate=0 must be a positive number" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        bench.cli(["--skip-e2e", "model=bert_huge"])
    assert exit_.value.code == 2 and "Could not find 'model/bert_huge'" in capsys.readouterr().err


def test_cli_names_the_regimes_a_task_has(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "beft.train", "task=cb", "regime=medium", f"results_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        "regime='medium' is not defined for task='cb' on encoder models; valid regimes for cb: ['low', 'all']"
        in proc.stdout + proc.stderr
    )
    assert not list(tmp_path.rglob("record.json"))


def _must_not_load(*args, **kwargs):
    raise AssertionError("the model was loaded although the input is bad")
