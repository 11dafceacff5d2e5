"""Checks of a composed run config, done before any data or model is loaded.

Hydra already rejects unknown group choices (``model=foo``) with the list of valid ones; this covers values, the
regimes a task defines, model/task pairings, the data files (header and first row) and the model's bias targets (on a
weightless skeleton of the model). Every message names the bad value and the valid choices.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Iterable, Mapping
from numbers import Real
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from beft import CONF_DIR, atomic, importance
from beft.data import prompts, sources
from beft.data.features import PADDING_MODES
from beft.errors import ConfigError
from beft.models import loading, methods, targets
from beft.pipelines import PIPELINES, Pipeline, pipeline_for
from beft.spec import AUTO_BIAS, DataSpec, RankSpec, RunSpec

ENTRY_CONFIGS = ("base.yaml", "train.yaml", "rank.yaml")  # the top-level keys a run reads are defined here
SET_BY_THE_RUN = {  # TrainingArguments keywords a run sets itself, and where to set them instead
    "output_dir": "the run folder's trainer/ (results_dir)",
    "seed": "trainer.seed",
    "report_to": "logger=wandb",
    "run_name": "the run's name",
}


def _positive(value, name: str, integer: bool = False) -> None:
    kind = int if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive {'integer' if integer else 'number'}")


TASK_KINDS = ("classification", "regression", "multiple_choice", "generation")


def validate(spec: RunSpec) -> None:
    """Raise ConfigError naming the bad value (and the valid choices). Called once, by ``RunSpec.from_config``
    (after ``check_known_keys``)."""
    pipeline = pipeline_for(spec.model)
    task = spec.task
    validate_pairing(spec)
    check_results_dir(spec.results_dir)
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int):
        raise ConfigError(f"seed={spec.seed!r} must be an integer")
    _check_numbers(spec)
    _check_trainer_args(spec)
    if spec.method["trainable"] not in methods.METHODS:
        raise ConfigError(f"method.trainable={spec.method['trainable']!r}; valid: {sorted(methods.METHODS)}")
    _check_roles(spec)
    _check_kinds(spec, pipeline)
    _check_auto(spec)
    _check_data(spec)
    skeleton = pipeline.skeleton(spec.model, task)  # resolves the model folder first (ModelSourceError)
    loading.check_weights(loading.resolve_source(spec.model))
    check_positions(skeleton.config, spec.data.max_length, spec.model["name"])
    check_bias_targets(skeleton, spec.method, spec.bias, spec.model["name"], add_bias=bool(spec.model.get("add_bias")))


def _check_roles(spec: RunSpec) -> None:
    roles = spec.bias["roles"]
    if roles != "all" and (not roles or any(r not in targets.ATTENTION_ROLES for r in roles)):
        raise ConfigError(f"bias.roles={roles!r}; valid: 'all' or a list of {list(targets.ATTENTION_ROLES)}")
    if roles == "all" and spec.method["trainable"] == "bias_reparam":
        raise ConfigError(
            f"bias={spec.bias['name']} with method={spec.method['name']}: PEFT on the bias vector re-parametrises one "
            f"bias kind at a time; valid: bias={' or bias='.join(targets.ATTENTION_ROLES)}"
        )


def _close(key: str, valid: Iterable[str]) -> str:
    """ "; did you mean X?" when a valid name is close to ``key`` (a typo), else ""."""
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_known_keys(config: Mapping[str, Any]) -> None:
    """No setting a run would silently ignore: an unknown key added with ``+`` (``+data.num_trian=16``) is named with
    the valid keys of its group. Top-level keys are those of the entry configs and the config groups."""
    top = top_level_keys()
    for key in config:
        if key not in top:
            raise ConfigError(f"{key} is not a setting{_close(key, top)} (valid top-level keys: {sorted(top)})")
    groups = {"data": DataSpec, "rank": RankSpec, "trainer": None}  # trainer.args: _check_trainer_args
    for group, fields in groups.items():
        valid = ["args", "seed"] if fields is None else [f.name for f in dataclasses.fields(fields)]
        for key in config.get(group) or {}:
            if key not in valid:
                raise ConfigError(f"{group}.{key} is not a {group} setting{_close(key, valid)} (valid: {valid})")


@functools.cache
def top_level_keys() -> frozenset[str]:
    """The settings a run reads at the top level: the entry configs' keys, the config groups, and the keys that group
    files in Hydra's ``_global_`` package set (conf/pipeline/decoder.yaml: ``decoder``). Read from conf/ once."""
    keys = {key for name in ENTRY_CONFIGS for key in OmegaConf.load(CONF_DIR / name)}
    keys |= {p.name for p in CONF_DIR.iterdir() if p.is_dir()} | {"hydra"}
    for path in CONF_DIR.glob("*/**/*.yaml"):
        if path.read_text().startswith("# @package _global_"):
            keys |= set(OmegaConf.load(path) or {})
    return frozenset(keys - {"defaults"})


