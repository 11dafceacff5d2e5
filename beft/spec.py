"""The typed run spec: the composed Hydra config, converted and validated once, at the entry point.

``RunSpec.from_config(cfg)`` resolves every interpolation, reads the Hydra job's variant and overrides, builds the
task as the model's pipeline runs it and runs every check of ``beft.config`` (bad values fail here, in one line,
before any data or weights load). Below the entry points, code takes a ``RunSpec`` (or plain values), never a
DictConfig. The model, method and bias groups stay mappings (``cfg`` fields): each method and model family reads its
own keys, and the group configs under conf/ document them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from beft import records
from beft.data.tasks import TaskSpec
from beft.errors import ConfigError

BIAS_METHODS = ("bias", "bias_reparam")  # methods whose trained set is chosen by the `bias` group
AUTO_BIAS = "auto"  # conf/bias/auto.yaml: the ranking chooses the bias (beft/auto.py)


@dataclass(frozen=True)
class DataSpec:
    dir: str | None
    num_train: int | None  # None = the whole training split
    num_eval: int | None  # None = every evaluation example
    max_length: int
    padding: str
    cache_dir: str | None


@dataclass(frozen=True)
class LoggerSpec:
    report_to: str
    project: str | None = None
    entity: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class DecoderSpec:
    """How a decoder scores candidates (conf/pipeline/decoder.yaml ``decoder``); the numbers are the same either way."""

    shared_prefix: bool  # one packed sequence per example (the prompt runs once) instead of one per candidate

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> DecoderSpec:
        value = cfg.get("shared_prefix")
        if not isinstance(value, bool):
            raise ConfigError(f"decoder.shared_prefix={value!r}; valid: true, false")
        return cls(shared_prefix=value)


@dataclass(frozen=True)
class RankSpec:
    """``beft.rank``'s settings (conf/rank.yaml)."""

    name: str
    fisher_batch_size: int
    max_grad_norm: float
    angle_over_90: str


@dataclass(frozen=True)
class RunSpec:
    """One run (or ranking): what it is, where it goes, and every setting it uses."""

    seed: int
    force: bool
    name: str  # <model>/<task>/<regime>/<label>/seed=<n>
    results_dir: str
    variant: str | None  # the overrides that make this run a variant; None = the paper's configuration
    overrides: list[str] | None  # the command line's overrides (None outside Hydra)
    experiment: str | None
    model: Mapping[str, Any]  # conf/model/<name>.yaml, resolved
    task: TaskSpec  # as the model's pipeline runs it
    regime: str
    method: Mapping[str, Any]  # conf/method/<name>.yaml, resolved
    bias: Mapping[str, Any]  # conf/bias/<name>.yaml, resolved
    data: DataSpec
    trainer_args: Mapping[str, Any]  # transformers.TrainingArguments keywords, as configured
    trainer_seed: int  # the Trainer's seed (dropout, shuffling): trainer.seed, else the run's seed
    logger: LoggerSpec
    save_adapter: bool
    config: Mapping[str, Any] = field(repr=False)  # the whole resolved config, for the record
    rank: RankSpec | None = None
    decoder: DecoderSpec | None = None  # decoder models only
    auto: Mapping[str, Any] | None = None  # bias=auto, once chosen: approach, chosen bias, scores, ranking record

    @property
    def folder(self) -> Path:
        return records.run_folder(self.results_dir, self.name, self.variant)

    @property
    def rank_folder(self) -> Path:
        assert self.rank is not None, "a ranking spec (conf/rank.yaml)"
        return records.run_folder(self.results_dir, self.rank.name, self.variant)

    @property
    def trains(self) -> bool:
        return self.method["trainable"] != "none"

    @property
    def reads_train_split(self) -> bool:
        """Training, or drawing in-context demonstrations from the training split; zero-shot reads none."""
        return self.trains or bool(self.method.get("num_demos"))

    @property
    def bias_name(self) -> str | None:
        """The trained bias kind (b_v -> "v"), for methods that train one; None for the others."""
        return self.bias["name"] if self.method["trainable"] in BIAS_METHODS else None

    @property
    def selects_bias(self) -> bool:
        """bias=auto whose bias is not chosen yet: the run ranks the biases first (beft/auto.py)."""
        return self.bias["name"] == AUTO_BIAS and self.auto is None

    @classmethod
    def unchecked(cls, cfg: DictConfig) -> RunSpec:
        """Converted without the checks (``???`` values stay as they are): for tools that inspect a sweep's grid."""
        return _build(cfg, None, None, throw_on_missing=False)

    @classmethod
    def from_config(cls, cfg: DictConfig, hydra_job: bool = True) -> RunSpec:
        """Convert and validate; raises ConfigError naming the bad value and the valid choices."""
        from beft import config  # the checks need the pipelines, which need this module

        job = _hydra_job() if hydra_job else (None, None)
        config.check_known_keys(cfg)  # a key added with `+` that nothing reads (a typo) is named first
        try:
            spec = _build(cfg, *job)
        except MissingMandatoryValue as err:
            # a ``???`` left unset: say first when it is a regime the task has no schedule for (the usual cause)
            config.validate_pairing(_build(cfg, *job, throw_on_missing=False))
            raise ConfigError(f"{err.full_key} has no value (???): set it on the command line") from None
        config.validate(spec)
        return spec


def _build(cfg: DictConfig, variant: str | None, overrides: list[str] | None, throw_on_missing: bool = True) -> RunSpec:
    from beft.pipelines import pipeline_for

    resolved: dict[str, Any] = OmegaConf.to_container(  # type: ignore[assignment]
        cfg, resolve=True, throw_on_missing=throw_on_missing
    )
    model, data, trainer, logger = resolved["model"], resolved["data"], resolved["trainer"], resolved["logger"]
    pipeline = pipeline_for(model)
    rank = resolved.get("rank")
    return RunSpec(
        seed=resolved["seed"],
        force=bool(resolved.get("force", False)),
        name=resolved["run_name"],
        results_dir=str(resolved["results_dir"]),
        variant=variant,
        overrides=overrides,
        experiment=resolved.get("experiment_name"),
        model=model,
        task=pipeline.task_spec(resolved["task"]),
        regime=resolved["regime"]["name"],
        method=resolved["method"],
        bias=resolved["bias"],
        data=DataSpec(**{k: data.get(k) for k in DataSpec.__dataclass_fields__}),
        trainer_args=trainer["args"],
        trainer_seed=resolved["seed"] if trainer.get("seed") is None else trainer["seed"],
        logger=LoggerSpec(
            report_to=logger["report_to"],
            project=logger.get("project"),
            entity=logger.get("entity"),
            group=logger.get("group"),
            tags=tuple(logger.get("tags") or ()),
        ),
        save_adapter=bool(resolved.get("save_adapter", True)),
        config=resolved,
        rank=None if rank is None else RankSpec(**rank),
        decoder=None if resolved.get("decoder") is None else DecoderSpec.from_config(resolved["decoder"]),
    )


def _hydra_job() -> tuple[str | None, list[str] | None]:
    """This Hydra job's variant (its non-identity overrides) and its command-line overrides; (None, None) outside
    Hydra. Which keys make a variant is hydra.job.config.override_dirname.exclude_keys in conf/base.yaml."""
    from hydra.core.hydra_config import HydraConfig

    from beft.sweeps import variants

    if not HydraConfig.initialized():
        return None, None
    return variants.current(), list(HydraConfig.get().overrides.task)
