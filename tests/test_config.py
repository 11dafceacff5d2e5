"""Every config group composes, the paper's hyperparameters land in the composed config, bad values are rejected.

Composition is checked for every pair of groups that interact through config (model x task x regime via the
schedules; method x bias x model via labels and trainable sets; method x task x regime via learning rates).
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from beft.errors import BeftError
from beft.spec import RunSpec
from tests.conftest import CONF_DIR, REPO

MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
DECODERS = sorted(m for m in MODELS if {"kind": "decoder"} in OmegaConf.load(CONF_DIR / "model" / f"{m}.yaml").defaults)
ENCODERS = sorted(set(MODELS) - set(DECODERS))
ALL_TASKS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))
PIPELINES = {t: OmegaConf.load(CONF_DIR / "task" / f"{t}.yaml").get("pipelines", ["encoder"]) for t in ALL_TASKS}
TASKS = [t for t in ALL_TASKS if "encoder" in PIPELINES[t]]  # what encoders run
DECODER_TASKS = [t for t in ALL_TASKS if "decoder" in PIPELINES[t]]
REGIMES = ["low", "medium", "high", "all"]
BIASES = ["v", "q", "k", "o", "all", "auto"]
METHODS = ["beft", "bitfit", "full", "frozen", "rand_uniform"]
DECODER_METHODS = ["lora", "prefix", "icl", "zero_shot", "vera", "dora"]  # docs/method.md §6.2
BIAS_PEFT = [
    "bias_lora",
    "bias_vera",
    "bias_vera1d",
    "bias_dora",
    "bias_pissa",
    "bias_balora",
]  # tests/models/test_reparam.py
ONLY_LOW = {
    "cb",
    "wic",
}  # the paper gives SuperGLUE encoder runs only a low regime (and "all" = the whole split)

# (task, regime) -> (num_train, epochs, lr) for BERT-base: docs/experiments.md §4 (Tables 17-21)
PAPER = {
    ("sst2", "low"): (1000, 16, 4e-4),
    ("sst2", "medium"): (5000, 16, 4e-4),
    ("sst2", "high"): (11000, 16, 4e-4),
    ("rte", "low"): (300, 30, 1e-3),
    ("rte", "medium"): (900, 30, 1e-3),
    ("rte", "high"): (1200, 30, 1e-3),
    ("qqp", "low"): (1000, 30, 4e-4),
    ("qqp", "medium"): (5000, 30, 4e-4),
    ("qqp", "high"): (9000, 30, 4e-4),
    ("qnli", "low"): (1000, 30, 1e-4),
    ("qnli", "medium"): (5000, 30, 1e-4),
    ("qnli", "high"): (9000, 30, 1e-4),
    ("mnli", "low"): (1000, 30, 1e-4),
    ("mnli", "medium"): (5000, 30, 1e-4),
    ("mnli", "high"): (9000, 30, 1e-4),
    ("cola", "low"): (1710, 16, 7e-4),
    ("cola", "medium"): (3420, 16, 7e-4),
    ("cola", "high"): (4275, 16, 7e-4),
    ("mrpc", "low"): (367, 16, 7e-4),
    ("mrpc", "medium"): (1191, 16, 7e-4),
    ("mrpc", "high"): (1835, 60, 7e-4),
    ("stsb", "low"): (287, 16, 1e-4),
    ("stsb", "medium"): (1150, 30, 1e-4),
    ("stsb", "high"): (2300, 60, 1e-4),
    ("wic", "low"): (1000, 16, 1e-3),
    ("cb", "low"): (250, 60, 1e-3),
}


# Appendix C.7's tasks (low only): (num_train, epochs, lr); the paper gives the sizes, RTE's lr and epochs otherwise
APPENDIX = {"pawsx": (3333, 30, 1e-3), "pawsx_zh": (3333, 30, 1e-3), "pawsx_fr": (3333, 30, 1e-3),
            "commonsense_qa": (1000, 30, 1e-3)}  # fmt: skip


def defined(task: str, regime: str) -> bool:
    if task in APPENDIX:
        return regime == "low"
    return task not in ONLY_LOW or regime in ("low", "all")


# task -> (num_train, lr, per-device batch, accumulation steps) for decoders: docs/experiments.md §6.4 (Table 22)
DECODER_PAPER = {
    "sst2": (1000, 1e-3, 8, 1), "rte": (1000, 1e-3, 8, 1), "boolq": (1000, 1e-3, 4, 2), "multirc": (1000, 1e-3, 2, 4),
    "wsc": (554, 1e-2, 8, 1), "cb": (250, 1e-2, 1, 8), "wic": (1000, 1e-3, 8, 1), "copa": (400, 1e-4, 8, 1),
    "record": (1000, 1e-4, 2, 4), "squad": (1000, 1e-3, 2, 4), "drop": (1000, 1e-3, 1, 8),
}  # fmt: skip


def test_groups_are_complete():
    assert ENCODERS == ["bert_base", "bert_large", "minilm", "roberta_base", "xlmr_base"]
    assert DECODERS == ["deepseek_coder_1_3b", "gptj_6b", "llama2_7b", "opt_1_3b", "opt_6_7b", "smollm2"]
    assert sorted(["sst2", "rte", "qqp", "qnli", "mnli", "cola", "mrpc", "stsb", "cb", "wic", *APPENDIX]) == TASKS
    assert sorted(DECODER_PAPER) == DECODER_TASKS
    for group, names in [
        ("regime", REGIMES),
        ("bias", BIASES),
        ("method", METHODS + BIAS_PEFT + DECODER_METHODS),
        ("logger", ["none", "wandb"]),
    ]:
        assert sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")) == sorted(names)


@pytest.mark.slow  # composes every combination: tens of seconds
def test_model_task_regime(compose_cfg):
    for model, task, regime in itertools.product(ENCODERS, TASKS, REGIMES):
        if not defined(task, regime):  # no schedule: the check names the regimes the task has
            valid = "'low'" if task in APPENDIX else "'low', 'all'"
            with pytest.raises(BeftError, match=f"regime='{regime}' is not defined for task='{task}'.*{valid}"):
                RunSpec.from_config(compose_cfg(f"model={model}", f"task={task}", f"regime={regime}"))
            continue
        cfg = compose_cfg(f"model={model}", f"task={task}", f"regime={regime}")
        assert cfg.task.name == task and cfg.regime.name == regime and cfg.model.name == model
        args = cfg.trainer.args
        if (task, regime) in PAPER:
            n, epochs, lr = PAPER[(task, regime)]
            if model in ("roberta_base", "bert_large") and (task, regime) in {
                ("sst2", "low"),
                ("wic", "low"),
            }:
                epochs = 30  # Table 21
            assert (cfg.data.num_train, args.num_train_epochs, args.learning_rate) == (n, epochs, lr)
        elif task in APPENDIX:
            assert (cfg.data.num_train, args.num_train_epochs, args.learning_rate) == APPENDIX[task]
        else:
            assert regime == "all" and cfg.data.num_train is None


@pytest.mark.slow  # composes every combination: tens of seconds
def test_decoder_model_task(compose_cfg):
    """Every decoder x decoder task composes with Table 22's values and the decoder loop (docs/experiments.md
    §6.2-6.4)."""
    for model, task in itertools.product(DECODERS, DECODER_TASKS):
        cfg = compose_cfg(f"model={model}", f"task={task}", "regime=low")
        args = cfg.trainer.args
        n, lr, batch, accumulation = DECODER_PAPER[task]
        assert (cfg.data.num_train, args.learning_rate) == (n, lr)
        assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (batch, accumulation)
        assert (args.num_train_epochs, args.lr_scheduler_type, args.optim, args.adam_epsilon) == (
            5,
            "linear",
            "adamw_hf",
            1e-8,
        )
        assert (args.max_grad_norm, args.eval_strategy, cfg.trainer.seed) == (1.0, "no", 42)
        assert (cfg.data.num_eval, cfg.data.max_length) == (1000, 1536 if task == "drop" else 2048)
        assert cfg.model.kind == "decoder" and cfg.run_name == f"{model}/{task}/low/beft-v/seed=0"


@pytest.mark.slow  # composes every combination: tens of seconds
def test_method_bias_model(compose_cfg):
    for method, bias, model in itertools.product(METHODS, BIASES, MODELS):
        cfg = compose_cfg(f"method={method}", f"bias={bias}", f"model={model}")
        assert cfg.method.name == method
        label = f"beft-{bias}" if method == "beft" else method
        assert cfg.run_name == f"{model}/rte/low/{label}/seed=0"


@pytest.mark.slow  # composes every combination: tens of seconds
def test_method_task_regime_learning_rates(compose_cfg):
    for method, (task, regime) in itertools.product(METHODS, PAPER):
        cfg = compose_cfg(f"method={method}", f"task={task}", f"regime={regime}")
        expected = 1e-5 if method == "full" else PAPER[(task, regime)][2]
        assert cfg.trainer.args.learning_rate == expected


def test_paper_optimiser_settings(compose_cfg):
    args = compose_cfg().trainer.args
    assert (args.optim, args.adam_epsilon, args.weight_decay) == ("adamw_hf", 1e-6, 0.0)  # the reference's AdamW
    assert (args.lr_scheduler_type, args.warmup_steps, args.max_grad_norm) == ("constant", 0, 1.0)
    assert (args.per_device_train_batch_size, args.eval_strategy) == (16, "epoch")


def test_cli_cfg_job_shows_the_papers_values():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "beft.train",
            "model=bert_base",
            "task=rte",
            "regime=low",
            "bias=v",
            "--cfg",
            "job",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in ("learning_rate: 0.001", "num_train_epochs: 30", "num_train: 300", "seed: 0"):
        assert line in out


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.args.learning_rate=0", "trainer.args.learning_rate=0 must be a positive number"),
        ("trainer.args.num_train_epochs=-1", "num_train_epochs=-1 must be a positive number"),
        (
            "trainer.args.per_device_train_batch_size=0",
            "per_device_train_batch_size=0 must be a positive integer",
        ),
        ("seed=abc", "seed='abc' must be an integer"),
        (
            "data.padding=longest",
            "data.padding='longest' is not valid; choose one of \\['dynamic', 'max_length'\\]",
        ),
        ("bias.roles=[x]", "bias.roles=.*valid: 'all' or a list of \\['q', 'k', 'v', 'o'\\]"),
        ("data.dir=/no/such/folder", "data.dir '/no/such/folder' is not a folder"),
        ("model.path=/tmp", "model.path='/tmp': /tmp has no config.json"),
    ],
)
def test_bad_values_are_rejected_before_loading(compose_cfg, override, message):
    with pytest.raises(BeftError, match=message):
        RunSpec.from_config(compose_cfg(override))


def test_missing_task_file_in_data_dir(compose_cfg, data_dir):
    with pytest.raises(BeftError, match="glue/QQP/train.tsv is missing"):
        RunSpec.from_config(compose_cfg("task=qqp", f"data.dir={data_dir}"))


def test_cli_error_is_one_line_and_exit_code_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "beft.train", "trainer.args.learning_rate=-1", f"results_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "trainer.args.learning_rate=-1 must be a positive number" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_unknown_group_choice_lists_valid_ones():
    proc = subprocess.run(
        [sys.executable, "-m", "beft.train", "model=bert_huge", "--cfg", "job"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "Could not find 'model/bert_huge'" in proc.stderr and "minilm" in proc.stderr