def check_results_dir(results_dir: str | Path) -> None:
    """``results_dir`` is a folder or can become one: no part of it is an existing file."""
    if blocker := atomic.file_in_the_way(Path(results_dir).expanduser()):
        raise ConfigError(
            f"results_dir={str(results_dir)!r}: {blocker} is a file, not a folder; set results_dir (or "
            "BEFT_RESULTS_DIR) to a folder"
        )


def _check_trainer_args(spec: RunSpec) -> None:
    """Every ``trainer.args`` key is a TrainingArguments field (a typo gets a close match), and TrainingArguments
    accepts the values (its own checks: strategies, schedulers, optimizers), before any data or weights load."""
    from transformers import TrainingArguments

    from beft.training.trainer import training_arguments

    valid = [f.name for f in dataclasses.fields(TrainingArguments) if f.init]
    for key in spec.trainer_args:
        if key in SET_BY_THE_RUN:
            raise ConfigError(f"trainer.args.{key} is set by the run; use {SET_BY_THE_RUN[key]} instead")
        if key not in valid:
            raise ConfigError(
                f"trainer.args.{key} is not a transformers.TrainingArguments field{_close(key, valid)} (valid: the "
                "fields of TrainingArguments in the installed transformers)"
            )
    try:
        training_arguments(spec.trainer_args, spec.folder / "trainer", spec.trainer_seed)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"trainer.args: {str(err).strip().splitlines()[0]}") from None


def check_positions(model_config, max_length: int, name: str) -> None:
    """``data.max_length`` fits the model's position embeddings (a longer one fails at the first long batch)."""
    limit = getattr(model_config, "max_position_embeddings", None)
    if not isinstance(limit, int):
        return
    if model_config.model_type in ("roberta", "xlm-roberta", "camembert"):  # positions start after the padding id
        limit -= (model_config.pad_token_id or 0) + 1
    if max_length > limit:
        raise ConfigError(
            f"data.max_length={max_length} is longer than model {name!r} takes ({limit} positions, "
            f"config.max_position_embeddings); valid: 1..{limit}"
        )


def validate_pairing(spec: RunSpec) -> None:
    """The model kind runs the task and the method, and the task defines the regime (Hydra treats the schedule
    conf/schedule/<kind>/<task>/<regime>.yaml as optional, so a missing one shows up here)."""
    pipeline, task = pipeline_for(spec.model), spec.task
    _check_pipeline(spec, pipeline)
    if task.regimes is not None and spec.regime not in task.regimes:
        raise ConfigError(
            f"regime={spec.regime!r} is not defined for task={task.name!r} on {pipeline.kind} models; valid regimes "
            f"for {task.name}: {list(task.regimes)}"
        )


def _check_numbers(spec: RunSpec) -> None:
    args = spec.trainer_args
    _positive(args["learning_rate"], "trainer.args.learning_rate")
    _positive(args["num_train_epochs"], "trainer.args.num_train_epochs")
    _positive(args["per_device_train_batch_size"], "trainer.args.per_device_train_batch_size", integer=True)
    _positive(args["per_device_eval_batch_size"], "trainer.args.per_device_eval_batch_size", integer=True)
    if args.get("fp16") and args.get("bf16"):
        raise ConfigError(
            "trainer.args.fp16 and trainer.args.bf16 are both true; choose one (the decoder loop uses fp16 and "
            "trainer=gpu sets bf16: add trainer.args.fp16=false or trainer.args.bf16=false)"
        )
    _positive(spec.data.max_length, "data.max_length", integer=True)
    for name in ("num_train", "num_eval"):
        if getattr(spec.data, name) is not None:
            _positive(getattr(spec.data, name), f"data.{name}", integer=True)
    if "gradient_accumulation_steps" in args:
        _positive(args["gradient_accumulation_steps"], "trainer.args.gradient_accumulation_steps", integer=True)
    for name in ("weight_decay", "max_grad_norm", "warmup_steps"):  # zero is allowed (no decay, clipping, warm-up)
        value = args.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, Real) or value < 0:
            raise ConfigError(f"trainer.args.{name}={value!r} must be a number >= 0")
    for name in ("adam_beta1", "adam_beta2"):
        value = args.get(name, 0.9)
        if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value < 1:
            raise ConfigError(f"trainer.args.{name}={value!r} must be a number in [0, 1)")
    if spec.data.padding not in PADDING_MODES:
        raise ConfigError(f"data.padding={spec.data.padding!r} is not valid; choose one of {list(PADDING_MODES)}")


def _check_data(spec: RunSpec) -> None:
    """The training subset fits the split; the template exists; the local data files have the expected columns."""
    task, num_train = spec.task, spec.data.num_train
    if task.train_size is not None and num_train is not None and num_train > task.train_size:
        raise ConfigError(
            f"data.num_train={num_train} (regime={spec.regime!r}) is larger than task {task.name}'s "
            f"training split of {task.train_size} rows; valid: 1..{task.train_size}, or regime=all for the whole split"
        )
    if task.template is not None:
        prompts.template(task.template)
    if spec.data.dir is not None:
        for split in sources.required_splits(task, train=spec.reads_train_split):
            sources.check_local_file(task, Path(spec.data.dir), split)


