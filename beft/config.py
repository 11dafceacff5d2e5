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

from beft import importance
from beft.data import prompts, sources
from beft.data.features import PADDING_MODES
from beft.errors import ConfigError
from beft.models import methods, targets
from beft.pipelines import PIPELINES, Pipeline, pipeline_for
from beft.spec import AUTO_BIAS, RunSpec


def _positive(value, name: str, integer: bool = False) -> None:
    kind = int if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive {'integer' if integer else 'number'}")


TASK_KINDS = ("classification", "regression", "multiple_choice", "generation")


def validate(spec: RunSpec) -> None:
    """Raise ConfigError naming the bad value (and the valid choices). Called once, by ``RunSpec.from_config``."""
    pipeline = pipeline_for(spec.model)
    task = spec.task
    validate_pairing(spec)
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int):
        raise ConfigError(f"seed={spec.seed!r} must be an integer")
    _check_numbers(spec)
    if spec.method["trainable"] not in methods.METHODS:
        raise ConfigError(f"method.trainable={spec.method['trainable']!r}; valid: {sorted(methods.METHODS)}")
    roles = spec.bias["roles"]
    if roles != "all" and (not roles or any(r not in targets.ATTENTION_ROLES for r in roles)):
        raise ConfigError(f"bias.roles={roles!r}; valid: 'all' or a list of {list(targets.ATTENTION_ROLES)}")
    _check_kinds(spec, pipeline)
    _check_auto(spec)
    _check_data(spec)
    check_bias_targets(
        pipeline.skeleton(spec.model, task),  # resolves the model folder first (ModelSourceError)
        spec.method,
        spec.bias,
        spec.model["name"],
        add_bias=bool(spec.model.get("add_bias")),
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
    if spec.data.num_train is not None:
        _positive(spec.data.num_train, "data.num_train", integer=True)
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
