"""The benchmark's configs: its own settings and targets (``conf/bench.yaml``) and conf/train.yaml composed as a run.

Nothing the runs configure (learning rates, optimizer settings, epochs) is restated in the bench: it composes
conf/train.yaml with the overrides of ``conf/bench.yaml``, so that it measures the real settings.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from beft import CONF_DIR
from beft.errors import ConfigError
from beft.spec import RunSpec

REPO = Path(__file__).resolve().parents[2]
BENCH_CONF = CONF_DIR / "bench.yaml"
OPS = ("<=", ">=")


@dataclass(frozen=True)
class Target:
    """A pass/fail target: ``value <op> limit``, with what is measured and why the limit is what it is."""

    key: str
    what: str
    limit: float
    op: str
    why: str

    def passes(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit


@functools.cache
def load() -> DictConfig:
    """conf/bench.yaml, read-only."""
    cfg = OmegaConf.load(BENCH_CONF)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def targets() -> list[Target]:
    """The targets of conf/bench.yaml, in its order."""
    out = []
    for key, t in load().targets.items():
        if t.op not in OPS:
            raise ConfigError(f"{BENCH_CONF}: targets.{key}.op={t.op!r}; valid: {list(OPS)}")
        out.append(Target(str(key), t.what, float(t.limit), t.op, t.why))
    return out


def methods() -> dict[str, tuple[str, list[str]]]:
    """The step table's training rows: name -> (label, overrides of conf/train.yaml)."""
    return {str(name): (m.label, list(m.overrides)) for name, m in load().methods.items()}


def train_spec(*overrides: str, checked: bool = False) -> RunSpec:
    """conf/train.yaml composed and converted as ``python -m beft.train`` would (``checked``: and validated)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    return RunSpec.from_config(cfg, hydra_job=False) if checked else RunSpec.unchecked(cfg)


def full_schedule_epochs(task: str, overrides: Sequence[str] = ()) -> int:
    """The epochs a real end-to-end job of ``task`` runs (conf/schedule/<kind>/<task>/<regime>.yaml)."""
    spec = train_spec(f"task={task}", *load().job_overrides, *overrides)
    return int(spec.trainer_args["num_train_epochs"])