def _check_auto(spec: RunSpec) -> None:
    """bias=auto chooses the bias that method=beft trains, among b_q/b_k/b_v, by a ranking approach that is defined
    for the model's biases (the angle to an added, zero-initialised bias is not)."""
    bias, method = spec.bias, spec.method
    if bias["name"] != AUTO_BIAS:
        return
    if method["name"] != "beft" or method["trainable"] != "bias":
        raise ConfigError(
            f"bias=auto chooses the bias that method=beft trains; got method={method['name']!r}; valid: method=beft "
            "with bias=auto, or a fixed bias (bias=q, k, v, o or all) for the other methods"
        )
    valid = [a for a in importance.APPROACHES if a != "angle" or not spec.model.get("add_bias")]
    if bias.get("approach") not in valid:
        why = f" (model {spec.model['name']} has added, zero-initialised biases)" if len(valid) < 3 else ""
        raise ConfigError(f"bias.approach={bias.get('approach')!r}{why}; valid: {valid}")
    roles = bias["roles"]
    if isinstance(roles, str) or not roles or any(r not in importance.CANDIDATES for r in roles):
        raise ConfigError(f"bias.roles={roles!r} for bias=auto; valid: a list of {list(importance.CANDIDATES)}")


def _a(word: str) -> str:
    """``word`` with its indefinite article ("an encoder", "a decoder")."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _check_pipeline(spec: RunSpec, pipeline: Pipeline) -> None:
    """The model kind runs the task and the method (``pipelines`` in a task or method config; default: every kind)."""
    kind, model, task = pipeline.kind, spec.model["name"], spec.task
    method_kinds = spec.method.get("pipelines") or list(PIPELINES)
    if kind not in method_kinds:
        raise ConfigError(
            f"method {spec.method.get('name')!r} runs on {' and '.join(method_kinds)} models only, and model "
            f"{model!r} is {_a(kind)}"
        )
    if kind not in task.pipelines:
        raise ConfigError(
            f"task {task.name!r} runs on {' and '.join(task.pipelines)} models only, and model "
            f"{model!r} is {_a(kind)}; choose {_a(' or '.join(task.pipelines))} model"
        )


def _check_kinds(spec: RunSpec, pipeline: Pipeline) -> None:
    """The model can run the task (an encoder trains a classification or regression head, it cannot generate) and
    report its metrics."""
    task, model = spec.task, spec.model["name"]
    if task.task_kind not in TASK_KINDS:
        raise ConfigError(f"task.kind={task.task_kind!r} (task {task.name}); valid: {list(TASK_KINDS)}")
    labelled_kinds = ("classification", "regression")
    if task.task_kind in labelled_kinds and (task.task_kind == "regression") != (task.label_names is None):
        raise ConfigError(
            f"task {task.name}: kind {task.task_kind!r} does not match label_names={task.label_names} "
            "(a regression task has label_names: null, a classification task lists its labels)"
        )
    if task.task_kind not in pipeline.task_kinds:
        raise ConfigError(
            f"model {model!r} is {_a(pipeline.kind)} and cannot run task {task.name!r} of kind "
            f"{task.task_kind!r}; {_a(pipeline.kind)} runs {' or '.join(pipeline.task_kinds)} tasks"
        )
    valid = pipeline.valid_metrics(task)
    unknown = [m for m in task.metrics if m not in valid]
    if unknown or task.main_metric not in task.metrics:
        raise ConfigError(
            f"task {task.name}: metrics {task.metrics} / main_metric {task.main_metric!r}; "
            f"valid metrics: {valid}, and main_metric must be one of the task's metrics"
        )


def check_bias_targets(
    model, method_cfg: Mapping[str, Any], bias_cfg: Mapping[str, Any], name: str, add_bias: bool = False
) -> None:
    """The model has every bias the method trains (checked on a weightless skeleton, before weights load); with
    ``add_bias`` the missing ones are added to the skeleton first, as the run will.

    Raises UnsupportedArchitectureError (no role map) or MissingBiasError naming the role and what to do instead.
    """
    targets.architecture_of(model)
    if add_bias:
        targets.add_biases(model, targets.roles_to_add(method_cfg["trainable"], bias_cfg["roles"]))
    kind = method_cfg["trainable"]
    roles: list[str] | str = []
    if kind in ("bias", "bias_reparam"):
        roles = bias_cfg["roles"]
    elif kind == "random" and method_cfg.get("budget") is None:
        roles = list(method_cfg.get("budget_roles") or [])
    if roles == "all" or kind == "all_biases":
        if not targets.all_biases(model):
            raise targets.MissingBiasError(
                f"model {name!r} ({model.config.model_type}) has no bias terms at all, so method "
                f"{method_cfg.get('name')!r} would train the task head only; use method=frozen for that, or a model "
                "with biases (BERT, RoBERTa)"
            )
        return
    for role in roles:
        try:
            targets.role_biases(model, role)
        except targets.MissingBiasError as err:
            raise targets.MissingBiasError(f"model {name!r} (bias={role}): {err}") from None
