"""Checks of a composed run config, done before any data or model is loaded.

Hydra already rejects unknown group choices (``model=foo``) with the list of valid ones; this covers values, the
regimes a task defines, model/task pairings, the data files (header and first row) and the model's bias targets (on a
weightless skeleton of the model). Every message names the bad value and the valid choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from beft.data import prompts, sources
from beft.data.features import PADDING_MODES
from beft.data.tasks import TaskSpec
from beft.errors import ConfigError
from beft.models import loading, methods, targets
from beft.training import metrics


def _positive(value, name: str, integer: bool = False) -> None:
    kind = int if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive {'integer' if integer else 'number'}")


# What each model kind can run: an encoder trains a head (classification, regression); a decoder scores verbalised
# candidates (classification, multiple choice) or generates (EXPERIMENTS.md 6.1).
MODEL_KINDS: dict[str, tuple[str, ...]] = {
    "encoder": ("classification", "regression"),
    "decoder": ("classification", "multiple_choice", "generation"),
}
TASK_KINDS = ("classification", "regression", "multiple_choice", "generation")


def check(cfg: DictConfig) -> TaskSpec:
    """Raise ConfigError naming the bad value (and the valid choices); return the task spec as the model's kind
    runs it (``TaskSpec.from_config(cfg.task, pipeline=model.kind)``)."""
    try:
        return _check(cfg)
    except MissingMandatoryValue as err:  # a ``???`` left unset, e.g. a schedule value of a custom config
        raise ConfigError(f"{err.full_key} has no value (???): set it on the command line") from None


def task_spec(cfg: DictConfig) -> TaskSpec:
    """The task as the configured model kind runs it (decoders: the task's ``decoder`` block applied)."""
    kind = cfg.model.get("kind", "encoder")
    if kind not in MODEL_KINDS:
        raise ConfigError(f"model.kind={kind!r} (model {cfg.model.get('name')}); valid: {list(MODEL_KINDS)}")
    return TaskSpec.from_config(OmegaConf.to_container(cfg.task, resolve=True), pipeline=kind)


def _check_regime(cfg: DictConfig, task: TaskSpec) -> None:
    """The task defines the regime (conf/schedule/<kind>/<task>/<regime>.yaml exists; Hydra treats it as optional)."""
    if task.regimes is not None and cfg.regime.name not in task.regimes:
        raise ConfigError(
            f"regime={cfg.regime.name!r} is not defined for task={task.name!r} on {cfg.model.get('kind', 'encoder')} "
            f"models; valid regimes for {task.name}: {list(task.regimes)}"
        )


def _check(cfg: DictConfig) -> TaskSpec:
    task = task_spec(cfg)
    _check_pipeline(cfg.model, task, cfg.method)
    _check_regime(cfg, task)
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError(f"seed={cfg.seed!r} must be an integer")
    args = cfg.trainer.args
    _positive(args.learning_rate, "trainer.args.learning_rate")
    _positive(args.num_train_epochs, "trainer.args.num_train_epochs")
    _positive(args.per_device_train_batch_size, "trainer.args.per_device_train_batch_size", integer=True)
    _positive(args.per_device_eval_batch_size, "trainer.args.per_device_eval_batch_size", integer=True)
    if args.get("fp16") and args.get("bf16"):
        raise ConfigError(
            "trainer.args.fp16 and trainer.args.bf16 are both true; choose one (the decoder loop uses fp16 and "
            "trainer=gpu sets bf16: add trainer.args.fp16=false or trainer.args.bf16=false)"
        )
    _positive(cfg.data.max_length, "data.max_length", integer=True)
    if cfg.data.num_train is not None:
        _positive(cfg.data.num_train, "data.num_train", integer=True)
    if cfg.data.padding not in PADDING_MODES:
        raise ConfigError(f"data.padding={cfg.data.padding!r} is not valid; choose one of {list(PADDING_MODES)}")
    if cfg.method.trainable not in methods.METHODS:
        raise ConfigError(f"method.trainable={cfg.method.trainable!r}; valid: {sorted(methods.METHODS)}")
    roles = cfg.bias.roles
    if roles != "all" and (not roles or any(r not in targets.ATTENTION_ROLES for r in roles)):
        raise ConfigError(f"bias.roles={roles!r}; valid: 'all' or a list of {list(targets.ATTENTION_ROLES)}")
    _check_kinds(cfg.model, task)
    valid = _valid_metrics(cfg.model.get("kind", "encoder"), task)
    unknown = [m for m in task.metrics if m not in valid]
    if unknown or task.main_metric not in task.metrics:
        raise ConfigError(
            f"task {task.name}: metrics {task.metrics} / main_metric {task.main_metric!r}; "
            f"valid metrics: {valid}, and main_metric must be one of the task's metrics"
        )
    if task.train_size is not None and cfg.data.num_train is not None and cfg.data.num_train > task.train_size:
        raise ConfigError(
            f"data.num_train={cfg.data.num_train} (regime={cfg.regime.name!r}) is larger than task {task.name}'s "
            f"training split of {task.train_size} rows; valid: 1..{task.train_size}, or regime=all for the whole split"
        )
    if task.template is not None:
        prompts.template(task.template)
    if cfg.data.dir is not None:
        needs_train = cfg.method.trainable != "none" or bool(cfg.method.get("num_demos"))
        for split in sources.required_splits(task, train=needs_train):
            sources.check_local_file(task, Path(cfg.data.dir), split)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    check_bias_targets(
        loading.skeleton(model_cfg, task),  # resolves the model folder first (ModelSourceError)
        OmegaConf.to_container(cfg.method, resolve=True),
        OmegaConf.to_container(cfg.bias, resolve=True),
        cfg.model.name,
        add_bias=bool(cfg.model.get("add_bias")),
    )
    return task


def _valid_metrics(model_kind: str, task: TaskSpec) -> list[str]:
    """The metrics a run can report: an encoder's of its head's outputs, a decoder's of its evaluation (accuracy of
    the chosen candidate; F1 and exact match of a generated answer)."""
    if model_kind == "decoder":
        return list(metrics.DECODER_METRICS.get(task.task_kind, ()))
    return sorted(metrics.METRICS)


def _a(word: str) -> str:
    """``word`` with its indefinite article ("an encoder", "a decoder")."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _check_pipeline(model_cfg: Mapping[str, Any], task: TaskSpec, method_cfg: Mapping[str, Any]) -> None:
    """The model kind runs the task and the method (``pipelines`` in a task or method config; default: both)."""
    kind = model_cfg.get("kind", "encoder")
    methods_kinds = method_cfg.get("pipelines") or list(MODEL_KINDS)
    if kind not in methods_kinds:
        raise ConfigError(
            f"method {method_cfg.get('name')!r} runs on {' and '.join(methods_kinds)} models only, and model "
            f"{model_cfg.get('name')!r} is {_a(kind)}"
        )
    if kind not in task.pipelines:
        raise ConfigError(
            f"task {task.name!r} runs on {' and '.join(task.pipelines)} models only, and model "
            f"{model_cfg.get('name')!r} is {_a(kind)}; choose {_a(' or '.join(task.pipelines))} model"
        )


def _check_kinds(model_cfg: Mapping[str, Any], task: TaskSpec) -> None:
    """The model can run the task: an encoder trains a classification or regression head, it cannot generate."""
    model_kind = model_cfg.get("kind", "encoder")  # already valid: task_spec checked it
    if task.task_kind not in TASK_KINDS:
        raise ConfigError(f"task.kind={task.task_kind!r} (task {task.name}); valid: {list(TASK_KINDS)}")
    labelled_kinds = ("classification", "regression")
    if task.task_kind in labelled_kinds and (task.task_kind == "regression") != (task.label_names is None):
        raise ConfigError(
            f"task {task.name}: kind {task.task_kind!r} does not match label_names={task.label_names} "
            "(a regression task has label_names: null, a classification task lists its labels)"
        )
    if task.task_kind not in MODEL_KINDS[model_kind]:
        raise ConfigError(
            f"model {model_cfg.get('name')!r} is {_a(model_kind)} and cannot run task {task.name!r} of kind "
            f"{task.task_kind!r}; {_a(model_kind)} runs {' or '.join(MODEL_KINDS[model_kind])} tasks"
        )


def check_bias_targets(
    model, method_cfg: Mapping[str, Any], bias_cfg: Mapping[str, Any], name: str, add_bias: bool = False
) -> None:
    """The model has every bias the method trains (checked on a weightless skeleton, before weights load); with
    ``add_bias`` the missing ones are added to the skeleton first, as the run will.

    Raises UnsupportedArchitectureError (no role map) or MissingBiasError naming the role and what to do instead.
    """
    targets.architecture_of(model)
    if add_bias and method_cfg["trainable"] in ("bias", "bias_reparam"):
        targets.add_biases(model, bias_cfg["roles"])
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
